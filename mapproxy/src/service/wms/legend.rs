//! GetLegendGraphic (MapProxy's `WMSServer.legendgraphic`).
//!
//! `VERSION`, `REQUEST`, `LAYER`, `FORMAT` are required (`SLD_VERSION` too with `strict`);
//! an `SLD_VERSION` other than 1.1.0 is `invalid sld_version`; an unknown layer is
//! `LayerNotDefined`; a layer without a legend answers `layer NAME has no legend graphic`
//! with status 404. The layer's legends (one per legend source, each cached as
//! [`crate::source::LegendSource`] describes) are stacked, the last on top, and encoded in
//! `FORMAT` (one of `image_formats`); one legend asked for as PNG is answered as stored (the
//! upstream's bytes when it has one upstream legend). A group without sources of its own stacks its
//! children's legends (MapProxy fails with an internal error there). `SCALE` is passed to
//! the upstream GetLegendGraphic.

use std::sync::Arc;

use futures_util::future::join_all;
use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;

use super::{WmsError, WmsLayer, WmsRequest, WmsService};
use crate::authorize::Authorized;
use crate::image::{decode, encode, ImageFormat, ImageOpts};
use crate::service::response::content_type_response;
use crate::service::Ctx;
use crate::source::{concat_legends, LegendSource};

impl WmsLayer {
    /// `has_legend`: it or one of its children has a legend source.
    pub fn has_legend(&self) -> bool {
        !self.legends.is_empty() || self.children.iter().any(|c| c.has_legend())
    }

    /// The legend sources a request of this layer stacks: its own when it has sources of its
    /// own, else its children's in order.
    fn legend_sources(&self, out: &mut Vec<Arc<LegendSource>>) {
        if self.own {
            out.extend(self.legends.iter().cloned());
            return;
        }
        for c in &self.children {
            c.legend_sources(out);
        }
    }

    /// `legend_size`: the widest of its own legends, their heights summed (`None` when it
    /// has none of its own or one cannot be fetched).
    pub(super) async fn legend_size(&self) -> Option<(u32, u32)> {
        if !self.own || self.legends.is_empty() {
            return None;
        }
        let sizes = join_all(self.legends.iter().map(|l| l.size())).await;
        let mut out = (0, 0);
        for s in sizes {
            let (w, h) = s.ok()?;
            out = (out.0.max(w), out.1 + h);
        }
        Some(out)
    }
}

pub(crate) async fn handle(
    wms: &WmsService,
    req: &WmsRequest,
    ctx: &Ctx<'_>,
) -> Result<Response<Body>, WmsError> {
    let p = &req.params;
    let mut expected = vec!["version", "request", "layer", "format"];
    if wms.config.strict {
        expected.push("sld_version");
    }
    super::map::check_missing(p, &expected)?;
    if let Some(v) = p.get("sld_version") {
        if v != "1.1.0" {
            return Err(WmsError::new(format!("invalid sld_version {v}")));
        }
    }
    let name = p.get("layer").unwrap_or_default();
    let Some(layer) = wms.layer(name) else {
        return Err(WmsError::new(format!("unknown layer: {name}")).code("LayerNotDefined"));
    };
    if let Some(answer) = ctx.ask("wms.legendgraphic", &[name], None) {
        match answer {
            Authorized::Full => {}
            Authorized::Unauthenticated => {
                return Err(WmsError::new("unauthorized").status(StatusCode::UNAUTHORIZED))
            }
            Authorized::None => {
                return Err(WmsError::new("forbidden").status(StatusCode::FORBIDDEN))
            }
            Authorized::Partial(part) => {
                if !part.access(name).legendgraphic {
                    return Err(WmsError::new("forbidden").status(StatusCode::FORBIDDEN));
                }
            }
        }
    }
    if !layer.has_legend() {
        return Err(WmsError::new(format!("layer {name} has no legend graphic"))
            .status(StatusCode::NOT_FOUND));
    }
    let format = super::mime_of_format(p.get("format").unwrap_or("image/png"));
    if !wms.config.image_formats.contains(&format) {
        return Err(
            WmsError::new(format!("unsupported image format: {format}")).code("InvalidFormat")
        );
    }
    let scale = match p.get("scale") {
        None => None,
        // Python's float(): `inf`, `nan` and `1e400` (inf) are scales too
        // (request/wms/__init__.py:447-449); what it refuses is MapProxy's internal error
        Some(s) => Some(
            s.trim()
                .parse::<f64>()
                .ok()
                .ok_or_else(|| WmsError::new(format!("invalid scale {s}")))?,
        ),
    };
    let mut sources = Vec::new();
    layer.legend_sources(&mut sources);
    let legends = join_all(sources.iter().map(|s| s.get_legend(scale))).await;
    let mut legends: Vec<_> = legends
        .into_iter()
        .collect::<Result<_, _>>()
        .map_err(|e| WmsError::new(e.message))?;
    // one legend source asked for PNG: its image as stored (concat_legends returns the one
    // legend, service/wms.py:330, image/merge.py:287-288, and as_buffer keeps a buffer of the
    // format asked for or loaded from the legend cache, image/__init__.py:240-257)
    if legends.len() == 1 && ImageFormat::new(format.clone()) == ImageFormat::png() {
        if let Some(one) = legends.pop() {
            return Ok(content_type_response(StatusCode::OK, &format, one));
        }
    }
    let mut opts = ImageOpts::new(ImageFormat::new(format.clone()));
    opts.transparent = true;
    opts.paletted = wms.config.paletted;
    opts.jpeg_quality = wms.config.jpeg_quality;
    let body = crate::image::cpu_bound(move || -> Result<bytes::Bytes, String> {
        let imgs = legends
            .iter()
            .map(|b| decode(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        encode(&concat_legends(&imgs), &opts).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| WmsError::new(e.to_string()))?
    .map_err(|e| WmsError::new(format!("error while processing image file: {e}")))?;
    Ok(content_type_response(StatusCode::OK, &format, body))
}
