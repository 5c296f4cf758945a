//! `disable_storage: true` (MapProxy's `cache/dummy.py` `DummyCache` and `DummyLocker`): tiles
//! are made from the sources for every request and never stored; no tile lock is taken (each
//! request makes its own meta tile, as MapProxy's `DummyLock`; concurrent requests in this
//! process still share one creation). Without a stored time, a tile answer has no
//! Last-Modified and the ETag of MapProxy's `(None, size)`.

use std::io;
use std::time::{Duration, SystemTime};

use futures_util::future::BoxFuture;

use super::{CachedTile, QuickLoad, TileCache};
use crate::grid::TileCoord;
use crate::lock::{HeldLock, LockError, MetaTileLocks};

/// Stores nothing: every load is a miss.
#[derive(Debug, Default, Clone, Copy)]
pub struct DummyCache;

impl TileCache for DummyCache {
    fn load(&self, _coord: TileCoord) -> io::Result<Option<CachedTile>> {
        Ok(None)
    }

    fn quick_load(&self, _coord: TileCoord) -> QuickLoad<'_> {
        QuickLoad::Now(Ok(None))
    }

    fn is_cached(&self, _coord: TileCoord) -> io::Result<bool> {
        Ok(false)
    }

    fn store(&self, _coord: TileCoord, _data: &[u8]) -> io::Result<Option<SystemTime>> {
        Ok(None)
    }

    fn blocks(&self) -> bool {
        false
    }

    fn remove(&self, _coord: TileCoord) -> io::Result<()> {
        Ok(())
    }
}

/// MapProxy's `DummyLocker`: every lock is taken at once.
#[derive(Debug, Default, Clone, Copy)]
pub struct DummyLocker;

impl MetaTileLocks for DummyLocker {
    fn try_lock(&self, _coord: TileCoord) -> BoxFuture<'_, Result<Option<HeldLock>, LockError>> {
        Box::pin(std::future::ready(Ok(Some(HeldLock::new(())))))
    }

    fn timeout(&self) -> Duration {
        Duration::ZERO
    }

    fn describe(&self, coord: TileCoord) -> String {
        format!("no lock (disable_storage) for {coord:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_nothing_and_locks_at_once() {
        let c = DummyCache;
        let coord: TileCoord = (0, 0, 0);
        assert!(c.store(coord, b"x").expect("store").is_none());
        assert!(c.load(coord).expect("load").is_none());
        assert!(!c.is_cached(coord).expect("is_cached"));
        let l = DummyLocker;
        let held = futures_util::FutureExt::now_or_never(l.try_lock(coord));
        assert!(matches!(held, Some(Ok(Some(_)))));
    }
}
