//! Registered filter factories: each reads its options from a [`FactoryConf`] and builds a
//! [`Filter`](crate::Filter) from a layer of the `mapproxy-serve-filters` crate or tower-http.
//!
//! | egg names | module |
//! |---|---|
//! | `mapproxy-serve#access_log`, `Paste#translogger` | [`access_log`] |
//! | `mapproxy-serve#basic_auth`, `Paste#auth_basic` | [`basic_auth`] |
//! | `mapproxy-serve#proxy_headers`, `PasteDeploy#prefix` | [`proxy_headers`] |
//! | `mapproxy-serve#compress`, `Paste#gzip` | [`compress`] |
//! | `mapproxy-serve#error_catcher`, `Paste#errorcatcher` | [`error_catcher`] |
//! | `mapproxy-serve#cors` | [`cors`] |
//! | `mapproxy-serve#body_limit`, `#timeout`, `#headers`, `#request_id` | [`limits`] |
//!
//! Every factory can be tried without an ini file:
//!
//! ```
//! use mapproxy_serve::config::FactoryConf;
//!
//! let conf = FactoryConf::from_pairs("Paste#auth_basic", [("realm", "maps"), ("users", "a:b")]);
//! let filter = mapproxy_serve::filters::basic_auth::build(&conf).unwrap();
//! # let _ = filter;
//! ```

pub mod access_log;
pub mod basic_auth;
pub mod compress;
pub mod cors;
pub mod error_catcher;
pub mod limits;
pub mod proxy_headers;

use crate::config::FactoryConf;
use crate::error::ConfigError;

/// A list option separated by commas and/or whitespace (`a, b c`).
pub(crate) fn split_list(v: &str) -> Vec<String> {
    v.split(|c: char| c == ',' || c.is_whitespace())
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// A non-negative duration in seconds (`30`, `2.5`).
pub(crate) fn get_seconds(
    conf: &FactoryConf,
    key: &str,
) -> Result<Option<std::time::Duration>, ConfigError> {
    match conf.get(key) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && *s > 0.0 && *s < 1e9)
            .map(|s| Some(std::time::Duration::from_secs_f64(s)))
            .ok_or_else(|| {
                conf.error(
                    key,
                    format!("expected a number of seconds > 0, found '{v}'"),
                )
            }),
    }
}

#[cfg(test)]
mod tests {
    use crate::registry::{registry, Kind};

    #[test]
    fn every_egg_resolves_to_a_filter() {
        registry().check().unwrap();
        for egg in [
            "Paste#translogger",
            "mapproxy-serve#access_log",
            "Paste#auth_basic",
            "mapproxy_serve#basic_auth",
            "PasteDeploy#prefix",
            "mapproxy-serve#proxy_headers",
            "Paste#gzip",
            "mapproxy-serve#compress",
            "Paste#errorcatcher",
            "mapproxy-serve#error_catcher",
            "mapproxy-serve#cors",
            "mapproxy-serve#body_limit",
            "mapproxy-serve#timeout",
            "mapproxy-serve#headers",
            "mapproxy-serve#request_id",
        ] {
            let f = registry()
                .find(egg)
                .unwrap_or_else(|| panic!("{egg} not registered"));
            assert_eq!(f.kind(), Kind::Filter, "{egg}");
            assert!(!f.summary.is_empty() && !f.options.is_empty(), "{egg}");
        }
        let f = registry().find("Paste#errorcatcher").unwrap();
        assert!(f.ignores_option("smtp_server"));
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::convert::Infallible;

    use http::{Request, Response, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    use crate::app::{app_fn, text_response, Body, Filter};
    use crate::App;

    /// An app answering `hello` (and echoing the request body length for POST).
    pub(crate) fn hello() -> App {
        app_fn(|req: Request<Body>| async move {
            if req.method() == http::Method::POST {
                match req.into_body().collect().await {
                    Ok(b) => {
                        text_response(StatusCode::OK, "text/plain", b.to_bytes().len().to_string())
                    }
                    Err(_) => text_response(StatusCode::BAD_REQUEST, "text/plain", "bad body"),
                }
            } else {
                text_response(StatusCode::OK, "text/plain", "hello")
            }
        })
    }

    /// Run one request through `filter(app)`; the status, headers and body text.
    pub(crate) async fn send(
        filter: &Filter,
        app: App,
        req: Request<Body>,
    ) -> (StatusCode, http::HeaderMap, String) {
        let res: Result<Response<Body>, Infallible> = filter(app).oneshot(req).await;
        let Ok(res) = res;
        let (parts, body) = res.into_parts();
        let bytes = body
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    /// The message of a build error.
    pub(crate) fn err<T>(r: Result<T, crate::error::ConfigErrors>) -> String {
        match r {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }
}
