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
//! `mapproxy_misses.sh`, session 16), and a crash while a new file is written leaves no
//! `.tmp-` file behind. A watcher of the directory (inotify) sees the new name created and
//! then closed after writing, as for a file written in place, instead of a rename.
//!
//! The rename is still used when the file exists (a re-seeded or re-made tile, a linked
//! single-colour tile replaced: `linkat` does not replace; the unnamed file is then linked
//! under the temporary name and renamed), on file systems without unnamed files (NFS, FUSE:
//! each write there tries the open once), and where the process may not link one (see
//! `unnamed::Link`).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// Writes `data` to `file` atomically, made with mode 0664 less the umask, or `mode` when
/// given (set on the open file, before it has its final name). `make_dir` is called at most
/// once, when the directory is missing. Returns the file's modification time.
pub fn write_atomic(
    file: &Path,
    data: &[u8],
    mode: Option<u32>,
    make_dir: impl Fn() -> io::Result<()>,
) -> io::Result<SystemTime> {
    let made = std::cell::Cell::new(false);
    let make_dir_once = || match made.replace(true) {
        true => Ok(()),
        false => make_dir(),
    };
    #[cfg(target_os = "linux")]
    if let Some(written) = unnamed::write(file, data, mode, &make_dir_once) {
        return written;
    }
    write_renamed(file, data, mode, make_dir_once)
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

/// `make` tried at new temporary names next to `file` until one is free (at most 17 tries,
/// as a name another writer took fails with AlreadyExists); the last name and its result.
fn at_temporary_name<T>(
    file: &Path,
    mut make: impl FnMut(&Path) -> io::Result<T>,
) -> (PathBuf, io::Result<T>) {
    let mut attempts = 0;
    loop {
        let tmp = temporary_name(file);
        match make(&tmp) {
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 16 => attempts += 1,
            r => return (tmp, r),
        }
    }
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
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o664);
    let (tmp, f) = match at_temporary_name(file, |tmp| opts.open(tmp)) {
        (_, Err(e)) if e.kind() == io::ErrorKind::NotFound => {
            make_dir()?;
            at_temporary_name(file, |tmp| opts.open(tmp))
        }
        opened => opened,
    };
    let mut f = f.map_err(|e| about(e, "cannot create", &tmp))?;
    let r = (|| {
        f.write_all(data)?;
        set_mode(&f, mode)?;
        let mtime = f.metadata()?.modified()?;
        drop(f);
        fs::rename(&tmp, file)?;
        Ok(mtime)
    })();
    r.map_err(|e: io::Error| {
        let _ = fs::remove_file(&tmp);
        about(e, "cannot write", file)
    })
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
    use super::{about, at_temporary_name, set_mode};
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
        if way == Link::Neither || (mode.is_none() && !umask_honoured()) {
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
                // still missing (or another error): the rename's open reports it
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

    /// Before "fs: add missing umask strip in vfs_tmpfile" (Linux 6.0/6.1), an unnamed file
    /// on a file system without POSIX ACLs was made without the umask, where an `O_CREAT`
    /// open applies it. On such kernels the unnamed way is taken only when the mode is set
    /// anyway (`file_permissions`); the kernel's release is read once.
    pub(super) fn umask_honoured() -> bool {
        static HONOURED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *HONOURED.get_or_init(|| {
            let release = fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
            let mut parts = release.trim().split(['.', '-']);
            let major = parts.next().and_then(|p| p.parse::<u32>().ok());
            let minor = parts.next().and_then(|p| p.parse::<u32>().ok());
            matches!((major, minor), (Some(ma), Some(mi)) if (ma, mi) >= (6, 1))
        })
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
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => replace(f, file, w)?,
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
        // no way here at all (no capability, no /proc) unless the directory went away
        let dir_there = file.parent().is_some_and(Path::is_dir);
        if way == Link::Unknown && dir_there && !Path::new("/proc/self/fd").is_dir() {
            found(Link::Neither);
        }
        None
    }

    /// `file` exists: `f` linked as `<file>.tmp-<random>` and renamed over it; `None` when the
    /// directory went away meanwhile (the caller writes by rename, making it again).
    fn replace(f: &fs::File, file: &Path, way: Link) -> Option<io::Result<()>> {
        let (tmp, linked) = at_temporary_name(file, |tmp| link(f, tmp, way));
        match linked {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => return None,
            Err(e) => return Some(Err(about(e, "cannot create", &tmp))),
        }
        Some(fs::rename(&tmp, file).map_err(|e| {
            let _ = fs::remove_file(&tmp);
            about(e, "cannot write", file)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    /// A way of writing a file atomically: file, data, mode, make_dir.
    type Write<'a> = dyn Fn(&Path, &[u8], Option<u32>, &dyn Fn() -> io::Result<()>) -> io::Result<SystemTime>
        + 'a;

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
            & 0o7777
    }

    fn mtime_of(p: &Path) -> SystemTime {
        fs::metadata(p).expect("meta").modified().expect("mtime")
    }

    /// A new file (the mode an `O_CREAT` open with 0664 gives it here, or `mode`), a replaced
    /// one, a replaced symbolic link (not written through), a missing directory made once:
    /// each with the time a later `stat` shows, and no temporary file left.
    fn writes_atomically(write: &Write) {
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
        assert_eq!(mtime_of(&file), mtime);
        let first = fs::metadata(&file).expect("meta");

        let mtime = write(&file, b"two", None, &make_dir).expect("replaced");
        assert_eq!(fs::read(&file).expect("read"), b"two");
        assert_eq!(mtime_of(&file), mtime);
        #[cfg(unix)]
        {
            use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
            let second = fs::metadata(&file).expect("meta");
            assert_ne!(first.ino(), second.ino(), "replaced by another file");
            let reference = dir.join("reference");
            fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o664)
                .open(&reference)
                .expect("reference");
            assert_eq!(mode_of(&file), mode_of(&reference), "0664 less the umask");

            let given = dir.join("2.png");
            write(&given, b"new", Some(0o640), &make_dir).expect("new with a mode");
            assert_eq!(mode_of(&given), 0o640);

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

    /// `make_dir` is called at most once, also when it makes nothing: the write then fails,
    /// naming the file it could not create.
    #[test]
    fn a_directory_not_made_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let file = tmp.path().join("missing/0.png");
        let calls = Cell::new(0);
        let err = write_atomic(&file, b"x", None, || {
            calls.set(calls.get() + 1);
            Ok(())
        })
        .expect_err("no directory");
        assert_eq!(calls.get(), 1);
        assert!(err.to_string().contains("missing/0.png"), "{err}");
    }

    /// Each way of linking an unnamed file where this machine has it, and the rename when
    /// there is none.
    #[cfg(target_os = "linux")]
    #[test]
    fn unnamed_files_write_atomically() {
        use unnamed::{umask_honoured, write_linking, Link};
        for way in [Link::ProcFd, Link::EmptyPath] {
            // unnamed files (no O_TMPFILE on some file systems: overlayfs before 6.6, NFS)
            // and AT_EMPTY_PATH (CAP_DAC_READ_SEARCH before 6.10) may be missing here
            let probe = tempfile::tempdir().expect("tempdir");
            let there = write_linking(&probe.path().join("p"), b"p", Some(0o644), &|| Ok(()), way);
            match there {
                Some(r) => {
                    r.expect("probe");
                }
                None => {
                    eprintln!("SKIP: unnamed files linked by {way:?} are not possible here");
                    assert!(names(probe.path()).is_empty());
                    continue;
                }
            }
            writes_atomically(&|f, d, m, mk| {
                write_linking(f, d, m, mk, way)
                    // an old kernel: no unnamed file without a mode to set
                    .or_else(|| {
                        (m.is_none() && !umask_honoured()).then(|| write_renamed(f, d, m, mk))
                    })
                    .expect("linked")
            });
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let none = write_linking(&tmp.path().join("x"), b"x", None, &|| Ok(()), Link::Neither);
        assert!(none.is_none(), "no way to link: the caller renames");
        assert!(names(tmp.path()).is_empty());
    }
}
