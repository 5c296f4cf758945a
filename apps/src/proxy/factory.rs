//! `egg:Paste#proxy`, `egg:mapproxy-serve#proxy`: a streaming reverse proxy to `address`.
//!
//! Options: `address` (required, `http://host:port/base/`; the request path is joined to its
//! path like Paste's urljoin, see [`crate::proxy`]),
//! `allowed_request_methods` (space list; others get 405 — Paste answers 400),
//! `suppress_http_headers` (space list of request headers not sent, `x_foo` = `x-foo`),
//! `timeout` (seconds, may be fractional: 504 when the upstream's response head is slower,
//! and the longest silence inside its body, after which the client's connection is cut;
//! default 60, 0 = no limit), `ssl_ca_certs` (a PEM file of CAs trusted for `https://`
//! upstreams besides the system's, relative to the ini file), `ssl_no_cert_checks` (accept any
//! certificate: insecure; MapProxy's names for both).

use crate::proxy::{Proxy, ProxyOption};

use mapproxy_serve_core::app::{app, App};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;

pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let address = conf.require("address")?;
    let mut builder = Proxy::builder(address)
        .allowed_methods(conf.get_list("allowed_request_methods"))
        .suppress_headers(conf.get_list("suppress_http_headers"));
    if let Some(t) = errs.take(conf.get_timeout("timeout", 60.0, 86400.0)) {
        builder = builder.timeout(t);
    }
    if let Some(ca) = conf.get_path("ssl_ca_certs") {
        builder = builder.ca_file(ca);
    }
    if let Some(insecure) = errs.take(conf.get_bool("ssl_no_cert_checks", false)) {
        builder = builder.insecure(insecure);
    }
    let proxy = errs.take(builder.build().map_err(|e| {
        let key = match e.option {
            ProxyOption::Address => "address",
            ProxyOption::AllowedMethods => "allowed_request_methods",
            ProxyOption::SuppressHeaders => "suppress_http_headers",
            ProxyOption::CaFile => "ssl_ca_certs",
        };
        conf.error(key, e)
    }));
    match proxy {
        Some(p) if errs.is_empty() => Ok(app(p)),
        _ => Err(errs),
    }
}

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
        let app = build(&conf, &mut BuildContext::current()).unwrap();
        let req = Request::builder()
            .method("DELETE")
            .uri("/x")
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }

    #[test]
    fn config_errors_name_the_key() {
        let e = build(
            &FactoryConf::from_pairs("Paste#proxy", []),
            &mut BuildContext::current(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("address"), "{e}");
        let e = build(
            &FactoryConf::from_pairs(
                "Paste#proxy",
                [("address", "localhost:80"), ("timeout", "-1")],
            ),
            &mut BuildContext::current(),
        )
        .err()
        .unwrap();
        assert_eq!(e.0.len(), 2, "{e}");
        let e = e.to_string();
        assert!(
            e.contains("key 'timeout'") && e.contains("key 'address'"),
            "{e}"
        );
        // https upstreams work now; a CA file that is not there is an error naming its key.
        let e = build(
            &FactoryConf::from_pairs(
                "Paste#proxy",
                [
                    ("address", "https://example.org/"),
                    ("ssl_ca_certs", "/nonexistent/ca.pem"),
                ],
            ),
            &mut BuildContext::current(),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("key 'ssl_ca_certs'") && e.contains("/nonexistent/ca.pem"),
            "{e}"
        );
    }

    #[test]
    fn registered_under_both_eggs() {
        let reg = mapproxy_serve_core::registry::registry();
        for egg in ["Paste#proxy", "mapproxy-serve#proxy"] {
            assert_eq!(reg.find(egg).unwrap().name(), "mapproxy-serve#proxy");
        }
    }
}
