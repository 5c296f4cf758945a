//! Body types shared by servers and filters.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use http_body_util::{LengthLimitError, Limited};
use pin_project_lite::pin_project;

use crate::error::BoxError;

pin_project! {
    /// A request body cut at a size limit (`http_body_util::Limited`): past the limit it yields
    /// an error that downcasts to [`LengthLimitError`] (what apps check, whichever limit cut the
    /// body) and raises `tripped`, which the owner of the limit reads after the app answered.
    /// Used by the `body_limit` filter and the HTTP server's `max_request_body_size`.
    pub struct LimitedBody<B> {
        #[pin]
        inner: Limited<B>,
        tripped: Arc<AtomicBool>,
    }
}

impl<B> LimitedBody<B> {
    /// `inner` cut at `limit` bytes; `tripped` is set when a frame would pass it.
    pub fn new(inner: B, limit: u64, tripped: Arc<AtomicBool>) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        LimitedBody {
            inner: Limited::new(inner, limit),
            tripped,
        }
    }
}

impl<B> HttpBody for LimitedBody<B>
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
        if let Poll::Ready(Some(Err(e))) = &r {
            if e.downcast_ref::<LengthLimitError>().is_some() {
                this.tripped.store(true, Ordering::SeqCst);
            }
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
