//! `%(name)s` interpolation as Python's `BasicInterpolation` does it, plus the
//! project's additions (command-line values win over `[DEFAULT]`, `%(ENV:NAME)s`).
//!
//! STUB: the contract is fixed here; the implementation is being written.

use indexmap::IndexMap;

use super::{IniFile, Section};
use crate::error::{ConfigError, ConfigErrors};

/// Python's `MAX_INTERPOLATION_DEPTH`.
pub const MAX_DEPTH: usize = 10;

/// Values visible to `%(name)s` besides the file's own.
#[derive(Clone, Debug, Default)]
pub struct Vars {
    /// Command-line `NAME=VALUE`: win over `[DEFAULT]` (not over the section's own keys).
    pub overrides: IndexMap<String, String>,
    /// The includer's global_conf (`use = config:...`): used only when the file defines no such key.
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

/// Interpolate `raw` with `lookup`; the error is the bare message (the caller adds the location).
pub fn interpolate(
    raw: &str,
    lookup: &dyn Fn(&str) -> Option<Found<'_>>,
) -> Result<String, String> {
    let _ = (raw, lookup);
    todo!("interpolate")
}

impl IniFile {
    /// The interpolated value of `key` in `section`.
    pub fn get(&self, section: &Section, key: &str, vars: &Vars) -> Result<String, ConfigError> {
        let _ = (section, key, vars);
        todo!("IniFile::get")
    }

    /// `[DEFAULT]` interpolated, plus `here` and `__file__` (Paste's `parser.defaults()`).
    pub fn defaults_interpolated(
        &self,
        vars: &Vars,
    ) -> Result<IndexMap<String, String>, ConfigErrors> {
        let _ = vars;
        todo!("defaults_interpolated")
    }
}
