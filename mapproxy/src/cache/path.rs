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

/// The `tc` path of a tile with `0 <= x, y < 10^9` and `0 <= z < 100`, the common case (on
/// every cache hit): `zz/xxx/xxx/xxx/yyy/yyy/yyy`, written digit by digit into a fixed buffer
/// (`format!` was a sixth of a hit's instructions). `None` for other coordinates, which take
/// the general way.
fn tc_digits((x, y, z): TileCoord) -> Option<[u8; 26]> {
    const LIMIT: i64 = 1_000_000_000;
    if !((0..LIMIT).contains(&x) && (0..LIMIT).contains(&y) && (0..100).contains(&z)) {
        return None;
    }
    let mut b = [b'/'; 26];
    b[0] = b'0' + (z / 10) as u8;
    b[1] = b'0' + (z % 10) as u8;
    let mut i = 2;
    for v in [x, y] {
        for part in [v / 1_000_000, v / 1000 % 1000, v % 1000] {
            // b[i] is the '/'
            b[i + 1] = b'0' + (part / 100) as u8;
            b[i + 2] = b'0' + (part / 10 % 10) as u8;
            b[i + 3] = b'0' + (part % 10) as u8;
            i += 4;
        }
    }
    Some(b)
}

/// The tile's path relative to the cache directory, `/`-separated, with `file_ext` appended
/// (MapProxy's `tile_location_<layout>` without the cache directory and dimensions).
pub fn tile_relpath(layout: DirectoryLayout, (x, y, z): TileCoord, file_ext: &str) -> String {
    let mut s = String::new();
    push_tile_relpath(|part| s.push_str(part), layout, (x, y, z), file_ext);
    s
}

/// [`tile_relpath`], given piece by piece to `push`.
fn push_tile_relpath(
    mut push: impl FnMut(&str),
    layout: DirectoryLayout,
    coord: TileCoord,
    file_ext: &str,
) {
    if layout == DirectoryLayout::Tc {
        if let Some(digits) = tc_digits(coord) {
            // ASCII digits and slashes
            if let Ok(digits) = std::str::from_utf8(&digits) {
                push(digits);
                push(".");
                push(file_ext);
                return;
            }
        }
    }
    push(&general_relpath(layout, coord, file_ext));
}

/// [`tile_relpath`] by formatting, for every layout and coordinate.
fn general_relpath(layout: DirectoryLayout, (x, y, z): TileCoord, file_ext: &str) -> String {
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

/// A dimension value MapProxy refuses in a cache path (`Dimension parameter value contains
/// illegal characters`): one that is not already normalised (`a//b`, `a/`, `./a`, empty) or
/// has a `..` part (split at `/` or `\`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IllegalDimension {
    pub name: String,
    pub value: String,
}

impl fmt::Display for IllegalDimension {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "dimension {} value {:?} contains illegal characters (expected a normalised value \
             without '..' parts)",
            self.name, self.value
        )
    }
}

impl std::error::Error for IllegalDimension {}

/// Python's `posixpath.normpath`.
fn normpath(path: &str) -> String {
    if path.is_empty() {
        return ".".to_string();
    }
    let initial_slashes = if path.starts_with("//") && !path.starts_with("///") {
        2
    } else if path.starts_with('/') {
        1
    } else {
        0
    };
    let mut comps: Vec<&str> = Vec::new();
    for comp in path.split('/') {
        if comp.is_empty() || comp == "." {
            continue;
        }
        if comp != ".." || (initial_slashes == 0 && comps.is_empty()) || comps.last() == Some(&"..")
        {
            comps.push(comp);
        } else {
            comps.pop();
        }
    }
    let joined = format!("{}{}", "/".repeat(initial_slashes), comps.join("/"));
    if joined.is_empty() {
        ".".to_string()
    } else {
        joined
    }
}

/// The directories of a tile's dimension values (`dimensions_part`): `<name>-<value>` per
/// dimension joined by `/`, the predefined ones (`time`, `elevation`, ...) sorted first, then
/// the `dim_` ones sorted; names compare case-insensitively (the first spelling is kept, with
/// the first value). Empty for no dimensions.
pub fn dimensions_part(dimensions: &[(&str, &str)]) -> Result<String, IllegalDimension> {
    let mut seen: Vec<(String, &str, &str)> = Vec::new();
    for &(name, value) in dimensions {
        let normalized = normpath(value);
        let traversal = normalized
            .split('/')
            .chain(normalized.split('\\'))
            .any(|p| p == "..");
        if value != normalized || traversal {
            return Err(IllegalDimension {
                name: name.to_string(),
                value: value.to_string(),
            });
        }
        let lower = name.to_lowercase();
        if !seen.iter().any(|(l, _, _)| *l == lower) {
            seen.push((lower, name, value));
        }
    }
    let (mut custom, mut predefined): (Vec<_>, Vec<_>) = seen
        .into_iter()
        .partition(|(_, n, _)| n.starts_with("dim_"));
    predefined.sort_by(|a, b| a.1.cmp(b.1));
    custom.sort_by(|a, b| a.1.cmp(b.1));
    Ok(predefined
        .iter()
        .chain(custom.iter())
        .map(|(_, n, v)| format!("{n}-{v}"))
        .collect::<Vec<_>>()
        .join("/"))
}

/// [`tile_relpath`] below the [`dimensions_part`] directories (`tc`, `mp`, `tms`,
/// `reverse_tms`; MapProxy's `quadkey` and `arcgis` layouts ignore dimensions).
pub fn tile_relpath_with_dimensions(
    layout: DirectoryLayout,
    coord: TileCoord,
    file_ext: &str,
    dimensions: &[(&str, &str)],
) -> Result<String, IllegalDimension> {
    let rel = tile_relpath(layout, coord, file_ext);
    let dims = dimensions_part(dimensions)?;
    Ok(match layout {
        DirectoryLayout::Quadkey | DirectoryLayout::Arcgis => rel,
        _ if dims.is_empty() => rel,
        _ => format!("{dims}/{rel}"),
    })
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
    // `cache_dir.join(tile_relpath(..))` in one allocation (a relative path: the directory,
    // a `/` unless it ends in one or is empty, the relative path)
    let dir = cache_dir.as_os_str();
    let mut p = std::ffi::OsString::with_capacity(dir.len() + 28 + file_ext.len());
    p.push(dir);
    if dir.as_encoded_bytes().last().is_some_and(|&b| b != b'/') {
        p.push("/");
    }
    push_tile_relpath(|part| p.push(part), layout, coord, file_ext);
    PathBuf::from(p)
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

    /// The `tc` fast way writes what the formatting does, at and around its limits; the whole
    /// location is the directory joined with the relative path, however the directory ends.
    #[test]
    fn tc_fast_path_as_formatted() {
        let values = [
            0,
            1,
            9,
            10,
            999,
            1000,
            1001,
            999_999,
            1_000_000,
            123_456_789,
            999_999_999,
        ];
        for &x in &values {
            for &y in &values {
                for z in [0, 5, 12, 99] {
                    assert!(tc_digits((x, y, z)).is_some());
                    assert_eq!(
                        tile_relpath(DirectoryLayout::Tc, (x, y, z), "png"),
                        general_relpath(DirectoryLayout::Tc, (x, y, z), "png"),
                        "{x} {y} {z}"
                    );
                }
            }
        }
        for c in [
            (1_000_000_000, 0, 1),
            (0, 1_000_000_000, 1),
            (0, 0, 100),
            (-1, 0, 1),
        ] {
            assert!(tc_digits(c).is_none(), "{c:?}");
            assert_eq!(
                tile_relpath(DirectoryLayout::Tc, c, "png"),
                general_relpath(DirectoryLayout::Tc, c, "png")
            );
        }
        for dir in ["", "/", "cache", "/var/cache/", "/var/cache"] {
            for layout in [
                DirectoryLayout::Tc,
                DirectoryLayout::Tms,
                DirectoryLayout::Quadkey,
            ] {
                let c = (1234, 5678, 13);
                assert_eq!(
                    tile_location(Path::new(dir), layout, c, "jpeg"),
                    Path::new(dir).join(tile_relpath(layout, c, "jpeg")),
                    "{dir:?}"
                );
            }
        }
    }

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

    // dimensions_part's doctests, and values MapProxy refuses
    #[test]
    fn dimensions() {
        assert_eq!(
            dimensions_part(&[("time", "2020-08-25T00:00:00Z")]).as_deref(),
            Ok("time-2020-08-25T00:00:00Z")
        );
        assert_eq!(
            dimensions_part(&[
                ("time", "2020-08-25T00:00:00Z"),
                ("dim_reference_time", "2020-08-25T00:00:00Z"),
                ("dim_level", "700"),
            ])
            .as_deref(),
            Ok("time-2020-08-25T00:00:00Z/dim_level-700/dim_reference_time-2020-08-25T00:00:00Z")
        );
        assert_eq!(dimensions_part(&[]).as_deref(), Ok(""));
        assert_eq!(dimensions_part(&[("time", ".")]).as_deref(), Ok("time-."));
        assert_eq!(
            dimensions_part(&[("time", "a\\b")]).as_deref(),
            Ok("time-a\\b")
        );
        assert_eq!(
            dimensions_part(&[("Time", "1"), ("time", "2"), ("elevation", "0")]).as_deref(),
            Ok("Time-1/elevation-0")
        );
        for bad in ["..", "a/../b", "a//b", "a/", "./a", "", "..\\x"] {
            let e = dimensions_part(&[("time", bad)]).unwrap_err();
            assert!(e.to_string().contains("illegal characters"), "{bad}: {e}");
        }
        assert_eq!(
            tile_relpath_with_dimensions(DirectoryLayout::Tms, (3, 4, 2), "png", &[("time", "t1")])
                .as_deref(),
            Ok("time-t1/2/3/4.png")
        );
        assert_eq!(
            tile_relpath_with_dimensions(
                DirectoryLayout::Quadkey,
                (3, 4, 2),
                "png",
                &[("time", "t1")]
            )
            .as_deref(),
            Ok("11.png")
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
