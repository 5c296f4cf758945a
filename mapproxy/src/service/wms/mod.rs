//! MapProxy's WMS (`service/wms.py`, `request/wms/`): `SERVICE=WMS` on `/service`, `/ows`,
//! `/wms`.
//!
//! | request | what |
//! |---|---|
//! | `GetCapabilities` | 1.0.0 (`text/xml`), 1.1.0/1.1.1 (`application/vnd.ogc.wms_xml`) and 1.3.0 (`text/xml`) documents, each from its own MapProxy template: service metadata, the layer tree, SRS lists, bboxes (1.3.0 axis order); with `TILED=true` the WMS-C `TileSet`s (1.1.0/1.1.1) ([`capabilities`]) |
//! | `GetMap` | layers from caches (the best grid and level, tiles stitched, cropped, resampled or reprojected) and from direct WMS sources, merged in order; PNG (paletted by default), JPEG, GIF, TIFF/GeoTIFF; with `TILED=true` (WMS-C) one cached tile as stored, with tile cache headers ([`map`]) |
//! | `GetFeatureInfo` | forwarded to the layers' info sources, the documents merged ([`featureinfo`]) |
//! | `GetLegendGraphic` | the layer's legends (`legendurl`, upstream GetLegendGraphic), cached and stacked ([`legend`]) |
//!
//! Versions are negotiated as MapProxy's `negotiate_version` (as tuples of any length: `1.1` is
//! below 1.1.0, so 1.0.0); parameter names are
//! case-insensitive. Errors are MapProxy's exception documents (1.1.1
//! `application/vnd.ogc.se_xml`, 1.3.0 `text/xml` in the ogc namespace, 1.0.0 `WMTException`),
//! HTTP 500 as MapProxy ≥ 3 answers them, or with `EXCEPTIONS=...inimage`/`...blank` an image
//! (200; GetMap, GetFeatureInfo, GetLegendGraphic), all no-cache. A repeated parameter is read
//! as MapProxy reads that one: its values joined with `,` or its first value (`Params`).
//! Requests MapProxy answers with a bare `internal error` (a malformed `BBOX` or `VERSION`,
//! `WIDTH=0`, a repeated `X`) get an exception document here.

mod capabilities;
mod featureinfo;
mod legend;
mod map;

use std::collections::HashMap;
use std::sync::Arc;

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;

use super::response::{html_escape, mimetype_response, no_cache};
use super::{Ctx, ServiceMd};
use crate::grid::{Bbox, TileGrid};
use crate::image::transform::Resampling;
use crate::pynum::{floats, merge_bbox, values, Num, NumBbox};
use crate::srs::Srs;
use crate::tile_manager::TileManager;

pub use featureinfo::InfoLayer;
pub use map::{cache_map, CacheGridLayer, CacheLayer, DirectFrom, DirectLayer, MapLayer, Opaque};

/// A WMS version (`1.1.1` → (1, 1, 1)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(pub u32, pub u32, pub u32);

impl Version {
    pub const V100: Version = Version(1, 0, 0);
    pub const V110: Version = Version(1, 1, 0);
    pub const V111: Version = Version(1, 1, 1);
    pub const V130: Version = Version(1, 3, 0);

    /// `a.b.c` (missing parts are 0, as tuples compare in MapProxy).
    pub fn parse(s: &str) -> Option<Version> {
        let mut parts = s.trim().split('.').map(|p| p.trim().parse::<u32>());
        let a = parts.next()?.ok()?;
        let b = parts.next().unwrap_or(Ok(0)).ok()?;
        let c = parts.next().unwrap_or(Ok(0)).ok()?;
        if parts.next().is_some() {
            return None;
        }
        Some(Version(a, b, c))
    }
}

impl std::fmt::Display for Version {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// MapProxy's `negotiate_version` over the supported versions (sorted).
pub fn negotiate_version(v: Version, supported: &[Version]) -> Version {
    negotiate_parts(&[i64::from(v.0), i64::from(v.1), i64::from(v.2)], supported)
}

/// A requested version as MapProxy's `Version` reads it (request/wms/__init__.py:290-291):
/// every dot-separated part an integer, as many parts as written, compared as tuples, so
/// `1.1` is (1, 1), below (1, 1, 0). `None` where Python's `int` fails (MapProxy: an internal
/// error).
pub fn version_parts(s: &str) -> Option<Vec<i64>> {
    s.split('.')
        .map(|p| {
            let t = p.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            t.parse::<i64>().ok()
        })
        .collect()
}

/// `negotiate_version` of a requested version's parts (request/wms/__init__.py:697-725): the
/// lowest supported below it, the highest above it, else the highest not above it. A
/// version written exactly as a supported one is that one (`wms_request`, :741-748).
pub fn negotiate_parts(v: &[i64], supported: &[Version]) -> Version {
    let parts = |s: &Version| [i64::from(s.0), i64::from(s.1), i64::from(s.2)];
    let (Some(&lo), Some(&hi)) = (supported.first(), supported.last()) else {
        return Version::V130;
    };
    if v < &parts(&lo)[..] {
        return lo;
    }
    if v > &parts(&hi)[..] {
        return hi;
    }
    supported
        .iter()
        .rev()
        .find(|s| v >= &parts(s)[..])
        .copied()
        .unwrap_or(lo)
}

/// `services.wms` as the service uses it.
#[derive(Debug, Clone)]
pub struct WmsConfig {
    pub md: ServiceMd,
    /// `srs`, as written (compared upper-cased).
    pub srs: Vec<String>,
    /// `image_formats` (MIME types).
    pub image_formats: Vec<String>,
    /// `bbox_srs`: the SRS capabilities print a `BoundingBox` in, each with an optional
    /// bbox of its own (default EPSG:3857, 4326, 900913, as MapProxy's `DEFAULT_EXTENTS`).
    pub bbox_srs: Vec<(String, Option<NumBbox>)>,
    /// `versions`, sorted (default all four).
    pub versions: Vec<Version>,
    /// `max_output_pixels` (`None`: no limit).
    pub max_output_pixels: Option<u64>,
    pub strict: bool,
    /// `on_source_errors: raise` (default `notify`).
    pub on_source_errors_raise: bool,
    /// `globals.image.resampling_method`.
    pub resampling: Resampling,
    /// `globals.image.paletted`.
    pub paletted: bool,
    /// `globals.image.jpeg_quality`.
    pub jpeg_quality: u8,
    /// `concurrent_layer_renderer`: layers of one GetMap rendered at once (default 1).
    pub concurrent_layer_renderer: usize,
    /// `featureinfo_types`: the GetFeatureInfo formats capabilities list (default text,
    /// html, xml).
    pub info_types: Vec<crate::featureinfo::InfoType>,
    /// `Cache-control: max-age` of a WMS-C tile (`TILED=true`): `globals.tiles.expires_hours`
    /// × 3600, as the tile services (MapProxy's `max_tile_age`, config/configuration/
    /// service.py:209).
    pub max_tile_age: u64,
}

impl Default for WmsConfig {
    fn default() -> Self {
        WmsConfig {
            md: ServiceMd::default(),
            srs: [
                "EPSG:4326",
                "EPSG:4258",
                "CRS:84",
                "EPSG:900913",
                "EPSG:3857",
            ]
            .map(String::from)
            .to_vec(),
            image_formats: ["image/png", "image/jpeg"].map(String::from).to_vec(),
            bbox_srs: ["EPSG:3857", "EPSG:4326", "EPSG:900913"]
                .map(|s| (s.to_string(), None))
                .to_vec(),
            versions: vec![Version::V100, Version::V110, Version::V111, Version::V130],
            max_output_pixels: Some(4000 * 4000),
            strict: false,
            on_source_errors_raise: false,
            resampling: Resampling::Bicubic,
            paletted: true,
            jpeg_quality: 90,
            concurrent_layer_renderer: 1,
            info_types: vec![
                crate::featureinfo::InfoType::Text,
                crate::featureinfo::InfoType::Html,
                crate::featureinfo::InfoType::Xml,
            ],
            max_tile_age: 72 * 3600,
        }
    }
}

/// A layer's extent: an SRS and a bbox in it (MapProxy's `MapExtent`, extent.py), its numbers
/// as MapProxy holds them (a coverage's or `bbox_srs` entry's ints stay ints until transformed
/// or merged with floats; the templates print them with `str()`).
#[derive(Debug, Clone)]
pub struct Extent {
    pub srs: Arc<Srs>,
    pub bbox: NumBbox,
    /// MapProxy's `DefaultMapExtent`: the world in EPSG:4326, of a source without a coverage
    /// (a WMS source, `debug`); it leaves other extents unchanged when merged, and its bbox
    /// is MapProxy's ints `(-180, -90, 180, 90)` (extent.py:136).
    pub default: bool,
}

impl Extent {
    /// `DefaultMapExtent()`.
    pub fn world() -> Option<Extent> {
        Some(Extent {
            srs: Srs::get("EPSG:4326").ok()?,
            bbox: [-180, -90, 180, 90].map(Num::Int),
            default: true,
        })
    }

    /// An extent of floats, not the default one.
    pub fn of_floats(srs: Arc<Srs>, bbox: crate::grid::Bbox) -> Extent {
        Extent {
            srs,
            bbox: floats(bbox),
            default: false,
        }
    }

    /// The bbox in `srs`: as held in its own SRS (`bbox_for`, extent.py:44-48), else
    /// transformed (floats).
    pub fn bbox_for(&self, srs: &Srs) -> Option<NumBbox> {
        if *self.srs == *srs {
            return Some(self.bbox);
        }
        self.srs
            .transform_bbox_to(srs, values(self.bbox))
            .ok()
            .map(floats)
    }

    /// The bbox in WGS84 longitudes/latitudes.
    pub fn llbbox(&self) -> Option<NumBbox> {
        let wgs84 = Srs::get("EPSG:4326").ok()?;
        self.bbox_for(&wgs84)
    }

    /// `MapExtent.__add__`: a default extent leaves the other as it is; two others merge
    /// their EPSG:4326 bboxes (`merge_bbox`, extent.py:70-77).
    fn add(&self, other: &Extent) -> Option<Extent> {
        if other.default {
            return Some(self.clone());
        }
        if self.default {
            return Some(other.clone());
        }
        let (a, b) = (self.llbbox()?, other.llbbox()?);
        Some(Extent {
            srs: Srs::get("EPSG:4326").ok()?,
            bbox: merge_bbox(a, b),
            default: false,
        })
    }

    /// `MapExtent.intersection` (extent.py:94-113): `None` when they do not intersect, else
    /// the max of the mins and the min of the maxes, in `self`'s SRS.
    pub fn intersection(&self, other: &Extent) -> Option<Extent> {
        let sub = other.bbox_for(&self.srs)?;
        let b = self.bbox;
        let (a, s) = (values(b), values(sub));
        if !(a[0] < s[2] && a[2] > s[0] && a[1] < s[3] && a[3] > s[1]) {
            return None;
        }
        Some(Extent {
            srs: self.srs.clone(),
            bbox: [
                b[0].max(sub[0]),
                b[1].max(sub[1]),
                b[2].min(sub[2]),
                b[3].min(sub[3]),
            ],
            default: false,
        })
    }

    /// The union of extents, as MapProxy's `merge_layer_extents`: none is the default
    /// extent; else the last one plus each of the others in order.
    pub fn merge(extents: &[Extent]) -> Option<Extent> {
        let Some((last, rest)) = extents.split_last() else {
            return Extent::world();
        };
        rest.iter().try_fold(last.clone(), |acc, e| acc.add(e))
    }
}

/// A layer's `md` as the capabilities print it (MapProxy's `wms_130_layer_md`,
/// config/spec.py:272-317; only the 1.1.1 and 1.3.0 documents print it). Text is kept as
/// written; the templates test most fields for truth, so an empty string prints nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LayerMd {
    /// `abstract`: 1.1.1 prints it when the key is there (`'abstract' in layer.md`), 1.3.0
    /// when it is not empty.
    pub abstract_: Option<String>,
    /// `keyword_list` (1.3.0 `KeywordList`, printed when the list is not empty).
    pub keyword_list: Vec<crate::service::Keywords>,
    /// `attribution`, when a mapping with keys (1.3.0 `Attribution`).
    pub attribution: Option<Attribution>,
    /// `identifier` (1.3.0 `AuthorityURL`s, then `Identifier`s).
    pub identifier: Vec<Identifier>,
    /// `metadata` (1.3.0 `MetadataURL`; 1.1.1 those of type `ISO19115:2003` or `FGDC:1998`).
    pub metadata: Vec<MdUrl>,
    /// `data` (1.3.0 `DataURL`).
    pub data: Vec<MdUrl>,
    /// `feature_list` (1.3.0 `FeatureListURL`).
    pub feature_list: Vec<MdUrl>,
}

/// `md.attribution`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attribution {
    pub title: String,
    pub url: String,
    /// `logo`, when a mapping with keys.
    pub logo: Option<Logo>,
}

/// `md.attribution.logo`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Logo {
    pub url: String,
    pub format: String,
    pub width: Option<i64>,
    pub height: Option<i64>,
}

/// One entry of `md.identifier`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Identifier {
    pub url: String,
    pub name: String,
    pub value: String,
}

/// One entry of `md.metadata`, `md.data` or `md.feature_list`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MdUrl {
    pub url: String,
    /// `type` (of `metadata`; MapProxy's `layer_meta_tag` prints it for any of the three).
    pub type_: String,
    pub format: String,
}

/// One layer of the WMS tree (MapProxy's `WMSLayer` / `WMSGroupLayer`).
pub struct WmsLayer {
    /// `None` for an unnamed group (not requestable).
    pub name: Option<String>,
    pub title: String,
    /// `md` beyond the title.
    pub md: LayerMd,
    /// What a request of this layer renders (a group with a name and its own sources: these;
    /// else the children's).
    pub map_layers: Vec<MapLayer>,
    /// The layer has sources (or a legend) of its own (MapProxy's `this` of a group): its
    /// own info and legend sources answer for it, not its children's.
    pub own: bool,
    /// Its own info sources (WMS sources with `wms_opts.featureinfo`).
    pub info: Vec<InfoLayer>,
    /// Its own legend sources (`legendurl`, or its sources' `wms_opts.legendurl` /
    /// `legendgraphic`).
    pub legends: Vec<Arc<crate::source::LegendSource>>,
    pub children: Vec<Arc<WmsLayer>>,
    pub extent: Option<Extent>,
    /// `min_res`, `max_res` (the layer renders nothing outside).
    pub min_res: Option<f64>,
    pub max_res: Option<f64>,
}

impl std::fmt::Debug for WmsLayer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WmsLayer")
            .field("name", &self.name)
            .field("children", &self.children)
            .finish_non_exhaustive()
    }
}

impl WmsLayer {
    /// The map layers a request of this layer renders, in drawing order.
    fn render_layers(&self, out: &mut Vec<(String, MapLayer)>) {
        if !self.map_layers.is_empty() {
            let name = self.name.clone().unwrap_or_default();
            for l in &self.map_layers {
                out.push((name.clone(), l.clone()));
            }
            return;
        }
        for c in &self.children {
            c.render_layers(out);
        }
    }

    /// `queryable`: it or one of its children has info sources.
    pub fn queryable(&self) -> bool {
        !self.info.is_empty() || self.children.iter().any(|c| c.queryable())
    }

    /// `is_opaque`: a layer's own sources (any of them opaque: a WMS source without
    /// `transparent`, within its coverage and its min_res/max_res), a group's children (any).
    fn is_opaque(&self, bbox: Bbox, size: (u32, u32), srs: &Srs) -> bool {
        if !self.children.is_empty() {
            return self.children.iter().any(|c| c.is_opaque(bbox, size, srs));
        }
        self.map_layers.iter().any(|m| match m {
            MapLayer::Direct(d) => {
                d.opaque.covers(bbox, srs)
                    && !d.source.blank_for(&crate::source::MapQuery {
                        bbox,
                        size,
                        srs: srs.epsg(),
                        format: crate::image::ImageFormat::png(),
                        transparent: d.transparent,
                    })
            }
            MapLayer::Cache(_) => false,
        })
    }

    /// Its resolution range, if it has one.
    pub fn res_range(&self) -> Option<(Option<f64>, Option<f64>)> {
        (self.min_res.is_some() || self.max_res.is_some()).then_some((self.min_res, self.max_res))
    }

    /// `renders_query`: the map within its resolution range.
    fn renders_query(&self, bbox: Bbox, size: (u32, u32), srs: &Srs) -> bool {
        crate::grid::ResRange {
            min_res: self.min_res,
            max_res: self.max_res,
        }
        .contains(bbox, size, srs.is_latlong())
    }
}

/// The WMS: its configuration and layer tree.
#[derive(Debug)]
pub struct WmsService {
    pub config: WmsConfig,
    pub root: Arc<WmsLayer>,
    /// Named layers, depth first.
    layers: HashMap<String, Arc<WmsLayer>>,
    /// The tile layers `TILED=true` capabilities list as WMS-C `TileSet`s: MapProxy's
    /// `tile_layers` keyed by `<name>_EPSG<code>` (config/configuration/service.py:85-95,
    /// 173), in that order ([`WmsService::with_tile_layers`]).
    tile_layers: Vec<Arc<super::TileLayer>>,
}

impl WmsService {
    pub fn new(config: WmsConfig, root: Arc<WmsLayer>) -> WmsService {
        let mut layers = HashMap::new();
        fn walk(l: &Arc<WmsLayer>, out: &mut HashMap<String, Arc<WmsLayer>>) {
            if let Some(n) = &l.name {
                out.entry(n.clone()).or_insert_with(|| l.clone());
            }
            for c in &l.children {
                walk(c, out);
            }
        }
        walk(&root, &mut layers);
        WmsService {
            config,
            root,
            layers,
            tile_layers: Vec::new(),
        }
    }

    /// The tile layers of the WMS-C `TileSet`s, in order.
    pub fn with_tile_layers(mut self, tile_layers: Vec<Arc<super::TileLayer>>) -> WmsService {
        self.tile_layers = tile_layers;
        self
    }

    pub fn layer(&self, name: &str) -> Option<&Arc<WmsLayer>> {
        self.layers.get(name)
    }
}

/// A cache in one grid, as the WMS reads it; `max_tile_limit` 0 is no limit.
pub fn cache_grid_layer(
    grid: Arc<TileGrid>,
    manager: Arc<TileManager>,
    max_tile_limit: u32,
    extent: Option<Extent>,
) -> Result<CacheGridLayer, crate::srs::SrsError> {
    let srs = Srs::get(&format!("EPSG:{}", grid.srs()))?;
    Ok(CacheGridLayer {
        grid,
        srs,
        manager,
        max_tile_limit,
        extent,
    })
}

/// A direct WMS source layer.
pub fn direct_layer(
    source: Arc<dyn crate::source::MapSource>,
    supported_srs: Vec<Arc<Srs>>,
    transparent: bool,
    opaque: map::Opaque,
    wms: Option<Arc<crate::source::WmsSource>>,
) -> DirectLayer {
    DirectLayer {
        source,
        supported_srs,
        transparent,
        opaque,
        wms,
    }
}

/// Case-insensitive request parameters, every value kept in order (MapProxy's
/// `NoCaseMultiDict` under its `RequestParams`). MapProxy reads a repeated parameter in one
/// of two ways, and each use here follows the accessor MapProxy uses for that parameter:
/// - [`Params::get`], the first value: `params.get(k)` and the `NoCaseMultiDict` item
///   (`VERSION`, `REQUEST`, `BBOX`, `WIDTH`, `HEIGHT`, `TRANSPARENT`, `BGCOLOR`, `LAYER`);
/// - [`Params::joined`], all values joined with `,`: `RequestParams.__getitem__` and
///   attribute access (`request/request_params.py` `__getitem__`; `FORMAT`, `SRS`, `CRS`,
///   `STYLES`, `EXCEPTIONS`, `INFO_FORMAT`; `LAYERS` and `QUERY_LAYERS` are all values split
///   at `,`, `request/wms/__init__.py:47`).
pub(crate) struct Params(Vec<(String, String)>);

impl Params {
    fn from_query(q: &str) -> Params {
        Params(
            super::query_pairs(q)
                .map(|(k, v)| (k.to_ascii_lowercase(), v))
                .collect(),
        )
    }
    /// The first value.
    pub(crate) fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }
    /// All values joined with `,` (borrowed when there is one).
    pub(crate) fn joined(&self, k: &str) -> Option<std::borrow::Cow<'_, str>> {
        let mut values = self
            .0
            .iter()
            .filter(|(n, _)| n == k)
            .map(|(_, v)| v.as_str());
        let first = values.next()?;
        let mut rest = values.peekable();
        if rest.peek().is_none() {
            return Some(std::borrow::Cow::Borrowed(first));
        }
        let mut out = first.to_string();
        for v in rest {
            out.push(',');
            out.push_str(v);
        }
        Some(std::borrow::Cow::Owned(out))
    }
    /// A list parameter (`LAYERS`, `QUERY_LAYERS`): every value split at `,`, empty names
    /// kept (MapProxy: `LAYERS=` is the layer ``).
    pub(crate) fn list(&self, k: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(n, _)| n == k)
            .flat_map(|(_, v)| v.split(','))
            .collect()
    }
    fn has(&self, k: &str) -> bool {
        self.get(k).is_some()
    }
}

/// How an error is answered.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ExcFormat {
    Xml,
    InImage,
    Blank,
}

/// A WMS error: MapProxy's `RequestError`.
#[derive(Debug, Clone)]
pub(crate) struct WmsError {
    msg: String,
    code: Option<&'static str>,
    status: Option<StatusCode>,
    /// `prevent_image_exception` (max_output_pixels): always XML.
    xml_only: bool,
}

impl WmsError {
    pub(crate) fn new(msg: impl Into<String>) -> WmsError {
        WmsError {
            msg: msg.into(),
            code: None,
            status: None,
            xml_only: false,
        }
    }
    pub(crate) fn code(mut self, c: &'static str) -> WmsError {
        self.code = Some(c);
        self
    }
    pub(crate) fn status(mut self, s: StatusCode) -> WmsError {
        self.status = Some(s);
        self
    }
}

/// The XML exception document of a version.
fn xml_exception(version: Version, e: &WmsError) -> Response<Body> {
    // MapProxy: html.escape (quotes too)
    let msg = html_escape(&e.msg);
    let code = e.code.map(|c| format!(" code=\"{c}\"")).unwrap_or_default();
    let (ct, body) = if version < Version::V110 {
        (
            "text/xml",
            format!(
                "<?xml version=\"1.0\"?>\n<WMTException version=\"1.0.0\">\n{msg}\n</WMTException>"
            ),
        )
    } else if version < Version::V111 {
        ("application/vnd.ogc.se_xml", format!("<?xml version=\"1.0\"?>\n<!DOCTYPE ServiceExceptionReport SYSTEM \"http://schemas.opengis.net/wms/1.1.0/exception_1_1_0.dtd\">\n<ServiceExceptionReport version=\"1.1.0\">\n    <ServiceException{code}>{msg}</ServiceException>\n</ServiceExceptionReport>"))
    } else if version < Version::V130 {
        ("application/vnd.ogc.se_xml", format!("<?xml version=\"1.0\"?>\n<!DOCTYPE ServiceExceptionReport SYSTEM \"http://schemas.opengis.net/wms/1.1.1/exception_1_1_1.dtd\">\n<ServiceExceptionReport version=\"1.1.1\">\n    <ServiceException{code}>{msg}</ServiceException>\n</ServiceExceptionReport>"))
    } else {
        ("text/xml", format!("<?xml version=\"1.0\"?>\n<ServiceExceptionReport version=\"1.3.0\"\n  xmlns=\"http://www.opengis.net/ogc\"\n  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n  xsi:schemaLocation=\"http://www.opengis.net/ogc\nhttp://schemas.opengis.net/wms/1.3.0/exceptions_1_3_0.xsd\">\n    <ServiceException{code}>{msg}</ServiceException>\n</ServiceExceptionReport>"))
    };
    let status = e.status.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if version < Version::V110 {
        // MapProxy's 1.0.0 handler sets content_type: no charset
        return no_cache(super::response::content_type_response(status, ct, body));
    }
    no_cache(mimetype_response(status, ct, body))
}

/// `WMSImageExceptionHandler` / `WMSBlankExceptionHandler`: the message drawn on an image of
/// the request's size (256×256 without one), format, transparency and `BGCOLOR`; 200.
fn image_exception(p: &Params, e: &WmsError, blank: bool) -> Response<Body> {
    let size = match (
        map::dim_value(p.get("width")),
        map::dim_value(p.get("height")),
    ) {
        // `params.size`: int(float(v)) (request/wms/__init__.py:81)
        (Some(w), Some(h)) if w >= 1.0 && h >= 1.0 && w * h <= 4000.0 * 4000.0 => {
            (w as u32, h as u32)
        }
        _ => (256, 256),
    };
    // `params['transparent']`: all values (request/wms/exception.py:76)
    let transparent = p
        .joined("transparent")
        .is_some_and(|t| t.eq_ignore_ascii_case("true"));
    let bg = p
        .get("bgcolor")
        .and_then(parse_bgcolor)
        .unwrap_or([255, 255, 255]);
    let color = if transparent {
        [bg[0], bg[1], bg[2], 0]
    } else {
        [bg[0], bg[1], bg[2], 255]
    };
    let mut img = crate::image::blank_image(size.0, size.1, color);
    if !blank {
        crate::source::draw_text(&mut img, &e.msg);
    }
    let mime = p
        .get("format")
        .map(mime_of_format)
        .filter(|f| f.starts_with("image/"))
        .unwrap_or_else(|| "image/png".into());
    let mut opts = crate::image::ImageOpts::new(crate::image::ImageFormat::new(mime.clone()));
    opts.transparent = transparent;
    match crate::image::encode(&img, &opts) {
        // RequestError.render: every error answer is no-cache, images too (exception.py:60)
        Ok(bytes) => no_cache(super::response::content_type_response(
            StatusCode::OK,
            &mime,
            bytes,
        )),
        Err(err) => xml_exception(Version::V111, &WmsError::new(err.to_string())),
    }
}

/// `0xRRGGBB`, `#RRGGBB` or `RRGGBB`.
pub(crate) fn parse_bgcolor(s: &str) -> Option<[u8; 3]> {
    let t = s.trim();
    let h = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .or_else(|| t.strip_prefix('#'))
        .unwrap_or(t);
    if h.len() != 6 {
        return None;
    }
    let b = |i: usize| u8::from_str_radix(h.get(i..i + 2)?, 16).ok();
    Some([b(0)?, b(2)?, b(4)?])
}

/// MapProxy's `split_mime_type` of `FORMAT`: `png` → `image/png`; options kept.
pub(crate) fn mime_of_format(f: &str) -> String {
    let f = f.trim();
    if f.contains('/') {
        f.to_string()
    } else {
        format!("image/{f}")
    }
}

/// What kind of request.
#[derive(Debug, Clone, Copy, PartialEq)]
enum ReqType {
    Map,
    FeatureInfo,
    Capabilities,
    LegendGraphic,
}

/// A parsed request: version, type, its error format.
pub(crate) struct WmsRequest {
    pub version: Version,
    pub params: Params,
    exc: ExcFormat,
}

impl WmsRequest {
    fn error(&self, e: WmsError) -> Response<Body> {
        if e.xml_only {
            return xml_exception(self.version, &e);
        }
        match self.exc {
            ExcFormat::Xml => xml_exception(self.version, &e),
            ExcFormat::InImage => image_exception(&self.params, &e, false),
            ExcFormat::Blank => image_exception(&self.params, &e, true),
        }
    }

    /// `SRS` (1.3.0: `CRS`; MapProxy's `adapt_to_111` moves it to `srs`), all values joined
    /// as `validate_srs` reads `self.params['srs']` (request/wms/__init__.py:253, 396, 410).
    pub(crate) fn srs_param(&self) -> Option<std::borrow::Cow<'_, str>> {
        if self.version >= Version::V130 {
            self.params.joined("crs")
        } else {
            self.params.joined("srs")
        }
    }
}

/// `/service?SERVICE=WMS...`.
pub(crate) async fn handle(wms: &WmsService, ctx: &Ctx<'_>) -> Response<Body> {
    let params = Params::from_query(ctx.query);
    let versions = &wms.config.versions;
    let highest = versions.last().copied().unwrap_or(Version::V130);
    let raw_version = params.get("version").or_else(|| params.get("wmtver"));
    let version = match raw_version {
        None => highest,
        Some(v) => match version_parts(v) {
            Some(parts) => negotiate_parts(&parts, versions),
            None => {
                return xml_exception(
                    highest,
                    &WmsError::new(format!("invalid version: {v}")).code("InvalidParameterValue"),
                )
            }
        },
    };
    let req_type = params
        .get("request")
        .map(|r| r.to_ascii_lowercase())
        .map(|r| match r.as_str() {
            "getmap" | "map" => Ok(ReqType::Map),
            "getfeatureinfo" | "feature_info" => Ok(ReqType::FeatureInfo),
            "getcapabilities" | "capabilities" => Ok(ReqType::Capabilities),
            "getlegendgraphic" => Ok(ReqType::LegendGraphic),
            _ => Err(r),
        });
    // `'image' in self.params['exceptions'].lower()`: all values (request/wms/__init__.py:269)
    let exc = match params.joined("exceptions").map(|e| e.to_ascii_lowercase()) {
        Some(e) if e.contains("image") => ExcFormat::InImage,
        Some(e) if e.contains("blank") => ExcFormat::Blank,
        _ => ExcFormat::Xml,
    };
    let mut req = WmsRequest {
        version,
        params,
        exc,
    };
    let req_type = match req_type {
        Some(Ok(t)) => t,
        Some(Err(other)) => {
            return req.error(WmsError::new(format!("unknown WMS request type '{other}'")))
        }
        None => return req.error(WmsError::new("unknown WMS request type 'None'")),
    };
    if req_type == ReqType::Capabilities {
        // GetMap, GetFeatureInfo and GetLegendGraphic (WMSMapRequest.exception_handler,
        // request/wms/__init__.py:264) answer errors in images; capabilities requests have
        // a fixed XML handler (request/wms/__init__.py:628-651)
        req.exc = ExcFormat::Xml;
    }
    match req_type {
        ReqType::Capabilities => capabilities::handle(wms, &req, ctx).await,
        ReqType::Map => match map::handle(wms, &req, ctx).await {
            Ok(r) => r,
            Err(e) => req.error(e),
        },
        ReqType::FeatureInfo => match featureinfo::handle(wms, &req, ctx).await {
            Ok(r) => r,
            Err(e) => req.error(e),
        },
        ReqType::LegendGraphic => match legend::handle(wms, &req, ctx).await {
            Ok(r) => r,
            Err(e) => req.error(e),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation_as_mapproxy() {
        let all = [Version::V100, Version::V110, Version::V111, Version::V130];
        assert_eq!(negotiate_version(Version(0, 9, 0), &all), Version::V100);
        assert_eq!(negotiate_version(Version(2, 0, 0), &all), Version::V130);
        assert_eq!(negotiate_version(Version::V111, &all), Version::V111);
        assert_eq!(negotiate_version(Version(1, 2, 0), &all), Version::V111);
        assert_eq!(
            negotiate_version(Version::V110, &[Version::V100]),
            Version::V100
        );
        assert_eq!(
            negotiate_version(Version::V130, &[Version::V110, Version::V111]),
            Version::V111
        );
        assert_eq!(Version::parse("1.3.0"), Some(Version::V130));
        assert_eq!(Version::parse("x"), None);
        // as tuples of any length (MapProxy answers these, see tests/wms.rs)
        let n = |s: &str| version_parts(s).map(|p| negotiate_parts(&p, &all));
        assert_eq!(n("1.1"), Some(Version::V100));
        assert_eq!(n("0.9"), Some(Version::V100));
        assert_eq!(n("1.1.0"), Some(Version::V110));
        assert_eq!(n("1.1.1.0"), Some(Version::V111));
        assert_eq!(n("1.2"), Some(Version::V111));
        assert_eq!(n("2"), Some(Version::V130));
        assert_eq!(n(" 1 . 3 . 0 "), Some(Version::V130));
        assert_eq!(n("-1"), Some(Version::V100));
        assert_eq!(n("1..1"), None);
        assert_eq!(n(""), None);
        assert_eq!(n("1.x"), None);
    }

    #[test]
    fn bgcolors() {
        assert_eq!(parse_bgcolor("0Xf0ea42"), Some([0xf0, 0xea, 0x42]));
        assert_eq!(parse_bgcolor("#ffffff"), Some([255, 255, 255]));
        assert_eq!(parse_bgcolor("red"), None);
    }
}
