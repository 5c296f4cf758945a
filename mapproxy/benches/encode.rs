//! Encoding one 256×256 tile as MapProxy's default PNG (paletted, 256 colours: Pillow's
//! FASTOCTREE and its PNG writer, `image/octree.rs`) and as a truecolour PNG (`colors: 0`:
//! Pillow's row filters, zlib), opaque and transparent, for two tiles:
//! `textured` (every pixel differs) and `debug-like` (transparent with black text and lines).
//! Plain `std::time` (`harness = false`), the median of the runs in µs per tile:
//!
//!     cargo bench -p mapproxy-serve-mapproxy --bench encode
//!
//! The same work in MapProxy 7 for comparison (Pillow's C code):
//! `python -c "from mapproxy.image import img_to_buf; ..."` as in `bench/README.md`.
//! `BENCH_RUNS` (default 200) sets the runs per case.

use std::time::{Duration, Instant};

use mapproxy_serve_mapproxy::image::{encode, ImageFormat, ImageOpts, RgbaImage};

fn textured() -> RgbaImage {
    RgbaImage::from_fn(256, 256, |i, j| {
        let n = (i.wrapping_mul(2_654_435_761) ^ j.wrapping_mul(40_503)).rotate_left(13);
        image::Rgba([
            (i / 3) as u8 ^ (n as u8 & 0x1f),
            (j / 2) as u8,
            ((i + j) / 5) as u8 ^ ((n >> 8) as u8 & 0x0f),
            255,
        ])
    })
}

fn debug_like() -> RgbaImage {
    RgbaImage::from_fn(256, 256, |i, j| {
        let text = i < 180 && j < 35 && ((i * 7 + j * 3) % 5 < 2);
        if text || i == 0 || j == 0 {
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
        .unwrap_or(200);
    println!("| tile | PNG | transparent | µs per tile (median) | bytes |");
    println!("|---|---|---|---|---|");
    let cases = [("textured", textured()), ("debug-like", debug_like())];
    for ((name, img), paletted) in cases
        .iter()
        .flat_map(|c| [(c, true), (c, false)].into_iter())
    {
        for transparent in [false, true] {
            let mut opts = ImageOpts::new(ImageFormat::png());
            opts.transparent = transparent;
            opts.paletted = paletted;
            opts.colors = if paletted { 256 } else { 0 };
            let mut times: Vec<Duration> = Vec::with_capacity(runs);
            let mut len = 0;
            for _ in 0..runs {
                let t = Instant::now();
                let out = encode(img, &opts)?;
                times.push(t.elapsed());
                len = out.len();
            }
            times.sort();
            let median = times[times.len() / 2];
            let png = if paletted { "paletted" } else { "truecolour" };
            println!(
                "| {name} | {png} | {transparent} | {:.0} | {len} |",
                median.as_secs_f64() * 1e6
            );
        }
    }
    Ok(())
}
