//! HTTP Basic authentication against an htpasswd file and/or inline users.
//!
//! - A request without valid credentials gets `401` with `WWW-Authenticate: Basic realm="..."`;
//!   a malformed `Authorization` header is a `401` too, never a `500`.
//! - On success the user name is put in the [`RemoteUser`] extension of the request (for the
//!   app) and of the response (so an outer access log can print it).
//! - The `Authorization` header alone decides: a [`RemoteUser`] the request already carries
//!   (from an outer filter, or the FastCGI server's `REMOTE_USER`) is ignored, and replaced
//!   by the header's user when that one is accepted. With
//!   [`BasicAuthLayer::trust_remote_user`] (option `trust_remote_user`) such a request passes
//!   as that user, as in Paste's `auth_basic`: for a stack behind an authenticator it trusts.
//! - The htpasswd file is checked for changes (modification time, size, inode) at most once a
//!   second, on a request; a changed file is re-read, so adding a user needs no restart. A file
//!   that became unreadable or invalid is logged once and the previous users stay in force.
//! - Expensive hashes (bcrypt, MD5-crypt) are checked on tokio's blocking pool, once: verified
//!   credentials are remembered in a bounded in-memory set keyed by a salted SHA-256 of
//!   `user:password` (random per-process key), emptied whenever the file changes.
//! - At most [`CredentialStore::check_limits`] expensive checks run at once (default: one
//!   per CPU) and a bounded number wait for a turn (default 64); past that a request is
//!   answered `503` with `Retry-After: 1` instead of piling onto the blocking pool.
//! - An unknown user costs what a known one does: the password is checked against the
//!   file's [typical](htpasswd::Users::typical) entry (a bcrypt hash of the file's most
//!   common cost when it has bcrypt users) on the same path, through the same queue, and the
//!   result is thrown away. The answer is 401 either way, after the same work.
//!
//! ```no_run
//! use mapproxy_serve_filters::basic_auth::{BasicAuthLayer, CredentialStore};
//! use mapproxy_serve_filters::basic_auth::htpasswd::Users;
//!
//! let store = CredentialStore::new(Users::new(), Some("/etc/mapproxy/htpasswd".into())).unwrap();
//! let layer = BasicAuthLayer::new("maps", store).unwrap();
//! // tower::ServiceBuilder::new().layer(layer).service(app)
//! # let _ = layer;
//! ```

mod factory;
pub mod htpasswd;
pub use factory::build;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use sha2::{Digest as _, Sha256};
use tower::{Layer, Service};

use crate::basic_auth::htpasswd::{Hash, HtpasswdError, Users};
use mapproxy_serve_core::app::{box_body, App, AppFuture, Body as AppBody, Handler};
use mapproxy_serve_core::environ::RemoteUser;

const LOG_TARGET: &str = "mapproxy_serve.filters.basic_auth";

/// How many verified credentials are remembered per file version.
pub const CACHE_CAPACITY: usize = 1024;

/// The longest base64 credential token accepted (longer ones get 401).
const MAX_TOKEN: usize = 1364;

/// Expensive checks that may wait for a turn by default, besides those running.
pub const DEFAULT_QUEUED_CHECKS: usize = 64;

/// Expensive checks that run at once by default: one per CPU (more would only share them).
pub fn default_concurrent_checks() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get())
}

type Stamp = (SystemTime, u64, u64);

fn stamp_of(path: &Path) -> std::io::Result<Stamp> {
    let md = std::fs::metadata(path)?;
    #[cfg(unix)]
    let ino = std::os::unix::fs::MetadataExt::ino(&md);
    #[cfg(not(unix))]
    let ino = 0;
    Ok((md.modified()?, md.len(), ino))
}

struct FileState {
    users: Users,
    /// What an unknown user's password is checked against ([`Users::typical`]).
    decoy: Option<Hash>,
    verified: RwLock<HashSet<[u8; 32]>>,
    /// One gate per credential being hashed, so that many concurrent first requests with the
    /// same credentials hash once and the rest find them verified.
    inflight: Mutex<HashMap<[u8; 32], Arc<Mutex<()>>>>,
}

impl FileState {
    fn new(users: Users) -> Arc<Self> {
        Arc::new(FileState {
            decoy: users.typical().cloned(),
            users,
            verified: RwLock::new(HashSet::new()),
            inflight: Mutex::new(HashMap::new()),
        })
    }

    fn is_verified(&self, digest: &[u8; 32]) -> bool {
        self.verified
            .read()
            .map(|s| s.contains(digest))
            .unwrap_or(false)
    }
}

struct FileSource {
    path: PathBuf,
    state: RwLock<Arc<FileState>>,
    /// The stamp last looked at (loaded or failed), so a broken file is reported once.
    seen: Mutex<Option<Stamp>>,
    /// Milliseconds since `epoch` before which the file is not stat'ed again.
    next_check: AtomicU64,
    epoch: Instant,
}

/// Users from inline pairs and an optional htpasswd file that is re-read when it changes.
pub struct CredentialStore {
    inline: Users,
    file: Option<FileSource>,
    key: [u8; 32],
    pool: Arc<CheckPool>,
}

/// The expensive checks of one store: how many run at once, how many may be admitted
/// (running or waiting), and how many hashes were computed.
struct CheckPool {
    running: Arc<tokio::sync::Semaphore>,
    admitted: AtomicUsize,
    capacity: usize,
    hashed: AtomicU64,
    /// Seconds since `epoch` (plus one) of the last "too many checks" warning; 0: none yet.
    warned: AtomicU64,
    epoch: Instant,
}

impl CheckPool {
    fn new(concurrent: usize, queued: usize) -> Arc<Self> {
        let concurrent = concurrent.clamp(1, tokio::sync::Semaphore::MAX_PERMITS);
        Arc::new(CheckPool {
            running: Arc::new(tokio::sync::Semaphore::new(concurrent)),
            admitted: AtomicUsize::new(0),
            capacity: concurrent.saturating_add(queued),
            hashed: AtomicU64::new(0),
            warned: AtomicU64::new(0),
            epoch: Instant::now(),
        })
    }

    /// A place among the admitted checks, or `None` when all are taken (then warn, at most
    /// every 10 seconds).
    fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let taken = self
            .admitted
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            });
        if taken.is_ok() {
            return Some(Ticket(Arc::clone(self)));
        }
        let now = self.epoch.elapsed().as_secs() + 1;
        let last = self.warned.load(Ordering::Relaxed);
        if (last == 0 || now >= last + 10)
            && self
                .warned
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            log::warn!(target: LOG_TARGET,
                "{} password checks running or waiting: answering 503 (max_concurrent_checks, \
                 max_queued_checks)", self.capacity);
        }
        None
    }
}

/// An admitted check; its place is given back on drop.
struct Ticket(Arc<CheckPool>);

impl Drop for Ticket {
    fn drop(&mut self) {
        self.0.admitted.fetch_sub(1, Ordering::AcqRel);
    }
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CredentialStore")
            .field("inline_users", &self.inline.len())
            .field("file", &self.file.as_ref().map(|s| &s.path))
            .finish()
    }
}

/// The outcome of a credential check.
pub enum Check {
    /// The credentials are valid.
    Accept,
    /// They are not.
    Reject,
    /// An expensive hash must be computed: run [`SlowCheck::run`] off the async threads.
    Slow(SlowCheck),
}

/// A pending check of an expensive hash; remembers a success.
pub struct SlowCheck {
    state: Arc<FileState>,
    pool: Arc<CheckPool>,
    user: String,
    password: Vec<u8>,
    digest: [u8; 32],
    /// The user is in the file; else the password is checked against the decoy, in vain.
    known: bool,
}

impl SlowCheck {
    /// [`run`](SlowCheck::run) on tokio's blocking pool (bcrypt and MD5-crypt take
    /// milliseconds: not on the async threads), when the store's
    /// [limits](CredentialStore::check_limits) let it: it waits for a turn, or resolves to
    /// [`Busy`] at once when too many are running and waiting. Inline outside a runtime.
    pub fn verify(self) -> Verify {
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return Verify(VerifyState::Done(Some(Ok(self.run()))));
        };
        let Some(ticket) = self.pool.admit() else {
            return Verify(VerifyState::Done(Some(Err(Busy))));
        };
        let running = Arc::clone(&self.pool.running);
        Verify(VerifyState::Queued(Box::pin(async move {
            // the semaphore is never closed
            let permit = running.acquire_owned().await.map_err(|_| Busy)?;
            // the turn is held while the hash runs, even if the request goes away meanwhile
            let job = rt.spawn_blocking(move || {
                let _held = (permit, ticket);
                self.run()
            });
            // a panicked check rejects
            Ok(job.await.unwrap_or(false))
        })))
    }

    /// The user whose password is being checked.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// Compute the hash; a success is remembered for this version of the file.
    pub fn run(self) -> bool {
        let st = &self.state;
        let gate = {
            let mut m = st.inflight.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(m.entry(self.digest).or_default())
        };
        let ok = {
            let _g = gate.lock().unwrap_or_else(|p| p.into_inner());
            if st.is_verified(&self.digest) {
                true
            } else {
                self.pool.hashed.fetch_add(1, Ordering::Relaxed);
                let hash = if self.known {
                    st.users.get(&self.user)
                } else {
                    st.decoy.as_ref()
                };
                // an unknown user's check is thrown away: the work is what counts
                let ok = std::hint::black_box(hash.is_some_and(|h| h.verify(&self.password)))
                    && self.known;
                if ok {
                    if let Ok(mut set) = st.verified.write() {
                        if set.len() >= CACHE_CAPACITY {
                            set.clear();
                        }
                        set.insert(self.digest);
                    }
                }
                ok
            }
        };
        let mut m = st.inflight.lock().unwrap_or_else(|p| p.into_inner());
        // the map's reference and ours: nobody else is waiting at this gate
        if Arc::strong_count(&gate) <= 2 {
            m.remove(&self.digest);
        }
        ok
    }
}

impl CredentialStore {
    /// A store with `inline` users (checked first) and an optional htpasswd file, read now.
    pub fn new(inline: Users, htpasswd: Option<PathBuf>) -> Result<Self, HtpasswdError> {
        let mut key = [0u8; 32];
        if getrandom::fill(&mut key).is_err() {
            // no OS randomness: fall back to the process's own hash keys and the clock
            let s = std::collections::hash_map::RandomState::new();
            let h = std::hash::BuildHasher::hash_one(&s, SystemTime::now());
            key[..8].copy_from_slice(&h.to_le_bytes());
        }
        let file = match htpasswd {
            None => None,
            Some(path) => {
                let stamp = stamp_of(&path).ok();
                let users = Users::load(&path)?;
                Some(FileSource {
                    path,
                    state: RwLock::new(FileState::new(users)),
                    seen: Mutex::new(stamp),
                    next_check: AtomicU64::new(1000),
                    epoch: Instant::now(),
                })
            }
        };
        Ok(CredentialStore {
            inline,
            file,
            key,
            pool: CheckPool::new(default_concurrent_checks(), DEFAULT_QUEUED_CHECKS),
        })
    }

    /// At most `concurrent` expensive checks run at once (at least 1), and at most `queued`
    /// more wait for a turn; a check past both is [`Busy`] (the filter answers 503).
    pub fn check_limits(mut self, concurrent: usize, queued: usize) -> Self {
        self.pool = CheckPool::new(concurrent, queued);
        self
    }

    /// Expensive hashes computed so far (bcrypt, MD5-crypt; unknown users' included).
    pub fn slow_hashes(&self) -> u64 {
        self.pool.hashed.load(Ordering::Relaxed)
    }

    fn digest(&self, user: &str, password: &[u8]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.key);
        h.update((user.len() as u64).to_le_bytes());
        h.update(user.as_bytes());
        h.update(password);
        h.finalize().into()
    }

    /// Check `user`/`password`; inline users first, then the file.
    pub fn check(&self, user: &str, password: &[u8]) -> Check {
        if let Some(h) = self.inline.get(user) {
            return if h.verify(password) {
                Check::Accept
            } else {
                Check::Reject
            };
        }
        let Some(src) = &self.file else {
            return Check::Reject;
        };
        src.maybe_reload();
        let state = match src.state.read() {
            Ok(s) => Arc::clone(&s),
            Err(_) => return Check::Reject,
        };
        // An unknown user takes the same steps against the decoy, to the same 401.
        let (hash, known) = match state.users.get(user) {
            Some(hash) => (hash, true),
            None => match &state.decoy {
                Some(decoy) => (decoy, false),
                None => return Check::Reject,
            },
        };
        if !hash.is_slow() {
            return if std::hint::black_box(hash.verify(password)) && known {
                Check::Accept
            } else {
                Check::Reject
            };
        }
        let digest = self.digest(user, password);
        if state.is_verified(&digest) && known {
            return Check::Accept;
        }
        Check::Slow(SlowCheck {
            state,
            pool: Arc::clone(&self.pool),
            user: user.to_string(),
            password: password.to_vec(),
            digest,
            known,
        })
    }

    /// Check and run a slow check inline (for tests and non-async callers).
    pub fn verify_blocking(&self, user: &str, password: &[u8]) -> bool {
        match self.check(user, password) {
            Check::Accept => true,
            Check::Reject => false,
            Check::Slow(s) => s.run(),
        }
    }

    /// Re-read the htpasswd file now if it changed (normally done at most once a second).
    pub fn reload_if_changed(&self) {
        if let Some(src) = &self.file {
            src.reload_if_changed();
        }
    }
}

impl FileSource {
    fn maybe_reload(&self) {
        let now = self.epoch.elapsed().as_millis() as u64;
        let next = self.next_check.load(Ordering::Relaxed);
        if now < next {
            return;
        }
        if self
            .next_check
            .compare_exchange(next, now + 1000, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
        {
            self.reload_if_changed();
        }
    }

    fn reload_if_changed(&self) {
        let stamp = match stamp_of(&self.path) {
            Ok(s) => Some(s),
            Err(e) => {
                let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
                if seen.is_some() {
                    log::error!(target: LOG_TARGET,
                        "htpasswd file {} cannot be read ({e}); keeping the previous users",
                        self.path.display());
                    *seen = None;
                }
                return;
            }
        };
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if *seen == stamp {
            return;
        }
        *seen = stamp;
        match Users::load(&self.path) {
            Ok(users) => {
                log::info!(target: LOG_TARGET, "re-read htpasswd file {} ({} users)",
                    self.path.display(), users.len());
                let fresh = FileState::new(users);
                if let Ok(mut st) = self.state.write() {
                    *st = fresh;
                }
            }
            Err(e) => {
                log::error!(target: LOG_TARGET, "{e}; keeping the previous users");
            }
        }
    }
}

/// Decode `Authorization: Basic <token>` into `(user, password)` inside `buf`.
fn parse_basic<'a>(headers: &HeaderMap, buf: &'a mut [u8; 1024]) -> Option<(&'a str, &'a [u8])> {
    let v = headers.get(AUTHORIZATION)?.as_bytes();
    let (scheme, rest) = v.split_at(v.iter().position(|&b| b == b' ')?);
    if !scheme.eq_ignore_ascii_case(b"basic") {
        return None;
    }
    let token = rest.trim_ascii();
    if token.is_empty() || token.len() > MAX_TOKEN {
        return None;
    }
    let n = base64::engine::general_purpose::STANDARD
        .decode_slice(token, buf)
        .ok()?;
    let decoded = &buf[..n];
    let colon = decoded.iter().position(|&b| b == b':')?;
    let user = std::str::from_utf8(&decoded[..colon]).ok()?;
    Some((user, &decoded[colon + 1..]))
}

/// Layer that requires Basic credentials; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct BasicAuthLayer {
    shared: Arc<Shared>,
    trust_remote_user: bool,
}

#[derive(Debug)]
struct Shared {
    challenge: HeaderValue,
    store: CredentialStore,
}

impl BasicAuthLayer {
    /// Require credentials from `store`; `realm` is shown by browsers (quotes are escaped).
    pub fn new(
        realm: &str,
        store: CredentialStore,
    ) -> Result<Self, http::header::InvalidHeaderValue> {
        let escaped = realm.replace('\\', "\\\\").replace('"', "\\\"");
        let challenge = HeaderValue::from_str(&format!("Basic realm=\"{escaped}\""))?;
        Ok(BasicAuthLayer {
            shared: Arc::new(Shared { challenge, store }),
            trust_remote_user: false,
        })
    }

    /// Let a request that already carries [`RemoteUser`] (an outer authenticator, the
    /// FastCGI server's trusted `REMOTE_USER`) pass as that user, whatever its
    /// `Authorization` header says. Off by default: only the header decides.
    pub fn trust_remote_user(mut self, on: bool) -> Self {
        self.trust_remote_user = on;
        self
    }

    /// What the layer does with `req`; see [`Decision`].
    pub fn decide<B>(&self, req: &Request<B>) -> Decision {
        decide(&self.shared, self.trust_remote_user, req)
    }

    /// The `401` answer with this realm's challenge.
    pub fn unauthorized(&self) -> Response<Full<Bytes>> {
        unauthorized(&self.shared)
    }
}

impl<S> Layer<S> for BasicAuthLayer {
    type Service = BasicAuth<S>;
    fn layer(&self, inner: S) -> BasicAuth<S> {
        BasicAuth {
            inner,
            shared: Arc::clone(&self.shared),
            trust_remote_user: self.trust_remote_user,
        }
    }
}

/// The service made by [`BasicAuthLayer`]. Over an [`App`] it is also a [`Handler`]: the
/// filter as an app (what the `auth_basic` factory builds), answering through `&self`
/// without Tower's boxed future, so an accepted request that the app answers at once stays
/// unboxed. Both take the same steps: one decision per request ([`BasicAuthLayer::decide`]),
/// a slow check in [`ResponseFuture`], and a response that names the accepted user.
#[derive(Clone, Debug)]
pub struct BasicAuth<S> {
    inner: S,
    shared: Arc<Shared>,
    trust_remote_user: bool,
}

/// What [`BasicAuth`] does with a request.
enum Admission {
    /// Pass the request on as this user (in its extensions already); the response names
    /// the user too, for an outer access log.
    Pass(RemoteUser),
    /// Answer 401.
    Refuse,
    /// An expensive hash is being checked for this user; then pass, refuse, or answer 503.
    Verify(Verify, String),
}

impl<S> BasicAuth<S> {
    /// The decision on `req` ([`decide`]); an accepted request gets its user (in place of
    /// any it carried).
    fn admit<B>(&self, req: &mut Request<B>) -> Admission {
        match decide(&self.shared, self.trust_remote_user, req) {
            Decision::Known(user) => Admission::Pass(user),
            Decision::Accept(user) => {
                accept(req, &user);
                Admission::Pass(user)
            }
            Decision::Reject => Admission::Refuse,
            Decision::Slow(slow) => {
                let user = slow.user.clone();
                Admission::Verify(slow.verify(), user)
            }
        }
    }
}

/// An accepted request: its user in its extensions (replacing any it carried), for the app.
fn accept<B>(req: &mut Request<B>, user: &RemoteUser) {
    req.extensions_mut().insert(user.clone());
}

/// The response of an accepted request names its user (for an outer access log).
fn with_user<B>(mut res: Response<B>, user: RemoteUser) -> Response<B> {
    res.extensions_mut().insert(user);
    res
}

/// Response body: the app's, or the 401 or 503 page.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

/// The `503` answer when too many expensive checks are running and waiting.
fn busy() -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(
        b"503 Service Unavailable\n\nToo many password checks at once; try again shortly.\n",
    )));
    *res.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    res.headers_mut()
        .insert(RETRY_AFTER, HeaderValue::from_static("1"));
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

fn unauthorized(shared: &Shared) -> Response<Full<Bytes>> {
    let mut res = Response::new(Full::new(Bytes::from_static(
        b"401 Unauthorized\n\nThis server could not verify that you are authorized to access the \
          document requested.\n",
    )));
    *res.status_mut() = StatusCode::UNAUTHORIZED;
    res.headers_mut()
        .insert(WWW_AUTHENTICATE, shared.challenge.clone());
    res.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    res
}

impl<S, ReqB, ResB> Service<Request<ReqB>> for BasicAuth<S>
where
    S: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
{
    type Response = Response<ResponseBody<ResB>>;
    type Error = S::Error;
    type Future = ResponseFuture<S, ReqB, ResB>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request<ReqB>) -> Self::Future {
        match self.admit(&mut req) {
            Admission::Pass(user) => ResponseFuture::Inner {
                fut: self.inner.call(req),
                user: Some(user),
            },
            Admission::Refuse => ResponseFuture::Done {
                res: Some(unauthorized(&self.shared).map(Either::Right)),
            },
            Admission::Verify(job, user) => {
                // take the service that was made ready; leave a fresh clone behind
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                ResponseFuture::Verifying {
                    job,
                    pending: Some((svc, req, user)),
                    shared: Arc::clone(&self.shared),
                }
            }
        }
    }
}

impl Handler for BasicAuth<App> {
    fn call(&self, mut req: Request<AppBody>) -> AppFuture {
        match self.admit(&mut req) {
            Admission::Pass(user) => self.inner.call(req).map(|res| with_user(res, user)),
            Admission::Refuse => AppFuture::ready(unauthorized(&self.shared).map(box_body)),
            Admission::Verify(job, user) => {
                // `App` is always ready: the clone can be called as it is.
                let fut: ResponseFuture<App, AppBody, AppBody> = ResponseFuture::Verifying {
                    job,
                    pending: Some((self.inner.clone(), req, user)),
                    shared: Arc::clone(&self.shared),
                };
                AppFuture::new(futures_util::FutureExt::map(fut, |res| match res {
                    Ok(res) => res.map(|body| match body {
                        Either::Left(app) => app,
                        Either::Right(page) => box_body(page),
                    }),
                    Err(never) => match never {},
                }))
            }
        }
    }
}

/// What [`BasicAuthLayer`] decides about a request ([`BasicAuthLayer::decide`]), for code
/// that is not a Tower stack (a server's own handler type).
pub enum Decision {
    /// The request already carries [`RemoteUser`] (an outer authenticator, the FastCGI
    /// server) and the layer [trusts it](BasicAuthLayer::trust_remote_user): it passes as
    /// that user. Without that trust a carried user is ignored (and replaced on
    /// [`Accept`](Decision::Accept)).
    Known(RemoteUser),
    /// Valid credentials: put the user in the request's extensions (and the response's, for
    /// an outer access log) and pass the request on.
    Accept(RemoteUser),
    /// No or wrong credentials: answer [`BasicAuthLayer::unauthorized`].
    Reject,
    /// An expensive hash: await [`SlowCheck::verify`] (limited, off the async threads) or
    /// run [`SlowCheck::run`] off them; `true` is [`Accept`](Decision::Accept) of
    /// [`SlowCheck::user`].
    Slow(SlowCheck),
}

fn decide<B>(shared: &Shared, trust_remote_user: bool, req: &Request<B>) -> Decision {
    if trust_remote_user {
        if let Some(user) = req.extensions().get::<RemoteUser>() {
            return Decision::Known(user.clone());
        }
    }
    let mut buf = [0u8; 1024];
    let decision = match parse_basic(req.headers(), &mut buf) {
        None => Decision::Reject,
        Some((user, pass)) => match shared.store.check(user, pass) {
            Check::Accept => Decision::Accept(RemoteUser(user.to_string())),
            Check::Reject => Decision::Reject,
            Check::Slow(slow) => Decision::Slow(slow),
        },
    };
    buf.fill(0);
    decision
}

/// Too many expensive checks are running and waiting ([`CredentialStore::check_limits`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Busy;

/// A waiting, running or finished slow check ([`SlowCheck::verify`]); resolves to whether
/// the credentials are valid, or [`Busy`].
pub struct Verify(VerifyState);

type Queued = Pin<Box<dyn Future<Output = Result<bool, Busy>> + Send>>;

enum VerifyState {
    /// Waiting for a turn, then on tokio's blocking pool.
    Queued(Queued),
    /// Known already: computed inline (no runtime), or refused at once.
    Done(Option<Result<bool, Busy>>),
}

impl Future for Verify {
    type Output = Result<bool, Busy>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<bool, Busy>> {
        match &mut self.get_mut().0 {
            VerifyState::Done(r) => r.take().map_or(Poll::Pending, Poll::Ready),
            VerifyState::Queued(fut) => fut.as_mut().poll(cx),
        }
    }
}

pin_project! {
    /// Response future of [`BasicAuth`].
    #[project = Proj]
    pub enum ResponseFuture<S, ReqB, ResB>
    where
        S: Service<Request<ReqB>, Response = Response<ResB>>,
    {
        /// Waiting for the app.
        Inner { #[pin] fut: S::Future, user: Option<RemoteUser> },
        /// Waiting for a turn and computing an expensive hash.
        Verifying {
            job: Verify,
            pending: Option<(S, Request<ReqB>, String)>,
            shared: Arc<Shared>,
        },
        /// The 401 or 503 answer.
        Done { res: Option<Response<ResponseBody<ResB>>> },
    }
}

impl<S, ReqB, ResB> Future for ResponseFuture<S, ReqB, ResB>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
{
    type Output = Result<Response<ResponseBody<ResB>>, S::Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            match self.as_mut().project() {
                Proj::Inner { fut, user } => {
                    let mut res = ready!(fut.poll(cx))?;
                    if let Some(u) = user.take() {
                        res = with_user(res, u);
                    }
                    return Poll::Ready(Ok(res.map(Either::Left)));
                }
                Proj::Done { res } => {
                    return match res.take() {
                        Some(r) => Poll::Ready(Ok(r)),
                        None => Poll::Pending,
                    }
                }
                Proj::Verifying {
                    job,
                    pending,
                    shared,
                } => {
                    let verdict = ready!(Pin::new(job).poll(cx));
                    let Some((mut svc, mut req, user)) = pending.take() else {
                        return Poll::Pending;
                    };
                    let refusal = match verdict {
                        Ok(true) => None,
                        Ok(false) => Some(unauthorized(shared)),
                        Err(Busy) => Some(busy()),
                    };
                    if let Some(res) = refusal {
                        self.set(ResponseFuture::Done {
                            res: Some(res.map(Either::Right)),
                        });
                        continue;
                    }
                    let user = RemoteUser(user);
                    accept(&mut req, &user);
                    let fut = svc.call(req);
                    self.set(ResponseFuture::Inner {
                        fut,
                        user: Some(user),
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
