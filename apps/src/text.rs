//! `egg:mapproxy-serve#text`: answers every request with the same fixed text. For health
//! checks, placeholders and benchmarks: the response is built once, and a request only clones
//! a reference-counted [`Bytes`].
//!
//! ```ini
//! [app:health]
//! use = egg:mapproxy-serve#text
//! body = ok
//! status = 200
//! content_type = text/plain; charset=utf-8
//! ```
//!
//! Options: `body` (default `ok` and a newline), `status` (100–999, default 200),
//! `content_type` (default `text/plain; charset=utf-8`).
//!
//! ```
//! use mapproxy_serve_apps::text;
//! use mapproxy_serve_core::{build::BuildContext, config::FactoryConf};
//! let conf = FactoryConf::from_pairs("mapproxy-serve#text", [("status", "503")]);
//! assert!(text::build(&conf, &mut BuildContext::current()).is_ok());
//! let bad = FactoryConf::from_pairs("mapproxy-serve#text", [("status", "fine")]);
//! assert!(text::build(&bad, &mut BuildContext::current()).unwrap_err().to_string().contains("key 'status'"));
//! ```

use std::convert::Infallible;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{header, HeaderValue, Request, Response, StatusCode};

use mapproxy_serve_core::app::{full_body, App, AppFuture, Body, Handler};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;

/// The default body.
pub const DEFAULT_BODY: &str = "ok\n";
/// The default content type.
pub const DEFAULT_CONTENT_TYPE: &str = "text/plain; charset=utf-8";

/// The fixed-text service.
#[derive(Clone, Debug)]
pub struct Text {
    status: StatusCode,
    content_type: HeaderValue,
    content_length: HeaderValue,
    body: Bytes,
}

impl Text {
    /// A service answering `status` with `body` of `content_type`.
    pub fn new(status: StatusCode, content_type: HeaderValue, body: impl Into<Bytes>) -> Self {
        let body = body.into();
        Text {
            status,
            content_type,
            content_length: HeaderValue::from(body.len()),
            body,
        }
    }

    fn response(&self) -> Response<Body> {
        let mut res = Response::new(full_body(self.body.clone()));
        *res.status_mut() = self.status;
        let h = res.headers_mut();
        h.insert(header::CONTENT_TYPE, self.content_type.clone());
        h.insert(header::CONTENT_LENGTH, self.content_length.clone());
        res
    }
}

impl<B> tower::Service<Request<B>> for Text {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _req: Request<B>) -> Self::Future {
        std::future::ready(Ok(self.response()))
    }
}

/// Answers at once: no future to box.
impl Handler for Text {
    fn call(&self, _req: Request<Body>) -> AppFuture {
        AppFuture::ready(self.response())
    }
}

/// Build the text app from its options.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let status = match conf.get("status") {
        None => Some(StatusCode::OK),
        Some(v) => match v.trim().parse::<u16>().map(StatusCode::from_u16) {
            Ok(Ok(s)) => Some(s),
            _ => {
                errors.push(conf.error(
                    "status",
                    format!("expected an HTTP status code (100-999), found '{v}'"),
                ));
                None
            }
        },
    };
    let content_type = conf.get("content_type").unwrap_or(DEFAULT_CONTENT_TYPE);
    let content_type = match HeaderValue::from_str(content_type.trim()) {
        Ok(v) => Some(v),
        Err(_) => {
            errors.push(conf.error(
                "content_type",
                format!("not a valid header value: '{content_type}'"),
            ));
            None
        }
    };
    let body = Bytes::from(conf.get("body").unwrap_or(DEFAULT_BODY).to_string());
    match (status, content_type) {
        (Some(s), Some(ct)) if errors.is_empty() => Ok(App::from_handler(Text::new(s, ct, body))),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use super::*;
    use mapproxy_serve_core::app::empty_body;

    fn conf(pairs: &[(&str, &str)]) -> FactoryConf {
        FactoryConf::from_pairs("mapproxy-serve#text", pairs.iter().copied())
    }

    async fn call(app: &App) -> (StatusCode, String, String, Bytes) {
        let req = Request::get("/anything?x").body(empty_body()).unwrap();
        let res = app.clone().oneshot(req).await.unwrap();
        let h = |n| {
            res.headers()
                .get(n)
                .map(|v: &HeaderValue| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        let (ct, cl) = (h(header::CONTENT_TYPE), h(header::CONTENT_LENGTH));
        let status = res.status();
        (
            status,
            ct,
            cl,
            res.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    #[tokio::test]
    async fn defaults() {
        let app = build(&conf(&[]), &mut BuildContext::current()).unwrap();
        for _ in 0..2 {
            let (status, ct, cl, body) = call(&app).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(ct, "text/plain; charset=utf-8");
            assert_eq!(cl, "3");
            assert_eq!(body, "ok\n");
        }
    }

    #[tokio::test]
    async fn options() {
        let app = build(
            &conf(&[
                ("body", "{\"up\": false}\nsecond line"),
                ("status", " 503 "),
                ("content_type", "application/json"),
            ]),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (status, ct, cl, body) = call(&app).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(ct, "application/json");
        assert_eq!(cl, body.len().to_string());
        assert_eq!(body, "{\"up\": false}\nsecond line");

        let empty = build(
            &conf(&[("body", ""), ("status", "204")]),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (status, _, cl, body) = call(&empty).await;
        assert_eq!(
            (status, cl.as_str(), body.len()),
            (StatusCode::NO_CONTENT, "0", 0)
        );
    }

    #[test]
    fn bad_options_are_config_errors_naming_the_key() {
        let errs = build(
            &conf(&[("status", "1000"), ("content_type", "a\u{1}b")]),
            &mut BuildContext::current(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            errs.contains(
                "[mapproxy-serve#text] key 'status': expected an HTTP status code (100-999), found '1000'"
            ),
            "{errs}"
        );
        assert!(
            errs.contains("key 'content_type': not a valid header value"),
            "{errs}"
        );
        assert_eq!(errs.lines().count(), 2);
        for bad in ["ok", "99", "-1", ""] {
            assert!(
                build(&conf(&[("status", bad)]), &mut BuildContext::current()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn registered_with_its_options() {
        let f = mapproxy_serve_core::registry::registry()
            .find("mapproxy-serve#text")
            .unwrap();
        assert!(f.knows_option("body") && f.knows_option("status"));
        assert!(!f.knows_option("bodyy"));
    }
}
