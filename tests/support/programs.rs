//! Finding the real peers the integration tests talk to (nginx, lighttpd, Apache): a test
//! that needs a missing one prints `SKIP: ...` and passes, except under `CI=true`, where the
//! peers are installed by `.ci/test` and a missing one is a failure.

use std::path::{Path, PathBuf};

/// The path of a program (also looked up in the sbin directories), or `None` after a
/// `SKIP:` line; panics when it is missing and `CI=true`.
pub fn find_program(name: &str, skipping: &str) -> Option<PathBuf> {
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed (required when CI=true)"
        );
        eprintln!("SKIP: {name} is not installed; {skipping}");
    }
    found
}
