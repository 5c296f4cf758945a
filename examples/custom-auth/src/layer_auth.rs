//! `egg:custom-auth#layer_auth`: which user may see which MapProxy layers, through MapProxy's
//! authorization callback ([`Authorizer`]). The filter only puts the authorizer of the
//! request's user into the request; the MapProxy app asks it and answers itself (capabilities
//! list only the allowed layers, a forbidden layer's tile is 403, no user is 401).
//!
//! ```ini
//! [pipeline:main]
//! pipeline = api_key layer_auth mapproxy
//!
//! [filter:layer_auth]
//! use = egg:custom-auth#layer_auth
//! # user: layers (`*`: all). The user is REMOTE_USER, set by a filter in front
//! # (api_key, basic_auth) or the web server.
//! users =
//!     alice: *
//!     ci: osm
//! # layers for requests without a user; unset: MapProxy answers them 401
//! anonymous = osm
//! ```
//!
//! A user not listed gets MapProxy's `none` (403) everywhere.
//!
//! This module needs `mapproxy-serve-mapproxy` (feature `mapproxy`, on by default): the
//! authorizer's question and answer are MapProxy's (services, layers, per-layer features),
//! so their types live in the MapProxy crate, not in core. The `api_key` filter of this
//! crate still builds on core alone (`--no-default-features`).

use std::collections::HashMap;
use std::sync::Arc;

use http::Request;
use mapproxy_serve_core::app::{AppFuture, Body, Handler};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::environ::RemoteUser;
use mapproxy_serve_core::error::ConfigErrors;
use mapproxy_serve_core::registry::{Build, Factory, Opt};
use mapproxy_serve_core::{App, Filter};
use mapproxy_serve_mapproxy::authorize::{
    AuthRequest, Authorize, Authorized, Authorizer, LayerAccess, Partial,
};

mapproxy_serve_core::register_factory!(Factory {
    eggs: &["custom-auth#layer_auth"],
    summary: "MapProxy layers by user: puts MapProxy's authorizer for REMOTE_USER into the request",
    options: &[
        Opt::new(
            "users",
            "`user: layer layer ...` lines (`*`: every layer); REMOTE_USER is the user"
        ),
        Opt::new(
            "anonymous",
            "layers for requests without a user (default: none, MapProxy answers 401)"
        ),
    ],
    build: Build::Filter(build),
    ..Factory::DEFAULT
});

/// What one user may see.
#[derive(Debug, Clone, PartialEq)]
pub enum Allowed {
    /// `*`: everything (MapProxy's `full`).
    All,
    /// These layers, every feature of each (MapProxy's `partial`).
    Layers(Vec<String>),
    /// Nothing: 403 (an unknown user).
    Nothing,
    /// No user and no `anonymous`: 401.
    Unauthenticated,
}

impl Authorize for Allowed {
    fn authorize(&self, _req: &AuthRequest<'_>) -> Authorized {
        match self {
            Allowed::All => Authorized::Full,
            Allowed::Layers(layers) => {
                let mut p = Partial::new();
                for l in layers {
                    p = p.layer(l.clone(), LayerAccess::all());
                }
                Authorized::Partial(p)
            }
            Allowed::Nothing => Authorized::None,
            Allowed::Unauthenticated => Authorized::Unauthenticated,
        }
    }
}

/// The authorizers, made once when the stack is built.
#[derive(Clone)]
pub struct LayerAuth {
    users: Arc<HashMap<String, Authorizer>>,
    anonymous: Authorizer,
    unknown: Authorizer,
}

impl LayerAuth {
    pub fn new(users: HashMap<String, Allowed>, anonymous: Allowed) -> LayerAuth {
        LayerAuth {
            users: Arc::new(
                users
                    .into_iter()
                    .map(|(u, a)| (u, Authorizer::new(a)))
                    .collect(),
            ),
            anonymous: Authorizer::new(anonymous),
            unknown: Authorizer::new(Allowed::Nothing),
        }
    }

    /// The authorizer of a request's user.
    pub fn authorizer(&self, user: Option<&str>) -> Authorizer {
        match user {
            None => self.anonymous.clone(),
            Some(u) => self.users.get(u).unwrap_or(&self.unknown).clone(),
        }
    }

    /// Wrap `app`.
    pub fn wrap(&self, app: App) -> App {
        App::from_handler(LayerAuthApp {
            auth: self.clone(),
            inner: app,
        })
    }
}

struct LayerAuthApp {
    auth: LayerAuth,
    inner: App,
}

impl Handler for LayerAuthApp {
    fn call(&self, mut req: Request<Body>) -> AppFuture {
        let user = req.extensions().get::<RemoteUser>().map(|u| u.0.as_str());
        let authorizer = self.auth.authorizer(user);
        req.extensions_mut().insert(authorizer);
        self.inner.call(req)
    }
}

/// `layer layer ...` or `*`.
fn allowed(list: &str) -> Allowed {
    let layers: Vec<String> = list
        .split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect();
    if layers.iter().any(|l| l == "*") {
        Allowed::All
    } else {
        Allowed::Layers(layers)
    }
}

/// `user: layers` lines.
fn parse_users(text: &str) -> Result<HashMap<String, Allowed>, String> {
    let mut users = HashMap::new();
    for (i, line) in text.lines().map(str::trim).enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((user, layers)) = line.split_once(':') else {
            return Err(format!("line {} is not `user: layers`", i + 1));
        };
        let user = user.trim();
        if user.is_empty() {
            return Err(format!("line {}: no user name", i + 1));
        }
        if users.insert(user.to_string(), allowed(layers)).is_some() {
            return Err(format!("user '{user}' twice"));
        }
    }
    Ok(users)
}

pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let users = match conf.get("users") {
        Some(v) => parse_users(v).map_err(|e| conf.error("users", e))?,
        None => {
            return Err(conf
                .section_error(format!("egg:{} needs `users =`", conf.egg))
                .into())
        }
    };
    let anonymous = match conf.get("anonymous") {
        Some(v) => allowed(v),
        None => Allowed::Unauthenticated,
    };
    let auth = LayerAuth::new(users, anonymous);
    Ok(Arc::new(move |app: App| auth.wrap(app)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(auth: &LayerAuth, user: Option<&str>) -> Authorized {
        let req = Request::new(());
        let layers = ["a", "b"];
        auth.authorizer(user)
            .authorize(&AuthRequest::new("tms", &layers, &req))
    }

    #[test]
    fn users_and_answers() {
        let users = parse_users("alice: *\n ci: a, b\n\n# c\nbob:").unwrap();
        let auth = LayerAuth::new(users, Allowed::Unauthenticated);
        assert_eq!(answer(&auth, Some("alice")), Authorized::Full);
        let Authorized::Partial(p) = answer(&auth, Some("ci")) else {
            panic!("partial expected");
        };
        assert!(p.access("a").tile && p.access("b").tile && !p.access("c").tile);
        assert_eq!(
            answer(&auth, Some("bob")),
            Authorized::Partial(Partial::new())
        );
        assert_eq!(answer(&auth, Some("eve")), Authorized::None);
        assert_eq!(answer(&auth, None), Authorized::Unauthenticated);
        let auth = LayerAuth::new(HashMap::new(), allowed("a"));
        assert!(matches!(answer(&auth, None), Authorized::Partial(_)));
    }

    #[test]
    fn config_errors() {
        let err = |pairs: &[(&'static str, &'static str)]| match build(
            &FactoryConf::from_pairs("custom-auth#layer_auth", pairs.iter().copied()),
            &mut BuildContext::current(),
        ) {
            Ok(_) => panic!("expected an error for {pairs:?}"),
            Err(e) => e.to_string(),
        };
        assert!(err(&[]).contains("needs `users =`"));
        let e = err(&[("users", "alice *")]);
        assert!(
            e.contains("key 'users': line 1 is not `user: layers`"),
            "{e}"
        );
        let e = err(&[("users", "a: x\na: y")]);
        assert!(e.contains("user 'a' twice"), "{e}");
    }
}
