//! One connection: the I/O wrapper that notices traffic, and the watchdog that enforces
//! `header_read_timeout` and `channel_timeout`.
//!
//! hyper's own `header_read_timeout` is switched off: it is re-armed while a keep-alive
//! connection is idle, which would make the idle time equal the header time, and hyper-util's
//! auto builder does not apply it before the first byte at all. Instead:
//!
//! - **header time**: from the accept, and from the first byte read while no request is in
//!   progress, until hyper hands the request to the app. A silent or slowloris connection is
//!   closed when it runs out. HTTP/2 connections use it for their first request only.
//! - **idle time** (`channel_timeout`): a connection with no request in progress and no byte
//!   read or written for that long is closed (HTTP/1.1 keep-alive and HTTP/2 alike). The same
//!   applies while the app waits for request body bytes that do not come (a slow upload), as
//!   waitress does; an app computing its answer is never cut.
//!
//! A request is "in progress" from the call of the app until its response body is done.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;

const NONE: u64 = u64::MAX;

/// Per-connection activity, shared by the I/O wrapper, the request service and the watchdog.
#[derive(Debug)]
pub(crate) struct ConnState {
    start: Instant,
    /// Milliseconds since `start` of the last byte read or written.
    last_io: AtomicU64,
    /// Milliseconds since `start` when the current request head began, or `NONE`.
    head_since: AtomicU64,
    /// Requests between the app call and the end of their response body.
    active: AtomicUsize,
    /// Request bodies the app is waiting on (last poll was `Pending`).
    body_waits: AtomicUsize,
    /// Seen an HTTP/2 request: the header timer no longer applies.
    h2: AtomicBool,
    notify: Notify,
}

impl ConnState {
    pub(crate) fn new() -> Self {
        ConnState {
            start: Instant::now(),
            last_io: AtomicU64::new(0),
            head_since: AtomicU64::new(0),
            active: AtomicUsize::new(0),
            body_waits: AtomicUsize::new(0),
            h2: AtomicBool::new(false),
            notify: Notify::new(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(NONE - 1)
    }

    /// No wake-up of the watchdog: a header time starting now ends no earlier than
    /// `now + header_timeout`, and the watchdog never sleeps past that (see
    /// [`ConnState::expired`]).
    fn on_read(&self) {
        let now = self.now_ms();
        self.last_io.store(now, Ordering::Relaxed);
        if self.active.load(Ordering::SeqCst) == 0 && !self.h2.load(Ordering::Relaxed) {
            let _ = self
                .head_since
                .compare_exchange(NONE, now, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    fn on_write(&self) {
        self.last_io.store(self.now_ms(), Ordering::Relaxed);
    }

    /// The app is called for a request: the head is complete.
    pub(crate) fn request_started(self: &Arc<Self>, http2: bool) -> ActiveGuard {
        if http2 {
            self.h2.store(true, Ordering::Relaxed);
        }
        self.active.fetch_add(1, Ordering::SeqCst);
        self.head_since.store(NONE, Ordering::SeqCst);
        ActiveGuard(self.clone())
    }

    /// Resolves when the connection should be closed, saying why.
    ///
    /// The requests do not wake the watchdog (that would cost a wake-up and a timer reset
    /// per request). Instead it never sleeps longer than the shorter timeout: a header or
    /// idle time that starts while it sleeps ends no earlier than `now + that timeout`, so
    /// the watchdog is awake in time to see it. Only a stalled upload ([`BodyWait`]), whose
    /// idle time may have started in the past, wakes it.
    pub(crate) async fn expired(
        &self,
        header_timeout: Option<Duration>,
        idle_timeout: Option<Duration>,
    ) -> &'static str {
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(NONE / 2);
        let period = match (header_timeout, idle_timeout) {
            (Some(h), Some(i)) => Some(ms(h.min(i))),
            (h, i) => h.or(i).map(ms),
        };
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let now = self.now_ms();
            let mut next: Option<u64> = None;
            if let Some(t) = header_timeout {
                let since = self.head_since.load(Ordering::SeqCst);
                if since != NONE && !self.h2.load(Ordering::Relaxed) {
                    let due = since.saturating_add(ms(t));
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
                    let due = self.last_io.load(Ordering::Relaxed).saturating_add(ms(t));
                    if now >= due {
                        return "channel_timeout";
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

/// Held while a request is in progress; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct ActiveGuard(Arc<ConnState>);

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let s = &self.0;
        s.last_io.store(s.now_ms(), Ordering::Relaxed);
        s.active.fetch_sub(1, Ordering::SeqCst);
    }
}

pin_project_lite::pin_project! {
    /// A stream that reports its reads and writes to a [`ConnState`].
    pub(crate) struct Tracked<S> {
        #[pin]
        inner: S,
        state: Arc<ConnState>,
    }
}

impl<S> Tracked<S> {
    pub(crate) fn new(inner: S, state: Arc<ConnState>) -> Self {
        Tracked { inner, state }
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
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.state.on_write();
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
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.state.on_write();
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

    const H: Duration = Duration::from_millis(100);
    const C: Duration = Duration::from_millis(400);

    #[tokio::test]
    async fn silent_connection_expires_on_header_time() {
        let s = ConnState::new();
        let t0 = Instant::now();
        assert_eq!(s.expired(Some(H), Some(C)).await, "header_read_timeout");
        assert!(t0.elapsed() >= H && t0.elapsed() < C, "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn idle_keep_alive_uses_channel_timeout() {
        let s = Arc::new(ConnState::new());
        drop(s.request_started(false));
        let t0 = Instant::now();
        assert_eq!(s.expired(Some(H), Some(C)).await, "channel_timeout");
        assert!(t0.elapsed() >= C - Duration::from_millis(20));
    }

    #[tokio::test]
    async fn a_byte_after_idle_starts_the_header_time() {
        let s = Arc::new(ConnState::new());
        drop(s.request_started(false));
        s.on_read();
        let t0 = Instant::now();
        assert_eq!(s.expired(Some(H), Some(C)).await, "header_read_timeout");
        assert!(t0.elapsed() < C, "{:?}", t0.elapsed());
    }

    #[tokio::test]
    async fn a_stalled_body_upload_idles_out() {
        let s = Arc::new(ConnState::new());
        let _g = s.request_started(false);
        let mut w = BodyWait::new(s.clone());
        w.set(true);
        let t0 = Instant::now();
        assert_eq!(s.expired(Some(H), Some(C)).await, "channel_timeout");
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
        let r = tokio::time::timeout(C + H, s.expired(Some(H), Some(C))).await;
        assert!(r.is_err());
        drop(g);
    }
}
