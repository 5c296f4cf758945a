//! The connector: hyper-util's `HttpConnector` under hyper-rustls's `HttpsConnector`, under a
//! timeout that covers name resolution, TCP connect and the TLS handshake together. Its errors
//! are [`ConnectFailure`]s, already sorted into kinds.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use http::Uri;
use hyper_rustls::{HttpsConnector, MaybeHttpsStream};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::error::{chain_text, find_in_chain, ClientErrorKind};
use mapproxy_serve_core::BoxError;

/// A failed connect, found again in the client's error chain by `downcast_ref`.
#[derive(Debug)]
pub(crate) struct ConnectFailure {
    pub(crate) kind: ClientErrorKind,
    pub(crate) detail: String,
    source: Option<BoxError>,
}

impl fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.detail)
    }
}

impl std::error::Error for ConnectFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_ref()
            .map(|e| &**e as &(dyn std::error::Error + 'static))
    }
}

impl ConnectFailure {
    fn timeout(after: Duration) -> Self {
        ConnectFailure {
            kind: ClientErrorKind::ConnectTimeout,
            detail: format!("not connected after {after:?}"),
            source: None,
        }
    }

    fn from_error(err: BoxError) -> Self {
        let kind = match find_in_chain::<rustls::Error>(&*err) {
            Some(rustls::Error::InvalidCertificate(_)) => ClientErrorKind::Certificate,
            Some(_) => ClientErrorKind::Tls,
            None => ClientErrorKind::Connect,
        };
        ConnectFailure {
            kind,
            detail: chain_text(&*err),
            source: Some(err),
        }
    }
}

type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

/// `HttpsConnector<HttpConnector>` with a deadline on the whole connect.
#[derive(Clone)]
pub(crate) struct TimeoutConnector {
    inner: HttpsConnector<HttpConnector>,
    timeout: Option<Duration>,
}

impl TimeoutConnector {
    pub(crate) fn new(tls: rustls::ClientConfig, timeout: Option<Duration>) -> Self {
        let mut http = HttpConnector::new();
        http.enforce_http(false); // https:// URLs pass through to the TLS layer
        http.set_nodelay(true);
        let inner = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        TimeoutConnector { inner, timeout }
    }
}

impl tower_service::Service<Uri> for TimeoutConnector {
    type Response = Stream;
    type Error = ConnectFailure;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, ConnectFailure>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner
            .poll_ready(cx)
            .map_err(ConnectFailure::from_error)
    }

    fn call(&mut self, dst: Uri) -> Self::Future {
        let connecting = self.inner.call(dst);
        let timeout = self.timeout;
        Box::pin(async move {
            let result = match timeout {
                Some(t) => match tokio::time::timeout(t, connecting).await {
                    Ok(result) => result,
                    Err(_) => return Err(ConnectFailure::timeout(t)),
                },
                None => connecting.await,
            };
            result.map_err(ConnectFailure::from_error)
        })
    }
}
