//! A real `redis-server` (Debian's package, installed by `.ci/test`) started on a free loopback
//! port for one test and killed when dropped.
//!
//! [`RedisServer::start`] returns `None` after printing `SKIP: <what>` when the binary is
//! missing (panics instead when the environment variable `CI` is `true`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub port: u16,
    child: Child,
    _dir: tempfile::TempDir,
}

fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER") {
        return Some(PathBuf::from(p));
    }
    for d in std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .chain(["/usr/bin", "/usr/sbin"])
    {
        let p = PathBuf::from(d).join("redis-server");
        if p.is_file() {
            return Some(p);
        }
    }
    None
}

/// A port nothing listens on now (the kernel's choice for port 0).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One PING over a fresh connection: `+PONG` means the server is up.
fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// Starts `redis-server` without persistence on a free loopback port and waits (polling,
    /// 10 s deadline) until it answers PING.
    pub fn start(what: &str) -> Option<RedisServer> {
        let Some(bin) = find() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{what}: redis-server is missing (Debian package redis-server, installed by .ci/test)");
            }
            println!("SKIP: {what}: redis-server not found (apt-get install redis-server, or set REDIS_SERVER)");
            return None;
        };
        let dir = tempfile::tempdir().expect("redis dir");
        // the port may be taken between the check and the server's bind: try a few
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--save",
                    "",
                    "--appendonly",
                    "no",
                ])
                .arg("--dir")
                .arg(dir.path())
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if ping(port) {
                    return Some(RedisServer {
                        port,
                        child,
                        _dir: dir,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: port taken, try another
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("redis-server did not answer on port {port} within 10 s");
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("redis-server could not bind a loopback port");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
