//! `mapproxy-serve create -t TEMPLATE DEST`: ini templates.

use std::path::PathBuf;

/// The templates: name, one line, text.
pub const TEMPLATES: &[(&str, &str, &str)] = &[];

pub(super) fn run(template: Option<String>, dest: Option<PathBuf>, force: bool, list: bool) -> i32 {
    let _ = (template, dest, force, list);
    2
}
