//! MapProxy's SQLite caches (`mapproxy/cache/mbtiles.py`, `geopackage.py`): `mbtiles` (one
//! MBTiles file), `sqlite` (one MBTiles file with timestamps per level) and `geopackage` (one
//! GeoPackage tile table, or one GeoPackage per level).
//!
//! The files, tables and columns are MapProxy's, so that a cache MapProxy wrote is used as it
//! is and MapProxy reads ours. Tile coordinates are stored as MapProxy stores them: in the
//! cache grid's own origin, unflipped (MapProxy's MBTiles caches are TMS-ordered because its
//! default grids have their origin in the south-west).
//!
//! Unlike MapProxy (whose default is the rollback journal and which reports "database is
//! locked" once its timeout passes), every database is opened in WAL mode, so readers never
//! block the writer nor it them, with a busy timeout (`sqlite_timeout`, 30 s) for writers
//! waiting on each other; a write that still finds the database busy is retried until that
//! timeout has passed. A killed writer leaves no partial tile: each store is one transaction.
//!
//! Hits ([`TileCache::quick_load`]) are read on the calling thread through separate read-only
//! connections without a busy timeout: a read that would wait (a writer holding the database
//! in exclusive locking mode, a WAL recovery) answers [`QuickLoad::WouldBlock`], and the caller
//! loads the tile on the blocking pool, waiting as `load` does. Nothing else goes through them:
//! stores, removals and a file's first open (its schema) keep the pooled read-write
//! connections.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use rusqlite::{params, Connection, ErrorCode, OpenFlags, OptionalExtension};

use super::{CachedTile, QuickLoad, TileCache};
use crate::grid::{Bbox, TileCoord, TileGrid};

/// MapProxy's default `sqlite_timeout` (seconds).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Idle connections kept per database file (more are opened when more threads need one).
const POOL_SIZE: usize = 8;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn sql_err(path: &Path, e: rusqlite::Error) -> io::Error {
    io::Error::other(format!("{}: {e}", path.display()))
}

fn is_busy(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error_code(),
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked)
    )
}

/// One SQLite file: a small pool of connections (each opened in WAL mode with the busy
/// timeout) and the schema, made once on first use.
struct Db {
    path: PathBuf,
    timeout: Duration,
    /// Creates the schema when the file is new (in one immediate transaction).
    init: fn(&Connection, &InitArgs) -> rusqlite::Result<()>,
    args: InitArgs,
    pool: Mutex<Vec<Connection>>,
    ready: Mutex<bool>,
    /// Read-only connections without a busy timeout, for hits on the calling thread.
    readers: Mutex<Vec<Connection>>,
}

/// What a schema needs beyond the connection.
#[derive(Clone, Default)]
struct InitArgs {
    timestamps: bool,
    gpkg: Option<Arc<GpkgTable>>,
}

impl Db {
    fn new(
        path: PathBuf,
        timeout: Duration,
        init: fn(&Connection, &InitArgs) -> rusqlite::Result<()>,
        args: InitArgs,
    ) -> Db {
        Db {
            path,
            timeout,
            init,
            args,
            pool: Mutex::new(Vec::new()),
            ready: Mutex::new(false),
            readers: Mutex::new(Vec::new()),
        }
    }

    fn open(&self) -> io::Result<Connection> {
        if let Some(dir) = self.path.parent() {
            if !dir.as_os_str().is_empty() {
                fs::create_dir_all(dir).map_err(|e| {
                    io::Error::new(
                        e.kind(),
                        format!("cannot create cache directory {}: {e}", dir.display()),
                    )
                })?;
            }
        }
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_WRITE
                | OpenFlags::SQLITE_OPEN_CREATE
                | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| sql_err(&self.path, e))?;
        conn.busy_timeout(self.timeout)
            .map_err(|e| sql_err(&self.path, e))?;
        self.retry(|| {
            conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get::<_, String>(0))?;
            // WAL with synchronous=NORMAL: a crash can lose the last commits, never a tile's
            // integrity
            conn.execute_batch("PRAGMA synchronous=NORMAL")
        })?;
        let mut ready = lock(&self.ready);
        if !*ready {
            self.retry(|| {
                conn.execute_batch("BEGIN IMMEDIATE")?;
                match (self.init)(&conn, &self.args) {
                    Ok(()) => conn.execute_batch("COMMIT"),
                    Err(e) => {
                        let _ = conn.execute_batch("ROLLBACK");
                        Err(e)
                    }
                }
            })?;
            *ready = true;
        }
        Ok(conn)
    }

    /// A read-only connection that does not wait for locks (busy timeout 0).
    fn open_reader(&self) -> rusqlite::Result<Connection> {
        let conn = Connection::open_with_flags(
            &self.path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        Ok(conn)
    }

    /// Runs the read `f` on a read-only connection without waiting for any lock. `None`, for
    /// the caller to take the blocking path instead, when the database is busy or locked, and
    /// when the read fails otherwise: a file not made yet (the blocking path makes it and its
    /// schema), a table missing, ... (the blocking path reports such errors as it always has).
    fn try_read<R>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<R>) -> Option<R> {
        let pooled = lock(&self.readers).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open_reader().ok()?,
        };
        match f(&conn) {
            Ok(v) => {
                self.return_reader(conn);
                Some(v)
            }
            Err(e) => {
                if is_busy(&e) {
                    self.return_reader(conn);
                }
                None
            }
        }
    }

    /// A tile read by `f` as [`TileCache::quick_load`] answers: at once when the read did not
    /// have to wait, else [`QuickLoad::WouldBlock`] (see [`Db::try_read`]).
    fn quick_load(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<Option<CachedTile>>,
    ) -> QuickLoad<'static> {
        match self.try_read(f) {
            Some(t) => QuickLoad::Now(Ok(t)),
            None => QuickLoad::WouldBlock,
        }
    }

    fn return_reader(&self, conn: Connection) {
        let mut readers = lock(&self.readers);
        if readers.len() < POOL_SIZE {
            readers.push(conn);
        }
    }

    /// Runs `f` again while the database is busy, until the timeout has passed.
    fn retry<R>(&self, mut f: impl FnMut() -> rusqlite::Result<R>) -> io::Result<R> {
        let deadline = Instant::now() + self.timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match f() {
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                }
                r => return r.map_err(|e| sql_err(&self.path, e)),
            }
        }
    }

    /// Runs `f` on a pooled connection (retried while busy).
    fn with<R>(&self, mut f: impl FnMut(&Connection) -> rusqlite::Result<R>) -> io::Result<R> {
        let pooled = lock(&self.pool).pop();
        let conn = match pooled {
            Some(c) => c,
            None => self.open()?,
        };
        let r = self.retry(|| f(&conn));
        let mut pool = lock(&self.pool);
        if pool.len() < POOL_SIZE {
            pool.push(conn);
        }
        r
    }

    /// Opens the file now (creating it and its schema), as MapProxy does when the cache is
    /// configured.
    fn ensure(&self) -> io::Result<()> {
        self.with(|_| Ok(()))
    }
}

fn mbtiles_schema(conn: &Connection, args: &InitArgs) -> rusqlite::Result<()> {
    // MapProxy's MBTilesCache._initialize_mbtile (IF NOT EXISTS: a file made elsewhere keeps
    // its tables)
    let ts = if args.timestamps {
        ", last_modified datetime DEFAULT (datetime('now','localtime'))"
    } else {
        ""
    };
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS tiles (zoom_level integer, tile_column integer, \
         tile_row integer, tile_data blob{ts});
         CREATE TABLE IF NOT EXISTS metadata (name text, value text);
         CREATE UNIQUE INDEX IF NOT EXISTS idx_tile on tiles (zoom_level, tile_column, tile_row);"
    ))
}

fn secs(t: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(t.max(0) as u64)
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// One MBTiles file (`mbtiles`, or one level of `sqlite` with timestamps).
struct MbTilesFile {
    db: Db,
    timestamps: bool,
    /// `load`'s and `is_cached`'s statements (with the ttl condition), made once.
    select: String,
    exists: String,
}

impl MbTilesFile {
    fn new(path: PathBuf, timeout: Duration, timestamps: bool, ttl: u64) -> MbTilesFile {
        let ttl = if timestamps { ttl } else { 0 };
        let cond = if ttl > 0 {
            // MapProxy's condition, as text comparison of local times
            format!(" AND datetime('now', 'localtime', '-{ttl} seconds') < last_modified")
        } else {
            String::new()
        };
        let select = if timestamps {
            // last_modified is local time with second resolution (MapProxy's
            // datetime(?, 'unixepoch', 'localtime')); 'utc' turns it back
            format!(
                "SELECT tile_data, CAST(strftime('%s', last_modified, 'utc') AS INTEGER) \
                 FROM tiles WHERE tile_column = ? AND tile_row = ? AND zoom_level = ?{cond}"
            )
        } else {
            "SELECT tile_data FROM tiles WHERE tile_column = ? AND tile_row = ? AND zoom_level = ?"
                .to_string()
        };
        let exists = format!(
            "SELECT 1 FROM tiles WHERE tile_column = ? AND tile_row = ? AND zoom_level = ?{cond}"
        );
        MbTilesFile {
            db: Db::new(
                path,
                timeout,
                mbtiles_schema,
                InitArgs {
                    timestamps,
                    gpkg: None,
                },
            ),
            timestamps,
            select,
            exists,
        }
    }

    /// The tile through `c` (`None`: missing, or expired).
    fn select(&self, c: &Connection, (x, y, z): TileCoord) -> rusqlite::Result<Option<CachedTile>> {
        let ts = self.timestamps;
        c.prepare_cached(&self.select)?
            .query_row(params![x, y, z as i64], |r| {
                let data: Vec<u8> = r.get(0)?;
                let mtime = if ts {
                    r.get::<_, Option<i64>>(1)?.map(secs).unwrap_or(UNIX_EPOCH)
                } else {
                    // MBTiles has no tile times (MapProxy: the epoch)
                    UNIX_EPOCH
                };
                Ok(CachedTile {
                    data: Bytes::from(data),
                    mtime,
                })
            })
            .optional()
    }

    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        self.db.with(|c| self.select(c, coord))
    }

    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'static> {
        self.db.quick_load(|c| self.select(c, coord))
    }

    fn is_cached(&self, (x, y, z): TileCoord) -> io::Result<bool> {
        self.db.with(|c| {
            c.prepare_cached(&self.exists)?
                .exists(params![x, y, z as i64])
        })
    }

    fn store(&self, (x, y, z): TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        if self.timestamps {
            let now = now_secs();
            self.db.with(|c| {
                c.prepare_cached(
                    "INSERT OR REPLACE INTO tiles \
                     (zoom_level, tile_column, tile_row, tile_data, last_modified) \
                     VALUES (?, ?, ?, ?, datetime(?, 'unixepoch', 'localtime'))",
                )?
                .execute(params![z as i64, x, y, data, now])
            })?;
            Ok(Some(secs(now)))
        } else {
            self.db.with(|c| {
                c.prepare_cached(
                    "INSERT OR REPLACE INTO tiles (zoom_level, tile_column, tile_row, tile_data) \
                     VALUES (?, ?, ?, ?)",
                )?
                .execute(params![z as i64, x, y, data])
            })?;
            Ok(Some(UNIX_EPOCH))
        }
    }

    fn remove(&self, (x, y, z): TileCoord) -> io::Result<()> {
        self.db.with(|c| {
            c.prepare_cached(
                "DELETE FROM tiles WHERE (tile_column = ? AND tile_row = ? AND zoom_level = ?)",
            )?
            .execute(params![x, y, z as i64])
        })?;
        Ok(())
    }
}

/// `type: mbtiles`: one MBTiles file (MapProxy's `MBTilesCache`, without timestamps).
pub struct MbTilesCache {
    file: MbTilesFile,
}

impl MbTilesCache {
    /// Opens `path`, creating it with MapProxy's schema when it is not there.
    pub fn open(path: impl Into<PathBuf>, timeout: Duration) -> io::Result<MbTilesCache> {
        let file = MbTilesFile::new(path.into(), timeout, false, 0);
        file.db.ensure()?;
        Ok(MbTilesCache { file })
    }

    pub fn path(&self) -> &Path {
        &self.file.db.path
    }
}

impl TileCache for MbTilesCache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        self.file.load(coord)
    }
    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'_> {
        self.file.quick_load(coord)
    }
    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        self.file.is_cached(coord)
    }
    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        self.file.store(coord, data)
    }
    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        self.file.remove(coord)
    }
}

/// `type: sqlite`: one MBTiles file with a `last_modified` column per level,
/// `<directory>/<level>.mbtiles` (MapProxy's `MBTilesLevelCache`).
pub struct SqliteCache {
    dir: PathBuf,
    timeout: Duration,
    ttl: u64,
    levels: Mutex<HashMap<usize, Arc<MbTilesFile>>>,
}

impl SqliteCache {
    /// A cache in `dir` (made on the first store); `ttl` seconds, 0 for none.
    pub fn new(dir: impl Into<PathBuf>, timeout: Duration, ttl: u64) -> SqliteCache {
        SqliteCache {
            dir: dir.into(),
            timeout,
            ttl,
            levels: Mutex::new(HashMap::new()),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of `level`.
    pub fn level_path(&self, level: usize) -> PathBuf {
        self.dir.join(format!("{level}.mbtiles"))
    }

    fn level(&self, level: usize) -> Arc<MbTilesFile> {
        lock(&self.levels)
            .entry(level)
            .or_insert_with(|| {
                Arc::new(MbTilesFile::new(
                    self.level_path(level),
                    self.timeout,
                    true,
                    self.ttl,
                ))
            })
            .clone()
    }
}

impl TileCache for SqliteCache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        self.level(coord.2).load(coord)
    }
    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'_> {
        self.level(coord.2).quick_load(coord)
    }
    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        self.level(coord.2).is_cached(coord)
    }
    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        self.level(coord.2).store(coord, data)
    }
    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        self.level(coord.2).remove(coord)
    }
}

/// What a GeoPackage tile table describes: MapProxy's `GeopackageCache` fills
/// `gpkg_contents`, `gpkg_tile_matrix_set` and `gpkg_tile_matrix` from the cache's grid.
#[derive(Debug, Clone)]
pub struct GpkgTable {
    pub table_name: String,
    /// EPSG code of the grid.
    pub srs: u32,
    pub bbox: Bbox,
    pub tile_size: (u32, u32),
    /// Per level: resolution and (columns, rows).
    pub levels: Vec<(f64, (i64, i64))>,
}

impl GpkgTable {
    /// The table `table_name` of a cache in `grid`. Errors when the name has other
    /// characters than MapProxy allows (`^[a-zA-Z0-9_-]+$`).
    pub fn new(table_name: &str, grid: &TileGrid) -> Result<GpkgTable, String> {
        if table_name.is_empty()
            || !table_name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            return Err(format!(
                "The table_name {table_name} contains unsupported characters \
                 (only letters, digits, '_' and '-')."
            ));
        }
        Ok(GpkgTable {
            table_name: table_name.to_string(),
            srs: grid.srs(),
            bbox: grid.bbox(),
            tile_size: grid.tile_size(),
            levels: grid
                .resolutions()
                .iter()
                .copied()
                .zip(grid.grid_sizes().iter().copied())
                .collect(),
        })
    }
}

// MapProxy's WKT of its two built-in SRS (the same definitions, without the layout spaces of
// its Python source)
const WKT_3857: &str = r#"PROJCS["WGS 84 / Pseudo-Mercator",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]],PROJECTION["Mercator_1SP"],PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1,AUTHORITY["EPSG","9001"]],AXIS["X",EAST],AXIS["Y",NORTH],AUTHORITY["EPSG","3857"]]"#;
const WKT_4326: &str = r#"GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563,AUTHORITY["EPSG","7030"]],AUTHORITY["EPSG","6326"]],PRIMEM["Greenwich",0,AUTHORITY["EPSG","8901"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],AUTHORITY["EPSG","4326"]]"#;

const GPKG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gpkg_contents(
    table_name  TEXT     NOT NULL PRIMARY KEY,
    data_type   TEXT     NOT NULL,
    identifier  TEXT     UNIQUE,
    description TEXT     DEFAULT '',
    last_change DATETIME NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
    min_x       DOUBLE,
    min_y       DOUBLE,
    max_x       DOUBLE,
    max_y       DOUBLE,
    srs_id      INTEGER,
    CONSTRAINT fk_gc_r_srs_id FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys(srs_id));
CREATE TABLE IF NOT EXISTS gpkg_spatial_ref_sys(
    srs_name                 TEXT    NOT NULL,
    srs_id                   INTEGER NOT NULL PRIMARY KEY,
    organization             TEXT    NOT NULL,
    organization_coordsys_id INTEGER NOT NULL,
    definition               TEXT    NOT NULL,
    description              TEXT);
CREATE TABLE IF NOT EXISTS gpkg_tile_matrix
    (table_name    TEXT    NOT NULL,
     zoom_level    INTEGER NOT NULL,
     matrix_width  INTEGER NOT NULL,
     matrix_height INTEGER NOT NULL,
     tile_width    INTEGER NOT NULL,
     tile_height   INTEGER NOT NULL,
     pixel_x_size  DOUBLE  NOT NULL,
     pixel_y_size  DOUBLE  NOT NULL,
     CONSTRAINT pk_ttm PRIMARY KEY (table_name, zoom_level),
     CONSTRAINT fk_tmm_table_name FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name));
CREATE TABLE IF NOT EXISTS gpkg_tile_matrix_set(
    table_name TEXT    NOT NULL PRIMARY KEY,
    srs_id     INTEGER NOT NULL,
    min_x      DOUBLE  NOT NULL,
    min_y      DOUBLE  NOT NULL,
    max_x      DOUBLE  NOT NULL,
    max_y      DOUBLE  NOT NULL,
    CONSTRAINT fk_gtms_table_name FOREIGN KEY (table_name) REFERENCES gpkg_contents(table_name),
    CONSTRAINT fk_gtms_srs FOREIGN KEY (srs_id) REFERENCES gpkg_spatial_ref_sys (srs_id));
";

/// MapProxy's `_initialize_gpkg` when the table is missing, else its checks
/// (`check_gpkg`): the table must hold tiles in the grid's SRS, tile size and resolutions.
fn gpkg_schema(conn: &Connection, args: &InitArgs) -> rusqlite::Result<()> {
    let Some(t) = &args.gpkg else {
        return Ok(());
    };
    let name = &t.table_name;
    let exists = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name=?")?
        .exists([name])?;
    let has_tables = conn
        .prepare("SELECT name FROM sqlite_master WHERE type='table' AND name='gpkg_contents'")?
        .exists([])?;
    if exists && has_tables {
        let row: Option<(String, Option<i64>)> = conn
            .query_row(
                "SELECT data_type, srs_id FROM gpkg_contents WHERE table_name = ?",
                [name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((data_type, srs_id)) = row {
            let coordsys: Option<i64> = conn
                .query_row(
                    "SELECT organization_coordsys_id FROM gpkg_spatial_ref_sys WHERE srs_id = ?",
                    [srs_id],
                    |r| r.get(0),
                )
                .optional()?;
            if !data_type.eq_ignore_ascii_case("tiles") {
                return Err(invalid(format!(
                    "table {name} holds '{data_type}', not tiles: table_name is improperly configured"
                )));
            }
            if coordsys != Some(i64::from(t.srs)) {
                return Err(invalid(format!(
                    "table {name} has SRS {} but the cache's grid is in EPSG:{}",
                    coordsys.map(|c| c.to_string()).unwrap_or_default(),
                    t.srs
                )));
            }
            let first: Option<(i64, i64, i64, f64, f64)> = conn
                .query_row(
                    "SELECT zoom_level, tile_width, tile_height, pixel_x_size, pixel_y_size \
                     FROM gpkg_tile_matrix WHERE table_name = ?",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
                )
                .optional()?;
            if let Some((level, tw, th, px, py)) = first {
                if (tw, th) != (i64::from(t.tile_size.0), i64::from(t.tile_size.1)) {
                    return Err(invalid(format!(
                        "table {name} has tiles of {tw}x{th}, the grid {}x{}",
                        t.tile_size.0, t.tile_size.1
                    )));
                }
                let res = usize::try_from(level)
                    .ok()
                    .and_then(|l| t.levels.get(l))
                    .map(|l| l.0);
                let close = |a: f64, b: f64| (a - b).abs() <= 1e-9 * a.abs().max(b.abs());
                match res {
                    Some(r) if close(px, r) && close(py, r) => {}
                    _ => {
                        return Err(invalid(format!(
                            "table {name} level {level} has a resolution of {px:.13} that the \
                             grid has not"
                        )))
                    }
                }
            }
            return Ok(());
        }
    }
    conn.execute_batch(GPKG_SCHEMA)?;
    conn.execute_batch(&format!(
        "CREATE TABLE IF NOT EXISTS [{name}]
            (id          INTEGER PRIMARY KEY AUTOINCREMENT,
             zoom_level  INTEGER NOT NULL,
             tile_column INTEGER NOT NULL,
             tile_row    INTEGER NOT NULL,
             tile_data   BLOB    NOT NULL,
             UNIQUE (zoom_level, tile_column, tile_row))"
    ))?;
    // GeoPackage's application id ('GP10')
    conn.execute_batch("PRAGMA application_id = 1196437808")?;
    let srs = i64::from(t.srs);
    let mut entries: Vec<(i64, &str, i64, &str, &str)> = vec![
        (3857, "epsg", 3857, "WGS 84 / Pseudo-Mercator", WKT_3857),
        (4326, "epsg", 4326, "WGS 84", WKT_4326),
        (-1, "NONE", -1, " ", "undefined"),
        (0, "NONE", 0, " ", "undefined"),
    ];
    if srs != 3857 && srs != 4326 {
        entries.push((srs, "epsg", srs, "Not provided", "Added via Mapproxy."));
    }
    for e in entries {
        conn.execute(
            "INSERT OR REPLACE INTO gpkg_spatial_ref_sys \
             (srs_id, organization, organization_coordsys_id, srs_name, definition) \
             VALUES (?, ?, ?, ?, ?)",
            params![e.0, e.1, e.2, e.3, e.4],
        )?;
    }
    // Python's str() of the UTC datetime MapProxy binds: 'YYYY-MM-DD HH:MM:SS+00:00'
    let last_change: String = conn.query_row(
        "SELECT strftime('%Y-%m-%d %H:%M:%S+00:00', ?, 'unixepoch')",
        [std::env::var("SOURCE_DATE_EPOCH")
            .ok()
            .and_then(|s| s.trim().parse::<i64>().ok())
            .unwrap_or_else(now_secs)],
        |r| r.get(0),
    )?;
    let b = t.bbox;
    conn.execute(
        "INSERT OR IGNORE INTO gpkg_contents (table_name, data_type, identifier, description, \
         last_change, min_x, max_x, min_y, max_y, srs_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        params![
            name,
            "tiles",
            name,
            "Created with Mapproxy.",
            last_change,
            b[0],
            b[2],
            b[1],
            b[3],
            srs
        ],
    )?;
    conn.execute(
        "INSERT OR IGNORE INTO gpkg_tile_matrix_set (table_name, srs_id, min_x, max_x, min_y, \
         max_y) VALUES (?, ?, ?, ?, ?, ?)",
        params![name, srs, b[0], b[2], b[1], b[3]],
    )?;
    // MapProxy describes the first 20 levels
    for (level, (res, (w, h))) in t.levels.iter().take(20).enumerate() {
        conn.execute(
            "INSERT OR REPLACE INTO gpkg_tile_matrix (table_name, zoom_level, matrix_width, \
             matrix_height, tile_width, tile_height, pixel_x_size, pixel_y_size) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            params![
                name,
                level as i64,
                w,
                h,
                i64::from(t.tile_size.0),
                i64::from(t.tile_size.1),
                res,
                res
            ],
        )?;
    }
    Ok(())
}

fn invalid(msg: String) -> rusqlite::Error {
    rusqlite::Error::ToSqlConversionFailure(Box::new(io::Error::new(
        io::ErrorKind::InvalidData,
        msg,
    )))
}

/// One GeoPackage tile table.
struct GpkgFile {
    db: Db,
    select: String,
    exists: String,
    insert: String,
    delete: String,
}

impl GpkgFile {
    fn new(path: PathBuf, timeout: Duration, table: Arc<GpkgTable>) -> GpkgFile {
        let n = table.table_name.clone();
        GpkgFile {
            db: Db::new(
                path,
                timeout,
                gpkg_schema,
                InitArgs {
                    timestamps: false,
                    gpkg: Some(table),
                },
            ),
            select: format!(
                "SELECT tile_data FROM [{n}] WHERE tile_column = ? AND tile_row = ? AND zoom_level = ?"
            ),
            exists: format!(
                "SELECT 1 FROM [{n}] WHERE tile_column = ? AND tile_row = ? AND zoom_level = ?"
            ),
            insert: format!(
                "INSERT OR REPLACE INTO [{n}] (zoom_level, tile_column, tile_row, tile_data) \
                 VALUES (?, ?, ?, ?)"
            ),
            delete: format!(
                "DELETE FROM [{n}] WHERE (tile_column = ? AND tile_row = ? AND zoom_level = ?)"
            ),
        }
    }

    fn select(&self, c: &Connection, (x, y, z): TileCoord) -> rusqlite::Result<Option<CachedTile>> {
        c.prepare_cached(&self.select)?
            .query_row(params![x, y, z as i64], |r| {
                Ok(CachedTile {
                    data: Bytes::from(r.get::<_, Vec<u8>>(0)?),
                    // GeoPackage has no tile times (MapProxy: the epoch)
                    mtime: UNIX_EPOCH,
                })
            })
            .optional()
    }

    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        self.db.with(|c| self.select(c, coord))
    }

    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'static> {
        self.db.quick_load(|c| self.select(c, coord))
    }

    fn is_cached(&self, (x, y, z): TileCoord) -> io::Result<bool> {
        self.db.with(|c| {
            c.prepare_cached(&self.exists)?
                .exists(params![x, y, z as i64])
        })
    }

    fn store(&self, (x, y, z): TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        self.db.with(|c| {
            c.prepare_cached(&self.insert)?
                .execute(params![z as i64, x, y, data])
        })?;
        Ok(Some(UNIX_EPOCH))
    }

    fn remove(&self, (x, y, z): TileCoord) -> io::Result<()> {
        self.db.with(|c| {
            c.prepare_cached(&self.delete)?
                .execute(params![x, y, z as i64])
        })?;
        Ok(())
    }
}

/// `type: geopackage`: one tile table in one GeoPackage file (MapProxy's `GeopackageCache`),
/// or with `levels: true` one GeoPackage per level, `<directory>/<level>.gpkg`
/// (`GeopackageLevelCache`).
pub struct GeoPackageCache {
    table: Arc<GpkgTable>,
    timeout: Duration,
    target: GpkgTarget,
}

enum GpkgTarget {
    File(GpkgFile),
    Levels {
        dir: PathBuf,
        files: Mutex<HashMap<usize, Arc<GpkgFile>>>,
    },
}

impl GeoPackageCache {
    /// Opens `path` (creating it, or the table, as MapProxy does); errors when the table is
    /// there but does not fit the grid.
    pub fn open(
        path: impl Into<PathBuf>,
        table: GpkgTable,
        timeout: Duration,
    ) -> io::Result<GeoPackageCache> {
        let table = Arc::new(table);
        let file = GpkgFile::new(path.into(), timeout, table.clone());
        file.db.ensure()?;
        Ok(GeoPackageCache {
            table,
            timeout,
            target: GpkgTarget::File(file),
        })
    }

    /// One GeoPackage per level in `dir` (each made on first use).
    pub fn levels(dir: impl Into<PathBuf>, table: GpkgTable, timeout: Duration) -> GeoPackageCache {
        GeoPackageCache {
            table: Arc::new(table),
            timeout,
            target: GpkgTarget::Levels {
                dir: dir.into(),
                files: Mutex::new(HashMap::new()),
            },
        }
    }

    pub fn table_name(&self) -> &str {
        &self.table.table_name
    }

    fn with<R>(&self, level: usize, f: impl FnOnce(&GpkgFile) -> R) -> R {
        match &self.target {
            GpkgTarget::File(file) => f(file),
            GpkgTarget::Levels { dir, files } => {
                let file = lock(files)
                    .entry(level)
                    .or_insert_with(|| {
                        Arc::new(GpkgFile::new(
                            dir.join(format!("{level}.gpkg")),
                            self.timeout,
                            self.table.clone(),
                        ))
                    })
                    .clone();
                f(&file)
            }
        }
    }
}

impl TileCache for GeoPackageCache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        self.with(coord.2, |f| f.load(coord))
    }
    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'_> {
        self.with(coord.2, |f| f.quick_load(coord))
    }
    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        self.with(coord.2, |f| f.is_cached(coord))
    }
    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        self.with(coord.2, |f| f.store(coord, data))
    }
    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        self.with(coord.2, |f| f.remove(coord))
    }
}
