//! `egg:mapproxy-serve#cors`: Cross-Origin Resource Sharing headers and preflight answers
//! (tower-http's `CorsLayer`).
//!
//! Options (lists separated by commas or whitespace; `*` means any):
//! - `allow_origin`: origins like `https://example.org`, or `*` (default `*`).
//! - `allow_methods`: methods, or `*` (default `GET HEAD OPTIONS`).
//! - `allow_headers`: request headers a client may send, or `*` (default none).
//! - `expose_headers`: response headers scripts may read, or `*` (default none).
//! - `max_age`: seconds a preflight answer may be cached.
//! - `allow_credentials`: send `Access-Control-Allow-Credentials: true` (default false);
//!   cannot be combined with `*` in any list.
//!
//! ```ini
//! [filter:cors]
//! use = egg:mapproxy-serve#cors
//! allow_origin = https://maps.example.org
//! max_age = 3600
//! ```

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, Any, CorsLayer, ExposeHeaders};

use mapproxy_serve_core::app::{layer_filter, Filter};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::split_list;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::{ConfigError, ConfigErrors};

/// `None` for `*`, else the parsed items.
fn items<T>(
    conf: &FactoryConf,
    key: &str,
    what: &str,
    parse: impl Fn(&str) -> Option<T>,
) -> Result<Option<Option<Vec<T>>>, ConfigError> {
    let Some(v) = conf.get(key) else {
        return Ok(None);
    };
    let list = split_list(v);
    if list.iter().any(|s| s == "*") {
        if list.len() > 1 {
            return Err(conf.error(key, "'*' cannot be combined with other values"));
        }
        return Ok(Some(None));
    }
    list.iter()
        .map(|s| parse(s).ok_or_else(|| conf.error(key, format!("'{s}' is not {what}"))))
        .collect::<Result<Vec<T>, _>>()
        .map(|v| Some(Some(v)))
}

/// Build the filter from its options.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let origin = errs.take(items(
        conf,
        "allow_origin",
        "an origin like https://example.org",
        |s| {
            let ok = (s.starts_with("http://") || s.starts_with("https://") || s == "null")
                && !s.ends_with('/');
            ok.then(|| HeaderValue::from_str(s).ok()).flatten()
        },
    ));
    let methods = errs.take(items(conf, "allow_methods", "an HTTP method", |s| {
        Method::from_bytes(s.to_ascii_uppercase().as_bytes()).ok()
    }));
    let header = |s: &str| HeaderName::from_bytes(s.as_bytes()).ok();
    let headers = errs.take(items(conf, "allow_headers", "a header name", header));
    let expose = errs.take(items(conf, "expose_headers", "a header name", header));
    let max_age = errs
        .take(conf.get_int::<u64>("max_age", 0..=315_360_000))
        .flatten();
    let credentials = errs
        .take(conf.get_bool("allow_credentials", false))
        .unwrap_or(false);
    let (Some(origin), Some(methods), Some(headers), Some(expose)) =
        (origin, methods, headers, expose)
    else {
        return Err(errs);
    };
    errs.into_result(())?;

    let mut layer = CorsLayer::new();
    let mut wildcards = Vec::new();
    layer = match origin {
        None | Some(None) => {
            wildcards.push("allow_origin");
            layer.allow_origin(Any)
        }
        Some(Some(list)) => layer.allow_origin(AllowOrigin::list(list)),
    };
    layer = match methods {
        None => layer.allow_methods([Method::GET, Method::HEAD, Method::OPTIONS]),
        Some(None) => {
            wildcards.push("allow_methods");
            layer.allow_methods(AllowMethods::any())
        }
        Some(Some(list)) => layer.allow_methods(list),
    };
    layer = match headers {
        None => layer,
        Some(None) => {
            wildcards.push("allow_headers");
            layer.allow_headers(AllowHeaders::any())
        }
        Some(Some(list)) => layer.allow_headers(list),
    };
    layer = match expose {
        None => layer,
        Some(None) => {
            wildcards.push("expose_headers");
            layer.expose_headers(ExposeHeaders::any())
        }
        Some(Some(list)) => layer.expose_headers(list),
    };
    if let Some(s) = max_age {
        layer = layer.max_age(Duration::from_secs(s));
    }
    if credentials {
        if !wildcards.is_empty() {
            // tower-http would panic on this combination; browsers reject it anyway
            return Err(conf
                .error(
                    "allow_credentials",
                    format!(
                        "cannot be combined with '*' (in {}); list the allowed values",
                        wildcards.join(", ")
                    ),
                )
                .into());
        }
        layer = layer.allow_credentials(true);
    }
    Ok(layer_filter(layer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{err, hello, send};
    use http::{Request, StatusCode};

    #[tokio::test]
    async fn preflight_and_simple_requests() {
        let f = build(
            &FactoryConf::from_pairs(
                "mapproxy-serve#cors",
                [
                    ("allow_origin", "https://a.example, https://b.example"),
                    ("allow_headers", "x-token"),
                    ("max_age", "600"),
                    ("allow_credentials", "true"),
                ],
            ),
            &mut BuildContext::current(),
        )
        .unwrap();
        let req = Request::builder()
            .method("OPTIONS")
            .header("origin", "https://b.example")
            .header("access-control-request-method", "GET")
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap();
        let (st, h, _) = send(&f, hello(), req).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(h["access-control-allow-origin"], "https://b.example");
        assert_eq!(h["access-control-max-age"], "600");
        assert_eq!(h["access-control-allow-credentials"], "true");
        let req = Request::builder()
            .header("origin", "https://evil.example")
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap();
        let (_, h, body) = send(&f, hello(), req).await;
        assert!(h.get("access-control-allow-origin").is_none());
        assert_eq!(body, "hello");
    }

    #[tokio::test]
    async fn default_is_any_origin() {
        let f = build(
            &FactoryConf::from_pairs("mapproxy-serve#cors", []),
            &mut BuildContext::current(),
        )
        .unwrap();
        let req = Request::builder()
            .header("origin", "https://x.example")
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap();
        assert_eq!(
            send(&f, hello(), req).await.1["access-control-allow-origin"],
            "*"
        );
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = err(build(
            &FactoryConf::from_pairs(
                "mapproxy-serve#cors",
                [
                    ("allow_origin", "example.org"),
                    ("allow_methods", "GET, P@ST"),
                    ("max_age", "-1"),
                ],
            ),
            &mut BuildContext::current(),
        ));
        assert!(
            e.contains("key 'allow_origin': 'example.org' is not an origin"),
            "{e}"
        );
        assert!(e.contains("key 'allow_methods'"), "{e}");
        assert!(e.contains("key 'max_age'"), "{e}");
        let e = err(build(
            &FactoryConf::from_pairs("mapproxy-serve#cors", [("allow_credentials", "yes")]),
            &mut BuildContext::current(),
        ));
        assert!(
            e.contains("key 'allow_credentials': cannot be combined with '*' (in allow_origin)"),
            "{e}"
        );
        let e = err(build(
            &FactoryConf::from_pairs("mapproxy-serve#cors", [("allow_headers", "* x")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'allow_headers'"), "{e}");
    }
}
