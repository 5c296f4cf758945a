//! `mapproxy-serve seed` through the binary, against a loopback WMS upstream that counts (and
//! can hold) its requests: the tiles of a GeoJSON coverage over several levels, counted against
//! the grid's arithmetic; cleanups by level, coverage and `remove_before`; `--nodes 3`;
//! `--continue` after a kill; `--dry-run` and `--summary`.
//!
//! The grid: EPSG:3857, bbox 0,0 1024000,1024000, origin ll, 64 px tiles (small: the debug
//! build encodes PNGs slowly), resolutions 4000, 2000, 1000, 500 → 4, 8, 16, 32 tiles across; the cache: 2×2 meta tiles with a 10 px buffer,
//! `directory_layout: tms` (`z/x/y.png`, y from the bottom as the grid counts).

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use mapproxy_serve_mapproxy::image::{encode, ImageFormat, ImageOpts, RgbaImage};

/// One upstream request: BBOX, WIDTH, HEIGHT.
type Request = ([f64; 4], u32, u32);

/// The loopback WMS: answers a PNG of the asked size; records each request's BBOX, WIDTH and
/// HEIGHT; with `hold_after = Some(n)`, requests after the n-th get no answer (ever).
struct Upstream {
    port: u16,
    log: Arc<Mutex<Vec<Request>>>,
    hold_after: Arc<Mutex<Option<usize>>>,
}

impl Upstream {
    fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let log = Arc::new(Mutex::new(Vec::new()));
        let hold_after = Arc::new(Mutex::new(None));
        let (l, h) = (log.clone(), hold_after.clone());
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                let (l, h) = (l.clone(), h.clone());
                std::thread::spawn(move || serve(conn, &l, &h));
            }
        });
        Upstream {
            port,
            log,
            hold_after,
        }
    }

    fn take(&self) -> Vec<Request> {
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

fn serve(conn: TcpStream, log: &Mutex<Vec<Request>>, hold_after: &Mutex<Option<usize>>) {
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut conn = conn;
    loop {
        let mut first = String::new();
        if reader.read_line(&mut first).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut l = String::new();
            if reader.read_line(&mut l).unwrap_or(0) == 0 {
                return;
            }
            if l == "\r\n" {
                break;
            }
        }
        let target = first.split(' ').nth(1).unwrap_or("").to_string();
        let query = target.split_once('?').map_or("", |(_, q)| q);
        let (mut bbox, mut w, mut h) = ([0.0; 4], 0u32, 0u32);
        for kv in query.split('&') {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            let v = v.replace("%2C", ",");
            match k.to_ascii_uppercase().as_str() {
                "BBOX" => {
                    let p: Vec<f64> = v.split(',').map(|x| x.parse().unwrap()).collect();
                    bbox = [p[0], p[1], p[2], p[3]];
                }
                "WIDTH" => w = v.parse().unwrap(),
                "HEIGHT" => h = v.parse().unwrap(),
                _ => {}
            }
        }
        let n = {
            let mut l = log.lock().unwrap();
            l.push((bbox, w, h));
            l.len()
        };
        if hold_after.lock().unwrap().is_some_and(|max| n > max) {
            // never answer: the client waits until it is killed
            let mut sink = [0u8; 1];
            let _ = reader.read(&mut sink);
            std::thread::sleep(Duration::from_secs(3600));
            return;
        }
        let (w, h) = (w.max(1), h.max(1));
        let px = [10u8, 200, 30, 255].repeat((w * h) as usize);
        let img = RgbaImage::from_raw(w, h, px).unwrap();
        let mut opts = ImageOpts::new(ImageFormat::png());
        opts.paletted = false;
        let png = encode(&img, &opts).unwrap();
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            png.len()
        );
        if conn.write_all(head.as_bytes()).is_err() || conn.write_all(&png).is_err() {
            return;
        }
    }
}

const TILE_M: [f64; 4] = [256_000.0, 128_000.0, 64_000.0, 32_000.0];

/// Two rectangles (an L), in metres; no edge on a tile edge of any level (multiples of
/// 32000), so touching never decides.
const RECTS: [[f64; 4]; 2] = [
    [101_000.0, 150_500.0, 333_000.0, 290_700.0],
    [101_000.0, 290_700.0, 170_300.0, 610_900.0],
];

fn geojson() -> String {
    let [a, b] = RECTS;
    // the outline of the L, counter-clockwise
    let ring = [
        (a[0], a[1]),
        (a[2], a[1]),
        (a[2], a[3]),
        (b[2], b[1]),
        (b[2], b[3]),
        (b[0], b[3]),
        (a[0], a[1]),
    ];
    let coords: Vec<String> = ring.iter().map(|(x, y)| format!("[{x},{y}]")).collect();
    format!(
        r#"{{"type":"FeatureCollection","features":[{{"type":"Feature","properties":{{}},"geometry":{{"type":"Polygon","coordinates":[[{}]]}}}}]}}"#,
        coords.join(",")
    )
}

/// Tiles `(x, y, z)` of level `z` overlapping a rectangle.
fn tiles_in(r: [f64; 4], z: usize) -> BTreeSet<(i64, i64, usize)> {
    let t = TILE_M[z];
    let mut out = BTreeSet::new();
    let (x0, x1) = ((r[0] / t).floor() as i64, (r[2] / t).floor() as i64);
    let (y0, y1) = ((r[1] / t).floor() as i64, (r[3] / t).floor() as i64);
    for x in x0..=x1 {
        for y in y0..=y1 {
            out.insert((x, y, z));
        }
    }
    out
}

/// The meta tiles (2×2, by their lower-left tile) holding a tile of the coverage.
fn meta_tiles(z: usize) -> BTreeSet<(i64, i64, usize)> {
    RECTS
        .iter()
        .flat_map(|r| tiles_in(*r, z))
        .map(|(x, y, z)| (x / 2 * 2, y / 2 * 2, z))
        .collect()
}

/// All tiles of those meta tiles (what seeding stores).
fn seeded_tiles(levels: &[usize]) -> BTreeSet<(i64, i64, usize)> {
    let mut out = BTreeSet::new();
    for &z in levels {
        for (x, y, z) in meta_tiles(z) {
            for dx in 0..2 {
                for dy in 0..2 {
                    out.insert((x + dx, y + dy, z));
                }
            }
        }
    }
    out
}

/// The meta tile a request was for: its bbox without the 10 px buffer, as the lower-left tile.
fn request_meta(bbox: [f64; 4], z: usize) -> (i64, i64, usize) {
    let buf = 10.0 * TILE_M[z] / 64.0;
    let x = ((bbox[0] + buf) / TILE_M[z]).round() as i64;
    let y = ((bbox[1] + buf) / TILE_M[z]).round() as i64;
    // at the grid's edge the buffer is cut off
    let x = if bbox[0] <= 0.0 { 0 } else { x };
    let y = if bbox[1] <= 0.0 { 0 } else { y };
    (x, y, z)
}

/// The level of a request from its size and bbox (pixels of 2×2 tiles + buffer).
fn request_level(bbox: [f64; 4], w: u32) -> usize {
    let res = (bbox[2] - bbox[0]) / f64::from(w);
    [4000.0, 2000.0, 1000.0, 500.0]
        .iter()
        .position(|r| (r - res).abs() < 1e-6)
        .unwrap_or_else(|| panic!("no level for {bbox:?} at {w} px"))
}

fn stored(cache: &Path) -> BTreeSet<(i64, i64, usize)> {
    let mut out = BTreeSet::new();
    let Ok(levels) = std::fs::read_dir(cache) else {
        return out;
    };
    for z in levels.flatten() {
        let Ok(zn) = z.file_name().to_string_lossy().parse::<usize>() else {
            continue;
        };
        for x in std::fs::read_dir(z.path()).unwrap().flatten() {
            let xn: i64 = x.file_name().to_string_lossy().parse().unwrap();
            for y in std::fs::read_dir(x.path()).unwrap().flatten() {
                let name = y.file_name().to_string_lossy().into_owned();
                let yn: i64 = name.trim_end_matches(".png").parse().unwrap();
                out.insert((xn, yn, zn));
            }
        }
    }
    out
}

struct Setup {
    dir: tempfile::TempDir,
    up: Upstream,
}

impl Setup {
    fn new(seed_yaml: &str) -> Setup {
        Setup::with_cache(
            seed_yaml,
            "type: file\n      directory_layout: tms\n      directory: tiles",
        )
    }

    /// `cache` is the cache's `cache:` mapping, indented for its place.
    fn with_cache(seed_yaml: &str, cache: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let up = Upstream::start();
        let yaml = format!(
            "services:\n  tms:\nsources:\n  wms:\n    type: wms\n    req:\n      url: http://127.0.0.1:{}/service\n      layers: base\n\
             grids:\n  g:\n    srs: 'EPSG:3857'\n    bbox: [0, 0, 1024000, 1024000]\n    origin: ll\n    res: [4000, 2000, 1000, 500]\n    tile_size: [64, 64]\n\
             caches:\n  c:\n    grids: [g]\n    sources: [wms]\n    meta_size: [2, 2]\n    meta_buffer: 10\n    cache:\n      {cache}\n\
             layers:\n  - name: c\n    title: c\n    sources: [c]\n\
             globals:\n  image:\n    paletted: false\n",
            up.port,
        );
        std::fs::write(dir.path().join("mapproxy.yaml"), yaml).unwrap();
        std::fs::write(dir.path().join("area.geojson"), geojson()).unwrap();
        std::fs::write(dir.path().join("seed.yaml"), seed_yaml).unwrap();
        Setup { dir, up }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn seed(&self, extra: &[&str]) -> support::Exited {
        let m = self.path("mapproxy.yaml");
        let s = self.path("seed.yaml");
        let mut args = vec!["seed", "-f", m.to_str().unwrap(), "-s", s.to_str().unwrap()];
        args.extend_from_slice(extra);
        support::run(&args, Some(self.dir.path()))
    }

    fn cache(&self) -> BTreeSet<(i64, i64, usize)> {
        stored(&self.path("tiles"))
    }
}

const SEED_YAML: &str = "coverages:\n  area:\n    datasource: area.geojson\n    srs: 'EPSG:3857'\n\
seeds:\n  area:\n    caches: [c]\n    levels: {from: 1, to: 3}\n    coverages: [area]\n";

#[test]
fn seeds_exactly_the_meta_tiles_of_a_geojson_coverage() {
    let s = Setup::new(SEED_YAML);
    let levels = [1, 2, 3];
    let expected_meta: BTreeSet<_> = levels.iter().flat_map(|&z| meta_tiles(z)).collect();

    // --dry-run: counts, no request
    let dry = s.seed(&["--dry-run"]);
    assert_eq!(dry.code(), Some(0), "{dry:?}");
    for &z in &levels {
        let line = format!(
            "level {z}: {} meta tiles, {} tiles",
            meta_tiles(z).len(),
            meta_tiles(z).len() * 4
        );
        assert!(dry.stdout.contains(&line), "{line}\n{}", dry.stdout);
    }
    assert!(s.up.take().is_empty());
    assert!(s.cache().is_empty());

    // --summary: MapProxy's task description
    let sum = s.seed(&["--summary"]);
    assert_eq!(sum.code(), Some(0), "{sum:?}");
    assert!(
        sum.stdout
            .contains("Seeding cache 'c' with grid 'g' in EPSG:3857"),
        "{}",
        sum.stdout
    );
    assert!(sum.stdout.contains("Levels: [1, 2, 3]"), "{}", sum.stdout);

    let out = s.seed(&["-c", "4", "--progress-lines", "5"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let reqs = s.up.take();
    let got: Vec<_> = reqs
        .iter()
        .map(|(b, w, _)| request_meta(*b, request_level(*b, *w)))
        .collect();
    let got_set: BTreeSet<_> = got.iter().copied().collect();
    assert_eq!(got.len(), got_set.len(), "a meta tile was requested twice");
    assert_eq!(got_set, expected_meta);
    // meta tiles: 2×2 tiles plus the buffer (cut at the grid's edges)
    assert!(reqs
        .iter()
        .all(|(_, w, h)| *w >= 128 && *h >= 128 && *w <= 148));
    assert_eq!(s.cache(), seeded_tiles(&levels));
    // plain progress lines (stdout is a pipe here)
    assert!(out.stdout.contains("meta tiles/s, ETA"), "{}", out.stdout);

    // again: everything is cached, nothing is requested
    let again = s.seed(&[]);
    assert_eq!(again.code(), Some(0), "{again:?}");
    assert!(s.up.take().is_empty());
}

#[test]
fn cleanup_removes_by_level_coverage_and_age() {
    let seed_yaml = format!("{SEED_YAML}  all:\n    caches: [c]\n    levels: [1, 2]\n");
    let cleanup = concat!(
        "cleanups:\n",
        "  part:\n    caches: [c]\n    levels: [3]\n    coverages: [box]\n    remove_all: true\n",
        "  old:\n    caches: [c]\n    levels: [1]\n    remove_before:\n      mtime: stamp\n",
        "  none:\n    caches: [c]\n    levels: [2]\n    remove_before:\n      mtime: oldstamp\n",
    );
    let seed_yaml = seed_yaml.replace(
        "coverages:\n  area:",
        "coverages:\n  box:\n    bbox: [200000, 200000, 300000, 260000]\n    srs: 'EPSG:3857'\n  area:",
    ) + cleanup;
    let s = Setup::new(&seed_yaml);
    // the files remove_before names (their times are set after seeding)
    std::fs::write(s.path("stamp"), "").unwrap();
    std::fs::write(s.path("oldstamp"), "").unwrap();
    let out = s.seed(&["--seed", "ALL"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(!s.up.take().is_empty());
    let before = s.cache();
    // level 1 and 2 complete (8×8 + 16×16), level 3 the coverage's meta tiles
    assert_eq!(before.iter().filter(|t| t.2 == 1).count(), 64);
    assert_eq!(before.iter().filter(|t| t.2 == 2).count(), 256);
    let l3: BTreeSet<_> = seeded_tiles(&[3]);
    assert_eq!(
        before
            .iter()
            .filter(|t| t.2 == 3)
            .copied()
            .collect::<BTreeSet<_>>(),
        l3
    );

    // stamp: newer than every tile; oldstamp: older
    let f = std::fs::File::options()
        .write(true)
        .open(s.path("stamp"))
        .unwrap();
    f.set_modified(SystemTime::now() + Duration::from_secs(60))
        .unwrap();
    let f = std::fs::File::options()
        .write(true)
        .open(s.path("oldstamp"))
        .unwrap();
    f.set_modified(SystemTime::now() - Duration::from_secs(3600))
        .unwrap();

    let out = s.seed(&["--cleanup", "part,old,none"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(s.up.take().is_empty(), "a cleanup requests nothing");
    let after = s.cache();
    // part: all tiles of the level-3 meta tiles (2×2) that the box touches
    let mut removed = BTreeSet::new();
    for (x, y, z) in tiles_in([200000.0, 200000.0, 300000.0, 260000.0], 3) {
        let (mx, my) = (x / 2 * 2, y / 2 * 2);
        for d in [(0, 0), (0, 1), (1, 0), (1, 1)] {
            removed.insert((mx + d.0, my + d.1, z));
        }
    }
    let want_l3: BTreeSet<_> = l3.difference(&removed).copied().collect();
    assert!(!removed.is_empty() && want_l3.len() < l3.len());
    assert_eq!(
        after
            .iter()
            .filter(|t| t.2 == 3)
            .copied()
            .collect::<BTreeSet<_>>(),
        want_l3
    );
    // old: level 1 older than the stamp: all gone; none: level 2 untouched
    assert_eq!(after.iter().filter(|t| t.2 == 1).count(), 0);
    assert_eq!(after.iter().filter(|t| t.2 == 2).count(), 256);
}

#[test]
fn three_nodes_split_without_overlap_or_gap() {
    let s = Setup::new(SEED_YAML);
    let expected: BTreeSet<_> = [1, 2, 3].iter().flat_map(|&z| meta_tiles(z)).collect();
    let mut seen = BTreeSet::new();
    let mut total = 0;
    for node in ["0", "1", "2"] {
        let out = s.seed(&["--nodes", "3", "--node", node, "-c", "3"]);
        assert_eq!(out.code(), Some(0), "{out:?}");
        let reqs = s.up.take();
        assert!(!reqs.is_empty(), "node {node} did nothing");
        for (b, w, _) in reqs {
            let m = request_meta(b, request_level(b, w));
            assert!(seen.insert(m), "meta tile {m:?} requested by two nodes");
            total += 1;
        }
    }
    assert_eq!(total, expected.len());
    assert_eq!(seen, expected);
    assert_eq!(s.cache(), seeded_tiles(&[1, 2, 3]));
    let bad = s.seed(&["--nodes", "3", "--node", "3"]);
    assert_eq!(bad.code(), Some(2), "{bad:?}");
}

#[test]
fn continue_resumes_after_a_kill() {
    // refresh_before now: a second run without --continue would make everything again
    let yaml = SEED_YAML.to_string() + "    refresh_before:\n      seconds: 0\n";
    let s = Setup::new(&yaml);
    let total: usize = [1, 2, 3].iter().map(|&z| meta_tiles(z).len()).sum();
    let done = 7;
    *s.up.hold_after.lock().unwrap() = Some(done);
    let progress = s.path("progress");
    let m = s.path("mapproxy.yaml");
    let sy = s.path("seed.yaml");
    let mut child = std::process::Command::new(support::bin())
        .args([
            "seed",
            "-f",
            m.to_str().unwrap(),
            "-s",
            sy.to_str().unwrap(),
            "-c",
            "1",
            "--progress-file",
            progress.to_str().unwrap(),
        ])
        .current_dir(s.dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // the first `done` meta tiles are answered, the next one never: wait until the progress
    // file says so, then kill -9
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(&progress).unwrap_or_default();
        if text.contains(&format!("\t{done}\n")) {
            break;
        }
        assert!(Instant::now() < deadline, "progress file: {text:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let first: BTreeSet<_> =
        s.up.take()
            .iter()
            .map(|(b, w, _)| request_meta(*b, request_level(*b, *w)))
            .collect();
    assert_eq!(first.len(), done + 1);
    *s.up.hold_after.lock().unwrap() = None;

    let p = progress.to_str().unwrap();
    let out = s.seed(&["--continue", "--progress-file", p, "-c", "2"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    assert!(
        out.stdout.contains(&format!(
            "continuing: {done} meta tiles done before are skipped"
        )),
        "{}",
        out.stdout
    );
    let second: Vec<_> =
        s.up.take()
            .iter()
            .map(|(b, w, _)| request_meta(*b, request_level(*b, *w)))
            .collect();
    // the done ones are not asked again; the one in flight at the kill is
    assert_eq!(second.len(), total - done);
    let all: BTreeSet<_> = first.iter().chain(&second).copied().collect();
    assert_eq!(all.len(), total);
    assert_eq!(s.cache(), seeded_tiles(&[1, 2, 3]));
    assert!(
        !progress.exists(),
        "the progress file is removed when all is done"
    );
}

#[test]
fn config_errors_name_file_line_and_path() {
    let s = Setup::new(
        "seeds:\n  a:\n    caches: [nope]\n  b:\n    caches: [c]\n    levels: {from: one}\n",
    );
    let out = s.seed(&[]);
    assert_eq!(out.code(), Some(2), "{out:?}");
    assert!(
        out.stderr
            .contains("seed.yaml:6: seeds.b.levels.from: expected an integer"),
        "{}",
        out.stderr
    );
    std::fs::write(s.path("seed.yaml"), SEED_YAML).unwrap();
    let out = s.seed(&["--seed", "zzz"]);
    assert_eq!(out.code(), Some(2));
    assert!(
        out.stderr.contains("unknown seed tasks: zzz"),
        "{}",
        out.stderr
    );
}

#[test]
fn duration_stops_and_keeps_progress_and_rate_limit_paces_requests() {
    let s = Setup::new(SEED_YAML);
    // --rate-limit 20: requests start at least 50 ms apart
    let started = Instant::now();
    let out = s.seed(&["--seed", "area", "-c", "4", "--rate-limit", "20"]);
    assert_eq!(out.code(), Some(0), "{out:?}");
    let n = s.up.take().len();
    let total: usize = [1, 2, 3].iter().map(|&z| meta_tiles(z).len()).sum();
    assert_eq!(n, total);
    let min = Duration::from_millis(50 * (n as u64 - 1));
    assert!(
        started.elapsed() >= min,
        "{:?} < {min:?}",
        started.elapsed()
    );

    // --duration with an upstream that stops answering: stops, exit 3, progress kept
    let s = Setup::new(SEED_YAML);
    *s.up.hold_after.lock().unwrap() = Some(3);
    let p = s.path("progress");
    let out = s.seed(&[
        "-c",
        "1",
        "--duration",
        "1s",
        "--progress-file",
        p.to_str().unwrap(),
    ]);
    assert_eq!(out.code(), Some(3), "{out:?}");
    let text = std::fs::read_to_string(&p).unwrap();
    assert!(
        text.contains("seed area c g [1, 2, 3] node 0/1\t3\n"),
        "{text}"
    );
}

#[test]
fn seeds_and_cleans_sqlite_caches() {
    let cleanup = "cleanups:\n  l3:\n    caches: [c]\n    levels: [3]\n    remove_all: true\n";
    for cache in [
        "type: mbtiles\n      filename: c.mbtiles",
        "type: sqlite\n      directory: sq",
        "type: geopackage\n      filename: c.gpkg",
    ] {
        let s = Setup::with_cache(&format!("{SEED_YAML}{cleanup}"), cache);
        let total: usize = [1, 2, 3].iter().map(|&z| meta_tiles(z).len()).sum();
        let out = s.seed(&["--seed", "area", "-c", "3"]);
        assert_eq!(out.code(), Some(0), "{cache}: {out:?}");
        assert_eq!(s.up.take().len(), total, "{cache}");
        // all stored: nothing requested again
        let out = s.seed(&["--seed", "area"]);
        assert_eq!(out.code(), Some(0), "{cache}: {out:?}");
        assert!(s.up.take().is_empty(), "{cache}");
        // level 3 removed: only its meta tiles are made again
        let out = s.seed(&["--cleanup", "l3"]);
        assert_eq!(out.code(), Some(0), "{cache}: {out:?}");
        let out = s.seed(&["--seed", "area"]);
        assert_eq!(out.code(), Some(0), "{cache}: {out:?}");
        let again: BTreeSet<_> =
            s.up.take()
                .iter()
                .map(|(b, w, _)| request_meta(*b, request_level(*b, *w)))
                .collect();
        assert_eq!(again, meta_tiles(3), "{cache}");
    }
}
