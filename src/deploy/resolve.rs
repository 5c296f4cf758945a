//! Paste Deploy's rules, section by section: `use`, `set`/`get`, `[DEFAULT]`, `filter-with`,
//! `[pipeline:]`, `[filter-app:]`, composites, `config:`/`egg:` URIs, cycles.
//! (Python: `paste.deploy.loadwsgi.ConfigLoader.get_context` and friends.)
//!
//! Bounds (Python has none but its recursion limit):
//! - every section being resolved is on a stack; naming one that is already there is a
//!   cycle, whichever way it is named (`use`, `next`, `pipeline`, `filter-with`, a composite's
//!   apps such as urlmap's paths and `not_found_app` or cascade's `app1`, a `config:` include);
//! - the stack is at most [`MAX_NESTING`] sections deep, so resolving (and building, which
//!   follows the same tree) recurses a bounded number of times;
//! - one load copies at most [`MAX_WORK`] settings into the tree (each resolved section gets
//!   its own global_conf, so a composite fanning out to composites, or a large `[DEFAULT]`
//!   repeated for thousands of mounts, ends with an error instead of exhausting memory).
//!
//! `config:` paths: a relative path is joined to the directory of the file that names it
//! (its `%(here)s`), and the file is opened by its canonical path, resolved by the file system
//! (symlinks, then `..`), so it does not matter how the top file was named on the command line.
//! Messages name an included file as it was written, joined to its includer's name.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::spec::{Node, Spec};
use crate::config::{ConfValue, FactoryConf};
use crate::error::{ConfigError, ConfigErrors, Location};
use crate::ini::{Entry, IniFile, Section, Vars};
use crate::registry::{registry, Build, Factory, Kind};

/// How many sections deep a resolution may go: a `use` chain, a composite's app, a pipeline's
/// items, `filter-with`, `next` and `config:` includes each add one level.
pub const MAX_NESTING: usize = 100;

/// How many settings one load may copy into the tree (see the module docs): a resolved
/// section counts 16 (`SECTION_COST`) plus its keys, its file's `[DEFAULT]` keys and the
/// global_conf it is given. A 100,000-mount urlmap takes about 2.1 million; at the bound the
/// tree takes about 400 MB.
pub const MAX_WORK: usize = 4_000_000;

/// What resolving a section costs besides its settings (its name, location and node take
/// about as much memory as 16 settings).
const SECTION_COST: usize = 16;

/// A section on the resolution stack: its file's canonical path, its header, where it is.
type StackEntry = (PathBuf, String, Location);

/// The three things Paste Deploy loads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjType {
    /// An app (`app:`, `application:`, `composite:`, `composit:`, `pipeline:`, `filter-app:`).
    App,
    /// A filter (`filter:`).
    Filter,
    /// A server (`server:`).
    Server,
}

impl ObjType {
    fn prefix_groups(self) -> &'static [&'static [&'static str]] {
        match self {
            ObjType::App => &[
                &["app", "application"],
                &["composite", "composit"],
                &["pipeline"],
                &["filter-app"],
            ],
            ObjType::Filter => &[&["filter"]],
            ObjType::Server => &[&["server"]],
        }
    }

    fn accepts(self, kind: Kind) -> bool {
        match self {
            ObjType::App => matches!(kind, Kind::App | Kind::Composite),
            ObjType::Filter => matches!(kind, Kind::Filter | Kind::FilterApp),
            ObjType::Server => kind == Kind::Server,
        }
    }

    fn word(self) -> &'static str {
        match self {
            ObjType::App => "app",
            ObjType::Filter => "filter",
            ObjType::Server => "server",
        }
    }

    fn prefixes_text(self) -> String {
        let all: Vec<String> = self
            .prefix_groups()
            .iter()
            .flat_map(|g| g.iter())
            .map(|p| format!("'{p}'"))
            .collect();
        all.join(" or ")
    }
}

/// A context before it is placed in the tree: `use` may still merge options into it.
struct Ctx {
    name: String,
    node: CtxNode,
    local: IndexMap<String, ConfValue>,
    global: IndexMap<String, String>,
    location: Option<Location>,
    uses: Vec<String>,
    /// The file whose sections the node's names resolve against (composite children).
    loader_file: Option<Arc<IniFile>>,
    /// The global_conf `loader_file` was loaded with (see [`Loaded`]).
    loaded: Loaded,
    /// The sections this context was resolved through (outermost first): they were on the
    /// stack while it was made, and are again while its composite children are resolved.
    trail: Vec<StackEntry>,
}

impl Ctx {
    /// A structural node (pipeline, filter-app, filter-with): already placed, takes no options.
    fn done(
        name: &str,
        node: Node,
        global: IndexMap<String, String>,
        location: Option<Location>,
        file: &Arc<IniFile>,
        loaded: &Loaded,
    ) -> Ctx {
        Ctx {
            name: name.to_string(),
            node: CtxNode::Done(node),
            local: IndexMap::new(),
            global,
            location,
            uses: Vec::new(),
            loader_file: Some(file.clone()),
            loaded: loaded.clone(),
            trail: Vec::new(),
        }
    }
}

/// The global_conf a file was loaded with (`config:` URI): the caller's values for the top
/// file, the including section's global_conf for an included one. Paste adds them to the
/// file's parser defaults (below its own `[DEFAULT]`), so they are what a section of that file
/// sees in `%(...)s` besides its own keys and `[DEFAULT]`, and section keys they name are
/// dropped from local_conf. A `set` in a section of the same file is not among them: it
/// changes global_conf, not the file's defaults.
type Loaded = Arc<IndexMap<String, String>>;

// Built once per load; boxing the factory variant buys nothing.
#[allow(clippy::large_enum_variant)]
enum CtxNode {
    Factory {
        factory: &'static Factory,
        egg: String,
    },
    Done(Node),
}

/// Where a key `section_ctx` reads comes from (Paste's `parser.options(section)`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The section itself.
    Section,
    /// The file's `[DEFAULT]` (a `set`/`get` key).
    Default,
    /// The global_conf the file was loaded with (an includer's `set`/`get` key).
    Loaded,
}

/// Is `name` a URI (`^[a-zA-Z]+:`) rather than a section name?
fn is_uri(name: &str) -> bool {
    match name.find(':') {
        Some(i) if i > 0 => name[..i].chars().all(|c| c.is_ascii_alphabetic()),
        _ => false,
    }
}

/// `a/b/../c` → `a/c` without touching the file system (symlinks are not resolved).
/// `/..` is `/`; a relative path keeps the `..` it cannot remove (`../../x` stays so).
fn normalize_lexically(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::ParentDir | Component::CurDir) | None => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `p` made absolute against the current directory, `.` and `..` removed lexically.
fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        return normalize_lexically(p);
    }
    let cwd = std::env::current_dir().unwrap_or_default();
    normalize_lexically(&cwd.join(p))
}

/// Where relative `config:` paths start: a directory as the user wrote it (messages) and the
/// same directory absolute (opening, `%(__file__)s`).
struct Base {
    shown: PathBuf,
    abs: PathBuf,
}

impl Base {
    /// The directory of `file` (its `%(here)s`).
    fn of_file(file: &IniFile) -> Base {
        Base {
            shown: file
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
            abs: file.here.clone(),
        }
    }

    /// A directory (`""`: the current one).
    fn dir(dir: &Path) -> Base {
        Base {
            shown: dir.to_path_buf(),
            abs: absolute(dir),
        }
    }
}

/// Resolves sections into specs. One per load (or reload); it caches files and records every
/// file it read, for `--reload`.
pub struct Loader {
    /// Command-line `NAME=VALUE`: in every global_conf, and winning over `[DEFAULT]` in `%(...)s`.
    cli_vars: IndexMap<String, String>,
    /// Files by canonical path.
    files: IndexMap<PathBuf, Arc<IniFile>>,
    indexes: HashMap<PathBuf, Arc<SectionIndex>>,
    /// `[DEFAULT]` interpolated, per file, when it does not depend on the includer's values
    /// (`None`: it does, and is interpolated for each section).
    defaults: HashMap<PathBuf, Option<Arc<IndexMap<String, String>>>>,
    stack: Vec<StackEntry>,
    /// Settings copied so far (bounded by [`MAX_WORK`]).
    work: usize,
    /// Sections resolved so far.
    resolved: usize,
    /// Non-fatal findings (a section key shadowed by `[DEFAULT]`, ignored options).
    pub warnings: Vec<ConfigError>,
    /// Resolve as Paste's `appconfig` does: find each factory, never ask it anything, so
    /// options it does not know are not checked and a composite's apps are not resolved.
    configs_only: bool,
}

impl Loader {
    /// A loader with the command line's `NAME=VALUE` values.
    pub fn new(cli_vars: IndexMap<String, String>) -> Self {
        Loader {
            cli_vars,
            files: IndexMap::new(),
            indexes: HashMap::new(),
            defaults: HashMap::new(),
            stack: Vec::new(),
            work: 0,
            resolved: 0,
            warnings: Vec::new(),
            configs_only: false,
        }
    }

    /// A loader for Paste's `appconfig`: the factories are found (an unknown egg is still an
    /// error) but their options are not checked against them and a composite's apps are not
    /// resolved, as Paste never calls the factory. The tree is for reading configurations,
    /// not for building.
    pub fn configs_only(cli_vars: IndexMap<String, String>) -> Self {
        Loader {
            configs_only: true,
            ..Loader::new(cli_vars)
        }
    }

    /// Every file read so far (canonical paths), in read order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.keys().cloned().collect()
    }

    /// The parsed file at `path` (relative: to the current directory), cached by its
    /// canonical path.
    pub fn file(&mut self, path: &Path) -> Result<Arc<IniFile>, ConfigErrors> {
        let cwd = std::env::current_dir().unwrap_or_default();
        self.file_at(path, &cwd.join(path), &absolute(path))
    }

    /// The file named `shown` in messages, opened at `open` (resolved by the file system, so
    /// `dir/link/../x.ini` is what the kernel says it is), with `abs` as its `%(__file__)s`.
    fn file_at(
        &mut self,
        shown: &Path,
        open: &Path,
        abs: &Path,
    ) -> Result<Arc<IniFile>, ConfigErrors> {
        let real = std::fs::canonicalize(open)
            .map_err(|e| ConfigError::in_file(shown, format!("cannot read: {e}")))?;
        if let Some(f) = self.files.get(&real) {
            return Ok(f.clone());
        }
        let f = Arc::new(IniFile::read_at(&real, shown, abs)?);
        self.files.insert(real, f.clone());
        Ok(f)
    }

    /// Paste's `loadcontext`: a URI (`config:file.ini#name`, `egg:Dist#name`) → spec.
    /// Relative `config:` paths are joined to `relative_to` (a directory as the user wrote it).
    pub fn load_uri(
        &mut self,
        ty: ObjType,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
        global: &IndexMap<String, String>,
    ) -> Result<Spec, ConfigErrors> {
        let ctx = self.uri_context(ty, uri, name, &Base::dir(relative_to), global, None)?;
        self.finalize(ctx)
    }

    fn uri_context(
        &mut self,
        ty: ObjType,
        uri: &str,
        name: Option<&str>,
        base: &Base,
        global: &IndexMap<String, String>,
        from: Option<&Location>,
    ) -> Result<Ctx, ConfigErrors> {
        let err = |msg: String| -> ConfigErrors {
            match from {
                Some(l) => l.error(msg).into(),
                None => ConfigError::new(msg).into(),
            }
        };
        let (scheme, rest) = match uri.split_once(':') {
            Some((s, r)) if is_uri(uri) => (s.to_ascii_lowercase(), r),
            _ => {
                return Err(err(format!(
                    "URI has no scheme: '{uri}' (expected config:FILE.ini#name or egg:Dist#name)"
                )))
            }
        };
        match scheme.as_str() {
            "config" => {
                let (path, frag) = match rest.split_once('#') {
                    Some((p, f)) => (p, Some(f)),
                    None => (rest, None),
                };
                let name = name.or(frag).filter(|n| !n.is_empty()).unwrap_or("main");
                let path = path.replace('\\', "/");
                let path = percent_encoding::percent_decode_str(&path).decode_utf8_lossy().into_owned();
                let p = Path::new(&path);
                // `open` keeps its `..`: the file system resolves them after the symlinks.
                let (shown, open) = if p.is_absolute() {
                    (p.to_path_buf(), p.to_path_buf())
                } else {
                    (normalize_lexically(&base.shown.join(p)), base.abs.join(p))
                };
                let file = self.file_at(&shown, &open, &absolute(&open)).map_err(|e| match from {
                    Some(l) => ConfigErrors(
                        e.0.into_iter()
                            .map(|e| l.error(format!("'{uri}': {}", e)))
                            .collect(),
                    ),
                    None => e,
                })?;
                let loaded = Arc::new(global.clone());
                self.section_context(ty, &file, name, global, &loaded, from)
            }
            "egg" => {
                // As for config: URIs, an explicit name beats the fragment.
                let (dist, frag) = match rest.split_once('#') {
                    Some((d, f)) => (d, Some(f)),
                    None => (rest, None),
                };
                let entry = name.or(frag).filter(|n| !n.is_empty()).unwrap_or("main");
                let egg = format!("{dist}#{entry}");
                let factory = find_factory(ty, &egg).map_err(err)?;
                Ok(Ctx {
                    name: uri.to_string(),
                    node: CtxNode::Factory { factory, egg },
                    local: IndexMap::new(),
                    global: global.clone(),
                    location: from.cloned(),
                    uses: Vec::new(),
                    loader_file: None,
                    loaded: Loaded::default(),
                    trail: Vec::new(),
                })
            }
            "call" => Err(err(format!(
                "'{uri}' names Python code; mapproxy-serve builds Rust factories: register one with \
                 mapproxy_serve::register_factory! and write 'use = egg:Dist#name' \
                 (see \"Writing a filter\" in the README; 'mapproxy-serve list-factories' lists them)"
            ))),
            other => Err(err(format!("URI scheme not known: '{other}' (from config, egg)"))),
        }
    }

    /// Paste's `ConfigLoader.get_context`: a name (section or URI) inside `file`.
    fn section_context(
        &mut self,
        ty: ObjType,
        file: &Arc<IniFile>,
        name: &str,
        global: &IndexMap<String, String>,
        loaded: &Loaded,
        from: Option<&Location>,
    ) -> Result<Ctx, ConfigErrors> {
        if is_uri(name) {
            return self.uri_context(ty, name, None, &Base::of_file(file), global, from);
        }
        let index = self
            .indexes
            .entry(file.real_path.clone())
            .or_insert_with(|| Arc::new(index_sections(file)))
            .clone();
        let section = find_section(ty, file, &index, name, from)?;
        let loc = file.location(section);
        let at = from.cloned().unwrap_or_else(|| loc.clone());
        let key = (file.real_path.clone(), section.name.clone());
        if let Some(pos) = self
            .stack
            .iter()
            .position(|(f, s, _)| (f, s) == (&key.0, &key.1))
        {
            let mut chain: Vec<String> = self.stack[pos..].iter().map(stack_text).collect();
            chain.push(format!("[{}]", section.name));
            return Err(at
                .error(format!("circular use: {}", chain.join(" → ")))
                .into());
        }
        if self.stack.len() >= MAX_NESTING {
            let mut chain: Vec<String> = self.stack.iter().map(stack_text).collect();
            if chain.len() > 6 {
                let skipped = chain.len() - 6;
                chain.splice(3..chain.len() - 3, [format!("({skipped} more)")]);
            }
            chain.push(format!("[{}]", section.name));
            return Err(at
                .error(format!(
                    "sections nested more than {MAX_NESTING} deep: {}",
                    chain.join(" → ")
                ))
                .into());
        }
        self.charge(
            SECTION_COST + section.entries.len() + file.defaults.entries.len() + global.len(),
            &at,
        )?;
        self.stack.push((key.0, key.1, loc));
        let r = self.section_ctx(ty, file, section, name, global, loaded);
        let entry = self.stack.pop();
        r.map(|mut ctx| {
            if let Some(entry) = entry {
                ctx.trail.insert(0, entry);
            }
            ctx
        })
    }

    /// Has this load run past [`MAX_WORK`]?
    fn exhausted(&self) -> bool {
        self.work > MAX_WORK
    }

    /// Count `n` settings copied; past [`MAX_WORK`] the load ends with an error at `at`.
    fn charge(&mut self, n: usize, at: &Location) -> Result<(), ConfigErrors> {
        self.resolved += 1;
        self.work = self.work.saturating_add(n);
        if self.work > MAX_WORK {
            return Err(at
                .error(format!(
                    "the configuration is too large to resolve: more than {MAX_WORK} settings \
                     would be copied ({} sections resolved so far; every section a composite or \
                     pipeline names gets its own copy of [DEFAULT] and of its global_conf)",
                    self.resolved
                ))
                .into());
        }
        Ok(())
    }

    /// `[DEFAULT]` of `file` interpolated (Paste's `parser.defaults()`), computed once per file
    /// unless it refers to values only the includer's global_conf has.
    fn defaults_of(
        &mut self,
        file: &IniFile,
        vars: &Vars,
    ) -> Result<Arc<IndexMap<String, String>>, ConfigErrors> {
        match self.defaults.get(&file.real_path) {
            Some(Some(d)) => return Ok(d.clone()),
            Some(None) => return file.defaults_interpolated(vars).map(Arc::new),
            None => {}
        }
        let alone = Vars {
            overrides: vars.overrides.clone(),
            fallbacks: IndexMap::new(),
        };
        match file.defaults_interpolated(&alone) {
            // Nothing came from the fallbacks: the same for every includer.
            Ok(d) => {
                let d = Arc::new(d);
                self.defaults
                    .insert(file.real_path.clone(), Some(d.clone()));
                Ok(d)
            }
            Err(_) => {
                self.defaults.insert(file.real_path.clone(), None);
                file.defaults_interpolated(vars).map(Arc::new)
            }
        }
    }

    fn section_ctx(
        &mut self,
        ty: ObjType,
        file: &Arc<IniFile>,
        section: &Section,
        name: &str,
        global: &IndexMap<String, String>,
        loaded: &Loaded,
    ) -> Result<Ctx, ConfigErrors> {
        let vars = Vars {
            overrides: self.cli_vars.clone(),
            fallbacks: IndexMap::clone(loaded),
        };
        let defaults = self.defaults_of(file, &vars)?;
        let mut gconf = IndexMap::clone(&defaults);
        for (k, v) in global {
            gconf.insert(k.clone(), v.clone());
        }
        // Keys that `[DEFAULT]` or the global_conf the file was loaded with (the caller's
        // command-line values, an includer's global_conf) shadow: Paste drops them, without
        // interpolating them. A `set` of a section of this file does not: `[app:a] set k = 1`
        // with `use = b` leaves b's own `k` in its local_conf.
        let shadowing: HashSet<&str> = defaults
            .keys()
            .chain(loaded.keys())
            .map(String::as_str)
            .collect();
        let mut errs = ConfigErrors::new();
        let mut additions: IndexMap<String, String> = IndexMap::new();
        let mut gets: Vec<(String, String, Location)> = Vec::new();
        let mut local: IndexMap<String, ConfValue> = IndexMap::new();
        // Paste's `parser.options(section)`: the section's keys, then the `[DEFAULT]` keys it
        // does not have. Of those only `set`/`get` keys act (in every section, interpolated
        // in the section's view); the others are global_conf already.
        let default_set_get = file.defaults.entries.iter().filter(|e| {
            (e.key.starts_with("set ") || e.key.starts_with("get "))
                && section.get(&e.key).is_none()
        });
        // Then the values the file was loaded with that neither has (Paste adds them to the
        // file's defaults, below `[DEFAULT]`): an includer's `[DEFAULT]` `set`/`get` keys act
        // here again.
        let loaded_set_get: Vec<Entry> = loaded
            .iter()
            .filter(|(k, _)| {
                (k.starts_with("set ") || k.starts_with("get "))
                    && section.get(k).is_none()
                    && file.defaults.get(k).is_none()
            })
            .map(|(k, v)| Entry {
                key: k.clone(),
                value: v.clone(),
                line: section.line,
            })
            .collect();
        let mut seen_default_keys: HashSet<&str> = HashSet::new();
        let entries = section
            .entries
            .iter()
            .map(|e| (e, Source::Section))
            .chain(default_set_get.map(|e| (e, Source::Default)))
            .filter(|(e, source)| {
                *source != Source::Default || seen_default_keys.insert(e.key.as_str())
            })
            .chain(loaded_set_get.iter().map(|e| (e, Source::Loaded)));
        for (entry, source) in entries {
            let is_set_get = entry.key.starts_with("set ") || entry.key.starts_with("get ");
            let loc = match source {
                Source::Section => file.entry_location(section, entry),
                Source::Default => file.entry_location(&file.defaults, entry),
                Source::Loaded => file.location(section),
            };
            if !is_set_get && shadowing.contains(entry.key.as_str()) {
                let msg = if self.cli_vars.contains_key(&entry.key) {
                    format!(
                        "key '{}' is also given by the caller ({}=... on the command line): as in \
                         Paste Deploy it is dropped from this section's options and the factory \
                         sees the caller's value in global_conf",
                        entry.key, entry.key
                    )
                } else if defaults.contains_key(&entry.key) {
                    format!(
                        "key '{}' is also in [DEFAULT]: as in Paste Deploy it is dropped from this \
                         section's options and the factory sees [DEFAULT]'s value; write 'set {} = ...' \
                         to override it",
                        entry.key, entry.key
                    )
                } else {
                    format!(
                        "key '{}' is also in the global_conf the including file passes (its \
                         [DEFAULT] or a 'set'): as in Paste Deploy it is dropped from this section's \
                         options and the factory sees the includer's value in global_conf",
                        entry.key
                    )
                };
                self.warnings.push(loc.error(msg));
                continue;
            }
            let value = match source {
                Source::Section => file.get(section, &entry.key, &vars),
                Source::Default => file.get_default_in(section, &entry.key, &vars),
                Source::Loaded => file.get_loaded_in(section, entry, &vars),
            };
            let value = match value {
                Ok(v) => v,
                Err(e) => {
                    errs.push(e);
                    continue;
                }
            };
            if let Some(n) = entry.key.strip_prefix("set ") {
                let n = n.trim().to_string();
                additions.insert(n.clone(), value.clone());
                gconf.insert(n, value);
            } else if let Some(n) = entry.key.strip_prefix("get ") {
                gets.push((n.trim().to_string(), value, loc));
            } else {
                local.insert(
                    entry.key.clone(),
                    ConfValue {
                        value,
                        location: loc,
                    },
                );
            }
        }
        for (local_name, glob, loc) in gets {
            match gconf.get(&glob) {
                Some(v) => {
                    local.insert(
                        local_name,
                        ConfValue {
                            value: v.clone(),
                            location: loc,
                        },
                    );
                }
                None => errs.push(loc.error(format!(
                    "key 'get {local_name}': '{glob}' is not in global_conf (known: {})",
                    gconf.keys().cloned().collect::<Vec<_>>().join(", ")
                ))),
            }
        }
        std::mem::take(&mut errs).into_result(())?;
        let filter_with = if matches!(ty, ObjType::App | ObjType::Filter) {
            local.shift_remove("filter-with")
        } else {
            None
        };
        if let Some(req) = local.shift_remove("require") {
            for dist in req.value.split_whitespace() {
                if registry().entries_of(dist).is_empty() {
                    errs.push(req.location.error(format!(
                        "key 'require': distribution '{dist}' has no registered factories"
                    )));
                }
            }
        }
        errs.into_result(())?;
        let sec_loc = file.location(section);
        let prefix = section.name.split(':').next().unwrap_or("").trim();
        let mut ctx = match prefix {
            "filter-app" => {
                self.filter_app(file, section, name, local, &gconf, loaded, &additions)?
            }
            "pipeline" => self.pipeline(file, section, name, local, &gconf, loaded)?,
            _ if local.contains_key("use") => {
                self.use_ctx(ty, file, section, name, local, &gconf, loaded, &additions)?
            }
            _ => return Err(explicit_error(&sec_loc, &local).into()),
        };
        if let Some(fw) = filter_with {
            let f = self.section_context(
                ObjType::Filter,
                file,
                &fw.value,
                &gconf,
                loaded,
                Some(&fw.location),
            )?;
            let filter = self.finalize(f)?;
            let global = ctx.global.clone();
            let location = ctx.location.clone();
            let next = self.finalize(ctx)?;
            let node = Node::FilterWith {
                filter: Box::new(filter),
                next: Box::new(next),
            };
            ctx = Ctx::done(name, node, global, location, file, loaded);
        }
        Ok(ctx)
    }

    #[allow(clippy::too_many_arguments)]
    fn use_ctx(
        &mut self,
        ty: ObjType,
        file: &Arc<IniFile>,
        section: &Section,
        name: &str,
        mut local: IndexMap<String, ConfValue>,
        gconf: &IndexMap<String, String>,
        loaded: &Loaded,
        additions: &IndexMap<String, String>,
    ) -> Result<Ctx, ConfigErrors> {
        let Some(use_v) = local.shift_remove("use") else {
            return Err(explicit_error(&file.location(section), &local).into());
        };
        let mut ctx =
            self.section_context(ty, file, &use_v.value, gconf, loaded, Some(&use_v.location))?;
        for (k, v) in additions {
            ctx.global.insert(k.clone(), v.clone());
        }
        if matches!(ctx.node, CtxNode::Done(_)) && !local.is_empty() {
            let keys: Vec<&str> = local.keys().map(String::as_str).collect();
            self.warnings.push(file.location(section).error(format!(
                "keys {} have no effect: 'use = {}' names a {} section, which takes no options \
                 (appconfig lists them, as Paste Deploy's does)",
                keys.join(", "),
                use_v.value,
                "pipeline or filter-app"
            )));
        }
        // Paste's `context.local_conf.update(local_conf)`, whatever the context is.
        for (k, v) in local {
            ctx.local.insert(k, v);
        }
        if let Some(f) = gconf.get("__file__") {
            ctx.global.insert("__file__".into(), f.clone());
        }
        // The chain of sections passed through (an egg shows in the node's own `egg`).
        let used_a_section = !use_v.value.to_ascii_lowercase().starts_with("egg:");
        if used_a_section {
            if let Some(l) = &ctx.location {
                let entry = format!(
                    "[{}] ({}:{})",
                    l.section.as_deref().unwrap_or(""),
                    l.file.display(),
                    l.line
                );
                ctx.uses.insert(0, entry);
            }
        }
        ctx.location = Some(file.location(section));
        ctx.loader_file = Some(file.clone());
        ctx.loaded = loaded.clone();
        ctx.name = name.to_string();
        Ok(ctx)
    }

    #[allow(clippy::too_many_arguments)]
    fn filter_app(
        &mut self,
        file: &Arc<IniFile>,
        section: &Section,
        name: &str,
        mut local: IndexMap<String, ConfValue>,
        gconf: &IndexMap<String, String>,
        loaded: &Loaded,
        additions: &IndexMap<String, String>,
    ) -> Result<Ctx, ConfigErrors> {
        let loc = file.location(section);
        let Some(next) = local.shift_remove("next") else {
            return Err(loc
                .error("missing 'next' setting: the app this filter wraps")
                .into());
        };
        let mut errs = ConfigErrors::new();
        let next_spec = self
            .section_context(
                ObjType::App,
                file,
                &next.value,
                gconf,
                loaded,
                Some(&next.location),
            )
            .and_then(|c| self.finalize(c));
        let next_spec = errs.take(next_spec);
        let filter = self
            .use_ctx(
                ObjType::Filter,
                file,
                section,
                name,
                local,
                gconf,
                loaded,
                additions,
            )
            .and_then(|c| self.finalize(c));
        let filter = errs.take(filter);
        match (filter, next_spec) {
            (Some(filter), Some(next)) if errs.is_empty() => {
                let node = Node::FilterApp {
                    filter: Box::new(filter),
                    next: Box::new(next),
                };
                Ok(Ctx::done(
                    name,
                    node,
                    gconf.clone(),
                    Some(loc),
                    file,
                    loaded,
                ))
            }
            _ => Err(errs),
        }
    }

    fn pipeline(
        &mut self,
        file: &Arc<IniFile>,
        section: &Section,
        name: &str,
        mut local: IndexMap<String, ConfValue>,
        gconf: &IndexMap<String, String>,
        loaded: &Loaded,
    ) -> Result<Ctx, ConfigErrors> {
        let loc = file.location(section);
        let Some(p) = local.shift_remove("pipeline") else {
            return Err(loc
                .error("missing 'pipeline' setting (e.g. 'pipeline = auth myapp')")
                .into());
        };
        if let Some((_, first)) = local.first() {
            let keys: Vec<&str> = local.keys().map(String::as_str).collect();
            return Err(first
                .location
                .error(format!(
                    "pipeline section has extra (disallowed) settings: {} (only 'pipeline', 'set' \
                     and 'filter-with' keys belong here)",
                    keys.join(", ")
                ))
                .into());
        }
        let items: Vec<&str> = p.value.split_whitespace().collect();
        let Some((app_name, filter_names)) = items.split_last() else {
            return Err(p
                .location
                .error("key 'pipeline': empty pipeline: list the filters, then the app (e.g. 'pipeline = auth myapp')")
                .into());
        };
        let mut errs = ConfigErrors::new();
        let mut filters = Vec::new();
        for f in filter_names {
            let spec = self
                .section_context(ObjType::Filter, file, f, gconf, loaded, Some(&p.location))
                .and_then(|c| self.finalize(c));
            if let Some(s) = errs.take(spec) {
                filters.push(s);
            }
            if self.exhausted() {
                return Err(errs);
            }
        }
        let app = self
            .section_context(
                ObjType::App,
                file,
                app_name,
                gconf,
                loaded,
                Some(&p.location),
            )
            .and_then(|c| self.finalize(c));
        let app = errs.take(app);
        match app {
            Some(app) if errs.is_empty() => {
                let node = Node::Pipeline {
                    filters,
                    app: Box::new(app),
                };
                Ok(Ctx::done(
                    name,
                    node,
                    gconf.clone(),
                    Some(loc),
                    file,
                    loaded,
                ))
            }
            _ => Err(errs),
        }
    }

    /// Place a context in the tree: check its options, resolve a composite's children.
    fn finalize(&mut self, ctx: Ctx) -> Result<Spec, ConfigErrors> {
        let (factory, egg) = match ctx.node {
            CtxNode::Done(node) => {
                return Ok(Spec {
                    name: ctx.name,
                    location: ctx.location,
                    uses: ctx.uses,
                    global: ctx.global,
                    local: ctx.local,
                    node,
                })
            }
            CtxNode::Factory { factory, egg } => (factory, egg),
        };
        let location = ctx
            .location
            .clone()
            .unwrap_or_else(|| Location::file(PathBuf::from(format!("egg:{egg}")), 0));
        let conf = FactoryConf {
            egg: egg.clone(),
            location: location.clone(),
            local: ctx.local,
            global: ctx.global.clone(),
        };
        let mut errs = ConfigErrors::new();
        let mut ignored = Vec::new();
        for (k, v) in &conf.local {
            if self.configs_only || factory.knows_option(k) {
                continue;
            }
            if factory.ignores_option(k) {
                ignored.push(k.clone());
                continue;
            }
            let known: Vec<&str> = factory.options.iter().map(|o| o.name).collect();
            errs.push(v.location.error(format!(
                "unknown option '{k}' for egg:{egg} (known: {})",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            )));
        }
        if !ignored.is_empty() {
            log::debug!(
                target: "mapproxy_serve.deploy",
                "{location} options {} mean nothing to mapproxy-serve and are ignored",
                ignored.join(", ")
            );
        }
        let mut children = Vec::new();
        if let (Build::Composite { children: list, .. }, false) = (factory.build, self.configs_only)
        {
            // The sections this composite came through are on the stack again while its apps
            // are resolved: an app naming one of them is a cycle.
            let base = self.stack.len();
            self.stack.extend(ctx.trail.iter().cloned());
            let listed = list(&conf);
            match listed {
                Ok(list) => {
                    for child in list {
                        let from = conf.location_of(&child.key);
                        let spec = match &ctx.loader_file {
                            Some(file) => self
                                .section_context(
                                    ObjType::App,
                                    file,
                                    &child.app,
                                    &conf.global,
                                    &ctx.loaded,
                                    Some(&from),
                                )
                                .and_then(|c| self.finalize(c)),
                            None => self
                                .uri_context(
                                    ObjType::App,
                                    &child.app,
                                    None,
                                    &Base::dir(Path::new("")),
                                    &conf.global,
                                    Some(&from),
                                )
                                .and_then(|c| self.finalize(c)),
                        };
                        if let Some(s) = errs.take(spec) {
                            children.push((child, s));
                        }
                        if self.exhausted() {
                            // Reported once; the other apps are not tried.
                            break;
                        }
                    }
                }
                Err(e) => errs.extend(e),
            }
            self.stack.truncate(base);
        }
        errs.into_result(Spec {
            name: ctx.name,
            location: ctx.location,
            uses: ctx.uses,
            global: ctx.global,
            local: IndexMap::new(),
            node: Node::Factory {
                factory,
                conf,
                children,
            },
        })
    }
}

/// `[app:main] (file.ini:3)`: a stack entry in a cycle or nesting message.
fn stack_text((_, section, l): &StackEntry) -> String {
    format!("[{section}] ({}:{})", l.file.display(), l.line)
}

/// The factory for an egg name, checked against what is being loaded.
fn find_factory(ty: ObjType, egg: &str) -> Result<&'static Factory, String> {
    let reg = registry();
    match reg.find(egg) {
        Some(f) if ty.accepts(f.kind()) => Ok(f),
        Some(f) => Err(format!(
            "egg:{egg} is a {} factory, but an {} is needed here",
            f.kind().as_str(),
            ty.word()
        )),
        None => {
            let dist = egg.split('#').next().unwrap_or(egg);
            let entries = reg.entries_of(dist);
            if entries.is_empty() {
                Err(format!(
                    "no factory egg:{egg}: nothing is registered for distribution '{dist}' \
                     ('mapproxy-serve list-factories' lists what is)"
                ))
            } else {
                Err(format!(
                    "no factory egg:{egg}: distribution '{dist}' has {}",
                    entries.join(", ")
                ))
            }
        }
    }
}

/// `(prefix, name)` → the sections `[prefix:name]` (the name stripped, as Paste compares it),
/// in file order: one hash lookup per prefix instead of a scan of every section.
type SectionIndex = HashMap<(String, String), Vec<usize>>;

fn index_sections(file: &IniFile) -> SectionIndex {
    let mut index = SectionIndex::new();
    for (i, s) in file.sections.iter().enumerate() {
        if let Some((prefix, name)) = s.name.split_once(':') {
            index
                .entry((prefix.to_string(), name.trim().to_string()))
                .or_default()
                .push(i);
        }
    }
    index
}

/// Paste's `find_config_section`: in each prefix group the first prefix with a match wins;
/// matches from two groups are ambiguous.
fn find_section<'f>(
    ty: ObjType,
    file: &'f IniFile,
    index: &SectionIndex,
    name: &str,
    from: Option<&Location>,
) -> Result<&'f Section, ConfigErrors> {
    let mut found: Vec<&Section> = Vec::new();
    for group in ty.prefix_groups() {
        for prefix in *group {
            if let Some(matches) = index.get(&(prefix.to_string(), name.to_string())) {
                found.extend(matches.iter().filter_map(|i| file.sections.get(*i)));
                break;
            }
        }
    }
    let at = from
        .cloned()
        .unwrap_or_else(|| Location::file(&file.path, 0));
    match found.len() {
        1 => Ok(found[0]),
        0 => Err(at
            .error(format!(
                "no section '{name}' (prefixed by {}) found in {}",
                ty.prefixes_text(),
                file.path.display()
            ))
            .into()),
        _ => {
            let at = from.cloned().unwrap_or_else(|| file.location(found[0]));
            let names: Vec<String> = found
                .iter()
                .map(|s| format!("[{}] (line {})", s.name, s.line))
                .collect();
            Err(at
                .error(format!(
                    "ambiguous section names {} for '{name}' in {}",
                    names.join(", "),
                    file.path.display()
                ))
                .into())
        }
    }
}

/// A section without `use`: Python's explicit `paste.*_factory = module:func`, or nothing.
fn explicit_error(loc: &Location, local: &IndexMap<String, ConfValue>) -> ConfigError {
    if let Some((k, v)) = local
        .iter()
        .find(|(k, _)| k.starts_with("paste.") && k.ends_with("_factory"))
    {
        return v.location.error(format!(
            "key '{k}': '{}' names Python code; mapproxy-serve builds Rust factories: register one \
             with mapproxy_serve::register_factory! and write 'use = egg:Dist#name' (see \"Writing a \
             filter\" in the README; 'mapproxy-serve list-factories' lists them)",
            v.value
        ));
    }
    loc.error(
        "no 'use' key: say which factory builds this section, e.g. 'use = egg:mapproxy-serve#echo' \
         ('mapproxy-serve list-factories' lists them)",
    )
}
