//! MapProxy's `write_atomic` (`mapproxy/util/fs.py`): a file is replaced so that a reader, in
//! this process or another, sees the whole old file or the whole new one, never a part.
//!
//! MapProxy writes `<file>.tmp-<random>` in the file's directory (created exclusively, mode
//! 0664 less the umask) and renames it over the file. That is what [`write_atomic`] does
//! wherever it must. On Linux, a file that does not exist yet (a cache miss's new tile, the
//! common case) is written as an unnamed file in its directory (`O_TMPFILE`) and given its
//! name with `linkat` once written: the same atomic appearance with one directory change
//! instead of three (the temporary name added, then found and removed by the rename, which
//! adds the real one). On ext4 that took 5-15% off a cache miss's CPU time (bench/README:
//! `mapproxy_misses.sh`, session 16), and a crash leaves no `.tmp-` files behind.
//!
//! The rename is still used when the file exists (a re-seeded or re-made tile, a linked
//! single-colour tile replaced: `linkat` does not replace), on file systems without unnamed
//! files (NFS, older kernels), and where the process may not link one (see [`Link`]).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `data` to `file` atomically, made with mode 0664 less the umask, or `mode` when
/// given (set on the open file, before it has its name). `make_dir` is called once when the
/// directory is missing. Returns the file's modification time.
pub fn write_atomic(
    file: &Path,
    data: &[u8],
    mode: Option<u32>,
    make_dir: impl Fn() -> io::Result<()>,
) -> io::Result<SystemTime> {
    #[cfg(target_os = "linux")]
    if let Some(written) = unnamed::write(file, data, mode, &make_dir) {
        return written;
    }
    write_renamed(file, data, mode, make_dir)
}

/// A new temporary name next to `file`: `<file>.tmp-<number below 10^8>`, as MapProxy's
/// `random.randint(0, 99999999)`, from the process id, a counter and the clock.
fn temporary_name(file: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let pid = *PID.get_or_init(|| u64::from(std::process::id()));
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let rnd = (pid * 7919 + n * 104_729 + u64::from(nanos)) % 100_000_000;
    let mut tmp = file.as_os_str().to_owned();
    tmp.push(format!(".tmp-{rnd}"));
    PathBuf::from(tmp)
}

/// The same error with the path it is about.
fn about(e: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{what} {}: {e}", path.display()))
}

/// MapProxy's way: `<file>.tmp-<random>` written, then renamed over `file`; the temporary file
/// is removed when anything fails.
fn write_renamed(
    file: &Path,
    data: &[u8],
    mode: Option<u32>,
    make_dir: impl Fn() -> io::Result<()>,
) -> io::Result<SystemTime> {
    use std::io::Write;
    let mut attempts = 0;
    let mut made_dir = false;
    loop {
        let tmp = temporary_name(file);
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o664);
        let mut f = match opts.open(&tmp) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                attempts += 1;
                continue;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound && !made_dir => {
                made_dir = true;
                make_dir()?;
                continue;
            }
            Err(e) => return Err(about(e, "cannot create", &tmp)),
        };
        let r = (|| {
            f.write_all(data)?;
            set_mode(&f, mode)?;
            let mtime = f.metadata()?.modified()?;
            drop(f);
            fs::rename(&tmp, file)?;
            Ok(mtime)
        })();
        return r.map_err(|e: io::Error| {
            let _ = fs::remove_file(&tmp);
            about(e, "cannot write", file)
        });
    }
}

/// `file_permissions`, set on the open file (so the umask does not apply).
fn set_mode(f: &fs::File, mode: Option<u32>) -> io::Result<()> {
    #[cfg(unix)]
    if let Some(mode) = mode {
        use std::os::unix::fs::PermissionsExt;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = (f, mode);
    Ok(())
}

/// The unnamed file (`O_TMPFILE`) and its `linkat`.
#[cfg(target_os = "linux")]
mod unnamed {
    use super::{about, set_mode, temporary_name};
    use nix::fcntl::{AtFlags, AT_FDCWD};
    use nix::unistd::linkat;
    use std::fs;
    use std::io::{self, Write};
    use std::os::unix::fs::OpenOptionsExt;
    use std::path::Path;
    use std::sync::atomic::{AtomicU8, Ordering};
    use std::time::SystemTime;

    /// How this process can give an unnamed file its name, found by the first link.
    ///
    /// `linkat(fd, "", …, AT_EMPTY_PATH)` needs `CAP_DAC_READ_SEARCH` before Linux 6.10 (and
    /// fails with ENOENT without it); the way open(2) documents for everyone else links
    /// `/proc/self/fd/<fd>`, following that link.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    #[repr(u8)]
    pub(super) enum Link {
        Unknown = 0,
        EmptyPath = 1,
        ProcFd = 2,
        /// Neither: files are written and renamed.
        Neither = 3,
    }

    static LINK: AtomicU8 = AtomicU8::new(Link::Unknown as u8);

    fn link_way() -> Link {
        match LINK.load(Ordering::Relaxed) {
            1 => Link::EmptyPath,
            2 => Link::ProcFd,
            3 => Link::Neither,
            _ => Link::Unknown,
        }
    }

    fn found(way: Link) {
        LINK.store(way as u8, Ordering::Relaxed);
    }

    /// Links the unnamed file `f` at `to`, by `way`.
    fn link(f: &fs::File, to: &Path, way: Link) -> io::Result<()> {
        let r = match way {
            Link::EmptyPath => linkat(f, "", AT_FDCWD, to, AtFlags::AT_EMPTY_PATH),
            _ => {
                use std::os::fd::AsRawFd;
                let proc_path = format!("/proc/self/fd/{}", f.as_raw_fd());
                linkat(
                    AT_FDCWD,
                    proc_path.as_str(),
                    AT_FDCWD,
                    to,
                    AtFlags::AT_SYMLINK_FOLLOW,
                )
            }
        };
        r.map_err(io::Error::from)
    }

    /// The file written unnamed and linked; `None` when this way cannot be taken here (no
    /// unnamed files on this file system, no way to link them, or the directory went away
    /// after the file was made): the caller writes and renames.
    pub(super) fn write(
        file: &Path,
        data: &[u8],
        mode: Option<u32>,
        make_dir: &dyn Fn() -> io::Result<()>,
    ) -> Option<io::Result<SystemTime>> {
        write_linking(file, data, mode, make_dir, link_way())
    }

    /// [`write`], linking `way`.
    pub(super) fn write_linking(
        file: &Path,
        data: &[u8],
        mode: Option<u32>,
        make_dir: &dyn Fn() -> io::Result<()>,
        way: Link,
    ) -> Option<io::Result<SystemTime>> {
        if way == Link::Neither {
            return None;
        }
        let dir = match file.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        let mut opts = fs::OpenOptions::new();
        opts.write(true).custom_flags(libc::O_TMPFILE).mode(0o664);
        let mut f = match opts.open(dir) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Err(e) = make_dir() {
                    return Some(Err(e));
                }
                opts.open(dir).ok()?
            }
            // EOPNOTSUPP (NFS, FUSE, ...), EISDIR (kernels before 3.11), or what the rename's
            // own open will report as MapProxy words it
            Err(_) => return None,
        };
        let mtime = (|| {
            f.write_all(data)?;
            set_mode(&f, mode)?;
            f.metadata()?.modified()
        })();
        let mtime = match mtime {
            Ok(t) => t,
            Err(e) => return Some(Err(about(e, "cannot write", file))),
        };
        name(&f, file, way).map(|linked| linked.map(|()| mtime))
    }

    /// Gives the written unnamed file `f` the name `file`, finding the way on the first call;
    /// `None` when no way linked it (the caller writes the file again, MapProxy's way, which
    /// also makes a directory removed meanwhile again).
    fn name(f: &fs::File, file: &Path, way: Link) -> Option<io::Result<()>> {
        let ways: &[Link] = match way {
            Link::Unknown => &[Link::EmptyPath, Link::ProcFd],
            _ => &[way],
        };
        for &w in ways {
            let linked = match link(f, file, w) {
                Ok(()) => Ok(()),
                // there already: linked under a temporary name and renamed over it, as
                // MapProxy replaces a file
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => replace(f, file, w),
                // ENOENT: this way is not allowed (AT_EMPTY_PATH without the capability, no
                // /proc), or the directory is gone
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(_) => return None,
            };
            if way == Link::Unknown {
                found(w);
            }
            return Some(linked);
        }
        if way == Link::Unknown && !Path::new("/proc/self/fd").is_dir() {
            found(Link::Neither);
        }
        None
    }

    /// `file` exists: `f` linked as `<file>.tmp-<random>` and renamed over it.
    fn replace(f: &fs::File, file: &Path, way: Link) -> io::Result<()> {
        let mut attempts = 0;
        loop {
            let tmp = temporary_name(file);
            match link(f, &tmp, way) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => {
                    attempts += 1;
                    continue;
                }
                Err(e) => return Err(about(e, "cannot write", file)),
            }
            return fs::rename(&tmp, file).map_err(|e| {
                let _ = fs::remove_file(&tmp);
                about(e, "cannot write", file)
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[cfg(unix)]
    fn mode_of(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::symlink_metadata(p)
            .expect("metadata")
            .permissions()
            .mode()
            & 0o777
    }

    /// A new file, a replaced one, a replaced symbolic link (not written through), a missing
    /// directory made once, `mode` set: each way of writing, with no temporary file left.
    fn writes_atomically(
        write: &dyn Fn(
            &Path,
            &[u8],
            Option<u32>,
            &dyn Fn() -> io::Result<()>,
        ) -> io::Result<SystemTime>,
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("a/b");
        let file = dir.join("0.png");
        let made = Cell::new(0);
        let make_dir = || {
            made.set(made.get() + 1);
            fs::create_dir_all(&dir)
        };
        let mtime = write(&file, b"one", None, &make_dir).expect("new");
        assert_eq!(made.get(), 1, "the directory made once");
        assert_eq!(fs::read(&file).expect("read"), b"one");
        assert_eq!(
            fs::metadata(&file)
                .expect("meta")
                .modified()
                .expect("mtime"),
            mtime
        );
        let first = fs::metadata(&file).expect("meta");

        write(&file, b"two", None, &make_dir).expect("replaced");
        assert_eq!(fs::read(&file).expect("read"), b"two");
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            let second = fs::metadata(&file).expect("meta");
            assert_ne!(first.ino(), second.ino(), "replaced by another file");
            assert_eq!(
                mode_of(&file) & !0o022,
                0o644 & !0o022,
                "0664 less the umask"
            );

            let target = dir.join("target.png");
            fs::write(&target, b"target").expect("target");
            let link = dir.join("1.png");
            std::os::unix::fs::symlink(&target, &link).expect("symlink");
            write(&link, b"three", Some(0o640), &make_dir).expect("link replaced");
            assert_eq!(
                fs::read(&target).expect("target"),
                b"target",
                "not written through"
            );
            assert!(!fs::symlink_metadata(&link)
                .expect("meta")
                .file_type()
                .is_symlink());
            assert_eq!(fs::read(&link).expect("read"), b"three");
            assert_eq!(mode_of(&link), 0o640);
        }
        #[cfg(not(unix))]
        let _ = first;
        assert_eq!(made.get(), 1);
        let left = names(&dir);
        assert!(left.iter().all(|n| !n.contains(".tmp-")), "{left:?}");
    }

    #[test]
    fn mapproxys_way_writes_atomically() {
        writes_atomically(&|f, d, m, mk| write_renamed(f, d, m, mk));
    }

    #[test]
    fn write_atomic_writes_atomically() {
        writes_atomically(&|f, d, m, mk| write_atomic(f, d, m, mk));
    }

    /// Each way of linking an unnamed file, and the rename when there is none.
    #[cfg(target_os = "linux")]
    #[test]
    fn unnamed_files_write_atomically() {
        use unnamed::{write_linking, Link};
        writes_atomically(&|f, d, m, mk| {
            write_linking(f, d, m, mk, Link::ProcFd).expect("linked through /proc/self/fd")
        });
        // AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH (bit 2 of the effective capabilities)
        // before Linux 6.10
        let status = fs::read_to_string("/proc/self/status").expect("status");
        let cap_eff = status
            .lines()
            .find_map(|l| l.strip_prefix("CapEff:"))
            .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
            .expect("CapEff");
        if cap_eff & (1 << 2) != 0 {
            writes_atomically(&|f, d, m, mk| {
                write_linking(f, d, m, mk, Link::EmptyPath).expect("linked by AT_EMPTY_PATH")
            });
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let none = write_linking(&tmp.path().join("x"), b"x", None, &|| Ok(()), Link::Neither);
        assert!(none.is_none(), "no way to link: the caller renames");
        assert!(names(tmp.path()).is_empty());
    }
}
