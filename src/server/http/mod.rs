//! The HTTP server: `egg:mapproxy-serve#http`, also known as `egg:Paste#http`,
//! `egg:waitress#main`, `egg:gunicorn#main` and `egg:pyramid#wsgiref`.
//!
//! HTTP/1.1 with keep-alive and HTTP/2 over cleartext with prior knowledge (h2c) on the same
//! port (hyper-util's auto builder), on TCP and unix sockets. It reads Paste's and waitress's
//! option names; Python-only knobs are accepted and ignored (see [`IGNORED`]).
//!
//! ```ini
//! [server:main]
//! use = egg:waitress#main
//! listen = 127.0.0.1:8080 [::1]:8080
//! connection_limit = 200
//! url_prefix = /maps
//! ```
//!
//! Behaviour worth knowing:
//!
//! - The default host is `127.0.0.1` for every egg name (waitress and wsgiref would use
//!   `0.0.0.0`): say `host = 0.0.0.0` or `listen = *:8080` to serve other machines.
//! - `threads`/`workers` are the number of tokio worker threads (at most 1024). The runtime is
//!   made by the command line before serving: it asks [`Server::worker_threads`].
//! - `connection_limit`: connections beyond it are not accepted; they wait in the listen
//!   backlog until a connection closes.
//! - `header_read_timeout` runs from the accept (or from the first byte of a next request on
//!   a keep-alive connection) until the request head is complete; `channel_timeout` closes a
//!   connection with no traffic and no request in progress, or whose request body stopped
//!   arriving while the app waits for it; HTTP/2 PINGs, SETTINGS and WINDOW_UPDATEs are not
//!   traffic. An app computing its answer is never cut. `send_timeout` closes a connection
//!   whose response data the client does not take (does not read, or grants no HTTP/2
//!   window) for that long.
//! - HTTP/2: at most 100 concurrent streams per connection; response bodies are handed to
//!   hyper in 16 KiB pieces, and only 4 bodies per connection may hold data not yet sent, so
//!   streams the client grants no window cost about 16 KiB each, not a body chunk each.
//! - The request's authority is checked before the app sees it (`host.rs`): a `Host` that is
//!   not `host[:port]` (RFC 3986, no userinfo), a second `Host`, none on HTTP/1.1, an
//!   absolute-form target that is not http(s) or names an invalid authority, and an HTTP/2
//!   `:authority` likewise, are answered 400.
//! - Request bodies: a `Content-Length` above `max_request_body_size` is answered 413 without
//!   calling the app. A chunked (or HTTP/2) body that grows past it yields an error that
//!   downcasts to [`http_body_util::LengthLimitError`]; apps should answer 413 — if an app
//!   answers with any 5xx after that error, the server replaces the response by 413. Such a
//!   body that the app drops before its end is read to its end (or the limit) before the
//!   app's answer is sent, and answered 413 past the limit, as waitress (which reads whole
//!   bodies before it calls the app) answers it.
//! - A panic in the app answers 500 for that request only; with `--debug` the body shows the
//!   panic message and a backtrace, otherwise nothing internal.
//! - Request extensions set for the app: [`PeerAddr`](crate::environ::PeerAddr) and
//!   [`RemoteAddr`](crate::environ::RemoteAddr) (TCP only), [`PublicUrl`](crate::environ::PublicUrl)
//!   (`url_scheme` + the `Host`, else the listener address), [`MountPath`](crate::environ::MountPath)
//!   (`url_prefix` or `""`). Forwarded headers are left to the forwarded-headers filter.
//!
//! For embedding and tests, [`HttpServer::bind`] binds first and tells the real addresses:
//!
//! ```no_run
//! # async fn run(ctx: mapproxy_serve::server::ServeContext) -> Result<(), Box<dyn std::error::Error>> {
//! use mapproxy_serve::config::FactoryConf;
//! use mapproxy_serve::server::http::HttpServer;
//!
//! let conf = FactoryConf::from_pairs("mapproxy-serve#http", [("port", "0")]);
//! let bound = HttpServer::from_conf(&conf)?.bind(&[]).await?;
//! let addr = bound.local_addrs()[0].tcp().expect("tcp");
//! bound.run(ctx).await?; // until ctx.shutdown is cancelled
//! # Ok(()) }
//! ```

mod body;
mod conn;
pub(crate) mod host;
mod service;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use body::ResponseBody;

use self::conn::{ConnState, Timeouts, Tracked, WokenOnly};
use self::service::RequestService;
use super::bind::{bind_all, parse_bind, parse_listen, BindAddr, BoundAddr, Listener, Stream};
use super::{ServeContext, ServeError, ServeFuture, Server, SharedApp};
use crate::config::FactoryConf;
use crate::error::{ConfigError, ConfigErrors};
use crate::registry::Opt;
use crate::server::limits;

const LOG: &str = "mapproxy_serve.server.http";

/// Concurrent HTTP/2 streams per connection (as Apache httpd and h2o; hyper's default: 200).
const MAX_STREAMS: u32 = 100;

/// The options this server reads.
pub const OPTIONS: &[Opt] = &[
    Opt::new("host", "address or name to listen on (default 127.0.0.1); `host:port` when port is unset; `*` = all interfaces"),
    Opt::new("port", "TCP port (default 8080; 0 picks a free one)"),
    Opt::new("listen", "several addresses, whitespace-separated: host:port [v6]:port *:port unix:/path (not with host/port)"),
    Opt::new("bind", "gunicorn's name for `listen`"),
    Opt::new("unix_socket", "serve on this unix socket instead of TCP (host/port are then ignored)"),
    Opt::new("unix_socket_perms", "octal mode of the unix socket file (default 600)"),
    Opt::new("threads", "tokio worker threads, 1 to 1024 (default: one per CPU)"),
    Opt::new("workers", "gunicorn's name for `threads`"),
    Opt::new("connection_limit", "open connections at most; more wait in the listen backlog (default 1000)"),
    Opt::new("channel_timeout", "seconds without traffic before an idle connection, or one whose upload stalled, is closed (default 120; 0 = never)"),
    Opt::new("send_timeout", "seconds a response may wait for the client to take data (read it, or grant HTTP/2 window) before the connection is closed (default 60; 0 = never)"),
    Opt::new("header_read_timeout", "seconds to receive a request head, from the accept or its first byte (default 10; 0 = no limit)"),
    Opt::new("shutdown_timeout", "seconds in-flight requests may take to finish on shutdown (default 30)"),
    Opt::new("graceful_timeout", "gunicorn's name for `shutdown_timeout`"),
    Opt::new("max_request_header_size", "bytes of request line and headers at most, else 431 (default 65536; HTTP/1 minimum 8192)"),
    Opt::new("max_request_body_size", "bytes of request body at most, else 413 (default 1073741824)"),
    Opt::new("url_scheme", "public scheme the app sees (default http)"),
    Opt::new("url_prefix", "mount path: requests outside it get 404, inside it it becomes the app's mount path"),
    Opt::new("ident", "the Server header (default mapproxy-serve/VERSION; empty = none)"),
    Opt::new("server_version", "Paste's name for `ident`"),
    Opt::new("http2", "also speak HTTP/2 with prior knowledge (h2c) on the same port (default true)"),
    Opt::new("ssl_pem", "not supported: an error (put a TLS proxy in front)"),
    Opt::new("certfile", "not supported: an error (put a TLS proxy in front)"),
    Opt::new("keyfile", "not supported: an error (put a TLS proxy in front)"),
];

/// Options of Paste, waitress and gunicorn that mean nothing here; accepted and ignored.
pub const IGNORED: &[&str] = &[
    // Paste#http: the thread pool and Python socket server knobs
    "use_threadpool",
    "threadpool_*",
    "daemon_threads",
    "socket_timeout",
    "request_queue_size",
    "protocol_version",
    "error_email",
    // waitress: asyncore loop and buffer tuning, proxy trust (the forwarded filter does that)
    "backlog",
    "asyncore_*",
    "send_bytes",
    "outbuf_*",
    "inbuf_overflow",
    "recv_bytes",
    "cleanup_interval",
    "log_socket_errors",
    "expose_tracebacks",
    "trusted_proxy*",
    "clear_untrusted_proxy_headers",
    "log_untrusted_proxy_headers",
    "server_name",
    "ipv4",
    "ipv6",
    // gunicorn: process model and its own logging
    "worker_class",
    "worker_connections",
    "timeout",
    "keepalive",
    "max_requests",
    "max_requests_jitter",
    "preload_app",
    "proc_name",
    "accesslog",
    "errorlog",
    "loglevel",
];

/// Build the server from its `[server:NAME]` section.
pub fn build(conf: &FactoryConf) -> Result<Box<dyn Server>, ConfigErrors> {
    Ok(Box::new(HttpServer::from_conf(conf)?))
}

/// Settings every connection reads.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) url_scheme: String,
    /// `""` or `/path` without a trailing `/`.
    pub(crate) url_prefix: String,
    pub(crate) ident: Option<HeaderValue>,
    pub(crate) max_body: u64,
    max_header: usize,
    header_read_timeout: Option<Duration>,
    channel_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    shutdown_timeout: Duration,
    http2: bool,
    connection_limit: usize,
    unix_perms: u32,
}

/// A configured HTTP server, not yet bound.
#[derive(Debug)]
pub struct HttpServer {
    addrs: Vec<BindAddr>,
    worker_threads: Option<usize>,
    settings: Arc<Settings>,
}

fn first_of<'a>(conf: &FactoryConf, keys: [&'a str; 2]) -> Result<Option<&'a str>, ConfigError> {
    match (conf.get(keys[0]).is_some(), conf.get(keys[1]).is_some()) {
        (true, true) => Err(conf.error(
            keys[1],
            format!("give either '{}' or '{}', not both", keys[0], keys[1]),
        )),
        (true, false) => Ok(Some(keys[0])),
        (false, true) => Ok(Some(keys[1])),
        (false, false) => Ok(None),
    }
}

fn addresses(conf: &FactoryConf) -> Result<Vec<BindAddr>, ConfigError> {
    if let Some(path) = conf.get("unix_socket").filter(|p| !p.trim().is_empty()) {
        for k in ["host", "port", "listen", "bind"] {
            if conf.get(k).is_some() {
                log::warn!(target: LOG, "{}: '{k}' is ignored: unix_socket is set", conf.location_of(k));
            }
        }
        return Ok(vec![BindAddr::Unix(path.trim().into())]);
    }
    if let Some(key) = first_of(conf, ["listen", "bind"])? {
        for k in ["host", "port"] {
            if conf.get(k).is_some() {
                return Err(conf.error(
                    k,
                    format!("'{key}' and '{k}' are exclusive: put every address in '{key}'"),
                ));
            }
        }
        return parse_listen(conf.get(key).unwrap_or_default()).map_err(|e| conf.error(key, e));
    }
    let port = conf.get_parsed::<u16>("port", "a port number (0-65535)")?;
    let host = conf.get("host").map(str::trim).unwrap_or("127.0.0.1");
    let host = if host.is_empty() { "127.0.0.1" } else { host };
    // Paste: `host = name:port` when `port` is unset; a bare IPv6 address has several colons.
    let bare_v6 = host.parse::<std::net::Ipv6Addr>().is_ok();
    if !bare_v6 && host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        let a = parse_bind(host).map_err(|e| conf.error("host", e))?;
        if port.is_some() {
            return Err(conf.error("host", "names a port, and so does 'port': give it once"));
        }
        return Ok(vec![a]);
    }
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Ok(vec![BindAddr::tcp(host, port.unwrap_or(8080))])
}

fn url_prefix(conf: &FactoryConf) -> Result<String, ConfigError> {
    let v = conf.get("url_prefix").unwrap_or("").trim();
    let v = v.trim_end_matches('/');
    if v.is_empty() {
        return Ok(String::new());
    }
    if v.contains(['?', '#']) || v.chars().any(char::is_whitespace) {
        return Err(conf.error(
            "url_prefix",
            format!("expected a path like /maps, found '{v}'"),
        ));
    }
    Ok(if v.starts_with('/') {
        v.to_string()
    } else {
        format!("/{v}")
    })
}

impl HttpServer {
    /// Read a `[server:...]` section; every error names the file, line and key.
    pub fn from_conf(conf: &FactoryConf) -> Result<HttpServer, ConfigErrors> {
        let mut errs = ConfigErrors::new();
        for k in ["ssl_pem", "certfile", "keyfile"] {
            if conf.get(k).is_some() {
                errs.push(conf.error(k, "TLS is not supported by mapproxy-serve: serve plain HTTP and put a TLS proxy (nginx, caddy, ...) in front"));
            }
        }
        let addrs = errs.take(addresses(conf));
        let perms = errs.take(match conf.get("unix_socket_perms") {
            None => Ok(0o600),
            Some(v) => {
                let t = v.trim();
                let t = t.strip_prefix("0o").unwrap_or(t);
                u32::from_str_radix(t, 8)
                    .ok()
                    .filter(|m| *m <= 0o777)
                    .ok_or_else(|| {
                        conf.error(
                            "unix_socket_perms",
                            format!("expected an octal mode like 600, found '{v}'"),
                        )
                    })
            }
        });
        let threads = errs.take(
            first_of(conf, ["threads", "workers"])
                .and_then(|k| k.map_or(Ok(None), |k| conf.get_int(k, 1..=limits::MAX_THREADS))),
        );
        let connection_limit =
            errs.take(conf.get_int("connection_limit", 1..=limits::MAX_CONNECTIONS));
        let channel_timeout = errs.take(limits::timeout(conf, "channel_timeout", 120.0));
        let header_read_timeout = errs.take(limits::timeout(conf, "header_read_timeout", 10.0));
        let send_timeout = errs.take(limits::timeout(conf, "send_timeout", 60.0));
        let shutdown_timeout = errs.take(
            first_of(conf, ["shutdown_timeout", "graceful_timeout"])
                .and_then(|k| limits::timeout(conf, k.unwrap_or("shutdown_timeout"), 30.0)),
        );
        let max_header = errs.take(
            conf.get_size("max_request_header_size", limits::HEADER_SIZE)
                .map(|n| n.and_then(|n| usize::try_from(n).ok())),
        );
        let max_body = errs.take(conf.get_size("max_request_body_size", limits::BODY_SIZE));
        let url_scheme = conf.get("url_scheme").map(str::trim).unwrap_or("http");
        if !matches!(url_scheme, "http" | "https") {
            errs.push(conf.error(
                "url_scheme",
                format!("expected http or https, found '{url_scheme}'"),
            ));
        }
        let prefix = errs.take(url_prefix(conf));
        let ident_key = errs
            .take(first_of(conf, ["ident", "server_version"]))
            .flatten();
        let ident = match ident_key.and_then(|k| conf.get(k).map(|v| (k, v.trim()))) {
            None => Some(HeaderValue::from_static(concat!(
                "mapproxy-serve/",
                env!("CARGO_PKG_VERSION")
            ))),
            Some((_, "")) => None,
            Some((k, v)) => errs
                .take(
                    HeaderValue::from_str(v)
                        .map(Some)
                        .map_err(|_| conf.error(k, format!("not a valid header value: '{v}'"))),
                )
                .flatten(),
        };
        let http2 = errs.take(conf.get_bool("http2", true));
        errs.into_result(())?;
        let (
            Some(addrs),
            Some(perms),
            Some(threads),
            Some(connection_limit),
            Some(channel_timeout),
            Some(header_read_timeout),
            Some(send_timeout),
            Some(shutdown_timeout),
            Some(max_header),
            Some(max_body),
            Some(prefix),
            Some(http2),
        ) = (
            addrs,
            perms,
            threads,
            connection_limit,
            channel_timeout,
            header_read_timeout,
            send_timeout,
            shutdown_timeout,
            max_header,
            max_body,
            prefix,
            http2,
        )
        else {
            return Err(conf.section_error("invalid server options").into());
        };
        Ok(HttpServer {
            addrs,
            worker_threads: threads,
            settings: Arc::new(Settings {
                url_scheme: url_scheme.to_string(),
                url_prefix: prefix,
                ident,
                max_body: max_body.unwrap_or(1 << 30),
                max_header: max_header.unwrap_or(64 * 1024),
                header_read_timeout,
                channel_timeout,
                send_timeout,
                shutdown_timeout: shutdown_timeout.unwrap_or(Duration::ZERO),
                http2,
                connection_limit: connection_limit.unwrap_or(1000),
                unix_perms: perms,
            }),
        })
    }

    /// `threads`/`workers`: tokio worker threads for the runtime (`None`: tokio's default).
    pub fn worker_threads(&self) -> Option<usize> {
        self.worker_threads
    }

    /// The addresses from the section.
    pub fn addresses(&self) -> &[BindAddr] {
        &self.addrs
    }

    /// Bind the section's addresses, or `overrides` (`-b/--bind` forms) when not empty.
    pub async fn bind(self, overrides: &[String]) -> Result<BoundHttpServer, ServeError> {
        let addrs = if overrides.is_empty() {
            self.addrs
        } else {
            overrides
                .iter()
                .map(|s| parse_bind(s).map_err(|e| ServeError(format!("--bind {s}: {e}"))))
                .collect::<Result<Vec<_>, _>>()?
        };
        let listeners = bind_all(&addrs, self.settings.unix_perms).await?;
        Ok(BoundHttpServer {
            listeners,
            settings: self.settings,
        })
    }
}

impl Server for HttpServer {
    fn describe(&self) -> String {
        let addrs: Vec<String> = self.addrs.iter().map(ToString::to_string).collect();
        let proto = if self.settings.http2 {
            "http (HTTP/1.1, h2c)"
        } else {
            "http (HTTP/1.1)"
        };
        format!("{proto} on {}", addrs.join(", "))
    }

    fn worker_threads(&self) -> Option<usize> {
        self.worker_threads
    }

    fn serve(self: Box<Self>, ctx: ServeContext) -> ServeFuture {
        Box::pin(async move {
            let bound = self.bind(&ctx.bind).await?;
            bound.run(ctx).await
        })
    }
}

/// An HTTP server with its listeners bound.
#[derive(Debug)]
pub struct BoundHttpServer {
    listeners: Vec<Listener>,
    settings: Arc<Settings>,
}

struct Shared {
    builder: auto::Builder<TokioExecutor>,
    settings: Arc<Settings>,
    app: SharedApp,
    debug: bool,
    shutdown: CancellationToken,
    force: CancellationToken,
    tracker: TaskTracker,
    slots: Arc<Semaphore>,
}

impl BoundHttpServer {
    /// The real bound addresses (the chosen port when 0 was asked for).
    pub fn local_addrs(&self) -> Vec<BoundAddr> {
        self.listeners.iter().map(Listener::bound).collect()
    }

    /// Print one `serving on ...` line per listener on stderr, serve until `ctx.shutdown` is
    /// cancelled, then let in-flight requests finish for up to `shutdown_timeout`.
    pub async fn run(self, ctx: ServeContext) -> Result<(), ServeError> {
        crate::server::panic::install_hook();
        if ctx.debug {
            crate::server::panic::set_capture_backtraces(true);
        }
        let s = &self.settings;
        let mut builder = auto::Builder::new(TokioExecutor::new());
        // half_close: a client may shut down its writing side after the request (HTTP/1.0
        // clients, `nc -N`, scripts) and still read the answer, as gunicorn, Paste and nginx
        // give it; hyper's default takes that EOF for a dropped client and closes the
        // connection without one. A client that is really gone is seen when the answer is
        // written, as under gunicorn.
        builder
            .http1()
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(None)
            .max_buf_size(s.max_header.max(8192));
        // HTTP/2 memory per connection: hyper's defaults are 200 streams with up to 400 KiB
        // of response data buffered each. Bodies hand hyper 16 KiB pieces and only a few may
        // hold unsent data (conn.rs), so a stream that gets no flow-control window holds
        // about one piece here plus one in hyper.
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_concurrent_streams(MAX_STREAMS)
            .max_send_buf_size(conn::PIECE * 2)
            .max_header_list_size(u32::try_from(s.max_header).unwrap_or(u32::MAX));
        let builder = if s.http2 {
            builder
        } else {
            builder.http1_only()
        };
        let shared = Arc::new(Shared {
            builder,
            settings: self.settings.clone(),
            app: ctx.app.clone(),
            debug: ctx.debug,
            shutdown: ctx.shutdown.clone(),
            force: CancellationToken::new(),
            tracker: TaskTracker::new(),
            slots: Arc::new(Semaphore::new(s.connection_limit)),
        });
        for l in &self.listeners {
            match l {
                Listener::Tcp(..) => eprintln!("serving on http://{}", l.display()),
                Listener::Unix(..) => eprintln!("serving on {}", l.display()),
            }
        }
        let loops = self
            .listeners
            .into_iter()
            .map(|l| accept_loop(l, shared.clone()));
        futures_util::future::join_all(loops).await;

        shared.tracker.close();
        let open = shared.tracker.len();
        if open > 0 {
            log::info!(target: LOG, "waiting for {open} connection(s) to finish");
        }
        let drained =
            tokio::time::timeout(shared.settings.shutdown_timeout, shared.tracker.wait()).await;
        if drained.is_err() {
            log::warn!(
                target: LOG,
                "shutdown_timeout ({:?}) passed: closing {} connection(s)",
                shared.settings.shutdown_timeout,
                shared.tracker.len()
            );
            shared.force.cancel();
            shared.tracker.wait().await;
        }
        Ok(())
    }
}

async fn accept_loop(listener: Listener, shared: Arc<Shared>) {
    let local_host: Arc<str> = match &listener {
        Listener::Tcp(_, a) => Arc::from(a.to_string()),
        Listener::Unix(..) => Arc::from("localhost"),
    };
    loop {
        let permit = tokio::select! {
            p = shared.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = shared.shutdown.cancelled() => break,
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = shared.shutdown.cancelled() => break,
        };
        match accepted {
            Ok((stream, peer)) => {
                let shared2 = shared.clone();
                let host = local_host.clone();
                shared
                    .tracker
                    .spawn(serve_connection(stream, peer, host, shared2, permit));
            }
            Err(e) => {
                log::warn!(target: LOG, "accept on {}: {e}", listener.display());
                // Out of file descriptors and the like: give other connections time to close.
                if !matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionAborted | std::io::ErrorKind::ConnectionReset
                ) {
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                        _ = shared.shutdown.cancelled() => break,
                    }
                }
            }
        }
    }
    // dropping the listener closes it (and removes a unix socket file)
}

async fn serve_connection(
    stream: Stream,
    peer: Option<SocketAddr>,
    local_host: Arc<str>,
    shared: Arc<Shared>,
    _permit: OwnedSemaphorePermit,
) {
    let state = Arc::new(ConnState::new());
    let svc = RequestService {
        app: shared.app.clone(),
        settings: shared.settings.clone(),
        conn: state.clone(),
        peer,
        local_host,
        debug: shared.debug,
    };
    let io = TokioIo::new(Tracked::new(stream, state.clone()));
    let conn = shared.builder.serve_connection(io, svc);
    tokio::pin!(conn);
    let settings = &shared.settings;
    enum Stop {
        Shutdown,
        Force,
        Expired(&'static str),
    }
    let mut draining = false;
    let timeouts = Timeouts {
        header: settings.header_read_timeout,
        idle: settings.channel_timeout,
        send: settings.send_timeout,
    };
    loop {
        // Polled only when one of its own signals fired, not on every read and write.
        let stop = WokenOnly::new(async {
            tokio::select! {
                _ = shared.shutdown.cancelled(), if !draining => Stop::Shutdown,
                _ = shared.force.cancelled() => Stop::Force,
                why = state.expired(timeouts) => {
                    Stop::Expired(why)
                }
            }
        });
        tokio::select! {
            biased;
            r = conn.as_mut() => {
                if let Err(e) = r {
                    log::debug!(target: LOG, "connection from {peer:?}: {e}");
                }
                break;
            }
            stop = stop => match stop {
                Stop::Shutdown => {
                    conn.as_mut().graceful_shutdown();
                    draining = true;
                }
                Stop::Force => break,
                Stop::Expired(why) => {
                    log::debug!(target: LOG, "closing connection from {peer:?}: {why}");
                    break;
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Location;

    fn conf(pairs: &[(&str, &str)]) -> FactoryConf {
        FactoryConf::from_pairs("mapproxy-serve#http", pairs.iter().copied())
    }

    fn err(pairs: &[(&str, &str)]) -> String {
        HttpServer::from_conf(&conf(pairs)).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let s = HttpServer::from_conf(&conf(&[])).unwrap();
        assert_eq!(s.addresses(), &[BindAddr::tcp("127.0.0.1", 8080)]);
        assert_eq!(s.worker_threads(), None);
        assert_eq!(s.settings.max_header, 65536);
        assert_eq!(s.settings.max_body, 1 << 30);
        assert_eq!(s.settings.connection_limit, 1000);
        assert_eq!(s.settings.channel_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.settings.send_timeout, Some(Duration::from_secs(60)));
        assert_eq!(
            s.settings.header_read_timeout,
            Some(Duration::from_secs(10))
        );
        assert_eq!(s.settings.shutdown_timeout, Duration::from_secs(30));
        assert_eq!(s.settings.unix_perms, 0o600);
        assert!(s.settings.http2);
        assert_eq!(s.describe(), "http (HTTP/1.1, h2c) on 127.0.0.1:8080");
    }

    #[test]
    fn host_and_port_forms() {
        let addrs = |p: &[(&str, &str)]| HttpServer::from_conf(&conf(p)).unwrap().addrs;
        assert_eq!(
            addrs(&[("host", "0.0.0.0"), ("port", "80")]),
            [BindAddr::tcp("0.0.0.0", 80)]
        );
        assert_eq!(
            addrs(&[("host", "localhost:9000")]),
            [BindAddr::tcp("localhost", 9000)]
        );
        assert_eq!(addrs(&[("host", "::1")]), [BindAddr::tcp("::1", 8080)]);
        assert_eq!(addrs(&[("host", "[::1]")]), [BindAddr::tcp("::1", 8080)]);
        assert_eq!(addrs(&[("host", "[::1]:81")]), [BindAddr::tcp("::1", 81)]);
        assert_eq!(
            addrs(&[("listen", "*:80 unix:/tmp/s")]),
            [BindAddr::tcp("*", 80), BindAddr::Unix("/tmp/s".into())]
        );
        assert_eq!(
            addrs(&[("bind", "127.0.0.1:1")]),
            [BindAddr::tcp("127.0.0.1", 1)]
        );
        assert_eq!(
            addrs(&[("unix_socket", "/tmp/x.sock"), ("port", "80")]),
            [BindAddr::Unix("/tmp/x.sock".into())]
        );
    }

    #[test]
    fn option_values() {
        let s = HttpServer::from_conf(&conf(&[
            ("threads", "3"),
            ("unix_socket_perms", "0660"),
            ("channel_timeout", "0"),
            ("send_timeout", "0"),
            ("header_read_timeout", "0.5"),
            ("url_prefix", "maps/"),
            ("ident", ""),
            ("http2", "off"),
        ]))
        .unwrap();
        assert_eq!(s.worker_threads(), Some(3));
        assert_eq!(s.settings.unix_perms, 0o660);
        assert_eq!(s.settings.channel_timeout, None);
        assert_eq!(s.settings.send_timeout, None);
        assert_eq!(
            s.settings.header_read_timeout,
            Some(Duration::from_millis(500))
        );
        assert_eq!(s.settings.url_prefix, "/maps");
        assert_eq!(s.settings.ident, None);
        assert!(!s.settings.http2);
        let s =
            HttpServer::from_conf(&conf(&[("server_version", "x/1"), ("workers", "2")])).unwrap();
        assert_eq!(s.settings.ident, Some(HeaderValue::from_static("x/1")));
        assert_eq!(s.worker_threads(), Some(2));
    }

    #[test]
    fn errors_name_key_and_line() {
        let mut c = conf(&[("port", "eighty")]);
        if let Some(v) = c.local.get_mut("port") {
            v.location = Location::in_section("site.ini", 7, "server:main");
        }
        assert_eq!(
            HttpServer::from_conf(&c).unwrap_err().to_string(),
            "site.ini:7: [server:main] key 'port': expected a port number (0-65535), found 'eighty'"
        );
        let e = err(&[("listen", "*:80"), ("port", "81")]);
        assert!(e.contains("key 'port'") && e.contains("exclusive"), "{e}");
        let e = err(&[("listen", "localhost")]);
        assert!(
            e.contains("key 'listen'") && e.contains("missing port"),
            "{e}"
        );
        let e = err(&[("ssl_pem", "*")]);
        assert!(
            e.contains("key 'ssl_pem'") && e.contains("TLS proxy"),
            "{e}"
        );
        let e = err(&[
            ("threads", "0"),
            ("channel_timeout", "-1"),
            ("unix_socket_perms", "999"),
        ]);
        assert!(e.contains("key 'threads'"), "{e}");
        assert!(e.contains("key 'channel_timeout'"), "{e}");
        assert!(e.contains("key 'unix_socket_perms'"), "{e}");
        // threads/workers: 1 to 1024, else an error at check time naming file and line
        // (not an abort when the runtime starts them)
        for (k, v) in [
            ("threads", "100000000"),
            ("workers", "1025"),
            ("threads", "0"),
            ("workers", "99999999999999999999999"),
            ("threads", "-1"),
        ] {
            let mut c = conf(&[(k, v)]);
            if let Some(val) = c.local.get_mut(k) {
                val.location = Location::in_section("site.ini", 9, "server:main");
            }
            let e = HttpServer::from_conf(&c).unwrap_err().to_string();
            assert!(
                e.starts_with(&format!("site.ini:9: [server:main] key '{k}'"))
                    && e.contains("1024"),
                "{e}"
            );
        }
        let ok = HttpServer::from_conf(&conf(&[("workers", "1024")])).unwrap();
        assert_eq!(ok.worker_threads(), Some(1024));
        let e = err(&[("threads", "2"), ("workers", "2")]);
        assert!(e.contains("not both"), "{e}");
        let e = err(&[("host", "h:1"), ("port", "2")]);
        assert!(e.contains("key 'host'"), "{e}");
        let e = err(&[("url_scheme", "ftp")]);
        assert!(e.contains("key 'url_scheme'"), "{e}");
        let e = err(&[("http2", "maybe")]);
        assert!(e.contains("key 'http2'"), "{e}");
    }

    #[test]
    fn registered_under_every_egg_name() {
        let reg = crate::registry::registry();
        for egg in [
            "mapproxy-serve#http",
            "Paste#http",
            "waitress",
            "waitress#main",
            "gunicorn#main",
            "pyramid#wsgiref",
        ] {
            let f = reg
                .find(egg)
                .unwrap_or_else(|| panic!("{egg} not registered"));
            assert!(f.ignores_option("threadpool_workers"));
            assert!(f.knows_option("connection_limit"));
            assert!(!f.knows_option("bogus") && !f.ignores_option("bogus"));
        }
    }
}
