//! Every registered filter and app, through an ini file served by the real `mapproxy-serve`
//! binary on `127.0.0.1:0`, with real HTTP requests: status, headers and bodies. The static
//! files and reverse proxy security cases are here too.
//!
//! `every_filter_and_app_egg_is_covered` fails when a filter or app is registered that no
//! test here serves.

mod support;

use std::io::Read;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use support::*;

/// Write `config.ini` into `dir` and serve it.
fn serve(dir: &Path, ini: &str) -> Served {
    let path = write(dir, "config.ini", ini);
    Served::start(&path, &[])
}

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// The canonical egg names each test below serves through an ini file.
const COVERED: &[&str] = &[
    "mapproxy-serve#access_log",
    "mapproxy-serve#basic_auth",
    "mapproxy-serve#proxy_headers",
    "mapproxy-serve#compress",
    "mapproxy-serve#error_catcher",
    "mapproxy-serve#cors",
    "mapproxy-serve#body_limit",
    "mapproxy-serve#timeout",
    "mapproxy-serve#headers",
    "mapproxy-serve#request_id",
    "mapproxy-serve#static",
    "mapproxy-serve#proxy",
    "mapproxy-serve#cascade",
    "mapproxy-serve#echo",
    "mapproxy-serve#text",
    "mapproxy-serve#urlmap",
    // served through ini files in tests/serve_binary.rs (ini/develop.ini's /mapproxy,
    // multiapp_serves_lists_and_rebuilds_projects) and tests/fcgi_binary.rs (the seeds' config.ini)
    "MapProxy#app",
    "MapProxy#multiapp",
    // served through ini files in tests/wps_binary.rs (and the shipped ini/wps.ini)
    "mapproxy-serve#wps",
];

#[test]
fn every_filter_and_app_egg_is_covered() {
    let out = std::process::Command::new(BIN)
        .args(["list-factories", "--json"])
        .output()
        .expect("list-factories");
    assert!(out.status.success());
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let mut missing = Vec::new();
    for f in list.as_array().expect("a list") {
        if f["kind"] == "server" {
            continue; // the servers have their own tests (http_server, fcgi_*)
        }
        let name = f["eggs"][0].as_str().unwrap_or("");
        let name = name.strip_prefix("egg:").unwrap_or(name);
        if !COVERED.contains(&name) {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "no ini-file test for: {missing:?} (add one to tests/filters_ini.rs)"
    );
}

#[test]
fn production_ini_passes_check() {
    let ini = Path::new(env!("CARGO_MANIFEST_DIR")).join("ini/production.ini");
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg(&ini)
        .arg("upstream=http://127.0.0.1:9/")
        .output()
        .expect("check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

// ------------------------------------------------------------------------- access log

/// The parts of an Apache combined-format line; the time must look like
/// `21/Nov/2026:07:10:28 +0000`.
#[derive(Debug, PartialEq)]
struct Combined {
    ip: String,
    user: String,
    request: String,
    status: String,
    bytes: String,
    referer: String,
    agent: String,
}

fn time_ok(t: &str) -> bool {
    let b = t.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|s| s.iter().all(u8::is_ascii_digit));
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    t.len() == 26
        && digits(0..2)
        && b[2] == b'/'
        && MONTHS.contains(&&t[3..6])
        && b[6] == b'/'
        && digits(7..11)
        && b[11] == b':'
        && digits(12..14)
        && b[14] == b':'
        && digits(15..17)
        && b[17] == b':'
        && digits(18..20)
        && b[20] == b' '
        && (b[21] == b'+' || b[21] == b'-')
        && digits(22..26)
}

/// Parse `IP - USER [TIME] "REQUEST" STATUS BYTES "REFERER" "AGENT"` (the message part).
fn combined(msg: &str) -> Option<Combined> {
    let (ip, rest) = msg.split_once(" - ")?;
    let (user, rest) = rest.split_once(" [")?;
    let (time, rest) = rest.split_once("] \"")?;
    if !time_ok(time) {
        return None;
    }
    let (request, rest) = rest.split_once("\" ")?;
    let (status, rest) = rest.split_once(' ')?;
    let (bytes, rest) = rest.split_once(" \"")?;
    let (referer, rest) = rest.split_once("\" \"")?;
    let agent = rest.strip_suffix('"')?;
    Some(Combined {
        ip: ip.into(),
        user: user.into(),
        request: request.into(),
        status: status.into(),
        bytes: bytes.into(),
        referer: referer.into(),
        agent: agent.into(),
    })
}

#[tokio::test]
async fn access_log_goes_to_stderr_without_logging_sections() {
    let dir = tmp();
    let s = serve(
        dir.path(),
        "[pipeline:main]\npipeline = log auth echo\n\
         [filter:log]\nuse = egg:Paste#translogger\n\
         [filter:auth]\nuse = egg:Paste#auth_basic\nusers = ann:pw\n\
         [app:echo]\nuse = egg:mapproxy-serve#echo\n\
         [app:other]\nuse = egg:mapproxy-serve#text\n",
    );
    let r = get(
        s.addr(),
        "/p/a%20b?q=%221%22",
        &[
            ("authorization", &basic("ann:pw")),
            ("referer", "http://ref.test/"),
            ("user-agent", "tester \"1.0\""),
        ],
    )
    .await;
    assert_eq!(r.status, 200);
    // Paste's setup_console_handler (default true): the bare line on stderr.
    let line = s.wait_stderr_line(|l| l.contains("\"GET /p/a%20b"));
    let c = combined(&line).unwrap_or_else(|| panic!("not a combined line: {line}"));
    assert_eq!(
        c,
        Combined {
            ip: "127.0.0.1".into(),
            user: "ann".into(),
            request: "GET /p/a%20b?q=%221%22 HTTP/1.1".into(),
            status: "200".into(),
            bytes: r.body.len().to_string(),
            referer: "http://ref.test/".into(),
            // quotes in request-supplied values are escaped as Apache does
            agent: "tester \\\"1.0\\\"".into(),
        }
    );
    // a refused request is logged with its status and no user
    let r = get(s.addr(), "/denied", &[]).await;
    assert_eq!(r.status, 401);
    let line = s.wait_stderr_line(|l| l.contains("\"GET /denied HTTP/1.1\""));
    let c = combined(&line).unwrap_or_else(|| panic!("not a combined line: {line}"));
    assert_eq!((c.user.as_str(), c.status.as_str()), ("-", "401"));
    assert_eq!((c.referer.as_str(), c.agent.as_str()), ("-", "-"));
}

#[tokio::test]
async fn access_log_options_format_logger_name_and_console() {
    let dir = tmp();
    let s = serve(
        dir.path(),
        "[composite:main]\nuse = egg:Paste#urlmap\n/custom = custom\n/quiet = quiet\n\
         [pipeline:custom]\npipeline = customlog text\n\
         [pipeline:quiet]\npipeline = quietlog text\n\
         [filter:customlog]\nuse = egg:Paste#translogger\nlogger_name = access.custom\n\
         logging_level = WARNING\n\
         format = %%(REMOTE_ADDR)s %%(REQUEST_METHOD)s %%(REQUEST_URI)s %%(status)s %%(bytes)s \
         %%(HTTP_X_TAG)s\n\
         [filter:quietlog]\nuse = egg:Paste#translogger\nlogging_level = DEBUG\n\
         setup_console_handler = false\n\
         [app:text]\nuse = egg:mapproxy-serve#text\nbody = 12345\n",
    );
    // DEBUG lines are below the default logging's level, and not printed instead
    assert_eq!(get(s.addr(), "/quiet/x", &[]).await.status, 200);
    for tag in ["first", "second"] {
        let r = get(s.addr(), "/custom/x?y", &[("x-tag", tag)]).await;
        assert_eq!(r.text(), "12345");
    }
    let line = s.wait_stderr_line(|l| l.ends_with(" second"));
    // setup_console_handler (Paste): the bare line on the console
    assert_eq!(line, "127.0.0.1 GET /custom/x?y 200 5 second");
    let err = s.stderr();
    assert!(
        err.contains("127.0.0.1 GET /custom/x?y 200 5 first"),
        "{err}"
    );
    assert!(!err.contains("/quiet/x"), "{err}");
}

#[tokio::test]
async fn access_log_goes_to_a_file_with_logging_sections() {
    let dir = tmp();
    let s = serve(
        dir.path(),
        r#"[pipeline:main]
pipeline = log text

[filter:log]
use = egg:mapproxy-serve#access_log
logger_name = access
setup_console_handler = false

[app:text]
use = egg:mapproxy-serve#text
body = hello

[loggers]
keys = root, access

[handlers]
keys = console, accessfile

[formatters]
keys = generic, message

[logger_root]
level = INFO
handlers = console

[logger_access]
level = INFO
qualname = access
propagate = 0
handlers = accessfile

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[handler_accessfile]
class = FileHandler
args = ('%(here)s/access.log', 'a')
level = INFO
formatter = message

[formatter_generic]
format = %(asctime)s %(levelname)s [%(name)s] %(message)s

[formatter_message]
format = %(message)s
"#,
    );
    for path in ["/one", "/two?x=1"] {
        let r = get(s.addr(), path, &[("user-agent", "filetest")]).await;
        assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "hello"));
    }
    let file = dir.path().join("access.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&file).unwrap_or_default();
        if t.lines().count() >= 2 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines: Vec<Combined> = text
        .lines()
        .map(|l| combined(l).unwrap_or_else(|| panic!("not a combined line: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert_eq!(lines[0].request, "GET /one HTTP/1.1");
    assert_eq!(lines[1].request, "GET /two?x=1 HTTP/1.1");
    for c in &lines {
        assert_eq!(
            (c.ip.as_str(), c.status.as_str(), c.bytes.as_str()),
            ("127.0.0.1", "200", "5")
        );
        assert_eq!(c.agent, "filetest");
    }
    // propagate = 0: not on the console too
    assert!(!s.stderr().contains("GET /one"), "{}", s.stderr());
}

#[tokio::test]
async fn access_log_levels_keep_python_numbers() {
    // `logging_level = CRITICAL` logs CRITICAL/50 and a number that names no level prints as
    // Python's `Level 25`; loggers compare the numbers as Python does (CRITICAL passes a
    // logger at CRITICAL, 24 does not pass one at WARNING). fileConfig takes level names
    // only, as Python's. Expected lines from Python 3.11's logging with the same levels and
    // format (`logger.log(50 | 25, ...)`).
    let dir = tmp();
    let s = serve(
        dir.path(),
        r#"[pipeline:main]
pipeline = crit mid low text

[filter:crit]
use = egg:Paste#translogger
logger_name = crit
logging_level = CRITICAL
setup_console_handler = false

[filter:mid]
use = egg:Paste#translogger
logger_name = mid
logging_level = 25
setup_console_handler = false

[filter:low]
use = egg:Paste#translogger
logger_name = low
logging_level = 24
setup_console_handler = false

[app:text]
use = egg:mapproxy-serve#text
body = hello

[loggers]
keys = root, crit, mid, low

[handlers]
keys = levels

[formatters]
keys = levels

[logger_root]
level = INFO
handlers =

[logger_crit]
level = CRITICAL
qualname = crit
handlers = levels

[logger_mid]
level = INFO
qualname = mid
handlers = levels

[logger_low]
level = WARNING
qualname = low
handlers = levels

[handler_levels]
class = FileHandler
args = ('%(here)s/levels.log', 'a')
formatter = levels

[formatter_levels]
format = %(levelname)s|%(levelno)s|%(name)s|%(message)s
"#,
    );
    let r = get(s.addr(), "/x", &[]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "hello"));
    let file = dir.path().join("levels.log");
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let t = std::fs::read_to_string(&file).unwrap_or_default();
        if t.lines().count() >= 2 || Instant::now() > deadline {
            break t;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let heads: Vec<&str> = text
        .lines()
        .map(|l| l.split_once("|127.0.0.1 ").map_or(l, |(h, _)| h))
        .collect();
    // The inner filter writes first (its response ends first).
    let mut sorted = heads.clone();
    sorted.sort();
    assert_eq!(sorted, ["CRITICAL|50|crit", "Level 25|25|mid"], "{text}");
    assert!(!s.stderr().contains("GET /x"), "{}", s.stderr());
}

// ------------------------------------------------------------------------- basic auth

// Test vectors, all for the password `secret` (filters/src/htpasswd.rs): bcrypt, apr1, {SHA},
// {PLAIN}.
const HTPASSWD: &str = "\
# users
alice:$2y$05$hB/j7d8LOr.e1c/ow61zFOT4ybNSLe2oWhFQ8t2W5coBHnGfmijG2
dave:$apr1$MvGLl1AV$MEHgkm3R4VHTlhjpUOnBh/
bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=
gina:{PLAIN}secret
";

#[tokio::test]
async fn basic_auth_users_and_htpasswd_reread_without_restart() {
    let dir = tmp();
    let pw = write(dir.path(), "htpasswd", HTPASSWD);
    let s = serve(
        dir.path(),
        "[composite:main]\nuse = egg:Paste#urlmap\n/file = file\n/inline = inline\n\
         [pipeline:file]\npipeline = fileauth echo\n\
         [pipeline:inline]\npipeline = inlineauth echo\n\
         [filter:fileauth]\nuse = egg:Paste#auth_basic\nrealm = files\nhtpasswd = htpasswd\n\
         [filter:inlineauth]\nuse = egg:mapproxy-serve#basic_auth\nusers = ann:one\n  ben:two:three\n\
         [app:echo]\nuse = egg:mapproxy-serve#echo\n",
    );
    let r = get(s.addr(), "/file/x", &[]).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), "Basic realm=\"files\"");
    for user in ["alice", "dave", "bob", "gina"] {
        let ok = get(
            s.addr(),
            "/file/x",
            &[("authorization", &basic(&format!("{user}:secret")))],
        )
        .await;
        assert_eq!(ok.status, 200, "{user}");
        assert_eq!(ok.json()["remote_user"], user);
        let bad = get(
            s.addr(),
            "/file/x",
            &[("authorization", &basic(&format!("{user}:Secret")))],
        )
        .await;
        assert_eq!(bad.status, 401, "{user}");
    }
    // inline users (default realm); a password may contain ':'
    let r = get(s.addr(), "/inline/", &[]).await;
    assert_eq!(r.header("www-authenticate"), "Basic realm=\"restricted\"");
    let r = get(
        s.addr(),
        "/inline/",
        &[("authorization", &basic("ben:two:three"))],
    )
    .await;
    assert_eq!(r.json()["remote_user"], "ben");
    for bad in ["Basic", "Basic !!!", "Bearer x", "Basic YW5u"] {
        let r = get(s.addr(), "/inline/", &[("authorization", bad)]).await;
        assert_eq!(r.status, 401, "{bad}");
    }

    // A user added to the file is accepted without a restart.
    let newcomer = [("authorization", basic("newcomer:fresh"))];
    let h: Vec<(&str, &str)> = newcomer.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(get(s.addr(), "/file/", &h).await.status, 401);
    std::fs::write(&pw, format!("{HTPASSWD}newcomer:{{PLAIN}}fresh\n")).expect("rewrite");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(s.addr(), "/file/", &h).await;
        if r.status == 200 {
            assert_eq!(r.json()["remote_user"], "newcomer");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new user not accepted within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // ... and one removed is refused
    std::fs::write(&pw, "gina:{PLAIN}secret\n").expect("rewrite");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = get(s.addr(), "/file/", &h).await;
        if r.status == 401 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "removed user still accepted after 10 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---------------------------------------------------------------- prefix / proxy headers

#[tokio::test]
async fn prefix_and_proxy_headers() {
    let dir = tmp();
    let s = serve(
        dir.path(),
        "[composite:main]\nuse = egg:Paste#urlmap\n/trusted = trusted\n/untrusted = untrusted\n/\
         = prefixed\n\
         [pipeline:trusted]\npipeline = trust_loopback echo\n\
         [pipeline:untrusted]\npipeline = trust_others echo\n\
         [pipeline:prefixed]\npipeline = prefix echo\n\
         [filter:trust_loopback]\nuse = egg:mapproxy-serve#proxy_headers\n\
         [filter:trust_others]\nuse = egg:mapproxy-serve#proxy_headers\ntrusted_proxies = 10.0.0.0/8, 192.0.2.1\n\
         [filter:prefix]\nuse = egg:PasteDeploy#prefix\nprefix = /james\nscheme = https\nforce_port =\n\
         [app:echo]\nuse = egg:mapproxy-serve#echo\n",
    );
    let fwd = [
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "maps.example.org:8443"),
        ("x-forwarded-for", "203.0.113.7, 127.0.0.5"),
        ("x-script-name", "/public"),
    ];
    // the client (127.0.0.1) is a trusted proxy by default (loopback)
    let v = get(s.addr(), "/trusted/public/x", &fwd).await.json();
    assert_eq!(v["scheme"], "https", "{v:#}");
    assert_eq!(v["host"], "maps.example.org:8443");
    assert_eq!(v["remote_addr"], "203.0.113.7");
    // X-Script-Name is the public mount path; its prefix is removed from the path
    assert_eq!(v["script_name"], "/public");
    assert_eq!(v["path_info"], "/x");
    for h in [
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
        "x-script-name",
    ] {
        assert!(v["headers"].get(h).is_none(), "{h}: {v:#}");
    }
    // RFC 7239 Forwarded
    let v = get(
        s.addr(),
        "/trusted/y",
        &[("forwarded", "for=198.51.100.1;proto=https;host=fwd.example")],
    )
    .await
    .json();
    assert_eq!(
        (&v["scheme"], &v["host"], &v["remote_addr"]),
        (
            &"https".into(),
            &"fwd.example".into(),
            &"198.51.100.1".into()
        )
    );
    // not a trusted peer: the headers are ignored and removed
    let v = get(s.addr(), "/untrusted/public/x", &fwd).await.json();
    assert_eq!(v["scheme"], "http", "{v:#}");
    assert_eq!(v["host"], s.addr().to_string());
    assert_eq!(v["remote_addr"], "127.0.0.1");
    assert_eq!(v["script_name"], "/untrusted");
    assert_eq!(v["path_info"], "/public/x");
    for h in [
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
        "x-script-name",
    ] {
        assert!(v["headers"].get(h).is_none(), "{h}: {v:#}");
    }
    // Paste's prefix: the prefix is removed, scheme forced, port dropped
    let v = get(s.addr(), "/james/x?a=1", &[("host", "inner.example:8080")])
        .await
        .json();
    assert_eq!(v["script_name"], "/james", "{v:#}");
    assert_eq!(v["path_info"], "/x");
    assert_eq!(v["query"], "a=1");
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["host"], "inner.example");
    // a path outside the prefix is left alone (on a segment boundary only)
    let v = get(s.addr(), "/jamesx", &[]).await.json();
    assert_eq!(
        (&v["script_name"], &v["path_info"]),
        (&"/james".into(), &"/jamesx".into())
    );
}

// ---------------------------------------------------------------------- compress

#[tokio::test]
async fn compress_gzip_br_and_not_head_or_small() {
    let dir = tmp();
    let long = "tile ".repeat(400).trim_end().to_string();
    let s = serve(
        dir.path(),
        &format!(
            "[composite:main]\nuse = egg:Paste#urlmap\n/gz = gz\n/br = br\n/small = small\n\
             [pipeline:gz]\npipeline = gzip long\n\
             [pipeline:br]\npipeline = compress long\n\
             [pipeline:small]\npipeline = gzip short\n\
             [filter:gzip]\nuse = egg:Paste#gzip\ncompress_level = 9\n\
             [filter:compress]\nuse = egg:mapproxy-serve#compress\nencodings = br\nmin_size = 100\n\
             [app:long]\nuse = egg:mapproxy-serve#text\nbody = {long}\n\
             [app:short]\nuse = egg:mapproxy-serve#text\nbody = tiny\n"
        ),
    );
    let r = get(s.addr(), "/gz/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-encoding"), "gzip");
    assert!(r
        .header("vary")
        .to_ascii_lowercase()
        .contains("accept-encoding"));
    assert!(r.body.len() < long.len() / 10, "{} bytes", r.body.len());
    let mut plain = String::new();
    flate2::read::GzDecoder::new(&r.body[..])
        .read_to_string(&mut plain)
        .expect("gunzip");
    assert_eq!(plain, long);
    // not accepted: not compressed
    let r = get(s.addr(), "/gz/", &[]).await;
    assert_eq!((r.header("content-encoding"), r.text()), ("", long.clone()));
    // HEAD is not compressed (its headers would not match a GET)
    let r = send(s.addr(), "HEAD", "/gz/", &[("accept-encoding", "gzip")], "").await;
    assert_eq!(r.header("content-encoding"), "");
    // encodings = br: gzip is not used
    let r = get(s.addr(), "/br/", &[("accept-encoding", "gzip, br")]).await;
    assert_eq!(r.header("content-encoding"), "br");
    let r = get(s.addr(), "/br/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.header("content-encoding"), "");
    // below min_size (default 32 bytes)
    let r = get(s.addr(), "/small/", &[("accept-encoding", "gzip")]).await;
    assert_eq!(
        (r.header("content-encoding"), r.text().as_str()),
        ("", "tiny")
    );
}

// ------------------------------------------------------------------ error catcher

#[tokio::test]
async fn error_catcher_hides_5xx_details_unless_debug() {
    let dir = tmp();
    let s = serve(
        dir.path(),
        "[composite:main]\nuse = egg:Paste#urlmap\n/quiet = quiet\n/debug = debug\n/ok = ok\n\
         [pipeline:quiet]\npipeline = catcher broken\n\
         [pipeline:debug]\npipeline = debugcatcher broken\n\
         [pipeline:ok]\npipeline = catcher fine\n\
         [filter:catcher]\nuse = egg:Paste#errorcatcher\nerror_message = Sorry, try later.\n\
         error_email = ops@example.org\nsmtp_server = localhost\n\
         [filter:debugcatcher]\nuse = egg:mapproxy-serve#error_catcher\ndebug = true\n\
         [app:broken]\nuse = egg:mapproxy-serve#text\nstatus = 500\nbody = db password is hunter2\n\
         [app:fine]\nuse = egg:mapproxy-serve#text\nstatus = 404\nbody = no such map\n",
    );
    let r = get(s.addr(), "/quiet/", &[]).await;
    assert_eq!(r.status, 500);
    assert!(!r.text().contains("hunter2"), "{}", r.text());
    assert!(r.text().contains("Sorry, try later."), "{}", r.text());
    let r = get(s.addr(), "/debug/", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (500, "db password is hunter2")
    );
    // 4xx answers pass through
    let r = get(s.addr(), "/ok/", &[]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (404, "no such map"));
}

// ------------------------------------------------------------------------- cors

#[tokio::test]
async fn cors_preflight_and_simple_requests() {
    let dir = tmp();
    let s = serve(
        dir.path(),
        "[pipeline:main]\npipeline = cors text\n\
         [filter:cors]\nuse = egg:mapproxy-serve#cors\nallow_origin = https://maps.example.org\n\
         allow_methods = GET, POST\nallow_headers = x-token\nexpose_headers = x-count\nmax_age = 600\n\
         [app:text]\nuse = egg:mapproxy-serve#text\nbody = data\n",
    );
    let origin = "https://maps.example.org";
    let r = send(
        s.addr(),
        "OPTIONS",
        "/wms",
        &[
            ("origin", origin),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "x-token"),
        ],
        "",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), origin);
    assert!(r.header("access-control-allow-methods").contains("POST"));
    assert_eq!(r.header("access-control-allow-headers"), "x-token");
    assert_eq!(r.header("access-control-max-age"), "600");
    assert_eq!(r.text(), "");
    let r = get(s.addr(), "/wms", &[("origin", origin)]).await;
    assert_eq!(r.text(), "data");
    assert_eq!(r.header("access-control-allow-origin"), origin);
    assert_eq!(r.header("access-control-expose-headers"), "x-count");
    // another origin gets no grant
    let r = get(s.addr(), "/wms", &[("origin", "https://evil.example")]).await;
    assert_eq!(r.header("access-control-allow-origin"), "");
}

// -------------------------------------------------- body_limit, timeout, headers, request_id

/// A TCP server that accepts connections and never answers (for timeouts), for up to 60 s.
fn silent_upstream() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    l.set_nonblocking(true).expect("nonblocking");
    std::thread::spawn(move || {
        let mut held = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline && held.len() < 100 {
            match l.accept() {
                Ok((c, _)) => held.push(c),
                Err(_) => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    });
    addr
}

#[tokio::test]
async fn body_limit_timeout_headers_request_id() {
    let dir = tmp();
    let silent = silent_upstream();
    let s = serve(
        dir.path(),
        &format!(
            "[composite:main]\nuse = egg:Paste#urlmap\n/limit = limit\n/slow = slow\n\
             /slow408 = slow408\n/headers = headers\n/rid = rid\n\
             [pipeline:limit]\npipeline = body_limit echo\n\
             [pipeline:slow]\npipeline = timeout hang\n\
             [pipeline:slow408]\npipeline = timeout408 hang\n\
             [pipeline:headers]\npipeline = set_headers keep_headers text\n\
             [pipeline:rid]\npipeline = request_id echo\n\
             [filter:body_limit]\nuse = egg:mapproxy-serve#body_limit\nmax_body_size = 1k\n\
             [filter:timeout]\nuse = egg:mapproxy-serve#timeout\ntimeout = 0.3\n\
             [filter:timeout408]\nuse = egg:mapproxy-serve#timeout\ntimeout = 0.2\nstatus = 503\n\
             [filter:set_headers]\nuse = egg:mapproxy-serve#headers\nheaders =\n  \
             X-Frame-Options: DENY\n  Content-Type: text/x-forced\n\
             [filter:keep_headers]\nuse = egg:mapproxy-serve#headers\noverride = false\n\
             headers = Cache-Control: max-age=5\n\
             [filter:request_id]\nuse = egg:mapproxy-serve#request_id\nheader = x-trace\n\
             [app:hang]\nuse = egg:Paste#proxy\naddress = http://{silent}/\n\
             [app:echo]\nuse = egg:mapproxy-serve#echo\n\
             [app:text]\nuse = egg:mapproxy-serve#text\nbody = t\n"
        ),
    );
    // body_limit: 1 KiB
    let r = send(s.addr(), "POST", "/limit/", &[], vec![b'x'; 1024]).await;
    assert_eq!(r.json()["body_length"], 1024);
    let r = send(s.addr(), "POST", "/limit/", &[], vec![b'x'; 1025]).await;
    assert_eq!(r.status, 413);

    // timeout: 504 (or the configured status) in about the time given
    let t = Instant::now();
    let r = get(s.addr(), "/slow/", &[]).await;
    assert_eq!(r.status, 504);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert_eq!(get(s.addr(), "/slow408/", &[]).await.status, 503);

    // headers: set (replacing the app's) or added only when missing
    let r = get(s.addr(), "/headers/", &[]).await;
    assert_eq!(r.header("x-frame-options"), "DENY");
    assert_eq!(r.header("content-type"), "text/x-forced");
    assert_eq!(r.header("cache-control"), "max-age=5");

    // request_id: a new id, or the client's, seen by the app and copied to the response
    let r = get(s.addr(), "/rid/", &[]).await;
    let id = r.header("x-trace").to_string();
    assert_eq!(id.len(), 36, "{id:?}");
    assert_eq!(r.json()["headers"]["x-trace"], id.as_str());
    let r2 = get(s.addr(), "/rid/", &[]).await;
    assert_ne!(r2.header("x-trace"), id);
    let r = get(s.addr(), "/rid/", &[("x-trace", "client-id-1")]).await;
    assert_eq!(r.header("x-trace"), "client-id-1");
    assert_eq!(r.json()["headers"]["x-trace"], "client-id-1");
}

// --------------------------------------------------------------- static files

#[tokio::test]
async fn static_files_and_their_security_cases() {
    let dir = tmp();
    let d = dir.path();
    write(d, "root/a.txt", "file a");
    write(d, "root/index.html", "<p>root index</p>");
    write(d, "root/sub/index.html", "<p>sub index</p>");
    write(d, "root/sub/b.txt", "file b");
    write(d, "root2/secret.txt", "sibling secret");
    write(d, "outside.txt", "outside secret");
    std::os::unix::fs::symlink(d.join("outside.txt"), d.join("root/link.txt")).expect("symlink");
    std::os::unix::fs::symlink(d.join("root2"), d.join("root/linkdir")).expect("symlink");
    std::os::unix::fs::symlink(d.join("root/a.txt"), d.join("root/inside.txt")).expect("symlink");
    let s = serve(
        d,
        "[composite:main]\nuse = egg:Paste#urlmap\n/files = files\n\
         [app:files]\nuse = egg:Paste#static\ndocument_root = %(here)s/root\ncache_max_age = 60\n",
    );
    let base = s.url("");

    let r = get(s.addr(), "/files/a.txt", &[]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "file a"));
    assert_eq!(r.header("cache-control"), "max-age=60");
    assert_eq!(r.header("content-type"), "text/plain");
    let etag = r.header("etag").to_string();
    assert!(!etag.is_empty());
    let r = get(s.addr(), "/files/a.txt", &[("if-none-match", &etag)]).await;
    assert_eq!((r.status.as_u16(), r.body.len()), (304, 0));
    let r = get(s.addr(), "/files/a.txt", &[("range", "bytes=1-3")]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (206, "ile"));
    assert_eq!(r.header("content-range"), "bytes 1-3/6");
    let r = send(s.addr(), "HEAD", "/files/a.txt", &[], "").await;
    assert_eq!((r.status.as_u16(), r.body.len()), (200, 0));
    assert_eq!(r.header("content-length"), "6");
    let r = send(s.addr(), "POST", "/files/a.txt", &[], "x").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), "GET, HEAD");
    // a symlink inside the root is fine
    assert_eq!(
        get(s.addr(), "/files/inside.txt", &[]).await.text(),
        "file a"
    );

    // index.html, and directories without their slash redirect (query kept)
    assert_eq!(
        get(s.addr(), "/files/", &[]).await.text(),
        "<p>root index</p>"
    );
    assert_eq!(
        get(s.addr(), "/files/sub/", &[]).await.text(),
        "<p>sub index</p>"
    );
    let r = get(s.addr(), "/files/sub?x=1", &[]).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), format!("{base}/files/sub/?x=1"));
    let r = get(s.addr(), "/files", &[]).await;
    assert_eq!(r.status, 301, "mount root without slash");
    assert_eq!(r.header("location"), format!("{base}/files/"));

    // Nothing outside the root, however it is spelled.
    for path in [
        "/files/../outside.txt",
        "/files/sub/../../outside.txt",
        "/files/%2e%2e/outside.txt",
        "/files/%2E%2E/root2/secret.txt",
        "/files/..%2foutside.txt",
        "/files/sub/%2e%2e%2f%2e%2e%2foutside.txt",
        "/files/..%5coutside.txt",
        "/files/../root2/secret.txt",
        "/files/link.txt",
        "/files/linkdir/secret.txt",
        "/files/a.txt/",
        "/files/a.txt/x",
        "/files/a.txt%00.html",
        "/files/missing.txt",
    ] {
        let r = get(s.addr(), path, &[]).await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
        assert!(!r.text().contains("secret"), "{path}");
    }
}

// ---------------------------------------------------------------------- proxy

#[tokio::test]
async fn proxy_headers_methods_and_errors() {
    let dir = tmp();
    // The upstream: another mapproxy-serve with the echo app, adding hop-by-hop headers to
    // its answers.
    let up_dir = tmp();
    let upstream = serve(
        up_dir.path(),
        "[pipeline:main]\npipeline = hop echo\n\
         [filter:hop]\nuse = egg:mapproxy-serve#headers\nheaders =\n  Keep-Alive: timeout=99\n  \
         Connection: x-hop\n  X-Hop: 1\n  X-Kept: yes\n\
         [app:echo]\nuse = egg:mapproxy-serve#echo\n",
    );
    let silent = silent_upstream();
    let down = free_port();
    let s = serve(
        dir.path(),
        &format!(
            "[composite:main]\nuse = egg:Paste#urlmap\n/up = up\n/ro = ro\n/down = down\n/slow = slow\n\
             [app:up]\nuse = egg:Paste#proxy\naddress = http://{up}/base/\n\
             suppress_http_headers = cookie x_private\n\
             [app:ro]\nuse = egg:mapproxy-serve#proxy\naddress = http://{up}/\n\
             allowed_request_methods = GET HEAD\n\
             [app:down]\nuse = egg:Paste#proxy\naddress = http://127.0.0.1:{down}/\n\
             [app:slow]\nuse = egg:Paste#proxy\naddress = http://{silent}/\ntimeout = 0.3\n",
            up = upstream.addr(),
        ),
    );

    let hop_by_hop = [
        ("host", "public.example:8000"),
        ("connection", "x-secret"),
        ("x-secret", "conn-listed"),
        ("keep-alive", "timeout=5"),
        ("te", "trailers"),
        ("proxy-authorization", "Basic cHJveHk="),
        ("cookie", "session=1"),
        ("x-private", "p"),
        ("x-normal", "n"),
    ];
    // control: sent directly, the upstream sees these headers
    let direct = send(upstream.addr(), "POST", "/", &hop_by_hop, "payload").await;
    for name in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "cookie",
    ] {
        assert!(
            direct.json()["headers"].get(name).is_some(),
            "{name} not sent by the test client"
        );
    }
    assert_eq!(direct.header("x-hop"), "1");
    let r = send(s.addr(), "POST", "/up/x/../y?q=1", &hop_by_hop, "payload").await;
    assert_eq!(r.status, 200, "{}", r.text());
    // answers: hop-by-hop headers removed, others kept
    assert_eq!(r.header("x-kept"), "yes");
    for h in ["x-hop", "keep-alive"] {
        assert_eq!(r.header(h), "", "{h} passed the proxy back");
    }
    let v = r.json();
    assert_eq!(v["method"], "POST");
    assert_eq!(v["path_info"], "/base/y", "{v:#}");
    assert_eq!(v["query"], "q=1");
    assert_eq!(v["body_length"], 7);
    let h = &v["headers"];
    for name in [
        "x-secret",
        "keep-alive",
        "te",
        "proxy-authorization",
        "cookie",
        "x-private",
    ] {
        assert!(h.get(name).is_none(), "{name} reached the upstream: {h:#}");
    }
    assert_eq!(h["x-normal"], "n");
    assert_eq!(h["host"], upstream.addr().to_string());
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-host"], "public.example:8000");
    assert_eq!(h["x-forwarded-proto"], "http");

    // the path cannot leave the base
    let v = get(s.addr(), "/up/%2e%2e/../../etc/passwd", &[])
        .await
        .json();
    assert!(
        v["path_info"].as_str().unwrap_or("").starts_with("/base/"),
        "{v:#}"
    );

    // Encoded dot segments are resolved under the base too; what is left is sent encoded.
    for escape in [
        "/up/%2e%2e/secret/s.txt",
        "/up/.%2e/secret/s.txt",
        "/up/..%2fsecret/s.txt",
        "/up/%2e%2e%2fsecret%2fs.txt",
        "/up/a/%2E%2E/%2e%2e/secret/s.txt",
    ] {
        let v = get(s.addr(), escape, &[]).await.json();
        assert_eq!(v["path_info"], "/base/secret/s.txt", "{escape}: {v:#}");
    }
    // A tunnel is not a request under the base.
    assert_eq!(
        send(s.addr(), "CONNECT", "/up/x", &[], "").await.status,
        405
    );

    // methods
    assert_eq!(get(s.addr(), "/ro/x", &[]).await.status, 200);
    let r = send(s.addr(), "DELETE", "/ro/x", &[], "").await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), "GET, HEAD");

    // upstream down: 502; silent upstream: 504 after the timeout
    assert_eq!(get(s.addr(), "/down/x", &[]).await.status, 502);
    let t = Instant::now();
    assert_eq!(get(s.addr(), "/slow/x", &[]).await.status, 504);
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
}

// ------------------------------------------------------- cascade, urlmap, echo, text

#[tokio::test]
async fn cascade_urlmap_echo_text() {
    let dir = tmp();
    write(dir.path(), "root/a.txt", "file a");
    let s = serve(
        dir.path(),
        "[DEFAULT]\nshared = from-default\n\
         [composite:main]\nuse = egg:Paste#urlmap\n/ = home\n/c = cascade\n/echo = echo\n\
         domain Other.Test /echo = other\n\
         [composite:cascade]\nuse = egg:Paste#cascade\napp1 = files\napp2 = forbidden\napp3 = fallback\n\
         catch = 404 403\n\
         [app:files]\nuse = egg:Paste#static\ndocument_root = %(here)s/root\n\
         [app:forbidden]\nuse = egg:mapproxy-serve#text\nstatus = 403\n\
         [app:fallback]\nuse = egg:mapproxy-serve#text\nbody = fallback\n\
         [app:home]\nuse = egg:mapproxy-serve#text\n\
         [app:echo]\nuse = egg:mapproxy-serve#echo\nlocal = mine\n\
         [app:other]\nuse = egg:mapproxy-serve#text\nbody = other host\ncontent_type = text/x-other\n",
    );
    // text defaults
    let r = get(s.addr(), "/anything?x", &[]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "ok\n"));
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    // cascade: the first app that does not answer a `catch` status
    assert_eq!(get(s.addr(), "/c/a.txt", &[]).await.text(), "file a");
    let r = get(s.addr(), "/c/missing", &[]).await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "fallback"));
    // urlmap by host first (case-insensitive), then by path
    let r = get(s.addr(), "/echo/x", &[("host", "other.test")]).await;
    assert_eq!(r.text(), "other host");
    assert_eq!(r.header("content-type"), "text/x-other");
    // echo: the request and its confs
    let v = send(s.addr(), "PUT", "/echo/p%20q?r=1", &[("x-a", "1")], "abc")
        .await
        .json();
    assert_eq!(v["method"], "PUT");
    assert_eq!(v["script_name"], "/echo");
    assert_eq!(v["path_info"], "/p%20q");
    assert_eq!(v["query"], "r=1");
    assert_eq!(v["headers"]["x-a"], "1");
    assert_eq!(v["body_length"], 3);
    assert_eq!(v["local_conf"]["local"], "mine");
    assert_eq!(v["global_conf"]["shared"], "from-default");
    assert_eq!(
        v["global_conf"]["here"],
        dir.path().to_str().unwrap_or_default()
    );
    // the mount itself without a slash: PATH_INFO ""
    let r = get(s.addr(), "/echo", &[]).await;
    assert_eq!(r.json()["path_info"], "");
}

#[tokio::test]
async fn urlmap_not_found_app() {
    let dir = tmp();
    let s = serve(
        dir.path(),
        "[composite:main]\nuse = egg:mapproxy-serve#urlmap\n/a = a\nnot_found_app = nf\n\
         [composite:plain]\nuse = egg:Paste#urlmap\n/a = a\n\
         [app:a]\nuse = egg:mapproxy-serve#text\nbody = a\n\
         [app:nf]\nuse = egg:mapproxy-serve#text\nstatus = 404\nbody = custom not found\n",
    );
    assert_eq!(get(s.addr(), "/a/x", &[]).await.text(), "a");
    let r = get(s.addr(), "/ab", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (404, "custom not found")
    );
}

/// An HTTPS upstream on 127.0.0.1 answering `tls upstream: PATH`, with a certificate signed by
/// a CA made here; the CA's PEM is written to `ca_file`.
async fn https_upstream(ca_file: &Path) -> (SocketAddr, tokio::task::JoinHandle<()>) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name.push(DnType::CommonName, "test CA");
    let ca_cert = ca.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("server params")
        .signed_by(&key, &ca_cert, &ca_key)
        .expect("server certificate");
    std::fs::write(ca_file, ca_cert.pem()).expect("write CA");
    let config = rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_no_client_auth()
    .with_single_cert(
        vec![leaf.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    )
    .expect("TLS config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let svc = hyper::service::service_fn(
                    |req: http::Request<hyper::body::Incoming>| async move {
                        let body = format!("tls upstream: {}", req.uri().path());
                        Ok::<_, std::convert::Infallible>(http::Response::new(
                            http_body_util::Full::new(bytes::Bytes::from(body)),
                        ))
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

#[tokio::test]
async fn proxy_reaches_https_upstreams_with_a_ca_file_and_http_ones_through_the_shared_client() {
    let dir = tmp();
    let ca = dir.path().join("ca.pem");
    let (tls, task) = https_upstream(&ca).await;
    let plain_dir = tmp();
    let plain = serve(
        plain_dir.path(),
        "[app:main]\nuse = egg:mapproxy-serve#text\nbody = plain upstream\n",
    );
    let s = serve(
        dir.path(),
        &format!(
            "[composite:main]\nuse = egg:Paste#urlmap\n/tls = tls\n/untrusted = untrusted\n\
             /insecure = insecure\n/plain = plain\n\
             [app:tls]\nuse = egg:Paste#proxy\naddress = https://{tls}/base/\nssl_ca_certs = %(here)s/ca.pem\n\
             [app:untrusted]\nuse = egg:Paste#proxy\naddress = https://{tls}/base/\n\
             [app:insecure]\nuse = egg:Paste#proxy\naddress = https://{tls}/base/\nssl_no_cert_checks = true\n\
             [app:plain]\nuse = egg:Paste#proxy\naddress = http://{plain}/\n",
            plain = plain.addr(),
        ),
    );
    let r = get(s.addr(), "/tls/x/%2e%2e/y", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, "tls upstream: /base/y".to_string())
    );
    // The system roots do not know the test CA: the handshake fails, 502.
    assert_eq!(get(s.addr(), "/untrusted/x", &[]).await.status, 502);
    let r = get(s.addr(), "/insecure/x", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, "tls upstream: /base/x".to_string())
    );
    let r = get(s.addr(), "/plain/", &[]).await;
    assert_eq!(
        (r.status.as_u16(), r.text()),
        (200, "plain upstream".to_string())
    );
    task.abort();
}

/// A TCP server that answers every request with `answer` as it is (bytes on the wire), then
/// keeps the connection open (up to 60 s) without sending more.
fn raw_upstream(answer: &'static [u8]) -> SocketAddr {
    use std::io::Write;
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    std::thread::spawn(move || {
        for conn in l.incoming().take(100) {
            let Ok(mut c) = conn else { continue };
            std::thread::spawn(move || {
                // read the request head, answer, then hold the connection open
                let _ = c.set_read_timeout(Some(Duration::from_secs(60)));
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match c.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = c.write_all(answer);
                let _ = c.read(&mut byte);
            });
        }
    });
    addr
}

/// `GET path` on a new connection: what arrived, and whether the server closed the
/// connection (rather than `DEADLINE` passing).
fn raw_get(addr: SocketAddr, path: &str) -> (Vec<u8>, bool) {
    use std::io::Write;
    let mut c = std::net::TcpStream::connect(addr).expect("connect");
    c.set_read_timeout(Some(DEADLINE)).expect("timeout");
    write!(c, "GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").expect("write");
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => return (got, false),
        }
    }
}

#[tokio::test]
async fn proxy_cuts_a_body_that_stalls_and_refuses_ambiguous_framing() {
    let dir = tmp();
    // A body that stops after 10 of 100 bytes, or after one chunk.
    let stalls_sized = raw_upstream(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n0123456789");
    let stalls_chunked =
        raw_upstream(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n");
    // Framing two ways at once (a smuggling shape): whatever the body, 502.
    let ambiguous: [&'static [u8]; 4] = [
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    ];
    let mut ini = format!(
        "[composite:main]\nuse = egg:Paste#urlmap\n/sized = sized\n/chunked = chunked\n\
         [app:sized]\nuse = egg:Paste#proxy\naddress = http://{stalls_sized}/\ntimeout = 0.5\n\
         [app:chunked]\nuse = egg:Paste#proxy\naddress = http://{stalls_chunked}/\ntimeout = 0.5\n"
    );
    for (i, answer) in ambiguous.iter().enumerate() {
        ini = ini.replacen(
            "[app:sized]",
            &format!("/ambiguous{i} = ambiguous{i}\n[app:sized]"),
            1,
        );
        ini.push_str(&format!(
            "[app:ambiguous{i}]\nuse = egg:Paste#proxy\naddress = http://{}/\n",
            raw_upstream(answer)
        ));
    }
    let s = serve(dir.path(), &ini);

    // The head and the first bytes pass; then, `timeout` after the upstream went silent, the
    // connection is closed mid-body (the client cannot take a short body for a whole one).
    for (path, whole_body_end) in [("/sized/", None), ("/chunked/", Some(&b"0\r\n\r\n"[..]))] {
        let (got, closed) = raw_get(s.addr(), path);
        let text = String::from_utf8_lossy(&got);
        assert!(closed, "{path}: the connection stayed open: {text}");
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {text}");
        assert!(text.contains("0123456789"), "{path}: {text}");
        match whole_body_end {
            None => assert!(text.contains("content-length: 100\r\n"), "{path}: {text}"),
            Some(end) => assert!(!got.ends_with(end), "{path}: {text}"),
        }
    }
    for i in 0..ambiguous.len() {
        let r = get(s.addr(), &format!("/ambiguous{i}/"), &[]).await;
        assert_eq!(r.status, 502, "ambiguous{i}: {}", r.text());
    }
}
