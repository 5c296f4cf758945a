//! The file caches' recently read tiles, kept in memory and checked against the file on every
//! hit.
//!
//! A tile read from disk costs an `openat`, an `fstat`, a `read` and a `close`: a fifth of a
//! cached tile's CPU time, most of it in the kernel. Here a tile that was read once is kept
//! with what its `fstat` said (device, inode, size, modification and change times). The next
//! request `stat`s the path (one `statx`, not following a link) and answers from memory when
//! the file there is still that one. As in nginx's `open_file_cache`, but checked on every
//! request, not every `open_file_cache_valid` seconds: a tile is written to a temporary file
//! and renamed over the old one (by MapProxy and by us), so a rewritten tile is another inode,
//! and a file changed in place has another change time. A tile never outlives its file.
//!
//! Not kept:
//! - tiles of caches on file systems other than local ones ([`local_fs`]): on NFS, SMB, FUSE
//!   or a cluster file system a `stat` may be answered from the client's attribute cache for
//!   up to a minute, where the `open` of a read asks the server (close-to-open consistency),
//!   so a tile another host re-seeded would be missed;
//! - a file changed in the last [`SETTLE`] (git's "racily clean" rule): its times could still
//!   equal those of a change within the clock's granularity (a write in place while it was
//!   read, or an inode number reused by a removal and a new file);
//! - symbolic links (`link_single_color_images: true`): their time is the link's own;
//! - tiles larger than [`MAX_TILE`].
//!
//! All file caches of the process share one budget of [`BUDGET`] bytes. `quick_cache` (sharded,
//! weighted by size, CLOCK-Pro eviction) decides what stays.

use std::fs;
use std::io;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::CachedTile;

/// The memory all kept tiles may take, paths and bookkeeping included.
pub const BUDGET: u64 = 16 << 20;

/// Larger tiles are read from disk each time.
pub const MAX_TILE: usize = 256 << 10;

/// A file changed more recently than this is read, not kept.
pub const SETTLE: Duration = Duration::from_secs(2);

/// What identifies one version of a file: a rename gives another inode, a write in place
/// another change time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    /// `None` where there are no inodes (not unix).
    pub fn of(m: &fs::Metadata) -> Option<Stamp> {
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            Some(Stamp {
                dev: m.dev(),
                ino: m.ino(),
                size: m.size(),
                mtime: (m.mtime(), m.mtime_nsec()),
                ctime: (m.ctime(), m.ctime_nsec()),
            })
        }
        #[cfg(not(unix))]
        {
            let _ = m;
            None
        }
    }

    /// Neither time is within `settle` of now (nor in the future).
    fn settled(&self, settle: Duration) -> bool {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i128);
        let ns = |(s, n): (i64, i64)| i128::from(s) * 1_000_000_000 + i128::from(n);
        let latest = ns(self.mtime).max(ns(self.ctime));
        now - latest >= settle.as_nanos() as i128
    }
}

/// Whether the file system of `dir` is a local one, where a `stat` sees every change at once
/// (ext2/3/4, XFS, Btrfs, ZFS, bcachefs, F2FS, ReiserFS, tmpfs, overlayfs): `None` when `dir`
/// cannot be asked (not made yet). Other systems than Linux: `Some(false)`.
pub fn local_fs(dir: &Path) -> Option<bool> {
    #[cfg(target_os = "linux")]
    {
        use nix::sys::statfs as fs;
        const ZFS_SUPER_MAGIC: i64 = 0x2fc1_2fc1;
        const BCACHEFS_SUPER_MAGIC: i64 = 0xca45_1a4e;
        let t = fs::statfs(dir).ok()?.filesystem_type();
        let local = [
            fs::EXT4_SUPER_MAGIC,
            fs::XFS_SUPER_MAGIC,
            fs::BTRFS_SUPER_MAGIC,
            fs::F2FS_SUPER_MAGIC,
            fs::REISERFS_SUPER_MAGIC,
            fs::TMPFS_MAGIC,
            fs::OVERLAYFS_SUPER_MAGIC,
        ]
        .contains(&t)
            || [ZFS_SUPER_MAGIC, BCACHEFS_SUPER_MAGIC].contains(&(t.0 as i64));
        Some(local)
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = dir;
        Some(false)
    }
}

/// A kept tile and the stamp of the file it was read from.
#[derive(Clone)]
struct Entry {
    stamp: Stamp,
    tile: CachedTile,
}

#[derive(Clone)]
struct BySize;

impl quick_cache::Weighter<Key, Entry> for BySize {
    fn weight(&self, path: &Key, entry: &Entry) -> u64 {
        // the path, the bytes, and the entry's own size with the map's slot, roughly
        (path.len() + entry.tile.data.len() + 128) as u64
    }
}

/// A kept tile's path as bytes: hashed in one piece (`Path`'s own hash goes component by
/// component, most of a hit's lookup).
type Key = Box<[u8]>;

fn key(path: &Path) -> &[u8] {
    path.as_os_str().as_encoded_bytes()
}

type Tiles = quick_cache::sync::Cache<Key, Entry, BySize>;

fn tiles() -> &'static Tiles {
    static TILES: OnceLock<Tiles> = OnceLock::new();
    // about 10 KB a tile: the estimate only sizes the shards' first tables
    TILES.get_or_init(|| Tiles::with_weighter(BUDGET as usize / 10_000, BUDGET, BySize))
}

/// The tile at `path`: from memory when the file there is the one that was read, else by
/// `read` (which returns the tile and the stamp of the file it read, `None` to keep it out of
/// memory), then kept when it has settled.
pub fn load(
    path: &Path,
    read: impl FnOnce(&Path) -> io::Result<(CachedTile, Option<Stamp>)>,
) -> io::Result<CachedTile> {
    load_settled(path, read, SETTLE)
}

/// [`load`], keeping files unchanged for `settle`.
fn load_settled(
    path: &Path,
    read: impl FnOnce(&Path) -> io::Result<(CachedTile, Option<Stamp>)>,
    settle: Duration,
) -> io::Result<CachedTile> {
    let tiles = tiles();
    let kept = tiles.get(key(path));
    if let Some(kept) = &kept {
        match fs::symlink_metadata(path) {
            Ok(m) if Stamp::of(&m) == Some(kept.stamp) => return Ok(kept.tile.clone()),
            Ok(_) => {}
            Err(e) => {
                tiles.remove(key(path));
                return Err(e);
            }
        }
    }
    let (tile, stamp) = read(path)?;
    match stamp {
        Some(stamp) if tile.data.len() <= MAX_TILE && stamp.settled(settle) => tiles.insert(
            key(path).into(),
            Entry {
                stamp,
                tile: tile.clone(),
            },
        ),
        // a stale entry goes; where none was kept (a tile not settled yet, too large, a
        // link), there is nothing to remove
        _ if kept.is_some() => {
            tiles.remove(key(path));
        }
        _ => {}
    }
    Ok(tile)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use std::time::UNIX_EPOCH;

    fn read_counting(
        count: &std::cell::Cell<usize>,
    ) -> impl Fn(&Path) -> io::Result<(CachedTile, Option<Stamp>)> + '_ {
        move |p: &Path| {
            count.set(count.get() + 1);
            let data = fs::read(p)?;
            let m = fs::symlink_metadata(p)?;
            let tile = CachedTile {
                data: Bytes::from(data),
                mtime: m.modified().unwrap_or(UNIX_EPOCH),
            };
            Ok((tile, Stamp::of(&m)))
        }
    }

    #[test]
    fn a_kept_tile_is_served_until_its_file_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("0.png");
        fs::write(&p, b"one").expect("write");
        let reads = std::cell::Cell::new(0);
        let read = read_counting(&reads);
        assert_eq!(
            load_settled(&p, &read, Duration::ZERO).expect("load").data,
            &b"one"[..]
        );
        assert_eq!(
            load_settled(&p, &read, Duration::ZERO).expect("load").data,
            &b"one"[..]
        );
        assert_eq!(reads.get(), 1, "the second load came from memory");

        // replaced by rename, as tiles are written: another inode, read again
        let tmp = dir.path().join("0.png.tmp");
        fs::write(&tmp, b"two").expect("write");
        fs::rename(&tmp, &p).expect("rename");
        assert_eq!(
            load_settled(&p, &read, Duration::ZERO).expect("load").data,
            &b"two"[..]
        );
        assert_eq!(reads.get(), 2);

        // written in place, same size: another change time (or, within the clock's
        // granularity, the same inode and time: the size differs here to be sure)
        fs::write(&p, b"three").expect("write");
        assert_eq!(
            load_settled(&p, &read, Duration::ZERO).expect("load").data,
            &b"three"[..]
        );
        assert_eq!(reads.get(), 3);

        // removed: not found, and forgotten
        fs::remove_file(&p).expect("remove");
        let e = load_settled(&p, &read, Duration::ZERO).expect_err("gone");
        assert_eq!(e.kind(), io::ErrorKind::NotFound);
        assert_eq!(reads.get(), 3, "a removed tile is not read");
    }

    #[test]
    fn a_file_changed_just_now_is_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("0.png");
        fs::write(&p, b"new").expect("write");
        let reads = std::cell::Cell::new(0);
        let read = read_counting(&reads);
        load(&p, &read).expect("load");
        load(&p, &read).expect("load");
        assert_eq!(reads.get(), 2, "changed within SETTLE: read each time");
    }

    #[test]
    fn file_systems_are_told_apart() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(local_fs(dir.path()).is_some());
        assert_eq!(local_fs(&dir.path().join("missing")), None);
        if cfg!(target_os = "linux") {
            // procfs: not one where tiles are kept
            assert_eq!(local_fs(Path::new("/proc")), Some(false));
        }
    }

    #[test]
    fn unstamped_and_large_tiles_are_not_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("big.png");
        fs::write(&p, vec![7u8; MAX_TILE + 1]).expect("write");
        let reads = std::cell::Cell::new(0);
        let read = read_counting(&reads);
        load_settled(&p, &read, Duration::ZERO).expect("load");
        load_settled(&p, &read, Duration::ZERO).expect("load");
        assert_eq!(reads.get(), 2);

        let q = dir.path().join("link.png");
        fs::write(&q, b"x").expect("write");
        let unstamped = |p: &Path| read(p).map(|(t, _)| (t, None));
        load_settled(&q, unstamped, Duration::ZERO).expect("load");
        load_settled(&q, &read, Duration::ZERO).expect("load");
        assert_eq!(reads.get(), 4, "a tile read without a stamp was not kept");
    }
}
