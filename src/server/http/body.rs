//! Body wrappers: the request body limit (`max_request_body_size`) and the response body that
//! ends the request's "in progress" state and survives panics while streaming.

use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};

use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::PollSemaphore;

use super::conn::{ActiveGuard, BodyWait, PIECE};
use crate::app::{Body, BoxError};
use crate::server::panic::catch_sync;
use mapproxy_serve_core::body::LimitedBody;

/// A request body cut at `max_request_body_size` ([`LimitedBody`]: an error that downcasts
/// to `LengthLimitError` and a flag the server reads after the app answered) that also tells
/// the connection when the app waits for bytes that have not come.
pub(crate) struct Watched<B> {
    inner: LimitedBody<B>,
    wait: BodyWait,
}

impl<B> HttpBody for Watched<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_frame(cx);
        this.wait.set(r.is_pending());
        if matches!(r, Poll::Ready(Some(Ok(_)))) {
            this.wait.data();
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

/// Where a request body without a `Content-Length` goes when the app drops it before its end:
/// the server reads the rest (up to the limit) before it answers, as waitress reads a whole
/// body before it calls the app, so a body past `max_request_body_size` is answered 413 even
/// when the app never read it.
pub(crate) type Leftover<B> = Arc<Mutex<Option<Watched<B>>>>;

/// The request body the app gets: a [`Watched`] body, handed to its [`Leftover`] slot (if it
/// has one) when the app drops it unfinished.
pub(crate) struct WatchedBody<B> {
    body: Option<Watched<B>>,
    leftover: Option<Leftover<B>>,
}

impl<B> WatchedBody<B> {
    pub(crate) fn new(
        inner: B,
        limit: u64,
        hit: Arc<AtomicBool>,
        wait: BodyWait,
        leftover: Option<Leftover<B>>,
    ) -> Self {
        WatchedBody {
            body: Some(Watched {
                inner: LimitedBody::new(inner, limit, hit),
                wait,
            }),
            leftover,
        }
    }
}

impl<B> Drop for WatchedBody<B> {
    fn drop(&mut self) {
        let (Some(body), Some(slot)) = (self.body.take(), self.leftover.take()) else {
            return;
        };
        if let Ok(mut left) = slot.lock() {
            *left = Some(body);
        };
    }
}

impl<B> HttpBody for WatchedBody<B>
where
    B: HttpBody<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        let Some(body) = this.body.as_mut() else {
            return Poll::Ready(None);
        };
        let r = Pin::new(&mut *body).poll_frame(cx);
        if matches!(r, Poll::Ready(None) | Poll::Ready(Some(Err(_)))) {
            // the end, or an error: nothing left for the server to read
            this.leftover = None;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        self.body
            .as_ref()
            .map_or_else(|| SizeHint::with_exact(0), |b| b.size_hint())
    }
}

pin_project_lite::pin_project! {
    /// The body hyper writes: the app's body, plus the request's [`ActiveGuard`], dropped as
    /// soon as the body ends. A panic while producing the body ends the response with an error
    /// (hyper then aborts the stream or closes the connection).
    ///
    /// It marks the send timer's state (data handed, hyper not back for more), and on HTTP/2
    /// paces the body (see `conn.rs`): data goes to hyper in pieces of at most [`PIECE`]
    /// bytes, the rest of a chunk stays here, and the app's body is polled only with one of
    /// the connection's [`BODY_PERMITS`](super::conn::BODY_PERMITS), held until the chunk it
    /// yields is all handed on.
    pub struct ResponseBody {
        #[pin]
        inner: Body,
        guard: Option<ActiveGuard>,
        failed: bool,
        // HTTP/2 pacing
        paced: bool,
        rest: Bytes,
        permit: Option<OwnedSemaphorePermit>,
        acquire: Option<PollSemaphore>,
    }
}

impl ResponseBody {
    pub(crate) fn new(inner: Body, guard: ActiveGuard, http2: bool) -> Self {
        ResponseBody {
            inner,
            guard: Some(guard),
            failed: false,
            paced: http2,
            rest: Bytes::new(),
            permit: None,
            acquire: None,
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
        // hyper is back for more: what was handed before has been taken on.
        if let Some(g) = this.guard.as_mut() {
            g.set_waiting(false);
        }
        if *this.paced {
            if !this.rest.is_empty() {
                let piece = this.rest.split_to(this.rest.len().min(PIECE));
                if this.rest.is_empty() {
                    this.permit.take();
                }
                if let Some(g) = this.guard.as_mut() {
                    g.set_waiting(true);
                }
                return Poll::Ready(Some(Ok(Frame::data(piece))));
            }
            if this.permit.is_none() {
                if let Some(g) = this.guard.as_ref() {
                    let sem = &g.conn().body_permits;
                    let permit = match this.acquire.as_mut() {
                        None => match sem.clone().try_acquire_owned() {
                            Ok(p) => Some(p),
                            Err(_) => {
                                let mut poll = PollSemaphore::new(sem.clone());
                                let r = poll.poll_acquire(cx);
                                *this.acquire = Some(poll);
                                match r {
                                    Poll::Ready(p) => p,
                                    Poll::Pending => return Poll::Pending,
                                }
                            }
                        },
                        Some(poll) => match poll.poll_acquire(cx) {
                            Poll::Ready(p) => p,
                            Poll::Pending => return Poll::Pending,
                        },
                    };
                    // `None`: the semaphore was closed, which it never is; go on unpaced.
                    *this.permit = permit;
                }
            }
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
        let r = match r {
            Poll::Ready(Some(Ok(frame))) if *this.paced => match frame.into_data() {
                Ok(mut data) => {
                    if data.len() > PIECE {
                        *this.rest = data.split_off(PIECE);
                    } else {
                        this.permit.take();
                    }
                    Poll::Ready(Some(Ok(Frame::data(data))))
                }
                Err(frame) => {
                    this.permit.take();
                    Poll::Ready(Some(Ok(frame)))
                }
            },
            r => r,
        };
        match &r {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => {
                this.permit.take();
                this.guard.take();
            }
            Poll::Ready(Some(Ok(frame))) if frame.is_data() => {
                if let Some(g) = this.guard.as_mut() {
                    g.set_waiting(true);
                }
            }
            _ => {}
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.rest.is_empty() && self.inner.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = SizeHint::new();
        hint.set_lower(inner.lower().saturating_add(rest));
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper.saturating_add(rest));
        }
        hint
    }
}
