//! HTTP helpers for tests that talk to a served binary: one request per connection with the
//! path sent exactly as given, responses collected, Basic credentials, a free port.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};

/// A response, its body collected.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (the echo app's answer).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header as text (`""` when missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Send one request on a new HTTP/1.1 connection. The path is sent exactly as given (no
/// `..` or `%2e` normalisation, unlike URL-parsing clients); `Host` defaults to the address.
/// Panics when there is no whole answer within 30 s.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    send_within(addr, method, path, headers, body, Duration::from_secs(30))
        .await
        .unwrap_or_else(|| panic!("{method} {path}: no answer within 30 s"))
}

/// [`send`], `None` when the whole answer did not come within `limit`.
pub async fn send_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
    limit: Duration,
) -> Option<Resp> {
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .expect("connect timeout")
    .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", addr.to_string());
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body.into())).expect("request");
    tokio::time::timeout(limit, async {
        let res = sender.send_request(req).await.expect("send request");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await
    .ok()
}

/// `GET path` with headers.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    send(addr, "GET", path, headers, Bytes::new()).await
}

/// `Authorization: Basic ...` for `user:password`.
pub fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// A loopback port that was free a moment ago (for peers that cannot listen on port 0).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}
