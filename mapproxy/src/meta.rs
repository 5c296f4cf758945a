//! Meta tiles (MapProxy's `mapproxy/grid/meta_grid.py`): one source request covers a block of
//! `meta_size` tiles plus a `meta_buffer` of pixels around it; the image is then cut into the
//! tiles.
//!
//! Behaviour kept from MapProxy:
//! - the block is `meta_size` tiles, but never more than the level has (level 0 of
//!   `GLOBAL_MERCATOR` is one 1×1 meta tile);
//! - the buffer is clipped at the grid's bbox, and the clipped pixels are taken off the tile
//!   offsets; a level whose tiles reach past the grid bbox (level 0 of `GLOBAL_GEODETIC`:
//!   one tile of -180,-90,180,270) gets a negative offset (the tile's upper half lies outside
//!   the requested image);
//! - positions outside the grid (a block at the right or top edge) are listed as `None` with
//!   their offsets, and are not cut out or stored;
//! - tiles are listed row by row starting with the top row, left to right.

use crate::grid::{Bbox, GridError, Origin, TileCoord, TileGrid};

/// The default `meta_size` (MapProxy's `cache.meta_size`).
pub const DEFAULT_META_SIZE: (u32, u32) = (4, 4);
/// The default `meta_buffer` in pixels (MapProxy's `cache.meta_buffer`).
pub const DEFAULT_META_BUFFER: u32 = 80;

/// A grid's meta tiles: the grid, the meta size (columns × rows) and the buffer in pixels.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaGrid {
    grid: TileGrid,
    meta_size: (u32, u32),
    meta_buffer: u32,
}

/// One meta tile: the request to make and where each tile lies in its image.
#[derive(Debug, Clone, PartialEq)]
pub struct MetaTile {
    /// The bbox to request: the tiles plus the buffer, clipped at the grid bbox.
    pub bbox: Bbox,
    /// The pixel size to request (width, height).
    pub size: (u32, u32),
    /// Tiles across and down.
    pub grid_size: (u32, u32),
    /// Each position, row by row from the top: the tile (`None` outside the grid) and the
    /// pixel offset of its upper-left corner in the meta image (may be negative).
    pub tiles: Vec<(Option<TileCoord>, (i64, i64))>,
}

impl MetaTile {
    /// The first tile that exists (MapProxy's `main_tile_coord`; locks are named after its
    /// meta tile's origin, see [`MetaGrid::main_tile`]).
    pub fn main_tile_coord(&self) -> Option<TileCoord> {
        self.tiles.iter().find_map(|(t, _)| *t)
    }

    /// The tiles that exist.
    pub fn coords(&self) -> impl Iterator<Item = TileCoord> + '_ {
        self.tiles.iter().filter_map(|(t, _)| *t)
    }
}

impl MetaGrid {
    /// `meta_size` columns × rows (each at least 1) and a buffer in pixels.
    pub fn new(grid: TileGrid, meta_size: (u32, u32), meta_buffer: u32) -> MetaGrid {
        MetaGrid {
            grid,
            meta_size: (meta_size.0.max(1), meta_size.1.max(1)),
            meta_buffer,
        }
    }

    pub fn grid(&self) -> &TileGrid {
        &self.grid
    }

    pub fn meta_size(&self) -> (u32, u32) {
        self.meta_size
    }

    pub fn meta_buffer(&self) -> u32 {
        self.meta_buffer
    }

    /// The meta size at `level`: at most the level's columns and rows.
    pub fn level_meta_size(&self, level: usize) -> Result<(i64, i64), GridError> {
        let (cols, rows) = *self
            .grid
            .grid_sizes()
            .get(level)
            .ok_or(GridError::NoLevel(level))?;
        Ok((
            i64::from(self.meta_size.0).min(cols),
            i64::from(self.meta_size.1).min(rows),
        ))
    }

    /// The first tile of the meta tile that holds `coord` (x and y rounded down to multiples
    /// of the meta size): what the meta tile and its lock are named after.
    pub fn main_tile(&self, (x, y, z): TileCoord) -> Result<TileCoord, GridError> {
        let (mx, my) = self.level_meta_size(z)?;
        Ok((x.div_euclid(mx) * mx, y.div_euclid(my) * my, z))
    }

    /// The meta tile that holds `coord`.
    pub fn meta_tile(&self, coord: TileCoord) -> Result<MetaTile, GridError> {
        let (x0, y0, z) = self.main_tile(coord)?;
        let (mx, my) = self.level_meta_size(z)?;
        let (cols, rows) = self.grid.grid_sizes()[z];
        let last = (x0 + mx - 1, y0 + my - 1, z);
        let bbox = self.grid.tiles_bbox((x0, y0, z), last)?;
        let (bbox, buffers) = self.buffered_bbox(bbox, z)?;
        let size = self.size_of(bbox, z)?;
        let xs: Vec<i64> = (x0..x0 + mx).collect();
        let tiles = self.pattern(&xs, &self.rows(y0, y0 + my - 1), z, (cols, rows), buffers);
        Ok(MetaTile {
            bbox,
            size,
            grid_size: (to_u32(mx)?, to_u32(my)?),
            tiles,
        })
    }

    /// The smallest meta tile holding all of `tiles` (of one level) plus the buffer
    /// (MapProxy's `minimal_meta_tile`, used with `minimize_meta_requests` when several tiles
    /// are asked for at once). `None` for an empty list.
    pub fn minimal_meta_tile(&self, tiles: &[TileCoord]) -> Result<Option<MetaTile>, GridError> {
        let Some(&(fx, fy, z)) = tiles.last() else {
            return Ok(None);
        };
        let (mut minx, mut maxx, mut miny, mut maxy) = (fx, fx, fy, fy);
        for &(x, y, _) in tiles {
            minx = minx.min(x);
            maxx = maxx.max(x);
            miny = miny.min(y);
            maxy = maxy.max(y);
        }
        let bbox = self.grid.tiles_bbox((minx, miny, z), (maxx, maxy, z))?;
        let (bbox, buffers) = self.buffered_bbox(bbox, z)?;
        let size = self.size_of(bbox, z)?;
        let xs: Vec<i64> = (minx..=maxx).collect();
        // MapProxy limits these to the block itself: only negative positions are None
        let limit = (maxx.saturating_add(1), maxy.saturating_add(1));
        let pattern = self.pattern(&xs, &self.rows(miny, maxy), z, limit, buffers);
        Ok(Some(MetaTile {
            bbox,
            size,
            grid_size: (to_u32(maxx - minx + 1)?, to_u32(maxy - miny + 1)?),
            tiles: pattern,
        }))
    }

    /// Row numbers from the top row down.
    fn rows(&self, miny: i64, maxy: i64) -> Vec<i64> {
        match self.grid.origin() {
            Origin::UpperLeft => (miny..=maxy).collect(),
            Origin::LowerLeft => (miny..=maxy).rev().collect(),
        }
    }

    fn pattern(
        &self,
        xs: &[i64],
        ys: &[i64],
        z: usize,
        (cols, rows): (i64, i64),
        buffers: [i64; 4],
    ) -> Vec<(Option<TileCoord>, (i64, i64))> {
        let (tw, th) = self.grid.tile_size();
        let mut out = Vec::with_capacity(xs.len() * ys.len());
        for (i, &y) in ys.iter().enumerate() {
            for (j, &x) in xs.iter().enumerate() {
                let tile = (x >= 0 && y >= 0 && x < cols && y < rows).then_some((x, y, z));
                let off = (
                    j as i64 * i64::from(tw) + buffers[0],
                    i as i64 * i64::from(th) + buffers[3],
                );
                out.push((tile, off));
            }
        }
        out
    }

    /// The bbox grown by the buffer and clipped at the grid bbox; the buffer left on each
    /// side (minx, miny, maxx, maxy) in pixels.
    fn buffered_bbox(&self, bbox: Bbox, level: usize) -> Result<(Bbox, [i64; 4]), GridError> {
        let [mut minx, mut miny, mut maxx, mut maxy] = bbox;
        let mut buffers = [0i64; 4];
        if self.meta_buffer > 0 {
            let res = self.grid.resolution(level)?;
            let b = f64::from(self.meta_buffer);
            minx -= b * res;
            miny -= b * res;
            maxx += b * res;
            maxy += b * res;
            buffers = [i64::from(self.meta_buffer); 4];
            let g = self.grid.bbox();
            // the pixels cut off: int(round(delta / res, 5)) as MapProxy
            let cut = |delta: f64| -> i64 {
                let v = ((delta / res) * 1e5).round_ties_even() / 1e5;
                v.trunc() as i64
            };
            if g[0] > minx {
                buffers[0] -= cut(g[0] - minx);
                minx = g[0];
            }
            if g[1] > miny {
                buffers[1] -= cut(g[1] - miny);
                miny = g[1];
            }
            if g[2] < maxx {
                buffers[2] -= cut(maxx - g[2]);
                maxx = g[2];
            }
            if g[3] < maxy {
                buffers[3] -= cut(maxy - g[3]);
                maxy = g[3];
            }
        }
        Ok(([minx, miny, maxx, maxy], buffers))
    }

    /// The pixel size of a (buffered) bbox: the buffer can be clipped, so not
    /// `meta_size * tile_size + 2 * buffer`.
    fn size_of(&self, bbox: Bbox, level: usize) -> Result<(u32, u32), GridError> {
        let res = self.grid.resolution(level)?;
        let w = ((bbox[2] - bbox[0]) / res).round_ties_even();
        let h = ((bbox[3] - bbox[1]) / res).round_ties_even();
        let px = |v: f64| -> Result<u32, GridError> {
            if v.is_finite() && (0.0..=f64::from(u32::MAX)).contains(&v) {
                Ok(v as u32)
            } else {
                Err(GridError::NotFinite)
            }
        };
        Ok((px(w)?, px(h)?))
    }
}

fn to_u32(v: i64) -> Result<u32, GridError> {
    u32::try_from(v).map_err(|_| GridError::NotFinite)
}
