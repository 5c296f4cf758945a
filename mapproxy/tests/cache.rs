//! The file cache against the real MapProxy 7: caches MapProxy wrote (tests/fixtures/cache/,
//! made by its generate.py) are read tile for tile; caches we write are read by MapProxy's own
//! FileCache (MAPPROXY_PYTHON); the encoder's PNG/JPEG output is checked chunk by chunk.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use mapproxy_serve_mapproxy::cache::path::{self, CacheDirNaming};
use mapproxy_serve_mapproxy::cache::{DirectoryLayout, FileCache, LinkMode, TileCache};
use mapproxy_serve_mapproxy::image::{
    blank_image, decode, encode, sniff_format, ImageFormat, ImageOpts, RgbaImage,
};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cache")
}

fn manifest() -> serde_json::Value {
    let text = fs::read_to_string(fixtures().join("manifest.json")).expect("manifest.json");
    serde_json::from_str(&text).expect("manifest.json is JSON")
}

fn coord(v: &serde_json::Value) -> (i64, i64, usize) {
    let a = v.as_array().expect("coord is a list");
    (
        a[0].as_i64().expect("x"),
        a[1].as_i64().expect("y"),
        a[2].as_u64().expect("z") as usize,
    )
}

/// A fresh directory under the target's tmp dir.
fn tmp_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cache-{name}"));
    let _ = fs::remove_dir_all(&d);
    fs::create_dir_all(&d).expect("tmp dir");
    d
}

/// Every file (and link) under `dir`, relative, `/`-separated.
fn files_under(dir: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let ft = e.file_type().expect("file type");
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                let rel = e.path().strip_prefix(dir).expect("under dir").to_path_buf();
                out.insert(rel.to_string_lossy().replace('\\', "/"));
            }
        }
    }
    out
}

#[test]
fn reads_every_tile_mapproxy_wrote_in_each_layout() {
    let data = fixtures().join("data");
    let m = manifest();
    let caches = m.as_object().expect("manifest is an object");
    let mut layouts_seen = BTreeSet::new();
    for (name, c) in caches {
        let dir = data.join(c["dir"].as_str().expect("dir"));
        let layout = DirectoryLayout::parse(c["layout"].as_str().expect("layout")).expect("layout");
        layouts_seen.insert(layout.as_str());
        let cache = FileCache::new(&dir, layout, c["ext"].as_str().expect("ext"));
        let mut listed = BTreeSet::new();
        for t in c["tiles"].as_array().expect("tiles") {
            let xyz = coord(&t["coord"]);
            let rel = t["path"].as_str().expect("path");
            assert_eq!(
                path::tile_relpath(layout, xyz, cache.file_ext()),
                rel,
                "{name} {xyz:?}"
            );
            assert_eq!(cache.tile_location(xyz), dir.join(rel));
            assert!(cache.is_cached(xyz).expect("stat"), "{name} {xyz:?}");
            let got = cache.load(xyz).expect("load").expect("tile is there");
            assert_eq!(
                &got.data[..],
                &fs::read(dir.join(rel)).expect("fixture file")[..],
                "{name} {xyz:?}"
            );
            // MapProxy's tiles decode, 32x32
            let img = decode(&got.data).expect("decodes");
            assert_eq!(img.dimensions(), (32, 32));
            listed.insert(rel.to_string());
        }
        // no file of the cache's tiles that MapProxy's paths did not name
        let on_disk: BTreeSet<String> = files_under(&dir)
            .into_iter()
            .filter(|f| !f.starts_with("single_color_tiles/"))
            .collect();
        assert_eq!(on_disk, listed, "{name}");
        // a tile that is not there
        assert!(cache.load((3, 3, 2)).expect("load").is_none());
        assert!(!cache.is_cached((3, 3, 2)).expect("stat"));
    }
    assert_eq!(layouts_seen.len(), 6, "{layouts_seen:?}");

    // the directory names MapProxy gave the caches
    for l in ["tc", "mp", "tms", "reverse_tms", "quadkey", "arcgis"] {
        let name = format!("l_{l}");
        let want = data.join(caches[&name]["dir"].as_str().expect("dir"));
        let got = path::cache_dir(
            &name,
            CacheDirNaming::Srs {
                base_dir: &data,
                grid_srs: "EPSG:3857",
            },
        );
        assert_eq!(got, want);
    }
    let got = path::cache_dir(
        "gridnames",
        CacheDirNaming::GridName {
            base_dir: &data,
            grid_name: "tiny",
        },
    );
    assert_eq!(
        got,
        data.join(caches["gridnames"]["dir"].as_str().expect("dir"))
    );
}

#[test]
fn mixed_and_linked_fixtures() {
    let m = manifest();
    let data = fixtures().join("data");
    // mixed: files end in .mixed, the opaque tile is a JPEG, the transparent one a PNG
    let mixed = FileCache::for_format(
        data.join("mixed_EPSG3857"),
        DirectoryLayout::Tc,
        &ImageFormat::new("mixed"),
    );
    let jpeg = mixed.load((0, 0, 1)).expect("load").expect("opaque tile");
    assert_eq!(sniff_format(&jpeg.data), Some(ImageFormat::jpeg()));
    let png = mixed
        .load((1, 0, 1))
        .expect("load")
        .expect("transparent tile");
    assert_eq!(sniff_format(&png.data), Some(ImageFormat::png()));

    // our encoder picks the same formats for the same images
    let mut opaque = blank_image(32, 32, [10, 120, 200, 255]);
    let mut transparent = blank_image(32, 32, [10, 120, 200, 0]);
    for y in 0..16 {
        for x in 0..16 {
            opaque.put_pixel(x, y, image_px([250, 250, 0, 255]));
            transparent.put_pixel(x, y, image_px([250, 0, 0, 255]));
        }
    }
    // the fixture's ImageOptions(format='mixed', transparent=True): no colours (a cache's
    // come from its sources: a WMS source's 256 make its PNG tiles paletted)
    let mut o = ImageOpts::new(ImageFormat::new("mixed"));
    o.transparent = true;
    o.paletted = false;
    o.colors = 0;
    let ours = encode(&opaque, &o).expect("encode");
    assert_eq!(sniff_format(&ours), Some(ImageFormat::jpeg()));
    let ours = encode(&transparent, &o).expect("encode");
    assert_eq!(sniff_format(&ours), Some(ImageFormat::png()));
    // as MapProxy's: RGBA (colour type 6), pixels exact
    assert_eq!(png_chunk(&ours, b"IHDR").expect("IHDR")[9], 6);
    assert_eq!(png_chunk(&png.data, b"IHDR").expect("IHDR")[9], 6);
    assert_eq!(
        decode(&ours).expect("ours"),
        decode(&png.data).expect("theirs")
    );

    // linked: MapProxy's relative symlinks; we link the same way
    let linked = &m["linked"];
    let dir = tmp_dir("linked");
    let cache = FileCache::new(&dir, DirectoryLayout::Tc, "png")
        .with_link_single_color(Some(LinkMode::Symlink));
    let white = encode(
        &blank_image(32, 32, [255, 255, 255, 255]),
        &ImageOpts::new(ImageFormat::png()),
    )
    .expect("encode");
    let mut rgba = ImageOpts::new(ImageFormat::png());
    rgba.paletted = false;
    rgba.transparent = true;
    let blank_rgba = encode(&blank_image(32, 32, [0, 0, 0, 0]), &rgba).expect("encode");
    for t in linked["tiles"].as_array().expect("tiles") {
        let Some(link) = t["link"].as_str() else {
            continue;
        };
        let xyz = coord(&t["coord"]);
        let want = if link.ends_with("/00000000.png") {
            // MapProxy names it by the RGBA image it had in memory; a truecolour RGBA PNG of it
            // tells our store() the same
            &blank_rgba
        } else {
            &white
        };
        cache.store(xyz, want).expect("store");
        let ours = fs::read_link(cache.tile_location(xyz)).expect("a symlink");
        assert_eq!(ours, Path::new(link));
        assert_eq!(
            &cache.load(xyz).expect("load").expect("tile").data[..],
            &want[..]
        );
    }
    assert!(dir.join("single_color_tiles/ffffff.png").is_file());
    assert!(dir.join("single_color_tiles/00000000.png").is_file());
    // a paletted PNG is named by its palette's RGB, as MapProxy names a decoded 'P' image; the
    // tile manager, knowing the image, can name it itself
    let mut t_opts = ImageOpts::new(ImageFormat::png());
    t_opts.transparent = true;
    let blank_p = encode(&blank_image(32, 32, [0, 0, 0, 0]), &t_opts).expect("encode");
    cache.store((5, 5, 5), &blank_p).expect("store");
    assert_eq!(
        fs::read_link(cache.tile_location((5, 5, 5))).expect("a symlink"),
        Path::new("../../../../../../single_color_tiles/000000.png")
    );
    cache
        .store_single_color((6, 5, 5), &blank_p, &[0, 0, 0, 0])
        .expect("store");
    assert_eq!(
        fs::read_link(cache.tile_location((6, 5, 5))).expect("a symlink"),
        Path::new("../../../../../../single_color_tiles/00000000.png")
    );
    // MapProxy's linked tiles load through the link
    let theirs = FileCache::new(data.join("linked_EPSG3857"), DirectoryLayout::Tc, "png");
    let t = theirs.load((1, 0, 1)).expect("load").expect("linked tile");
    assert_eq!(
        decode(&t.data).expect("decodes"),
        blank_image(32, 32, [255, 255, 255, 255])
    );

    // hard links
    let dir = tmp_dir("hardlinked");
    let cache = FileCache::new(&dir, DirectoryLayout::Tms, "png")
        .with_link_single_color(Some(LinkMode::Hardlink));
    cache.store((0, 0, 1), &white).expect("store");
    cache.store((1, 0, 1), &white).expect("store");
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let md = fs::metadata(dir.join("single_color_tiles/ffffff.png")).expect("real file");
        assert_eq!(md.nlink(), 3);
    }
    // storing a tile that is not single-coloured over a link replaces the link
    let two = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    cache.store((0, 0, 1), &two).expect("store");
    assert_eq!(
        &cache.load((0, 0, 1)).expect("load").expect("tile").data[..],
        &two[..]
    );
    assert_eq!(
        &fs::read(dir.join("single_color_tiles/ffffff.png")).expect("real file")[..],
        &white[..]
    );
}

fn image_px(c: [u8; 4]) -> image::Rgba<u8> {
    image::Rgba(c)
}

fn two_colors() -> RgbaImage {
    let mut img = blank_image(32, 32, [255, 255, 255, 255]);
    for y in 0..32 {
        for x in 0..16 {
            img.put_pixel(x, y, image_px([200, 0, 0, 255]));
        }
    }
    img
}

/// A varied transparent image: a gradient with an alpha ramp and a fully transparent corner.
fn varied() -> RgbaImage {
    RgbaImage::from_fn(256, 256, |x, y| {
        let a = if x < 32 && y < 32 {
            0
        } else {
            255 - (y as u8 / 4)
        };
        image_px([x as u8, y as u8, ((x + y) / 2) as u8, a])
    })
}

/// The data of the first `name` chunk of a PNG.
fn png_chunk<'a>(png: &'a [u8], name: &[u8; 4]) -> Option<&'a [u8]> {
    let mut i = 8;
    while i + 8 <= png.len() {
        let len = u32::from_be_bytes(png[i..i + 4].try_into().ok()?) as usize;
        let kind = &png[i + 4..i + 8];
        let body = png.get(i + 8..i + 8 + len)?;
        if kind == name {
            return Some(body);
        }
        i += 12 + len;
    }
    None
}

#[test]
fn png_is_paletted_by_default_with_trns_when_transparent() {
    let img = varied();
    // opaque image/png: colour type 3, no tRNS, bit depth 8 (many colours)
    let out = encode(&img, &ImageOpts::new(ImageFormat::png())).expect("encode");
    let ihdr = png_chunk(&out, b"IHDR").expect("IHDR");
    assert_eq!((ihdr[8], ihdr[9]), (8, 3));
    assert!(png_chunk(&out, b"PLTE").expect("PLTE").len() <= 256 * 3);
    assert!(png_chunk(&out, b"tRNS").is_none());
    assert!(decode(&out)
        .expect("decodes")
        .pixels()
        .all(|p| p.0[3] == 255));

    // transparent: tRNS, the transparent corner stays transparent
    let mut o = ImageOpts::new(ImageFormat::new("image/png"));
    o.transparent = true;
    let out = encode(&img, &o).expect("encode");
    assert_eq!(png_chunk(&out, b"IHDR").expect("IHDR")[9], 3);
    assert!(png_chunk(&out, b"tRNS").is_some());
    let back = decode(&out).expect("decodes");
    assert_eq!(back.get_pixel(5, 5).0[3], 0);
    assert!(back.get_pixel(200, 200).0[3] > 180);

    // few colours: exact, in a palette of all 256 entries at 8 bits, as Pillow's FASTOCTREE
    // and PNG writer give it (the most used first, unused entries black)
    let out = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let ihdr = png_chunk(&out, b"IHDR").expect("IHDR");
    assert_eq!((ihdr[8], ihdr[9]), (8, 3));
    let plte = png_chunk(&out, b"PLTE").expect("PLTE");
    assert_eq!(plte.len(), 256 * 3);
    assert_eq!(&plte[..9], &[200, 0, 0, 255, 255, 255, 0, 0, 0]);
    assert_eq!(decode(&out).expect("decodes"), two_colors());

    // colors: 16 -> at most 16 palette entries, 4 bits
    let mut o = ImageOpts::new(ImageFormat::png());
    o.colors = 16;
    let out = encode(&img, &o).expect("encode");
    assert!(png_chunk(&out, b"PLTE").expect("PLTE").len() <= 16 * 3);
    assert_eq!(png_chunk(&out, b"IHDR").expect("IHDR")[8], 4);

    // paletted: false -> truecolour, RGBA when transparent
    let mut o = ImageOpts::new(ImageFormat::png());
    o.paletted = false;
    let out = encode(&img, &o).expect("encode");
    assert_eq!(png_chunk(&out, b"IHDR").expect("IHDR")[9], 2);
    o.transparent = true;
    let out = encode(&img, &o).expect("encode");
    assert_eq!(png_chunk(&out, b"IHDR").expect("IHDR")[9], 6);
    assert_eq!(decode(&out).expect("decodes"), img);
}

/// The first value of the first quantization table of a JPEG (the luminance DC step).
fn jpeg_dqt0(jpeg: &[u8]) -> Option<u8> {
    let i = jpeg.windows(2).position(|w| w == [0xff, 0xdb])?;
    // marker, length (2), Pq/Tq (1), then 64 values
    jpeg.get(i + 5).copied()
}

#[test]
fn jpeg_quality_is_honoured() {
    let img = varied();
    let mut o = ImageOpts::new(ImageFormat::jpeg());
    let q90 = encode(&img, &o).expect("encode");
    assert_eq!(sniff_format(&q90), Some(ImageFormat::jpeg()));
    // IJG scaling of the standard table's 16: quality 90 -> 3, 50 -> 16, 10 -> 80
    assert_eq!(jpeg_dqt0(&q90), Some(3));
    o.jpeg_quality = 50;
    let q50 = encode(&img, &o).expect("encode");
    assert_eq!(jpeg_dqt0(&q50), Some(16));
    o.jpeg_quality = 10;
    let q10 = encode(&img, &o).expect("encode");
    assert_eq!(jpeg_dqt0(&q10), Some(80));
    assert!(q10.len() < q50.len() && q50.len() < q90.len());
}

#[test]
fn atomic_store_leaves_no_temp_files() {
    let dir = tmp_dir("atomic");
    let cache = FileCache::new(&dir, DirectoryLayout::Tc, "png");
    let a = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let b = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    // writers racing on one tile: a reader sees one whole tile
    std::thread::scope(|s| {
        for i in 0..8 {
            let (cache, a, b) = (&cache, &a, &b);
            s.spawn(move || {
                for _ in 0..20 {
                    let d = if i % 2 == 0 { a } else { b };
                    cache.store((1, 2, 3), d).expect("store");
                    let got = cache.load((1, 2, 3)).expect("load").expect("stored");
                    assert!(got.data[..] == a[..] || got.data[..] == b[..]);
                }
            });
        }
    });
    for x in 0..4 {
        cache.store((x, 0, 2), &a).expect("store");
    }
    let files = files_under(&dir);
    assert!(files.iter().all(|f| !f.contains(".tmp-")), "{files:?}");
    assert_eq!(files.len(), 5, "{files:?}");
    cache.remove((0, 0, 2)).expect("remove");
    cache
        .remove((0, 0, 2))
        .expect("removing a missing tile is fine");
    assert!(cache.load((0, 0, 2)).expect("load").is_none());
}

#[cfg(unix)]
#[test]
fn permissions_as_configured() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp_dir("perms");
    let cache = FileCache::new(dir.join("c_EPSG3857"), DirectoryLayout::Tms, "png")
        .with_permissions(Some(0o750), Some(0o640));
    cache.store((1, 2, 3), b"not an image").expect("store");
    let mode = |p: &Path| fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(&dir.join("c_EPSG3857/3/1/2.png")), 0o640);
    assert_eq!(mode(&dir.join("c_EPSG3857/3/1")), 0o750);
    assert_eq!(mode(&dir.join("c_EPSG3857/3")), 0o750);
    assert_eq!(mode(&dir.join("c_EPSG3857")), 0o750);
}

/// Tiles we store are found and decoded by MapProxy's own FileCache and PIL.
#[test]
fn mapproxy_reads_tiles_we_store() {
    let python = match std::env::var("MAPPROXY_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("MAPPROXY_PYTHON is not set: set it to a python with MapProxy 7 installed");
            }
            println!("SKIP: mapproxy_reads_tiles_we_store: set MAPPROXY_PYTHON to a python with MapProxy 7 (e.g. /tmp/mpv/bin/python)");
            return;
        }
    };
    let dir = tmp_dir("for-mapproxy");
    let img = varied();
    let mut transparent = ImageOpts::new(ImageFormat::png());
    transparent.transparent = true;
    let paletted = encode(&img, &transparent).expect("encode");
    let mut mixed_opts = ImageOpts::new(ImageFormat::new("mixed"));
    mixed_opts.transparent = true;
    let mixed_jpeg = encode(&two_colors(), &mixed_opts).expect("encode");
    let white = encode(
        &blank_image(256, 256, [255, 255, 255, 255]),
        &ImageOpts::new(ImageFormat::png()),
    )
    .expect("encode");

    let mut checks = Vec::new();
    let layouts = ["tc", "mp", "tms", "reverse_tms", "quadkey", "arcgis"];
    for (i, l) in layouts.iter().enumerate() {
        let layout = DirectoryLayout::parse(l).expect("layout");
        let cdir = dir.join(format!("c_{l}"));
        let cache = FileCache::new(&cdir, layout, "png");
        let xyz = (1234 + i as i64, 5678, 13);
        cache.store(xyz, &paletted).expect("store");
        checks.push((cdir, *l, "png", xyz, &paletted, "P"));
    }
    let cdir = dir.join("mixed");
    let cache = FileCache::for_format(&cdir, DirectoryLayout::Tc, &ImageFormat::new("mixed"));
    cache.store((3, 4, 5), &mixed_jpeg).expect("store");
    checks.push((cdir, "tc", "mixed", (3, 4, 5), &mixed_jpeg, "RGB"));
    let cdir = dir.join("linked");
    let cache = FileCache::new(&cdir, DirectoryLayout::Tc, "png")
        .with_link_single_color(Some(LinkMode::Symlink));
    cache.store((1, 1, 1), &white).expect("store");
    assert!(fs::read_link(cache.tile_location((1, 1, 1))).is_ok());
    checks.push((cdir, "tc", "png", (1, 1, 1), &white, "P"));

    let mut list = Vec::new();
    for (d, l, ext, (x, y, z), data, mode) in &checks {
        list.push(serde_json::json!({
            "dir": d.to_string_lossy(), "layout": l, "ext": ext, "coord": [x, y, z],
            "hex": data.iter().map(|b| format!("{b:02x}")).collect::<String>(), "mode": mode,
        }));
    }
    let snippet = r#"
import io, json, sys
from PIL import Image
from mapproxy.cache.file import FileCache
from mapproxy.cache.tile import Tile
for c in json.load(sys.stdin):
    fc = FileCache(c['dir'], c['ext'], directory_layout=c['layout'])
    t = Tile(tuple(c['coord']))
    assert fc.is_cached(t), ('not cached', c['dir'], c['coord'])
    assert fc.load_tile(t), ('not loaded', c['dir'], c['coord'])
    data = t.image_result.as_buffer().read()
    assert data == bytes.fromhex(c['hex']), ('other bytes', c['dir'])
    img = Image.open(io.BytesIO(data))
    img.load()
    assert img.mode == c['mode'], (img.mode, c)
    assert img.size == (256, 256) or img.size == (32, 32), img.size
    t.image_result.as_image()
    print('ok', c['layout'], c['ext'], fc.tile_location(t))
"#;
    let mut child = Command::new(&python)
        .args(["-c", snippet])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run MAPPROXY_PYTHON={python}: {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(serde_json::Value::Array(list).to_string().as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("python ran");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "MapProxy could not read our tiles:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("ok ")).count(),
        checks.len()
    );
}

// ---------------------------------------------------------------------------------------------
// One behaviour table over every cache type: file, mbtiles, sqlite, geopackage (one file and one
// per level), redis (a real redis-server on a loopback port), s3 (moto's S3 server on a
// loopback port) and compact (ArcGIS bundles v1 and v2).

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mapproxy_serve_mapproxy::cache::{
    CompactCache, CompactVersion, GeoPackageCache, GpkgTable, MbTilesCache, RedisCache,
    RedisOptions, S3Cache, S3Options, SqliteCache,
};
use mapproxy_serve_mapproxy::grid::global_webmercator;
use support::moto::MotoServer;
use support::redis::RedisServer;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kind {
    File,
    MbTiles,
    Sqlite,
    GeoPackage,
    GeoPackageLevels,
    Redis,
    S3,
    CompactV1,
    CompactV2,
}

const KINDS: [Kind; 9] = [
    Kind::File,
    Kind::MbTiles,
    Kind::Sqlite,
    Kind::GeoPackage,
    Kind::GeoPackageLevels,
    Kind::Redis,
    Kind::S3,
    Kind::CompactV1,
    Kind::CompactV2,
];

/// How a kind reports tile times: exactly what `store` returned (Redis: its key's expiry less
/// the ttl, to the millisecond), to the second, or unknown (the epoch: MBTiles and GeoPackage
/// and compact bundles have no tile times).
fn time_kind(k: Kind) -> &'static str {
    match k {
        Kind::File => "exact",
        Kind::Redis => "milliseconds",
        Kind::Sqlite => "seconds",
        // S3's Last-Modified, to the second; `store` does not know it
        Kind::S3 => "server seconds",
        Kind::MbTiles
        | Kind::GeoPackage
        | Kind::GeoPackageLevels
        | Kind::CompactV1
        | Kind::CompactV2 => "epoch",
    }
}

/// A cache of `kind` in `dir` (a Redis prefix named after `dir` on `redis`). `ttl`: seconds
/// (sqlite, redis).
fn open_cache(
    kind: Kind,
    dir: &Path,
    redis: Option<&RedisServer>,
    moto: Option<&MotoServer>,
    ttl: f64,
) -> Option<Arc<dyn TileCache>> {
    let grid = global_webmercator();
    let timeout = Duration::from_secs(30);
    Some(match kind {
        Kind::File => Arc::new(FileCache::new(dir.join("file"), DirectoryLayout::Tc, "png")),
        Kind::MbTiles => {
            Arc::new(MbTilesCache::open(dir.join("c.mbtiles"), timeout).expect("mbtiles"))
        }
        Kind::Sqlite => Arc::new(SqliteCache::new(dir.join("sqlite"), timeout, ttl as u64)),
        Kind::GeoPackage => Arc::new(
            GeoPackageCache::open(
                dir.join("c.gpkg"),
                GpkgTable::new("c_GLOBAL_WEBMERCATOR", &grid).expect("table"),
                timeout,
            )
            .expect("gpkg"),
        ),
        Kind::GeoPackageLevels => Arc::new(GeoPackageCache::levels(
            dir.join("gpkg_levels"),
            GpkgTable::new("c_GLOBAL_WEBMERCATOR", &grid).expect("table"),
            timeout,
        )),
        Kind::CompactV1 => Arc::new(CompactCache::new(dir.join("compact"), CompactVersion::V1)),
        Kind::CompactV2 => Arc::new(CompactCache::new(dir.join("compact"), CompactVersion::V2)),
        Kind::Redis => {
            let server = redis?;
            let mut o = RedisOptions::new(dir.to_string_lossy());
            o.port = server.port;
            o.ttl = ttl;
            Arc::new(RedisCache::new(&o).expect("redis"))
        }
        Kind::S3 => {
            let server = moto?;
            // a bucket per directory, named after it
            let bucket: String = dir
                .file_name()
                .expect("name")
                .to_string_lossy()
                .to_ascii_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
                .collect();
            server.create_bucket(&bucket);
            Arc::new(
                S3Cache::new(&S3Options {
                    bucket_name: bucket,
                    base_path: "c/GLOBAL_WEBMERCATOR".into(),
                    layout: DirectoryLayout::Tms,
                    file_ext: "png".into(),
                    profile_name: None,
                    region_name: None,
                    endpoint_url: Some(server.url()),
                    access_control_list: None,
                    use_http_get: false,
                })
                .expect("s3"),
            )
        }
    })
}

fn secs_of(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .expect("after epoch")
        .as_secs_f64()
}

/// Polls `f` until it is true or `secs` pass.
fn eventually(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn every_cache_type_passes_the_behaviour_table() {
    let redis = RedisServer::start("every_cache_type_passes_the_behaviour_table (redis rows)");
    let moto = MotoServer::start("every_cache_type_passes_the_behaviour_table (s3 rows)");
    let a = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let b = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let mut ran = Vec::new();
    for kind in KINDS {
        let dir = tmp_dir(&format!("table-{kind:?}"));
        let Some(cache) = open_cache(kind, &dir, redis.as_ref(), moto.as_ref(), 3600.0) else {
            continue;
        };
        let k = format!("{kind:?}");
        // nothing stored
        let c = (5, 6, 7);
        assert!(cache.load(c).expect("load").is_none(), "{k}");
        assert!(!cache.is_cached(c).expect("is_cached"), "{k}");
        // store, load, is_cached, the stored time
        let before = SystemTime::now();
        let stored = cache.store(c, &a).expect("store");
        let after = SystemTime::now();
        let got = cache.load(c).expect("load").expect("stored tile");
        assert_eq!(&got.data[..], &a[..], "{k}");
        assert!(cache.is_cached(c).expect("is_cached"), "{k}");
        match time_kind(kind) {
            "exact" => assert_eq!(Some(got.mtime), stored, "{k}"),
            "seconds" => {
                assert_eq!(Some(got.mtime), stored, "{k}");
                assert_eq!(secs_of(got.mtime), secs_of(before).floor(), "{k}");
            }
            "epoch" => assert_eq!(got.mtime, UNIX_EPOCH, "{k}"),
            "server seconds" => {
                assert_eq!(stored, None, "{k}");
                let t = secs_of(got.mtime);
                assert!(
                    t >= secs_of(before).floor() && t <= secs_of(after),
                    "{k}: {t} not in [{}, {}]",
                    secs_of(before),
                    secs_of(after)
                );
                assert_eq!(cache.load(c).expect("load").expect("tile").mtime, got.mtime);
            }
            _ => {
                assert_eq!(Some(got.mtime), stored, "{k}");
                // the same on every read (a stable ETag)
                let again = cache.load(c).expect("load").expect("tile");
                assert_eq!(again.mtime, got.mtime, "{k}");
                let t = secs_of(got.mtime);
                assert!(
                    t >= secs_of(before) - 0.001 && t <= secs_of(after),
                    "{k}: {t} not in [{}, {}]",
                    secs_of(before),
                    secs_of(after)
                );
            }
        }
        // the same coordinates in other orders and levels are other tiles
        for other in [(6, 5, 7), (5, 6, 8), (5, 6, 6), (5, 7, 7)] {
            assert!(!cache.is_cached(other).expect("is_cached"), "{k} {other:?}");
        }
        // replace
        cache.store(c, &b).expect("store");
        assert_eq!(
            &cache.load(c).expect("load").expect("tile").data[..],
            &b[..],
            "{k}"
        );
        // level 0 and big coordinates
        cache.store((0, 0, 0), &a).expect("store");
        cache.store((262_143, 262_143, 18), &b).expect("store");
        assert_eq!(
            &cache.load((0, 0, 0)).expect("load").expect("z0").data[..],
            &a[..]
        );
        assert_eq!(
            &cache
                .load((262_143, 262_143, 18))
                .expect("load")
                .expect("z18")
                .data[..],
            &b[..]
        );
        // a second instance on the same storage (another process) sees the tiles
        let again = open_cache(kind, &dir, redis.as_ref(), moto.as_ref(), 3600.0).expect("reopen");
        assert_eq!(
            &again.load(c).expect("load").expect("tile").data[..],
            &b[..],
            "{k}"
        );
        // remove, twice
        again.remove(c).expect("remove");
        assert!(cache.load(c).expect("load").is_none(), "{k}");
        assert!(!cache.is_cached(c).expect("is_cached"), "{k}");
        cache.remove(c).expect("remove of a missing tile");
        assert!(cache.is_cached((0, 0, 0)).expect("is_cached"), "{k}");
        ran.push(k);
    }
    println!("behaviour table ran for: {}", ran.join(", "));
}

/// `ttl`: an expired tile is not cached (sqlite: MapProxy's last_modified condition; redis:
/// the key's expiry).
#[test]
fn ttl_expires_tiles() {
    let redis = RedisServer::start("ttl_expires_tiles (redis row)");
    // S3 objects have no ttl (MapProxy's S3Cache has none)
    let moto: Option<MotoServer> = None;
    let a = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    // sqlite's last_modified has second resolution (MapProxy's datetime(?, 'unixepoch')), so a
    // tile stored at S.999 with a ttl of 1 s is already expired at S+1.0: 2 s leaves a whole
    // second between the store and the first check. That check only counts when it came
    // within that second (a busy machine may take longer between two calls).
    for (kind, ttl) in [(Kind::Sqlite, 2.0), (Kind::Redis, 2.0)] {
        let dir = tmp_dir(&format!("ttl-{kind:?}"));
        let Some(cache) = open_cache(kind, &dir, redis.as_ref(), moto.as_ref(), ttl) else {
            continue;
        };
        let stored = std::time::Instant::now();
        cache.store((1, 1, 1), &a).expect("store");
        let fresh = cache.is_cached((1, 1, 1)).expect("is_cached");
        assert!(
            fresh || stored.elapsed() >= std::time::Duration::from_secs(1),
            "{kind:?}: not cached right after the store"
        );
        assert!(
            eventually(8, || !cache.is_cached((1, 1, 1)).expect("is_cached")),
            "{kind:?}: the tile did not expire"
        );
        assert!(cache.load((1, 1, 1)).expect("load").is_none(), "{kind:?}");
        // stored again, it is fresh again
        let stored = std::time::Instant::now();
        cache.store((1, 1, 1), &a).expect("store");
        let fresh = cache.load((1, 1, 1)).expect("load").is_some();
        assert!(
            fresh || stored.elapsed() >= std::time::Duration::from_secs(1),
            "{kind:?}: not fresh after the second store"
        );
    }
}

/// A tile of `len` bytes whose content says what it is: 8 bytes seed, 4 bytes length, then
/// bytes derived from the seed; [`check_payload`] tells a whole tile from a torn one.
fn payload(seed: u64, len: usize) -> Vec<u8> {
    let mut v = Vec::with_capacity(len);
    v.extend_from_slice(&seed.to_le_bytes());
    v.extend_from_slice(&(len as u32).to_le_bytes());
    let mut s = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
    while v.len() < len {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        v.push((s >> 33) as u8);
    }
    v
}

fn check_payload(data: &[u8]) -> bool {
    if data.len() < 12 {
        return false;
    }
    let seed = u64::from_le_bytes(data[..8].try_into().expect("8 bytes"));
    let len = u32::from_le_bytes(data[8..12].try_into().expect("4 bytes")) as usize;
    len == data.len() && payload(seed, len) == data
}

/// Writers and readers on the same tiles at once, through two instances of each cache (two
/// connection pools, as two processes): no error ("database is locked" included), and every
/// tile read is whole.
#[test]
fn concurrent_readers_and_writers() {
    let redis = RedisServer::start("concurrent_readers_and_writers (redis row)");
    let moto = MotoServer::start("concurrent_readers_and_writers (s3 row)");
    const THREADS: usize = 8;
    const OPS: usize = 150;
    for kind in KINDS {
        let dir = tmp_dir(&format!("conc-{kind:?}"));
        let Some(one) = open_cache(kind, &dir, redis.as_ref(), moto.as_ref(), 3600.0) else {
            continue;
        };
        let two =
            open_cache(kind, &dir, redis.as_ref(), moto.as_ref(), 3600.0).expect("second instance");
        let coords: Vec<(i64, i64, usize)> = (0..12)
            .map(|i| (i % 4, i / 4, 3 + (i as usize % 2)))
            .collect();
        let start = Instant::now();
        let mut handles = Vec::new();
        for t in 0..THREADS {
            let cache = if t % 2 == 0 { one.clone() } else { two.clone() };
            let coords = coords.clone();
            handles.push(std::thread::spawn(move || {
                let (mut reads, mut writes, mut hits) = (0, 0, 0);
                for i in 0..OPS {
                    let c = coords[(t * 7 + i * 5) % coords.len()];
                    if (t + i) % 3 == 0 {
                        let seed = (t * 1_000_000 + i) as u64;
                        let len = 2_000 + (i * 997 + t * 131) % 30_000;
                        cache
                            .store(c, &payload(seed, len))
                            .unwrap_or_else(|e| panic!("{kind:?} store {c:?}: {e}"));
                        writes += 1;
                    } else if i % 17 == 0 {
                        cache
                            .remove(c)
                            .unwrap_or_else(|e| panic!("{kind:?} remove {c:?}: {e}"));
                    } else {
                        if let Some(tile) = cache
                            .load(c)
                            .unwrap_or_else(|e| panic!("{kind:?} load {c:?}: {e}"))
                        {
                            assert!(check_payload(&tile.data), "{kind:?}: torn tile at {c:?}");
                            hits += 1;
                        }
                        reads += 1;
                    }
                }
                (reads, writes, hits)
            }));
        }
        let (mut reads, mut writes, mut hits) = (0, 0, 0);
        for h in handles {
            let (r, w, x) = h.join().expect("no thread failed");
            reads += r;
            writes += w;
            hits += x;
        }
        let took = start.elapsed();
        assert!(writes > 0 && hits > 0, "{kind:?}");
        println!(
            "concurrent {kind:?}: {THREADS} threads, {writes} stores, {reads} loads ({hits} hits) in {:.0} ms",
            took.as_secs_f64() * 1000.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// `quick_load`, the way hits are read on the async workers (tile_manager.rs): it answers what
// `load` answers, for every cache type; SQLite falls back to the blocking path while another
// writer holds the database; Redis reconnects when its connection was killed.

use mapproxy_serve_mapproxy::cache::{CachedTile, QuickLoad};

/// How `quick_load` answered ("now", "future", or "would block", then `load` on the blocking
/// pool as the tile manager does) and what.
async fn quick(
    cache: &Arc<dyn TileCache>,
    c: (i64, i64, usize),
) -> (&'static str, Option<CachedTile>) {
    match cache.quick_load(c) {
        QuickLoad::Now(r) => ("now", r.expect("quick_load")),
        QuickLoad::Future(f) => ("future", f.await.expect("quick_load's future")),
        QuickLoad::WouldBlock => {
            let cache = cache.clone();
            let r = tokio::task::spawn_blocking(move || cache.load(c))
                .await
                .expect("blocking task");
            ("would block", r.expect("load"))
        }
    }
}

/// The quick way each kind takes for a stored tile.
fn quick_way(k: Kind) -> &'static str {
    match k {
        Kind::Redis => "future",
        // S3 hits stay on the blocking pool
        Kind::S3 => "would block",
        _ => "now",
    }
}

fn same_tile(a: &Option<CachedTile>, b: &Option<CachedTile>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => a.data == b.data && a.mtime == b.mtime,
        _ => false,
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[test]
fn quick_load_answers_as_load_for_every_cache_type() {
    let redis = RedisServer::start("quick_load_answers_as_load_for_every_cache_type (redis rows)");
    let moto = MotoServer::start("quick_load_answers_as_load_for_every_cache_type (s3 rows)");
    let a = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let b = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let rt = runtime();
    let mut ran = Vec::new();
    for kind in KINDS {
        let dir = tmp_dir(&format!("quick-{kind:?}"));
        let Some(cache) = open_cache(kind, &dir, redis.as_ref(), moto.as_ref(), 3600.0) else {
            continue;
        };
        let k = format!("{kind:?}");
        rt.block_on(async {
            // a miss, before anything is stored (the per-level files are not made yet)
            let c = (5, 6, 7);
            let (_, got) = quick(&cache, c).await;
            assert!(got.is_none(), "{k}");
            // a hit: what load answers, tile time included, the quick way
            cache.store(c, &a).expect("store");
            let (way, got) = quick(&cache, c).await;
            assert_eq!(way, quick_way(kind), "{k}");
            assert_eq!(&got.as_ref().expect("a hit").data[..], &a[..], "{k}");
            assert!(same_tile(&got, &cache.load(c).expect("load")), "{k}");
            // misses next to it, in the same file or bundle, and on other levels
            for other in [(6, 5, 7), (5, 7, 7), (5, 6, 8), (5, 6, 6), (300, 6, 9)] {
                let (_, got) = quick(&cache, other).await;
                assert!(got.is_none(), "{k} {other:?}");
            }
            // replaced: the new tile
            cache.store(c, &b).expect("store");
            let (_, got) = quick(&cache, c).await;
            assert_eq!(&got.as_ref().expect("a hit").data[..], &b[..], "{k}");
            assert!(same_tile(&got, &cache.load(c).expect("load")), "{k}");
            // a second instance (another process) reads it the quick way, from its first hit
            let again =
                open_cache(kind, &dir, redis.as_ref(), moto.as_ref(), 3600.0).expect("reopen");
            let (way, got) = quick(&again, c).await;
            assert_eq!(way, quick_way(kind), "{k}: a second instance");
            assert_eq!(&got.expect("a hit").data[..], &b[..], "{k}");
            // removed by the other: gone for both
            again.remove(c).expect("remove");
            assert!(quick(&cache, c).await.1.is_none(), "{k}");
            assert!(quick(&again, c).await.1.is_none(), "{k}");
        });
        ran.push(k);
    }
    // expired tiles: none, as load (sqlite: MapProxy's last_modified condition; redis: the
    // key's expiry)
    for (kind, ttl) in [(Kind::Sqlite, 1.0), (Kind::Redis, 0.3)] {
        let dir = tmp_dir(&format!("quick-ttl-{kind:?}"));
        let Some(cache) = open_cache(kind, &dir, redis.as_ref(), None, ttl) else {
            continue;
        };
        let c = (1, 1, 1);
        cache.store(c, &a).expect("store");
        assert!(
            eventually(5, || cache.load(c).expect("load").is_none()),
            "{kind:?}: the tile did not expire"
        );
        let (way, got) = rt.block_on(quick(&cache, c));
        assert!(got.is_none(), "{kind:?}: an expired tile answered {way}");
        assert_eq!(way, quick_way(kind), "{kind:?}");
        ran.push(format!("{kind:?} ttl"));
    }
    println!("quick_load table ran for: {}", ran.join(", "));
}

/// A cache that counts the calls of the tile manager (quick loads and blocking loads).
struct Counting {
    inner: Arc<dyn TileCache>,
    quick: std::sync::atomic::AtomicUsize,
    loads: std::sync::atomic::AtomicUsize,
}

impl TileCache for Counting {
    fn load(&self, coord: (i64, i64, usize)) -> std::io::Result<Option<CachedTile>> {
        self.loads.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.load(coord)
    }
    fn quick_load(&self, coord: (i64, i64, usize)) -> QuickLoad<'_> {
        self.quick.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.inner.quick_load(coord)
    }
    fn store(&self, coord: (i64, i64, usize), data: &[u8]) -> std::io::Result<Option<SystemTime>> {
        self.inner.store(coord, data)
    }
    fn remove(&self, coord: (i64, i64, usize)) -> std::io::Result<()> {
        self.inner.remove(coord)
    }
}

/// A source that must not be asked: the tests' tiles are all cached.
struct NoSource;

impl mapproxy_serve_mapproxy::source::MapSource for NoSource {
    fn get_map<'a>(
        &'a self,
        _query: &'a mapproxy_serve_mapproxy::source::MapQuery,
    ) -> futures_util::future::BoxFuture<
        'a,
        Result<
            mapproxy_serve_mapproxy::source::SourceImage,
            mapproxy_serve_mapproxy::source::SourceError,
        >,
    > {
        panic!("the source was asked for a cached tile")
    }
}

/// Another process (a seeder) holds an SQLite level file in exclusive locking mode: the quick
/// read finds it busy and says so at once, the tile manager loads the tile on the blocking pool,
/// which waits for the writer (the busy timeout) and answers the tile the writer committed,
/// not "database is locked".
#[test]
fn a_hit_while_another_writer_holds_the_database_is_answered_by_the_blocking_path() {
    use mapproxy_serve_mapproxy::lock::TileLocker;
    use mapproxy_serve_mapproxy::tile_manager::{MetaSettings, TileManager};
    use std::sync::atomic::Ordering;
    let a = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let b = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let dir = tmp_dir("sqlite-exclusive");
    let timeout = Duration::from_secs(30);
    let c = (3, 2, 4);
    // stored by an instance that is then closed: the writer below is the file's only user
    SqliteCache::new(dir.join("sqlite"), timeout, 0)
        .store(c, &a)
        .expect("store");
    let writer = rusqlite::Connection::open(dir.join("sqlite").join("4.mbtiles")).expect("open");
    writer
        .execute_batch("PRAGMA locking_mode=EXCLUSIVE; BEGIN EXCLUSIVE;")
        .expect("exclusive");
    writer
        .execute(
            "UPDATE tiles SET tile_data = ? WHERE tile_column = 3 AND tile_row = 2 AND zoom_level = 4",
            [&b[..]],
        )
        .expect("update");
    let cache = Arc::new(SqliteCache::new(dir.join("sqlite"), timeout, 0));
    assert!(
        matches!(cache.quick_load(c), QuickLoad::WouldBlock),
        "a quick read of a locked database must not wait"
    );
    let counting = Arc::new(Counting {
        inner: cache.clone(),
        quick: Default::default(),
        loads: Default::default(),
    });
    let manager = Arc::new(TileManager::new(
        counting.clone(),
        Arc::new(NoSource),
        global_webmercator(),
        MetaSettings::NONE,
        ImageOpts::new(ImageFormat::png()),
        TileLocker::new(dir.join("locks"), "sqlite", Duration::from_secs(10)),
        2,
    ));
    let rt = runtime();
    let task = {
        let manager = manager.clone();
        rt.spawn(async move { manager.load_tile(c).await })
    };
    // the manager fell back to the blocking load, which waits for the writer
    let deadline = Instant::now() + Duration::from_secs(10);
    while counting.loads.load(Ordering::SeqCst) == 0 {
        assert!(Instant::now() < deadline, "no blocking load");
        assert!(
            !task.is_finished(),
            "answered while the database was locked"
        );
        std::thread::yield_now();
    }
    assert_eq!(counting.quick.load(Ordering::SeqCst), 1);
    // the writer commits and lets go of its lock
    writer
        .execute_batch("COMMIT; PRAGMA locking_mode=NORMAL; SELECT 1 FROM tiles LIMIT 1;")
        .expect("commit");
    drop(writer);
    let tile = rt
        .block_on(task)
        .expect("task")
        .unwrap_or_else(|e| panic!("the hit failed: {e:?}"));
    assert_eq!(&tile.data[..], &b[..], "the writer's tile");
    assert_eq!(counting.loads.load(Ordering::SeqCst), 1);
    // no writer now: the manager's next hit takes the quick way, no blocking load
    let tile = rt.block_on(manager.load_tile(c)).expect("a hit");
    assert_eq!(&tile.data[..], &b[..]);
    assert_eq!(counting.quick.load(Ordering::SeqCst), 2);
    assert_eq!(counting.loads.load(Ordering::SeqCst), 1);
    match cache.quick_load(c) {
        QuickLoad::Now(r) => assert_eq!(&r.expect("read").expect("a hit").data[..], &b[..]),
        _ => panic!("the quick read of a free database did not answer"),
    };
}

/// The async connection of a Redis cache is killed by the server (`CLIENT KILL`): the next hit
/// is sent again over a new connection and answers the tile.
#[test]
fn a_redis_hit_after_the_connection_was_killed_reconnects() {
    let Some(server) = RedisServer::start("a_redis_hit_after_the_connection_was_killed_reconnects")
    else {
        return;
    };
    let a = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let dir = tmp_dir("redis-kill");
    let cache = open_cache(Kind::Redis, &dir, Some(&server), None, 3600.0).expect("cache");
    let c = (7, 8, 9);
    let stored = cache.store(c, &a).expect("store");
    let mut admin = redis_conn(server.port);
    let rt = runtime();
    for round in 0..5 {
        let (way, got) = rt.block_on(quick(&cache, c));
        assert_eq!(way, "future");
        let got = got.unwrap_or_else(|| panic!("round {round}: no tile"));
        assert_eq!(&got.data[..], &a[..], "round {round}");
        assert_eq!(Some(got.mtime), stored, "round {round}");
        // every client but this one: the cache's async connection (and its pooled ones)
        let killed: i64 = redis::cmd("CLIENT")
            .arg("KILL")
            .arg("TYPE")
            .arg("normal")
            .arg("SKIPME")
            .arg("yes")
            .query(&mut admin)
            .expect("CLIENT KILL");
        assert!(killed >= 1, "round {round}: no connection to kill");
    }
    // a miss after a kill is a miss, not an error
    let (_, got) = rt.block_on(quick(&cache, (1, 2, 3)));
    assert!(got.is_none());
}

// ---------------------------------------------------------------------------------------------
// The SQLite, Redis and compact caches against the real MapProxy 7 (MAPPROXY_PYTHON): it reads
// what we wrote, we read what it wrote (compact: and our bundles of the same tiles are its bytes).

/// MapProxy's own cache classes on the storage in each JSON entry: `read` entries are loaded
/// and compared byte for byte (sqlite: the timestamp too), `write` entries are stored.
const MAPPROXY_CACHES_PY: &str = r#"
import io, json, sys, time
from mapproxy.cache.tile import Tile
from mapproxy.image import ImageResult
from mapproxy.grid.tile_grid import tile_grid
from mapproxy.cache.mbtiles import MBTilesCache, MBTilesLevelCache
from mapproxy.cache.geopackage import GeopackageCache, GeopackageLevelCache
grid = tile_grid(3857, origin='nw', name='GLOBAL_WEBMERCATOR')
def cache(c):
    k = c['kind']
    if k == 'mbtiles': return MBTilesCache(c['path'])
    if k == 'sqlite': return MBTilesLevelCache(c['path'])
    if k == 'gpkg': return GeopackageCache(c['path'], grid, c['table'])
    if k == 'gpkg_levels': return GeopackageLevelCache(c['path'], grid, c['table'])
    if k == 'redis':
        from mapproxy.cache.redis import RedisCache
        return RedisCache('127.0.0.1', c['port'], c['prefix'], ttl=c['ttl'])
    if k == 'compact1':
        from mapproxy.cache.compact import CompactCacheV1
        return CompactCacheV1(c['path'])
    if k == 'compact2':
        from mapproxy.cache.compact import CompactCacheV2
        return CompactCacheV2(c['path'])
    if k == 's3':
        from mapproxy.cache.s3 import S3Cache
        return S3Cache(c['base_path'], 'png', directory_layout=c['layout'],
                       bucket_name=c['bucket'], endpoint_url=c['endpoint'])
    raise ValueError(k)
job = json.load(sys.stdin)
for c in job['read']:
    fc = cache(c)
    t = Tile(tuple(c['coord']))
    assert fc.is_cached(Tile(tuple(c['coord']))), ('not cached', c)
    assert fc.load_tile(t), ('not loaded', c)
    data = t.image_result.as_buffer().read()
    assert data == bytes.fromhex(c['hex']), ('other bytes', c['kind'], c['coord'])
    if c['kind'] == 'sqlite':
        assert t.timestamp == c['time'], ('timestamp', t.timestamp, c['time'])
    missing = Tile((c['coord'][0] + 1, c['coord'][1], c['coord'][2]))
    assert not fc.load_tile(missing), ('a tile we did not write', c)
    print('read', c['kind'], c['coord'])
for c in job['write']:
    fc = cache(c)
    t = Tile(tuple(c['coord']), ImageResult(io.BytesIO(bytes.fromhex(c['hex']))))
    assert fc.store_tile(t) is not False, ('not stored', c)
    print('wrote', c['kind'], c['coord'])
"#;

fn run_mapproxy(python: &str, job: serde_json::Value) -> String {
    let mut child = Command::new(python)
        .args(["-c", MAPPROXY_CACHES_PY])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run MAPPROXY_PYTHON={python}: {e}"));
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        // a python that failed early closes its stdin: its stderr tells why (below)
        let _ = stdin.write_all(job.to_string().as_bytes());
    }
    let out = child.wait_with_output().expect("python ran");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "MapProxy failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn mapproxy_and_we_read_each_others_sqlite_and_redis_caches() {
    let what = "mapproxy_and_we_read_each_others_sqlite_and_redis_caches";
    let python = match std::env::var("MAPPROXY_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("MAPPROXY_PYTHON is not set: set it to a python with MapProxy 7 installed");
            }
            println!("SKIP: {what}: set MAPPROXY_PYTHON to a python with MapProxy 7");
            return;
        }
    };
    // MapProxy's redis cache needs the Python redis package (.ci/test installs it)
    let has_redis_py = Command::new(&python)
        .args(["-c", "import redis"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    let redis = if has_redis_py {
        RedisServer::start(&format!("{what} (redis rows)"))
    } else {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what}: MAPPROXY_PYTHON has no redis package (pip install redis)");
        }
        println!("SKIP: {what} (redis rows): MAPPROXY_PYTHON has no redis package");
        None
    };
    let dir = tmp_dir("interop");
    let ours = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let theirs = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let grid = global_webmercator();
    let table = "c_GLOBAL_WEBMERCATOR";
    let timeout = Duration::from_secs(30);

    // (kind as MapProxy names it, storage, our cache)
    let mut rows: Vec<(&str, serde_json::Value, Arc<dyn TileCache>)> = vec![
        (
            "mbtiles",
            serde_json::json!({"path": dir.join("ours.mbtiles")}),
            Arc::new(MbTilesCache::open(dir.join("ours.mbtiles"), timeout).expect("mbtiles")),
        ),
        (
            "sqlite",
            serde_json::json!({"path": dir.join("ours_sqlite")}),
            Arc::new(SqliteCache::new(dir.join("ours_sqlite"), timeout, 0)),
        ),
        (
            "gpkg",
            serde_json::json!({"path": dir.join("ours.gpkg"), "table": table}),
            Arc::new(
                GeoPackageCache::open(
                    dir.join("ours.gpkg"),
                    GpkgTable::new(table, &grid).expect("table"),
                    timeout,
                )
                .expect("gpkg"),
            ),
        ),
        (
            "gpkg_levels",
            serde_json::json!({"path": dir.join("ours_gpkg_levels"), "table": table}),
            Arc::new(GeoPackageCache::levels(
                dir.join("ours_gpkg_levels"),
                GpkgTable::new(table, &grid).expect("table"),
                timeout,
            )),
        ),
        (
            "compact1",
            serde_json::json!({"path": dir.join("ours_compact1")}),
            Arc::new(CompactCache::new(
                dir.join("ours_compact1"),
                CompactVersion::V1,
            )),
        ),
        (
            "compact2",
            serde_json::json!({"path": dir.join("ours_compact2")}),
            Arc::new(CompactCache::new(
                dir.join("ours_compact2"),
                CompactVersion::V2,
            )),
        ),
    ];
    if let Some(r) = &redis {
        let mut o = RedisOptions::new("ours");
        o.port = r.port;
        o.ttl = 600.0;
        rows.push((
            "redis",
            serde_json::json!({"port": r.port, "prefix": "ours", "ttl": 600}),
            Arc::new(RedisCache::new(&o).expect("redis")),
        ));
    }
    let coords = [(0i64, 0i64, 0usize), (5, 9, 4), (1000, 77, 12)];
    // 1. we write, MapProxy reads
    let mut read = Vec::new();
    for (kind, storage, cache) in &rows {
        for c in coords {
            let t = cache.store(c, &ours).expect("store");
            let mut e = storage.clone();
            e["kind"] = (*kind).into();
            e["coord"] = serde_json::json!([c.0, c.1, c.2]);
            e["hex"] = hex(&ours).into();
            if *kind == "sqlite" {
                e["time"] = secs_of(t.expect("sqlite knows the time")).into();
            }
            read.push(e);
        }
    }
    // 2. MapProxy writes into its own storage of each kind, we read
    let mut write = Vec::new();
    let mut theirs_rows: Vec<(&str, Option<PathBuf>, serde_json::Value)> = Vec::new();
    for (kind, storage, _) in &rows {
        let mut s = storage.clone();
        let ours_path = s["path"].as_str().map(|p| p.replace("ours", "theirs"));
        if let Some(p) = &ours_path {
            s["path"] = p.clone().into();
        }
        if *kind == "redis" {
            s["prefix"] = "theirs".into();
        }
        for c in coords {
            let mut e = s.clone();
            e["kind"] = (*kind).into();
            e["coord"] = serde_json::json!([c.0, c.1, c.2]);
            e["hex"] = hex(&theirs).into();
            write.push(e);
        }
        // opened after MapProxy made them (below)
        theirs_rows.push((kind, ours_path.map(PathBuf::from), s));
    }
    let before = SystemTime::now();
    let out = run_mapproxy(&python, serde_json::json!({"read": read, "write": write}));
    let after = SystemTime::now();
    assert_eq!(
        out.lines().filter(|l| l.starts_with("read ")).count(),
        read.len(),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("wrote ")).count(),
        write.len(),
        "{out}"
    );
    for (kind, path, storage) in &theirs_rows {
        let cache: Arc<dyn TileCache> = match *kind {
            "mbtiles" => Arc::new(
                MbTilesCache::open(path.clone().expect("path"), timeout).expect("their mbtiles"),
            ),
            "sqlite" => Arc::new(SqliteCache::new(path.clone().expect("path"), timeout, 0)),
            "gpkg" => Arc::new(
                GeoPackageCache::open(
                    path.clone().expect("path"),
                    GpkgTable::new(table, &grid).expect("table"),
                    timeout,
                )
                .expect("their gpkg fits the grid"),
            ),
            "gpkg_levels" => Arc::new(GeoPackageCache::levels(
                path.clone().expect("path"),
                GpkgTable::new(table, &grid).expect("table"),
                timeout,
            )),
            "compact1" | "compact2" => {
                let version = if *kind == "compact1" {
                    CompactVersion::V1
                } else {
                    CompactVersion::V2
                };
                let path = path.clone().expect("path");
                // the same tiles stored by us in the same order: the same files, byte for byte
                let same = dir.join(format!("same_{kind}"));
                let ours = CompactCache::new(&same, version);
                for c in coords {
                    ours.store(c, &theirs).expect("store");
                }
                // MapProxy removes its lock files, ours stay (cache/compact.rs)
                let files = files_under(&path);
                assert!(files.iter().all(|f| !f.ends_with(".lck")), "{files:?}");
                let ours_files: BTreeSet<String> = files_under(&same)
                    .into_iter()
                    .filter(|f| !f.ends_with(".lck"))
                    .collect();
                assert_eq!(files, ours_files, "{kind}");
                for f in &files {
                    assert!(
                        fs::read(path.join(f)).expect("theirs")
                            == fs::read(same.join(f)).expect("ours"),
                        "{kind}: {f} differs from MapProxy's"
                    );
                }
                Arc::new(CompactCache::new(path, version))
            }
            _ => {
                let mut o = RedisOptions::new("theirs");
                o.port = storage["port"].as_u64().expect("port") as u16;
                // the ttl MapProxy wrote with
                o.ttl = storage["ttl"].as_f64().expect("ttl");
                Arc::new(RedisCache::new(&o).expect("redis"))
            }
        };
        for c in coords {
            assert!(cache.is_cached(c).expect("is_cached"), "{kind} {c:?}");
            let t = cache
                .load(c)
                .expect("load")
                .unwrap_or_else(|| panic!("{kind} {c:?}"));
            assert_eq!(&t.data[..], &theirs[..], "{kind} {c:?}");
            // sqlite: its last_modified; redis: the key's expiry less the ttl
            if *kind == "sqlite" || *kind == "redis" {
                let s = secs_of(t.mtime);
                assert!(
                    s >= secs_of(before).floor() && s <= secs_of(after),
                    "{kind}: MapProxy's time {s} not in its run"
                );
            }
            assert!(
                !cache.is_cached((c.0 + 1, c.1, c.2)).expect("is_cached"),
                "{kind}"
            );
        }
    }
    println!(
        "MapProxy 7 read our {} and we read its: {}",
        rows.iter().map(|r| r.0).collect::<Vec<_>>().join(", "),
        theirs_rows
            .iter()
            .map(|r| r.0)
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// MapProxy 7 and we store tiles into one compact bundle at the same time (its `FileLock` and
/// ours on the same `.lck`): afterwards every tile is whole, for us and for MapProxy.
#[test]
fn mapproxy_and_we_write_one_compact_bundle_at_once() {
    let what = "mapproxy_and_we_write_one_compact_bundle_at_once";
    let python = match std::env::var("MAPPROXY_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("MAPPROXY_PYTHON is not set: set it to a python with MapProxy 7 installed");
            }
            println!("SKIP: {what}: set MAPPROXY_PYTHON to a python with MapProxy 7");
            return;
        }
    };
    // even columns only (MapProxy's reader checks that the tile right of each is missing);
    // MapProxy writes rows 0 and 2, we rows 1 and 3, all in one bundle
    let coords: Vec<(i64, i64, usize)> = (0..16).map(|i| ((i % 4) * 2, i / 4, 5)).collect();
    let their_coords: Vec<_> = coords.iter().copied().filter(|c| c.1 % 2 == 0).collect();
    let our_coords: Vec<_> = coords.iter().copied().filter(|c| c.1 % 2 == 1).collect();
    for (kind, version) in [
        ("compact1", CompactVersion::V1),
        ("compact2", CompactVersion::V2),
    ] {
        let dir = tmp_dir(&format!("together-{kind}"));
        let cache = CompactCache::new(&dir, version);
        let mut want = std::collections::HashMap::new();
        let write: Vec<serde_json::Value> = (0..400u64)
            .map(|i| {
                let c = their_coords[i as usize % their_coords.len()];
                let tile = payload(1 << 50 | i, 3_000 + (i as usize * 877) % 9_000);
                let e = serde_json::json!({
                    "kind": kind, "path": dir, "coord": [c.0, c.1, c.2], "hex": hex(&tile),
                });
                want.insert(c, tile);
                e
            })
            .collect();
        let py = python.clone();
        let theirs = std::thread::spawn(move || {
            run_mapproxy(&py, serde_json::json!({"read": [], "write": write}))
        });
        // ours until MapProxy is done
        let mut stores = 0u64;
        while !theirs.is_finished() {
            let c = our_coords[stores as usize % our_coords.len()];
            // small: the bundle grows by every store
            let tile = payload(1 << 51 | stores, 500 + (stores as usize * 613) % 2_000);
            cache
                .store(c, &tile)
                .unwrap_or_else(|e| panic!("{kind} store: {e}"));
            want.insert(c, tile);
            stores += 1;
        }
        let out = theirs.join().expect("MapProxy ran");
        assert_eq!(out.lines().filter(|l| l.starts_with("wrote ")).count(), 400);
        // each place holds the last tile its writer stored there (appends that overlapped
        // would leave an entry pointing at the other writer's tile); MapProxy reads them too
        let mut read = Vec::new();
        for c in &coords {
            let t = cache.load(*c).expect("load").expect("a tile");
            assert!(check_payload(&t.data), "{kind}: torn tile at {c:?}");
            assert!(
                t.data == want[c],
                "{kind}: not the last tile stored at {c:?}"
            );
            read.push(serde_json::json!({
                "kind": kind, "path": dir, "coord": [c.0, c.1, c.2], "hex": hex(&t.data),
            }));
        }
        let out = run_mapproxy(&python, serde_json::json!({"read": read, "write": []}));
        assert_eq!(out.lines().filter(|l| l.starts_with("read ")).count(), 16);
        println!("{kind}: MapProxy stored 400 tiles and we {stores} into one bundle at once");
    }
}

/// Not a test of its own: the writer that [`a_killed_writer_leaves_no_torn_tile`] runs in a
/// child process (this test binary again) and kills; without `CACHES_KILLED_WRITER` it returns.
#[test]
fn killed_writer_child() {
    let Ok(spec) = std::env::var("CACHES_KILLED_WRITER") else {
        return;
    };
    let (kind, dir) = spec.split_once('|').expect("kind|dir");
    let kind = KINDS
        .into_iter()
        .find(|k| format!("{k:?}") == kind)
        .expect("a kind");
    let cache = open_cache(kind, Path::new(dir), None, None, 3600.0).expect("cache");
    let mut i = 0u64;
    loop {
        let c = ((i % 4) as i64, ((i / 4) % 4) as i64, 5);
        let len = 1_000 + (i as usize * 7_919) % 200_000;
        cache.store(c, &payload(i, len)).expect("store");
        i += 1;
    }
}

/// A writer killed (SIGKILL) while it stores tiles leaves every tile whole (the previous one
/// or the new one) and the database intact.
#[test]
fn a_killed_writer_leaves_no_torn_tile() {
    let exe = std::env::current_exe().expect("test binary");
    let coords: Vec<(i64, i64, usize)> = (0..16).map(|i| (i % 4, i / 4, 5)).collect();
    for kind in [
        Kind::File,
        Kind::MbTiles,
        Kind::Sqlite,
        Kind::GeoPackage,
        Kind::CompactV1,
        Kind::CompactV2,
    ] {
        let dir = tmp_dir(&format!("killed-{kind:?}"));
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "killed_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(
                "CACHES_KILLED_WRITER",
                format!("{kind:?}|{}", dir.display()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("child writer");
        let cache = open_cache(kind, &dir, None, None, 3600.0).expect("cache");
        // every tile written once, then one of them replaced: the writer is in its loop
        let all = eventually(30, || {
            coords.iter().all(|c| cache.is_cached(*c).unwrap_or(false))
        });
        assert!(all, "{kind:?}: the child wrote no tiles");
        let first = cache.load(coords[0]).expect("load").expect("tile");
        assert!(
            eventually(30, || cache
                .load(coords[0])
                .expect("load")
                .is_some_and(|t| t.data != first.data)),
            "{kind:?}: the child stopped writing"
        );
        child.kill().expect("kill");
        child.wait().expect("reaped");
        let after = open_cache(kind, &dir, None, None, 3600.0).expect("reopen");
        for c in &coords {
            let t = after.load(*c).expect("load").expect("a tile");
            assert!(check_payload(&t.data), "{kind:?}: torn tile at {c:?}");
        }
        // the database is intact
        let db = match kind {
            Kind::MbTiles => Some(dir.join("c.mbtiles")),
            Kind::Sqlite => Some(dir.join("sqlite/5.mbtiles")),
            Kind::GeoPackage => Some(dir.join("c.gpkg")),
            _ => None,
        };
        if let Some(db) = db {
            let conn = rusqlite::Connection::open(&db).expect("open");
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity_check");
            assert_eq!(check, "ok", "{kind:?}");
        }
    }
}

/// MapProxy's checks of an existing GeoPackage table: another SRS or other resolutions are
/// errors (not tiles written into a table that describes another grid).
#[test]
fn a_geopackage_table_of_another_grid_is_refused() {
    let dir = tmp_dir("gpkg-mismatch");
    let file = dir.join("c.gpkg");
    let timeout = Duration::from_secs(5);
    let web = global_webmercator();
    GeoPackageCache::open(&file, GpkgTable::new("t", &web).expect("table"), timeout).expect("made");
    // the same grid: fine; another table in the same file: fine
    GeoPackageCache::open(&file, GpkgTable::new("t", &web).expect("table"), timeout)
        .expect("reopened");
    let geo = mapproxy_serve_mapproxy::grid::global_geodetic();
    GeoPackageCache::open(&file, GpkgTable::new("u", &geo).expect("table"), timeout)
        .expect("a second table");
    let e = GeoPackageCache::open(&file, GpkgTable::new("t", &geo).expect("table"), timeout)
        .err()
        .expect("another SRS is refused")
        .to_string();
    assert!(e.contains("EPSG:4326") && e.contains("c.gpkg"), "{e}");
    // same SRS, other resolutions (GLOBAL_MERCATOR is 900913: a table of its own)
    let mut other = GpkgTable::new("t", &web).expect("table");
    for l in &mut other.levels {
        l.0 /= 3.0;
    }
    let e = GeoPackageCache::open(&file, other, timeout)
        .err()
        .expect("other resolutions are refused")
        .to_string();
    assert!(e.contains("resolution"), "{e}");
    assert!(GpkgTable::new("a;b", &web).is_err());
}

/// Two writer processes (this test binary again) and this one writing and reading the same
/// SQLite files at once: no "database is locked", every tile whole.
#[test]
fn writer_processes_and_readers_share_a_sqlite_cache() {
    let exe = std::env::current_exe().expect("test binary");
    for kind in [
        Kind::MbTiles,
        Kind::Sqlite,
        Kind::GeoPackage,
        Kind::CompactV1,
        Kind::CompactV2,
    ] {
        let dir = tmp_dir(&format!("procs-{kind:?}"));
        let cache = open_cache(kind, &dir, None, None, 3600.0).expect("cache");
        let mut children: Vec<std::process::Child> = (0..2)
            .map(|_| {
                Command::new(&exe)
                    .args([
                        "--exact",
                        "killed_writer_child",
                        "--nocapture",
                        "--test-threads=1",
                    ])
                    .env(
                        "CACHES_KILLED_WRITER",
                        format!("{kind:?}|{}", dir.display()),
                    )
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("child writer")
            })
            .collect();
        // the children are writing: the first tile is there
        assert!(
            eventually(30, || cache.is_cached((0, 0, 5)).unwrap_or(false)),
            "{kind:?}: the children wrote nothing"
        );
        let start = Instant::now();
        let (mut stores, mut loads) = (0, 0);
        for i in 0..400u64 {
            let c = ((i % 4) as i64, ((i / 4) % 4) as i64, 5);
            if i % 2 == 0 {
                cache
                    .store(
                        c,
                        &payload(1 << 40 | i, 5_000 + (i as usize * 131) % 50_000),
                    )
                    .unwrap_or_else(|e| panic!("{kind:?} store: {e}"));
                stores += 1;
            } else if let Some(t) = cache
                .load(c)
                .unwrap_or_else(|e| panic!("{kind:?} load: {e}"))
            {
                assert!(check_payload(&t.data), "{kind:?}: torn tile at {c:?}");
                loads += 1;
            }
            // the children are still running (a failed store ends one with an error)
            for ch in &mut children {
                assert!(
                    ch.try_wait().expect("try_wait").is_none(),
                    "{kind:?}: a writer process failed"
                );
            }
        }
        for mut ch in children {
            ch.kill().expect("kill");
            ch.wait().expect("reaped");
        }
        println!(
            "{kind:?}: {stores} stores and {loads} loads beside 2 writer processes in {:.0} ms",
            start.elapsed().as_secs_f64() * 1000.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// The Redis tile lock (lock/redis.rs): expiry, renewal while held, release of its own key only,
// a killed holder's lock taken after its expiry, waiters that find the holder's tiles.

fn redis_conn(port: u16) -> redis::Connection {
    redis::Client::open(format!("redis://127.0.0.1:{port}/"))
        .expect("client")
        .get_connection_with_timeout(Duration::from_secs(5))
        .expect("connection")
}

fn eval_calls(con: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(con)
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("cmdstat_eval:calls="))
        .and_then(|r| r.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_tile_lock_expires_renews_and_releases_only_its_own() {
    use mapproxy_serve_mapproxy::lock::{
        lock_or_wait, LockError, MetaTileLocks, RedisTileLocker, Waited,
    };
    let Some(server) =
        RedisServer::start("redis_tile_lock_expires_renews_and_releases_only_its_own")
    else {
        return;
    };
    let cache = |prefix: &str| {
        let mut o = RedisOptions::new(prefix);
        o.port = server.port;
        Arc::new(RedisCache::new(&o).expect("redis"))
    };
    let expiry = Duration::from_millis(300);
    // two instances of one cache
    let a = RedisTileLocker::new(cache("lk"), expiry, Duration::from_millis(100));
    let b = RedisTileLocker::new(cache("lk"), expiry, Duration::from_millis(100));
    let key = a.key((3, 4, 5));
    assert_eq!(key, "lk-lock-5-3-4");
    let mut con = redis_conn(server.port);
    let pttl = |con: &mut redis::Connection| -> i64 {
        redis::cmd("PTTL").arg(&key).query(con).expect("PTTL")
    };
    let nothing = || async { Ok::<Option<()>, LockError>(None) };

    // taken: the key expires within `expiry`; the other instance times out
    let held = a.try_lock((3, 4, 5)).await.expect("try").expect("free");
    let ttl = pttl(&mut con);
    assert!(ttl > 0 && ttl <= 300, "{ttl}");
    match lock_or_wait(&b, (3, 4, 5), nothing).await {
        Err(LockError::Timeout(name)) => assert_eq!(name, format!("redis key {key}")),
        other => panic!("expected a timeout, got {other:?}"),
    }
    // held for three expiries: renewed, never gone
    let until = Instant::now() + expiry * 3;
    while Instant::now() < until {
        let ttl = pttl(&mut con);
        assert!(ttl > 0 && ttl <= 300, "renewed lock: {ttl}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // released when dropped
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while pttl(&mut con) != -2 {
        assert!(Instant::now() < deadline, "lock not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // a killed holder's lock (set by hand, never renewed): taken once it expired
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("dead-holder")
        .arg("PX")
        .arg(300)
        .query(&mut con)
        .expect("SET");
    let patient = RedisTileLocker::new(cache("lk"), expiry, Duration::from_secs(5));
    let start = Instant::now();
    let Waited::Locked(held) = lock_or_wait(&patient, (3, 4, 5), nothing)
        .await
        .expect("taken after the expiry")
    else {
        panic!("nothing to find")
    };
    assert!(
        start.elapsed() >= Duration::from_millis(200),
        "{:?}",
        start.elapsed()
    );

    // a holder whose key was taken over (it expired while the holder stalled) leaves the new
    // holder's key alone
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("successor")
        .arg("PX")
        .arg(60_000)
        .query(&mut con)
        .expect("SET");
    let evals = eval_calls(&mut con);
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    while eval_calls(&mut con) == evals {
        assert!(Instant::now() < deadline, "no release script ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let v: Option<String> = redis::cmd("GET").arg(&key).query(&mut con).expect("GET");
    assert_eq!(v.as_deref(), Some("successor"));

    // a waiter that polls the cache stops waiting when the holder's tiles are there
    assert!(b.poll_cache());
    let mut polls = 0;
    let found = lock_or_wait(&patient, (3, 4, 5), || {
        polls += 1;
        let n = polls;
        async move { Ok::<_, LockError>((n >= 3).then_some("tiles")) }
    })
    .await
    .expect("found");
    assert!(matches!(found, Waited::Found("tiles")), "{found:?}");
    assert_eq!(polls, 3);
}

/// The S3 cache against MapProxy 7's own S3Cache (boto3) on one moto server: MapProxy reads
/// the tiles we stored, we read the tiles it stored, in the default `tms` layout and in `tc`
/// and `reverse_tms`, under a base path with slashes.
#[test]
fn mapproxy_and_we_read_each_others_s3_cache() {
    let what = "mapproxy_and_we_read_each_others_s3_cache";
    let python = match std::env::var("MAPPROXY_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("MAPPROXY_PYTHON is not set: set it to a python with MapProxy 7 installed");
            }
            println!("SKIP: {what}: set MAPPROXY_PYTHON to a python with MapProxy 7 and boto3");
            return;
        }
    };
    let has_boto3 = Command::new(&python)
        .args(["-c", "import boto3"])
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if !has_boto3 {
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("{what}: MAPPROXY_PYTHON has no boto3 package (pip install boto3)");
        }
        println!("SKIP: {what}: MAPPROXY_PYTHON has no boto3 package");
        return;
    }
    let Some(moto) = MotoServer::start(what) else {
        return;
    };
    moto.create_bucket("interop");
    let ours = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let theirs = encode(&two_colors(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    let coords = [(0i64, 0i64, 0usize), (5, 9, 4), (1000, 77, 12)];
    let cache = |base: &str, layout: DirectoryLayout| {
        S3Cache::new(&S3Options {
            bucket_name: "interop".into(),
            base_path: base.into(),
            layout,
            file_ext: "png".into(),
            profile_name: None,
            region_name: None,
            endpoint_url: Some(moto.url()),
            access_control_list: None,
            use_http_get: false,
        })
        .expect("s3")
    };
    let layouts = [
        DirectoryLayout::Tms,
        DirectoryLayout::Tc,
        DirectoryLayout::ReverseTms,
    ];
    let (mut read, mut write) = (Vec::new(), Vec::new());
    for layout in layouts {
        let l = layout.as_str();
        let ours_base = format!("/ours/{l}/layer/");
        let c = cache(&ours_base, layout);
        for coord in coords {
            c.store(coord, &ours).expect("store");
            read.push(serde_json::json!({
                "kind": "s3", "bucket": "interop", "endpoint": moto.url(), "layout": l,
                "base_path": ours_base, "coord": [coord.0, coord.1, coord.2], "hex": hex(&ours),
            }));
            write.push(serde_json::json!({
                "kind": "s3", "bucket": "interop", "endpoint": moto.url(), "layout": l,
                "base_path": format!("theirs/{l}"), "coord": [coord.0, coord.1, coord.2],
                "hex": hex(&theirs),
            }));
        }
    }
    let before = SystemTime::now();
    let out = run_mapproxy(&python, serde_json::json!({"read": read, "write": write}));
    let after = SystemTime::now();
    assert_eq!(
        out.lines().filter(|l| l.starts_with("read ")).count(),
        read.len(),
        "{out}"
    );
    assert_eq!(
        out.lines().filter(|l| l.starts_with("wrote ")).count(),
        write.len(),
        "{out}"
    );
    for layout in layouts {
        let c = cache(&format!("theirs/{}", layout.as_str()), layout);
        for coord in coords {
            let t = c
                .load(coord)
                .expect("load")
                .unwrap_or_else(|| panic!("{layout:?} {coord:?}"));
            assert_eq!(&t.data[..], &theirs[..], "{layout:?} {coord:?}");
            let s = secs_of(t.mtime);
            assert!(
                s >= secs_of(before).floor() && s <= secs_of(after),
                "{layout:?}: time {s} not in MapProxy's run"
            );
            assert!(!c
                .is_cached((coord.0 + 1, coord.1, coord.2))
                .expect("is_cached"));
        }
    }
    println!("MapProxy 7's S3Cache read our tiles and we read its, in tms, tc and reverse_tms");
}

/// `access_control_list` is sent with every stored tile, and `use_http_get` reads with unsigned
/// GETs: a tile stored `public-read` is read, a private one answers 403 to an anonymous GET,
/// which is a miss (as MapProxy reads it), and so is a tile never stored.
#[test]
fn s3_access_control_list_and_use_http_get() {
    let Some(moto) = MotoServer::start("s3_access_control_list_and_use_http_get") else {
        return;
    };
    moto.create_bucket("acl");
    let opts = |acl: Option<&str>, use_http_get: bool| S3Options {
        bucket_name: "acl".into(),
        base_path: "t".into(),
        layout: DirectoryLayout::Tms,
        file_ext: "png".into(),
        profile_name: None,
        region_name: None,
        endpoint_url: Some(moto.url()),
        access_control_list: acl.map(str::to_string),
        use_http_get,
    };
    let public = S3Cache::new(&opts(Some("public-read"), false)).expect("s3");
    let private = S3Cache::new(&opts(None, false)).expect("s3");
    let anonymous = S3Cache::new(&opts(None, true)).expect("s3");
    let a = encode(&varied(), &ImageOpts::new(ImageFormat::png())).expect("encode");
    public.store((1, 2, 3), &a).expect("store");
    private.store((2, 2, 3), &a).expect("store");
    let got = anonymous
        .load((1, 2, 3))
        .expect("load")
        .expect("public tile");
    assert_eq!(&got.data[..], &a[..]);
    assert!(anonymous.is_cached((1, 2, 3)).expect("is_cached"));
    // signed reads see both; the anonymous GET of the private one is refused: a miss
    assert!(private.load((2, 2, 3)).expect("load").is_some());
    assert!(anonymous.load((2, 2, 3)).expect("load").is_none());
    assert!(anonymous.load((3, 2, 3)).expect("load").is_none());
}
