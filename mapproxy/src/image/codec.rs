//! Decoding and encoding tiles and map images.

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
}

impl ImageOpts {
    pub fn new(format: ImageFormat) -> ImageOpts {
        ImageOpts {
            format,
            transparent: false,
            jpeg_quality: 90,
            paletted: true,
            colors: 256,
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

/// Decode PNG or JPEG bytes into RGBA.
pub fn decode(data: &[u8]) -> Result<RgbaImage, ImageError> {
    image::load_from_memory(data)
        .map(|i| i.to_rgba8())
        .map_err(|e| ImageError(format!("cannot decode image: {e}")))
}

/// Encode in `opts.format`.
// Placeholder until the image module lands: RGBA PNG or RGB JPEG, no palette.
pub fn encode(img: &RgbaImage, opts: &ImageOpts) -> Result<Bytes, ImageError> {
    let mut out = std::io::Cursor::new(Vec::new());
    let r = match opts.format.ext() {
        "jpeg" | "jpg" => image::DynamicImage::ImageRgba8(img.clone())
            .to_rgb8()
            .write_to(&mut out, image::ImageFormat::Jpeg),
        _ => img.write_to(&mut out, image::ImageFormat::Png),
    };
    r.map_err(|e| ImageError(format!("cannot encode {}: {e}", opts.format)))?;
    Ok(Bytes::from(out.into_inner()))
}
