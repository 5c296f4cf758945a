//! MapProxy's authorization callback (`test/system/test_auth.py`: TMS, KML, WMTS and demo
//! cases, without `limited_to`) against `service::MapProxyService` with an in-memory tile
//! provider and the layers of MapProxy's `auth.yaml` fixture.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::future::BoxFuture;
use http::{Request, Response};
use http_body_util::BodyExt;
use mapproxy_serve_core::app::Body;
use mapproxy_serve_mapproxy::authorize::{
    AuthRequest, Authorized, Authorizer, LayerAccess, Partial,
};
use mapproxy_serve_mapproxy::grid::{global_mercator, TileCoord};
use mapproxy_serve_mapproxy::image::ImageFormat;
use mapproxy_serve_mapproxy::multiapp::InstanceName;
use mapproxy_serve_mapproxy::service::demo::{DemoInput, DemoServices, DemoTileLayer};
use mapproxy_serve_mapproxy::service::{
    KmlConfig, MapProxyService, ServiceConfig, TileLayer, TmsConfig, WmtsConfig,
};
use mapproxy_serve_mapproxy::tile::{TileData, TileError, TileProvider};

struct FakeProvider {
    format: ImageFormat,
    calls: AtomicUsize,
}

impl TileProvider for FakeProvider {
    fn tile(&self, _coord: TileCoord) -> BoxFuture<'_, Result<TileData, TileError>> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let data = TileData {
            data: Bytes::from(vec![7u8; 2000]),
            format: self.format.clone(),
            mtime: None,
            drawn: None,
        };
        Box::pin(async move { Ok(data) })
    }
}

/// The tile layers of MapProxy's `auth.yaml`: six layers in GLOBAL_MERCATOR, `layer3` JPEG.
const LAYERS: [(&str, &str); 6] = [
    ("layer1a", "layer 1a"),
    ("layer1b", "layer 1b"),
    ("layer1", "layer 1"),
    ("layer2a", "layer 2a"),
    ("layer2b1", "layer 2b1"),
    ("layer3", "layer 3"),
];

struct Fixture {
    svc: MapProxyService,
    provider: Arc<FakeProvider>,
}

fn fixture() -> Fixture {
    let provider = Arc::new(FakeProvider {
        format: ImageFormat::png(),
        calls: AtomicUsize::new(0),
    });
    let grid = Arc::new(global_mercator());
    let mut layers = Vec::new();
    let mut demo_layers = Vec::new();
    for (name, title) in LAYERS {
        let format = if name == "layer3" {
            ImageFormat::jpeg()
        } else {
            ImageFormat::png()
        };
        demo_layers.push(DemoTileLayer {
            name: name.into(),
            tms_grid: "EPSG900913".into(),
            matrix_set: "GLOBAL_MERCATOR".into(),
            format: format.ext().to_string(),
            grid: grid.clone(),
            extent: None,
        });
        layers.push(TileLayer::new(
            name,
            title,
            "GLOBAL_MERCATOR",
            grid.clone(),
            format,
            provider.clone(),
        ));
    }
    let config = ServiceConfig {
        demo: true,
        tms: Some(TmsConfig::default()),
        kml: Some(KmlConfig::default()),
        wmts: Some(WmtsConfig::default()),
        ..ServiceConfig::default()
    };
    let demo = DemoInput {
        services: DemoServices {
            tms: true,
            wmts_restful: true,
            wmts_kvp: true,
            ..DemoServices::default()
        },
        tile_layers: demo_layers,
        ..DemoInput::default()
    };
    Fixture {
        svc: MapProxyService::new(config, layers).with_demo(demo),
        provider,
    }
}

/// What the authorizer was asked.
#[derive(Debug, Clone)]
struct Asked {
    service: String,
    layers: Vec<String>,
    path_info: String,
    extent: Option<(String, [f64; 4])>,
    instance: Option<String>,
}

/// An authorizer answering `answer` and recording every question.
fn recording(answer: Authorized) -> (Authorizer, Arc<Mutex<Vec<Asked>>>) {
    let log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    let auth = Authorizer::new(move |r: &AuthRequest<'_>| {
        if let Ok(mut l) = l.lock() {
            l.push(Asked {
                service: r.service.to_string(),
                layers: r.layers.iter().map(|s| s.to_string()).collect(),
                path_info: r.path_info().to_string(),
                extent: r.query_extent.map(|e| (e.srs.clone(), e.bbox)),
                instance: r.instance().map(str::to_string),
            });
        }
        answer.clone()
    });
    (auth, log)
}

struct Answer {
    status: u16,
    content_type: String,
    cache_control: String,
    body: String,
    asked: Vec<Asked>,
}

async fn get_as(svc: &MapProxyService, uri: &str, answer: Authorized) -> Answer {
    get_with(svc, uri, answer, None).await
}

async fn get_with(
    svc: &MapProxyService,
    uri: &str,
    answer: Authorized,
    instance: Option<&str>,
) -> Answer {
    let (auth, log) = recording(answer);
    let mut req = Request::builder()
        .uri(uri)
        .header("host", "localhost")
        .body(mapproxy_serve_core::app::empty_body())
        .unwrap();
    req.extensions_mut().insert(auth);
    if let Some(i) = instance {
        req.extensions_mut().insert(InstanceName(i.into()));
    }
    let res = svc.handle(req).await;
    let asked = log.lock().map(|l| l.clone()).unwrap_or_default();
    answer_of(res, asked).await
}

async fn answer_of(res: Response<Body>, asked: Vec<Asked>) -> Answer {
    let h = |n: &str| {
        res.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    let (status, content_type, cache_control) =
        (res.status().as_u16(), h("content-type"), h("cache-control"));
    let body = res.into_body().collect().await.unwrap().to_bytes();
    Answer {
        status,
        content_type,
        cache_control,
        body: String::from_utf8_lossy(&body).into_owned(),
        asked,
    }
}

/// `attr="..."` values in document order.
fn attrs(doc: &str, before: &str) -> Vec<String> {
    doc.split(before)
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(str::to_string)
        .collect()
}

fn all_names() -> Vec<String> {
    LAYERS.iter().map(|(n, _)| n.to_string()).collect()
}

fn partial_1a_2b1() -> Authorized {
    Authorized::Partial(
        Partial::new()
            .layer("layer1a", LayerAccess::tile())
            .layer("layer1b", LayerAccess::default())
            .layer("layer2", LayerAccess::tile())
            .layer("layer2b", LayerAccess::tile())
            .layer("layer2b1", LayerAccess::tile()),
    )
}

fn assert_denied(a: &Answer, status: u16) {
    let msg = if status == 401 {
        "unauthorized"
    } else {
        "forbidden"
    };
    assert_eq!(
        (a.status, a.body.as_str(), a.content_type.as_str()),
        (status, msg, "text/plain")
    );
    assert_eq!(a.cache_control, "no-cache, no-store");
}

const MERC: f64 = 20037508.342789244;

fn assert_extent(a: &Asked, bbox: [f64; 4]) {
    let (srs, b) = a
        .extent
        .clone()
        .unwrap_or_else(|| panic!("no extent: {a:?}"));
    assert_eq!(srs, "EPSG:900913");
    for (x, y) in b.iter().zip(bbox) {
        assert!((x - y).abs() < 1e-6, "{b:?} != {bbox:?}");
    }
}

// --- TMS ---------------------------------------------------------------------------------

#[tokio::test]
async fn tms_capabilities_authorize_all() {
    let f = fixture();
    let a = get_as(&f.svc, "/tms/1.0.0", Authorized::Full).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.asked.len(), 1);
    let q = &a.asked[0];
    assert_eq!(
        (q.service.as_str(), q.path_info.as_str()),
        ("tms", "/tms/1.0.0")
    );
    assert_eq!(q.layers, all_names());
    assert_eq!(q.extent, None);
    let titles: Vec<&str> = LAYERS.iter().map(|(_, t)| *t).collect();
    assert_eq!(attrs(&a.body, "<TileMap title=\""), titles);
}

#[tokio::test]
async fn tms_capabilities_authorize_none_and_unauthenticated() {
    let f = fixture();
    let a = get_as(&f.svc, "/tms/1.0.0", Authorized::None).await;
    assert_denied(&a, 403);
    assert_eq!(a.asked[0].layers.len(), 6);
    let a = get_as(&f.svc, "/tms/1.0.0/", Authorized::Unauthenticated).await;
    assert_denied(&a, 401);
}

#[tokio::test]
async fn tms_capabilities_authorize_partial() {
    let f = fixture();
    let a = get_as(&f.svc, "/tms/1.0.0", partial_1a_2b1()).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        attrs(&a.body, "<TileMap title=\""),
        ["layer 1a", "layer 2b1"]
    );
}

#[tokio::test]
async fn tms_layer_capabilities() {
    let f = fixture();
    let a = get_as(&f.svc, "/tms/1.0.0/layer1", Authorized::None).await;
    assert_denied(&a, 403);
    assert_eq!(a.asked[0].layers, ["layer1"]);
    assert_eq!(a.asked[0].extent, None);
    let a = get_as(&f.svc, "/tms/1.0.0/layer1", Authorized::Full).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("<Title>layer 1</Title>"), "{}", a.body);
    let a = get_as(
        &f.svc,
        "/tms/1.0.0/layer1",
        Authorized::Partial(Partial::tiles(["layer1"])),
    )
    .await;
    assert_eq!(a.status, 200);
    let deny = Partial::new().layer("layer1", LayerAccess::default());
    let a = get_as(&f.svc, "/tms/1.0.0/layer1", Authorized::Partial(deny)).await;
    assert_denied(&a, 403);
    let a = get_as(&f.svc, "/tms/1.0.0/layer1", Authorized::Unauthenticated).await;
    assert_denied(&a, 401);
}

#[tokio::test]
async fn tms_get_tile() {
    let f = fixture();
    let a = get_as(
        &f.svc,
        "/tms/1.0.0/layer1_EPSG900913/0/0/0.png",
        Authorized::Partial(Partial::tiles(["layer1"])),
    )
    .await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert_eq!(f.provider.calls.load(Ordering::SeqCst), 1);
    let q = &a.asked[0];
    assert_eq!(
        (q.service.as_str(), q.path_info.as_str()),
        ("tms", "/tms/1.0.0/layer1_EPSG900913/0/0/0.png")
    );
    assert_eq!(q.layers, ["layer1"]);
    assert_extent(q, [-MERC, -MERC, 0.0, 0.0]);
}

#[tokio::test]
async fn tms_get_tile_authorize_none() {
    let f = fixture();
    let a = get_as(&f.svc, "/tms/1.0.0/layer1/0/0/0.png", Authorized::None).await;
    assert_denied(&a, 403);
    assert_eq!(a.asked[0].layers, ["layer1"]);
    // `/tiles` asks as `tms` too; a layer the answer does not name is denied
    let a = get_as(
        &f.svc,
        "/tiles/layer1/0/0/0.png",
        Authorized::Partial(Partial::tiles(["layer2"])),
    )
    .await;
    assert_denied(&a, 403);
    assert_eq!(a.asked[0].service, "tms");
    let a = get_as(
        &f.svc,
        "/tiles/layer1/0/0/0.png",
        Authorized::Unauthenticated,
    )
    .await;
    assert_denied(&a, 401);
    assert_eq!(f.provider.calls.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn tms_order_of_checks_is_mapproxys() {
    let f = fixture();
    // an unknown layer and a tile outside the grid are answered before asking
    let a = get_as(&f.svc, "/tms/1.0.0/nope/0/0/0.png", Authorized::None).await;
    assert_eq!((a.status, a.asked.len()), (404, 0));
    let a = get_as(&f.svc, "/tms/1.0.0/layer1/0/5/0.png", Authorized::None).await;
    assert_eq!((a.status, a.asked.len()), (404, 0));
    assert!(a.body.contains("outside the bounding box"), "{}", a.body);
    // a wrong format after it
    let a = get_as(&f.svc, "/tms/1.0.0/layer1/0/0/0.jpeg", Authorized::None).await;
    assert_denied(&a, 403);
    // the TMS root is not authorized
    let a = get_as(&f.svc, "/tms", Authorized::None).await;
    assert_eq!((a.status, a.asked.len()), (200, 0));
}

#[tokio::test]
async fn no_authorizer_allows_everything() {
    let f = fixture();
    for uri in [
        "/tms/1.0.0/",
        "/tms/1.0.0/layer1/0/0/0.png",
        "/kml/layer1/0/0/0.kml",
        "/wmts/1.0.0/WMTSCapabilities.xml",
        "/demo/",
    ] {
        let req = Request::builder()
            .uri(uri)
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap();
        let a = answer_of(f.svc.handle(req).await, Vec::new()).await;
        assert_eq!(a.status, 200, "{uri}: {}", a.body);
    }
}

#[tokio::test]
async fn multimapproxy_instance_name() {
    let f = fixture();
    let a = get_with(&f.svc, "/tms/1.0.0", Authorized::Full, Some("proj")).await;
    assert_eq!(a.asked[0].instance.as_deref(), Some("proj"));
    let a = get_as(&f.svc, "/tms/1.0.0", Authorized::Full).await;
    assert_eq!(a.asked[0].instance, None);
}

// --- KML ---------------------------------------------------------------------------------

#[tokio::test]
async fn kml_superoverlay() {
    let f = fixture();
    let a = get_as(&f.svc, "/kml/layer1/0/0/0.kml", Authorized::Full).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("<name>layer1</name>"), "{}", a.body);
    let q = &a.asked[0];
    assert_eq!(
        (q.service.as_str(), q.path_info.as_str()),
        ("kml", "/kml/layer1/0/0/0.kml")
    );
    assert_eq!(q.layers, ["layer1"]);
    assert_extent(q, [-MERC, -MERC, MERC, MERC]);

    let a = get_as(&f.svc, "/kml/layer1/0/0/0.kml", Authorized::None).await;
    assert_denied(&a, 403);
    let a = get_as(&f.svc, "/kml/layer1/0/0/0.kml", Authorized::Unauthenticated).await;
    assert_denied(&a, 401);
    let ok = Authorized::Partial(Partial::tiles(["layer1"]));
    let a = get_as(&f.svc, "/kml/layer1/0/0/0.kml", ok).await;
    assert_eq!(a.status, 200);
    let deny = Partial::new().layer("layer1", LayerAccess::default());
    let a = get_as(&f.svc, "/kml/layer1/0/0/0.kml", Authorized::Partial(deny)).await;
    assert_denied(&a, 403);
    // the initial document (`/kml/<layer>`) too
    let a = get_as(&f.svc, "/kml/layer1", Authorized::None).await;
    assert_denied(&a, 403);
}

#[tokio::test]
async fn kml_tile() {
    let f = fixture();
    let ok = Authorized::Partial(Partial::tiles(["layer3"]));
    let a = get_as(&f.svc, "/kml/layer3_EPSG900913/1/0/0.jpeg", ok).await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/jpeg"));
    assert_eq!(a.asked[0].service, "kml");
    assert_extent(&a.asked[0], [-MERC, -MERC, 0.0, 0.0]);
    let a = get_as(
        &f.svc,
        "/kml/layer3_EPSG900913/1/0/0.jpeg",
        Authorized::None,
    )
    .await;
    assert_denied(&a, 403);
    assert_eq!(f.provider.calls.load(Ordering::SeqCst), 1);
}

// --- WMTS --------------------------------------------------------------------------------

const WMTS_CAPS: &str = "/wmts/1.0.0/WMTSCapabilities.xml";

fn wmts_titles(doc: &str) -> Vec<String> {
    doc.split("<Layer>\n      <ows:Title>")
        .skip(1)
        .filter_map(|s| s.split('<').next())
        .map(str::to_string)
        .collect()
}

#[tokio::test]
async fn wmts_capabilities() {
    let f = fixture();
    let a = get_as(&f.svc, WMTS_CAPS, Authorized::Full).await;
    assert_eq!(a.status, 200);
    let q = &a.asked[0];
    assert_eq!(
        (q.service.as_str(), q.path_info.as_str()),
        ("wmts", WMTS_CAPS)
    );
    assert_eq!(q.layers, all_names());
    assert_eq!(wmts_titles(&a.body).len(), 6);

    assert_denied(&get_as(&f.svc, WMTS_CAPS, Authorized::None).await, 403);
    assert_denied(
        &get_as(&f.svc, WMTS_CAPS, Authorized::Unauthenticated).await,
        401,
    );

    let a = get_as(&f.svc, WMTS_CAPS, partial_1a_2b1()).await;
    assert_eq!(wmts_titles(&a.body), ["layer 1a", "layer 2b1"]);
    // the matrix sets stay
    assert!(a
        .body
        .contains("<ows:Identifier>GLOBAL_MERCATOR</ows:Identifier>"));

    // KVP: the same question and listing
    let a = get_as(
        &f.svc,
        "/service?service=WMTS&request=GetCapabilities",
        partial_1a_2b1(),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.asked[0].service, "wmts");
    assert_eq!(wmts_titles(&a.body), ["layer 1a", "layer 2b1"]);
}

#[tokio::test]
async fn wmts_get_tile() {
    let f = fixture();
    let ok = Authorized::Partial(Partial::tiles(["layer1"]));
    let a = get_as(
        &f.svc,
        "/wmts/layer1/GLOBAL_MERCATOR/00/0/0.png",
        ok.clone(),
    )
    .await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    let q = &a.asked[0];
    assert_eq!(
        (q.service.as_str(), q.layers.as_slice()),
        ("wmts", &["layer1".to_string()][..])
    );
    assert_extent(q, [-MERC, -MERC, MERC, MERC]);

    let a = get_as(
        &f.svc,
        "/wmts/layer3/GLOBAL_MERCATOR/01/0/0.jpeg",
        Authorized::Partial(Partial::tiles(["layer3"])),
    )
    .await;
    assert_eq!(a.status, 200);
    assert_extent(&a.asked[0], [-MERC, 0.0, 0.0, MERC]);

    let kvp = "/service?service=WMTS&version=1.0.0&layer=layer1&request=GetTile&style=&tilematrixset=GLOBAL_MERCATOR&tilematrix=00&tilerow=0&tilecol=0&format=image/png";
    let a = get_as(&f.svc, kvp, ok).await;
    assert_eq!((a.status, a.content_type.as_str()), (200, "image/png"));
    assert_eq!(a.asked[0].path_info, "/service");

    let a = get_as(
        &f.svc,
        "/wmts/layer1/GLOBAL_MERCATOR/00/0/0.png",
        Authorized::None,
    )
    .await;
    assert_denied(&a, 403);
    let deny = Partial::new().layer("layer1", LayerAccess::default());
    assert_denied(&get_as(&f.svc, kvp, Authorized::Partial(deny)).await, 403);
    assert_denied(&get_as(&f.svc, kvp, Authorized::Unauthenticated).await, 401);
    assert_eq!(f.provider.calls.load(Ordering::SeqCst), 3);
}

// --- demo --------------------------------------------------------------------------------

#[tokio::test]
async fn demo() {
    let f = fixture();
    let a = get_as(&f.svc, "/demo/", Authorized::Full).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.asked[0].service, "demo");
    assert_eq!(a.asked[0].layers, all_names());
    assert!(a.body.contains("tms_layer=layer1b&"), "{}", a.body);

    // MapProxy's demo answers its 403 itself: no no-cache headers
    let a = get_as(&f.svc, "/demo/", Authorized::None).await;
    assert_eq!((a.status, a.body.as_str()), (403, "forbidden"));
    assert_eq!(a.cache_control, "");
    assert_denied(
        &get_as(&f.svc, "/demo/", Authorized::Unauthenticated).await,
        401,
    );
    assert_eq!(get_as(&f.svc, "/demo", Authorized::None).await.status, 403);

    // partial (MapProxy: 403): only the allowed layers, and no viewer for the others
    let a = get_as(&f.svc, "/demo/", partial_1a_2b1()).await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("tms_layer=layer1a&"), "{}", a.body);
    assert!(a.body.contains("tms_layer=layer2b1&"), "{}", a.body);
    assert!(!a.body.contains("tms_layer=layer1b&"), "{}", a.body);
    assert!(!a.body.contains("tms_layer=layer3&"), "{}", a.body);
    let viewer = "/demo/?tms_layer=layer1b&format=png&srs=EPSG%3A900913";
    assert_eq!(get_as(&f.svc, viewer, partial_1a_2b1()).await.status, 404);
    assert_eq!(get_as(&f.svc, viewer, Authorized::Full).await.status, 200);

    // the static files are not authorized
    let a = get_as(&f.svc, "/demo/static/site.css", Authorized::None).await;
    assert_eq!(a.asked.len(), 0);
    assert_ne!(a.status, 403);
}
