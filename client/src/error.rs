//! [`ClientError`] and its [`ClientErrorKind`].

use std::error::Error as StdError;
use std::fmt;
use std::io;

use http::StatusCode;

use mapproxy_serve_core::BoxError;

/// What went wrong, in the terms a gateway answers with (see [`ClientError::gateway_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ClientErrorKind {
    /// The client's configuration is unusable: a CA file that cannot be read or holds no
    /// certificate, a bad user agent. Raised by [`HttpClient::new`](crate::HttpClient::new)
    /// and [`HttpClient::shared`](crate::HttpClient::shared).
    Config,
    /// The URL is not an absolute `http://` or `https://` URL with a host.
    InvalidUrl,
    /// No connection could be made (name resolution, refused, reset during the handshake).
    Connect,
    /// Connecting (name resolution, TCP and the TLS handshake) took longer than
    /// [`ClientConfig::connect_timeout`](crate::ClientConfig::connect_timeout).
    ConnectTimeout,
    /// The server's certificate was rejected (unknown issuer, expired, wrong name, ...).
    Certificate,
    /// Another TLS failure (no common protocol version or cipher suite, bad record, ...).
    Tls,
    /// No response head within [`ClientConfig::header_timeout`](crate::ClientConfig::header_timeout).
    HeaderTimeout,
    /// The whole exchange, response body included, took longer than
    /// [`ClientConfig::request_timeout`](crate::ClientConfig::request_timeout).
    RequestTimeout,
    /// No piece of the response body within
    /// [`ClientConfig::read_timeout`](crate::ClientConfig::read_timeout) while it was read.
    ReadTimeout,
    /// The exchange failed after connecting: the connection closed before a response, a
    /// malformed response (also one with both `Content-Length` and `Transfer-Encoding`), an
    /// error from the request body.
    Request,
    /// Reading the response body failed (the connection closed or broke mid-body).
    Body,
    /// The response body is larger than the limit given to [`HttpClient::get`](crate::HttpClient::get).
    BodyTooLarge,
    /// [`HttpClient::get`](crate::HttpClient::get) got a status other than 2xx.
    Status(StatusCode),
}

impl ClientErrorKind {
    /// A short description, as used at the start of messages.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Config => "bad HTTP client configuration",
            Self::InvalidUrl => "invalid URL",
            Self::Connect => "connection failed",
            Self::ConnectTimeout => "connect timeout",
            Self::Certificate => "server certificate rejected",
            Self::Tls => "TLS error",
            Self::HeaderTimeout => "timeout waiting for the response head",
            Self::RequestTimeout => "request timeout",
            Self::ReadTimeout => "timeout reading the response body",
            Self::Request => "request failed",
            Self::Body => "error reading the response body",
            Self::BodyTooLarge => "response body too large",
            Self::Status(_) => "unexpected HTTP status",
        }
    }
}

impl fmt::Display for ClientErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error of [`HttpClient`](crate::HttpClient): a [kind](ClientErrorKind), a message that
/// names the URL (scheme, host, port and path; never the query or user info) or the file at
/// fault, and the underlying error as [`source`](StdError::source).
pub struct ClientError {
    kind: ClientErrorKind,
    message: String,
    source: Option<BoxError>,
}

impl ClientError {
    pub(crate) fn new(kind: ClientErrorKind, message: impl Into<String>) -> Self {
        ClientError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    pub(crate) fn with_source(mut self, source: impl Into<BoxError>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ClientErrorKind {
        self.kind
    }

    /// The full message (also what `Display` shows).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// True for the four timeouts: connect, response head, whole request, body read.
    pub fn is_timeout(&self) -> bool {
        matches!(
            self.kind,
            ClientErrorKind::ConnectTimeout
                | ClientErrorKind::HeaderTimeout
                | ClientErrorKind::RequestTimeout
                | ClientErrorKind::ReadTimeout
        )
    }

    /// The status a gateway answers with for this error: 504 for the timeouts, 500 for a bad
    /// configuration, 502 for everything else.
    pub fn gateway_status(&self) -> StatusCode {
        match self.kind {
            ClientErrorKind::ConnectTimeout
            | ClientErrorKind::HeaderTimeout
            | ClientErrorKind::RequestTimeout
            | ClientErrorKind::ReadTimeout => StatusCode::GATEWAY_TIMEOUT,
            ClientErrorKind::Config => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_GATEWAY,
        }
    }
}

impl fmt::Debug for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("ClientError");
        d.field("kind", &self.kind).field("message", &self.message);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl StdError for ClientError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_ref()
            .map(|e| &**e as &(dyn StdError + 'static))
    }
}

/// The first error of type `T` in `err`'s chain. Unlike a plain `source()` walk this also
/// looks inside `io::Error`s (whose `source()` skips the error they wrap).
pub(crate) fn find_in_chain<'a, T: StdError + 'static>(
    err: &'a (dyn StdError + 'static),
) -> Option<&'a T> {
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(t) = e.downcast_ref::<T>() {
            return Some(t);
        }
        if let Some(inner) = e.downcast_ref::<io::Error>().and_then(io::Error::get_ref) {
            cur = Some(inner as &(dyn StdError + 'static));
            continue;
        }
        cur = e.source();
    }
    None
}

/// `err` and its sources as one line, `a: b: c`, repeated texts left out.
pub(crate) fn chain_text(err: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let text = e.to_string();
        if !text.is_empty() && !out.ends_with(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        cur = e.source();
    }
    out
}
