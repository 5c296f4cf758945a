//! Images: formats, encoding and decoding, meta tile splitting (MapProxy's `mapproxy/image/`).

mod format;

pub use format::ImageFormat;
