//! The handlers log4rs has no appender for, as log4rs [`Append`]s, and Python's handler level
//! as a log4rs [`Filter`].
//!
//! - [`FileAppender`] is `FileHandler`, `RotatingFileHandler`, `TimedRotatingFileHandler` and
//!   `WatchedFileHandler`, written by a background thread per file (`writer.rs`), so a log
//!   call on the request path formats the line and queues it, never waits for the disk.
//!   log4rs's file appenders write under a lock on the caller's thread, and its size trigger
//!   looks at the file after a write, so a file would exceed `maxBytes` (Python rolls before
//!   the write that would reach it).
//! - [`NullAppender`] is `NullHandler`.
//! - [`LevelNumber`] is a handler's `level`, compared with the record's Python level number.

use std::sync::Arc;

use log::Record;
use log4rs::append::Append;
use log4rs::filter::{Filter, Response};

use super::encode::{levelno, with_message, PyEncoder};
use super::writer::FileSink;

/// A log file written by a background thread, its lines formatted by Python's formatter.
#[derive(Debug)]
pub struct FileAppender {
    sink: FileSink,
    encoder: PyEncoder,
}

impl FileAppender {
    pub(super) fn new(sink: FileSink, encoder: PyEncoder) -> FileAppender {
        FileAppender { sink, encoder }
    }
}

impl Append for FileAppender {
    fn append(&self, record: &Record<'_>) -> anyhow::Result<()> {
        if self.encoder.is_message_only() {
            // access logs: the message and the terminator go to the queue as they are
            with_message(record, |m| self.sink.write_parts(&[m.as_bytes(), b"\n"]));
        } else {
            self.encoder
                .with_line(record, |line| self.sink.write(line.as_bytes()));
        }
        Ok(())
    }

    /// Wait until every queued line is written.
    fn flush(&self) {
        self.sink.flush();
    }
}

/// Python's `NullHandler`: takes records, writes nothing.
#[derive(Debug, Default)]
pub struct NullAppender;

impl Append for NullAppender {
    fn append(&self, _: &Record<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    fn flush(&self) {}
}

/// A handler's `level`: records below this Python level number are rejected (0, NOTSET,
/// takes all).
#[derive(Debug)]
pub struct LevelNumber(pub u32);

impl Filter for LevelNumber {
    fn filter(&self, record: &Record<'_>) -> Response {
        if levelno(record) >= self.0 {
            Response::Neutral
        } else {
            Response::Reject
        }
    }
}

/// An appender an embedding program added ([`LogHandle::add_appender`](super::LogHandle::add_appender)),
/// shared by every configuration applied after.
#[derive(Debug, Clone)]
pub(super) struct Shared(pub Arc<dyn Append>);

impl Append for Shared {
    fn append(&self, record: &Record<'_>) -> anyhow::Result<()> {
        self.0.append(record)
    }

    fn flush(&self) {
        self.0.flush();
    }
}

/// A handler that panics when it writes (tests of what a bug in a handler may do).
#[cfg(test)]
#[derive(Debug)]
pub(super) struct PanicAppender;

#[cfg(test)]
impl Append for PanicAppender {
    fn append(&self, _: &Record<'_>) -> anyhow::Result<()> {
        panic!("a handler that panics")
    }

    fn flush(&self) {}
}
