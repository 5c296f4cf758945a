//! Seeding coverages (MapProxy's `config/coverage.py` `load_coverage` and
//! `util/coverage.py`): a bbox, or polygons from a GeoJSON or WKT file, in an SRS; turned into
//! the grid's SRS and asked whether a meta tile's bbox intersects or lies inside it.
//!
//! As MapProxy: a bbox coverage intersects a bbox only when they overlap (touching is not
//! enough); a polygon coverage intersects a bbox it touches (shapely's `intersects`). A
//! coverage transformed to another SRS transforms its bbox as a bbox (16 points around it) and
//! its polygons point by point.

use std::path::Path;
use std::sync::Arc;

use geo::{BoundingRect, Intersects, MultiPolygon, Polygon, Rect, Relate};

use crate::coverage::{combine, Area, Combine};
use crate::grid::Bbox;
use crate::srs::Srs;

/// One coverage, or several (a task's `coverages:` list is their union).
#[derive(Debug, Clone)]
pub struct Coverage {
    parts: Vec<Area>,
}

/// What a coverage is made from, as read from seed.yaml (files already read).
#[derive(Debug, Clone)]
pub enum Shape {
    Bbox(Bbox),
    Polygons(Vec<Polygon<f64>>),
}

fn rect_polygon(b: Bbox) -> Polygon<f64> {
    Rect::new((b[0], b[1]), (b[2], b[3])).to_polygon()
}

impl Coverage {
    /// A coverage of `shape` in `srs`; `None` when it has no polygons (MapProxy's
    /// `EmptyGeometryError`: the task is skipped).
    pub fn new(shape: Shape, srs: Arc<Srs>) -> Option<Coverage> {
        let part = match shape {
            Shape::Bbox(bbox) => Area {
                srs,
                bbox,
                polygons: None,
            },
            Shape::Polygons(polys) => {
                let mp = MultiPolygon::new(polys);
                let r = mp.bounding_rect()?;
                Area {
                    srs,
                    bbox: [r.min().x, r.min().y, r.max().x, r.max().y],
                    polygons: Some(mp),
                }
            }
        };
        Some(Coverage { parts: vec![part] })
    }

    /// The union of several coverages (MapProxy's `MultiCoverage`).
    pub fn union(all: Vec<Coverage>) -> Coverage {
        Coverage {
            parts: all.into_iter().flat_map(|c| c.parts).collect(),
        }
    }

    /// The same coverage in `dst`.
    pub fn transform_to(&self, dst: &Arc<Srs>) -> Result<Coverage, String> {
        let parts = self
            .parts
            .iter()
            .map(|p| p.transform_to(dst))
            .collect::<Result<_, _>>()?;
        Ok(Coverage { parts })
    }

    /// `parts` combined by `op` (a `union`, `intersection` or `difference` coverage): one
    /// part of polygons, in the SRS of the first; `None` when that has no polygons.
    pub fn combine(op: Combine, parts: Vec<Coverage>) -> Result<Option<Coverage>, String> {
        let areas = parts.into_iter().flat_map(|c| c.parts).collect();
        Ok(combine(op, areas)?.map(|a| Coverage { parts: vec![a] }))
    }

    /// The bbox of all parts, in their (common, after [`Coverage::transform_to`]) SRS.
    pub fn bbox(&self) -> Bbox {
        let mut b = [
            f64::INFINITY,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::NEG_INFINITY,
        ];
        for p in &self.parts {
            b[0] = b[0].min(p.bbox[0]);
            b[1] = b[1].min(p.bbox[1]);
            b[2] = b[2].max(p.bbox[2]);
            b[3] = b[3].max(p.bbox[3]);
        }
        b
    }

    /// The bbox in EPSG:4326 (what `--summary` prints), when it can be transformed.
    pub fn llbbox(&self) -> Option<Bbox> {
        let ll = Srs::get("EPSG:4326").ok()?;
        let t = self.transform_to(&ll).ok()?;
        Some(t.bbox())
    }

    /// Does `bbox` (in the coverage's SRS) overlap the coverage?
    pub fn intersects(&self, bbox: Bbox) -> bool {
        self.parts.iter().any(|p| {
            let overlaps = p.bbox[0] < bbox[2]
                && p.bbox[2] > bbox[0]
                && p.bbox[1] < bbox[3]
                && p.bbox[3] > bbox[1];
            match &p.polygons {
                None => overlaps,
                Some(g) => {
                    // touching counts for polygons (shapely), so the bbox test is inclusive
                    p.bbox[0] <= bbox[2]
                        && p.bbox[2] >= bbox[0]
                        && p.bbox[1] <= bbox[3]
                        && p.bbox[3] >= bbox[1]
                        && g.intersects(&rect_polygon(bbox))
                }
            }
        })
    }

    /// Does the coverage hold all of `bbox`?
    pub fn contains(&self, bbox: Bbox) -> bool {
        self.parts.iter().any(|p| match &p.polygons {
            None => {
                p.bbox[0] <= bbox[0]
                    && p.bbox[1] <= bbox[1]
                    && p.bbox[2] >= bbox[2]
                    && p.bbox[3] >= bbox[3]
            }
            Some(g) => {
                p.bbox[0] <= bbox[0]
                    && p.bbox[1] <= bbox[1]
                    && p.bbox[2] >= bbox[2]
                    && p.bbox[3] >= bbox[3]
                    && g.relate(&rect_polygon(bbox)).is_contains()
            }
        })
    }
}

/// A data source file as MapProxy's `load_datasource` reads it: WKT when it starts with
/// `polygon`/`multipolygon`, GeoJSON when it starts with `{`. Only the polygons are kept.
pub fn load_datasource(path: &Path) -> Result<Vec<Polygon<f64>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("can't load coverage file '{}': {e}", path.display()))?;
    let t = text.trim_start_matches('\u{feff}').trim_start();
    let head = t.get(..t.len().min(20)).unwrap_or("").to_ascii_lowercase();
    if head.starts_with("polygon") || head.starts_with("multipolygon") {
        load_polygons_text(t, path)
    } else if t.starts_with('{') {
        load_geojson(t, path)
    } else {
        Err(format!(
            "can't load coverage file '{}': neither WKT polygons nor GeoJSON (OGR data sources are not supported)",
            path.display()
        ))
    }
}

/// WKT polygons, one per line (MapProxy's `polygons:` files and `load_polygon_lines`).
pub fn load_polygons(path: &Path) -> Result<Vec<Polygon<f64>>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("can't load coverage file '{}': {e}", path.display()))?;
    load_polygons_text(text.trim_start_matches('\u{feff}'), path)
}

fn load_polygons_text(text: &str, path: &Path) -> Result<Vec<Polygon<f64>>, String> {
    crate::coverage::polygons_from_wkt(text)
        .map_err(|e| format!("invalid geometry in '{}' {e}", path.display()))
}

fn load_geojson(text: &str, path: &Path) -> Result<Vec<Polygon<f64>>, String> {
    crate::coverage::polygons_from_geojson(text)
        .map_err(|e| format!("can't load coverage file '{}': {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bbox_touching_is_not_intersecting_but_polygon_touching_is() {
        let srs = Srs::get("EPSG:4326").unwrap();
        let c = Coverage::new(Shape::Bbox([0.0, 0.0, 10.0, 10.0]), srs.clone()).unwrap();
        assert!(!c.intersects([10.0, 0.0, 20.0, 10.0]));
        assert!(c.intersects([9.0, 0.0, 20.0, 10.0]));
        assert!(c.contains([1.0, 1.0, 10.0, 10.0]));
        let p = Coverage::new(
            Shape::Polygons(vec![rect_polygon([0.0, 0.0, 10.0, 10.0])]),
            srs,
        )
        .unwrap();
        assert!(p.intersects([10.0, 0.0, 20.0, 10.0]));
        assert!(!p.intersects([10.5, 0.0, 20.0, 10.0]));
        assert!(p.contains([1.0, 1.0, 9.0, 9.0]));
        assert!(!p.contains([1.0, 1.0, 11.0, 9.0]));
    }

    #[test]
    fn reads_geojson_and_wkt() {
        let dir = tempfile::tempdir().unwrap();
        let gj = dir.path().join("a.geojson");
        std::fs::write(
            &gj,
            r#"{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},"geometry":{"type":"Polygon","coordinates":[[[0,0],[4,0],[4,4],[0,4],[0,0]]]}},{"type":"Feature","properties":{},"geometry":{"type":"Point","coordinates":[1,1]}}]}"#,
        )
        .unwrap();
        assert_eq!(load_datasource(&gj).unwrap().len(), 1);
        let w = dir.path().join("a.wkt");
        std::fs::write(
            &w,
            "POLYGON((0 0,1 0,1 1,0 0))\n\nMULTIPOLYGON(((0 0,1 0,1 1,0 0)),((5 5,6 5,6 6,5 5)))\n",
        )
        .unwrap();
        assert_eq!(load_datasource(&w).unwrap().len(), 3);
        assert_eq!(load_polygons(&w).unwrap().len(), 3);
    }

    #[test]
    fn transforms_polygons_point_by_point() {
        let ll = Srs::get("EPSG:4326").unwrap();
        let merc = Srs::get("EPSG:3857").unwrap();
        let c = Coverage::new(
            Shape::Polygons(vec![rect_polygon([0.0, 0.0, 10.0, 10.0])]),
            ll,
        )
        .unwrap();
        let t = c.transform_to(&merc).unwrap();
        let b = t.bbox();
        assert!((b[2] - 1113194.9079327357).abs() < 1e-3, "{b:?}");
        assert!(t.intersects([500_000.0, 500_000.0, 600_000.0, 600_000.0]));
    }
}
