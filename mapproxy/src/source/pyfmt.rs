//! Python's ways of writing values that MapProxy's URLs show: `repr(float)` (WMS `bbox`),
//! `urllib.parse.quote(value, safe=',')` (WMS parameter values).

/// `repr(v)` of a Python float: the shortest digits that read back as `v`, in positional
/// notation with at least one decimal (`-180.0`, `0.5`, `123456.789`) when the decimal
/// exponent is in -4..16, else scientific (`1e-05`, `1e+16`, `1.5e+20`).
pub fn py_float_repr(v: f64) -> String {
    if v.is_nan() {
        return "nan".into();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if v == 0.0 {
        return if v.is_sign_negative() {
            "-0.0".into()
        } else {
            "0.0".into()
        };
    }
    // Rust's `{:e}` is the shortest round-trip form too: "-1.2345e4"
    let s = format!("{:e}", v);
    let (mant, exp) = s.split_once('e').unwrap_or((s.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let neg = mant.starts_with('-');
    let digits: String = mant.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        let n = digits.len() as i32;
        if exp < 0 {
            out.push_str("0.");
            for _ in 0..(-exp - 1) {
                out.push('0');
            }
            out.push_str(&digits);
        } else if exp + 1 >= n {
            out.push_str(&digits);
            for _ in 0..(exp + 1 - n) {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            let (a, b) = digits.split_at((exp + 1) as usize);
            out.push_str(a);
            out.push('.');
            out.push_str(b);
        }
    } else {
        let (a, b) = digits.split_at(1);
        out.push_str(a);
        if !b.is_empty() {
            out.push('.');
            out.push_str(b);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}

/// `urllib.parse.quote(value, safe=',')`: UTF-8, every byte but `A-Z a-z 0-9 _ . - ~ ,`
/// as `%XX` (upper-case hex).
pub fn py_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for &b in value.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'~' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `repr(bytes)` of Python, for messages that quote a response body.
pub(crate) fn py_bytes_repr(data: &[u8]) -> String {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        '"'
    } else {
        '\''
    };
    let mut out = format!("b{quote}");
    for &b in data {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            _ if b as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn float_repr_as_python() {
        for (v, want) in [
            (-180.0, "-180.0"),
            (0.0, "0.0"),
            (0.5, "0.5"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1.5e20, "1.5e+20"),
            (123456.789, "123456.789"),
            (-20037508.342789244, "-20037508.342789244"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.1 + 0.2, "0.30000000000000004"),
        ] {
            assert_eq!(py_float_repr(v), want, "{v}");
        }
    }

    #[test]
    fn quote_as_python() {
        assert_eq!(py_quote("image/png"), "image%2Fpng");
        assert_eq!(py_quote("EPSG:4326"), "EPSG%3A4326");
        assert_eq!(py_quote("a b&c,ä"), "a%20b%26c,%C3%A4");
        assert_eq!(py_bytes_repr(b"ab'\n\x01"), "b\"ab'\\n\\x01\"");
    }
}
