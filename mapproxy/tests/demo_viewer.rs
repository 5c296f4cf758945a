//! The demo's map viewer in a real browser, fully offline: a loopback hyper server answers
//! `/demo/...` with the demo handler and `/tms/...` and `/wmts/...` with solid-coloured PNG
//! tiles it counts; headless Chromium loads the viewer page; the test checks that the expected
//! tiles were asked for and that their colours are on the screenshot.
//!
//! Skips (prints `SKIP: ...`) without Chromium unless `CI=true`.

mod support;

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mapproxy_serve_mapproxy::grid::{
    global_geodetic, global_webmercator, tile_grid, GridConf, GridGlobals, TileGrid,
};
use mapproxy_serve_mapproxy::service::demo::{
    handle, DemoInput, DemoServices, DemoTileLayer, DemoWmsLayer,
};
use support::chromium;

/// The two tile colours: tiles of the northern hemisphere are red, of the southern blue, so the
/// screenshot shows whether rows were counted from the right edge.
const NORTH: [u8; 4] = [200, 40, 40, 255];
const SOUTH: [u8; 4] = [40, 40, 200, 255];

/// Columns and rows of the URL's level `z`: TMS hides the first level of the global grids.
fn level_size(service: &str, grid: &str, z: u32) -> (u32, u32) {
    match (service, grid) {
        ("tms", "GLOBAL_GEODETIC") => (2 << z, 1 << z),
        // the local grid of local_grid(): 1×1 tiles at level 0, 2×1, 4×2, no level offset
        ("tms", "LOCAL") => (1 << z, (1u32 << z >> 1).max(1)),
        ("tms", _) => (2 << z, 2 << z),
        _ => (1 << z, 1 << z),
    }
}

/// Whether the tile is north of the equator: TMS counts rows from the bottom, WMTS from the top.
fn is_north(service: &str, grid: &str, z: u32, y: u32) -> bool {
    let rows = level_size(service, grid, z).1;
    if service == "tms" {
        y >= rows / 2
    } else {
        y < rows / 2
    }
}

fn png_tile(colour: [u8; 4]) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(256, 256, image::Rgba(colour));
    let mut out = std::io::Cursor::new(Vec::new());
    match img.write_to(&mut out, image::ImageFormat::Png) {
        Ok(()) => out.into_inner(),
        Err(e) => panic!("encoding a test tile: {e}"),
    }
}

/// A grid of TMS's `local` profile (no level offset) in EPSG:3857: ±2000 km by ±1000 km,
/// origin lower left, three levels.
fn local_grid() -> TileGrid {
    let conf = GridConf {
        name: Some("LOCAL".into()),
        srs: Some(3857),
        bbox: Some([-2_000_000.0, -1_000_000.0, 2_000_000.0, 1_000_000.0]),
        origin: Some("sw".into()),
        res: Some(
            [15625.0, 7812.5, 3906.25]
                .map(mapproxy_serve_mapproxy::grid::Num::Float)
                .to_vec(),
        ),
        ..GridConf::default()
    };
    tile_grid(&conf, None, &GridGlobals::default()).expect("local grid")
}

/// A PNG of `width`×`height`, red above the equator and blue below, for a WMS GetMap of
/// `bbox` (EPSG:3857); `None` for a request that is not one.
fn wms_image(query: &str) -> Option<Vec<u8>> {
    let mut width = 0u32;
    let mut height = 0u32;
    let mut bbox = Vec::new();
    for part in query.split('&') {
        let (k, v) = part.split_once('=')?;
        match k.to_ascii_uppercase().as_str() {
            "WIDTH" => width = v.parse().ok()?,
            "HEIGHT" => height = v.parse().ok()?,
            "BBOX" => {
                bbox = v
                    .replace("%2C", ",")
                    .split(',')
                    .map(|n| n.parse::<f64>())
                    .collect::<Result<Vec<f64>, _>>()
                    .ok()?
            }
            _ => {}
        }
    }
    if width == 0 || height == 0 || width > 4096 || height > 4096 || bbox.len() != 4 {
        return None;
    }
    let (miny, maxy) = (bbox[1], bbox[3]);
    let img = image::RgbaImage::from_fn(width, height, |_, row| {
        let y = maxy - (f64::from(row) + 0.5) / f64::from(height) * (maxy - miny);
        image::Rgba(if y >= 0.0 { NORTH } else { SOUTH })
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).ok()?;
    Some(out.into_inner())
}

fn demo_input() -> DemoInput {
    let layer = |name: &str, grid, gname: &str| DemoTileLayer {
        name: name.to_string(),
        tms_grid: gname.to_string(),
        matrix_set: gname.to_string(),
        format: "png".to_string(),
        grid: Arc::new(grid),
        extent: None,
    };
    DemoInput {
        services: DemoServices {
            tms: true,
            wmts_restful: true,
            wms: true,
            wms_111: true,
            ..DemoServices::default()
        },
        tile_layers: vec![
            layer("osm", global_webmercator(), "GLOBAL_WEBMERCATOR"),
            layer("osm", global_geodetic(), "GLOBAL_GEODETIC"),
            layer("local", local_grid(), "LOCAL"),
        ],
        wms_layers: vec![DemoWmsLayer {
            name: "wmslayer".into(),
            native_srs: vec!["EPSG:3857".into()],
            extents: vec![(
                "EPSG:3857".into(),
                [-20_037_508.34, -10_000_000.0, 20_037_508.34, 10_000_000.0]
                    .map(mapproxy_serve_mapproxy::grid::Num::Float),
            )],
        }],
        wms_formats: vec!["image/png".into()],
        ..DemoInput::default()
    }
}

/// A tile request: `(service, grid, z, x, y)`.
type TileReq = (String, String, u32, u32, u32);

/// Tile requests seen.
type Seen = Arc<Mutex<Vec<TileReq>>>;

/// `/tms/1.0.0/<layer>/<grid>/z/x/y.png` or `/wmts/<layer>/<grid>/z/x/y.png`.
fn parse_tile(path: &str) -> Option<TileReq> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (service, rest) = match parts.as_slice() {
        ["tms", "1.0.0", rest @ ..] => ("tms", rest),
        ["wmts", rest @ ..] => ("wmts", rest),
        _ => return None,
    };
    match rest {
        [_layer, grid, z, x, y] => Some((
            service.to_string(),
            grid.to_string(),
            z.parse().ok()?,
            x.parse().ok()?,
            y.strip_suffix(".png")?.parse().ok()?,
        )),
        _ => None,
    }
}

async fn serve(
    listener: tokio::net::TcpListener,
    script_url: String,
    input: Arc<DemoInput>,
    seen: Seen,
) {
    let tiles = Arc::new((Bytes::from(png_tile(NORTH)), Bytes::from(png_tile(SOUTH))));
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let (script_url, input, seen, tiles) = (
            script_url.clone(),
            input.clone(),
            seen.clone(),
            tiles.clone(),
        );
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                let pq = req
                    .uri()
                    .path_and_query()
                    .map(|p| p.as_str().to_string())
                    .unwrap_or_default();
                let res = if pq.starts_with("/demo") {
                    handle(&pq, &script_url, &input)
                } else if let Some(t) = parse_tile(req.uri().path()) {
                    let body = if is_north(&t.0, &t.1, t.2, t.4) {
                        tiles.0.clone()
                    } else {
                        tiles.1.clone()
                    };
                    if let Ok(mut s) = seen.lock() {
                        s.push(t);
                    }
                    let mut r = Response::new(mapproxy_serve_core::app::full_body(body));
                    r.headers_mut()
                        .insert("content-type", http::HeaderValue::from_static("image/png"));
                    r
                } else if let Some(png) = (req.uri().path() == "/service")
                    .then(|| wms_image(req.uri().query().unwrap_or("")))
                    .flatten()
                {
                    if let Ok(mut s) = seen.lock() {
                        s.push(("wms".into(), "EPSG:3857".into(), 0, 0, 0));
                    }
                    let mut r = Response::new(mapproxy_serve_core::app::full_body(png));
                    r.headers_mut()
                        .insert("content-type", http::HeaderValue::from_static("image/png"));
                    r
                } else {
                    let mut r = Response::new(mapproxy_serve_core::app::full_body("not found"));
                    *r.status_mut() = StatusCode::NOT_FOUND;
                    r
                };
                async move { Ok::<_, Infallible>(res) }
            });
            let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

struct Server {
    rt: tokio::runtime::Runtime,
    addr: SocketAddr,
    seen: Seen,
}

fn start() -> Server {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Seen = Arc::default();
    rt.spawn(serve(
        listener,
        format!("http://{addr}"),
        Arc::new(demo_input()),
        seen.clone(),
    ));
    Server { rt, addr, seen }
}

fn tile_pixels(img: &image::RgbaImage) -> (usize, usize) {
    (
        chromium::count_pixels(img, None, |p| p == NORTH),
        chromium::count_pixels(img, None, |p| p == SOUTH),
    )
}

/// Loads `query` below `/demo/`, waits until both tile colours cover at least `min_pixels`
/// each; returns the tile requests and the screenshot.
fn view(
    browser: &std::path::Path,
    server: &Server,
    query: &str,
    min_pixels: usize,
) -> (Vec<TileReq>, image::RgbaImage) {
    if let Ok(mut s) = server.seen.lock() {
        s.clear();
    }
    let url = format!("http://{}/demo/?{query}", server.addr);
    let deadline = Instant::now() + Duration::from_secs(60);
    let img = chromium::poll_screenshot(browser, &url, (1024, 1000), deadline, |img| {
        let (a, b) = tile_pixels(img);
        a >= min_pixels && b >= min_pixels
    })
    .unwrap_or_else(|e| panic!("{url}: {e}"));
    if let Some(dir) = std::env::var_os("DEMO_VIEWER_SCREENSHOTS") {
        // for a look at the page: DEMO_VIEWER_SCREENSHOTS=/tmp cargo test --test demo_viewer
        let name: String = query
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let _ = img.save(std::path::Path::new(&dir).join(format!("demo-viewer-{name}.png")));
    }
    let (a, b) = tile_pixels(&img);
    let seen = server.seen.lock().map(|s| s.clone()).unwrap_or_default();
    assert!(
        a >= min_pixels && b >= min_pixels,
        "{url}: tile colours on screen: {a} + {b} pixels (non-blank: {}), tiles asked: {seen:?}",
        chromium::non_blank_pixels(&img, None)
    );
    assert!(!seen.is_empty(), "{url}: no tile was requested");
    (seen, img)
}

fn tiles_of(seen: &[TileReq]) -> BTreeSet<TileReq> {
    seen.iter().cloned().collect()
}

/// The mean row of the pixels of `colour`.
fn mean_row(img: &image::RgbaImage, colour: [u8; 4]) -> f64 {
    let (mut sum, mut n) = (0u64, 0u64);
    for (_, y, p) in img.enumerate_pixels() {
        if p.0 == colour {
            sum += u64::from(y);
            n += 1;
        }
    }
    sum as f64 / n.max(1) as f64
}

#[test]
fn viewer_draws_tiles_in_chromium() {
    let Some(browser) = chromium::find("demo viewer test") else {
        return;
    };
    let server = start();
    let cases = [
        // TMS, EPSG:3857 (GLOBAL_WEBMERCATOR, origin nw: rows flipped for TMS)
        (
            "tms_layer=osm&format=png&srs=EPSG%3A3857",
            "tms",
            "GLOBAL_WEBMERCATOR",
        ),
        // TMS, EPSG:4326 (GLOBAL_GEODETIC: TMS level 0 is 2×1 tiles over -180,-90,180,90)
        (
            "tms_layer=osm&format=png&srs=EPSG%3A4326",
            "tms",
            "GLOBAL_GEODETIC",
        ),
        // WMTS REST, EPSG:3857: the grid's own levels, rows from the top
        (
            "wmts_layer=osm&format=png&srs=EPSG%3A3857",
            "wmts",
            "GLOBAL_WEBMERCATOR",
        ),
        // TMS of a local grid: no level offset
        ("tms_layer=local&format=png&srs=EPSG%3A3857", "tms", "LOCAL"),
    ];
    for (query, service, grid) in cases {
        let (seen, img) = view(&browser, &server, query, 20_000);
        let got = tiles_of(&seen);
        let levels: BTreeSet<u32> = got.iter().map(|t| t.2).collect();
        assert_eq!(levels.len(), 1, "{query}: one level expected: {got:?}");
        for t in &got {
            let (cols, rows) = level_size(service, grid, t.2);
            assert!(
                t.0 == service && t.1 == grid && t.3 < cols && t.4 < rows,
                "{query}: tile {t:?} is not in {service} {grid} ({cols}×{rows} at level {})",
                t.2
            );
        }
        // north drawn above south: the rows of the URLs were counted from the right edge
        let (north, south) = (mean_row(&img, NORTH), mean_row(&img, SOUTH));
        assert!(
            north < south,
            "{query}: north at row {north}, south at {south}"
        );
        eprintln!(
            "{query}: {} requests, {} tiles: {got:?}",
            seen.len(),
            got.len()
        );
    }
    // WMS: one GetMap image of the layer's extent
    let (seen, img) = view(
        &browser,
        &server,
        "wms_layer=wmslayer&format=image%2Fpng&srs=EPSG%3A3857",
        20_000,
    );
    assert!(seen.iter().all(|t| t.0 == "wms"), "{seen:?}");
    let (north, south) = (mean_row(&img, NORTH), mean_row(&img, SOUTH));
    assert!(north < south, "WMS: north at row {north}, south at {south}");
    eprintln!("WMS: {} GetMap requests", seen.len());
    drop(server.rt);
}

/// The whole MapProxy app of `ini/develop.ini` (its `ini/mapproxy.yaml`, cache in a temporary
/// directory) on a loopback server: Chromium opens the demo's TMS viewer of the `debug` layer,
/// the tiles go YAML → cache miss → debug source → paletted PNG → cache file → browser, and the
/// debug text is drawn (dark pixels) on the screenshot. Then the demo's WMS viewer of the same
/// layer, in EPSG:3857 and EPSG:4326: GetMap images stitched from the cache by the WMS are
/// drawn.
#[test]
fn the_develop_mapproxy_yaml_draws_in_chromium() {
    let Some(chromium) = chromium::find("the develop MapProxy demo test") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let repo_yaml = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ini/mapproxy.yaml");
    let yaml = dir.path().join("mapproxy.yaml");
    std::fs::copy(&repo_yaml, &yaml).expect("copy ini/mapproxy.yaml");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let built = rt
        .block_on(async { mapproxy_serve_mapproxy::app::build(&yaml) })
        .unwrap_or_else(|e| panic!("ini/mapproxy.yaml builds: {e}"));
    let app = built.app;
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let tiles = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = tiles.clone();
    let maps = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted_maps = maps.clone();
    rt.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (app, counted, counted_maps) = (app.clone(), counted.clone(), counted_maps.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let tile = req.uri().path().starts_with("/tms/");
                    let getmap = req.uri().path() == "/service"
                        && req.uri().query().is_some_and(|q| q.contains("GetMap"));
                    let path = req.uri().path().to_string();
                    let fut = app.call(mapproxy_serve_core::app::box_request(req));
                    let counted = counted.clone();
                    let counted_maps = counted_maps.clone();
                    async move {
                        let res = fut.await;
                        let png = res
                            .headers()
                            .get("content-type")
                            .is_some_and(|v| v == "image/png");
                        if tile && res.status() == 200 && png {
                            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        } else if tile {
                            eprintln!("tile {path}: {}", res.status());
                        }
                        if getmap && res.status() == 200 && png {
                            counted_maps.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        } else if getmap {
                            eprintln!("GetMap {path}: {}", res.status());
                        }
                        Ok::<_, Infallible>(res)
                    }
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    let url = format!("http://{addr}/demo/?tms_layer=debug&format=png&srs=EPSG%3A3857");
    let deadline = Instant::now() + Duration::from_secs(90);
    let dark = |img: &image::RgbaImage| {
        img.pixels()
            .filter(|p| p.0[3] > 0 && p.0[0] < 80 && p.0[1] < 80 && p.0[2] < 80)
            .count()
    };
    let img =
        chromium::poll_screenshot(&chromium, &url, (800, 600), deadline, |img| dark(img) > 500)
            .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        tiles.load(std::sync::atomic::Ordering::SeqCst) > 0,
        "the viewer asked for tiles"
    );
    assert!(
        dark(&img) > 500,
        "debug text drawn: {} dark pixels",
        dark(&img)
    );
    assert!(
        dir.path().join("cache_data/debug_cache_EPSG3857").is_dir(),
        "tiles cached next to the YAML"
    );
    // the WMS viewer: OpenLayers' ImageWMS asks the app's /service for GetMap images
    for srs in ["EPSG%3A3857", "EPSG%3A4326"] {
        let before = maps.load(std::sync::atomic::Ordering::SeqCst);
        let url = format!("http://{addr}/demo/?wms_layer=debug&format=image%2Fpng&srs={srs}");
        let deadline = Instant::now() + Duration::from_secs(90);
        let img =
            chromium::poll_screenshot(&chromium, &url, (800, 600), deadline, |img| dark(img) > 500)
                .unwrap_or_else(|e| panic!("WMS {srs}: {e}"));
        assert!(
            maps.load(std::sync::atomic::Ordering::SeqCst) > before,
            "WMS {srs}: the viewer asked for GetMap images"
        );
        assert!(
            dark(&img) > 500,
            "WMS {srs}: debug text drawn: {} dark pixels",
            dark(&img)
        );
    }
}
