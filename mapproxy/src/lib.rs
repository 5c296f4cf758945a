//! MapProxy 7 in Rust, for mapproxy-serve: the same URLs, bytes and cache files as Python
//! MapProxy.
//!
//! | module | what | MapProxy |
//! |---|---|---|
//! | [`grid`] | tile grids: resolutions, tile coordinates and bboxes, level lookup | `mapproxy/grid/`, `config/configuration/grid.py` |
//! | [`tile`] | the seam between services and the tile path: `TileProvider`, `TileData` | `mapproxy/cache/tile.py` (`TileManager`'s interface) |
//! | [`image`] | image formats, encoding, meta tile splitting | `mapproxy/image/` |
//! | [`cache`] | tile caches: the `TileCache` trait and the file cache layouts | `mapproxy/cache/` |
//! | [`source`] | sources: the `MapSource` trait, tile, WMS and debug sources | `mapproxy/source/`, `mapproxy/client/` |
#![deny(unsafe_code)]

pub mod cache;
pub mod grid;
pub mod image;
pub mod service;
pub mod source;
pub mod tile;
