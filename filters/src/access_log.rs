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
use http::uri::PathAndQuery;
use http::{HeaderName, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use crate::environ::{MountPath, RemoteAddr, RemoteUser};

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
    segments: Vec<Segment>,
    needs_headers: bool,
    /// A duration field: requests read the monotonic clock when they start.
    needs_duration: bool,
}

impl Default for LogFormat {
    fn default() -> Self {
        // the constant is known to parse
        LogFormat::parse(COMBINED).unwrap_or(LogFormat {
            segments: Vec::new(),
            needs_headers: false,
            needs_duration: false,
        })
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
        let needs_headers = segments
            .iter()
            .any(|s| matches!(s, Segment::Field(Field::Header(_))));
        let needs_duration = segments.iter().any(|s| {
            matches!(
                s,
                Segment::Field(Field::DurationSecs | Field::DurationMs | Field::DurationUs)
            )
        });
        Ok(LogFormat {
            segments,
            needs_headers,
            needs_duration,
        })
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
        let mut headers = HeaderValues::default();
        if format.needs_headers {
            let names = format.segments.iter().filter_map(|s| match s {
                Segment::Field(Field::Header(h)) => Some(h),
                _ => None,
            });
            for (i, h) in names.enumerate() {
                headers.push(i, req.headers().get(h).cloned());
            }
        }
        LogEntry(Entry {
            shared: Arc::clone(&self.shared),
            start: format.needs_duration.then(Instant::now),
            wall: SystemTime::now(),
            remote: crate::environ::remote_ip(req),
            user: req.extensions().get::<RemoteUser>().map(|u| u.0.clone()),
            method: req.method().clone(),
            target: req.uri().path_and_query().cloned(),
            mount: req
                .extensions()
                .get::<MountPath>()
                .filter(|m| !m.0.is_empty())
                .map(|m| m.0.clone()),
            version: req.version(),
            headers,
            status: StatusCode::OK,
            bytes: 0,
        })
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

/// The request headers the format names, in format order: the first two inline (the
/// combined format's referer and user agent), any further ones in a `Vec`.
#[derive(Default)]
struct HeaderValues {
    inline: [Option<HeaderValue>; 2],
    more: Vec<Option<HeaderValue>>,
}

impl HeaderValues {
    fn push(&mut self, i: usize, v: Option<HeaderValue>) {
        match self.inline.get_mut(i) {
            Some(slot) => *slot = v,
            None => self.more.push(v),
        }
    }

    fn get(&self, i: usize) -> Option<&HeaderValue> {
        match self.inline.get(i) {
            Some(v) => v.as_ref(),
            None => self
                .more
                .get(i - self.inline.len())
                .and_then(Option::as_ref),
        }
    }
}

/// What is known about a request when it starts.
struct Entry {
    shared: Arc<Shared>,
    /// When the request started, for duration fields (`None` without them).
    start: Option<Instant>,
    wall: SystemTime,
    remote: Option<IpAddr>,
    user: Option<String>,
    method: Method,
    /// The request target's path and query (an absolute-form target's scheme and host are
    /// not logged).
    target: Option<PathAndQuery>,
    mount: Option<String>,
    version: Version,
    headers: HeaderValues,
    status: StatusCode,
    bytes: u64,
}

impl Entry {
    /// The request path, as `Uri::path` gives it (empty for `CONNECT host:port`).
    fn path(&self) -> &str {
        self.target.as_ref().map_or("", PathAndQuery::path)
    }

    fn write(&self) {
        thread_local! {
            static SCRATCH: RefCell<Scratch> = const {
                RefCell::new(Scratch { line: String::new(), time: TimeCache::new() })
            };
        }
        // One buffer per thread, reused for every line (a sink that logs from inside its
        // `write` would find it borrowed: that line gets a buffer of its own).
        SCRATCH.with(|cell| match cell.try_borrow_mut() {
            Ok(mut scratch) => {
                let Scratch { line, time } = &mut *scratch;
                line.clear();
                self.format_into(line, time);
                self.shared.sink.write(line);
            }
            Err(_) => {
                let mut out = String::with_capacity(192);
                self.format_into(&mut out, &mut TimeCache::new());
                self.shared.sink.write(&out);
            }
        });
    }

    fn format_into(&self, out: &mut String, time: &mut TimeCache) {
        // only the duration fields need the clock
        let mut elapsed = None;
        let mut elapsed =
            || *elapsed.get_or_insert_with(|| self.start.map(|s| s.elapsed()).unwrap_or_default());
        let mut header_idx = 0;
        for seg in &self.shared.format.segments {
            match seg {
                Segment::Lit(s) => out.push_str(s),
                Segment::Field(f) => match f {
                    Field::RemoteAddr => match self.remote {
                        Some(IpAddr::V4(ip)) => push_ipv4(out, ip),
                        Some(ip) => {
                            let _ = write!(out, "{ip}");
                        }
                        None => out.push('-'),
                    },
                    Field::RemoteUser => match &self.user {
                        Some(u) => escape_str(out, u),
                        None => out.push('-'),
                    },
                    Field::Time => out.push_str(time.get(self.wall)),
                    Field::Method => escape_str(out, self.method.as_str()),
                    Field::RequestUri => {
                        if let Some(m) = &self.mount {
                            escape_str(out, m);
                        }
                        escape_str(out, self.path());
                        if let Some(q) = self.target.as_ref().and_then(PathAndQuery::query) {
                            out.push('?');
                            escape_str(out, q);
                        }
                    }
                    Field::ScriptName => {
                        if let Some(m) = &self.mount {
                            escape_str(out, m);
                        }
                    }
                    Field::PathInfo => escape_str(out, self.path()),
                    Field::QueryString => escape_str(
                        out,
                        self.target
                            .as_ref()
                            .and_then(PathAndQuery::query)
                            .unwrap_or(""),
                    ),
                    Field::HttpVersion => out.push_str(match self.version {
                        Version::HTTP_09 => "HTTP/0.9",
                        Version::HTTP_10 => "HTTP/1.0",
                        Version::HTTP_11 => "HTTP/1.1",
                        Version::HTTP_2 => "HTTP/2.0",
                        Version::HTTP_3 => "HTTP/3.0",
                        _ => "HTTP/?",
                    }),
                    Field::Status => out.push_str(self.status.as_str()),
                    Field::Bytes => {
                        if self.bytes == 0 {
                            out.push('-');
                        } else {
                            push_u64(out, self.bytes);
                        }
                    }
                    Field::Header(_) => {
                        match self.headers.get(header_idx) {
                            Some(v) => escape_into(out, v.as_bytes()),
                            None => out.push('-'),
                        }
                        header_idx += 1;
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
                },
            }
        }
    }
}

/// The decimal digits of `n`, as `Display` writes them.
fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

/// `a.b.c.d`, as `Display` writes it, without the formatting machinery.
fn push_ipv4(out: &mut String, ip: std::net::Ipv4Addr) {
    for (i, o) in ip.octets().into_iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        if o >= 100 {
            out.push(char::from(b'0' + o / 100));
        }
        if o >= 10 {
            out.push(char::from(b'0' + o / 10 % 10));
        }
        out.push(char::from(b'0' + o % 10));
    }
}

/// Apache's escaping of request-supplied text: `"` and `\` get a backslash, bytes outside
/// printable ASCII become `\xHH`.
fn escape_into(out: &mut String, s: &[u8]) {
    if s.iter().all(|&b| plain(b)) {
        // all ASCII printable: valid UTF-8
        out.push_str(std::str::from_utf8(s).unwrap_or(""));
        return;
    }
    escape_bytes(out, s);
}

/// [`escape_into`] for text that is already a `str` (no second UTF-8 check).
fn escape_str(out: &mut String, s: &str) {
    if s.bytes().all(plain) {
        out.push_str(s);
    } else {
        escape_bytes(out, s.as_bytes());
    }
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

/// A thread's line buffer and time stamp, reused for every line.
struct Scratch {
    line: String,
    time: TimeCache,
}

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
        if let Some(e) = &self.0 {
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
                if let Some(e) = &this.guard.0 {
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
        assert_eq!(f.segments.len(), 5);
        assert!(f.needs_headers);
        assert!(LogFormat::parse("%(nope)s")
            .unwrap_err()
            .contains("unknown field %(nope)s"));
        assert!(LogFormat::parse("%(status)").is_err());
        assert!(LogFormat::parse("%(status").is_err());
        assert!(LogFormat::parse("100%").is_err());
        assert!(LogFormat::parse("%s").is_err());
        assert!(!LogFormat::default().segments.is_empty());
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

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_into(&mut s, b"a\"b\\c\x01\xff");
        assert_eq!(s, "a\\\"b\\\\c\\x01\\xff");
    }
}
