//! Arbitrary bytes as an ini file, through the reader, the Paste Deploy resolver and the
//! logging configuration reader. Errors are expected; a panic, an abort, a stack overflow, a
//! hang or unbounded memory is a bug.
//!
//! The input is written to `fuzz.ini` in a directory of this process's own (in /dev/shm
//! when there is one) and resolved as `config:<that file>`, so `config:` includes work: the
//! directory also holds the files the seeds include (`include/base.ini`,
//! `include/sub/apps.ini`, `test_config_included.ini`), and `config:fuzz.ini` is the input
//! itself.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use indexmap::IndexMap;
use libfuzzer_sys::fuzz_target;
use mapproxy_serve::deploy::Deployment;
use mapproxy_serve::ini::{IniFile, Vars};
use mapproxy_serve::logging::LoggingConfig;

/// Files the seed corpus includes, laid out beside the input.
const INCLUDES: &[(&str, &str)] = &[
    (
        "include/base.ini",
        include_str!("../../tests/golden/include/base.ini"),
    ),
    (
        "include/sub/apps.ini",
        include_str!("../../tests/golden/include/sub/apps.ini"),
    ),
    (
        "test_config_included.ini",
        include_str!("../../tests/fixtures/paste/test_config_included.ini"),
    ),
];

/// `fuzz.ini` in this process's directory, created with the include files on first use.
fn input_path() -> &'static Path {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        let shm = Path::new("/dev/shm");
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("mapproxy-serve-fuzz-{}", std::process::id()));
        for (name, text) in INCLUDES {
            let p = dir.join(name);
            std::fs::create_dir_all(p.parent().expect("a file in a directory"))
                .expect("create the fuzz directory");
            std::fs::write(&p, text).expect("write an include file");
        }
        dir.join("fuzz.ini")
    })
}

fuzz_target!(|data: &[u8]| {
    let path = input_path();
    std::fs::write(path, data).expect("write the input");
    let uri = format!("config:{}", path.display());
    let none = IndexMap::new();

    // The whole configuration: app and server trees, includes.
    match Deployment::resolve(&uri, None, None, &none) {
        Ok(d) => {
            // What `inspect` and `appconfig` show.
            let _ = d.app.to_text();
            let _ = d.app.to_json();
            let _ = d.app.local_conf();
            let _ = d.app.global_conf();
            if let Some(s) = &d.server {
                let _ = s.to_text();
            }
            for w in &d.warnings {
                let _ = w.to_string();
            }
        }
        // Error messages quote the file: format them (char boundaries, reprs).
        Err(e) => {
            let _ = e.to_string();
        }
    }

    // The logging sections, as `serve` reads them from the top file; a command-line value
    // makes `overrides` non-empty as `serve -- name=value` does.
    let file = match IniFile::read(path) {
        Ok(f) => f,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let mut overrides = IndexMap::new();
    overrides.insert("fuzz".to_string(), "value".to_string());
    for vars in [
        Vars::default(),
        Vars {
            overrides,
            fallbacks: IndexMap::new(),
        },
    ] {
        match LoggingConfig::from_ini(&file, &vars) {
            Ok(Some(cfg)) => {
                let _ = cfg.files();
            }
            Ok(None) => {}
            Err(e) => {
                let _ = e.to_string();
            }
        }
    }
});
