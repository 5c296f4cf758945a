//! Images: formats, encoding and decoding, meta tile splitting (MapProxy's `mapproxy/image/`).

mod codec;
mod format;
pub mod mask;
pub mod transform;

pub use codec::{
    blank_image, decode, encode, encode_uniform, has_transparency, overlay, paste, png_color_type,
    png_is_transparent, single_color, sniff_format, stitch, sub_image, ImageError, ImageOpts,
};
pub use format::ImageFormat;
pub use image::RgbaImage;
