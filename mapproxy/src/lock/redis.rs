//! The tile lock of `type: redis` caches, across machines: instances sharing a Redis cache
//! fetch a missing meta tile once between them, not once each (MapProxy has no such lock: its
//! instances each fetch it).
//!
//! The lock of a meta tile is the key `<prefix>-lock-<z>-<x>-<y>` (its main tile; beside the
//! tiles' `<prefix>-<z>-<x>-<y>`, which a MapProxy sharing the cache never reads), set with
//! `SET key token NX PX expiry`; the token is a random UUID of that one lock. While the meta
//! tile is made, the holder extends the expiry every third of it, only while the key still
//! holds its token; releasing deletes the key only while it holds the token (both one Lua
//! script, atomic in Redis), so a holder whose lock expired never removes its successor's.
//! A killed holder's lock is gone after at most `expiry`; its waiters (other instances) take
//! it then, or see the tiles the holder stored before ([`MetaTileLocks::poll_cache`]).
//!
//! Redis calls are blocking calls on the cache's connection pool, run on the blocking pool.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;

use super::{HeldLock, LockError, MetaTileLocks};
use crate::cache::RedisCache;
use crate::grid::TileCoord;

/// Extends the key's expiry when it still holds the token: 1 if it did.
const RENEW: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end";

/// Deletes the key when it still holds the token: 1 if it did.
const RELEASE: &str = "if redis.call('get', KEYS[1]) == ARGV[1] then \
     return redis.call('del', KEYS[1]) else return 0 end";

/// The meta tile locks of one Redis cache.
#[derive(Clone)]
pub struct RedisTileLocker {
    cache: Arc<RedisCache>,
    expiry: Duration,
    timeout: Duration,
}

impl RedisTileLocker {
    /// Locks in the Redis of `cache`, expiring `expiry` after they were taken or last
    /// extended (at least 1 ms); waiters give up after `timeout`.
    pub fn new(cache: Arc<RedisCache>, expiry: Duration, timeout: Duration) -> RedisTileLocker {
        RedisTileLocker {
            cache,
            expiry: expiry.max(Duration::from_millis(1)),
            timeout,
        }
    }

    /// The key of the lock of `coord` (a meta tile's main tile).
    pub fn key(&self, (x, y, z): TileCoord) -> String {
        format!("{}-lock-{z}-{x}-{y}", self.cache.prefix())
    }

    fn expiry_ms(&self) -> u64 {
        self.expiry.as_millis().clamp(1, u128::from(u64::MAX)) as u64
    }
}

/// A held Redis lock: extended while held, deleted (if still ours) when dropped.
struct RedisLock {
    cache: Arc<RedisCache>,
    key: String,
    token: String,
    renewal: tokio::task::JoinHandle<()>,
}

fn server_error(e: impl std::fmt::Display) -> LockError {
    LockError::Server(e.to_string())
}

fn script(cache: &RedisCache, script: &str, key: &str, token: &str, ms: u64) -> bool {
    let r = cache.with(|c| {
        redis::cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(key)
            .arg(token)
            .arg(ms)
            .query::<i64>(c)
    });
    match r {
        Ok(n) => n == 1,
        Err(e) => {
            log::warn!(target: "mapproxy.util.lock", "tile lock {key}: {e}");
            false
        }
    }
}

impl Drop for RedisLock {
    fn drop(&mut self) {
        self.renewal.abort();
        let (cache, key, token) = (
            self.cache.clone(),
            std::mem::take(&mut self.key),
            std::mem::take(&mut self.token),
        );
        let release = move || {
            script(&cache, RELEASE, &key, &token, 0);
        };
        // off the async worker when there is one; a release that never runs (the runtime
        // stopped) only leaves the key to its expiry
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(release)),
            Err(_) => release(),
        }
    }
}

impl MetaTileLocks for RedisTileLocker {
    fn try_lock(&self, coord: TileCoord) -> BoxFuture<'_, Result<Option<HeldLock>, LockError>> {
        Box::pin(async move {
            let key = self.key(coord);
            let token = uuid::Uuid::new_v4().simple().to_string();
            let ms = self.expiry_ms();
            let cache = self.cache.clone();
            let (k, t) = (key.clone(), token.clone());
            let taken = tokio::task::spawn_blocking(move || {
                cache.with(|c| {
                    redis::cmd("SET")
                        .arg(&k)
                        .arg(&t)
                        .arg("NX")
                        .arg("PX")
                        .arg(ms)
                        .query::<Option<String>>(c)
                })
            })
            .await
            .map_err(server_error)?
            .map_err(server_error)?;
            if taken.is_none() {
                return Ok(None);
            }
            // extend the expiry while held: a third of it before it runs out
            let renewal = tokio::spawn({
                let (cache, key, token) = (self.cache.clone(), key.clone(), token.clone());
                async move {
                    let mut every = tokio::time::interval(Duration::from_millis((ms / 3).max(1)));
                    every.tick().await;
                    loop {
                        every.tick().await;
                        let (c, k, t) = (cache.clone(), key.clone(), token.clone());
                        let kept =
                            tokio::task::spawn_blocking(move || script(&c, RENEW, &k, &t, ms))
                                .await
                                .unwrap_or(false);
                        if !kept {
                            // expired (this instance stalled) or Redis failed: another may
                            // make the meta tile too, which only costs a second fetch
                            log::warn!(target: "mapproxy.util.lock", "tile lock {key} lost while held");
                            return;
                        }
                    }
                }
            });
            Ok(Some(HeldLock::new(RedisLock {
                cache: self.cache.clone(),
                key,
                token,
                renewal,
            })))
        })
    }

    fn timeout(&self) -> Duration {
        self.timeout
    }

    fn describe(&self, coord: TileCoord) -> String {
        format!("redis key {}", self.key(coord))
    }

    fn poll_cache(&self) -> bool {
        true
    }
}

impl From<RedisTileLocker> for Arc<dyn MetaTileLocks> {
    fn from(l: RedisTileLocker) -> Arc<dyn MetaTileLocks> {
        Arc::new(l)
    }
}
