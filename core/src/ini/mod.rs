//! Ini files read exactly as Python's `ConfigParser` reads them with Paste Deploy's settings
//! (`optionxform = str`, `strict`, no inline comments), on top of rust-ini, with the file and
//! line of every section and key kept for later error messages.
//!
//! - [`IniFile::read`] / [`IniFile::parse_str`]: the raw text, strictness checks, positions;
//! - [`IniFile::get`]: `%(name)s` interpolation (`interpolate.rs`).
//!
//! Limits (each a configuration error with file:line, never a crash): a file is read only if it
//! is a regular file of at most [`MAX_FILE_SIZE`] bytes (a FIFO, a device or `/dev/zero` is
//! refused without blocking); an interpolated value is at most [`MAX_VALUE_LEN`] bytes, checked
//! while it is expanded. Keys and sections are found by hash lookups, so reading and
//! resolving are linear in the size of the file.

mod interpolate;
mod reader;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use interpolate::{interpolate, Found, Vars, MAX_DEPTH, MAX_SUBSTITUTIONS, MAX_VALUE_LEN};
#[doc(hidden)]
pub use interpolate::{py_repr, short_repr};
pub use reader::{read_limited, MAX_FILE_SIZE};

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
    /// The canonical path the file was read from (symlinks and `..` resolved by the file
    /// system); for text that was not read from disk, `abs_path`. One file, one `real_path`.
    pub real_path: PathBuf,
    /// Every section but `[DEFAULT]`, in file order.
    pub sections: Vec<Section>,
    /// The `[DEFAULT]` blocks merged (name `DEFAULT`; line of the first block, 0 if none).
    pub defaults: Section,
    /// Header text → index in `sections` (the first of that name), and `sections.len()` when
    /// it was built.
    section_index: (HashMap<String, usize>, usize),
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
    /// Key → index in `entries` (the first of that name), built by [`Section::new`].
    index: Index,
}

/// A section's keys by name: exact (the first entry of a key) and ASCII-case-insensitive (the
/// last entry, as logging's `fileConfig` reads its sections).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Index {
    exact: HashMap<String, usize>,
    folded: HashMap<String, usize>,
    /// `entries.len()` when the index was built: an index that no longer matches (someone
    /// pushed to the public `entries`) is not used.
    len: usize,
}

impl Index {
    fn of(entries: &[Entry]) -> Index {
        let mut exact = HashMap::with_capacity(entries.len());
        let mut folded = HashMap::with_capacity(entries.len());
        for (i, e) in entries.iter().enumerate() {
            exact.entry(e.key.clone()).or_insert(i);
            folded.insert(e.key.to_ascii_lowercase(), i);
        }
        Index {
            exact,
            folded,
            len: entries.len(),
        }
    }
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
    /// A section with its keys indexed for [`get`](Section::get).
    pub fn new(name: impl Into<String>, line: usize, entries: Vec<Entry>) -> Section {
        Section {
            name: name.into(),
            line,
            index: Index::of(&entries),
            entries,
        }
    }

    fn indexed(&self) -> bool {
        self.index.len == self.entries.len()
    }

    /// The entry for `key` (case-sensitive; the first one if repeated). A hash lookup.
    pub fn get(&self, key: &str) -> Option<&Entry> {
        if !self.indexed() {
            return self.entries.iter().find(|e| e.key == key);
        }
        let i = *self.index.exact.get(key)?;
        self.entries.get(i).filter(|e| e.key == key)
    }

    /// The entry for `key` compared ASCII-case-insensitively (the last one if repeated), as
    /// logging's `fileConfig` looks keys up. A hash lookup.
    pub fn get_ignore_ascii_case(&self, key: &str) -> Option<&Entry> {
        if !self.indexed() {
            return self
                .entries
                .iter()
                .rev()
                .find(|e| e.key.eq_ignore_ascii_case(key));
        }
        let i = *self.index.folded.get(&key.to_ascii_lowercase())?;
        self.entries
            .get(i)
            .filter(|e| e.key.eq_ignore_ascii_case(key))
    }
}

impl IniFile {
    /// The section with exactly this header text.
    pub fn section(&self, name: &str) -> Option<&Section> {
        if name == "DEFAULT" {
            return Some(&self.defaults);
        }
        if self.section_index.1 != self.sections.len() {
            // `sections` was changed after reading: the index does not match.
            return self.sections.iter().find(|s| s.name == name);
        }
        let i = *self.section_index.0.get(name)?;
        self.sections.get(i).filter(|s| s.name == name)
    }

    /// The location of a section header.
    pub fn location(&self, section: &Section) -> Location {
        Location::in_section(&self.path, section.line, &section.name)
    }

    /// The location of a key in a section.
    pub fn entry_location(&self, section: &Section, entry: &Entry) -> Location {
        Location::in_section(&self.path, entry.line, &section.name)
    }

    /// Read a file from disk. A missing or unreadable file is an error naming it, and so is
    /// anything but a regular file of at most [`MAX_FILE_SIZE`] bytes.
    pub fn read(path: &Path) -> Result<IniFile, crate::error::ConfigErrors> {
        reader::read(path, path, None)
    }

    /// Read the file at `open` (the path the file system resolves: canonical), named `shown` in
    /// messages, with `abs` as its `%(__file__)s` (and its directory as `%(here)s`). An include
    /// (`config:` URI) is read this way: opened by its canonical path, named as it was written.
    pub fn read_at(
        open: &Path,
        shown: &Path,
        abs: &Path,
    ) -> Result<IniFile, crate::error::ConfigErrors> {
        reader::read(open, shown, Some(abs))
    }

    /// Parse text as if it were the file at `path` (`here` is derived from `path`).
    pub fn parse_str(path: &Path, text: &str) -> Result<IniFile, crate::error::ConfigErrors> {
        reader::parse_str(path, text)
    }
}
