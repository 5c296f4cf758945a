//! Shared by the tiles*.rs tests: a real loopback HTTP upstream (hyper on 127.0.0.1:0) that
//! draws PNGs and counts requests, an in-memory TileCache, and a logger that keeps the
//! `mapproxy.source.request` lines.
#![allow(dead_code)]

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use http_body_util::Full;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use mapproxy_serve_mapproxy::cache::{CachedTile, TileCache};
use mapproxy_serve_mapproxy::grid::TileCoord;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A PNG whose pixel (x, y) is (x & 255, y & 255, (x >> 8) << 4 | (y >> 8), 255).
pub fn coord_png(w: u32, h: u32) -> Bytes {
    let img = image::RgbaImage::from_fn(w, h, |x, y| {
        image::Rgba([
            (x & 255) as u8,
            (y & 255) as u8,
            (((x >> 8) << 4) | (y >> 8)) as u8,
            255,
        ])
    });
    let mut out = io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode PNG");
    Bytes::from(out.into_inner())
}

/// What the upstream answers.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Mode {
    /// PNGs: `width`×`height` from the query (WMS), else 256×256 (tiles).
    Png,
    /// This status with a short text body.
    Status(u16),
    /// 200 with a text/xml body (a WMS exception).
    Xml,
}

pub struct Upstream {
    pub addr: SocketAddr,
    pub count: AtomicUsize,
    /// Connections accepted.
    pub connections: AtomicUsize,
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Path and query of each request, in order.
    pub requests: Mutex<Vec<String>>,
    pub mode: Mutex<Mode>,
    /// When set, each request takes a permit first (the test adds them).
    pub gate: Mutex<Option<Arc<Semaphore>>>,
    /// The headers of each request, in order.
    pub headers: Mutex<Vec<http::HeaderMap>>,
}

impl Upstream {
    pub async fn start(mode: Mode) -> Arc<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let up = Arc::new(Upstream {
            addr: listener.local_addr().expect("addr"),
            count: AtomicUsize::new(0),
            connections: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
            mode: Mutex::new(mode),
            gate: Mutex::new(None),
            headers: Mutex::new(Vec::new()),
        });
        let server = up.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                server.connections.fetch_add(1, Ordering::SeqCst);
                let up = server.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let up = up.clone();
                        async move { Ok::<_, Infallible>(up.answer(req).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        up
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }

    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    pub fn set_mode(&self, mode: Mode) {
        *self.mode.lock().expect("lock") = mode;
    }

    async fn answer(&self, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
        let pq = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default();
        self.requests.lock().expect("lock").push(pq.clone());
        self.headers
            .lock()
            .expect("lock")
            .push(req.headers().clone());
        self.count.fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let gate = self.gate.lock().expect("lock").clone();
        if let Some(g) = gate {
            g.acquire().await.expect("gate").forget();
        }
        let mode = *self.mode.lock().expect("lock");
        let resp = match mode {
            Mode::Png => {
                let q: HashMap<String, String> = req
                    .uri()
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .filter_map(|kv| kv.split_once('='))
                    .map(|(k, v)| (k.to_ascii_lowercase(), v.to_owned()))
                    .collect();
                let w = q.get("width").and_then(|v| v.parse().ok()).unwrap_or(256);
                let h = q.get("height").and_then(|v| v.parse().ok()).unwrap_or(256);
                Response::builder()
                    .header("content-type", "image/png")
                    .body(Full::new(coord_png(w, h)))
            }
            Mode::Status(s) => Response::builder()
                .status(s)
                .header("content-type", "text/plain")
                .body(Full::new(Bytes::from_static(b"nope"))),
            Mode::Xml => Response::builder()
                .header("content-type", "application/vnd.ogc.se_xml")
                .body(Full::new(Bytes::from_static(b"<ServiceExceptionReport/>"))),
        };
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        resp.expect("response")
    }
}

/// A listener that accepts connections and never answers.
pub async fn blackhole() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let mut kept = Vec::new();
        while let Ok((s, _)) = listener.accept().await {
            kept.push(s);
        }
    });
    addr
}

/// An address where nothing listens.
pub async fn refused() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    listener.local_addr().expect("addr")
}

/// An in-memory TileCache that counts loads and stores.
#[derive(Default)]
pub struct MemCache {
    pub tiles: Mutex<HashMap<TileCoord, CachedTile>>,
    pub loads: AtomicUsize,
    pub stores: AtomicUsize,
}

impl MemCache {
    pub fn len(&self) -> usize {
        self.tiles.lock().expect("lock").len()
    }
    pub fn get(&self, c: TileCoord) -> Option<CachedTile> {
        self.tiles.lock().expect("lock").get(&c).cloned()
    }
}

impl TileCache for MemCache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(self.get(coord))
    }
    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        self.stores.fetch_add(1, Ordering::SeqCst);
        self.tiles.lock().expect("lock").insert(
            coord,
            CachedTile {
                data: Bytes::copy_from_slice(data),
                mtime: SystemTime::now(),
            },
        );
        // unknown: the manager loads it again, as from a storage that cannot tell
        Ok(None)
    }
    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        self.tiles.lock().expect("lock").remove(&coord);
        Ok(())
    }
}

/// Waits until `cond` holds, failing after 10 s.
pub async fn until(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

struct Capture;

static LINES: OnceLock<Mutex<Vec<String>>> = OnceLock::new();

impl log::Log for Capture {
    fn enabled(&self, m: &log::Metadata) -> bool {
        m.target().starts_with("mapproxy.")
    }
    fn log(&self, r: &log::Record) {
        if self.enabled(r.metadata()) {
            LINES
                .get_or_init(Default::default)
                .lock()
                .expect("lock")
                .push(format!("{} {} {}", r.level(), r.target(), r.args()));
        }
    }
    fn flush(&self) {}
}

/// Installs the capturing logger (once per test binary).
pub fn capture_logs() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        static CAPTURE: Capture = Capture;
        let _ = log::set_logger(&CAPTURE);
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The captured lines that contain `needle`.
pub fn log_lines(needle: &str) -> Vec<String> {
    LINES
        .get_or_init(Default::default)
        .lock()
        .expect("lock")
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}
