//! Entry points for the fuzz targets in `fuzz/` (`cargo +nightly fuzz run fcgi_records`).
//! Not an API: hidden from the docs, and it changes whenever the server's internals do.
//!
//! The record and CGI parsers are private to the FastCGI server; this re-exports them, and
//! serves one connection over any reader and writer (`tokio::io::duplex`) with the server's
//! default limits, as an accepted socket is served.

use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio_util::sync::CancellationToken;

pub use super::cgi::{build_request, BadRequest, CgiRequest};
pub use super::record::{
    parse_begin, parse_pairs, parse_record, BeginRequest, ProtocolError, Record,
};
use crate::server::SharedApp;

/// Serve one FastCGI connection read from `rd` and answered on `wr` with `app` (no
/// `maxChildren`, not in debug mode, the default buffer limits, no timeouts), until the peer closes it, a protocol error or
/// `KEEP_CONN=0`, and every request on it is done.
pub async fn serve_connection<R, W>(rd: R, wr: W, app: SharedApp)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    // The server's defaults, less the timers: the input ends, and so does the connection.
    let server = super::FcgiServer::new(super::Address::Unix(std::path::PathBuf::new()))
        .header_read_timeout(None)
        .channel_timeout(None)
        .send_timeout(None);
    let shared = Arc::new(server.connection_shared(app, false));
    let (shutdown, force) = (CancellationToken::new(), CancellationToken::new());
    super::conn::serve_connection(rd, wr, shared, 0, shutdown, force).await;
}
