//! YAML read as PyYAML's `safe_load` reads it (YAML 1.1 scalars, `<<` merge keys, aliases),
//! into a tree whose every node knows its file and line.
//!
//! The one place where scalars are resolved: `yes`/`no`/`on`/`off` are booleans, `~` and an
//! empty value are null, `1e5` is a *string* (PyYAML's float needs a dot or a signed exponent
//! after a dot), `017` is octal, `1:30` is 90 — see [`resolve_plain`].

use std::path::Path;

use indexmap::IndexMap;
use mapproxy_serve_core::error::{ConfigError, Location};
use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser};
use yaml_rust2::scanner::{Marker, TScalarStyle};

/// One YAML value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub value: Value,
    /// The file and line of the value (for a mapping or sequence: its first line).
    pub loc: Location,
}

/// A YAML value, typed as PyYAML types it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `~`, `null`, or nothing.
    Null,
    /// `true`/`yes`/`on` and `false`/`no`/`off` in any of YAML 1.1's spellings.
    Bool(bool),
    /// An integer (decimal, `0x`, `0b`, octal `0…`, sexagesimal `1:30`).
    Int(i64),
    /// A float (`1.5`, `1.5e+5`, `.inf`, `.nan`).
    Float(f64),
    /// Any other scalar, or a quoted one (also dates, kept as written).
    Str(String),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in the order written; keys are the scalar text (a later duplicate replaces
    /// the value, keeping the first position, as a Python dict does).
    Map(IndexMap<String, Node>),
}

impl Value {
    /// The name of the value's type, for "expected ..., found ..." messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a float",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }
}

impl Node {
    /// The mapping, if this is one.
    pub fn as_map(&self) -> Option<&IndexMap<String, Node>> {
        match &self.value {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }
    /// The string, if this is one.
    pub fn as_str(&self) -> Option<&str> {
        match &self.value {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
}

/// PyYAML's implicit resolution of a plain (unquoted) scalar.
pub fn resolve_plain(s: &str) -> Value {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Value::Null,
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Value::Bool(true)
        }
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Value::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Value::Float(f64::INFINITY)
        }
        "-.inf" | "-.Inf" | "-.INF" => return Value::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Value::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = resolve_int(s) {
        return Value::Int(i);
    }
    if let Some(f) = resolve_float(s) {
        return Value::Float(f);
    }
    Value::Str(s.to_string())
}

fn split_sign(s: &str) -> (bool, &str) {
    if let Some(r) = s.strip_prefix('-') {
        (true, r)
    } else {
        (false, s.strip_prefix('+').unwrap_or(s))
    }
}

fn resolve_int(s: &str) -> Option<i64> {
    let (neg, body) = split_sign(s);
    let digits =
        |t: &str, ok: fn(char) -> bool| !t.is_empty() && t.chars().all(|c| ok(c) || c == '_');
    let v: i64 = if let Some(b) = body.strip_prefix("0b") {
        if !digits(b, |c| c == '0' || c == '1') {
            return None;
        }
        i64::from_str_radix(&b.replace('_', ""), 2).ok()?
    } else if let Some(h) = body.strip_prefix("0x") {
        if !digits(h, |c| c.is_ascii_hexdigit()) {
            return None;
        }
        i64::from_str_radix(&h.replace('_', ""), 16).ok()?
    } else if body == "0" {
        0
    } else if let Some(o) = body.strip_prefix('0') {
        if !digits(o, |c| ('0'..='7').contains(&c)) {
            return None;
        }
        i64::from_str_radix(&o.replace('_', ""), 8).ok()?
    } else if body.contains(':') {
        // sexagesimal: [1-9][0-9_]*(:[0-5]?[0-9])+
        let mut parts = body.split(':');
        let first = parts.next()?;
        if !first.starts_with(|c: char| ('1'..='9').contains(&c))
            || !digits(first, |c| c.is_ascii_digit())
        {
            return None;
        }
        let mut v: i64 = first.replace('_', "").parse().ok()?;
        for p in parts {
            if p.is_empty() || p.len() > 2 || !p.chars().all(|c| c.is_ascii_digit()) {
                return None;
            }
            let d: i64 = p.parse().ok()?;
            if d > 59 {
                return None;
            }
            v = v.checked_mul(60)?.checked_add(d)?;
        }
        v
    } else {
        if !body.starts_with(|c: char| ('1'..='9').contains(&c))
            || !digits(body, |c| c.is_ascii_digit())
        {
            return None;
        }
        body.replace('_', "").parse().ok()?
    };
    Some(if neg { -v } else { v })
}

fn resolve_float(s: &str) -> Option<f64> {
    // [-+]?[0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?  |  \.[0-9_]+([eE][-+][0-9]+)?
    let (neg, body) = split_sign(s);
    let (mant, exp) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    if let Some(e) = exp {
        let digits = e.strip_prefix(['-', '+'])?;
        if digits.is_empty() || !digits.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
    }
    let (int, frac) = mant.split_once('.')?;
    let ok = |t: &str| t.chars().all(|c| c.is_ascii_digit() || c == '_');
    if !ok(int) || !ok(frac) {
        return None;
    }
    if int.is_empty() {
        // `.5`: no sign allowed, at least one digit
        if neg || s.starts_with('+') || frac.is_empty() {
            return None;
        }
    } else if !int.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let text = format!(
        "{}{}.{}{}",
        if neg { "-" } else { "" },
        if int.is_empty() {
            "0".to_string()
        } else {
            int.replace('_', "")
        },
        if frac.is_empty() {
            "0".to_string()
        } else {
            frac.replace('_', "")
        },
        exp.map(|e| format!("e{e}")).unwrap_or_default()
    );
    text.parse().ok()
}

enum Building {
    Seq(Vec<Node>, Location, usize),
    Map(
        IndexMap<String, Node>,
        Option<Node>,
        Location,
        usize,
        Vec<Node>,
    ),
}

struct Builder<'a> {
    file: &'a Path,
    stack: Vec<Building>,
    anchors: std::collections::HashMap<usize, Node>,
    root: Option<Node>,
    error: Option<ConfigError>,
}

impl Builder<'_> {
    fn loc(&self, mark: &Marker) -> Location {
        Location::file(self.file, mark.line())
    }

    fn push_node(&mut self, node: Node, anchor: usize) {
        if anchor > 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => {
                if self.root.is_none() {
                    self.root = Some(node);
                }
            }
            Some(Building::Seq(items, _, _)) => items.push(node),
            Some(Building::Map(map, key, _, _, merges)) => match key.take() {
                None => *key = Some(node),
                Some(k) => {
                    let name = match &k.value {
                        Value::Str(s) => s.clone(),
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => f.to_string(),
                        Value::Bool(true) => "True".into(),
                        Value::Bool(false) => "False".into(),
                        Value::Null => "None".into(),
                        _ => {
                            if self.error.is_none() {
                                self.error = Some(k.loc.error("a mapping key must be a scalar"));
                            }
                            return;
                        }
                    };
                    if name == "<<" && matches!(k.value, Value::Str(_)) {
                        merges.push(node);
                    } else {
                        map.insert(name, node);
                    }
                }
            },
        }
    }
}

fn apply_merges(map: &mut IndexMap<String, Node>, merges: Vec<Node>) -> Result<(), ConfigError> {
    // PyYAML: explicit keys win; of several merged maps, the first wins
    let mut merged: IndexMap<String, Node> = IndexMap::new();
    let mut sources = Vec::new();
    for m in merges {
        match m.value {
            Value::Map(mm) => sources.push(mm),
            Value::Seq(items) => {
                for it in items {
                    match it.value {
                        Value::Map(mm) => sources.push(mm),
                        other => {
                            return Err(it.loc.error(format!(
                                "expected a mapping for merging, but found {}",
                                other.kind()
                            )))
                        }
                    }
                }
            }
            other => {
                return Err(m.loc.error(format!(
                    "expected a mapping or list of mappings for merging, but found {}",
                    other.kind()
                )))
            }
        }
    }
    for src in sources {
        for (k, v) in src {
            merged.entry(k).or_insert(v);
        }
    }
    for (k, v) in std::mem::take(map) {
        merged.insert(k, v);
    }
    *map = merged;
    Ok(())
}

impl MarkedEventReceiver for Builder<'_> {
    fn on_event(&mut self, ev: Event, mark: Marker) {
        if self.error.is_some() {
            return;
        }
        match ev {
            Event::Scalar(text, style, anchor, tag) => {
                let value = match (style, &tag) {
                    (TScalarStyle::Plain, None) => resolve_plain(&text),
                    (_, Some(t)) if t.suffix == "str" => Value::Str(text),
                    (_, Some(t))
                        if t.suffix == "int"
                            || t.suffix == "float"
                            || t.suffix == "bool"
                            || t.suffix == "null" =>
                    {
                        resolve_plain(&text)
                    }
                    _ => Value::Str(text),
                };
                let node = Node {
                    value,
                    loc: self.loc(&mark),
                };
                self.push_node(node, anchor);
            }
            Event::SequenceStart(anchor, _) => {
                let loc = self.loc(&mark);
                self.stack.push(Building::Seq(Vec::new(), loc, anchor));
            }
            Event::MappingStart(anchor, _) => {
                let loc = self.loc(&mark);
                self.stack.push(Building::Map(
                    IndexMap::new(),
                    None,
                    loc,
                    anchor,
                    Vec::new(),
                ));
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Building::Seq(items, loc, anchor)) => self.push_node(
                    Node {
                        value: Value::Seq(items),
                        loc,
                    },
                    anchor,
                ),
                Some(Building::Map(mut map, _, loc, anchor, merges)) => {
                    if !merges.is_empty() {
                        if let Err(e) = apply_merges(&mut map, merges) {
                            self.error = Some(e);
                            return;
                        }
                    }
                    self.push_node(
                        Node {
                            value: Value::Map(map),
                            loc,
                        },
                        anchor,
                    )
                }
                None => {}
            },
            Event::Alias(id) => match self.anchors.get(&id) {
                Some(n) => {
                    let n = n.clone();
                    self.push_node(n, 0)
                }
                None => self.error = Some(self.loc(&mark).error("found undefined alias")),
            },
            _ => {}
        }
    }
}

/// Parse one YAML document (the first of the stream; an empty stream is null).
pub fn parse(text: &str, file: &Path) -> Result<Node, ConfigError> {
    let mut b = Builder {
        file,
        stack: Vec::new(),
        anchors: Default::default(),
        root: None,
        error: None,
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut b, false) {
        return Err(
            Location::file(file, e.marker().line()).error(format!("invalid YAML: {}", e.info()))
        );
    }
    if let Some(e) = b.error {
        return Err(e);
    }
    Ok(b.root.unwrap_or(Node {
        value: Value::Null,
        loc: Location::file(file, 0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scalars_resolve_as_pyyaml() {
        // the values printed by PyYAML 6's safe_load for the same text
        let cases: &[(&str, Value)] = &[
            ("1e5", Value::Str("1e5".into())),
            ("1e+5", Value::Str("1e+5".into())),
            ("1.5e5", Value::Str("1.5e5".into())),
            ("1.5e+5", Value::Float(150000.0)),
            (".5", Value::Float(0.5)),
            ("0o17", Value::Str("0o17".into())),
            ("017", Value::Int(15)),
            ("0x1f", Value::Int(31)),
            ("1_000", Value::Int(1000)),
            ("1:30", Value::Int(90)),
            ("yes", Value::Bool(true)),
            ("On", Value::Bool(true)),
            ("off", Value::Bool(false)),
            ("~", Value::Null),
            ("1.0", Value::Float(1.0)),
            ("+1", Value::Int(1)),
            ("-.inf", Value::Float(f64::NEG_INFINITY)),
            ("0b11", Value::Int(3)),
            ("08", Value::Str("08".into())),
            ("-3", Value::Int(-3)),
            ("5.", Value::Float(5.0)),
        ];
        for (text, want) in cases {
            assert_eq!(&resolve_plain(text), want, "{text}");
        }
    }

    #[test]
    fn quoted_stay_strings_and_merge_keys_apply() {
        let n = parse(
            "a: 'yes'\nb: &x {p: 1, q: 2}\nc:\n  <<: *x\n  q: 3\n",
            Path::new("t.yaml"),
        )
        .unwrap();
        let m = n.as_map().unwrap();
        assert_eq!(m["a"].value, Value::Str("yes".into()));
        let c = m["c"].as_map().unwrap();
        assert_eq!(c["p"].value, Value::Int(1));
        assert_eq!(c["q"].value, Value::Int(3));
        assert_eq!(m["c"].loc.line, 4);
        assert_eq!(c["q"].loc.line, 5);
    }

    #[test]
    fn syntax_error_has_line() {
        let e = parse("a: [1, 2\nb: 3\n", Path::new("t.yaml")).unwrap_err();
        assert!(e.to_string().starts_with("t.yaml:"), "{e}");
    }
}
