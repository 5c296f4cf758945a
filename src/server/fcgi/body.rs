//! The request body: STDIN records as they arrive, through a small bounded channel.
//!
//! The connection reader waits when the channel is full, so a slow app slows the web server
//! down instead of filling memory (at most [`CHANNEL_RECORDS`] records of ≤ 64 KiB queued
//! per request). Each queued chunk also holds its bytes of the connection's STDIN budget
//! (a semaphore), given back when the app takes the chunk: multiplexed requests whose apps
//! do not read cannot queue more than that budget on one connection.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Frame, SizeHint};
use tokio::sync::{mpsc, OwnedSemaphorePermit};

use crate::app::BoxError;

/// STDIN records queued per request before the reader waits.
pub const CHANNEL_RECORDS: usize = 4;

/// Why a body ended early.
#[derive(Debug)]
pub struct BodyError(pub &'static str);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for BodyError {}

/// A chunk of the body and its share of the connection's STDIN budget.
pub type Chunk = (Bytes, Option<OwnedSemaphorePermit>);

/// The sending half, kept by the connection reader.
pub type BodySender = mpsc::Sender<Result<Chunk, BodyError>>;

/// A request body fed by the connection reader.
#[derive(Debug)]
pub struct StdinBody {
    rx: Option<mpsc::Receiver<Result<Chunk, BodyError>>>,
    /// `CONTENT_LENGTH` minus what was already handed out, when known.
    remaining: Option<u64>,
}

impl StdinBody {
    /// A body and its sender; `content_length` from the CGI variable, if any.
    pub fn channel(content_length: Option<u64>) -> (BodySender, StdinBody) {
        let (tx, rx) = mpsc::channel(CHANNEL_RECORDS);
        (
            tx,
            StdinBody {
                rx: Some(rx),
                remaining: content_length,
            },
        )
    }

    /// A body that is already complete and empty.
    pub fn empty() -> StdinBody {
        StdinBody {
            rx: None,
            remaining: Some(0),
        }
    }
}

impl http_body::Body for StdinBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let Some(rx) = self.rx.as_mut() else {
            return Poll::Ready(None);
        };
        match rx.poll_recv(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok((chunk, _budget)))) => {
                if let Some(rem) = self.remaining.as_mut() {
                    *rem = rem.saturating_sub(chunk.len() as u64);
                }
                Poll::Ready(Some(Ok(Frame::data(chunk))))
            }
            Poll::Ready(Some(Err(e))) => {
                self.rx = None;
                Poll::Ready(Some(Err(Box::new(e))))
            }
            Poll::Ready(None) => {
                self.rx = None;
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.rx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.remaining {
            Some(n) if self.rx.is_some() => SizeHint::with_exact(n),
            Some(_) => SizeHint::with_exact(0),
            None => SizeHint::default(),
        }
    }
}
