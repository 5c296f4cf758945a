//! `egg:mapproxy-serve#compress`, `egg:Paste#gzip`: response compression (tower-http).
//!
//! Options:
//! - `compress_level`: 1 (fast) to 9 (small); default: each encoding's default (Paste: 6).
//! - `encodings`: which encodings may be used, from `gzip br zstd deflate`
//!   (default `gzip br zstd`), chosen by the client's `Accept-Encoding`.
//! - `min_size`: responses with a known smaller size are not compressed (default 32 bytes).
//!
//! Images (except SVG), gRPC and event streams are never compressed, nor are responses that
//! already have a `Content-Encoding` or a `Content-Range`, nor any answer to `HEAD`.
//! Compressible responses carry `Vary: Accept-Encoding` (Paste's gzip forgot it).

use http::{Method, Request};
use tower::Layer;
use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
use tower_http::compression::{CompressionLayer, CompressionLevel};

use mapproxy_serve_core::app::{app, AppFuture, Body, Filter, Handler};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::split_list;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;
use mapproxy_serve_core::App;

/// Sends `HEAD` straight to the app, everything else through the compressor.
#[derive(Clone)]
struct SkipHead {
    plain: App,
    compressed: App,
}

impl Handler for SkipHead {
    fn call(&self, req: Request<Body>) -> AppFuture {
        if req.method() == Method::HEAD {
            self.plain.call(req)
        } else {
            self.compressed.call(req)
        }
    }
}

/// Build the filter from its options.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let level = match errs.take(conf.get_int::<i32>("compress_level", 1..=9)) {
        Some(Some(l)) => CompressionLevel::Precise(l),
        _ => CompressionLevel::Default,
    };
    let min_size = errs
        .take(conf.get_size("min_size", 0..=u64::from(u16::MAX)))
        .flatten()
        .unwrap_or(32);
    let (mut gzip, mut br, mut zstd, mut deflate) = (true, true, true, false);
    if let Some(v) = conf.get("encodings") {
        (gzip, br, zstd, deflate) = (false, false, false, false);
        for e in split_list(v) {
            match e.to_ascii_lowercase().as_str() {
                "gzip" => gzip = true,
                "br" => br = true,
                "zstd" => zstd = true,
                "deflate" => deflate = true,
                other => errs.push(conf.error(
                    "encodings",
                    format!("unknown encoding '{other}' (known: gzip br zstd deflate)"),
                )),
            }
        }
    }
    errs.into_result(())?;
    let predicate = SizeAbove::new(min_size)
        .and(NotForContentType::GRPC)
        .and(NotForContentType::IMAGES)
        .and(NotForContentType::SSE);
    let layer = CompressionLayer::new()
        .quality(level)
        .gzip(gzip)
        .br(br)
        .zstd(zstd)
        .deflate(deflate)
        .compress_when(predicate);
    Ok(std::sync::Arc::new(move |inner: App| {
        let compressed = app(layer.clone().layer(inner.clone()));
        App::from_handler(SkipHead {
            plain: inner,
            compressed,
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{err, send};
    use http::StatusCode;
    use mapproxy_serve_core::app::{app_fn, text_response};

    fn page(ct: &'static str) -> App {
        app_fn(move |_req| async move { text_response(StatusCode::OK, ct, "x".repeat(2000)) })
    }

    fn req(method: Method, ae: &str) -> Request<Body> {
        Request::builder()
            .method(method)
            .header("accept-encoding", ae)
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap()
    }

    #[tokio::test]
    async fn gzip_with_vary_but_not_images_or_head() {
        let f = build(
            &FactoryConf::from_pairs("Paste#gzip", [("compress_level", "9")]),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (st, h, body) = send(&f, page("text/html"), req(Method::GET, "gzip")).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(h["content-encoding"], "gzip");
        assert_eq!(h["vary"], "accept-encoding");
        assert!(body.len() < 2000);
        // not asked for: not compressed, still Vary
        let (_, h, body) = send(&f, page("text/html"), req(Method::GET, "identity")).await;
        assert!(h.get("content-encoding").is_none());
        assert_eq!(h["vary"], "accept-encoding");
        assert_eq!(body.len(), 2000);
        let (_, h, _) = send(&f, page("image/png"), req(Method::GET, "gzip")).await;
        assert!(h.get("content-encoding").is_none());
        let (_, h, _) = send(&f, page("text/html"), req(Method::HEAD, "gzip")).await;
        assert!(h.get("content-encoding").is_none());
        let (_, h, _) = send(&f, page("text/html"), req(Method::GET, "br")).await;
        assert_eq!(h["content-encoding"], "br");
    }

    #[tokio::test]
    async fn encodings_option() {
        let f = build(
            &FactoryConf::from_pairs("mapproxy-serve#compress", [("encodings", "gzip")]),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (_, h, _) = send(&f, page("text/plain"), req(Method::GET, "br, gzip")).await;
        assert_eq!(h["content-encoding"], "gzip");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = err(build(
            &FactoryConf::from_pairs(
                "Paste#gzip",
                [
                    ("compress_level", "11"),
                    ("encodings", "gzip lzma"),
                    ("min_size", "big"),
                ],
            ),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'compress_level'"), "{e}");
        assert!(
            e.contains("key 'encodings': unknown encoding 'lzma'"),
            "{e}"
        );
        assert!(e.contains("key 'min_size'"), "{e}");
        let e = err(build(
            &FactoryConf::from_pairs("Paste#gzip", [("compress_level", "six")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'compress_level'"), "{e}");
    }
}
