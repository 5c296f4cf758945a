//! The meta tiles of `meta_cases.json` (printed by MapProxy 7.0.0's MetaGrid through
//! `gen_meta_cases.py`), computed here and compared.

use mapproxy_serve_mapproxy::grid::{Origin, TileCoord, TileGrid, TileGridParts};
use mapproxy_serve_mapproxy::meta::{MetaGrid, MetaTile};
use serde_json::Value;

fn cases() -> Value {
    serde_json::from_str(include_str!("meta_cases.json")).expect("meta_cases.json is JSON")
}

fn f(v: &Value) -> f64 {
    v.as_f64().expect("a number")
}

fn i(v: &Value) -> i64 {
    v.as_i64().expect("an integer")
}

fn arr(v: &Value) -> &Vec<Value> {
    v.as_array().expect("an array")
}

fn coord(v: &Value) -> TileCoord {
    let a = arr(v);
    (i(&a[0]), i(&a[1]), i(&a[2]) as usize)
}

fn grid(v: &Value) -> TileGrid {
    let bbox: Vec<f64> = arr(&v["bbox"]).iter().map(f).collect();
    let ts = arr(&v["tile_size"]);
    let srs = v["srs"].as_str().expect("srs");
    TileGrid::new(TileGridParts {
        name: None,
        srs: srs.trim_start_matches("EPSG:").parse().expect("EPSG code"),
        bbox: [bbox[0], bbox[1], bbox[2], bbox[3]],
        origin: Origin::parse(v["origin"].as_str().expect("origin")).expect("origin"),
        tile_size: (i(&ts[0]) as u32, i(&ts[1]) as u32),
        resolutions: arr(&v["resolutions"])
            .iter()
            .map(|r| mapproxy_serve_mapproxy::grid::Num::Float(f(r)))
            .collect(),
        threshold_res: None,
        stretch_factor: 1.15,
        max_shrink_factor: 4.0,
    })
    .expect("grid")
}

fn check(what: &str, got: &MetaTile, case: &Value, bad: &mut Vec<String>) {
    let want_bbox: Vec<f64> = arr(&case["bbox"]).iter().map(f).collect();
    if got.bbox.to_vec() != want_bbox {
        bad.push(format!("{what}: bbox {:?} != {want_bbox:?}", got.bbox));
    }
    let size = arr(&case["size"]);
    if got.size != (i(&size[0]) as u32, i(&size[1]) as u32) {
        bad.push(format!("{what}: size {:?} != {size:?}", got.size));
    }
    let gs = arr(&case["grid_size"]);
    if got.grid_size != (i(&gs[0]) as u32, i(&gs[1]) as u32) {
        bad.push(format!("{what}: grid_size {:?} != {gs:?}", got.grid_size));
    }
    let want: Vec<(Option<TileCoord>, (i64, i64))> = arr(&case["tiles"])
        .iter()
        .map(|t| {
            let t = arr(t);
            let c = if t[0].is_null() {
                None
            } else {
                Some(coord(&t[0]))
            };
            let o = arr(&t[1]);
            (c, (i(&o[0]), i(&o[1])))
        })
        .collect();
    if got.tiles != want {
        bad.push(format!("{what}: tiles {:?} != {want:?}", got.tiles));
    }
}

#[test]
fn meta_tiles_match_mapproxy() {
    let cases = cases();
    assert_eq!(cases["mapproxy_version"], "7.0.0");
    let mut bad = Vec::new();
    let mut n = 0;
    for case in arr(&cases["cases"]) {
        let g = grid(&cases["grids"][case["grid"].as_str().expect("grid name")]);
        let ms = arr(&case["meta_size"]);
        let mg = MetaGrid::new(
            g,
            (i(&ms[0]) as u32, i(&ms[1]) as u32),
            i(&case["meta_buffer"]) as u32,
        );
        let what = format!(
            "{} {:?} buffer {} {} {}",
            case["grid"],
            ms,
            case["meta_buffer"],
            case["kind"],
            if case["kind"] == "meta_tile" {
                &case["tile"]
            } else {
                &case["input"]
            }
        );
        if case["kind"] == "meta_tile" {
            let c = coord(&case["tile"]);
            assert_eq!(
                mg.main_tile(c).expect("main tile"),
                coord(&case["main_tile"]),
                "{what}"
            );
            check(&what, &mg.meta_tile(c).expect("meta tile"), case, &mut bad);
        } else {
            let input: Vec<TileCoord> = arr(&case["input"]).iter().map(coord).collect();
            let mt = mg
                .minimal_meta_tile(&input)
                .expect("meta tile")
                .expect("not empty");
            check(&what, &mt, case, &mut bad);
        }
        n += 1;
    }
    assert!(n > 250, "only {n} cases");
    assert!(
        bad.is_empty(),
        "{} of {n} differ:\n{}",
        bad.len(),
        bad.join("\n")
    );
}

#[test]
fn geodetic_level_1_is_one_512x256_request() {
    let mg = MetaGrid::new(mapproxy_serve_mapproxy::grid::global_geodetic(), (4, 4), 80);
    let mt = mg.meta_tile((1, 0, 1)).expect("meta tile");
    assert_eq!(mt.bbox, [-180.0, -90.0, 180.0, 90.0]);
    assert_eq!(mt.size, (512, 256));
    assert_eq!(mt.coords().collect::<Vec<_>>(), vec![(0, 0, 1), (1, 0, 1)]);
    assert!(mg.meta_tile((0, 0, 20)).is_err(), "no level 20");
    assert!(mg.minimal_meta_tile(&[]).expect("empty").is_none());
}
