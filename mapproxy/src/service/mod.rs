//! MapProxy's HTTP surface for tiles (`mapproxy/wsgiapp.py`, `service/tile.py`, `service/ows.py`,
//! `response.py`, `exception.py`), given already-built layers.
//!
//! | path | what | MapProxy |
//! |---|---|---|
//! | `/` | the welcome page (exact bytes) | `MapProxyApp.welcome_response` |
//! | `/tms`, `/tms/1.0.0/...` | TMS root, capabilities, tile maps, tiles (level offset for the global profiles, always `sw`) | `service/tile.py`, `request/tile.py` |
//! | `/tiles/...` | tiles in the grid's origin unless `tms.origin` or `?origin=` says otherwise | the same |
//! | `/wmts/...` | RESTful WMTS capabilities and tiles by `restful_template` | `service/wmts.py`, `request/wmts.py` |
//! | `/kml/...` | KML super-overlays and their tiles | `service/kml.py` |
//! | `/service?`, `/ows?`, `/wms?` | OWS dispatch by `SERVICE`: its exception documents; `SERVICE=WMTS` KVP `GetCapabilities`, `GetTile`; `SERVICE=WMS` ([`wms`]) | `service/ows.py`, `service/wms.py` |
//! | anything else | 404 `not found` | `MapProxyApp.__call__` |
//!
//! Every answer carries `Access-control-allow-origin` (unless configured off); `text/*` and
//! `application/*` answers carry `Vary: X-Script-Name, X-Forwarded-Host, X-Forwarded-Proto`;
//! error documents `Cache-Control: no-cache, no-store`, `Pragma`, `Expires: -1`; tiles `ETag`
//! (MapProxy's md5 of timestamp and size), `Last-modified`, `Cache-control: public, max-age`
//! from `expires_hours`, and 304 for a matching `If-None-Match` or `If-Modified-Since`.
//!
//! Metadata and titles are XML-escaped in every document (MapProxy prints them raw, so an
//! `&` in an abstract makes its capabilities unreadable); otherwise the documents are
//! MapProxy 7.0.0's byte for byte (`tests/fixtures/service/`).
//!
//! Public URLs are built from the request's script URL ([`script_url`]): the runtime's
//! forwarded-headers filter sets it; when `X-Script-Name`, `X-Forwarded-Host` or
//! `X-Forwarded-Proto` reach the app unconsumed, MapProxy's own rule applies them (through the
//! same filter's layer, trusting every peer as MapProxy does). Documents never repeat extra
//! `PATH_INFO` segments (MapProxy #1184) and take the first value of a list (#590).
//!
//! A request carrying an [`Authorizer`] is authorized as with MapProxy's `mapproxy.authorize`
//! callback ([`crate::authorize`]): TMS, KML, WMTS and the demo ask it.
//!
//! Not yet here: WMTS GetFeatureInfo (501 `OperationNotSupported`), WMS GetFeatureInfo and
//! GetLegendGraphic (an `OperationNotSupported` exception that says so).

pub mod demo;
mod kml;
mod ows;
mod response;
mod tms;
pub mod wms;
mod wmts;

use std::collections::HashMap;
use std::sync::Arc;

use http::{Request, Response, StatusCode};
use mapproxy_serve_core::app::{AppFuture, Body, Handler};
use mapproxy_serve_core::environ::{path_info, script_url};
use mapproxy_serve_core::App;
use mapproxy_serve_filters::proxy_headers::{ProxyHeadersConfig, ProxyHeadersLayer};

use crate::authorize::{AuthRequest, Authorized, Authorizer, Denied, QueryExtent};
use crate::grid::{Bbox, Origin, TileGrid};
use crate::image::ImageFormat;
use crate::pynum::{floats, NumBbox};
use crate::tile::TileProvider;

pub use response::{escape_html, html_escape, parse_httpdate, py_float, tile_etag};
pub use wmts::{restful_featureinfo_template_regex, restful_template_regex};

/// Service metadata (`services.<svc>.md`, `services.wms.md`): what capabilities print.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServiceMd {
    pub title: String,
    pub abstract_: String,
    /// `keyword_list`: keyword groups with an optional vocabulary.
    pub keyword_list: Vec<Keywords>,
    /// `contact` (TMS `ContactInformation`, WMTS `ServiceProvider`).
    pub contact: Option<Contact>,
    /// `online_resource` (WMTS `ProviderSite`).
    pub online_resource: String,
    /// `fees` (WMTS capabilities print `none` when unset).
    pub fees: Option<String>,
    /// `access_constraints` (`none` when unset).
    pub access_constraints: Option<String>,
}

/// One entry of `keyword_list`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Keywords {
    pub vocabulary: Option<String>,
    pub keywords: Vec<String>,
}

/// `md.contact`; unset fields print empty.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Contact {
    pub person: String,
    pub position: String,
    pub organization: String,
    /// `address_type` (the WMS documents print `postal` when unset).
    pub address_type: Option<String>,
    pub address: String,
    pub city: String,
    pub state: String,
    pub postcode: String,
    pub country: String,
    pub phone: String,
    pub fax: String,
    pub email: String,
}

/// Loopback: a web server on the same host.
pub const DEFAULT_TRUSTED_PROXIES: &str = "127.0.0.0/8, ::1";

/// `services.tms`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TmsConfig {
    pub use_grid_names: bool,
    /// `origin` for `/tiles` (never `/tms`, which is always `sw`).
    pub origin: Option<Origin>,
}

/// `services.kml`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KmlConfig {
    pub use_grid_names: bool,
}

/// `services.wmts` (`md` falls back field by field to [`ServiceConfig::md`]).
#[derive(Debug, Clone, PartialEq)]
pub struct WmtsConfig {
    pub restful: bool,
    pub restful_template: String,
    /// `restful_featureinfo_template`.
    pub restful_featureinfo_template: String,
    pub kvp: bool,
    pub md: ServiceMd,
    /// `featureinfo_formats`: (suffix, MIME type) in the configuration's order (a later
    /// entry with the same suffix replaces the MIME type in place, as an `OrderedDict`);
    /// none by default, so that every `INFOFORMAT` is unknown.
    pub featureinfo_formats: Vec<(String, String)>,
}

impl Default for WmtsConfig {
    fn default() -> Self {
        WmtsConfig {
            restful: true,
            restful_template: "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}"
                .into(),
            restful_featureinfo_template:
                "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}/{I}/{J}.{InfoFormat}"
                    .into(),
            kvp: true,
            md: ServiceMd::default(),
            featureinfo_formats: Vec::new(),
        }
    }
}

/// Which services are on, and the globals they read.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceConfig {
    pub demo: bool,
    pub tms: Option<TmsConfig>,
    pub kml: Option<KmlConfig>,
    pub wmts: Option<WmtsConfig>,
    /// `services.wms` is present (the WMS service itself lands later).
    pub wms: bool,
    /// `Cache-control: max-age` of tiles and KML in seconds: `globals.tiles.expires_hours`
    /// × 3600 (default 72 hours), whole seconds as MapProxy's `%d` prints them.
    pub max_age: u64,
    /// `globals.http.access_control_allow_origin` (default `*`; `None` or `""`: no header).
    pub access_control_allow_origin: Option<String>,
    /// The service metadata the TMS documents print (MapProxy passes the WMS `md`).
    pub md: ServiceMd,
    /// Peers whose `X-Script-Name`, `X-Forwarded-Host` and `X-Forwarded-Proto` are believed
    /// (CIDRs, comma-separated; default loopback). MapProxy believes them from anyone.
    pub trusted_proxies: String,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            demo: false,
            tms: None,
            kml: None,
            wmts: None,
            wms: false,
            max_age: 72 * 3600,
            access_control_allow_origin: Some("*".into()),
            md: ServiceMd::default(),
            trusted_proxies: DEFAULT_TRUSTED_PROXIES.into(),
        }
    }
}

/// One layer in one grid, as the tile services see it (MapProxy's `service.tile.TileLayer`).
#[derive(Clone)]
pub struct TileLayer {
    pub name: String,
    pub title: String,
    /// The grid's name in the configuration (`GLOBAL_WEBMERCATOR`): the WMTS TileMatrixSet,
    /// and the URL segment of TMS and KML with their `use_grid_names` (else `EPSG3857`; see
    /// [`TileLayer::url_grid_name`]).
    pub grid_name: String,
    pub grid: Arc<TileGrid>,
    /// The cache's format (`mixed` answers PNG or JPEG per tile).
    pub format: ImageFormat,
    pub provider: Arc<dyn TileProvider>,
    /// The layer's extent in the grid's SRS (TMS `BoundingBox`); the grid's bbox by default.
    /// Numbers as MapProxy holds them: a coverage's ints in the grid's SRS stay ints.
    pub bbox: NumBbox,
    /// The extent in WGS84 for capabilities: computed for EPSG:4326/3857/900913, else what
    /// the caller passes.
    pub wgs84_bbox: Option<NumBbox>,
    /// The grid as the TMS and KML services present it, computed on first use.
    pub(crate) service_grid: std::sync::OnceLock<tms::ServiceGrid>,
    /// Whether WMTS can serve the grid (every level from the upper left), computed on first
    /// use: the answer walks every level, and WMTS asks it of every layer per tile.
    pub(crate) wmts_compatible: std::sync::OnceLock<bool>,
    /// The info sources WMTS GetFeatureInfo asks (MapProxy's `info_sources`: the WMS sources
    /// with `wms_opts.featureinfo` of the cache, and the layer's FeatureInfo-only sources);
    /// none: the layer is not queryable.
    pub info: Vec<crate::featureinfo::InfoLayer>,
    /// The `LegendURL` of the WMTS KVP and RESTful capabilities (a layer's
    /// `wmts_kvp_legendurl`/`wmts_rest_legendurl`, else the WMS GetLegendGraphic of a layer
    /// with `legendurl` when the WMS is on): `{base_url}` and `{layer_name}` replaced when
    /// written, inserted as it is (MapProxy's template does not escape it).
    pub wmts_legendurls: (Option<String>, Option<String>),
}

impl std::fmt::Debug for TileLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TileLayer")
            .field("name", &self.name)
            .field("grid_name", &self.grid_name)
            .field("format", &self.format)
            .finish_non_exhaustive()
    }
}

/// The grid segment of tile URLs: `grid_name` with `use_grid_names`, else `EPSG<code>`.
pub fn grid_url_name(grid: &TileGrid, grid_name: &str, use_grid_names: bool) -> String {
    if use_grid_names {
        grid_name.to_string()
    } else {
        format!("EPSG{}", grid.srs())
    }
}

/// A bbox as WGS84 longitudes and latitudes: EPSG:4326 as it is, web mercator by its
/// formula, any other SRS as MapProxy's `transform_bbox_to(SRS(4326))` (16 envelope points);
/// `None` when the SRS is unknown or the transformation fails.
pub fn wgs84_bbox(srs: u32, bbox: Bbox) -> Option<Bbox> {
    match srs {
        4326 => Some(bbox),
        3857 | 900913 => {
            const R: f64 = 6378137.0;
            // proj keeps longitudes within ±180 (x / R is a hair over π at the bbox edge)
            let lon = |x: f64| (x / R).to_degrees().clamp(-180.0, 180.0);
            let lat =
                |y: f64| (2.0 * (y / R).exp().atan() - std::f64::consts::FRAC_PI_2).to_degrees();
            Some([lon(bbox[0]), lat(bbox[1]), lon(bbox[2]), lat(bbox[3])])
        }
        // MapProxy: SRS(srs).transform_bbox_to(SRS(4326), bbox)
        _ => {
            let from = crate::srs::Srs::get(&format!("EPSG:{srs}")).ok()?;
            let wgs84 = crate::srs::Srs::get("EPSG:4326").ok()?;
            from.transform_bbox_to(&wgs84, bbox).ok()
        }
    }
}

impl TileLayer {
    /// A layer over `grid` with the grid's bbox as its extent.
    pub fn new(
        name: impl Into<String>,
        title: impl Into<String>,
        grid_name: impl Into<String>,
        grid: Arc<TileGrid>,
        format: ImageFormat,
        provider: Arc<dyn TileProvider>,
    ) -> TileLayer {
        let bbox = grid.bbox();
        let wgs84 = wgs84_bbox(grid.srs(), bbox).map(floats);
        let bbox = floats(bbox);
        TileLayer {
            name: name.into(),
            title: title.into(),
            grid_name: grid_name.into(),
            grid,
            format,
            provider,
            bbox,
            wgs84_bbox: wgs84,
            service_grid: std::sync::OnceLock::new(),
            wmts_compatible: std::sync::OnceLock::new(),
            info: Vec::new(),
            wmts_legendurls: (None, None),
        }
    }

    /// The layer with these WMTS legend URL templates (KVP, RESTful).
    pub fn with_wmts_legendurls(mut self, kvp: Option<String>, rest: Option<String>) -> TileLayer {
        self.wmts_legendurls = (kvp, rest);
        self
    }

    /// The layer with these info sources (queryable when not empty).
    pub fn with_info(mut self, info: Vec<crate::featureinfo::InfoLayer>) -> TileLayer {
        self.info = info;
        self
    }

    /// MapProxy's `TileLayer.queryable`.
    pub fn queryable(&self) -> bool {
        !self.info.is_empty()
    }

    /// Can WMTS serve this layer's grid (`supports_access_with_origin('ul')`)?
    pub fn wmts_compatible(&self) -> bool {
        *self.wmts_compatible.get_or_init(|| {
            self.grid
                .supports_access_with_origin(crate::grid::Origin::UpperLeft)
        })
    }

    /// The grid segment of this layer's TMS/KML URLs (MapProxy's `md['name_path'][1]`).
    pub fn url_grid_name(&self, use_grid_names: bool) -> String {
        grid_url_name(&self.grid, &self.grid_name, use_grid_names)
    }
}

/// Which tile service looks a layer up (each has its own `use_grid_names`).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum TileService {
    Tms,
    Kml,
}

/// MapProxy's `tile_layers(use_grid_names)`: keys in first-insertion order, the last layer
/// with a key wins (a Python dict filled in order).
#[derive(Default)]
struct LayerIndex {
    order: Vec<String>,
    by_key: HashMap<String, usize>,
}

impl LayerIndex {
    fn build(layers: &[Arc<TileLayer>], use_grid_names: bool) -> LayerIndex {
        let mut idx = LayerIndex::default();
        for (i, l) in layers.iter().enumerate() {
            let key = layer_key(&l.name, &l.url_grid_name(use_grid_names), use_grid_names);
            if idx.by_key.insert(key.clone(), i).is_none() {
                idx.order.push(key);
            }
        }
        idx
    }
}

/// `name_internal` (`<name>_<grid>`), or with `use_grid_names` the `(name, grid)` pair
/// (kept apart by a character no URL segment holds after `/` splitting).
fn layer_key(name: &str, grid: &str, use_grid_names: bool) -> String {
    if use_grid_names {
        format!("{name}/{grid}")
    } else {
        format!("{name}_{grid}")
    }
}

/// MapProxy's HTTP surface over a set of tile layers.
pub struct MapProxyService {
    config: ServiceConfig,
    layers: Vec<Arc<TileLayer>>,
    tms_index: LayerIndex,
    kml_index: LayerIndex,
    forwarded: ProxyHeadersLayer,
    /// The RESTful WMTS template as a regex (`None`: no RESTful WMTS, or an invalid template,
    /// which [`restful_template_regex`] reports to the configuration loader).
    wmts_regex: Option<regex::Regex>,
    /// The RESTful WMTS FeatureInfo template as a regex, tried when `wmts_regex` does not match.
    wmts_fi_regex: Option<regex::Regex>,
    /// What `/demo/` lists (used when `config.demo`).
    demo: demo::DemoInput,
    /// The WMS (`services.wms`), when built.
    wms: Option<Arc<wms::WmsService>>,
    /// `access_control_allow_origin` as the header value every answer gets (`None`: empty or
    /// not a valid header value).
    allow_origin: Option<http::HeaderValue>,
}

impl std::fmt::Debug for MapProxyService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapProxyService")
            .field("config", &self.config)
            .field("layers", &self.layers)
            .finish_non_exhaustive()
    }
}

/// The headers MapProxy itself reads for public URLs (names, not strings: a lookup by `&str`
/// parses the name first, a third of a cache hit's header work).
const MAPPROXY_FORWARDED: [http::HeaderName; 3] = [
    http::HeaderName::from_static("x-script-name"),
    http::HeaderName::from_static("x-forwarded-host"),
    http::HeaderName::from_static("x-forwarded-proto"),
];

impl MapProxyService {
    /// The service for `layers` (in capabilities order; a later layer with the same
    /// `<name>_<grid>` key is not reachable by URL).
    pub fn new(config: ServiceConfig, layers: Vec<TileLayer>) -> MapProxyService {
        let layers: Vec<Arc<TileLayer>> = layers.into_iter().map(Arc::new).collect();
        let tms_index = LayerIndex::build(
            &layers,
            config.tms.as_ref().is_some_and(|t| t.use_grid_names),
        );
        let kml_index = LayerIndex::build(
            &layers,
            config.kml.as_ref().is_some_and(|k| k.use_grid_names),
        );
        // MapProxy believes these headers from every peer; here only from `trusted_proxies`
        // (default: loopback, where nginx or Apache in front of it runs).
        let forwarded = ProxyHeadersLayer::new(ProxyHeadersConfig {
            trusted_proxies: ProxyHeadersConfig::parse_trusted(&config.trusted_proxies)
                .unwrap_or_default(),
            ..ProxyHeadersConfig::default()
        });
        let wmts_regex = config
            .wmts
            .as_ref()
            .filter(|w| w.restful)
            .and_then(|w| restful_template_regex(&w.restful_template).ok());
        let wmts_fi_regex =
            config.wmts.as_ref().filter(|w| w.restful).and_then(|w| {
                restful_featureinfo_template_regex(&w.restful_featureinfo_template).ok()
            });
        let allow_origin = config
            .access_control_allow_origin
            .as_deref()
            .filter(|o| !o.is_empty())
            .and_then(|o| http::HeaderValue::from_str(o).ok());
        MapProxyService {
            config,
            layers,
            tms_index,
            kml_index,
            forwarded,
            wmts_regex,
            wmts_fi_regex,
            demo: demo::DemoInput::default(),
            wms: None,
            allow_origin,
        }
    }

    /// The WMS `SERVICE=WMS` answers.
    pub fn with_wms(mut self, wms: wms::WmsService) -> MapProxyService {
        // the WMS-C tile sets: every tile layer by `<name>_EPSG<code>`, never grid names
        // (config/configuration/service.py:173: `tile_layers(conf)`)
        let idx = LayerIndex::build(&self.layers, false);
        let tile_layers = idx
            .order
            .iter()
            .filter_map(|k| idx.by_key.get(k).and_then(|&i| self.layers.get(i)))
            .cloned()
            .collect();
        self.wms = Some(Arc::new(wms.with_tile_layers(tile_layers)));
        self
    }

    /// The WMS, when configured.
    pub fn wms(&self) -> Option<&Arc<wms::WmsService>> {
        self.wms.as_ref()
    }

    /// What `/demo/` shows.
    pub fn with_demo(mut self, demo: demo::DemoInput) -> MapProxyService {
        self.demo = demo;
        self
    }

    pub fn config(&self) -> &ServiceConfig {
        &self.config
    }

    pub fn layers(&self) -> &[Arc<TileLayer>] {
        &self.layers
    }

    /// `use_grid_names` of a tile service.
    pub(crate) fn use_grid_names(&self, service: TileService) -> bool {
        match service {
            TileService::Tms => self.config.tms.as_ref().is_some_and(|t| t.use_grid_names),
            TileService::Kml => self.config.kml.as_ref().is_some_and(|k| k.use_grid_names),
        }
    }

    /// The layers a tile service lists, in MapProxy's order.
    pub(crate) fn tile_layers(&self, service: TileService) -> Vec<&Arc<TileLayer>> {
        let idx = match service {
            TileService::Tms => &self.tms_index,
            TileService::Kml => &self.kml_index,
        };
        idx.order
            .iter()
            .filter_map(|k| idx.by_key.get(k).and_then(|&i| self.layers.get(i)))
            .collect()
    }

    /// MapProxy's `_internal_layer` / `_internal_dimension_layer`: with `use_grid_names` the
    /// exact (layer, grid) pair; else `<layer>[_<spec>]`, then the two global grids' keys
    /// (TMS tries EPSG900913 first, KML EPSG4326).
    pub(crate) fn find_tile_layer(
        &self,
        service: TileService,
        layer: &str,
        spec: Option<&str>,
    ) -> Option<&Arc<TileLayer>> {
        let idx = match service {
            TileService::Tms => &self.tms_index,
            TileService::Kml => &self.kml_index,
        };
        // the keys are put together in a reused buffer: no allocation per tile request
        thread_local! {
            static KEY: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        let get = |parts: &[&str]| {
            KEY.with(|k| {
                let mut k = k.borrow_mut();
                k.clear();
                parts.iter().for_each(|p| k.push_str(p));
                idx.by_key.get(k.as_str()).and_then(|&i| self.layers.get(i))
            })
        };
        if self.use_grid_names(service) {
            return get(&[layer, "/", spec?]);
        }
        let name: &[&str] = match spec {
            Some(s) => &[layer, "_", s],
            None => &[layer],
        };
        let fallbacks = match service {
            TileService::Tms => ["_EPSG900913", "_EPSG4326"],
            TileService::Kml => ["_EPSG4326", "_EPSG900913"],
        };
        get(name)
            .or_else(|| get(&[name, &[fallbacks[0]]].concat()))
            .or_else(|| get(&[name, &[fallbacks[1]]].concat()))
    }

    /// This service as an [`App`].
    pub fn into_app(self: Arc<Self>) -> App {
        App::from_handler(ServiceHandler(self))
    }

    /// Answer one request as MapProxy's `MapProxyApp` does.
    pub async fn handle<B: Send + 'static>(&self, req: Request<B>) -> Response<Body> {
        let req = self.prepare(req);
        self.respond(&req).await
    }

    /// The request as the services read it: no body (GET semantics; never read) and the
    /// forwarded headers applied. Done before the request's future, which then holds the
    /// request once.
    fn prepare<B>(&self, req: Request<B>) -> Request<()> {
        let mut req = req.map(|_| ());
        self.apply_mapproxy_forwarded(&mut req);
        req
    }

    async fn respond(&self, req: &Request<()>) -> Response<Body> {
        let mut res = self.dispatch(req).await;
        if let Some(v) = &self.allow_origin {
            res.headers_mut()
                .insert(http::header::ACCESS_CONTROL_ALLOW_ORIGIN, v.clone());
        }
        res
    }

    /// `X-Script-Name`, `X-Forwarded-Host`, `X-Forwarded-Proto` the runtime left in place.
    fn apply_mapproxy_forwarded(&self, req: &mut Request<()>) {
        if MAPPROXY_FORWARDED
            .iter()
            .any(|h| req.headers().contains_key(h))
        {
            self.forwarded.apply(req);
        }
    }

    async fn dispatch(&self, req: &Request<()>) -> Response<Body> {
        let path = decoded_path(req);
        let handler = handler_name(&path);
        let ctx = Ctx {
            path: &path,
            query: req.uri().query().unwrap_or(""),
            headers: req.headers(),
            request: req,
            authorizer: req.extensions().get::<Authorizer>(),
        };
        let res = match handler {
            Some("tms") | Some("tiles") if self.config.tms.is_some() => {
                Some(tms::handle(self, &ctx).await)
            }
            // The request's future (boxed in `ServiceHandler::call`) is as large as the
            // largest future it may await: /tms/ and /tiles/, asked most and mostly answered at
            // once, stay in it; the larger OWS, WMTS and KML futures get a box of their own
            // when taken (one allocation, in a request that does more).
            Some("kml") if self.config.kml.is_some() => {
                Some(Box::pin(kml::handle(self, &ctx)).await)
            }
            Some("wmts") if self.config.wmts.as_ref().is_some_and(|w| w.restful) => {
                Some(Box::pin(wmts::rest(self, &ctx)).await)
            }
            Some("service") | Some("ows") if self.has_ows() => {
                Some(Box::pin(ows::handle(self, &ctx)).await)
            }
            Some("wms") if self.config.wms => Some(Box::pin(ows::handle(self, &ctx)).await),
            Some("demo") if self.config.demo => {
                let pq = match req.uri().query() {
                    Some(q) => format!("{}?{q}", path_info(req)),
                    None => path_info(req).to_string(),
                };
                // the static files are not authorized (MapProxy: not confidential)
                let input = if path.starts_with("/demo/static/") {
                    Ok(std::borrow::Cow::Borrowed(&self.demo))
                } else {
                    self.authorized_demo(&ctx)
                };
                Some(match input {
                    Ok(_) if demo::capabilities_target(&pq).is_some() => {
                        Box::pin(self.demo_capabilities(req, &ctx, &pq)).await
                    }
                    Ok(input) => {
                        demo::handle_with_headers(&pq, req.headers(), &ctx.script_url(), &input)
                    }
                    // MapProxy's demo answers its own 403, without the no-cache headers
                    Err(d) if d.0 == StatusCode::FORBIDDEN => {
                        response::content_type_response(d.0, "text/plain", d.message())
                    }
                    Err(d) => denied_response(d),
                })
            }
            _ => None,
        };
        if let Some(res) = res {
            return res;
        }
        if path.is_empty() || path == "/" {
            return self.welcome(&ctx.script_url());
        }
        response::mimetype_response(StatusCode::NOT_FOUND, "text/plain", "not found")
    }

    /// The demo's capabilities views (`?wms_capabilities`, `?tms_capabilities&layer=..&srs=..`,
    /// ...): the document answered by this app itself, with the request's headers and
    /// extensions (so the authorizer and the forwarded URL apply), escaped into the page.
    /// MapProxy fetches it over HTTP from its own URL (or the public one with
    /// `type=external`); here no request leaves the process, and both show the public URL.
    async fn demo_capabilities(
        &self,
        req: &Request<()>,
        ctx: &Ctx<'_>,
        path_and_query: &str,
    ) -> Response<Body> {
        use http_body_util::BodyExt;
        let Some(target) = demo::capabilities_target(path_and_query) else {
            return response::mimetype_response(StatusCode::NOT_FOUND, "text/plain", "not found");
        };
        let Ok(uri) = target.path_and_query.parse::<http::Uri>() else {
            return response::mimetype_response(StatusCode::NOT_FOUND, "text/plain", "not found");
        };
        let mut inner = Request::new(());
        *inner.uri_mut() = uri;
        *inner.headers_mut() = req.headers().clone();
        *inner.extensions_mut() = req.extensions().clone();
        inner
            .extensions_mut()
            .remove::<mapproxy_serve_core::environ::EmptyPathInfo>();
        let res = Box::pin(self.dispatch(&inner)).await;
        if !res.status().is_success() {
            // MapProxy: urlopen raises, the demo answers its internal error
            return res;
        }
        let Ok(body) = res.into_body().collect().await else {
            return response::mimetype_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                "internal error",
            );
        };
        let url = format!("{}{}", ctx.script_url(), target.path_and_query);
        demo::capabilities_page(
            target.service,
            &url,
            &String::from_utf8_lossy(&body.to_bytes()),
        )
    }

    /// `authorized_demo`: the demo's input as the authorizer allows it.
    fn authorized_demo<'s>(
        &'s self,
        ctx: &Ctx<'_>,
    ) -> Result<std::borrow::Cow<'s, demo::DemoInput>, Denied> {
        let mut names: Vec<&str> = Vec::new();
        let all = self.demo.tile_layers.iter().map(|l| l.name.as_str());
        for n in all.chain(self.demo.wms_layers.iter().map(|l| l.name.as_str())) {
            if !names.contains(&n) {
                names.push(n);
            }
        }
        let Some(answer) = ctx.ask("demo", &names, None) else {
            return Ok(std::borrow::Cow::Borrowed(&self.demo));
        };
        match crate::authorize::listing(answer)? {
            crate::authorize::Listing::All => Ok(std::borrow::Cow::Borrowed(&self.demo)),
            crate::authorize::Listing::Only(p) => {
                let mut input = self.demo.clone();
                input.tile_layers.retain(|l| p.access(&l.name).tile);
                input.wms_layers.retain(|l| p.access(&l.name).map);
                Ok(std::borrow::Cow::Owned(input))
            }
        }
    }

    /// Is `/service` served: WMS, or WMTS with KVP.
    fn has_ows(&self) -> bool {
        self.config.wms || self.config.wmts.as_ref().is_some_and(|w| w.kvp)
    }

    fn welcome(&self, script_url: &str) -> Response<Body> {
        let mut html = format!(
            "<html><body><h1>Welcome to MapProxy {}</h1>",
            crate::VERSION
        );
        if self.config.demo {
            html.push_str(&format!(
                "<p>See all configured layers and services at: <a href=\"{}/demo/\">demo</a>",
                escape_html(script_url)
            ));
        }
        response::mimetype_response(StatusCode::OK, "text/html", html)
    }
}

/// What the services read of a request.
pub(crate) struct Ctx<'a> {
    /// `PATH_INFO`, percent-decoded (invalid UTF-8 replaced).
    pub path: &'a str,
    /// The raw query string.
    pub query: &'a str,
    pub headers: &'a http::HeaderMap,
    /// The request (extensions, for the authorizer).
    pub request: &'a Request<()>,
    /// MapProxy's `mapproxy.authorize`.
    pub authorizer: Option<&'a Authorizer>,
}

impl Ctx<'_> {
    /// Scheme, host and mount path, no trailing `/`: built when a document or page needs it,
    /// not for every tile.
    pub fn script_url(&self) -> String {
        script_url(self.request)
    }

    /// Ask the authorizer; `None` when there is none (everything allowed).
    pub fn ask(
        &self,
        service: &str,
        layers: &[&str],
        extent: Option<&QueryExtent>,
    ) -> Option<Authorized> {
        let auth = self.authorizer?;
        let mut q = AuthRequest::new(service, layers, self.request);
        if let Some(e) = extent {
            q = q.with_query_extent(e);
        }
        Some(auth.authorize(&q))
    }

    /// `authorize_tile_layer`: may the request use `layer`?
    pub fn check_layer(
        &self,
        service: &str,
        layer: &str,
        extent: Option<&QueryExtent>,
    ) -> Result<(), Denied> {
        match self.ask(service, &[layer], extent) {
            Some(answer) => crate::authorize::check_layer(&answer, layer),
            None => Ok(()),
        }
    }

    /// `authorized_tile_layers`: which of `layers` a listing shows.
    pub fn listing(
        &self,
        service: &str,
        layers: &[&str],
    ) -> Result<crate::authorize::Listing, Denied> {
        match self.ask(service, layers, None) {
            Some(answer) => crate::authorize::listing(answer),
            None => Ok(crate::authorize::Listing::All),
        }
    }

    /// The first value of a query parameter, name compared case-insensitively (MapProxy's
    /// `NoCaseMultiDict`); values percent-decoded with `+` as space.
    pub fn arg(&self, name: &str) -> Option<String> {
        query_pairs(self.query)
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// All values of a query parameter joined with `,` (MapProxy's
    /// `RequestParams.__getitem__` and attribute access, request/request_params.py:49):
    /// `LAYER=a&LAYER=b` is `a,b`. [`Ctx::arg`] is `params.get(k)`, the first value.
    pub fn arg_joined(&self, name: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for (_, v) in query_pairs(self.query).filter(|(k, _)| k.eq_ignore_ascii_case(name)) {
            match &mut out {
                None => out = Some(v),
                Some(o) => {
                    o.push(',');
                    o.push_str(&v);
                }
            }
        }
        out
    }
}

/// A denial as MapProxy renders a `RequestError` without a request: the message as
/// `text/plain`, no-cache.
pub(crate) fn denied_response(d: Denied) -> Response<Body> {
    response::no_cache(response::content_type_response(
        d.0,
        "text/plain",
        d.message(),
    ))
}

/// `parse_qsl`: `&`-separated `k=v` pairs, `+` is a space, percent-decoded (lossy UTF-8).
pub(crate) fn query_pairs(q: &str) -> impl Iterator<Item = (String, String)> + '_ {
    q.split('&').filter(|p| !p.is_empty()).map(|p| {
        let (k, v) = p.split_once('=').unwrap_or((p, ""));
        (qs_decode(k), qs_decode(v))
    })
}

fn qs_decode(s: &str) -> String {
    let s = s.replace('+', " ");
    percent_encoding::percent_decode_str(&s)
        .decode_utf8_lossy()
        .into_owned()
}

/// `PATH_INFO` percent-decoded: UTF-8 when the bytes are, else each byte one character, as
/// WSGI gives it to MapProxy (latin-1, PEP 3333): `0.png%ff` asks for the format `pngÿ`
/// (MapProxy's 404), not `png` followed by a replacement character that ends the word. (A
/// UTF-8 layer name is found here; MapProxy reads it as latin-1 and finds no such layer.)
fn decoded_path<B>(req: &Request<B>) -> std::borrow::Cow<'_, str> {
    let path = path_info(req);
    // most paths have nothing to decode (and a `str` is valid UTF-8 already)
    if !path.as_bytes().contains(&b'%') {
        return std::borrow::Cow::Borrowed(path);
    }
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(path).collect();
    match String::from_utf8(bytes) {
        Ok(s) => std::borrow::Cow::Owned(s),
        Err(e) => std::borrow::Cow::Owned(e.into_bytes().into_iter().map(char::from).collect()),
    }
}

/// `^/(\w+)`: the first path segment's leading word characters.
fn handler_name(path: &str) -> Option<&str> {
    let rest = path.strip_prefix('/')?;
    let end = tms::word_len(rest);
    (end > 0).then(|| &rest[..end])
}

struct ServiceHandler(Arc<MapProxyService>);

impl Handler for ServiceHandler {
    fn call(&self, req: Request<Body>) -> AppFuture {
        let svc = Arc::clone(&self.0);
        let req = svc.prepare(req);
        AppFuture::new(answer(svc, req))
    }
}

/// The future of one request, boxed by [`ServiceHandler::call`]: the service, the request
/// and [`MapProxyService::respond`]'s state, kept small (see the test `request_future_size`).
/// An `async` block, not an `async fn`: the `async fn` keeps its two arguments twice (872
/// bytes against 640).
#[allow(clippy::manual_async_fn)]
fn answer(
    svc: Arc<MapProxyService>,
    req: Request<()>,
) -> impl std::future::Future<Output = Response<Body>> + Send {
    async move { svc.respond(&req).await }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A path without `%` is taken as it is; one with escapes is decoded: UTF-8, else a
    /// character per byte (WSGI's latin-1).
    #[test]
    fn paths_are_percent_decoded() {
        let decoded = |uri: &str| {
            let req = Request::get(uri)
                .body(())
                .unwrap_or_else(|_| panic!("{uri}"));
            decoded_path(&req).into_owned()
        };
        assert_eq!(
            decoded("/tms/1.0.0/osm/0/0/0.png"),
            "/tms/1.0.0/osm/0/0/0.png"
        );
        assert_eq!(decoded("/tm%73/1.0.0/a%20b"), "/tms/1.0.0/a b");
        assert_eq!(decoded("/x%FF"), "/x\u{ff}");
        assert_eq!(decoded("/%C3%A4"), "/\u{e4}");
    }

    /// Each request's future is one allocation, the size of its largest state: glibc's malloc
    /// serves blocks up to 1,032 bytes from its per-thread cache and larger ones by its slow
    /// path (callgrind, a /tms/ hit: 330 instructions for the allocation at 1.6 KB, 41 at
    /// 640 bytes). Rarely asked services box their own futures (`dispatch`).
    #[test]
    fn request_future_size() {
        fn size<F>(_: fn(Arc<MapProxyService>, Request<()>) -> F) -> usize {
            std::mem::size_of::<F>()
        }
        let n = size(answer);
        assert!(n <= 1024, "the request future takes {n} bytes");
    }

    #[test]
    fn handler_names() {
        assert_eq!(handler_name("/tms/1.0.0"), Some("tms"));
        assert_eq!(handler_name("/service"), Some("service"));
        assert_eq!(handler_name("/"), None);
        assert_eq!(handler_name(""), None);
        assert_eq!(handler_name("/-x"), None);
    }

    #[test]
    fn wgs84_of_webmercator() {
        let b = crate::grid::global_webmercator().bbox();
        let w = wgs84_bbox(3857, b).unwrap_or_default();
        assert!((w[0] + 180.0).abs() < 1e-9 && (w[2] - 180.0).abs() < 1e-9);
        assert!((w[3] - 85.05112877980659).abs() < 1e-9);
    }
}
