//! Configuration errors: every one names the file, the line, the section and, where it
//! applies, the key — `config.ini:12: [filter:auth] unknown option 'relm' ...`.

use std::fmt;
use std::path::{Path, PathBuf};

/// Errors inside bodies and services: the one boxed error type of every crate.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Where something was written: a file, a line (1-based) and the section it is in.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Location {
    /// The file as it was opened (the user's path, or an include joined to its includer's dir).
    pub file: PathBuf,
    /// 1-based line number; 0 when the whole file is meant.
    pub line: usize,
    /// The section header text (`app:main`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub section: Option<String>,
}

impl Location {
    /// A location in a file, outside any section.
    pub fn file(file: impl Into<PathBuf>, line: usize) -> Self {
        Location {
            file: file.into(),
            line,
            section: None,
        }
    }

    /// A location inside a section.
    pub fn in_section(file: impl Into<PathBuf>, line: usize, section: impl Into<String>) -> Self {
        Location {
            file: file.into(),
            line,
            section: Some(section.into()),
        }
    }

    /// The same location at another line of the same section.
    pub fn at_line(&self, line: usize) -> Self {
        Location {
            line,
            ..self.clone()
        }
    }

    /// An error at this location.
    pub fn error(&self, message: impl Into<String>) -> ConfigError {
        ConfigError {
            location: Some(self.clone()),
            message: message.into(),
        }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}:", self.file.display(), self.line)?;
        } else {
            write!(f, "{}:", self.file.display())?;
        }
        if let Some(s) = &self.section {
            write!(f, " [{s}]")?;
        }
        Ok(())
    }
}

/// One configuration error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where; `None` for errors without a file (a bad command-line value).
    pub location: Option<Location>,
    /// What is wrong and, where it helps, what was expected.
    pub message: String,
}

impl ConfigError {
    /// An error with no file position (command line, registry).
    pub fn new(message: impl Into<String>) -> Self {
        ConfigError {
            location: None,
            message: message.into(),
        }
    }

    /// An error about a whole file (cannot be read, ...).
    pub fn in_file(file: &Path, message: impl Into<String>) -> Self {
        ConfigError {
            location: Some(Location::file(file, 0)),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{loc} {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

impl std::error::Error for ConfigError {}

/// Several configuration errors, reported together like a compiler does.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl ConfigErrors {
    /// No errors yet.
    pub fn new() -> Self {
        ConfigErrors(Vec::new())
    }
    /// Add one error.
    pub fn push(&mut self, e: ConfigError) {
        self.0.push(e);
    }
    /// Add all errors of another collection.
    pub fn extend(&mut self, other: ConfigErrors) {
        self.0.extend(other.0);
    }
    /// True when nothing was collected.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// `Ok(value)` when nothing was collected, else the errors.
    pub fn into_result<T>(self, value: T) -> Result<T, ConfigErrors> {
        if self.0.is_empty() {
            Ok(value)
        } else {
            Err(self)
        }
    }
    /// Keep the `Ok` value, collect the `Err`.
    pub fn take<T>(&mut self, r: Result<T, impl Into<ConfigErrors>>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                self.extend(e.into());
                None
            }
        }
    }
}

impl From<ConfigError> for ConfigErrors {
    fn from(e: ConfigError) -> Self {
        ConfigErrors(vec![e])
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_file_line_section() {
        let e =
            Location::in_section("config.ini", 12, "filter:auth").error("unknown option 'relm'");
        assert_eq!(
            e.to_string(),
            "config.ini:12: [filter:auth] unknown option 'relm'"
        );
        assert_eq!(ConfigError::new("bad").to_string(), "bad");
    }
}
