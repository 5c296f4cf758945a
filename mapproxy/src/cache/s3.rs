//! MapProxy's S3 cache (`mapproxy/cache/s3.py`): one object per tile in a bucket, named as
//! MapProxy names it, `<base path>/<tile path of the directory layout>` with the leading `/`
//! removed (base path: `directory`, plus `/<grid name>` with `include_grid_name`, else
//! `<cache name>/<grid name>`; layout `tms` unless set), so that a bucket MapProxy filled is used
//! as it is, and the other way round.
//!
//! Requests are signed with rusty-s3 (a sans-IO SigV4 signer: it makes presigned URLs and
//! leaves the HTTP to us) and sent by the project's pooled client (`client/`): the same
//! timeouts, TLS settings and keep-alive as every other upstream. The
//! cache trait is blocking: a call hands its request to a small runtime of its own and waits
//! ([`TileCache::blocks`] is true, so the tile manager runs it on the blocking pool). Hits
//! stay there too: S3 has no [`TileCache::quick_load`] of its own (the default answers
//! `WouldBlock`). A hit is an HTTP round trip to a remote server, which costs far more than the
//! hand-off; hits as futures on the caller's runtime are not done (issue 14 sets S3 no target).
//!
//! A tile's time is the object's `Last-Modified` (seconds, as MapProxy reads it).

use std::io;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Empty, Full, Limited};
use mapproxy_serve_client::{ClientConfig, HttpClient};
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};

use super::path::{tile_relpath, DirectoryLayout};
use super::{CachedTile, TileCache};
use crate::grid::TileCoord;

pub mod credentials;

/// A presigned URL is valid this long (it is used at once).
const SIGNED_FOR: Duration = Duration::from_secs(300);

/// Tries of one request (boto3's legacy retry mode: 5).
const ATTEMPTS: u32 = 5;

/// The largest tile read (a larger object is an error, not an allocation).
const MAX_TILE: usize = 64 << 20;

/// Where the bucket is and how to reach it (MapProxy's options).
#[derive(Debug, Clone, PartialEq)]
pub struct S3Options {
    /// `bucket_name`.
    pub bucket_name: String,
    /// The key prefix (MapProxy's `base_path`), as MapProxy derives it.
    pub base_path: String,
    /// `directory_layout`; MapProxy's default for S3 is `tms`.
    pub layout: DirectoryLayout,
    /// The tiles' file extension (`png`, `jpeg`).
    pub file_ext: String,
    /// `profile_name`: the profile of the AWS shared credentials and config files.
    pub profile_name: Option<String>,
    /// `region_name`; else `AWS_DEFAULT_REGION`, the profile's `region`, `us-east-1`.
    pub region_name: Option<String>,
    /// `endpoint_url` (any S3-compatible server); else `AWS_ENDPOINT_URL_S3`,
    /// `AWS_ENDPOINT_URL`, AWS's endpoint of the region.
    pub endpoint_url: Option<String>,
    /// `access_control_list`: the canned ACL of stored tiles (`public-read`, ...).
    pub access_control_list: Option<String>,
    /// `use_http_get`: tiles are read with unsigned GETs (a public bucket).
    pub use_http_get: bool,
}

/// `type: s3`.
pub struct S3Cache {
    bucket: Bucket,
    credentials: Option<Credentials>,
    client: HttpClient,
    base_path: String,
    layout: DirectoryLayout,
    file_ext: String,
    content_type: Option<String>,
    acl: Option<String>,
    use_http_get: bool,
}

impl std::fmt::Debug for S3Cache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Cache")
            .field("bucket", &self.bucket.name())
            .field("url", &self.bucket.base_url().as_str())
            .field("base_path", &self.base_path)
            .finish_non_exhaustive()
    }
}

/// The runtime the S3 requests run on: the callers are plain threads (the blocking pool, a
/// seeding worker, a test) that wait for the answer.
fn runtime() -> io::Result<&'static tokio::runtime::Runtime> {
    static RT: OnceLock<Result<tokio::runtime::Runtime, String>> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("s3-io")
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
    })
    .as_ref()
    .map_err(|e| io::Error::other(format!("s3: cannot start its runtime: {e}")))
}

/// Runs `fut` on the S3 runtime and waits for it (from any thread, without nesting runtimes).
fn run<T: Send + 'static>(
    fut: impl std::future::Future<Output = io::Result<T>> + Send + 'static,
) -> io::Result<T> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    runtime()?.spawn(async move {
        let _ = tx.send(fut.await);
    });
    rx.recv()
        .unwrap_or_else(|_| Err(io::Error::other("s3: the request task failed")))
}

/// The S3 caches' client: the project's client with a pool of its own, whose connections
/// live on the S3 runtime (a pool shared with the sources would mix connections of two
/// runtimes).
fn client() -> io::Result<HttpClient> {
    static CLIENT: OnceLock<Result<HttpClient, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            HttpClient::new(&ClientConfig {
                request_timeout: Some(Duration::from_secs(60)),
                ..ClientConfig::default()
            })
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| io::Error::other(format!("s3: HTTP client: {e}")))
}

/// A response: status, `Last-Modified`, body.
struct Answer {
    status: StatusCode,
    last_modified: Option<SystemTime>,
    body: Bytes,
}

/// The message of an S3 error answer: its XML `Code` and `Message`, else the status.
fn s3_error(what: &str, key: &str, a: &Answer) -> io::Error {
    let text = String::from_utf8_lossy(&a.body);
    let detail = roxmltree::Document::parse(&text).ok().and_then(|doc| {
        let get = |name: &str| {
            doc.descendants()
                .find(|n| n.has_tag_name(name))
                .and_then(|n| n.text())
                .map(str::to_string)
        };
        let code = get("Code")?;
        Some(match get("Message") {
            Some(m) => format!("{code}: {m}"),
            None => code,
        })
    });
    io::Error::other(format!(
        "s3: {what} '{key}': {}{}",
        a.status,
        detail.map(|d| format!(" ({d})")).unwrap_or_default()
    ))
}

impl S3Cache {
    /// A cache on the bucket of `opts`, with credentials as boto3 finds them (see
    /// [`credentials`]). Nothing is sent yet: [`check_bucket`](S3Cache::check_bucket) does.
    pub fn new(opts: &S3Options) -> io::Result<S3Cache> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
        let found = credentials::resolve(opts.profile_name.as_deref(), &env)
            .map_err(|e| io::Error::other(format!("s3: {e}")))?;
        let region = opts
            .region_name
            .clone()
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .or(found.region)
            .unwrap_or_else(|| "us-east-1".into());
        let custom = opts
            .endpoint_url
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let name = opts.bucket_name.clone();
        let (endpoint, style) = match custom {
            // S3-compatible servers (MinIO, Ceph, moto, a server on an IP address): path style
            Some(u) => (u, UrlStyle::Path),
            None => {
                // AWS: virtual-hosted style where the name can be a host label over TLS
                let dns_ok = !name.is_empty()
                    && name
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                (
                    format!("https://s3.{region}.amazonaws.com"),
                    if dns_ok {
                        UrlStyle::VirtualHost
                    } else {
                        UrlStyle::Path
                    },
                )
            }
        };
        let url = endpoint
            .parse()
            .map_err(|e| io::Error::other(format!("s3: endpoint_url '{endpoint}': {e}")))?;
        let bucket = Bucket::new(url, style, name.clone(), region).map_err(|e| {
            io::Error::other(format!(
                "s3: endpoint_url '{endpoint}' (bucket '{name}'): {e}"
            ))
        })?;
        let client = client()?;
        Ok(S3Cache {
            bucket,
            credentials: found.credentials,
            client,
            base_path: opts.base_path.clone(),
            layout: opts.layout,
            file_ext: opts.file_ext.clone(),
            // MapProxy sets the content type of png and jpeg tiles only
            content_type: matches!(opts.file_ext.as_str(), "png" | "jpeg")
                .then(|| format!("image/{}", opts.file_ext)),
            acl: opts.access_control_list.clone(),
            use_http_get: opts.use_http_get,
        })
    }

    /// MapProxy's check when it makes the cache (`head_bucket`): a missing bucket or refused
    /// credentials are configuration errors, with MapProxy's messages.
    pub fn check_bucket(&self) -> io::Result<()> {
        let url = self
            .bucket
            .head_bucket(self.credentials.as_ref())
            .sign(SIGNED_FOR);
        let a = self.send(Method::HEAD, url.as_str(), &[], None)?;
        match a.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(io::Error::other(format!(
                "No such bucket: {}",
                self.bucket.name()
            ))),
            StatusCode::FORBIDDEN => Err(io::Error::other(
                "Access denied. Check your credentials".to_string(),
            )),
            _ => Err(s3_error("bucket", self.bucket.name(), &a)),
        }
    }

    /// MapProxy's key of a tile (`tile_key`): the layout's path under the base path, as
    /// `os.path.join` joins them, without leading `/`.
    pub fn key(&self, coord: TileCoord) -> String {
        let rel = tile_relpath(self.layout, coord, &self.file_ext);
        let full = if self.base_path.is_empty() {
            rel
        } else if self.base_path.ends_with('/') {
            format!("{}{rel}", self.base_path)
        } else {
            format!("{}/{rel}", self.base_path)
        };
        full.trim_start_matches('/').to_string()
    }

    /// Sends one request and reads its answer (at most [`MAX_TILE`] bytes of body). As
    /// boto3 (MapProxy's client) does, a connection error or a 500, 502, 503 or 504 answer is
    /// tried again, up to [`ATTEMPTS`] times in all, after 50, 100, 200, 400 ms.
    fn send(
        &self,
        method: Method,
        url: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> io::Result<Answer> {
        let body = body.map(Bytes::copy_from_slice);
        let mut attempt = 0;
        loop {
            let mut req = Request::builder().method(method.clone()).uri(url);
            for (k, v) in headers {
                req = req.header(*k, *v);
            }
            let req = match &body {
                Some(b) => req
                    .header(http::header::CONTENT_LENGTH, b.len())
                    .body(Full::new(b.clone()).boxed_unsync()),
                None => req.body(Empty::<Bytes>::new().map_err(|e| match e {}).boxed_unsync()),
            }
            .map_err(|e| io::Error::other(format!("s3: request: {e}")))?;
            let client = self.client.clone();
            let result = run(async move {
                let res = client
                    .request(req)
                    .await
                    .map_err(|e| io::Error::other(format!("s3: {e}")))?;
                let status = res.status();
                let last_modified = res
                    .headers()
                    .get(http::header::LAST_MODIFIED)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| httpdate::parse_http_date(v).ok());
                let body = Limited::new(res.into_body(), MAX_TILE)
                    .collect()
                    .await
                    .map_err(|e| io::Error::other(format!("s3: reading the answer: {e}")))?
                    .to_bytes();
                Ok(Answer {
                    status,
                    last_modified,
                    body,
                })
            });
            let retry = match &result {
                Ok(a) => matches!(a.status.as_u16(), 500 | 502 | 503 | 504),
                Err(_) => true,
            };
            attempt += 1;
            if !retry || attempt >= ATTEMPTS {
                return result;
            }
            std::thread::sleep(Duration::from_millis(50 << (attempt - 1)));
        }
    }

    /// The GET or HEAD of a tile; `None` when it is not stored.
    fn fetch(&self, coord: TileCoord, method: Method) -> io::Result<Option<Answer>> {
        let key = self.key(coord);
        let url = if self.use_http_get {
            // unsigned, as MapProxy's urllib GET of a public bucket
            self.bucket.object_url(&key)
        } else if method == Method::HEAD {
            self.bucket
                .head_object(self.credentials.as_ref(), &key)
                .sign(SIGNED_FOR)
        } else {
            self.bucket
                .get_object(self.credentials.as_ref(), &key)
                .sign(SIGNED_FOR)
        };
        let a = self.send(method, url.as_str(), &[], None)?;
        match a.status {
            s if s.is_success() => Ok(Some(a)),
            StatusCode::NOT_FOUND => Ok(None),
            // a public bucket that does not list answers 403 for a missing object (MapProxy's
            // use_http_get reads it so)
            StatusCode::FORBIDDEN if self.use_http_get => Ok(None),
            _ => Err(s3_error("tile", &key, &a)),
        }
    }
}

impl TileCache for S3Cache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        Ok(self.fetch(coord, Method::GET)?.map(|a| CachedTile {
            data: a.body,
            mtime: a.last_modified.unwrap_or(SystemTime::UNIX_EPOCH),
        }))
    }

    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        Ok(self.fetch(coord, Method::HEAD)?.is_some())
    }

    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        let key = self.key(coord);
        let mut action = self.bucket.put_object(self.credentials.as_ref(), &key);
        let mut headers = Vec::new();
        if let Some(ct) = &self.content_type {
            action.headers_mut().insert("content-type", ct.clone());
            headers.push(("content-type", ct.as_str()));
        }
        if let Some(acl) = &self.acl {
            action.headers_mut().insert("x-amz-acl", acl.clone());
            headers.push(("x-amz-acl", acl.as_str()));
        }
        let url = action.sign(SIGNED_FOR);
        let a = self.send(Method::PUT, url.as_str(), &headers, Some(data))?;
        if !a.status.is_success() {
            return Err(s3_error("storing", &key, &a));
        }
        // S3 answers a PUT without Last-Modified: the time is read back when needed
        Ok(None)
    }

    fn blocks(&self) -> bool {
        true
    }

    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        let key = self.key(coord);
        let url = self
            .bucket
            .delete_object(self.credentials.as_ref(), &key)
            .sign(SIGNED_FOR);
        let a = self.send(Method::DELETE, url.as_str(), &[], None)?;
        match a.status {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Ok(()),
            _ => Err(s3_error("removing", &key, &a)),
        }
    }
}
