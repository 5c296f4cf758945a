//! Logging configured from the deployment ini exactly as Python's `logging.config.fileConfig`
//! reads `[loggers]`, `[handlers]`, `[formatters]`, `[logger_*]`, `[handler_*]` and
//! `[formatter_*]`, on log4rs (the project's logging framework) behind the `log` crate's global
//! logger.
//!
//! - The sections become a log4rs `Config`: each handler an appender (log4rs's console
//!   appender for `StreamHandler`; our own [`Append`]s where log4rs has none that keeps
//!   Python's behaviour: the background file writers, rotation before the write that would
//!   reach `maxBytes`, `WatchedFileHandler`, `NullHandler`), each formatter Python's
//!   `%`-format as a log4rs `Encode` ([`PyEncoder`]), a handler's level a log4rs filter, each
//!   logger a log4rs logger (`propagate` is `additive`). A log4rs YAML file works as well
//!   ([`LoggingConfig::from_log4rs_yaml`]), and an embedding program may add any log4rs
//!   appender ([`LogHandle::add_appender`]).
//! - Records from this program use dotted targets (`mapproxy.source.request`); records from
//!   Rust crates use module paths (`hyper::proto::h1`), read as `hyper.proto.h1`. log4rs splits
//!   its hierarchy on `::`, so dotted names are given to it with `::` and printed with dots
//!   again: the hierarchy is Python's. `tracing` events (hyper, tower-http, ours) arrive as
//!   `log` records through tracing's `log` feature.
//! - Python's rules, checked in front of log4rs (whose levels are the `log` crate's five): a
//!   record passes when its Python level number reaches the logger's effective level (NOTSET
//!   inherits from the parent); it goes to the handlers of the logger and of each ancestor
//!   until one has `propagate = 0`; each handler applies its own level. A record that finds no
//!   handler at all and is WARNING or above is printed to stderr (Python's `lastResort`).
//!   Levels print as Python names them (`WARNING`, `CRITICAL`, `Level 25`); Rust's TRACE is
//!   level 5, `TRACE`, shown only where a logger is set to `TRACE` (a NOTSET root means DEBUG
//!   and above, everything Python code could log).
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

mod append;
mod config;
pub mod encode;
pub mod format;
pub mod pyliteral;
mod writer;
mod yaml;

use foldhash::HashMap;
use std::borrow::Cow;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex, OnceLock};

use arc_swap::ArcSwap;
use log4rs::append::console::{ConsoleAppender, Target};

pub use append::{FileAppender, LevelNumber, NullAppender};
pub use config::LoggingConfig;
pub use encode::PyEncoder;
/// The log4rs this logging is built on (for [`LogHandle::add_appender`]).
pub use log4rs;
pub use log4rs::append::Append;

use crate::error::{ConfigError, ConfigErrors};
use append::Shared;
use config::{HandlerKind, IniConfig, Source};
use format::Formatter;
use mapproxy_serve_core::build::FileLogger;
use writer::FileSink;
use yaml::Log4rsYaml;

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

    /// The `log` level at or below the Python level `n` (50 → Error, 25 → Info).
    pub fn floor(n: u32) -> log::Level {
        match n {
            ERROR.. => log::Level::Error,
            WARNING.. => log::Level::Warn,
            INFO.. => log::Level::Info,
            DEBUG.. => log::Level::Debug,
            _ => log::Level::Trace,
        }
    }

    /// The log4rs filter of a logger at the Python level `n`: it passes every record whose
    /// Python level is >= `n` (the exact check is made before log4rs sees the record).
    pub fn floor_filter(n: u32) -> log::LevelFilter {
        floor(n).to_level_filter()
    }

    /// The Python level of a log4rs logger's level (`OFF` passes nothing).
    pub fn of_filter(f: log::LevelFilter) -> u32 {
        match f.to_level() {
            Some(l) => of(l),
            None => u32::MAX,
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

/// A logger of the plan (`""` is the root): Python's level (0, NOTSET, inherits), the
/// appenders (handlers) by name, and `propagate`.
#[derive(Debug)]
struct PlanLogger {
    /// Dotted, as in the ini file.
    name: String,
    level: u32,
    appenders: Vec<String>,
    propagate: bool,
}

impl PlanLogger {
    fn new(name: &str, level: u32, propagate: bool) -> PlanLogger {
        PlanLogger {
            name: name.to_string(),
            level,
            appenders: Vec::new(),
            propagate,
        }
    }
}

/// A configuration on its way to log4rs: the loggers with Python's levels, and the log4rs
/// appenders (handlers) made for it.
struct Plan {
    root: PlanLogger,
    loggers: Vec<PlanLogger>,
    appenders: Vec<log4rs::config::Appender>,
}

impl Plan {
    /// No logging sections: `verbosity`'s level to stderr in [`DEFAULT_CONSOLE_FORMAT`].
    fn default_for(verbosity: i8) -> Plan {
        let lvl = match verbosity {
            i8::MIN..=-2 => level::ERROR,
            -1 => level::WARNING,
            0 => level::INFO,
            1 => level::DEBUG,
            _ => level::TRACE,
        };
        let formatter = Formatter::new(Some(DEFAULT_CONSOLE_FORMAT), None)
            .expect("the default console format is valid");
        let mut plan = Plan {
            root: PlanLogger::new("", lvl, true),
            loggers: Vec::new(),
            appenders: Vec::new(),
        };
        let name = plan.add_appender("console", 0, console(Target::Stderr, formatter));
        plan.root.appenders.push(name);
        plan
    }

    /// Add `appender` with Python's handler `level` under a name made from `hint`; its name.
    fn add_appender(&mut self, hint: &str, level: u32, appender: Box<dyn Append>) -> String {
        let name = format!("{}:{hint}", self.appenders.len());
        let mut b = log4rs::config::Appender::builder();
        if level > 0 {
            b = b.filter(Box::new(LevelNumber(level)));
        }
        self.appenders.push(b.build(name.clone(), appender));
        name
    }

    /// The logger `name`, added (NOTSET, propagating) if the plan has none.
    fn logger(&mut self, name: &str) -> &mut PlanLogger {
        if name.is_empty() {
            return &mut self.root;
        }
        match self.loggers.iter().position(|l| l.name == name) {
            Some(i) => &mut self.loggers[i],
            None => {
                self.loggers.push(PlanLogger::new(name, 0, true));
                let last = self.loggers.len() - 1;
                &mut self.loggers[last]
            }
        }
    }

    /// The fileConfig sections: every handler an appender (files opened here; the errors of
    /// the files that cannot be opened).
    fn from_ini(cfg: &IniConfig) -> Result<Plan, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let mut plan = Plan {
            root: PlanLogger::new("", cfg.root.level, true),
            loggers: Vec::new(),
            appenders: Vec::new(),
        };
        let mut names = Vec::new();
        for (i, h) in cfg.handlers.iter().enumerate() {
            let appender: Box<dyn Append> = match &h.kind {
                HandlerKind::Stdout => console(Target::Stdout, h.formatter.clone()),
                HandlerKind::Stderr => console(Target::Stderr, h.formatter.clone()),
                HandlerKind::Null => Box::new(NullAppender),
                HandlerKind::File(f) => match FileSink::open(f) {
                    Ok(sink) => {
                        Box::new(FileAppender::new(sink, PyEncoder::new(h.formatter.clone())))
                    }
                    Err(e) => {
                        errors.push(
                            h.location
                                .error(format!("cannot open log file '{}': {e}", f.path.display())),
                        );
                        Box::new(NullAppender)
                    }
                },
            };
            names.push(plan.add_appender(&format!("handler{i}"), h.level, appender));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let appenders = |l: &config::LoggerConf| {
            l.handlers
                .iter()
                .filter_map(|i| names.get(*i).cloned())
                .collect::<Vec<_>>()
        };
        plan.root.appenders = appenders(&cfg.root);
        for l in &cfg.loggers {
            let mut p = PlanLogger::new(&l.name, l.level, l.propagate);
            p.appenders = appenders(l);
            plan.loggers.push(p);
        }
        Ok(plan)
    }

    /// A log4rs YAML file: its appenders made, its loggers with dotted names.
    fn from_yaml(y: &Log4rsYaml) -> Result<Plan, ConfigErrors> {
        let (appenders, errs) = y.raw.appenders_lossy(&Log4rsYaml::deserializers());
        if !errs.is_empty() {
            return Err(ConfigError::in_file(&y.path, format!("{errs}")).into());
        }
        let root = y.raw.root();
        let mut plan = Plan {
            root: PlanLogger {
                name: String::new(),
                level: level::of_filter(root.level()),
                appenders: root.appenders().to_vec(),
                propagate: true,
            },
            loggers: Vec::new(),
            appenders,
        };
        for l in y.raw.loggers() {
            plan.loggers.push(PlanLogger {
                name: l.name().replace("::", "."),
                level: level::of_filter(l.level()),
                appenders: l.appenders().to_vec(),
                propagate: l.additive(),
            });
        }
        Ok(plan)
    }

    /// Paste's translogger console handlers (see [`LogHandle::apply`]).
    fn with_console_handlers(mut self, requests: &[(String, u32)]) -> Plan {
        for (name, lvl) in requests {
            let Ok(formatter) = Formatter::new(Some("%(message)s"), None) else {
                continue;
            };
            let appender = self.add_appender(
                &format!("console {name}"),
                0,
                console(Target::Stderr, formatter),
            );
            let node = self.logger(name);
            node.appenders.push(appender);
            node.propagate = false;
            node.level = *lvl;
        }
        self
    }

    /// The file handlers a build asked for (PyWPS's `[logging] file`): a `FileHandler` with
    /// the given format on the logger, whose level is set; it keeps propagating.
    fn with_file_handlers(mut self, requests: &[FileLogger]) -> Result<Plan, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        for r in requests {
            let formatter = match Formatter::new(Some(&r.format), None) {
                Ok(f) => f,
                Err(e) => {
                    errors.push(r.location.error(format!("log format: {e}")));
                    continue;
                }
            };
            let conf = config::FileConf {
                path: r.path.clone(),
                append: true,
                delay: false,
                rotation: config::Rotation::None,
            };
            let sink = match FileSink::open(&conf) {
                Ok(s) => s,
                Err(e) => {
                    errors.push(
                        r.location
                            .error(format!("cannot open log file '{}': {e}", r.path.display())),
                    );
                    continue;
                }
            };
            let appender = self.add_appender(
                &format!("file {}", r.logger),
                0,
                Box::new(FileAppender::new(sink, PyEncoder::new(formatter))),
            );
            let node = self.logger(&r.logger);
            node.appenders.push(appender);
            node.level = r.level;
        }
        if errors.is_empty() {
            Ok(self)
        } else {
            Err(errors)
        }
    }

    /// The appenders an embedding program added, on their loggers.
    fn with_extra(mut self, extra: &[(String, Shared)]) -> Plan {
        for (logger, appender) in extra {
            let name = self.add_appender("extra", 0, Box::new(appender.clone()));
            self.logger(logger).appenders.push(name);
        }
        self
    }

    /// The log4rs configuration, and the tree with Python's levels in front of it.
    fn into_runtime(self) -> Result<Runtime, ConfigErrors> {
        let node = |l: &PlanLogger| Node::new(l.level, l.appenders.len(), l.propagate);
        let tree = Tree::new(
            node(&self.root),
            self.loggers
                .iter()
                .map(|l| (l.name.clone(), node(l)))
                .collect(),
        );
        let loggers = self.loggers.iter().map(|l| {
            log4rs::config::Logger::builder()
                .appenders(l.appenders.iter().cloned())
                .additive(l.propagate)
                .build(
                    l.name.replace('.', "::"),
                    level::floor_filter(tree.effective(&l.name)),
                )
        });
        let root = log4rs::config::Root::builder()
            .appenders(self.root.appenders.iter().cloned())
            .build(level::floor_filter(tree.root.effective));
        let config = log4rs::Config::builder()
            .appenders(self.appenders)
            .loggers(loggers)
            .build(root)
            .map_err(|e| ConfigError::new(format!("logging: {e}")))?;
        let logger = log4rs::Logger::new_with_err_handler(
            config,
            Box::new(|e: &anyhow::Error| {
                let _ = writeln!(std::io::stderr().lock(), "mapproxy-serve: logging: {e}");
            }),
        );
        Ok(Runtime { tree, logger })
    }
}

/// A console appender (log4rs's) with Python's formatter.
fn console(target: Target, formatter: Formatter) -> Box<dyn Append> {
    Box::new(
        ConsoleAppender::builder()
            .target(target)
            .encoder(Box::new(PyEncoder::new(formatter)))
            .build(),
    )
}

/// A logger of the tree in front of log4rs: Python's levels (log4rs's are the `log` crate's
/// five) and whether its records reach a handler (else Python's `lastResort` prints them).
#[derive(Debug)]
struct Node {
    /// 0 = NOTSET.
    level: u32,
    /// How many handlers it has itself.
    handlers: usize,
    propagate: bool,
    /// The effective level of this logger (set by [`Tree::new`]).
    effective: u32,
    /// A record of this logger reaches a handler (set by [`Tree::new`]).
    reaches: bool,
}

impl Node {
    fn new(level: u32, handlers: usize, propagate: bool) -> Node {
        Node {
            level,
            handlers,
            propagate,
            effective: 0,
            reaches: false,
        }
    }
}

/// The configured loggers by dotted name.
#[derive(Debug)]
struct Tree {
    root: Node,
    nodes: HashMap<String, Node>,
    /// The `log` crate's filter for the lowest effective level.
    max: log::LevelFilter,
}

impl Tree {
    fn new(root: Node, nodes: HashMap<String, Node>) -> Tree {
        let mut t = Tree {
            root,
            nodes,
            max: log::LevelFilter::Off,
        };
        let derived = |t: &Tree, name: &str| {
            let effective = t
                .chain(name)
                .map(|n| n.level)
                .find(|l| *l != 0)
                .unwrap_or(level::DEBUG);
            // from the nearest logger up, until one does not propagate
            let mut reaches = false;
            for node in t.chain(name) {
                reaches |= node.handlers > 0;
                if !node.propagate {
                    break;
                }
            }
            (effective, reaches)
        };
        let (root_effective, root_reaches) = derived(&t, "");
        let per_name: Vec<(String, (u32, bool))> = t
            .nodes
            .keys()
            .map(|name| (name.clone(), derived(&t, name)))
            .collect();
        let mut min = root_effective;
        (t.root.effective, t.root.reaches) = (root_effective, root_reaches);
        for (name, (effective, reaches)) in per_name {
            min = min.min(effective);
            if let Some(n) = t.nodes.get_mut(&name) {
                (n.effective, n.reaches) = (effective, reaches);
            }
        }
        t.max = level::filter(min);
        t
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

    /// The nearest configured logger of `name`: its effective level and handlers are the
    /// record's.
    fn nearest(&self, name: &str) -> &Node {
        let mut n = name;
        loop {
            if n.is_empty() {
                return &self.root;
            }
            if let Some(node) = self.nodes.get(n) {
                return node;
            }
            n = n.rfind('.').map_or("", |i| &n[..i]);
        }
    }

    /// The effective level of a logger. NOTSET all the way up lets through everything Python
    /// knows (DEBUG and above); Rust's TRACE records need a logger set to TRACE (else a
    /// `level = NOTSET` root would flood the log with hyper's and h2's traces).
    fn effective(&self, name: &str) -> u32 {
        self.nearest(name).effective
    }
}

/// One applied configuration: Python's levels in front, log4rs behind.
#[derive(Debug)]
struct Runtime {
    tree: Tree,
    logger: log4rs::Logger,
}

impl Runtime {
    fn build(
        cfg: Option<&LoggingConfig>,
        verbosity: i8,
        console_loggers: &[(String, u32)],
        file_loggers: &[FileLogger],
        extra: &[(String, Shared)],
    ) -> Result<Runtime, ConfigErrors> {
        let plan = match cfg.map(|c| &c.source) {
            None => Plan::default_for(verbosity),
            Some(Source::Ini(c)) => Plan::from_ini(c)?,
            Some(Source::Log4rs(y)) => Plan::from_yaml(y)?,
        };
        plan.with_console_handlers(console_loggers)
            .with_file_handlers(file_loggers)?
            .with_extra(extra)
            .into_runtime()
    }

    fn flush(&self) {
        log::Log::flush(&self.logger);
    }
}

/// A dotted logger name for a `log` target (`hyper::proto::h1` → `hyper.proto.h1`).
fn logger_name(target: &str) -> Cow<'_, str> {
    encode::logger_name(target)
}

/// The log4rs target of a record: log4rs's hierarchy is split on `::`, Python's on `.`.
fn log4rs_target(target: &str) -> Option<String> {
    target.contains('.').then(|| target.replace('.', "::"))
}

struct Global {
    current: ArcSwap<Runtime>,
    /// What was applied last (to apply again when an appender is added).
    last: Mutex<Applied>,
}

#[derive(Default)]
struct Applied {
    cfg: Option<LoggingConfig>,
    console_loggers: Vec<(String, u32)>,
    file_loggers: Vec<FileLogger>,
    verbosity: i8,
    extra: Vec<(String, Shared)>,
}

static GLOBAL: OnceLock<Global> = OnceLock::new();

fn global() -> &'static Global {
    GLOBAL.get_or_init(|| {
        let _ = encode::start();
        Global {
            current: ArcSwap::from_pointee(
                Runtime::build(None, 0, &[], &[], &[]).expect("the default configuration builds"),
            ),
            last: Mutex::new(Applied::default()),
        }
    })
}

impl log::Log for Global {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        let rt = self.current.load();
        level::of(metadata.level()) >= rt.tree.effective(&logger_name(metadata.target()))
    }

    fn log(&self, record: &log::Record<'_>) {
        self.dispatch_catching(&logger_name(record.target()), record);
    }

    fn flush(&self) {
        let _ = catch_unwind(AssertUnwindSafe(|| self.current.load().flush()));
    }
}

impl Global {
    /// [`dispatch`](Global::dispatch), but a panic while formatting or writing (a bug) stays
    /// here: logging must not take down its caller, be it a request or the task that stops the
    /// server on SIGTERM. The record is lost; stderr gets a note.
    fn dispatch_catching(&self, name: &str, record: &log::Record<'_>) -> bool {
        catch_unwind(AssertUnwindSafe(|| self.dispatch(name, record))).unwrap_or_else(|_| {
            let _ = writeln!(
                std::io::stderr().lock(),
                "mapproxy-serve: logging: a record for '{name}' could not be written (a panic)"
            );
            false
        })
    }

    /// What [`log::Log::log`] does for a record of the logger `name` (dotted): Python's level
    /// check at its nearest configured logger, then log4rs (its appenders, their filters);
    /// false when the logger's level dropped the record.
    fn dispatch(&self, name: &str, record: &log::Record<'_>) -> bool {
        let rt = self.current.load();
        let levelno = encode::levelno(record);
        let node = rt.tree.nearest(name);
        if levelno < node.effective {
            return false;
        }
        if !node.reaches {
            if levelno >= level::WARNING {
                // Python's lastResort handler.
                encode::with_message(record, |m| {
                    let _ = writeln!(std::io::stderr().lock(), "{m}");
                });
            }
            return true;
        }
        match log4rs_target(record.target()) {
            None => log::Log::log(&rt.logger, record),
            Some(target) => log::Log::log(
                &rt.logger,
                &log::Record::builder()
                    .args(*record.args())
                    .target(&target)
                    .level(record.level())
                    .file(record.file())
                    .line(record.line())
                    .module_path(record.module_path())
                    .key_values(record.key_values())
                    .build(),
            ),
        }
        true
    }
}

/// Log `message` to the logger `name` (dotted, as in the ini file) at the Python level number
/// `levelno`: what Python's `logging.getLogger(name).log(levelno, message)` does, without
/// formatting the message again (the access log's path, once per request). The number is
/// kept: 50 prints as `CRITICAL`, 25 as `Level 25`, and loggers and handlers compare it as
/// Python does (log4rs gets the nearest `log` level at or below it, and the number as the
/// record's `levelno` key-value). `None` when this module's logger is not the installed one
/// (a program embedding the library with its own logger: use `log` then); otherwise whether
/// the logger's level let the line through.
pub fn log_message(name: &str, levelno: u32, message: &str) -> Option<bool> {
    if INSTALLED.get() != Some(&true) {
        return None;
    }
    Some(
        global().dispatch_catching(
            name,
            &py_record(
                name,
                levelno,
                format_args!("{message}"),
                &(level::of(level::floor(levelno)) != levelno)
                    .then_some((encode::LEVELNO_KEY, u64::from(levelno))),
            ),
        ),
    )
}

/// A `log` record for the Python level number `levelno`.
fn py_record<'a>(
    name: &'a str,
    levelno: u32,
    args: std::fmt::Arguments<'a>,
    kv: &'a Option<(&'static str, u64)>,
) -> log::Record<'a> {
    log::Record::builder()
        .args(args)
        .target(name)
        .level(level::floor(levelno))
        .module_path_static(Some(module_path!()))
        .key_values(kv)
        .build()
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
        self.apply_with(cfg, console_loggers, &[])
    }

    /// [`apply`](LogHandle::apply), with the file handlers a build asked for
    /// ([`BuildContext::file_logger`](mapproxy_serve_core::build::BuildContext::file_logger)).
    pub fn apply_with(
        &self,
        cfg: Option<&LoggingConfig>,
        console_loggers: &[(String, u32)],
        file_loggers: &[FileLogger],
    ) -> Result<(), ConfigErrors> {
        let g = global();
        let mut last = g.last.lock().unwrap_or_else(|e| e.into_inner());
        let rt = Runtime::build(
            cfg,
            self.verbosity,
            console_loggers,
            file_loggers,
            &last.extra,
        )?;
        last.cfg = cfg.cloned();
        last.console_loggers = console_loggers.to_vec();
        last.file_loggers = file_loggers.to_vec();
        last.verbosity = self.verbosity;
        Self::install(rt);
        Ok(())
    }

    /// Add a log4rs appender to the logger `logger` (dotted; `""` is the root), in the
    /// configuration applied now and in every one applied after (a reload). It gets the
    /// records that reach the logger as Python's rules say (its level and its handlers';
    /// `propagate`); a record's target is the logger name with `::` for `.`, its `levelno`
    /// key-value the Python level number when the `log` level is not exact (CRITICAL, 25).
    pub fn add_appender(
        &self,
        logger: &str,
        appender: Arc<dyn Append>,
    ) -> Result<(), ConfigErrors> {
        let g = global();
        let mut last = g.last.lock().unwrap_or_else(|e| e.into_inner());
        last.extra.push((logger.to_string(), Shared(appender)));
        let rt = Runtime::build(
            last.cfg.as_ref(),
            last.verbosity,
            &last.console_loggers,
            &last.file_loggers,
            &last.extra,
        );
        match rt {
            Ok(rt) => {
                Self::install(rt);
                Ok(())
            }
            Err(e) => {
                last.extra.pop();
                Err(e)
            }
        }
    }

    fn install(rt: Runtime) {
        let max = rt.tree.max;
        let old = global().current.swap(Arc::new(rt));
        log::set_max_level(max);
        // Lines queued for the old files are written before this returns.
        old.flush();
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
    use foldhash::HashMapExt;

    fn tree(root: Node, nodes: &[(&str, Node)]) -> Tree {
        let mut map = HashMap::new();
        for (n, node) in nodes {
            map.insert(
                n.to_string(),
                Node::new(node.level, node.handlers, node.propagate),
            );
        }
        Tree::new(root, map)
    }

    #[test]
    fn translogger_console_handler_overlays_any_configuration() {
        let rt = Plan::default_for(-1)
            .with_console_handlers(&[("wsgi".to_string(), level::DEBUG)])
            .into_runtime()
            .expect("builds");
        let node = rt.tree.nodes.get("wsgi").expect("wsgi logger added");
        assert!(!node.propagate, "Paste sets propagate = False");
        assert_eq!(node.level, level::DEBUG);
        assert_eq!(node.handlers, 1);
        // The root stays at WARNING (-q), yet wsgi's INFO lines pass.
        assert_eq!(rt.tree.effective("wsgi"), level::DEBUG);
        assert_eq!(rt.tree.effective("other"), level::WARNING);
        assert_eq!(rt.tree.max, log::LevelFilter::Debug);
    }

    #[test]
    fn a_panicking_handler_does_not_take_the_caller_with_it() {
        let mut plan = Plan {
            root: PlanLogger::new("", 0, true),
            loggers: Vec::new(),
            appenders: Vec::new(),
        };
        let name = plan.add_appender("panic", 0, Box::new(append::PanicAppender));
        plan.root.appenders.push(name);
        let g = Global {
            current: ArcSwap::from_pointee(plan.into_runtime().expect("builds")),
            last: Mutex::new(Applied::default()),
        };
        let record = log::Record::builder()
            .target("mapproxy_serve.serve")
            .level(log::Level::Info)
            .args(format_args!("stopping"))
            .build();
        // As the SIGTERM task logs "stopping": the call returns, the record is lost.
        assert!(!g.dispatch_catching("mapproxy_serve.serve", &record));
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
        // log4rs gets the nearest `log` level at or below; its loggers pass all above.
        assert_eq!(level::floor(50), log::Level::Error);
        assert_eq!(level::floor(25), log::Level::Info);
        assert_eq!(level::floor(15), log::Level::Debug);
        assert_eq!(level::floor_filter(15), log::LevelFilter::Debug);
        assert_eq!(level::floor(1), log::Level::Trace);
    }

    #[test]
    fn default_format_is_valid() {
        assert!(Formatter::new(Some(DEFAULT_CONSOLE_FORMAT), None).is_ok());
    }

    #[test]
    fn names_and_chain() {
        assert_eq!(logger_name("hyper::proto::h1"), "hyper.proto.h1");
        assert_eq!(logger_name("mapproxy.source"), "mapproxy.source");
        assert_eq!(
            log4rs_target("mapproxy.source").as_deref(),
            Some("mapproxy::source")
        );
        assert_eq!(log4rs_target("hyper::proto"), None);
        let node = |level| Node::new(level, 0, true);
        let rt = tree(
            node(level::WARNING),
            &[
                ("mapproxy", node(0)),
                ("mapproxy.source.request", node(level::DEBUG)),
            ],
        );
        assert_eq!(rt.effective("mapproxy.source.request.x"), level::DEBUG);
        assert_eq!(rt.effective("mapproxy.source"), level::WARNING);
        assert_eq!(rt.effective("mapproxy_util"), level::WARNING);
        assert_eq!(rt.chain("mapproxy.source.request").count(), 3);
        assert_eq!(rt.max, log::LevelFilter::Debug);

        let rt = tree(node(0), &[("h2", node(level::TRACE))]);
        assert_eq!(rt.effective("hyper.proto"), level::DEBUG);
        assert_eq!(rt.effective("h2.codec"), level::TRACE);
        assert_eq!(rt.max, log::LevelFilter::Trace);
    }

    #[test]
    fn reach_stops_at_propagate_0() {
        let rt = tree(
            Node::new(0, 1, true),
            &[
                ("quiet", Node::new(0, 0, false)),
                ("loud", Node::new(0, 0, true)),
            ],
        );
        assert!(rt.nearest("loud.x").reaches);
        assert!(!rt.nearest("quiet.x").reaches, "lastResort then");
        assert!(rt.nearest("other").reaches);
    }
}
