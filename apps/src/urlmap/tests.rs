use http::{Request, StatusCode};
use http_body_util::BodyExt;
use mapproxy_serve_core::build::BuildContext;
use tower::ServiceExt;

use super::*;
use mapproxy_serve_core::app::{app_fn, empty_body, text_response};
use mapproxy_serve_core::environ::{EmptyPathInfo, PublicUrl};

/// An app answering `name|SCRIPT_NAME|PATH_INFO|query`.
fn named(name: &'static str) -> App {
    app_fn(move |req: Request<Body>| async move {
        let body = format!(
            "{name}|{}|{}|{}",
            environ::mount_path(&req),
            environ::path_info(&req),
            req.uri().query().unwrap_or("")
        );
        text_response(StatusCode::OK, "text/plain", body)
    })
}

fn conf(pairs: &[(&str, &str)]) -> FactoryConf {
    FactoryConf::from_pairs("Paste#urlmap", pairs.iter().copied())
}

/// Build through the factory functions, each child answering with its app name.
fn urlmap(pairs: &[(&'static str, &'static str)]) -> App {
    let c = conf(pairs);
    let kids = children(&c).expect("valid keys");
    let built = kids
        .into_iter()
        .map(|k| {
            let name: &'static str = pairs
                .iter()
                .find(|(key, _)| *key == k.key)
                .map(|(_, v)| *v)
                .expect("child from pairs");
            (k, named(name))
        })
        .collect();
    build(&c, &mut BuildContext::current(), built).expect("builds")
}

async fn send(app: &App, req: Request<Body>) -> (StatusCode, String, Option<String>) {
    let res = app.clone().oneshot(req).await.expect("infallible");
    let status = res.status();
    let ct = res
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap().to_string());
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned(), ct)
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri).body(empty_body()).unwrap()
}

async fn body_of(app: &App, req: Request<Body>) -> String {
    let (status, body, _) = send(app, req).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

#[tokio::test]
async fn case_36_paste_test_map() {
    let app = urlmap(&[
        ("", "root"),
        ("/foo", "foo-only"),
        ("/foo/bar", "foo:bar"),
        ("/f", "f-only"),
    ]);
    for (uri, want) in [
        ("/", "root||/|"),
        ("/blah", "root||/blah|"),
        ("/foo/and/more", "foo-only|/foo|/and/more|"),
        ("/foo/bar/baz", "foo:bar|/foo/bar|/baz|"),
        ("/fffzzz", "root||/fffzzz|"),
        ("/f/z/y", "f-only|/f|/z/y|"),
    ] {
        assert_eq!(body_of(&app, get(uri)).await, want, "{uri}");
    }
}

#[tokio::test]
async fn observed_paste_table() {
    let app = urlmap(&[
        ("/", "root"),
        ("/foo", "foo"),
        ("/foo/bar/", "foobar"),
        ("/f", "f"),
    ]);
    for (uri, want) in [
        ("/foo", "foo|/foo||"),
        ("/foo/", "foo|/foo|/|"),
        ("/foo//", "foo|/foo|/|"),
        ("/foobar", "root||/foobar|"),
        ("/foo/bar/baz", "foobar|/foo/bar|/baz|"),
        ("//foo//x", "foo|/foo|/x|"),
        ("/foo?a=1&b", "foo|/foo||a=1&b"),
        ("/foo/x?q", "foo|/foo|/x|q"),
        // the root mount passes the request on untouched, unless `//` must be collapsed
        ("/x?q=1", "root||/x|q=1"),
        ("//a//b?c", "root||/a/b|c"),
        // a mount path hit exactly: PATH_INFO "", also with a scheme and host in the URI
        ("http://h.example/foo", "foo|/foo||"),
        ("http://h.example/foo?z", "foo|/foo||z"),
    ] {
        assert_eq!(body_of(&app, get(uri)).await, want, "{uri}");
    }

    // PATH_INFO "" (an outer mount consumed the whole path).
    let mut req = get("/");
    req.extensions_mut().insert(EmptyPathInfo);
    assert_eq!(body_of(&app, req).await, "root|||");

    // An outer SCRIPT_NAME is kept in front.
    let mut req = get("/foo/x");
    req.extensions_mut().insert(MountPath("/pre".into()));
    assert_eq!(body_of(&app, req).await, "foo|/pre/foo|/x|");
    let mut req = get("/x");
    req.extensions_mut().insert(MountPath("/pre".into()));
    assert_eq!(body_of(&app, req).await, "root|/pre|/x|");
}

#[tokio::test]
async fn nested_urlmaps_see_empty_path_info() {
    let inner = UrlMap::builder()
        .mount(MountKey::new(None, ""), named("inner-root"))
        .mount(MountKey::new(None, "/bar"), named("inner-bar"))
        .build();
    let outer = mapproxy_serve_core::app::app(
        UrlMap::builder()
            .mount(
                MountKey::new(None, "/foo"),
                mapproxy_serve_core::app::app(inner),
            )
            .build(),
    );
    assert_eq!(body_of(&outer, get("/foo")).await, "inner-root|/foo||");
    assert_eq!(body_of(&outer, get("/foo/")).await, "inner-root|/foo|/|");
    assert_eq!(
        body_of(&outer, get("/foo/bar")).await,
        "inner-bar|/foo/bar||"
    );
    assert_eq!(
        body_of(&outer, get("/foo/bar/x?y=1")).await,
        "inner-bar|/foo/bar|/x|y=1"
    );
}

#[tokio::test]
async fn percent_encoded_paths_match_decoded_mounts_on_segment_boundaries() {
    let app = urlmap(&[("/kärten", "k"), ("/a", "a"), ("/a/b", "ab"), ("/", "root")]);
    assert_eq!(
        body_of(&app, get("/k%C3%A4rten/x%20y")).await,
        "k|/k%C3%A4rten|/x%20y|"
    );
    assert_eq!(body_of(&app, get("/%61/b")).await, "ab|/%61/b||");
    // %2F is not a segment separator: "/a%2Fc" is one segment.
    assert_eq!(body_of(&app, get("/a%2Fc")).await, "root||/a%2Fc|");
}

fn with_host(uri: &str, host: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::HOST, host)
        .body(empty_body())
        .unwrap()
}

#[tokio::test]
async fn domain_entries() {
    let app = urlmap(&[
        ("/", "root"),
        ("/api", "api"),
        ("domain Example.COM /", "ex-root"),
        ("domain other.org port 8080 /api", "o8080"),
        ("domain secure.org port 443", "secure"),
        ("domain a.org:81 /x", "a81"),
    ]);
    // Domain entries come before path length: the domain's root beats "/api".
    assert_eq!(
        body_of(&app, with_host("/api/x", "example.com")).await,
        "ex-root||/api/x|"
    );
    // Case-insensitive, any port for a domain without one.
    assert_eq!(
        body_of(&app, with_host("/api", "EXAMPLE.com:9999")).await,
        "ex-root||/api|"
    );
    // A port must match; without a port in Host, http means 80.
    assert_eq!(
        body_of(&app, with_host("/api/x", "Other.ORG:8080")).await,
        "o8080|/api|/x|"
    );
    assert_eq!(
        body_of(&app, with_host("/api/x", "other.org")).await,
        "api|/api|/x|"
    );
    assert_eq!(
        body_of(&app, with_host("/", "other.org:8080")).await,
        "root||/|"
    );
    // https defaults to 443 (scheme and host from the URI authority).
    assert_eq!(
        body_of(&app, get("https://secure.org/z")).await,
        "secure||/z|"
    );
    assert_eq!(body_of(&app, get("http://secure.org/z")).await, "root||/z|");
    // ... or from a trusted forwarded header's PublicUrl.
    let mut req = with_host("/z", "internal:8000");
    req.extensions_mut().insert(PublicUrl {
        scheme: "https".into(),
        host: "SECURE.org".into(),
    });
    assert_eq!(body_of(&app, req).await, "secure||/z|");
    // `domain host:port` written in one token.
    assert_eq!(
        body_of(&app, with_host("/x/1", "a.org:81")).await,
        "a81|/x|/1|"
    );
    assert_eq!(
        body_of(&app, with_host("/x/1", "a.org")).await,
        "root||/x/1|"
    );
}

#[tokio::test]
async fn not_found_app_gets_the_request_unchanged() {
    let app = urlmap(&[("/foo", "foo"), ("not_found_app", "fallback")]);
    let mut req = get("/nope//x?q=1");
    req.extensions_mut().insert(MountPath("/pre".into()));
    assert_eq!(body_of(&app, req).await, "fallback|/pre|/nope//x|q=1");
    assert_eq!(body_of(&app, get("/foo/x")).await, "foo|/foo|/x|");
}

#[test]
fn children_in_file_order_with_not_found_app() {
    let mut c = conf(&[("/b", "bee"), ("not_found_app", "nf"), ("/a", "ay")]);
    c.global.insert("not_found_app".into(), "global-nf".into());
    let kids = children(&c).unwrap();
    let keys: Vec<_> = kids
        .iter()
        .map(|k| (k.key.as_str(), k.app.as_str()))
        .collect();
    assert_eq!(keys, [("/b", "bee"), ("/a", "ay"), ("not_found_app", "nf")]);

    // From [DEFAULT] when the section has none; an empty value means none.
    let mut c = conf(&[("/a", "ay")]);
    c.global.insert("not_found_app".into(), "global-nf".into());
    assert_eq!(children(&c).unwrap()[1].app, "global-nf");
    let c = conf(&[("/a", "ay"), ("not_found_app", "")]);
    assert_eq!(children(&c).unwrap().len(), 1);
}

#[test]
fn path_expression_errors_are_all_reported() {
    let c = conf(&[
        ("domain", "x"),
        ("domain a domain b /x", "x"),
        ("domain a port 1 port 2", "x"),
        ("port 80 /x", "x"),
        ("/a /b", "x"),
        ("a", "x"),
        ("domain h port eighty", "x"),
        ("/ok", ""),
        ("domain h x", "fine"),
    ]);
    let errs = children(&c).unwrap_err().to_string();
    let want = [
        "key 'domain': 'domain' must be followed with a domain name",
        "key 'domain a domain b /x': 'domain' given twice",
        "key 'domain a port 1 port 2': 'port' given twice",
        "key 'port 80 /x': if you give a port, you must also give a domain",
        "key '/a /b': more than one path given (have '/a', got '/b')",
        "key 'a': a mount path must start with / (you gave 'a')",
        "key 'domain h port eighty': a port must be a number (you gave 'eighty')",
        "key '/ok': no app given",
    ];
    for w in want {
        assert!(errs.contains(w), "missing {w:?} in:\n{errs}");
    }
    assert_eq!(errs.lines().count(), want.len(), "{errs}");
    assert!(errs.starts_with("<memory>: [Paste#urlmap] key "), "{errs}");
}

#[test]
fn mount_keys_normalise() {
    assert_eq!(MountKey::parse("/").unwrap().path, "");
    assert_eq!(MountKey::parse("//foo//bar//").unwrap().path, "/foo/bar");
    let k = MountKey::parse("  domain Ex.ORG   port 8080  /x/ ").unwrap();
    assert_eq!(k.domain.as_deref(), Some("ex.org:8080"));
    assert_eq!(k.path, "/x");
    assert_eq!(MountKey::parse("domain h x").unwrap().path, "/x");
    assert_eq!(MountKey::parse("domain h").unwrap().path, "");
}

#[tokio::test]
async fn not_found_plain_text() {
    let app = urlmap(&[("/foo", "foo")]);
    let (status, body, ct) = send(&app, get("/zzz")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(ct.as_deref(), Some("text/plain; charset=utf-8"));
    assert_eq!(
        body,
        "404 Not Found\r\nThe resource could not be found.\r\n/zzz\r\n\r\n"
    );
}

fn accepting(uri: &str, accept: &str) -> Request<Body> {
    Request::get(uri)
        .header(header::ACCEPT, accept)
        .header(header::HOST, "h.example")
        .body(empty_body())
        .unwrap()
}

#[tokio::test]
async fn not_found_html_lists_apps_and_escapes_everything() {
    let app = urlmap(&[("/foo", "foo"), ("domain d.example /x", "x")]);
    for accept in ["text/html,application/xhtml+xml", "*/*"] {
        let (status, body, ct) = send(&app, accepting("/zzz", accept)).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert_eq!(ct.as_deref(), Some("text/html; charset=utf-8"));
        assert!(body.contains("<title>404 Not Found</title>"), "{body}");
        assert!(body.contains("<p>/zzz</p>"), "{body}");
        assert!(body.contains("domain d.example /x\n  /foo"), "{body}");
        assert!(body.contains("HTTP_HOST: h.example"), "{body}");
    }
    // Case 37: the path cannot break out of anything. (`<` and `>` cannot be sent raw: the
    // URI parser rejects them, so clients send them encoded and the page shows them decoded.)
    for (uri, bad) in [
        (
            "/--%3E%0D%3Cscript%3Ealert('xss')%3C/script%3E",
            "--><script",
        ),
        ("/--%01%3E%3Cscript%3E", "--\x01><script>"),
        ("/%3Cscript%3E", "<script>"),
    ] {
        let (status, body, _) = send(&app, accepting(uri, "text/html")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(!body.contains(bad), "{uri}: {body}");
        assert!(!body.contains("<script"), "{uri}: {body}");
        assert!(!body.contains("<!--"), "{uri}: {body}");
    }
    let (_, body, _) = send(&app, accepting("/--%3E%0D%3Cscript%3E", "text/html")).await;
    assert!(
        body.contains("<p>/--&gt;\u{FFFD}&lt;script&gt;</p>"),
        "{body}"
    );
}

#[tokio::test]
async fn ten_thousand_mounts() {
    let mut b = UrlMap::builder();
    for i in 0..10_000 {
        let name: &'static str = Box::leak(format!("m{i}").into_boxed_str());
        b = b.mount(MountKey::new(None, &format!("/m{i}")), named(name));
        if i % 100 == 0 {
            let name: &'static str = Box::leak(format!("m{i}-sub").into_boxed_str());
            b = b.mount(MountKey::new(None, &format!("/m{i}/sub/")), named(name));
        }
    }
    let app = mapproxy_serve_core::app::app(b.build());
    assert_eq!(body_of(&app, get("/m9999/a/b")).await, "m9999|/m9999|/a/b|");
    assert_eq!(body_of(&app, get("/m0")).await, "m0|/m0||");
    assert_eq!(
        body_of(&app, get("/m4200/sub/deeper")).await,
        "m4200-sub|/m4200/sub|/deeper|"
    );
    assert_eq!(body_of(&app, get("/m4201/sub")).await, "m4201|/m4201|/sub|");
    let (status, _, _) = send(&app, get("/m10000")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // A very deep request path is cheap: only prefixes as long as the longest mount are hashed.
    let deep = format!("/m7{}", "/a".repeat(20_000));
    let (status, body, _) = send(&app, get(&deep)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.starts_with("m7|/m7|/a/a/"));
}

#[test]
fn later_duplicate_mount_wins() {
    let map = UrlMap::builder()
        .mount(MountKey::new(None, "/a"), named("first"))
        .mount(MountKey::new(None, "/a/"), named("second"))
        .build();
    let (m, _) = map.inner.find(None, "/a").unwrap();
    assert_eq!(m.key.path, "/a");
    assert_eq!(map.inner.listing, ["/a"]);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let body = rt.block_on(body_of(&mapproxy_serve_core::app::app(map), get("/a")));
    assert_eq!(body, "second|/a||");
}

#[test]
fn registered_under_both_egg_names() {
    for egg in ["Paste#urlmap", "mapproxy-serve#urlmap", "paste#urlmap"] {
        let f = mapproxy_serve_core::registry::registry()
            .find(egg)
            .expect(egg);
        assert_eq!(f.kind(), mapproxy_serve_core::registry::Kind::Composite);
        assert!(f.any_options);
    }
}
