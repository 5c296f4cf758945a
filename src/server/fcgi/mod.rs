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
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::FactoryConf;
use crate::error::{ConfigError, ConfigErrors};
use crate::registry::Opt;
use crate::server::bind::{self, parse_bind};
use crate::server::{ServeContext, ServeError, ServeFuture, Server};

const TARGET: &str = "mapproxy_serve.server.fcgi";

/// Requests one connection may have open at once; more get `OVERLOADED`.
const MAX_REQS_PER_CONN: usize = 256;

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
}

impl FcgiServer {
    /// A server on `address`, no concurrency limit, a 30 s shutdown timeout.
    pub fn new(address: Address) -> Self {
        FcgiServer {
            address: Some(address),
            socket_mode: None,
            max_concurrency: None,
            shutdown_timeout: Duration::from_secs(30),
            web_server_addrs: None,
        }
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
            match conf.get_parsed::<usize>(k, "a positive integer") {
                Ok(Some(0)) => errs.push(conf.error(k, "expected a positive integer, found '0'")),
                Ok(Some(n)) => max_concurrency = Some(max_concurrency.map_or(n, |m| m.min(n))),
                Ok(None) => {}
                Err(e) => errs.push(e),
            }
        }
        let shutdown_timeout = match conf.get_parsed::<f64>("shutdown_timeout", "seconds") {
            Ok(Some(s)) if s.is_finite() && s >= 0.0 => Duration::from_secs_f64(s),
            Ok(Some(_)) => {
                errs.push(conf.error("shutdown_timeout", "expected seconds (0 or more)"));
                Duration::from_secs(30)
            }
            Ok(None) => Duration::from_secs(30),
            Err(e) => {
                errs.push(e);
                Duration::from_secs(30)
            }
        };
        errs.into_result(FcgiServer {
            address,
            socket_mode,
            max_concurrency,
            shutdown_timeout,
            web_server_addrs: None,
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
    let path = absolute(path);
    let shown = path.display();
    if let Ok(meta) = std::fs::symlink_metadata(&path) {
        if !meta.file_type().is_socket() {
            return Err(ServeError(format!(
                "fcgi: {shown} exists and is not a socket; not replacing it"
            )));
        }
        if std::os::unix::net::UnixStream::connect(&path).is_ok() {
            return Err(ServeError(format!(
                "fcgi: {shown} is in use by a running server"
            )));
        }
        log::debug!(target: TARGET, "removing stale socket {shown}");
        std::fs::remove_file(&path)
            .map_err(|e| ServeError(format!("fcgi: cannot remove stale socket {shown}: {e}")))?;
    }
    let listener = UnixListener::bind(&path)
        .map_err(|e| ServeError(format!("fcgi: cannot listen on {shown}: {e}")))?;
    if let Some(mode) = mode {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ServeError(format!("fcgi: cannot chmod {shown}: {e}")))?;
    }
    let meta =
        std::fs::symlink_metadata(&path).map_err(|e| ServeError(format!("fcgi: {shown}: {e}")))?;
    Ok(Listener::Unix(
        listener,
        SocketFile {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

/// Removes the socket file when dropped, if it is still the one this server created.
#[derive(Debug)]
struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[derive(Debug)]
enum Listener {
    Unix(UnixListener, SocketFile),
    Tcp(TcpListener, std::net::SocketAddr),
}

impl Listener {
    fn url(&self) -> String {
        match self {
            Listener::Unix(_, f) => format!("fcgi:unix:{}", f.path.display()),
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
        let limit = self.server.max_concurrency;
        let shared = Arc::new(conn::Shared {
            app: ctx.app.clone(),
            limit: limit.map(|n| Arc::new(Semaphore::new(n))),
            debug: ctx.debug,
            max_reqs_per_conn: MAX_REQS_PER_CONN,
            max_conns: limit.unwrap_or(1024),
            max_reqs: limit.unwrap_or(1024),
        });
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
                allowed.clone(),
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

async fn accept_loop(
    listener: Listener,
    shared: Arc<conn::Shared>,
    tracker: TaskTracker,
    shutdown: CancellationToken,
    force: CancellationToken,
    ids: Arc<AtomicU64>,
    allowed: Option<Arc<Vec<IpAddr>>>,
) {
    loop {
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
                        tracker.spawn(conn::serve_connection(r, w, shared, id, shutdown, force));
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
                        tracker.spawn(conn::serve_connection(r, w, shared, id, shutdown, force));
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
