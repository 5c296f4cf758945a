//! A real server speaking the S3 protocol over HTTP: moto's `moto_server` (PyPI `moto[server]`,
//! installed by `.ci/test` into `target/moto-venv`; `MOTO_SERVER` names the binary), started on
//! a free loopback port for one test and killed when dropped.
//!
//! [`MotoServer::start`] returns `None` after printing `SKIP: <what>` when the binary is
//! missing (panics instead when the environment variable `CI` is `true`).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct MotoServer {
    pub port: u16,
    child: Child,
}

fn find() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let venv =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/moto-venv/bin/moto_server");
    venv.is_file().then_some(venv)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// One plain HTTP/1.1 request (no signature: moto does not check one); the status code.
pub fn http(port: u16, method: &str, path: &str, body: &[u8]) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).ok()?;
    s.write_all(body).ok()?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).ok()?;
    let text = String::from_utf8_lossy(&out);
    text.split(' ').nth(1)?.parse().ok()
}

impl MotoServer {
    /// Starts `moto_server` on a free loopback port and waits (polling, 60 s deadline) until
    /// it answers.
    pub fn start(what: &str) -> Option<MotoServer> {
        let Some(bin) = find() else {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("{what}: moto_server is missing (PyPI moto[server], installed by .ci/test into target/moto-venv)");
            }
            println!("SKIP: {what}: moto_server not found (run .ci/test, or set MOTO_SERVER)");
            return None;
        };
        for _ in 0..5 {
            let port = free_port();
            let mut child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                if http(port, "GET", "/", b"").is_some() {
                    Self::use_test_credentials();
                    return Some(MotoServer { port, child });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // exited: port taken, try another
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("moto_server did not answer on port {port} within 60 s");
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("moto_server could not bind a loopback port");
    }

    /// Credentials for the caches of this test process (moto takes any signed request, and
    /// refuses unsigned reads of private objects as S3 does): the environment variables boto3
    /// and our S3 cache read, set once for the process.
    fn use_test_credentials() {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            std::env::set_var("AWS_ACCESS_KEY_ID", "moto-test-key");
            std::env::set_var("AWS_SECRET_ACCESS_KEY", "moto-test-secret");
        });
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket.
    pub fn create_bucket(&self, name: &str) {
        // 409 BucketAlreadyOwnedByYou: a second instance on the same bucket
        let status = http(self.port, "PUT", &format!("/{name}"), b"");
        assert!(
            matches!(status, Some(200 | 409)),
            "creating bucket {name}: {status:?}"
        );
    }

    /// Writes an object as any S3 client would (the tests' "MapProxy wrote this").
    pub fn put(&self, bucket: &str, key: &str, body: &[u8]) {
        let status = http(self.port, "PUT", &format!("/{bucket}/{key}"), body);
        assert_eq!(status, Some(200), "putting {bucket}/{key}");
    }
}

impl Drop for MotoServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
