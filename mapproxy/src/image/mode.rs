//! The Pillow mode MapProxy holds an image in, which decides how `img_to_buf` encodes it
//! ([`super::encode_mode`]): we hold every image as RGBA, MapProxy as Pillow opened or made
//! it. An RGB image quantizes to a palette without `tRNS` even for a transparent format, and
//! is written as colour type 2 when not quantized.
//!
//! - opened from bytes ([`opened_mode`]; `ImageResult.as_image`): as the file is (a PNG's
//!   colour type, a JPEG is RGB), a paletted one converted to RGBA when its image options
//!   are transparent (a paletted one kept `P` carries its indices and palette where it is
//!   cropped and encoded: [`super::indexed`]);
//! - made by `create_image` ([`created_mode`]: merged maps, stitched tiles, the part of a
//!   meta tile outside it): the options' `mode`, else RGBA when transparent, else RGB;
//! - resampled (`img_for_resampling`, not nearest): a paletted image becomes its palette's
//!   mode, RGB for a PNG's palette ([`resampled_mode`]); other modes are kept, as by a crop.

use super::ImageMode;

/// The mode Pillow opens `data` in, after `ImageResult.as_image` converts a paletted image
/// to RGBA for `transparent` image options. Greyscale counts as RGB (no alpha), greyscale
/// with alpha as RGBA; what is not a PNG, JPEG or GIF as RGBA (as we hold it).
pub fn opened_mode(data: &[u8], transparent: bool) -> ImageMode {
    let paletted = if transparent {
        ImageMode::Rgba
    } else {
        ImageMode::P
    };
    if data.starts_with(b"\x89PNG\r\n\x1a\n") {
        // IHDR is the first chunk: colour type at byte 25
        return match data.get(25) {
            Some(0 | 2) => ImageMode::Rgb,
            Some(3) => paletted,
            _ => ImageMode::Rgba,
        };
    }
    if data.starts_with(b"\xff\xd8") {
        return ImageMode::Rgb;
    }
    if data.starts_with(b"GIF8") {
        return paletted;
    }
    ImageMode::Rgba
}

/// The mode of `create_image(size, image_opts)` (image/opts.py): the options' `mode`, else
/// (none, or `P`) RGBA when transparent, RGB otherwise.
pub fn created_mode(mode: Option<ImageMode>, transparent: bool) -> ImageMode {
    match mode {
        Some(m @ (ImageMode::Rgb | ImageMode::Rgba)) => m,
        _ if transparent => ImageMode::Rgba,
        _ => ImageMode::Rgb,
    }
}

/// The mode of an image in `mode` once resampled (`img_for_resampling`, for bilinear and
/// bicubic): a paletted image (a PNG's: its palette is RGB, the `tRNS` dropped) becomes RGB.
pub fn resampled_mode(mode: ImageMode) -> ImageMode {
    match mode {
        ImageMode::P => ImageMode::Rgb,
        m => m,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_of_opened_and_created_images() {
        let png = |ct: u8| {
            let mut d = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x01\0\0\0\x01\x08".to_vec();
            d.push(ct);
            d
        };
        assert_eq!(opened_mode(&png(2), true), ImageMode::Rgb);
        assert_eq!(opened_mode(&png(6), false), ImageMode::Rgba);
        assert_eq!(opened_mode(&png(3), false), ImageMode::P);
        assert_eq!(opened_mode(&png(3), true), ImageMode::Rgba);
        assert_eq!(opened_mode(b"\xff\xd8\xff\xe0", true), ImageMode::Rgb);
        assert_eq!(opened_mode(b"", false), ImageMode::Rgba);
        assert_eq!(created_mode(None, true), ImageMode::Rgba);
        assert_eq!(created_mode(Some(ImageMode::P), false), ImageMode::Rgb);
        assert_eq!(created_mode(Some(ImageMode::Rgba), false), ImageMode::Rgba);
        assert_eq!(resampled_mode(ImageMode::P), ImageMode::Rgb);
    }
}
