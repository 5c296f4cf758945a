//! Small protective and header filters:
//!
//! - `egg:mapproxy-serve#body_limit` — option `max_body_size` (bytes; `k`, `M`, `G` suffixes
//!   are powers of 1024): a request whose `Content-Length` is larger gets `413` without the app
//!   being called; a chunked body that grows past the limit fails the app's read, and the
//!   answer is `413` whatever the app made of that error.
//! - `egg:mapproxy-serve#timeout` — option `timeout` (seconds, fractions allowed): an app that
//!   has not answered in time is abandoned and the client gets `504 Gateway Timeout` (the app
//!   behind did not answer in time; `408` would blame the client). Option `status` picks
//!   another code (`503`, `408`, ...). The body is not covered once the answer has started.
//! - `egg:mapproxy-serve#headers` — option `headers`: one `Name: value` per line, set on every
//!   response (replacing the app's value); `override = false` keeps the app's value.
//! - `egg:mapproxy-serve#request_id` — option `header` (default `x-request-id`): a request
//!   without one gets a UUID; the id is passed to the app and copied to the response.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use http::{HeaderName, HeaderValue, Request, Response, StatusCode};
use http_body::Body as HttpBody;
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;

use mapproxy_serve_core::app::{
    box_body, layer_filter, text_response, AppFuture, Body, Filter, Handler,
};
use mapproxy_serve_core::body::LimitedBody;
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::{ConfigError, ConfigErrors};
use mapproxy_serve_core::App;

// ---------------------------------------------------------------- body limit

/// The body-limit service.
#[derive(Clone)]
struct BodyLimit {
    inner: App,
    max: u64,
}

fn too_large() -> Response<Body> {
    text_response(
        StatusCode::PAYLOAD_TOO_LARGE,
        "text/plain; charset=utf-8",
        "413 Payload Too Large\n",
    )
}

impl Handler for BodyLimit {
    fn call(&self, req: Request<Body>) -> AppFuture {
        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if declared.is_some_and(|n| n > self.max) || req.body().size_hint().lower() > self.max {
            return AppFuture::ready(too_large());
        }
        let tripped = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&tripped);
        let max = self.max;
        let req = req.map(|b| box_body(LimitedBody::new(b, max, flag)));
        let fut = self.inner.call(req);
        AppFuture::new(async move {
            let res = fut.await;
            if tripped.load(Ordering::SeqCst) {
                return too_large();
            }
            res
        })
    }
}

/// Build `body_limit` from its options.
pub fn build_body_limit(
    conf: &FactoryConf,
    _ctx: &mut BuildContext,
) -> Result<Filter, ConfigErrors> {
    conf.require("max_body_size")?;
    let max = conf
        .get_size("max_body_size", 0..=1 << 50)?
        .unwrap_or(u64::MAX);
    Ok(Arc::new(move |inner: App| {
        App::from_handler(BodyLimit { inner, max })
    }))
}

// ---------------------------------------------------------------- timeout

/// Build `timeout` from its options.
pub fn build_timeout(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let timeout = match errs.take(conf.get_seconds("timeout", 0.001..=86400.0)) {
        Some(Some(t)) => Some(t),
        Some(None) => {
            errs.push(
                conf.require("timeout")
                    .err()
                    .unwrap_or_else(|| conf.error("timeout", "missing")),
            );
            None
        }
        None => None,
    };
    let status = errs
        .take(conf.get_parsed::<u16>("status", "a status code like 504"))
        .map(|s| s.unwrap_or(504))
        .and_then(|s| match StatusCode::from_u16(s) {
            Ok(st) if st.is_client_error() || st.is_server_error() => Some(st),
            _ => {
                errs.push(conf.error("status", format!("expected a 4xx or 5xx code, found {s}")));
                None
            }
        });
    let (Some(timeout), Some(status)) = (timeout, status) else {
        return Err(errs);
    };
    errs.into_result(())?;
    Ok(layer_filter(TimeoutLayer::with_status_code(
        status, timeout,
    )))
}

// ---------------------------------------------------------------- headers

#[derive(Clone)]
struct SetHeaders {
    inner: App,
    headers: Arc<Vec<(HeaderName, HeaderValue)>>,
    replace: bool,
}

impl Handler for SetHeaders {
    fn call(&self, req: Request<Body>) -> AppFuture {
        let headers = Arc::clone(&self.headers);
        let replace = self.replace;
        self.inner.call(req).map(move |mut res| {
            let map = res.headers_mut();
            for (n, v) in headers.iter() {
                if replace || !map.contains_key(n) {
                    map.insert(n.clone(), v.clone());
                }
            }
            res
        })
    }
}

fn parse_headers(
    conf: &FactoryConf,
    v: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ConfigError> {
    let mut out = Vec::new();
    for line in v.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (n, val) = line.split_once(':').ok_or_else(|| {
            conf.error("headers", format!("expected 'Name: value', found '{line}'"))
        })?;
        let name = HeaderName::from_bytes(n.trim().as_bytes())
            .map_err(|_| conf.error("headers", format!("'{}' is not a header name", n.trim())))?;
        let value = HeaderValue::from_str(val.trim())
            .map_err(|_| conf.error("headers", format!("invalid value for '{name}'")))?;
        out.push((name, value));
    }
    if out.is_empty() {
        return Err(conf.error("headers", "no 'Name: value' lines"));
    }
    Ok(out)
}

/// Build `headers` from its options.
pub fn build_headers(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let headers = Arc::new(parse_headers(conf, conf.require("headers")?)?);
    let replace = conf.get_bool("override", true)?;
    Ok(Arc::new(move |inner: App| {
        App::from_handler(SetHeaders {
            inner,
            headers: Arc::clone(&headers),
            replace,
        })
    }))
}

// ---------------------------------------------------------------- request id

/// Build `request_id` from its options.
pub fn build_request_id(
    conf: &FactoryConf,
    _ctx: &mut BuildContext,
) -> Result<Filter, ConfigErrors> {
    let name = conf.get("header").unwrap_or("x-request-id").trim();
    let header = HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| conf.error("header", format!("'{name}' is not a header name")))?;
    Ok(Arc::new(move |inner: App| {
        let svc = ServiceBuilder::new()
            .layer(SetRequestIdLayer::new(header.clone(), MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(header.clone()))
            .service(inner);
        mapproxy_serve_core::app::app(svc)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{err, hello, send};
    use bytes::Bytes;
    use http_body::Frame;
    use http_body_util::LengthLimitError;
    use http_body_util::StreamBody;
    use mapproxy_serve_core::app::{app_fn, full_body};
    use mapproxy_serve_core::BoxError;

    fn post(body: Body, len: Option<usize>) -> Request<Body> {
        let mut b = Request::builder().method("POST").uri("/");
        if let Some(l) = len {
            b = b.header("content-length", l);
        }
        b.body(body).unwrap()
    }

    fn chunked(n: usize) -> Body {
        let chunks: Vec<Result<Frame<Bytes>, BoxError>> = (0..n)
            .map(|_| Ok(Frame::data(Bytes::from_static(b"0123456789"))))
            .collect();
        box_body(StreamBody::new(futures_util::stream::iter(chunks)))
    }

    #[tokio::test]
    async fn body_limit_413_for_length_and_chunked() {
        let f = build_body_limit(
            &FactoryConf::from_pairs("mapproxy-serve#body_limit", [("max_body_size", "50")]),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (st, _, body) = send(&f, hello(), post(full_body("x".repeat(40)), Some(40))).await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, "40"));
        let (st, _, _) = send(&f, hello(), post(full_body("x".repeat(60)), Some(60))).await;
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
        // a lying Content-Length is not trusted either
        let (st, _, _) = send(&f, hello(), post(chunked(6), Some(10))).await;
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
        let (st, _, _) = send(&f, hello(), post(chunked(6), None)).await;
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
        let (st, _, body) = send(&f, hello(), post(chunked(5), None)).await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, "50"));
        // the app sees the error the server's own limit gives (echo answers 413 on it)
        let seen = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&seen);
        let reader = mapproxy_serve_core::app::app_fn(move |req: Request<Body>| {
            let flag = Arc::clone(&flag);
            async move {
                if let Err(e) = http_body_util::BodyExt::collect(req.into_body()).await {
                    flag.store(e.is::<LengthLimitError>(), Ordering::SeqCst);
                }
                Response::new(mapproxy_serve_core::app::empty_body())
            }
        });
        let (st, _, _) = send(&f, reader, post(chunked(6), None)).await;
        assert_eq!(st, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(seen.load(Ordering::SeqCst), "LengthLimitError");
    }

    #[tokio::test]
    async fn timeout_answers_504() {
        let f = build_timeout(
            &FactoryConf::from_pairs("mapproxy-serve#timeout", [("timeout", "0.05")]),
            &mut BuildContext::current(),
        )
        .unwrap();
        let slow = app_fn(|_req| async {
            std::future::pending::<()>().await;
            mapproxy_serve_core::app::text_response(StatusCode::OK, "text/plain", "late")
        });
        let req = Request::new(mapproxy_serve_core::app::empty_body());
        assert_eq!(send(&f, slow, req).await.0, StatusCode::GATEWAY_TIMEOUT);
        let req = Request::new(mapproxy_serve_core::app::empty_body());
        assert_eq!(send(&f, hello(), req).await.2, "hello");
    }

    #[tokio::test]
    async fn headers_and_request_id() {
        let f = build_headers(
            &FactoryConf::from_pairs(
                "mapproxy-serve#headers",
                [(
                    "headers",
                    "\nX-Frame-Options: DENY\nContent-Type: text/x-test\n",
                )],
            ),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (_, h, _) = send(
            &f,
            hello(),
            Request::new(mapproxy_serve_core::app::empty_body()),
        )
        .await;
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["content-type"], "text/x-test");
        let f = build_headers(
            &FactoryConf::from_pairs(
                "mapproxy-serve#headers",
                [
                    ("headers", "Content-Type: text/x-test"),
                    ("override", "false"),
                ],
            ),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (_, h, _) = send(
            &f,
            hello(),
            Request::new(mapproxy_serve_core::app::empty_body()),
        )
        .await;
        assert_eq!(h["content-type"], "text/plain");

        let f = build_request_id(
            &FactoryConf::from_pairs("mapproxy-serve#request_id", []),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (_, h, _) = send(
            &f,
            hello(),
            Request::new(mapproxy_serve_core::app::empty_body()),
        )
        .await;
        assert_eq!(h["x-request-id"].len(), 36);
        let req = Request::builder()
            .header("x-request-id", "abc")
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap();
        assert_eq!(send(&f, hello(), req).await.1["x-request-id"], "abc");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = err(build_body_limit(
            &FactoryConf::from_pairs("x#body_limit", [("max_body_size", "big")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'max_body_size'"), "{e}");
        let e = err(build_body_limit(
            &FactoryConf::from_pairs("x#body_limit", []),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("missing option 'max_body_size'"), "{e}");
        let e = err(build_timeout(
            &FactoryConf::from_pairs("x#timeout", [("timeout", "soon"), ("status", "200")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'timeout'"), "{e}");
        assert!(e.contains("key 'status'"), "{e}");
        let e = err(build_timeout(
            &FactoryConf::from_pairs("x#timeout", []),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("missing option 'timeout'"), "{e}");
        let e = err(build_headers(
            &FactoryConf::from_pairs("x#headers", [("headers", "NoColon")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'headers': expected 'Name: value'"), "{e}");
        let e = err(build_headers(
            &FactoryConf::from_pairs("x#headers", [("headers", "Bad Name: x")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'headers'"), "{e}");
        let e = err(build_request_id(
            &FactoryConf::from_pairs("x#request_id", [("header", "a b")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'header'"), "{e}");
    }
}
