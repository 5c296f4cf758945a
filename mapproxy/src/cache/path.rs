//! Where MapProxy's file cache puts a tile (MapProxy's `mapproxy/cache/path.py`) and how it
//! names a cache's directory (`config/configuration/cache.py`, `_file_cache`).
//!
//! Paths are built by string joining as Python's `os.path.join` does, so the same inputs give
//! byte-for-byte the same paths as MapProxy.

use std::fmt;
use std::path::{Path, PathBuf};

use crate::grid::TileCoord;

/// A `directory_layout` of a file cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum DirectoryLayout {
    /// `tc` (MapProxy's default, TileCache): `02/000/000/003/000/000/004.png`.
    #[default]
    Tc,
    /// `mp`: `02/0000/0003/0000/0004.png`.
    Mp,
    /// `tms`: `2/3/4.png`.
    Tms,
    /// `reverse_tms`: `4/3/2.png` (y/x/z).
    ReverseTms,
    /// `quadkey`: `11.png` (no level directories).
    Quadkey,
    /// `arcgis` (ArcGIS exploded cache): `L02/R00000004/C00000003.png`.
    Arcgis,
}

/// A `directory_layout` that MapProxy does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownLayout(pub String);

impl fmt::Display for UnknownLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown directory_layout \"{}\" (expected tc, mp, tms, reverse_tms, quadkey or arcgis)",
            self.0
        )
    }
}

impl std::error::Error for UnknownLayout {}

impl DirectoryLayout {
    /// The layout named as in MapProxy's YAML (`directory_layout:`).
    pub fn parse(s: &str) -> Result<DirectoryLayout, UnknownLayout> {
        Ok(match s {
            "tc" => DirectoryLayout::Tc,
            "mp" => DirectoryLayout::Mp,
            "tms" => DirectoryLayout::Tms,
            "reverse_tms" => DirectoryLayout::ReverseTms,
            "quadkey" => DirectoryLayout::Quadkey,
            "arcgis" => DirectoryLayout::Arcgis,
            other => return Err(UnknownLayout(other.to_string())),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            DirectoryLayout::Tc => "tc",
            DirectoryLayout::Mp => "mp",
            DirectoryLayout::Tms => "tms",
            DirectoryLayout::ReverseTms => "reverse_tms",
            DirectoryLayout::Quadkey => "quadkey",
            DirectoryLayout::Arcgis => "arcgis",
        }
    }
}

/// Python's `int(a / b)` for the non-negative coordinates a cache stores (truncation; negative
/// coordinates truncate toward zero as Python's `int()` of a float does).
fn div_trunc(a: i64, b: i64) -> i64 {
    a / b
}

/// Python's `a % b` (the result has the sign of `b`).
fn py_mod(a: i64, b: i64) -> i64 {
    a.rem_euclid(b)
}

/// Python's `"%03d" % v` and friends: zero padded to `width`, a `-` sign counted in the width.
fn zpad(v: i64, width: usize) -> String {
    format!("{v:0width$}")
}

/// The tile's path relative to the cache directory, `/`-separated, with `file_ext` appended
/// (MapProxy's `tile_location_<layout>` without the cache directory and dimensions).
pub fn tile_relpath(layout: DirectoryLayout, (x, y, z): TileCoord, file_ext: &str) -> String {
    match layout {
        DirectoryLayout::Tc => format!(
            "{:02}/{}/{}/{}/{}/{}/{}.{file_ext}",
            z,
            zpad(div_trunc(x, 1_000_000), 3),
            zpad(py_mod(div_trunc(x, 1000), 1000), 3),
            zpad(py_mod(x, 1000), 3),
            zpad(div_trunc(y, 1_000_000), 3),
            zpad(py_mod(div_trunc(y, 1000), 1000), 3),
            zpad(py_mod(y, 1000), 3),
        ),
        DirectoryLayout::Mp => format!(
            "{:02}/{}/{}/{}/{}.{file_ext}",
            z,
            zpad(div_trunc(x, 10_000), 4),
            zpad(py_mod(x, 10_000), 4),
            zpad(div_trunc(y, 10_000), 4),
            zpad(py_mod(y, 10_000), 4),
        ),
        DirectoryLayout::Tms => format!("{z}/{x}/{y}.{file_ext}"),
        DirectoryLayout::ReverseTms => format!("{y}/{x}/{z}.{file_ext}"),
        DirectoryLayout::Quadkey => format!("{}.{file_ext}", quadkey((x, y, z))),
        DirectoryLayout::Arcgis => format!("L{:02}/R{}/C{}.{file_ext}", z, hex8(y), hex8(x)),
    }
}

/// Python's `'%08x' % v` (a negative value prints as `-` and its magnitude).
fn hex8(v: i64) -> String {
    if v < 0 {
        format!("-{:07x}", v.unsigned_abs())
    } else {
        format!("{v:08x}")
    }
}

/// The Bing quadkey of a tile (`tile_location_quadkey`): one digit per level, x bit + 2 × y bit.
pub fn quadkey((x, y, z): TileCoord) -> String {
    let mut key = String::with_capacity(z);
    for i in (1..=z).rev() {
        let mask = 1i64.checked_shl((i - 1) as u32).unwrap_or(0);
        let mut digit = 0u8;
        if x & mask != 0 {
            digit += 1;
        }
        if y & mask != 0 {
            digit += 2;
        }
        key.push(char::from(b'0' + digit));
    }
    key
}

/// The tile's file: `cache_dir` joined with [`tile_relpath`].
pub fn tile_location(
    cache_dir: &Path,
    layout: DirectoryLayout,
    coord: TileCoord,
    file_ext: &str,
) -> PathBuf {
    cache_dir.join(tile_relpath(layout, coord, file_ext))
}

/// The directory of all tiles of `level` (`level_location`): `02` for `tc`/`mp`, `2` for `tms`,
/// `L02` for `arcgis`; `None` for `reverse_tms` and `quadkey`, which have none.
pub fn level_location(cache_dir: &Path, layout: DirectoryLayout, level: usize) -> Option<PathBuf> {
    match layout {
        // MapProxy's location_funcs gives tms `level_location` (%02d) although tiles are under
        // the unpadded level; we give the directory the tiles are really in.
        DirectoryLayout::Tc | DirectoryLayout::Mp => Some(cache_dir.join(format!("{level:02}"))),
        DirectoryLayout::Tms => Some(cache_dir.join(level.to_string())),
        DirectoryLayout::Arcgis => Some(cache_dir.join(format!("L{level:02}"))),
        DirectoryLayout::ReverseTms | DirectoryLayout::Quadkey => None,
    }
}

/// Where a linked single-colour tile is really stored (`_single_color_tile_location`):
/// `<cache_dir>/single_color_tiles/<hex of each colour component>.<ext>`, e.g. `fe0004.png`
/// for RGB `(254, 0, 4)`; `components` is the colour as MapProxy's image mode gives it (three
/// for RGB and paletted images, four for RGBA).
pub fn single_color_location(cache_dir: &Path, components: &[u8], file_ext: &str) -> PathBuf {
    let mut name = String::with_capacity(components.len() * 2 + 1 + file_ext.len());
    for c in components {
        name.push_str(&format!("{c:02x}"));
    }
    name.push('.');
    name.push_str(file_ext);
    cache_dir.join("single_color_tiles").join(name)
}

/// How the directory of one file cache of one grid is named (`_file_cache`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheDirNaming<'a> {
    /// `cache: {directory: ...}`: that directory as it is (MapProxy refuses it for a cache with
    /// several grids).
    Directory(&'a Path),
    /// `cache: {use_grid_names: true}`: `<base_dir>/<cache name>/<grid name>`.
    GridName {
        base_dir: &'a Path,
        grid_name: &'a str,
    },
    /// The default: `<base_dir>/<cache name>_<grid srs without ':'>`, the SRS as the grid's
    /// configuration writes it (`EPSG:3857` → `EPSG3857`; `GLOBAL_MERCATOR` is `EPSG900913`).
    Srs {
        base_dir: &'a Path,
        grid_srs: &'a str,
    },
}

/// The cache directory of cache `cache_name` for one grid, as MapProxy names it.
/// `base_dir` is the cache's `cache_dir` or the global `cache.base_dir` (MapProxy's default
/// `./cache_data`), already made absolute by the caller.
pub fn cache_dir(cache_name: &str, naming: CacheDirNaming<'_>) -> PathBuf {
    match naming {
        CacheDirNaming::Directory(d) => d.to_path_buf(),
        CacheDirNaming::GridName {
            base_dir,
            grid_name,
        } => base_dir.join(cache_name).join(grid_name),
        CacheDirNaming::Srs { base_dir, grid_srs } => {
            base_dir.join(format!("{cache_name}_{}", grid_srs.replace(':', "")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The doctests of MapProxy's path.py.
    #[test]
    fn mapproxy_doctests() {
        let d = Path::new("/tmp/cache");
        let loc = |l, c| tile_location(d, l, c, "png");
        assert_eq!(
            loc(DirectoryLayout::Tc, (3, 4, 2)),
            Path::new("/tmp/cache/02/000/000/003/000/000/004.png")
        );
        assert_eq!(
            loc(DirectoryLayout::Mp, (3, 4, 2)),
            Path::new("/tmp/cache/02/0000/0003/0000/0004.png")
        );
        assert_eq!(
            loc(DirectoryLayout::Mp, (12345678, 98765432, 22)),
            Path::new("/tmp/cache/22/1234/5678/9876/5432.png")
        );
        assert_eq!(
            loc(DirectoryLayout::Tms, (3, 4, 2)),
            Path::new("/tmp/cache/2/3/4.png")
        );
        assert_eq!(
            loc(DirectoryLayout::ReverseTms, (3, 4, 2)),
            Path::new("/tmp/cache/4/3/2.png")
        );
        assert_eq!(
            loc(DirectoryLayout::Quadkey, (3, 4, 2)),
            Path::new("/tmp/cache/11.png")
        );
        assert_eq!(
            loc(DirectoryLayout::Arcgis, (1234567, 87654321, 9)),
            Path::new("/tmp/cache/L09/R05397fb1/C0012d687.png")
        );
        assert_eq!(
            single_color_location(Path::new("/tmp/cache/"), &[254, 0, 4], "png"),
            Path::new("/tmp/cache/single_color_tiles/fe0004.png")
        );
        assert_eq!(
            level_location(d, DirectoryLayout::Tc, 2),
            Some(PathBuf::from("/tmp/cache/02"))
        );
    }

    #[test]
    fn large_tc_coords_and_quadkey_level_zero() {
        assert_eq!(
            tile_relpath(DirectoryLayout::Tc, (1_234_567_890, 5_001, 30), "jpeg"),
            "30/1234/567/890/000/005/001.jpeg"
        );
        assert_eq!(
            tile_relpath(DirectoryLayout::Quadkey, (0, 0, 0), "png"),
            ".png"
        );
    }

    #[test]
    fn layouts_and_dirs() {
        assert_eq!(
            DirectoryLayout::parse("reverse_tms"),
            Ok(DirectoryLayout::ReverseTms)
        );
        let e = DirectoryLayout::parse("xyz").unwrap_err().to_string();
        assert!(e.contains("\"xyz\"") && e.contains("expected tc"), "{e}");
        let base = Path::new("/data/cache_data");
        assert_eq!(
            cache_dir(
                "osm_cache",
                CacheDirNaming::Srs {
                    base_dir: base,
                    grid_srs: "EPSG:3857"
                }
            ),
            Path::new("/data/cache_data/osm_cache_EPSG3857")
        );
        assert_eq!(
            cache_dir(
                "osm_cache",
                CacheDirNaming::GridName {
                    base_dir: base,
                    grid_name: "webmercator"
                }
            ),
            Path::new("/data/cache_data/osm_cache/webmercator")
        );
        assert_eq!(
            cache_dir(
                "osm_cache",
                CacheDirNaming::Directory(Path::new("/srv/tiles"))
            ),
            Path::new("/srv/tiles")
        );
    }
}
