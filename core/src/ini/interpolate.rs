//! `%(name)s` interpolation as Python's `BasicInterpolation` does it, plus the
//! project's additions (command-line values win over `[DEFAULT]`, `%(ENV:NAME)s`).
//!
//! - `%%` is `%`; `%(name)s` is the value of `name` (case-sensitive); any other `%` is an error.
//! - A value found in the file ([`Found::Raw`]) is interpolated again, in the same section's
//!   view, at most [`MAX_DEPTH`] levels deep (a loop ends with the depth error).
//! - `here`, `__file__`, command-line values and environment variables ([`Found::Literal`]) are
//!   used as they are (an includer's values, [`Vars::fallbacks`], are interpolated again): a `here` containing `%` works (in Paste it breaks every `%(here)s`).
//! - Bounds (not in Python): a value is at most [`MAX_VALUE_LEN`] bytes and takes at most
//!   [`MAX_SUBSTITUTIONS`] `%(name)s` substitutions, both checked while it is expanded, so ten
//!   keys each repeating the previous one ten times fail at once instead of asking for
//!   gigabytes (or for a billion empty substitutions).
//!
//! ```
//! use mapproxy_serve_core::ini::{interpolate, Found};
//!
//! let lookup = |name: &str| match name {
//!     "here" => Some(Found::Literal("/srv/100%".to_string())),
//!     "cache" => Some(Found::Raw("%(here)s/cache")),
//!     _ => None,
//! };
//! assert_eq!(interpolate("%(cache)s/tiles 50%%", &lookup).unwrap(), "/srv/100%/cache/tiles 50%");
//! ```

use std::fmt::Write as _;

use indexmap::IndexMap;

use super::{IniFile, Section};
use crate::error::{ConfigError, ConfigErrors};

/// Python's `MAX_INTERPOLATION_DEPTH`.
pub const MAX_DEPTH: usize = 10;

/// The longest value interpolation produces: 1 MiB.
pub const MAX_VALUE_LEN: usize = 1024 * 1024;

/// The most `%(name)s` substitutions one value may take (nested ones included).
pub const MAX_SUBSTITUTIONS: usize = 100_000;

/// How much of a raw value an error message quotes.
const QUOTE_VALUE_CHARS: usize = 60;

/// Values visible to `%(name)s` besides the file's own.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    /// Command-line `NAME=VALUE`: win over `[DEFAULT]` (not over the section's own keys).
    pub overrides: IndexMap<String, String>,
    /// The includer's global_conf (`use = config:...`): used only when the file defines no such
    /// key, and interpolated again in this file's view (as Paste does: an includer's
    /// `tmpl = %%(libdir)s` gives the included file's `libdir`).
    pub fallbacks: IndexMap<String, String>,
}

/// What a `%(name)s` lookup found.
#[derive(Clone, Debug)]
pub enum Found<'a> {
    /// A raw value from the file: it is interpolated again (depth-limited).
    Raw(&'a str),
    /// A value used as is (`here`, `__file__`, command line, environment).
    Literal(String),
}

/// The prefix of `%(ENV:NAME)s`.
const ENV_PREFIX: &str = "ENV:";

/// Interpolate `raw` with `lookup`; the error is the bare message (the caller adds the location).
///
/// A name `lookup` does not know that starts with `ENV:` is the environment variable after it.
pub fn interpolate<'a>(
    raw: &str,
    lookup: &dyn Fn(&str) -> Option<Found<'a>>,
) -> Result<String, String> {
    let mut out = Out {
        text: String::with_capacity(raw.len().min(MAX_VALUE_LEN)),
        substitutions: 0,
        top: raw,
    };
    interpolate_some(raw, lookup, &mut out, 1)?;
    Ok(out.text)
}

/// The value being built, with what the bounds count.
struct Out<'t> {
    text: String,
    substitutions: usize,
    /// The raw value asked for (for messages).
    top: &'t str,
}

impl Out<'_> {
    /// Append `s`, unless the value would grow past [`MAX_VALUE_LEN`].
    fn push(&mut self, s: &str) -> Result<(), String> {
        if self.text.len() + s.len() > MAX_VALUE_LEN {
            return Err(format!(
                "the value is longer than {} after %(...)s substitution (raw value: {})",
                super::reader::size_text(MAX_VALUE_LEN as u64),
                short_repr(self.top, QUOTE_VALUE_CHARS)
            ));
        }
        self.text.push_str(s);
        Ok(())
    }

    /// Count one substitution, unless there were [`MAX_SUBSTITUTIONS`] already.
    fn substitution(&mut self) -> Result<(), String> {
        self.substitutions += 1;
        if self.substitutions > MAX_SUBSTITUTIONS {
            return Err(format!(
                "the value takes more than {MAX_SUBSTITUTIONS} %(...)s substitutions \
                 (raw value: {})",
                short_repr(self.top, QUOTE_VALUE_CHARS)
            ));
        }
        Ok(())
    }
}

/// `BasicInterpolation._interpolate_some`.
fn interpolate_some<'a>(
    mut rest: &str,
    lookup: &dyn Fn(&str) -> Option<Found<'a>>,
    out: &mut Out<'_>,
    depth: usize,
) -> Result<(), String> {
    if depth > MAX_DEPTH {
        return Err(format!(
            "recursion limit exceeded in value substitution: more than {MAX_DEPTH} steps \
             (raw value: {})",
            short_repr(out.top, QUOTE_VALUE_CHARS)
        ));
    }
    while !rest.is_empty() {
        let Some(p) = rest.find('%') else {
            return out.push(rest);
        };
        out.push(&rest[..p])?;
        rest = &rest[p..];
        let after = &rest[1..];
        if let Some(tail) = after.strip_prefix('%') {
            out.push("%")?;
            rest = tail;
        } else if let Some(inner) = after.strip_prefix('(') {
            // `%\(([^)]+)\)s`
            let name = match inner.find(')') {
                Some(end) if end > 0 && inner[end + 1..].starts_with('s') => {
                    let name = &inner[..end];
                    rest = &inner[end + 2..];
                    name
                }
                _ => {
                    return Err(format!(
                        "bad interpolation variable reference {}",
                        short_repr(rest, QUOTE_VALUE_CHARS)
                    ))
                }
            };
            out.substitution()?;
            match lookup(name) {
                Some(Found::Raw(v)) if v.contains('%') => {
                    interpolate_some(v, lookup, out, depth + 1)?
                }
                Some(Found::Raw(v)) => out.push(v)?,
                Some(Found::Literal(v)) => out.push(&v)?,
                None => {
                    let v = missing(out.top, name)?;
                    out.push(&v)?
                }
            }
        } else {
            return Err(format!(
                "'%' must be followed by '%' or '(', found: {} (write %% for a literal %)",
                short_repr(rest, QUOTE_VALUE_CHARS)
            ));
        }
    }
    Ok(())
}

/// A name no lookup knows: an environment variable (`ENV:NAME`) or an error.
fn missing(top: &str, name: &str) -> Result<String, String> {
    let reference = format!("%({name})s");
    if let Some(var) = name.strip_prefix(ENV_PREFIX) {
        return match std::env::var(var) {
            Ok(v) => Ok(v),
            Err(std::env::VarError::NotPresent) => Err(format!(
                "environment variable {var} is not set (from {})",
                py_repr(&reference, false)
            )),
            Err(std::env::VarError::NotUnicode(_)) => Err(format!(
                "environment variable {var} is not valid UTF-8 (from {})",
                py_repr(&reference, false)
            )),
        };
    }
    Err(format!(
        "bad value substitution: {} names no key of this section, [DEFAULT] or the command \
         line (raw value: {})",
        short_repr(&reference, QUOTE_VALUE_CHARS),
        short_repr(top, QUOTE_VALUE_CHARS)
    ))
}

/// [`py_repr`] of at most `max` characters of `s`, followed by `…` when it was cut.
pub fn short_repr(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        None => py_repr(s, false),
        Some((end, _)) => format!("{}…", py_repr(&s[..end], false)),
    }
}

/// Python's `repr(str)` (and `ascii()` when `ascii`), as Python's error messages and
/// `%(x)r` format fields show strings (`'a\nb'`).
pub fn py_repr(s: &str, ascii: bool) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if ascii && !c.is_ascii() => {
                let n = c as u32;
                if n <= 0xff {
                    let _ = write!(out, "\\x{n:02x}");
                } else if n <= 0xffff {
                    let _ = write!(out, "\\u{n:04x}");
                } else {
                    let _ = write!(out, "\\U{n:08x}");
                }
            }
            c if !ascii && (0x80..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

impl IniFile {
    /// The interpolated value of `key` in `section`.
    ///
    /// `%(name)s` is looked up in: the section's own keys (not for `[DEFAULT]`), the command
    /// line (`vars.overrides`), `[DEFAULT]`, `here` and `__file__`, `vars.fallbacks`, then
    /// `ENV:NAME` in the environment. Other sections are not visible.
    pub fn get(&self, section: &Section, key: &str, vars: &Vars) -> Result<String, ConfigError> {
        let Some(entry) = section.get(key) else {
            return Err(self
                .location(section)
                .error(format!("key '{key}': no such key in this section")));
        };
        self.get_entry(section, entry, vars)
            .map_err(|msg| self.entry_location(section, entry).error(msg))
    }

    /// The interpolated value of a `[DEFAULT]` key as `section` sees it (ConfigParser's
    /// `get(section, key)` for a key only `[DEFAULT]` has: the section's own keys are visible
    /// to its `%(...)s`). Errors name the key's line in `[DEFAULT]`.
    pub fn get_default_in(
        &self,
        section: &Section,
        key: &str,
        vars: &Vars,
    ) -> Result<String, ConfigError> {
        let Some(entry) = self.defaults.get(key) else {
            return Err(self
                .location(&self.defaults)
                .error(format!("key '{key}': no such key in [DEFAULT]")));
        };
        self.get_entry(section, entry, vars).map_err(|msg| {
            self.entry_location(&self.defaults, entry)
                .error(format!("{msg} (as section [{}] sees it)", section.name))
        })
    }

    /// A value the file was loaded with (`entry`: an includer's global_conf key, not in the
    /// file) as `section` sees it: Paste adds those values to the file's defaults, so its
    /// `set`/`get` keys act in every section of the file. Errors name the section's header.
    pub fn get_loaded_in(
        &self,
        section: &Section,
        entry: &super::Entry,
        vars: &Vars,
    ) -> Result<String, ConfigError> {
        self.get_entry(section, entry, vars).map_err(|msg| {
            self.location(section).error(format!(
                "{msg} (a key of the global_conf the including file passes)"
            ))
        })
    }

    /// `entry`'s raw value interpolated in `section`'s view; the error is the message after
    /// the location.
    fn get_entry(
        &self,
        section: &Section,
        entry: &super::Entry,
        vars: &Vars,
    ) -> Result<String, String> {
        let key = &entry.key;
        let own = (section.name != "DEFAULT").then_some(section);
        let here = self.here.to_string_lossy();
        let file = self.abs_path.to_string_lossy();
        let lookup = |name: &str| -> Option<Found<'_>> {
            if let Some(e) = own.and_then(|s| s.get(name)) {
                return Some(Found::Raw(&e.value));
            }
            if let Some(v) = vars.overrides.get(name) {
                return Some(Found::Literal(v.clone()));
            }
            if let Some(e) = self.defaults.get(name) {
                return Some(Found::Raw(&e.value));
            }
            match name {
                "here" => return Some(Found::Literal(here.to_string())),
                "__file__" => return Some(Found::Literal(file.to_string())),
                _ => {}
            }
            // As in Paste, the includer's values are raw defaults of this file: a `%(...)s`
            // left in them (an includer's `%%(x)s`) is interpolated here, with this file's keys.
            vars.fallbacks.get(name).map(|v| Found::Raw(v))
        };
        interpolate(&entry.value, &lookup).map_err(|msg| format!("key '{key}': {msg}"))
    }

    /// `[DEFAULT]` interpolated, plus `here` and `__file__` (Paste's `parser.defaults()`).
    ///
    /// Keys in file order, then `here` and `__file__` unless `[DEFAULT]` defines them. As in
    /// Paste, a value that interpolates to the empty string keeps its raw text.
    pub fn defaults_interpolated(
        &self,
        vars: &Vars,
    ) -> Result<IndexMap<String, String>, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let mut out = IndexMap::new();
        for entry in &self.defaults.entries {
            if let Some(v) = errors.take(self.get(&self.defaults, &entry.key, vars)) {
                let v = if v.is_empty() { entry.value.clone() } else { v };
                out.insert(entry.key.clone(), v);
            }
        }
        out.entry("here".to_string())
            .or_insert_with(|| self.here.to_string_lossy().into_owned());
        out.entry("__file__".to_string())
            .or_insert_with(|| self.abs_path.to_string_lossy().into_owned());
        errors.into_result(out)
    }
}
