//! The real `mapproxy-serve` binary on MapProxy's own `config.ini` (`ini/fcgi/etc/`:
//! `egg:MapProxy#app` with `mapproxy.yaml`, `egg:Flup#fcgi_fork` on
//! `%(here)s/../var/fcgi-socket`), served behind a real nginx with
//! the recipe of `tests/fcgi/nginx.conf`; then SIGTERM. Also the `-b` override and `check`.
//!
//! The ini tree is copied into a tempdir, so the socket appears in the copy's `var/`.
//! A missing nginx is skipped with a visible `SKIP:` line, unless `CI=true`.

mod support;

use support::{fcgi as common, peer};

use std::io::{BufRead, BufReader};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use peer::{find, start_peer, Kind};

const BIN: &str = env!("CARGO_BIN_EXE_mapproxy-serve");

fn repo_ini() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("ini/fcgi")
}

/// Copy a directory tree (files and directories only).
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read_dir") {
        let entry = entry.expect("entry");
        let ty = entry.file_type().expect("file type");
        let dest = to.join(entry.file_name());
        if ty.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if ty.is_file() {
            std::fs::copy(entry.path(), &dest).expect("copy");
        }
    }
}

/// A copy of `ini/fcgi` in a fresh tempdir (readable by a web server's workers).
fn ini_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    copy_tree(&repo_ini(), dir.path());
    assert!(dir.path().join("var").is_dir(), "ini/fcgi/var is in git");
    dir
}

/// The binary running in the background; stderr lines are collected. Killed if dropped
/// while still running.
struct ServerProc {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl ServerProc {
    fn spawn(args: &[&str]) -> ServerProc {
        let mut child = Command::new(BIN)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mapproxy-serve");
        let pipe = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let all = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Ok(mut a) = all.lock() {
                    a.push_str(&line);
                    a.push('\n');
                }
                let _ = tx.send(line);
            }
        });
        ServerProc {
            child,
            lines,
            stderr,
        }
    }

    fn stderr(&self) -> String {
        self.stderr.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The first stderr line starting with `prefix`, within 30 s.
    fn wait_line(&mut self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self
                .lines
                .recv_timeout(left.min(Duration::from_millis(100)))
            {
                Ok(line) if line.starts_with(prefix) => return line,
                Ok(_) => {}
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    panic!(
                        "mapproxy-serve exited before '{prefix}':\n{}",
                        self.stderr()
                    )
                }
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "mapproxy-serve exited ({status}) before '{prefix}':\n{}",
                    self.stderr()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no '{prefix}' line within 30 s:\n{}",
                self.stderr()
            );
        }
    }

    /// SIGTERM, then wait (bounded) for the exit status.
    fn terminate(&mut self) -> ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) on the child this test started and has not reaped yet.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "kill");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no exit within 30 s of SIGTERM:\n{}", self.stderr());
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn is_socket(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_socket())
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

/// What the seeds' deployment must do through nginx: MapProxy at `/mapproxy`.
async fn check_through_nginx(port: u16) {
    let base = format!("http://127.0.0.1:{port}");
    let http = client();

    // Capabilities: URLs built from the public host and the mount path nginx passed.
    let res = http
        .get(format!(
            "{base}/mapproxy/service?SERVICE=WMTS&REQUEST=GetCapabilities"
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/xml");
    let text = res.text().await.expect("body");
    assert!(
        text.contains(&format!("{base}/mapproxy/service?")),
        "KVP URL from SCRIPT_NAME and Host:\n{text}"
    );

    // The mount path alone: MapProxy's welcome page, links under /mapproxy.
    let res = http
        .get(format!("{base}/mapproxy"))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 200);
    let text = res.text().await.expect("body");
    assert!(
        text.starts_with("<html><body><h1>Welcome to MapProxy 7.0.0</h1>"),
        "{text}"
    );
    assert!(text.contains(&format!("{base}/mapproxy/demo/")), "{text}");

    // A POST body (300 KiB: more than one STDIN record, more than nginx buffers in memory):
    // read past by the server, answered as MapProxy answers a bare /service.
    let data: Vec<u8> = (0..300 * 1024u32).map(|i| (i % 253) as u8).collect();
    let res = http
        .post(format!("{base}/mapproxy/service"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 400);
    let text = res.text().await.expect("body");
    assert!(text.contains("MissingParameterValue"), "{text}");

    // Many tile requests on one keep-alive HTTP connection (and nginx's upstream keepalive):
    // the first fills the cache in the seeds' var/cache_data, the rest are cache hits.
    let mut first: Option<bytes::Bytes> = None;
    for i in 0..300 {
        let res = http
            .get(format!(
                "{base}/mapproxy/tms/1.0.0/debug/webmercator/0/0/0.png?i={i}"
            ))
            .send()
            .await
            .expect("keep-alive GET");
        assert_eq!(res.status(), 200, "request {i}");
        assert_eq!(res.headers()["content-type"], "image/png");
        let body = res.bytes().await.expect("tile");
        match &first {
            None => first = Some(body),
            Some(f) => assert_eq!(&body, f, "request {i}: the cached tile"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeds_config_ini_behind_nginx_then_sigterm() {
    let dir = ini_copy();
    let socket = dir.path().join("var/fcgi-socket");
    // A stale socket from a crashed run is replaced.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("stale socket"));
    assert!(is_socket(&socket));

    let config = dir.path().join("etc/config.ini");
    let mut server = ServerProc::spawn(&[config.to_str().expect("utf-8 path")]);
    let line = server.wait_line("serving on ");
    assert_eq!(line, format!("serving on fcgi:unix:{}", socket.display()));
    let mode = std::fs::metadata(&socket)
        .expect("socket")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o777, "umask = 000");

    if let Some(nginx) = find(Kind::Nginx) {
        let nginx_tmp = tempfile::tempdir().expect("tempdir");
        let peer = {
            let (socket, tmp) = (socket.clone(), nginx_tmp.path().to_path_buf());
            tokio::task::spawn_blocking(move || {
                start_peer(Kind::Nginx, &nginx, "nginx.conf", &socket, &tmp)
            })
            .await
            .expect("start nginx")
        };
        check_through_nginx(peer.port).await;
        tokio::task::spawn_blocking(move || drop(peer))
            .await
            .expect("stop nginx");
    }

    let status = tokio::task::spawn_blocking(move || {
        let s = server.terminate();
        (s, server.stderr())
    })
    .await
    .expect("terminate");
    assert_eq!(status.0.code(), Some(0), "exit status:\n{}", status.1);
    assert!(!is_socket(&socket), "socket removed on exit");
    assert!(dir.path().join("var/.gitignore").is_file());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_override_replaces_the_configured_socket() {
    let dir = ini_copy();
    let socket = dir.path().join("x.sock");
    let config = dir.path().join("etc/config.ini");
    let bind = format!("unix:{}", socket.display());
    let mut server = ServerProc::spawn(&[config.to_str().expect("utf-8 path"), "-b", &bind]);
    let line = server.wait_line("serving on ");
    assert_eq!(line, format!("serving on fcgi:{bind}"));
    assert!(is_socket(&socket));
    assert!(
        !common::exists(&dir.path().join("var/fcgi-socket")),
        "-b replaces the configured socket"
    );

    // One request, spoken as a web server would.
    let mut conn = tokio::net::UnixStream::connect(&socket)
        .await
        .expect("connect");
    let vars = common::cgi("/tms/1.0.0/", "");
    common::send_request(&mut conn, 1, false, &common::kv(&vars), b"").await;
    let res = tokio::time::timeout(Duration::from_secs(30), common::read_response(&mut conn, 1))
        .await
        .expect("response in time")
        .expect("response");
    let text = res.text();
    let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
    assert!(head.starts_with("Status: 200"), "{head}");
    assert!(
        body.contains("/mapproxy/tms/1.0.0/debug/webmercator"),
        "{body}"
    );
    drop(conn);

    let (status, stderr) = tokio::task::spawn_blocking(move || {
        let s = server.terminate();
        (s, server.stderr())
    })
    .await
    .expect("terminate");
    assert_eq!(status.code(), Some(0), "exit status:\n{stderr}");
    assert!(!common::exists(&socket), "socket removed on exit");
}

#[test]
fn check_accepts_the_seeds_config_ini() {
    let out = Command::new(BIN)
        .arg("check")
        .arg(repo_ini().join("etc/config.ini"))
        .output()
        .expect("run check");
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.contains("config.ini: ok"), "{all}");
}
