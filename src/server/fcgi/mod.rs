//! The FastCGI server: `egg:mapproxy-serve#fcgi`, also `egg:Flup#fcgi_fork` and
//! `egg:Flup#fcgi_thread`, so MapProxy's `config.ini` runs unchanged behind nginx, lighttpd
//! or Apache.
//!
//! A FastCGI 1.0 responder of its own (no crate served this well, see `record.rs`,
//! `conn.rs`): request bodies stream in from STDIN records as they arrive, responses stream
//! out in STDOUT records of at most 65,535 bytes, connections are kept open for many
//! requests (`KEEP_CONN`), multiplexed requests are served concurrently, `ABORT_REQUEST`
//! drops a request and `GET_VALUES` is answered. Each request takes the app current when it
//! starts, so reloads behave as with the HTTP server.
//!
//! The `REMOTE_USER` variable is ignored unless `trust_remote_user = true`
//! ([`FcgiServer::trust_remote_user`]): with `umask = 000` any local user can connect to the
//! socket and send any variable, so a user name from it is believed only when the operator
//! says that the web server authenticates and nobody else reaches the socket.
//!
//! ```ini
//! [server:main]
//! use = egg:Flup#fcgi_fork
//! socket = %(here)s/../var/fcgi-socket
//! umask = 000
//! maxChildren = 64
//! ```
//!
//! Embedding without an ini file:
//!
//! ```no_run
//! use mapproxy_serve::server::fcgi::{Address, FcgiServer};
//! use mapproxy_serve::server::{Server, ServeContext, SharedApp};
//! # async fn run(app: mapproxy_serve::App) {
//! let server = FcgiServer::new(Address::Unix("/run/maps/fcgi.sock".into())).socket_mode(0o660);
//! let ctx = ServeContext {
//!     app: SharedApp::new(app),
//!     shutdown: tokio_util::sync::CancellationToken::new(),
//!     bind: vec![],
//!     debug: false,
//! };
//! Box::new(server).serve(ctx).await.expect("serve");
//! # }
//! ```

mod body;
mod cgi;
mod conn;
#[doc(hidden)]
pub mod fuzzing;
mod record;

use std::net::IpAddr;
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FactoryConf;
use crate::error::{ConfigError, ConfigErrors};
use crate::registry::Opt;
use crate::server::bind::{self, parse_bind};
use crate::server::limits;
use crate::server::{ServeContext, ServeError, ServeFuture, Server};

const TARGET: &str = "mapproxy_serve.server.fcgi";

/// Requests one connection may have open at once; more get `OVERLOADED`.
const MAX_REQS_PER_CONN: usize = 256;
/// PARAMS bytes of one request by default (as the HTTP server's `max_request_header_size`).
const DEFAULT_MAX_PARAMS: usize = 64 * 1024;
/// PARAMS buffered across one connection's open requests: this many requests' worth.
const CONN_PARAMS_REQUESTS: usize = 4;
/// STDIN bytes queued for apps across one connection's requests (16 full records; one
/// request's own queue is 4).
const CONN_STDIN: usize = 16 * 65_535;

/// Which FastCGI connection a request came on (a request extension; for logs and tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FcgiConnectionId(pub u64);

/// Where the server listens: the shared [`BindAddr`] (`Address::Unix(path)` or
/// `Address::Tcp { host, port }`; host `*` is every interface).
pub use crate::server::bind::BindAddr as Address;

/// The FastCGI server, built from `[server:NAME]` or with [`FcgiServer::new`].
#[derive(Clone, Debug)]
pub struct FcgiServer {
    address: Option<Address>,
    socket_mode: Option<u32>,
    max_concurrency: Option<usize>,
    shutdown_timeout: Duration,
    web_server_addrs: Option<Vec<IpAddr>>,
    connection_limit: usize,
    max_params: usize,
    header_read_timeout: Option<Duration>,
    channel_timeout: Option<Duration>,
    send_timeout: Option<Duration>,
    trust_remote_user: bool,
}

impl FcgiServer {
    /// A server on `address`, no concurrency limit, a 30 s shutdown timeout, and the
    /// defaults of [`OPTIONS`] for connections, PARAMS size and timeouts.
    pub fn new(address: Address) -> Self {
        FcgiServer {
            address: Some(address),
            socket_mode: None,
            max_concurrency: None,
            shutdown_timeout: Duration::from_secs(30),
            web_server_addrs: None,
            connection_limit: 1000,
            max_params: DEFAULT_MAX_PARAMS,
            header_read_timeout: Some(Duration::from_secs(10)),
            channel_timeout: Some(Duration::from_secs(120)),
            send_timeout: Some(Duration::from_secs(60)),
            trust_remote_user: false,
        }
    }

    /// What every connection of this server shares: the app, the concurrency limit, the
    /// buffer limits and timeouts, what is trusted. (The fuzz targets serve a connection with
    /// it too, so they follow the server's real settings.)
    pub(crate) fn connection_shared(
        &self,
        app: crate::server::SharedApp,
        debug: bool,
    ) -> conn::Shared {
        let limit = self.max_concurrency;
        let conns = self.connection_limit;
        conn::Shared {
            app,
            limit: limit.map(|n| Arc::new(Semaphore::new(n))),
            debug,
            max_reqs_per_conn: MAX_REQS_PER_CONN,
            max_conns: limit.map_or(conns, |n| n.min(conns)),
            max_reqs: limit.unwrap_or(1024),
            limits: conn::Limits {
                max_params: self.max_params,
                conn_params: self.max_params * CONN_PARAMS_REQUESTS,
                conn_stdin: CONN_STDIN,
                header_timeout: self.header_read_timeout,
                idle_timeout: self.channel_timeout,
                send_timeout: self.send_timeout,
            },
            trust: cgi::Trust {
                remote_user: self.trust_remote_user,
            },
        }
    }

    /// Believe the `REMOTE_USER` variable: it becomes the request's
    /// [`RemoteUser`](crate::environ::RemoteUser), as if the request had been authenticated
    /// here. Only for a web server that authenticates and is the only one able to connect
    /// (anyone who reaches the socket can send any `REMOTE_USER`). Off by default: the
    /// variable is ignored.
    pub fn trust_remote_user(mut self, on: bool) -> Self {
        self.trust_remote_user = on;
        self
    }

    /// At most `n` connections open at once; more wait in the listen backlog.
    pub fn connection_limit(mut self, n: usize) -> Self {
        self.connection_limit = n.max(1);
        self
    }

    /// At most `bytes` of PARAMS (the request's CGI variables and headers) per request;
    /// a request with more is answered 431.
    pub fn max_params_size(mut self, bytes: usize) -> Self {
        self.max_params = bytes.max(1024);
        self
    }

    /// Time from BEGIN_REQUEST to the end of its PARAMS, and from the accept (or a record's
    /// first byte while no request is open) to the next BEGIN_REQUEST; `None`: no limit.
    pub fn header_read_timeout(mut self, t: Option<Duration>) -> Self {
        self.header_read_timeout = t;
        self
    }

    /// Time a connection with no open request, or a request waiting for its STDIN, may stay
    /// silent; `None`: no limit.
    pub fn channel_timeout(mut self, t: Option<Duration>) -> Self {
        self.channel_timeout = t;
        self
    }

    /// Time one write to the web server may take; `None`: no limit.
    pub fn send_timeout(mut self, t: Option<Duration>) -> Self {
        self.send_timeout = t;
        self
    }

    /// Accept TCP connections only from these addresses. Unset, the `FCGI_WEB_SERVER_ADDRS`
    /// environment variable (comma-separated, as in the FastCGI spec and flup) decides;
    /// neither set, any peer may connect. Unix sockets are governed by their file mode.
    pub fn web_server_addrs(mut self, addrs: Vec<IpAddr>) -> Self {
        self.web_server_addrs = Some(addrs);
        self
    }

    /// The unix socket's permission bits (e.g. `0o660`); unset, the process umask decides.
    pub fn socket_mode(mut self, mode: u32) -> Self {
        self.socket_mode = Some(mode & 0o7777);
        self
    }

    /// At most `n` requests run at once; more wait for a turn.
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n.max(1));
        self
    }

    /// How long in-flight requests may run after shutdown starts.
    pub fn shutdown_timeout(mut self, d: Duration) -> Self {
        self.shutdown_timeout = d;
        self
    }

    /// Build from a `[server:NAME]` section (options as in [`OPTIONS`]).
    pub fn from_conf(conf: &FactoryConf) -> Result<FcgiServer, ConfigErrors> {
        let mut errs = ConfigErrors::new();
        let nonempty = |k: &str| conf.get(k).map(str::trim).filter(|v| !v.is_empty());

        let socket = nonempty("socket").and_then(|_| conf.get_path("socket"));
        let host = nonempty("host");
        let port = errs
            .take(conf.get_parsed::<u16>("port", "a port number"))
            .flatten();
        let bind_address = nonempty("bindAddress");
        if socket.is_some() {
            for k in ["host", "port", "bindAddress"] {
                if nonempty(k).is_some() {
                    errs.push(conf.error(
                        k,
                        "cannot be combined with 'socket' (give a socket or host and port)",
                    ));
                }
            }
        } else if bind_address.is_some() && (host.is_some() || port.is_some()) {
            errs.push(conf.error(
                "bindAddress",
                "cannot be combined with 'host'/'port' (give one of them)",
            ));
        }
        if host.is_some() && port.is_none() && nonempty("port").is_none() {
            errs.push(conf.error("host", "needs 'port' too (FastCGI has no default port)"));
        }
        let address = if let Some(path) = socket {
            Some(Address::Unix(path))
        } else if let Some(ba) = bind_address {
            match parse_bind_address(ba) {
                Ok(Address::Unix(p)) if p.is_relative() => {
                    let base = conf
                        .location_of("bindAddress")
                        .file
                        .parent()
                        .map(Path::to_path_buf)
                        .unwrap_or_default();
                    Some(Address::Unix(base.join(p)))
                }
                Ok(a) => Some(a),
                Err(e) => {
                    errs.push(conf.error("bindAddress", e));
                    None
                }
            }
        } else {
            port.map(|port| Address::Tcp {
                host: host.unwrap_or("127.0.0.1").to_string(),
                port,
            })
        };

        let umask = errs.take(octal(conf, "umask")).flatten();
        let mode = errs.take(octal(conf, "socket_mode")).flatten();
        if umask.is_some() && mode.is_some() {
            errs.push(conf.error("socket_mode", "give 'umask' or 'socket_mode', not both"));
        }
        let socket_mode = mode.or(umask.map(|u| 0o777 & !u));

        let mut max_concurrency: Option<usize> = None;
        for k in ["maxChildren", "maxThreads"] {
            match conf.get_int::<usize>(k, 1..=limits::MAX_CONNECTIONS) {
                Ok(Some(n)) => max_concurrency = Some(max_concurrency.map_or(n, |m| m.min(n))),
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
        let mut timeout = |key: &str, default: f64| match limits::timeout(conf, key, default) {
            Ok(t) => t,
            Err(e) => {
                errs.push(e);
                None
            }
        };
        let header_read_timeout = timeout("header_read_timeout", 10.0);
        let channel_timeout = timeout("channel_timeout", 120.0);
        let send_timeout = timeout("send_timeout", 60.0);
        let connection_limit = errs
            .take(conf.get_int("connection_limit", 1..=limits::MAX_CONNECTIONS))
            .flatten()
            .unwrap_or(1000);
        let max_params = errs
            .take(conf.get_size("max_request_header_size", limits::HEADER_SIZE))
            .flatten()
            .and_then(|n| usize::try_from(n).ok())
            .unwrap_or(DEFAULT_MAX_PARAMS);
        let trust_remote_user = errs
            .take(conf.get_bool("trust_remote_user", false))
            .unwrap_or(false);
        let shutdown_timeout = errs
            .take(limits::timeout(conf, "shutdown_timeout", 30.0))
            .map(Option::unwrap_or_default)
            .unwrap_or(Duration::from_secs(30));
        errs.into_result(FcgiServer {
            address,
            socket_mode,
            max_concurrency,
            shutdown_timeout,
            web_server_addrs: None,
            connection_limit,
            max_params,
            header_read_timeout,
            channel_timeout,
            send_timeout,
            trust_remote_user,
        })
    }

    /// Bind the listeners: the `-b` overrides if any, else the configured address. Prints
    /// nothing; [`Bound::urls`] names what was bound.
    pub async fn bind(&self, overrides: &[String]) -> Result<Bound, ServeError> {
        let addresses: Vec<Address> = if overrides.is_empty() {
            match &self.address {
                Some(a) => vec![a.clone()],
                None => {
                    return Err(ServeError(
                        "fcgi: no address to listen on (give 'socket', or 'host' and 'port')"
                            .into(),
                    ))
                }
            }
        } else {
            overrides
                .iter()
                .map(|b| parse_bind(b).map_err(|e| ServeError(format!("--bind {b}: {e}"))))
                .collect::<Result<_, _>>()?
        };
        let mut listeners = Vec::new();
        for a in addresses {
            match a {
                Address::Unix(p) => listeners.push(bind_unix(&p, self.socket_mode)?),
                tcp @ Address::Tcp { .. } => {
                    // Host names bind all they resolve to, `*` every interface: as for HTTP.
                    let bound = bind::bind_all(&[tcp], 0o600)
                        .await
                        .map_err(|e| ServeError(format!("fcgi: {}", e.0)))?;
                    for l in bound {
                        if let bind::Listener::Tcp(l, addr) = l {
                            listeners.push(Listener::Tcp(l, addr));
                        }
                    }
                }
            }
        }
        Ok(Bound {
            listeners,
            server: self.clone(),
        })
    }
}

/// `FCGI_WEB_SERVER_ADDRS`: comma-separated IP addresses; unparsable entries are logged
/// and left out.
fn web_server_addrs_from_env() -> Option<Vec<IpAddr>> {
    let v = std::env::var("FCGI_WEB_SERVER_ADDRS").ok()?;
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse() {
            Ok(ip) => out.push(ip),
            Err(_) => log::warn!(
                target: TARGET,
                "FCGI_WEB_SERVER_ADDRS: ignoring '{part}' (not an IP address)"
            ),
        }
    }
    Some(out)
}

fn octal(conf: &FactoryConf, key: &str) -> Result<Option<u32>, ConfigError> {
    match conf.get(key).map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => {
            let digits = v.strip_prefix("0o").unwrap_or(v);
            match u32::from_str_radix(digits, 8) {
                Ok(n) if n <= 0o7777 => Ok(Some(n)),
                _ => Err(conf.error(key, format!("expected an octal mode like 022, found '{v}'"))),
            }
        }
    }
}

/// A `bindAddress` value (flup's key): a socket path (anything with a `/`), or one of the
/// shared forms of [`bind::parse_bind`](crate::server::bind::parse_bind) (`host:port`,
/// `[v6]:port`, `*:port`, `:port`, `port`, `unix:/path`).
fn parse_bind_address(s: &str) -> Result<Address, String> {
    let t = s.trim();
    if !t.starts_with("unix:") && t.contains('/') {
        return Ok(Address::Unix(PathBuf::from(t)));
    }
    parse_bind(t)
}

/// `path` made absolute and without `.`/`..` (for the serving line and the guard).
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(path)
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            c => out.push(c),
        }
    }
    out
}

fn bind_unix(path: &Path, mode: Option<u32>) -> Result<Listener, ServeError> {
    let (l, file) = crate::server::bind::bind_unix(&absolute(path), mode)
        .map_err(|e| ServeError(format!("fcgi: {e}")))?;
    Ok(Listener::Unix(l, file))
}

#[derive(Debug)]
enum Listener {
    Unix(UnixListener, crate::server::bind::SocketFile),
    Tcp(TcpListener, std::net::SocketAddr),
}

impl Listener {
    fn url(&self) -> String {
        match self {
            Listener::Unix(_, f) => format!("fcgi:unix:{}", f.path().display()),
            Listener::Tcp(_, a) => format!("fcgi://{a}"),
        }
    }
}

/// Bound listeners, ready to serve.
#[derive(Debug)]
pub struct Bound {
    listeners: Vec<Listener>,
    server: FcgiServer,
}

impl Bound {
    /// What is listening: `fcgi:unix:/abs/path` or `fcgi://HOST:PORT`, one per listener.
    pub fn urls(&self) -> Vec<String> {
        self.listeners.iter().map(Listener::url).collect()
    }

    /// The TCP addresses bound (for port 0).
    pub fn tcp_addrs(&self) -> Vec<std::net::SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| match l {
                Listener::Tcp(_, a) => Some(*a),
                Listener::Unix(..) => None,
            })
            .collect()
    }

    /// Serve until `ctx.shutdown` is cancelled: then stop accepting, remove the socket
    /// files, let in-flight requests finish (up to the shutdown timeout) and return.
    pub async fn run(self, ctx: ServeContext) -> Result<(), ServeError> {
        crate::server::panic::install_hook();
        if ctx.debug {
            crate::server::panic::set_capture_backtraces(true);
        }
        let conns = self.server.connection_limit;
        let shared = Arc::new(self.server.connection_shared(ctx.app.clone(), ctx.debug));
        let slots = Arc::new(Semaphore::new(conns));
        let allowed: Option<Arc<Vec<IpAddr>>> = self
            .server
            .web_server_addrs
            .clone()
            .or_else(web_server_addrs_from_env)
            .map(Arc::new);
        let tracker = TaskTracker::new();
        let force = CancellationToken::new();
        let ids = Arc::new(AtomicU64::new(1));
        let loops = self.listeners.into_iter().map(|l| {
            accept_loop(
                l,
                shared.clone(),
                tracker.clone(),
                ctx.shutdown.clone(),
                force.clone(),
                ids.clone(),
                Gate {
                    allowed: allowed.clone(),
                    slots: slots.clone(),
                },
            )
        });
        futures_util::future::join_all(loops).await;
        tracker.close();
        if tokio::time::timeout(self.server.shutdown_timeout, tracker.wait())
            .await
            .is_err()
        {
            log::warn!(
                target: TARGET,
                "{} connection(s) still busy after the shutdown timeout of {:?}; closing them",
                tracker.len(),
                self.server.shutdown_timeout
            );
            force.cancel();
            let _ = tokio::time::timeout(Duration::from_secs(1), tracker.wait()).await;
        }
        Ok(())
    }
}

/// Who may connect: TCP peers in `allowed` (if set), and `connection_limit` at once.
struct Gate {
    allowed: Option<Arc<Vec<IpAddr>>>,
    slots: Arc<Semaphore>,
}

async fn accept_loop(
    listener: Listener,
    shared: Arc<conn::Shared>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    force: CancellationToken,
    ids: Arc<AtomicU64>,
    gate: Gate,
) {
    let Gate { allowed, slots } = gate;
    loop {
        // `connection_limit`: beyond it, connections wait in the listen backlog.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
        };
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            r = accept(&listener) => r,
        };
        match accepted {
            Ok(conn) => {
                let id = ids.fetch_add(1, Ordering::Relaxed);
                let (shared, shutdown, force) = (shared.clone(), shutdown.clone(), force.clone());
                match conn {
                    Accepted::Unix(s) => {
                        let (r, w) = s.into_split();
                        tracker.spawn(holding(
                            permit,
                            conn::serve_connection(r, w, shared, id, shutdown, force),
                        ));
                    }
                    Accepted::Tcp(s, peer) => {
                        let peer = peer.ip().to_canonical();
                        if let Some(list) = &allowed {
                            if !list.iter().any(|a| a.to_canonical() == peer) {
                                log::warn!(
                                    target: TARGET,
                                    "refusing FastCGI connection from {peer} (not in FCGI_WEB_SERVER_ADDRS)"
                                );
                                continue;
                            }
                        }
                        let _ = s.set_nodelay(true);
                        let (r, w) = s.into_split();
                        tracker.spawn(holding(
                            permit,
                            conn::serve_connection(r, w, shared, id, shutdown, force),
                        ));
                    }
                }
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                log::error!(target: TARGET, "accept failed on {}: {e}", listener.url());
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }
    // Dropping the listener removes its socket file: new connections fail at once.
    drop(listener);
}

/// Run `fut` holding a connection slot.
async fn holding(permit: OwnedSemaphorePermit, fut: impl std::future::Future<Output = ()>) {
    fut.await;
    drop(permit);
}

enum Accepted {
    Unix(tokio::net::UnixStream),
    Tcp(tokio::net::TcpStream, std::net::SocketAddr),
}

async fn accept(l: &Listener) -> std::io::Result<Accepted> {
    match l {
        Listener::Unix(l, _) => l.accept().await.map(|(s, _)| Accepted::Unix(s)),
        Listener::Tcp(l, _) => l.accept().await.map(|(s, a)| Accepted::Tcp(s, a)),
    }
}

impl Server for FcgiServer {
    fn describe(&self) -> String {
        match &self.address {
            Some(Address::Unix(p)) => format!("fcgi on unix:{}", absolute(p).display()),
            Some(a @ Address::Tcp { .. }) => format!("fcgi on {a}"),
            None => "fcgi (no address configured)".to_string(),
        }
    }

    fn serve(self: Box<Self>, ctx: ServeContext) -> ServeFuture {
        Box::pin(async move {
            let bound = self.bind(&ctx.bind).await?;
            for url in bound.urls() {
                eprintln!("serving on {url}");
            }
            bound.run(ctx).await
        })
    }
}

/// Build the server from its `[server:NAME]` section.
pub fn build(conf: &FactoryConf) -> Result<Box<dyn Server>, ConfigErrors> {
    Ok(Box::new(FcgiServer::from_conf(conf)?))
}

/// The options of `[server:NAME]` for the FastCGI server.
pub const OPTIONS: &[Opt] = &[
    Opt::new(
        "socket",
        "unix socket path, relative to the ini's directory; a stale socket is replaced, and it is removed on exit",
    ),
    Opt::new(
        "umask",
        "octal; the socket gets mode 777 & ~umask (000 → 777). flup parsed it as a decimal int; 000 means the same",
    ),
    Opt::new("socket_mode", "octal permission bits of the socket (e.g. 660); instead of umask"),
    Opt::new("host", "TCP host to listen on (with 'port'); instead of 'socket'"),
    Opt::new("port", "TCP port to listen on (host defaults to 127.0.0.1)"),
    Opt::new("bindAddress", "flup's form: 'host:port', or a socket path"),
    Opt::new("maxChildren", "flup fcgi_fork: at most this many requests run at once"),
    Opt::new("maxThreads", "flup fcgi_thread: at most this many requests run at once"),
    Opt::new(
        "shutdown_timeout",
        "seconds in-flight requests may run after shutdown starts (default 30)",
    ),
    Opt::new(
        "connection_limit",
        "open connections at most; more wait in the listen backlog (default 1000)",
    ),
    Opt::new(
        "max_request_header_size",
        "bytes of PARAMS (CGI variables and headers) per request at most, else 431 (default 65536); a connection buffers 4 requests' worth, more get OVERLOADED",
    ),
    Opt::new(
        "header_read_timeout",
        "seconds from BEGIN_REQUEST to the end of its PARAMS, and from the accept to the first request (default 10; 0 = no limit)",
    ),
    Opt::new(
        "channel_timeout",
        "seconds a connection with no open request, or whose request waits for STDIN, may stay silent (default 120; 0 = never)",
    ),
    Opt::new(
        "send_timeout",
        "seconds one write to the web server may take before the connection is closed (default 60; 0 = never)",
    ),
    Opt::new(
        "trust_remote_user",
        "true: the REMOTE_USER variable becomes the request's user (auth_basic with trust_remote_user passes it); only when the web server authenticates and nobody else can reach the socket (default false: ignored)",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_address_strings() {
        assert_eq!(
            parse_bind_address("unix:/tmp/s").unwrap(),
            Address::Unix("/tmp/s".into())
        );
        // flup's bindAddress may be a bare socket path.
        assert_eq!(
            parse_bind_address("/run/mp/fcgi.sock").unwrap(),
            Address::Unix("/run/mp/fcgi.sock".into())
        );
        assert_eq!(
            parse_bind_address("../var/s").unwrap(),
            Address::Unix("../var/s".into())
        );
        assert_eq!(
            parse_bind_address("127.0.0.1:5050").unwrap(),
            Address::tcp("127.0.0.1", 5050)
        );
        assert_eq!(
            parse_bind_address("[::1]:9").unwrap(),
            Address::tcp("::1", 9)
        );
        assert_eq!(
            parse_bind_address(":9").unwrap(),
            Address::tcp("127.0.0.1", 9)
        );
        assert_eq!(parse_bind_address("*:9").unwrap(), Address::tcp("*", 9));
        assert!(parse_bind_address("host:port").is_err());
        assert!(parse_bind_address("nonsense").is_err());
    }

    #[tokio::test]
    async fn bind_overrides_use_the_shared_forms() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("o.sock");
        let s = FcgiServer::new(Address::Unix(dir.path().join("unused.sock")));
        let bound = s
            .bind(&[format!("unix:{}", sock.display()), ":0".into()])
            .await
            .unwrap();
        let urls = bound.urls();
        assert_eq!(urls[0], format!("fcgi:unix:{}", sock.display()));
        assert!(urls[1].starts_with("fcgi://127.0.0.1:"), "{urls:?}");
        assert!(!dir.path().join("unused.sock").exists());
        let e = s.bind(&["localhost".into()]).await.unwrap_err();
        assert!(e.0.contains("--bind localhost: missing port"), "{}", e.0);
    }

    #[test]
    fn mapproxy_config_ini_section() {
        let conf = FactoryConf::from_pairs(
            "Flup#fcgi_fork",
            [
                ("socket", "/srv/mp/etc/../var/fcgi-socket"),
                ("umask", "000"),
                ("maxRequests", "500"),
                ("minSpare", "4"),
                ("maxSpare", "16"),
                ("maxChildren", "64"),
            ],
        );
        let s = FcgiServer::from_conf(&conf).unwrap();
        assert_eq!(
            s.address,
            Some(Address::Unix("/srv/mp/etc/../var/fcgi-socket".into()))
        );
        assert_eq!(s.socket_mode, Some(0o777));
        assert_eq!(s.max_concurrency, Some(64));
        assert_eq!(s.describe(), "fcgi on unix:/srv/mp/var/fcgi-socket");
    }

    #[test]
    fn host_port_and_conflicts() {
        let s = FcgiServer::from_conf(&FactoryConf::from_pairs(
            "Flup#fcgi_thread",
            [("host", "127.0.0.1"), ("port", "5050"), ("maxThreads", "8")],
        ))
        .unwrap();
        assert_eq!(
            s.address,
            Some(Address::Tcp {
                host: "127.0.0.1".into(),
                port: 5050
            })
        );
        assert_eq!(s.max_concurrency, Some(8));

        let e = FcgiServer::from_conf(&FactoryConf::from_pairs(
            "Flup#fcgi_fork",
            [("socket", "/tmp/x"), ("port", "5050")],
        ))
        .unwrap_err();
        assert!(
            e.to_string()
                .contains("key 'port': cannot be combined with 'socket'"),
            "{e}"
        );

        let e = FcgiServer::from_conf(&FactoryConf::from_pairs(
            "Flup#fcgi_fork",
            [("host", "h"), ("umask", "9"), ("maxChildren", "0")],
        ))
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("key 'host': needs 'port'"), "{text}");
        assert!(
            text.contains("key 'umask': expected an octal mode"),
            "{text}"
        );
        assert!(text.contains("key 'maxChildren'"), "{text}");

        let s = FcgiServer::from_conf(&FactoryConf::from_pairs(
            "x#y",
            [("bindAddress", "localhost:7000"), ("socket_mode", "660")],
        ))
        .unwrap();
        assert_eq!(s.socket_mode, Some(0o660));
        assert_eq!(
            s.address,
            Some(Address::Tcp {
                host: "localhost".into(),
                port: 7000
            })
        );
    }

    #[test]
    fn limits_and_timeouts() {
        let s = FcgiServer::from_conf(&FactoryConf::from_pairs("Flup#fcgi_fork", [])).unwrap();
        assert_eq!(s.connection_limit, 1000);
        assert_eq!(s.max_params, 65536);
        assert_eq!(s.header_read_timeout, Some(Duration::from_secs(10)));
        assert_eq!(s.channel_timeout, Some(Duration::from_secs(120)));
        assert_eq!(s.send_timeout, Some(Duration::from_secs(60)));
        assert!(!s.trust_remote_user);
        let s = FcgiServer::from_conf(&FactoryConf::from_pairs(
            "Flup#fcgi_fork",
            [
                ("connection_limit", "5"),
                ("max_request_header_size", "131072"),
                ("header_read_timeout", "0"),
                ("channel_timeout", "2.5"),
                ("send_timeout", "0"),
                ("trust_remote_user", "yes"),
            ],
        ))
        .unwrap();
        assert!(s.trust_remote_user);
        assert_eq!(s.connection_limit, 5);
        assert_eq!(s.max_params, 131072);
        assert_eq!(s.header_read_timeout, None);
        assert_eq!(s.channel_timeout, Some(Duration::from_millis(2500)));
        assert_eq!(s.send_timeout, None);
        let e = FcgiServer::from_conf(&FactoryConf::from_pairs(
            "Flup#fcgi_fork",
            [
                ("connection_limit", "0"),
                ("max_request_header_size", "100"),
                ("header_read_timeout", "-1"),
                ("channel_timeout", "soon"),
                ("send_timeout", "inf"),
                ("trust_remote_user", "maybe"),
            ],
        ))
        .unwrap_err()
        .to_string();
        for k in [
            "connection_limit",
            "max_request_header_size",
            "header_read_timeout",
            "channel_timeout",
            "send_timeout",
            "trust_remote_user",
        ] {
            assert!(e.contains(&format!("key '{k}'")), "{k}: {e}");
        }
    }

    #[test]
    fn relative_socket_is_relative_to_the_ini() {
        let mut conf = FactoryConf::from_pairs("Flup#fcgi_fork", [("socket", "../var/s")]);
        for v in conf.local.values_mut() {
            v.location.file = "/srv/mp/etc/config.ini".into();
        }
        let s = FcgiServer::from_conf(&conf).unwrap();
        assert_eq!(
            s.address,
            Some(Address::Unix("/srv/mp/etc/../var/s".into()))
        );
    }

    #[test]
    fn registered_under_flup_names() {
        let reg = crate::registry::registry();
        for egg in ["Flup#fcgi_fork", "flup#fcgi_thread", "mapproxy-serve#fcgi"] {
            let f = reg
                .find(egg)
                .unwrap_or_else(|| panic!("{egg} not registered"));
            assert!(f.knows_option("socket"));
            assert!(f.ignores_option("maxRequests"));
        }
    }
}
