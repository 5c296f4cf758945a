//! [`ResponseBody`]: the response body under the whole-request deadline.

use std::fmt;
use std::future::Future as _;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use tokio::time::Sleep;

use crate::error::{chain_text, ClientError, ClientErrorKind};
use crate::Body;

/// The body of a response from [`HttpClient::request`](crate::HttpClient::request): hyper's
/// streaming body, cut with a [`ClientErrorKind::RequestTimeout`] error when
/// [`ClientConfig::request_timeout`](crate::ClientConfig::request_timeout) passes before its
/// end, whether data is still flowing or the server went silent (the deadline is a timer, not
/// a check made when data arrives). Other read errors are [`ClientErrorKind::Body`].
///
/// After an error the body ends (`None`); dropping it closes the connection unless the body
/// was read to its end. [`ResponseBody::into_body`] makes it the project's [`Body`].
pub struct ResponseBody {
    inner: Option<Incoming>,
    deadline: Option<Pin<Box<Sleep>>>,
    timeout: Duration,
    url: String,
}

impl ResponseBody {
    pub(crate) fn new(
        inner: Incoming,
        deadline: Option<Pin<Box<Sleep>>>,
        timeout: Duration,
        url: String,
    ) -> Self {
        ResponseBody {
            inner: Some(inner),
            deadline,
            timeout,
            url,
        }
    }

    /// The URL for messages (no query).
    pub(crate) fn url(&self) -> &str {
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
                this.inner = None; // drop the connection now
                this.deadline = None;
                return Poll::Ready(Some(Err(ClientError::new(
                    ClientErrorKind::RequestTimeout,
                    format!(
                        "request timeout ({}): the response body was not complete after {:?}",
                        this.url, this.timeout
                    ),
                ))));
            }
        }
        match Pin::new(inner).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(None) => {
                this.inner = None;
                this.deadline = None;
                Poll::Ready(None)
            }
            Poll::Ready(Some(Ok(frame))) => Poll::Ready(Some(Ok(frame))),
            Poll::Ready(Some(Err(e))) => {
                this.inner = None;
                this.deadline = None;
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
