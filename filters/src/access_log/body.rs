//! [`AccessLogBody`]: the response body that counts the bytes sent and writes the line when
//! it ends or is dropped.

use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Buf;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;

use super::Entry;

/// Writes the line when dropped (the body finished or was abandoned).
struct Guard(Option<Entry>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(e) = &mut self.0 {
            e.write();
        }
    }
}

pin_project! {
    /// A response body that counts its bytes and writes the log line when it ends or is
    /// dropped.
    pub struct AccessLogBody<B> {
        #[pin]
        inner: B,
        guard: Guard,
    }
}

impl<B> AccessLogBody<B> {
    /// `inner`, counted for `entry`, whose line it writes.
    pub(super) fn new(inner: B, entry: Entry) -> Self {
        AccessLogBody {
            inner,
            guard: Guard(Some(entry)),
        }
    }
}

impl<B: Body> Body for AccessLogBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let (Some(d), Some(e)) = (f.data_ref(), this.guard.0.as_mut()) {
                    e.bytes += d.remaining() as u64;
                }
            }
            Some(Err(_)) | None => {
                // finished (or failed): write now, not when the connection drops the body
                if let Some(e) = &mut this.guard.0 {
                    e.write();
                }
                this.guard.0 = None;
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
