//! MapProxy's compact cache (`mapproxy/cache/compact.py`): ArcGIS compact bundles, version 1
//! (`.bundle` data + `.bundlx` index) and version 2 (one `.bundle`, its index in the header).
//!
//! Layout, as MapProxy's (so an ArcGIS or MapProxy cache is served as it is and MapProxy reads
//! ours): `<dir>/L<zz>/R<rrrr>C<cccc>.bundle` (level in two or more decimal digits, the first
//! row and column of the bundle in four or more lower-case hex digits), 128×128 tiles per
//! bundle. Tiles are appended at the end of the bundle, each as a 4-byte little-endian size
//! and the tile's bytes; a replaced or removed tile's bytes stay where they are (MapProxy does
//! not compact bundles either).
//!
//! - v1: the `.bundle` starts with a 60-byte header and 128×128 zero sizes; the `.bundlx` has a
//!   16-byte header, one 5-byte offset of the tile's size record per tile (column-major:
//!   `x * 128 + y`), a 16-byte footer. An offset of 0 or one pointing at a size of 0: missing.
//! - v2: a 64-byte header, then one 8-byte entry per tile (row-major: `x + 128 * y`): the
//!   offset of the tile's bytes in the low 40 bits, its size in the high 24. Size 0: missing.
//!
//! Writers: a store or remove takes an exclusive `flock` on `<bundle>.lck` beside the bundle
//! (MapProxy's `FileLock`, so MapProxy writers and ours exclude each other), appends the tile,
//! then updates the header and finally the index entry: a reader (which takes no lock) sees
//! the old tile or the whole new one. MapProxy removes the lock file when it unlocks, so a
//! waiter may lock a file that is no longer the one at the path; ours checks after locking that
//! the locked file is still the one there, and tries again when not. Unlike MapProxy, ours
//! leaves the lock file in place when it unlocks: a MapProxy waiter that opened it then locks
//! the same file as the next writer, where a removal would let it lock a file nobody else
//! sees (MapProxy's own writers keep that race among themselves).
//!
//! Nothing read from a bundle is trusted: an entry that points past the end of the file, a
//! truncated index or size record reads as a missing tile (it is fetched and appended again);
//! a bundle whose header or index is cut short is an error when written to.
//!
//! Bundles have no tile times (MapProxy's `supports_timestamp = False`): a tile's time is the
//! Unix epoch, as for MBTiles.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;

use super::atomic_write::write_atomic;
use super::file::ensure_dir;
use super::{CachedTile, QuickLoad, TileCache};
use crate::grid::TileCoord;
use crate::lock::{try_flock, Flocked};

/// Tiles per bundle row and column.
const GRID: i64 = 128;
const TILES: usize = (GRID * GRID) as usize;

/// v1 `.bundle`: 60-byte header, then a zero size per tile.
const V1_HEADER_SIZE: u64 = 60;
/// v1 `.bundlx`: 16-byte header, 5 bytes per tile, 16-byte footer.
const V1_INDEX_HEADER: [u8; 16] =
    *b"\x03\x00\x00\x00\x10\x00\x00\x00\x00\x40\x00\x00\x05\x00\x00\x00";
const V1_INDEX_FOOTER: [u8; 16] =
    *b"\x00\x00\x00\x00\x10\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00";
/// v2: 64-byte header, then 8 bytes per tile.
const V2_HEADER_SIZE: u64 = 64;
const V2_INDEX_SIZE: u64 = 8 * TILES as u64;
/// v2 index entries: offset in the low 40 bits, size in the high 24.
const OFFSET_BITS: u32 = 40;
const OFFSET_MASK: u64 = (1 << OFFSET_BITS) - 1;
/// How long a writer waits for another's bundle lock (MapProxy's `FileLock` default).
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(60);
/// How often a held bundle lock is tried again (MapProxy's `step`).
const LOCK_STEP: Duration = Duration::from_millis(10);

/// The bundle format (`version: 1` or `version: 2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompactVersion {
    V1,
    V2,
}

impl CompactVersion {
    /// `version` as MapProxy accepts it: 1 or 2.
    pub fn from_number(v: f64) -> Option<CompactVersion> {
        if v == 1.0 {
            Some(CompactVersion::V1)
        } else if v == 2.0 {
            Some(CompactVersion::V2)
        } else {
            None
        }
    }
}

/// One compact cache of one grid.
#[derive(Debug, Clone)]
pub struct CompactCache {
    dir: PathBuf,
    version: CompactVersion,
    lock_timeout: Duration,
    directory_permissions: Option<u32>,
    file_permissions: Option<u32>,
}

/// Where a tile is: its bundle's path without extension and its place in the bundle.
struct Slot {
    base: PathBuf,
    /// The bundle's first column and row.
    origin: (i64, i64),
    /// The tile's column and row in the bundle (0..128).
    x: u64,
    y: u64,
}

impl Slot {
    fn with_ext(&self, ext: &str) -> PathBuf {
        let mut p = self.base.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    }

    /// v1: the tile's 5 bytes in the `.bundlx`.
    fn v1_entry(&self) -> u64 {
        16 + (self.x * GRID as u64 + self.y) * 5
    }

    /// v2: the tile's 8 bytes in the `.bundle`.
    fn v2_entry(&self) -> u64 {
        V2_HEADER_SIZE + (self.x + GRID as u64 * self.y) * 8
    }
}

impl CompactCache {
    /// A cache in `dir` (MapProxy: `directory`, else `<cache_dir>/<name>/<grid name>`).
    pub fn new(dir: impl Into<PathBuf>, version: CompactVersion) -> CompactCache {
        CompactCache {
            dir: dir.into(),
            version,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            directory_permissions: None,
            file_permissions: None,
        }
    }

    /// `directory_permissions` / `file_permissions`; `None`: as the umask gives them.
    pub fn with_permissions(
        mut self,
        directories: Option<u32>,
        files: Option<u32>,
    ) -> CompactCache {
        self.directory_permissions = directories;
        self.file_permissions = files;
        self
    }

    /// How long a writer waits for another writer's bundle lock (default 60 s).
    pub fn with_lock_timeout(mut self, timeout: Duration) -> CompactCache {
        self.lock_timeout = timeout;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn version(&self) -> CompactVersion {
        self.version
    }

    /// The bundle file of `coord` (`.bundle`; v1's index is the same name with `.bundlx`);
    /// `None` for negative coordinates.
    pub fn bundle_path(&self, coord: TileCoord) -> Option<PathBuf> {
        self.slot(coord).map(|s| s.with_ext(".bundle"))
    }

    fn slot(&self, (x, y, z): TileCoord) -> Option<Slot> {
        if x < 0 || y < 0 {
            return None;
        }
        let c = x / GRID * GRID;
        let r = y / GRID * GRID;
        let base = self
            .dir
            .join(format!("L{z:02}"))
            .join(format!("R{r:04x}C{c:04x}"));
        Some(Slot {
            base,
            origin: (c, r),
            x: (x % GRID) as u64,
            y: (y % GRID) as u64,
        })
    }

    /// The tile's bytes, or `None` when missing (or unreadable as a tile).
    fn read(&self, slot: &Slot) -> io::Result<Option<Vec<u8>>> {
        match self.version {
            CompactVersion::V1 => v1_read(slot, true),
            CompactVersion::V2 => v2_read(slot, true),
        }
    }

    /// Makes `file` with `init` when it is not there (atomically: a reader sees no file or the
    /// whole one). Called under the bundle lock.
    fn ensure_file(&self, file: &Path, init: impl FnOnce() -> Vec<u8>) -> io::Result<()> {
        if file.exists() {
            return Ok(());
        }
        let dir = file.parent().unwrap_or(Path::new(""));
        write_atomic(file, &init(), self.file_permissions, || {
            ensure_dir(dir, self.directory_permissions)
        })
        .map(|_| ())
    }

    fn lock(&self, slot: &Slot) -> io::Result<BundleLock> {
        if let Some(dir) = slot.base.parent() {
            ensure_dir(dir, self.directory_permissions)?;
        }
        BundleLock::acquire(
            &slot.with_ext(".lck"),
            self.lock_timeout,
            self.file_permissions,
        )
    }

    fn store_v1(&self, slot: &Slot, data: &[u8]) -> io::Result<()> {
        let bundle_path = slot.with_ext(".bundle");
        let index_path = slot.with_ext(".bundlx");
        self.ensure_file(&bundle_path, || v1_bundle_init(slot.origin))?;
        self.ensure_file(&index_path, v1_index_init)?;
        let bundle = open_rw(&bundle_path)?;
        let index = open_rw(&index_path)?;
        let mut header = [0u8; V1_HEADER_SIZE as usize];
        if !read_exact_at(&bundle, &mut header, 0)? {
            return Err(corrupt(&bundle_path, "its header is cut short"));
        }
        let mut entry = [0u8; 5];
        if !read_exact_at(&index, &mut entry, slot.v1_entry())? {
            return Err(corrupt(&index_path, "its index is cut short"));
        }
        let prev = u40(entry);
        // a tile stored before (MapProxy counts the tiles in the header)
        let mut size = [0u8; 4];
        let is_new = prev == 0 || !read_exact_at(&bundle, &mut size, prev)? || size == [0; 4];
        let end = bundle.metadata()?.len();
        if end >= 1 << OFFSET_BITS {
            return Err(corrupt(&bundle_path, "it is full (1 TiB)"));
        }
        let len = u32::try_from(data.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "tile over 4 GiB"))?;
        write_all_at(&bundle, &record(data, len), end)?;
        // header: largest tile, tiles * 4, bundle size
        let max = le_u32(&header, 8).max(len);
        header[8..12].copy_from_slice(&max.to_le_bytes());
        if is_new {
            let n = le_u64(&header, 16).wrapping_add(4);
            header[16..24].copy_from_slice(&n.to_le_bytes());
        }
        let total = le_u64(&header, 24).wrapping_add(u64::from(len) + 4);
        header[24..32].copy_from_slice(&total.to_le_bytes());
        write_all_at(&bundle, &header, 0)?;
        // last: the index entry, so that readers see the whole tile or the old one
        write_all_at(&index, &end.to_le_bytes()[..5], slot.v1_entry())
    }

    fn store_v2(&self, slot: &Slot, data: &[u8]) -> io::Result<()> {
        let path = slot.with_ext(".bundle");
        let len = u32::try_from(data.len())
            .ok()
            .filter(|l| *l < 1 << (64 - OFFSET_BITS))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a compact cache v2 tile must be below 16 MiB",
                )
            })?;
        self.ensure_file(&path, v2_bundle_init)?;
        let bundle = open_rw(&path)?;
        let end = bundle.metadata()?.len();
        if end < V2_HEADER_SIZE + V2_INDEX_SIZE {
            return Err(corrupt(&path, "its header or index is cut short"));
        }
        let offset = end + 4;
        if offset + u64::from(len) > OFFSET_MASK {
            return Err(corrupt(&path, "it is full (1 TiB)"));
        }
        write_all_at(&bundle, &record(data, len), end)?;
        let entry = offset | (u64::from(len) << OFFSET_BITS);
        write_all_at(&bundle, &entry.to_le_bytes(), slot.v2_entry())?;
        // header: largest tile, file size
        let mut max = [0u8; 4];
        if read_exact_at(&bundle, &mut max, 8)? && len > u32::from_le_bytes(max) {
            write_all_at(&bundle, &len.to_le_bytes(), 8)?;
        }
        write_all_at(&bundle, &(offset + u64::from(len)).to_le_bytes(), 24)
    }
}

impl TileCache for CompactCache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        let Some(slot) = self.slot(coord) else {
            return Ok(None);
        };
        Ok(self.read(&slot)?.map(|data| CachedTile {
            data: Bytes::from(data),
            mtime: UNIX_EPOCH,
        }))
    }

    /// A hit is positional reads of the index entry and the tile (v1: two files), taking no
    /// lock (a writer appends the tile before it writes its entry): done on the calling
    /// thread, as a file cache's hit.
    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'_> {
        QuickLoad::Now(self.load(coord))
    }

    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        let Some(slot) = self.slot(coord) else {
            return Ok(false);
        };
        let found = match self.version {
            CompactVersion::V1 => v1_read(&slot, false)?,
            CompactVersion::V2 => v2_read(&slot, false)?,
        };
        Ok(found.is_some())
    }

    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        let slot = self.slot(coord).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("tile {coord:?} has negative coordinates"),
            )
        })?;
        let _lock = self.lock(&slot)?;
        match self.version {
            CompactVersion::V1 => self.store_v1(&slot, data)?,
            CompactVersion::V2 => self.store_v2(&slot, data)?,
        }
        Ok(Some(UNIX_EPOCH))
    }

    /// The index entry is cleared (the bytes stay in the bundle); no bundle, nothing to do.
    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        let Some(slot) = self.slot(coord) else {
            return Ok(());
        };
        let (file, at, width) = match self.version {
            CompactVersion::V1 => (slot.with_ext(".bundlx"), slot.v1_entry(), 5),
            CompactVersion::V2 => (slot.with_ext(".bundle"), slot.v2_entry(), 8),
        };
        if !file.exists() {
            return Ok(());
        }
        let _lock = self.lock(&slot)?;
        let f = match open_rw(&file) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        // an index cut short holds no entry to clear
        if f.metadata()?.len() >= at + width {
            write_all_at(&f, &[0u8; 8][..width as usize], at)?;
        }
        Ok(())
    }
}

/// A v1 tile: its offset in the `.bundlx`, its size record in the `.bundle`. `with_data`:
/// the bytes are read too (else an empty vector stands for "there").
fn v1_read(slot: &Slot, with_data: bool) -> io::Result<Option<Vec<u8>>> {
    let Some(index) = open_ro(&slot.with_ext(".bundlx"))? else {
        return Ok(None);
    };
    let Some(bundle) = open_ro(&slot.with_ext(".bundle"))? else {
        return Ok(None);
    };
    let entry = |index: &File| -> io::Result<Option<u64>> {
        let mut e = [0u8; 5];
        Ok(read_exact_at(index, &mut e, slot.v1_entry())?.then(|| u40(e)))
    };
    // the 5-byte entries are not aligned: one read while a writer rewrites it could mix old
    // and new bytes, so the entry is read again after the tile and must be the same
    for _ in 0..8 {
        let Some(offset) = entry(&index)?.filter(|o| *o != 0) else {
            return Ok(None);
        };
        // the file's length after the entry: a tile is appended before its entry is written
        let end = bundle.metadata()?.len();
        let mut size = [0u8; 4];
        if offset.saturating_add(4) > end || !read_exact_at(&bundle, &mut size, offset)? {
            return Ok(None);
        }
        let size = u64::from(u32::from_le_bytes(size));
        if size == 0 || offset + 4 + size > end {
            return Ok(None);
        }
        let data = if with_data {
            match read_vec_at(&bundle, offset + 4, size)? {
                Some(d) => d,
                None => return Ok(None),
            }
        } else {
            Vec::new()
        };
        if entry(&index)? == Some(offset) {
            return Ok(Some(data));
        }
    }
    Err(io::Error::other(format!(
        "{}: the index entry kept changing while it was read",
        slot.with_ext(".bundlx").display()
    )))
}

/// A v2 tile: its entry in the bundle's index, then its bytes.
fn v2_read(slot: &Slot, with_data: bool) -> io::Result<Option<Vec<u8>>> {
    let Some(bundle) = open_ro(&slot.with_ext(".bundle"))? else {
        return Ok(None);
    };
    let mut e = [0u8; 8];
    if !read_exact_at(&bundle, &mut e, slot.v2_entry())? {
        return Ok(None);
    }
    let e = u64::from_le_bytes(e);
    let size = e >> OFFSET_BITS;
    let offset = e & OFFSET_MASK;
    if size == 0 {
        return Ok(None);
    }
    let end = bundle.metadata()?.len();
    if offset + size > end {
        return Ok(None);
    }
    if !with_data {
        return Ok(Some(Vec::new()));
    }
    read_vec_at(&bundle, offset, size)
}

/// A new v1 `.bundle`: MapProxy's header (the bundle's rows and columns in it) and a zero
/// size per tile.
fn v1_bundle_init((c, r): (i64, i64)) -> Vec<u8> {
    let mut b = Vec::with_capacity(V1_HEADER_SIZE as usize + 4 * TILES);
    for v in [3u32, TILES as u32, 16, 5] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u64, V1_HEADER_SIZE + 4 * TILES as u64, 40] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    // rows and columns below 2^32 (the level dirs of real grids are far below)
    let (c, r) = (c as u32, r as u32);
    for v in [16u32, r, r + 127, c, c + 127] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    b.resize(V1_HEADER_SIZE as usize + 4 * TILES, 0);
    b
}

/// A new v1 `.bundlx`: every entry points at the tile's zero size in the new `.bundle`.
fn v1_index_init() -> Vec<u8> {
    let mut b = Vec::with_capacity(32 + 5 * TILES);
    b.extend_from_slice(&V1_INDEX_HEADER);
    for i in 0..TILES as u64 {
        b.extend_from_slice(&(i * 4 + V1_HEADER_SIZE).to_le_bytes()[..5]);
    }
    b.extend_from_slice(&V1_INDEX_FOOTER);
    b
}

/// A new v2 `.bundle`: MapProxy's header and an index of missing tiles (ArcGIS writes offset
/// 4, size 0).
fn v2_bundle_init() -> Vec<u8> {
    let mut b = Vec::with_capacity((V2_HEADER_SIZE + V2_INDEX_SIZE) as usize);
    for v in [3u32, TILES as u32, 0, 5] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [0u64, V2_HEADER_SIZE + V2_INDEX_SIZE, 40] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for v in [
        20 + V2_INDEX_SIZE as u32,
        3,
        16,
        TILES as u32,
        5,
        V2_INDEX_SIZE as u32,
    ] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    for _ in 0..TILES {
        b.extend_from_slice(&4u64.to_le_bytes());
    }
    b
}

/// A tile as appended: its size, then its bytes (one write).
fn record(data: &[u8], len: u32) -> Vec<u8> {
    let mut r = Vec::with_capacity(4 + data.len());
    r.extend_from_slice(&len.to_le_bytes());
    r.extend_from_slice(data);
    r
}

fn u40(e: [u8; 5]) -> u64 {
    let mut b = [0u8; 8];
    b[..5].copy_from_slice(&e);
    u64::from_le_bytes(b)
}

fn le_u32(b: &[u8], at: usize) -> u32 {
    let mut v = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        v.copy_from_slice(s);
    }
    u32::from_le_bytes(v)
}

fn le_u64(b: &[u8], at: usize) -> u64 {
    let mut v = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        v.copy_from_slice(s);
    }
    u64::from_le_bytes(v)
}

fn corrupt(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("compact cache bundle {}: {what}", path.display()),
    )
}

/// Opened for reading; `None` when the file is not there.
fn open_ro(path: &Path) -> io::Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", path.display()))),
    }
}

fn open_rw(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// Fills `buf` from `at`; false when the file ends first.
fn read_exact_at(f: &File, buf: &mut [u8], at: u64) -> io::Result<bool> {
    #[cfg(unix)]
    let r = std::os::unix::fs::FileExt::read_exact_at(f, buf, at);
    #[cfg(not(unix))]
    let r = {
        use std::io::{Read, Seek, SeekFrom};
        let mut f = f;
        f.seek(SeekFrom::Start(at)).and_then(|_| f.read_exact(buf))
    };
    match r {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// `len` bytes from `at` (the caller has checked them against the file's length); `None`
/// when the file ends first.
fn read_vec_at(f: &File, at: u64, len: u64) -> io::Result<Option<Vec<u8>>> {
    let len = usize::try_from(len).map_err(|_| io::Error::other("tile too large"))?;
    let mut data = vec![0u8; len];
    Ok(read_exact_at(f, &mut data, at)?.then_some(data))
}

#[cfg(unix)]
fn write_all_at(f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(f, buf, at)
}

#[cfg(not(unix))]
fn write_all_at(f: &File, buf: &[u8], at: u64) -> io::Result<()> {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = f;
    f.seek(SeekFrom::Start(at))?;
    f.write_all(buf)
}

/// MapProxy's `FileLock(<bundle>.lck)`: an exclusive `flock` of the lock file, ` <pid>\n`
/// written in it; unlocked when dropped. The file stays (see the module's notes).
struct BundleLock {
    _file: Flocked,
}

impl BundleLock {
    fn acquire(path: &Path, timeout: Duration, mode: Option<u32>) -> io::Result<BundleLock> {
        let deadline = Instant::now() + timeout;
        loop {
            let new = mode.is_some() && !path.exists();
            let mut o = OpenOptions::new();
            o.read(true).write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut o, 0o664);
            let file = o.open(path).map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("cannot create lock file {}: {e}", path.display()),
                )
            })?;
            #[cfg(unix)]
            if let (true, Some(mode)) = (new, mode) {
                use std::os::unix::fs::PermissionsExt;
                file.set_permissions(fs::Permissions::from_mode(mode))?;
            }
            #[cfg(not(unix))]
            let _ = new;
            if let Some(file) = try_flock(file)? {
                // the holder before us removes the file it locked: ours must still be the
                // one at the path, else another process may lock the new one meanwhile
                if is_at_path(&file, path) {
                    let pid = format!(" {}\n", std::process::id());
                    // a failure to write is no reason to give up the lock
                    let _ = file
                        .set_len(0)
                        .and_then(|()| write_all_at(&file, pid.as_bytes(), 0));
                    return Ok(BundleLock { _file: file });
                }
                continue;
            }
            if Instant::now() >= deadline {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("timeout waiting for lock {}", path.display()),
                ));
            }
            std::thread::sleep(LOCK_STEP);
        }
    }
}

/// Is the open `file` the one at `path` now (same device and inode)?
#[cfg(unix)]
fn is_at_path(file: &File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn is_at_path(_file: &File, path: &Path) -> bool {
    path.exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmp() -> tempfile::TempDir {
        tempfile::tempdir().expect("tempdir")
    }

    #[test]
    fn bundle_names_as_mapproxy() {
        let c = CompactCache::new("/c", CompactVersion::V2);
        assert_eq!(
            c.bundle_path((0, 0, 0)),
            Some(PathBuf::from("/c/L00/R0000C0000.bundle"))
        );
        assert_eq!(
            c.bundle_path((1000, 77, 12)),
            Some(PathBuf::from("/c/L12/R0000C0380.bundle"))
        );
        assert_eq!(
            c.bundle_path((262_143, 131_072, 18)),
            Some(PathBuf::from("/c/L18/R20000C3ff80.bundle"))
        );
        assert_eq!(c.bundle_path((-1, 0, 3)), None);
        let s = c.slot((130, 5, 3)).expect("slot");
        assert_eq!((s.x, s.y, s.origin), (2, 5, (128, 0)));
        assert_eq!(s.v2_entry(), 64 + (2 + 128 * 5) * 8);
        assert_eq!(s.v1_entry(), 16 + (2 * 128 + 5) * 5);
    }

    #[test]
    fn new_files_have_mapproxy_sizes_and_headers() {
        let b = v1_bundle_init((128, 256));
        assert_eq!(b.len(), 60 + 4 * 16384);
        assert_eq!(le_u64(&b, 24), 60 + 65536);
        assert_eq!(
            (
                le_u32(&b, 44),
                le_u32(&b, 48),
                le_u32(&b, 52),
                le_u32(&b, 56)
            ),
            (256, 383, 128, 255)
        );
        let i = v1_index_init();
        assert_eq!(i.len(), 16 + 5 * 16384 + 16);
        assert_eq!(u40(i[16 + 5..16 + 10].try_into().expect("5")), 64);
        let v2 = v2_bundle_init();
        assert_eq!(v2.len(), 64 + 8 * 16384);
        assert_eq!(le_u64(&v2, 24), v2.len() as u64);
        assert_eq!(le_u64(&v2, 64), 4);
    }

    /// Truncated and corrupted bundles and indexes read as missing tiles or errors, never a
    /// panic; a store into a bundle cut inside its header or index is an error.
    #[test]
    fn corrupt_or_truncated_bundles_read_as_missing() {
        for version in [CompactVersion::V1, CompactVersion::V2] {
            let d = tmp();
            let cache = CompactCache::new(d.path(), version);
            let tile = vec![7u8; 5000];
            for c in [(0, 0, 3), (1, 0, 3), (2, 0, 3)] {
                cache.store(c, &tile).expect("store");
            }
            let bundle = cache.bundle_path((0, 0, 3)).expect("path");
            let index = bundle.with_extension("bundlx");
            let len = fs::metadata(&bundle).expect("bundle").len();
            // the last tile cut short: missing, the others still there
            let f = OpenOptions::new().write(true).open(&bundle).expect("open");
            f.set_len(len - 10).expect("truncate");
            assert!(
                cache.load((2, 0, 3)).expect("load").is_none(),
                "{version:?}"
            );
            assert!(
                !cache.is_cached((2, 0, 3)).expect("is_cached"),
                "{version:?}"
            );
            assert_eq!(
                cache.load((0, 0, 3)).expect("load").expect("tile").data,
                tile
            );
            // stored again: appended after the cut, whole
            cache.store((2, 0, 3), &tile).expect("store after a cut");
            assert_eq!(
                cache.load((2, 0, 3)).expect("load").expect("tile").data,
                tile
            );
            // an entry pointing far past the end, or at a huge size
            match version {
                CompactVersion::V1 => {
                    let at = cache.slot((1, 0, 3)).expect("slot").v1_entry();
                    let ix = OpenOptions::new().write(true).open(&index).expect("open");
                    write_all_at(&ix, &[0xff; 5], at).expect("write");
                    // a size record of 4 GiB
                    let end = fs::metadata(&bundle).expect("bundle").len();
                    let b = OpenOptions::new().write(true).open(&bundle).expect("open");
                    write_all_at(&b, &[0xff; 4], end).expect("write");
                    let at0 = cache.slot((0, 0, 3)).expect("slot").v1_entry();
                    write_all_at(&ix, &end.to_le_bytes()[..5], at0).expect("write");
                }
                CompactVersion::V2 => {
                    let b = OpenOptions::new().write(true).open(&bundle).expect("open");
                    let at = cache.slot((1, 0, 3)).expect("slot").v2_entry();
                    write_all_at(&b, &[0xff; 8], at).expect("write");
                    let at0 = cache.slot((0, 0, 3)).expect("slot").v2_entry();
                    let e = 100u64 | ((1 << 24) - 1) << 40;
                    write_all_at(&b, &e.to_le_bytes(), at0).expect("write");
                }
            }
            for c in [(0, 0, 3), (1, 0, 3)] {
                assert!(cache.load(c).expect("load").is_none(), "{version:?} {c:?}");
                assert!(!cache.is_cached(c).expect("is_cached"), "{version:?} {c:?}");
            }
            // the index or header itself cut short: reads miss, stores are errors
            let cut = match version {
                CompactVersion::V1 => &index,
                CompactVersion::V2 => &bundle,
            };
            let f = OpenOptions::new().write(true).open(cut).expect("open");
            f.set_len(30).expect("truncate");
            for c in [(0, 0, 3), (2, 0, 3), (127, 127, 3)] {
                assert!(cache.load(c).expect("load").is_none(), "{version:?} {c:?}");
                assert!(!cache.is_cached(c).expect("is_cached"), "{version:?}");
                cache.remove(c).expect("remove from a cut index");
            }
            let e = cache.store((5, 5, 3), &tile).expect_err("a cut bundle");
            assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{version:?}: {e}");
            // an empty file, a v1 data file cut in its header
            f.set_len(0).expect("truncate");
            assert!(cache.load((0, 0, 3)).expect("load").is_none());
            if version == CompactVersion::V1 {
                fs::write(&index, v1_index_init()).expect("index");
                let f = OpenOptions::new().write(true).open(&bundle).expect("open");
                f.set_len(20).expect("truncate");
                assert!(cache.load((2, 0, 3)).expect("load").is_none());
                let e = cache.store((5, 5, 3), &tile).expect_err("a cut bundle");
                assert_eq!(e.kind(), io::ErrorKind::InvalidData, "{e}");
            }
            // the lock file stays, unlocked
            let lck = bundle.with_extension("lck");
            let f = try_flock(File::open(&lck).expect("lock file")).expect("flock");
            assert!(f.is_some(), "{version:?}: still locked");
        }
    }

    #[test]
    fn v2_refuses_tiles_of_16_mib() {
        let d = tmp();
        let cache = CompactCache::new(d.path(), CompactVersion::V2);
        let e = cache
            .store((0, 0, 1), &vec![0u8; 1 << 24])
            .expect_err("too large");
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
        assert!(cache.store((0, 0, 1), &[1, 2, 3]).expect("small").is_some());
        assert!(cache.store((-1, 0, 1), &[1]).is_err());
    }

    #[test]
    fn a_held_bundle_lock_makes_a_writer_wait() {
        let d = tmp();
        let cache = CompactCache::new(d.path(), CompactVersion::V1)
            .with_lock_timeout(Duration::from_millis(100));
        cache.store((0, 0, 2), &[1, 2, 3]).expect("store");
        let slot = cache.slot((0, 0, 2)).expect("slot");
        let held = cache.lock(&slot).expect("lock");
        let start = Instant::now();
        let e = cache.store((1, 1, 2), &[4]).expect_err("held");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        assert!(start.elapsed() >= Duration::from_millis(100));
        // readers take no lock
        assert!(cache.load((0, 0, 2)).expect("load").is_some());
        drop(held);
        cache.store((1, 1, 2), &[4]).expect("free again");
        // MapProxy removes the lock file while it holds it: a waiter ends up holding the file
        // that is at the path, so that the next writer waits for it
        let held = cache.lock(&slot).expect("lock");
        let lck = slot.with_ext(".lck");
        let waiter = {
            let cache = cache.clone().with_lock_timeout(Duration::from_secs(10));
            let base = slot.base.clone();
            std::thread::spawn(move || {
                let slot = Slot {
                    base,
                    origin: (0, 0),
                    x: 0,
                    y: 0,
                };
                cache.lock(&slot).map(|l| (l, slot.with_ext(".lck")))
            })
        };
        std::thread::sleep(Duration::from_millis(50));
        fs::remove_file(&lck).expect("remove");
        drop(held);
        let (got, path) = waiter.join().expect("waiter").expect("locked");
        assert!(is_at_path(&got._file, &path));
        let e = cache
            .store((1, 1, 2), &[5])
            .expect_err("the waiter holds it");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut, "{e}");
        drop(got);
    }
}
