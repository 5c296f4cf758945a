//! Typed reading of YAML nodes: every mismatch is an error naming file, line and the YAML
//! path; every key nobody asked for is a warning in MapProxy's wording (`unknown 'k' in path`).

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use mapproxy_serve_core::error::{ConfigError, ConfigErrors, Location};

use super::yaml::{Node, Value};

/// Errors and warnings collected while reading, and the directory relative paths are joined to.
pub(crate) struct Ctx {
    pub errors: ConfigErrors,
    pub warnings: Vec<ConfigError>,
    pub dir: PathBuf,
}

impl Ctx {
    pub fn error(&mut self, loc: &Location, path: &str, msg: impl std::fmt::Display) {
        self.errors.push(loc.error(format!("{path}: {msg}")));
    }

    fn expected(&mut self, n: &Node, path: &str, what: &str) {
        self.error(&n.loc, path, format!("expected {what}, found {}", found(n)));
    }

    pub fn string(&mut self, n: &Node, path: &str) -> Option<String> {
        match &n.value {
            Value::Str(s) => Some(s.clone()),
            _ => {
                self.expected(n, path, "a string");
                None
            }
        }
    }

    pub fn boolean(&mut self, n: &Node, path: &str) -> Option<bool> {
        match &n.value {
            Value::Bool(b) => Some(*b),
            _ => {
                self.expected(n, path, "true or false");
                None
            }
        }
    }

    pub fn number(&mut self, n: &Node, path: &str) -> Option<f64> {
        match &n.value {
            Value::Int(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            _ => {
                self.expected(n, path, "a number");
                None
            }
        }
    }

    /// A number, kept an int when written as one (MapProxy keeps the YAML's int).
    pub fn num(&mut self, n: &Node, path: &str) -> Option<crate::pynum::Num> {
        match &n.value {
            Value::Int(i) => Some(crate::pynum::Num::Int(*i)),
            _ => self.number(n, path).map(crate::pynum::Num::Float),
        }
    }

    /// A list of [`num`](Ctx::num)s.
    pub fn nums(&mut self, n: &Node, path: &str) -> Option<Vec<crate::pynum::Num>> {
        let Value::Seq(items) = &n.value else {
            self.expected(n, path, "a list of numbers");
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            out.push(self.num(it, &format!("{path}[{i}]"))?);
        }
        Some(out)
    }

    pub fn int(&mut self, n: &Node, path: &str, min: i64, max: i64) -> Option<i64> {
        match &n.value {
            Value::Int(i) if (min..=max).contains(i) => Some(*i),
            _ => {
                self.expected(n, path, &format!("an integer from {min} to {max}"));
                None
            }
        }
    }

    pub fn u32(&mut self, n: &Node, path: &str) -> Option<u32> {
        self.int(n, path, 0, u32::MAX as i64).map(|i| i as u32)
    }

    pub fn strings(&mut self, n: &Node, path: &str) -> Option<Vec<String>> {
        let Value::Seq(items) = &n.value else {
            self.expected(n, path, "a list of strings");
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            out.push(self.string(it, &format!("{path}[{i}]"))?);
        }
        Some(out)
    }

    pub fn numbers(&mut self, n: &Node, path: &str) -> Option<Vec<f64>> {
        let Value::Seq(items) = &n.value else {
            self.expected(n, path, "a list of numbers");
            return None;
        };
        let mut out = Vec::new();
        for (i, it) in items.iter().enumerate() {
            out.push(self.number(it, &format!("{path}[{i}]"))?);
        }
        Some(out)
    }

    /// Two non-negative integers, `[w, h]`.
    pub fn pair(&mut self, n: &Node, path: &str) -> Option<(u32, u32)> {
        if let Value::Seq(items) = &n.value {
            if let [a, b] = items.as_slice() {
                let a = self.u32(a, &format!("{path}[0]"))?;
                let b = self.u32(b, &format!("{path}[1]"))?;
                return Some((a, b));
            }
        }
        self.expected(n, path, "a list of two integers");
        None
    }

    /// A path joined to the directory of the main YAML (MapProxy's `conf_base_dir`).
    pub fn path(&mut self, n: &Node, path: &str) -> Option<PathBuf> {
        self.string(n, path).map(|s| self.resolve(&s))
    }

    pub fn resolve(&self, s: &str) -> PathBuf {
        super::load::normalize(&self.dir.join(Path::new(s)))
    }

    /// A mapping, read key by key; `None` (with an error) for anything else. Null reads as
    /// an empty mapping, as MapProxy's validator does.
    pub fn map<'a>(&mut self, n: &'a Node, path: &str) -> Option<Keys<'a>> {
        match &n.value {
            Value::Map(m) => Some(Keys {
                map: Some(m),
                path: path.to_string(),
                used: Vec::new(),
                loc: n.loc.clone(),
            }),
            Value::Null => Some(Keys {
                map: None,
                path: path.to_string(),
                used: Vec::new(),
                loc: n.loc.clone(),
            }),
            _ => {
                self.expected(n, path, "a mapping");
                None
            }
        }
    }
}

/// The keys of one mapping, remembering which were read.
pub(crate) struct Keys<'a> {
    map: Option<&'a IndexMap<String, Node>>,
    pub path: String,
    used: Vec<String>,
    pub loc: Location,
}

impl<'a> Keys<'a> {
    /// The value of `key`, if present and not null (a present null is absent, as
    /// `conf.get(key)` is falsy in MapProxy).
    pub fn get(&mut self, key: &str) -> Option<&'a Node> {
        self.used.push(key.to_string());
        self.map?.get(key).filter(|n| n.value != Value::Null)
    }

    /// Where `key`'s value was written (the mapping's line when absent).
    pub fn loc_of(&self, key: &str) -> Location {
        self.map
            .and_then(|m| m.get(key))
            .map_or_else(|| self.loc.clone(), |n| n.loc.clone())
    }

    /// The YAML path of a key.
    pub fn at(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    /// All entries.
    pub fn entries(&self) -> impl Iterator<Item = (&'a String, &'a Node)> {
        self.map.into_iter().flat_map(|m| m.iter())
    }

    /// Entries nobody read: warnings `unknown 'k' in path`.
    pub fn finish(self, ctx: &mut Ctx) {
        for (k, v) in self.entries() {
            if !self.used.iter().any(|u| u == k) {
                let at = if self.path.is_empty() {
                    ".".to_string()
                } else {
                    self.path.clone()
                };
                ctx.warnings
                    .push(v.loc.error(format!("unknown '{k}' in {at}")));
            }
        }
    }
}

/// A value as the "found ..." of a type error: a string quoted, a number or boolean as
/// written, else its kind (`a mapping`, `a list`, `null`).
pub(crate) fn found(n: &Node) -> String {
    match &n.value {
        Value::Str(s) => format!("'{s}'"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.kind().to_string(),
    }
}
