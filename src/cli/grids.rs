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
use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use mapproxy_serve_mapproxy::config::{self, yaml};
use mapproxy_serve_mapproxy::grid::builtin_grid_confs;

use super::{print_errors, EXIT_CONFIG};

/// Python's `repr` of a float.
pub(super) fn py_float(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = x.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        let s = shortest_e(x);
        let (m, e) = s.split_once('e').unwrap_or((s.as_str(), "0"));
        let (sign, digits) = match e.strip_prefix('-') {
            Some(d) => ('-', d),
            None => ('+', e),
        };
        return format!("{m}e{sign}{digits:0>2}");
    }
    let e = shortest_e(x);
    let s = match e.split_once('e') {
        // the digits Python chooses, written out without an exponent
        Some((m, exp)) if e != format!("{x:e}") => {
            let exp: i32 = exp.parse().unwrap_or(0);
            let neg = m.starts_with('-');
            let digits: String = m.chars().filter(char::is_ascii_digit).collect();
            let point = 1 + exp;
            let body = if point <= 0 {
                format!("0.{}{digits}", "0".repeat((-point) as usize))
            } else if (point as usize) >= digits.len() {
                format!("{digits}{}", "0".repeat(point as usize - digits.len()))
            } else {
                format!(
                    "{}.{}",
                    &digits[..point as usize],
                    &digits[point as usize..]
                )
            };
            format!("{}{body}", if neg { "-" } else { "" })
        }
        _ => format!("{x}"),
    };
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// The shortest round-tripping digits in `d.ddde±x` form, as Python's `repr` picks them: when
/// 17 digits are needed and the value lies exactly halfway, the even last digit (Rust's
/// formatter rounds such a tie up).
fn shortest_e(x: f64) -> String {
    let s = format!("{x:e}");
    let (m, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let digits: String = m.chars().filter(char::is_ascii_digit).collect();
    if digits.len() < 17 {
        return s;
    }
    // the exact expansion (a tie ends right after its 18th digit)
    let exact = format!("{x:.40e}");
    let (em, eexp) = exact.split_once('e').unwrap_or((exact.as_str(), "0"));
    let edigits: String = em.chars().filter(char::is_ascii_digit).collect();
    if eexp != exp || edigits.len() < 18 {
        return s;
    }
    let (head, tail) = edigits.split_at(16);
    let is_tie = tail.as_bytes()[1] == b'5' && tail[2..].bytes().all(|b| b == b'0');
    if !is_tie {
        return s;
    }
    let last = tail.as_bytes()[0] - b'0';
    if last % 2 == 1 {
        // the tie rounds up to an even digit: Rust's up-rounding already did that
        return s;
    }
    let neg = if x < 0.0 { "-" } else { "" };
    format!("{neg}{}.{}{}e{exp}", &head[..1], &head[1..], last)
}

/// Python's `repr` of a string.
fn py_str(s: &str) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::new();
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
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

/// The `grids:` entries as written, of `path` and (first) its `base:` files.
fn raw_grids(
    path: &Path,
    depth: usize,
    out: &mut IndexMap<String, IndexMap<String, yaml::Value>>,
) -> Result<(), String> {
    if depth > 20 {
        return Err(format!("{}: base: files nest too deep", path.display()));
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let root = yaml::parse(&text, path).map_err(|e| e.to_string())?;
    let Some(map) = root.as_map() else {
        return Ok(());
    };
    if let Some(base) = map.get("base") {
        let dir = path.parent().unwrap_or(Path::new(""));
        let files: Vec<String> = match &base.value {
            yaml::Value::Str(s) => vec![s.clone()],
            yaml::Value::Seq(items) => items
                .iter()
                .filter_map(|n| n.as_str().map(str::to_string))
                .collect(),
            _ => Vec::new(),
        };
        for f in files {
            raw_grids(&dir.join(f), depth + 1, out)?;
        }
    }
    if let Some(grids) = map.get("grids").and_then(|g| g.as_map()) {
        for (name, g) in grids {
            let entry = out.entry(name.clone()).or_default();
            if let Some(keys) = g.as_map() {
                for (k, v) in keys {
                    entry.insert(k.clone(), v.value.clone());
                }
            }
        }
    }
    Ok(())
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
    let mut user = IndexMap::new();
    if let Err(e) = raw_grids(&conf, 0, &mut user) {
        eprintln!("mapproxy-serve grids: {e}");
        return EXIT_CONFIG;
    }
    raw.extend(user);
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
