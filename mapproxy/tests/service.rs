//! MapProxy's tile-service system tests (`test/system/test_tms.py`, `test_tms_origin.py`,
//! `test_response_headers.py`, `test_behind_proxy.py`) against `service::MapProxyService`
//! with an in-memory tile provider, and golden documents printed by the real MapProxy 7.0.0
//! for `tests/fixtures/service/mapproxy.yaml` (`gen_golden.sh`).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response, StatusCode};
use http_body_util::BodyExt;
use mapproxy_serve_core::app::Body;
use mapproxy_serve_core::environ::{MountPath, PublicUrl};
use mapproxy_serve_mapproxy::grid::{
    global_geodetic, global_mercator, global_webmercator, Origin, TileCoord, TileGrid,
};
use mapproxy_serve_mapproxy::image::ImageFormat;
use mapproxy_serve_mapproxy::service::{
    Contact, Keywords, KmlConfig, MapProxyService, ServiceConfig, ServiceMd, TileLayer, TmsConfig,
    WmtsConfig,
};
use mapproxy_serve_mapproxy::tile::{TileData, TileError, TileProvider};

/// Answers every tile with `data`, counting calls and remembering the coordinates.
struct FakeProvider {
    data: Bytes,
    mtime: Option<SystemTime>,
    error: Option<TileError>,
    calls: AtomicUsize,
    coords: Mutex<Vec<TileCoord>>,
    format: ImageFormat,
}

impl FakeProvider {
    fn new(format: ImageFormat) -> Arc<FakeProvider> {
        Arc::new(FakeProvider {
            data: Bytes::from(vec![7u8; 10214]),
            mtime: Some(UNIX_EPOCH + Duration::from_secs(1234567890)),
            error: None,
            calls: AtomicUsize::new(0),
            coords: Mutex::new(Vec::new()),
            format,
        })
    }

    fn failing(format: ImageFormat, e: TileError) -> Arc<FakeProvider> {
        Arc::new(FakeProvider {
            data: Bytes::new(),
            mtime: None,
            error: Some(e),
            calls: AtomicUsize::new(0),
            coords: Mutex::new(Vec::new()),
            format,
        })
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }

    fn coords(&self) -> Vec<TileCoord> {
        self.coords.lock().map(|c| c.clone()).unwrap_or_default()
    }
}

impl TileProvider for FakeProvider {
    fn tile(&self, coord: TileCoord) -> BoxFuture<'_, Result<TileData, TileError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if let Ok(mut c) = self.coords.lock() {
            c.push(coord);
        }
        let res = match &self.error {
            Some(e) => Err(e.clone()),
            None => Ok(TileData {
                data: self.data.clone(),
                format: self.format.clone(),
                mtime: self.mtime,
                drawn: None,
            }),
        };
        Box::pin(async move { res })
    }
}

fn layer(
    name: &str,
    title: &str,
    grid: TileGrid,
    format: ImageFormat,
    provider: Arc<FakeProvider>,
) -> TileLayer {
    let grid_name = grid.name().unwrap_or("unnamed").to_string();
    TileLayer::new(name, title, grid_name, Arc::new(grid), format, provider)
}

/// The services of `fixtures/service/mapproxy.yaml`.
struct Golden {
    svc: MapProxyService,
    osm: Arc<FakeProvider>,
    geo: Arc<FakeProvider>,
}

fn golden_service() -> Golden {
    let osm = FakeProvider::new(ImageFormat::png());
    let geo = FakeProvider::new(ImageFormat::jpeg());
    let config = ServiceConfig {
        demo: true,
        tms: Some(TmsConfig::default()),
        kml: Some(KmlConfig::default()),
        wmts: Some(WmtsConfig::default()),
        wms: true,
        md: ServiceMd {
            title: "Golden WMS".into(),
            abstract_: "Tiles and more".into(),
            online_resource: "http://example.org/".into(),
            fees: Some("free".into()),
            access_constraints: Some("none at all".into()),
            keyword_list: vec![
                Keywords {
                    vocabulary: Some("GEMET".into()),
                    keywords: vec!["maps".into(), "tiles".into()],
                },
                Keywords {
                    vocabulary: None,
                    keywords: vec!["debug".into()],
                },
            ],
            contact: Some(Contact {
                person: "Jane Doe".into(),
                position: "Maps".into(),
                organization: "Example Org".into(),
                address: "Main Street 1".into(),
                city: "Oldenburg".into(),
                postcode: "26122".into(),
                country: "Germany".into(),
                phone: "+49 1".into(),
                fax: "+49 2".into(),
                email: "jane@example.org".into(),
                ..Contact::default()
            }),
        },
        ..ServiceConfig::default()
    };
    let layers = vec![
        layer(
            "osm",
            "OSM debug",
            global_webmercator(),
            ImageFormat::png(),
            osm.clone(),
        ),
        layer(
            "geo",
            "Geodetic debug",
            global_geodetic(),
            ImageFormat::jpeg(),
            geo.clone(),
        ),
    ];
    Golden {
        svc: MapProxyService::new(config, layers),
        osm,
        geo,
    }
}

struct Answer {
    status: StatusCode,
    headers: http::HeaderMap,
    body: Bytes,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn answer(res: Response<Body>) -> Answer {
    let (parts, body) = res.into_parts();
    let body = match body.collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => panic!("body error: {e}"),
    };
    Answer {
        status: parts.status,
        headers: parts.headers,
        body,
    }
}

async fn get_with(svc: &MapProxyService, uri: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::builder().uri(uri);
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        b = b.header("host", "localhost");
    }
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let req = b.body(()).expect("request");
    answer(svc.handle(req).await).await
}

async fn get(svc: &MapProxyService, uri: &str) -> Answer {
    get_with(svc, uri, &[]).await
}

const VARY: &str = "X-Script-Name, X-Forwarded-Host, X-Forwarded-Proto";

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/tests/fixtures/service/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

/// Every golden document of a service implemented here: same status, content type, bytes.
#[tokio::test]
async fn golden_documents_as_mapproxy_printed_them() {
    let g = golden_service();
    let index = String::from_utf8(fixture("index.txt")).expect("utf-8");
    let mut checked = 0;
    for line in index.lines() {
        let mut words: Vec<&str> = line.split(' ').collect();
        let (Some(path), true) = (words.pop(), words.len() >= 3) else {
            panic!("bad index line {line}");
        };
        let name = words[0];
        let status: u16 = words[1].parse().expect("status");
        let content_type = words[2..].join(" ");
        let a = get_with(&g.svc, path, &[("host", "127.0.0.1:18931")]).await;
        assert_eq!(a.status.as_u16(), status, "{name} {path}");
        assert_eq!(
            a.header("content-type"),
            Some(content_type.as_str()),
            "{name}"
        );
        assert_eq!(
            a.text(),
            String::from_utf8_lossy(&fixture(name)),
            "{name} {path}"
        );
        assert_eq!(a.header("vary"), Some(VARY), "{name}");
        assert_eq!(a.header("access-control-allow-origin"), Some("*"), "{name}");
        checked += 1;
    }
    assert_eq!(checked, 35);
    // The jpeg request to a png layer, the out-of-range tiles: never asked the provider.
    assert_eq!(g.osm.calls(), 0);
    assert_eq!(g.geo.calls(), 0);
}

// ---- test_tms.py ----

#[tokio::test]
async fn tms_capabilities_with_and_without_slash() {
    let g = golden_service();
    let a = get(&g.svc, "/tms/1.0.0/").await;
    let b = get(&g.svc, "/tms/1.0.0").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.body, b.body);
    for p in ["/tms", "/tms/"] {
        let r = get(&g.svc, p).await;
        assert!(r
            .text()
            .contains("<TileMapService title=\"Golden WMS\" version=\"1.0.0\""));
        assert!(r.text().contains("href=\"http://localhost/tms/1.0.0/\""));
    }
}

#[tokio::test]
async fn tms_tiles_outside_the_bbox() {
    let g = golden_service();
    for (z, x, y) in [(-1, 0, 0), (0, -1, 0), (0, 0, -1), (1, 4, 2), (0, 1, 3)] {
        let a = get(&g.svc, &format!("/tms/1.0.0/osm/EPSG3857/{z}/{x}/{y}.png")).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{z}/{x}/{y}");
        assert!(a.text().contains(
            "<Message>The requested tile is outside the bounding box of the tile map.</Message>"
        ));
        assert_eq!(a.header("cache-control"), Some("no-cache, no-store"));
        assert_eq!(a.header("pragma"), Some("no-cache"));
        assert_eq!(a.header("expires"), Some("-1"));
    }
    assert_eq!(g.osm.calls(), 0);
}

#[tokio::test]
async fn tms_unknown_layer_and_format() {
    let g = golden_service();
    let a = get(&g.svc, "/tms/1.0.0/inVAlid/EPSG3857/0/0/0.png").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert!(a
        .text()
        .contains("<Message>unknown layer: inVAlid</Message>"));
    let a = get(&g.svc, "/tms/1.0.0/osm/EPSG3857/0/0/0.jpeg").await;
    assert!(a
        .text()
        .contains("invalid format (jpeg). this tile set only supports (png)"));
}

#[tokio::test]
async fn tms_level_offset_and_sw_origin() {
    let g = golden_service();
    let a = get(&g.svc, "/tms/1.0.0/osm/EPSG3857/0/0/0.png").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("image/png"));
    assert_eq!(a.body.len(), 10214);
    get(&g.svc, "/tms/1.0.0/osm/EPSG3857/7/0/0.png").await;
    // observed with MapProxy: /tms/.../0/0/0 fetched 1/0/1 (nw), 7/0/0 fetched 8/0/255
    assert_eq!(g.osm.coords(), vec![(0, 1, 1), (0, 255, 8)]);
    // geodetic: level offset, its own origin is sw
    get(&g.svc, "/tms/1.0.0/geo/EPSG4326/0/1/0.jpeg").await;
    assert_eq!(g.geo.coords(), vec![(1, 0, 1)]);
}

#[tokio::test]
async fn tms_source_error_is_500() {
    let p = FakeProvider::failing(
        ImageFormat::jpeg(),
        TileError::Source {
            message: "No response from URL http://localhost:42423/service".into(),
        },
    );
    let svc = MapProxyService::new(
        ServiceConfig {
            tms: Some(TmsConfig::default()),
            ..ServiceConfig::default()
        },
        vec![layer(
            "wms_cache",
            "c",
            global_mercator(),
            ImageFormat::jpeg(),
            p.clone(),
        )],
    );
    let a = get(&svc, "/tms/1.0.0/wms_cache/0/0/0.jpeg").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(a.text().contains("<Message>No response from URL"));
    assert_eq!(a.header("content-type"), Some("text/xml; charset=utf-8"));
    let a = get(&svc, "/tiles/wms_cache/1/0/0.jpeg").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        a.text(),
        "No response from URL http://localhost:42423/service"
    );
    assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
    assert_eq!(p.calls(), 2);
}

// ---- /tiles (test_tms.py TestTileService) ----

#[tokio::test]
async fn tiles_cache_headers_as_mapproxy() {
    let g = golden_service();
    let a = get(&g.svc, "/tiles/osm/EPSG3857/1/0/0.png").await;
    assert_eq!(a.status, StatusCode::OK);
    // md5("1234567890.010214"), as test_tms.py expects
    let etag = a.header("etag").unwrap_or_default().to_string();
    assert_eq!(etag, "a4b85e1a675022430a0d03778841a25f");
    assert_eq!(etag.len(), 32);
    assert_eq!(
        a.header("last-modified"),
        Some("Fri, 13 Feb 2009 23:31:30 GMT")
    );
    assert_eq!(
        a.header("cache-control"),
        Some("public, max-age=259200, s-maxage=259200")
    );
    assert_eq!(a.header("vary"), None);
    assert_eq!(a.header("access-control-allow-origin"), Some("*"));
    assert_eq!(g.osm.coords(), vec![(0, 0, 1)]);

    // If-None-Match
    let a = get_with(
        &g.svc,
        "/tiles/osm/EPSG3857/1/0/0.png",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
    assert!(a.body.is_empty());
    assert_eq!(a.header("content-type"), None);
    assert_eq!(a.header("etag"), Some(etag.as_str()));
    assert_eq!(
        a.header("last-modified"),
        Some("Fri, 13 Feb 2009 23:31:30 GMT")
    );
    assert_eq!(
        a.header("cache-control"),
        Some("public, max-age=259200, s-maxage=259200")
    );
    let a = get_with(
        &g.svc,
        "/tiles/osm/EPSG3857/1/0/0.png",
        &[("if-none-match", "xyz")],
    )
    .await;
    assert_eq!(a.status, StatusCode::OK);

    // If-Modified-Since: equal or later in the three forms is 304
    for date in [
        "Fri, 13 Feb 2009 23:31:30 GMT",
        "Friday, 13-Feb-09 23:31:30 GMT",
        "Fri Feb 13 23:31:30 2009",
        "Fri, 13 Feb 2009 23:31:31 GMT",
        "Sat, 14 Feb 2009 23:31:30 GMT",
        // Python's parsedate + timegm: no weekday, zone ignored, out-of-range rolls over
        "13 Feb 2009 23:31:30",
        "Fri, 13 Feb 2009 23:31:30 +0100",
        "Fri, 99 Feb 2009 99:99:99 GMT",
    ] {
        let a = get_with(
            &g.svc,
            "/tiles/osm/EPSG3857/1/0/0.png",
            &[("if-modified-since", date)],
        )
        .await;
        assert_eq!(a.status, StatusCode::NOT_MODIFIED, "{date}");
    }
    for date in [
        "Fri, 13 Feb 2009 23:31:29 GMT",
        "foobar",
        "",
        "Fri, 13 Feb 99999 1:1:1 GMT",
        "Fri, 13 Feb 2009 23:31:30:00 GMT",
    ] {
        let a = get_with(
            &g.svc,
            "/tiles/osm/EPSG3857/1/0/0.png",
            &[("if-modified-since", date)],
        )
        .await;
        assert_eq!(a.status, StatusCode::OK, "{date}");
    }
}

#[tokio::test]
async fn tiles_origin_query_and_errors() {
    let g = golden_service();
    get(&g.svc, "/tiles/osm/EPSG3857/1/0/0.png?origin=sw").await;
    get(&g.svc, "/tiles/1.0.0/osm/EPSG3857/1/0/0.png?origin=nw").await;
    get(&g.svc, "/tiles/osm/EPSG3857/1/0/0.png?origin=bogus").await;
    assert_eq!(g.osm.coords(), vec![(0, 1, 1), (0, 0, 1), (0, 0, 1)]);
    let a = get(&g.svc, "/tiles/osm/EPSG3857/0/1/0.png").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(
        a.text(),
        "The requested tile is outside the bounding box of the tile map."
    );
    let a = get(&g.svc, "/tiles").await;
    assert_eq!(a.text(), "invalid request (/tiles)");
    assert_eq!(a.header("cache-control"), Some("no-cache, no-store"));
}

#[tokio::test]
async fn hostile_paths_give_mapproxy_errors() {
    let g = golden_service();
    for (path, status, needle) in [
        (
            "/tiles/osm/EPSG3857/99999999999999999999999/0/0.png",
            404,
            "outside the bounding box",
        ),
        (
            "/tiles/osm/EPSG3857/1/-99999999999999999999999/0.png",
            404,
            "outside the bounding box",
        ),
        (
            "/tms/1.0.0/osm/EPSG3857/9223372036854775807/0/0.png",
            404,
            "outside the bounding box",
        ),
        // bytes that are not UTF-8 are latin-1 characters, as WSGI gives MapProxy its path
        (
            "/tiles/osm/EPSG3857/1/0/0.p%FFng",
            404,
            "invalid format (pÿng)",
        ),
        (
            "/tiles/osm/EPSG3857/1/0/0.png%ff",
            404,
            "invalid format (pngÿ)",
        ),
        ("/tiles/%FF%FE/EPSG3857/1/0/0.png", 404, "unknown layer: ÿþ"),
        (
            "/tms/1.0.0/%3Cx%3E/EPSG3857",
            404,
            "unknown layer: &lt;x&gt;",
        ),
        ("/tiles/osm/EPSG3857/1/0/0", 404, "invalid request"),
        (
            "/tms/1.0.0/osm/EPSG3857/0/0/0",
            404,
            "invalid request (/tms/1.0.0/osm/EPSG3857/0/0/0)",
        ),
    ] {
        let a = get(&g.svc, path).await;
        assert_eq!(a.status.as_u16(), status, "{path}");
        assert!(a.text().contains(needle), "{path}: {}", a.text());
    }
    assert_eq!(g.osm.calls(), 0);
}

// ---- test_tms_origin.py ----

#[tokio::test]
async fn tms_origin_nw_for_tiles() {
    let p = FakeProvider::new(ImageFormat::jpeg());
    let svc = MapProxyService::new(
        ServiceConfig {
            tms: Some(TmsConfig {
                use_grid_names: false,
                origin: Some(Origin::UpperLeft),
            }),
            ..ServiceConfig::default()
        },
        vec![layer(
            "wms_cache",
            "c",
            global_mercator(),
            ImageFormat::jpeg(),
            p.clone(),
        )],
    );
    for path in [
        "/tms/1.0.0/wms_cache/0/0/1.jpeg",
        "/tiles/wms_cache/1/0/0.jpeg",
        "/tiles/wms_cache/1/0/1.jpeg?origin=sw",
    ] {
        let a = get(&svc, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.header("content-type"), Some("image/jpeg"));
    }
    assert_eq!(p.coords(), vec![(0, 1, 1); 3]);
}

// ---- test_response_headers.py ----

#[tokio::test]
async fn vary_on_documents_never_on_images() {
    let g = golden_service();
    for path in [
        "/tms",
        "/tms/1.0.0/",
        "/service?",
        "/tiles/x/0/0/0.png",
        "/nope",
        "/",
    ] {
        let a = get(&g.svc, path).await;
        assert_eq!(a.header("vary"), Some(VARY), "{path}");
    }
    let a = get(&g.svc, "/tms/1.0.0/osm/EPSG3857/0/0/0.png").await;
    assert_eq!(a.header("vary"), None);
}

#[tokio::test]
async fn cors_header_configurable() {
    let mut config = ServiceConfig {
        tms: Some(TmsConfig::default()),
        access_control_allow_origin: Some("https://maps.example".into()),
        ..ServiceConfig::default()
    };
    let svc = MapProxyService::new(config.clone(), vec![]);
    assert_eq!(
        get(&svc, "/tms")
            .await
            .header("access-control-allow-origin"),
        Some("https://maps.example")
    );
    config.access_control_allow_origin = None;
    let svc = MapProxyService::new(config, vec![]);
    assert_eq!(
        get(&svc, "/tms")
            .await
            .header("access-control-allow-origin"),
        None
    );
}

// ---- test_behind_proxy.py (for the tile services) ----

#[tokio::test]
async fn public_urls_behind_proxies() {
    let g = golden_service();
    let href = |a: &Answer| {
        let t = a.text();
        t.split("href=\"")
            .nth(1)
            .and_then(|s| s.split('"').next())
            .map(str::to_string)
    };
    let a = get(&g.svc, "/tms").await;
    assert_eq!(href(&a).as_deref(), Some("http://localhost/tms/1.0.0/"));
    let a = get_with(&g.svc, "/tms", &[("x-script-name", "/foo")]).await;
    assert_eq!(href(&a).as_deref(), Some("http://localhost/foo/tms/1.0.0/"));
    // MapProxy strips a matching prefix from PATH_INFO
    let a = get_with(&g.svc, "/foo/tms", &[("x-script-name", "/foo")]).await;
    assert_eq!(href(&a).as_deref(), Some("http://localhost/foo/tms/1.0.0/"));
    let a = get_with(&g.svc, "/tms", &[("host", "example.org")]).await;
    assert_eq!(href(&a).as_deref(), Some("http://example.org/tms/1.0.0/"));
    // MapProxy's Request.host: the scheme's default port is left out
    let a = get_with(&g.svc, "/tms", &[("host", "example.org:80")]).await;
    assert_eq!(href(&a).as_deref(), Some("http://example.org/tms/1.0.0/"));
    let a = get_with(&g.svc, "/tms", &[("host", "example.org:8080")]).await;
    assert_eq!(
        href(&a).as_deref(),
        Some("http://example.org:8080/tms/1.0.0/")
    );
    let a = get_with(
        &g.svc,
        "/tms",
        &[("x-forwarded-host", "example.org, bar.org")],
    )
    .await;
    assert_eq!(href(&a).as_deref(), Some("http://example.org/tms/1.0.0/"));
    let a = get_with(
        &g.svc,
        "/tms",
        &[
            ("x-forwarded-proto", "https"),
            ("x-script-name", "/foo"),
            ("host", "example.org:443"),
        ],
    )
    .await;
    assert_eq!(
        href(&a).as_deref(),
        Some("https://example.org/foo/tms/1.0.0/")
    );
    // #590: only the first of a list
    let a = get_with(&g.svc, "/tms", &[("x-forwarded-proto", "https, https")]).await;
    assert_eq!(href(&a).as_deref(), Some("https://localhost/tms/1.0.0/"));
    // #1184: extra PATH_INFO segments never reach the documents
    let a = get(&g.svc, "/tms/foo/bar/1.0.0/").await;
    assert!(a
        .text()
        .contains("href=\"http://localhost/tms/1.0.0/osm/EPSG3857\""));
    // what the runtime's proxy_headers filter set
    let mut req = Request::builder().uri("/tms").body(()).expect("req");
    req.extensions_mut().insert(MountPath("/maps".into()));
    req.extensions_mut().insert(PublicUrl {
        scheme: "https".into(),
        host: "public.example".into(),
    });
    let a = answer(g.svc.handle(req).await).await;
    assert_eq!(
        href(&a).as_deref(),
        Some("https://public.example/maps/tms/1.0.0/")
    );
}

// ---- OWS dispatch (service/ows.py) ----

#[tokio::test]
async fn ows_dispatch() {
    let g = golden_service();
    for p in [
        "/service",
        "/service?",
        "/ows?REQUEST=GetCapabilities",
        "/service?SERVICE=",
    ] {
        let a = get(&g.svc, p).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{p}");
        assert!(a.text().contains("exceptionCode=\"MissingParameterValue\""));
        // MapProxy renders this one without the no-cache headers
        assert_eq!(a.header("cache-control"), None);
    }
    let a = get(&g.svc, "/ows?SeRvIcE=foo").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a
        .text()
        .contains("The value of the service parameter &quot;foo&quot; is invalid"));
    assert_eq!(a.header("cache-control"), Some("no-cache, no-store"));
    for p in [
        "/service?service=wms&request=GetCapabilities",
        "/service?REQUEST=GetMap",
        "/service?WMTVER=1.0.0",
        "/wms?SERVICE=WMS",
    ] {
        let a = get(&g.svc, p).await;
        assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR, "{p}");
        assert_eq!(a.header("content-type"), Some("text/xml; charset=utf-8"));
        assert!(a
            .text()
            .contains("<ServiceExceptionReport version=\"1.3.0\""));
        assert!(a.text().contains("no WMS layer is configured"));
    }
    // No WMS, no WMTS KVP: no /service at all; no WMS: /wms is not found.
    let svc = MapProxyService::new(
        ServiceConfig {
            tms: Some(TmsConfig::default()),
            ..ServiceConfig::default()
        },
        vec![],
    );
    for p in ["/service?SERVICE=WMS", "/wms?SERVICE=WMS", "/ows"] {
        let a = get(&svc, p).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(a.text(), "not found");
    }
    let svc = MapProxyService::new(
        ServiceConfig {
            wmts: Some(WmtsConfig::default()),
            ..ServiceConfig::default()
        },
        vec![],
    );
    let a = get(&svc, "/service?SERVICE=WMS").await;
    assert!(a.text().contains("&quot;wms&quot; is invalid"));
    assert_eq!(
        get(&svc, "/wms?SERVICE=WMS").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn welcome_without_demo_and_not_found() {
    let svc = MapProxyService::new(ServiceConfig::default(), vec![]);
    let a = get(&svc, "/").await;
    assert_eq!(a.text(), "<html><body><h1>Welcome to MapProxy 7.0.0</h1>");
    assert_eq!(a.header("content-type"), Some("text/html; charset=utf-8"));
    // no TMS configured: /tms is not found
    let a = get(&svc, "/tms").await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    assert_eq!(a.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[tokio::test]
async fn runs_as_an_app() {
    let g = golden_service();
    let app = Arc::new(g.svc).into_app();
    let req = Request::builder()
        .uri("/tms/1.0.0/osm/EPSG3857/0/0/0.png")
        .body(mapproxy_serve_core::app::empty_body())
        .expect("req");
    let a = answer(app.call(req).await).await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(g.osm.calls(), 1);
}

// ---- test_wmts_restful.py, test_wmts.py (tiles; capabilities are not implemented yet) ----

fn wmts_service(template: Option<&str>, provider: Arc<FakeProvider>) -> MapProxyService {
    let mut wmts = WmtsConfig::default();
    if let Some(t) = template {
        wmts.restful_template = t.into();
    }
    MapProxyService::new(
        ServiceConfig {
            wmts: Some(wmts),
            ..ServiceConfig::default()
        },
        vec![layer(
            "wms_cache",
            "c",
            global_mercator(),
            ImageFormat::jpeg(),
            provider,
        )],
    )
}

#[tokio::test]
async fn wmts_restful_tiles() {
    let p = FakeProvider::new(ImageFormat::jpeg());
    let svc = wmts_service(
        Some("/myrest/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}"),
        p.clone(),
    );
    for path in [
        "/wmts/myrest/wms_cache/GLOBAL_MERCATOR/01/0/0.jpeg",
        "/wmts/myrest/wms_cache/GLOBAL_MERCATOR/1/0/0.jpeg",
    ] {
        let a = get(&svc, path).await;
        assert_eq!(a.status, StatusCode::OK, "{path}");
        assert_eq!(a.header("content-type"), Some("image/jpeg"));
        assert_eq!(a.header("vary"), None);
        assert_eq!(
            a.header("cache-control"),
            Some("public, max-age=259200, s-maxage=259200")
        );
    }
    // WMTS rows count from the top; GLOBAL_MERCATOR counts from the bottom
    assert_eq!(p.coords(), vec![(0, 1, 1), (0, 1, 1)]);
    let a = get(&svc, "/wmts/myrest/wms_cache/GLOBAL_MERCATOR/01/-1/0.jpeg").await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    assert!(a.text().contains("exceptionCode=\"TileOutOfRange\""));
    assert_eq!(a.header("content-type"), Some("text/xml"));
    assert_eq!(a.header("vary"), Some(VARY));
    for (path, needle) in [
        (
            "/wmts/myrest/wms_cache/GLOBAL_MERCATOR/01/0/0.png",
            "invalid format",
        ),
        (
            "/wmts/myrest/nope/GLOBAL_MERCATOR/01/0/0.jpeg",
            "unknown layer: nope",
        ),
        (
            "/wmts/myrest/wms_cache/nope/01/0/0.jpeg",
            "unknown tilematrixset: nope",
        ),
    ] {
        let a = get(&svc, path).await;
        assert_eq!(a.status, StatusCode::BAD_REQUEST, "{path}");
        assert!(a.text().contains("exceptionCode=\"InvalidParameterValue\""));
        assert!(a.text().contains(needle), "{path}");
    }
    // the default template does not match any more
    let a = get(&svc, "/wmts/wms_cache/GLOBAL_MERCATOR/01/0/0.jpeg").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        a.text(),
        "internal error: invalid request (/wmts/wms_cache/GLOBAL_MERCATOR/01/0/0.jpeg)"
    );
    let a = get(&svc, "/wmts/1.0.0/WMTSCapabilities.xml").await;
    assert_eq!(a.status, StatusCode::OK);
    assert!(a.text().contains(
        "template=\"http://localhost/wmts/myrest/wms_cache/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.jpeg\""
    ));
    assert_eq!(p.calls(), 2);
}

#[tokio::test]
async fn wmts_source_error_and_conditional() {
    let p = FakeProvider::failing(
        ImageFormat::jpeg(),
        TileError::Source {
            message: "HTTP Error (see logs for URL and reason).".into(),
        },
    );
    let svc = wmts_service(None, p);
    let a = get(&svc, "/wmts/wms_cache/GLOBAL_MERCATOR/01/0/0.jpeg").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(a.text().contains("exceptionCode=\"NoApplicableCode\""));
    assert!(a
        .text()
        .contains("HTTP Error (see logs for URL and reason)."));

    let p = FakeProvider::new(ImageFormat::jpeg());
    let svc = wmts_service(None, p);
    let a = get(&svc, "/wmts/wms_cache/GLOBAL_MERCATOR/01/0/0.jpeg").await;
    let etag = a.header("etag").unwrap_or_default().to_string();
    let a = get_with(
        &svc,
        "/wmts/wms_cache/GLOBAL_MERCATOR/01/0/0.jpeg",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(a.status, StatusCode::NOT_MODIFIED);
}

#[tokio::test]
async fn wmts_kvp_tiles() {
    let p = FakeProvider::new(ImageFormat::jpeg());
    let svc = wmts_service(None, p.clone());
    let q = "SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=wms_cache&STYLE=default\
             &TILEMATRIXSET=GLOBAL_MERCATOR&TILEMATRIX=01&TILEROW=0&TILECOL=0&FORMAT=image%2Fjpeg";
    for base in ["/service?", "/ows?"] {
        let a = get(&svc, &format!("{base}{q}")).await;
        assert_eq!(a.status, StatusCode::OK, "{base}");
        assert_eq!(a.header("content-type"), Some("image/jpeg"));
    }
    let a = get(&svc, &format!("/service?{}", q.to_lowercase())).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST); // parameter names are not case-sensitive, values are: global_mercator is unknown
    let lower = q
        .replace("LAYER=wms_cache", "layer=wms_cache")
        .replace("TILEROW", "tileRow");
    assert_eq!(
        get(&svc, &format!("/service?{lower}")).await.status,
        StatusCode::OK
    );
    assert_eq!(p.coords(), vec![(0, 1, 1); 3]);

    for (bad, status, needle) in [
        ("TILECOL=0", "TILECOL=abc", 400, "must be integers"),
        (
            "TILECOL=0",
            "TILECOL=99999999999999999999999",
            400,
            "TileOutOfRange",
        ),
        ("TILEMATRIX=01", "TILEMATRIX=-1", 400, "TileOutOfRange"),
        (
            "FORMAT=image%2Fjpeg",
            "FORMAT=image%2Fpng",
            400,
            "invalid format (png)",
        ),
        (
            "STYLE=default",
            "STYLE=default&STYLES=x",
            500,
            "StyleNotDefined",
        ),
        // repeated: the values joined, as MapProxy's RequestParams (a repeated TILEMATRIX
        // or TILECOL is MapProxy's internal error, int("1,1"); ours the integer error)
        (
            "LAYER=wms_cache",
            "LAYER=wms_cache&LAYER=wms_cache",
            400,
            "unknown layer: wms_cache,wms_cache",
        ),
        (
            "TILEMATRIXSET=GLOBAL_MERCATOR",
            "TILEMATRIXSET=GLOBAL_MERCATOR&TILEMATRIXSET=GLOBAL_MERCATOR",
            400,
            "unknown tilematrixset: GLOBAL_MERCATOR,GLOBAL_MERCATOR",
        ),
        (
            "STYLE=default",
            "STYLE=default&STYLES=&STYLES=x",
            500,
            "unsupported styles: ,x",
        ),
        (
            "TILEMATRIX=01",
            "TILEMATRIX=01&TILEMATRIX=01",
            400,
            "must be integers",
        ),
    ]
    .map(|(a, b, s, n)| ((a, b), s, n))
    {
        let a = get(&svc, &format!("/service?{}", q.replace(bad.0, bad.1))).await;
        assert_eq!(a.status.as_u16(), status, "{}", bad.1);
        assert!(a.text().contains(needle), "{}: {}", bad.1, a.text());
    }
    let a = get(&svc, "/ows?SERVICE=WMTS&REQUEST=GetCapabilities").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.header("content-type"), Some("application/xml"));
    assert!(a
        .text()
        .contains("<ows:Get xlink:href=\"http://localhost/ows?\">"));
    // GetFeatureInfo's own parameters missing: MapProxy's 500 NoApplicableCode
    let a = get(&svc, "/service?SERVICE=WMTS&REQUEST=GetFeatureInfo").await;
    assert_eq!(a.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(a
        .text()
        .contains("&#x27;infoformat&#x27;, &#x27;i&#x27;, &#x27;j&#x27;]"));
    assert_eq!(p.calls(), 3);
}

// ---- test_kml.py ----

#[tokio::test]
async fn kml_documents_and_tiles() {
    let p = FakeProvider::new(ImageFormat::jpeg());
    let svc = MapProxyService::new(
        ServiceConfig {
            kml: Some(KmlConfig::default()),
            ..ServiceConfig::default()
        },
        vec![layer(
            "wms_cache",
            "c",
            global_mercator(),
            ImageFormat::jpeg(),
            p.clone(),
        )],
    );
    let a = get(&svc, "/kml/wms_cache/0/0/0.kml").await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(
        a.header("content-type"),
        Some("application/vnd.google-earth.kml+xml")
    );
    assert_eq!(a.header("vary"), Some(VARY));
    assert!(a
        .text()
        .contains("<href>http://localhost/kml/wms_cache/EPSG900913/1/0/1.kml</href>"));
    // the init request (no grid segment) is the level 0 document
    let init = get(&svc, "/kml/wms_cache").await;
    assert_eq!(init.body, a.body);
    let etag = a.header("etag").unwrap_or_default().to_string();
    assert_eq!(etag.len(), 32);
    let b = get_with(
        &svc,
        "/kml/wms_cache/0/0/0.kml",
        &[("if-none-match", &etag)],
    )
    .await;
    assert_eq!(b.status, StatusCode::NOT_MODIFIED);
    assert!(b.body.is_empty());
    // tiles: sw origin, no level offset
    let t = get(&svc, "/kml/wms_cache/EPSG900913/1/0/1.jpeg").await;
    assert_eq!(t.status, StatusCode::OK);
    assert_eq!(t.header("content-type"), Some("image/jpeg"));
    assert_eq!(p.coords(), vec![(0, 1, 1)]);
    let u = get(&svc, "/kml/unknown/EPSG900913/0/0/0.kml").await;
    assert_eq!(u.status, StatusCode::NOT_FOUND);
    assert_eq!(u.text(), "unknown layer: unknown");
    assert_eq!(u.header("content-type"), Some("text/plain; charset=utf-8"));
    for (path, status) in [
        ("/kml/wms_cache/99999999999999999999/0/0.kml", 404),
        ("/kml/wms_cache/-1/0/0.kml", 404),
        ("/kml/wms_cache/1/2/0.kml", 404),
        // the last level: a document without sub tiles (MapProxy 7.0.0 answers 500
        // `internal error` there: its limit_tile indexes past the last level)
        ("/kml/wms_cache/19/0/0.kml", 200),
    ] {
        let r = get(&svc, path).await;
        assert_eq!(r.status.as_u16(), status, "{path}");
    }
    assert!(!get(&svc, "/kml/wms_cache/19/0/0.kml")
        .await
        .text()
        .contains("<NetworkLink>"));

    let failing = FakeProvider::failing(
        ImageFormat::jpeg(),
        TileError::Source {
            message: "No response from URL http://localhost:42423/service".into(),
        },
    );
    let svc = MapProxyService::new(
        ServiceConfig {
            kml: Some(KmlConfig::default()),
            ..ServiceConfig::default()
        },
        vec![layer(
            "wms_cache",
            "c",
            global_mercator(),
            ImageFormat::jpeg(),
            failing,
        )],
    );
    let e = get(&svc, "/kml/wms_cache/0/0/0.jpeg").await;
    assert_eq!(e.status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(e.text().starts_with("No response from URL"));
}

#[tokio::test]
async fn use_grid_names_per_service() {
    let p = FakeProvider::new(ImageFormat::png());
    let svc = MapProxyService::new(
        ServiceConfig {
            tms: Some(TmsConfig {
                use_grid_names: true,
                origin: None,
            }),
            kml: Some(KmlConfig::default()),
            ..ServiceConfig::default()
        },
        vec![layer(
            "osm",
            "o",
            global_webmercator(),
            ImageFormat::png(),
            p.clone(),
        )],
    );
    let caps = get(&svc, "/tms/1.0.0/").await;
    assert!(caps
        .text()
        .contains("href=\"http://localhost/tms/1.0.0/osm/GLOBAL_WEBMERCATOR\""));
    assert_eq!(
        get(&svc, "/tms/1.0.0/osm/GLOBAL_WEBMERCATOR/0/0/0.png")
            .await
            .status,
        StatusCode::OK
    );
    // with use_grid_names the pair must match exactly: no EPSG keys, no fallbacks
    for path in [
        "/tms/1.0.0/osm/EPSG3857/0/0/0.png",
        "/tms/1.0.0/osm/0/0/0.png",
    ] {
        let a = get(&svc, path).await;
        assert_eq!(a.status, StatusCode::NOT_FOUND, "{path}");
        assert!(a.text().contains("unknown layer: osm"));
    }
    assert_eq!(
        get(&svc, "/tiles/osm/GLOBAL_WEBMERCATOR/1/0/0.png")
            .await
            .status,
        StatusCode::OK
    );
    // KML keeps its own setting (EPSG codes)
    let k = get(&svc, "/kml/osm/EPSG3857/0/0/0.kml").await;
    assert_eq!(k.status, StatusCode::OK);
    assert!(k.text().contains("/kml/osm/EPSG3857/1/0/1.kml"));
    assert_eq!(p.calls(), 2);
}

/// Metadata is printed as written, as MapProxy's plain tempita templates print it (and as the
/// WMS documents do): a YAML that MapProxy serves, including one that escapes its own `&` as
/// `&amp;` to keep MapProxy's XML well-formed, gives the same document here.
#[tokio::test]
async fn metadata_is_printed_as_written() {
    let svc = MapProxyService::new(
        ServiceConfig {
            tms: Some(TmsConfig::default()),
            wmts: Some(WmtsConfig::default()),
            md: ServiceMd {
                title: "Maps &amp; <b>Tiles</b>".into(),
                ..ServiceMd::default()
            },
            ..ServiceConfig::default()
        },
        vec![],
    );
    for path in ["/tms", "/tms/1.0.0/", "/wmts/1.0.0/WMTSCapabilities.xml"] {
        let a = get(&svc, path).await;
        assert!(a.text().contains("Maps &amp; <b>Tiles</b>"), "{path}");
    }
}
