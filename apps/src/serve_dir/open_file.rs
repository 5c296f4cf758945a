//! From `PATH_INFO` to an open file: the request key (the core crate's
//! [`path::decode`](mapproxy_serve_core::path::decode)), resolving it under the canonical
//! root, the [`Stamp`] that identifies one version of a file, and opening or reading a file
//! that must still be that version.

use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;

/// What identifies one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) len: u64,
    pub(super) mtime: SystemTime,
    #[cfg(unix)]
    ino: (u64, u64),
}

impl Stamp {
    pub(super) fn of(meta: &std::fs::Metadata) -> Stamp {
        #[cfg(unix)]
        use std::os::unix::fs::MetadataExt;
        Stamp {
            len: meta.len(),
            mtime: meta.modified().unwrap_or(UNIX_EPOCH),
            #[cfg(unix)]
            ino: (meta.dev(), meta.ino()),
        }
    }
}

/// Where a request path leads.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Resolved {
    /// A regular file, canonical path.
    File(PathBuf),
    /// A directory named without a trailing slash.
    AddSlash,
    NotFound,
}

/// The request key of `PATH_INFO` (also the memory cache's key): the decoded relative path
/// with `/` separators, no empty or `.` segments, and a trailing `/` when the request had one
/// (`/` alone is the key `/`: the root's index). `None` (404) for a `..` segment or a NUL
/// byte, and off unix for a `\` or `:` in a segment.
pub(super) fn request_key(path_info: &str) -> Option<Vec<u8>> {
    let decoded = mapproxy_serve_core::path::decode(path_info).ok()?;
    #[cfg(not(unix))]
    if decoded
        .segments()
        .any(|s| s.contains(&b'\\') || s.contains(&b':'))
    {
        return None;
    }
    let mut key = decoded.into_relative();
    // `relative()` has no trailing `/` for the root; the key of a directory request keeps it
    // (`/`, `/./`, `/%2F`), so that the root's index is served and not redirected.
    if key.is_empty() && ends_in_slash(path_info) {
        key.push(b'/');
    }
    Some(key)
}

/// Whether the percent-decoded `path` ends in `/`: its last byte is `/` or it ends in the
/// escape `%2F` (the last `%` cannot belong to an earlier escape, it is no hex digit).
fn ends_in_slash(path: &str) -> bool {
    let b = path.as_bytes();
    b.ends_with(b"/") || (b.len() >= 3 && b[b.len() - 3..].eq_ignore_ascii_case(b"%2f"))
}

#[cfg(unix)]
fn key_path(key: &[u8]) -> Option<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Some(PathBuf::from(std::ffi::OsStr::from_bytes(key)))
}

#[cfg(not(unix))]
fn key_path(key: &[u8]) -> Option<PathBuf> {
    std::str::from_utf8(key).ok().map(PathBuf::from)
}

/// Resolve a request key under the canonical `root`.
pub(super) fn resolve(root: &Path, key: &[u8]) -> Resolved {
    let (rel, dir_wanted) = match key.strip_suffix(b"/") {
        Some(r) => (r, true),
        None => (key, false),
    };
    let Some(rel) = key_path(rel) else {
        return Resolved::NotFound;
    };
    let Some(target) = canonical_under(root, &root.join(rel)) else {
        return Resolved::NotFound;
    };
    let Ok(meta) = std::fs::metadata(&target) else {
        return Resolved::NotFound;
    };
    if meta.is_dir() {
        if !dir_wanted {
            return Resolved::AddSlash;
        }
        match canonical_under(root, &target.join("index.html")) {
            Some(index) if std::fs::metadata(&index).is_ok_and(|m| m.is_file()) => {
                Resolved::File(index)
            }
            _ => Resolved::NotFound,
        }
    } else if meta.is_file() && !dir_wanted {
        Resolved::File(target)
    } else {
        Resolved::NotFound
    }
}

/// The canonical form of `path` if it exists and lies under `root` (component-wise).
fn canonical_under(root: &Path, path: &Path) -> Option<PathBuf> {
    let c = std::fs::canonicalize(path).ok()?;
    c.starts_with(root).then_some(c)
}

/// Read a whole file that must still be the version `stamp` describes.
pub(super) fn read_whole(path: &Path, stamp: Stamp) -> io::Result<Bytes> {
    let mut f = File::open(path)?;
    let mut buf = Vec::with_capacity(usize::try_from(stamp.len).unwrap_or(0));
    f.read_to_end(&mut buf)?;
    // The file may have changed between stat and read: trust only an unchanged handle.
    if Stamp::of(&f.metadata()?) != stamp || buf.len() as u64 != stamp.len {
        return Err(io::Error::other("file changed while being read"));
    }
    Ok(Bytes::from(buf))
}

/// Open a large file and check that it is still the version the headers describe.
pub(super) fn open_checked(path: &Path, stamp: Stamp) -> io::Result<File> {
    let f = File::open(path)?;
    if Stamp::of(&f.metadata()?) != stamp {
        return Err(io::Error::other("file changed since it was looked up"));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_keys_are_decoded_paths() {
        assert_eq!(request_key("/").unwrap(), b"/");
        assert_eq!(request_key("/a//./b").unwrap(), b"a/b");
        assert_eq!(request_key("/a/b/").unwrap(), b"a/b/");
        assert_eq!(request_key("/a%2Fb").unwrap(), b"a/b");
        assert!(request_key("/a/%2e%2e/b").is_none());
        assert!(request_key("/a%00").is_none());
        // The root: a directory request keeps its slash, `/.` is the root without one.
        assert_eq!(request_key("/./").unwrap(), b"/");
        assert_eq!(request_key("//").unwrap(), b"/");
        assert_eq!(request_key("/%2f").unwrap(), b"/");
        assert_eq!(request_key("/.").unwrap(), b"");
        assert_eq!(request_key("/%2e").unwrap(), b"");
        assert_eq!(request_key("/a/.").unwrap(), b"a");
        assert_eq!(request_key("/a%2F").unwrap(), b"a/");
    }

    #[cfg(not(unix))]
    #[test]
    fn request_keys_refuse_backslashes_and_colons() {
        assert!(request_key("/a\\b").is_none());
        assert!(request_key("/c:/x").is_none());
        assert!(request_key("/a%5Cb").is_none());
    }
}
