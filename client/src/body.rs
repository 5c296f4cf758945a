//! [`ResponseBody`]: the response body under the whole-request deadline and the read
//! timeout.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::error::{chain_text, ClientError, ClientErrorKind};
use crate::Body;
use crate::MessageUrl;

/// The body of a response from [`HttpClient::request`](crate::HttpClient::request): hyper's
/// streaming body, cut with a [`ClientErrorKind::RequestTimeout`] error when
/// [`ClientConfig::request_timeout`](crate::ClientConfig::request_timeout) passes before its
/// end, whether data is still flowing or the server went silent (the deadline is a timer, not
/// a check made when data arrives), and with a [`ClientErrorKind::ReadTimeout`] error when a
/// wait for the next frame lasts
/// [`ClientConfig::read_timeout`](crate::ClientConfig::read_timeout) (only time spent
/// waiting counts: a reader that pauses is not cut). Other read errors are
/// [`ClientErrorKind::Body`].
///
/// After an error the body ends (`None`); dropping it closes the connection unless the body
/// was read to its end. [`ResponseBody::into_body`] makes it the project's [`Body`].
pub struct ResponseBody {
    inner: Option<Incoming>,
    deadline: Option<Pin<Box<Sleep>>>,
    limits: Limits,
    /// The read timer, made at the first wait and reset at each new one.
    idle: Option<Pin<Box<Sleep>>>,
    /// The last poll found no frame: `idle` runs for this wait.
    waiting: bool,
    url: MessageUrl,
}

/// The body's time limits, for its timers and messages.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// The whole-request limit (for messages; its deadline is the body's `deadline`).
    pub request_timeout: Duration,
    /// The longest wait for a frame.
    pub read_timeout: Option<Duration>,
}

impl ResponseBody {
    pub(crate) fn new(
        inner: Incoming,
        deadline: Option<Pin<Box<Sleep>>>,
        limits: Limits,
        url: MessageUrl,
    ) -> Self {
        ResponseBody {
            inner: Some(inner),
            deadline,
            limits,
            idle: None,
            waiting: false,
            url,
        }
    }

    /// The body ends now (the connection is dropped with `inner`).
    fn finish(&mut self) {
        self.inner = None;
        self.deadline = None;
        self.idle = None;
    }

    /// No frame this time: start the read timer if this is a new wait; true when it ran out.
    fn idle_expired(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(limit) = self.limits.read_timeout else {
            return false;
        };
        if !self.waiting {
            self.waiting = true;
            // A limit too large to add is no limit.
            let Some(at) = Instant::now().checked_add(limit) else {
                return false;
            };
            match self.idle.as_mut() {
                Some(timer) => timer.as_mut().reset(at),
                None => self.idle = Some(Box::pin(tokio::time::sleep_until(at))),
            }
        }
        self.idle
            .as_mut()
            .is_some_and(|timer| timer.as_mut().poll(cx).is_ready())
    }

    /// The URL for messages (no query).
    pub(crate) fn url(&self) -> &MessageUrl {
        &self.url
    }

    /// This body as an `UnsyncBoxBody<Bytes, BoxError>` (errors stay [`ClientError`]s inside
    /// the box: `downcast_ref::<ClientError>()` gives the kind back).
    pub fn into_body(self) -> Body {
        self.map_err(Into::into).boxed_unsync()
    }
}

impl fmt::Debug for ResponseBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ResponseBody")
            .field("url", &self.url)
            .field("finished", &self.inner.is_none())
            .field("deadline", &self.deadline.as_ref().map(|d| d.deadline()))
            .field("read_timeout", &self.limits.read_timeout)
            .finish()
    }
}

impl http_body::Body for ResponseBody {
    type Data = Bytes;
    type Error = ClientError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, ClientError>>> {
        let this = &mut *self;
        let Some(inner) = this.inner.as_mut() else {
            return Poll::Ready(None);
        };
        // The deadline first: a body still streaming past it is cut too.
        if let Some(deadline) = this.deadline.as_mut() {
            if deadline.as_mut().poll(cx).is_ready() {
                this.finish(); // drop the connection now
                return Poll::Ready(Some(Err(ClientError::new(
                    ClientErrorKind::RequestTimeout,
                    format!(
                        "request timeout ({}): the response body was not complete after {:?}",
                        this.url, this.limits.request_timeout
                    ),
                ))));
            }
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => {
                if !this.idle_expired(cx) {
                    return Poll::Pending;
                }
                this.finish();
                let kind = ClientErrorKind::ReadTimeout;
                Poll::Ready(Some(Err(ClientError::new(
                    kind,
                    format!(
                        "{kind} ({}): no more of the body for {:?}",
                        this.url,
                        this.limits.read_timeout.unwrap_or_default()
                    ),
                ))))
            }
            Poll::Ready(None) => {
                this.finish();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => {
                this.waiting = false;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                this.finish();
                let message = format!(
                    "error reading the response body ({}): {}",
                    this.url,
                    chain_text(&e)
                );
                Poll::Ready(Some(Err(
                    ClientError::new(ClientErrorKind::Body, message).with_source(e)
                )))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(|b| b.is_end_stream())
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}
