//! Meta tile locks: one meta tile is made by one process at a time, among the processes that
//! share the lock (MapProxy's `TileLocker` in `mapproxy/cache/base.py`).
//!
//! Two kinds, one waiting rule ([`lock_or_wait`]): a lock is tried every 10 ms until it is
//! taken or the timeout passes; where a holder may die without its lock going away at once
//! ([`MetaTileLocks::poll_cache`]), the waiter also looks into the cache between tries and
//! stops waiting once the holder's tiles are there.
//!
//! - [`TileLocker`], the local lock of every cache kind (below): processes on one host sharing
//!   a lock directory. The kernel drops it when its holder dies.
//! - [`RedisTileLocker`] (`lock/redis.rs`), for `type: redis` caches: a key in the cache's
//!   Redis with an expiry, so that instances on several machines sharing the cache fetch a meta
//!   tile once; a killed holder's lock is gone after its expiry.
//!
//! # The local lock
//!
//! On Linux the locks are byte-range locks on one file per cache,
//! `<lock_dir>/<lock_cache_id>.locks`: the meta tile's main tile names a byte (a fixed hash of
//! its coordinates, the same in every process and build), locked with an open file
//! description lock (`F_OFD_SETLK`) on a descriptor of its own. The kernel drops the lock when
//! the holder closes it or dies, so nothing is left behind, and no file is created or removed
//! per tile. That is a deliberate difference from MapProxy, which creates
//! `<lock_cache_id>-<x>-<y>-<z>.lck` per meta tile, `flock`s it and removes it on unlock: on
//! ext4 without a journal every removed inode makes the next file creations scan past it for a
//! minute (`recently_deleted`), which cost more kernel time than fetching and writing the tile
//! (`bench/mapproxy_misses.sh`, perf). A MapProxy process sharing the cache during a migration
//! does not see these locks: at worst a meta tile is fetched by both, and both write it
//! atomically.
//!
//! Elsewhere (no OFD locks) it is MapProxy's scheme: `<lock_cache_id>-<x>-<y>-<z>.lck`, an
//! exclusive `flock`, ` <pid>\n` written into it, removed on unlock, and every 50th try first
//! removes `.lck` files older than the timeout + 10 s (`cleanup_lockdir`).
//!
//! The descriptors are kept for the next lock (a small pool per locker, [`imp::Pool`]): a lock
//! is then one `fcntl` to take it and one to give it back, instead of an open of the lock file,
//! the `fcntl` and a close per meta tile. A pooled descriptor is used for at most a second
//! after its open, so a lock file removed or replaced while the server runs is picked up again
//! within a second.
//!
//! The timeout is MapProxy's `http.client_timeout` (default 60 s); past it,
//! [`LockError::Timeout`].

mod redis;
mod requests;

pub use self::redis::RedisTileLocker;
pub use self::requests::{RequestLimit, RequestPermit};

use std::future::Future;
use std::sync::Arc;

use futures_util::future::BoxFuture;

use crate::tile::TileError;

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::grid::TileCoord;

/// How often a held lock is tried again (MapProxy's `step`).
const STEP: Duration = Duration::from_millis(10);

/// Why no lock was taken.
#[derive(Debug)]
pub enum LockError {
    /// Another holder kept it past the timeout; the lock's name (a file, a Redis key).
    Timeout(String),
    /// The lock file or its directory could not be created.
    Io(PathBuf, io::Error),
    /// The lock server could not be asked (Redis).
    Server(String),
}

impl std::fmt::Display for LockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LockError::Timeout(p) => write!(f, "timeout waiting for lock {p}"),
            LockError::Io(p, e) => write!(f, "cannot create lock file {}: {e}", p.display()),
            LockError::Server(e) => write!(f, "cannot take a tile lock: {e}"),
        }
    }
}

impl std::error::Error for LockError {}

impl From<LockError> for TileError {
    fn from(e: LockError) -> TileError {
        TileError::Cache {
            message: e.to_string(),
        }
    }
}

/// A kind of meta tile lock: one try at a time; the waiting is [`lock_or_wait`]'s.
pub trait MetaTileLocks: Send + Sync + 'static {
    /// One try at the lock of `coord` (a meta tile's main tile): `None` while another holds it.
    fn try_lock(&self, coord: TileCoord) -> BoxFuture<'_, Result<Option<HeldLock>, LockError>>;
    /// How long a waiter waits at most.
    fn timeout(&self) -> Duration;
    /// The lock's name in messages (a file, a Redis key).
    fn describe(&self, coord: TileCoord) -> String;
    /// Does a waiter look into the cache between tries? Where a holder that died keeps its
    /// lock until an expiry (Redis), the tiles it stored before dying, or another holder's,
    /// end the wait sooner.
    fn poll_cache(&self) -> bool {
        false
    }
}

/// A held lock of any kind: released when dropped.
pub struct HeldLock(#[allow(dead_code)] Box<dyn Send + Sync>);

impl HeldLock {
    pub fn new(guard: impl Send + Sync + 'static) -> HeldLock {
        HeldLock(Box::new(guard))
    }
}

impl std::fmt::Debug for HeldLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HeldLock")
    }
}

/// How a wait ended: the lock was taken, or (for [`MetaTileLocks::poll_cache`] locks) `found`
/// found what the holder made.
#[derive(Debug)]
pub enum Waited<T> {
    Locked(HeldLock),
    Found(T),
}

/// The one waiting rule of every lock kind: try the lock of `coord` every 10 ms until it is
/// taken or the lock's timeout passes; between tries of a lock that polls the cache, `found`
/// looks whether the holder's work is done (then no lock is needed).
pub async fn lock_or_wait<T, E, F, Fut>(
    locks: &dyn MetaTileLocks,
    coord: TileCoord,
    mut found: F,
) -> Result<Waited<T>, E>
where
    E: From<LockError>,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<Option<T>, E>>,
{
    let deadline = tokio::time::Instant::now() + locks.timeout();
    loop {
        if let Some(held) = locks.try_lock(coord).await? {
            return Ok(Waited::Locked(held));
        }
        if locks.poll_cache() {
            if let Some(t) = found().await? {
                return Ok(Waited::Found(t));
            }
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(LockError::Timeout(locks.describe(coord)).into());
        }
        tokio::time::sleep(STEP).await;
    }
}

/// The tile locks of one cache in one directory.
#[derive(Debug, Clone)]
pub struct TileLocker {
    lock_dir: PathBuf,
    lock_cache_id: String,
    timeout: Duration,
    #[cfg(not(target_os = "linux"))]
    calls: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    pool: std::sync::Arc<imp::Pool>,
    /// Linux: the one lock file of every meta tile, its path made once (a join and a format
    /// per miss were 2% of a tile miss's instructions).
    #[cfg(target_os = "linux")]
    locks_file: Arc<Path>,
}

impl TileLocker {
    pub fn new(
        lock_dir: impl Into<PathBuf>,
        lock_cache_id: impl Into<String>,
        timeout: Duration,
    ) -> TileLocker {
        let (lock_dir, lock_cache_id) = (lock_dir.into(), lock_cache_id.into());
        TileLocker {
            #[cfg(target_os = "linux")]
            locks_file: Arc::from(imp::lock_path(&lock_dir, &lock_cache_id, (0, 0, 0))),
            lock_dir,
            lock_cache_id,
            timeout,
            #[cfg(not(target_os = "linux"))]
            calls: Default::default(),
            pool: Default::default(),
        }
    }

    pub fn lock_dir(&self) -> &Path {
        &self.lock_dir
    }

    pub fn lock_cache_id(&self) -> &str {
        &self.lock_cache_id
    }

    /// The file the lock of `coord` (a meta tile's main tile) is taken on.
    pub fn lock_path(&self, coord: TileCoord) -> PathBuf {
        self.lock_file(coord).to_path_buf()
    }

    /// The lock file of the meta tile whose main tile is `coord`.
    fn lock_file(&self, coord: TileCoord) -> Arc<Path> {
        #[cfg(target_os = "linux")]
        {
            // one file for all
            let _ = coord;
            self.locks_file.clone()
        }
        #[cfg(not(target_os = "linux"))]
        Arc::from(imp::lock_path(&self.lock_dir, &self.lock_cache_id, coord))
    }

    /// One try at the lock of `coord` (a meta tile's main tile): an open of the lock file and a
    /// non-blocking lock call, done on the calling thread (as the cache hit's read is).
    pub fn try_lock(&self, coord: TileCoord) -> Result<Option<TileLock>, LockError> {
        let path = self.lock_file(coord);
        #[cfg(not(target_os = "linux"))]
        if self
            .calls
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % 50
            == 0
        {
            cleanup_lock_dir(&self.lock_dir, self.timeout + Duration::from_secs(10));
        }
        match imp::try_lock(&path, coord, &self.pool) {
            Ok(Some(file)) => Ok(Some(TileLock {
                file: Some(file),
                path,
                coord,
                pool: self.pool.clone(),
            })),
            Ok(None) => Ok(None),
            Err(e) => Err(LockError::Io(path.to_path_buf(), e)),
        }
    }

    /// Takes the lock of `coord` (a meta tile's main tile), waiting at most the timeout.
    pub async fn lock(&self, coord: TileCoord) -> Result<HeldLock, LockError> {
        let nothing = || async { Ok::<Option<std::convert::Infallible>, LockError>(None) };
        match lock_or_wait(self, coord, nothing).await? {
            Waited::Locked(held) => Ok(held),
            Waited::Found(never) => match never {},
        }
    }
}

impl MetaTileLocks for TileLocker {
    fn try_lock(&self, coord: TileCoord) -> BoxFuture<'_, Result<Option<HeldLock>, LockError>> {
        let r = TileLocker::try_lock(self, coord).map(|l| l.map(HeldLock::new));
        Box::pin(std::future::ready(r))
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn describe(&self, coord: TileCoord) -> String {
        self.lock_path(coord).display().to_string()
    }
}

impl From<TileLocker> for Arc<dyn MetaTileLocks> {
    fn from(l: TileLocker) -> Arc<dyn MetaTileLocks> {
        Arc::new(l)
    }
}

/// Removes `.lck` files older than `max_age` (MapProxy's `cleanup_lockdir`); errors are
/// ignored (another process may remove the same file).
pub fn cleanup_lock_dir(dir: &Path, max_age: Duration) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let now = std::time::SystemTime::now();
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

/// A file under an exclusive `flock` (unlocked and closed when dropped): MapProxy's kind of
/// lock (util/ext/lockfile.py), for files it shares with us.
#[cfg(target_os = "linux")]
pub(crate) type Flocked = nix::fcntl::Flock<File>;
#[cfg(not(target_os = "linux"))]
pub(crate) type Flocked = File;

/// A non-blocking exclusive `flock` of `f`: `None` while another holds it.
#[cfg(target_os = "linux")]
pub(crate) fn try_flock(f: File) -> io::Result<Option<Flocked>> {
    use nix::errno::Errno;
    use nix::fcntl::{Flock, FlockArg};
    match Flock::lock(f, FlockArg::LockExclusiveNonblock) {
        Ok(l) => Ok(Some(l)),
        Err((_, Errno::EWOULDBLOCK | Errno::EINTR)) => Ok(None),
        Err((_, e)) => Err(e.into()),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn try_flock(f: File) -> io::Result<Option<Flocked>> {
    use fs4::fs_std::FileExt;
    match FileExt::try_lock_exclusive(&f) {
        Ok(true) => Ok(Some(f)),
        Ok(false) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Opens the lock file for writing, creating it (mode 0664 less the umask, as MapProxy's) and
/// its directory when missing.
fn open_lock_file(path: &Path) -> io::Result<File> {
    let open = || {
        let mut o = OpenOptions::new();
        o.read(true).write(true).create(true).truncate(false);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o664);
        o.open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            open()
        }
        r => r,
    }
}

/// The byte of the lock file that stands for a meta tile: SplitMix64's finalizer over its
/// main tile's coordinates. Fixed, so that every process and build agrees; below 2^62, so the
/// one-byte range fits an `off_t`. Two meta tiles on one byte only wait for each other.
pub fn lock_byte((x, y, z): TileCoord) -> i64 {
    let mut h = (x as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
        ^ (y as u64).wrapping_mul(0xC2B2_AE3D_27D4_EB4F)
        ^ (z as u64);
    h ^= h >> 30;
    h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94D0_49BB_1331_11EB);
    h ^= h >> 31;
    (h >> 2) as i64
}

#[cfg(target_os = "linux")]
mod imp {
    use super::*;
    use nix::errno::Errno;
    use nix::fcntl::{fcntl, FcntlArg};
    use std::sync::{Mutex, PoisonError};
    use std::time::Instant;

    /// How long a pooled descriptor is used after its open.
    const REUSE_FOR: Duration = Duration::from_secs(1);
    /// At most this many idle descriptors are kept.
    const MAX_IDLE: usize = 256;

    /// Idle descriptors of the lock file, each its own open file description holding no
    /// lock, with the time of its open.
    #[derive(Debug, Default)]
    pub struct Pool(Mutex<Vec<(File, Instant)>>);

    impl Pool {
        fn take(&self, path: &Path) -> io::Result<(File, Instant)> {
            let now = Instant::now();
            let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            while let Some((file, opened)) = idle.pop() {
                if now.duration_since(opened) < REUSE_FOR {
                    return Ok((file, opened));
                }
                // older ones are below it: all too old
                idle.clear();
            }
            drop(idle);
            Ok((open_lock_file(path)?, now))
        }

        fn put(&self, file: File, opened: Instant) {
            let mut idle = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if idle.len() < MAX_IDLE && opened.elapsed() < REUSE_FOR {
                // kept in order of opening: the oldest at the bottom
                let at = idle.partition_point(|(_, t)| *t <= opened);
                idle.insert(at, (file, opened));
            }
        }
    }

    pub fn lock_path(dir: &Path, lock_cache_id: &str, _coord: TileCoord) -> PathBuf {
        dir.join(format!("{lock_cache_id}.locks"))
    }

    fn range(kind: i32, coord: TileCoord) -> nix::libc::flock {
        nix::libc::flock {
            l_type: kind as _,
            l_whence: nix::libc::SEEK_SET as _,
            l_start: lock_byte(coord),
            l_len: 1,
            l_pid: 0,
        }
    }

    /// An OFD write lock on the meta tile's byte, through a descriptor of its own (OFD locks
    /// belong to the open file description: two tasks of one process exclude each other too).
    pub fn try_lock(
        path: &Path,
        coord: TileCoord,
        pool: &Pool,
    ) -> io::Result<Option<(File, Instant)>> {
        let (file, opened) = pool.take(path)?;
        match fcntl(
            &file,
            FcntlArg::F_OFD_SETLK(&range(nix::libc::F_WRLCK, coord)),
        ) {
            Ok(_) => Ok(Some((file, opened))),
            Err(Errno::EAGAIN | Errno::EACCES) => {
                pool.put(file, opened);
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Unlocks the byte and keeps the descriptor for the next lock; when the unlock fails,
    /// the descriptor is closed (which releases the lock too). The file stays.
    pub fn release(_path: &Path, coord: TileCoord, held: (File, Instant), pool: &Pool) {
        let (file, opened) = held;
        if fcntl(
            &file,
            FcntlArg::F_OFD_SETLK(&range(nix::libc::F_UNLCK, coord)),
        )
        .is_ok()
        {
            pool.put(file, opened);
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod imp {
    use super::*;
    use std::io::Write;

    /// No descriptors are kept: each meta tile has its own file.
    #[derive(Debug, Default)]
    pub struct Pool;

    pub fn lock_path(dir: &Path, lock_cache_id: &str, (x, y, z): TileCoord) -> PathBuf {
        dir.join(format!("{lock_cache_id}-{x}-{y}-{z}.lck"))
    }

    /// MapProxy's: an exclusive `flock` of the meta tile's own file, ` <pid>\n` written in it.
    pub fn try_lock(path: &Path, _coord: TileCoord, _pool: &Pool) -> io::Result<Option<File>> {
        let Some(mut file) = try_flock(open_lock_file(path)?)? else {
            return Ok(None);
        };
        // a failure to write is no reason to give up the lock
        let _ = file
            .set_len(0)
            .and_then(|()| writeln!(file, " {}", std::process::id()))
            .and_then(|()| file.flush());
        Ok(Some(file))
    }

    /// MapProxy removes the file while holding the lock: a waiter that opened the old file may
    /// then lock it while a newcomer locks a new one; both re-check the cache first.
    pub fn release(path: &Path, _coord: TileCoord, file: File, _pool: &Pool) {
        let _ = std::fs::remove_file(path);
        drop(file);
    }
}

/// A held lock: released when dropped.
#[derive(Debug)]
pub struct TileLock {
    #[cfg(target_os = "linux")]
    file: Option<(File, std::time::Instant)>,
    #[cfg(not(target_os = "linux"))]
    file: Option<File>,
    path: Arc<Path>,
    coord: TileCoord,
    pool: std::sync::Arc<imp::Pool>,
}

impl TileLock {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TileLock {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            imp::release(&self.path, self.coord, file, &self.pool);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn held_lock_times_out_then_is_free_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let locker = TileLocker::new(dir.path().join("locks"), "abc", Duration::from_millis(50));
        let path = locker.lock_path((1, 2, 3));
        #[cfg(target_os = "linux")]
        assert_eq!(path, dir.path().join("locks").join("abc.locks"));
        #[cfg(not(target_os = "linux"))]
        assert_eq!(path, dir.path().join("locks").join("abc-1-2-3.lck"));
        let held = locker.try_lock((1, 2, 3)).expect("first").expect("free");
        assert_eq!(held.path(), path);
        assert!(path.exists());
        let start = std::time::Instant::now();
        // a second locker (as another process would) and the same one both wait
        let other = TileLocker::new(dir.path().join("locks"), "abc", Duration::from_millis(50));
        for l in [&locker, &other] {
            match l.lock((1, 2, 3)).await {
                Err(LockError::Timeout(p)) => assert_eq!(p, path.display().to_string()),
                other => panic!("expected a timeout, got {other:?}"),
            }
        }
        assert!(start.elapsed() >= Duration::from_millis(100));
        // another meta tile is not held
        drop(other.lock((0, 0, 3)).await.expect("other tile"));
        drop(held);
        drop(other.lock((1, 2, 3)).await.expect("free again"));
    }

    #[tokio::test]
    async fn kept_descriptors_still_exclude() {
        let dir = tempfile::tempdir().expect("tempdir");
        let t = Duration::from_millis(30);
        let locker = TileLocker::new(dir.path(), "abc", t);
        let other = TileLocker::new(dir.path(), "abc", t);
        // descriptors given back to the pool, then used again
        for x in 0..3 {
            drop(locker.lock((x, 0, 5)).await.expect("lock"));
        }
        let held = locker.lock((1, 0, 5)).await.expect("held");
        for l in [&other, &locker] {
            assert!(matches!(
                l.lock((1, 0, 5)).await,
                Err(LockError::Timeout(_))
            ));
        }
        drop(held);
        drop(other.lock((1, 0, 5)).await.expect("released on drop"));
        drop(locker.lock((1, 0, 5)).await.expect("and again"));
    }

    #[test]
    fn lock_bytes_are_fixed_and_spread() {
        // fixed across builds: processes of different versions share a lock file
        assert_eq!(lock_byte((0, 0, 0)), 0);
        let a = lock_byte((1, 2, 3));
        assert_eq!(a, lock_byte((1, 2, 3)));
        assert!((0..1 << 62).contains(&a));
        let mut seen = std::collections::HashSet::new();
        for z in 0..6 {
            for x in 0..(1i64 << z) {
                for y in 0..(1i64 << z) {
                    assert!(seen.insert(lock_byte((x, y, z))), "{x} {y} {z}");
                }
            }
        }
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
        f.set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
            .expect("mtime");
        drop(f);
        cleanup_lock_dir(dir.path(), Duration::from_secs(3600));
        assert!(!old.exists(), "old lock file removed");
        assert!(other.exists());
        cleanup_lock_dir(&dir.path().join("missing"), Duration::ZERO);
    }
}
