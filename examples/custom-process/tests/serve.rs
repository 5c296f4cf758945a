//! Serve `example.ini` with the real `custom-process-serve` binary and run `word_count`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_custom-process-serve");

/// The server process, killed when dropped.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("send");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn serves_word_count() {
    let ini = concat!(env!("CARGO_MANIFEST_DIR"), "/example.ini");
    let mut child = Command::new(BIN)
        .args([ini, "-b", "127.0.0.1:0"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start custom-process-serve");
    let stderr = child.stderr.take().expect("stderr");
    let _server = Server(child);
    // Lines until "serving on" (stderr closes if it cannot start).
    let addr = BufReader::new(stderr)
        .lines()
        .map_while(Result::ok)
        .find_map(|l| l.strip_prefix("serving on http://").map(str::to_string))
        .expect("serving on ...");
    let r = get(&addr, "/?service=WPS&request=Execute&identifier=word_count&DataInputs=text=to%2520be%2520or%2520not;min_length=3&RawDataOutput=count");
    assert!(
        r.starts_with("HTTP/1.1 200") && r.ends_with("\r\n\r\n1"),
        "{r}"
    );
    // min_length has a default.
    let r = get(&addr, "/?service=WPS&request=Execute&identifier=word_count&DataInputs=text=a%2520b&RawDataOutput=count");
    assert!(r.ends_with("\r\n\r\n2"), "{r}");
    let r = get(&addr, "/?service=WPS&request=GetCapabilities");
    assert!(
        r.contains("<ows:Identifier>word_count</ows:Identifier>"),
        "{r}"
    );
    assert!(
        !r.contains("<ows:Identifier>say_hello</ows:Identifier>"),
        "processes = word_count"
    );
}
