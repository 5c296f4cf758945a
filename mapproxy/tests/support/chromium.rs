//! Headless Chromium for browser tests: load a URL, take screenshots, and count the pixels a
//! page drew. No crate of its own: `mod support;` from a test, or copy the file.
//!
//! - [`find`] looks for the browser (`$CHROMIUM`, else `/usr/bin/chromium`). When it is
//!   missing the test should return: a visible `SKIP: ...` is printed, unless `CI=true`, where
//!   a missing browser fails the test.
//! - [`screenshot`] runs `chromium --headless --screenshot` once, with a virtual-time budget:
//!   Chromium advances its clock only when the page is idle (no network, no pending timers
//!   that are due), so the budget is not a sleep; the process is killed at the deadline.
//! - [`poll_screenshot`] repeats [`screenshot`] with doubling budgets until the image passes
//!   a check or the deadline passes. Each try is killed after its budget plus [`HUNG_AFTER`]
//!   of real time and tried again: Chromium 156's headless `--screenshot` sometimes never
//!   exits after the page and all its requests were served (one try in three with two
//!   browsers at once on 2 cores), and one such try must not use up the whole deadline.
//!
//! The browser runs with a fresh profile in a temporary folder, without sandbox (tests run as
//! root in containers), GPU, extensions, first-run or background networking.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use image::RgbaImage;

/// The Chromium binary, or `None` after printing `SKIP: <what>` (panics instead when the
/// environment variable `CI` is `true`).
pub fn find(what: &str) -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.is_file() {
        return Some(path);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("{} not found (CI=true): {what} needs it", path.display());
    }
    // written to the stderr handle itself: the test harness captures eprintln!, not this, so
    // the line shows without --nocapture
    use std::io::Write as _;
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: {what}: {} not found (apt-get install chromium, or set CHROMIUM)",
        path.display()
    );
    None
}

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> std::io::Result<TempDir> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "mapproxy-chromium-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One screenshot of `url` in a `width`×`height` window after `budget` of virtual time.
/// Fails when Chromium does not exit by `deadline` (it is killed) or writes no image.
pub fn screenshot(
    chromium: &Path,
    url: &str,
    (width, height): (u32, u32),
    budget: Duration,
    deadline: Instant,
) -> Result<RgbaImage, String> {
    let dir = TempDir::new().map_err(|e| format!("temp dir: {e}"))?;
    let out = dir.0.join("shot.png");
    let mut child = Command::new(chromium)
        .arg("--headless")
        .arg("--no-sandbox")
        .arg("--disable-gpu")
        .arg("--disable-extensions")
        .arg("--disable-background-networking")
        .arg("--no-first-run")
        .arg("--hide-scrollbars")
        .arg(format!(
            "--user-data-dir={}",
            dir.0.join("profile").display()
        ))
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--virtual-time-budget={}", budget.as_millis()))
        .arg(format!("--screenshot={}", out.display()))
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", chromium.display()))?;
    let stderr = child.stderr.take();
    let pid = child.id();
    // wait in a thread, so that this one can give up at the deadline
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        if let Some(mut s) = stderr {
            use std::io::Read;
            let _ = s.read_to_string(&mut log);
        }
        let _ = tx.send((child.wait(), log));
    });
    let left = deadline.saturating_duration_since(Instant::now());
    let (status, log) = match rx.recv_timeout(left) {
        Ok(r) => r,
        Err(_) => {
            // the process we started, by its id
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            // let it exit before its profile folder is removed
            let log = rx
                .recv_timeout(Duration::from_secs(10))
                .map(|(_, log)| log)
                .unwrap_or_default();
            return Err(format!(
                "chromium did not exit in time ({url}); its last words:\n{}",
                tail(&log, 10)
            ));
        }
    };
    let status = status.map_err(|e| format!("waiting for chromium: {e}"))?;
    let img = image::open(&out).map_err(|e| {
        format!(
            "chromium ({status}) wrote no screenshot {}: {e}\n{log}",
            out.display()
        )
    })?;
    Ok(img.to_rgba8())
}

/// The last `n` lines of `log`.
fn tail(log: &str, n: usize) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Real time a try of [`poll_screenshot`] may take beyond its virtual-time budget before it
/// is taken as hung, killed and tried again.
pub const HUNG_AFTER: Duration = Duration::from_secs(20);

/// [`screenshot`] with budgets of 2, 4, 8, ... (at most 30) seconds of virtual time until
/// `check` accepts the image, each try killed after its budget plus [`HUNG_AFTER`]; the last
/// image (whatever `check` said of it), else the last error, when the deadline passes first.
pub fn poll_screenshot(
    chromium: &Path,
    url: &str,
    size: (u32, u32),
    deadline: Instant,
    check: impl Fn(&RgbaImage) -> bool,
) -> Result<RgbaImage, String> {
    let mut budget = Duration::from_secs(2);
    let mut last = None;
    loop {
        let give_up = deadline.min(Instant::now() + budget + HUNG_AFTER);
        match screenshot(chromium, url, size, budget, give_up) {
            Ok(img) if check(&img) => return Ok(img),
            Ok(img) => last = Some(img),
            Err(e) if Instant::now() >= deadline => return last.ok_or(e),
            Err(e) => eprintln!("chromium: {e}"),
        }
        if Instant::now() >= deadline {
            return last.ok_or_else(|| format!("no screenshot of {url} by the deadline"));
        }
        budget = (budget * 2).min(Duration::from_secs(30));
    }
}

/// How many pixels `pred` accepts (all of them with `region: None`, else inside
/// `(x, y, width, height)`).
pub fn count_pixels(
    img: &RgbaImage,
    region: Option<(u32, u32, u32, u32)>,
    pred: impl Fn([u8; 4]) -> bool,
) -> usize {
    let (x0, y0, w, h) = region.unwrap_or((0, 0, img.width(), img.height()));
    let mut n = 0;
    for y in y0..(y0 + h).min(img.height()) {
        for x in x0..(x0 + w).min(img.width()) {
            if pred(img.get_pixel(x, y).0) {
                n += 1;
            }
        }
    }
    n
}

/// Pixels that are neither white nor transparent.
pub fn non_blank_pixels(img: &RgbaImage, region: Option<(u32, u32, u32, u32)>) -> usize {
    count_pixels(img, region, |[r, g, b, a]| {
        a > 0 && (r, g, b) != (255, 255, 255)
    })
}
