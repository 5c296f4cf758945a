//! Coverages of sources (MapProxy's `config/coverage.py` `load_coverage`, `util/coverage.py`):
//! where a source has data. A request outside is answered blank without asking the source; a
//! request partly outside asks only for the part inside the coverage's bbox; with
//! `clip: true` the image is also cleared outside the polygons. Feature info outside is empty.
//!
//! | key | geometry |
//! |---|---|
//! | `bbox` (+ `bbox_srs` or `srs`) | `[minx, miny, maxx, maxy]` or `"minx,miny,maxx,maxy"` |
//! | `polygons` (+ `polygons_srs`) | a file of WKT polygons/multipolygons, one per line |
//! | `datasource` (+ `srs`) | a bbox (list or string), or a file: WKT lines or GeoJSON |
//!
//! Not yet (a configuration error): `union`, `intersection`, `difference`, `ogr_datasource`,
//! `expire_tiles`, `where` (OGR filters).

use std::sync::Arc;

use mapproxy_serve_core::error::ConfigError;

use crate::authorize::LimitedTo;
use crate::config::yaml::{Node, Value};
use crate::grid::Bbox;
use crate::pynum::{floats, values, Num, NumBbox};
use crate::srs::Srs;

/// A loaded coverage.
#[derive(Debug, Clone)]
pub struct Coverage {
    /// The polygons (a bbox is one rectangle) and their SRS.
    pub geometry: LimitedTo,
    srs: Arc<Srs>,
    /// The polygons' bbox, in `srs`: as written for a bbox coverage (a list's ints stay
    /// ints: MapProxy's `BBOXCoverage` keeps the YAML's list, config/coverage.py:72-76,
    /// util/coverage.py:296-298), else floats.
    bbox: NumBbox,
    /// `clip: true`.
    pub clip: bool,
}

impl Coverage {
    /// A coverage of `geometry`.
    pub fn new(geometry: LimitedTo, clip: bool) -> Result<Coverage, String> {
        use geo::BoundingRect;
        let srs = Srs::get(&geometry.srs).map_err(|e| e.to_string())?;
        let r = geometry
            .geometry
            .bounding_rect()
            .ok_or("the coverage has no polygons")?;
        Ok(Coverage {
            bbox: floats([r.min().x, r.min().y, r.max().x, r.max().y]),
            geometry,
            srs,
            clip,
        })
    }

    /// The bbox as written (`bbox`, `datasource` list or string), when it is the polygons'.
    fn with_written_bbox(mut self, written: NumBbox) -> Coverage {
        if values(written) == values(self.bbox) {
            self.bbox = written;
        }
        self
    }

    /// Its SRS and its bbox in it (MapProxy's `coverage.extent`), ints as written.
    pub fn extent(&self) -> (Arc<Srs>, NumBbox) {
        (self.srs.clone(), self.bbox)
    }

    /// The same SRS, bbox and polygons (MapProxy's coverage `__eq__`, util/coverage.py).
    pub fn same_area(&self, other: &Coverage) -> bool {
        *self.srs == *other.srs
            && values(self.bbox) == values(other.bbox)
            && self.geometry.geometry == other.geometry.geometry
    }

    /// Its bbox in `srs`.
    pub fn extent_in(&self, srs: &Srs) -> Option<Bbox> {
        self.srs.transform_bbox_to(srs, values(self.bbox)).ok()
    }

    /// Does `bbox` (in `srs`) meet the polygons?
    pub fn intersects(&self, bbox: Bbox, srs: &Srs) -> bool {
        use geo::Intersects;
        // disjoint from the coverage's extent in `srs`: outside (a bbox reaching the
        // antimeridian, e.g. a web mercator tile at x = 20037508.34, can come back from the
        // transformation below wrapped to -180 and span the whole world)
        if let Some(e) = self.extent_in(srs) {
            if e[0] > bbox[2] || e[2] < bbox[0] || e[1] > bbox[3] || e[3] < bbox[1] {
                return false;
            }
        }
        let Ok(b) = srs.transform_bbox_to(&self.srs, bbox) else {
            return false;
        };
        let rect = geo::Rect::new(
            geo::coord! { x: b[0], y: b[1] },
            geo::coord! { x: b[2], y: b[3] },
        );
        self.geometry.geometry.intersects(&rect)
    }

    /// Is `bbox` (in `srs`) within the coverage's bbox?
    pub fn bbox_contains(&self, bbox: Bbox, srs: &Srs) -> bool {
        self.extent_in(srs).is_some_and(|e| {
            e[0] <= bbox[0] && e[1] <= bbox[1] && e[2] >= bbox[2] && e[3] >= bbox[3]
        })
    }

    /// Is `p` (in `srs`) inside?
    pub fn contains_point(&self, srs: &Srs, p: (f64, f64)) -> bool {
        self.geometry.contains_point(srs, p)
    }
}

/// The polygons of WKT text, one geometry per line (MapProxy's `polygons:` files, its
/// `load_polygon_lines`, a WKT `limited_to`): polygons and multipolygons kept, other
/// geometries skipped as MapProxy skips them. Errors name the line.
pub fn polygons_from_wkt(text: &str) -> Result<Vec<geo::Polygon<f64>>, String> {
    use wkt::TryFromWkt;
    let mut out = Vec::new();
    for (i, line) in text.trim_start_matches('\u{feff}').lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let g = geo::Geometry::<f64>::try_from_wkt_str(line)
            .map_err(|e| format!("line {}: invalid WKT: {e}", i + 1))?;
        push_polygons(g, &mut out);
    }
    Ok(out)
}

/// The polygons of a GeoJSON document (a FeatureCollection, a Feature or a geometry), as
/// [`polygons_from_wkt`] keeps them.
pub fn polygons_from_geojson(text: &str) -> Result<Vec<geo::Polygon<f64>>, String> {
    let gj: geojson::GeoJson = text
        .trim_start_matches('\u{feff}')
        .parse()
        .map_err(|e: geojson::Error| format!("invalid GeoJSON: {e}"))?;
    let geoms = match gj {
        geojson::GeoJson::FeatureCollection(fc) => {
            fc.features.into_iter().filter_map(|f| f.geometry).collect()
        }
        geojson::GeoJson::Feature(f) => f.geometry.into_iter().collect(),
        geojson::GeoJson::Geometry(g) => vec![g],
    };
    let mut out = Vec::new();
    for g in geoms {
        let g = geo::Geometry::<f64>::try_from(&g.value)
            .map_err(|e| format!("invalid GeoJSON geometry: {e}"))?;
        push_polygons(g, &mut out);
    }
    Ok(out)
}

fn push_polygons(g: geo::Geometry<f64>, out: &mut Vec<geo::Polygon<f64>>) {
    match g {
        geo::Geometry::Polygon(p) => out.push(p),
        geo::Geometry::MultiPolygon(mp) => out.extend(mp.0),
        geo::Geometry::Rect(r) => out.push(r.to_polygon()),
        geo::Geometry::GeometryCollection(gc) => {
            for g in gc.0 {
                push_polygons(g, out);
            }
        }
        // MapProxy logs and skips other geometries
        _ => {}
    }
}

fn err(n: &Node, path: &str, msg: impl std::fmt::Display) -> ConfigError {
    n.loc.error(format!("{path}: {msg}"))
}

/// A bbox list (ints kept) or string (`float()` of each part: floats).
fn bbox_of(n: &Node, path: &str) -> Result<NumBbox, ConfigError> {
    let nums: Option<Vec<Num>> = match &n.value {
        Value::Seq(items) => items
            .iter()
            .map(|i| match i.value {
                Value::Int(v) => Some(Num::Int(v)),
                Value::Float(v) => Some(Num::Float(v)),
                _ => None,
            })
            .collect(),
        Value::Str(s) => s
            .split(',')
            .map(|x| x.trim().parse().ok().map(Num::Float))
            .collect(),
        _ => None,
    };
    match nums.as_deref() {
        Some([a, b, c, d]) => Ok([*a, *b, *c, *d]),
        _ => Err(err(n, path, "expected [minx, miny, maxx, maxy]")),
    }
}

/// MapProxy's `load_coverage` of a source's `coverage:` at `path` (file names already joined
/// to the YAML's directory by the configuration reader).
pub fn load(n: &Node, path: &str) -> Result<Coverage, ConfigError> {
    let Value::Map(m) = &n.value else {
        return Err(err(n, path, "expected a mapping"));
    };
    let text = |k: &str| match m.get(k).map(|n| &n.value) {
        Some(Value::Str(s)) => Some(s.clone()),
        Some(Value::Int(i)) => Some(format!("EPSG:{i}")),
        _ => None,
    };
    for k in [
        "union",
        "intersection",
        "difference",
        "ogr_datasource",
        "expire_tiles",
        "where",
    ] {
        if m.contains_key(k) {
            return Err(err(n, &format!("{path}.{k}"), "not supported yet"));
        }
    }
    let clip = matches!(m.get("clip").map(|n| &n.value), Some(Value::Bool(true)));
    let srs_of = |k: &str| text(k).ok_or_else(|| err(n, path, format!("missing '{k}'")));
    let file = |f: &str, kp: &str| {
        std::fs::read_to_string(f).map_err(|e| err(n, &format!("{path}.{kp}"), format!("{f}: {e}")))
    };
    let from_text = |srs: String, content: &str, kp: &str| {
        let t = content.trim_start_matches('\u{feff}').trim_start();
        if t.starts_with('{') {
            LimitedTo::geojson(srs, t)
        } else {
            LimitedTo::wkt(srs, t)
        }
        .map_err(|e| err(n, &format!("{path}.{kp}"), e))
    };
    let mut written = None;
    let geometry = if let Some(b) = m.get("bbox") {
        let srs = text("bbox_srs").map_or_else(|| srs_of("srs"), Ok)?;
        let b = bbox_of(b, &format!("{path}.bbox"))?;
        written = Some(b);
        LimitedTo::bbox(srs, values(b))
    } else if let Some(p) = m.get("polygons") {
        let Value::Str(f) = &p.value else {
            return Err(err(p, &format!("{path}.polygons"), "expected a file name"));
        };
        from_text(srs_of("polygons_srs")?, &file(f, "polygons")?, "polygons")?
    } else if let Some(d) = m.get("datasource") {
        let srs = srs_of("srs")?;
        match &d.value {
            Value::Seq(_) => {
                let b = bbox_of(d, &format!("{path}.datasource"))?;
                written = Some(b);
                LimitedTo::bbox(srs, values(b))
            }
            Value::Str(s) if bbox_of(d, "").is_ok() && !std::path::Path::new(s).exists() => {
                let b = bbox_of(d, &format!("{path}.datasource"))?;
                written = Some(b);
                LimitedTo::bbox(srs, values(b))
            }
            Value::Str(f) => from_text(srs, &file(f, "datasource")?, "datasource")?,
            _ => {
                return Err(err(
                    d,
                    &format!("{path}.datasource"),
                    "expected a file or a bbox",
                ))
            }
        }
    } else {
        return Err(err(n, path, "expected bbox, polygons or datasource"));
    };
    let cov = Coverage::new(geometry, clip).map_err(|e| err(n, path, e))?;
    Ok(match written {
        Some(b) => cov.with_written_bbox(b),
        None => cov,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_coverage() {
        let c = Coverage::new(LimitedTo::bbox("EPSG:4326", [5.0, 45.0, 15.0, 55.0]), false)
            .expect("coverage");
        let wgs84 = Srs::get("EPSG:4326").expect("srs");
        assert!(c.intersects([0.0, 40.0, 6.0, 46.0], &wgs84));
        assert!(!c.intersects([20.0, 40.0, 30.0, 46.0], &wgs84));
        assert!(c.bbox_contains([6.0, 46.0, 7.0, 47.0], &wgs84));
        assert!(!c.bbox_contains([0.0, 46.0, 7.0, 47.0], &wgs84));
        assert!(c.contains_point(&wgs84, (10.0, 50.0)));
        let merc = Srs::get("EPSG:3857").expect("srs");
        let e = c.extent_in(&merc).expect("extent");
        assert!((e[0] - 556_597.45).abs() < 1.0, "{e:?}");
    }
}
