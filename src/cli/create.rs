//! `mapproxy-serve create -t TEMPLATE DEST`: ini templates.
//!
//! - `create -l` lists the templates on stdout.
//! - `create -t NAME DEST` writes the template to `DEST` (into `DEST/NAME.ini` when `DEST` is
//!   a directory; missing parent directories are made) and prints `writing PATH` on stderr.
//!   Files the template refers to (a static directory, an empty htpasswd file) are written
//!   next to it when missing, so that `mapproxy-serve check DEST` passes at once.
//! - An existing `DEST` is not replaced without `--force` (exit 2, like every usage error:
//!   MapProxy's `mapproxy-util create` exits 1 there). Files next to it are never replaced.
//! - An unknown template, or a missing `-t` or `DEST`, is a usage error (exit 2); a file that
//!   cannot be written exits 1.
//! - `create -t base-config DIR` writes a MapProxy project into `DIR` (made when missing):
//!   `mapproxy.yaml` (services demo/tms/kml/wmts, a layer cached from a `debug` source, so it
//!   runs offline), `config.ini` serving it with `egg:MapProxy#app` on HTTP, and `log.ini`
//!   (the `log-ini` template). Every file is checked before any is written: an existing one
//!   without `--force` writes nothing (exit 2).

use std::path::{Path, PathBuf};

use super::EXIT_CONFIG;

/// The templates: name, one line, text.
pub const TEMPLATES: &[(&str, &str, &str)] = &[
    (
        "develop",
        "local development: access log, urlmap of a welcome page, echo and /health on 127.0.0.1:8080",
        include_str!("templates/develop.ini"),
    ),
    (
        "production",
        "behind a reverse proxy: forwarded headers from trusted proxies, access log, basic auth (htpasswd), static + proxy + echo",
        include_str!("templates/production.ini"),
    ),
    (
        "urlmap",
        "a urlmap composite mounting apps by path (and host)",
        include_str!("templates/urlmap.ini"),
    ),
    (
        "fcgi",
        "FastCGI on a unix socket (egg:Flup#fcgi_fork) for nginx/apache/lighttpd",
        include_str!("templates/fcgi.ini"),
    ),
    (
        "log-ini",
        "MapProxy's log.ini: logging sections (fileConfig) writing to files next to it",
        crate::logging::LOG_INI_TEMPLATE,
    ),
];

/// Files a template refers to, relative to the written file's directory, written when missing.
fn companions(template: &str) -> &'static [(&'static str, &'static str)] {
    match template {
        "production" => &[
            (
                "htpasswd",
                "",
            ),
            (
                "static/index.html",
                "<!DOCTYPE html>\n<html><head><title>mapproxy-serve</title></head>\n<body><p>Static files live here.</p></body></html>\n",
            ),
        ],
        _ => &[],
    }
}

/// The file name used when DEST is a directory.
fn default_name(template: &str) -> String {
    match template {
        "log-ini" => "log.ini".to_string(),
        t => format!("{t}.ini"),
    }
}

/// `create -t base-config DIR`: a MapProxy project, file name and text.
pub const BASE_CONFIG: &[(&str, &str)] = &[
    (
        "mapproxy.yaml",
        include_str!("templates/base-config/mapproxy.yaml"),
    ),
    (
        "config.ini",
        include_str!("templates/base-config/config.ini"),
    ),
    ("log.ini", crate::logging::LOG_INI_TEMPLATE),
];

const BASE_CONFIG_DOC: &str = "a MapProxy project in DIR: mapproxy.yaml (demo, tms, kml, wmts; a cached debug layer that runs offline), config.ini serving it, log.ini";

fn list() -> i32 {
    let width = TEMPLATES
        .iter()
        .map(|t| t.0.len())
        .chain(["base-config".len()])
        .max()
        .unwrap_or(0);
    for (name, doc, _) in TEMPLATES {
        println!("{name:<width$}  {doc}");
    }
    println!("{:<width$}  {BASE_CONFIG_DOC}", "base-config");
    0
}

/// `create -t base-config DIR`: every file is checked before any is written.
fn base_config(dest: &Path, force: bool) -> i32 {
    if dest.exists() && !dest.is_dir() {
        eprintln!(
            "mapproxy-serve create: {} is not a directory (base-config writes several files into one)",
            dest.display()
        );
        return EXIT_CONFIG;
    }
    for (name, _) in BASE_CONFIG {
        let p = dest.join(name);
        if p.exists() && !force {
            eprintln!(
                "mapproxy-serve create: {} already exists; use --force to overwrite it",
                p.display()
            );
            return EXIT_CONFIG;
        }
    }
    for (name, text) in BASE_CONFIG {
        if let Err(e) = write_file(&dest.join(name), text) {
            eprintln!("mapproxy-serve create: {e}");
            return 1;
        }
    }
    0
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
    }
    eprintln!("writing {}", path.display());
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

pub(super) fn run(
    template: Option<String>,
    dest: Option<PathBuf>,
    force: bool,
    list_: bool,
) -> i32 {
    if list_ {
        return list();
    }
    let names = || {
        let mut n: Vec<_> = TEMPLATES.iter().map(|t| t.0).collect();
        n.push("base-config");
        n.join(", ")
    };
    let Some(template) = template else {
        eprintln!(
            "mapproxy-serve create: give a template with -t ({}) and a destination file",
            names()
        );
        return EXIT_CONFIG;
    };
    if template == "base-config" {
        let Some(dest) = dest else {
            eprintln!(
                "mapproxy-serve create: give the directory to write: create -t base-config DIR"
            );
            return EXIT_CONFIG;
        };
        return base_config(&dest, force);
    }
    let Some(&(name, _, text)) = TEMPLATES.iter().find(|t| t.0 == template) else {
        eprintln!(
            "mapproxy-serve create: unknown template '{template}' (templates: {})",
            names()
        );
        return EXIT_CONFIG;
    };
    let Some(dest) = dest else {
        eprintln!("mapproxy-serve create: give the file to write: create -t {name} DEST");
        return EXIT_CONFIG;
    };
    let dest = if dest.is_dir() {
        dest.join(default_name(name))
    } else {
        dest
    };
    if dest.exists() && !force {
        eprintln!(
            "mapproxy-serve create: {} already exists; use --force to overwrite it",
            dest.display()
        );
        return EXIT_CONFIG;
    }
    if let Err(e) = write_file(&dest, text) {
        eprintln!("mapproxy-serve create: {e}");
        return 1;
    }
    let dir = dest.parent().unwrap_or(Path::new(""));
    for (rel, content) in companions(name) {
        let p = dir.join(rel);
        if p.exists() {
            continue;
        }
        if let Err(e) = write_file(&p, content) {
            eprintln!("mapproxy-serve create: {e}");
            return 1;
        }
    }
    0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_texts_end_with_a_newline() {
        let mut names: Vec<_> = TEMPLATES.iter().map(|t| t.0).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TEMPLATES.len());
        for (name, doc, text) in TEMPLATES {
            assert!(!doc.is_empty() && text.ends_with('\n'), "{name}");
        }
        for required in ["develop", "production", "urlmap", "fcgi", "log-ini"] {
            assert!(names.contains(&required), "{required}");
        }
    }
}
