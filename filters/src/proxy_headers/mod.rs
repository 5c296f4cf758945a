//! Forwarded headers and a fixed mount prefix (Paste Deploy's `prefix` middleware, MapProxy's
//! `X-Script-Name`), with trust decided by the socket peer.
//!
//! Per request:
//!
//! 1. `prefix` (option): if the path is the prefix or starts with it followed by `/`
//!    (a literal compare on a segment boundary, unlike Paste's unescaped regex), the prefix is
//!    removed from the path. The [`MountPath`] becomes the prefix in every case, as in Paste.
//! 2. Forwarded headers are honoured only when the peer ([`PeerAddr`]) is in
//!    `trusted_proxies` (default loopback: `127.0.0.0/8`, `::1`). A request without
//!    [`PeerAddr`] (unix socket, FastCGI: the peer is the local web server) is trusted.
//!    - `Forwarded` (RFC 7239) `host=`/`proto=` of the first element, else `X-Forwarded-Host`
//!      (else Paste's `X-Forwarded-Server`) and `X-Forwarded-Proto` (else
//!      `X-Forwarded-Scheme`): the first value of a list (`https, https` is `https`);
//!      `X-Forwarded-Port` replaces the port. They set [`PublicUrl`].
//!    - The client address (`Forwarded: for=`, else `X-Forwarded-For`) is the right-most
//!      address that is not itself a trusted proxy (a client cannot spoof it by sending its
//!      own `X-Forwarded-For`); it becomes [`RemoteAddr`] with port 0.
//!    - `X-Script-Name` becomes the mount path and a matching path prefix is removed
//!      (MapProxy's rule); `X-Forwarded-Prefix` becomes the mount path.
//! 3. The forwarded headers are removed before the app: always from untrusted peers, and from
//!    trusted ones once applied (Paste pops them too). With `translate_forwarded = false` a
//!    trusted peer's headers are neither applied nor removed.
//! 4. `force_port` replaces the public port (`""` removes it), `scheme` forces the scheme;
//!    default ports (80 for http, 443 for https) are dropped from [`PublicUrl`]'s host.
//!
//! When it changed the client address, the response carries the new [`RemoteAddr`] in its
//! extensions too, so an access log outside this layer prints the real client.
//!
//! ```
//! use mapproxy_serve_filters::proxy_headers::{ProxyHeadersConfig, ProxyHeadersLayer};
//!
//! let config = ProxyHeadersConfig {
//!     prefix: "/maps".into(),
//!     trusted_proxies: ProxyHeadersConfig::parse_trusted("10.0.0.0/8, 127.0.0.1").unwrap(),
//!     ..ProxyHeadersConfig::default()
//! };
//! let layer = ProxyHeadersLayer::new(config);
//! # let _ = layer;
//! ```

mod factory;
pub use factory::{build, config};

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use http::header::{HeaderMap, HeaderName};
use http::uri::Authority;
use http::{Request, Response};
use ipnet::IpNet;
use pin_project_lite::pin_project;
use tower::{Layer, Service};

use mapproxy_serve_core::environ::{
    public_url, split_host_port, MountPath, PeerAddr, PublicUrl, RemoteAddr,
};

/// Every header this layer reads (and removes).
pub const FORWARDED_HEADERS: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-host",
    "x-forwarded-proto",
    "x-forwarded-scheme",
    "x-forwarded-server",
    "x-forwarded-port",
    "x-forwarded-prefix",
    "x-script-name",
];

/// What the layer does; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct ProxyHeadersConfig {
    /// A literal mount prefix (`/maps`), `""` for none; a trailing `/` is ignored.
    pub prefix: String,
    /// Apply forwarded headers from trusted peers (Paste's `translate_forwarded_server`).
    pub translate_forwarded: bool,
    /// Peers whose forwarded headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Replace the public port; `Some("")` removes it.
    pub force_port: Option<String>,
    /// Force the public scheme (`https`).
    pub scheme: Option<String>,
}

impl Default for ProxyHeadersConfig {
    fn default() -> Self {
        ProxyHeadersConfig {
            prefix: String::new(),
            translate_forwarded: true,
            trusted_proxies: Self::default_trusted(),
            force_port: None,
            scheme: None,
        }
    }
}

impl ProxyHeadersConfig {
    /// Loopback: `127.0.0.0/8` and `::1`.
    pub fn default_trusted() -> Vec<IpNet> {
        ["127.0.0.0/8", "::1/128"]
            .iter()
            .filter_map(|s| s.parse().ok())
            .collect()
    }

    /// Addresses or CIDRs separated by commas or whitespace (`10.0.0.0/8, ::1`).
    pub fn parse_trusted(s: &str) -> Result<Vec<IpNet>, String> {
        mapproxy_serve_core::config::split_list(s)
            .into_iter()
            .map(|t| {
                t.parse::<IpNet>()
                    .or_else(|_| t.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("'{t}' is not an IP address or CIDR (like 10.0.0.0/8)"))
            })
            .collect()
    }

    /// Normalise a prefix or forwarded mount path by the one rule for mount paths
    /// ([`mapproxy_serve_core::path::mount_path`]): `""`, or `/x/y` with one leading `/`, no
    /// empty, `.` or `..` segments and no trailing `/` (`//evil.example/x/` is
    /// `/evil.example/x`, which cannot become a host in a `Location`).
    pub fn normalize_prefix(p: &str) -> Result<String, String> {
        mapproxy_serve_core::path::mount_path(p).map_err(|e| match e {
            mapproxy_serve_core::path::PathError::Invalid if !p.trim().starts_with('/') => {
                format!("a prefix must start with '/', found '{}'", p.trim())
            }
            e => format!("'{}' is not a valid URL path ({e})", p.trim()),
        })
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.trusted_proxies.iter().any(|n| n.contains(&ip))
    }
}

/// Layer that applies [`ProxyHeadersConfig`].
#[derive(Clone, Debug)]
pub struct ProxyHeadersLayer {
    config: Arc<ProxyHeadersConfig>,
}

impl ProxyHeadersLayer {
    /// A layer with this configuration.
    pub fn new(config: ProxyHeadersConfig) -> Self {
        ProxyHeadersLayer {
            config: Arc::new(config),
        }
    }

    /// Applies the configuration to `req` in place, without a service around it (an app
    /// that honours the headers itself, as MapProxy does); returns the client address when
    /// it changed.
    pub fn apply<B>(&self, req: &mut Request<B>) -> Option<RemoteAddr> {
        apply(&self.config, req)
    }
}

impl<S> Layer<S> for ProxyHeadersLayer {
    type Service = ProxyHeaders<S>;
    fn layer(&self, inner: S) -> ProxyHeaders<S> {
        ProxyHeaders {
            inner,
            config: Arc::clone(&self.config),
        }
    }
}

/// The service made by [`ProxyHeadersLayer`].
#[derive(Clone, Debug)]
pub struct ProxyHeaders<S> {
    inner: S,
    config: Arc<ProxyHeadersConfig>,
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for ProxyHeaders<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        let remote = apply(&self.config, &mut req);
        ResponseFuture {
            fut: self.inner.call(req),
            remote,
        }
    }
}

pin_project! {
    /// Response future of [`ProxyHeaders`].
    pub struct ResponseFuture<F> {
        #[pin]
        fut: F,
        remote: Option<RemoteAddr>,
    }
}

impl<F, B, E> Future for ResponseFuture<F>
where
    F: Future<Output = Result<Response<B>, E>>,
{
    type Output = F::Output;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = ready!(this.fut.poll(cx))?;
        if let Some(r) = this.remote.take() {
            res.extensions_mut().insert(r);
        }
        Poll::Ready(Ok(res))
    }
}

/// `rest` if `path` is `prefix` or `prefix/...`, on a segment boundary; `"/"` for an exact match.
fn strip_segment_prefix<'a>(path: &'a str, prefix: &str) -> Option<&'a str> {
    let rest = path.strip_prefix(prefix)?;
    if rest.is_empty() {
        Some("/")
    } else if rest.starts_with('/') {
        Some(rest)
    } else {
        None
    }
}

fn set_path<B>(req: &mut Request<B>, path: &str) {
    // PATH_INFO "" (exactly the prefix) is kept distinct from "/" (see environ::path_info).
    let _ = mapproxy_serve_core::environ::set_path_info(req, path);
}

/// The first value of a comma-separated header (all lines joined), trimmed.
fn first_value<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    let v = headers.get(name)?.to_str().ok()?;
    let v = v.split(',').next()?.trim();
    (!v.is_empty()).then_some(v)
}

/// Every comma-separated value of every line of a header, in order.
fn all_values<'h>(headers: &'h HeaderMap, name: &str) -> Vec<&'h str> {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
fn parse_node(s: &str) -> Option<IpAddr> {
    let s = s.trim().trim_matches('"');
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<SocketAddr>() {
        return Some(sa.ip());
    }
    if let Some(inner) = s.strip_prefix('[') {
        return inner.split(']').next()?.parse().ok();
    }
    None
}

/// The client: the right-most address that is not a trusted proxy.
fn client_from(cfg: &ProxyHeadersConfig, nodes: &[&str]) -> Option<IpAddr> {
    let mut candidate = None;
    for n in nodes.iter().rev() {
        let ip = parse_node(n)?;
        candidate = Some(ip);
        if !cfg.is_trusted(ip) {
            break;
        }
    }
    candidate
}

/// RFC 7239 `Forwarded`: elements (`,`) of pairs (`;`) `name=value`, value maybe quoted.
fn parse_forwarded(headers: &HeaderMap) -> Vec<Vec<(String, String)>> {
    let mut elements = Vec::new();
    for line in headers.get_all("forwarded") {
        let Ok(line) = line.to_str() else { continue };
        let mut element: Vec<(String, String)> = Vec::new();
        let mut chars = line.chars().peekable();
        let (mut name, mut value, mut in_value) = (String::new(), String::new(), false);
        let finish_pair = |name: &mut String, value: &mut String, el: &mut Vec<_>| {
            let n = name.trim().to_ascii_lowercase();
            if !n.is_empty() {
                el.push((n, value.trim().to_string()));
            }
            name.clear();
            value.clear();
        };
        while let Some(c) = chars.next() {
            match c {
                '"' if in_value => {
                    // quoted-string with backslash escapes
                    while let Some(q) = chars.next() {
                        match q {
                            '\\' => {
                                if let Some(e) = chars.next() {
                                    value.push(e);
                                }
                            }
                            '"' => break,
                            q => value.push(q),
                        }
                    }
                }
                '=' if !in_value => in_value = true,
                ';' => {
                    finish_pair(&mut name, &mut value, &mut element);
                    in_value = false;
                }
                ',' => {
                    finish_pair(&mut name, &mut value, &mut element);
                    in_value = false;
                    elements.push(std::mem::take(&mut element));
                }
                c if in_value => value.push(c),
                c => name.push(c),
            }
        }
        finish_pair(&mut name, &mut value, &mut element);
        elements.push(element);
    }
    elements.retain(|e| !e.is_empty());
    elements
}

fn valid_host(h: &str) -> Option<&str> {
    let h = h.trim();
    if h.is_empty() || h.contains('@') {
        return None;
    }
    h.parse::<Authority>().ok().map(|_| h)
}

fn valid_path(p: &str) -> Option<String> {
    ProxyHeadersConfig::normalize_prefix(p).ok()
}

/// Apply the configuration to a request; returns the new client address when it changed.
fn apply<B>(cfg: &ProxyHeadersConfig, req: &mut Request<B>) -> Option<RemoteAddr> {
    if !cfg.prefix.is_empty() {
        if let Some(rest) = strip_segment_prefix(req.uri().path(), &cfg.prefix) {
            let rest = rest.to_string();
            set_path(req, &rest);
        }
        req.extensions_mut().insert(MountPath(cfg.prefix.clone()));
    }

    let trusted = match req.extensions().get::<PeerAddr>() {
        None => true,
        Some(p) => cfg.is_trusted(p.0.ip()),
    };
    let any_forwarded = FORWARDED_HEADERS
        .iter()
        .any(|h| req.headers().contains_key(*h));

    let mut public: Option<PublicUrl> = None;
    let mut remote = None;
    if any_forwarded && trusted && cfg.translate_forwarded {
        let headers = req.headers();
        let fwd = parse_forwarded(headers);
        let fwd_get = |key: &str| {
            fwd.first()
                .and_then(|el| el.iter().find(|(k, _)| k == key))
                .map(|(_, v)| v.as_str())
        };
        let host = fwd_get("host")
            .and_then(valid_host)
            .or_else(|| first_value(headers, "x-forwarded-host").and_then(valid_host))
            .or_else(|| first_value(headers, "x-forwarded-server").and_then(valid_host))
            .map(str::to_string);
        let proto = fwd_get("proto")
            .or_else(|| first_value(headers, "x-forwarded-proto"))
            .or_else(|| first_value(headers, "x-forwarded-scheme"))
            .map(str::to_ascii_lowercase)
            .filter(|p| p == "http" || p == "https");
        let port = first_value(headers, "x-forwarded-port")
            .and_then(|p| p.parse::<u16>().ok())
            .filter(|p| *p > 0);
        let fwd_for: Vec<&str> = fwd
            .iter()
            .filter_map(|el| el.iter().find(|(k, _)| k == "for"))
            .map(|(_, v)| v.as_str())
            .collect();
        let client = if !fwd_for.is_empty() {
            client_from(cfg, &fwd_for)
        } else {
            client_from(cfg, &all_values(headers, "x-forwarded-for"))
        };
        let script_name = headers
            .get("x-script-name")
            .and_then(|v| v.to_str().ok())
            .and_then(valid_path);
        let fwd_prefix = first_value(headers, "x-forwarded-prefix").and_then(valid_path);

        if host.is_some() || proto.is_some() || port.is_some() {
            let mut p = public_url(req);
            if let Some(h) = host {
                p.host = h;
            }
            if let Some(s) = proto {
                p.scheme = s;
            }
            if let Some(port) = port {
                let (h, _) = split_host_port(&p.host);
                p.host = format!("{h}:{port}");
            }
            public = Some(p);
        }
        if let Some(ip) = client {
            remote = Some(RemoteAddr(SocketAddr::new(ip, 0)));
        }
        if let Some(sn) = script_name {
            if let Some(rest) = strip_segment_prefix(req.uri().path(), &sn) {
                let rest = rest.to_string();
                set_path(req, &rest);
            }
            req.extensions_mut().insert(MountPath(sn));
        } else if let Some(fp) = fwd_prefix {
            req.extensions_mut().insert(MountPath(fp));
        }
    }
    if any_forwarded && (!trusted || cfg.translate_forwarded) {
        for h in FORWARDED_HEADERS {
            req.headers_mut().remove(HeaderName::from_static(h));
        }
    }

    if cfg.force_port.is_some() || cfg.scheme.is_some() {
        let mut p = public.take().unwrap_or_else(|| public_url(req));
        if let Some(fp) = &cfg.force_port {
            let (h, _) = split_host_port(&p.host);
            p.host = if fp.is_empty() {
                h.to_string()
            } else {
                format!("{h}:{fp}")
            };
        }
        if let Some(s) = &cfg.scheme {
            p.scheme.clone_from(s);
        }
        public = Some(p);
    }
    // (`public_url` leaves out the scheme's default port)
    if let Some(p) = public {
        req.extensions_mut().insert(p);
    }
    if let Some(r) = remote {
        req.extensions_mut().insert(r);
    }
    remote
}

#[cfg(test)]
mod tests {
    use super::*;
    use mapproxy_serve_core::environ::{mount_path, script_url};
    use std::convert::Infallible;
    use tower::ServiceExt;

    #[derive(Debug, Default)]
    struct Seen {
        path: String,
        mount: String,
        script_url: String,
        remote: Option<SocketAddr>,
        headers: Vec<String>,
    }

    async fn run(
        cfg: ProxyHeadersConfig,
        peer: Option<&str>,
        uri: &str,
        hdrs: &[(&str, &str)],
    ) -> (Seen, Response<()>) {
        let mut b = Request::builder().uri(uri).header("host", "inner:8080");
        for (k, v) in hdrs {
            b = b.header(*k, *v);
        }
        let mut req = b.body(()).unwrap();
        if let Some(p) = peer {
            let sa: SocketAddr = p.parse().unwrap();
            req.extensions_mut().insert(PeerAddr(sa));
            req.extensions_mut().insert(RemoteAddr(sa));
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let svc = tower::service_fn(move |req: Request<()>| {
            let tx = tx.clone();
            async move {
                let seen = Seen {
                    path: req
                        .uri()
                        .path_and_query()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    mount: mount_path(&req).to_string(),
                    script_url: script_url(&req),
                    remote: mapproxy_serve_core::environ::remote_addr(&req),
                    headers: req.headers().keys().map(|k| k.to_string()).collect(),
                };
                tx.send(seen).unwrap();
                Ok::<_, Infallible>(Response::new(()))
            }
        });
        let res = ProxyHeadersLayer::new(cfg)
            .layer(svc)
            .oneshot(req)
            .await
            .unwrap();
        (rx.recv().unwrap(), res)
    }

    fn prefix(p: &str) -> ProxyHeadersConfig {
        ProxyHeadersConfig {
            prefix: ProxyHeadersConfig::normalize_prefix(p).unwrap(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn prefix_is_literal_on_a_segment_boundary() {
        let (s, _) = run(prefix("/james/"), None, "/james/x?a=1", &[]).await;
        assert_eq!((s.path.as_str(), s.mount.as_str()), ("/x?a=1", "/james"));
        let (s, _) = run(prefix("/james"), None, "/james", &[]).await;
        assert_eq!(s.path, "/");
        let (s, _) = run(prefix("/james"), None, "/jamesx/y", &[]).await;
        assert_eq!((s.path.as_str(), s.mount.as_str()), ("/jamesx/y", "/james"));
        let (s, _) = run(prefix("/a.b"), None, "/axb/c", &[]).await;
        assert_eq!(s.path, "/axb/c");
        let (s, _) = run(prefix("/a.b"), None, "/a.b/c", &[]).await;
        assert_eq!(s.path, "/c");
        assert!(ProxyHeadersConfig::normalize_prefix("james").is_err());
        assert_eq!(ProxyHeadersConfig::normalize_prefix("/").unwrap(), "");
        // One leading slash, no empty segments: never a scheme-relative `//host`.
        for (given, want) in [
            ("//evil.example", "/evil.example"),
            ("//evil.example//x/", "/evil.example/x"),
            ("/a//b/./c", "/a/b/c"),
        ] {
            assert_eq!(ProxyHeadersConfig::normalize_prefix(given).unwrap(), want);
        }
        assert!(ProxyHeadersConfig::normalize_prefix("/a/../b").is_err());
    }

    const ALL: &[(&str, &str)] = &[
        ("x-forwarded-host", "public.example, other"),
        ("x-forwarded-proto", "https, https"),
        ("x-forwarded-for", "203.0.113.9"),
        ("x-script-name", "/maps"),
        ("forwarded", "for=198.51.100.1"),
        ("x-forwarded-prefix", "/p"),
        ("x-forwarded-port", "8443"),
    ];

    #[tokio::test]
    async fn untrusted_peer_headers_are_ignored_and_stripped() {
        let (s, _) = run(Default::default(), Some("192.0.2.7:5000"), "/maps/wms", ALL).await;
        assert_eq!(s.path, "/maps/wms");
        assert_eq!(s.mount, "");
        assert_eq!(s.script_url, "http://inner:8080");
        assert_eq!(s.remote, Some("192.0.2.7:5000".parse().unwrap()));
        assert_eq!(s.headers, vec!["host".to_string()]);
    }

    #[tokio::test]
    async fn trusted_peer_headers_are_applied_and_removed() {
        let headers: Vec<_> = ALL
            .iter()
            .filter(|(k, _)| *k != "forwarded")
            .copied()
            .collect();
        let (s, res) = run(
            Default::default(),
            Some("127.0.0.1:5000"),
            "/maps/wms?x=1",
            &headers,
        )
        .await;
        assert_eq!(s.path, "/wms?x=1");
        assert_eq!(s.mount, "/maps");
        assert_eq!(s.script_url, "https://public.example:8443/maps");
        assert_eq!(s.remote, Some("203.0.113.9:0".parse().unwrap()));
        assert_eq!(s.headers, vec!["host".to_string()]);
        // the access log outside sees the client too
        assert_eq!(
            res.extensions().get::<RemoteAddr>(),
            Some(&RemoteAddr("203.0.113.9:0".parse().unwrap()))
        );
        // no peer (unix socket / FastCGI): trusted
        let (s, _) = run(
            Default::default(),
            None,
            "/x",
            &[("x-forwarded-proto", "https")],
        )
        .await;
        assert_eq!(s.script_url, "https://inner:8080");
    }

    #[tokio::test]
    async fn rfc7239_forwarded_and_prefix() {
        let h = [
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https;host=\"maps.example\", for=127.0.0.1",
            ),
            ("x-forwarded-prefix", "/base/"),
        ];
        let (s, _) = run(Default::default(), Some("[::1]:1"), "/x", &h).await;
        assert_eq!(s.script_url, "https://maps.example/base");
        assert_eq!(s.path, "/x");
        assert_eq!(s.remote, Some("[2001:db8::1]:0".parse().unwrap()));
    }

    #[tokio::test]
    async fn spoofed_x_forwarded_for_is_not_believed() {
        let cfg = ProxyHeadersConfig {
            trusted_proxies: ProxyHeadersConfig::parse_trusted("127.0.0.1 10.0.0.0/8").unwrap(),
            ..Default::default()
        };
        // client sent "1.1.1.1"; nginx appended the real client, then an inner proxy its own
        let h = [("x-forwarded-for", "1.1.1.1, 203.0.113.5, 10.1.2.3")];
        let (s, _) = run(cfg.clone(), Some("127.0.0.1:1"), "/", &h).await;
        assert_eq!(s.remote.unwrap().ip().to_string(), "203.0.113.5");
        // garbage on the right: no address taken from the header
        let h = [("x-forwarded-for", "1.1.1.1, bogus")];
        let (s, _) = run(cfg, Some("127.0.0.1:1"), "/", &h).await;
        assert_eq!(s.remote, Some("127.0.0.1:1".parse().unwrap()));
    }

    #[tokio::test]
    async fn force_port_scheme_and_default_ports() {
        let cfg = ProxyHeadersConfig {
            force_port: Some(String::new()),
            scheme: Some("https".into()),
            ..Default::default()
        };
        let (s, _) = run(cfg, Some("192.0.2.1:1"), "/", &[]).await;
        assert_eq!(s.script_url, "https://inner");
        let cfg = ProxyHeadersConfig {
            force_port: Some("8000".into()),
            ..Default::default()
        };
        let (s, _) = run(cfg, None, "/", &[("x-forwarded-host", "[::1]:9")]).await;
        assert_eq!(s.script_url, "http://[::1]:8000");
        let h = [
            ("x-forwarded-host", "h.example:443"),
            ("x-forwarded-proto", "HTTPS"),
        ];
        let (s, _) = run(Default::default(), None, "/", &h).await;
        assert_eq!(s.script_url, "https://h.example");
        // invalid values are ignored
        let h = [
            ("x-forwarded-host", "evil@h"),
            ("x-forwarded-proto", "javascript"),
            ("x-script-name", "nope"),
        ];
        let (s, _) = run(Default::default(), None, "/", &h).await;
        assert_eq!(
            (s.script_url.as_str(), s.mount.as_str()),
            ("http://inner:8080", "")
        );
        // A scheme-relative mount path would put another host into `Location` headers.
        for sn in ["//evil.example", "//evil.example//", "///evil.example/./"] {
            let (s, _) = run(Default::default(), None, "/", &[("x-script-name", sn)]).await;
            assert_eq!(
                (s.script_url.as_str(), s.mount.as_str()),
                ("http://inner:8080/evil.example", "/evil.example"),
                "{sn}"
            );
        }
    }

    #[tokio::test]
    async fn translate_off_leaves_trusted_headers() {
        let cfg = ProxyHeadersConfig {
            translate_forwarded: false,
            ..Default::default()
        };
        let (s, _) = run(
            cfg.clone(),
            Some("127.0.0.1:1"),
            "/",
            &[("x-forwarded-proto", "https")],
        )
        .await;
        assert_eq!(s.script_url, "http://inner:8080");
        assert!(s.headers.contains(&"x-forwarded-proto".to_string()));
        let (s, _) = run(
            cfg,
            Some("192.0.2.1:1"),
            "/",
            &[("x-forwarded-proto", "https")],
        )
        .await;
        assert!(!s.headers.contains(&"x-forwarded-proto".to_string()));
    }

    #[test]
    fn trusted_list_parsing() {
        let t =
            ProxyHeadersConfig::parse_trusted("10.0.0.0/8,  192.168.1.1\n::1 fd00::/8").unwrap();
        assert_eq!(t.len(), 4);
        let e = ProxyHeadersConfig::parse_trusted("10.0.0.0/8 nonsense").unwrap_err();
        assert!(e.contains("'nonsense'"));
        let cfg = ProxyHeadersConfig {
            trusted_proxies: t,
            ..Default::default()
        };
        assert!(cfg.is_trusted("::ffff:10.1.1.1".parse().unwrap()));
        assert!(!cfg.is_trusted("11.0.0.1".parse().unwrap()));
    }
}
