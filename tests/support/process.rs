//! The binary under test as a process: start it, read its stderr in a thread, wait (polling,
//! with a deadline) for `serving on ...`, signal it, and stop it when the test drops it
//! (SIGTERM, then SIGKILL). Ini files go into tempdirs.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long a start, an exit or an expected log line may take.
pub const DEADLINE: Duration = Duration::from_secs(20);

/// The `mapproxy-serve` binary built for these tests.
pub const BIN: &str = env!("CARGO_BIN_EXE_mapproxy-serve");

/// The binary under test.
pub fn bin() -> &'static str {
    BIN
}

/// The repository root (for `ini/develop.ini`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Write `text` to `dir/name` (creating directories in `name`) and return the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(&p, text).expect("write test file");
    p
}

/// Replace `path` as editors do: write a temporary file next to it, then rename it over.
pub fn write_by_rename(path: &Path, text: &str) {
    let tmp = path.with_extension("ini.tmp~");
    std::fs::write(&tmp, text).expect("write temp file");
    std::fs::rename(&tmp, path).expect("rename over");
}

/// Lines a child wrote to stderr so far, with a condition variable for waiters.
#[derive(Default)]
struct Lines {
    lines: Mutex<(Vec<String>, bool)>,
    cond: Condvar,
}

impl Lines {
    fn push(&self, line: Option<String>) {
        let mut g = self.lines.lock().unwrap_or_else(|e| e.into_inner());
        match line {
            Some(l) => g.0.push(l),
            None => g.1 = true,
        }
        self.cond.notify_all();
    }
}

/// A running `mapproxy-serve` (the one handle every test uses); dropping it stops the
/// process with SIGTERM, then SIGKILL, so log files are flushed.
pub struct Served {
    child: Child,
    lines: Arc<Lines>,
    /// The first address from `serving on ...`: `http://127.0.0.1:PORT` or `unix:/path`.
    pub listen: String,
}

/// The outcome of a command that should exit by itself.
#[derive(Debug)]
pub struct Exited {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Exited {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

fn command(bin: &str, args: &[&str], cwd: Option<&Path>) -> Command {
    let mut c = Command::new(bin);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_remove("RUST_LOG")
        .env_remove("RUST_BACKTRACE");
    if let Some(d) = cwd {
        c.current_dir(d);
    }
    c
}

/// Run the binary to completion (killed after [`DEADLINE`]).
pub fn run(args: &[&str], cwd: Option<&Path>) -> Exited {
    run_within(args, cwd, DEADLINE)
}

/// [`run`] with another deadline: for runs whose work grows with the test's input (a debug
/// build reads 100,000 urlmap mounts in about 15 s on a busy 2-core machine).
pub fn run_within(args: &[&str], cwd: Option<&Path>, deadline: Duration) -> Exited {
    let mut child = command(bin(), args, cwd)
        .spawn()
        .expect("spawn mapproxy-serve");
    let mut out = child.stdout.take().expect("stdout");
    let mut err = child.stderr.take().expect("stderr");
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let status = wait_with_deadline(&mut child, deadline).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!("mapproxy-serve {args:?} did not exit within {deadline:?}")
    });
    Exited {
        status,
        stdout: t_out.join().unwrap_or_default(),
        stderr: t_err.join().unwrap_or_default(),
    }
}

fn wait_with_deadline(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + limit;
    loop {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Start the binary and wait for its first `serving on ...` line; `Err` has the exit and
/// stderr when it stopped before serving.
pub fn try_serve(args: &[&str], cwd: Option<&Path>) -> Result<Served, Exited> {
    try_serve_bin(bin(), args, cwd)
}

/// [`try_serve`] with another binary that has the same command line (an example's own).
pub fn try_serve_bin(bin: &str, args: &[&str], cwd: Option<&Path>) -> Result<Served, Exited> {
    let mut child = command(bin, args, cwd)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let lines = Arc::new(Lines::default());
    let err = child.stderr.take().expect("stderr");
    let l2 = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines() {
            match line {
                Ok(l) => l2.push(Some(l)),
                Err(_) => break,
            }
        }
        l2.push(None);
    });
    let mut out = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
    });
    let mut served = Served {
        child,
        lines,
        listen: String::new(),
    };
    match served.wait_line(|l| l.starts_with("serving on "), DEADLINE) {
        Some(l) => {
            served.listen = l.trim_start_matches("serving on ").trim().to_string();
            Ok(served)
        }
        None => {
            let status = wait_with_deadline(&mut served.child, DEADLINE);
            let stderr = served.stderr();
            let Some(status) = status else {
                panic!("{bin} {args:?} neither served nor exited:\n{stderr}")
            };
            Err(Exited {
                status,
                stdout: String::new(),
                stderr,
            })
        }
    }
}

/// Start the binary; panics (with its stderr) when it does not serve.
pub fn serve(args: &[&str], cwd: Option<&Path>) -> Served {
    serve_bin(bin(), args, cwd)
}

/// [`serve`] with another binary that has the same command line.
pub fn serve_bin(bin: &str, args: &[&str], cwd: Option<&Path>) -> Served {
    match try_serve_bin(bin, args, cwd) {
        Ok(s) => s,
        Err(e) => panic!(
            "{bin} {args:?} exited with {} before serving:\n{}",
            e.status, e.stderr
        ),
    }
}

impl Served {
    /// Serve `config` (a path or `config:` URI) with extra arguments (`NAME=VALUE`, options)
    /// on a free loopback port; panics with its stderr when it does not come up.
    pub fn start(config: impl AsRef<Path>, extra: &[&str]) -> Served {
        Self::start_bin(bin(), config, extra)
    }

    /// [`Served::start`] with another binary that has the same command line.
    pub fn start_bin(bin: &str, config: impl AsRef<Path>, extra: &[&str]) -> Served {
        let config = config.as_ref().to_string_lossy().into_owned();
        let mut args = vec![config.as_str(), "-b", "127.0.0.1:0"];
        args.extend_from_slice(extra);
        serve_bin(bin, &args, None)
    }

    /// The TCP address it listens on (panics for a unix socket).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.host_port()
            .parse()
            .unwrap_or_else(|e| panic!("serving on {}: {e}", self.listen))
    }

    /// Wait (at most 10 s) until stderr has a line matching `pred`; that line.
    pub fn wait_stderr_line(&self, pred: impl Fn(&str) -> bool) -> String {
        self.wait_line(pred, Duration::from_secs(10))
            .unwrap_or_else(|| panic!("no such line on stderr within 10 s:\n{}", self.stderr()))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `host:port` of a TCP listener (panics for a unix socket).
    pub fn host_port(&self) -> &str {
        self.listen
            .strip_prefix("http://")
            .unwrap_or_else(|| panic!("not a TCP address: {}", self.listen))
    }

    /// `http://host:port` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.listen)
    }

    /// Everything written to stderr so far.
    pub fn stderr(&self) -> String {
        let g = self.lines.lines.lock().unwrap_or_else(|e| e.into_inner());
        g.0.join("\n")
    }

    /// How many stderr lines so far match `pred`.
    pub fn count_lines(&self, pred: impl Fn(&str) -> bool) -> usize {
        let g = self.lines.lines.lock().unwrap_or_else(|e| e.into_inner());
        g.0.iter().filter(|l| pred(l)).count()
    }

    /// Wait until a stderr line matches `pred`; `None` when stderr closed or `limit` passed.
    pub fn wait_line(&self, pred: impl Fn(&str) -> bool, limit: Duration) -> Option<String> {
        self.wait_line_after(0, pred, limit)
    }

    /// Like [`wait_line`](Self::wait_line), looking only at lines from index `from` on.
    pub fn wait_line_after(
        &self,
        from: usize,
        pred: impl Fn(&str) -> bool,
        limit: Duration,
    ) -> Option<String> {
        let end = Instant::now() + limit;
        let mut g = self.lines.lines.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(l) = g.0.iter().skip(from).find(|l| pred(l)) {
                return Some(l.clone());
            }
            let now = Instant::now();
            if g.1 || now >= end {
                return None;
            }
            g = self
                .lines
                .cond
                .wait_timeout(g, end - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The number of stderr lines so far (a mark for [`wait_line_after`](Self::wait_line_after)).
    pub fn line_count(&self) -> usize {
        self.lines
            .lines
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .len()
    }

    /// Send a signal (`libc::SIGTERM`, `libc::SIGHUP`, ...).
    pub fn signal(&self, sig: i32) {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid");
        // SAFETY: kill(2) with our own child's pid; no memory is involved.
        let r = unsafe { libc::kill(pid, sig) };
        assert_eq!(r, 0, "kill({pid}, {sig})");
    }

    /// Wait for the process to exit (panics after `limit`).
    pub fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        match wait_with_deadline(&mut self.child, limit) {
            Some(s) => s,
            None => panic!(
                "mapproxy-serve did not exit within {limit:?}:\n{}",
                self.stderr()
            ),
        }
    }
}

impl Drop for Served {
    /// SIGTERM for a clean stop (log files are flushed), SIGKILL when that takes 5 s.
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            if let Ok(pid) = libc::pid_t::try_from(self.child.id()) {
                // SAFETY: kill(2) with our own child's pid; no memory is involved.
                unsafe {
                    libc::kill(pid, libc::SIGTERM);
                }
            }
            if wait_with_deadline(&mut self.child, Duration::from_secs(5)).is_none() {
                let _ = self.child.kill();
            }
        }
        let _ = self.child.wait();
    }
}

/// A raw HTTP/1.1 exchange over any stream: send `request`, read until the server closes or
/// `limit` passes; returns what was read.
pub fn raw_exchange<S: Read + Write>(mut stream: S, request: &[u8]) -> String {
    stream.write_all(request).expect("write request");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    String::from_utf8_lossy(&buf).into_owned()
}
