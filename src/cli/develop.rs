//! `serve-develop mapproxy.yaml` and `serve-multiapp-develop DIR`: MapProxy's development
//! servers (`mapproxy-util serve-develop`, `serve-multiapp-develop`) on the HTTP server.
//!
//! How: the equivalent ini text (`[app:main] use = egg:MapProxy#app` with `mapproxy_conf`,
//! or `egg:MapProxy#multiapp` with `config_dir` and `allow_listing = true`) is written to a
//! file in a temporary directory of its own, which is then served exactly as `mapproxy-serve
//! --reload FILE.ini -b ADDR` serves it (removed again at exit). Nothing of the runtime is
//! special-cased: resolution, building, reloading and the listeners are the ini path's.
//!
//! - `-b` is MapProxy's `parse_bind_address`: `PORT` and `:PORT` (127.0.0.1), `HOST` (port
//!   8080), `HOST:PORT`; default `127.0.0.1:8080`. `[V6]:PORT` and `unix:/PATH` work too.
//!   Difference: MapProxy's `:PORT` binds every interface (an empty host), ours 127.0.0.1.
//! - Reloading is always on: an edit of the YAML or of its `base:` files rebuilds the app.
//!   A broken edit logs the error (file:line) and the previous app keeps serving; MapProxy's
//!   development server exits there.
//! - A configuration error at start exits with 2, as MapProxy's does.

use std::path::{Path, PathBuf};

use super::{ServeArgs, EXIT_CONFIG};

/// Which of MapProxy's development servers.
pub(super) enum Kind {
    /// One `mapproxy.yaml`.
    App,
    /// A directory of them (MultiMapProxy), with the project listing on.
    MultiApp,
}

/// MapProxy's `parse_bind_address` into an address `-b` of the HTTP server reads.
pub(super) fn bind_address(addr: &str) -> String {
    let a = addr.trim();
    if a.starts_with('[') || a.starts_with("unix:") || a.contains(':') {
        return a.to_string();
    }
    if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) {
        return format!("127.0.0.1:{a}");
    }
    format!("{a}:8080")
}

/// The value as ConfigParser reads it back: `%` doubled; a line break cannot be written.
fn ini_value(p: &Path) -> Result<String, String> {
    let s = p.display().to_string();
    if s.contains('\n') || s.contains('\r') {
        return Err(format!("cannot serve {s:?}: its path has a line break"));
    }
    Ok(s.replace('%', "%%"))
}

/// The ini text equivalent to the command line.
pub(super) fn ini_text(kind: &Kind, target: &Path) -> Result<String, String> {
    let v = ini_value(target)?;
    Ok(match kind {
        Kind::App => format!(
            "# written by mapproxy-serve serve-develop\n[app:main]\nuse = egg:MapProxy#app\nmapproxy_conf = {v}\n"
        ),
        Kind::MultiApp => format!(
            "# written by mapproxy-serve serve-multiapp-develop\n[app:main]\nuse = egg:MapProxy#multiapp\nconfig_dir = {v}\nallow_listing = true\n"
        ),
    })
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn temp_dir() -> Result<TempDir, String> {
    let base = std::env::temp_dir();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    for n in 0..100u32 {
        let p = base.join(format!(
            "mapproxy-serve-develop-{}-{nanos}-{n}",
            std::process::id()
        ));
        match std::fs::create_dir(&p) {
            Ok(()) => return Ok(TempDir(p)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(format!(
                    "cannot create a directory in {}: {e}",
                    base.display()
                ))
            }
        }
    }
    Err(format!("cannot create a directory in {}", base.display()))
}

/// Serve until SIGTERM/SIGINT; returns the exit status.
pub(super) fn run(kind: Kind, target: &Path, bind: &str, debug: bool) -> i32 {
    let what = match kind {
        Kind::App => "serve-develop",
        Kind::MultiApp => "serve-multiapp-develop",
    };
    let target = match std::path::absolute(target) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("mapproxy-serve {what}: {}: {e}", target.display());
            return EXIT_CONFIG;
        }
    };
    let ok = match kind {
        Kind::App => target.is_file(),
        Kind::MultiApp => target.is_dir(),
    };
    if !ok {
        let want = match kind {
            Kind::App => "a MapProxy configuration file",
            Kind::MultiApp => "a directory of MapProxy configurations",
        };
        eprintln!("mapproxy-serve {what}: {} is not {want}", target.display());
        return EXIT_CONFIG;
    }
    let text = match ini_text(&kind, &target) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mapproxy-serve {what}: {e}");
            return EXIT_CONFIG;
        }
    };
    let bind = bind_address(bind);
    if debug {
        let host = bind.rsplit_once(':').map(|h| h.0).unwrap_or("");
        if !matches!(host, "localhost" | "127.0.0.1" | "[::1]") {
            eprintln!("WARNING: debug mode on a non-localhost address ({bind}) shows internal errors to everyone who can connect");
        }
    }
    let dir = match temp_dir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("mapproxy-serve {what}: {e}");
            return 1;
        }
    };
    let ini = dir.0.join(format!("{what}.ini"));
    if let Err(e) = std::fs::write(&ini, text) {
        eprintln!("mapproxy-serve {what}: cannot write {}: {e}", ini.display());
        return 1;
    }
    let args = ServeArgs {
        config_uri: Some(ini.display().to_string()),
        bind: vec![bind],
        reload: true,
        debug,
        ..ServeArgs::default()
    };
    super::serve::run(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_addresses_as_mapproxy_parses_them() {
        assert_eq!(bind_address("127.0.0.1:8080"), "127.0.0.1:8080");
        assert_eq!(bind_address("80"), "127.0.0.1:80");
        assert_eq!(bind_address(":1234"), ":1234");
        assert_eq!(bind_address("0.0.0.0"), "0.0.0.0:8080");
        assert_eq!(bind_address("localhost"), "localhost:8080");
        assert_eq!(bind_address("0.0.0.0:8081"), "0.0.0.0:8081");
        assert_eq!(bind_address("[::1]:8081"), "[::1]:8081");
    }

    #[test]
    fn ini_values_escape_percent() {
        let t = ini_text(&Kind::App, Path::new("/a/100%/m.yaml")).unwrap_or_default();
        assert!(t.contains("mapproxy_conf = /a/100%%/m.yaml\n"), "{t}");
        assert!(ini_text(&Kind::App, Path::new("/a\nb")).is_err());
        let t = ini_text(&Kind::MultiApp, Path::new("/p")).unwrap_or_default();
        assert!(t.contains("use = egg:MapProxy#multiapp\nconfig_dir = /p\nallow_listing = true\n"));
    }
}
