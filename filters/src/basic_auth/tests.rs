//! One table of requests, each run through the Tower layer ([`BasicAuthLayer`] over the app
//! as a Tower service) and through the filter the `auth_basic` factory builds (the same
//! service as a [`Handler`]); then the credential store.

use std::convert::Infallible;

use http_body_util::BodyExt;
use tower::ServiceExt;

use mapproxy_serve_core::app::{app, app_fn, box_response, empty_body, text_response};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;

use super::*;

/// The realm of the table's filter (quotes are escaped in the challenge).
const REALM: &str = "my \"maps\"";
/// The challenge of [`REALM`].
const CHALLENGE: &str = "Basic realm=\"my \\\"maps\\\"\"";
/// Inline users, separated by whitespace and newlines; `bob`'s password has a colon.
const USERS: &str = "alice:secret bob:pa:ss\n c:d";
/// The password `secret` as bcrypt (cost 5): a slow check.
const BCRYPT_SECRET: &str = "$2y$05$hB/j7d8LOr.e1c/ow61zFOT4ybNSLe2oWhFQ8t2W5coBHnGfmijG2";

/// One request and what the filter makes of it.
struct Case {
    /// The `Authorization` header, as bytes (not all are text).
    authorization: Option<Vec<u8>>,
    /// A user set before the filter (an outer authenticator, the FastCGI server).
    known_user: Option<&'static str>,
    /// Through the filter with `trust_remote_user = true`.
    trusting: bool,
    status: StatusCode,
    /// `REMOTE_USER` as the app and the response see it; `None` goes with a 401 and the
    /// realm's challenge.
    user: Option<&'static str>,
}

impl Case {
    fn request(&self) -> Request<AppBody> {
        let mut req = Request::new(empty_body());
        if let Some(a) = &self.authorization {
            let v = HeaderValue::from_bytes(a).unwrap();
            req.headers_mut().insert(AUTHORIZATION, v);
        }
        if let Some(u) = self.known_user {
            req.extensions_mut().insert(RemoteUser(u.into()));
        }
        req
    }

    fn name(&self) -> String {
        let auth = self.authorization.as_deref().map(String::from_utf8_lossy);
        format!(
            "{auth:?} (known user {:?}, trusting {})",
            self.known_user, self.trusting
        )
    }
}

fn basic(user_pass: &str) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(user_pass)
    )
}

fn cases() -> Vec<Case> {
    let ok = |auth: String, user| Case {
        authorization: Some(auth.into_bytes()),
        known_user: None,
        trusting: false,
        status: StatusCode::OK,
        user: Some(user),
    };
    let refused = |auth: Option<Vec<u8>>| Case {
        authorization: auth,
        known_user: None,
        trusting: false,
        status: StatusCode::UNAUTHORIZED,
        user: None,
    };
    // A user set before the filter (a forged FastCGI REMOTE_USER, an outer filter) ...
    let carried = |auth: Option<String>, trusting, status, user| Case {
        authorization: auth.map(String::into_bytes),
        known_user: Some("fcgi-user"),
        trusting,
        status,
        user,
    };
    let mut cases = vec![
        // valid inline users
        ok(basic("alice:secret"), "alice"),
        ok(basic("bob:pa:ss"), "bob"),
        ok(basic("c:d"), "c"),
        // the scheme is case-insensitive and extra spaces are fine
        ok(format!("bAsIc   {}", &basic("alice:secret")[6..]), "alice"),
        // no or wrong credentials
        refused(None),
        refused(Some(basic("alice:wrong").into_bytes())),
        refused(Some(basic("nobody:secret").into_bytes())),
        refused(Some(basic("alice:secre").into_bytes())),
        refused(Some(basic("c:x").into_bytes())),
        // a bcrypt user from the file: checked on the blocking pool
        ok(basic("carol:secret"), "carol"),
        refused(Some(basic("carol:nope").into_bytes())),
        // an unknown user next to a bcrypt file: the same slow path, the same 401
        refused(Some(basic("mallory:secret").into_bytes())),
        // ... is ignored by default: the header decides, and its user replaces the carried one
        carried(None, false, StatusCode::UNAUTHORIZED, None),
        carried(
            Some(basic("alice:wrong")),
            false,
            StatusCode::UNAUTHORIZED,
            None,
        ),
        carried(
            Some("Basic !!!".into()),
            false,
            StatusCode::UNAUTHORIZED,
            None,
        ),
        carried(
            Some(basic("alice:secret")),
            false,
            StatusCode::OK,
            Some("alice"),
        ),
        carried(
            Some(basic("carol:secret")),
            false,
            StatusCode::OK,
            Some("carol"),
        ),
        // ... and passes, whatever the header says, with trust_remote_user
        carried(None, true, StatusCode::OK, Some("fcgi-user")),
        carried(
            Some(basic("alice:wrong")),
            true,
            StatusCode::OK,
            Some("fcgi-user"),
        ),
        // trusting changes nothing for a request without a carried user
        Case {
            trusting: true,
            ..ok(basic("alice:secret"), "alice")
        },
        Case {
            trusting: true,
            ..refused(None)
        },
        Case {
            trusting: true,
            ..refused(Some(basic("alice:wrong").into_bytes()))
        },
    ];
    // malformed headers get 401, never 500
    let bad_utf8 = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(b"\xff\xfe:secret")
    );
    let malformed: Vec<Vec<u8>> = vec![
        b"Basic".to_vec(),
        b"Basic ".to_vec(),
        b"Basic !!!notbase64".to_vec(),
        b"Basic YWxpY2U6c2VjcmV0=====".to_vec(),
        b"Bearer abc".to_vec(),
        b"basicYWxpY2U6c2VjcmV0".to_vec(),
        basic("alicesecret").into_bytes(),
        bad_utf8.into_bytes(),
        format!("Basic {}", "A".repeat(5000)).into_bytes(),
        b"Basic \xff\xfe".to_vec(),
        b"".to_vec(),
    ];
    cases.extend(malformed.into_iter().map(|m| refused(Some(m))));
    cases
}

/// The app: `hi <REMOTE_USER>`.
fn echo_user() -> App {
    app_fn(|req: Request<AppBody>| async move {
        let user = req
            .extensions()
            .get::<RemoteUser>()
            .map(|u| u.0.clone())
            .unwrap_or_default();
        text_response(StatusCode::OK, "text/plain", format!("hi {user}"))
    })
}

/// The response to `case` is what the table says.
async fn check(case: &Case, path: &str, res: Response<AppBody>) {
    let what = format!("{} through the {path}", case.name());
    let (parts, body) = res.into_parts();
    let body = body.collect().await.unwrap().to_bytes();
    assert_eq!(parts.status, case.status, "{what}");
    assert_eq!(
        parts.extensions.get::<RemoteUser>().map(|u| u.0.as_str()),
        case.user,
        "{what}"
    );
    match case.user {
        Some(user) => assert_eq!(body, format!("hi {user}"), "{what}"),
        None => assert_eq!(parts.headers[WWW_AUTHENTICATE], CHALLENGE, "{what}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_through_the_layer_and_the_factory() {
    let dir = tempfile::tempdir().unwrap();
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("carol:{BCRYPT_SECRET}\n")).unwrap();
    let pair = |trusting: bool| {
        let store = CredentialStore::new(
            Users::from_plain_pairs(USERS).unwrap(),
            Some(htpasswd.clone()),
        )
        .unwrap();
        let layer = BasicAuthLayer::new(REALM, store)
            .unwrap()
            .trust_remote_user(trusting);
        let trust = if trusting { "true" } else { "false" };
        let conf = FactoryConf::from_pairs(
            "Paste#auth_basic",
            [
                ("realm", REALM),
                ("users", USERS),
                ("htpasswd", htpasswd.to_str().unwrap()),
                ("trust_remote_user", trust),
            ],
        );
        let filter = build(&conf, &mut BuildContext::current()).unwrap();
        (layer, filter)
    };
    let (plain, trusting) = (pair(false), pair(true));
    for case in cases() {
        let (layer, filter) = if case.trusting { &trusting } else { &plain };
        let res = layer.layer(echo_user()).oneshot(case.request()).await;
        let Ok::<_, Infallible>(res) = res;
        check(&case, "layer", box_response(res)).await;
        let res = filter(echo_user()).call(case.request()).await;
        check(&case, "factory", res).await;
    }
}

/// Outside a runtime the slow check runs inline: the answer is there at the first poll.
#[test]
fn slow_check_without_runtime_runs_inline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, format!("alice:{BCRYPT_SECRET}\n")).unwrap();
    let req = || {
        let mut req = Request::new(empty_body());
        req.headers_mut()
            .insert(AUTHORIZATION, basic("alice:secret").parse().unwrap());
        req
    };
    let store = CredentialStore::new(Users::new(), Some(path.clone())).unwrap();
    let mut svc = BasicAuthLayer::new("r", store).unwrap().layer(echo_user());
    let fut = Service::call(&mut svc, req());
    let res = futures_util::FutureExt::now_or_never(fut).unwrap().unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let conf = FactoryConf::from_pairs("Paste#auth_basic", [("htpasswd", path.to_str().unwrap())]);
    let filter = build(&conf, &mut BuildContext::current()).unwrap();
    let fut = filter(echo_user()).call(req());
    let res = futures_util::FutureExt::now_or_never(fut).unwrap();
    assert_eq!(res.status(), StatusCode::OK);
}

/// One request through `layer` with `user:password`: the status and `REMOTE_USER`.
async fn through_layer(
    layer: &BasicAuthLayer,
    user_pass: &str,
) -> (StatusCode, Option<RemoteUser>) {
    let mut req = Request::new(empty_body());
    req.headers_mut()
        .insert(AUTHORIZATION, basic(user_pass).parse().unwrap());
    let Ok::<_, Infallible>(res) = layer.layer(echo_user()).oneshot(req).await;
    (res.status(), res.extensions().get::<RemoteUser>().cloned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bcrypt_file_is_checked_off_thread_and_cached() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, format!("alice:{BCRYPT_SECRET}\n")).unwrap();
    let store = CredentialStore::new(Users::new(), Some(path)).unwrap();
    assert!(matches!(store.check("alice", b"secret"), Check::Slow(_)));
    let l = BasicAuthLayer::new("r", store).unwrap();
    let (st, user) = through_layer(&l, "alice:secret").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(user, Some(RemoteUser("alice".into())));
    assert!(matches!(
        l.shared.store.check("alice", b"secret"),
        Check::Accept
    ));
    // a wrong password is never cached as good
    assert_eq!(
        through_layer(&l, "alice:nope").await.0,
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
    std::fs::write(&path, format!("alice:{BCRYPT_SECRET}\n")).unwrap();
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
    let (st, _) = through_layer(&l, "dave:x").await;
    assert_eq!(st, StatusCode::OK);
    assert_eq!(
        through_layer(&l, "bob:secret").await.0,
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

/// An unknown user next to bcrypt users takes the known users' slow path: one bcrypt
/// verification of the file's cost, through the same queue, then 401; nothing is remembered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_users_cost_a_hash_like_known_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, format!("alice:{BCRYPT_SECRET}\ngina:{{PLAIN}}g\n")).unwrap();
    let store = CredentialStore::new(Users::new(), Some(path)).unwrap();
    {
        let state = store.file.as_ref().unwrap().state.read().unwrap();
        match &state.decoy {
            Some(Hash::Bcrypt(h)) => assert!(h.starts_with("$2y$05$")),
            other => panic!("decoy {other:?}"),
        }
    }
    let before = store.slow_hashes();
    for (user, password) in [
        ("alice", "wrong"),
        ("mallory", "wrong"),
        ("mallory", "secret"),
    ] {
        let Check::Slow(slow) = store.check(user, password.as_bytes()) else {
            panic!("{user}:{password} did not take the slow path");
        };
        assert!(!slow.run(), "{user}:{password}");
    }
    assert_eq!(store.slow_hashes() - before, 3);
    // alice's password under another name is not remembered as good
    assert!(matches!(store.check("mallory", b"secret"), Check::Slow(_)));
    // the same through the layer: 401 after one hash each
    let l = BasicAuthLayer::new("r", store).unwrap();
    let before = l.shared.store.slow_hashes();
    for creds in ["alice:wrong", "nobody:x"] {
        assert_eq!(
            through_layer(&l, creds).await.0,
            StatusCode::UNAUTHORIZED,
            "{creds}"
        );
    }
    assert_eq!(l.shared.store.slow_hashes() - before, 2);
}

/// Without slow entries an unknown user is checked against a fast one, inline.
#[test]
fn unknown_users_next_to_fast_entries_are_rejected_inline() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, "bob:{SHA}5en6G6MezRroT3XKqkdPOmY/BfQ=\n").unwrap();
    let store = CredentialStore::new(Users::new(), Some(path)).unwrap();
    assert!(matches!(store.check("nobody", b"secret"), Check::Reject));
    assert!(matches!(store.check("bob", b"secret"), Check::Accept));
    assert_eq!(store.slow_hashes(), 0);
}

/// A request with `alice:secret` (bcrypt) through `svc`, spawned.
fn spawn_request(svc: App) -> tokio::task::JoinHandle<Response<AppBody>> {
    let mut req = Request::new(empty_body());
    req.headers_mut()
        .insert(AUTHORIZATION, basic("alice:secret").parse().unwrap());
    tokio::spawn(async move { svc.call(req).await })
}

/// Poll `cond` until it holds or 20 s pass.
async fn eventually(mut cond: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if cond() {
            return true;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    cond()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_checks_past_the_running_and_waiting_limits_get_503() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("htpasswd");
    std::fs::write(&path, format!("alice:{BCRYPT_SECRET}\n")).unwrap();
    for queued in [0, 1] {
        // through the Tower layer and as the factory's Handler; a new store each (a good
        // password is remembered)
        for handler in [false, true] {
            let store = CredentialStore::new(Users::new(), Some(path.clone()))
                .unwrap()
                .check_limits(1, queued);
            let layer = BasicAuthLayer::new("r", store).unwrap();
            let pool = Arc::clone(&layer.shared.store.pool);
            let svc = if handler {
                App::from_handler(layer.layer(echo_user()))
            } else {
                app(layer.layer(echo_user()))
            };
            // a check in flight: its place and its turn held
            let ticket = pool.admit().unwrap();
            let turn = Arc::clone(&pool.running).try_acquire_owned().unwrap();
            // with a waiting place, one more request waits for the turn
            let waiting = (queued == 1).then(|| spawn_request(svc.clone()));
            assert!(eventually(|| pool.admitted.load(Ordering::SeqCst) == 1 + queued).await);
            let res = spawn_request(svc.clone()).await.unwrap();
            assert_eq!(
                res.status(),
                StatusCode::SERVICE_UNAVAILABLE,
                "queued {queued}"
            );
            assert_eq!(res.headers()[RETRY_AFTER], "1");
            assert!(res.extensions().get::<RemoteUser>().is_none());
            drop((ticket, turn));
            if let Some(w) = waiting {
                assert_eq!(w.await.unwrap().status(), StatusCode::OK);
            }
            // the places are given back: the next request is checked (cached by now or not)
            assert_eq!(spawn_request(svc).await.unwrap().status(), StatusCode::OK);
            assert!(eventually(|| pool.admitted.load(Ordering::SeqCst) == 0).await);
        }
    }
}
