//! Listening addresses: parsing (`-b/--bind`, waitress's `listen`) and binding.
//!
//! Accepted forms, for the HTTP and FastCGI servers alike:
//!
//! | text            | means                                                    |
//! |-----------------|----------------------------------------------------------|
//! | `8080`, `:8080` | `127.0.0.1:8080` ([`DEFAULT_HOST`])                      |
//! | `host:port`     | a name or an IPv4 address (a name binds all it resolves to) |
//! | `[v6]:port`     | an IPv6 address                                          |
//! | `*:port`        | all interfaces: `0.0.0.0` and `[::]` (v6-only socket)    |
//! | `unix:/path`    | a unix socket (a relative path is taken as given)        |
//!
//! ```
//! use mapproxy_serve::server::bind::{parse_bind, parse_listen, BindAddr};
//!
//! assert_eq!(parse_bind(":8080").unwrap(), BindAddr::tcp("127.0.0.1", 8080));
//! assert_eq!(parse_bind("[::1]:80").unwrap(), BindAddr::tcp("::1", 80));
//! assert_eq!(parse_bind("unix:/run/app.sock").unwrap(), BindAddr::Unix("/run/app.sock".into()));
//! assert_eq!(parse_listen("*:80\n127.0.0.1:81").unwrap().len(), 2);
//! ```

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

use super::ServeError;

/// The host of the port-only forms (`8080`, `:8080`): loopback, for safety.
pub const DEFAULT_HOST: &str = "127.0.0.1";

/// The host that means every interface (`*:8080`).
pub const ALL_INTERFACES: &str = "*";

/// One address to listen on.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum BindAddr {
    /// A TCP address: `host` is an IP address (IPv6 without brackets), a name, or `*`.
    Tcp {
        /// IP address, host name, or [`ALL_INTERFACES`].
        host: String,
        /// Port; 0 picks a free one.
        port: u16,
    },
    /// A unix socket path.
    Unix(PathBuf),
}

impl BindAddr {
    /// A TCP address.
    pub fn tcp(host: impl Into<String>, port: u16) -> Self {
        BindAddr::Tcp {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for BindAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindAddr::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            BindAddr::Tcp { host, port } => write!(f, "{host}:{port}"),
            BindAddr::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

fn parse_port(s: &str, whole: &str) -> Result<u16, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid port '{s}' in '{whole}' (expected a number 0-65535)"
        ));
    }
    s.parse::<u16>()
        .map_err(|_| format!("invalid port '{s}' in '{whole}' (expected a number 0-65535)"))
}

/// Parse one address: `8080`, `:8080`, `host:port`, `[v6]:port`, `*:port`, `unix:/path`.
pub fn parse_bind(s: &str) -> Result<BindAddr, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty address (expected host:port, [v6]:port, *:port or unix:/path)".into());
    }
    if let Some(path) = t.strip_prefix("unix:") {
        if path.is_empty() {
            return Err(format!("missing path in '{t}' (expected unix:/path)"));
        }
        return Ok(BindAddr::Unix(PathBuf::from(path)));
    }
    if t.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(BindAddr::tcp(DEFAULT_HOST, parse_port(t, t)?));
    }
    if let Some(rest) = t.strip_prefix('[') {
        let (host, after) = rest
            .split_once(']')
            .ok_or_else(|| format!("missing ']' in '{t}' (expected [v6]:port)"))?;
        let port = after
            .strip_prefix(':')
            .ok_or_else(|| format!("missing port in '{t}' (expected [v6]:port)"))?;
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("invalid IPv6 address '{host}' in '{t}'"));
        }
        return Ok(BindAddr::tcp(host, parse_port(port, t)?));
    }
    let (host, port) = t
        .rsplit_once(':')
        .ok_or_else(|| format!("missing port in '{t}' (expected host:port)"))?;
    if host.contains(':') {
        return Err(format!(
            "IPv6 addresses need brackets: '[{host}]:{port}' instead of '{t}'"
        ));
    }
    let port = parse_port(port, t)?;
    if host.is_empty() {
        return Ok(BindAddr::tcp(DEFAULT_HOST, port));
    }
    if host.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(format!("invalid host '{host}' in '{t}'"));
    }
    Ok(BindAddr::tcp(host, port))
}

/// Parse waitress's `listen`: addresses separated by whitespace or newlines.
pub fn parse_listen(s: &str) -> Result<Vec<BindAddr>, String> {
    let v = s
        .split_whitespace()
        .map(parse_bind)
        .collect::<Result<Vec<_>, _>>()?;
    if v.is_empty() {
        return Err("no address given".into());
    }
    Ok(v)
}

/// A bound listener.
#[derive(Debug)]
pub enum Listener {
    /// A TCP listener and its real local address.
    Tcp(TcpListener, SocketAddr),
    /// A unix socket; the file is removed when this is dropped.
    Unix(UnixListener, SocketFile),
}

/// Removes a unix socket file when dropped, if it is still the one this server created (same
/// device and inode: a socket another process made at the path since is left alone).
#[derive(Debug)]
pub struct SocketFile {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

impl SocketFile {
    /// The socket path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for SocketFile {
    fn drop(&mut self) {
        if let Ok(m) = std::fs::symlink_metadata(&self.path) {
            if m.file_type().is_socket() && m.dev() == self.dev && m.ino() == self.ino {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

/// An accepted connection: TCP or unix.
pub type Stream = tokio_util::either::Either<TcpStream, UnixStream>;

impl Listener {
    /// What the listener is bound to: `127.0.0.1:8080`, `[::1]:8080`, `unix:/path`.
    pub fn display(&self) -> String {
        match self {
            Listener::Tcp(_, addr) => addr.to_string(),
            Listener::Unix(_, f) => format!("unix:{}", f.path().display()),
        }
    }

    /// The local address it is bound to.
    pub fn bound(&self) -> BoundAddr {
        match self {
            Listener::Tcp(_, a) => BoundAddr::Tcp(*a),
            Listener::Unix(_, f) => BoundAddr::Unix(f.path().to_path_buf()),
        }
    }

    /// Accept one connection; the peer address is given for TCP (IPv4-mapped addresses are
    /// shown as IPv4).
    pub async fn accept(&self) -> io::Result<(Stream, Option<SocketAddr>)> {
        match self {
            Listener::Tcp(l, _) => {
                let (s, peer) = l.accept().await?;
                let _ = s.set_nodelay(true);
                let peer = SocketAddr::new(peer.ip().to_canonical(), peer.port());
                Ok((tokio_util::either::Either::Left(s), Some(peer)))
            }
            Listener::Unix(l, _) => {
                let (s, _) = l.accept().await?;
                Ok((tokio_util::either::Either::Right(s), None))
            }
        }
    }
}

/// A bound address, as tests and callers see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BoundAddr {
    /// A TCP socket address (the real port when 0 was asked for).
    Tcp(SocketAddr),
    /// A unix socket path.
    Unix(PathBuf),
}

impl BoundAddr {
    /// The TCP address, if this is one.
    pub fn tcp(&self) -> Option<SocketAddr> {
        match self {
            BoundAddr::Tcp(a) => Some(*a),
            BoundAddr::Unix(_) => None,
        }
    }
}

const BACKLOG: i32 = 1024;

fn bind_tcp(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // `[::]` stays dual-stack as the OS configures it, unless `*` bound v4 separately.
        if addr.ip() != IpAddr::V6(Ipv6Addr::UNSPECIFIED) {
            sock.set_only_v6(true)?;
        }
    }
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(BACKLOG)?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(std::net::TcpListener::from(sock))
}

fn bind_tcp_v6only(addr: SocketAddr) -> io::Result<TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let sock = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))?;
    sock.set_only_v6(true)?;
    sock.set_reuse_address(true)?;
    sock.bind(&addr.into())?;
    sock.listen(BACKLOG)?;
    sock.set_nonblocking(true)?;
    TcpListener::from_std(std::net::TcpListener::from(sock))
}

fn no_ipv6(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::AddrNotAvailable | io::ErrorKind::Unsupported
    ) || e.raw_os_error() == Some(libc::EAFNOSUPPORT)
}

fn bind_error(what: &str, e: io::Error) -> ServeError {
    ServeError(format!("cannot listen on {what}: {e}"))
}

async fn bind_one_tcp(host: &str, port: u16, out: &mut Vec<Listener>) -> Result<(), ServeError> {
    let shown = BindAddr::tcp(host, port).to_string();
    if host == ALL_INTERFACES {
        let v4 = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        let l4 = bind_tcp(v4).map_err(|e| bind_error(&shown, e))?;
        let real = l4.local_addr().map_err(|e| bind_error(&shown, e))?;
        out.push(Listener::Tcp(l4, real));
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), real.port());
        match bind_tcp_v6only(v6) {
            Ok(l6) => {
                let real6 = l6.local_addr().map_err(|e| bind_error(&shown, e))?;
                out.push(Listener::Tcp(l6, real6));
            }
            Err(e) if no_ipv6(&e) => log::info!(
                target: "mapproxy_serve.server.bind",
                "no IPv6 for {shown}: {e}; serving IPv4 only"
            ),
            Err(e) => return Err(bind_error(&shown, e)),
        }
        return Ok(());
    }
    let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
        Ok(ip) => vec![SocketAddr::new(ip, port)],
        Err(_) => {
            let mut v: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| ServeError(format!("cannot resolve {shown}: {e}")))?
                .collect();
            v.dedup();
            v
        }
    };
    // A name that resolves to several addresses binds them all on one port; an address
    // family the machine lacks (`::1` without IPv6) is skipped if another one bound.
    let mut port = port;
    let mut bound_any = false;
    let n = addrs.len();
    for (i, addr) in addrs.into_iter().enumerate() {
        let addr = SocketAddr::new(addr.ip(), port);
        match bind_tcp(addr) {
            Ok(l) => {
                let real = l.local_addr().map_err(|e| bind_error(&shown, e))?;
                port = real.port();
                bound_any = true;
                out.push(Listener::Tcp(l, real));
            }
            Err(e) if n > 1 && no_ipv6(&e) && (bound_any || i + 1 < n) => log::info!(
                target: "mapproxy_serve.server.bind",
                "skipping {addr} for {shown}: {e}"
            ),
            Err(e) => return Err(bind_error(&shown, e)),
        }
    }
    if !bound_any {
        return Err(ServeError(format!("cannot listen on {shown}: no address")));
    }
    Ok(())
}

/// Listen on the unix socket `path` (the one place both servers bind unix sockets): a file
/// that is not a socket is never replaced, a socket a live server answers on is refused, a
/// stale one is removed first; `mode` is set on the new socket. The [`SocketFile`] removes it
/// again when dropped, unless another process replaced it meanwhile.
pub fn bind_unix(path: &Path, mode: Option<u32>) -> Result<(UnixListener, SocketFile), ServeError> {
    let shown = format!("unix:{}", path.display());
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(ServeError(format!(
                "cannot listen on {shown}: the file exists and is not a socket"
            )));
        }
        // A live server answers; a stale socket file is refused and removed.
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(ServeError(format!(
                "cannot listen on {shown}: it is in use (another process is serving on it)"
            )));
        }
        std::fs::remove_file(path).map_err(|e| bind_error(&shown, e))?;
    }
    let l = UnixListener::bind(path).map_err(|e| bind_error(&shown, e))?;
    let meta = std::fs::symlink_metadata(path).map_err(|e| bind_error(&shown, e))?;
    let file = SocketFile {
        path: path.to_path_buf(),
        dev: meta.dev(),
        ino: meta.ino(),
    };
    if let Some(mode) = mode {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
            .map_err(|e| ServeError(format!("cannot set mode {mode:o} on {shown}: {e}")))?;
    }
    Ok((l, file))
}

/// Bind every address, in order. Unix sockets get mode `unix_perms` (e.g. `0o600`); a stale
/// socket file is removed first, and the file is removed again when the listener drops.
pub async fn bind_all(addrs: &[BindAddr], unix_perms: u32) -> Result<Vec<Listener>, ServeError> {
    let mut out = Vec::new();
    for a in addrs {
        match a {
            BindAddr::Tcp { host, port } => bind_one_tcp(host, *port, &mut out).await?,
            BindAddr::Unix(p) => {
                let (l, file) = bind_unix(p, Some(unix_perms))?;
                out.push(Listener::Unix(l, file));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_only_forms_bind_loopback() {
        assert_eq!(parse_bind("8080"), Ok(BindAddr::tcp("127.0.0.1", 8080)));
        assert_eq!(parse_bind(":8080"), Ok(BindAddr::tcp("127.0.0.1", 8080)));
        assert_eq!(parse_bind(" 0 "), Ok(BindAddr::tcp("127.0.0.1", 0)));
    }

    #[test]
    fn host_forms() {
        assert_eq!(parse_bind("0.0.0.0:80"), Ok(BindAddr::tcp("0.0.0.0", 80)));
        assert_eq!(
            parse_bind("localhost:8080"),
            Ok(BindAddr::tcp("localhost", 8080))
        );
        assert_eq!(parse_bind("[::1]:8080"), Ok(BindAddr::tcp("::1", 8080)));
        assert_eq!(parse_bind("[::]:0"), Ok(BindAddr::tcp("::", 0)));
        assert_eq!(parse_bind("*:8080"), Ok(BindAddr::tcp("*", 8080)));
        assert_eq!(
            parse_bind("unix:/tmp/x.sock"),
            Ok(BindAddr::Unix("/tmp/x.sock".into()))
        );
        assert_eq!(
            parse_bind("unix:rel.sock"),
            Ok(BindAddr::Unix("rel.sock".into()))
        );
    }

    #[test]
    fn bad_forms_say_what_was_expected() {
        for (bad, needle) in [
            ("", "empty"),
            ("localhost", "missing port"),
            ("host:", "invalid port"),
            ("host:eighty", "invalid port 'eighty'"),
            ("host:65536", "invalid port '65536'"),
            ("99999", "invalid port"),
            ("::1:80", "need brackets"),
            ("[::1]", "missing port"),
            ("[::1:80", "missing ']'"),
            ("[nope]:80", "invalid IPv6"),
            ("unix:", "missing path"),
            ("a b:80", "invalid host"),
        ] {
            let e = parse_bind(bad).expect_err(bad);
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

    #[test]
    fn display_round_trips() {
        for s in ["127.0.0.1:80", "[::1]:80", "*:80", "unix:/a/b"] {
            assert_eq!(parse_bind(s).unwrap().to_string(), s);
        }
    }

    #[test]
    fn listen_lists() {
        assert_eq!(
            parse_listen("127.0.0.1:8080 [::1]:8080\n  *:9000\n"),
            Ok(vec![
                BindAddr::tcp("127.0.0.1", 8080),
                BindAddr::tcp("::1", 8080),
                BindAddr::tcp("*", 9000),
            ])
        );
        assert!(parse_listen("  \n ").is_err());
        assert!(parse_listen("127.0.0.1:1 nope").is_err());
    }

    #[tokio::test]
    async fn binds_port_zero_and_unix_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("s.sock");
        // a stale socket file from a dead process
        drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
        assert!(sock.exists());
        let ls = bind_all(
            &[BindAddr::tcp("127.0.0.1", 0), BindAddr::Unix(sock.clone())],
            0o600,
        )
        .await
        .unwrap();
        assert_eq!(ls.len(), 2);
        let tcp = ls[0].bound().tcp().unwrap();
        assert_ne!(tcp.port(), 0);
        let mode = std::fs::metadata(&sock).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // a live socket is not stolen
        let e = bind_all(&[BindAddr::Unix(sock.clone())], 0o600)
            .await
            .unwrap_err();
        assert!(e.0.contains("another process"), "{e}");
        // a port in use names the address and the OS error
        let e = bind_all(&[BindAddr::tcp("127.0.0.1", tcp.port())], 0o600)
            .await
            .unwrap_err();
        assert!(e.0.contains(&format!("127.0.0.1:{}", tcp.port())), "{e}");
        drop(ls);
        assert!(!sock.exists());
        // a regular file is never removed
        std::fs::write(&sock, "x").unwrap();
        assert!(bind_all(&[BindAddr::Unix(sock.clone())], 0o600)
            .await
            .is_err());
        assert!(sock.exists());
    }

    #[tokio::test]
    async fn all_interfaces_binds_v4_and_v6_on_one_port() {
        let ls = bind_all(&[BindAddr::tcp("*", 0)], 0o600).await.unwrap();
        let a = ls[0].bound().tcp().unwrap();
        assert_eq!(a.ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        if let Some(l6) = ls.get(1) {
            let b = l6.bound().tcp().unwrap();
            assert_eq!(b.ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            assert_eq!(a.port(), b.port());
            assert_eq!(l6.display(), format!("[::]:{}", b.port()));
        }
        // an IPv6 listener shows its address in brackets, as the serving line needs
        if let Ok(ls) = bind_all(&[BindAddr::tcp("::1", 0)], 0o600).await {
            let port = ls[0].bound().tcp().unwrap().port();
            assert_eq!(ls[0].display(), format!("[::1]:{port}"));
        }
    }
}
