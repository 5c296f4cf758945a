//! What a factory is given: its section's options (`local_conf`, each with its file:line) and
//! the `global_conf`, with typed getters whose errors name the file, line, section and key.

use std::path::{Path, PathBuf};
use std::str::FromStr;

use indexmap::IndexMap;

use crate::error::{ConfigError, Location};

/// One option value and where it was written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfValue {
    /// The interpolated value.
    pub value: String,
    /// Where the key was written.
    pub location: Location,
}

/// The options of one section, ready for a factory.
#[derive(Clone, Debug)]
pub struct FactoryConf {
    /// The egg name the section asked for, as written (`Paste#urlmap`).
    pub egg: String,
    /// The section that asked for the factory (file:line of its header).
    pub location: Location,
    /// `local_conf`: the section's own keys (after `use`, `set`, `get`), in file order.
    pub local: IndexMap<String, ConfValue>,
    /// `global_conf`: `[DEFAULT]`, `here`, `__file__`, command-line values and `set` keys.
    pub global: IndexMap<String, String>,
}

impl FactoryConf {
    /// A conf for tests and embedding: no file, the given local options.
    pub fn from_pairs<'a>(egg: &str, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        let location = Location::in_section("<memory>", 0, egg);
        FactoryConf {
            egg: egg.to_string(),
            local: pairs
                .into_iter()
                .map(|(k, v)| {
                    (
                        k.to_string(),
                        ConfValue {
                            value: v.to_string(),
                            location: location.clone(),
                        },
                    )
                })
                .collect(),
            global: IndexMap::new(),
            location,
        }
    }

    /// The value of a local option.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.local.get(key).map(|v| v.value.as_str())
    }

    /// The value of a local option, else of the global one (Paste apps often fall back so).
    pub fn get_or_global(&self, key: &str) -> Option<&str> {
        self.get(key)
            .or_else(|| self.global.get(key).map(String::as_str))
    }

    /// Where `key` was written (the section header when it was not).
    pub fn location_of(&self, key: &str) -> Location {
        self.local
            .get(key)
            .map(|v| v.location.clone())
            .unwrap_or_else(|| self.location.clone())
    }

    /// An error about `key`: `file:line: [section] key 'k': message`.
    pub fn error(&self, key: &str, message: impl std::fmt::Display) -> ConfigError {
        self.location_of(key)
            .error(format!("key '{key}': {message}"))
    }

    /// An error about the section as a whole.
    pub fn section_error(&self, message: impl Into<String>) -> ConfigError {
        self.location.error(message)
    }

    /// A required option.
    pub fn require(&self, key: &str) -> Result<&str, ConfigError> {
        self.get(key).ok_or_else(|| {
            self.section_error(format!("missing option '{key}' for egg:{}", self.egg))
        })
    }

    /// A boolean option, read with Paste Deploy's `asbool`.
    pub fn get_bool(&self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some(v) => asbool(v).map_err(|e| self.error(key, e)),
        }
    }

    /// An option parsed with `FromStr`; `expected` says what was wanted (`an integer`).
    pub fn get_parsed<T: FromStr>(
        &self,
        key: &str,
        expected: &str,
    ) -> Result<Option<T>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .trim()
                .parse::<T>()
                .map(Some)
                .map_err(|_| self.error(key, format!("expected {expected}, found '{v}'"))),
        }
    }

    /// A whitespace-separated list option (Paste's `aslist`).
    pub fn get_list(&self, key: &str) -> Vec<String> {
        self.get(key).map(aslist).unwrap_or_default()
    }

    /// The directory of the file the section is in (`%(here)s`).
    pub fn here(&self) -> PathBuf {
        match self.global.get("here") {
            Some(h) => PathBuf::from(h),
            None => self
                .location
                .file
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
        }
    }

    /// A path option, relative to the directory of the file that wrote it.
    pub fn get_path(&self, key: &str) -> Option<PathBuf> {
        let v = self.local.get(key)?;
        let p = PathBuf::from(&v.value);
        if p.is_absolute() {
            return Some(p);
        }
        let base = v
            .location
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        Some(base.join(p))
    }
}

/// Paste Deploy's `asbool`: `true yes on y t 1` / `false no off n f 0`, case-insensitive.
pub fn asbool(v: &str) -> Result<bool, String> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" | "y" | "t" | "1" => Ok(true),
        "false" | "no" | "off" | "n" | "f" | "0" => Ok(false),
        _ => Err(format!(
            "expected true or false (true/yes/on/1, false/no/off/0), found '{v}'"
        )),
    }
}

/// Paste Deploy's `aslist`: split on whitespace.
pub fn aslist(v: &str) -> Vec<String> {
    v.split_whitespace().map(str::to_string).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asbool_accepts_paste_words() {
        for t in ["true", "yes", "on", "y", "t", "1", "TRUE", " On "] {
            assert_eq!(asbool(t), Ok(true), "{t}");
        }
        for f in ["false", "no", "off", "n", "f", "0"] {
            assert_eq!(asbool(f), Ok(false), "{f}");
        }
        assert!(asbool("maybe").is_err());
    }

    #[test]
    fn errors_name_the_key_line() {
        let c = FactoryConf::from_pairs("x#y", [("port", "eighty")]);
        let e = c.get_parsed::<u16>("port", "a port number").unwrap_err();
        assert_eq!(
            e.to_string(),
            "<memory>: [x#y] key 'port': expected a port number, found 'eighty'"
        );
    }
}
