//! `mapproxy-serve CONFIG_URI`: build, serve, reload on SIGHUP or file changes, stop on
//! SIGTERM/SIGINT.
//!
//! The stack: the server runs a [`SharedApp`]; a reload resolves and builds the whole
//! composition (and its logging) again, and only when everything built does it swap the app.
//! A broken edit logs one error with file:line and the old stack keeps serving. Requests in
//! flight finish on the stack they started on.
//!
//! `--reload` watches the directories of every file the configuration read (so editors'
//! write-and-rename saves are seen), debounced by 300 ms; access events, other files and
//! rewrites with unchanged content are ignored. Files (and directories) a reload newly reads
//! are watched from then on. Contents are hashed before a build, so an edit made while a
//! build runs triggers another reload. One reload runs at a time (SIGHUP and the watcher).
//!
//! The listeners are not rebuilt: a changed server section logs that a restart is needed.
//! Exit status: 0 after SIGTERM/SIGINT, 2 for a configuration error or a malformed `-b`
//! address, 1 for other failures (a bind error, the pid file).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indexmap::IndexMap;
use tokio_util::sync::CancellationToken;

use super::{print_errors, print_warnings, ServeArgs, EXIT_CONFIG};
use crate::build::Finished;
use crate::config::FactoryConf;
use crate::deploy::{Deployment, Spec};
use crate::error::ConfigErrors;
use crate::ini::Vars;
use crate::logging::{LogHandle, LoggingConfig};
use crate::registry::{registry, Build};
use crate::server::{ServeContext, Server, SharedApp};

const TARGET: &str = "mapproxy_serve.serve";

/// The logging configuration of a deployment's top file (`None`: no `[loggers]`).
/// Command-line values are visible in `args` (and win over `[DEFAULT]`), as everywhere.
pub(crate) fn logging_config(
    d: &Deployment,
    vars: &IndexMap<String, String>,
) -> Result<Option<LoggingConfig>, ConfigErrors> {
    let v = Vars {
        overrides: vars.clone(),
        fallbacks: IndexMap::new(),
    };
    LoggingConfig::from_ini(&d.config, &v)
}

/// The logging configuration a factory asked for instead of the ini file's sections
/// ([`BuildContext::logging_file`](mapproxy_serve_core::build::BuildContext::logging_file),
/// MapProxy's `log_conf`): the last one asked for, a log4rs YAML file (`.yaml`/`.yml`) or an
/// ini file's fileConfig sections (its `%(here)s` and the command-line values visible).
/// `None`: none asked for.
pub(crate) fn logging_file_config(
    files: &[(crate::error::Location, PathBuf)],
    vars: &IndexMap<String, String>,
) -> Result<Option<LoggingConfig>, ConfigErrors> {
    let Some((location, path)) = files.last() else {
        return Ok(None);
    };
    let yaml = path
        .extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("yaml") || e.eq_ignore_ascii_case("yml"));
    let named = |e: ConfigErrors| {
        let mut out = ConfigErrors::new();
        out.push(location.error(format!(
            "logging configuration '{}' does not apply:",
            path.display()
        )));
        out.extend(e);
        out
    };
    if yaml {
        return LoggingConfig::from_log4rs_yaml(path)
            .map(Some)
            .map_err(named);
    }
    let file = crate::ini::IniFile::read(path).map_err(named)?;
    let v = Vars {
        overrides: vars.clone(),
        fallbacks: IndexMap::new(),
    };
    match LoggingConfig::from_ini(&file, &v).map_err(named)? {
        Some(cfg) => Ok(Some(cfg)),
        None => Err(location
            .error(format!(
                "logging configuration '{}' has no [loggers] section",
                path.display()
            ))
            .into()),
    }
}

/// The server to use when the file has no `[server:...]` section: HTTP with its defaults.
fn default_server() -> Result<Box<dyn Server>, ConfigErrors> {
    let f = registry()
        .find("mapproxy-serve#http")
        .ok_or_else(|| crate::error::ConfigError::new("no HTTP server is registered"))?;
    match f.build {
        Build::Server(build) => build(&FactoryConf::from_pairs("mapproxy-serve#http", [])),
        _ => Err(crate::error::ConfigError::new("egg:mapproxy-serve#http is not a server").into()),
    }
}

struct Built {
    deployment: Deployment,
    logging: Option<LoggingConfig>,
    app: crate::App,
    /// What the app's factories left: watched files, warnings, shutdown work, console loggers.
    context: Finished,
    server: Box<dyn Server>,
}

impl Built {
    /// Every file a reload watches: the ini files and the files the factories read.
    fn files(&self) -> Vec<PathBuf> {
        self.deployment.all_files(&self.context)
    }

    /// The warnings of resolution and of the factories.
    fn warnings(&self) -> Vec<crate::error::ConfigError> {
        let mut w = self.deployment.warnings.clone();
        w.extend(self.context.warnings.iter().cloned());
        w
    }
}

/// The threads the server section asks the runtime for, when it builds (its errors are
/// reported by the full [`build`] that follows, inside the runtime).
fn worker_threads(args: &ServeArgs, vars: &IndexMap<String, String>) -> Option<usize> {
    let d = resolve(args, vars).ok()?;
    let server = match &d.server {
        Some(s) => s.build_server().ok()?,
        None => default_server().ok()?,
    };
    server.worker_threads()
}

/// The deployment the command line names.
fn resolve(args: &ServeArgs, vars: &IndexMap<String, String>) -> Result<Deployment, ConfigErrors> {
    let uri = args.config_uri.clone().unwrap_or_default();
    Deployment::resolve(
        &uri,
        args.app_name.as_deref(),
        args.server_name.as_deref(),
        vars,
    )
}

/// Resolve and build everything; the app's factories run on `runtime`.
fn build(
    args: &ServeArgs,
    vars: &IndexMap<String, String>,
    runtime: &tokio::runtime::Handle,
) -> Result<Built, ConfigErrors> {
    let d = resolve(args, vars)?;
    let mut errs = ConfigErrors::new();
    let logging = errs.take(logging_config(&d, vars)).flatten();
    let app = errs.take(d.build_app(runtime));
    let server = match &d.server {
        Some(s) => errs.take(s.build_server()),
        None => errs.take(default_server()),
    };
    // A factory's logging file (MapProxy's `log_conf`) replaces the ini's sections.
    let logging = match &app {
        Some(app) if !app.context.logging_files.is_empty() => errs
            .take(logging_file_config(&app.context.logging_files, vars))
            .flatten(),
        _ => logging,
    };
    match (app, server) {
        (Some(app), Some(server)) if errs.is_empty() => Ok(Built {
            deployment: d,
            logging,
            app: app.app,
            context: app.context,
            server,
        }),
        _ => Err(errs),
    }
}

fn server_fingerprint(spec: &Option<Spec>) -> String {
    spec.as_ref()
        .map(|s| {
            let mut j = s.to_json();
            if let Some(o) = j.as_object_mut() {
                o.remove("global_conf");
            }
            j.to_string()
        })
        .unwrap_or_default()
}

/// What a reload needs to know.
struct Reloader {
    args: ServeArgs,
    vars: IndexMap<String, String>,
    app: SharedApp,
    log: LogHandle,
    /// The server section the listeners were made from (they are not rebuilt on reload).
    running_server_fp: String,
    /// The last server section a restart warning was given for.
    warned_server_fp: Mutex<String>,
    files: Mutex<Vec<PathBuf>>,
    hashes: Mutex<HashMap<PathBuf, u64>>,
    /// The runtime the stacks are built on and run by.
    runtime: tokio::runtime::Handle,
    /// The shutdown work of the stack now serving (run when a reload replaces it, or at exit).
    running: Mutex<Finished>,
    /// One reload at a time (SIGHUP and the watcher may ask together).
    reloading: Mutex<()>,
    /// `--reload`'s directory watches (`None` without `--reload`).
    watching: Mutex<Option<Watching>>,
}

/// The file watcher and the directories it watches.
struct Watching {
    debouncer: Debouncer,
    dirs: Vec<PathBuf>,
}

fn file_hash(p: &Path) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    // As the loader reads it: a file replaced by a FIFO or a device must not block the watcher.
    match crate::ini::read_limited(p, crate::ini::MAX_FILE_SIZE) {
        Ok(b) => b.hash(&mut h),
        Err(_) => 0u8.hash(&mut h),
    }
    h.finish()
}

impl Reloader {
    fn files(&self) -> Vec<PathBuf> {
        self.files.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn hash_all(files: &[PathBuf]) -> HashMap<PathBuf, u64> {
        files.iter().map(|f| (f.clone(), file_hash(f))).collect()
    }

    /// Watch `files` from now on; `known` has the hashes of contents read before building
    /// (a file edited while the build ran then still counts as changed).
    fn remember(&self, files: &[PathBuf], known: &HashMap<PathBuf, u64>) {
        *self.files.lock().unwrap_or_else(|e| e.into_inner()) = files.to_vec();
        let mut h = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        h.clear();
        for f in files {
            let hash = known.get(f).copied().unwrap_or_else(|| file_hash(f));
            h.insert(f.clone(), hash);
        }
    }

    /// Did any watched file's content change since the last (re)load?
    fn changed(&self) -> bool {
        let h = self.hashes.lock().unwrap_or_else(|e| e.into_inner());
        h.iter().any(|(f, old)| file_hash(f) != *old)
    }

    /// Watch the directories of `files` not watched yet (directories, so that editors'
    /// write-and-rename saves are seen).
    fn watch_dirs(&self, files: &[PathBuf]) {
        let mut watching = self.watching.lock().unwrap_or_else(|e| e.into_inner());
        let Some(w) = watching.as_mut() else {
            return;
        };
        for dir in files.iter().filter_map(|f| f.parent()) {
            if dir.as_os_str().is_empty() || w.dirs.iter().any(|d| d == dir) {
                continue;
            }
            match w.debouncer.watch(dir, notify::RecursiveMode::NonRecursive) {
                Ok(()) => w.dirs.push(dir.to_path_buf()),
                Err(e) => {
                    log::error!(target: TARGET, "--reload: cannot watch {}: {e}", dir.display())
                }
            }
        }
    }

    fn stop_watching(&self) {
        self.watching
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
    }

    fn server_section(&self, fp: String) {
        let mut warned = self
            .warned_server_fp
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if fp != self.running_server_fp && fp != *warned {
            log::warn!(
                target: TARGET,
                "the server section changed; its address, socket and options apply after a restart of mapproxy-serve (the app was reloaded)"
            );
        }
        *warned = fp;
    }

    fn reload(&self, why: &str) {
        let _one = self.reloading.lock().unwrap_or_else(|e| e.into_inner());
        log::info!(target: TARGET, "reloading ({why})");
        // Hash before building: an edit made while the build runs is seen as a change.
        let old_files = self.files();
        let before = Self::hash_all(&old_files);
        match build(&self.args, &self.vars, &self.runtime) {
            Ok(mut b) => {
                if let Err(e) = self.log.apply_with(
                    b.logging.as_ref(),
                    &b.context.console_loggers,
                    &b.context.file_loggers,
                ) {
                    self.remember(&old_files, &before);
                    log::error!(target: TARGET, "reload failed, still serving the previous configuration:\n{e}");
                    // The new stack never served: its shutdown work runs now.
                    self.runtime
                        .spawn(async move { b.context.shut_down().await });
                    return;
                }
                self.server_section(server_fingerprint(&b.deployment.server));
                for w in b.warnings() {
                    log::warn!(target: TARGET, "{w}");
                }
                let files = b.files();
                // Watch and hash files this build read for the first time before it serves:
                // an edit made as soon as the new content is seen must not be missed.
                self.watch_dirs(&files);
                self.remember(&files, &before);
                self.app.store(b.app);
                let mut old = std::mem::replace(
                    &mut *self.running.lock().unwrap_or_else(|e| e.into_inner()),
                    b.context,
                );
                self.runtime.spawn(async move { old.shut_down().await });
                log::info!(target: TARGET, "reloaded: new requests get the new configuration");
            }
            Err(e) => {
                // Keep the old stack; remember the broken content so it is reported once.
                self.remember(&old_files, &before);
                log::error!(target: TARGET, "reload failed, still serving the previous configuration:\n{e}");
            }
        }
    }
}

type Debouncer = notify_debouncer_full::Debouncer<
    notify::RecommendedWatcher,
    notify_debouncer_full::RecommendedCache,
>;

enum WatchMsg {
    Events(Vec<notify_debouncer_full::DebouncedEvent>),
    Stop,
}

/// The `--reload` watcher thread; stops when dropped.
struct Watcher {
    tx: std::sync::mpsc::Sender<WatchMsg>,
    thread: Option<std::thread::JoinHandle<()>>,
    reloader: Arc<Reloader>,
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.tx.send(WatchMsg::Stop);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.reloader.stop_watching();
    }
}

/// Watch the directories of every file the configuration read; reload on content changes
/// (debounced; access events and rewrites with the same content are ignored). After a
/// reload, directories of newly read files are watched too.
fn watch(reloader: Arc<Reloader>) -> Option<Watcher> {
    let (tx, rx) = std::sync::mpsc::channel();
    let events = tx.clone();
    let debouncer = match notify_debouncer_full::new_debouncer(
        Duration::from_millis(300),
        None,
        move |res: notify_debouncer_full::DebounceEventResult| match res {
            Ok(ev) => {
                let _ = events.send(WatchMsg::Events(ev));
            }
            Err(errs) => {
                for e in errs {
                    log::warn!(target: TARGET, "--reload: {e}");
                }
            }
        },
    ) {
        Ok(d) => d,
        Err(e) => {
            log::error!(target: TARGET, "--reload: cannot watch files: {e}");
            return None;
        }
    };
    *reloader.watching.lock().unwrap_or_else(|e| e.into_inner()) = Some(Watching {
        debouncer,
        dirs: Vec::new(),
    });
    reloader.watch_dirs(&reloader.files());
    let stopping = reloader.clone();
    let thread = std::thread::Builder::new()
        .name("reload-watcher".into())
        .spawn(move || {
            while let Ok(WatchMsg::Events(events)) = rx.recv() {
                let files = reloader.files();
                let relevant = events
                    .iter()
                    .any(|e| !e.kind.is_access() && e.paths.iter().any(|p| files.contains(p)));
                if relevant && reloader.changed() {
                    reloader.reload("a configuration file changed");
                }
            }
        });
    match thread {
        Ok(t) => Some(Watcher {
            tx,
            thread: Some(t),
            reloader: stopping,
        }),
        Err(e) => {
            stopping.stop_watching();
            log::error!(target: TARGET, "--reload: cannot start the watcher thread: {e}");
            None
        }
    }
}

struct PidFile(Option<PathBuf>);

impl Drop for PidFile {
    fn drop(&mut self) {
        if let Some(p) = &self.0 {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// Serve until SIGTERM/SIGINT; returns the exit status.
pub(super) fn run(args: ServeArgs) -> i32 {
    let vars = match super::parse_vars(&args.vars) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("mapproxy-serve: {e}");
            return EXIT_CONFIG;
        }
    };
    let verbosity = (args.verbose as i8)
        .saturating_sub(args.quiet as i8)
        .max(if args.debug { 1 } else { i8::MIN });
    let log = crate::logging::init(verbosity);
    // The server section sizes the runtime; everything else is built inside it, as reloads
    // are, so a factory may spawn tasks.
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    rt.enable_all();
    if let Some(n) = worker_threads(&args, &vars) {
        rt.worker_threads(n.max(1));
    }
    let rt = match rt.build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mapproxy-serve: cannot start the runtime: {e}");
            return 1;
        }
    };
    let built = match build(&args, &vars, rt.handle()) {
        Ok(b) => b,
        Err(e) => {
            print_errors(&e);
            return EXIT_CONFIG;
        }
    };
    print_warnings(&built.warnings());
    if let Err(e) = log.apply_with(
        built.logging.as_ref(),
        &built.context.console_loggers,
        &built.context.file_loggers,
    ) {
        print_errors(&e);
        return EXIT_CONFIG;
    }
    let _pid = match &args.pid_file {
        Some(p) => match std::fs::write(p, format!("{}\n", std::process::id())) {
            Ok(()) => PidFile(Some(p.clone())),
            Err(e) => {
                eprintln!("mapproxy-serve: cannot write pid file {}: {e}", p.display());
                return 1;
            }
        },
        None => PidFile(None),
    };
    let files = built.files();
    let app = SharedApp::new(built.app);
    let reloader = Arc::new(Reloader {
        args: args.clone(),
        vars,
        app: app.clone(),
        log: log.clone(),
        running_server_fp: server_fingerprint(&built.deployment.server),
        warned_server_fp: Mutex::new(server_fingerprint(&built.deployment.server)),
        files: Mutex::new(Vec::new()),
        hashes: Mutex::new(HashMap::new()),
        runtime: rt.handle().clone(),
        running: Mutex::new(Finished::default()),
        reloading: Mutex::new(()),
        watching: Mutex::new(None),
    });
    reloader.remember(&files, &HashMap::new());
    *reloader.running.lock().unwrap_or_else(|e| e.into_inner()) = built.context;
    let shutdown = CancellationToken::new();
    let ctx = ServeContext {
        app,
        shutdown: shutdown.clone(),
        bind: args.bind.clone(),
        debug: args.debug,
    };
    let server = built.server;
    let stopping = reloader.clone();
    let serving = async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            eprintln!("mapproxy-serve: cannot install signal handlers");
            return 1;
        };
        let _watcher = if args.reload {
            watch(reloader.clone())
        } else {
            None
        };
        let token = shutdown.clone();
        let r = reloader.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    // Stop first, then say so: nothing the log line does can keep the server up.
                    _ = term.recv() => { token.cancel(); log::info!(target: TARGET, "SIGTERM: stopping"); break }
                    _ = int.recv() => { token.cancel(); log::info!(target: TARGET, "SIGINT: stopping"); break }
                    _ = hup.recv() => {
                        let r = r.clone();
                        let _ = tokio::task::spawn_blocking(move || r.reload("SIGHUP")).await;
                    }
                }
            }
        });
        let served = server.serve(ctx).await;
        // The stack stopped taking requests: its factories' shutdown work.
        let mut last =
            std::mem::take(&mut *stopping.running.lock().unwrap_or_else(|e| e.into_inner()));
        last.shut_down().await;
        match served {
            Ok(()) => 0,
            // Both servers parse every -b value before binding any, and name the value
            // first: a malformed address is a usage error (2), a failed bind is 1.
            Err(e) if e.0.starts_with("--bind ") => {
                eprintln!("mapproxy-serve: {e}");
                EXIT_CONFIG
            }
            Err(e) => {
                eprintln!("mapproxy-serve: {e}");
                1
            }
        }
    };
    // The way out never hangs and never skips the exit: a panic while serving or stopping is
    // reported and the process exits with 1; a reload still running in a blocking thread gets
    // a moment, not forever (dropping a runtime would wait for it).
    let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| rt.block_on(serving)))
        .unwrap_or_else(|_| {
            eprintln!("mapproxy-serve: internal error (a panic) while serving; exiting");
            1
        });
    rt.shutdown_timeout(EXIT_GRACE);
    log.flush();
    code
}

/// How long blocking work still running at exit (a reload) may delay it.
const EXIT_GRACE: Duration = Duration::from_secs(2);
