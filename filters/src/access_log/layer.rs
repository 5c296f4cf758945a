//! The filter: [`AccessLogLayer`] makes [`AccessLog`] services. Both ways of calling one,
//! as a Tower service (any inner service and body types) and, over an [`App`], as the
//! [`Handler`] the `translogger` factory builds, take the same two steps:
//! [`AccessLogger::start`] when the request comes in, [`LogEntry::respond`] with the
//! response.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::{Request, Response};
use http_body::Body;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use mapproxy_serve_core::app::{App, AppFuture, Body as AppBody, Handler};

use super::{AccessLogBody, AccessLogSink, AccessLogger, LogEntry, LogFormat};

/// Layer writing one line per request to a sink.
#[derive(Clone, Debug)]
pub struct AccessLogLayer {
    logger: AccessLogger,
}

impl AccessLogLayer {
    /// Write lines in `format` to `sink`.
    pub fn new(format: LogFormat, sink: Arc<dyn AccessLogSink>) -> Self {
        AccessLogLayer {
            logger: AccessLogger::new(format, sink),
        }
    }
}

impl<S> Layer<S> for AccessLogLayer {
    type Service = AccessLog<S>;
    fn layer(&self, inner: S) -> AccessLog<S> {
        AccessLog {
            inner,
            logger: self.logger.clone(),
        }
    }
}

/// The service made by [`AccessLogLayer`]. Over an [`App`] it is also a [`Handler`]: the
/// filter as an app, answering through `&self` without Tower's boxed future (an answer the
/// app had at once stays unboxed).
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    logger: AccessLogger,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for AccessLog<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Body,
{
    type Response = Response<AccessLogBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let entry = self.logger.start(&req);
        ResponseFuture {
            fut: self.inner.call(req),
            entry: Some(entry),
        }
    }
}

pin_project! {
    /// Response future of [`AccessLog`].
    pub struct ResponseFuture<F> {
        #[pin]
        fut: F,
        entry: Option<LogEntry>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
    B: Body,
{
    type Output = Result<Response<AccessLogBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let res = ready!(this.fut.poll(cx));
        let Some(entry) = this.entry.take() else {
            return Poll::Pending;
        };
        Poll::Ready(match res {
            Ok(res) => Ok(entry.respond(res)),
            Err(e) => {
                entry.fail();
                Err(e)
            }
        })
    }
}

impl Handler for AccessLog<App> {
    fn call(&self, req: Request<AppBody>) -> AppFuture {
        let entry = self.logger.start(&req);
        self.inner
            .call(req)
            .map(|res| entry.respond(res).map(AppBody::new))
    }
}
