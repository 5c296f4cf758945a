//! Static files from a document root (`egg:Paste#static`), built for speed and safety.
//!
//! [`StaticFiles`] answers `GET` and `HEAD` for the files under one directory:
//!
//! - the request URI path is `PATH_INFO` (the part below the mount path); it is decoded by
//!   the core crate's [`path::decode`](mapproxy_serve_core::path::decode) (percent-decoded
//!   before it is split), and any `..` segment or NUL byte gives 404. The decoded path is joined
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

mod body;
mod cache;
mod factory;
mod headers;
mod open_file;

pub use body::StaticBody;
pub use factory::build;

use std::convert::Infallible;
use std::future::{ready, Ready};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, Request, Response, StatusCode};

use cache::{Entry, FileCache, Lookup};
use headers::{header_value, not_modified, range, RangeReq};
use open_file::{open_checked, request_key};

const LOG: &str = "mapproxy_serve.static";
/// Read size for streamed (large) files.
const CHUNK: usize = 256 * 1024;

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
                chunk_size: self.chunk_size,
                cache: FileCache::new(
                    self.cache_budget,
                    self.max_cached_file_size,
                    self.revalidate_after,
                ),
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
    chunk_size: usize,
    cache: FileCache,
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
        let Some(key) = request_key(path_info) else {
            return not_found();
        };
        let entry = match self.entry(&key) {
            Ok(Lookup::Entry(e)) => e,
            Ok(Lookup::AddSlash) => return add_slash(req),
            Ok(Lookup::NotFound) => return not_found(),
            Err(e) => {
                log::debug!(target: LOG, "{}: {e}", path_info);
                return not_found();
            }
        };
        self.answer(req, &key, &entry, head)
    }

    /// The response for the file of `e` (looked up under `key`): 304, 206, 416 or 200.
    fn answer<B>(
        &self,
        req: &Request<B>,
        key: &[u8],
        e: &Entry,
        head: bool,
    ) -> Response<StaticBody> {
        let fh = &e.headers;
        let mut headers = HeaderMap::with_capacity(8);
        headers.insert(header::ETAG, fh.etag.clone());
        headers.insert(header::LAST_MODIFIED, fh.last_modified.clone());
        if let Some(cc) = &self.inner.cache_control {
            headers.insert(header::CACHE_CONTROL, cc.clone());
        }
        if not_modified(req.headers(), fh) {
            let mut res = Response::new(StaticBody::empty());
            *res.status_mut() = StatusCode::NOT_MODIFIED;
            *res.headers_mut() = headers;
            return res;
        }
        headers.insert(header::CONTENT_TYPE, fh.content_type.clone());
        headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        let len = e.stamp.len;
        let mut status = StatusCode::OK;
        let (start, count) = match range(req.headers(), fh, len) {
            RangeReq::Whole => {
                headers.insert(header::CONTENT_LENGTH, fh.content_length.clone());
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
                    self.inner.cache.forget(key);
                    return not_found();
                }
            }
        };
        let mut res = Response::new(body);
        *res.status_mut() = status;
        *res.headers_mut() = headers;
        res
    }
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
    use std::time::Instant;

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
}
