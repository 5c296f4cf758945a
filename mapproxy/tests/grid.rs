//! The grids of `grid_cases.json`, built here and compared with what MapProxy 7.0.0 printed
//! for them (`gen_grid_cases.py`).

use mapproxy_serve_mapproxy::grid::{
    global_geodetic, global_mercator, global_webmercator, Bbox, GridConf, GridError, GridGlobals,
    GridSet, Num, Origin, ResFactor, TileCoord, TileGrid,
};
use serde_json::Value;

fn cases() -> Value {
    let text = include_str!("grid_cases.json");
    serde_json::from_str(text).expect("grid_cases.json is JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

fn floats(v: &Value) -> Vec<f64> {
    v.as_array().expect("array").iter().map(f).collect()
}

/// A number as the case wrote it: an int stays an int, as in MapProxy.
fn num(v: &Value) -> Num {
    match v.as_i64() {
        Some(i) => Num::Int(i),
        None => Num::Float(f(v)),
    }
}

fn bbox(v: &Value) -> Bbox {
    let b = floats(v);
    [b[0], b[1], b[2], b[3]]
}

fn coord(v: &Value) -> TileCoord {
    let a = v.as_array().expect("coord");
    (i(&a[0]), i(&a[1]), i(&a[2]) as usize)
}

fn epsg(v: &Value) -> u32 {
    let s = v.as_str().expect("srs string");
    s.trim_start_matches("EPSG:").parse().expect("EPSG code")
}

fn conf(v: &Value) -> GridConf {
    let get = |k: &str| v.get(k);
    GridConf {
        base: get("base").map(|b| b.as_str().expect("base").to_string()),
        name: get("name").map(|b| b.as_str().expect("name").to_string()),
        srs: get("srs").map(epsg),
        bbox: get("bbox").map(bbox),
        bbox_srs: get("bbox_srs").map(epsg),
        origin: get("origin").map(|o| o.as_str().expect("origin").to_string()),
        tile_size: get("tile_size").map(|t| (i(&t[0]) as u32, i(&t[1]) as u32)),
        res: get("res").map(|v| v.as_array().expect("array").iter().map(num).collect()),
        res_factor: get("res_factor").map(|r| match r.as_str() {
            Some("sqrt2") => ResFactor::Sqrt2,
            _ => ResFactor::Value(f(r)),
        }),
        threshold_res: get("threshold_res").map(floats),
        num_levels: get("num_levels").map(|n| i(n) as u32),
        min_res: get("min_res").map(num),
        max_res: get("max_res").map(f),
        align_resolutions_with: get("align_resolutions_with")
            .map(|a| a.as_str().expect("align").to_string()),
        stretch_factor: get("stretch_factor").map(f),
        max_shrink_factor: get("max_shrink_factor").map(f),
    }
}

/// Compares floats: bit for bit where MapProxy's arithmetic is reproduced exactly, which is
/// everywhere so far; `close` is the tolerance the comparison would fall back to.
struct Check {
    name: String,
    failures: Vec<String>,
    inexact: usize,
}

impl Check {
    fn float(&mut self, what: &str, got: f64, want: f64) {
        if got.to_bits() == want.to_bits() {
            return;
        }
        let scale = got.abs().max(want.abs());
        if (got - want).abs() <= 1e-9 * scale {
            self.inexact += 1;
            return;
        }
        self.failures
            .push(format!("{}: {what}: got {got:?}, want {want:?}", self.name));
    }
    fn bbox(&mut self, what: &str, got: Bbox, want: &Value) {
        let want = bbox(want);
        for k in 0..4 {
            self.float(&format!("{what}[{k}]"), got[k], want[k]);
        }
    }
    fn eq<T: PartialEq + std::fmt::Debug>(&mut self, what: &str, got: T, want: T) {
        if got != want {
            self.failures
                .push(format!("{}: {what}: got {got:?}, want {want:?}", self.name));
        }
    }
}

fn opt_coord(v: &Value) -> Option<TileCoord> {
    if v.is_null() {
        None
    } else {
        Some(coord(v))
    }
}

fn compare(grid: &TileGrid, case: &Value, check: &mut Check) {
    check.eq("srs", grid.srs(), epsg(&case["srs"]));
    check.eq(
        "origin",
        grid.origin().as_str(),
        case["origin"].as_str().expect("origin"),
    );
    check.bbox("bbox", grid.bbox(), &case["bbox"]);
    let ts = &case["tile_size"];
    check.eq(
        "tile_size",
        grid.tile_size(),
        (i(&ts[0]) as u32, i(&ts[1]) as u32),
    );
    let want_res = floats(&case["resolutions"]);
    check.eq("levels", grid.levels(), want_res.len());
    for (l, (g, w)) in grid.resolutions().iter().zip(&want_res).enumerate() {
        check.float(&format!("resolution {l}"), *g, *w);
    }
    let want_sizes: Vec<(i64, i64)> = case["grid_sizes"]
        .as_array()
        .expect("grid_sizes")
        .iter()
        .map(|s| (i(&s[0]), i(&s[1])))
        .collect();
    check.eq("grid_sizes", grid.grid_sizes().to_vec(), want_sizes);
    let want_thresholds = case["threshold_res"]
        .as_array()
        .map(|_| floats(&case["threshold_res"]));
    check.eq(
        "threshold_res",
        grid.threshold_res().map(|t| t.to_vec()),
        want_thresholds,
    );
    check.float(
        "stretch_factor",
        grid.stretch_factor(),
        f(&case["stretch_factor"]),
    );
    check.float(
        "max_shrink_factor",
        grid.max_shrink_factor(),
        f(&case["max_shrink_factor"]),
    );
    check.eq(
        "supports ll",
        grid.supports_access_with_origin(Origin::LowerLeft),
        case["supports_ll"].as_bool().expect("bool"),
    );
    check.eq(
        "supports ul",
        grid.supports_access_with_origin(Origin::UpperLeft),
        case["supports_ul"].as_bool().expect("bool"),
    );

    for t in case["tile_bboxes"].as_array().expect("tile_bboxes") {
        let c = coord(&t["coord"]);
        let limit = t["limit"].as_bool().expect("limit");
        match grid.tile_bbox(c, limit) {
            Ok(b) => check.bbox(&format!("tile_bbox {c:?} limit={limit}"), b, &t["bbox"]),
            Err(e) => check
                .failures
                .push(format!("{}: tile_bbox {c:?}: {e}", check.name)),
        }
    }
    for p in case["points"].as_array().expect("points") {
        let pt = floats(&p["point"]);
        let level = i(&p["level"]) as usize;
        let got = grid.tile_coord_for_point(pt[0], pt[1], level);
        check.eq(
            &format!("tile for {pt:?} level {level}"),
            got,
            Ok(coord(&p["tile"])),
        );
    }
    for t in case["limit_tile"].as_array().expect("limit_tile") {
        let c = coord(&t["coord"]);
        check.eq(
            &format!("limit_tile {c:?}"),
            grid.limit_tile(c),
            opt_coord(&t["result"]),
        );
    }
    for t in case["flip"].as_array().expect("flip") {
        let c = coord(&t["coord"]);
        check.eq(
            &format!("flip {c:?}"),
            grid.flip_tile_coord(c),
            Ok(coord(&t["result"])),
        );
    }
    for t in case["closest_level"].as_array().expect("closest_level") {
        let res = f(&t["res"]);
        check.eq(
            &format!("closest_level {res:?}"),
            grid.closest_level(res),
            i(&t["level"]) as usize,
        );
    }
    for t in case["affected_level_tiles"].as_array().expect("affected") {
        let b = bbox(&t["bbox"]);
        let level = i(&t["level"]) as usize;
        let what = format!("affected {b:?} level {level}");
        match (grid.get_affected_level_tiles(b, level), t.get("error")) {
            (Err(GridError::InvalidBbox), Some(e)) => {
                check.eq(&what, e.as_str(), Some("GridError"))
            }
            (Ok(a), None) => {
                check.bbox(&format!("{what} bbox"), a.bbox, &t["tiles_bbox"]);
                let gs = &t["grid_size"];
                check.eq(&format!("{what} size"), a.grid_size, (i(&gs[0]), i(&gs[1])));
                if let Some(tiles) = t.get("tiles") {
                    let want: Vec<Option<TileCoord>> = tiles
                        .as_array()
                        .expect("tiles")
                        .iter()
                        .map(opt_coord)
                        .collect();
                    check.eq(&format!("{what} tiles"), a.tiles.collect::<Vec<_>>(), want);
                } else {
                    let (cols, rows) = a.grid_size;
                    check.eq(
                        &format!("{what} count"),
                        a.tiles.count() as i64,
                        cols * rows,
                    );
                }
            }
            (got, want) => check.failures.push(format!(
                "{}: {what}: got {got:?}, want {want:?}",
                check.name
            )),
        }
    }
    for t in case["affected_bbox_and_level"]
        .as_array()
        .expect("requests")
    {
        let b = bbox(&t["bbox"]);
        let s = &t["size"];
        let size = (i(&s[0]) as u32, i(&s[1]) as u32);
        let got = grid.get_affected_bbox_and_level(b, size).map(|(_, l)| l);
        let want = match t.get("error") {
            Some(_) => Err(GridError::NoTiles),
            None => Ok(i(&t["level"]) as usize),
        };
        check.eq(&format!("request {b:?} {size:?}"), got, want);
    }
}

#[test]
fn grids_match_mapproxy() {
    let cases = cases();
    assert_eq!(cases["mapproxy_version"], "7.0.0");
    let mut set = GridSet::new(GridGlobals::default());
    for (name, c) in cases["confs"].as_object().expect("confs") {
        set.insert(name, conf(c));
    }
    let order = cases["build_order"].as_array().expect("build_order");
    let grids = cases["grids"].as_array().expect("grids");
    assert_eq!(order.len(), grids.len());
    let mut failures = Vec::new();
    let mut inexact = 0;
    for (name, case) in order.iter().zip(grids) {
        let name = name.as_str().expect("name");
        let grid = set
            .tile_grid(name)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(grid.name(), case["name"].as_str());
        let mut check = Check {
            name: name.to_string(),
            failures: Vec::new(),
            inexact: 0,
        };
        compare(&grid, case, &mut check);
        failures.extend(check.failures);
        inexact += check.inexact;
    }
    for f in failures.iter().take(40) {
        eprintln!("{f}");
    }
    assert!(failures.is_empty(), "{} mismatches", failures.len());
    // every float is the same f64 MapProxy computed, not merely within 1e-9
    assert_eq!(inexact, 0, "floats within 1e-9 but not bit-identical");
}

#[test]
fn builtins_match_the_cases() {
    let cases = cases();
    let grids = cases["grids"].as_array().expect("grids");
    for (grid, case) in [global_geodetic(), global_mercator(), global_webmercator()]
        .iter()
        .zip(grids)
    {
        let mut check = Check {
            name: grid.name().unwrap_or_default().to_string(),
            failures: Vec::new(),
            inexact: 0,
        };
        compare(grid, case, &mut check);
        assert!(check.failures.is_empty(), "{:?}", check.failures);
        assert_eq!(check.inexact, 0);
    }
}
