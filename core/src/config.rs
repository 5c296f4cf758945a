//! What a factory is given: its section's options (`local_conf`, each with its file:line) and
//! the `global_conf`, with typed getters whose errors name the file, line, section and key.
//!
//! One rule, one reader: every factory reads durations with [`FactoryConf::get_seconds`] /
//! [`FactoryConf::get_timeout`], byte sizes with [`FactoryConf::get_size`], lists with
//! [`FactoryConf::get_list`], booleans with [`FactoryConf::get_bool`] and Python level names
//! with [`FactoryConf::get_level`]. Each takes explicit bounds; a value outside them is a
//! configuration error naming file:line and the key, never a panic or a silent clamp.
//!
//! ```
//! use mapproxy_serve_core::config::FactoryConf;
//!
//! let conf = FactoryConf::from_pairs("x#y", [("timeout", "1e30"), ("max", "10M")]);
//! let err = conf.get_seconds("timeout", 0.0..=86400.0).unwrap_err();
//! assert!(err.to_string().contains("key 'timeout'"));
//! assert_eq!(conf.get_size("max", 0..=1 << 40).unwrap(), Some(10 << 20));
//! ```

use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

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

    /// A list option: items separated by commas and/or whitespace (`a, b c`); Paste's
    /// `aslist` (whitespace) is the special case without commas.
    pub fn get_list(&self, key: &str) -> Vec<String> {
        self.get(key).map(split_list).unwrap_or_default()
    }

    /// A number of seconds (`30`, `2.5`) within `range`; `None` when the key is not given.
    pub fn get_seconds(
        &self,
        key: &str,
        range: RangeInclusive<f64>,
    ) -> Result<Option<Duration>, ConfigError> {
        self.get(key)
            .map(|v| parse_seconds(v, &range).map_err(|e| self.error(key, e)))
            .transpose()
    }

    /// A timeout in seconds where `0` means "no limit": `default` when the key is not given,
    /// at most `max` seconds. `None`: no limit.
    pub fn get_timeout(
        &self,
        key: &str,
        default: f64,
        max: f64,
    ) -> Result<Option<Duration>, ConfigError> {
        let d = match self.get_seconds(key, 0.0..=max)? {
            Some(d) => d,
            None => {
                parse_seconds(&default.to_string(), &(0.0..=max)).map_err(|e| self.error(key, e))?
            }
        };
        Ok((!d.is_zero()).then_some(d))
    }

    /// A byte size (`65536`, `64k`, `10M`, `1G`, `2GiB`, `10 MB`: powers of 1024) within
    /// `range`; `None` when the key is not given.
    pub fn get_size(
        &self,
        key: &str,
        range: RangeInclusive<u64>,
    ) -> Result<Option<u64>, ConfigError> {
        self.get(key)
            .map(|v| parse_size_in(v, &range).map_err(|e| self.error(key, e)))
            .transpose()
    }

    /// An integer within `range`; `None` when the key is not given.
    pub fn get_int<T>(&self, key: &str, range: RangeInclusive<T>) -> Result<Option<T>, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let Some(v) = self.get(key) else {
            return Ok(None);
        };
        match v.trim().parse::<T>() {
            Ok(n) if range.contains(&n) => Ok(Some(n)),
            _ => Err(self.error(
                key,
                format!(
                    "expected a whole number from {} to {}, found '{v}'",
                    range.start(),
                    range.end()
                ),
            )),
        }
    }

    /// A Python logging level: a name (`INFO`, `WARNING`; upper case, as Python's
    /// `logging` wants) or a number; `None` when the key is not given.
    pub fn get_level(&self, key: &str) -> Result<Option<u32>, ConfigError> {
        self.get(key)
            .map(|v| parse_level(v).map_err(|e| self.error(key, e)))
            .transpose()
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

/// A list separated by commas and/or whitespace (`a, b c`): the one list rule of every
/// option.
pub fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Seconds as text (`30`, `2.5`, `1e3`) within `range`.
pub fn parse_seconds(v: &str, range: &RangeInclusive<f64>) -> Result<Duration, String> {
    let expected = || {
        format!(
            "expected a number of seconds from {} to {}, found '{v}'",
            range.start(),
            range.end()
        )
    };
    let s = v.trim().parse::<f64>().map_err(|_| expected())?;
    if !s.is_finite() || !range.contains(&s) {
        return Err(expected());
    }
    Duration::try_from_secs_f64(s).map_err(|_| expected())
}

/// A byte size as text: a whole number, optionally followed by `k`, `M`, `G` or `T` (any
/// case, powers of 1024, optionally `B`, `iB`), e.g. `64k`, `10 MB`, `1GiB`. `None` for
/// anything else, including sizes beyond `u64`.
pub fn parse_size(v: &str) -> Option<u64> {
    let t = v.trim();
    let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(digits);
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

fn parse_size_in(v: &str, range: &RangeInclusive<u64>) -> Result<u64, String> {
    match parse_size(v) {
        Some(n) if range.contains(&n) => Ok(n),
        _ => Err(format!(
            "expected a size in bytes from {} to {} (suffixes k, M, G: powers of 1024), found '{v}'",
            range.start(),
            range.end()
        )),
    }
}

/// Python's level names (`logging._nameToLevel`, case-sensitive as there) and TRACE (5).
pub fn level_by_name(name: &str) -> Option<u32> {
    Some(match name.trim() {
        "CRITICAL" | "FATAL" => 50,
        "ERROR" => 40,
        "WARNING" | "WARN" => 30,
        "INFO" => 20,
        "DEBUG" => 10,
        "TRACE" => 5,
        "NOTSET" => 0,
        _ => return None,
    })
}

/// A Python level as text: a name ([`level_by_name`]) or a number (`15`). The error says
/// what was expected, and suggests the upper-case name for `info`.
pub fn parse_level(v: &str) -> Result<u32, String> {
    let t = v.trim();
    if let Ok(n) = t.parse::<u32>() {
        return Ok(n);
    }
    if let Some(n) = level_by_name(t) {
        return Ok(n);
    }
    let upper = t.to_ascii_uppercase();
    if level_by_name(&upper).is_some() {
        Err(format!(
            "unknown level '{v}' (level names are upper case: '{upper}')"
        ))
    } else {
        Err(format!(
            "unknown level '{v}' (known: CRITICAL, ERROR, WARNING, INFO, DEBUG, NOTSET, or a number)"
        ))
    }
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
    fn lists_split_on_commas_and_whitespace() {
        assert_eq!(split_list(" a, b\n c,,d "), ["a", "b", "c", "d"]);
        assert!(split_list(" , ").is_empty());
    }

    #[test]
    fn sizes_have_units_and_bounds() {
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("2k"), Some(2048));
        assert_eq!(parse_size("10M"), Some(10 << 20));
        assert_eq!(parse_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_size("10 MB"), Some(10 << 20));
        assert_eq!(parse_size("lots"), None);
        assert_eq!(parse_size("-1"), None);
        assert_eq!(parse_size("1.5k"), None);
        assert_eq!(parse_size("99999999999G"), None);
        let c = FactoryConf::from_pairs("x#y", [("n", "2G")]);
        let e = c.get_size("n", 0..=1 << 30).unwrap_err().to_string();
        assert!(e.contains("key 'n'") && e.contains("1073741824"), "{e}");
    }

    #[test]
    fn seconds_never_panic() {
        for bad in ["1e30", "-1", "NaN", "inf", "", "x", "1e9999"] {
            let c = FactoryConf::from_pairs("x#y", [("t", bad)]);
            assert!(c.get_seconds("t", 0.0..=86400.0).is_err(), "{bad}");
        }
        let c = FactoryConf::from_pairs("x#y", [("t", "2.5")]);
        assert_eq!(
            c.get_seconds("t", 0.0..=10.0).unwrap(),
            Some(Duration::from_millis(2500))
        );
        let c = FactoryConf::from_pairs("x#y", [("t", "0")]);
        assert_eq!(c.get_timeout("t", 30.0, 100.0).unwrap(), None);
        let c = FactoryConf::from_pairs("x#y", []);
        assert_eq!(
            c.get_timeout("t", 30.0, 100.0).unwrap(),
            Some(Duration::from_secs(30))
        );
    }

    #[test]
    fn levels_are_pythons() {
        assert_eq!(parse_level("INFO"), Ok(20));
        assert_eq!(parse_level("15"), Ok(15));
        assert!(parse_level("info").unwrap_err().contains("'INFO'"));
        assert!(parse_level("-1").is_err());
        assert!(parse_level("loud").is_err());
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
