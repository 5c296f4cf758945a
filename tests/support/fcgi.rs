//! Shared by the FastCGI tests: an echo app, an in-process server on a socket in a tempdir,
//! and a raw record client for what `fastcgi-client` cannot send (split params, abort,
//! GET_VALUES, multiplexing, garbage).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mapproxy_serve::app::{app_fn, full_body, text_response};
use mapproxy_serve::environ::{mount_path, public_url, remote_addr, RemoteUser};
use mapproxy_serve::server::fcgi::{Address, Bound, FcgiConnectionId, FcgiServer};
use mapproxy_serve::server::{ServeContext, SharedApp};
use mapproxy_serve::{App, Body};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};
use tokio_util::sync::CancellationToken;

/// Counters and gates the echo app shares with a test.
pub struct Probe {
    /// Response bytes the `/big` body has produced so far.
    pub produced: AtomicU64,
    /// Request bytes `/upload` has read so far.
    pub consumed: AtomicU64,
    /// `/upload` waits for this before reading.
    pub upload_gate: Notify,
    /// `/slow` waits for a permit.
    pub slow_gate: Semaphore,
    /// Set when a `/slow` request was dropped before finishing.
    pub slow_dropped: AtomicBool,
    /// `/slow` requests that have started.
    pub slow_started: AtomicU64,
}

impl Default for Probe {
    fn default() -> Self {
        Probe {
            produced: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            upload_gate: Notify::new(),
            slow_gate: Semaphore::new(0),
            slow_dropped: AtomicBool::new(false),
            slow_started: AtomicU64::new(0),
        }
    }
}

struct DropFlag(Arc<Probe>, bool);

impl Drop for DropFlag {
    fn drop(&mut self) {
        if !self.1 {
            self.0.slow_dropped.store(true, Ordering::SeqCst);
        }
    }
}

fn query_param<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The echo app.
///
/// - any path: a text body with method, mount, path, query, body length, body checksum,
///   connection id, public URL, remote address and remote user; two `Set-Cookie` headers; the status from
///   `?status=NNN`.
/// - `/big?n=BYTES`: streams `n` bytes (64 KiB chunks, made lazily, counted in `produced`).
/// - `/upload`: waits for `upload_gate`, then reads the body counting `consumed`.
/// - `/slow`: waits for a `slow_gate` permit.
/// - `/panic`: panics in its future; `/panic-in-call`: panics in the app's `call`, before
///   there is a future.
pub fn echo_app(probe: Arc<Probe>) -> App {
    app_fn(move |req: Request<Body>| {
        if req.uri().path() == "/panic-in-call" {
            panic!("boom in call");
        }
        let probe = probe.clone();
        async move {
            let path = req.uri().path().to_string();
            let query = req.uri().query().unwrap_or("").to_string();
            match path.as_str() {
                "/panic" => panic!("boom"),
                "/big" => {
                    let n: u64 = query_param(&query, "n")
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    return big_response(probe, n);
                }
                "/slow" => {
                    probe.slow_started.fetch_add(1, Ordering::SeqCst);
                    let mut flag = DropFlag(probe.clone(), false);
                    let permit = probe.slow_gate.acquire().await;
                    drop(permit);
                    flag.1 = true;
                }
                "/upload" => probe.upload_gate.notified().await,
                _ => {}
            }
            let method = req.method().to_string();
            let mount = mount_path(&req).to_string();
            let public = public_url(&req);
            let remote = remote_addr(&req).map(|a| a.to_string()).unwrap_or_default();
            let user = req
                .extensions()
                .get::<RemoteUser>()
                .map(|u| u.0.clone())
                .unwrap_or_default();
            let conn = req
                .extensions()
                .get::<FcgiConnectionId>()
                .map(|c| c.0)
                .unwrap_or(0);
            let ctype = req
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let xtest = req
                .headers()
                .get("x-test")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_string();
            let mut body = req.into_body();
            let mut len = 0u64;
            let mut sum = 0u64;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else {
                    return text_response(StatusCode::BAD_REQUEST, "text/plain", "body error\n");
                };
                if let Ok(d) = frame.into_data() {
                    len += d.len() as u64;
                    sum = d
                        .iter()
                        .fold(sum, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)));
                    probe.consumed.fetch_add(d.len() as u64, Ordering::SeqCst);
                }
            }
            let status = query_param(&query, "status")
                .and_then(|s| s.parse::<u16>().ok())
                .and_then(|s| StatusCode::from_u16(s).ok())
                .unwrap_or(StatusCode::OK);
            let text = format!(
                "method={method}\nmount={mount}\npath={path}\nquery={query}\nbody_len={len}\n\
                 body_sum={sum}\nconn={conn}\nscheme={}\nhost={}\nremote={remote}\n\
                 content_type={ctype}\nx_test={xtest}\nuser={user}\n",
                public.scheme, public.host
            );
            Response::builder()
                .status(status)
                .header("content-type", "text/plain")
                .header("set-cookie", "a=1; Path=/")
                .header("set-cookie", "b=2; Path=/")
                .body(full_body(text))
                .unwrap_or_else(|_| Response::new(full_body("")))
        }
    })
}

/// The checksum the echo app reports for `data`.
pub fn checksum(data: &[u8]) -> u64 {
    data.iter()
        .fold(0u64, |s, b| s.wrapping_mul(31).wrapping_add(u64::from(*b)))
}

/// Byte `i` of a `/big` body.
pub fn big_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn big_response(probe: Arc<Probe>, n: u64) -> Response<Body> {
    let stream = futures_util::stream::unfold(0u64, move |pos| {
        let probe = probe.clone();
        async move {
            if pos >= n {
                return None;
            }
            let len = (n - pos).min(64 * 1024);
            let chunk: Vec<u8> = (pos..pos + len).map(big_byte).collect();
            probe.produced.fetch_add(len, Ordering::SeqCst);
            Some((
                Ok::<_, std::convert::Infallible>(http_body::Frame::data(Bytes::from(chunk))),
                pos + len,
            ))
        }
    });
    Response::new(mapproxy_serve::app::box_body(
        http_body_util::StreamBody::new(stream),
    ))
}

/// A server running in-process; shut down (and awaited) on drop of the test's runtime.
pub struct Running {
    pub shutdown: CancellationToken,
    pub done: tokio::task::JoinHandle<()>,
    pub socket: PathBuf,
    pub probe: Arc<Probe>,
    pub _dir: tempfile::TempDir,
}

/// Start the echo app on a unix socket in a fresh tempdir.
pub async fn start_unix(configure: impl FnOnce(FcgiServer) -> FcgiServer) -> Running {
    start_unix_app(configure, echo_app).await
}

/// Start the app `make` builds (given the probe) on a unix socket in a fresh tempdir.
pub async fn start_unix_app(
    configure: impl FnOnce(FcgiServer) -> FcgiServer,
    make: impl FnOnce(Arc<Probe>) -> App,
) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    // Web servers that drop privileges (Apache's www-data) must reach the socket.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = dir.path().join("fcgi.sock");
    let server = configure(FcgiServer::new(Address::Unix(socket.clone())));
    let bound = server.bind(&[]).await.expect("bind");
    let probe = Arc::new(Probe::default());
    let (shutdown, done) = run(bound, make(probe.clone()));
    Running {
        shutdown,
        done,
        socket,
        probe,
        _dir: dir,
    }
}

/// Run a bound server with `app`.
pub fn run(bound: Bound, app: App) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let shutdown = CancellationToken::new();
    let ctx = ServeContext {
        app: SharedApp::new(app),
        shutdown: shutdown.clone(),
        bind: vec![],
        debug: true,
    };
    let done = tokio::spawn(async move {
        bound.run(ctx).await.expect("serve");
    });
    (shutdown, done)
}

/// Poll `cond` until it holds or `limit` passes.
pub async fn wait_until(limit: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    cond()
}

// ---- raw records -------------------------------------------------------------------------

pub const BEGIN_REQUEST: u8 = 1;
pub const ABORT_REQUEST: u8 = 2;
pub const END_REQUEST: u8 = 3;
pub const PARAMS: u8 = 4;
pub const STDIN: u8 = 5;
pub const STDOUT: u8 = 6;
pub const GET_VALUES: u8 = 9;
pub const GET_VALUES_RESULT: u8 = 10;
pub const UNKNOWN_TYPE: u8 = 11;

/// One record, header included.
pub fn rec(kind: u8, id: u16, content: &[u8]) -> Vec<u8> {
    assert!(content.len() <= 0xffff);
    let len = (content.len() as u16).to_be_bytes();
    let idb = id.to_be_bytes();
    let mut v = vec![1, kind, idb[0], idb[1], len[0], len[1], 0, 0];
    v.extend_from_slice(content);
    v
}

/// BEGIN_REQUEST, responder role.
pub fn begin(id: u16, keep_conn: bool) -> Vec<u8> {
    rec(
        BEGIN_REQUEST,
        id,
        &[0, 1, u8::from(keep_conn), 0, 0, 0, 0, 0],
    )
}

/// Name-value pairs in wire form.
pub fn pairs(kv: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (k, v) in kv {
        for len in [k.len(), v.len()] {
            if len < 128 {
                out.push(len as u8);
            } else {
                out.extend_from_slice(&((len as u32) | 0x8000_0000).to_be_bytes());
            }
        }
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

/// PARAMS records carrying `kv`, `split` bytes each, then the empty PARAMS record.
pub fn params(id: u16, kv: &[(&str, &str)], split: usize) -> Vec<u8> {
    let data = pairs(kv);
    let mut out = Vec::new();
    for c in data.chunks(split.clamp(1, 0xffff)) {
        out.extend(rec(PARAMS, id, c));
    }
    out.extend(rec(PARAMS, id, b""));
    out
}

/// A parsed record.
#[derive(Debug)]
pub struct Rec {
    pub kind: u8,
    pub id: u16,
    pub content: Vec<u8>,
}

/// Read one record; `None` at EOF.
pub async fn read_rec<R: tokio::io::AsyncRead + Unpin>(r: &mut R) -> Option<Rec> {
    let mut h = [0u8; 8];
    r.read_exact(&mut h).await.ok()?;
    assert_eq!(h[0], 1, "version");
    let len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    let mut content = vec![0u8; len + usize::from(h[6])];
    r.read_exact(&mut content).await.ok()?;
    content.truncate(len);
    Some(Rec {
        kind: h[1],
        id: u16::from_be_bytes([h[2], h[3]]),
        content,
    })
}

/// A complete response of one request.
#[derive(Debug, Default)]
pub struct RawResponse {
    pub stdout: Vec<u8>,
    pub app_status: u32,
    pub protocol_status: u8,
    pub stdout_records: usize,
    pub max_record: usize,
}

impl RawResponse {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

/// Read records until END_REQUEST for `id`; records of other ids go to `others`.
pub async fn read_response<R: tokio::io::AsyncRead + Unpin>(
    r: &mut R,
    id: u16,
) -> Option<RawResponse> {
    let mut res = RawResponse::default();
    loop {
        let rec = read_rec(r).await?;
        assert_eq!(rec.id, id, "unexpected record {rec:?}");
        match rec.kind {
            STDOUT => {
                res.stdout_records += 1;
                res.max_record = res.max_record.max(rec.content.len());
                res.stdout.extend_from_slice(&rec.content);
            }
            END_REQUEST => {
                res.app_status = u32::from_be_bytes([
                    rec.content[0],
                    rec.content[1],
                    rec.content[2],
                    rec.content[3],
                ]);
                res.protocol_status = rec.content[4];
                return Some(res);
            }
            other => panic!("unexpected record type {other}"),
        }
    }
}

/// Send a whole GET-like request on `w`.
pub async fn send_request<W: tokio::io::AsyncWrite + Unpin>(
    w: &mut W,
    id: u16,
    keep_conn: bool,
    kv: &[(&str, &str)],
    body: &[u8],
) {
    let mut out = begin(id, keep_conn);
    out.extend(params(id, kv, 0xffff));
    for c in body.chunks(0xffff) {
        out.extend(rec(STDIN, id, c));
    }
    out.extend(rec(STDIN, id, b""));
    w.write_all(&out).await.expect("write");
}

/// CGI variables as nginx would send them for `GET /mapproxy{path}?{query}`.
pub fn cgi(path: &str, query: &str) -> Vec<(String, String)> {
    vec![
        ("REQUEST_METHOD".into(), "GET".into()),
        ("SCRIPT_NAME".into(), "/mapproxy".into()),
        ("PATH_INFO".into(), path.into()),
        ("QUERY_STRING".into(), query.into()),
        ("SERVER_NAME".into(), "example.org".into()),
        ("SERVER_PORT".into(), "80".into()),
        ("SERVER_PROTOCOL".into(), "HTTP/1.1".into()),
        ("REMOTE_ADDR".into(), "192.0.2.7".into()),
        ("REMOTE_PORT".into(), "4711".into()),
    ]
}

/// Borrow a `cgi()` list as `(&str, &str)` pairs.
pub fn kv(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

/// The value of `key=` in an echo body.
pub fn field<'a>(text: &'a str, key: &str) -> &'a str {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .unwrap_or_else(|| panic!("no {key} in {text:?}"))
}

/// True if `p` exists.
pub fn exists(p: &Path) -> bool {
    std::fs::symlink_metadata(p).is_ok()
}
