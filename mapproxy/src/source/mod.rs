//! Sources (MapProxy's `mapproxy/source/`): where images come from when a cache misses.
//!
//! | source | what | MapProxy |
//! |---|---|---|
//! | [`TileSource`] | `type: tile`: one tile of its grid per query, from a URL template | `source/tile.py`, `client/tile.py` |
//! | [`WmsSource`] | `type: wms`: GetMap 1.1.1 / 1.3.0 | `source/wms.py`, `client/wms.py`, `request/wms/` |
//! | [`WmsSource`] with [`ArcGisConf`] | `type: arcgis`: an ArcGIS REST export / identify ([`arcgis`]) | `source/arcgis.py`, `client/arcgis.py`, `request/arcgis.py` |
//! | [`LegendSource`] | the legend of a source: GetLegendGraphic per upstream layer or a static URL, stacked, cached in `<base_dir>/legends` | `source/wms.py` `WMSLegendSource`, `cache/legend.py` |
//! | [`CacheSource`] | another cache (`caches.NAME.sources` naming a cache): its tiles, or maps drawn from them | `source/tile.py` `CacheSource`, `layer/cache_map_layer.py` |
//! | [`DebugSource`] | `type: debug`: the query's bbox and resolution as text | `source/debug.py`, `image/message.py` |
//! | [`DummySource`] | a `seed_only` source when not seeding: never asks its upstream, answers blank | `source/__init__.py` `DummySource` |
//!
//! HTTP goes through [`SourceHttp`] (the project's shared client, MapProxy's `client/http.py`
//! errors and the `mapproxy.source.request` log line); [`OnError`] is a source's `on_error`.

pub mod arcgis;
mod cache;
mod debug;
mod error;
mod http;
mod legend;
mod merge;
mod pyfmt;
mod tile;
mod wms;

pub use arcgis::ArcGisConf;
pub use cache::{is_subset_of, supports_tiled_only_access, CacheSource, NoSource};
pub use debug::{draw_text, DebugSource};
pub use error::{OnError, OnErrorResponse};
pub use http::{HttpOpts, HttpSourceError, SourceHttp};
pub use legend::{concat_legends, LegendClient, LegendSource};
pub use merge::MergedSource;
pub use pyfmt::{py_float_repr, py_quote};
pub use tile::{TileSource, TileUrlTemplate};
pub use wms::{InfoQuery, WmsSource, WmsSourceConf, WmsVersion};

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
    /// May the tiles made from it be stored? False for an `on_error` image without
    /// `cache: true` (MapProxy's `ImageResult.cacheable`).
    pub cacheable: bool,
    /// Drawn in this process (the debug source, blank and clipped coverage images, error
    /// images, merged and made-transparent images), not bytes a server sent: MapProxy holds
    /// these as images and encodes them with the cache's options (`tile_creator.py`
    /// `as_buffer(self.tile_mgr.image_opts)`), so a tile is never stored as they were
    /// encoded here. A server's image of the cache's format is stored as it came.
    pub drawn: bool,
}

impl SourceImage {
    /// A cacheable image as a server sent it.
    pub fn new(data: Bytes, format: Option<ImageFormat>) -> SourceImage {
        SourceImage {
            data,
            format,
            cacheable: true,
            drawn: false,
        }
    }

    /// A cacheable image drawn in this process, as a PNG (see [`SourceImage::drawn`]).
    pub fn drawn_png(data: Bytes) -> SourceImage {
        SourceImage {
            data,
            format: Some(ImageFormat::png()),
            cacheable: true,
            drawn: true,
        }
    }
}

/// Why a source gave no image. `message` is what MapProxy answers to clients (the URL and
/// reason go to the `mapproxy.source.*` log).
#[derive(Debug, Clone, PartialEq)]
pub struct SourceError {
    pub message: String,
    /// Not a failure: the source has nothing here (MapProxy's `BlankImageError`, e.g. a
    /// cache used as a source that has no tile): no tile is made, a merge leaves it out.
    pub blank: bool,
}

impl SourceError {
    pub fn new(message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
            blank: false,
        }
    }

    /// [`SourceError::blank`]: nothing here.
    pub fn blank(message: impl Into<String>) -> SourceError {
        SourceError {
            message: message.into(),
            blank: true,
        }
    }
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

    /// [`get_map`](Self::get_map) for a WMS GetMap that carries parameters of the client's
    /// request (name as written by the client, value): a source that forwards some of them
    /// (a WMS source's `forward_req_params`) adds those to its request; others ignore them.
    fn get_map_forwarding<'a>(
        &'a self,
        query: &'a MapQuery,
        _client_params: &'a [(String, String)],
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        self.get_map(query)
    }

    /// Whether this is a [`DummySource`], which has no image for any query (MapProxy's
    /// `BlankImageError`): a cache whose only source it is makes no tiles, a merge leaves it
    /// out, a WMS layer draws nothing for it.
    fn is_dummy(&self) -> bool {
        false
    }

    /// Whether it has no image for `query` (MapProxy's `BlankImageError`): a
    /// [`DummySource`], or a query outside the source's `min_res`/`max_res`. Its users treat
    /// it as [`is_dummy`](MapSource::is_dummy): nothing made, left out of a merge, nothing
    /// drawn.
    fn blank_for(&self, _query: &MapQuery) -> bool {
        self.is_dummy()
    }
}

/// Is `query` outside `range` (MapProxy's `res_range.contains` at the top of a WMS or tile
/// source's `get_map`, source/wms.py:67, source/tile.py:71)?
pub fn outside_res_range(range: Option<&crate::grid::ResRange>, query: &MapQuery) -> bool {
    let Some(r) = range else {
        return false;
    };
    let latlong =
        crate::srs::Srs::get(&format!("EPSG:{}", query.srs)).is_ok_and(|s| s.is_latlong());
    !r.contains(query.bbox, query.size, latlong)
}

/// What a `seed_only` `wms` or `tile` source is when not seeding (MapProxy 7
/// `config/configuration/source.py:296-298, 559-561`: `DummySource` unless
/// `context.seed`): its upstream is never asked; it has no image (`get_map` raises
/// `BlankImageError`, `source/__init__.py:71-87`), which its users turn into nothing drawn
/// ([`MapSource::is_dummy`]). Seeding builds the real source.
#[derive(Debug, Clone, Copy, Default)]
pub struct DummySource;

impl MapSource for DummySource {
    fn get_map<'a>(
        &'a self,
        _query: &'a MapQuery,
    ) -> BoxFuture<'a, Result<SourceImage, SourceError>> {
        Box::pin(async { Err(SourceError::new("no image (seed_only source)")) })
    }

    fn is_dummy(&self) -> bool {
        true
    }
}
