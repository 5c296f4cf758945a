//! Ini files read exactly as Python's `ConfigParser` reads them with Paste Deploy's settings
//! (`optionxform = str`, `strict`, no inline comments), on top of rust-ini, with the file and
//! line of every section and key kept for later error messages.
//!
//! - [`IniFile::read`] / [`IniFile::parse_str`]: the raw text, strictness checks, positions;
//! - [`IniFile::get`]: `%(name)s` interpolation (`interpolate.rs`).

mod interpolate;
mod reader;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub(crate) use interpolate::py_repr;
pub use interpolate::{interpolate, Found, Vars, MAX_DEPTH};

use crate::error::Location;

/// A parsed ini file.
#[derive(Clone, Debug)]
pub struct IniFile {
    /// The path as it was opened (used in messages).
    pub path: PathBuf,
    /// The absolute path (`%(__file__)s`).
    pub abs_path: PathBuf,
    /// The absolute directory of the file (`%(here)s`).
    pub here: PathBuf,
    /// Every section but `[DEFAULT]`, in file order.
    pub sections: Vec<Section>,
    /// The `[DEFAULT]` blocks merged (name `DEFAULT`; line of the first block, 0 if none).
    pub defaults: Section,
}

/// One section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    /// The header text between `[` and `]`, not stripped (`app:main`).
    pub name: String,
    /// Line of the header (1-based).
    pub line: usize,
    /// The keys in file order.
    pub entries: Vec<Entry>,
}

/// One `key = value` (or `key: value`), with continuation lines joined by `\n`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    /// The key, case kept, trailing spaces removed.
    pub key: String,
    /// The raw value (not interpolated).
    pub value: String,
    /// Line of the key (1-based).
    pub line: usize,
}

impl Section {
    /// The entry for `key` (case-sensitive).
    pub fn get(&self, key: &str) -> Option<&Entry> {
        self.entries.iter().find(|e| e.key == key)
    }
}

impl IniFile {
    /// The section with exactly this header text.
    pub fn section(&self, name: &str) -> Option<&Section> {
        if name == "DEFAULT" {
            return Some(&self.defaults);
        }
        self.sections.iter().find(|s| s.name == name)
    }

    /// The location of a section header.
    pub fn location(&self, section: &Section) -> Location {
        Location::in_section(&self.path, section.line, &section.name)
    }

    /// The location of a key in a section.
    pub fn entry_location(&self, section: &Section, entry: &Entry) -> Location {
        Location::in_section(&self.path, entry.line, &section.name)
    }

    /// Read a file from disk. A missing or unreadable file is an error naming it.
    pub fn read(path: &Path) -> Result<IniFile, crate::error::ConfigErrors> {
        reader::read(path)
    }

    /// Parse text as if it were the file at `path` (`here` is derived from `path`).
    pub fn parse_str(path: &Path, text: &str) -> Result<IniFile, crate::error::ConfigErrors> {
        reader::parse_str(path, text)
    }
}
