//! A WMS source's `concurrent_requests`: at most N requests to one upstream host at once,
//! across every process that shares the lock directory (MapProxy's `SemLock`,
//! util/lock.py:135-155, made in config/configuration/source.py:312-337).
//!
//! MapProxy's files, so that MapProxy processes and ours sharing a deployment count together:
//! `<globals.cache.lock_dir>/<md5 of the URL's netloc>.lck0` … `.lck<N-1>`, each a slot taken
//! with an exclusive, non-blocking `flock` and ` <pid>\n` written into it; all slots taken,
//! the request tries again every 10 ms until `http.client_timeout` has passed. The files are
//! not removed (MapProxy's `remove_on_unlock` is false for them), so its `cleanup_lockdir`,
//! which only removes `*.lck`, leaves them too. The key is the host, not the source: every
//! source on one host shares the slots.
//!
//! In this process the waiting is a semaphore of N permits per slot file, shared by the
//! sources of one host (a registry of weak references: a reload's new sources share it with
//! the old ones still finishing requests), so that our own requests queue without polling;
//! only slots held by other processes are polled.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use md5::{Digest, Md5};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{open_lock_file, try_flock, Flocked, LockError, STEP};

/// The limit of one source; cheap to clone (the semaphore and the slots are shared).
#[derive(Debug, Clone)]
pub struct RequestLimit {
    local: Arc<Semaphore>,
    slots: Option<Arc<Slots>>,
    /// How long a request waits for a permit; `None`: as long as it takes (a local limit).
    timeout: Option<Duration>,
}

/// The slot files `<base>0` … `<base><n-1>`.
#[derive(Debug)]
struct Slots {
    base: PathBuf,
    n: usize,
    /// Where the next try starts (MapProxy starts at a random slot: either spreads them).
    next: AtomicUsize,
}

/// A request's permit: the semaphore's and, when shared, the locked slot file (unlocked by
/// the kernel when it is closed).
#[derive(Debug)]
pub struct RequestPermit {
    _local: OwnedSemaphorePermit,
    _slot: Option<Flocked>,
}

type Registry = Mutex<HashMap<(PathBuf, usize), Weak<Semaphore>>>;

/// The semaphores of the slot files in use in this process.
fn registry() -> &'static Registry {
    static REGISTRY: std::sync::OnceLock<Registry> = std::sync::OnceLock::new();
    REGISTRY.get_or_init(Registry::default)
}

/// `<lock_dir>/<md5 of netloc>.lck`, the slots' common prefix (MapProxy's `lock_file`).
pub fn slot_base(lock_dir: &Path, netloc: &str) -> PathBuf {
    lock_dir.join(format!("{:x}.lck", Md5::digest(netloc.as_bytes())))
}

/// The netloc of `url` as Python's `urlparse` gives it: between `//` and the next `/`, `?`
/// or `#` (user info and port included); empty without `//`.
pub fn netloc(url: &str) -> &str {
    let Some(start) = url.find("//") else {
        return "";
    };
    let rest = &url[start + 2..];
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    &rest[..end]
}

impl RequestLimit {
    /// `n` requests at once in this process only.
    pub fn local(n: usize) -> RequestLimit {
        RequestLimit {
            local: Arc::new(Semaphore::new(n)),
            slots: None,
            timeout: None,
        }
    }

    /// `n` requests at once to the host of `url` among the processes sharing `lock_dir`,
    /// each waiting at most `timeout` for a slot.
    pub fn shared(n: usize, lock_dir: &Path, url: &str, timeout: Duration) -> RequestLimit {
        let base = slot_base(lock_dir, netloc(url));
        let local = {
            let mut reg = registry().lock().unwrap_or_else(|e| e.into_inner());
            reg.retain(|_, w| w.strong_count() > 0);
            let key = (base.clone(), n);
            match reg.get(&key).and_then(Weak::upgrade) {
                Some(s) => s,
                None => {
                    let s = Arc::new(Semaphore::new(n));
                    reg.insert(key, Arc::downgrade(&s));
                    s
                }
            }
        };
        RequestLimit {
            local,
            slots: Some(Arc::new(Slots {
                base,
                n,
                next: AtomicUsize::new(std::process::id() as usize),
            })),
            timeout: Some(timeout),
        }
    }

    /// The path of slot `i`, when the limit is shared.
    pub fn slot_path(&self, i: usize) -> Option<PathBuf> {
        self.slots.as_ref().map(|s| s.path(i))
    }

    /// Waits for a permit: one of this process's, then a free slot file.
    pub async fn acquire(&self) -> Result<RequestPermit, LockError> {
        let deadline = self.timeout.map(|t| tokio::time::Instant::now() + t);
        let describe = || match &self.slots {
            Some(s) => format!("{}*", s.base.display()),
            None => "concurrent_requests".to_string(),
        };
        let permit = self.local.clone().acquire_owned();
        let local = match deadline {
            Some(d) => tokio::time::timeout_at(d, permit).await.ok(),
            None => Some(permit.await),
        };
        // the semaphore is never closed: an error is the timeout
        let Some(Ok(local)) = local else {
            return Err(LockError::Timeout(describe()));
        };
        let Some(slots) = &self.slots else {
            return Ok(RequestPermit {
                _local: local,
                _slot: None,
            });
        };
        loop {
            if let Some(file) = slots.try_any()? {
                return Ok(RequestPermit {
                    _local: local,
                    _slot: Some(file),
                });
            }
            if deadline.is_some_and(|d| tokio::time::Instant::now() >= d) {
                return Err(LockError::Timeout(describe()));
            }
            tokio::time::sleep(STEP).await;
        }
    }
}

impl Slots {
    fn path(&self, i: usize) -> PathBuf {
        let mut p = self.base.clone().into_os_string();
        p.push(i.to_string());
        PathBuf::from(p)
    }

    /// One try of every slot, from the next one on: the first free one, locked.
    fn try_any(&self) -> Result<Option<Flocked>, LockError> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for k in 0..self.n {
            let path = self.path((start + k) % self.n);
            let file = open_lock_file(&path).map_err(|e| LockError::Io(path.clone(), e))?;
            if let Some(file) = try_flock(file).map_err(|e| LockError::Io(path, e))? {
                // MapProxy's LockFile writes its pid; failing to is no reason to give up
                let _ = file
                    .set_len(0)
                    .and_then(|()| writeln!(&*file, " {}", std::process::id()));
                return Ok(Some(file));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn netloc_is_pythons() {
        assert_eq!(
            netloc("http://user:pw@example.org:8080/wms?x=1"),
            "user:pw@example.org:8080"
        );
        assert_eq!(netloc("http://example.org?x"), "example.org");
        assert_eq!(netloc("http://example.org"), "example.org");
        assert_eq!(netloc("file:///tmp/x"), "");
        assert_eq!(netloc("example.org/wms"), "");
    }

    #[test]
    fn slot_names_are_mapproxys() {
        // hashlib.md5(b'localhost:8080').hexdigest()
        assert_eq!(
            slot_base(Path::new("/l"), "localhost:8080"),
            Path::new("/l/9f5ffc7a10e0bad054458b089947ce2f.lck")
        );
    }

    #[tokio::test]
    async fn slots_are_shared_by_limits_of_one_host_and_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = "http://127.0.0.1:1/wms";
        // two limits (two sources, or another process: flock slots are per open file)
        let a = RequestLimit::shared(2, dir.path(), url, Duration::from_millis(200));
        let other = Slots {
            base: slot_base(dir.path(), "127.0.0.1:1"),
            n: 2,
            next: AtomicUsize::new(0),
        };
        let held = other.try_any().expect("try").expect("a free slot");
        let p1 = a.acquire().await.expect("the other slot");
        assert!(other.try_any().expect("try").is_none(), "both slots taken");
        let start = std::time::Instant::now();
        match a.acquire().await {
            Err(LockError::Timeout(name)) => assert!(name.ends_with(".lck*"), "{name}"),
            other => panic!("expected a timeout, got {other:?}"),
        }
        assert!(start.elapsed() >= Duration::from_millis(200));
        drop(held);
        let p2 = a.acquire().await.expect("a slot once freed");
        drop((p1, p2));
        let pid = std::fs::read_to_string(a.slot_path(0).expect("shared")).expect("slot 0");
        assert_eq!(pid, format!(" {}\n", std::process::id()));
    }
}
