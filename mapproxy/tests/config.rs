//! mapproxy.yaml loading: MapProxy's own fixtures, base: includes, ${VAR}, defaults, and every
//! kind of error and warning with its file:line and YAML path.

use std::path::{Path, PathBuf};

use mapproxy_serve_mapproxy::config::{load, load_str, load_with_env, LinkSingleColor, SourceKind};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/config")
}

fn messages(e: &mapproxy_serve_core::error::ConfigErrors) -> Vec<String> {
    e.0.iter().map(|e| e.to_string()).collect()
}

#[test]
fn every_supported_system_fixture_of_mapproxy_loads() {
    // the YAMLs of mapproxy/test/system/fixture whose sources are tile, wms or debug
    let dir = fixtures().join("system");
    let mut n = 0;
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixture dir")
        .flatten()
        .map(|e| e.path())
        .collect();
    names.sort();
    for p in names {
        let loaded = load(&p).unwrap_or_else(|e| panic!("{}:\n{e}", p.display()));
        // the only warnings are those MapProxy's validator.py logs for the same files (checked
        // with the real MapProxy: layergroups, layergroups_root and sld reference WMS sources
        // without `layers`)
        let unexpected: Vec<_> = loaded
            .warnings
            .iter()
            .filter(|w| !w.message.starts_with("Missing 'layers' for source '"))
            .collect();
        assert!(unexpected.is_empty(), "{}: {unexpected:?}", p.display());
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
        let expect_missing_layers =
            ["layergroups.yaml", "layergroups_root.yaml", "sld.yaml"].contains(&name);
        assert_eq!(!loaded.warnings.is_empty(), expect_missing_layers, "{name}");
        for s in loaded.conf.sources.values() {
            assert!(
                !matches!(s.kind, SourceKind::Other { .. }),
                "{}",
                p.display()
            );
        }
        n += 1;
    }
    assert_eq!(n, 48);
}

#[test]
fn a_system_fixture_reads_as_written() {
    let l = load(&fixtures().join("system/layergroups.yaml")).expect("loads");
    let c = &l.conf;
    assert!(!c.layers.is_empty());
    let tms = load(&fixtures().join("system/tileservice_origin.yaml")).expect("loads");
    assert_eq!(
        tms.conf
            .services
            .tms
            .as_ref()
            .and_then(|t| t.origin.as_deref()),
        Some("nw")
    );
}

#[test]
fn base_config_template_loads() {
    let p = fixtures().join("base_config_mapproxy.yaml");
    let l = load_with_env(
        &std::fs::read_to_string(&p).expect("template"),
        &p,
        &|name| match name {
            "server" => Some("wms.example.org".to_string()),
            "layer" => Some("osm".to_string()),
            _ => None,
        },
    )
    .expect("MapProxy's base_config template loads");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let SourceKind::Wms(w) = &l.conf.sources["osm_wms"].kind else {
        panic!("a wms source")
    };
    assert!(
        w.url.starts_with("http://wms.example.org/service?"),
        "{}",
        w.url
    );
    assert_eq!(
        l.conf
            .services
            .tms
            .as_ref()
            .and_then(|t| t.origin.as_deref()),
        Some("nw")
    );
    assert!(l.conf.services.demo);
    assert!(l.conf.services.wms.is_some());
    assert!(l.conf.caches.contains_key("osm_cache"));
    assert_eq!(l.files, vec![p]);
}

#[test]
fn base_includes_merge_as_mapproxy_does() {
    // expected values: tests/fixtures/config/base/expected.json, printed by MapProxy's
    // load_configuration_file (generate.py)
    let dir = fixtures().join("base");
    let main = dir.join("main.yaml");
    let text = std::fs::read_to_string(&main).expect("main.yaml");
    let env = |name: &str| match name {
        "MPS_TEST_DIR" => Some("/data".to_string()),
        "MPS_TEST_HOST" => Some("tiles.example.org".to_string()),
        _ => None,
    };
    let l = load_with_env(&text, &main, &env).expect("loads");
    let c = &l.conf;
    assert_eq!(
        l.files,
        vec![
            main.clone(),
            dir.join("common.yaml"),
            dir.join("sub/grids.yaml"),
            dir.join("more.yaml")
        ]
    );
    let cache = &c.caches["osm_cache"];
    assert_eq!(cache.format, "image/jpeg"); // only in more.yaml
    assert_eq!(cache.grids, vec!["g1"]); // common.yaml wins over more.yaml, 'grids' is replaced
    assert_eq!(cache.sources, vec!["osm"]);
    assert_eq!(cache.meta_size, (2, 2)); // globals from more.yaml
    assert_eq!(c.globals.cache.base_dir, PathBuf::from("/data/tiles"));
    assert_eq!(cache.cache_dir, PathBuf::from("/data/tiles"));
    assert_eq!(c.grids["g1"].conf.num_levels, Some(5));
    assert_eq!(c.grids["g1"].loc.file, dir.join("sub/grids.yaml"));
    let wms = c.services.wms.as_ref().expect("wms");
    assert_eq!(wms.srs, vec!["EPSG:4326", "EPSG:3857"]); // lists concatenate
    assert_eq!(wms.image_formats, vec!["image/png"]);
    assert!(c.services.tms.is_some()); // `tms:` with no value
    let names: Vec<_> = c
        .layers
        .iter()
        .map(|l| {
            (
                l.name.clone().unwrap_or_default(),
                l.title.clone().unwrap_or_default(),
                l.sources.clone(),
            )
        })
        .collect();
    assert_eq!(
        names,
        vec![
            (
                "osm".to_string(),
                "OSM from main".to_string(),
                vec!["osm_cache".to_string()]
            ),
            (
                "other".to_string(),
                "Other".to_string(),
                vec!["osm_cache".to_string()]
            ),
        ]
    );
    let SourceKind::Tile(t) = &c.sources["osm"].kind else {
        panic!("a tile source")
    };
    assert_eq!(
        t.url,
        "http://tiles.example.org/{z}/{x}/{y}.png?key=${MPS_TEST_UNSET}"
    );
    let w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![format!(
            "{}:14: Environment variable 'MPS_TEST_UNSET' is not set. Using fallback value: '${{MPS_TEST_UNSET}}'",
            main.display()
        )]
    );
    // the sample grid built from the merged conf
    let mut grids = c.grid_set();
    let g = grids.tile_grid("g1").expect("g1 builds");
    assert_eq!(g.levels(), 5);
}

#[test]
fn base_cycle_is_an_error() {
    let p = fixtures().join("base/cycle_a.yaml");
    let e = load(&p).expect_err("a cycle");
    let m = messages(&e);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with(&format!(
            "{}:1: base: '",
            fixtures().join("base/cycle_b.yaml").display()
        )),
        "{m:?}"
    );
    assert!(
        m[0].ends_with("cycle_a.yaml' includes itself (a cycle of base: files)"),
        "{m:?}"
    );
}

#[test]
fn missing_base_file_names_the_line() {
    let e =
        load_str("sources: {}\nbase: [nope.yaml]\n", Path::new("/x/m.yaml")).expect_err("missing");
    let m = messages(&e);
    assert!(
        m[0].starts_with("/x/m.yaml:2: base: cannot read '/x/nope.yaml': "),
        "{m:?}"
    );
}

#[test]
fn defaults_are_mapproxys() {
    let l = load_str(
        "caches:\n  c:\n    sources: []\nservices:\n  wms:\n  wmts:\n",
        Path::new("/etc/mp/mapproxy.yaml"),
    )
    .expect("loads");
    let g = &l.conf.globals;
    assert_eq!(g.cache.base_dir, PathBuf::from("/etc/mp/cache_data"));
    assert_eq!(
        g.cache.lock_dir,
        PathBuf::from("/etc/mp/cache_data/tile_locks")
    );
    assert_eq!(g.cache.meta_size, (4, 4));
    assert_eq!(g.cache.meta_buffer, 80);
    assert_eq!(g.cache.max_tile_limit, 500);
    assert_eq!(g.cache.concurrent_tile_creators, 2);
    assert!(!g.cache.minimize_meta_requests);
    assert_eq!(g.cache.link_single_color_images, LinkSingleColor::No);
    assert_eq!(g.http.client_timeout, 60.0);
    assert_eq!(g.http.method, "AUTO");
    assert_eq!(g.http.access_control_allow_origin.as_deref(), Some("*"));
    assert!(g.http.hide_error_details);
    assert!(!g.http.ssl_no_cert_checks);
    assert_eq!(g.tiles_expires_hours, 72.0);
    assert_eq!(g.image.resampling_method, "bicubic");
    assert_eq!(g.image.jpeg_quality, 90);
    assert!(g.image.paletted);
    assert_eq!(g.image.stretch_factor, 1.15);
    assert_eq!(g.image.max_shrink_factor, 4.0);
    assert_eq!(g.grid_tile_size, (256, 256));
    let c = &l.conf.caches["c"];
    assert_eq!(c.grids, vec!["GLOBAL_MERCATOR"]);
    assert_eq!(c.format, "image/png");
    assert_eq!(c.cache.kind, "file");
    assert_eq!(c.cache.directory_layout.as_deref(), Some("tc"));
    let wms = l.conf.services.wms.as_ref().expect("wms");
    assert_eq!(
        wms.srs,
        vec![
            "EPSG:4326",
            "EPSG:4258",
            "CRS:84",
            "EPSG:900913",
            "EPSG:3857"
        ]
    );
    assert_eq!(
        wms.image_formats,
        vec![
            "image/png",
            "image/jpeg",
            "image/gif",
            "image/GeoTIFF",
            "image/tiff"
        ]
    );
    assert!(!wms.strict);
    assert_eq!(wms.concurrent_layer_renderer, 1);
    let wmts = l.conf.services.wmts.as_ref().expect("wmts");
    assert!(wmts.restful && wmts.kvp);
}

#[test]
fn globals_override_defaults_and_paths_resolve() {
    let l = load_str(
        "globals:\n  cache:\n    base_dir: tiles\n    meta_size: [2, 3]\n    link_single_color_images: hardlink\n  http:\n    ssl_ca_certs: certs/ca.pem\n    access_control_allow_origin: {}\n    headers: {X-A: 1}\n  image:\n    paletted: off\ncaches:\n  c:\n    sources: []\n    cache: {type: mbtiles, filename: db/c.mbtiles}\n",
        Path::new("/etc/mp/mapproxy.yaml"),
    )
    .expect("loads");
    let g = &l.conf.globals;
    assert_eq!(g.cache.base_dir, PathBuf::from("/etc/mp/tiles"));
    assert_eq!(g.cache.meta_size, (2, 3));
    assert_eq!(g.cache.link_single_color_images, LinkSingleColor::Hardlink);
    assert_eq!(
        g.http.ssl_ca_certs,
        Some(PathBuf::from("/etc/mp/certs/ca.pem"))
    );
    assert_eq!(g.http.access_control_allow_origin, None);
    assert_eq!(g.http.headers["X-A"], "1");
    assert!(!g.image.paletted); // YAML 1.1: off
    let c = &l.conf.caches["c"];
    assert_eq!(c.meta_size, (2, 3)); // from globals
    assert_eq!(
        c.cache.filename,
        // MapProxy: relative to the cache's directory (here globals.cache.base_dir)
        Some(PathBuf::from("/etc/mp/tiles/db/c.mbtiles"))
    );
    assert_eq!(c.cache.directory_layout, None);
}

#[test]
fn unknown_keys_are_warnings_in_mapproxys_wording() {
    let text = "layers:\n  - name: a\n    title: A\n    foo: 1\ncaches:\n  c:\n    sources: [s]\n    cache: {type: file, bar: 2}\n    image: {colours: 8}\nsources:\n  s: {type: tile, url: x, http: {hdrs: 1}}\nglobals:\n  cache: {baz: 1}\nnope: 1\n";
    let l = load_str(text, Path::new("m.yaml")).expect("warnings only");
    let w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "m.yaml:13: unknown 'baz' in globals.cache",
            "m.yaml:11: unknown 'hdrs' in sources.s.http",
            "m.yaml:9: unknown 'colours' in caches.c.image",
            "m.yaml:8: unknown 'bar' in caches.c.cache",
            "m.yaml:4: unknown 'foo' in layers[0]",
            "m.yaml:14: unknown 'nope' in .",
        ]
    );
}

/// Metadata is read as written, but its keys are checked as MapProxy's spec does
/// (`wms_130_layer_md`, `ogc_service_md`): the same warnings as MapProxy 7's loader prints
/// for this YAML (checked against it).
#[test]
fn unknown_metadata_keys_warn_as_mapproxy() {
    let text = "\
services:
  wms:
    md:
      title: T
      contact: {person: x, anything: goes}
      keyword_list:
        - {vocabulary: v, keywords: [a], extra: 1}
layers:
  - name: d
    title: d
    md:
      abstract: A
      attribution: {title: t, titel: x, logo: {url: u, widht: 3}}
      keyword_list: [{vocab: x, keywords: [a]}]
      identifier: [{url: u, nam: n}]
      metadata: [{url: u, typ: t}]
      data: [{url: u, format: f}]
      foo: bar
";
    let l = load_str(text, Path::new("m.yaml")).expect("warnings only");
    let mut w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    w.sort();
    assert_eq!(
        w,
        vec![
            "m.yaml:13: unknown 'titel' in layers[0].md.attribution",
            "m.yaml:13: unknown 'widht' in layers[0].md.attribution.logo",
            "m.yaml:14: unknown 'vocab' in layers[0].md.keyword_list[0]",
            "m.yaml:15: unknown 'nam' in layers[0].md.identifier[0]",
            "m.yaml:16: unknown 'typ' in layers[0].md.metadata[0]",
            "m.yaml:18: unknown 'foo' in layers[0].md",
            "m.yaml:7: unknown 'extra' in services.wms.md.keyword_list[0]",
        ]
    );
}

#[test]
fn wrong_types_are_errors_with_line_and_path_all_collected() {
    let text = "\
caches:
  c:
    sources: [s]
    meta_size: 3
    disable_storage: maybe
  d:
    sources: [s]
    cache: {type: nosuch}
sources:
  s: {type: tile, url: 'http://x/{z}', transparent: 1}
  w: {type: wms, req: {layers: a}}
  x: {type: nosuch}
  y: {url: 'http://x/'}
grids:
  g: {res_factor: twice, bbox: '1,2,3'}
layers:
  - name: l
    sources: [s]
";
    let e = load_str(text, Path::new("m.yaml")).expect_err("errors");
    assert_eq!(
        messages(&e),
        vec![
            "m.yaml:15: grids.g.bbox: expected four numbers: 'minx,miny,maxx,maxy' or a list",
            "m.yaml:15: grids.g.res_factor: expected a number or 'sqrt2'",
            "m.yaml:10: sources.s.transparent: expected true or false, found 1",
            "m.yaml:11: sources.w.req: missing 'url', not in sources.w.req",
            "m.yaml:12: unknown type value 'nosuch' in sources.x (expected one of wms, mapserver, tile, mapnik, arcgis, debug, ogcapitiles, ogcapimaps)",
            "m.yaml:13: 'type' not in sources.y",
            "m.yaml:4: caches.c.meta_size: expected a list of two integers, found 3",
            "m.yaml:5: caches.c.disable_storage: expected true or false, found 'maybe'",
            "m.yaml:8: unknown type value 'nosuch' in caches.d.cache (expected one of file, sqlite, mbtiles, geopackage, couchdb, s3, redis, compact, azureblob)",
            "m.yaml:17: layers[0]: missing 'title', not in layers[0]",
        ]
    );
}

#[test]
fn references_are_checked_in_mapproxys_wording() {
    let text = "\
caches:
  c:
    sources: ['missing_src', 'w:a,b', other]
    grids: [nogrid, GLOBAL_GEODETIC]
  other:
    sources: []
sources:
  w: {type: wms, req: {url: 'http://x/', layers: a}}
  t: {type: tile, url: 'http://x/', grid: g2}
layers:
  - name: top
    title: Top
    sources: [c, w, nosrc]
    layers:
      - name: child
        title: Child
        tile_sources: [w]
";
    let e = load_str(text, Path::new("m.yaml")).expect_err("reference errors");
    assert_eq!(
        messages(&e),
        vec![
            "m.yaml:3: Source 'missing_src' for cache 'c' not found in config",
            "m.yaml:3: Grid 'nogrid' for cache 'c' not found in config",
            "m.yaml:9: Grid 'g2' for source 't' not found in config",
            "m.yaml:11: Source 'nosrc' for layer 'top' not in cache or source section",
            "m.yaml:15: Tile source 'w' for layer 'child' not in cache section",
        ]
    );
}

#[test]
fn other_source_types_are_kept_with_type_and_location() {
    let l = load_str(
        "sources:\n  m:\n    type: mapnik\n    mapfile: x.xml\n",
        Path::new("m.yaml"),
    )
    .expect("loads");
    let s = &l.conf.sources["m"];
    assert_eq!(s.loc.line, 3);
    match &s.kind {
        SourceKind::Other { type_name, .. } => assert_eq!(type_name, "mapnik"),
        other => panic!("expected Other, got {other:?}"),
    }
}

#[test]
fn old_dict_layers_and_yaml_errors() {
    let l = load_str(
        "layers:\n  a: {title: A, sources: []}\n",
        Path::new("m.yaml"),
    )
    .expect("loads");
    assert_eq!(l.conf.layers[0].name.as_deref(), Some("a"));
    let e = load_str("- a\n- b\n", Path::new("m.yaml")).expect_err("not a dict");
    assert_eq!(
        messages(&e),
        vec!["m.yaml: configuration not a YAML dictionary"]
    );
    let e = load_str("a: [1\n", Path::new("m.yaml")).expect_err("syntax");
    assert!(messages(&e)[0].starts_with("m.yaml:"), "{e}");
}

#[test]
fn coverage_files_resolve_against_the_yaml_directory() {
    let text = "\
sources:
  s:
    type: tile
    url: 'http://x/'
    coverage:
      union:
        - {polygons: cov/a.txt, polygons_srs: 'EPSG:4326'}
        - {datasource: '1,2,3,4', srs: 'EPSG:4326'}
        - {datasource: 'PG: dbname=x', srs: 'EPSG:4326'}
        - {datasource: /abs/b.geojson, srs: 'EPSG:4326'}
        - {ogr_datasource: shapes/c.shp, ogr_srs: 'EPSG:4326'}
";
    let l = load_str(text, Path::new("/etc/mp/mapproxy.yaml")).expect("loads");
    let SourceKind::Tile(t) = &l.conf.sources["s"].kind else {
        panic!("a tile source")
    };
    let cov = t.common.coverage.as_ref().expect("coverage");
    let union = match &cov.as_map().expect("a mapping")["union"].value {
        mapproxy_serve_mapproxy::config::yaml::Value::Seq(items) => items.clone(),
        other => panic!("a list, got {other:?}"),
    };
    let value = |i: usize, k: &str| {
        union[i].as_map().expect("a mapping")[k]
            .as_str()
            .map(str::to_string)
    };
    assert_eq!(value(0, "polygons").as_deref(), Some("/etc/mp/cov/a.txt"));
    assert_eq!(value(1, "datasource").as_deref(), Some("1,2,3,4"));
    assert_eq!(value(2, "datasource").as_deref(), Some("PG: dbname=x"));
    assert_eq!(value(3, "datasource").as_deref(), Some("/abs/b.geojson"));
    assert_eq!(
        value(4, "ogr_datasource").as_deref(),
        Some("/etc/mp/shapes/c.shp")
    );
}

#[test]
fn wms_layers_checks_are_warnings_as_mapproxy_logs_them() {
    let text = "\
caches:
  c:
    sources: ['w:a,z', nolayers]
sources:
  w: {type: wms, req: {url: 'http://x/', layers: 'a,b'}}
  nolayers: {type: wms, req: {url: 'http://x/'}}
layers:
  - {name: l, title: L, sources: ['w:b']}
";
    let l = load_str(text, Path::new("m.yaml")).expect("warnings only");
    let w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "m.yaml:3: Supported layers for source 'w' are 'a, b' but tagged source requested layers 'a, z'",
            "m.yaml:3: Missing 'layers' for source 'nolayers'",
        ]
    );
}

#[test]
fn value_errors_point_at_the_value_line() {
    let text = "globals:\n  http:\n    client_timeout: 5\n    method: PUT\n  image:\n    resampling_method: cubic\n";
    let e = load_str(text, Path::new("/m/m.yaml")).expect_err("errors");
    assert_eq!(
        messages(&e),
        vec![
            "/m/m.yaml:4: globals.http.method: expected AUTO, GET or POST, found 'PUT'",
            "/m/m.yaml:6: globals.image.resampling_method: expected nearest, bilinear or bicubic, found 'cubic'",
        ]
    );
}

#[test]
fn a_relative_yaml_path_resolves_against_the_working_directory() {
    let l = load_str("sources: {}\n", Path::new("sub/mapproxy.yaml")).expect("loads");
    let cwd = std::env::current_dir().expect("cwd");
    assert_eq!(l.conf.globals.cache.base_dir, cwd.join("sub/cache_data"));
}

#[test]
fn coverage_keys_are_checked() {
    let text = "sources:\n  s:\n    type: debug\n  t:\n    type: tile\n    url: 'http://x/'\n    coverage:\n      union:\n        - {bbox: '0,0,1,1', srs: 'EPSG:4326', polygon: a.txt}\n      difference: {bbox: '0,0,1,1'}\n";
    let e = load_str(text, Path::new("m.yaml")).expect_err("a bad difference");
    assert_eq!(
        messages(&e),
        vec!["m.yaml:10: sources.t.coverage.difference: expected a list of coverages, found a mapping"]
    );
    let text = text.replace("      difference: {bbox: '0,0,1,1'}\n", "");
    let l = load_str(&text, Path::new("m.yaml")).expect("loads");
    let w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec!["m.yaml:9: unknown 'polygon' in sources.t.coverage.union[0]"]
    );
}

#[test]
fn watermark_refresh_before_and_on_error_are_checked() {
    let text = "\
caches:
  c:
    sources: [s]
    watermark: {text: hi, colour: red}
    refresh_before: {hours: 2, decades: 1}
sources:
  s:
    type: tile
    url: 'http://x/'
    on_error:
      500: {response: transparent, cache: false}
      404: {response: 3}
";
    let e = load_str(text, Path::new("m.yaml")).expect_err("a bad response");
    assert_eq!(
        messages(&e),
        vec!["m.yaml:12: sources.s.on_error.404.response: expected 'transparent', a colour like '#ff0000' or a list of integers"]
    );
    let l = load_str(
        &text.replace("response: 3", "response: [255, 0, 0]"),
        Path::new("m.yaml"),
    )
    .expect("loads");
    let w: Vec<_> = l.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        w,
        vec![
            "m.yaml:5: unknown 'decades' in caches.c.refresh_before",
            "m.yaml:4: unknown 'colour' in caches.c.watermark",
        ]
    );
    let SourceKind::Tile(t) = &l.conf.sources["s"].kind else {
        panic!("a tile source")
    };
    let statuses: Vec<_> = t
        .on_error
        .iter()
        .map(|e| (e.status.as_str(), e.cache))
        .collect();
    assert_eq!(statuses, vec![("500", false), ("404", false)]);
}

#[test]
fn band_sources_are_checked() {
    let text = "\
caches:
  c:
    sources:
      l: [{source: s, band: 0}]
      r: [{source: nope, band: 0}, {band: 1}]
sources:
  s: {type: debug}
";
    let e = load_str(text, Path::new("m.yaml")).expect_err("errors");
    assert_eq!(
        messages(&e),
        vec![
            "m.yaml:3: Cannot combine 'l' band with bands in cache 'c'",
            "m.yaml:5: Source 'nope' for cache 'c' not found in config",
            "m.yaml:5: caches.c.sources.r: expected {source: name, band: n}",
        ]
    );
    let l = load(&fixtures().join("system/cache_band_merge.yaml")).expect("loads");
    assert!(l.conf.caches.values().any(|c| c.band_sources.is_some()));
}

#[test]
fn redis_tile_lock_options_default_on_and_are_checked() {
    let base = "\
sources:
  s: {type: tile, url: 'http://x/{z}'}
layers:
  - {name: l, title: l, sources: [c]}
caches:
  c:
    sources: [s]
    cache:
      type: redis
";
    // a MapProxy YAML: the lock is on, with its defaults, and nothing warns
    let l = load_str(base, Path::new("m.yaml")).expect("loads");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let r = l.conf.caches["c"].cache.redis.clone().expect("redis");
    assert!(r.tile_lock);
    assert_eq!(r.tile_lock_expiry, 10.0);
    assert_eq!(r.tile_lock_timeout, None);

    let l = load_str(
        &format!("{base}      tile_lock: false\n      tile_lock_expiry: 2.5\n      tile_lock_timeout: 30\n"),
        Path::new("m.yaml"),
    )
    .expect("loads");
    assert!(l.warnings.is_empty(), "{:?}", l.warnings);
    let r = l.conf.caches["c"].cache.redis.clone().expect("redis");
    assert!(!r.tile_lock);
    assert_eq!(r.tile_lock_expiry, 2.5);
    assert_eq!(r.tile_lock_timeout, Some(30.0));

    let e = load_str(
        &format!("{base}      tile_lock: sometimes\n      tile_lock_expiry: 0\n"),
        Path::new("m.yaml"),
    )
    .expect_err("errors");
    assert_eq!(
        messages(&e),
        vec![
            "m.yaml:10: caches.c.cache.tile_lock: expected true or false, found 'sometimes'",
            "m.yaml:11: caches.c.cache.tile_lock_expiry: expected a number of seconds above 0",
        ]
    );
}
