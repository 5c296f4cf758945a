//! Text for the demo pages: HTML and JavaScript escaping, URL quoting, query parsing and
//! Python's float `repr`, so numbers print as MapProxy prints them.

/// `s` escaped for HTML text and double- or single-quoted attribute values.
pub fn html(s: &str) -> String {
    crate::escape::html_escape(s).into_owned()
}

/// MapProxy's `escape_html` (`util/escape.py`), for the URLs it builds from request values:
/// `&`, `<`, `>` escaped, quotes dropped.
pub fn mapproxy_escape(s: &str) -> String {
    crate::escape::escape_html(s).into_owned()
}

/// `s` as a double-quoted JavaScript string literal that is also safe inside `<script>`:
/// quotes, backslashes, control characters, `<`, `>`, `&` and U+2028/U+2029 become `\u` escapes.
pub fn js_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' | '\'' | '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Python's `urllib.parse.quote(s)`: everything but `A-Za-z0-9_.-~/` percent-encoded (UTF-8).
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || b"_.-~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `application/x-www-form-urlencoded` decoding: `+` is a space, `%XX` a byte (a malformed
/// escape stays as written), invalid UTF-8 becomes U+FFFD.
pub fn unquote_plus(s: &str) -> String {
    decode(s, true)
}

/// A URL path decoded: `%XX` a byte, `+` stays.
pub fn unquote(s: &str) -> String {
    decode(s, false)
}

fn decode(s: &str, plus: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' if plus => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query string as MapProxy's `req.args`: pairs in order, blank values kept (`?wms_capabilities`
/// is a key with an empty value), keys compared ignoring case, the first value of a key wins.
#[derive(Debug, Default)]
pub struct Args(Vec<(String, String)>);

impl Args {
    pub fn parse(query: &str) -> Args {
        let mut pairs = Vec::new();
        for part in query.split(['&', ';']) {
            if part.is_empty() {
                continue;
            }
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            pairs.push((unquote_plus(k), unquote_plus(v)));
        }
        Args(pairs)
    }

    /// The first value of `key` (ASCII case ignored).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }
}

use crate::pynum::Num;
pub use crate::source::py_float_repr as py_float;

/// Floats joined with `", "`, as the templates' `', '.join(str(r) for r in ...)`.
pub fn py_floats(v: &[f64]) -> String {
    v.iter()
        .map(|&x| py_float(x))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Python numbers joined with `", "` (`str()` of each: `5` for an int, `5.0` for a float).
pub fn py_nums(v: &[Num]) -> String {
    v.iter().map(Num::to_string).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_as_python() {
        assert_eq!(py_float(-180.0), "-180.0");
        assert_eq!(py_float(0.703125), "0.703125");
        assert_eq!(py_float(8.58306884765625e-05), "8.58306884765625e-05");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(20037508.342789244), "20037508.342789244");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1234567890123456.0), "1234567890123456.0");
        assert_eq!(py_float(-85.0511287798066), "-85.0511287798066");
        assert_eq!(py_float(1.0728836059570312e-05), "1.0728836059570312e-05");
        assert_eq!(py_float(0.1), "0.1");
        assert_eq!(py_float(1.0), "1.0");
    }

    #[test]
    fn escapes() {
        assert_eq!(html("a\"<b>'&"), "a&quot;&lt;b&gt;&#x27;&amp;");
        assert_eq!(
            js_string("a\"</script>\\"),
            "\"a\\u0022\\u003c/script\\u003e\\\\\""
        );
        assert_eq!(quote("EPSG:3857"), "EPSG%3A3857");
        assert_eq!(unquote_plus("EPSG%3a3857+x%zz%4"), "EPSG:3857 x%zz%4");
    }

    #[test]
    fn args_as_mapproxy() {
        let a = Args::parse("wms_capabilities&TYPE=external&srs=a&srs=b");
        assert!(a.has("wms_capabilities"));
        assert_eq!(a.get("type"), Some("external"));
        assert_eq!(a.get("srs"), Some("a"));
        assert_eq!(a.get("nope"), None);
    }
}
