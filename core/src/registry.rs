//! The link-time registry of factories: apps, filters, filter-apps, composites and servers,
//! each known by one or more egg names (`Paste#urlmap`, `mapproxy-serve#urlmap`).
//!
//! Any crate linked into the binary adds a factory with [`register_factory!`]; nothing has to
//! call it. A crate that is never referenced is not linked: the binary that wants its
//! factories says `use that_crate as _;`.
//!
//! ```
//! use mapproxy_serve_core::registry::{Build, Factory, Opt};
//! use mapproxy_serve_core::{app::text_response, build::BuildContext, config::FactoryConf};
//! use mapproxy_serve_core::{error::ConfigErrors, App};
//!
//! pub fn build_hello(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
//!     let greeting = conf.get("greeting").unwrap_or("hello").to_string();
//!     Ok(mapproxy_serve_core::app::app_fn(move |_req| {
//!         let body = greeting.clone();
//!         async move { text_response(http::StatusCode::OK, "text/plain", body) }
//!     }))
//! }
//!
//! mapproxy_serve_core::register_factory!(Factory {
//!     eggs: &["my-dist#hello"],
//!     summary: "answers every request with a greeting",
//!     options: &[Opt::new("greeting", "the text to answer with")],
//!     build: Build::App(build_hello),
//!     ..Factory::DEFAULT
//! });
//! ```

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::app::{App, Filter};
use crate::build::BuildContext;
use crate::config::FactoryConf;
use crate::error::{ConfigError, ConfigErrors};
use crate::server::Server;

/// One documented option of a factory.
#[derive(Clone, Copy, Debug)]
pub struct Opt {
    /// The key as written in the ini section.
    pub name: &'static str,
    /// One line: what it does, its default.
    pub doc: &'static str,
}

impl Opt {
    /// A documented option.
    pub const fn new(name: &'static str, doc: &'static str) -> Self {
        Opt { name, doc }
    }
}

/// A key in a composite's section that names an app (`/foo = foo_app`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Child {
    /// The key (`/foo`, `domain example.org /x`, `app1`, `not_found_app`).
    pub key: String,
    /// The app it names: a section name or a URI (`config:other.ini#x`, `egg:Dist#name`).
    pub app: String,
}

/// `Build::Composite::children`: which keys of the section name apps.
pub type ChildrenFn = fn(&FactoryConf) -> Result<Vec<Child>, ConfigErrors>;

/// `Build::Composite::build`: the composite from its built children.
pub type CompositeFn =
    fn(&FactoryConf, &mut BuildContext, Vec<(Child, App)>) -> Result<App, ConfigErrors>;

/// `Build::App`: options → app.
pub type AppFn = fn(&FactoryConf, &mut BuildContext) -> Result<App, ConfigErrors>;

/// `Build::Filter`: options → filter.
pub type FilterFn = fn(&FactoryConf, &mut BuildContext) -> Result<Filter, ConfigErrors>;

/// `Build::FilterApp`: options + the wrapped app → app.
pub type FilterAppFn = fn(&FactoryConf, &mut BuildContext, App) -> Result<App, ConfigErrors>;

/// `Build::Server`: options → server. Servers are built before the tokio runtime exists
/// (their `threads` option sizes it), so they get no [`BuildContext`].
pub type ServerFn = fn(&FactoryConf) -> Result<Box<dyn Server>, ConfigErrors>;

/// How a factory builds its object.
#[derive(Clone, Copy)]
pub enum Build {
    /// `paste.app_factory`: options → app.
    App(AppFn),
    /// `paste.filter_factory`: options → filter.
    Filter(FilterFn),
    /// `paste.filter_app_factory`: options + the wrapped app → app.
    FilterApp(FilterAppFn),
    /// `paste.composite_factory`: `children` says which keys name apps (so the tree can be
    /// inspected before anything is built); `build` gets them built, in the same order.
    Composite {
        /// The apps this section names.
        children: ChildrenFn,
        /// Build the composite from its built children.
        build: CompositeFn,
    },
    /// `paste.server_factory`: options → a server that runs an app.
    Server(ServerFn),
}

/// What kind of object a factory makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kind {
    /// An application.
    App,
    /// A filter (`filter(app) -> app`).
    Filter,
    /// A filter that is given its app when built.
    FilterApp,
    /// An application made of other applications.
    Composite,
    /// A server.
    Server,
}

impl Kind {
    /// The word used in messages and `list-factories`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::App => "app",
            Kind::Filter => "filter",
            Kind::FilterApp => "filter-app",
            Kind::Composite => "composite",
            Kind::Server => "server",
        }
    }
}

impl Build {
    /// The kind of object this builds.
    pub fn kind(&self) -> Kind {
        match self {
            Build::App(_) => Kind::App,
            Build::Filter(_) => Kind::Filter,
            Build::FilterApp(_) => Kind::FilterApp,
            Build::Composite { .. } => Kind::Composite,
            Build::Server(_) => Kind::Server,
        }
    }
}

fn no_app(_: &FactoryConf, _: &mut BuildContext) -> Result<App, ConfigErrors> {
    Err(ConfigError::new("factory has no build function").into())
}

/// A registered factory. Every field is `const`, so a descriptor can be a `static`.
#[derive(Clone, Copy)]
pub struct Factory {
    /// Egg names, `Dist#entry`; the first is the canonical one (`mapproxy-serve#urlmap`).
    pub eggs: &'static [&'static str],
    /// One line for `list-factories`.
    pub summary: &'static str,
    /// The options a section may give; any other key is an error naming these.
    pub options: &'static [Opt],
    /// Accept any key (composites whose keys are paths or app names).
    pub any_options: bool,
    /// Options accepted for compatibility that mean nothing here (`use_threadpool`,
    /// `threadpool_*`): reported once at debug level. A trailing `*` matches a prefix.
    pub ignored: &'static [&'static str],
    /// How it builds its object.
    pub build: Build,
}

impl Factory {
    /// Defaults for `..Factory::DEFAULT` in descriptors.
    pub const DEFAULT: Factory = Factory {
        eggs: &[],
        summary: "",
        options: &[],
        any_options: false,
        ignored: &[],
        build: Build::App(no_app),
    };

    /// The canonical egg name (`mapproxy-serve#urlmap`).
    pub fn name(&self) -> &'static str {
        self.eggs.first().copied().unwrap_or("")
    }

    /// The kind of object it makes.
    pub fn kind(&self) -> Kind {
        self.build.kind()
    }

    /// Is `key` a documented option?
    pub fn knows_option(&self, key: &str) -> bool {
        self.any_options || self.options.iter().any(|o| o.name == key)
    }

    /// Is `key` accepted but meaningless here?
    pub fn ignores_option(&self, key: &str) -> bool {
        self.ignored.iter().any(|pat| match pat.strip_suffix('*') {
            Some(prefix) => key.starts_with(prefix),
            None => *pat == key,
        })
    }
}

inventory::collect!(Factory);

/// Register a factory; one item at module level.
#[macro_export]
macro_rules! register_factory {
    ($factory:expr) => {
        $crate::inventory::submit! { $factory }
    };
}

/// Python's distribution-name rule: case-insensitive, and `-`, `_`, `.` are the same.
pub fn normalize_dist(dist: &str) -> String {
    dist.chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_lowercase(),
        })
        .collect()
}

/// The lookup key of an egg name: `(normalized dist, entry)`; the entry defaults to `main`.
fn egg_key(egg: &str) -> (String, String) {
    let (dist, entry) = match egg.split_once('#') {
        Some((d, e)) => (d, if e.is_empty() { "main" } else { e }),
        None => (egg, "main"),
    };
    (normalize_dist(dist.trim()), entry.trim().to_string())
}

/// The registry: every linked factory by egg name.
pub struct Registry {
    by_egg: HashMap<(String, String), &'static Factory>,
    all: Vec<&'static Factory>,
    duplicates: Vec<String>,
}

impl Registry {
    fn collect() -> Registry {
        let mut by_egg: HashMap<(String, String), &'static Factory> = HashMap::new();
        let mut all: Vec<&'static Factory> = inventory::iter::<Factory>.into_iter().collect();
        all.sort_by_key(|f| f.name());
        let mut duplicates = Vec::new();
        for f in &all {
            for egg in f.eggs {
                if let Some(prev) = by_egg.insert(egg_key(egg), f) {
                    duplicates.push(format!(
                        "egg:{egg} is registered twice (by {} and {})",
                        prev.name(),
                        f.name()
                    ));
                }
            }
        }
        duplicates.sort();
        Registry {
            by_egg,
            all,
            duplicates,
        }
    }

    /// The factory registered under `egg` (`Dist#entry`, `Dist` meaning `Dist#main`).
    pub fn find(&self, egg: &str) -> Option<&'static Factory> {
        self.by_egg.get(&egg_key(egg)).copied()
    }

    /// Every factory, sorted by canonical name.
    pub fn all(&self) -> &[&'static Factory] {
        &self.all
    }

    /// Every egg name of one distribution (for "did you mean" hints).
    pub fn entries_of(&self, dist: &str) -> Vec<String> {
        let want = normalize_dist(dist);
        let mut v: Vec<String> = self
            .by_egg
            .iter()
            .filter(|((d, _), _)| *d == want)
            .map(|((_, e), _)| e.clone())
            .collect();
        v.sort();
        v
    }

    /// Errors found while collecting (duplicate registrations).
    pub fn check(&self) -> Result<(), ConfigErrors> {
        let errs = ConfigErrors(
            self.duplicates
                .iter()
                .map(|d| ConfigError::new(d.clone()))
                .collect(),
        );
        errs.into_result(())
    }
}

/// The process-wide registry, collected on first use.
pub fn registry() -> &'static Registry {
    static REG: OnceLock<Registry> = OnceLock::new();
    REG.get_or_init(Registry::collect)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dist_names_compare_like_python() {
        assert_eq!(
            normalize_dist("Paste_Deploy"),
            normalize_dist("paste-deploy")
        );
        assert_eq!(normalize_dist("mapproxy.serve"), "mapproxy_serve");
        assert_eq!(egg_key("Paste"), ("paste".into(), "main".into()));
        assert_eq!(egg_key("Paste#urlmap"), ("paste".into(), "urlmap".into()));
    }
}
