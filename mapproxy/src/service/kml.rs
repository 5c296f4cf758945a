//! KML super-overlays (MapProxy's `service/kml.py`): `/kml/<layer>[/<grid>]` and
//! `/kml/<layer>/<grid>/z/x/y.kml` documents, tiles as `/kml/.../z/x/y.<format>` (origin `sw`,
//! no level offset). WGS84 extents as MapProxy computes them: EPSG:4326 as is, web mercator
//! by its formula, other grids through `srs.rs` with 4 envelope points (MapProxy's
//! `with_points=4`).

use std::sync::Arc;

use http::Response;
use mapproxy_serve_core::app::Body;
use md5::{Digest, Md5};

use super::response::{cached_response, escape_html};
use super::tms::{
    authorize_tile, layer_format, parse_tile_path_with, render_error, serve_tile, Kind,
    ServiceGrid, TileReq, TileRequestError,
};
use super::{wgs84_bbox, Ctx, MapProxyService, TileLayer, TileService};
use crate::grid::{Bbox, Origin};

/// `KMLInitRequest.tile_req_re`: `^/kml/(layer)(/(spec))?/?$`.
fn parse_init(path: &str) -> Option<(&str, Option<&str>)> {
    let rest = path.strip_prefix("/kml/")?;
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        [l] if !l.is_empty() => Some((l, None)),
        [l, s] if !l.is_empty() && !s.is_empty() => Some((l, Some(s))),
        _ => None,
    }
}

fn kml_layer<'s>(
    svc: &'s MapProxyService,
    layer: &str,
    spec: Option<&str>,
) -> Option<&'s Arc<TileLayer>> {
    svc.find_tile_layer(TileService::Kml, layer, spec)
}

pub(crate) async fn handle(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    let req = if let Some((layer, spec)) = parse_init(ctx.path) {
        TileReq {
            layer,
            layer_spec: spec,
            tile: (0, 0, 0),
            format: "kml",
        }
    } else {
        match parse_tile_path_with(ctx.path, false) {
            Some(("kml", req)) => req,
            _ => {
                return render_error(
                    Kind::Tiles,
                    &TileRequestError {
                        msg: format!("invalid request ({})", ctx.path),
                        internal: false,
                        code: None,
                        denied: None,
                    },
                )
            }
        }
    };
    let Some(layer) = kml_layer(svc, req.layer, req.layer_spec) else {
        return render_error(
            Kind::Tiles,
            &TileRequestError {
                msg: format!("unknown layer: {}", req.layer),
                internal: false,
                code: None,
                denied: None,
            },
        );
    };
    let res = if req.format == "kml" {
        authorize_tile(ctx, "kml", layer, req.tile, Some(Origin::LowerLeft), false)
            .and_then(|()| kml_document(svc, ctx, layer, &req))
    } else {
        serve_tile(svc, ctx, "kml", layer, &req, Some(Origin::LowerLeft), false).await
    };
    match res {
        Ok(r) => r,
        Err(e) => render_error(Kind::Tiles, &e),
    }
}

/// `_tile_bbox_to_wgs`: the bbox in WGS84 (`transform_bbox_to(SRS(4326), with_points=4)`);
/// web mercator's edges become ±90.
fn to_wgs(layer: &TileLayer, src: Bbox) -> Option<Bbox> {
    let srs = layer.grid.srs();
    let mut b = if matches!(srs, 4326 | 3857 | 900913) {
        wgs84_bbox(srs, src)?
    } else {
        let from = crate::srs::Srs::get(&format!("EPSG:{srs}")).ok()?;
        let wgs84 = crate::srs::Srs::get("EPSG:4326").ok()?;
        from.transform_bbox_with(&wgs84, src, 4).ok()?
    };
    if matches!(srs, 900913 | 3857) {
        if (src[1] - -20037508.342789244).abs() < 0.1 {
            b[1] = -90.0;
        }
        if (src[3] - 20037508.342789244).abs() < 0.1 {
            b[3] = 90.0;
        }
    }
    Some(b)
}

fn out_of_range() -> TileRequestError {
    TileRequestError {
        msg: "The requested tile is outside the bounding box of the tile map.".into(),
        internal: false,
        code: None,
        denied: None,
    }
}

fn kml_document(
    svc: &MapProxyService,
    ctx: &Ctx<'_>,
    layer: &TileLayer,
    req: &TileReq,
) -> Result<Response<Body>, TileRequestError> {
    let grid = &layer.grid;
    let sg = ServiceGrid::of(layer);
    // the tile in the grid's counting (KML counts from sw)
    let mut coord = sg
        .internal_tile_coord(layer, req.tile, false)
        .ok_or_else(out_of_range)?;
    if grid.origin() != Origin::LowerLeft {
        coord = grid.flip_tile_coord(coord).map_err(|_| out_of_range())?;
    }
    let bbox = grid.tile_bbox(coord, true).map_err(|_| out_of_range())?;
    let no_wgs = || TileRequestError {
        msg: format!(
            "KML needs a grid in EPSG:4326 or EPSG:3857, not EPSG:{}",
            grid.srs()
        ),
        internal: true,
        code: None,
        denied: None,
    };
    let tile_wgs = to_wgs(layer, bbox).ok_or_else(no_wgs)?;

    // `_get_subtiles`: the tiles of the next level whose lower left corner is in the bbox
    let mut subtiles: Vec<((i64, i64, i64), Bbox)> = Vec::new();
    let next = req
        .tile
        .2
        .checked_add(1)
        .and_then(|z| sg.internal_tile_coord(layer, (req.tile.0, req.tile.1, z), false));
    if let Some((_, _, level)) = next {
        if let Ok(affected) = grid.get_affected_level_tiles(bbox, level) {
            const DELTA: f64 = -1.0 / 10e6;
            for c in affected.tiles.flatten() {
                let Ok(sub) = grid.tile_bbox(c, false) else {
                    continue;
                };
                if sub[0] - bbox[0] > DELTA && sub[1] - bbox[1] > DELTA {
                    let wgs = to_wgs(layer, sub).ok_or_else(no_wgs)?;
                    let (x, y, z) = c;
                    let z = if sg.skips_odd_levels() { z / 2 } else { z };
                    let (mut x, mut y) = (x, y);
                    if grid.origin() != Origin::LowerLeft {
                        if let Ok((fx, fy, _)) = grid.flip_tile_coord((x, y, z)) {
                            (x, y) = (fx, fy);
                        }
                    }
                    subtiles.push(((x, y, z as i64), wgs));
                }
            }
        }
    }

    let script_url = ctx.script_url();
    let url = escape_html(script_url.trim_end_matches('/'));
    let name = &req.layer;
    let name_path = format!(
        "{}/{}",
        layer.name,
        layer.url_grid_name(svc.use_grid_names(TileService::Kml))
    );
    let fmt = layer_format(layer);
    let tile_size = i64::from(grid.tile_size().0);
    let f = |v: f64| format!("{v:.6}");
    let mut d = format!(
        "<?xml version=\"1.0\"?>\n<kml xmlns=\"http://www.opengis.net/kml/2.2\">\n  <Document>\n    <name>{name}</name>\n    <Region>\n      <LatLonAltBox>\n        <north>{}</north><south>{}</south>\n        <east>{}</east><west>{}</west>\n      </LatLonAltBox>\n    </Region>\n    ",
        f(tile_wgs[3]),
        f(tile_wgs[1]),
        f(tile_wgs[2]),
        f(tile_wgs[0])
    );
    for ((x, y, z), b) in &subtiles {
        d.push_str(&format!(
            "<NetworkLink>\n      <name>{name} - ({x}, {y}, {z})</name>\n      <Region>\n        <LatLonAltBox>\n          <north>{}</north><south>{}</south>\n          <east>{}</east><west>{}</west>\n        </LatLonAltBox>\n        <Lod>\n          <minLodPixels>{}</minLodPixels>\n          <maxLodPixels>-1</maxLodPixels>\n        </Lod>\n      </Region>\n      <Link>\n        <href>{url}/kml/{name_path}/{z}/{x}/{y}.kml</href>\n        <viewRefreshMode>onRegion</viewRefreshMode>\n        <viewFormat/>\n      </Link>\n    </NetworkLink>\n    ",
            f(b[3]),
            f(b[1]),
            f(b[2]),
            f(b[0]),
            tile_size / 2
        ));
    }
    for ((x, y, z), b) in &subtiles {
        d.push_str(&format!(
            "<GroundOverlay>\n      <name>({x}, {y}, {z})</name>\n      <Region>\n        <LatLonAltBox>\n          <north>{}</north><south>{}</south>\n          <east>{}</east><west>{}</west>\n        </LatLonAltBox>\n        <Lod>\n          <minLodPixels>{}</minLodPixels>\n          <maxLodPixels>{}</maxLodPixels>\n          <minFadeExtent>8</minFadeExtent>\n          <maxFadeExtent>8</maxFadeExtent>\n        </Lod>\n      </Region>\n      <drawOrder>{z}</drawOrder>\n      <Icon>\n        <href>{url}/kml/{name_path}/{z}/{x}/{y}.{fmt}</href>\n      </Icon>\n      <LatLonBox>\n        <north>{}</north><south>{}</south>\n        <east>{}</east><west>{}</west>\n      </LatLonBox>\n    </GroundOverlay>\n    ",
            f(b[3]),
            f(b[1]),
            f(b[2]),
            f(b[0]),
            tile_size / 2,
            tile_size.saturating_mul(3),
            f(b[3]),
            f(b[1]),
            f(b[2]),
            f(b[0]),
        ));
    }
    d.push_str("</Document>\n</kml>\n");

    // cache_headers(etag_data=(result,), max_age) and make_conditional (If-None-Match only:
    // there is no time)
    let etag = format!("{:x}", Md5::digest(d.as_bytes()));
    let max_age = svc.config.max_age;
    let res = cached_response(
        ctx.headers,
        "application/vnd.google-earth.kml+xml",
        d,
        &etag,
        None,
        max_age,
    );
    Ok(res)
}
