//! Python's `logging.Formatter` as a log4rs [`Encode`]: a record's fields as Python's
//! `LogRecord` has them (dotted logger name, level number and name, time, thread, process)
//! formatted by [`Formatter`].
//!
//! Records reach log4rs with a `log` level (five of them); a Python level number that is not
//! one of those (CRITICAL's 50, a custom 25) travels as the record's `levelno` key-value, so
//! the encoder prints `CRITICAL` and `Level 25` as Python does.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use log::kv::Key;
use log::Record;
use log4rs::encode::{self, Encode};

use super::format::{Formatter, LogRecord};
use super::level;

/// The key-value a record carries its Python level number in, when the `log` level does not
/// say it exactly.
pub const LEVELNO_KEY: &str = "levelno";

/// A record's Python level number: its `levelno` key-value, else its `log` level's.
pub fn levelno(record: &Record<'_>) -> u32 {
    record
        .key_values()
        .get(Key::from_str(LEVELNO_KEY))
        .and_then(|v| v.to_u64())
        .and_then(|n| u32::try_from(n).ok())
        .unwrap_or_else(|| level::of(record.level()))
}

/// The dotted logger name of a log4rs target (`mapproxy::source::request` →
/// `mapproxy.source.request`; the empty target is `root`).
pub fn logger_name(target: &str) -> Cow<'_, str> {
    // a byte scan: `contains("::")` sets up a substring searcher for every record
    if target.as_bytes().windows(2).any(|w| w == b"::") {
        Cow::Owned(target.replace("::", "."))
    } else if target.is_empty() {
        Cow::Borrowed("root")
    } else {
        Cow::Borrowed(target)
    }
}

thread_local! {
    /// The formatted line, reused for every record on this thread.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// A record's message when it is not a plain string.
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
    static THREAD: (u64, String) = {
        let t = std::thread::current();
        let id = format!("{:?}", t.id())
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse()
            .unwrap_or(0);
        let name = match t.name() {
            Some("main") => "MainThread".to_string(),
            Some(n) => n.to_string(),
            None => format!("Thread-{id}"),
        };
        (id, name)
    };
}

/// Run `f` with this thread's empty buffer `key` (a fresh one when it is in use: an encoder
/// logging while it formats).
pub(super) fn with_buffer<R>(
    key: &'static std::thread::LocalKey<RefCell<String>>,
    f: impl FnOnce(&mut String) -> R,
) -> R {
    key.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            buf.clear();
            let r = f(&mut buf);
            if buf.capacity() > 64 * 1024 {
                *buf = String::new();
            }
            r
        }
        Err(_) => f(&mut String::new()),
    })
}

/// Run `f` with the record's message as a string (formatted once into a buffer when it is
/// not a plain string).
pub(super) fn with_message<R>(record: &Record<'_>, f: impl FnOnce(&str) -> R) -> R {
    match record.args().as_str() {
        Some(s) => f(s),
        None => with_buffer(&MESSAGE, |buf| {
            let _ = std::fmt::Write::write_fmt(buf, *record.args());
            f(buf)
        }),
    }
}

/// When logging started (`%(relativeCreated)d`).
pub(super) fn start() -> SystemTime {
    static START: OnceLock<SystemTime> = OnceLock::new();
    *START.get_or_init(SystemTime::now)
}

/// The process id, asked once: `std::process::id()` is a `getpid` system call on every
/// record, and this program never forks.
fn process_id() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

/// Python's `logging.Formatter` as a log4rs encoder.
#[derive(Debug, Clone)]
pub struct PyEncoder {
    formatter: Formatter,
    /// `formatter.is_message_only()`, asked once.
    message_only: bool,
    uses_clock: bool,
}

impl PyEncoder {
    pub fn new(formatter: Formatter) -> PyEncoder {
        PyEncoder {
            message_only: formatter.is_message_only(),
            uses_clock: formatter.uses_clock(),
            formatter,
        }
    }

    /// The format is `%(message)s`: the line is the message.
    pub fn is_message_only(&self) -> bool {
        self.message_only
    }

    /// Append the formatted line of `record` with `message`, and the terminator, to `line`.
    pub(super) fn format_line(&self, record: &Record<'_>, message: &str, line: &mut String) {
        if self.message_only {
            line.push_str(message);
            line.push('\n');
            return;
        }
        // Only formats that show the time need the clock.
        let (since, relative) = if self.uses_clock {
            let now = SystemTime::now();
            let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
            let relative = now
                .duration_since(start())
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0);
            (since, relative)
        } else {
            (std::time::Duration::ZERO, 0.0)
        };
        let levelno = levelno(record);
        let levelname = level::name_of(levelno);
        let name = logger_name(record.target());
        THREAD.with(|(thread, thread_name)| {
            let rec = LogRecord {
                name: &name,
                levelno,
                levelname: &levelname,
                pathname: record.file(),
                lineno: record.line(),
                func_name: None,
                created_secs: since.as_secs() as i64,
                created_nanos: since.subsec_nanos(),
                relative_created: relative,
                thread: *thread,
                thread_name,
                process: process_id(),
                message,
                tz: None,
            };
            self.formatter.format_into(&rec, line);
        });
        line.push('\n');
    }

    /// Run `f` with the formatted line of `record` (terminator included).
    pub(super) fn with_line<R>(&self, record: &Record<'_>, f: impl FnOnce(&str) -> R) -> R {
        with_message(record, |message| {
            if self.message_only {
                // no copy of the message into a line: the caller writes both parts
                return with_buffer(&LINE, |line| {
                    line.push_str(message);
                    line.push('\n');
                    f(line)
                });
            }
            with_buffer(&LINE, |line| {
                self.format_line(record, message, line);
                f(line)
            })
        })
    }
}

impl Encode for PyEncoder {
    fn encode(&self, w: &mut dyn encode::Write, record: &Record<'_>) -> anyhow::Result<()> {
        // One write per line: stderr is unbuffered, and lines of two threads must not mix.
        self.with_line(record, |line| w.write_all(line.as_bytes()))?;
        Ok(())
    }
}

/// `kind: python` for an encoder in a log4rs YAML file: Python's format (`format`,
/// `datefmt`), as a `[formatter_*]` section gives it.
#[derive(Debug, Default)]
pub struct PyEncoderDeserializer;

/// The options of `kind: python`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PyEncoderConfig {
    format: Option<String>,
    datefmt: Option<String>,
}

impl log4rs::config::Deserialize for PyEncoderDeserializer {
    type Trait = dyn Encode;
    type Config = PyEncoderConfig;

    fn deserialize(
        &self,
        config: PyEncoderConfig,
        _: &log4rs::config::Deserializers,
    ) -> anyhow::Result<Box<dyn Encode>> {
        let f = Formatter::new(config.format.as_deref(), config.datefmt.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Box::new(PyEncoder::new(f)))
    }
}
