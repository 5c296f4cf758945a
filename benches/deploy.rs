//! Issue 2's benchmarks: the cost of reading a large urlmap file, and urlmap routing per
//! request as the number of mounts grows.
//!
//! Run with `cargo bench --bench deploy` (plain `std::time`, no harness; prints tables).
//! Knobs: `BENCH_TIME_MS` (measuring time per case, default 1000), `BENCH_MOUNTS`
//! (mounts of the generated file, default 1000), `BENCH_PROCS` (process runs, default 20).
//!
//! 1. A generated ini file with one `[composite:main]` urlmap of `BENCH_MOUNTS` mounts, each to
//!    its own `[app:aN]` section, plus `[DEFAULT]`, a `[server:main]` and logging sections.
//!    Timed in process: `Deployment::resolve` + `Spec::to_json` + pretty-printing (what
//!    `inspect --json` does), `deploy::app_config`, and the full build of the service
//!    (`Spec::build_app`). Timed end to end: the release binary's `inspect --json` and
//!    `appconfig --json`, process start included.
//! 2. A `UrlMap` of 10, 100, 1,000, 10,000 mounts (`/m0` … `/mN`, each a text app) and the
//!    same requests each time: one that hits a mount deep in the table with a long path, one
//!    that falls through to the root mount, one no mount matches (404 page). The baseline is the
//!    text app called directly with the same request.
use std::fmt::Write as _;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use http::{HeaderValue, Request, StatusCode};
use indexmap::IndexMap;
use mapproxy_serve::app::{empty_body, App};
use mapproxy_serve::apps::text::Text;
use mapproxy_serve::apps::urlmap::{MountKey, UrlMap};
use mapproxy_serve::deploy::{self, Deployment};
use tower::Service;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Per-iteration times of `f` over `budget`, in batches of `batch` calls; (median, min) per call.
fn measure<F: FnMut()>(budget: Duration, batch: u32, mut f: F) -> (Duration, Duration, u64) {
    // warm-up: a tenth of the budget
    let warm = Instant::now();
    while warm.elapsed() < budget / 10 {
        for _ in 0..batch {
            f();
        }
    }
    let mut samples = Vec::new();
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < budget || samples.len() < 5 {
        let t = Instant::now();
        for _ in 0..batch {
            f();
        }
        samples.push(t.elapsed() / batch);
        n += u64::from(batch);
        if samples.len() >= 100_000 {
            break;
        }
    }
    samples.sort();
    (samples[samples.len() / 2], samples[0], n)
}

fn fmt_dur(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns < 10_000 {
        format!("{ns} ns")
    } else if ns < 10_000_000 {
        format!("{:.1} µs", ns as f64 / 1e3)
    } else {
        format!("{:.2} ms", ns as f64 / 1e6)
    }
}

/// The generated urlmap file: `mounts` mounts, each to its own app section.
fn write_urlmap_ini(dir: &Path, mounts: usize) -> PathBuf {
    let mut s = String::new();
    s.push_str("[DEFAULT]\ndebug = false\nbody_suffix = !\n\n");
    s.push_str("[composite:main]\nuse = egg:Paste#urlmap\n/ = root\n");
    for i in 0..mounts {
        let _ = writeln!(s, "/m{i} = a{i}");
    }
    s.push_str("\n[app:root]\nuse = egg:mapproxy-serve#text\nbody = root\n");
    for i in 0..mounts {
        let _ = write!(
            s,
            "\n[app:a{i}]\nuse = egg:mapproxy-serve#text\nbody = app {i}%(body_suffix)s\n"
        );
    }
    s.push_str(
        "\n[server:main]\nuse = egg:Paste#http\nhost = 127.0.0.1\nport = 0\n\n\
         [loggers]\nkeys = root\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = generic\n\n\
         [logger_root]\nlevel = WARN\nhandlers = console\n\n\
         [handler_console]\nclass = StreamHandler\nargs = (sys.stderr,)\nlevel = NOTSET\nformatter = generic\n\n\
         [formatter_generic]\nformat = %(asctime)s %(levelname)s [%(name)s] %(message)s\n",
    );
    let path = dir.join(format!("urlmap{mounts}.ini"));
    std::fs::write(&path, s).expect("write the generated ini");
    path
}

/// Median and min wall time of running the binary with `args` `runs` times.
fn run_binary(bin: &str, args: &[&str], runs: u64) -> (Duration, Duration, usize) {
    let mut times = Vec::new();
    let mut out_len = 0;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let out = Command::new(bin)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("run mapproxy-serve");
        times.push(t.elapsed());
        assert!(
            out.status.success(),
            "{bin} {args:?} failed: {:?}",
            out.status
        );
        out_len = out.stdout.len();
    }
    times.sort();
    (times[times.len() / 2], times[0], out_len)
}

fn text(body: &str) -> App {
    mapproxy_serve::app::app(Text::new(
        StatusCode::OK,
        HeaderValue::from_static("text/plain"),
        body.to_string(),
    ))
}

fn urlmap(mounts: usize) -> App {
    let mut b = UrlMap::builder().mount(MountKey::new(None, "/"), text("root"));
    for i in 0..mounts {
        b = b.mount(MountKey::new(None, &format!("/m{i}")), text("app"));
    }
    mapproxy_serve::app::app(b.build())
}

/// One request through `svc`, driven without a runtime (every app here answers at once).
fn call(svc: &mut App, uri: &'static str) -> StatusCode {
    let req = Request::get(uri)
        .header("host", "localhost")
        .body(empty_body())
        .expect("request");
    let res = svc
        .call(req)
        .now_or_never()
        .expect("the urlmap answers without waiting");
    match res {
        Ok(r) => r.status(),
        Err(never) => match never {},
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a filter argument is accepted and ignored.
    let budget = Duration::from_millis(env_num("BENCH_TIME_MS", 1000));
    let mounts = env_num("BENCH_MOUNTS", 1000) as usize;
    let procs = env_num("BENCH_PROCS", 20);

    // ---------------------------------------------------------------- 1. deploy
    let dir = tempfile::tempdir().expect("tempdir");
    let ini = write_urlmap_ini(dir.path(), mounts);
    let ini_s = ini.to_str().expect("utf-8 temp path").to_string();
    let vars = IndexMap::new();
    println!(
        "## Reading a {mounts}-mount urlmap file ({} bytes, {} sections)\n",
        std::fs::metadata(&ini).map(|m| m.len()).unwrap_or(0),
        mounts + 8
    );
    println!("| what | median | min | runs |");
    println!("|---|---|---|---|");
    let mut json_len = 0;
    let (med, min, n) = measure(budget, 1, || {
        let d = Deployment::resolve(&ini_s, None, None, &vars).expect("resolve");
        let v = serde_json::json!({
            "app": d.app.to_json(),
            "server": d.server.as_ref().map(|s| s.to_json()),
            "files": d.files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        });
        json_len = serde_json::to_string_pretty(&v).map_or(0, |s| s.len());
        black_box(&json_len);
    });
    println!(
        "| inspect in process: `Deployment::resolve` + `to_json` + pretty print ({json_len} B) | {} | {} | {n} |",
        fmt_dur(med),
        fmt_dur(min)
    );
    let (med, min, n) = measure(budget, 1, || {
        black_box(Deployment::resolve(&ini_s, None, None, &vars).expect("resolve"));
    });
    println!(
        "| `Deployment::resolve` alone | {} | {} | {n} |",
        fmt_dur(med),
        fmt_dur(min)
    );
    let (med, min, n) = measure(budget, 1, || {
        black_box(deploy::app_config(&ini_s, None, &vars).expect("appconfig"));
    });
    println!(
        "| appconfig in process: `deploy::app_config` | {} | {} | {n} |",
        fmt_dur(med),
        fmt_dur(min)
    );
    let (med, min, n) = measure(budget, 1, || {
        let d = Deployment::resolve(&ini_s, None, None, &vars).expect("resolve");
        black_box(
            d.app
                .build_app(&mut mapproxy_serve::build::BuildContext::current())
                .expect("build"),
        );
    });
    println!(
        "| resolve + build the service (`Spec::build_app`) | {} | {} | {n} |",
        fmt_dur(med),
        fmt_dur(min)
    );
    let bin = env!("CARGO_BIN_EXE_mapproxy-serve");
    let (med, min, len) = run_binary(bin, &["inspect", "--json", &ini_s], procs);
    println!(
        "| `mapproxy-serve inspect --json` (process, end to end, {len} B out) | {} | {} | {procs} |",
        fmt_dur(med),
        fmt_dur(min)
    );
    let (med, min, len) = run_binary(bin, &["appconfig", "--json", &ini_s], procs);
    println!(
        "| `mapproxy-serve appconfig --json` (process, end to end, {len} B out) | {} | {} | {procs} |",
        fmt_dur(med),
        fmt_dur(min)
    );
    let (med, min, _) = run_binary(bin, &["--help"], procs);
    println!(
        "| `mapproxy-serve --help` (process start floor) | {} | {} | {procs} |",
        fmt_dur(med),
        fmt_dur(min)
    );

    // ---------------------------------------------------------------- 2. routing
    println!("\n## urlmap routing per request (same requests, growing mount table)\n");
    let cases: [(&str, &'static str, StatusCode); 3] = [
        (
            "hit `/m7/…`",
            "/m7/tiles/osm/EPSG3857/12/2048/1360.png?x=1",
            StatusCode::OK,
        ),
        (
            "root fall-through",
            "/other/deep/path/x.png",
            StatusCode::OK,
        ),
        (
            "404 (no root mount)",
            "/other/deep/path/x.png",
            StatusCode::NOT_FOUND,
        ),
    ];
    let mut header = String::from("| mounts |");
    let mut sep = String::from("|---|");
    for (name, _, _) in &cases {
        let _ = write!(header, " {name} |");
        sep.push_str("---|");
    }
    println!("{header}");
    println!("{sep}");
    // baseline: the text app directly, same request
    {
        let mut app = text("app");
        let (med, _, _) = measure(budget, 1000, || {
            black_box(call(&mut app, cases[0].1));
        });
        println!(
            "| 0 (text app directly, no urlmap) | {} | | |",
            fmt_dur(med)
        );
    }
    for n in [10usize, 100, 1_000, 10_000] {
        let mut row = format!("| {n} |");
        let mut map = urlmap(n);
        for (i, (_, uri, want)) in cases.iter().enumerate() {
            let mut svc = if i == 2 {
                // the same table without the root mount: the request matches nothing
                let mut b = UrlMap::builder();
                for k in 0..n {
                    b = b.mount(MountKey::new(None, &format!("/m{k}")), text("app"));
                }
                mapproxy_serve::app::app(b.build())
            } else {
                map.clone()
            };
            assert_eq!(call(&mut svc, uri), *want, "{uri}");
            let (med, _, _) = measure(budget, 1000, || {
                black_box(call(&mut svc, uri));
            });
            let _ = write!(row, " {} |", fmt_dur(med));
        }
        let _ = &mut map;
        println!("{row}");
    }
}
