//! What a factory is given besides its options: the [`BuildContext`] of one build of the
//! composition (the first one, or a reload).
//!
//! - [`BuildContext::watch`]: a file the factory read (a YAML, a `pywps.cfg`); with `--reload`
//!   or on SIGHUP an edit of it rebuilds the whole stack exactly as an ini edit does, and a
//!   broken edit keeps the old stack serving. `inspect` lists these files.
//! - [`BuildContext::warn`]: a warning printed like configuration errors (file:line first),
//!   never fatal; `check` shows it.
//! - [`BuildContext::runtime`]: the tokio runtime the app will run on. Every build, the first
//!   and each reload, runs inside it, so a factory may `spawn` background tasks.
//! - [`BuildContext::on_shutdown`]: work to do when the stack stops taking requests: a reload
//!   swapped in another one, or the server stopped (after in-flight requests drained).
//!
//! ```
//! use mapproxy_serve_core::build::BuildContext;
//! use mapproxy_serve_core::error::Location;
//!
//! let mut ctx = BuildContext::current();
//! ctx.watch("/etc/mapproxy/mapproxy.yaml");
//! ctx.warn(Location::file("mapproxy.yaml", 3), "unknown key 'foo'");
//! let done = ctx.finish();
//! assert_eq!(done.watched.len(), 1);
//! assert_eq!(done.warnings[0].to_string(), "mapproxy.yaml:3: unknown key 'foo'");
//! ```

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::error::{ConfigError, Location};

/// Work a factory left for when its stack stops (see [`BuildContext::on_shutdown`]).
pub type ShutdownHook = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The context of one build of the composition; see the [module docs](self).
pub struct BuildContext {
    runtime: tokio::runtime::Handle,
    watched: Vec<PathBuf>,
    warnings: Vec<ConfigError>,
    shutdown: Vec<ShutdownHook>,
    console_loggers: Vec<(String, u32)>,
    file_loggers: Vec<FileLogger>,
    logging_files: Vec<(Location, PathBuf)>,
}

/// A file handler a factory asked for ([`BuildContext::file_logger`]).
#[derive(Clone, Debug)]
pub struct FileLogger {
    /// The logger (dotted, as Python names it).
    pub logger: String,
    /// Its level (a Python level number).
    pub level: u32,
    /// The file, appended to.
    pub path: PathBuf,
    /// The records' format, Python's `%(name)s` style.
    pub format: String,
    /// The option that asked, for errors (the file cannot be opened).
    pub location: Location,
}

/// What a build left behind, for the runtime: [`BuildContext::finish`].
#[derive(Default)]
pub struct Finished {
    /// Files the factories read (absolute or as the factory named them), without repeats.
    pub watched: Vec<PathBuf>,
    /// Warnings, in the order they were given.
    pub warnings: Vec<ConfigError>,
    /// Shutdown work, in the order it was registered.
    pub shutdown: Vec<ShutdownHook>,
    /// Loggers that asked for a console handler ([`BuildContext::console_logger`]).
    pub console_loggers: Vec<(String, u32)>,
    /// File handlers asked for ([`BuildContext::file_logger`]).
    pub file_loggers: Vec<FileLogger>,
    /// Logging configuration files asked for ([`BuildContext::logging_file`]), with the
    /// option that named each.
    pub logging_files: Vec<(Location, PathBuf)>,
}

impl BuildContext {
    /// A context for a build running on `runtime`.
    pub fn new(runtime: tokio::runtime::Handle) -> BuildContext {
        BuildContext {
            runtime,
            watched: Vec::new(),
            warnings: Vec::new(),
            shutdown: Vec::new(),
            console_loggers: Vec::new(),
            file_loggers: Vec::new(),
            logging_files: Vec::new(),
        }
    }

    /// A context for a build on the tokio runtime this thread is in; outside any runtime, on
    /// the [`standalone`](BuildContext::standalone) one. (The `mapproxy-serve` runtime always
    /// builds inside the runtime that will serve the app.)
    pub fn current() -> BuildContext {
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => BuildContext::new(handle),
            Err(_) => BuildContext::standalone(),
        }
    }

    /// A context on a small runtime of its own (one worker thread, one per process, started on
    /// first use), for tests and tools that build a factory outside any runtime. If it cannot
    /// be started, the process is out of threads and this panics.
    pub fn standalone() -> BuildContext {
        static RUNTIME: std::sync::OnceLock<tokio::runtime::Runtime> = std::sync::OnceLock::new();
        let rt = RUNTIME.get_or_init(|| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(1)
                .thread_name("mapproxy-serve-standalone")
                .enable_all()
                .build()
                .expect("cannot start a tokio runtime")
        });
        BuildContext::new(rt.handle().clone())
    }

    /// The runtime the built app will run on: spawn background tasks here.
    pub fn runtime(&self) -> &tokio::runtime::Handle {
        &self.runtime
    }

    /// Rebuild when `path` changes (`--reload`, and the file list SIGHUP re-reads). Pass the
    /// path the factory opened; a relative one is taken from the working directory.
    pub fn watch(&mut self, path: impl Into<PathBuf>) {
        let path = path.into();
        let path = std::path::absolute(&path).unwrap_or(path);
        if !self.watched.contains(&path) {
            self.watched.push(path);
        }
    }

    /// A warning at `location`: printed as `file:line: [section] message`, never fatal.
    pub fn warn(&mut self, location: Location, message: impl Into<String>) {
        self.warnings.push(location.error(message));
    }

    /// Warnings given so far.
    pub fn warnings(&self) -> &[ConfigError] {
        &self.warnings
    }

    /// Run `work` when this build's stack stops taking new requests: after a reload swapped
    /// in another stack (requests still in flight on the old one may be running), or when
    /// the server stopped and drained. Not run when the build itself failed.
    pub fn on_shutdown(&mut self, work: impl Future<Output = ()> + Send + 'static) {
        self.shutdown.push(Box::pin(work));
    }

    /// Ask the runtime's logging for a handler printing `logger`'s bare lines on stderr,
    /// with the logger's level set to `level` (a Python level number) and propagation off:
    /// Paste's translogger `setup_console_handler`. Applied over whatever the logging
    /// sections configure, for the stack this build makes.
    pub fn console_logger(&mut self, logger: &str, level: u32) {
        self.console_loggers.retain(|(n, _)| n != logger);
        self.console_loggers.push((logger.to_string(), level));
    }

    /// Ask the runtime's logging for a `FileHandler` on `logger` writing `format`ted records
    /// to `path`, with the logger's level set to `level` (a Python level number); the
    /// logger keeps propagating. PyWPS's `[logging] file`: `LOGGER.setLevel(level)`,
    /// `addHandler(FileHandler(file))` with `Formatter(format)`. Applied over whatever the
    /// logging sections configure, for the stack this build makes.
    pub fn file_logger(&mut self, request: FileLogger) {
        self.file_loggers
            .retain(|f| f.logger != request.logger || f.path != request.path);
        self.file_loggers.push(request);
    }

    /// Ask the runtime to configure its logging from `path` instead of the ini file's logging
    /// sections (MapProxy's `log_conf`): an ini file with Python's fileConfig sections, or a
    /// log4rs YAML file (`.yaml`/`.yml`). When several factories ask, the last one wins (as
    /// the last `fileConfig` call does in Python). The file is watched; its errors name
    /// `location` (the option) and the file.
    pub fn logging_file(&mut self, location: Location, path: impl Into<PathBuf>) {
        let path = path.into();
        self.watch(path.clone());
        let path = std::path::absolute(&path).unwrap_or(path);
        self.logging_files.push((location, path));
    }

    /// Everything the factories left, for the runtime.
    pub fn finish(self) -> Finished {
        Finished {
            watched: self.watched,
            warnings: self.warnings,
            shutdown: self.shutdown,
            console_loggers: self.console_loggers,
            file_loggers: self.file_loggers,
            logging_files: self.logging_files,
        }
    }
}

impl std::fmt::Debug for BuildContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BuildContext")
            .field("watched", &self.watched)
            .field("warnings", &self.warnings)
            .field("shutdown", &self.shutdown.len())
            .finish_non_exhaustive()
    }
}

impl Finished {
    /// Run every shutdown hook, in order.
    pub async fn shut_down(&mut self) {
        for hook in std::mem::take(&mut self.shutdown) {
            hook.await;
        }
    }
}
