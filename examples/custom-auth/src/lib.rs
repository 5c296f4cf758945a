//! An API-key filter for mapproxy-serve, `egg:custom-auth#api_key`: the example behind the
//! README's "Writing a filter".
//!
//! Three parts: a Tower layer ([`ApiKeyLayer`], no ini in sight), a build function reading the
//! ini section ([`build`]), and one [`register_factory!`](mapproxy_serve_core::register_factory)
//! item that makes `use = egg:custom-auth#api_key` find it.
//!
//! ```ini
//! [filter:api_key]
//! use = egg:custom-auth#api_key
//! header = X-Api-Key
//! keys = alice:alice-secret ci:ci-secret
//! realm = maps
//! ```
//!
//! A request without a known key gets `401` with `WWW-Authenticate`; otherwise the app behind
//! sees the key's name as `REMOTE_USER` ([`RemoteUser`]).
//!
//! [`layer_auth`] (`egg:custom-auth#layer_auth`, feature `mapproxy`) goes behind it: it tells
//! a MapProxy app which layers that user may see.

#[cfg(feature = "mapproxy")]
pub mod layer_auth;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::{ready, Either, Ready};
use http::{header, HeaderMap, HeaderName, HeaderValue, Request, Response, StatusCode};
use mapproxy_serve_core::app::{layer_filter, text_response, Body};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::environ::RemoteUser;
use mapproxy_serve_core::error::ConfigErrors;
use mapproxy_serve_core::registry::{Build, Factory, Opt};
use mapproxy_serve_core::Filter;
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

// The factory descriptor: the egg name(s), one line for `list-factories`, the options (any
// other key in the section is an error), and the build function.
mapproxy_serve_core::register_factory!(Factory {
    eggs: &["custom-auth#api_key"],
    summary: "API keys: 401 unless the request carries a known key; REMOTE_USER = its name",
    options: &[
        Opt::new(
            "header",
            "the header with the key (default: Authorization, as `Bearer KEY`)"
        ),
        Opt::new(
            "keys",
            "name:key pairs, separated by whitespace or newlines"
        ),
        Opt::new(
            "keys_file",
            "a file of name:key lines (# comments), relative to the ini file"
        ),
        Opt::new("realm", "the realm in WWW-Authenticate (default: api)"),
        Opt::new(
            "usage_log_interval",
            "seconds between 'api_key usage: name=N ...' log lines (default: none)"
        ),
    ],
    build: Build::Filter(build),
    ..Factory::DEFAULT
});

/// Keys shorter than this get a warning (`check` shows it; serving goes on).
const SHORT_KEY: usize = 12;

/// Build the filter from its ini section. Every error names file:line, section and key
/// (`FactoryConf::error`), and all of them are reported at once.
///
/// What the [`BuildContext`] is for, shown on a real filter:
/// - `keys_file` is [watched](BuildContext::watch): with `--reload` (or on SIGHUP) an edited
///   key file takes effect without a restart, and a broken one keeps the old keys serving;
/// - a key shorter than 12 characters is a [warning](BuildContext::warn) with file:line;
/// - `usage_log_interval` [spawns](BuildContext::runtime) a task that logs how often each key
///   was used, stopped [when the stack is replaced](BuildContext::on_shutdown).
pub fn build(conf: &FactoryConf, ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let header = conf.get("header").unwrap_or("authorization").trim();
    let header = errs.take(
        HeaderName::try_from(header)
            .map_err(|_| conf.error("header", format!("not a header name: '{header}'"))),
    );
    let mut keys = Vec::new();
    if let Some(v) = conf.get("keys") {
        errs.take(parse_keys(v, &mut keys).map_err(|e| conf.error("keys", e)));
    }
    if let Some(path) = conf.get_path("keys_file") {
        // Watched even when it cannot be read now: creating it then triggers a rebuild.
        ctx.watch(&path);
        let text = std::fs::read_to_string(&path)
            .map_err(|e| conf.error("keys_file", format!("{}: {e}", path.display())));
        if let Some(text) = errs.take(text) {
            let no_comments: String = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#'))
                .collect::<Vec<_>>()
                .join("\n");
            errs.take(
                parse_keys(&no_comments, &mut keys)
                    .map_err(|e| conf.error("keys_file", format!("{}: {e}", path.display()))),
            );
        }
    }
    if keys.is_empty() && errs.is_empty() {
        errs.push(conf.section_error(format!(
            "egg:{} needs `keys = name:key ...` or `keys_file = FILE`",
            conf.egg
        )));
    }
    for (name, key) in &keys {
        if key.chars().count() < SHORT_KEY {
            let from = if conf.get("keys_file").is_some() {
                "keys_file"
            } else {
                "keys"
            };
            ctx.warn(
                conf.location_of(from),
                format!(
                    "the key of '{name}' is shorter than {SHORT_KEY} characters: easy to guess"
                ),
            );
        }
    }
    let interval = errs.take(conf.get_seconds("usage_log_interval", 0.01..=86400.0));
    let realm = conf.get("realm").unwrap_or("api");
    let (Some(header), Some(interval)) = (header, interval) else {
        return Err(errs);
    };
    errs.into_result(())?;
    let layer = ApiKeyLayer::new(header, keys, realm)
        .map_err(|e| conf.error("realm", format!("'{realm}': {e}")))?;
    if let Some(every) = interval {
        let config = Arc::clone(&layer.config);
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        ctx.runtime().spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.tick().await; // the first tick is immediate
            loop {
                tokio::select! {
                    _ = tick.tick() => log::info!(target: "custom_auth.usage", "api_key usage: {}", config.usage()),
                    _ = stopped.changed() => break,
                }
            }
        });
        ctx.on_shutdown(async move {
            let _ = stop.send(true);
        });
    }
    Ok(layer_filter(layer))
}

/// `name:key` entries separated by whitespace. Errors never show the key.
fn parse_keys(text: &str, out: &mut Vec<(String, String)>) -> Result<(), String> {
    for (i, entry) in text.split_whitespace().enumerate() {
        match entry.split_once(':') {
            Some((name, key)) if !name.is_empty() && !key.is_empty() => {
                out.push((name.to_string(), key.to_string()));
            }
            _ => return Err(format!("entry {} is not name:key", i + 1)),
        }
    }
    Ok(())
}

/// The Tower layer: checks the key, sets [`RemoteUser`], or answers 401 itself.
#[derive(Clone)]
pub struct ApiKeyLayer {
    config: Arc<Config>,
}

struct Config {
    header: HeaderName,
    /// `name`, `key`
    keys: Vec<(String, String)>,
    /// Requests each key let through, by index in `keys`.
    used: Vec<AtomicU64>,
    challenge: HeaderValue,
}

impl ApiKeyLayer {
    /// Keys in `header` (`Authorization` means `Bearer KEY`); `keys` are `(name, key)`.
    /// Fails when `realm` cannot be put in a header.
    pub fn new(
        header: HeaderName,
        keys: Vec<(String, String)>,
        realm: &str,
    ) -> Result<Self, &'static str> {
        if realm.contains(['"', '\\']) {
            return Err("quotes and backslashes are not allowed");
        }
        let scheme = if header == header::AUTHORIZATION {
            "Bearer"
        } else {
            "ApiKey"
        };
        let challenge = HeaderValue::try_from(format!("{scheme} realm=\"{realm}\""))
            .map_err(|_| "control characters are not allowed")?;
        Ok(ApiKeyLayer {
            config: Arc::new(Config {
                header,
                used: keys.iter().map(|_| AtomicU64::new(0)).collect(),
                keys,
                challenge,
            }),
        })
    }
}

impl Config {
    /// The name of the key the request carries, if it is a known one.
    fn user(&self, headers: &HeaderMap) -> Option<String> {
        let value = headers.get(&self.header)?.to_str().ok()?.trim();
        let given = if self.header == header::AUTHORIZATION {
            let (scheme, token) = value.split_once(' ')?;
            if !scheme.eq_ignore_ascii_case("bearer") {
                return None;
            }
            token.trim()
        } else {
            value
        };
        // Compare with every key in constant time: no early exit that leaks which one matched.
        let mut found = None;
        for (i, (name, key)) in self.keys.iter().enumerate() {
            if bool::from(key.as_bytes().ct_eq(given.as_bytes())) && found.is_none() {
                found = Some((i, name.clone()));
            }
        }
        let (i, name) = found?;
        if let Some(n) = self.used.get(i) {
            n.fetch_add(1, Ordering::Relaxed);
        }
        Some(name)
    }

    /// `alice=3 ci=0`: the requests each key let through since this stack was built.
    fn usage(&self) -> String {
        let counts = self.keys.iter().zip(&self.used);
        let parts: Vec<String> = counts
            .map(|((name, _), n)| format!("{name}={}", n.load(Ordering::Relaxed)))
            .collect();
        parts.join(" ")
    }

    fn unauthorized(&self) -> Response<Body> {
        let mut res = text_response(
            StatusCode::UNAUTHORIZED,
            "text/plain; charset=utf-8",
            "401 Unauthorized\n",
        );
        res.headers_mut()
            .insert(header::WWW_AUTHENTICATE, self.challenge.clone());
        res
    }
}

impl<S> Layer<S> for ApiKeyLayer {
    type Service = ApiKey<S>;

    fn layer(&self, inner: S) -> ApiKey<S> {
        ApiKey {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service [`ApiKeyLayer`] wraps around an app.
#[derive(Clone)]
pub struct ApiKey<S> {
    inner: S,
    config: Arc<Config>,
}

impl<S> Service<Request<Body>> for ApiKey<S>
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = Either<Ready<Result<Response<Body>, Infallible>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<Body>) -> Self::Future {
        match self.config.user(req.headers()) {
            Some(name) => {
                req.extensions_mut().insert(RemoteUser(name));
                Either::Right(self.inner.call(req))
            }
            None => Either::Left(ready(Ok(self.config.unauthorized()))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapproxy_serve_core::app::{app_fn, empty_body};
    use tower::ServiceExt;

    /// An app answering 200 with the user in a header.
    fn whoami() -> mapproxy_serve_core::App {
        app_fn(|req: Request<Body>| async move {
            let user = req.extensions().get::<RemoteUser>().map(|u| u.0.clone());
            let mut res = text_response(StatusCode::OK, "text/plain", "ok");
            if let Some(u) = user.and_then(|u| HeaderValue::try_from(u).ok()) {
                res.headers_mut().insert("x-user", u);
            }
            res
        })
    }

    async fn status(filter: &Filter, headers: &[(&str, &str)]) -> (u16, String, String) {
        let mut b = Request::builder().uri("/");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let res = filter(whoami())
            .oneshot(b.body(empty_body()).unwrap())
            .await
            .unwrap();
        let h = |n: &str| {
            res.headers()
                .get(n)
                .map(|v| v.to_str().unwrap().to_string())
                .unwrap_or_default()
        };
        (res.status().as_u16(), h("x-user"), h("www-authenticate"))
    }

    #[tokio::test]
    async fn bearer_keys_by_default() {
        let conf = FactoryConf::from_pairs("custom-auth#api_key", [("keys", "a:k1\n b:k2")]);
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        let none = status(&f, &[]).await;
        assert_eq!((none.0, none.2.as_str()), (401, "Bearer realm=\"api\""));
        assert_eq!(status(&f, &[("authorization", "Bearer k3")]).await.0, 401);
        assert_eq!(status(&f, &[("authorization", "Basic k2")]).await.0, 401);
        let ok = status(&f, &[("authorization", "bearer k2")]).await;
        assert_eq!((ok.0, ok.1.as_str()), (200, "b"));
    }

    #[tokio::test]
    async fn other_header_and_keys_file() {
        let dir = std::env::temp_dir().join(format!("custom-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("keys");
        std::fs::write(&file, "# comment\nci:ci-key\n").unwrap();
        let conf = FactoryConf::from_pairs(
            "custom-auth#api_key",
            [
                ("header", "X-Api-Key"),
                ("keys_file", file.to_str().unwrap()),
                ("realm", "maps"),
            ],
        );
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        let none = status(&f, &[("authorization", "Bearer ci-key")]).await;
        assert_eq!((none.0, none.2.as_str()), (401, "ApiKey realm=\"maps\""));
        let ok = status(&f, &[("x-api-key", "ci-key")]).await;
        assert_eq!((ok.0, ok.1.as_str()), (200, "ci"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn config_errors_name_the_key_and_hide_secrets() {
        let err = |pairs: &[(&'static str, &'static str)]| match build(
            &FactoryConf::from_pairs("custom-auth#api_key", pairs.iter().copied()),
            &mut BuildContext::current(),
        ) {
            Ok(_) => panic!("expected an error for {pairs:?}"),
            Err(e) => e.to_string(),
        };
        let e = err(&[]);
        assert!(e.contains("needs `keys = name:key ...`"), "{e}");
        let e = err(&[("keys", "a:ok nocolon-secret"), ("header", "bad header")]);
        assert!(e.contains("key 'keys': entry 2 is not name:key"), "{e}");
        assert!(e.contains("key 'header': not a header name"), "{e}");
        assert!(!e.contains("secret"), "{e}");
        let e = err(&[("keys", "a:b"), ("keys_file", "/nonexistent/keys")]);
        assert!(e.contains("key 'keys_file': /nonexistent/keys"), "{e}");
        let e = err(&[("keys", "a:b"), ("realm", "say \"hi\"")]);
        assert!(e.contains("key 'realm'"), "{e}");
    }
}
