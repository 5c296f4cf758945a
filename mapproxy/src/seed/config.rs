//! `seed.yaml` read as MapProxy's `seed/config.py` and `seed/spec.py` read it: `seeds`,
//! `cleanups` and `coverages`; errors name file, line and the YAML path, unknown keys are
//! warnings (`unknown 'k' in seeds.name`), as the mapproxy.yaml loader does.
//!
//! - `levels`: a list (`[0, 1, 2]`) or `{from: N, to: M}`; `resolutions` the same with
//!   resolutions (the closest level of each grid).
//! - `refresh_before` / `remove_before`: `{time: 2024-01-31T12:00:00}` (local time, as
//!   MapProxy's `time.mktime`), `{mtime: FILE}` (the file's modification time) or an age
//!   `{weeks, days, hours, minutes, seconds}` before now.
//! - Coverages: `bbox` (list or `"x0,y0,x1,y1"`) with `srs` / `bbox_srs`; `datasource` (a bbox,
//!   or a GeoJSON or WKT file) with `srs`; `polygons` (WKT file) with `polygons_srs`. Relative
//!   file names are joined to the directory of mapproxy.yaml, as MapProxy's `abspath` does
//!   while seeding. `union`/`intersection`/`difference` of coverages as for sources
//!   ([`crate::coverage::combine`]). OGR data sources and `expire_tiles` are errors ("not
//!   supported yet"), never silently ignored.
//! - `${VAR}` in values is replaced from the environment, as for mapproxy.yaml.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use indexmap::IndexMap;
use mapproxy_serve_core::error::{ConfigError, ConfigErrors, Location};

use super::coverage::{self, Coverage, Shape};
use crate::config::read::{Ctx, Keys};
use crate::config::yaml::{parse, Node, Value};
use crate::srs::Srs;

/// A loaded seed.yaml.
#[derive(Debug, Clone)]
pub struct SeedConf {
    pub file: PathBuf,
    pub seeds: IndexMap<String, TaskConf>,
    pub cleanups: IndexMap<String, TaskConf>,
    /// Each coverage by name; `None` for one without polygons (its tasks are skipped, as
    /// MapProxy's `EmptyCoverageError`).
    pub coverages: IndexMap<String, (Location, Option<Coverage>)>,
    pub warnings: Vec<ConfigError>,
}

/// Levels as written (MapProxy's `levels_from_options`).
#[derive(Debug, Clone, PartialEq)]
pub enum Levels {
    List(Vec<i64>),
    Range(Option<i64>, Option<i64>),
    Resolutions(Vec<f64>),
    ResolutionRange(Option<f64>, Option<f64>),
}

impl Levels {
    /// The levels of a grid with `levels` levels (`closest` maps a resolution to a level).
    pub fn for_grid(&self, levels: usize, closest: &dyn Fn(f64) -> usize) -> Vec<usize> {
        let last = levels as i64 - 1;
        let mut out: Vec<usize> = match self {
            Levels::List(l) => l
                .iter()
                .filter(|&&z| (0..=last).contains(&z))
                .map(|&z| z as usize)
                .collect(),
            Levels::Range(from, to) => {
                let from = from.unwrap_or(0).max(0);
                let to = to.unwrap_or(999).min(last);
                (from..=to).map(|z| z as usize).collect()
            }
            Levels::Resolutions(r) => r.iter().map(|&r| closest(r)).collect(),
            Levels::ResolutionRange(from, to) => {
                let from = from.map_or(0, closest);
                let to = to.map_or(levels.saturating_sub(1), closest);
                (from..=to).collect()
            }
        };
        out.sort_unstable();
        out.dedup();
        out
    }
}

/// One task of `seeds:` or `cleanups:`.
#[derive(Debug, Clone)]
pub struct TaskConf {
    pub name: String,
    pub loc: Location,
    /// `seeds.NAME` / `cleanups.NAME`
    pub path: String,
    pub caches: Vec<String>,
    pub grids: Option<Vec<String>>,
    pub coverages: Option<Vec<String>>,
    /// Where `coverages` was written.
    pub coverages_loc: Location,
    pub levels: Option<Levels>,
    /// `refresh_before` (seeds) or `remove_before` (cleanups), resolved to a time.
    pub before: Option<SystemTime>,
    /// `remove_all: true` (cleanups).
    pub remove_all: bool,
}

/// Read seed.yaml; relative paths are joined to `base_dir` (mapproxy.yaml's directory).
pub fn load(path: &Path, base_dir: &Path) -> Result<SeedConf, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        ConfigError::in_file(path, format!("cannot read the seed configuration: {e}"))
    })?;
    load_str(&text, path, base_dir, &|n| std::env::var(n).ok())
}

/// [`load`] with the text and the environment given.
pub fn load_str(
    text: &str,
    path: &Path,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<SeedConf, ConfigErrors> {
    let mut root = parse(text, path).map_err(ConfigErrors::from)?;
    let mut warnings = Vec::new();
    crate::config::load::expand_env(&mut root, env, &mut Vec::new(), &mut warnings);
    let dir = std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf());
    let mut ctx = Ctx {
        errors: ConfigErrors::new(),
        warnings,
        dir,
    };
    let mut conf = SeedConf {
        file: path.to_path_buf(),
        seeds: IndexMap::new(),
        cleanups: IndexMap::new(),
        coverages: IndexMap::new(),
        warnings: Vec::new(),
    };
    if let Some(m) = root.as_map() {
        if m.contains_key("views") {
            ctx.errors.push(root.loc.error(
                "The old seeding config style is no longer supported. Please refer to the documentation.",
            ));
        }
    }
    if let Some(mut top) = ctx.map(&root, "") {
        if let Some(n) = top.get("coverages") {
            let p = top.at("coverages");
            if let Some(k) = ctx.map(n, &p) {
                for (name, c) in k.entries() {
                    let cp = format!("{p}.{name}");
                    let c = crate::config::model::coverage(&mut ctx, c, &cp);
                    if let Some(cov) = read_coverage(&mut ctx, &c, &cp) {
                        conf.coverages.insert(name.clone(), (c.loc.clone(), cov));
                    }
                }
            }
        }
        for section in ["seeds", "cleanups"] {
            let Some(n) = top.get(section) else { continue };
            let p = top.at(section);
            let Some(k) = ctx.map(n, &p) else { continue };
            for (name, t) in k.entries() {
                let tp = format!("{p}.{name}");
                if let Some(task) = read_task(&mut ctx, name, t, &tp, section == "cleanups") {
                    for c in task.coverages.iter().flatten() {
                        if !conf.coverages.contains_key(c) {
                            ctx.errors.push(task.coverages_loc.error(format!(
                                "{tp}.coverages: coverage {c} not found. available coverages: {}",
                                conf.coverages.keys().cloned().collect::<Vec<_>>().join(",")
                            )));
                        }
                    }
                    if section == "seeds" {
                        conf.seeds.insert(name.clone(), task);
                    } else {
                        conf.cleanups.insert(name.clone(), task);
                    }
                }
            }
        }
        top.finish(&mut ctx);
    }
    let Ctx {
        errors, warnings, ..
    } = ctx;
    conf.warnings = warnings;
    errors.into_result(conf)
}

fn read_task(ctx: &mut Ctx, name: &str, n: &Node, path: &str, cleanup: bool) -> Option<TaskConf> {
    let mut k = ctx.map(n, path)?;
    let mut task = TaskConf {
        name: name.to_string(),
        loc: n.loc.clone(),
        path: path.to_string(),
        caches: Vec::new(),
        grids: None,
        coverages: None,
        coverages_loc: k.loc_of("coverages"),
        levels: None,
        before: None,
        remove_all: false,
    };
    let mut ok = true;
    match k.get("caches") {
        Some(c) => match ctx.strings(c, &k.at("caches")) {
            Some(c) => task.caches = c,
            None => ok = false,
        },
        None => {
            ctx.error(&n.loc, path, "missing 'caches'");
            ok = false;
        }
    }
    if let Some(g) = k.get("grids") {
        task.grids = ctx.strings(g, &k.at("grids"));
        ok &= task.grids.is_some();
    }
    if let Some(c) = k.get("coverages") {
        task.coverages = ctx.strings(c, &k.at("coverages"));
        ok &= task.coverages.is_some();
    }
    let levels = k.get("levels").map(|l| (l, k.at("levels"), false));
    let res = k.get("resolutions").map(|l| (l, k.at("resolutions"), true));
    if let Some((l, p, is_res)) = levels.or(res) {
        task.levels = read_levels(ctx, l, &p, is_res);
        ok &= task.levels.is_some();
    }
    let before_key = if cleanup {
        "remove_before"
    } else {
        "refresh_before"
    };
    if let Some(b) = k.get(before_key) {
        task.before = crate::config::before::read(ctx, b, &k.at(before_key)).and_then(|b| b.at());
        ok &= task.before.is_some();
    }
    if cleanup {
        if let Some(b) = k.get("remove_all") {
            match ctx.boolean(b, &k.at("remove_all")) {
                Some(v) => task.remove_all = v,
                None => ok = false,
            }
        }
    }
    k.finish(ctx);
    ok.then_some(task)
}

fn read_levels(ctx: &mut Ctx, n: &Node, path: &str, res: bool) -> Option<Levels> {
    match &n.value {
        Value::Seq(_) if res => ctx.numbers(n, path).map(Levels::Resolutions),
        Value::Seq(items) => {
            let mut out = Vec::new();
            for (i, it) in items.iter().enumerate() {
                out.push(ctx.int(it, &format!("{path}[{i}]"), 0, 999)?);
            }
            Some(Levels::List(out))
        }
        Value::Map(_) => {
            let mut k: Keys = ctx.map(n, path)?;
            let from = k.get("from").map(|v| (v, k.at("from")));
            let to = k.get("to").map(|v| (v, k.at("to")));
            k.finish(ctx);
            if res {
                let from = match from {
                    Some((v, p)) => Some(ctx.number(v, &p)?),
                    None => None,
                };
                let to = match to {
                    Some((v, p)) => Some(ctx.number(v, &p)?),
                    None => None,
                };
                Some(Levels::ResolutionRange(from, to))
            } else {
                let from = match from {
                    Some((v, p)) => Some(ctx.int(v, &p, 0, 999)?),
                    None => None,
                };
                let to = match to {
                    Some((v, p)) => Some(ctx.int(v, &p, 0, 999)?),
                    None => None,
                };
                Some(Levels::Range(from, to))
            }
        }
        other => {
            ctx.error(
                &n.loc,
                path,
                format!(
                    "expected a list or {{from: N, to: M}}, found {}",
                    other.kind()
                ),
            );
            None
        }
    }
}

fn read_coverage(ctx: &mut Ctx, n: &Node, path: &str) -> Option<Option<Coverage>> {
    let m = n.as_map()?;
    let get = |k: &str| m.get(k).filter(|v| v.value != Value::Null);
    for (key, op) in crate::coverage::Combine::KEYS {
        let Some(list) = get(key) else { continue };
        let kp = format!("{path}.{key}");
        let Value::Seq(items) = &list.value else {
            ctx.error(&list.loc, &kp, "expected a list of coverages");
            return None;
        };
        let mut parts = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            match read_coverage(ctx, item, &format!("{kp}[{i}]"))? {
                Some(c) => parts.push(c),
                // a part without polygons: MapProxy's EmptyGeometryError for the whole
                None => return Some(None),
            }
        }
        // an empty result has no geometries: its tasks are skipped (EmptyCoverageError)
        return match Coverage::combine(op, parts) {
            Ok(c) => Some(c),
            Err(e) => {
                ctx.error(&list.loc, &kp, e);
                None
            }
        };
    }
    for key in ["ogr_datasource", "expire_tiles", "where"] {
        if let Some(v) = get(key) {
            ctx.error(
                &v.loc,
                &format!("{path}.{key}"),
                "not supported yet in seeding coverages",
            );
            return None;
        }
    }
    let srs_of = |ctx: &mut Ctx, keys: &[&str]| -> Option<std::sync::Arc<Srs>> {
        let Some((k, v)) = keys.iter().find_map(|k| get(k).map(|v| (*k, v))) else {
            ctx.error(&n.loc, path, format!("missing '{}'", keys[keys.len() - 1]));
            return None;
        };
        let p = format!("{path}.{k}");
        let code = match &v.value {
            Value::Str(s) => s.clone(),
            Value::Int(i) => i.to_string(),
            _ => {
                ctx.error(&v.loc, &p, "expected an SRS code (EPSG:4326)");
                return None;
            }
        };
        match Srs::get(&code) {
            Ok(s) => Some(s),
            Err(e) => {
                ctx.error(&v.loc, &p, e);
                None
            }
        }
    };
    if let Some(b) = get("bbox") {
        let bbox = read_bbox(ctx, b, &format!("{path}.bbox"))?;
        let srs = srs_of(ctx, &["bbox_srs", "srs"])?;
        return Some(Coverage::new(Shape::Bbox(bbox), srs));
    }
    if let Some(d) = get("datasource") {
        let p = format!("{path}.datasource");
        let shape = match &d.value {
            Value::Seq(_) => Shape::Bbox(read_bbox(ctx, d, &p)?),
            Value::Str(s) if parse_bbox_str(s).is_some() => Shape::Bbox(parse_bbox_str(s)?),
            Value::Str(s) => match coverage::load_datasource(Path::new(s)) {
                Ok(polys) => Shape::Polygons(polys),
                Err(e) => {
                    ctx.error(&d.loc, &p, e);
                    return None;
                }
            },
            other => {
                ctx.error(
                    &d.loc,
                    &p,
                    format!("expected a file name or a bbox, found {}", other.kind()),
                );
                return None;
            }
        };
        let srs = srs_of(ctx, &["srs"])?;
        return Some(Coverage::new(shape, srs));
    }
    if let Some(f) = get("polygons") {
        let p = format!("{path}.polygons");
        let file = ctx.string(f, &p)?;
        let polys = match coverage::load_polygons(Path::new(&file)) {
            Ok(p) => p,
            Err(e) => {
                ctx.error(&f.loc, &p, e);
                return None;
            }
        };
        let srs = srs_of(ctx, &["polygons_srs"])?;
        return Some(Coverage::new(Shape::Polygons(polys), srs));
    }
    ctx.error(
        &n.loc,
        path,
        "a coverage needs bbox, datasource or polygons",
    );
    None
}

fn parse_bbox_str(s: &str) -> Option<[f64; 4]> {
    let v: Vec<f64> = s
        .split(',')
        .map(|p| p.trim().parse::<f64>())
        .collect::<Result<_, _>>()
        .ok()?;
    <[f64; 4]>::try_from(v).ok()
}

fn read_bbox(ctx: &mut Ctx, n: &Node, path: &str) -> Option<[f64; 4]> {
    let b = match &n.value {
        Value::Str(s) => parse_bbox_str(s),
        Value::Seq(_) => ctx
            .numbers(n, path)
            .and_then(|v| <[f64; 4]>::try_from(v).ok()),
        _ => None,
    };
    match b {
        Some(b) if b[0] < b[2] && b[1] < b[3] => Some(b),
        _ => {
            ctx.error(
                &n.loc,
                path,
                "expected a bbox [minx, miny, maxx, maxy] with min < max",
            );
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str, dir: &Path) -> Result<SeedConf, ConfigErrors> {
        load_str(text, &dir.join("seed.yaml"), dir, &|_| None)
    }

    #[test]
    fn reads_tasks_levels_and_coverages() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("area.geojson"),
            r#"{"type":"Polygon","coordinates":[[[5,45],[15,45],[15,55],[5,55],[5,45]]]}"#,
        )
        .unwrap();
        let c = load_text(
            "coverages:\n  a: {datasource: area.geojson, srs: 'EPSG:4326'}\n  b: {bbox: '0,0,10,10', srs: 'EPSG:4326'}\n\
             seeds:\n  s1:\n    caches: [c1]\n    levels: {from: 2, to: 4}\n    coverages: [a, b]\n    refresh_before: {days: 1}\n\
             cleanups:\n  c1:\n    caches: [c1]\n    levels: [3, 1, 3]\n    remove_all: true\n    extra: 1\n",
            dir.path(),
        )
        .unwrap();
        let s = &c.seeds["s1"];
        assert_eq!(s.levels, Some(Levels::Range(Some(2), Some(4))));
        assert_eq!(s.levels.as_ref().unwrap().for_grid(4, &|_| 0), vec![2, 3]);
        let age = SystemTime::now().duration_since(s.before.unwrap()).unwrap();
        assert!((86_399..86_402).contains(&age.as_secs()), "{age:?}");
        let cl = &c.cleanups["c1"];
        assert!(cl.remove_all);
        assert_eq!(cl.levels.as_ref().unwrap().for_grid(20, &|_| 0), vec![1, 3]);
        assert!(c.coverages["a"].1.is_some());
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0]
                .to_string()
                .contains("unknown 'extra' in cleanups.c1"),
            "{}",
            c.warnings[0]
        );
    }

    #[test]
    fn errors_name_file_line_and_path() {
        let dir = tempfile::tempdir().unwrap();
        let e = load_text(
            "seeds:\n  s1:\n    caches: [c1]\n    levels: {from: x}\n    coverages: [nope]\n  s2:\n    levels: [1]\n\
             coverages:\n  f: {datasource: missing.geojson, srs: 'EPSG:4326'}\n  g: {union: []}\n\
             cleanups:\n  c:\n    caches: [c1]\n    coverages: [nope]\n",
            dir.path(),
        )
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("seed.yaml:4: seeds.s1.levels.from: expected an integer"),
            "{text}"
        );
        assert!(
            text.contains("seed.yaml:14: cleanups.c.coverages: coverage nope not found"),
            "{text}"
        );
        assert!(
            text.contains("seed.yaml:7: seeds.s2: missing 'caches'"),
            "{text}"
        );
        assert!(
            text.contains("seed.yaml:9: coverages.f.datasource: can't load coverage file"),
            "{text}"
        );
        assert!(
            text.contains("seed.yaml:10: coverages.g.union: expected at least one coverage"),
            "{text}"
        );
    }

    /// `union`, `intersection` and `difference` coverages (MapProxy's union_coverage ...): one
    /// area of polygons in the first part's SRS; an empty result has no geometries and its
    /// tasks are skipped (EmptyCoverageError); unknown keys inside are warnings.
    #[test]
    fn combined_coverages() {
        let dir = tempfile::tempdir().unwrap();
        let c = load_text(
            "coverages:\n  u:\n    union:\n      - {bbox: [0, 0, 10, 10], srs: 'EPSG:4326'}\n      - {bbox: [10, 0, 20, 10], srs: 'EPSG:4326', unknown: true}\n\
             \x20 i:\n    intersection:\n      - {bbox: [0, 0, 10, 10], srs: 'EPSG:4326'}\n      - {bbox: [5, 5, 15, 15], srs: 'EPSG:4326'}\n\
             \x20 d:\n    difference:\n      - {bbox: [0, 0, 10, 10], srs: 'EPSG:4326'}\n      - {bbox: [-5, -5, 15, 15], srs: 'EPSG:4326'}\n",
            dir.path(),
        )
        .unwrap();
        let ll = Srs::get("EPSG:4326").unwrap();
        let bbox = |k: &str| {
            let (_, cov) = &c.coverages[k];
            cov.as_ref().map(|c| c.transform_to(&ll).unwrap().bbox())
        };
        assert_eq!(bbox("u"), Some([0.0, 0.0, 20.0, 10.0]));
        assert_eq!(bbox("i"), Some([5.0, 5.0, 10.0, 10.0]));
        assert_eq!(bbox("d"), None, "empty: the tasks are skipped");
        let u = c.coverages["u"].1.as_ref().unwrap();
        // polygons now: touching counts, as shapely's intersects
        assert!(u.intersects([20.0, 0.0, 30.0, 10.0]));
        assert!(!u.intersects([20.5, 0.0, 30.0, 10.0]));
        assert_eq!(c.warnings.len(), 1);
        assert!(
            c.warnings[0]
                .to_string()
                .contains("unknown 'unknown' in coverages.u.union[1]"),
            "{}",
            c.warnings[0]
        );
    }

    #[test]
    fn before_time_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("stamp"), "").unwrap();
        let c = load_text(
            "seeds:\n  a:\n    caches: [c]\n    refresh_before: {time: '2009-06-09T10:57:00'}\n  b:\n    caches: [c]\n    refresh_before: {mtime: stamp}\n",
            dir.path(),
        )
        .unwrap();
        let t = c.seeds["a"]
            .before
            .unwrap()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!((1244537820 - 14 * 3600..1244537820 + 14 * 3600).contains(&t));
        let m = std::fs::metadata(dir.path().join("stamp"))
            .unwrap()
            .modified()
            .unwrap();
        assert_eq!(c.seeds["b"].before, Some(m));
    }
}
