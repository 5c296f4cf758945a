//! `egg:mapproxy-serve#access_log`, `egg:Paste#translogger`: one line per request in Apache's
//! combined format, written when the response body has been sent.
//!
//! Options (Paste's):
//! - `logger_name`: the logger (log target) the lines go to (default `wsgi`).
//! - `format`: Paste's format with `%(NAME)s` fields; in an ini file write `%%(NAME)s`
//!   (fields: see `crate::access_log`).
//! - `logging_level`: the level of the lines, a name (`INFO`, `WARNING`) or a number (20);
//!   default INFO.
//! - `setup_console_handler` (default true): as in Paste, the logger gets a handler printing
//!   the bare line on stderr and stops propagating (so with logging sections configuring the
//!   logger, lines go to its handlers *and* the console; set it to `false` then). Outside the
//!   `mapproxy-serve` command (no logging installed), lines are printed on stderr.
//! - `set_logger_level`: a level name or number, the logger's level (Paste's default: DEBUG,
//!   applied with `setup_console_handler`); lines below it are dropped.
//!
//! ```ini
//! [filter:translogger]
//! use = egg:Paste#translogger
//! setup_console_handler = false
//! ```

use std::sync::Arc;

use tower::Layer as _;

use crate::access_log::{AccessLogLayer, AccessLogSink, DiscardSink, LogFormat, LogSink};

use mapproxy_serve_core::app::{App, Filter};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;

/// The `log` level for a Python level number (the `log` crate's path, for a program with its
/// own logger; the runtime's logging keeps the number).
pub fn log_level(n: u32) -> log::Level {
    match n {
        40.. => log::Level::Error,
        30..=39 => log::Level::Warn,
        20..=29 => log::Level::Info,
        10..=19 => log::Level::Debug,
        _ => log::Level::Trace,
    }
}

/// Build the filter from its options.
pub fn build(conf: &FactoryConf, ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let logger = conf.get("logger_name").unwrap_or("wsgi").trim().to_string();
    let format = match conf.get("format") {
        None => Some(LogFormat::default()),
        Some(f) => errs.take(LogFormat::parse(f).map_err(|e| conf.error("format", e))),
    };
    let console = errs.take(conf.get_bool("setup_console_handler", true));
    let level = errs
        .take(conf.get_level("logging_level"))
        .map(|l| l.unwrap_or(20));
    let min = errs.take(conf.get_level("set_logger_level")).flatten();
    let (Some(format), Some(console), Some(level)) = (format, console, level) else {
        return Err(errs);
    };
    errs.into_result(())?;
    if console {
        ctx.console_logger(&logger, min.unwrap_or(10));
    }
    let sink: Arc<dyn AccessLogSink> = match min {
        Some(min) if level < min => Arc::new(DiscardSink),
        _ => Arc::new(RuntimeSink {
            name: logger.replace("::", "."),
            levelno: level,
            console_fallback: console,
            other: LogSink::new(logger, log_level(level)).console_fallback(console),
        }),
    };
    // The layer's service over the app is the app: a `Handler`, so no Tower wrapping (this
    // filter sees every request).
    let layer = AccessLogLayer::new(format, sink);
    Ok(Arc::new(move |inner| App::from_handler(layer.layer(inner))))
}

/// Lines straight into the runtime's logging ([`mapproxy_serve_core::logline`]: the line is
/// not formatted again by the `log` crate), or through `log` when none is installed.
struct RuntimeSink {
    /// The logger, dotted.
    name: String,
    /// Python's level number: CRITICAL stays 50, 25 stays 25 (the `log` crate has five).
    levelno: u32,
    console_fallback: bool,
    /// The `log` path, for a program with its own logger.
    other: LogSink,
}

impl AccessLogSink for RuntimeSink {
    fn write(&self, line: &str) {
        match mapproxy_serve_core::logline::log_line(&self.name, self.levelno, line) {
            Some(true) => {}
            // Paste's console handler: the line the configured loggers would drop.
            Some(false) if self.console_fallback => {
                use std::io::Write as _;
                let _ = writeln!(std::io::stderr().lock(), "{line}");
            }
            Some(false) => {}
            None => self.other.write(line),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{err, hello, send};

    #[test]
    fn levels() {
        // Python's (and so Paste's) level names are upper case; `info` is an error that
        // names the right spelling.
        use mapproxy_serve_core::config::parse_level;
        assert!(parse_level("info").unwrap_err().contains("'INFO'"));
        assert_eq!(parse_level("WARN"), Ok(30));
        assert_eq!(parse_level(" 35 "), Ok(35));
        assert!(parse_level("loud").is_err());
        assert_eq!(log_level(35), log::Level::Warn);
        assert_eq!(log_level(5), log::Level::Trace);
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = err(build(
            &FactoryConf::from_pairs("Paste#translogger", [("format", "%(nope)s")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'format': unknown field %(nope)s"), "{e}");
        let e = err(build(
            &FactoryConf::from_pairs(
                "Paste#translogger",
                [
                    ("logging_level", "loud"),
                    ("setup_console_handler", "perhaps"),
                ],
            ),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'logging_level'"), "{e}");
        assert!(e.contains("key 'setup_console_handler'"), "{e}");
        let e = err(build(
            &FactoryConf::from_pairs("Paste#translogger", [("set_logger_level", "x")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'set_logger_level'"), "{e}");
    }

    #[tokio::test]
    async fn builds_and_passes_requests() {
        let conf = FactoryConf::from_pairs(
            "Paste#translogger",
            [
                ("logger_name", "wsgi.test"),
                ("format", "%(status)s %(bytes)s"),
                ("logging_level", "DEBUG"),
                ("set_logger_level", "WARNING"),
                ("setup_console_handler", "false"),
            ],
        );
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        let req = http::Request::new(mapproxy_serve_core::app::empty_body());
        assert_eq!(send(&f, hello(), req).await.2, "hello");
    }
}
