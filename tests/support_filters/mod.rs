//! Helpers for tests that run the real `mapproxy-serve` binary on an ini file and talk to it
//! over HTTP: start on `127.0.0.1:0`, read the `serving on` line, send raw-path requests.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[path = "../common/programs.rs"]
mod programs;
#[allow(unused_imports)] // not every test crate that includes this module needs it
pub use programs::find_program;

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};

/// The `mapproxy-serve` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_mapproxy-serve");

/// A running `mapproxy-serve`; stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Served {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Served {
    /// Serve `config` (a path or `config:` URI) with extra arguments (`NAME=VALUE`, options)
    /// on a free loopback port; panics with its stderr when it does not come up.
    pub fn start(config: impl AsRef<Path>, extra: &[&str]) -> Served {
        Self::start_bin(BIN, config, extra)
    }

    /// Like [`Served::start`] with another binary that has the same command line.
    pub fn start_bin(bin: &str, config: impl AsRef<Path>, extra: &[&str]) -> Served {
        let mut child = Command::new(bin)
            .arg(config.as_ref())
            .args(["-b", "127.0.0.1:0"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr pipe");
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let mut s = sink.lock().unwrap_or_else(|e| e.into_inner());
                s.push_str(&line);
                s.push('\n');
            }
        });
        let mut served = Served {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = served.stderr();
            if let Some(addr) = text
                .lines()
                .find_map(|l| l.strip_prefix("serving on http://"))
                .and_then(|a| a.trim().parse().ok())
            {
                served.addr = addr;
                return served;
            }
            if let Ok(Some(status)) = served.child.try_wait() {
                panic!("{bin} exited ({status}) before serving:\n{text}");
            }
            assert!(
                Instant::now() < deadline,
                "{bin} did not start serving within 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Everything it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wait (at most 10 s) until stderr has a line matching `pred`; that line.
    pub fn wait_stderr_line(&self, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.stderr();
            if let Some(l) = text.lines().find(|l| pred(l)) {
                return l.to_string();
            }
            assert!(
                Instant::now() < deadline,
                "no such line on stderr within 10 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        // SIGTERM for a clean stop (flushes log files), then SIGKILL after 5 s.
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A response, its body collected.
#[derive(Debug)]
pub struct Resp {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Resp {
    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON (the echo app's answer).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }

    /// A header as text (`""` when missing).
    pub fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// Send one request on a new HTTP/1.1 connection. The path is sent exactly as given (no
/// `..` or `%2e` normalisation, unlike URL-parsing clients); `Host` defaults to the address.
pub async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: impl Into<Bytes>,
) -> Resp {
    let stream = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .expect("connect timeout")
    .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io)
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut b = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", addr.to_string());
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(Full::new(body.into())).expect("request");
    let res = tokio::time::timeout(Duration::from_secs(30), async {
        let res = sender.send_request(req).await.expect("send request");
        let (parts, body) = res.into_parts();
        let body = body.collect().await.expect("response body").to_bytes();
        Resp {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    })
    .await;
    res.unwrap_or_else(|_| panic!("{method} {path}: no answer within 30 s"))
}

/// `GET path` with headers.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    send(addr, "GET", path, headers, Bytes::new()).await
}

/// `Authorization: Basic ...` for `user:password`.
pub fn basic(user_pass: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

/// Write `text` to `dir/name` and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, text).expect("write file");
    p
}

/// A loopback port that was free a moment ago (for peers that cannot listen on port 0).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}
