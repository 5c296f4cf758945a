//! `egg:Paste#proxy`, `egg:mapproxy-serve#proxy`: a streaming reverse proxy to `address`.
//!
//! Options: `address` (required, `http://host:port/base/`; the request path is joined to its
//! path like Paste's urljoin, see [`mapproxy_serve_filters::proxy`]),
//! `allowed_request_methods` (space list; others get 405 — Paste answers 400),
//! `suppress_http_headers` (space list of request headers not sent, `x_foo` = `x-foo`),
//! `timeout` (seconds, may be fractional: 504 when the upstream's response head is slower).

use std::time::Duration;

use mapproxy_serve_filters::proxy::{Proxy, ProxyOption};

use crate::app::{app, App};
use crate::config::FactoryConf;
use crate::error::ConfigErrors;
use crate::registry::{Build, Factory, Opt};

fn build_proxy(conf: &FactoryConf) -> Result<App, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let address = conf.require("address")?;
    let mut builder = Proxy::builder(address)
        .allowed_methods(conf.get_list("allowed_request_methods"))
        .suppress_headers(conf.get_list("suppress_http_headers"));
    if let Some(Some(secs)) = errs.take(conf.get_parsed::<f64>("timeout", "a number of seconds")) {
        match Duration::try_from_secs_f64(secs) {
            Ok(d) if secs > 0.0 => builder = builder.timeout(d),
            _ => errs.push(conf.error(
                "timeout",
                format!("expected a positive number of seconds, found '{secs}'"),
            )),
        }
    }
    let proxy = errs.take(builder.build().map_err(|e| {
        let key = match e.option {
            ProxyOption::Address => "address",
            ProxyOption::AllowedMethods => "allowed_request_methods",
            ProxyOption::SuppressHeaders => "suppress_http_headers",
        };
        conf.error(key, e)
    }));
    match proxy {
        Some(p) if errs.is_empty() => Ok(app(p)),
        _ => Err(errs),
    }
}

crate::register_factory!(Factory {
    eggs: &["mapproxy-serve#proxy", "Paste#proxy"],
    summary: "streaming reverse proxy to an HTTP upstream",
    options: &[
        Opt::new(
            "address",
            "upstream base URL, http://host:port/path/ (required)"
        ),
        Opt::new(
            "allowed_request_methods",
            "space-separated methods to forward; others get 405 (default: all)"
        ),
        Opt::new(
            "suppress_http_headers",
            "space-separated request headers not sent upstream"
        ),
        Opt::new(
            "timeout",
            "seconds to wait for the upstream's response head; then 504 (default: none)"
        ),
    ],
    build: Build::App(build_proxy),
    ..Factory::DEFAULT
});

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, StatusCode};
    use tower::ServiceExt;

    #[tokio::test]
    async fn builds_and_applies_options() {
        let conf = FactoryConf::from_pairs(
            "Paste#proxy",
            [
                ("address", "http://127.0.0.1:9/base/"),
                ("allowed_request_methods", "GET HEAD"),
                ("suppress_http_headers", "cookie"),
                ("timeout", "2.5"),
            ],
        );
        let app = build_proxy(&conf).unwrap();
        let req = Request::builder()
            .method("DELETE")
            .uri("/x")
            .body(crate::app::empty_body())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = build_proxy(&FactoryConf::from_pairs("Paste#proxy", []))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("address"), "{e}");
        let e = build_proxy(&FactoryConf::from_pairs(
            "Paste#proxy",
            [("address", "localhost:80"), ("timeout", "-1")],
        ))
        .err()
        .unwrap();
        assert_eq!(e.0.len(), 2, "{e}");
        let e = e.to_string();
        assert!(
            e.contains("key 'timeout'") && e.contains("key 'address'"),
            "{e}"
        );
        let e = build_proxy(&FactoryConf::from_pairs(
            "Paste#proxy",
            [("address", "https://example.org/")],
        ))
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("https"), "{e}");
    }

    #[test]
    fn registered_under_both_eggs() {
        let reg = crate::registry::registry();
        for egg in ["Paste#proxy", "mapproxy-serve#proxy"] {
            assert_eq!(reg.find(egg).unwrap().name(), "mapproxy-serve#proxy");
        }
    }
}
