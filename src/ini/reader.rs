//! STUB: the ConfigParser-exact reader on top of rust-ini.

use std::path::Path;

use super::IniFile;
use crate::error::ConfigErrors;

pub(super) fn read(path: &Path) -> Result<IniFile, ConfigErrors> {
    let _ = path;
    todo!("read")
}

pub(super) fn parse_str(path: &Path, text: &str) -> Result<IniFile, ConfigErrors> {
    let _ = (path, text);
    todo!("parse_str")
}
