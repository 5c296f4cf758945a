//! MapProxy's `Response` rules (`mapproxy/response.py`): content types, `Vary`, cache headers,
//! conditional requests, and the error documents of `exception.py`.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use http::header::{HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use mapproxy_serve_core::app::{full_body, Body};
use md5::{Digest, Md5};

const VARY: &str = "X-Script-Name, X-Forwarded-Host, X-Forwarded-Proto";

/// A response as MapProxy's `Response(body, status, mimetype=...)` makes it: `text/*` gets
/// `; charset=utf-8`, and every `text/*` or `application/*` type gets `Vary`.
pub(crate) fn mimetype_response(
    status: StatusCode,
    mimetype: &str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let ct = if mimetype.starts_with("text/") {
        format!("{mimetype}; charset=utf-8")
    } else {
        mimetype.to_string()
    };
    content_type_response(status, &ct, body)
}

/// A response with the content type as given (MapProxy's `content_type=`).
pub(crate) fn content_type_response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<bytes::Bytes>,
) -> Response<Body> {
    let mut res = Response::new(full_body(body));
    *res.status_mut() = status;
    let h = res.headers_mut();
    // room for a tile answer's headers without growing
    h.reserve(8);
    match content_type {
        "image/png" => {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("image/png"),
            );
        }
        "image/jpeg" => {
            h.insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static("image/jpeg"),
            );
        }
        _ => set(h, http::header::CONTENT_TYPE, content_type),
    }
    if content_type.starts_with("text/") || content_type.starts_with("application/") {
        h.insert(http::header::VARY, HeaderValue::from_static(VARY));
    }
    res
}

fn set(h: &mut HeaderMap, name: HeaderName, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        h.insert(name, v);
    }
}

/// `cache_headers(no_cache=True)`: what every rendered `RequestError` carries.
pub(crate) fn no_cache(mut res: Response<Body>) -> Response<Body> {
    let h = res.headers_mut();
    h.insert(
        http::header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store"),
    );
    h.insert(http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(http::header::EXPIRES, HeaderValue::from_static("-1"));
    res
}

pub use crate::source::py_float_repr as py_float;

pub use crate::escape::{escape_html, html_escape};

/// A tile's modification time as the float MapProxy's file cache reports (`os.path.getmtime`).
/// CPython's `st_mtime`: `sec + nsec * 1e-9` (not `/ 1e9`: the last bit can differ, and the
/// ETag hashes the printed float).
fn timestamp(t: SystemTime) -> f64 {
    let f = |d: Duration| d.as_secs() as f64 + f64::from(d.subsec_nanos()) * 1e-9;
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => f(d),
        Err(e) => -f(e.duration()),
    }
}

/// MapProxy's tile ETag: `md5(str(timestamp) + str(size))`, hex, unquoted. A tile without a
/// time was made, not loaded from a cache (`disable_storage`): MapProxy knows neither its
/// timestamp nor its size (cache/tile.py `Tile.size` is set by loads), `md5("NoneNone")`.
pub fn tile_etag(mtime: Option<SystemTime>, size: usize) -> String {
    let Some(t) = mtime else {
        return hex(&Md5::digest(b"NoneNone"));
    };
    let ts = py_float(timestamp(t));
    let mut text = ts;
    text.push_str(itoa::Buffer::new().format(size));
    hex(&Md5::digest(text.as_bytes()))
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(DIGITS[usize::from(b >> 4)] as char);
        s.push(DIGITS[usize::from(b & 15)] as char);
    }
    s
}

/// `Cache-Control: public, max-age=N, s-maxage=N`, made once per thread and age (every tile
/// answer carries it).
fn cache_control(max_age: u64) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<Option<(u64, HeaderValue)>> = const { std::cell::RefCell::new(None) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        match &*last {
            Some((age, v)) if *age == max_age => v.clone(),
            _ => {
                let v =
                    HeaderValue::try_from(format!("public, max-age={max_age}, s-maxage={max_age}"))
                        .unwrap_or_else(|_| HeaderValue::from_static("public"));
                *last = Some((max_age, v.clone()));
                v
            }
        }
    })
}

/// A tile answer: `cache_headers(timestamp, etag_data=(timestamp, size), max_age)` and
/// `make_conditional` (304 with the headers kept, no body, no content type).
pub(crate) fn tile_response(
    req_headers: &HeaderMap,
    content_type: &str,
    data: bytes::Bytes,
    mtime: Option<SystemTime>,
    max_age: u64,
) -> Response<Body> {
    let v = tile_validators(mtime, data.len());
    conditional_response(req_headers, content_type, data, &v, max_age)
}

/// MapProxy's `cache_headers` + `make_conditional` for any cacheable answer: `ETag`,
/// `Last-modified` (when there is a time), `Cache-control`; 304 on a matching
/// `If-None-Match` or an `If-Modified-Since` not before the time.
pub(crate) fn cached_response(
    req_headers: &HeaderMap,
    content_type: &str,
    data: impl Into<bytes::Bytes>,
    etag: &str,
    mtime: Option<SystemTime>,
    max_age: u64,
) -> Response<Body> {
    let v = Validators::new(etag, mtime);
    conditional_response(req_headers, content_type, data, &v, max_age)
}

/// The validators of an answer as header values: its ETag, and its time as `Last-Modified`
/// and as the float `If-Modified-Since` is compared with.
#[derive(Clone)]
struct Validators {
    etag: HeaderValue,
    last_modified: Option<HeaderValue>,
    timestamp: Option<f64>,
}

impl Validators {
    fn new(etag: &str, mtime: Option<SystemTime>) -> Validators {
        let timestamp = mtime.map(timestamp);
        // wsgiref's format_date_time: whole seconds (gmtime truncates)
        let last_modified = timestamp.and_then(|ts| {
            let secs = ts.floor();
            (0.0..253_402_300_800.0).contains(&secs).then(|| {
                let t = UNIX_EPOCH + Duration::from_secs(secs as u64);
                HeaderValue::from_str(&httpdate::fmt_http_date(t))
                    .unwrap_or_else(|_| HeaderValue::from_static(""))
            })
        });
        Validators {
            etag: HeaderValue::from_str(etag).unwrap_or_else(|_| HeaderValue::from_static("")),
            last_modified,
            timestamp,
        }
    }
}

/// A tile's [`Validators`], remembered per thread for the last 256 (time, size) pairs: a hot
/// tile's ETag (an MD5 over Python's float repr) and date are worked out once, not per request.
fn tile_validators(mtime: Option<SystemTime>, size: usize) -> Validators {
    const SLOTS: usize = 256;
    type Slot = Option<(Option<SystemTime>, usize, Validators)>;
    thread_local! {
        static MEMO: std::cell::RefCell<Vec<Slot>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let nanos = mtime
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos() as u64);
    let slot = (nanos ^ (size as u64).rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56;
    let slot = slot as usize % SLOTS;
    MEMO.with(|memo| {
        let mut memo = memo.borrow_mut();
        if memo.is_empty() {
            memo.resize(SLOTS, None);
        }
        if let Some((t, s, v)) = &memo[slot] {
            if *t == mtime && *s == size {
                return v.clone();
            }
        }
        let v = Validators::new(&tile_etag(mtime, size), mtime);
        memo[slot] = Some((mtime, size, v.clone()));
        v
    })
}

fn conditional_response(
    req_headers: &HeaderMap,
    content_type: &str,
    data: impl Into<bytes::Bytes>,
    v: &Validators,
    max_age: u64,
) -> Response<Body> {
    let mut res = content_type_response(StatusCode::OK, content_type, data);
    let h = res.headers_mut();
    if !v.etag.is_empty() {
        h.insert(http::header::ETAG, v.etag.clone());
    }
    if let Some(lm) = &v.last_modified {
        h.insert(http::header::LAST_MODIFIED, lm.clone());
    }
    h.insert(http::header::CACHE_CONTROL, cache_control(max_age));
    let mut not_modified = false;
    if let Some(inm) = req_headers.get(http::header::IF_NONE_MATCH) {
        if inm.as_bytes() == v.etag.as_bytes() {
            not_modified = true;
        }
    }
    if !not_modified {
        if let (Some(ts), Some(ims)) = (
            v.timestamp,
            req_headers.get(http::header::IF_MODIFIED_SINCE),
        ) {
            if let Some(since) = ims.to_str().ok().and_then(parse_httpdate) {
                if ts <= since {
                    not_modified = true;
                }
            }
        }
    }
    if not_modified {
        *res.status_mut() = StatusCode::NOT_MODIFIED;
        *res.body_mut() = full_body(bytes::Bytes::new());
        res.headers_mut().remove(http::header::CONTENT_TYPE);
    }
    res
}

/// A date as MapProxy reads `If-Modified-Since`: Python's `email.utils.parsedate` (RFC 1123,
/// RFC 850, asctime and looser forms; a zone offset is ignored) and `calendar.timegm` (which
/// rolls over out-of-range days and times: `99 Feb` is in May). `None` when unparsable (or a
/// year `timegm` refuses, where MapProxy fails with a 500).
pub fn parse_httpdate(s: &str) -> Option<f64> {
    const DAYS: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];
    const MONTHS: [&str; 24] = [
        "jan",
        "feb",
        "mar",
        "apr",
        "may",
        "jun",
        "jul",
        "aug",
        "sep",
        "oct",
        "nov",
        "dec",
        "january",
        "february",
        "march",
        "april",
        "may",
        "june",
        "july",
        "august",
        "september",
        "october",
        "november",
        "december",
    ];
    let mut data: Vec<String> = s.split_whitespace().map(str::to_string).collect();
    let first = data.first()?.clone();
    if first.ends_with(',') || DAYS.contains(&first.to_lowercase().as_str()) {
        data.remove(0);
    } else if let Some(i) = first.rfind(',') {
        data[0] = first[i + 1..].to_string();
    }
    if data.len() == 3 {
        let stuff: Vec<String> = data[0].split('-').map(str::to_string).collect();
        if stuff.len() == 3 {
            let rest = data.split_off(1);
            data = stuff;
            data.extend(rest);
        }
    }
    if data.len() == 4 {
        let s3 = data[3].clone();
        let i = s3.find('+').or_else(|| s3.find('-'));
        match i {
            Some(i) if i > 0 => {
                data.truncate(3);
                data.push(s3[..i].to_string());
                data.push(s3[i..].to_string());
            }
            _ => data.push(String::new()),
        }
    }
    if data.len() < 5 {
        return None;
    }
    let (mut dd, mut mm, mut yy, mut tm) = (
        data[0].clone(),
        data[1].to_lowercase(),
        data[2].clone(),
        data[3].clone(),
    );
    if dd.is_empty() || mm.is_empty() || yy.is_empty() {
        return None;
    }
    if !MONTHS.contains(&mm.as_str()) {
        (dd, mm) = (mm, dd.to_lowercase());
        if !MONTHS.contains(&mm.as_str()) {
            return None;
        }
    }
    let mut month = MONTHS.iter().position(|m| *m == mm)? as i64 + 1;
    if month > 12 {
        month -= 12;
    }
    if let Some(d) = dd.strip_suffix(',') {
        dd = d.to_string();
    }
    if yy.find(':').is_some_and(|i| i > 0) {
        std::mem::swap(&mut yy, &mut tm);
    }
    if let Some(y) = yy.strip_suffix(',') {
        yy = y.to_string();
        if yy.is_empty() {
            return None;
        }
    }
    if !yy.chars().next().is_some_and(|c| c.is_ascii_digit()) {
        yy = data[4].clone();
    }
    if let Some(t) = tm.strip_suffix(',') {
        tm = t.to_string();
    }
    let parts: Vec<&str> = if tm.contains(':') || !tm.contains('.') {
        tm.split(':').collect()
    } else {
        tm.split('.').collect()
    };
    let (thh, tmm, tss) = match parts.as_slice() {
        [h, m] if tm.contains(':') || tm.contains('.') => (*h, *m, "0"),
        [h, m, s] => (*h, *m, *s),
        _ => return None,
    };
    // Python's int(): optional sign, digits (no overflow in Python; ours is bounded)
    let int = |s: &str| -> Option<i64> {
        let t = s.trim();
        let t = t.strip_prefix('+').unwrap_or(t);
        let d = t.strip_prefix('-').unwrap_or(t);
        if d.is_empty() || !d.bytes().all(|b| b.is_ascii_digit()) || d.len() > 12 {
            return None;
        }
        t.parse().ok()
    };
    let (mut year, day, h, m, sec) = (int(&yy)?, int(&dd)?, int(thh)?, int(tmm)?, int(tss)?);
    if year < 100 {
        year += if year > 68 { 1900 } else { 2000 };
    }
    // MapProxy's parse_httpdate (util/times.py) moves years before 1970 by 2000:
    // `If-Modified-Since: ... 1969 ...` is taken for 3969
    if year < 1970 {
        year += 2000;
    }
    if !(1..=9999).contains(&year) {
        return None;
    }
    // calendar.timegm: days since the epoch of the 1st of the month, plus the rest as is
    let days = days_from_civil(year, month) + day - 1;
    let secs = ((days * 24 + h) * 60 + m) * 60 + sec;
    Some(secs as f64)
}

/// Days from 1970-01-01 to the first of `month` in `year` (proleptic Gregorian).
fn days_from_civil(year: i64, month: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146097 + doe - 719468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_floats() {
        assert_eq!(py_float(-180.0), "-180.0");
        assert_eq!(py_float(-20037508.342789244), "-20037508.342789244");
        assert_eq!(py_float(8.58306884765625e-05), "8.58306884765625e-05");
        assert_eq!(py_float(0.0006866455078125), "0.0006866455078125");
        assert_eq!(py_float(1e16), "1e+16");
        assert_eq!(py_float(1234567890.0), "1234567890.0");
        assert_eq!(py_float(1.0728836059570312e-05), "1.0728836059570312e-05");
        assert_eq!(py_float(0.29858214173896974), "0.29858214173896974");
        assert_eq!(py_float(0.0), "0.0");
        assert_eq!(py_float(-0.5), "-0.5");
        assert_eq!(py_float(123.0), "123.0");
        assert_eq!(py_float(0.0001), "0.0001");
        assert_eq!(py_float(1.5e300), "1.5e+300");
        assert_eq!(py_float(1234567890.5), "1234567890.5");
    }

    #[test]
    fn etag_as_mapproxy() {
        let t = UNIX_EPOCH + Duration::from_secs(1234567890);
        let expected: String = Md5::digest(b"1234567890.010214")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(tile_etag(Some(t), 10214), expected);
        // a file-system mtime with nanoseconds prints as Python's float of it
        let t = UNIX_EPOCH + Duration::new(1712345678, 123456789);
        let expected: String = Md5::digest(b"1712345678.12345675")
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(tile_etag(Some(t), 5), expected);
    }

    #[test]
    fn dates_as_python_parsedate() {
        let t = Some(1234567890.0);
        for d in [
            "Fri, 13 Feb 2009 23:31:30 GMT",
            "Friday, 13-Feb-09 23:31:30 GMT",
            "Fri Feb 13 23:31:30 2009",
            "13 Feb 2009 23:31:30",
            "Fri, 13 Feb 2009 23:31:30 +0100",
            "Fri, 13 Feb 2009 23:31 GMT",
        ] {
            let expect = if d.ends_with("23:31 GMT") {
                Some(1234567860.0)
            } else {
                t
            };
            assert_eq!(parse_httpdate(d), expect, "{d}");
        }
        // MapProxy's years before 1970 plus 2000: 1969 is 3969, the 3-digit 100 is 2100
        assert_eq!(
            parse_httpdate("Fri, 01 Jan 1969 00:00:00 GMT"),
            parse_httpdate("Fri, 01 Jan 3969 00:00:00 GMT")
        );
        assert_eq!(
            parse_httpdate("Friday, 01-Jan-100 00:00:00 GMT"),
            parse_httpdate("Fri, 01 Jan 2100 00:00:00 GMT")
        );
        // timegm rolls over: 99 Feb 2009 is 10 May 2009
        assert_eq!(
            parse_httpdate("Fri, 99 Feb 2009 00:00:00 GMT"),
            Some(1241913600.0)
        );
        for d in [
            "",
            "foobar",
            "Fri, 13 Foo 2009 23:31:30 GMT",
            "13 Feb 99999999999999999 1:1:1",
        ] {
            assert_eq!(parse_httpdate(d), None, "{d}");
        }
    }

    #[test]
    fn escape_like_python() {
        assert_eq!(html_escape("a<b>&\"'"), "a&lt;b&gt;&amp;&quot;&#x27;");
        assert_eq!(escape_html("a<b>&\"'"), "a&lt;b&gt;&amp;");
    }
}
