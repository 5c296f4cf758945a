//! TMS and `/tiles` (MapProxy's `service/tile.py` `TileServer`, `request/tile.py`).

use std::sync::Arc;

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;

use super::response::{html_escape, mimetype_response, no_cache, tile_response};
use super::{denied_response, Ctx, MapProxyService, TileLayer, TileService};
use crate::authorize::{Denied, QueryExtent};
use crate::grid::{default_bbox, Num, Origin, TileCoord, TileGrid};
use crate::tile::TileError;

/// Which exception document a request answers with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    /// `/tms`: `TileMapServerError`, text/xml, 404 (500 when internal).
    Tms,
    /// `/tiles`: the message as text/plain, 404 (500 when internal).
    Tiles,
}

/// A `RequestError` of the tile services.
#[derive(Debug)]
pub(crate) struct TileRequestError {
    pub msg: String,
    pub internal: bool,
    /// The OWS exception code (WMTS answers use it for the status).
    pub code: Option<&'static str>,
    /// An authorizer's denial: rendered as MapProxy renders a `RequestError` with a status
    /// and no request, whatever the service.
    pub denied: Option<Denied>,
}

impl TileRequestError {
    pub(crate) fn new(msg: impl Into<String>) -> Self {
        TileRequestError {
            msg: msg.into(),
            internal: false,
            code: None,
            denied: None,
        }
    }

    pub fn denied(d: Denied) -> Self {
        TileRequestError {
            denied: Some(d),
            ..TileRequestError::new(d.message())
        }
    }

    pub(crate) fn with_code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
}

pub(crate) fn render_error(kind: Kind, e: &TileRequestError) -> Response<Body> {
    if let Some(d) = e.denied {
        return denied_response(d);
    }
    let status = if e.internal {
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::NOT_FOUND
    };
    let res = match kind {
        Kind::Tms => mimetype_response(
            status,
            "text/xml",
            format!(
                "<?xml version=\"1.0\"?>\n<TileMapServerError>\n    <Message>{}</Message>\n</TileMapServerError>",
                html_escape(&e.msg)
            ),
        ),
        Kind::Tiles => mimetype_response(status, "text/plain", e.msg.clone()),
    };
    no_cache(res)
}

/// A parsed tile request (`/layer[/grid]/z/x/y.format`).
#[derive(Debug, PartialEq)]
pub(crate) struct TileReq<'a> {
    pub layer: &'a str,
    pub layer_spec: Option<&'a str>,
    /// x, y, z as given (numbers too large for i64 are clamped: they are out of range anyway).
    pub tile: (i64, i64, i64),
    pub format: &'a str,
}

fn is_int(s: &str) -> bool {
    let d = s.strip_prefix('-').unwrap_or(s);
    !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit())
}

pub(crate) fn parse_int(s: &str) -> i64 {
    s.parse::<i64>().unwrap_or(if s.starts_with('-') {
        i64::MIN
    } else {
        i64::MAX
    })
}

/// MapProxy's `tile_req_re` (searched from the start, nothing required after the format):
/// `^(/[^/]+)/((1.0.0)/)?([^/]+)/(([^/]+)/)?(-?\d+)/(-?\d+)/(-?\d+)\.(\w+)`, tried in the
/// regex's order of alternatives. Returns the first segment and the request.
pub(crate) fn parse_tile_path(path: &str) -> Option<(&str, TileReq<'_>)> {
    parse_tile_path_with(path, true)
}

/// [`parse_tile_path`]; without `version` the `1.0.0/` group is not in the regex (KML's).
pub(crate) fn parse_tile_path_with(path: &str, version: bool) -> Option<(&str, TileReq<'_>)> {
    let allow_version = version;
    let rest = path.strip_prefix('/')?;
    // the regex reads at most seven segments: begin, 1.0.0, layer, spec, z, x, y.format
    // (split at `/` bytes: `str::split` with a char pattern searches with memchr per segment,
    // which costs more than the scan for these short segments)
    let mut buf = [""; 7];
    let mut n = 0;
    let mut start = 0;
    for (i, b) in rest.bytes().enumerate() {
        if b == b'/' {
            buf[n] = &rest[start..i];
            n += 1;
            start = i + 1;
            if n == buf.len() {
                break;
            }
        }
    }
    if n < buf.len() {
        buf[n] = &rest[start..];
        n += 1;
    }
    let segs = &buf[..n];
    let begin = *segs.first()?;
    if begin.is_empty() || segs.len() < 2 {
        return None;
    }
    for (version, spec) in [(true, true), (true, false), (false, true), (false, false)] {
        let mut i = 1;
        if version && !allow_version {
            continue;
        }
        if version {
            if segs.get(i) != Some(&"1.0.0") {
                continue;
            }
            i += 1;
        }
        let Some(layer) = segs.get(i).filter(|s| !s.is_empty()) else {
            continue;
        };
        i += 1;
        let mut layer_spec = None;
        if spec {
            let Some(s) = segs.get(i).filter(|s| !s.is_empty()) else {
                continue;
            };
            layer_spec = Some(*s);
            i += 1;
        }
        let (Some(z), Some(x), Some(last)) = (segs.get(i), segs.get(i + 1), segs.get(i + 2)) else {
            continue;
        };
        if !is_int(z) || !is_int(x) {
            continue;
        }
        let Some((y, fmt)) = last.split_once('.') else {
            continue;
        };
        let fmt_end = word_len(fmt);
        if !is_int(y) || fmt_end == 0 {
            continue;
        }
        return Some((
            begin,
            TileReq {
                layer,
                layer_spec,
                tile: (parse_int(x), parse_int(y), parse_int(z)),
                format: &fmt[..fmt_end],
            },
        ));
    }
    None
}

/// The length of the leading `\w+` of `s` (Python's Unicode word characters).
pub(crate) fn word_len(s: &str) -> usize {
    // ASCII first: the only other bytes that can start a word character are those of
    // multi-byte characters, for which the Unicode test below decides
    let ascii = s
        .bytes()
        .position(|b| !(b.is_ascii_alphanumeric() || b == b'_'))
        .unwrap_or(s.len());
    if s.as_bytes().get(ascii).is_none_or(|b| b.is_ascii()) {
        return ascii;
    }
    // `ascii` is a character boundary (the byte before it is ASCII, or it is 0)
    let rest = &s[ascii..];
    ascii
        + rest
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(rest.len(), |(i, _)| i)
}

/// `capabilities_re`: `^.*/1\.0\.0/?(/(?P<layer>[^/]+))?(/(?P<layer_spec>[^/]+))?$`.
/// `Some((layer, layer_spec))` when it matches.
fn parse_capabilities_path(path: &str) -> Option<(Option<&str>, Option<&str>)> {
    // A match starts at one of the last four `/` (at most three may follow it), tried from
    // the end as the greedy `.*` does; tile paths are turned down without a substring search.
    let slashes = path.bytes().enumerate().rev().filter(|&(_, b)| b == b'/');
    for (p, _) in slashes.take(4) {
        if !path[p..].starts_with("/1.0.0") {
            continue;
        }
        let rest = &path[p + "/1.0.0".len()..];
        for r in [rest.strip_prefix('/'), Some(rest)].into_iter().flatten() {
            if r.is_empty() {
                return Some((None, None));
            }
            let Some(r) = r.strip_prefix('/') else {
                continue;
            };
            let mut parts = r.split('/');
            match (parts.next(), parts.next(), parts.next()) {
                (Some(l), None, None) if !l.is_empty() => return Some((Some(l), None)),
                (Some(l), Some(s), None) if !l.is_empty() && !s.is_empty() => {
                    return Some((Some(l), Some(s)))
                }
                _ => {}
            }
        }
    }
    None
}

/// MapProxy's `TileServiceGrid`: profile, level offset.
#[derive(Clone, Debug)]
pub(crate) struct ServiceGrid {
    pub profile: &'static str,
    pub srs_name: String,
    skip_first_level: bool,
    skip_odd_level: bool,
}

impl ServiceGrid {
    /// The layer's service grid (computed once per layer: every tile request needs it).
    pub fn of(layer: &TileLayer) -> &ServiceGrid {
        layer
            .service_grid
            .get_or_init(|| ServiceGrid::compute(&layer.grid))
    }

    fn compute(g: &TileGrid) -> ServiceGrid {
        let srs = g.srs();
        let (profile, srs_name, skip_first_level) =
            if matches!(srs, 900913 | 3857) && Some(g.bbox()) == default_bbox(900913) {
                ("global-mercator", "OSGEO:41001".to_string(), true)
            } else if srs == 4326 && Some(g.bbox()) == default_bbox(4326) {
                ("global-geodetic", "EPSG:4326".to_string(), true)
            } else {
                ("local", format!("EPSG:{srs}"), false)
            };
        let res = g.resolutions();
        let skip_odd_level = res.len() >= 2 && res[0] / res[1] == std::f64::consts::SQRT_2;
        ServiceGrid {
            profile,
            srs_name,
            skip_first_level,
            skip_odd_level,
        }
    }

    /// Is every second level left out (`res_factor: sqrt2`)?
    pub fn skips_odd_levels(&self) -> bool {
        self.skip_odd_level
    }

    /// `tile_sets`: (order, resolution) of every public level.
    pub fn tile_sets(&self, layer: &TileLayer) -> Vec<(usize, Num)> {
        let res = layer.grid.resolutions_num();
        let start = match (self.skip_first_level, self.skip_odd_level) {
            (true, true) => 2,
            (true, false) => 1,
            _ => 0,
        };
        let step = if self.skip_odd_level { 2 } else { 1 };
        res.iter()
            .skip(start)
            .step_by(step)
            .copied()
            .enumerate()
            .collect()
    }

    /// `internal_tile_coord`: the grid's coordinate of a public one, `None` outside.
    pub fn internal_tile_coord(
        &self,
        layer: &TileLayer,
        (x, y, z): (i64, i64, i64),
        use_profiles: bool,
    ) -> Option<TileCoord> {
        if z < 0 {
            return None;
        }
        let mut z = z;
        if use_profiles && self.skip_first_level {
            z = z.checked_add(1)?;
        }
        if self.skip_odd_level {
            z = z.checked_mul(2)?;
        }
        let z = usize::try_from(z).ok()?;
        layer.grid.limit_tile((x, y, z))
    }
}

/// The format MapProxy's `TileLayer.format` compares requests with.
pub(crate) fn layer_format(layer: &TileLayer) -> &str {
    if layer.format.ext() == "mixed" {
        "png"
    } else {
        layer.format.ext()
    }
}

/// `/tms...` or `/tiles...`.
pub(crate) async fn handle(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    if ctx.path.starts_with("/tms") {
        if let Some((layer, spec)) = parse_capabilities_path(ctx.path) {
            return match layer {
                None => tms_capabilities(svc, ctx),
                Some(l) => match tile_layer(svc, l, spec) {
                    Some(layer) => match ctx.check_layer("tms", &layer.name, None) {
                        Ok(()) => tilemap(svc, ctx, layer),
                        Err(d) => denied_response(d),
                    },
                    None => render_error(
                        Kind::Tms,
                        &TileRequestError::new(format!("unknown layer: {l}")),
                    ),
                },
            };
        }
        if ctx.path == "/tms" || ctx.path == "/tms/" {
            return tms_root(svc, ctx);
        }
        return tile(svc, ctx, Kind::Tms).await;
    }
    tile(svc, ctx, Kind::Tiles).await
}

fn tile_layer<'s>(
    svc: &'s MapProxyService,
    layer: &str,
    spec: Option<&str>,
) -> Option<&'s Arc<TileLayer>> {
    svc.find_tile_layer(TileService::Tms, layer, spec)
}

fn tms_root(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    let body = format!(
        "<?xml version=\"1.0\"?>\n    <Services>\n    <TileMapService title=\"{}\" version=\"1.0.0\"\n        href=\"{}/tms/1.0.0/\" />\n</Services>",
        &svc.config.md.title,
        ctx.script_url()
    );
    mimetype_response(StatusCode::OK, "text/xml", body)
}

fn tms_capabilities(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    let md = &svc.config.md;
    let mut body = format!(
        "<?xml version=\"1.0\"?>\n    <TileMapService version=\"1.0.0\">\n    <Title>{}</Title>\n    <Abstract>{}</Abstract>\n",
        &md.title,
        &md.abstract_
    );
    if !md.keyword_list.is_empty() {
        body.push_str("    <KeywordList>");
        for kw in &md.keyword_list {
            let words: Vec<String> = kw.keywords.iter().map(|k| format!("\"{}\"", k)).collect();
            body.push_str(&words.join(" "));
        }
        body.push_str("</KeywordList>\n");
    }
    if let Some(c) = &md.contact {
        let e = |s: &str| s.to_string();
        body.push_str(&format!(
            "    <ContactInformation>\n        <ContactPersonPrimary>\n            <ContactPerson>{}</ContactPerson>\n            <ContactOrganization>{}</ContactOrganization>\n        </ContactPersonPrimary>\n        <ContactPosition>{}</ContactPosition>\n        <ContactAddress>\n            <Address>{}</Address>\n            <City>{}</City>\n            <PostCode>{}</PostCode>\n            <Country>{}</Country>\n        </ContactAddress>\n        <ContactVoiceTelephone>{}</ContactVoiceTelephone>\n        <ContactFacsimileTelephone>{}</ContactFacsimileTelephone>\n        <ContactElectronicMailAddress>{}</ContactElectronicMailAddress>\n    </ContactInformation>\n",
            e(&c.person),
            e(&c.organization),
            e(&c.position),
            e(&c.address),
            e(&c.city),
            e(&c.postcode),
            e(&c.country),
            e(&c.phone),
            e(&c.fax),
            e(&c.email)
        ));
    }
    body.push_str("    <TileMaps>\n");
    let use_grid_names = svc.use_grid_names(TileService::Tms);
    let layers = svc.tile_layers(TileService::Tms);
    let mut names: Vec<&str> = Vec::new();
    for l in &layers {
        if !names.contains(&l.name.as_str()) {
            names.push(&l.name);
        }
    }
    let listing = match ctx.listing("tms", &names) {
        Ok(l) => l,
        Err(d) => return denied_response(d),
    };
    for layer in layers.into_iter().filter(|l| listing.allows(&l.name)) {
        let g = ServiceGrid::of(layer);
        body.push_str(&format!(
            "        <TileMap title=\"{}\"\n                 srs=\"{}\"\n                 profile=\"{}\"\n                 href=\"{}/tms/1.0.0/{}/{}\" />\n",
            &layer.title,
            g.srs_name,
            g.profile,
            ctx.script_url(),
            &layer.name,
            &layer.url_grid_name(use_grid_names)
        ));
    }
    body.push_str("    </TileMaps>\n</TileMapService>\n");
    mimetype_response(StatusCode::OK, "text/xml", body)
}

fn tilemap(svc: &MapProxyService, ctx: &Ctx<'_>, layer: &TileLayer) -> Response<Body> {
    let g = ServiceGrid::of(layer);
    let b = layer.bbox;
    let (tw, th) = layer.grid.tile_size();
    let url = format!(
        "{}/tms/1.0.0/{}/{}",
        ctx.script_url(),
        &layer.name,
        html_escape(&layer.url_grid_name(svc.use_grid_names(TileService::Tms)))
    );
    let mime = if layer.format.ext() == "mixed" {
        "image/png".to_string()
    } else {
        layer.format.mime_type()
    };
    let mut body = format!(
        "<?xml version=\"1.0\"?>\n <TileMap version=\"1.0.0\">\n  <Title>{}</Title>\n  <Abstract></Abstract>\n  <SRS>{}</SRS>\n  <BoundingBox minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\" />\n  <Origin x=\"{}\" y=\"{}\" />\n  <TileFormat width=\"{tw}\" height=\"{th}\" mime-type=\"{}\" extension=\"{}\" />\n  <TileSets profile=\"{}\">\n",
        &layer.title,
        g.srs_name,
        b[0],
        b[1],
        b[2],
        b[3],
        b[0],
        b[1],
        &mime,
        layer_format(layer),
        g.profile,
    );
    for (order, res) in g.tile_sets(layer) {
        body.push_str(&format!(
            "    <TileSet href=\"{url}/{order}\" units-per-pixel=\"{res}\" order=\"{order}\" />\n"
        ));
    }
    body.push_str("  </TileSets>\n</TileMap>");
    mimetype_response(StatusCode::OK, "text/xml", body)
}

async fn tile(svc: &MapProxyService, ctx: &Ctx<'_>, kind: Kind) -> Response<Body> {
    let prefix = match kind {
        Kind::Tms => "tms",
        Kind::Tiles => "tiles",
    };
    let req = match parse_tile_path(ctx.path) {
        Some((begin, req)) if begin == prefix => req,
        _ => {
            return render_error(
                kind,
                &TileRequestError::new(format!("invalid request ({})", ctx.path)),
            )
        }
    };
    let origin = match kind {
        Kind::Tms => Some(Origin::LowerLeft),
        Kind::Tiles => match ctx.arg("origin").as_deref() {
            Some("sw") => Some(Origin::LowerLeft),
            Some("nw") => Some(Origin::UpperLeft),
            _ => svc.config.tms.as_ref().and_then(|t| t.origin),
        },
    };
    let Some(layer) = tile_layer(svc, req.layer, req.layer_spec) else {
        return render_error(
            kind,
            &TileRequestError::new(format!("unknown layer: {}", req.layer)),
        );
    };
    match serve_tile(svc, ctx, "tms", layer, &req, origin, kind == Kind::Tms).await {
        Ok(res) => res,
        Err(e) => render_error(kind, &e),
    }
}

pub(crate) fn out_of_range() -> TileRequestError {
    TileRequestError::new("The requested tile is outside the bounding box of the tile map.")
        .with_code("TileOutOfRange")
}

/// The grid's coordinate of a requested tile in `origin` (`None`: the grid's own).
pub(crate) fn grid_coord(
    layer: &TileLayer,
    tile: (i64, i64, i64),
    origin: Option<Origin>,
    use_profiles: bool,
) -> Result<TileCoord, TileRequestError> {
    let g = ServiceGrid::of(layer);
    let coord = g
        .internal_tile_coord(layer, tile, use_profiles)
        .ok_or_else(out_of_range)?;
    match origin {
        Some(o) if o != layer.grid.origin() => layer
            .grid
            .flip_tile_coord(coord)
            .map_err(|_| out_of_range()),
        _ => Ok(coord),
    }
}

/// `authorize_tile_layer` for a tile (or a KML document of one): asked with the tile's
/// extent, which a tile outside the grid has not (`TileOutOfRange` first, as MapProxy).
pub(crate) fn authorize_tile(
    ctx: &Ctx<'_>,
    service: &str,
    layer: &TileLayer,
    tile: (i64, i64, i64),
    origin: Option<Origin>,
    use_profiles: bool,
) -> Result<(), TileRequestError> {
    if ctx.authorizer.is_none() {
        return Ok(());
    }
    let extent = tile_extent(layer, tile, origin, use_profiles)?;
    ctx.check_layer(service, &layer.name, Some(&extent))
        .map_err(TileRequestError::denied)
}

/// The extent of a requested tile, as the authorizer is asked with it (a tile outside the
/// grid: `TileOutOfRange`).
pub(crate) fn tile_extent(
    layer: &TileLayer,
    tile: (i64, i64, i64),
    origin: Option<Origin>,
    use_profiles: bool,
) -> Result<QueryExtent, TileRequestError> {
    let coord = grid_coord(layer, tile, origin, use_profiles)?;
    let bbox = layer
        .grid
        .tile_bbox(coord, false)
        .map_err(|_| out_of_range())?;
    Ok(QueryExtent {
        srs: format!("EPSG:{}", layer.grid.srs()),
        bbox,
    })
}

/// `TileLayer.render` + `TileServer.map`'s response: the authorizer (`service` is what it is
/// asked for), format check, coordinate, the tile.
pub(crate) async fn serve_tile(
    svc: &MapProxyService,
    ctx: &Ctx<'_>,
    service: &str,
    layer: &TileLayer,
    req: &TileReq<'_>,
    origin: Option<Origin>,
    use_profiles: bool,
) -> Result<Response<Body>, TileRequestError> {
    authorize_tile(ctx, service, layer, req.tile, origin, use_profiles)?;
    let fmt = layer_format(layer);
    if req.format != fmt {
        return Err(TileRequestError::new(format!(
            "invalid format ({}). this tile set only supports ({fmt})",
            req.format
        ))
        .with_code("InvalidParameterValue"));
    }
    let coord = grid_coord(layer, req.tile, origin, use_profiles)?;
    let data = match layer.provider.tile(coord).await {
        Ok(d) => d,
        Err(TileError::OutOfRange) => return Err(out_of_range()),
        Err(TileError::Missing) => {
            return Ok(empty_tile_response(svc, ctx, layer));
        }
        Err(e) => {
            return Err(TileRequestError {
                msg: e.to_string(),
                internal: true,
                code: None,
                denied: None,
            })
        }
    };
    let content_type: std::borrow::Cow<'static, str> = if layer.format.ext() == "mixed" {
        if data.data.starts_with(&[0xFF, 0xD8]) {
            "image/jpeg".into()
        } else {
            "image/png".into()
        }
    } else {
        match req.format {
            "png" => "image/png".into(),
            "jpeg" => "image/jpeg".into(),
            f => format!("image/{f}").into(),
        }
    };
    let max_age = svc.config.max_age;
    Ok(tile_response(
        ctx.headers,
        &content_type,
        data.data,
        data.mtime,
        max_age,
    ))
}

/// MapProxy's `TileLayer.empty_response` (service/tile.py:267-276, `empty_response_as_png`):
/// a fully transparent RGBA PNG of the grid's tile size, whatever the layer's format, with
/// the time of the request (`timestamp=time.time()`) for `Last-modified` and the `ETag`.
fn empty_tile_response(svc: &MapProxyService, ctx: &Ctx<'_>, layer: &TileLayer) -> Response<Body> {
    let (w, h) = layer.grid.tile_size();
    let img = image::RgbaImage::from_pixel(w, h, image::Rgba([255, 255, 255, 0]));
    let mut opts = crate::image::ImageOpts::new(crate::image::ImageFormat::png());
    opts.transparent = true;
    opts.paletted = false;
    let data = crate::image::encode(&img, &opts).unwrap_or_default();
    tile_response(
        ctx.headers,
        "image/png",
        data,
        Some(std::time::SystemTime::now()),
        svc.config.max_age,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tile_paths_as_the_regex() {
        let (b, r) = parse_tile_path("/tiles/osm/EPSG3857/1/0/2.png").unwrap_or_else(|| panic!());
        assert_eq!(b, "tiles");
        assert_eq!(r.layer, "osm");
        assert_eq!(r.layer_spec, Some("EPSG3857"));
        assert_eq!(r.tile, (0, 2, 1));
        let (_, r) =
            parse_tile_path("/tiles/1.0.0/osm/1/0/2.png/extra").unwrap_or_else(|| panic!());
        assert_eq!((r.layer, r.layer_spec), ("osm", None));
        let (_, r) = parse_tile_path("/tms/1.0.0/1/0/0/0.png").unwrap_or_else(|| panic!());
        assert_eq!((r.layer, r.tile), ("1", (0, 0, 0)));
        assert!(parse_tile_path("/tiles/osm/EPSG3857/1/0/2").is_none());
        assert!(parse_tile_path("/tiles").is_none());
        let (_, r) = parse_tile_path("/tiles/osm/1/99999999999999999999999/-0.png")
            .unwrap_or_else(|| panic!());
        assert_eq!(r.tile, (i64::MAX, 0, 1));
    }

    /// `\w+` as Python reads it: ASCII word characters, then Unicode letters and digits.
    #[test]
    fn word_lengths() {
        assert_eq!(word_len("tms/1.0.0"), 3);
        assert_eq!(word_len("png"), 3);
        assert_eq!(word_len(""), 0);
        assert_eq!(word_len("a_1-b"), 3);
        assert_eq!(word_len("ab\u{e4}\u{df}9/x"), "ab\u{e4}\u{df}9".len());
        assert_eq!(word_len("\u{e4}b"), "\u{e4}b".len());
        assert_eq!(word_len("ab\u{20ac}c"), 2);
    }

    #[test]
    fn capabilities_paths() {
        assert_eq!(parse_capabilities_path("/tms/1.0.0"), Some((None, None)));
        assert_eq!(parse_capabilities_path("/tms/1.0.0/"), Some((None, None)));
        assert_eq!(
            parse_capabilities_path("/tms/1.0.0/osm"),
            Some((Some("osm"), None))
        );
        assert_eq!(
            parse_capabilities_path("/tms/1.0.0/osm/EPSG3857"),
            Some((Some("osm"), Some("EPSG3857")))
        );
        assert_eq!(
            parse_capabilities_path("/tms/1.0.0/osm/EPSG3857/0/0/0.png"),
            None
        );
        assert_eq!(parse_capabilities_path("/tms/1.0.0/osm/"), None);
        assert_eq!(parse_capabilities_path("/tms"), None);
    }
}
