//! WMTS: capabilities, tiles and feature info, RESTful (`/wmts` + `restful_template`, then
//! `restful_featureinfo_template`) and KVP (MapProxy's `service/wmts.py`, `request/wmts.py`,
//! `templates/wmts100capabilities.xml`).
//!
//! GetFeatureInfo asks the layer's info sources (its cache's WMS sources with
//! `wms_opts.featureinfo`, its FeatureInfo-only sources) at pixel `I`/`J` of the tile, in the
//! tile's grid, as MapProxy's `WMTSServer.featureinfo` does; `INFOFORMAT` must be one of
//! `services.wmts.featureinfo_formats` (a MIME type, or in the RESTful form its suffix).
//! Where MapProxy raises a Python exception (a non-integer `I`, a `TileMatrix` beyond the
//! grid's levels, a template without `{InfoFormat}`) the answer here is an OWS exception.

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;
use regex::Regex;

use super::response::mimetype_response;
use super::response::{content_type_response, html_escape, no_cache, py_float};
use super::tms::{parse_int, serve_tile, tile_extent, TileReq, TileRequestError};
use super::{denied_response, Ctx, MapProxyService, TileLayer};
use crate::authorize::{Authorized, Denied, LimitedTo};
use crate::featureinfo::{combine, query_all, InfoRequest};
use crate::grid::Origin;
use crate::srs::Srs;

const CAPABILITIES_PATH: &str = "/1.0.0/WMTSCapabilities.xml";

/// `URLTemplateConverter`: the template as a regex searched in the path after `/wmts`.
/// `Err` names the required variables the template lacks.
pub fn restful_template_regex(template: &str) -> Result<Regex, String> {
    template_regex(template, &[])
}

/// `FeatureInfoURLTemplateConverter`: as [`restful_template_regex`], `I` and `J` required too.
pub fn restful_featureinfo_template_regex(template: &str) -> Result<Regex, String> {
    template_regex(template, &["I", "J"])
}

fn template_regex(template: &str, also_required: &[&str]) -> Result<Regex, String> {
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
        .chain(also_required.iter().copied())
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
        &title,
        &abstract_,
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
                .map(|v| format!(" vocabulary=\"{}\"", v))
                .unwrap_or_default();
            for k in &kw.keywords {
                d.push_str(&format!(
                    "        <ows:Keyword{vocabulary}>{}</ows:Keyword>\n",
                    k
                ));
            }
        }
        d.push_str("    </ows:Keywords>\n");
    }
    d.push_str(&format!(
        "    <ows:ServiceType>OGC WMTS</ows:ServiceType>\n    <ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>\n    <ows:Fees>{}</ows:Fees>\n    <ows:AccessConstraints>{}</ows:AccessConstraints>\n  </ows:ServiceIdentification>\n",
        &fees,
        &access
    ));
    if let Some(c) = wmts.md.contact.as_ref().or(md.contact.as_ref()) {
        let e = |s: &str| s.to_string();
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
        // `layer.md['extent'].llbbox` printed with `str()` (wmts100capabilities.xml:93-94):
        // a coverage's EPSG:4326 ints stay ints
        let ll = first
            .wgs84_bbox
            .unwrap_or(crate::pynum::floats([-180.0, -90.0, 180.0, 90.0]));
        // `legendurls[layer.name]` (service/wmts.py:282-343): the template of the last
        // tile layer of that name, `{base_url}` being the service URL without `/service`
        // (KVP) or `/wmts` (RESTful) at its end
        let legend = grids
            .iter()
            .rev()
            .find_map(|g| {
                if restful {
                    g.wmts_legendurls.1.as_deref()
                } else {
                    g.wmts_legendurls.0.as_deref()
                }
            })
            .filter(|t| !t.is_empty())
            .map(|t| {
                let suffix = if restful { "/wmts" } else { "/service" };
                let base = url.strip_suffix(suffix).unwrap_or(url);
                // the request's host: escaped (see ResourceURL below)
                let href = t
                    .replace("{base_url}", &html_escape(base))
                    .replace("{layer_name}", &first.name);
                format!(
                    "        <LegendURL\n          format=\"image/png\"\n          xlink:href=\"{href}\"\n        />\n"
                )
            })
            .unwrap_or_default();
        d.push_str(&format!(
            "    <Layer>\n      <ows:Title>{}</ows:Title>\n      <ows:Abstract></ows:Abstract>\n      <ows:WGS84BoundingBox>\n        <ows:LowerCorner>{} {}</ows:LowerCorner>\n        <ows:UpperCorner>{} {}</ows:UpperCorner>\n      </ows:WGS84BoundingBox>\n      <ows:Identifier>{}</ows:Identifier>\n      <Style isDefault=\"true\">\n        <ows:Identifier>default</ows:Identifier>\n{legend}      </Style>\n      <Format>image/{fmt}</Format>\n",
            &first.title,
            ll[0],
            ll[1],
            ll[2],
            ll[3],
            &first.name,
        ));
        if first.queryable() {
            for (_, mime) in &wmts.featureinfo_formats {
                d.push_str(&format!("      <InfoFormat>{}</InfoFormat>\n", mime));
            }
        }
        for g in &grids {
            d.push_str(&format!(
                "      <TileMatrixSetLink>\n        <TileMatrixSet>{}</TileMatrixSet>\n      </TileMatrixSetLink>\n",
                matrix_set_name(g)
            ));
        }
        if restful {
            let template = wmts
                .restful_template
                .replace("{Format}", fmt)
                .replace("{Layer}", &first.name);
            // the one value from the request (its host): escaped, unlike MapProxy, so that
            // a forged Host cannot put markup into the document
            d.push_str(&format!(
                "      <ResourceURL format=\"image/{fmt}\" resourceType=\"tile\"\n        template=\"{}\"/>\n",
                html_escape(&format!("{url}{template}"))
            ));
            if first.queryable() {
                for (suffix, mime) in &wmts.featureinfo_formats {
                    let template = wmts
                        .restful_featureinfo_template
                        .replace("{InfoFormat}", suffix)
                        .replace("{Layer}", &first.name);
                    d.push_str(&format!(
                        "      <ResourceURL format=\"{}\" resourceType=\"FeatureInfo\" template=\"{}\"/>\n",
                        mime,
                        html_escape(&format!("{url}{template}"))
                    ));
                }
            }
        }
        d.push_str("    </Layer>\n");
    }
    for s in sets {
        let g = &s.grid;
        let srs = g.srs();
        d.push_str(&format!(
            "    <TileMatrixSet>\n      <ows:Identifier>{}</ows:Identifier>\n      <ows:SupportedCRS>urn:ogc:def:crs:EPSG:{srs}</ows:SupportedCRS>\n",
            matrix_set_name(s)
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
        // then the FeatureInfo template (request/wmts.py:428-435)
        if let Some(caps) = svc
            .wmts_fi_regex
            .as_ref()
            .and_then(|re| re.captures(ctx.path))
        {
            let get = |n: &str| caps.name(n).map(|m| m.as_str().to_string());
            let int = |n: &str| parse_int(&get(n).unwrap_or_default());
            // `I`/`J` are `\d+`: only too many digits fail here (Python's int has no limit)
            let (Ok(i), Ok(j)) = (
                get("I").unwrap_or_default().parse::<i64>(),
                get("J").unwrap_or_default().parse::<i64>(),
            ) else {
                return wmts_error(Some("InvalidParameterValue"), "i and j must be integers");
            };
            let req = WmtsInfo {
                tile: WmtsTile {
                    layer: get("Layer").unwrap_or_default(),
                    matrix_set: get("TileMatrixSet").unwrap_or_default(),
                    tile: (int("TileCol"), int("TileRow"), int("TileMatrix")),
                    format: get("Format"),
                },
                pos: (i, j),
                infoformat: get("InfoFormat"),
                feature_count: None,
                // the RESTful request has no origin: its tile is the grid's own for the
                // authorizer's extent
                origin: None,
            };
            return featureinfo(svc, ctx, req).await;
        }
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

/// `SERVICE=WMTS` on `/service?`, `/ows?`, `/wms?`.
pub(crate) async fn kvp(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    let kind = ctx
        .arg("request")
        .map(|r| r.to_lowercase())
        .and_then(|r| r.strip_prefix("get").map(str::to_string))
        .filter(|r| matches!(r.as_str(), "tile" | "featureinfo" | "capabilities"));
    let featureinfo_req = kind.as_deref() == Some("featureinfo");
    match kind.as_deref() {
        Some("tile" | "featureinfo") => {}
        Some("capabilities") => {
            // the OWS path used (`/service`, `/ows` or `/wms`: MapProxy's request URL), never
            // extra segments (#1184)
            let name = if ctx.path.starts_with("/ows") {
                "ows"
            } else if ctx.path.starts_with("/wms") {
                "wms"
            } else {
                "service"
            };
            return capabilities(svc, ctx, &format!("{}/{name}", ctx.script_url()), false);
        }
        Some(_) | None => return wmts_error(None, "unknown WMTS request type 'None'"),
    }
    let mut expected = vec![
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
    if featureinfo_req {
        // WMTS100FeatureInfoRequest.expected_param (request/wmts.py:211)
        expected.extend(["infoformat", "i", "j"]);
    }
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
    if !featureinfo_req {
        return tile(svc, ctx, req).await;
    }
    // `pos`: int(i), int(j) (request/wmts.py:194-196); MapProxy raises on anything else
    let (Some(i), Some(j)) = (int("i"), int("j")) else {
        return wmts_error(Some("InvalidParameterValue"), "i and j must be integers");
    };
    let req = WmtsInfo {
        tile: req,
        pos: (i, j),
        infoformat: ctx.arg("infoformat"),
        feature_count: ctx.arg("feature_count"),
        origin: Some(Origin::UpperLeft),
    };
    featureinfo(svc, ctx, req).await
}

/// A WMTS GetFeatureInfo request, parsed.
struct WmtsInfo {
    tile: WmtsTile,
    /// `I`, `J`: the pixel in the tile.
    pos: (i64, i64),
    /// `INFOFORMAT` (KVP) or the `{InfoFormat}` suffix (RESTful).
    infoformat: Option<String>,
    /// `FEATURE_COUNT` (KVP only).
    feature_count: Option<String>,
    /// The tile's origin for the authorizer's extent: `nw` for KVP, none for RESTful.
    origin: Option<Origin>,
}

/// `WMTSServer.featureinfo` (service/wmts.py:113-152): `check_request` (layer, matrix set,
/// info format), the query over the tile's bbox in the grid (`grid.tile_bbox`, the row
/// counted from the grid's origin), the authorizer (`wmts.featureinfo`), `not queryable`,
/// `limited_to`, the info sources; the documents merged and answered as the asked MIME type.
async fn featureinfo(svc: &MapProxyService, ctx: &Ctx<'_>, req: WmtsInfo) -> Response<Body> {
    let layer = match wmts_layer(svc, &req.tile) {
        Ok(l) => l,
        Err(e) => return error_response(e),
    };
    // check_request's info format (service/wmts.py:210-220)
    let formats = svc
        .config
        .wmts
        .as_ref()
        .map(|w| w.featureinfo_formats.as_slice())
        .unwrap_or_default();
    let infoformat = req.infoformat.as_deref();
    let mime = match infoformat {
        Some(f) if f.contains('/') => formats.iter().find(|(_, m)| m == f).map(|(_, m)| m),
        Some(f) => formats.iter().find(|(s, _)| s == f).map(|(_, m)| m),
        None => None,
    };
    let Some(mime) = mime else {
        return wmts_error(
            Some("InvalidParameterValue"),
            &format!("unknown infoformat: {}", infoformat.unwrap_or("None")),
        );
    };
    let (col, row, matrix) = req.tile.tile;
    // grid.tile_bbox: a level the grid has not is an IndexError in MapProxy
    let level = usize::try_from(matrix).unwrap_or(usize::MAX);
    let Ok(bbox) = layer.grid.tile_bbox((col, row, level), false) else {
        return wmts_error(
            Some("TileOutOfRange"),
            "The requested tile is outside the bounding box of the tile map.",
        );
    };
    let srs = match Srs::get(&format!("EPSG:{}", layer.grid.srs())) {
        Ok(s) => s,
        Err(e) => return wmts_error(None, &e.to_string()),
    };
    let query = InfoRequest {
        bbox,
        size: layer.grid.tile_size(),
        srs: srs.clone(),
        pos: (req.pos.0 as f64, req.pos.1 as f64),
        pos_float: false,
        info_format: Some(mime.clone()),
        format: None,
        feature_count: req.feature_count,
    };
    let limited_to = match authorize_info(ctx, layer, req.tile.tile, req.origin) {
        Ok(l) => l,
        Err(e) => return error_response(e),
    };
    if !layer.queryable() {
        return wmts_error(
            Some("OperationNotSupported"),
            &format!("layer {} not queryable", req.tile.layer),
        );
    }
    let docs = if limited_to
        .as_ref()
        .is_some_and(|l| !l.contains_point(&srs, query.coord()))
    {
        Vec::new()
    } else {
        match query_all(&layer.info, &query).await {
            Ok(d) => d,
            // MapProxy lets the source's exception through (a 500); an OWS exception here
            Err(e) => return wmts_error(None, &e),
        }
    };
    if docs.is_empty() {
        return mimetype_response(StatusCode::OK, mime, "");
    }
    let (body, _) = combine(&docs);
    mimetype_response(StatusCode::OK, mime, body)
}

/// `authorize_tile_layer(featureinfo=True)` (service/wmts.py:154-181): asked for
/// `wmts.featureinfo` with the tile's extent (a tile outside the grid: `TileOutOfRange`);
/// `partial` needs the layer's `featureinfo` and gives its `limited_to`, else the request's.
fn authorize_info(
    ctx: &Ctx<'_>,
    layer: &TileLayer,
    tile: (i64, i64, i64),
    origin: Option<Origin>,
) -> Result<Option<LimitedTo>, TileRequestError> {
    if ctx.authorizer.is_none() {
        return Ok(None);
    }
    let extent = tile_extent(layer, tile, origin, false)?;
    let denied = |s| TileRequestError::denied(Denied(s));
    match ctx.ask("wmts.featureinfo", &[&layer.name], Some(&extent)) {
        None | Some(Authorized::Full) => Ok(None),
        Some(Authorized::Unauthenticated) => Err(denied(StatusCode::UNAUTHORIZED)),
        Some(Authorized::Partial(p)) => {
            let access = p.access(&layer.name);
            if !access.featureinfo {
                return Err(denied(StatusCode::FORBIDDEN));
            }
            Ok(access.limited_to.or(p.limited_to))
        }
        Some(Authorized::None) => Err(denied(StatusCode::FORBIDDEN)),
    }
}

/// `check_request`: the layer, then its matrix set.
fn wmts_layer<'s>(
    svc: &'s MapProxyService,
    req: &WmtsTile,
) -> Result<&'s TileLayer, TileRequestError> {
    let wmts_layers = || svc.layers().iter().filter(|l| l.wmts_compatible());
    if !wmts_layers().any(|l| l.name == req.layer) {
        return Err(
            TileRequestError::new(format!("unknown layer: {}", req.layer))
                .with_code("InvalidParameterValue"),
        );
    }
    wmts_layers()
        .find(|l| l.name == req.layer && matrix_set_name(l) == req.matrix_set)
        .map(|l| l.as_ref())
        .ok_or_else(|| {
            TileRequestError::new(format!("unknown tilematrixset: {}", req.matrix_set))
                .with_code("InvalidParameterValue")
        })
}

/// A tile request's error as the WMTS answers it (a denial as MapProxy renders it).
fn error_response(e: TileRequestError) -> Response<Body> {
    match e.denied {
        Some(d) => denied_response(d),
        None => wmts_error(e.code, &e.msg),
    }
}

/// `WMTSServer.tile`: layer, matrix set, then the tile in `nw` origin.
async fn tile(svc: &MapProxyService, ctx: &Ctx<'_>, req: WmtsTile) -> Response<Body> {
    let layer = match wmts_layer(svc, &req) {
        Ok(l) => l,
        Err(e) => return error_response(e),
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
        Err(e) => error_response(e),
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
