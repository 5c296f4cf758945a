//! Helpers for the factories' unit tests.

use std::convert::Infallible;

use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use mapproxy_serve_core::app::{app_fn, text_response, Body, Filter};
use mapproxy_serve_core::App;

/// An app answering `hello` (and echoing the request body length for POST).
pub(crate) fn hello() -> App {
    app_fn(|req: Request<Body>| async move {
        if req.method() == http::Method::POST {
            match req.into_body().collect().await {
                Ok(b) => {
                    text_response(StatusCode::OK, "text/plain", b.to_bytes().len().to_string())
                }
                Err(_) => text_response(StatusCode::BAD_REQUEST, "text/plain", "bad body"),
            }
        } else {
            text_response(StatusCode::OK, "text/plain", "hello")
        }
    })
}

/// Run one request through `filter(app)`; the status, headers and body text.
pub(crate) async fn send(
    filter: &Filter,
    app: App,
    req: Request<Body>,
) -> (StatusCode, http::HeaderMap, String) {
    let res: Result<Response<Body>, Infallible> = filter(app).oneshot(req).await;
    let Ok(res) = res;
    let (parts, body) = res.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    (
        parts.status,
        parts.headers,
        String::from_utf8_lossy(&bytes).into_owned(),
    )
}

/// The message of a build error.
pub(crate) fn err<T>(r: Result<T, mapproxy_serve_core::error::ConfigErrors>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}
