//! Reading the files as MapProxy's `config/loader.py` and `util/yaml.py` do: `${VAR}`
//! substitution per file, `base:` includes (recursive, relative to the including file) and
//! `merge_dict`.

use std::path::{Path, PathBuf};

use indexmap::IndexMap;
use mapproxy_serve_core::error::{ConfigError, ConfigErrors, Location};

use super::yaml::{parse, Node, Value};

/// Replace `$VAR` and `${VAR}` in every string value (never in keys) with the environment's
/// value. An unset variable is kept as written, with one warning per name — MapProxy's
/// `replace_env_vars`.
pub(crate) fn expand_env(
    node: &mut Node,
    env: &dyn Fn(&str) -> Option<String>,
    warned: &mut Vec<String>,
    warnings: &mut Vec<ConfigError>,
) {
    match &mut node.value {
        Value::Str(s) if s.contains('$') => {
            *s = expand_str(s, &node.loc, env, warned, warnings);
        }
        Value::Seq(items) => {
            for it in items {
                expand_env(it, env, warned, warnings);
            }
        }
        Value::Map(m) => {
            for v in m.values_mut() {
                expand_env(v, env, warned, warnings);
            }
        }
        _ => {}
    }
}

fn is_word(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

fn expand_str(
    s: &str,
    loc: &Location,
    env: &dyn Fn(&str) -> Option<String>,
    warned: &mut Vec<String>,
    warnings: &mut Vec<ConfigError>,
) -> String {
    // the regex \$(\w+)|\$\{([^}]+)\}, left to right
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let (name, whole_len) = if let Some(inner) = after.strip_prefix('{') {
            match inner.find('}') {
                Some(j) if j > 0 => (&inner[..j], j + 3),
                _ => ("", 0),
            }
        } else {
            let n = after.find(|c: char| !is_word(c)).unwrap_or(after.len());
            (&after[..n], n + 1)
        };
        if name.is_empty() {
            out.push('$');
            rest = after;
            continue;
        }
        let placeholder = &rest[i..i + whole_len];
        match env(name) {
            Some(v) => out.push_str(&v),
            None => {
                if !warned.iter().any(|w| w == name) {
                    warned.push(name.to_string());
                    warnings.push(loc.error(format!(
                        "Environment variable '{name}' is not set. Using fallback value: '{placeholder}'"
                    )));
                }
                out.push_str(placeholder);
            }
        }
        rest = &rest[i + whole_len..];
    }
    out.push_str(rest);
    out
}

/// MapProxy's `merge_dict(conf, base)`: `base` with the values of `conf` merged in.
pub(crate) fn merge_dict(
    conf: IndexMap<String, Node>,
    mut base: IndexMap<String, Node>,
) -> IndexMap<String, Node> {
    for (k, v) in conf {
        let Some(b) = base.get_mut(&k) else {
            base.insert(k, v);
            continue;
        };
        let bloc = b.loc.clone();
        match (std::mem::replace(&mut b.value, Value::Null), v) {
            (
                Value::Map(bm),
                Node {
                    value: Value::Null, ..
                },
            ) => b.value = Value::Map(bm),
            (
                Value::Map(bm),
                Node {
                    value: Value::Map(vm),
                    loc,
                },
            ) => {
                *b = Node {
                    value: Value::Map(merge_dict(vm, bm)),
                    loc,
                };
            }
            (
                Value::Seq(bs),
                Node {
                    value: Value::Null, ..
                },
            ) => b.value = Value::Seq(bs),
            (
                Value::Seq(bs),
                Node {
                    value: Value::Seq(vs),
                    loc,
                },
            ) => {
                let value = if [
                    "bbox",
                    "tile_size",
                    "max_output_pixels",
                    "sources",
                    "grids",
                    "res",
                ]
                .contains(&k.as_str())
                {
                    Value::Seq(vs)
                } else if k == "layers" {
                    Value::Seq(merge_layers(vs, bs))
                } else if vs.is_empty() {
                    Value::Null
                } else {
                    let mut all = bs;
                    all.extend(vs);
                    Value::Seq(all)
                };
                *b = Node { value, loc };
            }
            (_, v) => *b = v,
        }
        let _ = bloc;
    }
    base
}

fn layer_name(n: &Node) -> Option<&str> {
    n.as_map()
        .and_then(|m| m.get("name"))
        .and_then(|n| n.as_str())
}

/// MapProxy's `merge_layers`: layers of the same name are merged, others appended.
fn merge_layers(conf: Vec<Node>, base: Vec<Node>) -> Vec<Node> {
    let mut conf: Vec<Option<Node>> = conf.into_iter().map(Some).collect();
    let mut out = Vec::new();
    for b in base {
        let found = conf.iter().position(|c| {
            c.as_ref()
                .is_some_and(|c| layer_name(c).is_some() && layer_name(c) == layer_name(&b))
        });
        match found.and_then(|i| conf[i].take()) {
            Some(Node {
                value: Value::Map(cm),
                loc,
            }) => match b.value {
                Value::Map(bm) => out.push(Node {
                    value: Value::Map(merge_dict(cm, bm)),
                    loc,
                }),
                other => out.push(Node {
                    value: other,
                    loc: b.loc,
                }),
            },
            Some(other) => out.push(other),
            None => out.push(b),
        }
    }
    out.extend(conf.into_iter().flatten());
    out
}

/// What reading the files produced.
pub(crate) struct Read {
    pub root: IndexMap<String, Node>,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<ConfigError>,
}

/// `load_configuration_file`: one file and, recursively, its `base:` files.
pub(crate) fn read_files(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Read, ConfigErrors> {
    let mut read = Read {
        root: IndexMap::new(),
        files: Vec::new(),
        warnings: Vec::new(),
    };
    let mut warned = Vec::new();
    let mut chain = Vec::new();
    let root = read_one(text, path, env, &mut chain, &mut read, &mut warned)?;
    read.root = root;
    Ok(read)
}

fn read_one(
    text: &str,
    path: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    chain: &mut Vec<PathBuf>,
    read: &mut Read,
    warned: &mut Vec<String>,
) -> Result<IndexMap<String, Node>, ConfigErrors> {
    read.files.push(path.to_path_buf());
    let mut node = parse(text, path)?;
    expand_env(&mut node, env, warned, &mut read.warnings);
    let Value::Map(mut map) = node.value else {
        return Err(ConfigError::in_file(path, "configuration not a YAML dictionary").into());
    };
    let Some(base) = map.shift_remove("base") else {
        return Ok(map);
    };
    let names: Vec<Node> = match base.value {
        Value::Str(_) => vec![base],
        Value::Seq(items) => items,
        other => {
            return Err(base
                .loc
                .error(format!(
                    "base: expected a file name or a list of file names, found {}",
                    other.kind()
                ))
                .into())
        }
    };
    let dir = path.parent().unwrap_or(Path::new(""));
    chain.push(normalize(path));
    let mut imported = IndexMap::new();
    let mut errors = ConfigErrors::new();
    for n in names {
        let Some(name) = n.as_str() else {
            errors.push(n.loc.error(format!(
                "base: expected a file name, found {}",
                n.value.kind()
            )));
            continue;
        };
        let file = normalize(&dir.join(name));
        if chain.contains(&file) {
            errors.push(n.loc.error(format!(
                "base: '{}' includes itself (a cycle of base: files)",
                file.display()
            )));
            continue;
        }
        let text = match std::fs::read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                errors.push(
                    n.loc
                        .error(format!("base: cannot read '{}': {e}", file.display())),
                );
                continue;
            }
        };
        match read_one(&text, &file, env, chain, read, warned) {
            // loader.py: merge_dict(conf_dict, current_dict) — an earlier file wins over a later one
            Ok(m) => imported = merge_dict(imported, m),
            Err(e) => errors.extend(e),
        }
    }
    chain.pop();
    errors.into_result(merge_dict(map, imported))
}

/// `os.path.normpath`: `a/./b/../c` → `a/c`, without touching the file system.
pub(crate) fn normalize(p: &Path) -> PathBuf {
    use std::path::Component;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_substitution_matches_mapproxy() {
        // replace_env_vars of MapProxy 7.0.0 with A=x, A_1=y, for the same inputs
        let env = |n: &str| match n {
            "A" => Some("x".to_string()),
            "A_1" => Some("y".to_string()),
            _ => None,
        };
        let cases = [
            ("$A/${A}", "x/x"),
            ("$", "$"),
            ("a$", "a$"),
            ("${}", "${}"),
            ("$A_1b", "$A_1b"),
            ("${A", "${A"),
            ("p$A.q", "px.q"),
            ("${A}${A_1}", "xy"),
            ("$$A", "$x"),
            ("é$A", "éx"),
        ];
        let loc = Location::file("m.yaml", 3);
        let mut warned = Vec::new();
        let mut warnings = Vec::new();
        for (input, want) in cases {
            assert_eq!(
                expand_str(input, &loc, &env, &mut warned, &mut warnings),
                want,
                "{input}"
            );
        }
        // $A_1b is unset: kept, one warning however often it appears
        expand_str("$A_1b", &loc, &env, &mut warned, &mut warnings);
        let w: Vec<_> = warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            w,
            vec!["m.yaml:3: Environment variable 'A_1b' is not set. Using fallback value: '$A_1b'"]
        );
    }

    #[test]
    fn merge_dict_rules() {
        let conf = parse(
            "a: {x: 1}\nl: [3]\nbbox: [9]\ne: []\nn: ~\ns: 2\n",
            Path::new("c.yaml"),
        )
        .expect("yaml");
        let base = parse(
            "a: {x: 0, y: 0}\nl: [1, 2]\nbbox: [1, 2]\ne: [1]\nn: {k: 1}\ns: 1\n",
            Path::new("b.yaml"),
        )
        .expect("yaml");
        let (Value::Map(c), Value::Map(b)) = (conf.value, base.value) else {
            panic!("mappings")
        };
        let m = merge_dict(c, b);
        let show = |k: &str| format!("{:?}", strip(&m[k].value));
        fn strip(v: &Value) -> String {
            match v {
                Value::Map(m) => format!(
                    "{{{}}}",
                    m.iter()
                        .map(|(k, v)| format!("{k}:{}", strip(&v.value)))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Value::Seq(s) => format!(
                    "[{}]",
                    s.iter()
                        .map(|v| strip(&v.value))
                        .collect::<Vec<_>>()
                        .join(",")
                ),
                Value::Int(i) => i.to_string(),
                Value::Null => "None".into(),
                other => format!("{other:?}"),
            }
        }
        // as MapProxy's merge_dict: nested dicts merge, lists concatenate, bbox is replaced,
        // an empty list deletes, a null keeps the base dict, scalars are replaced
        assert_eq!(show("a"), "\"{x:1,y:0}\"");
        assert_eq!(show("l"), "\"[1,2,3]\"");
        assert_eq!(show("bbox"), "\"[9]\"");
        assert_eq!(show("e"), "\"None\"");
        assert_eq!(show("n"), "\"{k:1}\"");
        assert_eq!(show("s"), "\"2\"");
    }
}
