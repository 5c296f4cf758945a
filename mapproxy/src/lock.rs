//! The cross-process tile lock (MapProxy's `TileLocker` in `mapproxy/cache/base.py` and
//! `FileLock` in `mapproxy/util/lock.py`): one lock file per meta tile, so that processes
//! sharing a lock directory create a meta tile once.
//!
//! As MapProxy:
//! - the file is `<lock_dir>/<lock_cache_id>-<x>-<y>-<z>.lck`, named after the meta tile's
//!   main tile; a file cache's `lock_cache_id` is the MD5 hex digest of its directory;
//! - the lock is an exclusive `flock` on the open file, tried every 10 ms until the timeout
//!   (MapProxy's `http.client_timeout`, default 60 s), then [`LockError::Timeout`];
//! - the holder writes ` <pid>\n` into the file, and removes the file on unlock;
//! - every 50th lock of a locker first removes `.lck` files of the directory older than the
//!   timeout + 10 s (MapProxy's `cleanup_lockdir`: files left by a process that died).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fs4::fs_std::FileExt;

use crate::grid::TileCoord;

/// How often a held lock is tried again (MapProxy's `step`).
const STEP: Duration = Duration::from_millis(10);

/// Why no lock was taken.
#[derive(Debug)]
pub enum LockError {
    /// Another holder kept it past the timeout.
    Timeout(PathBuf),
    /// The lock file or its directory could not be created.
    Io(PathBuf, io::Error),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Timeout(p) => write!(f, "timeout waiting for lock {}", p.display()),
            LockError::Io(p, e) => write!(f, "cannot create lock file {}: {e}", p.display()),
        }
    }
}

impl std::error::Error for LockError {}

/// Lock files of one cache in one directory.
#[derive(Debug, Clone)]
pub struct TileLocker {
    lock_dir: PathBuf,
    lock_cache_id: String,
    timeout: Duration,
    calls: Arc<AtomicUsize>,
}

impl TileLocker {
    pub fn new(
        lock_dir: impl Into<PathBuf>,
        lock_cache_id: impl Into<String>,
        timeout: Duration,
    ) -> TileLocker {
        TileLocker {
            lock_dir: lock_dir.into(),
            lock_cache_id: lock_cache_id.into(),
            timeout,
            calls: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn lock_dir(&self) -> &Path {
        &self.lock_dir
    }

    pub fn lock_cache_id(&self) -> &str {
        &self.lock_cache_id
    }

    /// `<lock_dir>/<lock_cache_id>-<x>-<y>-<z>.lck`.
    pub fn lock_filename(&self, (x, y, z): TileCoord) -> PathBuf {
        self.lock_dir
            .join(format!("{}-{x}-{y}-{z}.lck", self.lock_cache_id))
    }

    /// Takes the lock of `coord` (a meta tile's main tile), waiting at most the timeout.
    /// Blocking file work runs on Tokio's blocking threads; the waits between tries are
    /// async.
    pub async fn lock(&self, coord: TileCoord) -> Result<TileLock, LockError> {
        let path = self.lock_filename(coord);
        if self.calls.fetch_add(1, Ordering::Relaxed) % 50 == 0 {
            let dir = self.lock_dir.clone();
            let max_age = self.timeout + Duration::from_secs(10);
            let _ = tokio::task::spawn_blocking(move || cleanup_lock_dir(&dir, max_age)).await;
        }
        let deadline = tokio::time::Instant::now() + self.timeout;
        loop {
            let p = path.clone();
            let tried = tokio::task::spawn_blocking(move || try_lock(&p))
                .await
                .map_err(|e| LockError::Io(path.clone(), io::Error::other(e)))?;
            match tried {
                Ok(Some(file)) => {
                    return Ok(TileLock {
                        file: Some(file),
                        path,
                    })
                }
                Ok(None) => {}
                Err(e) => return Err(LockError::Io(path, e)),
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LockError::Timeout(path));
            }
            tokio::time::sleep(STEP).await;
        }
    }
}

/// Removes `.lck` files older than `max_age` (MapProxy's `cleanup_lockdir`); errors are
/// ignored (another process may remove the same file).
pub fn cleanup_lock_dir(dir: &Path, max_age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "lck") {
            continue;
        }
        let old = entry
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age > max_age);
        if old {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    log::warn!(target: "mapproxy.util.lock", "could not remove old lock file {}: {e}", path.display());
                }
            }
        }
    }
}

/// Opens (creating the directory and file) and tries the exclusive lock once.
fn try_lock(path: &Path) -> io::Result<Option<File>> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)?;
    match FileExt::try_lock_exclusive(&file) {
        Ok(true) => {}
        Ok(false) => return Ok(None),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    }
    // as MapProxy: " <pid>\n"; a failure to write is no reason to give up the lock
    let _ = file
        .set_len(0)
        .and_then(|()| writeln!(file, " {}", std::process::id()))
        .and_then(|()| file.flush());
    Ok(Some(file))
}

/// A held lock: released (file removed, then closed) when dropped.
#[derive(Debug)]
pub struct TileLock {
    file: Option<File>,
    path: PathBuf,
}

impl TileLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TileLock {
    fn drop(&mut self) {
        // MapProxy removes the file while holding the lock: a waiter that opened the old file
        // may then lock it while a newcomer locks a new one; both re-check the cache first.
        let _ = std::fs::remove_file(&self.path);
        self.file.take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn held_lock_times_out_then_is_free_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locker = TileLocker::new(dir.path().join("locks"), "abc", Duration::from_millis(50));
        let path = locker.lock_filename((1, 2, 3));
        assert_eq!(path, dir.path().join("locks").join("abc-1-2-3.lck"));
        let held = locker.lock((1, 2, 3)).await.expect("first");
        assert_eq!(held.path(), path);
        assert_eq!(
            std::fs::read_to_string(&path).expect("lock file"),
            format!(" {}\n", std::process::id())
        );
        let start = std::time::Instant::now();
        match locker.lock((1, 2, 3)).await {
            Err(LockError::Timeout(p)) => assert_eq!(p, path),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(start.elapsed() >= Duration::from_millis(50));
        // another meta tile is not held
        drop(locker.lock((0, 0, 3)).await.expect("other tile"));
        drop(held);
        assert!(!path.exists(), "removed on unlock");
        drop(locker.lock((1, 2, 3)).await.expect("free again"));
    }

    #[test]
    fn cleanup_removes_only_old_lock_files() {
        let dir = tempfile::tempdir().expect("tempdir");
        let old = dir.path().join("a-0-0-0.lck");
        let other = dir.path().join("keep.txt");
        std::fs::write(&old, " 1\n").expect("write");
        std::fs::write(&other, "x").expect("write");
        cleanup_lock_dir(dir.path(), Duration::from_secs(3600));
        assert!(old.exists(), "young");
        let f = File::options().write(true).open(&old).expect("open");
        f.set_modified(SystemTime::now() - Duration::from_secs(7200))
            .expect("mtime");
        drop(f);
        cleanup_lock_dir(dir.path(), Duration::from_secs(3600));
        assert!(!old.exists(), "old lock file removed");
        assert!(other.exists());
        cleanup_lock_dir(&dir.path().join("missing"), Duration::ZERO);
    }
}
