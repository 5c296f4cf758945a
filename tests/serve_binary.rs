//! The server through the real `mapproxy-serve` binary: addresses (port 0, unix
//! sockets, `-b`), HTTP/1.1 and h2c, 431/413, header timeouts against silent and slowloris
//! connections, half-closing clients, graceful SIGTERM, panics, the pid file, `NAME=VALUE`,
//! exit statuses and `check`.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::{raw_exchange, run, serve, write, DEADLINE};

/// A test site: the HTTP server on port 0 with short limits, and the echo app with its test
/// paths. `server_extra` lines go into `[server:main]`.
fn site(dir: &Path, server_extra: &str) -> PathBuf {
    write(
        dir,
        "site.ini",
        &format!(
            "[server:main]
use = egg:mapproxy-serve#http
header_read_timeout = 0.5
max_request_header_size = 8192
max_request_body_size = 1000
shutdown_timeout = 10
{server_extra}

[app:main]
use = egg:mapproxy-serve#echo
panic_path = /boom
slow_path = /slow
slow_seconds = 1
"
        ),
    )
}

fn tcp_site(dir: &Path) -> PathBuf {
    site(dir, "port = 0")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

fn h2c_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http2_prior_knowledge()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

async fn get(c: &reqwest::Client, url: &str) -> (u16, String) {
    let res = c.get(url).send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.text().await.expect("body"))
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

fn path(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The first line of a raw HTTP response: `HTTP/1.1 413 Payload Too Large`.
fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_0_http1_and_h2c() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let s = serve(&[path(&ini)], None);
    assert!(s.listen.starts_with("http://127.0.0.1:"), "{}", s.listen);
    assert_ne!(s.host_port(), "127.0.0.1:0");

    let res = client().get(s.url("/a?b=1")).send().await.unwrap();
    assert_eq!(res.version(), reqwest::Version::HTTP_11);
    assert_eq!(res.status(), 200);
    let v = json(&res.text().await.unwrap());
    assert_eq!(v["path_info"], "/a");
    assert_eq!(v["query"], "b=1");
    assert_eq!(v["remote_addr"], "127.0.0.1");

    let h2 = h2c_client();
    for _ in 0..3 {
        let res = h2.get(s.url("/h2")).send().await.unwrap();
        assert_eq!(res.version(), reqwest::Version::HTTP_2);
        assert_eq!(res.status(), 200);
        assert_eq!(json(&res.text().await.unwrap())["path_info"], "/h2");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_from_the_section_and_from_bind() {
    let dir = tempfile::tempdir().unwrap();
    // The section's unix socket.
    let sock = dir.path().join("section.sock");
    let ini = site(dir.path(), &format!("unix_socket = {}", sock.display()));
    let mut s = serve(&[path(&ini)], None);
    assert_eq!(s.listen, format!("unix:{}", sock.display()));
    let r = raw_exchange(
        UnixStream::connect(&sock).unwrap(),
        b"GET /u HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(status_line(&r).contains(" 200 "), "{r}");
    assert!(r.contains("\"path_info\": \"/u\""), "{r}");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).code(), Some(0));
    assert!(!sock.exists(), "the socket file is removed on exit");

    // -b unix:/path replaces the section's TCP address.
    let ini = tcp_site(dir.path());
    let sock = dir.path().join("bind.sock");
    let arg = format!("unix:{}", sock.display());
    let s = serve(&[path(&ini), "-b", &arg], None);
    assert_eq!(s.listen, arg);
    assert_eq!(s.count_lines(|l| l.starts_with("serving on")), 1);
    let r = raw_exchange(
        UnixStream::connect(&sock).unwrap(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(status_line(&r).contains(" 200 "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_option_overrides_the_section() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("not-used.sock");
    let ini = site(dir.path(), &format!("unix_socket = {}", sock.display()));
    let s = serve(&[path(&ini), "-b", "127.0.0.1:0"], None);
    assert!(s.listen.starts_with("http://127.0.0.1:"), "{}", s.listen);
    assert_eq!(s.count_lines(|l| l.starts_with("serving on")), 1);
    assert!(!sock.exists(), "the section's socket is not bound");
    assert_eq!(get(&client(), &s.url("/")).await.0, 200);
    // A bare port and `:port` mean 127.0.0.1.
    for b in ["0", ":0"] {
        let s = serve(&[path(&ini), "-b", b], None);
        assert!(
            s.listen.starts_with("http://127.0.0.1:"),
            "{b}: {}",
            s.listen
        );
        assert_eq!(get(&client(), &s.url("/")).await.0, 200);
    }
    // A malformed address is a usage error.
    for b in ["localhost", "::1:80", "unix:"] {
        let r = run(&[path(&ini), "-b", b], None);
        assert_eq!(r.code(), Some(2), "-b {b}: {}", r.stderr);
        assert!(r.stderr.contains(&format!("--bind {b}:")), "{}", r.stderr);
    }
}

#[test]
fn header_too_large_431_and_body_too_large_413() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let s = serve(&[path(&ini)], None);
    let connect = || {
        let c = TcpStream::connect(s.host_port()).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        c
    };

    let big = "x".repeat(20_000);
    let req = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {big}\r\n\r\n");
    let r = raw_exchange(connect(), req.as_bytes());
    assert!(status_line(&r).contains(" 431 "), "{}", status_line(&r));

    // Declared too large: refused before the app reads anything.
    let body = "y".repeat(2000);
    let req = format!(
        "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000\r\nConnection: close\r\n\r\n{body}"
    );
    let r = raw_exchange(connect(), req.as_bytes());
    assert!(status_line(&r).contains(" 413 "), "{}", status_line(&r));

    // Chunked: the limit is found while the body streams.
    let req = format!(
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         200\r\n{}\r\n200\r\n{}\r\n200\r\n{}\r\n0\r\n\r\n",
        "a".repeat(0x200),
        "b".repeat(0x200),
        "c".repeat(0x200)
    );
    let r = raw_exchange(connect(), req.as_bytes());
    assert!(status_line(&r).contains(" 413 "), "{}", status_line(&r));

    // Within the limits all is well.
    let req =
        "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
               5\r\nhello\r\n0\r\n\r\n";
    let r = raw_exchange(connect(), req.as_bytes());
    assert!(status_line(&r).contains(" 200 "), "{r}");
    assert!(r.contains("\"body_length\": 5"), "{r}");
}

/// A client that shuts down its writing side after the request (an HTTP/1.0 script,
/// `nc -N`) still gets the answer, as from gunicorn or nginx: also from a slow app, where
/// the server sees the EOF long before it answers, and with HTTP/1.1.
#[test]
fn a_client_that_half_closes_still_gets_the_answer() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let s = serve(&[path(&ini)], None);
    for req in [
        "GET /slow HTTP/1.0\r\n\r\n",
        "GET /fast HTTP/1.0\r\n\r\n",
        "GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    ] {
        let c = TcpStream::connect(s.host_port()).unwrap();
        c.set_read_timeout(Some(DEADLINE)).unwrap();
        (&c).write_all(req.as_bytes()).unwrap();
        c.shutdown(std::net::Shutdown::Write).unwrap();
        let r = raw_exchange(c, b"");
        assert!(status_line(&r).contains(" 200 "), "{req:?}: {r:?}");
        assert!(r.contains("\"path_info\""), "{req:?}: {r}");
    }
}

/// Read until the server closes the connection; how long that took.
fn time_to_close(mut c: &TcpStream, started: Instant) -> Duration {
    let mut buf = [0u8; 1024];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return started.elapsed(),
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return started.elapsed(),
            Err(e) => panic!("connection not closed after {:?}: {e}", started.elapsed()),
        }
    }
}

#[test]
fn silent_and_slowloris_connections_are_closed_within_the_header_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let s = serve(&[path(&ini)], None);

    // Silent: connects and sends nothing.
    let started = Instant::now();
    let c = TcpStream::connect(s.host_port()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let took = time_to_close(&c, started);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "silent connection closed after {took:?}"
    );

    // Slowloris: one header line every 100 ms, never finishing the head.
    let started = Instant::now();
    let c = TcpStream::connect(s.host_port()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut w = c.try_clone().unwrap();
    let stop2 = stop.clone();
    let writer = std::thread::spawn(move || {
        if w.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").is_err() {
            return;
        }
        for i in 0..50 {
            if stop2.load(Ordering::SeqCst) || write!(w, "X-Slow-{i}: 1\r\n").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let took = time_to_close(&c, started);
    stop.store(true, Ordering::SeqCst);
    let _ = writer.join();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "slowloris connection closed after {took:?}"
    );

    // The server still serves.
    let r = raw_exchange(
        TcpStream::connect(s.host_port()).unwrap(),
        b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
    );
    assert!(status_line(&r).contains(" 200 "), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_finishes_the_request_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let mut s = serve(&[path(&ini)], None);
    let url = s.url("/slow");
    let req = tokio::spawn(async move {
        let res = client()
            .get(url)
            .send()
            .await
            .expect("slow request answered");
        let status = res.status().as_u16();
        (status, res.text().await.expect("slow body"))
    });
    tokio::task::block_in_place(|| {
        s.wait_line(|l| l.contains("slow_path /slow: answering"), DEADLINE)
            .expect("the slow request reached the app");
        s.signal(libc::SIGTERM);
    });
    let (status, body) = req.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(json(&body)["path_info"], "/slow");
    let code = tokio::task::block_in_place(|| s.wait_exit(DEADLINE));
    assert_eq!(code.code(), Some(0), "{}", s.stderr());
    assert!(s.stderr().contains("SIGTERM: stopping"), "{}", s.stderr());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_app_gives_500_and_the_next_request_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let c = client();

    let s = serve(&[path(&ini)], None);
    let (status, body) = get(&c, &s.url("/boom")).await;
    assert_eq!(status, 500);
    assert_eq!(body, "Internal Server Error\n");
    let (status, body) = get(&c, &s.url("/after")).await;
    assert_eq!(status, 200);
    assert_eq!(json(&body)["path_info"], "/after");
    let line =
        tokio::task::block_in_place(|| s.wait_line(|l| l.contains("panic in the app"), DEADLINE));
    assert!(line.is_some(), "{}", s.stderr());

    // --debug: the panic message is in the body.
    let s = serve(&[path(&ini), "--debug"], None);
    let (status, body) = get(&c, &s.url("/boom")).await;
    assert_eq!(status, 500);
    assert!(
        body.contains("panic_path /boom was requested"),
        "debug body: {body}"
    );
    assert_eq!(get(&c, &s.url("/")).await.0, 200);
}

#[test]
fn pid_file_is_written_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let pid_file = dir.path().join("serve.pid");
    let mut s = serve(&[path(&ini), "--pid-file", path(&pid_file)], None);
    let text = std::fs::read_to_string(&pid_file).expect("pid file written");
    assert_eq!(text.trim(), s.pid().to_string());
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).code(), Some(0));
    assert!(!pid_file.exists(), "pid file removed on exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn name_value_arguments_reach_global_conf() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let s = serve(&[path(&ini), "greeting=hello world", "empty="], None);
    let v = json(&get(&client(), &s.url("/")).await.1);
    assert_eq!(v["global_conf"]["greeting"], "hello world");
    assert_eq!(v["global_conf"]["empty"], "");
}

#[test]
fn usage_and_configuration_errors_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());

    // NAME=VALUE without '='.
    for args in [vec![path(&ini), "x"], vec!["check", path(&ini), "x"]] {
        let r = run(&args, None);
        assert_eq!(r.code(), Some(2), "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.contains("'x' invalid") && r.stderr.contains("NAME=VALUE"),
            "{}",
            r.stderr
        );
        assert!(!r.stderr.contains("serving on"));
    }

    // No config file at all.
    let r = run(&[], None);
    assert_eq!(r.code(), Some(2));
    assert!(
        r.stderr.contains("you must give a config file"),
        "{}",
        r.stderr
    );

    // A missing file.
    let missing = dir.path().join("missing.ini");
    let r = run(&[path(&missing)], None);
    assert_eq!(r.code(), Some(2));
    assert!(r.stderr.contains("missing.ini"), "{}", r.stderr);

    // A broken file: the error names file:line, and nothing is bound.
    let sock = dir.path().join("broken.sock");
    let broken = write(
        dir.path(),
        "broken.ini",
        &format!(
            "[server:main]
use = egg:mapproxy-serve#http
unix_socket = {}

[app:main]
use = egg:mapproxy-serve#text
status = fine
",
            sock.display()
        ),
    );
    let r = run(&[path(&broken)], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("broken.ini:7: [app:main] key 'status'"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("serving on"), "{}", r.stderr);
    assert!(!sock.exists(), "nothing bound");
}

#[test]
fn a_bind_failure_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let r = run(&[path(&ini), "-b", &addr], None);
    assert_eq!(r.code(), Some(1), "{}", r.stderr);
    assert!(
        r.stderr.contains(&addr) && r.stderr.contains("Address already in use"),
        "{}",
        r.stderr
    );
    assert!(!r.stderr.contains("serving on"));
}

#[test]
fn check_valid_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let r = run(&["check", path(&ini)], None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("serving on"));
    let r = run(&["check", "ini/develop.ini"], Some(&support::repo_root()));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
}

#[test]
fn check_prints_every_error_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let ini = write(
        dir.path(),
        "three.ini",
        "[server:main]
use = egg:mapproxy-serve#http
port = 0

[composite:main]
use = egg:Paste#urlmap
/ = hello
/x = missing
/e = echo

[app:hello]
use = egg:mapproxy-serve#text
body = hi
bogus = 1

[app:echo]
use = egg:mapproxy-serve#echo
x = %(nope)s
",
    );
    let r = run(&["check", path(&ini)], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    for expected in [
        "three.ini:14: [app:hello] unknown option 'bogus'",
        "three.ini:8: [composite:main] no section 'missing'",
        "three.ini:18: [app:echo] key 'x': bad value substitution",
    ] {
        assert!(r.stderr.contains(expected), "{expected}\n---\n{}", r.stderr);
    }
    // `serve` reports the same errors and binds nothing.
    let r = run(&[path(&ini)], None);
    assert_eq!(r.code(), Some(2));
    assert_eq!(
        r.stderr
            .lines()
            .filter(|l| l.contains("three.ini:"))
            .count(),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_develop_ini_serves() {
    let s = serve(
        &["ini/develop.ini", "-b", "127.0.0.1:0"],
        Some(&support::repo_root()),
    );
    let c = client();
    let (status, body) = get(&c, &s.url("/")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("<html") || body.contains("<!DOCTYPE"),
        "{body}"
    );
    let (status, body) = get(&c, &s.url("/echo/x")).await;
    assert_eq!(status, 200);
    let v = json(&body);
    assert_eq!(v["script_name"], "/echo");
    assert_eq!(v["path_info"], "/x");
    assert_eq!(get(&c, &s.url("/static/index.html")).await.0, 200);
    assert_eq!(get(&c, &s.url("/health")).await, (200, "ok".to_string()));
    // The map: MapProxy's debug tiles and its demo viewer, offline.
    let res = c
        .get(s.url("/mapproxy/tms/1.0.0/debug/webmercator/1/0/0.png"))
        .send()
        .await
        .expect("tile");
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    let png = res.bytes().await.expect("tile body");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG");
    let (status, body) = get(&c, &s.url("/mapproxy/demo/")).await;
    assert_eq!(status, 200);
    assert!(body.contains("debug"), "{body}");
    let (status, body) = get(&c, &s.url("/mapproxy/")).await;
    assert_eq!(status, 200);
    assert!(
        body.contains("/mapproxy/demo/"),
        "links built from the mount: {body}"
    );
    // The access log goes to stderr.
    let logged = tokio::task::block_in_place(|| {
        s.wait_line(|l| l.contains("\"GET /health HTTP/1.1\" 200"), DEADLINE)
    });
    assert!(logged.is_some(), "{}", s.stderr());
}

// ---- create -t TEMPLATE DEST ----

const TEMPLATE_NAMES: [&str; 5] = ["develop", "production", "urlmap", "fcgi", "log-ini"];

#[test]
fn create_lists_the_templates() {
    let r = run(&["create", "-l"], None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    for t in TEMPLATE_NAMES {
        assert!(
            r.stdout.lines().any(|l| l.starts_with(t)),
            "{t} listed:\n{}",
            r.stdout
        );
    }
}

#[test]
fn every_created_template_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    for t in TEMPLATE_NAMES {
        let dest = dir.path().join("etc").join(format!("{t}.ini"));
        let r = run(&["create", "-t", t, path(&dest)], None);
        assert_eq!(r.code(), Some(0), "create {t}: {}", r.stderr);
        assert!(
            r.stderr.contains(&format!("writing {}", dest.display())),
            "{}",
            r.stderr
        );
        let to_check = if t == "log-ini" {
            // A log.ini has only logging sections: check it as part of a deployment.
            let develop = std::fs::read_to_string(dir.path().join("etc/develop.ini")).unwrap();
            let log = std::fs::read_to_string(&dest).unwrap();
            write(
                &dir.path().join("etc"),
                "with-log.ini",
                &format!("{develop}\n{log}"),
            )
        } else {
            dest
        };
        let r = run(&["check", path(&to_check)], None);
        assert_eq!(r.code(), Some(0), "check {t}: {}", r.stderr);
    }
    // production's companions were made.
    assert!(dir.path().join("etc/htpasswd").is_file());
    assert!(dir.path().join("etc/static/index.html").is_file());
}

#[test]
fn create_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let dest = write(dir.path(), "site.ini", "# mine\n");
    let r = run(&["create", "-t", "urlmap", path(&dest)], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr.contains("already exists") && r.stderr.contains("--force"),
        "{}",
        r.stderr
    );
    assert_eq!(std::fs::read_to_string(&dest).unwrap(), "# mine\n");
    let r = run(&["create", "-t", "urlmap", path(&dest), "--force"], None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(std::fs::read_to_string(&dest)
        .unwrap()
        .contains("egg:Paste#urlmap"));
    // A directory as DEST: the template's own file name inside it.
    let r = run(&["create", "-t", "log-ini", path(dir.path())], None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(dir.path().join("log.ini").is_file());
    // Usage errors.
    let r = run(
        &["create", "-t", "nope", path(&dir.path().join("x.ini"))],
        None,
    );
    assert_eq!(r.code(), Some(2));
    assert!(r.stderr.contains("unknown template 'nope'"), "{}", r.stderr);
    let r = run(&["create", path(&dir.path().join("x.ini"))], None);
    assert_eq!(r.code(), Some(2));
    let r = run(&["create", "-t", "develop"], None);
    assert_eq!(r.code(), Some(2));
    assert!(!dir.path().join("x.ini").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_production_template_serves() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("production.ini");
    assert_eq!(
        run(&["create", "-t", "production", path(&dest)], None).code(),
        Some(0)
    );
    std::fs::write(dir.path().join("htpasswd"), "alice:{PLAIN}secret\n").unwrap();
    let s = serve(&[path(&dest), "-b", "127.0.0.1:0"], None);
    let c = client();
    assert_eq!(get(&c, &s.url("/health")).await, (200, "ok".to_string()));
    assert_eq!(get(&c, &s.url("/echo/x")).await.0, 401);
    let res = c
        .get(s.url("/echo/x"))
        .basic_auth("alice", Some("secret"))
        .header("X-Forwarded-For", "203.0.113.9")
        .header("X-Forwarded-Proto", "https")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let v = json(&res.text().await.unwrap());
    assert_eq!(v["remote_user"], "alice");
    assert_eq!(v["remote_addr"], "203.0.113.9", "trusted proxy on loopback");
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["script_name"], "/echo");
    let res = c
        .get(s.url("/static/index.html"))
        .basic_auth("alice", Some("secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn the_fcgi_template_serves_on_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("etc/fcgi.ini");
    assert_eq!(
        run(&["create", "-t", "fcgi", path(&dest)], None).code(),
        Some(0)
    );
    std::fs::create_dir(dir.path().join("var")).unwrap();
    let mut s = serve(&[path(&dest)], None);
    assert!(s.listen.contains("fcgi-socket"), "{}", s.listen);
    let sock = dir.path().join("var/fcgi-socket");
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};
    let meta = std::fs::metadata(&sock).expect("socket made");
    assert!(meta.file_type().is_socket());
    assert_eq!(meta.permissions().mode() & 0o777, 0o777, "umask 000");
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).code(), Some(0));
    assert!(!sock.exists());
}

#[test]
fn app_name_and_server_name_choose_sections() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("alt.sock");
    let ini = write(
        dir.path(),
        "two.ini",
        &format!(
            "[server:main]
use = egg:mapproxy-serve#http
port = 0

[server:alt]
use = egg:waitress#main
unix_socket = {}

[app:main]
use = egg:mapproxy-serve#text
body = main

[app:other]
use = egg:mapproxy-serve#text
body = other
",
            sock.display()
        ),
    );
    let s = serve(&[path(&ini), "-n", "other", "-s", "alt"], None);
    assert_eq!(s.listen, format!("unix:{}", sock.display()));
    let r = raw_exchange(
        UnixStream::connect(&sock).unwrap(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.ends_with("\r\n\r\nother"), "{r}");
    let s = serve(&[path(&ini), "--app-name", "main"], None);
    let r = raw_exchange(
        TcpStream::connect(s.host_port()).unwrap(),
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(r.ends_with("\r\n\r\nmain"), "{r}");
    let r = run(&[path(&ini), "-s", "nope"], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
}

#[test]
fn quiet_hides_info_lines() {
    let dir = tempfile::tempdir().unwrap();
    let ini = tcp_site(dir.path());
    let mut s = serve(&[path(&ini), "-q"], None);
    s.signal(libc::SIGTERM);
    assert_eq!(s.wait_exit(DEADLINE).code(), Some(0));
    // stderr is complete once the reader saw it close.
    assert!(s.wait_line(|_| false, DEADLINE).is_none());
    let err = s.stderr();
    assert!(err.starts_with("serving on "), "{err}");
    assert!(!err.contains("SIGTERM: stopping"), "{err}");
}

#[test]
fn appconfig_lists_options_the_factory_refuses_with_warnings() {
    // As Paste's appconfig: the factory is found, never called. What resolving finds (options
    // the factory does not declare, urlmap keys that are not paths) is a warning; a value only
    // the factory's build function reads (text's `status`) is not checked at all. `check`
    // refuses all of them.
    let fixtures = support::repo_root().join("tests/fixtures/paste");
    let unknown = "appconfig_lenient.ini:4: [app:main] unknown option 'bdy'";
    let http_key =
        "urlmap_http_key.ini:3: [composite:main] key 'http': a mount path must start with /";
    let bad_status = "[app:main] key 'status': expected an HTTP status code";
    // (file, local_conf lines, appconfig's warnings, check's errors)
    type Case<'a> = (&'a str, &'a [&'a str], &'a [&'a str], &'a [&'a str]);
    let cases: [Case; 3] = [
        (
            "appconfig_lenient.ini",
            &["body = hello", "bdy = typo", "status = not-a-status"],
            &[unknown],
            &[unknown],
        ),
        (
            "urlmap_http_key.ini",
            &["http = //example.org/ = app"],
            &[http_key],
            &[http_key],
        ),
        (
            "appconfig_bad_value.ini",
            &["body = hello", "status = not-a-status"],
            &[],
            &[bad_status],
        ),
    ];
    for (file, local, warned, refused) in cases {
        let r = run(&["appconfig", file], Some(&fixtures));
        assert_eq!(r.code(), Some(0), "{file}: {}", r.stderr);
        let (local_part, global_part) = r
            .stdout
            .split_once("[global_conf]")
            .unwrap_or_else(|| panic!("{file}: both dicts\n{}", r.stdout));
        assert!(local_part.starts_with("[local_conf]\n"), "{}", r.stdout);
        for line in local {
            assert!(local_part.contains(line), "{file}: {line}\n{}", r.stdout);
        }
        assert!(global_part.contains("here = "), "{}", r.stdout);
        for w in warned {
            assert!(
                r.stderr.contains(&format!("warning: {w}")),
                "{file}: {w}\n---\n{}",
                r.stderr
            );
        }
        if warned.is_empty() {
            assert_eq!(r.stderr, "", "{file}: nothing to warn about");
        }
        // The factory was never called: what only its build function finds is not said.
        assert!(!r.stderr.contains(bad_status), "{file}: {}", r.stderr);
        let r = run(&["check", file], Some(&fixtures));
        assert_eq!(r.code(), Some(2), "{file}: {}", r.stderr);
        for e in refused {
            assert!(r.stderr.contains(e), "{file}: {e}\n---\n{}", r.stderr);
            assert!(!r.stderr.contains(&format!("warning: {e}")), "{}", r.stderr);
        }
    }
    // --json prints the same dicts.
    let r = run(
        &["appconfig", "urlmap_http_key.ini", "--json"],
        Some(&fixtures),
    );
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    let v = json(&r.stdout);
    assert_eq!(v["local_conf"]["http"], "//example.org/ = app");
}

// ---- MapProxy apps (egg:MapProxy#app, egg:MapProxy#multiapp) ----

const DEBUG_PROJECT: &str = r#"services:
  demo:
  tms:
    use_grid_names: true
layers:
  - name: dbg
    title: Debug
    sources: [dbg_cache]
caches:
  dbg_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [dbg]
    meta_size: [1, 1]
    meta_buffer: 0
sources:
  dbg:
    type: debug
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiapp_serves_lists_and_rebuilds_projects() {
    let dir = tempfile::tempdir().unwrap();
    let projects = dir.path().join("projects");
    std::fs::create_dir(&projects).unwrap();
    write(&projects, "alpha.yaml", DEBUG_PROJECT);
    write(&projects, "broken.yaml", "layers: [\n");
    write(&projects, "UPPER.YAML", DEBUG_PROJECT);
    let ini = write(
        dir.path(),
        "config.ini",
        "[server:main]\nuse = egg:mapproxy-serve#http\nport = 0\n\n\
         [app:main]\nuse = egg:MapProxy#multiapp\nconfig_dir = %(here)s/projects\n\
         allow_listing = true\n",
    );
    let s = serve(&[path(&ini)], None);
    let c = client();
    // The listing: MapProxy's page; only what lookup serves (not UPPER.YAML).
    let (status, body) = get(&c, &s.url("/")).await;
    assert_eq!(status, 200);
    assert!(
        body.starts_with(
            "<html><body><h1>Welcome to MapProxy 7.0.0</h1><h2>available instances:</h2><ul>"
        ),
        "{body}"
    );
    assert!(
        body.contains(&format!(
            "<li><a href=\"{}/alpha/\">alpha</a></li>",
            s.url("").trim_end_matches('/')
        )),
        "{body}"
    );
    assert!(body.contains(">broken<"), "{body}");
    assert!(!body.contains("UPPER"), "{body}");
    // A project: its own welcome page, links under /alpha, tiles from its cache.
    let (status, body) = get(&c, &s.url("/alpha/")).await;
    assert_eq!(status, 200);
    assert!(body.contains("/alpha/demo/"), "{body}");
    let res = c
        .get(s.url("/alpha/tms/1.0.0/dbg/GLOBAL_WEBMERCATOR/0/0/0.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(projects.join("cache_data/dbg_cache_EPSG3857").is_dir());
    // Unknown and broken projects.
    let res = c.get(s.url("/nope/")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(res.headers()["content-type"], "text/plain");
    assert_eq!(res.text().await.unwrap(), "not found");
    assert_eq!(get(&c, &s.url("/UPPER/")).await.0, 404);
    assert_eq!(get(&c, &s.url("/broken/")).await.0, 500);
    assert_eq!(get(&c, &s.url("/broken/")).await.0, 500);
    // stderr is read by another thread: wait for the line before counting
    s.wait_line(
        |l| l.contains("project broken does not build"),
        std::time::Duration::from_secs(10),
    );
    let logged = s.count_lines(|l| l.contains("project broken does not build"));
    assert_eq!(logged, 1, "logged once, not per request:\n{}", s.stderr());
    // An edit rebuilds the project on its next request.
    write(
        &projects,
        "alpha.yaml",
        &DEBUG_PROJECT.replace("  demo:\n", ""),
    );
    let end = Instant::now() + DEADLINE;
    loop {
        let (_, body) = get(&c, &s.url("/alpha/")).await;
        if !body.contains("demo") {
            break;
        }
        assert!(Instant::now() < end, "still the old project: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A fixed project is served without a restart.
    write(&projects, "broken.yaml", DEBUG_PROJECT);
    let end = Instant::now() + DEADLINE;
    while get(&c, &s.url("/broken/")).await.0 != 200 {
        assert!(Instant::now() < end, "broken.yaml fixed but still 500");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn check_reports_mapproxy_yaml_errors_with_file_line_and_path() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "mapproxy.yaml",
        &format!("{DEBUG_PROJECT}  other:\n    type: mapnik\n    mapfile: x.xml\ncaches2: 1\n"),
    );
    let ini = write(
        dir.path(),
        "config.ini",
        "[app:main]\nuse = egg:MapProxy#app\nmapproxy_conf = %(here)s/mapproxy.yaml\n",
    );
    let r = run(&["check", path(&ini)], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("mapproxy.yaml:"), "{}", r.stderr);
    assert!(
        r.stderr.contains("'mapnik' is not supported yet"),
        "{}",
        r.stderr
    );
}

// ---------------------------------------------------------------------------------------
// MapProxy's tools: serve-develop, serve-multiapp-develop, grids, create -t base-config
// ---------------------------------------------------------------------------------------

/// Poll `url` until it answers `want` (or fail after [`DEADLINE`]).
async fn wait_status(c: &reqwest::Client, url: &str, want: u16, why: &str) {
    let end = Instant::now() + DEADLINE;
    loop {
        let status = match c.get(url).send().await {
            Ok(r) => r.status().as_u16(),
            Err(_) => 0,
        };
        if status == want {
            return;
        }
        assert!(Instant::now() < end, "{why}: {url} still answers {status}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_develop_serves_a_yaml_reloads_edits_and_survives_a_broken_one() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write(dir.path(), "mapproxy.yaml", DEBUG_PROJECT);
    let s = serve(&["serve-develop", path(&yaml), "-b", "127.0.0.1:0"], None);
    let c = client();
    let (status, body) = get(&c, &s.url("/")).await;
    assert_eq!(status, 200);
    assert!(body.contains("MapProxy"), "{body}");
    let tile = |layer: &str| s.url(&format!("/tms/1.0.0/{layer}/GLOBAL_WEBMERCATOR/0/0/0.png"));
    let res = c.get(tile("dbg")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(dir.path().join("cache_data/dbg_cache_EPSG3857").is_dir());
    // An edit of the YAML is served without a restart.
    std::fs::write(&yaml, DEBUG_PROJECT.replace("name: dbg", "name: renamed")).unwrap();
    wait_status(&c, &tile("renamed"), 200, "the edited YAML").await;
    assert_eq!(c.get(tile("dbg")).send().await.unwrap().status(), 404);
    // A broken edit is reported with file:line; the last good app keeps serving.
    let before = s.line_count();
    std::fs::write(&yaml, "layers: [\n").unwrap();
    let line = s.wait_line_after(before, |l| l.contains("mapproxy.yaml:"), DEADLINE);
    assert!(
        line.is_some(),
        "no error for the broken YAML:\n{}",
        s.stderr()
    );
    assert!(s.stderr().contains("reload failed"), "{}", s.stderr());
    assert_eq!(c.get(tile("renamed")).send().await.unwrap().status(), 200);
    // Fixed again: served again.
    std::fs::write(&yaml, DEBUG_PROJECT.replace("name: dbg", "name: third")).unwrap();
    wait_status(&c, &tile("third"), 200, "the fixed YAML").await;
}

#[test]
fn serve_develop_exits_2_on_a_configuration_error_and_a_missing_file() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = write(dir.path(), "mapproxy.yaml", "layers: [\n");
    let r = run(&["serve-develop", path(&yaml), "-b", "127.0.0.1:0"], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("mapproxy.yaml:"), "{}", r.stderr);
    let r = run(
        &["serve-develop", path(&dir.path().join("nope.yaml"))],
        None,
    );
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("nope.yaml"), "{}", r.stderr);
    let r = run(&["serve-multiapp-develop", path(&yaml)], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("is not a directory"), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_multiapp_develop_lists_and_serves_projects() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "alpha.yaml", DEBUG_PROJECT);
    let s = serve(
        &[
            "serve-multiapp-develop",
            path(dir.path()),
            "-b",
            "127.0.0.1:0",
        ],
        None,
    );
    let c = client();
    let (status, body) = get(&c, &s.url("/")).await;
    assert_eq!(status, 200);
    assert!(body.contains(">alpha</a>"), "{body}");
    let res = c
        .get(s.url("/alpha/tms/1.0.0/dbg/GLOBAL_WEBMERCATOR/0/0/0.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // A project added later is served (MultiMapProxy looks projects up per request).
    write(dir.path(), "beta.yaml", DEBUG_PROJECT);
    wait_status(&c, &s.url("/beta/"), 200, "the new project").await;
}

/// `tests/fixtures/mapproxy-grids/*.txt` are MapProxy 7.0.0's `mapproxy-util grids` output
/// (`make-golden.sh` there wrote them).
#[test]
fn grids_prints_what_mapproxy_util_grids_prints() {
    let dir = support::repo_root().join("tests/fixtures/mapproxy-grids");
    let cases: &[(&str, &[&str], i32)] = &[
        ("default.txt", &[], 0),
        ("all.txt", &["--all"], 0),
        ("list.txt", &["-l"], 0),
        ("all-list.txt", &["--all", "-l"], 0),
        ("grid-utm32_from_geo.txt", &["-g", "UTM32_FROM_GEO"], 0),
        ("grid-nope.txt", &["-g", "nope"], 1),
    ];
    let r = run(&["grids", "-f", "grids.yaml"], Some(&dir));
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert_eq!(
        r.stdout,
        std::fs::read_to_string(dir.join("default.txt")).unwrap()
    );
    assert_eq!(run(&["grids"], Some(&dir)).code(), Some(2));
    for (golden, opts, code) in cases {
        let mut args = vec!["grids"];
        args.extend_from_slice(opts);
        args.push("grids.yaml");
        let r = run(&args, Some(&dir));
        assert_eq!(r.code(), Some(*code), "{args:?}: {}", r.stderr);
        let want = std::fs::read_to_string(dir.join(golden)).unwrap();
        assert_eq!(r.stdout, want, "{args:?} differs from {golden}");
    }
    // An invalid configuration: its errors with file:line, exit 2.
    let tmp = tempfile::tempdir().unwrap();
    let bad = write(
        tmp.path(),
        "bad.yaml",
        "grids:\n  g:\n    srs: 'EPSG:4326'\n    origin: middle\n",
    );
    let r = run(&["grids", "--all", path(&bad)], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("bad.yaml:3: grids.g: "), "{}", r.stderr);
    let bad = write(tmp.path(), "bad2.yaml", "layers: [\n");
    let r = run(&["grids", path(&bad)], None);
    assert_eq!(r.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("bad2.yaml:2: "), "{}", r.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_base_config_checks_and_serves_a_debug_tile() {
    let dir = tempfile::tempdir().unwrap();
    let project = dir.path().join("project");
    let r = run(&["create", "-t", "base-config", path(&project)], None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    for f in ["mapproxy.yaml", "config.ini", "log.ini"] {
        assert!(project.join(f).is_file(), "{f}");
    }
    let log_ini = std::fs::read_to_string(project.join("log.ini")).unwrap();
    assert!(
        log_ini.contains("qualname=mapproxy.source.request"),
        "{log_ini}"
    );
    assert!(log_ini.contains("source-requests.log"), "{log_ini}");
    let ini = project.join("config.ini");
    let r = run(&["check", path(&ini)], None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(!r.stderr.contains("warning"), "{}", r.stderr);
    // Existing files are not replaced.
    let again = run(&["create", "-t", "base-config", path(&project)], None);
    assert_eq!(again.code(), Some(2), "{}", again.stderr);
    assert!(again.stderr.contains("already exists"), "{}", again.stderr);
    // It serves: the demo, every service, a tile drawn by the debug source.
    let s = support::Served::start(&ini, &[]);
    let c = client();
    for p in [
        "/",
        "/demo/",
        "/tms/1.0.0/",
        "/kml/debug/webmercator/0/0/0.kml",
        "/wmts/1.0.0/WMTSCapabilities.xml",
    ] {
        let (status, body) = get(&c, &s.url(p)).await;
        assert_eq!(status, 200, "{p}: {body}");
    }
    let res = c
        .get(s.url("/tms/1.0.0/debug/webmercator/1/0/0.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/png");
    assert!(project.join("cache_data").is_dir());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_develop_reloads_on_an_edit_of_a_base_file() {
    let dir = tempfile::tempdir().unwrap();
    let (main, sources) = DEBUG_PROJECT
        .split_once("sources:\n  dbg:")
        .expect("DEBUG_PROJECT has its sources last");
    let yaml = write(
        dir.path(),
        "mapproxy.yaml",
        &format!("base: base.yaml\n{main}"),
    );
    let base = write(
        dir.path(),
        "base.yaml",
        &format!("sources:\n  dbg:{sources}"),
    );
    let s = serve(&["serve-develop", path(&yaml), "-b", "127.0.0.1:0"], None);
    let c = client();
    let tile = s.url("/tms/1.0.0/dbg/GLOBAL_WEBMERCATOR/0/0/0.png");
    assert_eq!(c.get(&tile).send().await.unwrap().status(), 200);
    // A broken base file: reported with its file:line, the app keeps serving.
    let before = s.line_count();
    std::fs::write(&base, "sources:\n  dbg:\n    type: nosuchtype\n").unwrap();
    let line = s.wait_line_after(before, |l| l.contains("base.yaml:3:"), DEADLINE);
    assert!(line.is_some(), "no error for base.yaml:\n{}", s.stderr());
    assert_eq!(c.get(&tile).send().await.unwrap().status(), 200);
    // A base file that adds a layer's source: served.
    std::fs::write(
        &yaml,
        format!("base: base.yaml\n{main}").replace("name: dbg", "name: via_base"),
    )
    .unwrap();
    std::fs::write(&base, format!("sources:\n  dbg:{sources}")).unwrap();
    let tile = s.url("/tms/1.0.0/via_base/GLOBAL_WEBMERCATOR/0/0/0.png");
    wait_status(&c, &tile, 200, "the fixed base file").await;
}

/// A MapProxy YAML with one layer `up` over a cache of the tile server at `up`.
fn up_tile_yaml(up: std::net::SocketAddr) -> String {
    format!(
        "services:\n  tms:\nlayers:\n  - name: up\n    title: up\n    sources: [up_cache]\n\
         caches:\n  up_cache:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [up]\n\
         sources:\n  up:\n    type: tile\n    grid: GLOBAL_WEBMERCATOR\n    url: http://{up}/%(tms_path)s.png\n"
    )
}

/// A loopback tile server for the lock test: counts requests and answers each with `png`
/// only once the test opens the gate.
async fn gated_tile_upstream(
    png: bytes::Bytes,
) -> (
    std::net::SocketAddr,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<tokio::sync::Semaphore>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    let (c, g) = (count.clone(), gate.clone());
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (c, g, png) = (c.clone(), g.clone(), png.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // one request per connection is enough: answer with Connection: close
                while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                c.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                if let Ok(p) = g.acquire().await {
                    p.forget();
                }
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    png.len()
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&png).await;
            });
        }
    });
    (addr, count, gate)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_a_cache_fetch_a_tile_once() {
    use mapproxy_serve::mapproxy::image::{encode, ImageFormat, ImageOpts, RgbaImage};
    let png = encode(
        &RgbaImage::from_pixel(256, 256, [10, 20, 30, 255].into()),
        &ImageOpts::new(ImageFormat::png()),
    )
    .unwrap();
    let (up, count, gate) = gated_tile_upstream(png.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let yaml = write(dir.path(), "mapproxy.yaml", &up_tile_yaml(up));
    let ini = |name: &str| {
        write(
            dir.path(),
            name,
            &format!(
                "[server:main]\nuse = egg:mapproxy-serve#http\nport = 0\n\n\
                 [app:main]\nuse = egg:MapProxy#app\nmapproxy_conf = {}\n",
                path(&yaml)
            ),
        )
    };
    let (a_ini, b_ini) = (ini("a.ini"), ini("b.ini"));
    let a = serve(&[path(&a_ini)], None);
    let b = serve(&[path(&b_ini)], None);
    let c = client();
    let tile = "/tms/1.0.0/up/EPSG3857/3/2/5.png";
    // A misses and asks the upstream, which holds the answer: A holds the meta tile's lock.
    let ra = tokio::spawn(c.get(a.url(tile)).send());
    let deadline = Instant::now() + DEADLINE;
    while count.load(std::sync::atomic::Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "A never asked the upstream");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // B misses the same tile while A holds the lock; it waits for the lock, not the upstream.
    let rb = tokio::spawn(c.get(b.url(tile)).send());
    // While A holds the lock B does not ask the upstream (watched for 300 ms: the absence of
    // a request has no event to wait for); then the upstream answers A.
    let watch = Instant::now() + Duration::from_millis(300);
    while Instant::now() < watch {
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 1);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    gate.add_permits(10);
    for r in [ra, rb] {
        let res = r.await.unwrap().unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.bytes().await.unwrap(), png);
    }
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "B found the tile A stored once it had the lock"
    );
    // one tile file in the cache, the upstream's bytes
    let mut files = Vec::new();
    let mut dirs = vec![dir.path().join("cache_data/up_cache_EPSG3857")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("tile_locks") {
                    dirs.push(p);
                }
            } else {
                files.push(p);
            }
        }
    }
    assert_eq!(files.len(), 1, "{files:?}");
    assert_eq!(std::fs::read(&files[0]).unwrap(), png);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mapproxy_log_conf_configures_the_logging() {
    use mapproxy_serve::mapproxy::image::{encode, ImageFormat, ImageOpts, RgbaImage};
    let png = encode(
        &RgbaImage::from_pixel(256, 256, [1, 2, 3, 255].into()),
        &ImageOpts::new(ImageFormat::png()),
    )
    .unwrap();
    let (up, _count, gate) = gated_tile_upstream(png).await;
    gate.add_permits(100);
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "mapproxy.yaml", &up_tile_yaml(up));
    // MapProxy ≤ 1.11's log.ini: Python's fileConfig, here (%(here)s) its own directory
    write(
        dir.path(),
        "log.ini",
        "[loggers]\nkeys = root,source_requests\n\n[handlers]\nkeys = file\n\n\
         [formatters]\nkeys = plain\n\n[logger_root]\nlevel = WARNING\nhandlers = file\n\n\
         [logger_source_requests]\nlevel = INFO\nqualname = mapproxy.source.request\n\
         propagate = 0\nhandlers = file\n\n[handler_file]\nclass = FileHandler\n\
         formatter = plain\nargs = (r'%(here)s/source-requests.log', 'a')\n\n\
         [formatter_plain]\nformat = %(name)s %(levelname)s %(message)s\n",
    );
    let ini = write(
        dir.path(),
        "config.ini",
        "[server:main]\nuse = egg:mapproxy-serve#http\nport = 0\n\n\
         [app:main]\nuse = egg:MapProxy#app\nmapproxy_conf = %(here)s/mapproxy.yaml\n\
         log_conf = log.ini\n",
    );
    let s = serve(&[path(&ini)], None);
    let c = client();
    let res = c
        .get(s.url("/tms/1.0.0/up/EPSG3857/1/0/0.png"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let log = dir.path().join("source-requests.log");
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            assert!(
                line.starts_with(&format!("mapproxy.source.request INFO GET http://{up}/")),
                "{line}"
            );
            assert!(line.contains(" 200 "), "{line}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no source request logged:\n{}",
            s.stderr()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        !s.stderr().contains("mapproxy.source.request"),
        "the ini's console logging was replaced:\n{}",
        s.stderr()
    );
    // a missing log_conf is reported and ignored, as MapProxy's app_factory does
    let missing = write(
        dir.path(),
        "missing.ini",
        "[app:main]\nuse = egg:MapProxy#app\nmapproxy_conf = %(here)s/mapproxy.yaml\n\
         log_conf = %(here)s/nope.ini\n",
    );
    let r = run(&["check", path(&missing)], None);
    assert_eq!(r.code(), Some(0), "{}", r.stderr);
    assert!(
        r.stderr.contains("missing.ini:4") && r.stderr.contains("nope.ini not found"),
        "{}",
        r.stderr
    );
}
