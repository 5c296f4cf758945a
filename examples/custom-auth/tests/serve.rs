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
