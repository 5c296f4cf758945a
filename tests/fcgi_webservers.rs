//! Real web servers as FastCGI clients: nginx (two recipes), lighttpd and Apache
//! `mod_proxy_fcgi`, each started on loopback with a config from `tests/fcgi/`, in front of
//! the FastCGI server running in-process with the echo app.
//!
//! A missing web server is skipped with a visible `SKIP:` line, unless `CI=true`.

#[path = "fcgi/common.rs"]
mod common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// Which web server, and how to run it in the foreground.
#[derive(Clone, Copy, Debug)]
enum Kind {
    Nginx,
    Lighttpd,
    Apache,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Lighttpd => "lighttpd",
            Kind::Apache => "apache2",
        }
    }

    fn command(self, bin: &Path, conf: &Path, tmp: &Path) -> Command {
        let mut c = Command::new(bin);
        match self {
            Kind::Nginx => c
                .arg("-e")
                .arg(tmp.join("nginx-early-error.log"))
                .arg("-c")
                .arg(conf),
            Kind::Lighttpd => c.arg("-D").arg("-f").arg(conf),
            Kind::Apache => c.arg("-X").arg("-f").arg(conf),
        };
        c.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(tmp.join("stderr.log")).expect("stderr log"),
            ));
        c
    }

    fn error_logs(self, tmp: &Path) -> String {
        let mut out = String::new();
        for name in [
            "stderr.log",
            "nginx-early-error.log",
            "nginx-error.log",
            "lighttpd-error.log",
            "apache-error.log",
        ] {
            if let Ok(t) = std::fs::read_to_string(tmp.join(name)) {
                out.push_str(&format!("--- {name}\n{t}"));
            }
        }
        out
    }
}

/// A running web server; stopped (SIGTERM, then SIGKILL) when dropped.
struct Peer {
    child: Child,
    port: u16,
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The binary, or `None` (after a SKIP line) when it is not installed; panics under CI.
fn find(kind: Kind) -> Option<PathBuf> {
    let name = kind.binary();
    let path = std::env::var("PATH").unwrap_or_default();
    let found = path
        .split(':')
        .chain(["/usr/sbin", "/usr/local/sbin", "/sbin"])
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{name} is not installed (required when CI=true)"
        );
        eprintln!("SKIP: {name} is not installed; not testing it as a FastCGI client");
    }
    found
}

/// A port that was free a moment ago (nginx cannot listen on port 0).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// Fill in a config template from `tests/fcgi/`.
fn render(template: &str, port: u16, socket: &Path, tmp: &Path) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fcgi")
        .join(template);
    let text = std::fs::read_to_string(&src).expect("template");
    let text = text
        .replace("@PORT@", &port.to_string())
        .replace("@SOCKET@", &socket.display().to_string())
        .replace("@TMP@", &tmp.display().to_string());
    let out = tmp.join(template);
    std::fs::write(&out, text).expect("write config");
    out
}

/// Start `kind` with `template`; retry once on another port if it does not come up.
fn start_peer(kind: Kind, bin: &Path, template: &str, socket: &Path, tmp: &Path) -> Peer {
    for attempt in 0..2 {
        let port = free_port();
        let conf = render(template, port, socket, tmp);
        let child = kind
            .command(bin, &conf, tmp)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", kind.binary()));
        let mut peer = Peer { child, port };
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut exited = false;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return peer;
            }
            if let Ok(Some(_)) = peer.child.try_wait() {
                exited = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "{} did not come up on port {port} (attempt {attempt}, exited: {exited}):\n{}",
            kind.binary(),
            kind.error_logs(tmp)
        );
        drop(peer);
    }
    panic!("{} did not start: {}", kind.binary(), kind.error_logs(tmp));
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect()
}

/// What every web server must get right; returns the FastCGI connection ids seen by the
/// keep-alive run.
async fn check(kind: Kind, port: u16, keep_alive_requests: usize) -> HashSet<String> {
    let name = kind.binary();
    let base = format!("http://127.0.0.1:{port}");
    let http = client();

    // Mount path, path, query, public host, status passthrough, two Set-Cookie headers.
    let res = http
        .get(format!(
            "{base}/mapproxy/service?SERVICE=WMS&REQUEST=GetCapabilities&status=404"
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 404, "{name}: status passthrough");
    assert_eq!(
        cookies(&res),
        vec!["a=1; Path=/".to_string(), "b=2; Path=/".to_string()],
        "{name}: both Set-Cookie headers"
    );
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "method"), "GET", "{name}");
    assert_eq!(field(&body, "mount"), "/mapproxy", "{name}: {body}");
    assert_eq!(field(&body, "path"), "/service", "{name}: {body}");
    assert_eq!(
        field(&body, "query"),
        "SERVICE=WMS&REQUEST=GetCapabilities&status=404",
        "{name}"
    );
    assert_eq!(field(&body, "scheme"), "http", "{name}");
    assert_eq!(field(&body, "host"), format!("127.0.0.1:{port}"), "{name}");
    assert!(
        field(&body, "remote").starts_with("127.0.0.1:"),
        "{name}: {body}"
    );

    for (status, want) in [(201u16, 201u16), (500, 500), (302, 302)] {
        let res = http
            .get(format!("{base}/mapproxy/s?status={status}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status().as_u16(), want, "{name}: status {status}");
    }

    // Escaped characters in the path survive the trip through PATH_INFO.
    let res = http
        .get(format!("{base}/mapproxy/a%20b/c%25d"))
        .send()
        .await
        .expect("GET");
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "path"), "/a%20b/c%25d", "{name}: {body}");

    // The mount path alone.
    let res = http
        .get(format!("{base}/mapproxy"))
        .send()
        .await
        .expect("GET");
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "mount"), "/mapproxy", "{name}: {body}");
    assert_eq!(field(&body, "path"), "/", "{name}: {body}");

    // A POST body (1 MiB) arrives intact.
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 249) as u8).collect();
    let res = http
        .post(format!("{base}/mapproxy/post?x=1"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200, "{name}: POST");
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "method"), "POST", "{name}");
    assert_eq!(field(&body, "body_len"), data.len().to_string(), "{name}");
    assert_eq!(
        field(&body, "body_sum"),
        checksum(&data).to_string(),
        "{name}"
    );
    assert_eq!(
        field(&body, "content_type"),
        "application/octet-stream",
        "{name}"
    );

    // A streamed 5 MiB response arrives intact.
    let n = 5 * 1024 * 1024u64;
    let res = http
        .get(format!("{base}/mapproxy/big?n={n}"))
        .send()
        .await
        .expect("GET big");
    assert_eq!(res.status(), 200, "{name}: big");
    let bytes = res.bytes().await.expect("big body");
    assert_eq!(bytes.len() as u64, n, "{name}: big length");
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, b)| *b == big_byte(i as u64)),
        "{name}: big content"
    );

    // Many requests on one keep-alive HTTP connection.
    let mut conns = HashSet::new();
    for i in 0..keep_alive_requests {
        let res = http
            .get(format!("{base}/mapproxy/k?i={i}"))
            .send()
            .await
            .expect("keep-alive GET");
        assert_eq!(res.status(), 200, "{name}: request {i}");
        let body = res.text().await.expect("body");
        assert_eq!(field(&body, "query"), format!("i={i}"), "{name}");
        conns.insert(field(&body, "conn").to_string());
    }
    conns
}

async fn run_peer(kind: Kind, template: &str) -> Option<HashSet<String>> {
    let bin = find(kind)?;
    let srv = start_unix(|s| s.socket_mode(0o777)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let peer = {
        let (bin, socket, tmp) = (bin.clone(), srv.socket.clone(), tmp.path().to_path_buf());
        let template = template.to_string();
        tokio::task::spawn_blocking(move || start_peer(kind, &bin, &template, &socket, &tmp))
            .await
            .expect("start peer")
    };
    let conns = check(kind, peer.port, 200).await;
    tokio::task::spawn_blocking(move || drop(peer))
        .await
        .expect("stop peer");
    srv.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), srv.done)
        .await
        .expect("server stops")
        .expect("server task");
    Some(conns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_split_path_info_with_keepalive_upstream() {
    let Some(conns) = run_peer(Kind::Nginx, "nginx.conf").await else {
        return;
    };
    // `fastcgi_keep_conn on` + upstream keepalive: 200 requests over a few connections.
    assert!(
        conns.len() <= 4,
        "nginx reused FastCGI connections: {} used",
        conns.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_if_uri_variant() {
    run_peer(Kind::Nginx, "nginx-if.conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lighttpd_fastcgi_server() {
    run_peer(Kind::Lighttpd, "lighttpd.conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_mod_proxy_fcgi() {
    let Some(conns) = run_peer(Kind::Apache, "apache.conf").await else {
        return;
    };
    // enablereuse=on keeps backend connections.
    assert!(
        conns.len() < 50,
        "Apache reused FastCGI connections: {} used",
        conns.len()
    );
}
