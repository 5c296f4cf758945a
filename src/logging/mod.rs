//! Logging configured from the deployment ini exactly as Python's `logging.config.fileConfig`
//! reads `[loggers]`, `[handlers]`, `[formatters]`, `[logger_*]`, `[handler_*]` and
//! `[formatter_*]`, behind the `log` crate's global logger.
//!
//! - Records from this program use dotted targets (`mapproxy.source.request`); records from
//!   Rust crates use module paths (`hyper::proto::h1`), read as `hyper.proto.h1`. `tracing`
//!   events (hyper, tower-http, ours) arrive as `log` records through tracing's `log` feature.
//! - Python's rules: a record passes when its level reaches the logger's effective level
//!   (NOTSET inherits from the parent); it goes to the handlers of the logger and of each
//!   ancestor until one has `propagate = 0`; each handler applies its own level. A record that
//!   finds no handler at all and is WARNING or above is printed to stderr (Python's
//!   `lastResort`). Levels print as Python names them (`WARNING`, `CRITICAL`); Rust's TRACE is
//!   level 5, `TRACE`, shown only where a logger is set to `TRACE` (a NOTSET root means
//!   DEBUG and above, everything Python code could log).
//! - Handlers: `StreamHandler`, `FileHandler`, `handlers.RotatingFileHandler`,
//!   `handlers.TimedRotatingFileHandler`, `handlers.WatchedFileHandler`, `NullHandler`. Files
//!   are written by a background thread per file: a log call on the request path formats the
//!   line and queues it, never waits for the disk.
//! - [`LogHandle::apply`] switches configurations atomically (reload); a configuration that
//!   cannot be applied (a file that cannot be opened) leaves the old one in place.
//!
//! Differences from Python, on purpose: a formatter field with no meaning here
//! (`%(exc_info)s`, a typo) is an error when the file is read, not at the first record;
//! `funcName` is `(unknown function)` (Rust log records do not carry it); `thread` is Rust's
//! thread number; `%Z` in `datefmt` prints `UTC` or the numeric offset; a `# comment` after a
//! `propagate` value is tolerated (MapProxy's own `log.ini` template has one, which Python
//! rejects). The `log` crate has five levels (its ERROR is Python's 40, so a logger at CRITICAL
//! passes no Rust record); lines logged through [`log_message`] (the access log's
//! `logging_level`) keep Python's number: CRITICAL (50), or `Level 25` for 25.
//!
//! ```no_run
//! use std::path::Path;
//! use mapproxy_serve::ini::{IniFile, Vars};
//! use mapproxy_serve::logging::{self, LoggingConfig};
//!
//! let handle = logging::init(0); // INFO and above to stderr until configured
//! let file = IniFile::read(Path::new("config.ini")).unwrap();
//! let cfg = LoggingConfig::from_ini(&file, &Vars::default()).unwrap();
//! handle.apply(cfg.as_ref(), &[]).unwrap();
//! log::info!(target: "mapproxy.config", "reading: {}", "mapproxy.yaml");
//! handle.flush();
//! ```

mod config;
pub mod format;
pub mod pyliteral;
mod writer;

use foldhash::{HashMap, HashMapExt};
use std::borrow::Cow;
use std::cell::RefCell;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;

pub use config::LoggingConfig;

use crate::error::ConfigErrors;
use config::HandlerKind;
use format::{Formatter, LogRecord};
use writer::FileSink;

/// The format of the default logging (no logging sections).
pub const DEFAULT_CONSOLE_FORMAT: &str = "%(asctime)s %(levelname)-5.5s [%(name)s] %(message)s";

/// MapProxy's `log.ini` template (`mapproxy-util create -t log-ini`): the root logger at INFO
/// to `%(here)s/mapproxy.log`, `mapproxy.source.request` to `%(here)s/source-requests.log`.
/// (MapProxy's file has `propagate=0 # ...` on one line, which Python's fileConfig rejects;
/// the comment is on its own line here.)
pub const LOG_INI_TEMPLATE: &str = r#"[loggers]
keys=root,source_requests

[handlers]
keys=mapproxy,source_requests

[formatters]
keys=default,requests

[logger_root]
level=INFO
handlers=mapproxy

[logger_source_requests]
level=INFO
qualname=mapproxy.source.request
# propagate=0 -> do not show up in logger_root
propagate=0
handlers=source_requests

[handler_mapproxy]
class=FileHandler
formatter=default
args=(r"%(here)s/mapproxy.log", "a")

[handler_source_requests]
class=FileHandler
formatter=requests
args=(r"%(here)s/source-requests.log", "a")

[formatter_default]
format=%(asctime)s - %(levelname)s - %(name)s - %(message)s

[formatter_requests]
format=[%(asctime)s] %(message)s
"#;

/// Python's level numbers and names.
pub(crate) mod level {
    pub const TRACE: u32 = 5;
    pub const DEBUG: u32 = 10;
    pub const INFO: u32 = 20;
    pub const WARNING: u32 = 30;
    pub const ERROR: u32 = 40;

    /// `logging._nameToLevel` (names are case-sensitive, as in Python), plus TRACE: the one
    /// table, the core crate's.
    pub fn from_name(name: &str) -> Option<u32> {
        mapproxy_serve_core::config::level_by_name(name)
    }

    /// The message for an unknown level name.
    pub fn unknown(name: &str) -> String {
        let upper = name.trim().to_ascii_uppercase();
        if from_name(&upper).is_some() {
            format!("unknown level '{name}' (level names are upper case: '{upper}')")
        } else {
            format!("unknown level '{name}' (known: CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET)")
        }
    }

    pub fn of(l: log::Level) -> u32 {
        match l {
            log::Level::Error => ERROR,
            log::Level::Warn => WARNING,
            log::Level::Info => INFO,
            log::Level::Debug => DEBUG,
            log::Level::Trace => TRACE,
        }
    }

    pub fn name(l: log::Level) -> &'static str {
        match l {
            log::Level::Error => "ERROR",
            log::Level::Warn => "WARNING",
            log::Level::Info => "INFO",
            log::Level::Debug => "DEBUG",
            log::Level::Trace => "TRACE",
        }
    }

    /// Python's `logging.getLevelName` for a level number: the names of the five levels and
    /// NOTSET (and our TRACE), `Level N` for any other number.
    pub fn name_of(n: u32) -> std::borrow::Cow<'static, str> {
        use std::borrow::Cow;
        match n {
            50 => Cow::Borrowed("CRITICAL"),
            ERROR => Cow::Borrowed("ERROR"),
            WARNING => Cow::Borrowed("WARNING"),
            INFO => Cow::Borrowed("INFO"),
            DEBUG => Cow::Borrowed("DEBUG"),
            TRACE => Cow::Borrowed("TRACE"),
            0 => Cow::Borrowed("NOTSET"),
            n => Cow::Owned(format!("Level {n}")),
        }
    }

    /// The `log` crate's filter that lets through every level >= `n`.
    pub fn filter(n: u32) -> log::LevelFilter {
        match n {
            0..=TRACE => log::LevelFilter::Trace,
            6..=DEBUG => log::LevelFilter::Debug,
            11..=INFO => log::LevelFilter::Info,
            21..=WARNING => log::LevelFilter::Warn,
            31..=ERROR => log::LevelFilter::Error,
            _ => log::LevelFilter::Off,
        }
    }
}

/// Where a handler writes.
#[derive(Debug)]
enum Sink {
    Stdout,
    Stderr,
    Null,
    File(FileSink),
    /// A handler that panics when it writes (tests of what a bug in a handler may do).
    #[cfg(test)]
    Panic,
}

#[derive(Debug)]
struct Handler {
    level: u32,
    formatter: Formatter,
    /// `formatter.is_message_only()`, asked once.
    message_only: bool,
    sink: Sink,
}

impl Handler {
    fn new(level: u32, formatter: Formatter, sink: Sink) -> Handler {
        Handler {
            level,
            message_only: formatter.is_message_only(),
            formatter,
            sink,
        }
    }
}

impl Handler {
    /// `%(message)s` to a file (access logs): [`write_message`](Handler::write_message) is
    /// all the handler does.
    fn writes_message_to_file(&self) -> bool {
        self.message_only && matches!(self.sink, Sink::File(_))
    }

    /// The message goes to the file's queue as it is, without being copied into a line first
    /// (for a handler that [`writes_message_to_file`](Handler::writes_message_to_file)).
    fn write_message(&self, message: &str) {
        if let Sink::File(f) = &self.sink {
            f.write_parts(&[message.as_bytes(), b"\n"]);
        }
    }

    fn emit(&self, record: &LogRecord<'_>) {
        if self.writes_message_to_file() {
            self.write_message(record.message);
            return;
        }
        with_buffer(&LINE, |line| self.emit_with(record, line));
    }

    fn emit_with(&self, record: &LogRecord<'_>, line: &mut String) {
        self.formatter.format_into(record, line);
        line.push('\n');
        match &self.sink {
            Sink::Stderr => {
                let _ = std::io::stderr().lock().write_all(line.as_bytes());
            }
            Sink::Stdout => {
                let mut out = std::io::stdout().lock();
                let _ = out.write_all(line.as_bytes());
                let _ = out.flush();
            }
            Sink::File(f) => f.write(line.as_bytes()),
            Sink::Null => {}
            #[cfg(test)]
            Sink::Panic => panic!("a handler that panics"),
        }
    }
}

thread_local! {
    /// The formatted line of a handler, reused for every record on this thread.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
    /// A record's message when it is not a plain string.
    static MESSAGE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Run `f` with this thread's empty buffer `key` (a fresh one when it is in use: a handler
/// logging while it formats).
fn with_buffer<R>(
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

#[derive(Debug)]
struct Node {
    /// 0 = NOTSET.
    level: u32,
    handlers: Vec<Arc<Handler>>,
    propagate: bool,
    /// The effective level of this logger (set by [`Runtime::new`]).
    effective: u32,
    /// Set by [`Runtime::new`]: the handlers a record of this logger reaches, from this
    /// logger up until one does not propagate (walked once per configuration, not per record).
    reach: Vec<Arc<Handler>>,
    /// One of `reach` shows the time; records that reach none skip reading the clock.
    uses_clock: bool,
    /// Every handler in `reach` writes the bare message to a file (access logs): records
    /// skip building a `LogRecord`.
    message_files_only: bool,
}

/// A logger's effective level and the handlers its records reach.
struct Derived {
    effective: u32,
    reach: Vec<Arc<Handler>>,
}

impl Node {
    /// What [`Runtime::new`] works out.
    fn set_derived(&mut self, Derived { effective, reach }: Derived) {
        self.effective = effective;
        self.uses_clock = reach.iter().any(|h| h.formatter.uses_clock());
        self.message_files_only = reach.iter().all(|h| h.writes_message_to_file());
        self.reach = reach;
    }

    fn new(level: u32, handlers: Vec<Arc<Handler>>, propagate: bool) -> Node {
        Node {
            level,
            handlers,
            propagate,
            effective: 0,
            reach: Vec::new(),
            uses_clock: true,
            message_files_only: false,
        }
    }
}

/// One applied configuration.
#[derive(Debug)]
struct Runtime {
    root: Node,
    nodes: HashMap<String, Node>,
    handlers: Vec<Arc<Handler>>,
    max: log::LevelFilter,
}

impl Runtime {
    fn default_for(verbosity: i8) -> Runtime {
        let lvl = match verbosity {
            i8::MIN..=-2 => level::ERROR,
            -1 => level::WARNING,
            0 => level::INFO,
            1 => level::DEBUG,
            _ => level::TRACE,
        };
        let formatter = Formatter::new(Some(DEFAULT_CONSOLE_FORMAT), None)
            .expect("the default console format is valid");
        let h = Arc::new(Handler::new(0, formatter, Sink::Stderr));
        Runtime::new(
            Node::new(lvl, vec![h.clone()], true),
            HashMap::new(),
            vec![h],
        )
    }

    fn new(root: Node, nodes: HashMap<String, Node>, handlers: Vec<Arc<Handler>>) -> Runtime {
        let mut rt = Runtime {
            root,
            nodes,
            handlers,
            max: log::LevelFilter::Off,
        };
        let resolve = |rt: &Runtime, name: &str| {
            rt.chain(name)
                .map(|n| n.level)
                .find(|l| *l != 0)
                .unwrap_or(level::DEBUG)
        };
        // The handlers a record reaches: from its nearest logger up, until one does not
        // propagate.
        let reach = |rt: &Runtime, name: &str| {
            let mut reach = Vec::new();
            for node in rt.chain(name) {
                reach.extend(node.handlers.iter().cloned());
                if !node.propagate {
                    break;
                }
            }
            reach
        };
        let derived = |rt: &Runtime, name: &str| Derived {
            effective: resolve(rt, name),
            reach: reach(rt, name),
        };
        let root = derived(&rt, "");
        let per_name: Vec<(String, Derived)> = rt
            .nodes
            .keys()
            .map(|name| (name.clone(), derived(&rt, name)))
            .collect();
        let mut min = root.effective;
        rt.root.set_derived(root);
        for (name, d) in per_name {
            min = min.min(d.effective);
            if let Some(n) = rt.nodes.get_mut(&name) {
                n.set_derived(d);
            }
        }
        rt.max = level::filter(min);
        rt
    }

    fn build(cfg: &LoggingConfig) -> Result<Runtime, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let mut handlers = Vec::new();
        for h in &cfg.handlers {
            let sink = match &h.kind {
                HandlerKind::Stdout => Sink::Stdout,
                HandlerKind::Stderr => Sink::Stderr,
                HandlerKind::Null => Sink::Null,
                HandlerKind::File(f) => match FileSink::open(f) {
                    Ok(s) => Sink::File(s),
                    Err(e) => {
                        errors.push(
                            h.location
                                .error(format!("cannot open log file '{}': {e}", f.path.display())),
                        );
                        Sink::Null
                    }
                },
            };
            handlers.push(Arc::new(Handler::new(h.level, h.formatter.clone(), sink)));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let node = |l: &config::LoggerConf| {
            let reached = l.handlers.iter().filter_map(|i| handlers.get(*i).cloned());
            Node::new(l.level, reached.collect(), l.propagate)
        };
        let root = node(&cfg.root);
        let nodes = cfg
            .loggers
            .iter()
            .map(|l| (l.name.clone(), node(l)))
            .collect();
        Ok(Runtime::new(root, nodes, handlers))
    }

    /// Add Paste's translogger console handlers (see [`request_console_handler`]).
    fn with_console_handlers(self, requests: &[(String, u32)]) -> Runtime {
        if requests.is_empty() {
            return self;
        }
        let Runtime {
            root,
            mut nodes,
            mut handlers,
            ..
        } = self;
        for (name, lvl) in requests {
            let Ok(formatter) = Formatter::new(Some("%(message)s"), None) else {
                continue;
            };
            let h = Arc::new(Handler::new(0, formatter, Sink::Stderr));
            handlers.push(h.clone());
            let node = nodes
                .entry(name.clone())
                .or_insert_with(|| Node::new(0, Vec::new(), true));
            node.handlers.push(h);
            node.propagate = false;
            node.level = *lvl;
        }
        Runtime::new(root, nodes, handlers)
    }

    /// The configured loggers from `name` up to the root.
    fn chain<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Node> + 'a {
        // `name`, then its parents (computed only when asked for: a logger that does not
        // propagate ends the walk at once), then the root
        let mut next = Some(name);
        let mut up = false;
        std::iter::from_fn(move || loop {
            let n = next?;
            if up {
                next = Some(n.rfind('.').map_or("", |i| &n[..i]));
                up = false;
                continue;
            }
            if n.is_empty() {
                next = None;
                return Some(&self.root);
            }
            up = true;
            if let Some(node) = self.nodes.get(n) {
                return Some(node);
            }
        })
    }

    /// The effective level of a logger. NOTSET all the way up lets through everything Python
    /// knows (DEBUG and above); Rust's TRACE records need a logger set to TRACE (else a
    /// `level = NOTSET` root would flood the log with hyper's and h2's traces).
    fn effective(&self, name: &str) -> u32 {
        // the nearest configured logger knows its effective level
        self.chain(name)
            .next()
            .map_or(level::DEBUG, |n| n.effective)
    }

    fn flush(&self) {
        for h in &self.handlers {
            if let Sink::File(f) = &h.sink {
                f.flush();
            }
        }
    }
}

/// A dotted logger name for a `log` target (`hyper::proto::h1` → `hyper.proto.h1`).
fn logger_name(target: &str) -> Cow<'_, str> {
    if target.contains("::") {
        Cow::Owned(target.replace("::", "."))
    } else if target.is_empty() {
        Cow::Borrowed("root")
    } else {
        Cow::Borrowed(target)
    }
}

struct Global {
    current: ArcSwap<Runtime>,
    start: SystemTime,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

fn global() -> &'static Global {
    GLOBAL.get_or_init(|| Global {
        current: ArcSwap::from_pointee(Runtime::default_for(0)),
        start: SystemTime::now(),
    })
}

/// The process id, asked once: `std::process::id()` is a `getpid` system call on every
/// record (one per access-log line), and this program never forks.
fn process_id() -> u32 {
    static PID: OnceLock<u32> = OnceLock::new();
    *PID.get_or_init(std::process::id)
}

thread_local! {
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

impl log::Log for Global {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let rt = self.current.load();
        level::of(metadata.level()) >= rt.effective(&logger_name(metadata.target()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let name = logger_name(record.target());
        let message = match record.args().as_str() {
            Some(s) => Message::Str(s),
            None => Message::Args(*record.args()),
        };
        let level = Level::of(record);
        self.dispatch_catching(&name, &level, message);
    }

    fn flush(&self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.current.load().flush()));
    }
}

/// A record's level and where it was logged: Python's number and name (a `log` record's
/// level, or the number a line was logged at: CRITICAL is 50, 25 is `Level 25`).
struct Level<'a> {
    no: u32,
    name: Cow<'static, str>,
    file: Option<&'a str>,
    line: Option<u32>,
}

impl<'a> Level<'a> {
    fn of(record: &log::Record<'a>) -> Level<'a> {
        Level {
            no: level::of(record.level()),
            name: Cow::Borrowed(level::name(record.level())),
            file: record.file(),
            line: record.line(),
        }
    }

    fn number(no: u32) -> Level<'static> {
        Level {
            no,
            name: level::name_of(no),
            file: None,
            line: None,
        }
    }
}

/// A record's message: a plain string, or arguments formatted once the level let it through.
enum Message<'a> {
    Str(&'a str),
    Args(std::fmt::Arguments<'a>),
}

impl Global {
    /// [`dispatch`](Global::dispatch), but a panic while formatting or writing (a bug) stays
    /// here: logging must not take down its caller, be it a request or the task that stops the
    /// server on SIGTERM. The record is lost; stderr gets a note.
    fn dispatch_catching(&self, name: &str, level: &Level<'_>, message: Message<'_>) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.dispatch(name, level, message))).unwrap_or_else(
            |_| {
                let _ = writeln!(
                    std::io::stderr().lock(),
                    "mapproxy-serve: logging: a record for '{name}' could not be written (a panic)"
                );
                false
            },
        )
    }

    /// What [`log::Log::log`] does, for a logger `name` (dotted); false when the logger's level
    /// dropped the record.
    fn dispatch(&self, name: &str, level: &Level<'_>, message: Message<'_>) -> bool {
        let rt = self.current.load();
        let levelno = level.no;
        // the nearest configured logger has the effective level and the handlers reached
        let Some(node) = rt.chain(name).next() else {
            return false;
        };
        if levelno < node.effective {
            return false;
        }
        match message {
            Message::Str(m) => self.emit(node, level, name, m),
            Message::Args(args) => with_buffer(&MESSAGE, |buf| {
                let _ = std::fmt::Write::write_fmt(buf, args);
                self.emit(node, level, name, buf);
            }),
        }
        true
    }

    fn emit(&self, node: &Node, level: &Level<'_>, name: &str, message: &str) {
        let levelno = level.no;
        if node.reach.is_empty() {
            if levelno >= level::WARNING {
                // Python's lastResort handler.
                let _ = writeln!(std::io::stderr().lock(), "{message}");
            }
            return;
        }
        if node.message_files_only {
            // access logs: no record to build, no clock to read
            for h in &node.reach {
                if levelno >= h.level {
                    h.write_message(message);
                }
            }
            return;
        }
        // Only formats that show the time need the clock.
        let (since, relative) = if node.uses_clock {
            let now = SystemTime::now();
            let since = now.duration_since(UNIX_EPOCH).unwrap_or_default();
            let relative = now
                .duration_since(self.start)
                .map(|d| d.as_secs_f64() * 1000.0)
                .unwrap_or(0.0);
            (since, relative)
        } else {
            (std::time::Duration::ZERO, 0.0)
        };
        THREAD.with(|(thread, thread_name)| {
            let rec = LogRecord {
                name,
                levelno,
                levelname: &level.name,
                pathname: level.file,
                lineno: level.line,
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
            for h in &node.reach {
                if levelno >= h.level {
                    h.emit(&rec);
                }
            }
        });
    }
}

/// Log `message` to the logger `name` (dotted, as in the ini file) at the Python level number
/// `levelno`: what Python's `logging.getLogger(name).log(levelno, message)` does, without
/// formatting the message again (the access log's path, once per request). The number is
/// kept: 50 prints as `CRITICAL`, 25 as `Level 25`, and loggers and handlers compare it as
/// Python does. `None` when this module's logger is not the installed one (a program
/// embedding the library with its own logger: use `log` then); otherwise whether the logger's
/// level let the line through.
pub fn log_message(name: &str, levelno: u32, message: &str) -> Option<bool> {
    if INSTALLED.get() != Some(&true) {
        return None;
    }
    Some(global().dispatch_catching(name, &Level::number(levelno), Message::Str(message)))
}

/// This module's logging as the core crate's line logger (the access log's path).
struct Lines;

impl mapproxy_serve_core::logline::LineLogger for Lines {
    fn log_line(&self, name: &str, levelno: u32, line: &str) -> bool {
        log_message(name, levelno, line).unwrap_or(false)
    }
}

/// Whether [`init`] installed this module's logger as the `log` crate's.
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// The installed logging; [`LogHandle::apply`] switches its configuration.
#[derive(Clone, Debug)]
pub struct LogHandle {
    verbosity: i8,
}

/// Install this module's logger as the `log` crate's global logger (once per process) with the
/// default configuration: INFO and above to stderr; `verbosity` 1 (`-v`) shows DEBUG, 2 TRACE,
/// -1 (`-q`) WARNING, -2 ERROR. Calling it again resets to the default configuration.
pub fn init(verbosity: i8) -> LogHandle {
    let g = global();
    let installed = *INSTALLED.get_or_init(|| {
        let ok = log::set_logger(g).is_ok();
        if ok {
            mapproxy_serve_core::logline::set_line_logger(&Lines);
        }
        ok
    });
    if !installed {
        eprintln!("mapproxy-serve: logging: another logger is already installed; logging sections are ignored");
    }
    let handle = LogHandle { verbosity };
    let _ = handle.apply(None, &[]);
    handle
}

impl LogHandle {
    /// Switch to `cfg` (`None`: back to the default). Files are opened first; if one cannot
    /// be opened, the errors are returned and the current configuration stays.
    ///
    /// `console_loggers` are the loggers a build asked a console handler for
    /// ([`BuildContext::console_logger`](mapproxy_serve_core::build::BuildContext::console_logger),
    /// Paste's translogger `setup_console_handler`): each gets a `%(message)s` handler on
    /// stderr, `propagate = 0` and the given level, over whatever `cfg` says.
    pub fn apply(
        &self,
        cfg: Option<&LoggingConfig>,
        console_loggers: &[(String, u32)],
    ) -> Result<(), ConfigErrors> {
        let rt = match cfg {
            Some(c) => Runtime::build(c)?,
            None => Runtime::default_for(self.verbosity),
        };
        let rt = rt.with_console_handlers(console_loggers);
        let max = rt.max;
        let old = global().current.swap(Arc::new(rt));
        log::set_max_level(max);
        // Lines queued for the old files are written before this returns.
        old.flush();
        Ok(())
    }

    /// Wait until every queued line is written (call before the process exits). Never
    /// panics.
    pub fn flush(&self) {
        let _ = catch_unwind(AssertUnwindSafe(|| global().current.load().flush()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn translogger_console_handler_overlays_any_configuration() {
        let rt =
            Runtime::default_for(-1).with_console_handlers(&[("wsgi".to_string(), level::DEBUG)]);
        let node = rt.nodes.get("wsgi").expect("wsgi logger added");
        assert!(!node.propagate, "Paste sets propagate = False");
        assert_eq!(node.level, level::DEBUG);
        assert_eq!(node.handlers.len(), 1);
        // The root stays at WARNING (-q), yet wsgi's INFO lines pass.
        assert_eq!(rt.effective("wsgi"), level::DEBUG);
        assert_eq!(rt.effective("other"), level::WARNING);
        assert_eq!(rt.max, log::LevelFilter::Debug);
    }

    #[test]
    fn a_panicking_handler_does_not_take_the_caller_with_it() {
        let formatter = Formatter::new(Some("%(message)s %(levelname)s"), None).expect("valid");
        let h = Arc::new(Handler::new(0, formatter, Sink::Panic));
        let rt = Runtime::new(Node::new(0, vec![h.clone()], true), HashMap::new(), vec![h]);
        let g = Global {
            current: ArcSwap::from_pointee(rt),
            start: SystemTime::now(),
        };
        let record = log::Record::builder()
            .target("mapproxy_serve.serve")
            .level(log::Level::Info)
            .build();
        // As the SIGTERM task logs "stopping": the call returns, the record is lost.
        let level = Level::of(&record);
        assert!(!g.dispatch_catching("mapproxy_serve.serve", &level, Message::Str("stopping")));
        log::Log::log(&g, &record);
        log::Log::flush(&g);
    }

    #[test]
    fn level_names_as_python_get_level_name() {
        // logging.getLevelName in Python 3.11
        for (n, name) in [
            (50, "CRITICAL"),
            (40, "ERROR"),
            (30, "WARNING"),
            (20, "INFO"),
            (10, "DEBUG"),
            (0, "NOTSET"),
            (25, "Level 25"),
            (51, "Level 51"),
        ] {
            assert_eq!(level::name_of(n), name);
        }
    }

    #[test]
    fn default_format_is_valid() {
        assert!(Formatter::new(Some(DEFAULT_CONSOLE_FORMAT), None).is_ok());
    }

    #[test]
    fn names_and_chain() {
        assert_eq!(logger_name("hyper::proto::h1"), "hyper.proto.h1");
        assert_eq!(logger_name("mapproxy.source"), "mapproxy.source");
        let node = |level| Node::new(level, vec![], true);
        let mut nodes = HashMap::new();
        nodes.insert("mapproxy".to_string(), node(0));
        nodes.insert("mapproxy.source.request".to_string(), node(level::DEBUG));
        let rt = Runtime::new(node(level::WARNING), nodes, vec![]);
        assert_eq!(rt.effective("mapproxy.source.request.x"), level::DEBUG);
        assert_eq!(rt.effective("mapproxy.source"), level::WARNING);
        assert_eq!(rt.effective("mapproxy_util"), level::WARNING);
        assert_eq!(rt.chain("mapproxy.source.request").count(), 3);
        assert_eq!(rt.max, log::LevelFilter::Debug);

        let mut nodes = HashMap::new();
        nodes.insert("h2".to_string(), node(level::TRACE));
        let rt = Runtime::new(node(0), nodes, vec![]);
        assert_eq!(rt.effective("hyper.proto"), level::DEBUG);
        assert_eq!(rt.effective("h2.codec"), level::TRACE);
        assert_eq!(rt.max, log::LevelFilter::Trace);
    }
}
