//! A MapProxy app from a `mapproxy.yaml`: the configuration compiled, in this one place, into
//! caches, sources, tile managers and the layers the services serve.
//!
//! What is built today: `file` caches (every layout) of `tile`, `wms` and `debug` sources
//! and of other caches (several merged in order: [`MergedSource`]; caches as sources:
//! [`crate::source::CacheSource`], built after the caches they name), tile layers from layers
//! whose source is a cache, the services `tms` (`/tms`, `/tiles`), `kml`, `wmts` (REST and
//! KVP), `wms` and `demo`. Everything else the YAML may say is an error naming the file, line
//! and YAML path ("not supported yet"), never silently ignored: other cache and source types.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use indexmap::IndexMap;
use mapproxy_serve_core::app::App;
use mapproxy_serve_core::error::{ConfigError, ConfigErrors, Location};

use crate::cache::{DirectoryLayout, FileCache, LinkMode, TileCache};
use crate::config::yaml::{Node, Value};
use crate::config::{self, CacheConf, LayerConf, LinkSingleColor, MapProxyConf, SourceKind};
use crate::grid::{GridSet, Origin, TileGrid};
use crate::image::transform::Resampling;
use crate::image::{ImageFormat, ImageOpts};
use crate::lock::TileLocker;
use crate::pynum::Num;
use crate::service::demo::{DemoInput, DemoServices, DemoTileLayer};
use crate::service::wms::{
    CacheLayer, Extent as WmsExtent, MapLayer, Version as WmsVersionNum, WmsConfig, WmsLayer,
    WmsService,
};
use crate::service::{KmlConfig, MapProxyService, ServiceConfig, TileLayer, TmsConfig, WmtsConfig};
use crate::source::{
    DebugSource, HttpOpts, MapSource, MergedSource, OnError, OnErrorResponse, SourceHttp,
    TileSource, TileUrlTemplate, WmsSource, WmsVersion,
};
use crate::srs::Srs;
use crate::tile_manager::{MetaSettings, TileManager};

/// A built MapProxy: the app and the files it was built from (the YAML and its `base:` files).
pub struct Built {
    pub app: App,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<ConfigError>,
    pub service: Arc<MapProxyService>,
}

/// Load `mapproxy.yaml` and build the app with the default options. Must run inside a tokio
/// runtime (the HTTP client).
pub fn build(path: &Path) -> Result<Built, ConfigErrors> {
    build_with(path, crate::service::DEFAULT_TRUSTED_PROXIES)
}

/// [`build`] with the peers whose forwarded headers are believed.
pub fn build_with(path: &Path, trusted_proxies: &str) -> Result<Built, ConfigErrors> {
    let loaded = config::load(path)?;
    // tagged sources (`wms:lyr1,lyr2`) as sources of their own
    let (conf, tag_errors) = crate::tagged::expand(&loaded.conf);
    let mut errors = Vec::new();
    let service = compile(&conf, trusted_proxies, &mut errors);
    crate::tagged::report(tag_errors, &mut errors);
    if !errors.is_empty() {
        return Err(ConfigErrors(errors));
    }
    let service = Arc::new(service);
    Ok(Built {
        app: service.clone().into_app(),
        files: loaded.files,
        warnings: loaded.warnings,
        service,
    })
}

fn err(loc: &Location, msg: impl Into<String>) -> ConfigError {
    loc.error(msg)
}

/// One cache in one grid, as the services see it.
struct CacheGrid {
    grid_name: String,
    grid: TileGrid,
    manager: Arc<TileManager>,
    format: ImageFormat,
    /// `max_tile_limit` of the cache (0: none).
    max_tile_limit: u32,
}

fn compile(
    conf: &MapProxyConf,
    trusted_proxies: &str,
    errors: &mut Vec<ConfigError>,
) -> MapProxyService {
    let mut grids = conf.grid_set();
    // A source type this crate cannot serve is an error even when no cache uses it yet, as
    // MapProxy fails on a source it cannot load.
    for (name, src) in &conf.sources {
        if let SourceKind::Other { type_name, .. } = &src.kind {
            errors.push(err(
                &src.loc,
                format!("source '{name}': type '{type_name}' is not supported yet"),
            ));
        }
    }
    errors.extend(refuse_unsupported(conf));
    let mut caches: IndexMap<String, Vec<CacheGrid>> = IndexMap::new();
    // a cache whose sources name other caches is built after them (MapProxy's CacheSource)
    for name in cache_build_order(conf, errors) {
        let Some(cache) = conf.caches.get(name) else {
            continue;
        };
        match compile_cache(conf, &mut grids, name, cache, &caches) {
            Ok(c) => {
                caches.insert(name.to_string(), c);
            }
            Err(e) => errors.push(e),
        }
    }
    // in the YAML's order again
    caches.sort_by_cached_key(|name, _| conf.caches.get_index_of(name));
    let mut layers = Vec::new();
    let mut demo_layers = Vec::new();
    let mut flat = Vec::new();
    flatten(&conf.layers, &mut flat);
    for layer in flat {
        let Some(name) = &layer.name else { continue };
        let (tile_sources, fi_only) = tile_layer_sources(conf, layer);
        let (legend_kvp, legend_rest) = wmts_legendurls(conf, layer);
        for src in tile_sources {
            let Some(cgs) = caches.get(src) else { continue };
            let info = match tile_layer_info(conf, src, &fi_only) {
                Ok(i) => i,
                Err(e) => {
                    errors.push(e);
                    Vec::new()
                }
            };
            for cg in cgs {
                let grid = Arc::new(cg.grid.clone());
                let title = layer.title.clone().unwrap_or_default();
                let tl = TileLayer::new(
                    name.clone(),
                    title,
                    cg.grid_name.clone(),
                    grid.clone(),
                    cg.format.clone(),
                    cg.manager.clone(),
                )
                .with_info(info.clone())
                .with_wmts_legendurls(legend_kvp.clone(), legend_rest.clone());
                let tl = match with_cache_extent(tl, conf, src) {
                    Ok(tl) => tl,
                    Err(e) => {
                        errors.push(e);
                        continue;
                    }
                };
                let tms_grid_names = conf.services.tms.as_ref().is_some_and(|t| t.use_grid_names);
                demo_layers.push(tl.demo_layer(&grid, tms_grid_names));
                layers.push(tl);
            }
        }
    }
    let s = &conf.services;
    let mut config = ServiceConfig {
        demo: s.demo,
        tms: s.tms.as_ref().map(|t| TmsConfig {
            use_grid_names: t.use_grid_names,
            origin: t.origin.as_deref().and_then(|o| Origin::parse(o).ok()),
        }),
        kml: s.kml.as_ref().map(|k| KmlConfig {
            use_grid_names: k.use_grid_names,
        }),
        wmts: s.wmts.as_ref().map(|w| {
            let mut c = WmtsConfig {
                restful: w.restful,
                kvp: w.kvp,
                ..WmtsConfig::default()
            };
            if let Some(t) = &w.restful_template {
                c.restful_template = t.clone();
            }
            if let Some(t) = &w.restful_featureinfo_template {
                c.restful_featureinfo_template = t.clone();
            }
            match wmts_info_formats(w.featureinfo_formats.as_ref()) {
                Ok(f) => c.featureinfo_formats = f,
                Err(e) => errors.push(e),
            }
            c
        }),
        wms: s.wms.is_some(),
        max_age: (conf.globals.tiles_expires_hours.max(0.0) * 3600.0) as u64,
        access_control_allow_origin: conf.globals.http.access_control_allow_origin.clone(),
        ..ServiceConfig::default()
    };
    config.trusted_proxies = trusted_proxies.to_string();
    if let Some(wms) = &s.wms {
        config.md = wms_md(wms);
    }
    if let Some(w) = &s.wmts {
        if let Err(e) = crate::service::restful_template_regex(&config_template(&config, w)) {
            errors.push(ConfigError::new(format!(
                "services.wmts.restful_template: {e}"
            )));
        }
        if let Some(c) = &config.wmts {
            if let Err(e) =
                crate::service::restful_featureinfo_template_regex(&c.restful_featureinfo_template)
            {
                errors.push(ConfigError::new(format!(
                    "services.wmts.restful_featureinfo_template: {e}"
                )));
            }
        }
    }
    let tms_on = config.tms.is_some();
    let wmts = config.wmts.clone();
    let wms = s
        .wms
        .as_ref()
        .and_then(|w| compile_wms(conf, w, &caches, errors));
    let mut demo = DemoInput {
        services: DemoServices {
            ogcapi: false,
            wms: false,
            wms_111: false,
            wmts_kvp: wmts.as_ref().is_some_and(|w| w.kvp),
            wmts_restful: wmts.as_ref().is_some_and(|w| w.restful),
            tms: tms_on,
        },
        tile_layers: demo_layers,
        restful_template: wmts
            .map(|w| w.restful_template)
            .unwrap_or_else(|| crate::service::demo::DEFAULT_RESTFUL_TEMPLATE.to_string()),
        ..DemoInput::default()
    };
    if let Some(wms) = &wms {
        demo.services.wms = true;
        demo.services.wms_111 = wms.config.versions.contains(&WmsVersionNum::V111);
        demo.wms_srs = wms.config.srs.clone();
        demo.wms_formats = wms.config.image_formats.clone();
        demo.wms_layers = demo_wms_layers(wms);
    }
    let service = MapProxyService::new(config, layers).with_demo(demo);
    match wms {
        Some(wms) => service.with_wms(wms),
        None => service,
    }
}

/// Keys the model reads whose behaviour is not implemented, each an error naming where it is
/// set and its YAML path ("... is not supported yet"), so that none is silently ignored.
fn refuse_unsupported(conf: &MapProxyConf) -> Vec<ConfigError> {
    let mut out: Vec<ConfigError> = conf
        .globals
        .unsupported
        .iter()
        .map(|(loc, path)| err(loc, format!("{path} is not supported yet")))
        .collect();
    let g = &conf.globals;
    for (name, src) in &conf.sources {
        let refuse = |out: &mut Vec<ConfigError>, loc: &Location, key: &str| {
            out.push(err(
                loc,
                format!("sources.{name}.{key} is not supported yet"),
            ));
        };
        let (http, on_errors, image) = match &src.kind {
            SourceKind::Wms(w) => {
                // MapProxy's WMS client POSTs with `method: POST`, and with `AUTO` when the
                // request has an `sld_body` (client/wms.py:45-53); this one only GETs
                let method = w.http.method.as_deref().unwrap_or(g.http.method.as_str());
                if method == "POST" {
                    refuse(&mut out, &src.loc, "http.method: POST");
                } else if method == "AUTO" && w.params.keys().any(|k| k == "sld_body") {
                    refuse(&mut out, &src.loc, "req.sld_body (sent by POST)");
                }
                (&w.http, &w.on_error, &w.image)
            }
            SourceKind::Tile(t) => {
                if t.request_format.is_some() {
                    refuse(&mut out, &src.loc, "request_format");
                }
                (&t.http, &t.on_error, &t.image)
            }
            SourceKind::Debug | SourceKind::Other { .. } => continue,
        };
        if http.manage_cookies == Some(true) {
            refuse(&mut out, &src.loc, "http.manage_cookies");
        }
        for e in on_errors.iter().filter(|e| e.authorize_stale) {
            refuse(
                &mut out,
                &e.loc,
                &format!("on_error.{}.authorize_stale", e.status),
            );
        }
        // a WMS source's transparent_color is implemented, no other image option of a source
        if let Some(Node {
            value: Value::Map(m),
            ..
        }) = image
        {
            let wms = matches!(src.kind, SourceKind::Wms(_));
            for (key, n) in m {
                if !(wms
                    && matches!(
                        key.as_str(),
                        "transparent_color" | "transparent_color_tolerance"
                    ))
                {
                    refuse(&mut out, &n.loc, &format!("image.{key}"));
                }
            }
        }
    }
    // bulk_meta_tiles: the meta tiles of tile sources fetched tile by tile
    // (cache/tile_manager.py:62-64; no effect on sources that make meta tiles)
    for (name, cache) in &conf.caches {
        let tile_sources = !cache.sources.is_empty()
            && cache.sources.iter().all(|s| {
                matches!(
                    conf.sources.get(s).map(|s| &s.kind),
                    Some(SourceKind::Tile(t)) if !t.common.seed_only || conf.seeding
                )
            });
        if cache.bulk_meta_tiles && tile_sources && cache.meta_size != (1, 1) {
            out.push(err(
                &cache.loc,
                format!("cache '{name}': bulk_meta_tiles is not supported yet"),
            ));
        }
    }
    fn layers(list: &[LayerConf], path: &str, out: &mut Vec<ConfigError>) {
        for (i, l) in list.iter().enumerate() {
            let here = format!("{path}[{i}]");
            if let Some(n) = &l.dimensions {
                out.push(err(
                    &n.loc,
                    format!("{here}.dimensions is not supported yet"),
                ));
            }
            layers(&l.layers, &format!("{here}.layers"), out);
        }
    }
    layers(&conf.layers, "layers", &mut out);
    for (name, n) in &conf.services.other {
        out.push(err(&n.loc, format!("services.{name} is not supported yet")));
    }
    out
}

/// A tile layer's WMTS `LegendURL` templates (KVP, RESTful): its `wmts_kvp_legendurl` and
/// `wmts_rest_legendurl`, else, for a layer with a `legendurl` while the WMS is on, the WMS
/// GetLegendGraphic of the highest WMS version (config/configuration/layer.py:207-219).
fn wmts_legendurls(conf: &MapProxyConf, l: &LayerConf) -> (Option<String>, Option<String>) {
    let mut kvp = l.wmts_kvp_legendurl.clone();
    let mut rest = l.wmts_rest_legendurl.clone();
    if let (Some(_), Some(wms)) = (&l.legendurl, &conf.services.wms) {
        // `versions` (default ['1.3.0']) sorted by their numbers, the last
        let key = |v: &String| -> Vec<u64> {
            v.split('.')
                .map(|u| u.trim().parse().unwrap_or(0))
                .collect()
        };
        let version = wms
            .versions
            .as_ref()
            .and_then(|v| v.iter().max_by_key(|v| key(v)).cloned())
            .unwrap_or_else(|| "1.3.0".to_string());
        let url = format!("{{base_url}}/service?service=WMS&amp;request=GetLegendGraphic&amp;version={version}&amp;format=image%2Fpng&amp;layer={{layer_name}}");
        kvp.get_or_insert_with(|| url.clone());
        rest.get_or_insert(url);
    }
    (kvp, rest)
}

/// The demo's WMS layers: every named layer, its SRS without reprojection (its caches'
/// grids, its direct sources' `supported_srs`) and its extent in each SRS of the WMS.
fn demo_wms_layers(wms: &WmsService) -> Vec<crate::service::demo::DemoWmsLayer> {
    fn walk(l: &WmsLayer, srs: &[String], out: &mut Vec<crate::service::demo::DemoWmsLayer>) {
        if let (Some(name), Some(ext)) = (&l.name, &l.extent) {
            let mut native: Vec<String> = Vec::new();
            for m in &l.map_layers {
                let codes: Vec<String> = match m {
                    MapLayer::Cache(c) => {
                        c.grids.iter().map(|g| g.srs.code().to_string()).collect()
                    }
                    MapLayer::Direct(d) => d
                        .supported_srs
                        .iter()
                        .map(|s| s.code().to_string())
                        .collect(),
                };
                for c in codes {
                    if !native.contains(&c) {
                        native.push(c);
                    }
                }
            }
            let extents = srs
                .iter()
                .filter_map(|code| {
                    let target = Srs::get(code).ok()?;
                    Some((code.clone(), ext.bbox_for(&target)?))
                })
                .collect();
            out.push(crate::service::demo::DemoWmsLayer {
                name: name.clone(),
                native_srs: native,
                extents,
            });
        }
        for c in &l.children {
            walk(c, srs, out);
        }
    }
    let mut out = Vec::new();
    walk(&wms.root, &wms.config.srs, &mut out);
    out
}

// ---- the WMS (services.wms): the layer tree over caches and direct sources ----

/// `services.wms` and `layers:` → the WMS; errors name the file, line and YAML path.
fn compile_wms(
    conf: &MapProxyConf,
    w: &config::WmsConf,
    caches: &IndexMap<String, Vec<CacheGrid>>,
    errors: &mut Vec<ConfigError>,
) -> Option<WmsService> {
    let mut wc = WmsConfig {
        md: wms_md(w),
        srs: w.srs.clone(),
        image_formats: w
            .image_formats
            .iter()
            .map(|f| crate::service::wms::mime_of_format(f))
            .collect(),
        strict: w.strict,
        concurrent_layer_renderer: w.concurrent_layer_renderer.max(1) as usize,
        on_source_errors_raise: w.on_source_errors == "raise",
        paletted: conf.globals.image.paletted,
        jpeg_quality: conf.globals.image.jpeg_quality,
        max_tile_age: (conf.globals.tiles_expires_hours.max(0.0) * 3600.0) as u64,
        ..WmsConfig::default()
    };
    if let Some(n) = &w.bbox_srs {
        match wms_bbox_srs(n) {
            // an empty list is the default one (`limit_srs_extents`, service/wms.py:468-481)
            Ok(b) if b.is_empty() => {}
            Ok(b) => wc.bbox_srs = b,
            Err(e) => errors.push(e),
        }
    }
    if let Some(types) = &w.featureinfo_types {
        wc.info_types.clear();
        for t in types {
            match crate::featureinfo::InfoType::parse(t) {
                Some(t) => wc.info_types.push(t),
                None => errors.push(ConfigError::new(format!(
                    "services.wms.featureinfo_types: expected text, html, xml or json, found '{t}'"
                ))),
            }
        }
    }
    if let Some(n) = &w.featureinfo_xslt {
        errors.push(err(
            &n.loc,
            "services.wms.featureinfo_xslt: XSLT transformation of feature info is not supported yet",
        ));
    }
    for (key, n) in [
        ("attribution", &w.attribution),
        ("inspire_md", &w.inspire_md),
    ] {
        if let Some(n) = n {
            errors.push(err(
                &n.loc,
                format!("services.wms.{key} is not supported yet"),
            ));
        }
    }
    for s in &wc.srs {
        if let Err(e) = Srs::get(s) {
            errors.push(ConfigError::new(format!("services.wms.srs: {e}")));
        }
    }
    match Resampling::parse(&conf.globals.image.resampling_method) {
        Some(r) => wc.resampling = r,
        None => errors.push(ConfigError::new(format!(
            "globals.image.resampling_method: expected nearest, bilinear or bicubic, found '{}'",
            conf.globals.image.resampling_method
        ))),
    }
    if let Some(vs) = &w.versions {
        let mut parsed = Vec::new();
        for v in vs {
            match WmsVersionNum::parse(v) {
                Some(p)
                    if [
                        WmsVersionNum::V100,
                        WmsVersionNum::V110,
                        WmsVersionNum::V111,
                        WmsVersionNum::V130,
                    ]
                    .contains(&p) =>
                {
                    parsed.push(p)
                }
                _ => errors.push(ConfigError::new(format!(
                    "services.wms.versions: expected 1.0.0, 1.1.0, 1.1.1 or 1.3.0, found '{v}'"
                ))),
            }
        }
        parsed.sort();
        if !parsed.is_empty() {
            wc.versions = parsed;
        }
    }
    wc.max_output_pixels = match &w.max_output_pixels.value {
        Value::Int(i) if *i > 0 => Some(*i as u64),
        Value::Seq(v) => match v.as_slice() {
            [a, b] => match (&a.value, &b.value) {
                (Value::Int(a), Value::Int(b)) if *a > 0 && *b > 0 => {
                    Some((*a as u64) * (*b as u64))
                }
                _ => None,
            },
            _ => None,
        },
        Value::Null => None,
        _ => {
            errors.push(err(
                &w.max_output_pixels.loc,
                "services.wms.max_output_pixels: expected a number of pixels or [width, height]",
            ));
            None
        }
    };
    let mut top = Vec::new();
    for l in &conf.layers {
        match wms_layer(conf, l, caches) {
            Ok(Some(layer)) => top.push(Arc::new(layer)),
            Ok(None) => {}
            Err(e) => errors.push(e),
        }
    }
    let mut root = if top.len() == 1 {
        match Arc::try_unwrap(top.remove(0)) {
            Ok(l) => l,
            Err(_) => return None,
        }
    } else {
        let extents: Vec<WmsExtent> = top.iter().filter_map(|l| l.extent.clone()).collect();
        WmsLayer {
            name: None,
            title: String::new(),
            md: Default::default(),
            map_layers: Vec::new(),
            own: false,
            info: Vec::new(),
            legends: Vec::new(),
            children: top,
            extent: WmsExtent::merge(&extents),
            min_res: None,
            max_res: None,
        }
    };
    if root.title.is_empty() {
        root.title = wc.md.title.clone();
    }
    if root.name.is_none() && root.children.is_empty() {
        return None;
    }
    Some(WmsService::new(wc, Arc::new(root)))
}

/// `services.wms.bbox_srs`: `['EPSG:3857', {srs: 'EPSG:25832', bbox: [...]}]`. An SRS named
/// twice keeps its first place and its last bbox (MapProxy's dict, `extents_for_srs`,
/// config/configuration/service.py:339-352).
fn wms_bbox_srs(n: &Node) -> Result<Vec<(String, Option<crate::pynum::NumBbox>)>, ConfigError> {
    let bad = |loc: &Location| {
        err(
            loc,
            "services.wms.bbox_srs: expected a list of SRS codes or {srs: CODE, bbox: [minx, miny, maxx, maxy]}",
        )
    };
    let Value::Seq(items) = &n.value else {
        return Err(bad(&n.loc));
    };
    let mut out: Vec<(String, Option<crate::pynum::NumBbox>)> = Vec::new();
    let mut set = |code: String, bbox| match out.iter_mut().find(|(c, _)| *c == code) {
        Some(e) => e.1 = bbox,
        None => out.push((code, bbox)),
    };
    for it in items {
        match &it.value {
            Value::Str(s) => {
                let (code, _) = crate::srs::parse_code(s).ok_or_else(|| bad(&it.loc))?;
                set(code, None);
            }
            Value::Map(m) => {
                let code = match m.get("srs").map(|v| &v.value) {
                    Some(Value::Str(s)) => crate::srs::parse_code(s).ok_or_else(|| bad(&it.loc))?.0,
                    _ => return Err(bad(&it.loc)),
                };
                // kept as written: MapProxy's MapExtent of the YAML's list
                // (config/configuration/service.py:339-352), ints printed as ints
                let nums: Vec<Num> = match m.get("bbox").map(|v| &v.value) {
                    Some(Value::Seq(v)) => v
                        .iter()
                        .filter_map(|x| match x.value {
                            Value::Int(i) => Some(Num::Int(i)),
                            Value::Float(f) => Some(Num::Float(f)),
                            _ => None,
                        })
                        .collect(),
                    _ => return Err(bad(&it.loc)),
                };
                let [a, b, c, d] = nums.as_slice() else {
                    return Err(bad(&it.loc));
                };
                set(code, Some([*a, *b, *c, *d]));
            }
            _ => return Err(bad(&it.loc)),
        }
    }
    Ok(out)
}

/// The extent of source `name` (MapProxy's `source.extent`): a WMS or tile source's coverage,
/// else a tile source's grid (its bbox, floats; `TiledSource`, source/tile.py:50), else the default
/// extent (`debug`, a WMS source without a coverage); `None` for no source of that name (a
/// cache used as a source: [`cache_as_source_extent`]).
fn source_extent(conf: &MapProxyConf, name: &str) -> Result<Option<WmsExtent>, ConfigError> {
    if let Some(sc) = conf.sources.get(name) {
        // a WMS or tile source's coverage (`coverage.extent if coverage else ...`)
        let common = match &sc.kind {
            SourceKind::Tile(t) => Some(&t.common),
            SourceKind::Wms(w) => Some(&w.common),
            _ => None,
        };
        if let Some(n) = common.and_then(|c| c.coverage.as_ref()) {
            let cov = crate::coverage::load(n, &format!("sources.{name}.coverage"))?;
            let (srs, bbox) = cov.extent();
            return Ok(Some(WmsExtent {
                srs,
                bbox,
                default: false,
            }));
        }
        // a tile source's grid (`map_extent_from_grid(grid)`)
        if let SourceKind::Tile(t) = &sc.kind {
            let grid = conf
                .grid_set()
                .tile_grid(t.grid.as_deref().unwrap_or("GLOBAL_MERCATOR"));
            if let Ok(g) = grid {
                if let Ok(srs) = Srs::get(&format!("EPSG:{}", g.srs())) {
                    return Ok(Some(WmsExtent::of_floats(srs, g.bbox())));
                }
            }
        }
        return Ok(WmsExtent::world());
    }
    Ok(None)
}

/// A grid's extent: its bbox in its SRS (MapProxy's `map_extent_from_grid`, floats).
fn grid_extent(grid: &TileGrid) -> Option<WmsExtent> {
    let srs = Srs::get(&format!("EPSG:{}", grid.srs())).ok()?;
    Some(WmsExtent::of_floats(srs, grid.bbox()))
}

/// The extent of cache `name` in its grid `grid` (MapProxy's `CacheConfiguration.caches()`,
/// config/configuration/cache.py:711-716): its `cache.coverage`'s, else its sources' merged
/// extent unless that is the default one; `None`: the grid's.
fn cache_own_extent(
    conf: &MapProxyConf,
    name: &str,
    grid: &TileGrid,
    depth: usize,
) -> Result<Option<WmsExtent>, ConfigError> {
    let Some(cache) = conf.caches.get(name) else {
        return Ok(None);
    };
    if let Some(e) = cache_coverage_extent(conf, name)? {
        return Ok(Some(e));
    }
    let mut extents = Vec::new();
    for s in &cache.sources {
        if conf.sources.contains_key(s) {
            extents.extend(source_extent(conf, s)?);
        } else if depth < 16 {
            // a cache naming itself through others is refused where caches are compiled
            extents.extend(cache_as_source_extent(conf, s, grid, depth + 1)?);
        }
    }
    Ok(WmsExtent::merge(&extents).filter(|e| !e.default))
}

/// The extent of cache `name` as a source of a cache in grid `outer`
/// (`CacheConfiguration.source`, config/configuration/cache.py:442-461): with one grid, its
/// extent in that grid intersected with `outer`'s (its grid's when they do not meet:
/// CacheMapLayer's `extent or map_extent_from_grid`); with more, its first grid's extent.
fn cache_as_source_extent(
    conf: &MapProxyConf,
    name: &str,
    outer: &TileGrid,
    depth: usize,
) -> Result<Option<WmsExtent>, ConfigError> {
    let Some(first) = conf.caches.get(name).and_then(|c| c.grids.first()) else {
        return Ok(None);
    };
    let Ok(g) = conf.grid_set().tile_grid(first) else {
        return Ok(None);
    };
    let own = match cache_own_extent(conf, name, &g, depth)? {
        Some(e) => Some(e),
        None => grid_extent(&g),
    };
    if conf.caches.get(name).is_some_and(|c| c.grids.len() > 1) {
        return Ok(own);
    }
    Ok(own
        .zip(grid_extent(outer))
        .and_then(|(e, o)| e.intersection(&o))
        .or_else(|| grid_extent(&g)))
}

/// The `cache.coverage` of cache `name` (config/configuration/cache.py:20-24); MapProxy
/// hands it to the cache, whose tile manager skips the tiles outside it
/// (cache/tile_manager.py:110-117). `clip: true` (tiles masked on the way out,
/// tile_manager.py:125-133) is refused.
fn cache_coverage(
    name: &str,
    cache: &CacheConf,
) -> Result<Option<crate::coverage::Coverage>, ConfigError> {
    let Some(n) = &cache.cache.coverage else {
        return Ok(None);
    };
    let cov = crate::coverage::load(n, &format!("caches.{name}.cache.coverage"))?;
    if cov.clip {
        return Err(err(
            &n.loc,
            format!(
                "caches.{name}.cache.coverage: clip is not supported yet (MapProxy's cache/tile_manager.py:125)"
            ),
        ));
    }
    Ok(Some(cov))
}

/// The extent of cache `name` when it has a `cache.coverage`: the coverage's, which MapProxy
/// prefers to its sources' (config/configuration/cache.py:712-714).
fn cache_coverage_extent(
    conf: &MapProxyConf,
    name: &str,
) -> Result<Option<WmsExtent>, ConfigError> {
    let Some(cache) = conf.caches.get(name) else {
        return Ok(None);
    };
    Ok(cache_coverage(name, cache)?.map(|c| {
        let (srs, bbox) = c.extent();
        WmsExtent {
            srs,
            bbox,
            default: false,
        }
    }))
}

/// A tile layer over cache `cache`: the cache's extent is the layer's (TMS BoundingBox and
/// Origin: the extent in the grid's SRS; WMTS WGS84BoundingBox: its `llbbox`): with a
/// `cache.coverage` the coverage's, else its sources' merged extent unless that is the default
/// one, else the grid's (MapProxy's `caches()` extent, config/configuration/cache.py:711-716,
/// as `TileLayer.extent`, service/tile.py:224). An extent kept in its own SRS keeps the
/// YAML's ints (`1000000`, not `1000000.0`).
fn with_cache_extent(
    mut tl: TileLayer,
    conf: &MapProxyConf,
    cache: &str,
) -> Result<TileLayer, ConfigError> {
    let Some(e) = cache_own_extent(conf, cache, &tl.grid, 0)? else {
        return Ok(tl);
    };
    let grid_srs = Srs::get(&format!("EPSG:{}", tl.grid.srs()));
    if let Some(b) = grid_srs.ok().and_then(|s| e.bbox_for(&s)) {
        tl.bbox = b;
    }
    if let Some(b) = e.llbbox() {
        tl.wgs84_bbox = Some(b);
    }
    Ok(tl)
}

/// A resolution range: MapProxy's `ResolutionRange(min_res, max_res)`, `min_res` the coarsest.
type ResRange = (Option<f64>, Option<f64>);

/// A layer's `min_res`/`max_res`, or its `min_scale`/`max_scale` (see [`res_range`]).
fn layer_res_range(l: &LayerConf) -> Result<Option<ResRange>, ConfigError> {
    let name = l.name.as_deref().unwrap_or_default();
    res_range(
        [l.min_res, l.max_res, l.min_scale, l.max_scale],
        &l.loc,
        &format!("layer '{name}'"),
    )
}

/// A source's `min_res`/`max_res` or scales (see [`res_range`]): no image outside.
fn source_res_range(
    name: &str,
    src: &config::SourceConf,
    c: &config::SourceCommon,
) -> Result<Option<crate::grid::ResRange>, ConfigError> {
    Ok(res_range(
        [c.min_res, c.max_res, c.min_scale, c.max_scale],
        &src.loc,
        &format!("source '{name}'"),
    )?
    .map(|(min_res, max_res)| crate::grid::ResRange { min_res, max_res }))
}

/// `[min_res, max_res, min_scale, max_scale]` as MapProxy's `resolution_range`
/// (grid/resolutions.py:135-157): resolutions or scales, not both; `max_scale` gives
/// `min_res` and `min_scale` gives `max_res` (res = scale × 0.00028 m); `min_res` must be
/// larger than `max_res`; 0 is no limit (Python's falsy 0).
fn res_range(
    [min_res, max_res, min_scale, max_scale]: [Option<f64>; 4],
    loc: &Location,
    what: &str,
) -> Result<Option<ResRange>, ConfigError> {
    let set = |v: Option<f64>| v.filter(|v| *v != 0.0);
    let (min_res, max_res) = (set(min_res), set(max_res));
    let (min_scale, max_scale) = (set(min_scale), set(max_scale));
    let (min_res, max_res) = match (
        min_res.is_some() || max_res.is_some(),
        min_scale.is_some() || max_scale.is_some(),
    ) {
        (false, false) => return Ok(None),
        (true, false) => (min_res, max_res),
        (false, true) => (
            max_scale.map(|s| s * 0.00028),
            min_scale.map(|s| s * 0.00028),
        ),
        (true, true) => {
            return Err(err(
                loc,
                format!("{what}: requires either min_res/max_res or max_scale/min_scale, not both"),
            ))
        }
    };
    if let (Some(min), Some(max)) = (min_res, max_res) {
        if min <= max {
            return Err(err(
                loc,
                format!(
                    "{what}: min_res ({min}) must be larger than max_res ({max}): min_res is the coarsest resolution the layer shows (min_scale the smallest scale denominator)"
                ),
            ));
        }
    }
    Ok(Some((min_res, max_res)))
}

/// MapProxy's `merge_layer_res_ranges`: none when one of them has none; else the coarser
/// `min_res` and the finer `max_res` (each none when one side has none).
fn merge_res_ranges(ranges: &[Option<ResRange>]) -> Option<ResRange> {
    let (first, rest) = ranges.split_first()?;
    rest.iter().try_fold((*first)?, |a, b| {
        let b = (*b)?;
        let both = |x: Option<f64>, y: Option<f64>, f: fn(f64, f64) -> f64| Some(f(x?, y?));
        match (both(a.0, b.0, f64::max), both(a.1, b.1, f64::min)) {
            (None, None) => None,
            r => Some(r),
        }
    })
}

/// One entry of `layers:` as a WMS layer (children first); `None` for an empty group.
fn wms_layer(
    conf: &MapProxyConf,
    l: &LayerConf,
    caches: &IndexMap<String, Vec<CacheGrid>>,
) -> Result<Option<WmsLayer>, ConfigError> {
    let mut children = Vec::new();
    for c in &l.layers {
        if let Some(c) = wms_layer(conf, c, caches)? {
            children.push(Arc::new(c));
        }
    }
    let mut map_layers = Vec::new();
    let mut info = Vec::new();
    let mut legends = Vec::new();
    let legend_dir = conf.globals.cache.base_dir.join("legends");
    if let Some(url) = &l.legendurl {
        legends.push(Arc::new(static_legend(conf, url, &l.loc, &legend_dir)?));
    }
    let layer_legend = l.legendurl.is_some();
    let mut extents = Vec::new();
    for src in &l.sources {
        // MapProxy's fi_source of the layer's source, or of the cache's sources
        let fi_names: Vec<&String> = match conf.caches.get(src) {
            Some(c) => c.sources.iter().collect(),
            None => vec![src],
        };
        for n in fi_names {
            if let Some(sc) = conf.sources.get(n) {
                if let SourceKind::Wms(w) = &sc.kind {
                    if let Some(i) = info_layer(conf, n, sc, w)? {
                        info.push(i);
                    }
                    if !layer_legend {
                        if let Some(lg) = legend_source(conf, n, sc, w, &legend_dir)? {
                            legends.push(Arc::new(lg));
                        }
                    }
                }
            }
        }
        if let Some(cgs) = caches.get(src) {
            let mut grids = Vec::new();
            for cg in cgs {
                // its coverage's or sources' extent, else its grid's (MapProxy's
                // CacheConfiguration.caches and map_layer)
                let own = cache_own_extent(conf, src, &cg.grid, 0)?;
                let g = crate::service::wms::cache_grid_layer(
                    Arc::new(cg.grid.clone()),
                    cg.manager.clone(),
                    cg.max_tile_limit,
                    own.clone(),
                )
                .map_err(|e| err(&l.loc, format!("cache '{src}': {e}")))?;
                if grids.is_empty() {
                    extents.push(match own {
                        Some(e) => e,
                        None => WmsExtent::of_floats(g.srs.clone(), cg.grid.bbox()),
                    });
                }
                grids.push(g);
            }
            let direct_from = direct_from(conf, src, cgs)?;
            map_layers.push(MapLayer::Cache(CacheLayer { grids, direct_from }));
            continue;
        }
        let Some(sc) = conf.sources.get(src) else {
            return Err(err(
                &l.loc,
                format!("layer source '{src}' is neither a cache nor a source"),
            ));
        };
        // `wms_opts.map: false` (an ArcGIS source's `opts.map`): no map layer, its feature
        // info and legend only (`source()` is None: config/configuration/layer.py:70-76)
        if let SourceKind::Wms(w) = &sc.kind {
            if matches!(
                w.wms_opts.get("map").map(|n| &n.value),
                Some(Value::Bool(false))
            ) {
                continue;
            }
        }
        let mut opaque = crate::service::wms::Opaque::Never;
        let mut wms = None;
        let (source, supported, transparent): (Arc<dyn MapSource>, Vec<Arc<Srs>>, bool) =
            match &sc.kind {
                SourceKind::Wms(w) if w.common.seed_only && !conf.seeding => {
                    (Arc::new(crate::source::DummySource), Vec::new(), true)
                }
                SourceKind::Wms(w) => {
                    let s = Arc::new(wms_source(conf, src, sc, w)?.with_format_last());
                    wms = Some(s.clone());
                    if !w.transparent {
                        opaque = match s.coverage() {
                            Some(c) => crate::service::wms::Opaque::Within(Arc::new(c.clone())),
                            None => crate::service::wms::Opaque::Always,
                        };
                    }
                    let mut supported = Vec::new();
                    for code in w.supported_srs.iter().flatten() {
                        supported.push(Srs::get(code).map_err(|e| {
                            err(&sc.loc, format!("sources.{src}.supported_srs: {e}"))
                        })?);
                    }
                    (s, supported, w.transparent)
                }
                SourceKind::Debug => (Arc::new(DebugSource::new()), Vec::new(), true),
                _ => {
                    return Err(err(
                        &l.loc,
                        format!(
                    "source '{src}': only caches, wms and debug sources can be WMS layer sources"
                ),
                    ))
                }
            };
        extents.extend(source_extent(conf, src)?);
        map_layers.push(MapLayer::Direct(crate::service::wms::direct_layer(
            source,
            supported,
            transparent,
            opaque,
            wms,
        )));
    }
    if map_layers.is_empty() && info.is_empty() && legends.is_empty() && children.is_empty() {
        return Ok(None);
    }
    // MapProxy's WMSGroupLayer: the children's extents, then the layer's own
    // (merge_layer_extents of `layers + [this]`)
    let own_extent = if extents.is_empty() {
        None
    } else {
        WmsExtent::merge(&extents)
    };
    let mut extents: Vec<WmsExtent> = children.iter().filter_map(|c| c.extent.clone()).collect();
    extents.extend(own_extent);
    let md = layer_md(l)?;
    // MapProxy's WMSLayer (`this`) takes the layer's range; a WMSGroupLayer the merge of its
    // children's and this one's (service/wms.py:826); a group without sources of its own
    // ignores its min_res/max_res
    let has_this = !l.sources.is_empty() || l.legendurl.is_some();
    let this_range = if has_this { layer_res_range(l)? } else { None };
    let range = if children.is_empty() {
        this_range
    } else {
        let mut ranges: Vec<Option<ResRange>> = children.iter().map(|c| c.res_range()).collect();
        if has_this {
            ranges.push(this_range);
        }
        merge_res_ranges(&ranges)
    };
    let (min_res, max_res) = range.unwrap_or((None, None));
    Ok(Some(WmsLayer {
        name: l.name.clone(),
        title: l.title.clone().unwrap_or_default(),
        md,
        own: !l.sources.is_empty() || l.legendurl.is_some(),
        info,
        legends,
        map_layers,
        children,
        extent: WmsExtent::merge(&extents),
        min_res,
        max_res,
    }))
}

/// A layer's `md` (MapProxy's `wms_130_layer_md`, config/spec.py:272-317), typed as MapProxy's
/// validator wants it: text must be strings, `width`/`height` integers, the lists lists of
/// mappings (a wrong type is an error, as MapProxy refuses the configuration). Null is an
/// empty mapping where a mapping goes (`md`, `attribution`, `logo`), as the validator reads it
/// (util/ext/dictspec/validator.py:110); other keys are left aside.
fn layer_md(l: &LayerConf) -> Result<crate::service::wms::LayerMd, ConfigError> {
    use crate::service::wms::{Attribution, Identifier, LayerMd, Logo, MdUrl};
    let mut md = LayerMd::default();
    let Some(n) = &l.md else { return Ok(md) };
    let base = format!("{}.md", l.path);
    let expected = |n: &Node, path: &str, what: &str| {
        let found = crate::config::read::found(n);
        err(&n.loc, format!("{path}: expected {what}, found {found}"))
    };
    // a mapping, or null as an empty one
    let map = |n: &Node, path: &str| match &n.value {
        Value::Map(m) => Ok(Some(m.clone())),
        Value::Null => Ok(None),
        _ => Err(expected(n, path, "a mapping")),
    };
    let text = |m: &IndexMap<String, Node>, key: &str, path: &str| match m.get(key) {
        None => Ok(String::new()),
        Some(Node {
            value: Value::Str(s),
            ..
        }) => Ok(s.clone()),
        Some(n) => Err(expected(n, &format!("{path}.{key}"), "a string")),
    };
    let int = |m: &IndexMap<String, Node>, key: &str, path: &str| match m.get(key) {
        None => Ok(None),
        Some(Node {
            value: Value::Int(i),
            ..
        }) => Ok(Some(*i)),
        Some(n) => Err(expected(n, &format!("{path}.{key}"), "an integer")),
    };
    // a list of mappings, each with its path
    type Entries = Vec<(IndexMap<String, Node>, String)>;
    let entries = |m: &IndexMap<String, Node>, key: &str| -> Result<Entries, ConfigError> {
        let path = format!("{base}.{key}");
        match m.get(key) {
            None => Ok(Vec::new()),
            Some(Node {
                value: Value::Seq(items),
                ..
            }) => items
                .iter()
                .enumerate()
                .map(|(i, it)| {
                    let p = format!("{path}[{i}]");
                    match &it.value {
                        Value::Map(e) => Ok((e.clone(), p)),
                        _ => Err(expected(it, &p, "a mapping")),
                    }
                })
                .collect(),
            Some(n) => Err(expected(n, &path, "a list")),
        }
    };
    let Some(m) = map(n, &base)? else {
        return Ok(md);
    };
    if m.contains_key("abstract") {
        md.abstract_ = Some(text(&m, "abstract", &base)?);
    }
    for (k, p) in entries(&m, "keyword_list")? {
        let keywords = match k.get("keywords") {
            None => Vec::new(),
            Some(Node {
                value: Value::Seq(items),
                ..
            }) => items
                .iter()
                .enumerate()
                .map(|(i, it)| match &it.value {
                    Value::Str(s) => Ok(s.clone()),
                    _ => Err(expected(it, &format!("{p}.keywords[{i}]"), "a string")),
                })
                .collect::<Result<_, _>>()?,
            Some(n) => return Err(expected(n, &format!("{p}.keywords"), "a list")),
        };
        let vocabulary = text(&k, "vocabulary", &p)?;
        md.keyword_list.push(crate::service::Keywords {
            vocabulary: Some(vocabulary).filter(|v| !v.is_empty()),
            keywords,
        });
    }
    if let Some(a) = m.get("attribution") {
        let p = format!("{base}.attribution");
        if let Some(a) = map(a, &p)?.filter(|a| !a.is_empty()) {
            let mut logo = None;
            if let Some(n) = a.get("logo") {
                let lp = format!("{p}.logo");
                if let Some(g) = map(n, &lp)?.filter(|g| !g.is_empty()) {
                    logo = Some(Logo {
                        url: text(&g, "url", &lp)?,
                        format: text(&g, "format", &lp)?,
                        width: int(&g, "width", &lp)?,
                        height: int(&g, "height", &lp)?,
                    });
                }
            }
            md.attribution = Some(Attribution {
                title: text(&a, "title", &p)?,
                url: text(&a, "url", &p)?,
                logo,
            });
        }
    }
    for (e, p) in entries(&m, "identifier")? {
        md.identifier.push(Identifier {
            url: text(&e, "url", &p)?,
            name: text(&e, "name", &p)?,
            value: text(&e, "value", &p)?,
        });
    }
    let urls = |key: &str| -> Result<Vec<MdUrl>, ConfigError> {
        entries(&m, key)?
            .into_iter()
            .map(|(e, p)| {
                Ok(MdUrl {
                    url: text(&e, "url", &p)?,
                    type_: text(&e, "type", &p)?,
                    format: text(&e, "format", &p)?,
                })
            })
            .collect()
    };
    md.metadata = urls("metadata")?;
    md.data = urls("data")?;
    md.feature_list = urls("feature_list")?;
    Ok(md)
}

fn config_template(config: &ServiceConfig, _w: &config::WmtsConf) -> String {
    config
        .wmts
        .as_ref()
        .map(|w| w.restful_template.clone())
        .unwrap_or_default()
}

/// The WMS service's `md`; without one, MapProxy's `{'title': 'MapProxy WMS'}`
/// (config/configuration/service.py `ServiceConfiguration.__init__`), which the tile
/// services' documents print too.
fn wms_md(w: &config::WmsConf) -> crate::service::ServiceMd {
    match &w.md {
        Some(md) => service_md(Some(md)),
        None => crate::service::ServiceMd {
            title: "MapProxy WMS".into(),
            ..Default::default()
        },
    }
}

/// `md` of the WMS service: what the tile services' documents print.
fn service_md(md: Option<&Node>) -> crate::service::ServiceMd {
    let mut out = crate::service::ServiceMd::default();
    let Some(Node {
        value: Value::Map(m),
        ..
    }) = md
    else {
        return out;
    };
    let text = |k: &str| scalar_text(m.get(k));
    out.title = text("title").unwrap_or_default();
    out.abstract_ = text("abstract").unwrap_or_default();
    out.online_resource = text("online_resource").unwrap_or_default();
    out.fees = text("fees");
    out.access_constraints = text("access_constraints");
    // `contact`: printed when it is a non-empty mapping (the templates' `{{if
    // service.contact}}`), missing fields empty (`bunch(default='')`)
    if let Some(Node {
        value: Value::Map(c),
        ..
    }) = m.get("contact")
    {
        if !c.is_empty() {
            let f = |k: &str| scalar_text(c.get(k)).unwrap_or_default();
            out.contact = Some(crate::service::Contact {
                person: f("person"),
                position: f("position"),
                organization: f("organization"),
                address_type: scalar_text(c.get("address_type")),
                address: f("address"),
                city: f("city"),
                state: f("state"),
                postcode: f("postcode"),
                country: f("country"),
                phone: f("phone"),
                fax: f("fax"),
                email: f("email"),
            });
        }
    }
    // `keyword_list`: `[{vocabulary: ..., keywords: [...]}, ...]`
    if let Some(Node {
        value: Value::Seq(lists),
        ..
    }) = m.get("keyword_list")
    {
        for list in lists {
            let Value::Map(k) = &list.value else { continue };
            let keywords = match k.get("keywords").map(|n| &n.value) {
                Some(Value::Seq(items)) => {
                    items.iter().filter_map(|n| scalar_text(Some(n))).collect()
                }
                _ => Vec::new(),
            };
            out.keyword_list.push(crate::service::Keywords {
                vocabulary: scalar_text(k.get("vocabulary")),
                keywords,
            });
        }
    }
    out
}

/// A scalar of `md` as Python's `str()` prints it in a template.
fn scalar_text(n: Option<&Node>) -> Option<String> {
    match n.map(|n| &n.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        Some(Value::Int(i)) => Some(i.to_string()),
        Some(Value::Float(f)) => Some(crate::source::py_float_repr(*f)),
        Some(Value::Bool(b)) => Some(if *b { "True" } else { "False" }.to_string()),
        _ => None,
    }
}

fn flatten<'a>(layers: &'a [LayerConf], out: &mut Vec<&'a LayerConf>) {
    for l in layers {
        out.push(l);
        flatten(&l.layers, out);
    }
}

/// MapProxy's `tile_layers` (config/configuration/layer.py:137-165): `tile_sources`, else
/// the layer's one cache among its `sources`, where debug sources and FeatureInfo-only WMS
/// sources (`wms_opts.map: false`, returned second) are left aside; any other source, or a
/// second cache, makes no tile layer.
fn tile_layer_sources<'c>(
    conf: &'c MapProxyConf,
    layer: &'c LayerConf,
) -> (Vec<&'c String>, Vec<&'c String>) {
    if !layer.tile_sources.is_empty() {
        return (layer.tile_sources.iter().collect(), Vec::new());
    }
    let mut sources = Vec::new();
    let mut fi_only = Vec::new();
    for name in &layer.sources {
        if conf.caches.contains_key(name) {
            sources.push(name);
            continue;
        }
        match conf.sources.get(name).map(|s| &s.kind) {
            Some(SourceKind::Debug) => {}
            Some(SourceKind::Wms(w))
                if matches!(
                    w.wms_opts.get("map").map(|n| &n.value),
                    Some(Value::Bool(false))
                ) =>
            {
                fi_only.push(name)
            }
            _ => return (Vec::new(), Vec::new()),
        }
    }
    if sources.len() > 1 {
        return (Vec::new(), Vec::new());
    }
    (sources, fi_only)
}

/// The `info_sources` of a tile layer over `cache` (layer.py:169-180): the info source of
/// every WMS source of the cache (through caches of caches, `cache_source_names`), then of
/// the layer's FeatureInfo-only sources.
fn tile_layer_info(
    conf: &MapProxyConf,
    cache: &str,
    fi_only: &[&String],
) -> Result<Vec<crate::service::wms::InfoLayer>, ConfigError> {
    fn cache_source_names<'c>(conf: &'c MapProxyConf, cache: &str, out: &mut Vec<&'c String>) {
        let Some(c) = conf.caches.get(cache) else {
            return;
        };
        for src in &c.sources {
            if conf.caches.contains_key(src) && !conf.sources.contains_key(src) {
                cache_source_names(conf, src, out);
            } else {
                out.push(src);
            }
        }
    }
    let mut names = Vec::new();
    cache_source_names(conf, cache, &mut names);
    names.extend(fi_only.iter().copied());
    let mut out = Vec::new();
    for n in names {
        if let Some(sc) = conf.sources.get(n) {
            if let SourceKind::Wms(w) = &sc.kind {
                if let Some(i) = info_layer(conf, n, sc, w)? {
                    out.push(i);
                }
            }
        }
    }
    Ok(out)
}

/// `services.wmts.featureinfo_formats` as MapProxy's `OrderedDict((suffix, mimetype))`
/// (config/configuration/service.py:135-136); an entry without `suffix` fails to load there
/// (a `KeyError`), here it is a configuration error.
fn wmts_info_formats(node: Option<&Node>) -> Result<Vec<(String, String)>, ConfigError> {
    let mut out: Vec<(String, String)> = Vec::new();
    let Some(node) = node else {
        return Ok(out);
    };
    let key = "services.wmts.featureinfo_formats";
    let entries = match &node.value {
        Value::Seq(entries) => entries,
        Value::Null => return Ok(out),
        _ => return Err(err(&node.loc, format!("{key}: expected a list"))),
    };
    for (i, e) in entries.iter().enumerate() {
        let Value::Map(m) = &e.value else {
            return Err(err(&e.loc, format!("{key}[{i}]: expected a mapping")));
        };
        let text = |k: &str| -> Result<String, ConfigError> {
            match m.get(k).map(|n| &n.value) {
                Some(Value::Str(v)) => Ok(v.clone()),
                Some(_) => Err(err(&e.loc, format!("{key}[{i}].{k}: expected a string"))),
                None => Err(err(&e.loc, format!("{key}[{i}]: '{k}' is missing"))),
            }
        };
        let mime = text("mimetype")?;
        let suffix = text("suffix")?;
        match out.iter_mut().find(|(s, _)| *s == suffix) {
            Some(entry) => entry.1 = mime,
            None => out.push((suffix, mime)),
        }
    }
    Ok(out)
}

impl TileLayer {
    /// What the demo needs of this layer; its TMS URLs name the grid as `/tms/` does.
    fn demo_layer(&self, grid: &Arc<TileGrid>, tms_use_grid_names: bool) -> DemoTileLayer {
        DemoTileLayer {
            name: self.name.clone(),
            tms_grid: self.url_grid_name(tms_use_grid_names),
            matrix_set: self.grid_name.clone(),
            format: self.format.ext().to_string(),
            grid: grid.clone(),
            extent: Some(self.bbox),
        }
    }
}

fn http_opts(conf: &MapProxyConf, own: &config::HttpOpts) -> HttpOpts {
    let g = &conf.globals.http;
    let mut headers: Vec<(String, String)> = g
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in &own.headers {
        headers.retain(|(h, _)| !h.eq_ignore_ascii_case(k));
        headers.push((k.clone(), v.clone()));
    }
    let timeout = own.client_timeout.unwrap_or(g.client_timeout);
    HttpOpts {
        client_timeout: Duration::from_secs_f64(timeout.clamp(0.001, 86_400.0)),
        headers,
        hide_error_details: own.hide_error_details.unwrap_or(g.hide_error_details),
        insecure: own.ssl_no_cert_checks.unwrap_or(g.ssl_no_cert_checks),
        ca_file: own.ssl_ca_certs.clone().or_else(|| g.ssl_ca_certs.clone()),
        ..HttpOpts::default()
    }
}

/// `on_error` as the source reads it: a status (or `other`) → a colour or transparent.
fn on_error(list: &[config::OnError]) -> Result<Option<OnError>, ConfigError> {
    if list.is_empty() {
        return Ok(None);
    }
    let mut oe = OnError::new();
    for e in list {
        let status = if e.status == "other" {
            None
        } else {
            Some(e.status.parse::<u16>().map_err(|_| {
                err(
                    &e.loc,
                    format!(
                        "on_error: expected an HTTP status or 'other', found '{}'",
                        e.status
                    ),
                )
            })?)
        };
        let color = match &e.response.value {
            Value::Str(s) if s == "transparent" => [255, 255, 255, 0],
            Value::Str(s) => parse_hex_color(s).ok_or_else(|| {
                err(&e.response.loc, format!("on_error response: expected 'transparent', #rrggbb or [r, g, b], found '{s}'"))
            })?,
            Value::Seq(items) => {
                match byte_list(items).as_deref() {
                    Some([r, g, b]) => [*r, *g, *b, 255],
                    Some([r, g, b, a]) => [*r, *g, *b, *a],
                    _ => {
                        return Err(err(
                            &e.response.loc,
                            "on_error response: expected [r, g, b] or [r, g, b, a] with values 0-255",
                        ))
                    }
                }
            }
            _ => {
                return Err(err(
                    &e.response.loc,
                    "on_error response: expected 'transparent', #rrggbb or [r, g, b]",
                ))
            }
        };
        oe.add(
            status,
            OnErrorResponse {
                color,
                cache: e.cache,
                authorize_stale: e.authorize_stale,
            },
        );
    }
    Ok(Some(oe))
}

fn parse_hex_color(s: &str) -> Option<[u8; 4]> {
    let h = s.strip_prefix('#')?;
    let byte = |i: usize| u8::from_str_radix(h.get(i..i + 2)?, 16).ok();
    match h.len() {
        6 => Some([byte(0)?, byte(2)?, byte(4)?, 255]),
        8 => Some([byte(0)?, byte(2)?, byte(4)?, byte(6)?]),
        _ => None,
    }
}

fn parse_srs(s: &str) -> Option<u32> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("CRS:84") {
        return Some(4326);
    }
    s.strip_prefix("EPSG:")
        .or_else(|| s.strip_prefix("epsg:"))?
        .parse()
        .ok()
}

/// The source of a cache, for the grid the cache is in.
fn compile_source(
    conf: &MapProxyConf,
    grids: &mut GridSet,
    cache: &CacheConf,
    name: &str,
    built: &IndexMap<String, Vec<CacheGrid>>,
    cache_name: &str,
) -> Result<(Arc<dyn MapSource>, bool, bool), ConfigError> {
    let Some(src) = conf.sources.get(name) else {
        if conf.caches.contains_key(name) {
            return cache_as_source(conf, built, &cache.loc, cache_name, name);
        }
        // config/validator.py _validate_cache_source
        return Err(err(
            &cache.loc,
            format!("Source '{name}' for cache '{cache_name}' not found in config"),
        ));
    };
    // a seed_only source serves as MapProxy's DummySource (transparent, meta tiles; the
    // debug source has no seed_only: config/configuration/source.py:671-690)
    let seed_only = match &src.kind {
        SourceKind::Tile(t) => t.common.seed_only,
        SourceKind::Wms(w) => w.common.seed_only,
        _ => false,
    };
    if seed_only && !conf.seeding {
        return Ok((Arc::new(crate::source::DummySource), true, true));
    }
    match &src.kind {
        // MapProxy's DebugSourceConfiguration has no `transparent`: the cache's image options
        // stay opaque (compatible_image_options), and its transparent drawing is stored
        // black on white
        SourceKind::Debug => Ok((Arc::new(DebugSource::new()), true, false)),
        SourceKind::Tile(t) => {
            let coverage = match &t.common.coverage {
                Some(n) => Some(crate::coverage::load(
                    n,
                    &format!("sources.{name}.coverage"),
                )?),
                None => None,
            };
            let grid_name = t.grid.as_deref().unwrap_or("GLOBAL_MERCATOR");
            let grid = grids.tile_grid(grid_name).map_err(|e| {
                err(
                    &src.loc,
                    format!("grid '{grid_name}' of source '{name}': {e}"),
                )
            })?;
            let template = TileUrlTemplate::new(&t.url)
                .map_err(|e| err(&src.loc, format!("sources.{name}.url: {e}")))?;
            let http = SourceHttp::new(&http_opts(conf, &t.http))
                .map_err(|e| err(&src.loc, format!("sources.{name}.http: {e}")))?;
            let source = TileSource::new(template, grid, http, on_error(&t.on_error)?)
                .with_res_range(source_res_range(name, src, &t.common)?)
                .with_coverage(coverage);
            Ok((Arc::new(source), false, t.transparent))
        }
        SourceKind::Wms(w) => {
            let source = wms_source(conf, name, src, w)?;
            Ok((Arc::new(source), true, w.transparent))
        }
        SourceKind::Other { type_name, .. } => Err(err(
            &src.loc,
            format!("source '{name}': type '{type_name}' is not supported yet"),
        )),
    }
}

/// A static legend (`legendurl` of a layer or `wms_opts.legendurl` of a source):
/// `http(s)://` through the shared client, `file://` read from disk (a relative path from the
/// YAML's directory, as MapProxy's `abspath`).
fn static_legend(
    conf: &MapProxyConf,
    url: &str,
    loc: &Location,
    dir: &Path,
) -> Result<crate::source::LegendSource, ConfigError> {
    use crate::source::{LegendClient, LegendSource};
    let client = if let Some(rest) = url.strip_prefix("file://") {
        let path = if rest.starts_with('/') {
            PathBuf::from(rest)
        } else {
            loc.file
                .parent()
                .map(|d| d.join(rest))
                .unwrap_or_else(|| PathBuf::from(rest))
        };
        LegendClient::File {
            url: format!("file://{}", path.display()),
            path,
        }
    } else {
        let http = SourceHttp::new(&http_opts(conf, &config::HttpOpts::default()))
            .map_err(|e| err(loc, format!("legendurl: {e}")))?;
        LegendClient::Url {
            url: url.to_string(),
            http,
        }
    };
    Ok(LegendSource::new(vec![client], dir.to_path_buf(), true))
}

/// The legend of a WMS source: `wms_opts.legendurl` (static), else with
/// `wms_opts.legendgraphic: true` a GetLegendGraphic per layer of `req.layers`.
fn legend_source(
    conf: &MapProxyConf,
    name: &str,
    src: &config::SourceConf,
    w: &config::WmsSourceConf,
    dir: &Path,
) -> Result<Option<crate::source::LegendSource>, ConfigError> {
    if let Some(n) = w.wms_opts.get("legendurl") {
        let Value::Str(url) = &n.value else {
            return Err(err(
                &n.loc,
                format!("sources.{name}.wms_opts.legendurl: expected a URL"),
            ));
        };
        return static_legend(conf, url, &n.loc, dir).map(Some);
    }
    match w.wms_opts.get("legendgraphic").map(|n| &n.value) {
        Some(Value::Bool(true)) => {}
        None | Some(Value::Bool(false)) => return Ok(None),
        Some(_) => {
            return Err(err(
                &src.loc,
                format!("sources.{name}.wms_opts.legendgraphic: expected true or false"),
            ))
        }
    }
    let source = Arc::new(wms_source(conf, name, src, w)?);
    let clients = w
        .layers
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(|layer| crate::source::LegendClient::Wms {
            source: source.clone(),
            layer: layer.to_string(),
        })
        .collect();
    Ok(Some(crate::source::LegendSource::new(
        clients,
        dir.to_path_buf(),
        false,
    )))
}

/// The info source of a WMS source with `wms_opts.featureinfo: true`.
fn info_layer(
    conf: &MapProxyConf,
    name: &str,
    src: &config::SourceConf,
    w: &config::WmsSourceConf,
) -> Result<Option<crate::service::wms::InfoLayer>, ConfigError> {
    let on = match w.wms_opts.get("featureinfo").map(|n| &n.value) {
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(err(
                &src.loc,
                format!("sources.{name}.wms_opts.featureinfo: expected true or false"),
            ))
        }
        None => false,
    };
    if !on {
        return Ok(None);
    }
    let source = wms_source(conf, name, src, w)?;
    let mut supported_srs = Vec::new();
    for code in w.supported_srs.iter().flatten() {
        supported_srs.push(
            Srs::get(code)
                .map_err(|e| err(&src.loc, format!("sources.{name}.supported_srs: {e}")))?,
        );
    }
    Ok(Some(crate::service::wms::InfoLayer {
        source: Arc::new(source),
        supported_srs,
    }))
}

/// A source's resampling for reprojection: its `image.resampling_method`, else
/// `globals.image.resampling_method` (MapProxy's image options of a source).
fn source_resampling(
    conf: &MapProxyConf,
    name: &str,
    image: Option<&Node>,
) -> Result<Resampling, ConfigError> {
    if let Some(n) = image
        .and_then(|i| i.as_map())
        .and_then(|m| m.get("resampling_method"))
    {
        let text = n.as_str().unwrap_or_default();
        return Resampling::parse(text).ok_or_else(|| {
            err(
                &n.loc,
                format!("sources.{name}.image.resampling_method: expected nearest, bilinear or bicubic, found '{text}'"),
            )
        });
    }
    Ok(Resampling::parse(&conf.globals.image.resampling_method).unwrap_or(Resampling::Bicubic))
}

/// A `type: wms` source (for caches and for direct WMS layers).
fn wms_source(
    conf: &MapProxyConf,
    name: &str,
    src: &config::SourceConf,
    w: &config::WmsSourceConf,
) -> Result<WmsSource, ConfigError> {
    // `req` as MapProxy's create_request keeps it: the YAML's order, values as Python's
    // str() writes them (`transparent: true` is `True`); `layers` a tag may have replaced,
    // added last when `req` has none (config/configuration/source.py:49-57)
    let mut req: Vec<(String, String)> = Vec::new();
    for (k, v) in &w.params {
        let v = match (k.as_str(), &w.layers) {
            ("layers", Some(l)) => l.clone(),
            _ => match &v.value {
                Value::Str(s) => s.clone(),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => crate::source::py_float_repr(*f),
                Value::Bool(true) => "True".into(),
                Value::Bool(false) => "False".into(),
                _ => continue,
            },
        };
        req.push((k.clone(), v));
    }
    if let Some(l) = &w.layers {
        if !req.iter().any(|(k, _)| k == "layers") {
            req.push(("layers".into(), l.clone()));
        }
    }
    let mut c = crate::source::WmsSourceConf::new(w.url.clone(), req);
    c.image_transparent = w.transparent;
    c.resampling = source_resampling(conf, name, w.image.as_ref())?;
    if let Some(a) = &w.arcgis {
        c.url = crate::source::arcgis::rest_endpoint(&w.url);
        c.arcgis = Some(crate::source::ArcGisConf {
            identify_url: crate::source::arcgis::rest_identify_endpoint(&w.url),
            tolerance: a.tolerance.clone(),
            return_geometries: a.return_geometries,
        });
    }
    if let Some(v) = w.wms_opts.get("version") {
        let text = match &v.value {
            Value::Str(s) => s.clone(),
            Value::Float(f) => crate::source::py_float_repr(*f),
            _ => String::new(),
        };
        c.version = WmsVersion::parse(&text).ok_or_else(|| {
            err(&v.loc, format!("wms_opts.version: expected 1.1.1 or 1.3.0, found '{text}' (other versions are not supported yet)"))
        })?;
    }
    if let Some(srs) = &w.supported_srs {
        for s in srs {
            c.supported_srs.push(parse_srs(s).ok_or_else(|| {
                err(
                    &src.loc,
                    format!("sources.{name}.supported_srs: expected EPSG:<code>, found '{s}'"),
                )
            })?);
        }
    }
    if let Some(f) = &w.supported_formats {
        c.supported_formats = f.iter().map(|f| ImageFormat::new(f.clone())).collect();
    }
    // MapProxy's get_value('concurrent_requests', conf, global_key='http.concurrent_requests')
    c.concurrent_requests = w
        .common
        .concurrent_requests
        .unwrap_or(conf.globals.http.concurrent_requests) as usize;
    c.lock_dir = Some(conf.globals.cache.lock_dir.clone());
    let opts = http_opts(conf, &w.http);
    c.lock_timeout = opts.client_timeout;
    let opt_text = |k: &str| -> Result<Option<String>, ConfigError> {
        match w.wms_opts.get(k) {
            None => Ok(None),
            Some(Node {
                value: Value::Str(s),
                ..
            }) => Ok(Some(s.clone())),
            Some(n) => Err(err(
                &n.loc,
                format!("sources.{name}.wms_opts.{k}: expected a string"),
            )),
        }
    };
    c.featureinfo = matches!(
        w.wms_opts.get("featureinfo").map(|n| &n.value),
        Some(Value::Bool(true))
    );
    c.featureinfo_format = opt_text("featureinfo_format")?;
    c.forward_req_params = w.forward_req_params.clone();
    if let Some(Node {
        value: Value::Map(m),
        ..
    }) = &w.image
    {
        if let Some(n) = m.get("transparent_color") {
            let color = match &n.value {
                Value::Str(s) => parse_hex_color(s).map(|c| [c[0], c[1], c[2]]),
                Value::Seq(items) => {
                    let v: Vec<u8> = items
                        .iter()
                        .filter_map(|n| match n.value {
                            Value::Int(i) => u8::try_from(i).ok(),
                            _ => None,
                        })
                        .collect();
                    match v.as_slice() {
                        [r, g, b] => Some([*r, *g, *b]),
                        _ => None,
                    }
                }
                _ => None,
            }
            .ok_or_else(|| {
                err(
                    &n.loc,
                    format!(
                        "sources.{name}.image.transparent_color: expected #rrggbb or [r, g, b]"
                    ),
                )
            })?;
            let tolerance = match m.get("transparent_color_tolerance").map(|n| &n.value) {
                Some(Value::Int(i)) => *i as f64,
                Some(Value::Float(f)) => *f,
                _ => conf.globals.image.transparent_color_tolerance,
            };
            c.transparent_color = Some((color, tolerance));
        }
    }
    c.query_layers = opt_text("query_layers")?;
    for k in ["featureinfo_xslt", "featureinfo_out_format"] {
        if let Some(n) = w.wms_opts.get(k) {
            return Err(err(
                &n.loc,
                format!("sources.{name}.wms_opts.{k}: XSLT transformation of feature info is not supported yet"),
            ));
        }
    }
    let http =
        SourceHttp::new(&opts).map_err(|e| err(&src.loc, format!("sources.{name}.http: {e}")))?;
    let source = WmsSource::new(c, http, on_error(&w.on_error)?)
        .with_res_range(source_res_range(name, src, &w.common)?);
    Ok(match &w.common.coverage {
        Some(n) => source.with_coverage(crate::coverage::load(
            n,
            &format!("sources.{name}.coverage"),
        )?),
        None => source,
    })
}

/// The caches in an order that builds the caches named as sources of another before it
/// (depth first, else the YAML's order); a cycle is an error naming the caches in it.
fn cache_build_order<'a>(conf: &'a MapProxyConf, errors: &mut Vec<ConfigError>) -> Vec<&'a str> {
    fn visit<'a>(
        conf: &'a MapProxyConf,
        name: &'a str,
        path: &mut Vec<&'a str>,
        order: &mut Vec<&'a str>,
        errors: &mut Vec<ConfigError>,
    ) {
        if order.contains(&name) {
            return;
        }
        let Some(cache) = conf.caches.get(name) else {
            return;
        };
        if let Some(i) = path.iter().position(|n| *n == name) {
            let mut cycle: Vec<&str> = path[i..].to_vec();
            cycle.push(name);
            errors.push(err(
                &cache.loc,
                format!(
                    "cache '{name}': its sources form a cycle of caches ({})",
                    cycle.join(" -> ")
                ),
            ));
            return;
        }
        path.push(name);
        for src in &cache.sources {
            // a source of that name wins over a cache (config/configuration/cache.py
            // _sources_for_grid)
            if !conf.sources.contains_key(src.as_str()) {
                visit(conf, src, path, order, errors);
            }
        }
        path.pop();
        if !order.contains(&name) {
            order.push(name);
        }
    }
    let mut order = Vec::new();
    for name in conf.caches.keys() {
        visit(conf, name, &mut Vec::new(), &mut order, errors);
    }
    order
}

/// A cache named as the source of cache `cache_name` (MapProxy's `CacheSource`): drawing maps
/// from its tiles (the WMS's path; reprojected into another grid's SRS), which supports meta
/// tiles; its image options' transparency.
fn cache_as_source(
    conf: &MapProxyConf,
    built: &IndexMap<String, Vec<CacheGrid>>,
    loc: &Location,
    cache_name: &str,
    name: &str,
) -> Result<(Arc<dyn MapSource>, bool, bool), ConfigError> {
    let layer = cache_source_layer(built, loc, cache_name, name)?;
    let transparent = layer
        .grids
        .first()
        .is_some_and(|g| g.manager.image_opts().transparent);
    let resampling =
        Resampling::parse(&conf.globals.image.resampling_method).unwrap_or(Resampling::Bicubic);
    Ok((
        Arc::new(crate::source::CacheSource::new(layer, resampling)),
        true,
        transparent,
    ))
}

fn cache_source_layer(
    built: &IndexMap<String, Vec<CacheGrid>>,
    loc: &Location,
    cache_name: &str,
    name: &str,
) -> Result<CacheLayer, ConfigError> {
    let Some(cgs) = built.get(name) else {
        // not built: its own error (or a cycle's) is reported
        return Err(err(
            loc,
            format!("cache '{cache_name}': its source cache '{name}' could not be built"),
        ));
    };
    let mut grids = Vec::new();
    for cg in cgs {
        grids.push(
            // no max_tile_limit: MapProxy's CacheSource has none
            crate::service::wms::cache_grid_layer(
                Arc::new(cg.grid.clone()),
                cg.manager.clone(),
                0,
                // MapProxy's CacheSource has the intersection with the asking cache's grid
                // (config/configuration/cache.py:456-457); the grid's here
                None,
            )
            .map_err(|e| err(loc, format!("cache '{name}': {e}")))?,
        );
    }
    // MapProxy's CacheSource reads the tile manager: no use_direct_from_level
    Ok(CacheLayer {
        grids,
        direct_from: None,
    })
}

/// MapProxy's `tiled_only` (config/configuration/cache.py `_sources_for_grid`): when every
/// source of the cache is a cache whose one grid holds the tiles of `grid` in the cache's
/// format, the cache is filled tile by tile with those caches' tiles as stored (several
/// merged); `None` otherwise.
fn tiled_only_source(
    conf: &MapProxyConf,
    built: &IndexMap<String, Vec<CacheGrid>>,
    cache: &CacheConf,
    cache_name: &str,
    grid: &TileGrid,
    opts: &ImageOpts,
) -> Result<Option<Arc<dyn MapSource>>, ConfigError> {
    let mut parts: Vec<Arc<dyn MapSource>> = Vec::new();
    for name in &cache.sources {
        if conf.sources.contains_key(name.as_str()) {
            return Ok(None);
        }
        let layer = cache_source_layer(built, &cache.loc, cache_name, name)?;
        if !crate::source::supports_tiled_only_access(&layer, grid, &opts.format) {
            return Ok(None);
        }
        parts.push(Arc::new(crate::source::CacheSource::tiled_only(layer)));
    }
    Ok(match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(Arc::new(MergedSource::new(parts, opts.clone()))),
    })
}

/// `watermark` of a cache (config/configuration/cache.py `_tile_filter`, tilefilter.py
/// `create_watermark_filter`): `None` without one or with an empty `text`.
fn watermark(
    name: &str,
    cache: &CacheConf,
) -> Result<Option<crate::image::watermark::Watermark>, ConfigError> {
    let Some(node) = &cache.watermark else {
        return Ok(None);
    };
    let Value::Map(m) = &node.value else {
        return Err(err(
            &node.loc,
            format!("caches.{name}.watermark: expected a mapping"),
        ));
    };
    let number = |key: &str, default: f64| -> Result<f64, ConfigError> {
        match m.get(key).map(|n| (n, &n.value)) {
            None | Some((_, Value::Null)) => Ok(default),
            Some((_, Value::Int(i))) => Ok(*i as f64),
            Some((_, Value::Float(f))) if f.is_finite() => Ok(*f),
            Some((n, _)) => Err(err(
                &n.loc,
                format!("caches.{name}.watermark.{key}: expected a number"),
            )),
        }
    };
    let text = match m.get("text").map(|n| (n, &n.value)) {
        None | Some((_, Value::Null)) => String::new(),
        Some((_, Value::Str(s))) => s.clone(),
        Some((_, Value::Int(i))) => i.to_string(),
        Some((n, _)) => {
            return Err(err(
                &n.loc,
                format!("caches.{name}.watermark.text: expected a string"),
            ))
        }
    };
    let font_size = number("font_size", 24.0)?;
    if !(1.0..=1000.0).contains(&font_size) {
        let loc = m.get("font_size").map_or(&node.loc, |n| &n.loc);
        return Err(err(
            loc,
            format!("caches.{name}.watermark.font_size: expected 1 to 1000"),
        ));
    }
    let opacity = number("opacity", 30.0)?;
    let opacity = if (0.0..=255.0).contains(&opacity) {
        opacity as u8
    } else {
        let loc = m.get("opacity").map_or(&node.loc, |n| &n.loc);
        return Err(err(
            loc,
            format!("caches.{name}.watermark.opacity: expected 0 to 255"),
        ));
    };
    let wide = match m.get("spacing").map(|n| (n, &n.value)) {
        None | Some((_, Value::Null)) => false,
        Some((_, Value::Str(s))) if s == "wide" => true,
        Some((n, v)) => {
            let shown = match v {
                Value::Str(s) => s.clone(),
                _ => "?".into(),
            };
            // tilefilter.py:27-28
            return Err(err(
                &n.loc,
                format!("caches.{name}.watermark.spacing: unsupported watermark spacing: '{shown}' (only 'wide')"),
            ));
        }
    };
    // config/configuration/base.py parse_color: 0xrrggbb, #rrggbb, [r, g, b]
    let color = match m.get("color") {
        None => [128, 128, 128],
        Some(n) => {
            let bad = || {
                err(
                    &n.loc,
                    format!("caches.{name}.watermark.color: expected #rrggbb, 0xrrggbb or [r, g, b] (0-255; the alpha is `opacity`)"),
                )
            };
            match &n.value {
                Value::Str(s) => {
                    let hex = s.strip_prefix("0x").unwrap_or(s);
                    let hex = hex.strip_prefix('#').unwrap_or(hex);
                    match parse_hex_color(&format!("#{hex}")) {
                        Some([r, g, b, 255]) if hex.len() == 6 => [r, g, b],
                        _ => return Err(bad()),
                    }
                }
                Value::Seq(items) => match byte_list(items).as_deref() {
                    Some([r, g, b]) => [*r, *g, *b],
                    _ => return Err(bad()),
                },
                _ => return Err(bad()),
            }
        }
    };
    if text.is_empty() {
        return Ok(None);
    }
    crate::image::watermark::Watermark::new(&text, font_size, color, opacity, wide)
        .map(Some)
        .map_err(|e| err(&node.loc, format!("caches.{name}.watermark: {e}")))
}

/// `upscale_tiles`/`downscale_tiles` and `cache_rescaled_tiles` of a cache
/// (config/configuration/cache.py:582-595); they draw the missing tiles of a cache without
/// sources.
fn rescale_tiles(
    conf: &MapProxyConf,
    name: &str,
    cache: &CacheConf,
) -> Result<Option<crate::tile_manager::Rescale>, ConfigError> {
    let levels = match (cache.upscale_tiles, cache.downscale_tiles) {
        (Some(u), Some(d)) if u > 0 && d > 0 => {
            return Err(err(
                &cache.loc,
                format!("caches.{name}: cannot use both upscale_tiles and downscale_tiles"),
            ))
        }
        (Some(u), _) if u > 0 => -i64::from(u),
        (_, Some(d)) => i64::from(d),
        _ => return Ok(None),
    };
    let resampling =
        Resampling::parse(&conf.globals.image.resampling_method).unwrap_or(Resampling::Bicubic);
    Ok(Some(crate::tile_manager::Rescale {
        levels,
        store: cache.cache_rescaled_tiles.unwrap_or(false),
        resampling,
    }))
}

/// A YAML list of colour channels (ints 0-255); `None` when an item is anything else.
fn byte_list(items: &[Node]) -> Option<Vec<u8>> {
    items
        .iter()
        .map(|n| match n.value {
            Value::Int(x) => u8::try_from(x).ok(),
            _ => None,
        })
        .collect()
}

fn compile_cache(
    conf: &MapProxyConf,
    grids: &mut GridSet,
    name: &str,
    cache: &CacheConf,
    built: &IndexMap<String, Vec<CacheGrid>>,
) -> Result<Vec<CacheGrid>, ConfigError> {
    if !matches!(
        cache.cache.kind.as_str(),
        "file" | "mbtiles" | "sqlite" | "geopackage" | "redis" | "s3" | "compact"
    ) {
        return Err(err(
            &cache.cache.loc,
            format!(
                "cache '{name}': cache type '{}' is not supported yet",
                cache.cache.kind
            ),
        ));
    }
    // options of the supported types that are not implemented (MapProxy's redis TLS)
    if let Some(key) = cache.cache.options.keys().find(|k| k.starts_with("ssl_")) {
        return Err(err(
            &cache.cache.loc,
            format!("cache '{name}': cache.{key} is not supported yet"),
        ));
    }
    // `image:` and the named formats of globals.image.formats, merged as MapProxy does
    let image = crate::image_options::cache_image(conf, name, cache)?;
    let image_transparent = image.transparent;
    let rescale = rescale_tiles(conf, name, cache)?;
    // MapProxy also rescales where a cache's sources made nothing (cache/tile_manager.py:
    // 161-182); here only caches without sources do
    if rescale.is_some() && !cache.sources.is_empty() {
        let key = if cache.upscale_tiles.is_some() {
            "upscale_tiles"
        } else {
            "downscale_tiles"
        };
        return Err(err(
            &cache.loc,
            format!(
                "cache '{name}': {key} with sources is not supported yet (only with `sources: []`)"
            ),
        ));
    }
    let watermark = watermark(name, cache)?;
    let coverage = cache_coverage(name, cache)?;
    // the watermark is a pre_store_filter and the coverage limits the tiles, with or without
    // storage (cache/tile_manager.py:110-117, 243-251)
    let dress = |manager: TileManager| {
        let manager = match &watermark {
            Some(w) => manager.with_watermark(w.clone()),
            None => manager,
        };
        match &coverage {
            Some(c) => manager.with_coverage(c.clone()),
            None => manager,
        }
    };
    let (mut parts, metatiling, transparent) = match cache.sources.as_slice() {
        [one] => {
            let (src, meta, tr) = compile_source(conf, grids, cache, one, built, name)?;
            (vec![src], meta, tr)
        }
        // MapProxy's DummySource: transparent, tiles never made (see `without_sources`)
        [] => (
            vec![Arc::new(crate::source::NoSource) as Arc<dyn MapSource>],
            false,
            true,
        ),
        several => {
            // merged in list order, the first at the bottom (MapProxy's LayerMerger); all
            // asked for meta tiles, or all tile sources asked tile by tile
            let mut parts = Vec::new();
            let (mut all_meta, mut any_meta, mut transparent) = (true, false, false);
            for s in several {
                let (src, meta, tr) = compile_source(conf, grids, cache, s, built, name)?;
                all_meta &= meta;
                any_meta |= meta;
                transparent |= tr;
                parts.push(src);
            }
            // tile sources with WMS, debug or cache sources: tile by tile when the cache
            // has no meta tiles, else MapProxy's ValueError (cache/tile_manager.py:61-65)
            let meta_configured = cache.meta_buffer > 0 || cache.meta_size != (1, 1);
            if any_meta && !all_meta && meta_configured {
                return Err(err(
                    &cache.loc,
                    format!("cache '{name}': meta tiling configured but not supported by all sources (tile sources with WMS, debug or cache sources need meta_size: [1, 1] and meta_buffer: 0)"),
                ));
            }
            (parts, all_meta, transparent)
        }
    };
    let transparent = image_transparent.unwrap_or(transparent);
    let layout = match &cache.cache.directory_layout {
        Some(l) => DirectoryLayout::parse(l).map_err(|e| err(&cache.cache.loc, e.to_string()))?,
        None => DirectoryLayout::Tc,
    };
    let format = image.format.clone();
    let request_format = cache_request_format(
        name,
        cache,
        &image,
        conf.globals.image.formats.contains_key(&cache.format),
    )?;
    let g = &conf.globals;
    let source_colors = cache
        .sources
        .iter()
        .map(|s| source_colors(conf, s, &request_format))
        .collect::<Result<Vec<_>, _>>()?;
    let colors = image
        .colors
        .unwrap_or_else(|| crate::image_options::compatible_colors(&source_colors));
    let opts = cache_image_opts(
        name,
        cache,
        &image,
        transparent,
        colors,
        g.image.jpeg_quality,
    )?;
    let source: Arc<dyn MapSource> = match parts.pop() {
        Some(one) if parts.is_empty() => one,
        last => {
            parts.extend(last);
            // a meta image is cut and encoded by the tile manager: merged losslessly; a
            // merged tile is stored as the cache encodes it
            let out = if metatiling {
                let mut o = ImageOpts::new(ImageFormat::png());
                o.transparent = transparent;
                o.paletted = false;
                o
            } else {
                opts.clone()
            };
            Arc::new(MergedSource::new(parts, out))
        }
    };
    let link = match cache.link_single_color_images {
        LinkSingleColor::No => None,
        LinkSingleColor::Symlink => Some(LinkMode::Symlink),
        LinkSingleColor::Hardlink => Some(LinkMode::Hardlink),
    };
    let grid_names = if cache.grids.is_empty() {
        vec!["GLOBAL_MERCATOR".to_string()]
    } else {
        cache.grids.clone()
    };
    let tile_lock_dir = cache
        .cache
        .tile_lock_dir
        .clone()
        .or_else(|| g.cache.tile_lock_dir.clone())
        // MapProxy: <the cache's directory, else its cache_dir (default base_dir)>/tile_locks
        .unwrap_or_else(|| {
            cache
                .cache
                .directory
                .as_ref()
                .unwrap_or(&cache.cache_dir)
                .join("tile_locks")
        });
    // MapProxy's _compact_cache: one `directory` cannot hold the bundles of several grids
    if cache.cache.kind == "compact" && cache.cache.directory.is_some() && grid_names.len() > 1 {
        return Err(err(
            &cache.cache.loc,
            format!("using single directory for cache with multiple grids in {name}"),
        ));
    }
    // the cache's own, else globals.cache's (file and compact caches apply them)
    let directory_permissions = cache
        .cache
        .directory_permissions
        .or(g.cache.directory_permissions);
    let file_permissions = cache.cache.file_permissions.or(g.cache.file_permissions);
    let mut out = Vec::new();
    for grid_name in &grid_names {
        let grid = grids.tile_grid(grid_name).map_err(|e| {
            err(
                &cache.loc,
                format!("grid '{grid_name}' of cache '{name}': {e}"),
            )
        })?;
        if cache.disable_storage {
            // MapProxy's _tile_cache: a DummyCache (no storage is built) and a DummyLocker
            // (config/configuration/cache.py:394, :645)
            let manager = TileManager::new(
                Arc::new(crate::cache::DummyCache),
                source.clone(),
                grid.clone(),
                meta_settings(cache, metatiling),
                opts.clone(),
                Arc::new(crate::cache::DummyLocker) as Arc<dyn crate::lock::MetaTileLocks>,
                cache.concurrent_tile_creators.max(1) as usize,
            )
            .with_request_format(request_format.clone());
            let manager = dress(manager);
            out.push(CacheGrid {
                grid_name: grid_name.clone(),
                grid,
                manager: Arc::new(manager),
                format: format.clone(),
                max_tile_limit: cache.max_tile_limit,
            });
            continue;
        }
        let naming = if let Some(d) = &cache.cache.directory {
            crate::cache::CacheDirNaming::Directory(d)
        } else if cache.cache.use_grid_names.unwrap_or(false) {
            crate::cache::CacheDirNaming::GridName {
                base_dir: &cache.cache_dir,
                grid_name,
            }
        } else {
            crate::cache::CacheDirNaming::Srs {
                base_dir: &cache.cache_dir,
                grid_srs: &format!("EPSG:{}", grid.srs()),
            }
        };
        let md5 = |s: &str| {
            use md5::{Digest, Md5};
            format!("{:x}", Md5::digest(s.as_bytes()))
        };
        // MapProxy's `cache_dir()`: `cache.directory`, else `cache_dir`
        let own_dir = cache.cache.directory.as_ref().unwrap_or(&cache.cache_dir);
        // `<directory>/<grid>` when `directory` is set, else `<cache_dir>/<name>/<grid>`
        // (MapProxy's sqlite and geopackage `levels` directories)
        let level_dir = match &cache.cache.directory {
            Some(d) => d.join(grid_name),
            None => cache.cache_dir.join(name).join(grid_name),
        };
        let timeout = Duration::from_secs_f64(
            cache
                .cache
                .sqlite_timeout
                .unwrap_or(g.cache.sqlite_timeout)
                .clamp(0.001, 86_400.0),
        );
        let cache_err = |e: std::io::Error| {
            err(
                &cache.cache.loc,
                format!("cache '{name}' (grid '{grid_name}'): {e}"),
            )
        };
        // the storage, and MapProxy's lock_cache_id for it (the tile locks' file names)
        // a lock shared beyond this host (redis), else the local lock file
        let mut shared_locks: Option<Arc<dyn crate::lock::MetaTileLocks>> = None;
        let (file_cache, lock_id): (Arc<dyn TileCache>, String) = match cache.cache.kind.as_str() {
            "mbtiles" => {
                let file = cache
                    .cache
                    .filename
                    .clone()
                    .unwrap_or_else(|| own_dir.join(format!("{name}.mbtiles")));
                let c = crate::cache::MbTilesCache::open(&file, timeout).map_err(cache_err)?;
                (
                    Arc::new(c),
                    format!("mbtiles-{}", md5(&file.to_string_lossy())),
                )
            }
            "sqlite" => (
                Arc::new(crate::cache::SqliteCache::new(
                    &level_dir,
                    timeout,
                    cache.cache.ttl.unwrap_or(0),
                )),
                format!("sqlite-{}", md5(&level_dir.to_string_lossy())),
            ),
            "geopackage" => {
                let table_name = cache
                    .cache
                    .table_name
                    .clone()
                    .unwrap_or_else(|| format!("{name}_{grid_name}"));
                let table = crate::cache::GpkgTable::new(&table_name, &grid)
                    .map_err(|e| err(&cache.cache.loc, format!("cache '{name}': {e}")))?;
                if cache.cache.levels.unwrap_or(false) {
                    (
                        Arc::new(crate::cache::GeoPackageCache::levels(
                            &level_dir, table, timeout,
                        )),
                        format!("gpkg-{}", md5(&level_dir.to_string_lossy())),
                    )
                } else {
                    let file = cache
                        .cache
                        .filename
                        .clone()
                        .unwrap_or_else(|| own_dir.join(format!("{name}.gpkg")));
                    let c = crate::cache::GeoPackageCache::open(&file, table, timeout)
                        .map_err(cache_err)?;
                    (Arc::new(c), format!("gpkg{}", md5(&file.to_string_lossy())))
                }
            }
            "redis" => {
                let r = cache.cache.redis.clone().unwrap_or_default();
                let mut o = crate::cache::RedisOptions::new(
                    r.prefix
                        .clone()
                        .unwrap_or_else(|| format!("{name}_{grid_name}")),
                );
                o.host = r.host.clone();
                o.port = r.port;
                o.db = r.db;
                o.username = r.username.clone();
                o.password = r.password.clone();
                o.ttl = r.default_ttl;
                let c = Arc::new(crate::cache::RedisCache::new(&o).map_err(cache_err)?);
                let id = md5(&format!("{}{}{}{}", o.host, o.port, o.prefix, o.db));
                // one fetch per meta tile across the instances sharing this Redis
                shared_locks = r.tile_lock.then(|| {
                    let timeout = r.tile_lock_timeout.unwrap_or(g.http.client_timeout);
                    crate::lock::RedisTileLocker::new(
                        c.clone(),
                        Duration::from_secs_f64(r.tile_lock_expiry.clamp(0.001, 86_400.0)),
                        Duration::from_secs_f64(timeout.clamp(0.001, 86_400.0)),
                    )
                    .into()
                });
                (c, format!("redis-{id}"))
            }
            "compact" => {
                // `directory` as it is, else `<cache_dir>/<name>/<grid>`
                let dir = match &cache.cache.directory {
                    Some(d) => d.clone(),
                    None => cache.cache_dir.join(name).join(grid_name),
                };
                let version = match cache.cache.compact_version {
                    Some(1) => crate::cache::CompactVersion::V1,
                    Some(2) => crate::cache::CompactVersion::V2,
                    _ => {
                        return Err(err(
                            &cache.cache.loc,
                            "compact cache only supports version 1 or 2",
                        ))
                    }
                };
                let id = format!("compactcache-{}", md5(&dir.to_string_lossy()));
                let c = crate::cache::CompactCache::new(dir, version)
                    .with_permissions(directory_permissions, file_permissions);
                (Arc::new(c), id)
            }
            "s3" => {
                // MapProxy's _s3_cache: each key from the cache, else globals.cache.s3
                let local = cache.cache.s3.clone().unwrap_or_default();
                let global = &g.cache.s3;
                let bucket_name = local
                    .bucket_name
                    .or_else(|| global.bucket_name.clone())
                    .filter(|b| !b.is_empty())
                    .ok_or_else(|| {
                        err(
                            &cache.cache.loc,
                            format!("no bucket_name configured for s3 cache {name}"),
                        )
                    })?;
                let include_grid_name = local
                    .include_grid_name
                    .or(global.include_grid_name)
                    .unwrap_or(false);
                // `directory` (with the grid name: os.path.join), else `<name>/<grid>`
                let base_path = match local.directory {
                    Some(d) if include_grid_name && !d.is_empty() => {
                        if d.ends_with('/') {
                            format!("{d}{grid_name}")
                        } else {
                            format!("{d}/{grid_name}")
                        }
                    }
                    Some(d) => d,
                    None => format!("{name}/{grid_name}"),
                };
                let layout = match &cache.cache.directory_layout {
                    Some(l) => DirectoryLayout::parse(l)
                        .map_err(|e| err(&cache.cache.loc, e.to_string()))?,
                    None => DirectoryLayout::Tms,
                };
                let o = crate::cache::S3Options {
                    bucket_name,
                    base_path,
                    layout,
                    file_ext: format.ext().to_string(),
                    profile_name: local.profile_name.or_else(|| global.profile_name.clone()),
                    region_name: local.region_name.or_else(|| global.region_name.clone()),
                    endpoint_url: local.endpoint_url.or_else(|| global.endpoint_url.clone()),
                    access_control_list: local
                        .access_control_list
                        .or_else(|| global.access_control_list.clone()),
                    use_http_get: local.use_http_get.or(global.use_http_get).unwrap_or(false),
                };
                let c = crate::cache::S3Cache::new(&o).map_err(cache_err)?;
                // as MapProxy, a missing bucket or refused credentials stop the start
                c.check_bucket().map_err(cache_err)?;
                let id = md5(&format!("{}{}", o.base_path, o.bucket_name));
                (Arc::new(c), id)
            }
            _ => {
                let dir = crate::cache::path::cache_dir(name, naming);
                // MapProxy's lock_cache_id: the MD5 of the cache directory.
                let id = md5(&dir.to_string_lossy());
                (
                    Arc::new(
                        FileCache::for_format(&dir, layout, &format)
                            .with_link_single_color(link)
                            .with_permissions(directory_permissions, file_permissions),
                    ),
                    id,
                )
            }
        };
        let locker = shared_locks.unwrap_or_else(|| {
            TileLocker::new(
                &tile_lock_dir,
                lock_id,
                Duration::from_secs_f64(g.http.client_timeout.clamp(1.0, 86_400.0)),
            )
            .into()
        });
        let meta = meta_settings(cache, metatiling);
        // caches of this grid's tiles as sources: their tiles, one by one
        let (source, meta) = match tiled_only_source(conf, built, cache, name, &grid, &opts)? {
            Some(tiled) => (tiled, MetaSettings::NONE),
            None => (source.clone(), meta),
        };
        let manager = TileManager::new(
            file_cache,
            source,
            grid.clone(),
            meta,
            opts.clone(),
            locker,
            cache.concurrent_tile_creators.max(1) as usize,
        )
        .with_request_format(request_format.clone())
        .with_minimize_meta_requests(cache.minimize_meta_requests)
        .with_refresh_before(cache.refresh_before.clone());
        let manager = if cache.sources.is_empty() {
            manager.without_sources(rescale)
        } else {
            manager
        };
        let manager = dress(manager);
        out.push(CacheGrid {
            grid_name: grid_name.clone(),
            grid,
            manager: Arc::new(manager),
            format: format.clone(),
            max_tile_limit: cache.max_tile_limit,
        });
    }
    Ok(out)
}

/// `use_direct_from_level`/`use_direct_from_res` of cache `name` (MapProxy's map_layer,
/// config/configuration/cache.py:754-761): the WMS asks the cache's one source directly for
/// maps at that resolution (of the cache's first grid) or finer. Tile services (TMS, WMTS,
/// KML) always read the cache, as MapProxy's do.
fn direct_from(
    conf: &MapProxyConf,
    name: &str,
    cgs: &[CacheGrid],
) -> Result<Option<crate::service::wms::DirectFrom>, ConfigError> {
    let Some(cache) = conf.caches.get(name) else {
        return Ok(None);
    };
    let Some(main) = cgs.first() else {
        return Ok(None);
    };
    let res = match (cache.use_direct_from_level, cache.use_direct_from_res) {
        (None, None) => return Ok(None),
        // the level wins (MapProxy sets use_direct_from_res from it)
        (Some(level), _) => {
            let bad = || {
                err(
                    &cache.loc,
                    format!(
                        "caches.{name}.use_direct_from_level: {level} is not a level of grid '{}'",
                        main.grid_name
                    ),
                )
            };
            if level.fract() != 0.0 || level < 0.0 {
                return Err(bad());
            }
            main.grid.resolution(level as usize).map_err(|_| bad())?
        }
        (None, Some(res)) => res,
    };
    let [one] = cache.sources.as_slice() else {
        return Err(err(
            &cache.loc,
            format!("caches.{name}: use_direct_from_level/res only supports single sources"),
        ));
    };
    let Some(sc) = conf.sources.get(one) else {
        return Err(err(
            &cache.loc,
            format!("caches.{name}: use_direct_from_level/res needs a source, '{one}' is not one"),
        ));
    };
    let layer = match &sc.kind {
        // a seed_only source when not seeding: MapProxy's source_conf.source() is its
        // DummySource (config/configuration/cache.py:759, source.py:296)
        SourceKind::Wms(w) if w.common.seed_only && !conf.seeding => {
            crate::service::wms::direct_layer(
                Arc::new(crate::source::DummySource),
                Vec::new(),
                true,
                crate::service::wms::Opaque::Never,
                None,
            )
        }
        SourceKind::Wms(w) => {
            let s = wms_source(conf, one, sc, w)?.with_format_last();
            let mut supported = Vec::new();
            for code in w.supported_srs.iter().flatten() {
                supported.push(
                    Srs::get(code)
                        .map_err(|e| err(&sc.loc, format!("sources.{one}.supported_srs: {e}")))?,
                );
            }
            // MapProxy's ResolutionConditional: never opaque, never combined
            crate::service::wms::direct_layer(
                Arc::new(s),
                supported,
                w.transparent,
                crate::service::wms::Opaque::Never,
                None,
            )
        }
        SourceKind::Debug => crate::service::wms::direct_layer(
            Arc::new(DebugSource::new()),
            Vec::new(),
            true,
            crate::service::wms::Opaque::Never,
            None,
        ),
        _ => {
            return Err(err(
                &cache.loc,
                format!(
                    "caches.{name}: use_direct_from_level/res with a source of this type is not supported yet"
                ),
            ))
        }
    };
    let srs = Srs::get(&format!("EPSG:{}", main.grid.srs()))
        .map_err(|e| err(&cache.loc, format!("caches.{name}: {e}")))?;
    Ok(Some(crate::service::wms::DirectFrom { res, srs, layer }))
}

/// Meta tiling of a cache's tile manager: the cache's, or none (tile sources).
fn meta_settings(cache: &CacheConf, metatiling: bool) -> MetaSettings {
    if metatiling {
        MetaSettings {
            meta_size: cache.meta_size,
            meta_buffer: cache.meta_buffer,
        }
    } else {
        MetaSettings::NONE
    }
}

/// The format the sources are asked for (MapProxy's caches(), config/configuration/cache.py:
/// 556-565): `request_format`, else the cache's `format`; a `mixed` cache needs `request_format`
/// `image/png` or `image/vnd.jpeg-png`.
fn cache_request_format(
    name: &str,
    cache: &CacheConf,
    image: &crate::image_options::CacheImage,
    named: bool,
) -> Result<ImageFormat, ConfigError> {
    if cache.format == "mixed"
        && !matches!(
            cache.request_format.as_deref(),
            Some("image/png" | "image/vnd.jpeg-png")
        )
    {
        return Err(err(
            &cache.loc,
            format!(
                "caches.{name}.request_format: request_format must be set to image/png or image/vnd.jpeg-png if mixed mode is enabled"
            ),
        ));
    }
    Ok(match &cache.request_format {
        Some(f) => ImageFormat::new(f.clone()),
        // a named format of globals.image.formats: the format it names (MapProxy 7's WMS
        // source takes its image_opts' format, source/wms.py:88)
        None if named => image.format.clone(),
        None => ImageFormat::new(cache.format.clone()),
    })
}

/// The `colors` of cache source `name` (a source or a cache) asked for `request_format`, as
/// MapProxy 7's `compatible_image_options` reads it: a WMS source's for its `req.format`, else
/// the request format ([`crate::image_options::source_colors`]); a tile or debug source has
/// none; a cache its own (`CacheConfiguration.image_opts`, the options a `CacheSource` has).
fn source_colors(
    conf: &MapProxyConf,
    name: &str,
    request_format: &ImageFormat,
) -> Result<Option<u16>, ConfigError> {
    if let Some(src) = conf.sources.get(name) {
        return match &src.kind {
            SourceKind::Wms(w) => {
                let format = match w.params.get("format").map(|n| &n.value) {
                    Some(Value::Str(f)) => f.as_str(),
                    _ => request_format.as_str(),
                };
                crate::image_options::source_colors(conf, format)
            }
            _ => Ok(None),
        };
    }
    match conf.caches.get(name) {
        Some(c) => Ok(crate::image_options::cache_image(conf, name, c)?.colors),
        None => Ok(None),
    }
}

/// The options a cache's tiles are encoded with: `compatible_image_options` of its image
/// options and its sources' (`transparent` and `colors`: already merged),
/// `encoding_options.jpeg_quality` else `globals.image.jpeg_quality`.
fn cache_image_opts(
    name: &str,
    cache: &CacheConf,
    image: &crate::image_options::CacheImage,
    transparent: bool,
    colors: u16,
    jpeg_quality: u8,
) -> Result<ImageOpts, ConfigError> {
    let mut opts = ImageOpts::new(image.format.clone());
    opts.transparent = transparent;
    opts.paletted = colors > 0;
    opts.colors = colors;
    opts.jpeg_quality = image.jpeg_quality.unwrap_or(jpeg_quality);
    opts.mode = image.mode;
    opts.resampling = Some(image.resampling);
    opts.opacity = image.opacity;
    if image.mode == Some(crate::image::ImageMode::P) && colors == 0 {
        // Pillow's convert('P'): the web palette, dithered
        return Err(err(
            &cache.loc,
            format!("caches.{name}.image: mode P without colors is not supported yet"),
        ));
    }
    Ok(opts)
}

/// The tile managers of every cache, by cache name, each as `(grid name, manager)` in the
/// cache's grid order: the same managers the services use (so seeding makes meta tiles, takes
/// locks and stores as a request would). A cache that cannot be built is its error, so that
/// seeding fails only for the caches it uses. Must run inside a tokio runtime (the HTTP client).
#[allow(clippy::type_complexity)]
pub fn cache_managers(
    conf: &MapProxyConf,
) -> IndexMap<String, Result<Vec<(String, Arc<TileManager>)>, ConfigError>> {
    let (expanded, tag_errors) = crate::tagged::expand(conf);
    let conf = &expanded;
    let mut grids = conf.grid_set();
    // MapProxy's seeding loads with seed=True: seed_only sources are real
    let conf = &MapProxyConf {
        seeding: true,
        ..conf.clone()
    };
    // caches that are sources of others first, as `compile` builds them
    let mut cycles = Vec::new();
    let order = cache_build_order(conf, &mut cycles);
    let mut built: IndexMap<String, Vec<CacheGrid>> = IndexMap::new();
    let mut failed: std::collections::HashMap<&str, ConfigError> = Default::default();
    for e in tag_errors {
        if let Some(c) = e
            .cache
            .as_deref()
            .and_then(|c| conf.caches.get_key_value(c))
        {
            failed.entry(c.0.as_str()).or_insert(e.error);
        }
    }
    for name in order {
        if failed.contains_key(name) {
            continue;
        }
        let Some(cache) = conf.caches.get(name) else {
            continue;
        };
        match compile_cache(conf, &mut grids, name, cache, &built) {
            Ok(cgs) => {
                built.insert(name.to_string(), cgs);
            }
            Err(e) => {
                failed.insert(name, e);
            }
        }
    }
    conf.caches
        .iter()
        .map(|(name, cache)| {
            if cache.disable_storage {
                // MapProxy's seed/config.py:103
                let e = err(
                    &cache.loc,
                    format!("can't seed cache {name} (disable_storage: true)"),
                );
                return (name.clone(), Err(e));
            }
            let result = match built.get(name) {
                Some(cgs) => Ok(cgs
                    .iter()
                    .map(|cg| (cg.grid_name.clone(), cg.manager.clone()))
                    .collect()),
                None => Err(failed.remove(name.as_str()).unwrap_or_else(|| {
                    err(&cache.loc, format!("cache '{name}' could not be built"))
                })),
            };
            (name.clone(), result)
        })
        .collect()
}

/// `egg:MapProxy#app`.
pub fn factory(
    conf: &mapproxy_serve_core::config::FactoryConf,
    ctx: &mut mapproxy_serve_core::build::BuildContext,
) -> Result<App, ConfigErrors> {
    conf.require("mapproxy_conf")?;
    let yaml = conf
        .get_path("mapproxy_conf")
        .ok_or_else(|| conf.error("mapproxy_conf", "expected a path"))?;
    // The file is watched even when it is broken: fixing it reloads.
    ctx.watch(yaml.clone());
    if let Some(globs) = conf.get("reload_files") {
        let base = conf
            .location_of("reload_files")
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for pattern in globs.split_whitespace() {
            let full = base.join(pattern);
            for f in watched_glob(&full) {
                ctx.watch(f);
            }
        }
    }
    // MapProxy ≤ 1.11's `log_conf`: its logging is configured from that file (Python's
    // fileConfig ini, or a log4rs YAML) instead of this ini's logging sections
    if conf.get("log_conf").is_some_and(|v| !v.trim().is_empty()) {
        if let Some(path) = conf.get_path("log_conf") {
            if path.is_file() {
                ctx.logging_file(conf.location_of("log_conf"), path);
            } else {
                // MapProxy's app_factory: "ERROR: log configuration %s not found." and on
                ctx.warn(
                    conf.location_of("log_conf"),
                    format!(
                        "log configuration {} not found; the ini's logging sections stay",
                        path.display()
                    ),
                );
            }
        }
    }
    let trusted = conf
        .get("trusted_proxies")
        .unwrap_or(crate::service::DEFAULT_TRUSTED_PROXIES);
    if mapproxy_serve_filters::proxy_headers::ProxyHeadersConfig::parse_trusted(trusted).is_err() {
        return Err(conf
            .error(
                "trusted_proxies",
                "expected CIDRs or addresses, comma-separated",
            )
            .into());
    }
    let built = build_with(&yaml, trusted)?;
    for f in &built.files {
        ctx.watch(f.clone());
    }
    for w in built.warnings {
        let loc = w
            .location
            .clone()
            .unwrap_or_else(|| conf.location_of("mapproxy_conf"));
        ctx.warn(loc, w.message);
    }
    Ok(built.app)
}

/// The files a `reload_files` glob names (`*` and `?` in the last component only).
fn watched_glob(pattern: &Path) -> Vec<PathBuf> {
    let Some(name) = pattern.file_name().and_then(|n| n.to_str()) else {
        return Vec::new();
    };
    if !name.contains(['*', '?']) {
        return vec![pattern.to_path_buf()];
    }
    let dir = pattern.parent().unwrap_or(Path::new("."));
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_str().is_some_and(|n| glob_match(name, n)))
        .map(|e| e.path())
        .collect();
    out.sort();
    out
}

fn glob_match(pat: &str, name: &str) -> bool {
    fn m(p: &[char], n: &[char]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some('*'), _) => m(&p[1..], n) || (!n.is_empty() && m(p, &n[1..])),
            (Some('?'), Some(_)) => m(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a == b => m(&p[1..], &n[1..]),
            _ => false,
        }
    }
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    m(&p, &n)
}
