//! MapProxy 7's YAML configuration, loaded as MapProxy loads it, into a typed model.
//!
//! [`load`] reads `mapproxy.yaml` as `config/loader.py` does:
//!
//! 1. each file is parsed as PyYAML's `safe_load` parses it (YAML 1.1: `yes`/`off` are
//!    booleans, `1e5` is a string, `<<` merge keys) and `$VAR`/`${VAR}` in string values are
//!    replaced from the environment (an unset variable stays as written, with a warning);
//! 2. `base:` (a file name or a list) loads other files relative to the including file's
//!    directory, recursively; the including file's values win, and of several `base:` files
//!    the earlier wins. Lists are concatenated except `bbox`, `tile_size`,
//!    `max_output_pixels`, `sources`, `grids`, `res` (replaced) and `layers` (merged by name);
//!    an empty list deletes. A file including itself, directly or not, is an error;
//! 3. the merged mapping becomes a [`MapProxyConf`], with `config/defaults.py` applied and
//!    relative paths joined to the main file's directory. Keys MapProxy does not know are
//!    warnings (`unknown 'k' in layers[0]`), wrong types are errors naming file, line and the
//!    YAML path, all collected;
//! 4. references are checked: a cache's sources and grids, a layer's sources and
//!    tile_sources, in MapProxy's wording (`Source 'x' for cache 'c' not found in config`).
//!
//! `parts:` is MapProxy's free-form section for YAML anchors; it is kept as written.

pub mod before;
pub(crate) mod load;
pub(crate) mod model;
pub(crate) mod read;
pub mod yaml;

use std::path::{Path, PathBuf};

use mapproxy_serve_core::error::{ConfigError, ConfigErrors};

pub use model::{
    CacheBackend, CacheConf, Globals, GlobalsCache, GlobalsImage, Grid, HttpConf, HttpOpts,
    LayerConf, LinkSingleColor, MapProxyConf, OnError, RedisConf, S3Conf, ServicesConf,
    SourceCommon, SourceConf, SourceKind, TileSourceConf, TmsConf, WmsConf, WmsSourceConf,
    WmtsConf,
};

/// A loaded configuration.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The typed configuration.
    pub conf: MapProxyConf,
    /// The YAML and every `base:` file read, in reading order (to watch for reloads).
    pub files: Vec<PathBuf>,
    /// Unknown keys and unset environment variables, each with file and line.
    pub warnings: Vec<ConfigError>,
    /// The configuration as written, after `base:` merging and `${VAR}` expansion (what
    /// `mapproxy-util grids` prints of a grid).
    pub root: indexmap::IndexMap<String, yaml::Node>,
}

/// Read `path` (and its `base:` files) into a [`MapProxyConf`]; all errors at once.
pub fn load(path: &Path) -> Result<Loaded, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError::in_file(path, format!("cannot read the configuration: {e}")))?;
    load_str(&text, path)
}

/// [`load`] with the main file's text given; `path` names it in messages and its directory
/// is where `base:` files and relative paths are found.
pub fn load_str(text: &str, path: &Path) -> Result<Loaded, ConfigErrors> {
    load_with_env(text, path, &|name| std::env::var(name).ok())
}

/// [`load_str`] with the environment given as a function (for tests).
pub fn load_with_env(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Loaded, ConfigErrors> {
    let read = load::read_files(text, path, env)?;
    // MapProxy's conf_base_dir: the absolute directory of the main file
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let dir = std::path::absolute(&dir).unwrap_or(dir);
    let mut ctx = read::Ctx {
        errors: ConfigErrors::new(),
        warnings: read.warnings,
        dir,
    };
    let conf = model::build(&mut ctx, &read.root, path);
    check_references(&conf, &mut ctx);
    let read::Ctx {
        errors, warnings, ..
    } = ctx;
    errors.into_result(Loaded {
        conf,
        files: read.files,
        warnings,
        root: read.root,
    })
}

const BUILTIN_GRIDS: [&str; 3] = ["GLOBAL_GEODETIC", "GLOBAL_MERCATOR", "GLOBAL_WEBMERCATOR"];

/// `name:layer1,layer2` → `name`.
fn untagged(source: &str) -> &str {
    source.split_once(':').map_or(source, |(s, _)| s)
}

fn check_references(conf: &MapProxyConf, ctx: &mut read::Ctx) {
    let known_grid = |g: &str| BUILTIN_GRIDS.contains(&g) || conf.grids.contains_key(g);
    for (name, c) in &conf.caches {
        for s in &c.sources {
            let s = untagged(s);
            if !conf.sources.contains_key(s) && !conf.caches.contains_key(s) {
                ctx.errors.push(c.loc.error(format!(
                    "Source '{s}' for cache '{name}' not found in config"
                )));
            }
        }
        // band merging: `sources: {r: [{source: x, band: 0}], ...}`
        if let Some(bands) = c.band_sources.as_ref().and_then(|b| b.as_map()) {
            if bands.contains_key("l") && bands.len() > 1 {
                ctx.errors.push(c.loc.error(format!(
                    "Cannot combine 'l' band with bands in cache '{name}'"
                )));
            }
            for (band, list) in bands {
                if !["r", "g", "b", "a", "l"].contains(&band.as_str()) {
                    ctx.warnings.push(
                        list.loc
                            .error(format!("unknown '{band}' in caches.{name}.sources")),
                    );
                }
                let yaml::Value::Seq(items) = &list.value else {
                    ctx.errors.push(list.loc.error(format!(
                        "caches.{name}.sources.{band}: expected a list of {{source, band}}, found {}",
                        list.value.kind()
                    )));
                    continue;
                };
                for it in items {
                    match it
                        .as_map()
                        .and_then(|m| m.get("source"))
                        .and_then(|s| s.as_str())
                    {
                        Some(s) => {
                            let s = untagged(s);
                            if !conf.sources.contains_key(s) && !conf.caches.contains_key(s) {
                                ctx.errors.push(it.loc.error(format!(
                                    "Source '{s}' for cache '{name}' not found in config"
                                )));
                            }
                        }
                        None => ctx.errors.push(it.loc.error(format!(
                            "caches.{name}.sources.{band}: expected {{source: name, band: n}}"
                        ))),
                    }
                }
            }
        }
        for g in &c.grids {
            if !known_grid(g) {
                ctx.errors.push(
                    c.loc
                        .error(format!("Grid '{g}' for cache '{name}' not found in config")),
                );
            }
        }
    }
    for (name, s) in &conf.sources {
        if let SourceKind::Tile(t) = &s.kind {
            if let Some(g) = &t.grid {
                if !known_grid(g) {
                    ctx.errors.push(s.loc.error(format!(
                        "Grid '{g}' for source '{name}' not found in config"
                    )));
                }
            }
        }
    }
    // validator.py's _validate_wms_source/_validate_tagged_layer_source, for every reference
    // to a WMS source (MapProxy only logs these; they are warnings here too)
    let mut wms_ref = |reference: &str, loc: &mapproxy_serve_core::error::Location| {
        let (name, tags) = match reference.split_once(':') {
            Some((n, t)) => (n, Some(t.split(',').collect::<Vec<_>>())),
            None => (reference, None),
        };
        let Some(SourceConf {
            kind: SourceKind::Wms(w),
            ..
        }) = conf.sources.get(name)
        else {
            return;
        };
        match (&w.layers, tags) {
            (None, None) => ctx
                .warnings
                .push(loc.error(format!("Missing 'layers' for source '{name}'"))),
            (Some(supported), Some(requested)) => {
                let supported: Vec<&str> = supported.split(',').collect();
                if !requested.iter().all(|r| supported.contains(r)) {
                    ctx.warnings.push(loc.error(format!(
                        "Supported layers for source '{name}' are '{}' but tagged source requested layers '{}'",
                        supported.join(", "),
                        requested.join(", ")
                    )));
                }
            }
            _ => {}
        }
    };
    for c in conf.caches.values() {
        for s in &c.sources {
            wms_ref(s, &c.loc);
        }
    }
    fn each_layer<'a>(ls: &'a [LayerConf], f: &mut dyn FnMut(&'a LayerConf)) {
        for l in ls {
            f(l);
            each_layer(&l.layers, f);
        }
    }
    each_layer(&conf.layers, &mut |l| {
        for s in &l.sources {
            if !conf.caches.contains_key(s) {
                wms_ref(s, &l.loc);
            }
        }
    });
    fn layers(ls: &[LayerConf], conf: &MapProxyConf, ctx: &mut read::Ctx) {
        for l in ls {
            let name = l.name.as_deref().unwrap_or("");
            for s in &l.sources {
                let s = if conf.caches.contains_key(s) {
                    s
                } else {
                    untagged(s)
                };
                if !conf.caches.contains_key(s) && !conf.sources.contains_key(s) {
                    ctx.errors.push(l.loc.error(format!(
                        "Source '{s}' for layer '{name}' not in cache or source section"
                    )));
                }
            }
            for s in &l.tile_sources {
                if !conf.caches.contains_key(s) {
                    ctx.errors.push(l.loc.error(format!(
                        "Tile source '{s}' for layer '{name}' not in cache section"
                    )));
                }
            }
            layers(&l.layers, conf, ctx);
        }
    }
    layers(&conf.layers, conf, ctx);
}
