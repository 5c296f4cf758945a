//! `egg:mapproxy-serve#proxy_headers`, `egg:PasteDeploy#prefix`: a fixed mount prefix and
//! forwarded headers (`X-Forwarded-*`, RFC 7239 `Forwarded`, MapProxy's `X-Script-Name`)
//! believed only from trusted proxies.
//!
//! Options:
//! - `prefix`: the mount path; a request path starting with it (on a segment boundary, a
//!   literal compare) has it removed. The app's mount path becomes the prefix.
//! - `trusted_proxies`: peer addresses or CIDRs, separated by commas or whitespace, whose
//!   forwarded headers are applied (default `127.0.0.0/8 ::1`). Requests without a socket
//!   peer (unix socket, FastCGI: the local web server) are trusted. Headers from other peers
//!   are removed before the app.
//! - `translate_forwarded_server` (default true): apply forwarded headers at all.
//! - `force_port`: the public port (empty: none), `scheme`: the public scheme (`http`/`https`).
//!
//! The details (precedence, `X-Forwarded-For` handling) are in
//! `crate::proxy_headers`.

use crate::proxy_headers::{ProxyHeadersConfig, ProxyHeadersLayer};

use mapproxy_serve_core::app::{layer_filter, Filter};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;

/// The layer's configuration from the options.
pub fn config(conf: &FactoryConf) -> Result<ProxyHeadersConfig, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let mut cfg = ProxyHeadersConfig::default();
    if let Some(p) = conf.get("prefix") {
        if let Some(p) =
            errs.take(ProxyHeadersConfig::normalize_prefix(p).map_err(|e| conf.error("prefix", e)))
        {
            cfg.prefix = p;
        }
    }
    if let Some(t) = conf.get("trusted_proxies") {
        if let Some(t) = errs.take(
            ProxyHeadersConfig::parse_trusted(t).map_err(|e| conf.error("trusted_proxies", e)),
        ) {
            cfg.trusted_proxies = t;
        }
    }
    if let Some(b) = errs.take(conf.get_bool("translate_forwarded_server", true)) {
        cfg.translate_forwarded = b;
    }
    if let Some(p) = conf.get("force_port") {
        let p = p.trim();
        if p.is_empty() || p.parse::<u16>().is_ok_and(|n| n > 0) {
            cfg.force_port = Some(p.to_string());
        } else {
            errs.push(conf.error(
                "force_port",
                format!("expected a port number or nothing, found '{p}'"),
            ));
        }
    }
    if let Some(s) = conf.get("scheme") {
        let s = s.trim().to_ascii_lowercase();
        if s == "http" || s == "https" {
            cfg.scheme = Some(s);
        } else {
            errs.push(conf.error("scheme", format!("expected http or https, found '{s}'")));
        }
    }
    errs.into_result(cfg)
}

/// Build the filter from its options.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
    Ok(layer_filter(ProxyHeadersLayer::new(config(conf)?)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{err, send};
    use http::{Request, StatusCode};
    use mapproxy_serve_core::app::{app_fn, text_response};
    use mapproxy_serve_core::environ::{script_url, PeerAddr};

    fn show() -> mapproxy_serve_core::App {
        app_fn(|req: Request<mapproxy_serve_core::Body>| async move {
            let body = format!("{} {}", script_url(&req), req.uri().path());
            text_response(StatusCode::OK, "text/plain", body)
        })
    }

    fn req(peer: &str, uri: &str, hdrs: &[(&str, &str)]) -> Request<mapproxy_serve_core::Body> {
        let mut b = Request::builder().uri(uri).header("host", "inner:8080");
        for (k, v) in hdrs {
            b = b.header(*k, *v);
        }
        let mut r = b.body(mapproxy_serve_core::app::empty_body()).unwrap();
        r.extensions_mut().insert(PeerAddr(peer.parse().unwrap()));
        r
    }

    #[tokio::test]
    async fn paste_prefix_options() {
        let conf = FactoryConf::from_pairs(
            "PasteDeploy#prefix",
            [
                ("prefix", "/james/"),
                ("force_port", ""),
                ("scheme", "HTTPS"),
            ],
        );
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        let (_, _, body) = send(&f, show(), req("192.0.2.1:9", "/james/x", &[])).await;
        assert_eq!(body, "https://inner/james /x");
        let (_, _, body) = send(&f, show(), req("192.0.2.1:9", "/jamesx", &[])).await;
        assert_eq!(body, "https://inner/james /jamesx");
    }

    #[tokio::test]
    async fn trusted_proxies_option() {
        let conf = FactoryConf::from_pairs(
            "mapproxy-serve#proxy_headers",
            [("trusted_proxies", "10.0.0.0/8")],
        );
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        let h = [
            ("x-forwarded-proto", "https, https"),
            ("x-script-name", "/maps"),
        ];
        let (_, _, body) = send(&f, show(), req("10.9.9.9:1", "/maps/wms", &h)).await;
        assert_eq!(body, "https://inner:8080/maps /wms");
        let (_, _, body) = send(&f, show(), req("127.0.0.1:1", "/maps/wms", &h)).await;
        assert_eq!(body, "http://inner:8080 /maps/wms");
    }

    #[test]
    fn invalid_values_name_the_key() {
        let e = err(build(
            &FactoryConf::from_pairs(
                "PasteDeploy#prefix",
                [
                    ("prefix", "james"),
                    ("trusted_proxies", "10.0.0.0/33"),
                    ("force_port", "http"),
                    ("scheme", "ftp"),
                    ("translate_forwarded_server", "maybe"),
                ],
            ),
            &mut BuildContext::current(),
        ));
        for k in [
            "prefix",
            "trusted_proxies",
            "force_port",
            "scheme",
            "translate_forwarded_server",
        ] {
            assert!(e.contains(&format!("key '{k}'")), "{k}: {e}");
        }
    }
}
