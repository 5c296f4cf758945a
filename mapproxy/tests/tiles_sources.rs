//! Sources against what MapProxy 7.0.0 builds (`source_cases.json`, printed by
//! `gen_source_cases.py`) and against real upstreams on loopback.

mod tiles_support;

use std::time::{Duration, Instant};

use mapproxy_serve_mapproxy::grid::{self, GridConf, GridGlobals, TileGrid};
use mapproxy_serve_mapproxy::image::{decode, ImageFormat};
use mapproxy_serve_mapproxy::source::{
    DebugSource, HttpOpts, MapQuery, MapSource, OnError, OnErrorResponse, SourceHttp, TileSource,
    TileUrlTemplate, WmsSource, WmsSourceConf, WmsVersion,
};
use serde_json::Value;
use tiles_support::{capture_logs, log_lines, refused, Mode, Upstream};

fn cases() -> Value {
    serde_json::from_str(include_str!("source_cases.json")).expect("source_cases.json is JSON")
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().expect("an array")
}

fn http() -> SourceHttp {
    SourceHttp::new(&HttpOpts {
        client_timeout: Duration::from_secs(5),
        ..HttpOpts::default()
    })
    .expect("http")
}

fn query(bbox: [f64; 4], size: (u32, u32), srs: u32, format: &str) -> MapQuery {
    MapQuery {
        bbox,
        size,
        srs,
        format: ImageFormat::new(format),
        transparent: false,
    }
}

#[tokio::test]
async fn wms_urls_match_mapproxy() {
    let cases = cases();
    assert_eq!(cases["mapproxy_version"], "7.0.0");
    for case in arr(&cases["wms"]) {
        let req = arr(&case["req"])
            .iter()
            .map(|kv| {
                let kv = arr(kv);
                (
                    kv[0].as_str().expect("key").to_owned(),
                    kv[1].as_str().expect("value").to_owned(),
                )
            })
            .collect();
        let mut conf = WmsSourceConf::new(case["url"].as_str().expect("url"), req);
        conf.version =
            WmsVersion::parse(case["version"].as_str().expect("version")).expect("version");
        let src = WmsSource::new(conf, http(), None);
        let b: Vec<f64> = arr(&case["bbox"])
            .iter()
            .map(|v| v.as_f64().expect("f64"))
            .collect();
        let s = arr(&case["size"]);
        let q = query(
            [b[0], b[1], b[2], b[3]],
            (
                s[0].as_u64().expect("w") as u32,
                s[1].as_u64().expect("h") as u32,
            ),
            case["srs"].as_u64().expect("srs") as u32,
            case["query_format"].as_str().expect("format"),
        );
        assert_eq!(
            src.get_map_url(&q).expect("url"),
            case["expected"].as_str().expect("expected")
        );
    }
}

fn case_grid(name: &str) -> TileGrid {
    let conf = |origin: &str| GridConf {
        srs: Some(4326),
        bbox: Some([0.0, -15.0, 10.0, -5.0]),
        origin: Some(origin.into()),
        ..GridConf::default()
    };
    match name {
        "sw" => grid::tile_grid(&conf("sw"), None, &GridGlobals::default()).expect("grid"),
        "nw" => grid::tile_grid(&conf("nw"), None, &GridGlobals::default()).expect("grid"),
        _ => grid::global_mercator(),
    }
}

#[test]
fn tile_urls_match_mapproxy() {
    let cases = cases();
    let n = arr(&cases["tiles"]).len();
    assert!(n > 60);
    for case in arr(&cases["tiles"]) {
        let t =
            TileUrlTemplate::new(case["template"].as_str().expect("template")).expect("template");
        let c = arr(&case["tile"]);
        let coord = (
            c[0].as_i64().expect("x"),
            c[1].as_i64().expect("y"),
            c[2].as_u64().expect("z") as usize,
        );
        let got = t
            .substitute(
                coord,
                case["format"].as_str().expect("format"),
                &case_grid(case["grid"].as_str().expect("grid")),
            )
            .expect("url");
        assert_eq!(got, case["expected"].as_str().expect("expected"), "{case}");
    }
    let t = TileUrlTemplate::new("http://h/%(z)02d/%(x)05d-%(y)x/%%.png").expect("template");
    assert_eq!(
        t.substitute((7, 255, 3), "png", &grid::global_mercator())
            .expect("url"),
        "http://h/03/00007-ff/%.png"
    );
    for bad in [
        "http://h/%(zoom)s",
        "http://h/%(x)",
        "http://h/%(format)d",
        "http://h/%s",
        "%(quadkey)5d/abc",
        "%(x",
        "%(x)05",
    ] {
        assert!(TileUrlTemplate::new(bad).is_err(), "{bad}");
    }
    let e = TileUrlTemplate::new("http://h/%(bbox)d").expect_err("%d of a string");
    assert!(
        e.message.ends_with("conversion %d for %(bbox)"),
        "{}",
        e.message
    );
}

fn tile_source(up: &Upstream, on_error: Option<OnError>) -> TileSource {
    let t = TileUrlTemplate::new(&up.url("/tiles/%(tms_path)s.%(format)s")).expect("template");
    TileSource::new(t, grid::global_webmercator(), http(), on_error)
}

#[tokio::test]
async fn tile_source_fetches_one_tile_and_logs_the_request() {
    capture_logs();
    let up = Upstream::start(Mode::Png).await;
    let src = tile_source(&up, None);
    let g = grid::global_webmercator();
    let bbox = g.tile_bbox((1, 0, 1), false).expect("bbox");
    let img = src
        .get_map(&query(bbox, (256, 256), 3857, "image/png"))
        .await
        .expect("tile");
    assert_eq!(up.requests(), vec!["/tiles/1/1/0.png".to_owned()]);
    assert_eq!(img.format, Some(ImageFormat::png()));
    assert!(img.cacheable);
    assert_eq!(decode(&img.data).expect("png").dimensions(), (256, 256));
    let url = up.url("/tiles/1/1/0.png");
    let lines = log_lines(&url);
    assert_eq!(lines.len(), 1, "{lines:?}");
    // "INFO mapproxy.source.request GET <url> 200 <KiB> <ms>"
    let words: Vec<&str> = lines[0].split(' ').collect();
    assert_eq!(
        &words[..5],
        [
            "INFO",
            "mapproxy.source.request",
            "GET",
            url.as_str(),
            "200"
        ],
        "{}",
        lines[0]
    );
    let kib: f64 = words[5].parse().expect("KiB");
    assert_eq!(words[5], format!("{:.1}", img.data.len() as f64 / 1024.0));
    assert!(kib > 0.0);
    assert!(
        words[6] == "-" || words[6].parse::<u64>().is_ok(),
        "{}",
        lines[0]
    );

    // not one tile of the source's grid: refused without a request
    let e = src
        .get_map(&query(bbox, (512, 512), 3857, "png"))
        .await
        .expect_err("size");
    assert_eq!(
        e.message,
        "tile size of cache and tile source do not match: (256, 256) != (512, 512)"
    );
    let half = [bbox[0], bbox[1], (bbox[0] + bbox[2]) / 2.0, bbox[3]];
    let e = src
        .get_map(&query(half, (256, 256), 3857, "png"))
        .await
        .expect_err("align");
    assert_eq!(e.message, "BBOX does not align to tile");
    assert!(src
        .get_map(&query(bbox, (256, 256), 4326, "png"))
        .await
        .is_err());
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn tile_source_errors_and_on_error() {
    capture_logs();
    let up = Upstream::start(Mode::Status(404)).await;
    let g = grid::global_webmercator();
    let bbox = g.tile_bbox((0, 0, 0), false).expect("bbox");
    let q = query(bbox, (256, 256), 3857, "png");
    let e = tile_source(&up, None).get_map(&q).await.expect_err("404");
    assert_eq!(e.message, "HTTP Error (see logs for URL and reason).");
    let line = log_lines(&up.url("/tiles/0/0/0.png"));
    assert!(line.iter().any(|l| l.contains(" 404 ")), "{line:?}");
    assert!(log_lines("could not retrieve tile")
        .iter()
        .any(|l| l.contains(&format!(
            "HTTP Error \"{}\": 404",
            up.url("/tiles/0/0/0.png")
        ))));
    // the short error bodies are read: every request of a row of misses on one connection
    for _ in 0..4 {
        tile_source(&up, None).get_map(&q).await.expect_err("404");
    }
    assert_eq!(up.count(), 5);
    assert_eq!(
        up.connections.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "error responses' connections are used again"
    );

    // on_error 404: a transparent image, not cacheable
    let mut on = OnError::new();
    on.add(Some(404), OnErrorResponse::transparent(false));
    let img = tile_source(&up, Some(on))
        .get_map(&q)
        .await
        .expect("on_error image");
    assert!(!img.cacheable);
    let px = decode(&img.data).expect("png");
    assert_eq!(px.dimensions(), (256, 256));
    assert_eq!(px.get_pixel(10, 10).0[3], 0);

    // `other` matches any status, and no response at all
    let mut on = OnError::new();
    on.add(
        None,
        OnErrorResponse {
            color: [255, 0, 0, 255],
            cache: true,
            authorize_stale: false,
        },
    );
    up.set_mode(Mode::Status(500));
    let img = tile_source(&up, Some(on.clone()))
        .get_map(&q)
        .await
        .expect("other");
    assert!(img.cacheable);
    assert_eq!(
        decode(&img.data).expect("png").get_pixel(0, 0).0,
        [255, 0, 0, 255]
    );

    // not an image
    up.set_mode(Mode::Xml);
    let e = tile_source(&up, None).get_map(&q).await.expect_err("xml");
    assert_eq!(
        e.message,
        "response is not an image: (b'<ServiceExceptionReport/>')"
    );

    // nobody listening
    let addr = refused().await;
    let t = TileUrlTemplate::new(&format!("http://{addr}/%(tms_path)s.png")).expect("template");
    let src = TileSource::new(t, grid::global_webmercator(), http(), None);
    let e = src.get_map(&q).await.expect_err("refused");
    assert_eq!(
        e.message,
        "No response from URL (see logs for URL and reason)."
    );
    let lines = log_lines(&format!("GET http://{addr}/0/0/0.png"));
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains("/0/0/0.png - - "), "{}", lines[0]);
    let src = TileSource::new(
        TileUrlTemplate::new(&format!("http://{addr}/%(tms_path)s.png")).expect("template"),
        grid::global_webmercator(),
        http(),
        Some(on),
    );
    assert!(src.get_map(&q).await.is_ok(), "other covers no response");
}

fn wms(up: &Upstream, version: WmsVersion) -> WmsSourceConf {
    let mut c = WmsSourceConf::new(up.url("/service"), vec![("layers".into(), "dbg".into())]);
    c.version = version;
    c
}

#[tokio::test]
async fn wms_source_requests_getmap_per_version() {
    capture_logs();
    let up = Upstream::start(Mode::Png).await;
    let q = query([-180.0, -90.0, 180.0, 90.0], (512, 256), 4326, "png");
    let img = WmsSource::new(wms(&up, WmsVersion::V1_1_1), http(), None)
        .get_map(&q)
        .await
        .expect("1.1.1");
    assert_eq!(decode(&img.data).expect("png").dimensions(), (512, 256));
    let img = WmsSource::new(wms(&up, WmsVersion::V1_3_0), http(), None)
        .get_map(&q)
        .await
        .expect("1.3.0");
    assert_eq!(decode(&img.data).expect("png").dimensions(), (512, 256));
    assert_eq!(
        up.requests(),
        vec![
            "/service?layers=dbg&format=image%2Fpng&bbox=-180.0,-90.0,180.0,90.0&width=512&height=256&srs=EPSG%3A4326&request=GetMap&version=1.1.1&service=WMS&styles=".to_owned(),
            "/service?layers=dbg&format=image%2Fpng&bbox=-90.0,-180.0,90.0,180.0&width=512&height=256&request=GetMap&version=1.3.0&service=WMS&styles=&crs=EPSG%3A4326".to_owned(),
        ]
    );
    let first = up.url(&up.requests()[0]);
    assert_eq!(log_lines(&format!("GET {first} 200 ")).len(), 1);

    // a query in an SRS not among supported_srs: asked in a supported one over the bbox
    // transformed, at MapProxy's size (the source bbox's aspect ratio), reprojected back
    let mut c = wms(&up, WmsVersion::V1_1_1);
    c.supported_srs = vec![3857];
    let ll = MapQuery {
        bbox: [-20.0, -20.0, 20.0, 20.0],
        size: (100, 100),
        ..q.clone()
    };
    let before = up.requests().len();
    let img = WmsSource::new(c, http(), None)
        .get_map(&ll)
        .await
        .expect("reprojected");
    assert_eq!(decode(&img.data).expect("png").dimensions(), (100, 100));
    let asked = &up.requests()[before..];
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].contains("&width=100&height=102&srs=EPSG%3A3857&"),
        "{}",
        asked[0]
    );
    // supported_formats: the first one is asked for
    let mut c = wms(&up, WmsVersion::V1_1_1);
    c.supported_formats = vec![ImageFormat::new("image/gif"), ImageFormat::jpeg()];
    let src = WmsSource::new(c, http(), None);
    assert!(src
        .get_map_url(&q)
        .expect("url")
        .contains("format=image%2Fgif"));
    let mut c = wms(&up, WmsVersion::V1_1_1);
    c.supported_formats = vec![ImageFormat::new("gif"), ImageFormat::new("image/png")];
    let src = WmsSource::new(c, http(), None);
    assert!(src
        .get_map_url(&q)
        .expect("url")
        .contains("format=image%2Fpng"));
    assert_eq!(up.count(), 3);

    // an exception document instead of an image
    up.set_mode(Mode::Xml);
    let src = WmsSource::new(wms(&up, WmsVersion::V1_1_1), http(), None);
    let e = src.get_map(&q).await.expect_err("xml");
    assert_eq!(
        e.message,
        format!(
            "no image returned from source WMS: {}",
            src.get_map_url(&q).expect("url")
        )
    );
    assert!(log_lines("response was: '<ServiceExceptionReport/>'").len() == 1);
    up.set_mode(Mode::Status(500));
    let e = src.get_map(&q).await.expect_err("500");
    assert_eq!(e.message, "HTTP Error (see logs for URL and reason).");
}

#[tokio::test]
async fn wms_concurrent_requests_limit() {
    let up = Upstream::start(Mode::Png).await;
    let gate = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    *up.gate.lock().expect("lock") = Some(gate.clone());
    let mut c = wms(&up, WmsVersion::V1_1_1);
    c.concurrent_requests = 2;
    let src = std::sync::Arc::new(WmsSource::new(c, http(), None));
    let mut tasks = Vec::new();
    for i in 0..5 {
        let src = src.clone();
        tasks.push(tokio::spawn(async move {
            let q = query([0.0, 0.0, 1.0 + f64::from(i), 1.0], (16, 16), 4326, "png");
            src.get_map(&q).await.map(|_| ())
        }));
    }
    tiles_support::until("two requests at the upstream", || up.count() == 2).await;
    // the others wait for a permit of the source, not at the upstream
    tokio::task::yield_now().await;
    assert_eq!(up.count(), 2);
    gate.add_permits(5);
    for t in tasks {
        t.await.expect("task").expect("image");
    }
    assert_eq!(up.count(), 5);
    assert_eq!(
        up.max_in_flight.load(std::sync::atomic::Ordering::SeqCst),
        2
    );
}

#[tokio::test]
async fn debug_source_draws_the_bbox_on_transparent() {
    let q = query([-180.0, -90.0, 0.0, 90.0], (256, 256), 4326, "png");
    assert_eq!(
        DebugSource::text(&q),
        "bbox: (-180.0, -90.0, 0.0, 90.0)\nres: 0.70312500(0.70312500)"
    );
    let img = DebugSource::new().get_map(&q).await.expect("image");
    let px = decode(&img.data).expect("png");
    assert_eq!(px.dimensions(), (256, 256));
    let drawn = px.pixels().filter(|p| p.0[3] == 255).count();
    assert!(drawn > 100, "{drawn} text pixels");
    assert_eq!(px.get_pixel(255, 255).0[3], 0, "transparent background");
    assert!(
        px.get_pixel(0, 0).0[3] == 0 && px.pixels().take(256 * 30).any(|p| p.0[3] == 255),
        "text at the top"
    );
    let start = Instant::now();
    assert!(DebugSource::new()
        .get_map(&query([0.0, 0.0, 1.0, 1.0], (0, 5), 4326, "png"))
        .await
        .is_err());
    assert!(start.elapsed() < Duration::from_secs(5));
}
