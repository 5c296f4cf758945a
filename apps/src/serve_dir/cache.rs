//! The memory cache of [`StaticFiles`]: each request key's resolved file ([`Entry`]: its
//! path, [`Stamp`], ready-made headers and, when small, its contents), trusted for
//! `revalidate_after`, then resolved and `stat`ed again; bodies of mid-size files loaded on
//! the blocking pool; the whole within a byte budget.

use std::collections::HashMap;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;

use super::headers::FileHeaders;
use super::open_file::{read_whole, resolve, Resolved, Stamp};
use super::{StaticFiles, LOG};

/// Cached files up to this size are read on the request's own thread; larger cacheable ones
/// are loaded on the blocking pool while the first response streams.
const INLINE_READ_MAX: u64 = 64 * 1024;
/// The most entries the memory cache holds.
const MAX_ENTRIES: usize = 16 * 1024;

/// A resolved file with its ready-made headers and, when small, its contents.
#[derive(Debug)]
pub(super) struct Entry {
    pub(super) path: PathBuf,
    pub(super) stamp: Stamp,
    pub(super) headers: FileHeaders,
    pub(super) body: Option<Bytes>,
    checked_ms: AtomicU64,
}

impl Entry {
    fn new(path: PathBuf, stamp: Stamp, body: Option<Bytes>, now_ms: u64) -> Entry {
        Entry {
            headers: FileHeaders::new(&path, stamp.len, stamp.mtime),
            path,
            stamp,
            body,
            checked_ms: AtomicU64::new(now_ms),
        }
    }

    /// The bytes this entry counts against the budget under `key`.
    fn size(&self, key: &[u8]) -> usize {
        self.body.as_ref().map_or(0, Bytes::len) + key.len()
    }
}

/// Where a request key leads.
pub(super) enum Lookup {
    Entry(Arc<Entry>),
    /// A directory named without a trailing slash.
    AddSlash,
    NotFound,
}

/// The entries by request key, and the bytes they hold.
#[derive(Debug)]
pub(super) struct FileCache {
    map: RwLock<HashMap<Box<[u8]>, Arc<Entry>>>,
    bytes: AtomicUsize,
    budget: usize,
    /// Files up to this size are kept with their contents.
    max_file_size: u64,
    revalidate_ms: u64,
    epoch: Instant,
}

impl FileCache {
    pub(super) fn new(budget: usize, max_file_size: u64, revalidate_after: Duration) -> Self {
        FileCache {
            map: RwLock::new(HashMap::new()),
            bytes: AtomicUsize::new(0),
            budget,
            max_file_size,
            revalidate_ms: u64::try_from(revalidate_after.as_millis()).unwrap_or(u64::MAX),
            epoch: Instant::now(),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn get(&self, key: &[u8]) -> Option<Arc<Entry>> {
        self.map.read().ok().and_then(|c| c.get(key).cloned())
    }

    fn remember(&self, key: &[u8], entry: Arc<Entry>) {
        let size = entry.size(key);
        let Ok(mut cache) = self.map.write() else {
            return;
        };
        let used = self.bytes.load(Ordering::Relaxed);
        if used + size > self.budget || cache.len() >= MAX_ENTRIES {
            cache.clear();
            self.bytes.store(0, Ordering::Relaxed);
            if size > self.budget {
                return;
            }
        }
        let old = cache.insert(key.into(), entry);
        let freed = old.map_or(0, |o| o.size(key));
        let used = self.bytes.load(Ordering::Relaxed);
        self.bytes
            .store((used + size).saturating_sub(freed), Ordering::Relaxed);
    }

    /// Drop the entry of `key` (its file is gone or changed).
    pub(super) fn forget(&self, key: &[u8]) {
        if let Ok(mut cache) = self.map.write() {
            if let Some(old) = cache.remove(key) {
                let freed = old.size(key);
                let used = self.bytes.load(Ordering::Relaxed);
                self.bytes
                    .store(used.saturating_sub(freed), Ordering::Relaxed);
            }
        }
    }
}

impl StaticFiles {
    /// The entry of `key`: from the cache while it is trusted, else resolved again (reusing
    /// the cached one when the file did not change).
    pub(super) fn entry(&self, key: &[u8]) -> io::Result<Lookup> {
        let cache = &self.inner.cache;
        let now = cache.now_ms();
        match cache.get(key) {
            Some(e)
                if now.saturating_sub(e.checked_ms.load(Ordering::Relaxed))
                    < cache.revalidate_ms =>
            {
                Ok(Lookup::Entry(e))
            }
            stale => self.lookup(key, stale, now),
        }
    }

    /// Resolve `key`, reusing `stale` when the file did not change.
    fn lookup(&self, key: &[u8], stale: Option<Arc<Entry>>, now: u64) -> io::Result<Lookup> {
        let cache = &self.inner.cache;
        let path = match resolve(&self.inner.root, key) {
            Resolved::File(p) => p,
            Resolved::AddSlash => return Ok(Lookup::AddSlash),
            Resolved::NotFound => {
                if stale.is_some() {
                    cache.forget(key);
                }
                return Ok(Lookup::NotFound);
            }
        };
        let meta = std::fs::metadata(&path)?;
        let stamp = Stamp::of(&meta);
        if let Some(e) = stale {
            if e.path == path && e.stamp == stamp {
                e.checked_ms.store(now, Ordering::Relaxed);
                if e.body.is_none() && stamp.len <= cache.max_file_size {
                    self.spawn_load(key, path, stamp);
                }
                return Ok(Lookup::Entry(e));
            }
        }
        let cacheable = stamp.len <= cache.max_file_size;
        let mut load_later = false;
        let body = if cacheable && stamp.len <= INLINE_READ_MAX {
            Some(read_whole(&path, stamp)?)
        } else {
            load_later = cacheable;
            None
        };
        let entry = Arc::new(Entry::new(path.clone(), stamp, body, now));
        cache.remember(key, entry.clone());
        if load_later {
            self.spawn_load(key, path, stamp);
        }
        Ok(Lookup::Entry(entry))
    }

    /// This response streams; the body is loaded for later ones on the blocking pool (a big
    /// read never blocks a runtime thread).
    fn spawn_load(&self, key: &[u8], path: PathBuf, stamp: Stamp) {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let this = self.clone();
            let key = key.to_vec();
            rt.spawn_blocking(move || this.load_body(&key, path, stamp));
        }
    }

    /// Put the contents of a mid-size file into the cache, if its entry is still current.
    fn load_body(&self, key: &[u8], path: PathBuf, stamp: Stamp) {
        let bytes = match read_whole(&path, stamp) {
            Ok(b) => b,
            Err(e) => {
                log::debug!(target: LOG, "{}: {e}", path.display());
                return;
            }
        };
        let cache = &self.inner.cache;
        if let Some(cur) = cache.get(key) {
            if cur.path == path && cur.stamp == stamp && cur.body.is_none() {
                let now = cur.checked_ms.load(Ordering::Relaxed);
                cache.remember(key, Arc::new(Entry::new(path, stamp, Some(bytes), now)));
            }
        }
    }
}
