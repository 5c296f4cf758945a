//! `type: arcgis` sources (MapProxy's `source/arcgis.py`, `client/arcgis.py` and
//! `request/arcgis.py`): a [`WmsSource`](super::WmsSource) whose maps come from an ArcGIS
//! REST `export` (MapServer) or `exportImage` (ImageServer) and whose feature info comes from
//! `identify`. Coverage, `supported_srs` (reprojection), `supported_formats`, `on_error`,
//! `concurrent_requests`, `seed_only` and resolution ranges are the WMS source's.
//!
//! The URLs are MapProxy's:
//! - the endpoint: `.../MapServer` gets `/export`, `.../ImageServer` `/exportImage`; an
//!   `export`/`exportImage` already there is set to the right one ([`rest_endpoint`]);
//! - export: the `req` parameters but `url` in their order, `format` (the extension:
//!   `image/png` is `png`), `bbox`, `size` (`w,h`), `bboxSR` and `imageSR` (the EPSG number),
//!   then `f=image`. `req.transparent` is sent as written (MapProxy's client sets the query's
//!   transparency as an attribute, not a parameter);
//! - identify: the `req` parameters, `mapExtent`, `imageDisplay` (`w,h,96`), `geometry` (the
//!   clicked pixel's map coordinates, `%f,%f`), `sr`, `f` (`html` for a `text/html`
//!   INFO_FORMAT, else `json`), `tolerance`, `returnGeometry`, then
//!   `geometryType=esriGeometryPoint`. The answer is typed by the client's INFO_FORMAT.

use super::pyfmt::py_float_repr;
use super::wms::{query_url, InfoQuery, Params};
use super::MapQuery;
use crate::image::ImageFormat;

/// An ArcGIS source's `opts` and its identify endpoint.
#[derive(Debug, Clone, PartialEq)]
pub struct ArcGisConf {
    /// The `identify` URL ([`rest_identify_endpoint`] of `req.url`).
    pub identify_url: String,
    /// `opts.featureinfo_tolerance`, as written by Python's `str()` (default `5`).
    pub tolerance: String,
    /// `opts.featureinfo_return_geometries`.
    pub return_geometries: bool,
}

/// The path of `url` split into segments, its trailing slashes dropped, and a function
/// putting new segments back in (scheme, host, query and fragment kept).
fn with_path(url: &str, f: impl FnOnce(&mut Vec<String>)) -> String {
    // urlsplit: the path starts after `scheme://netloc`, ends at `?` or `#`
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    let path_start = url[after_scheme..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| after_scheme + i);
    let path_end = url[path_start..]
        .find(['?', '#'])
        .map_or(url.len(), |i| path_start + i);
    let mut segments: Vec<String> = url[path_start..path_end]
        .trim_end_matches('/')
        .split('/')
        .map(str::to_string)
        .collect();
    f(&mut segments);
    format!(
        "{}{}{}",
        &url[..path_start],
        segments.join("/"),
        &url[path_end..]
    )
}

/// MapProxy's `rest_endpoint`: the export URL of a MapServer or ImageServer URL.
pub fn rest_endpoint(url: &str) -> String {
    with_path(url, |path| {
        let n = path.len();
        let last = path[n - 1].as_str();
        if last == "export" || last == "exportImage" {
            match path.get(n.wrapping_sub(2)).map(String::as_str) {
                Some("MapServer") => path[n - 1] = "export".into(),
                Some("ImageServer") => path[n - 1] = "exportImage".into(),
                _ => {}
            }
        } else if last == "MapServer" {
            path.push("export".into());
        } else if last == "ImageServer" {
            path.push("exportImage".into());
        }
    })
}

/// MapProxy's `rest_identify_endpoint`: the identify URL of an export, MapServer or
/// ImageServer URL.
pub fn rest_identify_endpoint(url: &str) -> String {
    with_path(url, |path| {
        let n = path.len();
        match path[n - 1].as_str() {
            "export" | "exportImage" => path[n - 1] = "identify".into(),
            "MapServer" | "ImageServer" => path.push("identify".into()),
            _ => {}
        }
    })
}

/// The EPSG number MapProxy's `_set_srs` writes (`code.rsplit(":", 1)[-1]`).
fn sr(code: u32) -> String {
    code.to_string()
}

/// The export URL for `query` in `format` (MapProxy's `ArcGISClient._query_url`).
pub fn export_url(
    url: &str,
    req: &[(String, String)],
    format: &ImageFormat,
    q: &MapQuery,
) -> String {
    let mut p = Params(req.to_vec());
    // `format.rsplit("/")[-1]`
    let mime = format.mime_type();
    p.set(
        "format",
        mime.rsplit('/').next().unwrap_or(&mime).to_string(),
    );
    p.set("bbox", bbox_text(q.bbox));
    p.set("size", format!("{},{}", q.size.0, q.size.1));
    p.set("bboxSR", sr(q.srs));
    p.set("imageSR", sr(q.srs));
    p.set("f", "image".into());
    query_url(url, &p)
}

/// `','.join(str(x) for x in bbox)`.
fn bbox_text(b: crate::grid::Bbox) -> String {
    b.iter()
        .map(|v| py_float_repr(*v))
        .collect::<Vec<_>>()
        .join(",")
}

/// The identify URL for `q` (MapProxy's `ArcGISInfoClient._query_url`).
pub fn identify_url(conf: &ArcGisConf, req: &[(String, String)], q: &InfoQuery) -> String {
    let mut p = Params(req.to_vec());
    p.set("mapExtent", bbox_text(q.bbox));
    p.set("imageDisplay", format!("{},{},96", q.size.0, q.size.1));
    // make_lin_transf((0, 0, w, h), bbox)(pos), written with '%f'
    let (w, h) = (f64::from(q.size.0), f64::from(q.size.1));
    let b = q.bbox;
    let x = b[0] + (q.pos.0 - 0.0) * (b[2] - b[0]) / (w - 0.0);
    let y = b[1] + (h - q.pos.1) * (b[3] - b[1]) / (h - 0.0);
    p.set("geometry", format!("{x:.6},{y:.6}"));
    p.set("sr", sr(q.srs));
    let html = q
        .info_format
        .as_deref()
        .is_some_and(|f| f.starts_with("text/html"));
    p.set("f", if html { "html" } else { "json" }.into());
    p.set("tolerance", conf.tolerance.clone());
    p.set(
        "returnGeometry",
        if conf.return_geometries {
            "true"
        } else {
            "false"
        }
        .into(),
    );
    p.set("geometryType", "esriGeometryPoint".into());
    query_url(&conf.identify_url, &p)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// MapProxy's test_arcgis.py / request/arcgis.py doctests of the endpoints.
    #[test]
    fn endpoints_as_mapproxy() {
        let base = "http://example.com/ArcGIS/rest/services/World/MapServer";
        assert_eq!(rest_endpoint(base), format!("{base}/export"));
        assert_eq!(rest_endpoint(&format!("{base}/")), format!("{base}/export"));
        assert_eq!(
            rest_endpoint(&format!("{base}/exportImage")),
            format!("{base}/export")
        );
        let img = "http://example.com/ArcGIS/rest/services/World/ImageServer";
        assert_eq!(rest_endpoint(img), format!("{img}/exportImage"));
        assert_eq!(
            rest_endpoint(&format!("{img}/export")),
            format!("{img}/exportImage")
        );
        assert_eq!(
            rest_endpoint("http://h/x/MapServer?token=a/b"),
            "http://h/x/MapServer/export?token=a/b"
        );
        assert_eq!(rest_endpoint("http://h/other"), "http://h/other");
        assert_eq!(rest_identify_endpoint(base), format!("{base}/identify"));
        assert_eq!(
            rest_identify_endpoint(&format!("{base}/export")),
            format!("{base}/identify")
        );
        assert_eq!(
            rest_identify_endpoint(&format!("{img}/exportImage")),
            format!("{img}/identify")
        );
    }

    #[test]
    fn export_parameters_in_mapproxys_order() {
        let q = MapQuery {
            bbox: [-180.0, -90.0, 0.0, 90.0],
            size: (256, 256),
            srs: 4326,
            format: ImageFormat::png(),
            transparent: false,
        };
        let req = vec![
            ("layers".to_string(), "show:0,1".to_string()),
            ("transparent".to_string(), "True".to_string()),
        ];
        assert_eq!(
            export_url("http://h/MapServer/export", &req, &ImageFormat::png(), &q),
            "http://h/MapServer/export?layers=show%3A0,1&transparent=True&format=png&bbox=-180.0,-90.0,0.0,90.0&size=256,256&bboxSR=4326&imageSR=4326&f=image"
        );
    }
}
