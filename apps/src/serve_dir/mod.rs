//! Static files from a document root (`egg:Paste#static`), built for speed and safety.
//!
//! [`StaticFiles`] answers `GET` and `HEAD` for the files under one directory:
//!
//! - the request URI path is `PATH_INFO` (the part below the mount path); it is
//!   percent-decoded, and any `..` segment or NUL byte gives 404. The decoded path is joined
//!   under the canonical root, canonicalized, and must still lie under the root, compared
//!   component by component (a sibling `root2` is *not* under `root`; a symlink that points
//!   out of the root gives 404);
//! - `/` and `dir/` serve `index.html` from that directory (404 when there is none); a
//!   directory without a trailing slash, and an empty `PATH_INFO`, get a **301** to the public
//!   URL plus `/` (built from [`script_url`](mapproxy_serve_core::environ::script_url), query kept);
//!   a file followed by more path (`/index.txt/foo`, `/index.txt/`) gives 404;
//! - `Content-Type` by extension, `ETag` (`"<mtime-ns-hex>-<len-hex>"`), `Last-Modified`,
//!   `If-None-Match` / `If-Modified-Since` → 304, one `Range` → 206 or 416 (several ranges get
//!   the whole file), `If-Range`, `HEAD` without body, `cache_max_age` → `Cache-Control`;
//! - other methods get 405 with `Allow: GET, HEAD`.
//!
//! Speed: files up to [`StaticFilesBuilder::max_cached_file_size`] (1 MiB by default) are kept
//! in memory with their ready-made headers, keyed by the normalized request path, within a
//! total budget ([`StaticFilesBuilder::cache_budget`], 64 MiB). A hit is a hash lookup and a
//! `Bytes` clone. An entry is revalidated (path resolved again and `stat`ed) when it is older
//! than [`StaticFilesBuilder::revalidate_after`] (1 s by default), so a changed file is seen
//! within that time. Files up to 64 KiB are read on the request's thread when first asked for
//! (like a web server's worker does: the document root is expected on a local file system);
//! larger cacheable ones stream the first time while the blocking pool loads them. Files
//! above the limit are streamed in 256 KiB chunks read on the blocking pool.
//!
//! ```no_run
//! use mapproxy_serve_apps::serve_dir::StaticFiles;
//!
//! # fn main() -> std::io::Result<()> {
//! let files = StaticFiles::builder("/var/www")
//!     .cache_max_age(3600)
//!     .build()?;
//! // `files` is a tower::Service<http::Request<B>>; serve it with hyper or mount it in axum.
//! # let _ = files;
//! # Ok(())
//! # }
//! ```

mod factory;
pub use factory::build;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fs::File;
use std::future::{ready, Ready};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use http_body::{Frame, SizeHint};

const LOG: &str = "mapproxy_serve.static";
/// Cached files up to this size are read on the request's own thread; larger cacheable ones
/// are loaded on the blocking pool while the first response streams.
const INLINE_READ_MAX: u64 = 64 * 1024;
/// Read size for streamed (large) files.
const CHUNK: usize = 256 * 1024;
/// The most entries the memory cache holds.
const MAX_ENTRIES: usize = 16 * 1024;

/// Options of a [`StaticFiles`] service.
#[derive(Clone, Debug)]
pub struct StaticFilesBuilder {
    root: PathBuf,
    cache_max_age: Option<u64>,
    max_cached_file_size: u64,
    cache_budget: usize,
    revalidate_after: Duration,
    chunk_size: usize,
}

impl StaticFilesBuilder {
    /// `Cache-Control: max-age=<secs>` on every file response (Paste's `cache_max_age`).
    pub fn cache_max_age(mut self, secs: u64) -> Self {
        self.cache_max_age = Some(secs);
        self
    }

    /// Files up to this size are kept in memory (default 1 MiB; 0 disables the memory cache).
    /// Up to 64 KiB they are read when first asked for; larger ones stream the first time
    /// while the blocking pool loads them for the next requests.
    pub fn max_cached_file_size(mut self, bytes: u64) -> Self {
        self.max_cached_file_size = bytes;
        self
    }

    /// The total size of the file bodies kept in memory (default 64 MiB). When an insert would
    /// exceed it the cache is emptied and refilled by later requests.
    pub fn cache_budget(mut self, bytes: usize) -> Self {
        self.cache_budget = bytes;
        self
    }

    /// How long a cached lookup is trusted before the path is resolved and `stat`ed again
    /// (default 1 s; zero means on every request).
    pub fn revalidate_after(mut self, d: Duration) -> Self {
        self.revalidate_after = d;
        self
    }

    /// Read size when streaming files larger than the cache limit (default 256 KiB).
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(4096);
        self
    }

    /// Canonicalize the root (it must exist and be a directory) and build the service.
    pub fn build(self) -> io::Result<StaticFiles> {
        let root = std::fs::canonicalize(&self.root)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", self.root.display())))?;
        if !std::fs::metadata(&root)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a directory", self.root.display()),
            ));
        }
        let cache_control = match self.cache_max_age {
            Some(secs) => Some(
                HeaderValue::from_str(&format!("max-age={secs}"))
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?,
            ),
            None => None,
        };
        Ok(StaticFiles {
            inner: Arc::new(Inner {
                root,
                cache_control,
                max_cached_file_size: self.max_cached_file_size,
                cache_budget: self.cache_budget,
                revalidate_ms: u64::try_from(self.revalidate_after.as_millis()).unwrap_or(u64::MAX),
                chunk_size: self.chunk_size,
                epoch: Instant::now(),
                cache: RwLock::new(HashMap::new()),
                cache_bytes: AtomicUsize::new(0),
            }),
        })
    }
}

/// A Tower service answering `GET`/`HEAD` with the files under a directory.
/// See the [module docs](self).
#[derive(Clone, Debug)]
pub struct StaticFiles {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    root: PathBuf,
    cache_control: Option<HeaderValue>,
    max_cached_file_size: u64,
    cache_budget: usize,
    revalidate_ms: u64,
    chunk_size: usize,
    epoch: Instant,
    cache: RwLock<HashMap<Box<[u8]>, Arc<Entry>>>,
    cache_bytes: AtomicUsize,
}

/// What identifies one version of a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Stamp {
    len: u64,
    mtime: SystemTime,
    #[cfg(unix)]
    ino: (u64, u64),
}

impl Stamp {
    fn of(meta: &std::fs::Metadata) -> Stamp {
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

/// A resolved file with its ready-made headers and, when small, its contents.
#[derive(Debug)]
struct Entry {
    path: PathBuf,
    stamp: Stamp,
    content_type: HeaderValue,
    content_length: HeaderValue,
    etag: HeaderValue,
    last_modified: HeaderValue,
    /// `Last-Modified` in whole seconds, for `If-Modified-Since`.
    mtime_secs: u64,
    body: Option<Bytes>,
    checked_ms: AtomicU64,
}

impl Entry {
    fn new(path: PathBuf, stamp: Stamp, body: Option<Bytes>, now_ms: u64) -> Entry {
        let since = stamp.mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
        let mime = mime_guess::from_path(&path).first_or_octet_stream();
        Entry {
            content_type: HeaderValue::from_str(mime.as_ref())
                .unwrap_or(HeaderValue::from_static("application/octet-stream")),
            content_length: HeaderValue::from(stamp.len),
            etag: header_value(format!("\"{:x}-{:x}\"", since.as_nanos(), stamp.len)),
            last_modified: header_value(httpdate::fmt_http_date(stamp.mtime)),
            mtime_secs: since.as_secs(),
            path,
            stamp,
            body,
            checked_ms: AtomicU64::new(now_ms),
        }
    }
}

fn header_value(s: String) -> HeaderValue {
    HeaderValue::from_str(&s).unwrap_or(HeaderValue::from_static(""))
}

/// Where a request path leads.
#[derive(Debug, PartialEq, Eq)]
enum Resolved {
    /// A regular file, canonical path.
    File(PathBuf),
    /// A directory named without a trailing slash.
    AddSlash,
    NotFound,
}

impl StaticFiles {
    /// Serve the files under `root` with the default options.
    pub fn new(root: impl AsRef<Path>) -> io::Result<StaticFiles> {
        Self::builder(root).build()
    }

    /// Options for serving the files under `root`.
    pub fn builder(root: impl AsRef<Path>) -> StaticFilesBuilder {
        StaticFilesBuilder {
            root: root.as_ref().to_path_buf(),
            cache_max_age: None,
            max_cached_file_size: 1024 * 1024,
            cache_budget: 64 * 1024 * 1024,
            revalidate_after: Duration::from_secs(1),
            chunk_size: CHUNK,
        }
    }

    /// The canonical document root.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.inner.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Answer one request (the body of the request is not read).
    pub fn respond<B>(&self, req: &Request<B>) -> Response<StaticBody> {
        let head = match *req.method() {
            Method::GET => false,
            Method::HEAD => true,
            _ => {
                let mut res = plain(StatusCode::METHOD_NOT_ALLOWED, "405 Method Not Allowed\n");
                res.headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
                return res;
            }
        };
        // PATH_INFO "" (a mount requested without its trailing slash) gets Paste's 301.
        let path_info = mapproxy_serve_core::environ::path_info(req);
        if path_info.is_empty() {
            return add_slash(req);
        }
        let Some(key) = normalize(path_info) else {
            return not_found();
        };
        let now = self.now_ms();
        let cached = self
            .inner
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(key.as_slice()).cloned());
        let entry = match cached {
            Some(e)
                if now.saturating_sub(e.checked_ms.load(Ordering::Relaxed))
                    < self.inner.revalidate_ms =>
            {
                e
            }
            stale => match self.lookup(&key, stale, now) {
                Ok(Lookup::Entry(e)) => e,
                Ok(Lookup::AddSlash) => return add_slash(req),
                Ok(Lookup::NotFound) => return not_found(),
                Err(e) => {
                    log::debug!(target: LOG, "{}: {e}", path_info);
                    return not_found();
                }
            },
        };
        self.answer(req, &entry, head)
    }

    /// Resolve `key`, reusing `stale` when the file did not change.
    fn lookup(&self, key: &[u8], stale: Option<Arc<Entry>>, now: u64) -> io::Result<Lookup> {
        let path = match resolve(&self.inner.root, key) {
            Resolved::File(p) => p,
            Resolved::AddSlash => return Ok(Lookup::AddSlash),
            Resolved::NotFound => {
                if stale.is_some() {
                    self.forget(key);
                }
                return Ok(Lookup::NotFound);
            }
        };
        let meta = std::fs::metadata(&path)?;
        let stamp = Stamp::of(&meta);
        if let Some(e) = stale {
            if e.path == path && e.stamp == stamp {
                e.checked_ms.store(now, Ordering::Relaxed);
                if e.body.is_none() && stamp.len <= self.inner.max_cached_file_size {
                    self.spawn_load(key, path, stamp);
                }
                return Ok(Lookup::Entry(e));
            }
        }
        let cacheable = stamp.len <= self.inner.max_cached_file_size;
        let mut load_later = false;
        let body = if cacheable && stamp.len <= INLINE_READ_MAX {
            Some(read_whole(&path, stamp)?)
        } else {
            load_later = cacheable;
            None
        };
        let entry = Arc::new(Entry::new(path.clone(), stamp, body, now));
        self.remember(key, entry.clone());
        if load_later {
            self.spawn_load(key, path, stamp);
        }
        Ok(Lookup::Entry(entry))
    }

    /// This response streams; the body is loaded for later ones on the blocking pool (a big
    /// read never blocks a runtime thread).
    fn spawn_load(&self, key: &[u8], path: PathBuf, stamp: Stamp) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            let key = key.to_vec();
            rt.spawn_blocking(move || this.load_body(&key, path, stamp));
        }
    }

    /// Put the contents of a mid-size file into the cache, if its entry is still current.
    fn load_body(&self, key: &[u8], path: PathBuf, stamp: Stamp) {
        let bytes = match read_whole(&path, stamp) {
            Ok(b) => b,
            Err(e) => {
                log::debug!(target: LOG, "{}: {e}", path.display());
                return;
            }
        };
        let current = self
            .inner
            .cache
            .read()
            .ok()
            .and_then(|c| c.get(key).cloned());
        if let Some(cur) = current {
            if cur.path == path && cur.stamp == stamp && cur.body.is_none() {
                let now = cur.checked_ms.load(Ordering::Relaxed);
                self.remember(key, Arc::new(Entry::new(path, stamp, Some(bytes), now)));
            }
        }
    }

    fn remember(&self, key: &[u8], entry: Arc<Entry>) {
        let size = entry.body.as_ref().map_or(0, Bytes::len) + key.len();
        let Ok(mut cache) = self.inner.cache.write() else {
            return;
        };
        let used = self.inner.cache_bytes.load(Ordering::Relaxed);
        if used + size > self.inner.cache_budget || cache.len() >= MAX_ENTRIES {
            cache.clear();
            self.inner.cache_bytes.store(0, Ordering::Relaxed);
            if size > self.inner.cache_budget {
                return;
            }
        }
        let old = cache.insert(key.into(), entry);
        let freed = old.map_or(0, |o| o.body.as_ref().map_or(0, Bytes::len) + key.len());
        let used = self.inner.cache_bytes.load(Ordering::Relaxed);
        self.inner
            .cache_bytes
            .store((used + size).saturating_sub(freed), Ordering::Relaxed);
    }

    fn forget(&self, key: &[u8]) {
        if let Ok(mut cache) = self.inner.cache.write() {
            if let Some(old) = cache.remove(key) {
                let freed = old.body.as_ref().map_or(0, Bytes::len) + key.len();
                let used = self.inner.cache_bytes.load(Ordering::Relaxed);
                self.inner
                    .cache_bytes
                    .store(used.saturating_sub(freed), Ordering::Relaxed);
            }
        }
    }

    fn answer<B>(&self, req: &Request<B>, e: &Entry, head: bool) -> Response<StaticBody> {
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(header::ETAG, e.etag.clone());
        headers.insert(header::LAST_MODIFIED, e.last_modified.clone());
        if let Some(cc) = &self.inner.cache_control {
            headers.insert(header::CACHE_CONTROL, cc.clone());
        }
        if not_modified(req.headers(), e) {
            let mut res = Response::new(StaticBody::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            *res.headers_mut() = headers;
            return res;
        }
        headers.insert(header::CONTENT_TYPE, e.content_type.clone());
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let len = e.stamp.len;
        let mut status = StatusCode::OK;
        let (start, count) = match range(req.headers(), e) {
            RangeReq::Whole => {
                headers.insert(header::CONTENT_LENGTH, e.content_length.clone());
                (0, len)
            }
            RangeReq::Part(start, end) => {
                status = StatusCode::PARTIAL_CONTENT;
                headers.insert(
                    header::CONTENT_RANGE,
                    header_value(format!("bytes {start}-{end}/{len}")),
                );
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(end - start + 1));
                (start, end - start + 1)
            }
            RangeReq::Unsatisfiable => {
                let mut res = Response::new(StaticBody::empty());
                *res.status_mut() = StatusCode::RANGE_NOT_SATISFIABLE;
                headers.remove(header::CONTENT_TYPE);
                headers.insert(
                    header::CONTENT_RANGE,
                    header_value(format!("bytes */{len}")),
                );
                headers.insert(header::CONTENT_LENGTH, HeaderValue::from(0u64));
                *res.headers_mut() = headers;
                return res;
            }
        };
        let body = if head || count == 0 {
            StaticBody::empty()
        } else if let Some(bytes) = &e.body {
            // `start + count <= len == bytes.len()` for cached bodies.
            let s = usize::try_from(start).unwrap_or(0);
            let n = usize::try_from(count).unwrap_or(0);
            StaticBody::full(bytes.slice(s..s + n))
        } else {
            match open_checked(&e.path, e.stamp) {
                Ok(f) => StaticBody::file(f, start, count, self.inner.chunk_size),
                Err(err) => {
                    log::debug!(target: LOG, "{}: {err}", e.path.display());
                    self.forget_path(req.uri().path());
                    return not_found();
                }
            }
        };
        let mut res = Response::new(body);
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res
    }

    fn forget_path(&self, path_info: &str) {
        if let Some(key) = normalize(path_info) {
            self.forget(&key);
        }
    }
}

/// Read a whole file that must still be the version `stamp` describes.
fn read_whole(path: &Path, stamp: Stamp) -> io::Result<Bytes> {
    let mut f = File::open(path)?;
    let mut buf = Vec::with_capacity(usize::try_from(stamp.len).unwrap_or(0));
    f.read_to_end(&mut buf)?;
    // The file may have changed between stat and read: trust only an unchanged handle.
    if Stamp::of(&f.metadata()?) != stamp || buf.len() as u64 != stamp.len {
        return Err(io::Error::other("file changed while being read"));
    }
    Ok(Bytes::from(buf))
}

enum Lookup {
    Entry(Arc<Entry>),
    AddSlash,
    NotFound,
}

/// Open a large file and check that it is still the version the headers describe.
fn open_checked(path: &Path, stamp: Stamp) -> io::Result<File> {
    let f = File::open(path)?;
    if Stamp::of(&f.metadata()?) != stamp {
        return Err(io::Error::other("file changed since it was looked up"));
    }
    Ok(f)
}

/// Decode `PATH_INFO` into the cache key: the relative path with `/` separators, no empty or
/// `.` segments, and a trailing `/` when the request had one. `None` (404) for a `..` segment
/// or a NUL byte.
fn normalize(path_info: &str) -> Option<Vec<u8>> {
    let decoded = percent_encoding::percent_decode_str(path_info).collect::<Vec<u8>>();
    if decoded.contains(&0) {
        return None;
    }
    let mut key = Vec::with_capacity(decoded.len());
    for seg in decoded.split(|&b| b == b'/') {
        match seg {
            b"" | b"." => {}
            b".." => return None,
            s => {
                #[cfg(not(unix))]
                if s.contains(&b'\\') || s.contains(&b':') {
                    return None;
                }
                if !key.is_empty() {
                    key.push(b'/');
                }
                key.extend_from_slice(s);
            }
        }
    }
    if decoded.ends_with(b"/") {
        key.push(b'/');
    }
    Some(key)
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

/// Resolve a normalized key under the canonical `root`.
fn resolve(root: &Path, key: &[u8]) -> Resolved {
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

fn plain(status: StatusCode, text: &'static str) -> Response<StaticBody> {
    let mut res = Response::new(StaticBody::full(Bytes::from_static(text.as_bytes())));
    *res.status_mut() = status;
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn not_found() -> Response<StaticBody> {
    plain(StatusCode::NOT_FOUND, "404 Not Found\n")
}

/// 301 to the public URL of the request plus `/` (Paste's `add_slash`; query kept).
fn add_slash<B>(req: &Request<B>) -> Response<StaticBody> {
    let mut url = mapproxy_serve_core::environ::script_url(req);
    url.push_str(mapproxy_serve_core::environ::path_info(req));
    url.push('/');
    if let Some(q) = req.uri().query() {
        url.push('?');
        url.push_str(q);
    }
    let mut res = plain(StatusCode::MOVED_PERMANENTLY, "301 Moved Permanently\n");
    match HeaderValue::from_str(&url) {
        Ok(v) => {
            res.headers_mut().insert(header::LOCATION, v);
            res
        }
        Err(_) => not_found(),
    }
}

/// `If-None-Match` (weak comparison, `*`), else `If-Modified-Since`.
fn not_modified(h: &HeaderMap, e: &Entry) -> bool {
    if let Some(inm) = h.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else {
            return false;
        };
        let ours = e.etag.as_bytes();
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
            return e.mtime_secs <= t;
        }
    }
    false
}

enum RangeReq {
    Whole,
    /// Inclusive byte positions.
    Part(u64, u64),
    Unsatisfiable,
}

/// One `bytes=` range; several ranges, bad syntax or a failed `If-Range` mean the whole file.
fn range(h: &HeaderMap, e: &Entry) -> RangeReq {
    let Some(spec) = h.get(header::RANGE).and_then(|v| v.to_str().ok()) else {
        return RangeReq::Whole;
    };
    if let Some(ir) = h.get(header::IF_RANGE) {
        if ir != e.etag && ir != e.last_modified {
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
    let len = e.stamp.len;
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

/// The response body of [`StaticFiles`]: empty, one in-memory buffer, or a file streamed in
/// chunks read on tokio's blocking pool.
pub struct StaticBody {
    kind: Kind,
}

enum Kind {
    Empty,
    Full(Option<Bytes>),
    File(FileStream),
}

struct FileStream {
    file: Option<File>,
    /// Not yet seeked to the start offset.
    offset: Option<u64>,
    remaining: u64,
    chunk: usize,
    pending: Option<tokio::task::JoinHandle<(File, io::Result<Bytes>)>>,
}

impl std::fmt::Debug for StaticBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match &self.kind {
            Kind::Empty => "empty",
            Kind::Full(_) => "full",
            Kind::File(_) => "file",
        };
        f.debug_struct("StaticBody").field("kind", &what).finish()
    }
}

impl StaticBody {
    fn empty() -> Self {
        StaticBody { kind: Kind::Empty }
    }
    fn full(b: Bytes) -> Self {
        StaticBody {
            kind: Kind::Full(Some(b)),
        }
    }
    fn file(file: File, offset: u64, len: u64, chunk: usize) -> Self {
        StaticBody {
            kind: Kind::File(FileStream {
                file: Some(file),
                offset: (offset > 0).then_some(offset),
                remaining: len,
                chunk,
                pending: None,
            }),
        }
    }
}

fn read_chunk(mut file: File, offset: Option<u64>, want: usize) -> (File, io::Result<Bytes>) {
    let res = (|| {
        if let Some(off) = offset {
            file.seek(SeekFrom::Start(off))?;
        }
        let mut buf = BytesMut::zeroed(want);
        let mut filled = 0;
        while filled < want {
            match file.read(&mut buf[filled..]) {
                Ok(0) => return Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(buf.freeze())
    })();
    (file, res)
}

impl http_body::Body for StaticBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        match &mut this.kind {
            Kind::Empty => Poll::Ready(None),
            Kind::Full(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            Kind::File(fs) => {
                loop {
                    if let Some(h) = &mut fs.pending {
                        let (file, res) = match Pin::new(h).poll(cx) {
                            Poll::Pending => return Poll::Pending,
                            Poll::Ready(Ok(v)) => v,
                            Poll::Ready(Err(e)) => {
                                fs.pending = None;
                                fs.remaining = 0;
                                return Poll::Ready(Some(Err(io::Error::other(e))));
                            }
                        };
                        fs.pending = None;
                        return match res {
                            Ok(bytes) => {
                                fs.file = Some(file);
                                fs.remaining -= bytes.len() as u64;
                                Poll::Ready(Some(Ok(Frame::data(bytes))))
                            }
                            Err(e) => {
                                fs.remaining = 0;
                                Poll::Ready(Some(Err(e)))
                            }
                        };
                    }
                    if fs.remaining == 0 {
                        return Poll::Ready(None);
                    }
                    let Some(file) = fs.file.take() else {
                        return Poll::Ready(None);
                    };
                    let want = usize::try_from(fs.remaining)
                        .unwrap_or(usize::MAX)
                        .min(fs.chunk);
                    let offset = fs.offset.take();
                    match tokio::runtime::Handle::try_current() {
                        Ok(rt) => {
                            fs.pending =
                                Some(rt.spawn_blocking(move || read_chunk(file, offset, want)));
                        }
                        Err(_) => {
                            // No runtime: read in place.
                            let (file, res) = read_chunk(file, offset, want);
                            fs.file = Some(file);
                            return match res {
                                Ok(bytes) => {
                                    fs.remaining -= bytes.len() as u64;
                                    Poll::Ready(Some(Ok(Frame::data(bytes))))
                                }
                                Err(e) => {
                                    fs.remaining = 0;
                                    Poll::Ready(Some(Err(e)))
                                }
                            };
                        }
                    }
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.kind {
            Kind::Empty => true,
            Kind::Full(b) => b.is_none(),
            Kind::File(fs) => fs.remaining == 0 && fs.pending.is_none(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.kind {
            Kind::Empty => SizeHint::with_exact(0),
            Kind::Full(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            Kind::File(fs) => SizeHint::with_exact(fs.remaining),
        }
    }
}

use std::future::Future as _;

impl<B> tower::Service<Request<B>> for StaticFiles {
    type Response = Response<StaticBody>;
    type Error = Infallible;
    type Future = Ready<Result<Response<StaticBody>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        ready(Ok(self.respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    /// `tmp/{secured.txt, root/..., root2/secret.txt}` like Paste's `urlparser_data`.
    fn fixture() -> tempfile::TempDir {
        let tmp = tempfile::tempdir().unwrap();
        let t = tmp.path();
        std::fs::write(t.join("secured.txt"), "secret").unwrap();
        std::fs::create_dir_all(t.join("root/dir with spaces")).unwrap();
        std::fs::create_dir_all(t.join("root/sub")).unwrap();
        std::fs::create_dir_all(t.join("root2")).unwrap();
        std::fs::write(t.join("root2/secret.txt"), "sibling").unwrap();
        std::fs::write(t.join("root/index.txt"), "index1").unwrap();
        std::fs::write(t.join("root/test 3.html"), "test 3").unwrap();
        std::fs::write(t.join("root/dir with spaces/test 4.html"), "test 4").unwrap();
        std::fs::write(t.join("root/sub/index.html"), "<p>sub</p>").unwrap();
        let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(t.join("root/big.bin"), big).unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink("../secured.txt", t.join("root/link_out")).unwrap();
            std::os::unix::fs::symlink("../root2/secret.txt", t.join("root/link_sibling")).unwrap();
            std::os::unix::fs::symlink("index.txt", t.join("root/link_in")).unwrap();
        }
        tmp
    }

    fn get(uri: &str) -> Request<()> {
        Request::builder()
            .uri(uri)
            .header("host", "example.org")
            .body(())
            .unwrap()
    }

    async fn body(res: Response<StaticBody>) -> Vec<u8> {
        res.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    fn status(s: &StaticFiles, uri: &str) -> StatusCode {
        s.respond(&get(uri)).status()
    }

    #[tokio::test]
    async fn case_38_paste_static_parser() {
        let tmp = fixture();
        let s = StaticFiles::new(tmp.path().join("root")).unwrap();

        // '' → 301 to URL + '/'
        let mut req = get("/");
        req.headers_mut()
            .insert("host", HeaderValue::from_static("example.org"));
        mapproxy_serve_core::environ::set_path_info(&mut req, "").unwrap();
        assert_eq!(mapproxy_serve_core::environ::path_info(&req), "");
        req.extensions_mut()
            .insert(mapproxy_serve_core::environ::MountPath("/static".into()));
        let res = s.respond(&req);
        assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(res.headers()["location"], "http://example.org/static/");

        assert_eq!(status(&s, "/"), StatusCode::NOT_FOUND, "no index.html");
        let res = s.respond(&get("/index.txt"));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(body(res).await, b"index1");
        assert_eq!(status(&s, "/index.txt/foo"), StatusCode::NOT_FOUND);
        assert_eq!(status(&s, "/index.txt/"), StatusCode::NOT_FOUND);
        assert_eq!(body(s.respond(&get("/test%203.html"))).await, b"test 3");
        assert_eq!(
            body(s.respond(&get("/dir%20with%20spaces/test%204.html"))).await,
            b"test 4"
        );
        for bad in [
            "/../secured.txt",
            "/%2e%2e/secured.txt",
            "/%2E%2E/secured.txt",
            "/..%2fsecured.txt",
            "/%2e%2e%2fsecured.txt",
            "/dir%20with%20spaces/../../secured.txt",
            "/dir%20with%20spaces/%2e%2e/%2e%2e/secured.txt",
            "/dir%20with%20spaces/../secured.txt",
            "/../root2/secret.txt",
            "/%2e%2e/root2/secret.txt",
            "/index.txt%00",
            "/link_out",
            "/link_sibling",
        ] {
            assert_eq!(status(&s, bad), StatusCode::NOT_FOUND, "{bad}");
        }
        assert_eq!(status(&s, "/dir%20with%20spaces/"), StatusCode::NOT_FOUND);
        // Symlinks inside the root are followed.
        assert_eq!(body(s.respond(&get("/link_in"))).await, b"index1");
        // Dot segments and doubled slashes are harmless.
        assert_eq!(
            body(s.respond(&get("/./sub//index.html"))).await,
            b"<p>sub</p>"
        );
    }

    #[tokio::test]
    async fn directories_and_index() {
        let tmp = fixture();
        let s = StaticFiles::new(tmp.path().join("root")).unwrap();
        let res = s.respond(&get("/sub?x=1"));
        assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
        assert_eq!(res.headers()["location"], "http://example.org/sub/?x=1");
        let res = s.respond(&get("/dir%20with%20spaces"));
        assert_eq!(
            res.headers()["location"],
            "http://example.org/dir%20with%20spaces/"
        );
        let res = s.respond(&get("/sub/"));
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-type"], "text/html");
        assert_eq!(body(res).await, b"<p>sub</p>");
        std::fs::write(tmp.path().join("root/index.html"), "top").unwrap();
        assert_eq!(body(s.respond(&get("/"))).await, b"top");
        assert_eq!(status(&s, "/missing.txt"), StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn headers_conditionals_head_and_methods() {
        let tmp = fixture();
        let s = StaticFiles::builder(tmp.path().join("root"))
            .cache_max_age(600)
            .build()
            .unwrap();
        let res = s.respond(&get("/index.txt"));
        let h = res.headers().clone();
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["content-length"], "6");
        assert_eq!(h["cache-control"], "max-age=600");
        assert_eq!(h["accept-ranges"], "bytes");
        let etag = h["etag"].clone();
        let lm = h["last-modified"].clone();
        assert!(etag.to_str().unwrap().starts_with('"'));

        let mut req = get("/index.txt");
        req.headers_mut().insert("if-none-match", etag.clone());
        let res = s.respond(&req);
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(res.headers()["etag"], etag);
        assert!(body(res).await.is_empty());

        let mut req = get("/index.txt");
        req.headers_mut().insert(
            "if-none-match",
            HeaderValue::from_static("\"other\", W/\"x\""),
        );
        assert_eq!(s.respond(&req).status(), StatusCode::OK);

        let mut req = get("/index.txt");
        req.headers_mut().insert("if-modified-since", lm.clone());
        assert_eq!(s.respond(&req).status(), StatusCode::NOT_MODIFIED);
        let mut req = get("/index.txt");
        req.headers_mut().insert(
            "if-modified-since",
            HeaderValue::from_static("Thu, 01 Jan 1970 00:00:00 GMT"),
        );
        assert_eq!(s.respond(&req).status(), StatusCode::OK);

        let mut req = get("/index.txt");
        *req.method_mut() = Method::HEAD;
        let res = s.respond(&req);
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["content-length"], "6");
        assert!(body(res).await.is_empty());

        let mut req = get("/index.txt");
        *req.method_mut() = Method::POST;
        let res = s.respond(&req);
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(res.headers()["allow"], "GET, HEAD");
    }

    fn ranged(s: &StaticFiles, uri: &str, range: &str) -> Response<StaticBody> {
        let mut req = get(uri);
        req.headers_mut()
            .insert("range", HeaderValue::from_str(range).unwrap());
        s.respond(&req)
    }

    #[tokio::test]
    async fn ranges_small_and_large() {
        let tmp = fixture();
        let s = StaticFiles::new(tmp.path().join("root")).unwrap();
        let res = ranged(&s, "/index.txt", "bytes=1-3");
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(res.headers()["content-range"], "bytes 1-3/6");
        assert_eq!(res.headers()["content-length"], "3");
        assert_eq!(body(res).await, b"nde");
        assert_eq!(body(ranged(&s, "/index.txt", "bytes=-2")).await, b"x1");
        assert_eq!(body(ranged(&s, "/index.txt", "bytes=4-")).await, b"x1");
        assert_eq!(body(ranged(&s, "/index.txt", "bytes=4-100")).await, b"x1");
        let res = ranged(&s, "/index.txt", "bytes=6-");
        assert_eq!(res.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(res.headers()["content-range"], "bytes */6");
        // Several ranges or nonsense: the whole file.
        assert_eq!(
            ranged(&s, "/index.txt", "bytes=0-1,3-4").status(),
            StatusCode::OK
        );
        assert_eq!(
            ranged(&s, "/index.txt", "bytes=x-y").status(),
            StatusCode::OK
        );
        // If-Range with another validator: the whole file.
        let mut req = get("/index.txt");
        req.headers_mut()
            .insert("range", HeaderValue::from_static("bytes=0-0"));
        req.headers_mut()
            .insert("if-range", HeaderValue::from_static("\"old\""));
        assert_eq!(s.respond(&req).status(), StatusCode::OK);

        // A file above the cache limit is streamed in chunks; whole and a range across
        // chunk borders.
        let s = StaticFiles::builder(tmp.path().join("root"))
            .max_cached_file_size(100_000)
            .chunk_size(4096)
            .build()
            .unwrap();
        let expect: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let res = s.respond(&get("/big.bin"));
        assert_eq!(format!("{:?}", res.body()), "StaticBody { kind: \"file\" }");
        assert_eq!(res.headers()["content-length"], "1000000");
        assert_eq!(res.headers()["content-type"], "application/octet-stream");
        assert_eq!(body(res).await, expect);
        let res = ranged(&s, "/big.bin", "bytes=262000-600000");
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body(res).await, &expect[262000..=600000]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mid_size_files_stream_first_then_come_from_memory() {
        let tmp = fixture();
        let s = StaticFiles::new(tmp.path().join("root")).unwrap();
        let expect: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let res = s.respond(&get("/big.bin"));
        assert_eq!(format!("{:?}", res.body()), "StaticBody { kind: \"file\" }");
        assert_eq!(body(res).await, expect);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let res = s.respond(&get("/big.bin"));
            if format!("{:?}", res.body()) == "StaticBody { kind: \"full\" }" {
                assert_eq!(body(res).await, expect);
                break;
            }
            assert!(Instant::now() < deadline, "never loaded into memory");
            tokio::task::yield_now().await;
        }
        let res = ranged(&s, "/big.bin", "bytes=10-19");
        assert_eq!(body(res).await, &expect[10..20]);
    }

    #[tokio::test]
    async fn cache_sees_changes_after_revalidation() {
        let tmp = fixture();
        let s = StaticFiles::builder(tmp.path().join("root"))
            .revalidate_after(Duration::ZERO)
            .build()
            .unwrap();
        assert_eq!(body(s.respond(&get("/index.txt"))).await, b"index1");
        std::fs::write(tmp.path().join("root/index.txt"), "changed!").unwrap();
        assert_eq!(body(s.respond(&get("/index.txt"))).await, b"changed!");
        std::fs::remove_file(tmp.path().join("root/index.txt")).unwrap();
        assert_eq!(status(&s, "/index.txt"), StatusCode::NOT_FOUND);
        #[cfg(unix)]
        {
            // A cached file replaced by a symlink out of the root is not served.
            std::fs::write(tmp.path().join("root/x.txt"), "x").unwrap();
            assert_eq!(status(&s, "/x.txt"), StatusCode::OK);
            std::fs::remove_file(tmp.path().join("root/x.txt")).unwrap();
            std::os::unix::fs::symlink("../secured.txt", tmp.path().join("root/x.txt")).unwrap();
            assert_eq!(status(&s, "/x.txt"), StatusCode::NOT_FOUND);
        }
    }

    #[test]
    fn root_must_be_an_existing_directory() {
        let tmp = fixture();
        assert!(StaticFiles::new(tmp.path().join("nope")).is_err());
        assert!(StaticFiles::new(tmp.path().join("secured.txt")).is_err());
    }

    #[test]
    fn normalize_keys() {
        assert_eq!(normalize("/").unwrap(), b"/");
        assert_eq!(normalize("/a//./b").unwrap(), b"a/b");
        assert_eq!(normalize("/a/b/").unwrap(), b"a/b/");
        assert_eq!(normalize("/a%2Fb").unwrap(), b"a/b");
        assert!(normalize("/a/%2e%2e/b").is_none());
        assert!(normalize("/a%00").is_none());
    }
}
