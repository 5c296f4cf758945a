//! One connection: the I/O wrapper that notices traffic, and the watchdog that enforces
//! `header_read_timeout`, `channel_timeout` and `send_timeout`.
//!
//! hyper's own `header_read_timeout` is switched off: it is re-armed while a keep-alive
//! connection is idle, which would make the idle time equal the header time, and hyper-util's
//! auto builder does not apply it before the first byte at all. Instead:
//!
//! - **header time**: from the accept, and from the first byte read while no request is in
//!   progress, until hyper hands the request to the app. A silent or slowloris connection is
//!   closed when it runs out. HTTP/2 connections use it for their first request only.
//! - **idle time** (`channel_timeout`): a connection with no request in progress and no
//!   activity for that long is closed (HTTP/1.1 keep-alive and HTTP/2 alike). The same
//!   applies while the app waits for request body bytes that do not come (a slow upload), as
//!   waitress does; an app computing its answer is never cut. Activity is request traffic:
//!   on HTTP/1 any byte read or written; on HTTP/2 a request starting or ending, request body
//!   data arriving and response data (DATA frames) written. HTTP/2's PING, SETTINGS and
//!   WINDOW_UPDATE frames are not activity: they cannot keep an idle connection open.
//! - **send time** (`send_timeout`): while a response body has handed data that the
//!   connection has not been able to send (the peer does not read, or gives no HTTP/2 flow
//!   control window), response data must be written at least once per `send_timeout`, else
//!   the connection is closed. When no byte at all could be written, the wait is timed from
//!   the watchdog's next round (at most the shortest of the three timeouts late).
//!
//! A request is "in progress" from the call of the app until its response body is done.
//!
//! HTTP/2 streams share the connection's memory: a response body hands hyper its data in
//! pieces of [`PIECE`] bytes, and only [`BODY_PERMITS`] response bodies of one connection
//! may hold a chunk of their body's data not yet taken by hyper (see `body.rs`), so a peer
//! that opens many streams and grants no window makes the server read at most that many
//! chunks, not one per stream.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{Notify, Semaphore};

const NONE: u64 = u64::MAX;

/// Response bodies of one HTTP/2 connection that may hold data hyper has not taken yet.
pub(crate) const BODY_PERMITS: usize = 4;
/// The most bytes an HTTP/2 response body hands hyper at once (one default-size frame).
pub(crate) const PIECE: usize = 16 * 1024;

/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const MODE_UNKNOWN: u8 = 0;
const MODE_H1: u8 = 1;
const MODE_H2: u8 = 2;

/// Per-connection activity, shared by the I/O wrapper, the request service and the watchdog.
#[derive(Debug)]
pub(crate) struct ConnState {
    /// The connection's start on the coarse clock (see [`ConnState::now_ms`]).
    start: coarsetime::Instant,
    /// Milliseconds since `start` of the last activity (see the module docs).
    last_io: AtomicU64,
    /// Milliseconds since `start` of the last response data written, or of the moment a
    /// response body began waiting for the peer, whichever is later.
    last_send: AtomicU64,
    /// Milliseconds since `start` when the current request head began, or `NONE`.
    head_since: AtomicU64,
    /// Requests between the app call and the end of their response body.
    active: AtomicUsize,
    /// Request bodies the app is waiting on (last poll was `Pending`).
    body_waits: AtomicUsize,
    /// Response bodies that handed hyper data it has not taken on (waiting for the peer).
    send_waits: AtomicUsize,
    /// Seen an HTTP/2 request: the header timer no longer applies.
    h2: AtomicBool,
    /// `MODE_*`: the protocol, told by the first bytes read.
    mode: AtomicU8,
    /// HTTP/2: response bodies holding data hyper has not taken ([`BODY_PERMITS`]).
    pub(crate) body_permits: Arc<Semaphore>,
    notify: Notify,
}

impl ConnState {
    pub(crate) fn new() -> Self {
        ConnState {
            start: coarsetime::Instant::now_without_cache_update(),
            last_io: AtomicU64::new(0),
            last_send: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            body_waits: AtomicUsize::new(0),
            send_waits: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
            mode: AtomicU8::new(MODE_UNKNOWN),
            body_permits: Arc::new(Semaphore::new(BODY_PERMITS)),
            notify: Notify::new(),
        }
    }

    /// Milliseconds since the connection's start. Taken about four times a request (the
    /// activity marks), so from a coarse clock: on Linux `CLOCK_MONOTONIC_COARSE`, which
    /// moves once per kernel tick (1-4 ms) and is read without the time-stamp counter. The
    /// timeouts it serves are whole seconds; a watchdog that wakes before the coarse clock
    /// reached the due time sleeps again for the rest.
    fn now_ms(&self) -> u64 {
        coarsetime::Instant::now_without_cache_update()
            .duration_since(self.start)
            .as_millis()
            .min(NONE - 1)
    }

    fn is_h2(&self) -> bool {
        self.mode.load(Ordering::Relaxed) == MODE_H2
    }

    /// Bytes were read. On HTTP/1 they are request traffic: activity, and the start of a
    /// header time when no request is in progress. On HTTP/2 they may be PINGs, SETTINGS or
    /// WINDOW_UPDATEs: not activity (requests and their bodies tell it themselves).
    ///
    /// No wake-up of the watchdog: a header time starting now ends no earlier than
    /// `now + header_timeout`, and the watchdog never sleeps past that (see
    /// [`ConnState::expired`]).
    fn on_read(&self) {
        if self.is_h2() {
            return;
        }
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.active.load(Ordering::SeqCst) == 0 && !self.h2.load(Ordering::Relaxed) {
            let _ = self
                .head_since
                .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Response data was written: activity, and progress for the send timer.
    fn on_send(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        self.last_send.store(now, Ordering::Relaxed);
    }

    /// Request body data reached the app: activity.
    fn on_body_data(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The app is called for a request: the head is complete.
    pub(crate) fn request_started(self: &Arc<Self>, http2: bool) -> ActiveGuard {
        if http2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        self.head_since.store(NONE, Ordering::SeqCst);
        ActiveGuard {
            state: self.clone(),
            waiting: false,
        }
    }

    /// Resolves when the connection should be closed, saying why.
    ///
    /// The requests do not wake the watchdog (that would cost a wake-up and a timer reset
    /// per request). Instead it never sleeps longer than the shorter timeout: a header or
    /// idle time that starts while it sleeps ends no earlier than `now + that timeout`, so
    /// the watchdog is awake in time to see it. Only a stalled upload ([`BodyWait`]), whose
    /// idle time may have started in the past, wakes it.
    pub(crate) async fn expired(&self, t: Timeouts) -> &'static str {
        let (header_timeout, idle_timeout, send_timeout) = (t.header, t.idle, t.send);
        let period = [header_timeout, idle_timeout, send_timeout]
            .into_iter()
            .flatten()
            .min()
            .map(timeout_ms);
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.now_ms();
            let mut next: Option<u64> = None;
            if let Some(t) = header_timeout {
                let since = self.head_since.load(Ordering::SeqCst);
                if since != NONE && !self.h2.load(Ordering::Relaxed) {
                    let due = since.saturating_add(timeout_ms(t));
                    if now >= due {
                        return "header_read_timeout";
                    }
                    next = Some(due);
                }
            }
            if let Some(t) = idle_timeout {
                if self.active.load(Ordering::SeqCst) == 0
                    || self.body_waits.load(Ordering::SeqCst) > 0
                {
                    let due = self
                        .last_io
                        .load(Ordering::Relaxed)
                        .saturating_add(timeout_ms(t));
                    if now >= due {
                        return "channel_timeout";
                    }
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
            if let Some(t) = send_timeout {
                if self.send_waits.load(Ordering::SeqCst) > 0 {
                    let mut since = self.last_send.load(Ordering::Relaxed);
                    if since == NONE {
                        // A body began waiting and nothing was written since: from now.
                        since = match self.last_send.compare_exchange(
                            NONE,
                            now,
                            Ordering::Relaxed,
                            Ordering::Relaxed,
                        ) {
                            Ok(_) => now,
                            Err(stamped) => stamped,
                        };
                    }
                    let due = since.saturating_add(timeout_ms(t));
                    if now >= due {
                        return "send_timeout";
                    }
                    next = Some(next.map_or(due, |n| n.min(due)));
                }
            }
            if let Some(p) = period {
                let check = now.saturating_add(p);
                next = Some(next.map_or(check, |n| n.min(check)));
            }
            match next {
                Some(due) => {
                    let sleep = tokio::time::sleep(Duration::from_millis(due - now));
                    tokio::select! {
                        _ = sleep => {}
                        _ = notified => {}
                    }
                }
                None => notified.await,
            }
        }
    }
}

/// A timeout in the watchdog's milliseconds: at least 1. A shorter one (the configuration
/// takes fractions of a second) would make the watchdog's period 0: it would wake and look
/// again without end while a request is in progress.
fn timeout_ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(NONE / 2).max(1)
}

/// The watchdog's limits; `None`: no limit.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Timeouts {
    pub(crate) header: Option<Duration>,
    pub(crate) idle: Option<Duration>,
    pub(crate) send: Option<Duration>,
}

/// Marks the app as waiting on a request body while set; see [`ConnState`].
#[derive(Debug)]
pub(crate) struct BodyWait {
    state: Arc<ConnState>,
    waiting: bool,
}

impl BodyWait {
    pub(crate) fn new(state: Arc<ConnState>) -> Self {
        BodyWait {
            state,
            waiting: false,
        }
    }

    /// Request body data arrived for the app.
    pub(crate) fn data(&self) {
        self.state.on_body_data();
    }

    /// The last poll of the body returned `Pending` (`true`) or a frame/end (`false`).
    pub(crate) fn set(&mut self, waiting: bool) {
        if waiting == self.waiting {
            return;
        }
        self.waiting = waiting;
        if waiting {
            self.state.body_waits.fetch_add(1, Ordering::SeqCst);
            self.state.notify.notify_one();
        } else {
            self.state.body_waits.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for BodyWait {
    fn drop(&mut self) {
        self.set(false);
    }
}

/// Held while a request is in progress; dropping it ends the request. Its response body
/// also marks through it when it waits for the peer to take data (the send timer).
#[derive(Debug)]
pub(crate) struct ActiveGuard {
    state: Arc<ConnState>,
    waiting: bool,
}

impl ActiveGuard {
    /// The connection this request came on.
    pub(crate) fn conn(&self) -> &Arc<ConnState> {
        &self.state
    }

    /// The response body handed hyper data (`true`), or hyper came back for more (`false`).
    /// The send timer runs while some body of the connection waits; it starts now if none
    /// did (so time the app spent computing does not count).
    pub(crate) fn set_waiting(&mut self, waiting: bool) {
        if waiting == self.waiting {
            return;
        }
        self.waiting = waiting;
        let s = &self.state;
        if waiting {
            if s.send_waits.fetch_add(1, Ordering::SeqCst) == 0 {
                // The timer starts now; the clock is read when data is written (`on_send`), or
                // by the watchdog if nothing is (it stamps `NONE` on its next round), not
                // here: this runs for every response.
                s.last_send.store(NONE, Ordering::Relaxed);
            }
        } else {
            s.send_waits.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        self.set_waiting(false);
        let s = &self.state;
        s.last_io.store(s.now_ms(), Ordering::Relaxed);
        s.active.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Finds the DATA frames in the bytes an HTTP/2 server writes (frame headers only; the
/// payloads are skipped by their length).
#[derive(Debug, Default)]
struct FrameScan {
    header: [u8; 9],
    have: usize,
    payload_left: usize,
    data: bool,
}

impl FrameScan {
    /// Feed written bytes; returns how many of them were DATA frame payload.
    fn feed(&mut self, mut buf: &[u8]) -> usize {
        let mut data = 0;
        while !buf.is_empty() {
            if self.payload_left > 0 {
                let n = self.payload_left.min(buf.len());
                if self.data {
                    data += n;
                }
                self.payload_left -= n;
                buf = &buf[n..];
                continue;
            }
            let n = (9 - self.have).min(buf.len());
            self.header[self.have..self.have + n].copy_from_slice(&buf[..n]);
            self.have += n;
            buf = &buf[n..];
            if self.have == 9 {
                let h = self.header;
                self.have = 0;
                self.payload_left =
                    (usize::from(h[0]) << 16) | (usize::from(h[1]) << 8) | usize::from(h[2]);
                self.data = h[3] == 0;
            }
        }
        data
    }
}

pin_project_lite::pin_project! {
    /// A stream that reports its reads and writes to a [`ConnState`]. It tells HTTP/2 from
    /// HTTP/1 by the first bytes read (the connection preface), and on HTTP/2 counts only
    /// DATA frames as response data written.
    pub(crate) struct Tracked<S> {
        #[pin]
        inner: S,
        state: Arc<ConnState>,
        preface_seen: usize,
        frames: FrameScan,
    }
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>) -> Self {
        Tracked {
            inner,
            state,
            preface_seen: 0,
            frames: FrameScan::default(),
        }
    }
}

/// Match newly read bytes against the HTTP/2 preface while the mode is unknown.
fn detect(state: &ConnState, seen: &mut usize, new: &[u8]) {
    if state.mode.load(Ordering::Relaxed) != MODE_UNKNOWN {
        return;
    }
    let want = &PREFACE[*seen..];
    let n = want.len().min(new.len());
    if want[..n] != new[..n] {
        state.mode.store(MODE_H1, Ordering::Relaxed);
        return;
    }
    *seen += n;
    if *seen == PREFACE.len() {
        state.mode.store(MODE_H2, Ordering::Relaxed);
    }
}

/// Account for `n` bytes written from `bufs`.
fn wrote<'a>(
    state: &ConnState,
    frames: &mut FrameScan,
    bufs: impl Iterator<Item = &'a [u8]>,
    mut n: usize,
) {
    if n == 0 {
        return;
    }
    if !state.is_h2() {
        state.on_send();
        return;
    }
    let mut data = 0;
    for b in bufs {
        if n == 0 {
            break;
        }
        let take = b.len().min(n);
        data += frames.feed(&b[..take]);
        n -= take;
    }
    if data > 0 {
        state.on_send();
    }
}

impl<S: AsyncRead> AsyncRead for Tracked<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let r = this.inner.poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            detect(this.state, this.preface_seen, &buf.filled()[before..]);
            this.state.on_read();
        }
        r
    }
}

impl<S: AsyncWrite> AsyncWrite for Tracked<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = r {
            wrote(this.state, this.frames, std::iter::once(buf), n);
        }
        r
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.project();
        let r = this.inner.poll_write_vectored(cx, bufs);
        if let Poll::Ready(Ok(n)) = r {
            wrote(this.state, this.frames, bufs.iter().map(|b| &b[..]), n);
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

/// Sets the flag of a [`WokenOnly`] and wakes its task.
#[derive(Default)]
struct WakeFlag {
    woken: AtomicBool,
    task: AtomicWaker,
}

impl Wake for WakeFlag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.woken.store(true, Ordering::SeqCst);
        self.task.wake();
    }
}

pin_project_lite::pin_project! {
    /// A future polled only when its own waker fired (and on the first poll), not each time
    /// the task it shares is woken. The connection task is woken for every read and write;
    /// its watchdog and shutdown signals, wrapped in this, then cost a flag test instead of
    /// polling two cancellation tokens, a `Notify` and a timer.
    pub(crate) struct WokenOnly<F> {
        #[pin]
        inner: F,
        flag: Arc<WakeFlag>,
    }
}

impl<F> WokenOnly<F> {
    pub(crate) fn new(inner: F) -> Self {
        let flag = Arc::new(WakeFlag::default());
        flag.woken.store(true, Ordering::SeqCst);
        WokenOnly { inner, flag }
    }
}

impl<F: Future> Future for WokenOnly<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        this.flag.task.register(cx.waker());
        if !this.flag.woken.swap(false, Ordering::SeqCst) {
            return Poll::Pending;
        }
        let waker = Waker::from(this.flag.clone());
        this.inner.poll(&mut Context::from_waker(&waker))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    const H: Duration = Duration::from_millis(100);
    const C: Duration = Duration::from_millis(400);
    const S: Duration = Duration::from_millis(250);

    fn hc() -> Timeouts {
        Timeouts {
            header: Some(H),
            idle: Some(C),
            send: None,
        }
    }

    fn all() -> Timeouts {
        Timeouts {
            send: Some(S),
            ..hc()
        }
    }

    fn frame(kind: u8, len: usize) -> Vec<u8> {
        let mut f = vec![
            (len >> 16) as u8,
            (len >> 8) as u8,
            len as u8,
            kind,
            0,
            0,
            0,
            0,
            1,
        ];
        f.extend(std::iter::repeat_n(7u8, len));
        f
    }

    #[test]
    fn frame_scan_counts_data_payload_only_across_any_split() {
        let mut wire = frame(4, 18); // SETTINGS
        wire.extend(frame(1, 30)); // HEADERS
        wire.extend(frame(0, 1000)); // DATA
        wire.extend(frame(6, 8)); // PING
        wire.extend(frame(0, 0)); // empty DATA (END_STREAM)
        wire.extend(frame(8, 4)); // WINDOW_UPDATE
        wire.extend(frame(0, 70_000)); // DATA over several writes
        for cut in [1, 2, 5, 9, 10, 100, 4096, wire.len()] {
            let mut scan = FrameScan::default();
            let total: usize = wire.chunks(cut).map(|c| scan.feed(c)).sum();
            assert_eq!(total, 71_000, "split every {cut}");
        }
    }

    #[test]
    fn the_preface_tells_http2_from_http1() {
        for (input, mode) in [
            (&b"GET / HTTP/1.1\r\n"[..], MODE_H1),
            (&b"PRI * HTTP/1.1\r\n"[..], MODE_H1),
            (&PREFACE[..], MODE_H2),
            (&PREFACE[..10], MODE_UNKNOWN),
        ] {
            for step in [1, 3, 24] {
                let s = ConnState::new();
                let mut seen = 0;
                for c in input.chunks(step) {
                    detect(&s, &mut seen, c);
                }
                assert_eq!(s.mode.load(Ordering::Relaxed), mode, "{input:?} by {step}");
            }
        }
    }

    #[tokio::test]
    async fn http2_control_frames_do_not_keep_an_idle_connection() {
        let s = Arc::new(ConnState::new());
        s.mode.store(MODE_H2, Ordering::Relaxed);
        drop(s.request_started(true));
        let t0 = Instant::now();
        let expired = s.expired(hc());
        tokio::pin!(expired);
        // reads (PINGs...) and non-DATA writes (PONGs) every 50 ms
        let mut scan = FrameScan::default();
        let why = loop {
            tokio::select! {
                why = &mut expired => break why,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    s.on_read();
                    wrote(&s, &mut scan, std::iter::once(&frame(6, 8)[..]), 17);
                }
            }
        };
        assert_eq!(why, "channel_timeout");
        assert!(t0.elapsed() >= C - Duration::from_millis(20));
        // on HTTP/1 the same reads are request traffic
        let s = Arc::new(ConnState::new());
        s.mode.store(MODE_H1, Ordering::Relaxed);
        drop(s.request_started(false));
        s.on_read();
        assert_eq!(s.expired(hc()).await, "header_read_timeout");
    }

    #[tokio::test]
    async fn a_response_the_peer_does_not_take_expires_on_send_time() {
        let s = Arc::new(ConnState::new());
        s.mode.store(MODE_H1, Ordering::Relaxed);
        let mut g = s.request_started(false);
        // the app computing is never cut
        let r = tokio::time::timeout(C + H, s.expired(all())).await;
        assert!(r.is_err());
        // its body handed data that is not taken: the send time starts now
        g.set_waiting(true);
        let t0 = Instant::now();
        assert_eq!(s.expired(all()).await, "send_timeout");
        assert!(
            t0.elapsed() >= S - Duration::from_millis(20),
            "{:?}",
            t0.elapsed()
        );
        // data written keeps it going
        s.on_send();
        let t0 = Instant::now();
        let expired = s.expired(all());
        tokio::pin!(expired);
        let why = loop {
            tokio::select! {
                why = &mut expired => break why,
                _ = tokio::time::sleep(Duration::from_millis(50)) => {
                    if t0.elapsed() < Duration::from_millis(600) {
                        s.on_send();
                    }
                }
            }
        };
        assert_eq!(why, "send_timeout");
        assert!(t0.elapsed() >= Duration::from_millis(600));
        drop(g);
        assert_eq!(s.send_waits.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn timeouts_under_a_millisecond_count_as_one() {
        assert_eq!(timeout_ms(Duration::from_micros(500)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(1)), 1);
        assert_eq!(timeout_ms(Duration::from_millis(2500)), 2500);
        assert_eq!(timeout_ms(Duration::MAX), NONE / 2);
    }

    /// A sub-millisecond header time still ends the connection (the watchdog sleeps 1 ms
    /// rounds, not 0).
    #[tokio::test]
    async fn a_sub_millisecond_header_time_expires() {
        let s = ConnState::new();
        let t = Timeouts {
            header: Some(Duration::from_micros(500)),
            ..Timeouts::default()
        };
        let why = tokio::time::timeout(Duration::from_secs(5), s.expired(t)).await;
        assert_eq!(why.ok(), Some("header_read_timeout"));
    }

    #[tokio::test]
    async fn silent_connection_expires_on_header_time() {
        let s = ConnState::new();
        let t0 = Instant::now();
        assert_eq!(s.expired(hc()).await, "header_read_timeout");
        // the coarse clock may run up to a tick ahead of or behind tokio's
        let e = t0.elapsed();
        assert!(e >= H - Duration::from_millis(20) && e < C, "{e:?}");
    }

    #[tokio::test]
    async fn idle_keep_alive_uses_channel_timeout() {
        let s = Arc::new(ConnState::new());
        drop(s.request_started(false));
        let t0 = Instant::now();
        assert_eq!(s.expired(hc()).await, "channel_timeout");
        assert!(t0.elapsed() >= C - Duration::from_millis(20));
    }

    #[tokio::test]
    async fn a_byte_after_idle_starts_the_header_time() {
        let s = Arc::new(ConnState::new());
        drop(s.request_started(false));
        s.on_read();
        let t0 = Instant::now();
        assert_eq!(s.expired(hc()).await, "header_read_timeout");
        assert!(t0.elapsed() < C, "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn a_stalled_body_upload_idles_out() {
        let s = Arc::new(ConnState::new());
        let _g = s.request_started(false);
        let mut w = BodyWait::new(s.clone());
        w.set(true);
        let t0 = Instant::now();
        assert_eq!(s.expired(hc()).await, "channel_timeout");
        assert!(t0.elapsed() >= C - Duration::from_millis(20));
        drop(w);
        assert_eq!(s.body_waits.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn woken_only_polls_after_its_own_wake() {
        let polls = std::cell::Cell::new(0);
        let n = Notify::new();
        let fut = WokenOnly::new(async {
            loop {
                polls.set(polls.get() + 1);
                n.notified().await;
            }
        });
        tokio::pin!(fut);
        let noop = Waker::noop();
        let mut cx = Context::from_waker(noop);
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 1);
        n.notify_one();
        assert!(fut.as_mut().poll(&mut cx).is_pending());
        assert_eq!(polls.get(), 2);
    }

    #[tokio::test]
    async fn request_in_progress_never_expires() {
        let s = Arc::new(ConnState::new());
        let g = s.request_started(false);
        let r = tokio::time::timeout(C + H, s.expired(hc())).await;
        assert!(r.is_err());
        drop(g);
    }
}
