//! The text of a line: the fields known when the request starts ([`render_early`]), the
//! finished line ([`Entry::format_into`]), Apache's escaping of request-supplied text, and
//! the per-thread scratch space (line buffer, time stamp, client address text).

use std::cell::RefCell;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use http::{Request, Version};

use super::format::{Field, Part, Segment};
use super::Entry;

/// One field or literal known when the request starts, as it goes in the line.
pub(super) fn render_early<B>(
    out: &mut String,
    seg: &Segment,
    req: &Request<B>,
    mount: &str,
    wall: SystemTime,
    time: &mut TimeCache,
) {
    let f = match seg {
        Segment::Lit(s) => return out.push_str(s),
        Segment::Field(f) => f,
    };
    let uri = req.uri();
    match f {
        Field::Time => out.push_str(time.get(wall)),
        Field::Method => escape_str(out, req.method().as_str()),
        Field::RequestUri => {
            escape_str(out, mount);
            escape_str(out, uri.path());
            if let Some(q) = uri.query() {
                out.push('?');
                escape_str(out, q);
            }
        }
        Field::ScriptName => escape_str(out, mount),
        Field::PathInfo => escape_str(out, uri.path()),
        Field::QueryString => escape_str(out, uri.query().unwrap_or("")),
        Field::HttpVersion => out.push_str(match req.version() {
            Version::HTTP_09 => "HTTP/0.9",
            Version::HTTP_10 => "HTTP/1.0",
            Version::HTTP_11 => "HTTP/1.1",
            Version::HTTP_2 => "HTTP/2.0",
            Version::HTTP_3 => "HTTP/3.0",
            _ => "HTTP/?",
        }),
        Field::Header(h) => match req.headers().get(h) {
            Some(v) => escape_into(out, v.as_bytes()),
            None => out.push('-'),
        },
        // late fields (`Field::is_late`) are not in early runs
        _ => {}
    }
}

impl Entry {
    /// The whole line: the format's text, the early runs, the late fields.
    pub(super) fn format_into(&self, out: &mut String, client: &mut ClientCache) {
        let mut run = 0;
        for part in &self.shared.format.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Early(_) => {
                    out.push_str(self.early.run(run));
                    run += 1;
                }
                Part::Late(f) => self.late_field(out, f, client),
            }
        }
    }

    fn late_field(&self, out: &mut String, f: &Field, client: &mut ClientCache) {
        let elapsed = || self.start.map(|s| s.elapsed()).unwrap_or_default();
        match f {
            Field::RemoteAddr => match self.remote {
                Some(ip) => out.push_str(client.get(ip)),
                None => out.push('-'),
            },
            Field::RemoteUser => match &self.user {
                Some(u) => escape_str(out, u),
                None => out.push('-'),
            },
            Field::Status => out.push_str(self.status.as_str()),
            Field::Bytes => {
                if self.bytes == 0 {
                    out.push('-');
                } else {
                    push_u64(out, self.bytes);
                }
            }
            Field::DurationSecs => {
                let _ = write!(out, "{:.6}", elapsed().as_secs_f64());
            }
            Field::DurationMs => {
                let _ = write!(out, "{}", elapsed().as_millis());
            }
            Field::DurationUs => {
                let _ = write!(out, "{}", elapsed().as_micros());
            }
            // early fields were rendered when the request started
            _ => {}
        }
    }
}

/// Run `f` with this thread's scratch space (a fresh one when it is in use: a sink that
/// logs from inside its `write`).
pub(super) fn with_scratch<R>(f: impl FnOnce(&mut Scratch) -> R) -> R {
    thread_local! {
        static SCRATCH: RefCell<Scratch> = const {
            RefCell::new(Scratch {
                line: String::new(),
                time: TimeCache::new(),
                client: ClientCache::new(),
                spare: Vec::new(),
            })
        };
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut scratch) => f(&mut scratch),
        Err(_) => f(&mut Scratch {
            line: String::new(),
            time: TimeCache::new(),
            client: ClientCache::new(),
            spare: Vec::new(),
        }),
    })
}

/// The decimal digits of `n`, as `Display` writes them.
fn push_u64(out: &mut String, n: u64) {
    out.push_str(itoa::Buffer::new().format(n));
}

/// `a.b.c.d`, as `Display` writes it, without the formatting machinery.
fn push_ipv4(out: &mut String, ip: std::net::Ipv4Addr) {
    let [a, b, c, d] = ip.octets();
    let mut buf = itoa::Buffer::new();
    out.push_str(buf.format(a));
    out.push('.');
    out.push_str(buf.format(b));
    out.push('.');
    out.push_str(buf.format(c));
    out.push('.');
    out.push_str(buf.format(d));
}

/// Apache's escaping of request-supplied text: `"` and `\` get a backslash, bytes outside
/// printable ASCII become `\xHH`.
fn escape_into(out: &mut String, s: &[u8]) {
    if all_plain(s) {
        // all ASCII printable: valid UTF-8
        out.push_str(std::str::from_utf8(s).unwrap_or(""));
        return;
    }
    escape_bytes(out, s);
}

/// [`escape_into`] for text that is already a `str` (no second UTF-8 check).
pub(super) fn escape_str(out: &mut String, s: &str) {
    if all_plain(s.as_bytes()) {
        out.push_str(s);
    } else {
        escape_bytes(out, s.as_bytes());
    }
}

/// Every byte is [`plain`]: eight at a time (paths, user agents and referers are long, and
/// nearly always plain).
fn all_plain(s: &[u8]) -> bool {
    const ONES: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // some byte of `v` is zero
    let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGH != 0;
    let mut chunks = s.chunks_exact(8);
    for chunk in &mut chunks {
        let w = match <[u8; 8]>::try_from(chunk) {
            Ok(b) => u64::from_ne_bytes(b),
            Err(_) => return chunk.iter().all(|&b| plain(b)),
        };
        let control = w.wrapping_sub(ONES * 0x20) & !w & HIGH != 0; // a byte < 0x20
        let high = (w.wrapping_add(ONES) | w) & HIGH != 0; // a byte > 0x7e
        if control || high || has_zero(w ^ (ONES * 0x22)) || has_zero(w ^ (ONES * 0x5c)) {
            return false;
        }
    }
    chunks.remainder().iter().all(|&b| plain(b))
}

/// A byte Apache writes as it is.
fn plain(b: u8) -> bool {
    PLAIN[usize::from(b)]
}

/// Printable ASCII but `"` and `\\`, by byte.
static PLAIN: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0x20;
    while b < 0x7f {
        t[b] = b != b'"' as usize && b != b'\\' as usize;
        b += 1;
    }
    t
};

fn escape_bytes(out: &mut String, s: &[u8]) {
    for &b in s {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// A thread's line buffer, time stamp and spare buffers for early text, reused for every
/// line.
pub(super) struct Scratch {
    pub(super) line: String,
    pub(super) time: TimeCache,
    pub(super) client: ClientCache,
    pub(super) spare: Vec<String>,
}

/// The text of the last client address written on this thread: a client sends its requests
/// in a row, and behind a reverse proxy it is always the same one.
pub(super) struct ClientCache {
    ip: Option<IpAddr>,
    text: String,
}

impl ClientCache {
    const fn new() -> ClientCache {
        ClientCache {
            ip: None,
            text: String::new(),
        }
    }

    fn get(&mut self, ip: IpAddr) -> &str {
        if self.ip != Some(ip) {
            self.text.clear();
            match ip {
                IpAddr::V4(v4) => push_ipv4(&mut self.text, v4),
                IpAddr::V6(v6) => {
                    let _ = write!(self.text, "{v6}");
                }
            }
            self.ip = Some(ip);
        }
        &self.text
    }
}

/// Early-text buffers kept per thread (requests in flight started on it, at most).
pub(super) const SPARE_BUFFERS: usize = 64;

/// The Apache time stamp of the last second asked for.
pub(super) struct TimeCache {
    secs: i64,
    text: String,
}

impl TimeCache {
    const fn new() -> TimeCache {
        TimeCache {
            secs: i64::MIN,
            text: String::new(),
        }
    }

    /// The time stamp of `t` (local time), formatted once per second.
    fn get(&mut self, t: SystemTime) -> &str {
        let secs = t
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        if self.secs != secs {
            self.text = format_time(secs);
            self.secs = secs;
        }
        &self.text
    }
}

fn format_time(secs: i64) -> String {
    use chrono::TimeZone as _;
    match chrono::Local.timestamp_opt(secs, 0) {
        chrono::LocalResult::Single(t) | chrono::LocalResult::Ambiguous(t, _) => {
            t.format("%d/%b/%Y:%H:%M:%S %z").to_string()
        }
        chrono::LocalResult::None => "-".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_as_display_writes_it() {
        for ip in [
            "0.0.0.0",
            "127.0.0.1",
            "10.20.99.100",
            "255.255.255.255",
            "1.9.10.199",
        ] {
            let ip: std::net::Ipv4Addr = ip.parse().unwrap();
            let mut out = String::new();
            push_ipv4(&mut out, ip);
            assert_eq!(out, ip.to_string());
        }
        for n in [1u64, 9, 10, 4096, 1_048_576, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
    }

    #[test]
    fn time_is_apache_style() {
        let t = format_time(0);
        assert_eq!(t.len(), "01/Jan/1970:00:00:00 +0000".len(), "{t}");
        assert!(t.contains("/19"), "{t}");
        let z = &t[t.len() - 5..];
        assert!(z.starts_with('+') || z.starts_with('-'), "{t}");
    }

    #[test]
    fn client_text_follows_the_address() {
        let mut c = ClientCache::new();
        for ip in [
            "10.0.0.1",
            "::1",
            "10.0.0.1",
            "192.168.100.255",
            "2001:db8::7",
        ] {
            assert_eq!(c.get(ip.parse().unwrap()), ip);
        }
    }

    #[test]
    fn eight_at_a_time_agrees_with_the_table() {
        let mut buf = *b"0123456789abcdefghijklmnopq";
        assert!(all_plain(&buf));
        for b in 0..=255u8 {
            for pos in 0..buf.len() {
                let mut t = buf;
                t[pos] = b;
                for len in [pos + 1, buf.len()] {
                    assert_eq!(
                        all_plain(&t[..len]),
                        plain(b),
                        "byte {b:#x} at {pos} of {len}"
                    );
                }
            }
        }
        // neighbours that could carry into each other
        buf[..8].copy_from_slice(&[0xff, 0x20, 0x7e, 0x00, 0x21, 0x7f, 0x1f, 0x5b]);
        assert!(!all_plain(&buf));
        assert!(all_plain(b"~~~~~~~~ !#[]}{z"));
    }

    #[test]
    fn escaping() {
        let mut s = String::new();
        escape_into(&mut s, b"a\"b\\c\x01\xff");
        assert_eq!(s, "a\\\"b\\\\c\\x01\\xff");
    }
}
