//! `type: wms` sources (MapProxy's `source/wms.py` `WMSSource`, `client/wms.py` `WMSClient`
//! and the GetMap requests of `request/wms/`).
//!
//! The GetMap URL is built as MapProxy builds it: the `req` parameters in their order (keys
//! as written, matched without regard to case), `format` (replacing `req`'s, else after
//! them), `bbox` (Python `repr` of each float), `width`, `height`, `srs`, then `request`,
//! `version`, `service`, and `styles=` when `req` has none. WMS 1.3.0 swaps the bbox axes for
//! CRSs with north/east axis order and sends `crs` last instead of `srs`. Values are
//! percent-encoded as Python's `quote(value, safe=',')`; keys are not. The URL is the service
//! URL + `?` (or `&` when it has a `?` already, nothing when it ends with one) + the query.

use std::collections::BTreeSet;

use futures_util::future::BoxFuture;

use super::error::OnError;
use super::http::{content_type, image_format_of, SourceHttp};
use super::pyfmt::{py_float_repr, py_quote};
use super::{MapQuery, MapSource, SourceError, SourceImage};
use crate::image::ImageFormat;
use crate::lock::RequestLimit;

/// The EPSG codes MapProxy treats as north/east (lat/lon) in WMS 1.3.0 by default
/// (`srs.axis_order_ne_` of its defaults). Geographic CRSs beyond these need a projection
/// library to tell; [`WmsSourceConf::axis_order_ne`] adds codes.
pub const DEFAULT_AXIS_ORDER_NE: [u32; 5] = [4326, 4258, 31466, 31467, 31468];

/// `wms_opts.version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WmsVersion {
    V1_1_1,
    V1_3_0,
}

impl WmsVersion {
    /// `1.1.1` or `1.3.0`; other versions are not supported.
    pub fn parse(s: &str) -> Option<WmsVersion> {
        match s.trim() {
            "1.1.1" => Some(WmsVersion::V1_1_1),
            "1.3.0" => Some(WmsVersion::V1_3_0),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            WmsVersion::V1_1_1 => "1.1.1",
            WmsVersion::V1_3_0 => "1.3.0",
        }
    }
}

/// The configuration of a WMS source.
#[derive(Debug, Clone, PartialEq)]
pub struct WmsSourceConf {
    /// `req.url` (user info already taken out).
    pub url: String,
    /// The other `req` parameters in their order, values as Python's `str()` writes them
    /// (YAML `true` is `True`).
    pub req: Vec<(String, String)>,
    /// `wms_opts.version` (default 1.1.1).
    pub version: WmsVersion,
    /// `supported_srs` (EPSG codes; empty: any). A query in another SRS is asked in the
    /// best of these and reprojected (MapProxy's `_get_transformed`).
    pub supported_srs: Vec<u32>,
    /// `supported_formats` (empty: any): a query in another format asks for the first.
    pub supported_formats: Vec<ImageFormat>,
    /// The source's own image format (`req.format`), else the query's.
    pub format: Option<ImageFormat>,
    /// `concurrent_requests` (0: no limit): GetMap requests at once to the host of `url`,
    /// among the sources and processes sharing `lock_dir` ([`RequestLimit`]).
    pub concurrent_requests: usize,
    /// `globals.cache.lock_dir`, where the `concurrent_requests` slots are; `None`: the limit
    /// holds in this source only.
    pub lock_dir: Option<std::path::PathBuf>,
    /// How long a request waits for a slot (`http.client_timeout`).
    pub lock_timeout: std::time::Duration,
    /// More codes with north/east axis order for 1.3.0 (MapProxy's `srs.axis_order_ne`).
    pub axis_order_ne: Vec<u32>,
    /// Codes with east/north axis order even if listed as north/east (`srs.axis_order_en`).
    pub axis_order_en: Vec<u32>,
    /// `wms_opts.featureinfo`: GetFeatureInfo is forwarded to this source.
    pub featureinfo: bool,
    /// `wms_opts.featureinfo_format`: the `info_format` asked for (and the type the answer
    /// is read as), instead of the client's.
    pub featureinfo_format: Option<String>,
    /// `wms_opts.query_layers` (default: `req.layers`).
    pub query_layers: Option<String>,
    /// `image.transparent_color` and its tolerance: pixels of that colour (each channel
    /// within the tolerance) are made transparent (MapProxy's `make_transparent`).
    pub transparent_color: Option<([u8; 3], f64)>,
    /// `forward_req_params`: parameters of the client's GetMap passed on (names compared
    /// without regard to case).
    pub forward_req_params: Vec<String>,
    /// `type: arcgis`: maps from `url`'s REST export, feature info from its identify
    /// ([`super::arcgis`]); `url` is the export endpoint.
    pub arcgis: Option<super::arcgis::ArcGisConf>,
    /// How a map asked in an SRS not among `supported_srs` is reprojected from one that is
    /// (the source's image options: `globals.image.resampling_method`).
    pub resampling: crate::image::transform::Resampling,
    /// The source's image options' `transparent` (how a paletted answer is opened before
    /// reprojecting).
    pub image_transparent: bool,
}

impl WmsSourceConf {
    /// A 1.1.1 source of `url` with `req` parameters and MapProxy's defaults otherwise.
    pub fn new(url: impl Into<String>, req: Vec<(String, String)>) -> WmsSourceConf {
        WmsSourceConf {
            url: url.into(),
            req,
            version: WmsVersion::V1_1_1,
            supported_srs: Vec::new(),
            supported_formats: Vec::new(),
            format: None,
            concurrent_requests: 0,
            lock_dir: None,
            lock_timeout: std::time::Duration::from_secs(60),
            axis_order_ne: Vec::new(),
            axis_order_en: Vec::new(),
            featureinfo: false,
            featureinfo_format: None,
            query_layers: None,
            transparent_color: None,
            forward_req_params: Vec::new(),
            arcgis: None,
            resampling: crate::image::transform::Resampling::Bicubic,
            image_transparent: false,
        }
    }
}

/// A GetFeatureInfo request to a source (MapProxy's `InfoQuery`), bbox in east/north order.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoQuery {
    pub bbox: crate::grid::Bbox,
    pub size: (u32, u32),
    /// EPSG code.
    pub srs: u32,
    /// The queried pixel; `pos_float`: written with a decimal point (MapProxy keeps `x`/`y`
    /// as floats when the client sent one).
    pub pos: (f64, f64),
    pub pos_float: bool,
    /// The client's `INFO_FORMAT`.
    pub info_format: Option<String>,
    /// The client's `FORMAT`.
    pub format: Option<String>,
    pub feature_count: Option<String>,
}

/// A `type: wms` source.
pub struct WmsSource {
    conf: WmsSourceConf,
    /// `coverage`: outside it a request is answered blank without asking the upstream.
    coverage: Option<std::sync::Arc<crate::coverage::Coverage>>,
    ne: BTreeSet<u32>,
    http: SourceHttp,
    on_error: Option<OnError>,
    limit: Option<RequestLimit>,
    /// A layer's direct source: a format not in `req` is added after `srs`.
    format_last: bool,
    /// `min_res`/`max_res` (or the scales): no image outside ([`MapSource::blank_for`]).
    res_range: Option<crate::grid::ResRange>,
    /// `supported_srs` looked up once, for [`WmsSource::fetch_transformed`].
    supported: Vec<std::sync::Arc<crate::srs::Srs>>,
}

/// Case-insensitive ordered parameters (MapProxy's `NoCaseMultiDict`, one value per key).
pub(super) struct Params(pub(super) Vec<(String, String)>);

impl Params {
    pub(super) fn set(&mut self, key: &str, value: String) {
        match self.0.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
            Some(kv) => kv.1 = value,
            None => self.0.push((key.to_owned(), value)),
        }
    }
    fn has(&self, key: &str) -> bool {
        self.0.iter().any(|(k, _)| k.eq_ignore_ascii_case(key))
    }
    fn remove(&mut self, key: &str) -> Option<String> {
        let i = self
            .0
            .iter()
            .position(|(k, _)| k.eq_ignore_ascii_case(key))?;
        Some(self.0.remove(i).1)
    }
}

impl WmsSource {
    pub fn new(conf: WmsSourceConf, http: SourceHttp, on_error: Option<OnError>) -> WmsSource {
        let mut ne: BTreeSet<u32> = DEFAULT_AXIS_ORDER_NE.into_iter().collect();
        ne.extend(conf.axis_order_ne.iter().copied());
        for c in &conf.axis_order_en {
            ne.remove(c);
        }
        let limit = (conf.concurrent_requests > 0).then(|| match &conf.lock_dir {
            Some(dir) => {
                RequestLimit::shared(conf.concurrent_requests, dir, &conf.url, conf.lock_timeout)
            }
            None => RequestLimit::local(conf.concurrent_requests),
        });
        // the app checks each code when it reads the YAML
        let supported = conf
            .supported_srs
            .iter()
            .filter_map(|c| crate::srs::Srs::get(&format!("EPSG:{c}")).ok())
            .collect();
        WmsSource {
            supported,
            conf,
            coverage: None,
            ne,
            http,
            on_error,
            limit,
            format_last: false,
            res_range: None,
        }
    }

    pub fn conf(&self) -> &WmsSourceConf {
        &self.conf
    }

    /// This source limited to `coverage` (MapProxy's source `coverage:`).
    /// As a WMS layer's direct source (a layer's `sources`, a cache's
    /// `use_direct_from_level`): MapProxy builds it without a format parameter
    /// (config/configuration/source.py `source()` without params), so the client adds the
    /// map's format after `srs` (client/wms.py:102), where a cache's source has it after
    /// `req`'s own parameters.
    pub fn with_format_last(mut self) -> WmsSource {
        self.format_last = true;
        self
    }

    pub fn with_coverage(mut self, coverage: crate::coverage::Coverage) -> WmsSource {
        self.coverage = Some(std::sync::Arc::new(coverage));
        self
    }

    /// This source limited to `range` (MapProxy's source `min_res`/`max_res`).
    pub fn with_res_range(mut self, range: Option<crate::grid::ResRange>) -> WmsSource {
        self.res_range = range;
        self
    }

    pub fn coverage(&self) -> Option<&crate::coverage::Coverage> {
        self.coverage.as_deref()
    }

    /// MapProxy's `combined_layer` (source/wms.py:192-236, client/wms.py:106-118): two
    /// sources of one URL, with the same `supported_srs`, `supported_formats`,
    /// `transparent_color` and coverage, asked in one request: this one's parameters with the
    /// other's `layers` appended. `None` when they cannot be combined.
    pub fn combined(&self, other: &WmsSource) -> Option<WmsSource> {
        let (a, b) = (&self.conf, &other.conf);
        // ArcGISClient.combined_client: never
        if a.arcgis.is_some() || b.arcgis.is_some() {
            return None;
        }
        let same_coverage = match (&self.coverage, &other.coverage) {
            (None, None) => true,
            (Some(x), Some(y)) => x.same_area(y),
            _ => false,
        };
        if a.url != b.url
            || a.supported_srs != b.supported_srs
            || a.supported_formats != b.supported_formats
            || a.transparent_color != b.transparent_color
            || !same_coverage
        {
            return None;
        }
        let layers = |c: &WmsSourceConf| {
            c.req
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("layers"))
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let joined = match (layers(a), layers(b)) {
            (Some(x), Some(y)) => format!("{x},{y}"),
            (x, y) => x.or(y).unwrap_or_default(),
        };
        let mut conf = a.clone();
        match conf
            .req
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case("layers"))
        {
            Some(kv) => kv.1 = joined,
            None => conf.req.insert(0, ("layers".to_string(), joined)),
        }
        Some(WmsSource {
            conf,
            coverage: self.coverage.clone(),
            ne: self.ne.clone(),
            http: self.http.clone(),
            on_error: self.on_error.clone(),
            limit: self.limit.clone(),
            format_last: self.format_last,
            // the layers outside their res_range are filtered out before (source/wms.py:233)
            res_range: None,
            supported: self.supported.clone(),
        })
    }

    /// MapProxy's `WMSSource.get_map` with a coverage: blank outside it (no request), only
    /// the part inside its bbox asked for (`_get_sub_query`), cleared outside the polygons
    /// with `clip`.
    async fn fetch_covered(
        &self,
        cov: &crate::coverage::Coverage,
        query: &MapQuery,
        client_params: &[(String, String)],
    ) -> Result<SourceImage, SourceError> {
        let srs = crate::srs::Srs::get(&format!("EPSG:{}", query.srs))
            .map_err(|e| SourceError::new(e.to_string()))?;
        let blank = |size: (u32, u32)| -> Result<SourceImage, SourceError> {
            let img = crate::image::blank_image(size.0.max(1), size.1.max(1), [255, 255, 255, 0]);
            encode_png(&img).map(SourceImage::drawn_png)
        };
        if !cov.intersects(query.bbox, &srs) {
            return blank(query.size);
        }
        let inside = cov.bbox_contains(query.bbox, &srs);
        if inside && !cov.clip {
            return self.fetch_map(query, client_params).await;
        }
        let (img, offset) = if inside {
            (self.fetch_map(query, client_params).await?, (0, 0))
        } else {
            let Some(ext) = cov.extent_in(&srs) else {
                return blank(query.size);
            };
            let (size, offset, bbox) =
                crate::image::transform::bbox_position_in_image(query.bbox, query.size, ext);
            if size.0 == 0 || size.1 == 0 {
                return blank(query.size);
            }
            let sub = MapQuery {
                bbox,
                size,
                ..query.clone()
            };
            (self.fetch_map(&sub, client_params).await?, offset)
        };
        let clip = if cov.clip {
            cov.geometry.in_srs(&srs)
        } else {
            None
        };
        let (size, bbox, cacheable) = (query.size, query.bbox, img.cacheable);
        crate::image::cpu_bound(move || -> Result<SourceImage, SourceError> {
            let part =
                crate::image::decode(&img.data).map_err(|e| SourceError::new(e.to_string()))?;
            let mut full = crate::image::blank_image(size.0, size.1, [255, 255, 255, 0]);
            crate::image::paste(&mut full, &part, offset.0, offset.1);
            if let Some(g) = &clip {
                crate::image::mask::mask_outside(&mut full, bbox, g);
            }
            let mut out = SourceImage::drawn_png(encode_png(&full)?);
            out.cacheable = cacheable;
            Ok(out)
        })
        .await
        .map_err(|e| SourceError::new(e.to_string()))?
    }

    /// The format asked for: the source's, else the query's; the first supported one when
    /// that is not supported.
    pub fn request_format(&self, query: &MapQuery) -> ImageFormat {
        let f = self
            .conf
            .format
            .clone()
            .unwrap_or_else(|| query.format.clone());
        match self.conf.supported_formats.first() {
            Some(first) if !self.conf.supported_formats.contains(&f) => first.clone(),
            _ => f,
        }
    }

    /// The GetMap URL for `query` (in a supported SRS: [`WmsSource::get_map`] reprojects
    /// others).
    pub fn get_map_url(&self, query: &MapQuery) -> Result<String, SourceError> {
        self.get_map_url_forwarding(query, &[])
    }

    /// [`get_map_url`](Self::get_map_url) with the client's parameters named in
    /// `forward_req_params` added (MapProxy's `dimensions_for_params`).
    pub fn get_map_url_forwarding(
        &self,
        query: &MapQuery,
        client_params: &[(String, String)],
    ) -> Result<String, SourceError> {
        let format = self.request_format(query);
        if self.conf.arcgis.is_some() {
            return Ok(super::arcgis::export_url(
                &self.conf.url,
                &self.conf.req,
                &format,
                query,
            ));
        }
        let mut p = Params(
            self.conf
                .req
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("url"))
                .cloned()
                .collect(),
        );
        let format_last = self.format_last && self.conf.format.is_none() && !p.has("format");
        if !format_last {
            p.set("format", format.mime_type());
        }
        p.set("bbox", self.axis_bbox(query.bbox, query.srs));
        p.set("width", query.size.0.to_string());
        p.set("height", query.size.1.to_string());
        p.set("srs", format!("EPSG:{}", query.srs));
        if format_last {
            p.set("format", format.mime_type());
        }
        p.set("request", "GetMap".into());
        p.set("version", self.conf.version.as_str().into());
        p.set("service", "WMS".into());
        if !p.has("styles") {
            p.set("styles", String::new());
        }
        // by the configured name (MapProxy: `query.dimensions[name] = params[name]`)
        for f in &self.conf.forward_req_params {
            if let Some((_, v)) = client_params
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(f))
            {
                p.set(f, v.clone());
            }
        }
        Ok(self.finish_url(p))
    }

    /// `srs` → `crs` for 1.3.0, the query string written as MapProxy writes it, appended to
    /// the URL.
    fn finish_url(&self, mut p: Params) -> String {
        if self.conf.version == WmsVersion::V1_3_0 {
            if let Some(srs) = p.remove("srs") {
                p.set("crs", srs);
            }
        }
        query_url(&self.conf.url, &p)
    }

    fn axis_bbox(&self, b: crate::grid::Bbox, srs: u32) -> String {
        let b = if self.conf.version == WmsVersion::V1_3_0 && self.ne.contains(&srs) {
            [b[1], b[0], b[3], b[2]]
        } else {
            b
        };
        b.iter()
            .map(|v| py_float_repr(*v))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The GetFeatureInfo URL (MapProxy's `WMSInfoClient._query_url`): the `req` parameters,
    /// `info_format`/`query_layers` from `wms_opts`, then bbox, size, position (`x`/`y`,
    /// 1.3.0 `i`/`j`), `feature_count`, `query_layers` (else `req.layers`), the client's
    /// `info_format`, a `format` (the client's, else `image/png`), the SRS.
    pub fn get_info_url(&self, q: &InfoQuery) -> String {
        if let Some(a) = &self.conf.arcgis {
            return super::arcgis::identify_url(a, &self.conf.req, q);
        }
        let mut p = Params(
            self.conf
                .req
                .iter()
                .filter(|(k, _)| !k.eq_ignore_ascii_case("url"))
                .cloned()
                .collect(),
        );
        if let Some(f) = &self.conf.format {
            p.set("format", f.mime_type());
        }
        if let Some(f) = &self.conf.featureinfo_format {
            p.set("info_format", f.clone());
        }
        if let Some(l) = &self.conf.query_layers {
            p.set("query_layers", l.clone());
        }
        p.set("bbox", self.axis_bbox(q.bbox, q.srs));
        p.set("width", q.size.0.to_string());
        p.set("height", q.size.1.to_string());
        let coord = |v: f64| {
            if q.pos_float {
                py_float_repr(v)
            } else {
                format!("{}", v as i64)
            }
        };
        let (xk, yk) = if self.conf.version == WmsVersion::V1_3_0 {
            ("i", "j")
        } else {
            ("x", "y")
        };
        p.set(xk, coord(q.pos.0));
        p.set(yk, coord(q.pos.1));
        if let Some(c) = &q.feature_count {
            p.set("feature_count", c.clone());
        }
        if !p.has("query_layers") {
            let layers =
                p.0.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("layers"))
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default();
            p.set("query_layers", layers);
        }
        if !p.has("info_format") {
            if let Some(f) = &q.info_format {
                p.set("info_format", f.clone());
            }
        }
        if !p.has("format") {
            p.set(
                "format",
                q.format.clone().unwrap_or_else(|| "image/png".into()),
            );
        }
        p.set("srs", format!("EPSG:{}", q.srs));
        p.set("request", "GetFeatureInfo".into());
        p.set("version", self.conf.version.as_str().into());
        p.set("service", "WMS".into());
        if !p.has("styles") {
            p.set("styles", String::new());
        }
        self.finish_url(p)
    }

    /// The GetLegendGraphic URL of one upstream layer (MapProxy's `WMSLegendClient`): the
    /// `req` parameters without `layers`, `layer`, `format` (the source's, else PNG),
    /// `scale` when asked, then `request`, `service`, `sld_version`, `version`, `styles`.
    pub fn get_legend_url(&self, layer: &str, scale: Option<f64>) -> String {
        let mut p = Params(
            self.conf
                .req
                .iter()
                .filter(|(k, _)| {
                    !k.eq_ignore_ascii_case("url") && !k.eq_ignore_ascii_case("layers")
                })
                .cloned()
                .collect(),
        );
        p.set("layer", layer.to_string());
        let format = self
            .conf
            .format
            .as_ref()
            .map(|f| f.mime_type())
            .unwrap_or_else(|| "image/png".into());
        p.set("format", format);
        // `if query.scale:` (client/wms.py:226-227): a scale of 0 is not sent
        if let Some(s) = scale.filter(|s| *s != 0.0) {
            p.set("scale", py_float_repr(s));
        }
        // then as MapProxy 7 sends them (checked against it; request/wms/__init__.py:497
        // fixed_params, then the template's version and empty styles)
        p.set("request", "GetLegendGraphic".into());
        p.set("service", "WMS".into());
        p.set("sld_version", "1.1.0".into());
        p.set("version", self.conf.version.as_str().into());
        if !p.has("styles") {
            p.set("styles", String::new());
        }
        self.finish_url(p)
    }

    /// A legend image of one upstream layer; an answer that is not an image is an error
    /// (`no image returned from source WMS`).
    pub async fn get_legend(
        &self,
        layer: &str,
        scale: Option<f64>,
    ) -> Result<bytes::Bytes, SourceError> {
        let url = self.get_legend_url(layer, scale);
        let resp = self.http.open(&url).await.map_err(SourceError::from)?;
        if let Some(ct) = content_type(resp.headers()) {
            if !ct.starts_with("image/") {
                return Err(SourceError::new("no image returned from source WMS"));
            }
        }
        Ok(resp.into_body())
    }

    /// GetFeatureInfo (MapProxy's `WMSInfoClient.get_info`): the document, typed by
    /// `wms_opts.featureinfo_format`, else the answer's Content-Type, else the client's
    /// `INFO_FORMAT`.
    pub async fn get_info(
        &self,
        q: &InfoQuery,
    ) -> Result<crate::featureinfo::InfoDoc, SourceError> {
        let url = self.get_info_url(q);
        // no `concurrent_requests` slot: MapProxy's WMSInfoClient takes none
        let resp = self.http.open(&url).await.map_err(|e| {
            log::warn!(target: "mapproxy.source.wms", "could not retrieve feature info: {}", e.full_msg);
            SourceError::from(e)
        })?;
        // an ArcGIS identify is always read as the client asked (ArcGISInfoClient.get_info:
        // ArcGIS servers answer text/plain whatever they send)
        let from_answer = if self.conf.arcgis.is_some() {
            None
        } else {
            content_type(resp.headers())
        };
        let mime = self
            .conf
            .featureinfo_format
            .clone()
            .or(from_answer)
            .or_else(|| q.info_format.clone())
            .unwrap_or_default();
        let text = String::from_utf8_lossy(resp.body()).into_owned();
        Ok(crate::featureinfo::InfoDoc::new(text, &mime))
    }
}

impl MapSource for WmsSource {
    fn blank_for(&self, query: &MapQuery) -> bool {
        super::outside_res_range(self.res_range.as_ref(), query)
    }

    fn get_map<'a>(
        &'a self,
        query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        self.get_map_forwarding(query, &[])
    }

    fn get_map_forwarding<'a>(
        &'a self,
        query: &'a MapQuery,
        client_params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        Box::pin(async move {
            let supported =
                self.conf.supported_srs.is_empty() || self.conf.supported_srs.contains(&query.srs);
            let img = if !supported {
                self.fetch_transformed(query, client_params).await?
            } else {
                match &self.coverage {
                    Some(cov) => self.fetch_covered(cov, query, client_params).await?,
                    None => self.fetch_map(query, client_params).await?,
                }
            };
            match self.conf.transparent_color {
                Some((color, tolerance)) => {
                    crate::image::cpu_bound(move || make_transparent(&img, color, tolerance))
                        .await
                        .map_err(|e| SourceError::new(e.to_string()))?
                }
                None => Ok(img),
            }
        })
    }
}

/// `url` + `?` (or `&` when it has a `?` already, nothing when it ends with one) + the
/// parameters, each value quoted as Python's `quote(value, safe=',')` (MapProxy's
/// `BaseRequest.complete_url` and `RequestParams.query_string`).
pub(super) fn query_url(url: &str, p: &Params) -> String {
    let qs =
        p.0.iter()
            .map(|(k, v)| format!("{k}={}", py_quote(v)))
            .collect::<Vec<_>>()
            .join("&");
    let delim = if url.ends_with('?') {
        ""
    } else if url.contains('?') {
        "&"
    } else {
        "?"
    };
    format!("{url}{delim}{qs}")
}

/// MapProxy's `make_transparent`: pixels whose channels are each within `tolerance` of
/// `color` get alpha 0 (others keep theirs); the result is a PNG.
fn make_transparent(
    img: &SourceImage,
    color: [u8; 3],
    tolerance: f64,
) -> Result<SourceImage, SourceError> {
    let mut rgba = crate::image::decode(&img.data).map_err(|e| SourceError::new(e.to_string()))?;
    for p in rgba.pixels_mut() {
        let hit = (0..3).all(|i| (f64::from(p.0[i]) - f64::from(color[i])).abs() <= tolerance);
        if hit {
            p.0[3] = 0;
        }
    }
    let data = encode_png(&rgba)?;
    Ok(SourceImage {
        data,
        format: Some(ImageFormat::png()),
        cacheable: img.cacheable,
        drawn: true,
    })
}

/// A 32 bit PNG of `img` (a source's image after a change: transparent colour, coverage).
fn encode_png(img: &crate::image::RgbaImage) -> Result<bytes::Bytes, SourceError> {
    let mut opts = crate::image::ImageOpts::new(ImageFormat::png());
    opts.transparent = true;
    opts.paletted = false;
    crate::image::encode(img, &opts).map_err(|e| SourceError::new(e.to_string()))
}

/// The supported SRS a map in `target` is asked in (MapProxy's `SupportedSRS.best_srs`
/// without `preferred_src_proj`): the first with the target's kind (geographic or
/// projected), else the first.
pub fn best_srs(
    supported: &[std::sync::Arc<crate::srs::Srs>],
    target: &crate::srs::Srs,
) -> Option<std::sync::Arc<crate::srs::Srs>> {
    if let Some(s) = supported.iter().find(|s| ***s == *target) {
        return Some(s.clone());
    }
    supported
        .iter()
        .find(|s| s.is_latlong() == target.is_latlong())
        .or_else(|| supported.first())
        .cloned()
}

/// The size a map of `dst_size` is asked for from `src_bbox` when it is reprojected
/// (MapProxy's `WMSLikeSource._get_transformed`): the target's size along the axis with the
/// finer resolution, the other from the source bbox's aspect ratio, rounded half up.
pub fn reprojected_size(src_bbox: crate::grid::Bbox, dst_size: (u32, u32)) -> (u32, u32) {
    let (w, h) = (src_bbox[2] - src_bbox[0], src_bbox[3] - src_bbox[1]);
    let ratio = w / h;
    let (dw, dh) = (f64::from(dst_size.0), f64::from(dst_size.1));
    // `int(x + 0.5)` of a positive size; `as` saturates a non-finite or huge one
    if w / dw < h / dh {
        (dst_size.0, (dw / ratio + 0.5) as u32)
    } else {
        ((dh * ratio + 0.5) as u32, dst_size.1)
    }
}

impl WmsSource {
    /// MapProxy's `_get_transformed`: a map in an SRS the upstream does not serve is asked in
    /// the best supported one ([`best_srs`]) over the target's bbox transformed, at
    /// [`reprojected_size`], and reprojected with the source's resampling. The image keeps
    /// the mode MapProxy's has (a paletted answer becomes RGB, an RGB one stays RGB: no alpha
    /// channel is added for the corners outside the source, which are black as Pillow's).
    async fn fetch_transformed(
        &self,
        query: &MapQuery,
        client_params: &[(String, String)],
    ) -> Result<SourceImage, SourceError> {
        use crate::srs::Srs;
        let srs_err = |e: crate::srs::SrsError| SourceError::new(e.to_string());
        let dst = Srs::get(&format!("EPSG:{}", query.srs)).map_err(srs_err)?;
        let src_srs = best_srs(&self.supported, &dst)
            .ok_or_else(|| SourceError::new("no supported SRS for transformation available"))?;
        let src_bbox = dst
            .transform_bbox_to(&src_srs, query.bbox)
            .map_err(srs_err)?;
        let sub = MapQuery {
            bbox: src_bbox,
            size: reprojected_size(src_bbox, query.size),
            srs: src_srs.epsg(),
            ..query.clone()
        };
        let img = match &self.coverage {
            Some(cov) => self.fetch_covered(cov, &sub, client_params).await?,
            None => self.fetch_map(&sub, client_params).await?,
        };
        let (dst_bbox, dst_size, resampling) = (query.bbox, query.size, self.conf.resampling);
        let transparent = self.conf.image_transparent;
        crate::image::cpu_bound(move || -> Result<SourceImage, SourceError> {
            use crate::image::transform::{keeps_pixels, transform, Warp};
            let src =
                crate::image::decode(&img.data).map_err(|e| SourceError::new(e.to_string()))?;
            let warp = Warp {
                src_bbox,
                src_srs: &src_srs,
                dst_size,
                dst_bbox,
                dst_srs: &dst,
                resampling,
            };
            let opened = crate::image::mode::opened_mode(&img.data, transparent);
            let mode = if keeps_pixels(src.dimensions(), &warp) {
                opened
            } else {
                crate::image::mode::resampled_mode(opened)
            };
            // a paletted answer moved pixel by pixel (nearest, or a crop) stays paletted: its
            // indices moved, its palette kept, written as Pillow writes a P image
            let keeps = keeps_pixels(src.dimensions(), &warp);
            let indexed = (keeps && opened == crate::image::ImageMode::P)
                .then(|| crate::image::Indexed::decode(&img.data))
                .flatten()
                .filter(|p| (p.width, p.height) == src.dimensions());
            let data = match indexed {
                Some(p) => {
                    let moved = crate::image::Indexed::from_moved(
                        &transform(&p.index_image(), &warp),
                        p.palette.clone(),
                    );
                    crate::image::indexed::write_indexed_png(&moved).map(bytes::Bytes::from)
                }
                None => {
                    let out = transform(&src, &warp);
                    let mut opts = crate::image::ImageOpts::new(ImageFormat::png());
                    opts.transparent = true;
                    opts.paletted = false;
                    crate::image::encode_mode(&out, mode, &opts)
                }
            }
            .map_err(|e| SourceError::new(e.to_string()))?;
            let mut out = SourceImage::drawn_png(data);
            out.cacheable = img.cacheable;
            Ok(out)
        })
        .await
        .map_err(|e| SourceError::new(e.to_string()))?
    }

    async fn fetch_map(
        &self,
        query: &MapQuery,
        client_params: &[(String, String)],
    ) -> Result<SourceImage, SourceError> {
        {
            let url = self.get_map_url_forwarding(query, client_params)?;
            let _permit = match &self.limit {
                Some(l) => Some(l.acquire().await.map_err(|e| {
                    log::warn!(target: "mapproxy.source.wms", "{e}");
                    SourceError::new(e.to_string())
                })?),
                None => None,
            };
            let resp = match self.http.open(&url).await {
                Ok(r) => r,
                Err(e) => {
                    if let Some(r) = self
                        .on_error
                        .as_ref()
                        .and_then(|h| h.handle(e.status, query.size))
                    {
                        return r;
                    }
                    log::warn!(target: "mapproxy.source.wms", "could not retrieve WMS map: {}", e.full_msg);
                    return Err(e.into());
                }
            };
            let ct = content_type(resp.headers());
            if let Some(ct) = &ct {
                if !ct.starts_with("image/") {
                    let body = resp.body();
                    let max = if ct.starts_with("text/") || ct.starts_with("application/vnd.ogc") {
                        8000
                    } else {
                        100
                    };
                    let shown = String::from_utf8_lossy(&body[..body.len().min(max)]);
                    let truncated = if body.len() > max {
                        " [output truncated]"
                    } else {
                        ""
                    };
                    log::warn!(
                        target: "mapproxy.source.wms",
                        "no image returned from source WMS: {url}, response was: '{shown}'{truncated}"
                    );
                    return Err(SourceError::new(format!(
                        "no image returned from source WMS: {url}"
                    )));
                }
            }
            Ok(SourceImage::new(
                resp.into_body(),
                ct.as_deref().and_then(image_format_of),
            ))
        }
    }
}
