//! Sources (MapProxy's `mapproxy/source/`): where images come from when a cache misses.

use bytes::Bytes;
use futures_util::future::BoxFuture;

use crate::grid::Bbox;
use crate::image::ImageFormat;

/// A map request to a source: an extent in a CRS, a size in pixels, a format.
#[derive(Debug, Clone, PartialEq)]
pub struct MapQuery {
    pub bbox: Bbox,
    /// Width, height in pixels.
    pub size: (u32, u32),
    /// EPSG code.
    pub srs: u32,
    pub format: ImageFormat,
    pub transparent: bool,
}

/// An image a source answered with: encoded bytes and, when known, their format.
#[derive(Debug, Clone)]
pub struct SourceImage {
    pub data: Bytes,
    pub format: Option<ImageFormat>,
}

/// Why a source gave no image. `message` is what MapProxy answers to clients (the URL and
/// reason go to the `mapproxy.source.*` log).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    pub message: String,
}

impl std::fmt::Display for SourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for SourceError {}

/// A source of map images.
pub trait MapSource: Send + Sync + 'static {
    fn get_map<'a>(
        &'a self,
        query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>>;
}
