//! MapProxy's Redis cache (`mapproxy/cache/redis.py`): one key per tile,
//! `<prefix>-<z>-<x>-<y>`, holding the encoded tile, expiring after `default_ttl` seconds
//! (3600; 0: never), so that a Python MapProxy and this server can share one Redis during a
//! migration.
//!
//! A tile's time is its key's expiry less the ttl (MapProxy derives it the same way from the
//! remaining time to live). Here the expiry is set as an absolute time (`SET .. PXAT`, Redis
//! 6.2+) and read back with `PEXPIRETIME` (Redis 7+; `PTTL` before), so that a tile's time, and
//! with it its ETag, is the same on every read and equal to what `store` returned. Without a
//! ttl the time is unknown: the epoch (a stable ETag), as for MBTiles.
//!
//! Hits on an async runtime ([`TileCache::quick_load`]) go over one multiplexed async
//! connection per tokio runtime (its reader task runs on that runtime; requests from all its
//! workers are pipelined on it), made on first use; a command that fails because the
//! connection dropped (a restarted server, `CLIENT KILL`, an idle timeout) is sent once more
//! over a new one. Stores, removals, the tile locks and calls from outside a runtime use the
//! pooled blocking connections.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures_util::FutureExt;
use redis::aio::MultiplexedConnection;
use redis::{
    AsyncConnectionConfig, Client, ConnectionAddr, IntoConnectionInfo, RedisConnectionInfo,
};
use tokio::runtime;

use super::{CachedTile, QuickLoad, TileCache};
use crate::grid::TileCoord;

/// Idle connections kept (more are opened when more threads need one).
const POOL_SIZE: usize = 8;

/// Async connections kept for runtimes that may have ended (tests start many): beyond this
/// many, the table starts again.
const MAX_RUNTIMES: usize = 16;

/// Connecting, reading and writing give up after this long (a stalled Redis must not hold a
/// request forever).
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Where and how to reach the Redis server (MapProxy's options and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct RedisOptions {
    /// Default `127.0.0.1`.
    pub host: String,
    /// Default 6379.
    pub port: u16,
    /// Default 0.
    pub db: i64,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Key prefix; MapProxy's default is `<cache name>_<grid name>`.
    pub prefix: String,
    /// Seconds a tile lives (`default_ttl`, default 3600; 0: forever).
    pub ttl: f64,
}

impl RedisOptions {
    /// MapProxy's defaults for a cache of `prefix`.
    pub fn new(prefix: impl Into<String>) -> RedisOptions {
        RedisOptions {
            host: "127.0.0.1".into(),
            port: 6379,
            db: 0,
            username: None,
            password: None,
            prefix: prefix.into(),
            ttl: 3600.0,
        }
    }
}

/// `type: redis`.
pub struct RedisCache {
    client: Client,
    prefix: String,
    ttl_ms: u64,
    pool: Mutex<Vec<redis::Connection>>,
    /// The multiplexed async connection of each runtime, with a number telling it from the one
    /// that replaces it.
    async_conns: Mutex<HashMap<runtime::Id, (u64, MultiplexedConnection)>>,
    /// Serializes connecting (the first hits of a runtime wait for one connection).
    connecting: tokio::sync::Mutex<()>,
    /// When the last async connect failed: the hits that queued behind it fail at once instead
    /// of each trying its own connect of up to `IO_TIMEOUT` in turn (a host that drops packets
    /// would otherwise answer the Nth waiter after N × 10 s).
    connect_failed: Mutex<Option<Instant>>,
    next_conn: AtomicU64,
    /// The server has no PEXPIRETIME / no SET PXAT (Redis before 7 / 6.2): relative times.
    old_server: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn io_err(e: redis::RedisError) -> io::Error {
    io::Error::other(format!("redis: {e}"))
}

impl RedisCache {
    /// A cache on the server of `opts` (connected on first use).
    pub fn new(opts: &RedisOptions) -> io::Result<RedisCache> {
        let mut settings = RedisConnectionInfo::default().set_db(opts.db);
        if let Some(u) = &opts.username {
            settings = settings.set_username(u);
        }
        if let Some(p) = &opts.password {
            settings = settings.set_password(p);
        }
        let info = ConnectionAddr::Tcp(opts.host.clone(), opts.port)
            .into_connection_info()
            .map_err(io_err)?
            .set_redis_settings(settings);
        let client = Client::open(info).map_err(io_err)?;
        Ok(RedisCache {
            client,
            prefix: opts.prefix.clone(),
            ttl_ms: if opts.ttl.is_finite() && opts.ttl > 0.0 {
                (opts.ttl * 1000.0) as u64
            } else {
                0
            },
            pool: Mutex::new(Vec::new()),
            async_conns: Mutex::new(HashMap::new()),
            connecting: tokio::sync::Mutex::new(()),
            connect_failed: Mutex::new(None),
            next_conn: AtomicU64::new(0),
            old_server: AtomicBool::new(false),
        })
    }

    /// MapProxy's key of a tile: `<prefix>-<z>-<x>-<y>`.
    pub fn key(&self, (x, y, z): TileCoord) -> String {
        format!("{}-{z}-{x}-{y}", self.prefix)
    }

    /// The key prefix (the tile locks of `lock/redis.rs` live beside the tiles).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Runs `f` on a pooled connection; a connection that failed is dropped, and a command
    /// that failed on a pooled (possibly stale) connection is tried once more on a new one
    /// (also the tile locks' way to Redis, `lock/redis.rs`: one pool per cache).
    pub(crate) fn with<R>(
        &self,
        f: impl Fn(&mut redis::Connection) -> redis::RedisResult<R>,
    ) -> io::Result<R> {
        let pooled = lock(&self.pool).pop();
        let was_pooled = pooled.is_some();
        let mut conn = match pooled {
            Some(c) => c,
            None => self.connect()?,
        };
        let r = match f(&mut conn) {
            Err(e) if was_pooled && (e.is_io_error() || e.is_connection_dropped()) => {
                conn = self.connect()?;
                f(&mut conn)
            }
            r => r,
        };
        match r {
            Ok(v) => {
                let mut pool = lock(&self.pool);
                if pool.len() < POOL_SIZE {
                    pool.push(conn);
                }
                Ok(v)
            }
            Err(e) => Err(io_err(e)),
        }
    }

    /// The runtime's async connection (made when it has none).
    async fn async_conn(&self, rt: runtime::Id) -> io::Result<(u64, MultiplexedConnection)> {
        if let Some(c) = lock(&self.async_conns).get(&rt) {
            return Ok(c.clone());
        }
        let queued = Instant::now();
        let _connecting = self.connecting.lock().await;
        if let Some(c) = lock(&self.async_conns).get(&rt) {
            return Ok(c.clone());
        }
        if lock(&self.connect_failed).is_some_and(|at| at >= queued) {
            return Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "redis: the connection attempt this request waited for failed",
            ));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(IO_TIMEOUT))
            .set_response_timeout(Some(IO_TIMEOUT));
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| {
                *lock(&self.connect_failed) = Some(Instant::now());
                io_err(e)
            })?;
        let id = self.next_conn.fetch_add(1, Ordering::Relaxed);
        let mut conns = lock(&self.async_conns);
        if conns.len() >= MAX_RUNTIMES {
            conns.clear();
        }
        conns.insert(rt, (id, conn.clone()));
        Ok((id, conn))
    }

    /// Forgets the runtime's async connection `id` (it failed), unless already replaced.
    fn drop_async_conn(&self, rt: runtime::Id, id: u64) {
        let mut conns = lock(&self.async_conns);
        if conns.get(&rt).is_some_and(|(i, _)| *i == id) {
            conns.remove(&rt);
        }
    }

    /// `load` over the runtime's async connection, sent once more over a new connection when
    /// the first one failed (dropped by the server, or by a runtime that ended).
    async fn load_async(
        &self,
        rt: runtime::Id,
        coord: TileCoord,
    ) -> io::Result<Option<CachedTile>> {
        let key = self.key(coord);
        let mut retried = false;
        loop {
            let (id, mut conn) = self.async_conn(rt).await?;
            match self.query_async(&mut conn, &key).await {
                Err(e)
                    if !retried
                        && (e.is_io_error()
                            || e.is_connection_dropped()
                            || e.is_unrecoverable_error()) =>
                {
                    self.drop_async_conn(rt, id);
                    retried = true;
                }
                Err(e) => return Err(io_err(e)),
                Ok((data, expiry)) => return Ok(self.tile(data, expiry)),
            }
        }
    }

    /// The tile's bytes and its key's expiry (milliseconds since the epoch), as `load` reads
    /// them.
    async fn query_async(
        &self,
        conn: &mut MultiplexedConnection,
        key: &str,
    ) -> redis::RedisResult<(Option<Vec<u8>>, Option<i64>)> {
        if self.ttl_ms == 0 {
            let data: Option<Vec<u8>> = redis::cmd("GET").arg(key).query_async(conn).await?;
            return Ok((data, None));
        }
        if !self.old_server.load(Ordering::Relaxed) {
            let r = redis::pipe()
                .cmd("GET")
                .arg(key)
                .cmd("PEXPIRETIME")
                .arg(key)
                .query_async::<(Option<Vec<u8>>, i64)>(conn)
                .await;
            match r {
                Ok((d, at)) => return Ok((d, (at >= 0).then_some(at))),
                Err(e) if e.to_string().contains("unknown command") => {
                    self.old_server.store(true, Ordering::Relaxed);
                }
                Err(e) => return Err(e),
            }
        }
        let (d, pttl) = redis::pipe()
            .cmd("GET")
            .arg(key)
            .cmd("PTTL")
            .arg(key)
            .query_async::<(Option<Vec<u8>>, i64)>(conn)
            .await?;
        Ok((d, (pttl >= 0).then(|| now_ms() + pttl)))
    }

    /// The tile of a key's bytes and expiry: its time is the expiry less the ttl; without a
    /// ttl, or for a key without expiry (written with another ttl setting), unknown: the epoch.
    fn tile(&self, data: Option<Vec<u8>>, expiry: Option<i64>) -> Option<CachedTile> {
        let data = data?;
        let mtime = match expiry {
            Some(at) if self.ttl_ms > 0 => {
                UNIX_EPOCH
                    + Duration::from_millis(at.saturating_sub(self.ttl_ms as i64).max(0) as u64)
            }
            _ => UNIX_EPOCH,
        };
        Some(CachedTile {
            data: Bytes::from(data),
            mtime,
        })
    }

    fn connect(&self) -> io::Result<redis::Connection> {
        let conn = self
            .client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(io_err)?;
        conn.set_read_timeout(Some(IO_TIMEOUT)).map_err(io_err)?;
        conn.set_write_timeout(Some(IO_TIMEOUT)).map_err(io_err)?;
        Ok(conn)
    }
}

impl TileCache for RedisCache {
    fn load(&self, coord: TileCoord) -> io::Result<Option<CachedTile>> {
        let key = self.key(coord);
        if self.ttl_ms == 0 {
            let data: Option<Vec<u8>> = self.with(|c| redis::cmd("GET").arg(&key).query(c))?;
            return Ok(data.map(|d| CachedTile {
                data: Bytes::from(d),
                mtime: UNIX_EPOCH,
            }));
        }
        let query = |cmd: &str| {
            self.with(|c| {
                redis::pipe()
                    .cmd("GET")
                    .arg(&key)
                    .cmd(cmd)
                    .arg(&key)
                    .query::<(Option<Vec<u8>>, i64)>(c)
            })
        };
        let (data, expiry) = if self.old_server.load(Ordering::Relaxed) {
            let (d, pttl) = query("PTTL")?;
            (d, (pttl >= 0).then(|| now_ms() + pttl))
        } else {
            match query("PEXPIRETIME") {
                Ok((d, at)) => (d, (at >= 0).then_some(at)),
                Err(e) if e.to_string().contains("unknown command") => {
                    self.old_server.store(true, Ordering::Relaxed);
                    return self.load(coord);
                }
                Err(e) => return Err(e),
            }
        };
        Ok(self.tile(data, expiry))
    }

    /// On a tokio runtime: a future over the runtime's multiplexed connection; elsewhere the
    /// blocking `load`.
    fn quick_load(&self, coord: TileCoord) -> QuickLoad<'_> {
        match runtime::Handle::try_current() {
            Ok(h) => QuickLoad::Future(self.load_async(h.id(), coord).boxed()),
            Err(_) => QuickLoad::WouldBlock,
        }
    }

    fn is_cached(&self, coord: TileCoord) -> io::Result<bool> {
        let key = self.key(coord);
        self.with(|c| redis::cmd("EXISTS").arg(&key).query::<i64>(c))
            .map(|n| n > 0)
    }

    fn store(&self, coord: TileCoord, data: &[u8]) -> io::Result<Option<SystemTime>> {
        let key = self.key(coord);
        if self.ttl_ms == 0 {
            self.with(|c| redis::cmd("SET").arg(&key).arg(data).query::<()>(c))?;
            return Ok(Some(UNIX_EPOCH));
        }
        // MapProxy's SET then PEXPIRE, as one command, with the expiry as an absolute time
        let now = now_ms();
        let old = self.old_server.load(Ordering::Relaxed);
        let r = self.with(|c| {
            let mut cmd = redis::cmd("SET");
            cmd.arg(&key).arg(data);
            if old {
                cmd.arg("PX").arg(self.ttl_ms);
            } else {
                cmd.arg("PXAT").arg(now + self.ttl_ms as i64);
            }
            cmd.query::<()>(c)
        });
        match r {
            Err(e) if !old && e.to_string().contains("syntax error") => {
                self.old_server.store(true, Ordering::Relaxed);
                self.store(coord, data)
            }
            Err(e) => Err(e),
            Ok(()) => Ok(Some(UNIX_EPOCH + Duration::from_millis(now.max(0) as u64))),
        }
    }

    fn remove(&self, coord: TileCoord) -> io::Result<()> {
        let key = self.key(coord);
        self.with(|c| redis::cmd("DEL").arg(&key).query::<i64>(c))?;
        Ok(())
    }
}
