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
//!
//! ```ini
//! [filter:auth]
//! use = egg:Paste#auth_basic
//! realm = maps
//! htpasswd = %(here)s/htpasswd
//! ```

use std::sync::Arc;

use crate::basic_auth::htpasswd::Users;
use crate::basic_auth::{BasicAuthLayer, CredentialStore, Decision};
use http::Request;
use mapproxy_serve_core::environ::RemoteUser;

use mapproxy_serve_core::app::{box_response, App, AppFuture, Body, Filter, Handler};
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
    if !errs.is_empty() {
        return Err(errs);
    }
    let store = CredentialStore::new(inline, file).map_err(|e| conf.error("htpasswd", e))?;
    let layer = BasicAuthLayer::new(realm, store)
        .map_err(|_| conf.error("realm", "contains characters not allowed in a header"))?;
    Ok(Arc::new(move |inner| {
        App::from_handler(BasicAuth {
            inner,
            auth: layer.clone(),
        })
    }))
}

/// The filter as an app (`BasicAuthLayer`'s decisions without the Tower wrapping: accepted
/// requests answered at once by the app stay unboxed).
struct BasicAuth {
    inner: App,
    auth: BasicAuthLayer,
}

impl Handler for BasicAuth {
    fn call(&self, mut req: Request<Body>) -> AppFuture {
        match self.auth.decide(&req) {
            Decision::Known(user) => pass(&self.inner, req, user),
            Decision::Accept(user) => {
                req.extensions_mut().insert(user.clone());
                pass(&self.inner, req, user)
            }
            Decision::Reject => AppFuture::ready(box_response(self.auth.unauthorized())),
            Decision::Slow(slow) => {
                let (inner, auth) = (self.inner.clone(), self.auth.clone());
                AppFuture::new(async move {
                    let user = RemoteUser(slow.user().to_string());
                    if !slow.verify().await {
                        return box_response(auth.unauthorized());
                    }
                    req.extensions_mut().insert(user.clone());
                    pass(&inner, req, user).await
                })
            }
        }
    }
}

/// The request on to the app; the response carries the user for an outer access log.
fn pass(inner: &App, req: Request<Body>, user: RemoteUser) -> AppFuture {
    inner.call(req).map(move |mut res| {
        res.extensions_mut().insert(user);
        res
    })
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
    async fn inline_users() {
        let conf = FactoryConf::from_pairs(
            "Paste#auth_basic",
            [("realm", "maps"), ("users", "a:b\n c:d")],
        );
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        let (st, h, _) = send(&f, hello(), req(None)).await;
        assert_eq!(st, StatusCode::UNAUTHORIZED);
        assert_eq!(h["www-authenticate"], "Basic realm=\"maps\"");
        assert_eq!(send(&f, hello(), req(Some("c:d"))).await.2, "hello");
        assert_eq!(
            send(&f, hello(), req(Some("c:x"))).await.0,
            StatusCode::UNAUTHORIZED
        );
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
    }
}
