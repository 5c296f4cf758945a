//! Real web servers as FastCGI clients, for the tests: find the binary (or SKIP), fill in a
//! config template from `tests/fcgi/`, start it in the foreground on a free loopback port and
//! stop it when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Which web server, and how to run it in the foreground.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Nginx,
    Lighttpd,
    Apache,
}

impl Kind {
    pub fn binary(self) -> &'static str {
        match self {
            Kind::Nginx => "nginx",
            Kind::Lighttpd => "lighttpd",
            Kind::Apache => "apache2",
        }
    }

    pub fn command(self, bin: &Path, conf: &Path, tmp: &Path) -> Command {
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

    pub fn error_logs(self, tmp: &Path) -> String {
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
pub struct Peer {
    pub child: Child,
    pub port: u16,
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
pub fn find(kind: Kind) -> Option<PathBuf> {
    super::programs::find_program(kind.binary(), "not testing it as a FastCGI client")
}

/// A port that was free a moment ago (nginx cannot listen on port 0).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind port 0");
    l.local_addr().expect("local addr").port()
}

/// Fill in a config template from `tests/fcgi/`.
pub fn render(template: &str, port: u16, socket: &Path, tmp: &Path) -> PathBuf {
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
pub fn start_peer(kind: Kind, bin: &Path, template: &str, socket: &Path, tmp: &Path) -> Peer {
    start_peer_with(kind, bin, tmp, |port| render(template, port, socket, tmp))
}

/// Start `kind` with the config `conf(port)` writes for a port that was free a moment ago;
/// retry once on another port if it does not come up.
pub fn start_peer_with(kind: Kind, bin: &Path, tmp: &Path, conf: impl Fn(u16) -> PathBuf) -> Peer {
    for attempt in 0..2 {
        let port = free_port();
        let conf = conf(port);
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
