//! The tile path of one cache in one grid (MapProxy's `cache/tile_manager.py` `TileManager`
//! and `cache/tile_creator.py` `TileCreator`): a tile is read from the cache; a missing one
//! is made by requesting its whole meta tile from the source, cutting that image into tiles,
//! storing them all and answering the one asked for.
//!
//! - **Single flight in the process**: concurrent misses of tiles of one meta tile share one
//!   creation (keyed by the meta tile's main tile in this manager, i.e. this cache and grid);
//!   the creation runs in its own task, so a client that goes away does not cancel it.
//! - **Across processes**: the creation holds the meta tile's lock ([`crate::lock`]: the local
//!   lock file, or for a Redis cache a Redis key shared by instances on several machines) and
//!   looks at the cache again once it has it, as MapProxy does: a second process that waited
//!   for the lock finds the tiles stored and requests nothing. A waiter on a Redis lock also
//!   looks into the cache while it waits (its holder may have been killed after storing).
//! - **`concurrent_tile_creators`** is MapProxy's limit per client request (how many meta
//!   tiles one request, a WMS GetMap, makes at once), not per cache: the manager keeps it for
//!   such callers ([`TileManager::concurrent_tile_creators`]); each tile request makes one
//!   meta tile. The limit on a WMS host's parallel requests is `concurrent_requests` (`lock/requests.rs`).
//! - **No meta tiling** (`meta_size` 1×1 and no buffer, as MapProxy for tile sources): the
//!   source's bytes are stored as they came when their format is the cache's, else decoded
//!   and encoded with the cache's image options.
//! - A source error stores nothing and is answered as [`TileError::Source`] with MapProxy's
//!   text; an `on_error` image is stored only when the source marked it cacheable.
//! - **Cache only**: when the only source is a [`crate::source::DummySource`] (a `seed_only`
//!   source when not seeding), a missing tile is [`TileError::Missing`]: nothing is asked,
//!   made or stored (MapProxy's `cache_only`, `cache/tile_manager.py:164-166`).
//! - **`minimize_meta_requests`**: several missing tiles asked for at once (a WMS GetMap,
//!   [`TileManager::create_minimal`]) are made by one request for the smallest block of tiles
//!   holding them all plus the buffer, under the lock of its first tile's meta tile, never for
//!   a single tile (MapProxy's `TileCreator.create_tiles`, `cache/tile_creator.py:48-69`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::{BoxFuture, FutureExt, Shared};

use crate::cache::{QuickLoad, TileCache};
use crate::grid::{TileCoord, TileGrid};
use crate::image::{
    decode, encode_indexed, encode_mode, ImageFormat, ImageMode, ImageOpts, Indexed, RgbaImage,
};
use crate::lock::{lock_or_wait, MetaTileLocks, Waited};
use crate::meta::{MetaGrid, MetaTile};
use crate::source::{MapQuery, MapSource};
use crate::tile::Drawn;
use crate::tile::{TileData, TileError, TileProvider};

mod rescale;
pub use rescale::Rescale;

/// Meta tiling of a cache (MapProxy's `meta_size`, `meta_buffer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaSettings {
    pub meta_size: (u32, u32),
    pub meta_buffer: u32,
}

impl MetaSettings {
    /// No meta tiling: one source request per tile (tile sources).
    pub const NONE: MetaSettings = MetaSettings {
        meta_size: (1, 1),
        meta_buffer: 0,
    };

    /// MapProxy's defaults: 4×4 tiles, 80 pixels.
    pub const DEFAULT: MetaSettings = MetaSettings {
        meta_size: crate::meta::DEFAULT_META_SIZE,
        meta_buffer: crate::meta::DEFAULT_META_BUFFER,
    };

    fn is_none(&self) -> bool {
        self.meta_buffer == 0 && self.meta_size.0 <= 1 && self.meta_size.1 <= 1
    }
}

/// A made tile: its bytes, and whether it was stored.
#[derive(Debug, Clone)]
struct Made {
    data: Bytes,
    format: ImageFormat,
    stored: bool,
    /// The stored tile's time as a cache load reports it, when the store told it.
    mtime: Option<SystemTime>,
    /// Read from the cache after the lock was held (another request or process made it).
    found: bool,
    /// The tile before encoding (see [`crate::tile::Drawn`]), when cropped from a meta tile.
    drawn: Option<Arc<Drawn>>,
}

/// Tiles by coordinate, hashed with foldhash (std's SipHash was 2% of a tile miss's
/// instructions), seeded per process: the coordinates come from requests.
type CoordMap<V> = HashMap<TileCoord, V, foldhash::fast::RandomState>;

type Created = Arc<CoordMap<Made>>;
type Creation = Shared<BoxFuture<'static, Result<Created, TileError>>>;

/// Gives the tiles of one cache in one grid, making missing ones from one source.
pub struct TileManager {
    inner: Arc<Inner>,
}

struct Inner {
    cache: Arc<dyn TileCache>,
    source: Arc<dyn MapSource>,
    grid: TileGrid,
    meta: MetaGrid,
    metatiling: bool,
    image_opts: ImageOpts,
    request_format: ImageFormat,
    locker: Arc<dyn MetaTileLocks>,
    concurrent_tile_creators: usize,
    /// The only source is a dummy: missing tiles stay missing.
    cache_only: bool,
    /// MapProxy's `minimize_meta_requests` (cache, else `globals.cache`).
    /// The cache's `refresh_before`: tiles stored before it are made again.
    refresh_before: Option<crate::config::before::Before>,
    minimize_meta_requests: bool,
    in_flight: Mutex<CoordMap<Creation>>,
    /// A cache without sources (`sources: []`): missing tiles are not made (see [`rescale`]).
    without_sources: bool,
    rescale: Option<Rescale>,
    /// Drawn on the tiles made, before they are stored (MapProxy's `pre_store_filter`).
    watermark: Option<Arc<crate::image::watermark::Watermark>>,
    /// The cache's `coverage` (MapProxy's `cache.coverage`): tiles outside are not made.
    /// The cache's coverage and the grid's SRS it is tested in.
    coverage: Option<(Arc<crate::coverage::Coverage>, Arc<crate::srs::Srs>)>,
}

impl TileManager {
    /// A manager of `cache` (tiles of `grid`) filled from `source`, meta tiles as `meta`,
    /// tiles encoded with `image_opts` (the source is asked for `image_opts.format`), locks
    /// from `locker` (a [`crate::lock::TileLocker`], a [`crate::lock::RedisTileLocker`]);
    /// `concurrent_tile_creators` (at least 1) is kept for callers that make several meta
    /// tiles for one request.
    pub fn new(
        cache: Arc<dyn TileCache>,
        source: Arc<dyn MapSource>,
        grid: TileGrid,
        meta: MetaSettings,
        image_opts: ImageOpts,
        locker: impl Into<Arc<dyn MetaTileLocks>>,
        concurrent_tile_creators: usize,
    ) -> TileManager {
        let metatiling = !meta.is_none();
        let cache_only = source.is_dummy();
        let meta = if metatiling {
            MetaGrid::new(grid.clone(), meta.meta_size, meta.meta_buffer)
        } else {
            MetaGrid::new(grid.clone(), (1, 1), 0)
        };
        TileManager {
            inner: Arc::new(Inner {
                cache,
                source,
                grid,
                meta,
                metatiling,
                request_format: image_opts.format.clone(),
                image_opts,
                locker: locker.into(),
                concurrent_tile_creators: concurrent_tile_creators.max(1),
                cache_only,
                minimize_meta_requests: false,
                refresh_before: None,
                in_flight: Mutex::new(CoordMap::default()),
                without_sources: false,
                rescale: None,
                watermark: None,
                coverage: None,
            }),
        }
    }

    /// Asks the source for `format` instead of the tiles' own (MapProxy's `request_format`:
    /// e.g. PNG from the source, JPEG tiles stored); call before the manager is shared.
    pub fn with_request_format(mut self, format: ImageFormat) -> TileManager {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.request_format = format;
        }
        self
    }

    /// With the cache's `refresh_before` (MapProxy's `TileManager._refresh_before`,
    /// cache/tile_manager.py:197-241): a stored tile older than it is a miss and is made
    /// again, as when seeding with `refresh_before`; ages and `mtime` files are evaluated at
    /// each load. For a manager as [`TileManager::new`] made it.
    pub fn with_refresh_before(
        mut self,
        before: Option<crate::config::before::Before>,
    ) -> TileManager {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.refresh_before = before;
        }
        self
    }

    /// With MapProxy's `minimize_meta_requests` (see [`TileManager::create_minimal`]); for a
    /// manager as [`TileManager::new`] made it (one that is already shared keeps its setting).
    pub fn with_minimize_meta_requests(mut self, minimize: bool) -> TileManager {
        if let Some(inner) = Arc::get_mut(&mut self.inner) {
            inner.minimize_meta_requests = minimize;
        }
        self
    }

    /// The tiles made are drawn on with `watermark` before they are stored (MapProxy's
    /// `pre_store_filter`; a source's bytes are then not stored as they came). Call on a new
    /// manager.
    pub fn with_watermark(mut self, watermark: crate::image::watermark::Watermark) -> TileManager {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => inner.watermark = Some(Arc::new(watermark)),
            None => debug_assert!(false, "with_watermark on a shared manager"),
        }
        self
    }

    /// The manager of a cache without sources (`sources: []`, MapProxy's `DummySource`): a
    /// missing tile is blank and not stored, or drawn from other levels with `rescale`
    /// (`upscale_tiles`/`downscale_tiles`); seeding makes nothing. Call on a new manager.
    pub fn without_sources(mut self, rescale: Option<Rescale>) -> TileManager {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                inner.without_sources = true;
                inner.rescale = rescale;
            }
            None => debug_assert!(false, "without_sources on a shared manager"),
        }
        self
    }

    /// Whether several missing tiles asked for at once are made by one minimal meta tile
    /// ([`TileManager::create_minimal`]): `minimize_meta_requests` with meta tiling (MapProxy
    /// checks `meta_grid` first) and a source that makes tiles.
    pub fn minimizes_meta_requests(&self) -> bool {
        let i = &self.inner;
        i.minimize_meta_requests && i.metatiling && !i.cache_only
    }

    /// Tiles outside `coverage` are blank and not made, and seeding skips meta tiles without
    /// a tile in it (MapProxy's `TileManager.load_tile_coords` with the cache's coverage,
    /// cache/tile_manager.py:110-117). Call on a new manager.
    pub fn with_coverage(mut self, coverage: crate::coverage::Coverage) -> TileManager {
        match Arc::get_mut(&mut self.inner) {
            Some(inner) => {
                // a grid's SRS is known (the grid was built from it)
                if let Ok(srs) = crate::srs::Srs::get(&format!("EPSG:{}", inner.grid.srs())) {
                    inner.coverage = Some((Arc::new(coverage), srs));
                }
            }
            None => debug_assert!(false, "with_coverage on a shared manager"),
        }
        self
    }

    /// Is the tile outside the cache's coverage (never read or made)?
    pub fn outside_coverage(&self, coord: TileCoord) -> bool {
        let inner = &self.inner;
        let Some((cov, srs)) = &inner.coverage else {
            return false;
        };
        let Ok(bbox) = inner.grid.tile_bbox(coord, false) else {
            return true;
        };
        !cov.intersects(bbox, srs)
    }

    pub fn grid(&self) -> &TileGrid {
        &self.inner.grid
    }

    pub fn meta_grid(&self) -> &MetaGrid {
        &self.inner.meta
    }

    /// MapProxy's `concurrent_tile_creators`: how many meta tiles one request makes at once.
    pub fn concurrent_tile_creators(&self) -> usize {
        self.inner.concurrent_tile_creators
    }

    /// The options tiles are encoded with (the cache's `format`, its transparency).
    pub fn image_opts(&self) -> &ImageOpts {
        &self.inner.image_opts
    }

    /// The tile, from the cache or made.
    pub async fn load_tile(&self, coord: TileCoord) -> Result<TileData, TileError> {
        let inner = &self.inner;
        let coord = inner.grid.limit_tile(coord).ok_or(TileError::OutOfRange)?;
        if self.outside_coverage(coord) {
            // MapProxy: no tile (`coord = None`): neither read nor made; the services answer
            // their empty tile (TMS/WMTS: a transparent PNG), the WMS draws nothing
            return Err(TileError::Missing);
        }
        if let Some(t) = inner.load(coord).await? {
            return Ok(t);
        }
        if inner.without_sources {
            return inner.missing_without_sources(coord).await;
        }
        if inner.cache_only {
            return Err(TileError::Missing);
        }
        let main = inner
            .meta
            .main_tile(coord)
            .map_err(|_| TileError::OutOfRange)?;
        let creation = {
            let mut map = inner
                .in_flight
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match map.get(&main) {
                Some(c) => c.clone(),
                None => {
                    let task = tokio::spawn(Inner::create(self.inner.clone(), main));
                    let c = async move {
                        task.await.unwrap_or_else(|e| {
                            Err(TileError::Source {
                                message: format!("tile creation failed: {e}"),
                            })
                        })
                    }
                    .boxed()
                    .shared();
                    map.insert(main, c.clone());
                    c
                }
            }
        };
        let created = creation.await?;
        let Some(made) = created.get(&coord) else {
            // the source gave nothing for this tile (e.g. outside the image)
            return Err(TileError::Source {
                message: "no tile created".into(),
            });
        };
        // MapProxy answers a tile it had to make without its time (no Last-Modified, the
        // ETag of `(None, None)`) unless it made the tile alone and stored it here: a meta
        // tile's tiles are new Tile objects of which only the image is copied to the one
        // asked for (cache/tile_manager.py:177-179, tile_creator.py:171-194, 252-270), and a
        // tile found stored once the lock is held is loaded without its metadata
        // (tile_creator.py:119-120); only `store_tile` sets the time of the asked tile
        // (cache/base.py:34-42)
        if inner.metatiling || made.found {
            return Ok(TileData {
                data: made.data.clone(),
                format: made.format.clone(),
                mtime: None,
                drawn: made.drawn.clone(),
            });
        }
        if made.stored && made.mtime.is_none() {
            // the stored tile's time, as a later cache hit will show it
            if let Some(t) = inner.load(coord).await? {
                return Ok(t);
            }
        }
        Ok(TileData {
            data: made.data.clone(),
            format: made.format.clone(),
            mtime: made.mtime,
            drawn: made.drawn.clone(),
        })
    }
}

/// Several tiles at once (MapProxy's `load_tile_coords` of a WMS GetMap).
impl TileManager {
    /// The tile when it is in the cache (`None`: missing), as [`TileManager::load_tile`]
    /// reads it.
    pub async fn cached_tile(&self, coord: TileCoord) -> Result<Option<TileData>, TileError> {
        let coord = self
            .inner
            .grid
            .limit_tile(coord)
            .ok_or(TileError::OutOfRange)?;
        self.inner.load(coord).await
    }

    /// Makes the missing `tiles` (of one level, at least two: MapProxy never does this for a
    /// single tile) by one request for the smallest block of tiles holding them plus the
    /// meta buffer (`MetaGrid.minimal_meta_tile` of the tiles in the order given), and
    /// stores every tile of that block, under the lock of the meta tile of its first tile;
    /// when all of the block is stored once the lock is held, nothing is requested
    /// (`cache/tile_creator.py:53-56, 171-194`). Returns the block's tiles.
    pub async fn create_minimal(
        &self,
        tiles: &[TileCoord],
    ) -> Result<HashMap<TileCoord, TileData>, TileError> {
        let meta_tile = self
            .inner
            .meta
            .minimal_meta_tile(tiles)
            .map_err(|_| TileError::OutOfRange)?
            .ok_or(TileError::OutOfRange)?;
        let inner = self.inner.clone();
        // its own task, as a single meta tile: a client that goes away does not cancel it
        let made = tokio::spawn(async move { inner.create_meta_locked(&meta_tile, None).await })
            .await
            .unwrap_or_else(|e| {
                Err(TileError::Source {
                    message: format!("tile creation failed: {e}"),
                })
            })?;
        Ok(made
            .into_iter()
            .map(|(c, m)| {
                (
                    c,
                    TileData {
                        data: m.data,
                        format: m.format,
                        mtime: m.mtime,
                        drawn: m.drawn,
                    },
                )
            })
            .collect())
    }
}

/// Seeding and cleanup (MapProxy's `load_tile_coords` with `_expire_timestamp`, and
/// `remove_tile_coords`), used by [`crate::seed`].
impl TileManager {
    /// The cache the manager reads and writes.
    pub fn cache(&self) -> &Arc<dyn TileCache> {
        &self.inner.cache
    }

    /// Makes the meta tile holding `coord` unless all its tiles are stored and none is older
    /// than `refresh_before`; with `only_cached`, only when at least one of them is stored
    /// (`--skip-uncached`). The meta tile's lock is held while it is made, as for a request.
    /// Returns whether the meta tile was (re)made.
    pub async fn seed_meta_tile(
        &self,
        coord: TileCoord,
        refresh_before: Option<SystemTime>,
        only_cached: bool,
    ) -> Result<bool, TileError> {
        let inner = &self.inner;
        let main = inner
            .meta
            .main_tile(coord)
            .map_err(|_| TileError::OutOfRange)?;
        let meta_tile = inner
            .meta
            .meta_tile(main)
            .map_err(|_| TileError::OutOfRange)?;
        if inner.coverage.is_some() && meta_tile.coords().all(|c| self.outside_coverage(c)) {
            return Ok(false);
        }
        if inner.without_sources
            || inner
                .load_all(&meta_tile, inner.expire(refresh_before))
                .await?
                .is_some()
        {
            return Ok(false);
        }
        if only_cached {
            let coords: Vec<TileCoord> = meta_tile.coords().collect();
            let any = inner
                .cache_call(move |c| {
                    for coord in coords {
                        if c.is_cached(coord)? {
                            return Ok(true);
                        }
                    }
                    Ok(false)
                })
                .await?;
            if !any {
                return Ok(false);
            }
        }
        match inner.create_locked(main, refresh_before).await {
            // the source has no image here (min_res/max_res): nothing to seed
            Err(TileError::Missing) => Ok(false),
            r => r.map(|_| true),
        }
    }

    /// Removes the tile when it is stored and, with `before`, older than that. Returns
    /// whether it was removed.
    pub fn remove_tile(
        &self,
        coord: TileCoord,
        before: Option<SystemTime>,
    ) -> std::io::Result<bool> {
        let cache = &self.inner.cache;
        match before {
            None => {
                if !cache.is_cached(coord)? {
                    return Ok(false);
                }
            }
            Some(b) => match cache.load(coord)? {
                Some(t) if t.mtime < b => {}
                _ => return Ok(false),
            },
        }
        cache.remove(coord)?;
        Ok(true)
    }
}

impl TileProvider for TileManager {
    fn tile(&self, coord: TileCoord) -> BoxFuture<'_, Result<TileData, TileError>> {
        Box::pin(self.load_tile(coord))
    }
}

fn cache_error(e: impl std::fmt::Display) -> TileError {
    TileError::Cache {
        message: e.to_string(),
    }
}

fn source_error(e: impl std::fmt::Display) -> TileError {
    TileError::Source {
        message: e.to_string(),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, TileError> + Send + 'static,
) -> Result<T, TileError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(cache_error(format!("blocking task failed: {e}"))))
}

impl Inner {
    /// The time before which stored tiles are out of date: the cache's `refresh_before`,
    /// else `seeding`'s (MapProxy's `expire_timestamp`: the cache's wins).
    fn expire(&self, seeding: Option<SystemTime>) -> Option<SystemTime> {
        match &self.refresh_before {
            Some(b) => b.at().or(seeding),
            None => seeding,
        }
    }

    async fn load(&self, coord: TileCoord) -> Result<Option<TileData>, TileError> {
        // A cache hit is one open, fstat and read of a small file, served from the page cache
        // in the common case: done on the worker thread itself, as nginx does without aio. A
        // hand-off to the blocking pool (spawn_blocking) cost more than the read (benchmark:
        // bench/mapproxy_tiles.sh). Misses (source requests, encoding, locks) still leave it.
        // The other caches' hits take their quick way too (compact bundles: positional reads;
        // SQLite: a read that does not wait for locks; Redis: a future on this runtime); a
        // hit that would wait on a database lock, and the caches without a quick way (S3),
        // leave the thread for the blocking pool.
        let loaded = match self.cache.quick_load(coord) {
            QuickLoad::Now(r) => r.map_err(cache_error)?,
            QuickLoad::Future(f) => f.await.map_err(cache_error)?,
            QuickLoad::WouldBlock => self.cache_call(move |c| c.load(coord)).await?,
        };
        // out of date (refresh_before): a miss
        let expire = self.expire(None);
        let loaded =
            loaded.filter(|t| expire.is_none_or(|e| !crate::config::before::is_stale(t.mtime, e)));
        Ok(loaded.map(|t| TileData {
            format: crate::image::sniff_format(&t.data)
                .unwrap_or_else(|| self.image_opts.format.clone()),
            data: t.data,
            mtime: Some(t.mtime),
            drawn: None,
        }))
    }

    /// Makes the meta tile of `main` (run as its own task), then leaves the in-flight table.
    async fn create(self: Arc<Self>, main: TileCoord) -> Result<Created, TileError> {
        let result = self.create_locked(main, None).await;
        self.in_flight
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&main);
        result.map(Arc::new)
    }

    /// Makes the meta tile of `main` under its lock; tiles stored before `expire` count as
    /// missing (seeding's `refresh_before`).
    async fn create_locked(
        &self,
        main: TileCoord,
        expire: Option<SystemTime>,
    ) -> Result<CoordMap<Made>, TileError> {
        let meta_tile = self
            .meta
            .meta_tile(main)
            .map_err(|_| TileError::OutOfRange)?;
        self.create_meta_locked(&meta_tile, expire).await
    }

    /// Makes `meta_tile` (a meta tile, or a minimal one) under the lock of the meta tile of
    /// its first tile (`TileManager.lock(Tile(meta_tile.main_tile_coord))`).
    async fn create_meta_locked(
        &self,
        meta_tile: &MetaTile,
        expire: Option<SystemTime>,
    ) -> Result<CoordMap<Made>, TileError> {
        let expire = self.expire(expire);
        let main = meta_tile.main_tile_coord().ok_or(TileError::OutOfRange)?;
        let lock_coord = main;
        let lock_coord = self.meta.main_tile(lock_coord).unwrap_or(lock_coord);
        // the tile stored last: a waiter that polls the cache looks for it first
        let last = meta_tile.tiles.iter().rev().find_map(|(c, _)| *c);
        let meta_ref = meta_tile;
        let waited = lock_or_wait(&*self.locker, lock_coord, || async move {
            match last {
                Some(last) if self.cache_call(move |c| c.is_cached(last)).await? => {
                    self.load_all(meta_ref, expire).await
                }
                _ => Ok(None),
            }
        })
        .await?;
        let _lock = match waited {
            Waited::Locked(held) => held,
            Waited::Found(stored) => return Ok(stored),
        };

        // another process may have made them while this one waited for the lock
        if let Some(stored) = self.load_all(meta_tile, expire).await? {
            return Ok(stored);
        }

        let query = MapQuery {
            bbox: meta_tile.bbox,
            size: meta_tile.size,
            srs: self.grid.srs(),
            format: self.request_format.clone(),
            transparent: self.image_opts.transparent,
        };
        // a source without an image for this query (MapProxy's BlankImageError: outside its
        // min_res/max_res): no tiles are made (cache/tile_creator.py:129-138)
        if self.source.blank_for(&query) {
            return Err(TileError::Missing);
        }
        let image = self.source.get_map(&query).await.map_err(|e| {
            if e.blank {
                TileError::Missing
            } else {
                source_error(e.message)
            }
        })?;

        let opts = self.image_opts.clone();
        let tile_size = self.grid.tile_size();
        let passthrough = !self.metatiling
            && self.watermark.is_none()
            && !image.drawn
            && image
                .format
                .clone()
                .or_else(|| crate::image::sniff_format(&image.data))
                .is_some_and(|f| f == opts.format);
        let tiles: Vec<(TileCoord, Bytes, Option<Arc<Drawn>>)> = if passthrough {
            meta_tile
                .tiles
                .iter()
                .filter_map(|(c, _)| c.map(|c| (c, image.data.clone(), None)))
                .collect()
        } else {
            let pattern = meta_tile.tiles.clone();
            let data = image.data.clone();
            let drawn = image.drawn;
            let watermark = self.watermark.clone();
            // decoding, cropping and encoding are CPU work: off the async workers
            blocking(move || {
                let img = decode(&data).map_err(source_error)?;
                // MapProxy encodes each tile in the mode the source's image opened in (an RGB
                // image: no tRNS for a transparent cache); a tile reaching outside it is
                // pasted into a `create_image` of the cache's options (image/tile.py:121-131)
                let opened = crate::image::mode::opened_mode(&data, opts.transparent);
                let created = crate::image::mode::created_mode(opts.mode, opts.transparent);
                // a paletted image is cropped to its palette and indices (TileSplitter's
                // `crop`), written as they are when `img_to_buf` does not quantize them;
                // the watermark converts it to RGBA (image/message.py:145-148)
                // (a server's paletted image: one drawn here, as the debug source's, is an
                // RGBA image in MapProxy, whatever encoding carried it to this point)
                let indexed = (opened == ImageMode::P && watermark.is_none() && !drawn)
                    .then(|| Indexed::decode(&data))
                    .flatten()
                    .filter(|p| (p.width, p.height) == img.dimensions());
                let mut out = Vec::new();
                for (coord, offset) in pattern {
                    let Some(coord) = coord else { continue };
                    let mut tile = crop(&img, offset, tile_size, opts.transparent);
                    if let Some(w) = &watermark {
                        w.draw(&mut tile, coord);
                    }
                    let inside = offset.0 >= 0
                        && offset.1 >= 0
                        && offset.0 + i64::from(tile_size.0) <= i64::from(img.width())
                        && offset.1 + i64::from(tile_size.1) <= i64::from(img.height());
                    let held = match (inside, opened) {
                        (false, _) => created,
                        (true, ImageMode::P) if watermark.is_some() => ImageMode::Rgba,
                        (true, m) => m,
                    };
                    let indexed = indexed.as_ref().filter(|_| inside).map(|p| {
                        // inside the image: non-negative offsets
                        p.crop(offset.0 as u32, offset.1 as u32, tile_size.0, tile_size.1)
                    });
                    let data = match &indexed {
                        Some(p) => encode_indexed(&tile, p, &opts),
                        None => encode_mode(&tile, held, &opts),
                    }
                    .map_err(source_error)?;
                    let drawn = Drawn {
                        image: tile,
                        mode: held,
                        indexed,
                    };
                    out.push((coord, data, Some(Arc::new(drawn))));
                }
                Ok(out)
            })
            .await?
        };

        let stored = image.cacheable;
        // Stored on this thread, as hits are read: a tile is a small file written into the
        // page cache (a hand-off to the blocking pool cost more: bench/mapproxy_misses.sh).
        let mut mtimes = CoordMap::default();
        if stored {
            let to_store: Vec<(TileCoord, Bytes)> =
                tiles.iter().map(|(c, d, _)| (*c, d.clone())).collect();
            let times = self
                .cache_call(move |c| {
                    let mut times = Vec::new();
                    for (coord, data) in &to_store {
                        if let Some(t) = c.store(*coord, data)? {
                            times.push((*coord, t));
                        }
                    }
                    Ok(times)
                })
                .await?;
            mtimes.extend(times);
        }
        let format = self.image_opts.format.clone();
        Ok(tiles
            .into_iter()
            .map(|(c, data, drawn)| {
                let format = if passthrough {
                    crate::image::sniff_format(&data).unwrap_or_else(|| format.clone())
                } else {
                    format.clone()
                };
                (
                    c,
                    Made {
                        data,
                        format,
                        stored,
                        mtime: mtimes.get(&c).copied(),
                        found: false,
                        drawn,
                    },
                )
            })
            .collect())
    }

    /// Runs `f` on the cache: on this thread for a cache whose calls do not block
    /// ([`TileCache::blocks`]), else on the blocking pool.
    async fn cache_call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn TileCache) -> std::io::Result<T> + Send + 'static,
    ) -> Result<T, TileError> {
        if !self.cache.blocks() {
            return f(&*self.cache).map_err(cache_error);
        }
        let cache = self.cache.clone();
        blocking(move || f(&*cache).map_err(cache_error)).await
    }

    /// All tiles of the meta tile when every one is stored (and not older than `expire`), else
    /// `None` (read as hits are).
    async fn load_all(
        &self,
        meta_tile: &MetaTile,
        expire: Option<SystemTime>,
    ) -> Result<Option<CoordMap<Made>>, TileError> {
        let coords: Vec<TileCoord> = meta_tile.coords().collect();
        let loaded = self
            .cache_call(move |c| {
                let mut out = Vec::new();
                for coord in coords {
                    match c.load(coord)? {
                        Some(t)
                            if expire
                                .is_none_or(|e| !crate::config::before::is_stale(t.mtime, e)) =>
                        {
                            out.push((coord, t))
                        }
                        _ => return Ok(None),
                    }
                }
                Ok(Some(out))
            })
            .await?;
        let Some(loaded) = loaded else {
            return Ok(None);
        };
        let mut out = CoordMap::default();
        for (c, t) in loaded {
            let format = crate::image::sniff_format(&t.data)
                .unwrap_or_else(|| self.image_opts.format.clone());
            out.insert(
                c,
                Made {
                    data: t.data,
                    format,
                    stored: true,
                    mtime: Some(t.mtime),
                    drawn: None,
                    found: true,
                },
            );
        }
        Ok(Some(out))
    }
}

/// The tile at `offset` of the meta image; parts outside it are the background (transparent,
/// or white), as MapProxy's `TileSplitter`.
fn crop(
    img: &RgbaImage,
    (ox, oy): (i64, i64),
    (tw, th): (u32, u32),
    transparent: bool,
) -> RgbaImage {
    let bg = if transparent {
        image::Rgba([255, 255, 255, 0])
    } else {
        image::Rgba([255, 255, 255, 255])
    };
    let mut out = RgbaImage::from_pixel(tw, th, bg);
    let (iw, ih) = (i64::from(img.width()), i64::from(img.height()));
    for y in 0..i64::from(th) {
        let sy = oy + y;
        if sy < 0 || sy >= ih {
            continue;
        }
        for x in 0..i64::from(tw) {
            let sx = ox + x;
            if sx < 0 || sx >= iw {
                continue;
            }
            // in range: both fit in u32
            out.put_pixel(x as u32, y as u32, *img.get_pixel(sx as u32, sy as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crop_fills_outside_with_background() {
        let img = RgbaImage::from_pixel(4, 4, image::Rgba([1, 2, 3, 255]));
        let t = crop(&img, (2, -1), (4, 4), true);
        assert_eq!(t.get_pixel(0, 1).0, [1, 2, 3, 255]);
        assert_eq!(t.get_pixel(0, 0).0, [255, 255, 255, 0]);
        assert_eq!(t.get_pixel(2, 1).0, [255, 255, 255, 0]);
        let t = crop(&img, (0, 0), (2, 2), false);
        assert_eq!(t.get_pixel(1, 1).0, [1, 2, 3, 255]);
        assert_eq!(
            crate::image::sniff_format(b"\xff\xd8\xff\xe0"),
            Some(ImageFormat::jpeg())
        );
    }
}
