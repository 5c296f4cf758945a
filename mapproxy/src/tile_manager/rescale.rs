//! Caches without sources (`sources: []`, MapProxy's `DummySource`) and their
//! `upscale_tiles`/`downscale_tiles` (cache/tile_manager.py `load_tile_coords`,
//! `_load_tile_coords`, `_scaled_tile`).
//!
//! A missing tile of such a cache is never made: it is answered blank (transparent) and not
//! stored. With `upscale_tiles: n` it is drawn from the tiles of the levels above it (coarser,
//! down to level `z - n`, scaled up), with `downscale_tiles: n` from the levels below it
//! (finer, up to `z + n`, scaled down): the next level's tiles covering it are read from the
//! cache, each missing one drawn the same way from the level after, down to the last level;
//! they are stitched and transformed (cropped and resized with the cache's resampling) into the
//! tile. Nothing found on any of those levels: blank. A drawn tile is stored only with
//! `cache_rescaled_tiles: true`.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use super::{cache_error, Inner};
use crate::grid::TileCoord;
use crate::image::transform::{transform, Resampling, Warp};
use crate::image::{decode, encode, RgbaImage};
use crate::srs::Srs;
use crate::tile::{TileData, TileError};

/// `upscale_tiles`/`downscale_tiles` of a cache without sources.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rescale {
    /// Levels to look through: negative for upscaling (MapProxy's `rescale_tiles =
    /// -upscale_tiles`), positive for downscaling, 0 for none.
    pub levels: i64,
    /// `cache_rescaled_tiles`: store the drawn tiles.
    pub store: bool,
    pub resampling: Resampling,
}

/// Drawn tiles of one request by coordinate (`None`: looked for, nothing found), so a tile is
/// looked for once (MapProxy's `rescaled_tiles`).
type Drawn = HashMap<TileCoord, Option<Arc<RgbaImage>>>;

impl Inner {
    /// A tile of a cache without sources that is not stored.
    pub(super) async fn missing_without_sources(
        &self,
        coord: TileCoord,
    ) -> Result<TileData, TileError> {
        let opts = &self.image_opts;
        if let Some(r) = self.rescale.filter(|r| r.levels != 0) {
            let levels = i64::try_from(self.grid.levels()).unwrap_or(i64::MAX);
            let z = i64::try_from(coord.2).unwrap_or(i64::MAX);
            let stop = z.saturating_add(r.levels).clamp(0, levels);
            let mut drawn = Drawn::new();
            if let Some(img) = self.scaled(coord, stop, r.resampling, &mut drawn).await? {
                let data = encode(&img, opts).map_err(cache_error)?;
                let mut mtime = None;
                if r.store {
                    let d = data.clone();
                    mtime = self.cache_call(move |c| c.store(coord, &d)).await?;
                }
                return Ok(TileData {
                    data,
                    format: opts.format.clone(),
                    mtime,
                    drawn: None,
                });
            }
        }
        // nothing to scale from: no tile (MapProxy's RESCALE_TILE_MISSING: the empty tile)
        Err(TileError::Missing)
    }

    /// `_scaled_tile`: the tile drawn from the next level towards `stop`, `None` when nothing
    /// is there.
    fn scaled<'a>(
        &'a self,
        coord: TileCoord,
        stop: i64,
        resampling: Resampling,
        drawn: &'a mut Drawn,
    ) -> BoxFuture<'a, Result<Option<Arc<RgbaImage>>, TileError>> {
        Box::pin(async move {
            if let Some(d) = drawn.get(&coord) {
                return Ok(d.clone());
            }
            drawn.insert(coord, None);
            let z = i64::try_from(coord.2).unwrap_or(i64::MAX);
            if stop == z {
                return Ok(None);
            }
            let src_level = if stop > z { z + 1 } else { z - 1 };
            let Ok(src_level) = usize::try_from(src_level) else {
                return Ok(None);
            };
            if src_level >= self.grid.levels() {
                return Ok(None);
            }
            let grid = &self.grid;
            let tile_bbox = grid.tile_bbox(coord, false).map_err(cache_error)?;
            let affected = grid
                .get_affected_level_tiles(tile_bbox, src_level)
                .map_err(cache_error)?;
            let coords: Vec<Option<TileCoord>> = affected.tiles.clone().collect();
            let mut parts: Vec<Option<Arc<RgbaImage>>> = Vec::with_capacity(coords.len());
            for c in coords {
                let Some(c) = c else {
                    parts.push(None);
                    continue;
                };
                if let Some(d) = drawn.get(&c) {
                    parts.push(d.clone());
                    continue;
                }
                let part = match self.load(c).await? {
                    Some(t) => Some(Arc::new(decode(&t.data).map_err(cache_error)?)),
                    None => self.scaled(c, stop, resampling, drawn).await?,
                };
                parts.push(part);
            }
            if parts.iter().all(Option::is_none) {
                return Ok(None);
            }
            let (tw, th) = grid.tile_size();
            let (cols, rows) = affected.grid_size;
            let cols = u32::try_from(cols).map_err(cache_error)?;
            let rows = u32::try_from(rows).map_err(cache_error)?;
            let mut stitched = RgbaImage::new(cols.saturating_mul(tw), rows.saturating_mul(th));
            for (i, part) in parts.iter().enumerate() {
                let Some(part) = part else { continue };
                let i = u32::try_from(i).map_err(cache_error)?;
                crate::image::paste(&mut stitched, part, (i % cols) * tw, (i / cols) * th);
            }
            let srs = Srs::get(&format!("EPSG:{}", grid.srs())).map_err(cache_error)?;
            let warp = Warp {
                src_bbox: affected.bbox,
                src_srs: &srs,
                dst_size: (tw, th),
                dst_bbox: tile_bbox,
                dst_srs: &srs,
                resampling,
            };
            let img = Arc::new(transform(&stitched, &warp));
            drawn.insert(coord, Some(img.clone()));
            Ok(Some(img))
        })
    }
}
