//! Paste Deploy semantics: from ini sections to a spec tree ([`Spec`]), and from the tree to
//! an app, a filter or a server. The public functions mirror Paste Deploy's `loadapp`,
//! `loadfilter`, `loadserver` and `appconfig`.
//!
//! ```no_run
//! use indexmap::IndexMap;
//! // Build the app of `[app:main]` (or the composite/pipeline named main) in config.ini.
//! let app = mapproxy_serve::deploy::load_app("config:config.ini", None, &IndexMap::new())
//!     .unwrap_or_else(|errors| panic!("{errors}"));
//! // `app` is a tower::Service<Request<Body>>: serve it with hyper, or nest it in axum.
//! # let _ = app;
//! ```
//!
//! `global_conf` values act like command-line `NAME=VALUE` values: they are in every
//! global_conf and win over `[DEFAULT]` inside `%(...)s`, used literally (`%` in them is not
//! interpolated): deliberate differences from Paste.
//! As in Paste, a section's own key still wins inside its `%(...)s`, and a section key that is
//! also a `global_conf` value is dropped from its local_conf (with a warning).
//!
//! Limits, each a configuration error naming file:line (Paste has none but Python's recursion
//! limit): a cycle through any kind of reference (`use`, a composite's apps, `pipeline`,
//! `next`, `filter-with`, `config:` includes) is printed as a chain; sections nest at most
//! [`MAX_NESTING`] (100) deep; one load copies at most [`MAX_WORK`] settings. The ini limits
//! (file size and type, value length) are in [`crate::ini`].

mod resolve;
mod spec;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

pub use resolve::{Loader, ObjType, MAX_NESTING, MAX_WORK};
pub use spec::{Node, Spec};

use crate::app::{App, Filter};
use crate::build::{BuildContext, Finished};
use crate::error::{ConfigError, ConfigErrors};
use crate::ini::IniFile;
use mapproxy_serve_core::server::Server;

/// Normalise a config URI as the command line and the API take it: `file.ini`,
/// `file.ini#name`, `config:file.ini#name`, `egg:Dist#name`. A bare path gets `config:`.
pub fn normalize_uri(uri: &str) -> String {
    let has_scheme = uri
        .find(':')
        .is_some_and(|i| i > 1 && uri[..i].chars().all(|c| c.is_ascii_alphabetic()));
    if has_scheme {
        uri.to_string()
    } else {
        format!("config:{uri}")
    }
}

/// The stack resolution and building run on (see [`on_deep_stack`]).
const DEEP_STACK: usize = 32 * 1024 * 1024;

/// Run `f` on a thread of its own with a [`DEEP_STACK`]-byte stack, and wait for it.
///
/// Resolving and building recurse once per nesting level (at most [`MAX_NESTING`] levels),
/// and a level can take tens of kilobytes of stack in a debug build: more than the 2 MiB a
/// tokio blocking thread (a reload) or a test thread has. The thread keeps the caller's tokio
/// runtime context, so factories see the same runtime. If no thread can be started, `f` runs
/// here. A panic in `f` is resumed in the caller.
pub(crate) fn on_deep_stack<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    thread_local! {
        static DEEP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    if DEEP.with(std::cell::Cell::get) {
        return f();
    }
    let handle = tokio::runtime::Handle::try_current().ok();
    let mut f = Some(f);
    let joined = std::thread::scope(|scope| {
        let f = &mut f;
        let spawned = std::thread::Builder::new()
            .name("mapproxy-serve-config".into())
            .stack_size(DEEP_STACK)
            .spawn_scoped(scope, move || {
                let _rt = handle.as_ref().map(|h| h.enter());
                DEEP.with(|d| d.set(true));
                f.take().map(|f| f())
            });
        spawned.map(|t| t.join())
    });
    match joined {
        Ok(Ok(Some(r))) => r,
        Ok(Err(panic)) => std::panic::resume_unwind(panic),
        // No thread could be started: run here.
        Ok(Ok(None)) | Err(_) => match f.take() {
            Some(f) => f(),
            None => unreachable!("the closure ran and returned"),
        },
    }
}

fn load(
    ty: ObjType,
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Result<(Spec, Loader), ConfigErrors> {
    let mut loader = Loader::new(global_conf.clone());
    let spec = loader.load_uri(ty, &normalize_uri(uri), name, Path::new(""), global_conf)?;
    Ok((spec, loader))
}

/// Paste's `loadapp`: build the app `name` (default: the URI's fragment, else `main`), on the
/// tokio runtime this thread is in (else [`BuildContext::standalone`]'s). What the factories left in their build context (watched
/// files, warnings, shutdown work) is dropped: use [`Deployment::build_app`] to keep it.
pub fn load_app(
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Result<App, ConfigErrors> {
    let mut ctx = BuildContext::current();
    on_deep_stack(|| {
        load(ObjType::App, uri, name, global_conf)?
            .0
            .build_app(&mut ctx)
    })
}

/// Paste's `loadfilter` (inside a tokio runtime, as [`load_app`]).
pub fn load_filter(
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Result<Filter, ConfigErrors> {
    let mut ctx = BuildContext::current();
    on_deep_stack(|| {
        load(ObjType::Filter, uri, name, global_conf)?
            .0
            .build_filter(&mut ctx)
    })
}

/// Paste's `loadserver`.
pub fn load_server(
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Result<Box<dyn Server>, ConfigErrors> {
    on_deep_stack(|| {
        load(ObjType::Server, uri, name, global_conf)?
            .0
            .build_server()
    })
}

/// An app's configuration as Paste's `appconfig` gives it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct AppConfig {
    /// The section's own options.
    pub local_conf: IndexMap<String, String>,
    /// `[DEFAULT]`, `here`, `__file__`, `set` keys and the caller's values.
    pub global_conf: IndexMap<String, String>,
}

impl AppConfig {
    /// Paste's merged view: global_conf updated by local_conf.
    pub fn merged(&self) -> IndexMap<String, String> {
        let mut m = self.global_conf.clone();
        for (k, v) in &self.local_conf {
            m.insert(k.clone(), v.clone());
        }
        m
    }
}

/// Paste's `appconfig`: the options an app would be built with, without building it.
///
/// As in Paste, the factory is found but never asked anything: options it does not know, a
/// composite's keys that name no app, values it would refuse are not errors here (building
/// the app, `check` and serving report them). Errors are what Paste's `appconfig` fails on too:
/// files, sections, `use`, interpolation, an egg that is not registered.
pub fn app_config(
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Result<AppConfig, ConfigErrors> {
    Ok(app_config_with_warnings(uri, name, global_conf)?.0)
}

/// [`app_config`], with the loader's warnings (keys dropped because `[DEFAULT]` or the caller's
/// values shadow them, options that have no effect), each with file:line.
pub fn app_config_with_warnings(
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Result<(AppConfig, Vec<ConfigError>), ConfigErrors> {
    on_deep_stack(|| {
        let mut loader = Loader::configs_only(global_conf.clone());
        let spec = loader.load_uri(
            ObjType::App,
            &normalize_uri(uri),
            name,
            Path::new(""),
            global_conf,
        )?;
        let conf = AppConfig {
            local_conf: spec.local_conf(),
            global_conf: spec.global_conf(),
        };
        Ok((conf, std::mem::take(&mut loader.warnings)))
    })
}

/// What `check` and serving would refuse in the app that resolving it finds, without
/// calling any factory (what `appconfig` warns about): options a factory does not declare, a
/// composite's keys that name no app (its `children` function only reads the keys), the
/// sections those apps name. Values are not checked: only a factory's build function reads
/// them, and building may have side effects. Empty when the app resolves.
pub fn app_refusals(
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Vec<ConfigError> {
    match app_spec(uri, name, global_conf) {
        Ok(_) => Vec::new(),
        Err(e) => e.0,
    }
}

/// The spec tree of an app, without building it (`inspect`).
pub fn app_spec(
    uri: &str,
    name: Option<&str>,
    global_conf: &IndexMap<String, String>,
) -> Result<Spec, ConfigErrors> {
    Ok(on_deep_stack(|| load(ObjType::App, uri, name, global_conf))?.0)
}

/// Everything `mapproxy-serve CONFIG_URI` serves: the app and server specs, the files read
/// (for `--reload`) and the top file (its logging sections).
pub struct Deployment {
    /// The app tree.
    pub app: Spec,
    /// The server tree; `None` when the file has no server section and none was asked for.
    pub server: Option<Spec>,
    /// Every ini file the configuration read (absolute paths).
    pub files: Vec<PathBuf>,
    /// The top file.
    pub config: Arc<IniFile>,
    /// Non-fatal findings, each with file:line.
    pub warnings: Vec<ConfigError>,
}

/// An app built from a [`Deployment`], with what its factories left in their build context.
pub struct BuiltApp {
    /// The app.
    pub app: App,
    /// Watched files, warnings, shutdown work, console-logger requests.
    pub context: Finished,
}

impl Deployment {
    /// Build the app on `runtime` (a build may spawn tasks there). All errors are collected.
    pub fn build_app(&self, runtime: &tokio::runtime::Handle) -> Result<BuiltApp, ConfigErrors> {
        let _in_runtime = runtime.enter();
        let mut ctx = BuildContext::new(runtime.clone());
        let app = self.app.build_app(&mut ctx)?;
        Ok(BuiltApp {
            app,
            context: ctx.finish(),
        })
    }

    /// Every file the configuration read: the ini files, then the files the factories of
    /// `built` watch.
    pub fn all_files(&self, built: &Finished) -> Vec<PathBuf> {
        let mut files = self.files.clone();
        for f in &built.watched {
            if !files.contains(f) {
                files.push(f.clone());
            }
        }
        files
    }

    /// Resolve `uri` (`file.ini`, `file.ini#name`): the fragment names both the app and the
    /// server unless `app_name` / `server_name` are given (as `pserve` does). All errors of both
    /// trees are collected.
    pub fn resolve(
        uri: &str,
        app_name: Option<&str>,
        server_name: Option<&str>,
        vars: &IndexMap<String, String>,
    ) -> Result<Deployment, ConfigErrors> {
        on_deep_stack(|| Self::resolve_here(uri, app_name, server_name, vars))
    }

    fn resolve_here(
        uri: &str,
        app_name: Option<&str>,
        server_name: Option<&str>,
        vars: &IndexMap<String, String>,
    ) -> Result<Deployment, ConfigErrors> {
        let uri = normalize_uri(uri);
        let frag = uri
            .split_once('#')
            .map(|(_, f)| f.to_string())
            .filter(|f| !f.is_empty());
        let path = uri
            .strip_prefix("config:")
            .map(|p| p.split('#').next().unwrap_or(p).to_string())
            .ok_or_else(|| {
                ConfigError::new(format!(
                    "'{uri}' is not a config file (expected FILE.ini or FILE.ini#name)"
                ))
            })?;
        let mut loader = Loader::new(vars.clone());
        let config = loader.file(Path::new(&path))?;
        let mut errs = ConfigErrors::new();
        let app_name = app_name
            .map(str::to_string)
            .or(frag.clone())
            .unwrap_or_else(|| "main".into());
        let app =
            errs.take(loader.load_uri(ObjType::App, &uri, Some(&app_name), Path::new(""), vars));
        let server_wanted = server_name
            .map(str::to_string)
            .or(frag)
            .unwrap_or_else(|| "main".into());
        let has_server_section = config.sections.iter().any(|s| {
            s.name
                .strip_prefix("server:")
                .is_some_and(|n| n.trim() == server_wanted)
        });
        let server = if has_server_section || server_name.is_some() {
            errs.take(loader.load_uri(
                ObjType::Server,
                &uri,
                Some(&server_wanted),
                Path::new(""),
                vars,
            ))
        } else {
            None
        };
        match app {
            Some(app) if errs.is_empty() => Ok(Deployment {
                app,
                server,
                files: loader.files(),
                config,
                warnings: std::mem::take(&mut loader.warnings),
            }),
            _ => Err(errs),
        }
    }
}
