//! One FastCGI connection: a reader that routes records to requests, one task per request,
//! and a writer that owns the socket's write half.
//!
//! ```text
//! socket ─► reader ─┬─ PARAMS (collected until the empty record) ─► request task ─┐
//!                   ├─ STDIN ─► bounded body channel ─► the app reads it           │
//!                   ├─ ABORT ─► cancels the request task (it sends END_REQUEST)    │
//!                   └─ GET_VALUES / unknown types ─► answered directly ────────────┤
//! socket ◄─ writer ◄── records (bounded queue: backpressure) ◄──────────────────────┘
//! ```
//!
//! Requests on one connection may be multiplexed; each is served concurrently. A request
//! task reports that it is done *before* it queues END_REQUEST, so the reader always knows an
//! id is free again by the time the web server can reuse it.
//!
//! What one connection may hold and how long it may dawdle ([`Limits`]):
//!
//! - PARAMS of one request: `max_params` bytes; more is answered 431 (the rest of its PARAMS
//!   is read and dropped). PARAMS buffered across the connection's requests:
//!   `conn_params` bytes; a request that would pass it is refused with `OVERLOADED`.
//! - STDIN queued for apps that have not read it yet: `conn_stdin` bytes (see `body.rs`).
//! - header time (`header_read_timeout`): from BEGIN_REQUEST to the end of its PARAMS, and
//!   from the accept (or the first byte of a record while no request is open) to the next
//!   BEGIN_REQUEST; idle time (`channel_timeout`): no request open, or a request waiting for
//!   STDIN, and nothing arrived for that long; send time (`send_timeout`): one write to the
//!   web server may not take longer. Each closes the connection.

use std::collections::HashMap;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::FutureExt;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::body::{BodyError, BodySender, StdinBody};
use super::cgi::{self, HeadInfo};
use super::record::{self, ProtocolError, Record};
use super::FcgiConnectionId;
use crate::app::{box_body, text_response, Body};
use crate::server::panic::{catch_panic, catch_sync};
use crate::server::SharedApp;

const TARGET: &str = "mapproxy_serve.server.fcgi";

/// Records queued for the writer before request tasks wait (each ≤ 64 KiB).
const WRITER_QUEUE: usize = 8;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

/// What every connection of one server shares.
pub(crate) struct Shared {
    /// The app; the current stack is taken per request.
    pub app: SharedApp,
    /// `maxChildren` / `maxThreads`: requests running at once across connections.
    pub limit: Option<Arc<Semaphore>>,
    /// Show panic messages in 500 bodies.
    pub debug: bool,
    /// Requests one connection may have open at once (`FCGI_MAX_REQS`).
    pub max_reqs_per_conn: usize,
    /// Reported as `FCGI_MAX_CONNS`.
    pub max_conns: usize,
    /// Reported as `FCGI_MAX_REQS`.
    pub max_reqs: usize,
    /// Buffers and timeouts of each connection.
    pub limits: Limits,
    /// Which CGI variables are believed (`trust_remote_user`).
    pub trust: cgi::Trust,
}

/// What one connection may buffer, and its timeouts (`None`: no limit).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// PARAMS bytes of one request, else 431.
    pub max_params: usize,
    /// PARAMS bytes buffered across a connection's requests, else `OVERLOADED`.
    pub conn_params: usize,
    /// STDIN bytes queued for apps across a connection's requests; the reader waits.
    pub conn_stdin: usize,
    pub header_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub send_timeout: Option<Duration>,
}

/// A message for the writer task.
enum Out {
    /// A whole encoded record.
    Record(Bytes),
    /// A record header and its content, written without copying the content.
    Chunk([u8; record::HEADER_LEN], Bytes),
    /// Flush and close the connection (`KEEP_CONN` was not set).
    Close,
}

/// The writer went away (peer closed, write error).
struct WriterGone;

/// State of one request id on the connection.
enum Slot {
    /// Collecting PARAMS (since BEGIN_REQUEST at `since`); `overflow`: more than
    /// `max_params` came, the rest is dropped and the answer is 431.
    Params {
        buf: BytesMut,
        keep_conn: bool,
        since: Instant,
        overflow: bool,
    },
    /// The request task runs; STDIN goes to `tx` until it ends.
    Running {
        gen: u64,
        tx: Option<BodySender>,
        abort: CancellationToken,
        expected: Option<u64>,
        received: u64,
        stdin_done: bool,
    },
}

/// Serve one connection until the peer closes it, a protocol error, `KEEP_CONN=0`, or
/// (after `shutdown`) until no request is left; `force` drops everything at once.
pub(crate) async fn serve_connection<R, W>(
    mut rd: R,
    wr: W,
    shared: Arc<Shared>,
    conn_id: u64,
    shutdown: CancellationToken,
    force: CancellationToken,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let limits = shared.limits;
    let (wtx, wrx) = mpsc::channel::<Out>(WRITER_QUEUE);
    let closed = CancellationToken::new();
    let mut writer = tokio::spawn(write_loop(wr, wrx, closed.clone(), limits.send_timeout));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(u16, u64)>();
    let tasks = TaskTracker::new();

    let mut conn = Conn {
        shared,
        conn_id,
        slots: HashMap::new(),
        next_gen: 0,
        wtx,
        done_tx,
        tasks: tasks.clone(),
        closed: closed.clone(),
        force: force.clone(),
        draining: shutdown.is_cancelled(),
        params_buffered: 0,
        stdin_budget: Arc::new(Semaphore::new(limits.conn_stdin)),
        had_request: false,
    };
    let mut buf = BytesMut::with_capacity(READ_CHUNK);
    // The header time of the connection itself: from the accept until the first request,
    // and from the first byte of a record while no request is open.
    let mut head_since = Some(Instant::now());
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);

    let clean = loop {
        // Handle every complete record already read.
        let mut failed = None;
        loop {
            match record::parse_record(&mut buf) {
                Ok(Some(rec)) => {
                    conn.free_done(&mut done_rx);
                    if let Err(e) = conn.handle(rec).await {
                        failed = Some(e);
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    failed = Some(e);
                    break;
                }
            }
        }
        if let Some(e) = failed {
            log::warn!(target: TARGET, "connection {conn_id}: closing: {e}");
            break false;
        }
        if conn.draining && conn.slots.is_empty() {
            break true;
        }
        if buf.capacity() - buf.len() < READ_CHUNK / 4 {
            buf.reserve(READ_CHUNK);
        }
        // Every pass is activity: something was read, or a request ended.
        let now = Instant::now();
        if conn.slots.is_empty() && (!buf.is_empty() || !conn.had_request) {
            head_since.get_or_insert(now);
        } else {
            head_since = None;
        }
        let deadline = conn.deadline(now, head_since);
        if let Some((at, _)) = deadline {
            timer.as_mut().reset(at);
        }
        tokio::select! {
            biased;
            _ = closed.cancelled() => break true,
            _ = force.cancelled() => break false,
            _ = &mut timer, if deadline.is_some() => {
                let why = deadline.map_or("", |d| d.1);
                log::info!(target: TARGET, "connection {conn_id}: closing: {why}");
                break conn.slots.is_empty();
            }
            Some((id, gen)) = done_rx.recv() => conn.free(id, gen),
            _ = shutdown.cancelled(), if !conn.draining => conn.draining = true,
            r = rd.read_buf(&mut buf) => match r {
                Ok(0) => {
                    if !buf.is_empty() {
                        log::debug!(target: TARGET, "connection {conn_id}: closed inside a record");
                    }
                    break true;
                }
                Ok(_) => {}
                Err(e) => {
                    log::debug!(target: TARGET, "connection {conn_id}: read error: {e}");
                    break true;
                }
            },
        }
    };

    // Requests still waiting for STDIN can never complete; others may still answer.
    for slot in conn.slots.values_mut() {
        if let Slot::Running {
            tx,
            abort,
            stdin_done,
            ..
        } = slot
        {
            if !clean || !*stdin_done {
                fail_body(tx, "connection closed before the request body was complete");
                abort.cancel();
            }
        }
    }
    drop(rd);
    tasks.close();
    // Every request task ends promptly once `force` is cancelled.
    tasks.wait().await;
    drop(conn);
    tokio::select! {
        _ = &mut writer => {}
        _ = force.cancelled() => writer.abort(),
    }
}

/// End a request body with an error (not a clean end: the app must not take a cut-off body
/// for a complete one).
fn fail_body(tx: &mut Option<BodySender>, why: &'static str) {
    if let Some(t) = tx.take() {
        let _ = t.try_send(Err(BodyError(why)));
    }
}

struct Conn {
    shared: Arc<Shared>,
    /// PARAMS bytes held by the requests in `Slot::Params`.
    params_buffered: usize,
    /// STDIN bytes that may be queued for apps (see `body.rs`).
    stdin_budget: Arc<Semaphore>,
    /// A BEGIN_REQUEST has come (the accept's header time is over).
    had_request: bool,
    conn_id: u64,
    slots: HashMap<u16, Slot>,
    next_gen: u64,
    wtx: mpsc::Sender<Out>,
    done_tx: mpsc::UnboundedSender<(u16, u64)>,
    tasks: TaskTracker,
    closed: CancellationToken,
    force: CancellationToken,
    draining: bool,
}

impl Conn {
    /// When the connection expires if nothing happens, and why: the earliest header time
    /// (PARAMS incomplete, or no request yet), or the idle time when no request is open or
    /// one waits for STDIN.
    fn deadline(
        &self,
        now: Instant,
        head_since: Option<Instant>,
    ) -> Option<(Instant, &'static str)> {
        let limits = &self.shared.limits;
        let mut out: Option<(Instant, &'static str)> = None;
        let mut consider = |at: Instant, why| {
            if out.is_none_or(|(o, _)| at < o) {
                out = Some((at, why));
            }
        };
        if let Some(t) = limits.header_timeout {
            let params = self.slots.values().filter_map(|s| match s {
                Slot::Params { since, .. } => Some(*since),
                Slot::Running { .. } => None,
            });
            if let Some(since) = params.chain(head_since).min() {
                consider(since + t, "header_read_timeout");
            }
        }
        if let Some(t) = limits.idle_timeout {
            let waiting = self.slots.values().any(|s| {
                matches!(
                    s,
                    Slot::Running {
                        stdin_done: false,
                        ..
                    }
                )
            });
            if self.slots.is_empty() || waiting {
                consider(now + t, "channel_timeout");
            }
        }
        out
    }

    fn free(&mut self, id: u16, gen: u64) {
        if matches!(self.slots.get(&id), Some(Slot::Running { gen: g, .. }) if *g == gen) {
            self.slots.remove(&id);
        }
    }

    fn free_done(&mut self, done_rx: &mut mpsc::UnboundedReceiver<(u16, u64)>) {
        while let Ok((id, gen)) = done_rx.try_recv() {
            self.free(id, gen);
        }
    }

    async fn send(&self, out: Out) -> Result<(), ProtocolError> {
        self.wtx
            .send(out)
            .await
            .map_err(|_| ProtocolError("connection closed while writing".into()))
    }

    async fn handle(&mut self, rec: Record) -> Result<(), ProtocolError> {
        let id = rec.request_id;
        if id == 0 {
            return self.management(rec).await;
        }
        match rec.kind {
            record::BEGIN_REQUEST => self.begin(id, &rec.content).await,
            record::ABORT_REQUEST => self.abort(id).await,
            record::PARAMS => self.params(id, rec.content).await,
            record::STDIN => self.stdin(id, rec.content).await,
            record::DATA => Ok(()),
            record::END_REQUEST
            | record::STDOUT
            | record::STDERR
            | record::GET_VALUES
            | record::GET_VALUES_RESULT
            | record::UNKNOWN_TYPE => {
                log::debug!(
                    target: TARGET,
                    "connection {}: ignoring record type {} for request {id}",
                    self.conn_id,
                    rec.kind
                );
                Ok(())
            }
            other => self.send(Out::Record(record::unknown_type(other))).await,
        }
    }

    async fn management(&mut self, rec: Record) -> Result<(), ProtocolError> {
        if rec.kind != record::GET_VALUES {
            return self.send(Out::Record(record::unknown_type(rec.kind))).await;
        }
        let asked = record::parse_pairs(&rec.content)?;
        let mut out = BytesMut::new();
        for (name, _) in asked {
            let value = match &name[..] {
                b"FCGI_MAX_CONNS" => self.shared.max_conns.to_string(),
                b"FCGI_MAX_REQS" => self.shared.max_reqs.to_string(),
                b"FCGI_MPXS_CONNS" => "1".to_string(),
                _ => continue,
            };
            if out.len() + name.len() + value.len() + 8 > record::MAX_CONTENT {
                break;
            }
            record::put_pair(&mut out, &name, value.as_bytes());
        }
        self.send(Out::Record(record::encode(
            record::GET_VALUES_RESULT,
            0,
            &out,
        )))
        .await
    }

    async fn end_now(&self, id: u16, status: u8, keep_conn: bool) -> Result<(), ProtocolError> {
        self.send(Out::Record(record::end_request(id, 0, status)))
            .await?;
        if !keep_conn {
            self.send(Out::Close).await?;
        }
        Ok(())
    }

    async fn begin(&mut self, id: u16, content: &[u8]) -> Result<(), ProtocolError> {
        let begin = record::parse_begin(content)?;
        if self.slots.contains_key(&id) {
            return Err(ProtocolError(format!(
                "BEGIN_REQUEST for request {id}, which is still active"
            )));
        }
        if begin.role != record::ROLE_RESPONDER {
            log::debug!(target: TARGET, "refusing FastCGI role {}", begin.role);
            return self
                .end_now(id, record::UNKNOWN_ROLE, begin.keep_conn)
                .await;
        }
        if self.draining || self.slots.len() >= self.shared.max_reqs_per_conn {
            return self.end_now(id, record::OVERLOADED, begin.keep_conn).await;
        }
        self.had_request = true;
        self.slots.insert(
            id,
            Slot::Params {
                buf: BytesMut::new(),
                keep_conn: begin.keep_conn,
                since: Instant::now(),
                overflow: false,
            },
        );
        Ok(())
    }

    async fn abort(&mut self, id: u16) -> Result<(), ProtocolError> {
        match self.slots.get_mut(&id) {
            Some(Slot::Params { keep_conn, buf, .. }) => {
                let keep_conn = *keep_conn;
                self.params_buffered -= buf.len();
                self.slots.remove(&id);
                self.end_now(id, record::REQUEST_COMPLETE, keep_conn).await
            }
            Some(Slot::Running { abort, tx, .. }) => {
                abort.cancel();
                fail_body(tx, "request aborted");
                Ok(())
            }
            None => Ok(()),
        }
    }

    async fn params(&mut self, id: u16, content: Bytes) -> Result<(), ProtocolError> {
        let limits = self.shared.limits;
        let Some(Slot::Params {
            buf,
            keep_conn,
            overflow,
            ..
        }) = self.slots.get_mut(&id)
        else {
            return Ok(());
        };
        if !content.is_empty() {
            if *overflow {
                return Ok(());
            }
            if buf.len() + content.len() > limits.max_params {
                log::info!(
                    target: TARGET,
                    "connection {}: request {id}: more than {} bytes of PARAMS: 431",
                    self.conn_id,
                    limits.max_params
                );
                *overflow = true;
                self.params_buffered -= buf.len();
                *buf = BytesMut::new();
                return Ok(());
            }
            if self.params_buffered + content.len() > limits.conn_params {
                let keep_conn = *keep_conn;
                self.params_buffered -= buf.len();
                self.slots.remove(&id);
                log::warn!(
                    target: TARGET,
                    "connection {}: request {id}: PARAMS of open requests pass {} bytes: OVERLOADED",
                    self.conn_id,
                    limits.conn_params
                );
                return self.end_now(id, record::OVERLOADED, keep_conn).await;
            }
            buf.extend_from_slice(&content);
            self.params_buffered += content.len();
            return Ok(());
        }
        let keep_conn = *keep_conn;
        let overflow = *overflow;
        let buf = std::mem::take(buf);
        self.params_buffered -= buf.len();
        let built = if overflow {
            Err(None)
        } else {
            cgi::build_request_with(&record::parse_pairs(&buf)?, self.shared.trust).map_err(Some)
        };
        drop(buf);
        let gen = self.next_gen;
        self.next_gen += 1;
        let abort = CancellationToken::new();
        let (work, tx, expected, head_request) = match built {
            Ok(cgi_req) => {
                let head_request = cgi_req.request.method() == http::Method::HEAD;
                let (tx, body) = match cgi_req.content_length {
                    Some(0) => (None, StdinBody::empty()),
                    n => {
                        let (tx, body) = StdinBody::channel(n);
                        (Some(tx), body)
                    }
                };
                let mut req = cgi_req.request.map(|()| box_body(body));
                req.extensions_mut().insert(FcgiConnectionId(self.conn_id));
                (Work::App(req), tx, cgi_req.content_length, head_request)
            }
            Err(None) => {
                let res = text_response(
                    StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                    "text/plain; charset=utf-8",
                    "Request header fields too large\n",
                );
                (Work::Fixed(res), None, None, false)
            }
            Err(Some(cgi::BadRequest(msg))) => {
                log::info!(target: TARGET, "bad request: {msg}");
                let res = text_response(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    format!("Bad Request: {msg}\n"),
                );
                (Work::Fixed(res), None, None, false)
            }
        };
        self.slots.insert(
            id,
            Slot::Running {
                gen,
                tx,
                abort: abort.clone(),
                expected,
                received: 0,
                stdin_done: false,
            },
        );
        let rc = ReqCtx {
            shared: self.shared.clone(),
            id,
            gen,
            keep_conn,
            head_request,
            writer: self.wtx.clone(),
            done: self.done_tx.clone(),
            abort,
            force: self.force.clone(),
        };
        self.tasks.spawn(run_request(rc, work));
        Ok(())
    }

    async fn stdin(&mut self, id: u16, content: Bytes) -> Result<(), ProtocolError> {
        let slot = match self.slots.get_mut(&id) {
            None => return Ok(()),
            Some(Slot::Params { .. }) => {
                return Err(ProtocolError(format!(
                    "request {id}: STDIN before the end of PARAMS"
                )))
            }
            Some(Slot::Running {
                tx,
                expected,
                received,
                stdin_done,
                ..
            }) => (tx, *expected, received, stdin_done),
        };
        let (tx, expected, received, stdin_done) = slot;
        if *stdin_done {
            return Ok(());
        }
        if content.is_empty() {
            *stdin_done = true;
            if let (Some(t), Some(n)) = (tx.take(), expected) {
                if *received < n {
                    let _ = t
                        .send(Err(BodyError("request body shorter than CONTENT_LENGTH")))
                        .await;
                }
            }
            return Ok(());
        }
        *received += content.len() as u64;
        if expected.is_some_and(|n| *received > n) {
            fail_body(tx, "request body longer than CONTENT_LENGTH");
            return Ok(());
        }
        let Some(t) = tx.as_ref() else {
            return Ok(()); // the app is not reading: drain
        };
        let budget = self.stdin_budget.clone();
        let n = u32::try_from(content.len()).unwrap_or(u32::MAX);
        let queue = async move {
            let share = budget.acquire_many_owned(n).await.ok();
            t.send(Ok((content, share))).await
        };
        let sent = tokio::select! {
            r = queue => r.is_ok(),
            _ = self.closed.cancelled() => false,
            _ = self.force.cancelled() => false,
        };
        if !sent {
            tx.take();
        }
        Ok(())
    }
}

/// What a request task answers with.
enum Work {
    /// Call the app.
    App(Request<Body>),
    /// A response made without the app (400 for unusable CGI variables).
    Fixed(Response<Body>),
}

struct ReqCtx {
    shared: Arc<Shared>,
    id: u16,
    gen: u64,
    keep_conn: bool,
    head_request: bool,
    writer: mpsc::Sender<Out>,
    done: mpsc::UnboundedSender<(u16, u64)>,
    abort: CancellationToken,
    force: CancellationToken,
}

async fn run_request(rc: ReqCtx, work: Work) {
    let outcome = tokio::select! {
        biased;
        _ = rc.force.cancelled() => Err(WriterGone),
        _ = rc.abort.cancelled() => Ok(0),
        r = respond(&rc, work) => r,
    };
    // Tell the reader first: once END_REQUEST is out, the web server may reuse the id.
    let _ = rc.done.send((rc.id, rc.gen));
    let Ok(app_status) = outcome else {
        return;
    };
    let end = record::end_request(rc.id, app_status, record::REQUEST_COMPLETE);
    let finish = async {
        if rc.writer.send(Out::Record(end)).await.is_ok() && !rc.keep_conn {
            let _ = rc.writer.send(Out::Close).await;
        }
    };
    tokio::select! {
        _ = finish => {}
        _ = rc.force.cancelled() => {}
    }
}

async fn respond(rc: &ReqCtx, work: Work) -> Result<u32, WriterGone> {
    let _permit = match &rc.shared.limit {
        Some(sem) => Some(sem.clone().acquire_owned().await.map_err(|_| WriterGone)?),
        None => None,
    };
    let res = match work {
        Work::Fixed(res) => res,
        Work::App(req) => call_app(&rc.shared, req).await,
    };
    let (head, body_allowed) = cgi::response_head(
        &res,
        HeadInfo {
            head_request: rc.head_request,
        },
    );
    let mut app_status = 0;
    stdout(rc, head).await?;
    if body_allowed {
        let mut body = res.into_body();
        loop {
            let frame = match AssertUnwindSafe(body.frame()).catch_unwind().await {
                Ok(None) => break,
                Ok(Some(Ok(frame))) => frame,
                Ok(Some(Err(e))) => {
                    log::error!(target: TARGET, "response body failed: {e}");
                    app_status = 1;
                    break;
                }
                Err(_) => {
                    log::error!(target: TARGET, "the app panicked while streaming a response");
                    app_status = 1;
                    break;
                }
            };
            if let Ok(data) = frame.into_data() {
                stdout(rc, data).await?;
            }
        }
    }
    // The empty STDOUT record ends the stream.
    rc.writer
        .send(Out::Record(record::encode(record::STDOUT, rc.id, b"")))
        .await
        .map_err(|_| WriterGone)?;
    Ok(app_status)
}

/// Send `data` as STDOUT records of at most 65,535 bytes (never an empty one).
async fn stdout(rc: &ReqCtx, mut data: Bytes) -> Result<(), WriterGone> {
    while !data.is_empty() {
        let part = data.split_to(data.len().min(record::MAX_CONTENT));
        let head = record::header(record::STDOUT, rc.id, part.len());
        rc.writer
            .send(Out::Chunk(head, part))
            .await
            .map_err(|_| WriterGone)?;
    }
    Ok(())
}

/// Call the current app; a panic (in its `call` or its future) becomes 500 for this request
/// only.
fn call_app(shared: &Shared, req: Request<Body>) -> impl Future<Output = Response<Body>> {
    let debug = shared.debug;
    let fut = catch_sync(|| shared.app.call(req));
    async move {
        let res = match fut {
            Ok(fut) => catch_panic(fut).await,
            Err(info) => Err(info),
        };
        res.unwrap_or_else(|info| crate::server::panic::response(&info, debug, TARGET))
    }
}

/// Own the write half: write queued records, flush when the queue runs dry.
/// Each write to the web server must finish within `send_timeout` (a web server that does
/// not read is given up on).
async fn write_loop<W: AsyncWrite + Unpin>(
    wr: W,
    mut rx: mpsc::Receiver<Out>,
    closed: CancellationToken,
    send_timeout: Option<Duration>,
) {
    async fn within<T>(
        t: Option<Duration>,
        f: impl Future<Output = std::io::Result<T>>,
    ) -> std::io::Result<T> {
        match t {
            None => f.await,
            Some(t) => tokio::time::timeout(t, f).await.unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "send_timeout: the web server does not read",
                ))
            }),
        }
    }
    let t = send_timeout;
    let mut w = BufWriter::with_capacity(64 * 1024, wr);
    let result: std::io::Result<()> = async {
        while let Some(first) = rx.recv().await {
            let mut next = Some(first);
            let mut close = false;
            while let Some(out) = next.take() {
                match out {
                    Out::Record(b) => within(t, w.write_all(&b)).await?,
                    Out::Chunk(h, b) => {
                        within(t, w.write_all(&h)).await?;
                        within(t, w.write_all(&b)).await?;
                    }
                    Out::Close => {
                        close = true;
                        break;
                    }
                }
                next = rx.try_recv().ok();
            }
            within(t, w.flush()).await?;
            if close {
                within(t, w.shutdown()).await?;
                break;
            }
        }
        within(t, w.flush()).await
    }
    .await;
    if let Err(e) = result {
        log::debug!(target: TARGET, "write failed: {e}");
    }
    closed.cancel();
}
