//! `refresh_before` / `remove_before` (a cache's in mapproxy.yaml, a seed or cleanup task's
//! in seed.yaml): MapProxy's `before_timestamp_from_options` (seed/config.py:327-350).

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::read::Ctx;
use super::yaml::{Node, Value};

/// A time before which tiles are out of date, as written.
#[derive(Debug, Clone, PartialEq)]
pub enum Before {
    /// `{time: 2024-01-31T12:00:00}` (local time, as MapProxy's `time.mktime`).
    Time(SystemTime),
    /// `{mtime: FILE}`: the file's modification time, read each time it is asked for (so
    /// touching the file makes the tiles before it out of date, as in MapProxy).
    Mtime(PathBuf),
    /// `{days: 1, hours: 2, ...}`: that long before each time it is asked for.
    Age(Duration),
}

impl Before {
    /// The time it stands for now; `None` when an `mtime` file cannot be read.
    pub fn at(&self) -> Option<SystemTime> {
        match self {
            Before::Time(t) => Some(*t),
            Before::Mtime(f) => std::fs::metadata(f).and_then(|m| m.modified()).ok(),
            Before::Age(d) => SystemTime::now().checked_sub(*d),
        }
    }
}

/// MapProxy's staleness test (cache/tile_manager.py:206-214): a tile stored at `mtime` is
/// out of date when its whole seconds are not after `before`.
pub fn is_stale(mtime: SystemTime, before: SystemTime) -> bool {
    let secs = |t: SystemTime| match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    };
    secs(mtime).floor() <= secs(before)
}

/// `{time: ...}`, `{mtime: FILE}` or an age (`weeks`, `days`, `hours`, `minutes`,
/// `seconds`); errors name the file, line and path. An `mtime` file must exist.
pub(crate) fn read(ctx: &mut Ctx, n: &Node, path: &str) -> Option<Before> {
    let mut k = ctx.map(n, path)?;
    let time = k.get("time").map(|v| (v, k.at("time")));
    let mtime = k.get("mtime").map(|v| (v, k.at("mtime")));
    let mut age = Vec::new();
    for (unit, secs) in [
        ("weeks", 604_800.0),
        ("days", 86_400.0),
        ("hours", 3_600.0),
        ("minutes", 60.0),
        ("seconds", 1.0),
    ] {
        if let Some(v) = k.get(unit) {
            age.push((v, k.at(unit), secs));
        }
    }
    k.finish(ctx);
    if let Some((v, p)) = time {
        let s = match &v.value {
            Value::Str(s) => s.clone(),
            _ => {
                ctx.error(&v.loc, &p, "expected an ISO time (2024-01-31T12:00:00)");
                return None;
            }
        };
        return match parse_local_time(&s) {
            Some(t) => Some(Before::Time(t)),
            None => {
                ctx.error(
                    &v.loc,
                    &p,
                    format!("can't parse time '{s}'. should be ISO time string"),
                );
                None
            }
        };
    }
    if let Some((v, p)) = mtime {
        let f = ctx.path(v, &p)?;
        return match std::fs::metadata(&f).and_then(|m| m.modified()) {
            Ok(_) => Some(Before::Mtime(f)),
            Err(e) => {
                ctx.error(
                    &v.loc,
                    &p,
                    format!(
                        "can't parse last modified time from file '{}': {e}",
                        f.display()
                    ),
                );
                None
            }
        };
    }
    let mut secs = 0.0;
    for (v, p, unit) in age {
        secs += ctx.number(v, &p)? * unit;
    }
    if !(0.0..=1e11).contains(&secs) {
        ctx.error(&n.loc, path, "the age must be positive");
        return None;
    }
    Some(Before::Age(Duration::from_secs_f64(secs)))
}

/// `2024-01-31T12:00:00` (also with a space, or with fractions) in local time.
fn parse_local_time(s: &str) -> Option<SystemTime> {
    use chrono::{Local, NaiveDateTime, TimeZone};
    let s = s.trim();
    let naive = ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())?;
    let t = Local.from_local_datetime(&naive).earliest()?;
    Some(SystemTime::from(t))
}
