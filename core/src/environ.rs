//! Request extensions that carry what WSGI kept in `environ`.
//!
//! | WSGI                         | extension        | set by                                  |
//! |------------------------------|------------------|-----------------------------------------|
//! | `SCRIPT_NAME`                | [`MountPath`]    | urlmap, prefix filter, FastCGI server   |
//! | `PATH_INFO`                  | the request URI  | (the part below the mount path)         |
//! | `PATH_INFO == ""`            | [`EmptyPathInfo`] | urlmap ([`set_path_info`])             |
//! | `REMOTE_ADDR`                | [`RemoteAddr`], else [`PeerAddr`] | FastCGI server; trusted forwarded headers |
//! | (socket peer)                | [`PeerAddr`]     | HTTP server only, never rewritten       |
//! | `wsgi.url_scheme`, `HTTP_HOST` | [`PublicUrl`]  | server; trusted forwarded headers       |
//! | `REMOTE_USER`                | [`RemoteUser`]   | auth filters                            |
//!
//! Read them with the functions here ([`mount_path`], [`remote_addr`], [`public_url`],
//! [`path_info`]): servers leave out an extension whose value the function derives anyway
//! (no [`MountPath`] at the root, no [`RemoteAddr`] equal to the peer, no [`PublicUrl`] that
//! the URI and `Host` already say), which saves allocations on every request. Apps build public
//! URLs with [`script_url`], never from guesses.
//!
//! ## `PATH_INFO` of `""` versus `"/"`
//!
//! WSGI tells `/foo` (mounted at `/foo`: `PATH_INFO` `""`) from `/foo/` (`PATH_INFO` `"/"`);
//! Paste's static app answers the first with a redirect to the second. An [`http::Uri`] cannot
//! have an empty path, so both keep the URI path `/` and the empty case is marked with the
//! [`EmptyPathInfo`] extension. Read `PATH_INFO` with [`path_info`] and change it with
//! [`set_path_info`]; the marker counts only while the URI path is `/`, so a layer that
//! rewrites the URI without knowing about it cannot leave a stale `""` behind.

use std::net::{IpAddr, SocketAddr};

use http::Request;

/// The path the app is mounted at (`SCRIPT_NAME`): `""` at the root, otherwise starting with
/// `/` and without a trailing `/`. The request URI holds only the rest (`PATH_INFO`). Absent
/// means `""`: read it with [`mount_path`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MountPath(pub String);

/// The client address as the app should see it (`REMOTE_ADDR`), when it differs from the
/// socket peer: a trusted forwarded header replaced it (the port is then 0), or the FastCGI
/// server read it from `REMOTE_ADDR`. Read it with [`remote_addr`], which falls back to
/// [`PeerAddr`] (the HTTP server sets only that: one extension less per request).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoteAddr(pub SocketAddr);

/// The address of the socket peer that sent the request. Set once by the server, never
/// rewritten: the forwarded-headers filter decides trust from it. Absent on unix sockets and
/// FastCGI, where the peer is the local web server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PeerAddr(pub SocketAddr);

/// The public scheme and host (with port when not the default) the client used, after trusted
/// forwarded headers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PublicUrl {
    /// `http` or `https`.
    pub scheme: String,
    /// `host` or `host:port`, as in a `Host` header.
    pub host: String,
}

/// The authenticated user (`REMOTE_USER`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteUser(pub String);

/// Marks a request whose `PATH_INFO` is `""` (the URI path is then `/`); see the module docs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmptyPathInfo;

/// The path below the mount path (`PATH_INFO`), still percent-encoded as in the URI: `""` when
/// [`EmptyPathInfo`] is set and the URI path is `/`, else the URI path.
pub fn path_info<B>(req: &Request<B>) -> &str {
    let path = req.uri().path();
    if path == "/" && req.extensions().get::<EmptyPathInfo>().is_some() {
        ""
    } else {
        path
    }
}

/// Replace the URI path with `path_info` (percent-encoded; `""` or starting with `/`, a
/// missing leading `/` is added), keeping the scheme, authority and query, and set or clear
/// [`EmptyPathInfo`]. On an error (a character a URI cannot hold) the request is unchanged.
pub fn set_path_info<B>(req: &mut Request<B>, path_info: &str) -> Result<(), http::Error> {
    let query = req.uri().query();
    let mut pq = String::with_capacity(path_info.len() + query.map_or(0, |q| q.len() + 2) + 1);
    if !path_info.starts_with('/') {
        pq.push('/');
    }
    pq.push_str(path_info);
    if let Some(q) = query {
        pq.push('?');
        pq.push_str(q);
    }
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = Some(http::uri::PathAndQuery::try_from(pq)?);
    *req.uri_mut() = http::Uri::from_parts(parts)?;
    if path_info.is_empty() {
        req.extensions_mut().insert(EmptyPathInfo);
    } else {
        req.extensions_mut().remove::<EmptyPathInfo>();
    }
    Ok(())
}

/// The mount path of a request (`""` when none is set).
pub fn mount_path<B>(req: &Request<B>) -> &str {
    req.extensions()
        .get::<MountPath>()
        .map(|m| m.0.as_str())
        .unwrap_or("")
}

/// The client address of a request (`REMOTE_ADDR`): [`RemoteAddr`] when set, else the
/// socket peer ([`PeerAddr`]), else `None` (a unix socket without forwarded headers).
pub fn remote_addr<B>(req: &Request<B>) -> Option<SocketAddr> {
    let ext = req.extensions();
    ext.get::<RemoteAddr>()
        .map(|a| a.0)
        .or_else(|| ext.get::<PeerAddr>().map(|a| a.0))
}

/// The client IP of a request ([`remote_addr`] without the port).
pub fn remote_ip<B>(req: &Request<B>) -> Option<IpAddr> {
    remote_addr(req).map(|a| a.ip())
}

/// The public scheme and host of a request: the [`PublicUrl`] extension when set, else the
/// URI's own scheme and authority, else the `Host` header, else `http` and `localhost`. The
/// scheme's default port is left out (`Host: example.org:80` gives `http://example.org`), as
/// WSGI apps build their URLs (MapProxy's `Request.host`, Paste's `construct_url`,
/// werkzeug).
pub fn public_url<B>(req: &Request<B>) -> PublicUrl {
    let mut p = match req.extensions().get::<PublicUrl>() {
        Some(p) => p.clone(),
        None => {
            let scheme = req.uri().scheme_str().unwrap_or("http").to_string();
            let host = req
                .uri()
                .authority()
                .map(|a| a.as_str().to_string())
                .or_else(|| {
                    req.headers()
                        .get(http::header::HOST)
                        .and_then(|h| h.to_str().ok())
                        .map(str::to_string)
                })
                .unwrap_or_else(|| "localhost".to_string());
            PublicUrl { scheme, host }
        }
    };
    let (name, port) = split_host_port(&p.host);
    if matches!(
        (p.scheme.as_str(), port),
        ("http", Some("80")) | ("https", Some("443"))
    ) {
        p.host.truncate(name.len());
    }
    p
}

/// `host[:port]` split at the port's colon; an IPv6 address in brackets stays whole
/// (`[::1]:8080` gives `("[::1]", Some("8080"))`).
pub fn split_host_port(h: &str) -> (&str, Option<&str>) {
    if h.starts_with('[') {
        if let Some(end) = h.find(']') {
            let (host, rest) = h.split_at(end + 1);
            return (host, rest.strip_prefix(':'));
        }
        return (h, None);
    }
    match h.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => (host, Some(port)),
        _ => (h, None),
    }
}

/// The public URL of the app itself: `scheme://host` + mount path, no trailing `/`.
/// This is what capabilities documents and redirects are built from (never from `PATH_INFO`).
pub fn script_url<B>(req: &Request<B>) -> String {
    let p = public_url(req);
    format!("{}://{}{}", p.scheme, p.host, mount_path(req))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_url_from_extensions_and_headers() {
        let mut req = Request::builder()
            .uri("/x")
            .header("host", "example.org:8080")
            .body(())
            .unwrap();
        assert_eq!(script_url(&req), "http://example.org:8080");
        req.extensions_mut().insert(MountPath("/maps".into()));
        req.extensions_mut().insert(PublicUrl {
            scheme: "https".into(),
            host: "public.example".into(),
        });
        assert_eq!(script_url(&req), "https://public.example/maps");
    }

    #[test]
    fn the_default_port_is_left_out() {
        for (scheme, host, url) in [
            ("http", "example.org:80", "http://example.org"),
            ("https", "example.org:443", "https://example.org"),
            ("https", "example.org:80", "https://example.org:80"),
            ("http", "example.org:443", "http://example.org:443"),
            ("http", "[::1]:80", "http://[::1]"),
            ("http", "[::1]:8080", "http://[::1]:8080"),
            ("http", "example.org", "http://example.org"),
        ] {
            let mut req = Request::builder().uri("/").body(()).unwrap();
            req.extensions_mut().insert(PublicUrl {
                scheme: scheme.into(),
                host: host.into(),
            });
            assert_eq!(script_url(&req), url);
        }
        let req = Request::builder()
            .uri("/x")
            .header("host", "example.org:80")
            .body(())
            .unwrap();
        assert_eq!(script_url(&req), "http://example.org");
        assert_eq!(split_host_port("h"), ("h", None));
        assert_eq!(split_host_port("h:1"), ("h", Some("1")));
        assert_eq!(split_host_port("[::1]:8"), ("[::1]", Some("8")));
        assert_eq!(split_host_port("::1"), ("::1", None));
        assert_eq!(split_host_port("[::1]"), ("[::1]", None));
    }

    #[test]
    fn empty_path_info_is_kept_beside_the_uri() {
        let mut req = Request::builder()
            .uri("http://h.example/foo?a=1")
            .body(())
            .unwrap();
        assert_eq!(path_info(&req), "/foo");
        set_path_info(&mut req, "").unwrap();
        assert_eq!(req.uri().to_string(), "http://h.example/?a=1");
        assert_eq!(path_info(&req), "");
        set_path_info(&mut req, "/").unwrap();
        assert_eq!(path_info(&req), "/");
        set_path_info(&mut req, "").unwrap();
        // A layer that rewrites the URI without knowing the marker makes it void.
        *req.uri_mut() = "/other".parse().unwrap();
        assert_eq!(path_info(&req), "/other");
        set_path_info(&mut req, "x/y").unwrap();
        assert_eq!(req.uri().to_string(), "/x/y");
        assert!(set_path_info(&mut req, "/a b").is_err());
        assert_eq!(req.uri().to_string(), "/x/y");
    }
}
