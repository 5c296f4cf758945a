//! One shared, pooled HTTP/HTTPS client for every factory of mapproxy-serve.
//!
//! [`HttpClient`] is hyper-util's legacy `Client` (a pool of kept-alive HTTP/1.1 connections)
//! over an HTTPS connector (hyper-rustls, rustls with the *ring* provider), with:
//!
//! - **Trust**: the system's CA certificates, loaded once per process (Mozilla's compiled-in
//!   roots when none can be loaded), plus those of [`ClientConfig::ca_file`]; or no
//!   certificate check at all with [`ClientConfig::insecure`] (MapProxy's
//!   `http.ssl_no_cert_checks`: **insecure**, anyone on the path can impersonate the server).
//! - **Timeouts**, each with its own [`ClientErrorKind`]: connecting (name resolution, TCP
//!   and TLS handshake: [`ConnectTimeout`](ClientErrorKind::ConnectTimeout)), waiting for the
//!   response head ([`HeaderTimeout`](ClientErrorKind::HeaderTimeout)) and the whole
//!   exchange, body included ([`RequestTimeout`](ClientErrorKind::RequestTimeout): the
//!   [`ResponseBody`] errors when the deadline passes while it streams or stalls), and each
//!   wait for the next piece of the body ([`ReadTimeout`](ClientErrorKind::ReadTimeout): a
//!   server that goes silent mid-body).
//!   [`ClientError::gateway_status`] maps them to 504 and the other failures to 502.
//! - **Framing**: a response with both `Content-Length` and `Transfer-Encoding` (a request
//!   smuggling shape: the two disagree on where the body ends) is refused with
//!   [`ClientErrorKind::Request`] (502), and its connection is not used again.
//! - **Sharing**: [`HttpClient::shared`] hands out the process-wide client of a
//!   configuration, so every factory with equal settings uses one pool. Cloning an
//!   [`HttpClient`] clones an `Arc`.
//!
//! Requests take any body of [`Bytes`] (the project's [`Body`] is passed through without a
//! second box); responses come back as a [`ResponseBody`], which
//! [`into_body`](ResponseBody::into_body) turns into a [`Body`]. For small fetches (tiles),
//! [`HttpClient::get`] returns the whole body, up to a size limit.
//!
//! The futures and bodies must run on a Tokio runtime with time and I/O enabled.
//!
//! ```no_run
//! use std::time::Duration;
//! use bytes::Bytes;
//! use http_body_util::Empty;
//! use mapproxy_serve_client::{Body, ClientConfig, ClientErrorKind, HttpClient};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = ClientConfig {
//!     request_timeout: Some(Duration::from_secs(30)),
//!     ca_file: Some("/etc/mapproxy/upstream-ca.pem".into()),
//!     ..ClientConfig::default()
//! };
//! // Every call with an equal config gets the same pool.
//! let client = HttpClient::shared(&config)?;
//!
//! // A small fetch: the whole body, at most 10 MiB, a 2xx status or an error.
//! match client.get("https://tiles.example.org/3/4/2.png", 10 << 20).await {
//!     Ok(png) => println!("{} bytes", png.len()),
//!     Err(e) if e.kind() == ClientErrorKind::Status(http::StatusCode::NOT_FOUND) => {}
//!     Err(e) => return Err(e.into()), // e.gateway_status(): 504 for timeouts, else 502
//! }
//!
//! // Streaming: any request body; the response body boxes into the project's Body.
//! let req = http::Request::get("https://wms.example.org/service?REQUEST=GetCapabilities")
//!     .body(Empty::<Bytes>::new())?;
//! let (parts, body) = client.request(req).await?.into_parts();
//! let body: Body = body.into_body();
//! # let _ = (parts, body);
//! # Ok(())
//! # }
//! ```

mod body;
mod connector;
mod error;
mod tls;

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::{HeaderValue, USER_AGENT};
use http::uri::Scheme;
use http::{Request, Response, Uri};
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::time::Instant;

pub use body::ResponseBody;
pub use error::{ClientError, ClientErrorKind};

use connector::{ConnectFailure, TimeoutConnector};
use error::{chain_text, find_in_chain};

/// The longest error body [`HttpClient::get`] reads to keep the connection.
const DRAIN_LIMIT: u64 = 16 * 1024;

pub use mapproxy_serve_core::{Body, BoxError};

/// Settings of an [`HttpClient`]. Equal settings share one client in [`HttpClient::shared`].
///
/// `None` for a timeout means no limit.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClientConfig {
    /// Limit on connecting: name resolution, TCP connect and TLS handshake together
    /// (default 10 s). Errors with [`ClientErrorKind::ConnectTimeout`].
    pub connect_timeout: Option<Duration>,
    /// Limit from the start of a request to its response head, connecting and sending the
    /// request included (default 60 s). Errors with [`ClientErrorKind::HeaderTimeout`]
    /// (also when it passes while still connecting).
    pub header_timeout: Option<Duration>,
    /// Limit on the whole exchange, from the start of the request to the end of the response
    /// body (default none). Errors with [`ClientErrorKind::RequestTimeout`], from
    /// [`HttpClient::request`] or later from the [`ResponseBody`].
    pub request_timeout: Option<Duration>,
    /// Limit on each wait for the next piece of the response body, counted while the body is
    /// being read (a reader that pauses does not use it up): a server that goes silent
    /// mid-body is cut after this long (default 60 s). The [`ResponseBody`] errors with
    /// [`ClientErrorKind::ReadTimeout`] and the connection is closed.
    pub read_timeout: Option<Duration>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Accept any server certificate (MapProxy's `http.ssl_no_cert_checks`). **Insecure**:
    /// only the handshake signature is still checked against the certificate's key, so anyone
    /// on the path can impersonate the server.
    pub insecure: bool,
    /// How long an idle connection stays in the pool (default 90 s; `None`: no limit).
    pub pool_idle_timeout: Option<Duration>,
    /// At most this many idle connections per host are kept (default: no limit).
    pub pool_max_idle_per_host: usize,
    /// `User-Agent` sent with requests that have none (default: none sent).
    pub user_agent: Option<String>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            connect_timeout: Some(Duration::from_secs(10)),
            header_timeout: Some(Duration::from_secs(60)),
            request_timeout: None,
            read_timeout: Some(Duration::from_secs(60)),
            ca_file: None,
            insecure: false,
            pool_idle_timeout: Some(Duration::from_secs(90)),
            pool_max_idle_per_host: usize::MAX,
            user_agent: None,
        }
    }
}

/// A pooled HTTP/1.1 client for `http://` and `https://` URLs. See the [crate docs](crate).
///
/// Cheap to clone (an `Arc`); clones share the pool.
#[derive(Clone)]
pub struct HttpClient {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client<TimeoutConnector, Body>,
    config: ClientConfig,
    user_agent: Option<HeaderValue>,
}

/// What [`HttpClient::shared`] keys its clients by: the settings, and the CA file's contents
/// as read then (so a CA file changed on disk gets a new client on the next call).
#[derive(PartialEq, Eq, Hash)]
struct SharedKey {
    config: ClientConfig,
    ca_pem: Option<Vec<u8>>,
}

impl HttpClient {
    /// A new client with its own pool. Fails ([`ClientErrorKind::Config`]) when the CA file
    /// cannot be read or holds no certificate, or the user agent is not a valid header value.
    pub fn new(config: &ClientConfig) -> Result<Self, ClientError> {
        let ca_pem = match &config.ca_file {
            Some(path) => Some(tls::read_ca_file(path)?),
            None => None,
        };
        Self::build(config, ca_pem.as_deref())
    }

    /// The process-wide client for this configuration: the first call builds it (as
    /// [`new`](Self::new)), later calls with an equal configuration (and CA file contents)
    /// return a clone of it, sharing its pool. Clients stay for the life of the process.
    ///
    /// The CA file is read at every call (to notice changes); its errors are returned as by
    /// [`new`](Self::new).
    pub fn shared(config: &ClientConfig) -> Result<Self, ClientError> {
        static SHARED: OnceLock<Mutex<HashMap<SharedKey, HttpClient>>> = OnceLock::new();
        let ca_pem = match &config.ca_file {
            Some(path) => Some(tls::read_ca_file(path)?),
            None => None,
        };
        let key = SharedKey {
            config: config.clone(),
            ca_pem,
        };
        let mut map = SHARED
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = map.get(&key) {
            return Ok(client.clone());
        }
        let client = Self::build(config, key.ca_pem.as_deref())?;
        map.insert(key, client.clone());
        Ok(client)
    }

    fn build(config: &ClientConfig, ca_pem: Option<&[u8]>) -> Result<Self, ClientError> {
        let user_agent = match &config.user_agent {
            Some(ua) => Some(HeaderValue::from_str(ua).map_err(|e| {
                ClientError::new(
                    ClientErrorKind::Config,
                    format!("user agent {ua:?} is not a valid header value"),
                )
                .with_source(e)
            })?),
            None => None,
        };
        let ca = match (&config.ca_file, ca_pem) {
            (Some(path), Some(pem)) => Some((path.as_path(), pem)),
            _ => None,
        };
        let tls = tls::client_config(ca, config.insecure)?;
        let connector = TimeoutConnector::new(tls, config.connect_timeout);
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(config.pool_idle_timeout)
            .pool_max_idle_per_host(config.pool_max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .build(connector);
        Ok(HttpClient {
            inner: Arc::new(Inner {
                client,
                config: config.clone(),
                user_agent,
            }),
        })
    }

    /// The configuration this client was built with.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// True when both are the same client (clones of one another): they share one pool.
    pub fn same_pool(&self, other: &HttpClient) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }

    /// Sends `req` (an absolute `http://` or `https://` URI) and returns the response once
    /// its head has arrived; the body streams from the connection afterwards, under the
    /// request deadline. A `Host` header is added when missing, and the configured
    /// `User-Agent` when the request has none.
    ///
    /// `B` can be any body of [`Bytes`]; the project's [`Body`] is used as it is.
    pub fn request<B>(
        &self,
        req: Request<B>,
    ) -> impl Future<Output = Result<Response<ResponseBody>, ClientError>> + Send + 'static
    where
        B: http_body::Body<Data = Bytes> + Send + 'static,
        B::Error: Into<BoxError>,
    {
        let inner = self.inner.clone();
        let prepared = prepare(&inner, req);
        async move {
            // The limits count from the first poll, not from building the future.
            let start = Instant::now();
            let (mut req, url) = prepared?;
            // To keep a connection that answered badly out of the pool.
            let connection = capture_connection(&mut req);
            let config = &inner.config;
            let request_deadline = deadline(start, config.request_timeout);
            let header_deadline = deadline(start, config.header_timeout);
            // Whichever limit comes first bounds the wait for the head.
            let first = match (request_deadline, header_deadline) {
                (Some(r), Some(h)) if r <= h => Some((r, ClientErrorKind::RequestTimeout)),
                (_, Some(h)) => Some((h, ClientErrorKind::HeaderTimeout)),
                (Some(r), None) => Some((r, ClientErrorKind::RequestTimeout)),
                (None, None) => None,
            };
            let sending = inner.client.request(req);
            let result = match first {
                Some((at, kind)) => match tokio::time::timeout_at(at, sending).await {
                    Ok(result) => result,
                    Err(_) => {
                        let limit = match kind {
                            ClientErrorKind::RequestTimeout => config.request_timeout,
                            _ => config.header_timeout,
                        };
                        return Err(ClientError::new(
                            kind,
                            format!(
                                "{kind} ({url}): no response head after {:?}",
                                limit.unwrap_or_default()
                            ),
                        ));
                    }
                },
                None => sending.await,
            };
            let response = result.map_err(|e| classify(e, &url))?;
            if let Err(e) = check_framing(response.headers(), &url) {
                if let Some(c) = connection.connection_metadata().as_ref() {
                    c.poison();
                }
                return Err(e);
            }
            let body_deadline = request_deadline.map(|at| Box::pin(tokio::time::sleep_until(at)));
            let limits = body::Limits {
                request_timeout: config.request_timeout.unwrap_or_default(),
                read_timeout: config.read_timeout,
            };
            Ok(response.map(|body| ResponseBody::new(body, body_deadline, limits, url)))
        }
    }

    /// GETs `url` and returns its body when the status is 2xx. Errors: the request's, then
    /// [`ClientErrorKind::Status`] for another status, [`ClientErrorKind::BodyTooLarge`]
    /// when the body is longer than `limit` bytes.
    ///
    /// [`ClientConfig::read_timeout`] bounds each wait for more of the body, and
    /// [`ClientConfig::request_timeout`] the whole: without it, a server that trickles a
    /// byte at a time keeps this waiting. Tile fetches should set one.
    pub async fn get(&self, url: &str, limit: usize) -> Result<Bytes, ClientError> {
        let req = get_request(url)?;
        let shown = MessageUrl(req.uri().clone());
        let response = self.request(req).await?;
        let status = response.status();
        if !status.is_success() {
            response.into_body().drain().await;
            return Err(ClientError::new(
                ClientErrorKind::Status(status),
                format!("unexpected HTTP status ({shown}): {status}"),
            ));
        }
        read_limited(response.into_body(), limit).await
    }

    /// [`get`](HttpClient::get), following redirects as Python's `requests.get` does (301,
    /// 302, 303, 307, 308 with a `Location`, absolute or relative to the URL answering it; at
    /// most `max_redirects`; only to http(s), which every request checks).
    pub async fn get_following_redirects(
        &self,
        url: &str,
        limit: usize,
        max_redirects: usize,
    ) -> Result<Bytes, ClientError> {
        let mut current = url.to_string();
        for _ in 0..=max_redirects {
            let req = get_request(&current)?;
            let shown = MessageUrl(req.uri().clone());
            let res = self.get_response(&current, limit).await?;
            let status = res.status();
            if status.is_success() {
                return Ok(res.into_body());
            }
            let location = res
                .headers()
                .get(http::header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .filter(|_| status.is_redirection() && status != http::StatusCode::NOT_MODIFIED);
            match location {
                Some(location) => current = resolve_location(req.uri(), location),
                None => {
                    return Err(ClientError::new(
                        ClientErrorKind::Status(status),
                        format!("unexpected HTTP status ({shown}): {status}"),
                    ))
                }
            }
        }
        Err(ClientError::new(
            ClientErrorKind::Status(http::StatusCode::LOOP_DETECTED),
            format!(
                "more than {max_redirects} redirects ({})",
                url_for_messages(url.parse::<Uri>().ok().as_ref())
            ),
        ))
    }

    /// GETs `url` and returns the whole response, whatever its status, with its body read
    /// (at most `limit` bytes, else [`ClientErrorKind::BodyTooLarge`]).
    pub async fn get_response(
        &self,
        url: &str,
        limit: usize,
    ) -> Result<Response<Bytes>, ClientError> {
        let (parts, body) = self.request(get_request(url)?).await?.into_parts();
        let bytes = read_limited(body, limit).await?;
        Ok(Response::from_parts(parts, bytes))
    }
}

impl fmt::Debug for HttpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HttpClient")
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn deadline(start: Instant, limit: Option<Duration>) -> Option<Instant> {
    // A limit too large to add is no limit.
    limit.and_then(|d| start.checked_add(d))
}

/// Checks the URI, adds the user agent and boxes the body; also returns the URL for messages.
fn prepare<B>(inner: &Inner, req: Request<B>) -> Result<(Request<Body>, MessageUrl), ClientError>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let uri = req.uri();
    let url = MessageUrl(uri.clone());
    let scheme_ok = uri.scheme() == Some(&Scheme::HTTP) || uri.scheme() == Some(&Scheme::HTTPS);
    if !scheme_ok || uri.host().is_none_or(str::is_empty) {
        return Err(ClientError::new(
            ClientErrorKind::InvalidUrl,
            format!("invalid URL ({url}): not an absolute http:// or https:// URL with a host"),
        ));
    }
    let (mut parts, body) = req.into_parts();
    if let Some(ua) = &inner.user_agent {
        parts
            .headers
            .entry(USER_AGENT)
            .or_insert_with(|| ua.clone());
    }
    Ok((Request::from_parts(parts, into_body(body)), url))
}

/// `body` as a [`Body`], without boxing it again when it is one already.
fn into_body<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    let mut slot = Some(body);
    if let Some(boxed) = (&mut slot as &mut dyn Any)
        .downcast_mut::<Option<Body>>()
        .and_then(Option::take)
    {
        return boxed;
    }
    slot.map(|b| b.map_err(Into::into).boxed_unsync())
        .unwrap_or_default()
}

/// A redirect's `location` against the `base` it answered: absolute URLs as they are,
/// `//host/p` on `base`'s scheme, `/p` on its scheme and host, other relative references next
/// to its last path segment.
fn resolve_location(base: &Uri, location: &str) -> String {
    if location.contains("://") {
        return location.to_string();
    }
    let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return location.to_string();
    };
    if let Some(rest) = location.strip_prefix("//") {
        return format!("{scheme}://{rest}");
    }
    if location.starts_with('/') {
        return format!("{scheme}://{authority}{location}");
    }
    let dir = base.path().rsplit_once('/').map_or("", |(d, _)| d);
    format!("{scheme}://{authority}{dir}/{location}")
}

/// `scheme://host[:port]/path` of a URI: no user info, no query (either may hold secrets).
fn url_for_messages(uri: Option<&Uri>) -> String {
    match uri {
        Some(uri) => MessageUrl(uri.clone()).to_string(),
        None => "?".to_owned(),
    }
}

/// A request's URL as messages show it (`scheme://host[:port]/path`: no user info, no query,
/// either may hold secrets), written only when a message is: most requests make none, and
/// the text cost a tenth of an upstream request's own work (callgrind, a tile miss).
#[derive(Clone)]
pub(crate) struct MessageUrl(Uri);

impl fmt::Display for MessageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uri = &self.0;
        if let Some(scheme) = uri.scheme_str() {
            write!(f, "{scheme}://")?;
        }
        if let Some(host) = uri.host() {
            f.write_str(host)?;
        }
        if let Some(port) = uri.port_u16() {
            write!(f, ":{port}")?;
        }
        f.write_str(uri.path())
    }
}

impl fmt::Debug for MessageUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

fn get_request(url: &str) -> Result<Request<Empty<Bytes>>, ClientError> {
    let uri: Uri = url.parse().map_err(|e: http::uri::InvalidUri| {
        let shown = url.split('?').next().unwrap_or_default();
        ClientError::new(
            ClientErrorKind::InvalidUrl,
            format!("invalid URL ({shown}): {e}"),
        )
        .with_source(e)
    })?;
    Request::get(uri).body(Empty::new()).map_err(|e| {
        ClientError::new(ClientErrorKind::InvalidUrl, format!("invalid request: {e}"))
            .with_source(e)
    })
}

/// Refuses a response whose body could end in two places: `Content-Length` next to
/// `Transfer-Encoding` (hyper reads it as chunked; a proxy passing the length on would let
/// the two sides disagree). The caller keeps its connection out of the pool.
fn check_framing(headers: &http::HeaderMap, url: &MessageUrl) -> Result<(), ClientError> {
    if headers.contains_key(http::header::TRANSFER_ENCODING)
        && headers.contains_key(http::header::CONTENT_LENGTH)
    {
        let kind = ClientErrorKind::Request;
        return Err(ClientError::new(
            kind,
            format!(
                "{kind} ({url}): malformed response: both Content-Length and \
                 Transfer-Encoding"
            ),
        ));
    }
    Ok(())
}

/// Sorts hyper-util's error into a kind; connect failures were sorted by the connector.
fn classify(err: hyper_util::client::legacy::Error, url: &MessageUrl) -> ClientError {
    if let Some(failure) = find_in_chain::<ConnectFailure>(&err) {
        let (kind, detail) = (failure.kind, failure.detail.clone());
        return ClientError::new(kind, format!("{kind} ({url}): {detail}")).with_source(err);
    }
    let kind = if err.is_connect() {
        ClientErrorKind::Connect
    } else {
        ClientErrorKind::Request
    };
    // hyper-util's own text ("client error (SendRequest)") says little; its sources say more.
    let detail = match std::error::Error::source(&err) {
        Some(source) => chain_text(source),
        None => err.to_string(),
    };
    ClientError::new(kind, format!("{kind} ({url}): {detail}")).with_source(err)
}

impl ResponseBody {
    /// Reads and drops a short body of known length (at most 16 KiB), so that its connection
    /// goes back to the pool (tile sources see many 404s); a longer or unknown one is dropped
    /// with its connection. For error responses whose body is not wanted.
    pub async fn drain(self) {
        if http_body::Body::size_hint(&self)
            .upper()
            .is_some_and(|n| n <= DRAIN_LIMIT)
        {
            let _ = read_limited(self, DRAIN_LIMIT as usize).await;
        }
    }
}

/// Reads a response body whole, failing past `limit` bytes.
async fn read_limited(mut body: ResponseBody, limit: usize) -> Result<Bytes, ClientError> {
    let url = body.url().clone();
    let too_large = || {
        ClientError::new(
            ClientErrorKind::BodyTooLarge,
            format!("response body too large ({url}): more than {limit} bytes"),
        )
    };
    if usize::try_from(http_body::Body::size_hint(&body).lower()).map_or(true, |n| n > limit) {
        return Err(too_large());
    }
    let mut first: Option<Bytes> = None;
    let mut buf = BytesMut::new();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame?.into_data() else {
            continue; // trailers
        };
        len = len.saturating_add(data.len());
        if len > limit {
            return Err(too_large());
        }
        match first.take() {
            None if buf.is_empty() => first = Some(data),
            None => buf.extend_from_slice(&data),
            Some(f) => {
                buf.reserve(f.len() + data.len());
                buf.extend_from_slice(&f);
                buf.extend_from_slice(&data);
            }
        }
    }
    Ok(first.unwrap_or_else(|| buf.freeze()))
}
