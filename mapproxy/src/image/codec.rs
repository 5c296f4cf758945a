//! Decoding and encoding tiles and map images as MapProxy's `img_to_buf` does
//! (`mapproxy/image/__init__.py`).
//!
//! - `image/png` (and `png8`, `image/png; mode=8bit`, ...): paletted by default (MapProxy's
//!   `image.paletted: true` gives PNG formats `colors: 256`): Pillow's
//!   `quantize(colors, FASTOCTREE)` ([`super::octree`]) of the RGBA image when the format is
//!   transparent, else of its RGB conversion; colour type 3 with a `PLTE` of all `colors`
//!   entries and, when transparent, a `tRNS` of all their alphas, as Pillow writes them;
//!   `colors` up to 16 are packed to 1, 2 or 4 bits as Pillow does. Byte for byte MapProxy 7's
//!   (tested against files it wrote).
//! - `paletted: false`: a truecolour PNG, RGBA when the format is transparent, RGB otherwise;
//!   rows filtered as Pillow's encoder filters them ([`filter_rows`]). Byte for byte MapProxy
//!   7's too.
//! - `image/jpeg`: RGB (the alpha dropped, as `convert('RGB')`) at `jpeg_quality` (MapProxy's
//!   default 90): baseline, 4:2:0, libjpeg's defaults as Pillow sets them. Byte for byte
//!   MapProxy 7's in both builds (tested against files it wrote): libjpeg-turbo with the
//!   `turbojpeg` feature, else [`super::jpeg`], which repeats libjpeg-turbo's arithmetic
//!   (tested against libjpeg-turbo on every size up to 40×40 and qualities 1-100).
//! - `mixed`: a transparent PNG when any pixel is not fully opaque, a JPEG otherwise; the PNG
//!   is paletted when the cache has colours (MapProxy gives a `mixed` cache its sources'
//!   colours: a WMS source's PNG has 256 with `image.paletted`, so usually paletted), else
//!   RGBA.
//! - `image/gif`: paletted (Pillow converts to `P` for GIF): at most 256 colours, GIF87a, or
//!   GIF89a with a transparent index when the format is transparent and a pixel is.
//! - `image/tiff`, `image/GeoTIFF` (`filter_format`): uncompressed, RGB (RGBA with an
//!   unassociated alpha when a pixel is not opaque), one strip, laid out byte for byte as
//!   Pillow's TIFF writer lays it out; with a [`GeoRef`] (WMS maps) MapProxy's GeoTIFF tags
//!   `ModelPixelScale`, `ModelTiepoint` and `GeoKeyDirectory` (`GeoReference.tiff_tags`).
//!
//! Compression is the stock zlib's ([`super::zlib`]) at Pillow's settings, level 6 and
//! memLevel 9: 8-bit paletted rows are not filtered (Pillow's encoder does not filter raw
//! mode `P`), packed ones (up to 16 colours) are, as truecolour rows are; quantized rows are
//! deflated with the `Z_RLE` strategy MapProxy asks for after quantizing; truecolour rows
//! with `Z_FILTERED`, Pillow's default. A paletted image MapProxy keeps as it is (not
//! quantized) is written by [`super::indexed`]. PNGs are written directly ([`write_png`]).
//!
//! GIFs are quantized here, not as Pillow's GIF writer does: an image with at most 256
//! distinct colours gets the exact palette; others go through NeuQuant (`color_quant`).

use std::collections::HashMap;

use bytes::Bytes;
use image::RgbaImage;

use super::ImageFormat;

/// How images are encoded (MapProxy's `ImageOptions` as the `image:` globals and a cache's
/// `image:`/`format` give them).
#[derive(Debug, Clone, PartialEq)]
pub struct ImageOpts {
    pub format: ImageFormat,
    pub transparent: bool,
    /// 1-100; MapProxy's default 90.
    pub jpeg_quality: u8,
    /// Palette PNG (MapProxy's default for `image/png`).
    pub paletted: bool,
    /// Palette size for paletted PNGs (MapProxy's default 256).
    pub colors: u16,
    /// Where a map lies, for the GeoTIFF tags of a TIFF (MapProxy sets `result.georef` for
    /// WMS maps, service/wms.py:166).
    pub georef: Option<GeoRef>,
    /// A cache's `image.mode` (`None`: as the image and `transparent` give it).
    pub mode: Option<ImageMode>,
    /// A cache's `resampling_method` (`None`: the service's, `globals.image`'s).
    pub resampling: Option<super::transform::Resampling>,
    /// A cache's `opacity` (0-1) as its WMS layer is merged with others.
    pub opacity: Option<f64>,
}

/// MapProxy's `image.mode` (Pillow's modes) a PNG is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageMode {
    /// Truecolour without alpha (after quantizing, when `colors` is set).
    Rgb,
    /// Truecolour with alpha (after quantizing, when `colors` is set).
    Rgba,
    /// Paletted.
    P,
}

/// MapProxy's `GeoReference`: a bbox (east/north order) in an SRS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GeoRef {
    pub bbox: [f64; 4],
    /// The EPSG number (`GeoKeyDirectory` key 3072).
    pub epsg: u32,
    /// Geographic (`GTModelType` 2) or projected (1).
    pub latlong: bool,
}

impl ImageOpts {
    pub fn new(format: ImageFormat) -> ImageOpts {
        ImageOpts {
            format,
            transparent: false,
            jpeg_quality: 90,
            paletted: true,
            colors: 256,
            georef: None,
            mode: None,
            resampling: None,
            opacity: None,
        }
    }
}

/// An image could not be decoded or encoded.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageError(pub String);

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ImageError {}

/// Decode PNG or JPEG bytes into RGBA. With the `turbojpeg` feature JPEGs are decoded by
/// libjpeg-turbo, as Pillow decodes them (islow IDCT, fancy upsampling): the same pixels;
/// else by image's decoder (zune-jpeg), whose pixels differ from libjpeg's by a few levels.
pub fn decode(data: &[u8]) -> Result<RgbaImage, ImageError> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        if let Some(img) = decode_png_rgba(data) {
            return Ok(img);
        }
    }
    #[cfg(feature = "turbojpeg")]
    if data.starts_with(&[0xff, 0xd8]) {
        if let Some(img) = decode_jpeg_turbo(data) {
            return Ok(img);
        }
    }
    image::load_from_memory(data)
        .map(|i| i.to_rgba8())
        .map_err(|e| ImageError(format!("cannot decode image: {e}")))
}

/// A JPEG decoded by libjpeg-turbo into RGBA; `None` for what it cannot decode (CMYK, errors)
/// and for images over image's default allocation limit (512 MiB), which image's loader then
/// reports.
#[cfg(feature = "turbojpeg")]
fn decode_jpeg_turbo(data: &[u8]) -> Option<RgbaImage> {
    let header = turbojpeg::read_header(data).ok()?;
    let (w, h) = (header.width, header.height);
    let len = w.checked_mul(h)?.checked_mul(4)?;
    if len > 512 << 20 {
        return None;
    }
    let mut pixels = vec![0u8; len];
    let mut d = turbojpeg::Decompressor::new().ok()?;
    d.decompress(
        data,
        turbojpeg::Image {
            pixels: pixels.as_mut_slice(),
            width: w,
            pitch: w * 4,
            height: h,
            format: turbojpeg::PixelFormat::RGBA,
        },
    )
    .ok()?;
    RgbaImage::from_raw(u32::try_from(w).ok()?, u32::try_from(h).ok()?, pixels)
}

/// A paletted, RGB or RGBA PNG straight to 8-bit RGBA with the png crate: palette, `tRNS` and
/// the missing alpha expanded in the one pass that unfilters the rows. image's loader expands
/// an opaque paletted tile to RGB and then converts that to RGBA in a second buffer (the two
/// passes and their buffers were a quarter of a stitched GetMap). `None` for other PNGs
/// (greyscale) and for errors, which image's loader then reports.
fn decode_png_rgba(data: &[u8]) -> Option<RgbaImage> {
    let mut dec = png::Decoder::new(std::io::Cursor::new(data));
    dec.set_transformations(png::Transformations::ALPHA | png::Transformations::STRIP_16);
    let mut reader = dec.read_info().ok()?;
    if !matches!(
        reader.info().color_type,
        png::ColorType::Indexed | png::ColorType::Rgb | png::ColorType::Rgba
    ) || reader.output_color_type() != (png::ColorType::Rgba, png::BitDepth::Eight)
    {
        return None;
    }
    let mut buf = vec![0; reader.output_buffer_size()?];
    let info = reader.next_frame(&mut buf).ok()?;
    buf.truncate(info.buffer_size());
    RgbaImage::from_raw(info.width, info.height, buf)
}

/// What the header chunks of a PNG say about a paletted image whose every pixel is fully
/// transparent: colour type 3 with a `tRNS` chunk giving alpha 0 to every `PLTE` entry (a
/// one-entry palette with alpha 0 is the common case: blank tiles as we and Pillow write them).
/// `Some((width, height, colour))`, `colour` the one RGBA value every pixel decodes to when all
/// entries share their RGB (`None` when they differ: the pixels are transparent, their colour
/// channels vary). `None` for anything else, nothing decoded.
///
/// Only the chunks before the first `IDAT` are read and their CRCs are not verified: a corrupt
/// tile whose header chunks say "transparent" is treated as transparent (decoding would have
/// reported it as an error), as is one whose image data uses indices outside its palette.
fn png_transparent_header(data: &[u8]) -> Option<(u32, u32, Option<[u8; 4]>)> {
    let rest = data.strip_prefix(b"\x89PNG\r\n\x1a\n")?;
    let mut pos = 0usize;
    let mut size: Option<(u32, u32)> = None;
    let mut plte: Option<&[u8]> = None;
    let mut trns: Option<&[u8]> = None;
    loop {
        let head = rest.get(pos..pos.checked_add(8)?)?;
        let len = usize::try_from(u32::from_be_bytes([head[0], head[1], head[2], head[3]])).ok()?;
        let kind = &head[4..8];
        let start = pos + 8;
        let body = rest.get(start..start.checked_add(len)?)?;
        match kind {
            b"IHDR" => {
                // width, height, bit depth, colour type 3 (paletted), ...
                if len != 13 || pos != 0 || body[9] != 3 {
                    return None;
                }
                let w = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                let h = u32::from_be_bytes([body[4], body[5], body[6], body[7]]);
                size = Some((w, h));
            }
            b"PLTE" => plte = Some(body),
            b"tRNS" => trns = Some(body),
            b"IDAT" => break,
            _ => {}
        }
        // IHDR comes first
        size?;
        // the chunk's data and its CRC
        pos = start.checked_add(len)?.checked_add(4)?;
    }
    let (w, h) = size?;
    let (plte, trns) = (plte?, trns?);
    let n = plte.len() / 3;
    // a tRNS longer than the palette is ignored by decoders (png, PaletteRows): its pixels would
    // decode opaque, so such a tile is not taken for transparent
    if n == 0 || plte.len() % 3 != 0 || trns.len() != n || trns.iter().any(|&a| a != 0) {
        return None;
    }
    let first = &plte[..3];
    let color = plte
        .chunks_exact(3)
        .all(|c| c == first)
        .then(|| [first[0], first[1], first[2], 0]);
    Some((w, h, color))
}

/// A paletted PNG whose every pixel is fully transparent, seen from its header chunks without
/// decoding (see `png_transparent_header`, which also says what is not checked): such a tile
/// adds nothing to a map.
pub fn png_is_transparent(data: &[u8]) -> bool {
    png_transparent_header(data).is_some()
}

/// A tile for [`stitch`]: its encoded bytes, or its image as just made (MapProxy
/// draws a tile its request made from the meta tile's crop, not from the stored tile).
#[derive(Clone, Copy)]
pub enum StitchTile<'a> {
    Encoded(&'a [u8]),
    Drawn(&'a RgbaImage),
}

/// Tiles (row-major, `cols` per row, each `tile_size`, `None` where there is none; encoded,
/// or drawn: see [`StitchTile`]) decoded
/// into one stitched image, transparent where a tile is missing. PNG tiles are decoded row by
/// row straight into the image as it is built, so neither the image nor a per-tile buffer is
/// zeroed or copied first (zeroing and copying new buffers was a quarter of a stitched
/// GetMap); other tiles go through [`decode`]. A fully transparent paletted tile of one
/// colour (its header chunks say so, see [`png_is_transparent`]) is filled with that colour
/// without decoding.
///
/// With `under`, an opaque colour (a map's background, when these tiles are its bottom
/// layer), the tiles are drawn over it as [`overlay`] draws them and the image is opaque:
/// paletted tiles have their palettes blended once instead of every pixel, and an opaque
/// image is resized without premultiplying by alpha (together a fifth of a 1024×1024 JPEG
/// map). Resampling is linear, so resampling the blended image is resampling the layer and
/// blending after, but for rounding.
pub fn stitch(
    tiles: &[Option<StitchTile<'_>>],
    cols: usize,
    tile_size: (u32, u32),
    under: Option<[u8; 3]>,
) -> Result<RgbaImage, ImageError> {
    let under = under.map(|[r, g, b]| [r, g, b, 255]);
    // a pixel as drawn over `under`
    let drawn = |px: [u8; 4]| under.map_or(px, |bg| over(bg, px));
    let empty = drawn([0, 0, 0, 0]);
    let (tw, th) = (tile_size.0 as usize, tile_size.1 as usize);
    let rows = tiles.len().div_ceil(cols.max(1));
    let (w, h) = (cols * tw, rows * th);
    let too_large = || ImageError(format!("cannot stitch {cols}×{rows} tiles: too large"));
    let (Ok(w32), Ok(h32)) = (u32::try_from(w), u32::try_from(h)) else {
        return Err(too_large());
    };
    let mut buf: Vec<u8> = Vec::with_capacity(
        w.checked_mul(h)
            .and_then(|n| n.checked_mul(4))
            .ok_or_else(too_large)?,
    );
    let tw4 = tw * 4;
    for tile_row in tiles.chunks(cols.max(1)) {
        // per tile of this row: a PNG reader giving RGBA rows of the tile's size, or the
        // decoded tile, or nothing (a row's few sources live in one short Vec: boxing the
        // reader would only add an allocation per tile)
        #[allow(clippy::large_enum_variant)]
        enum Src<'a> {
            Rows(png::Reader<std::io::Cursor<&'a [u8]>>),
            Indexed(png::Reader<std::io::Cursor<&'a [u8]>>, PaletteRows),
            Image(std::borrow::Cow<'a, RgbaImage>),
            Fill([u8; 4]),
            Blank,
        }
        let mut srcs: Vec<Src> = Vec::with_capacity(cols);
        for t in tile_row {
            srcs.push(match t {
                None => Src::Blank,
                Some(StitchTile::Drawn(img)) => Src::Image(std::borrow::Cow::Borrowed(*img)),
                Some(StitchTile::Encoded(data)) => match png_transparent_header(data) {
                    // all [0, 0, 0, 0]: as a missing tile
                    Some((w, h, Some([0, 0, 0, 0]))) if (w, h) == tile_size => Src::Blank,
                    Some((w, h, Some(c))) if (w, h) == tile_size => Src::Fill(drawn(c)),
                    _ => match png_indexed_reader(data, tile_size, under) {
                        Some((r, rows)) => Src::Indexed(r, rows),
                        None => match png_rgba_reader(data, tile_size) {
                            Some(r) => Src::Rows(r),
                            None => Src::Image(std::borrow::Cow::Owned(decode(data)?)),
                        },
                    },
                },
            });
        }
        srcs.resize_with(cols, || Src::Blank);
        for y in 0..th {
            for s in &mut srcs {
                let before = buf.len();
                match s {
                    Src::Rows(r) => match r.next_row() {
                        Ok(Some(row)) if row.data().len() == tw4 => {
                            buf.extend_from_slice(row.data())
                        }
                        Ok(_) => {
                            return Err(ImageError("cannot decode image: PNG row missing".into()))
                        }
                        Err(e) => return Err(ImageError(format!("cannot decode image: {e}"))),
                    },
                    Src::Indexed(r, rows) => {
                        let row = match r.next_row() {
                            Ok(Some(row)) => row,
                            Ok(None) => {
                                return Err(ImageError(
                                    "cannot decode image: PNG row missing".into(),
                                ))
                            }
                            Err(e) => return Err(ImageError(format!("cannot decode image: {e}"))),
                        };
                        buf.resize(before + tw4, 0);
                        if !rows.expand(row.data(), &mut buf[before..]) {
                            return Err(ImageError("cannot decode image: PNG row short".into()));
                        }
                    }
                    Src::Image(img) if (y as u32) < img.height() => {
                        let stride = img.width() as usize * 4;
                        let row = &img.as_raw()[y * stride..(y + 1) * stride];
                        buf.extend_from_slice(&row[..stride.min(tw4)]);
                    }
                    Src::Fill(c) => {
                        for _ in 0..tw {
                            buf.extend_from_slice(c);
                        }
                    }
                    _ => {}
                }
                // a short (or missing) tile row is padded with transparency (or `under`)
                if empty == [0, 0, 0, 0] {
                    buf.resize(before + tw4, 0);
                } else {
                    while buf.len() < before + tw4 {
                        buf.extend_from_slice(&empty);
                    }
                }
                // decoded RGBA rows drawn over `under` (paletted ones were, by their palette)
                if let (Some(bg), Src::Rows(_) | Src::Image(_)) = (under, &*s) {
                    for px in buf[before..].chunks_exact_mut(4) {
                        if px[3] != 255 {
                            let c = over(bg, [px[0], px[1], px[2], px[3]]);
                            px.copy_from_slice(&c);
                        }
                    }
                }
            }
        }
    }
    RgbaImage::from_raw(w32, h32, buf).ok_or_else(too_large)
}

/// A PNG's colour type from its IHDR (0 gray, 2 RGB, 3 paletted, 4 gray+alpha, 6 RGBA), read
/// without decoding; `None` for anything that is not a PNG.
pub fn png_color_type(data: &[u8]) -> Option<u8> {
    // the signature, then IHDR first: length, "IHDR", width, height, bit depth, colour type
    if data.starts_with(b"\x89PNG\r\n\x1a\n") && data.get(12..16) == Some(b"IHDR") {
        data.get(25).copied()
    } else {
        None
    }
}

/// A reader of `size` giving a paletted PNG's rows as they are stored (indices, 1, 2, 4 or 8
/// bits), with what expands them to RGBA; `None` for other PNGs and for anything that is not
/// one.
fn png_indexed_reader(
    data: &[u8],
    size: (u32, u32),
    under: Option<[u8; 4]>,
) -> Option<(png::Reader<std::io::Cursor<&[u8]>>, PaletteRows)> {
    // IHDR's colour type (the transformations are chosen before the header is read)
    if png_color_type(data) != Some(3) {
        return None;
    }
    let mut dec = png::Decoder::new(std::io::Cursor::new(data));
    dec.set_transformations(png::Transformations::IDENTITY);
    let reader = dec.read_info().ok()?;
    let info = reader.info();
    if info.color_type != png::ColorType::Indexed
        || info.interlaced
        || (info.width, info.height) != size
    {
        return None;
    }
    let rows = PaletteRows::new(
        info.palette.as_deref()?,
        info.trns.as_deref(),
        info.bit_depth,
        under,
    )?;
    Some((reader, rows))
}

/// Expands a paletted PNG's stored rows to RGBA with lookup tables: a byte of 1, 2 or 4 bit
/// indices gives its 8, 4 or 2 pixels' RGBA at once (the png crate expands index by index,
/// shifting and masking each: a sixth of a stitched GetMap of 1-bit tiles).
enum PaletteRows {
    Bits1(Box<[[u8; 32]; 256]>),
    Bits2(Box<[[u8; 16]; 256]>),
    Bits4(Box<[[u8; 8]; 256]>),
    Bits8(Box<[[u8; 4]; 256]>),
}

impl PaletteRows {
    /// The tables for `palette` (RGB) with `trns` (alpha) as the png crate reads them: a
    /// `tRNS` longer than the palette is ignored, entries it does not cover are opaque,
    /// indices past the palette black and opaque; with `under`, each entry as drawn over
    /// that colour.
    fn new(
        palette: &[u8],
        trns: Option<&[u8]>,
        depth: png::BitDepth,
        under: Option<[u8; 4]>,
    ) -> Option<PaletteRows> {
        let mut lut = [[0u8, 0, 0, 255]; 256];
        for (e, c) in lut.iter_mut().zip(palette.chunks_exact(3)) {
            e[..3].copy_from_slice(c);
        }
        let trns = trns.unwrap_or(&[]);
        if trns.len() <= palette.len() / 3 {
            for (e, &a) in lut.iter_mut().zip(trns) {
                e[3] = a;
            }
        }
        if let Some(bg) = under {
            for e in lut.iter_mut() {
                *e = over(bg, *e);
            }
        }
        fn table<const N: usize>(lut: &[[u8; 4]; 256], bits: usize) -> Box<[[u8; N]; 256]> {
            let mut t = Box::new([[0u8; N]; 256]);
            let mask = (1usize << bits) - 1;
            for (b, e) in t.iter_mut().enumerate() {
                for (k, px) in e.chunks_exact_mut(4).enumerate() {
                    px.copy_from_slice(&lut[(b >> (8 - bits * (k + 1))) & mask]);
                }
            }
            t
        }
        Some(match depth {
            png::BitDepth::One => PaletteRows::Bits1(table(&lut, 1)),
            png::BitDepth::Two => PaletteRows::Bits2(table(&lut, 2)),
            png::BitDepth::Four => PaletteRows::Bits4(table(&lut, 4)),
            png::BitDepth::Eight => PaletteRows::Bits8(Box::new(lut)),
            png::BitDepth::Sixteen => return None,
        })
    }

    /// `src`, a stored row, expanded into `dst` (RGBA, 4 bytes a pixel); false when `src` is
    /// too short for it.
    fn expand(&self, src: &[u8], dst: &mut [u8]) -> bool {
        fn packed<const N: usize>(t: &[[u8; N]; 256], src: &[u8], dst: &mut [u8]) -> bool {
            let full = dst.len() / N;
            if src.len() < dst.len().div_ceil(N) {
                return false;
            }
            let mut chunks = dst.chunks_exact_mut(N);
            for (d, &b) in (&mut chunks).zip(src) {
                d.copy_from_slice(&t[usize::from(b)]);
            }
            let rest = chunks.into_remainder();
            let n = rest.len();
            if n > 0 {
                // the row's last byte, partly used (src is long enough, checked above)
                let b = src[full];
                rest.copy_from_slice(&t[usize::from(b)][..n]);
            }
            true
        }
        match self {
            PaletteRows::Bits1(t) => packed(t, src, dst),
            PaletteRows::Bits2(t) => packed(t, src, dst),
            PaletteRows::Bits4(t) => packed(t, src, dst),
            PaletteRows::Bits8(t) => packed(t, src, dst),
        }
    }
}

/// A reader of `size` giving 8-bit RGBA rows (see [`decode_png_rgba`]); `None` for other PNGs
/// and for anything that is not one.
fn png_rgba_reader(data: &[u8], size: (u32, u32)) -> Option<png::Reader<std::io::Cursor<&[u8]>>> {
    if !data.starts_with(b"\x89PNG\r\n\x1a\n") {
        return None;
    }
    let mut dec = png::Decoder::new(std::io::Cursor::new(data));
    dec.set_transformations(png::Transformations::ALPHA | png::Transformations::STRIP_16);
    let reader = dec.read_info().ok()?;
    let info = reader.info();
    let ok = matches!(
        info.color_type,
        png::ColorType::Indexed | png::ColorType::Rgb | png::ColorType::Rgba
    ) && !info.interlaced
        && (info.width, info.height) == size
        && reader.output_color_type() == (png::ColorType::Rgba, png::BitDepth::Eight);
    ok.then_some(reader)
}

/// The format of encoded bytes by their signature: `image/png` or `image/jpeg` (what a `mixed`
/// cache's tile is), `None` for anything else.
pub fn sniff_format(data: &[u8]) -> Option<ImageFormat> {
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some(ImageFormat::png())
    } else if data.starts_with(&[0xff, 0xd8, 0xff]) {
        Some(ImageFormat::jpeg())
    } else {
        None
    }
}

/// What `encode` writes for a format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    Png,
    Jpeg,
    Mixed,
    Gif,
    Tiff,
}

fn target(format: &ImageFormat) -> Result<Target, ImageError> {
    let ext = format.ext().to_ascii_lowercase();
    if ext.starts_with("png") {
        Ok(Target::Png)
    } else if ext == "jpeg" || ext == "jpg" {
        Ok(Target::Jpeg)
    } else if ext == "mixed" {
        Ok(Target::Mixed)
    } else if ext == "gif" {
        Ok(Target::Gif)
    } else if ext == "tiff" || ext == "tif" || ext == "geotiff" {
        // MapProxy's filter_format: geotiff is written as tiff (image/__init__.py:463)
        Ok(Target::Tiff)
    } else {
        Err(ImageError(format!(
            "cannot encode {format}: expected a PNG, JPEG, GIF, TIFF or mixed format"
        )))
    }
}

/// Encode in `opts.format` as MapProxy does (see the module documentation) an image held as
/// MapProxy holds a merged map or tile: RGBA when `opts.transparent`, else RGB
/// (`create_image`). [`encode_mode`] for an image held in another mode.
pub fn encode(img: &RgbaImage, opts: &ImageOpts) -> Result<Bytes, ImageError> {
    let held = if opts.transparent {
        ImageMode::Rgba
    } else {
        ImageMode::Rgb
    };
    encode_mode(img, held, opts)
}

/// [`encode`] of an image MapProxy would hold in Pillow mode `held` (see
/// [`super::mode`]): `img_to_buf` quantizes with alpha only when the options are transparent
/// and the image has alpha (an RGB image quantizes to a palette without `tRNS`), and writes
/// an unquantized PNG in the image's mode (a paletted one as RGBA here).
pub fn encode_mode(
    img: &RgbaImage,
    held: ImageMode,
    opts: &ImageOpts,
) -> Result<Bytes, ImageError> {
    let has_alpha = held != ImageMode::Rgb;
    let quantize_alpha = opts.transparent && has_alpha;
    let out = match target(&opts.format)? {
        Target::Jpeg => encode_jpeg(img, opts.jpeg_quality)?,
        Target::Png => encode_png(img, opts, quantize_alpha, has_alpha)?,
        // MapProxy's img_to_buf: a transparent `mixed` image is a PNG with
        // `transparent = True`, quantized when the cache has colours (its sources' in
        // compatible_image_options: a WMS source's PNG 256)
        Target::Mixed => {
            if has_transparency(img) {
                encode_png(img, opts, has_alpha, has_alpha)?
            } else {
                encode_jpeg(img, opts.jpeg_quality)?
            }
        }
        Target::Gif => encode_gif(img, opts.transparent)?,
        Target::Tiff => encode_tiff(img, opts.georef.as_ref())?,
    };
    Ok(Bytes::from(out))
}

/// A PNG of `img` as `img_to_buf` writes it: quantized when `opts` has colours (with alpha
/// when `quantize_alpha`: the options are transparent, or it is a transparent `mixed` tile,
/// and the image has alpha), then converted to `opts.mode` when set; else truecolour in the
/// image's mode (RGBA when `has_alpha`).
fn encode_png(
    img: &RgbaImage,
    opts: &ImageOpts,
    quantize_alpha: bool,
    has_alpha: bool,
) -> Result<Vec<u8>, ImageError> {
    let colors = usize::from(opts.colors.min(256));
    Ok(match opts.mode {
        // MapProxy's img_to_buf: quantized, then `img.convert(image_opts.mode)`
        Some(m @ (ImageMode::Rgb | ImageMode::Rgba)) => {
            let alpha = m == ImageMode::Rgba;
            if opts.paletted && colors > 0 {
                let (palette, indices) = super::octree::quantize(img, colors, quantize_alpha);
                let expanded = RgbaImage::from_fn(img.width(), img.height(), |x, y| {
                    let i = (y as usize) * (img.width() as usize) + x as usize;
                    let c = indices
                        .get(i)
                        .and_then(|&i| palette.get(usize::from(i)))
                        .copied()
                        .unwrap_or([0, 0, 0, 255]);
                    image::Rgba(c)
                });
                encode_png_truecolor(&expanded, alpha)?
            } else {
                encode_png_truecolor(img, alpha)?
            }
        }
        _ if opts.paletted && colors > 0 => encode_png_paletted(img, colors, quantize_alpha)?,
        _ => encode_png_truecolor(img, has_alpha)?,
    })
}

/// A paletted GIF: the image's colours (quantized to 256 when it has more), GIF87a, or GIF89a
/// with the fully transparent colour as its transparent index when `transparent` and a pixel
/// is transparent.
fn encode_gif(img: &RgbaImage, transparent: bool) -> Result<Vec<u8>, ImageError> {
    let err = |e: gif::EncodingError| ImageError(format!("cannot encode GIF: {e}"));
    let (w, h) = img.dimensions();
    let (Ok(w16), Ok(h16)) = (u16::try_from(w), u16::try_from(h)) else {
        return Err(ImageError(format!(
            "cannot encode GIF: {w}×{h} is too large"
        )));
    };
    let alpha = transparent && has_transparency(img);
    let mut q = quantize(img, 256, alpha);
    let mut key = None;
    if alpha {
        // GIF has one transparent index: the clearest colour, made fully transparent
        if let Some(i) = (0..q.palette.len()).min_by_key(|&i| q.palette[i][3]) {
            if q.palette[i][3] < 128 {
                key = u8::try_from(i).ok();
            }
        }
    }
    if q.palette.is_empty() {
        q.palette.push([0, 0, 0, 255]);
    }
    // a colour table of 2^n entries, as GIF stores it
    let mut rgb: Vec<u8> = q.palette.iter().flat_map(|c| [c[0], c[1], c[2]]).collect();
    let n = q.palette.len().next_power_of_two().max(2);
    rgb.resize(n * 3, 0);
    let mut out = Vec::new();
    {
        let mut enc = gif::Encoder::new(&mut out, w16, h16, &rgb).map_err(err)?;
        let frame = gif::Frame {
            width: w16,
            height: h16,
            buffer: std::borrow::Cow::Borrowed(&q.indices),
            transparent: key,
            ..gif::Frame::default()
        };
        enc.write_frame(&frame).map_err(err)?;
    }
    // the gif crate writes GIF89a; Pillow writes GIF87a when nothing needs 89a
    if key.is_none() && out.starts_with(b"GIF89a") {
        out[..6].copy_from_slice(b"GIF87a");
    }
    Ok(out)
}

/// An uncompressed TIFF as Pillow's writer lays it out (little endian, the IFD at offset 8
/// with its entries in tag order, the values that do not fit an entry after it in entry order,
/// each padded to an even length, then the pixels as one strip); RGB, or RGBA with
/// `ExtraSamples` 2 (unassociated alpha) when a pixel is not opaque. With `georef`, MapProxy's
/// GeoTIFF tags (`GeoReference.tiff_tags`, image/__init__.py:58-91).
fn encode_tiff(img: &RgbaImage, georef: Option<&GeoRef>) -> Result<Vec<u8>, ImageError> {
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const DOUBLE: u16 = 12;
    let too_large = || ImageError("cannot encode TIFF: too large".into());
    let (w, h) = img.dimensions();
    let alpha = has_transparency(img);
    let samples: u16 = if alpha { 4 } else { 3 };
    let data_len =
        u32::try_from(u64::from(w) * u64::from(h) * u64::from(samples)).map_err(|_| too_large())?;
    // (tag, type, count, value bytes)
    let short = |v: &[u16]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let double = |v: &[f64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    let mut entries: Vec<(u16, u16, u32, Vec<u8>)> = vec![
        (256, LONG, 1, w.to_le_bytes().to_vec()),
        (257, LONG, 1, h.to_le_bytes().to_vec()),
        (
            258,
            SHORT,
            u32::from(samples),
            short(&vec![8; usize::from(samples)]),
        ),
        (259, SHORT, 1, short(&[1])),
        (262, SHORT, 1, short(&[2])),
        // StripOffsets: set below, once the layout is known
        (273, LONG, 1, 0u32.to_le_bytes().to_vec()),
        (277, SHORT, 1, short(&[samples])),
        (278, LONG, 1, h.to_le_bytes().to_vec()),
        (279, LONG, 1, data_len.to_le_bytes().to_vec()),
        (284, SHORT, 1, short(&[1])),
    ];
    if alpha {
        entries.push((338, SHORT, 1, short(&[2])));
    }
    if let Some(g) = georef {
        let [x0, y0, x1, y1] = g.bbox;
        entries.push((
            33550,
            DOUBLE,
            3,
            double(&[(x1 - x0) / f64::from(w), (y1 - y0) / f64::from(h), 0.0]),
        ));
        entries.push((33922, DOUBLE, 6, double(&[0.0, 0.0, 0.0, x0, y1, 0.0])));
        // the EPSG number is a SHORT in MapProxy's tags: larger codes cannot be written
        let epsg = u16::try_from(g.epsg)
            .map_err(|_| ImageError(format!("cannot encode GeoTIFF: EPSG:{}", g.epsg)))?;
        let model = if g.latlong { 2 } else { 1 };
        entries.push((
            34735,
            SHORT,
            16,
            short(&[
                1, 1, 0, 3, 1024, 0, 1, model, 1025, 0, 1, 1, 3072, 0, 1, epsg,
            ]),
        ));
    }
    entries.sort_by_key(|e| e.0);
    let count = u16::try_from(entries.len()).map_err(|_| too_large())?;
    let ifd_end = 8 + 2 + 12 * entries.len() + 4;
    let extra: usize = entries
        .iter()
        .filter(|e| e.3.len() > 4)
        .map(|e| e.3.len().next_multiple_of(2))
        .sum();
    let strip_offset = u32::try_from(ifd_end + extra).map_err(|_| too_large())?;
    if let Some(e) = entries.iter_mut().find(|e| e.0 == 273) {
        e.3 = strip_offset.to_le_bytes().to_vec();
    }
    let mut out = Vec::with_capacity(strip_offset as usize + data_len as usize);
    out.extend_from_slice(b"II*\0");
    out.extend_from_slice(&8u32.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let mut offset = ifd_end;
    let mut values = Vec::with_capacity(extra);
    for (tag, typ, n, v) in &entries {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&typ.to_le_bytes());
        out.extend_from_slice(&n.to_le_bytes());
        if v.len() <= 4 {
            let mut inline = [0u8; 4];
            inline[..v.len()].copy_from_slice(v);
            out.extend_from_slice(&inline);
        } else {
            let at = u32::try_from(offset).map_err(|_| too_large())?;
            out.extend_from_slice(&at.to_le_bytes());
            values.extend_from_slice(v);
            if v.len() % 2 == 1 {
                values.push(0);
            }
            offset += v.len().next_multiple_of(2);
        }
    }
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&values);
    if alpha {
        out.extend_from_slice(img.as_raw());
    } else {
        out.extend(
            img.as_raw()
                .chunks_exact(4)
                .flat_map(|p| [p[0], p[1], p[2]]),
        );
    }
    Ok(out)
}

/// `encode` of a `width`×`height` image of one colour (a map with nothing drawn on its
/// background). The last few such answers are kept: encoding a uniform 1024×1024 JPEG still
/// transforms and codes every block (5 ms), and blank maps of one size and background repeat.
pub fn encode_uniform(
    width: u32,
    height: u32,
    color: [u8; 4],
    opts: &ImageOpts,
) -> Result<Bytes, ImageError> {
    type Key = (u32, u32, [u8; 4], ImageOpts);
    static KEPT: std::sync::Mutex<Vec<(Key, Bytes)>> = std::sync::Mutex::new(Vec::new());
    const KEEP: usize = 8;
    // a poisoned lock (a panic elsewhere while holding it) only loses the shortcut
    if let Ok(kept) = KEPT.lock() {
        let hit = kept
            .iter()
            .find(|((w, h, c, o), _)| (*w, *h, *c) == (width, height, color) && o == opts);
        if let Some((_, b)) = hit {
            return Ok(b.clone());
        }
    }
    let key: Key = (width, height, color, opts.clone());
    let out = encode(&blank_image(width, height, color), opts)?;
    if let Ok(mut kept) = KEPT.lock() {
        if kept.len() >= KEEP {
            kept.remove(0);
        }
        kept.push((key, out.clone()));
    }
    Ok(out)
}

/// Any pixel not fully opaque (MapProxy's `img_has_transparency`).
pub fn has_transparency(img: &RgbaImage) -> bool {
    !all_opaque(img.as_raw())
}

/// Whether every pixel of RGBA bytes has alpha 255. A block's pixels are ANDed as words
/// without a branch per pixel, which the compiler vectorizes (a pixel at a time, this scan
/// of a 1024×1024 map and of the image it was resized from was a tenth of the request).
pub fn all_opaque(rgba: &[u8]) -> bool {
    rgba.chunks(1024).all(|block| {
        let and = block.chunks_exact(4).fold(u32::MAX, |a, p| {
            a & u32::from_le_bytes([p[0], p[1], p[2], p[3]])
        });
        and >> 24 == 0xff
    })
}

/// The colour of an image of one colour, `None` when it has more (MapProxy's
/// `is_single_color_image`).
pub fn single_color(img: &RgbaImage) -> Option<[u8; 4]> {
    let mut pixels = img.pixels();
    let first = pixels.next()?.0;
    if pixels.all(|p| p.0 == first) {
        Some(first)
    } else {
        None
    }
}

/// A `width`×`height` image of one colour (`[0, 0, 0, 0]`: a blank transparent tile; MapProxy's
/// `BlankImageSource` with its `bgcolor`).
pub fn blank_image(width: u32, height: u32, color: [u8; 4]) -> RgbaImage {
    RgbaImage::from_pixel(width, height, image::Rgba(color))
}

/// `src` copied into `dst` with its upper left corner at `x`, `y` (pixels outside `dst`
/// dropped), row by row: image's `replace` goes pixel by pixel.
pub fn paste(dst: &mut RgbaImage, src: &RgbaImage, x: u32, y: u32) {
    let (dw, dh) = dst.dimensions();
    if x >= dw || y >= dh {
        return;
    }
    let w = src.width().min(dw - x) as usize;
    let rows = src.height().min(dh - y) as usize;
    let (sstride, dstride) = (src.width() as usize * 4, dw as usize * 4);
    let s: &[u8] = src;
    let d: &mut [u8] = dst;
    for r in 0..rows {
        let so = r * sstride;
        let d0 = (y as usize + r) * dstride + x as usize * 4;
        d[d0..d0 + w * 4].copy_from_slice(&s[so..so + w * 4]);
    }
}

/// `src` drawn over `dst` (same size) with alpha blending; opaque pixels are copied and
/// transparent ones skipped without the blend (image's `overlay` blends every pixel).
pub fn overlay(dst: &mut RgbaImage, src: &RgbaImage) {
    if dst.dimensions() != src.dimensions() {
        image::imageops::overlay(dst, src, 0, 0);
        return;
    }
    if !has_transparency(src) {
        dst.copy_from_slice(src);
        return;
    }
    for (d, s) in dst.pixels_mut().zip(src.pixels()) {
        d.0 = over(d.0, s.0);
    }
}

/// The pixel `src` drawn over `dst`: [`overlay`]'s blend, one pixel. Over an opaque pixel the
/// result is opaque, as Pillow's `alpha_composite` and `paste` with a mask give it (image's
/// float blend gives 254 for some alphas: 136 over 255 is 0.99999994).
fn over(dst: [u8; 4], src: [u8; 4]) -> [u8; 4] {
    use image::Pixel;
    match src[3] {
        255 => src,
        0 => dst,
        _ => {
            let mut d = image::Rgba(dst);
            d.blend(&image::Rgba(src));
            if dst[3] == 255 {
                d.0[3] = 255;
            }
            d.0
        }
    }
}

/// The `w`×`h` part of `img` at `x`, `y` (meta tile splitting); the part outside `img` is
/// transparent, as Pillow's `crop` fills it.
pub fn sub_image(img: &RgbaImage, x: u32, y: u32, w: u32, h: u32) -> RgbaImage {
    if x.saturating_add(w) <= img.width() && y.saturating_add(h) <= img.height() {
        return image::imageops::crop_imm(img, x, y, w, h).to_image();
    }
    let mut out = RgbaImage::new(w, h);
    for (ox, oy, p) in out.enumerate_pixels_mut() {
        let (sx, sy) = (u64::from(x) + u64::from(ox), u64::from(y) + u64::from(oy));
        if sx < u64::from(img.width()) && sy < u64::from(img.height()) {
            // in range: both fit in u32
            *p = *img.get_pixel(sx as u32, sy as u32);
        }
    }
    out
}

/// JPEG as Pillow writes it for MapProxy: 4:2:0, baseline, `jpeg_set_quality` tables, standard
/// Huffman tables, JFIF 1.01 with no density. With the `turbojpeg` feature by libjpeg-turbo, the
/// library Pillow itself uses (its SIMD code; building it needs cmake and nasm), else by
/// [`encode_jpeg_rust`]; the two write the same bytes.
fn encode_jpeg(img: &RgbaImage, quality: u8) -> Result<Vec<u8>, ImageError> {
    #[cfg(feature = "turbojpeg")]
    return encode_jpeg_turbo(img, quality);
    #[cfg(not(feature = "turbojpeg"))]
    return encode_jpeg_rust(img, quality);
}

/// [`encode_jpeg`] with libjpeg-turbo, through the turbojpeg crate; compressors are kept
/// between maps (at most one per CPU: `image::Kept`).
#[cfg(feature = "turbojpeg")]
fn encode_jpeg_turbo(img: &RgbaImage, quality: u8) -> Result<Vec<u8>, ImageError> {
    static COMPRESSORS: super::Kept<turbojpeg::Compressor> = super::Kept::new();
    let err = |e: turbojpeg::Error| ImageError(format!("cannot encode JPEG: {e}"));
    let (w, h) = (img.width() as usize, img.height() as usize);
    let image = turbojpeg::Image {
        pixels: img.as_raw().as_slice(),
        width: w,
        pitch: w * 4,
        height: h,
        // the fourth byte is not read
        format: turbojpeg::PixelFormat::RGBX,
    };
    let mut compressor = match COMPRESSORS.take() {
        Some(c) => c,
        None => turbojpeg::Compressor::new().map_err(err)?,
    };
    compressor
        .set_quality(i32::from(quality.clamp(1, 100)))
        .map_err(err)?;
    compressor
        .set_subsamp(turbojpeg::Subsamp::Sub2x2)
        .map_err(err)?;
    let out = compressor.compress_to_vec(image).map_err(err);
    // dropped (freed) when one per CPU is kept already
    drop(COMPRESSORS.give_back(compressor));
    out
}

/// [`encode_jpeg`] in pure Rust: [`super::jpeg`], libjpeg's arithmetic step for step.
#[cfg_attr(feature = "turbojpeg", allow(dead_code))]
fn encode_jpeg_rust(img: &RgbaImage, quality: u8) -> Result<Vec<u8>, ImageError> {
    super::jpeg::encode(img.as_raw(), img.width(), img.height(), quality)
        .map_err(|e| ImageError(format!("cannot encode JPEG: {e}")))
}

/// A truecolour PNG as Pillow writes one: RGBA (colour type 6) when `alpha`, else RGB (2), 8
/// bits, rows filtered by [`filter_rows`], deflated with zlib's `Z_FILTERED` strategy
/// (ZipEncode.c's default for PNG rows).
pub(super) fn encode_png_truecolor(img: &RgbaImage, alpha: bool) -> Result<Vec<u8>, ImageError> {
    let raw = filter_rows(img, alpha);
    let color_type = if alpha { 6 } else { 2 };
    write_png(
        img.dimensions(),
        8,
        color_type,
        &[],
        None,
        &raw,
        super::zlib::Strategy::Filtered,
    )
}

/// The scanlines of `img` (RGBA, or RGB when not `alpha`) each with its filter byte, chosen
/// as Pillow's PNG encoder chooses (ZipEncode.c, after libpng's heuristic): of None, Up, Sub
/// and Paeth, tried in that order, the first with the least sum of the filtered bytes'
/// distances from zero (a byte v counts min(v, 256 − v)); a later filter wins only when
/// strictly less, and none is tried once a sum is 0. (Average only with Pillow's `optimize`,
/// which MapProxy does not ask for.) The row above the first is zeros.
fn filter_rows(img: &RgbaImage, alpha: bool) -> Vec<u8> {
    let bpp = if alpha { 4 } else { 3 };
    let width = img.width() as usize;
    let n = width * bpp;
    let mut out = Vec::with_capacity((n + 1) * img.height() as usize);
    if width == 0 {
        return out;
    }
    let mut filter = RowFilter::new(n, bpp);
    let mut cur = vec![0u8; n];
    for row in img.as_raw().chunks_exact(width * 4) {
        if alpha {
            cur.copy_from_slice(row);
        } else {
            for (d, s) in cur.chunks_exact_mut(3).zip(row.chunks_exact(4)) {
                d.copy_from_slice(&s[..3]);
            }
        }
        filter.push(&mut cur, &mut out);
    }
    out
}

/// Pillow's choice of a row's filter ([`filter_rows`]) for rows of `n` bytes, `bpp` bytes a
/// pixel (1 for packed paletted rows: ZipEncode.c's `(bits + 7) / 8`).
struct RowFilter {
    bpp: usize,
    prev: Vec<u8>,
    up: Vec<u8>,
    sub: Vec<u8>,
    paeth: Vec<u8>,
}

impl RowFilter {
    fn new(n: usize, bpp: usize) -> RowFilter {
        RowFilter {
            bpp,
            prev: vec![0; n],
            up: vec![0; n],
            sub: vec![0; n],
            paeth: vec![0; n],
        }
    }

    /// `cur` (the next row, `n` bytes) filtered onto `out` after its filter byte; `cur` is
    /// left with the row before it (swapped with the one kept).
    fn push(&mut self, cur: &mut Vec<u8>, out: &mut Vec<u8>) {
        let (bpp, n) = (self.bpp, cur.len());
        let cost = |v: u8| u64::from(if v < 128 { v } else { v.wrapping_neg() });
        let (prev, up, sub, paeth) = (&self.prev, &mut self.up, &mut self.sub, &mut self.paeth);
        let mut kind = 0u8;
        let mut sum: u64 = cur.iter().map(|&v| cost(v)).sum();
        if sum > 0 {
            let mut s = 0;
            for ((d, &c), &b) in up.iter_mut().zip(cur.iter()).zip(prev) {
                *d = c.wrapping_sub(b);
                s += cost(*d);
            }
            if s < sum {
                (kind, sum) = (2, s);
            }
        }
        if sum > 0 {
            let mut s = 0;
            for i in 0..n {
                let left = if i >= bpp { cur[i - bpp] } else { 0 };
                sub[i] = cur[i].wrapping_sub(left);
                s += cost(sub[i]);
            }
            if s < sum {
                (kind, sum) = (1, s);
            }
        }
        if sum > 0 {
            let mut s = 0;
            for i in 0..n {
                let (a, c) = if i >= bpp {
                    (i16::from(cur[i - bpp]), i16::from(prev[i - bpp]))
                } else {
                    (0, 0)
                };
                let b = i16::from(prev[i]);
                let (pa, pb, pc) = ((b - c).abs(), (a - c).abs(), (a + b - 2 * c).abs());
                let predictor = if pa <= pb && pa <= pc {
                    a
                } else if pb <= pc {
                    b
                } else {
                    c
                };
                // a predictor is one of the bytes a, b, c
                paeth[i] = cur[i].wrapping_sub(predictor as u8);
                s += cost(paeth[i]);
            }
            if s < sum {
                kind = 4;
            }
        }
        out.push(kind);
        out.extend_from_slice(match kind {
            1 => &self.sub,
            2 => &self.up,
            4 => &self.paeth,
            _ => cur,
        });
        std::mem::swap(&mut self.prev, cur);
    }
}

/// A GIF's palette and each pixel's index into it.
struct Quantized {
    /// RGBA entries.
    palette: Vec<[u8; 4]>,
    indices: Vec<u8>,
}

/// At most `colors` (1-256) colours; `alpha: false` quantizes the RGB image (alpha dropped, as
/// MapProxy's `img.convert('RGB')`).
fn quantize(img: &RgbaImage, colors: usize, alpha: bool) -> Quantized {
    // exact palette when the image has few colours, built with the indices in one pass, run
    // by run: the pixels equal to a run's first (long runs in maps: backgrounds, blank
    // areas) are found with one compare each and share its one lookup
    let mut exact: ColorMap = ColorMap::default();
    let mut palette: Vec<[u8; 4]> = Vec::new();
    let mut indices: Vec<u8> = Vec::with_capacity(img.as_raw().len() / 4);
    let mut fits = true;
    // RGBA as a u32; without alpha, alpha forced to 255 (MapProxy's `img.convert('RGB')`)
    let opaque = if alpha {
        0
    } else {
        u32::from_ne_bytes([0, 0, 0, 255])
    };
    let word = |p: &[u8]| u32::from_ne_bytes([p[0], p[1], p[2], p[3]]) | opaque;
    let mut rest: &[u8] = img.as_raw();
    while rest.len() >= 4 {
        let c = word(rest);
        let run = 1 + rest[4..]
            .chunks_exact(4)
            .take_while(|p| word(p) == c)
            .count();
        let i = match exact.entry(c) {
            std::collections::hash_map::Entry::Occupied(e) => *e.get(),
            std::collections::hash_map::Entry::Vacant(e) => {
                if palette.len() == colors {
                    fits = false;
                    break;
                }
                // palette.len() < colors <= 256
                let i = palette.len() as u8;
                e.insert(i);
                palette.push(c.to_ne_bytes());
                i
            }
        };
        indices.resize(indices.len() + run, i);
        rest = &rest[run * 4..];
    }
    if fits {
        return sort_transparent_first(Quantized { palette, indices });
    }
    let rgba: Vec<u8> = if alpha {
        img.as_raw().clone()
    } else {
        img.as_raw()
            .chunks_exact(4)
            .flat_map(|p| [p[0], p[1], p[2], 255])
            .collect()
    };
    let nq = color_quant::NeuQuant::new(10, colors, &rgba);
    let map = nq.color_map_rgba();
    let palette: Vec<[u8; 4]> = map
        .chunks_exact(4)
        // NeuQuant's learned alpha can drift from 255 on an opaque image
        .map(|c| [c[0], c[1], c[2], if alpha { c[3] } else { 255 }])
        .collect();
    // NeuQuant's palette index for a colour is cached: tiles repeat colours a lot
    let mut memo: ColorMap = ColorMap::default();
    let mut last: Option<([u8; 4], u8)> = None;
    let indices = rgba
        .chunks_exact(4)
        .map(|p| {
            let c = [p[0], p[1], p[2], p[3]];
            if let Some((lc, li)) = last {
                if lc == c {
                    return li;
                }
            }
            let i = *memo
                .entry(u32::from_ne_bytes(c))
                .or_insert_with(|| u8::try_from(nq.index_of(p)).unwrap_or(0));
            last = Some((c, i));
            i
        })
        .collect();
    sort_transparent_first(Quantized { palette, indices })
}

/// Colour (RGBA as a u32) → palette index, with foldhash: std's SipHash was a third of a
/// WMS PNG's encoding time.
type ColorMap = HashMap<u32, u8, foldhash::fast::FixedState>;

/// Entries with alpha < 255 first, so the `tRNS` chunk is as short as it can be.
fn sort_transparent_first(q: Quantized) -> Quantized {
    if q.palette.iter().all(|c| c[3] == 255) {
        return q;
    }
    let mut order: Vec<usize> = (0..q.palette.len()).collect();
    order.sort_by_key(|&i| q.palette[i][3] == 255);
    let mut new_index = vec![0u8; q.palette.len()];
    for (new, &old) in order.iter().enumerate() {
        // at most 256 entries
        new_index[old] = new as u8;
    }
    Quantized {
        palette: order.iter().map(|&i| q.palette[i]).collect(),
        indices: q
            .indices
            .iter()
            .map(|&i| new_index.get(usize::from(i)).copied().unwrap_or(0))
            .collect(),
    }
}

/// MapProxy's paletted PNG: Pillow's `quantize(colors, FASTOCTREE)` ([`super::octree`]) and
/// its PNG writer: a `PLTE` of all `colors` entries (unused ones black), 1, 2 or 4 bits per
/// pixel for up to 16, and with alpha a `tRNS` of every entry's alpha; deflated with the
/// `Z_RLE` MapProxy asks for ([`write_paletted`]).
fn encode_png_paletted(img: &RgbaImage, colors: usize, alpha: bool) -> Result<Vec<u8>, ImageError> {
    let (palette, indices) = super::octree::quantize(img, colors, alpha);
    let plte: Vec<u8> = palette.iter().flat_map(|c| [c[0], c[1], c[2]]).collect();
    let trns: Option<Vec<u8>> = alpha.then(|| palette.iter().map(|c| c[3]).collect());
    write_paletted(
        img.dimensions(),
        palette.len().max(1),
        &indices,
        &plte,
        trns.as_deref().filter(|t| !t.is_empty()),
        true,
    )
}

/// A paletted PNG of `indices` (one a pixel, row by row) as Pillow's writer writes a `P`
/// image of `colors` (1-256) palette entries: 1, 2 or 4 bits per pixel for up to 2, 4 or 16
/// (raw modes `P;1`, `P;2`, `P;4`), else 8; `plte` and `trns` as given (`trns` written even
/// when empty). Rows of raw mode `P` are not filtered (ZipEncode.c's `ZIP_PNG_PALETTE`),
/// packed rows are, as truecolour rows are ([`RowFilter`], one byte a pixel). Deflated with
/// `Z_RLE` when `rle` (MapProxy's `compress_type` for quantized images), else with Pillow's
/// default: `Z_DEFAULT_STRATEGY` for unfiltered rows, `Z_FILTERED` for filtered ones.
pub(super) fn write_paletted(
    (width, height): (u32, u32),
    colors: usize,
    indices: &[u8],
    plte: &[u8],
    trns: Option<&[u8]>,
    rle: bool,
) -> Result<Vec<u8>, ImageError> {
    let bits: usize = match colors {
        0..=2 => 1,
        3..=4 => 2,
        5..=16 => 4,
        _ => 8,
    };
    let w = width as usize;
    let h = height as usize;
    let row_bytes = (w * bits).div_ceil(8);
    let mut raw = Vec::with_capacity((row_bytes + 1) * h);
    if w > 0 {
        let mut filter = (bits < 8).then(|| RowFilter::new(row_bytes, 1));
        let mut packed = Vec::with_capacity(row_bytes);
        for row in indices.chunks_exact(w).take(h) {
            let Some(f) = filter.as_mut() else {
                // filter byte 0 (none)
                raw.push(0);
                raw.extend_from_slice(row);
                continue;
            };
            packed.clear();
            let per_byte = 8 / bits;
            let mask = (1u8 << bits) - 1;
            for group in row.chunks(per_byte) {
                let mut b = 0u8;
                for (i, &v) in group.iter().enumerate() {
                    b |= (v & mask) << (8 - bits * (i + 1));
                }
                packed.push(b);
            }
            f.push(&mut packed, &mut raw);
        }
    }
    let strategy = if rle {
        super::zlib::Strategy::Rle
    } else if bits < 8 {
        super::zlib::Strategy::Filtered
    } else {
        super::zlib::Strategy::Default
    };
    // bits is 1, 2, 4 or 8
    write_png((width, height), bits as u8, 3, plte, trns, &raw, strategy)
}

/// A PNG file written directly: signature, `IHDR`, `PLTE` and `tRNS` when given, `IDAT`s
/// of at most Pillow's block size (`max(64 KiB, 4 × width)`) with `raw` (the scanlines with
/// their filter bytes) deflated by the stock zlib as Pillow deflates them: level 6 (Pillow's
/// default), memLevel 9 (Pillow's), `strategy` ([`super::zlib`]), `IEND`. For quantized
/// images MapProxy's `img_to_buf` passes `compress_type=Image.RLE`; truecolour rows get
/// Pillow's default for PNG, `Z_FILTERED`. (The png crate's encoder has no strategy knob
/// and its own deflate.)
fn write_png(
    (width, height): (u32, u32),
    bit_depth: u8,
    color_type: u8,
    plte: &[u8],
    trns: Option<&[u8]>,
    raw: &[u8],
    strategy: super::zlib::Strategy,
) -> Result<Vec<u8>, ImageError> {
    let deflated = super::zlib::deflate(raw, strategy)
        .map_err(|e| ImageError(format!("cannot encode PNG: {e}")))?;
    // Pillow's encoder hands the stream over in blocks of its buffer size, each an IDAT:
    // ImageFile's `max(MAXBLOCK, width * 4)`
    let block = (width as usize).saturating_mul(4).max(65_536);
    let idats = deflated.len().div_ceil(block);
    // signature, the chunks' data and 12 bytes of length, type and CRC each
    let size =
        8 + 25 + plte.len() + trns.map_or(0, <[u8]>::len) + deflated.len() + 12 * (idats + 4);
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = [0u8; 13];
    ihdr[..4].copy_from_slice(&width.to_be_bytes());
    ihdr[4..8].copy_from_slice(&height.to_be_bytes());
    // bit depth, colour type; compression, filter method and interlace 0
    ihdr[8] = bit_depth;
    ihdr[9] = color_type;
    png_chunk(&mut out, b"IHDR", &ihdr)?;
    if !plte.is_empty() {
        png_chunk(&mut out, b"PLTE", plte)?;
    }
    if let Some(trns) = trns {
        png_chunk(&mut out, b"tRNS", trns)?;
    }
    for part in deflated.chunks(block) {
        png_chunk(&mut out, b"IDAT", part)?;
    }
    png_chunk(&mut out, b"IEND", &[])?;
    Ok(out)
}

/// One PNG chunk: length, type, data, CRC of type and data.
fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) -> Result<(), ImageError> {
    let len = u32::try_from(data.len())
        .map_err(|_| ImageError("cannot encode PNG: chunk too large".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    let at = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[at..]);
    out.extend_from_slice(&crc.to_be_bytes());
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// Tiles given by their bytes, for [`stitch`].
    fn encoded<'a>(parts: &[Option<&'a [u8]>]) -> Vec<Option<StitchTile<'a>>> {
        parts.iter().map(|p| p.map(StitchTile::Encoded)).collect()
    }

    /// MapProxy 7's GetMap of a white 100×80 map in EPSG:4326 (-180,-90,180,90) as
    /// image/tiff, up to its pixels: Pillow's layout and MapProxy's GeoTIFF tags.
    const MAPPROXY_TIFF_HEAD: &str = "49492a00080000000d000001040001000000640000000101040001000000500000000201030003000000aa0000000301030001000000010000000601030001000000020000001101040001000000180100001501030001000000030000001601040001000000500000001701040001000000c05d00001c01030001000000010000000e830c0003000000b000000082840c0006000000c8000000af87030010000000f800000000000000080008000800cdcccccccccc0c400000000000000240000000000000000000000000000000000000000000000000000000000000000000000000008066c000000000008056400000000000000000010001000000030000040000010002000104000001000100000c00000100e610";

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn tiff_as_mapproxy_writes_it() {
        let white = blank_image(100, 80, [255, 255, 255, 255]);
        for fmt in ["image/tiff", "image/GeoTIFF"] {
            let mut opts = ImageOpts::new(ImageFormat::new(fmt));
            opts.georef = Some(GeoRef {
                bbox: [-180.0, -90.0, 180.0, 90.0],
                epsg: 4326,
                latlong: true,
            });
            let out = encode(&white, &opts).expect("encodes");
            assert_eq!(out.len(), 280 + 100 * 80 * 3);
            assert_eq!(hex(&out[..280]), MAPPROXY_TIFF_HEAD, "{fmt}");
            assert!(out[280..].iter().all(|b| *b == 255));
            let back = decode(&out).expect("decodes");
            assert_eq!(back.dimensions(), (100, 80));
            assert!(back.pixels().all(|p| p.0 == [255, 255, 255, 255]));
        }
        // without a georef (a tile): no GeoTIFF tags; with transparency: RGBA, ExtraSamples
        let mut img = gradient(true);
        img.put_pixel(3, 4, image::Rgba([1, 2, 3, 0]));
        let out = encode(&img, &ImageOpts::new(ImageFormat::new("image/tiff"))).expect("encodes");
        let entries = u16::from_le_bytes([out[8], out[9]]);
        let tags: Vec<u16> = (0..usize::from(entries))
            .map(|i| u16::from_le_bytes([out[10 + 12 * i], out[11 + 12 * i]]))
            .collect();
        assert_eq!(
            tags,
            [256, 257, 258, 259, 262, 273, 277, 278, 279, 284, 338]
        );
        assert_eq!(decode(&out).expect("decodes"), img);
    }

    #[test]
    fn gif_is_paletted() {
        // opaque: GIF87a, the exact colours of an image with few
        let mut img = blank_image(20, 10, [255, 255, 255, 255]);
        img.put_pixel(1, 1, image::Rgba([200, 0, 0, 255]));
        let out = encode(&img, &ImageOpts::new(ImageFormat::new("image/gif"))).expect("encodes");
        assert!(out.starts_with(b"GIF87a"));
        assert_eq!(decode(&out).expect("decodes"), img);
        // transparent: GIF89a with a transparent index
        let mut t = blank_image(20, 10, [255, 255, 255, 0]);
        t.put_pixel(1, 1, image::Rgba([0, 0, 0, 255]));
        let mut opts = ImageOpts::new(ImageFormat::new("image/gif"));
        opts.transparent = true;
        let out = encode(&t, &opts).expect("encodes");
        assert!(out.starts_with(b"GIF89a"));
        let back = decode(&out).expect("decodes");
        assert_eq!(back.get_pixel(1, 1).0, [0, 0, 0, 255]);
        assert_eq!(back.get_pixel(5, 5).0[3], 0);
        // more than 256 colours: quantized, still an image of the size
        let out = encode(&gradient(false), &ImageOpts::new(ImageFormat::new("gif"))).expect("gif");
        assert_eq!(decode(&out).expect("decodes").dimensions(), (256, 256));
    }

    fn gradient(alpha: bool) -> RgbaImage {
        RgbaImage::from_fn(256, 256, |x, y| {
            image::Rgba([
                x as u8,
                y as u8,
                (x ^ y) as u8,
                if alpha { (x / 2) as u8 } else { 255 },
            ])
        })
    }

    /// The pure-Rust JPEG encoder: baseline 4:2:0 at the quality asked, the pixels back within
    /// JPEG's error.
    #[test]
    fn jpeg_decodes_back() {
        let img = RgbaImage::from_fn(300, 200, |x, y| {
            image::Rgba([(x / 2) as u8, ((y + x / 4) / 2) as u8, 128, 255])
        });
        let jpeg = encode_jpeg_rust(&img, 90).expect("encode");
        assert_eq!(&jpeg[..2], &[0xff, 0xd8]);
        // SOF0 (baseline), three components, Y sampled 2×2
        let sof = jpeg
            .windows(2)
            .position(|w| w == [0xff, 0xc0])
            .expect("SOF0");
        assert_eq!(jpeg[sof + 9], 3);
        assert_eq!(jpeg[sof + 11], 0x22);
        let back = decode(&jpeg).expect("decode");
        let worst = back
            .as_raw()
            .iter()
            .zip(img.as_raw())
            .map(|(a, b)| (i16::from(*a) - i16::from(*b)).abs())
            .max();
        assert!(worst.is_some_and(|d| d <= 8), "{worst:?}");
        for (w, h) in [(0, 5), (5, 0), (65501, 1)] {
            assert!(super::super::jpeg::encode(&[], w, h, 90).is_err());
        }
    }

    /// The pure-Rust encoder writes libjpeg-turbo's bytes: every size from 1×1 to 40×40 (all
    /// the edge cases of 4:2:0's padding and dummy blocks), larger ones, and qualities from 1
    /// to 100, over noise (every coefficient), gradients and flat areas.
    #[cfg(feature = "turbojpeg")]
    #[test]
    fn jpeg_rust_is_libjpeg_turbo() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut rand = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut sizes: Vec<(u32, u32)> = (1..=40)
            .flat_map(|w| (1..=40).map(move |h| (w, h)))
            .collect();
        sizes.extend([(256, 256), (257, 255), (513, 97), (1000, 3)]);
        let mut wrong = Vec::new();
        for (n, (w, h)) in sizes.into_iter().enumerate() {
            let kind = n % 3;
            let img = RgbaImage::from_fn(w, h, |x, y| {
                let r = rand().to_le_bytes();
                match kind {
                    0 => image::Rgba([r[0], r[1], r[2], r[3]]),
                    1 => image::Rgba([
                        (x * 7) as u8,
                        (y * 5) as u8,
                        ((x + y) * 3) as u8 ^ (r[0] & 7),
                        255,
                    ]),
                    _ if (x / 5 + y / 3) % 2 == 0 => image::Rgba([250, 240, 230, 255]),
                    _ => image::Rgba([20, 90, r[0] | 0xc0, 0]),
                }
            });
            let q = [90, 75, 1, 100, 50, 49, 95, 10][n % 8];
            let ours = encode_jpeg_rust(&img, q).expect("encode");
            let turbo = encode_jpeg_turbo(&img, q).expect("encode");
            if ours != turbo {
                let at = ours.iter().zip(&turbo).position(|(a, b)| a != b);
                wrong.push(format!(
                    "{w}x{h} q{q} kind {kind}: {} bytes, libjpeg-turbo {}, first difference at {at:?}",
                    ours.len(),
                    turbo.len()
                ));
            }
        }
        assert!(wrong.is_empty(), "{} differ: {wrong:#?}", wrong.len());
    }

    /// MapProxy 7's `img_to_buf` of [`golden_px`]'s RGBA images as `image/jpeg` (Pillow 13 with
    /// libjpeg-turbo 3.2: `convert('RGB')`, `save(buf, 'jpeg', quality=Q)`), at the default
    /// `jpeg_quality` 90 (`None`) or an `encoding_options.jpeg_quality`: md5 and length of the
    /// file, from `tests/gen_jpeg_cases.py`.
    /// The pixels of MapProxy 7's JPEGs as Pillow decodes them (md5 of the RGBA bytes,
    /// `tests/gen_jpeg_cases.py`): the same with the `turbojpeg` feature (libjpeg-turbo
    /// decodes); image's decoder (the default build) is a few levels off.
    #[test]
    fn jpeg_decodes_as_pillow() {
        use md5::{Digest, Md5};
        let cases: [(&str, u32, u32, u8, &str); 4] = [
            ("noise", 256, 256, 90, "cdbf07f904e4dd6def796f3bf8d9866d"),
            ("map", 600, 400, 90, "fb8bbf3e694e812e3bad5f6e31ac03d3"),
            ("noise", 100, 37, 75, "8635a34aa6fb62187c00f8dccad457c4"),
            ("gradient", 17, 9, 100, "5bcc550444c67f3bc7f2a26172b649d4"),
        ];
        for (name, w, h, q, md5) in cases {
            let img = RgbaImage::from_fn(w, h, |x, y| image::Rgba(golden_px(name, x, y)));
            let mut o = ImageOpts::new(ImageFormat::jpeg());
            o.jpeg_quality = q;
            let back = decode(&encode(&img, &o).expect("encodes")).expect("decodes");
            let got = format!("{:x}", Md5::digest(back.as_raw()));
            if cfg!(feature = "turbojpeg") {
                assert_eq!(got, md5, "{name} {w}x{h} q{q}");
            } else {
                // zune-jpeg's IDCT and upsampling are not libjpeg's: a few levels off
                assert_eq!(back.dimensions(), (w, h));
                assert!(back.pixels().all(|p| p.0[3] == 255));
            }
        }
    }

    #[test]
    fn jpeg_is_mapproxys_byte_for_byte() {
        use md5::{Digest, Md5};
        type Case = (&'static str, u32, u32, Option<u8>, &'static str, usize);
        #[rustfmt::skip]
        let cases: [Case; 13] = [
            ("gradient", 256, 256, None, "6bbd990450ba5303c941dfbd9cfb3c1a", 5972),
            ("gradient", 256, 256, Some(75), "74a9e515d9c26458418336d965caa875", 3982),
            ("gradient_alpha", 256, 256, None, "6bbd990450ba5303c941dfbd9cfb3c1a", 5972),
            ("few", 256, 256, None, "578727c2b3ee9721a282e4633385c812", 3365),
            ("noise", 256, 256, None, "8847816f1660168baa0e62ca8d5e484f", 57237),
            ("noise", 256, 256, Some(75), "7f68732df7d8e5067fc7119c97d2a13a", 38069),
            ("noise", 100, 37, None, "b9bd9c0366d500f00fc614d5cb942f4e", 4369),
            ("noise", 700, 500, Some(95), "e83930f5cadc673edf4277b9bcbb57dc", 403407),
            ("map", 600, 400, None, "7a05daec7d673d36267edc85aabe110c", 13219),
            ("map", 100, 37, Some(75), "a71b287893babf9689ae4fb98850b26c", 1014),
            ("gradient", 5, 3, None, "ba8e16ac45e03417ed5b2083bdcf9694", 635),
            ("gradient", 17, 9, Some(100), "e2830704de0134eb84729ddbac55d865", 751),
            ("noise", 33, 1, Some(1), "d21ef169abdbd83e825a59083dcdf787", 651),
        ];
        let mut wrong = Vec::new();
        for (name, w, h, quality, md5, len) in cases {
            let img = RgbaImage::from_fn(w, h, |x, y| image::Rgba(golden_px(name, x, y)));
            let mut o = ImageOpts::new(ImageFormat::jpeg());
            if let Some(q) = quality {
                o.jpeg_quality = q;
            }
            let jpeg = encode(&img, &o).expect("encodes");
            if let Ok(dir) = std::env::var("MAPPROXY_JPEG_DUMP") {
                let q = quality.map_or("None".to_string(), |q| q.to_string());
                std::fs::write(format!("{dir}/{name}_{w}x{h}_q{q}.jpg"), &jpeg).expect("dump");
            }
            let got = format!("{:x}", Md5::digest(&jpeg));
            if got != md5 || jpeg.len() != len {
                wrong.push(format!(
                    "{name} {w}x{h} q={quality:?}: {} bytes (want {len})",
                    jpeg.len()
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// The pixel of a test image at (x, y), as `tests/gen_png_goldens.py` computes it for
    /// MapProxy 7 (see [`paletted_png_is_mapproxys_byte_for_byte`]).
    pub(crate) fn golden_px(name: &str, x: u32, y: u32) -> [u8; 4] {
        let (xi, yi) = (i64::from(x), i64::from(y));
        match name {
            "gradient" => [x as u8, y as u8, (x ^ y) as u8, 255],
            "gradient_alpha" => [x as u8, y as u8, (x ^ y) as u8, (x / 2) as u8],
            "few" => match y {
                10 => [200, 0, 0, 255],
                20 => [0, 0, 200, 0],
                _ => [255, 255, 255, 255],
            },
            "noise" => {
                let v = (xi * 7919 + yi * 104_729 + xi * yi * 31) % 65_521;
                let a = if !(x + y).is_multiple_of(7) {
                    255
                } else {
                    (v % 200) as u8
                };
                [v as u8, (v >> 3) as u8, ((x * 3 + y) % 256) as u8, a]
            }
            "map" => {
                let d = (((xi - 300).pow(2) + (yi - 200).pow(2)) as f64).sqrt();
                let mut c = if d < 150.0 {
                    [170, 211, 223]
                } else if d < 152.0 {
                    [(170.0 + (d - 150.0) * 30.0) as u8, 200, 180]
                } else {
                    [242, 239, 233]
                };
                if (xi - yi).abs() < 2 {
                    c = [230, 50, 50];
                }
                [c[0], c[1], c[2], if x > 5 { 255 } else { 128 }]
            }
            _ => unreachable!("{name}"),
        }
    }

    /// MapProxy 7's `img_to_buf` of these RGBA images as `image/png` (paletted, 256 colours;
    /// Pillow 13's FASTOCTREE, zlib RLE, IDATs of 64 KiB): md5 and length of the file. The
    /// generator: each image `Image.new('RGBA', (w, h))` filled with [`golden_px`]'s pixels,
    /// `img_to_buf(img, ImageOptions(format='image/png', transparent=t, colors=256))`.
    #[test]
    fn paletted_png_is_mapproxys_byte_for_byte() {
        let cases: [(&str, u32, u32, bool, &str, usize); 10] = [
            (
                "gradient",
                256,
                256,
                false,
                "75e8c98ee4bfc69c9f55e426ad816751",
                7236,
            ),
            (
                "gradient_alpha",
                256,
                256,
                true,
                "4736ed3569effa608e312f517810c2ba",
                4760,
            ),
            (
                "few",
                256,
                256,
                true,
                "861b9bbe830c6d45c7f93b30f12d89f6",
                1198,
            ),
            (
                "few",
                256,
                256,
                false,
                "19135acfa8bda6284722d3418649fbf3",
                930,
            ),
            (
                "noise",
                256,
                256,
                false,
                "bfb7b8046eb6a7062e8506447c979d7a",
                56316,
            ),
            (
                "noise",
                256,
                256,
                true,
                "65b9885bbd0a0eea8c6711d7e1c45c1c",
                57181,
            ),
            (
                "noise",
                700,
                500,
                false,
                "d5e118ef7d25188751264a6e3ba5ab24",
                292039,
            ),
            (
                "map",
                600,
                400,
                true,
                "f98c2b0a2cd364d491987ad5f6b6f4ab",
                5364,
            ),
            (
                "map",
                600,
                400,
                false,
                "cb1f44dfc3c07106b29206d32c6d4dd3",
                4180,
            ),
            (
                "gradient",
                5,
                3,
                true,
                "4782a3cc4a213f0c245264d0fedb38c7",
                1115,
            ),
        ];
        assert_goldens(&cases, true);
    }

    /// Each case (image name, size, transparent, md5, length) encoded as `image/png`,
    /// `paletted` or not, against MapProxy 7's file.
    fn assert_goldens(cases: &[(&str, u32, u32, bool, &str, usize)], paletted: bool) {
        use md5::{Digest, Md5};
        let mut wrong = Vec::new();
        for &(name, w, h, transparent, md5, len) in cases {
            let img = RgbaImage::from_fn(w, h, |x, y| image::Rgba(golden_px(name, x, y)));
            let mut o = ImageOpts::new(ImageFormat::png());
            o.transparent = transparent;
            o.paletted = paletted;
            let png = encode(&img, &o).expect("encodes");
            let got = format!("{:x}", Md5::digest(&png));
            if got != md5 || png.len() != len {
                wrong.push(format!(
                    "{name} {w}x{h} transparent={transparent}: {} bytes (want {len})",
                    png.len()
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// MapProxy 7's `img_to_buf` of opaque images quantized to 2, 4 and 16 colours
    /// (gen_png_goldens.py): 1, 2 and 4 bits a pixel, the packed rows filtered as Pillow
    /// filters rows of raw modes `P;1`, `P;2`, `P;4`, then `Z_RLE`.
    #[test]
    fn small_palettes_are_mapproxys_byte_for_byte() {
        use md5::{Digest, Md5};
        let cases: [(&str, u32, u32, u16, &str, usize); 5] = [
            ("noise", 64, 64, 2, "81e85a88a09c038e61d5e9cf3740555a", 251),
            ("noise", 64, 64, 4, "69bf38dbaff7ebd5192c7bf215e990b2", 464),
            (
                "noise",
                64,
                64,
                16,
                "4901848cd6f89a9733727cd73ee13f94",
                1324,
            ),
            (
                "map",
                600,
                400,
                16,
                "fa25e3845b48060872cc3ef3a0627592",
                4310,
            ),
            ("gradient", 5, 3, 4, "9a2cf44dd32f350e5f085885c04675e8", 91),
        ];
        let mut wrong = Vec::new();
        for (name, w, h, colors, md5, len) in cases {
            let img = RgbaImage::from_fn(w, h, |x, y| image::Rgba(golden_px(name, x, y)));
            let mut o = ImageOpts::new(ImageFormat::png());
            o.colors = colors;
            let png = encode(&img, &o).expect("encodes");
            let got = format!("{:x}", Md5::digest(&png));
            if got != md5 || png.len() != len {
                wrong.push(format!(
                    "{name} {w}x{h} {colors}: {} bytes (want {len})",
                    png.len()
                ));
            }
        }
        assert!(wrong.is_empty(), "{wrong:#?}");
    }

    /// MapProxy 7's `img_to_buf` of these images as truecolour `image/png` (`colors=0`, as
    /// `paletted: false` gives): Pillow 13's row filters and zlib 1.2.13's `Z_FILTERED`
    /// deflate. The images as in [`paletted_png_is_mapproxys_byte_for_byte`], converted to
    /// RGB when not transparent (MapProxy holds an opaque layer's image as RGB).
    #[test]
    fn truecolour_png_is_mapproxys_byte_for_byte() {
        let cases: [(&str, u32, u32, bool, &str, usize); 13] = [
            (
                "gradient",
                256,
                256,
                false,
                "9c8031ce76bcd4660151816127115020",
                1315,
            ),
            (
                "gradient_alpha",
                256,
                256,
                true,
                "fd125f7c8cf25acbae2b9467ff66a419",
                1606,
            ),
            (
                "few",
                256,
                256,
                true,
                "091e29ee0aa68ab98b6c94f1431280df",
                869,
            ),
            (
                "few",
                256,
                256,
                false,
                "eb74b99d80dd23d4c7d37f9379592f49",
                771,
            ),
            (
                "noise",
                256,
                256,
                false,
                "8630a5a342754a89a1a671a50f0ebe7e",
                120505,
            ),
            (
                "noise",
                256,
                256,
                true,
                "22fe778199bd30cce99851b738244a2a",
                161673,
            ),
            (
                "noise",
                700,
                500,
                false,
                "9196bf4b2b8a18809895e8dfe454fd31",
                616046,
            ),
            (
                "noise",
                700,
                500,
                true,
                "13956ae36d815e754b123bdb6187e62d",
                839109,
            ),
            (
                "map",
                600,
                400,
                true,
                "2b052a771bedc3e6781a16ad37dbb761",
                7708,
            ),
            (
                "map",
                600,
                400,
                false,
                "b7a11195596a88a0a12eff7dcee1ae8a",
                7115,
            ),
            (
                "gradient",
                5,
                3,
                true,
                "2d47516b4a847f3f9cf5ef7332ea7fcd",
                95,
            ),
            (
                "gradient",
                5,
                3,
                false,
                "5fb80ae164a1c56622840756e16d6095",
                92,
            ),
            (
                "gradient",
                1,
                1,
                false,
                "73acd0b4a2391d4bbd9765aca5db19dc",
                69,
            ),
        ];
        assert_goldens(&cases, false);
    }

    #[test]
    fn exact_palette_keeps_pixels() {
        let mut img = blank_image(256, 256, [255, 255, 255, 255]);
        for x in 0..256 {
            img.put_pixel(x, 10, image::Rgba([200, 0, 0, 255]));
            img.put_pixel(x, 20, image::Rgba([0, 0, 200, 0]));
        }
        let mut o = ImageOpts::new(ImageFormat::png());
        o.transparent = true;
        let png = encode(&img, &o).expect("encode");
        assert_eq!(decode(&png).expect("decode"), img);
        // opaque: alpha dropped, the colours kept (runs of one colour cross rows)
        o.transparent = false;
        let png = encode(&img, &o).expect("encode");
        let mut want = img.clone();
        for p in want.pixels_mut() {
            p.0[3] = 255;
        }
        assert_eq!(decode(&png).expect("decode"), want);
    }

    /// PNGs of each colour type decode to the RGBA they were made from (the png crate's path
    /// for paletted, RGB and RGBA; image's for greyscale).
    #[test]
    fn png_colour_types_round_trip() {
        let img = gradient(true);
        for (paletted, transparent) in [(false, false), (false, true), (true, true)] {
            let mut o = ImageOpts::new(ImageFormat::png());
            o.paletted = paletted;
            o.transparent = transparent;
            let back = decode(&encode(&img, &o).expect("encode")).expect("decode");
            if !paletted {
                let want = if transparent {
                    img.clone()
                } else {
                    RgbaImage::from_fn(256, 256, |x, y| {
                        let p = img.get_pixel(x, y).0;
                        image::Rgba([p[0], p[1], p[2], 255])
                    })
                };
                assert_eq!(back, want, "paletted {paletted} transparent {transparent}");
            }
            assert_eq!(back.dimensions(), (256, 256));
        }
        let gray = image::GrayImage::from_fn(8, 8, |x, _| image::Luma([x as u8 * 30]));
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(gray)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
            .expect("encode grey");
        assert_eq!(
            decode(&png).expect("decode grey").get_pixel(3, 0).0,
            [90, 90, 90, 255]
        );
    }

    /// `stitch` gives what decoding each tile and pasting it gives: paletted and truecolour
    /// PNG tiles, a JPEG tile, a missing tile (transparent), a tile of another size; and with
    /// a background, that overlaid on it.
    #[test]
    fn stitch_is_decode_and_paste() {
        let tile = |seed: u8, opts: &ImageOpts| {
            let img = RgbaImage::from_fn(16, 8, |x, y| {
                image::Rgba([seed.wrapping_add(x as u8 * 9), y as u8 * 20, seed, 255])
            });
            encode(&img, opts).expect("encode").to_vec()
        };
        let mut truecolor = ImageOpts::new(ImageFormat::png());
        truecolor.paletted = false;
        let mut translucent = truecolor.clone();
        translucent.transparent = true;
        let tiles = [
            Some(tile(1, &ImageOpts::new(ImageFormat::png()))),
            None,
            Some(tile(2, &truecolor)),
            Some(tile(3, &ImageOpts::new(ImageFormat::jpeg()))),
            Some(
                encode(&blank_image(4, 4, [9, 9, 9, 255]), &truecolor)
                    .expect("encode")
                    .to_vec(),
            ),
            Some(tile(5, &truecolor)),
            // translucent truecolour (alpha 0 to 255 in steps of 17: 136 among them)
            Some(
                encode(
                    &RgbaImage::from_fn(16, 8, |x, y| {
                        image::Rgba([x as u8 * 15, 200, y as u8 * 30, (x * 17) as u8])
                    }),
                    &translucent,
                )
                .expect("encode")
                .to_vec(),
            ),
        ];
        let parts: Vec<Option<&[u8]>> = tiles.iter().map(|t| t.as_deref()).collect();
        let got = stitch(&encoded(&parts), 3, (16, 8), None).expect("stitch");
        let mut want = RgbaImage::new(48, 24);
        for (i, t) in tiles.iter().enumerate() {
            if let Some(t) = t {
                let d = decode(t).expect("decode");
                paste(&mut want, &d, (i as u32 % 3) * 16, (i as u32 / 3) * 8);
            }
        }
        assert_eq!(got, want);
        // drawn over a background: the stitched layer overlaid on it
        let under = stitch(&encoded(&parts), 3, (16, 8), Some([10, 120, 250])).expect("stitch");
        let mut want_under = blank_image(48, 24, [10, 120, 250, 255]);
        overlay(&mut want_under, &want);
        assert_eq!(under, want_under);
        assert!(!has_transparency(&under));
        assert!(stitch(
            &[Some(StitchTile::Encoded(b"not an image"))],
            1,
            (16, 8),
            None
        )
        .is_err());
    }

    /// A paletted PNG written with the png crate: `palette` RGB entries, `trns` alphas, the
    /// pixels' indices (8 bits).
    fn paletted_png(w: u32, h: u32, palette: &[[u8; 3]], trns: &[u8], idx: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(png::ColorType::Indexed);
            enc.set_depth(png::BitDepth::Eight);
            enc.set_palette(palette.concat());
            if !trns.is_empty() {
                enc.set_trns(trns.to_vec());
            }
            let mut wr = enc.write_header().expect("header");
            wr.write_image_data(idx).expect("data");
        }
        out
    }

    /// Fully transparent paletted tiles are recognised from their header chunks (not decoded)
    /// and stitched as decoding them would; other tiles are still drawn.
    #[test]
    fn transparent_png_from_header() {
        let mut o = ImageOpts::new(ImageFormat::png());
        o.transparent = true;
        // a blank tile as we write it: one entry [0, 0, 0] with alpha 0
        let blank = encode(&blank_image(16, 8, [0, 0, 0, 0]), &o).expect("encode");
        assert!(png_is_transparent(&blank));
        // one colour with alpha 0 (Pillow keeps the colour)
        let white = paletted_png(16, 8, &[[255, 255, 255]], &[0], &[0; 128]);
        assert!(png_is_transparent(&white));
        // several entries, all alpha 0, different colours: transparent, but decoded to stitch
        let idx: Vec<u8> = (0..128).map(|i| (i % 2) as u8).collect();
        let mixed = paletted_png(16, 8, &[[1, 2, 3], [4, 5, 6]], &[0, 0], &idx);
        assert!(png_is_transparent(&mixed));
        // not transparent: an opaque or half-transparent entry, a tRNS shorter than PLTE, no
        // tRNS, truecolour, opaque paletted tiles, garbage and truncated files
        let half = paletted_png(16, 8, &[[1, 2, 3], [4, 5, 6]], &[0, 128], &idx);
        let short = paletted_png(16, 8, &[[1, 2, 3], [4, 5, 6]], &[0], &idx);
        // decoders ignore a tRNS longer than PLTE: its pixels decode opaque
        let long = paletted_png(16, 8, &[[1, 2, 3]], &[0, 0], &[0; 128]);
        let no_trns = paletted_png(16, 8, &[[1, 2, 3]], &[], &[0; 128]);
        let mut truecolor = o.clone();
        truecolor.paletted = false;
        let rgba_blank = encode(&blank_image(16, 8, [0, 0, 0, 0]), &truecolor).expect("encode");
        let opaque = encode(
            &RgbaImage::from_fn(16, 8, |x, y| image::Rgba([x as u8 * 9, y as u8, 7, 255])),
            &ImageOpts::new(ImageFormat::png()),
        )
        .expect("encode");
        for (name, t) in [
            ("half", &half[..]),
            ("short tRNS", &short),
            ("long tRNS", &long),
            ("no tRNS", &no_trns),
            ("RGBA", &rgba_blank),
            ("opaque", &opaque),
            ("garbage", b"\x89PNG\r\n\x1a\nxx"),
            ("truncated", &blank[..40]),
        ] {
            assert!(!png_is_transparent(t), "{name}");
        }
        // stitched: as decoding each tile and pasting it
        let tiles: Vec<&[u8]> = vec![&blank, &white, &mixed, &half, &opaque, &rgba_blank];
        let parts: Vec<Option<&[u8]>> = tiles.iter().map(|t| Some(*t)).collect();
        let got = stitch(&encoded(&parts), 3, (16, 8), None).expect("stitch");
        let mut want = RgbaImage::new(48, 16);
        for (i, t) in tiles.iter().enumerate() {
            let d = decode(t).expect("decode");
            paste(&mut want, &d, (i as u32 % 3) * 16, (i as u32 / 3) * 8);
        }
        assert_eq!(got, want);
        // the opaque tile is drawn (its colours are Pillow's bucket averages: 27 of x * 9 at
        // x = 3 falls in the bucket of 16-31, whose pixels average 22)
        assert_eq!(got.get_pixel(16 + 3, 8 + 2).0, [22, 3, 7, 255]);
        assert_eq!(got.get_pixel(16 + 3, 2).0, [255, 255, 255, 0]);
    }

    /// The paletted PNGs written directly: chunks in order with valid CRCs (the png crate
    /// checks them), a zlib stream, decodable by image's loader as by ours, `tRNS` only when
    /// transparent.
    #[test]
    fn paletted_png_layout() {
        let chunks = |png: &[u8]| -> Vec<String> {
            let mut out = Vec::new();
            let mut pos = 8;
            while pos + 8 <= png.len() {
                let len = u32::from_be_bytes([png[pos], png[pos + 1], png[pos + 2], png[pos + 3]]);
                out.push(String::from_utf8_lossy(&png[pos + 4..pos + 8]).into_owned());
                pos += 12 + len as usize;
            }
            assert_eq!(pos, png.len());
            out
        };
        let mut img = gradient(false);
        for x in 0..64 {
            img.put_pixel(x, 3, image::Rgba([0, 0, 0, 0]));
        }
        for (transparent, want) in [
            (true, vec!["IHDR", "PLTE", "tRNS", "IDAT", "IEND"]),
            (false, vec!["IHDR", "PLTE", "IDAT", "IEND"]),
        ] {
            let mut o = ImageOpts::new(ImageFormat::png());
            o.transparent = transparent;
            let png = encode(&img, &o).expect("encode");
            assert_eq!(chunks(&png), want);
            // zlib header: deflate, 32K window
            let idat = png.windows(4).position(|w| w == b"IDAT").expect("IDAT") + 4;
            assert_eq!(png[idat] & 0x0f, 8);
            let ours = decode(&png).expect("decode");
            let theirs = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
                .expect("image decodes")
                .to_rgba8();
            assert_eq!(ours, theirs);
            assert_eq!(ours.get_pixel(3, 3).0[3], if transparent { 0 } else { 255 });
        }
        // bit depths 1, 2, 4 (`colors` up to 16, as Pillow packs them), 8, and odd widths;
        // colours in distinct coarse buckets are kept exactly
        for (n, bits) in [(2u32, 1u8), (4, 2), (16, 4), (256, 8)] {
            let img = RgbaImage::from_fn(13, 5, |x, y| {
                let i = (x + 13 * y) % n.min(16);
                image::Rgba([(i % 4 * 64 + 10) as u8, (i / 4 * 64 + 10) as u8, 7, 255])
            });
            let mut o = ImageOpts::new(ImageFormat::png());
            o.colors = n as u16;
            let png = encode(&img, &o).expect("encode");
            assert_eq!(png[24], bits, "IHDR bit depth for {n} colours");
            let back = image::load_from_memory_with_format(&png, image::ImageFormat::Png)
                .expect("image decodes")
                .to_rgba8();
            assert_eq!(back, img, "{n} colours");
            assert_eq!(decode(&png).expect("decodes"), img);
        }
    }

    /// Paletted tiles of each bit depth and an odd width, expanded by our tables, stitch as the
    /// png crate's expansion decodes them: tRNS shorter than, as long as and (ignored) longer
    /// than the palette, indices past the palette.
    #[test]
    fn stitch_packed_palettes() {
        let (w, h) = (13u32, 3u32);
        let mut tiles: Vec<Vec<u8>> = Vec::new();
        for (depth, bits) in [
            (png::BitDepth::One, 1usize),
            (png::BitDepth::Two, 2),
            (png::BitDepth::Four, 4),
            (png::BitDepth::Eight, 8),
        ] {
            let n = 1usize << bits;
            for (entries, trns) in [
                (n, vec![]),
                // 136 over an opaque pixel: opaque (a float blend gives 254)
                (n.min(3), vec![0u8, 136]),
                (n.min(2), vec![0u8, 1, 2, 3]),
            ] {
                let palette: Vec<u8> = (0..entries * 3).map(|i| (i * 37 % 251) as u8).collect();
                let row_bytes = (w as usize * bits).div_ceil(8);
                let data: Vec<u8> = (0..row_bytes * h as usize)
                    .map(|i| (i * 151 + 7) as u8)
                    .collect();
                let mut out = Vec::new();
                {
                    let mut enc = png::Encoder::new(&mut out, w, h);
                    enc.set_color(png::ColorType::Indexed);
                    enc.set_depth(depth);
                    enc.set_palette(palette);
                    if !trns.is_empty() {
                        enc.set_trns(trns);
                    }
                    let mut wr = enc.write_header().expect("header");
                    wr.write_image_data(&data).expect("data");
                }
                tiles.push(out);
            }
        }
        let parts: Vec<Option<&[u8]>> = tiles.iter().map(|t| Some(t.as_slice())).collect();
        let got = stitch(&encoded(&parts), 3, (w, h), None).expect("stitch");
        let mut want = RgbaImage::new(3 * w, 4 * h);
        for (i, t) in tiles.iter().enumerate() {
            let d = decode_png_rgba(t).expect("png crate decodes");
            paste(&mut want, &d, (i as u32 % 3) * w, (i as u32 / 3) * h);
        }
        assert_eq!(got, want);
        // the palettes blended over a background give the pixels blended over it
        let under = stitch(&encoded(&parts), 3, (w, h), Some([200, 30, 90])).expect("stitch");
        let mut want_under = blank_image(3 * w, 4 * h, [200, 30, 90, 255]);
        overlay(&mut want_under, &want);
        assert_eq!(under, want_under);
        assert!(all_opaque(&under));
    }

    /// Any pixel drawn over an opaque one is opaque.
    #[test]
    fn over_an_opaque_pixel_is_opaque() {
        for a in 1..=255u8 {
            for d in [[0, 0, 0, 255], [255, 255, 255, 255], [12, 200, 99, 255]] {
                assert_eq!(over(d, [200, 100, 50, a])[3], 255, "alpha {a} over {d:?}");
            }
        }
        assert!(over([1, 2, 3, 0], [200, 100, 50, 136])[3] < 255);
    }

    /// The word-wise scan agrees with a pixel-wise one, wherever the one translucent pixel is.
    #[test]
    fn all_opaque_finds_any_alpha() {
        let mut raw = vec![255u8; 4 * 700];
        assert!(all_opaque(&raw));
        for i in [0, 1, 255, 256, 257, 699] {
            for a in [0u8, 1, 254] {
                raw[i * 4 + 3] = a;
                assert!(!all_opaque(&raw), "pixel {i} alpha {a}");
                raw[i * 4 + 3] = 255;
            }
            // colour bytes are not alpha
            raw[i * 4] = 0;
            assert!(all_opaque(&raw));
        }
        assert!(all_opaque(&[]));
    }

    #[test]
    fn neuquant_gets_close() {
        let img = gradient(false);
        let png = encode(&img, &ImageOpts::new(ImageFormat::png())).expect("encode");
        let back = decode(&png).expect("decode");
        let err: u64 = img
            .as_raw()
            .iter()
            .zip(back.as_raw())
            .map(|(a, b)| u64::from(a.abs_diff(*b)))
            .sum();
        // mean error per channel well under 10
        assert!(
            err / (img.as_raw().len() as u64) < 10,
            "mean error {}",
            err / 262144
        );
    }

    #[test]
    fn small_palettes_and_tiny_images() {
        for colors in [1u16, 2, 3, 8, 16, 64, 255, 256, 1000] {
            for (w, h) in [(1, 1), (3, 5), (16, 16), (256, 256)] {
                let img = RgbaImage::from_fn(w, h, |x, y| {
                    image::Rgba([(x * 37) as u8, (y * 91) as u8, (x * y) as u8, (x * 3) as u8])
                });
                let mut o = ImageOpts::new(ImageFormat::png());
                o.colors = colors;
                o.transparent = colors % 2 == 0;
                let png = encode(&img, &o).expect("encode");
                let back = decode(&png).expect("decode");
                assert_eq!(back.dimensions(), (w, h));
                let plte = png_plte_len(&png);
                assert!(
                    plte <= 3 * usize::from(colors.clamp(1, 256)),
                    "{colors}: {plte}"
                );
            }
        }
    }

    fn png_plte_len(png: &[u8]) -> usize {
        let i = png.windows(4).position(|w| w == b"PLTE").expect("PLTE");
        u32::from_be_bytes([png[i - 4], png[i - 3], png[i - 2], png[i - 1]]) as usize
    }

    #[test]
    fn single_color_and_sub_image() {
        let img = blank_image(4, 4, [1, 2, 3, 4]);
        assert_eq!(single_color(&img), Some([1, 2, 3, 4]));
        let mut img2 = img.clone();
        img2.put_pixel(3, 3, image::Rgba([0, 0, 0, 0]));
        assert_eq!(single_color(&img2), None);
        let s = sub_image(&img2, 2, 2, 4, 4);
        assert_eq!(s.get_pixel(1, 1).0, [0, 0, 0, 0]);
        assert_eq!(s.get_pixel(0, 0).0, [1, 2, 3, 4]);
        assert_eq!(s.get_pixel(3, 3).0, [0, 0, 0, 0]);
        assert_eq!(
            sub_image(&img2, 0, 0, 2, 2),
            blank_image(2, 2, [1, 2, 3, 4])
        );
    }

    #[test]
    fn uniform_maps_as_encoded() {
        for (format, transparent, color) in [
            (ImageFormat::jpeg(), false, [255, 255, 255, 255]),
            (ImageFormat::png(), true, [255, 255, 255, 0]),
            (ImageFormat::png(), false, [10, 20, 30, 255]),
        ] {
            let mut o = ImageOpts::new(format);
            o.transparent = transparent;
            for _ in 0..2 {
                assert_eq!(
                    encode_uniform(33, 17, color, &o).expect("uniform"),
                    encode(&blank_image(33, 17, color), &o).expect("encode")
                );
            }
        }
    }

    #[test]
    fn unknown_format_is_an_error() {
        let e = encode(
            &blank_image(1, 1, [0; 4]),
            &ImageOpts::new(ImageFormat::new("image/webp")),
        )
        .unwrap_err();
        assert!(
            e.0.contains("expected a PNG, JPEG, GIF, TIFF or mixed"),
            "{e}"
        );
    }
}
