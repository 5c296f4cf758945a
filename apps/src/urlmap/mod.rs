//! `egg:Paste#urlmap`: dispatch requests to apps by mount path and, optionally, by host.
//!
//! ```ini
//! [composite:main]
//! use = egg:Paste#urlmap
//! / = home
//! /maps = mapproxy
//! domain tiles.example.org /wmts = tiles
//! not_found_app = fallback
//! ```
//!
//! Every key but `not_found_app` is a *path expression* — `/path` or
//! `domain HOST [port N] [/path]` — and its value names an app. `not_found_app` (from the
//! section, else from `[DEFAULT]`) answers requests no mount matches; without it they get
//! Paste's 404 page.
//!
//! # Matching (Paste's rules)
//!
//! - Mount paths are normalised: `//+` becomes `/`, a trailing `/` is dropped (`/` is the
//!   root, `""`). The request's `PATH_INFO` is normalised the same way but keeps its trailing `/`.
//! - Entries with a domain are tried first (the bare host before `host:port`), then those
//!   without; within each, the longest mount path wins. A mount matches when the path equals
//!   it or continues with `/` (`/foo` matches `/foo` and `/foo/x`, never `/foobar`).
//! - The request host is the public host ([`environ::public_url`]: a trusted forwarded
//!   header's, else the URI authority, else `Host`), lower-cased, its port split off
//!   (defaulting to 80 for `http`, 443 for `https`). A domain entry matches when it equals the
//!   host or `host:port`. **Difference from Paste:** domains compare case-insensitively
//!   (Paste never matches a domain key written with capitals).
//! - Mount paths are compared with the percent-decoded request path (as WSGI's `PATH_INFO`
//!   is decoded), but only at real `/` boundaries: `%2F` never splits a segment.
//! - On a match the request's own (percent-encoded) spelling of the mount is appended to
//!   [`MountPath`] (`SCRIPT_NAME`) and the URI path becomes the rest (`PATH_INFO`), query
//!   kept.
//!
//! # `PATH_INFO` `""` versus `/`
//!
//! `/foo` mounted at `/foo` leaves `PATH_INFO` `""`, `/foo/` leaves `/` (Paste's static app
//! redirects the first to the second). An [`http::Uri`] cannot have an empty path, so both
//! get the URI path `/`, and the empty case carries the [`environ::EmptyPathInfo`] marker.
//! Apps read `PATH_INFO` with [`environ::path_info`], which honours the marker only while the
//! URI path is `/`.
//!
//! # Cost
//!
//! Mounts live in hash maps keyed by mount path (one per domain), and a request looks up its
//! own path prefixes, longest first: the cost grows with the depth of the request path, not
//! with the number of mounts.
//!
//! # Example
//!
//! ```
//! use http::{Request, StatusCode};
//! use mapproxy_serve_core::app::{app_fn, empty_body, text_response};
//! use mapproxy_serve_apps::urlmap::{MountKey, UrlMap};
//! use tower::ServiceExt;
//!
//! let hello = app_fn(|req| async move {
//!     let body = format!("{}", mapproxy_serve_core::environ::mount_path(&req));
//!     text_response(StatusCode::OK, "text/plain", body)
//! });
//! let map = UrlMap::builder()
//!     .mount(MountKey::parse("/hello").unwrap(), hello)
//!     .build();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let res = rt.block_on(map.oneshot(Request::get("/hello/x").body(empty_body()).unwrap()));
//! assert_eq!(res.unwrap().status(), StatusCode::OK);
//! ```

use foldhash::{HashMap, HashMapExt};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::Arc;
use std::task::{Context, Poll};

use http::{header, HeaderValue, Request, Response, StatusCode};
use percent_encoding::percent_decode_str;
use tower::Service;

use mapproxy_serve_core::app::{full_body, App, AppFuture, Body, Handler, ServiceFuture};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::environ::{self, MountPath};
use mapproxy_serve_core::error::ConfigErrors;
use mapproxy_serve_core::registry::Child;

const LOG_TARGET: &str = "mapproxy_serve.apps.urlmap";

/// The key that names the app for unmatched requests.
pub const NOT_FOUND_APP: &str = "not_found_app";

/// Where an app is mounted: an optional domain (`host` or `host:port`, lower-cased) and a
/// normalised path (`""` for the root, else starting with `/`, no trailing `/`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MountKey {
    /// `host` or `host:port`, lower-cased; `None` for any host.
    pub domain: Option<String>,
    /// The normalised mount path.
    pub path: String,
}

impl MountKey {
    /// A mount key from a domain and a path, normalised (`//+` → `/`, trailing `/` dropped,
    /// a missing leading `/` added, the domain lower-cased).
    pub fn new(domain: Option<&str>, path: &str) -> Self {
        let mut p = collapse_slashes(path).into_owned();
        while p.ends_with('/') {
            p.pop();
        }
        if !p.is_empty() && !p.starts_with('/') {
            p.insert(0, '/');
        }
        MountKey {
            domain: domain.map(str::to_ascii_lowercase),
            path: p,
        }
    }

    /// Parse a path expression as Paste does: `/path` or `domain HOST [port N] [/path]`
    /// (whitespace-separated tokens). All problems are reported, in Paste's words.
    pub fn parse(expr: &str) -> Result<MountKey, Vec<String>> {
        let mut errors = Vec::new();
        let mut domain: Option<&str> = None;
        let mut port: Option<&str> = None;
        let mut path: Option<&str> = None;
        let mut tokens = expr.split_whitespace();
        while let Some(tok) = tokens.next() {
            match tok {
                "domain" => match tokens.next() {
                    None => errors.push("'domain' must be followed with a domain name".into()),
                    Some(_) if domain.is_some() => errors.push("'domain' given twice".into()),
                    Some(d) => domain = Some(d),
                },
                "port" => match tokens.next() {
                    None => errors.push("'port' must be followed with a port number".into()),
                    Some(_) if port.is_some() => errors.push("'port' given twice".into()),
                    Some(p) => {
                        if p.parse::<u16>().is_err() {
                            errors.push(format!("a port must be a number (you gave '{p}')"));
                        }
                        port = Some(p);
                    }
                },
                p => match path {
                    Some(have) => errors.push(format!(
                        "more than one path given (have '{have}', got '{p}')"
                    )),
                    None => path = Some(p),
                },
            }
        }
        if port.is_some() && domain.is_none() {
            errors.push("if you give a port, you must also give a domain".into());
        }
        let path = path.unwrap_or("");
        // With a domain Paste builds `http://HOST/` + path, so `domain h x` means `/x`.
        if domain.is_none() && !path.is_empty() && !path.starts_with('/') {
            errors.push(format!(
                "a mount path must start with / (you gave '{path}')"
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let domain = domain.map(|d| match port {
            Some(p) => format!("{d}:{p}"),
            None => d.to_string(),
        });
        Ok(MountKey::new(domain.as_deref(), path))
    }
}

impl std::fmt::Display for MountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        match &self.domain {
            Some(d) => write!(f, "domain {d} {path}"),
            None => f.write_str(path),
        }
    }
}

/// `//+` → `/`, borrowing when there is nothing to collapse.
fn collapse_slashes(path: &str) -> std::borrow::Cow<'_, str> {
    if !path.as_bytes().windows(2).any(|w| w == b"//") {
        return path.into();
    }
    let mut out = String::with_capacity(path.len());
    let mut prev_slash = false;
    for c in path.chars() {
        if c == '/' && prev_slash {
            continue;
        }
        prev_slash = c == '/';
        out.push(c);
    }
    out.into()
}

/// The mounts of one domain (or of any host): decoded mount path → index into `mounts`.
#[derive(Default)]
struct Bucket {
    by_path: HashMap<Vec<u8>, usize>,
    /// The longest mount path (bytes): longer request prefixes are not looked up.
    max_len: usize,
}

impl Bucket {
    fn insert(&mut self, path: &str, index: usize) -> Option<usize> {
        self.max_len = self.max_len.max(path.len());
        self.by_path.insert(path.as_bytes().to_vec(), index)
    }
}

struct Mount {
    key: MountKey,
    app: App,
}

struct Inner {
    mounts: Vec<Mount>,
    domains: HashMap<String, Bucket>,
    any: Bucket,
    max_len: usize,
    not_found: Option<App>,
    /// The mounts in match order, for the 404 page.
    listing: Vec<String>,
}

/// The urlmap service; build it with [`UrlMap::builder`].
#[derive(Clone)]
pub struct UrlMap {
    inner: Arc<Inner>,
}

/// Collects mounts for a [`UrlMap`].
#[derive(Default)]
pub struct UrlMapBuilder {
    mounts: Vec<Mount>,
    not_found: Option<App>,
}

impl UrlMapBuilder {
    /// Mount `app` at `key`. A later mount at the same (normalised) key replaces an earlier
    /// one, as in Paste; a warning is logged.
    pub fn mount(mut self, key: MountKey, app: App) -> Self {
        self.mounts.push(Mount { key, app });
        self
    }

    /// The app for requests no mount matches (default: a 404 page).
    pub fn not_found(mut self, app: App) -> Self {
        self.not_found = Some(app);
        self
    }

    /// Build the service.
    pub fn build(self) -> UrlMap {
        let mut domains: HashMap<String, Bucket> = HashMap::new();
        let mut any = Bucket::default();
        for (i, m) in self.mounts.iter().enumerate() {
            let bucket = match &m.key.domain {
                Some(d) => domains.entry(d.clone()).or_default(),
                None => &mut any,
            };
            if let Some(prev) = bucket.insert(&m.key.path, i) {
                log::warn!(
                    target: LOG_TARGET,
                    "urlmap: mount '{}' is given twice; the later one wins (as in Paste)",
                    self.mounts[prev].key
                );
            }
        }
        let max_len = domains
            .values()
            .map(|b| b.max_len)
            .chain([any.max_len])
            .max()
            .unwrap_or(0);
        // Match order: domains alphabetically, then any host; longest path first.
        let mut live: Vec<&MountKey> = domains
            .values()
            .chain([&any])
            .flat_map(|b| b.by_path.values())
            .map(|&i| &self.mounts[i].key)
            .collect();
        live.sort_by(|a, b| {
            let da = a.domain.as_deref().map_or((1, ""), |d| (0, d));
            let db = b.domain.as_deref().map_or((1, ""), |d| (0, d));
            da.cmp(&db)
                .then(b.path.len().cmp(&a.path.len()))
                .then(a.path.cmp(&b.path))
        });
        let listing = live.into_iter().map(ToString::to_string).collect();
        UrlMap {
            inner: Arc::new(Inner {
                mounts: self.mounts,
                domains,
                any,
                max_len,
                not_found: self.not_found,
                listing,
            }),
        }
    }
}

impl UrlMap {
    /// A builder with no mounts.
    pub fn builder() -> UrlMapBuilder {
        UrlMapBuilder::default()
    }
}

/// The request path cut at every `/` (and at its end), percent-decoded: `(raw end, decoded
/// end)` pairs, shortest first, as far as `max_len` decoded bytes.
fn cuts(path: &str, max_len: usize) -> (Vec<u8>, Vec<(usize, usize)>) {
    let mut decoded = Vec::new();
    let mut cuts = Vec::new();
    let mut start = 0;
    loop {
        let end = path[start..].find('/').map_or(path.len(), |i| start + i);
        decoded.extend(percent_decode_str(&path[start..end]));
        if decoded.len() > max_len {
            break;
        }
        cuts.push((end, decoded.len()));
        if end == path.len() {
            break;
        }
        decoded.push(b'/');
        start = end + 1;
    }
    (decoded, cuts)
}

impl Inner {
    /// The mount for a request, and the raw length of the normalised path it covers.
    fn find(&self, host: Option<&(String, String)>, path: &str) -> Option<(&Mount, usize)> {
        let mut buckets: [Option<&Bucket>; 3] = [None, None, Some(&self.any)];
        if let Some((host, host_port)) = host {
            buckets[0] = self.domains.get(host);
            buckets[1] = self.domains.get(host_port);
        }
        if !path.as_bytes().contains(&b'%') {
            // Nothing to decode: the prefixes are the path's own, cut at each `/` and at its
            // end, longest first (the same cuts as below, without building them).
            let bytes = path.as_bytes();
            for bucket in buckets.into_iter().flatten() {
                let mut end = bytes.len();
                loop {
                    if end <= bucket.max_len {
                        if let Some(&i) = bucket.by_path.get(&bytes[..end]) {
                            return Some((&self.mounts[i], end));
                        }
                    }
                    match bytes[..end].iter().rposition(|&b| b == b'/') {
                        Some(slash) => end = slash,
                        None => break,
                    }
                }
            }
            return None;
        }
        let (decoded, cuts) = cuts(path, self.max_len);
        for bucket in buckets.into_iter().flatten() {
            for &(raw_end, dec_end) in cuts.iter().rev() {
                if dec_end > bucket.max_len {
                    continue;
                }
                if let Some(&i) = bucket.by_path.get(&decoded[..dec_end]) {
                    return Some((&self.mounts[i], raw_end));
                }
            }
        }
        None
    }

    /// `(host, host:port)`, lower-cased, when any domain is mounted.
    fn request_host<B>(&self, req: &Request<B>) -> Option<(String, String)> {
        if self.domains.is_empty() {
            return None;
        }
        let public = environ::public_url(req);
        let host = public.host.to_ascii_lowercase();
        let (name, port) = environ::split_host_port(&host);
        let port = match port {
            Some(p) if !p.is_empty() => p,
            _ if public.scheme.eq_ignore_ascii_case("http") => "80",
            _ => "443",
        };
        Some((name.to_string(), format!("{name}:{port}")))
    }

    fn not_found_page<B>(&self, req: &Request<B>) -> Response<Body> {
        let path_info = environ::path_info(req);
        let shown = percent_decode_str(path_info).decode_utf8_lossy();
        let accept_html = req.headers().get_all(header::ACCEPT).iter().any(|v| {
            let v = String::from_utf8_lossy(v.as_bytes());
            v.contains("html") || v.contains("*/*")
        });
        let (content_type, body) = if accept_html {
            let host = environ::public_url(req).host;
            let mut page = String::from(
                "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
                 <title>404 Not Found</title>\n</head>\n<body>\n<h1>Not Found</h1>\n\
                 <p>The resource could not be found.</p>\n",
            );
            let _ = writeln!(page, "<p>{}</p>", html_escape(&shown));
            page.push_str("<pre>defined apps:");
            for m in &self.listing {
                let _ = write!(page, "\n  {}", html_escape(m));
            }
            let _ = write!(
                page,
                "\nSCRIPT_NAME: {}\nPATH_INFO: {}\nHTTP_HOST: {}</pre>\n</body>\n</html>\n",
                html_escape(environ::mount_path(req)),
                html_escape(path_info),
                html_escape(&host),
            );
            ("text/html; charset=utf-8", page)
        } else {
            (
                "text/plain; charset=utf-8",
                format!("404 Not Found\r\nThe resource could not be found.\r\n{shown}\r\n\r\n"),
            )
        };
        let mut res = Response::new(full_body(body));
        *res.status_mut() = StatusCode::NOT_FOUND;
        res.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        res
    }
}

/// Escape text for HTML element content and attributes; control characters (other than tab
/// and newline) become U+FFFD.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            '\t' | '\n' => out.push(c),
            c if c.is_control() => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    out
}

/// `uri` with its path replaced by `path_info` (a missing leading `/` added), scheme,
/// authority and query kept: as [`environ::set_path_info`].
fn rewrite_uri(uri: &http::Uri, path_info: &str) -> Result<http::Uri, http::Error> {
    let query = uri.query();
    if path_info.is_empty() && query.is_none() && uri.scheme().is_none() {
        // The mount path itself (`/api` mounted at `/api`), the common case: no copy to make.
        return Ok(http::Uri::from_static("/"));
    }
    let slash = !path_info.starts_with('/');
    let len = usize::from(slash) + path_info.len() + query.map_or(0, |q| q.len() + 1);
    let mut pq = Vec::with_capacity(len);
    if slash {
        pq.push(b'/');
    }
    pq.extend_from_slice(path_info.as_bytes());
    if let Some(q) = query {
        pq.push(b'?');
        pq.extend_from_slice(q.as_bytes());
    }
    let pq = http::uri::PathAndQuery::from_maybe_shared(bytes::Bytes::from(pq))?;
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq);
    Ok(http::Uri::from_parts(parts)?)
}

impl Service<Request<Body>> for UrlMap {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        Handler::call(self, req).into()
    }
}

/// Routing, through `&self`: the chosen app's future is returned as it is (no box of ours).
impl Handler for UrlMap {
    fn call(&self, mut req: Request<Body>) -> AppFuture {
        let inner = &*self.inner;
        let host = inner.request_host(&req);
        let path = collapse_slashes(environ::path_info(&req));
        let Some((mount, raw_end)) = inner.find(host.as_ref(), &path) else {
            return match &inner.not_found {
                Some(app) => app.call(req),
                None => AppFuture::ready(inner.not_found_page(&req)),
            };
        };
        if raw_end == 0 && matches!(path, std::borrow::Cow::Borrowed(_)) {
            // Mounted at the root and no `//` to collapse: `SCRIPT_NAME` and `PATH_INFO` stay
            // as they are, the request goes on untouched.
            return mount.app.call(req);
        }
        let (mounted, rest) = path.split_at(raw_end);
        // What `environ::set_path_info` does, with the new path and mount path built while
        // the old ones are still borrowed (no copy of the path) and exactly sized.
        let rewritten = rewrite_uri(req.uri(), rest);
        let rest_empty = rest.is_empty();
        let new_mount = {
            let old = environ::mount_path(&req);
            let mut m = String::with_capacity(old.len() + mounted.len());
            m.push_str(old);
            m.push_str(mounted);
            m
        };
        let uri = match rewritten {
            Ok(uri) => uri,
            Err(e) => {
                log::debug!(target: LOG_TARGET, "urlmap: cannot rewrite {path:?}: {e}");
                let mut res = Response::new(full_body("400 Bad Request\r\n"));
                *res.status_mut() = StatusCode::BAD_REQUEST;
                return AppFuture::ready(res);
            }
        };
        *req.uri_mut() = uri;
        let ext = req.extensions_mut();
        if rest_empty {
            ext.insert(environ::EmptyPathInfo);
        } else {
            ext.remove::<environ::EmptyPathInfo>();
        }
        match ext.get_mut::<MountPath>() {
            Some(mp) => mp.0 = new_mount,
            None => {
                ext.insert(MountPath(new_mount));
            }
        }
        mount.app.call(req)
    }
}

/// The apps a urlmap section names: every key but `not_found_app` in file order, then
/// `not_found_app` (from the section, else from `[DEFAULT]`). Path expressions are checked here.
/// The keys of the section that name apps (mounts and `not_found_app`).
pub fn children(conf: &FactoryConf) -> Result<Vec<Child>, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let mut out = Vec::new();
    for (key, v) in &conf.local {
        if key == NOT_FOUND_APP {
            continue;
        }
        if let Err(msgs) = MountKey::parse(key) {
            for m in msgs {
                errors.push(conf.error(key, m));
            }
        }
        let app = v.value.trim();
        if app.is_empty() {
            errors.push(conf.error(key, "no app given"));
        }
        out.push(Child {
            key: key.clone(),
            app: app.to_string(),
        });
    }
    let not_found = match conf.local.get(NOT_FOUND_APP) {
        Some(v) => Some(v.value.trim()),
        None => conf.global.get(NOT_FOUND_APP).map(|v| v.trim()),
    };
    if let Some(app) = not_found.filter(|a| !a.is_empty()) {
        out.push(Child {
            key: NOT_FOUND_APP.to_string(),
            app: app.to_string(),
        });
    }
    errors.into_result(out)
}

/// Build the urlmap from its built children.
/// Build the composite from its options and built mounts.
pub fn build(
    conf: &FactoryConf,
    _ctx: &mut BuildContext,
    children: Vec<(Child, App)>,
) -> Result<App, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let mut builder = UrlMap::builder();
    for (child, app) in children {
        if child.key == NOT_FOUND_APP {
            builder = builder.not_found(app);
            continue;
        }
        match MountKey::parse(&child.key) {
            Ok(key) => builder = builder.mount(key, app),
            Err(msgs) => {
                for m in msgs {
                    errors.push(conf.error(&child.key, m));
                }
            }
        }
    }
    errors.into_result(())?;
    Ok(App::from_handler(builder.build()))
}

#[cfg(test)]
mod tests;
