//! MapProxy's `/demo/` service (`mapproxy/service/demo.py`): an index of the configured
//! services and layers, a map viewer per layer, and the viewer's static files.
//!
//! The viewer runs OpenLayers, vendored from npm at a pinned version and embedded in the binary
//! ([`assets`]), so it needs no internet. Differences from MapProxy 7, on purpose:
//! - an unknown layer answers 404 `layer not found` (MapProxy: 500 `internal error` from a
//!   Python exception); a missing `srs` or `format` answers 400;
//! - no background map unless [`DemoInput::background_url`] names one (MapProxy loads
//!   OpenStreetMap tiles from the internet by default);
//! - no proj4 definitions: the viewer shows the SRS OpenLayers knows (EPSG:3857 and its
//!   aliases, EPSG:4326, CRS:84) and says so for others;
//! - the capabilities views (`?wms_capabilities`, ...) need the document: the service layer
//!   asks [`capabilities_target`] which one, answers it itself (MapProxy fetches it over HTTP
//!   from its own URL) and renders it with [`capabilities_page`]; [`handle`] alone answers
//!   them 501.
//!
//! Every value from the request is escaped for where it lands (HTML text, attributes, JS
//! strings, URLs).

pub mod assets;
mod escape;
mod pages;

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH, LOCATION};
use http::{HeaderMap, HeaderValue, Response, StatusCode};
use mapproxy_serve_core::app::{full_body, Body};

use crate::grid::TileGrid;
use crate::pynum::NumBbox;

pub use escape::py_float;

/// MapProxy's version as the index page's "About" shows it.
pub const MAPPROXY_VERSION: &str = "7.0.0";

/// MapProxy's default WMTS RESTful template.
pub const DEFAULT_RESTFUL_TEMPLATE: &str =
    "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}";

/// Which services the index lists (MapProxy's `services` names of the demo).
#[derive(Debug, Clone, Default)]
pub struct DemoServices {
    /// `ogcapi` is configured.
    pub ogcapi: bool,
    /// `wms` is configured.
    pub wms: bool,
    /// WMS 1.1.1 is among its versions (the layer table is only shown then).
    pub wms_111: bool,
    /// WMTS KVP (`/service?SERVICE=WMTS`).
    pub wmts_kvp: bool,
    /// WMTS RESTful (`/wmts/...`).
    pub wmts_restful: bool,
    /// TMS (`/tms/1.0.0/`).
    pub tms: bool,
}

/// A WMS layer as the demo shows it.
#[derive(Debug, Clone)]
pub struct DemoWmsLayer {
    /// The layer name (`LAYERS=`).
    pub name: String,
    /// SRS the layer serves without reprojection (marked with `*`), e.g. `EPSG:3857`.
    pub native_srs: Vec<String>,
    /// The layer's extent in each SRS the viewer may be asked for (MapProxy transforms its
    /// extent; this crate has no projection library yet, so the caller gives them).
    /// Numbers as MapProxy holds them (`layer.extent.bbox_for(srs)`: an extent's own SRS
    /// keeps the YAML's ints).
    pub extents: Vec<(String, NumBbox)>,
}

/// A tile layer in one grid: listed under WMTS (grids addressable from the upper left) and
/// under TMS (from the lower left), as MapProxy's `tile_layers`.
#[derive(Debug, Clone)]
pub struct DemoTileLayer {
    /// The layer name (`name_path[0]`).
    pub name: String,
    /// The second TMS path part (`name_path[1]`): the grid name with `use_grid_names`, else the
    /// SRS code without `:` (`EPSG3857`).
    pub tms_grid: String,
    /// The WMTS tile matrix set (the grid's name).
    pub matrix_set: String,
    /// The tile format's extension: `png`, `jpeg`.
    pub format: String,
    /// The grid.
    pub grid: Arc<TileGrid>,
    /// The layer's extent in the grid's SRS (the map opens on it; MapProxy's `layer.bbox`,
    /// the YAML's ints kept); `None`: the grid's configured bbox (MapProxy's default extent
    /// of a cache layer).
    pub extent: Option<NumBbox>,
}

/// What the demo shows.
#[derive(Debug, Clone)]
pub struct DemoInput {
    pub services: DemoServices,
    /// WMS layers (the index sorts them by name, as MapProxy).
    pub wms_layers: Vec<DemoWmsLayer>,
    /// The WMS `srs:` list.
    pub wms_srs: Vec<String>,
    /// The WMS image formats; the demo keeps `image/png` and `image/jpeg`, as MapProxy.
    pub wms_formats: Vec<String>,
    /// Tile layers (sorted by name on the index, as MapProxy).
    pub tile_layers: Vec<DemoTileLayer>,
    /// The WMTS RESTful template ([`DEFAULT_RESTFUL_TEMPLATE`]).
    pub restful_template: String,
    /// An XYZ URL template for a background map (`{z}/{x}/{y}`); `None`: none.
    pub background_url: Option<String>,
}

impl Default for DemoInput {
    fn default() -> DemoInput {
        DemoInput {
            services: DemoServices::default(),
            wms_layers: Vec::new(),
            wms_srs: Vec::new(),
            wms_formats: Vec::new(),
            tile_layers: Vec::new(),
            restful_template: DEFAULT_RESTFUL_TEMPLATE.to_string(),
            background_url: None,
        }
    }
}

/// A capabilities view the demo was asked for (`?wms_capabilities`, `?tms_capabilities&layer=`
/// ...): the document to fetch and the URL to show.
#[derive(Debug, Clone, PartialEq)]
pub struct CapabilitiesTarget {
    /// `WMS`, `WMS-C`, `WMTS` or `TMS`: the page's heading.
    pub service: &'static str,
    /// The document's path and query below the script URL, e.g.
    /// `/service?REQUEST=GetCapabilities&SERVICE=WMS`.
    pub path_and_query: String,
    /// `type=external`: MapProxy fetches it through the public URL instead of the server's own.
    pub external: bool,
}

/// Whether `path_and_query` asks for a capabilities view, and which document it shows.
pub fn capabilities_target(path_and_query: &str) -> Option<CapabilitiesTarget> {
    let (path, query) = split(path_and_query);
    if path.starts_with("/demo/static/") {
        return None;
    }
    let args = escape::Args::parse(query);
    if args.has("wms_layer") || args.has("tms_layer") || args.has("wmts_layer") {
        return None;
    }
    let external = args.get("type") == Some("external");
    let t = |service, p: &str| {
        Some(CapabilitiesTarget {
            service,
            path_and_query: p.to_string(),
            external,
        })
    };
    if args.has("wms_capabilities") {
        t("WMS", "/service?REQUEST=GetCapabilities&SERVICE=WMS")
    } else if args.has("wmsc_capabilities") {
        t(
            "WMS-C",
            "/service?REQUEST=GetCapabilities&SERVICE=WMS&tiled=true",
        )
    } else if args.has("wmts_capabilities_kvp") {
        t("WMTS", "/service?REQUEST=GetCapabilities&SERVICE=WMTS")
    } else if args.has("wmts_capabilities") {
        t("WMTS", "/wmts/1.0.0/WMTSCapabilities.xml")
    } else if args.has("tms_capabilities") {
        match (args.get("layer"), args.get("srs")) {
            (Some(layer), Some(srs)) => {
                let layer = escape::mapproxy_escape(&layer.replace("..", ""));
                let srs = escape::mapproxy_escape(&srs.replace("..", ""));
                t("TMS", &format!("/tms/1.0.0/{layer}/{srs}"))
            }
            _ => t("TMS", "/tms/1.0.0/"),
        }
    } else {
        None
    }
}

/// The capabilities view: `document` (escaped) under a link to `url`.
pub fn capabilities_page(service: &str, url: &str, document: &str) -> Response<Body> {
    html_response(pages::capabilities(service, url, document))
}

/// Answers a request below the demo's mount: `path_and_query` starts with `/demo`,
/// `script_url` is the public URL of the MapProxy app (no trailing `/` needed).
pub fn handle(path_and_query: &str, script_url: &str, input: &DemoInput) -> Response<Body> {
    handle_with_headers(path_and_query, &HeaderMap::new(), script_url, input)
}

/// [`handle`], answering a static file 304 when `If-None-Match` names its ETag.
pub fn handle_with_headers(
    path_and_query: &str,
    headers: &HeaderMap,
    script_url: &str,
    input: &DemoInput,
) -> Response<Body> {
    let (raw_path, query) = split(path_and_query);
    // MapProxy sees the decoded path (WSGI's PATH_INFO)
    let path = escape::unquote(raw_path);
    let path = path.as_str();
    if let Some(name) = path.strip_prefix("/demo/static/") {
        return static_file(name, headers);
    }
    let args = escape::Args::parse(query);
    let page = if let Some(layer) = args.get("wms_layer") {
        pages::wms_viewer(input, layer, args.get("srs"), args.get("format"))
    } else if let Some(layer) = args.get("tms_layer") {
        pages::tms_viewer(input, layer, args.get("srs"), args.get("format"))
    } else if let Some(layer) = args.get("wmts_layer") {
        pages::wmts_viewer(input, layer, args.get("srs"), args.get("format"))
    } else if capabilities_target(path_and_query).is_some() {
        return text(
            StatusCode::NOT_IMPLEMENTED,
            "capabilities view not available",
        );
    } else if path == "/demo/" {
        Ok(pages::index(input))
    } else {
        let location = format!(
            "{}/demo/",
            escape::mapproxy_escape(script_url).trim_end_matches('/')
        );
        let mut res = text(StatusCode::MOVED_PERMANENTLY, "");
        if let Ok(v) = HeaderValue::from_str(&location) {
            res.headers_mut().insert(LOCATION, v);
        }
        return res;
    };
    match page {
        Ok(html) => html_response(html),
        Err(pages::PageError::MissingParam(p)) => {
            text(StatusCode::BAD_REQUEST, &format!("missing parameter: {p}"))
        }
        Err(pages::PageError::UnknownLayer) => text(StatusCode::NOT_FOUND, "layer not found"),
    }
}

fn split(path_and_query: &str) -> (&str, &str) {
    path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""))
}

/// MapProxy's demo answers `content_type='text/plain'` (no charset; `Vary` as every text
/// answer of MapProxy's `Response`).
fn text(status: StatusCode, body: &str) -> Response<Body> {
    crate::service::response::content_type_response(
        status,
        "text/plain",
        Bytes::copy_from_slice(body.as_bytes()),
    )
}

/// A page: MapProxy's `content_type='text/html'`.
fn html_response(html: String) -> Response<Body> {
    crate::service::response::content_type_response(StatusCode::OK, "text/html", html)
}

fn static_file(name: &str, headers: &HeaderMap) -> Response<Body> {
    let file = match assets::lookup(name) {
        Some(f) if !name.contains("..") => f,
        _ => return text(StatusCode::NOT_FOUND, "file not found"),
    };
    let etag = file.etag();
    let not_modified = headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| {
            let t = t.trim();
            t == "*" || t.trim_start_matches("W/") == etag
        });
    let mut res = if not_modified {
        let mut r = Response::new(mapproxy_serve_core::app::empty_body());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else {
        let mut r = Response::new(full_body(Bytes::from_static(file.bytes)));
        r.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(file.content_type));
        r
    };
    let h = res.headers_mut();
    h.insert(CACHE_CONTROL, HeaderValue::from_static(file.cache_control));
    h.insert(ETAG, HeaderValue::from_static(etag));
    res
}
