//! The spec tree: what to build, before anything is built. `inspect` prints it, `check`
//! validates it, a reload builds it before swapping.

use indexmap::IndexMap;
use serde_json::{json, Map, Value};

use crate::app::{App, Filter};
use crate::build::BuildContext;
use crate::config::{ConfValue, FactoryConf};
use crate::error::{ConfigError, ConfigErrors, Location};
use crate::registry::{Build, Child, Factory};
use mapproxy_serve_core::server::Server;

/// What a section (or URI) asks for, fully resolved.
#[derive(Clone)]
pub struct Spec {
    /// The name or URI this node was asked for by (`main`, `egg:Paste#urlmap`).
    pub name: String,
    /// The section that defines it (after `use`, the using section).
    pub location: Option<Location>,
    /// The `use` chain from the defining section down to the factory, e.g.
    /// `["app:base (base.ini:3)", "egg:Paste#urlmap"]`.
    pub uses: Vec<String>,
    /// The node's global_conf.
    pub global: IndexMap<String, String>,
    /// For a pipeline or filter-app named by `use`: the using section's other keys. Nothing is
    /// built with them; Paste's `appconfig` lists them as the local_conf. (A factory's options
    /// are in its [`Node::Factory`] `conf`.)
    pub local: IndexMap<String, ConfValue>,
    /// What it is.
    pub node: Node,
}

/// The kinds of node.
// Built once per load; boxing the factory variant buys nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Clone)]
pub enum Node {
    /// A registered factory with its options; composites have their children.
    Factory {
        /// The factory.
        factory: &'static Factory,
        /// Its options.
        conf: FactoryConf,
        /// For composites: each key that names an app and the app's spec.
        children: Vec<(Child, Spec)>,
    },
    /// `[pipeline:x]`: filters (first outermost) around an app.
    Pipeline {
        /// The filters, outermost first.
        filters: Vec<Spec>,
        /// The app at the end.
        app: Box<Spec>,
    },
    /// `[filter-app:x]`: a filter around `next`.
    FilterApp {
        /// The filter.
        filter: Box<Spec>,
        /// The wrapped app.
        next: Box<Spec>,
    },
    /// `filter-with = f`: `filter` wraps `next` (an app, or for filters a chain).
    FilterWith {
        /// The outer filter.
        filter: Box<Spec>,
        /// What it wraps.
        next: Box<Spec>,
    },
}

fn locate(errs: ConfigErrors, loc: &Location) -> ConfigErrors {
    ConfigErrors(
        errs.0
            .into_iter()
            .map(|mut e| {
                if e.location.is_none() {
                    e.location = Some(loc.clone());
                }
                e
            })
            .collect(),
    )
}

/// An app used in place of one that failed to build, so the rest can still be checked.
fn placeholder_app() -> App {
    crate::app::app_fn(|_req| async {
        crate::app::text_response(http::StatusCode::NOT_FOUND, "text/plain", "not built\n")
    })
}

impl Spec {
    /// The kind word: `app`, `filter`, `filter-app`, `composite`, `server`, `pipeline`,
    /// `filter-with`.
    pub fn kind(&self) -> &'static str {
        match &self.node {
            Node::Factory { factory, .. } => factory.kind().as_str(),
            Node::Pipeline { .. } => "pipeline",
            Node::FilterApp { .. } => "filter-app",
            Node::FilterWith { .. } => "filter-with",
        }
    }

    /// The options a factory node was given.
    pub fn conf(&self) -> Option<&FactoryConf> {
        match &self.node {
            Node::Factory { conf, .. } => Some(conf),
            _ => None,
        }
    }

    /// The app's local_conf as Paste's `appconfig` gives it (a `filter-with` shows its app's).
    pub fn local_conf(&self) -> IndexMap<String, String> {
        match &self.node {
            Node::Factory { conf, .. } => conf
                .local
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
            Node::FilterWith { next, .. } => next.local_conf(),
            _ => self
                .local
                .iter()
                .map(|(k, v)| (k.clone(), v.value.clone()))
                .collect(),
        }
    }

    /// The global_conf as Paste's `appconfig` gives it.
    pub fn global_conf(&self) -> IndexMap<String, String> {
        match &self.node {
            Node::Factory { conf, .. } => conf.global.clone(),
            Node::FilterWith { next, .. } => next.global_conf(),
            _ => self.global.clone(),
        }
    }

    /// Build this node as an app. All errors in the subtree are collected. (On a stack of
    /// its own: the build recurses once per level of the tree.)
    pub fn build_app(&self, ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
        super::on_deep_stack(|| self.build_app_in(ctx))
    }

    fn build_app_in(&self, ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
        match &self.node {
            Node::Factory {
                factory,
                conf,
                children,
            } => match factory.build {
                Build::App(f) => f(conf, ctx).map_err(|e| locate(e, &conf.location)),
                Build::Composite { build, .. } => {
                    let mut errs = ConfigErrors::new();
                    let mut built = Vec::with_capacity(children.len());
                    for (child, spec) in children {
                        if let Some(app) = errs.take(spec.build_app_in(ctx)) {
                            built.push((child.clone(), app));
                        }
                    }
                    errs.into_result(())?;
                    build(conf, ctx, built).map_err(|e| locate(e, &conf.location))
                }
                _ => Err(conf
                    .section_error(format!(
                        "egg:{} is a {}, not an app",
                        conf.egg,
                        factory.kind().as_str()
                    ))
                    .into()),
            },
            Node::Pipeline { filters, app } => {
                let mut errs = ConfigErrors::new();
                let mut app = errs
                    .take(app.build_app_in(ctx))
                    .unwrap_or_else(placeholder_app);
                for f in filters.iter().rev() {
                    match f.apply_filter_in(ctx, app.clone()) {
                        Ok(a) => app = a,
                        Err(e) => errs.extend(e),
                    }
                }
                errs.into_result(app)
            }
            Node::FilterApp { filter, next } | Node::FilterWith { filter, next } => {
                let mut errs = ConfigErrors::new();
                let inner = errs
                    .take(next.build_app_in(ctx))
                    .unwrap_or_else(placeholder_app);
                let app = errs.take(filter.apply_filter_in(ctx, inner));
                match app {
                    Some(app) if errs.is_empty() => Ok(app),
                    _ => Err(errs),
                }
            }
        }
    }

    /// Build this node as a filter and wrap `app` in it.
    pub fn apply_filter(&self, ctx: &mut BuildContext, app: App) -> Result<App, ConfigErrors> {
        super::on_deep_stack(|| self.apply_filter_in(ctx, app))
    }

    fn apply_filter_in(&self, ctx: &mut BuildContext, app: App) -> Result<App, ConfigErrors> {
        match &self.node {
            Node::Factory { factory, conf, .. } => match factory.build {
                Build::Filter(f) => f(conf, ctx)
                    .map(|filter| filter(app))
                    .map_err(|e| locate(e, &conf.location)),
                Build::FilterApp(f) => f(conf, ctx, app).map_err(|e| locate(e, &conf.location)),
                _ => Err(not_a_filter(factory, conf)),
            },
            // filter-with on a filter: `next` is the inner filter, `filter` the outer one.
            Node::FilterWith { filter, next } => {
                let inner = next.apply_filter_in(ctx, app)?;
                filter.apply_filter_in(ctx, inner)
            }
            _ => Err(self.not_a_filter()),
        }
    }

    /// The error for a node that is not a filter (a pipeline, an app section).
    fn not_a_filter(&self) -> ConfigErrors {
        self.location
            .clone()
            .map(|l| l.error("is not a filter"))
            .unwrap_or_else(|| ConfigError::new(format!("'{}' is not a filter", self.name)))
            .into()
    }

    /// Build this node as a filter object (for the public `load_filter`): each factory is
    /// called once, now; a filter-app factory (which needs its app) is checked now against a
    /// placeholder and called again for each app the filter wraps.
    pub fn build_filter(&self, ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
        match &self.node {
            Node::Factory { factory, conf, .. } => match factory.build {
                Build::Filter(f) => f(conf, ctx).map_err(|e| locate(e, &conf.location)),
                Build::FilterApp(f) => {
                    f(conf, ctx, placeholder_app()).map_err(|e| locate(e, &conf.location))?;
                    let conf = conf.clone();
                    let runtime = ctx.runtime().clone();
                    Ok(std::sync::Arc::new(move |app: App| {
                        let mut ctx = BuildContext::new(runtime.clone());
                        f(&conf, &mut ctx, app).unwrap_or_else(|e| {
                            log::error!(target: "mapproxy_serve.deploy", "{e}");
                            placeholder_app()
                        })
                    }))
                }
                _ => Err(not_a_filter(factory, conf)),
            },
            Node::FilterWith { filter, next } => {
                let inner = next.build_filter(ctx)?;
                let outer = filter.build_filter(ctx)?;
                Ok(std::sync::Arc::new(move |app: App| outer(inner(app))))
            }
            _ => Err(self.not_a_filter()),
        }
    }

    /// Build this node as a server.
    pub fn build_server(&self) -> Result<Box<dyn Server>, ConfigErrors> {
        match &self.node {
            Node::Factory { factory, conf, .. } => match factory.build {
                Build::Server(f) => f(conf).map_err(|e| locate(e, &conf.location)),
                _ => Err(conf
                    .section_error(format!("egg:{} is not a server", conf.egg))
                    .into()),
            },
            _ => Err(ConfigError::new(format!("'{}' is not a server", self.name)).into()),
        }
    }

    /// The tree as JSON (`inspect --json`): section, file, line, factory, confs, children.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("kind".into(), json!(self.kind()));
        m.insert("name".into(), json!(self.name));
        if let Some(loc) = &self.location {
            m.insert("section".into(), json!(loc.section));
            m.insert("file".into(), json!(loc.file.display().to_string()));
            m.insert("line".into(), json!(loc.line));
        }
        if !self.uses.is_empty() {
            m.insert("uses".into(), json!(self.uses));
        }
        match &self.node {
            Node::Factory {
                factory,
                conf,
                children,
            } => {
                m.insert("factory".into(), json!(factory.name()));
                m.insert("egg".into(), json!(format!("egg:{}", conf.egg)));
                m.insert("local_conf".into(), json!(self.local_conf()));
                m.insert("global_conf".into(), json!(conf.global));
                if !children.is_empty() {
                    let c: Vec<Value> = children
                        .iter()
                        .map(|(child, spec)| {
                            let mut v = spec.to_json();
                            if let Value::Object(o) = &mut v {
                                o.insert("key".into(), json!(child.key));
                            }
                            v
                        })
                        .collect();
                    m.insert("children".into(), Value::Array(c));
                }
            }
            Node::Pipeline { filters, app } => {
                m.insert("global_conf".into(), json!(self.global));
                let mut c: Vec<Value> = filters.iter().map(Spec::to_json).collect();
                c.push(app.to_json());
                m.insert("children".into(), Value::Array(c));
            }
            Node::FilterApp { filter, next } | Node::FilterWith { filter, next } => {
                m.insert("global_conf".into(), json!(self.global));
                m.insert("children".into(), json!([filter.to_json(), next.to_json()]));
            }
        }
        Value::Object(m)
    }

    /// The tree as indented text (`inspect`).
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        self.write_text(&mut out, 0, None);
        out
    }

    fn write_text(&self, out: &mut String, depth: usize, key: Option<&str>) {
        use std::fmt::Write;
        let indent = "  ".repeat(depth);
        let _ = write!(out, "{indent}");
        if let Some(k) = key {
            let _ = write!(out, "{k} = ");
        }
        let _ = write!(out, "{} {}", self.kind(), self.name);
        if let Some(loc) = &self.location {
            let _ = write!(out, "  ({}:{}", loc.file.display(), loc.line);
            if let Some(s) = &loc.section {
                let _ = write!(out, " [{s}]");
            }
            let _ = write!(out, ")");
        }
        if let Node::Factory { factory, conf, .. } = &self.node {
            let _ = write!(out, "  egg:{}", conf.egg);
            if factory.name() != conf.egg {
                let _ = write!(out, " → {}", factory.name());
            }
        }
        out.push('\n');
        if let Node::Factory { conf, .. } = &self.node {
            for (k, v) in &conf.local {
                let _ = writeln!(out, "{indent}    {k} = {}", v.value.replace('\n', "\\n"));
            }
        }
        match &self.node {
            Node::Factory { children, .. } => {
                for (child, spec) in children {
                    spec.write_text(out, depth + 1, Some(&child.key));
                }
            }
            Node::Pipeline { filters, app } => {
                for f in filters {
                    f.write_text(out, depth + 1, None);
                }
                app.write_text(out, depth + 1, None);
            }
            Node::FilterApp { filter, next } | Node::FilterWith { filter, next } => {
                filter.write_text(out, depth + 1, None);
                next.write_text(out, depth + 1, None);
            }
        }
    }
}

/// The error for a factory of another kind used as a filter.
fn not_a_filter(factory: &Factory, conf: &FactoryConf) -> ConfigErrors {
    conf.section_error(format!(
        "egg:{} is a {}, not a filter",
        conf.egg,
        factory.kind().as_str()
    ))
    .into()
}
