//! Where finished lines go: the [`AccessLogSink`] trait, [`LogSink`] (the `log` crate, with
//! Paste's console fallback) and [`DiscardSink`].

use std::io::Write as _;

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

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
}
