//! Spatial reference systems (MapProxy's `mapproxy/srs.py`): CRS codes, coordinate
//! transformation, bbox transformation, WMS 1.3.0 axis order.
//!
//! Transformations run on [`proj4rs`] (pure Rust: no libproj to build or install, no
//! `proj.db` at run time), initialised from the PROJ.4 string `crs-definitions` holds for the
//! EPSG code. `EPSG:900913` (and `102100`/`102113`) is web mercator as in MapProxy;
//! `CRS:84` is WGS84 with east/north axes.
//!
//! Axis order (WMS 1.3.0): north/east for geographic CRSs and MapProxy's default list
//! (`EPSG:31466`-`31468`), east/north otherwise; `CRS:84`, `EPSG:900913` and `EPSG:25831`-`25833`
//! are always east/north, as MapProxy's `srs.axis_order_ne_`/`axis_order_en_` defaults.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use crate::grid::Bbox;

/// The web mercator string MapProxy uses for its aliases of EPSG:3857.
const WEBMERCATOR: &str = "+proj=merc +a=6378137 +b=6378137 +lat_ts=0.0 +lon_0=0.0 +x_0=0.0 \
                           +y_0=0 +k=1.0 +units=m +nadgrids=@null +wktext +no_defs";

/// Web mercator's half extent (MapProxy's bbox for 4326 → 3857 edges).
pub const MERC_MAX: f64 = 20037508.342789244;

/// An SRS that could not be used.
#[derive(Debug, Clone, PartialEq)]
pub struct SrsError(pub String);

impl std::fmt::Display for SrsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SrsError {}

/// One SRS: its code as MapProxy writes it (`EPSG:4326`, `CRS:84`) and its projection.
pub struct Srs {
    code: String,
    epsg: u32,
    proj: proj4rs::Proj,
    latlong: bool,
    ne: bool,
}

impl std::fmt::Debug for Srs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SRS {}", self.code)
    }
}

impl PartialEq for Srs {
    /// MapProxy's `_SRS.__eq__`: equal codes, and the web mercator aliases equal each other.
    fn eq(&self, other: &Srs) -> bool {
        self.code == other.code || (is_webmercator(self.epsg) && is_webmercator(other.epsg))
    }
}

fn is_webmercator(code: u32) -> bool {
    matches!(code, 3857 | 900913 | 102100 | 102113)
}

/// `EPSG:4326` → `("EPSG:4326", 4326)`; `CRS:84` → `("CRS:84", 4326)`; a bare number is EPSG;
/// case-insensitive; `None` for anything else.
pub fn parse_code(s: &str) -> Option<(String, u32)> {
    let t = s.trim();
    let up = t.to_ascii_uppercase();
    if up == "CRS:84" {
        return Some(("CRS:84".into(), 4326));
    }
    let num = up.strip_prefix("EPSG:").unwrap_or(&up);
    let code: u32 = num.parse().ok()?;
    Some((format!("EPSG:{code}"), code))
}

fn registry() -> &'static Mutex<HashMap<String, Arc<Srs>>> {
    static R: OnceLock<Mutex<HashMap<String, Arc<Srs>>>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(HashMap::new()))
}

impl Srs {
    /// The SRS for a code (`EPSG:4326`, `epsg:25832`, `CRS:84`, `900913`), shared.
    pub fn get(code: &str) -> Result<Arc<Srs>, SrsError> {
        let (norm, epsg) =
            parse_code(code).ok_or_else(|| SrsError(format!("unknown SRS '{code}'")))?;
        let mut reg = registry().lock().unwrap_or_else(|p| p.into_inner());
        if let Some(s) = reg.get(&norm) {
            return Ok(s.clone());
        }
        let proj = if is_webmercator(epsg) {
            proj4rs::Proj::from_proj_string(WEBMERCATOR)
        } else {
            let code16 = u16::try_from(epsg)
                .map_err(|_| SrsError(format!("unknown SRS '{code}': no EPSG definition")))?;
            proj4rs::Proj::from_epsg_code(code16)
        }
        .map_err(|e| SrsError(format!("unknown SRS '{code}': {e}")))?;
        let latlong = proj.is_latlong();
        let ne = axis_order_ne(&norm, latlong);
        let srs = Arc::new(Srs {
            code: norm.clone(),
            epsg,
            proj,
            latlong,
            ne,
        });
        reg.insert(norm, srs.clone());
        Ok(srs)
    }

    /// `EPSG:4326`, `CRS:84`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The EPSG number (4326 for `CRS:84`).
    pub fn epsg(&self) -> u32 {
        self.epsg
    }

    /// Degrees (geographic).
    pub fn is_latlong(&self) -> bool {
        self.latlong
    }

    /// North/east axis order in WMS 1.3.0.
    pub fn is_axis_order_ne(&self) -> bool {
        self.ne
    }

    /// Transform points (x/lon, y/lat; degrees for geographic SRS) in place. A point that
    /// cannot be transformed becomes NaN.
    pub fn transform_points(&self, dst: &Srs, points: &mut [(f64, f64)]) {
        if self == dst {
            return;
        }
        for p in points.iter_mut() {
            let mut v = if self.latlong {
                (p.0.to_radians(), p.1.to_radians())
            } else {
                *p
            };
            match proj4rs::transform::transform(&self.proj, &dst.proj, &mut v) {
                Ok(()) if dst.latlong => *p = (v.0.to_degrees(), v.1.to_degrees()),
                Ok(()) => *p = v,
                Err(_) => *p = (f64::NAN, f64::NAN),
            }
        }
    }

    /// One point.
    pub fn transform_to(&self, dst: &Srs, p: (f64, f64)) -> (f64, f64) {
        let mut a = [p];
        self.transform_points(dst, &mut a);
        a[0]
    }

    /// MapProxy's `transform_bbox_to`: the envelope of 16 points around the bbox, with its
    /// special case for 4326 → web mercator edges beyond ±85.06°.
    pub fn transform_bbox_to(&self, dst: &Srs, bbox: Bbox) -> Result<Bbox, SrsError> {
        self.transform_bbox_with(dst, bbox, 16)
    }

    /// [`transform_bbox_to`](Srs::transform_bbox_to) with `points` envelope points
    /// (MapProxy's `with_points`; its KML service asks for 4).
    pub fn transform_bbox_with(
        &self,
        dst: &Srs,
        bbox: Bbox,
        points: usize,
    ) -> Result<Bbox, SrsError> {
        if self == dst {
            return Ok(bbox);
        }
        let mut pts = envelope_points(bbox, points);
        self.transform_points(dst, &mut pts);
        let finite: Vec<&(f64, f64)> = pts
            .iter()
            .filter(|p| p.0.is_finite() && p.1.is_finite())
            .collect();
        if finite.is_empty() {
            return Err(SrsError(format!(
                "cannot transform bbox {bbox:?} from {} to {}",
                self.code, dst.code
            )));
        }
        let mut r = [f64::MAX, f64::MAX, f64::MIN, f64::MIN];
        for p in finite {
            r[0] = r[0].min(p.0);
            r[1] = r[1].min(p.1);
            r[2] = r[2].max(p.0);
            r[3] = r[3].max(p.1);
        }
        if self.epsg == 4326 && self.code == "EPSG:4326" && is_webmercator(dst.epsg) {
            if bbox[0] <= -180.0 {
                r[0] = -MERC_MAX;
            }
            if bbox[1] <= -85.06 {
                r[1] = -MERC_MAX;
            }
            if bbox[2] >= 180.0 {
                r[2] = MERC_MAX;
            }
            if bbox[3] >= 85.06 {
                r[3] = MERC_MAX;
            }
        }
        Ok(r)
    }

    /// MapProxy's `align_bbox`: EPSG:4326 latitudes of ±90 moved in by 1e-8.
    pub fn align_bbox(&self, bbox: Bbox) -> Bbox {
        let mut b = bbox;
        if self.code == "EPSG:4326" {
            if (b[1] + 90.0).abs() < 1e-6 {
                b[1] = -90.0 + 1e-8;
            }
            if (b[3] - 90.0).abs() < 1e-6 {
                b[3] = 90.0 - 1e-8;
            }
        }
        b
    }
}

/// `switch_bbox_epsg_axis_order`: swap the axes of a bbox for a north/east SRS.
pub fn switch_axis_order<T: Copy>(bbox: [T; 4], srs: &Srs) -> [T; 4] {
    if srs.is_axis_order_ne() {
        [bbox[1], bbox[0], bbox[3], bbox[2]]
    } else {
        bbox
    }
}

/// MapProxy's default `axis_order_ne_`/`axis_order_en_`, else EPSG's rule for geographic CRSs
/// (`globals.srs.axis_order_ne`/`_en` are not read yet).
fn axis_order_ne(code: &str, latlong: bool) -> bool {
    match code {
        "EPSG:4326" | "EPSG:4258" | "EPSG:31466" | "EPSG:31467" | "EPSG:31468" => true,
        "CRS:84" | "EPSG:900913" | "EPSG:25831" | "EPSG:25832" | "EPSG:25833" => false,
        // EPSG defines every geographic 2D CRS as latitude first
        _ => latlong,
    }
}

/// MapProxy's `generate_envelope_points`: `n` points around a bbox.
pub fn envelope_points(bbox: Bbox, n: usize) -> Vec<(f64, f64)> {
    let [minx, miny, maxx, maxy] = bbox;
    let k = (if n <= 4 { 0 } else { (n - 4).div_ceil(4) }) + 1;
    let xstep = (maxx - minx) / k as f64;
    let ystep = (maxy - miny) / k as f64;
    let mut out = Vec::with_capacity(4 * k);
    for i in 0..=k {
        out.push((minx + i as f64 * xstep, miny));
    }
    for i in 1..k {
        out.push((maxx, miny + i as f64 * ystep));
    }
    for i in (0..=k).rev() {
        out.push((minx + i as f64 * xstep, maxy));
    }
    for i in (1..k).rev() {
        out.push((minx, miny + i as f64 * ystep));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes() {
        assert_eq!(parse_code("epsg:3857"), Some(("EPSG:3857".into(), 3857)));
        assert_eq!(parse_code("CRS:84"), Some(("CRS:84".into(), 4326)));
        assert_eq!(parse_code("4326"), Some(("EPSG:4326".into(), 4326)));
        assert_eq!(parse_code("EPSG:x"), None);
        assert!(Srs::get("EPSG:999999").is_err());
    }

    #[test]
    fn axis_order() {
        let ne = |c: &str| Srs::get(c).map(|s| s.is_axis_order_ne()).ok();
        assert_eq!(ne("EPSG:4326"), Some(true));
        assert_eq!(ne("CRS:84"), Some(false));
        assert_eq!(ne("EPSG:31468"), Some(true));
        assert_eq!(ne("EPSG:25832"), Some(false));
        assert_eq!(ne("EPSG:32632"), Some(false));
        assert_eq!(ne("EPSG:3857"), Some(false));
    }

    #[test]
    fn transform_as_mapproxy() -> Result<(), SrsError> {
        // MapProxy's doctests (srs.py transform_bbox_to)
        let s4326 = Srs::get("EPSG:4326")?;
        let s3857 = Srs::get("EPSG:3857")?;
        let b = s4326.transform_bbox_to(&s3857, [-180.0, -90.0, 180.0, 90.0])?;
        assert_eq!(b, [-MERC_MAX, -MERC_MAX, MERC_MAX, MERC_MAX]);
        let b = s4326.transform_bbox_to(&s3857, [8.2, 53.1, 8.3, 53.2])?;
        let want = [912819.82450, 7001516.67745, 923951.77358, 7020078.53264];
        for (a, w) in b.iter().zip(want) {
            assert!((a - w).abs() < 1e-4, "{b:?}");
        }
        assert!(*s3857 == *Srs::get("EPSG:900913")?);
        // UTM 32N: 9°E on the equator is 500000 m east
        let utm = Srs::get("EPSG:32632")?;
        let (x, y) = s4326.transform_to(&utm, (9.0, 0.0));
        assert!((x - 500000.0).abs() < 1e-6 && y.abs() < 1e-6);
        let (lon, lat) = utm.transform_to(&s4326, (500000.0, 5_000_000.0));
        // pyproj: 45.15347718...
        assert!(
            (lon - 9.0).abs() < 1e-9 && (lat - 45.153477).abs() < 1e-6,
            "{lat}"
        );
        let (x, y) = s4326.transform_to(&utm, (lon, lat));
        assert!((x - 500000.0).abs() < 1e-4 && (y - 5_000_000.0).abs() < 1e-4);
        Ok(())
    }

    #[test]
    fn envelope() {
        assert_eq!(
            envelope_points([10.0, 5.0, 20.0, 15.0], 8),
            vec![
                (10.0, 5.0),
                (15.0, 5.0),
                (20.0, 5.0),
                (20.0, 10.0),
                (20.0, 15.0),
                (15.0, 15.0),
                (10.0, 15.0),
                (10.0, 10.0)
            ]
        );
        assert_eq!(envelope_points([10.0, 5.0, 20.0, 15.0], 4).len(), 4);
    }
}
