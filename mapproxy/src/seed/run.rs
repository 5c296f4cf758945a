//! Running seed and cleanup tasks (MapProxy's `seed/script.py`, `seeder.py`, `cleanup.py`).

use std::collections::{BTreeSet, HashMap};
use std::io::{IsTerminal, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use indexmap::IndexMap;
use mapproxy_serve_core::error::{ConfigError, ConfigErrors};

use super::config::{SeedConf, TaskConf};
use super::coverage::Coverage;
use super::walk::{node_of, walk_level, Area, Cell};
use crate::tile_manager::TileManager;

/// The command line's choices (MapProxy's `mapproxy-seed` options).
#[derive(Debug, Clone)]
pub struct Options {
    /// `-c`: meta tiles made at once.
    pub concurrency: usize,
    /// `--seed`: the seed tasks to run (`None`: all; empty: none).
    pub seed_names: Option<Vec<String>>,
    /// `--cleanup`: the cleanup tasks to run (`None`: all; empty: none).
    pub cleanup_names: Option<Vec<String>>,
    /// `-n`/`--dry-run`: walk and count, request and remove nothing.
    pub dry_run: bool,
    /// `--summary`: print the tasks and stop.
    pub summary: bool,
    /// `--skip-uncached`: only refresh meta tiles of which a tile is stored.
    pub skip_uncached: bool,
    /// `--nodes N --node I`: this run does the meta tiles of node `I` (0-based) of `N`.
    pub nodes: u32,
    pub node: u32,
    /// `--progress-file`: where the progress of each task is kept (removed when all is done).
    pub progress_file: Option<PathBuf>,
    /// `--continue`: skip what the progress file says is done.
    pub continue_seed: bool,
    /// `--duration`: stop (keeping the progress) after this long.
    pub duration: Option<Duration>,
    /// `--rate-limit`: at most this many requests (meta tiles) per second per source.
    pub rate_limit: Option<f64>,
    /// `--progress-lines N`: when not on a terminal, a progress line every N meta tiles.
    pub progress_lines: u64,
    /// `-q`: 1 no progress lines, 2 only errors.
    pub quiet: u8,
    /// Attempts per meta tile before it counts as failed (with backoff between).
    pub retries: u32,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            concurrency: 2,
            seed_names: None,
            cleanup_names: None,
            dry_run: false,
            summary: false,
            skip_uncached: false,
            nodes: 1,
            node: 0,
            progress_file: None,
            continue_seed: false,
            duration: None,
            rate_limit: None,
            progress_lines: 1000,
            quiet: 0,
            retries: 3,
        }
    }
}

/// Seed or cleanup.
#[derive(Debug, Clone)]
pub enum Kind {
    Seed {
        refresh_before: Option<SystemTime>,
    },
    Cleanup {
        /// Remove tiles older than this (`remove_before`, else the start of the run).
        before: SystemTime,
        remove_all: bool,
    },
}

/// One task for one cache in one grid.
#[derive(Clone)]
pub struct Task {
    pub kind: Kind,
    pub name: String,
    pub cache: String,
    pub grid_name: String,
    pub manager: Arc<TileManager>,
    pub levels: Vec<usize>,
    pub area: Arc<Area>,
    /// The coverage's bbox in EPSG:4326 (for the summary).
    pub llbbox: Option<crate::grid::Bbox>,
}

impl Task {
    /// The key of the task in the progress file: kind, names, levels and the node split.
    fn id(&self, o: &Options) -> String {
        let kind = match self.kind {
            Kind::Seed { .. } => "seed",
            Kind::Cleanup { .. } => "cleanup",
        };
        format!(
            "{kind} {} {} {} {:?} node {}/{}",
            self.name, self.cache, self.grid_name, self.levels, o.node, o.nodes
        )
    }

    /// MapProxy's `format_seed_task` / `format_cleanup_task`.
    pub fn describe(&self) -> String {
        let mut s = format!("  {}:\n", self.name);
        if let Area::Empty = *self.area {
            s.push_str("    Empty coverage given for this task\n    Skipped");
            return s;
        }
        let srs = format!("EPSG:{}", self.manager.grid().srs());
        match self.kind {
            Kind::Seed { .. } => s.push_str(&format!(
                "    Seeding cache '{}' with grid '{}' in {srs}\n",
                self.cache, self.grid_name
            )),
            Kind::Cleanup { .. } => s.push_str(&format!(
                "    Cleaning up cache '{}' with grid '{}' in {srs}\n",
                self.cache, self.grid_name
            )),
        }
        let b = |b: Option<crate::grid::Bbox>| match b {
            Some(b) => format!("{:.5}, {:.5}, {:.5}, {:.5}", b[0], b[1], b[2], b[3]),
            None => "?".into(),
        };
        match *self.area {
            Area::Coverage(_) => s.push_str(&format!(
                "    Limited to coverage in: {} (EPSG:4326)\n",
                b(self.llbbox)
            )),
            _ => s.push_str(&format!(
                "    Complete grid: {} (EPSG:4326)\n",
                b(self.llbbox)
            )),
        }
        s.push_str(&format!("    Levels: {:?}\n", self.levels));
        match &self.kind {
            Kind::Seed { refresh_before } => match refresh_before {
                Some(t) => s.push_str(&format!(
                    "    Overwriting: tiles older than {}",
                    local_time(*t)
                )),
                None => s.push_str("    Overwriting: no tiles"),
            },
            Kind::Cleanup { before, remove_all } => {
                if *remove_all {
                    s.push_str("    Remove: all tiles")
                } else {
                    s.push_str(&format!(
                        "    Remove: tiles older than {}",
                        local_time(*before)
                    ))
                }
            }
        }
        s
    }
}

fn local_time(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Local>::from(t)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

fn now_hms() -> String {
    chrono::Local::now().format("%H:%M:%S").to_string()
}

/// A cache's managers by grid name.
type GridManagers = Vec<(String, Arc<TileManager>)>;
type Managers = IndexMap<String, Result<GridManagers, ConfigError>>;

/// The tasks of seed.yaml's `seeds` (or `cleanups`) named in `names` (`None`: all), as
/// MapProxy's `SeedingConfiguration.seeds()`/`cleanups()` makes them.
pub fn tasks(
    conf: &SeedConf,
    managers: &Managers,
    cleanup: bool,
    names: Option<&[String]>,
) -> Result<Vec<Task>, ConfigErrors> {
    let section = if cleanup { &conf.cleanups } else { &conf.seeds };
    let mut errors = ConfigErrors::new();
    let mut out = Vec::new();
    let start = SystemTime::now();
    let selected: Vec<&TaskConf> = match names {
        None => section.values().collect(),
        Some(names) => names.iter().filter_map(|n| section.get(n)).collect(),
    };
    for t in selected {
        match task_of(conf, managers, t, cleanup, start) {
            Ok(mut ts) => out.append(&mut ts),
            Err(e) => errors.push(e),
        }
    }
    errors.into_result(out)
}

fn task_of(
    conf: &SeedConf,
    managers: &Managers,
    t: &TaskConf,
    cleanup: bool,
    start: SystemTime,
) -> Result<Vec<Task>, ConfigError> {
    // cache name → grid name → manager
    let mut caches: Vec<(&String, GridManagers)> = Vec::new();
    for c in &t.caches {
        match managers.get(c) {
            None => {
                return Err(t.loc.error(format!(
                    "{}.caches: cache {c} not found. available caches: {}",
                    t.path,
                    managers.keys().cloned().collect::<Vec<_>>().join(",")
                )))
            }
            Some(Err(e)) => {
                return Err(t.loc.error(format!("{}.caches: {c}: {e}", t.path)));
            }
            Some(Ok(m)) => caches.push((c, m.clone())),
        }
    }
    let grids: Vec<String> = match &t.grids {
        Some(gs) => {
            for g in gs {
                if !caches.iter().all(|(_, m)| m.iter().any(|(n, _)| n == g)) {
                    return Err(t
                        .loc
                        .error(format!("{}.grids: {g} not defined for caches", t.path)));
                }
            }
            gs.clone()
        }
        None => {
            let mut last: Option<Vec<&String>> = None;
            for (_, m) in &caches {
                let names: Vec<&String> = m.iter().map(|(n, _)| n).collect();
                if let Some(l) = &last {
                    if *l != names {
                        return Err(t.loc.error(format!(
                            "{}: caches in same seed task require identical grids",
                            t.path
                        )));
                    }
                }
                last = Some(names);
            }
            last.unwrap_or_default().into_iter().cloned().collect()
        }
    };
    let coverage: Option<Option<Coverage>> = match &t.coverages {
        None => None,
        Some(names) => {
            let mut all = Vec::new();
            let mut empty = false;
            for n in names {
                match conf.coverages.get(n) {
                    Some((_, Some(c))) => all.push(c.clone()),
                    Some((_, None)) => empty = true,
                    None => {
                        return Err(t
                            .loc
                            .error(format!("{}.coverages: coverage {n} not found", t.path)))
                    }
                }
            }
            // MapProxy: one empty coverage of the list makes the whole task empty
            if empty || all.is_empty() {
                Some(None)
            } else {
                Some(Some(Coverage::union(all)))
            }
        }
    };
    let mut out = Vec::new();
    for g in &grids {
        for (cache, m) in &caches {
            let Some((_, manager)) = m.iter().find(|(n, _)| n == g) else {
                continue;
            };
            let grid = manager.grid();
            let grid_srs = crate::srs::Srs::get(&format!("EPSG:{}", grid.srs()))
                .map_err(|e| t.loc.error(format!("{}: {e}", t.path)))?;
            let (area, llbbox) = match &coverage {
                None => {
                    let ll = crate::srs::Srs::get("EPSG:4326")
                        .ok()
                        .and_then(|ll| grid_srs.transform_bbox_to(&ll, grid.bbox()).ok());
                    (Area::Grid, ll)
                }
                Some(None) => (Area::Empty, None),
                Some(Some(c)) => {
                    let tc = c.transform_to(&grid_srs).map_err(|e| {
                        t.loc
                            .error(format!("{}: coverage transformation error: {e}", t.path))
                    })?;
                    (Area::Coverage(tc), c.llbbox())
                }
            };
            let levels = match &t.levels {
                Some(l) => l.for_grid(grid.levels(), &|r| grid.closest_level(r)),
                None => (0..grid.levels()).collect(),
            };
            let kind = if cleanup {
                Kind::Cleanup {
                    before: t.before.unwrap_or(start),
                    remove_all: t.remove_all,
                }
            } else {
                Kind::Seed {
                    refresh_before: t.before,
                }
            };
            out.push(Task {
                kind,
                name: t.name.clone(),
                cache: (*cache).clone(),
                grid_name: g.clone(),
                manager: manager.clone(),
                levels,
                area: Arc::new(area),
                llbbox,
            });
        }
    }
    Ok(out)
}

/// Per task: how many meta tiles (of this node, in walk order) are done.
pub struct ProgressStore {
    file: Option<PathBuf>,
    done: Mutex<HashMap<String, u64>>,
}

impl ProgressStore {
    /// The store of `file`; with `resume` what it holds is read (a missing file is no
    /// progress; an unreadable one is an error).
    pub fn open(file: Option<PathBuf>, resume: bool) -> Result<ProgressStore, String> {
        let mut done = HashMap::new();
        if let (Some(f), true) = (&file, resume) {
            match std::fs::read_to_string(f) {
                Ok(text) => {
                    for (i, line) in text.lines().enumerate() {
                        if line.is_empty() || line.starts_with('#') {
                            continue;
                        }
                        let parsed = line
                            .rsplit_once('\t')
                            .and_then(|(id, n)| Some((id.to_string(), n.parse::<u64>().ok()?)));
                        match parsed {
                            Some((id, n)) => {
                                done.insert(id, n);
                            }
                            None => {
                                return Err(format!(
                                    "{}:{}: not a progress line (TASK<tab>DONE)",
                                    f.display(),
                                    i + 1
                                ))
                            }
                        }
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(format!("cannot read {}: {e}", f.display())),
            }
        }
        Ok(ProgressStore {
            file,
            done: Mutex::new(done),
        })
    }

    fn get(&self, id: &str) -> u64 {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(id)
            .copied()
            .unwrap_or(0)
    }

    fn set(&self, id: &str, n: u64) {
        self.done
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_string(), n);
    }

    /// Write the file (atomically: a kill leaves the old or the new one).
    fn write(&self) {
        let Some(f) = &self.file else { return };
        let mut text = String::from("# mapproxy-serve seed progress: task<TAB>meta tiles done\n");
        {
            let done = self.done.lock().unwrap_or_else(PoisonError::into_inner);
            let mut lines: Vec<_> = done.iter().collect();
            lines.sort();
            for (id, n) in lines {
                text.push_str(&format!("{id}\t{n}\n"));
            }
        }
        if let Err(e) =
            crate::cache::atomic_write::write_atomic(f, text.as_bytes(), None, || Ok(()))
        {
            eprintln!("unable to write seed progress to {}: {e}", f.display());
        }
    }

    fn remove(&self) {
        if let Some(f) = &self.file {
            let _ = std::fs::remove_file(f);
        }
    }
}

/// What one task did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Outcome {
    /// Meta tiles of this node in the task.
    pub meta_tiles: u64,
    /// Tiles in them.
    pub tiles: u64,
    /// Meta tiles skipped as done before (`--continue`).
    pub skipped: u64,
    /// Meta tiles made (seeding) / tiles removed (cleanup).
    pub changed: u64,
    /// Meta tiles that failed after all retries.
    pub failed: u64,
    /// Stopped early (`--duration`).
    pub stopped: bool,
}

/// Counts what `task` covers for this node, level by level: `(level, meta tiles, tiles)`.
pub fn count(task: &Task, o: &Options) -> Vec<(usize, u64, u64)> {
    let meta = task.manager.meta_grid();
    let mut out = Vec::new();
    for &z in &task.levels {
        let (mut m, mut t) = (0u64, 0u64);
        let _ = walk_level(meta, &task.area, z, &mut |c| {
            if node_of(c.main, o.nodes) == o.node {
                m += 1;
                t += c.tiles;
            }
            ControlFlow::Continue(())
        });
        out.push((z, m, t));
    }
    out
}

struct Tracker {
    pending: BTreeSet<u64>,
    watermark: u64,
}

/// A simple pacing limiter: requests start at least `1/rate` seconds apart.
pub struct RateLimit {
    interval: Duration,
    next: tokio::sync::Mutex<Instant>,
}

impl RateLimit {
    pub fn new(rate: f64) -> RateLimit {
        RateLimit {
            interval: Duration::from_secs_f64(1.0 / rate.clamp(1e-3, 1e6)),
            next: tokio::sync::Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let at = {
            let mut next = self.next.lock().await;
            let now = Instant::now();
            let at = (*next).max(now);
            *next = at + self.interval;
            at
        };
        tokio::time::sleep_until(at.into()).await;
    }
}

/// How long meta tiles in flight may take after a stop.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Run one task: walk, make (or remove), report progress, keep the progress file.
pub async fn run_task(
    task: &Task,
    o: &Options,
    store: &Arc<ProgressStore>,
    limit: Option<Arc<RateLimit>>,
    stop: &Arc<AtomicBool>,
    out: &Arc<Mutex<Box<dyn Write + Send>>>,
) -> Outcome {
    let levels = count(task, o);
    let total_meta: u64 = levels.iter().map(|l| l.1).sum();
    let total_tiles: u64 = levels.iter().map(|l| l.2).sum();
    let id = task.id(o);
    let skip = if o.continue_seed { store.get(&id) } else { 0 };
    let mut outcome = Outcome {
        meta_tiles: total_meta,
        tiles: total_tiles,
        skipped: skip.min(total_meta),
        ..Outcome::default()
    };
    let say = |s: String| {
        let mut w = out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(w, "{s}");
        let _ = w.flush();
    };
    if o.quiet < 2 {
        for (z, m, t) in &levels {
            say(format!("    level {z}: {m} meta tiles, {t} tiles"));
        }
        if o.nodes > 1 {
            say(format!(
                "    node {} of {} (0-based): {total_meta} meta tiles, {total_tiles} tiles",
                o.node, o.nodes
            ));
        }
        if skip > 0 {
            say(format!(
                "    continuing: {} meta tiles done before are skipped",
                outcome.skipped
            ));
        }
    }
    if o.dry_run || matches!(*task.area, Area::Empty) {
        return outcome;
    }

    let (tx, rx) = tokio::sync::mpsc::channel::<(u64, Cell)>(o.concurrency.max(1) * 4);
    let producer = {
        let task = task.clone();
        let (nodes, node) = (o.nodes, o.node);
        let stop = stop.clone();
        tokio::task::spawn_blocking(move || {
            let meta = task.manager.meta_grid();
            let mut index = 0u64;
            for &z in &task.levels {
                let flow = walk_level(meta, &task.area, z, &mut |c| {
                    if node_of(c.main, nodes) != node {
                        return ControlFlow::Continue(());
                    }
                    let i = index;
                    index += 1;
                    if i < skip {
                        return ControlFlow::Continue(());
                    }
                    if stop.load(Ordering::Relaxed) || tx.blocking_send((i, c)).is_err() {
                        return ControlFlow::Break(());
                    }
                    ControlFlow::Continue(())
                });
                if flow.is_break() {
                    break;
                }
            }
        })
    };

    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    let tracker = Arc::new(Mutex::new(Tracker {
        pending: BTreeSet::new(),
        watermark: skip,
    }));
    let done = Arc::new(AtomicU64::new(0));
    let changed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let tty = std::io::stdout().is_terminal();
    let todo = total_meta.saturating_sub(skip);
    let progress_line = {
        let done = done.clone();
        let name = task.name.clone();
        move || {
            let d = done.load(Ordering::Relaxed);
            let secs = started.elapsed().as_secs_f64().max(1e-3);
            let rate = d as f64 / secs;
            let pct = if todo == 0 {
                100.0
            } else {
                d as f64 * 100.0 / todo as f64
            };
            let eta = if rate > 0.0 {
                let s = (todo.saturating_sub(d) as f64 / rate) as u64;
                format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
            } else {
                "?".into()
            };
            format!(
                "[{}] {name}: {d}/{todo} meta tiles ({pct:.1}%), {rate:.1} meta tiles/s, ETA {eta}",
                now_hms()
            )
        }
    };

    let mut workers = Vec::new();
    for _ in 0..o.concurrency.max(1) {
        let rx = rx.clone();
        let task = task.clone();
        let tracker = tracker.clone();
        let (done, changed, failed) = (done.clone(), changed.clone(), failed.clone());
        let limit = limit.clone();
        let o = o.clone();
        let out = out.clone();
        let progress_line = progress_line.clone();
        let stop = stop.clone();
        workers.push(tokio::spawn(async move {
            loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                let next = rx.lock().await.recv().await;
                let Some((i, cell)) = next else { return };
                match work(&task, cell, &o, limit.as_deref()).await {
                    Ok(n) => {
                        changed.fetch_add(n, Ordering::Relaxed);
                    }
                    Err(e) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                        let mut w = out.lock().unwrap_or_else(PoisonError::into_inner);
                        let _ = writeln!(
                            w,
                            "[{}] {}: meta tile {:?} failed: {e}",
                            now_hms(),
                            task.name,
                            cell.main
                        );
                    }
                }
                {
                    let mut t = tracker.lock().unwrap_or_else(PoisonError::into_inner);
                    t.pending.insert(i);
                    loop {
                        let w = t.watermark;
                        if !t.pending.remove(&w) {
                            break;
                        }
                        t.watermark += 1;
                    }
                }
                let d = done.fetch_add(1, Ordering::Relaxed) + 1;
                if !tty && o.quiet == 0 && o.progress_lines > 0 && d % o.progress_lines == 0 {
                    let line = progress_line();
                    let mut w = out.lock().unwrap_or_else(PoisonError::into_inner);
                    let _ = writeln!(w, "{line}");
                    let _ = w.flush();
                }
            }
        }));
    }

    // the progress file and the terminal's progress bar, every 200 ms
    let ticker = {
        let tracker = tracker.clone();
        let store = store.clone();
        let id = id.clone();
        let out = out.clone();
        let quiet = o.quiet;
        let progress_line = progress_line.clone();
        tokio::spawn(async move {
            let mut last = u64::MAX;
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let w = tracker
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .watermark;
                if w != last {
                    store.set(&id, w);
                    store.write();
                    last = w;
                }
                if tty && quiet == 0 {
                    let line = progress_line();
                    let mut o = out.lock().unwrap_or_else(PoisonError::into_inner);
                    let _ = write!(o, "\r{line}\x1b[K");
                    let _ = o.flush();
                }
            }
        })
    };
    let deadline = o.duration.map(|d| {
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::time::sleep(d).await;
            stop.store(true, Ordering::Relaxed);
        })
    });

    // Wait for the workers; once stopped (--duration, Ctrl-C) the meta tiles in flight get
    // STOP_GRACE to finish (MapProxy sends SIGINT, then SIGTERM 10 s later), then are dropped:
    // their lock goes with them, stores are atomic, and the progress file does not count them.
    let mut workers = workers;
    let joined = async {
        for w in &mut workers {
            let _ = w.await;
        }
    };
    let stopped = async {
        while !stop.load(Ordering::Relaxed) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(STOP_GRACE).await;
    };
    tokio::select! {
        _ = joined => {}
        _ = stopped => {}
    }
    for w in &workers {
        w.abort();
    }
    // the receiver goes with the last worker: a producer waiting to send gives up
    drop(rx);
    let _ = producer.await;
    ticker.abort();
    if let Some(d) = deadline {
        d.abort();
    }
    let w = tracker
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .watermark;
    store.set(&id, w);
    store.write();
    if tty && o.quiet == 0 {
        let mut w = out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(w);
    }
    outcome.changed = changed.load(Ordering::Relaxed);
    outcome.failed = failed.load(Ordering::Relaxed);
    outcome.stopped = stop.load(Ordering::Relaxed) && w < total_meta;
    if o.quiet < 2 {
        say(progress_line());
    }
    outcome
}

/// One meta tile: seed it (with retries and backoff) or remove its tiles.
async fn work(
    task: &Task,
    cell: Cell,
    o: &Options,
    limit: Option<&RateLimit>,
) -> Result<u64, String> {
    match &task.kind {
        Kind::Seed { refresh_before } => {
            let mut attempt = 0;
            loop {
                if let Some(l) = limit {
                    l.wait().await;
                }
                match task
                    .manager
                    .seed_meta_tile(cell.main, *refresh_before, o.skip_uncached)
                    .await
                {
                    Ok(made) => return Ok(u64::from(made)),
                    Err(e) => {
                        attempt += 1;
                        if attempt >= o.retries.max(1) {
                            return Err(e.to_string());
                        }
                        // MapProxy's exp_backoff: 2 s, 4 s, 8 s ... (here from 0.5 s)
                        let wait = Duration::from_millis(500 << attempt.min(8));
                        tokio::time::sleep(wait).await;
                    }
                }
            }
        }
        Kind::Cleanup { before, remove_all } => {
            let manager = task.manager.clone();
            let before = if *remove_all { None } else { Some(*before) };
            let meta = manager.meta_grid();
            let (cols, rows) = manager.grid().grid_sizes()[cell.main.2];
            let (mx, my) = meta
                .level_meta_size(cell.main.2)
                .map_err(|e| e.to_string())?;
            tokio::task::spawn_blocking(move || {
                let mut n = 0;
                let (x0, y0, z) = cell.main;
                for y in y0..(y0 + my).min(rows) {
                    for x in x0..(x0 + mx).min(cols) {
                        if manager
                            .remove_tile((x, y, z), before)
                            .map_err(|e| e.to_string())?
                        {
                            n += 1;
                        }
                    }
                }
                Ok(n)
            })
            .await
            .map_err(|e| e.to_string())?
        }
    }
}

/// `mapproxy-serve seed`: returns the exit status (0 done, 1 tiles failed, 2 configuration
/// error, 3 stopped by `--duration`). Output goes to `out`, errors to stderr.
pub fn main(
    mapproxy_yaml: &Path,
    seed_yaml: &Path,
    o: &Options,
    out: Box<dyn Write + Send>,
) -> i32 {
    let out = Arc::new(Mutex::new(out));
    let say = |s: &str| {
        let mut w = out.lock().unwrap_or_else(PoisonError::into_inner);
        let _ = writeln!(w, "{s}");
        let _ = w.flush();
    };
    let print_errors = |e: &ConfigErrors| {
        for err in &e.0 {
            eprintln!("{err}");
        }
    };
    let loaded = match crate::config::load(mapproxy_yaml) {
        Ok(l) => l,
        Err(e) => {
            print_errors(&e);
            return 2;
        }
    };
    let base = mapproxy_yaml
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let seed_conf = match super::config::load(seed_yaml, &base) {
        Ok(c) => c,
        Err(e) => {
            print_errors(&e);
            return 2;
        }
    };
    for w in loaded.warnings.iter().chain(&seed_conf.warnings) {
        eprintln!("warning: {w}");
    }
    // --seed / --cleanup: unknown names are an error listing the known ones
    for (names, section, what) in [
        (&o.seed_names, &seed_conf.seeds, "seed"),
        (&o.cleanup_names, &seed_conf.cleanups, "cleanup"),
    ] {
        if let Some(names) = names {
            let missing: Vec<&String> =
                names.iter().filter(|n| !section.contains_key(*n)).collect();
            if !missing.is_empty() {
                eprintln!(
                    "unknown {what} tasks: {}",
                    missing
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                eprintln!(
                    "available {what} tasks: {}",
                    section.keys().cloned().collect::<Vec<_>>().join(", ")
                );
                return 2;
            }
        }
    }
    if o.nodes == 0 || o.node >= o.nodes {
        eprintln!(
            "--node must be from 0 to {} (--nodes {})",
            o.nodes.saturating_sub(1),
            o.nodes
        );
        return 2;
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(o.concurrency.clamp(1, 64))
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return 1;
        }
    };
    rt.block_on(async {
        let managers = crate::app::cache_managers(&loaded.conf);
        let seeds = tasks(&seed_conf, &managers, false, o.seed_names.as_deref());
        let cleanups = tasks(&seed_conf, &managers, true, o.cleanup_names.as_deref());
        let (seeds, cleanups) = match (seeds, cleanups) {
            (Ok(s), Ok(c)) => (s, c),
            (s, c) => {
                let mut all = ConfigErrors::new();
                if let Err(e) = s {
                    all.extend(e);
                }
                if let Err(e) = c {
                    all.extend(e);
                }
                print_errors(&all);
                return 2;
            }
        };
        if o.summary {
            say("========== Seeding tasks ==========");
            for t in &seeds {
                say(&t.describe());
            }
            say("========== Cleanup tasks ==========");
            for t in &cleanups {
                say(&t.describe());
            }
            return 0;
        }
        let store = match ProgressStore::open(o.progress_file.clone(), o.continue_seed) {
            Ok(s) => Arc::new(s),
            Err(e) => {
                eprintln!("{e}");
                return 2;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        {
            let stop = stop.clone();
            tokio::spawn(async move {
                if tokio::signal::ctrl_c().await.is_ok() {
                    stop.store(true, Ordering::Relaxed);
                }
            });
        }
        let mut limits: HashMap<String, Arc<RateLimit>> = HashMap::new();
        let mut failed = 0;
        let mut stopped = false;
        for (title, list) in [("Seeding", &seeds), ("Cleanup", &cleanups)] {
            if list.is_empty() || stopped {
                continue;
            }
            say(&format!("========== {title} tasks =========="));
            say(&format!(
                "Start {} process ({} task{})",
                title.to_lowercase(),
                list.len(),
                if list.len() > 1 { "s" } else { "" }
            ));
            for t in list.iter() {
                if stop.load(Ordering::Relaxed) {
                    stopped = true;
                    break;
                }
                say(&t.describe());
                // one limit per source: caches filled from the same source share it
                let source = loaded
                    .conf
                    .caches
                    .get(&t.cache)
                    .map_or_else(|| t.cache.clone(), |c| c.sources.join(","));
                let limit = o.rate_limit.map(|r| {
                    limits
                        .entry(source)
                        .or_insert_with(|| Arc::new(RateLimit::new(r)))
                        .clone()
                });
                let r = run_task(t, o, &store, limit, &stop, &out).await;
                failed += r.failed;
                if r.stopped {
                    stopped = true;
                    break;
                }
            }
        }
        if stopped {
            say("stopped; the progress is kept (--continue goes on from here)");
            return 3;
        }
        if !o.dry_run {
            store.remove();
        }
        if failed > 0 {
            eprintln!("{failed} meta tiles failed");
            return 1;
        }
        0
    })
}
