//! The one URL-path normaliser: what the static app maps to a file, what the proxy app joins
//! to its base URL and what becomes a mount path (`X-Script-Name`, prefixes, urlmap keys) are
//! all read by the rules here.
//!
//! [`decode`] percent-decodes a path **before** splitting it, so `%2e%2e`, `.%2e`, `..%2f`
//! and `%2e%2e%2f` are the `..` segments they stand for; empty and `.` segments are dropped
//! and any `..` or NUL byte is refused: a decoded path can never leave the directory or base
//! path it is joined to. [`mount_path`] is the rule for mount paths.
//!
//! ```
//! use mapproxy_serve_core::path::{decode, mount_path};
//!
//! assert_eq!(decode("/a//./b%20c/").unwrap().encoded(), "/a/b%20c/");
//! for escape in ["/%2e%2e/secret", "/.%2e/x", "/..%2fx", "/%2e%2e%2fx", "/a/../b"] {
//!     assert!(decode(escape).is_err(), "{escape}");
//! }
//! assert_eq!(mount_path("//evil.example/x/").unwrap(), "/evil.example/x");
//! ```

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

/// Why a path was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathError {
    /// A `..` segment (also percent-encoded): it would leave the base.
    ParentSegment,
    /// A NUL byte.
    Nul,
    /// Not a path (no leading `/` where one is needed, `?` or `#`, control characters).
    Invalid,
}

impl std::fmt::Display for PathError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PathError::ParentSegment => "a '..' segment",
            PathError::Nul => "a NUL byte",
            PathError::Invalid => "not a URL path",
        })
    }
}

impl std::error::Error for PathError {}

/// A decoded path: its segments (never empty, `.` or `..`) and whether it ended in `/`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedPath {
    /// The segments joined by `/`, plus the trailing `/` (a decoded segment never holds a
    /// `/`: the path is split after decoding).
    relative: Vec<u8>,
    trailing_slash: bool,
}

/// What [`decode_with`] does with a `..` segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParentSegments {
    /// Refuse the path ([`PathError::ParentSegment`]): the static app's rule.
    Refuse,
    /// Remove the segment before it, never going above the root (`/a/../../b` is `/b`), and
    /// a path ending in `.` or `..` names a directory: URL resolution (RFC 3986 §5.2.4,
    /// Paste's urljoin), the proxy app's rule.
    Resolve,
}

/// Percent-decode `path`, split it at `/`, drop empty and `.` segments; refuse `..` and NUL
/// (NUL first, when a path has both).
pub fn decode(path: &str) -> Result<DecodedPath, PathError> {
    decode_with(path, ParentSegments::Refuse)
}

/// [`decode`] with a choice for `..` segments. Decoding comes first either way, so an
/// encoded `..` (`%2e%2e`, `.%2e`, `..%2f`) counts as one.
pub fn decode_with(path: &str, parents: ParentSegments) -> Result<DecodedPath, PathError> {
    // The kept segments, each followed by `/`, written as the bytes are decoded: one buffer.
    let mut out = Vec::with_capacity(path.len() + 1);
    let mut segment = 0;
    let mut parent = false;
    let mut ends_in_slash = false;
    let mut dots = Segment::Kept;
    for b in percent_decode_str(path) {
        match b {
            0 => return Err(PathError::Nul),
            b'/' => {
                dots = end_segment(&mut out, segment, parents);
                parent |= dots == Segment::Parent;
                segment = out.len();
                ends_in_slash = true;
            }
            _ => {
                out.push(b);
                ends_in_slash = false;
            }
        }
    }
    if !ends_in_slash {
        dots = end_segment(&mut out, segment, parents);
        parent |= dots == Segment::Parent;
    }
    if parent && parents == ParentSegments::Refuse {
        return Err(PathError::ParentSegment);
    }
    // Resolving, `/a/.` and `/a/b/..` name the directory `/a/`.
    let dir = ends_in_slash || (parents == ParentSegments::Resolve && dots != Segment::Kept);
    let trailing_slash = dir && !out.is_empty();
    if !trailing_slash {
        out.pop();
    }
    Ok(DecodedPath {
        relative: out,
        trailing_slash,
    })
}

/// What [`end_segment`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Segment {
    /// A name, kept.
    Kept,
    /// Empty or `.`, dropped.
    Dot,
    /// `..`: dropped, and (resolving) the one before it too.
    Parent,
}

/// The segment `out[start..]` is complete: an empty or `.` one is dropped, `..` too (and,
/// resolving, the kept segment before it), any other gets its `/`.
fn end_segment(out: &mut Vec<u8>, start: usize, parents: ParentSegments) -> Segment {
    match out.get(start..) {
        Some(b"") | None => Segment::Dot,
        Some(b".") => {
            out.truncate(start);
            Segment::Dot
        }
        Some(b"..") => {
            out.truncate(start);
            if parents == ParentSegments::Resolve {
                // `out` is `a/b/`: drop `b/`.
                out.pop();
                let keep = out.iter().rposition(|&b| b == b'/').map_or(0, |i| i + 1);
                out.truncate(keep);
            }
            Segment::Parent
        }
        Some(_) => {
            out.push(b'/');
            Segment::Kept
        }
    }
}

/// Bytes that must be escaped in a URL path: everything except RFC 3986 `pchar` and `/` (so
/// `%`, `?`, `#`, space, `[`, `]` and non-ASCII are escaped). The one set both the FastCGI
/// server (a decoded `PATH_INFO` back into a URI) and [`DecodedPath::encoded`] use.
pub const PATH: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'[')
    .add(b'\\')
    .add(b']')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// [`PATH`] for one segment: a decoded `/` is data there, so it is escaped too.
pub const SEGMENT: &AsciiSet = &PATH.add(b'/');

impl DecodedPath {
    /// The decoded segments.
    pub fn segments(&self) -> impl Iterator<Item = &[u8]> {
        let joined = self.relative.strip_suffix(b"/").unwrap_or(&self.relative);
        // The root's empty text is no segment; no other segment is empty.
        joined.split(|&b| b == b'/').filter(|s| !s.is_empty())
    }

    /// Whether the path ended in `/` (a directory was asked for).
    pub fn trailing_slash(&self) -> bool {
        self.trailing_slash
    }

    /// The relative path, `a/b`, with a trailing `/` kept (`a/b/`); empty for the root.
    pub fn relative(&self) -> Vec<u8> {
        self.relative.clone()
    }

    /// [`relative`](DecodedPath::relative), without a copy.
    pub fn into_relative(self) -> Vec<u8> {
        self.relative
    }

    /// The path again as URL text, each segment percent-encoded (a decoded `/` or `?` stays
    /// data): `/` for the root, otherwise `/a/b` (and `/a/b/`).
    pub fn encoded(&self) -> String {
        let mut out = String::from("/");
        for (i, s) in self.segments().enumerate() {
            if i > 0 {
                out.push('/');
            }
            // Segments are bytes: encode the non-UTF-8 ones byte by byte.
            match std::str::from_utf8(s) {
                Ok(t) => out.extend(utf8_percent_encode(t, SEGMENT)),
                Err(_) => out.extend(percent_encoding::percent_encode(s, SEGMENT)),
            }
        }
        if self.trailing_slash {
            out.push('/');
        }
        out
    }
}

/// A mount path (`SCRIPT_NAME`): `""` for the root, otherwise one leading `/`, no empty, `.`
/// or `..` segments, no trailing `/` (`//evil.example/x/` is `/evil.example/x`). Refused:
/// a value not starting with `/` (after trimming), `..`, `?`, `#`, control characters and
/// anything outside the URL path characters.
pub fn mount_path(p: &str) -> Result<String, PathError> {
    let p = p.trim();
    if p.is_empty() {
        return Ok(String::new());
    }
    if !p.starts_with('/') {
        return Err(PathError::Invalid);
    }
    let mut out = String::with_capacity(p.len());
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => return Err(PathError::ParentSegment),
            s => {
                if !s.bytes().all(is_path_char) {
                    return Err(PathError::Invalid);
                }
                out.push('/');
                out.push_str(s);
            }
        }
    }
    Ok(out)
}

/// RFC 3986 `pchar` (unreserved, sub-delims, `:`, `@`) plus `%` for escapes, and non-ASCII
/// bytes (IRIs, as urlmap keys are written).
fn is_path_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b) || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decoded_paths_never_leave_their_base() {
        for p in [
            "/..",
            "/../x",
            "/a/../../x",
            "/%2e%2e/x",
            "/%2E%2E/x",
            "/.%2e/x",
            "/%2e./x",
            "/..%2fx",
            "/..%2Fx",
            "/%2e%2e%2fx",
            "/a%2f..%2f..%2fx",
            "/..\\",
            "..",
        ] {
            if p == "/..\\" {
                // `..\` is a plain name on unix, not a parent segment.
                assert!(decode(p).is_ok());
                continue;
            }
            assert_eq!(decode(p), Err(PathError::ParentSegment), "{p}");
        }
        assert_eq!(decode("/a%00b"), Err(PathError::Nul));
    }

    #[test]
    fn decoded_paths_keep_their_shape() {
        let d = decode("/a//./b%2Fc/").unwrap();
        assert_eq!(d.relative(), b"a/b/c/");
        assert!(d.trailing_slash());
        assert_eq!(decode("/").unwrap().relative(), b"");
        assert_eq!(decode("").unwrap().encoded(), "/");
        assert_eq!(
            decode("/k%C3%A4rten/x%3Fy").unwrap().encoded(),
            "/k%C3%A4rten/x%3Fy"
        );
        assert_eq!(decode("/%ff").unwrap().encoded(), "/%FF");
        let d = decode("a/./b%2F/").unwrap();
        assert_eq!(d.segments().collect::<Vec<_>>(), [b"a", b"b"]);
        assert_eq!(d.into_relative(), b"a/b/");
        assert_eq!(decode("//.//").unwrap().segments().count(), 0);
        assert!(!decode("//.//").unwrap().trailing_slash());
        assert_eq!(decode("/x/.").unwrap().relative(), b"x");
        // NUL before `..`, whichever comes first
        assert_eq!(decode("/../a%00"), Err(PathError::Nul));
        assert_eq!(decode("/a%00/.."), Err(PathError::Nul));
    }

    #[test]
    fn resolved_parents_stay_at_the_root() {
        let r = |p| decode_with(p, ParentSegments::Resolve).unwrap().encoded();
        assert_eq!(r("/a/../../../etc/passwd"), "/etc/passwd");
        assert_eq!(r("/%2e%2e/secret/s.txt"), "/secret/s.txt");
        assert_eq!(r("/x/.%2e/y"), "/y");
        assert_eq!(r("/x/..%2f..%2fy"), "/y");
        assert_eq!(r("/a/./b/"), "/a/b/");
        assert_eq!(r("/a/b/.."), "/a/");
        assert_eq!(r("/a/."), "/a/");
        assert_eq!(r("/a/.."), "/");
        assert_eq!(r("/a/b/../c"), "/a/c");
        assert_eq!(r("/.."), "/");
        assert_eq!(
            decode_with("/a%00/..", ParentSegments::Resolve),
            Err(PathError::Nul)
        );
    }

    #[test]
    fn mount_paths_have_one_shape() {
        assert_eq!(mount_path("").unwrap(), "");
        assert_eq!(mount_path("/").unwrap(), "");
        assert_eq!(mount_path("/a/b/").unwrap(), "/a/b");
        assert_eq!(mount_path("//a//b").unwrap(), "/a/b");
        assert_eq!(mount_path("/a/./b").unwrap(), "/a/b");
        for bad in ["a", "/a/../b", "/a?b", "/a#b", "/a b", "/a\nb", "http://x/"] {
            assert!(mount_path(bad).is_err(), "{bad}");
        }
    }
}
