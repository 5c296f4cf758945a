//! Tile grids as MapProxy 7 defines them (`mapproxy/grid/`, `mapproxy/config/configuration/grid.py`,
//! the built-in grids of `mapproxy/config/defaults.py`).
//!
//! A [`TileGrid`] is a bbox in one SRS cut into levels of tiles; each level has one resolution
//! (units per pixel), level 0 is the coarsest. [`tile_grid`] derives a grid from the YAML keys of
//! a `grids:` entry ([`GridConf`]); [`GridSet`] holds the named grids of a configuration (the
//! built-ins plus the user's) and resolves `base:` and `align_resolutions_with:` between them.
//!
//! Every number is computed with the same floating-point operations, in the same order, as
//! MapProxy, so resolutions, grid sizes and tile bboxes come out bit for bit the same (the tests
//! compare against values printed by MapProxy 7.0.0). Where MapProxy does something surprising
//! the doc comment says so; the behaviour is kept, since cache paths and tile URLs depend on it.
//!
//! `bbox_srs`: the bbox is transformed into the grid's SRS as MapProxy's `grid_bbox` does
//! (`srs.rs`'s `transform_bbox_to`, the envelope of 16 points per edge).
//!
//! Not supported yet: named resolutions (`res: [[name, value], ...]`), grids read from OGC TileMatrixSet JSON.

use std::f64::consts::SQRT_2;
use std::fmt;

pub use crate::pynum::Num;

/// A bounding box `(minx, miny, maxx, maxy)` in the grid's SRS.
pub type Bbox = [f64; 4];

/// A tile coordinate `(x, y, level)`. `y` counts from the grid's origin (bottom row for `ll`,
/// top row for `ul`). `x` and `y` are signed because lookups can fall outside the grid.
pub type TileCoord = (i64, i64, usize);

/// The bbox MapProxy's 900913/3857 grids default to: half the equator of the 6378137 m sphere.
pub const MERCATOR_HALF_EXTENT: f64 = 20037508.342789244;

/// Why a grid cannot be built or a lookup has no answer.
#[derive(Debug, Clone, PartialEq)]
pub enum GridError {
    /// No `bbox` and the SRS has no default one (only EPSG:4326, 900913, 3857, 102100 and
    /// 102113 have).
    NeedBbox { srs: u32 },
    /// `bbox_srs` cannot be transformed into `srs`.
    BboxSrs {
        srs: u32,
        bbox_srs: u32,
        why: String,
    },
    /// `origin` is none of `ll`, `sw`, `ul`, `nw` (any case).
    UnknownOrigin(String),
    /// Keys that cannot go together (MapProxy asserts): `res` with `min_res`, `max_res` or
    /// `align_resolutions_with`.
    Conflict(&'static str),
    /// The resolutions cannot be derived (MapProxy fails with a Python error: division by
    /// zero, an index error, or a loop that never ends).
    BadResolutions(String),
    /// `base:` names a grid that does not exist.
    UnknownBase { grid: String, base: String },
    /// No grid of that name (e.g. in `align_resolutions_with`).
    UnknownGrid(String),
    /// `align_resolutions_with` refers back to the grid being built (MapProxy recurses
    /// until Python gives up).
    Cycle(String),
    /// A level that the grid does not have.
    NoLevel(usize),
    /// A coordinate that is not a finite number, or too large for a tile index (beyond ±2^63;
    /// Python's integers have no such limit).
    NotFinite,
    /// The request does not touch the grid, or is far coarser than level 0 (MapProxy's
    /// `NoTiles`).
    NoTiles,
    /// The bbox selects no tiles: it is inverted or narrower than a fifth of a pixel
    /// (MapProxy's `GridError('Invalid BBOX')`).
    InvalidBbox,
}

impl fmt::Display for GridError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GridError::NeedBbox { srs } => write!(f, "need a bbox for grid with EPSG:{srs}"),
            GridError::BboxSrs { srs, bbox_srs, why } => write!(
                f,
                "cannot transform the bbox from bbox_srs EPSG:{bbox_srs} to the grid's EPSG:{srs}: {why}"
            ),
            GridError::UnknownOrigin(o) => write!(f, "unknown origin value '{o}'"),
            GridError::Conflict(what) => write!(f, "{what}"),
            GridError::BadResolutions(why) => write!(f, "cannot derive resolutions: {why}"),
            GridError::UnknownBase { grid, base } => write!(f, "unknown base {base} for grid {grid}"),
            GridError::UnknownGrid(name) => write!(f, "unknown grid {name}"),
            GridError::Cycle(name) => write!(f, "grid {name} refers to itself through align_resolutions_with"),
            GridError::NoLevel(level) => write!(f, "the grid has no level {level}"),
            GridError::NotFinite => write!(f, "coordinate is not finite or out of range"),
            GridError::NoTiles => write!(f, "no tiles"),
            GridError::InvalidBbox => write!(f, "Invalid BBOX"),
        }
    }
}

impl std::error::Error for GridError {}

/// Where tile `(0, 0)` is: MapProxy's `origin`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Lower left (`ll` or `sw`): rows count upwards. MapProxy's default when a grid says
    /// nothing (with a warning that the default would change; it never did).
    LowerLeft,
    /// Upper left (`ul` or `nw`): rows count downwards, as in WMTS and XYZ URLs.
    UpperLeft,
}

impl Origin {
    /// Reads `ll`/`sw`/`ul`/`nw`, ignoring case, as MapProxy's `origin_from_string`.
    pub fn parse(s: &str) -> Result<Origin, GridError> {
        match s.to_ascii_lowercase().as_str() {
            "ll" | "sw" => Ok(Origin::LowerLeft),
            "ul" | "nw" => Ok(Origin::UpperLeft),
            _ => Err(GridError::UnknownOrigin(s.to_string())),
        }
    }

    /// MapProxy's spelling: `ll` or `ul`.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::LowerLeft => "ll",
            Origin::UpperLeft => "ul",
        }
    }
}

/// `res_factor`: a number, or `sqrt2`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ResFactor {
    Value(f64),
    Sqrt2,
}

/// The `globals:` values a grid falls back on: `grid.tile_size`, `image.stretch_factor`,
/// `image.max_shrink_factor`.
#[derive(Debug, Clone, PartialEq)]
pub struct GridGlobals {
    pub tile_size: (u32, u32),
    pub stretch_factor: f64,
    pub max_shrink_factor: f64,
}

impl Default for GridGlobals {
    /// MapProxy's defaults: 256×256, 1.15, 4.0.
    fn default() -> Self {
        GridGlobals {
            tile_size: (256, 256),
            stretch_factor: 1.15,
            max_shrink_factor: 4.0,
        }
    }
}

/// One entry of `grids:`, key for key. `None` is a key that is absent.
///
/// MapProxy treats some present-but-zero values as absent: `min_res: 0`, `max_res: 0`,
/// `num_levels: 0` and `res: []` behave as if the key were missing (Python truthiness), except
/// that `min_res`/`max_res` next to `res` are refused even when 0.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GridConf {
    /// Another grid whose keys this one starts from (see [`GridSet::tile_grid`]).
    pub base: Option<String>,
    /// The grid's name; [`GridSet::insert`] sets it to the entry's key when absent.
    pub name: Option<String>,
    /// EPSG code; default 900913.
    pub srs: Option<u32>,
    pub bbox: Option<Bbox>,
    pub bbox_srs: Option<u32>,
    /// `ll`/`sw`/`ul`/`nw`; default `ll`.
    pub origin: Option<String>,
    pub tile_size: Option<(u32, u32)>,
    /// Explicit resolutions; MapProxy sorts them coarsest first. An int stays an int (the
    /// TMS `units-per-pixel` and the WMS-C `Resolutions` print it as one).
    pub res: Option<Vec<Num>>,
    pub res_factor: Option<ResFactor>,
    pub threshold_res: Option<Vec<f64>>,
    pub num_levels: Option<u32>,
    /// The coarsest resolution (level 0), despite the name; level 0 is this value, an int
    /// when written as one.
    pub min_res: Option<Num>,
    /// The finest resolution wanted, despite the name.
    pub max_res: Option<f64>,
    pub align_resolutions_with: Option<String>,
    pub stretch_factor: Option<f64>,
    pub max_shrink_factor: Option<f64>,
}

impl GridConf {
    /// The keys of `self`, and those of `base` where `self` lacks them (Python's
    /// `base.copy().update(self)`); `base:` itself is dropped.
    fn over(&self, base: &GridConf) -> GridConf {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        GridConf {
            base: None,
            name: pick(&self.name, &base.name),
            srs: pick(&self.srs, &base.srs),
            bbox: pick(&self.bbox, &base.bbox),
            bbox_srs: pick(&self.bbox_srs, &base.bbox_srs),
            origin: pick(&self.origin, &base.origin),
            tile_size: pick(&self.tile_size, &base.tile_size),
            res: pick(&self.res, &base.res),
            res_factor: pick(&self.res_factor, &base.res_factor),
            threshold_res: pick(&self.threshold_res, &base.threshold_res),
            num_levels: pick(&self.num_levels, &base.num_levels),
            min_res: pick(&self.min_res, &base.min_res),
            max_res: pick(&self.max_res, &base.max_res),
            align_resolutions_with: pick(
                &self.align_resolutions_with,
                &base.align_resolutions_with,
            ),
            stretch_factor: pick(&self.stretch_factor, &base.stretch_factor),
            max_shrink_factor: pick(&self.max_shrink_factor, &base.max_shrink_factor),
        }
    }
}

/// MapProxy's default bbox for an SRS, if it has one.
pub fn default_bbox(srs: u32) -> Option<Bbox> {
    match srs {
        4326 => Some([-180.0, -90.0, 180.0, 90.0]),
        900913 | 3857 | 102100 | 102113 => Some([
            -MERCATOR_HALF_EXTENT,
            -MERCATOR_HALF_EXTENT,
            MERCATOR_HALF_EXTENT,
            MERCATOR_HALF_EXTENT,
        ]),
        _ => None,
    }
}

/// Builds a grid from its keys, as MapProxy's `tile_grid()` called by `GridConfiguration`.
/// `align_with` is the already built grid named by `align_resolutions_with` (the key itself
/// is not looked at here; [`GridSet`] resolves it). `base` must already be merged in.
///
/// Resolutions come from, in this order:
/// - `res`, sorted coarsest first (no other resolution key may be set);
/// - `align_with`: see [`aligned_resolutions`];
/// - else [`resolutions`] from `min_res`, `max_res`, `res_factor`, `num_levels`, `bbox`
///   and `tile_size`.
pub fn tile_grid(
    conf: &GridConf,
    align_with: Option<&TileGrid>,
    globals: &GridGlobals,
) -> Result<TileGrid, GridError> {
    let srs = conf.srs.unwrap_or(900913);
    let bbox = match (conf.bbox, conf.bbox_srs) {
        (Some(b), Some(bbox_srs)) if bbox_srs != srs => {
            let fail = |why: String| GridError::BboxSrs { srs, bbox_srs, why };
            let from = crate::srs::Srs::get(&format!("EPSG:{bbox_srs}"))
                .map_err(|e| fail(e.to_string()))?;
            let to =
                crate::srs::Srs::get(&format!("EPSG:{srs}")).map_err(|e| fail(e.to_string()))?;
            from.transform_bbox_to(&to, b)
                .map_err(|e| fail(e.to_string()))?
        }
        (Some(b), _) => b,
        (None, _) => default_bbox(srs).ok_or(GridError::NeedBbox { srs })?,
    };
    let tile_size = conf.tile_size.unwrap_or(globals.tile_size);
    let res_factor = conf.res_factor.unwrap_or(ResFactor::Value(2.0));

    let res = match conf.res.as_ref().filter(|r| !r.is_empty()) {
        Some(res) => {
            if conf.min_res.is_some() || conf.max_res.is_some() || align_with.is_some() {
                return Err(GridError::Conflict(
                    "res cannot be combined with min_res, max_res or align_resolutions_with",
                ));
            }
            let mut res = res.clone();
            // Python's sorted(reverse=True) is stable; so is sort_by
            res.sort_by(|a, b| {
                b.f()
                    .partial_cmp(&a.f())
                    .unwrap_or(std::cmp::Ordering::Equal)
            });
            res
        }
        None => match align_with {
            Some(other) => aligned_resolutions(
                other.resolutions_num(),
                conf.min_res,
                conf.max_res,
                res_factor,
                conf.num_levels,
                bbox,
                tile_size,
            )?,
            None => resolutions(
                conf.min_res,
                conf.max_res,
                res_factor,
                conf.num_levels,
                bbox,
                tile_size,
            )?,
        },
    };

    let origin = match &conf.origin {
        Some(o) => Origin::parse(o)?,
        None => Origin::LowerLeft,
    };
    let threshold_res = conf
        .threshold_res
        .clone()
        .filter(|t| !t.is_empty())
        .map(|mut t| {
            t.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
            t
        });
    TileGrid::new(TileGridParts {
        name: conf.name.clone(),
        srs,
        bbox,
        origin,
        tile_size,
        resolutions: res,
        threshold_res,
        stretch_factor: conf.stretch_factor.unwrap_or(globals.stretch_factor),
        max_shrink_factor: conf.max_shrink_factor.unwrap_or(globals.max_shrink_factor),
    })
}

/// Python's truthiness of an optional number: absent and 0 are both "not set".
fn set(v: Option<f64>) -> Option<f64> {
    v.filter(|v| *v != 0.0)
}

/// The resolution at which the whole bbox fits one tile: the larger of width/tile width and
/// height/tile height.
fn bbox_fit_res(bbox: Bbox, tile_size: (u32, u32)) -> f64 {
    let width = bbox[2] - bbox[0];
    let height = bbox[3] - bbox[1];
    (width / f64::from(tile_size.0)).max(height / f64::from(tile_size.1))
}

/// MapProxy's `resolutions()`: the resolutions of a grid with no `res` and no
/// `align_resolutions_with`.
///
/// - Level 0 is `min_res`, or else the resolution at which the bbox fits one tile.
/// - With `max_res` and `num_levels`: `num_levels` resolutions evenly spaced in log10 from
///   `min_res` to `max_res` (both included); `res_factor` is ignored.
/// - With `max_res` only: divide by the factor while the next resolution is still finer than
///   `max_res`. Surprise: a level exactly at `max_res` is *not* added.
/// - Otherwise `num_levels` levels (default 20, or 40 when the factor is √2), each the
///   previous one divided by the factor (repeated division, not `min_res / factor^n`).
pub fn resolutions(
    min_res: Option<Num>,
    max_res: Option<f64>,
    res_factor: ResFactor,
    num_levels: Option<u32>,
    bbox: Bbox,
    tile_size: (u32, u32),
) -> Result<Vec<Num>, GridError> {
    let factor = match res_factor {
        ResFactor::Sqrt2 => SQRT_2,
        ResFactor::Value(v) => v,
    };
    let num_levels = num_levels.filter(|n| *n != 0);
    // level 0 is `min_res` as written (an int stays one), the others are divisions: floats
    let first = min_res
        .filter(|m| m.f() != 0.0)
        .unwrap_or_else(|| Num::Float(bbox_fit_res(bbox, tile_size)));
    let min_res = first.f();

    if let Some(max_res) = set(max_res) {
        if let Some(n) = num_levels {
            if n == 1 {
                return Err(GridError::BadResolutions(
                    "max_res with num_levels: 1 (MapProxy divides by zero)".into(),
                ));
            }
            let step = (min_res.log10() - max_res.log10()) / f64::from(n - 1);
            return Ok((0..n)
                .map(|i| Num::Float(10f64.powf(min_res.log10() - step * f64::from(i))))
                .collect());
        }
        if factor.is_nan() || factor.abs() <= 1.0 || min_res.is_nan() || max_res.is_nan() {
            return Err(GridError::BadResolutions(format!(
                "res_factor {factor} never reaches max_res (MapProxy loops forever)"
            )));
        }
        let mut res = vec![first];
        let mut last = min_res;
        loop {
            let next = last / factor;
            if max_res >= next {
                break;
            }
            res.push(Num::Float(next));
            last = next;
        }
        return Ok(res);
    }
    if factor == 0.0 {
        return Err(GridError::BadResolutions(
            "res_factor 0 (MapProxy divides by zero)".into(),
        ));
    }
    let n = num_levels.unwrap_or(if factor != SQRT_2 { 20 } else { 40 });
    let mut res = vec![first];
    let mut last = min_res;
    while res.len() < n as usize {
        last /= factor;
        res.push(Num::Float(last));
    }
    Ok(res)
}

/// MapProxy's `aligned_resolutions()`: the resolutions of `align_resolutions_with`'s grid
/// (`with`), restricted and thinned or thickened.
///
/// Keeps those no coarser than `min_res` (or the bbox-fits-one-tile resolution), then those no
/// finer than `max_res`, then the first `num_levels`. Then, comparing the factor between the
/// first two kept resolutions (rounded to 8 decimals): `res_factor: sqrt2` over a factor-2 grid
/// inserts `r/√2` after each `r` (so `num_levels` ends up doubled); `res_factor: 2` over a
/// √2 grid keeps every other one. Any other factor is ignored. Fewer than two kept
/// resolutions is an error (MapProxy's IndexError).
pub fn aligned_resolutions(
    with: &[Num],
    min_res: Option<Num>,
    max_res: Option<f64>,
    res_factor: ResFactor,
    num_levels: Option<u32>,
    bbox: Bbox,
    tile_size: (u32, u32),
) -> Result<Vec<Num>, GridError> {
    let min_res = set(min_res.map(Num::f)).unwrap_or_else(|| bbox_fit_res(bbox, tile_size));
    let mut res: Vec<Num> = with.iter().copied().filter(|r| r.f() <= min_res).collect();
    if let Some(max_res) = set(max_res) {
        res.retain(|r| r.f() >= max_res);
    }
    if let Some(n) = num_levels.filter(|n| *n != 0) {
        res.truncate(n as usize);
    }
    let (Some(r0), Some(r1)) = (res.first(), res.get(1)) else {
        return Err(GridError::BadResolutions(
            "align_resolutions_with leaves fewer than two resolutions".into(),
        ));
    };
    let calculated = py_round(r0.f() / r1.f(), 8);
    match res_factor {
        ResFactor::Sqrt2 => {
            if calculated != py_round(SQRT_2, 8) && calculated == 2.0 {
                res = res
                    .iter()
                    .flat_map(|r| [*r, Num::Float(r.f() / SQRT_2)])
                    .collect();
            }
        }
        ResFactor::Value(2.0) => {
            if calculated != py_round(2.0, 8) && calculated == py_round(SQRT_2, 8) {
                res = res.into_iter().step_by(2).collect();
            }
        }
        ResFactor::Value(_) => {}
    }
    Ok(res)
}

/// Python's `round(v, ndigits)` for floats: the exact binary value rounded half-to-even to
/// `ndigits` decimals, read back to the nearest float. Rust's `{:.N}` formatting rounds the
/// exact value the same way.
///
/// Where the floats next to `v` are more than `10^-ndigits` away, the rounded decimal (within
/// half of that of `v`) reads back as `v` itself: no formatting, which for the large values of a
/// tile's offset in metres (12 decimals of a 17-digit number) takes the slow exact path (a
/// tile's bbox is 4 of these per request).
fn py_round(v: f64, ndigits: usize) -> f64 {
    if !v.is_finite() || v == 0.0 {
        return v;
    }
    let a = v.abs();
    // the gap below `a`, never wider than the one above it
    let gap = a - f64::from_bits(a.to_bits() - 1);
    if gap > 1.000_001 * ten_to_minus(ndigits) {
        return v;
    }
    match py_round_exact(a, ndigits) {
        Some(r) => r.copysign(v),
        None => py_round_formatted(v, ndigits),
    }
}

/// `10^-n` (from a table for the usual `n`: `powi` is a libgcc call, a tenth of `py_round`).
fn ten_to_minus(n: usize) -> f64 {
    const TABLE: [f64; 16] = [
        1e0, 1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-11, 1e-12, 1e-13,
        1e-14, 1e-15,
    ];
    match TABLE.get(n) {
        Some(p) => *p,
        None => 10f64.powi(-i32::try_from(n).unwrap_or(i32::MAX)),
    }
}

/// `round(a, ndigits)` for a positive finite `a` in integers: `a * 10^ndigits` exactly (the
/// mantissa times the power of ten fits in 128 bits), rounded half to even, then divided by
/// `10^ndigits` in one correctly rounded division, which gives the float nearest the rounded
/// decimal, as reading it back does. `None` where the rounded value or the power of ten is not
/// exact in a float (at least 2^53, or ndigits over 22).
fn py_round_exact(a: f64, ndigits: usize) -> Option<f64> {
    let n = u32::try_from(ndigits).ok().filter(|n| *n <= 22)?;
    let pow = 10u128.pow(n);
    let bits = a.to_bits();
    let biased = i32::try_from((bits >> 52) & 0x7ff).ok()?;
    let fraction = bits & ((1 << 52) - 1);
    // a = mantissa * 2^exp
    let (mantissa, exp) = match biased {
        0 => (fraction, -1074),
        _ => (fraction | (1 << 52), biased - 1075),
    };
    // < 2^53 * 10^22 < 2^127
    let scaled = u128::from(mantissa) * pow;
    let rounded = if exp >= 0 {
        scaled
            .checked_shl(exp.unsigned_abs())
            .filter(|r| r >> exp == scaled)?
    } else {
        let shift = exp.unsigned_abs();
        if shift >= 128 {
            // scaled < 2^127 <= half of 2^shift
            0
        } else {
            let q = scaled >> shift;
            let rest = scaled - (q << shift);
            let half = 1u128 << (shift - 1);
            if rest > half || (rest == half && q & 1 == 1) {
                q + 1
            } else {
                q
            }
        }
    };
    if rounded >= 1 << 53 {
        return None;
    }
    // both exact in a float: one division, correctly rounded
    Some(rounded as f64 / pow as f64)
}

fn py_round_formatted(v: f64, ndigits: usize) -> f64 {
    format!("{v:.ndigits$}").parse().unwrap_or(v)
}

/// Python's `a // b` for floats, which is not `(a / b).floor()`: it floors the exact
/// quotient (`1.0 // 0.1 == 9.0` while `1.0 / 0.1 == 10.0`). `b` must not be 0.
fn py_floordiv(a: f64, b: f64) -> f64 {
    let m = a % b;
    let mut div = (a - m) / b;
    if m != 0.0 && (b < 0.0) != (m < 0.0) {
        div -= 1.0;
    }
    if div != 0.0 {
        let mut floordiv = div.floor();
        if div - floordiv > 0.5 {
            floordiv += 1.0;
        }
        floordiv
    } else {
        0.0f64.copysign(a / b)
    }
}

/// The parts of a grid, for [`TileGrid::new`].
#[derive(Debug, Clone, PartialEq)]
pub struct TileGridParts {
    pub name: Option<String>,
    pub srs: u32,
    pub bbox: Bbox,
    pub origin: Origin,
    pub tile_size: (u32, u32),
    /// Coarsest first (MapProxy does not sort them here; [`tile_grid`] does for `res`). Ints
    /// where MapProxy holds ints (see [`GridConf::res`]).
    pub resolutions: Vec<Num>,
    /// Ascending; see [`TileGrid::closest_level`].
    pub threshold_res: Option<Vec<f64>>,
    pub stretch_factor: f64,
    pub max_shrink_factor: f64,
}

/// A regular tile grid (MapProxy's `TileGrid`).
#[derive(Debug, Clone, PartialEq)]
pub struct TileGrid {
    parts: TileGridParts,
    /// The values of `parts.resolutions`.
    res: Vec<f64>,
    grid_sizes: Vec<(i64, i64)>,
}

impl TileGrid {
    /// A grid from its parts; computes the number of tiles per level. Fails on no
    /// resolutions, or a resolution that is 0 or gives a non-finite tile count.
    pub fn new(parts: TileGridParts) -> Result<TileGrid, GridError> {
        if parts.resolutions.is_empty() {
            return Err(GridError::BadResolutions("no resolutions".into()));
        }
        let width = parts.bbox[2] - parts.bbox[0];
        let height = parts.bbox[3] - parts.bbox[1];
        let (tw, th) = (f64::from(parts.tile_size.0), f64::from(parts.tile_size.1));
        let mut grid_sizes = Vec::with_capacity(parts.resolutions.len());
        let resolutions: Vec<f64> = parts.resolutions.iter().map(|r| r.f()).collect();
        for &res in &resolutions {
            if res == 0.0 {
                return Err(GridError::BadResolutions("a resolution of 0".into()));
            }
            // MapProxy floors the pixel count before dividing by the tile size, then rounds
            // up: a level whose bbox is 256.9 pixels wide gets one 256-pixel column, not two.
            let x = (py_floordiv(width, res) / tw).ceil();
            let y = (py_floordiv(height, res) / th).ceil();
            let x = f64_to_i64(x).ok_or(GridError::BadResolutions(format!("resolution {res}")))?;
            let y = f64_to_i64(y).ok_or(GridError::BadResolutions(format!("resolution {res}")))?;
            grid_sizes.push((x.max(1), y.max(1)));
        }
        Ok(TileGrid {
            parts,
            res: resolutions,
            grid_sizes,
        })
    }

    pub fn name(&self) -> Option<&str> {
        self.parts.name.as_deref()
    }
    /// The EPSG code.
    pub fn srs(&self) -> u32 {
        self.parts.srs
    }
    pub fn bbox(&self) -> Bbox {
        self.parts.bbox
    }
    pub fn origin(&self) -> Origin {
        self.parts.origin
    }
    pub fn tile_size(&self) -> (u32, u32) {
        self.parts.tile_size
    }
    /// Resolutions per level, coarsest (level 0) first.
    pub fn resolutions(&self) -> &[f64] {
        &self.res
    }
    /// The resolutions as MapProxy holds them: an int where the YAML wrote one (`res` entries,
    /// `min_res` as level 0), for the documents that print them.
    pub fn resolutions_num(&self) -> &[Num] {
        &self.parts.resolutions
    }
    /// The `threshold_res` values, ascending.
    pub fn threshold_res(&self) -> Option<&[f64]> {
        self.parts.threshold_res.as_deref()
    }
    pub fn stretch_factor(&self) -> f64 {
        self.parts.stretch_factor
    }
    pub fn max_shrink_factor(&self) -> f64 {
        self.parts.max_shrink_factor
    }
    /// Number of levels.
    pub fn levels(&self) -> usize {
        self.res.len()
    }
    /// Columns and rows of tiles per level (each at least 1).
    pub fn grid_sizes(&self) -> &[(i64, i64)] {
        &self.grid_sizes
    }
    /// The resolution of `level`.
    pub fn resolution(&self, level: usize) -> Result<f64, GridError> {
        self.res
            .get(level)
            .copied()
            .ok_or(GridError::NoLevel(level))
    }
    fn grid_size(&self, level: usize) -> Result<(i64, i64), GridError> {
        self.grid_sizes
            .get(level)
            .copied()
            .ok_or(GridError::NoLevel(level))
    }

    /// The level to serve a request of resolution `res` from (MapProxy's `closest_level`).
    ///
    /// The first level whose resolution is at most `res * stretch_factor` is a candidate
    /// (tiles of that level may be stretched up to the factor). The candidate is returned as
    /// soon as a later level is finer than `res`; so where levels are closer together than
    /// the stretch factor, the finest level still coarser-or-equal to `res` wins.
    /// `threshold_res` values override this: when a threshold lies between two levels, a
    /// request coarser than the threshold gets the upper level, one between the threshold and
    /// the lower level gets the lower level. No match returns the last level. (MapProxy skips
    /// thresholds above level 0 only while others remain, and ignores a threshold of 0.)
    pub fn closest_level(&self, res: f64) -> usize {
        let resolutions = &self.res;
        let Some(&first) = resolutions.first() else {
            return 0;
        };
        let mut prev_l_res = first;
        let mut thresholds: Vec<f64> = Vec::new();
        let mut threshold: Option<f64> = None;
        if let Some(t) = &self.parts.threshold_res {
            thresholds = t.clone();
            threshold = thresholds.pop();
            while let Some(th) = threshold {
                if th > prev_l_res && !thresholds.is_empty() {
                    threshold = thresholds.pop();
                } else {
                    break;
                }
            }
        }
        let mut threshold_result: Option<usize> = None;
        let mut level = 0;
        for (l, &l_res) in resolutions.iter().enumerate() {
            level = l;
            if let Some(th) = threshold.filter(|t| *t != 0.0) {
                if prev_l_res > th && th >= l_res {
                    if res > th {
                        return level.saturating_sub(1);
                    } else if res >= l_res {
                        return level;
                    }
                    threshold = thresholds.pop();
                }
            }
            if let Some(r) = threshold_result {
                if l_res < res {
                    return r;
                }
            }
            if l_res <= res * self.parts.stretch_factor {
                threshold_result = Some(level);
            }
            prev_l_res = l_res;
        }
        level
    }

    /// The tile containing the point `(x, y)` at `level` (MapProxy's `tile_coord_for_point`).
    /// Points outside the grid give coordinates outside it (negative or too large); a point on
    /// a tile edge belongs to the tile right of / away from the origin.
    pub fn tile_coord_for_point(
        &self,
        x: f64,
        y: f64,
        level: usize,
    ) -> Result<TileCoord, GridError> {
        let res = self.resolution(level)?;
        let bbox = self.parts.bbox;
        let x = x - bbox[0];
        let y = match self.parts.origin {
            Origin::UpperLeft => bbox[3] - y,
            Origin::LowerLeft => y - bbox[1],
        };
        let tx = x / (res * f64::from(self.parts.tile_size.0));
        let ty = y / (res * f64::from(self.parts.tile_size.1));
        let tx = f64_to_i64(tx.floor()).ok_or(GridError::NotFinite)?;
        let ty = f64_to_i64(ty.floor()).ok_or(GridError::NotFinite)?;
        Ok((tx, ty, level))
    }

    /// The same tile counted from the other origin: `y` becomes `rows - 1 - y`.
    pub fn flip_tile_coord(&self, (x, y, z): TileCoord) -> Result<TileCoord, GridError> {
        let (_, rows) = self.grid_size(z)?;
        let y = (rows - 1).checked_sub(y).ok_or(GridError::NotFinite)?;
        Ok((x, y, z))
    }

    /// The bbox of a tile (MapProxy's `tile_bbox`); any `x`/`y`, also outside the grid.
    ///
    /// Surprise kept from MapProxy: the offsets `x * res * width` and `res * width` are each
    /// rounded to 12 decimals before being added to the grid's corner, and the far edge is
    /// the near edge plus the rounded tile extent. With `limit` the bbox is clipped to the
    /// grid's bbox.
    pub fn tile_bbox(&self, (x, y, z): TileCoord, limit: bool) -> Result<Bbox, GridError> {
        let res = self.resolution(z)?;
        let bbox = self.parts.bbox;
        let tw = f64::from(self.parts.tile_size.0);
        let th = f64::from(self.parts.tile_size.1);
        // Python multiplies int * float left to right: (x * res) * width
        let x0 = bbox[0] + py_round(x as f64 * res * tw, 12);
        let x1 = x0 + py_round(res * tw, 12);
        let (y0, y1) = match self.parts.origin {
            Origin::UpperLeft => {
                let y1 = bbox[3] - py_round(y as f64 * res * th, 12);
                (y1 - py_round(res * th, 12), y1)
            }
            Origin::LowerLeft => {
                let y0 = bbox[1] + py_round(y as f64 * res * th, 12);
                (y0, y0 + py_round(res * th, 12))
            }
        };
        if limit {
            return Ok([
                x0.max(bbox[0]),
                y0.max(bbox[1]),
                x1.min(bbox[2]),
                y1.min(bbox[3]),
            ]);
        }
        Ok([x0, y0, x1, y1])
    }

    /// The bbox covering two tiles (MapProxy's `_tiles_bbox` of a first and last tile).
    pub fn tiles_bbox(&self, first: TileCoord, last: TileCoord) -> Result<Bbox, GridError> {
        let a = self.tile_bbox(first, false)?;
        let b = self.tile_bbox(last, false)?;
        Ok([
            a[0].min(b[0]),
            a[1].min(b[1]),
            a[2].max(b[2]),
            a[3].max(b[3]),
        ])
    }

    /// The coordinate if the tile exists in the grid, else `None` (MapProxy's `limit_tile`).
    pub fn limit_tile(&self, (x, y, z): TileCoord) -> Option<TileCoord> {
        let (cols, rows) = *self.grid_sizes.get(z)?;
        if x < 0 || y < 0 || x >= cols || y >= rows {
            return None;
        }
        Some((x, y, z))
    }

    /// The tiles of `level` that a bbox touches (MapProxy's `get_affected_level_tiles`).
    ///
    /// The bbox is shrunk by a tenth of a pixel on each side first, so tiles it only touches
    /// are left out. Returns the bbox of the selected tiles, their columns × rows, and the
    /// tiles row by row starting with the top row, left to right; positions outside the grid
    /// are `None` (they still count in the size and bbox).
    pub fn get_affected_level_tiles(
        &self,
        bbox: Bbox,
        level: usize,
    ) -> Result<AffectedTiles, GridError> {
        let delta = self.resolution(level)? / 10.0;
        let (x0, y0, _) = self.tile_coord_for_point(bbox[0] + delta, bbox[1] + delta, level)?;
        let (x1, y1, _) = self.tile_coord_for_point(bbox[2] - delta, bbox[3] - delta, level)?;
        // the top edge's row comes first: for `ul` it is the smaller row number (y1 counts
        // down from the top), for `ll` the larger one (y1 counts up from the bottom)
        let (y_first, y_last, y_step) = match self.parts.origin {
            Origin::UpperLeft => (y1, y0, 1i64),
            Origin::LowerLeft => (y1, y0, -1i64),
        };
        let span = |from: i64, to: i64| to.checked_sub(from).and_then(|d| d.checked_add(1));
        let cols = span(x0, x1).ok_or(GridError::NotFinite)?;
        let rows = match self.parts.origin {
            Origin::UpperLeft => span(y_first, y_last),
            Origin::LowerLeft => span(y_last, y_first),
        }
        .ok_or(GridError::NotFinite)?;
        // an empty range of columns or rows is MapProxy's IndexError, turned into GridError
        if cols <= 0 || rows <= 0 {
            return Err(GridError::InvalidBbox);
        }
        let grid_size = self.grid_size(level)?;
        let abbox = self.tiles_bbox((x0, y_last, level), (x1, y_first, level))?;
        Ok(AffectedTiles {
            bbox: abbox,
            grid_size: (cols, rows),
            tiles: TileIter {
                x0,
                cols,
                y_first,
                y_step,
                rows,
                level,
                limit: grid_size,
                index: 0,
            },
        })
    }

    /// The level and bbox for a request of `size` pixels (MapProxy's
    /// `get_affected_bbox_and_level`, for a request in the grid's own SRS): `NoTiles` when the
    /// bbox does not overlap the grid (touching is not overlapping) or the resolution is more
    /// than `max_shrink_factor` times level 0's.
    pub fn get_affected_bbox_and_level(
        &self,
        bbox: Bbox,
        size: (u32, u32),
    ) -> Result<(Bbox, usize), GridError> {
        if !bbox_intersects(self.parts.bbox, bbox) {
            return Err(GridError::NoTiles);
        }
        let res = get_resolution(bbox, size);
        let level = self.closest_level(res);
        if res > self.resolution(0)? * self.parts.max_shrink_factor {
            return Err(GridError::NoTiles);
        }
        Ok((bbox, level))
    }

    /// The tiles for a request of `size` pixels (MapProxy's `get_affected_tiles` in the grid's
    /// own SRS).
    pub fn get_affected_tiles(
        &self,
        bbox: Bbox,
        size: (u32, u32),
    ) -> Result<AffectedTiles, GridError> {
        let (bbox, level) = self.get_affected_bbox_and_level(bbox, size)?;
        self.get_affected_level_tiles(bbox, level)
    }

    /// Whether tiles can be addressed from `origin` too: true for the grid's own origin, or
    /// when every level's tiles line up with the grid's bottom and top edges (within
    /// 1e-12 of the larger |y| of the bbox), so that flipping rows is exact.
    pub fn supports_access_with_origin(&self, origin: Origin) -> bool {
        if origin == self.parts.origin {
            return true;
        }
        let bbox = self.parts.bbox;
        let delta = bbox[1].abs().max(bbox[3].abs()) / 1e12;
        for (level, &(cols, rows)) in self.grid_sizes.iter().enumerate() {
            let Ok(lb) = self.tiles_bbox((0, 0, level), (cols - 1, rows - 1, level)) else {
                return false;
            };
            if (bbox[1] - lb[1]).abs() > delta || (bbox[3] - lb[3]).abs() > delta {
                return false;
            }
        }
        true
    }

    /// The coordinate of the tile at `origin`'s corner of `level`, in this grid's own
    /// counting; `None` when the grid cannot be accessed from that origin or has no `level`.
    pub fn origin_tile(&self, level: usize, origin: Origin) -> Option<TileCoord> {
        if !self.supports_access_with_origin(origin) {
            return None;
        }
        if origin == self.parts.origin {
            return Some((0, 0, level));
        }
        self.flip_tile_coord((0, 0, level)).ok()
    }
}

/// The answer of [`TileGrid::get_affected_level_tiles`].
#[derive(Debug, Clone, PartialEq)]
pub struct AffectedTiles {
    /// The bbox of all selected tiles (may reach outside the grid).
    pub bbox: Bbox,
    /// Columns and rows of selected tiles.
    pub grid_size: (i64, i64),
    /// The tiles, top row first, left to right; `None` where outside the grid.
    pub tiles: TileIter,
}

/// The tiles of an [`AffectedTiles`], in MapProxy's order.
#[derive(Debug, Clone, PartialEq)]
pub struct TileIter {
    x0: i64,
    cols: i64,
    y_first: i64,
    y_step: i64,
    rows: i64,
    level: usize,
    limit: (i64, i64),
    index: i64,
}

impl Iterator for TileIter {
    type Item = Option<TileCoord>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.index >= self.cols.saturating_mul(self.rows) {
            return None;
        }
        let row = self.index / self.cols;
        let col = self.index % self.cols;
        self.index += 1;
        let x = self.x0 + col;
        let y = self.y_first + row * self.y_step;
        if x < 0 || y < 0 || x >= self.limit.0 || y >= self.limit.1 {
            Some(None)
        } else {
            Some(Some((x, y, self.level)))
        }
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self
            .cols
            .saturating_mul(self.rows)
            .saturating_sub(self.index);
        match usize::try_from(left) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }
}

/// `floor`ed float to i64, `None` for NaN, infinities and values out of range (Python's
/// `int()` raises on the first two; its ints have no range).
fn f64_to_i64(v: f64) -> Option<i64> {
    // ±2^63 are exact floats (i64::MAX is not): the range is [-2^63, 2^63)
    const TWO_63: f64 = 9_223_372_036_854_775_808.0;
    if (-TWO_63..TWO_63).contains(&v) {
        Some(v as i64)
    } else {
        None
    }
}

/// Whether two bboxes overlap (touching edges do not), as MapProxy's `bbox_intersects`.
pub fn bbox_intersects(a: Bbox, b: Bbox) -> bool {
    a[0] < b[2] && a[2] > b[0] && a[1] < b[3] && a[3] > b[1]
}

/// MapProxy's `ResolutionRange` (grid/resolutions.py:149-196): `min_res` is the coarsest
/// resolution drawn, `max_res` the finest.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ResRange {
    pub min_res: Option<f64>,
    pub max_res: Option<f64>,
}

impl ResRange {
    /// `contains`: the x and y resolutions of `bbox` drawn at `size` (degrees in metres on the
    /// WGS84 semi-major axis for a geographic SRS) below `min_res` (with MapProxy's 1e-6
    /// tolerance) and at or above `max_res`.
    pub fn contains(&self, bbox: Bbox, size: (u32, u32), latlong: bool) -> bool {
        let (mut w, mut h) = (bbox[2] - bbox[0], bbox[3] - bbox[1]);
        if latlong {
            let m = 6378137.0 * 2.0 * std::f64::consts::PI / 360.0;
            (w, h) = (w * m, h * m);
        }
        let (xr, yr) = (w / f64::from(size.0), h / f64::from(size.1));
        if let Some(min) = self.min_res {
            let min = min + 1e-6;
            if min <= xr || min <= yr {
                return false;
            }
        }
        if let Some(max) = self.max_res {
            if max > xr || max > yr {
                return false;
            }
        }
        true
    }
}

/// The finer of the two axis resolutions of a bbox drawn at `size` pixels (MapProxy's
/// `get_resolution`).
pub fn get_resolution(bbox: Bbox, size: (u32, u32)) -> f64 {
    let w = (bbox[0] - bbox[2]).abs();
    let h = (bbox[1] - bbox[3]).abs();
    (w / f64::from(size.0)).min(h / f64::from(size.1))
}

/// The configuration of MapProxy's built-in grids (`config/defaults.py`).
pub fn builtin_grid_confs() -> Vec<(&'static str, GridConf)> {
    let conf = |srs: u32, origin: &str, name: &str| GridConf {
        srs: Some(srs),
        origin: Some(origin.to_string()),
        name: Some(name.to_string()),
        ..GridConf::default()
    };
    vec![
        ("GLOBAL_GEODETIC", conf(4326, "sw", "GLOBAL_GEODETIC")),
        ("GLOBAL_MERCATOR", conf(900913, "sw", "GLOBAL_MERCATOR")),
        ("GLOBAL_WEBMERCATOR", conf(3857, "nw", "GLOBAL_WEBMERCATOR")),
    ]
}

/// `GLOBAL_GEODETIC`: EPSG:4326, -180,-90,180,90, origin `ll`, 20 levels from 1.40625,
/// factor 2. Level 0 is a single tile (-180,-90,180,270): the world fills its lower half.
/// Level 1 is 2×1 tiles, level n 2^n × 2^(n-1). Since the top edges of level 0 do not meet
/// 90°N, the grid cannot be addressed from an `ul` origin
/// ([`TileGrid::supports_access_with_origin`]).
///
/// Built on each call; keep the result.
pub fn global_geodetic() -> TileGrid {
    builtin("GLOBAL_GEODETIC")
}

/// `GLOBAL_MERCATOR`: EPSG:900913, ±20037508.342789244, origin `ll`, 20 levels from
/// 156543.03392804097, factor 2; level n is 2^n × 2^n tiles. Built on each call.
pub fn global_mercator() -> TileGrid {
    builtin("GLOBAL_MERCATOR")
}

/// `GLOBAL_WEBMERCATOR`: as [`global_mercator`] but EPSG:3857 and origin `ul`.
pub fn global_webmercator() -> TileGrid {
    builtin("GLOBAL_WEBMERCATOR")
}

fn builtin(name: &str) -> TileGrid {
    let mut set = GridSet::new(GridGlobals::default());
    match set.tile_grid(name) {
        Ok(grid) => grid,
        // the built-in confs are constants with default bboxes; this cannot happen
        Err(e) => panic!("built-in grid {name}: {e}"),
    }
}

struct GridEntry {
    name: String,
    conf: GridConf,
    built: Option<TileGrid>,
    building: bool,
}

/// The grids of a configuration: the built-ins, then the user's `grids:` (a user grid with a
/// built-in's name replaces it), built on demand as MapProxy's `GridConfiguration.tile_grid`.
pub struct GridSet {
    globals: GridGlobals,
    entries: Vec<GridEntry>,
}

impl GridSet {
    /// The built-in grids only.
    pub fn new(globals: GridGlobals) -> GridSet {
        let mut set = GridSet {
            globals,
            entries: Vec::new(),
        };
        for (name, conf) in builtin_grid_confs() {
            set.insert(name, conf);
        }
        set
    }

    /// Adds or replaces the grid `name`; its `name` key defaults to `name`.
    pub fn insert(&mut self, name: &str, mut conf: GridConf) {
        if conf.name.is_none() {
            conf.name = Some(name.to_string());
        }
        let entry = GridEntry {
            name: name.to_string(),
            conf,
            built: None,
            building: false,
        };
        match self.entries.iter_mut().find(|e| e.name == name) {
            Some(e) => *e = entry,
            None => self.entries.push(entry),
        }
    }

    /// The names, built-ins first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|e| e.name.as_str())
    }

    /// The grid `name`, built once and then remembered.
    ///
    /// `base: other` starts from `other`'s keys *as they are at that moment* and overrides
    /// them with this grid's. Surprise kept from MapProxy: a grid's keys are replaced by the
    /// merged ones only when it is built, so with a chain `c: {base: b}`, `b: {base: a}`,
    /// `c` inherits from `a` only if `b` was built before `c`; otherwise `b`'s own `base` is
    /// dropped and `c` gets only `b`'s literal keys (e.g. no `srs`, hence EPSG:900913).
    /// `align_resolutions_with` builds the named grid first.
    pub fn tile_grid(&mut self, name: &str) -> Result<TileGrid, GridError> {
        let idx = self
            .index(name)
            .ok_or_else(|| GridError::UnknownGrid(name.to_string()))?;
        if let Some(grid) = &self.entries[idx].built {
            return Ok(grid.clone());
        }
        if self.entries[idx].building {
            return Err(GridError::Cycle(name.to_string()));
        }
        self.entries[idx].building = true;
        let result = self.build(idx);
        self.entries[idx].building = false;
        if let Ok(grid) = &result {
            self.entries[idx].built = Some(grid.clone());
        }
        result
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.entries.iter().position(|e| e.name == name)
    }

    fn build(&mut self, idx: usize) -> Result<TileGrid, GridError> {
        let mut conf = self.entries[idx].conf.clone();
        if let Some(base) = conf.base.clone() {
            let Some(bidx) = self.index(&base) else {
                return Err(GridError::UnknownBase {
                    grid: conf.name.clone().unwrap_or_default(),
                    base,
                });
            };
            conf = conf.over(&self.entries[bidx].conf);
            self.entries[idx].conf = conf.clone();
        }
        let align_with = match conf.align_resolutions_with.clone() {
            Some(other) => Some(self.tile_grid(&other)?),
            None => None,
        };
        let tile_size = conf.tile_size.unwrap_or(self.globals.tile_size);
        conf.tile_size = Some(tile_size);
        self.entries[idx].conf.tile_size = Some(tile_size);
        tile_grid(&conf, align_with.as_ref(), &self.globals)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn python_floordiv() {
        assert_eq!(py_floordiv(1.0, 0.1), 9.0);
        assert_eq!(py_floordiv(-1.0, 0.3), -4.0);
        assert_eq!(py_floordiv(7.0, 2.0), 3.0);
        assert_eq!(py_floordiv(40075016.68557849, 156543.03392804097), 256.0);
    }

    #[test]
    fn python_round() {
        // values printed by CPython 3.11
        assert_eq!(py_round(0.25, 1), 0.2);
        assert_eq!(py_round(2.675, 2), 2.67);
        assert_eq!(py_round(2f64.powi(-13), 12), 0.000122070312);
        assert_eq!(py_round(SQRT_2, 8).to_string(), "1.41421356");
        // exact ties go to the even neighbour, in integers as in the formatting
        for (v, n, want) in [
            (0.125, 2, 0.12),
            (0.375, 2, 0.38),
            (2.5, 0, 2.0),
            (3.5, 0, 4.0),
        ] {
            assert_eq!(py_round_exact(v, n), Some(want));
            assert_eq!(py_round_formatted(v, n), want);
        }
        assert_eq!(py_round(-2.5, 0).to_bits(), (-2.0f64).to_bits());
        assert_eq!(py_round(-1e-20, 12).to_bits(), (-0.0f64).to_bits());
        // the shortcuts (floats spaced wider than 10^-ndigits; the integer rounding) agree
        // with the formatting
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..200_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // magnitudes 1e-16 .. 1e9, both signs, and near powers of two
            let mag = 10f64.powf((x % 25_000) as f64 / 1000.0 - 16.0);
            let v = if x & 1 == 0 { mag } else { -mag };
            let p = 2f64.powi((x >> 20) as i32 % 40);
            for v in [
                v,
                p,
                f64::from_bits(p.to_bits() + 1),
                f64::from_bits(p.to_bits() - 1),
            ] {
                for n in [0, 1, 2, 8, 12, 22] {
                    let (got, want) = (py_round(v, n), py_round_formatted(v, n));
                    assert_eq!(got.to_bits(), want.to_bits(), "{v:e} {n}: {got} {want}");
                }
            }
        }
    }

    #[test]
    fn origins() {
        assert_eq!(Origin::parse("SW"), Ok(Origin::LowerLeft));
        assert_eq!(Origin::parse("nw"), Ok(Origin::UpperLeft));
        assert!(Origin::parse("ur").is_err());
    }

    #[test]
    fn errors_instead_of_python_exceptions() {
        let g = GridGlobals::default();
        let conf = GridConf {
            srs: Some(25832),
            ..GridConf::default()
        };
        assert_eq!(
            tile_grid(&conf, None, &g),
            Err(GridError::NeedBbox { srs: 25832 })
        );
        let conf = GridConf {
            max_res: Some(1.0),
            num_levels: Some(1),
            ..GridConf::default()
        };
        assert!(matches!(
            tile_grid(&conf, None, &g),
            Err(GridError::BadResolutions(_))
        ));
        let conf = GridConf {
            max_res: Some(1.0),
            res_factor: Some(ResFactor::Value(1.0)),
            ..GridConf::default()
        };
        assert!(matches!(
            tile_grid(&conf, None, &g),
            Err(GridError::BadResolutions(_))
        ));
        let conf = GridConf {
            res: Some(vec![Num::Float(1.0)]),
            min_res: Some(Num::Float(0.0)),
            ..GridConf::default()
        };
        assert!(matches!(
            tile_grid(&conf, None, &g),
            Err(GridError::Conflict(_))
        ));
        let grid = global_mercator();
        assert_eq!(
            grid.tile_coord_for_point(f64::NAN, 0.0, 0),
            Err(GridError::NotFinite)
        );
        assert_eq!(
            grid.tile_coord_for_point(0.0, 0.0, 20),
            Err(GridError::NoLevel(20))
        );
        assert_eq!(
            grid.get_affected_level_tiles([10.0, 10.0, 5.0, 5.0], 3),
            Err(GridError::InvalidBbox)
        );
        // tile indexes beyond i64: an error, not an overflow
        let huge = [-1e300, -1e300, 1e300, 1e300];
        assert_eq!(
            grid.get_affected_level_tiles(huge, 19),
            Err(GridError::NotFinite)
        );
        let wide = [-1.5e22, 0.0, 1.5e22, 1.0];
        assert_eq!(
            grid.get_affected_level_tiles(wide, 19),
            Err(GridError::NotFinite)
        );
        assert_eq!(
            grid.flip_tile_coord((0, i64::MIN, 3)),
            Err(GridError::NotFinite)
        );
        let some = grid.get_affected_level_tiles([0.0, 0.0, 1e6, 1e6], 8);
        let sizes = some.map(|a| (a.grid_size, a.tiles.size_hint()));
        assert_eq!(sizes, Ok(((7, 7), (49, Some(49)))));
        let mut set = GridSet::new(GridGlobals::default());
        set.insert(
            "a",
            GridConf {
                align_resolutions_with: Some("a".into()),
                ..GridConf::default()
            },
        );
        assert_eq!(set.tile_grid("a"), Err(GridError::Cycle("a".into())));
    }
}
