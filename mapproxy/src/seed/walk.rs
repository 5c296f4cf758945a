//! Which meta tiles a task covers, in a fixed order (MapProxy's `TileWalker`, without its
//! depth-first pyramid: each level is walked on its own).
//!
//! A level's meta tiles within the coverage's bbox form a rectangle of meta tile indices; it is
//! split in halves (along its longer side) until a part lies wholly inside the coverage (all
//! its meta tiles are taken without further tests), wholly outside (dropped), or is one meta
//! tile that intersects the coverage. So a sparse coverage at a deep level costs tests in
//! proportion to its outline, not to the level's size. The order is deterministic: it depends
//! only on the grid, the meta size and the coverage, which `--continue` and `--nodes` rely on.

use std::ops::ControlFlow;

use super::coverage::Coverage;
use crate::grid::{Bbox, TileCoord, TileGrid};
use crate::meta::MetaGrid;

/// Where a task works.
#[derive(Debug, Clone)]
pub enum Area {
    /// The whole grid (no `coverages:`).
    Grid,
    /// A coverage, in the grid's SRS.
    Coverage(Coverage),
    /// A coverage without polygons: nothing to do.
    Empty,
}

/// One meta tile to work on: its main (first) tile and how many tiles of the grid it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub main: TileCoord,
    pub tiles: u64,
}

/// The node (of `nodes`) that works on the meta tile whose main tile is `main`: a hash of
/// the coordinate, so that every meta tile has exactly one node, independent of the order of
/// the walk, of the coverage and of the other tasks (two seed.yaml with overlapping
/// coverages still give one meta tile to one node).
pub fn node_of(main: TileCoord, nodes: u32) -> u32 {
    if nodes <= 1 {
        return 0;
    }
    // splitmix64's finaliser over the three coordinates: cheap and well mixed, so meta tiles
    // spread evenly over nodes whatever the shape of the coverage
    let mut h = (main.0 as u64)
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add((main.1 as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F))
        .wrapping_add((main.2 as u64).wrapping_mul(0x1656_67B1_9E37_79F9));
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    (h % u64::from(nodes)) as u32
}

/// Walks the meta tiles of `level` that `area` touches, calling `f` for each in order.
pub fn walk_level(
    meta: &MetaGrid,
    area: &Area,
    level: usize,
    f: &mut dyn FnMut(Cell) -> ControlFlow<()>,
) -> ControlFlow<()> {
    let grid = meta.grid();
    let gb = grid.bbox();
    let bbox = match area {
        Area::Empty => return ControlFlow::Continue(()),
        Area::Grid => gb,
        Area::Coverage(c) => c.bbox(),
    };
    let clipped = [
        bbox[0].max(gb[0]),
        bbox[1].max(gb[1]),
        bbox[2].min(gb[2]),
        bbox[3].min(gb[3]),
    ];
    if !(clipped[0] < clipped[2] && clipped[1] < clipped[3]) {
        return ControlFlow::Continue(());
    }
    let Some(&(cols, rows)) = grid.grid_sizes().get(level) else {
        return ControlFlow::Continue(());
    };
    let Ok((mx, my)) = meta.level_meta_size(level) else {
        return ControlFlow::Continue(());
    };
    let Ok(res) = grid.resolution(level) else {
        return ControlFlow::Continue(());
    };
    // as get_affected_level_tiles: a tenth of a pixel in from each side
    let d = res / 10.0;
    let (Ok(a), Ok(b)) = (
        grid.tile_coord_for_point(clipped[0] + d, clipped[1] + d, level),
        grid.tile_coord_for_point(clipped[2] - d, clipped[3] - d, level),
    ) else {
        return ControlFlow::Continue(());
    };
    let x0 = a.0.min(b.0).clamp(0, cols - 1);
    let x1 = a.0.max(b.0).clamp(0, cols - 1);
    let y0 = a.1.min(b.1).clamp(0, rows - 1);
    let y1 = a.1.max(b.1).clamp(0, rows - 1);
    let w = Walker {
        grid,
        area,
        level,
        cols,
        rows,
        mx,
        my,
    };
    w.rect(
        (x0.div_euclid(mx), y0.div_euclid(my)),
        (x1.div_euclid(mx), y1.div_euclid(my)),
        false,
        f,
    )
}

struct Walker<'a> {
    grid: &'a TileGrid,
    area: &'a Area,
    level: usize,
    cols: i64,
    rows: i64,
    mx: i64,
    my: i64,
}

impl Walker<'_> {
    /// The bbox of meta tiles `a..=b` (indices), clipped to the grid.
    fn bbox(&self, a: (i64, i64), b: (i64, i64)) -> Option<Bbox> {
        let first = (a.0 * self.mx, a.1 * self.my, self.level);
        let last = (
            ((b.0 + 1) * self.mx - 1).min(self.cols - 1),
            ((b.1 + 1) * self.my - 1).min(self.rows - 1),
            self.level,
        );
        let bb = self.grid.tiles_bbox(first, last).ok()?;
        let gb = self.grid.bbox();
        Some([
            bb[0].max(gb[0]),
            bb[1].max(gb[1]),
            bb[2].min(gb[2]),
            bb[3].min(gb[3]),
        ])
    }

    fn cell(&self, i: i64, j: i64) -> Cell {
        let x = i * self.mx;
        let y = j * self.my;
        let w = (x + self.mx).min(self.cols) - x;
        let h = (y + self.my).min(self.rows) - y;
        Cell {
            main: (x, y, self.level),
            tiles: (w.max(0) * h.max(0)) as u64,
        }
    }

    fn rect(
        &self,
        a: (i64, i64),
        b: (i64, i64),
        inside: bool,
        f: &mut dyn FnMut(Cell) -> ControlFlow<()>,
    ) -> ControlFlow<()> {
        let mut inside = inside;
        if !inside {
            if let Area::Coverage(c) = self.area {
                let Some(bb) = self.bbox(a, b) else {
                    return ControlFlow::Continue(());
                };
                if !c.intersects(bb) {
                    return ControlFlow::Continue(());
                }
                inside = c.contains(bb);
            } else {
                inside = true;
            }
        }
        if inside || (a == b) {
            for j in a.1..=b.1 {
                for i in a.0..=b.0 {
                    f(self.cell(i, j))?;
                }
            }
            return ControlFlow::Continue(());
        }
        if b.0 - a.0 >= b.1 - a.1 {
            let mid = a.0 + (b.0 - a.0) / 2;
            self.rect(a, (mid, b.1), false, f)?;
            self.rect((mid + 1, a.1), b, false, f)
        } else {
            let mid = a.1 + (b.1 - a.1) / 2;
            self.rect(a, (b.0, mid), false, f)?;
            self.rect((a.0, mid + 1), b, false, f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seed::coverage::Shape;
    use crate::srs::Srs;

    fn cells(meta: &MetaGrid, area: &Area, level: usize) -> Vec<Cell> {
        let mut out = Vec::new();
        let _ = walk_level(meta, area, level, &mut |c| {
            out.push(c);
            ControlFlow::Continue(())
        });
        out
    }

    #[test]
    fn whole_grid_and_coverage_counts() {
        let grid = crate::grid::global_webmercator();
        let meta = MetaGrid::new(grid.clone(), (4, 4), 0);
        // level 3: 8x8 tiles, 2x2 meta tiles of 16
        let all = cells(&meta, &Area::Grid, 3);
        assert_eq!(all.len(), 4);
        assert_eq!(all.iter().map(|c| c.tiles).sum::<u64>(), 64);
        // level 1: 2x2 tiles: one meta tile of 4 tiles
        assert_eq!(
            cells(&meta, &Area::Grid, 1),
            vec![Cell {
                main: (0, 0, 1),
                tiles: 4
            }]
        );
        // a polygon in one quarter of the world, not on tile edges
        let merc = Srs::get("EPSG:3857").unwrap();
        let h = crate::grid::MERCATOR_HALF_EXTENT;
        let poly = geo::Rect::new((h * 0.1, h * 0.1), (h * 0.3, h * 0.2)).to_polygon();
        let cov = Coverage::new(Shape::Polygons(vec![poly]), merc).unwrap();
        let area = Area::Coverage(cov);
        // level 6: 64x64 tiles of width h/32: x from 3.2 to 9.6 tiles right of the centre
        // → columns 35..41, rows (from the top) 32-6.4=25.6 .. 32-3.2=28.8 → 25..28
        let c = cells(&meta, &area, 6);
        let mut tiles = std::collections::BTreeSet::new();
        for cell in &c {
            for dx in 0..4 {
                for dy in 0..4 {
                    let (x, y) = (cell.main.0 + dx, cell.main.1 + dy);
                    if (35..=41).contains(&x) && (25..=28).contains(&y) {
                        tiles.insert((x, y));
                    }
                }
            }
        }
        assert_eq!(tiles.len(), 7 * 4);
        // meta columns 8..10, meta rows 6..7
        assert_eq!(c.len(), 3 * 2, "{c:?}");
    }

    #[test]
    fn nodes_split_without_overlap() {
        let mut counts = [0u32; 3];
        for x in 0..100 {
            for y in 0..100 {
                counts[node_of((x * 4, y * 4, 9), 3) as usize] += 1;
            }
        }
        assert_eq!(counts.iter().sum::<u32>(), 10_000);
        assert!(
            counts.iter().all(|&c| (3000..3700).contains(&c)),
            "{counts:?}"
        );
    }
}
