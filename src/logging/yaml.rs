//! A log4rs YAML file as a logging configuration: log4rs's own format (`appenders`, `root`,
//! `loggers`), its appender, encoder and filter kinds, plus `kind: python` for an encoder with
//! Python's `format`/`datefmt`. Logger names may be dotted as in Python
//! (`mapproxy.source.request`): they name the same hierarchy as `mapproxy::source::request`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use log4rs::config::{Deserializers, RawConfig};

use crate::error::{ConfigError, ConfigErrors};

/// A log4rs YAML file, read and checked for its structure; its appenders are made (files
/// opened) when it is applied.
#[derive(Clone, Debug)]
pub(super) struct Log4rsYaml {
    pub path: PathBuf,
    pub raw: Arc<RawConfig>,
}

impl Log4rsYaml {
    pub fn read(path: &Path) -> Result<Log4rsYaml, ConfigErrors> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::in_file(path, format!("cannot read: {e}")))?;
        let raw: RawConfig = serde_yaml::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!("{}:{}: ", path.display(), l.line()))
                .unwrap_or_else(|| format!("{}: ", path.display()));
            ConfigError::new(format!("{at}not a log4rs configuration: {e}"))
        })?;
        Ok(Log4rsYaml {
            path: path.to_path_buf(),
            raw: Arc::new(raw),
        })
    }

    /// log4rs's kinds and ours.
    pub fn deserializers() -> Deserializers {
        let mut d = Deserializers::default();
        d.insert("python", super::encode::PyEncoderDeserializer);
        d
    }
}
