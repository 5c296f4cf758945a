//! GetFeatureInfo (MapProxy's `WMSServer.featureinfo`, `WMSInfoSource`, `WMSInfoClient`).
//!
//! The request is checked as MapProxy checks it (the GetMap parameters plus `QUERY_LAYERS`
//! and `X`/`Y`, 1.3.0 `I`/`J`; `FORMAT` and `STYLES` optional unless `strict`; `LAYERS` and
//! the SRS validated). Each queried layer must be queryable (`layer NAME is not queryable`);
//! a `QUERY_LAYERS` entry naming no layer is `LayerNotDefined` (MapProxy: an internal
//! error). The layers' info sources (WMS sources with `wms_opts.featureinfo`, of the layer's
//! caches or used directly) are asked concurrently: in the request's SRS when they support
//! it, else in a supported one with the bbox and the point transformed (the size keeps square
//! pixels). Their documents are merged as [`crate::featureinfo`] describes and answered with
//! the MIME type of the merged type for the request's version (XML: 1.1.1
//! `application/vnd.ogc.gml`, 1.3.0 `text/xml`); no document: an empty body of the asked
//! `INFO_FORMAT`.

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;

use super::{Version, WmsError, WmsLayer, WmsRequest, WmsService};
use crate::authorize::{Authorized, QueryExtent};
pub use crate::featureinfo::InfoLayer;
use crate::featureinfo::{combine, pixel_to_coord, query_all, InfoRequest};
use crate::service::response::mimetype_response;
use crate::service::Ctx;

impl WmsLayer {
    /// `info_layers_for_query`: this layer's own info sources when it has sources of its
    /// own, else its children's, by layer name.
    fn info_layers(&self, out: &mut Vec<(String, InfoLayer)>) {
        if self.own {
            let name = self.name.clone().unwrap_or_default();
            for l in &self.info {
                out.push((name.clone(), l.clone()));
            }
            return;
        }
        for c in &self.children {
            c.info_layers(out);
        }
    }
}

/// A pixel coordinate as MapProxy reads it: an int, or a float when written with a `.`.
fn parse_pos(s: &str) -> Option<(f64, bool)> {
    let s = s.trim();
    if s.contains('.') {
        s.parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
            .map(|v| (v, true))
    } else {
        s.parse::<i64>().ok().map(|v| (v as f64, false))
    }
}

pub(crate) async fn handle(
    wms: &WmsService,
    req: &WmsRequest,
    ctx: &Ctx<'_>,
) -> Result<Response<Body>, WmsError> {
    let p = &req.params;
    let v130 = req.version >= Version::V130;
    let (xk, yk) = if v130 { ("i", "j") } else { ("x", "y") };
    let mut expected: Vec<&str> = super::map::map_params(req.version).to_vec();
    expected.extend(["query_layers", xk, yk]);
    // non-strict: FORMAT and STYLES may be left out
    if !wms.config.strict {
        expected.retain(|k| *k != "format" && *k != "styles");
    }
    super::map::check_missing(p, &expected)?;
    let (bbox, size) = super::map::check_bbox_styles_size(p)?;
    // validate_layers (LAYERS: every value split at `,`, an empty name unknown; service/
    // wms.py:300), then QUERY_LAYERS (MapProxy: an internal error), the SRS
    let names =
        |key: &str| -> Vec<String> { p.list(key).into_iter().map(str::to_string).collect() };
    let layers = names("layers");
    let query_layers = names("query_layers");
    for n in layers.iter().chain(&query_layers) {
        if wms.layer(n).is_none() {
            return Err(WmsError::new(format!("unknown layer: {n}")).code("LayerNotDefined"));
        }
    }
    let srs = super::map::check_srs(wms, req)?;
    let bbox = if v130 {
        crate::srs::switch_axis_order(bbox, &srs)
    } else {
        bbox
    };
    let pos = match (
        parse_pos(p.get(xk).unwrap_or_default()),
        parse_pos(p.get(yk).unwrap_or_default()),
    ) {
        (Some(x), Some(y)) => (x, y),
        _ => {
            return Err(WmsError::new(format!(
                "invalid position {}={} {}={}",
                xk.to_ascii_uppercase(),
                p.get(xk).unwrap_or_default(),
                yk.to_ascii_uppercase(),
                p.get(yk).unwrap_or_default()
            ))
            .code("InvalidPoint"))
        }
    };
    let query = InfoRequest {
        bbox,
        size,
        srs: srs.clone(),
        pos: (pos.0 .0, pos.1 .0),
        pos_float: pos.0 .1 || pos.1 .1,
        // `p['info_format']`: all values joined (service/wms.py:219)
        info_format: p.joined("info_format").map(|f| f.into_owned()),
        format: p
            .get("format")
            .filter(|f| !f.is_empty())
            .map(str::to_string),
        feature_count: p.get("feature_count").map(str::to_string),
    };

    // the layers to ask, by name (a later entry of a name replaces an earlier one, as
    // MapProxy's OrderedDict)
    let mut actual: Vec<(String, Vec<InfoLayer>)> = Vec::new();
    for n in &query_layers {
        let Some(layer) = wms.layer(n) else { continue };
        if !layer.queryable() {
            return Err(WmsError::new(format!("layer {n} is not queryable")));
        }
        let mut found = Vec::new();
        layer.info_layers(&mut found);
        let mut grouped: Vec<(String, Vec<InfoLayer>)> = Vec::new();
        for (name, l) in found {
            match grouped.iter_mut().find(|(g, _)| *g == name) {
                Some(g) => g.1.push(l),
                None => grouped.push((name, vec![l])),
            }
        }
        for (name, ls) in grouped {
            match actual.iter_mut().find(|(a, _)| *a == name) {
                Some(a) => a.1 = ls,
                None => actual.push((name, ls)),
            }
        }
    }
    let names_asked: Vec<&str> = actual.iter().map(|(n, _)| n.as_str()).collect();
    let extent = QueryExtent {
        srs: srs.code().to_string(),
        bbox,
    };
    let point = pixel_to_coord(bbox, size, query.pos);
    let mut outside = false;
    if let Some(answer) = ctx.ask("wms.featureinfo", &names_asked, Some(&extent)) {
        match answer {
            Authorized::Full => {}
            Authorized::Unauthenticated => {
                return Err(WmsError::new("unauthorized").status(StatusCode::UNAUTHORIZED))
            }
            Authorized::None => {
                return Err(WmsError::new("forbidden").status(StatusCode::FORBIDDEN))
            }
            Authorized::Partial(part) => {
                // limited_to of the whole request: no info outside
                outside = part
                    .limited_to
                    .as_ref()
                    .is_some_and(|g| !g.contains_point(&srs, point));
                let mut kept = Vec::new();
                for (n, ls) in actual {
                    let access = part.access(&n);
                    if !access.featureinfo {
                        // requested explicitly (in LAYERS): forbidden; in a group: left out
                        if layers.contains(&n) {
                            return Err(WmsError::new("forbidden").status(StatusCode::FORBIDDEN));
                        }
                        continue;
                    }
                    // of the layer: only where the point is inside
                    if let Some(g) = &access.limited_to {
                        if !g.contains_point(&srs, point) {
                            continue;
                        }
                    }
                    kept.push((n, ls));
                }
                actual = kept;
            }
        }
    }
    let info_layers: Vec<InfoLayer> = if outside {
        Vec::new()
    } else {
        actual.into_iter().flat_map(|(_, ls)| ls).collect()
    };
    let docs = query_all(&info_layers, &query)
        .await
        .map_err(WmsError::new)?;
    if docs.is_empty() {
        let mime = query.info_format.as_deref().unwrap_or("text/plain");
        return Ok(mimetype_response(StatusCode::OK, mime, ""));
    }
    let (body, kind) = combine(&docs);
    Ok(mimetype_response(StatusCode::OK, kind.mime(v130), body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_as_mapproxy() {
        assert_eq!(parse_pos("12"), Some((12.0, false)));
        assert_eq!(parse_pos("12.5"), Some((12.5, true)));
        assert_eq!(parse_pos("x"), None);
        assert_eq!(
            pixel_to_coord([0.0, 0.0, 100.0, 50.0], (200, 100), (50.0, 25.0)),
            (25.0, 37.5)
        );
    }
}
