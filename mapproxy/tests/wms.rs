//! MapProxy's WMS system tests (`test/system/test_wms.py`, `test_wms_version.py`), ported:
//! the app is served on 127.0.0.1:0 and asked over real HTTP; its upstream is a real
//! loopback WMS whose pixels are a function of their map coordinates (red: longitude, green:
//! latitude, in steps of 1/16°, repeating every 16°), so every GetMap is checked for
//! geolocation by sampling pixels, in the cache's SRS and reprojected (EPSG:4326, UTM 32N).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mapproxy_serve_mapproxy::srs::Srs;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const R: f64 = 6378137.0;

/// The colour of a WGS84 position: 1/16° steps, repeating every 16°.
fn color_of(lon: f64, lat: f64) -> [u8; 4] {
    let c = |v: f64| ((v * 16.0).floor().rem_euclid(256.0)) as u8;
    [c(lon + 180.0), c(lat + 90.0), 128, 255]
}

/// The upstream WMS's image for a GetMap in EPSG:4326 or 3857 (its own math, no library).
fn upstream_image(srs: &str, bbox: [f64; 4], w: u32, h: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(w, h, |i, j| {
        let x = bbox[0] + (f64::from(i) + 0.5) * (bbox[2] - bbox[0]) / f64::from(w);
        let y = bbox[3] - (f64::from(j) + 0.5) * (bbox[3] - bbox[1]) / f64::from(h);
        let (lon, lat) = if srs.ends_with("4326") {
            (x, y)
        } else {
            (
                (x / R).to_degrees(),
                (2.0 * (y / R).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees(),
            )
        };
        image::Rgba(color_of(lon, lat))
    })
}

fn png(img: &image::RgbaImage) -> Bytes {
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    Bytes::from(out.into_inner())
}

/// The loopback WMS's paletted PNGs (as MapServer's `mode=8bit` or a tile server's PNG8
/// send them): `img`'s pixels mapped to a palette by their colour, written by the png crate.
/// `pal`: 256 entries; `pal4`: 4 (2 bits a pixel); `pal_trns`: 256 entries, entry 0 fully
/// transparent (a `tRNS` of one 0) where `holes` has holes; `pal16a`: 16 entries (4 bits),
/// the first 8 with alphas 0, 36, ..., 252 (a `tRNS` of alphas).
fn paletted(img: &image::RgbaImage, layer: &str) -> Bytes {
    let (entries, trns): (usize, Vec<u8>) = match layer {
        "pal4" => (4, vec![]),
        "pal_trns" => (256, vec![0]),
        "pal16a" => (16, (0..8).map(|i| i * 36).collect()),
        _ => (256, vec![]),
    };
    let palette: Vec<u8> = (0..entries)
        .flat_map(|i| {
            let i = i as u8;
            match entries {
                4 => [i * 80, 255 - i * 60, 100],
                16 => [i * 16, 200 - i * 8, i * 5 + 30],
                _ => [i & 0xf0, (i & 0x0f) << 4, 128 ^ i],
            }
        })
        .collect();
    let indices: Vec<u8> = img
        .enumerate_pixels()
        .map(|(i, j, p)| match entries {
            4 => ((p.0[0] >> 7) << 1) | (p.0[1] >> 7),
            16 => ((p.0[0] >> 6) << 2) | (p.0[1] >> 6),
            _ if layer == "pal_trns" && (i / 50 + j / 50) % 3 == 0 => 0,
            _ => (p.0[0] & 0xf0) | (p.0[1] >> 4),
        })
        .collect();
    let bits = match entries {
        4 => 2,
        16 => 4,
        _ => 8,
    };
    let w = img.width() as usize;
    let mut packed = Vec::new();
    for row in indices.chunks(w) {
        for group in row.chunks(8 / bits) {
            let mut b = 0u8;
            for (k, &v) in group.iter().enumerate() {
                b |= v << (8 - bits * (k + 1));
            }
            packed.push(b);
        }
    }
    let mut out = Vec::new();
    let mut enc = png::Encoder::new(&mut out, img.width(), img.height());
    enc.set_color(png::ColorType::Indexed);
    enc.set_depth(match bits {
        2 => png::BitDepth::Two,
        4 => png::BitDepth::Four,
        _ => png::BitDepth::Eight,
    });
    enc.set_palette(palette);
    if !trns.is_empty() {
        enc.set_trns(trns);
    }
    let mut writer = enc.write_header().expect("header");
    writer.write_image_data(&packed).expect("encode");
    writer.finish().expect("finish");
    Bytes::from(out)
}

/// What the loopback WMS saw: the queries, and the most GetMaps it answered at once.
#[derive(Default)]
struct UpstreamLog {
    queries: Mutex<Vec<String>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

/// The loopback WMS: answers GetMap for EPSG:4326/3857/900913 (1.1.1 `SRS`), records queries.
/// A GetMap with `slow=1` is answered after 30 ms (a slow peer, so that concurrent requests
/// overlap and their number shows).
async fn upstream() -> (SocketAddr, Arc<UpstreamLog>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let log = Arc::new(UpstreamLog::default());
    let log2 = log.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let log = log2.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let log = log.clone();
                    async move {
                        let q = req.uri().query().unwrap_or("").to_string();
                        let path = req.uri().path().to_string();
                        // an ArcGIS REST export or identify: logged with its path
                        let arcgis = ["/export", "/exportImage", "/identify"]
                            .iter()
                            .any(|e| path.ends_with(e));
                        log.queries.lock().expect("log").push(if arcgis {
                            format!("{path}?{q}")
                        } else {
                            q.clone()
                        });
                        let now = log.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        log.max_in_flight.fetch_max(now, Ordering::SeqCst);
                        if q.contains("slow=1") {
                            tokio::time::sleep(std::time::Duration::from_millis(30)).await;
                        }
                        let get = |k: &str| {
                            q.split('&')
                                .filter_map(|p| p.split_once('='))
                                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                                .map(|(_, v)| v.replace("%3A", ":").replace("%2C", ","))
                        };
                        let bbox: Vec<f64> = get("bbox")
                            .unwrap_or_default()
                            .split(',')
                            .filter_map(|v| v.parse().ok())
                            .collect();
                        let mut w: u32 = get("width").and_then(|v| v.parse().ok()).unwrap_or(0);
                        let mut h: u32 = get("height").and_then(|v| v.parse().ok()).unwrap_or(0);
                        let mut srs = get("srs").unwrap_or_default();
                        if arcgis {
                            // size=w,h and imageSR=code
                            let size = get("size").unwrap_or_default();
                            if let Some((a, b)) = size.split_once(',') {
                                (w, h) = (a.parse().unwrap_or(0), b.parse().unwrap_or(0));
                            }
                            srs = format!("EPSG:{}", get("imageSR").unwrap_or_default());
                        }
                        let request = get("request").unwrap_or_default();
                        let res = if path.ends_with("/identify") {
                            Response::builder()
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from(format!(
                                    "{{\"results\": [], \"geometry\": \"{}\"}}",
                                    get("geometry").unwrap_or_default()
                                ))))
                        } else if request == "GetFeatureInfo" {
                            Ok(feature_info(&get))
                        } else if request == "GetLegendGraphic" || path == "/legend.png" {
                            // legends: a solid image per upstream layer
                            let (w, h, c) = match get("layer").as_deref() {
                                Some("a") => (20, 10, [255, 0, 0, 255]),
                                Some("b") => (30, 15, [0, 255, 0, 255]),
                                _ => (25, 5, [0, 0, 255, 255]),
                            };
                            Response::builder()
                                .header("content-type", "image/png")
                                .body(Full::new(png(&image::RgbaImage::from_pixel(
                                    w,
                                    h,
                                    image::Rgba(c),
                                ))))
                        } else if bbox.len() == 4 && w > 0 && h > 0 && w * h < 5_000_000 {
                            let mut img =
                                upstream_image(&srs, [bbox[0], bbox[1], bbox[2], bbox[3]], w, h);
                            if get("layers").as_deref() == Some("holes") {
                                // a layer with transparent squares: pixel (i, j) is clear
                                // where (i / 50 + j / 50) % 3 == 0
                                for (i, j, p) in img.enumerate_pixels_mut() {
                                    if (i / 50 + j / 50) % 3 == 0 {
                                        p.0[3] = 0;
                                    }
                                }
                            }
                            // layer `rgb`: an RGB PNG (no alpha channel), else RGBA
                            let layers = get("layers").unwrap_or_default();
                            let body = if layers.starts_with("pal") {
                                paletted(&img, &layers)
                            } else if layers == "rgb" {
                                let rgb = image::DynamicImage::ImageRgba8(img).to_rgb8();
                                let mut out = std::io::Cursor::new(Vec::new());
                                rgb.write_to(&mut out, image::ImageFormat::Png)
                                    .expect("encode");
                                Bytes::from(out.into_inner())
                            } else {
                                png(&img)
                            };
                            Response::builder()
                                .header("content-type", "image/png")
                                .body(Full::new(body))
                        } else {
                            Response::builder()
                                .status(400)
                                .body(Full::new(Bytes::from_static(b"bad request")))
                        };
                        log.in_flight.fetch_sub(1, Ordering::SeqCst);
                        Ok::<_, Infallible>(res.expect("response"))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, log)
}

/// The loopback WMS's GetFeatureInfo: the queried point's longitude and latitude (from its
/// own math) and the `query_layers`, in the asked `info_format`.
fn feature_info(get: &dyn Fn(&str) -> Option<String>) -> Response<Full<Bytes>> {
    let num = |k: &str| {
        get(k)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    let v130 = get("version").as_deref() == Some("1.3.0");
    let srs = get(if v130 { "crs" } else { "srs" }).unwrap_or_default();
    let mut b: Vec<f64> = get("bbox")
        .unwrap_or_default()
        .split(',')
        .filter_map(|v| v.parse().ok())
        .collect();
    if v130 && srs.ends_with("4326") {
        b = vec![b[1], b[0], b[3], b[2]];
    }
    let (px, py) = if v130 {
        (num("i"), num("j"))
    } else {
        (num("x"), num("y"))
    };
    let x = b[0] + px * (b[2] - b[0]) / num("width");
    let y = b[3] - py * (b[3] - b[1]) / num("height");
    let (lon, lat) = if srs.ends_with("4326") {
        (x, y)
    } else {
        (
            (x / R).to_degrees(),
            (2.0 * (y / R).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees(),
        )
    };
    let layers = get("query_layers").unwrap_or_default();
    let format = get("info_format").unwrap_or_else(|| "text/plain".into());
    let body = match format.replace("%2F", "/").as_str() {
        "text/html" => {
            format!("<html><head><title>{layers}</title></head><body><p>{layers} {lon:.4} {lat:.4}</p></body></html>")
        }
        "application/vnd.ogc.gml" | "text/xml" => format!(
            "<?xml version=\"1.0\"?>\n<FeatureCollection><feature layer=\"{layers}\" lon=\"{lon:.4}\" lat=\"{lat:.4}\"/></FeatureCollection>"
        ),
        "application/json" => format!(
            r#"{{"type": "FeatureCollection", "features": [{{"layer": "{layers}", "lon": {lon:.4}, "lat": {lat:.4}}}]}}"#
        ),
        _ => format!("{layers} {lon:.4} {lat:.4}"),
    };
    Response::builder()
        .header("content-type", format.replace("%2F", "/"))
        .body(Full::new(Bytes::from(body)))
        .expect("response")
}

struct Served {
    addr: SocketAddr,
    upstream_addr: SocketAddr,
    upstream: Arc<UpstreamLog>,
    _dir: tempfile::TempDir,
}

/// The MapProxy app of `yaml` (with `UPSTREAM` replaced) served on 127.0.0.1:0.
async fn serve(yaml: &str) -> Served {
    serve_auth(yaml, None).await
}

/// [`serve`] with `auth` in every request (as a filter in front would put it).
async fn serve_auth(
    yaml: &str,
    auth: Option<mapproxy_serve_mapproxy::authorize::Authorizer>,
) -> Served {
    let (up, log) = upstream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mapproxy.yaml");
    std::fs::write(&path, yaml.replace("UPSTREAM", &up.to_string())).expect("write");
    let built = match mapproxy_serve_mapproxy::app::build(&path) {
        Ok(b) => b,
        Err(e) => panic!("builds:\n{e}"),
    };
    let app = built.app;
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let app = app.clone();
            let auth = auth.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let app = app.clone();
                    let auth = auth.clone();
                    async move {
                        let mut req = req;
                        if let Some(a) = auth {
                            req.extensions_mut().insert(a);
                        }
                        let req = req.map(|b| {
                            b.map_err(|e| -> mapproxy_serve_core::error::BoxError { Box::new(e) })
                                .boxed_unsync()
                        });
                        Ok::<_, Infallible>(app.call(req).await)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    Served {
        addr,
        upstream_addr: up,
        upstream: log,
        _dir: dir,
    }
}

struct Answer {
    status: u16,
    content_type: String,
    /// The status line and headers, as sent.
    head: String,
    body: Vec<u8>,
}

impl Answer {
    /// Whether the answer carries MapProxy's no-cache headers (`cache_headers(no_cache=True)`).
    fn no_cache(&self) -> bool {
        let h = self.head.to_ascii_lowercase();
        h.contains("\r\ncache-control: no-cache, no-store")
            && h.contains("\r\npragma: no-cache")
            && h.contains("\r\nexpires: -1")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn image(&self) -> image::RgbaImage {
        match image::load_from_memory(&self.body) {
            Ok(i) => i.to_rgba8(),
            Err(e) => panic!("not an image ({e}): {} {}", self.status, self.text()),
        }
    }
}

/// A real HTTP/1.0 GET over TCP.
async fn get(s: &Served, path: &str) -> Answer {
    get_with(s, path, "").await
}

/// [`get`] with extra header lines (each ending in `\r\n`).
async fn get_with(s: &Served, path: &str, headers: &str) -> Answer {
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.0\r\nHost: {}\r\n{headers}\r\n", s.addr);
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    let content_type = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-type")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

const YAML: &str = r#"
services:
  wms:
    srs: ['EPSG:4326', 'EPSG:3857', 'EPSG:900913', 'EPSG:32632', 'CRS:84']
    image_formats: ['image/png', 'image/jpeg', 'image/png; mode=32bit']
    md:
      title: Test WMS
      abstract: MapProxy's geolocated pixels
layers:
  - name: cached
    title: Cached 3857
    sources: [c]
  - name: direct
    title: Direct
    sources: [up]
  - name: broken
    title: Upstream down
    sources: [down]
  - title: Group
    name: group
    layers:
      - name: inner
        title: Inner
        sources: [c]
  - name: fi
    title: Queryable
    sources: [info]
  - name: fi_group
    title: Queryable group
    layers:
      - name: fi_a
        title: A
        sources: [info]
      - name: fi_b
        title: B
        sources: [fic]
globals:
  cache:
    base_dir: ./cache
  image:
    # exact colours: the geolocation check reads them (paletted output: its own test)
    paletted: false
caches:
  c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
  fic:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [info130]
sources:
  info:
    type: wms
    supported_srs: ['EPSG:4326']
    wms_opts:
      featureinfo: true
    req:
      url: http://UPSTREAM/service
      layers: a
  info130:
    type: wms
    supported_srs: ['EPSG:3857']
    wms_opts:
      featureinfo: true
      version: '1.3.0'
    req:
      url: http://UPSTREAM/service
      layers: b
  down:
    type: wms
    req:
      url: http://127.0.0.1:1/service
      layers: foo
  up:
    type: wms
    supported_srs: ['EPSG:3857', 'EPSG:4326']
    req:
      url: http://UPSTREAM/service
      layers: foo
"#;

/// Sample the image at a grid of pixels and check each against the colour of its WGS84
/// position (the output SRS's pixel centre projected with srs.rs). Returns the pixels checked.
fn check_geolocation(img: &image::RgbaImage, srs: &str, bbox: [f64; 4]) -> usize {
    let srs = Srs::get(srs).expect("srs");
    let wgs84 = Srs::get("EPSG:4326").expect("4326");
    let (w, h) = img.dimensions();
    let mut checked = 0;
    for j in (5..h - 5).step_by(23) {
        for i in (5..w - 5).step_by(23) {
            let x = bbox[0] + (f64::from(i) + 0.5) * (bbox[2] - bbox[0]) / f64::from(w);
            let y = bbox[3] - (f64::from(j) + 0.5) * (bbox[3] - bbox[1]) / f64::from(h);
            let (lon, lat) = srs.transform_to(&wgs84, (x, y));
            // skip positions next to a colour wrap (every 16°): resampling blends across it
            let near_wrap = |v: f64| {
                let r = (v * 16.0).rem_euclid(256.0);
                !(4.0..=252.0).contains(&r)
            };
            if near_wrap(lon + 180.0) || near_wrap(lat + 90.0) {
                continue;
            }
            let want = color_of(lon, lat);
            let got = img.get_pixel(i, j).0;
            let d = |a: u8, b: u8| {
                let d = (i32::from(a) - i32::from(b)).rem_euclid(256);
                d.min(256 - d)
            };
            assert!(
                d(got[0], want[0]) <= 3 && d(got[1], want[1]) <= 3,
                "pixel {i},{j} ({lon:.4}, {lat:.4}): got {got:?}, want {want:?}"
            );
            checked += 1;
        }
    }
    checked
}

fn getmap(
    version: &str,
    layers: &str,
    srs: &str,
    bbox: &str,
    w: u32,
    h: u32,
    format: &str,
) -> String {
    let srs_key = if version == "1.3.0" { "CRS" } else { "SRS" };
    format!(
        "/service?SERVICE=WMS&VERSION={version}&REQUEST=GetMap&LAYERS={layers}&STYLES=&{srs_key}={srs}&BBOX={bbox}&WIDTH={w}&HEIGHT={h}&FORMAT={format}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_111_and_130() {
    let s = serve(YAML).await;
    let a = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "application/vnd.ogc.wms_xml");
    let t = a.text();
    assert!(t.contains("<WMT_MS_Capabilities version=\"1.1.1\">"), "{t}");
    assert!(t.contains("<Title>Test WMS</Title>"));
    let url = format!("http://{}/service?", s.addr);
    assert!(t.contains(&format!("xlink:href=\"{url}\"")), "{t}");
    for name in ["cached", "direct", "group", "inner"] {
        assert!(t.contains(&format!("<Name>{name}</Name>")), "{name}");
    }
    assert!(t.contains("<SRS>EPSG:32632</SRS>"));
    // metadata as the templates write it: not escaped (a plain tempita Template)
    assert!(
        t.contains("<Abstract>MapProxy's geolocated pixels</Abstract>"),
        "{t}"
    );
    // a lon/lat bbox clipped to ±180 is MapProxy's int -180/180 (limit_llbbox)
    assert!(
        t.contains(
            "<Title>Direct</Title>\n      <LatLonBoundingBox minx=\"-180\" miny=\"-89.999999\" maxx=\"180\" maxy=\"89.999999\" />"
        ),
        "{t}"
    );
    // the direct layer's extent is WGS84: east/north in 1.1.1
    assert!(
        t.contains(
            r#"<BoundingBox SRS="EPSG:4326" minx="-180" miny="-90" maxx="180" maxy="90" />"#
        ),
        "{t}"
    );
    assert!(t.contains(r#"<BoundingBox SRS="EPSG:3857" minx="-20037508.342789244""#));

    // 1.3.0 is the default; lat/lon order for EPSG:4326
    let a = get(&s, "/wms?SERVICE=WMS&REQUEST=GetCapabilities").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.content_type, "text/xml; charset=utf-8");
    let t = a.text();
    assert!(t.contains("version=\"1.3.0\""));
    assert!(
        t.contains(&format!("xlink:href=\"http://{}/wms?\"", s.addr)),
        "{t}"
    );
    assert!(
        t.contains(
            r#"<BoundingBox CRS="EPSG:4326" minx="-90" miny="-180" maxx="90" maxy="180" />"#
        ),
        "{t}"
    );
    assert!(t.contains(r#"<BoundingBox CRS="EPSG:3857" minx="-20037508.342789244""#));
    assert!(t.contains("<CRS>CRS:84</CRS>"));
    assert!(t.contains("\n    <MaxWidth>4000</MaxWidth>"), "{t}");
    assert!(t.contains("<westBoundLongitude>-180</westBoundLongitude>"));
    assert!(t.contains("<Get><OnlineResource xlink:href="), "{t}");
    // extra PATH_INFO does not leak into the online resource (MapProxy #1184)
    let t = get(&s, "/service/foo/bar?SERVICE=WMS&REQUEST=GetCapabilities")
        .await
        .text();
    assert!(t.contains(&format!("xlink:href=\"http://{}/service?\"", s.addr)));
    // 1.0.0 and 1.2.0 negotiate to 1.0.0 (text/xml) and 1.1.1
    let a = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.2.0",
    )
    .await;
    assert!(a.text().contains("<WMT_MS_Capabilities version=\"1.1.1\">"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceptions_as_mapproxy() {
    let s = serve(YAML).await;
    let ok = getmap(
        "1.1.1",
        "cached",
        "EPSG:3857",
        "0,0,1000000,1000000",
        256,
        256,
        "image/png",
    );
    // missing SERVICE
    let a = get(&s, "/service?REQUEST=GetCapabilities").await;
    assert_eq!(a.status, 400);
    assert!(a.text().contains("MissingParameterValue"));
    let cases: &[(String, &str, &str)] = &[
        (
            ok.replace("LAYERS=cached", "LAYERS=nope"),
            "LayerNotDefined",
            "unknown layer: nope",
        ),
        (
            ok.replace("EPSG:3857", "EPSG:31467"),
            "InvalidSRS",
            "unsupported srs: EPSG:31467",
        ),
        (
            ok.replace("image/png", "image/tiff"),
            "InvalidFormat",
            "unsupported image format: image/tiff",
        ),
        (
            ok.replace("STYLES=", "STYLES=fancy"),
            "StyleNotDefined",
            "unsupported styles: fancy",
        ),
        (
            ok.replace("WIDTH=256", "WIDTH=5000")
                .replace("HEIGHT=256", "HEIGHT=5000"),
            "",
            "image size too large",
        ),
        (
            ok.replace("0,0,1000000,1000000", "0,0,x,1"),
            "",
            "invalid bbox 0,0,x,1",
        ),
        (
            ok.replace("0,0,1000000,1000000", "10,0,0,1"),
            "",
            "invalid bbox 10,0,0,1",
        ),
        (
            ok.replace("WIDTH=256", "WIDTH=0"),
            "InvalidParameterValue",
            "invalid image size",
        ),
        (
            ok.replace("&BBOX=0,0,1000000,1000000", ""),
            "",
            "missing parameters [&#x27;bbox&#x27;]",
        ),
        (
            ok.replace("GetMap", "GetFoo"),
            "",
            "unknown WMS request type &#x27;getfoo&#x27;",
        ),
    ];
    for (url, code, msg) in cases {
        let a = get(&s, url).await;
        assert_eq!(a.status, 500, "{url}");
        assert_eq!(a.content_type, "application/vnd.ogc.se_xml", "{url}");
        let t = a.text();
        assert!(
            t.contains("<ServiceExceptionReport version=\"1.1.1\">"),
            "{t}"
        );
        assert!(t.contains(msg), "{url}: {t}");
        if !code.is_empty() {
            assert!(t.contains(&format!("code=\"{code}\"")), "{t}");
        }
    }
    // FORMAT as written: `png` is not `image/png` (MapProxy)
    let a = get(&s, &ok.replace("FORMAT=image/png", "FORMAT=png")).await;
    assert!(a.text().contains("unsupported image format: png"));
    // WIDTH=256.0 is 256, as MapProxy's int(float())
    let a = get(&s, &ok.replace("WIDTH=256", "WIDTH=256.0")).await;
    assert_eq!((a.status, a.image().width()), (200, 256));
    // 1.0.0: WMTVER, the WMTException document, text/xml without a charset
    let a = get(&s, "/service?SERVICE=WMS&REQUEST=GetMap&VERSION=1.0.0").await;
    assert_eq!((a.status, a.content_type.as_str()), (500, "text/xml"));
    assert!(a.text().contains("<WMTException version=\"1.0.0\">\nmissing parameters [&#x27;wmtver&#x27;, &#x27;layers&#x27;"), "{}", a.text());
    // a source down: MapProxy's "Could not get any sources"; with another layer rendered:
    // the image, not cacheable (the broken layer first: a WMS source without `transparent`
    // is opaque and would hide the layers asked before it)
    let a = get(&s, &ok.replace("LAYERS=cached", "LAYERS=broken")).await;
    assert_eq!(a.status, 500);
    assert!(
        a.text()
            .contains("Could not get any sources:\nNo response from URL"),
        "{}",
        a.text()
    );
    let a = get(&s, &ok.replace("LAYERS=cached", "LAYERS=broken,cached")).await;
    assert_eq!(a.status, 200, "{}", a.text());

    // 1.3.0: text/xml in the ogc namespace, InvalidCRS
    let url = getmap(
        "1.3.0",
        "cached",
        "EPSG:31467",
        "0,0,1,1",
        256,
        256,
        "image/png",
    );
    let a = get(&s, &url).await;
    assert_eq!(a.status, 500);
    assert_eq!(a.content_type, "text/xml; charset=utf-8");
    let t = a.text();
    assert!(
        t.contains("xmlns=\"http://www.opengis.net/ogc\"") && t.contains("code=\"InvalidCRS\""),
        "{t}"
    );
    // in image and blank: 200 and an image of the request's size
    let bad = ok.replace("LAYERS=cached", "LAYERS=nope");
    let a = get(
        &s,
        &format!("{bad}&EXCEPTIONS=application/vnd.ogc.se_inimage"),
    )
    .await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    let img = a.image();
    assert_eq!(img.dimensions(), (256, 256));
    assert!(img.pixels().any(|p| p.0[0] < 100), "the message is drawn");
    let a = get(
        &s,
        &format!("{bad}&EXCEPTIONS=application/vnd.ogc.se_blank&BGCOLOR=0xff0000"),
    )
    .await;
    assert_eq!(a.status, 200);
    assert!(a.image().pixels().all(|p| p.0 == [255, 0, 0, 255]));
    // max_output_pixels is always XML
    let big = ok
        .replace("WIDTH=256", "WIDTH=5000")
        .replace("HEIGHT=256", "HEIGHT=5000");
    let a = get(
        &s,
        &format!("{big}&EXCEPTIONS=application/vnd.ogc.se_inimage"),
    )
    .await;
    assert_eq!(a.status, 500);
    assert!(a.text().contains("image size too large"));
}

/// MapProxy's reading of repeated and odd parameters (`RequestParams`: most keys joined with
/// `,`, BBOX/WIDTH/HEIGHT/VERSION/REQUEST the first value), 1.3.0's CRS, sizes and bboxes
/// MapProxy lets through, and errors as images for GetFeatureInfo and GetLegendGraphic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parameters_read_as_mapproxy() {
    let s = serve(YAML).await;
    let ok = getmap(
        "1.1.1",
        "cached",
        "EPSG:3857",
        "0,0,1000000,1000000",
        256,
        256,
        "image/png",
    );
    let xml_cases: &[(String, &str, &str)] = &[
        (
            format!("{ok}&LAYERS=nope"),
            "LayerNotDefined",
            "unknown layer: nope<",
        ),
        (
            ok.replace("LAYERS=cached", "LAYERS="),
            "LayerNotDefined",
            "unknown layer: <",
        ),
        (
            format!("{ok}&FORMAT=image/jpeg"),
            "InvalidFormat",
            "unsupported image format: image/png,image/jpeg<",
        ),
        (
            format!("{ok}&SRS=EPSG:4326"),
            "InvalidSRS",
            "unsupported srs: EPSG:3857,EPSG:4326<",
        ),
        (
            format!("{ok}&STYLES=foo"),
            "StyleNotDefined",
            "unsupported styles: ,foo<",
        ),
        (
            ok.replace("WIDTH=256", "WIDTH=99999999999999999999"),
            "",
            ">image size too large<",
        ),
        (
            ok.replace("WIDTH=256", "WIDTH=4294967297"),
            "",
            ">image size too large<",
        ),
    ];
    for (url, code, msg) in xml_cases {
        let a = get(&s, url).await;
        assert_eq!(a.status, 500, "{url}");
        assert_eq!(a.content_type, "application/vnd.ogc.se_xml", "{url}");
        assert!(a.no_cache(), "{url}");
        let t = a.text();
        assert!(t.contains(msg), "{url}: {t}");
        match *code {
            "" => assert!(!t.contains("code="), "{t}"),
            c => assert!(t.contains(&format!("code=\"{c}\"")), "{t}"),
        }
    }
    // WIDTH, HEIGHT and BBOX: the first value
    let a = get(&s, &format!("{ok}&WIDTH=10&BBOX=0,0,1,1")).await;
    assert_eq!((a.status, a.image().width()), (200, 256));

    // 1.3.0 needs CRS (SRS does not stand in); 9.9.9 negotiates to 1.3.0; no VERSION is
    // 1.3.0 with VERSION missing
    let srs130 = ok.replace("VERSION=1.1.1", "VERSION=1.3.0");
    for (url, msg) in [
        (srs130.clone(), "missing parameters [&#x27;crs&#x27;]"),
        (
            ok.replace("VERSION=1.1.1", "VERSION=9.9.9"),
            "missing parameters [&#x27;crs&#x27;]",
        ),
        (
            ok.replace("VERSION=1.1.1&", ""),
            "missing parameters [&#x27;version&#x27;, &#x27;crs&#x27;]",
        ),
    ] {
        let a = get(&s, &url).await;
        assert_eq!(
            (a.status, a.content_type.as_str()),
            (500, "text/xml; charset=utf-8"),
            "{url}"
        );
        let t = a.text();
        assert!(
            t.contains(&format!("<ServiceException>{msg}</ServiceException>")),
            "{url}: {t}"
        );
    }
    // with CRS as well, SRS is ignored
    let a = get(&s, &format!("{srs130}&CRS=EPSG:3857")).await;
    assert_eq!(a.status, 200, "{}", a.text());

    // a NaN bbox passes MapProxy's checks and draws nothing: the background
    let a = get(&s, &ok.replace("0,0,1000000,1000000", "nan,nan,nan,nan")).await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    let img = a.image();
    assert_eq!(img.dimensions(), (256, 256));
    assert!(img.pixels().all(|p| p.0 == [255, 255, 255, 255]));
    // infinities stay an exception document (MapProxy: a bare internal error)
    let a = get(&s, &ok.replace("0,0,1000000,1000000", "0,0,inf,inf")).await;
    assert_eq!(a.status, 500);
    assert!(
        a.text().contains("invalid bbox 0,0,inf,inf"),
        "{}",
        a.text()
    );

    // image exceptions: no-cache, also for GetFeatureInfo and GetLegendGraphic
    let inimage = "&EXCEPTIONS=application/vnd.ogc.se_inimage";
    let a = get(&s, &format!("{ok}&LAYERS=nope{inimage}")).await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert!(a.no_cache(), "{}", a.head);
    let a = get(&s, &format!("{ok}&LAYERS=nope&EXCEPTIONS=blank")).await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert!(a.no_cache(), "{}", a.head);
    let fi = "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=nope&QUERY_LAYERS=fi&STYLES=&SRS=EPSG:3857&BBOX=0,0,1000000,1000000&WIDTH=100&HEIGHT=80&FORMAT=image/png&X=1&Y=1";
    let a = get(&s, &format!("{fi}{inimage}")).await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert!(a.no_cache(), "{}", a.head);
    let img = a.image();
    assert_eq!(img.dimensions(), (100, 80));
    assert!(img.pixels().any(|p| p.0[0] < 100), "the message is drawn");
    let a = get(&s, fi).await;
    assert_eq!(a.status, 500);
    assert!(a.text().contains("unknown layer: nope"), "{}", a.text());
    let a = get(
        &s,
        &format!("/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetLegendGraphic&LAYER=nope&FORMAT=image/png{inimage}"),
    )
    .await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert_eq!(a.image().dimensions(), (256, 256));
    // capabilities keep their XML handler
    let a = get(
        &s,
        &format!("/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetCapabilities{inimage}"),
    )
    .await;
    assert_eq!(a.content_type, "application/vnd.ogc.wms_xml");
}

/// image/gif, image/tiff and image/GeoTIFF (MapProxy's default image_formats): maps that
/// decode, GIF paletted, TIFFs with MapProxy's GeoTIFF tags for the map's bbox and SRS.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gif_tiff_and_geotiff_maps() {
    let formats = "image_formats: ['image/png', 'image/jpeg', 'image/png; mode=32bit']";
    assert!(YAML.contains(formats));
    let yaml = YAML.replace(
        formats,
        "image_formats: ['image/png', 'image/gif', 'image/tiff', 'image/GeoTIFF']",
    );
    let s = serve(&yaml).await;
    let url = |fmt: &str| {
        getmap(
            "1.1.1",
            "cached",
            "EPSG:3857",
            "0,0,1000000,500000",
            100,
            50,
            fmt,
        )
    };
    let a = get(&s, &url("image/gif")).await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/gif"));
    assert!(a.body.starts_with(b"GIF87a"), "{}", a.text());
    assert_eq!(a.image().dimensions(), (100, 50));
    // the tag values of a little-endian TIFF's IFD
    fn tag(b: &[u8], want: u16) -> Option<Vec<u8>> {
        let u16_at = |i: usize| u16::from_le_bytes([b[i], b[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let ifd = u32_at(4) as usize;
        (0..usize::from(u16_at(ifd))).find_map(|i| {
            let e = ifd + 2 + 12 * i;
            (u16_at(e) == want).then(|| {
                let size = match u16_at(e + 2) {
                    3 => 2,
                    4 => 4,
                    _ => 8,
                } * u32_at(e + 4) as usize;
                let at = if size <= 4 {
                    e + 8
                } else {
                    u32_at(e + 8) as usize
                };
                b[at..at + size].to_vec()
            })
        })
    }
    let f64s = |v: Vec<u8>| -> Vec<f64> {
        v.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
            .collect()
    };
    let u16s = |v: Vec<u8>| -> Vec<u16> {
        v.chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect()
    };
    for fmt in ["image/tiff", "image/GeoTIFF"] {
        let a = get(&s, &url(fmt)).await;
        assert_eq!(
            (a.status, a.content_type.as_str()),
            (200, fmt),
            "{}",
            a.text()
        );
        assert!(a.body.starts_with(b"II*\0\x08\0\0\0"));
        assert_eq!(a.image().dimensions(), (100, 50));
        let b = &a.body;
        assert_eq!(tag(b, 259).map(u16s), Some(vec![1]), "uncompressed");
        assert_eq!(
            tag(b, 33550).map(f64s),
            Some(vec![10000.0, 10000.0, 0.0]),
            "ModelPixelScale"
        );
        assert_eq!(
            tag(b, 33922).map(f64s),
            Some(vec![0.0, 0.0, 0.0, 0.0, 500000.0, 0.0]),
            "ModelTiepoint"
        );
        assert_eq!(
            tag(b, 34735).map(u16s),
            Some(vec![
                1, 1, 0, 3, 1024, 0, 1, 1, 1025, 0, 1, 1, 3072, 0, 1, 3857
            ]),
            "GeoKeyDirectory"
        );
    }
    // 1.3.0 in EPSG:4326: the bbox in east/north order, a geographic model
    let a = get(
        &s,
        &getmap(
            "1.3.0",
            "cached",
            "EPSG:4326",
            "40,0,50,20",
            100,
            50,
            "image/GeoTIFF",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        tag(&a.body, 33922).map(f64s),
        Some(vec![0.0, 0.0, 0.0, 0.0, 50.0, 0.0])
    );
    assert_eq!(
        tag(&a.body, 34735).map(u16s).map(|k| (k[7], k[15])),
        Some((2, 4326))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn getmap_from_the_cache_same_srs_and_reprojected() {
    let s = serve(YAML).await;
    // 3857, the cache's own SRS (Europe)
    let bbox = [500_000.0, 5_500_000.0, 2_500_000.0, 7_000_000.0];
    let b = format!("{},{},{},{}", bbox[0], bbox[1], bbox[2], bbox[3]);
    let a = get(
        &s,
        &getmap("1.1.1", "cached", "EPSG:3857", &b, 512, 384, "image/png"),
    )
    .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "image/png"),
        "{}",
        a.text()
    );
    // paletted: false, opaque: RGB
    assert_eq!(a.body[25], 2, "PNG colour type");
    assert!(check_geolocation(&a.image(), "EPSG:3857", bbox) > 100);
    assert!(
        !s.upstream.queries.lock().expect("log").is_empty(),
        "tiles came from the upstream"
    );

    // 4326 from the 3857-only cache, 1.1.1 (lon/lat) and 1.3.0 (lat/lon)
    let bbox = [4.0, 45.0, 20.0, 55.0];
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "cached",
            "EPSG:4326",
            "4,45,20,55",
            512,
            320,
            "image/png%3B%20mode%3D32bit",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(check_geolocation(&a.image(), "EPSG:4326", bbox) > 100);
    let a = get(
        &s,
        &getmap(
            "1.3.0",
            "cached",
            "EPSG:4326",
            "45,4,55,20",
            512,
            320,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(check_geolocation(&a.image(), "EPSG:4326", bbox) > 100);
    // UTM 32N
    let bbox = [300_000.0, 5_000_000.0, 800_000.0, 5_800_000.0];
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "group",
            "EPSG:32632",
            "300000,5000000,800000,5800000",
            400,
            640,
            "image/jpeg",
        ),
    )
    .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "image/jpeg"),
        "{}",
        a.text()
    );
    assert!(check_geolocation(&a.image(), "EPSG:32632", bbox) > 100);
    // partly outside the grid: transparent there
    let a = get(
        &s,
        &(getmap(
            "1.1.1",
            "cached",
            "EPSG:4326",
            "-10,80,10,90",
            200,
            100,
            "image/png",
        ) + "&TRANSPARENT=true"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let img = a.image();
    assert_eq!(img.get_pixel(100, 5).0[3], 0, "north of 85.05°: nothing");
    assert_eq!(img.get_pixel(100, 90).0[3], 255);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_source_passes_through_and_reprojects() {
    let s = serve(YAML).await;
    let bbox = [5.0, 47.0, 15.0, 55.0];
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "direct",
            "EPSG:4326",
            "5,47,15,55",
            300,
            240,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    // the upstream's bytes, unchanged
    let sent = png(&upstream_image("EPSG:4326", bbox, 300, 240)).to_vec();
    assert_eq!(a.body, sent);
    // BGCOLOR does not matter for a source that is not transparent: MapProxy's LayerMerger
    // returns it as is (image/merge.py:63-71)
    let url = getmap(
        "1.1.1",
        "direct",
        "EPSG:4326",
        "5,47,15,55",
        300,
        240,
        "image/png",
    );
    let a = get(&s, &(url.clone() + "&BGCOLOR=0xff0000")).await;
    assert_eq!((a.status, &a.body), (200, &sent));
    // a transparent source (req.transparent) is merged over the background unless the map is
    // transparent: encoded again, the same pixels
    let t = serve(&YAML.replace(
        "      url: http://UPSTREAM/service\n      layers: foo\n",
        "      url: http://UPSTREAM/service\n      layers: foo\n      transparent: true\n",
    ))
    .await;
    let a = get(&t, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_ne!(a.body, sent, "drawn over the background");
    assert_eq!(a.image(), upstream_image("EPSG:4326", bbox, 300, 240));
    let a = get(&t, &(url + "&TRANSPARENT=TRUE")).await;
    assert_eq!((a.status, &a.body), (200, &sent));
    // a CRS the source does not support: asked in one it does, reprojected
    let bbox = [400_000.0, 5_200_000.0, 700_000.0, 5_600_000.0];
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "direct",
            "EPSG:32632",
            "400000,5200000,700000,5600000",
            300,
            400,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(check_geolocation(&a.image(), "EPSG:32632", bbox) > 50);
    // two layers merged: the later one on top
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "cached,direct",
            "EPSG:3857",
            "1000000,6000000,1500000,6500000",
            256,
            256,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(
        check_geolocation(
            &a.image(),
            "EPSG:3857",
            [1_000_000.0, 6_000_000.0, 1_500_000.0, 6_500_000.0]
        ) > 50
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_is_paletted_by_default() {
    let s = serve(&YAML.replace("    paletted: false\n", "")).await;
    let url = getmap(
        "1.1.1",
        "cached",
        "EPSG:3857",
        "0,0,1000000,1000000",
        128,
        128,
        "image/png",
    );
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.body[25], 3, "colour type 3 (palette)");
    // an opaque cache's map is RGB for MapProxy (its stitched tiles): TRANSPARENT=true
    // quantizes it without alpha (png_modes_as_mapproxy)
    let a = get(&s, &format!("{url}&TRANSPARENT=true")).await;
    assert_eq!(a.body[25], 3);
    assert!(!has_chunk(&a.body, b"tRNS"), "an opaque layer: no tRNS");
    // MapProxy 7 gives every PNG format 256 colours: `mode=32bit` too
    let a = get(&s, &url.replace("image/png", "image/png%3B%20mode%3D32bit")).await;
    assert_eq!(a.body[25], 3, "paletted");
}

/// Whether a PNG has a chunk of `kind`.
fn has_chunk(png: &[u8], kind: &[u8; 4]) -> bool {
    let mut at = 8;
    while let Some(head) = png.get(at..at + 8) {
        if &head[4..8] == kind {
            return true;
        }
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        at += 12 + len;
    }
    false
}

/// MapProxy encodes an image in the Pillow mode it holds it in (image/__init__.py
/// `img_to_buf`): an RGB image quantizes to a palette without `tRNS` even for a transparent
/// format. Each case as MapProxy 7 answers it (checked against `mapproxy-util
/// serve-develop` with the same configuration and an upstream answering RGB or RGBA PNGs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_modes_as_mapproxy() {
    let s = serve(
        r#"
services:
  tms:
  wms:
    srs: ['EPSG:3857']
layers:
  - name: opaque
    title: Opaque cache
    sources: [opaque]
  - name: clear
    title: Transparent cache
    sources: [clear]
  - name: rgb
    title: Transparent cache of RGB images
    sources: [rgb]
  - name: rgb_direct
    title: Transparent source of RGB images
    sources: [rgb_src]
caches:
  opaque:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
  clear:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up_t]
  rgb:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [rgb_src]
sources:
  up:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: foo}
  up_t:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: foo, transparent: true}
  rgb_src:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: rgb, transparent: true}
globals:
  cache:
    base_dir: ./cache
"#,
    )
    .await;
    let map = |layers: &str, transparent: bool| {
        format!(
            "{}&TRANSPARENT={transparent}",
            getmap(
                "1.1.1",
                layers,
                "EPSG:3857",
                "1000000,6000000,1500000,6400000",
                200,
                160,
                "image/png"
            )
        )
    };
    // (request, colour type, tRNS)
    let cases = [
        // the opaque cache's stitched tiles are RGB: no alpha even for TRANSPARENT=true
        (map("opaque", true), 3, false),
        (map("opaque", false), 3, false),
        // a transparent cache's are RGBA
        (map("clear", true), 3, true),
        (map("clear", false), 3, false),
        // merged: RGBA when transparent
        (map("opaque,clear", true), 3, true),
        // a transparent source answering RGB: its tiles are written from RGB images (no
        // tRNS), a map stitched from them is RGBA (`create_image` of the cache's options)
        ("/tms/1.0.0/rgb/EPSG3857/5/16/20.png".to_string(), 3, false),
        (map("rgb", true), 3, true),
        // its image used directly: passed through as the server sent it (RGB)
        (map("rgb_direct", true), 2, false),
        // over an opaque cache: merged, RGBA
        (map("opaque,rgb_direct", true), 3, true),
    ];
    for (url, color_type, trns) in cases {
        let a = get(&s, &url).await;
        assert_eq!(a.status, 200, "{url}: {}", a.text());
        assert_eq!(a.body[25], color_type, "{url}: colour type");
        assert_eq!(has_chunk(&a.body, b"tRNS"), trns, "{url}: tRNS");
    }
}

/// MapProxy's `concurrent_tile_creators` bounds the meta tiles one GetMap makes at once;
/// `max_tile_limit` is read from the cache (else `globals.cache`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tile_creators_and_max_tile_limit() {
    let yaml = |creators: u32| {
        format!(
            r#"
services:
  wms:
    srs: ['EPSG:3857']
layers:
  - name: one
    title: One at a time
    sources: [c1]
  - name: limited
    title: Few tiles
    sources: [c2]
globals:
  cache:
    base_dir: ./cache
    max_tile_limit: 10
caches:
  c1:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
    meta_size: [1, 1]
    meta_buffer: 0
    concurrent_tile_creators: {creators}
  c2:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
    max_tile_limit: 4
sources:
  up:
    type: wms
    req:
      url: http://UPSTREAM/service
      layers: foo
      slow: 1
"#
        )
    };
    // 3×3 tiles at level 4 (one meta tile each): one request at a time, then at most three
    let url = getmap(
        "1.1.1",
        "one",
        "EPSG:3857",
        "0,0,7514065.628545966,7514065.628545966",
        768,
        768,
        "image/png",
    );
    for creators in [1, 3] {
        let s = serve(&yaml(creators)).await;
        let a = get(&s, &url).await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(s.upstream.queries.lock().expect("log").len(), 9);
        let max = s.upstream.max_in_flight.load(Ordering::SeqCst);
        assert!(
            (1..=creators as usize).contains(&max),
            "concurrent_tile_creators {creators}: {max} upstream requests at once"
        );
    }
    // the cache's own limit (4) wins over globals' (10)
    let s = serve(&yaml(2)).await;
    let a = get(&s, &url.replace("LAYERS=one", "LAYERS=limited")).await;
    assert_eq!(a.status, 500);
    // a request error (MapBBOXError), not a source error: no "Could not get any sources"
    assert!(
        a.text().contains(
            "<ServiceException>Request too large or invalid BBOX. (too many tiles, max_tile_limit: 4, num_tiles: 9)</ServiceException>"
        ),
        "{}",
        a.text()
    );
    // as an image: the message drawn, no-cache as every error answer
    let a = get(
        &s,
        &format!(
            "{}&EXCEPTIONS=application/vnd.ogc.se_inimage",
            url.replace("LAYERS=one", "LAYERS=limited")
        ),
    )
    .await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert!(a.no_cache(), "{}", a.head);
    // a negative WIDTH reaches the cache as a negative resolution (its finest level):
    // MapProxy's "too many tiles" there too
    let a = get(
        &s,
        &url.replace("LAYERS=one", "LAYERS=limited")
            .replace("WIDTH=768", "WIDTH=-10"),
    )
    .await;
    assert_eq!(a.status, 500);
    assert!(
        a.text()
            .contains("<ServiceException>Request too large or invalid BBOX. (too many tiles, max_tile_limit: 4, num_tiles: "),
        "{}",
        a.text()
    );
    // a bbox narrower than a tenth of a pixel: no tiles between its corners, MapProxy's
    // GridError('Invalid BBOX') as a MapBBOXError (layer/cache_map_layer.py:64-65)
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "limited",
            "EPSG:3857",
            "-1e-320,0,1e-320,1e-320",
            16,
            16,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 500);
    assert!(
        a.text().contains(
            "<ServiceException>Request too large or invalid BBOX. (Invalid BBOX)</ServiceException>"
        ),
        "{}",
        a.text()
    );
    assert!(s.upstream.queries.lock().expect("log").is_empty());
}

/// The upstream GetMaps seen so far as (layers, bbox, width, height), and the log emptied.
fn take_getmaps(s: &Served) -> Vec<(String, String, String, String)> {
    let mut log = s.upstream.queries.lock().expect("log");
    let out = log
        .iter()
        .map(|q| {
            let get = |k: &str| {
                q.split('&')
                    .filter_map(|p| p.split_once('='))
                    .find(|(n, _)| n.eq_ignore_ascii_case(k))
                    .map(|(_, v)| v.replace("%2C", ","))
                    .unwrap_or_default()
            };
            (get("layers"), get("bbox"), get("width"), get("height"))
        })
        .collect();
    log.clear();
    out
}

/// The tile files below `dir` (relative paths, sorted).
fn tile_files(dir: &std::path::Path) -> Vec<String> {
    fn walk(base: &std::path::Path, d: &std::path::Path, out: &mut Vec<String>) {
        let Ok(rd) = std::fs::read_dir(d) else { return };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(base, &p, out);
            } else if let Ok(rel) = p.strip_prefix(base) {
                out.push(rel.to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// `minimize_meta_requests` (cache/tile_creator.py:48-69): several missing tiles of one
/// GetMap are made by one request for the smallest block holding them plus the buffer; a
/// single missing tile, and TMS, make the whole meta tile. The upstream requests are the ones
/// MapProxy 7 sent for the same GetMaps (run by hand against a logging upstream).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minimize_meta_requests_as_mapproxy() {
    let s = serve(
        r#"
services:
  tms:
  wms:
    srs: ['EPSG:3857']
layers:
  - name: min
    title: Minimized (globals.cache)
    sources: [cmin]
  - name: plain
    title: Not minimized
    sources: [cplain]
globals:
  cache:
    base_dir: ./cache
    minimize_meta_requests: true
  image:
    # exact colours: the tiles are compared with the upstream's pixels
    paletted: false
caches:
  cmin:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
  cplain:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
    minimize_meta_requests: false
sources:
  up:
    type: wms
    req:
      url: http://UPSTREAM/service
      layers: foo
"#,
    )
    .await;
    let q = |layers: &str, bbox: &str, w: &str, h: &str| {
        (
            layers.to_string(),
            bbox.to_string(),
            w.to_string(),
            h.to_string(),
        )
    };
    let cache = s._dir.path().join("cache");
    // 2×2 tiles of level 3 in four meta tiles: one request for the 2×2 block + 80 px
    let map1 = getmap(
        "1.1.1",
        "min",
        "EPSG:3857",
        "-2000000,-1000000,3000000,2500000",
        256,
        179,
        "image/png",
    );
    let a = get(&s, &map1).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        take_getmaps(&s),
        [q(
            "foo",
            "-6574807.424977722,-6574807.424977721,6574807.424977721,6574807.424977722",
            "672",
            "672"
        )]
    );
    // the four tiles are stored
    assert_eq!(
        tile_files(&cache.join("cmin_EPSG3857")),
        [
            "03/000/000/003/000/000/003.png",
            "03/000/000/003/000/000/004.png",
            "03/000/000/004/000/000/003.png",
            "03/000/000/004/000/000/004.png",
        ]
    );
    // each tile is its part of the block: the upstream's pixels of the tile's own bbox
    let tile_matches = |x: i64, y: i64| {
        let path = cache.join(format!(
            "cmin_EPSG3857/03/000/000/{x:03}/000/000/{y:03}.png"
        ));
        let stored = image::open(&path).expect("tile").to_rgba8();
        let size = 5_009_377.085697311;
        let minx = -20_037_508.342789244 + x as f64 * size;
        let maxy = 20_037_508.342789244 - y as f64 * size;
        let want = upstream_image(
            "EPSG:3857",
            [minx, maxy - size, minx + size, maxy],
            256,
            256,
        );
        let off = stored
            .pixels()
            .zip(want.pixels())
            .filter(|(a, b)| (0..3).any(|c| a.0[c].abs_diff(b.0[c]) > 1))
            .count();
        assert_eq!(off, 0, "tile {x},{y}: {off} pixels differ");
    };
    for (x, y) in [(3, 3), (4, 3), (3, 4), (4, 4)] {
        tile_matches(x, y);
    }
    // wider: the two missing tiles of column 5 only
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "min",
            "EPSG:3857",
            "-2000000,-1000000,8000000,2500000",
            512,
            179,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        take_getmaps(&s),
        [q(
            "foo",
            "3443946.746416902,-6574807.424977721,11584184.510675034,6574807.424977722",
            "416",
            "672"
        )]
    );
    tile_matches(5, 3);
    tile_matches(5, 4);
    // all cached: nothing asked
    let a = get(&s, &map1).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(take_getmaps(&s).is_empty());
    // one tile missing (the other is cached): its whole meta tile
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "min",
            "EPSG:3857",
            "-8000000,-4000000,-2000000,-1000000",
            307,
            154,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let meta_sw = q(
        "foo",
        "-20037508.342789244,-20037508.342789244,1565430.3392804088,1565430.3392804097",
        "1104",
        "1104",
    );
    assert_eq!(take_getmaps(&s), std::slice::from_ref(&meta_sw));
    // TMS asks one tile: its meta tile, never a minimal one
    let a = get(&s, "/tms/1.0.0/min/EPSG3857/3/2/2.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        take_getmaps(&s),
        [q(
            "foo",
            "-20037508.342789244,-20037508.342789244,-9236039.001754418,-9236039.001754414",
            "1104",
            "1104"
        )]
    );
    // the cache's `minimize_meta_requests: false` wins over globals': four meta tiles
    let a = get(&s, &map1.replace("LAYERS=min", "LAYERS=plain")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let mut got = take_getmaps(&s);
    got.sort();
    let mut want = vec![
        q(
            "foo",
            "-20037508.342789244,-1565430.3392804088,1565430.3392804088,20037508.342789244",
            "1104",
            "1104",
        ),
        q(
            "foo",
            "-1565430.3392804097,-1565430.3392804088,20037508.342789244,20037508.342789244",
            "1104",
            "1104",
        ),
        meta_sw,
        q(
            "foo",
            "-1565430.3392804097,-20037508.342789244,20037508.342789244,1565430.3392804097",
            "1104",
            "1104",
        ),
    ];
    want.sort();
    assert_eq!(got, want);
}

/// `seed_only` sources (config/configuration/source.py:296-298, 559-561): when serving, a
/// DummySource that never asks its upstream. A cache whose only source it is makes and stores
/// nothing: TMS answers MapProxy's empty tile (a transparent RGBA PNG, service/tile.py:267-276),
/// the WMS draws nothing, for a cache and a direct layer alike. Merged with another source it
/// is left out; merged only with dummies, blank tiles are stored. Seeding (the managers
/// `mapproxy-serve seed` uses) asks the real source, and the seeded tiles are then served.
/// Checked against MapProxy 7 with the same configuration and a logging upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_only_sources_serve_blank_and_seed_real() {
    let s = serve(
        r#"
services:
  tms:
  wms:
    srs: ['EPSG:3857']
layers:
  - name: so
    title: Seed only
    sources: [cso]
  - name: sod
    title: Seed only, direct
    sources: [up_so]
  - name: mix
    title: Seed only and another
    sources: [cmix]
  - name: dd
    title: Two seed only
    sources: [cdd]
globals:
  cache:
    base_dir: ./cache
caches:
  cso:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up_so]
  cmix:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up_so, up]
  cdd:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up_so, tile_so]
sources:
  up:
    type: wms
    req:
      url: http://UPSTREAM/service
      layers: foo
  up_so:
    type: wms
    seed_only: true
    req:
      url: http://UPSTREAM/service
      layers: seeded
  tile_so:
    type: tile
    seed_only: true
    url: http://UPSTREAM/tiles/%(tms_path)s.png
"#,
    )
    .await;
    let cache = s._dir.path().join("cache");
    let transparent = |img: &image::RgbaImage| img.pixels().all(|p| p.0[3] == 0);
    // TMS: the empty tile, nothing asked or stored
    let a = get(&s, "/tms/1.0.0/so/EPSG3857/3/2/2.png").await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "image/png"),
        "{}",
        a.text()
    );
    assert_eq!(a.body[25], 6, "RGBA PNG");
    let img = a.image();
    assert_eq!(img.dimensions(), (256, 256));
    assert!(transparent(&img));
    assert!(header(&a, "last-modified").is_some(), "{}", a.head);
    assert!(header(&a, "etag").is_some(), "{}", a.head);
    assert!(!cache.join("cso_EPSG3857").exists());
    // WMS: the cache layer and the direct layer draw nothing
    for layer in ["so", "sod"] {
        let a = get(
            &s,
            &(getmap(
                "1.1.1",
                layer,
                "EPSG:3857",
                "-2000000,-1000000,3000000,2500000",
                256,
                179,
                "image/png",
            ) + "&TRANSPARENT=true"),
        )
        .await;
        assert_eq!(a.status, 200, "{layer}: {}", a.text());
        assert!(transparent(&a.image()), "{layer}");
    }
    assert!(take_getmaps(&s).is_empty(), "the upstream was asked");
    assert!(!cache.join("cso_EPSG3857").exists());
    // merged with another source: only that one is asked, and its tiles are stored
    let a = get(&s, "/tms/1.0.0/mix/EPSG3857/3/2/2.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    let got = take_getmaps(&s);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, "foo");
    assert!(!transparent(&a.image()));
    assert_eq!(tile_files(&cache.join("cmix_EPSG3857")).len(), 16);
    // only dummies: a blank meta tile, stored (image/merge.py:61-62)
    let a = get(&s, "/tms/1.0.0/dd/EPSG3857/3/2/2.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(transparent(&a.image()));
    assert!(take_getmaps(&s).is_empty());
    assert_eq!(tile_files(&cache.join("cdd_EPSG3857")).len(), 16);

    // seeding builds the real source: TMS 3/2/2 is (2, 13, 4) of GLOBAL_WEBMERCATOR
    let loaded =
        mapproxy_serve_mapproxy::config::load(&s._dir.path().join("mapproxy.yaml")).expect("load");
    let managers = mapproxy_serve_mapproxy::app::cache_managers(&loaded.conf);
    let so = &managers["cso"].as_ref().expect("cso builds")[0].1;
    assert!(so
        .seed_meta_tile((2, 13, 4), None, false)
        .await
        .expect("seeded"));
    let got = take_getmaps(&s);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, "seeded");
    assert_eq!(tile_files(&cache.join("cso_EPSG3857")).len(), 16);
    // served from the cache now; a tile outside the seeded meta tile is still empty
    let a = get(&s, "/tms/1.0.0/so/EPSG3857/3/2/2.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(!transparent(&a.image()));
    let a = get(&s, "/tms/1.0.0/so/EPSG3857/3/5/2.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(transparent(&a.image()));
    assert!(take_getmaps(&s).is_empty());
}

/// Parses `NAME LON LAT` lines of the loopback's text answers.
fn text_points(t: &str) -> Vec<(String, f64, f64)> {
    t.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            Some((
                it.next()?.to_string(),
                it.next()?.parse().ok()?,
                it.next()?.parse().ok()?,
            ))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn featureinfo_forwarded_reprojected_and_merged() {
    let s = serve(YAML).await;
    let webmerc = Srs::get("EPSG:3857").expect("3857");
    let wgs84 = Srs::get("EPSG:4326").expect("4326");
    // 1.1.1 in EPSG:3857; the source supports only 4326: bbox and point transformed
    let bbox = [1_000_000.0, 6_000_000.0, 1_512_000.0, 6_512_000.0];
    let (px, py) = (100u32, 300u32);
    let point = |b: [f64; 4], w: f64, h: f64| {
        (
            b[0] + f64::from(px) * (b[2] - b[0]) / w,
            b[3] - f64::from(py) * (b[3] - b[1]) / h,
        )
    };
    let want = webmerc.transform_to(&wgs84, point(bbox, 512.0, 512.0));
    let fi = |v: &str, layers: &str, srs: &str, bbox: &str, fmt: &str| {
        let (srs_key, x, y) = if v == "1.3.0" {
            ("CRS", "I", "J")
        } else {
            ("SRS", "X", "Y")
        };
        format!(
            "/service?SERVICE=WMS&VERSION={v}&REQUEST=GetFeatureInfo&LAYERS={layers}&QUERY_LAYERS={layers}&{srs_key}={srs}&BBOX={bbox}&WIDTH=512&HEIGHT=512&{x}={px}&{y}={py}&INFO_FORMAT={fmt}"
        )
    };
    let b3857 = "1000000,6000000,1512000,6512000";
    let a = get(&s, &fi("1.1.1", "fi", "EPSG:3857", b3857, "text/plain")).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "text/plain; charset=utf-8"),
        "{}",
        a.text()
    );
    let pts = text_points(&a.text());
    assert_eq!(pts.len(), 1, "{}", a.text());
    // within one pixel of the transformed bbox (~0.01°)
    assert!(
        (pts[0].1 - want.0).abs() < 0.01 && (pts[0].2 - want.1).abs() < 0.01,
        "{pts:?} vs {want:?}"
    );
    let q = s.upstream.queries.lock().expect("log").clone();
    let fiq = q
        .iter()
        .find(|q| q.contains("GetFeatureInfo"))
        .expect("asked");
    assert!(
        fiq.contains("srs=EPSG%3A4326") && fiq.contains("query_layers=a"),
        "{fiq}"
    );

    // 1.3.0 in EPSG:4326 (lat/lon bbox, I/J) on a group: the 4326 source as asked, the 1.3.0
    // cache source in 3857 (its own i/j and crs); text documents joined
    let b4326 = [8.0, 47.0, 9.0, 48.0];
    let want = point(b4326, 512.0, 512.0);
    let a = get(
        &s,
        &fi("1.3.0", "fi_group", "EPSG:4326", "47,8,48,9", "text/plain"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    let pts = text_points(&a.text());
    assert_eq!(
        pts.iter().map(|p| p.0.as_str()).collect::<Vec<_>>(),
        ["a", "b"],
        "{}",
        a.text()
    );
    for p in &pts {
        assert!(
            (p.1 - want.0).abs() < 0.01 && (p.2 - want.1).abs() < 0.01,
            "{p:?} vs {want:?}"
        );
    }
    let q = s.upstream.queries.lock().expect("log").clone();
    assert!(
        q.iter().any(|q| q.contains("GetFeatureInfo")
            && q.contains("crs=EPSG%3A3857")
            && q.contains("&i=")),
        "{q:?}"
    );

    // JSON merged as MapProxy: the features lists concatenated
    let a = get(
        &s,
        &fi(
            "1.3.0",
            "fi_group",
            "EPSG:4326",
            "47,8,48,9",
            "application/json",
        ),
    )
    .await;
    assert_eq!(a.content_type, "application/json", "{}", a.text());
    let v: serde_json::Value = serde_json::from_str(&a.text()).expect("json");
    let features = v["features"].as_array().expect("features");
    assert_eq!(features.len(), 2, "{v}");
    assert_eq!(v["type"], "FeatureCollection");
    // XML: the root's children appended; 1.1.1 answers application/vnd.ogc.gml
    let a = get(
        &s,
        &fi(
            "1.1.1",
            "fi_group",
            "EPSG:4326",
            "8,47,9,48",
            "application/vnd.ogc.gml",
        ),
    )
    .await;
    assert_eq!(a.content_type, "application/vnd.ogc.gml", "{}", a.text());
    let t = a.text();
    assert!(t.starts_with("<FeatureCollection>"), "{t}");
    assert_eq!(t.matches("<feature ").count(), 2, "{t}");
    // 1.3.0 XML is text/xml
    let a = get(&s, &fi("1.3.0", "fi", "EPSG:4326", "47,8,48,9", "text/xml")).await;
    assert_eq!(a.content_type, "text/xml; charset=utf-8");
    // HTML: the bodies' children appended
    let a = get(
        &s,
        &fi("1.1.1", "fi_group", "EPSG:4326", "8,47,9,48", "text/html"),
    )
    .await;
    assert_eq!(a.content_type, "text/html; charset=utf-8");
    let t = a.text();
    assert!(t.starts_with("<html><head><title>a</title>"), "{t}");
    assert_eq!(t.matches("<p>").count(), 2, "{t}");
    assert_eq!(t.matches("<body>").count(), 1, "{t}");

    // not queryable, unknown layers: MapProxy's exceptions
    let a = get(&s, &fi("1.1.1", "cached", "EPSG:3857", b3857, "text/plain")).await;
    assert_eq!(a.status, 500);
    assert!(
        a.text().contains("layer cached is not queryable"),
        "{}",
        a.text()
    );
    let url = fi("1.1.1", "fi", "EPSG:3857", b3857, "text/plain")
        .replace("QUERY_LAYERS=fi", "QUERY_LAYERS=nope");
    let a = get(&s, &url).await;
    assert_eq!(a.status, 500);
    assert!(
        a.text().contains("code=\"LayerNotDefined\"") && a.text().contains("unknown layer: nope"),
        "{}",
        a.text()
    );
    // missing X: MapProxy's missing parameters
    let a = get(
        &s,
        &fi("1.1.1", "fi", "EPSG:3857", b3857, "text/plain").replace("&X=100", ""),
    )
    .await;
    assert!(
        a.text().contains("missing parameters [&#x27;x&#x27;]"),
        "{}",
        a.text()
    );

    // capabilities: queryable flags and the GetFeatureInfo formats
    let t = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await
    .text();
    assert!(
        t.contains("<Layer queryable=\"1\">\n      <Name>fi</Name>"),
        "{t}"
    );
    assert!(
        t.contains("<Layer queryable=\"1\">\n      <Name>fi_group</Name>"),
        "{t}"
    );
    assert!(t.contains("<Layer>\n      <Name>cached</Name>"), "{t}");
    assert!(t.contains("<GetFeatureInfo>\n      <Format>text/plain</Format>\n      <Format>text/html</Format>\n      <Format>application/vnd.ogc.gml</Format>"), "{t}");
    let t = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0",
    )
    .await
    .text();
    assert!(
        t.contains("<Format>text/xml</Format>\n      <DCPType>"),
        "{t}"
    );
}

/// A WMS source's `image.transparent_color` (+ tolerance) and `forward_req_params`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transparent_color_and_forward_req_params() {
    let s = serve(
        r#"
services:
  wms:
    srs: ['EPSG:4326']
    image_formats: ['image/png']
layers:
  - name: masked
    title: Masked
    sources: [masked]
globals:
  image:
    paletted: false
sources:
  masked:
    type: wms
    forward_req_params: ['Time']
    image:
      transparent_color: [128, 128, 128]
      transparent_color_tolerance: 64
    req:
      url: http://UPSTREAM/service
      layers: foo
"#,
    )
    .await;
    let url = getmap(
        "1.1.1",
        "masked",
        "EPSG:4326",
        "0,0,20,20",
        200,
        200,
        "image/png",
    ) + "&TRANSPARENT=true&time=2020-01-01&other=1";
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let img = a.image();
    let (mut clear, mut opaque) = (0, 0);
    for j in (0..200).step_by(7) {
        for i in (0..200).step_by(7) {
            let lon = (f64::from(i) + 0.5) * 0.1;
            let lat = 20.0 - (f64::from(j) + 0.5) * 0.1;
            let c = color_of(lon, lat);
            let hit = (64..=192).contains(&c[0]) && (64..=192).contains(&c[1]);
            let alpha = img.get_pixel(i, j).0[3];
            assert_eq!(alpha == 0, hit, "pixel {i},{j}: {c:?} alpha {alpha}");
            if hit {
                clear += 1;
            } else {
                opaque += 1;
            }
        }
    }
    assert!(clear > 20 && opaque > 20, "{clear} {opaque}");
    let q = s.upstream.queries.lock().expect("log").clone();
    assert!(q[0].contains("&Time=2020-01-01"), "{q:?}");
    assert!(!q[0].contains("other="), "{q:?}");
}

const LEGEND_YAML: &str = r#"
services:
  wms:
    srs: ['EPSG:4326']
    image_formats: ['image/png', 'image/jpeg']
layers:
  - name: lg
    title: Legend graphic
    sources: [lgsrc]
  - name: lgurl
    title: Static
    sources: [lgstatic]
  - name: lgfile
    title: File
    legendurl: file://legend_file.png
    sources: [lgsrc]
  - name: lggroup
    title: Group
    layers:
      - name: lg_child
        title: Child
        sources: [lgsrc]
      - name: lg_child2
        title: Child2
        sources: [lgstatic]
  - name: nolegend
    title: None
    sources: [plain]
globals:
  cache:
    base_dir: ./cache
sources:
  lgsrc:
    type: wms
    wms_opts:
      legendgraphic: true
    req:
      url: http://UPSTREAM/service
      layers: a,b
  lgstatic:
    type: wms
    wms_opts:
      legendurl: http://UPSTREAM/legend.png
    req:
      url: http://UPSTREAM/service
      layers: c
  plain:
    type: wms
    req:
      url: http://UPSTREAM/service
      layers: d
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn legendgraphic_from_sources_cached_and_stacked() {
    let s = serve(LEGEND_YAML).await;
    let lg = |layer: &str| {
        format!("/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetLegendGraphic&LAYER={layer}&FORMAT=image/png&SLD_VERSION=1.1.0")
    };
    let upstream_count = || s.upstream.queries.lock().expect("log").len();
    // a GetLegendGraphic per upstream layer, stacked: the last on top
    let a = get(&s, &lg("lg")).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "image/png"),
        "{}",
        a.text()
    );
    let img = a.image();
    assert_eq!(img.dimensions(), (30, 25));
    assert_eq!(img.get_pixel(0, 0).0, [0, 255, 0, 255], "b on top");
    assert_eq!(img.get_pixel(0, 20).0, [255, 0, 0, 255]);
    assert_eq!(img.get_pixel(25, 20).0[3], 0, "transparent beside a");
    let q = s.upstream.queries.lock().expect("log").clone();
    assert_eq!(q.len(), 2, "{q:?}");
    for l in ["a", "b"] {
        // the order MapProxy 7 sends
        let want = format!("layer={l}&format=image%2Fpng&request=GetLegendGraphic&service=WMS&sld_version=1.1.0&version=1.1.1&styles=");
        assert!(q.contains(&want), "{q:?}");
    }
    // cached as MapProxy: <base_dir>/legends/md5(url+layer... + str(scale)).png
    let up = format!("http://{}/service", q_host(&s));
    let id = format!("{up}a{up}bNone");
    let file = s
        ._dir
        .path()
        .join("cache/legends")
        .join(format!("{:x}.png", md5_hex(&id)));
    assert!(file.exists(), "{}", file.display());
    let a = get(&s, &lg("lg")).await;
    assert_eq!(a.image().dimensions(), (30, 25));
    assert_eq!(upstream_count(), 2, "from the cache");
    // the one legend of the layer, asked for as PNG: the cached file as it is (MapProxy's
    // as_buffer keeps a loaded file's bytes, image/__init__.py:240-257)
    assert_eq!(a.body, std::fs::read(&file).expect("cached legend"));
    // SCALE goes upstream (and is another cache entry)
    let a = get(&s, &format!("{}&SCALE=5000", lg("lg"))).await;
    assert_eq!(a.status, 200);
    let q = s.upstream.queries.lock().expect("log").clone();
    assert_eq!(q.len(), 4);
    assert!(q[2..].iter().all(|q| q.contains("&scale=5000.0&")), "{q:?}");
    // SCALE as Python's float() reads it: inf (also 1e400) is a scale; 0 is not sent
    // upstream (`if query.scale:`, client/wms.py:226-227)
    let a = get(&s, &format!("{}&SCALE=1e400", lg("lg"))).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let a = get(&s, &format!("{}&SCALE=0", lg("lg"))).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let q = s.upstream.queries.lock().expect("log").clone();
    assert_eq!(q.len(), 8, "{q:?}");
    assert!(q[4..6].iter().all(|q| q.contains("&scale=inf&")), "{q:?}");
    assert!(q[6..].iter().all(|q| !q.contains("scale=")), "{q:?}");
    let a = get(&s, &format!("{}&SCALE=abc", lg("lg"))).await;
    assert!(a.text().contains("invalid scale abc"), "{}", a.text());
    // a static legendurl of a source; a layer's file:// legendurl (relative to the YAML)
    let a = get(&s, &lg("lgurl")).await;
    assert_eq!(a.image().dimensions(), (25, 5));
    image::RgbaImage::from_pixel(7, 9, image::Rgba([1, 2, 3, 255]))
        .save(s._dir.path().join("legend_file.png"))
        .expect("save");
    let a = get(&s, &lg("lgfile")).await;
    assert_eq!(a.image().dimensions(), (7, 9), "{}", a.text());
    // one image from one client: stored and answered as it came (cache/legend.py:67,
    // client/wms.py:241-245), not encoded again
    assert_eq!(
        a.body,
        std::fs::read(s._dir.path().join("legend_file.png")).expect("legend file")
    );
    // a group: its children's legends stacked (MapProxy: internal error)
    let a = get(&s, &lg("lggroup")).await;
    assert_eq!(a.image().dimensions(), (30, 30), "{}", a.text());
    // JPEG on request
    let a = get(&s, &lg("lg").replace("image/png", "image/jpeg")).await;
    assert_eq!(a.content_type, "image/jpeg");

    // errors as MapProxy
    let a = get(&s, &lg("nolegend")).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (404, "application/vnd.ogc.se_xml")
    );
    assert!(
        a.text().contains("layer nolegend has no legend graphic"),
        "{}",
        a.text()
    );
    let a = get(
        &s,
        &lg("lg").replace("SLD_VERSION=1.1.0", "SLD_VERSION=1.0.0"),
    )
    .await;
    assert!(
        a.text().contains("invalid sld_version 1.0.0"),
        "{}",
        a.text()
    );
    let a = get(&s, &lg("lg").replace("&FORMAT=image/png", "")).await;
    assert!(
        a.text().contains("missing parameters [&#x27;format&#x27;]"),
        "{}",
        a.text()
    );
    let a = get(&s, &lg("nope").replace("1.1.1", "1.3.0")).await;
    assert_eq!(a.status, 500);
    assert!(
        a.text().contains("code=\"LayerNotDefined\""),
        "{}",
        a.text()
    );

    // capabilities: the GetLegendGraphic request and LegendURLs with the legends' sizes
    let t = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await
    .text();
    assert!(t.contains("<GetLegendGraphic>"), "{t}");
    assert!(t.contains("<LegendURL width=\"30\" height=\"25\">"), "{t}");
    assert!(t.contains("<LegendURL width=\"25\" height=\"5\">"), "{t}");
    assert!(
        t.contains(&format!("xlink:href=\"http://{}/service?format=image%2Fpng&amp;layer=lg&amp;sld_version=1.1.0&amp;request=GetLegendGraphic&amp;service=WMS&amp;version=1.1.1&amp;styles=\"", s.addr)),
        "{t}"
    );
    assert_eq!(
        t.matches("<LegendURL").count(),
        5,
        "lg, lgurl, lgfile, lg_child, lg_child2: {t}"
    );
    let t = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0",
    )
    .await
    .text();
    assert!(t.contains("<sld:GetLegendGraphic>"), "{t}");
}

/// `globals.http.concurrent_requests` (the default of every WMS source) takes MapProxy's
/// slot files `<lock_dir>/<md5 of the host>.lck<i>` (`SemLock`) for each GetMap; a source's
/// own `concurrent_requests: 0` overrides it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_take_mapproxys_slot_files() {
    let yaml = YAML.replace(
        "globals:\n  cache:\n    base_dir: ./cache\n",
        "globals:\n  http:\n    concurrent_requests: 2\n  cache:\n    base_dir: ./cache\n    lock_dir: ./locks\n",
    );
    assert_ne!(yaml, YAML);
    let s = serve(&yaml).await;
    let base = s
        ._dir
        .path()
        .join("locks")
        .join(format!("{:x}.lck", md5_hex(&q_host(&s))));
    let slot = |i: usize| std::path::PathBuf::from(format!("{}{i}", base.display()));
    let map = getmap(
        "1.1.1",
        "direct",
        "EPSG:4326",
        "5,47,15,55",
        30,
        20,
        "image/png",
    );
    let a = get(&s, &map).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let written: Vec<String> = (0..2)
        .filter_map(|i| std::fs::read_to_string(slot(i)).ok())
        .collect();
    assert_eq!(
        written,
        [format!(" {}\n", std::process::id())],
        "one slot used"
    );
    assert!(!slot(2).exists());

    // `concurrent_requests: 0` on the source: no slot
    let yaml = yaml.replace(
        "  up:\n    type: wms\n",
        "  up:\n    type: wms\n    concurrent_requests: 0\n",
    );
    let s = serve(&yaml).await;
    let a = get(&s, &map).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(!s._dir.path().join("locks").exists());
}

fn md5_hex(s: &str) -> impl std::fmt::LowerHex {
    use md5::Digest;
    md5::Md5::digest(s.as_bytes())
}

/// The loopback upstream's host:port.
fn q_host(s: &Served) -> String {
    s.upstream_addr.to_string()
}

/// `limited_to` (MapProxy's `doc/auth.rst`): GetMap clipped per layer and per request,
/// GetFeatureInfo only inside, capabilities' bboxes limited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_to_clips_maps_featureinfo_and_capabilities() {
    use mapproxy_serve_mapproxy::authorize::{
        AuthRequest, Authorized, Authorizer, LayerAccess, LimitedTo, Partial,
    };
    let asked = Arc::new(Mutex::new(Vec::new()));
    let log = asked.clone();
    let auth = Authorizer::new(move |r: &AuthRequest<'_>| {
        log.lock()
            .expect("log")
            .push((r.service.to_string(), r.layers.join(",")));
        let triangle =
            LimitedTo::wkt("EPSG:4326", "POLYGON((5 45, 15 45, 15 55, 5 45))").expect("wkt");
        let box_fi = LimitedTo::bbox("EPSG:4326", [8.0, 47.0, 9.0, 48.0]);
        // the whole request: west of 12°E, as GeoJSON in EPSG:3857
        let x12 = 12.0_f64.to_radians() * R;
        let whole = LimitedTo::geojson(
            "EPSG:3857",
            &format!(
                r#"{{"type": "Polygon", "coordinates": [[[-2e7, -2e7], [{x12}, -2e7], [{x12}, 2e7], [-2e7, 2e7], [-2e7, -2e7]]]}}"#
            ),
        )
        .expect("geojson");
        let mut p = Partial::new()
            .layer("cached", LayerAccess::all().limited_to(triangle))
            .layer("fi", LayerAccess::all().limited_to(box_fi))
            .layer("direct", LayerAccess::all());
        if r.service == "wms.map" && r.layers.contains(&"direct") {
            p = p.limited_to(whole);
        }
        Authorized::Partial(p)
    });
    let s = serve_auth(YAML, Some(auth)).await;
    // the triangle (5 45, 15 45, 15 55): inside drawn and geolocated, outside transparent
    let url = getmap(
        "1.1.1",
        "cached",
        "EPSG:4326",
        "0,40,20,60",
        200,
        200,
        "image/png",
    ) + "&TRANSPARENT=true";
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let img = a.image();
    let px = |lon: f64, lat: f64| {
        let i = ((lon - 0.0) / 20.0 * 200.0) as u32;
        let j = ((60.0 - lat) / 20.0 * 200.0) as u32;
        img.get_pixel(i, j).0
    };
    assert_eq!(px(13.0, 46.0)[3], 255, "inside");
    assert_eq!(px(6.0, 53.0)[3], 0, "outside the triangle, inside its bbox");
    assert_eq!(px(2.0, 50.0)[3], 0);
    assert_eq!(px(17.0, 50.0)[3], 0);
    let want = color_of(13.05, 45.95);
    let got = px(13.0, 46.0);
    assert!(
        (i32::from(got[0]) - i32::from(want[0])).abs() <= 3,
        "{got:?} {want:?}"
    );
    // the request's limited_to: west of 12°E only, BGCOLOR beyond
    let url = getmap(
        "1.1.1",
        "direct",
        "EPSG:4326",
        "0,40,20,60",
        200,
        200,
        "image/png",
    ) + "&BGCOLOR=0xff00ff";
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let img = a.image();
    assert_eq!(
        img.get_pixel(150, 100).0,
        [255, 0, 255, 255],
        "east of 12°: bgcolor"
    );
    assert_ne!(img.get_pixel(50, 100).0, [255, 0, 255, 255]);
    assert!(asked
        .lock()
        .expect("log")
        .iter()
        .any(|(svc, l)| svc == "wms.map" && l == "direct"));

    // feature info only inside the layer's limited_to
    let fi = |x: u32, y: u32| {
        format!("/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=fi&QUERY_LAYERS=fi&SRS=EPSG:4326&BBOX=8,47,10,49&WIDTH=200&HEIGHT=200&X={x}&Y={y}&INFO_FORMAT=text/plain")
    };
    let a = get(&s, &fi(50, 150)).await;
    assert_eq!(text_points(&a.text()).len(), 1, "inside: {}", a.text());
    let a = get(&s, &fi(150, 50)).await;
    assert_eq!((a.status, a.text().as_str()), (200, ""), "outside: empty");

    // capabilities: fi's bbox limited to its limited_to
    let t = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await
    .text();
    assert!(
        t.contains("<Name>fi</Name>\n      <Title>Queryable</Title>\n      <LatLonBoundingBox minx=\"8.0\" miny=\"47.0\" maxx=\"9.0\" maxy=\"48.0\" />"),
        "{t}"
    );
    // a layer the answer does not name is not listed
    assert!(!t.contains("<Name>broken</Name>"), "{t}");
    // legends: asked as wms.legendgraphic
    let _ = get(
        &s,
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetLegendGraphic&LAYER=broken&FORMAT=image/png",
    )
    .await;
    assert!(asked
        .lock()
        .expect("log")
        .iter()
        .any(|(svc, l)| svc == "wms.legendgraphic" && l == "broken"));
}

/// A capabilities extent limited by `limited_to`: the bounds of the geometry's intersection
/// with the layer's extent in the geometry's SRS, floats (`5` becomes `8.0`), the layer's
/// limit first, then the answer's (service/wms.py:406-420). The lines MapProxy 7 printed for
/// this configuration and answer (make_wsgi_app with a `mapproxy.authorize` in the environ).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limited_to_extents_as_mapproxy_printed_them() {
    use mapproxy_serve_mapproxy::authorize::{
        AuthRequest, Authorized, Authorizer, LayerAccess, LimitedTo,
    };
    let yaml = "services:\n  wms:\n    srs: ['EPSG:4326', 'EPSG:3857']\nlayers:\n  - name: a\n    title: A\n    sources: [wms_int]\n  - name: b\n    title: B\n    sources: [wms_int]\n  - name: c\n    title: C\n    sources: [dbg]\nsources:\n  dbg:\n    type: debug\n  wms_int:\n    type: wms\n    req: {url: 'http://127.0.0.1:9/wms', layers: x}\n    coverage:\n      bbox: [5, 45, 15, 55]\n      srs: 'EPSG:4326'\n";
    let auth = Authorizer::new(|_: &AuthRequest<'_>| {
        let box_4326 = LimitedTo::bbox("EPSG:4326", [8.0, 47.0, 9.0, 48.0]);
        let box_3857 = LimitedTo::bbox("EPSG:3857", [1e6, 6e6, 1.1e6, 6.1e6]);
        Authorized::Partial(
            mapproxy_serve_mapproxy::authorize::Partial::new()
                .layer("a", LayerAccess::all().limited_to(box_4326.clone()))
                .layer("b", LayerAccess::all().limited_to(box_3857))
                .layer("c", LayerAccess::all().limited_to(box_4326)),
        )
    });
    let s = serve_auth(yaml, Some(auth)).await;
    let caps = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await
    .text();
    let ours: Vec<&str> = caps
        .lines()
        .filter(|l| l.contains("BoundingBox") || l.contains("<Name>"))
        .collect();
    let mapproxy = r#"  <Name>OGC:WMS</Name>
    <LatLonBoundingBox minx="5" miny="45" maxx="15" maxy="55" />
    <BoundingBox SRS="EPSG:3857" minx="556597.4539663679" miny="5621521.486192066" maxx="1669792.3618991035" maxy="7361866.113051188" />
    <BoundingBox SRS="EPSG:4326" minx="5" miny="45" maxx="15" maxy="55" />
      <Name>a</Name>
      <LatLonBoundingBox minx="8.0" miny="47.0" maxx="9.0" maxy="48.0" />
      <BoundingBox SRS="EPSG:3857" minx="890555.9263461885" miny="5942074.072431109" maxx="1001875.4171394621" maxy="6106854.834885074" />
      <BoundingBox SRS="EPSG:4326" minx="8.0" miny="47.0" maxx="9.0" maxy="48.0" />
      <Name>b</Name>
      <LatLonBoundingBox minx="8.983152841195214" miny="47.353704702433106" maxx="9.881468125314735" maxy="47.958779800526045" />
      <BoundingBox SRS="EPSG:3857" minx="1000000.0" miny="6000000.0" maxx="1100000.0" maxy="6100000.0" />
      <BoundingBox SRS="EPSG:4326" minx="8.983152841195214" miny="47.353704702433106" maxx="9.881468125314735" maxy="47.958779800526045" />
      <Name>c</Name>
      <LatLonBoundingBox minx="8.0" miny="47.0" maxx="9.0" maxy="48.0" />
      <BoundingBox SRS="EPSG:3857" minx="890555.9263461885" miny="5942074.072431109" maxx="1001875.4171394621" maxy="6106854.834885074" />
      <BoundingBox SRS="EPSG:4326" minx="8.0" miny="47.0" maxx="9.0" maxy="48.0" />"#;
    let ours = ours.join("\n");
    assert!(same_but_last_digits(&ours, mapproxy), "{ours}");
}

/// OWSLib, the Python OGC client (OWSLIB_PYTHON: `.ci/test` installs it into
/// target/owslib-venv), reads the capabilities of 1.1.1 and 1.3.0, fetches a map in
/// EPSG:4326 from the 3857 cache (checked for geolocation here) and a feature info.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owslib_reads_capabilities_and_fetches_maps() {
    let python = match std::env::var("OWSLIB_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("OWSLIB_PYTHON is not set (CI=true): set it to a python with OWSLib");
            }
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIP: owslib_reads_capabilities_and_fetches_maps: set OWSLIB_PYTHON to a python with OWSLib (.ci/test installs it)"
            );
            return;
        }
    };
    let s = serve(YAML).await;
    let out = s._dir.path().to_path_buf();
    let script = r#"
import sys
from owslib.wms import WebMapService
url, out = sys.argv[1], sys.argv[2]
for v in ('1.1.1', '1.3.0'):
    wms = WebMapService(url, version=v)
    print(v, wms.identification.title)
    print(v, 'layers', ' '.join(sorted(wms.contents)))
    print(v, 'queryable', wms['fi'].queryable, wms['cached'].queryable)
    print(v, 'crs', ' '.join(sorted(wms['cached'].crsOptions)))
    print(v, 'getmap', ' '.join(o.name for o in wms.operations))
    img = wms.getmap(layers=['cached'], srs='EPSG:4326', bbox=(4, 45, 20, 55),
                     size=(512, 320), format='image/png')
    open('%s/owslib-%s.png' % (out, v), 'wb').write(img.read())
    fi = wms.getfeatureinfo(layers=['fi'], query_layers=['fi'], srs='EPSG:4326',
                            bbox=(8, 47, 10, 49), size=(200, 200), format='image/png',
                            info_format='text/plain', xy=(50, 150))
    print(v, 'featureinfo', fi.read().decode())
"#;
    let url = format!("http://{}/service", s.addr);
    let (python2, out2) = (python.clone(), out.clone());
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python2)
            .args(["-c", script, &url, &out2.to_string_lossy()])
            .output()
    })
    .await
    .expect("join")
    .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "OWSLib failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for v in ["1.1.1", "1.3.0"] {
        assert!(stdout.contains(&format!("{v} Test WMS")), "{stdout}");
        assert!(
            stdout.contains(&format!(
                "{v} layers broken cached direct fi fi_a fi_b fi_group group inner"
            )),
            "{stdout}"
        );
        assert!(stdout.contains(&format!("{v} queryable 1 0")), "{stdout}");
        assert!(stdout.contains("EPSG:32632"), "{stdout}");
        assert!(
            stdout.contains(&format!("{v} getmap GetCapabilities GetMap GetFeatureInfo")),
            "{stdout}"
        );
        let img = image::open(out.join(format!("owslib-{v}.png")))
            .expect("OWSLib's map is an image")
            .to_rgba8();
        assert_eq!(img.dimensions(), (512, 320));
        assert!(
            check_geolocation(&img, "EPSG:4326", [4.0, 45.0, 20.0, 55.0]) > 100,
            "{v}"
        );
        // the point x=50, y=150 of 8,47,10,49 at 200 px: 8.5°E 47.5°N
        let line = stdout
            .lines()
            .find(|l| l.starts_with(&format!("{v} featureinfo")))
            .expect("feature info line");
        let pts = text_points(line.trim_start_matches(&format!("{v} featureinfo ")));
        assert!(
            pts.len() == 1 && (pts[0].1 - 8.5).abs() < 0.02 && (pts[0].2 - 47.5).abs() < 0.02,
            "{line}"
        );
    }
}

/// Coverages of sources (MapProxy's `coverage:`): blank outside without asking, only the part
/// inside the coverage's bbox asked for, `clip` clears outside the polygons (WKT file,
/// GeoJSON datasource); feature info outside is empty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_coverages_blank_clip_and_limit_featureinfo() {
    let yaml = r#"
services:
  wms:
    srs: ['EPSG:4326', 'EPSG:3857']
    image_formats: ['image/png']
layers:
  - name: boxed
    title: bbox coverage
    sources: [boxed]
  - name: clipped
    title: WKT coverage, clipped
    sources: [clipped]
  - name: cached
    title: a cache of a GeoJSON-covered source
    sources: [c]
globals:
  cache:
    base_dir: ./cache
  image:
    paletted: false
caches:
  c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [geo]
sources:
  boxed:
    type: wms
    coverage:
      bbox: [5, 45, 15, 55]
      srs: 'EPSG:4326'
    wms_opts:
      featureinfo: true
    req:
      url: http://UPSTREAM/service
      layers: boxed
  clipped:
    type: wms
    coverage:
      polygons: triangle.wkt
      polygons_srs: 'EPSG:4326'
      clip: true
    req:
      url: http://UPSTREAM/service
      layers: clipped
  geo:
    type: wms
    coverage:
      datasource: area.geojson
      srs: 'EPSG:4326'
    req:
      url: http://UPSTREAM/service
      layers: geo
"#;
    // the coverage files are read when the app is built: written next to the YAML first
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("triangle.wkt"),
        "POLYGON((5 45, 15 45, 15 55, 5 45))\n",
    )
    .expect("wkt");
    std::fs::write(
        dir.path().join("area.geojson"),
        r#"{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {}, "geometry": {"type": "Polygon", "coordinates": [[[0, 40], [20, 40], [20, 60], [0, 60], [0, 40]]]}}]}"#,
    )
    .expect("geojson");
    let yaml = yaml
        .replace(
            "triangle.wkt",
            &dir.path().join("triangle.wkt").to_string_lossy(),
        )
        .replace(
            "area.geojson",
            &dir.path().join("area.geojson").to_string_lossy(),
        );
    let s = serve(&yaml).await;
    let count = |layer: &str| {
        s.upstream
            .queries
            .lock()
            .expect("log")
            .iter()
            .filter(|q| q.contains(&format!("layers={layer}")))
            .count()
    };
    // outside the bbox coverage: blank, the upstream not asked
    let url = getmap(
        "1.1.1",
        "boxed",
        "EPSG:4326",
        "20,40,30,50",
        100,
        100,
        "image/png",
    ) + "&TRANSPARENT=true";
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(a.image().pixels().all(|p| p.0[3] == 0));
    assert_eq!(count("boxed"), 0);
    // partly inside: only the coverage's bbox asked for, the rest transparent
    let url = getmap(
        "1.1.1",
        "boxed",
        "EPSG:4326",
        "0,40,20,60",
        200,
        200,
        "image/png",
    ) + "&TRANSPARENT=true";
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    let q = s.upstream.queries.lock().expect("log").clone();
    let asked = q
        .iter()
        .find(|q| q.contains("layers=boxed"))
        .expect("asked");
    assert!(
        asked.contains("bbox=5.0%2C45.0%2C15.0%2C55.0")
            || asked.contains("bbox=5.0,45.0,15.0,55.0"),
        "{asked}"
    );
    assert!(asked.contains("width=100&height=100"), "{asked}");
    let img = a.image();
    assert_eq!(img.get_pixel(20, 100).0[3], 0, "west of 5°E");
    assert_eq!(img.get_pixel(100, 100).0[3], 255);
    assert!(
        check_geolocation(
            &image::imageops::crop_imm(&img, 50, 50, 100, 100).to_image(),
            "EPSG:4326",
            [5.0, 45.0, 15.0, 55.0]
        ) > 5
    );
    // clip: the triangle only
    let url = getmap(
        "1.1.1",
        "clipped",
        "EPSG:4326",
        "5,45,15,55",
        100,
        100,
        "image/png",
    ) + "&TRANSPARENT=true";
    let img = get(&s, &url).await.image();
    assert_eq!(img.get_pixel(80, 80).0[3], 255, "inside (13.05, 46.95)");
    assert_eq!(
        img.get_pixel(20, 20).0[3],
        0,
        "outside the triangle (7.05, 52.95)"
    );
    // a cache of a GeoJSON-covered source: tiles far outside are blank, not asked for
    let url = getmap(
        "1.1.1",
        "cached",
        "EPSG:4326",
        "-120,-40,-100,-20",
        100,
        100,
        "image/png",
    ) + "&TRANSPARENT=true";
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(count("geo"), 0);
    let url = getmap(
        "1.1.1",
        "cached",
        "EPSG:4326",
        "8,47,12,51",
        100,
        100,
        "image/png",
    );
    let a = get(&s, &url).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(count("geo") > 0);
    assert!(check_geolocation(&a.image(), "EPSG:4326", [8.0, 47.0, 12.0, 51.0]) > 5);
    // feature info only inside the coverage
    let fi = |bbox: &str| {
        format!("/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=boxed&QUERY_LAYERS=boxed&SRS=EPSG:4326&BBOX={bbox}&WIDTH=100&HEIGHT=100&X=50&Y=50&INFO_FORMAT=text/plain")
    };
    assert_eq!(get(&s, &fi("20,40,30,50")).await.text(), "");
    assert_eq!(
        text_points(&get(&s, &fi("8,47,10,49")).await.text()).len(),
        1
    );
}

/// An opaque map's bottom cache layer is drawn over `BGCOLOR` while its tiles are stitched
/// (paletted tiles with `tRNS`: the debug source's black text on transparency, in a cache
/// with `image: {transparent: true}`). The answer is
/// what the same map asked with `TRANSPARENT=true` gives drawn over `BGCOLOR`, within
/// rounding; every pixel is opaque, and `BGCOLOR` shows where the tiles are transparent: in the
/// cache's SRS (resized) and reprojected to 4326.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_map_draws_transparent_tiles_over_bgcolor() {
    let s = serve(
        r#"
services:
  wms:
    srs: ['EPSG:3857', 'EPSG:4326']
    image_formats: ['image/png', 'image/png; mode=32bit']
layers:
  - name: text
    title: Text
    sources: [text_cache]
caches:
  text_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [debug]
    meta_size: [1, 1]
    meta_buffer: 0
    # the debug source alone makes an opaque cache, as in MapProxy
    image:
      transparent: true
sources:
  debug:
    type: debug
globals:
  cache:
    base_dir: ./cache
  # exact colours to compare (MapProxy 7 quantizes `mode=32bit` too)
  image:
    paletted: false
"#,
    )
    .await;
    let magenta = image::Rgba([255u8, 0, 255, 255]);
    for (srs, bbox) in [
        ("EPSG:3857", "1000000,6000000,1409600,6409600"),
        ("EPSG:4326", "8.983,47.29,12.663,49.75"),
    ] {
        let url = getmap(
            "1.1.1",
            "text",
            srs,
            bbox,
            256,
            256,
            "image/png%3B%20mode%3D32bit",
        );
        let clear = get(&s, &format!("{url}&TRANSPARENT=true")).await;
        assert_eq!(clear.status, 200, "{}", clear.text());
        let opaque = get(&s, &format!("{url}&BGCOLOR=0xff00ff")).await;
        assert_eq!(opaque.status, 200, "{}", opaque.text());
        let mut want = image::RgbaImage::from_pixel(256, 256, magenta);
        image::imageops::overlay(&mut want, &clear.image(), 0, 0);
        let (mut background, mut drawn, mut worst) = (0, 0, 0);
        for (o, w) in opaque.image().pixels().zip(want.pixels()) {
            assert_eq!(o.0[3], 255, "{srs}: every pixel opaque");
            for c in 0..3 {
                worst = worst.max((i32::from(o.0[c]) - i32::from(w.0[c])).abs());
            }
            if *o == magenta {
                background += 1;
            } else {
                drawn += 1;
            }
        }
        assert!(worst <= 3, "{srs}: off by {worst}");
        assert!(
            background > 10_000 && drawn > 500,
            "{srs}: {background} background, {drawn} drawn"
        );
    }
}

/// WMTS GetFeatureInfo (KVP and RESTful) as MapProxy 7 answers it on the same
/// configuration (checked against `mapproxy-util serve-develop`): the upstream's queries
/// below are MapProxy's, byte for byte, as are the statuses, content types and messages.
#[tokio::test]
async fn wmts_featureinfo_as_mapproxy() {
    let s = serve(
        r#"
globals:
  cache:
    base_dir: ./cache
services:
  wmts:
    featureinfo_formats:
      - mimetype: application/json
        suffix: json
      - mimetype: text/plain
        suffix: txt
layers:
  - name: q
    title: Q
    sources: [q_cache]
  - name: nq
    title: NQ
    sources: [nq_cache]
caches:
  q_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
  nq_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [dbg]
sources:
  up:
    type: wms
    wms_opts:
      featureinfo: true
    req:
      url: http://UPSTREAM/service
      layers: foo
  dbg:
    type: debug
"#,
    )
    .await;
    let kvp = "/service?SERVICE=WMTS&VERSION=1.0.0&REQUEST=GetFeatureInfo&STYLE=&FORMAT=image/png&TILEMATRIXSET=GLOBAL_WEBMERCATOR";
    let last_query = || {
        s.upstream
            .queries
            .lock()
            .expect("log")
            .last()
            .cloned()
            .unwrap_or_default()
    };
    let exception = |a: &Answer, status: u16, code: &str, text: &str| {
        assert_eq!(a.status, status, "{}", a.text());
        assert_eq!(a.content_type, "text/xml");
        let t = a.text();
        assert!(
            t.contains(&format!("<ows:Exception exceptionCode=\"{code}\">\n    <ows:ExceptionText>{text}</ows:ExceptionText>")),
            "{t}"
        );
    };
    let tile_1_0 = "layers=foo&bbox=0.0,0.0,20037508.342789244,20037508.342789244&width=256&height=256&x=17&y=27";

    // a MIME type of featureinfo_formats: the tile's bbox, the pixel, the asked format
    let a = get(
        &s,
        &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=17&J=27"),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.content_type, "text/plain; charset=utf-8");
    assert_eq!(
        last_query(),
        format!("{tile_1_0}&query_layers=foo&info_format=text%2Fplain&format=image%2Fpng&srs=EPSG%3A3857&request=GetFeatureInfo&version=1.1.1&service=WMS&styles=")
    );
    // the upstream's answer: the queried point (the tile's pixel 17/27 of level 1, tile 1/0)
    let p = text_points(&a.text());
    assert_eq!(p.len(), 1, "{}", a.text());
    assert_eq!(p[0].0, "foo");
    assert!(
        (p[0].1 - 11.9531).abs() < 1e-3 && (p[0].2 - 83.1111).abs() < 1e-3,
        "{p:?}"
    );
    // FEATURE_COUNT forwarded; JSON answered as application/json
    let a = get(&s, &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=application/json&I=17&J=27&FEATURE_COUNT=3")).await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.content_type, "application/json");
    assert_eq!(
        last_query(),
        format!("{tile_1_0}&feature_count=3&query_layers=foo&info_format=application%2Fjson&format=image%2Fpng&srs=EPSG%3A3857&request=GetFeatureInfo&version=1.1.1&service=WMS&styles=")
    );
    // KVP takes a suffix too
    let a = get(
        &s,
        &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=txt&I=17&J=27"),
    )
    .await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "text/plain; charset=utf-8")
    );
    // no range check of the tile or the pixel: MapProxy asks the upstream all the same
    let a = get(
        &s,
        &format!(
            "{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=5&TILECOL=9&INFOFORMAT=text/plain&I=300&J=-4"
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        last_query(),
        "layers=foo&bbox=160300066.74231395,-100187541.71394622,180337575.08510318,-80150033.37115698&width=256&height=256&x=300&y=-4&query_layers=foo&info_format=text%2Fplain&format=image%2Fpng&srs=EPSG%3A3857&request=GetFeatureInfo&version=1.1.1&service=WMS&styles="
    );
    let asked = s.upstream.queries.lock().expect("log").len();

    // errors
    let a = get(
        &s,
        &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/html&I=17&J=27"),
    )
    .await;
    exception(
        &a,
        400,
        "InvalidParameterValue",
        "unknown infoformat: text/html",
    );
    let a = get(
        &s,
        &format!(
            "{kvp}&LAYER=nq&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=17&J=27"
        ),
    )
    .await;
    exception(&a, 501, "OperationNotSupported", "layer nq not queryable");
    let a = get(
        &s,
        &format!(
            "{kvp}&LAYER=zz&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=17&J=27"
        ),
    )
    .await;
    exception(&a, 400, "InvalidParameterValue", "unknown layer: zz");
    let a = get(&s, "/service?SERVICE=WMTS&VERSION=1.0.0&REQUEST=GetFeatureInfo&STYLE=&FORMAT=image/png&TILEMATRIXSET=nope&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=17&J=27").await;
    exception(
        &a,
        400,
        "InvalidParameterValue",
        "unknown tilematrixset: nope",
    );
    let a = get(&s, &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=17&J=27&STYLES=x")).await;
    exception(&a, 500, "StyleNotDefined", "unsupported styles: x");
    let a = get(
        &s,
        &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&I=17&J=27"),
    )
    .await;
    exception(
        &a,
        500,
        "NoApplicableCode",
        "missing parameters [&#x27;infoformat&#x27;]",
    );
    let a = get(&s, "/service?SERVICE=WMTS&REQUEST=GetFeatureInfo").await;
    exception(
        &a,
        500,
        "NoApplicableCode",
        "missing parameters [&#x27;version&#x27;, &#x27;layer&#x27;, &#x27;style&#x27;, &#x27;tilematrixset&#x27;, &#x27;tilematrix&#x27;, &#x27;tilerow&#x27;, &#x27;tilecol&#x27;, &#x27;format&#x27;, &#x27;infoformat&#x27;, &#x27;i&#x27;, &#x27;j&#x27;]",
    );
    // MapProxy raises (a bare 500 "internal error") on these; OWS exceptions here
    let a = get(
        &s,
        &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=x&J=27"),
    )
    .await;
    exception(&a, 400, "InvalidParameterValue", "i and j must be integers");
    let a = get(
        &s,
        &format!("{kvp}&LAYER=q&TILEMATRIX=40&TILEROW=0&TILECOL=0&INFOFORMAT=text/plain&I=1&J=1"),
    )
    .await;
    exception(
        &a,
        400,
        "TileOutOfRange",
        "The requested tile is outside the bounding box of the tile map.",
    );
    assert_eq!(
        s.upstream.queries.lock().expect("log").len(),
        asked,
        "no upstream query for an error"
    );

    // RESTful: the FeatureInfo template after the tile template, the suffix as format
    let a = get(&s, "/wmts/q/GLOBAL_WEBMERCATOR/01/1/0/17/27.txt").await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "text/plain; charset=utf-8"),
        "{}",
        a.text()
    );
    assert_eq!(
        last_query(),
        format!("{tile_1_0}&query_layers=foo&info_format=text%2Fplain&format=image%2Fpng&srs=EPSG%3A3857&request=GetFeatureInfo&version=1.1.1&service=WMS&styles=")
    );
    let a = get(&s, "/wmts/q/GLOBAL_WEBMERCATOR/01/1/0/17/27.json").await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "application/json")
    );
    assert!(a.text().contains("\"layer\": \"foo\""), "{}", a.text());
    let a = get(&s, "/wmts/q/GLOBAL_WEBMERCATOR/01/1/0/17/27.html").await;
    exception(&a, 400, "InvalidParameterValue", "unknown infoformat: html");
    let a = get(&s, "/wmts/nq/GLOBAL_WEBMERCATOR/01/1/0/17/27.txt").await;
    exception(&a, 501, "OperationNotSupported", "layer nq not queryable");
    // a path neither template matches stays MapProxy's text/plain "invalid request"
    let a = get(&s, "/wmts/q/GLOBAL_WEBMERCATOR/01/1/0/17.txt").await;
    assert_eq!((a.status, a.content_type.as_str()), (500, "text/plain"));
    assert_eq!(
        a.text(),
        "internal error: invalid request (/wmts/q/GLOBAL_WEBMERCATOR/01/1/0/17.txt)"
    );

    // capabilities: InfoFormat (both) and FeatureInfo ResourceURLs (RESTful), queryable only
    let host = s.addr.to_string();
    let rest = get(&s, "/wmts/1.0.0/WMTSCapabilities.xml").await.text();
    assert!(rest.contains(
        "      <Format>image/png</Format>\n      <InfoFormat>application/json</InfoFormat>\n      <InfoFormat>text/plain</InfoFormat>\n      <TileMatrixSetLink>"
    ), "{rest}");
    assert!(rest.contains(&format!(
        "        template=\"http://{host}/wmts/q/{{TileMatrixSet}}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}.png\"/>\n      <ResourceURL format=\"application/json\" resourceType=\"FeatureInfo\" template=\"http://{host}/wmts/q/{{TileMatrixSet}}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}/{{I}}/{{J}}.json\"/>\n      <ResourceURL format=\"text/plain\" resourceType=\"FeatureInfo\" template=\"http://{host}/wmts/q/{{TileMatrixSet}}/{{TileMatrix}}/{{TileCol}}/{{TileRow}}/{{I}}/{{J}}.txt\"/>\n    </Layer>"
    )), "{rest}");
    assert_eq!(rest.matches("<InfoFormat>").count(), 2, "{rest}");
    assert_eq!(
        rest.matches("resourceType=\"FeatureInfo\"").count(),
        2,
        "{rest}"
    );
    let kvp_caps = get(&s, "/service?SERVICE=WMTS&REQUEST=GetCapabilities")
        .await
        .text();
    assert_eq!(kvp_caps.matches("<InfoFormat>").count(), 2, "{kvp_caps}");
    assert!(
        !kvp_caps.contains("resourceType=\"FeatureInfo\""),
        "{kvp_caps}"
    );

    // no featureinfo_formats (MapProxy's default): every format is unknown
    let s = serve(
        r#"
globals:
  cache:
    base_dir: ./cache
services:
  wmts:
layers:
  - name: q
    title: Q
    sources: [q_cache]
caches:
  q_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
sources:
  up:
    type: wms
    wms_opts:
      featureinfo: true
    req:
      url: http://UPSTREAM/service
      layers: foo
"#,
    )
    .await;
    let a = get(&s, "/wmts/q/GLOBAL_WEBMERCATOR/01/1/0/1/1.txt").await;
    exception(&a, 400, "InvalidParameterValue", "unknown infoformat: txt");
    let a = get(
        &s,
        &format!("{kvp}&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=1&J=1"),
    )
    .await;
    exception(
        &a,
        400,
        "InvalidParameterValue",
        "unknown infoformat: text/plain",
    );
    let caps = get(&s, "/wmts/1.0.0/WMTSCapabilities.xml").await.text();
    assert!(
        !caps.contains("InfoFormat") && !caps.contains("resourceType=\"FeatureInfo\""),
        "{caps}"
    );
    assert!(s.upstream.queries.lock().expect("log").is_empty());
}

/// A header's value in an answer's head.
fn header<'a>(a: &'a Answer, name: &str) -> Option<&'a str> {
    a.head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// WMS-C (`TILED=true`) as MapProxy 7 answers it: the `TileSet`s of the 1.1.0/1.1.1
/// capabilities (service/templates/wms111capabilities.xml:3-15, 99-114), the tile checks of
/// `CacheMapLayer` (layer/cache_map_layer.py:52-57, 74-80) and the cached tile as stored with
/// the tile services' cache headers and conditional answers (service/wms.py:170-174).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wms_c_tiled_as_mapproxy() {
    let s = serve(YAML).await;
    let caps = |v: &str, tiled: &str| {
        format!("/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION={v}{tiled}")
    };
    let dtd = " [\n <!ELEMENT VendorSpecificCapabilities (TileSet*) >\n <!ELEMENT TileSet (SRS, BoundingBox?, Resolutions, Width, Height, Format, Layers*, Styles*) >\n <!ELEMENT Resolutions (#PCDATA) >\n <!ELEMENT Width (#PCDATA) >\n <!ELEMENT Height (#PCDATA) >\n <!ELEMENT Layers (#PCDATA) >\n <!ELEMENT Styles (#PCDATA) >\n ]>  <!-- end of DOCTYPE declaration -->\n";
    // MapProxy 7's TileSet of a GLOBAL_WEBMERCATOR cache (its first level left out, as TMS)
    let tile_set = |srs: &str, layer: &str| {
        format!("    <TileSet>\n      <SRS>{srs}</SRS>\n      <BoundingBox SRS=\"{srs}\" minx=\"-20037508.342789244\" miny=\"-20037508.342789244\" maxx=\"20037508.342789244\" maxy=\"20037508.342789244\" />\n      <Resolutions>78271.51696402048 39135.75848201024 19567.87924100512 9783.93962050256 4891.96981025128 2445.98490512564 1222.99245256282 611.49622628141 305.748113140705 152.8740565703525 76.43702828517625 38.21851414258813 19.109257071294063 9.554628535647032 4.777314267823516 2.388657133911758 1.194328566955879 0.5971642834779395 0.29858214173896974 </Resolutions>\n      <Width>256</Width>\n      <Height>256</Height>\n      <Format>image/png</Format>\n      <Layers>{layer}</Layers>\n      <Styles></Styles>\n    </TileSet>\n")
    };
    for (v, srs) in [("1.1.1", "EPSG:3857"), ("1.1.0", "OSGEO:41001")] {
        let a = get(&s, &caps(v, "&TILED=true")).await;
        assert_eq!(a.status, 200);
        let t = a.text();
        assert!(t.contains(dtd), "{v}: {t}");
        // every layer whose only source is one cache, by `<name>_EPSG<code>`, in order
        let sets = format!(
            "  </Exception>\n  <VendorSpecificCapabilities>\n{}{}{}  </VendorSpecificCapabilities>\n  <Layer queryable=\"1\">\n",
            tile_set(srs, "cached"),
            tile_set(srs, "inner"),
            tile_set(srs, "fi_b")
        );
        assert!(t.contains(&sets), "{v}: {t}");
        // without TILED (or TILED=false): none
        for tiled in ["", "&tiled=FALSE"] {
            let t = get(&s, &caps(v, tiled)).await.text();
            assert!(!t.contains("TileSet"), "{v}{tiled}: {t}");
            assert!(t.contains(" [\n <!ELEMENT VendorSpecificCapabilities EMPTY>\n ]>"));
        }
    }
    // the 1.3.0 (and 1.0.0) templates have no tile sets
    for v in ["1.3.0", "1.0.0"] {
        let t = get(&s, &caps(v, "&TILED=true")).await.text();
        assert!(!t.contains("TileSet"), "{v}: {t}");
    }

    let world = "20037508.342789244";
    let tile = format!("0,0,{world},{world}");
    let tiled = |layers: &str, bbox: &str, w: u32, format: &str| {
        getmap("1.1.1", layers, "EPSG:3857", bbox, w, w, format) + "&TILED=true"
    };
    let xml_error = |a: &Answer, msg: &str| {
        assert_eq!(
            (a.status, a.content_type.as_str()),
            (500, "application/vnd.ogc.se_xml"),
            "{}",
            a.text()
        );
        assert!(
            a.text()
                .contains(&format!("<ServiceException>{msg}</ServiceException>")),
            "{}",
            a.text()
        );
        assert!(a.no_cache());
    };
    let a = get(&s, &tiled("cached", &tile, 100, "image/png")).await;
    xml_error(&a, "Invalid request: invalid tile size (use 256x256)");
    let a = get(&s, &tiled("cached", &tile, 256, "image/jpeg")).await;
    xml_error(&a, "Invalid request: invalid tile format, use png");
    let a = get(&s, &tiled("cached", "0,0,1000,1000", 256, "image/png")).await;
    xml_error(&a, "Request too large or invalid BBOX. (not a single tile)");
    let a = get(
        &s,
        &tiled(
            "cached",
            &format!("10000,0,{world},{world}"),
            256,
            "image/png",
        ),
    )
    .await;
    xml_error(
        &a,
        "Request too large or invalid BBOX. (query does not align to tile boundaries)",
    );
    // a group: its layers are checked as well
    let a = get(&s, &tiled("group", &tile, 100, "image/png")).await;
    xml_error(&a, "Invalid request: invalid tile size (use 256x256)");
    assert!(
        s.upstream.queries.lock().expect("log").is_empty(),
        "no tile was made for a refused request"
    );

    // one tile, made now from a meta tile: MapProxy 7 knows neither its time nor its size
    // (cache/tile_manager.py:177-179): the ETag of md5("NoneNone"), no Last-modified
    let a = get(&s, &tiled("cached", &tile, 256, "image/png")).await;
    assert_eq!(
        (a.status, a.content_type.as_str()),
        (200, "image/png"),
        "{}",
        a.text()
    );
    assert_eq!(header(&a, "etag"), Some("c7485dcc8d256a6f197ed7802687f252"));
    assert_eq!(header(&a, "last-modified"), None);
    assert_eq!(
        header(&a, "cache-control"),
        Some("public, max-age=259200, s-maxage=259200")
    );
    // then the cached file as it is, with ETag, Last-modified and Cache-control
    let a = get(&s, &tiled("cached", &tile, 256, "image/png")).await;
    assert_eq!(a.status, 200);
    let file = s
        ._dir
        .path()
        .join("cache/c_EPSG3857/01/000/000/001/000/000/000.png");
    let stored = std::fs::read(&file).expect("the tile is cached");
    assert_eq!(a.body, stored, "the tile as stored");
    let mtime = std::fs::metadata(&file)
        .and_then(|m| m.modified())
        .expect("mtime");
    let etag = mapproxy_serve_mapproxy::service::tile_etag(Some(mtime), stored.len());
    assert_eq!(header(&a, "etag"), Some(etag.as_str()));
    assert_eq!(
        header(&a, "cache-control"),
        Some("public, max-age=259200, s-maxage=259200")
    );
    let last_modified = header(&a, "last-modified")
        .expect("Last-modified")
        .to_string();
    assert!(!a.no_cache());
    // the same layer twice renders once (an OrderedDict by name): the tile still
    let b = get(&s, &tiled("cached,cached", &tile, 256, "image/png")).await;
    assert_eq!(b.body, stored);
    assert_eq!(header(&b, "etag"), Some(etag.as_str()));
    // conditional requests: 304 without a body
    let c = get_with(
        &s,
        &tiled("cached", &tile, 256, "image/png"),
        &format!("If-None-Match: {etag}\r\n"),
    )
    .await;
    assert_eq!(c.status, 304);
    assert!(c.body.is_empty());
    assert_eq!(header(&c, "etag"), Some(etag.as_str()));
    let c = get_with(
        &s,
        &tiled("cached", &tile, 256, "image/png"),
        "If-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n",
    )
    .await;
    assert_eq!(c.status, 304);
    let c = get_with(
        &s,
        &tiled("cached", &tile, 256, "image/png"),
        &format!("If-None-Match: x{etag}\r\n"),
    )
    .await;
    assert_eq!((c.status, c.body.len()), (200, stored.len()));
    assert_eq!(header(&c, "last-modified"), Some(last_modified.as_str()));
    // the same map without TILED: the tile as stored too (MapProxy's TileMerger returns the
    // one tile, the transformer leaves it, an opaque layer is not merged and `as_buffer`
    // keeps the buffer of the same format: image/tile.py:53-56, image/transform.py:84-85,
    // image/merge.py:63-71, image/__init__.py:240-257), without tile headers
    let d = get(
        &s,
        &getmap("1.1.1", "cached", "EPSG:3857", &tile, 256, 256, "image/png"),
    )
    .await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body, stored, "the tile as stored");
    assert_eq!(header(&d, "etag"), None);
    assert_eq!(header(&d, "last-modified"), None);
    // ... within a tenth of a pixel, and with TRANSPARENT=true
    let near = format!("0.5,-0.5,{world},{world}");
    for url in [
        getmap("1.1.1", "cached", "EPSG:3857", &near, 256, 256, "image/png"),
        getmap(
            "1.1.1",
            "cached",
            "EPSG:900913",
            &tile,
            256,
            256,
            "image/png",
        ) + "&TRANSPARENT=TRUE",
    ] {
        let d = get(&s, &url).await;
        assert_eq!((d.status, &d.body), (200, &stored), "{url}");
    }
    // drawn again: another format, another size, a bbox a pixel off, another SRS
    for url in [
        getmap(
            "1.1.1",
            "cached",
            "EPSG:3857",
            &tile,
            256,
            256,
            "image/jpeg",
        ),
        getmap("1.1.1", "cached", "EPSG:3857", &tile, 255, 255, "image/png"),
        getmap(
            "1.1.1",
            "cached",
            "EPSG:3857",
            &format!("20000,0,{world},{world}"),
            256,
            256,
            "image/png",
        ),
        getmap(
            "1.1.1",
            "cached",
            "EPSG:4326",
            "0,0,90,85",
            256,
            256,
            "image/png",
        ),
    ] {
        let d = get(&s, &url).await;
        assert_eq!(d.status, 200, "{url}: {}", d.text());
        assert_ne!(d.body, stored, "{url}");
    }
}

/// The WMS documents MapProxy 7 printed for `fixtures/wms/mapproxy.yaml` (`gen_golden.sh`):
/// version negotiation (`VERSION=1.1` and `0.9` are 1.0.0, `1.2` and `1.1.1.0` are 1.1.1, `2`
/// is 1.3.0; request/wms/__init__.py:290-291, 697-748), the 1.0.0 and 1.1.0 documents
/// (wms100capabilities.xml, wms110capabilities.xml), the WMS-C tile sets and tile errors;
/// and for `fixtures/wms/groups/mapproxy.yaml` (`gen_golden.sh groups`) the capabilities of
/// every version: layer extents (a WMS source without coverage and `debug` have MapProxy's
/// default extent, printed as ints, which leaves a group's other extents as they are; two
/// extents merge in EPSG:4326), scale ranges (`max_scale` the coarse end; a group's the merge
/// of its children's and its own), legend styles as each template indents them; and for
/// `fixtures/wms/layer_md/mapproxy.yaml` (`gen_golden.sh layer_md`) every key of a layer's
/// `md` on layers, groups and nested layers: 1.0.0 and 1.1.0 print none, 1.1.1 the abstract
/// and the ISO/FGDC `MetadataURL`s, 1.3.0 all (wms130capabilities.xml:204-288), only URLs
/// escaped; the WMTS and TMS documents print no layer md; and for `fixtures/wms/numbers`,
/// `numbers_srs` and `numbers_tile` (`gen_golden.sh numbers` ...) the numbers of coverages,
/// grids, `bbox_srs` entries and tile sources in the WMS, WMTS and TMS documents: the YAML's
/// ints printed as ints until MapProxy transforms or computes them. Same status, content type
/// and bytes (the host aside; in the numbers sets, the last digits of transformed floats
/// aside: see [`same_but_last_digits`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wms_golden_documents_as_mapproxy_printed_them() {
    let mut failed = Vec::new();
    // (set, documents, whether transformed floats may differ in their last digits)
    for (set, count, last_digits) in [
        ("", 15, false),
        ("/groups", 4, false),
        ("/layer_md", 8, false),
        ("/numbers", 23, true),
        ("/numbers_srs", 4, true),
        ("/numbers_tile", 11, true),
    ] {
        let dir = format!("{}/tests/fixtures/wms{set}", env!("CARGO_MANIFEST_DIR"));
        let read = |name: &str| {
            std::fs::read(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
        };
        let yaml = String::from_utf8(read("mapproxy.yaml")).expect("utf-8");
        let s = serve(&yaml).await;
        let index = String::from_utf8(read("index.txt")).expect("utf-8");
        let mut checked = 0;
        for line in index.lines() {
            let mut words: Vec<&str> = line.split(' ').collect();
            let (Some(path), true) = (words.pop(), words.len() >= 3) else {
                panic!("bad index line {line}");
            };
            let name = words[0];
            let status: u16 = words[1].parse().expect("status");
            let content_type = words[2..].join(" ");
            let a = get(&s, path).await;
            let want = String::from_utf8_lossy(&read(name))
                .replace("127.0.0.1:18931", &s.addr.to_string());
            let text = a.text();
            let same_text = text == want || (last_digits && same_but_last_digits(&text, &want));
            if (a.status, a.content_type.as_str()) != (status, content_type.as_str()) || !same_text
            {
                // GOLDEN_OUT=dir: what we answered, for a diff
                if let Ok(out) = std::env::var("GOLDEN_OUT") {
                    let f = format!("{out}/{}_{name}", set.trim_start_matches('/'));
                    std::fs::write(&f, a.text()).unwrap_or_else(|e| panic!("{f}: {e}"));
                }
                failed.push(format!(
                    "{set} {name} {path}: {} {}",
                    a.status, a.content_type
                ));
            }
            checked += 1;
        }
        assert_eq!(checked, count, "{set}");
    }
    assert!(failed.is_empty(), "differ from MapProxy's: {failed:#?}");
}

/// The numbers of a demo viewer page: the map's extent, the grid's extent and resolutions (as
/// `key`, the list as printed), the "Bounding Box" and the resolution table rows. MapProxy's
/// page has them as `const extent = [...]`, ours in the viewer's `config` object.
fn demo_numbers(page: &str, ours: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in page.lines().map(str::trim) {
        let lists: &[(&str, &str)] = if ours {
            &[
                ("extent", "extent: ["),
                ("grid_extent", "gridExtent: ["),
                ("resolutions", "resolutions: ["),
            ]
        } else {
            &[
                ("extent", "const extent = ["),
                ("grid_extent", "const grid_extent = ["),
                ("resolutions", "const resolutions = ["),
            ]
        };
        if !ours || line.contains("{kind: ") {
            for (key, start) in lists {
                if let Some((_, rest)) = line.split_once(start) {
                    let list = rest.split_once(']').map_or(rest, |(l, _)| l);
                    out.push((key.to_string(), list.to_string()));
                }
            }
        }
        if let Some((_, rest)) = line.split_once("<p class=\"code\">") {
            let code = rest.split_once("</p>").map_or(rest, |(c, _)| c);
            out.push(("code".into(), code.to_string()));
        }
        if line.starts_with("<tr><td>") {
            out.push(("row".into(), line.to_string()));
        }
    }
    out.sort();
    out
}

/// The demo viewers of `fixtures/wms/numbers` (TMS, WMTS, WMS; `gen_golden.sh numbers` saved
/// MapProxy 7's pages, listed in `demo.txt`): our pages are laid out differently, their
/// numbers are MapProxy's: a coverage's ints in its own SRS, `res` and `min_res` ints, the
/// TMS grid's computed floats (tms_demo.html, wmts_demo.html, wms_demo.html print them with
/// `str()`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_numbers_as_mapproxy_printed_them() {
    let dir = format!("{}/tests/fixtures/wms/numbers", env!("CARGO_MANIFEST_DIR"));
    let read = |name: &str| {
        std::fs::read_to_string(format!("{dir}/{name}")).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    let s = serve(&read("mapproxy.yaml")).await;
    let mut failed = Vec::new();
    let index = read("demo.txt");
    for line in index.lines() {
        let Some((name, path)) = line.split_once(' ') else {
            panic!("bad index line {line}");
        };
        let a = get(&s, path).await;
        assert_eq!(a.status, 200, "{name} {path}");
        let (ours, theirs) = (
            demo_numbers(&a.text(), true),
            demo_numbers(&read(name), false),
        );
        assert!(!theirs.is_empty(), "{name}");
        let same = ours.len() == theirs.len()
            && ours
                .iter()
                .zip(&theirs)
                .all(|(a, b)| a.0 == b.0 && same_but_last_digits(&a.1, &b.1));
        if !same {
            failed.push(format!("{name}:\n ours   {ours:?}\n theirs {theirs:?}"));
        }
    }
    assert_eq!(index.lines().count(), 20);
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}

/// `bbox_srs: []` is the default list (EPSG:3857, 4326, 900913 as listed in `srs`;
/// `limit_srs_extents`, service/wms.py:468-481), as MapProxy 7 printed it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_bbox_srs_is_the_default_one() {
    let s = serve(
        "services:\n  wms:\n    srs: ['EPSG:4326', 'EPSG:3857']\n    bbox_srs: []\nlayers:\n  - name: dbg\n    title: Debug\n    sources: [dbg]\nsources:\n  dbg:\n    type: debug\n",
    )
    .await;
    let caps = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await
    .text();
    assert!(
        caps.contains("    <LatLonBoundingBox minx=\"-180\" miny=\"-89.999999\" maxx=\"180\" maxy=\"89.999999\" />\n    <BoundingBox SRS=\"EPSG:3857\" minx=\"-20037508.342789244\" miny=\"-20037508.342789244\" maxx=\"20037508.342789244\" maxy=\"20037508.342789244\" />\n    <BoundingBox SRS=\"EPSG:4326\" minx=\"-180\" miny=\"-90\" maxx=\"180\" maxy=\"90\" />\n"),
        "{caps}"
    );
}

/// A number or the text between numbers.
#[derive(Debug, PartialEq)]
enum Token<'a> {
    Text(&'a str),
    Num(&'a str),
}

/// `s` cut into numbers (`-12`, `0.5`, `1e-05`) and the text between them.
fn tokens(s: &str) -> Vec<Token<'_>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let (mut i, mut text_start) = (0, 0);
    while i < b.len() {
        let after_word = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'.');
        let starts =
            b[i].is_ascii_digit() || (b[i] == b'-' && b.get(i + 1).is_some_and(u8::is_ascii_digit));
        if after_word || !starts {
            i += 1;
            continue;
        }
        let start = i;
        i += 1;
        let digits = |i: &mut usize| {
            while *i < b.len() && b[*i].is_ascii_digit() {
                *i += 1;
            }
        };
        digits(&mut i);
        if b.get(i) == Some(&b'.') && b.get(i + 1).is_some_and(u8::is_ascii_digit) {
            i += 1;
            digits(&mut i);
        }
        if b.get(i) == Some(&b'e') {
            let sign = usize::from(matches!(b.get(i + 1), Some(b'-' | b'+')));
            if b.get(i + 1 + sign).is_some_and(u8::is_ascii_digit) {
                i += 1 + sign;
                digits(&mut i);
            }
        }
        if text_start < start {
            out.push(Token::Text(&s[text_start..start]));
        }
        out.push(Token::Num(&s[start..i]));
        text_start = i;
    }
    if text_start < b.len() {
        out.push(Token::Text(&s[text_start..]));
    }
    out
}

/// The same document but for the last digits of floats: proj4rs and MapProxy's PROJ round
/// some transformations differently in the last bit. Ints must be the same ints and floats
/// floats (`5` is not `5.0`), all text the same.
fn same_but_last_digits(ours: &str, theirs: &str) -> bool {
    let is_float = |n: &str| n.contains(['.', 'e']);
    let (a, b) = (tokens(ours), tokens(theirs));
    a.len() == b.len()
        && a.iter().zip(&b).all(|(x, y)| match (x, y) {
            (Token::Num(x), Token::Num(y)) if x != y => {
                let (Ok(p), Ok(q)) = (x.parse::<f64>(), y.parse::<f64>()) else {
                    return false;
                };
                is_float(x) && is_float(y) && (p - q).abs() <= 1e-14 * p.abs().max(1.0)
            }
            _ => x == y,
        })
}

#[test]
fn golden_comparison_tolerates_only_the_last_digits_of_floats() {
    let doc = "<B SRS=\"EPSG:3857\" minx=\"661283.006268542\" miny=\"5\" maxx=\"1e-05\" />";
    assert!(same_but_last_digits(
        doc,
        "<B SRS=\"EPSG:3857\" minx=\"661283.0062685419\" miny=\"5\" maxx=\"1e-05\" />"
    ));
    for other in [
        "<B SRS=\"EPSG:3857\" minx=\"661283.006268542\" miny=\"5.0\" maxx=\"1e-05\" />",
        "<B SRS=\"EPSG:3857\" minx=\"661283.0062685\" miny=\"5\" maxx=\"1e-05\" />",
        "<B SRS=\"EPSG:3857\" minx=\"661283.006268542\" miny=\"6\" maxx=\"1e-05\" />",
        "<B SRS=\"EPSG:4326\" minx=\"661283.006268542\" miny=\"5\" maxx=\"1e-05\" />",
        "<B SRS=\"EPSG:3857\" minx=\"661283.006268542\" miny=\"5\" />",
    ] {
        assert!(!same_but_last_digits(doc, other), "{other}");
    }
}

/// A layer's `md` of the wrong type is a configuration error with file:line and the YAML path,
/// as MapProxy's validator refuses it (config/spec.py:272-317: text is `str`, `width` and
/// `height` `int`, the lists lists of mappings); null is an empty mapping where a mapping goes.
#[test]
fn layer_md_of_the_wrong_type_is_an_error_with_line_and_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    for (md, want) in [
        (
            "{abstract: 5}",
            "mapproxy.yaml:9: layers[0].layers[0].md.abstract: expected a string, found 5",
        ),
        (
            "{abstract: ~}",
            "layers[0].layers[0].md.abstract: expected a string, found null",
        ),
        (
            "[a]",
            "layers[0].layers[0].md: expected a mapping, found a list",
        ),
        (
            "{keyword_list: x}",
            "layers[0].layers[0].md.keyword_list: expected a list, found 'x'",
        ),
        (
            "{keyword_list: [{keywords: [a, 1]}]}",
            "md.keyword_list[0].keywords[1]: expected a string, found 1",
        ),
        (
            "{keyword_list: [{keywords: a}]}",
            "md.keyword_list[0].keywords: expected a list, found 'a'",
        ),
        (
            "{keyword_list: [a]}",
            "md.keyword_list[0]: expected a mapping, found 'a'",
        ),
        (
            "{attribution: [x]}",
            "md.attribution: expected a mapping, found a list",
        ),
        (
            "{attribution: {title: [x]}}",
            "md.attribution.title: expected a string, found a list",
        ),
        (
            "{attribution: {logo: {width: wide}}}",
            "md.attribution.logo.width: expected an integer, found 'wide'",
        ),
        (
            "{identifier: [{name: n, value: 1}]}",
            "md.identifier[0].value: expected a string, found 1",
        ),
        (
            "{metadata: [{url: 1}]}",
            "md.metadata[0].url: expected a string, found 1",
        ),
        (
            "{data: {url: x}}",
            "md.data: expected a list, found a mapping",
        ),
        (
            "{feature_list: [~]}",
            "md.feature_list[0]: expected a mapping, found null",
        ),
    ] {
        std::fs::write(
            &path,
            format!(
                "services:\n  wms:\nlayers:\n  - title: g\n    layers:\n      - name: d\n        title: d\n        sources: [s]\n        md: {md}\n\
                 sources:\n  s:\n    type: debug\n"
            ),
        )
        .expect("write");
        let e = mapproxy_serve_mapproxy::app::build(&path)
            .err()
            .unwrap_or_else(|| panic!("{md} is refused"))
            .to_string();
        assert!(e.contains("mapproxy.yaml:"), "{md}: {e}");
        assert!(e.contains(want), "{md}: {e}");
    }
    // null where a mapping goes: nothing printed
    std::fs::write(
        &path,
        "services:\n  wms:\nlayers:\n  - name: d\n    title: d\n    sources: [s]\n    md: {attribution: ~, unknown: 1}\n\
         sources:\n  s:\n    type: debug\n",
    )
    .expect("write");
    assert!(mapproxy_serve_mapproxy::app::build(&path).is_ok());
}

/// WMTS GetFeatureInfo asks the authorizer for `wmts.featureinfo` with the layer and the
/// tile's extent (MapProxy's `authorize_tile_layer(featureinfo=True)`, service/wmts.py:154-181):
/// `unauthenticated` 401, `none` 403, `partial` without the layer's `featureinfo` 403, `full`
/// and `partial` with it the upstream's answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wmts_featureinfo_is_authorized() {
    use mapproxy_serve_mapproxy::authorize::{
        AuthRequest, Authorized, Authorizer, LayerAccess, Partial,
    };
    use std::sync::atomic::{AtomicU8, Ordering};
    let answer = Arc::new(AtomicU8::new(0));
    let asked = Arc::new(Mutex::new(Vec::new()));
    let (which, log) = (answer.clone(), asked.clone());
    let auth = Authorizer::new(move |r: &AuthRequest<'_>| {
        log.lock().expect("log").push((
            r.service.to_string(),
            r.layers.join(","),
            r.query_extent.map(|e| (e.srs.clone(), e.bbox)),
        ));
        match which.load(Ordering::SeqCst) {
            0 => Authorized::Full,
            1 => Authorized::Unauthenticated,
            2 => Authorized::None,
            3 => Authorized::Partial(Partial::new().layer("q", LayerAccess::tile())),
            _ => Authorized::Partial(Partial::new().layer("q", LayerAccess::all())),
        }
    });
    let s = serve_auth(
        r#"
globals:
  cache:
    base_dir: ./cache
services:
  wmts:
    featureinfo_formats:
      - mimetype: text/plain
        suffix: txt
layers:
  - name: q
    title: Q
    sources: [q_cache]
caches:
  q_cache:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [up]
sources:
  up:
    type: wms
    wms_opts:
      featureinfo: true
    req:
      url: http://UPSTREAM/service
      layers: foo
"#,
        Some(auth),
    )
    .await;
    let url = "/service?SERVICE=WMTS&VERSION=1.0.0&REQUEST=GetFeatureInfo&STYLE=&FORMAT=image/png&TILEMATRIXSET=GLOBAL_WEBMERCATOR&LAYER=q&TILEMATRIX=01&TILEROW=0&TILECOL=1&INFOFORMAT=text/plain&I=17&J=27";
    for (mode, status) in [(0, 200), (1, 401), (2, 403), (3, 403), (4, 200)] {
        answer.store(mode, Ordering::SeqCst);
        let before = s.upstream.queries.lock().expect("log").len();
        let a = get(&s, url).await;
        assert_eq!(a.status, status, "answer {mode}: {}", a.text());
        let after = s.upstream.queries.lock().expect("log").len();
        assert_eq!(after - before, usize::from(status == 200), "answer {mode}");
        let last = asked.lock().expect("log").last().cloned();
        let (service, layers, extent) = last.expect("the authorizer was asked");
        assert_eq!(
            (service.as_str(), layers.as_str()),
            ("wmts.featureinfo", "q")
        );
        // the tile 1/0 of level 1 (rows from the top): the north-east quarter
        let (srs, bbox) = extent.expect("a query extent");
        assert_eq!(srs, "EPSG:3857");
        assert_eq!(bbox, [0.0, 0.0, 20037508.342789244, 20037508.342789244]);
    }
}

/// Which layers a GetMap renders, as MapProxy 7 decides it (service/wms.py:117-126): an
/// opaque layer (a WMS source without `transparent`, within its coverage if it has one)
/// hides the layers asked before it, which are not rendered at all (no upstream request); a
/// group is opaque when one of its children is; a layer's `min_scale`/`max_scale` are
/// MapProxy's (`max_scale` is the coarse end), and a group renders within the merge of its
/// children's ranges. The upstream request counts are those of MapProxy 7 for the same YAML
/// and requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opaque_layers_hide_the_ones_before_and_scale_ranges_as_mapproxy() {
    let s = serve(
        r#"
services:
  wms:
    srs: ['EPSG:4326', 'EPSG:3857']
    md: {title: opaque}
layers:
  - name: cached
    title: cached
    sources: [c]
  - name: direct
    title: direct
    sources: [opaque]
  - name: tdirect
    title: transparent direct
    sources: [transp]
  - name: covered
    title: covered
    sources: [cov]
  - name: grp
    title: group
    layers:
      - name: g1
        title: g1
        sources: [transp]
        max_scale: 50000000
        min_scale: 10
      - name: g2
        title: g2
        sources: [opaque]
        min_scale: 100000
        max_scale: 900000000
globals:
  cache:
    base_dir: ./cache
caches:
  c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [transp]
sources:
  opaque:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: x}
  transp:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: x, transparent: true}
  cov:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: x}
    coverage:
      bbox: [0, 40, 20, 60]
      srs: 'EPSG:4326'
"#,
    )
    .await;
    let cases = [
        // the cache is hidden by the opaque layer after it: only `direct` is asked
        ("cached,direct", "5,45,10,50", 1),
        // a transparent layer after an opaque one: both, in one request to their server
        // (combined_layers: the first one's parameters, both layers)
        ("direct,tdirect", "5,45,10,50", 1),
        // within the coverage the covered source is opaque, partly outside it is not (and a
        // source with a coverage is not combined with one without)
        ("tdirect,covered", "5,45,10,50", 1),
        ("tdirect,covered", "-5,45,10,50", 2),
        // the group is opaque (g2): `direct` before it is hidden; its two sources combined
        ("direct,grp", "5,45,10,50", 1),
        ("grp", "5,45,10,50", 1),
        // below the group's merged range (g1's min_scale 10): nothing
        ("grp", "5,45,5.000001,45.000001", 0),
        ("grp", "-180,-90,180,90", 1),
        // g1 (max_scale 5e7) draws nothing of the world map, g2 (9e8) does
        ("g1", "-180,-90,180,90", 0),
        ("g2", "-180,-90,180,90", 1),
    ];
    let mut combined = Vec::new();
    for (layers, bbox, asked) in cases {
        let before = s.upstream.queries.lock().expect("log").len();
        let a = get(
            &s,
            &getmap("1.1.1", layers, "EPSG:4326", bbox, 256, 256, "image/png"),
        )
        .await;
        assert_eq!(a.status, 200, "{layers} {bbox}: {}", a.text());
        let log = s.upstream.queries.lock().expect("log");
        assert_eq!(
            log.len() - before,
            asked,
            "{layers} {bbox}: upstream requests"
        );
        if (layers == "direct,tdirect" || layers == "grp") && asked == 1 {
            combined.push(log[before].to_ascii_lowercase());
        }
    }
    // MapProxy's combined requests: `layers=x,x`, the first source's `transparent`
    assert!(
        combined[0].contains("layers=x%2cx") || combined[0].contains("layers=x,x"),
        "{combined:?}"
    );
    assert!(!combined[0].contains("transparent"), "{combined:?}");
    assert!(combined[1].contains("transparent=true"), "{combined:?}");
    // the scale hints: MapProxy's ScaleHint of g1 (min_scale 10, max_scale 5e7) and the
    // group's merged range
    let caps = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await;
    let text = caps.text();
    for hint in [
        // grp: the merge of g1 and g2
        "<ScaleHint min=\"0.0039597979746446655\" max=\"356381.8177180199\" />",
        "<ScaleHint min=\"0.0039597979746446655\" max=\"19798.989873223327\" />",
        "<ScaleHint min=\"39.597979746446654\" max=\"356381.8177180199\" />",
    ] {
        assert!(text.contains(hint), "{hint} in {text}");
    }
    let caps = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.3.0",
    )
    .await;
    let text = caps.text();
    assert!(
        text.contains("<MinScaleDenominator>10.0</MinScaleDenominator>\n      <MaxScaleDenominator>900000000.0</MaxScaleDenominator>")
            && text.contains("<MinScaleDenominator>10.0</MinScaleDenominator>\n        <MaxScaleDenominator>50000000.0</MaxScaleDenominator>"),
        "{text}"
    );
}

/// A `bbox_srs` entry with a bbox limits maps in its SRS (MapProxy's `srs_extents`,
/// service/wms.py:103-115): the part of the map inside it is asked for and placed into the
/// map (BGCOLOR around it), sizes and offsets as MapProxy's `bbox_position_in_image` (ints
/// before the size: 126×153 for the second map, where MapProxy 7 asked for the same); a map
/// outside it is blank without a request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bbox_srs_with_a_bbox_limits_maps_as_mapproxy() {
    let s = serve(
        r#"
services:
  wms:
    srs: ['EPSG:4326', 'EPSG:3857']
    bbox_srs:
      - srs: 'EPSG:4326'
        bbox: [0, 40, 20, 60]
      - 'EPSG:3857'
    md: {title: limited}
layers:
  - name: direct
    title: direct
    sources: [opaque]
globals:
  image:
    paletted: false
sources:
  opaque:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: x}
"#,
    )
    .await;
    let red = [255, 0, 0, 255];
    for (bbox, asked) in [
        ("-10,30,30,70", Some("width=128&height=150")),
        ("-10.3,30.7,30.1,69.9", Some("width=126&height=153")),
        ("25,30,30,35", None),
        ("5,45,10,50", Some("width=256&height=300")),
    ] {
        let before = s.upstream.queries.lock().expect("log").len();
        let a = get(
            &s,
            &format!(
                "{}&BGCOLOR=0xff0000",
                getmap("1.1.1", "direct", "EPSG:4326", bbox, 256, 300, "image/png")
            ),
        )
        .await;
        assert_eq!(a.status, 200, "{bbox}: {}", a.text());
        let img = a.image();
        assert_eq!(img.dimensions(), (256, 300), "{bbox}");
        let log = s.upstream.queries.lock().expect("log");
        match asked {
            Some(size) => {
                assert_eq!(log.len() - before, 1, "{bbox}");
                let q = log[before].to_ascii_lowercase();
                assert!(q.contains(size), "{bbox}: {q}");
                if bbox != "5,45,10,50" {
                    assert!(
                        q.contains("bbox=0.0%2c40.0%2c20.0%2c60.0")
                            || q.contains("bbox=0.0,40.0,20.0,60.0"),
                        "{bbox}: {q}"
                    );
                    assert_eq!(img.get_pixel(0, 0).0, red, "{bbox}");
                }
                assert_ne!(img.get_pixel(128, 150).0, red, "{bbox}");
            }
            None => {
                assert_eq!(log.len(), before, "{bbox}: no request");
                assert!(img.pixels().all(|p| p.0 == red), "{bbox}");
            }
        }
    }
}

/// A source's `min_res`/`max_res` (MapProxy's source `res_range`, source/wms.py:67 and
/// cache/tile_creator.py:129-138): outside it the source has no image. A direct layer draws
/// nothing and asks nothing; a cache makes no tile (TMS answers the empty tile, nothing
/// stored), inside it the upstream is asked. Request counts as MapProxy 7's for this YAML.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_resolution_ranges_as_mapproxy() {
    let s = serve(
        r#"
services:
  wms:
    srs: ['EPSG:4326', 'EPSG:3857']
    md: {title: ranges}
  tms:
layers:
  - name: lim
    title: lim
    sources: [lim_src]
  - name: cached
    title: cached
    sources: [lc]
globals:
  cache:
    base_dir: ./cache
caches:
  lc:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [lim_src]
sources:
  lim_src:
    type: wms
    min_res: 1000
    req: {url: 'http://UPSTREAM/service', layers: a, transparent: true}
"#,
    )
    .await;
    let count = || s.upstream.queries.lock().expect("log").len();
    let before = count();
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "lim",
            "EPSG:4326",
            "-180,-90,180,90",
            256,
            256,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert!(
        a.image().pixels().all(|p| p.0 == [255, 255, 255, 255]),
        "nothing drawn on the white background"
    );
    assert_eq!(count(), before, "no request outside the range");
    let a = get(
        &s,
        &getmap(
            "1.1.1",
            "lim",
            "EPSG:4326",
            "5,45,5.1,45.1",
            256,
            256,
            "image/png",
        ),
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(count(), before + 1, "asked inside the range");
    // TMS level 0 (the grid's level 1 with the global profile's offset, 78 km a pixel): the
    // empty tile, nothing asked or stored
    let a = get(&s, "/tms/1.0.0/cached/EPSG3857/0/0/0.png").await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert!(a.image().pixels().all(|p| p.0[3] == 0));
    assert_eq!(count(), before + 1);
    assert!(!s._dir.path().join("cache/lc_EPSG3857/01").exists());
    // TMS level 10 (grid level 11, 76 m): made from the source and stored
    let a = get(&s, "/tms/1.0.0/cached/EPSG3857/10/500/600.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(count(), before + 2);
    assert!(s._dir.path().join("cache/lc_EPSG3857/11").is_dir());
}

/// MapProxy's TMS and WMTS capabilities are plain tempita templates (mapproxy/template.py):
/// titles and names are printed as written, not XML-escaped, as in its WMS documents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tile_service_capabilities_print_titles_as_written() {
    let s = serve(
        r#"
services:
  tms:
  wmts:
  wms:
    md: {title: 'Maps & more'}
layers:
  - name: t
    title: 'Roads & <rails>'
    sources: [c]
globals:
  cache:
    base_dir: ./cache
caches:
  c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [d]
sources:
  d:
    type: debug
"#,
    )
    .await;
    let tms = get(&s, "/tms/1.0.0/").await.text();
    assert!(tms.contains("<Title>Maps & more</Title>"), "{tms}");
    assert!(tms.contains("title=\"Roads & <rails>\""), "{tms}");
    let map = get(&s, "/tms/1.0.0/t/EPSG3857").await.text();
    assert!(map.contains("<Title>Roads & <rails></Title>"), "{map}");
    let wmts = get(&s, "/wmts/1.0.0/WMTSCapabilities.xml").await.text();
    assert!(
        wmts.contains("<ows:Title>Roads & <rails></ows:Title>"),
        "{wmts}"
    );
    assert!(
        wmts.contains("<ows:Title>Maps & more</ows:Title>"),
        "{wmts}"
    );
}

/// Tagged sources (`wms1:a,b`, config/configuration/source.py:22-75): the source with its
/// `req.layers` replaced by the tag, for maps, feature info and legends of a layer and for a
/// cache. The queries are what MapProxy 7 sends for the same YAML (checked against
/// `mapproxy-util serve-develop` and a logging upstream).
#[tokio::test]
async fn tagged_sources_ask_the_tag_layers() {
    let s = serve(
        "services:
  wms:
  tms:
layers:
  - name: direct
    title: direct
    sources: ['wms1:a,b']
  - name: cached
    title: cached
    sources: [c1]
caches:
  c1:
    grids: [GLOBAL_WEBMERCATOR]
    sources: ['wms1:c']
    cache: {type: file}
sources:
  wms1:
    type: wms
    req: {url: 'http://UPSTREAM/svc', layers: 'a,b,c', transparent: true}
    wms_opts: {featureinfo: true, legendgraphic: true}
",
    )
    .await;
    let taken = |s: &Served| std::mem::take(&mut *s.upstream.queries.lock().expect("log"));
    let a = get(
        &s,
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=direct&SRS=EPSG:4326&BBOX=0,0,10,10&WIDTH=100&HEIGHT=100&FORMAT=image/png&STYLES=",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        taken(&s),
        ["layers=a,b&transparent=True&bbox=0.0,0.0,10.0,10.0&width=100&height=100&srs=EPSG%3A4326&format=image%2Fpng&request=GetMap&version=1.1.1&service=WMS&styles="]
    );
    let a = get(
        &s,
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=direct&QUERY_LAYERS=direct&SRS=EPSG:4326&BBOX=0,0,10,10&WIDTH=100&HEIGHT=100&FORMAT=image/png&STYLES=&X=10&Y=10",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        taken(&s),
        ["layers=a,b&transparent=True&bbox=0.0,0.0,10.0,10.0&width=100&height=100&x=10&y=10&query_layers=a,b&format=image%2Fpng&srs=EPSG%3A4326&request=GetFeatureInfo&version=1.1.1&service=WMS&styles="]
    );
    let a = get(
        &s,
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetLegendGraphic&LAYER=direct&FORMAT=image/png",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        taken(&s),
        [
            "transparent=True&layer=a&format=image%2Fpng&request=GetLegendGraphic&service=WMS&sld_version=1.1.0&version=1.1.1&styles=",
            "transparent=True&layer=b&format=image%2Fpng&request=GetLegendGraphic&service=WMS&sld_version=1.1.0&version=1.1.1&styles="
        ]
    );
    let a = get(&s, "/tms/1.0.0/cached/EPSG3857/1/0/0.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        taken(&s),
        ["layers=c&transparent=True&format=image%2Fpng&bbox=-20037508.342789244,-20037508.342789244,20037508.342789244,20037508.342789244&width=1024&height=1024&srs=EPSG%3A3857&request=GetMap&version=1.1.1&service=WMS&styles="]
    );
    let a = get(
        &s,
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=cached&QUERY_LAYERS=cached&SRS=EPSG:4326&BBOX=0,0,10,10&WIDTH=100&HEIGHT=100&FORMAT=image/png&STYLES=&X=10&Y=10",
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        taken(&s),
        ["layers=c&transparent=True&bbox=0.0,0.0,10.0,10.0&width=100&height=100&x=10&y=10&query_layers=c&format=image%2Fpng&srs=EPSG%3A4326&request=GetFeatureInfo&version=1.1.1&service=WMS&styles="]
    );
}

/// The tagged references MapProxy 7 refuses, with its messages (source.py:39-41, 55-56).
#[test]
fn tagged_sources_refused_as_mapproxy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("mapproxy.yaml");
    let wms = "sources:\n  wms1:\n    type: wms\n    req: {url: 'http://127.0.0.1:9/svc', layers: 'a,b,c'}\n  dbg:\n    type: debug\n";
    for (yaml, want) in [
        (
            "layers:\n  - name: d\n    title: d\n    sources: ['wms1:a,x']\n",
            "mapproxy.yaml:4: layers (a,x) not supported by source (a,b,c)",
        ),
        (
            "layers:\n  - name: d\n    title: d\n    sources: ['dbg:a']\n",
            "mapproxy.yaml:4: found ':' in: 'dbg:a'. tagged sources only supported for WMS/Mapserver/Mapnik",
        ),
        (
            "caches:\n  c1:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: ['dbg:a']\n",
            "found ':' in: 'dbg:a'. tagged sources only supported for WMS/Mapserver/Mapnik",
        ),
    ] {
        std::fs::write(&path, format!("services:\n  wms:\n{yaml}{wms}")).expect("write");
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        let e = rt
            .block_on(async { mapproxy_serve_mapproxy::app::build(&path).err() })
            .expect("refused")
            .to_string();
        assert!(e.contains(want), "{e}");
    }
}

/// A cache's `cache.coverage` (config/configuration/cache.py:20-24, cache/tile_manager.py:110-117):
/// tiles outside it are blank and never asked for; the cache's extent in the capabilities is
/// the coverage's (cache.py:712-714). What MapProxy 7 does for the same YAML (checked against
/// `mapproxy-util serve-develop` and a logging upstream: the same one query, the same
/// LatLonBoundingBox, blank transparent tiles outside).
#[tokio::test]
async fn cache_coverage_limits_tiles_as_mapproxy() {
    let s = serve(
        "services:
  wms:
  tms:
  wmts:
layers:
  - name: cov
    title: cov
    sources: [c1]
caches:
  c1:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [wms1]
    meta_size: [1, 1]
    cache:
      type: file
      coverage:
        bbox: [5, 45, 15, 55]
        srs: 'EPSG:4326'
sources:
  wms1:
    type: wms
    req: {url: 'http://UPSTREAM/svc', layers: 'a', transparent: true}
",
    )
    .await;
    let taken = |s: &Served| std::mem::take(&mut *s.upstream.queries.lock().expect("log"));
    let a = get(&s, "/tms/1.0.0/cov/EPSG3857/2/4/5.png").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(
        taken(&s),
        ["layers=a&transparent=True&format=image%2Fpng&bbox=-1565430.3392804097,3443946.7464169012,6574807.424977721,11584184.510675032&width=416&height=416&srs=EPSG%3A3857&request=GetMap&version=1.1.1&service=WMS&styles="]
    );
    for t in ["2/0/0", "2/4/4"] {
        let a = get(&s, &format!("/tms/1.0.0/cov/EPSG3857/{t}.png")).await;
        assert_eq!(a.status, 200, "{t}: {}", a.text());
        assert_eq!(a.content_type, "image/png", "{t}");
        let img = a.image();
        assert_eq!(img.dimensions(), (256, 256), "{t}");
        assert!(img.pixels().all(|p| p.0[3] == 0), "{t}: blank");
    }
    assert!(taken(&s).is_empty(), "nothing asked outside the coverage");
    let stored: Vec<_> = walkdir(&s._dir.path().join("cache_data"))
        .into_iter()
        .filter(|f| f.ends_with(".png"))
        .collect();
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(
        stored[0].ends_with("c1_EPSG3857/03/000/000/004/000/000/002.png"),
        "{stored:?}"
    );
    let caps = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await
    .text();
    // seeding levels 0-3 makes only the tiles meeting the coverage: MapProxy 7's
    // mapproxy-seed asks 4 times into an empty cache and stores these 4 tiles (its seeder's
    // load_tile_coords, seed/seeder.py:157)
    let dir = s._dir.path().to_path_buf();
    std::fs::write(
        dir.join("seed.yaml"),
        "seeds:\n  s:\n    caches: [c1]\n    levels:\n      to: 3\n",
    )
    .expect("write");
    let code = tokio::task::spawn_blocking(move || {
        mapproxy_serve_mapproxy::seed::main(
            &dir.join("mapproxy.yaml"),
            &dir.join("seed.yaml"),
            &mapproxy_serve_mapproxy::seed::Options {
                concurrency: 1,
                quiet: 2,
                ..Default::default()
            },
            Box::new(std::io::sink()),
        )
    })
    .await
    .expect("seed");
    assert_eq!(code, 0);
    // the level-3 tile is stored already (MapProxy's second run asks nothing either)
    let q = taken(&s);
    assert_eq!(q.len(), 3, "{q:#?}");
    let stored: Vec<String> = walkdir(&s._dir.path().join("cache_data"))
        .into_iter()
        .filter_map(|f| f.split_once("cache_data/").map(|(_, t)| t.to_string()))
        .filter(|f| f.ends_with(".png"))
        .collect();
    assert_eq!(
        stored,
        [
            "c1_EPSG3857/00/000/000/000/000/000/000.png",
            "c1_EPSG3857/01/000/000/001/000/000/000.png",
            "c1_EPSG3857/02/000/000/002/000/000/001.png",
            "c1_EPSG3857/03/000/000/004/000/000/002.png"
        ],
        "{q:#?}"
    );
    // the tile services' extent: MapProxy 7's TileMap and WMTS capabilities
    let tm = get(&s, "/tms/1.0.0/cov/EPSG3857").await.text();
    assert!(
        tm.contains("<BoundingBox minx=\"556597.4539663679\" miny=\"5621521.486192066\" maxx=\"1669792.3618991035\" maxy=\"7361866.113051188\" />\n  <Origin x=\"556597.4539663679\" y=\"5621521.486192066\" />"),
        "{tm}"
    );
    let wmts = get(&s, "/wmts/1.0.0/WMTSCapabilities.xml").await.text();
    // MapProxy 7: `5 45` / `15 55` (the YAML's integers)
    assert!(
        wmts.contains("<ows:LowerCorner>5 45</ows:LowerCorner>\n        <ows:UpperCorner>15 55</ows:UpperCorner>"),
        "{wmts}"
    );
    // MapProxy 7 prints the YAML's integers as written (`minx="5"`)
    assert!(
        caps.contains("<LatLonBoundingBox minx=\"5\" miny=\"45\" maxx=\"15\" maxy=\"55\" />"),
        "{caps}"
    );
    assert!(
        caps.contains("<BoundingBox SRS=\"EPSG:3857\" minx=\"556597.4539663679\" miny=\"5621521.486192066\" maxx=\"1669792.3618991035\" maxy=\"7361866.113051188\" />"),
        "{caps}"
    );
    // `clip: true` (tiles masked on the way out) is not supported yet
    let path = s._dir.path().join("clip.yaml");
    std::fs::write(
        &path,
        "caches:\n  c1:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: []\n    cache:\n      type: file\n      coverage:\n        bbox: [5, 45, 15, 55]\n        srs: 'EPSG:4326'\n        clip: true\n",
    )
    .expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("clip.yaml:")
            && e.contains("caches.c1.cache.coverage: clip is not supported yet"),
        "{e}"
    );
}

/// The files under `dir`, as strings, sorted.
fn walkdir(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p.display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// The Python of `MAPPROXY_PYTHON` (MapProxy 7); `None` (after a visible SKIP) when it is not
/// set outside CI.
fn mapproxy_python(test: &str) -> Option<String> {
    match std::env::var("MAPPROXY_PYTHON") {
        Ok(p) if !p.is_empty() => Some(p),
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("MAPPROXY_PYTHON is not set: set it to a python with MapProxy 7 installed");
            }
            println!("SKIP: {test}: set MAPPROXY_PYTHON to a python with MapProxy 7");
            None
        }
    }
}

/// MapProxy 7's WSGI app of a YAML, served by wsgiref on 127.0.0.1:0 (its port printed
/// first), one process: killed when dropped.
struct MapProxy7 {
    child: std::process::Child,
    addr: SocketAddr,
}

impl Drop for MapProxy7 {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const MAPPROXY7_SERVER: &str = r#"
import sys
from wsgiref.simple_server import make_server, WSGIRequestHandler
from mapproxy.wsgiapp import make_wsgi_app
class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass
srv = make_server('127.0.0.1', 0, make_wsgi_app(sys.argv[1]), handler_class=Quiet)
print(srv.server_port, flush=True)
srv.serve_forever()
"#;

async fn mapproxy7(python: &str, yaml: &std::path::Path) -> MapProxy7 {
    use std::io::BufRead;
    let mut child = std::process::Command::new(python)
        .args(["-c", MAPPROXY7_SERVER])
        .arg(yaml)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run MAPPROXY_PYTHON={python}: {e}"));
    let stdout = child.stdout.take().expect("stdout");
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        std::io::BufReader::new(stdout)
            .read_line(&mut line)
            .map(|_| line)
    });
    let line = tokio::time::timeout(std::time::Duration::from_secs(120), line)
        .await
        .expect("MapProxy 7 starts within 120 s")
        .expect("join")
        .expect("read its port");
    let port: u16 = line.trim().parse().unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("MapProxy 7 did not print its port: {line:?}")
    });
    MapProxy7 {
        child,
        addr: SocketAddr::from(([127, 0, 0, 1], port)),
    }
}

/// `yaml` served here ([`serve`]) and by MapProxy 7 ([`mapproxy7`], its cache in the returned
/// directory), both over the one loopback upstream; MapProxy 7 runs while the last value
/// lives.
async fn serve_beside_mapproxy7(
    python: &str,
    yaml: &str,
) -> (Served, Served, tempfile::TempDir, MapProxy7) {
    let ours = serve(yaml).await;
    let theirs_dir = tempfile::tempdir().expect("tempdir");
    let theirs_yaml = theirs_dir.path().join("mapproxy.yaml");
    std::fs::write(
        &theirs_yaml,
        yaml.replace("UPSTREAM", &ours.upstream_addr.to_string()),
    )
    .expect("write");
    let theirs = mapproxy7(python, &theirs_yaml).await;
    let theirs_served = Served {
        addr: theirs.addr,
        upstream_addr: ours.upstream_addr,
        upstream: ours.upstream.clone(),
        _dir: tempfile::tempdir().expect("tempdir"),
    };
    (ours, theirs_served, theirs_dir, theirs)
}

/// The files under `dir` (lock files and directories left out) with each one's md5.
fn cache_files(dir: &std::path::Path) -> std::collections::BTreeMap<String, String> {
    use md5::{Digest, Md5};
    let mut out = std::collections::BTreeMap::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".lck") || name.ends_with(".locks") || name.contains("locks") {
                continue;
            }
            if p.is_dir() {
                todo.push(p);
            } else if let Ok(data) = std::fs::read(&p) {
                let rel = p.strip_prefix(dir).unwrap_or(&p).display().to_string();
                out.insert(rel, format!("{:x}", Md5::digest(&data)));
            }
        }
    }
    out
}

/// MapProxy 7 (MAPPROXY_PYTHON) and this app, one YAML each, over the same loopback WMS:
/// the TMS tiles, single-tile GetMaps and the cache files they write are the same bytes for
/// the default paletted PNG, a truecolour PNG (`colors: 0`), transparent sources, a `mixed`
/// cache (paletted PNG tiles, as its WMS source gives it 256 colours) and a JPEG cache; and
/// GetMaps that resample (a resolution between two levels: Pillow's `EXTENT`) and reproject
/// (EPSG:4326 from the 3857 caches: `transform_meshes` and `MESH`), bicubic (the default),
/// bilinear (`png_bl`) and nearest (`tc_nn`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tiles_and_cache_files_are_mapproxy7s_bytes() {
    let Some(python) = mapproxy_python("tiles_and_cache_files_are_mapproxy7s_bytes") else {
        return;
    };
    let yaml = r#"
services:
  tms:
  wms:
    srs: ['EPSG:3857', 'EPSG:4326']
layers:
  - {name: png, title: png, sources: [png]}
  - {name: png_t, title: png_t, sources: [png_t]}
  - {name: tc, title: tc, sources: [tc]}
  - {name: tc_t, title: tc_t, sources: [tc_t]}
  - {name: mixed, title: mixed, sources: [mixed]}
  - {name: jpeg, title: jpeg, sources: [jpeg]}
  - {name: pal, title: pal, sources: [pal]}
  - {name: pal_tc, title: pal_tc, sources: [pal_tc]}
  - {name: pal_t, title: pal_t, sources: [pal_t]}
  - {name: pal4, title: pal4, sources: [pal4]}
  - {name: pal4_tc, title: pal4_tc, sources: [pal4_tc]}
  - {name: pal_trns_tc, title: pal_trns_tc, sources: [pal_trns_tc]}
  - {name: pal16a, title: pal16a, sources: [pal16a]}
  - {name: pal16a_tc, title: pal16a_tc, sources: [pal16a_tc]}
  - {name: png_bl, title: png_bl, sources: [png_bl]}
  - {name: tc_nn, title: tc_nn, sources: [tc_nn]}
caches:
  png_bl: {grids: [GLOBAL_WEBMERCATOR], sources: [opaque], image: {resampling_method: bilinear}}
  tc_nn:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [holes]
    image: {colors: 0, transparent: true, resampling_method: nearest}
  png: {grids: [GLOBAL_WEBMERCATOR], sources: [opaque]}
  png_t: {grids: [GLOBAL_WEBMERCATOR], sources: [holes]}
  tc: {grids: [GLOBAL_WEBMERCATOR], sources: [opaque], image: {colors: 0}}
  tc_t: {grids: [GLOBAL_WEBMERCATOR], sources: [holes], image: {colors: 0, transparent: true}}
  mixed: {grids: [GLOBAL_WEBMERCATOR], sources: [holes], format: mixed, request_format: image/png}
  jpeg: {grids: [GLOBAL_WEBMERCATOR], sources: [opaque], format: image/jpeg}
  # paletted sources: a default (256 colours), a truecolour (colors: 0) and a transparent cache
  pal: {grids: [GLOBAL_WEBMERCATOR], sources: [pal]}
  pal_tc: {grids: [GLOBAL_WEBMERCATOR], sources: [pal], image: {colors: 0}}
  pal_t: {grids: [GLOBAL_WEBMERCATOR], sources: [pal_trns_t], image: {transparent: true}}
  pal4: {grids: [GLOBAL_WEBMERCATOR], sources: [pal4]}
  pal4_tc: {grids: [GLOBAL_WEBMERCATOR], sources: [pal4], image: {colors: 0}}
  pal_trns_tc: {grids: [GLOBAL_WEBMERCATOR], sources: [pal_trns], image: {colors: 0}}
  pal16a: {grids: [GLOBAL_WEBMERCATOR], sources: [pal16a]}
  pal16a_tc: {grids: [GLOBAL_WEBMERCATOR], sources: [pal16a], image: {colors: 0}}
sources:
  opaque:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: a}
  holes:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: holes, transparent: true}
  pal:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: pal}
  pal4:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: pal4}
  pal_trns:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: pal_trns}
  pal_trns_t:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: pal_trns, transparent: true}
  pal16a:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: pal16a}
globals:
  cache:
    # meta tiles split with a buffer, small enough for a debug build's upstream
    meta_size: [2, 2]
    meta_buffer: 20
"#;
    let (ours, theirs_served, theirs_dir, _theirs) = serve_beside_mapproxy7(&python, yaml).await;

    let mut paths = Vec::new();
    let pal_layers = [
        "pal",
        "pal_tc",
        "pal_t",
        "pal4",
        "pal4_tc",
        "pal_trns_tc",
        "pal16a",
        "pal16a_tc",
    ];
    let base_layers = ["png", "png_t", "tc", "tc_t", "mixed", "jpeg"];
    for layer in base_layers.iter().chain(&pal_layers) {
        let layer = *layer;
        let ext = if layer == "jpeg" { "jpeg" } else { "png" };
        for (z, x, y) in [
            (0, 0, 0),
            (1, 1, 0),
            (2, 1, 2),
            (3, 5, 3),
            (4, 8, 9),
            (5, 17, 20),
        ] {
            paths.push(format!("/tms/1.0.0/{layer}/EPSG3857/{z}/{x}/{y}.{ext}"));
        }
        // a GetMap that is one cached tile (z 2, the tile above the origin's east)
        let q = 20037508.342789244 / 2.0;
        for transparent in ["false", "true"] {
            paths.push(format!(
                "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS={layer}&STYLES=&SRS=EPSG:3857&BBOX=0,{q},{q},{}&WIDTH=256&HEIGHT=256&FORMAT=image/png&TRANSPARENT={transparent}",
                2.0 * q
            ));
        }
    }
    // without the turbojpeg feature, the JPEG cache's maps differ: its tiles are decoded by
    // zune-jpeg, a few levels off libjpeg's pixels
    // a transparent cache's resampled or reprojected map over an opaque background
    // (TRANSPARENT=false) differs by the compositing, not the transform (the same maps with
    // TRANSPARENT=true are equal): MapProxy pastes the RGBA result onto its RGB background
    // with Pillow's `BLEND` rounding (LayerMerger.merge, Paste.c), image/codec.rs's `over`
    // blends in floats as image-rs does
    let composited = |p: &str| {
        ["LAYERS=png_t&", "LAYERS=tc_t&", "LAYERS=mixed&"]
            .iter()
            .any(|l| p.contains(l))
            && p.contains("TRANSPARENT=false")
            && (p.contains("WIDTH=400&HEIGHT=300") || p.contains("SRS=EPSG:4326"))
    };
    let known =
        |p: &str| (cfg!(not(feature = "turbojpeg")) && p.contains("LAYERS=jpeg&")) || composited(p);
    // maps of 2×2 tiles (z 3), stitched, not resampled
    let t3 = 20037508.342789244 / 4.0;
    // maps inside one tile (z 2, the tile above the origin's east) at its resolution: a crop
    // of that tile (a paletted one is cropped to its palette and written as it is)
    let res2 = 20037508.342789244 / 2.0 / 256.0;
    let (top, left) = (20037508.342789244, 0.0);
    for layer in base_layers.iter().chain(&pal_layers) {
        for transparent in ["false", "true"] {
            paths.push(format!(
                "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS={layer}&STYLES=&SRS=EPSG:3857&BBOX={},{},{},{}&WIDTH=128&HEIGHT=100&FORMAT=image/png&TRANSPARENT={transparent}",
                left + 32.0 * res2,
                top - 140.0 * res2,
                left + 160.0 * res2,
                top - 40.0 * res2,
            ));
        }
    }
    for layer in [
        "png", "png_t", "tc_t", "mixed", "jpeg", "pal", "pal_tc", "pal4_tc",
    ] {
        for transparent in ["false", "true"] {
            paths.push(format!(
                "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS={layer}&STYLES=&SRS=EPSG:3857&BBOX=0,0,{},{}&WIDTH=512&HEIGHT=512&FORMAT=image/png&TRANSPARENT={transparent}",
                2.0 * t3,
                2.0 * t3
            ));
        }
    }
    // maps resampled (the resolution between z 2 and z 3) and reprojected (EPSG:4326 from the
    // 3857 tiles), each layer as it is and over its transparency
    let wms = "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&STYLES=&FORMAT=image/png";
    for layer in [
        "png", "png_t", "tc", "tc_t", "mixed", "jpeg", "png_bl", "tc_nn",
    ] {
        for transparent in ["false", "true"] {
            paths.push(format!(
                "{wms}&LAYERS={layer}&SRS=EPSG:3857&BBOX=-3000000,-2000000,7000000,5500000&WIDTH=400&HEIGHT=300&TRANSPARENT={transparent}"
            ));
            paths.push(format!(
                "{wms}&LAYERS={layer}&SRS=EPSG:4326&BBOX=-30,-20,40,50&WIDTH=350&HEIGHT=300&TRANSPARENT={transparent}"
            ));
        }
    }
    let mut differ = Vec::new();
    // every request is sent to both, in order (a known one may make tiles later ones read)
    for p in &paths {
        let a = get(&theirs_served, p).await;
        let b = get(&ours, p).await;
        assert_eq!(a.status, 200, "MapProxy 7 {p}: {}", a.text());
        if a.body != b.body && !known(p) {
            // MPS_DIFF_DIR=dir: each differing pair written there, for a closer look
            if let Ok(dir) = std::env::var("MPS_DIFF_DIR") {
                let n = differ.len();
                let _ = std::fs::write(format!("{dir}/{n}-mapproxy7"), &a.body);
                let _ = std::fs::write(format!("{dir}/{n}-ours"), &b.body);
            }
            differ.push(format!(
                "{p}: MapProxy {} bytes {}, ours {} bytes {} ({})",
                a.body.len(),
                a.content_type,
                b.body.len(),
                b.content_type,
                b.status
            ));
        }
    }
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{differ:#?}",
        differ.len(),
        paths.len()
    );

    let a = cache_files(&theirs_dir.path().join("cache_data"));
    let b = cache_files(&ours._dir.path().join("cache_data"));
    assert!(a.len() > 100, "{} files", a.len());
    let names_a: Vec<&String> = a.keys().collect();
    let names_b: Vec<&String> = b.keys().collect();
    assert_eq!(names_a, names_b, "the same cache files");
    let differ: Vec<&String> = a.keys().filter(|k| a.get(*k) != b.get(*k)).collect();
    assert!(
        differ.is_empty(),
        "{} of {} files differ: {differ:?}",
        differ.len(),
        a.len()
    );
}

/// MapProxy's system test `test_cache_coverage.py` (fixture `cache_coverage.yaml`, its two
/// GeoJSON files in tests/fixtures/coverage/): caches whose coverage is a bbox, an
/// `intersection` of two bboxes and an `intersection` of two GeoJSON data sources. The extents
/// the capabilities print are MapProxy's: the bbox as written, the combined ones as floats
/// (shapely's bounds), in TMS, WMTS and WMS.
#[tokio::test]
async fn combined_coverages_as_mapproxys_system_test() {
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/coverage");
    let yaml = r#"
services:
  demo:
  tms:
  kml:
  wmts:
  wms:
    md:
      title: MapProxy test fixture
layers:
  - name: bbox_coverage_cache
    title: bbox_coverage_cache
    sources: [bbox_coverage_cache]
  - name: intersection_coverage_cache
    title: intersection_coverage_cache
    sources: [intersection_coverage_cache]
  - name: datasource_coverage_cache
    title: datasource_coverage_cache
    sources: [datasource_coverage_cache]
parts:
  coverages:
    bbox_coverage: &bbox_coverage
      bbox: [-50, -50, 50, 50]
      srs: EPSG:4326
    intersection_coverage: &intersection_coverage
      intersection:
        - bbox: [-50, -57, 53, 59]
          srs: 'EPSG:4326'
        - bbox: [-48, -56, 51, 58]
          srs: 'EPSG:4326'
    datasource_coverage: &datasource_coverage
      intersection:
        - datasource: 'FIXTURES/boundary.geojson'
          srs: 'EPSG:4326'
        - datasource: 'FIXTURES/bbox.geojson'
          srs: 'EPSG:4326'
caches:
  bbox_coverage_cache:
    grids: [crs84quad]
    sources: [wms_source]
    cache: {type: geopackage, filename: test.gpkg, table_name: test, coverage: *bbox_coverage}
  intersection_coverage_cache:
    grids: [crs84quad]
    sources: [wms_source]
    cache: {type: geopackage, filename: test.gpkg, table_name: test, coverage: *intersection_coverage}
  datasource_coverage_cache:
    grids: [crs84quad]
    sources: [wms_source]
    cache: {type: geopackage, filename: test.gpkg, table_name: test, coverage: *datasource_coverage}
sources:
  wms_source:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: 'foo,bar'}
grids:
  crs84quad:
    name: InspireCrs84Quad
    srs: 'EPSG:4326'
    bbox: [-180, -90, 180, 90]
    origin: 'ul'
    min_res: 0.703125
"#
    .replace("FIXTURES", &fixtures.to_string_lossy());
    let s = serve(&yaml).await;
    let attrs = |doc: &str, elem: &str, names: [&str; 4]| -> Vec<[String; 4]> {
        let opts = roxmltree::ParsingOptions {
            allow_dtd: true,
            ..Default::default()
        };
        let doc = roxmltree::Document::parse_with_options(doc, opts).expect("xml");
        doc.descendants()
            .filter(|n| n.tag_name().name() == elem)
            .map(|n| names.map(|a| n.attribute(a).unwrap_or("").to_string()))
            .collect()
    };
    let want = [
        ["-50", "-50", "50", "50"],
        ["-48.0", "-56.0", "51.0", "58.0"],
        [
            "-85.56451604106776",
            "25.08",
            "-78.11791218081675",
            "36.17088587412222",
        ],
    ];
    let names = ["bbox", "intersection", "datasource"];
    for (name, want) in names.iter().zip(&want) {
        let a = get(&s, &format!("/tms/1.0.0/{name}_coverage_cache/EPSG4326")).await;
        assert_eq!(a.status, 200, "{name}: {}", a.text());
        assert_eq!(
            attrs(&a.text(), "BoundingBox", ["minx", "miny", "maxx", "maxy"]),
            [*want],
            "{name}: TMS TileMap"
        );
    }
    let caps = get(
        &s,
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1",
    )
    .await;
    let ll = attrs(
        &caps.text(),
        "LatLonBoundingBox",
        ["minx", "miny", "maxx", "maxy"],
    );
    // the root layer's first, then the three layers'
    assert_eq!(ll[1..], want, "WMS 1.1.1 LatLonBoundingBox");
    let wmts = get(
        &s,
        "/service?SERVICE=WMTS&REQUEST=GetCapabilities&VERSION=1.0.0",
    )
    .await;
    let wmts = wmts.text();
    let doc = roxmltree::Document::parse(&wmts).expect("xml");
    let corners: Vec<(String, String)> = doc
        .descendants()
        .filter(|n| n.tag_name().name() == "WGS84BoundingBox")
        .map(|n| {
            let text = |name: &str| {
                n.children()
                    .find(|c| c.tag_name().name() == name)
                    .and_then(|c| c.text())
                    .unwrap_or("")
                    .to_string()
            };
            (text("LowerCorner"), text("UpperCorner"))
        })
        .collect();
    let want_corners: Vec<(String, String)> = want
        .iter()
        .map(|w| (format!("{} {}", w[0], w[1]), format!("{} {}", w[2], w[3])))
        .collect();
    assert_eq!(corners, want_corners, "WMTS WGS84BoundingBox");
}

/// `type: arcgis` sources against MapProxy 7 (MAPPROXY_PYTHON, mandatory in CI), over one
/// loopback upstream that answers ArcGIS REST `export` with images and `identify` with JSON:
/// the same upstream requests (endpoint, parameters in order) and the same answers, for a
/// cache's meta tile, a direct WMS layer (reprojected to EPSG:4326 from a `supported_srs`
/// of 3857), and feature info as JSON and HTML. A WMS source serving EPSG:4326 alone for a
/// web mercator cache: reprojected by the source, asked at MapProxy's size. A tile source
/// with a coverage: tiles outside it are never asked for, the extents are the coverage's.
#[tokio::test]
async fn sources_as_mapproxy7() {
    let Some(python) = mapproxy_python("sources_as_mapproxy7") else {
        return;
    };
    let yaml = r#"
services:
  tms:
  wms:
    srs: ['EPSG:3857', 'EPSG:4326']
    featureinfo_types: [json, html]
layers:
  - {name: arc, title: arc, sources: [arc_c]}
  - {name: arc_direct, title: arc_direct, sources: [arc_img]}
  - {name: arc_fi, title: arc_fi, sources: [arc_map]}
  - {name: wms_r, title: wms_r, sources: [wms_r_c]}
  - {name: tiled, title: tiled, sources: [tiled_c]}
  - {name: map_fi, title: map_fi, sources: [tiled_c, fi_only]}
caches:
  tiled_c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [tiles]
  arc_c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [arc_map]
    meta_size: [2, 2]
    meta_buffer: 20
  wms_r_c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [wms_ll]
    meta_size: [2, 2]
    meta_buffer: 20
sources:
  fi_only:
    type: wms
    req: {url: 'http://UPSTREAM/service', layers: fi}
    wms_opts: {map: false, featureinfo: true}
  tiles:
    type: tile
    grid: GLOBAL_WEBMERCATOR
    url: 'http://UPSTREAM/service?layers=a&width=256&height=256&srs=EPSG:3857&bbox=%(bbox)s'
    coverage: {bbox: [5, 45, 15, 55], srs: 'EPSG:4326'}
  wms_ll:
    type: wms
    req: {url: 'http://UPSTREAM/service', transparent: false, layers: a}
    supported_srs: ['EPSG:4326']
  arc_map:
    type: arcgis
    req:
      layers: 'show:0,1'
      url: http://UPSTREAM/arcgis/rest/services/World/MapServer
      transparent: true
    opts:
      featureinfo: true
      featureinfo_tolerance: 10
  arc_img:
    type: arcgis
    req:
      url: http://UPSTREAM/arcgis/rest/services/Img/ImageServer/export/
      dpi: 96
    supported_srs: ['EPSG:3857']
"#;
    let (ours, theirs_served, _theirs_dir, _theirs) = serve_beside_mapproxy7(&python, yaml).await;
    let q = 20037508.342789244 / 2.0;
    let paths = [
        "/tms/1.0.0/arc/EPSG3857/2/1/2.png".to_string(),
        "/tms/1.0.0/wms_r/EPSG3857/3/4/5.png".to_string(),
        "/tms/1.0.0/tiled/EPSG3857/5/16/21.png".to_string(),
        "/tms/1.0.0/tiled/EPSG3857/5/3/21.png".to_string(),
        "/tms/1.0.0/tiled/EPSG3857".to_string(),
        "/service?SERVICE=WMS&REQUEST=GetCapabilities&VERSION=1.1.1".to_string(),
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=tiled&STYLES=&SRS=EPSG:3857&BBOX=0,6261721.357121638,1252344.2714243277,7514065.628545966&WIDTH=256&HEIGHT=256&FORMAT=image/png".to_string(),
        // a source with `map: false`: its feature info only
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=map_fi&STYLES=&SRS=EPSG:3857&BBOX=0,6261721.357121638,1252344.2714243277,7514065.628545966&WIDTH=256&HEIGHT=256&FORMAT=image/png".to_string(),
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=map_fi&QUERY_LAYERS=map_fi&STYLES=&SRS=EPSG:4326&BBOX=5,45,15,55&WIDTH=100&HEIGHT=100&FORMAT=image/png&X=10&Y=20&INFO_FORMAT=text/html".to_string(),
        format!("/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=arc&STYLES=&SRS=EPSG:3857&BBOX=0,{q},{q},{}&WIDTH=256&HEIGHT=256&FORMAT=image/png&TRANSPARENT=true", 2.0 * q),
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=arc_direct&STYLES=&SRS=EPSG:4326&BBOX=5,45,15,55&WIDTH=200&HEIGHT=200&FORMAT=image/png".to_string(),
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=arc_fi&STYLES=&SRS=EPSG:3857&BBOX=0,0,1000000,1000000&WIDTH=100&HEIGHT=100&FORMAT=image/jpeg".to_string(),
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=arc_fi&QUERY_LAYERS=arc_fi&STYLES=&SRS=EPSG:3857&BBOX=0,0,1000000,1000000&WIDTH=100&HEIGHT=100&FORMAT=image/png&X=10&Y=20&INFO_FORMAT=application/json".to_string(),
        "/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetFeatureInfo&LAYERS=arc_fi&QUERY_LAYERS=arc_fi&STYLES=&SRS=EPSG:3857&BBOX=0,0,1000000,1000000&WIDTH=100&HEIGHT=100&FORMAT=image/png&X=10.5&Y=20&INFO_FORMAT=text/html".to_string(),
    ];
    let taken = || std::mem::take(&mut *ours.upstream.queries.lock().expect("log"));
    for p in &paths {
        let a = get(&theirs_served, p).await;
        let asked_a = taken();
        let b = get(&ours, p).await;
        let asked_b = taken();
        assert_eq!(a.status, 200, "MapProxy 7 {p}: {}", a.text());
        // a reprojected request's bbox: proj4rs and PROJ differ in the last digits
        let reprojected = p.contains("arc_direct") || p.contains("wms_r");
        if reprojected {
            assert_eq!(asked_b.len(), asked_a.len(), "{p}: {asked_b:?} {asked_a:?}");
            for (ub, ua) in asked_b.iter().zip(&asked_a) {
                let split = |u: &str| -> (String, Vec<f64>) {
                    let mut rest = Vec::new();
                    let mut bbox = Vec::new();
                    for kv in u.split('&') {
                        match kv.split_once('=') {
                            Some(("bbox", v)) => {
                                bbox = v.split(',').filter_map(|x| x.parse().ok()).collect()
                            }
                            _ => rest.push(kv),
                        }
                    }
                    (rest.join("&"), bbox)
                };
                let ((rb, bb), (ra, ba)) = (split(ub), split(ua));
                assert_eq!(rb, ra, "upstream request for {p}");
                assert_eq!(bb.len(), 4, "{ub}");
                for (x, y) in bb.iter().zip(&ba) {
                    assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0), "{ub}\n{ua}");
                }
            }
        } else {
            assert_eq!(asked_b, asked_a, "upstream requests for {p}");
        }
        assert_eq!(
            (b.status, &b.content_type),
            (a.status, &a.content_type),
            "{p}"
        );
        // every answer equal: reprojected maps (by the source, or a direct layer's), maps
        // drawn from a sub query (the cache's extent is its source's coverage) among them
        if a.content_type.contains("xml") {
            // documents name the server they came from
            let (ta, tb) = (
                a.text().replace(&theirs_served.addr.to_string(), "HOST"),
                b.text().replace(&ours.addr.to_string(), "HOST"),
            );
            if let (Ok(dir), true) = (std::env::var("MPS_DIFF_DIR"), ta != tb) {
                let _ = std::fs::write(format!("{dir}/mapproxy7.xml"), &ta);
                let _ = std::fs::write(format!("{dir}/ours.xml"), &tb);
            }
            assert_eq!(tb, ta, "{p}");
        } else {
            if let (Ok(dir), true) = (std::env::var("MPS_DIFF_DIR"), a.body != b.body) {
                let _ = std::fs::write(format!("{dir}/mapproxy7.bin"), &a.body);
                let _ = std::fs::write(format!("{dir}/ours.bin"), &b.body);
            }
            assert!(b.body == a.body, "{p}: the answers differ");
        }
    }
}

/// A cache of the `debug` source alone is opaque, black on white, as MapProxy 7 stores it: the
/// source's image is RGBA in MapProxy (drawn, not a server's paletted PNG), so a tile is not
/// written with the drawn image's palette and transparency.
#[tokio::test]
async fn debug_cache_tiles_are_opaque() {
    let s = serve(
        "services:\n  tms:\nlayers:\n  - {name: d, title: d, sources: [d]}\ncaches:\n  d: {grids: [GLOBAL_WEBMERCATOR], sources: [dbg]}\nsources:\n  dbg: {type: debug}\n",
    )
    .await;
    for t in ["5/17/20", "5/16/20", "0/0/0"] {
        let a = get(&s, &format!("/tms/1.0.0/d/EPSG3857/{t}.png")).await;
        assert_eq!(a.status, 200, "{t}");
        assert!(
            !a.body.windows(4).any(|w| w == b"tRNS"),
            "{t}: no transparency chunk"
        );
        assert!(a.image().pixels().all(|p| p.0[3] == 255), "{t}: opaque");
    }
}
