//! WMTS: capabilities and tiles, RESTful (`/wmts` + `restful_template`) and KVP (MapProxy's
//! `service/wmts.py`, `request/wmts.py`, `templates/wmts100capabilities.xml`). GetFeatureInfo
//! is not here yet: it answers `OperationNotSupported` (501).

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;
use regex::Regex;

use super::response::{content_type_response, html_escape, mimetype_response, no_cache, py_float};
use super::tms::{parse_int, serve_tile, TileReq, TileRequestError};
use super::{denied_response, Ctx, MapProxyService, TileLayer};
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
    &layer.grid_name
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

/// MapProxy's `meter_per_unit`: geographic SRS count degrees of 111319.4907932736 m.
fn meters_per_unit(srs: u32) -> f64 {
    if srs == 4326 {
        111319.4907932736
    } else {
        1.0
    }
}

/// `f'{round(v, 10)}'.strip('0').strip('.')`.
fn scale_denominator(res: f64, srs: u32) -> String {
    let v = res / (0.28 / 1000.0) * meters_per_unit(srs);
    let rounded = format!("{v:.10}").parse::<f64>().unwrap_or(v);
    py_float(rounded)
        .trim_matches('0')
        .trim_matches('.')
        .to_string()
}

/// The capabilities document (`Capabilities.render`, blank lines stripped).
fn capabilities(svc: &MapProxyService, ctx: &Ctx<'_>, url: &str, restful: bool) -> Response<Body> {
    // `authorized_tile_layers`: asked with every layer name; the matrix sets stay all
    let mut all_names: Vec<&str> = Vec::new();
    for l in svc.layers() {
        if l.wmts_compatible() && !all_names.contains(&l.name.as_str()) {
            all_names.push(&l.name);
        }
    }
    let listing = match ctx.listing("wmts", &all_names) {
        Ok(l) => l,
        Err(d) => return denied_response(d),
    };
    let wmts = svc.config.wmts.clone().unwrap_or_default();
    let pick = |own: &str, global: &str| {
        if own.is_empty() {
            global.to_string()
        } else {
            own.to_string()
        }
    };
    let md = &svc.config.md;
    let title = pick(&wmts.md.title, &md.title);
    let abstract_ = pick(&wmts.md.abstract_, &md.abstract_);
    let fees = wmts
        .md
        .fees
        .clone()
        .or(md.fees.clone())
        .unwrap_or("none".into());
    let access = wmts
        .md
        .access_constraints
        .clone()
        .or(md.access_constraints.clone())
        .unwrap_or("none".into());
    let encoding = if restful { "RESTful" } else { "KVP" };
    let mut d = String::new();
    d.push_str("<?xml version=\"1.0\"?>\n<Capabilities xmlns=\"http://www.opengis.net/wmts/1.0\" xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xmlns:gml=\"http://www.opengis.net/gml\" xsi:schemaLocation=\"http://www.opengis.net/wmts/1.0 http://schemas.opengis.net/wmts/1.0/wmtsGetCapabilities_response.xsd\" version=\"1.0.0\">\n");
    d.push_str(&format!(
        "  <ows:ServiceIdentification>\n    <ows:Title>{}</ows:Title>\n    <ows:Abstract>{}</ows:Abstract>\n",
        html_escape(&title),
        html_escape(&abstract_),
    ));
    let keyword_list = if wmts.md.keyword_list.is_empty() {
        &md.keyword_list
    } else {
        &wmts.md.keyword_list
    };
    if !keyword_list.is_empty() {
        d.push_str("    <ows:Keywords>\n");
        for kw in keyword_list {
            let vocabulary = kw
                .vocabulary
                .as_deref()
                .filter(|v| !v.is_empty())
                .map(|v| format!(" vocabulary=\"{}\"", html_escape(v)))
                .unwrap_or_default();
            for k in &kw.keywords {
                d.push_str(&format!(
                    "        <ows:Keyword{vocabulary}>{}</ows:Keyword>\n",
                    html_escape(k)
                ));
            }
        }
        d.push_str("    </ows:Keywords>\n");
    }
    d.push_str(&format!(
        "    <ows:ServiceType>OGC WMTS</ows:ServiceType>\n    <ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>\n    <ows:Fees>{}</ows:Fees>\n    <ows:AccessConstraints>{}</ows:AccessConstraints>\n  </ows:ServiceIdentification>\n",
        html_escape(&fees),
        html_escape(&access)
    ));
    if let Some(c) = wmts.md.contact.as_ref().or(md.contact.as_ref()) {
        let e = |s: &str| html_escape(s).into_owned();
        let online = pick(&wmts.md.online_resource, &md.online_resource);
        d.push_str(&format!(
            "  <ows:ServiceProvider>\n    <ows:ProviderName>{}</ows:ProviderName>\n    <ows:ProviderSite xlink:href=\"{}\"/>\n    <ows:ServiceContact>\n      <ows:IndividualName>{}</ows:IndividualName>\n      <ows:PositionName>{}</ows:PositionName>\n      <ows:ContactInfo>\n        <ows:Phone>\n          <ows:Voice>{}</ows:Voice>\n          <ows:Facsimile>{}</ows:Facsimile>\n        </ows:Phone>\n        <ows:Address>\n          <ows:DeliveryPoint>{}</ows:DeliveryPoint>\n          <ows:City>{}</ows:City>\n          <ows:AdministrativeArea>{}</ows:AdministrativeArea>\n          <ows:PostalCode>{}</ows:PostalCode>\n          <ows:Country>{}</ows:Country>\n          <ows:ElectronicMailAddress>{}</ows:ElectronicMailAddress>\n        </ows:Address>\n      </ows:ContactInfo>\n    </ows:ServiceContact>\n  </ows:ServiceProvider>\n",
            e(&c.organization),
            e(&online),
            e(&c.person),
            e(&c.position),
            e(&c.phone),
            e(&c.fax),
            e(&c.address),
            e(&c.city),
            e(&c.state),
            e(&c.postcode),
            e(&c.country),
            e(&c.email)
        ));
    }
    d.push_str("  <ows:OperationsMetadata>\n");
    for op in ["GetCapabilities", "GetTile", "GetFeatureInfo"] {
        d.push_str(&format!(
            "    <ows:Operation name=\"{op}\">\n      <ows:DCP>\n        <ows:HTTP>\n          <ows:Get xlink:href=\"{url}?\">\n            <ows:Constraint name=\"GetEncoding\">\n              <ows:AllowedValues>\n                <ows:Value>{encoding}</ows:Value>\n              </ows:AllowedValues>\n            </ows:Constraint>\n          </ows:Get>\n        </ows:HTTP>\n      </ows:DCP>\n    </ows:Operation>\n"
        ));
    }
    d.push_str("  </ows:OperationsMetadata>\n  <Contents>\n");
    // layers by name (first appearance), each with its grids; matrix sets by grid name
    let wmts_layers: Vec<&TileLayer> = svc
        .layers()
        .iter()
        .map(|l| l.as_ref())
        .filter(|l| l.wmts_compatible())
        .collect();
    let mut names: Vec<&str> = Vec::new();
    let mut sets: Vec<&TileLayer> = Vec::new();
    for l in &wmts_layers {
        if !names.contains(&l.name.as_str()) && listing.allows(&l.name) {
            names.push(&l.name);
        }
        if !sets
            .iter()
            .any(|s| matrix_set_name(s) == matrix_set_name(l))
        {
            sets.push(l);
        }
    }
    for name in names {
        let grids: Vec<&&TileLayer> = wmts_layers.iter().filter(|l| l.name == name).collect();
        let Some(first) = grids.first() else { continue };
        let fmt = super::tms::layer_format(first);
        let ll = first.wgs84_bbox.unwrap_or([-180.0, -90.0, 180.0, 90.0]);
        d.push_str(&format!(
            "    <Layer>\n      <ows:Title>{}</ows:Title>\n      <ows:Abstract></ows:Abstract>\n      <ows:WGS84BoundingBox>\n        <ows:LowerCorner>{} {}</ows:LowerCorner>\n        <ows:UpperCorner>{} {}</ows:UpperCorner>\n      </ows:WGS84BoundingBox>\n      <ows:Identifier>{}</ows:Identifier>\n      <Style isDefault=\"true\">\n        <ows:Identifier>default</ows:Identifier>\n      </Style>\n      <Format>image/{fmt}</Format>\n",
            html_escape(&first.title),
            py_float(ll[0]),
            py_float(ll[1]),
            py_float(ll[2]),
            py_float(ll[3]),
            html_escape(&first.name),
        ));
        for g in &grids {
            d.push_str(&format!(
                "      <TileMatrixSetLink>\n        <TileMatrixSet>{}</TileMatrixSet>\n      </TileMatrixSetLink>\n",
                html_escape(matrix_set_name(g))
            ));
        }
        if restful {
            let template = wmts
                .restful_template
                .replace("{Format}", fmt)
                .replace("{Layer}", &first.name);
            d.push_str(&format!(
                "      <ResourceURL format=\"image/{fmt}\" resourceType=\"tile\"\n        template=\"{}\"/>\n",
                html_escape(&format!("{url}{template}"))
            ));
        }
        d.push_str("    </Layer>\n");
    }
    for s in sets {
        let g = &s.grid;
        let srs = g.srs();
        d.push_str(&format!(
            "    <TileMatrixSet>\n      <ows:Identifier>{}</ows:Identifier>\n      <ows:SupportedCRS>urn:ogc:def:crs:EPSG:{srs}</ows:SupportedCRS>\n",
            html_escape(matrix_set_name(s))
        ));
        for (level, &res) in g.resolutions().iter().enumerate() {
            let Some(origin) = g.origin_tile(level, Origin::UpperLeft) else {
                continue;
            };
            let Ok(bbox) = g.tile_bbox(origin, false) else {
                continue;
            };
            let topleft = if srs == 4326 {
                (bbox[3], bbox[0])
            } else {
                (bbox[0], bbox[3])
            };
            let (w, h) = g.grid_sizes().get(level).copied().unwrap_or((0, 0));
            let (tw, th) = g.tile_size();
            d.push_str(&format!(
                "      <TileMatrix>\n        <ows:Identifier>{level:02}</ows:Identifier>\n        <ScaleDenominator>{}</ScaleDenominator>\n        <TopLeftCorner>{} {}</TopLeftCorner>\n        <TileWidth>{tw}</TileWidth>\n        <TileHeight>{th}</TileHeight>\n        <MatrixWidth>{w}</MatrixWidth>\n        <MatrixHeight>{h}</MatrixHeight>\n      </TileMatrix>\n",
                scale_denominator(res, srs),
                py_float(topleft.0),
                py_float(topleft.1),
            ));
        }
        d.push_str("    </TileMatrixSet>\n");
    }
    d.push_str("  </Contents>\n");
    if restful {
        d.push_str(&format!(
            "  <ServiceMetadataURL xlink:href=\"{url}/1.0.0/WMTSCapabilities.xml\"/>\n"
        ));
    }
    d.push_str("</Capabilities>");
    mimetype_response(StatusCode::OK, "application/xml", d)
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
        return capabilities(svc, ctx, &format!("{}/wmts", ctx.script_url()), true);
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
        Some("capabilities") => {
            // the OWS path used (`/service` or `/ows`), never extra segments (#1184)
            let name = if ctx.path.starts_with("/ows") {
                "ows"
            } else {
                "service"
            };
            return capabilities(svc, ctx, &format!("{}/{name}", ctx.script_url()), false);
        }
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
    // repeated LAYER, TILEMATRIXSET, STYLES, TILECOL/ROW/MATRIX: their values joined, as
    // MapProxy's `self['layer']`, `self.params.tilematrixset` (request/wmts.py:56-66, 151-154)
    if let Some(styles) = ctx.arg_joined("styles") {
        if !styles.replace(',', "").trim().is_empty() {
            return wmts_error(
                Some("StyleNotDefined"),
                &format!("unsupported styles: {styles}"),
            );
        }
    }
    // MapProxy's int() raises here (a bare 500 "internal error"); answer the OWS document.
    let int = |name: &str| -> Option<i64> {
        let v = ctx.arg_joined(name)?;
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
        layer: ctx.arg_joined("layer").unwrap_or_default(),
        matrix_set: ctx.arg_joined("tilematrixset").unwrap_or_default(),
        tile: (col, row, matrix),
        format: (!format.is_empty()).then(|| format.to_string()),
    };
    tile(svc, ctx, req).await
}

/// `WMTSServer.tile`: layer, matrix set, then the tile in `nw` origin.
async fn tile(svc: &MapProxyService, ctx: &Ctx<'_>, req: WmtsTile) -> Response<Body> {
    let wmts_layers = || svc.layers().iter().filter(|l| l.wmts_compatible());
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
        .as_deref()
        .unwrap_or_else(|| super::tms::layer_format(layer));
    let treq = TileReq {
        layer: &req.layer,
        layer_spec: None,
        tile: req.tile,
        format,
    };
    match serve_tile(
        svc,
        ctx,
        "wmts",
        layer,
        &treq,
        Some(Origin::UpperLeft),
        false,
    )
    .await
    {
        Ok(res) => res,
        Err(TileRequestError {
            denied: Some(d), ..
        }) => denied_response(d),
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
