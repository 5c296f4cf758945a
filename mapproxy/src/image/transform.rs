//! Moving an image from one bbox/size/SRS to another (MapProxy's `image/transform.py`
//! `ImageTransformer`), giving the pixels MapProxy 7 with Pillow 13 gives:
//!
//! - Same SRS, same bbox and size (within a tenth of a pixel): the image itself
//!   (`_no_transformation_needed`); same resolution (within a tenth of a pixel per target
//!   size): a crop at the offset rounded half to even (Python's `round`).
//! - Same SRS, other resolution: Pillow's `transform(size, EXTENT, (minx, miny, maxx, maxy),
//!   filter)` (`_transform_simple`), which Pillow turns into an affine map: `nearest` is
//!   `ImagingScaleAffine` (positions accumulated column by column and row by row), `bilinear`
//!   and `bicubic` `ImagingGenericTransform` with `affine_transform` and the filters of
//!   `Geometry.c`. No smoothing when shrinking (MapProxy picks the level closest to the asked
//!   resolution).
//! - Other SRS: MapProxy's `transform_meshes` (`use_center_px=False`): the target is split by
//!   `divide_quad` until the centre of a quad, mapped by the quad's bilinear map, is within
//!   `max_px_err` (1) target pixel of its exact projection, never below 50 pixels; each quad
//!   is Pillow's `QUAD` transform (`quad_transform`) into the same image (`MESH`).
//!
//! Bilinear and bicubic read RGBA premultiplied by alpha, as Pillow's `Image.transform`
//! converts RGBA to `RGBa` and back (`Convert.c`'s `rgbA2rgba`/`rgba2rgbA` rounding); an
//! opaque source needs neither step (both are identities then). Outside the source a target
//! pixel is 0 (Pillow's `fill`); inside, the filters clamp their window to the source's edge
//! pixels (`XCLIP`, and a row below the source repeats the one above it).
//!
//! The arithmetic is hand-written here because Pillow's transform is in no crate (resize
//! libraries have other kernels, Pillow's `transform` bicubic is its own a = -1 cubic, with
//! its own edge rules and truncation to u8): each filter is `Geometry.c`'s operations on f64
//! in the same order (x86-64 without FMA, as Pillow's wheels, so the results are IEEE-equal;
//! no `mul_add`). For `EXTENT` the source position of a target column does not depend on the
//! row and vice versa, so the horizontal pass of each source row is computed once per target
//! column and kept for the rows that read it (the same f64 values the per-pixel filter would
//! compute); the four bands are computed together, side by side in f64 arrays so that they
//! vectorize (the p's of `BICUBIC`'s horizontal pass and `BILINEAR`'s differences, integers
//! in Pillow, are exact in f64). `tests/gen_transform_goldens.py` prints
//! MapProxy's pixels for the golden test below; `benches/transform.rs` times one 512×512 step.

use image::RgbaImage;

use crate::grid::Bbox;
use crate::srs::Srs;

#[macro_use]
mod avx2;
use avx2::Avx2;

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
/// (nw, sw, se, ne), in source pixels: one entry of MapProxy's `transform_meshes`.
pub type Quad = ([u32; 4], [(f64, f64); 4]);

/// MapProxy's `make_lin_transf(src_bbox, dst_bbox)` (srs.py), its operations in its order:
/// from a cartesian bbox to an image rectangle (y down) or back.
fn lin_transf(src: Bbox, dst: Bbox) -> impl Fn((f64, f64)) -> (f64, f64) {
    move |(x, y)| {
        (
            dst[0] + (x - src[0]) * (dst[2] - dst[0]) / (src[2] - src[0]),
            dst[1] + (src[3] - y) * (dst[3] - dst[1]) / (src[3] - src[1]),
        )
    }
}

/// `(0, 0, w, h)`.
fn rect(size: (u32, u32)) -> Bbox {
    [0.0, 0.0, f64::from(size.0), f64::from(size.1)]
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

/// MapProxy's `_no_transformation_needed`: the same size and SRS, and each bbox edge within a
/// tenth of a pixel (`bbox_equals` with MapProxy's deltas: x's for minx and miny, y's for
/// maxx and maxy).
fn no_transformation_needed(src_size: (u32, u32), w: &Warp<'_>) -> bool {
    let (sb, db, ds) = (w.src_bbox, w.dst_bbox, w.dst_size);
    let xres = (db[2] - db[0]) / f64::from(ds.0);
    let yres = (db[3] - db[1]) / f64::from(ds.1);
    let (xd, yd) = (xres / 10.0, yres / 10.0);
    src_size == ds
        && w.src_srs == w.dst_srs
        && (sb[0] - db[0]).abs() < xd
        && (sb[1] - db[1]).abs() < xd
        && (sb[2] - db[2]).abs() < yd
        && (sb[3] - db[3]).abs() < yd
}

/// `_transform_simple`'s test for a crop: source and target resolutions within a tenth of a
/// pixel of the target size.
fn same_resolution(src_size: (u32, u32), w: &Warp<'_>) -> bool {
    let (sb, db, ds) = (w.src_bbox, w.dst_bbox, w.dst_size);
    let src_res = (
        (sb[0] - sb[2]) / f64::from(src_size.0),
        (sb[1] - sb[3]) / f64::from(src_size.1),
    );
    let dst_res = (
        (db[0] - db[2]) / f64::from(ds.0),
        (db[1] - db[3]) / f64::from(ds.1),
    );
    let tenth = (
        (dst_res.0 / (f64::from(ds.0) * 10.0)).abs(),
        (dst_res.1 / (f64::from(ds.1) * 10.0)).abs(),
    );
    (src_res.0 - dst_res.0).abs() < tenth.0 && (src_res.1 - dst_res.1).abs() < tenth.1
}

/// Whether [`transform`] of a `src_size` image keeps its pixels as they are: nearest
/// neighbour, the image itself, or a crop (the same SRS and resolutions within a tenth of a
/// pixel, MapProxy's `_transform_simple` crop, image/transform.py:107-116). Otherwise Pillow
/// resamples it after `img_for_resampling`, which turns a paletted image into its palette's
/// mode.
pub fn keeps_pixels(src_size: (u32, u32), w: &Warp<'_>) -> bool {
    if w.resampling == Resampling::Nearest || no_transformation_needed(src_size, w) {
        return true;
    }
    if w.src_srs != w.dst_srs || src_size.0 == 0 || src_size.1 == 0 {
        return false;
    }
    same_resolution(src_size, w)
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

/// [`transform`] of a source whose opacity may be known: an opaque source is resampled
/// without scanning it for alpha, and the result says whether it is known to be opaque, so
/// that the map's encoder need not scan it either (each scan of a 1024×1024 map was 3% of its
/// time).
pub fn transform_known(src: Known<&RgbaImage>, warp: &Warp<'_>) -> Known<RgbaImage> {
    let w = *warp;
    let src_size = src.image.dimensions();
    if no_transformation_needed(src_size, &w) {
        return Known {
            image: src.image.clone(),
            opaque: src.opaque,
        };
    }
    if w.dst_size.0 == 0 || w.dst_size.1 == 0 {
        return Known::unknown(RgbaImage::new(w.dst_size.0, w.dst_size.1));
    }
    if w.src_srs == w.dst_srs {
        return transform_simple(src, &w);
    }
    let quads = mesh(
        src_size, w.src_bbox, w.src_srs, w.dst_size, w.dst_bbox, w.dst_srs,
    );
    let image = premultiplied(src, w.resampling, |s| {
        let mut out = RgbaImage::new(w.dst_size.0, w.dst_size.1);
        fill_quads(s, &mut out, &quads, w.resampling);
        out
    });
    Known::unknown(image)
}

/// `f` of the source as Pillow's `transform` filters it: for bilinear and bicubic, RGBA
/// premultiplied by alpha (`RGBa`) and the result divided back; as it is for nearest, or when
/// every alpha is 255 (both conversions are identities then).
fn premultiplied(
    src: Known<&RgbaImage>,
    resampling: Resampling,
    f: impl FnOnce(&Source<'_>) -> RgbaImage,
) -> RgbaImage {
    let straight = src.opaque
        || resampling == Resampling::Nearest
        || crate::image::codec::all_opaque(src.image.as_raw());
    if straight {
        return f(&Source::new(src.image));
    }
    let pre = premultiply(src.image);
    let mut out = f(&Source::new(&pre));
    unpremultiply(&mut out);
    out
}

/// Pillow's RGBA → RGBa (`rgbA2rgba`): each colour times alpha / 255, rounded as its
/// `MULDIV255`.
fn premultiply(img: &RgbaImage) -> RgbaImage {
    let mut out = img.clone();
    let buf: &mut [u8] = &mut out;
    with_avx2!(premultiply_avx2, (buf: &mut [u8]) -> (), premultiply_bytes(buf));
    out
}

/// [`premultiply`] in place, without branches so that it vectorizes: alpha 255 gives each
/// colour back (`MULDIV255(c, 255)` is c), and every intermediate fits in 16 bits.
#[inline(always)]
fn premultiply_bytes(buf: &mut [u8]) {
    for p in buf.chunks_exact_mut(4) {
        let a = u16::from(p[3]);
        for c in &mut p[..3] {
            let t = u16::from(*c) * a + 128;
            *c = (((t >> 8) + t) >> 8) as u8;
        }
    }
}

/// Pillow's RGBa → RGBA (`rgba2rgbA`): each colour times 255 / alpha (truncated, at most
/// 255); alpha 0 and 255 as they are.
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

/// Same SRS (`_transform_simple`): a crop, or Pillow's `EXTENT` transform of the source
/// rectangle under the target bbox. Known to be opaque when the source is and every target
/// pixel has a source.
fn transform_simple(src: Known<&RgbaImage>, w: &Warp<'_>) -> Known<RgbaImage> {
    let src_size = src.image.dimensions();
    let to_src_px = lin_transf(w.src_bbox, rect(src_size));
    let (minx, miny) = to_src_px((w.dst_bbox[0], w.dst_bbox[3]));
    let (maxx, maxy) = to_src_px((w.dst_bbox[2], w.dst_bbox[1]));
    if same_resolution(src_size, w) {
        // int(round(minx)): Python rounds half to even
        let (x, y) = (minx.round_ties_even(), miny.round_ties_even());
        return crop(src, x as i64, y as i64, w.dst_size);
    }
    let mut inside = false;
    let image = premultiplied(src, w.resampling, |s| {
        let (out, all) = extent(s, w.dst_size, [minx, miny, maxx, maxy], w.resampling);
        inside = all;
        out
    });
    Known {
        image,
        opaque: src.opaque && inside,
    }
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

/// The quads of MapProxy's `transform_meshes` (`max_px_err=1`, `use_center_px=False`), in
/// its order: corners projected exactly, a quad kept when narrower or lower than 50 pixels or
/// when its centre's error is below one target pixel (`is_good`), else split by
/// `divide_quad`.
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
    let (src_rect, dst_rect) = (rect(src_size), rect(dst_size));
    let to_src_px = lin_transf(src_bbox, src_rect);
    let to_src_w = lin_transf(src_rect, src_bbox);
    let to_dst_w = lin_transf(dst_rect, dst_bbox);
    let res = (dst_bbox[2] - dst_bbox[0]) / f64::from(dst_size.0);
    let max_err = res;
    let m = Mesher {
        corners: &|q: &[u32; 4]| {
            [(q[0], q[1]), (q[0], q[3]), (q[2], q[3]), (q[2], q[1])].map(|(x, y)| {
                let w = to_dst_w((f64::from(x) + 0.0, f64::from(y) + 0.0));
                to_src_px(dst_srs.transform_to(src_srs, w))
            })
        },
        is_good: &|q: &[u32; 4], c: &[(f64, f64); 4]| {
            let (w, h) = (q[2] - q[0], q[3] - q[1]);
            if w < 50 || h < 50 {
                return true;
            }
            let xc = f64::from(q[0]) + f64::from(w) / 2.0 - 0.5;
            let yc = f64::from(q[1]) + f64::from(h) / 2.0 - 0.5;
            let dst_w = to_dst_w((xc, yc));
            let src_px = center_quad_transform(q, c);
            let real = src_srs.transform_to(dst_srs, to_src_w(src_px));
            let (ex, ey) = ((dst_w.0 - real.0).abs(), (dst_w.1 - real.1).abs());
            // Python's max(a, b): b only when b > a (a NaN `a` stays)
            let err = if ey > ex { ey } else { ex };
            err < max_err
        },
    };
    let mut out = Vec::new();
    if dst_size.0 > 0 && dst_size.1 > 0 {
        m.add(&[[0, 0, dst_size.0, dst_size.1]], &mut out);
    }
    out
}

/// A quad's source corners (nw, sw, se, ne), in source pixels.
type Corners = [(f64, f64); 4];

/// `transform_meshes`'s closures.
struct Mesher<'a> {
    corners: &'a dyn Fn(&[u32; 4]) -> Corners,
    is_good: &'a dyn Fn(&[u32; 4], &Corners) -> bool,
}

impl Mesher<'_> {
    /// `add_meshes`: depth first, in `divide_quad`'s order (quads of at least 50 pixels
    /// halve, so the depth is the logarithm of the size).
    fn add(&self, quads: &[[u32; 4]], out: &mut Vec<Quad>) {
        for q in quads {
            let c = (self.corners)(q);
            if (self.is_good)(q, &c) {
                out.push((*q, c));
            } else {
                self.add(&divide_quad(q), out);
            }
        }
    }
}

/// MapProxy's `divide_quad`: halves across the long side of a quad twice as long as wide,
/// else four.
fn divide_quad(q: &[u32; 4]) -> Vec<[u32; 4]> {
    let (w, h) = (q[2] - q[0], q[3] - q[1]);
    // int(quad[0] + w / 2): the floor for these non-negative values
    let (xc, yc) = (q[0] + w / 2, q[1] + h / 2);
    if u64::from(w) > 2 * u64::from(h) {
        return vec![[q[0], q[1], xc, q[3]], [xc, q[1], q[2], q[3]]];
    }
    if u64::from(h) > 2 * u64::from(w) {
        return vec![[q[0], q[1], q[2], yc], [q[0], yc, q[2], q[3]]];
    }
    vec![
        [q[0], q[1], xc, yc],
        [xc, q[1], q[2], yc],
        [q[0], yc, xc, q[3]],
        [xc, yc, q[2], q[3]],
    ]
}

/// The coefficients of Pillow's `QUAD` transform of a `w`×`h` box (`Image.__transformer`;
/// MapProxy's `center_quad_transform` computes the same): x = a0 + a1·s + a2·t + a3·s·t,
/// y = a4 + a5·s + a6·t + a7·s·t.
fn quad_coefficients(w: u32, h: u32, c: &[(f64, f64); 4]) -> [f64; 8] {
    let [nw, sw, se, ne] = *c;
    let (x0, y0) = nw;
    let a_s = 1.0 / f64::from(w);
    let a_t = 1.0 / f64::from(h);
    [
        x0,
        (ne.0 - x0) * a_s,
        (sw.0 - x0) * a_t,
        (se.0 - sw.0 - ne.0 + x0) * a_s * a_t,
        y0,
        (ne.1 - y0) * a_s,
        (sw.1 - y0) * a_t,
        (se.1 - sw.1 - ne.1 + y0) * a_s * a_t,
    ]
}

/// `quad_transform` of Geometry.c at (s, t).
#[inline(always)]
fn quad_at(a: &[f64; 8], s: f64, t: f64) -> (f64, f64) {
    (
        a[0] + a[1] * s + a[2] * t + a[3] * s * t,
        a[4] + a[5] * s + a[6] * t + a[7] * s * t,
    )
}

/// MapProxy's `center_quad_transform`: the quad's map at its centre pixel.
fn center_quad_transform(q: &[u32; 4], c: &[(f64, f64); 4]) -> (f64, f64) {
    let (w, h) = (q[2] - q[0], q[3] - q[1]);
    let a = quad_coefficients(w, h, c);
    let x = f64::from(w) / 2.0 - 0.5;
    let y = f64::from(h) / 2.0 - 0.5;
    quad_at(&a, x, y)
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

/// A source image as Pillow's filters read it: RGBA rows (`image32`, four bands).
pub struct Source<'a> {
    raw: &'a [u8],
    w: i32,
    h: i32,
    wf: f64,
    hf: f64,
}

impl<'a> Source<'a> {
    fn new(img: &'a RgbaImage) -> Source<'a> {
        // images are far smaller than 2^31 pixels a side
        let (w, h) = (
            i32::try_from(img.width()).unwrap_or(i32::MAX),
            i32::try_from(img.height()).unwrap_or(i32::MAX),
        );
        Source {
            raw: img.as_raw(),
            w,
            h,
            wf: f64::from(w),
            hf: f64::from(h),
        }
    }

    /// The pixel (x, y), both inside.
    #[inline(always)]
    fn px(&self, x: i32, y: i32) -> [u8; 4] {
        let at = (y as usize * self.w as usize + x as usize) * 4;
        match self.raw.get(at..at + 4) {
            Some(p) => [p[0], p[1], p[2], p[3]],
            None => [0; 4],
        }
    }

    /// `XCLIP`.
    #[inline(always)]
    fn xclip(&self, x: i32) -> i32 {
        x.clamp(0, self.w - 1)
    }

    /// `YCLIP`.
    #[inline(always)]
    fn yclip(&self, y: i32) -> i32 {
        y.clamp(0, self.h - 1)
    }

    /// The one colour of the pixels `x0..=x1` × `y0..=y1` (all inside the source), `None`
    /// when they are not all that pixel or not all inside. Every filter reads a window of
    /// such a rectangle as its colour, exactly: nearest takes the pixel; with equal values
    /// `BILINEAR`'s b - a and `BICUBIC`'s p2, p3 and p4 are 0, so each pass is p1 + d·0 = p1
    /// (d is finite), and the clip gives the byte back. So a block of target pixels whose
    /// windows all lie in one such rectangle is that colour, without its filter.
    #[inline(always)]
    fn uniform(&self, x0: i32, x1: i32, y0: i32, y1: i32) -> Option<[u8; 4]> {
        if y0 < 0 || y1 >= self.h || y1 < y0 {
            return None;
        }
        let p = self.uniform_row(x0, x1, y0)?;
        for y in y0 + 1..=y1 {
            if self.uniform_row(x0, x1, y)? != p {
                return None;
            }
        }
        Some(p.to_ne_bytes())
    }

    /// The one colour of the pixels `x0..=x1` of row `y` (inside the source) as a word,
    /// `None` when they are not all that pixel or not all inside.
    #[inline(always)]
    fn uniform_row(&self, x0: i32, x1: i32, y: i32) -> Option<u32> {
        #[cfg(test)]
        if tests::NO_UNIFORM.with(std::cell::Cell::get) {
            return None;
        }
        if x0 < 0 || y < 0 || x1 >= self.w || y >= self.h || x1 < x0 {
            return None;
        }
        let start = y as usize * self.w as usize * 4;
        let row = self
            .raw
            .get(start + x0 as usize * 4..start + (x1 as usize + 1) * 4)?;
        let p = u32::from_ne_bytes([row[0], row[1], row[2], row[3]]);
        // the last pixel first: a textured source fails here
        if row[row.len() - 4..] != row[..4] {
            return None;
        }
        // the pixels' differences from p or'ed, without an exit per pixel (the compiler
        // widens it)
        let diff = row.chunks_exact(4).fold(0, |d, c| {
            d | (u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ p)
        });
        if diff != 0 {
            return None;
        }
        #[cfg(test)]
        tests::UNIFORM_HITS.with(|h| h.set(h.get() + 1));
        Some(p)
    }

    /// [`Source::uniform`] of the rectangle every filter window of a block of target pixels
    /// reads, from the source positions of the block's four corner pixels: the map is
    /// bilinear (`MESH`'s quads), so each pixel's position lies
    /// between the corners' (one pixel more on each side covers the rounding). `None` also
    /// when a position is not finite or near an edge (the clamped windows there are the
    /// filters' own).
    #[inline(always)]
    fn uniform_block(&self, corners: [(f64, f64); 4]) -> Option<[u8; 4]> {
        if corners.iter().any(|&(x, y)| x.is_nan() || y.is_nan()) {
            return None;
        }
        let (x, y) = corners[0];
        let (mut xlo, mut xhi, mut ylo, mut yhi) = (x, x, y, y);
        for &(x, y) in &corners[1..] {
            xlo = if x < xlo { x } else { xlo };
            xhi = if x > xhi { x } else { xhi };
            ylo = if y < ylo { y } else { ylo };
            yhi = if y > yhi { y } else { yhi };
        }
        if !(xlo >= 0.0 && ylo >= 0.0 && xhi < self.wf && yhi < self.hf) {
            return None;
        }
        // BICUBIC's window is x - 1 ..= x + 2 of x = floor(xin - 0.5), the others' within it
        self.uniform(
            floor_i(xlo - 0.5) - 2,
            floor_i(xhi - 0.5) + 3,
            floor_i(ylo - 0.5) - 2,
            floor_i(yhi - 0.5) + 3,
        )
    }

    /// The filters' test: (xin, yin) inside the source (false for NaN, where Pillow's
    /// conversions are undefined).
    #[inline(always)]
    fn inside(&self, xin: f64, yin: f64) -> bool {
        xin >= 0.0 && xin < self.wf && yin >= 0.0 && yin < self.hf
    }
}

/// `COORD`: -1 below zero, else truncated (NaN: -1, outside as in Pillow's x86 build; a huge
/// value saturates, outside too).
#[inline(always)]
fn coord(v: f64) -> i32 {
    if v < 0.0 || v.is_nan() {
        -1
    } else {
        v as i32
    }
}

/// `FLOOR` (of a position inside the source, so within i32): below zero, the truncation
/// (towards zero) less one unless `v` is whole (without SSE4.1 `f64::floor` is a call).
#[inline(always)]
fn floor_i(v: f64) -> i32 {
    let t = v as i32;
    if v < 0.0 && f64::from(t) != v {
        t.saturating_sub(1)
    } else {
        t
    }
}

/// `nearest_filter32`.
#[inline(always)]
fn nearest(s: &Source<'_>, xin: f64, yin: f64) -> Option<[u8; 4]> {
    let (x, y) = (coord(xin), coord(yin));
    if x < 0 || x >= s.w || y < 0 || y >= s.h {
        return None;
    }
    Some(s.px(x, y))
}

/// `BILINEAR(v, a, b, d)` of one source row: a + (b - a)·d, the difference in integers
/// (exact in f64 too).
#[inline(always)]
fn lerp_row(a: [u8; 4], b: [u8; 4], d: f64) -> [f64; 4] {
    lerp(a.map(f64::from), b.map(f64::from), d)
}

/// `BILINEAR(v, a, b, d)` of one source row's values (bytes as f64).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn lerp(a: [f64; 4], b: [f64; 4], d: f64) -> [f64; 4] {
    let mut out = [0.0; 4];
    for k in 0..4 {
        out[k] = a[k] + (b[k] - a[k]) * d;
    }
    out
}

/// `BILINEAR(v1, v1, v2, dy)` and the cast to u8 (truncation; the value is in 0..=255).
#[inline(always)]
#[allow(clippy::needless_range_loop)]
fn lerp_out(v1: [f64; 4], v2: [f64; 4], d: f64) -> [u8; 4] {
    let mut out = [0; 4];
    for k in 0..4 {
        out[k] = (v1[k] + (v2[k] - v1[k]) * d) as u8;
    }
    out
}

/// `BILINEAR_HEAD`: the cell's first column and row and the fractions, or `None` outside.
#[inline(always)]
fn bilinear_head(s: &Source<'_>, xin: f64, yin: f64) -> Option<(i32, i32, f64, f64)> {
    if !s.inside(xin, yin) {
        return None;
    }
    let (xin, yin) = (xin - 0.5, yin - 0.5);
    let (x, y) = (floor_i(xin), floor_i(yin));
    Some((x, y, xin - f64::from(x), yin - f64::from(y)))
}

/// `bilinear_filter32RGB` (four bands).
#[inline(always)]
fn bilinear(s: &Source<'_>, xin: f64, yin: f64) -> Option<[u8; 4]> {
    let (x, y, dx, dy) = bilinear_head(s, xin, yin)?;
    if x >= 0 && y >= 0 && x + 1 < s.w && y + 1 < s.h {
        // the cell is inside; four equal pixels are that pixel (a + 0·d is a)
        let (a, b) = (s.px(x, y), s.px(x + 1, y));
        let (c, d) = (s.px(x, y + 1), s.px(x + 1, y + 1));
        if a == b && a == c && a == d {
            return Some(a);
        }
        return Some(lerp_out(lerp_row(a, b, dx), lerp_row(c, d, dx), dy));
    }
    let (x0, x1) = (s.xclip(x), s.xclip(x + 1));
    let r = s.yclip(y);
    let v1 = lerp_row(s.px(x0, r), s.px(x1, r), dx);
    let v2 = if y + 1 >= 0 && y + 1 < s.h {
        lerp_row(s.px(x0, y + 1), s.px(x1, y + 1), dx)
    } else {
        v1
    };
    Some(lerp_out(v1, v2, dy))
}

/// `BICUBIC(v, v1, v2, v3, v4, d)` of one source row: Pillow's p's are in integers (the
/// bytes are promoted to int), which f64 holds exactly (the same values as int arithmetic
/// converted), then the polynomial in d.
#[inline(always)]
fn cubic_row(p: [[u8; 4]; 4], d: f64) -> [f64; 4] {
    let mut v = [[0.0; 4]; 4];
    for m in 0..4 {
        for k in 0..4 {
            v[m][k] = f64::from(p[m][k]);
        }
    }
    cubic(v, d)
}

/// `BICUBIC(v, v1, v2, v3, v4, d)` of four bands, each band's operations in Pillow's order
/// (the bands side by side, so that they vectorize).
// indexing every band's arrays alike is what the vectorizer sees through
#[allow(clippy::needless_range_loop)]
#[inline(always)]
fn cubic([v1, v2, v3, v4]: [[f64; 4]; 4], d: f64) -> [f64; 4] {
    let mut out = [0.0; 4];
    for k in 0..4 {
        out[k] = cubic1(v1[k], v2[k], v3[k], v4[k], d);
    }
    out
}

/// `BICUBIC(v, v1, v2, v3, v4, d)` of one band.
#[inline(always)]
fn cubic1(v1: f64, v2: f64, v3: f64, v4: f64, d: f64) -> f64 {
    let p1 = v2;
    let p2 = -v1 + v3;
    let p3 = 2.0 * (v1 - v2) + v3 - v4;
    let p4 = -v1 + v2 - v3 + v4;
    p1 + d * (p2 + d * (p3 + d * p4))
}

/// `BICUBIC(v1, v1, v2, v3, v4, dy)` of the four rows' values (f64) and the clip to u8
/// (`<= 0` → 0, `>= 255` → 255, else truncated: what a saturating cast does).
#[inline(always)]
fn cubic_out(v: [[f64; 4]; 4], d: f64) -> [u8; 4] {
    let c = cubic(v, d);
    let mut out = [0; 4];
    for k in 0..4 {
        out[k] = c[k] as u8;
    }
    out
}

/// `BICUBIC_HEAD`: the window's first column and row (one before the cell) and the
/// fractions, or `None` outside.
#[inline(always)]
fn bicubic_head(s: &Source<'_>, xin: f64, yin: f64) -> Option<(i32, i32, f64, f64)> {
    let (x, y, dx, dy) = bilinear_head(s, xin, yin)?;
    Some((x - 1, y - 1, dx, dy))
}

/// The source rows `BICUBIC_BODY` reads for a window from row `y`: the first clamped, each
/// next one outside the source repeating the one before.
#[inline(always)]
fn cubic_rows(s: &Source<'_>, y: i32) -> [i32; 4] {
    let mut r = [s.yclip(y); 4];
    for k in 1..4 {
        let j = y + k as i32;
        r[k] = if j >= 0 && j < s.h { j } else { r[k - 1] };
    }
    r
}

/// `bicubic_filter32RGB` (four bands).
#[inline(always)]
fn bicubic(s: &Source<'_>, xin: f64, yin: f64, simd: Option<Avx2>) -> Option<[u8; 4]> {
    let (x, y, dx, dy) = match simd {
        Some(k) => k.bicubic_head(s, xin, yin)?,
        None => bicubic_head(s, xin, yin)?,
    };
    if x >= 0 && y >= 0 && x + 3 < s.w && y + 3 < s.h {
        // the window is inside: four rows of 16 bytes
        let stride = s.w as usize * 4;
        let base = y as usize * stride + x as usize * 4;
        let mut rows = [[0u8; 16]; 4];
        for (m, row) in rows.iter_mut().enumerate() {
            let at = base + m * stride;
            if let Some(r) = s.raw.get(at..at + 16) {
                row.copy_from_slice(r);
            }
        }
        if let Some(k) = simd {
            return Some(k.bicubic_window(&rows, dx, dy));
        }
        // 16 equal pixels are that pixel: every p but p1 is 0 in both passes (exactly: the
        // polynomial adds d·0 to p1), and the clip gives the byte back
        let first = [rows[0][0], rows[0][1], rows[0][2], rows[0][3]];
        let splat =
            u128::from(u32::from_ne_bytes(first)) * 0x0000_0001_0000_0001_0000_0001_0000_0001;
        if rows.iter().all(|r| u128::from_ne_bytes(*r) == splat) {
            return Some(first);
        }
        let mut v = [[0.0; 4]; 4];
        for (vm, row) in v.iter_mut().zip(&rows) {
            let mut p = [[0u8; 4]; 4];
            for (n, q) in p.iter_mut().enumerate() {
                q.copy_from_slice(&row[n * 4..n * 4 + 4]);
            }
            *vm = cubic_row(p, dx);
        }
        return Some(cubic_out(v, dy));
    }
    let cols = [s.xclip(x), s.xclip(x + 1), s.xclip(x + 2), s.xclip(x + 3)];
    let rows = cubic_rows(s, y);
    let mut v = [[0.0; 4]; 4];
    for (vm, &r) in v.iter_mut().zip(&rows) {
        *vm = cubic_row(
            [
                s.px(cols[0], r),
                s.px(cols[1], r),
                s.px(cols[2], r),
                s.px(cols[3], r),
            ],
            dx,
        );
    }
    Some(cubic_out(v, dy))
}

/// [`fill_quad_with`]'s filters.
const NEAREST: u8 = 0;
const BILINEAR: u8 = 1;
const BICUBIC: u8 = 2;

/// Pillow's `MESH`: each quad `ImagingGenericTransform`ed as [`fill_quad_with`] says, with
/// `resampling`'s filter.
fn fill_quads(s: &Source<'_>, out: &mut RgbaImage, quads: &[Quad], resampling: Resampling) {
    let simd = Avx2::detect();
    with_avx2!(fill_quads_avx2, (s: &Source<'_>, out: &mut RgbaImage, quads: &[Quad], resampling: Resampling, simd: Option<Avx2>) -> (), {
        for quad in quads {
            match resampling {
                Resampling::Nearest => fill_quad_with::<NEAREST>(s, out, quad, None),
                Resampling::Bilinear => fill_quad_with::<BILINEAR>(s, out, quad, None),
                Resampling::Bicubic => fill_quad_with::<BICUBIC>(s, out, quad, simd),
            }
        }
    })
}

/// One quad of Pillow's `MESH`: `ImagingGenericTransform` of the box with `quad_transform`
/// (positions relative to the box's corner, at pixel centres), 0 where the filter finds no
/// source (`fill`). `F`: the filter, [`Resampling`] as a number (a direct call, inlined: a
/// function passed as `impl Fn` is not inlined into the AVX2 build).
#[inline(always)]
fn fill_quad_with<const F: u8>(
    s: &Source<'_>,
    out: &mut RgbaImage,
    (b, c): &Quad,
    simd: Option<Avx2>,
) {
    if b[2] <= b[0] || b[3] <= b[1] {
        return;
    }
    let a = quad_coefficients(b[2] - b[0], b[3] - b[1], c);
    let (ow, oh) = out.dimensions();
    let (x1, y1) = (b[2].min(ow), b[3].min(oh));
    let width = ow as usize;
    let buf: &mut [u8] = out;
    // in blocks of BLOCK × BLOCK target pixels: a block whose windows all read one colour
    // is that colour (`Source::uniform_block`); the pixels of the others are filtered one by
    // one (each pixel on its own, so the order is free)
    for by in (b[1]..y1).step_by(BLOCK as usize) {
        let by1 = (by + BLOCK).min(y1);
        for bx in (b[0]..x1).step_by(BLOCK as usize) {
            let bx1 = (bx + BLOCK).min(x1);
            // positions relative to the quad's corner, at pixel centres
            let (s0, s1) = (f64::from(bx - b[0]) + 0.5, f64::from(bx1 - 1 - b[0]) + 0.5);
            let (t0, t1) = (f64::from(by - b[1]) + 0.5, f64::from(by1 - 1 - b[1]) + 0.5);
            let one = match F {
                NEAREST => None,
                _ => s.uniform_block([
                    quad_at(&a, s0, t0),
                    quad_at(&a, s1, t0),
                    quad_at(&a, s0, t1),
                    quad_at(&a, s1, t1),
                ]),
            };
            for y in by..by1 {
                let yin = f64::from(y - b[1]) + 0.5;
                let start = (y as usize * width + bx as usize) * 4;
                let end = (y as usize * width + bx1 as usize) * 4;
                let Some(row) = buf.get_mut(start..end) else {
                    return;
                };
                if let Some(p) = one {
                    for px in row.chunks_exact_mut(4) {
                        px.copy_from_slice(&p);
                    }
                    continue;
                }
                for (x, px) in (bx..bx1).zip(row.chunks_exact_mut(4)) {
                    let xin = f64::from(x - b[0]) + 0.5;
                    let (xx, yy) = quad_at(&a, xin, yin);
                    let p = match F {
                        NEAREST => nearest(s, xx, yy),
                        BILINEAR => bilinear(s, xx, yy),
                        _ => bicubic(s, xx, yy, simd),
                    };
                    px.copy_from_slice(&p.unwrap_or([0; 4]));
                }
            }
        }
    }
}

/// The side of the blocks of target pixels that [`Source::uniform_block`] tries at once, and
/// the width of `EXTENT`'s chunks of target columns.
const BLOCK: u32 = 8;

/// Pillow's `EXTENT` transform of the source rectangle `(x0, y0, x1, y1)` (source pixels) to
/// `size`, and whether every target pixel had a source.
fn extent(
    s: &Source<'_>,
    size: (u32, u32),
    [x0, y0, x1, y1]: [f64; 4],
    resampling: Resampling,
) -> (RgbaImage, bool) {
    // Image.__transformer: EXTENT is AFFINE (xs, 0, x0, 0, ys, y0)
    let xs = (x1 - x0) / f64::from(size.0);
    let ys = (y1 - y0) / f64::from(size.1);
    let a = [xs, x0, ys, y0];
    match resampling {
        Resampling::Nearest => scale_affine(s, size, a),
        Resampling::Bilinear => {
            with_avx2!(bilinear_avx2, (s: &Source<'_>, size: (u32, u32), a: [f64; 4]) -> (RgbaImage, bool), extent_filtered::<2>(s, size, a, None))
        }
        Resampling::Bicubic => {
            let simd = Avx2::detect();
            with_avx2!(bicubic_avx2, (s: &Source<'_>, size: (u32, u32), a: [f64; 4], simd: Option<Avx2>) -> (RgbaImage, bool), extent_filtered::<4>(s, size, a, simd))
        }
    }
}

/// `ImagingScaleAffine` (nearest, an affine map without rotation): each target column's
/// source column tabulated by adding the scale to a running position (as Pillow does, not by
/// multiplying), the rows likewise.
fn scale_affine(s: &Source<'_>, size: (u32, u32), [a0, a2, a4, a5]: [f64; 4]) -> (RgbaImage, bool) {
    let w = size.0 as usize;
    let mut out = RgbaImage::new(size.0, size.1);
    let mut xintab = vec![0usize; w];
    let (mut xmin, mut xmax) = (w, 0);
    let mut xo = a2 + a0 * 0.5;
    let mut yo = a5 + a4 * 0.5;
    for (x, t) in xintab.iter_mut().enumerate() {
        let xin = coord(xo);
        if xin >= 0 && xin < s.w {
            xmax = x + 1;
            xmin = xmin.min(x);
            *t = xin as usize;
        }
        xo += a0;
    }
    let mut all = xmin == 0 && xmax == w;
    let buf: &mut [u8] = &mut out;
    let stride = s.w as usize * 4;
    for row in buf.chunks_exact_mut(w * 4) {
        let yi = coord(yo);
        yo += a4;
        if yi < 0 || yi >= s.h {
            all = false;
            continue;
        }
        let src = &s.raw[yi as usize * stride..(yi as usize + 1) * stride];
        for x in xmin..xmax.max(xmin) {
            let at = xintab[x] * 4;
            row[x * 4..x * 4 + 4].copy_from_slice(&src[at..at + 4]);
        }
    }
    (out, all)
}

/// `ImagingGenericTransform` with `affine_transform` and the bilinear (`N` = 2) or bicubic
/// (`N` = 4) filter, for `EXTENT`'s map (no rotation): the source x of a target column is the
/// same on every row, so the columns' windows and fractions are computed once, and the
/// horizontal pass of a source row (the first `BILINEAR`/`BICUBIC` of each row in the
/// filter's body, the same f64 for every target row that reads it) once per target column,
/// kept in `N` slots by row number while the target rows move down the source. The columns
/// go in chunks of [`BLOCK`]: a chunk whose windows on a row all read one colour is that
/// colour (each source row's span of it looked at once, [`Source::uniform_row`]), and only
/// the other chunks make their horizontal passes.
#[inline(always)]
fn extent_filtered<const N: usize>(
    s: &Source<'_>,
    size: (u32, u32),
    [a0, a2, a4, a5]: [f64; 4],
    simd: Option<Avx2>,
) -> (RgbaImage, bool) {
    let w = size.0 as usize;
    let mut out = RgbaImage::new(size.0, size.1);
    // per target column: the window's (clamped) source columns and dx; None: no source
    let cols: Vec<Option<([i32; N], f64)>> = (0..w)
        .map(|x| {
            let xin = x as f64 + 0.5;
            // a0·xin + a1·yin + a2 with a1 = 0: a1·yin is +0
            let xx = a0 * xin + 0.0 + a2;
            if !(xx >= 0.0 && xx < s.wf) {
                return None;
            }
            let xi = xx - 0.5;
            let fx = floor_i(xi);
            let dx = xi - f64::from(fx);
            let first = if N == 4 { fx - 1 } else { fx };
            Some((std::array::from_fn(|k| s.xclip(first + k as i32)), dx))
        })
        .collect();
    let stride = s.w as usize * 4;
    let every_column = cols.iter().all(Option::is_some);
    let mut all = every_column;
    // the target columns in chunks of BLOCK, each with the source columns its windows read
    // (`None`: no column of it has a source)
    let chunks: Vec<Chunk> = (0..w)
        .step_by(BLOCK as usize)
        .map(|start| {
            let end = (start + BLOCK as usize).min(w);
            let span = cols[start..end]
                .iter()
                .flatten()
                .fold(None, |acc, (cs, _)| {
                    let (lo, hi) = (cs[0], cs[N - 1]);
                    Some(match acc {
                        None => (lo, hi),
                        Some((a, b)) => (lo.min(a), hi.max(b)),
                    })
                });
            (start, end, span)
        })
        .collect();
    // a target row's bytes, made before they are copied to the columns with a source
    let mut line = vec![0u8; w * 4];
    // the source rows' pixels as f64, in N slots by row number as the horizontal passes
    // (Pillow promotes each byte it reads; the same values): a row is converted once, when a
    // chunk first needs it
    let mut rows_f64: [Vec<[f64; 4]>; N] = std::array::from_fn(|_| vec![[0.0; 4]; s.w as usize]);
    let mut converted = [false; N];
    // the horizontal pass of a source row at every target column, in N slots by row number:
    // which row each slot holds, and the chunks made of it (a bit each: only the chunks that
    // need it are made)
    let mut slots: [Vec<[f64; 4]>; N] = std::array::from_fn(|_| vec![[0.0; 4]; w]);
    let words = chunks.len().div_ceil(64);
    let mut slot_rows = [-1i32; N];
    let mut made: [Vec<u64>; N] = std::array::from_fn(|_| vec![0u64; words]);
    // and each chunk's colour on that row (a pixel's word, MIXED, or UNKNOWN till looked at)
    const UNKNOWN: u64 = u64::MAX;
    const MIXED: u64 = u64::MAX - 1;
    let mut colours: [Vec<u64>; N] = std::array::from_fn(|_| vec![UNKNOWN; chunks.len()]);
    // the chunks of this target row that go through the filter (a bit each)
    let mut filtered = vec![0u64; words];
    let buf: &mut [u8] = &mut out;
    for (y, orow) in buf.chunks_exact_mut(w * 4).enumerate() {
        let yin = y as f64 + 0.5;
        // a3·xin + a4·yin + a5 with a3 = 0
        let yy = 0.0 + a4 * yin + a5;
        if !(yy >= 0.0 && yy < s.hf) {
            all = false;
            continue;
        }
        let yi = yy - 0.5;
        let fy = floor_i(yi);
        let dy = yi - f64::from(fy);
        let rows: [i32; N] = if N == 4 {
            let r = cubic_rows(s, fy - 1);
            std::array::from_fn(|k| r[k])
        } else {
            let r0 = s.yclip(fy);
            let r1 = if fy + 1 >= 0 && fy + 1 < s.h {
                fy + 1
            } else {
                r0
            };
            std::array::from_fn(|k| if k == 0 { r0 } else { r1 })
        };
        // a slot taking a new row forgets the old one's chunks, colours and f64s
        for &r in &rows {
            // rows of one window are at most N apart: distinct slots
            let k = r as usize % N;
            if slot_rows[k] != r {
                slot_rows[k] = r;
                made[k].fill(0);
                colours[k].fill(UNKNOWN);
                converted[k] = false;
            }
        }
        // the chunks of one colour are done; the others are filtered below, in runs of
        // consecutive chunks (one run per 64 chunks for a textured source)
        filtered.fill(0);
        for (ci, &(start, end, span)) in chunks.iter().enumerate() {
            let Some((c0, c1)) = span else { continue };
            // one colour on each of the window's rows, the same on all (each row's looked at
            // once, for every target row that reads it)
            let mut one = None;
            for &r in &rows {
                let c = &mut colours[r as usize % N][ci];
                if *c == UNKNOWN {
                    *c = s.uniform_row(c0, c1, r).map_or(MIXED, u64::from);
                }
                if *c == MIXED || one.is_some_and(|o| o != *c) {
                    one = None;
                    break;
                }
                one = Some(*c);
            }
            match one {
                Some(p) => {
                    let p = (p as u32).to_ne_bytes();
                    for v in line[start * 4..end * 4].chunks_exact_mut(4) {
                        v.copy_from_slice(&p);
                    }
                }
                None => filtered[ci / 64] |= 1 << (ci % 64),
            }
        }
        for &r in &rows {
            let k = r as usize % N;
            for (wi, (m, f)) in made[k].iter_mut().zip(&filtered).enumerate() {
                let todo = *f & !*m;
                *m |= todo;
                for (a, b) in bit_runs(todo) {
                    if !converted[k] {
                        converted[k] = true;
                        let src = &s.raw[r as usize * stride..(r as usize + 1) * stride];
                        for (f, b) in rows_f64[k].iter_mut().zip(src.chunks_exact(4)) {
                            *f = [b[0], b[1], b[2], b[3]].map(f64::from);
                        }
                    }
                    let px = &rows_f64[k];
                    let (start, end) = (chunks[wi * 64 + a].0, chunks[wi * 64 + b - 1].1);
                    for (v, col) in slots[k][start..end].iter_mut().zip(&cols[start..end]) {
                        let Some((cs, dx)) = col else { continue };
                        let at = |m: usize| px[cs[m % N] as usize];
                        *v = if N == 4 {
                            cubic([at(0), at(1), at(2), at(3)], *dx)
                        } else {
                            lerp(at(0), at(1), *dx)
                        };
                    }
                }
            }
        }
        // the vertical pass: one dy for the whole row, so a flat loop over its f64s (the
        // bands of every column), which the compiler vectorizes
        for (wi, f) in filtered.iter().enumerate() {
            for (a, b) in bit_runs(*f) {
                let (start, end) = (chunks[wi * 64 + a].0, chunks[wi * 64 + b - 1].1);
                let pixels = |m: usize| &slots[rows[m % N] as usize % N][start..end];
                let vals = &mut line[start * 4..end * 4];
                if let (4, Some(k)) = (N, simd) {
                    k.cubic_columns([pixels(0), pixels(1), pixels(2), pixels(3)], dy, vals);
                } else if N == 4 {
                    let [v0, v1, v2, v3] = [0, 1, 2, 3].map(|m| pixels(m).as_flattened());
                    for (i, o) in vals.iter_mut().enumerate() {
                        *o = cubic1(v0[i], v1[i], v2[i], v3[i], dy) as u8;
                    }
                } else {
                    let [v0, v1] = [0, 1].map(|m| pixels(m).as_flattened());
                    for (i, o) in vals.iter_mut().enumerate() {
                        *o = (v0[i] + (v1[i] - v0[i]) * dy) as u8;
                    }
                }
            }
        }
        if every_column {
            orow.copy_from_slice(&line);
        } else {
            for ((opx, v), col) in orow
                .chunks_exact_mut(4)
                .zip(line.chunks_exact(4))
                .zip(&cols)
            {
                if col.is_some() {
                    opx.copy_from_slice(v);
                }
            }
        }
    }
    (out, all)
}

/// A chunk of [`extent_filtered`]'s target columns: the first, the one after the last, and the
/// first and last source columns its windows read (`None`: no column of it has a source).
type Chunk = (usize, usize, Option<(i32, i32)>);

/// The runs `a..b` of consecutive set bits of `w`, lowest first.
#[inline(always)]
fn bit_runs(mut w: u64) -> impl Iterator<Item = (usize, usize)> {
    std::iter::from_fn(move || {
        if w == 0 {
            return None;
        }
        let a = w.trailing_zeros();
        // the ones from bit a on (all of them: 64 - a)
        let b = a + (!(w >> a)).trailing_zeros();
        w = if b >= 64 { 0 } else { w & !((1u64 << b) - 1) };
        Some((a as usize, b as usize))
    })
}

/// The colour Pillow's `transform` filter gives at (x, y) of `src` (source pixels, centres
/// at i + 0.5; straight RGBA as it is, no premultiplying): transparent where it has none.
pub fn sample(src: &RgbaImage, x: f64, y: f64, resampling: Resampling) -> [u8; 4] {
    let s = Source::new(src);
    match resampling {
        Resampling::Nearest => nearest(&s, x, y),
        Resampling::Bilinear => bilinear(&s, x, y),
        Resampling::Bicubic => bicubic(&s, x, y, None),
    }
    .unwrap_or([0; 4])
}

#[cfg(test)]
mod tests {
    std::thread_local! {
        /// Set: this thread runs the filters' baseline build (the golden test runs both).
        pub(super) static BASELINE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// Set: `Source::uniform_row` finds nothing, so every pixel goes through its filter.
        pub(super) static NO_UNIFORM: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
        /// How often `Source::uniform_row` found one colour.
        pub(super) static UNIFORM_HITS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

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

    /// The source images of `tests/gen_transform_goldens.py`: codec.rs's golden images
    /// (`gradient` as MapProxy holds an RGB image: opaque), and `pal`, a paletted image as its
    /// colours (palette entry i = (3i, 7i, 11i) mod 256 at index (5x + 3y) mod 256).
    fn golden_source(name: &str) -> RgbaImage {
        let (px, w, h) = match name {
            "gradient" => ("gradient", 300, 200),
            "noise" => ("noise", 300, 200),
            "map" => ("map", 600, 400),
            _ => ("pal", 200, 150),
        };
        RgbaImage::from_fn(w, h, |x, y| {
            if px == "pal" {
                let i = (x * 5 + y * 3) % 256;
                image::Rgba([
                    (i * 3 % 256) as u8,
                    (i * 7 % 256) as u8,
                    (i * 11 % 256) as u8,
                    255,
                ])
            } else {
                image::Rgba(crate::image::codec::tests::golden_px(px, x, y))
            }
        })
    }

    /// `gen_transform_goldens.py`'s warps: (case name) → (source SRS, source bbox, target SRS,
    /// target size, target bbox), for a source of `w`×`h`.
    fn golden_warp(
        case: &str,
        w: u32,
        h: u32,
    ) -> (&'static str, Bbox, &'static str, (u32, u32), Bbox) {
        let (fw, fh) = (f64::from(w) * 10.0, f64::from(h) * 10.0);
        let same = |size, b| ("EPSG:3857", [0.0, 0.0, fw, fh], "EPSG:3857", size, b);
        match case {
            "up1.37" => same(
                (256, 256),
                [123.4, 456.7, 123.4 + 256.0 * 7.3, 456.7 + 256.0 * 7.3],
            ),
            "down1.61" => same(
                (140, 90),
                [77.7, 33.3, 77.7 + 140.0 * 16.1, 33.3 + 90.0 * 16.1],
            ),
            "outside" => same((250, 170), [-500.3, -300.7, fw + 400.0, fh + 250.0]),
            "edge3.1" => same((160, 110), [fw - 400.0, fh - 300.0, fw + 96.0, fh + 41.0]),
            "aniso" => same(
                (120, 150),
                [1000.0, 200.0, 1000.0 + 120.0 * 12.5, 200.0 + 150.0 * 8.3],
            ),
            "crop" => same((100, 80), [125.0, 35.0, 1125.0, 835.0]),
            "3857-4326" | "pal-3857-4326" => (
                "EPSG:3857",
                [800_000.0, 6_000_000.0, 1_400_000.0, 6_400_000.0],
                "EPSG:4326",
                if case == "3857-4326" {
                    (300, 250)
                } else {
                    (180, 150)
                },
                [7.5, 47.3, 12.2, 49.5],
            ),
            "4326-3857" => (
                "EPSG:4326",
                [5.0, 45.0, 15.0, 52.0],
                "EPSG:3857",
                (400, 350),
                [600_000.0, 5_700_000.0, 1_600_000.0, 6_700_000.0],
            ),
            "25832-3857" => (
                "EPSG:25832",
                [300_000.0, 5_200_000.0, 900_000.0, 5_600_000.0],
                "EPSG:3857",
                (320, 200),
                [700_000.0, 6_000_000.0, 1_500_000.0, 6_500_000.0],
            ),
            "world-3857-4326" => (
                "EPSG:3857",
                [-MERC_MAX, -MERC_MAX, MERC_MAX, MERC_MAX],
                "EPSG:4326",
                (360, 180),
                [-180.0, -90.0, 180.0, 90.0],
            ),
            _ => unreachable!("{case}"),
        }
    }

    /// `src` transformed by the golden warp `case` with the resampling named `r`.
    fn golden_transformed(
        src: &RgbaImage,
        case: &str,
        r: &str,
    ) -> Result<RgbaImage, crate::srs::SrsError> {
        let (s, sb, d, size, db) = golden_warp(case, src.width(), src.height());
        let (s, d) = (Srs::get(s)?, Srs::get(d)?);
        let warp = Warp {
            src_bbox: sb,
            src_srs: &s,
            dst_size: size,
            dst_bbox: db,
            dst_srs: &d,
            resampling: Resampling::parse(r).expect("resampling"),
        };
        Ok(transform(src, &warp))
    }

    /// MapProxy 7's `ImageTransformer.transform` (Pillow 13): the md5 of its result's pixels
    /// (RGBA, or RGB for an RGB result: our alpha is dropped there) for each source, warp and
    /// resampling, from `tests/gen_transform_goldens.py`: Pillow's `EXTENT` (same SRS: up,
    /// down, anisotropic, reaching outside the source, a crop) and `transform_meshes` with
    /// `MESH` (other SRS).
    #[test]
    fn transform_is_mapproxys_pixel_for_pixel() -> Result<(), crate::srs::SrsError> {
        use md5::{Digest, Md5};
        #[rustfmt::skip]
        let cases: [(&str, &str, &str, &str, bool); 87] = [
            ("gradient", "up1.37", "nearest", "0a9fcaf7b77f7a0af8c6c4e62454bec9", true),
            ("gradient", "up1.37", "bilinear", "3db9e96da51e9d35d3f7e141566bce5e", true),
            ("gradient", "up1.37", "bicubic", "352673e8a787c1ce94314e75c4dfb891", true),
            ("gradient", "down1.61", "nearest", "4aed999fc539fb4b15ed126883aa6587", true),
            ("gradient", "down1.61", "bilinear", "f0bcac4ab67a8ecc94653d7ab3bfbcdb", true),
            ("gradient", "down1.61", "bicubic", "e5d523d3bdf9a09388932e9f9af92fa2", true),
            ("gradient", "outside", "nearest", "82ddf73004451350e9d720c95d193429", true),
            ("gradient", "outside", "bilinear", "e299e82297715277ca7ea233600988ea", true),
            ("gradient", "outside", "bicubic", "190db760feba798c3c13e484a8ff8508", true),
            ("gradient", "edge3.1", "nearest", "600cd2f9c5073559069b74d0a086c161", true),
            ("gradient", "edge3.1", "bilinear", "ad5f775a300d47d0aceef51e86d247fb", true),
            ("gradient", "edge3.1", "bicubic", "3e4f69ad7daddf9d2bcf0c801dd398e4", true),
            ("gradient", "aniso", "nearest", "d641383a1d0899ad9c4b008897911f12", true),
            ("gradient", "aniso", "bilinear", "f5589407ca2318662fb2675bc3770d0d", true),
            ("gradient", "aniso", "bicubic", "1273becd0193963bdf2748fd07dc70c9", true),
            ("gradient", "crop", "nearest", "bebedba0894193332b027c6e47681f15", true),
            ("gradient", "crop", "bilinear", "bebedba0894193332b027c6e47681f15", true),
            ("gradient", "crop", "bicubic", "bebedba0894193332b027c6e47681f15", true),
            ("noise", "up1.37", "nearest", "f50271590845ea128bc8f452dd8e0b7a", false),
            ("noise", "up1.37", "bilinear", "6b19cce8207fc0d32a01ea07650d5d3b", false),
            ("noise", "up1.37", "bicubic", "fc7ad63f2b7113469078c1f60be0ef1f", false),
            ("noise", "down1.61", "nearest", "41f768f33b42e3c7d547f637029ca012", false),
            ("noise", "down1.61", "bilinear", "f9e491eac0ce762b42f43f431a0d5f1e", false),
            ("noise", "down1.61", "bicubic", "d083bb9d0b99129ef7dfac49f612df40", false),
            ("noise", "outside", "nearest", "9f9f63354d461a9ba9f965f9b6c6f5a1", false),
            ("noise", "outside", "bilinear", "9a6955cd165d72cf2f1aab748dae4e6a", false),
            ("noise", "outside", "bicubic", "9d7b36f2a6352dcccf06570e6c4b469e", false),
            ("noise", "edge3.1", "nearest", "475947795840ecb87aa8bbad91c8cbbd", false),
            ("noise", "edge3.1", "bilinear", "bcc4aef12c233b4df164faaf05234e38", false),
            ("noise", "edge3.1", "bicubic", "1955376be8bd2aa4dfcd38519f8ee0be", false),
            ("noise", "aniso", "nearest", "c81aa4f6fa6f531b20a5b76d8a7a7ad3", false),
            ("noise", "aniso", "bilinear", "6b0d67c02cfb20674e92eaf58c6e0dc1", false),
            ("noise", "aniso", "bicubic", "4bb3701af16713f8bd3a39eedce4b7f8", false),
            ("noise", "crop", "nearest", "0a8b0365fe3686c76dd6e546d0ecd12e", false),
            ("noise", "crop", "bilinear", "0a8b0365fe3686c76dd6e546d0ecd12e", false),
            ("noise", "crop", "bicubic", "0a8b0365fe3686c76dd6e546d0ecd12e", false),
            ("map", "up1.37", "nearest", "ca28af89b32d0333cb167ae64bd672d4", false),
            ("map", "up1.37", "bilinear", "444d1f901cdf9c22584b7a1d445fc6d6", false),
            ("map", "up1.37", "bicubic", "e7b015f8325d23b838508309cadb931e", false),
            ("map", "down1.61", "nearest", "ab75b9d2d6fd480345809c9de77ca1cd", false),
            ("map", "down1.61", "bilinear", "152a97fe04c74786e99cbc55f11ef560", false),
            ("map", "down1.61", "bicubic", "f184bf6d791ea33d9cba247629e45280", false),
            ("map", "outside", "nearest", "9d0f28e870a4170058a45e838602f7a5", false),
            ("map", "outside", "bilinear", "908a6c9434e058b5dc6223c4657782f6", false),
            ("map", "outside", "bicubic", "cd8c0cbac7e689a84d191ccf671bd73d", false),
            ("map", "edge3.1", "nearest", "df0c0ad1ed283193876e15148a9bc9f7", false),
            ("map", "edge3.1", "bilinear", "df0c0ad1ed283193876e15148a9bc9f7", false),
            ("map", "edge3.1", "bicubic", "df0c0ad1ed283193876e15148a9bc9f7", false),
            ("map", "aniso", "nearest", "0c1ea387d05580d72f3662e57076d74c", false),
            ("map", "aniso", "bilinear", "e9160a23ccafe12ba928b024580c6833", false),
            ("map", "aniso", "bicubic", "b2262bc67d9fade3538dc40b1e2730ba", false),
            ("map", "crop", "nearest", "2407cb7a58c676cd8bc7c3f0724fc6c6", false),
            ("map", "crop", "bilinear", "2407cb7a58c676cd8bc7c3f0724fc6c6", false),
            ("map", "crop", "bicubic", "2407cb7a58c676cd8bc7c3f0724fc6c6", false),
            ("pal", "up1.37", "nearest", "5ba24bb4fb145484bf19b4743adcfb42", true),
            ("pal", "up1.37", "bilinear", "15e94e3144f57ac19bb1ba2b980fd704", true),
            ("pal", "up1.37", "bicubic", "bb7a7ff6c002ec745035ac8815f300cd", true),
            ("pal", "down1.61", "nearest", "71d64601128a5d6be984483c4f17bc4e", true),
            ("pal", "down1.61", "bilinear", "32ca61e92d8041970c475e4e9f6feb9c", true),
            ("pal", "down1.61", "bicubic", "09015022415b6ec1af557733cc2315a5", true),
            ("pal", "outside", "nearest", "a43a44afbfed4b7c0956c4779ce3c6d7", true),
            ("pal", "outside", "bilinear", "b1d71b075b61cb7c51100f05b9dfda82", true),
            ("pal", "outside", "bicubic", "44620ad7b40df70aa60097bbfc665a06", true),
            ("pal", "edge3.1", "nearest", "6834c4cfcd49f5f8ced4e02a7d65b7b6", true),
            ("pal", "edge3.1", "bilinear", "51081c08646f262cd51f03d012b50e64", true),
            ("pal", "edge3.1", "bicubic", "c8522a3507d284e21c4d1000afa450f2", true),
            ("pal", "aniso", "nearest", "1ed97942609acbdffad1219f2a151fe0", true),
            ("pal", "aniso", "bilinear", "8a8794aadfee631eec01575c0025c12c", true),
            ("pal", "aniso", "bicubic", "f7ec1ca1fd828008f648ff6ed2e1326a", true),
            ("pal", "crop", "nearest", "4effd0c193b5cc227ea47da800f0ac16", true),
            ("pal", "crop", "bilinear", "4effd0c193b5cc227ea47da800f0ac16", true),
            ("pal", "crop", "bicubic", "4effd0c193b5cc227ea47da800f0ac16", true),
            ("map", "3857-4326", "nearest", "18758bf704f9f069c72f1e58e61ecd82", false),
            ("map", "3857-4326", "bilinear", "c4fc87f0bed80efb164bbb21b8ad589e", false),
            ("map", "3857-4326", "bicubic", "adf209b39ab06878ad998c1ff55f6190", false),
            ("noise", "4326-3857", "nearest", "e7a64de2a729289456f45d6576974aec", false),
            ("noise", "4326-3857", "bilinear", "14b90ddea045a89a5bd874f2f0bb1f47", false),
            ("noise", "4326-3857", "bicubic", "e21034ef866221d0f4abb5551e6666ec", false),
            ("gradient", "25832-3857", "nearest", "76bc4199a179b5951e8e46ef3aee7fb4", true),
            ("gradient", "25832-3857", "bilinear", "4235132fdd868efc0e7b7d00287f2f37", true),
            ("gradient", "25832-3857", "bicubic", "40665aec57b7a9c85c4dbf1348c0bb51", true),
            ("map", "world-3857-4326", "nearest", "316364e63b267036488f191dc2809afe", false),
            ("map", "world-3857-4326", "bilinear", "5b82a83b31567b6e69a3e1d0a053cc3b", false),
            ("map", "world-3857-4326", "bicubic", "45df12853fcc3697fac341ee0ceb04a4", false),
            ("pal", "pal-3857-4326", "nearest", "dadb5a4cf934237918d419fa1e037e9e", true),
            ("pal", "pal-3857-4326", "bilinear", "6b12d8cf8f4fea1b22eea8ac70466d49", true),
            ("pal", "pal-3857-4326", "bicubic", "9909a40cb0ca611940d1cefe21bf8c49", true),
        ];
        let mut wrong = Vec::new();
        // both builds of the filters: AVX2 (where the CPU has it) and the baseline
        for baseline in [false, true] {
            BASELINE.with(|b| b.set(baseline));
            for (name, case, r, md5, rgb) in cases {
                let out = golden_transformed(&golden_source(name), case, r)?;
                let bytes: Vec<u8> = if rgb {
                    out.pixels()
                        .flat_map(|p| [p.0[0], p.0[1], p.0[2]])
                        .collect()
                } else {
                    out.into_raw()
                };
                let got = format!("{:x}", Md5::digest(&bytes));
                if got != md5 {
                    wrong.push(format!("{name} {case} {r} (baseline build: {baseline})"));
                }
            }
        }
        BASELINE.with(|b| b.set(false));
        assert!(
            wrong.is_empty(),
            "{} of {} differ: {wrong:#?}",
            wrong.len(),
            cases.len() * 2
        );
        Ok(())
    }

    /// A block drawn as one colour (a `MESH` quad's blocks, `EXTENT`'s chunks of a row) is
    /// what the filter gives each of its pixels: flat areas (opaque, transparent) with marks
    /// (rows of text-like dots, single pixels, some half transparent), every warp of the
    /// golden test, the two filters that read windows, both builds.
    #[test]
    fn one_colour_blocks_are_the_filters_pixels() -> Result<(), crate::srs::SrsError> {
        let src = RgbaImage::from_fn(300, 200, |x, y| {
            let flat = match (x / 70 + y / 60) % 3 {
                0 => [255, 255, 255, 255],
                1 => [20, 90, 200, 255],
                _ => [0, 0, 0, 0],
            };
            let text = y % 50 < 7 && x % 60 < 30 && (x * 7 + y * 3) % 5 == 0;
            let speck = (x.wrapping_mul(2_654_435_761) ^ y.wrapping_mul(40_503)) % 211 == 0;
            image::Rgba(match (text, speck) {
                (true, _) => [0, 0, 0, 255],
                (_, true) => [x as u8, y as u8, 77, 128],
                _ => flat,
            })
        });
        let warps = [
            "up1.37",
            "down1.61",
            "outside",
            "edge3.1",
            "aniso",
            "crop",
            "3857-4326",
            "4326-3857",
            "25832-3857",
            "world-3857-4326",
        ];
        let mut wrong = Vec::new();
        UNIFORM_HITS.with(|h| h.set(0));
        for baseline in [false, true] {
            BASELINE.with(|b| b.set(baseline));
            for case in warps {
                for r in ["bilinear", "bicubic"] {
                    NO_UNIFORM.with(|n| n.set(true));
                    let filtered = golden_transformed(&src, case, r)?;
                    NO_UNIFORM.with(|n| n.set(false));
                    if golden_transformed(&src, case, r)? != filtered {
                        wrong.push(format!("{case} {r} (baseline build: {baseline})"));
                    }
                }
            }
        }
        BASELINE.with(|b| b.set(false));
        assert!(wrong.is_empty(), "{wrong:#?}");
        // spans of one colour were looked for and found (thousands of them)
        assert!(UNIFORM_HITS.with(std::cell::Cell::get) > 1000);
        Ok(())
    }

    /// MapProxy's `divide_quad` doctest, and `transform_meshes` keeps quads of 50 pixels or
    /// more only when their centre is within a pixel.
    #[test]
    fn mesh_is_mapproxys() -> Result<(), crate::srs::SrsError> {
        assert_eq!(
            divide_quad(&[0, 0, 500, 500]),
            vec![
                [0, 0, 250, 250],
                [250, 0, 500, 250],
                [0, 250, 250, 500],
                [250, 250, 500, 500]
            ]
        );
        assert_eq!(
            divide_quad(&[0, 0, 2000, 500]),
            vec![[0, 0, 1000, 500], [1000, 0, 2000, 500]]
        );
        assert_eq!(
            divide_quad(&[100, 200, 200, 500]),
            vec![[100, 200, 200, 350], [100, 350, 200, 500]]
        );
        // MapProxy's own quads (transform_meshes printed by MapProxy 7): the whole world
        // 3857 -> 4326 symmetric about the equator is one quad (its centre is exact), from
        // 80° S it is 128
        let (merc, geo) = (Srs::get("EPSG:3857")?, Srs::get("EPSG:4326")?);
        let world = [-MERC_MAX, -MERC_MAX, MERC_MAX, MERC_MAX];
        let quads = mesh(
            (1000, 1000),
            world,
            &merc,
            (720, 340),
            [-180.0, -85.0, 180.0, 85.0],
            &geo,
        );
        assert_eq!(
            quads.iter().map(|q| q.0).collect::<Vec<_>>(),
            vec![[0, 0, 720, 340]]
        );
        let quads = mesh(
            (1000, 1000),
            world,
            &merc,
            (720, 340),
            [-180.0, -80.0, 180.0, 85.0],
            &geo,
        );
        assert_eq!(quads.len(), 128);
        assert_eq!(
            quads[..5].iter().map(|q| q.0).collect::<Vec<_>>(),
            vec![
                [0, 0, 45, 42],
                [45, 0, 90, 42],
                [0, 42, 45, 85],
                [45, 42, 90, 85],
                [90, 0, 135, 42]
            ]
        );
        let want = [
            (0.0, 1.637914786054192),
            (0.0, 262.73568963466903),
            (62.50000000000005, 262.73568963466903),
            (62.50000000000005, 1.637914786054192),
        ];
        for (got, want) in quads[0].1.iter().zip(want) {
            assert!(
                (got.0 - want.0).abs() < 1e-9 && (got.1 - want.1).abs() < 1e-9,
                "{got:?}"
            );
        }
        // the quads tile the target
        let area: u64 = quads
            .iter()
            .map(|(q, _)| u64::from(q[2] - q[0]) * u64::from(q[3] - q[1]))
            .sum();
        assert_eq!(area, 720 * 340);
        Ok(())
    }

    /// Black stripes on transparent white, reprojected (3857 → 4326 and UTM):
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
                (f64::INFINITY, 4.0),
            ] {
                assert_eq!(sample(&src, x, y, r), [0; 4], "{r:?} {x} {y}");
            }
            assert_eq!(sample(&src, 4.0, 4.0, r), [9, 8, 7, 255], "{r:?}");
        }
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
}
