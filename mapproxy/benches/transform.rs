//! One reprojection step of a WMS GetMap, in process: the 3857 tiles stitched for a 512×512
//! request (GLOBAL_WEBMERCATOR, the level `cache_image` picks) transformed into EPSG:32632
//! and EPSG:4326 (both by the mesh, as `bench/mapproxy_wms.sh`'s `utm` and `4326` cases), and
//! resampled in EPSG:3857 (a bbox between two levels: Pillow's `EXTENT`). Plain `std::time` (`harness = false`), the median of the runs:
//!
//!     cargo bench -p mapproxy-serve-mapproxy --bench transform
//!
//! Two source images: `textured` (every pixel differs: the sampler's worst case) and
//! `debug-like` (transparent with black text and lines, as the debug source's tiles the
//! server benchmark serves). `BENCH_RUNS` (default 30) sets the runs per case, `BENCH_ONLY`
//! (`utm`, `4326` or `resample`) picks one case, `BENCH_SOURCE` (`textured`, `debug-like`,
//! `mesh`) one source.

use std::time::{Duration, Instant};

use mapproxy_serve_mapproxy::grid::{get_resolution, global_webmercator};
use mapproxy_serve_mapproxy::image::transform::{mesh, transform, Resampling, Warp};
use mapproxy_serve_mapproxy::image::RgbaImage;
use mapproxy_serve_mapproxy::srs::Srs;

fn textured(w: u32, h: u32) -> RgbaImage {
    // a cheap deterministic hash per pixel, smooth-ish gradients plus noise
    RgbaImage::from_fn(w, h, |i, j| {
        let n = (i.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(40_503)).rotate_left(13);
        image::Rgba([
            (i / 3) as u8 ^ (n as u8 & 0x1f),
            (j / 2) as u8,
            ((i + j) / 5) as u8 ^ ((n >> 8) as u8 & 0x0f),
            255,
        ])
    })
}

fn debug_like(w: u32, h: u32) -> RgbaImage {
    RgbaImage::from_fn(w, h, |i, j| {
        let text = (i % 256) < 180 && (j % 256) < 35 && ((i * 7 + j * 3) % 5 < 2);
        let line = i % 256 == 0 || j % 256 == 0;
        if text || line {
            image::Rgba([0, 0, 0, 255])
        } else {
            image::Rgba([0, 0, 0, 0])
        }
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let merc = Srs::get("EPSG:3857")?;
    let grid = global_webmercator();
    // bench/mapproxy_wms.sh's cases
    let cases = [
        (
            "utm",
            "EPSG:32632",
            [540_000.0, 5_240_000.0, 800_000.0, 5_500_000.0],
        ),
        ("4326", "EPSG:4326", [8.983, 47.29, 12.663, 49.75]),
        // same SRS, between two levels: Pillow's EXTENT resampling
        (
            "resample",
            "EPSG:3857",
            [1_000_000.0, 6_000_000.0, 1_450_000.0, 6_450_000.0],
        ),
    ];
    println!("| case | source | source size | median | min |");
    println!("|---|---|---|---|---|");
    let only = std::env::var("BENCH_ONLY").ok();
    for (name, code, bbox) in cases {
        if only.as_deref().is_some_and(|o| o != name) {
            continue;
        }
        let dst = Srs::get(code)?;
        let size = (512, 512);
        let src_bbox = dst.transform_bbox_to(&merc, bbox)?;
        let level = grid.closest_level(get_resolution(src_bbox, size));
        let affected = grid.get_affected_level_tiles(src_bbox, level)?;
        let (cols, rows) = affected.grid_size;
        let (tw, th) = grid.tile_size();
        let (w, h) = (u32::try_from(cols)? * tw, u32::try_from(rows)? * th);
        let textured = textured(w, h);
        let debug_like = debug_like(w, h);
        let step = |src: &RgbaImage| {
            let warp = Warp {
                src_bbox: affected.bbox,
                src_srs: &merc,
                dst_size: size,
                dst_bbox: bbox,
                dst_srs: &dst,
                resampling: Resampling::Bicubic,
            };
            transform(src, &warp)
        };
        report(name, "textured", (w, h), runs, || step(&textured));
        report(name, "debug-like", (w, h), runs, || step(&debug_like));
        if name == "resample" {
            continue;
        }
        // the mesh alone
        let mesh_only = || mesh((w, h), affected.bbox, &merc, size, bbox, &dst);
        let quads = mesh_only().len();
        report(
            name,
            &format!("mesh only ({quads} quads)"),
            (w, h),
            runs,
            mesh_only,
        );
    }
    Ok(())
}

/// Times `f` `runs` times (after two warm-up runs) and prints the median and the minimum.
fn report<T>(name: &str, kind: &str, (w, h): (u32, u32), runs: usize, mut f: impl FnMut() -> T) {
    if std::env::var("BENCH_SOURCE").is_ok_and(|s| !kind.starts_with(&s)) {
        return;
    }
    let mut times: Vec<Duration> = Vec::with_capacity(runs);
    for k in 0..runs + 2 {
        let t = Instant::now();
        std::hint::black_box(f());
        if k >= 2 {
            times.push(t.elapsed());
        }
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "| {name} | {kind} | {w}x{h} | {:.2} ms | {:.2} ms |",
        ms(times[times.len() / 2]),
        ms(times[0])
    );
}
