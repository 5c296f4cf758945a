//! The `/demo/` service's pages and static files, as MapProxy 7's `test_demo.py` checks them
//! (plus the viewer's URLs, compared with what MapProxy 7.0.0 printed for the same grids).

use std::sync::Arc;

use http::{HeaderMap, HeaderValue, StatusCode};
use http_body_util::BodyExt;
use mapproxy_serve_mapproxy::grid::{global_geodetic, global_webmercator};
use mapproxy_serve_mapproxy::service::demo::{
    capabilities_target, handle, handle_with_headers, DemoInput, DemoServices, DemoTileLayer,
    DemoWmsLayer,
};

fn tile(name: &str, format: &str, geodetic: bool) -> DemoTileLayer {
    let (grid, gname) = if geodetic {
        (global_geodetic(), "GLOBAL_GEODETIC")
    } else {
        (global_webmercator(), "GLOBAL_WEBMERCATOR")
    };
    DemoTileLayer {
        name: name.to_string(),
        tms_grid: gname.to_string(),
        matrix_set: gname.to_string(),
        format: format.to_string(),
        grid: Arc::new(grid),
        extent: None,
    }
}

fn input() -> DemoInput {
    let wms = |name: &str| DemoWmsLayer {
        name: name.to_string(),
        native_srs: vec!["EPSG:4326".into(), "EPSG:3857".into()],
        extents: vec![(
            "EPSG:4326".into(),
            [-180, -90, 180, 90].map(mapproxy_serve_mapproxy::grid::Num::Int),
        )],
    };
    DemoInput {
        services: DemoServices {
            ogcapi: false,
            wms: true,
            wms_111: true,
            wmts_kvp: true,
            wmts_restful: true,
            tms: true,
        },
        // unsorted on purpose: the index sorts layers by name
        wms_layers: vec![wms("b-layer"), wms("a-layer")],
        wms_srs: vec!["CRS:84".into(), "EPSG:900913".into(), "EPSG:4258".into()],
        wms_formats: vec!["image/png".into(), "image/jpeg".into(), "image/gif".into()],
        // unsorted on purpose: the index sorts tile layers by name
        tile_layers: vec![
            tile("osm", "png", false),
            tile("geo", "jpeg", true),
            tile("geo", "jpeg", false),
        ],
        ..DemoInput::default()
    }
}

fn body(res: http::Response<mapproxy_serve_core::app::Body>) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let bytes = rt
        .block_on(res.into_body().collect())
        .expect("body")
        .to_bytes();
    String::from_utf8_lossy(&bytes).into_owned()
}

fn ctype(res: &http::Response<mapproxy_serve_core::app::Body>) -> &str {
    res.headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[test]
fn redirect_to_slash() {
    let res = handle("/demo", "http://host:8080/mp/", &input());
    assert_eq!(res.status(), StatusCode::MOVED_PERMANENTLY);
    assert_eq!(res.headers()["location"], "http://host:8080/mp/demo/");
    let res = handle("/demo/other", "http://host", &input());
    assert_eq!(res.headers()["location"], "http://host/demo/");
}

#[test]
fn index_as_mapproxy() {
    let res = handle("/demo/", "http://host", &input());
    assert_eq!(res.status(), StatusCode::OK);
    // MapProxy's content_type='text/html': no charset; Vary as its every text answer
    assert_eq!(ctype(&res), "text/html");
    assert_eq!(
        res.headers().get("vary").and_then(|v| v.to_str().ok()),
        Some("X-Script-Name, X-Forwarded-Host, X-Forwarded-Proto")
    );
    let page = body(res);
    for link in [
        "href=\"../service?REQUEST=GetCapabilities&SERVICE=WMS\"",
        "href=\"../service?REQUEST=GetCapabilities&SERVICE=WMS&tiled=true\"",
        "href=\"../service?REQUEST=GetCapabilities&SERVICE=WMTS\"",
        "href=\"../wmts/1.0.0/WMTSCapabilities.xml\"",
        "href=\"../tms/1.0.0/\"",
        "href=\"../demo/?tms_layer=osm&format=png&srs=EPSG%3A3857\"",
        "href=\"../demo/?tms_layer=geo&format=jpeg&srs=EPSG%3A4326\"",
        "href=\"../demo/?wmts_layer=geo&format=jpeg&srs=EPSG%3A3857\"",
        "href=\"../demo/?tms_capabilities&layer=geo&srs=GLOBAL_GEODETIC\"",
        "GLOBAL_GEODETIC not compatible with WMTS",
        "<h2>OGC API</h2>",
    ] {
        assert!(page.contains(link), "{link} missing in\n{page}");
    }
    // the WMS formats the demo keeps, and the SRS list as MapProxy's layer_srs orders it
    assert!(page.contains("<td rowspan=\"2\">a-layer</td>"));
    assert!(!page.contains("image/gif"));
    let srs: Vec<&str> = page
        .split("<option value=\"")
        .skip(1)
        .take(5)
        .map(|s| s.split('"').next().unwrap_or(""))
        .collect();
    assert_eq!(
        srs,
        [
            "EPSG:3857",
            "EPSG:4326",
            "EPSG:4258",
            "EPSG:900913",
            "CRS:84"
        ]
    );
    assert!(page.contains(">EPSG:3857*</option>"));

    // test_layers_sorted_by_name: WMS, WMTS and TMS tables list their layers by name
    let a = page.find("<td rowspan=\"2\">a-layer</td>");
    let b = page.find("<td rowspan=\"2\">b-layer</td>");
    assert!(a.is_some() && b.is_some() && a < b);
    let wmts = page.split("<h2>WMTS</h2>").nth(1).unwrap_or("");
    let tms = page.split("<h2>TMS</h2>").nth(1).unwrap_or("");
    for section in [wmts, tms] {
        let geo = section.find("<td rowspan=\"2\">geo</td>");
        let osm = section.find("<td rowspan=\"1\">osm</td>");
        assert!(geo.is_some() && osm.is_some() && geo < osm, "{section}");
    }
}

#[test]
fn services_off() {
    let page = body(handle("/demo/", "", &DemoInput::default()));
    assert_eq!(
        page.matches("This service is not available with the current configuration.")
            .count(),
        5
    );
}

#[test]
fn tms_viewer_urls_as_mapproxy() {
    let res = handle(
        "/demo/?tms_layer=geo&format=jpeg&srs=EPSG%3A4326",
        "http://h",
        &input(),
    );
    assert_eq!(res.status(), StatusCode::OK);
    let page = body(res);
    assert!(page.contains("<h2>Layer Preview - geo</h2>"));
    // MapProxy 7.0.0 for GLOBAL_GEODETIC: the first level is skipped, bbox of level 1
    assert!(page.contains("\"../tms/1.0.0/geo/GLOBAL_GEODETIC/{z}/{x}/{-y}.jpeg\""));
    assert!(page.contains("gridExtent: [-180.0, -90.0, 180.0, 90.0]"));
    assert!(page.contains("resolutions: [0.703125, 0.3515625, 0.17578125,"));
    assert!(
        page.contains("1.0728836059570312e-05, 5.364418029785156e-06, 2.682209014892578e-06]"),
        "{}",
        page.split("resolutions: ").nth(1).unwrap_or("")
    );
    assert!(page.contains("<tr><td>0</td><td>0.703125</td></tr>"));
    assert!(page.contains("<tr><td>18</td><td>2.682209014892578e-06</td></tr>"));
    assert!(page.contains("static/ol-10.11.0/ol.js"));
    // the SRS switcher offers the layer's other TMS grid
    assert!(page.contains("<option selected value=\"EPSG:4326\">EPSG:4326</option>"));
    assert!(page.contains("<option value=\"EPSG:3857\">EPSG:3857</option>"));

    let page = body(handle(
        "/demo/?tms_layer=osm&format=png&srs=EPSG%3A3857",
        "",
        &input(),
    ));
    assert!(page.contains("resolutions: [78271.51696402048, 39135.75848201024,"));
    assert!(page.contains("0.5971642834779395, 0.29858214173896974]"));
    assert!(page.contains(
        "gridExtent: [-20037508.342789244, -20037508.342789244, 20037508.342789244, 20037508.342789244]"
    ));
    assert!(page.contains("transparent: true"));
}

#[test]
fn wmts_viewer_rest_template() {
    let page = body(handle(
        "/demo/?wmts_layer=geo&format=jpeg&srs=EPSG%3A3857",
        "",
        &input(),
    ));
    assert!(page.contains(
        "url: \"../wmts/geo/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.jpeg\", rest: true"
    ));
    assert!(page.contains("matrixSet: \"GLOBAL_WEBMERCATOR\""));
    assert!(page.contains("resolutions: [156543.03392804097, 78271.51696402048,"));
    let mut kvp = input();
    kvp.services.wmts_restful = false;
    let page = body(handle(
        "/demo/?wmts_layer=geo&format=jpeg&srs=EPSG%3A3857",
        "",
        &kvp,
    ));
    assert!(page.contains("url: \"../service?\", rest: false"));
}

#[test]
fn wms_viewer() {
    let res = handle(
        "/demo/?srs=EPSG%3A4326&format=image%2Fpng&wms_layer=a-layer",
        "",
        &input(),
    );
    assert_eq!(res.status(), StatusCode::OK);
    let page = body(res);
    assert!(page.contains("<h2>Layer Preview - a-layer</h2>"));
    assert!(page.contains("<option selected value=\"image/png\">png</option>"));
    assert!(page.contains("kind: \"wms\""));
}

#[test]
fn unknown_layer_and_missing_params() {
    for q in [
        "/demo/?tms_layer=nope&format=png&srs=EPSG%3A3857",
        "/demo/?tms_layer=osm&format=png&srs=EPSG%3A4326",
        "/demo/?wmts_layer=nope&format=png&srs=EPSG%3A3857",
        "/demo/?wms_layer=nope&format=image%2Fpng&srs=EPSG%3A3857",
    ] {
        let res = handle(q, "", &input());
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{q}");
        assert_eq!(body(res), "layer not found");
    }
    let res = handle("/demo/?tms_layer=osm&format=png", "", &input());
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

#[test]
fn request_values_are_escaped() {
    let evil = "osm\"><script>alert('XSS')</script>";
    let mut inp = input();
    inp.tile_layers.push(tile(evil, "png", false));
    let q = "/demo/?tms_layer=osm%22%3E%3Cscript%3Ealert(%27XSS%27)%3C%2Fscript%3E\
             &format=png%22%3E%3Cscript%3E%3C%2Fscript%3E&srs=EPSG%3A3857";
    let page = body(handle(q, "", &inp));
    assert!(page.contains("Layer Preview - osm&quot;&gt;&lt;script&gt;"));
    assert!(!page.contains("<script>alert"));
    assert!(!page.contains("\"><script>"));
    assert_eq!(page.matches("<script").count(), 2, "{page}");
    let index = body(handle("/demo/", "", &inp));
    assert!(!index.contains("<script>alert"));

    // the capabilities view's document path, as MapProxy builds it (test_tms_layer_xss)
    let t = capabilities_target(
        "/demo/?tms_capabilities&layer=osm%22%3E%3Cscript%3Ealert(%27XSS%27)%3C/script%3E&type=external&srs=1.0.0",
    );
    let t = t.expect("target");
    assert!(t.external);
    assert_eq!(
        t.path_and_query,
        "/tms/1.0.0/osm&gt;&lt;script&gt;alert(XSS)&lt;/script&gt;/1.0.0"
    );
    let res = handle("/demo/?wms_capabilities", "", &input());
    assert_eq!(res.status(), StatusCode::NOT_IMPLEMENTED);
}

#[test]
fn static_files() {
    let res = handle("/demo/static/ol.js", "", &input());
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(ctype(&res), "text/javascript; charset=utf-8");
    let etag = res.headers()["etag"].clone();
    assert!(res.headers()["cache-control"]
        .to_str()
        .is_ok_and(|v| v.contains("max-age")));
    assert_eq!(body(res).len(), 1070771);

    let res = handle("/demo/static/ol-10.11.0/ol.css", "", &input());
    assert_eq!(ctype(&res), "text/css; charset=utf-8");
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );

    let mut h = HeaderMap::new();
    h.insert("if-none-match", etag);
    let res = handle_with_headers("/demo/static/ol-10.11.0/ol.js", &h, "", &input());
    assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
    h.insert("if-none-match", HeaderValue::from_static("\"other\""));
    let res = handle_with_headers("/demo/static/ol.js", &h, "", &input());
    assert_eq!(res.status(), StatusCode::OK);

    let res = handle("/demo/static/ol%2Ejs", "", &input());
    assert_eq!(res.status(), StatusCode::OK);
    for p in [
        "/demo/static/%2E%2E/Cargo.toml",
        "/demo/static/nope.js",
        "/demo/static/../Cargo.toml",
        "/demo/static/",
    ] {
        let res = handle(p, "", &input());
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(ctype(&res), "text/plain");
        assert_eq!(body(res), "file not found");
    }
}
