//! MapProxy 7 in Rust, for mapproxy-serve: the same URLs, bytes and cache files as Python
//! MapProxy.
//!
//! | module | what | MapProxy |
//! |---|---|---|
//! | [`authorize`] | the authorization callback: an `Authorizer` in the request extensions, asked by TMS, KML, WMTS and the demo (no `limited_to` yet) | `mapproxy.authorize`, `doc/auth.rst` |
//! | [`grid`] | tile grids: resolutions, tile coordinates and bboxes, level lookup | `mapproxy/grid/`, `config/configuration/grid.py` |
//! | [`config`] | `mapproxy.yaml` loaded into a typed model: `base:` includes, `${VAR}`, defaults, checks | `mapproxy/config/loader.py`, `spec.py`, `defaults.py`, `validator.py` |
//! | [`tile`] | the seam between services and the tile path: `TileProvider`, `TileData` | `mapproxy/cache/tile.py` (`TileManager`'s interface) |
//! | [`image`] | image formats, encoding, meta tile splitting | `mapproxy/image/` |
//! | [`cache`] | tile caches: the `TileCache` trait and the file cache layouts | `mapproxy/cache/` |
//! | [`meta`] | meta tiles: the block of tiles one source request covers, its buffer | `mapproxy/grid/meta_grid.py` |
//! | [`lock`] | the lock of a meta tile: the cross-process lock file, the Redis lock across machines | `mapproxy/cache/base.py` `TileLocker`, `mapproxy/util/lock.py` |
//! | [`tile_manager`] | cache hit or create: meta tiles, single flight, locks, splitting | `mapproxy/cache/tile_manager.py`, `tile_creator.py` |
//! | [`service`] | the HTTP surface: welcome page, TMS, `/tiles`, the OWS dispatch, the WMS, their error documents and cache headers | `wsgiapp.py`, `service/`, `request/`, `response.py`, `exception.py` |
//! | [`source`] | sources: the `MapSource` trait, tile, WMS and debug sources | `mapproxy/source/`, `mapproxy/client/` |
//! | [`seed`] | `mapproxy-serve seed`: seed.yaml, coverages, seeding and cleanup through the tile managers, `--nodes`, `--continue` | `mapproxy/seed/`, `mapproxy-seed` |
//! | [`multiapp`] | MultiMapProxy: one project per `NAME.yaml` of a directory | `mapproxy/multiapp.py` |
//! | [`srs`] | CRS codes, transformations (proj4rs), WMS 1.3.0 axis order | `mapproxy/srs.py` |
//! | [`coverage`] | coverages of sources (bbox, WKT, GeoJSON): blank outside, asked inside, `clip` | `config/coverage.py`, `util/coverage.py` |
//! | [`featureinfo`] | feature info documents (text, HTML, XML, JSON) and how several are merged | `mapproxy/featureinfo.py` |
//! | [`pynum`] | numbers as Python holds them: an int written in the YAML stays an int (printed `5`, not `5.0`) | Python's `int`/`float` `str()` |
//! | [`escape`] | HTML escaping and percent-decoding, for every page | `mapproxy/util/escape.py` |
#![deny(unsafe_code)]

pub mod app;
pub mod authorize;
pub mod cache;
pub mod config;
pub mod coverage;
mod eggs;
pub mod escape;
pub mod featureinfo;
pub mod grid;
pub mod image;
pub mod image_options;
pub mod lock;
pub mod meta;
pub mod multiapp;
pub mod pynum;
pub mod seed;
pub mod service;
pub mod source;
pub mod srs;
mod tagged;
pub mod tile;
pub mod tile_manager;

/// The MapProxy version whose behaviour this crate follows (its welcome pages name it).
pub const VERSION: &str = "7.0.0";
