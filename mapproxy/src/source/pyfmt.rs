//! Python's ways of writing values that MapProxy's URLs show: `repr(float)` (WMS `bbox`),
//! `urllib.parse.quote(value, safe=',')` (WMS parameter values).

/// Python's `str(float)` (`repr`): shortest round trip, `.0` on integral values, exponent
/// below 1e-4 and from 1e16 on (`8.58306884765625e-05`).
pub fn py_float_repr(v: f64) -> String {
    let a = v.abs();
    // Between 1e-4 and 1e16 Python writes the shortest round-trip digits without an exponent,
    // as Rust's Display does; only an exact tie between two shortest forms can differ (the
    // decimal exponent passed is one below floor(log10), which only makes the check stricter).
    // Every tile's ETag prints a timestamp: this is its path.
    if (1e-4..1e16).contains(&a) && tie_impossible(a, a.log10().floor() as i32 - 1) {
        let mut s = format!("{v}");
        if !s.contains('.') {
            s.push_str(".0");
        }
        return s;
    }
    py_float_with(v, true)
}

fn py_float_with(v: f64, fast: bool) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "nan".into()
        } else if v > 0.0 {
            "inf".into()
        } else {
            "-inf".into()
        };
    }
    let sign = if v.is_sign_negative() { "-" } else { "" };
    let a = v.abs();
    if a == 0.0 {
        return format!("{sign}0.0");
    }
    // The shortest round-trip digits; Python breaks exact ties to the even digit, Rust's
    // shortest form may round up (1.07288360595703125e-05 is ...312 in Python).
    let short = format!("{a:e}");
    let (mant, exp) = short.split_once('e').unwrap_or((&short, "0"));
    let mut digits: String = mant.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let n = digits.len();
    if fast && tie_impossible(a, exp) {
        return py_float_layout(sign, &digits, exp, a);
    }
    let exact = format!("{a:.*e}", n + 40);
    let exact_digits: String = exact
        .split_once('e')
        .map_or(exact.as_str(), |(m, _)| m)
        .chars()
        .filter(|c| *c != '.')
        .collect();
    if exact_digits.len() > n {
        let (head, tail) = exact_digits.split_at(n);
        let tie = tail.starts_with('5') && tail[1..].bytes().all(|b| b == b'0');
        let even = head
            .bytes()
            .last()
            .is_some_and(|b| (b - b'0').is_multiple_of(2));
        if tie
            && even
            && head != digits
            && exact.split_once('e').map(|(_, e)| e) == Some(&exp.to_string())
        {
            digits = head.to_string();
        }
    }
    py_float_layout(sign, &digits, exp, a)
}

/// Can the shortest round-trip digits of `a` be a tie between two candidates (where Python
/// rounds half to even and Rust may not)? Only when `a`'s exact decimal expansion is short: a
/// tie needs it to end in 5 one digit after the shortest form (at most 18 significant digits).
/// `a = m·2^e` with `m` odd has `-e` fractional digits when `e < 0`, so `-e + exp10 + 1`
/// significant ones (`exp10` the decimal exponent, within one of the shortest form's); an
/// integer below 2^53 is exact in its shortest form. So the exact expansion (slow: dozens of
/// digits, for every tile's ETag) is only computed where it can matter.
fn tie_impossible(a: f64, exp10: i32) -> bool {
    let bits = a.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let frac = bits & ((1u64 << 52) - 1);
    let (m, e) = if biased == 0 {
        (frac, -1074)
    } else {
        (frac | (1u64 << 52), biased - 1075)
    };
    if m == 0 {
        return true;
    }
    let e = e + m.trailing_zeros() as i32;
    if e >= 0 {
        a < 9_007_199_254_740_992.0
    } else {
        -e + exp10 + 1 > 20
    }
}

/// Python's layout of shortest digits `digits` (no point) with decimal exponent `exp`.
fn py_float_layout(sign: &str, digits: &str, exp: i32, a: f64) -> String {
    if (1e-4..1e16).contains(&a) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if digits.len() <= point {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        return format!("{sign}{body}");
    }
    let (first, rest) = digits.split_at(1);
    let mant = if rest.is_empty() {
        first.to_string()
    } else {
        format!("{first}.{rest}")
    };
    let esign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{mant}e{esign}{:02}", exp.unsigned_abs())
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
    #[test]
    fn the_fast_path_prints_what_the_exact_one_does() {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for i in 0..200_000u32 {
            let r = next();
            let v = match i % 4 {
                0 => f64::from_bits(r >> 1),
                // modification times with nanoseconds, and whole seconds
                1 => 1.7e9 + (r % 1_000_000_000) as f64 * 1e-9,
                2 => (r % 4_000_000_000) as f64,
                // short dyadic fractions, where ties live
                _ => (r % 1_000_000) as f64 / (1u64 << (r % 40)) as f64,
            };
            if v.is_finite() {
                assert_eq!(
                    super::py_float_with(v, true),
                    super::py_float_with(v, false),
                    "{v:e}"
                );
            }
        }
    }

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
