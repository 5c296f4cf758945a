//! The whole app from a `mapproxy.yaml` (`app::build`), asked over its `App` interface:
//! caches written by the real MapProxy 7 served byte for byte, and tile and WMS sources against
//! real upstreams on loopback (requests counted, paths recorded).

mod support;

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use mapproxy_serve_core::app::{empty_body, App};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cache")
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read_dir") {
        let e = e.expect("entry");
        let ty = e.file_type().expect("type");
        let dest = to.join(e.file_name());
        if ty.is_dir() {
            copy_tree(&e.path(), &dest);
        } else if ty.is_symlink() {
            let target = std::fs::read_link(e.path()).expect("readlink");
            std::os::unix::fs::symlink(target, &dest).expect("symlink");
        } else {
            std::fs::copy(e.path(), &dest).expect("copy");
        }
    }
}

async fn get(app: &App, uri: &str) -> (StatusCode, http::HeaderMap, Bytes) {
    let req = Request::get(uri).body(empty_body()).expect("request");
    let res = app.call(req).await;
    let (parts, body) = res.into_parts();
    let bytes = body.collect().await.expect("body").to_bytes();
    (parts.status, parts.headers, bytes)
}

fn build(dir: &Path, yaml: &str) -> App {
    let path = dir.join("mapproxy.yaml");
    std::fs::write(&path, yaml).expect("write yaml");
    match mapproxy_serve_mapproxy::app::build(&path) {
        Ok(b) => b.app,
        Err(e) => panic!("builds:\n{e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_written_by_mapproxy_7_are_served_byte_for_byte() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    copy_tree(&fixture_dir().join("data"), &data);
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixture_dir().join("manifest.json")).expect("manifest"),
    )
    .expect("manifest JSON");
    let caches = [
        ("l_tc", "directory_layout: tc"),
        ("l_mp", "directory_layout: mp"),
        ("l_tms", "directory_layout: tms"),
        ("l_reverse_tms", "directory_layout: reverse_tms"),
        ("l_quadkey", "directory_layout: quadkey"),
        ("l_arcgis", "directory_layout: arcgis"),
        ("gridnames", "{directory_layout: tc, use_grid_names: true}"),
    ];
    let mut yaml = String::from(
        "services:\n  tms:\n    use_grid_names: true\n\
         grids:\n  tiny:\n    srs: 'EPSG:3857'\n    base: GLOBAL_WEBMERCATOR\n    tile_size: [32, 32]\n    num_levels: 3\n\
         sources:\n  dbg:\n    type: debug\n\
         globals:\n  cache:\n    base_dir: ./data\n\
         caches:\n",
    );
    for (name, cache) in caches {
        let cache = if let Some(rest) = cache.strip_prefix('{') {
            format!("    cache: {{type: file, {rest}\n")
        } else {
            format!("    cache: {{type: file, {cache}}}\n")
        };
        yaml.push_str(&format!(
            "  {name}:\n    grids: [tiny]\n    sources: [dbg]\n    format: image/png\n{cache}"
        ));
    }
    yaml.push_str("layers:\n");
    for (name, _) in caches {
        yaml.push_str(&format!(
            "  - name: {name}\n    title: {name}\n    sources: [{name}]\n"
        ));
    }
    let app = build(tmp.path(), &yaml);
    let mut served = 0;
    for (name, _) in caches {
        let m = &manifest[name];
        let tiles = m["tiles"].as_array().expect("tiles");
        assert!(!tiles.is_empty(), "{name}: tiles in the fixture");
        for t in tiles {
            let c = t["coord"].as_array().expect("coord");
            let (x, y, z) = (
                c[0].as_i64().expect("x"),
                c[1].as_i64().expect("y"),
                c[2].as_i64().expect("z"),
            );
            // /tiles/ counts rows as the grid does (nw), as the cache stores them
            let (status, headers, body) =
                get(&app, &format!("/tiles/{name}/tiny/{z}/{x}/{y}.png")).await;
            assert_eq!(status, 200, "{name} {x},{y},{z}");
            assert_eq!(headers["content-type"], "image/png");
            let file = data
                .join(m["dir"].as_str().expect("dir"))
                .join(t["path"].as_str().expect("path"));
            let want = std::fs::read(&file).expect("fixture tile");
            assert_eq!(
                body.as_ref(),
                want.as_slice(),
                "{name} {x},{y},{z}: MapProxy's bytes"
            );
            served += 1;
        }
    }
    assert!(served >= 30, "{served} tiles");
}

/// A loopback upstream: tiles at `/{z}/{x}/{y}.png` (404 when z > 5), WMS GetMap at
/// `/service`; every path and query recorded.
struct Upstream {
    addr: std::net::SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
    /// Set: the upstream accepts and reads requests but never answers (a hung server).
    hung: Arc<std::sync::atomic::AtomicBool>,
}

fn png(w: u32, h: u32, rgba: [u8; 4]) -> Vec<u8> {
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba(rgba));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png)
        .expect("encode");
    out.into_inner()
}

fn query_param(q: &str, name: &str) -> Option<String> {
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.to_string())
}

async fn upstream() -> Upstream {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let hung: Arc<std::sync::atomic::AtomicBool> = Arc::default();
    let log = seen.clone();
    let is_hung = hung.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (log, is_hung) = (log.clone(), is_hung.clone());
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                    let hang = is_hung.load(std::sync::atomic::Ordering::SeqCst);
                    let path = req.uri().path().to_string();
                    let query = req.uri().query().unwrap_or("").to_string();
                    if let Ok(mut l) = log.lock() {
                        l.push(format!("{path}?{query}"));
                    }
                    let res = if path == "/service" {
                        let w = query_param(&query, "width").and_then(|v| v.parse().ok());
                        let h = query_param(&query, "height").and_then(|v| v.parse().ok());
                        let top = query_param(&query, "layers").as_deref() == Some("top");
                        match (w, h) {
                            // layer "top": the left half transparent, the right half blue
                            (Some(w), Some(h)) if top && w <= 4096 && h <= 4096 => {
                                let img = image::RgbaImage::from_fn(w, h, |x, _| {
                                    image::Rgba(if x < w / 2 {
                                        [0, 0, 0, 0]
                                    } else {
                                        [0, 0, 255, 255]
                                    })
                                });
                                let mut out = std::io::Cursor::new(Vec::new());
                                img.write_to(&mut out, image::ImageFormat::Png)
                                    .expect("encode");
                                Response::builder()
                                    .header("content-type", "image/png")
                                    .body(http_body_util::Full::new(Bytes::from(out.into_inner())))
                                    .expect("response")
                            }
                            (Some(w), Some(h)) if w <= 4096 && h <= 4096 => Response::builder()
                                .header("content-type", "image/png")
                                .body(http_body_util::Full::new(Bytes::from(png(
                                    w,
                                    h,
                                    [0, 128, 0, 255],
                                ))))
                                .expect("response"),
                            _ => Response::builder()
                                .status(400)
                                .body(http_body_util::Full::new(Bytes::from("bad size")))
                                .expect("response"),
                        }
                    } else {
                        let z: Option<u32> = path
                            .trim_start_matches('/')
                            .split('/')
                            .next()
                            .and_then(|z| z.parse().ok());
                        match z {
                            Some(z) if z <= 5 => Response::builder()
                                .header("content-type", "image/png")
                                .body(http_body_util::Full::new(Bytes::from(png(
                                    256,
                                    256,
                                    [200, 0, 0, 255],
                                ))))
                                .expect("response"),
                            _ => Response::builder()
                                .status(404)
                                .body(http_body_util::Full::new(Bytes::from("no such tile")))
                                .expect("response"),
                        }
                    };
                    async move {
                        if hang {
                            std::future::pending::<()>().await;
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
    Upstream { addr, seen, hung }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tile_source_fills_the_cache_once_and_errors_are_mapproxys() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n\
         layers:\n  - name: osm\n    title: OSM\n    sources: [osm_cache]\n\
         caches:\n  osm_cache:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [osm_tiles]\n\
         sources:\n  osm_tiles:\n    type: tile\n    grid: GLOBAL_WEBMERCATOR\n    url: http://{}/%(tms_path)s.png\n\
         globals:\n  http:\n    client_timeout: 1\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    // TMS level 0 is grid level 1 for the global profiles; TMS rows count from the south.
    let (status, headers, body) = get(&app, "/tms/1.0.0/osm/EPSG3857/0/0/0.png").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/png");
    assert!(headers.contains_key("etag"));
    assert_eq!(
        up.seen.lock().expect("seen").clone(),
        vec!["/1/0/1.png?".to_string()],
        "the source grid's own origin (nw): tms_path z/x/y"
    );
    let file = tmp
        .path()
        .join("cache_data/osm_cache_EPSG3857/01/000/000/000/000/000/001.png");
    assert_eq!(std::fs::read(&file).expect("cached tile"), body.as_ref());
    // Again: from the cache, no upstream request; a matching ETag gives 304.
    let etag = headers["etag"].clone();
    let req = Request::get("/tms/1.0.0/osm/EPSG3857/0/0/0.png")
        .header("if-none-match", etag)
        .body(empty_body())
        .expect("request");
    assert_eq!(app.call(req).await.status(), 304);
    assert_eq!(up.seen.lock().expect("seen").len(), 1);
    // The upstream's 404: MapProxy's TMS error document, 500, nothing cached.
    let (status, headers, body) = get(&app, "/tms/1.0.0/osm/EPSG3857/7/0/0.png").await;
    assert_eq!(status, 500);
    assert!(headers["content-type"]
        .to_str()
        .expect("type")
        .starts_with("text/xml"));
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("HTTP Error"), "{text}");
    assert!(!tmp.path().join("cache_data/osm_cache_EPSG3857/08").exists());
    // The upstream hangs: an error within client_timeout (1 s), nothing cached.
    up.hung.store(true, std::sync::atomic::Ordering::SeqCst);
    let started = std::time::Instant::now();
    let (status, _, body) = get(&app, "/tms/1.0.0/osm/EPSG3857/1/0/0.png").await;
    assert_eq!(status, 500, "{}", String::from_utf8_lossy(&body));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    assert!(!tmp.path().join("cache_data/osm_cache_EPSG3857/02").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wms_source_is_asked_once_per_meta_tile() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n\
         layers:\n  - name: w\n    title: W\n    sources: [w_cache]\n\
         caches:\n  w_cache:\n    grids: [GLOBAL_GEODETIC]\n    sources: [w_wms]\n    format: image/jpeg\n\
         sources:\n  w_wms:\n    type: wms\n    req:\n      url: http://{}/service?\n      layers: dbg\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    // Grid level 1 of GLOBAL_GEODETIC (TMS level 0): 2×1 tiles, one meta tile.
    let (status, headers, _) = get(&app, "/tms/1.0.0/w/EPSG4326/0/0/0.jpeg").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    let (status, _, _) = get(&app, "/tms/1.0.0/w/EPSG4326/0/1/0.jpeg").await;
    assert_eq!(status, 200);
    let seen = up.seen.lock().expect("seen").clone();
    assert_eq!(
        seen,
        vec!["/service?layers=dbg&format=image%2Fjpeg&bbox=-180.0,-90.0,180.0,90.0&width=512&height=256&srs=EPSG%3A4326&request=GetMap&version=1.1.1&service=WMS&styles=".to_string()],
        "one GetMap for the meta tile, as MapProxy 7 asks it"
    );
    for p in [
        "01/000/000/000/000/000/000.jpeg",
        "01/000/000/001/000/000/000.jpeg",
    ] {
        assert!(
            tmp.path()
                .join("cache_data/w_cache_EPSG4326")
                .join(p)
                .is_file(),
            "{p} cached"
        );
    }
}

#[test]
fn options_not_supported_yet_are_errors_and_expires_hours_keeps_fractions() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    let base =
        "services:\n  tms:\n    origin: nw\nlayers:\n  - name: d\n    title: d\n    sources: [c]\n\
                caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [s]\n";
    let tail = "sources:\n  s:\n    type: debug\n";
    std::fs::write(&path, format!("{base}    watermark: {{text: x}}\n{tail}")).expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("watermark is refused")
        .to_string();
    assert!(e.contains("mapproxy.yaml:"), "{e}");
    assert!(e.contains("watermark is not supported yet"), "{e}");
    std::fs::write(
        &path,
        format!("{base}{tail}").replace("origin: nw", "origin: up"),
    )
    .expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("a bad origin is refused")
        .to_string();
    assert!(e.contains("services.tms.origin"), "{e}");
    std::fs::write(
        &path,
        format!("{base}{tail}globals:\n  tiles:\n    expires_hours: 0.5\n"),
    )
    .expect("write");
    let built = mapproxy_serve_mapproxy::app::build(&path).expect("builds");
    assert_eq!(built.service.config().max_age, 1800);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_sources_of_a_cache_are_merged_in_order() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n\
         layers:\n  - name: m\n    title: M\n    sources: [m_cache]\n\
         caches:\n  m_cache:\n    grids: [GLOBAL_GEODETIC]\n    sources: [bottom, top]\n    format: image/png\n\
         sources:\n  bottom:\n    type: wms\n    req:\n      url: http://{0}/service?\n      layers: bottom\n\
         \x20 top:\n    type: wms\n    req:\n      url: http://{0}/service?\n      layers: top\n      transparent: true\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    // one meta tile of 512×256: each source asked once for it, the top laid over the bottom
    let (status, _, left) = get(&app, "/tms/1.0.0/m/EPSG4326/0/0/0.png").await;
    assert_eq!(status, 200);
    let (status, _, right) = get(&app, "/tms/1.0.0/m/EPSG4326/0/1/0.png").await;
    assert_eq!(status, 200);
    let left = image::load_from_memory(&left).expect("png").to_rgba8();
    let right = image::load_from_memory(&right).expect("png").to_rgba8();
    assert_eq!(
        left.get_pixel(100, 100).0,
        [0, 128, 0, 255],
        "the bottom shows through"
    );
    assert_eq!(
        right.get_pixel(100, 100).0,
        [0, 0, 255, 255],
        "the top covers it"
    );
    let mut seen = up.seen.lock().expect("seen").clone();
    seen.sort();
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert!(
        seen[0].contains("layers=bottom") && seen[1].contains("layers=top"),
        "{seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kml_of_a_utm_grid_as_mapproxy_7() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = "services:\n  kml:\n\
         layers:\n  - name: d\n    title: D\n    sources: [c]\n\
         caches:\n  c:\n    grids: [utm32]\n    sources: [dbg]\n\
         sources:\n  dbg:\n    type: debug\n\
         grids:\n  utm32:\n    srs: 'EPSG:25832'\n    bbox: [280000, 5200000, 920000, 6100000]\n    origin: sw\n    num_levels: 5\n";
    let app = build(tmp.path(), yaml);
    let (status, _, body) = get(&app, "/kml/d/EPSG25832/0/0/0.kml").await;
    assert_eq!(status, 200);
    let body = String::from_utf8_lossy(&body);
    // what MapProxy 7.0.0 answers (transform_bbox_to(SRS(4326), with_points=4))
    assert!(
        body.contains(
            "<LatLonAltBox>\n        <north>54.998171</north><south>46.820887</south>\n        <east>15.549430</east><west>5.560259</west>\n      </LatLonAltBox>"
        ),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_capabilities_views_show_the_apps_own_documents() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = "services:\n  demo:\n  tms:\n  wmts:\n\
         layers:\n  - name: d\n    title: D\n    sources: [c]\n\
         caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [dbg]\n\
         sources:\n  dbg:\n    type: debug\n";
    let app = build(tmp.path(), yaml);
    for (query, service, doc) in [
        ("tms_capabilities", "TMS", "&lt;TileMapService"),
        (
            "tms_capabilities&layer=d&srs=EPSG3857",
            "TMS",
            "&lt;TileMap version=&quot;1.0.0&quot;&gt;",
        ),
        (
            "wmts_capabilities",
            "WMTS",
            "&lt;Capabilities xmlns=&quot;http://www.opengis.net/wmts/1.0&quot;",
        ),
        (
            "wmts_capabilities_kvp",
            "WMTS",
            "&lt;ows:Identifier&gt;d&lt;/ows:Identifier&gt;",
        ),
    ] {
        let (status, headers, body) = get(&app, &format!("/demo/?{query}")).await;
        assert_eq!(status, 200, "{query}");
        assert!(headers["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html"));
        let body = String::from_utf8_lossy(&body);
        assert!(
            body.contains(&format!("<h2>{service} GetCapabilities</h2>")),
            "{query}: {body}"
        );
        assert!(body.contains(doc), "{query}: {body}");
    }
    // a capabilities document the app does not have: its own error, as MapProxy's urlopen
    let (status, _, _) = get(&app, "/demo/?tms_capabilities&layer=nope&srs=EPSG3857").await;
    assert_eq!(status, 404);
}

/// Each cache type behind the app: a miss is fetched once and stored where MapProxy keeps it,
/// the second request is a hit (with its conditional answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_cache_type_is_filled_once_and_served() {
    let redis = support::redis::RedisServer::start(
        "every_cache_type_is_filled_once_and_served (redis row)",
    );
    let mut kinds = vec![
        ("{type: mbtiles}", "cache_data/c.mbtiles"),
        ("{type: mbtiles, filename: ./m/x.mbtiles}", "m/x.mbtiles"),
        (
            "{type: sqlite}",
            "cache_data/c/GLOBAL_WEBMERCATOR/1.mbtiles",
        ),
        (
            "{type: sqlite, directory: sq, ttl: 60}",
            "sq/GLOBAL_WEBMERCATOR/1.mbtiles",
        ),
        ("{type: geopackage}", "cache_data/c.gpkg"),
        (
            "{type: geopackage, table_name: t-1, filename: g.gpkg}",
            "cache_data/g.gpkg",
        ),
        (
            "{type: geopackage, levels: true}",
            "cache_data/c/GLOBAL_WEBMERCATOR/1.gpkg",
        ),
        (
            "{type: compact, version: 1}",
            "cache_data/c/GLOBAL_WEBMERCATOR/L01/R0000C0000.bundlx",
        ),
        (
            "{type: compact, version: 2, directory: cc}",
            "cc/L01/R0000C0000.bundle",
        ),
    ];
    let redis_backend;
    if let Some(r) = &redis {
        redis_backend = format!(
            "{{type: redis, port: {}, prefix: app-test, default_ttl: 60}}",
            r.port
        );
        kinds.push((redis_backend.as_str(), ""));
    }
    let moto =
        support::moto::MotoServer::start("every_cache_type_is_filled_once_and_served (s3 row)");
    let s3_backend;
    if let Some(m) = &moto {
        m.create_bucket("app-test");
        s3_backend = format!(
            "{{type: s3, bucket_name: app-test, endpoint_url: '{}'}}",
            m.url()
        );
        kinds.push((s3_backend.as_str(), ""));
    }
    for (backend, file) in kinds {
        let up = upstream().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let yaml = format!(
            "services:\n  tms:\n\
             layers:\n  - name: osm\n    title: OSM\n    sources: [c]\n\
             caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [osm_tiles]\n    cache: {backend}\n\
             sources:\n  osm_tiles:\n    type: tile\n    grid: GLOBAL_WEBMERCATOR\n    url: http://{}/%(tms_path)s.png\n",
            up.addr
        );
        let app = build(tmp.path(), &yaml);
        let (status, headers, body) = get(&app, "/tms/1.0.0/osm/EPSG3857/0/0/0.png").await;
        assert_eq!(status, 200, "{backend}: {}", String::from_utf8_lossy(&body));
        if !file.is_empty() {
            assert!(tmp.path().join(file).is_file(), "{backend}: {file}");
        }
        let (status, headers2, body2) = get(&app, "/tms/1.0.0/osm/EPSG3857/0/0/0.png").await;
        assert_eq!(status, 200, "{backend}");
        assert_eq!(body2, body, "{backend}");
        assert_eq!(
            up.seen.lock().expect("seen").len(),
            1,
            "{backend}: one upstream request"
        );
        // a new app on the same storage (a restart, another instance) serves it from the cache
        let again = build(tmp.path(), &yaml);
        let (status, _, body3) = get(&again, "/tms/1.0.0/osm/EPSG3857/0/0/0.png").await;
        assert_eq!((status, &body3), (StatusCode::OK, &body), "{backend}");
        assert_eq!(
            up.seen.lock().expect("seen").len(),
            1,
            "{backend}: still one"
        );
        // the stored time is stable: the same ETag twice, and a 304 for it
        assert_eq!(headers["etag"], headers2["etag"], "{backend}");
        let req = Request::get("/tms/1.0.0/osm/EPSG3857/0/0/0.png")
            .header("if-none-match", headers["etag"].clone())
            .body(empty_body())
            .expect("request");
        assert_eq!(app.call(req).await.status(), 304, "{backend}");
    }
}

#[test]
fn bad_cache_backend_options_are_errors_with_file_and_line() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    for (backend, want) in [
        ("{type: geopackage, table_name: 'a b'}", "table_name"),
        ("{type: sqlite, sqlite_timeout: -1}", "sqlite_timeout"),
        ("{type: sqlite, ttl: soon}", "ttl"),
        ("{type: redis, port: 70000}", "port"),
        (
            "{type: redis, ssl_certfile: c.pem, ssl_keyfile: k.pem}",
            "ssl_certfile is not supported yet",
        ),
        ("{type: compact}", "missing 'version'"),
        (
            "{type: compact, version: 3}",
            "compact cache only supports version 1 or 2",
        ),
        (
            "{type: compact, version: 1, file_permissions: rw}",
            "file_permissions: expected octal permissions like '775', found 'rw'",
        ),
        ("{type: s3}", "no bucket_name configured for s3 cache c"),
        (
            "{type: s3, bucket_name: b, use_http_get: maybe}",
            "use_http_get",
        ),
        (
            "{type: s3, bucket_name: b, endpoint_url: 'ftp://h'}",
            "endpoint",
        ),
        (
            "{type: s3, bucket_name: b, profile_name: no-such-profile}",
            "The config profile (no-such-profile) could not be found",
        ),
    ] {
        std::fs::write(
            &path,
            format!(
                "services:\n  tms:\nlayers:\n  - name: d\n    title: d\n    sources: [c]\n\
                 caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [s]\n    cache: {backend}\n\
                 sources:\n  s:\n    type: debug\n"
            ),
        )
        .expect("write");
        let e = mapproxy_serve_mapproxy::app::build(&path)
            .err()
            .unwrap_or_else(|| panic!("{backend} is refused"))
            .to_string();
        // the cache: line (11), or the key on it
        assert!(e.contains("mapproxy.yaml:11"), "{backend}: {e}");
        assert!(e.contains(want), "{backend}: {e}");
    }
}

/// `directory_permissions` / `file_permissions` (MapProxy's octal strings) of a cache, else of
/// `globals.cache`, on the directories and files a file or compact cache makes.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_permissions_are_applied() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
            .permissions()
            .mode()
            & 0o7777
    };
    for (globals, backend, files) in [
        (
            "",
            "{type: compact, version: 2, directory_permissions: '0o750', file_permissions: '640'}",
            &["cache_data/c/GLOBAL_WEBMERCATOR/L01/R0000C0000.bundle"][..],
        ),
        (
            "globals:\n  cache:\n    directory_permissions: '750'\n    file_permissions: '0640'\n",
            "{type: compact, version: 1}",
            &[
                "cache_data/c/GLOBAL_WEBMERCATOR/L01/R0000C0000.bundle",
                "cache_data/c/GLOBAL_WEBMERCATOR/L01/R0000C0000.bundlx",
                "cache_data/c/GLOBAL_WEBMERCATOR/L01/R0000C0000.lck",
            ][..],
        ),
        (
            "globals:\n  cache:\n    directory_permissions: '750'\n    file_permissions: '0640'\n",
            "{type: file}",
            &["cache_data/c_EPSG3857/01/000/000/000/000/000/001.png"][..],
        ),
    ] {
        let up = upstream().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let yaml = format!(
            "{globals}services:\n  tms:\n\
             layers:\n  - name: osm\n    title: OSM\n    sources: [c]\n\
             caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [osm_tiles]\n    cache: {backend}\n\
             sources:\n  osm_tiles:\n    type: tile\n    grid: GLOBAL_WEBMERCATOR\n    url: http://{}/%(tms_path)s.png\n",
            up.addr
        );
        let app = build(tmp.path(), &yaml);
        let (status, _, _) = get(&app, "/tms/1.0.0/osm/EPSG3857/0/0/0.png").await;
        assert_eq!(status, 200, "{backend}");
        for f in files {
            let f = tmp.path().join(f);
            assert_eq!(mode(&f), 0o640, "{backend}: {}", f.display());
            assert_eq!(
                mode(f.parent().expect("dir")),
                0o750,
                "{backend}: {}",
                f.display()
            );
        }
    }
}

/// MapProxy's compact cache: one `directory` cannot hold the bundles of several grids (without
/// it, each grid has `<cache_dir>/<name>/<grid>`).
#[test]
fn a_compact_directory_of_several_grids_is_refused() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    for (backend, refused) in [
        ("{type: compact, version: 1, directory: c}", true),
        ("{type: compact, version: 1}", false),
    ] {
        std::fs::write(
            &path,
            format!(
                "services:\n  tms:\nlayers:\n  - name: d\n    title: d\n    sources: [c]\n\
                 caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR, GLOBAL_GEODETIC]\n    sources: [s]\n    cache: {backend}\n\
                 sources:\n  s:\n    type: debug\n"
            ),
        )
        .expect("write");
        match mapproxy_serve_mapproxy::app::build(&path) {
            Err(e) => {
                let e = e.to_string();
                assert!(refused, "{backend}: {e}");
                assert!(e.contains("mapproxy.yaml:11"), "{e}");
                assert!(
                    e.contains("using single directory for cache with multiple grids in c"),
                    "{e}"
                );
            }
            Ok(_) => assert!(!refused, "{backend} is refused"),
        }
    }
}

/// A bucket filled as MapProxy 7's S3Cache names its keys (`<cache>/<grid>/z/x/y.png` by
/// default; `directory` with `include_grid_name`; other layouts; `globals.cache.s3` defaults)
/// is served as it is, without asking the upstream; a missing bucket stops the start with
/// MapProxy's message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_tiles_from_an_s3_bucket_laid_out_as_mapproxy_does() {
    let Some(moto) = support::moto::MotoServer::start(
        "serves_tiles_from_an_s3_bucket_laid_out_as_mapproxy_does",
    ) else {
        return;
    };
    moto.create_bucket("mp-tiles");
    // TMS 0/1/1 (origin sw, from level 1) is the GLOBAL_WEBMERCATOR (origin nw) cache's tile
    // x 1, y 0, z 1
    let cases = [
        ("{type: s3}", "c/GLOBAL_WEBMERCATOR/1/1/0.png"),
        (
            "{type: s3, directory: /1.0.0/osm/, include_grid_name: true}",
            "1.0.0/osm/GLOBAL_WEBMERCATOR/1/1/0.png",
        ),
        (
            "{type: s3, directory: tiles, directory_layout: tc}",
            "tiles/01/000/000/001/000/000/000.png",
        ),
        (
            "{type: s3, directory: r, directory_layout: reverse_tms}",
            "r/0/1/1.png",
        ),
        (
            "{type: s3, directory: q, directory_layout: quadkey}",
            "q/1.png",
        ),
    ];
    for (i, (backend, key)) in cases.iter().enumerate() {
        let up = upstream().await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let tile = format!("tile {i} as MapProxy stored it").into_bytes();
        moto.put("mp-tiles", key, &tile);
        let yaml = format!(
            "globals:\n  cache:\n    s3:\n      bucket_name: mp-tiles\n      endpoint_url: '{}'\n\
             services:\n  tms:\n\
             layers:\n  - name: osm\n    title: OSM\n    sources: [c]\n\
             caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [osm_tiles]\n    cache: {backend}\n\
             sources:\n  osm_tiles:\n    type: tile\n    grid: GLOBAL_WEBMERCATOR\n    url: http://{}/%(tms_path)s.png\n",
            moto.url(),
            up.addr
        );
        let app = build(tmp.path(), &yaml);
        let (status, headers, body) = get(&app, "/tms/1.0.0/osm/EPSG3857/0/1/1.png").await;
        assert_eq!(status, 200, "{backend}: {}", String::from_utf8_lossy(&body));
        assert_eq!(
            &body[..],
            &tile[..],
            "{backend}: the object at {key} (upstream asked {:?})",
            up.seen.lock().expect("seen")
        );
        assert!(headers.contains_key("last-modified"), "{backend}");
        assert!(
            up.seen.lock().expect("seen").is_empty(),
            "{backend}: served from the bucket"
        );
    }
    // a missing bucket: MapProxy's message, with the file and line of the cache
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    std::fs::write(
        &path,
        format!(
            "services:\n  tms:\nlayers:\n  - name: d\n    title: d\n    sources: [c]\n\
             caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [s]\n    \
             cache: {{type: s3, bucket_name: missing, endpoint_url: '{}'}}\n\
             sources:\n  s:\n    type: debug\n",
            moto.url()
        ),
    )
    .expect("write");
    let e = tokio::task::spawn_blocking(move || mapproxy_serve_mapproxy::app::build(&path))
        .await
        .expect("build ran")
        .err()
        .expect("a missing bucket is refused")
        .to_string();
    assert!(e.contains("mapproxy.yaml:11"), "{e}");
    assert!(e.contains("No such bucket: missing"), "{e}");
}

/// Keys the YAML reader reads but the app does not implement are refused, each with its
/// file:line and YAML path, never silently ignored.
#[tokio::test]
async fn parsed_but_unimplemented_keys_are_errors_with_file_line_and_path() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    let yaml = "\
services:
  wms:
    attribution:
      text: x
  ogcapi: {}
layers:
  - name: d
    title: d
    sources: [c]
    dimensions:
      time:
        values: ['2020']
    md:
      abstract: fine
      keyword_list: [a]
caches:
  c:
    grids: [GLOBAL_WEBMERCATOR]
    sources: [t]
    bulk_meta_tiles: true
sources:
  t:
    type: tile
    url: http://127.0.0.1:1/%(tms_path)s.png
    min_res: 10
    image:
      opacity: 0.5
  w:
    type: wms
    http:
      method: POST
      manage_cookies: true
    req:
      url: http://127.0.0.1:1/service
      layers: a
globals:
  image:
    merge_method: composite
  srs:
    proj_data_dir: ./proj
";
    std::fs::write(&path, yaml).expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("refused")
        .to_string();
    for want in [
        "mapproxy.yaml:4: services.wms.attribution is not supported yet",
        "mapproxy.yaml:5: services.ogcapi is not supported yet",
        "mapproxy.yaml:11: layers[0].dimensions is not supported yet",
        "mapproxy.yaml:15: layers[0].md.keyword_list is not supported yet",
        "cache 'c': bulk_meta_tiles is not supported yet",
        "sources.t.min_res is not supported yet",
        "mapproxy.yaml:27: sources.t.image.opacity is not supported yet",
        "sources.w.http.method: POST is not supported yet",
        "sources.w.http.manage_cookies is not supported yet",
        "mapproxy.yaml:38: globals.image.merge_method is not supported yet",
        "mapproxy.yaml:40: globals.srs.proj_data_dir is not supported yet",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    assert!(!e.contains("abstract"), "{e}");
}
