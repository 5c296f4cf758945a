//! The request target's authority, checked before the app sees the request: the `Host`
//! header (RFC 9112 §3.2), an absolute-form target (`GET http://host/path`, RFC 9112 §3.2.2)
//! and HTTP/2's `:authority` (RFC 9113 §8.3.1). Apps build redirects and public URLs from
//! these, so a value that is not an authority (`evil.example/x?`, `a b@c`, `good@evil.example`)
//! is answered 400 instead of being echoed into a `Location` header.

use http::header::HOST;
use http::request::Parts;
use http::Version;

/// Why a request's authority was refused (the 400 body says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BadHost {
    /// HTTP/1.1 without `Host`.
    Missing,
    /// More than one `Host` header.
    Repeated,
    /// A `Host` value that is not `host[:port]`.
    InvalidHost,
    /// An absolute-form target or `:authority` that is not `host[:port]`.
    InvalidAuthority,
    /// An absolute-form target whose scheme is not http or https.
    Scheme,
    /// HTTP/2 `:authority` and `Host` naming different hosts.
    Mismatch,
}

impl BadHost {
    pub(crate) fn message(self) -> &'static str {
        match self {
            BadHost::Missing => "Bad Request: HTTP/1.1 requires a Host header\n",
            BadHost::Repeated => "Bad Request: more than one Host header\n",
            BadHost::InvalidHost => "Bad Request: invalid Host header\n",
            BadHost::InvalidAuthority => "Bad Request: invalid authority in the request target\n",
            BadHost::Scheme => "Bad Request: only http and https targets are served\n",
            BadHost::Mismatch => "Bad Request: Host differs from :authority\n",
        }
    }
}

/// Check the authority a request names, in its target and its `Host` header(s).
pub(crate) fn check_request(parts: &Parts) -> Result<(), BadHost> {
    let uri = &parts.uri;
    if let Some(scheme) = uri.scheme_str() {
        if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
            return Err(BadHost::Scheme);
        }
    }
    let authority = uri.authority().map(|a| a.as_str());
    if let Some(a) = authority {
        if !valid_authority(a) {
            return Err(BadHost::InvalidAuthority);
        }
    }
    let mut hosts = parts.headers.get_all(HOST).iter();
    match (hosts.next(), hosts.next()) {
        (_, Some(_)) => Err(BadHost::Repeated),
        (Some(h), None) => {
            let h = h.as_bytes();
            if !valid_authority_bytes(h) {
                return Err(BadHost::InvalidHost);
            }
            match authority {
                Some(a)
                    if parts.version == Version::HTTP_2
                        && !a.as_bytes().eq_ignore_ascii_case(h) =>
                {
                    Err(BadHost::Mismatch)
                }
                _ => Ok(()),
            }
        }
        // HTTP/1.0 may leave it out; HTTP/2 says it in `:authority` (or has none to say).
        (None, None) if parts.version == Version::HTTP_11 => Err(BadHost::Missing),
        (None, None) => Ok(()),
    }
}

/// `host [":" port]` as in RFC 3986 §3.2 without userinfo: host is an `[IPv6]` literal or a
/// non-empty reg-name (an IPv4 address is one), of unreserved characters, sub-delims and
/// `%XX` escapes; port is 1 to 5 digits, at most 65535.
pub(crate) fn valid_authority(s: &str) -> bool {
    valid_authority_bytes(s.as_bytes())
}

/// [`valid_authority`] on bytes (a header value need not be UTF-8 to be refused). One pass
/// over a byte table: this runs for every request.
pub(crate) fn valid_authority_bytes(b: &[u8]) -> bool {
    if b.first() == Some(&b'[') {
        return valid_ipv6_authority(b);
    }
    // The port is after the last ':' (a reg-name has none).
    let (host, port) = match b.iter().rposition(|&c| c == b':') {
        Some(i) => (&b[..i], Some(&b[i + 1..])),
        None => (b, None),
    };
    if let Some(p) = port {
        if !valid_port(p) {
            return false;
        }
    }
    !host.is_empty() && reg_name(host)
}

fn valid_ipv6_authority(b: &[u8]) -> bool {
    let Some(end) = b.iter().position(|&c| c == b']') else {
        return false;
    };
    let ok = std::str::from_utf8(&b[1..end])
        .ok()
        .is_some_and(|v6| v6.parse::<std::net::Ipv6Addr>().is_ok());
    ok && match &b[end + 1..] {
        [] => true,
        [b':', port @ ..] => valid_port(port),
        _ => false,
    }
}

/// 1 to 5 digits, at most 65535.
fn valid_port(p: &[u8]) -> bool {
    if p.is_empty() || p.len() > 5 {
        return false;
    }
    let mut n: u32 = 0;
    for &c in p {
        if !c.is_ascii_digit() {
            return false;
        }
        n = n * 10 + u32::from(c - b'0');
    }
    n <= 65535
}

/// Bytes allowed as they are in a reg-name: RFC 3986 unreserved and sub-delims.
const REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut c = 0;
    while c < 256 {
        let b = c as u8;
        t[c] = b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        c += 1;
    }
    t
};

fn reg_name(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if REG_NAME[usize::from(c)] {
            i += 1;
        } else if c == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;

    #[test]
    fn authority_table() {
        let good = [
            "example.org",
            "example.org:8080",
            "localhost:1",
            "127.0.0.1",
            "127.0.0.1:65535",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]:443",
            "xn--bcher-kva.example",
            "a_b-c~d.e",
            "%41bc",
            "a!$&'()*+,;=b",
            "EXAMPLE.ORG",
        ];
        for h in good {
            assert!(valid_authority(h), "refused {h:?}");
        }
        let bad = [
            "",
            ":80",
            "evil.example/x?",
            "evil.example/",
            "a b@c",
            "good@evil.example",
            "user:pw@host",
            "host?",
            "host#frag",
            "host:",
            "host:http",
            "host:65536",
            "host:123456",
            "host:-1",
            "host:80:80",
            "::1",
            "[::1",
            "[::1]x",
            "[::1]:",
            "[not-v6]",
            "[v1.future]",
            "ho\"st",
            "ho<st>",
            "host\\x",
            "ho%4",
            "ho%zz",
            "h\u{e9}",
            "host\t",
            " host",
            "a,b c",
        ];
        for h in bad {
            assert!(!valid_authority(h), "accepted {h:?}");
        }
    }

    fn check(req: Request<()>) -> Result<(), BadHost> {
        check_request(&req.into_parts().0)
    }

    fn get(uri: &str, version: Version, hosts: &[&str]) -> Result<(), BadHost> {
        let mut b = Request::get(uri).version(version);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        check(b.body(()).unwrap())
    }

    #[test]
    fn request_table() {
        use BadHost::*;
        let v11 = Version::HTTP_11;
        let v10 = Version::HTTP_10;
        let v2 = Version::HTTP_2;
        type Case = (
            &'static str,
            Version,
            &'static [&'static str],
            Result<(), BadHost>,
        );
        let cases: &[Case] = &[
            ("/", v11, &["example.org"], Ok(())),
            ("/", v11, &[], Err(Missing)),
            ("/", v10, &[], Ok(())),
            ("/", v11, &["a", "a"], Err(Repeated)),
            ("/", v10, &["a", "b"], Err(Repeated)),
            ("/", v11, &["evil.example/x?"], Err(InvalidHost)),
            ("/", v11, &["a b@c"], Err(InvalidHost)),
            ("/", v11, &["good@evil.example"], Err(InvalidHost)),
            ("/", v10, &[""], Err(InvalidHost)),
            ("http://example.org/x", v11, &["example.org"], Ok(())),
            // absolute-form: the target's authority wins; Host is still required and valid
            ("http://example.org/x", v11, &["other.example"], Ok(())),
            ("http://example.org/x", v11, &[], Err(Missing)),
            ("HTTPS://example.org:8443/x", v11, &["x"], Ok(())),
            ("ftp://evil:21/x", v11, &["x"], Err(Scheme)),
            (
                "http://good@evil.example/x",
                v11,
                &["x"],
                Err(InvalidAuthority),
            ),
            (
                "http://evil.example:99999/x",
                v10,
                &[],
                Err(InvalidAuthority),
            ),
            // HTTP/2: `:authority` becomes the URI's authority
            ("http://example.org/x", v2, &[], Ok(())),
            ("/x", v2, &[], Ok(())),
            ("http://example.org/x", v2, &["EXAMPLE.org"], Ok(())),
            ("http://example.org/x", v2, &["evil.example"], Err(Mismatch)),
            ("http://u@example.org/x", v2, &[], Err(InvalidAuthority)),
            ("ftp://example.org/x", v2, &[], Err(Scheme)),
        ];
        for (uri, version, hosts, want) in cases {
            assert_eq!(
                get(uri, *version, hosts),
                *want,
                "{uri} {version:?} {hosts:?}"
            );
        }
        // a Host value that is not even text
        let req = Request::get("/")
            .header(HOST, http::HeaderValue::from_bytes(b"h\xffx").unwrap())
            .body(())
            .unwrap();
        assert_eq!(check(req), Err(InvalidHost));
    }
}
