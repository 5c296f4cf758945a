//! Clean error pages (Paste's `errorcatcher`): a panic in the app becomes a `500` page for that
//! request only, and a `5xx` answer from the app gets its body replaced by the same kind of
//! page (status and other headers kept), so no stack traces or internal messages leak.
//!
//! With `debug`, the panic message is shown on the page and `5xx` bodies pass through
//! unchanged. Panics are logged at error level to `mapproxy_serve.filters.error_catcher`.
//! A panic while the response body is being streamed is not caught here (the connection is
//! closed instead).
//!
//! ```
//! use mapproxy_serve_filters::error_catcher::ErrorCatcherLayer;
//!
//! let layer = ErrorCatcherLayer::new(false);
//! # let _ = layer;
//! ```

mod factory;
pub use factory::build;

use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use http::header::{
    CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, ETAG, LAST_MODIFIED,
    TRANSFER_ENCODING,
};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use tower::{Layer, Service};
use tower_http::catch_panic::{CatchPanic, ResponseForPanic};

const LOG_TARGET: &str = "mapproxy_serve.filters.error_catcher";

/// Layer that turns panics and `5xx` answers into clean pages; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct ErrorCatcherLayer {
    cfg: Arc<Config>,
}

#[derive(Debug)]
struct Config {
    debug: bool,
    message: Option<String>,
}

impl ErrorCatcherLayer {
    /// Clean pages; with `debug`, details.
    pub fn new(debug: bool) -> Self {
        ErrorCatcherLayer {
            cfg: Arc::new(Config {
                debug,
                message: None,
            }),
        }
    }

    /// The text shown on the page (Paste's `error_message`), instead of the default.
    pub fn with_message(debug: bool, message: impl Into<String>) -> Self {
        ErrorCatcherLayer {
            cfg: Arc::new(Config {
                debug,
                message: Some(message.into()),
            }),
        }
    }
}

impl<S> Layer<S> for ErrorCatcherLayer {
    type Service = CatchPanic<ErrorPages<S>, PanicPage>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanic::custom(
            ErrorPages {
                inner,
                cfg: Arc::clone(&self.cfg),
            },
            PanicPage {
                cfg: Arc::clone(&self.cfg),
            },
        )
    }
}

fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn page(status: StatusCode, cfg: &Config, detail: Option<&str>) -> Bytes {
    let reason = status.canonical_reason().unwrap_or("Error");
    let message = cfg.message.as_deref().unwrap_or(
        "The server encountered an unexpected condition and could not complete the request.",
    );
    let mut s = format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body>\n\
         <h1>{reason}</h1>\n<p>{msg}</p>\n",
        code = status.as_str(),
        msg = html_escape(message),
    );
    if let Some(d) = detail {
        s.push_str("<pre>");
        s.push_str(&html_escape(d));
        s.push_str("</pre>\n");
    }
    s.push_str("</body></html>\n");
    Bytes::from(s)
}

const HTML: HeaderValue = HeaderValue::from_static("text/html; charset=utf-8");

/// Builds the `500` page for a panic (used with tower-http's `CatchPanic`).
#[derive(Clone, Debug)]
pub struct PanicPage {
    cfg: Arc<Config>,
}

impl ResponseForPanic for PanicPage {
    type ResponseBody = Full<Bytes>;

    fn response_for_panic(
        &mut self,
        err: Box<dyn Any + Send + 'static>,
    ) -> Response<Self::ResponseBody> {
        let msg = if let Some(s) = err.downcast_ref::<String>() {
            s.as_str()
        } else if let Some(s) = err.downcast_ref::<&str>() {
            s
        } else {
            "(no message)"
        };
        log::error!(target: LOG_TARGET, "the application panicked: {msg}");
        let status = StatusCode::INTERNAL_SERVER_ERROR;
        let detail = self.cfg.debug.then(|| format!("panic: {msg}"));
        let mut res = Response::new(Full::new(page(status, &self.cfg, detail.as_deref())));
        *res.status_mut() = status;
        res.headers_mut().insert(CONTENT_TYPE, HTML);
        res
    }
}

/// Replaces the bodies of `5xx` answers (unless `debug`).
#[derive(Clone, Debug)]
pub struct ErrorPages<S> {
    inner: S,
    cfg: Arc<Config>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ErrorPages<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<Either<ResB, Full<Bytes>>>;
    type Error = S::Error;
    type Future = ErrorPagesFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        ErrorPagesFuture {
            fut: self.inner.call(req),
            cfg: Arc::clone(&self.cfg),
        }
    }
}

pin_project! {
    /// Response future of [`ErrorPages`].
    pub struct ErrorPagesFuture<F> {
        #[pin]
        fut: F,
        cfg: Arc<Config>,
    }
}

impl<F, B, E> Future for ErrorPagesFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = Result<Response<Either<B, Full<Bytes>>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.fut.poll(cx))?;
        if !res.status().is_server_error() || this.cfg.debug {
            return Poll::Ready(Ok(res.map(Either::Left)));
        }
        let (mut parts, _body) = res.into_parts();
        log::debug!(target: LOG_TARGET, "replaced the body of a {} answer", parts.status);
        for h in [
            CONTENT_LENGTH,
            CONTENT_ENCODING,
            CONTENT_RANGE,
            TRANSFER_ENCODING,
            ETAG,
            LAST_MODIFIED,
        ] {
            parts.headers.remove(h);
        }
        parts.headers.insert(CONTENT_TYPE, HTML);
        let body = Full::new(page(parts.status, this.cfg, None));
        Poll::Ready(Ok(Response::from_parts(parts, Either::Right(body))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::ServiceExt;

    async fn call(layer: &ErrorCatcherLayer, path: &str) -> (StatusCode, http::HeaderMap, String) {
        let svc = tower::service_fn(|req: Request<()>| async move {
            match req.uri().path() {
                "/panic" => panic!("secret <detail>"),
                "/502" => {
                    let mut r = Response::new(Full::new(Bytes::from_static(b"Traceback: db pw")));
                    *r.status_mut() = StatusCode::BAD_GATEWAY;
                    r.headers_mut()
                        .insert("retry-after", HeaderValue::from_static("5"));
                    r.headers_mut()
                        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                    Ok::<_, Infallible>(r)
                }
                _ => Ok(Response::new(Full::new(Bytes::from_static(b"fine")))),
            }
        });
        let res = layer
            .layer(svc)
            .oneshot(Request::builder().uri(path).body(()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let b = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&b).into_owned(),
        )
    }

    #[tokio::test]
    async fn panics_and_5xx_become_clean_pages() {
        let l = ErrorCatcherLayer::new(false);
        let (st, h, body) = call(&l, "/panic").await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(body.contains("<h1>Internal Server Error</h1>"), "{body}");
        assert!(!body.contains("secret"), "{body}");
        let (st, h, body) = call(&l, "/502").await;
        assert_eq!(st, StatusCode::BAD_GATEWAY);
        assert_eq!(h["retry-after"], "5");
        assert_eq!(h[CONTENT_TYPE], "text/html; charset=utf-8");
        assert!(!body.contains("Traceback"), "{body}");
        assert!(body.contains("Bad Gateway"));
        assert_eq!(call(&l, "/ok").await.2, "fine");
    }

    #[tokio::test]
    async fn debug_shows_details() {
        let l = ErrorCatcherLayer::with_message(true, "Sorry & bye");
        let (st, _, body) = call(&l, "/panic").await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body.contains("panic: secret &lt;detail&gt;"), "{body}");
        assert!(body.contains("Sorry &amp; bye"), "{body}");
        let (_, _, body) = call(&l, "/502").await;
        assert_eq!(body, "Traceback: db pw");
    }
}
