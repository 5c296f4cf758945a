//! What a tile service asks of a layer, and what it gets: the one seam between the services
//! (`service/`) and the tile path (caches, sources, meta tiles: `tile_manager`).

use std::time::SystemTime;

use bytes::Bytes;
use futures_util::future::BoxFuture;

pub use crate::grid::TileCoord;
use crate::image::{ImageFormat, ImageMode, RgbaImage};

/// A tile's encoded bytes, as stored in the cache (or as the source sent them).
#[derive(Debug, Clone)]
pub struct TileData {
    pub data: Bytes,
    /// The format of `data` (for `mixed` caches: PNG or JPEG, per tile).
    pub format: ImageFormat,
    /// The cache file's modification time (`None`: not cached, e.g. a `disable_storage` cache);
    /// `Last-Modified` and the `ETag` are made from it.
    pub mtime: Option<SystemTime>,
    /// The tile as drawn before it was encoded, when this request made it from a meta tile
    /// (`None`: read from the cache, or the source's bytes passed through).
    pub drawn: Option<std::sync::Arc<Drawn>>,
}

/// A tile just made, before encoding: MapProxy's created `Tile` keeps its `ImageSource`
/// (the meta tile's crop, watermarked), so a WMS map drawn from it has the crop's pixels, not
/// those of the encoded tile (quantized to a palette, or a JPEG's).
#[derive(Debug)]
pub struct Drawn {
    pub image: RgbaImage,
    /// The Pillow mode MapProxy holds it in.
    pub mode: ImageMode,
    /// Its indices and palette when MapProxy holds it as `P` (a crop of a paletted source
    /// image), which `img_to_buf` may write as they are ([`crate::image::encode_indexed`]).
    pub indexed: Option<crate::image::Indexed>,
}

/// Why a tile could not be given.
#[derive(Debug, Clone, PartialEq)]
pub enum TileError {
    /// The coordinate is outside the grid (or its coverage).
    OutOfRange,
    /// A source failed: `message` is what MapProxy shows (e.g. `HTTP Error (see logs for URL
    /// and reason).`, `No response from URL ...`); the details go to the log.
    Source { message: String },
    /// The cache could not be read or written.
    Cache { message: String },
    /// Not in the cache, and nothing makes it: the cache's only source is a `seed_only`
    /// source when not seeding (MapProxy's `cache_only` tile manager,
    /// `cache/tile_manager.py:164-166`). The tile services answer MapProxy's empty tile, the
    /// WMS draws nothing there.
    Missing,
}

impl std::fmt::Display for TileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TileError::OutOfRange => f.write_str("tile out of range"),
            TileError::Missing => f.write_str("tile not cached"),
            TileError::Source { message } | TileError::Cache { message } => f.write_str(message),
        }
    }
}

impl std::error::Error for TileError {}

/// Gives the tiles of one cache in one grid (coordinates in the grid's own origin).
pub trait TileProvider: Send + Sync + 'static {
    fn tile(&self, coord: TileCoord) -> BoxFuture<'_, Result<TileData, TileError>>;
}
