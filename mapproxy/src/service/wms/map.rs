//! GetMap (MapProxy's `WMSServer.map`, `layer.py` `CacheMapLayer`/`DirectMapLayer`,
//! `image/merge.py`, `image/tile.py` `TiledImage`).
//!
//! A request is checked as MapProxy checks it (missing parameters, bbox, styles; then
//! `max_output_pixels`, layers, format, SRS). Each requested layer's map layers render
//! concurrently:
//! - a cache: the grid in the request's SRS (else one of the same kind, geographic or
//!   projected, else the first), the level `closest_level` picks for the resolution in the
//!   grid's SRS, the covering tiles from the tile manager (missing ones made, at most
//!   `concurrent_tile_creators` meta tiles at once; more than `max_tile_limit` tiles is an
//!   error), stitched, then
//!   cropped/resized or reprojected by [`crate::image::transform`]; the part of the request
//!   outside the grid stays transparent;
//! - a direct WMS source: one GetMap in the request's SRS when the source supports it (else in
//!   a supported SRS, reprojected); when it is the only layer and nothing needs merging, its
//!   bytes pass through unchanged.
//!
//! The images are merged in order over `BGCOLOR` (or transparent with `TRANSPARENT=true`)
//! and encoded as the format asks: PNG paletted by default (`image.paletted`, whatever
//! `mode=` the format names), JPEG with `jpeg_quality`, GIF, and TIFF/GeoTIFF with the map's
//! GeoTIFF tags.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::{join_all, FutureExt};
use futures_util::stream::{self, StreamExt};
use http::{Response, StatusCode};
use image::RgbaImage;
use mapproxy_serve_core::app::Body;

use super::{parse_bgcolor, Version, WmsError, WmsRequest, WmsService};
use crate::authorize::{Authorized, QueryExtent};
use crate::grid::{bbox_intersects, get_resolution, Bbox, TileGrid};
use crate::image::mode::{created_mode, opened_mode, resampled_mode};
use crate::image::transform::{transform, transform_known, Known, Resampling, Warp};
use crate::image::{ImageFormat, ImageMode, ImageOpts, Indexed, StitchTile};
use crate::service::Ctx;
use crate::source::{MapQuery, MapSource};
use crate::srs::Srs;
use crate::tile::{TileCoord, TileData, TileError};
use crate::tile_manager::TileManager;

/// A cache in one grid.
#[derive(Clone)]
pub struct CacheGridLayer {
    pub grid: Arc<TileGrid>,
    pub srs: Arc<Srs>,
    pub manager: Arc<TileManager>,
    /// `max_tile_limit` of the cache (0: no limit): a request needing more tiles is an error.
    pub max_tile_limit: u32,
    /// The `CacheMapLayer`'s extent (config/configuration/cache.py:711-716): the cache's
    /// coverage's, else its sources' merged extent; `None`: the grid's bbox. A map reaching
    /// outside it is drawn from the part inside and pasted (`get_map`'s sub query).
    pub extent: Option<super::Extent>,
}

/// A cache in its grids.
#[derive(Clone)]
pub struct CacheLayer {
    pub grids: Vec<CacheGridLayer>,
    /// `use_direct_from_level`/`use_direct_from_res`: requests this fine or finer skip the
    /// cache.
    pub direct_from: Option<DirectFrom>,
}

/// MapProxy's `ResolutionConditional` (layer/resolution_conditional.py): a map whose
/// resolution in `srs` (the cache's first grid's; the finer of x and y) is `res` or finer is
/// asked from the cache's source directly; coarser ones come from the cache.
#[derive(Clone)]
pub struct DirectFrom {
    pub res: f64,
    pub srs: Arc<Srs>,
    pub layer: DirectLayer,
}

impl DirectFrom {
    /// Is the query answered by the source? (A bbox that cannot be transformed: no.)
    fn applies(&self, q: &Query) -> bool {
        let bbox = if *q.srs == *self.srs {
            q.bbox
        } else {
            match q.srs.transform_bbox_to(&self.srs, q.bbox) {
                Ok(b) => b,
                Err(_) => return false,
            }
        };
        let xres = (bbox[2] - bbox[0]) / f64::from(q.size.0);
        let yres = (bbox[3] - bbox[1]) / f64::from(q.size.1);
        // `if res > self.resolution: one (the cache) else two (the source)`
        xres.min(yres).partial_cmp(&self.res) != Some(std::cmp::Ordering::Greater)
    }
}

/// A source (WMS, debug) used directly.
#[derive(Clone)]
pub struct DirectLayer {
    pub source: Arc<dyn MapSource>,
    /// `supported_srs` (empty: any).
    pub supported_srs: Vec<Arc<Srs>>,
    pub transparent: bool,
    /// Whether its images are sure to be opaque (layers asked before it are then left out).
    pub opaque: Opaque,
    /// The source when it is a WMS source: adjacent ones of one server are combined.
    pub wms: Option<Arc<crate::source::WmsSource>>,
}

/// MapProxy's `is_opaque` of a layer's source (source/wms.py:168-190): a WMS source without
/// `transparent` is opaque, within its coverage when it has one; other sources never are.
#[derive(Clone)]
pub enum Opaque {
    Never,
    Always,
    Within(Arc<crate::coverage::Coverage>),
}

impl Opaque {
    /// Is a map of `bbox` in `srs` sure to be opaque?
    pub fn covers(&self, bbox: Bbox, srs: &Srs) -> bool {
        match self {
            Opaque::Never => false,
            Opaque::Always => true,
            Opaque::Within(c) => c.bbox_contains(bbox, srs),
        }
    }
}

/// What a WMS layer draws.
#[derive(Clone)]
pub enum MapLayer {
    Cache(CacheLayer),
    Direct(DirectLayer),
}

/// The map request, in internal (east/north) order.
#[derive(Clone)]
struct Query {
    bbox: Bbox,
    size: (u32, u32),
    srs: Arc<Srs>,
}

/// Why a map layer did not render.
enum LayerError {
    /// A source failed (`SourceError`): `on_source_errors` decides.
    Source(String),
    /// The request cannot be answered (`MapBBOXError`, `MapError`): raised as is.
    Request(String),
}

impl From<String> for LayerError {
    fn from(e: String) -> LayerError {
        LayerError::Source(e)
    }
}

/// The rendered output of one map layer.
enum Rendered {
    /// Nothing to draw (outside the extent, no tiles): MapProxy's `BlankImageError`, the layer
    /// is not merged.
    Blank,
    /// Tiles, every one fully transparent: nothing to draw either, but for MapProxy a layer
    /// image that is merged (so the map is encoded as any drawn map).
    Clear,
    /// An image of the map's size, whether it is known to be opaque, the Pillow mode MapProxy
    /// holds it in ([`crate::image::mode`]: how it is encoded when it is the map) and whether
    /// its layer's image options are transparent (LayerMerger's single-layer shortcut).
    Image {
        img: Known<RgbaImage>,
        mode: ImageMode,
        transparent: bool,
        /// Its indices and palette when MapProxy holds it as `P`.
        indexed: Option<Indexed>,
    },
    /// A direct source's image: its bytes, their format, whether the source is transparent
    /// (its `image_opts.transparent`: `req.transparent`) and whether they are the bytes a
    /// server sent (not drawn here: see [`crate::source::SourceImage::drawn`]).
    Encoded {
        data: Bytes,
        format: Option<ImageFormat>,
        transparent: bool,
        as_sent: bool,
    },
    /// A WMS-C tile (`TILED=true`): the cached tile as stored, and whether the cache's image
    /// options are transparent.
    Tile(TileData, bool),
    /// A map that is exactly one tile of a cache (see [`stored_tile`]): the tile as stored
    /// (and as drawn, when this request made it), with the cache's format, whether its image
    /// options are transparent, and whether they set no `mode`.
    Stored {
        data: Bytes,
        drawn: Option<std::sync::Arc<crate::tile::Drawn>>,
        format: ImageFormat,
        transparent: bool,
        no_mode: bool,
    },
}

pub(crate) async fn handle(
    wms: &WmsService,
    req: &WmsRequest,
    ctx: &Ctx<'_>,
) -> Result<Response<Body>, WmsError> {
    let p = &req.params;
    let v130 = req.version >= Version::V130;
    // MapProxy's map requests have no non-strict parameters: all are required
    check_missing(p, &map_params(req.version))?;
    let (bbox, raw_size) = check_bbox_styles(p)?;
    // check_map_request: max_output_pixels first, always as XML (service/wms.py:278): a
    // WIDTH of 4294967297 or 1e20 is "too large" here, not an invalid size
    if let (Some(max), Some((w, h))) = (wms.config.max_output_pixels, raw_size) {
        if w * h > max as f64 {
            let mut e = WmsError::new("image size too large");
            e.xml_only = true;
            return Err(e);
        }
    }
    // validate_layers: every value split at `,`, an empty name is unknown (service/wms.py:300)
    let names: Vec<&str> = p.list("layers");
    for n in &names {
        if wms.layer(n).is_none() {
            return Err(WmsError::new(format!("unknown layer: {n}")).code("LayerNotDefined"));
        }
    }
    // the format as written must be one of image_formats (MapProxy: `png` is not `image/png`);
    // a repeated FORMAT is its values joined (request/wms/__init__.py:245)
    let format = p
        .joined("format")
        .map_or_else(|| "image/png".to_string(), |f| f.into_owned());
    if !wms.config.image_formats.contains(&format) {
        return Err(
            WmsError::new(format!("unsupported image format: {format}")).code("InvalidFormat")
        );
    }
    let srs = check_srs(wms, req)?;
    let bbox = if v130 {
        crate::srs::switch_axis_order(bbox, &srs)
    } else {
        bbox
    };
    let size = match positive_size(raw_size) {
        Some(s) => s,
        None => {
            // a negative WIDTH/HEIGHT passes MapProxy's checks and reaches the caches with
            // a negative resolution (their finest level): its "too many tiles" error
            if let Some(e) = negative_size_error(wms, &names, bbox, &srs, raw_size) {
                return Err(e);
            }
            return Err(size_error(p));
        }
    };
    // WMS-C: `params.get('tiled', 'false').lower() == 'true'` (service/wms.py:96)
    let tiled = p
        .get("tiled")
        .is_some_and(|t| t.eq_ignore_ascii_case("true"));
    // a `bbox_srs` entry with a bbox for the map's SRS limits the map to it: the part inside
    // is drawn (not as a WMS-C tile) and placed into the full image, a map outside it is
    // blank (service/wms.py:103-115)
    let full = (bbox, size);
    let (limited, outside) = srs_extent_limit(wms, &srs, bbox, size);
    let (bbox, size, tiled) = match limited {
        Some((sub_size, _, sub_bbox)) => (sub_bbox, sub_size, false),
        None => (bbox, size, tiled),
    };
    let query = Query {
        bbox,
        size,
        srs: srs.clone(),
    };
    let transparent = p
        .get("transparent")
        .is_some_and(|t| t.eq_ignore_ascii_case("true"));
    let bgcolor = p
        .get("bgcolor")
        .and_then(parse_bgcolor)
        .unwrap_or([255, 255, 255]);

    // the layers to render, in order, as authorized
    let mut render: Vec<(String, MapLayer)> = Vec::new();
    for n in names.iter().filter(|_| !outside) {
        if let Some(l) = wms.layer(n) {
            if l.renders_query(bbox, size, &srs) {
                // an opaque layer hides the ones asked before it: they are not rendered
                // (service/wms.py:122-125)
                if l.is_opaque(bbox, size, &srs) {
                    render.clear();
                }
                // `actual_layers` is an OrderedDict by layer name: a layer asked twice (or
                // through a group and by itself) renders once, where it came first
                // (service/wms.py:117-126)
                let mut more = Vec::new();
                l.render_layers(&mut more);
                let seen: std::collections::HashSet<String> =
                    render.iter().map(|(n, _)| n.clone()).collect();
                render.extend(more.into_iter().filter(|(n, _)| !seen.contains(n)));
            }
        }
    }
    let layer_names: Vec<&str> = {
        let mut v: Vec<&str> = Vec::new();
        for (n, _) in &render {
            if !v.contains(&n.as_str()) {
                v.push(n);
            }
        }
        v
    };
    let extent = QueryExtent {
        srs: srs.code().to_string(),
        bbox,
    };
    // per rendered layer: the geometries it is clipped to
    let mut masks: Vec<Vec<geo::MultiPolygon<f64>>> = Vec::new();
    // a NaN in BBOX passes validate_bbox (every comparison is false) and every layer's
    // extent test fails: a blank map (cache_map_layer.py:38 BlankImageError)
    let nan_bbox = bbox.iter().any(|v| v.is_nan());
    if let Some(answer) = ctx
        .ask("wms.map", &layer_names, Some(&extent))
        .filter(|_| !outside)
    {
        match answer {
            Authorized::Full => {}
            Authorized::Unauthenticated => {
                return Err(WmsError::new("unauthorized").status(StatusCode::UNAUTHORIZED))
            }
            Authorized::None => {
                return Err(WmsError::new("forbidden").status(StatusCode::FORBIDDEN))
            }
            Authorized::Partial(part) => {
                for n in &names {
                    if layer_names.contains(n) && !part.access(n).map {
                        return Err(WmsError::new("forbidden").status(StatusCode::FORBIDDEN));
                    }
                }
                render.retain(|(n, _)| part.access(n).map);
                // limited_to: of the layer and of the whole request, in the request's SRS
                // (a geometry in an unknown SRS allows nothing)
                let in_srs = |g: &crate::authorize::LimitedTo| {
                    g.in_srs(&srs)
                        .unwrap_or_else(|| geo::MultiPolygon(Vec::new()))
                };
                let whole = part.limited_to.as_ref().map(in_srs);
                masks = render
                    .iter()
                    .map(|(n, _)| {
                        whole
                            .iter()
                            .cloned()
                            .chain(part.access(n).limited_to.as_ref().map(in_srs))
                            .collect()
                    })
                    .collect();
            }
        }
    }
    if nan_bbox {
        render.clear();
        masks.clear();
    }

    let mut opts = ImageOpts::new(ImageFormat::new(format.clone()));
    opts.transparent = transparent;
    opts.jpeg_quality = wms.config.jpeg_quality;
    // `result.georef`: a TIFF gets the map's GeoTIFF tags (service/wms.py:166)
    opts.georef = Some(crate::image::GeoRef {
        bbox,
        epsg: srs.epsg(),
        latlong: srs.is_latlong(),
    });
    // MapProxy 7 gives every PNG format 256 colours with `image.paletted` (its
    // `image_formats` options come from `globals.image.formats` only, which has no
    // defaults: `image/png; mode=32bit` is paletted too; image_options.py:98-101)
    opts.paletted = wms.config.paletted;

    let resampling = wms.config.resampling;
    let (render, mut masks) = combine_layers(render, masks);
    let opacities = layer_opacities(&render, &query, transparent);
    // an opaque map's bottom layer is drawn over the background as its tiles are stitched
    // (see `stitch`), unless a mask is to make part of it transparent first or it is faded
    let under = (!transparent
        && masks.first().is_none_or(|m| m.is_empty())
        && opacities.first().is_none_or(Option::is_none))
    .then_some(bgcolor);
    // concurrent_layer_renderer: how many layers render at once (in order)
    let futures: Vec<_> = render
        .iter()
        .enumerate()
        .map(|(i, (_, l))| {
            let under = if i == 0 { under } else { None };
            render_layer(l, &query, &format, resampling, &p.0, under, tiled).boxed()
        })
        .collect();
    let results: Vec<_> = stream::iter(futures)
        .buffered(wms.config.concurrent_layer_renderer.max(1))
        .collect()
        .await;
    masks.resize(results.len(), Vec::new());
    let mut images = Vec::new();
    let mut errors = Vec::new();
    for ((r, m), opacity) in results.into_iter().zip(masks).zip(opacities) {
        match r {
            Ok(img) => images.push((img, m, opacity)),
            // MapBBOXError & co. are the request's errors, raised whatever on_source_errors
            // says and without the "Could not get any sources" prefix (service/wms.py:672)
            Err(LayerError::Request(e)) => return Err(WmsError::new(e)),
            Err(LayerError::Source(e)) => {
                if wms.config.on_source_errors_raise {
                    return Err(WmsError::new(e));
                }
                errors.push(e);
            }
        }
    }
    if !errors.is_empty() && images.is_empty() {
        return Err(WmsError::new(format!(
            "Could not get any sources:\n{}",
            errors.join("\n")
        )));
    }
    // WMS-C: one tile, the cache's as stored, with the tile services' cache headers and
    // conditional answers, when LayerMerger.merge returns it as is (an opaque cache or
    // TRANSPARENT=true; image/merge.py:63-71) and `as_buffer` does not re-encode a loaded
    // file (image/__init__.py:221-233); service/wms.py:170-174
    if let [(Rendered::Tile(tile, cache_transparent), m, None)] = images.as_slice() {
        if (!cache_transparent || transparent)
            && errors.is_empty()
            && m.is_empty()
            && limited.is_none()
        {
            return Ok(super::super::response::tile_response(
                ctx.headers,
                &format,
                tile.data.clone(),
                tile.mtime,
                wms.config.max_tile_age,
            ));
        }
    }
    // one tile of a cache, as stored, when LayerMerger.merge returns it as is (an opaque
    // cache or TRANSPARENT=true; image/merge.py:63-71) and `as_buffer` keeps its buffer (the
    // cache's format and mode are the request's; image/__init__.py:240-257); no tile headers
    // without TILED (service/wms.py:170-177)
    if let [(
        Rendered::Stored {
            data,
            format: cache_format,
            drawn: _,
            transparent: cache_transparent,
            no_mode,
        },
        m,
        None,
    )] = images.as_slice()
    {
        if (!cache_transparent || transparent)
            && *no_mode
            && *cache_format == ImageFormat::new(format.clone())
            && errors.is_empty()
            && m.is_empty()
            && limited.is_none()
        {
            return Ok(super::super::response::content_type_response(
                StatusCode::OK,
                &format,
                data.clone(),
            ));
        }
    }
    // pass-through: one direct layer as the server sent it, when LayerMerger.merge returns it
    // as is (the source is not transparent, or the map is: image/merge.py:63-71; BGCOLOR does
    // not matter then) and `as_buffer` keeps the buffer (the format its bytes have is the
    // request's: image/__init__.py:240-257)
    if let [(
        Rendered::Encoded {
            data: bytes,
            format: fmt,
            transparent: source_transparent,
            as_sent: true,
        },
        m,
        None,
    )] = images.as_slice()
    {
        let same_format = fmt
            .as_ref()
            .is_some_and(|f| *f == ImageFormat::new(format.clone()));
        if same_format
            && (!source_transparent || transparent)
            && errors.is_empty()
            && m.is_empty()
            && limited.is_none()
        {
            return Ok(super::super::response::content_type_response(
                StatusCode::OK,
                &format,
                bytes.clone(),
            ));
        }
    }
    let bg = if transparent {
        [bgcolor[0], bgcolor[1], bgcolor[2], 0]
    } else {
        [bgcolor[0], bgcolor[1], bgcolor[2], 255]
    };
    let notice = errors.join("\n");
    let cacheable = errors.is_empty();
    let place = limited.map(|(_, offset, _)| (full.1, offset));
    let encoded = crate::image::cpu_bound(move || -> Result<Bytes, String> {
        // LayerMerger.merge's single-layer shortcut: one layer image whose options are not
        // transparent (or a transparent map), of the map's size, nothing to clip, is the map
        // as it is, in the mode MapProxy holds it in (an opaque cache's stitched tiles are
        // RGB: no tRNS even for TRANSPARENT=true; transparent pixels keep their colours);
        // image/merge.py:63-71, image/__init__.py:233-257
        if let [(r, m, None)] = images.as_slice() {
            if place.is_none() && m.is_empty() && notice.is_empty() {
                if let Some((img, mode, indexed)) = single_layer(r, transparent, size)? {
                    return match indexed {
                        Some(p) => crate::image::encode_indexed(&img, &p, &opts),
                        None => crate::image::encode_mode(&img, mode, &opts),
                    }
                    .map_err(|e| e.to_string());
                }
            }
        }
        // one opaque image of the full size and nothing to clip: the merged map is that image
        if let [(
            Rendered::Image {
                img: Known { image: img, opaque },
                ..
            },
            m,
            None,
        )] = images.as_slice()
        {
            if img.dimensions() == size
                && place.is_none()
                && m.is_empty()
                && notice.is_empty()
                && (*opaque || !crate::image::has_transparency(img))
            {
                return crate::image::encode(img, &opts).map_err(|e| e.to_string());
            }
        }
        // nothing drawn (no tiles, only transparent ones, outside every extent): the
        // background, encoded once for maps of its size and format
        if notice.is_empty()
            && images
                .iter()
                .all(|(i, _, _)| matches!(i, Rendered::Blank | Rendered::Clear))
        {
            let (w, h) = place.map_or(size, |(full, _)| full);
            // no layer image at all (and not placed into a bbox_srs limit): MapProxy's
            // BlankImageResult, whose as_buffer sets `colors = 0` (image/__init__.py:302-310,
            // image/merge.py:61-62, service/wms.py:107-112): not quantized, a truecolour PNG
            // (RGB, RGBA when transparent)
            let mut opts = opts.clone();
            opts.paletted &=
                place.is_some() || images.iter().any(|(i, _, _)| matches!(i, Rendered::Clear));
            return crate::image::encode_uniform(w, h, bg, &opts).map_err(|e| e.to_string());
        }
        let mut out = crate::image::blank_image(size.0, size.1, bg);
        for (img, masks, opacity) in images {
            let mut img = match img {
                Rendered::Blank | Rendered::Clear => continue,
                Rendered::Image { img, .. } => img.image,
                Rendered::Stored { drawn: Some(d), .. } => d.image.clone(),
                Rendered::Encoded { data: b, .. }
                | Rendered::Tile(TileData { data: b, .. }, _)
                | Rendered::Stored { data: b, .. } => {
                    crate::image::decode(&b).map_err(|e| e.to_string())?
                }
            };
            for m in &masks {
                crate::image::mask::mask_outside(&mut img, bbox, m);
            }
            if img.dimensions() != size {
                continue;
            }
            match opacity {
                Some(o) => fade(&mut out, &mut img, o, transparent),
                None => crate::image::overlay(&mut out, &img),
            }
        }
        if !notice.is_empty() {
            // on_source_errors: notify: the errors written over the rendered layers
            crate::source::draw_text(&mut out, &notice);
        }
        if let Some(((w, h), (x, y))) = place {
            // sub_image_result: the part drawn, in an image of the map's size
            let mut whole = crate::image::blank_image(w, h, bg);
            image::imageops::replace(&mut whole, &out, i64::from(x), i64::from(y));
            out = whole;
        }
        crate::image::encode(&out, &opts).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| WmsError::new(format!("rendering failed: {e}")))?
    .map_err(|e| WmsError::new(format!("error while processing image file: {e}")))?;
    let res = super::super::response::content_type_response(StatusCode::OK, &format, encoded);
    Ok(if cacheable {
        res
    } else {
        super::super::response::no_cache(res)
    })
}

/// The parameters of a GetMap of `version` (1.0.0 has `WMTVER`, 1.3.0 `CRS`).
pub(super) fn map_params(version: Version) -> [&'static str; 9] {
    [
        if version < Version::V110 {
            "wmtver"
        } else {
            "version"
        },
        "request",
        "layers",
        "styles",
        if version >= Version::V130 {
            "crs"
        } else {
            "srs"
        },
        "bbox",
        "width",
        "height",
        "format",
    ]
}

/// MapProxy's `validate_param`: `missing parameters ['a', 'b']`.
pub(super) fn check_missing(p: &super::Params, expected: &[&str]) -> Result<(), WmsError> {
    let missing: Vec<&str> = expected
        .iter()
        .copied()
        // 1.3.0 needs CRS: SRS does not stand in for it, as MapProxy validates before
        // `adapt_to_111` (request/wms/__init__.py:159-162, 229, 390)
        .filter(|k| !p.has(k))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let list = missing
        .iter()
        .map(|m| format!("'{m}'"))
        .collect::<Vec<_>>()
        .join(", ");
    Err(WmsError::new(format!("missing parameters [{list}]")))
}

/// `validate_bbox` and `validate_styles`: the bbox as given (axis order of the request; the
/// first BBOX, `request/wms/__init__.py:63`, may hold NaN, which passes MapProxy's
/// comparisons) and WIDTH×HEIGHT as MapProxy's `size` reads them (the first values,
/// `int(float(v))`; `None` when not numbers).
pub(super) fn check_bbox_styles(p: &super::Params) -> Result<(Bbox, Option<(f64, f64)>), WmsError> {
    let raw_bbox = p.get("bbox").unwrap_or_default();
    let bbox =
        parse_bbox(raw_bbox).ok_or_else(|| WmsError::new(format!("invalid bbox {raw_bbox}")))?;
    if bbox[0] >= bbox[2] || bbox[1] >= bbox[3] {
        return Err(WmsError::new(format!("invalid bbox {raw_bbox}")));
    }
    // `self.params['styles']`: all values joined (request/wms/__init__.py:259)
    if let Some(styles) = p.joined("styles") {
        if !styles
            .split(',')
            .all(|s| matches!(s, "" | "default" | "inspire_common:DEFAULT"))
        {
            return Err(
                WmsError::new(format!("unsupported styles: {styles}")).code("StyleNotDefined")
            );
        }
    }
    let size = dim_value(p.get("width")).zip(dim_value(p.get("height")));
    Ok((bbox, size))
}

/// [`check_bbox_styles`] for requests that need a drawable size and a bbox of numbers:
/// WIDTH/HEIGHT of 0, negative or not numbers, and a NaN bbox, are errors here (MapProxy
/// fails on them with a bare internal error).
pub(super) fn check_bbox_styles_size(p: &super::Params) -> Result<(Bbox, (u32, u32)), WmsError> {
    let (bbox, raw) = check_bbox_styles(p)?;
    if bbox.iter().any(|v| v.is_nan()) {
        let raw_bbox = p.get("bbox").unwrap_or_default();
        return Err(WmsError::new(format!("invalid bbox {raw_bbox}")));
    }
    Ok((bbox, positive_size(raw).ok_or_else(|| size_error(p))?))
}

/// A size of at least 1×1 that fits `u32`.
fn positive_size(raw: Option<(f64, f64)>) -> Option<(u32, u32)> {
    let ok = |v: f64| v >= 1.0 && v <= f64::from(u32::MAX);
    let (w, h) = raw?;
    (ok(w) && ok(h)).then_some((w as u32, h as u32))
}

/// Our answer to a size MapProxy cannot draw.
fn size_error(p: &super::Params) -> WmsError {
    WmsError::new(format!(
        "invalid image size {}x{}: width and height must be positive integers",
        p.get("width").unwrap_or_default(),
        p.get("height").unwrap_or_default()
    ))
    .code("InvalidParameterValue")
}

/// MapProxy with a negative WIDTH or HEIGHT: the resolution is negative, so each cache's
/// grid picks its finest level (`closest_level`), and the tiles covering the bbox there are
/// counted against `max_tile_limit` (`layer/cache_map_layer.py:69`): the first cache layer
/// over its limit gives MapProxy's "too many tiles" error. `None` when no cache would.
fn negative_size_error(
    wms: &WmsService,
    names: &[&str],
    bbox: Bbox,
    srs: &Srs,
    raw: Option<(f64, f64)>,
) -> Option<WmsError> {
    let (w, h) = raw?;
    if !(w < 0.0 || h < 0.0) || w == 0.0 || h == 0.0 || bbox.iter().any(|v| !v.is_finite()) {
        return None;
    }
    let mut render = Vec::new();
    for n in names {
        if let Some(l) = wms.layer(n) {
            l.render_layers(&mut render);
        }
    }
    for (_, l) in &render {
        let MapLayer::Cache(c) = l else { continue };
        let Some(g) = pick_grid(c, srs) else { continue };
        if g.max_tile_limit == 0 {
            continue;
        }
        let Ok(src_bbox) = srs.transform_bbox_to(&g.srs, bbox) else {
            continue;
        };
        if !bbox_intersects(g.grid.bbox(), src_bbox) {
            continue;
        }
        let res =
            ((src_bbox[2] - src_bbox[0]).abs() / w).min((src_bbox[3] - src_bbox[1]).abs() / h);
        let level = g.grid.closest_level(res);
        let Ok(affected) = g.grid.get_affected_level_tiles(src_bbox, level) else {
            continue;
        };
        let num_tiles = affected.grid_size.0.saturating_mul(affected.grid_size.1);
        if let Some(e) = too_many_tiles(g.max_tile_limit, num_tiles) {
            return Some(WmsError::new(e));
        }
    }
    None
}

/// `MapBBOXError` of `CacheMapLayer._image` as `LayerRenderer` words it (service/wms.py:673).
fn too_many_tiles(max_tile_limit: u32, num_tiles: i64) -> Option<String> {
    let limit = i64::from(max_tile_limit);
    (limit > 0 && num_tiles >= limit).then(|| {
        format!(
            "Request too large or invalid BBOX. (too many tiles, max_tile_limit: {limit}, num_tiles: {num_tiles})"
        )
    })
}

/// `validate_srs`: one of the service's `srs` (InvalidSRS, 1.3.0 InvalidCRS).
pub(super) fn check_srs(wms: &WmsService, req: &WmsRequest) -> Result<Arc<Srs>, WmsError> {
    let srs_code = req.srs_param().unwrap_or_default();
    let srs_code = srs_code.as_ref();
    let srs_ok = wms
        .config
        .srs
        .iter()
        .any(|s| s.eq_ignore_ascii_case(srs_code.trim()));
    match Srs::get(srs_code).ok().filter(|_| srs_ok) {
        Some(s) => Ok(s),
        None if req.version >= Version::V130 => {
            Err(WmsError::new(format!("unsupported crs: {srs_code}")).code("InvalidCRS"))
        }
        None => Err(WmsError::new(format!("unsupported srs: {srs_code}")).code("InvalidSRS")),
    }
}

/// Four numbers; NaN passes (as MapProxy's `float`), infinities do not (MapProxy fails on
/// them later with a bare internal error).
fn parse_bbox(s: &str) -> Option<Bbox> {
    let v: Vec<f64> = s
        .split(',')
        .map(|x| x.trim().parse::<f64>().ok().filter(|f| !f.is_infinite()))
        .collect::<Option<Vec<f64>>>()?;
    match v.as_slice() {
        [a, b, c, d] => Some([*a, *b, *c, *d]),
        _ => None,
    }
}

/// `int(float(v))` as MapProxy reads WIDTH/HEIGHT (`256.0` is 256, `-10` stays negative);
/// `None` for what is not a finite number.
pub(super) fn dim_value(s: Option<&str>) -> Option<f64> {
    let v = s?.trim().parse::<f64>().ok()?.trunc();
    v.is_finite().then_some(v)
}

async fn render_layer(
    layer: &MapLayer,
    q: &Query,
    format: &str,
    resampling: Resampling,
    client_params: &[(String, String)],
    under: Option<[u8; 3]>,
    tiled: bool,
) -> Result<Rendered, LayerError> {
    match layer {
        MapLayer::Cache(CacheLayer {
            direct_from: Some(d),
            ..
        }) if d.applies(q) => render_direct(&d.layer, q, format, client_params).await,
        // `query.tiled_only` reaches caches only (layer/cache_map_layer.py:34)
        MapLayer::Cache(c) if tiled => render_tile(c, q, format).await,
        MapLayer::Cache(c) => render_cache(c, q, resampling, under, true).await,
        MapLayer::Direct(d) => render_direct(d, q, format, client_params).await,
    }
}

/// A cache's `image.opacity` below 1 per layer to render, where MapProxy's LayerMerger uses
/// it (image/merge.py:63-118): a layer its cache draws (not the source of
/// `use_direct_from_level`), unless it is the only layer and opaque or the map is
/// transparent (then it is returned as it is).
fn layer_opacities(
    render: &[(String, MapLayer)],
    q: &Query,
    transparent: bool,
) -> Vec<Option<f64>> {
    render
        .iter()
        .map(|(_, l)| {
            let MapLayer::Cache(c) = l else { return None };
            if c.direct_from.as_ref().is_some_and(|d| d.applies(q)) {
                return None;
            }
            let opts = c.grids.first()?.manager.image_opts();
            let o = opts.opacity.filter(|o| *o < 1.0)?;
            (render.len() > 1 || (opts.transparent && !transparent)).then_some(o)
        })
        .collect()
}

/// A layer drawn with `opacity` (image/merge.py:98-118): over a transparent map its alpha
/// is multiplied by `int(255 * opacity)` (ImageChops.multiply: `a * c / 255`) and it is
/// composited; over an opaque map its colours (alpha dropped, `convert('RGB')`) are blended
/// (Image.blend: `out + opacity * (img - out)` in single precision, truncated).
fn fade(out: &mut RgbaImage, img: &mut RgbaImage, opacity: f64, transparent: bool) {
    if transparent {
        let c = (255.0 * opacity).max(0.0) as u32;
        for p in img.pixels_mut() {
            p.0[3] = (u32::from(p.0[3]) * c / 255) as u8;
        }
        crate::image::overlay(out, img);
        return;
    }
    let alpha = opacity as f32;
    for (o, i) in out.pixels_mut().zip(img.pixels()) {
        for k in 0..3 {
            let a = f32::from(o.0[k]);
            let v = a + alpha * (f32::from(i.0[k]) - a);
            o.0[k] = v.clamp(0.0, 255.0) as u8;
        }
    }
}

/// The single layer image `r` as LayerMerger.merge returns it (image/merge.py:63-71) and
/// the Pillow mode it is held in, when its image options are not transparent or the map is
/// (`map_transparent`) and it is of the map's `size`; `None` otherwise (it is merged).
/// Encoded images are decoded (`as_buffer` re-encodes them: another format or mode).
type Single<'a> = (Cow<'a, RgbaImage>, ImageMode, Option<Cow<'a, Indexed>>);

fn single_layer(
    r: &Rendered,
    map_transparent: bool,
    size: (u32, u32),
) -> Result<Option<Single<'_>>, String> {
    let (data, layer_transparent) = match r {
        Rendered::Blank | Rendered::Clear => return Ok(None),
        Rendered::Image {
            img,
            mode,
            transparent,
            indexed,
        } => {
            if (*transparent && !map_transparent) || img.image.dimensions() != size {
                return Ok(None);
            }
            return Ok(Some((
                Cow::Borrowed(&img.image),
                *mode,
                indexed.as_ref().map(Cow::Borrowed),
            )));
        }
        Rendered::Stored {
            drawn: Some(d),
            transparent,
            ..
        } => {
            if (*transparent && !map_transparent) || d.image.dimensions() != size {
                return Ok(None);
            }
            return Ok(Some((
                Cow::Borrowed(&d.image),
                d.mode,
                d.indexed.as_ref().map(Cow::Borrowed),
            )));
        }
        Rendered::Encoded {
            data, transparent, ..
        }
        | Rendered::Stored {
            data, transparent, ..
        } => (data, *transparent),
        Rendered::Tile(t, transparent) => (&t.data, *transparent),
    };
    if layer_transparent && !map_transparent {
        return Ok(None);
    }
    let img = crate::image::decode(data).map_err(|e| e.to_string())?;
    if img.dimensions() != size {
        return Ok(None);
    }
    let mode = opened_mode(data, layer_transparent);
    Ok(Some((
        Cow::Owned(img),
        mode,
        opened_indexed(data, mode).map(Cow::Owned),
    )))
}

/// The indices and palette of `data` when MapProxy opens it as `P` (`mode`, see
/// [`opened_mode`]): a paletted PNG.
fn opened_indexed(data: &[u8], mode: ImageMode) -> Option<Indexed> {
    if mode != ImageMode::P {
        return None;
    }
    Indexed::decode(data)
}

/// A paletted image as `warp` moves its pixels (a crop, nearest neighbour: see
/// [`crate::image::transform::keeps_pixels`]), which keeps it paletted.
fn warp_indexed(p: &Indexed, warp: &Warp<'_>) -> Indexed {
    Indexed::from_moved(&transform(&p.index_image(), warp), p.palette.clone())
}

/// `SRSConditional`: the grid in the query's SRS, else one of the same kind, else the first.
fn pick_grid<'a>(c: &'a CacheLayer, srs: &Srs) -> Option<&'a CacheGridLayer> {
    c.grids
        .iter()
        .find(|g| *g.srs == *srs)
        .or_else(|| {
            c.grids
                .iter()
                .find(|g| g.srs.is_latlong() == srs.is_latlong())
        })
        .or_else(|| c.grids.first())
}

/// With `stored`, a map that is exactly one tile is that tile as stored
/// ([`Rendered::Stored`]).
async fn render_cache(
    c: &CacheLayer,
    q: &Query,
    resampling: Resampling,
    under: Option<[u8; 3]>,
    stored: bool,
) -> Result<Rendered, LayerError> {
    let Some(g) = pick_grid(c, &q.srs) else {
        return Ok(Rendered::Blank);
    };
    // the cache's own `resampling_method` (CacheMapLayer: the tile manager's image_opts)
    let resampling = g.manager.image_opts().resampling.unwrap_or(resampling);
    // the layer's extent (else the grid's) in the query's SRS, and the part of the query
    // inside it
    let extent = match &g.extent {
        Some(e) => match e.bbox_for(&q.srs) {
            Some(b) => crate::pynum::values(b),
            None => return Ok(Rendered::Blank),
        },
        None => match g.srs.transform_bbox_to(&q.srs, g.grid.bbox()) {
            Ok(b) => b,
            Err(_) => return Ok(Rendered::Blank),
        },
    };
    if !bbox_intersects(extent, q.bbox) {
        return Ok(Rendered::Blank);
    }
    let contained = extent[0] <= q.bbox[0]
        && extent[1] <= q.bbox[1]
        && extent[2] >= q.bbox[2]
        && extent[3] >= q.bbox[3];
    let (sub_size, offset, sub_bbox) = if contained {
        (q.size, (0, 0), q.bbox)
    } else {
        crate::image::transform::bbox_position_in_image(q.bbox, q.size, extent)
    };
    if sub_size.0 == 0 || sub_size.1 == 0 {
        return Ok(Rendered::Blank);
    }
    if stored && contained {
        if let Some(r) = stored_tile(g, q).await? {
            return Ok(r);
        }
    }
    let sub = Query {
        bbox: sub_bbox,
        size: sub_size,
        srs: q.srs.clone(),
    };
    let (img, mode, indexed) = match cache_image(g, &sub, resampling, under).await? {
        Stitched::Missing => return Ok(Rendered::Blank),
        Stitched::Clear => return Ok(Rendered::Clear),
        Stitched::Image(img, mode, indexed) => (img, mode, indexed),
    };
    if contained {
        return Ok(Rendered::Image {
            img,
            mode,
            transparent: g.manager.image_opts().transparent,
            indexed,
        });
    }
    // sub_image_result: pasted into a transparent RGBA image (image/__init__.py:275-289)
    let mut out = RgbaImage::new(q.size.0, q.size.1);
    crate::image::paste(&mut out, &img.image, offset.0, offset.1);
    Ok(Rendered::Image {
        img: Known::unknown(out),
        mode: ImageMode::Rgba,
        transparent: true,
        indexed: None,
    })
}

/// `CacheMapLayer.get_map` of a cache that is another cache's source (source/tile.py
/// `CacheSource`): the map of `bbox` (in `srs`) at `size`, drawn from the cache's tiles as a
/// GetMap of it is; `None` where the cache has nothing (MapProxy's `BlankImageError`).
pub async fn cache_map(
    c: &CacheLayer,
    bbox: Bbox,
    size: (u32, u32),
    srs: Arc<Srs>,
    resampling: Resampling,
) -> Result<Option<RgbaImage>, String> {
    let q = Query { bbox, size, srs };
    match render_cache(c, &q, resampling, None, false).await {
        Ok(Rendered::Image { img, .. }) => Ok(Some(img.image)),
        Ok(_) => Ok(None),
        Err(LayerError::Source(e) | LayerError::Request(e)) => Err(e),
    }
}

/// `CacheMapLayer.get_map` with `tiled_only` (WMS-C, `TILED=true`;
/// layer/cache_map_layer.py:34-37, 52-57, 74-91): the cache's format and tile size, exactly one
/// tile whose bbox is the request's (within a tenth of a pixel), no extent clipping; that tile
/// as stored.
async fn render_tile(c: &CacheLayer, q: &Query, format: &str) -> Result<Rendered, LayerError> {
    let Some(g) = pick_grid(c, &q.srs) else {
        return Ok(Rendered::Blank);
    };
    let cache_opts = g.manager.image_opts();
    // `query.format` (the request's FORMAT without `image/` and options) against the tile
    // manager's `image_opts.format.ext`
    if ImageFormat::new(format) != cache_opts.format {
        return Err(LayerError::Request(format!(
            "Invalid request: invalid tile format, use {}",
            cache_opts.format.ext()
        )));
    }
    let (tw, th) = g.grid.tile_size();
    if q.size != (tw, th) {
        return Err(LayerError::Request(format!(
            "Invalid request: invalid tile size (use {tw}x{th})"
        )));
    }
    let src_bbox = q
        .srs
        .transform_bbox_to(&g.srs, q.bbox)
        .map_err(|e| e.to_string())?;
    let grid = &g.grid;
    if !bbox_intersects(grid.bbox(), src_bbox) {
        return Ok(Rendered::Blank);
    }
    let res = get_resolution(src_bbox, q.size);
    let res0 = grid.resolution(0).map_err(|e| e.to_string())?;
    if res > res0 * grid.max_shrink_factor() {
        return Ok(Rendered::Blank);
    }
    let level = grid.closest_level(res);
    // a GridError is a MapBBOXError here (layer/cache_map_layer.py:63-64)
    let affected = grid
        .get_affected_level_tiles(src_bbox, level)
        .map_err(|e| LayerError::Request(format!("Request too large or invalid BBOX. ({e})")))?;
    let num_tiles = affected.grid_size.0.saturating_mul(affected.grid_size.1);
    if let Some(e) = too_many_tiles(g.max_tile_limit, num_tiles) {
        return Err(LayerError::Request(e));
    }
    if num_tiles > 1 {
        return Err(LayerError::Request(
            "Request too large or invalid BBOX. (not a single tile)".into(),
        ));
    }
    // `bbox_equals(query.bbox, src_bbox, w/size/10, h/size/10)`: the request's bbox as
    // given (in its SRS) against the tile's (in the grid's)
    let b = q.bbox;
    let a = affected.bbox;
    let dx = ((b[2] - b[0]) / f64::from(q.size.0) / 10.0).abs();
    let dy = ((b[3] - b[1]) / f64::from(q.size.1) / 10.0).abs();
    // (util/bbox.py:70-73 compares minx and miny with the x delta, maxx and maxy with y's)
    let aligned = (b[0] - a[0]).abs() < dx
        && (b[1] - a[1]).abs() < dx
        && (b[2] - a[2]).abs() < dy
        && (b[3] - a[3]).abs() < dy;
    if !aligned {
        return Err(LayerError::Request(
            "Request too large or invalid BBOX. (query does not align to tile boundaries)".into(),
        ));
    }
    let Some(Some(coord)) = affected.tiles.clone().next() else {
        return Ok(Rendered::Blank);
    };
    match g.manager.load_tile(coord).await {
        Ok(t) => Ok(Rendered::Tile(t, cache_opts.transparent)),
        Err(TileError::OutOfRange | TileError::Missing) => Ok(Rendered::Blank),
        Err(e) => Err(LayerError::Source(e.to_string())),
    }
}

/// A map in the grid's SRS and of its tile size whose bbox is one tile's (within a tenth of a
/// pixel, `bbox_equals` with `xres/10`, `yres/10`): MapProxy's TileMerger returns that one tile
/// (image/tile.py:53-56) and the transformer returns it untransformed
/// (image/transform.py:84-85, 175-179), so its stored bytes reach the response when nothing
/// else changes them. `None`: not such a map (drawn as any other).
async fn stored_tile(g: &CacheGridLayer, q: &Query) -> Result<Option<Rendered>, LayerError> {
    let grid = &g.grid;
    if *g.srs != *q.srs || q.size != grid.tile_size() {
        return Ok(None);
    }
    let res = get_resolution(q.bbox, q.size);
    let Ok(res0) = grid.resolution(0) else {
        return Ok(None);
    };
    if res > res0 * grid.max_shrink_factor() {
        return Ok(None);
    }
    let Ok(affected) = grid.get_affected_level_tiles(q.bbox, grid.closest_level(res)) else {
        return Ok(None);
    };
    if affected.grid_size != (1, 1) {
        return Ok(None);
    }
    let (a, b) = (affected.bbox, q.bbox);
    let dx = (b[2] - b[0]) / f64::from(q.size.0) / 10.0;
    let dy = (b[3] - b[1]) / f64::from(q.size.1) / 10.0;
    // util/bbox.py:70-73: minx and miny with the x delta, maxx and maxy with y's
    let equal = (a[0] - b[0]).abs() < dx
        && (a[1] - b[1]).abs() < dx
        && (a[2] - b[2]).abs() < dy
        && (a[3] - b[3]).abs() < dy;
    if !equal {
        return Ok(None);
    }
    let Some(Some(coord)) = affected.tiles.clone().next() else {
        return Ok(None);
    };
    match load_tiles(&g.manager, &[Some(coord)]).await.pop() {
        Some(Ok(Some(t))) => {
            let opts = g.manager.image_opts();
            Ok(Some(Rendered::Stored {
                data: t.data,
                drawn: t.drawn,
                format: opts.format.clone(),
                transparent: opts.transparent,
                no_mode: opts.mode.is_none(),
            }))
        }
        // no tile: MapProxy's BlankImageError (layer/cache_map_layer.py:84-85)
        Some(Ok(None)) | None => Ok(Some(Rendered::Blank)),
        Some(Err(e)) => Err(LayerError::Source(e)),
    }
}

/// What [`cache_image`] drew.
enum Stitched {
    /// No tiles (MapProxy's `BlankImageError`).
    Missing,
    /// Tiles, all fully transparent.
    Clear,
    /// The image, the Pillow mode MapProxy holds it in, and its indices and palette when
    /// that is `P`.
    Image(Known<RgbaImage>, ImageMode, Option<Indexed>),
}

/// `CacheMapLayer._image`: the covering tiles, stitched and transformed. With `under`, the
/// tiles are drawn over that colour (see `stitch`), so the stitched image is opaque.
async fn cache_image(
    g: &CacheGridLayer,
    q: &Query,
    resampling: Resampling,
    under: Option<[u8; 3]>,
) -> Result<Stitched, LayerError> {
    let src_bbox = q
        .srs
        .transform_bbox_to(&g.srs, q.bbox)
        .map_err(|e| e.to_string())?;
    let grid = &g.grid;
    if !bbox_intersects(grid.bbox(), src_bbox) {
        return Ok(Stitched::Missing);
    }
    let res = get_resolution(src_bbox, q.size);
    let level = grid.closest_level(res);
    let res0 = grid.resolution(0).map_err(|e| e.to_string())?;
    if res > res0 * grid.max_shrink_factor() {
        return Ok(Stitched::Missing);
    }
    // a GridError is a MapBBOXError, the request's error (layer/cache_map_layer.py:64-65)
    let affected = grid
        .get_affected_level_tiles(src_bbox, level)
        .map_err(|e| LayerError::Request(format!("Request too large or invalid BBOX. ({e})")))?;
    let (cols, rows) = affected.grid_size;
    let num_tiles = cols.saturating_mul(rows);
    if let Some(e) = too_many_tiles(g.max_tile_limit, num_tiles) {
        return Err(LayerError::Request(e));
    }
    let coords: Vec<Option<TileCoord>> = affected.tiles.clone().collect();
    let tiles = load_tiles(&g.manager, &coords).await;
    let tiles: Vec<Option<TileData>> = tiles.into_iter().collect::<Result<_, String>>()?;
    // no tiles, or only fully transparent ones (paletted PNGs whose header chunks say so, not
    // decoded: blank tiles are common, see `png_is_transparent`): nothing to draw, as a
    // stitched image that is transparent everywhere stays so when transformed
    // (MapProxy: BlankImageError only when no tile is there, layer/cache_map_layer.py:84-85)
    if tiles.iter().all(Option::is_none) {
        return Ok(Stitched::Missing);
    }
    if tiles.iter().all(|t| {
        t.as_ref()
            .is_none_or(|t| crate::image::png_is_transparent(&t.data))
    }) {
        return Ok(Stitched::Clear);
    }
    let (tw, th) = grid.tile_size();
    let src_srs = g.srs.clone();
    let q = q.clone();
    let abbox = affected.bbox;
    let cache_opts = g.manager.image_opts();
    // TileMerger: one tile is that tile as opened, more are pasted into a `create_image` of
    // the cache's options (image/tile.py:53-60)
    let stitched_mode = match tiles.as_slice() {
        [Some(t)] => match &t.drawn {
            Some(d) => d.mode,
            None => opened_mode(&t.data, cache_opts.transparent),
        },
        _ => created_mode(cache_opts.mode, cache_opts.transparent),
    };
    // one paletted tile: its indices and palette
    let stitched_indexed = match tiles.as_slice() {
        [Some(t)] if stitched_mode == ImageMode::P => match &t.drawn {
            Some(d) => d.indexed.clone(),
            None => Some(t.data.clone()).and_then(|d| Indexed::decode(&d)),
        },
        _ => None,
    };
    crate::image::cpu_bound(move || -> Result<Stitched, String> {
        let w = u32::try_from(cols).map_err(|e| e.to_string())? * tw;
        let h = u32::try_from(rows).map_err(|e| e.to_string())? * th;
        // a tile this request made is drawn as made, before it was encoded (MapProxy's
        // created tiles keep their image: cache/tile_creator.py, image/tile.py TileSplitter)
        let parts: Vec<Option<StitchTile>> = tiles
            .iter()
            .map(|t| {
                t.as_ref().map(|t| match &t.drawn {
                    Some(d) => StitchTile::Drawn(&d.image),
                    None => StitchTile::Encoded(&t.data),
                })
            })
            .collect();
        let ncols = usize::try_from(cols).map_err(|e| e.to_string())?;
        let warp = Warp {
            src_bbox: abbox,
            src_srs: &src_srs,
            dst_size: q.size,
            dst_bbox: q.bbox,
            dst_srs: &q.srs,
            resampling,
        };
        // drawn over the background only when the transform keeps the pixels: Pillow
        // resamples transparent tiles premultiplied by alpha and MapProxy lays the result
        // over the background after, which rounds otherwise than resampling opaque pixels
        let keeps = crate::image::transform::keeps_pixels((w, h), &warp);
        let under = under.filter(|_| keeps);
        let stitched =
            crate::image::stitch(&parts, ncols, (tw, th), under).map_err(|e| e.to_string())?;
        debug_assert_eq!(stitched.dimensions(), (w, h));
        let stitched = Known {
            image: &stitched,
            opaque: under.is_some(),
        };
        let mode = if keeps {
            stitched_mode
        } else {
            resampled_mode(stitched_mode)
        };
        let indexed = stitched_indexed
            .filter(|p| keeps && (p.width, p.height) == (w, h))
            .map(|p| warp_indexed(&p, &warp));
        Ok(Stitched::Image(
            transform_known(stitched, &warp),
            mode,
            indexed,
        ))
    })
    .await
    .map_err(|e| e.to_string())?
    .map_err(LayerError::Source)
}

/// The tiles at `coords` (in order; `None` outside the grid or where nothing was made),
/// making missing ones as MapProxy's `TileCreator` does: the tiles grouped by meta tile, at
/// most `concurrent_tile_creators` meta tiles of this request at once; with
/// `minimize_meta_requests` and more than one tile missing, one minimal meta tile of the
/// missing ones (`cache/tile_creator.py:53-56`).
async fn load_tiles(
    manager: &TileManager,
    coords: &[Option<TileCoord>],
) -> Vec<Result<Option<TileData>, String>> {
    if manager.minimizes_meta_requests() {
        // the cached tiles first, then the missing ones (cache/tile_manager.py:162-178)
        let mut out: Vec<Result<Option<TileData>, String>> = Vec::with_capacity(coords.len());
        let mut missing = Vec::new();
        for (i, c) in coords.iter().enumerate() {
            let r = match *c {
                // outside the cache's coverage: no tile (cache/tile_manager.py:110-117)
                None => Ok(None),
                Some(c) if manager.outside_coverage(c) => Ok(None),
                Some(c) => match manager.cached_tile(c).await {
                    Ok(Some(t)) => Ok(Some(t)),
                    Ok(None) => {
                        missing.push((i, c));
                        Ok(None)
                    }
                    Err(TileError::OutOfRange) => Ok(None),
                    Err(e) => Err(e.to_string()),
                },
            };
            out.push(r);
        }
        if missing.len() > 1 {
            let wanted: Vec<TileCoord> = missing.iter().map(|(_, c)| *c).collect();
            match manager.create_minimal(&wanted).await {
                Ok(made) => {
                    for (i, c) in missing {
                        out[i] = Ok(made.get(&c).cloned());
                    }
                }
                // the source has nothing there (min_res/max_res, a source cache without it)
                Err(TileError::Missing) => {}
                Err(e) => {
                    for (i, _) in missing {
                        out[i] = Err(e.to_string());
                    }
                }
            }
            return out;
        }
    }
    load_tiles_by_meta_tile(manager, coords).await
}

/// [`load_tiles`] by meta tile.
async fn load_tiles_by_meta_tile(
    manager: &TileManager,
    coords: &[Option<TileCoord>],
) -> Vec<Result<Option<TileData>, String>> {
    // meta tile → the indexes of its tiles, in first-seen order
    let meta = manager.meta_grid();
    let mut groups: Vec<(TileCoord, Vec<(usize, TileCoord)>)> = Vec::new();
    let mut index: std::collections::HashMap<TileCoord, usize> = Default::default();
    for (i, c) in coords.iter().enumerate() {
        let Some(c) = *c else { continue };
        let main = meta.main_tile(c).unwrap_or(c);
        let gi = *index.entry(main).or_insert_with(|| {
            groups.push((main, Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((i, c));
    }
    let mut out: Vec<Result<Option<TileData>, String>> = coords.iter().map(|_| Ok(None)).collect();
    let mut done = stream::iter(groups.into_iter().map(|(_, tiles)| async move {
        join_all(tiles.into_iter().map(|(i, c)| async move {
            let r = match manager.load_tile(c).await {
                Ok(t) => Ok(Some(t)),
                Err(TileError::OutOfRange | TileError::Missing) => Ok(None),
                Err(e) => Err(e.to_string()),
            };
            (i, r)
        }))
        .await
    }))
    .buffer_unordered(manager.concurrent_tile_creators());
    while let Some(group) = done.next().await {
        for (i, r) in group {
            out[i] = r;
        }
    }
    out
}

/// The `bbox_srs` entry with a bbox for the map's SRS (MapProxy's `srs_extents`): where the
/// map's bbox is not inside it, the part inside (`bbox_position_in_image`: its size, offset
/// and bbox), or `outside` when the two do not meet (or the part is not a pixel wide).
#[allow(clippy::type_complexity)]
fn srs_extent_limit(
    wms: &WmsService,
    srs: &Srs,
    bbox: Bbox,
    size: (u32, u32),
) -> (Option<((u32, u32), (u32, u32), Bbox)>, bool) {
    let Some(e) = wms
        .config
        .bbox_srs
        .iter()
        .find(|(code, _)| code == srs.code())
        .and_then(|(_, b)| b.map(crate::pynum::values))
    else {
        return (None, false);
    };
    // bbox_contains, with its tolerance of a 1e13th of the extent (util/bbox.py:116-146)
    let (dx, dy) = ((e[2] - e[0]).abs() / 10e12, (e[3] - e[1]).abs() / 10e12);
    if e[0] <= bbox[0] + dx && e[2] >= bbox[2] - dx && e[1] <= bbox[1] + dy && e[3] >= bbox[3] - dy
    {
        return (None, false);
    }
    if !bbox_intersects(e, bbox) {
        return (None, true);
    }
    let sub = crate::image::transform::bbox_position_in_image(bbox, size, e);
    if sub.0 .0 == 0 || sub.0 .1 == 0 {
        return (None, true);
    }
    (Some(sub), false)
}

/// MapProxy's `combined_layers` (service/wms.py:875-892): each layer is combined with the
/// one before it where both are WMS sources that can be asked in one request
/// ([`WmsSource::combined`](crate::source::WmsSource::combined)) and both are limited
/// to the same area (`LimitedLayer.combined_layer`).
#[allow(clippy::type_complexity)]
fn combine_layers(
    render: Vec<(String, MapLayer)>,
    mut masks: Vec<Vec<geo::MultiPolygon<f64>>>,
) -> (Vec<(String, MapLayer)>, Vec<Vec<geo::MultiPolygon<f64>>>) {
    masks.resize(render.len(), Vec::new());
    let mut out: Vec<(String, MapLayer)> = Vec::with_capacity(render.len());
    let mut out_masks: Vec<Vec<geo::MultiPolygon<f64>>> = Vec::with_capacity(render.len());
    for ((name, layer), mask) in render.into_iter().zip(masks) {
        if let (Some((_, MapLayer::Direct(last))), Some(last_mask), MapLayer::Direct(d)) =
            (out.last_mut(), out_masks.last(), &layer)
        {
            let combined = match (&last.wms, &d.wms) {
                (Some(a), Some(b)) if *last_mask == mask => a.combined(b),
                _ => None,
            };
            if let Some(c) = combined {
                let c = Arc::new(c);
                last.source = c.clone();
                last.wms = Some(c);
                continue;
            }
        }
        out.push((name, layer));
        out_masks.push(mask);
    }
    (out, out_masks)
}

/// A direct WMS source (in the query's SRS if supported, else reprojected from a supported
/// one by the source, as MapProxy's `WMSLikeSource._get_transformed`).
async fn render_direct(
    d: &DirectLayer,
    q: &Query,
    format: &str,
    client_params: &[(String, String)],
) -> Result<Rendered, LayerError> {
    // a seed_only source when not seeding: MapProxy's DummySource raises BlankImageError,
    // the layer draws nothing (source/__init__.py:86-87)
    // and a source outside its min_res/max_res for the map (source/wms.py:67)
    let mq = MapQuery {
        bbox: q.bbox,
        size: q.size,
        srs: q.srs.epsg(),
        format: ImageFormat::new(
            format
                .split(';')
                .next()
                .unwrap_or(format)
                .trim()
                .to_string(),
        ),
        transparent: d.transparent,
    };
    if d.source.blank_for(&mq) {
        return Ok(Rendered::Blank);
    }
    let img = d
        .source
        .get_map_forwarding(&mq, client_params)
        .await
        .map_err(|e| e.message)?;
    // MapProxy peeks at the bytes for their format (image/__init__.py:43-50, 241-244)
    let format = crate::image::sniff_format(&img.data).or(img.format);
    Ok(Rendered::Encoded {
        data: img.data,
        format,
        transparent: d.transparent,
        as_sent: !img.drawn,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_position() {
        // MapProxy's doctest
        let (size, off, sub) = crate::image::transform::bbox_position_in_image(
            [-180.0, -90.0, 180.0, 90.0],
            (360, 180),
            [-60.0, -30.0, 180.0, 90.0],
        );
        assert_eq!(
            (size, off, sub),
            ((240, 120), (120, 0), [-60.0, -30.0, 180.0, 90.0])
        );
        assert_eq!(parse_bbox("1,2,3,4"), Some([1.0, 2.0, 3.0, 4.0]));
        assert_eq!(parse_bbox("1,2,3"), None);
        assert_eq!(parse_bbox("1,2,x,4"), None);
        assert_eq!(parse_bbox("nan,0,1,2").map(|b| b[0].is_nan()), Some(true));
        assert_eq!(parse_bbox("0,0,inf,1"), None);
        assert_eq!(dim_value(Some(" 256.7")), Some(256.0));
        assert_eq!(dim_value(Some("-10")), Some(-10.0));
        assert_eq!(dim_value(Some("inf")), None);
        assert_eq!(positive_size(Some((0.0, 5.0))), None);
        assert_eq!(positive_size(Some((-10.0, 5.0))), None);
        assert_eq!(positive_size(Some((4294967297.0, 5.0))), None);
        assert_eq!(positive_size(Some((3.0, 5.0))), Some((3, 5)));
    }
}
