//! A streaming reverse proxy to one HTTP/1.1 upstream, `http://` or `https://`
//! (`egg:Paste#proxy`).
//!
//! [`Proxy`] forwards each request to `address` and streams both bodies through (nothing is
//! buffered), over the shared pool of kept-alive connections of
//! [`mapproxy_serve_client::HttpClient`] (hyper-util's client; TLS by rustls with the system's
//! roots plus an optional CA file):
//!
//! - **Path**: `address` is a base URL joined with the request path (`PATH_INFO`) like Paste's
//!   `urljoin(base, path.lstrip('/'))`: the base's last segment is replaced, so
//!   `http://up/base/` with `/x?y=1` → `/base/x?y=1`, while `http://up/base` (no trailing
//!   slash) with `/x` → `/x` (Paste's rule; a warning is logged when such an address is built).
//!   Unlike Python's `urljoin`, the request path is percent-decoded first (core's
//!   [`path::decode_with`](mapproxy_serve_core::path::decode_with)), so `%2e%2e`, `.%2e`,
//!   `..%2f` are the `..` segments they stand for; empty segments are dropped and `.`/`..`
//!   resolved *without leaving the base*, and the segments are sent percent-encoded again: a
//!   client cannot reach upstream paths outside the base, however it spells them. The mount
//!   path (`SCRIPT_NAME`) is not sent, as in Paste.
//! - **Headers**: hop-by-hop headers (`Connection` and the names it lists, `Keep-Alive`,
//!   `Proxy-*`, `TE`, `Trailer(s)`, `Transfer-Encoding`, `Upgrade`) are removed both ways;
//!   `Host` is set to the upstream's host; `X-Forwarded-For` gets the client IP
//!   ([`RemoteAddr`](mapproxy_serve_core::environ::RemoteAddr)) appended; `X-Forwarded-Host` and
//!   `X-Forwarded-Proto` are set from [`public_url`](mapproxy_serve_core::environ::public_url). Headers named
//!   in [`ProxyBuilder::suppress_headers`] are not sent.
//! - **Errors**: a method outside [`ProxyBuilder::allowed_methods`] gets 405 with `Allow`;
//!   `CONNECT` gets 405 (a tunnel is not a request to the base); an unreachable upstream or a
//!   failed TLS handshake gets 502; no response head within [`ProxyBuilder::timeout`] (default
//!   60 s, nginx's `proxy_read_timeout`) gets 504 (the timeout covers connecting, sending the
//!   request and waiting for the response head). An answer whose body could end in two
//!   places (`Content-Length` next to `Transfer-Encoding`) gets 502.
//! - **Stalls**: once the response streams, the same timeout bounds each wait for the next
//!   piece of its body (as nginx's `proxy_read_timeout` does); an upstream silent for longer
//!   is cut, and the client's response ends with an error: its connection is closed before
//!   the body's end, so it cannot take a short body for a whole one.
//!
//! ```no_run
//! use std::time::Duration;
//! use mapproxy_serve_apps::proxy::Proxy;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let proxy = Proxy::builder("http://127.0.0.1:9000/base/")
//!     .allowed_methods(["GET", "HEAD"])
//!     .suppress_headers(["cookie"])
//!     .timeout(Duration::from_secs(30))
//!     .build()?;
//! // `proxy` is a tower::Service<http::Request<B>> answering Response<ProxyBody>.
//! # let _ = proxy;
//! # Ok(())
//! # }
//! ```

mod factory;
pub use factory::build;

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use mapproxy_serve_client::{ClientConfig, HttpClient};
use mapproxy_serve_core::path::{decode_with, ParentSegments};
use mapproxy_serve_core::BoxError;

const LOG: &str = "mapproxy_serve.proxy";

/// The body of requests sent upstream and of the responses [`Proxy`] returns.
pub type ProxyBody = UnsyncBoxBody<Bytes, BoxError>;

/// How long the upstream may take to answer with a response head, by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Which builder option a [`ProxyConfigError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyOption {
    /// The upstream address.
    Address,
    /// [`ProxyBuilder::allowed_methods`].
    AllowedMethods,
    /// [`ProxyBuilder::suppress_headers`].
    SuppressHeaders,
    /// [`ProxyBuilder::ca_file`].
    CaFile,
}

/// A bad proxy configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProxyConfigError {
    /// The option at fault.
    pub option: ProxyOption,
    /// What is wrong.
    pub message: String,
}

fn bad(option: ProxyOption, message: String) -> ProxyConfigError {
    ProxyConfigError { option, message }
}

impl std::fmt::Display for ProxyConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ProxyConfigError {}

/// Options of a [`Proxy`].
#[derive(Clone, Debug)]
pub struct ProxyBuilder {
    address: String,
    allowed: Vec<String>,
    suppress: Vec<String>,
    timeout: Option<Duration>,
    pool_idle_timeout: Duration,
    ca_file: Option<std::path::PathBuf>,
    insecure: bool,
}

impl ProxyBuilder {
    /// Only these methods are forwarded (case-insensitive); others get 405. Empty: all.
    pub fn allowed_methods<I, S>(mut self, methods: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.allowed = methods
            .into_iter()
            .map(|m| m.as_ref().to_ascii_uppercase())
            .collect();
        self
    }

    /// Request headers not sent upstream; `x_foo` means `x-foo` (Paste's WSGI-style names).
    pub fn suppress_headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.suppress = names
            .into_iter()
            .map(|n| n.as_ref().to_ascii_lowercase().replace('_', "-"))
            .collect();
        self
    }

    /// Answer 504 when the upstream's response head takes longer than this, and cut a
    /// response whose body stalls for longer than this between two pieces (default
    /// [`DEFAULT_TIMEOUT`]; `None`: wait as long as it takes).
    pub fn timeout(mut self, t: impl Into<Option<Duration>>) -> Self {
        self.timeout = t.into();
        self
    }

    /// Trust the certificates in this PEM file for `https://` upstreams, besides the
    /// system's roots.
    pub fn ca_file(mut self, path: impl Into<std::path::PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Accept any certificate from an `https://` upstream (MapProxy's `ssl_no_cert_checks`):
    /// insecure, for test setups only.
    pub fn insecure(mut self, on: bool) -> Self {
        self.insecure = on;
        self
    }

    /// How long an idle upstream connection stays in the pool (default 90 s).
    pub fn pool_idle_timeout(mut self, t: Duration) -> Self {
        self.pool_idle_timeout = t;
        self
    }

    /// Check the address and build the proxy.
    pub fn build(self) -> Result<Proxy, ProxyConfigError> {
        let uri: Uri = self.address.trim().parse().map_err(|e| {
            bad(
                ProxyOption::Address,
                format!("bad address '{}': {e}", self.address),
            )
        })?;
        let scheme = match uri.scheme_str() {
            Some("http") => Scheme::HTTP,
            Some("https") => Scheme::HTTPS,
            _ => {
                return Err(bad(
                    ProxyOption::Address,
                    format!(
                        "address '{}' must be a full URL like http://host:port/path/",
                        self.address
                    ),
                ))
            }
        };
        let authority = uri.authority().cloned().ok_or_else(|| {
            bad(
                ProxyOption::Address,
                format!("address '{}' has no host", self.address),
            )
        })?;
        if uri.query().is_some() {
            log::warn!(target: LOG, "address '{}': the query is ignored", self.address);
        }
        let base = uri.path().to_string();
        // `Uri` reports "/" for `http://host`; an address without a path sends paths as-is.
        let base = match self.address.trim().split_once("://") {
            Some((_, rest)) if !rest.contains('/') => String::new(),
            _ => base,
        };
        if !base.is_empty() && !base.ends_with('/') {
            log::warn!(
                target: LOG,
                "address '{}' has no trailing '/': its last path segment is replaced by \
                 the request path (Paste's urljoin)",
                self.address
            );
        }
        let base_dir = match base.rfind('/') {
            Some(i) => base[..=i].to_string(),
            None => String::new(),
        };
        let host = HeaderValue::from_str(authority.as_str()).map_err(|e| {
            bad(
                ProxyOption::Address,
                format!("bad host in '{}': {e}", self.address),
            )
        })?;
        let mut allowed = Vec::new();
        for m in &self.allowed {
            allowed.push(Method::from_bytes(m.as_bytes()).map_err(|_| {
                bad(
                    ProxyOption::AllowedMethods,
                    format!("bad request method '{m}'"),
                )
            })?);
        }
        let allow_header = if allowed.is_empty() {
            None
        } else {
            let list = allowed
                .iter()
                .map(Method::as_str)
                .collect::<Vec<_>>()
                .join(", ");
            HeaderValue::from_str(&list).ok()
        };
        let mut suppress = Vec::new();
        for n in &self.suppress {
            suppress.push(HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                bad(
                    ProxyOption::SuppressHeaders,
                    format!("bad header name '{n}'"),
                )
            })?);
        }
        let config = ClientConfig {
            header_timeout: self.timeout,
            read_timeout: self.timeout,
            pool_idle_timeout: Some(self.pool_idle_timeout),
            ca_file: self.ca_file.clone(),
            insecure: self.insecure,
            ..ClientConfig::default()
        };
        let client =
            HttpClient::shared(&config).map_err(|e| bad(ProxyOption::CaFile, e.to_string()))?;
        Ok(Proxy {
            inner: Arc::new(Inner {
                client,
                scheme,
                authority,
                host,
                base_dir,
                allowed,
                allow_header,
                suppress,
            }),
        })
    }
}

/// A Tower service forwarding requests to one upstream. See the [module docs](self).
#[derive(Clone)]
pub struct Proxy {
    inner: Arc<Inner>,
}

struct Inner {
    client: HttpClient,
    scheme: Scheme,
    authority: Authority,
    host: HeaderValue,
    /// The address path up to its last `/` ("" when the address has no path).
    base_dir: String,
    allowed: Vec<Method>,
    allow_header: Option<HeaderValue>,
    suppress: Vec<HeaderName>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("authority", &self.inner.authority)
            .field("base", &self.inner.base_dir)
            .finish()
    }
}

impl Proxy {
    /// Options for a proxy to `address` (a full `http://` URL; its path is the base).
    pub fn builder(address: impl Into<String>) -> ProxyBuilder {
        ProxyBuilder {
            address: address.into(),
            allowed: Vec::new(),
            suppress: Vec::new(),
            timeout: Some(DEFAULT_TIMEOUT),
            pool_idle_timeout: Duration::from_secs(90),
            ca_file: None,
            insecure: false,
        }
    }

    /// A proxy to `address` with the default options.
    pub fn new(address: impl Into<String>) -> Result<Proxy, ProxyConfigError> {
        Self::builder(address).build()
    }

    /// The upstream path and query for a request path and query; `None` for a path that
    /// cannot be sent (a NUL byte).
    pub fn upstream_path(&self, path: &str, query: Option<&str>) -> Option<String> {
        let mut out = join_path(&self.inner.base_dir, path)?;
        if let Some(q) = query {
            out.push('?');
            out.push_str(q);
        }
        Some(out)
    }
}

/// `base_dir` (ending in `/`, or empty) joined with `path`, decoded and resolved first so that
/// no spelling of `..` leaves the base, then encoded again. `None` for a NUL byte.
fn join_path(base_dir: &str, path: &str) -> Option<String> {
    let decoded = decode_with(path, ParentSegments::Resolve).ok()?;
    let encoded = decoded.encoded();
    if base_dir.is_empty() {
        return Some(encoded);
    }
    let mut out = String::with_capacity(base_dir.len() + encoded.len());
    out.push_str(base_dir);
    out.push_str(encoded.trim_start_matches('/'));
    Some(out)
}

/// The hop-by-hop headers of `h`: the fixed list plus the names `Connection` lists.
fn remove_hop_by_hop(h: &mut HeaderMap) {
    let listed: Vec<HeaderName> = h
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in listed {
        h.remove(n);
    }
    for n in [
        header::CONNECTION,
        header::TE,
        header::TRAILER,
        header::TRANSFER_ENCODING,
        header::UPGRADE,
        header::PROXY_AUTHENTICATE,
        header::PROXY_AUTHORIZATION,
    ] {
        h.remove(n);
    }
    for n in ["keep-alive", "trailers", "proxy-connection"] {
        h.remove(n);
    }
    let proxy_named: Vec<HeaderName> = h
        .keys()
        .filter(|k| k.as_str().starts_with("proxy-"))
        .cloned()
        .collect();
    for n in proxy_named {
        h.remove(n);
    }
}

fn error_response(status: StatusCode, text: &'static str) -> Response<ProxyBody> {
    let body = Full::new(Bytes::from_static(text.as_bytes()))
        .map_err(|never| match never {})
        .boxed_unsync();
    let mut res = Response::new(body);
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl<B> tower::Service<Request<B>> for Proxy
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    type Response = Response<ProxyBody>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Response<ProxyBody>, Infallible>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let inner = self.inner.clone();
        let refused = req.method() == Method::CONNECT
            || (!inner.allowed.is_empty() && !inner.allowed.contains(req.method()));
        if refused {
            let mut res =
                error_response(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
            if let Some(a) = &inner.allow_header {
                res.headers_mut().insert(header::ALLOW, a.clone());
            }
            return Box::pin(async move { Ok(res) });
        }
        let client_ip = mapproxy_serve_core::environ::remote_ip(&req);
        let public = mapproxy_serve_core::environ::public_url(&req);
        let pq = join_path(&inner.base_dir, req.uri().path()).map(|path| match req.uri().query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        });
        let uri = pq
            .and_then(|pq| PathAndQuery::try_from(pq).ok())
            .and_then(|pq| {
                Uri::builder()
                    .scheme(inner.scheme.clone())
                    .authority(inner.authority.clone())
                    .path_and_query(pq)
                    .build()
                    .ok()
            });
        let Some(uri) = uri else {
            return Box::pin(async move {
                Ok(error_response(StatusCode::BAD_REQUEST, "400 Bad Request\n"))
            });
        };
        let (parts, body) = req.into_parts();
        let mut headers = parts.headers;
        remove_hop_by_hop(&mut headers);
        for n in &inner.suppress {
            headers.remove(n);
        }
        headers.insert(header::HOST, inner.host.clone());
        if let Some(ip) = client_ip {
            let prior: Vec<&str> = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect();
            let value = if prior.is_empty() {
                ip.to_string()
            } else {
                format!("{}, {ip}", prior.join(", "))
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert("x-forwarded-for", v);
            }
        }
        if let Ok(v) = HeaderValue::from_str(&public.host) {
            headers.insert("x-forwarded-host", v);
        }
        if let Ok(v) = HeaderValue::from_str(&public.scheme) {
            headers.insert("x-forwarded-proto", v);
        }
        let mut up = Request::new(body.map_err(Into::into).boxed_unsync());
        *up.method_mut() = parts.method;
        *up.uri_mut() = uri;
        *up.version_mut() = Version::HTTP_11;
        *up.headers_mut() = headers;

        Box::pin(async move {
            match inner.client.request(up).await {
                Ok(res) => {
                    let (mut parts, body) = res.into_parts();
                    remove_hop_by_hop(&mut parts.headers);
                    Ok(Response::from_parts(parts, body.into_body()))
                }
                Err(e) => {
                    log::warn!(target: LOG, "upstream {}: {e}", inner.authority);
                    Ok(if e.is_timeout() {
                        error_response(StatusCode::GATEWAY_TIMEOUT, "504 Gateway Timeout\n")
                    } else {
                        error_response(StatusCode::BAD_GATEWAY, "502 Bad Gateway\n")
                    })
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::StreamBody;
    use hyper::body::{Frame, Incoming};
    use hyper_util::rt::TokioIo;
    use mapproxy_serve_core::environ::{PublicUrl, RemoteAddr};
    use std::net::SocketAddr;
    use std::sync::Mutex;
    use tower::ServiceExt;

    const DEADLINE: Duration = Duration::from_secs(20);

    /// A tiny hyper server on 127.0.0.1:0 answering with `handler`.
    async fn upstream<F, Fut>(handler: F) -> SocketAddr
    where
        F: Fn(Request<Incoming>) -> Fut + Clone + Send + Sync + 'static,
        Fut: Future<Output = Response<ProxyBody>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let h = handler.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req| {
                        let fut = h(req);
                        async move { Ok::<_, Infallible>(fut.await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        addr
    }

    fn text(s: String) -> Response<ProxyBody> {
        Response::new(
            Full::new(Bytes::from(s))
                .map_err(|n| match n {})
                .boxed_unsync(),
        )
    }

    /// A body fed through a channel.
    fn channel_body() -> (tokio::sync::mpsc::Sender<Bytes>, ProxyBody) {
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv()
                .await
                .map(|b| (Ok::<_, BoxError>(Frame::data(b)), rx))
        });
        (tx, StreamBody::new(stream).boxed_unsync())
    }

    fn empty() -> ProxyBody {
        Full::new(Bytes::new())
            .map_err(|n| match n {})
            .boxed_unsync()
    }

    async fn read_all(res: Response<ProxyBody>) -> Vec<u8> {
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    /// Echo what arrived: method, target, then the headers, one per line.
    async fn echo(req: Request<Incoming>) -> Response<ProxyBody> {
        let mut s = format!("{} {}\n", req.method(), req.uri());
        let mut names: Vec<_> = req.headers().keys().map(|k| k.as_str()).collect();
        names.sort();
        names.dedup();
        for n in names {
            let vals: Vec<_> = req
                .headers()
                .get_all(n)
                .iter()
                .map(|v| v.to_str().unwrap_or("?"))
                .collect();
            s.push_str(&format!("{n}: {}\n", vals.join(" | ")));
        }
        let mut res = text(s);
        let h = res.headers_mut();
        h.insert("connection", HeaderValue::from_static("x-resp-hop"));
        h.insert("x-resp-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("proxy-authenticate", HeaderValue::from_static("Basic"));
        h.insert("x-kept", HeaderValue::from_static("yes"));
        res
    }

    #[test]
    fn paths_join_like_urljoin_but_stay_under_the_base() {
        let join = |b, p| join_path(b, p).unwrap();
        assert_eq!(join("", "/x/y"), "/x/y");
        assert_eq!(join("", ""), "/");
        assert_eq!(join("/base/", "/x"), "/base/x");
        assert_eq!(join("/base/", "/"), "/base/");
        assert_eq!(join("/base/", "//x"), "/base/x");
        assert_eq!(join("/base/", "/a/../../../etc/passwd"), "/base/etc/passwd");
        assert_eq!(join("/base/", "/a/./b/"), "/base/a/b/");
        assert_eq!(join("/base/", "/a/.."), "/base/");
        assert_eq!(join("/", "/x"), "/x");
        // Every spelling of `..` is resolved under the base; what is left is encoded again.
        for escape in [
            "/%2e%2e/secret/s.txt",
            "/%2E%2E/secret/s.txt",
            "/.%2e/secret/s.txt",
            "/%2e./secret/s.txt",
            "/..%2fsecret/s.txt",
            "/%2e%2e%2fsecret%2fs.txt",
            "/a/%2e%2e/%2e%2e/secret/s.txt",
        ] {
            assert_eq!(join("/base/", escape), "/base/secret/s.txt", "{escape}");
        }
        assert_eq!(join("/base/", "/a%20b/c%3Fd"), "/base/a%20b/c%3Fd");
        assert_eq!(join_path("/base/", "/a%00b"), None);
        let p = Proxy::new("http://127.0.0.1:9/base/").unwrap();
        assert_eq!(p.upstream_path("/x", Some("y=1")).unwrap(), "/base/x?y=1");
        // No trailing slash: the last segment is replaced (Paste's urljoin).
        let p = Proxy::new("http://127.0.0.1:9/base").unwrap();
        assert_eq!(p.upstream_path("/x", None).unwrap(), "/x");
        let p = Proxy::new("http://127.0.0.1:9/a/base").unwrap();
        assert_eq!(p.upstream_path("/x", None).unwrap(), "/a/x");
        let p = Proxy::new("http://127.0.0.1:9").unwrap();
        assert_eq!(p.upstream_path("/x/y", None).unwrap(), "/x/y");
    }

    #[test]
    fn bad_addresses() {
        assert!(Proxy::new("ftp://example.org/").is_err());
        assert!(Proxy::new("127.0.0.1:9000").is_err());
        assert!(Proxy::new("not a url").is_err());
        assert!(Proxy::builder("http://h/")
            .allowed_methods(["G T"])
            .build()
            .is_err());
    }

    #[tokio::test]
    async fn headers_and_path_are_rewritten() {
        let addr = upstream(echo).await;
        let proxy = Proxy::builder(format!("http://{addr}/base/"))
            .suppress_headers(["x_secret"])
            .build()
            .unwrap();
        let mut req = Request::builder()
            .uri("/x%20y?q=1")
            .header("host", "public.example")
            .header("connection", "keep-alive, x-hop")
            .header("x-hop", "1")
            .header("keep-alive", "timeout=5")
            .header("te", "trailers")
            .header("proxy-authorization", "Basic abc")
            .header("x-secret", "s")
            .header("x-forwarded-for", "10.0.0.1")
            .header("x-other", "kept")
            .body(empty())
            .unwrap();
        req.extensions_mut()
            .insert(RemoteAddr("192.0.2.7:5555".parse().unwrap()));
        req.extensions_mut().insert(PublicUrl {
            scheme: "https".into(),
            host: "public.example".into(),
        });
        let res = proxy.clone().oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let h = res.headers().clone();
        assert_eq!(h["x-kept"], "yes");
        for gone in [
            "connection",
            "x-resp-hop",
            "keep-alive",
            "proxy-authenticate",
        ] {
            assert!(!h.contains_key(gone), "response kept {gone}");
        }
        let got = String::from_utf8(read_all(res).await).unwrap();
        let lines: Vec<&str> = got.lines().collect();
        assert_eq!(lines[0], "GET /base/x%20y?q=1", "{got}");
        assert!(lines.contains(&format!("host: {addr}").as_str()), "{got}");
        assert!(
            lines.contains(&"x-forwarded-for: 10.0.0.1, 192.0.2.7"),
            "{got}"
        );
        assert!(lines.contains(&"x-forwarded-host: public.example"), "{got}");
        assert!(lines.contains(&"x-forwarded-proto: https"), "{got}");
        assert!(lines.contains(&"x-other: kept"), "{got}");
        for gone in [
            "x-hop",
            "keep-alive",
            "te",
            "proxy-authorization",
            "x-secret",
        ] {
            assert!(
                !lines.iter().any(|l| l.starts_with(&format!("{gone}:"))),
                "{gone} was sent: {got}"
            );
        }
    }

    #[tokio::test]
    async fn disallowed_method_gets_405() {
        let proxy = Proxy::builder("http://127.0.0.1:9/")
            .allowed_methods(["get", "HEAD"])
            .build()
            .unwrap();
        let req = Request::builder()
            .method("POST")
            .uri("/")
            .body(empty())
            .unwrap();
        let res = proxy.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }

    #[tokio::test]
    async fn upstream_down_gives_502() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let proxy = Proxy::new(format!("http://{addr}/")).unwrap();
        let req = Request::builder().uri("/").body(empty()).unwrap();
        let res = proxy.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::BAD_GATEWAY);
    }

    #[tokio::test]
    async fn slow_upstream_gives_504() {
        let addr = upstream(|_req| async {
            // Never answers.
            std::future::pending::<()>().await;
            text(String::new())
        })
        .await;
        let proxy = Proxy::builder(format!("http://{addr}/"))
            .timeout(Duration::from_millis(200))
            .build()
            .unwrap();
        let req = Request::builder().uri("/").body(empty()).unwrap();
        let res = proxy.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::GATEWAY_TIMEOUT);
    }

    const BIG: usize = 20 * 1024 * 1024;
    const PIECE: usize = 64 * 1024;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn response_body_streams_before_the_upstream_finishes() {
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        let go_rx = Arc::new(Mutex::new(Some(go_rx)));
        let addr = upstream(move |_req| {
            let go = go_rx.lock().unwrap().take();
            async move {
                let (tx, body) = channel_body();
                tokio::spawn(async move {
                    let _ = tx.send(Bytes::from_static(b"first")).await;
                    if let Some(go) = go {
                        let _ = go.await;
                    }
                    let piece = Bytes::from(vec![b'x'; PIECE]);
                    for _ in 0..BIG / PIECE {
                        if tx.send(piece.clone()).await.is_err() {
                            break;
                        }
                    }
                });
                Response::new(body)
            }
        })
        .await;
        let proxy = Proxy::new(format!("http://{addr}/")).unwrap();
        let req = Request::builder().uri("/").body(empty()).unwrap();
        let res = tokio::time::timeout(DEADLINE, proxy.oneshot(req))
            .await
            .unwrap()
            .unwrap();
        let mut body = res.into_body();
        let first = tokio::time::timeout(DEADLINE, body.frame())
            .await
            .expect("first chunk must arrive while the upstream waits")
            .unwrap()
            .unwrap()
            .into_data()
            .unwrap();
        assert_eq!(first, "first");
        go_tx.send(()).unwrap();
        let mut total = 0;
        while let Some(f) = tokio::time::timeout(DEADLINE, body.frame()).await.unwrap() {
            total += f.unwrap().into_data().map_or(0, |d| d.len());
        }
        assert_eq!(total, BIG);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn request_body_streams_before_the_client_finishes() {
        let (got_first_tx, got_first_rx) = tokio::sync::oneshot::channel::<()>();
        let got_first_tx = Arc::new(Mutex::new(Some(got_first_tx)));
        let addr = upstream(move |req: Request<Incoming>| {
            let signal = got_first_tx.lock().unwrap().take();
            async move {
                let mut body = req.into_body();
                let mut total = 0usize;
                let mut signal = signal;
                while let Some(Ok(f)) = body.frame().await {
                    total += f.into_data().map_or(0, |d| d.len());
                    if let Some(s) = signal.take() {
                        let _ = s.send(());
                    }
                }
                text(total.to_string())
            }
        })
        .await;
        let proxy = Proxy::new(format!("http://{addr}/")).unwrap();
        let (tx, body) = channel_body();
        let req = Request::builder()
            .method("POST")
            .uri("/upload")
            .body(body)
            .unwrap();
        let call = tokio::spawn(proxy.oneshot(req));
        tx.send(Bytes::from_static(b"12345")).await.unwrap();
        tokio::time::timeout(DEADLINE, got_first_rx)
            .await
            .expect("upstream must see the first chunk before the body ends")
            .unwrap();
        let piece = Bytes::from(vec![b'y'; PIECE]);
        for _ in 0..BIG / PIECE {
            tx.send(piece.clone()).await.unwrap();
        }
        drop(tx);
        let res = tokio::time::timeout(DEADLINE, call)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(read_all(res).await, (BIG + 5).to_string().as_bytes());
    }

    #[tokio::test]
    async fn connections_are_reused() {
        let conns = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let c = conns.clone();
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(|_req| async {
                        Ok::<_, Infallible>(text("ok".into()))
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(sock), svc)
                        .await;
                });
            }
        });
        let proxy = Proxy::new(format!("http://{addr}/")).unwrap();
        for _ in 0..5 {
            let req = Request::builder().uri("/").body(empty()).unwrap();
            let res = proxy.clone().oneshot(req).await.unwrap();
            assert_eq!(read_all(res).await, b"ok");
        }
        assert_eq!(conns.load(std::sync::atomic::Ordering::SeqCst), 1);
    }
}
