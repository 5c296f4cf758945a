//! TileManager against real loopback upstreams: meta tile requests, splitting, single
//! flight, the lock directory shared by two managers, failures.

mod tiles_support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use mapproxy_serve_mapproxy::grid::{self, TileCoord, TileGrid};
use mapproxy_serve_mapproxy::image::{decode, ImageFormat, ImageOpts};
use mapproxy_serve_mapproxy::lock::TileLocker;
use mapproxy_serve_mapproxy::meta::MetaGrid;
use mapproxy_serve_mapproxy::source::{
    py_float_repr, HttpOpts, MapSource, OnError, OnErrorResponse, SourceHttp, TileSource,
    TileUrlTemplate, WmsSource, WmsSourceConf,
};
use mapproxy_serve_mapproxy::tile::{TileError, TileProvider};
use mapproxy_serve_mapproxy::tile_manager::{MetaSettings, TileManager};
use tiles_support::{blackhole, coord_png, refused, until, MemCache, Mode, Upstream};

fn http(timeout: Duration) -> SourceHttp {
    SourceHttp::new(&HttpOpts {
        client_timeout: timeout,
        ..HttpOpts::default()
    })
    .expect("http")
}

fn wms(url: String, on_error: Option<OnError>) -> Arc<dyn MapSource> {
    let conf = WmsSourceConf::new(url, vec![("layers".into(), "dbg".into())]);
    Arc::new(WmsSource::new(conf, http(Duration::from_secs(5)), on_error))
}

fn opts() -> ImageOpts {
    let mut o = ImageOpts::new(ImageFormat::png());
    // exact colours for the offset checks
    o.paletted = false;
    o
}

fn manager(
    cache: &Arc<MemCache>,
    source: Arc<dyn MapSource>,
    grid: TileGrid,
    meta: MetaSettings,
    lock_dir: &std::path::Path,
) -> TileManager {
    TileManager::new(
        cache.clone(),
        source,
        grid,
        meta,
        opts(),
        TileLocker::new(lock_dir, "cacheid", Duration::from_secs(10)),
        2,
    )
}

fn query_of(request: &str) -> Vec<(String, String)> {
    request
        .split_once('?')
        .map(|(_, q)| q)
        .unwrap_or("")
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn param(request: &str, key: &str) -> String {
    query_of(request)
        .into_iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v)
        .unwrap_or_default()
}

#[tokio::test]
async fn geodetic_level_1_is_one_512x256_getmap() {
    let up = Upstream::start(Mode::Png).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(MemCache::default());
    let m = manager(
        &cache,
        wms(up.url("/service"), None),
        grid::global_geodetic(),
        MetaSettings::DEFAULT,
        dir.path(),
    );
    let t = m.tile((1, 0, 1)).await.expect("tile");
    assert_eq!(
        up.requests(),
        vec!["/service?layers=dbg&format=image%2Fpng&bbox=-180.0,-90.0,180.0,90.0&width=512&height=256&srs=EPSG%3A4326&request=GetMap&version=1.1.1&service=WMS&styles=".to_owned()]
    );
    assert_eq!(cache.len(), 2, "both tiles of the meta tile stored");
    let stored = cache.get((1, 0, 1)).expect("stored");
    assert_eq!(t.data, stored.data);
    // cut from a meta tile just made: no time, as MapProxy's tile of a meta tile (only its
    // image is copied to the tile asked for: cache/tile_manager.py:177-179); a load has it
    assert_eq!(t.mtime, None);
    let hit = m.tile((1, 0, 1)).await.expect("hit");
    assert_eq!(hit.mtime, Some(stored.mtime));
    assert_eq!(t.format, ImageFormat::png());
    // the right half of the 512x256 image: pixel (256, 0) of the meta image
    let img = decode(&t.data).expect("png");
    assert_eq!(img.dimensions(), (256, 256));
    assert_eq!(img.get_pixel(0, 0).0, [0, 0, 1 << 4, 255]);
    // level 1 tiles reach 90 degrees north: no offset
    assert_eq!(img.get_pixel(3, 5).0, [3, 5, 1 << 4, 255]);

    // the other tile: from the cache
    let t0 = m.tile((0, 0, 1)).await.expect("tile");
    assert_eq!(up.count(), 1);
    assert!(t0.mtime.is_some());
    assert_eq!(
        m.tile((2, 0, 1)).await.expect_err("outside"),
        TileError::OutOfRange
    );
    // the meta tile's lock is released
    let probe = TileLocker::new(dir.path(), "cacheid", Duration::ZERO);
    drop(probe.lock((0, 0, 1)).await.expect("lock released"));

    // level 0: one tile reaching to 270 degrees north; the image is its lower half
    let t = m.tile((0, 0, 0)).await.expect("level 0");
    let last = up.requests().pop().expect("request");
    assert_eq!(param(&last, "bbox"), "-180.0,-90.0,180.0,90.0");
    assert_eq!(
        (param(&last, "width"), param(&last, "height")),
        ("256".into(), "128".into())
    );
    let img = decode(&t.data).expect("png");
    assert_eq!(
        img.get_pixel(5, 0).0,
        [255, 255, 255, 255],
        "outside the image: background"
    );
    assert_eq!(
        img.get_pixel(5, 128).0,
        [5, 0, 0, 255],
        "the image's first row"
    );
}

#[tokio::test]
async fn webmercator_meta_tile_request_and_split() {
    let up = Upstream::start(Mode::Png).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(MemCache::default());
    let g = grid::global_webmercator();
    let m = manager(
        &cache,
        wms(up.url("/service"), None),
        g.clone(),
        MetaSettings::DEFAULT,
        dir.path(),
    );
    // at the grid's edge (level 3 has 8x8 tiles): the buffer is clipped on two sides
    m.tile((5, 6, 3)).await.expect("edge tile");
    let req = up.requests().pop().expect("request");
    assert_eq!(
        (param(&req, "width"), param(&req, "height")),
        ("1104".into(), "1104".into())
    );
    let coord: TileCoord = (5, 6, 4);
    let t = m.tile(coord).await.expect("tile");
    let mt = MetaGrid::new(g, (4, 4), 80)
        .meta_tile(coord)
        .expect("meta tile");
    let req = up.requests().pop().expect("request");
    let bbox: Vec<String> = mt.bbox.iter().map(|v| py_float_repr(*v)).collect();
    assert_eq!(param(&req, "bbox"), bbox.join(","));
    assert_eq!(param(&req, "srs"), "EPSG%3A3857");
    // 4x4 tiles + 80 px on each side inside the grid: 1184 x 1184
    assert_eq!(
        (param(&req, "width"), param(&req, "height")),
        ("1184".into(), "1184".into())
    );
    assert_eq!(mt.size, (1184, 1184));
    assert_eq!(cache.len(), 32);
    let (_, (ox, oy)) = mt
        .tiles
        .iter()
        .find(|(c, _)| *c == Some(coord))
        .copied()
        .expect("in meta tile");
    let img = decode(&t.data).expect("png");
    let (ox, oy) = (ox as u32, oy as u32);
    let want = |x: u32, y: u32| {
        [
            (x & 255) as u8,
            (y & 255) as u8,
            (((x >> 8) << 4) | (y >> 8)) as u8,
            255,
        ]
    };
    assert_eq!(img.get_pixel(0, 0).0, want(ox, oy));
    assert_eq!(img.get_pixel(255, 17).0, want(ox + 255, oy + 17));
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn sixty_four_concurrent_misses_one_request() {
    let up = Upstream::start(Mode::Png).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(MemCache::default());
    let m = Arc::new(manager(
        &cache,
        wms(up.url("/service"), None),
        grid::global_webmercator(),
        MetaSettings::DEFAULT,
        dir.path(),
    ));
    let mut tasks = Vec::new();
    for i in 0..64i64 {
        let m = m.clone();
        tasks.push(tokio::spawn(async move {
            m.tile((i % 4, (i / 4) % 4, 2)).await
        }));
    }
    for t in tasks {
        let tile = t.await.expect("task").expect("tile");
        assert!(decode(&tile.data).is_ok());
    }
    assert_eq!(up.count(), 1, "{:?}", up.requests());
    assert_eq!(cache.len(), 16);
    assert_eq!(
        cache.stores.load(Ordering::SeqCst),
        16,
        "each tile stored once"
    );
}

#[tokio::test]
async fn two_managers_sharing_a_lock_dir_fetch_once() {
    let up = Upstream::start(Mode::Png).await;
    let gate = Arc::new(tokio::sync::Semaphore::new(0));
    *up.gate.lock().expect("lock") = Some(gate.clone());
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(MemCache::default());
    let g = grid::global_webmercator();
    let a = Arc::new(manager(
        &cache,
        wms(up.url("/service"), None),
        g.clone(),
        MetaSettings::DEFAULT,
        dir.path(),
    ));
    let b = Arc::new(manager(
        &cache,
        wms(up.url("/service"), None),
        g,
        MetaSettings::DEFAULT,
        dir.path(),
    ));

    let ta = tokio::spawn({
        let a = a.clone();
        async move { a.tile((1, 1, 2)).await }
    });
    // A holds the lock of the meta tile and waits for the upstream
    until("A's request", || up.count() == 1).await;
    // the meta tile's lock is held, for any process sharing the lock directory
    let probe = TileLocker::new(dir.path(), "cacheid", Duration::ZERO);
    assert!(matches!(
        probe.lock((0, 0, 2)).await,
        Err(mapproxy_serve_mapproxy::lock::LockError::Timeout(_))
    ));
    let loads = cache.loads.load(Ordering::SeqCst);
    let tb = tokio::spawn({
        let b = b.clone();
        async move { b.tile((2, 2, 2)).await }
    });
    // B missed the cache before A stored anything
    until("B's cache miss", || {
        cache.loads.load(Ordering::SeqCst) > loads
    })
    .await;
    assert_eq!(cache.len(), 0);
    gate.add_permits(10);
    let ta = ta.await.expect("task").expect("A's tile");
    let tb = tb.await.expect("task").expect("B's tile");
    assert_eq!(up.count(), 1, "B found the tiles after taking the lock");
    assert_eq!(tb.data, cache.get((2, 2, 2)).expect("stored").data);
    assert_eq!(ta.data, cache.get((1, 1, 2)).expect("stored").data);
    assert_eq!(cache.stores.load(Ordering::SeqCst), 16);
    drop(probe.lock((0, 0, 2)).await.expect("released"));
}

#[tokio::test]
async fn blackholed_upstream_fails_within_client_timeout_and_caches_nothing() {
    let addr = blackhole().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(MemCache::default());
    let conf = WmsSourceConf::new(
        format!("http://{addr}/service"),
        vec![("layers".into(), "dbg".into())],
    );
    let src: Arc<dyn MapSource> =
        Arc::new(WmsSource::new(conf, http(Duration::from_millis(500)), None));
    let m = manager(
        &cache,
        src,
        grid::global_webmercator(),
        MetaSettings::DEFAULT,
        dir.path(),
    );
    let start = Instant::now();
    let e = m.tile((0, 0, 1)).await.expect_err("no answer");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(
        e,
        TileError::Source {
            message: "Internal HTTP error (see logs for URL and reason).".into()
        }
    );
    assert_eq!(cache.len(), 0);
    assert!(
        m.tile((0, 0, 1)).await.is_err(),
        "nothing cached: fails again"
    );

    // a killed upstream: nobody listens
    let addr = refused().await;
    let src = wms(format!("http://{addr}/service"), None);
    let m = manager(
        &cache,
        src,
        grid::global_webmercator(),
        MetaSettings::DEFAULT,
        dir.path(),
    );
    let e = m.tile((0, 0, 1)).await.expect_err("refused");
    assert_eq!(
        e,
        TileError::Source {
            message: "No response from URL (see logs for URL and reason).".into()
        }
    );
    assert_eq!(cache.len(), 0);
}

#[tokio::test]
async fn on_error_image_is_stored_only_with_cache_true() {
    let up = Upstream::start(Mode::Status(503)).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(MemCache::default());
    let mut on = OnError::new();
    on.add(Some(503), OnErrorResponse::transparent(false));
    let m = manager(
        &cache,
        wms(up.url("/service"), Some(on)),
        grid::global_webmercator(),
        MetaSettings::DEFAULT,
        dir.path(),
    );
    let t = m.tile((0, 0, 1)).await.expect("on_error tile");
    assert_eq!(t.mtime, None);
    // `transparent` in a cache that is not transparent, not quantized (`paletted: false`):
    // MapProxy's img_to_buf writes the RGBA image it holds as it is (only quantizing a
    // cache that is not transparent drops the alpha), so the white stays transparent
    assert_eq!(
        decode(&t.data).expect("png").get_pixel(0, 0).0,
        [255, 255, 255, 0]
    );
    assert_eq!(cache.len(), 0);
    m.tile((0, 0, 1)).await.expect("again");
    assert_eq!(up.count(), 2, "not cached: asked again");

    let mut on = OnError::new();
    on.add(
        None,
        OnErrorResponse {
            color: [0, 0, 255, 255],
            cache: true,
            authorize_stale: false,
        },
    );
    let m = manager(
        &cache,
        wms(up.url("/service"), Some(on)),
        grid::global_webmercator(),
        MetaSettings::DEFAULT,
        dir.path(),
    );
    let t = m.tile((0, 0, 1)).await.expect("on_error tile");
    // stored, but answered as a tile of a meta tile just made: without a time
    assert!(t.mtime.is_none());
    assert_eq!(cache.len(), 4);
    assert!(m.tile((0, 0, 1)).await.expect("hit").mtime.is_some());
}

#[tokio::test]
async fn tile_source_without_metatiling_passes_bytes_through() {
    let up = Upstream::start(Mode::Png).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cache = Arc::new(MemCache::default());
    let g = grid::global_webmercator();
    let t = TileUrlTemplate::new(&up.url("/%(z)s/%(x)s/%(y)s.%(format)s")).expect("template");
    let src: Arc<dyn MapSource> = Arc::new(TileSource::new(
        t,
        g.clone(),
        http(Duration::from_secs(5)),
        None,
    ));
    let m = manager(&cache, src, g, MetaSettings::NONE, dir.path());
    let tile = m.tile((3, 2, 2)).await.expect("tile");
    assert_eq!(up.requests(), vec!["/2/3/2.png".to_owned()]);
    assert_eq!(tile.data, coord_png(256, 256), "the upstream's bytes");
    assert_eq!(cache.len(), 1);
    m.tile((3, 2, 2)).await.expect("cached");
    assert_eq!(up.count(), 1);
}
