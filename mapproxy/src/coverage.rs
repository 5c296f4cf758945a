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
//! | `union`, `intersection`, `difference` | a list of coverages, combined in the SRS of the first ([`combine`]) |
//!
//! Not yet (a configuration error): `ogr_datasource`, `expire_tiles`, `where` (OGR filters).

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
    /// A `bbox` coverage (MapProxy's `BBOXCoverage`): in [`combine`] it is moved to another
    /// SRS as a bbox, not corner by corner.
    from_bbox: bool,
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
            from_bbox: false,
        })
    }

    /// Its SRS and its bbox or polygons, as [`combine`] takes them.
    fn area(&self) -> Area {
        Area {
            srs: self.srs.clone(),
            bbox: values(self.bbox),
            polygons: (!self.from_bbox).then(|| self.geometry.geometry.clone()),
        }
    }

    /// The bbox as written (`bbox`, `datasource` list or string), when it is the polygons'.
    fn with_written_bbox(mut self, written: NumBbox) -> Coverage {
        if values(written) == values(self.bbox) {
            self.bbox = written;
            self.from_bbox = true;
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

/// How a `union`, `intersection` or `difference` coverage combines its list (MapProxy's
/// `union_coverage`, `intersection_coverage`, `diff_coverage` in util/coverage.py).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Combine {
    /// All parts together.
    Union,
    /// What all parts share.
    Intersection,
    /// The first part without the others.
    Difference,
}

impl Combine {
    /// The coverage keys, in the order MapProxy's `load_coverage` tries them.
    pub const KEYS: [(&'static str, Combine); 3] = [
        ("union", Combine::Union),
        ("intersection", Combine::Intersection),
        ("difference", Combine::Difference),
    ];

    /// What MapProxy's `EmptyGeometryError` says when the result has no polygons.
    pub fn empty_message(self) -> &'static str {
        match self {
            Combine::Union => "union did not return any geometry",
            Combine::Intersection => "intersection did not return any geometry",
            Combine::Difference => "diff did not return any geometry",
        }
    }
}

/// A coverage as [`combine`] takes and gives it: its SRS and bbox, and its polygons unless
/// it is a bbox coverage.
#[derive(Debug, Clone)]
pub struct Area {
    pub srs: Arc<Srs>,
    pub bbox: Bbox,
    /// `None` for a bbox coverage (its polygon is the bbox).
    pub polygons: Option<geo::MultiPolygon<f64>>,
}

impl Area {
    /// The same area in `dst`: a bbox as a bbox (MapProxy's `transform_bbox_to`, 16 points
    /// along each side), polygons point by point (its `transform_geometry`).
    pub fn transform_to(&self, dst: &Arc<Srs>) -> Result<Area, String> {
        if *self.srs == **dst {
            return Ok(self.clone());
        }
        let failed = || {
            format!(
                "cannot transform the coverage from {} to {}",
                self.srs.code(),
                dst.code()
            )
        };
        let polygons = match &self.polygons {
            None => None,
            Some(mp) => {
                let t = geo::MapCoords::map_coords(mp, |c| {
                    let (x, y) = self.srs.transform_to(dst, (c.x, c.y));
                    geo::coord! { x: x, y: y }
                });
                if geo::CoordsIter::coords_iter(&t).any(|c| !c.x.is_finite() || !c.y.is_finite()) {
                    return Err(failed());
                }
                Some(t)
            }
        };
        let bbox = match polygons.as_ref().and_then(bounds) {
            Some(b) => b,
            None => self
                .srs
                .transform_bbox_to(dst, self.bbox)
                .map_err(|_| failed())?,
        };
        if bbox.iter().any(|v| !v.is_finite()) {
            return Err(failed());
        }
        Ok(Area {
            srs: dst.clone(),
            bbox,
            polygons,
        })
    }

    /// Its polygons; a bbox coverage's is its bbox.
    fn multi_polygon(&self) -> geo::MultiPolygon<f64> {
        match &self.polygons {
            Some(p) => p.clone(),
            None => {
                let b = self.bbox;
                geo::MultiPolygon(vec![geo::Rect::new(
                    geo::coord! { x: b[0], y: b[1] },
                    geo::coord! { x: b[2], y: b[3] },
                )
                .to_polygon()])
            }
        }
    }
}

/// The bounds of polygons, `None` when there are none.
fn bounds(mp: &geo::MultiPolygon<f64>) -> Option<Bbox> {
    use geo::BoundingRect;
    mp.bounding_rect()
        .map(|r| [r.min().x, r.min().y, r.max().x, r.max().y])
}

/// `parts` combined by `op`, in the SRS of the first part (each moved there by
/// [`Area::transform_to`]); the result is polygons (MapProxy's `GeomCoverage`, whose bbox is
/// the polygons' bounds); `None` when it has none (MapProxy's `EmptyGeometryError`, for an
/// empty `intersection` or `difference`; an empty union has no extent either). An error when
/// a part cannot be moved to the first's SRS. The polygon operations are
/// geo's `BooleanOps` where MapProxy uses shapely (GEOS): the same areas; vertices computed
/// at crossings may differ in the last digits.
pub fn combine(op: Combine, parts: Vec<Area>) -> Result<Option<Area>, String> {
    use geo::BooleanOps;
    let Some(srs) = parts.first().map(|p| p.srs.clone()) else {
        return Err("expected at least one coverage".into());
    };
    let mut geoms = Vec::with_capacity(parts.len());
    for p in &parts {
        geoms.push(p.transform_to(&srs)?.multi_polygon());
    }
    let mut it = geoms.into_iter();
    let first = it.next().unwrap_or_else(|| geo::MultiPolygon(Vec::new()));
    let inputs: Vec<geo::MultiPolygon<f64>> =
        std::iter::once(first.clone()).chain(it.clone()).collect();
    let geom = match op {
        Combine::Union => it.fold(first, |a, b| a.union(&b)),
        Combine::Intersection => it.fold(first, |a, b| a.intersection(&b)),
        Combine::Difference => match it.reduce(|a, b| a.union(&b)) {
            Some(rest) => first.difference(&rest),
            None => first,
        },
    };
    let geom = restore_vertices(geom, &inputs);
    Ok(bounds(&geom).map(|bbox| Area {
        srs,
        bbox,
        polygons: Some(geom),
    }))
}

/// A segment of an input ring for [`restore_vertices`], with the input it belongs to.
type Segment = rstar::primitives::GeomWithData<rstar::primitives::Line<[f64; 2]>, usize>;

/// geo's `BooleanOps` compute on an integer grid (i_overlay) and give every vertex back
/// moved by up to about 1e-9 of the extent; shapely (GEOS), which MapProxy uses, keeps the
/// inputs' vertices as they are and computes crossings in floating point. So each vertex of
/// `result` within a tiny distance of an input vertex becomes that vertex, and one near two
/// segments of different inputs becomes their crossing as GEOS computes it
/// ([`geos_intersection`]): the bounds MapProxy prints come out the same.
fn restore_vertices(
    result: geo::MultiPolygon<f64>,
    inputs: &[geo::MultiPolygon<f64>],
) -> geo::MultiPolygon<f64> {
    use rstar::{PointDistance, RTree};
    let mut points = Vec::new();
    let mut segments = Vec::new();
    let mut extent = 0f64;
    for (i, mp) in inputs.iter().enumerate() {
        for poly in &mp.0 {
            for ring in std::iter::once(poly.exterior()).chain(poly.interiors()) {
                for l in ring.lines() {
                    let (a, b) = ([l.start.x, l.start.y], [l.end.x, l.end.y]);
                    points.push(a);
                    segments.push(Segment::new(rstar::primitives::Line::new(a, b), i));
                }
            }
        }
        if let Some(b) = bounds(mp) {
            extent = extent.max(b[2] - b[0]).max(b[3] - b[1]);
        }
    }
    // the grid's error is about extent / 2^31; a hundred times that is still far below any
    // distance between vertices worth keeping apart
    let tol = extent * 1e-7;
    let tol2 = tol * tol;
    let points = RTree::bulk_load(points);
    let segments = RTree::bulk_load(segments);
    let restore = |c: geo::Coord<f64>| -> geo::Coord<f64> {
        let p = [c.x, c.y];
        if let Some(v) = points.nearest_neighbor(&p) {
            if v.distance_2(&p) <= tol2 {
                return geo::coord! { x: v[0], y: v[1] };
            }
        }
        let near: Vec<&Segment> = segments.locate_within_distance(p, tol2).collect();
        let mut best: Option<([f64; 2], f64)> = None;
        for (k, s) in near.iter().enumerate() {
            for t in &near[k + 1..] {
                if s.data == t.data {
                    continue;
                }
                let (g, h) = (s.geom(), t.geom());
                let Some(x) = geos_intersection(g.from, g.to, h.from, h.to) else {
                    continue;
                };
                let d = x.distance_2(&p);
                if d <= tol2 && best.is_none_or(|(_, bd)| d < bd) {
                    best = Some((x, d));
                }
            }
        }
        best.map_or(c, |(x, _)| geo::coord! { x: x[0], y: x[1] })
    };
    geo::MapCoords::map_coords(&result, restore)
}

/// Where segments `p1`-`p2` and `q1`-`q2` cross, computed as GEOS computes it (its
/// `Intersection::intersection`: the ordinates conditioned by the middle of the two
/// segments' common envelope, homogeneous coordinates), with its `LineIntersector`'s
/// fallback to the nearest endpoint when the result falls outside the segments' envelopes.
fn geos_intersection(p1: [f64; 2], p2: [f64; 2], q1: [f64; 2], q2: [f64; 2]) -> Option<[f64; 2]> {
    let env = |a: [f64; 2], b: [f64; 2]| {
        [
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[0].max(b[0]),
            a[1].max(b[1]),
        ]
    };
    let (e0, e1) = (env(p1, p2), env(q1, q2));
    let int_min_x = e0[0].max(e1[0]);
    let int_max_x = e0[2].min(e1[2]);
    let int_min_y = e0[1].max(e1[1]);
    let int_max_y = e0[3].min(e1[3]);
    let mid_x = (int_min_x + int_max_x) / 2.0;
    let mid_y = (int_min_y + int_max_y) / 2.0;
    let (p1x, p1y) = (p1[0] - mid_x, p1[1] - mid_y);
    let (p2x, p2y) = (p2[0] - mid_x, p2[1] - mid_y);
    let (q1x, q1y) = (q1[0] - mid_x, q1[1] - mid_y);
    let (q2x, q2y) = (q2[0] - mid_x, q2[1] - mid_y);
    let px = p1y - p2y;
    let py = p2x - p1x;
    let pw = p1x * p2y - p2x * p1y;
    let qx = q1y - q2y;
    let qy = q2x - q1x;
    let qw = q1x * q2y - q2x * q1y;
    let x = py * qw - qy * pw;
    let y = qx * pw - px * qw;
    let w = px * qy - qx * py;
    let (xi, yi) = (x / w, y / w);
    if !xi.is_finite() || !yi.is_finite() {
        return None;
    }
    let r = [xi + mid_x, yi + mid_y];
    let inside = |e: [f64; 4]| e[0] <= r[0] && r[0] <= e[2] && e[1] <= r[1] && r[1] <= e[3];
    if inside(e0) && inside(e1) {
        return Some(r);
    }
    // LineIntersector::nearestEndpoint: the endpoint closest to the other segment
    let seg_dist = |c: [f64; 2], a: [f64; 2], b: [f64; 2]| {
        rstar::PointDistance::distance_2(&rstar::primitives::Line::new(a, b), &c)
    };
    [(p1, q1, q2), (p2, q1, q2), (q1, p1, p2), (q2, p1, p2)]
        .into_iter()
        .map(|(c, a, b)| (c, seg_dist(c, a, b)))
        .min_by(|a, b| a.1.total_cmp(&b.1))
        .map(|(c, _)| c)
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
    let clip = matches!(m.get("clip").map(|n| &n.value), Some(Value::Bool(true)));
    for (k, op) in Combine::KEYS {
        let Some(list) = m.get(k) else { continue };
        let kp = format!("{path}.{k}");
        let Value::Seq(items) = &list.value else {
            return Err(err(list, &kp, "expected a list of coverages"));
        };
        let mut parts = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            parts.push(load(item, &format!("{kp}[{i}]"))?.area());
        }
        let area = combine(op, parts)
            .map_err(|e| err(list, &kp, e))?
            .ok_or_else(|| err(list, &kp, op.empty_message()))?;
        let geometry = LimitedTo {
            srs: area.srs.code().to_string(),
            geometry: area
                .polygons
                .unwrap_or_else(|| geo::MultiPolygon(Vec::new())),
        };
        return Coverage::new(geometry, clip).map_err(|e| err(n, path, e));
    }
    for k in ["ogr_datasource", "expire_tiles", "where"] {
        if m.contains_key(k) {
            return Err(err(n, &format!("{path}.{k}"), "not supported yet"));
        }
    }
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

#[cfg(test)]
mod combine_tests {
    use super::*;

    fn bbox_area(srs: &Arc<Srs>, bbox: Bbox) -> Area {
        Area {
            srs: srs.clone(),
            bbox,
            polygons: None,
        }
    }

    /// Union, intersection and difference of two bboxes: the inputs' vertices kept exactly
    /// (shapely's bounds), not moved by the integer grid geo computes on.
    #[test]
    fn combines_bboxes_keeping_their_vertices() {
        let ll = Srs::get("EPSG:4326").expect("srs");
        let a = bbox_area(&ll, [5.123456789, 45.3, 15.7, 55.123]);
        let b = bbox_area(&ll, [7.1, 40.333333, 25.1, 50.987654321]);
        let run = |op| {
            combine(op, vec![a.clone(), b.clone()])
                .expect("combine")
                .expect("not empty")
                .bbox
        };
        assert_eq!(run(Combine::Union), [5.123456789, 40.333333, 25.1, 55.123]);
        assert_eq!(run(Combine::Intersection), [7.1, 45.3, 15.7, 50.987654321]);
        assert_eq!(run(Combine::Difference), [5.123456789, 45.3, 15.7, 55.123]);
        let far = bbox_area(&ll, [30.0, 0.0, 40.0, 10.0]);
        assert!(combine(Combine::Intersection, vec![a.clone(), far])
            .expect("combine")
            .is_none());
        assert!(combine(Combine::Difference, vec![a.clone(), a.clone()])
            .expect("combine")
            .is_none());
        assert_eq!(
            Combine::Difference.empty_message(),
            "diff did not return any geometry"
        );
    }

    /// A part in another SRS is moved to the first's; a bbox as a bbox.
    #[test]
    fn combines_in_the_first_parts_srs() {
        let ll = Srs::get("EPSG:4326").expect("srs");
        let merc = Srs::get("EPSG:3857").expect("srs");
        let a = bbox_area(&ll, [0.0, 0.0, 10.0, 10.0]);
        let b = bbox_area(&merc, [0.0, 0.0, 2_000_000.0, 2_000_000.0]);
        let r = combine(Combine::Union, vec![a, b])
            .expect("combine")
            .expect("area");
        assert_eq!(r.srs.code(), "EPSG:4326");
        assert_eq!(r.bbox[0], 0.0);
        assert!(
            (r.bbox[2] - 17.966_305_682_390_427).abs() < 1e-9,
            "{:?}",
            r.bbox
        );
    }

    /// GEOS's crossing of two segments, and its fallback to an endpoint.
    #[test]
    fn crossing_as_geos() {
        assert_eq!(
            geos_intersection([0.0, 0.0], [2.0, 2.0], [0.0, 2.0], [2.0, 0.0]),
            Some([1.0, 1.0])
        );
        assert_eq!(
            geos_intersection([0.0, 0.0], [1.0, 0.0], [0.0, 1.0], [1.0, 1.0]),
            None
        );
    }
}
