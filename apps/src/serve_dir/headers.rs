//! The headers of a file response: `Content-Type`, `ETag` and `Last-Modified` made once per
//! file version ([`FileHeaders`]), conditional requests (`If-None-Match`,
//! `If-Modified-Since`) and one `Range` (with `If-Range`).

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::header::{self, HeaderMap, HeaderValue};

/// The ready-made headers of one version of a file.
#[derive(Debug)]
pub(super) struct FileHeaders {
    pub(super) content_type: HeaderValue,
    pub(super) content_length: HeaderValue,
    /// `"<mtime-ns-hex>-<len-hex>"`.
    pub(super) etag: HeaderValue,
    pub(super) last_modified: HeaderValue,
    /// `Last-Modified` in whole seconds, for `If-Modified-Since`.
    mtime_secs: u64,
}

impl FileHeaders {
    /// The headers of the file at `path` (its extension gives the type), `len` bytes long,
    /// modified at `mtime`.
    pub(super) fn new(path: &Path, len: u64, mtime: SystemTime) -> FileHeaders {
        let since = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mime = mime_guess::from_path(path).first_or_octet_stream();
        FileHeaders {
            content_type: HeaderValue::from_str(mime.as_ref())
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            content_length: HeaderValue::from(len),
            etag: header_value(format!("\"{:x}-{:x}\"", since.as_nanos(), len)),
            last_modified: header_value(httpdate::fmt_http_date(mtime)),
            mtime_secs: since.as_secs(),
        }
    }
}

/// A header value of text this module made (never fails on it; empty otherwise).
pub(super) fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""))
}

/// `If-None-Match` (weak comparison, `*`), else `If-Modified-Since`.
pub(super) fn not_modified(h: &HeaderMap, f: &FileHeaders) -> bool {
    if let Some(inm) = h.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else {
            return false;
        };
        let ours = f.etag.as_bytes();
        return inm
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.strip_prefix("W/").unwrap_or(t).as_bytes() == ours);
    }
    if let Some(ims) = h.get(header::IF_MODIFIED_SINCE) {
        if let Some(t) = ims
            .to_str()
            .ok()
            .and_then(|s| httpdate::parse_http_date(s).ok())
        {
            let t = t.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            return f.mtime_secs <= t;
        }
    }
    false
}

/// What part of a file a request asks for.
pub(super) enum RangeReq {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range of a file of `len` bytes; several ranges, bad syntax or a failed
/// `If-Range` mean the whole file.
pub(super) fn range(h: &HeaderMap, f: &FileHeaders, len: u64) -> RangeReq {
    let Some(spec) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeReq::Whole;
    };
    if let Some(ir) = h.get(header::IF_RANGE) {
        if ir != f.etag && ir != f.last_modified {
            return RangeReq::Whole;
        }
    }
    let Some(set) = spec.trim().strip_prefix("bytes=") else {
        return RangeReq::Whole;
    };
    if set.contains(',') {
        return RangeReq::Whole;
    }
    let Some((a, b)) = set.trim().split_once('-') else {
        return RangeReq::Whole;
    };
    let (a, b) = (a.trim(), b.trim());
    let parse = |s: &str| -> Option<u64> {
        if s.is_empty() || !s.bytes().all(|c| c.is_ascii_digit()) {
            None
        } else {
            s.parse().ok()
        }
    };
    match (a.is_empty(), b.is_empty()) {
        (true, true) => RangeReq::Whole,
        (true, false) => match parse(b) {
            // Suffix: the last n bytes.
            Some(0) => RangeReq::Unsatisfiable,
            Some(_) if len == 0 => RangeReq::Unsatisfiable,
            Some(n) => RangeReq::Part(len.saturating_sub(n), len - 1),
            None => RangeReq::Whole,
        },
        (false, _) => {
            let Some(start) = parse(a) else {
                return RangeReq::Whole;
            };
            let end = if b.is_empty() {
                None
            } else {
                match parse(b) {
                    Some(end) if end >= start => Some(end),
                    _ => return RangeReq::Whole,
                }
            };
            if start >= len {
                return RangeReq::Unsatisfiable;
            }
            RangeReq::Part(start, end.map_or(len - 1, |x| x.min(len - 1)))
        }
    }
}
