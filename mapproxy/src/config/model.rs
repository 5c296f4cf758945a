//! The typed configuration: what MapProxy 7's `config/spec.py` allows, with the defaults of
//! `config/defaults.py` applied and relative paths joined to the YAML's directory.

use std::path::PathBuf;

use indexmap::IndexMap;
use mapproxy_serve_core::error::Location;

use crate::grid::{GridConf, GridGlobals, GridSet, ResFactor};

use super::read::{Ctx, Keys};
use super::yaml::{Node, Value};

/// A whole `mapproxy.yaml` (with its `base:` files merged in).
#[derive(Debug, Clone, PartialEq)]
pub struct MapProxyConf {
    /// `globals:`.
    pub globals: Globals,
    /// `grids:`, in the order written (the built-in `GLOBAL_*` grids are not listed here;
    /// [`MapProxyConf::grid_set`] adds them).
    pub grids: IndexMap<String, Grid>,
    /// `caches:`.
    pub caches: IndexMap<String, CacheConf>,
    /// `sources:`.
    pub sources: IndexMap<String, SourceConf>,
    /// `layers:` (the old mapping form becomes a list of layers named by their keys).
    pub layers: Vec<LayerConf>,
    /// `services:`.
    pub services: ServicesConf,
    /// `parts:`, MapProxy's free-form section for YAML anchors; kept as written.
    pub parts: Option<Node>,
    /// Loaded for seeding (MapProxy's `load_configuration(seed=True)`, `context.seed`):
    /// `seed_only` sources are their real selves then, else dummies. Not a YAML key; false
    /// as loaded, set by the seeding code.
    pub seeding: bool,
}

/// One entry of `grids:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Grid {
    /// The grid's keys, ready for [`GridSet::insert`].
    pub conf: GridConf,
    /// Where the entry was written.
    pub loc: Location,
}

impl MapProxyConf {
    /// The built-in grids and those of `grids:`, with `globals.grid.tile_size` and
    /// `globals.image.stretch_factor`/`max_shrink_factor` as the grids' fallbacks.
    pub fn grid_set(&self) -> GridSet {
        let mut set = GridSet::new(GridGlobals {
            tile_size: self.globals.grid_tile_size,
            stretch_factor: self.globals.image.stretch_factor,
            max_shrink_factor: self.globals.image.max_shrink_factor,
        });
        for (name, g) in &self.grids {
            set.insert(name, g.conf.clone());
        }
        set
    }
}

/// `globals:`.
#[derive(Debug, Clone, PartialEq)]
pub struct Globals {
    /// `globals.cache`.
    pub cache: GlobalsCache,
    /// `globals.http`.
    pub http: HttpConf,
    /// `globals.tiles.expires_hours`; default 72.
    pub tiles_expires_hours: f64,
    /// `globals.image`.
    pub image: GlobalsImage,
    /// `globals.grid.tile_size`; default 256×256.
    pub grid_tile_size: (u32, u32),
    /// `globals.srs`, kept as written (axis orders, proj_data_dir).
    pub srs: Option<Node>,
    /// Keys of `globals` set to what is not implemented (`http.manage_cookies: true`,
    /// `http.method: POST`, `image.formats`, `image.merge_method`, `srs`, `renderd`): where,
    /// and the YAML path. The app refuses them ("... is not supported yet").
    pub unsupported: Vec<(Location, String)>,
}

/// `link_single_color_images`: `false`, `true` (= symlink), `symlink` or `hardlink`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkSingleColor {
    /// Every tile is written as its own file (the default).
    No,
    /// Single-colour tiles are symbolic links to one file per colour (`true` or `symlink`).
    Symlink,
    /// Single-colour tiles are hard links (`hardlink`).
    Hardlink,
}

/// `globals.cache`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalsCache {
    /// Where caches keep their tiles; default `./cache_data` next to the YAML.
    pub base_dir: PathBuf,
    /// Lock files of meta-tile creation; default `./cache_data/tile_locks` next to the YAML.
    pub lock_dir: PathBuf,
    /// Tile lock files; `None`: each cache uses `<its cache_dir>/tile_locks`.
    pub tile_lock_dir: Option<PathBuf>,
    /// `directory_permissions` / `file_permissions` (octal strings, as MapProxy's
    /// `int(v, base=8)`): the default of every cache's own.
    pub directory_permissions: Option<u32>,
    pub file_permissions: Option<u32>,
    /// Default 4×4.
    pub meta_size: (u32, u32),
    /// Default 80 pixels.
    pub meta_buffer: u32,
    /// Default false.
    pub minimize_meta_requests: bool,
    /// Default 2.
    pub concurrent_tile_creators: u32,
    /// Default 500.
    pub max_tile_limit: u32,
    /// Default [`LinkSingleColor::No`].
    pub link_single_color_images: LinkSingleColor,
    /// Default false.
    pub bulk_meta_tiles: bool,
    /// `sqlite_timeout`: seconds a SQLite cache waits for a busy database; default 30.
    pub sqlite_timeout: f64,
    /// `s3`: the defaults of the s3 caches' options (MapProxy's `globals.cache.s3.*`).
    pub s3: S3Conf,
}

/// `type: s3` options as written (unset: `None`; the cache's own win over `globals.cache.s3`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct S3Conf {
    pub bucket_name: Option<String>,
    /// `directory`: the key prefix in the bucket, as written (not a local path).
    pub directory: Option<String>,
    pub profile_name: Option<String>,
    pub region_name: Option<String>,
    pub endpoint_url: Option<String>,
    pub access_control_list: Option<String>,
    pub use_http_get: Option<bool>,
    pub include_grid_name: Option<bool>,
}

/// `http:` options (in `globals` and in tile/WMS sources; a source's unset keys are `None`
/// and fall back on `globals.http`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HttpOpts {
    /// Seconds.
    pub client_timeout: Option<f64>,
    /// Extra request headers, in order.
    pub headers: IndexMap<String, String>,
    /// Skip TLS certificate verification.
    pub ssl_no_cert_checks: Option<bool>,
    /// Joined to the YAML's directory.
    pub ssl_ca_certs: Option<PathBuf>,
    /// `AUTO`, `GET` or `POST`.
    pub method: Option<String>,
    /// Answer upstream errors without their details.
    pub hide_error_details: Option<bool>,
    /// Keep cookies between requests to the upstream.
    pub manage_cookies: Option<bool>,
}

/// `globals.http` with MapProxy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpConf {
    /// Default 60 seconds.
    pub client_timeout: f64,
    /// Extra request headers, in order.
    pub headers: IndexMap<String, String>,
    /// Default false.
    pub ssl_no_cert_checks: bool,
    /// CA certificates file, joined to the YAML's directory.
    pub ssl_ca_certs: Option<PathBuf>,
    /// Default `*`; `None` when set to an empty mapping (no header sent).
    pub access_control_allow_origin: Option<String>,
    /// Default `AUTO`.
    pub method: String,
    /// Default true.
    pub hide_error_details: bool,
    /// Default false.
    pub manage_cookies: bool,
    /// The default of every WMS source's `concurrent_requests`; default 0 (no limit).
    pub concurrent_requests: u32,
}

/// `globals.image`.
#[derive(Debug, Clone, PartialEq)]
pub struct GlobalsImage {
    /// `nearest`, `bilinear` or `bicubic` (default).
    pub resampling_method: String,
    /// Default true.
    pub paletted: bool,
    /// Default 90.
    pub jpeg_quality: u8,
    /// Default 1.15.
    pub stretch_factor: f64,
    /// Default 4.0.
    pub max_shrink_factor: f64,
    /// `formats:`: per-format image options (mode, colors, transparent, encoding_options, ...),
    /// kept as written.
    pub formats: IndexMap<String, Node>,
    /// `font_dir` (watermark fonts), joined to the YAML's directory.
    pub font_dir: Option<PathBuf>,
    /// `merge_method` of layered images.
    pub merge_method: Option<String>,
    /// `transparent_color_tolerance` of WMS sources' `transparent_color`; default 5.
    pub transparent_color_tolerance: f64,
}

/// Where a cache stores tiles: `cache: {type: ...}`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheBackend {
    /// `file` (the default), `sqlite`, `mbtiles`, `geopackage`, `redis`, `s3`, `couchdb`,
    /// `compact`, `azureblob`.
    pub kind: String,
    /// `directory_layout`; default `tc` for file caches.
    pub directory_layout: Option<String>,
    /// `directory`, joined to the YAML's directory.
    pub directory: Option<PathBuf>,
    /// `filename` (mbtiles, geopackage), as MapProxy resolves it: `./name` from the YAML's
    /// directory, other relative names from the cache's directory (`directory`, else
    /// `cache_dir`).
    pub filename: Option<PathBuf>,
    /// `sqlite_timeout` (sqlite, mbtiles, geopackage): seconds; `None`: `globals.cache`'s.
    pub sqlite_timeout: Option<f64>,
    /// `ttl` (sqlite): seconds a tile is fresh; `None`: forever (MapProxy's 0).
    pub ttl: Option<u64>,
    /// `table_name` (geopackage); `None`: `<cache name>_<grid name>`.
    pub table_name: Option<String>,
    /// `levels` (geopackage): one GeoPackage per level.
    pub levels: Option<bool>,
    /// The redis options (`type: redis`).
    pub redis: Option<RedisConf>,
    /// The s3 options (`type: s3`).
    pub s3: Option<S3Conf>,
    /// `version` (compact: 1 or 2, required).
    pub compact_version: Option<u8>,
    /// `directory_permissions` / `file_permissions` (file, compact: applied; `None`:
    /// `globals.cache`'s).
    pub directory_permissions: Option<u32>,
    pub file_permissions: Option<u32>,
    /// `use_grid_names`: directories named by grid name instead of SRS code (file caches).
    pub use_grid_names: Option<bool>,
    /// `tile_lock_dir`, joined to the YAML's directory.
    pub tile_lock_dir: Option<PathBuf>,
    /// Coverage of the cache, as written but with its file names joined to the YAML's
    /// directory.
    pub coverage: Option<Node>,
    /// All other keys of the backend (ttl, host, bucket_name, ...), as written.
    pub options: IndexMap<String, Node>,
    /// Where `cache:` was written (the cache entry when absent).
    pub loc: Location,
}

/// `type: redis` options, with MapProxy's defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct RedisConf {
    /// Default `127.0.0.1`.
    pub host: String,
    /// Default 6379.
    pub port: u16,
    /// Default 0.
    pub db: i64,
    /// `None`: `<cache name>_<grid name>`.
    pub prefix: Option<String>,
    /// `default_ttl`: seconds; default 3600; 0: tiles never expire.
    pub default_ttl: f64,
    pub username: Option<String>,
    pub password: Option<String>,
    /// `tile_lock` (ours, not MapProxy's): instances sharing the cache fetch a missing meta
    /// tile once, under a lock in this Redis; default true. False: the local lock file.
    pub tile_lock: bool,
    /// `tile_lock_expiry` (ours): seconds a lock outlives a killed holder; default 10.
    pub tile_lock_expiry: f64,
    /// `tile_lock_timeout` (ours): seconds a waiter waits for a lock; `None`:
    /// `globals.http.client_timeout`, as the local lock.
    pub tile_lock_timeout: Option<f64>,
}

/// [`RedisConf::tile_lock_expiry`]'s default, seconds.
pub const DEFAULT_TILE_LOCK_EXPIRY: f64 = 10.0;

impl RedisConf {
    /// MapProxy's defaults (and ours for the tile lock).
    pub fn new() -> RedisConf {
        RedisConf {
            host: "127.0.0.1".into(),
            port: 6379,
            db: 0,
            prefix: None,
            default_ttl: 3600.0,
            username: None,
            password: None,
            tile_lock: true,
            tile_lock_expiry: DEFAULT_TILE_LOCK_EXPIRY,
            tile_lock_timeout: None,
        }
    }
}

impl Default for RedisConf {
    fn default() -> RedisConf {
        RedisConf::new()
    }
}

/// One entry of `caches:`.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheConf {
    /// Source or cache names (`name:layer,layer` tags kept as written); empty for band
    /// sources.
    pub sources: Vec<String>,
    /// Band-merging sources (`sources: {r: [...], ...}`), kept as written.
    pub band_sources: Option<Node>,
    /// Grid names; default `[GLOBAL_MERCATOR]`.
    pub grids: Vec<String>,
    /// Default `image/png`.
    pub format: String,
    /// The format tiles are requested from the sources in.
    pub request_format: Option<String>,
    /// Default from `globals.cache`.
    pub meta_size: (u32, u32),
    /// Default from `globals.cache`.
    pub meta_buffer: u32,
    /// Default from `globals.cache`.
    pub minimize_meta_requests: bool,
    /// Default from `globals.cache`.
    pub bulk_meta_tiles: bool,
    /// Default from `globals.cache`.
    pub link_single_color_images: LinkSingleColor,
    /// Serve without storing tiles; default false.
    pub disable_storage: bool,
    /// Default from `globals.cache`.
    pub concurrent_tile_creators: u32,
    /// The most tiles one WMS request may read from this cache (0: no limit); default from
    /// `globals.cache` (MapProxy's spec does not list it for caches, but its configuration
    /// reads it there first).
    pub max_tile_limit: u32,
    /// `image:` options, kept as written.
    pub image: Option<Node>,
    /// Levels to look up for a missing tile (coarser).
    pub upscale_tiles: Option<u32>,
    /// Levels to look down for a missing tile (finer).
    pub downscale_tiles: Option<u32>,
    /// From this level on, requests bypass the cache.
    pub use_direct_from_level: Option<f64>,
    /// From this resolution on, requests bypass the cache.
    pub use_direct_from_res: Option<f64>,
    /// Store tiles made by up/downscaling.
    pub cache_rescaled_tiles: Option<bool>,
    /// `refresh_before` (seconds/minutes/hours/days/weeks, time or mtime): tiles stored
    /// before it are made again.
    pub refresh_before: Option<super::before::Before>,
    /// `watermark` (text, font_size, color, opacity, spacing), as written.
    pub watermark: Option<Node>,
    /// `cache_dir`, default `globals.cache.base_dir`.
    pub cache_dir: PathBuf,
    /// `name`: the cache's name in its file layout, if not its key.
    pub name: Option<String>,
    /// `cache:`; a file cache with MapProxy's defaults when absent.
    pub cache: CacheBackend,
    /// Where the entry was written.
    pub loc: Location,
}

/// `on_error:` of a source: per HTTP status (or `other`).
#[derive(Debug, Clone, PartialEq)]
pub struct OnError {
    /// The status code as written, or `other`.
    pub status: String,
    /// `transparent`, or a colour (`'#ff0000'`, `[255, 0, 0]` as written).
    pub response: Node,
    /// Default false.
    pub cache: bool,
    /// Serve a stale cached tile on this error.
    pub authorize_stale: bool,
    /// Where the status was written.
    pub loc: Location,
}

/// What every source type shares.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SourceCommon {
    /// Scale hint: coarsest resolution served.
    pub min_res: Option<f64>,
    /// Scale hint: finest resolution served.
    pub max_res: Option<f64>,
    /// Scale hint: smallest scale denominator served.
    pub min_scale: Option<f64>,
    /// Scale hint: largest scale denominator served.
    pub max_scale: Option<f64>,
    /// Parallel requests to the upstream host.
    pub concurrent_requests: Option<u32>,
    /// As written, but with its file names (`polygons`, `datasource`, ...) joined to the
    /// YAML's directory.
    pub coverage: Option<Node>,
    /// Only used while seeding; default false.
    pub seed_only: bool,
}

/// `type: tile`.
#[derive(Debug, Clone, PartialEq)]
pub struct TileSourceConf {
    /// The URL template (`%(tms_path)s`, `{x}`, `{quadkey}`, ...).
    pub url: String,
    /// The grid the upstream tiles are in.
    pub grid: Option<String>,
    /// Deprecated `origin` (`sw`/`nw`).
    pub origin: Option<String>,
    /// Default false.
    pub transparent: bool,
    /// The format requested from the upstream.
    pub request_format: Option<String>,
    /// `image:` options, as written.
    pub image: Option<Node>,
    /// Per-source HTTP options.
    pub http: HttpOpts,
    /// Answers for upstream HTTP errors.
    pub on_error: Vec<OnError>,
    /// Scale hints, coverage, seed_only, concurrency.
    pub common: SourceCommon,
}

/// `type: wms`.
#[derive(Debug, Clone, PartialEq)]
pub struct WmsSourceConf {
    /// `req.url`.
    pub url: String,
    /// `req.layers`, if given.
    pub layers: Option<String>,
    /// Whether the source's images are transparent: `req.transparent` of a WMS source
    /// (unless `image.transparent` says otherwise); an ArcGIS source's `image.transparent`
    /// or `transparent` (MapProxy's base `image_opts`: its `req.transparent` is only sent).
    pub transparent: bool,
    /// The `req:` parameters but `url`, in their order, sent as they are (`layers` is
    /// [`layers`](Self::layers)' value).
    pub params: IndexMap<String, Node>,
    /// `type: arcgis` (MapProxy's `ArcGISSource`: a WMS source asking an ArcGIS REST
    /// `export`, its feature info an `identify`): its `opts`.
    pub arcgis: Option<ArcGisOpts>,
    /// SRS the upstream WMS serves; requests are transformed into these.
    pub supported_srs: Option<Vec<String>>,
    /// Formats the upstream WMS serves.
    pub supported_formats: Option<Vec<String>>,
    /// `wms_opts:` (version default `1.1.1`, map, featureinfo, legendgraphic, ...).
    pub wms_opts: IndexMap<String, Node>,
    /// `image:` options (transparent_color, opacity, ...), as written.
    pub image: Option<Node>,
    /// Per-source HTTP options.
    pub http: HttpOpts,
    /// Answers for upstream HTTP errors.
    pub on_error: Vec<OnError>,
    /// Request parameters forwarded to the upstream.
    pub forward_req_params: Vec<String>,
    /// Scale hints, coverage, seed_only, concurrency.
    pub common: SourceCommon,
}

/// An ArcGIS source's `opts` (its `featureinfo` is in [`WmsSourceConf::wms_opts`]).
#[derive(Debug, Clone, PartialEq)]
pub struct ArcGisOpts {
    /// `opts.featureinfo_tolerance` as Python's `str()` writes it (default `5`).
    pub tolerance: String,
    /// `opts.featureinfo_return_geometries` (default false).
    pub return_geometries: bool,
}

/// One entry of `sources:`.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceKind {
    /// `type: tile`.
    Tile(TileSourceConf),
    /// `type: wms`, and `type: arcgis` ([`WmsSourceConf::arcgis`]).
    Wms(WmsSourceConf),
    /// `type: debug`.
    Debug,
    /// Another type (mapnik, mapserver, ogcapitiles, ...): not supported yet, kept
    /// with its type name and keys for the app to report.
    Other { type_name: String, conf: Node },
}

/// One entry of `sources:` and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceConf {
    /// The source by type.
    pub kind: SourceKind,
    /// Where the entry was written.
    pub loc: Location,
}

/// One layer of `layers:`.
#[derive(Debug, Clone, PartialEq)]
pub struct LayerConf {
    /// `None` for a group without a name.
    pub name: Option<String>,
    /// `title`; required, an error when absent.
    pub title: Option<String>,
    /// Caches and sources rendered by the WMS (`name:layer,layer` tags kept).
    pub sources: Vec<String>,
    /// Caches served by the tile services (WMTS, TMS, KML).
    pub tile_sources: Vec<String>,
    /// Child layers.
    pub layers: Vec<LayerConf>,
    /// Metadata as written (abstract, attribution, keyword_list, ...).
    pub md: Option<Node>,
    /// The layer's YAML path (`layers[0].layers[1]`), for errors found later.
    pub path: String,
    /// Scale hint.
    pub min_res: Option<f64>,
    /// Scale hint.
    pub max_res: Option<f64>,
    /// Scale hint.
    pub min_scale: Option<f64>,
    /// Scale hint.
    pub max_scale: Option<f64>,
    /// A static legend URL.
    pub legendurl: Option<String>,
    /// The legend URL template of WMTS RESTful.
    pub wmts_rest_legendurl: Option<String>,
    /// The legend URL of WMTS KVP.
    pub wmts_kvp_legendurl: Option<String>,
    /// `dimensions:` as written.
    pub dimensions: Option<Node>,
    /// Where the layer was written.
    pub loc: Location,
}

/// `services.tms` / `services.kml`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TmsConf {
    /// Name tiles by grid name instead of SRS code.
    pub use_grid_names: bool,
    /// `origin` (`sw`/`nw`), tms only.
    pub origin: Option<String>,
}

/// `services.wmts`.
#[derive(Debug, Clone, PartialEq)]
pub struct WmtsConf {
    /// Default true.
    pub restful: bool,
    /// The RESTful URL template; MapProxy's default when `None`.
    pub restful_template: Option<String>,
    /// The RESTful FeatureInfo URL template.
    pub restful_featureinfo_template: Option<String>,
    /// Default true.
    pub kvp: bool,
    /// Service metadata, as written.
    pub md: Option<Node>,
    /// `featureinfo_formats` (`mimetype`, `suffix`), as written.
    pub featureinfo_formats: Option<Node>,
}

/// `services.wms`.
#[derive(Debug, Clone, PartialEq)]
pub struct WmsConf {
    /// Default: EPSG:4326, EPSG:4258, CRS:84, EPSG:900913, EPSG:3857.
    pub srs: Vec<String>,
    /// Kept as written (strings or `{bbox, srs}`).
    pub bbox_srs: Option<Node>,
    /// Default: image/png, image/jpeg, image/gif, image/GeoTIFF, image/tiff.
    pub image_formats: Vec<String>,
    /// WMS versions offered; all when `None`.
    pub versions: Option<Vec<String>>,
    /// Service metadata (title, abstract, contact, ...), as written.
    pub md: Option<Node>,
    /// Default 4000×4000 (one number, or `[pixels, srs]` as written).
    pub max_output_pixels: Node,
    /// Default false.
    pub strict: bool,
    /// FeatureInfo types offered.
    pub featureinfo_types: Option<Vec<String>>,
    /// XSLT scripts per FeatureInfo type, as written.
    pub featureinfo_xslt: Option<Node>,
    /// Default `notify`.
    pub on_source_errors: String,
    /// Default 1.
    pub concurrent_layer_renderer: u32,
    /// `attribution: {text}`, as written.
    pub attribution: Option<Node>,
    /// INSPIRE metadata, as written.
    pub inspire_md: Option<Node>,
}

/// `services:`; `None` is a service not configured.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServicesConf {
    /// `demo:` present.
    pub demo: bool,
    /// `tms:` (the `/tiles` and `/tms` services).
    pub tms: Option<TmsConf>,
    /// `kml:`.
    pub kml: Option<TmsConf>,
    /// `wmts:`.
    pub wmts: Option<WmtsConf>,
    /// `wms:`.
    pub wms: Option<WmsConf>,
    /// Services this crate does not know yet (ogcapi, ...), by name.
    pub other: IndexMap<String, Node>,
}

/// A coverage with its file names joined to the YAML's directory, as MapProxy's
/// `load_coverage` does: `polygons`, `expire_tiles`, and `datasource`/`ogr_datasource` unless
/// they are a bbox (`"x,y,x,y"` or a list) or a `driver:`/URL-like name (`^\w{2,}:`); inside
/// `union`/`difference`/`intersection` too.
pub(crate) fn coverage(ctx: &mut Ctx, n: &Node, path: &str) -> Node {
    check_coverage(ctx, n, path);
    resolve_coverage(ctx, n)
}

/// spec.py's `coverage` keys.
const COVERAGE_KEYS: [&str; 15] = [
    "polygons",
    "polygons_srs",
    "bbox",
    "bbox_srs",
    "ogr_datasource",
    "ogr_where",
    "ogr_srs",
    "datasource",
    "where",
    "srs",
    "expire_tiles",
    "union",
    "difference",
    "intersection",
    "clip",
];

/// Unknown coverage keys are warnings, as MapProxy's validator reports them; `union`,
/// `difference` and `intersection` must be lists of coverages.
fn check_coverage(ctx: &mut Ctx, n: &Node, path: &str) {
    let Some(mut k) = ctx.map(n, path) else {
        return;
    };
    for key in COVERAGE_KEYS {
        let p = k.at(key);
        let Some(v) = k.get(key) else { continue };
        if let "union" | "difference" | "intersection" = key {
            match &v.value {
                Value::Seq(items) => {
                    for (i, it) in items.iter().enumerate() {
                        check_coverage(ctx, it, &format!("{p}[{i}]"));
                    }
                }
                _ => ctx.error(
                    &v.loc,
                    &p,
                    format!("expected a list of coverages, found {}", v.value.kind()),
                ),
            }
        }
    }
    k.finish(ctx);
}

fn resolve_coverage(ctx: &Ctx, n: &Node) -> Node {
    fn is_bbox(s: &str) -> bool {
        let parts: Vec<_> = s.split(',').collect();
        parts.len() == 4 && parts.iter().all(|p| p.trim().parse::<f64>().is_ok())
    }
    fn has_scheme(s: &str) -> bool {
        s.find(':')
            .is_some_and(|i| i >= 2 && s[..i].chars().all(|c| c.is_alphanumeric() || c == '_'))
    }
    let mut out = n.clone();
    if let Value::Map(m) = &mut out.value {
        for (k, v) in m.iter_mut() {
            match (k.as_str(), &v.value) {
                ("polygons" | "expire_tiles", Value::Str(p)) => {
                    v.value = Value::Str(ctx.resolve(p).to_string_lossy().into_owned())
                }
                ("datasource" | "ogr_datasource", Value::Str(p))
                    if !is_bbox(p) && !has_scheme(p) =>
                {
                    v.value = Value::Str(ctx.resolve(p).to_string_lossy().into_owned())
                }
                ("union" | "difference" | "intersection", Value::Seq(items)) => {
                    let items: Vec<Node> =
                        items.iter().map(|it| resolve_coverage(ctx, it)).collect();
                    v.value = Value::Seq(items);
                }
                _ => {}
            }
        }
    }
    out
}

/// spec.py's `image_opts` keys.
const IMAGE_OPTS: [&str; 7] = [
    "mode",
    "colors",
    "transparent",
    "resampling_method",
    "format",
    "encoding_options",
    "merge_method",
];

/// Warn about keys `image_opts` (plus `extra`) does not know; type errors for a non-mapping.
fn check_image_opts(ctx: &mut Ctx, n: &Node, path: &str, extra: &[&str]) {
    if let Some(mut k) = ctx.map(n, path) {
        for key in IMAGE_OPTS.iter().chain(extra) {
            k.get(key);
        }
        k.finish(ctx);
    }
}

/// `image:` of a cache or source: checked, then kept as written.
fn image_opts(ctx: &mut Ctx, k: &mut Keys, extra: &[&str]) -> Option<Node> {
    let path = k.at("image");
    let n = k.get("image")?;
    check_image_opts(ctx, n, &path, extra);
    Some(n.clone())
}

/// A mapping kept as written, after warning about keys not in `known`.
/// The keys MapProxy's spec (config/spec.py) knows in a part of the YAML read as written
/// (metadata): unknown ones warn, `unknown 'k' in path`, as MapProxy's validator does; values
/// of other types than the spec's are left to whoever reads them.
enum Known {
    Any,
    Map(&'static [(&'static str, Known)]),
    List(&'static Known),
}

/// `keyword_list` of service and layer metadata.
const KEYWORD_LIST: Known = Known::List(&Known::Map(&[
    ("vocabulary", Known::Any),
    ("keywords", Known::Any),
]));

/// `url` and `format` entries (a layer's `data` and `feature_list`).
const URL_FORMAT: Known = Known::List(&Known::Map(&[("url", Known::Any), ("format", Known::Any)]));

/// A layer's `md` (`wms_130_layer_md`, config/spec.py:272-318).
const LAYER_MD: Known = Known::Map(&[
    ("abstract", Known::Any),
    ("keyword_list", KEYWORD_LIST),
    (
        "attribution",
        Known::Map(&[
            ("title", Known::Any),
            ("url", Known::Any),
            (
                "logo",
                Known::Map(&[
                    ("url", Known::Any),
                    ("width", Known::Any),
                    ("height", Known::Any),
                    ("format", Known::Any),
                ]),
            ),
        ]),
    ),
    (
        "identifier",
        Known::List(&Known::Map(&[
            ("url", Known::Any),
            ("name", Known::Any),
            ("value", Known::Any),
        ])),
    ),
    (
        "metadata",
        Known::List(&Known::Map(&[
            ("url", Known::Any),
            ("type", Known::Any),
            ("format", Known::Any),
        ])),
    ),
    ("data", URL_FORMAT),
    ("feature_list", URL_FORMAT),
]);

/// The WMS's and WMTS's `md` (`ogc_service_md`, config/spec.py:338-352).
const SERVICE_MD: Known = Known::Map(&[
    ("title", Known::Any),
    ("abstract", Known::Any),
    ("online_resource", Known::Any),
    ("contact", Known::Any),
    ("fees", Known::Any),
    ("access_constraints", Known::Any),
    ("keyword_list", KEYWORD_LIST),
]);

/// A cache's `watermark` (config/spec.py:454-460).
const WATERMARK: Known = Known::Map(&[
    ("text", Known::Any),
    ("font_size", Known::Any),
    ("color", Known::Any),
    ("opacity", Known::Any),
    ("spacing", Known::Any),
]);

/// `key` of `k` as written, its unknown keys (by `known`) warned about.
fn checked(ctx: &mut Ctx, k: &mut Keys, key: &str, known: &Known) -> Option<Node> {
    let path = k.at(key);
    let n = k.get(key)?;
    warn_unknown(ctx, n, &path, known);
    Some(n.clone())
}

fn warn_unknown(ctx: &mut Ctx, n: &Node, path: &str, known: &Known) {
    match (known, &n.value) {
        (Known::Map(keys), Value::Map(m)) => {
            for (k, v) in m {
                match keys.iter().find(|(name, _)| name == k) {
                    Some((_, sub)) => warn_unknown(ctx, v, &format!("{path}.{k}"), sub),
                    None => ctx
                        .warnings
                        .push(v.loc.error(format!("unknown '{k}' in {path}"))),
                }
            }
        }
        (Known::List(item), Value::Seq(items)) => {
            for (i, v) in items.iter().enumerate() {
                warn_unknown(ctx, v, &format!("{path}[{i}]"), item);
            }
        }
        _ => {}
    }
}

fn opt<T>(k: &mut Keys, key: &str, f: impl FnOnce(&Node, &str) -> Option<T>) -> Option<T> {
    let path = k.at(key);
    k.get(key).and_then(|n| f(n, &path))
}

/// `directory_permissions` / `file_permissions`: an octal string as MapProxy reads it
/// (`int(v, base=8)`: `"775"`, `"0775"`, `"0o775"`), at most `7777`.
fn permissions(ctx: &mut Ctx, n: &Node, path: &str) -> Option<u32> {
    let s = ctx.string(n, path)?;
    let t = s.trim();
    let digits = t
        .strip_prefix("0o")
        .or_else(|| t.strip_prefix("0O"))
        .unwrap_or(t);
    match u32::from_str_radix(digits, 8) {
        Ok(m) if !digits.is_empty() && !digits.starts_with('+') && m <= 0o7777 => Some(m),
        _ => {
            ctx.error(
                &n.loc,
                path,
                format!("expected octal permissions like '775', found '{s}'"),
            );
            None
        }
    }
}

/// A number of seconds above 0.
fn positive(ctx: &mut Ctx, n: &Node, path: &str) -> Option<f64> {
    let v = ctx.number(n, path)?;
    if v > 0.0 && v.is_finite() {
        Some(v)
    } else {
        ctx.error(&n.loc, path, "expected a number of seconds above 0");
        None
    }
}

fn link_single(ctx: &mut Ctx, n: &Node, path: &str) -> Option<LinkSingleColor> {
    match &n.value {
        Value::Bool(false) => Some(LinkSingleColor::No),
        Value::Bool(true) => Some(LinkSingleColor::Symlink),
        Value::Str(s) if s == "symlink" => Some(LinkSingleColor::Symlink),
        Value::Str(s) if s == "hardlink" => Some(LinkSingleColor::Hardlink),
        _ => {
            ctx.error(
                &n.loc,
                path,
                "expected true, false, 'symlink' or 'hardlink'",
            );
            None
        }
    }
}

fn epsg(ctx: &mut Ctx, n: &Node, path: &str) -> Option<u32> {
    let s = match &n.value {
        Value::Int(i) => return u32::try_from(*i).ok(),
        _ => ctx.string(n, path)?,
    };
    // CRS:84 is EPSG:4326 with lon/lat axis order; grids only use the projection
    if s == "CRS:84" {
        return Some(4326);
    }
    let code = s
        .strip_prefix("EPSG:")
        .or_else(|| s.strip_prefix("epsg:"))
        .unwrap_or(&s);
    match code.parse() {
        Ok(c) => Some(c),
        Err(_) => {
            ctx.error(&n.loc, path, format!("expected an SRS like 'EPSG:4326' or 'CRS:84' (other authorities are not supported yet), found '{s}'"));
            None
        }
    }
}

fn grid(ctx: &mut Ctx, n: &Node, path: &str) -> Option<GridConf> {
    let mut k = ctx.map(n, path)?;
    let mut g = GridConf {
        base: opt(&mut k, "base", |n, p| ctx.string(n, p)),
        name: opt(&mut k, "name", |n, p| ctx.string(n, p)),
        srs: opt(&mut k, "srs", |n, p| epsg(ctx, n, p)),
        bbox_srs: opt(&mut k, "bbox_srs", |n, p| epsg(ctx, n, p)),
        origin: opt(&mut k, "origin", |n, p| ctx.string(n, p)),
        tile_size: opt(&mut k, "tile_size", |n, p| ctx.pair(n, p)),
        res: opt(&mut k, "res", |n, p| ctx.nums(n, p)),
        threshold_res: opt(&mut k, "threshold_res", |n, p| ctx.numbers(n, p)),
        num_levels: opt(&mut k, "num_levels", |n, p| ctx.u32(n, p)),
        min_res: opt(&mut k, "min_res", |n, p| ctx.num(n, p)),
        max_res: opt(&mut k, "max_res", |n, p| ctx.number(n, p)),
        align_resolutions_with: opt(&mut k, "align_resolutions_with", |n, p| ctx.string(n, p)),
        stretch_factor: opt(&mut k, "stretch_factor", |n, p| ctx.number(n, p)),
        max_shrink_factor: opt(&mut k, "max_shrink_factor", |n, p| ctx.number(n, p)),
        ..GridConf::default()
    };
    g.bbox = opt(&mut k, "bbox", |n, p| {
        let nums = match &n.value {
            Value::Str(s) => s
                .split(',')
                .map(|t| t.trim().parse::<f64>().ok())
                .collect::<Option<Vec<_>>>(),
            Value::Seq(_) => ctx.numbers(n, p),
            _ => None,
        };
        match nums.as_deref() {
            Some([a, b, c, d]) => Some([*a, *b, *c, *d]),
            _ => {
                ctx.error(
                    &n.loc,
                    p,
                    "expected four numbers: 'minx,miny,maxx,maxy' or a list",
                );
                None
            }
        }
    });
    g.res_factor = opt(&mut k, "res_factor", |n, p| match &n.value {
        Value::Str(s) if s == "sqrt2" => Some(ResFactor::Sqrt2),
        Value::Int(_) | Value::Float(_) => ctx.number(n, p).map(ResFactor::Value),
        _ => {
            ctx.error(&n.loc, p, "expected a number or 'sqrt2'");
            None
        }
    });
    k.finish(ctx);
    Some(g)
}

fn http_opts(ctx: &mut Ctx, k: &mut Keys) -> HttpOpts {
    let mut h = HttpOpts {
        client_timeout: opt(k, "client_timeout", |n, p| ctx.number(n, p)),
        ssl_no_cert_checks: opt(k, "ssl_no_cert_checks", |n, p| ctx.boolean(n, p)),
        ssl_ca_certs: opt(k, "ssl_ca_certs", |n, p| ctx.path(n, p)),
        method: opt(k, "method", |n, p| ctx.string(n, p)),
        hide_error_details: opt(k, "hide_error_details", |n, p| ctx.boolean(n, p)),
        manage_cookies: opt(k, "manage_cookies", |n, p| ctx.boolean(n, p)),
        ..HttpOpts::default()
    };
    if let Some(method) = &h.method {
        if !["AUTO", "GET", "POST"].contains(&method.as_str()) {
            let loc = k.loc_of("method");
            ctx.error(
                &loc,
                &k.at("method"),
                format!("expected AUTO, GET or POST, found '{method}'"),
            );
        }
    }
    let hp = k.at("headers");
    if let Some(n) = k.get("headers") {
        if let Some(hk) = ctx.map(n, &hp) {
            for (name, v) in hk.entries() {
                if let Some(s) = scalar_text(ctx, v, &format!("{hp}.{name}")) {
                    h.headers.insert(name.clone(), s);
                }
            }
        }
    }
    h
}

/// A scalar as the text Python's `str()` would give (header values, params).
fn scalar_text(ctx: &mut Ctx, n: &Node, path: &str) -> Option<String> {
    match &n.value {
        Value::Str(s) => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(true) => Some("True".into()),
        Value::Bool(false) => Some("False".into()),
        _ => {
            ctx.error(
                &n.loc,
                path,
                format!("expected a string, found {}", n.value.kind()),
            );
            None
        }
    }
}

fn globals(ctx: &mut Ctx, n: Option<&Node>) -> Globals {
    let empty = Node {
        value: Value::Null,
        loc: Location::file(&ctx.dir, 0),
    };
    let n = n.unwrap_or(&empty);
    let mut k = ctx.map(n, "globals").unwrap_or_else(|| {
        ctx.map(&empty, "globals")
            .expect("null reads as an empty map")
    });
    // cache
    let cn = k.get("cache").cloned().unwrap_or_else(|| empty.clone());
    let cp = k.at("cache");
    let cache = match ctx.map(&cn, &cp) {
        Some(mut c) => {
            let gc = GlobalsCache {
                base_dir: opt(&mut c, "base_dir", |n, p| ctx.path(n, p))
                    .unwrap_or_else(|| ctx.resolve("./cache_data")),
                lock_dir: opt(&mut c, "lock_dir", |n, p| ctx.path(n, p))
                    .unwrap_or_else(|| ctx.resolve("./cache_data/tile_locks")),
                tile_lock_dir: opt(&mut c, "tile_lock_dir", |n, p| ctx.path(n, p)),
                directory_permissions: opt(&mut c, "directory_permissions", |n, p| {
                    permissions(ctx, n, p)
                }),
                file_permissions: opt(&mut c, "file_permissions", |n, p| permissions(ctx, n, p)),
                meta_size: opt(&mut c, "meta_size", |n, p| ctx.pair(n, p)).unwrap_or((4, 4)),
                meta_buffer: opt(&mut c, "meta_buffer", |n, p| ctx.u32(n, p)).unwrap_or(80),
                minimize_meta_requests: opt(&mut c, "minimize_meta_requests", |n, p| {
                    ctx.boolean(n, p)
                })
                .unwrap_or(false),
                concurrent_tile_creators: opt(&mut c, "concurrent_tile_creators", |n, p| {
                    ctx.u32(n, p)
                })
                .unwrap_or(2),
                max_tile_limit: opt(&mut c, "max_tile_limit", |n, p| ctx.u32(n, p)).unwrap_or(500),
                link_single_color_images: opt(&mut c, "link_single_color_images", |n, p| {
                    link_single(ctx, n, p)
                })
                .unwrap_or(LinkSingleColor::No),
                bulk_meta_tiles: opt(&mut c, "bulk_meta_tiles", |n, p| ctx.boolean(n, p))
                    .unwrap_or(false),
                sqlite_timeout: opt(&mut c, "sqlite_timeout", |n, p| positive(ctx, n, p))
                    .unwrap_or(30.0),
                s3: {
                    let sp = c.at("s3");
                    match c.get("s3").cloned() {
                        Some(n) => match ctx.map(&n, &sp) {
                            Some(mut sk) => {
                                let conf = s3_conf(ctx, &mut sk);
                                sk.finish(ctx);
                                conf
                            }
                            None => S3Conf::default(),
                        },
                        None => S3Conf::default(),
                    }
                },
            };
            for key in [
                // always on here (see cache/sqlite.rs); accepted as MapProxy's option
                "sqlite_wal",
                "azureblob",
            ] {
                c.get(key);
            }
            c.finish(ctx);
            gc
        }
        None => default_globals_cache(ctx),
    };
    let mut unsupported = Vec::new();
    // http
    let hn = k.get("http").cloned().unwrap_or_else(|| empty.clone());
    let hp = k.at("http");
    let http = {
        let mut hk = ctx.map(&hn, &hp).unwrap_or_else(|| {
            ctx.map(&empty, "globals.http")
                .expect("null reads as an empty map")
        });
        let o = http_opts(ctx, &mut hk);
        if o.manage_cookies == Some(true) {
            unsupported.push((hk.loc_of("manage_cookies"), hk.at("manage_cookies")));
        }
        if o.method.as_deref() == Some("POST") {
            unsupported.push((hk.loc_of("method"), format!("{}: POST", hk.at("method"))));
        }
        let acao = match hk.get("access_control_allow_origin") {
            None => Some("*".to_string()),
            Some(Node {
                value: Value::Map(m),
                ..
            }) if m.is_empty() => None,
            Some(n) => {
                let p = hk.at("access_control_allow_origin");
                ctx.string(n, &p)
            }
        };
        let concurrent_requests = opt(&mut hk, "concurrent_requests", |n, p| ctx.u32(n, p));
        hk.finish(ctx);
        HttpConf {
            client_timeout: o.client_timeout.unwrap_or(60.0),
            headers: o.headers,
            ssl_no_cert_checks: o.ssl_no_cert_checks.unwrap_or(false),
            ssl_ca_certs: o.ssl_ca_certs,
            access_control_allow_origin: acao,
            method: o.method.unwrap_or_else(|| "AUTO".into()),
            hide_error_details: o.hide_error_details.unwrap_or(true),
            manage_cookies: o.manage_cookies.unwrap_or(false),
            concurrent_requests: concurrent_requests.unwrap_or(0),
        }
    };
    // tiles
    let mut tiles_expires_hours = 72.0;
    if let Some(tn) = k.get("tiles") {
        let tp = k.at("tiles");
        if let Some(mut t) = ctx.map(tn, &tp) {
            if let Some(v) = opt(&mut t, "expires_hours", |n, p| ctx.number(n, p)) {
                tiles_expires_hours = v;
            }
            t.finish(ctx);
        }
    }
    // image
    let inode = k.get("image").cloned().unwrap_or_else(|| empty.clone());
    let ip = k.at("image");
    let mut ik = ctx.map(&inode, &ip).unwrap_or_else(|| {
        ctx.map(&empty, "globals.image")
            .expect("null reads as an empty map")
    });
    let mut image = GlobalsImage {
        resampling_method: opt(&mut ik, "resampling_method", |n, p| ctx.string(n, p))
            .unwrap_or_else(|| "bicubic".into()),
        paletted: opt(&mut ik, "paletted", |n, p| ctx.boolean(n, p)).unwrap_or(true),
        jpeg_quality: opt(&mut ik, "jpeg_quality", |n, p| ctx.int(n, p, 0, 100))
            .map(|q| q as u8)
            .unwrap_or(90),
        stretch_factor: opt(&mut ik, "stretch_factor", |n, p| ctx.number(n, p)).unwrap_or(1.15),
        max_shrink_factor: opt(&mut ik, "max_shrink_factor", |n, p| ctx.number(n, p))
            .unwrap_or(4.0),
        formats: IndexMap::new(),
        font_dir: opt(&mut ik, "font_dir", |n, p| ctx.path(n, p)),
        merge_method: opt(&mut ik, "merge_method", |n, p| ctx.string(n, p)),
        transparent_color_tolerance: opt(&mut ik, "transparent_color_tolerance", |n, p| {
            ctx.number(n, p)
        })
        .unwrap_or(5.0),
    };
    if !["nearest", "bilinear", "bicubic"].contains(&image.resampling_method.as_str()) {
        let loc = ik.loc_of("resampling_method");
        ctx.error(
            &loc,
            &ik.at("resampling_method"),
            format!(
                "expected nearest, bilinear or bicubic, found '{}'",
                image.resampling_method
            ),
        );
    }
    let fp = ik.at("formats");
    if let Some(f) = ik.get("formats") {
        if let Some(fk) = ctx.map(f, &fp) {
            for (name, v) in fk.entries() {
                check_image_opts(ctx, v, &format!("{fp}.{name}"), &[]);
                image.formats.insert(name.clone(), v.clone());
            }
        }
    }
    // `formats` is read above (named formats of caches' `format:`)
    if ik.get("merge_method").is_some() {
        unsupported.push((ik.loc_of("merge_method"), ik.at("merge_method")));
    }
    ik.finish(ctx);
    let grid_tile_size = match k.get("grid") {
        Some(gn) => {
            let gp = k.at("grid");
            match ctx.map(gn, &gp) {
                Some(mut g) => {
                    let ts = opt(&mut g, "tile_size", |n, p| ctx.pair(n, p));
                    g.finish(ctx);
                    ts.unwrap_or((256, 256))
                }
                None => (256, 256),
            }
        }
        None => (256, 256),
    };
    let srs = k.get("srs").cloned();
    if let Some(Node {
        value: Value::Map(m),
        ..
    }) = &srs
    {
        // proj_data_dir points PROJ at its data files: projections here come from the EPSG
        // definitions built in, so it has nothing to do
        for (key, n) in m.iter().filter(|(key, _)| key.as_str() != "proj_data_dir") {
            unsupported.push((n.loc.clone(), format!("{}.{key}", k.at("srs"))));
        }
    }
    k.get("mapserver");
    // MapProxy makes the tiles of every cache through renderd when it is set
    if k.get("renderd").is_some() {
        unsupported.push((k.loc_of("renderd"), k.at("renderd")));
    }
    k.finish(ctx);
    Globals {
        cache,
        http,
        tiles_expires_hours,
        image,
        grid_tile_size,
        srs,
        unsupported,
    }
}

fn default_globals_cache(ctx: &Ctx) -> GlobalsCache {
    GlobalsCache {
        base_dir: ctx.resolve("./cache_data"),
        lock_dir: ctx.resolve("./cache_data/tile_locks"),
        tile_lock_dir: None,
        directory_permissions: None,
        file_permissions: None,
        meta_size: (4, 4),
        meta_buffer: 80,
        minimize_meta_requests: false,
        concurrent_tile_creators: 2,
        max_tile_limit: 500,
        link_single_color_images: LinkSingleColor::No,
        bulk_meta_tiles: false,
        sqlite_timeout: 30.0,
        s3: S3Conf::default(),
    }
}

/// The s3 keys of a cache or of `globals.cache.s3` (MapProxy's get_value reads the same keys
/// in both).
fn s3_conf(ctx: &mut Ctx, k: &mut Keys) -> S3Conf {
    S3Conf {
        bucket_name: opt(k, "bucket_name", |n, p| ctx.string(n, p)),
        directory: None,
        profile_name: opt(k, "profile_name", |n, p| ctx.string(n, p)),
        region_name: opt(k, "region_name", |n, p| ctx.string(n, p)),
        endpoint_url: opt(k, "endpoint_url", |n, p| ctx.string(n, p)),
        access_control_list: opt(k, "access_control_list", |n, p| ctx.string(n, p)),
        use_http_get: opt(k, "use_http_get", |n, p| ctx.boolean(n, p)),
        include_grid_name: opt(k, "include_grid_name", |n, p| ctx.boolean(n, p)),
    }
}

const CACHE_TYPES: &[(&str, &[&str])] = &[
    (
        "file",
        &[
            "directory_layout",
            "use_grid_names",
            "directory",
            "tile_lock_dir",
            "directory_permissions",
            "file_permissions",
        ],
    ),
    (
        "sqlite",
        &[
            "directory",
            "sqlite_timeout",
            "sqlite_wal",
            "tile_lock_dir",
            "ttl",
            "directory_permissions",
            "file_permissions",
        ],
    ),
    (
        "mbtiles",
        &[
            "filename",
            "sqlite_timeout",
            "sqlite_wal",
            "tile_lock_dir",
            "directory_permissions",
            "file_permissions",
        ],
    ),
    (
        "geopackage",
        &[
            "filename",
            "directory",
            "tile_lock_dir",
            "table_name",
            "levels",
            "directory_permissions",
            "file_permissions",
        ],
    ),
    (
        "couchdb",
        &[
            "url",
            "db_name",
            "tile_metadata",
            "tile_id",
            "tile_lock_dir",
        ],
    ),
    (
        "s3",
        &[
            "bucket_name",
            "directory_layout",
            "directory",
            "profile_name",
            "region_name",
            "endpoint_url",
            "access_control_list",
            "tile_lock_dir",
            "use_http_get",
            "include_grid_name",
        ],
    ),
    (
        "redis",
        &[
            "host",
            "port",
            "password",
            "username",
            "db",
            "prefix",
            "default_ttl",
            "ssl_certfile",
            "ssl_keyfile",
            "ssl_ca_certs",
            // ours: the tile lock across instances (lock/redis.rs)
            "tile_lock",
            "tile_lock_expiry",
            "tile_lock_timeout",
        ],
    ),
    (
        "compact",
        &[
            "directory",
            "version",
            "tile_lock_dir",
            "directory_permissions",
            "file_permissions",
        ],
    ),
    (
        "azureblob",
        &[
            "connection_string",
            "container_name",
            "directory_layout",
            "directory",
            "tile_lock_dir",
        ],
    ),
];

fn backend(ctx: &mut Ctx, n: Option<&Node>, path: &str, loc: &Location) -> CacheBackend {
    let mut b = CacheBackend {
        kind: "file".into(),
        // a file cache's default layout
        directory_layout: Some("tc".into()),
        directory: None,
        filename: None,
        sqlite_timeout: None,
        ttl: None,
        table_name: None,
        levels: None,
        redis: None,
        s3: None,
        compact_version: None,
        directory_permissions: None,
        file_permissions: None,
        use_grid_names: None,
        tile_lock_dir: None,
        coverage: None,
        options: IndexMap::new(),
        loc: loc.clone(),
    };
    let Some(n) = n else { return b };
    b.loc = n.loc.clone();
    let Some(mut k) = ctx.map(n, path) else {
        return b;
    };
    let tp = k.at("type");
    match k.get("type") {
        Some(t) => {
            if let Some(s) = ctx.string(t, &tp) {
                b.kind = s;
            }
        }
        None => ctx
            .errors
            .push(n.loc.error(format!("'type' not in {path}"))),
    }
    let Some((_, keys)) = CACHE_TYPES.iter().find(|(t, _)| *t == b.kind) else {
        let loc = k.loc_of("type");
        ctx.errors.push(loc.error(format!(
                "unknown type value '{}' in {path} (expected one of {})",
                b.kind,
                CACHE_TYPES
                    .iter()
                    .map(|(t, _)| *t)
                    .collect::<Vec<_>>()
                    .join(", ")
        )));
        return b;
    };
    b.directory_layout = opt(&mut k, "directory_layout", |n, p| ctx.string(n, p))
        .or_else(|| (b.kind == "file").then(|| "tc".to_string()));
    if b.kind == "s3" {
        // a key prefix in the bucket, not a path on this machine
        let mut conf = s3_conf(ctx, &mut k);
        conf.directory = opt(&mut k, "directory", |n, p| ctx.string(n, p));
        b.s3 = Some(conf);
    }
    b.directory = opt(&mut k, "directory", |n, p| ctx.path(n, p));
    // MapProxy: `./name` is relative to the YAML, other relative names to the cache's
    // directory (joined in `cache`, where that is known)
    b.filename = opt(&mut k, "filename", |n, p| ctx.string(n, p)).map(|f| {
        if f.starts_with("./") {
            ctx.resolve(&f)
        } else {
            PathBuf::from(f)
        }
    });
    if matches!(b.kind.as_str(), "sqlite" | "mbtiles" | "geopackage") {
        b.sqlite_timeout = opt(&mut k, "sqlite_timeout", |n, p| positive(ctx, n, p));
        k.get("sqlite_wal");
    }
    if b.kind == "sqlite" {
        b.ttl = opt(&mut k, "ttl", |n, p| ctx.int(n, p, 0, i64::MAX))
            .map(|t| t as u64)
            .filter(|t| *t > 0);
    }
    if b.kind == "geopackage" {
        b.table_name = opt(&mut k, "table_name", |n, p| {
            let s = ctx.string(n, p)?;
            if !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                Some(s)
            } else {
                ctx.error(
                    &n.loc,
                    p,
                    format!(
                        "the table_name {s} contains unsupported characters \
                         (letters, digits, '_' and '-' only)"
                    ),
                );
                None
            }
        });
        b.levels = opt(&mut k, "levels", |n, p| ctx.boolean(n, p));
    }
    if b.kind == "redis" {
        b.redis = Some(RedisConf {
            host: opt(&mut k, "host", |n, p| ctx.string(n, p))
                .unwrap_or_else(|| "127.0.0.1".into()),
            port: opt(&mut k, "port", |n, p| ctx.int(n, p, 1, 65535))
                .map(|p| p as u16)
                .unwrap_or(6379),
            db: opt(&mut k, "db", |n, p| ctx.int(n, p, 0, i64::from(i32::MAX))).unwrap_or(0),
            prefix: opt(&mut k, "prefix", |n, p| ctx.string(n, p)).filter(|p| !p.is_empty()),
            default_ttl: opt(&mut k, "default_ttl", |n, p| {
                let v = ctx.number(n, p)?;
                if v >= 0.0 && v.is_finite() {
                    Some(v)
                } else {
                    ctx.error(&n.loc, p, "expected a number of seconds, 0 or more");
                    None
                }
            })
            .unwrap_or(3600.0),
            username: opt(&mut k, "username", |n, p| ctx.string(n, p)),
            password: opt(&mut k, "password", |n, p| ctx.string(n, p)),
            tile_lock: opt(&mut k, "tile_lock", |n, p| ctx.boolean(n, p)).unwrap_or(true),
            tile_lock_expiry: opt(&mut k, "tile_lock_expiry", |n, p| positive(ctx, n, p))
                .unwrap_or(DEFAULT_TILE_LOCK_EXPIRY),
            tile_lock_timeout: opt(&mut k, "tile_lock_timeout", |n, p| positive(ctx, n, p)),
        });
    }
    if b.kind == "compact" {
        // MapProxy's spec: required('version'): number(); its loader: 1 or 2
        let vp = k.at("version");
        match k.get("version") {
            Some(v) => {
                if let Some(n) = ctx.number(v, &vp) {
                    if n == 1.0 || n == 2.0 {
                        b.compact_version = Some(n as u8);
                    } else {
                        ctx.error(&v.loc, &vp, "compact cache only supports version 1 or 2");
                    }
                }
            }
            None => ctx.error(&n.loc, path, format!("missing 'version', not in {path}")),
        }
    }
    b.directory_permissions = opt(&mut k, "directory_permissions", |n, p| {
        permissions(ctx, n, p)
    });
    b.file_permissions = opt(&mut k, "file_permissions", |n, p| permissions(ctx, n, p));
    b.use_grid_names = opt(&mut k, "use_grid_names", |n, p| ctx.boolean(n, p));
    b.tile_lock_dir = opt(&mut k, "tile_lock_dir", |n, p| ctx.path(n, p));
    let cp = k.at("coverage");
    b.coverage = k.get("coverage").map(|c| coverage(ctx, c, &cp));
    for key in keys.iter() {
        if let Some(v) = k.get(key) {
            if !b.options.contains_key(*key) {
                b.options.insert(key.to_string(), v.clone());
            }
        }
    }
    for key in [
        "directory_layout",
        "directory",
        "filename",
        "use_grid_names",
        "tile_lock_dir",
        // typed above
        "sqlite_timeout",
        "sqlite_wal",
        "ttl",
        "table_name",
        "levels",
        "host",
        "port",
        "db",
        "prefix",
        "default_ttl",
        "username",
        "password",
        "tile_lock",
        "tile_lock_expiry",
        "tile_lock_timeout",
        "version",
        "directory_permissions",
        "file_permissions",
    ] {
        b.options.shift_remove(key);
    }
    k.finish(ctx);
    b
}

fn cache(ctx: &mut Ctx, g: &Globals, n: &Node, path: &str) -> Option<CacheConf> {
    let mut k = ctx.map(n, path)?;
    let sp = k.at("sources");
    let (sources, band_sources) = match k.get("sources") {
        None => {
            ctx.error(&n.loc, path, format!("missing 'sources', not in {path}"));
            (Vec::new(), None)
        }
        Some(s) if matches!(s.value, Value::Map(_)) => (Vec::new(), Some(s.clone())),
        Some(s) => (ctx.strings(s, &sp).unwrap_or_default(), None),
    };
    let cache_node = k.get("cache");
    let cp = k.at("cache");
    // MapProxy's image_opts (config/configuration/cache.py:417): no `format`, the
    // `request_format`
    let request_format = opt(&mut k, "request_format", |n, p| ctx.string(n, p));
    let c = CacheConf {
        sources,
        band_sources,
        grids: opt(&mut k, "grids", |n, p| ctx.strings(n, p))
            .unwrap_or_else(|| vec!["GLOBAL_MERCATOR".into()]),
        format: opt(&mut k, "format", |n, p| ctx.string(n, p))
            .or_else(|| request_format.clone())
            .unwrap_or_else(|| "image/png".into()),
        request_format,
        meta_size: opt(&mut k, "meta_size", |n, p| ctx.pair(n, p)).unwrap_or(g.cache.meta_size),
        meta_buffer: opt(&mut k, "meta_buffer", |n, p| ctx.u32(n, p))
            .unwrap_or(g.cache.meta_buffer),
        minimize_meta_requests: opt(&mut k, "minimize_meta_requests", |n, p| ctx.boolean(n, p))
            .unwrap_or(g.cache.minimize_meta_requests),
        bulk_meta_tiles: opt(&mut k, "bulk_meta_tiles", |n, p| ctx.boolean(n, p))
            .unwrap_or(g.cache.bulk_meta_tiles),
        link_single_color_images: opt(&mut k, "link_single_color_images", |n, p| {
            link_single(ctx, n, p)
        })
        .unwrap_or(g.cache.link_single_color_images),
        disable_storage: opt(&mut k, "disable_storage", |n, p| ctx.boolean(n, p)).unwrap_or(false),
        concurrent_tile_creators: opt(&mut k, "concurrent_tile_creators", |n, p| ctx.u32(n, p))
            .unwrap_or(g.cache.concurrent_tile_creators),
        max_tile_limit: opt(&mut k, "max_tile_limit", |n, p| ctx.u32(n, p))
            .unwrap_or(g.cache.max_tile_limit),
        image: image_opts(ctx, &mut k, &[]),
        upscale_tiles: opt(&mut k, "upscale_tiles", |n, p| ctx.u32(n, p)),
        downscale_tiles: opt(&mut k, "downscale_tiles", |n, p| ctx.u32(n, p)),
        use_direct_from_level: opt(&mut k, "use_direct_from_level", |n, p| ctx.number(n, p)),
        use_direct_from_res: opt(&mut k, "use_direct_from_res", |n, p| ctx.number(n, p)),
        cache_rescaled_tiles: opt(&mut k, "cache_rescaled_tiles", |n, p| ctx.boolean(n, p)),
        refresh_before: {
            let p = k.at("refresh_before");
            k.get("refresh_before")
                .and_then(|n| super::before::read(ctx, n, &p))
        },
        watermark: checked(ctx, &mut k, "watermark", &WATERMARK),
        cache_dir: opt(&mut k, "cache_dir", |n, p| ctx.path(n, p))
            .unwrap_or_else(|| g.cache.base_dir.clone()),
        name: opt(&mut k, "name", |n, p| ctx.string(n, p)),
        cache: backend(ctx, cache_node, &cp, &n.loc),
        loc: n.loc.clone(),
    };
    k.finish(ctx);
    let mut c = c;
    // MapProxy: a relative `filename` is in the cache's directory (`directory`, else
    // `cache_dir`)
    if let Some(f) = &c.cache.filename {
        if f.is_relative() {
            let dir = c.cache.directory.as_ref().unwrap_or(&c.cache_dir);
            c.cache.filename = Some(dir.join(f));
        }
    }
    Some(c)
}

fn on_error(ctx: &mut Ctx, k: &mut Keys) -> Vec<OnError> {
    let p = k.at("on_error");
    let mut out = Vec::new();
    let Some(n) = k.get("on_error") else {
        return out;
    };
    let Some(ok) = ctx.map(n, &p) else { return out };
    for (status, v) in ok.entries() {
        let sp = format!("{p}.{status}");
        let Some(mut sk) = ctx.map(v, &sp) else {
            continue;
        };
        let response = match sk.get("response") {
            Some(r) => {
                let ok = match &r.value {
                    Value::Str(_) => true,
                    Value::Seq(items) => items.iter().all(|c| matches!(c.value, Value::Int(_))),
                    _ => false,
                };
                if !ok {
                    ctx.error(
                        &r.loc,
                        &format!("{sp}.response"),
                        "expected 'transparent', a colour like '#ff0000' or a list of integers",
                    );
                }
                r.clone()
            }
            None => {
                ctx.error(&v.loc, &sp, format!("missing 'response', not in {sp}"));
                continue;
            }
        };
        let e = OnError {
            status: status.clone(),
            response,
            cache: opt(&mut sk, "cache", |n, p| ctx.boolean(n, p)).unwrap_or(false),
            authorize_stale: opt(&mut sk, "authorize_stale", |n, p| ctx.boolean(n, p))
                .unwrap_or(false),
            loc: v.loc.clone(),
        };
        sk.finish(ctx);
        out.push(e);
    }
    out
}

fn common(ctx: &mut Ctx, k: &mut Keys) -> SourceCommon {
    SourceCommon {
        min_res: opt(k, "min_res", |n, p| ctx.number(n, p)),
        max_res: opt(k, "max_res", |n, p| ctx.number(n, p)),
        min_scale: opt(k, "min_scale", |n, p| ctx.number(n, p)),
        max_scale: opt(k, "max_scale", |n, p| ctx.number(n, p)),
        concurrent_requests: opt(k, "concurrent_requests", |n, p| ctx.u32(n, p)),
        coverage: {
            let cp = k.at("coverage");
            k.get("coverage").map(|c| coverage(ctx, c, &cp))
        },
        seed_only: opt(k, "seed_only", |n, p| ctx.boolean(n, p)).unwrap_or(false),
    }
}

fn sub_http(ctx: &mut Ctx, k: &mut Keys) -> HttpOpts {
    let p = k.at("http");
    match k.get("http").and_then(|n| ctx.map(n, &p)) {
        Some(mut hk) => {
            let h = http_opts(ctx, &mut hk);
            hk.finish(ctx);
            h
        }
        None => HttpOpts::default(),
    }
}

/// The source types of MapProxy 7's spec (plugins may add more; those are refused).
const SOURCE_TYPES: [&str; 8] = [
    "wms",
    "mapserver",
    "tile",
    "mapnik",
    "arcgis",
    "debug",
    "ogcapitiles",
    "ogcapimaps",
];

fn source(ctx: &mut Ctx, n: &Node, path: &str) -> Option<SourceConf> {
    let mut k = ctx.map(n, path)?;
    let tp = k.at("type");
    let Some(t) = k.get("type") else {
        ctx.errors
            .push(n.loc.error(format!("'type' not in {path}")));
        return None;
    };
    let type_name = ctx.string(t, &tp)?;
    let kind = match type_name.as_str() {
        "tile" => {
            let up = k.at("url");
            let url = match k.get("url") {
                Some(u) => ctx.string(u, &up)?,
                None => {
                    ctx.error(&n.loc, path, format!("missing 'url', not in {path}"));
                    return None;
                }
            };
            SourceKind::Tile(TileSourceConf {
                url,
                grid: opt(&mut k, "grid", |n, p| ctx.string(n, p)),
                origin: opt(&mut k, "origin", |n, p| ctx.string(n, p)),
                transparent: opt(&mut k, "transparent", |n, p| ctx.boolean(n, p)).unwrap_or(false),
                request_format: opt(&mut k, "request_format", |n, p| ctx.string(n, p)),
                image: image_opts(ctx, &mut k, &[]),
                http: sub_http(ctx, &mut k),
                on_error: on_error(ctx, &mut k),
                common: common(ctx, &mut k),
            })
        }
        "wms" | "arcgis" => {
            let is_arcgis = type_name == "arcgis";
            let rp = k.at("req");
            let Some(req) = k.get("req") else {
                ctx.error(&n.loc, path, format!("missing 'req', not in {path}"));
                return None;
            };
            let rk = ctx.map(req, &rp)?;
            let mut params = IndexMap::new();
            let (mut url, mut layers, mut transparent) = (None, None, false);
            for (key, v) in rk.entries() {
                let kp = format!("{rp}.{key}");
                match key.as_str() {
                    "url" => {
                        url = ctx.string(v, &kp);
                        continue;
                    }
                    "layers" => layers = scalar_text(ctx, v, &kp),
                    "transparent" => {
                        transparent = match &v.value {
                            Value::Bool(b) => *b,
                            Value::Str(s) => s.eq_ignore_ascii_case("true"),
                            _ => false,
                        }
                    }
                    _ => {}
                }
                params.insert(key.clone(), v.clone());
            }
            let Some(url) = url else {
                ctx.error(&req.loc, &rp, format!("missing 'url', not in {rp}"));
                return None;
            };
            // wms_opts (a WMS source), opts (ArcGIS: featureinfo, its tolerance and
            // geometries; `map` read as MapProxy reads it, though its spec lacks it)
            let (wp, opt_keys): (String, &[&str]) = if is_arcgis {
                (
                    k.at("opts"),
                    &[
                        "featureinfo",
                        "featureinfo_tolerance",
                        "featureinfo_return_geometries",
                        "map",
                    ],
                )
            } else {
                (
                    k.at("wms_opts"),
                    &[
                        "version",
                        "map",
                        "featureinfo",
                        "legendgraphic",
                        "legendurl",
                        "featureinfo_format",
                        "featureinfo_xslt",
                        "featureinfo_out_format",
                        "query_layers",
                    ],
                )
            };
            let mut wms_opts = IndexMap::new();
            if let Some(w) = k.get(if is_arcgis { "opts" } else { "wms_opts" }) {
                if let Some(mut wk) = ctx.map(w, &wp) {
                    for key in opt_keys {
                        if let Some(v) = wk.get(key) {
                            wms_opts.insert(key.to_string(), v.clone());
                        }
                    }
                    if let Some(v) = wms_opts.get("version") {
                        let vp = format!("{wp}.version");
                        if let Some(s) = ctx.string(v, &vp) {
                            if !["1.0.0", "1.1.0", "1.1.1", "1.3.0"].contains(&s.as_str()) {
                                ctx.error(
                                    &v.loc,
                                    &vp,
                                    format!("expected 1.0.0, 1.1.0, 1.1.1 or 1.3.0, found '{s}'"),
                                );
                            }
                        }
                    }
                    wk.finish(ctx);
                }
            }
            let arcgis = if is_arcgis {
                let tp = format!("{wp}.featureinfo_tolerance");
                let tolerance = match wms_opts.shift_remove("featureinfo_tolerance") {
                    None => "5".to_string(),
                    Some(t) => match t.value {
                        Value::Int(i) => i.to_string(),
                        Value::Float(f) => crate::source::py_float_repr(f),
                        _ => {
                            ctx.error(&t.loc, &tp, "expected a number");
                            "5".to_string()
                        }
                    },
                };
                let gp = format!("{wp}.featureinfo_return_geometries");
                let return_geometries = wms_opts
                    .shift_remove("featureinfo_return_geometries")
                    .and_then(|g| ctx.boolean(&g, &gp))
                    .unwrap_or(false);
                Some(ArcGisOpts {
                    tolerance,
                    return_geometries,
                })
            } else {
                None
            };
            let image = if arcgis.is_some() {
                image_opts(ctx, &mut k, &[])
            } else {
                image_opts(
                    ctx,
                    &mut k,
                    &[
                        "opacity",
                        "transparent_color",
                        "transparent_color_tolerance",
                    ],
                )
            };
            // MapProxy's SourceConfiguration.image_opts: a `transparent` beside `req` (not in
            // the spec: it still warns), else `image.transparent`, else a WMS source's
            // `req.transparent` (WMSSourceConfiguration.image_opts); an ArcGIS source's
            // `req.transparent` is only sent
            let flag = |n: Option<&Node>| match n.map(|n| &n.value) {
                Some(Value::Bool(b)) => Some(*b),
                Some(Value::Str(s)) => Some(s.eq_ignore_ascii_case("true")),
                _ => None,
            };
            let beside = flag(n.as_map().and_then(|m| m.get("transparent")));
            let in_image = flag(
                image
                    .as_ref()
                    .and_then(|i| i.as_map())
                    .and_then(|m| m.get("transparent")),
            );
            if arcgis.is_some() {
                transparent = false;
            }
            let transparent = beside.or(in_image).unwrap_or(transparent);
            SourceKind::Wms(WmsSourceConf {
                url,
                layers,
                transparent,
                params,
                arcgis: arcgis.clone(),
                supported_srs: opt(&mut k, "supported_srs", |n, p| ctx.strings(n, p)),
                supported_formats: opt(&mut k, "supported_formats", |n, p| ctx.strings(n, p)),
                wms_opts,
                image,
                http: sub_http(ctx, &mut k),
                on_error: on_error(ctx, &mut k),
                forward_req_params: if arcgis.is_some() {
                    Vec::new()
                } else {
                    opt(&mut k, "forward_req_params", |n, p| ctx.strings(n, p)).unwrap_or_default()
                },
                common: common(ctx, &mut k),
            })
        }
        "debug" => SourceKind::Debug,
        "mapserver" | "mapnik" | "ogcapitiles" | "ogcapimaps" => {
            return Some(SourceConf {
                kind: SourceKind::Other {
                    type_name,
                    conf: n.clone(),
                },
                loc: n.loc.clone(),
            });
        }
        _ => {
            ctx.errors.push(n.loc.error(format!(
                "unknown type value '{type_name}' in {path} (expected one of {})",
                SOURCE_TYPES.join(", ")
            )));
            return None;
        }
    };
    k.finish(ctx);
    Some(SourceConf {
        kind,
        loc: n.loc.clone(),
    })
}

fn layer(ctx: &mut Ctx, n: &Node, path: &str, name_from_key: Option<&str>) -> Option<LayerConf> {
    let mut k = ctx.map(n, path)?;
    let mut l = LayerConf {
        name: opt(&mut k, "name", |n, p| ctx.string(n, p)).or(name_from_key.map(str::to_string)),
        title: opt(&mut k, "title", |n, p| scalar_text(ctx, n, p)),
        sources: opt(&mut k, "sources", |n, p| ctx.strings(n, p)).unwrap_or_default(),
        tile_sources: opt(&mut k, "tile_sources", |n, p| ctx.strings(n, p)).unwrap_or_default(),
        layers: Vec::new(),
        // MapProxy's wms_130_layer_md (config/spec.py:272-318): other keys warn
        md: checked(ctx, &mut k, "md", &LAYER_MD),
        path: path.to_string(),
        min_res: opt(&mut k, "min_res", |n, p| ctx.number(n, p)),
        max_res: opt(&mut k, "max_res", |n, p| ctx.number(n, p)),
        min_scale: opt(&mut k, "min_scale", |n, p| ctx.number(n, p)),
        max_scale: opt(&mut k, "max_scale", |n, p| ctx.number(n, p)),
        legendurl: opt(&mut k, "legendurl", |n, p| ctx.string(n, p)),
        wmts_rest_legendurl: opt(&mut k, "wmts_rest_legendurl", |n, p| ctx.string(n, p)),
        wmts_kvp_legendurl: opt(&mut k, "wmts_kvp_legendurl", |n, p| ctx.string(n, p)),
        dimensions: k.get("dimensions").cloned(),
        loc: n.loc.clone(),
    };
    for key in ["nominal_res", "nominal_scale"] {
        k.get(key);
    }
    if l.title.is_none() {
        ctx.error(&n.loc, path, format!("missing 'title', not in {path}"));
    }
    let lp = k.at("layers");
    if let Some(children) = k.get("layers") {
        l.layers = layer_list(ctx, children, &lp);
    }
    k.finish(ctx);
    Some(l)
}

fn layer_list(ctx: &mut Ctx, n: &Node, path: &str) -> Vec<LayerConf> {
    match &n.value {
        Value::Seq(items) => items
            .iter()
            .enumerate()
            .filter_map(|(i, it)| layer(ctx, it, &format!("{path}[{i}]"), None))
            .collect(),
        Value::Map(m) => m
            .iter()
            .filter_map(|(name, it)| layer(ctx, it, &format!("{path}.{name}"), Some(name)))
            .collect(),
        _ => {
            ctx.error(
                &n.loc,
                path,
                format!("expected a list of layers, found {}", n.value.kind()),
            );
            Vec::new()
        }
    }
}

fn services(ctx: &mut Ctx, n: Option<&Node>) -> ServicesConf {
    let mut s = ServicesConf::default();
    let Some(n) = n else { return s };
    let Some(k) = ctx.map(n, "services") else {
        return s;
    };
    for (name, v) in k.entries() {
        let p = format!("services.{name}");
        match name.as_str() {
            "demo" => s.demo = true,
            "tms" | "kml" => {
                let Some(mut sk) = ctx.map(v, &p) else {
                    continue;
                };
                let t = TmsConf {
                    use_grid_names: opt(&mut sk, "use_grid_names", |n, p| ctx.boolean(n, p))
                        .unwrap_or(false),
                    origin: if name == "tms" {
                        opt(&mut sk, "origin", |n, p| {
                            let o = ctx.string(n, p)?;
                            if crate::grid::Origin::parse(&o).is_err() {
                                ctx.error(
                                    &n.loc,
                                    p,
                                    format!("expected an origin (sw, nw, ll, ul), found '{o}'"),
                                );
                                return None;
                            }
                            Some(o)
                        })
                    } else {
                        None
                    },
                };
                sk.finish(ctx);
                if name == "tms" {
                    s.tms = Some(t)
                } else {
                    s.kml = Some(t)
                }
            }
            "wmts" => {
                let Some(mut sk) = ctx.map(v, &p) else {
                    continue;
                };
                s.wmts = Some(WmtsConf {
                    restful: opt(&mut sk, "restful", |n, p| ctx.boolean(n, p)).unwrap_or(true),
                    restful_template: opt(&mut sk, "restful_template", |n, p| ctx.string(n, p)),
                    restful_featureinfo_template: opt(
                        &mut sk,
                        "restful_featureinfo_template",
                        |n, p| ctx.string(n, p),
                    ),
                    kvp: opt(&mut sk, "kvp", |n, p| ctx.boolean(n, p)).unwrap_or(true),
                    md: checked(ctx, &mut sk, "md", &SERVICE_MD),
                    featureinfo_formats: sk.get("featureinfo_formats").cloned(),
                });
                sk.finish(ctx);
            }
            "wms" => {
                let Some(mut sk) = ctx.map(v, &p) else {
                    continue;
                };
                let default_mop = Node {
                    value: Value::Int(4000 * 4000),
                    loc: v.loc.clone(),
                };
                s.wms = Some(WmsConf {
                    srs: opt(&mut sk, "srs", |n, p| ctx.strings(n, p)).unwrap_or_else(|| {
                        [
                            "EPSG:4326",
                            "EPSG:4258",
                            "CRS:84",
                            "EPSG:900913",
                            "EPSG:3857",
                        ]
                        .map(String::from)
                        .to_vec()
                    }),
                    bbox_srs: sk.get("bbox_srs").cloned(),
                    image_formats: opt(&mut sk, "image_formats", |n, p| ctx.strings(n, p))
                        .unwrap_or_else(|| {
                            [
                                "image/png",
                                "image/jpeg",
                                "image/gif",
                                "image/GeoTIFF",
                                "image/tiff",
                            ]
                            .map(String::from)
                            .to_vec()
                        }),
                    versions: opt(&mut sk, "versions", |n, p| ctx.strings(n, p)),
                    md: checked(ctx, &mut sk, "md", &SERVICE_MD),
                    max_output_pixels: sk.get("max_output_pixels").cloned().unwrap_or(default_mop),
                    strict: opt(&mut sk, "strict", |n, p| ctx.boolean(n, p)).unwrap_or(false),
                    featureinfo_types: opt(&mut sk, "featureinfo_types", |n, p| ctx.strings(n, p)),
                    featureinfo_xslt: sk.get("featureinfo_xslt").cloned(),
                    on_source_errors: opt(&mut sk, "on_source_errors", |n, p| ctx.string(n, p))
                        .unwrap_or_else(|| "notify".into()),
                    concurrent_layer_renderer: opt(&mut sk, "concurrent_layer_renderer", |n, p| {
                        ctx.u32(n, p)
                    })
                    .unwrap_or(1),
                    attribution: sk.get("attribution").cloned(),
                    inspire_md: sk.get("inspire_md").cloned(),
                });
                sk.finish(ctx);
            }
            "ogcapi" => {
                s.other.insert(name.clone(), v.clone());
            }
            _ => ctx
                .warnings
                .push(v.loc.error(format!("unknown '{name}' in services"))),
        }
    }
    s
}

/// Build the model from the merged root mapping.
pub(crate) fn build(
    ctx: &mut Ctx,
    root: &IndexMap<String, Node>,
    file: &std::path::Path,
) -> MapProxyConf {
    let root_node = Node {
        value: Value::Map(root.clone()),
        loc: Location::file(file, 1),
    };
    let mut k = ctx
        .map(&root_node, "")
        .expect("a mapping reads as a mapping");
    let globals = globals(ctx, k.get("globals"));
    let mut conf = MapProxyConf {
        globals,
        grids: IndexMap::new(),
        caches: IndexMap::new(),
        sources: IndexMap::new(),
        layers: Vec::new(),
        services: ServicesConf::default(),
        parts: k.get("parts").cloned(),
        seeding: false,
    };
    if let Some(gn) = k.get("grids") {
        if let Some(gk) = ctx.map(gn, "grids") {
            for (name, v) in gk.entries() {
                if let Some(g) = grid(ctx, v, &format!("grids.{name}")) {
                    conf.grids.insert(
                        name.clone(),
                        Grid {
                            conf: g,
                            loc: v.loc.clone(),
                        },
                    );
                }
            }
        }
    }
    if let Some(sn) = k.get("sources") {
        if let Some(sk) = ctx.map(sn, "sources") {
            for (name, v) in sk.entries() {
                if let Some(s) = source(ctx, v, &format!("sources.{name}")) {
                    conf.sources.insert(name.clone(), s);
                }
            }
        }
    }
    if let Some(cn) = k.get("caches") {
        if let Some(ck) = ctx.map(cn, "caches") {
            for (name, v) in ck.entries() {
                if let Some(c) = cache(ctx, &conf.globals, v, &format!("caches.{name}")) {
                    conf.caches.insert(name.clone(), c);
                }
            }
        }
    }
    if let Some(ln) = k.get("layers") {
        conf.layers = layer_list(ctx, ln, "layers");
    }
    conf.services = services(ctx, k.get("services"));
    k.finish(ctx);
    conf
}
