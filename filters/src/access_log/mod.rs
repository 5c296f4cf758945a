//! An access log line per request, in Apache's combined format by default (Paste's
//! `translogger`), written when the response body has been sent (or dropped), with the real
//! number of body bytes and the duration.
//!
//! The format uses Paste's `%(NAME)s` fields (in an ini file write them as `%%(NAME)s`):
//!
//! | field | value |
//! |---|---|
//! | `REMOTE_ADDR` | the client IP ([`RemoteAddr`]; from the response when an inner forwarded-headers layer changed it), else `-` |
//! | `REMOTE_USER` | the user an auth layer accepted ([`RemoteUser`], from the response or the request), else `-` |
//! | `time` | request start, local time honouring `TZ`: `21/Nov/2026:05:16:03 +0100` |
//! | `REQUEST_METHOD`, `HTTP_VERSION` | `GET`, `HTTP/1.1` |
//! | `REQUEST_URI` | mount path + path + `?query`, as received (already percent-encoded) |
//! | `status` | the status code |
//! | `bytes` | body bytes sent, `-` for none |
//! | `HTTP_REFERER`, `HTTP_USER_AGENT`, any `HTTP_*` | request headers, else `-` |
//! | `SCRIPT_NAME`, `PATH_INFO`, `QUERY_STRING` | WSGI's parts of the URI |
//! | `duration`, `wsgi.duration` | seconds, 6 decimals |
//! | `duration_ms`, `duration_us` | whole milliseconds, microseconds |
//!
//! `"`, `\` and control characters in request-supplied values are escaped as Apache does
//! (`\"`, `\\`, `\xHH`). Unlike Paste, `REMOTE_ADDR` never reads `X-Forwarded-For` itself:
//! put the forwarded-headers layer in front, which believes only trusted proxies.
//!
//! ```
//! use std::sync::Arc;
//! use mapproxy_serve_filters::access_log::{AccessLogLayer, LogFormat, LogSink};
//!
//! let sink = LogSink::new("wsgi", log::Level::Info);
//! let layer = AccessLogLayer::new(LogFormat::default(), Arc::new(sink));
//! # let _ = layer;
//! ```

mod body;
mod factory;
mod format;
mod layer;
mod render;
mod sink;

pub use body::AccessLogBody;
pub use factory::{build, log_level};
pub use format::{LogFormat, COMBINED};
pub use layer::{AccessLog, AccessLogLayer, ResponseFuture};
pub use sink::{AccessLogSink, DiscardSink, LogSink};

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use http::{Request, Response, StatusCode};
use http_body::Body;

use mapproxy_serve_core::environ::{MountPath, RemoteAddr, RemoteUser};

use format::Part;
use render::{render_early, with_scratch, Scratch, SPARE_BUFFERS};

/// A format and a sink: what [`AccessLogLayer`] does, for code that is not a Tower stack
/// (a server's own handler type): [`start`](AccessLogger::start) when the request comes in,
/// [`LogEntry::respond`] with the response.
///
/// ```
/// use std::sync::Arc;
/// use mapproxy_serve_filters::access_log::{AccessLogger, DiscardSink, LogFormat};
///
/// let logger = AccessLogger::new(LogFormat::default(), Arc::new(DiscardSink));
/// let req = http::Request::new(());
/// let entry = logger.start(&req);
/// // ... the response comes back; its body writes the line when it has been sent
/// let res = entry.respond(http::Response::new(String::from("hello")));
/// # drop(res);
/// ```
#[derive(Clone)]
pub struct AccessLogger {
    shared: Arc<Shared>,
}

struct Shared {
    format: LogFormat,
    sink: Arc<dyn AccessLogSink>,
}

impl std::fmt::Debug for AccessLogger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessLogger")
            .field("format", &self.shared.format)
            .finish()
    }
}

impl AccessLogger {
    /// Write lines in `format` to `sink`.
    pub fn new(format: LogFormat, sink: Arc<dyn AccessLogSink>) -> Self {
        AccessLogger {
            shared: Arc::new(Shared { format, sink }),
        }
    }

    /// What the line needs to know of a request, taken when it starts.
    pub fn start<B>(&self, req: &Request<B>) -> LogEntry {
        let format = &self.shared.format;
        let mut early = Early::default();
        if format.early_runs > 0 {
            let wall = SystemTime::now();
            let mount = req
                .extensions()
                .get::<MountPath>()
                .map_or("", |m| m.0.as_str());
            with_scratch(|scratch| {
                early.text = scratch.spare.pop().unwrap_or_default();
                early.text.reserve(EARLY_CAPACITY);
                for part in &format.parts {
                    if let Part::Early(segments) = part {
                        for seg in segments {
                            render_early(&mut early.text, seg, req, mount, wall, &mut scratch.time);
                        }
                        early.end_run();
                    }
                }
            });
        }
        LogEntry(Entry {
            shared: Arc::clone(&self.shared),
            start: format.needs_duration.then(Instant::now),
            remote: mapproxy_serve_core::environ::remote_ip(req),
            user: req.extensions().get::<RemoteUser>().map(|u| u.0.clone()),
            early,
            status: StatusCode::OK,
            bytes: 0,
        })
    }
}

/// Room for a typical line's request part (a browser's user agent is ~120 bytes).
const EARLY_CAPACITY: usize = 256;

/// A request being logged (from [`AccessLogger::start`]): its line is written when the body
/// of the response given to [`respond`](LogEntry::respond) has been sent or dropped, or by
/// [`fail`](LogEntry::fail).
pub struct LogEntry(Entry);

impl LogEntry {
    /// The response to send: status, the user and client an inner layer put in its
    /// extensions, and a body that counts its bytes and writes the line when it ends.
    pub fn respond<B: Body>(self, res: Response<B>) -> Response<AccessLogBody<B>> {
        let mut entry = self.0;
        entry.status = res.status();
        if let Some(u) = res.extensions().get::<RemoteUser>() {
            entry.user = Some(u.0.clone());
        }
        if let Some(r) = res.extensions().get::<RemoteAddr>() {
            entry.remote = Some(r.0.ip());
        }
        res.map(|inner| AccessLogBody::new(inner, entry))
    }

    /// No response: the line is written now, with status 500.
    pub fn fail(self) {
        let mut entry = self.0;
        entry.status = StatusCode::INTERNAL_SERVER_ERROR;
        entry.write();
    }
}

/// The runs of the line rendered when the request started, back to back in `text`.
#[derive(Default)]
struct Early {
    text: String,
    /// Where each run ends in `text`: the first ones inline (the combined format has two),
    /// any further ones in a `Vec`.
    ends: [u32; 3],
    more: Vec<u32>,
    runs: usize,
}

impl Early {
    /// The run rendered since the last one ends here.
    fn end_run(&mut self) {
        let end = u32::try_from(self.text.len()).unwrap_or(u32::MAX);
        match self.ends.get_mut(self.runs) {
            Some(slot) => *slot = end,
            None => self.more.push(end),
        }
        self.runs += 1;
    }

    /// Run `i`'s text.
    fn run(&self, i: usize) -> &str {
        let end = |i: usize| -> usize {
            let e = match self.ends.get(i) {
                Some(e) => *e,
                None => self.more.get(i - self.ends.len()).copied().unwrap_or(0),
            };
            e as usize
        };
        let start = if i == 0 { 0 } else { end(i - 1) };
        self.text.get(start..end(i)).unwrap_or("")
    }
}

/// What is known about a request: the early runs of its line, then what the response adds.
struct Entry {
    shared: Arc<Shared>,
    /// When the request started, for duration fields (`None` without them).
    start: Option<Instant>,
    remote: Option<IpAddr>,
    user: Option<String>,
    early: Early,
    status: StatusCode,
    bytes: u64,
}

impl Entry {
    /// Write the line to the sink.
    fn write(&mut self) {
        // one line buffer per thread, reused for every line
        with_scratch(|scratch| {
            let Scratch {
                line,
                client,
                spare,
                ..
            } = scratch;
            line.clear();
            self.format_into(line, client);
            self.shared.sink.write(line);
            // the early text's buffer serves the next request started on this thread
            let mut text = std::mem::take(&mut self.early.text);
            if spare.len() < SPARE_BUFFERS && text.capacity() <= 4 * EARLY_CAPACITY {
                text.clear();
                spare.push(text);
            }
        });
    }
}

#[cfg(test)]
mod tests;
