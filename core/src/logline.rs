//! Whole log lines into the runtime's logging, without formatting them again: the access
//! log's path, once per request.
//!
//! The runtime installs its logging here ([`set_line_logger`]) the way the `log` crate's
//! global logger is installed; a filter writes with [`log_line`], and falls back to the `log`
//! crate when nothing is installed (a program embedding the filters with its own logger).

use std::sync::OnceLock;

/// A logging system that takes whole lines.
pub trait LineLogger: Send + Sync + 'static {
    /// Log `line` to the logger `name` (dotted, as in the ini file) at the Python level
    /// number `levelno` (50 CRITICAL, 40 ERROR, 30 WARNING, 20 INFO, 10 DEBUG, or any other
    /// number, as Python's `logger.log(25, ...)`); whether the logger's level let it through.
    fn log_line(&self, name: &str, levelno: u32, line: &str) -> bool;
}

static LINE_LOGGER: OnceLock<&'static dyn LineLogger> = OnceLock::new();

/// Install the process's line logger (once; later calls are ignored and return false).
pub fn set_line_logger(logger: &'static dyn LineLogger) -> bool {
    LINE_LOGGER.set(logger).is_ok()
}

/// Log `line` at the Python level number `levelno` through the installed line logger: `None`
/// when none is installed, otherwise whether the logger's level let it through.
pub fn log_line(name: &str, levelno: u32, line: &str) -> Option<bool> {
    LINE_LOGGER.get().map(|l| l.log_line(name, levelno, line))
}
