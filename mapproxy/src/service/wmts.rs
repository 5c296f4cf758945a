//! WMTS tiles: RESTful (`/wmts` + `restful_template`) and KVP `GetTile` (MapProxy's
//! `service/wmts.py`, `request/wmts.py`). Capabilities and GetFeatureInfo are not here yet:
//! they answer `OperationNotSupported` (501).

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;
use regex::Regex;

use super::response::{content_type_response, html_escape, no_cache};
use super::tms::{parse_int, serve_tile, TileReq, TileRequestError};
use super::{Ctx, MapProxyService, TileLayer};
use crate::grid::Origin;

const CAPABILITIES_PATH: &str = "/1.0.0/WMTSCapabilities.xml";

/// `URLTemplateConverter`: the template as a regex searched in the path after `/wmts`.
/// `Err` names the required variables the template lacks.
pub fn restful_template_regex(template: &str) -> Result<Regex, String> {
    let mut re = String::from("/wmts");
    let mut found = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let (lit, tail) = rest.split_at(start);
        // `{Name}` or the deprecated `{{Name}}`
        let double = tail.starts_with("{{");
        let open = if double { 2 } else { 1 };
        let body = &tail[open..];
        let name_len = body
            .char_indices()
            .find(|(_, c)| !(c.is_alphanumeric() || *c == '_'))
            .map_or(body.len(), |(i, _)| i);
        let name = &body[..name_len];
        let after = &body[name_len..];
        if name.is_empty() || !after.starts_with('}') {
            re.push_str(&regex::escape(&rest[..start + 1]));
            rest = &rest[start + 1..];
            continue;
        }
        re.push_str(&regex::escape(lit));
        // the optional outer braces of `{{Name}}` belong to the variable
        let mut after = &after[1..];
        if double && after.starts_with('}') {
            after = &after[1..];
        }
        let class = match name {
            "TileMatrixSet" | "Style" | "Layer" => r"[\w_.:-]+",
            "TileMatrix" | "I" | "J" => r"\d+",
            "TileRow" | "TileCol" => r"-?\d+",
            "Format" | "InfoFormat" => r"\w+",
            _ => r"[\w_.,:-]+",
        };
        let group = if class == r"[\w_.,:-]+" {
            name.to_lowercase()
        } else {
            name.to_string()
        };
        if found.contains(&group) {
            return Err(format!("variable {name} twice in WMTS restful template"));
        }
        re.push_str(&format!("(?P<{group}>{class})"));
        found.push(group);
        rest = after;
    }
    re.push_str(&regex::escape(rest));
    let missing: Vec<&str> = ["TileCol", "TileRow", "TileMatrix", "TileMatrixSet", "Layer"]
        .into_iter()
        .filter(|r| !found.iter().any(|f| f == r))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "missing required variables in WMTS restful template: {}",
            missing.join(", ")
        ));
    }
    Regex::new(&re).map_err(|e| e.to_string())
}

/// The TileMatrixSet identifier of a layer: its grid's name.
pub(crate) fn matrix_set_name(layer: &TileLayer) -> &str {
    layer.grid.name().unwrap_or(&layer.grid_name)
}

/// `WMTS100ExceptionHandler`: `text/xml`, status by code.
fn wmts_error(code: Option<&str>, msg: &str) -> Response<Body> {
    let status = match code {
        None => StatusCode::INTERNAL_SERVER_ERROR,
        Some("TileOutOfRange" | "MissingParameterValue" | "InvalidParameterValue") => {
            StatusCode::BAD_REQUEST
        }
        Some("OperationNotSupported") => StatusCode::NOT_IMPLEMENTED,
        Some(_) => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ows:ExceptionReport xmlns:ows=\"http://www.opengis.net/ows/1.1\"\n  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n  xsi:schemaLocation=\"http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd\"\n  version=\"1.0.0\" xml:lang=\"en\">\n  <ows:Exception exceptionCode=\"{}\">\n    <ows:ExceptionText>{}</ows:ExceptionText>\n  </ows:Exception>\n</ows:ExceptionReport>\n",
        code.unwrap_or("NoApplicableCode"),
        html_escape(msg)
    );
    no_cache(content_type_response(status, "text/xml", body))
}

fn not_yet(what: &str) -> Response<Body> {
    wmts_error(
        Some("OperationNotSupported"),
        &format!("WMTS {what} is not available yet in this server (tiles are)"),
    )
}

/// A WMTS tile request, parsed.
struct WmtsTile {
    layer: String,
    matrix_set: String,
    /// col, row, matrix
    tile: (i64, i64, i64),
    format: Option<String>,
}

/// `/wmts...` (RESTful).
pub(crate) async fn rest(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    if ctx.path.ends_with(CAPABILITIES_PATH) {
        return not_yet("GetCapabilities");
    }
    let caps = svc.wmts_regex.as_ref().and_then(|re| re.captures(ctx.path));
    let Some(caps) = caps else {
        // a RequestError without a request: content type `text/plain`, no charset
        return no_cache(content_type_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            "text/plain",
            format!("internal error: invalid request ({})", ctx.path),
        ));
    };
    let get = |n: &str| caps.name(n).map(|m| m.as_str().to_string());
    let req = WmtsTile {
        layer: get("Layer").unwrap_or_default(),
        matrix_set: get("TileMatrixSet").unwrap_or_default(),
        tile: (
            parse_int(&get("TileCol").unwrap_or_default()),
            parse_int(&get("TileRow").unwrap_or_default()),
            parse_int(&get("TileMatrix").unwrap_or_default()),
        ),
        format: get("Format"),
    };
    tile(svc, ctx, req).await
}

/// `SERVICE=WMTS` on `/service?`, `/ows?`.
pub(crate) async fn kvp(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    let kind = ctx
        .arg("request")
        .map(|r| r.to_lowercase())
        .and_then(|r| r.strip_prefix("get").map(str::to_string))
        .filter(|r| matches!(r.as_str(), "tile" | "featureinfo" | "capabilities"));
    match kind.as_deref() {
        Some("tile") => {}
        Some("capabilities") => return not_yet("GetCapabilities"),
        Some(_) => return not_yet("GetFeatureInfo"),
        None => return wmts_error(None, "unknown WMTS request type 'None'"),
    }
    let expected = [
        "version",
        "request",
        "layer",
        "style",
        "tilematrixset",
        "tilematrix",
        "tilerow",
        "tilecol",
        "format",
    ];
    let missing: Vec<String> = expected
        .iter()
        .filter(|p| ctx.arg(p).is_none())
        .map(|p| format!("'{p}'"))
        .collect();
    if !missing.is_empty() {
        return wmts_error(
            None,
            &format!("missing parameters [{}]", missing.join(", ")),
        );
    }
    if let Some(styles) = ctx.arg("styles") {
        if !styles.replace(',', "").trim().is_empty() {
            return wmts_error(
                Some("StyleNotDefined"),
                &format!("unsupported styles: {styles}"),
            );
        }
    }
    // MapProxy's int() raises here (a bare 500 "internal error"); answer the OWS document.
    let int = |name: &str| -> Option<i64> {
        let v = ctx.arg(name)?;
        let v = v.trim();
        let v = v.strip_prefix('+').unwrap_or(v);
        let digits = v.strip_prefix('-').unwrap_or(v);
        (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())).then(|| parse_int(v))
    };
    let (Some(col), Some(row), Some(matrix)) = (int("tilecol"), int("tilerow"), int("tilematrix"))
    else {
        return wmts_error(
            Some("InvalidParameterValue"),
            "tilecol, tilerow and tilematrix must be integers",
        );
    };
    let format = ctx.arg("format").unwrap_or_default();
    let format = format.split_once('/').map_or(format.as_str(), |(_, f)| f);
    let format = format.split_once(';').map_or(format, |(f, _)| f).trim();
    let req = WmtsTile {
        layer: ctx.arg("layer").unwrap_or_default(),
        matrix_set: ctx.arg("tilematrixset").unwrap_or_default(),
        tile: (col, row, matrix),
        format: (!format.is_empty()).then(|| format.to_string()),
    };
    tile(svc, ctx, req).await
}

/// `WMTSServer.tile`: layer, matrix set, then the tile in `nw` origin.
async fn tile(svc: &MapProxyService, ctx: &Ctx<'_>, req: WmtsTile) -> Response<Body> {
    let wmts_layers = || {
        svc.layers()
            .iter()
            .filter(|l| l.grid.supports_access_with_origin(Origin::UpperLeft))
    };
    if !wmts_layers().any(|l| l.name == req.layer) {
        return wmts_error(
            Some("InvalidParameterValue"),
            &format!("unknown layer: {}", req.layer),
        );
    }
    let Some(layer) =
        wmts_layers().find(|l| l.name == req.layer && matrix_set_name(l) == req.matrix_set)
    else {
        return wmts_error(
            Some("InvalidParameterValue"),
            &format!("unknown tilematrixset: {}", req.matrix_set),
        );
    };
    let format = req
        .format
        .unwrap_or_else(|| super::tms::layer_format(layer).to_string());
    let treq = TileReq {
        layer: req.layer,
        layer_spec: None,
        tile: req.tile,
        format,
    };
    match serve_tile(svc, ctx, layer, &treq, Some(Origin::UpperLeft), false).await {
        Ok(res) => res,
        Err(TileRequestError { msg, code, .. }) => wmts_error(code, &msg),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates() {
        let re = restful_template_regex(
            "/{Layer}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let c = re
            .captures("/wmts/osm/GLOBAL_WEBMERCATOR/01/0/1.png")
            .unwrap_or_else(|| panic!("no match"));
        assert_eq!(&c["TileMatrix"], "01");
        assert_eq!(&c["TileRow"], "1");
        assert!(restful_template_regex("/{Layer}/{TileMatrix}.png").is_err());
        let re = restful_template_regex(
            "/myrest/{{Layer}}/{TileMatrixSet}/{TileMatrix}/{TileCol}/{TileRow}.{Format}",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(re.is_match("/wmts/myrest/wms_cache/g/1/0/0.jpeg"));
    }
}
