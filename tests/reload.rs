//! Reload without dropping a request, through the real binary.
//!
//! A bounded load loop (16 keep-alive connections on loopback, at most 20 s and a maximum
//! request count) runs while the ini file is edited: five new versions of a text app's body
//! and one broken edit. No request may fail, every connection sees the versions in order
//! (the stack is swapped atomically), each new body shows up, and the broken edit logs one
//! error with file:line while the old stack keeps serving.

mod support;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use support::{serve, write, write_by_rename, Served, DEADLINE};

const CONNECTIONS: usize = 16;
const LOAD_LIMIT: Duration = Duration::from_secs(20);
const MAX_REQUESTS: u64 = 400_000;

fn site_text(version: &str) -> String {
    format!(
        "[server:main]
use = egg:mapproxy-serve#http
port = 0

[composite:main]
use = egg:Paste#urlmap
/ = text
/inc = inc

[app:text]
use = egg:mapproxy-serve#text
body = {version}

[app:inc]
use = config:inc.ini#inc
"
    )
}

/// The same site with a mistake at line 13 (an unknown option of the text app).
fn broken_text() -> String {
    site_text("broken").replace("body = broken", "body = broken\nbogus = 1")
}

fn inc_text(body: &str) -> String {
    format!("[app:inc]\nuse = egg:mapproxy-serve#text\nbody = {body}\n")
}

fn setup(dir: &Path) -> PathBuf {
    write(dir, "inc.ini", &inc_text("inc0"));
    write(dir, "site.ini", &site_text("v0"))
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .http1_only()
        .timeout(DEADLINE)
        .build()
        .expect("client")
}

/// What the load loop saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    failed: AtomicU64,
    errors: Mutex<Vec<String>>,
    /// The newest version each connection has seen.
    newest: Mutex<Vec<u32>>,
}

struct Load {
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

/// Version number of a body `vN`; anything else is a failure.
fn version_of(body: &[u8]) -> Option<u32> {
    std::str::from_utf8(body)
        .ok()?
        .strip_prefix('v')?
        .parse()
        .ok()
}

/// One persistent connection: HTTP/1.1 keep-alive or h2c. If the server closed it, the next
/// request fails, and that counts as a failed request.
enum Conn {
    H1(hyper::client::conn::http1::SendRequest<Empty<Bytes>>),
    H2(hyper::client::conn::http2::SendRequest<Empty<Bytes>>),
}

impl Conn {
    async fn open(addr: &str, h2: bool) -> Result<Conn, String> {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let io = TokioIo::new(tcp);
        if h2 {
            let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
                .await
                .map_err(|e| format!("h2 handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H2(send))
        } else {
            let (send, conn) = hyper::client::conn::http1::handshake(io)
                .await
                .map_err(|e| format!("handshake: {e}"))?;
            tokio::spawn(conn);
            Ok(Conn::H1(send))
        }
    }

    async fn get(&mut self, host: &str) -> Result<(u16, Bytes), String> {
        let req = http::Request::get("/")
            .header(http::header::HOST, host)
            .body(Empty::new())
            .map_err(|e| e.to_string())?;
        let res = match self {
            Conn::H1(s) => {
                s.ready().await.map_err(|e| format!("connection: {e}"))?;
                s.send_request(req).await
            }
            Conn::H2(s) => {
                s.ready().await.map_err(|e| format!("connection: {e}"))?;
                s.send_request(req).await
            }
        }
        .map_err(|e| format!("request: {e}"))?;
        let status = res.status().as_u16();
        let body = res
            .into_body()
            .collect()
            .await
            .map_err(|e| format!("body: {e}"))?
            .to_bytes();
        Ok((status, body))
    }
}

/// Start `CONNECTIONS` loops, each on its own persistent connection (half HTTP/1.1
/// keep-alive, half h2c), until stopped, the time limit or the request budget. Each loop
/// checks that the versions it sees never go back.
fn start_load(addr: String) -> Load {
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    *tally.newest.lock().unwrap() = vec![0; CONNECTIONS];
    let budget = Arc::new(AtomicU64::new(MAX_REQUESTS));
    let started = Instant::now();
    let tasks = (0..CONNECTIONS)
        .map(|i| {
            let (stop, tally, budget, addr) =
                (stop.clone(), tally.clone(), budget.clone(), addr.clone());
            tokio::spawn(async move {
                let fail = |e: String| {
                    tally.errors.lock().unwrap().push(e);
                    tally.failed.fetch_add(1, Ordering::SeqCst);
                };
                let mut conn = match Conn::open(&addr, i % 2 == 1).await {
                    Ok(c) => c,
                    Err(e) => return fail(e),
                };
                let mut last = 0u32;
                while !stop.load(Ordering::SeqCst)
                    && started.elapsed() < LOAD_LIMIT
                    && budget
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                {
                    let outcome = match conn.get(&addr).await {
                        Ok((200, body)) => match version_of(&body) {
                            Some(v) if v >= last => {
                                last = v;
                                tally.newest.lock().unwrap()[i] = v;
                                Ok(())
                            }
                            Some(v) => Err(format!("went back from v{last} to v{v}")),
                            None => Err(format!("unexpected body {body:?}")),
                        },
                        Ok((status, _)) => Err(format!("status {status}")),
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(()) => {
                            tally.ok.fetch_add(1, Ordering::SeqCst);
                        }
                        // A broken connection would fail every later request: stop here.
                        Err(e) => return fail(e),
                    }
                }
            })
        })
        .collect();
    Load { stop, tally, tasks }
}

impl Load {
    /// Wait until every connection has seen version `v` (new requests on open connections
    /// get the new stack).
    async fn wait_all_see(&self, v: u32) {
        let end = Instant::now() + DEADLINE;
        loop {
            let newest = self.tally.newest.lock().unwrap().clone();
            if newest.iter().all(|n| *n >= v) {
                return;
            }
            let failed = self.tally.failed.load(Ordering::SeqCst);
            assert!(
                failed == 0 && Instant::now() < end,
                "connections' newest versions {newest:?}, want v{v}; errors {:?}",
                self.tally.errors.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn finish(self) -> (u64, u64, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.tasks {
            t.await.expect("load task");
        }
        let errors = std::mem::take(&mut *self.tally.errors.lock().unwrap());
        (
            self.tally.ok.load(Ordering::SeqCst),
            self.tally.failed.load(Ordering::SeqCst),
            errors,
        )
    }
}

/// Poll `url` (a fresh request each time) until its body is `want`.
async fn wait_body(url: &str, want: &str) {
    let c = client();
    let end = Instant::now() + DEADLINE;
    let mut last = String::new();
    while Instant::now() < end {
        if let Ok(res) = c.get(url).send().await {
            last = res.text().await.unwrap_or_default();
            if last == want {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{url} still answers {last:?}, not {want:?}");
}

/// Wait until a stderr line after `mark` matches.
fn wait_log(s: &Served, mark: usize, what: &str) -> String {
    tokio::task::block_in_place(|| s.wait_line_after(mark, |l| l.contains(what), DEADLINE))
        .unwrap_or_else(|| panic!("no log line with {what:?}:\n{}", s.stderr()))
}

/// How each edit is announced to the server.
#[derive(Clone, Copy, PartialEq)]
enum Trigger {
    /// `--reload`: the file watcher sees it.
    Watch,
    /// No `--reload`: a SIGHUP after the edit.
    Sighup,
}

async fn edits_under_load(trigger: Trigger) {
    let dir = tempfile::tempdir().unwrap();
    let ini = setup(dir.path());
    let ini_arg = ini.to_str().unwrap().to_string();
    let args: Vec<&str> = match trigger {
        Trigger::Watch => vec![&ini_arg, "--reload"],
        Trigger::Sighup => vec![&ini_arg],
    };
    let s = serve(&args, None);
    let url = s.url("/");
    wait_body(&url, "v0").await;
    let load = start_load(s.host_port().to_string());
    load.wait_all_see(0).await;

    let announce = |s: &Served| {
        if trigger == Trigger::Sighup {
            s.signal(libc::SIGHUP);
        }
    };
    let edit = |n: u32| {
        let text = site_text(&format!("v{n}"));
        if n.is_multiple_of(2) {
            write_by_rename(&ini, &text); // as editors save
        } else {
            std::fs::write(&ini, text).unwrap();
        }
    };

    for n in 1..=5u32 {
        if n == 4 {
            // The broken edit: one error with file:line, the old stack keeps serving.
            let mark = s.line_count();
            std::fs::write(&ini, broken_text()).unwrap();
            announce(&s);
            wait_log(&s, mark, "reload failed");
            let err = wait_log(&s, mark, "site.ini:13: [app:text] unknown option 'bogus'");
            assert!(err.contains(&ini_arg), "{err}");
            wait_body(&url, "v3").await;
        }
        let mark = s.line_count();
        edit(n);
        announce(&s);
        wait_body(&url, &format!("v{n}")).await;
        wait_log(&s, mark, "reloaded: new requests get the new configuration");
        load.wait_all_see(n).await;
    }

    let (ok, failed, errors) = load.finish().await;
    eprintln!("load: {ok} requests answered, {failed} failed");
    assert_eq!(
        failed,
        0,
        "failed requests: {:?}",
        &errors[..errors.len().min(10)]
    );
    assert!(
        ok >= CONNECTIONS as u64,
        "the load loop ran ({ok} requests)"
    );
    let stderr = s.stderr();
    assert_eq!(
        stderr.matches("reload failed").count(),
        1,
        "one error for the broken edit:\n{stderr}"
    );
    assert_eq!(
        stderr.matches("unknown option 'bogus'").count(),
        1,
        "{stderr}"
    );
    assert!(
        !stderr.contains("panic"),
        "no panics while reloading:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_option_swaps_the_stack_under_load() {
    edits_under_load(Trigger::Watch).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_swaps_the_stack_under_load() {
    edits_under_load(Trigger::Sighup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_sees_an_included_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let ini = setup(dir.path());
    let s = serve(&[ini.to_str().unwrap(), "--reload"], None);
    wait_body(&s.url("/inc"), "inc0").await;
    std::fs::write(dir.path().join("inc.ini"), inc_text("inc1")).unwrap();
    wait_body(&s.url("/inc"), "inc1").await;
    write_by_rename(&dir.path().join("inc.ini"), &inc_text("inc2"));
    wait_body(&s.url("/inc"), "inc2").await;
    assert_eq!(s.count_lines(|l| l.contains("reload failed")), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_watches_files_a_reload_added() {
    let dir = tempfile::tempdir().unwrap();
    let ini = setup(dir.path());
    let s = serve(&[ini.to_str().unwrap(), "--reload"], None);
    // Point the include at a file in a directory that was not read before.
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    write(&dir.path().join("sub"), "more.ini", &inc_text("sub1"));
    std::fs::write(
        &ini,
        site_text("v0").replace("config:inc.ini#inc", "config:sub/more.ini#inc"),
    )
    .unwrap();
    wait_body(&s.url("/inc"), "sub1").await;
    write_by_rename(&dir.path().join("sub/more.ini"), &inc_text("sub2"));
    wait_body(&s.url("/inc"), "sub2").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_server_section_says_a_restart_is_needed() {
    let dir = tempfile::tempdir().unwrap();
    let ini = setup(dir.path());
    let s = serve(&[ini.to_str().unwrap(), "--reload"], None);
    let changed = site_text("v1").replace("port = 0", "port = 0\nconnection_limit = 50");
    std::fs::write(&ini, changed).unwrap();
    wait_body(&s.url("/"), "v1").await;
    let line = wait_log(&s, 0, "the server section changed");
    assert!(line.contains("after a restart"), "{line}");
    // Still served on the same address.
    wait_body(&s.url("/"), "v1").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_in_flight_finish_on_the_old_stack() {
    let dir = tempfile::tempdir().unwrap();
    let echo = |version: &str| {
        format!(
            "[server:main]\nuse = egg:mapproxy-serve#http\nport = 0\n\n\
             [app:main]\nuse = egg:mapproxy-serve#echo\nslow_path = /slow\n\
             slow_seconds = 1\nversion = {version}\n"
        )
    };
    let ini = write(dir.path(), "echo.ini", &echo("old"));
    let mut s = serve(&[ini.to_str().unwrap(), "--reload"], None);
    let url = s.url("/slow");
    let slow = tokio::spawn(async move { client().get(url).send().await?.text().await });
    wait_log(&s, 0, "slow_path /slow: answering");
    std::fs::write(&ini, echo("new")).unwrap();
    let c = client();
    let end = Instant::now() + DEADLINE;
    loop {
        let body = c
            .get(s.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        if v["local_conf"]["version"] == "new" {
            break;
        }
        assert!(Instant::now() < end, "never reloaded: {}", s.stderr());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let body = slow.await.unwrap().expect("the slow request is answered");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["local_conf"]["version"], "old",
        "started on the old stack"
    );
    // SIGTERM stops the watcher too: a clean exit.
    s.signal(libc::SIGTERM);
    let status = tokio::task::block_in_place(|| s.wait_exit(DEADLINE));
    assert_eq!(status.code(), Some(0), "{}", s.stderr());
}

/// The site with its logging configured: a console handler with these `args`, a formatter with
/// this `format`.
fn site_with_logging(args: &str, format: &str) -> String {
    format!(
        "{}\n[loggers]\nkeys = root\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = x\n\n\
         [logger_root]\nlevel = INFO\nhandlers = console\n\n\
         [handler_console]\nclass = StreamHandler\nargs = {args}\nformatter = x\n\n\
         [formatter_x]\nformat = {format}\n",
        site_text("v0")
    )
}

/// Edits that would overflow the stack, exhaust memory or hang a running server when it
/// reloaded: each is refused with an error naming file and line, and the running
/// configuration keeps serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_edit_is_refused_and_the_server_keeps_serving() {
    let dir = tempfile::tempdir().unwrap();
    let ini = setup(dir.path());
    let fifo = dir.path().join("fifo.ini");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let s = serve(&[ini.to_str().unwrap()], None);
    let url = s.url("/");
    wait_body(&url, "v0").await;

    let site = site_text("v0");
    let text_app = "[app:text]\nuse = egg:mapproxy-serve#text\nbody = v0\n";
    let mut deep = String::from("[app:text]\nuse = t1\n");
    for i in 1..600 {
        deep.push_str(&format!("\n[app:t{i}]\nuse = t{}\n", i + 1));
    }
    deep.push_str("\n[app:t600]\nuse = egg:mapproxy-serve#text\nbody = deep\n");
    let mut bomb = String::from("x0 = aaaaaaaaaa\n");
    for i in 1..10 {
        bomb.push_str(&format!(
            "x{i} = {}\n",
            format!("%(x{})s", i - 1).repeat(10)
        ));
    }
    let edits: Vec<(String, &str)> = vec![
        (
            site.replace(text_app, &deep),
            "sections nested more than 100 deep: [composite:main]",
        ),
        (
            site.replace("/ = text", "/ = main"),
            "site.ini:7: [composite:main] circular use: [composite:main]",
        ),
        (
            site.replace("body = v0\n", &format!("body = v0\n{bomb}")),
            "site.ini:22: [app:text] key 'x9': the value takes more than",
        ),
        (
            site_with_logging(
                &format!("{}sys.stderr,{}", "(".repeat(10_000), ")".repeat(10_000)),
                "%(message)s",
            ),
            "[handler_console] args: brackets nested more than 100 deep",
        ),
        (
            site_with_logging("(sys.stderr,)", "%(message)99999999999999999999s"),
            "[formatter_x] format: %(message): width 99999999999999999999 is too large",
        ),
        (
            site.replace("config:inc.ini#inc", "config:/dev/zero#inc"),
            "'config:/dev/zero#inc': /dev/zero: cannot read: not a regular file (a device)",
        ),
        (
            site.replace("config:inc.ini#inc", "config:fifo.ini#inc"),
            "cannot read: not a regular file (a FIFO)",
        ),
    ];
    for (text, expected) in edits {
        let mark = s.line_count();
        std::fs::write(&ini, &text).unwrap();
        s.signal(libc::SIGHUP);
        wait_log(&s, mark, "reload failed");
        wait_log(&s, mark, expected);
        wait_body(&url, "v0").await;
    }
    // The reloader itself is still there.
    let mark = s.line_count();
    std::fs::write(&ini, site_text("v1")).unwrap();
    s.signal(libc::SIGHUP);
    wait_body(&url, "v1").await;
    wait_log(&s, mark, "reloaded: new requests get the new configuration");
}
