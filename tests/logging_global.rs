//! The installed logger end to end. Each scenario runs in a child process (this test binary
//! again, running one `#[ignore]`d test of the `child` module) so that it has the global
//! logger, stdout and stderr to itself; the parent checks the files and streams it wrote.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Run `child::<name>` in a new process with `dir` as its scratch directory.
fn run_child(name: &str, dir: &Path) -> (String, String) {
    run_child_tz(name, dir, "UTC")
}

fn run_child_tz(name: &str, dir: &Path, tz: &str) -> (String, String) {
    let exe = std::env::current_exe().expect("test binary");
    let out = Command::new(exe)
        .args([
            "--exact",
            &format!("child::{name}"),
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("LOGGING_CHILD_DIR", dir)
        .env("TZ", tz)
        .output()
        .expect("run child");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "child {name} failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    (stdout, stderr)
}

/// Replace Python's default asctime (`2026-11-21 07:01:02,345`) by `<T>`, a latency by
/// `latency=N ms`, and line numbers after `.rs:`/`[name:` by `N`.
fn mask(line: &str) -> String {
    let template = b"0000-00-00 00:00:00,000";
    let b = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if b.len() - i >= template.len()
            && b[i..i + template.len()].iter().zip(template).all(|(c, t)| {
                if *t == b'0' {
                    c.is_ascii_digit()
                } else {
                    c == t
                }
            })
        {
            out.push_str("<T>");
            i += template.len();
            continue;
        }
        let ch = line[i..].chars().next().unwrap_or(' ');
        out.push(ch);
        i += ch.len_utf8();
    }
    // latency=12 ms → latency=N ms
    let mut s = out;
    if let Some(p) = s.find("latency=") {
        let rest = &s[p + 8..];
        let n = rest.chars().take_while(char::is_ascii_digit).count();
        s = format!("{}latency=N{}", &s[..p], &rest[n..]);
    }
    s
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .map(mask)
        .collect()
}

fn assert_lines(got: &[String], expected: &[&str]) {
    assert_eq!(
        got.len(),
        expected.len(),
        "got:\n{}\nexpected:\n{}",
        got.join("\n"),
        expected.join("\n")
    );
    for (g, e) in got.iter().zip(expected) {
        assert_eq!(g, e);
    }
}

#[test]
fn mapproxy_log_ini_template_with_requests() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = run_child("template", dir.path());
    assert_lines(
        &lines(&dir.path().join("mapproxy.log")),
        &[
            "<T> - INFO - mapproxy.config - reading: mapproxy.yaml",
            "<T> - WARNING - mapproxy.config - unknown 'unknown_key' in layers[0]",
            "<T> - INFO - mapproxy.wsgiapp - GET /wms/a",
            "<T> - INFO - mapproxy_serve.server.http - served path=/wms/a",
            "<T> - INFO - tower_http.trace.on_response - finished processing request latency=N ms status=200",
            "<T> - INFO - mapproxy.wsgiapp - GET /wms/b",
            "<T> - INFO - mapproxy_serve.server.http - served path=/wms/b",
            "<T> - INFO - tower_http.trace.on_response - finished processing request latency=N ms status=200",
        ],
    );
    assert_lines(
        &lines(&dir.path().join("source-requests.log")),
        &[
            "[<T>] GET http://127.0.0.1/tiles/wms/a 200 1.1 10",
            "[<T>] GET http://127.0.0.1/tiles/wms/b 200 1.1 10",
        ],
    );
    assert!(!stderr.contains("mapproxy"), "nothing on stderr: {stderr}");
}

#[test]
fn mapproxy_log_deploy_ini() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = run_child("log_deploy", dir.path());
    let var = dir.path().join("var");
    assert_lines(
        &lines(&var.join("proxy.log")),
        &[
            "<T> - INFO - mapproxy.config - reading: mapproxy.yaml",
            "<T> - WARNING - mapproxy.source.tile - could not retrieve tile",
        ],
    );
    assert_lines(
        &lines(&var.join("client.log")),
        &[
            "GET http://example.org/1/0/0.png 200",
            "GET http://example.org/1/0/1.png 404",
        ],
    );
    // root at WARN with a console handler at NOTSET: records of `mapproxy` propagate to it
    // whatever root's level (Python's rule); `other` at INFO is below root's level.
    let err: Vec<String> = stderr
        .lines()
        .map(mask)
        .filter(|l| l.starts_with("<T>"))
        .collect();
    assert_lines(
        &err,
        &[
            "<T> - INFO - mapproxy.config - reading: mapproxy.yaml",
            "<T> - WARNING - mapproxy.source.tile - could not retrieve tile",
            "<T> - ERROR - other - broken",
        ],
    );
}

#[test]
fn pyramid_development_ini_on_stderr() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = run_child("pyramid", dir.path());
    let err: Vec<String> = stderr
        .lines()
        .map(mask)
        .filter(|l| l.starts_with("<T>"))
        .collect();
    assert_lines(
        &err,
        &[
            "<T> DEBUG [myproject.views:10][worker-1] debug from views",
            "<T> INFO  [myproject:11][worker-1] info",
            "<T> WARNI [sqlalchemy.engine:12][worker-1] slow query",
        ],
    );
}

#[test]
fn develop_ini_on_stdout() {
    let dir = tempfile::tempdir().unwrap();
    let (stdout, _) = run_child("develop", dir.path());
    // libtest writes "test child::develop ... " before our line on stdout.
    let pid_lines: Vec<String> = stdout
        .lines()
        .map(mask)
        .filter_map(|l| l.find("<T>").map(|i| l[i..].to_string()))
        .collect();
    assert_eq!(pid_lines.len(), 1, "{stdout}");
    let l = &pid_lines[0];
    let rest = l.strip_prefix("<T> - INFO - ").expect(l);
    let (pid, rest) = rest.split_once(':').expect(l);
    assert!(pid.parse::<u32>().is_ok(), "{l}");
    assert_eq!(rest, "mapproxy.wsgiapp:(unknown function) - started");
}

#[test]
fn rotating_file_handler_rolls_before_max_bytes() {
    let dir = tempfile::tempdir().unwrap();
    run_child("rotation", dir.path());
    let base = dir.path().join("app.log");
    let file = |i: u32| -> PathBuf {
        if i == 0 {
            base.clone()
        } else {
            PathBuf::from(format!("{}.{i}", base.display()))
        }
    };
    assert!(!file(4).exists(), "exactly backupCount backups");
    let mut all = Vec::new();
    for i in (0..=3).rev() {
        let text = std::fs::read_to_string(file(i)).expect("backup exists");
        assert!(
            text.len() < 300,
            "{} has {} bytes",
            file(i).display(),
            text.len()
        );
        all.extend(text.lines().map(str::to_string));
    }
    // 100 lines of 9 bytes: 33 lines (297 bytes) per file; .3 holds the oldest kept lines.
    let expected: Vec<String> = (0..100).map(|i| format!("line {i:03}")).collect();
    assert_eq!(all, expected);
    assert_eq!(std::fs::read_to_string(file(0)).unwrap(), "line 099\n");
}

#[test]
fn reload_changes_levels_and_keeps_old_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = run_child("reload", dir.path());
    assert_lines(
        &lines(&dir.path().join("app.log")),
        &["WARNING two", "INFO three", "INFO four"],
    );
    let err: Vec<String> = stderr.lines().map(mask).collect();
    assert!(
        err.contains(&"<T> INFO  [mapproxy.app] five".to_string()),
        "{stderr}"
    );
}

#[test]
fn watched_file_handler_reopens_after_logrotate() {
    let dir = tempfile::tempdir().unwrap();
    run_child("watched", dir.path());
    assert_lines(&lines(&dir.path().join("app.log.1")), &["before rotate"]);
    assert_lines(&lines(&dir.path().join("app.log")), &["after rotate"]);
}

#[test]
fn timed_rotating_file_handler() {
    let dir = tempfile::tempdir().unwrap();
    run_child("timed", dir.path());
    let mut backups: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("app.log."))
        .collect();
    backups.sort();
    assert_eq!(backups.len(), 1, "{backups:?}");
    // app.log.YYYY-MM-DD_HH-MM-SS
    assert_eq!(backups[0].len(), "app.log.".len() + 19, "{backups:?}");
    assert_lines(&lines(&dir.path().join(&backups[0])), &["first"]);
    assert_lines(&lines(&dir.path().join("app.log")), &["second"]);
}

#[test]
fn full_disk_is_reported_once() {
    if !Path::new("/dev/full").exists() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = run_child("full", dir.path());
    assert_eq!(
        stderr.matches("cannot write /dev/full").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("after the full disk"), "{stderr}");
}

#[test]
fn default_logging_and_verbosity() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = run_child("default", dir.path());
    let err: Vec<String> = stderr.lines().map(mask).collect();
    assert_eq!(
        err,
        [
            "<T> INFO  [mapproxy.test] info shown",
            "<T> WARNI [hyper.proto.h1] warning shown",
            "<T> DEBUG [mapproxy.test] debug with -v",
            "<T> WARNI [mapproxy.test] warning with -q",
            "no handler: last resort",
        ]
    );
}

#[test]
fn log4rs_yaml_configuration_with_dotted_loggers() {
    let dir = tempfile::tempdir().unwrap();
    let (_, stderr) = run_child("yaml", dir.path());
    // `kind: python`: Python's format; dotted logger names form Python's hierarchy
    // (mapproxy.source.request is under mapproxy.source, which does not propagate).
    assert_lines(
        &lines(&dir.path().join("requests.log")),
        &[
            "DEBUG mapproxy.source.request GET /tiles/0/0/0.png",
            "CRITICAL mapproxy.source.request Level 50 as CRITICAL",
            "Level 25 mapproxy.source Level 25",
        ],
    );
    // log4rs's own pattern encoder on the root's file: its `{t}` is the target as log4rs
    // has it (`::`).
    assert_lines(
        &lines(&dir.path().join("root.log")),
        &["INFO mapproxy::config reading", "WARN app root warning"],
    );
    assert!(!stderr.contains("GET /tiles"), "{stderr}");
}

#[test]
fn an_appender_added_through_the_library_api() {
    let dir = tempfile::tempdir().unwrap();
    // The child asserts what its appender got; here: the ini's own file is untouched by it.
    let (_, stderr) = run_child("user_appender", dir.path());
    assert_lines(
        &lines(&dir.path().join("app.log")),
        &[
            "INFO mapproxy.app one",
            "CRITICAL mapproxy.app critical",
            "INFO other not for the appender",
            "INFO mapproxy.app after a reload",
        ],
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn asctime_is_local_time_honouring_tz() {
    let dir = tempfile::tempdir().unwrap();
    // A POSIX TZ string: five and a half hours east of UTC, no tz database needed.
    let (_, stderr) = run_child_tz("tz", dir.path(), "XYZ-5:30");
    let line = stderr
        .lines()
        .find(|l| l.contains("in local time"))
        .expect(&stderr);
    let (stamp, rest) = line.split_once(' ').expect(line);
    assert_eq!(rest, "+0530 in local time");
    // The wall-clock time printed is UTC + 5:30.
    let printed = chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%dT%H:%M:%S").unwrap();
    let now = chrono::Utc::now().naive_utc() + chrono::Duration::minutes(330);
    assert!(
        (now - printed).num_seconds().abs() < 120,
        "{printed} vs {now}"
    );
}

/// The scenarios, run by the tests above in child processes.
mod child {
    use std::path::{Path, PathBuf};
    use std::time::{Duration, Instant};

    use mapproxy_serve::ini::{IniFile, Vars};
    use mapproxy_serve::logging::{self, LogHandle, LoggingConfig, LOG_INI_TEMPLATE};

    fn dir() -> Option<PathBuf> {
        std::env::var_os("LOGGING_CHILD_DIR").map(PathBuf::from)
    }

    fn configure(handle: &LogHandle, path: &Path, text: &str) {
        std::fs::write(path, text).unwrap();
        let file = IniFile::read(path).unwrap();
        let cfg = LoggingConfig::from_ini(&file, &Vars::default()).unwrap();
        handle.apply(cfg.as_ref(), &[]).unwrap();
    }

    /// A small HTTP server like the real one: hyper, tower-http's TraceLayer, `log` and
    /// `tracing` from the handler.
    fn serve_requests(paths: &[&str]) {
        use std::convert::Infallible;

        use bytes::Bytes;
        use http::{Request, Response};
        use http_body_util::Full;
        use hyper_util::rt::{TokioExecutor, TokioIo};
        use hyper_util::service::TowerToHyperService;
        use tower_http::trace::{DefaultOnResponse, TraceLayer};

        async fn handler(
            req: Request<hyper::body::Incoming>,
        ) -> Result<Response<Full<Bytes>>, Infallible> {
            let path = req.uri().path().to_string();
            log::info!(target: "mapproxy.wsgiapp", "GET {path}");
            log::info!(target: "mapproxy.source.request", "GET http://127.0.0.1/tiles{path} 200 1.1 10");
            tracing::info!(target: "mapproxy_serve.server.http", path = %path, "served");
            Ok(Response::new(Full::new(Bytes::from_static(b"ok"))))
        }

        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move {
                loop {
                    let Ok((stream, _)) = listener.accept().await else {
                        return;
                    };
                    tokio::spawn(async move {
                        let svc =
                            tower::ServiceBuilder::new()
                                .layer(TraceLayer::new_for_http().on_response(
                                    DefaultOnResponse::new().level(tracing::Level::INFO),
                                ))
                                .service_fn(handler);
                        let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                            .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                            .await;
                    });
                }
            });
            let client = reqwest::Client::new();
            for p in paths {
                let r = client
                    .get(format!("http://{addr}{p}"))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                assert_eq!(r.text().await.unwrap(), "ok");
            }
        });
    }

    #[test]
    #[ignore]
    fn template() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        configure(&h, &dir.join("log.ini"), LOG_INI_TEMPLATE);
        log::info!(target: "mapproxy.config", "reading: mapproxy.yaml");
        log::debug!(target: "mapproxy.config", "not shown: root is at INFO");
        log::warn!(target: "mapproxy.config", "unknown 'unknown_key' in layers[0]");
        serve_requests(&["/wms/a", "/wms/b"]);
        h.flush();
    }

    #[test]
    #[ignore]
    fn log_deploy() {
        let Some(dir) = dir() else { return };
        std::fs::create_dir_all(dir.join("etc")).unwrap();
        std::fs::create_dir_all(dir.join("var")).unwrap();
        let h = logging::init(0);
        configure(
            &h,
            &dir.join("etc/log_deploy.ini"),
            "\
[loggers]
keys=root,mapproxy,client

[handlers]
keys=console,proxy,client

[formatters]
keys=default,clientformat

[logger_root]
level=WARN
handlers=console

[logger_mapproxy]
level=INFO
handlers=proxy
qualname=mapproxy

[logger_client]
level=INFO
handlers=client
qualname=mapproxy.client.http
propagate=0

[handler_console]
class=StreamHandler
args=(sys.stderr,)
formatter=default

[handler_proxy]
class=FileHandler
args=('%(here)s/../var/proxy.log',)
formatter=default

[handler_client]
class=FileHandler
args=('%(here)s/../var/client.log',)
formatter=clientformat

[formatter_default]
format=%(asctime)s - %(levelname)s - %(name)s - %(message)s

[formatter_clientformat]
format=%(message)s
",
        );
        log::info!(target: "mapproxy.config", "reading: mapproxy.yaml");
        log::info!(target: "mapproxy.client.http", "GET http://example.org/1/0/0.png 200");
        log::debug!(target: "mapproxy.client.http", "not shown");
        log::warn!(target: "mapproxy::source::tile", "could not retrieve tile");
        log::info!(target: "mapproxy.client.http", "GET http://example.org/1/0/1.png 404");
        log::info!(target: "other", "below root's WARN");
        log::error!(target: "other", "broken");
        h.flush();
    }

    #[test]
    #[ignore]
    fn pyramid() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        configure(
            &h,
            &dir.join("development.ini"),
            "\
###
# app configuration
###
[app:main]
use = egg:myproject
pyramid.includes =
    pyramid_debugtoolbar

[server:main]
use = egg:waitress#main
listen = localhost:6543

###
# logging configuration
###

[loggers]
keys = root, myproject

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = INFO
handlers = console

[logger_myproject]
level = DEBUG
handlers =
qualname = myproject

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(asctime)s %(levelname)-5.5s [%(name)s:%(lineno)s][%(threadName)s] %(message)s
",
        );
        std::thread::Builder::new()
            .name("worker-1".into())
            .spawn(|| {
                // Line numbers are fixed by hand-written records below.
                log::logger().log(
                    &log::Record::builder()
                        .target("myproject.views")
                        .level(log::Level::Debug)
                        .line(Some(10))
                        .args(format_args!("debug from views"))
                        .build(),
                );
                log::logger().log(
                    &log::Record::builder()
                        .target("myproject")
                        .level(log::Level::Info)
                        .line(Some(11))
                        .args(format_args!("info"))
                        .build(),
                );
                log::logger().log(
                    &log::Record::builder()
                        .target("sqlalchemy.engine")
                        .level(log::Level::Warn)
                        .line(Some(12))
                        .args(format_args!("slow query"))
                        .build(),
                );
                log::logger().log(
                    &log::Record::builder()
                        .target("sqlalchemy.engine")
                        .level(log::Level::Debug)
                        .line(Some(13))
                        .args(format_args!("not shown: root is at INFO"))
                        .build(),
                );
            })
            .unwrap()
            .join()
            .unwrap();
        h.flush();
    }

    #[test]
    #[ignore]
    fn develop() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        configure(
            &h,
            &dir.join("develop.ini"),
            "\
[app:main]
use = egg:MapProxy#app
mapproxy_conf = %(here)s/mapproxy.yaml
log_conf =
filter-with = translogger

[loggers]
keys=root

[handlers]
keys=stdout

[formatters]
keys=default

[logger_root]
level=INFO
handlers=stdout

[handler_stdout]
class=StreamHandler
args=(sys.stdout,)
formatter=default

[formatter_default]
format=%(asctime)s - %(levelname)s - %(process)d:%(name)s:%(funcName)s - %(message)s
",
        );
        log::info!(target: "mapproxy.wsgiapp", "started");
        h.flush();
    }

    #[test]
    #[ignore]
    fn rotation() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        configure(
            &h,
            &dir.join("log.ini"),
            "\
[loggers]
keys=root
[handlers]
keys=rot
[formatters]
keys=plain
[logger_root]
level=NOTSET
handlers=rot
[handler_rot]
class=handlers.RotatingFileHandler
args=('%(here)s/app.log', 'a', 300, 3)
formatter=plain
[formatter_plain]
format=%(message)s
",
        );
        for i in 0..100 {
            log::info!(target: "app", "line {i:03}");
        }
        h.flush();
    }

    fn app_log_ini(level: &str, file: &Path) -> String {
        format!(
            "\
[loggers]
keys=root,app
[handlers]
keys=file
[formatters]
keys=f
[logger_root]
level=WARNING
handlers=
[logger_app]
level={level}
handlers=file
qualname=mapproxy.app
[handler_file]
class=FileHandler
args=({:?},)
formatter=f
[formatter_f]
format=%(levelname)s %(message)s
",
            file.display().to_string()
        )
    }

    #[test]
    #[ignore]
    fn reload() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        let log = dir.join("app.log");
        configure(&h, &dir.join("a.ini"), &app_log_ini("WARNING", &log));
        log::info!(target: "mapproxy.app", "one");
        log::warn!(target: "mapproxy.app", "two");
        configure(&h, &dir.join("b.ini"), &app_log_ini("INFO", &log));
        log::info!(target: "mapproxy.app", "three");
        // A broken configuration (a file in a missing directory) keeps the current one.
        let text = app_log_ini("DEBUG", &dir.join("missing/app.log"));
        std::fs::write(dir.join("c.ini"), &text).unwrap();
        let file = IniFile::read(&dir.join("c.ini")).unwrap();
        let cfg = LoggingConfig::from_ini(&file, &Vars::default()).unwrap();
        let err = h.apply(cfg.as_ref(), &[]).unwrap_err().to_string();
        assert!(
            err.contains("c.ini:16: [handler_file] cannot open log file"),
            "{err}"
        );
        log::info!(target: "mapproxy.app", "four");
        log::debug!(target: "mapproxy.app", "not shown: still INFO");
        h.apply(None, &[]).unwrap();
        log::info!(target: "mapproxy.app", "five");
        h.flush();
    }

    #[test]
    #[ignore]
    fn watched() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        let log = dir.join("app.log");
        configure(
            &h,
            &dir.join("log.ini"),
            &format!(
                "[loggers]\nkeys=root\n[handlers]\nkeys=w\n[formatters]\nkeys=\n\
                 [logger_root]\nlevel=INFO\nhandlers=w\n\
                 [handler_w]\nclass=handlers.WatchedFileHandler\nargs=({:?},)\n",
                log.display().to_string()
            ),
        );
        log::info!(target: "app", "before rotate");
        h.flush();
        std::fs::rename(&log, dir.join("app.log.1")).unwrap();
        log::info!(target: "app", "after rotate");
        h.flush();
    }

    #[test]
    #[ignore]
    fn timed() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        configure(
            &h,
            &dir.join("log.ini"),
            "[loggers]\nkeys=root\n[handlers]\nkeys=t\n[formatters]\nkeys=\n\
             [logger_root]\nlevel=INFO\nhandlers=t\n\
             [handler_t]\nclass=handlers.TimedRotatingFileHandler\n\
             args=('%(here)s/app.log', 'S', 1, 2)\n",
        );
        log::info!(target: "app", "first");
        h.flush();
        // The rollover time is one second after the file was opened: wait for it (bounded).
        let start = Instant::now();
        let opened = std::time::SystemTime::now();
        while opened.elapsed().unwrap_or_default() < Duration::from_millis(1100)
            && start.elapsed() < Duration::from_secs(5)
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        log::info!(target: "app", "second");
        h.flush();
    }

    #[test]
    #[ignore]
    fn full() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        configure(
            &h,
            &dir.join("log.ini"),
            "[loggers]\nkeys=root\n[handlers]\nkeys=full,err\n[formatters]\nkeys=\n\
             [logger_root]\nlevel=INFO\nhandlers=full,err\n\
             [handler_full]\nclass=FileHandler\nargs=('/dev/full',)\n\
             [handler_err]\nclass=StreamHandler\nlevel=WARNING\n",
        );
        for i in 0..50 {
            log::info!(target: "app", "line {i}");
            h.flush();
        }
        log::warn!(target: "app", "after the full disk");
        h.flush();
    }

    #[test]
    #[ignore]
    fn tz() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        configure(
            &h,
            &dir.join("log.ini"),
            "[loggers]\nkeys=root\n[handlers]\nkeys=e\n[formatters]\nkeys=t\n\
             [logger_root]\nlevel=INFO\nhandlers=e\n\
             [handler_e]\nclass=StreamHandler\nformatter=t\n\
             [formatter_t]\nformat=%(asctime)s %(message)s\ndatefmt=%Y-%m-%dT%H:%M:%S %z\n",
        );
        // From another thread too: local time must work in a multi-threaded process.
        std::thread::spawn(|| log::info!(target: "app", "in local time"))
            .join()
            .unwrap();
        h.flush();
    }

    #[test]
    #[ignore]
    fn default() {
        if dir().is_none() {
            return;
        }
        let _h = logging::init(0);
        log::info!(target: "mapproxy.test", "info shown");
        log::debug!(target: "mapproxy.test", "debug not shown");
        log::warn!(target: "hyper::proto::h1", "warning shown");
        let _h = logging::init(1);
        log::debug!(target: "mapproxy.test", "debug with -v");
        log::trace!(target: "mapproxy.test", "trace not shown with -v");
        let h = logging::init(-1);
        log::info!(target: "mapproxy.test", "info not shown with -q");
        log::warn!(target: "mapproxy.test", "warning with -q");
        // No handler anywhere: WARNING and above go to stderr as the bare message (lastResort).
        let text = "[loggers]\nkeys=root\n[handlers]\nkeys=\n[formatters]\nkeys=\n\
                    [logger_root]\nlevel=DEBUG\nhandlers=\n";
        let path = std::env::temp_dir().join(format!("lastresort-{}.ini", std::process::id()));
        configure(&h, &path, text);
        let _ = std::fs::remove_file(&path);
        log::info!(target: "x", "no handler, below WARNING: dropped");
        log::warn!(target: "x", "no handler: last resort");
        h.flush();
    }

    #[test]
    #[ignore]
    fn yaml() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        let path = dir.join("log4rs.yaml");
        std::fs::write(
            &path,
            format!(
                r#"appenders:
  requests:
    kind: file
    path: {requests:?}
    encoder:
      kind: python
      format: "%(levelname)s %(name)s %(message)s"
  root:
    kind: file
    path: {root:?}
    encoder:
      kind: pattern
      pattern: "{{l}} {{t}} {{m}}{{n}}"
root:
  level: info
  appenders: [root]
loggers:
  mapproxy.source:
    level: debug
    appenders: [requests]
    additive: false
"#,
                requests = dir.join("requests.log").display().to_string(),
                root = dir.join("root.log").display().to_string(),
            ),
        )
        .unwrap();
        let cfg = LoggingConfig::from_log4rs_yaml(&path).unwrap();
        h.apply(Some(&cfg), &[]).unwrap();
        log::debug!(target: "mapproxy.source.request", "GET /tiles/0/0/0.png");
        logging::log_message("mapproxy.source.request", 50, "Level 50 as CRITICAL");
        logging::log_message("mapproxy.source", 25, "Level 25");
        log::info!(target: "mapproxy.config", "reading");
        log::debug!(target: "mapproxy.config", "not shown: root is at info");
        log::warn!(target: "app", "root warning");
        h.flush();
        // An unknown appender kind is an error naming the file; the configuration stays.
        std::fs::write(&path, "appenders:\n  x:\n    kind: nosuch\n").unwrap();
        let cfg = LoggingConfig::from_log4rs_yaml(&path).unwrap();
        let e = h.apply(Some(&cfg), &[]).unwrap_err().to_string();
        assert!(e.contains("log4rs.yaml") && e.contains("nosuch"), "{e}");
        std::fs::write(&path, "appenders: [1, 2\n").unwrap();
        let e = LoggingConfig::from_log4rs_yaml(&path)
            .unwrap_err()
            .to_string();
        assert!(e.contains("log4rs.yaml:"), "{e}");
        h.flush();
    }

    /// What an embedding program's appender got: (target, levelno, message).
    #[derive(Debug, Default)]
    struct Collect(std::sync::Mutex<Vec<(String, u64, String)>>);

    impl logging::Append for Collect {
        fn append(&self, record: &log::Record<'_>) -> anyhow::Result<()> {
            let levelno = record
                .key_values()
                .get(log::kv::Key::from_str("levelno"))
                .and_then(|v| v.to_u64())
                .unwrap_or(match record.level() {
                    log::Level::Error => 40,
                    log::Level::Warn => 30,
                    log::Level::Info => 20,
                    log::Level::Debug => 10,
                    log::Level::Trace => 5,
                });
            self.0.lock().unwrap().push((
                record.target().to_string(),
                levelno,
                record.args().to_string(),
            ));
            Ok(())
        }

        fn flush(&self) {}
    }

    #[test]
    #[ignore]
    fn user_appender() {
        let Some(dir) = dir() else { return };
        let h = logging::init(0);
        let log = dir.join("app.log");
        let ini = |level: &str| {
            format!(
                "[loggers]\nkeys=root\n[handlers]\nkeys=f\n[formatters]\nkeys=m\n\
                 [logger_root]\nlevel={level}\nhandlers=f\n\
                 [handler_f]\nclass=FileHandler\nargs=({:?},)\nformatter=m\n\
                 [formatter_m]\nformat=%(levelname)s %(name)s %(message)s\n",
                log.display().to_string()
            )
        };
        configure(&h, &dir.join("a.ini"), &ini("INFO"));
        let collect = std::sync::Arc::new(Collect::default());
        h.add_appender("mapproxy", collect.clone()).unwrap();
        log::info!(target: "mapproxy.app", "one");
        log::debug!(target: "mapproxy.app", "not shown: root is at INFO");
        logging::log_message("mapproxy.app", 50, "critical");
        log::info!(target: "other", "not for the appender");
        // A reload keeps the added appender.
        configure(&h, &dir.join("b.ini"), &ini("INFO"));
        log::info!(target: "mapproxy.app", "after a reload");
        h.flush();
        let got = collect.0.lock().unwrap().clone();
        let want = [
            ("mapproxy::app", 20, "one"),
            ("mapproxy::app", 50, "critical"),
            ("mapproxy::app", 20, "after a reload"),
        ];
        assert_eq!(got.len(), want.len(), "{got:?}");
        for ((t, n, m), (wt, wn, wm)) in got.iter().zip(want) {
            assert_eq!((t.as_str(), *n, m.as_str()), (wt, wn, wm));
        }
    }
}
