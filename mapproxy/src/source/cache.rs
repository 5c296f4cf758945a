//! A cache as the source of another cache (MapProxy's `source/tile.py` `CacheSource`, chosen
//! in `config/configuration/cache.py` `_sources_for_grid`).
//!
//! - **Tiled only** (`tiled_only`): when every source of the cache is a cache of one grid
//!   whose tiles are those of the cache's grid ([`is_subset_of`], MapProxy's
//!   `TileGrid.is_subset_of`) in the cache's format (`supports_tiled_only_access`), each
//!   tile is the other cache's tile as stored, one tile per request, no meta tiles.
//! - **Otherwise** the other cache draws the asked map, as a WMS GetMap of it would
//!   (`CacheMapLayer.get_map`: the covering tiles of the closest level, stitched and
//!   transformed, reprojected when the grids' SRSs differ; the part outside its grid stays
//!   transparent), through the WMS's own path ([`crate::service::wms::cache_map`]).

use futures_util::future::BoxFuture;

use super::{MapQuery, MapSource, SourceError, SourceImage};
use crate::grid::{get_resolution, Bbox, TileGrid};
use crate::image::transform::Resampling;
use crate::image::{encode, ImageFormat, ImageOpts, RgbaImage};
use crate::service::wms::CacheLayer;
use crate::srs::Srs;
use crate::tile::TileError;

/// Another cache, asked for maps (or, tiled only, for its tiles).
pub struct CacheSource {
    layer: CacheLayer,
    tiled_only: bool,
    resampling: Resampling,
}

impl CacheSource {
    /// The cache `layer` (its grids) drawing maps with `resampling`.
    pub fn new(layer: CacheLayer, resampling: Resampling) -> CacheSource {
        CacheSource {
            layer,
            tiled_only: false,
            resampling,
        }
    }

    /// The cache `layer` (one grid) giving its tiles as stored.
    pub fn tiled_only(layer: CacheLayer) -> CacheSource {
        CacheSource {
            layer,
            tiled_only: true,
            resampling: Resampling::Nearest,
        }
    }

    async fn tile(&self, query: &MapQuery) -> Result<SourceImage, SourceError> {
        let Some(g) = self.layer.grids.first() else {
            return blank();
        };
        let grid = &g.grid;
        let res = get_resolution(query.bbox, query.size);
        let level = grid.closest_level(res);
        let affected = grid
            .get_affected_level_tiles(query.bbox, level)
            .map_err(|e| SourceError::new(format!("Request too large or invalid BBOX. ({e})")))?;
        if affected.grid_size != (1, 1) {
            return Err(SourceError::new(
                "Request too large or invalid BBOX. (not a single tile)",
            ));
        }
        let Some(Some(coord)) = affected.tiles.clone().next() else {
            return blank();
        };
        match g.manager.load_tile(coord).await {
            Ok(t) => Ok(SourceImage::new(t.data, Some(t.format))),
            Err(TileError::OutOfRange | TileError::Missing) => blank(),
            Err(e) => Err(SourceError::new(e.to_string())),
        }
    }

    async fn map(&self, query: &MapQuery) -> Result<SourceImage, SourceError> {
        let srs = Srs::get(&format!("EPSG:{}", query.srs))
            .map_err(|e| SourceError::new(e.to_string()))?;
        let img = crate::service::wms::cache_map(
            &self.layer,
            query.bbox,
            query.size,
            srs,
            self.resampling,
        )
        .await
        .map_err(SourceError::new)?;
        match img {
            Some(img) => drawn(&img),
            None => blank(),
        }
    }
}

/// MapProxy's `BlankImageError` (`CacheMapLayer._image` with no tiles,
/// layer/cache_map_layer.py): nothing there; the cache it fills makes no tile and stores
/// nothing (cache/tile_creator.py:129-138), a merge leaves it out.
fn blank() -> Result<SourceImage, SourceError> {
    Err(SourceError::blank("the source cache has no tile here"))
}

fn drawn(img: &RgbaImage) -> Result<SourceImage, SourceError> {
    let mut opts = ImageOpts::new(ImageFormat::png());
    opts.transparent = true;
    opts.paletted = false;
    let data = encode(img, &opts)
        .map_err(|e| SourceError::new(format!("cannot encode the cache's image: {e}")))?;
    Ok(SourceImage::drawn_png(data))
}

impl MapSource for CacheSource {
    fn get_map<'a>(
        &'a self,
        query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        Box::pin(async move {
            if self.tiled_only {
                self.tile(query).await
            } else {
                self.map(query).await
            }
        })
    }
}

/// MapProxy's `bbox_equals` with its default precision (a millionth of the width).
fn bbox_equals(a: Bbox, b: Bbox) -> bool {
    let d = (a[0] - a[2]).abs() / 1_000_000.0;
    (a[0] - b[0]).abs() < d
        && (a[1] - b[1]).abs() < d
        && (a[2] - b[2]).abs() < d
        && (a[3] - b[3]).abs() < d
}

/// MapProxy's `TileGrid.is_subset_of` (grid/tile_grid.py:556-594): every tile of `grid` is a
/// tile of `other` (same SRS and tile size; each level's tiles line up with a level of `other`
/// of the same resolution; `other` may have more levels or a larger bbox).
pub fn is_subset_of(grid: &TileGrid, other: &TileGrid) -> bool {
    if grid.srs() != other.srs() || grid.tile_size() != other.tile_size() {
        return false;
    }
    let Ok(res0) = other.resolution(0) else {
        return false;
    };
    for (level, &res) in grid.resolutions().iter().enumerate() {
        let Some(&(cols, rows)) = grid.grid_sizes().get(level) else {
            return false;
        };
        let Ok(level_bbox) = grid.tiles_bbox((0, 0, level), (cols - 1, rows - 1, level)) else {
            return false;
        };
        // get_affected_bbox_and_level for the level's size in pixels: its resolution is `res`
        if !crate::grid::bbox_intersects(other.bbox(), level_bbox)
            || res > res0 * other.max_shrink_factor()
        {
            return false;
        }
        let other_level = other.closest_level(res);
        let Ok(affected) = other.get_affected_level_tiles(level_bbox, other_level) else {
            return false;
        };
        if other.resolution(other_level).ok() != Some(res) {
            return false;
        }
        if !bbox_equals(affected.bbox, level_bbox) {
            return false;
        }
    }
    true
}

/// Whether the tiles of `grid` in `format` can be the cache's own tiles: one grid, of which
/// `grid` is a subset, in `format` (MapProxy's `supports_tiled_only_access`).
pub fn supports_tiled_only_access(
    layer: &CacheLayer,
    grid: &TileGrid,
    format: &ImageFormat,
) -> bool {
    match layer.grids.as_slice() {
        [one] => is_subset_of(grid, &one.grid) && one.manager.image_opts().format == *format,
        _ => false,
    }
}

/// The source of a cache without sources (`sources: []`, MapProxy's `DummySource`): its tile
/// manager never asks it ([`crate::tile_manager::TileManager::without_sources`]); asked
/// anyway, it has nothing ([`SourceError::blank`]).
pub struct NoSource;

impl MapSource for NoSource {
    fn get_map<'a>(
        &'a self,
        query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        // MapProxy's DummySource: BlankImageError
        Box::pin(async move {
            let _ = query;
            blank()
        })
    }
}
