//! `mapproxy-serve grids mapproxy.yaml [-g NAME] [-l] [--all]`: MapProxy's `mapproxy-util
//! grids`, the same text.
//!
//! - Without options: every grid a cache uses, sorted by name, each with its configuration
//!   (keys as written, Python's `repr` of the YAML values; computed `bbox*`, `origin*`,
//!   `tile_size*` when not written) and its levels (resolution, tiles in x and y, total).
//! - `--all` (`-a` here too): also the grids no cache uses, and the built-in `GLOBAL_*` ones.
//! - `-g NAME`: only that grid, of all grids, name compared ignoring case; an unknown one
//!   prints `grid not found: NAME` and exits 1.
//! - `-l`: the names only.
//! - `-f FILE` names the configuration instead of the argument, as in MapProxy.
//! - An invalid configuration: its errors (file:line) on stderr, exit 2.
//!
//! Not here: MapProxy's `-s SEED_CONF -c COVERAGE` (tiles within a seeding coverage).
//! The grids' keys are those of the main file and of its `base:` files (a grid in the main
//! file replaces the keys it writes, as MapProxy's merge does).

use std::io::Write;
use std::path::PathBuf;

use indexmap::IndexMap;
use mapproxy_serve_mapproxy::config::{self, yaml};
use mapproxy_serve_mapproxy::grid::builtin_grid_confs;

use super::{print_errors, EXIT_CONFIG};

use crate::ini::py_repr as py_repr_str;
use mapproxy_serve_mapproxy::source::py_float_repr as py_float;

/// Python's `repr` of a string.
fn py_str(s: &str) -> String {
    py_repr_str(s, false)
}

/// Python's `repr` of a YAML value as PyYAML loads it.
fn py_repr(v: &yaml::Value) -> String {
    match v {
        yaml::Value::Null => "None".into(),
        yaml::Value::Bool(true) => "True".into(),
        yaml::Value::Bool(false) => "False".into(),
        yaml::Value::Int(i) => i.to_string(),
        yaml::Value::Float(f) => py_float(*f),
        yaml::Value::Str(s) => py_str(s),
        yaml::Value::Seq(items) => format!(
            "[{}]",
            items
                .iter()
                .map(|n| py_repr(&n.value))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        yaml::Value::Map(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, n)| format!("{}: {}", py_str(k), py_repr(&n.value)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// MapProxy's `human_readable_number`.
fn human(n: f64) -> String {
    if n > 1e6 {
        format!("{:7.2}M", n / 1e6)
    } else if n.is_nan() {
        "?".into()
    } else {
        format!("{}", n.trunc() as i64)
    }
}

/// One grid as `display_grid` prints it.
fn display(
    out: &mut impl Write,
    name: &str,
    raw: &IndexMap<String, yaml::Value>,
    grid: &mapproxy_serve_mapproxy::grid::TileGrid,
) -> std::io::Result<()> {
    let shown = match raw.get("name") {
        Some(yaml::Value::Str(s)) => s.clone(),
        _ => name.to_string(),
    };
    writeln!(out, "{shown}:")?;
    writeln!(out, "    Configuration:")?;
    let mut keys: Vec<(String, String)> = raw
        .iter()
        .filter(|(k, _)| k.as_str() != "name")
        .map(|(k, v)| (k.clone(), py_repr(v)))
        .collect();
    if !raw.contains_key("tile_size") {
        let (w, h) = grid.tile_size();
        keys.push(("tile_size*".into(), format!("[{w}, {h}]")));
    }
    if !raw.contains_key("bbox") {
        let b = grid.bbox();
        let b = [b[0], b[1], b[2], b[3]].map(py_float);
        keys.push(("bbox*".into(), format!("[{}]", b.join(", "))));
    }
    if !raw.contains_key("origin") {
        keys.push(("origin*".into(), py_str(grid.origin().as_str())));
    }
    keys.sort_by(|a, b| a.0.cmp(&b.0));
    for (k, v) in keys {
        writeln!(out, "        {k}: {v}")?;
    }
    writeln!(out, "    Levels: Resolutions, # x * y = total tiles")?;
    // The resolutions as written (an integer stays one), else as computed.
    let written: Vec<&yaml::Value> = match raw.get("res") {
        Some(yaml::Value::Seq(items)) => items.iter().map(|n| &n.value).collect(),
        _ => Vec::new(),
    };
    let min_res = raw.get("min_res");
    let reprs: Vec<String> = grid
        .resolutions()
        .iter()
        .enumerate()
        .map(|(level, &r)| {
            written
                .iter()
                .copied()
                .chain(min_res.filter(|_| level == 0 && written.is_empty()))
                .find(|v| match v {
                    yaml::Value::Int(i) => *i as f64 == r,
                    yaml::Value::Float(f) => *f == r,
                    _ => false,
                })
                .map(py_repr)
                .unwrap_or_else(|| py_float(r))
        })
        .collect();
    let width = reprs.iter().map(String::len).max().unwrap_or(0);
    for (level, (res, &(x, y))) in reprs.iter().zip(grid.grid_sizes()).enumerate() {
        let spaces = " ".repeat(width - res.len() + 1);
        let total = x as f64 * y as f64;
        writeln!(
            out,
            "        {level:02}:  {res},{spaces}# {x:>6} * {y:<6} = {:>10}",
            human(total)
        )?;
    }
    Ok(())
}

pub(super) fn run(conf: PathBuf, grid: Option<String>, list: bool, all: bool) -> i32 {
    let loaded = match config::load(&conf) {
        Ok(l) => l,
        Err(e) => {
            print_errors(&e);
            eprintln!("ERROR: invalid configuration (see above)");
            return EXIT_CONFIG;
        }
    };
    for w in &loaded.warnings {
        eprintln!("warning: {w}");
    }
    let mut raw: IndexMap<String, IndexMap<String, yaml::Value>> = IndexMap::new();
    for (name, c) in builtin_grid_confs() {
        let mut m = IndexMap::new();
        if let Some(srs) = c.srs {
            m.insert("srs".to_string(), yaml::Value::Str(format!("EPSG:{srs}")));
        }
        if let Some(o) = c.origin {
            m.insert("origin".to_string(), yaml::Value::Str(o));
        }
        raw.insert(name.to_string(), m);
    }
    // the grids as written, after base: merging and ${VAR} expansion, as the loader read them
    if let Some(grids) = loaded.root.get("grids").and_then(|g| g.as_map()) {
        for (name, g) in grids {
            let keys = g
                .as_map()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.value.clone()))
                        .collect()
                })
                .unwrap_or_default();
            raw.insert(name.clone(), keys);
        }
    }
    let mut set = loaded.conf.grid_set();
    let mut names: Vec<String> = if all || grid.is_some() {
        set.names().map(str::to_string).collect()
    } else {
        let mut v: Vec<String> = Vec::new();
        for c in loaded.conf.caches.values() {
            for g in &c.grids {
                if !v.contains(g) {
                    v.push(g.clone());
                }
            }
        }
        v
    };
    names.sort();
    if let Some(g) = &grid {
        let want = g.to_lowercase();
        let Some(found) = names.iter().find(|n| n.to_lowercase() == want).cloned() else {
            println!("grid not found: {want}");
            return 1;
        };
        if list {
            names = names.iter().map(|n| n.to_lowercase()).collect();
            names.sort();
        } else {
            names = vec![found];
        }
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if list {
        for n in &names {
            let _ = writeln!(out, "{n}");
        }
        return 0;
    }
    for (i, name) in names.iter().enumerate() {
        let tile_grid = match set.tile_grid(name) {
            Ok(g) => g,
            Err(e) => {
                let _ = out.flush();
                match loaded.conf.grids.get(name) {
                    Some(g) => eprintln!("{}", g.loc.error(format!("grids.{name}: {e}"))),
                    None => eprintln!("{}: grids.{name}: {e}", conf.display()),
                }
                return EXIT_CONFIG;
            }
        };
        let empty = IndexMap::new();
        let keys = raw.get(name).unwrap_or(&empty);
        let r = (|| {
            if i != 0 {
                writeln!(out)?;
            }
            display(&mut out, name, keys, &tile_grid)
        })();
        if r.is_err() {
            // stdout closed (`| head`): stop quietly
            return 0;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_reprs() {
        assert_eq!(py_float(1.40625), "1.40625");
        assert_eq!(py_float(8.58306884765625e-05), "8.58306884765625e-05");
        assert_eq!(py_float(1e-4), "0.0001");
        assert_eq!(py_float(1.40625 / 131072.0), "1.0728836059570312e-05");
        assert_eq!(py_float(-1.40625 / 131072.0), "-1.0728836059570312e-05");
        assert_eq!(py_float(0.1 + 0.2), "0.30000000000000004");
        assert_eq!(py_float(180.0), "180.0");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(-20037508.342789244), "-20037508.342789244");
        assert_eq!(py_str("EPSG:4326"), "'EPSG:4326'");
        assert_eq!(py_str("it's"), "\"it's\"");
        assert_eq!(human(2097152.0), "   2.10M");
        assert_eq!(human(524288.0), "524288");
    }
}
