//! Paste Deploy's rules, section by section: `use`, `set`/`get`, `[DEFAULT]`, `filter-with`,
//! `[pipeline:]`, `[filter-app:]`, composites, `config:`/`egg:` URIs, cycles.
//! (Python: `paste.deploy.loadwsgi.ConfigLoader.get_context` and friends.)

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use indexmap::IndexMap;

use super::spec::{Node, Spec};
use crate::config::{ConfValue, FactoryConf};
use crate::error::{ConfigError, ConfigErrors, Location};
use crate::ini::{IniFile, Section, Vars};
use crate::registry::{registry, Build, Factory, Kind};

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
}

impl Ctx {
    /// A structural node (pipeline, filter-app, filter-with): already placed, takes no options.
    fn done(
        name: &str,
        node: Node,
        global: IndexMap<String, String>,
        location: Option<Location>,
        file: &Arc<IniFile>,
    ) -> Ctx {
        Ctx {
            name: name.to_string(),
            node: CtxNode::Done(node),
            local: IndexMap::new(),
            global,
            location,
            uses: Vec::new(),
            loader_file: Some(file.clone()),
        }
    }
}

// Built once per load; boxing the factory variant buys nothing.
#[allow(clippy::large_enum_variant)]
enum CtxNode {
    Factory {
        factory: &'static Factory,
        egg: String,
    },
    Done(Node),
}

/// Is `name` a URI (`^[a-zA-Z]+:`) rather than a section name?
fn is_uri(name: &str) -> bool {
    match name.find(':') {
        Some(i) if i > 0 => name[..i].chars().all(|c| c.is_ascii_alphabetic()),
        _ => false,
    }
}

/// `a/b/../c` → `a/c` without touching the file system (symlinks are not resolved).
fn normalize_lexically(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Resolves sections into specs. One per load (or reload); it caches files and records every
/// file it read, for `--reload`.
pub struct Loader {
    /// Command-line `NAME=VALUE`: in every global_conf, and winning over `[DEFAULT]` in `%(...)s`.
    cli_vars: IndexMap<String, String>,
    files: IndexMap<PathBuf, Arc<IniFile>>,
    indexes: HashMap<PathBuf, Arc<SectionIndex>>,
    stack: Vec<(PathBuf, String, Location)>,
    /// Non-fatal findings (a section key shadowed by `[DEFAULT]`, ignored options).
    pub warnings: Vec<ConfigError>,
}

impl Loader {
    /// A loader with the command line's `NAME=VALUE` values.
    pub fn new(cli_vars: IndexMap<String, String>) -> Self {
        Loader {
            cli_vars,
            files: IndexMap::new(),
            indexes: HashMap::new(),
            stack: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// Every file read so far (absolute paths), in read order.
    pub fn files(&self) -> Vec<PathBuf> {
        self.files.keys().cloned().collect()
    }

    /// The parsed file at `path` (cached).
    pub fn file(&mut self, path: &Path) -> Result<Arc<IniFile>, ConfigErrors> {
        let abs = if path.is_absolute() {
            normalize_lexically(path)
        } else {
            let cwd = std::env::current_dir().unwrap_or_default();
            normalize_lexically(&cwd.join(path))
        };
        if let Some(f) = self.files.get(&abs) {
            return Ok(f.clone());
        }
        let f = Arc::new(IniFile::read(path)?);
        self.files.insert(abs, f.clone());
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
        let ctx = self.uri_context(ty, uri, name, relative_to, global, None)?;
        self.finalize(ctx)
    }

    fn uri_context(
        &mut self,
        ty: ObjType,
        uri: &str,
        name: Option<&str>,
        relative_to: &Path,
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
                let full = normalize_lexically(&if p.is_absolute() { p.to_path_buf() } else { relative_to.join(p) });
                let file = self.file(&full).map_err(|e| match from {
                    Some(l) => ConfigErrors(
                        e.0.into_iter()
                            .map(|e| l.error(format!("'{uri}': {}", e)))
                            .collect(),
                    ),
                    None => e,
                })?;
                self.section_context(ty, &file, name, global, from)
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
        from: Option<&Location>,
    ) -> Result<Ctx, ConfigErrors> {
        if is_uri(name) {
            let dir = file
                .path
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default();
            return self.uri_context(ty, name, None, &dir, global, from);
        }
        let index = self
            .indexes
            .entry(file.abs_path.clone())
            .or_insert_with(|| Arc::new(index_sections(file)))
            .clone();
        let section = find_section(ty, file, &index, name, from)?;
        let loc = file.location(section);
        let key = (file.abs_path.clone(), section.name.clone());
        if let Some(pos) = self
            .stack
            .iter()
            .position(|(f, s, _)| (f, s) == (&key.0, &key.1))
        {
            let mut chain: Vec<String> = self.stack[pos..]
                .iter()
                .map(|(_, s, l)| format!("[{s}] ({}:{})", l.file.display(), l.line))
                .collect();
            chain.push(format!("[{}]", section.name));
            let at = from.cloned().unwrap_or(loc);
            return Err(at
                .error(format!("circular use: {}", chain.join(" → ")))
                .into());
        }
        self.stack.push((key.0, key.1, loc));
        let r = self.section_ctx(ty, file, section, name, global);
        self.stack.pop();
        r
    }

    fn section_ctx(
        &mut self,
        ty: ObjType,
        file: &Arc<IniFile>,
        section: &Section,
        name: &str,
        global: &IndexMap<String, String>,
    ) -> Result<Ctx, ConfigErrors> {
        let vars = Vars {
            overrides: self.cli_vars.clone(),
            fallbacks: global.clone(),
        };
        let defaults = file.defaults_interpolated(&vars)?;
        let mut gconf = defaults.clone();
        for (k, v) in global {
            gconf.insert(k.clone(), v.clone());
        }
        // Keys that `[DEFAULT]` (or the includer's global_conf) shadows: Paste drops them.
        let shadowing: HashSet<&str> = defaults
            .keys()
            .map(String::as_str)
            .chain(
                global
                    .keys()
                    .map(String::as_str)
                    .filter(|k| !self.cli_vars.contains_key(*k)),
            )
            .collect();
        let mut errs = ConfigErrors::new();
        let mut additions: IndexMap<String, String> = IndexMap::new();
        let mut gets: Vec<(String, String, Location)> = Vec::new();
        let mut local: IndexMap<String, ConfValue> = IndexMap::new();
        for entry in &section.entries {
            let loc = file.entry_location(section, entry);
            let value = match file.get(section, &entry.key, &vars) {
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
            } else if shadowing.contains(entry.key.as_str()) {
                self.warnings.push(loc.error(format!(
                    "key '{}' is also in [DEFAULT]: as in Paste Deploy it is dropped from this \
                     section's options and the factory sees [DEFAULT]'s value; write 'set {} = ...' \
                     to override it",
                    entry.key, entry.key
                )));
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
            "filter-app" => self.filter_app(file, section, name, local, &gconf, &additions)?,
            "pipeline" => self.pipeline(file, section, name, local, &gconf)?,
            _ if local.contains_key("use") => {
                self.use_ctx(ty, file, section, name, local, &gconf, &additions)?
            }
            _ => return Err(explicit_error(&sec_loc, &local).into()),
        };
        if let Some(fw) = filter_with {
            let f =
                self.section_context(ObjType::Filter, file, &fw.value, &gconf, Some(&fw.location))?;
            let filter = self.finalize(f)?;
            let global = ctx.global.clone();
            let location = ctx.location.clone();
            let next = self.finalize(ctx)?;
            let node = Node::FilterWith {
                filter: Box::new(filter),
                next: Box::new(next),
            };
            ctx = Ctx::done(name, node, global, location, file);
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
        additions: &IndexMap<String, String>,
    ) -> Result<Ctx, ConfigErrors> {
        let Some(use_v) = local.shift_remove("use") else {
            return Err(explicit_error(&file.location(section), &local).into());
        };
        let mut ctx = self.section_context(ty, file, &use_v.value, gconf, Some(&use_v.location))?;
        for (k, v) in additions {
            ctx.global.insert(k.clone(), v.clone());
        }
        match ctx.node {
            CtxNode::Factory { .. } => {
                for (k, v) in local {
                    ctx.local.insert(k, v);
                }
            }
            CtxNode::Done(_) if !local.is_empty() => {
                let keys: Vec<&str> = local.keys().map(String::as_str).collect();
                self.warnings.push(file.location(section).error(format!(
                    "keys {} have no effect: 'use = {}' names a {} section, which takes no options",
                    keys.join(", "),
                    use_v.value,
                    "pipeline or filter-app"
                )));
            }
            CtxNode::Done(_) => {}
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
        ctx.name = name.to_string();
        Ok(ctx)
    }

    fn filter_app(
        &mut self,
        file: &Arc<IniFile>,
        section: &Section,
        name: &str,
        mut local: IndexMap<String, ConfValue>,
        gconf: &IndexMap<String, String>,
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
            .section_context(ObjType::App, file, &next.value, gconf, Some(&next.location))
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
                Ok(Ctx::done(name, node, gconf.clone(), Some(loc), file))
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
                .section_context(ObjType::Filter, file, f, gconf, Some(&p.location))
                .and_then(|c| self.finalize(c));
            if let Some(s) = errs.take(spec) {
                filters.push(s);
            }
        }
        let app = self
            .section_context(ObjType::App, file, app_name, gconf, Some(&p.location))
            .and_then(|c| self.finalize(c));
        let app = errs.take(app);
        match app {
            Some(app) if errs.is_empty() => {
                let node = Node::Pipeline {
                    filters,
                    app: Box::new(app),
                };
                Ok(Ctx::done(name, node, gconf.clone(), Some(loc), file))
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
            if factory.knows_option(k) {
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
        if let Build::Composite { children: list, .. } = factory.build {
            match list(&conf) {
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
                                    Some(&from),
                                )
                                .and_then(|c| self.finalize(c)),
                            None => {
                                let cwd = PathBuf::new();
                                self.uri_context(
                                    ObjType::App,
                                    &child.app,
                                    None,
                                    &cwd,
                                    &conf.global,
                                    Some(&from),
                                )
                                .and_then(|c| self.finalize(c))
                            }
                        };
                        if let Some(s) = errs.take(spec) {
                            children.push((child, s));
                        }
                    }
                }
                Err(e) => errs.extend(e),
            }
        }
        errs.into_result(Spec {
            name: ctx.name,
            location: ctx.location,
            uses: ctx.uses,
            global: ctx.global,
            node: Node::Factory {
                factory,
                conf,
                children,
            },
        })
    }
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
