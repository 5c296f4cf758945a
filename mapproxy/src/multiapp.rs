//! MultiMapProxy (`egg:MapProxy#multiapp`, MapProxy's `mapproxy/multiapp.py`): every
//! `NAME.yaml` in a directory is a MapProxy served at `/NAME/`.
//!
//! - The first path segment names the project; it moves from `PATH_INFO` to the mount path
//!   (MapProxy's `pop_path`), so the project's URLs are `{script_url}/NAME/...`. `/NAME` without
//!   a trailing slash is served directly, as MapProxy does.
//! - A project is built on its first request and kept in a least-recently-used cache of
//!   `app_cache_size` projects (default 100). A request first checks the modification times of
//!   the project's files (the YAML and its `base:` files): a change rebuilds it.
//! - A project that does not build answers 500 with a short page; the error is logged once per
//!   change of its files, not on every request (MapProxy re-parses and logs on every request).
//! - `/` lists the projects when `allow_listing` is on (MapProxy's page, byte for byte), else
//!   only the welcome line. Listing and lookup agree: a project is a regular file whose name
//!   ends in `.yaml` exactly (MapProxy lists `UPPER.YAML` but then answers 404 for it).
//! - Unknown project: 404 `not found` (`text/plain`, no charset, as MapProxy).
//! - `preload`: build every project when the app is built (MapProxy #671); one that does not
//!   build is a warning then and answers 500 until fixed.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use http::{Request, Response, StatusCode};
use indexmap::IndexMap;
use mapproxy_serve_core::app::{text_response, App, AppFuture, Body, Handler};
use mapproxy_serve_core::environ::{self, MountPath};
use mapproxy_serve_core::error::ConfigErrors;

use crate::escape::{escape_html, percent_decode};
use crate::VERSION;

const TARGET: &str = "mapproxy.multiapp";

/// The suffix of project files (MapProxy's `DirectoryConfLoader` default).
pub const SUFFIX: &str = ".yaml";

/// The name of the project a request is for (MapProxy's `environ['mapproxy.instance_name']`),
/// for authorizers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceName(pub String);

/// A built project: its app and every file it was built from.
pub struct BuiltProject {
    pub app: App,
    pub files: Vec<PathBuf>,
}

/// Builds one project from its YAML file.
pub type ProjectBuilder = Arc<dyn Fn(&Path) -> Result<BuiltProject, ConfigErrors> + Send + Sync>;

/// The modification times of a project's files when it was built (`None`: missing).
type Stamps = Vec<(PathBuf, Option<SystemTime>)>;

fn stamps(files: &[PathBuf]) -> Stamps {
    files
        .iter()
        .map(|f| (f.clone(), mtime(f)))
        .collect::<Vec<_>>()
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

fn changed(stamps: &Stamps) -> bool {
    stamps.iter().any(|(f, t)| mtime(f) != *t)
}

enum Entry {
    Built { app: App, stamps: Stamps },
    Broken { stamps: Stamps },
}

impl Entry {
    fn stamps(&self) -> &Stamps {
        match self {
            Entry::Built { stamps, .. } | Entry::Broken { stamps } => stamps,
        }
    }
}

/// Options of a MultiMapProxy.
#[derive(Clone, Debug)]
pub struct MultiAppOptions {
    pub config_dir: PathBuf,
    pub allow_listing: bool,
    pub app_cache_size: usize,
}

/// The MultiMapProxy app.
pub struct MultiApp {
    opts: MultiAppOptions,
    builder: ProjectBuilder,
    /// Projects by name, least recently used first.
    cache: Mutex<IndexMap<String, Arc<Entry>>>,
    /// One build at a time (MapProxy's `_app_init_lock`): concurrent first requests for a
    /// project build it once.
    building: tokio::sync::Mutex<()>,
}

impl MultiApp {
    pub fn new(opts: MultiAppOptions, builder: ProjectBuilder) -> MultiApp {
        MultiApp {
            opts,
            builder,
            cache: Mutex::new(IndexMap::new()),
            building: tokio::sync::Mutex::new(()),
        }
    }

    /// The projects in the directory, sorted (MapProxy's `available_apps`).
    pub fn available(&self) -> Vec<String> {
        let Ok(dir) = std::fs::read_dir(&self.opts.config_dir) else {
            return Vec::new();
        };
        let mut names: Vec<String> = dir
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let stem = name.strip_suffix(SUFFIX)?;
                (!stem.is_empty() && self.project_file(stem).is_some()).then(|| stem.to_string())
            })
            .collect();
        names.sort();
        names
    }

    /// The YAML of project `name`, when it is a regular file.
    pub fn project_file(&self, name: &str) -> Option<PathBuf> {
        if name.is_empty() || name.contains(['/', '\\', '\0']) || name == "." || name == ".." {
            return None;
        }
        let p = self.opts.config_dir.join(format!("{name}{SUFFIX}"));
        p.is_file().then_some(p)
    }

    /// Build every project now (`preload`); returns the names and errors of those that failed.
    pub fn preload(&self) -> Vec<(String, ConfigErrors)> {
        let mut failed = Vec::new();
        for name in self.available() {
            if let Err(e) = self.build(&name) {
                failed.push((name, e));
            }
        }
        failed
    }

    fn cached(&self, name: &str) -> Option<Arc<Entry>> {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let idx = cache.get_index_of(name)?;
        let last = cache.len() - 1;
        cache.move_index(idx, last);
        cache.get(name).cloned()
    }

    fn insert(&self, name: &str, entry: Arc<Entry>) {
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        cache.shift_remove(name);
        cache.insert(name.to_string(), entry);
        while cache.len() > self.opts.app_cache_size.max(1) {
            cache.shift_remove_index(0);
        }
    }

    /// Build project `name` now and cache the result (a failure is cached too, so it is
    /// reported once per change of its files).
    fn build(&self, name: &str) -> Result<App, ConfigErrors> {
        let Some(file) = self.project_file(name) else {
            return Err(ConfigErrors::from(
                mapproxy_serve_core::error::ConfigError::new(format!(
                    "no project {name} in {}",
                    self.opts.config_dir.display()
                )),
            ));
        };
        log::info!(target: TARGET, "initializing project app {name} with {}", file.display());
        match (self.builder)(&file) {
            Ok(p) => {
                let app = p.app.clone();
                let mut files = p.files;
                if !files.contains(&file) {
                    files.push(file);
                }
                self.insert(
                    name,
                    Arc::new(Entry::Built {
                        app: p.app,
                        stamps: stamps(&files),
                    }),
                );
                Ok(app)
            }
            Err(e) => {
                log::error!(target: TARGET, "project {name} does not build (answering 500 until its files change):\n{e}");
                // Watch the project file (its includes are unknown when it does not parse).
                self.insert(
                    name,
                    Arc::new(Entry::Broken {
                        stamps: stamps(&[file]),
                    }),
                );
                Err(e)
            }
        }
    }

    /// The cached project when its files did not change: `Some(None)` for a broken one.
    fn fresh(&self, name: &str) -> Option<Option<App>> {
        let e = self.cached(name)?;
        if changed(e.stamps()) {
            return None;
        }
        Some(match &*e {
            Entry::Built { app, .. } => Some(app.clone()),
            Entry::Broken { .. } => None,
        })
    }

    /// The project's app, building it when it is not cached or its files changed.
    async fn project(&self, name: &str) -> Option<App> {
        if let Some(app) = self.fresh(name) {
            return app;
        }
        let _one = self.building.lock().await;
        // Built by the request we waited for?
        if let Some(app) = self.fresh(name) {
            return app;
        }
        // Building reads files and may take milliseconds: keep other tasks of this worker going.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.build(name)).ok()
            }
            _ => self.build(name).ok(),
        }
    }

    fn index(&self, script_url: &str) -> Response<Body> {
        let mut html = format!("<html><body><h1>Welcome to MapProxy {VERSION}</h1>");
        if self.opts.allow_listing {
            let url = escape_html(script_url);
            html.push_str("<h2>available instances:</h2><ul>");
            let items: Vec<String> = self
                .available()
                .iter()
                .map(|name| {
                    let name = escape_html(name);
                    format!("<li><a href=\"{url}/{name}/\">{name}</a></li>")
                })
                .collect();
            html.push_str(&items.join("\n"));
            html.push_str("</ul>");
        }
        html.push_str("</body></html>");
        text_response(StatusCode::OK, "text/html", html)
    }
}

/// Split off the first segment of `PATH_INFO` (MapProxy's `pop_path`): the segment and the rest.
fn pop_path(path_info: &str) -> (&str, &str) {
    let path = path_info.trim_start_matches('/');
    match path.find('/') {
        Some(i) => (&path[..i], &path[i..]),
        None => (path, ""),
    }
}

/// What a broken project answers.
fn broken(name: &str) -> Response<Body> {
    text_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/plain; charset=utf-8",
        format!("the configuration of project {name} has errors (see the log)"),
    )
}

/// The app, shared by the handler.
#[derive(Clone)]
pub struct MultiAppHandler(pub Arc<MultiApp>);

impl Handler for MultiAppHandler {
    fn call(&self, mut req: Request<Body>) -> AppFuture {
        let multi = self.0.clone();
        AppFuture::new(async move {
            let path_info = environ::path_info(&req).to_string();
            let (segment, rest) = pop_path(&path_info);
            let name = match percent_decode(segment) {
                Some(n) => n,
                None => {
                    return text_response(StatusCode::NOT_FOUND, "text/plain", "not found");
                }
            };
            if name.is_empty() {
                return multi.index(&environ::script_url(&req));
            }
            if multi.project_file(&name).is_none() && multi.cached(&name).is_none() {
                return text_response(StatusCode::NOT_FOUND, "text/plain", "not found");
            }
            let Some(app) = multi.project(&name).await else {
                return broken(&name);
            };
            let mount = format!("{}/{}", environ::mount_path(&req), segment);
            if environ::set_path_info(&mut req, rest).is_err() {
                return text_response(StatusCode::NOT_FOUND, "text/plain", "not found");
            }
            req.extensions_mut().insert(MountPath(mount));
            req.extensions_mut().insert(InstanceName(name));
            app.call(req).await
        })
    }
}

/// Names of projects that are cached now (tests and `inspect`).
impl MultiApp {
    pub fn cached_names(&self) -> Vec<String> {
        self.cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .keys()
            .cloned()
            .collect()
    }
}

/// `egg:MapProxy#multiapp`.
pub fn factory(
    conf: &mapproxy_serve_core::config::FactoryConf,
    ctx: &mut mapproxy_serve_core::build::BuildContext,
) -> Result<App, ConfigErrors> {
    conf.require("config_dir")?;
    let dir = conf
        .get_path("config_dir")
        .ok_or_else(|| conf.error("config_dir", "expected a directory"))?;
    if !dir.is_dir() {
        return Err(conf
            .error(
                "config_dir",
                format!("{} is not a directory", dir.display()),
            )
            .into());
    }
    let allow_listing = conf.get_bool("allow_listing", false)?;
    let app_cache_size = conf
        .get_int::<usize>("app_cache_size", 1..=100_000)?
        .unwrap_or(100);
    let preload = conf.get_bool("preload", false)?;
    let builder: ProjectBuilder = Arc::new(|path: &Path| {
        let built = crate::app::build(path)?;
        for w in &built.warnings {
            log::warn!(target: "mapproxy.config", "{w}");
        }
        Ok(BuiltProject {
            app: built.app,
            files: built.files,
        })
    });
    let multi = Arc::new(MultiApp::new(
        MultiAppOptions {
            config_dir: dir,
            allow_listing,
            app_cache_size,
        },
        builder,
    ));
    if preload {
        for (name, errs) in multi.preload() {
            for e in errs.0 {
                let loc = e
                    .location
                    .clone()
                    .unwrap_or_else(|| conf.location_of("preload"));
                ctx.warn(loc, format!("project {name}: {}", e.message));
            }
        }
    }
    Ok(App::from_handler(MultiAppHandler(multi)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pop_path_as_mapproxy() {
        assert_eq!(pop_path("/foo/service"), ("foo", "/service"));
        assert_eq!(pop_path("/service"), ("service", ""));
        assert_eq!(pop_path(""), ("", ""));
        assert_eq!(pop_path("/foo/"), ("foo", "/"));
    }
}
