//! Tile caches (MapProxy's `mapproxy/cache/`): where a tile of a grid is stored.
//!
//! A cache stores encoded tiles by coordinate (in its grid's own origin). Calls are blocking
//! file-system work: async callers run them where blocking is allowed. A hit may take a faster
//! way first ([`TileCache::quick_load`]): on the calling (async worker) thread when it cannot
//! wait, or as a future (Redis), else the caller falls back to `load` on the blocking pool.

pub mod atomic_write;
pub mod compact;
pub mod dummy;
pub mod file;
pub mod memory;
pub mod path;
pub mod redis;
pub mod s3;
pub mod sqlite;

pub use compact::{CompactCache, CompactVersion};
pub use dummy::{DummyCache, DummyLocker};
pub use file::{FileCache, LinkMode};
pub use path::{CacheDirNaming, DirectoryLayout};
pub use redis::{RedisCache, RedisOptions};
pub use s3::{S3Cache, S3Options};
pub use sqlite::{GeoPackageCache, GpkgTable, MbTilesCache, SqliteCache};

use std::io;
use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::grid::TileCoord;

/// A stored tile.
#[derive(Debug, Clone)]
pub struct CachedTile {
    pub data: Bytes,
    pub mtime: SystemTime,
}

/// What [`TileCache::quick_load`] gives: the answer of `load`, at once or as a future, or
/// word that it could not be had without blocking.
pub enum QuickLoad<'a> {
    /// What `load` would have answered.
    Now(io::Result<Option<CachedTile>>),
    /// What `load` would have answered, from a future that does not block the thread (a
    /// network round trip on the caller's runtime).
    Future(BoxFuture<'a, io::Result<Option<CachedTile>>>),
    /// Not without waiting (a database lock, a cache with only blocking calls): call `load`
    /// where blocking is allowed.
    WouldBlock,
}

/// One cache of one grid (MapProxy: a cache's `<name>_<grid>` directory, or a table, ...).
pub trait TileCache: Send + Sync + 'static {
    /// The tile, or `None` when it is not stored.
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>>;
    /// `load` without blocking the calling thread, as async workers call it for each request:
    /// a cache whose hits are cheap local reads answers [`QuickLoad::Now`], one that must wait
    /// on the network [`QuickLoad::Future`], and one that would have to wait on another's lock
    /// (or cannot tell) [`QuickLoad::WouldBlock`], the default. Whatever it answers is what
    /// `load` answers for the same tile at that moment (misses and expired tiles included).
    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'_> {
        let _ = coord;
        QuickLoad::WouldBlock
    }
    /// Is the tile stored? (Cheaper than `load` where the storage allows.)
    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        Ok(self.load(coord)?.is_some())
    }
    /// Store the tile so that readers see the whole tile or none of it. Returns the time a
    /// later `load` reports for it when the storage knows it without a second look.
    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>>;
    /// May a call wait on more than the local page cache (another writer's database lock, a
    /// network round trip)? The tile manager runs such caches' calls on the blocking pool; a
    /// file cache's small reads and writes run on the calling thread (as nginx serves files).
    fn blocks(&self) -> bool {
        true
    }
    /// Remove the tile (seeding's cleanup); no error when it is not stored.
    fn remove(&self, coord: TileCoord) -> io::Result<()>;
}
