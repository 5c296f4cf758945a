//! The demo's HTML pages: the index, the three viewers and the capabilities view.

use std::f64::consts::SQRT_2;
use std::fmt::Write as _;

use super::escape::{html, js_string, py_floats, py_nums, quote};
use super::{assets, DemoInput, DemoTileLayer, DemoWmsLayer, MAPPROXY_VERSION};
use crate::grid::{default_bbox, Bbox, Origin, TileGrid};
use crate::pynum::{floats, Num};

/// Why a viewer page cannot be shown.
#[derive(Debug, PartialEq)]
pub enum PageError {
    /// The query lacks this parameter.
    MissingParam(&'static str),
    /// No layer has that name (and SRS).
    UnknownLayer,
}

fn layout(menu_title: Option<&str>, body: &str, scripts: &str) -> String {
    let menu = match menu_title {
        Some(t) => format!(
            "<span><a href=\"./\">Demos</a></span>\n<span class=\"current\"><a href=\"\">{}</a></span>",
            html(t)
        ),
        None => "<span class=\"current\"><a href=\"./\">Demos</a></span>".to_string(),
    };
    format!(
        "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n\
         <title>MapProxy Demo</title>\n\
         <link rel=\"stylesheet\" type=\"text/css\" href=\"static/site.css\">\n</head>\n<body>\n\
         <div id=\"box\">\n<div id=\"header\"><h1>MapProxy</h1></div>\n\
         <div id=\"menu\">\n{menu}\n</div>\n<div id=\"content\">\n{body}</div>\n</div>\n{scripts}</body>\n</html>\n"
    )
}

const NOT_AVAILABLE: &str = "<div class=\"capabilities\">\n<span>This service is not available with the current configuration.</span>\n</div>\n";

fn capabilities_links(out: &mut String, title: &str, download: &str, view: &str) {
    let _ = write!(
        out,
        "<div class=\"capabilities\">\n<span>{title}</span>\n\
         <span><a href=\"{download}\">(download as xml)</a></span>\n\
         <span><a href=\"../demo/?{view}\">(view as html, internal)</a></span>\n\
         <span><a href=\"../demo/?{view}&type=external\">(view as html, external)</a></span>\n</div>\n"
    );
}

fn srs_code(grid: &TileGrid) -> String {
    format!("EPSG:{}", grid.srs())
}

/// `srs` with an EPSG number → that number, else itself: MapProxy's sort key for SRS lists.
fn srs_key(srs: &str) -> String {
    let num = srs
        .split_once(':')
        .filter(|(auth, _)| auth.eq_ignore_ascii_case("EPSG"))
        .map(|(_, n)| n)
        .unwrap_or(srs);
    if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit()) {
        num.trim_start_matches('0').to_string()
    } else {
        srs.to_string()
    }
}

/// MapProxy's `layer_srs`: the layer's own SRS (titled with `*`), then the WMS `srs:` list's
/// others, each sorted by [`srs_key`]. `(title, code)`.
fn layer_srs(layer: &DemoWmsLayer, wms_srs: &[String]) -> Vec<(String, String)> {
    let mut cached: Vec<&String> = layer.native_srs.iter().collect();
    let mut uncached: Vec<&String> = wms_srs.iter().filter(|s| !cached.contains(s)).collect();
    cached.sort_by_key(|s| srs_key(s));
    uncached.sort_by_key(|s| srs_key(s));
    cached
        .into_iter()
        .map(|s| (format!("{s}*"), s.clone()))
        .chain(uncached.into_iter().map(|s| (s.clone(), s.clone())))
        .collect()
}

fn demo_formats(input: &DemoInput) -> Vec<&str> {
    input
        .wms_formats
        .iter()
        .map(String::as_str)
        .filter(|f| *f == "image/png" || *f == "image/jpeg")
        .collect()
}

/// Tile layers grouped by name, names sorted (a stable sort: configuration order within a name).
fn tile_groups(input: &DemoInput) -> Vec<(&str, Vec<(usize, &DemoTileLayer)>)> {
    let mut groups: Vec<(&str, Vec<(usize, &DemoTileLayer)>)> = Vec::new();
    for (i, l) in input.tile_layers.iter().enumerate() {
        match groups.iter_mut().find(|(n, _)| *n == l.name) {
            Some((_, v)) => v.push((i, l)),
            None => groups.push((&l.name, vec![(i, l)])),
        }
    }
    groups.sort_by(|a, b| a.0.cmp(b.0));
    groups
}

fn viewer_link(kind: &str, l: &DemoTileLayer) -> String {
    format!(
        "../demo/?{kind}={}&format={}&srs={}",
        html(&quote(&l.name)),
        html(&quote(&l.format)),
        html(&quote(&srs_code(&l.grid)))
    )
}

pub fn index(input: &DemoInput) -> String {
    let s = &input.services;
    let mut b = String::new();
    let _ = write!(
        b,
        "<h2>About</h2>\n<p>MapProxy Version {MAPPROXY_VERSION} (mapproxy-serve)</p>\n<h2>OGC API</h2>\n"
    );
    if s.ogcapi {
        for (path, title) in [
            ("../ogcapi", "Landing page"),
            ("../ogcapi/api", "API documentation"),
            ("../ogcapi/collections", "Collections"),
        ] {
            let _ = write!(
                b,
                "<div class=\"capabilities\">\n<span><a href=\"{path}\">{title} (as HTML)</a></span>\n\
                 <span><a href=\"{path}?f=json\">(as JSON)</a></span>\n</div>\n"
            );
        }
    } else {
        b.push_str(NOT_AVAILABLE);
    }

    b.push_str("<h2>WMS</h2>\n");
    if s.wms {
        capabilities_links(
            &mut b,
            "Capabilities document",
            "../service?REQUEST=GetCapabilities&SERVICE=WMS",
            "wms_capabilities",
        );
        if s.wms_111 {
            let formats = demo_formats(input);
            b.push_str("<table class=\"code\">\n<tr><th>Layer</th><th>Coordinate-System</th><th>Image-Format</th></tr>\n");
            // MapProxy sorts them by name (config/configuration/service.py)
            let mut wms_layers: Vec<&DemoWmsLayer> = input.wms_layers.iter().collect();
            wms_layers.sort_by(|a, b| a.name.cmp(&b.name));
            for layer in wms_layers {
                let srs_list = layer_srs(layer, &input.wms_srs);
                for (i, format) in formats.iter().enumerate() {
                    b.push_str("<tr>");
                    if i == 0 {
                        let _ = write!(
                            b,
                            "<td rowspan=\"{}\">{}</td>",
                            formats.len(),
                            html(&layer.name)
                        );
                    }
                    b.push_str("\n<td class=\"value epsg-codes\"><form action=\"\" method=\"GET\">\n<select name=\"srs\" onchange=\"this.form.submit()\">\n");
                    for (title, code) in &srs_list {
                        let _ = writeln!(
                            b,
                            "<option value=\"{}\">{}</option>",
                            html(code),
                            html(title)
                        );
                    }
                    let short = format.split_once('/').map_or(*format, |(_, e)| e);
                    let _ = write!(
                        b,
                        "</select>\n<input type=\"hidden\" name=\"format\" value=\"{}\">\n\
                         <input type=\"hidden\" name=\"wms_layer\" value=\"{}\">\n</form></td>\n\
                         <td class=\"value\"><a href=\"#\" onclick=\"this.closest('tr').querySelector('form').submit(); return false\">{}</a></td>\n</tr>\n",
                        html(format),
                        html(&layer.name),
                        html(short)
                    );
                }
            }
            b.push_str("</table>\n<p>Coordinate systems marked with * are supported without reprojection.</p>\n");
        } else {
            b.push_str("<div class=\"capabilities\">\n<span>The demo service only supports WMS 1.1.1. Enable 1.1.1 to see a list of your configured layers.</span>\n</div>\n");
        }
    } else {
        b.push_str(NOT_AVAILABLE);
    }

    b.push_str("<h2>WMS-C</h2>\n");
    if s.wms {
        capabilities_links(
            &mut b,
            "Capabilities document",
            "../service?REQUEST=GetCapabilities&SERVICE=WMS&tiled=true",
            "wmsc_capabilities",
        );
    } else {
        b.push_str(NOT_AVAILABLE);
    }

    b.push_str("<h2>WMTS</h2>\n");
    if s.wmts_kvp || s.wmts_restful {
        if s.wmts_kvp {
            capabilities_links(
                &mut b,
                "KVP capabilities document",
                "../service?REQUEST=GetCapabilities&SERVICE=WMTS",
                "wmts_capabilities_kvp",
            );
        }
        if s.wmts_restful {
            capabilities_links(
                &mut b,
                "RESTful capabilities document",
                "../wmts/1.0.0/WMTSCapabilities.xml",
                "wmts_capabilities",
            );
        }
        b.push_str("<table class=\"code\">\n<tr><th>Layer</th><th>Coordinate-System</th><th>Image-Format</th></tr>\n");
        for (name, layers) in tile_groups(input) {
            for (i, (_, l)) in layers.iter().enumerate() {
                b.push_str("<tr>");
                if i == 0 {
                    let _ = write!(b, "<td rowspan=\"{}\">{}</td>", layers.len(), html(name));
                }
                if l.grid.supports_access_with_origin(Origin::UpperLeft) {
                    let link = viewer_link("wmts_layer", l);
                    let _ = write!(
                        b,
                        "\n<td class=\"value\"><a href=\"{link}\">{}</a></td>\n<td class=\"value\"><a href=\"{link}\">{}</a></td>\n</tr>\n",
                        html(&srs_code(&l.grid)),
                        html(&l.format)
                    );
                } else {
                    let _ = write!(
                        b,
                        "\n<td class=\"value\" colspan=\"2\">{} not compatible with WMTS</td>\n</tr>\n",
                        html(&l.matrix_set)
                    );
                }
            }
        }
        b.push_str("</table>\n");
    } else {
        b.push_str(NOT_AVAILABLE);
    }

    b.push_str("<h2>TMS</h2>\n");
    if s.tms {
        capabilities_links(
            &mut b,
            "Capabilities document",
            "../tms/1.0.0/",
            "tms_capabilities",
        );
        b.push_str("<table class=\"code\">\n<tr><th>Layer</th><th>Coordinate-System</th><th>Image-Format</th><th>Layer Capabilities</th></tr>\n");
        for (name, layers) in tile_groups(input) {
            for (i, (_, l)) in layers.iter().enumerate() {
                b.push_str("<tr>");
                if i == 0 {
                    let _ = write!(b, "<td rowspan=\"{}\">{}</td>", layers.len(), html(name));
                }
                if l.grid.supports_access_with_origin(Origin::LowerLeft) {
                    let link = viewer_link("tms_layer", l);
                    let _ = write!(
                        b,
                        "\n<td class=\"value\"><a href=\"{link}\">{}</a></td>\n<td class=\"value\"><a href=\"{link}\">{}</a></td>\n\
                         <td class=\"value\"><a href=\"../demo/?tms_capabilities&layer={}&srs={}\">click here</a></td>\n</tr>\n",
                        html(&srs_code(&l.grid)),
                        html(&l.format),
                        html(&quote(&l.name)),
                        html(&quote(&l.tms_grid))
                    );
                } else {
                    let _ = write!(
                        b,
                        "\n<td class=\"value\" colspan=\"3\">{} not compatible with TMS</td>\n</tr>\n",
                        html(&l.matrix_set)
                    );
                }
            }
        }
        b.push_str("</table>\n");
    } else {
        b.push_str(NOT_AVAILABLE);
    }
    layout(None, &b, "")
}

/// MapProxy's `TileServiceGrid`: TMS hides the first level of the global profiles (and every
/// other level of a √2 grid).
struct TmsGrid<'a> {
    grid: &'a TileGrid,
    skip_first: bool,
    skip_odd: bool,
}

impl<'a> TmsGrid<'a> {
    fn new(grid: &'a TileGrid) -> TmsGrid<'a> {
        let bbox = Some(grid.bbox());
        let global = match grid.srs() {
            900913 | 3857 | 102100 | 102113 => bbox == default_bbox(3857),
            4326 => bbox == default_bbox(4326),
            _ => false,
        };
        let res = grid.resolutions();
        let skip_odd = res.len() >= 2 && res[0] / res[1] == SQRT_2;
        TmsGrid {
            grid,
            skip_first: global,
            skip_odd,
        }
    }

    /// `(order, resolution)` of the levels TMS serves, the resolutions as MapProxy holds them.
    fn tile_sets(&self) -> Vec<(usize, Num)> {
        let start = match (self.skip_first, self.skip_odd) {
            (true, true) => 2,
            (true, false) => 1,
            _ => 0,
        };
        let step = if self.skip_odd { 2 } else { 1 };
        self.grid
            .resolutions_num()
            .iter()
            .skip(start)
            .step_by(step)
            .copied()
            .enumerate()
            .collect()
    }

    /// The grid's configured bbox. MapProxy's `TileServiceGrid.bbox` means the bbox of all
    /// tiles of the first served level, but calls a `_get_bbox` `TileGrid` does not have
    /// (service/tile.py:484-491); the AttributeError in the property makes Python fall back to
    /// `__getattr__`, the wrapped grid's `bbox` (checked against MapProxy 7's demo pages).
    fn bbox(&self) -> Bbox {
        self.grid.bbox()
    }
}

fn find_tile_layer<'a>(
    input: &'a DemoInput,
    name: &str,
    srs: Option<&'a str>,
    format: Option<&'a str>,
) -> Result<(usize, &'a DemoTileLayer, &'a str, &'a str), PageError> {
    let srs = srs.ok_or(PageError::MissingParam("srs"))?;
    let format = format.ok_or(PageError::MissingParam("format"))?;
    input
        .tile_layers
        .iter()
        .enumerate()
        .find(|(_, l)| l.name == name && srs_code(&l.grid) == srs)
        .map(|(i, l)| (i, l, srs, format))
        .ok_or(PageError::UnknownLayer)
}

/// The `<option>`s of the SRS switcher: the other grids of the same layer that `origin` can
/// address.
fn srs_options(input: &DemoInput, current: usize, origin: Origin) -> String {
    let mut out = String::new();
    let Some(cur) = input.tile_layers.get(current) else {
        return out;
    };
    for (i, l) in input.tile_layers.iter().enumerate() {
        if l.name != cur.name || !l.grid.supports_access_with_origin(origin) {
            continue;
        }
        let code = html(&srs_code(&l.grid));
        let sel = if i == current { " selected" } else { "" };
        let _ = writeln!(out, "<option{sel} value=\"{code}\">{code}</option>");
    }
    out
}

fn js_array(v: &[Num]) -> String {
    format!("[{}]", py_nums(v))
}

/// The scripts of a viewer page: OpenLayers, then `config` (a JS object literal) and the
/// viewer code.
fn viewer_scripts(config: &str) -> String {
    let v = assets::OL_VERSION;
    format!(
        "<link rel=\"stylesheet\" href=\"static/ol-{v}/ol.css\">\n\
         <script src=\"static/ol-{v}/ol.js\"></script>\n\
         <script>\nconst demoConfig = {config};\n{VIEWER_JS}</script>\n"
    )
}

/// The viewer, the same for all three kinds; `demoConfig.kind` picks the source.
const VIEWER_JS: &str = r#"(function () {
  "use strict";
  const c = demoConfig;
  function message(text) {
    const el = document.getElementById("map");
    const p = document.createElement("p");
    p.className = "message";
    p.textContent = text;
    el.replaceChildren(p);
  }
  function source() {
    if (c.kind === "tms") {
      return new ol.source.XYZ({
        url: c.url,
        opaque: !c.transparent,
        projection: c.srs,
        maxResolution: c.resolutions[0],
        tileGrid: new ol.tilegrid.TileGrid({
          tileSize: c.tileSize, resolutions: c.resolutions, extent: c.gridExtent
        })
      });
    }
    if (c.kind === "wmts") {
      return new ol.source.WMTS({
        url: c.url,
        layer: c.layer,
        matrixSet: c.matrixSet,
        format: c.format,
        projection: c.srs,
        style: "",
        requestEncoding: c.rest ? "REST" : "KVP",
        tileGrid: new ol.tilegrid.WMTS({
          origin: ol.extent.getTopLeft(c.gridExtent),
          resolutions: c.resolutions,
          matrixIds: c.resolutions.map(function (_, i) { return String(i); }),
          tileSize: c.tileSize
        })
      });
    }
    return new ol.source.ImageWMS({
      url: c.url,
      params: { LAYERS: c.layer, FORMAT: c.format, TRANSPARENT: c.transparent, CRS: c.srs }
    });
  }
  function init() {
    if (typeof ol === "undefined") { message("The map library did not load."); return; }
    if (!ol.proj.get(c.srs)) {
      message("The preview map does not support this coordinate system (" + c.srs + ").");
      return;
    }
    const layers = [];
    if (c.background) {
      layers.push(new ol.layer.Tile({ source: new ol.source.XYZ({ url: c.background }) }));
    }
    const main = c.kind === "wms" ? new ol.layer.Image({ source: source() })
                                  : new ol.layer.Tile({ source: source() });
    layers.push(main);
    const view = c.kind === "wmts"
      ? new ol.View({ projection: c.srs, resolutions: c.resolutions })
      : new ol.View({ projection: c.srs });
    const map = new ol.Map({ layers: layers, target: "map", view: view });
    map.getView().fit(c.extent);
    map.once("rendercomplete", function () { document.body.dataset.mapRendered = "true"; });
    window.demoMap = map;
    window.zoomToFullExtent = function () { map.getView().fit(c.extent); };
    window.toggleBackgroundMap = function () {
      if (c.background) { layers[0].setVisible(!layers[0].getVisible()); }
    };
  }
  window.addEventListener("load", init);
})();
"#;

fn buttons(input: &DemoInput) -> &'static str {
    if input.background_url.is_some() {
        "<div id=\"map\"></div>\n<button class=\"mapBtn\" onclick=\"zoomToFullExtent()\">Zoom to full extent</button>\n\
         <button class=\"mapBtn\" onclick=\"toggleBackgroundMap()\">Toggle background map</button>\n"
    } else {
        "<div id=\"map\"></div>\n<button class=\"mapBtn\" onclick=\"zoomToFullExtent()\">Zoom to full extent</button>\n"
    }
}

fn background_js(input: &DemoInput) -> String {
    match &input.background_url {
        Some(u) => js_string(u),
        None => "null".to_string(),
    }
}

pub fn tms_viewer(
    input: &DemoInput,
    name: &str,
    srs: Option<&str>,
    format: Option<&str>,
) -> Result<String, PageError> {
    let (idx, layer, srs, format) = find_tile_layer(input, name, srs, format)?;
    let tms = TmsGrid::new(&layer.grid);
    let tile_sets = tms.tile_sets();
    let res: Vec<Num> = tile_sets.iter().map(|&(_, r)| r).collect();
    let grid_bbox = tms.bbox();
    let extent = layer.extent.unwrap_or(floats(layer.grid.bbox()));
    let (tw, th) = layer.grid.tile_size();
    let url = format!(
        "../tms/1.0.0/{}/{}/{{z}}/{{x}}/{{-y}}.{}",
        quote(&layer.name),
        quote(&layer.tms_grid),
        quote(format)
    );
    let config = format!(
        "{{kind: \"tms\", url: {}, srs: {}, format: {}, transparent: {}, tileSize: [{tw}, {th}], \
         extent: {}, gridExtent: {}, resolutions: {}, background: {}}}",
        js_string(&url),
        js_string(srs),
        js_string(format),
        format == "png",
        js_array(&extent),
        js_array(&floats(grid_bbox)),
        js_array(&res),
        background_js(input)
    );
    let mut b = format!(
        "<h2>Layer Preview - {}</h2>\n<form action=\"\" method=\"GET\">\n<table>\n\
         <tr><th>Coordinate System</th><th>Image format</th></tr>\n<tr><td>\n\
         <select name=\"srs\" size=\"1\" onchange=\"this.form.submit()\">\n{}</select>\n\
         <input type=\"hidden\" name=\"format\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"tms_layer\" value=\"{}\">\n</td>\n<td>{}</td></tr>\n</table>\n</form>\n",
        html(&layer.name),
        srs_options(input, idx, Origin::LowerLeft),
        html(format),
        html(&layer.name),
        html(format)
    );
    b.push_str(buttons(input));
    let _ = write!(
        b,
        "<h3>Capabilities</h3>\n<p><a href=\"../tms/1.0.0/{}/{}\">TMS layer capabilities (xml)</a></p>\n\
         <h3>Bounding Box</h3>\n<p class=\"code\">{}</p>\n\
         <h3>Level and Resolutions</h3>\n<table class=\"code\">\n<tr><th>Level</th><th>Resolution</th></tr>\n",
        html(&quote(&layer.name)),
        html(&quote(&layer.tms_grid)),
        py_floats(&grid_bbox)
    );
    for (level, r) in &tile_sets {
        let _ = writeln!(b, "<tr><td>{level}</td><td>{r}</td></tr>");
    }
    b.push_str("</table>\n");
    let title = format!("TMS {} {}", layer.name, srs);
    Ok(layout(Some(&title), &b, &viewer_scripts(&config)))
}

pub fn wmts_viewer(
    input: &DemoInput,
    name: &str,
    srs: Option<&str>,
    format: Option<&str>,
) -> Result<String, PageError> {
    let (idx, layer, srs, format) = find_tile_layer(input, name, srs, format)?;
    let rest = input.services.wmts_restful;
    let url = if rest {
        let t = input.restful_template.replacen("{Layer}", &layer.name, 1);
        format!("../wmts{}", t.replace("{Format}", &layer.format))
    } else {
        "../service?".to_string()
    };
    let grid_bbox = TmsGrid::new(&layer.grid).bbox();
    let extent = layer.extent.unwrap_or(floats(layer.grid.bbox()));
    let (tw, th) = layer.grid.tile_size();
    let config = format!(
        "{{kind: \"wmts\", url: {}, rest: {rest}, layer: {}, matrixSet: {}, srs: {}, format: {}, \
         tileSize: [{tw}, {th}], extent: {}, gridExtent: {}, resolutions: {}, background: {}}}",
        js_string(&url),
        js_string(&layer.name),
        js_string(&layer.matrix_set),
        js_string(srs),
        js_string(format),
        js_array(&extent),
        js_array(&floats(grid_bbox)),
        js_array(layer.grid.resolutions_num()),
        background_js(input)
    );
    let mut b = format!(
        "<h2>Layer Preview - {}</h2>\n<form action=\"\" method=\"GET\">\n<table>\n\
         <tr><th>Coordinate System</th><th>Image format</th></tr>\n<tr><td>\n\
         <select name=\"srs\" size=\"1\" onchange=\"this.form.submit()\">\n{}</select>\n\
         <input type=\"hidden\" name=\"format\" value=\"{}\">\n\
         <input type=\"hidden\" name=\"wmts_layer\" value=\"{}\">\n</td>\n<td>{}</td></tr>\n</table>\n</form>\n",
        html(&layer.name),
        srs_options(input, idx, Origin::UpperLeft),
        html(format),
        html(&layer.name),
        html(&layer.format)
    );
    b.push_str(buttons(input));
    let _ = write!(
        b,
        "<h3>Capabilities</h3>\n<p><a href=\"../wmts/1.0.0/WMTSCapabilities.xml\">WMTS capabilities (xml)</a></p>\n\
         <h3>Bounding Box</h3>\n<p class=\"code\">{}</p>\n",
        py_nums(&extent)
    );
    let title = format!("WMTS {} {}", layer.name, srs);
    Ok(layout(Some(&title), &b, &viewer_scripts(&config)))
}

pub fn wms_viewer(
    input: &DemoInput,
    name: &str,
    srs: Option<&str>,
    format: Option<&str>,
) -> Result<String, PageError> {
    let srs = srs.ok_or(PageError::MissingParam("srs"))?;
    let format = format.ok_or(PageError::MissingParam("format"))?;
    let layer = input
        .wms_layers
        .iter()
        .find(|l| l.name == name)
        .ok_or(PageError::UnknownLayer)?;
    let extent = layer
        .extents
        .iter()
        .find(|(s, _)| s == srs)
        .map(|(_, b)| *b)
        .ok_or(PageError::UnknownLayer)?;
    let config = format!(
        "{{kind: \"wms\", url: \"../service?\", layer: {}, srs: {}, format: {}, transparent: {}, \
         extent: {}, background: {}}}",
        js_string(&layer.name),
        js_string(srs),
        js_string(format),
        format == "image/png",
        js_array(&extent),
        background_js(input)
    );
    let mut srs_opts = String::new();
    for (title, code) in layer_srs(layer, &input.wms_srs) {
        let sel = if code == srs { " selected" } else { "" };
        let _ = writeln!(
            srs_opts,
            "<option{sel} value=\"{}\">{}</option>",
            html(&code),
            html(&title)
        );
    }
    let mut fmt_opts = String::new();
    for f in demo_formats(input) {
        let sel = if f == format { " selected" } else { "" };
        let short = f.split_once('/').map_or(f, |(_, e)| e);
        let _ = writeln!(
            fmt_opts,
            "<option{sel} value=\"{}\">{}</option>",
            html(f),
            html(short)
        );
    }
    let mut b = format!(
        "<h2>Layer Preview - {}</h2>\n<form action=\"\" method=\"GET\">\n<table>\n\
         <tr><th>Coordinate System</th><th>Image format</th></tr>\n<tr>\n\
         <td><select name=\"srs\" onchange=\"this.form.submit()\">\n{srs_opts}</select></td>\n\
         <td><select name=\"format\" onchange=\"this.form.submit()\">\n{fmt_opts}</select></td>\n\
         </tr>\n</table>\n<input type=\"hidden\" name=\"wms_layer\" value=\"{}\">\n</form>\n",
        html(&layer.name),
        html(&layer.name)
    );
    b.push_str(buttons(input));
    let _ = write!(
        b,
        "<h3>Capabilities</h3>\n<p><a href=\"../service?REQUEST=GetCapabilities&amp;SERVICE=WMS\">WMS capabilities (xml)</a></p>\n"
    );
    let title = format!("WMS {} {}", layer.name, srs);
    Ok(layout(Some(&title), &b, &viewer_scripts(&config)))
}

pub fn capabilities(service: &str, url: &str, document: &str) -> String {
    let b = format!(
        "<h2>{} GetCapabilities</h2>\n<a href=\"{}\">{}</a>\n<pre>\n{}\n</pre>\n",
        html(service),
        html(url),
        html(url),
        html(document)
    );
    layout(Some("Capabilities"), &b, "")
}
