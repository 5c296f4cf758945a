//! `egg:mapproxy-serve#basic_auth`, `egg:Paste#auth_basic`: HTTP Basic authentication.
//!
//! Options:
//! - `realm`: shown by browsers (default `restricted`).
//! - `htpasswd`: an Apache htpasswd file (bcrypt, apr1-MD5, `{SHA}`, nginx's `{PLAIN}`),
//!   relative to the ini file's directory; re-read when it changes.
//! - `users`: inline `user:password` pairs separated by whitespace or newlines (tests, demos);
//!   checked before the file.
//! - `authfunc` (Paste): names Python code, so it is refused with an error pointing to
//!   `htpasswd` or a Rust filter.
//! - `trust_remote_user`: a request that already carries a user (an outer filter, or the
//!   FastCGI server's `REMOTE_USER` with its own `trust_remote_user`) passes as that user
//!   (Paste's behaviour). Default false: only the `Authorization` header decides.
//! - `max_concurrent_checks`: expensive hash checks (bcrypt, MD5-crypt) running at once
//!   (default: the number of CPUs); `max_queued_checks`: more that may wait for a turn
//!   (default 64). Past both, `503` with `Retry-After: 1`.
//!
//! ```ini
//! [filter:auth]
//! use = egg:Paste#auth_basic
//! realm = maps
//! htpasswd = %(here)s/htpasswd
//! ```

use std::sync::Arc;

use tower::Layer as _;

use crate::basic_auth::htpasswd::Users;
use crate::basic_auth::{
    default_concurrent_checks, BasicAuthLayer, CredentialStore, DEFAULT_QUEUED_CHECKS,
};

use mapproxy_serve_core::app::{App, Filter};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;

/// Build the filter from its options.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    if conf.get("authfunc").is_some() {
        errs.push(conf.error(
            "authfunc",
            "names Python code, which mapproxy-serve cannot run; use `htpasswd = /path/to/file` \
             (create it with `htpasswd -cB FILE USER`), or write the check as a Rust filter and \
             register it (README: \"Writing a filter\")",
        ));
    }
    let inline = match conf.get("users") {
        None => Users::new(),
        Some(v) => match Users::from_plain_pairs(v) {
            Ok(u) => u,
            Err(e) => {
                errs.push(conf.error("users", e));
                Users::new()
            }
        },
    };
    let file = conf.get_path("htpasswd");
    if file.is_none() && conf.get("users").is_none() && conf.get("authfunc").is_none() {
        errs.push(conf.section_error(format!(
            "egg:{} needs `htpasswd = FILE` or `users = name:password ...`",
            conf.egg
        )));
    }
    let realm = conf.get("realm").unwrap_or("restricted");
    let trust_remote_user = errs
        .take(conf.get_bool("trust_remote_user", false))
        .unwrap_or(false);
    let concurrent = errs
        .take(conf.get_int("max_concurrent_checks", 1..=4096usize))
        .flatten()
        .unwrap_or_else(default_concurrent_checks);
    let queued = errs
        .take(conf.get_int("max_queued_checks", 0..=1_000_000usize))
        .flatten()
        .unwrap_or(DEFAULT_QUEUED_CHECKS);
    if !errs.is_empty() {
        return Err(errs);
    }
    let store = CredentialStore::new(inline, file)
        .map_err(|e| conf.error("htpasswd", e))?
        .check_limits(concurrent, queued);
    let layer = BasicAuthLayer::new(realm, store)
        .map_err(|_| conf.error("realm", "contains characters not allowed in a header"))?
        .trust_remote_user(trust_remote_user);
    // The layer's service over the app is the app: a `Handler`, so no Tower wrapping (this
    // filter sees every request).
    Ok(Arc::new(move |inner| App::from_handler(layer.layer(inner))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{err, hello, send};
    use http::{Request, StatusCode};

    fn req(auth: Option<&str>) -> Request<mapproxy_serve_core::Body> {
        let mut b = Request::builder().uri("/");
        if let Some(a) = auth {
            let token = match a {
                "a:b" => "YTpi",
                "c:d" => "Yzpk",
                _ => "Yzp4", // c:x
            };
            b = b.header("authorization", format!("Basic {token}"));
        }
        b.body(mapproxy_serve_core::app::empty_body()).unwrap()
    }

    #[tokio::test]
    async fn htpasswd_relative_to_ini() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "a:{PLAIN}b\n").unwrap();
        let mut conf = FactoryConf::from_pairs("mapproxy-serve#basic_auth", [("htpasswd", "pw")]);
        for v in conf.local.values_mut() {
            v.location.file = dir.path().join("config.ini");
        }
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        assert_eq!(send(&f, hello(), req(Some("a:b"))).await.0, StatusCode::OK);
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = err(build(
            &FactoryConf::from_pairs(
                "Paste#auth_basic",
                [("realm", "x"), ("authfunc", "mod:check")],
            ),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'authfunc': names Python code"), "{e}");
        assert!(e.contains("htpasswd"), "{e}");
        let e = err(build(
            &FactoryConf::from_pairs("Paste#auth_basic", [("realm", "x")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("needs `htpasswd = FILE`"), "{e}");
        let e = err(build(
            &FactoryConf::from_pairs("Paste#auth_basic", [("users", "nopass")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'users': expected 'user:password'"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw");
        std::fs::write(&pw, "# x\ncarol:vTgIitjl/y/fM\n").unwrap();
        let e = err(build(
            &FactoryConf::from_pairs("Paste#auth_basic", [("htpasswd", pw.to_str().unwrap())]),
            &mut BuildContext::current(),
        ));
        assert!(
            e.contains(&format!(
                "key 'htpasswd': {}:2: user 'carol': DES crypt",
                pw.display()
            )),
            "{e}"
        );
        let e = err(build(
            &FactoryConf::from_pairs("Paste#auth_basic", [("users", "a:b"), ("realm", "x\ny")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'realm'"), "{e}");
        let e = err(build(
            &FactoryConf::from_pairs(
                "Paste#auth_basic",
                [
                    ("users", "a:b"),
                    ("trust_remote_user", "sometimes"),
                    ("max_concurrent_checks", "0"),
                    ("max_queued_checks", "-1"),
                ],
            ),
            &mut BuildContext::current(),
        ));
        for key in [
            "trust_remote_user",
            "max_concurrent_checks",
            "max_queued_checks",
        ] {
            assert!(e.contains(&format!("key '{key}'")), "{key}: {e}");
        }
    }
}
