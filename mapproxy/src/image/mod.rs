//! Images: formats, encoding and decoding, meta tile splitting (MapProxy's `mapproxy/image/`).

mod codec;
mod format;

pub use codec::{decode, encode, ImageError, ImageOpts};
pub use format::ImageFormat;
pub use image::RgbaImage;
