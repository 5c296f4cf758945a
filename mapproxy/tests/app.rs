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
    // made alone and stored by this request: MapProxy's store_tile gives it a time
    // (cache/base.py:34-42), unlike the tiles of a meta tile
    assert!(headers.contains_key("last-modified"), "{headers:?}");
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
    // a tile cut from a meta tile just made: MapProxy 7 copies only its image to the tile
    // asked for (cache/tile_manager.py:177-179), so no time, no size: no Last-Modified and
    // the ETag of md5("NoneNone")
    assert_eq!(headers["etag"], "c7485dcc8d256a6f197ed7802687f252");
    assert!(!headers.contains_key("last-modified"), "{headers:?}");
    assert_eq!(
        headers["cache-control"],
        "public, max-age=259200, s-maxage=259200"
    );
    let (status, headers, _) = get(&app, "/tms/1.0.0/w/EPSG4326/0/1/0.jpeg").await;
    assert_eq!(status, 200);
    // made with the first: now a cache hit, with its file's time
    assert!(headers.contains_key("last-modified"), "{headers:?}");
    assert_ne!(headers["etag"], "c7485dcc8d256a6f197ed7802687f252");
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
    std::fs::write(&path, format!("{base}    cache: {{type: couchdb}}\n{tail}")).expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("couchdb is refused")
        .to_string();
    assert!(e.contains("mapproxy.yaml:"), "{e}");
    assert!(
        e.contains("cache type 'couchdb' is not supported yet"),
        "{e}"
    );
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

/// A layer's resolution range as MapProxy's `resolution_range` reads it: resolutions or
/// scales, not both ("requires either min_res/max_res or max_scale/min_scale"), and
/// `min_res` above `max_res` (MapProxy asserts it); errors name the file and line.
#[test]
fn layer_resolution_ranges_are_checked_as_mapproxy() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    let yaml = |limits: &str| {
        format!(
            "services:\n  wms:\nlayers:\n  - name: d\n    title: d\n    sources: [s]\n{limits}\
             sources:\n  s:\n    type: debug\n"
        )
    };
    for (limits, want) in [
        (
            "    min_res: 10\n    max_res: 1000\n",
            "min_res (10) must be larger than max_res (1000)",
        ),
        (
            "    min_scale: 100000\n    max_scale: 1000\n",
            "min_res (0.27999999999999997) must be larger than max_res (27.99",
        ),
        (
            "    min_res: 1000\n    min_scale: 100\n",
            "requires either min_res/max_res or max_scale/min_scale",
        ),
    ] {
        std::fs::write(&path, yaml(limits)).expect("write");
        let e = mapproxy_serve_mapproxy::app::build(&path)
            .err()
            .unwrap_or_else(|| panic!("{limits} is refused"))
            .to_string();
        assert!(e.contains("mapproxy.yaml:4"), "{e}");
        assert!(e.contains(want), "{want} in {e}");
    }
    for ok in [
        "    min_res: 1000\n    max_res: 10\n",
        "    min_scale: 1000\n    max_scale: 100000\n",
        "    max_scale: 100000\n",
        "    min_res: 0\n    max_res: 10\n",
    ] {
        std::fs::write(&path, yaml(ok)).expect("write");
        assert!(
            mapproxy_serve_mapproxy::app::build(&path).is_ok(),
            "{ok} is accepted"
        );
    }
}

/// `disable_storage: true` (MapProxy's DummyCache and DummyLocker): every request asks the
/// source, nothing is written (no tiles, no lock files), and the answer has MapProxy 7's
/// headers for a tile it did not load: `ETag: md5("NoneNone")`, no Last-Modified, the max
/// age. Seeding such a cache is refused as MapProxy's seed/config.py:103 refuses it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_storage_asks_the_source_every_time_and_writes_nothing() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n\
         layers:\n  - name: n\n    title: N\n    sources: [n_cache]\n\
         caches:\n  n_cache:\n    grids: [GLOBAL_GEODETIC]\n    sources: [w_wms]\n    disable_storage: true\n\
         sources:\n  w_wms:\n    type: wms\n    req:\n      url: http://{}/service?\n      layers: dbg\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    for round in 1..=2 {
        let (status, headers, body) = get(&app, "/tms/1.0.0/n/EPSG4326/0/0/0.png").await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "image/png");
        // MapProxy 7: md5("NoneNone"), the same for every made tile
        assert_eq!(headers["etag"], "c7485dcc8d256a6f197ed7802687f252");
        assert!(!headers.contains_key("last-modified"), "{headers:?}");
        assert_eq!(
            headers["cache-control"],
            "public, max-age=259200, s-maxage=259200"
        );
        assert_eq!(
            up.seen.lock().expect("seen").len(),
            round,
            "asked every time"
        );
    }
    assert!(
        !tmp.path().join("cache_data").exists(),
        "no tiles and no tile locks are written"
    );
    let conf = mapproxy_serve_mapproxy::config::load(&tmp.path().join("mapproxy.yaml"))
        .expect("loads")
        .conf;
    let managers = mapproxy_serve_mapproxy::app::cache_managers(&conf);
    let e = managers["n_cache"]
        .as_ref()
        .err()
        .expect("not seedable")
        .to_string();
    assert!(
        e.contains("can't seed cache n_cache (disable_storage: true)"),
        "{e}"
    );
    assert!(e.contains("mapproxy.yaml:"), "{e}");
}

/// `request_format`: the source is asked for PNG, the tiles are stored as the cache's JPEG
/// (MapProxy's caches(), config/configuration/cache.py:556-565); without `format`, the
/// request format is the cache's (cache.py:417); `mixed` without a PNG request format is
/// MapProxy's configuration error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_format_asks_the_source_in_another_format_than_stored() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n\
         layers:\n  - name: r\n    title: R\n    sources: [r_cache]\n\
         \x20 - name: q\n    title: Q\n    sources: [q_cache]\n\
         caches:\n  r_cache:\n    grids: [GLOBAL_GEODETIC]\n    sources: [w_wms]\n    format: image/jpeg\n    request_format: image/png\n\
         \x20 q_cache:\n    grids: [GLOBAL_GEODETIC]\n    sources: [w_wms]\n    request_format: image/jpeg\n\
         sources:\n  w_wms:\n    type: wms\n    req:\n      url: http://{}/service?\n      layers: dbg\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    let (status, headers, body) = get(&app, "/tms/1.0.0/r/EPSG4326/0/0/0.jpeg").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "image/jpeg");
    assert!(body.starts_with(&[0xFF, 0xD8]), "a JPEG tile");
    let seen = up.seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 1);
    assert!(seen[0].contains("format=image%2Fpng"), "{seen:?}");
    let stored = tmp
        .path()
        .join("cache_data/r_cache_EPSG4326/01/000/000/000/000/000/000.jpeg");
    let file = std::fs::read(&stored).expect("stored as .jpeg");
    assert!(file.starts_with(&[0xFF, 0xD8]), "stored as JPEG");
    // no format: the request format is the cache's format
    let (status, headers, _) = get(&app, "/tms/1.0.0/q/EPSG4326/0/0/0.jpeg").await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "image/jpeg");
    let seen = up.seen.lock().expect("seen").clone();
    assert!(seen[1].contains("format=image%2Fjpeg"), "{seen:?}");
    assert!(tmp
        .path()
        .join("cache_data/q_cache_EPSG4326/01/000/000/000/000/000/000.jpeg")
        .is_file());

    let path = tmp.path().join("mapproxy.yaml");
    std::fs::write(
        &path,
        "layers:\n  - name: m\n    title: M\n    sources: [m]\n\
         caches:\n  m:\n    sources: [d]\n    format: mixed\n\
         sources:\n  d:\n    type: debug\n",
    )
    .expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("mixed needs request_format")
        .to_string();
    assert!(e.contains("mapproxy.yaml:"), "{e}");
    assert!(e.contains("caches.m.request_format"), "{e}");
    assert!(e.contains("image/png or image/vnd.jpeg-png"), "{e}");
}

/// `use_direct_from_level` (MapProxy's ResolutionConditional over the cache's map layer,
/// config/configuration/cache.py:754-761): WMS maps at the level's resolution or finer ask the
/// source directly (the request's bbox and size); coarser ones and the tile services use
/// the cache. As MapProxy 7 answers the same requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_direct_from_level_sends_fine_wms_maps_to_the_source() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n  wms:\n    srs: ['EPSG:3857']\n\
         layers:\n  - name: d\n    title: D\n    sources: [d_cache]\n\
         \x20 - name: p\n    title: P\n    sources: [w_wms]\n\
         caches:\n  d_cache:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [w_wms]\n    use_direct_from_level: 3\n\
         sources:\n  w_wms:\n    type: wms\n    req:\n      url: http://{}/service?\n      layers: dbg\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    let map = |bbox: &str, size: u32| {
        format!(
            "/service?SERVICE=WMS&REQUEST=GetMap&VERSION=1.1.1&LAYERS=d&STYLES=&SRS=EPSG:3857&BBOX={bbox}&WIDTH={size}&HEIGHT={size}&FORMAT=image/png"
        )
    };
    let w = "20037508.342789244";
    // level 0 (res 156543): the cache's one tile
    let (status, _, body) = get(&app, &map(&format!("-{w},-{w},{w},{w}"), 256)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert!(tmp.path().join("cache_data/d_cache_EPSG3857/00").is_dir());
    // finer than level 3 (res 19567.88): the source, asked for the map itself
    let fine = "-20037508.342789244,-20037508.342789244,-15028131.257091932,-15028131.257091932";
    // at 256 px, the level's tile: 19567.879241005125 by the division, just above the
    // level's 19567.87924100512, so the cache (as MapProxy 7 decides)
    let (status, _, _) = get(&app, &map(fine, 256)).await;
    assert_eq!(status, 200);
    assert_eq!(up.seen.lock().expect("seen").len(), 2, "a cache meta tile");
    assert!(tmp.path().join("cache_data/d_cache_EPSG3857/03").is_dir());
    let (status, _, body) = get(&app, &map(fine, 300)).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let seen = up.seen.lock().expect("seen").clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[2].ends_with(&format!("?layers=dbg&bbox={fine}&width=300&height=300&srs=EPSG%3A3857&format=image%2Fpng&request=GetMap&version=1.1.1&service=WMS&styles=")),
        "{seen:?}"
    );
    // a layer's own WMS source asks the same (MapProxy 7: format after srs)
    let (status, _, _) = get(&app, &map(fine, 300).replace("LAYERS=d", "LAYERS=p")).await;
    assert_eq!(status, 200);
    let seen = up.seen.lock().expect("seen").clone();
    assert_eq!(seen.get(3), seen.get(2), "{seen:?}");
    // the tile services always use the cache (TMS level 5 of the global profile: grid
    // level 6)
    let (status, _, _) = get(&app, "/tms/1.0.0/d/EPSG3857/5/0/0.png").await;
    assert_eq!(status, 200);
    assert!(tmp.path().join("cache_data/d_cache_EPSG3857/06").is_dir());
    let seen = up.seen.lock().expect("seen").clone();
    assert!(
        seen[4].contains("width=1104&height=1104"),
        "a meta tile: {seen:?}"
    );

    // MapProxy: "use_direct_from_level/res only supports single sources"
    let path = tmp.path().join("mapproxy.yaml");
    std::fs::write(
        &path,
        "services:\n  wms:\n\
         layers:\n  - name: m\n    title: M\n    sources: [m]\n\
         caches:\n  m:\n    sources: [a, b]\n    use_direct_from_res: 10\n\
         sources:\n  a:\n    type: debug\n  b:\n    type: debug\n",
    )
    .expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("two sources are refused")
        .to_string();
    assert!(e.contains("mapproxy.yaml:"), "{e}");
    assert!(e.contains("only supports single sources"), "{e}");
}

/// A cache's `image:` options and the named formats of `globals.image.formats`, merged as
/// MapProxy 7 merges them (config/configuration/image_options.py, image/opts.py): the PNG
/// colour types and JPEG quality MapProxy 7 writes for the same YAML (checked with
/// MapProxy 7: `colors: 0` → the mode of the source's image, RGBA from this upstream,
/// `mode: RGB` → RGB, `mode: RGBA` → RGBA, a named `png8` → a paletted `.png`, the source
/// asked for `image/png`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_image_options_and_named_formats_encode_as_mapproxy() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let caches = [
        ("named", "format: png8"),
        ("truecolor", "image: {colors: 0}"),
        ("rgba", "image: {mode: RGBA, colors: 0}"),
        ("rgb", "image: {mode: RGB}"),
        (
            "q60",
            "format: image/jpeg\n    image: {encoding_options: {jpeg_quality: 60}}",
        ),
        ("q90", "format: image/jpeg"),
        (
            "named_q",
            "format: jpeg_low\n    image: {resampling_method: nearest}",
        ),
    ];
    let mut yaml = format!(
        "services:\n  tms:\n\
         globals:\n  image:\n    formats:\n      png8: {{format: image/png, colors: 8}}\n      jpeg_low: {{format: image/jpeg, encoding_options: {{jpeg_quality: 20}}}}\n\
         sources:\n  w_wms:\n    type: wms\n    req:\n      url: http://{}/service?\n      layers: dbg\n\
         caches:\n",
        up.addr
    );
    for (name, opts) in caches {
        yaml.push_str(&format!(
            "  {name}:\n    grids: [GLOBAL_GEODETIC]\n    sources: [w_wms]\n    {opts}\n"
        ));
    }
    yaml.push_str("layers:\n");
    for (name, _) in caches {
        yaml.push_str(&format!(
            "  - name: {name}\n    title: {name}\n    sources: [{name}]\n"
        ));
    }
    let app = build(tmp.path(), &yaml);
    // the PNG colour type (IHDR byte 25): 2 RGB, 3 paletted, 6 RGBA
    for (name, color_type) in [("named", 3), ("truecolor", 6), ("rgba", 6), ("rgb", 2)] {
        let (status, headers, body) =
            get(&app, &format!("/tms/1.0.0/{name}/EPSG4326/0/0/0.png")).await;
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "image/png", "{name}");
        assert_eq!(body.get(25), Some(&color_type), "{name}");
        assert!(
            tmp.path()
                .join(format!(
                    "cache_data/{name}_EPSG4326/01/000/000/000/000/000/000.png"
                ))
                .is_file(),
            "{name}: stored as .png"
        );
    }
    let seen = up.seen.lock().expect("seen").clone();
    assert!(
        seen[0].contains("format=image%2Fpng"),
        "png8 asks for its format: {seen:?}"
    );
    // the JPEG quality: the first luminance quantization value (libjpeg's table scaled:
    // 16 at quality 50, 13 at 60, 3 at 90, 40 at 20)
    fn first_dqt(jpeg: &[u8]) -> Option<u8> {
        let at = jpeg.windows(2).position(|w| w == [0xFF, 0xDB])?;
        jpeg.get(at + 5).copied()
    }
    for (name, q) in [("q60", 13), ("q90", 3), ("named_q", 40)] {
        let (status, headers, body) =
            get(&app, &format!("/tms/1.0.0/{name}/EPSG4326/0/0/0.jpeg")).await;
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "image/jpeg", "{name}");
        assert_eq!(first_dqt(&body), Some(q), "{name}");
    }
}

/// `image:` options that are not implemented, and bad values, are errors with file:line and
/// the YAML path.
#[test]
fn cache_image_options_not_supported_yet_are_errors() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    for (image, want) in [
        (
            "{opacity: 1.5}",
            "caches.c.image.opacity: expected a number from 0 to 1",
        ),
        (
            "{mode: L}",
            "caches.c.image.mode: mode L is not supported yet",
        ),
        (
            "{mode: P, colors: 0}",
            "mode P without colors is not supported yet",
        ),
        (
            "{mode: CMYK}",
            "caches.c.image.mode: expected RGB, RGBA or P",
        ),
        (
            "{colors: 300}",
            "caches.c.image.colors: expected 0 to 256 colors",
        ),
        (
            "{encoding_options: {quantizer: mediancut}}",
            "quantizer mediancut is not supported yet",
        ),
        (
            "{encoding_options: {jpeg_quality: high}}",
            "jpeg_quality is not an integer",
        ),
        (
            "{encoding_options: {foo: 1}}",
            "unknown encoding_options: 'foo'",
        ),
        (
            "{resampling_method: lanczos}",
            "caches.c.image.resampling_method: expected nearest, bilinear or bicubic",
        ),
    ] {
        std::fs::write(
            &path,
            format!(
                "layers:\n  - name: d\n    title: d\n    sources: [c]\n\
                 caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [s]\n    image: {image}\n\
                 sources:\n  s:\n    type: debug\n"
            ),
        )
        .expect("write");
        let e = mapproxy_serve_mapproxy::app::build(&path)
            .err()
            .unwrap_or_else(|| panic!("{image} is refused"))
            .to_string();
        assert!(e.contains("mapproxy.yaml:"), "{image}: {e}");
        assert!(e.contains(want), "{image}: {e}");
    }
}

/// A cache's `image.opacity` where MapProxy's LayerMerger uses it (image/merge.py:84-118):
/// over an opaque map the layer's colours are blended (`Image.blend`), over a transparent
/// one its alpha is scaled and it is composited; a single opaque layer is answered as it
/// is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_opacity_fades_the_layer_in_wms_maps() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  wms:\n    srs: ['EPSG:4326']\n\
         layers:\n  - name: bottom\n    title: B\n    sources: [bottom]\n\
         \x20 - name: top\n    title: T\n    sources: [top_cache]\n\
         caches:\n  top_cache:\n    grids: [GLOBAL_GEODETIC]\n    sources: [top]\n    image: {{opacity: 0.5}}\n\
         sources:\n  bottom:\n    type: wms\n    req:\n      url: http://{0}/service?\n      layers: bottom\n\
         \x20 top:\n    type: wms\n    req:\n      url: http://{0}/service?\n      layers: top\n      transparent: true\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    let map = |extra: &str| {
        format!(
            "/service?SERVICE=WMS&REQUEST=GetMap&VERSION=1.1.1&LAYERS=bottom,top&STYLES=&SRS=EPSG:4326&BBOX=-180,-90,180,90&WIDTH=512&HEIGHT=256&FORMAT=image/png{extra}"
        )
    };
    // the top layer's right half is blue over the green bottom: blended half and half
    let (status, _, body) = get(&app, &map("")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let img = image::load_from_memory(&body).expect("png").to_rgba8();
    assert_eq!(img.get_pixel(400, 100).0, [0, 64, 127, 255]);
    // the transparent half's colour (black) is blended too, as Image.blend does
    assert_eq!(img.get_pixel(100, 100).0, [0, 64, 0, 255]);
    // transparent: the blue's alpha halved (255 * 127 / 255), composited over the green
    let (status, _, body) = get(&app, &map("&TRANSPARENT=true")).await;
    assert_eq!(status, 200);
    let img = image::load_from_memory(&body).expect("png").to_rgba8();
    let p = img.get_pixel(400, 100).0;
    assert_eq!(p[3], 255);
    for (got, want) in p.iter().zip([0u8, 64, 127]) {
        assert!(got.abs_diff(want) <= 1, "{p:?}");
    }
    assert_eq!(img.get_pixel(100, 100).0, [0, 128, 0, 255]);
    // the transparent cache alone in an opaque map: blended with the white background
    let (status, _, body) = get(&app, &map("").replace("bottom,top", "top")).await;
    assert_eq!(status, 200);
    let img = image::load_from_memory(&body).expect("png").to_rgba8();
    assert_eq!(img.get_pixel(400, 100).0, [127, 127, 255, 255]);
    assert_eq!(img.get_pixel(100, 100).0, [127, 127, 127, 255]);
    // the cache alone in an opaque map: as it is (MapProxy returns a single layer as it is
    // unless it is transparent in an opaque map)
    let (status, _, body) = get(&app, &map("&TRANSPARENT=true").replace("bottom,top", "top")).await;
    assert_eq!(status, 200);
    let img = image::load_from_memory(&body).expect("png").to_rgba8();
    assert_eq!(img.get_pixel(400, 100).0, [0, 0, 255, 255]);
}

fn pixel(png: &[u8], x: u32, y: u32) -> [u8; 4] {
    image::load_from_memory(png)
        .expect("image")
        .to_rgba8()
        .get_pixel(x, y)
        .0
}

/// Caches as sources (MapProxy's CacheSource), each asserted against what MapProxy 7 asks its
/// upstream for the same YAML: a cache in another grid draws its meta tile from the other
/// cache's tiles (reprojected, through the WMS's path); a cache of the same grid and format
/// takes the other cache's tiles as stored, one by one; a cache and a WMS source merged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caches_as_sources_as_mapproxy_7() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n\
         layers:\n  - name: geo\n    title: geo\n    sources: [geo]\n\
         \x20 - name: same\n    title: same\n    sources: [same]\n\
         \x20 - name: mixed\n    title: mixed\n    sources: [mixed]\n\
         caches:\n  merc:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [tiles]\n\
         \x20 geo:\n    grids: [GLOBAL_GEODETIC]\n    sources: [merc]\n\
         \x20 same:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [merc]\n\
         \x20 mixed:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [merc, w]\n\
         sources:\n  tiles:\n    type: tile\n    grid: GLOBAL_WEBMERCATOR\n    url: http://{0}/%(tms_path)s.png\n\
         \x20 w:\n    type: wms\n    req:\n      url: http://{0}/service?\n      layers: top\n      transparent: true\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    let seen = || up.seen.lock().expect("seen").clone();

    // GLOBAL_GEODETIC level 1 (TMS 0) is one meta tile of 512×256, the world: MapProxy 7
    // draws it from the four tiles of GLOBAL_WEBMERCATOR level 1
    let (status, _, body) = get(&app, "/tms/1.0.0/geo/EPSG4326/0/0/0.png").await;
    assert_eq!(status, 200);
    let mut s = seen();
    s.sort();
    assert_eq!(
        s,
        ["/1/0/0.png?", "/1/0/1.png?", "/1/1/0.png?", "/1/1/1.png?"]
    );
    // the upstream's red where web mercator reaches; beyond 85.05° the transparent pixels of
    // this opaque cache are black, as in MapProxy 7's tile
    assert_eq!(pixel(&body, 100, 128), [200, 0, 0, 255]);
    assert_eq!(
        pixel(&body, 100, 1),
        [0, 0, 0, 255],
        "opaque, MapProxy 7 too"
    );
    let data = tmp.path().join("cache_data");
    for p in [
        "geo_EPSG4326/01/000/000/000/000/000/000.png",
        "geo_EPSG4326/01/000/000/001/000/000/000.png",
        "merc_EPSG3857/01/000/000/000/000/000/000.png",
        "merc_EPSG3857/01/000/000/001/000/000/001.png",
    ] {
        assert!(
            data.join(p).is_file(),
            "{p} stored, as MapProxy 7 stores it"
        );
    }
    let (status, _, _) = get(&app, "/tms/1.0.0/geo/EPSG4326/0/1/0.png").await;
    assert_eq!(status, 200);
    assert_eq!(
        seen().len(),
        4,
        "the other tile of the meta tile was stored with it"
    );

    // the same grid and format: tiled only, one tile of the other cache, stored as it came
    let (status, _, body) = get(&app, "/tms/1.0.0/same/EPSG3857/1/0/0.png").await;
    assert_eq!(status, 200);
    assert_eq!(seen()[4..], ["/2/0/3.png?"], "one tile, as MapProxy 7 asks");
    let merc = std::fs::read(data.join("merc_EPSG3857/02/000/000/000/000/000/003.png"))
        .expect("merc tile");
    let same = std::fs::read(data.join("same_EPSG3857/02/000/000/000/000/000/003.png"))
        .expect("same tile");
    assert_eq!(body.as_ref(), merc.as_slice());
    assert_eq!(
        same, merc,
        "the other cache's bytes, as MapProxy 7 stores them"
    );

    // a cache and a WMS merged: one meta tile (4×4 tiles of level 2, the world) from the
    // WMS and from the cache's other 15 tiles of level 2, as MapProxy 7 asks them
    let (status, _, left) = get(&app, "/tms/1.0.0/mixed/EPSG3857/1/0/0.png").await;
    assert_eq!(status, 200);
    let (status, _, right) = get(&app, "/tms/1.0.0/mixed/EPSG3857/1/3/0.png").await;
    assert_eq!(status, 200);
    let s = seen()[5..].to_vec();
    let wms: Vec<&String> = s.iter().filter(|p| p.starts_with("/service")).collect();
    assert_eq!(
        wms,
        ["/service?layers=top&transparent=True&format=image%2Fpng&bbox=-20037508.342789244,-20037508.342789244,20037508.342789244,20037508.342789244&width=1024&height=1024&srs=EPSG%3A3857&request=GetMap&version=1.1.1&service=WMS&styles="],
    );
    let mut tiles: Vec<&String> = s.iter().filter(|p| !p.starts_with("/service")).collect();
    tiles.sort();
    let mut expected = Vec::new();
    for x in 0..4 {
        for y in 0..4 {
            if (x, y) != (0, 3) {
                expected.push(format!("/2/{x}/{y}.png?"));
            }
        }
    }
    expected.sort();
    assert_eq!(tiles, expected.iter().collect::<Vec<_>>());
    // the cache at the bottom, the WMS (left half transparent, right half blue) on top
    assert_eq!(pixel(&left, 128, 128), [200, 0, 0, 255]);
    assert_eq!(pixel(&right, 128, 128), [0, 0, 255, 255]);
}

#[test]
fn caches_as_sources_refused_as_mapproxy_7() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let path = tmp.path().join("mapproxy.yaml");
    let head = "services:\n  tms:\nlayers:\n  - name: a\n    title: a\n    sources: [a]\n";
    let tail = "sources:\n  t:\n    type: tile\n    url: http://127.0.0.1:9/%(tms_path)s.png\n\
                \x20 d:\n    type: debug\n";
    let build_err = |caches: &str| {
        std::fs::write(&path, format!("{head}caches:\n{caches}{tail}")).expect("write");
        match mapproxy_serve_mapproxy::app::build(&path) {
            Ok(_) => panic!("refused:\n{caches}"),
            Err(e) => e.to_string(),
        }
    };
    // config/validator.py's message
    let e = build_err("  a:\n    sources: [nope]\n");
    assert!(e.contains("mapproxy.yaml:"), "{e}");
    assert!(
        e.contains("Source 'nope' for cache 'a' not found in config"),
        "{e}"
    );
    // MapProxy recurses until Python gives up; here the cycle is named
    let e = build_err("  a:\n    sources: [b]\n  b:\n    sources: [a]\n");
    assert!(e.contains("cycle of caches (a -> b -> a)"), "{e}");
    // cache/tile_manager.py:65: a tile source with meta tiles configured
    let e = build_err("  a:\n    sources: [t, d]\n");
    assert!(
        e.contains("meta tiling configured but not supported by all sources"),
        "{e}"
    );
    // without meta tiles it is built (tile by tile)
    std::fs::write(
        &path,
        format!("{head}caches:\n  a:\n    sources: [t, d]\n    meta_size: [1, 1]\n    meta_buffer: 0\n{tail}"),
    )
    .expect("write");
    if let Err(e) = mapproxy_serve_mapproxy::app::build(&path) {
        panic!("builds: {e}");
    }
    // config/configuration/cache.py:588-589
    let e = build_err("  a:\n    sources: []\n    upscale_tiles: 1\n    downscale_tiles: 1\n");
    assert!(
        e.contains("cannot use both upscale_tiles and downscale_tiles"),
        "{e}"
    );
    let e = build_err("  a:\n    sources: [d]\n    watermark: {text: x, spacing: narrow}\n");
    assert!(e.contains("unsupported watermark spacing: 'narrow'"), "{e}");
    assert!(e.contains("caches.a.watermark.spacing"), "{e}");
}

/// A 256×256 tile of `rgba` with a white top left quarter, written as MapProxy's `tc` layout
/// names it.
fn put_tile(dir: &Path, (x, y, z): (u32, u32, u32), rgba: [u8; 4]) {
    let img = image::RgbaImage::from_fn(256, 256, |px, py| {
        image::Rgba(if px < 128 && py < 128 {
            [255, 255, 255, 255]
        } else {
            rgba
        })
    });
    let path = dir.join(format!("{z:02}/000/000/{x:03}/000/000/{y:03}.png"));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    img.save(&path).expect("save");
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .map(|e| {
            let e = e.expect("entry");
            if e.file_type().expect("type").is_dir() {
                count_files(&e.path())
            } else {
                1
            }
        })
        .sum()
}

fn near(a: [u8; 4], b: [u8; 4]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 2)
}

/// Caches without sources, with `upscale_tiles`/`downscale_tiles`: the same tiles written,
/// the same requests, the colours MapProxy 7 answered (its bicubic gives 119 where the tile
/// has 120; within 2 here); nothing stored, no upstream.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upscale_and_downscale_tiles_as_mapproxy_7() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = "services:\n  tms:\n\
         layers:\n  - name: up\n    title: up\n    sources: [up]\n\
         \x20 - name: down\n    title: down\n    sources: [down]\n\
         \x20 - name: empty\n    title: empty\n    sources: [empty]\n\
         \x20 - name: kept\n    title: kept\n    sources: [kept]\n\
         caches:\n  up:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: []\n    upscale_tiles: 2\n\
         \x20 down:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: []\n    downscale_tiles: 1\n\
         \x20 empty:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: []\n\
         \x20 kept:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: []\n    upscale_tiles: 1\n    cache_rescaled_tiles: true\n";
    let data = tmp.path().join("cache_data");
    let colours = [
        [255, 0, 0, 255],
        [0, 255, 0, 255],
        [0, 0, 255, 255],
        [255, 255, 0, 255],
    ];
    for (i, (x, y)) in [(0, 0), (1, 0), (0, 1), (1, 1)].into_iter().enumerate() {
        put_tile(&data.join("up_EPSG3857"), (x, y, 1), colours[i]);
        put_tile(&data.join("kept_EPSG3857"), (x, y, 1), colours[i]);
    }
    for x in 0..4u8 {
        for y in 0..4u8 {
            put_tile(
                &data.join("down_EPSG3857"),
                (u32::from(x), u32::from(y), 2),
                [x * 60, y * 60, 100, 255],
            );
        }
    }
    let app = build(tmp.path(), yaml);
    let files = count_files(&data);

    // grid level 3 (TMS 2), column 1, row 6: level 2 is missing, level 1's tile (0, 1) blue
    let (status, _, body) = get(&app, "/tms/1.0.0/up/EPSG3857/2/1/1.png").await;
    assert_eq!(status, 200);
    for (x, y) in [(10, 10), (100, 100), (200, 200), (10, 200)] {
        assert_eq!(pixel(&body, x, y), [0, 0, 255, 255]);
    }
    // grid level 5: nothing on levels 4 and 3, blank
    let (status, _, body) = get(&app, "/tms/1.0.0/up/EPSG3857/4/0/0.png").await;
    assert_eq!(status, 200);
    assert_eq!(pixel(&body, 128, 128)[3], 0);
    // a stored tile as it is
    let (_, _, body) = get(&app, "/tms/1.0.0/up/EPSG3857/0/0/0.png").await;
    assert_eq!(pixel(&body, 10, 10), [255, 255, 255, 255]);
    assert_eq!(pixel(&body, 200, 200), [0, 0, 255, 255]);

    // grid level 1, tile (0, 1): the four tiles of level 2 below it, scaled down
    let (status, _, body) = get(&app, "/tms/1.0.0/down/EPSG3857/0/0/0.png").await;
    assert_eq!(status, 200);
    for ((x, y), want) in [
        ((10, 10), [255, 255, 255, 255]),
        ((100, 100), [0, 119, 100, 255]),
        ((130, 130), [255, 255, 255, 255]),
        ((200, 200), [60, 180, 100, 255]),
        ((10, 200), [0, 180, 100, 255]),
        ((200, 10), [60, 119, 100, 255]),
    ] {
        let got = pixel(&body, x, y);
        assert!(near(got, want), "({x}, {y}): {got:?}, MapProxy 7 {want:?}");
    }
    let (_, _, body) = get(&app, "/tms/1.0.0/down/EPSG3857/0/1/0.png").await;
    for ((x, y), want) in [
        ((100, 100), [119, 119, 100, 255]),
        ((200, 200), [180, 180, 100, 255]),
        ((10, 200), [119, 180, 100, 255]),
        ((200, 10), [180, 119, 100, 255]),
    ] {
        let got = pixel(&body, x, y);
        assert!(near(got, want), "({x}, {y}): {got:?}, MapProxy 7 {want:?}");
    }
    // no sources: a missing tile is blank, 256×256, transparent
    let (status, _, body) = get(&app, "/tms/1.0.0/empty/EPSG3857/1/0/0.png").await;
    assert_eq!(status, 200);
    let img = image::load_from_memory(&body).expect("image").to_rgba8();
    assert_eq!(img.dimensions(), (256, 256));
    assert!(img.pixels().all(|p| p.0[3] == 0));
    assert_eq!(
        count_files(&data),
        files,
        "nothing stored (MapProxy 7 neither)"
    );
    // cache_rescaled_tiles: stored
    let (status, _, body) = get(&app, "/tms/1.0.0/kept/EPSG3857/1/0/0.png").await;
    assert_eq!(status, 200);
    let stored = std::fs::read(data.join("kept_EPSG3857/02/000/000/000/000/000/003.png"))
        .expect("the rescaled tile stored");
    assert_eq!(stored, body.as_ref());
}

/// Non-green pixels of a tile of the upstream's green: (min x, max x, min y, max y).
fn ink(png: &[u8]) -> Option<(u32, u32, u32, u32)> {
    let img = image::load_from_memory(png).expect("image").to_rgba8();
    let mut b: Option<(u32, u32, u32, u32)> = None;
    for (x, y, p) in img.enumerate_pixels() {
        if p.0 != [0, 128, 0, 255] {
            let (x0, x1, y0, y1) = b.unwrap_or((x, x, y, y));
            b = Some((x0.min(x), x1.max(x), y0.min(y), y1.max(y)));
        }
    }
    b
}

/// `watermark`: where MapProxy 7 drew "mapproxy" at font size 12 on the same tiles (even
/// rows: x 99-157, y 133-142; odd rows: x 0-29 and 227-255; `spacing: wide`: only where the
/// column's and row's parity differ). The glyphs are not Pillow's: bounds within 4 pixels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watermark_placed_as_mapproxy_7() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  tms:\n\
         layers:\n  - name: wm\n    title: wm\n    sources: [wm]\n\
         \x20 - name: wide\n    title: wide\n    sources: [wide]\n\
         caches:\n  wm:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [g]\n    watermark:\n      text: mapproxy\n      color: '#ff0000'\n      opacity: 200\n      font_size: 12\n\
         \x20 wide:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [g]\n    watermark:\n      text: mapproxy\n      color: [255, 0, 0]\n      opacity: 200\n      font_size: 12\n      spacing: wide\n\
         sources:\n  g:\n    type: wms\n    req:\n      url: http://{0}/service?\n      layers: bottom\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    let close = |got: u32, want: u32| got.abs_diff(want) <= 4;
    // TMS 1/0/1 is grid tile (0, 2): even row, centred
    let (status, _, body) = get(&app, "/tms/1.0.0/wm/EPSG3857/1/0/1.png").await;
    assert_eq!(status, 200);
    let (x0, x1, y0, y1) = ink(&body).expect("a watermark");
    assert!(
        close(x0, 99) && close(x1, 157) && close(y0, 133) && close(y1, 142),
        "{:?}",
        (x0, x1, y0, y1)
    );
    let stored = std::fs::read(
        tmp.path()
            .join("cache_data/wm_EPSG3857/02/000/000/000/000/000/002.png"),
    )
    .expect("stored");
    assert_eq!(stored, body.as_ref(), "stored with the watermark");
    // TMS 1/0/0 is grid tile (0, 3): odd row, halves on both edges
    let (_, _, body) = get(&app, "/tms/1.0.0/wm/EPSG3857/1/0/0.png").await;
    let img = image::load_from_memory(&body).expect("image").to_rgba8();
    let xs: Vec<u32> = img
        .enumerate_pixels()
        .filter(|(_, _, p)| p.0 != [0, 128, 0, 255])
        .map(|(x, _, _)| x)
        .collect();
    assert!(xs.iter().any(|x| *x < 10) && xs.iter().any(|x| *x > 246));
    assert!(xs.iter().all(|x| *x <= 33 || *x >= 223), "{xs:?}");
    // wide: grid tile (0, 3) has it, (1, 3) and (0, 2) do not
    let (_, _, body) = get(&app, "/tms/1.0.0/wide/EPSG3857/1/0/0.png").await;
    let (x0, x1, y0, y1) = ink(&body).expect("a watermark");
    assert!(close(x0, 99) && close(x1, 157) && close(y0, 133) && close(y1, 142));
    for t in ["1/1/0", "1/0/1"] {
        let (_, _, body) = get(&app, &format!("/tms/1.0.0/wide/EPSG3857/{t}.png")).await;
        assert_eq!(ink(&body), None, "{t}");
    }
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
    axis_order_ne: ['EPSG:9999']
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
        "cache 'c': bulk_meta_tiles is not supported yet",
        "mapproxy.yaml:27: sources.t.image.opacity is not supported yet",
        "sources.w.http.method: POST is not supported yet",
        "sources.w.http.manage_cookies is not supported yet",
        "mapproxy.yaml:38: globals.image.merge_method is not supported yet",
        "mapproxy.yaml:41: globals.srs.axis_order_ne is not supported yet",
    ] {
        assert!(e.contains(want), "{want}\n{e}");
    }
    // proj_data_dir has nothing to do here (projections are built in): accepted
    assert!(!e.contains("proj_data_dir"), "{e}");
    assert!(!e.contains("abstract"), "{e}");
}

/// A cache's `refresh_before` (MapProxy's `TileManager._refresh_before`,
/// cache/tile_manager.py:197-241): a stored tile whose whole seconds are not after the
/// time is a miss and is fetched and stored again; `{mtime: FILE}` is read at each load,
/// so touching the file refreshes the tiles (MapProxy's way to expire a cache by hand);
/// `{time: ...}` before the tile's time keeps it; a file that does not exist is an error
/// with file:line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresh_before_makes_out_of_date_tiles_again() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let stamp = tmp.path().join("stamp");
    std::fs::write(&stamp, "").expect("stamp");
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(&stamp)
        .and_then(|f| f.set_modified(old))
        .expect("stamp time");
    let yaml = |refresh: &str| {
        format!(
            "services:\n  tms:\n\
             layers:\n  - name: t\n    title: t\n    sources: [c]\n\
             caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [tiles]\n\
             \x20   refresh_before:\n      {refresh}\n\
             sources:\n  tiles:\n    type: tile\n    grid: GLOBAL_WEBMERCATOR\n    url: http://{}/%(tms_path)s.png\n",
            up.addr
        )
    };
    let app = build(tmp.path(), &yaml("mtime: ./stamp"));
    let asked = || up.seen.lock().expect("seen").len();
    let (s, _, _) = get(&app, "/tms/1.0.0/t/EPSG3857/2/1/1.png").await;
    assert_eq!((s, asked()), (StatusCode::OK, 1));
    // stored after the stamp: a hit
    let (s, _, _) = get(&app, "/tms/1.0.0/t/EPSG3857/2/1/1.png").await;
    assert_eq!((s, asked()), (StatusCode::OK, 1));
    // the stamp touched (a second ahead, past the tile's whole second): made again, once
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&stamp)
        .and_then(|f| f.set_modified(later))
        .expect("touch");
    let (s, _, _) = get(&app, "/tms/1.0.0/t/EPSG3857/2/1/1.png").await;
    assert_eq!((s, asked()), (StatusCode::OK, 2));
    // a time long before: stored tiles are kept
    let app = build(tmp.path(), &yaml("time: '2001-01-01T00:00:00'"));
    let (s, _, _) = get(&app, "/tms/1.0.0/t/EPSG3857/2/1/1.png").await;
    assert_eq!((s, asked()), (StatusCode::OK, 2));
    // no such file: refused where it is written
    let path = tmp.path().join("mapproxy.yaml");
    std::fs::write(&path, yaml("mtime: ./nope")).expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("refused")
        .to_string();
    assert!(e.contains("mapproxy.yaml:12"), "{e}");
    assert!(e.contains("caches.c.refresh_before.mtime"), "{e}");
}

/// A cache filled from another cache that has nothing for a tile makes no tile and stores
/// nothing (MapProxy's CacheMapLayer raises BlankImageError, cache/tile_creator.py:129-138):
/// TMS answers the empty tile; `upscale_tiles` on a cache with sources is refused (MapProxy
/// also rescales where sources made nothing; here only `sources: []` caches rescale).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_source_cache_without_the_tile_stores_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = "services:\n  tms:\n\
         layers:\n  - name: a\n    title: a\n    sources: [a]\n\
         caches:\n  a:\n    grids: [GLOBAL_GEODETIC]\n    sources: [b]\n\
         \x20 b:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: []\n";
    let app = build(tmp.path(), yaml);
    let (s, h, body) = get(&app, "/tms/1.0.0/a/EPSG4326/1/0/0.png").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h.get("content-type").map(|v| v.as_bytes()),
        Some(&b"image/png"[..])
    );
    let img = image::load_from_memory(&body).expect("png").to_rgba8();
    assert!(img.pixels().all(|p| p.0[3] == 0), "the empty tile");
    // (the lock file of the meta tile stays, as for every miss)
    let stored: Vec<_> = walk(&tmp.path().join("cache_data"))
        .into_iter()
        .filter(|p| !p.to_string_lossy().contains("tile_locks"))
        .collect();
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    let refused = yaml
        .replace(
            "    sources: []\n",
            "    sources: []\n    upscale_tiles: 1\n",
        )
        .replace(
            "  a:\n    grids: [GLOBAL_GEODETIC]\n    sources: [b]\n",
            "  a:\n    grids: [GLOBAL_GEODETIC]\n    sources: [b]\n    upscale_tiles: 2\n",
        );
    let path = tmp.path().join("mapproxy.yaml");
    std::fs::write(&path, refused).expect("write");
    let e = mapproxy_serve_mapproxy::app::build(&path)
        .err()
        .expect("refused")
        .to_string();
    assert!(
        e.contains("cache 'a': upscale_tiles with sources is not supported yet"),
        "{e}"
    );
}

/// Every file under `dir` (none when it does not exist).
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// WMTS `LegendURL`s as MapProxy 7 prints them (config/configuration/layer.py:207-219,
/// service/wmts.py:282-343, checked against MapProxy 7.0.0): a layer's `legendurl` with the
/// WMS on gives the WMS GetLegendGraphic of the highest WMS version; `wmts_kvp_legendurl` and
/// `wmts_rest_legendurl` are templates of `{base_url}` (the service URL without `/service`
/// or `/wmts`) and `{layer_name}`, inserted as they are; without the WMS, no default.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wmts_legend_urls_as_mapproxy_7() {
    let layers = "layers:\n  - name: l\n    title: L\n    sources: [c]\n    legendurl: http://x/l.png\n\
                  \x20 - name: k\n    title: K\n    sources: [c]\n    wmts_kvp_legendurl: '{base_url}/kvp/{layer_name}?a=1&amp;b=2'\n    wmts_rest_legendurl: '{base_url}/rest/{layer_name}'\n\
                  caches:\n  c:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: []\n";
    let href = |doc: &[u8]| -> Vec<String> {
        String::from_utf8_lossy(doc)
            .lines()
            .filter(|l| l.contains("xlink:href") && !l.contains("ResourceURL"))
            .filter(|l| {
                l.contains("GetLegendGraphic") || l.contains("/kvp/") || l.contains("/rest/")
            })
            .map(|l| l.trim().to_string())
            .collect()
    };
    let legend_l = |base: &str, v: &str| {
        format!("xlink:href=\"{base}/service?service=WMS&amp;request=GetLegendGraphic&amp;version={v}&amp;format=image%2Fpng&amp;layer=l\"")
    };
    for (wms, v) in [
        ("  wms:\n", "1.3.0"),
        ("  wms:\n    versions: ['1.1.1', '1.0.0']\n", "1.1.1"),
    ] {
        let tmp = tempfile::tempdir().expect("tempdir");
        let app = build(tmp.path(), &format!("services:\n  wmts:\n{wms}{layers}"));
        let req = |uri: &str| {
            Request::get(uri)
                .header("host", "h")
                .body(empty_body())
                .expect("request")
        };
        let body = |res: Response<mapproxy_serve_core::app::Body>| async move {
            res.into_body().collect().await.expect("body").to_bytes()
        };
        let rest = body(app.call(req("/wmts/1.0.0/WMTSCapabilities.xml")).await).await;
        assert_eq!(
            href(&rest),
            vec![
                legend_l("http://h", v),
                "xlink:href=\"http://h/rest/k\"".into()
            ],
            "{}",
            String::from_utf8_lossy(&rest)
        );
        let doc = String::from_utf8_lossy(&rest).into_owned();
        assert!(
            doc.contains("<ows:Identifier>default</ows:Identifier>\n        <LegendURL\n          format=\"image/png\"\n          xlink:href="),
            "{doc}"
        );
        for (path, base) in [
            ("/service", "http://h"),
            ("/ows", "http://h/ows"),
            ("/wms", "http://h/wms"),
        ] {
            let kvp = body(
                app.call(req(&format!("{path}?SERVICE=WMTS&REQUEST=GetCapabilities")))
                    .await,
            )
            .await;
            assert_eq!(
                href(&kvp),
                vec![
                    legend_l(base, v),
                    format!("xlink:href=\"{base}/kvp/k?a=1&amp;b=2\"")
                ],
                "{path}"
            );
        }
    }
    // no WMS: only the configured templates
    let tmp = tempfile::tempdir().expect("tempdir");
    let app = build(tmp.path(), &format!("services:\n  wmts:\n{layers}"));
    let (_, _, rest) = get(&app, "/wmts/1.0.0/WMTSCapabilities.xml").await;
    let rest = String::from_utf8_lossy(&rest).into_owned();
    assert_eq!(rest.matches("<LegendURL").count(), 1, "{rest}");
    assert!(rest.contains("/rest/k\""), "{rest}");
}

/// A GetMap where no layer has an image (outside every extent): MapProxy 7 answers its
/// BlankImageResult, whose as_buffer encodes with `colors = 0` (image/__init__.py:302-310):
/// a truecolour PNG (RGB, RGBA with TRANSPARENT=true), not the paletted PNG of drawn maps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_map_without_layer_images_is_a_truecolour_png_as_mapproxy_7() {
    let up = upstream().await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let yaml = format!(
        "services:\n  wms:\n\
         layers:\n  - name: w\n    title: W\n    sources: [w_cache]\n\
         caches:\n  w_cache:\n    grids: [GLOBAL_WEBMERCATOR]\n    sources: [w_wms]\n\
         sources:\n  w_wms:\n    type: wms\n    req:\n      url: http://{}/service?\n      layers: dbg\n",
        up.addr
    );
    let app = build(tmp.path(), &yaml);
    let map = |bbox: &str, extra: &str| {
        format!("/service?SERVICE=WMS&VERSION=1.1.1&REQUEST=GetMap&LAYERS=w&STYLES=&SRS=EPSG:3857&BBOX={bbox}&WIDTH=200&HEIGHT=100&FORMAT=image/png{extra}")
    };
    let outside = "30000000,30000000,40000000,35000000";
    // IHDR colour type: byte 25
    for (extra, colour_type) in [("", 2), ("&TRANSPARENT=TRUE", 6), ("&BGCOLOR=0xff0000", 2)] {
        let (status, headers, body) = get(&app, &map(outside, extra)).await;
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        assert_eq!(headers["content-type"], "image/png");
        assert_eq!(body[25], colour_type, "{extra}");
    }
    assert!(up.seen.lock().expect("seen").is_empty(), "nothing asked");
    // a drawn map: paletted
    let (status, _, body) = get(&app, &map("0,0,1000000,500000", "")).await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    assert_eq!(body[25], 3);
}
