//! GetCapabilities (MapProxy's `Capabilities`, `templates/wms1*capabilities.xml`): the same
//! elements in the same order (blank lines stripped as MapProxy strips them; indentation is
//! not byte for byte), metadata XML-escaped.
//!
//! The online resource is the script URL + `/service` (or `/ows`, `/wms`: the path the request
//! came by), never extra `PATH_INFO` segments (MapProxy #1184), with the first value of a
//! forwarded header (#590).

use std::collections::HashMap;

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;

use super::{Extent, Version, WmsLayer, WmsRequest, WmsService};
use crate::pynum::{floats, values, Num, NumBbox};
use crate::service::response::{html_escape, mimetype_response};
use crate::service::Ctx;
use crate::source::py_float_repr;
use crate::srs::{switch_axis_order, Srs};

pub(crate) async fn handle(wms: &WmsService, req: &WmsRequest, ctx: &Ctx<'_>) -> Response<Body> {
    let handler = super::super::handler_name(ctx.path).unwrap_or("service");
    let url = format!("{}/{handler}", ctx.script_url());
    // authorization: a partial answer lists only the layers with `map`
    let allowed = {
        let mut names = Vec::new();
        collect_names(&wms.root, &mut names);
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        match ctx.listing("wms.capabilities", &refs) {
            Ok(crate::authorize::Listing::All) => Access(None),
            Ok(crate::authorize::Listing::Only(p)) => Access(Some(p)),
            Err(d) => return super::super::denied_response(d),
        }
    };
    // the legends' sizes (fetched once per legend source, then cached)
    let mut with_legend = Vec::new();
    collect_legend_layers(&wms.root, &mut with_legend);
    let sizes = futures_util::future::join_all(with_legend.iter().map(|l| l.legend_size())).await;
    let legend_sizes: HashMap<String, (u32, u32)> = with_legend
        .iter()
        .zip(sizes)
        .filter_map(|(l, s)| Some((l.name.clone()?, s?)))
        .collect();
    // WMS-C: `params.get('tiled', 'false').lower() == 'true'` lists every tile layer
    // (service/wms.py:193-196); only the 1.1.0 and 1.1.1 templates print them
    let tiled = req
        .params
        .get("tiled")
        .is_some_and(|t| t.eq_ignore_ascii_case("true"));
    let tile_layers: &[std::sync::Arc<crate::service::TileLayer>] =
        if tiled && (Version::V110..Version::V130).contains(&req.version) {
            &wms.tile_layers
        } else {
            &[]
        };
    let doc = if req.version >= Version::V130 {
        render_130(wms, &url, &allowed, &legend_sizes)
    } else if req.version < Version::V110 {
        render_100(wms, &url, &allowed, &legend_sizes)
    } else {
        render_111(wms, &url, req.version, &allowed, &legend_sizes, tile_layers)
    };
    let doc = doc
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let mime = if req.version >= Version::V130 {
        "text/xml"
    } else if req.version >= Version::V110 {
        "application/vnd.ogc.wms_xml"
    } else {
        "text/xml"
    };
    mimetype_response(StatusCode::OK, mime, doc)
}

/// What a capabilities request may see: every layer, or a `partial` answer's layers with
/// `map`, their extents limited to the `limited_to`s.
struct Access(Option<crate::authorize::Partial>);

impl Access {
    fn allows(&self, name: &str) -> bool {
        self.0.as_ref().is_none_or(|p| p.access(name).map)
    }

    /// The layer's extent limited by the layer's `limited_to`, then by the answer's
    /// (`FilteredRootLayer.extent`, service/wms.py:406-420): each time the bounds of the
    /// geometry's intersection with the extent's bbox in the geometry's SRS (a shapely
    /// intersection, util/coverage.py:247-249): floats in that SRS. An empty intersection
    /// leaves the extent as it is (MapProxy prints NaN bounds).
    fn extent(&self, l: &WmsLayer) -> Option<Extent> {
        let mut ext = l.extent.clone()?;
        let Some(p) = &self.0 else { return Some(ext) };
        let own = l.name.as_deref().and_then(|n| p.access(n).limited_to);
        for g in own.iter().chain(&p.limited_to) {
            let Ok(srs) = Srs::get(&g.srs) else { continue };
            let Some(b) = ext.bbox_for(&srs).map(values) else {
                continue;
            };
            if let Some(r) = clipped_bounds(&g.geometry, b) {
                ext = Extent::of_floats(srs, r);
            }
        }
        Some(ext)
    }
}

/// The bounds of `geometry` clipped to `bbox` (`None`: they do not meet): each exterior ring
/// clipped by the bbox's four half-planes (Sutherland-Hodgman), which keeps the corners
/// exact; geo's BooleanOps snaps coordinates to a grid (1000000.0 came out 999999.9997).
fn clipped_bounds(geometry: &geo::MultiPolygon<f64>, bbox: [f64; 4]) -> Option<[f64; 4]> {
    let mut out: Option<[f64; 4]> = None;
    for poly in geometry {
        let mut pts: Vec<(f64, f64)> = poly.exterior().coords().map(|c| (c.x, c.y)).collect();
        // (axis, bound, keep the side >= bound)
        for (axis, bound, above) in [
            (0, bbox[0], true),
            (0, bbox[2], false),
            (1, bbox[1], true),
            (1, bbox[3], false),
        ] {
            let inside = |p: (f64, f64)| {
                let v = if axis == 0 { p.0 } else { p.1 };
                if above {
                    v >= bound
                } else {
                    v <= bound
                }
            };
            let cross = |a: (f64, f64), b: (f64, f64)| {
                if axis == 0 {
                    let t = (bound - a.0) / (b.0 - a.0);
                    (bound, a.1 + t * (b.1 - a.1))
                } else {
                    let t = (bound - a.1) / (b.1 - a.1);
                    (a.0 + t * (b.0 - a.0), bound)
                }
            };
            let mut next = Vec::with_capacity(pts.len() + 4);
            for (i, &cur) in pts.iter().enumerate() {
                let prev = pts[(i + pts.len() - 1) % pts.len()];
                match (inside(prev), inside(cur)) {
                    (true, true) => next.push(cur),
                    (true, false) => next.push(cross(prev, cur)),
                    (false, true) => {
                        next.push(cross(prev, cur));
                        next.push(cur);
                    }
                    (false, false) => {}
                }
            }
            pts = next;
            if pts.is_empty() {
                break;
            }
        }
        for (x, y) in pts {
            let b = out.get_or_insert([x, y, x, y]);
            *b = [b[0].min(x), b[1].min(y), b[2].max(x), b[3].max(y)];
        }
    }
    // a ring touching the bbox only along an edge or at a corner has no area inside
    out.filter(|b| b[0] < b[2] && b[1] < b[3])
}

fn collect_legend_layers<'a>(l: &'a WmsLayer, out: &mut Vec<&'a WmsLayer>) {
    if l.own && !l.legends.is_empty() && l.name.is_some() {
        out.push(l);
    }
    for c in &l.children {
        collect_legend_layers(c, out);
    }
}

/// MapProxy's `{{service.url}}{{layer.legend_url|escape}}`: the service URL as it is, the
/// legend query escaped; the request's `styles=` ends it (`adapt_params_to_version` adds it
/// to every WMS request URL, request/wms/__init__.py:171-172).
fn legend_href(url: &str, name: &str) -> String {
    let query = format!(
        "?format=image%2Fpng&layer={}&sld_version=1.1.0&request=GetLegendGraphic&service=WMS&version=1.1.1&styles=",
        crate::source::py_quote(name)
    );
    format!("{url}{}", html_escape(&query))
}

/// The `<Style>` with the `LegendURL` of a layer with a legend of its own.
fn legend_style(
    url: &str,
    l: &WmsLayer,
    sizes: &HashMap<String, (u32, u32)>,
    ind: &str,
    v130: bool,
) -> String {
    let Some(name) = &l.name else {
        return String::new();
    };
    let Some((w, h)) = sizes.get(name) else {
        return String::new();
    };
    let href = legend_href(url, name);
    if v130 {
        // wms130capabilities.xml:290-297 (a space before `/>`)
        format!(
            "{ind}  <Style>\n{ind}    <Name>default</Name>\n{ind}    <Title>default</Title>\n{ind}    <LegendURL width=\"{w}\" height=\"{h}\">\n{ind}      <Format>image/png</Format>\n{ind}      <OnlineResource xlink:type=\"simple\" xlink:href=\"{href}\" />\n{ind}    </LegendURL>\n{ind}  </Style>\n"
        )
    } else {
        // wms111capabilities.xml:161-168 (four spaces per level inside `Style`)
        format!(
            "{ind}  <Style>\n{ind}      <Name>default</Name>\n{ind}      <Title>default</Title>\n{ind}      <LegendURL width=\"{w}\" height=\"{h}\">\n{ind}          <Format>image/png</Format>\n{ind}          <OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:type=\"simple\" xlink:href=\"{href}\"/>\n{ind}      </LegendURL>\n{ind}  </Style>\n"
        )
    }
}

fn legend_request(wms: &WmsService, url: &str, v130: bool) -> String {
    if !wms.root.has_legend() {
        return String::new();
    }
    let tag = if v130 {
        "sld:GetLegendGraphic"
    } else {
        "GetLegendGraphic"
    };
    let mut s = format!("    <{tag}>\n");
    if v130 {
        for fmt in &wms.config.image_formats {
            s.push_str(&format!("      <Format>{}</Format>\n", e(fmt)));
        }
        s.push_str(&dcp(url, v130));
    } else {
        // wms111capabilities.xml:82-91 indents its formats and DCPType by four more spaces
        for fmt in &wms.config.image_formats {
            s.push_str(&format!("        <Format>{}</Format>\n", e(fmt)));
        }
        s.push_str(&format!("        <DCPType>\n            <HTTP>\n                <Get><OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:href=\"{}?\"/></Get>\n            </HTTP>\n        </DCPType>\n", e(url)));
    }
    s.push_str(&format!("    </{tag}>\n"));
    s
}

fn collect_names(l: &WmsLayer, out: &mut Vec<String>) {
    if let Some(n) = &l.name {
        out.push(n.clone());
    }
    for c in &l.children {
        collect_names(c, out);
    }
}

/// A value as MapProxy's capabilities templates write it: `{{value}}` of a plain tempita
/// `Template` (mapproxy/template.py:28), not escaped. Only the URLs the templates pass
/// through `|escape` are escaped here (legend URLs; service/templates/wms111capabilities.xml
/// :144, :166, wms130capabilities.xml).
fn e(s: &str) -> &str {
    s
}

fn f(v: f64) -> String {
    py_float_repr(v)
}

/// `limit_llbbox` (service/wms.py:575-593): longitudes within ±180, latitudes within
/// ±89.999999 (some clients cannot handle the poles), with Python's `max(-180, minx)`: the
/// first argument on a tie, so a longitude at or past ±180 is the int `-180`/`180`.
fn limit_llbbox(b: NumBbox) -> NumBbox {
    [
        Num::Int(-180).max(b[0]),
        Num::Float(-89.999999).max(b[1]),
        Num::Int(180).min(b[2]),
        Num::Float(89.999999).min(b[3]),
    ]
}

/// The extent a `bbox_srs` entry stands for (`extents_for_srs`,
/// config/configuration/service.py:339-352): an SRS alone is the default extent, one with a
/// bbox that bbox (as written) in that SRS.
fn srs_extent(code: &str, bbox: Option<NumBbox>) -> Option<Extent> {
    match bbox {
        None => Extent::world(),
        Some(bbox) => Some(Extent {
            srs: Srs::get(code).ok()?,
            bbox,
            default: false,
        }),
    }
}

/// `layer_srs_bbox` (service/wms.py:503-533): one bbox per `bbox_srs` entry the service lists
/// (default EPSG:3857, 4326, 900913): an entry without a bbox: the layer's extent in its SRS;
/// with one: that bbox for a layer with the default extent, else its intersection with the
/// layer's extent, via EPSG:4326 (MapProxy fails on none; left out here); then the layer's
/// own SRS when listed and not among them, its bbox as it is. Numbers as MapProxy holds them.
fn layer_srs_bbox(
    wms: &WmsService,
    ext: Option<&Extent>,
    axis_order: bool,
) -> Vec<(String, NumBbox)> {
    let mut out = Vec::new();
    let Some(ext) = ext else {
        return out;
    };
    let listed = |code: &str| wms.config.srs.iter().any(|s| s.eq_ignore_ascii_case(code));
    let order = |b: NumBbox, srs: &Srs| {
        if axis_order {
            switch_axis_order(b, srs)
        } else {
            b
        }
    };
    for (code, bbox) in &wms.config.bbox_srs {
        if !listed(code) {
            continue;
        }
        let Ok(srs) = Srs::get(code) else { continue };
        let Some(extent) = srs_extent(code, *bbox) else {
            continue;
        };
        let b = if extent.default {
            ext.bbox_for(&srs)
        } else if ext.default {
            extent.bbox_for(&srs)
        } else {
            (|| {
                let wgs84 = Srs::get("EPSG:4326").ok()?;
                let to_wgs84 = |e: &Extent| {
                    Some(Extent {
                        srs: wgs84.clone(),
                        bbox: e.bbox_for(&wgs84)?,
                        default: false,
                    })
                };
                let (a, b) = (to_wgs84(&extent)?, to_wgs84(ext)?);
                a.intersection(&b)?.bbox_for(&srs)
            })()
        };
        if let Some(b) = b {
            out.push((code.clone(), order(b, &srs)));
        }
    }
    let code = ext.srs.code();
    if listed(code) && !wms.config.bbox_srs.iter().any(|(c, _)| c == code) {
        out.push((code.to_string(), order(ext.bbox, &ext.srs)));
    }
    out
}

/// `layer_llbbox` (service/wms.py:535-541): with an EPSG:4326 `bbox_srs` entry, the layer's
/// extent intersected with it (the default extent's ints where the layer reaches them),
/// else the layer's own; limited by [`limit_llbbox`].
fn llbbox(wms: &WmsService, ext: Option<&Extent>) -> NumBbox {
    let Some(ext) = ext.cloned().or_else(Extent::world) else {
        return limit_llbbox(floats([-180.0, -90.0, 180.0, 90.0]));
    };
    let bbox_srs_4326 = wms
        .config
        .bbox_srs
        .iter()
        .find(|(c, _)| c == "EPSG:4326")
        .and_then(|(c, b)| srs_extent(c, *b));
    if let Some(i) = bbox_srs_4326.and_then(|e| e.intersection(&ext)) {
        if let Some(ll) = i.llbbox() {
            return limit_llbbox(ll);
        }
    }
    limit_llbbox(ext.llbbox().unwrap_or(floats([-180.0, -90.0, 180.0, 90.0])))
}

/// `<Service>` up to `AccessConstraints` (1.3.0 indents `Fees` and `AccessConstraints` by
/// four spaces, as its template does).
fn service_block(wms: &WmsService, url: &str, name: &str, v130: bool) -> String {
    let md = &wms.config.md;
    let mut s = format!(
        "<Service>\n  <Name>{name}</Name>\n  <Title>{}</Title>\n  <Abstract>{}</Abstract>\n",
        e(&md.title),
        e(&md.abstract_)
    );
    // 1.3.0 only: the service's keyword_list (wms130capabilities.xml:7-15)
    if v130 && !md.keyword_list.is_empty() {
        s.push_str("  <KeywordList>\n");
        for list in &md.keyword_list {
            let vocabulary = match list.vocabulary.as_deref().filter(|v| !v.is_empty()) {
                Some(v) => format!(" vocabulary=\"{}\"", e(v)),
                None => String::new(),
            };
            for k in &list.keywords {
                s.push_str(&format!("    <Keyword{vocabulary}>{}</Keyword>\n", e(k)));
            }
        }
        s.push_str("  </KeywordList>\n");
    }
    let online = if md.online_resource.is_empty() {
        url
    } else {
        md.online_resource.as_str()
    };
    // the template's `  {{endif}}{{if service.online_resource}} .. {{else}}` line: after a
    // keyword list, the service URL's line (the `else`) is indented by two more spaces
    let ind = if v130 && !md.keyword_list.is_empty() && md.online_resource.is_empty() {
        "    "
    } else {
        "  "
    };
    s.push_str(&format!(
        "{ind}<OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:href=\"{}\"/>\n",
        e(online)
    ));
    if let Some(c) = &md.contact {
        s.push_str(&format!(
            "  <ContactInformation>\n      <ContactPersonPrimary>\n        <ContactPerson>{}</ContactPerson>\n        <ContactOrganization>{}</ContactOrganization>\n      </ContactPersonPrimary>\n      <ContactPosition>{}</ContactPosition>\n      <ContactAddress>\n        <AddressType>{}</AddressType>\n        <Address>{}</Address>\n        <City>{}</City>\n        <StateOrProvince>{}</StateOrProvince>\n        <PostCode>{}</PostCode>\n        <Country>{}</Country>\n      </ContactAddress>\n      <ContactVoiceTelephone>{}</ContactVoiceTelephone>\n      <ContactFacsimileTelephone>{}</ContactFacsimileTelephone>\n      <ContactElectronicMailAddress>{}</ContactElectronicMailAddress>\n  </ContactInformation>\n",
            e(&c.person), e(&c.organization), e(&c.position),
            e(c.address_type.as_deref().unwrap_or("postal")), e(&c.address), e(&c.city),
            e(&c.state), e(&c.postcode), e(&c.country), e(&c.phone), e(&c.fax), e(&c.email)
        ));
    }
    let ind = if v130 { "    " } else { "  " };
    s.push_str(&format!(
        "{ind}<Fees>{}</Fees>\n{ind}<AccessConstraints>{}</AccessConstraints>\n",
        e(md.fees.as_deref().unwrap_or("none")),
        e(md.access_constraints.as_deref().unwrap_or("none"))
    ));
    s
}

/// A request's `<DCPType>` (1.3.0's template leaves the `xmlns:xlink` off the `Get`).
fn dcp(url: &str, v130: bool) -> String {
    let ns = if v130 {
        ""
    } else {
        " xmlns:xlink=\"http://www.w3.org/1999/xlink\""
    };
    format!("      <DCPType>\n        <HTTP>\n          <Get><OnlineResource{ns} xlink:href=\"{}?\"/></Get>\n        </HTTP>\n      </DCPType>\n", e(url))
}

/// The DOCTYPE's internal subset (wms111capabilities.xml:3-15): the WMS-C elements when
/// there are tile sets.
fn vendor_dtd(tiled: bool) -> &'static str {
    if tiled {
        " <!ELEMENT VendorSpecificCapabilities (TileSet*) >\n <!ELEMENT TileSet (SRS, BoundingBox?, Resolutions, Width, Height, Format, Layers*, Styles*) >\n <!ELEMENT Resolutions (#PCDATA) >\n <!ELEMENT Width (#PCDATA) >\n <!ELEMENT Height (#PCDATA) >\n <!ELEMENT Layers (#PCDATA) >\n <!ELEMENT Styles (#PCDATA) >\n"
    } else {
        " <!ELEMENT VendorSpecificCapabilities EMPTY>\n"
    }
}

/// `<VendorSpecificCapabilities>` with one WMS-C `TileSet` per tile layer
/// (wms111capabilities.xml:99-114; 1.1.0 names the SRS as the TMS does, `OSGEO:41001` for
/// the global mercator grid, wms110capabilities.xml:91-92).
fn tile_sets(layers: &[std::sync::Arc<crate::service::TileLayer>], version: Version) -> String {
    if layers.is_empty() {
        return String::new();
    }
    let mut s = String::from("  <VendorSpecificCapabilities>\n");
    for l in layers {
        let g = crate::service::tms::ServiceGrid::of(l);
        let srs = if version < Version::V111 {
            g.srs_name.clone()
        } else {
            format!("EPSG:{}", l.grid.srs())
        };
        let b = l.bbox;
        let mut res = String::new();
        for (_, r) in g.tile_sets(l) {
            res.push_str(&r.to_string());
            res.push(' ');
        }
        let (w, h) = l.grid.tile_size();
        s.push_str(&format!(
            "    <TileSet>\n      <SRS>{srs}</SRS>\n      <BoundingBox SRS=\"{srs}\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\" />\n      <Resolutions>{res}</Resolutions>\n      <Width>{w}</Width>\n      <Height>{h}</Height>\n      <Format>{}</Format>\n      <Layers>{}</Layers>\n      <Styles></Styles>\n    </TileSet>\n",
            b[0],
            b[1],
            b[2],
            b[3],
            e(l.format.as_str()),
            e(&l.name)
        ));
    }
    s.push_str("  </VendorSpecificCapabilities>\n");
    s
}

fn render_111(
    wms: &WmsService,
    url: &str,
    version: Version,
    allowed: &Access,
    sizes: &HashMap<String, (u32, u32)>,
    tile_layers: &[std::sync::Arc<crate::service::TileLayer>],
) -> String {
    let v = version.to_string();
    // wms110capabilities.xml:2 names the 1.1.0 DTD by its own file name
    let dtd = if version < Version::V111 {
        "capabilities_1_1_0.dtd"
    } else {
        "WMS_MS_Capabilities.dtd"
    };
    let mut s = format!("<?xml version=\"1.0\"?>\n<!DOCTYPE WMT_MS_Capabilities SYSTEM \"http://schemas.opengis.net/wms/{v}/{dtd}\"\n [\n{} ]>  <!-- end of DOCTYPE declaration -->\n<WMT_MS_Capabilities version=\"{v}\">\n", vendor_dtd(!tile_layers.is_empty()));
    s.push_str(&service_block(wms, url, "OGC:WMS", false));
    s.push_str("</Service>\n\n<Capability>\n  <Request>\n    <GetCapabilities>\n      <Format>application/vnd.ogc.wms_xml</Format>\n");
    s.push_str(&dcp(url, false));
    s.push_str("    </GetCapabilities>\n    <GetMap>\n");
    for fmt in &wms.config.image_formats {
        s.push_str(&format!("        <Format>{}</Format>\n", e(fmt)));
    }
    s.push_str(&dcp(url, false));
    s.push_str("    </GetMap>\n    <GetFeatureInfo>\n");
    for t in &wms.config.info_types {
        s.push_str(&format!("      <Format>{}</Format>\n", t.mime(false)));
    }
    s.push_str(&dcp(url, false));
    s.push_str("    </GetFeatureInfo>\n");
    // 1.1.0 has no GetLegendGraphic (wms111capabilities.xml:81-92 only)
    if version >= Version::V111 {
        s.push_str(&legend_request(wms, url, false));
    }
    s.push_str("  </Request>\n  <Exception>\n    <Format>application/vnd.ogc.se_xml</Format>\n    <Format>application/vnd.ogc.se_inimage</Format>\n    <Format>application/vnd.ogc.se_blank</Format>\n  </Exception>\n");
    s.push_str(&tile_sets(tile_layers, version));
    layer_111(
        wms, url, version, &wms.root, true, allowed, sizes, &mut s, 1,
    );
    s.push_str("</Capability>\n</WMT_MS_Capabilities>");
    s
}

/// The start of a `<Layer>` element, as every version's template writes it: the indentation
/// for the rest, or `None` for a named layer the authorizer hides (the root, `keep`, stays).
fn layer_head(
    l: &WmsLayer,
    keep: bool,
    allowed: &Access,
    s: &mut String,
    depth: usize,
) -> Option<String> {
    if let Some(n) = &l.name {
        if !keep && !allowed.allows(n) {
            return None;
        }
    }
    let ind = "  ".repeat(depth);
    let q = if l.queryable() {
        " queryable=\"1\""
    } else {
        ""
    };
    s.push_str(&format!("{ind}<Layer{q}>\n"));
    if let Some(n) = &l.name {
        s.push_str(&format!("{ind}  <Name>{}</Name>\n", e(n)));
    }
    s.push_str(&format!("{ind}  <Title>{}</Title>\n", e(&l.title)));
    Some(ind)
}

/// A layer's `LatLonBoundingBox` and `BoundingBox` elements of the 1.0.0 and 1.1.x documents.
fn bboxes_1x(wms: &WmsService, allowed: &Access, l: &WmsLayer, ind: &str, s: &mut String) {
    let ext = allowed.extent(l);
    let ll = llbbox(wms, ext.as_ref());
    s.push_str(&format!(
        "{ind}  <LatLonBoundingBox minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\" />\n",
        ll[0], ll[1], ll[2], ll[3]
    ));
    for (code, b) in layer_srs_bbox(wms, ext.as_ref(), false) {
        s.push_str(&format!(
            "{ind}  <BoundingBox SRS=\"{code}\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\" />\n",
            b[0], b[1], b[2], b[3]
        ));
    }
}

#[allow(clippy::too_many_arguments)]
fn layer_111(
    wms: &WmsService,
    url: &str,
    version: Version,
    l: &WmsLayer,
    with_srs: bool,
    allowed: &Access,
    sizes: &HashMap<String, (u32, u32)>,
    s: &mut String,
    depth: usize,
) {
    let Some(ind) = layer_head(l, with_srs, allowed, s, depth) else {
        return;
    };
    // 1.1.0: no layer md, the SRS list in one element (wms110capabilities.xml:109-112); 1.1.1:
    // the abstract when `md` has the key (wms111capabilities.xml:6-8)
    let v111 = version >= Version::V111;
    if let Some(a) = l.md.abstract_.as_ref().filter(|_| v111) {
        s.push_str(&format!("{ind}  <Abstract>{}</Abstract>\n", e(a)));
    }
    if with_srs && v111 {
        for srs in &wms.config.srs {
            s.push_str(&format!("{ind}  <SRS>{}</SRS>\n", e(srs)));
        }
    } else if with_srs {
        s.push_str(&format!("{ind}  <SRS>{}</SRS>\n", srs_list(wms)));
    }
    bboxes_1x(wms, allowed, l, &ind, s);
    if v111 {
        metadata_111(l, &ind, s);
    }
    s.push_str(&legend_style(url, l, sizes, &ind, false));
    s.push_str(&scale_hint(l, &ind));
    for c in &l.children {
        layer_111(wms, url, version, c, false, allowed, sizes, s, depth + 1);
    }
    s.push_str(&format!("{ind}</Layer>\n"));
}

/// The 1.1.1 `MetadataURL`s (wms111capabilities.xml:19-31): only the entries whose `type`
/// `wms111metadatatype` names (`ISO19115:2003` as `TC211`, `FGDC:1998` as `FGDC`,
/// service/template_helper.py:51-55), after the bounding boxes.
fn metadata_111(l: &WmsLayer, ind: &str, s: &mut String) {
    for m in &l.md.metadata {
        let t = match m.type_.as_str() {
            "ISO19115:2003" => "TC211",
            "FGDC:1998" => "FGDC",
            _ => continue,
        };
        s.push_str(&format!("{ind}  <MetadataURL type=\"{t}\">\n"));
        if !m.format.is_empty() {
            s.push_str(&format!("{ind}    <Format>{}</Format>\n", e(&m.format)));
        }
        s.push_str(&format!(
            "{ind}    <OnlineResource xmlns:xlink=\"http://www.w3.org/1999/xlink\" xlink:href=\"{}\"/>\n{ind}  </MetadataURL>\n",
            html_escape(&m.url)
        ));
    }
}

/// `<ScaleHint>` of a layer with `min_res`/`max_res` (1.0.0 to 1.1.1): MapProxy's
/// `scale_hint`, the diagonal of a pixel at each resolution.
fn scale_hint(l: &WmsLayer, ind: &str) -> String {
    if l.min_res.is_none() && l.max_res.is_none() {
        return String::new();
    }
    let hint = |r: f64| f((r * r * 2.0).sqrt());
    let min = l
        .max_res
        .map(|r| format!("min=\"{}\"", hint(r)))
        .unwrap_or_default();
    let max = l
        .min_res
        .map(|r| format!("max=\"{}\"", hint(r)))
        .unwrap_or_default();
    format!("{ind}  <ScaleHint {min} {max} />\n")
}

/// The service's SRS in one element's text, each followed by a space (wms100capabilities.xml,
/// wms110capabilities.xml: `{{for s in srs}}{{s}} {{endfor}}`).
fn srs_list(wms: &WmsService) -> String {
    let mut out = String::new();
    for srs in &wms.config.srs {
        out.push_str(e(srs));
        out.push(' ');
    }
    out
}

/// `wms100format`: a format's 1.0.0 element name (`PNG`, `TIFF`, `GIF`, `JPEG`), `None` for
/// others (service/template_helper.py:25-36).
fn wms100format(format: &str) -> Option<String> {
    let sub = format.split_once('/')?.1.to_ascii_uppercase();
    ["PNG", "TIFF", "GIF", "JPEG"]
        .contains(&sub.as_str())
        .then_some(sub)
}

/// The 1.0.0 document (service/templates/wms100capabilities.xml): old-style request names and
/// format elements, `onlineResource` attributes, a plain-text `OnlineResource`, one SRS
/// element on every layer, `StyleURL` legends.
fn render_100(
    wms: &WmsService,
    url: &str,
    allowed: &Access,
    sizes: &HashMap<String, (u32, u32)>,
) -> String {
    let md = &wms.config.md;
    let online = if md.online_resource.is_empty() {
        url
    } else {
        md.online_resource.as_str()
    };
    let mut s = format!(
        "<?xml version=\"1.0\"?>\n<!DOCTYPE WMT_MS_Capabilities SYSTEM \"http://schemas.opengis.net/wms/1.0.0/WMS_MS_Capabilities.dtd\"\n [\n <!ELEMENT VendorSpecificCapabilities EMPTY>\n ]>  <!-- end of DOCTYPE declaration -->\n<WMT_MS_Capabilities version=\"1.0.0\">\n<Service>\n  <Name>OGC:WMS</Name>\n  <Title>{}</Title>\n  <Abstract>{}</Abstract>\n  <OnlineResource>{}</OnlineResource>\n  <Fees>{}</Fees>\n  <AccessConstraints>{}</AccessConstraints>\n</Service>\n\n<Capability>\n  <Request>\n",
        e(&md.title),
        e(&md.abstract_),
        e(online),
        e(md.fees.as_deref().unwrap_or("none")),
        e(md.access_constraints.as_deref().unwrap_or("none"))
    );
    let dcp = format!(
        "      <DCPType>\n        <HTTP>\n          <Get onlineResource=\"{}?\"/>\n        </HTTP>\n      </DCPType>\n",
        e(url)
    );
    s.push_str("    <Capabilities>\n      <Format>\n        <WMS_XML/>\n      </Format>\n");
    s.push_str(&dcp);
    s.push_str("    </Capabilities>\n    <Map>\n      <Format>\n");
    for fmt in &wms.config.image_formats {
        if let Some(name) = wms100format(fmt) {
            s.push_str(&format!("        <{name}/>\n"));
        }
    }
    s.push_str("      </Format>\n");
    s.push_str(&dcp);
    s.push_str("    </Map>\n    <FeatureInfo>\n      <Format>\n");
    // `wms100info_format`: GML.1 for the XML types, MIME for the others
    for t in &wms.config.info_types {
        let name = match t.mime(false) {
            "application/vnd.ogc.gml" | "text/xml" => "GML.1",
            _ => "MIME",
        };
        s.push_str(&format!("        <{name}/>\n"));
    }
    s.push_str("      </Format>\n");
    s.push_str(&dcp);
    s.push_str("    </FeatureInfo>\n  </Request>\n  <Exception>\n    <Format>\n      <INIMAGE/>\n      <BLANK/>\n      <WMS_XML/>\n    </Format>\n  </Exception>\n");
    layer_100(wms, url, &wms.root, true, allowed, sizes, &mut s, 1);
    s.push_str("</Capability>\n</WMT_MS_Capabilities>");
    s
}

#[allow(clippy::too_many_arguments)]
fn layer_100(
    wms: &WmsService,
    url: &str,
    l: &WmsLayer,
    root: bool,
    allowed: &Access,
    sizes: &HashMap<String, (u32, u32)>,
    s: &mut String,
    depth: usize,
) {
    let Some(ind) = layer_head(l, root, allowed, s, depth) else {
        return;
    };
    s.push_str(&format!("{ind}  <SRS>{}</SRS>\n", srs_list(wms)));
    bboxes_1x(wms, allowed, l, &ind, s);
    if let Some(name) = l.name.as_ref().filter(|n| sizes.contains_key(*n)) {
        s.push_str(&format!(
            "{ind}  <Style>\n{ind}    <Name>default</Name>\n{ind}    <Title>default</Title>\n{ind}    <StyleURL>{}</StyleURL>\n{ind}  </Style>\n",
            legend_href(url, name)
        ));
    }
    s.push_str(&scale_hint(l, &ind));
    for c in &l.children {
        layer_100(wms, url, c, false, allowed, sizes, s, depth + 1);
    }
    s.push_str(&format!("{ind}</Layer>\n"));
}

fn render_130(
    wms: &WmsService,
    url: &str,
    allowed: &Access,
    sizes: &HashMap<String, (u32, u32)>,
) -> String {
    let mut s = String::from("<?xml version=\"1.0\" ?>\n<WMS_Capabilities xmlns=\"http://www.opengis.net/wms\" xmlns:sld=\"http://www.opengis.net/sld\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" version=\"1.3.0\" xsi:schemaLocation=\"http://www.opengis.net/wms http://schemas.opengis.net/wms/1.3.0/capabilities_1_3_0.xsd http://www.opengis.net/sld http://schemas.opengis.net/sld/1.1.0/sld_capabilities.xsd\">\n");
    s.push_str(&service_block(wms, url, "WMS", true));
    if let Some(max) = wms.config.max_output_pixels {
        let side = (max as f64).sqrt() as u64;
        s.push_str(&format!(
            "    <MaxWidth>{side}</MaxWidth>\n    <MaxHeight>{side}</MaxHeight>\n"
        ));
    }
    s.push_str("</Service>\n<Capability>\n  <Request>\n    <GetCapabilities>\n      <Format>text/xml</Format>\n");
    s.push_str(&dcp(url, true));
    s.push_str("    </GetCapabilities>\n    <GetMap>\n");
    for fmt in &wms.config.image_formats {
        s.push_str(&format!("      <Format>{}</Format>\n", e(fmt)));
    }
    s.push_str(&dcp(url, true));
    s.push_str("    </GetMap>\n    <GetFeatureInfo>\n");
    for t in &wms.config.info_types {
        s.push_str(&format!("      <Format>{}</Format>\n", t.mime(true)));
    }
    s.push_str(&dcp(url, true));
    s.push_str("    </GetFeatureInfo>\n");
    s.push_str(&legend_request(wms, url, true));
    s.push_str("  </Request>\n  <Exception>\n    <Format>XML</Format>\n    <Format>INIMAGE</Format>\n    <Format>BLANK</Format>\n  </Exception>\n");
    layer_130(wms, url, &wms.root, true, allowed, sizes, &mut s, 1);
    s.push_str("</Capability>\n</WMS_Capabilities>");
    s
}

#[allow(clippy::too_many_arguments)]
fn layer_130(
    wms: &WmsService,
    url: &str,
    l: &WmsLayer,
    with_srs: bool,
    allowed: &Access,
    sizes: &HashMap<String, (u32, u32)>,
    s: &mut String,
    depth: usize,
) {
    let Some(ind) = layer_head(l, with_srs, allowed, s, depth) else {
        return;
    };
    // wms130capabilities.xml:211-223: `{{if md.abstract}}`, `{{if md.keyword_list}}`
    if let Some(a) = l.md.abstract_.as_ref().filter(|a| !a.is_empty()) {
        s.push_str(&format!("{ind}  <Abstract>{}</Abstract>\n", e(a)));
    }
    if !l.md.keyword_list.is_empty() {
        s.push_str(&format!("{ind}  <KeywordList>\n"));
        for list in &l.md.keyword_list {
            let voc = match &list.vocabulary {
                Some(v) if !v.is_empty() => format!(" vocabulary=\"{}\"", e(v)),
                _ => String::new(),
            };
            for k in &list.keywords {
                s.push_str(&format!("{ind}    <Keyword{voc}>{}</Keyword>\n", e(k)));
            }
        }
        s.push_str(&format!("{ind}  </KeywordList>\n"));
    }
    if with_srs {
        for srs in &wms.config.srs {
            s.push_str(&format!("{ind}  <CRS>{}</CRS>\n", e(srs)));
        }
    }
    let ext = allowed.extent(l);
    let ll = llbbox(wms, ext.as_ref());
    s.push_str(&format!(
        "{ind}  <EX_GeographicBoundingBox>\n{ind}    <westBoundLongitude>{}</westBoundLongitude>\n{ind}    <eastBoundLongitude>{}</eastBoundLongitude>\n{ind}    <southBoundLatitude>{}</southBoundLatitude>\n{ind}    <northBoundLatitude>{}</northBoundLatitude>\n{ind}  </EX_GeographicBoundingBox>\n",
        ll[0], ll[2], ll[1], ll[3]
    ));
    for (code, b) in layer_srs_bbox(wms, ext.as_ref(), true) {
        s.push_str(&format!(
            "{ind}  <BoundingBox CRS=\"{code}\" minx=\"{}\" miny=\"{}\" maxx=\"{}\" maxy=\"{}\" />\n",
            b[0], b[1], b[2], b[3]
        ));
    }
    md_130(l, &ind, s);
    s.push_str(&legend_style(url, l, sizes, &ind, true));
    if l.min_res.is_some() || l.max_res.is_some() {
        // MapProxy: res / 0.00028 (metres) as scale denominators
        let den = |r: f64| f(r / 0.00028);
        if let Some(r) = l.max_res {
            s.push_str(&format!(
                "{ind}  <MinScaleDenominator>{}</MinScaleDenominator>\n",
                den(r)
            ));
        }
        if let Some(r) = l.min_res {
            s.push_str(&format!(
                "{ind}  <MaxScaleDenominator>{}</MaxScaleDenominator>\n",
                den(r)
            ));
        }
    }
    for c in &l.children {
        layer_130(wms, url, c, false, allowed, sizes, s, depth + 1);
    }
    s.push_str(&format!("{ind}</Layer>\n"));
}

/// A layer's md between its bounding boxes and its style in the 1.3.0 document
/// (wms130capabilities.xml:239-288): `Attribution`, the `AuthorityURL`s and then the
/// `Identifier`s, and `layer_meta_tag` (:310-319) for `MetadataURL`, `DataURL` and
/// `FeatureListURL`. Only URLs and the `type` attribute are escaped (`|escape`).
fn md_130(l: &WmsLayer, ind: &str, s: &mut String) {
    let md = &l.md;
    if let Some(a) = &md.attribution {
        s.push_str(&format!("{ind}  <Attribution>\n"));
        if !a.title.is_empty() {
            s.push_str(&format!("{ind}    <Title>{}</Title>\n", e(&a.title)));
        }
        if !a.url.is_empty() {
            s.push_str(&format!(
                "{ind}    <OnlineResource xlink:href=\"{}\"/>\n",
                html_escape(&a.url)
            ));
        }
        if let Some(logo) = &a.logo {
            let dim = |name: &str, v: Option<i64>| match v {
                Some(v) if v != 0 => format!(" {name}=\"{v}\""),
                _ => String::new(),
            };
            s.push_str(&format!(
                "{ind}    <LogoURL{}{}>\n",
                dim("width", logo.width),
                dim("height", logo.height)
            ));
            if !logo.format.is_empty() {
                s.push_str(&format!(
                    "{ind}      <Format>{}</Format>\n",
                    e(&logo.format)
                ));
            }
            if !logo.url.is_empty() {
                s.push_str(&format!(
                    "{ind}      <OnlineResource xlink:href=\"{}\"/>\n",
                    html_escape(&logo.url)
                ));
            }
            s.push_str(&format!("{ind}    </LogoURL>\n"));
        }
        s.push_str(&format!("{ind}  </Attribution>\n"));
    }
    for idf in &md.identifier {
        s.push_str(&format!(
            "{ind}  <AuthorityURL name=\"{}\">\n",
            e(&idf.name)
        ));
        if !idf.url.is_empty() {
            s.push_str(&format!(
                "{ind}    <OnlineResource xlink:href=\"{}\" />\n",
                html_escape(&idf.url)
            ));
        }
        s.push_str(&format!("{ind}  </AuthorityURL>\n"));
    }
    for idf in &md.identifier {
        s.push_str(&format!(
            "{ind}  <Identifier authority=\"{}\">{}</Identifier>\n",
            e(&idf.name),
            e(&idf.value)
        ));
    }
    for (tag, urls) in [
        ("MetadataURL", &md.metadata),
        ("DataURL", &md.data),
        ("FeatureListURL", &md.feature_list),
    ] {
        for u in urls {
            let t = if u.type_.is_empty() {
                String::new()
            } else {
                format!(" type=\"{}\"", html_escape(&u.type_))
            };
            s.push_str(&format!("{ind}  <{tag}{t}>\n"));
            if !u.format.is_empty() {
                s.push_str(&format!("{ind}    <Format>{}</Format>\n", e(&u.format)));
            }
            s.push_str(&format!(
                "{ind}    <OnlineResource xlink:href=\"{}\"/>\n{ind}  </{tag}>\n",
                html_escape(&u.url)
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::clipped_bounds;

    #[test]
    fn clipped_bounds_of_a_triangle_and_a_box() {
        let triangle = geo::MultiPolygon::new(vec![geo::Polygon::new(
            geo::LineString::from(vec![(5.0, 45.0), (15.0, 45.0), (15.0, 55.0), (5.0, 45.0)]),
            vec![],
        )]);
        // the triangle's corner (5 45) inside, its hypotenuse cut at x=10 (y=50) and y=50
        assert_eq!(
            clipped_bounds(&triangle, [0.0, 40.0, 10.0, 50.0]),
            Some([5.0, 45.0, 10.0, 50.0])
        );
        // above the hypotenuse only: the triangle's part is (12 52)...(15 55): clipped
        assert_eq!(
            clipped_bounds(&triangle, [12.0, 46.0, 20.0, 60.0]),
            Some([12.0, 46.0, 15.0, 55.0])
        );
        assert_eq!(clipped_bounds(&triangle, [20.0, 40.0, 30.0, 50.0]), None);
        // touching along an edge only
        assert_eq!(clipped_bounds(&triangle, [15.0, 40.0, 30.0, 50.0]), None);
    }
}
