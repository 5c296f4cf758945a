//! Paletted images kept as Pillow keeps them: MapProxy opens a PNG with a `PLTE` as mode `P`
//! (its indices and its palette, the `tRNS` in `info['transparency']`), crops it to the same
//! palette, and `img_to_buf` writes it as it is, without quantizing, when the options have
//! no colours (`colors: 0`, `paletted: false`) or exactly as many as the palette has entries
//! (a 256-entry palette for the default 256). Pillow's PNG writer then gives:
//!
//! - a `PLTE` of the palette's entries (at most 256), 1, 2 or 4 bits per pixel for up to 2, 4
//!   or 16 entries (8 above);
//! - a `tRNS` from `info['transparency']`: `PngImagePlugin` reads a `tRNS` of one 0 among
//!   255s as that entry's index (written back as 255s up to it and its 0: trailing 255s are
//!   dropped), any other as its bytes (written back as they are, cut to the palette's
//!   length);
//! - 8-bit rows unfiltered and deflated with `Z_DEFAULT_STRATEGY` (ZipEncode.c's
//!   `ZIP_PNG_PALETTE` is only for the raw mode `P`), packed rows (raw modes `P;1`, `P;2`,
//!   `P;4`) filtered as truecolour rows are, one byte per pixel for the filters, and deflated
//!   with `Z_FILTERED`.
//!
//! Where MapProxy quantizes a paletted image (a palette of another size than the options'
//! colours), or converts it (merging layers, resampling but by nearest neighbour, a
//! transparent source's or cache's image, watermarks), the image is as we hold every other:
//! RGBA ([`super::mode`] names the mode MapProxy holds it in).

use std::sync::Arc;

use bytes::Bytes;
use image::RgbaImage;

use super::{ImageError, ImageMode, ImageOpts};

/// What Pillow's `info['transparency']` of a paletted PNG holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Trns {
    /// A `tRNS` of one 0 among 255s: the index of the fully transparent entry.
    Index(usize),
    /// Any other `tRNS`: its bytes.
    Alphas(Vec<u8>),
}

/// A paletted image's palette: what the `PLTE` and `tRNS` of the PNG it was opened from
/// gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Palette {
    /// RGB triples, one per entry.
    pub rgb: Vec<u8>,
    pub trns: Option<Trns>,
}

impl Palette {
    /// The number of entries (Pillow's `len(img.getpalette()) // 3`).
    pub fn entries(&self) -> usize {
        self.rgb.len() / 3
    }
}

/// A paletted image: one index a pixel, row by row, and its palette (shared by its crops).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Indexed {
    pub width: u32,
    pub height: u32,
    pub indices: Vec<u8>,
    pub palette: Arc<Palette>,
}

impl Indexed {
    /// A paletted PNG (colour type 3, any bit depth) as Pillow opens it; `None` for other
    /// PNGs, anything else, and errors.
    pub fn decode(data: &[u8]) -> Option<Indexed> {
        if super::png_color_type(data) != Some(3) {
            return None;
        }
        let mut dec = png::Decoder::new(std::io::Cursor::new(data));
        dec.set_transformations(png::Transformations::IDENTITY);
        let mut reader = dec.read_info().ok()?;
        let info = reader.info();
        if info.color_type != png::ColorType::Indexed {
            return None;
        }
        let rgb = info.palette.as_deref()?.to_vec();
        let trns = info.trns.as_deref().map(trns_info);
        let bits = match info.bit_depth {
            png::BitDepth::One => 1,
            png::BitDepth::Two => 2,
            png::BitDepth::Four => 4,
            png::BitDepth::Eight => 8,
            png::BitDepth::Sixteen => return None,
        };
        let mut buf = vec![0; reader.output_buffer_size()?];
        let frame = reader.next_frame(&mut buf).ok()?;
        let (w, h) = (frame.width as usize, frame.height as usize);
        let stride = frame.line_size;
        let mut indices = Vec::with_capacity(w.checked_mul(h)?);
        for y in 0..h {
            let row = buf.get(y * stride..(y + 1) * stride)?;
            if bits == 8 {
                indices.extend_from_slice(row.get(..w)?);
                continue;
            }
            let per_byte = 8 / bits;
            let mask = (1u8 << bits) - 1;
            for x in 0..w {
                let b = *row.get(x / per_byte)?;
                let shift = 8 - bits * (x % per_byte + 1);
                indices.push((b >> shift) & mask);
            }
        }
        Some(Indexed {
            width: frame.width,
            height: frame.height,
            indices,
            palette: Arc::new(Palette { rgb, trns }),
        })
    }

    /// The `w`×`h` part at `(x, y)` (inside the image), with the same palette.
    pub fn crop(&self, x: u32, y: u32, w: u32, h: u32) -> Indexed {
        let (x, y, w, h) = (x as usize, y as usize, w as usize, h as usize);
        let stride = self.width as usize;
        let mut indices = Vec::with_capacity(w * h);
        for row in y..y + h {
            indices.extend_from_slice(&self.indices[row * stride + x..row * stride + x + w]);
        }
        Indexed {
            width: w as u32,
            height: h as u32,
            indices,
            palette: self.palette.clone(),
        }
    }

    /// The indices as an opaque RGBA image (the index in red), for a transformation that
    /// moves pixels without mixing them (a crop, nearest neighbour): see [`Self::from_moved`].
    pub fn index_image(&self) -> RgbaImage {
        let raw = self.indices.iter().flat_map(|&i| [i, 0, 0, 255]).collect();
        RgbaImage::from_raw(self.width, self.height, raw).unwrap_or_default()
    }

    /// The paletted image whose indices `moved` ([`Self::index_image`] cropped or resampled
    /// by nearest neighbour) holds; index 0 where it has no pixel (Pillow's fill of a
    /// paletted image).
    pub fn from_moved(moved: &RgbaImage, palette: Arc<Palette>) -> Indexed {
        Indexed {
            width: moved.width(),
            height: moved.height(),
            indices: moved.as_raw().chunks_exact(4).map(|p| p[0]).collect(),
            palette,
        }
    }

    /// The image as Pillow converts it to RGBA: each entry's colour, alpha 0 for
    /// `Trns::Index`'s entry, `Trns::Alphas`'s alphas for the entries they cover, else 255;
    /// indices past the palette black.
    pub fn to_rgba(&self) -> RgbaImage {
        let mut lut = [[0u8, 0, 0, 255]; 256];
        for (e, c) in lut.iter_mut().zip(self.palette.rgb.chunks_exact(3)) {
            e[..3].copy_from_slice(c);
        }
        match &self.palette.trns {
            Some(Trns::Index(i)) => {
                if let Some(e) = lut.get_mut(*i) {
                    e[3] = 0;
                }
            }
            Some(Trns::Alphas(a)) => {
                for (e, &a) in lut.iter_mut().zip(a) {
                    e[3] = a;
                }
            }
            None => {}
        }
        let raw = self
            .indices
            .iter()
            .flat_map(|&i| lut[usize::from(i)])
            .collect();
        RgbaImage::from_raw(self.width, self.height, raw).unwrap_or_default()
    }

    /// Whether `img_to_buf` writes this image as it is (no quantizing) for options with
    /// `colors` colours (0: none): `not (img.mode == 'P' and len(img.getpalette()) ==
    /// colors * 3)`, image/__init__.py:393.
    pub fn kept_for(&self, colors: usize) -> bool {
        colors == 0 || self.palette.entries() == colors
    }
}

/// Pillow's `info['transparency']` for a paletted PNG's `tRNS` (`PngStream.chunk_tRNS`).
fn trns_info(s: &[u8]) -> Trns {
    let zeros = s.iter().filter(|&&a| a == 0).count();
    if zeros == 1 && s.iter().all(|&a| a == 0 || a == 255) {
        Trns::Index(s.iter().position(|&a| a == 0).unwrap_or(0))
    } else {
        Trns::Alphas(s.to_vec())
    }
}

/// `img_to_buf` of a paletted image MapProxy holds as mode `P`, `p` (`img`: the same image
/// as we hold it, possibly drawn over a map's background). Written as it is (see the module
/// documentation) when `img_to_buf` does not quantize it, else as [`super::encode_mode`]
/// writes a `P` image of its RGBA conversion ([`Indexed::to_rgba`]: an opaque map's
/// quantizing, and a JPEG, take the palette's colours, not those drawn over the
/// background).
pub fn encode_indexed(img: &RgbaImage, p: &Indexed, opts: &ImageOpts) -> Result<Bytes, ImageError> {
    if (img.width(), img.height()) != (p.width, p.height) {
        return super::encode_mode(img, ImageMode::P, opts);
    }
    let img = &p.to_rgba();
    let colors = if opts.paletted {
        usize::from(opts.colors.min(256))
    } else {
        0
    };
    let ext = opts.format.ext().to_ascii_lowercase();
    // `mixed`: a PNG when a pixel is not opaque, else a JPEG (of the RGB conversion)
    let png = ext.starts_with("png") || (ext == "mixed" && super::has_transparency(img));
    if !png || !p.kept_for(colors) {
        return super::encode_mode(img, ImageMode::P, opts);
    }
    Ok(Bytes::from(match opts.mode {
        // not quantized, then `img.convert(image_opts.mode)`: the palette's colours (and the
        // `tRNS`'s alphas for RGBA), as decoded
        Some(m @ (ImageMode::Rgb | ImageMode::Rgba)) => {
            super::codec::encode_png_truecolor(img, m == ImageMode::Rgba)?
        }
        _ => write_indexed_png(p)?,
    }))
}

/// A paletted image as Pillow's PNG writer writes one (see the module documentation).
pub fn write_indexed_png(p: &Indexed) -> Result<Vec<u8>, ImageError> {
    let colors = p.palette.entries().clamp(1, 256);
    let mut plte = p
        .palette
        .rgb
        .get(..colors * 3)
        .unwrap_or(&p.palette.rgb)
        .to_vec();
    plte.resize(colors * 3, 0);
    let trns = p.palette.trns.as_ref().map(|t| match t {
        Trns::Alphas(a) => a[..a.len().min(colors)].to_vec(),
        Trns::Index(i) => {
            let i = (*i).min(255);
            let mut a = vec![255u8; i];
            a.push(0);
            a.truncate(colors);
            a
        }
    });
    super::codec::write_paletted(
        (p.width, p.height),
        colors,
        &p.indices,
        &plte,
        trns.as_deref(),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::ImageFormat;

    /// `gen_png_goldens.py`'s `pal_palette` and `pal_index`.
    fn pal_source(n: usize, trns: Option<Trns>, w: u32, h: u32) -> Indexed {
        let rgb = (0..n)
            .flat_map(|i| [(i * 37) % 256, (i * 91) % 256, (i * 13 + 7) % 256])
            .map(|c| c as u8)
            .collect();
        let (wu, hu) = (w as usize, h as usize);
        let indices = (0..hu)
            .flat_map(|y| (0..wu).map(move |x| ((x / 3 + (y * y) / 7 + (x * y) / 11) % n) as u8))
            .collect();
        Indexed {
            width: w,
            height: h,
            indices,
            palette: Arc::new(Palette { rgb, trns }),
        }
    }

    /// MapProxy 7's `img_to_buf` of paletted images it keeps as `P` (gen_png_goldens.py):
    /// the source as Pillow writes a `P` image (`crop` `None`), then crops of it opened again
    /// and written with 256 colours (kept for a 256-entry palette, else quantized) and with
    /// none (kept): md5 and length.
    #[test]
    fn kept_paletted_png_is_mapproxys_byte_for_byte() {
        use md5::{Digest, Md5};
        #[allow(clippy::type_complexity)]
        let cases: Vec<(
            usize,
            Option<Trns>,
            u32,
            u32,
            Option<(u32, u32, u32, u32)>,
            u16,
            &str,
            usize,
        )> = vec![
            (
                256,
                None,
                64,
                64,
                None,
                0,
                "edec2911f8706c87279e30701fbce948",
                3802,
            ),
            (
                256,
                None,
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "edec2911f8706c87279e30701fbce948",
                3802,
            ),
            (
                256,
                None,
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "edec2911f8706c87279e30701fbce948",
                3802,
            ),
            (
                256,
                None,
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "c5a123bc78422f0187c80f6203a55407",
                1387,
            ),
            (
                256,
                None,
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "c5a123bc78422f0187c80f6203a55407",
                1387,
            ),
            (
                256,
                None,
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "3af569d2288ba64dd3b97e0a18959a81",
                1845,
            ),
            (
                256,
                None,
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "3af569d2288ba64dd3b97e0a18959a81",
                1845,
            ),
            (
                256,
                Some(Trns::Index(5)),
                64,
                64,
                None,
                0,
                "e777228dd3c7b75e39302ca4372aaa6e",
                3820,
            ),
            (
                256,
                Some(Trns::Index(5)),
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "e777228dd3c7b75e39302ca4372aaa6e",
                3820,
            ),
            (
                256,
                Some(Trns::Index(5)),
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "e777228dd3c7b75e39302ca4372aaa6e",
                3820,
            ),
            (
                256,
                Some(Trns::Index(5)),
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "b2e27e73031690420bf040b083335ac8",
                1405,
            ),
            (
                256,
                Some(Trns::Index(5)),
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "b2e27e73031690420bf040b083335ac8",
                1405,
            ),
            (
                256,
                Some(Trns::Index(5)),
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "cdb11e4ec14e16bfd06db8f2b28dfb87",
                1863,
            ),
            (
                256,
                Some(Trns::Index(5)),
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "cdb11e4ec14e16bfd06db8f2b28dfb87",
                1863,
            ),
            (
                200,
                Some(Trns::Alphas(vec![0, 128, 255])),
                64,
                64,
                None,
                0,
                "f117bf27c7dfbc6fded2a84c69a624af",
                3433,
            ),
            (
                200,
                Some(Trns::Alphas(vec![0, 128, 255])),
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "ed1f6ac53134f355bb901fdc0f744452",
                4818,
            ),
            (
                200,
                Some(Trns::Alphas(vec![0, 128, 255])),
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "f117bf27c7dfbc6fded2a84c69a624af",
                3433,
            ),
            (
                200,
                Some(Trns::Alphas(vec![0, 128, 255])),
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "33c5293dc02bcfa591b52a4ef6698d50",
                1473,
            ),
            (
                200,
                Some(Trns::Alphas(vec![0, 128, 255])),
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "dd5bb08b53994f3305ca1bf451214c72",
                1234,
            ),
            (
                200,
                Some(Trns::Alphas(vec![0, 128, 255])),
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "0962b689f39402bbd4b91b76b74784b6",
                1873,
            ),
            (
                200,
                Some(Trns::Alphas(vec![0, 128, 255])),
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "ebf0cc000b34468cc0ed7b0fb2ad2ae7",
                1639,
            ),
            (
                16,
                None,
                64,
                64,
                None,
                0,
                "73cdd46ebc880533af698fb366f7e513",
                1616,
            ),
            (
                16,
                None,
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "020db03bb3275932c5d61531fb7e66ac",
                2968,
            ),
            (
                16,
                None,
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "73cdd46ebc880533af698fb366f7e513",
                1616,
            ),
            (
                16,
                None,
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "b7d543d11b6811bc28326a68fca9f321",
                1203,
            ),
            (
                16,
                None,
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "8cf0135c0945351568b7abe1b76c1525",
                419,
            ),
            (
                16,
                None,
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "80f0d5fc173f26dfc79792b8742c015b",
                1393,
            ),
            (
                16,
                None,
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "8be8e931a8280683263fa1852a7df90b",
                554,
            ),
            (
                16,
                Some(Trns::Alphas(vec![255, 0, 255, 255])),
                64,
                64,
                None,
                0,
                "6daff8ce25a77e4ab7a8a48b38bdea4c",
                1632,
            ),
            (
                16,
                Some(Trns::Alphas(vec![255, 0, 255, 255])),
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "020db03bb3275932c5d61531fb7e66ac",
                2968,
            ),
            (
                16,
                Some(Trns::Alphas(vec![255, 0, 255, 255])),
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "0fc7c0ea48fb238afd4f28c38ceb5e67",
                1630,
            ),
            (
                16,
                Some(Trns::Alphas(vec![255, 0, 255, 255])),
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "b7d543d11b6811bc28326a68fca9f321",
                1203,
            ),
            (
                16,
                Some(Trns::Alphas(vec![255, 0, 255, 255])),
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "355ee3aa5d923b4013711a5182404951",
                433,
            ),
            (
                16,
                Some(Trns::Alphas(vec![255, 0, 255, 255])),
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "80f0d5fc173f26dfc79792b8742c015b",
                1393,
            ),
            (
                16,
                Some(Trns::Alphas(vec![255, 0, 255, 255])),
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "1ebefb742b6d4a5c5e75b8d8c725ab3c",
                568,
            ),
            (
                4,
                Some(Trns::Index(0)),
                64,
                64,
                None,
                0,
                "e670f78c3f4ccaaece92c9490b52bd2e",
                994,
            ),
            (
                4,
                Some(Trns::Index(0)),
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "ce316f4fbf0a26d38aca955fb25af977",
                2011,
            ),
            (
                4,
                Some(Trns::Index(0)),
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "e670f78c3f4ccaaece92c9490b52bd2e",
                994,
            ),
            (
                4,
                Some(Trns::Index(0)),
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "86186173ca0f32c69a8bab64c082abd8",
                1047,
            ),
            (
                4,
                Some(Trns::Index(0)),
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "71f0d3eb98eef842283cdb3b7e073302",
                305,
            ),
            (
                4,
                Some(Trns::Index(0)),
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "81935c6716716bb400fa09a7c4aeb622",
                1147,
            ),
            (
                4,
                Some(Trns::Index(0)),
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "3dbc6035bc165a9e99cfe34334409c3e",
                393,
            ),
            (
                2,
                None,
                64,
                64,
                None,
                0,
                "acbf45ca41c2be10bd750f9cee184407",
                541,
            ),
            (
                2,
                None,
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "a0386b43b07bc812f677fc326cbff986",
                1603,
            ),
            (
                2,
                None,
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "acbf45ca41c2be10bd750f9cee184407",
                541,
            ),
            (
                2,
                None,
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "99098a356a5d4f73aefd1d9ee38258c4",
                982,
            ),
            (
                2,
                None,
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "2b754b29256213f69c5929f01a7d69e1",
                206,
            ),
            (
                2,
                None,
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "fdc76178434004e5d392f7b5f5295575",
                1047,
            ),
            (
                2,
                None,
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "520a393133ecbfcaad85acba83588a44",
                226,
            ),
            (
                4,
                Some(Trns::Alphas(vec![0, 128])),
                64,
                64,
                None,
                0,
                "c75547462b97650622dcd5adc4df259e",
                995,
            ),
            (
                4,
                Some(Trns::Alphas(vec![0, 128])),
                64,
                64,
                Some((0, 0, 64, 64)),
                256,
                "ce316f4fbf0a26d38aca955fb25af977",
                2011,
            ),
            (
                4,
                Some(Trns::Alphas(vec![0, 128])),
                64,
                64,
                Some((0, 0, 64, 64)),
                0,
                "c75547462b97650622dcd5adc4df259e",
                995,
            ),
            (
                4,
                Some(Trns::Alphas(vec![0, 128])),
                64,
                64,
                Some((7, 5, 40, 25)),
                256,
                "86186173ca0f32c69a8bab64c082abd8",
                1047,
            ),
            (
                4,
                Some(Trns::Alphas(vec![0, 128])),
                64,
                64,
                Some((7, 5, 40, 25)),
                0,
                "ab4115baff0f749981c9c678ed25f922",
                306,
            ),
            (
                4,
                Some(Trns::Alphas(vec![0, 128])),
                64,
                64,
                Some((16, 16, 48, 48)),
                256,
                "81935c6716716bb400fa09a7c4aeb622",
                1147,
            ),
            (
                4,
                Some(Trns::Alphas(vec![0, 128])),
                64,
                64,
                Some((16, 16, 48, 48)),
                0,
                "1fbccce689397211df2295f09b800146",
                394,
            ),
        ];
        let mut wrong = Vec::new();
        let mut source = Bytes::new();
        for (n, trns, w, h, crop, colors, md5, len) in cases {
            let got = match crop {
                None => {
                    source = Bytes::from(write_indexed_png(&pal_source(n, trns, w, h)).unwrap());
                    source.clone()
                }
                Some((x0, y0, x1, y1)) => {
                    let opened = Indexed::decode(&source).expect("paletted");
                    let p = opened.crop(x0, y0, x1 - x0, y1 - y0);
                    let rgba = crate::image::decode(&source).unwrap();
                    let img = crate::image::sub_image(&rgba, x0, y0, x1 - x0, y1 - y0);
                    let mut o = ImageOpts::new(ImageFormat::png());
                    o.colors = colors;
                    encode_indexed(&img, &p, &o).unwrap()
                }
            };
            let sum = format!("{:x}", Md5::digest(&got));
            if sum != md5 || got.len() != len {
                wrong.push(format!(
                    "{n} entries, {w}x{h}, crop {crop:?}, colors {colors}: {} bytes (want {len})",
                    got.len()
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    #[test]
    fn trns_as_pillow_reads_it() {
        assert_eq!(trns_info(&[255, 0, 255]), Trns::Index(1));
        assert_eq!(trns_info(&[0]), Trns::Index(0));
        assert_eq!(trns_info(&[0, 0]), Trns::Alphas(vec![0, 0]));
        assert_eq!(trns_info(&[255, 128]), Trns::Alphas(vec![255, 128]));
        assert_eq!(trns_info(&[]), Trns::Alphas(vec![]));
        let p = pal_source(4, Some(Trns::Index(2)), 3, 2);
        assert!(p.kept_for(0) && p.kept_for(4) && !p.kept_for(256));
        let c = p.crop(1, 1, 2, 1);
        assert_eq!(c.indices, p.indices[4..6]);
        let moved = Indexed::from_moved(&c.index_image(), c.palette.clone());
        assert_eq!(moved, c);
        let rgba = c.to_rgba();
        let e = usize::from(c.indices[0]) * 3;
        let alpha = if c.indices[0] == 2 { 0 } else { 255 };
        assert_eq!(rgba.get_pixel(0, 0).0[..3], c.palette.rgb[e..e + 3]);
        assert_eq!(rgba.get_pixel(0, 0).0[3], alpha);
    }
}
