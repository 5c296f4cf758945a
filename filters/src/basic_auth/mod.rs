//! HTTP Basic authentication against an htpasswd file and/or inline users.
//!
//! - A request without valid credentials gets `401` with `WWW-Authenticate: Basic realm="..."`;
//!   a malformed `Authorization` header is a `401` too, never a `500`.
//! - On success the user name is put in the [`RemoteUser`] extension of the request (for the
//!   app) and of the response (so an outer access log can print it).
//! - A request that already carries [`RemoteUser`] (set by an outer authenticator or the
//!   FastCGI server) passes through, as in Paste's `auth_basic`.
//! - The htpasswd file is checked for changes (modification time, size, inode) at most once a
//!   second, on a request; a changed file is re-read, so adding a user needs no restart. A file
//!   that became unreadable or invalid is logged once and the previous users stay in force.
//! - Expensive hashes (bcrypt, MD5-crypt) are checked on tokio's blocking pool, once: verified
//!   credentials are remembered in a bounded in-memory set keyed by a salted SHA-256 of
//!   `user:password` (random per-process key), emptied whenever the file changes.
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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::task::{ready, Context, Poll};
use std::time::{Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{Either, Full};
use pin_project_lite::pin_project;
use sha2::{Digest as _, Sha256};
use tower::{Layer, Service};

use crate::basic_auth::htpasswd::{HtpasswdError, Users};
use mapproxy_serve_core::environ::RemoteUser;

const LOG_TARGET: &str = "mapproxy_serve.filters.basic_auth";

/// How many verified credentials are remembered per file version.
pub const CACHE_CAPACITY: usize = 1024;

/// The longest base64 credential token accepted (longer ones get 401).
const MAX_TOKEN: usize = 1364;

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
    verified: RwLock<HashSet<[u8; 32]>>,
    /// One gate per credential being hashed, so that many concurrent first requests with the
    /// same credentials hash once and the rest find them verified.
    inflight: Mutex<HashMap<[u8; 32], Arc<Mutex<()>>>>,
}

impl FileState {
    fn new(users: Users) -> Arc<Self> {
        Arc::new(FileState {
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
    user: String,
    password: Vec<u8>,
    digest: [u8; 32],
}

impl SlowCheck {
    /// [`run`](SlowCheck::run) on tokio's blocking pool (bcrypt and MD5-crypt take
    /// milliseconds: not on the async threads); inline outside a runtime.
    pub fn verify(self) -> Verify {
        match tokio::runtime::Handle::try_current() {
            Ok(h) => Verify::Spawned(h.spawn_blocking(move || self.run())),
            Err(_) => Verify::Done(self.run()),
        }
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
                let ok = st.users.verify(&self.user, &self.password);
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
        Ok(CredentialStore { inline, file, key })
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
        let Some(hash) = state.users.get(user) else {
            return Check::Reject;
        };
        if !hash.is_slow() {
            return if hash.verify(password) {
                Check::Accept
            } else {
                Check::Reject
            };
        }
        let digest = self.digest(user, password);
        if state.is_verified(&digest) {
            return Check::Accept;
        }
        Check::Slow(SlowCheck {
            state,
            user: user.to_string(),
            password: password.to_vec(),
            digest,
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
        })
    }

    /// What the layer does with `req`; see [`Decision`].
    pub fn decide<B>(&self, req: &Request<B>) -> Decision {
        decide(&self.shared, req)
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
        }
    }
}

/// The service made by [`BasicAuthLayer`].
#[derive(Clone, Debug)]
pub struct BasicAuth<S> {
    inner: S,
    shared: Arc<Shared>,
}

/// Response body: the app's, or the 401 page.
pub type ResponseBody<B> = Either<B, Full<Bytes>>;

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
        match decide(&self.shared, &req) {
            Decision::Known(user) => ResponseFuture::Inner {
                fut: self.inner.call(req),
                user: Some(user),
            },
            Decision::Accept(user) => {
                req.extensions_mut().insert(user.clone());
                ResponseFuture::Inner {
                    fut: self.inner.call(req),
                    user: Some(user),
                }
            }
            Decision::Reject => ResponseFuture::Done {
                res: Some(unauthorized(&self.shared).map(Either::Right)),
            },
            Decision::Slow(slow) => {
                // take the service that was made ready; leave a fresh clone behind
                let clone = self.inner.clone();
                let svc = std::mem::replace(&mut self.inner, clone);
                let user = slow.user.clone();
                let job = slow.verify();
                ResponseFuture::Verifying {
                    job,
                    pending: Some((svc, req, user)),
                    shared: Arc::clone(&self.shared),
                }
            }
        }
    }
}

/// What [`BasicAuthLayer`] decides about a request ([`BasicAuthLayer::decide`]), for code
/// that is not a Tower stack (a server's own handler type).
pub enum Decision {
    /// The request already carries [`RemoteUser`] (an outer authenticator, the FastCGI
    /// server): it passes as that user.
    Known(RemoteUser),
    /// Valid credentials: put the user in the request's extensions (and the response's, for
    /// an outer access log) and pass the request on.
    Accept(RemoteUser),
    /// No or wrong credentials: answer [`BasicAuthLayer::unauthorized`].
    Reject,
    /// An expensive hash: run [`SlowCheck::run`] off the async threads; `true` is
    /// [`Accept`](Decision::Accept) of [`SlowCheck::user`].
    Slow(SlowCheck),
}

fn decide<B>(shared: &Shared, req: &Request<B>) -> Decision {
    if let Some(user) = req.extensions().get::<RemoteUser>() {
        return Decision::Known(user.clone());
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

/// A running or finished slow check ([`SlowCheck::verify`]); resolves to whether the
/// credentials are valid.
pub enum Verify {
    /// On tokio's blocking pool.
    Spawned(tokio::task::JoinHandle<bool>),
    /// Computed inline (no runtime).
    Done(bool),
}

impl Future for Verify {
    type Output = bool;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<bool> {
        match self.get_mut() {
            Verify::Done(ok) => Poll::Ready(*ok),
            // a panicked or cancelled check rejects
            Verify::Spawned(h) => Pin::new(h).poll(cx).map(|r| r.unwrap_or_default()),
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
        /// Computing an expensive hash.
        Verifying {
            job: Verify,
            pending: Option<(S, Request<ReqB>, String)>,
            shared: Arc<Shared>,
        },
        /// The 401 answer.
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
                        res.extensions_mut().insert(u);
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
                    let ok = ready!(Pin::new(job).poll(cx));
                    let Some((mut svc, mut req, user)) = pending.take() else {
                        return Poll::Pending;
                    };
                    if !ok {
                        let res = unauthorized(shared).map(Either::Right);
                        self.set(ResponseFuture::Done { res: Some(res) });
                        continue;
                    }
                    let user = RemoteUser(user);
                    req.extensions_mut().insert(user.clone());
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
mod tests {
    use super::*;
    use http_body_util::BodyExt;
    use std::convert::Infallible;
    use tower::ServiceExt;

    fn app() -> impl Service<
        Request<()>,
        Response = Response<Full<Bytes>>,
        Error = Infallible,
        Future = impl Send,
    > + Clone {
        tower::service_fn(|req: Request<()>| async move {
            let user = req
                .extensions()
                .get::<RemoteUser>()
                .map(|u| u.0.clone())
                .unwrap_or_default();
            Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(format!("hi {user}")))))
        })
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    async fn get(
        layer: &BasicAuthLayer,
        auth: Option<&[u8]>,
    ) -> (StatusCode, HeaderMap, Option<RemoteUser>, String) {
        let mut b = Request::builder().uri("/");
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, HeaderValue::from_bytes(a).unwrap());
        }
        let res = layer
            .layer(app())
            .oneshot(b.body(()).unwrap())
            .await
            .unwrap();
        let (parts, body) = res.into_parts();
        let body = body.collect().await.unwrap().to_bytes();
        (
            parts.status,
            parts.headers,
            parts.extensions.get::<RemoteUser>().cloned(),
            String::from_utf8_lossy(&body).into_owned(),
        )
    }

    fn inline_layer() -> BasicAuthLayer {
        let users = Users::from_plain_pairs("alice:secret bob:pa:ss").unwrap();
        BasicAuthLayer::new("my \"maps\"", CredentialStore::new(users, None).unwrap()).unwrap()
    }

    #[tokio::test]
    async fn accepts_valid_and_sets_remote_user() {
        let l = inline_layer();
        let (st, _, user, body) = get(&l, Some(basic("alice:secret").as_bytes())).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(body, "hi alice");
        assert_eq!(user, Some(RemoteUser("alice".into())));
        let (st, _, _, body) = get(&l, Some(basic("bob:pa:ss").as_bytes())).await;
        assert_eq!((st, body.as_str()), (StatusCode::OK, "hi bob"));
    }

    #[tokio::test]
    async fn rejects_with_challenge() {
        let l = inline_layer();
        for auth in [
            None,
            Some(basic("alice:wrong")),
            Some(basic("nobody:secret")),
            Some(basic("alice:secre")),
        ] {
            let (st, h, user, _) = get(&l, auth.as_deref().map(str::as_bytes)).await;
            assert_eq!(st, StatusCode::UNAUTHORIZED, "{auth:?}");
            assert_eq!(h[WWW_AUTHENTICATE], "Basic realm=\"my \\\"maps\\\"\"");
            assert_eq!(user, None);
        }
    }

    #[tokio::test]
    async fn malformed_headers_get_401_never_500() {
        let l = inline_layer();
        let long = format!("Basic {}", "A".repeat(5000));
        let no_colon = basic("alicesecret");
        let bad_utf8 = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(b"\xff\xfe:secret")
        );
        let cases: Vec<&[u8]> = vec![
            b"Basic",
            b"Basic ",
            b"Basic !!!notbase64",
            b"Basic YWxpY2U6c2VjcmV0=====",
            b"Bearer abc",
            b"basicYWxpY2U6c2VjcmV0",
            no_colon.as_bytes(),
            bad_utf8.as_bytes(),
            long.as_bytes(),
            b"Basic \xff\xfe",
            b"",
        ];
        for c in cases {
            let (st, _, _, _) = get(&l, Some(c)).await;
            assert_eq!(
                st,
                StatusCode::UNAUTHORIZED,
                "{:?}",
                String::from_utf8_lossy(c)
            );
        }
        // the scheme is case-insensitive and extra spaces are fine
        let ok = format!("bAsIc   {}", &basic("alice:secret")[6..]);
        assert_eq!(get(&l, Some(ok.as_bytes())).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn existing_remote_user_passes_through() {
        let l = inline_layer();
        let mut req = Request::new(());
        req.extensions_mut().insert(RemoteUser("fcgi-user".into()));
        let res = l.layer(app()).oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], b"hi fcgi-user");
    }

    const BCRYPT_ALICE: &str =
        "alice:$2y$05$hB/j7d8LOr.e1c/ow61zFOT4ybNSLe2oWhFQ8t2W5coBHnGfmijG2\n";

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn bcrypt_file_is_checked_off_thread_and_cached() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, BCRYPT_ALICE).unwrap();
        let store = CredentialStore::new(Users::new(), Some(path)).unwrap();
        assert!(matches!(store.check("alice", b"secret"), Check::Slow(_)));
        let l = BasicAuthLayer::new("r", store).unwrap();
        let (st, _, user, _) = get(&l, Some(basic("alice:secret").as_bytes())).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(user, Some(RemoteUser("alice".into())));
        assert!(matches!(
            l.shared.store.check("alice", b"secret"),
            Check::Accept
        ));
        // a wrong password is never cached as good
        assert_eq!(
            get(&l, Some(basic("alice:nope").as_bytes())).await.0,
            StatusCode::UNAUTHORIZED
        );
        assert!(matches!(
            l.shared.store.check("alice", b"nope"),
            Check::Slow(_)
        ));
    }

    #[test]
    fn concurrent_slow_checks_hash_once_and_clean_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, BCRYPT_ALICE).unwrap();
        let store = Arc::new(CredentialStore::new(Users::new(), Some(path)).unwrap());
        let checks: Vec<SlowCheck> = (0..4)
            .map(|_| match store.check("alice", b"secret") {
                Check::Slow(s) => s,
                _ => panic!("expected a slow check"),
            })
            .collect();
        let state = Arc::clone(&checks[0].state);
        let handles: Vec<_> = checks
            .into_iter()
            .map(|c| std::thread::spawn(move || c.run()))
            .collect();
        for h in handles {
            assert!(h.join().unwrap());
        }
        assert!(state.inflight.lock().unwrap().is_empty());
        assert!(matches!(store.check("alice", b"secret"), Check::Accept));
        match store.check("alice", b"bad") {
            Check::Slow(s) => assert!(!s.run()),
            _ => panic!("expected a slow check"),
        }
        assert!(state.inflight.lock().unwrap().is_empty());
    }

    #[test]
    fn slow_check_without_runtime_runs_inline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, BCRYPT_ALICE).unwrap();
        let l = BasicAuthLayer::new("r", CredentialStore::new(Users::new(), Some(path)).unwrap())
            .unwrap();
        let mut req = Request::new(());
        req.headers_mut()
            .insert(AUTHORIZATION, basic("alice:secret").parse().unwrap());
        let mut svc = l.layer(app());
        let fut = svc.call(req);
        let res = futures_util::FutureExt::now_or_never(fut).unwrap().unwrap();
        assert_eq!(res.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn changed_file_is_reread_without_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        std::fs::write(&path, "alice:{PLAIN}one\n").unwrap();
        let store = CredentialStore::new(Users::new(), Some(path.clone())).unwrap();
        assert!(store.verify_blocking("alice", b"one"));
        assert!(!store.verify_blocking("bob", b"two"));
        // a new file (new inode, other size) with a new user
        let tmp = dir.path().join("htpasswd.new");
        std::fs::write(
            &tmp,
            "alice:{PLAIN}one\nbob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n",
        )
        .unwrap();
        std::fs::rename(&tmp, &path).unwrap();
        store.reload_if_changed();
        assert!(store.verify_blocking("bob", b"secret"));
        // a broken file keeps the previous users
        std::fs::write(&path, "carol:vTgIitjl/y/fM\n").unwrap();
        store.reload_if_changed();
        assert!(store.verify_blocking("bob", b"secret"));
        assert!(!store.verify_blocking("carol", b"secret"));
        // through the layer: the periodic check picks the change up (no restart)
        std::fs::write(&path, "dave:{PLAIN}x\n").unwrap();
        let l = BasicAuthLayer::new("r", store).unwrap();
        l.shared
            .store
            .file
            .as_ref()
            .unwrap()
            .next_check
            .store(0, Ordering::Relaxed);
        let (st, _, _, _) = get(&l, Some(basic("dave:x").as_bytes())).await;
        assert_eq!(st, StatusCode::OK);
        assert_eq!(
            get(&l, Some(basic("bob:secret").as_bytes())).await.0,
            StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn missing_or_invalid_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("htpasswd");
        let e = CredentialStore::new(Users::new(), Some(path.clone())).unwrap_err();
        assert!(e.to_string().contains("cannot read htpasswd file"));
        std::fs::write(&path, "ok:{PLAIN}x\nbad:plain\n").unwrap();
        let e = CredentialStore::new(Users::new(), Some(path.clone())).unwrap_err();
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with(&format!("{}:2:", path.display())));
    }
}
