//! Body wrappers: the request body limit (`max_request_body_size`) and the response body that
//! ends the request's "in progress" state and survives panics while streaming.

use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use super::conn::{ActiveGuard, BodyWait};
use crate::app::{Body, BoxError};
use crate::server::panic::catch_sync;
use mapproxy_serve_core::body::LimitedBody;

pin_project_lite::pin_project! {
    /// A request body cut at `max_request_body_size` ([`LimitedBody`]: an error that downcasts
    /// to `LengthLimitError` and a flag the server reads after the app answered) that also
    /// tells the connection when the app waits for bytes that have not come.
    pub(crate) struct WatchedBody<B> {
        #[pin]
        inner: LimitedBody<B>,
        wait: BodyWait,
    }
}

impl<B> WatchedBody<B> {
    pub(crate) fn new(inner: B, limit: u64, hit: Arc<AtomicBool>, wait: BodyWait) -> Self {
        WatchedBody {
            inner: LimitedBody::new(inner, limit, hit),
            wait,
        }
    }
}

impl<B> HttpBody for WatchedBody<B>
where
    B: HttpBody<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        let r = this.inner.poll_frame(cx);
        this.wait.set(r.is_pending());
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// The body hyper writes: the app's body, plus the request's [`ActiveGuard`], dropped as
    /// soon as the body ends. A panic while producing the body ends the response with an error
    /// (hyper then aborts the stream or closes the connection).
    pub struct ResponseBody {
        #[pin]
        inner: Body,
        guard: Option<ActiveGuard>,
        failed: bool,
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: Body, guard: ActiveGuard) -> Self {
        ResponseBody {
            inner,
            guard: Some(guard),
            failed: false,
        }
    }
}

impl HttpBody for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if *this.failed {
            return Poll::Ready(None);
        }
        let inner = this.inner;
        let r = match catch_sync(|| inner.poll_frame(cx)) {
            Ok(r) => r,
            Err(info) => {
                log::error!(
                    target: "mapproxy_serve.server.http",
                    "panic while sending a response body: {}",
                    info.message
                );
                *this.failed = true;
                Poll::Ready(Some(Err("panic in the response body".into())))
            }
        };
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            this.guard.take();
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.failed || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
