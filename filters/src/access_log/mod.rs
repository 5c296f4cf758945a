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

mod factory;
pub use factory::{build, log_level};

use std::cell::RefCell;
use std::fmt::Write as _;
use std::future::Future;
use std::io::Write as _;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use bytes::Buf;
use http::{HeaderName, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use mapproxy_serve_core::environ::{MountPath, RemoteAddr, RemoteUser};

/// Paste's `translogger` default: Apache's combined format.
pub const COMBINED: &str = "%(REMOTE_ADDR)s - %(REMOTE_USER)s [%(time)s] \
\"%(REQUEST_METHOD)s %(REQUEST_URI)s %(HTTP_VERSION)s\" %(status)s %(bytes)s \
\"%(HTTP_REFERER)s\" \"%(HTTP_USER_AGENT)s\"";

/// Where finished lines go.
pub trait AccessLogSink: Send + Sync + 'static {
    /// Write one line (without a newline).
    fn write(&self, line: &str);
}

/// Lines through the `log` crate, at `level` with target `target` (Paste's logger name).
///
/// With [`console_fallback`](LogSink::console_fallback) (Paste's `setup_console_handler`), a
/// line that the installed logger would not take (no logging configured, or this logger not
/// enabled at this level) is printed to stderr instead.
#[derive(Clone, Debug)]
pub struct LogSink {
    target: String,
    level: log::Level,
    console_fallback: bool,
}

impl LogSink {
    /// Log at `level` to `target`.
    pub fn new(target: impl Into<String>, level: log::Level) -> Self {
        LogSink {
            target: target.into(),
            level,
            console_fallback: false,
        }
    }

    /// Print to stderr when the logging system would drop the line.
    pub fn console_fallback(mut self, on: bool) -> Self {
        self.console_fallback = on;
        self
    }
}

impl AccessLogSink for LogSink {
    fn write(&self, line: &str) {
        let md = log::Metadata::builder()
            .target(&self.target)
            .level(self.level)
            .build();
        let logger = log::logger();
        if self.level > log::max_level() {
            if self.console_fallback {
                let mut err = std::io::stderr().lock();
                let _ = writeln!(err, "{line}");
            }
            return;
        }
        // Without the console fallback, `log` decides alone (as the `log!` macros do): asking
        // `enabled` first would walk the logger's configuration twice per line.
        if !self.console_fallback || logger.enabled(&md) {
            logger.log(
                &log::Record::builder()
                    .metadata(md)
                    .args(format_args!("{line}"))
                    .module_path_static(Some(module_path!()))
                    .build(),
            );
        } else if self.console_fallback {
            let mut err = std::io::stderr().lock();
            let _ = writeln!(err, "{line}");
        }
    }
}

/// Lines dropped (a logger level above the line's level).
#[derive(Clone, Copy, Debug, Default)]
pub struct DiscardSink;

impl AccessLogSink for DiscardSink {
    fn write(&self, _line: &str) {}
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    RemoteAddr,
    RemoteUser,
    Time,
    Method,
    RequestUri,
    ScriptName,
    PathInfo,
    QueryString,
    HttpVersion,
    Status,
    Bytes,
    Header(HeaderName),
    DurationSecs,
    DurationMs,
    DurationUs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Lit(String),
    Field(Field),
}

/// A parsed log format; see the [module docs](self) for the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    /// The segments grouped for writing: runs known when the request starts, rendered then
    /// (the request's own text is copied out at once, so no entry keeps a reference into the
    /// server's read buffer), and the fields known at the end.
    parts: Vec<Part>,
    /// How many [`Part::Early`] runs there are.
    early_runs: usize,
    /// A duration field: requests read the monotonic clock when they start.
    needs_duration: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Text of the format alone.
    Lit(String),
    /// Literals and request fields, rendered when the request starts.
    Early(Vec<Segment>),
    /// A field known when the response is sent (status, bytes, client, user, duration).
    Late(Field),
}

impl Field {
    /// Known only at the end: from the response (an inner layer may set the user or the
    /// client address) or from the finished body.
    fn is_late(&self) -> bool {
        matches!(
            self,
            Field::RemoteAddr
                | Field::RemoteUser
                | Field::Status
                | Field::Bytes
                | Field::DurationSecs
                | Field::DurationMs
                | Field::DurationUs
        )
    }
}

impl Default for LogFormat {
    fn default() -> Self {
        // the constant is known to parse
        LogFormat::parse(COMBINED).unwrap_or_else(|_| LogFormat::from_segments(Vec::new()))
    }
}

impl LogFormat {
    /// Parse Python `%`-formatting with named fields (`%(status)s`, `%(bytes)d`, `%%`).
    pub fn parse(s: &str) -> Result<LogFormat, String> {
        let mut segments = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(i) = rest.find('%') {
            lit.push_str(&rest[..i]);
            rest = &rest[i + 1..];
            if let Some(r) = rest.strip_prefix('%') {
                lit.push('%');
                rest = r;
                continue;
            }
            let Some(r) = rest.strip_prefix('(') else {
                return Err(format!(
                    "'%' must start a field like %(status)s or be doubled as %%, at '%{}'",
                    rest.chars().take(10).collect::<String>()
                ));
            };
            let end = r
                .find(')')
                .ok_or_else(|| format!("unclosed field '%({r}'"))?;
            let name = &r[..end];
            let conv = r[end + 1..].chars().next();
            if !matches!(conv, Some('s' | 'd' | 'i')) {
                return Err(format!("field %({name}) must end in 's' (like %({name})s)"));
            }
            rest = &r[end + 2..];
            let field = Self::field(name)?;
            if !lit.is_empty() {
                segments.push(Segment::Lit(std::mem::take(&mut lit)));
            }
            segments.push(Segment::Field(field));
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            segments.push(Segment::Lit(lit));
        }
        Ok(LogFormat::from_segments(segments))
    }

    fn from_segments(segments: Vec<Segment>) -> LogFormat {
        let needs_duration = segments.iter().any(|s| {
            matches!(
                s,
                Segment::Field(Field::DurationSecs | Field::DurationMs | Field::DurationUs)
            )
        });
        let mut parts = Vec::new();
        let mut run: Vec<Segment> = Vec::new();
        let end_run = |run: &mut Vec<Segment>, parts: &mut Vec<Part>| {
            if run.iter().any(|s| matches!(s, Segment::Field(_))) {
                parts.push(Part::Early(std::mem::take(run)));
            } else if !run.is_empty() {
                let text = run
                    .drain(..)
                    .map(|s| match s {
                        Segment::Lit(l) => l,
                        Segment::Field(_) => String::new(),
                    })
                    .collect();
                parts.push(Part::Lit(text));
            }
        };
        for seg in segments {
            match seg {
                Segment::Field(f) if f.is_late() => {
                    end_run(&mut run, &mut parts);
                    parts.push(Part::Late(f));
                }
                other => run.push(other),
            }
        }
        end_run(&mut run, &mut parts);
        let early_runs = parts.iter().filter(|p| matches!(p, Part::Early(_))).count();
        LogFormat {
            parts,
            early_runs,
            needs_duration,
        }
    }

    fn field(name: &str) -> Result<Field, String> {
        Ok(match name {
            "REMOTE_ADDR" => Field::RemoteAddr,
            "REMOTE_USER" => Field::RemoteUser,
            "time" => Field::Time,
            "REQUEST_METHOD" => Field::Method,
            "REQUEST_URI" => Field::RequestUri,
            "SCRIPT_NAME" => Field::ScriptName,
            "PATH_INFO" => Field::PathInfo,
            "QUERY_STRING" => Field::QueryString,
            "HTTP_VERSION" => Field::HttpVersion,
            "status" => Field::Status,
            "bytes" => Field::Bytes,
            "duration" | "wsgi.duration" => Field::DurationSecs,
            "duration_ms" => Field::DurationMs,
            "duration_us" => Field::DurationUs,
            h if h.starts_with("HTTP_") && h.len() > 5 => {
                let name = h[5..].to_ascii_lowercase().replace('_', "-");
                Field::Header(
                    HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("unknown field %({h})s"))?,
                )
            }
            other => {
                return Err(format!(
                    "unknown field %({other})s (known: REMOTE_ADDR, REMOTE_USER, time, \
                     REQUEST_METHOD, REQUEST_URI, HTTP_VERSION, status, bytes, HTTP_<HEADER>, \
                     SCRIPT_NAME, PATH_INFO, QUERY_STRING, duration, duration_ms, duration_us)"
                ))
            }
        })
    }
}

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

/// One field or literal known when the request starts, as it goes in the line.
fn render_early<B>(
    out: &mut String,
    seg: &Segment,
    req: &Request<B>,
    mount: &str,
    wall: SystemTime,
    time: &mut TimeCache,
) {
    let f = match seg {
        Segment::Lit(s) => return out.push_str(s),
        Segment::Field(f) => f,
    };
    let uri = req.uri();
    match f {
        Field::Time => out.push_str(time.get(wall)),
        Field::Method => escape_str(out, req.method().as_str()),
        Field::RequestUri => {
            escape_str(out, mount);
            escape_str(out, uri.path());
            if let Some(q) = uri.query() {
                out.push('?');
                escape_str(out, q);
            }
        }
        Field::ScriptName => escape_str(out, mount),
        Field::PathInfo => escape_str(out, uri.path()),
        Field::QueryString => escape_str(out, uri.query().unwrap_or("")),
        Field::HttpVersion => out.push_str(match req.version() {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "HTTP/2.0",
            Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/?",
        }),
        Field::Header(h) => match req.headers().get(h) {
            Some(v) => escape_into(out, v.as_bytes()),
            None => out.push('-'),
        },
        // late fields (`Field::is_late`) are not in early runs
        _ => {}
    }
}

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
        res.map(|inner| AccessLogBody {
            inner,
            guard: Guard(Some(entry)),
        })
    }

    /// No response: the line is written now, with status 500.
    pub fn fail(self) {
        let mut entry = self.0;
        entry.status = StatusCode::INTERNAL_SERVER_ERROR;
        entry.write();
    }
}

/// The service made by [`AccessLogLayer`].
#[derive(Clone)]
pub struct AccessLog<S> {
    inner: S,
    logger: AccessLogger,
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

/// Run `f` with this thread's scratch space (a fresh one when it is in use: a sink that
/// logs from inside its `write`).
fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = const {
            RefCell::new(Scratch {
                line: String::new(),
                time: TimeCache::new(),
                client: ClientCache::new(),
                spare: Vec::new(),
            })
        };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch {
            line: String::new(),
            time: TimeCache::new(),
            client: ClientCache::new(),
            spare: Vec::new(),
        }),
    })
}

impl Entry {
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

    fn format_into(&self, out: &mut String, client: &mut ClientCache) {
        let mut run = 0;
        for part in &self.shared.format.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Early(_) => {
                    out.push_str(self.early.run(run));
                    run += 1;
                }
                Part::Late(f) => self.late_field(out, f, client),
            }
        }
    }

    fn late_field(&self, out: &mut String, f: &Field, client: &mut ClientCache) {
        let elapsed = || self.start.map(|s| s.elapsed()).unwrap_or_default();
        match f {
            Field::RemoteAddr => match self.remote {
                Some(ip) => out.push_str(client.get(ip)),
                None => out.push('-'),
            },
            Field::RemoteUser => match &self.user {
                Some(u) => escape_str(out, u),
                None => out.push('-'),
            },
            Field::Status => out.push_str(self.status.as_str()),
            Field::Bytes => {
                if self.bytes == 0 {
                    out.push('-');
                } else {
                    push_u64(out, self.bytes);
                }
            }
            Field::DurationSecs => {
                let _ = write!(out, "{:.6}", elapsed().as_secs_f64());
            }
            Field::DurationMs => {
                let _ = write!(out, "{}", elapsed().as_millis());
            }
            Field::DurationUs => {
                let _ = write!(out, "{}", elapsed().as_micros());
            }
            // early fields were rendered when the request started
            _ => {}
        }
    }
}

/// The decimal digits of `n`, as `Display` writes them.
fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `a.b.c.d`, as `Display` writes it, without the formatting machinery.
fn push_ipv4(out: &mut String, ip: std::net::Ipv4Addr) {
    let [a, b, c, d] = ip.octets();
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(a));
    out.push('.');
    out.push_str(buf.format(b));
    out.push('.');
    out.push_str(buf.format(c));
    out.push('.');
    out.push_str(buf.format(d));
}

/// Apache's escaping of request-supplied text: `"` and `\` get a backslash, bytes outside
/// printable ASCII become `\xHH`.
fn escape_into(out: &mut String, s: &[u8]) {
    if all_plain(s) {
        // all ASCII printable: valid UTF-8
        out.push_str(std::str::from_utf8(s).unwrap_or(""));
        return;
    }
    escape_bytes(out, s);
}

/// [`escape_into`] for text that is already a `str` (no second UTF-8 check).
fn escape_str(out: &mut String, s: &str) {
    if all_plain(s.as_bytes()) {
        out.push_str(s);
    } else {
        escape_bytes(out, s.as_bytes());
    }
}

/// Every byte is [`plain`]: eight at a time (paths, user agents and referers are long, and
/// nearly always plain).
fn all_plain(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // some byte of `v` is zero
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let w = match <[u8; 8]>::try_from(chunk) {
            Ok(b) => u64::from_ne_bytes(b),
            Err(_) => return chunk.iter().all(|&b| plain(b)),
        };
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0; // a byte < 0x20
        let high = (w.wrapping_add(ONES) | w) & HIGH != 0; // a byte > 0x7e
        if control || high || has_zero(w ^ (ONES * 0x22)) || has_zero(w ^ (ONES * 0x5c)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| plain(b))
}

/// A byte Apache writes as it is.
fn plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// Printable ASCII but `"` and `\\`, by byte.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

fn escape_bytes(out: &mut String, s: &[u8]) {
    for &b in s {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// A thread's line buffer, time stamp and spare buffers for early text, reused for every
/// line.
struct Scratch {
    line: String,
    time: TimeCache,
    client: ClientCache,
    spare: Vec<String>,
}

/// The text of the last client address written on this thread: a client sends its requests
/// in a row, and behind a reverse proxy it is always the same one.
struct ClientCache {
    ip: Option<IpAddr>,
    text: String,
}

impl ClientCache {
    const fn new() -> ClientCache {
        ClientCache {
            ip: None,
            text: String::new(),
        }
    }

    fn get(&mut self, ip: IpAddr) -> &str {
        if self.ip != Some(ip) {
            self.text.clear();
            match ip {
                IpAddr::V4(v4) => push_ipv4(&mut self.text, v4),
                IpAddr::V6(v6) => {
                    let _ = write!(self.text, "{v6}");
                }
            }
            self.ip = Some(ip);
        }
        &self.text
    }
}

/// Early-text buffers kept per thread (requests in flight started on it, at most).
const SPARE_BUFFERS: usize = 64;

/// The Apache time stamp of the last second asked for.
struct TimeCache {
    secs: i64,
    text: String,
}

impl TimeCache {
    const fn new() -> TimeCache {
        TimeCache {
            secs: i64::MIN,
            text: String::new(),
        }
    }

    /// The time stamp of `t` (local time), formatted once per second.
    fn get(&mut self, t: SystemTime) -> &str {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if self.secs != secs {
            self.text = format_time(secs);
            self.secs = secs;
        }
        &self.text
    }
}

fn format_time(secs: i64) -> String {
    use chrono::TimeZone as _;
    match chrono::Local.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%d/%b/%Y:%H:%M:%S %z").to_string()
        }
        chrono::LocalResult::None => "-".to_string(),
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use http_body_util::{BodyExt, Full, StreamBody};
    use std::convert::Infallible;
    use std::sync::Mutex;
    use tower::ServiceExt;

    #[test]
    fn ipv4_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.99.100",
            "255.255.255.255",
            "1.9.10.199",
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            let mut out = String::new();
            push_ipv4(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
        for n in [1u64, 9, 10, 4096, 1_048_576, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[derive(Default)]
    struct Lines(Mutex<Vec<String>>);
    impl AccessLogSink for Lines {
        fn write(&self, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
    }

    fn req(uri: &str) -> http::request::Builder {
        Request::builder().uri(uri)
    }

    #[test]
    fn format_parsing() {
        let f = LogFormat::parse("%(status)s %%(x) %(bytes)d %(HTTP_X_REQUEST_ID)s").unwrap();
        assert_eq!(f.parts.len(), 4);
        // the status and bytes are late; the header and the text between are one early run
        assert_eq!(f.early_runs, 1);
        assert!(
            matches!(&f.parts[..], [Part::Late(Field::Status), Part::Lit(l), Part::Late(Field::Bytes), Part::Early(_)] if l == " %(x) ")
        );
        let combined = LogFormat::default();
        assert_eq!(combined.early_runs, 2);
        assert_eq!(combined.parts.len(), 8);
        assert!(LogFormat::parse("%(nope)s")
            .unwrap_err()
            .contains("unknown field %(nope)s"));
        assert!(LogFormat::parse("%(status)").is_err());
        assert!(LogFormat::parse("%(status").is_err());
        assert!(LogFormat::parse("100%").is_err());
        assert!(LogFormat::parse("%s").is_err());
        assert!(!LogFormat::default().parts.is_empty());
    }

    #[test]
    fn time_is_apache_style() {
        let t = format_time(0);
        assert_eq!(t.len(), "01/Jan/1970:00:00:00 +0000".len(), "{t}");
        assert!(t.contains("/19"), "{t}");
        let z = &t[t.len() - 5..];
        assert!(z.starts_with('+') || z.starts_with('-'), "{t}");
    }

    #[tokio::test]
    async fn combined_line_after_streamed_body() {
        let lines = Arc::new(Lines::default());
        let layer = AccessLogLayer::new(LogFormat::default(), lines.clone());
        let svc = tower::service_fn(|_req: Request<()>| async {
            let chunks = vec![
                Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello "))),
                Ok(Frame::data(Bytes::from_static(b"world"))),
            ];
            let mut res = Response::new(StreamBody::new(futures_util::stream::iter(chunks)));
            res.extensions_mut().insert(RemoteUser("alice".into()));
            *res.status_mut() = StatusCode::CREATED;
            Ok::<_, Infallible>(res)
        });
        let mut r = req("/a%20b/c?x=1")
            .header("user-agent", "UA \"q\"")
            .body(())
            .unwrap();
        r.extensions_mut()
            .insert(RemoteAddr("1.2.3.4:5".parse().unwrap()));
        r.extensions_mut().insert(MountPath("/maps".into()));
        let res = layer.layer(svc).oneshot(r).await.unwrap();
        assert!(
            lines.0.lock().unwrap().is_empty(),
            "written before the body"
        );
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hello world");
        let l = lines.0.lock().unwrap().clone();
        assert_eq!(l.len(), 1);
        let line = &l[0];
        assert!(line.starts_with("1.2.3.4 - alice ["), "{line}");
        assert!(
            line.ends_with("] \"GET /maps/a%20b/c?x=1 HTTP/1.1\" 201 11 \"-\" \"UA \\\"q\\\"\""),
            "{line}"
        );
    }

    #[tokio::test]
    async fn dropped_body_and_empty_body_are_logged_once() {
        let lines = Arc::new(Lines::default());
        let fmt = LogFormat::parse("%(REMOTE_ADDR)s %(status)s %(bytes)s %(duration_ms)s").unwrap();
        let layer = AccessLogLayer::new(fmt, lines.clone());
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"abc"))))
        });
        let res = layer
            .layer(svc)
            .oneshot(req("/").body(()).unwrap())
            .await
            .unwrap();
        drop(res);
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::new())))
        });
        let res = layer
            .layer(svc)
            .oneshot(req("/").body(()).unwrap())
            .await
            .unwrap();
        let _ = res.into_body().collect().await.unwrap();
        let l = lines.0.lock().unwrap().clone();
        assert_eq!(l.len(), 2, "{l:?}");
        assert!(l[0].starts_with("- 200 - "), "{:?}", l);
        assert!(l[1].starts_with("- 200 - "), "{:?}", l);
    }

    struct TestLogger(Mutex<Vec<(String, log::Level, String)>>);
    impl log::Log for TestLogger {
        fn enabled(&self, md: &log::Metadata<'_>) -> bool {
            md.target() == "wsgi.on"
        }
        fn log(&self, r: &log::Record<'_>) {
            if self.enabled(r.metadata()) {
                let entry = (r.target().to_string(), r.level(), r.args().to_string());
                self.0.lock().unwrap().push(entry);
            }
        }
        fn flush(&self) {}
    }
    static LOGGER: TestLogger = TestLogger(Mutex::new(Vec::new()));

    #[test]
    fn log_sink_writes_through_the_log_crate() {
        let _ = log::set_logger(&LOGGER);
        log::set_max_level(log::LevelFilter::Trace);
        LogSink::new("wsgi.on", log::Level::Warn).write("line one");
        LogSink::new("wsgi.off", log::Level::Info).write("not taken");
        let got = LOGGER.0.lock().unwrap().clone();
        assert_eq!(
            got,
            vec![(
                "wsgi.on".to_string(),
                log::Level::Warn,
                "line one".to_string()
            )]
        );
    }

    /// Early and late fields interleaved, more early runs than are kept inline, a mount path,
    /// a header sent twice (the first counts), and escaping in the early text.
    #[tokio::test]
    async fn many_runs_in_format_order() {
        let lines = Arc::new(Lines::default());
        let fmt = LogFormat::parse(
            "%(SCRIPT_NAME)s|%(PATH_INFO)s|%(QUERY_STRING)s %(status)s %(HTTP_X_A)s \
             %(REMOTE_USER)s %(HTTP_X_B)s %(bytes)s [%(HTTP_X_C)s] %(REMOTE_ADDR)s \
             %(REQUEST_METHOD)s %(HTTP_VERSION)s %(duration_us)s end",
        )
        .unwrap();
        assert_eq!(fmt.early_runs, 5);
        let layer = AccessLogLayer::new(fmt, lines.clone());
        let svc = tower::service_fn(|_req: Request<()>| async {
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from_static(b"abc"))))
        });
        let mut r = req("/p%20q?x=1")
            .header("x-b", "say \"hi\"")
            .header("x-a", "one")
            .header("x-a", "two")
            .header("x-c", "t\u{e9}")
            .body(())
            .unwrap();
        r.extensions_mut().insert(MountPath("/m".into()));
        r.extensions_mut()
            .insert(RemoteAddr("[::1]:5".parse().unwrap()));
        let res = layer.layer(svc).oneshot(r).await.unwrap();
        let _ = res.into_body().collect().await.unwrap();
        let l = lines.0.lock().unwrap().clone();
        let (head, us) = l[0]
            .rsplit_once(' ')
            .map(|(h, _)| h)
            .unwrap()
            .rsplit_once(' ')
            .unwrap();
        assert_eq!(
            head,
            "/m|/p%20q|x=1 200 one - say \\\"hi\\\" 3 [t\\xc3\\xa9] ::1 GET HTTP/1.1"
        );
        assert!(us.parse::<u64>().is_ok(), "{}", l[0]);
        assert!(l[0].ends_with(" end"), "{}", l[0]);
    }

    #[test]
    fn client_text_follows_the_address() {
        let mut c = ClientCache::new();
        for ip in [
            "10.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.100.255",
            "2001:db8::7",
        ] {
            assert_eq!(c.get(ip.parse().unwrap()), ip);
        }
    }

    #[test]
    fn eight_at_a_time_agrees_with_the_table() {
        let mut buf = *b"0123456789abcdefghijklmnopq";
        assert!(all_plain(&buf));
        for b in 0..=255u8 {
            for pos in 0..buf.len() {
                let mut t = buf;
                t[pos] = b;
                for len in [pos + 1, buf.len()] {
                    assert_eq!(
                        all_plain(&t[..len]),
                        plain(b),
                        "byte {b:#x} at {pos} of {len}"
                    );
                }
            }
        }
        // neighbours that could carry into each other
        buf[..8].copy_from_slice(&[0xff, 0x20, 0x7e, 0x00, 0x21, 0x7f, 0x1f, 0x5b]);
        assert!(!all_plain(&buf));
        assert!(all_plain(b"~~~~~~~~ !#[]}{z"));
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_into(&mut s, b"a\"b\\c\x01\xff");
        assert_eq!(s, "a\\\"b\\\\c\\x01\\xff");
    }
}
