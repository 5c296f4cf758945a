//! Moving an image from one bbox/size/SRS to another (MapProxy's `image/transform.py`
//! `ImageTransformer`).
//!
//! - Same SRS, same resolution (within a tenth of a pixel): a crop at the rounded offset.
//! - Same SRS, other resolution: a resize of the source rectangle that covers the target
//!   bbox (sub-pixel crop box), by `fast_image_resize` (SIMD). As Pillow's `EXTENT`
//!   transform, which MapProxy uses, each target pixel is interpolated from the source
//!   pixels around its centre (`nearest`, `bilinear`, `bicubic` = Pillow's transform kernel,
//!   the cubic with a = -1: [`pillow_cubic`]), without
//!   widening the kernel when shrinking: MapProxy picks the level closest to the asked
//!   resolution, so a map is shrunk by at most about 1.5, and a filter over the wider
//!   footprint read a third more pixels (`fast_image_resize`'s convolution).
//! - Other SRS: MapProxy's mesh. The target is split into quads; each quad's corners are
//!   projected exactly into the source and the quad is filled by the bilinear map of those
//!   four points (Pillow's `MESH`/`QUAD`). A quad is split further until the map is within
//!   half a target pixel of the exact projection on a 5×5 lattice over it (MapProxy checks
//!   the centre only, against one pixel, and never splits below 50 pixels; here quads go
//!   down to 2 pixels).
//!
//! The per-pixel sampler (nearest/bilinear/bicubic on straight RGBA, transparent outside the
//! source) is written here: the mesh needs a source position per target pixel from a
//! per-quad map, which resize libraries do not take. Bicubic (the default) and the
//! separable path sum in fixed point: weights with 14 fraction bits summing exactly to one,
//! a rows pass kept as i16 with 6 fraction bits, then a columns pass, rounded; SSE2 `pmaddwd`
//! on x86-64 (the baseline, no run-time detection; the crate's only unsafe code, in `sse2`)
//! and plain integers elsewhere, bit for bit the same. Along a quad's row the position is
//! stepped in 32.32 fixed point; a window of 16 equal pixels is that pixel (what the sums
//! give too); quads whose source footprint is outside the source are left transparent.
//! `benches/transform.rs` times one 512×512 step.

use fast_image_resize as fr;
use image::RgbaImage;

use crate::grid::Bbox;
use crate::srs::Srs;

/// `image.resampling_method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resampling {
    Nearest,
    Bilinear,
    /// MapProxy's default.
    #[default]
    Bicubic,
}

impl Resampling {
    /// `nearest`, `bilinear`, `bicubic`.
    pub fn parse(s: &str) -> Option<Resampling> {
        match s.trim().to_ascii_lowercase().as_str() {
            "nearest" => Some(Resampling::Nearest),
            "bilinear" => Some(Resampling::Bilinear),
            "bicubic" => Some(Resampling::Bicubic),
            _ => None,
        }
    }
}

/// A target rectangle in pixels (x0, y0, x1, y1) and the source positions of its corners
/// (nw, sw, se, ne), in source pixels.
pub type Quad = ([u32; 4], [(f64, f64); 4]);

/// `make_lin_transf(bbox, (0, 0, w, h))`: map coordinates → pixel coordinates (y down).
fn to_px(bbox: Bbox, size: (u32, u32)) -> impl Fn((f64, f64)) -> (f64, f64) {
    let sx = f64::from(size.0) / (bbox[2] - bbox[0]);
    let sy = f64::from(size.1) / (bbox[3] - bbox[1]);
    move |(x, y)| ((x - bbox[0]) * sx, (bbox[3] - y) * sy)
}

/// Pixel coordinates → map coordinates.
fn to_map(bbox: Bbox, size: (u32, u32)) -> impl Fn((f64, f64)) -> (f64, f64) {
    let sx = (bbox[2] - bbox[0]) / f64::from(size.0);
    let sy = (bbox[3] - bbox[1]) / f64::from(size.1);
    move |(x, y)| (bbox[0] + x * sx, bbox[3] - y * sy)
}

/// What a transform maps: a source image covering `src_bbox` in `src_srs` into a `dst_size`
/// image of `dst_bbox` in `dst_srs`, resampled with `resampling`.
#[derive(Clone, Copy, Debug)]
pub struct Warp<'a> {
    pub src_bbox: Bbox,
    pub src_srs: &'a Srs,
    pub dst_size: (u32, u32),
    pub dst_bbox: Bbox,
    pub dst_srs: &'a Srs,
    pub resampling: Resampling,
}

/// Transform `src` as `warp` says. Target pixels without a source are transparent.
pub fn transform(src: &RgbaImage, warp: &Warp<'_>) -> RgbaImage {
    transform_known(Known::unknown(src), warp).image
}

/// Whether [`transform`] of a `src_size` image keeps its pixels as they are: nearest
/// neighbour, or a crop (the same SRS and resolutions within a tenth of a pixel, MapProxy's
/// `_transform_simple` crop, image/transform.py:107-116). Otherwise Pillow resamples it
/// after `img_for_resampling`, which turns a paletted image into its palette's mode.
pub fn keeps_pixels(src_size: (u32, u32), w: &Warp<'_>) -> bool {
    if w.resampling == Resampling::Nearest {
        return true;
    }
    if w.src_srs != w.dst_srs || src_size.0 == 0 || src_size.1 == 0 {
        return false;
    }
    let (sb, db, ds) = (w.src_bbox, w.dst_bbox, w.dst_size);
    let src_res = (
        (sb[2] - sb[0]) / f64::from(src_size.0),
        (sb[3] - sb[1]) / f64::from(src_size.1),
    );
    let dst_res = (
        (db[2] - db[0]) / f64::from(ds.0),
        (db[3] - db[1]) / f64::from(ds.1),
    );
    let tenth = (
        (dst_res.0 / (f64::from(ds.0) * 10.0)).abs(),
        (dst_res.1 / (f64::from(ds.1) * 10.0)).abs(),
    );
    (src_res.0 - dst_res.0).abs() < tenth.0 && (src_res.1 - dst_res.1).abs() < tenth.1
}

/// An image and whether it is known, without looking at its pixels, to be opaque (every
/// alpha 255): stitched over a map's background, or an opaque image cropped or resized to
/// cover a whole target. `false` says nothing.
#[derive(Clone, Copy)]
pub struct Known<I> {
    pub image: I,
    pub opaque: bool,
}

impl<I> Known<I> {
    /// An image nothing is known of.
    pub fn unknown(image: I) -> Known<I> {
        Known {
            image,
            opaque: false,
        }
    }
}

/// [`transform`] of a source whose opacity may be known: an opaque source is resized without
/// scanning it for alpha, and the result says whether it is known to be opaque, so that the
/// map's encoder need not scan it either (each scan of a 1024×1024 map was 3% of its time).
pub fn transform_known(src: Known<&RgbaImage>, warp: &Warp<'_>) -> Known<RgbaImage> {
    let w = *warp;
    if w.src_srs == w.dst_srs {
        return transform_simple(src, w.src_bbox, w.dst_size, w.dst_bbox, w.resampling);
    }
    // Pillow's `transform` interpolates RGBA premultiplied by alpha ("RGBa"), so a transparent
    // pixel's colour never bleeds into its neighbours (the debug source's text is black on
    // transparent white); an opaque source needs neither step, nor does nearest neighbour
    let premultiplied = (!src.opaque
        && w.resampling != Resampling::Nearest
        && !crate::image::codec::all_opaque(src.image.as_raw()))
    .then(|| premultiply(src.image));
    let source = premultiplied.as_ref().unwrap_or(src.image);
    let mut out = match transform_separable(source, warp) {
        Some(out) => out,
        None => {
            let quads = mesh(
                source.dimensions(),
                w.src_bbox,
                w.src_srs,
                w.dst_size,
                w.dst_bbox,
                w.dst_srs,
            );
            let mut out = RgbaImage::new(w.dst_size.0, w.dst_size.1);
            for q in &quads {
                fill_quad(source, &mut out, q, w.resampling);
            }
            out
        }
    };
    if premultiplied.is_some() {
        unpremultiply(&mut out);
    }
    Known::unknown(out)
}

/// Pillow's RGBA → RGBa: each colour times alpha / 255, rounded as its `MULDIV255`.
fn premultiply(img: &RgbaImage) -> RgbaImage {
    let mut out = img.clone();
    for p in out.pixels_mut() {
        let a = u32::from(p.0[3]);
        if a == 255 {
            continue;
        }
        for c in &mut p.0[..3] {
            let t = u32::from(*c) * a + 128;
            *c = (((t >> 8) + t) >> 8) as u8;
        }
    }
    out
}

/// Pillow's RGBa → RGBA: each colour times 255 / alpha (truncated, at most 255); alpha 0 and
/// 255 as they are.
fn unpremultiply(img: &mut RgbaImage) {
    for p in img.pixels_mut() {
        let a = u32::from(p.0[3]);
        if a == 0 || a == 255 {
            continue;
        }
        for c in &mut p.0[..3] {
            *c = (u32::from(*c) * 255 / a).min(255) as u8;
        }
    }
}

/// Reprojection whose source x depends only on the target x and source y only on the target
/// y (3857 ↔ 4326: longitude is linear in x, latitude a function of y alone), found by
/// checking the exact projection on a lattice. Then every target column's and row's source
/// position is projected exactly (no mesh) and the image is resampled in two 1-D passes with
/// per-row and per-column weights computed once: per target row, the source rows weighted
/// into one row of i16 sums ([`vertical`]), then that row sampled at the columns' positions
/// ([`horizontal`]): the fixed-point sums of the mesh's [`bicubic_window`], so both paths
/// give the same pixel for the same position. Same kernels and transparent-outside rule as
/// [`sample`]; `None` when the map is not separable.
fn transform_separable(src: &RgbaImage, warp: &Warp<'_>) -> Option<RgbaImage> {
    let Warp {
        src_bbox,
        src_srs,
        dst_size,
        dst_bbox,
        dst_srs,
        resampling,
    } = *warp;
    let (sw, sh) = (src.width() as usize, src.height() as usize);
    let (dw, dh) = (dst_size.0 as usize, dst_size.1 as usize);
    if sw == 0 || sh == 0 || dw == 0 || dh == 0 {
        return None;
    }
    let src_px = to_px(src_srs.align_bbox(src_bbox), src.dimensions());
    let dst_w = to_map(dst_srs.align_bbox(dst_bbox), dst_size);
    let exact = |p: (f64, f64)| src_px(dst_srs.transform_to(src_srs, dst_w(p)));
    let (mid_u, mid_v) = (f64::from(dst_size.0) / 2.0, f64::from(dst_size.1) / 2.0);
    // the source x of target column u and the source y of target row v, on the middle row
    // and column
    let col_x = |u: usize| exact((u as f64 + 0.5, mid_v)).0;
    let row_y = |v: usize| exact((mid_u, v as f64 + 0.5)).1;
    // separable within 1/100 of a source pixel on a 9×9 lattice of pixel centres (edges
    // included), checked first: a map that is not (UTM) costs 99 projections
    let lattice_x: [f64; 9] = std::array::from_fn(|a| col_x((dw - 1) * a / 8));
    let lattice_y: [f64; 9] = std::array::from_fn(|b| row_y((dh - 1) * b / 8));
    for (a, lx) in lattice_x.iter().enumerate() {
        for (b, ly) in lattice_y.iter().enumerate() {
            let (u, v) = ((dw - 1) * a / 8, (dh - 1) * b / 8);
            let (x, y) = exact((u as f64 + 0.5, v as f64 + 0.5));
            if !((x - lx).abs() < 0.01 && (y - ly).abs() < 0.01) {
                return None;
            }
        }
    }
    let xs = axis_positions(dw, col_x)?;
    let ys = axis_positions(dh, row_y)?;
    // a pad of 3 zero pixels each side: windows reaching past the source read transparency
    const PAD: i64 = 3;
    // each target column's first padded source column and weights; `None`: all outside
    let col_taps: Vec<Option<(usize, [i16; 4])>> = xs
        .iter()
        .map(|&x| {
            let (start, w) = kernel_taps(x, resampling);
            (start >= -PAD && start + 4 <= sw as i64 + PAD).then(|| ((start + PAD) as usize, w))
        })
        .collect();
    // the padded source columns the rows need
    let lo = col_taps.iter().flatten().map(|t| t.0).min()?;
    let hi = col_taps.iter().flatten().map(|t| t.0 + 4).max()?;
    let raw: &[u8] = src;
    let stride = sw * 4;
    let mut row = vec![0i16; (hi - lo) * 4];
    let mut out = RgbaImage::new(dst_size.0, dst_size.1);
    let obuf: &mut [u8] = &mut out;
    // the source columns of the padded range [lo, hi) that exist, as byte offsets
    let (c0, c1) = (
        (lo as i64 - PAD).clamp(0, sw as i64) as usize,
        (hi as i64 - PAD).clamp(0, sw as i64) as usize,
    );
    let r0 = (c0 + PAD as usize - lo) * 4;
    for (v, &y) in ys.iter().enumerate() {
        let (start, wy) = kernel_taps(y, resampling);
        if start < -PAD || start + 4 > sh as i64 + PAD {
            continue;
        }
        // weighted sum of the (up to) four source rows: a zero weight for rows outside
        let mut wy = wy;
        let rows: [&[u8]; 4] = std::array::from_fn(|m| {
            let j = start + m as i64;
            if j < 0 || j >= sh as i64 {
                wy[m] = 0;
                &raw[c0 * 4..c1 * 4]
            } else {
                let at = j as usize * stride;
                &raw[at + c0 * 4..at + c1 * 4]
            }
        });
        vertical(rows, &wy, &mut row[r0..r0 + (c1 - c0) * 4]);
        let orow = &mut obuf[v * dw * 4..(v + 1) * dw * 4];
        for (px, t) in orow.chunks_exact_mut(4).zip(&col_taps) {
            let Some((i, wx)) = t else { continue };
            let at = (i - lo) * 4;
            let Some(cols) = row.get(at..at + 16).and_then(|c| c.try_into().ok()) else {
                continue;
            };
            px.copy_from_slice(&horizontal(cols, wx));
        }
    }
    Some(out)
}

/// How far outside the source a position may lie for the fixed-point and index arithmetic
/// (2^30 source pixels): any source image is far smaller, so a position beyond it reads only
/// transparency.
const POS_LIMIT: f64 = (1u64 << 30) as f64;

/// Finite and within [`POS_LIMIT`] (false for NaN).
fn in_range(p: f64) -> bool {
    p.abs() < POS_LIMIT
}

/// The source positions of `n` target pixels along one axis (`at`: exact, finite), each
/// projected, or interpolated when the axis is linear: 17 positions spread over it within
/// 1/10000 of a source pixel of the line through the first and last (3857 <-> 4326 along x:
/// longitude is linear in both). `None` when a position is not finite or lies beyond
/// [`POS_LIMIT`] (a hostile `BBOX` such as ±1e300: the index arithmetic would overflow).
fn axis_positions(n: usize, at: impl Fn(usize) -> f64) -> Option<Vec<f64>> {
    if n < 17 {
        let v: Vec<f64> = (0..n).map(at).collect();
        return v.iter().all(|&p| in_range(p)).then_some(v);
    }
    let (first, last) = (at(0), at(n - 1));
    let step = (last - first) / (n - 1) as f64;
    let linear = in_range(first)
        && in_range(last)
        && (1..16).all(|k| {
            let i = (n - 1) * k / 16;
            (at(i) - (first + step * i as f64)).abs() < 1e-4
        });
    if linear {
        return Some((0..n).map(|i| first + step * i as f64).collect());
    }
    let v: Vec<f64> = (0..n).map(at).collect();
    v.iter().all(|&p| in_range(p)).then_some(v)
}

/// The four source pixels (first index) and fixed-point weights [`sample`]'s kernel gives
/// position `p` (source pixels, centres at i + 0.5) along one axis.
fn kernel_taps(p: f64, resampling: Resampling) -> (i64, [i16; 4]) {
    const ONE: i16 = 1 << WEIGHT_BITS;
    match resampling {
        Resampling::Nearest => (fast_floor(p) - 1, [0, ONE, 0, 0]),
        Resampling::Bilinear => {
            let f = p - 0.5;
            let i = fast_floor(f);
            let d = (((f - i as f64) * f64::from(ONE)).round() as i16).clamp(0, ONE);
            (i - 1, [0, ONE - d, d, 0])
        }
        Resampling::Bicubic => {
            let f = p - 0.5;
            let i = fast_floor(f);
            let k = (((f - i as f64) * CUBIC_STEPS as f64 + 0.5) as usize).min(CUBIC_STEPS);
            (i - 1, cubic_table_fixed()[k])
        }
    }
}

/// Same SRS: crop, or resize the covering source rectangle. Known to be opaque when the
/// source is and covers the whole target.
fn transform_simple(
    known: Known<&RgbaImage>,
    src_bbox: Bbox,
    dst_size: (u32, u32),
    dst_bbox: Bbox,
    resampling: Resampling,
) -> Known<RgbaImage> {
    let src = known.image;
    let src_size = src.dimensions();
    let px = to_px(src_bbox, src_size);
    let (minx, miny) = px((dst_bbox[0], dst_bbox[3]));
    let (maxx, maxy) = px((dst_bbox[2], dst_bbox[1]));
    let src_res = (
        (src_bbox[2] - src_bbox[0]) / f64::from(src_size.0),
        (src_bbox[3] - src_bbox[1]) / f64::from(src_size.1),
    );
    let dst_res = (
        (dst_bbox[2] - dst_bbox[0]) / f64::from(dst_size.0),
        (dst_bbox[3] - dst_bbox[1]) / f64::from(dst_size.1),
    );
    let tenth = (
        (dst_res.0 / (f64::from(dst_size.0) * 10.0)).abs(),
        (dst_res.1 / (f64::from(dst_size.1) * 10.0)).abs(),
    );
    if (src_res.0 - dst_res.0).abs() < tenth.0 && (src_res.1 - dst_res.1).abs() < tenth.1 {
        return crop(known, minx.round() as i64, miny.round() as i64, dst_size);
    }
    // The crop box must lie in the source: clamp, and place the result where it belongs.
    let (cx0, cy0) = (minx.max(0.0), miny.max(0.0));
    let (cx1, cy1) = (
        maxx.min(f64::from(src_size.0)),
        maxy.min(f64::from(src_size.1)),
    );
    if cx1 <= cx0 || cy1 <= cy0 {
        return Known::unknown(RgbaImage::new(dst_size.0, dst_size.1));
    }
    let sx = f64::from(dst_size.0) / (maxx - minx);
    let sy = f64::from(dst_size.1) / (maxy - miny);
    let ox = ((cx0 - minx) * sx).round() as u32;
    let oy = ((cy0 - miny) * sy).round() as u32;
    let w = (((cx1 - cx0) * sx).round() as u32).clamp(1, dst_size.0 - ox.min(dst_size.0 - 1));
    let h = (((cy1 - cy0) * sy).round() as u32).clamp(1, dst_size.1 - oy.min(dst_size.1 - 1));
    let crop_box = (cx0, cy0, cx1 - cx0, cy1 - cy0);
    let resized = match resize(known, crop_box, (w, h), resampling) {
        Some(r) => r,
        // cannot happen with the sizes checked above; fall back to the sampler
        None => {
            let corners = [(minx, miny), (minx, maxy), (maxx, maxy), (maxx, miny)];
            let mut out = RgbaImage::new(dst_size.0, dst_size.1);
            fill_quad(
                src,
                &mut out,
                &([0, 0, dst_size.0, dst_size.1], corners),
                resampling,
            );
            return Known::unknown(out);
        }
    };
    if (ox, oy, w, h) == (0, 0, dst_size.0, dst_size.1) {
        return Known {
            image: resized,
            opaque: known.opaque,
        };
    }
    let mut out = RgbaImage::new(dst_size.0, dst_size.1);
    image::imageops::replace(&mut out, &resized, i64::from(ox), i64::from(oy));
    Known::unknown(out)
}

/// `crop` as Pillow's: the part outside the source is transparent.
fn crop(known: Known<&RgbaImage>, x: i64, y: i64, size: (u32, u32)) -> Known<RgbaImage> {
    let src = known.image;
    if x >= 0
        && y >= 0
        && x + i64::from(size.0) <= i64::from(src.width())
        && y + i64::from(size.1) <= i64::from(src.height())
    {
        return Known {
            image: image::imageops::crop_imm(src, x as u32, y as u32, size.0, size.1).to_image(),
            opaque: known.opaque,
        };
    }
    let mut out = RgbaImage::new(size.0, size.1);
    image::imageops::replace(&mut out, src, -x, -y);
    Known::unknown(out)
}

/// Resize the `crop` rectangle (left, top, width, height, in source pixels) of `src` to
/// `size` with fast_image_resize.
fn resize(
    known: Known<&RgbaImage>,
    crop: (f64, f64, f64, f64),
    size: (u32, u32),
    resampling: Resampling,
) -> Option<RgbaImage> {
    let src = known.image;
    let src_view =
        fr::images::ImageRef::new(src.width(), src.height(), src.as_raw(), fr::PixelType::U8x4)
            .ok()?;
    let mut dst = fr::images::Image::new(size.0, size.1, fr::PixelType::U8x4);
    let alg = match resampling {
        Resampling::Nearest => fr::ResizeAlg::Nearest,
        Resampling::Bilinear => fr::ResizeAlg::Interpolation(fr::FilterType::Bilinear),
        Resampling::Bicubic => fr::ResizeAlg::Interpolation(pillow_cubic_filter()),
    };
    // an opaque source (most base maps) needs no premultiplying by alpha and no dividing
    // after (both are identities then, and were an eighth of a same-SRS GetMap): the rows the
    // kernel reads, checked
    let rows = {
        let w4 = src.width() as usize * 4;
        // the kernel's reach in source rows, 2 (bicubic), widened by the reduction and a
        // margin: checking more rows than are read only makes the check stricter
        let reach = 2.0 * (crop.3 / f64::from(size.1.max(1))).max(1.0) + 2.0;
        let top = (crop.1 - reach).floor().max(0.0) as usize;
        let bottom = (crop.1 + crop.3 + reach).ceil().max(0.0) as usize;
        let raw = src.as_raw();
        let end = (bottom * w4).min(raw.len());
        raw.get((top * w4).min(end)..end).unwrap_or(&[])
    };
    let opaque = known.opaque || crate::image::codec::all_opaque(rows);
    let opts = fr::ResizeOptions::new()
        .crop(crop.0, crop.1, crop.2, crop.3)
        .resize_alg(alg)
        .use_alpha(!opaque);
    let mut r = take_resizer();
    let done = r.resize(&src_view, &mut dst, &opts);
    give_back_resizer(r);
    done.ok()?;
    RgbaImage::from_raw(size.0, size.1, dst.into_vec())
}

/// Resizers kept between maps with their buffers (the source premultiplied by alpha, the
/// horizontal pass): zeroing new buffers was a tenth of a stitched GetMap. Each kept one holds
/// at most [`KEPT_RESIZER_BUFFERS`].
static RESIZERS: crate::image::Kept<fr::Resizer> = crate::image::Kept::new();

/// The buffer memory a kept resizer may hold (a 1024×1024 map's from ~1300×1300 tiles).
const KEPT_RESIZER_BUFFERS: usize = 16 << 20;

fn take_resizer() -> fr::Resizer {
    RESIZERS.take().unwrap_or_default()
}

fn give_back_resizer(r: fr::Resizer) {
    if r.size_of_internal_buffers() > KEPT_RESIZER_BUFFERS {
        return;
    }
    if let Some(mut r) = RESIZERS.give_back(r) {
        r.reset_internal_buffers();
    }
}

/// The quads of MapProxy's `transform_meshes` (with the finer acceptance described in the
/// module documentation).
pub fn mesh(
    src_size: (u32, u32),
    src_bbox: Bbox,
    src_srs: &Srs,
    dst_size: (u32, u32),
    dst_bbox: Bbox,
    dst_srs: &Srs,
) -> Vec<Quad> {
    let src_bbox = src_srs.align_bbox(src_bbox);
    let dst_bbox = dst_srs.align_bbox(dst_bbox);
    let src_px = to_px(src_bbox, src_size);
    let dst_w = to_map(dst_bbox, dst_size);
    // the exact source position (source pixels) of a target position (target pixels)
    let exact = |p: (f64, f64)| src_px(dst_srs.transform_to(src_srs, dst_w(p)));
    let mut out = Vec::new();
    let mut todo = vec![[0, 0, dst_size.0, dst_size.1]];
    while let Some(q) = todo.pop() {
        let (x0, y0, x1, y1) = (
            f64::from(q[0]),
            f64::from(q[1]),
            f64::from(q[2]),
            f64::from(q[3]),
        );
        let corners = [
            exact((x0, y0)),
            exact((x0, y1)),
            exact((x1, y1)),
            exact((x1, y0)),
        ];
        let (w, h) = (q[2] - q[0], q[3] - q[1]);
        let finite = corners.iter().all(|c| c.0.is_finite() && c.1.is_finite());
        if !corners.iter().any(|c| c.0.is_finite() && c.1.is_finite()) {
            // no corner projects (far outside the source SRS's domain): nothing to draw, and
            // not split further (a large request there would make millions of quads)
            continue;
        }
        if w <= 2 || h <= 2 {
            if finite {
                out.push((q, corners));
            }
            continue;
        }
        if finite && quad_is_good(&q, &corners, &exact) {
            out.push((q, corners));
            continue;
        }
        let (mx, my) = (q[0] + w / 2, q[1] + h / 2);
        todo.push([q[0], q[1], mx, my]);
        todo.push([mx, q[1], q[2], my]);
        todo.push([q[0], my, mx, q[3]]);
        todo.push([mx, my, q[2], q[3]]);
    }
    out
}

/// The bilinear map of a quad at target position (s, t) relative to its origin.
fn quad_map(q: &[u32; 4], c: &[(f64, f64); 4], s: f64, t: f64) -> (f64, f64) {
    let (w, h) = (f64::from(q[2] - q[0]), f64::from(q[3] - q[1]));
    let (u, v) = (s / w, t / h);
    let [nw, sw, se, ne] = *c;
    let x =
        nw.0 * (1.0 - u) * (1.0 - v) + ne.0 * u * (1.0 - v) + sw.0 * (1.0 - u) * v + se.0 * u * v;
    let y =
        nw.1 * (1.0 - u) * (1.0 - v) + ne.1 * u * (1.0 - v) + sw.1 * (1.0 - u) * v + se.1 * u * v;
    (x, y)
}

/// Within half a target pixel of the exact projection over the quad?
fn quad_is_good(
    q: &[u32; 4],
    c: &[(f64, f64); 4],
    exact: &impl Fn((f64, f64)) -> (f64, f64),
) -> bool {
    let (w, h) = (f64::from(q[2] - q[0]), f64::from(q[3] - q[1]));
    // source pixels per target pixel along the quad's finer axis
    let dist = |a: (f64, f64), b: (f64, f64)| ((a.0 - b.0).powi(2) + (a.1 - b.1).powi(2)).sqrt();
    let scale = (dist(c[0], c[3]) / w).min(dist(c[0], c[1]) / h).max(1e-9);
    let max_err = 0.5 * scale;
    // a 5×5 lattice over the quad, corners excluded (they are exact): the centre and edge
    // midpoints alone miss symmetric distortions (3857 → 4326 over the equator)
    const F: [f64; 5] = [0.0, 0.25, 0.5, 0.75, 1.0];
    for (n, fu) in F.iter().enumerate() {
        for (m, fv) in F.iter().enumerate() {
            if (n == 0 || n == 4) && (m == 0 || m == 4) {
                continue;
            }
            let (s, t) = (fu * w, fv * h);
            let approx = quad_map(q, c, s, t);
            let real = exact((f64::from(q[0]) + s, f64::from(q[1]) + t));
            if !(real.0.is_finite() && real.1.is_finite()) || dist(approx, real) >= max_err {
                return false;
            }
        }
    }
    true
}

/// MapProxy's `bbox_position_in_image`: the part of `bbox` (drawn at `size`) inside `inner`:
/// its size, offset and bbox.
pub fn bbox_position_in_image(
    bbox: Bbox,
    size: (u32, u32),
    inner: Bbox,
) -> ((u32, u32), (u32, u32), Bbox) {
    // make_lin_transf's arithmetic: (x - minx) * width / (maxx - minx)
    let (w, h) = (f64::from(size.0), f64::from(size.1));
    let px = |x: f64| ((x - bbox[0]) * w / (bbox[2] - bbox[0])).trunc();
    let py = |y: f64| ((bbox[3] - y) * h / (bbox[3] - bbox[1])).trunc();
    // each offset an int (Python's `int(x)`) before the size is taken from them
    let mut off = [0.0, f64::from(size.1), f64::from(size.0), 0.0];
    let mut sub = bbox;
    if inner[0] > bbox[0] {
        sub[0] = inner[0];
        off[0] = px(inner[0]);
    }
    if inner[1] > bbox[1] {
        sub[1] = inner[1];
        off[1] = py(inner[1]);
    }
    if inner[2] < bbox[2] {
        sub[2] = inner[2];
        off[2] = px(inner[2]);
    }
    if inner[3] < bbox[3] {
        sub[3] = inner[3];
        off[3] = py(inner[3]);
    }
    let (sw, sh) = (
        (off[2] - off[0]).abs() as u32,
        (off[1] - off[3]).abs() as u32,
    );
    ((sw, sh), (off[0] as u32, off[3] as u32), sub)
}

/// Fill the target rectangle of `quad` by sampling `src` through its bilinear map: along a
/// row the map is linear, so each row is a start point and a step added per pixel. A quad
/// whose source footprint (the bbox of its corners, which holds every position of its map)
/// lies wholly outside the source, kernel reach included, stays transparent as `out` is.
fn fill_quad(src: &RgbaImage, out: &mut RgbaImage, quad: &Quad, resampling: Resampling) {
    let (q, c) = (&quad.0, &quad.1);
    let x1 = q[2].min(out.width());
    let y1 = q[3].min(out.height());
    if q[0] >= x1 {
        return;
    }
    // the kernels read at most two source pixels from the position (bicubic's 4×4 window)
    const REACH: f64 = 3.0;
    let (fmin, fmax) = c.iter().fold(
        (
            (f64::INFINITY, f64::INFINITY),
            (f64::NEG_INFINITY, f64::NEG_INFINITY),
        ),
        |(lo, hi), p| {
            (
                (lo.0.min(p.0), lo.1.min(p.1)),
                (hi.0.max(p.0), hi.1.max(p.1)),
            )
        },
    );
    if fmax.0 < -REACH
        || fmax.1 < -REACH
        || fmin.0 > f64::from(src.width()) + REACH
        || fmin.1 > f64::from(src.height()) + REACH
    {
        return;
    }
    // fixed-point stepping needs positions well inside i64's 32.32 range
    let fixed = fmin.0.min(fmin.1) > -FIXED_LIMIT && fmax.0.max(fmax.1) < FIXED_LIMIT;
    let (w, h) = (f64::from(q[2] - q[0]), f64::from(q[3] - q[1]));
    let [nw, sw, se, ne] = *c;
    let width = out.width() as usize;
    let buf: &mut [u8] = out;
    for y in q[1]..y1 {
        let v = (f64::from(y - q[1]) + 0.5) / h;
        let (ax, ay) = (nw.0 * (1.0 - v) + sw.0 * v, nw.1 * (1.0 - v) + sw.1 * v);
        let (bx, by) = (
            ne.0 * (1.0 - v) + se.0 * v - ax,
            ne.1 * (1.0 - v) + se.1 * v - ay,
        );
        let start = (y as usize * width + q[0] as usize) * 4;
        let end = (y as usize * width + x1 as usize) * 4;
        let Some(row) = buf.get_mut(start..end) else {
            return;
        };
        // the position of the row's first pixel centre and the step per pixel
        let (dx, dy) = (bx / w, by / w);
        let (px0, py0) = (ax + dx * 0.5, ay + dy * 0.5);
        if fixed {
            const ONE: i16 = 1 << WEIGHT_BITS;
            // the weight sets of a 32.32 position's fraction; bilinear and bicubic in cell
            // coordinates (less the half pixel of the kernel's cell), nearest in pixels
            let cell = (px0 - 0.5, py0 - 0.5);
            match resampling {
                Resampling::Bicubic => {
                    let table = cubic_table_fixed();
                    fill_row_fixed(src, row, cell, (dx, dy), |f| {
                        // rounded to 1/CUBIC_STEPS
                        let k = (((f & 0xffff_ffff) + (1 << 21)) >> 22) as usize;
                        table[k.min(CUBIC_STEPS)]
                    });
                }
                Resampling::Bilinear => fill_row_fixed(src, row, cell, (dx, dy), |f| {
                    // rounded to WEIGHT_BITS: 0..=ONE
                    let d = (((f & 0xffff_ffff) + (1 << 17)) >> 18) as i16;
                    [0, ONE - d, d, 0]
                }),
                Resampling::Nearest => {
                    fill_row_fixed(src, row, (px0, py0), (dx, dy), |_| [0, ONE, 0, 0])
                }
            }
            continue;
        }
        let (mut sx, mut sy) = (px0, py0);
        for px in row.chunks_exact_mut(4) {
            px.copy_from_slice(&sample(src, sx, sy, resampling));
            sx += dx;
            sy += dy;
        }
    }
}

/// Positions beyond ±2^30 source pixels are not stepped in fixed point (32.32 in an i64).
const FIXED_LIMIT: f64 = (1u64 << 30) as f64;

/// One row of [`fill_quad`]: the position stepped from `start` by `step` in 32.32 fixed
/// point (an addition per pixel), the 4×4 window from one pixel before its integer part read
/// from the raw buffer (zeros for pixels outside the source) and summed in fixed point by
/// [`bicubic_window`] with the `weights` of its fractions (x, y).
fn fill_row_fixed(
    src: &RgbaImage,
    row: &mut [u8],
    start: (f64, f64),
    step: (f64, f64),
    weights: impl Fn(i64) -> [i16; 4],
) {
    let (sw, sh) = (i64::from(src.width()), i64::from(src.height()));
    let raw: &[u8] = src;
    let stride = sw as usize * 4;
    // the last first column and row of a window inside the source (none: below 4×4)
    let (last_i, last_j) = ((sw - 4).max(0) as u64, (sh - 4).max(0) as u64);
    let big = sw >= 4 && sh >= 4;
    const ONE: f64 = (1u64 << 32) as f64;
    let (mut fx, mut fy) = ((start.0 * ONE) as i64, (start.1 * ONE) as i64);
    let (dx, dy) = ((step.0 * ONE) as i64, (step.1 * ONE) as i64);
    for px in row.chunks_exact_mut(4) {
        let (x, y) = (fx, fy);
        fx = fx.wrapping_add(dx);
        fy = fy.wrapping_add(dy);
        let (i, j) = (x >> 32, y >> 32);
        // the window's first pixel (i - 1, j - 1) and last (i + 2, j + 2) inside the source
        let window = if big && (i - 1) as u64 <= last_i && (j - 1) as u64 <= last_j {
            let base = (j as usize - 1) * stride + (i as usize - 1) * 4;
            match bicubic_window_in(raw, base, stride, || (weights(x), weights(y))) {
                Some(p) => p,
                None => continue,
            }
        } else {
            if i < -2 || j < -2 || i > sw || j > sh {
                // wholly outside: transparent
                px.copy_from_slice(&[0; 4]);
                continue;
            }
            let rows = edge_window(raw, (sw, sh), i - 1, j - 1);
            bicubic_window(
                [&rows[0], &rows[1], &rows[2], &rows[3]],
                &weights(x),
                &weights(y),
            )
        };
        px.copy_from_slice(&window);
    }
}

/// The 4×4 window from (i, j) of a `size` RGBA buffer, transparent where outside it.
fn edge_window(raw: &[u8], size: (i64, i64), i: i64, j: i64) -> [[u8; 16]; 4] {
    let mut rows = [[0u8; 16]; 4];
    for (m, row) in rows.iter_mut().enumerate() {
        let y = j + m as i64;
        if y < 0 || y >= size.1 {
            continue;
        }
        for n in 0..4 {
            let x = i + n as i64;
            if x < 0 || x >= size.0 {
                continue;
            }
            let at = (y * size.0 + x) as usize * 4;
            if let (Some(d), Some(s)) = (row.get_mut(n * 4..n * 4 + 4), raw.get(at..at + 4)) {
                d.copy_from_slice(s);
            }
        }
    }
    rows
}

/// Fraction bits of the fixed-point bicubic weights; each set of four sums to exactly
/// `1 << WEIGHT_BITS`, so a uniform window gives its pixel back unchanged.
const WEIGHT_BITS: u32 = 14;
/// Bits dropped from the vertical sums before the horizontal pass: they stay 16-bit (at most
/// 255 × 1.125 × 2^6 in magnitude) with 6 fraction bits.
const MID_SHIFT: u32 = 8;
/// The horizontal sums' fraction bits.
const OUT_SHIFT: u32 = 2 * WEIGHT_BITS - MID_SHIFT;

/// [`cubic_weights`] at each 1/[`CUBIC_STEPS`] of a pixel in fixed point (the rounding
/// remainder added to the largest weight).
fn cubic_table_fixed() -> &'static [[i16; 4]; CUBIC_STEPS + 1] {
    static TABLE: std::sync::OnceLock<[[i16; 4]; CUBIC_STEPS + 1]> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        let one = 1i32 << WEIGHT_BITS;
        std::array::from_fn(|i| {
            let w = cubic_weights(i as f32 / CUBIC_STEPS as f32);
            let mut f = w.map(|v| (f64::from(v) * f64::from(one)).round() as i32);
            let rest = one - f.iter().sum::<i32>();
            let big = if f[1] >= f[2] { 1 } else { 2 };
            f[big] += rest;
            f.map(|v| v.clamp(i16::MIN.into(), i16::MAX.into()) as i16)
        })
    })
}

/// The bicubic sum of a 4×4 RGBA window (`rows`: four rows of four pixels) with fixed-point
/// weights `wx` (columns) and `wy` (rows): SSE2 on x86-64, else [`bicubic_window_scalar`]
/// (the same result bit for bit).
#[inline(always)]
fn bicubic_window(rows: [&[u8; 16]; 4], wx: &[i16; 4], wy: &[i16; 4]) -> [u8; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::window(rows, wx, wy)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        bicubic_window_scalar(rows, wx, wy)
    }
}

/// [`bicubic_window`] of the window whose first pixel is at byte `base` of `raw` (rows
/// `stride` bytes apart): a uniform window is its pixel (the `weights` are not asked for);
/// `None` when the window does not fit in `raw`.
#[inline(always)]
fn bicubic_window_in(
    raw: &[u8],
    base: usize,
    stride: usize,
    weights: impl FnOnce() -> ([i16; 4], [i16; 4]),
) -> Option<[u8; 4]> {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::window_in(raw, base, stride, weights)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let row = |m: usize| -> Option<&[u8; 16]> {
            let at = base.checked_add(stride.checked_mul(m)?)?;
            raw.get(at..at.checked_add(16)?)?.try_into().ok()
        };
        let rows = [row(0)?, row(1)?, row(2)?, row(3)?];
        let (wx, wy) = weights();
        Some(bicubic_window_scalar(rows, &wx, &wy))
    }
}

/// The rows pass in plain integers: per byte `k`, the four rows' bytes weighted by `wy`
/// (i32), shifted down by [`MID_SHIFT`] and saturated to i16.
fn vertical_scalar(rows: [&[u8]; 4], wy: &[i16; 4], out: &mut [i16]) {
    for (k, o) in out.iter_mut().enumerate() {
        let mut acc = 0i32;
        for (r, &w) in rows.iter().zip(wy) {
            let v = r.get(k).copied().unwrap_or(0);
            acc = acc.wrapping_add(i32::from(v) * i32::from(w));
        }
        *o = (acc >> MID_SHIFT).clamp(i16::MIN.into(), i16::MAX.into()) as i16;
    }
}

/// The columns pass in plain integers: four columns of RGBA rows-pass sums (`cols`, i16)
/// weighted by `wx` (i32), rounded, shifted down by [`OUT_SHIFT`] and saturated to 0..=255.
fn horizontal_scalar(cols: &[i16; 16], wx: &[i16; 4]) -> [u8; 4] {
    let mut out = [0u8; 4];
    for (c, o) in out.iter_mut().enumerate() {
        let mut acc = 0i32;
        for (n, &w) in wx.iter().enumerate() {
            acc = acc.wrapping_add(i32::from(cols[n * 4 + c]) * i32::from(w));
        }
        let v = acc.wrapping_add(1 << (OUT_SHIFT - 1)) >> OUT_SHIFT;
        *o = v.clamp(0, 255) as u8;
    }
    out
}

/// [`bicubic_window`] in plain integers: the rows pass then the columns pass. A uniform
/// window is its pixel (which the sums give too, the weights summing to one).
#[cfg_attr(target_arch = "x86_64", allow(dead_code))]
fn bicubic_window_scalar(rows: [&[u8; 16]; 4], wx: &[i16; 4], wy: &[i16; 4]) -> [u8; 4] {
    let first = [rows[0][0], rows[0][1], rows[0][2], rows[0][3]];
    if rows.iter().all(|r| r.chunks_exact(4).all(|p| p == first)) {
        return first;
    }
    let mut cols = [0i16; 16];
    vertical_scalar(rows.map(|r| &r[..]), wy, &mut cols);
    horizontal_scalar(&cols, wx)
}

/// The rows pass over whole rows (`out.len()` bytes of each): SSE2 on x86-64, else
/// [`vertical_scalar`].
#[inline]
fn vertical(rows: [&[u8]; 4], wy: &[i16; 4], out: &mut [i16]) {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::vertical(rows, wy, out)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        vertical_scalar(rows, wy, out)
    }
}

/// The columns pass: SSE2 on x86-64, else [`horizontal_scalar`].
#[inline(always)]
fn horizontal(cols: &[i16; 16], wx: &[i16; 4]) -> [u8; 4] {
    #[cfg(target_arch = "x86_64")]
    {
        sse2::horizontal(cols, wx)
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        horizontal_scalar(cols, wx)
    }
}

/// The fixed-point resampling sums with SSE2 (x86-64's baseline: no run-time detection).
/// Rows pass: two rows' bytes interleaved, widened to i16 and multiplied-and-added
/// (`pmaddwd`) with a pair of row weights; columns pass: two columns' i16 sums interleaved
/// and multiplied-and-added with a pair of column weights; the saturating packs are the
/// scalar versions' clamps, so the results are theirs bit for bit.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod sse2 {
    use super::{MID_SHIFT, OUT_SHIFT, WEIGHT_BITS};
    use std::arch::x86_64::*;

    // SAFETY (every `unsafe` block and fn below): SSE2 is part of the x86-64 baseline, so
    // its intrinsics are always available; the only memory accesses are unaligned loads and
    // stores (`loadu`/`storeu`/`loadl`: no alignment needed) of 16 bytes (8 for a weight
    // set) at pointers into slices, arrays or references checked to hold those bytes.

    /// A weight set as its two pairs (w0, w1) and (w2, w3), each in every i32 lane as the
    /// (low, high) i16 halves: `pmaddwd` operands. An `[i16; 4]` is those 8 bytes.
    #[inline(always)]
    unsafe fn pairs(w: &[i16; 4]) -> (__m128i, __m128i) {
        let v = _mm_loadl_epi64(w.as_ptr().cast());
        (_mm_shuffle_epi32(v, 0x00), _mm_shuffle_epi32(v, 0x55))
    }

    /// All 16 pixels of a window equal?
    #[inline(always)]
    unsafe fn uniform(r: &[__m128i; 4]) -> bool {
        let f = _mm_shuffle_epi32(r[0], 0);
        let eq = _mm_and_si128(
            _mm_and_si128(_mm_cmpeq_epi32(r[0], f), _mm_cmpeq_epi32(r[1], f)),
            _mm_and_si128(_mm_cmpeq_epi32(r[2], f), _mm_cmpeq_epi32(r[3], f)),
        );
        _mm_movemask_epi8(eq) == 0xffff
    }

    /// The rows pass of 16 bytes (four RGBA pixels) of four rows: per pixel, the i32 sums of
    /// its channels shifted down by `MID_SHIFT`.
    #[inline(always)]
    unsafe fn rows4(r: &[__m128i; 4], wy01: __m128i, wy23: __m128i) -> [__m128i; 4] {
        let z = _mm_setzero_si128();
        let a_lo = _mm_unpacklo_epi8(r[0], r[1]); // pixels 0, 1 of rows 0, 1
        let a_hi = _mm_unpackhi_epi8(r[0], r[1]); // pixels 2, 3
        let b_lo = _mm_unpacklo_epi8(r[2], r[3]);
        let b_hi = _mm_unpackhi_epi8(r[2], r[3]);
        let col = |a: __m128i, b: __m128i| {
            _mm_srai_epi32::<{ MID_SHIFT as i32 }>(_mm_add_epi32(
                _mm_madd_epi16(a, wy01),
                _mm_madd_epi16(b, wy23),
            ))
        };
        [
            col(_mm_unpacklo_epi8(a_lo, z), _mm_unpacklo_epi8(b_lo, z)),
            col(_mm_unpackhi_epi8(a_lo, z), _mm_unpackhi_epi8(b_lo, z)),
            col(_mm_unpacklo_epi8(a_hi, z), _mm_unpacklo_epi8(b_hi, z)),
            col(_mm_unpackhi_epi8(a_hi, z), _mm_unpackhi_epi8(b_hi, z)),
        ]
    }

    /// The columns pass of two registers of i16 sums, (c0, c1) and (c2, c3), to one pixel.
    #[inline(always)]
    unsafe fn columns4(c01: __m128i, c23: __m128i, wx: &[i16; 4]) -> [u8; 4] {
        let (wx01, wx23) = pairs(wx);
        // channel by channel side by side: c0.r c1.r c0.g c1.g ...
        let c01 = _mm_unpacklo_epi16(c01, _mm_unpackhi_epi64(c01, c01));
        let c23 = _mm_unpacklo_epi16(c23, _mm_unpackhi_epi64(c23, c23));
        let sum = _mm_add_epi32(_mm_madd_epi16(c01, wx01), _mm_madd_epi16(c23, wx23));
        let v = _mm_srai_epi32::<{ OUT_SHIFT as i32 }>(_mm_add_epi32(
            sum,
            _mm_set1_epi32(1 << (OUT_SHIFT - 1)),
        ));
        let v = _mm_packs_epi32(v, v);
        _mm_cvtsi128_si32(_mm_packus_epi16(v, v)).to_le_bytes()
    }

    /// A window's sum: a uniform window is its pixel, else the rows pass and the columns
    /// pass in registers.
    #[inline(always)]
    unsafe fn sum(r: &[__m128i; 4], weights: impl FnOnce() -> ([i16; 4], [i16; 4])) -> [u8; 4] {
        if uniform(r) {
            return _mm_cvtsi128_si32(r[0]).to_le_bytes();
        }
        let (wx, wy) = weights();
        let (wy01, wy23) = pairs(&wy);
        let c = rows4(r, wy01, wy23);
        columns4(
            _mm_packs_epi32(c[0], c[1]),
            _mm_packs_epi32(c[2], c[3]),
            &wx,
        )
    }

    /// `bicubic_window`.
    #[inline(always)]
    pub(super) fn window(rows: [&[u8; 16]; 4], wx: &[i16; 4], wy: &[i16; 4]) -> [u8; 4] {
        unsafe {
            let r = rows.map(|r| _mm_loadu_si128(r.as_ptr().cast()));
            sum(&r, || (*wx, *wy))
        }
    }

    /// `bicubic_window_in`: one bounds check for the four rows.
    #[inline(always)]
    pub(super) fn window_in(
        raw: &[u8],
        base: usize,
        stride: usize,
        weights: impl FnOnce() -> ([i16; 4], [i16; 4]),
    ) -> Option<[u8; 4]> {
        let end = stride.checked_mul(3)?.checked_add(base)?.checked_add(16)?;
        if end > raw.len() {
            return None;
        }
        unsafe {
            // base + 3 * stride + 16 <= raw.len(): the four 16-byte rows are in `raw`
            let p = raw.as_ptr().add(base);
            let r = [
                _mm_loadu_si128(p.cast()),
                _mm_loadu_si128(p.add(stride).cast()),
                _mm_loadu_si128(p.add(2 * stride).cast()),
                _mm_loadu_si128(p.add(3 * stride).cast()),
            ];
            Some(sum(&r, weights))
        }
    }

    /// `vertical`: 16 bytes at a time, the rest by `vertical_scalar`. With weights summing to
    /// one, 16 bytes equal in the four rows are their bytes shifted up by the 6 fraction
    /// bits (what the sums give).
    pub(super) fn vertical(rows: [&[u8]; 4], wy: &[i16; 4], out: &mut [i16]) {
        let n = out.len();
        if rows.iter().any(|r| r.len() < n) {
            return super::vertical_scalar(rows, wy, out);
        }
        let one = wy.iter().map(|&w| i32::from(w)).sum::<i32>() == 1 << WEIGHT_BITS;
        let full = n / 16 * 16;
        unsafe {
            let (wy01, wy23) = pairs(wy);
            let z = _mm_setzero_si128();
            for (k, o) in out[..full].chunks_exact_mut(16).enumerate() {
                // k * 16 + 16 <= full <= every row's length; `o`: 16 i16, 32 bytes
                let at = k * 16;
                let r = rows.map(|r| _mm_loadu_si128(r.as_ptr().add(at).cast()));
                let (c01, c23) = if one && uniform_rows(&r) {
                    const UP: i32 = (WEIGHT_BITS - MID_SHIFT) as i32;
                    (
                        _mm_slli_epi16::<UP>(_mm_unpacklo_epi8(r[0], z)),
                        _mm_slli_epi16::<UP>(_mm_unpackhi_epi8(r[0], z)),
                    )
                } else {
                    let c = rows4(&r, wy01, wy23);
                    (_mm_packs_epi32(c[0], c[1]), _mm_packs_epi32(c[2], c[3]))
                };
                _mm_storeu_si128(o.as_mut_ptr().cast(), c01);
                _mm_storeu_si128(o.as_mut_ptr().add(8).cast(), c23);
            }
        }
        super::vertical_scalar(rows.map(|r| &r[full..]), wy, &mut out[full..]);
    }

    /// The four rows' 16 bytes equal?
    #[inline(always)]
    unsafe fn uniform_rows(r: &[__m128i; 4]) -> bool {
        let eq = _mm_and_si128(
            _mm_cmpeq_epi8(r[0], r[1]),
            _mm_and_si128(_mm_cmpeq_epi8(r[0], r[2]), _mm_cmpeq_epi8(r[0], r[3])),
        );
        _mm_movemask_epi8(eq) == 0xffff
    }

    /// `horizontal`.
    #[inline(always)]
    pub(super) fn horizontal(cols: &[i16; 16], wx: &[i16; 4]) -> [u8; 4] {
        unsafe {
            let c01 = _mm_loadu_si128(cols.as_ptr().cast());
            let c23 = _mm_loadu_si128(cols.as_ptr().add(8).cast());
            columns4(c01, c23, wx)
        }
    }
}

/// The colour of `src` at (x, y) (source pixels; pixel centres at i + 0.5). Bicubic and
/// bilinear read the raw buffer directly away from the edges (the hot path of reprojection).
pub fn sample(src: &RgbaImage, x: f64, y: f64, resampling: Resampling) -> [u8; 4] {
    if !(in_range(x) && in_range(y)) {
        // far outside (or NaN): transparent, as every pixel outside the source; the index
        // arithmetic below would overflow
        return [0; 4];
    }
    let (w, h) = (i64::from(src.width()), i64::from(src.height()));
    let px = |i: i64, j: i64| -> [f32; 4] {
        if i < 0 || j < 0 || i >= w || j >= h {
            [0.0; 4]
        } else {
            let p = src.get_pixel(i as u32, j as u32).0;
            [p[0].into(), p[1].into(), p[2].into(), p[3].into()]
        }
    };
    // round half up and clamp to 0..=255 (float to int casts saturate; NaN is 0)
    let to_u8 = |v: [f32; 4]| v.map(|c| (c + 0.5) as u8);
    match resampling {
        Resampling::Nearest => {
            let p = px(x.floor() as i64, y.floor() as i64);
            p.map(|c| c as u8)
        }
        Resampling::Bilinear => {
            let (fx, fy) = (x - 0.5, y - 0.5);
            let (i, j) = (fx.floor() as i64, fy.floor() as i64);
            let (dx, dy) = ((fx - fx.floor()) as f32, (fy - fy.floor()) as f32);
            let mut acc = [0.0f32; 4];
            for (ii, jj, wgt) in [
                (i, j, (1.0 - dx) * (1.0 - dy)),
                (i + 1, j, dx * (1.0 - dy)),
                (i, j + 1, (1.0 - dx) * dy),
                (i + 1, j + 1, dx * dy),
            ] {
                let p = px(ii, jj);
                for k in 0..4 {
                    acc[k] += p[k] * wgt;
                }
            }
            to_u8(acc)
        }
        Resampling::Bicubic => {
            let (fx, fy) = (x - 0.5, y - 0.5);
            let (i, j) = (fast_floor(fx), fast_floor(fy));
            let wx = cubic_weights_at((fx - i as f64) as f32);
            let wy = cubic_weights_at((fy - j as f64) as f32);
            let mut acc = [0.0f32; 4];
            if i >= 1 && j >= 1 && i + 2 < w && j + 2 < h {
                // the 4×4 window is inside: rows of 16 bytes from the raw buffer
                let raw: &[u8] = src;
                let stride = w as usize * 4;
                for (m, wyv) in wy.iter().enumerate() {
                    let at = (j as usize - 1 + m) * stride + (i as usize - 1) * 4;
                    let Some(r) = raw.get(at..at + 16) else {
                        return [0; 4];
                    };
                    let mut hsum = [0.0f32; 4];
                    for (n, wxv) in wx.iter().enumerate() {
                        for k in 0..4 {
                            hsum[k] += f32::from(r[n * 4 + k]) * wxv;
                        }
                    }
                    for k in 0..4 {
                        acc[k] += hsum[k] * wyv;
                    }
                }
                return to_u8(acc);
            }
            for (m, wyv) in wy.iter().enumerate() {
                for (n, wxv) in wx.iter().enumerate() {
                    let p = px(i - 1 + n as i64, j - 1 + m as i64);
                    let wgt = wxv * wyv;
                    for k in 0..4 {
                        acc[k] += p[k] * wgt;
                    }
                }
            }
            to_u8(acc)
        }
    }
}

/// `floor` without the libm call (x86-64's baseline has no rounding instruction).
fn fast_floor(v: f64) -> i64 {
    let t = v as i64;
    if (t as f64) > v {
        t - 1
    } else {
        t
    }
}

/// Steps of the bicubic weight table: a fraction of a source pixel is rounded to 1/1024
/// (0.001 px, far below the mesh's half-pixel tolerance).
const CUBIC_STEPS: usize = 1024;

/// [`cubic_weights`] from a table (the kernel's branches were a sixth of a reprojection).
fn cubic_weights_at(d: f32) -> [f32; 4] {
    let i = ((d * CUBIC_STEPS as f32 + 0.5) as usize).min(CUBIC_STEPS);
    cubic_table()[i]
}

/// The weights at each 1/[`CUBIC_STEPS`] of a pixel.
fn cubic_table() -> &'static [[f32; 4]] {
    static TABLE: std::sync::OnceLock<Vec<[f32; 4]>> = std::sync::OnceLock::new();
    TABLE.get_or_init(|| {
        (0..=CUBIC_STEPS)
            .map(|i| cubic_weights(i as f32 / CUBIC_STEPS as f32))
            .collect()
    })
}

/// The bicubic kernel of Pillow's `transform` (`Geometry.c`'s `BICUBIC`, which MapProxy's
/// `EXTENT` and `MESH` transforms use): the cubic convolution kernel with a = -1, sharper than
/// the a = -0.5 (Catmull-Rom) of Pillow's `resize`. Zero from 2 pixels on.
fn pillow_cubic(x: f64) -> f64 {
    const A: f64 = -1.0;
    let x = x.abs();
    if x < 1.0 {
        ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
    } else if x < 2.0 {
        (((x - 5.0) * x + 8.0) * x - 4.0) * A
    } else {
        0.0
    }
}

/// [`pillow_cubic`] for fast_image_resize.
fn pillow_cubic_filter() -> fr::FilterType {
    match fr::Filter::new("pillow transform bicubic", pillow_cubic, 2.0) {
        Ok(f) => fr::FilterType::Custom(f),
        // the support is finite and positive: cannot happen
        Err(_) => fr::FilterType::CatmullRom,
    }
}

/// [`pillow_cubic`] at offsets -1, 0, 1, 2 from the sample's cell.
fn cubic_weights(d: f32) -> [f32; 4] {
    let d = f64::from(d);
    let k = |x: f64| pillow_cubic(x) as f32;
    [k(1.0 + d), k(d), k(1.0 - d), k(2.0 - d)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::srs::MERC_MAX;

    /// A source image whose pixel (i, j) encodes i and j (12 bits each).
    fn coded(w: u32, h: u32) -> RgbaImage {
        RgbaImage::from_fn(w, h, |i, j| {
            image::Rgba([
                (i & 0xff) as u8,
                (j & 0xff) as u8,
                (((i >> 8) & 0xf) | (((j >> 8) & 0xf) << 4)) as u8,
                255,
            ])
        })
    }

    fn decode(p: [u8; 4]) -> (u32, u32) {
        (
            u32::from(p[0]) | (u32::from(p[2] & 0xf) << 8),
            u32::from(p[1]) | (u32::from(p[2] >> 4) << 8),
        )
    }

    /// Reprojection accuracy: for every target pixel, the source pixel that nearest sampling
    /// through the mesh picks is compared with the exact per-pixel projection of the pixel's
    /// centre; the distance (less nearest sampling's own half source pixel) is under one
    /// target pixel everywhere (the mesh aims at half a pixel).
    #[test]
    fn reprojection_within_one_pixel() -> Result<(), crate::srs::SrsError> {
        // (source SRS, source bbox, target SRS, target bbox, target size)
        type Case = (&'static str, Bbox, &'static str, Bbox, (u32, u32));
        let cases: &[Case] = &[
            (
                "EPSG:3857",
                [-MERC_MAX, -MERC_MAX, MERC_MAX, MERC_MAX],
                "EPSG:4326",
                [-180.0, -85.0, 180.0, 85.0],
                (720, 340),
            ),
            (
                "EPSG:3857",
                [0.0, 5_000_000.0, 2_000_000.0, 7_500_000.0],
                "EPSG:4326",
                [1.0, 42.0, 17.0, 55.0],
                (512, 512),
            ),
            (
                "EPSG:3857",
                [500_000.0, 5_500_000.0, 1_700_000.0, 7_400_000.0],
                "EPSG:32632",
                [300_000.0, 5_000_000.0, 700_000.0, 5_900_000.0],
                (400, 600),
            ),
            (
                "EPSG:4326",
                [0.0, 40.0, 20.0, 60.0],
                "EPSG:25832",
                [200_000.0, 4_800_000.0, 800_000.0, 6_400_000.0],
                (300, 800),
            ),
            (
                "EPSG:4326",
                [-180.0, -90.0, 180.0, 90.0],
                "EPSG:3857",
                [-MERC_MAX, -MERC_MAX, MERC_MAX, MERC_MAX],
                (512, 512),
            ),
            (
                "EPSG:32633",
                [200_000.0, 5_000_000.0, 800_000.0, 6_000_000.0],
                "EPSG:3857",
                [1_200_000.0, 5_800_000.0, 2_000_000.0, 7_000_000.0],
                (500, 700),
            ),
        ];
        for &(s, sb, d, db, size) in cases {
            let src_srs = Srs::get(s)?;
            let dst_srs = Srs::get(d)?;
            let src_size = (1000u32, 1000u32);
            let src = coded(src_size.0, src_size.1);
            let warp = Warp {
                src_bbox: sb,
                src_srs: &src_srs,
                dst_size: size,
                dst_bbox: db,
                dst_srs: &dst_srs,
                resampling: Resampling::Nearest,
            };
            let out = transform(&src, &warp);
            let src_px = to_px(src_srs.align_bbox(sb), src_size);
            let dst_w = to_map(dst_srs.align_bbox(db), size);
            let mut max_err: f64 = 0.0;
            let mut checked = 0;
            for y in 0..size.1 {
                for x in 0..size.0 {
                    let p = out.get_pixel(x, y).0;
                    let exact =
                        |px: f64, py: f64| src_px(dst_srs.transform_to(&src_srs, dst_w((px, py))));
                    let (cx, cy) = (f64::from(x) + 0.5, f64::from(y) + 0.5);
                    let (ex, ey) = exact(cx, cy);
                    let inside = ex >= 1.0
                        && ey >= 1.0
                        && ex < f64::from(src_size.0) - 1.0
                        && ey < f64::from(src_size.1) - 1.0;
                    if !inside {
                        continue;
                    }
                    assert_eq!(p[3], 255, "{s}->{d}: pixel {x},{y} not filled");
                    // source pixels per target pixel here, along each target axis
                    let (ax, ay) = exact(cx + 1.0, cy);
                    let (bx, by) = exact(cx, cy + 1.0);
                    let (i, j) = decode(p);
                    // the sampled pixel's centre vs the exact position, less the half source
                    // pixel nearest sampling itself rounds off (source pixels) ...
                    let shrink = |d: f64| d.signum() * (d.abs() - 0.5).max(0.0);
                    let dx = shrink(f64::from(i) + 0.5 - ex);
                    let dy = shrink(f64::from(j) + 0.5 - ey);
                    // ... in target pixels, through the inverse of the local Jacobian
                    let (j00, j01, j10, j11) = (ax - ex, bx - ex, ay - ey, by - ey);
                    let det = j00 * j11 - j01 * j10;
                    let tx = (j11 * dx - j01 * dy) / det;
                    let ty = (-j10 * dx + j00 * dy) / det;
                    let err = tx.hypot(ty);
                    max_err = max_err.max(err);
                    checked += 1;
                }
            }
            assert!(checked > 1000, "{s}->{d}: {checked} pixels checked");
            // nearest sampling alone is off by up to 0.5 px; the mesh adds less than 0.5
            eprintln!(
                "{s} -> {d} {size:?}: max error {max_err:.3} target px over {checked} pixels"
            );
            assert!(max_err < 1.0, "{s}->{d}: max error {max_err} px");
        }
        Ok(())
    }

    /// The separable path (3857 → 4326) gives what the mesh's per-pixel sampler gives, for
    /// each kernel, on a smooth image (the two differ only by the mesh's sub-pixel error).
    /// Black stripes on transparent white, reprojected (separable 3857 → 4326 and meshed UTM):
    /// interpolated premultiplied as Pillow's `transform` does, so the edge pixels are black
    /// with partial alpha, never grey (white bleeding in); Pillow's RGBa round trip.
    #[test]
    fn transparent_colours_do_not_bleed() -> Result<(), crate::srs::SrsError> {
        let src = RgbaImage::from_fn(400, 400, |i, _| {
            if (i / 10) % 2 == 0 {
                image::Rgba([0, 0, 0, 255])
            } else {
                image::Rgba([255, 255, 255, 0])
            }
        });
        let (merc, geo, utm) = (
            Srs::get("EPSG:3857")?,
            Srs::get("EPSG:4326")?,
            Srs::get("EPSG:25832")?,
        );
        let sb = [800_000.0, 6_000_000.0, 1_400_000.0, 6_600_000.0];
        for (dst_srs, db) in [
            (&geo, [7.5, 47.5, 12.3, 50.5]),
            (&utm, [400_000.0, 5_280_000.0, 700_000.0, 5_560_000.0]),
        ] {
            for r in [Resampling::Bilinear, Resampling::Bicubic] {
                let warp = Warp {
                    src_bbox: sb,
                    src_srs: &merc,
                    dst_size: (300, 300),
                    dst_bbox: db,
                    dst_srs,
                    resampling: r,
                };
                let out = transform(&src, &warp);
                let partial: Vec<_> = out
                    .pixels()
                    .filter(|p| p.0[3] > 8 && p.0[3] < 247)
                    .collect();
                assert!(partial.len() > 100, "{r:?}: edges interpolated");
                for p in partial {
                    assert!(p.0[..3].iter().all(|&c| c < 40), "{r:?}: {p:?}");
                }
            }
        }
        let one = RgbaImage::from_pixel(1, 1, image::Rgba([200, 100, 50, 128]));
        let back = {
            let mut p = premultiply(&one);
            assert_eq!(p.get_pixel(0, 0).0, [100, 50, 25, 128]);
            unpremultiply(&mut p);
            p
        };
        assert_eq!(back.get_pixel(0, 0).0, [199, 99, 49, 128]);
        Ok(())
    }

    #[test]
    fn separable_matches_mesh() -> Result<(), crate::srs::SrsError> {
        let (src_srs, dst_srs) = (Srs::get("EPSG:3857")?, Srs::get("EPSG:4326")?);
        let sb = [0.0, 5_000_000.0, 2_000_000.0, 7_500_000.0];
        let db = [1.0, 42.0, 17.0, 55.0];
        let size = (300, 260);
        let src = RgbaImage::from_fn(800, 1000, |i, j| {
            image::Rgba([(i / 4) as u8, (j / 4) as u8, ((i + j) / 8) as u8, 255])
        });
        for r in [
            Resampling::Nearest,
            Resampling::Bilinear,
            Resampling::Bicubic,
        ] {
            let warp = Warp {
                src_bbox: sb,
                src_srs: &src_srs,
                dst_size: size,
                dst_bbox: db,
                dst_srs: &dst_srs,
                resampling: r,
            };
            let sep = transform_separable(&src, &warp).expect("3857 -> 4326 is separable");
            let mut meshed = RgbaImage::new(size.0, size.1);
            for q in &mesh(src.dimensions(), sb, &src_srs, size, db, &dst_srs) {
                fill_quad(&src, &mut meshed, q, r);
            }
            let max = sep
                .as_raw()
                .iter()
                .zip(meshed.as_raw())
                .map(|(a, b)| a.abs_diff(*b))
                .max();
            assert!(max.is_some_and(|m| m <= 1), "{r:?}: max difference {max:?}");
        }
        // UTM is not separable: the mesh draws it
        let utm = Srs::get("EPSG:32632")?;
        let ub = [300_000.0, 5_000_000.0, 700_000.0, 5_900_000.0];
        let warp = Warp {
            src_bbox: sb,
            src_srs: &src_srs,
            dst_size: size,
            dst_bbox: ub,
            dst_srs: &utm,
            resampling: Resampling::Bicubic,
        };
        assert!(transform_separable(&src, &warp).is_none());
        Ok(())
    }

    /// The bicubic row loop of `fill_quad` gives what [`sample`] gives at each pixel's
    /// position through the quad's map, inside the source and over its edges.
    #[test]
    fn sample_far_outside_is_transparent() {
        let src = RgbaImage::from_pixel(8, 8, image::Rgba([9, 8, 7, 255]));
        for r in [
            Resampling::Nearest,
            Resampling::Bilinear,
            Resampling::Bicubic,
        ] {
            for (x, y) in [
                (1e300, 4.0),
                (-1e300, -1e300),
                (4.0, -9.3e18),
                (f64::NAN, 4.0),
            ] {
                assert_eq!(sample(&src, x, y, r), [0; 4], "{r:?} {x} {y}");
            }
            assert_eq!(sample(&src, 4.0, 4.0, r), [9, 8, 7, 255], "{r:?}");
        }
        assert!(axis_positions(32, |i| i as f64 * 1e300).is_none());
        assert!(axis_positions(8, |i| i as f64 - 3e18).is_none());
        assert_eq!(
            axis_positions(4, |i| i as f64),
            Some(vec![0.0, 1.0, 2.0, 3.0])
        );
    }

    #[test]
    fn bicubic_rows_match_sample() {
        let src = RgbaImage::from_fn(64, 48, |i, j| {
            image::Rgba([(i * 4) as u8, (j * 5) as u8, ((i * j) % 256) as u8, 200])
        });
        let quad: Quad = (
            [0, 0, 40, 30],
            [(-3.2, -2.5), (5.0, 50.1), (70.3, 44.0), (60.7, 1.25)],
        );
        let mut out = RgbaImage::new(40, 30);
        fill_quad(&src, &mut out, &quad, Resampling::Bicubic);
        for y in 0..30 {
            for x in 0..40 {
                let (sx, sy) = quad_map(&quad.0, &quad.1, f64::from(x) + 0.5, f64::from(y) + 0.5);
                let want = sample(&src, sx, sy, Resampling::Bicubic);
                let got = out.get_pixel(x, y).0;
                let diff = (0..4).map(|c| got[c].abs_diff(want[c])).max();
                assert!(diff <= Some(1), "{x},{y}: {got:?} vs {want:?}");
            }
        }
    }

    /// The SSE2 bicubic window gives the scalar one's result bit for bit, over random windows
    /// (some uniform, some with a single odd pixel) and random weights (the table's and
    /// arbitrary i16s, whose sums saturate).
    #[test]
    fn bicubic_window_fixed_point() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let table = cubic_table_fixed();
        for t in 0..200_000 {
            let mut rows = [[0u8; 16]; 4];
            for r in rows.iter_mut() {
                for b in r.iter_mut() {
                    *b = next() as u8;
                }
            }
            if t % 4 == 1 {
                let p = [next() as u8, next() as u8, next() as u8, next() as u8];
                for r in rows.iter_mut() {
                    for px in r.chunks_exact_mut(4) {
                        px.copy_from_slice(&p);
                    }
                }
                if t % 8 == 1 {
                    rows[(next() % 4) as usize][(next() % 16) as usize] ^= 1;
                }
            }
            let (wx, wy) = if t % 3 == 0 {
                (
                    [0; 4].map(|_: i16| next() as i16),
                    [0; 4].map(|_: i16| next() as i16),
                )
            } else {
                (
                    table[(next() % table.len() as u64) as usize],
                    table[(next() % table.len() as u64) as usize],
                )
            };
            let r = [&rows[0], &rows[1], &rows[2], &rows[3]];
            let want = bicubic_window_scalar(r, &wx, &wy);
            assert_eq!(bicubic_window(r, &wx, &wy), want, "{rows:?} {wx:?} {wy:?}");
            // the same window read from a buffer (rows 24 bytes apart, at byte 5)
            let mut raw = vec![0u8; 5 + 3 * 24 + 16];
            for (m, row) in rows.iter().enumerate() {
                raw[5 + m * 24..5 + m * 24 + 16].copy_from_slice(row);
            }
            assert_eq!(bicubic_window_in(&raw, 5, 24, || (wx, wy)), Some(want));
            assert_eq!(bicubic_window_in(&raw, 6, 24, || (wx, wy)), None);
        }
        // the passes of the separable path: whole rows (a tail shorter than 16 bytes
        // included) and single pixels of i16 sums
        for t in 0..2_000 {
            let len = (next() % 100) as usize;
            let mut rows: Vec<Vec<u8>> = (0..4)
                .map(|_| (0..len).map(|_| next() as u8).collect())
                .collect();
            if t % 4 == 1 {
                // equal rows (the uniform shortcut with weights summing to one), one byte off
                rows = vec![rows[0].clone(); 4];
                if t % 8 == 1 && len > 0 {
                    rows[(next() % 4) as usize][(next() as usize) % len] ^= 4;
                }
            }
            let wy = if t % 3 == 0 {
                [0; 4].map(|_: i16| next() as i16)
            } else {
                table[(next() % table.len() as u64) as usize]
            };
            let r = [&rows[0][..], &rows[1][..], &rows[2][..], &rows[3][..]];
            let (mut simd, mut scalar) = (vec![0i16; len], vec![0i16; len]);
            vertical(r, &wy, &mut simd);
            vertical_scalar(r, &wy, &mut scalar);
            assert_eq!(simd, scalar, "{rows:?} {wy:?}");
            let cols: [i16; 16] = [0; 16].map(|_: i16| next() as i16);
            let wx = table[(next() % table.len() as u64) as usize];
            assert_eq!(horizontal(&cols, &wx), horizontal_scalar(&cols, &wx));
        }
        // the table's weights sum to one exactly
        assert!(table
            .iter()
            .all(|w| w.iter().map(|&v| i32::from(v)).sum::<i32>() == 1 << WEIGHT_BITS));
    }

    #[test]
    fn same_srs_crop_and_scale() -> Result<(), crate::srs::SrsError> {
        let srs = Srs::get("EPSG:3857")?;
        let src = coded(512, 512);
        // the source covers 0..512 in both axes of the map
        let warped = |dst_size, dst_bbox, resampling| {
            let warp = Warp {
                src_bbox: [0.0, 0.0, 512.0, 512.0],
                src_srs: &srs,
                dst_size,
                dst_bbox,
                dst_srs: &srs,
                resampling,
            };
            transform(&src, &warp)
        };
        // same resolution: an exact crop
        let out = warped((100, 100), [10.0, 400.0, 110.0, 500.0], Resampling::Bicubic);
        assert_eq!(decode(out.get_pixel(0, 0).0), (10, 12));
        // half resolution, nearest: every other pixel
        let out = warped((128, 128), [0.0, 256.0, 256.0, 512.0], Resampling::Nearest);
        let (i, j) = decode(out.get_pixel(10, 20).0);
        assert!((20..=21).contains(&i) && (40..=41).contains(&j), "{i} {j}");
        // partly outside the source: transparent there
        let out = warped(
            (100, 100),
            [-100.0, 0.0, 100.0, 200.0],
            Resampling::Bilinear,
        );
        assert_eq!(out.get_pixel(10, 50).0[3], 0);
        assert_eq!(out.get_pixel(90, 50).0[3], 255);
        Ok(())
    }

    /// `resize` gives what fast_image_resize with alpha premultiplication gives: for an
    /// opaque source (where it skips that, found by scanning or told), for transparency
    /// inside the crop, and just outside it within the kernel's reach.
    #[test]
    fn opaque_resize_is_resize_with_alpha() {
        let crop = (10.5, 7.25, 250.0, 150.3);
        let base = RgbaImage::from_fn(300, 200, |x, y| {
            image::Rgba([(x * 7) as u8, (y * 13) as u8, (x ^ y) as u8, 255])
        });
        let mut inside = base.clone();
        inside.put_pixel(100, 100, image::Rgba([255, 0, 0, 0]));
        let mut near = base.clone();
        near.put_pixel(100, 5, image::Rgba([255, 0, 0, 10]));
        let mut far = base.clone();
        far.put_pixel(100, 0, image::Rgba([255, 0, 0, 10]));
        for (name, src, size) in [
            ("opaque", &base, (97, 61)),
            ("inside", &inside, (97, 61)),
            ("near", &near, (97, 61)),
            // reduced 7.5 times: the kernel reaches 15 rows
            ("far", &far, (97, 20)),
        ] {
            for resampling in [Resampling::Bicubic, Resampling::Bilinear] {
                let got = resize(Known::unknown(src), crop, size, resampling).expect("resize");
                let view = fr::images::ImageRef::new(300, 200, src.as_raw(), fr::PixelType::U8x4)
                    .expect("view");
                let mut dst = fr::images::Image::new(size.0, size.1, fr::PixelType::U8x4);
                let alg = match resampling {
                    Resampling::Bilinear => fr::FilterType::Bilinear,
                    _ => pillow_cubic_filter(),
                };
                let opts = fr::ResizeOptions::new()
                    .crop(crop.0, crop.1, crop.2, crop.3)
                    .resize_alg(fr::ResizeAlg::Interpolation(alg));
                fr::Resizer::new()
                    .resize(&view, &mut dst, &opts)
                    .expect("reference");
                assert_eq!(got.as_raw(), dst.buffer(), "{name} {resampling:?}");
                if name == "opaque" {
                    let told = Known {
                        image: src,
                        opaque: true,
                    };
                    let got = resize(told, crop, size, resampling).expect("resize");
                    assert_eq!(got.as_raw(), dst.buffer(), "told opaque {resampling:?}");
                }
            }
        }
    }
}
