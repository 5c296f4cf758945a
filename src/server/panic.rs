//! A panic in an app becomes a 500 for that request only.
//!
//! [`CatchPanic`] runs a future under `catch_unwind`. A process-wide panic hook (installed
//! once by [`install_hook`], chaining to the previous hook, which still prints the usual
//! message) records the message, location and — when [`set_capture_backtraces`] asked for it —
//! a backtrace of the panicking thread; the catch on that same thread picks it up.
//!
//! ```
//! use mapproxy_serve::server::panic::{catch_panic, install_hook};
//!
//! install_hook();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let r = rt.block_on(catch_panic(async { panic!("boom") }));
//! assert!(r.unwrap_err().message.contains("boom"));
//! ```

use std::any::Any;
use std::backtrace::Backtrace;
use std::cell::RefCell;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;
use std::task::{Context, Poll};

/// What a caught panic said.
#[derive(Debug, Clone)]
pub struct PanicInfo {
    /// The panic message, with its source location when the hook saw it.
    pub message: String,
    /// The backtrace, when capturing was on.
    pub backtrace: Option<String>,
}

thread_local! {
    static LAST: RefCell<Option<PanicInfo>> = const { RefCell::new(None) };
}

static CAPTURE: AtomicBool = AtomicBool::new(false);
static HOOK: Once = Once::new();

/// Capture a backtrace for every panic from now on (`--debug`).
pub fn set_capture_backtraces(on: bool) {
    CAPTURE.store(on, Ordering::Relaxed);
}

/// Install the recording panic hook (idempotent). It chains to the hook that was set before.
pub fn install_hook() {
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut message = payload_message(info.payload());
            if let Some(loc) = info.location() {
                message = format!("{message} (at {}:{})", loc.file(), loc.line());
            }
            let backtrace = CAPTURE
                .load(Ordering::Relaxed)
                .then(|| Backtrace::force_capture().to_string());
            LAST.with(|l| {
                *l.borrow_mut() = Some(PanicInfo { message, backtrace });
            });
            prev(info);
        }));
    });
}

fn payload_message(p: &(dyn Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "panic with a non-string payload".to_string()
    }
}

fn take_info(payload: Box<dyn Any + Send>) -> PanicInfo {
    LAST.with(|l| l.borrow_mut().take())
        .unwrap_or_else(|| PanicInfo {
            message: payload_message(&*payload),
            backtrace: None,
        })
}

/// Run `f`, turning a panic into its [`PanicInfo`].
pub fn catch_sync<T>(f: impl FnOnce() -> T) -> Result<T, PanicInfo> {
    LAST.with(|l| l.borrow_mut().take());
    catch_unwind(AssertUnwindSafe(f)).map_err(take_info)
}

pin_project_lite::pin_project! {
    /// A future whose panics become `Err(PanicInfo)`.
    pub struct CatchPanic<F> {
        #[pin]
        inner: F,
    }
}

/// Poll `fut` under `catch_unwind`.
pub fn catch_panic<F: Future>(fut: F) -> CatchPanic<F> {
    CatchPanic { inner: fut }
}

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, PanicInfo>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.project().inner;
        match catch_sync(|| inner.poll(cx)) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(info) => Poll::Ready(Err(info)),
        }
    }
}

/// The 500 answer for a caught panic, logged on `target`: the panic message and backtrace
/// in the body only with `debug` (`--debug`), nothing internal otherwise.
pub fn response(info: &PanicInfo, debug: bool, target: &str) -> http::Response<crate::app::Body> {
    log::error!(target: target, "panic in the app: {}", info.message);
    let body = if debug {
        format!(
            "Internal Server Error\n\npanic: {}\n\nbacktrace:\n{}\n",
            info.message,
            info.backtrace
                .as_deref()
                .unwrap_or("(not captured: start with --debug)")
        )
    } else {
        "Internal Server Error\n".to_string()
    };
    crate::app::text_response(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain; charset=utf-8",
        body,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sync_panics_are_caught_with_location() {
        install_hook();
        let e = catch_sync(|| -> u8 { panic!("bad {}", 42) }).unwrap_err();
        assert!(e.message.starts_with("bad 42 (at "), "{}", e.message);
        assert!(e.message.contains("panic.rs"), "{}", e.message);
        assert_eq!(catch_sync(|| 7).unwrap(), 7);
    }
}
