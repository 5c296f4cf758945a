//! Serve `example.ini` with the real `custom-auth-serve` binary and talk HTTP to it.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_custom-auth-serve");

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Start the binary on a free port; the address from its `serving on http://...` line.
fn serve(ini: &str) -> (Server, String) {
    let mut child = Command::new(BIN)
        .args([ini, "-b", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start custom-auth-serve");
    let stderr = child.stderr.take().expect("stderr");
    let server = Server(child);
    // Lines until "serving on" (the process exits, closing stderr, if it cannot start).
    let mut lines = BufReader::new(stderr).lines();
    for _ in 0..100 {
        let Some(Ok(line)) = lines.next() else { break };
        if let Some(addr) = line.strip_prefix("serving on http://") {
            // keep reading its stderr (log lines), so that its writes never fail
            std::thread::spawn(move || lines.for_each(drop));
            return (server, addr.trim().to_string());
        }
        eprintln!("{line}");
    }
    panic!("custom-auth-serve did not start");
}

/// `GET /hello` with extra header lines; the status code and the body.
fn get(addr: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /hello HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).expect("read answer");
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    (status, answer)
}

#[test]
fn example_ini_needs_a_known_key() {
    let ini = concat!(env!("CARGO_MANIFEST_DIR"), "/example.ini");
    let (_server, addr) = serve(ini);

    let (status, answer) = get(&addr, "");
    assert_eq!(status, 401);
    assert!(
        answer.contains("www-authenticate: ApiKey realm=\"maps\""),
        "{answer}"
    );
    assert_eq!(get(&addr, "X-Api-Key: wrong\r\n").0, 401);

    let (status, answer) = get(&addr, "X-Api-Key: alice-secret\r\n");
    assert_eq!(status, 200, "{answer}");
    // the echo app behind the filter sees the key's name as REMOTE_USER
    assert!(answer.contains("\"remote_user\": \"alice\""), "{answer}");
}

#[test]
fn list_factories_shows_the_new_egg() {
    let out = Command::new(BIN)
        .arg("list-factories")
        .output()
        .expect("run list-factories");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("egg:custom-auth#api_key  (filter)"), "{text}");
    assert!(
        text.contains("egg:custom-auth#layer_auth  (filter)"),
        "{text}"
    );
    // ... next to mapproxy-serve's own
    assert!(text.contains("egg:Paste#urlmap"), "{text}");
}

#[test]
fn check_accepts_the_example() {
    let ini = concat!(env!("CARGO_MANIFEST_DIR"), "/example.ini");
    let out = Command::new(BIN)
        .args(["check", ini])
        .output()
        .expect("run check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ---------------------------------------------------------------- the build context

/// A running binary whose stderr lines are collected (for log lines and reload messages).
struct Watched {
    child: Child,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    addr: String,
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const DEADLINE: Duration = Duration::from_secs(20);

impl Watched {
    fn start(ini: &std::path::Path, extra: &[&str]) -> Watched {
        let mut child = Command::new(BIN)
            .arg(ini)
            .args(["-b", "127.0.0.1:0"])
            .args(extra)
            .stderr(Stdio::piped())
            .spawn()
            .expect("start custom-auth-serve");
        let stderr = child.stderr.take().expect("stderr");
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let mut w = Watched {
            child,
            lines,
            addr: String::new(),
        };
        let line = w.wait_for(|l| l.starts_with("serving on http://"));
        w.addr = line["serving on http://".len()..].trim().to_string();
        w
    }

    /// The first stderr line (from now on or earlier) matching `want`; panics at the deadline.
    fn wait_for(&self, want: impl Fn(&str) -> bool) -> String {
        let start = std::time::Instant::now();
        loop {
            if let Some(l) = self.lines.lock().unwrap().iter().find(|l| want(l)) {
                return l.clone();
            }
            assert!(
                start.elapsed() < DEADLINE,
                "no such line; stderr so far:\n{}",
                self.lines.lock().unwrap().join("\n")
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// How many stderr lines match `want` so far.
    fn count(&self, want: impl Fn(&str) -> bool) -> usize {
        self.lines
            .lock()
            .unwrap()
            .iter()
            .filter(|l| want(l))
            .count()
    }

    fn sighup(&self) {
        let ok = Command::new("kill")
            .args(["-HUP", &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(ok.success());
    }

    /// Poll until `key` gets `status`; panics at the deadline.
    fn until_status(&self, key: &str, status: u16) {
        let start = std::time::Instant::now();
        while get(&self.addr, &format!("X-Api-Key: {key}\r\n")).0 != status {
            assert!(start.elapsed() < DEADLINE, "{key} never got {status}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

fn keys_ini(dir: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let ini = dir.join("keys.ini");
    std::fs::write(
        &ini,
        format!(
            "[pipeline:main]\npipeline = api_key echo\n\n\
             [filter:api_key]\nuse = egg:custom-auth#api_key\nheader = X-Api-Key\n\
             keys_file = %(here)s/keys.txt\n{extra}\n\
             [app:echo]\nuse = egg:mapproxy-serve#echo\n"
        ),
    )
    .unwrap();
    ini
}

/// Replace `path` as editors do (write beside it, rename over it).
fn replace(path: &std::path::Path, text: &str) {
    let tmp = path.with_extension("tmp~");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

#[test]
fn an_edited_keys_file_is_picked_up_by_reload_and_sighup_and_a_broken_one_keeps_the_old_keys() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys.txt");
    std::fs::write(&keys, "alice:alice-secret-1\n").unwrap();
    let ini = keys_ini(dir.path(), "");

    // --reload: the key file is watched like the ini file.
    let w = Watched::start(&ini, &["--reload"]);
    assert_eq!(get(&w.addr, "X-Api-Key: alice-secret-1\r\n").0, 200);
    replace(&keys, "alice:alice-secret-2\n");
    w.until_status("alice-secret-2", 200);
    assert_eq!(get(&w.addr, "X-Api-Key: alice-secret-1\r\n").0, 401);
    // A broken edit: the reload fails, the old keys keep serving.
    replace(&keys, "alice-without-a-colon\n");
    w.wait_for(|l| l.contains("reload failed") && l.contains("still serving"));
    assert_eq!(get(&w.addr, "X-Api-Key: alice-secret-2\r\n").0, 200);
    drop(w);

    // SIGHUP without --reload reads it again too.
    std::fs::write(&keys, "alice:alice-secret-3\n").unwrap();
    let w = Watched::start(&ini, &[]);
    std::fs::write(&keys, "alice:alice-secret-4\n").unwrap();
    w.sighup();
    w.until_status("alice-secret-4", 200);
    // `inspect` lists the key file among the files read.
    let out = Command::new(BIN)
        .args(["inspect", ini.to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(keys.to_str().unwrap()), "{text}");
}

#[test]
fn a_task_spawned_at_build_runs_on_first_start_and_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.txt"), "alice:alice-secret-1\n").unwrap();
    let ini = keys_ini(dir.path(), "usage_log_interval = 0.05\n");
    let w = Watched::start(&ini, &[]);
    assert_eq!(get(&w.addr, "X-Api-Key: alice-secret-1\r\n").0, 200);
    // The task spawned while the first stack was built (before the server bound) logs.
    w.wait_for(|l| l.contains("api_key usage: alice=1"));
    // A reload builds a new stack whose task counts from zero, and stops the old task (which
    // would go on saying alice=1 forever).
    w.sighup();
    w.wait_for(|l| l.contains("api_key usage: alice=0"));
    for _ in 0..2 {
        assert_eq!(get(&w.addr, "X-Api-Key: alice-secret-1\r\n").0, 200);
    }
    w.wait_for(|l| l.contains("api_key usage: alice=2"));
    let usage = |l: &str| l.contains("api_key usage:");
    let seen = w.count(usage);
    let start = std::time::Instant::now();
    while w.count(usage) < seen + 5 {
        assert!(start.elapsed() < DEADLINE, "the usage task stopped logging");
        std::thread::sleep(Duration::from_millis(20));
    }
    let lines = w.lines.lock().unwrap().clone();
    let later: Vec<&String> = lines.iter().filter(|l| usage(l)).skip(seen).collect();
    assert!(
        later.iter().all(|l| l.contains("alice=2")),
        "the replaced stack's task still logs: {later:?}"
    );
}

#[test]
fn check_shows_a_factory_warning_with_file_and_line_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("weak.ini");
    std::fs::write(
        &ini,
        "[app:main]\nuse = egg:mapproxy-serve#echo\nfilter-with = api_key\n\n\
         [filter:api_key]\nuse = egg:custom-auth#api_key\nkeys = bob:short\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["check", ini.to_str().unwrap()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    let want = format!(
        "{}:7: [filter:api_key] the key of 'bob' is shorter than 12 characters",
        ini.display()
    );
    assert!(err.contains(&want), "{err}");
}

/// `GET path` with extra header lines; the status code and the whole answer.
fn get_path(addr: &str, path: &str, headers: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).expect("read answer");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP answer: {answer}"));
    (status, answer)
}

/// A MapProxy with two layers of a `debug` source (the shape of `ini/mapproxy.yaml`), behind
/// `api_key` + `layer_auth` at `/`, and behind `layer_auth` alone at `/anon`.
fn layer_auth_ini(dir: &std::path::Path) -> std::path::PathBuf {
    std::fs::write(
        dir.join("mapproxy.yaml"),
        "services:\n  demo:\n  tms:\n  wmts:\n\n\
         layers:\n  - name: open\n    title: Open layer\n    sources: [open_cache]\n  \
         - name: secret\n    title: Secret layer\n    sources: [secret_cache]\n\n\
         caches:\n  open_cache:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [debug]\n    \
         format: image/png\n    meta_size: [1, 1]\n    meta_buffer: 0\n  \
         secret_cache:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [debug]\n    \
         format: image/png\n    meta_size: [1, 1]\n    meta_buffer: 0\n\n\
         sources:\n  debug:\n    type: debug\n\n\
         globals:\n  cache:\n    base_dir: ./cache_data\n",
    )
    .unwrap();
    let ini = dir.join("layers.ini");
    std::fs::write(
        &ini,
        "[server:main]\nuse = egg:mapproxy-serve#http\nhost = 127.0.0.1\nport = 8080\n\n\
         [composite:main]\nuse = egg:Paste#urlmap\n/ = keyed\n/anon = anon\n\n\
         [pipeline:keyed]\npipeline = api_key layer_auth mapproxy\n\n\
         [pipeline:anon]\npipeline = layer_auth mapproxy\n\n\
         [filter:api_key]\nuse = egg:custom-auth#api_key\nheader = X-Api-Key\n\
         keys = alice:alice-secret-key ci:ci-secret-key\n\n\
         [filter:layer_auth]\nuse = egg:custom-auth#layer_auth\n\
         users =\n    alice: *\n    ci: open\n\n\
         [app:mapproxy]\nuse = egg:MapProxy#app\nmapproxy_conf = %(here)s/mapproxy.yaml\n",
    )
    .unwrap();
    ini
}

/// The `title="..."` of every TileMap in a TMS capabilities answer.
fn tile_maps(answer: &str) -> Vec<&str> {
    answer
        .split("<TileMap title=\"")
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .collect()
}

#[test]
fn layer_auth_lets_mapproxy_answer_by_user() {
    let dir = tempfile::tempdir().unwrap();
    let ini = layer_auth_ini(dir.path());
    let (_server, addr) = serve(ini.to_str().unwrap());
    let ci = "X-Api-Key: ci-secret-key\r\n";
    let alice = "X-Api-Key: alice-secret-key\r\n";
    let open_tile = "/tms/1.0.0/open/EPSG3857/0/0/0.png";
    let secret_tile = "/tms/1.0.0/secret/EPSG3857/0/0/0.png";

    // no credentials: api_key's 401; behind layer_auth alone, MapProxy's own 401
    let (status, answer) = get_path(&addr, open_tile, "");
    assert_eq!(status, 401, "{answer}");
    assert!(answer.contains("www-authenticate: ApiKey"), "{answer}");
    let (status, answer) = get_path(&addr, &format!("/anon{open_tile}"), "");
    assert_eq!(status, 401, "{answer}");
    assert!(answer.ends_with("\r\n\r\nunauthorized"), "{answer}");

    // ci may see `open` only
    let (status, answer) = get_path(&addr, secret_tile, ci);
    assert_eq!(status, 403, "{answer}");
    assert!(answer.ends_with("\r\n\r\nforbidden"), "{answer}");
    let (status, answer) = get_path(&addr, "/tms/1.0.0/", ci);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(tile_maps(&answer), ["Open layer"]);
    let (status, answer) = get_path(&addr, open_tile, ci);
    assert_eq!(status, 200, "{answer}");
    assert!(answer.contains("content-type: image/png"), "{answer}");
    let (status, answer) = get_path(&addr, "/wmts/1.0.0/WMTSCapabilities.xml", ci);
    assert_eq!(status, 200, "{answer}");
    assert!(
        answer.contains("<ows:Title>Open layer</ows:Title>"),
        "{answer}"
    );
    assert!(!answer.contains("Secret layer"), "{answer}");

    // alice may see everything
    let (status, answer) = get_path(&addr, "/tms/1.0.0/", alice);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(tile_maps(&answer), ["Open layer", "Secret layer"]);
    let (status, answer) = get_path(&addr, secret_tile, alice);
    assert_eq!(status, 200, "{answer}");
}
