//! MapProxy's file cache (`mapproxy/cache/file.py`): one file per tile under a cache
//! directory, in one of the [`DirectoryLayout`]s.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::atomic_write::write_atomic;

use bytes::Bytes;

use super::memory::{self, Stamp};
use super::path::{self, DirectoryLayout};
use super::{CachedTile, QuickLoad, TileCache};
use crate::grid::TileCoord;
use crate::image::{self, ImageFormat};

/// How single-colour tiles are linked (`link_single_color_images: true` / `hardlink`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    /// A relative symbolic link to `single_color_tiles/<colour>.<ext>` (`true`).
    Symlink,
    /// A hard link to it (`hardlink`).
    Hardlink,
}

/// One file cache of one grid.
#[derive(Debug, Clone)]
pub struct FileCache {
    cache_dir: PathBuf,
    layout: DirectoryLayout,
    file_ext: String,
    link_single_color: Option<LinkMode>,
    directory_permissions: Option<u32>,
    file_permissions: Option<u32>,
    /// Whether hits may be kept in [`memory`]: the cache directory is on a local file system
    /// (asked once it exists).
    keep_in_memory: std::sync::OnceLock<bool>,
}

impl FileCache {
    /// A cache in `cache_dir` (see [`path::cache_dir`] for how MapProxy names it) whose files
    /// end in `.<file_ext>`: the cache format's extension (`png`, `jpeg`, `png8`, and `mixed`
    /// for a `mixed` cache, whose files hold PNG or JPEG as each tile needs).
    pub fn new(
        cache_dir: impl Into<PathBuf>,
        layout: DirectoryLayout,
        file_ext: impl Into<String>,
    ) -> FileCache {
        FileCache {
            cache_dir: cache_dir.into(),
            layout,
            file_ext: file_ext.into(),
            link_single_color: None,
            directory_permissions: None,
            file_permissions: None,
            keep_in_memory: std::sync::OnceLock::new(),
        }
    }

    /// A cache for tiles in `format` (the extension MapProxy uses: `format.ext()`).
    pub fn for_format(
        cache_dir: impl Into<PathBuf>,
        layout: DirectoryLayout,
        format: &ImageFormat,
    ) -> FileCache {
        FileCache::new(cache_dir, layout, format.ext())
    }

    /// `link_single_color_images`: store each single-colour tile once and link it.
    pub fn with_link_single_color(mut self, mode: Option<LinkMode>) -> FileCache {
        self.link_single_color = mode;
        self
    }

    /// `directory_permissions` / `file_permissions` (octal in MapProxy's YAML, e.g. `0o775`);
    /// `None`: as the umask gives them (directories 0777, files 0664, less the umask).
    pub fn with_permissions(mut self, directories: Option<u32>, files: Option<u32>) -> FileCache {
        self.directory_permissions = directories;
        self.file_permissions = files;
        self
    }

    pub fn cache_dir(&self) -> &Path {
        &self.cache_dir
    }

    pub fn layout(&self) -> DirectoryLayout {
        self.layout
    }

    pub fn file_ext(&self) -> &str {
        &self.file_ext
    }

    /// The tile's file.
    pub fn tile_location(&self, coord: TileCoord) -> PathBuf {
        path::tile_location(&self.cache_dir, self.layout, coord, &self.file_ext)
    }

    /// The tile's file for a layer with dimensions (`time`, `elevation`, `dim_*`): below the
    /// dimension directories in `tc`, `mp`, `tms` and `reverse_tms` (see
    /// [`path::dimensions_part`]).
    pub fn tile_location_with_dimensions(
        &self,
        coord: TileCoord,
        dimensions: &[(&str, &str)],
    ) -> Result<PathBuf, path::IllegalDimension> {
        path::tile_relpath_with_dimensions(self.layout, coord, &self.file_ext, dimensions)
            .map(|rel| self.cache_dir.join(rel))
    }

    /// The directory of all tiles of `level` (`None` for `reverse_tms`, `quadkey`).
    pub fn level_location(&self, level: usize) -> Option<PathBuf> {
        path::level_location(&self.cache_dir, self.layout, level)
    }

    /// The file a single-colour tile of `components` (3 for RGB, 4 for RGBA, as in
    /// [`path::single_color_location`]) is linked to.
    pub fn single_color_location(&self, components: &[u8]) -> PathBuf {
        path::single_color_location(&self.cache_dir, components, &self.file_ext)
    }

    /// Store an encoded tile as a link to its single-colour file, `components` being the colour
    /// as MapProxy's image mode has it (`[r, g, b]` or `[r, g, b, a]`), whatever
    /// `link_single_color_images` says (symbolic link when it is off).
    pub fn store_single_color(
        &self,
        coord: TileCoord,
        data: &[u8],
        components: &[u8],
    ) -> io::Result<SystemTime> {
        let tile_loc = self.tile_location(coord);
        self.ensure_parent(&tile_loc)?;
        let real = self.single_color_location(components);
        self.ensure_parent(&real)?;
        if fs::symlink_metadata(&real).is_err() {
            self.write_file(&real, data)?;
        }
        match fs::symlink_metadata(&tile_loc) {
            Ok(_) => remove_if_exists(&tile_loc)?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let r = match self.link_single_color.unwrap_or(LinkMode::Symlink) {
            LinkMode::Hardlink => fs::hard_link(&real, &tile_loc),
            LinkMode::Symlink => symlink(&self.relative_to_tile_dir(coord, &real), &tile_loc),
        };
        match r {
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => Err(e),
            // the time a later load reports: the link's own (MapProxy's lstat)
            _ => fs::symlink_metadata(&tile_loc)?.modified(),
        }
    }

    /// `real` (under the cache directory) as seen from the tile's directory: `../` once per
    /// directory of the tile's relative path (MapProxy's `os.path.relpath`).
    fn relative_to_tile_dir(&self, coord: TileCoord, real: &Path) -> PathBuf {
        let rel = path::tile_relpath(self.layout, coord, &self.file_ext);
        let depth = rel.matches('/').count();
        let mut p = PathBuf::new();
        for _ in 0..depth {
            p.push("..");
        }
        match real.strip_prefix(&self.cache_dir) {
            Ok(r) => p.join(r),
            Err(_) => real.to_path_buf(),
        }
    }

    /// MapProxy's `ensure_directory`: create the missing directories of `file`'s parent one by
    /// one, each `chmod`ed to `directory_permissions` when given (so the umask does not apply).
    fn ensure_parent(&self, file: &Path) -> io::Result<()> {
        match file.parent() {
            Some(dir) => self.ensure_dir(dir),
            None => Ok(()),
        }
    }

    fn ensure_dir(&self, dir: &Path) -> io::Result<()> {
        ensure_dir(dir, self.directory_permissions)
    }
}

/// MapProxy's `ensure_directory` for a directory: the missing ones made one by one, each
/// `chmod`ed to `directory_permissions` when given (so the umask does not apply).
///
/// The deepest directory is made first and its parents only when that finds them missing:
/// a new tile's directories are one `mkdir` each, plus one failed `mkdir` per missing parent.
pub(crate) fn ensure_dir(dir: &Path, directory_permissions: Option<u32>) -> io::Result<()> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    let mut made = fs::create_dir(dir);
    if matches!(&made, Err(e) if e.kind() == io::ErrorKind::NotFound) {
        if let Some(parent) = dir.parent() {
            ensure_dir(parent, directory_permissions)?;
        }
        made = fs::create_dir(dir);
    }
    match made {
        Ok(()) => {}
        // there already, or another writer made it meanwhile (a file there is found by the
        // write that follows)
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => return Ok(()),
        Err(e) => {
            return Err(io::Error::new(
                e.kind(),
                format!("cannot create cache directory {}: {e}", dir.display()),
            ))
        }
    }
    #[cfg(unix)]
    if let Some(mode) = directory_permissions {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(dir, fs::Permissions::from_mode(mode))?;
    }
    #[cfg(not(unix))]
    let _ = directory_permissions;
    Ok(())
}

impl FileCache {
    /// See [`memory::local_fs`]; not known while the cache directory is not made.
    fn keep_in_memory(&self) -> bool {
        if let Some(keep) = self.keep_in_memory.get() {
            return *keep;
        }
        match memory::local_fs(&self.cache_dir) {
            Some(keep) => *self.keep_in_memory.get_or_init(|| keep),
            None => false,
        }
    }

    /// MapProxy's `_store`: the file is written atomically ([`write_atomic`]); a symbolic
    /// link at the location (a linked single-colour tile) is replaced, not written through
    /// (the rename replaces the link itself). The directories are made when the first try
    /// finds them missing, so a new tile in an existing directory is an open (of an unnamed
    /// file, on Linux), a write, an fchmod when `file_permissions` is set, an fstat, a link
    /// and a close. Returns the stored file's modification time.
    fn write_file(&self, location: &Path, data: &[u8]) -> io::Result<SystemTime> {
        write_atomic(location, data, self.file_permissions, || {
            self.ensure_parent(location)
        })
    }
}

impl TileCache for FileCache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        let loc = self.tile_location(coord);
        let found = if self.keep_in_memory() {
            memory::load(&loc, read_tile_file)
        } else {
            read_tile_file(&loc).map(|(tile, _)| tile)
        };
        match found {
            Ok(t) => Ok(Some(t)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io::Error::new(e.kind(), format!("{}: {e}", loc.display()))),
        }
    }

    /// A hit is one `statx` of a tile kept in memory, or an open, fstat and read of a small
    /// file: done on the calling thread.
    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'_> {
        QuickLoad::Now(self.load(coord))
    }

    /// Local files: read and written on the calling thread.
    fn blocks(&self) -> bool {
        false
    }

    /// `os.path.exists`: one `stat` (a dangling link is not cached).
    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        Ok(self.tile_location(coord).exists())
    }

    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        if self.link_single_color.is_some() {
            if let Some(components) = single_color_components(data) {
                return self.store_single_color(coord, data, &components).map(Some);
            }
        }
        self.write_file(&self.tile_location(coord), data).map(Some)
    }

    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        remove_if_exists(&self.tile_location(coord))
    }
}

/// The colour of a single-colour encoded tile as MapProxy names its file: RGB for JPEG, RGB and
/// paletted PNGs, RGBA for PNGs with an alpha channel. `None` when it has several colours or
/// does not decode (it is then stored as it is).
fn single_color_components(data: &[u8]) -> Option<Vec<u8>> {
    let img = image::decode(data).ok()?;
    let c = image::single_color(&img)?;
    if png_has_alpha_channel(data) {
        Some(c.to_vec())
    } else {
        Some(c[..3].to_vec())
    }
}

/// PNG colour type 4 or 6 (gray+alpha, RGBA) in the IHDR.
fn png_has_alpha_channel(data: &[u8]) -> bool {
    matches!(image::png_color_type(data), Some(4) | Some(6))
}

fn remove_if_exists(p: &Path) -> io::Result<()> {
    match fs::remove_file(p) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

#[cfg(unix)]
fn symlink(target: &Path, link: &Path) -> io::Result<()> {
    std::os::unix::fs::symlink(target, link)
}

#[cfg(not(unix))]
fn symlink(_target: &Path, _link: &Path) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        "link_single_color_images needs symbolic links (MapProxy: not supported on Windows)",
    ))
}

/// A tile file read with one open, fstat, read and close: the open does not follow a symbolic
/// link, so that the size and time come from the file read; a linked single-colour tile (a
/// symbolic link) is opened again through the link and takes the link's own time, as
/// MapProxy's `lstat`. With the file's [`Stamp`] when it is not a link, so that it can be kept
/// in [`memory`].
fn read_tile_file(loc: &Path) -> io::Result<(CachedTile, Option<Stamp>)> {
    use std::io::Read;
    let mut opts = fs::OpenOptions::new();
    opts.read(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::custom_flags(&mut opts, libc::O_NOFOLLOW);
    let (file, link_time) = match opts.open(loc) {
        Ok(f) => (f, None),
        #[cfg(unix)]
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => {
            let link_time = fs::symlink_metadata(loc)?.modified()?;
            (fs::File::open(loc)?, Some(link_time))
        }
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let mtime = match link_time {
        Some(t) => t,
        None => meta.modified().unwrap_or(UNIX_EPOCH),
    };
    // exactly the file's size: no further read to find the end (tiles are replaced by rename,
    // never written in place)
    let len = meta.len();
    let mut data = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(len).read_to_end(&mut data)?;
    let tile = CachedTile {
        data: Bytes::from(data),
        mtime,
    };
    let stamp = match link_time {
        Some(_) => None,
        None => Stamp::of(&meta),
    };
    Ok((tile, stamp))
}

#[cfg(test)]
mod tests {
    use super::ensure_dir;
    use std::fs;

    #[cfg(unix)]
    fn mode(p: &std::path::Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(p).expect("exists").permissions().mode() & 0o777
    }

    /// The missing directories are made, each with `directory_permissions`; those already
    /// there are left as they are; a file in the way is an error naming the directory.
    #[test]
    #[cfg(unix)]
    fn ensure_dir_makes_the_missing_directories() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().join("cache");
        fs::create_dir(&base).expect("base");
        fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod");
        let deep = base.join("12/000/000/001/000/000");
        ensure_dir(&deep, Some(0o750)).expect("made");
        assert!(deep.is_dir());
        let mut d = deep.as_path();
        while d != base {
            assert_eq!(mode(d), 0o750, "{}", d.display());
            d = d.parent().expect("parent");
        }
        assert_eq!(mode(&base), 0o700, "an existing directory keeps its mode");
        // there already: nothing to do, nothing changed
        ensure_dir(&deep, Some(0o755)).expect("there");
        assert_eq!(mode(&deep), 0o750);

        fs::write(base.join("file"), b"x").expect("file");
        let err = ensure_dir(&base.join("file/sub/dir"), None).expect_err("a file in the way");
        assert!(err.to_string().contains("file/sub"), "{err}");
    }
}
