//! CGI variables to an [`http::Request`], and a response head to CGI's `Status:` form.
//!
//! | CGI variable                        | request                                          |
//! |-------------------------------------|--------------------------------------------------|
//! | `REQUEST_METHOD`                    | method (GET when absent)                          |
//! | `PATH_INFO` + `QUERY_STRING`        | URI (`PATH_INFO` is decoded: re-encoded here)     |
//! | `SCRIPT_NAME`                       | [`MountPath`] (trailing `/` stripped)             |
//! | `HTTP_*`                            | headers (`HTTP_X_FOO` → `x-foo`)                  |
//! | `CONTENT_TYPE`, `CONTENT_LENGTH`    | `content-type`, `content-length`                  |
//! | `HTTPS=on`, `REQUEST_SCHEME`        | [`PublicUrl`] scheme                              |
//! | `HTTP_HOST`, else `SERVER_NAME`/`SERVER_PORT` | [`PublicUrl`] host                      |
//! | `REMOTE_ADDR`, `REMOTE_PORT`        | [`RemoteAddr`]                                    |
//! | `REMOTE_USER`                       | [`RemoteUser`], only with [`Trust::remote_user`]  |
//! | `SERVER_PROTOCOL`                   | version                                           |

use std::net::{IpAddr, SocketAddr};

use bytes::{BufMut, Bytes, BytesMut};
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, TRANSFER_ENCODING};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use percent_encoding::{percent_encode, AsciiSet, CONTROLS};

use crate::environ::{EmptyPathInfo, MountPath, PublicUrl, RemoteAddr, RemoteUser};
use crate::server::http::host::valid_authority;

// Bytes of a decoded `PATH_INFO` that must be escaped again in a URI path: the core crate's
// one set for URL paths.
use mapproxy_serve_core::path::PATH;

/// Bytes of a raw `QUERY_STRING` that `http::Uri` would refuse; `%` is kept (already encoded).
const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// A request that cannot be built from its variables: answered 400, the app is not called.
#[derive(Debug, PartialEq, Eq)]
pub struct BadRequest(pub String);

/// The parts of a request taken from the CGI variables; the body is added by the caller.
#[derive(Debug)]
pub struct CgiRequest {
    /// The request with an empty body.
    pub request: Request<()>,
    /// `CONTENT_LENGTH`, when given and valid.
    pub content_length: Option<u64>,
}

fn text(v: &[u8]) -> Option<&str> {
    std::str::from_utf8(v).ok().map(str::trim)
}

/// Which variables are believed. Anyone who can connect to the socket can send any variable;
/// the default believes none of those that name a user.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// `REMOTE_USER` becomes [`RemoteUser`] (the web server authenticated the request, and
    /// only it can reach the socket). Off: the variable is ignored.
    pub remote_user: bool,
}

/// Build the request head from the PARAMS name-value pairs, believing no `REMOTE_USER`.
// The server calls `build_request_with`; this is the entry point for callers without a
// server configuration (tests, fuzzing).
pub fn build_request(params: &[(Bytes, Bytes)]) -> Result<CgiRequest, BadRequest> {
    build_request_with(params, Trust::default())
}

/// [`build_request`] with `REMOTE_USER` believed or not, as `trust` says.
pub fn build_request_with(
    params: &[(Bytes, Bytes)],
    trust: Trust,
) -> Result<CgiRequest, BadRequest> {
    let mut method = Method::GET;
    let mut path_info: &[u8] = b"";
    let mut query: &[u8] = b"";
    let mut script_name: &[u8] = b"";
    let mut version = Version::HTTP_11;
    let mut content_type: Option<&[u8]> = None;
    let mut content_length: Option<u64> = None;
    let mut https = false;
    let mut request_scheme: Option<&str> = None;
    let mut http_host: Option<&str> = None;
    let mut server_name: Option<&str> = None;
    let mut server_port: Option<&str> = None;
    let mut remote_addr: Option<&str> = None;
    let mut remote_port: Option<&str> = None;
    let mut remote_user: Option<&str> = None;
    let mut headers = http::HeaderMap::new();

    for (name, value) in params {
        match &name[..] {
            b"REQUEST_METHOD" => {
                method = Method::from_bytes(value).map_err(|_| {
                    BadRequest(format!(
                        "invalid REQUEST_METHOD {:?}",
                        String::from_utf8_lossy(value)
                    ))
                })?;
            }
            b"PATH_INFO" => path_info = value,
            b"QUERY_STRING" => query = value,
            b"SCRIPT_NAME" => script_name = value,
            b"SERVER_PROTOCOL" => {
                version = match &value[..] {
                    b"HTTP/1.0" => Version::HTTP_10,
                    b"HTTP/0.9" => Version::HTTP_09,
                    b"HTTP/2" | b"HTTP/2.0" => Version::HTTP_2,
                    b"HTTP/3" | b"HTTP/3.0" => Version::HTTP_3,
                    _ => Version::HTTP_11,
                }
            }
            b"CONTENT_TYPE" => content_type = Some(value),
            b"CONTENT_LENGTH" => {
                let v = text(value).unwrap_or("x");
                if !v.is_empty() {
                    content_length = Some(
                        v.parse()
                            .map_err(|_| BadRequest(format!("invalid CONTENT_LENGTH {v:?}")))?,
                    );
                }
            }
            b"HTTPS" => {
                https = text(value).is_some_and(|v| v.eq_ignore_ascii_case("on") || v == "1");
            }
            b"REQUEST_SCHEME" => request_scheme = text(value),
            b"SERVER_NAME" => server_name = text(value),
            b"SERVER_PORT" => server_port = text(value),
            b"REMOTE_ADDR" => remote_addr = text(value),
            b"REMOTE_PORT" => remote_port = text(value),
            b"REMOTE_USER" if trust.remote_user => remote_user = text(value),
            b"REMOTE_USER" => {}
            n => {
                let Some(h) = n.strip_prefix(b"HTTP_") else {
                    continue;
                };
                // CGI says CONTENT_TYPE / CONTENT_LENGTH; some servers also send these.
                if h == b"CONTENT_TYPE" || h == b"CONTENT_LENGTH" {
                    continue;
                }
                let lower: Vec<u8> = h
                    .iter()
                    .map(|b| match b {
                        b'_' => b'-',
                        b => b.to_ascii_lowercase(),
                    })
                    .collect();
                let (Ok(hn), Ok(hv)) = (
                    HeaderName::from_bytes(&lower),
                    HeaderValue::from_bytes(value),
                ) else {
                    log::debug!(
                        target: "mapproxy_serve.server.fcgi",
                        "dropping invalid header variable {}",
                        String::from_utf8_lossy(n)
                    );
                    continue;
                };
                if hn == http::header::HOST {
                    http_host = text(value);
                }
                // The body handed to the app is already de-chunked. A variable sent twice:
                // the last one wins (as in flup and PHP).
                if hn != TRANSFER_ENCODING {
                    headers.insert(hn, hv);
                }
            }
        }
    }

    if let Some(ct) = content_type.filter(|c| !c.is_empty()) {
        let v =
            HeaderValue::from_bytes(ct).map_err(|_| BadRequest("invalid CONTENT_TYPE".into()))?;
        headers.insert(CONTENT_TYPE, v);
    }
    if let Some(n) = content_length {
        headers.insert(CONTENT_LENGTH, HeaderValue::from(n));
    }

    let uri = build_uri(path_info, query)?;
    let mut request = Request::new(());
    *request.method_mut() = method;
    *request.uri_mut() = uri;
    *request.version_mut() = version;
    *request.headers_mut() = headers;

    let ext = request.extensions_mut();
    let mount = String::from_utf8_lossy(script_name);
    ext.insert(MountPath(mount.trim_end_matches('/').to_string()));
    // `/mapproxy` (`PATH_INFO` "") is not `/mapproxy/` (`PATH_INFO` "/"), as in WSGI. A
    // trailing `/` of SCRIPT_NAME, cut from the mount path above, is the path's `/`.
    if path_info.is_empty() && !script_name.ends_with(b"/") {
        ext.insert(EmptyPathInfo);
    }

    let scheme = if https {
        "https"
    } else {
        match request_scheme {
            Some(s) if s.eq_ignore_ascii_case("https") => "https",
            _ => "http",
        }
    };
    let host = match http_host.filter(|h| !h.is_empty()) {
        // the same check as the HTTP server's: the host ends up in redirects
        Some(h) if !valid_authority(h) => {
            return Err(BadRequest(format!("invalid Host header {h:?}")));
        }
        Some(h) => h.to_string(),
        None => server_host(server_name, server_port, scheme),
    };
    ext.insert(PublicUrl {
        scheme: scheme.to_string(),
        host,
    });
    if let Some(ip) = remote_addr.and_then(|a| a.parse::<IpAddr>().ok()) {
        let port = remote_port.and_then(|p| p.parse().ok()).unwrap_or(0);
        ext.insert(RemoteAddr(SocketAddr::new(ip, port)));
    }
    if let Some(user) = remote_user.filter(|u| !u.is_empty()) {
        ext.insert(RemoteUser(user.to_string()));
    }
    Ok(CgiRequest {
        request,
        content_length,
    })
}

/// `SERVER_NAME[:SERVER_PORT]`, the port only when not the scheme's default.
fn server_host(name: Option<&str>, port: Option<&str>, scheme: &str) -> String {
    let name = match name.filter(|n| !n.is_empty()) {
        Some(n) if n.contains(':') && !n.starts_with('[') => format!("[{n}]"),
        Some(n) => n.to_string(),
        None => "localhost".to_string(),
    };
    let default = if scheme == "https" { "443" } else { "80" };
    match port.filter(|p| !p.is_empty() && *p != default) {
        Some(p) => format!("{name}:{p}"),
        None => name,
    }
}

/// `PATH_INFO` (decoded by the web server) re-encoded, plus `?QUERY_STRING`.
pub fn build_uri(path_info: &[u8], query: &[u8]) -> Result<Uri, BadRequest> {
    let mut s = String::with_capacity(path_info.len() + query.len() + 2);
    if !path_info.starts_with(b"/") {
        s.push('/');
    }
    s.extend(percent_encode(path_info, PATH));
    if !query.is_empty() {
        s.push('?');
        s.extend(percent_encode(query, QUERY));
    }
    s.parse::<Uri>().map_err(|e| {
        BadRequest(format!(
            "cannot build a URI from PATH_INFO/QUERY_STRING: {e}"
        ))
    })
}

/// What the response head needs to know about the request.
#[derive(Clone, Copy, Debug)]
pub struct HeadInfo {
    /// A HEAD request: no body goes out.
    pub head_request: bool,
}

/// `Status: 200 OK\r\n`, the headers (each `Set-Cookie` on its own line), `\r\n`.
/// Returns the head and whether a body may follow.
pub fn response_head<B: http_body::Body>(res: &Response<B>, info: HeadInfo) -> (Bytes, bool) {
    let status = res.status();
    let mut out = BytesMut::with_capacity(256);
    out.put_slice(b"Status: ");
    out.put_slice(status.as_str().as_bytes());
    if let Some(reason) = status.canonical_reason() {
        out.put_u8(b' ');
        out.put_slice(reason.as_bytes());
    }
    out.put_slice(b"\r\n");
    let body_allowed = !(info.head_request
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    for (name, value) in res.headers() {
        if name == TRANSFER_ENCODING || name == http::header::CONNECTION {
            continue;
        }
        out.put_slice(name.as_str().as_bytes());
        out.put_slice(b": ");
        out.put_slice(value.as_bytes());
        out.put_slice(b"\r\n");
    }
    if !res.headers().contains_key(CONTENT_LENGTH)
        && !info.head_request
        && status != StatusCode::NO_CONTENT
        && status != StatusCode::NOT_MODIFIED
        && !status.is_informational()
    {
        if let Some(n) = res.body().size_hint().exact() {
            out.put_slice(b"content-length: ");
            out.put_slice(n.to_string().as_bytes());
            out.put_slice(b"\r\n");
        }
    }
    out.put_slice(b"\r\n");
    (out.freeze(), body_allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Vec<(Bytes, Bytes)> {
        pairs
            .iter()
            .map(|(n, v)| {
                (
                    Bytes::copy_from_slice(n.as_bytes()),
                    Bytes::copy_from_slice(v.as_bytes()),
                )
            })
            .collect()
    }

    #[test]
    fn empty_path_info_is_marked() {
        let base = [("REQUEST_METHOD", "GET"), ("SCRIPT_NAME", "/mapproxy")];
        let r = build_request(&p(&[base[0], base[1], ("PATH_INFO", "")])).unwrap();
        assert_eq!(crate::environ::path_info(&r.request), "");
        assert_eq!(r.request.uri().path(), "/");
        let r = build_request(&p(&base)).unwrap();
        assert_eq!(crate::environ::path_info(&r.request), "");
        let r = build_request(&p(&[base[0], base[1], ("PATH_INFO", "/")])).unwrap();
        assert_eq!(crate::environ::path_info(&r.request), "/");
        let r = build_request(&p(&[base[0], ("SCRIPT_NAME", "/mapproxy/")])).unwrap();
        assert_eq!(crate::environ::path_info(&r.request), "/");
    }

    #[test]
    fn nginx_style_variables() {
        let r = build_request(&p(&[
            ("REQUEST_METHOD", "POST"),
            ("SCRIPT_NAME", "/mapproxy/"),
            ("PATH_INFO", "/service/a b%"),
            ("QUERY_STRING", "SERVICE=WMS&x=%20"),
            ("CONTENT_TYPE", "text/xml"),
            ("CONTENT_LENGTH", "12"),
            ("HTTP_X_FORWARDED_PROTO", "https"),
            ("HTTP_COOKIE", "a=1"),
            ("HTTP_TRANSFER_ENCODING", "chunked"),
            ("HTTPS", "on"),
            ("SERVER_NAME", "example.org"),
            ("SERVER_PORT", "443"),
            ("REMOTE_ADDR", "10.0.0.9"),
            ("REMOTE_PORT", "5555"),
            ("SERVER_PROTOCOL", "HTTP/1.0"),
        ]))
        .unwrap();
        let req = r.request;
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.uri(), "/service/a%20b%25?SERVICE=WMS&x=%20");
        assert_eq!(req.version(), Version::HTTP_10);
        assert_eq!(req.headers()["x-forwarded-proto"], "https");
        assert_eq!(req.headers()["content-type"], "text/xml");
        assert_eq!(req.headers()["content-length"], "12");
        assert!(req.headers().get("transfer-encoding").is_none());
        assert_eq!(r.content_length, Some(12));
        let ext = req.extensions();
        assert_eq!(ext.get::<MountPath>().unwrap().0, "/mapproxy");
        assert_eq!(
            ext.get::<PublicUrl>().unwrap(),
            &PublicUrl {
                scheme: "https".into(),
                host: "example.org".into()
            }
        );
        assert_eq!(
            ext.get::<RemoteAddr>().unwrap().0,
            "10.0.0.9:5555".parse().unwrap()
        );
    }

    #[test]
    fn invalid_host_header_is_a_bad_request() {
        for h in ["evil.example/x?", "a b@c", "good@evil.example", "h:x"] {
            let e = build_request(&p(&[("HTTP_HOST", h)])).unwrap_err();
            assert!(e.0.contains("invalid Host"), "{h}: {e:?}");
        }
        assert!(build_request(&p(&[("HTTP_HOST", "[::1]:81")])).is_ok());
    }

    #[test]
    fn host_header_wins_and_defaults() {
        let r = build_request(&p(&[
            ("HTTP_HOST", "maps.example:8080"),
            ("SERVER_NAME", "ignored"),
            ("REQUEST_SCHEME", "http"),
        ]))
        .unwrap();
        assert_eq!(r.request.uri(), "/");
        assert_eq!(r.request.method(), Method::GET);
        let pu = r.request.extensions().get::<PublicUrl>().unwrap();
        assert_eq!(pu.host, "maps.example:8080");
        let r = build_request(&p(&[("SERVER_NAME", "::1"), ("SERVER_PORT", "8080")])).unwrap();
        let pu = r.request.extensions().get::<PublicUrl>().unwrap();
        assert_eq!(pu.host, "[::1]:8080");
        assert!(r.request.extensions().get::<RemoteAddr>().is_none());
    }

    #[test]
    fn remote_user_is_believed_only_when_trusted() {
        let user = |vars: &[(&str, &str)], trust| {
            let r = build_request_with(&p(vars), trust).unwrap();
            r.request
                .extensions()
                .get::<RemoteUser>()
                .map(|u| u.0.clone())
        };
        let trusted = Trust { remote_user: true };
        let forged = [("REMOTE_USER", "alice")];
        assert_eq!(user(&forged, Trust::default()), None);
        assert_eq!(
            build_request(&p(&forged))
                .unwrap()
                .request
                .extensions()
                .get::<RemoteUser>(),
            None
        );
        assert_eq!(user(&forged, trusted), Some("alice".into()));
        assert_eq!(user(&[("REMOTE_USER", " ")], trusted), None);
        // a header of that name is a header, never the user
        assert_eq!(user(&[("HTTP_REMOTE_USER", "alice")], trusted), None);
    }

    #[test]
    fn bad_variables_are_400() {
        assert!(build_request(&p(&[("REQUEST_METHOD", "G E T")])).is_err());
        assert!(build_request(&p(&[("CONTENT_LENGTH", "-1")])).is_err());
        assert!(build_request(&p(&[("CONTENT_LENGTH", "")])).is_ok());
    }

    #[test]
    fn non_utf8_path_info_is_escaped() {
        let u = build_uri(b"/caf\xe9/#x?", b"").unwrap();
        assert_eq!(u, "/caf%E9/%23x%3F");
        let u = build_uri(b"", b"a=<b>").unwrap();
        assert_eq!(u, "/?a=%3Cb%3E");
    }

    #[test]
    fn head_has_status_and_each_cookie() {
        let res = Response::builder()
            .status(404)
            .header("set-cookie", "a=1")
            .header("set-cookie", "b=2")
            .body(http_body_util::Full::new(Bytes::from_static(b"nope")))
            .unwrap();
        let (head, body) = response_head(
            &res,
            HeadInfo {
                head_request: false,
            },
        );
        assert!(body);
        assert_eq!(
            &head[..],
            b"Status: 404 Not Found\r\nset-cookie: a=1\r\nset-cookie: b=2\r\ncontent-length: 4\r\n\r\n"
        );
    }
}
