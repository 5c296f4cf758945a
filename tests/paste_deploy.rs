//! Paste Deploy's own test cases (its `tests/` with FakeApp), with FakeApp's factories re-made
//! as Rust test factories registered in this test binary. Deliberate differences from Paste
//! (the README's "Differences from Paste Deploy") are tested as differences.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::path::PathBuf;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use indexmap::IndexMap;
use mapproxy_serve::app::{app_fn, empty_body, full_body, text_response, App, Body};
use mapproxy_serve::build::BuildContext;
use mapproxy_serve::config::FactoryConf;
use mapproxy_serve::deploy::{self, Deployment, Node};
use mapproxy_serve::environ::RemoteAddr;
use mapproxy_serve::error::{ConfigError, ConfigErrors};
use mapproxy_serve::register_factory;
use mapproxy_serve::registry::{Build, Child, Factory, Opt};
use mapproxy_serve::server::{ServeContext, ServeFuture, Server};
use tower::ServiceExt;

// ---- FakeApp ----------------------------------------------------------------------------

fn named(name: &'static str) -> App {
    app_fn(move |_req| async move { text_response(StatusCode::OK, "text/plain", name) })
}

fn basic_app(_: &FactoryConf, _: &mut BuildContext) -> Result<App, ConfigErrors> {
    Ok(named("basic_app"))
}

fn other_app(_: &FactoryConf, _: &mut BuildContext) -> Result<App, ConfigErrors> {
    Ok(named("basic_app2"))
}

/// `SimpleApp.make_app`: answers its local_conf and global_conf as JSON.
fn configed(conf: &FactoryConf, _: &mut BuildContext) -> Result<App, ConfigErrors> {
    let local: IndexMap<String, String> = conf
        .local
        .iter()
        .map(|(k, v)| (k.clone(), v.value.clone()))
        .collect();
    let body = serde_json::json!({ "local": local, "global": conf.global }).to_string();
    Ok(app_fn(move |_req| {
        let body = body.clone();
        async move { text_response(StatusCode::OK, "application/json", body) }
    }))
}

fn remote_addr_children(conf: &FactoryConf) -> Result<Vec<Child>, ConfigErrors> {
    Ok(conf
        .local
        .iter()
        .filter(|(k, _)| k.starts_with("app."))
        .map(|(k, v)| Child {
            key: k.clone(),
            app: v.value.clone(),
        })
        .collect())
}

/// `make_remote_addr`: dispatch on the client address (`addr.N` → `app.N`).
fn remote_addr_build(
    conf: &FactoryConf,
    _: &mut BuildContext,
    apps: Vec<(Child, App)>,
) -> Result<App, ConfigErrors> {
    let mut map: Vec<(String, App)> = Vec::new();
    for (child, app) in apps {
        let n = child.key.trim_start_matches("app.");
        let addr = conf.require(&format!("addr.{n}"))?.to_string();
        map.push((addr, app));
    }
    Ok(app_fn(move |req| {
        let ip = mapproxy_serve::environ::remote_ip(&req)
            .map(|ip| ip.to_string())
            .unwrap_or_default();
        let app = map
            .iter()
            .find(|(a, _)| *a == ip)
            .map(|(_, app)| app.clone());
        async move {
            match app {
                Some(app) => app.call(req).await,
                None => text_response(StatusCode::NOT_FOUND, "text/plain", "no app"),
            }
        }
    }))
}

/// `CapFilter`: wraps the inner body as `METHOD(inner)` so nesting is visible.
fn cap_wrap(method: String, inner: App) -> App {
    app_fn(move |req| {
        let inner = inner.clone();
        let method = method.clone();
        async move {
            let res = inner.call(req).await;
            let (parts, body) = res.into_parts();
            let bytes = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let text = format!("{method}({})", String::from_utf8_lossy(&bytes));
            http::Response::from_parts(parts, full_body(Bytes::from(text)))
        }
    })
}

fn caps(conf: &FactoryConf, _: &mut BuildContext) -> Result<mapproxy_serve::Filter, ConfigErrors> {
    let method = conf.get("method_to_call").unwrap_or("upper").to_string();
    Ok(std::sync::Arc::new(move |app| {
        cap_wrap(method.clone(), app)
    }))
}

fn caps2(conf: &FactoryConf, _: &mut BuildContext, app: App) -> Result<App, ConfigErrors> {
    Ok(cap_wrap(
        format!("{}2", conf.get("method_to_call").unwrap_or("upper")),
        app,
    ))
}

struct FakeServer(String);

impl Server for FakeServer {
    fn describe(&self) -> String {
        self.0.clone()
    }
    fn serve(self: Box<Self>, _ctx: ServeContext) -> ServeFuture {
        Box::pin(async { Ok(()) })
    }
}

fn fake_server(conf: &FactoryConf) -> Result<Box<dyn Server>, ConfigErrors> {
    Ok(Box::new(FakeServer(format!(
        "foo={}",
        conf.get("foo").unwrap_or("")
    ))))
}

fn strict(_: &FactoryConf, _: &mut BuildContext) -> Result<App, ConfigErrors> {
    Ok(named("strict"))
}

register_factory!(Factory {
    eggs: &["FakeApp#basic_app"],
    any_options: true,
    build: Build::App(basic_app),
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["FakeApp#other"],
    any_options: true,
    build: Build::App(other_app),
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["FakeApp#configed"],
    any_options: true,
    build: Build::App(configed),
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["FakeApp#remote_addr"],
    any_options: true,
    build: Build::Composite {
        children: remote_addr_children,
        build: remote_addr_build
    },
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["FakeApp#caps"],
    options: &[Opt::new("method_to_call", "upper or lower")],
    build: Build::Filter(caps),
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["FakeApp#caps2"],
    options: &[Opt::new("method_to_call", "upper or lower")],
    build: Build::FilterApp(caps2),
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["FakeApp#fake"],
    any_options: true,
    build: Build::Server(fake_server),
    ..Factory::DEFAULT
});
/// Builds of `FakeApp#counted` so far: `appconfig` must not add any.
static COUNTED_BUILDS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// Counts its builds and refuses every `greeting` (a value only the build function reads).
fn counted(conf: &FactoryConf, _: &mut BuildContext) -> Result<App, ConfigErrors> {
    COUNTED_BUILDS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    match conf.local.get("greeting") {
        Some(v) => Err(v
            .location
            .error("key 'greeting': refused by the factory")
            .into()),
        None => Ok(named("counted")),
    }
}

register_factory!(Factory {
    eggs: &["FakeApp#counted"],
    options: &[Opt::new("greeting", "a greeting")],
    build: Build::App(counted),
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["FakeApp#strict"],
    options: &[
        Opt::new("greeting", "a greeting"),
        Opt::new("realm", "a realm")
    ],
    ignored: &["threadpool_*"],
    build: Build::App(strict),
    ..Factory::DEFAULT
});

// ---- helpers ----------------------------------------------------------------------------

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/paste")
}

fn uri(file: &str) -> String {
    format!("config:{}", dir().join(file).display())
}

fn none() -> IndexMap<String, String> {
    IndexMap::new()
}

fn vars(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn call(app: &App, req: Request<Body>) -> (StatusCode, String) {
    let res = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    let status = res.status();
    let body = res
        .into_body()
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    (status, String::from_utf8_lossy(&body).into_owned())
}

async fn get(app: &App) -> String {
    call(app, Request::builder().uri("/").body(empty_body()).unwrap())
        .await
        .1
}

fn load(file: &str, name: Option<&str>) -> App {
    deploy::load_app(&uri(file), name, &none()).unwrap_or_else(|e| panic!("{e}"))
}

fn err_of<T>(r: Result<T, ConfigErrors>) -> String {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}

fn map(pairs: &[(&str, &str)]) -> IndexMap<String, String> {
    vars(pairs)
}

fn here() -> String {
    dir().display().to_string()
}

fn file_of(name: &str) -> String {
    dir().join(name).display().to_string()
}

// ---- 1-5: basic_app.ini -----------------------------------------------------------------

#[tokio::test]
async fn case01_05_basic_app() {
    assert_eq!(get(&load("basic_app.ini", None)).await, "basic_app"); // 1
    assert_eq!(
        get(&deploy::load_app(&format!("{}#main", uri("basic_app.ini")), None, &none()).unwrap())
            .await,
        "basic_app"
    ); // 2
    assert_eq!(get(&load("basic_app.ini", Some("main"))).await, "basic_app"); // 2
                                                                              // 3: the name argument beats the fragment
    assert_eq!(
        get(&deploy::load_app(
            &format!("{}#ignored", uri("basic_app.ini")),
            Some("main"),
            &none()
        )
        .unwrap())
        .await,
        "basic_app"
    );
    assert_eq!(
        get(&load("basic_app.ini", Some("other"))).await,
        "basic_app2"
    ); // 4
       // 5: the composite gets app.1/addr.1/app.2/addr.2 (the blank line is harmless)
    let app = load("basic_app.ini", Some("remote_addr"));
    let req = |ip: &str| {
        let mut r = Request::builder().uri("/").body(empty_body()).unwrap();
        r.extensions_mut()
            .insert(RemoteAddr(format!("{ip}:1").parse().unwrap()));
        r
    };
    assert_eq!(call(&app, req("127.0.0.1")).await.1, "basic_app");
    assert_eq!(call(&app, req("0.0.0.0")).await.1, "basic_app2");
    let conf = deploy::app_config(&uri("basic_app.ini"), Some("remote_addr"), &none()).unwrap();
    let keys: Vec<&str> = conf.local_conf.keys().map(String::as_str).collect();
    assert_eq!(keys, ["app.1", "addr.1", "app.2", "addr.2"]);
}

// ---- 6-9: call: URIs name Python code: a clear error (difference) ------------------------

#[test]
fn case06_09_call_uris_explain_rust_factories() {
    for name in ["main", "other", "remote_addr"] {
        let e = err_of(deploy::load_app(&uri("test_func.ini"), Some(name), &none()));
        assert!(e.contains("test_func.ini:"), "{e}");
        assert!(
            e.contains("names Python code") && e.contains("register_factory!"),
            "{e}"
        );
    }
    let e = err_of(deploy::load_app(
        &uri("explicit_factory.ini"),
        None,
        &none(),
    ));
    assert!(
        e.starts_with(&format!(
            "{}:2: [app:main] key 'paste.app_factory'",
            file_of("explicit_factory.ini")
        )),
        "{e}"
    );
}

// ---- 10: egg: URI -----------------------------------------------------------------------

#[tokio::test]
async fn case10_egg_uri() {
    let app = deploy::load_app("egg:FakeApp#configed", None, &none()).unwrap();
    assert_eq!(get(&app).await, r#"{"local":{},"global":{}}"#);
    let e = err_of(deploy::load_app("egg:FakeApp#nosuch", None, &none()));
    assert!(
        e.contains("no factory egg:FakeApp#nosuch") && e.contains("basic_app"),
        "{e}"
    );
}

// ---- 11-18: test_config.ini -------------------------------------------------------------

fn base_global() -> IndexMap<String, String> {
    map(&[
        ("def1", "a"),
        ("def2", "b"),
        ("basepath", &here()),
        ("here", &here()),
        ("__file__", &file_of("test_config.ini")),
    ])
}

#[test]
fn case11_local_and_global() {
    let c = deploy::app_config(&uri("test_config.ini"), Some("test1"), &none()).unwrap();
    assert_eq!(
        c.local_conf,
        map(&[
            ("setting1", "foo"),
            ("setting2", "bar"),
            ("apppath", &format!("{}/app", here()))
        ])
    );
    assert_eq!(c.global_conf, base_global());
}

#[test]
fn case12_set_changes_global_without_leaking() {
    let c = deploy::app_config(&uri("test_config.ini"), Some("test2"), &none()).unwrap();
    assert_eq!(c.local_conf, map(&[("local conf", "something")]));
    let mut g = base_global();
    g.insert("def1".into(), "test2".into());
    g.insert("another".into(), "TEST".into());
    assert_eq!(c.global_conf, g);
    let c1 = deploy::app_config(&uri("test_config.ini"), Some("test1"), &none()).unwrap();
    assert_eq!(c1.global_conf, base_global());
}

#[test]
fn case13_use_another_section_and_multiline() {
    let c = deploy::app_config(&uri("test_config.ini"), Some("test3"), &none()).unwrap();
    assert_eq!(
        c.local_conf,
        map(&[
            ("local conf", "something"),
            ("another", "something more\nacross several\nlines")
        ])
    );
    assert_eq!(c.global_conf.get("def1").map(String::as_str), Some("test3"));
    assert_eq!(
        c.global_conf.get("another").map(String::as_str),
        Some("TEST")
    );
}

#[test]
fn case14_foreign_config() {
    let c = deploy::app_config(
        &uri("test_config.ini"),
        Some("test_foreign_config"),
        &none(),
    )
    .unwrap();
    assert_eq!(
        c.local_conf,
        map(&[("bob", "your uncle"), ("another", "FOO")])
    );
    let g = &c.global_conf;
    assert_eq!(g["def1"], "a");
    assert_eq!(g["def2"], "b", "the includer's DEFAULT wins in the dict");
    assert_eq!(g["def3"], "c");
    assert_eq!(g["glob"], "override");
    assert_eq!(g["here"], here());
    assert_eq!(g["__file__"], file_of("test_config.ini"));
}

#[test]
fn case15_16_get_and_appconfig() {
    let c = deploy::app_config(&uri("test_config.ini"), Some("test_get"), &none()).unwrap();
    assert_eq!(c.local_conf, map(&[("def1", "a"), ("foo", "TEST")]));
    assert_eq!(c.global_conf["def2"], "TEST");
    let merged = c.merged();
    for (k, v) in [("def1", "a"), ("def2", "TEST"), ("foo", "TEST")] {
        assert_eq!(merged[k], v);
    }
    assert_eq!(merged["basepath"], here());
}

#[test]
fn case17_caller_global_conf() {
    let g = vars(&[("def2", "TEST DEF 2"), ("inherit", "bazbar")]);
    let c = deploy::app_config(&uri("test_config.ini"), Some("test_global_conf"), &g).unwrap();
    assert_eq!(c.global_conf["def2"], "TEST DEF 2");
    assert_eq!(c.global_conf["inherit"], "bazbar");
    assert_eq!(c.local_conf, map(&[("test_interp", "this:bazbar")]));
}

#[test]
fn case18_interpolation_error_names_file_line_section_key() {
    let e = err_of(deploy::app_config(&uri("test_error.ini"), None, &none()));
    assert!(
        e.starts_with(&format!(
            "{}:4: [app:main] key 'setting2':",
            file_of("test_error.ini")
        )),
        "{e}"
    );
    assert!(e.contains("does_not_exist"), "{e}");
}

// ---- 19-25: filters ---------------------------------------------------------------------

#[tokio::test]
async fn case19_24_filters_pipelines_filter_apps() {
    assert_eq!(
        get(&load("test_filter.ini", Some("filt"))).await,
        "lower(basic_app)"
    );
    assert_eq!(
        get(&load("test_filter.ini", Some("piped"))).await,
        "upper(basic_app)"
    );
    assert_eq!(
        get(&load("test_filter.ini", Some("filt2"))).await,
        "lower2(basic_app)"
    );
    assert_eq!(
        get(&load("test_filter.ini", Some("piped2"))).await,
        "upper2(basic_app)"
    );
    assert_eq!(
        get(&load("test_filter.ini", Some("inv"))).await,
        "upper(basic_app)"
    );
    let e = err_of(deploy::load_app(
        &uri("test_filter.ini"),
        Some("piped3"),
        &none(),
    ));
    assert!(
        e.starts_with(&format!(
            "{}:26: [pipeline:piped3]",
            file_of("test_filter.ini")
        )),
        "{e}"
    );
    assert!(
        e.contains("has extra (disallowed) settings: extra_config_option"),
        "{e}"
    );
}

#[tokio::test]
async fn case25_filter_with_chains() {
    assert_eq!(
        get(&load("test_filter_with.ini", None)).await,
        "upper(upper(basic_app))"
    );
    let c = deploy::app_config(&uri("test_filter_with.ini"), None, &none()).unwrap();
    assert_eq!(c.merged()["example"], "test");
}

// ---- 26-27 ------------------------------------------------------------------------------

#[tokio::test]
async fn case26_body_errors_propagate_through_filters() {
    // Paste: an exception in the app iterator propagates through ConfigMiddleware. Here: a body
    // error of the inner app reaches the caller of the composed service.
    let failing = app_fn(|_req| async {
        let stream = futures_util::stream::iter(vec![Err::<
            http_body::Frame<Bytes>,
            mapproxy_serve::app::BoxError,
        >("boom".into())]);
        http::Response::new(mapproxy_serve::app::box_body(
            http_body_util::StreamBody::new(stream),
        ))
    });
    let wrapped = mapproxy_serve::app::layer_filter(tower::layer::layer_fn(|s: App| s))(failing);
    let res = wrapped
        .oneshot(Request::new(empty_body()))
        .await
        .unwrap_or_else(|e| match e {});
    let err = res.into_body().collect().await.err().map(|e| e.to_string());
    assert_eq!(err.as_deref(), Some("boom"));
}

#[test]
fn case27_asbool() {
    use mapproxy_serve::config::asbool;
    for t in ["true", "yes", "on", "y", "t", "1"] {
        assert_eq!(asbool(t), Ok(true));
    }
    for f in ["false", "no", "off", "n", "f", "0"] {
        assert_eq!(asbool(f), Ok(false));
    }
    assert!(asbool("maybe").is_err());
}

// ---- 28-30: plaster_pastedeploy ---------------------------------------------------------

#[test]
fn case28_settings_order_get_set_defaults() {
    let c = deploy::app_config(&uri("test_settings.ini"), Some("section1"), &none()).unwrap();
    let items: Vec<(&str, &str)> = c
        .local_conf
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    // Paste processes `get` keys after the others: a, b, then c.
    assert_eq!(
        items,
        [("a", "a_val"), ("b", "default_b"), ("c", "override_b")]
    );
    assert_eq!(c.global_conf["default_b"], "override_b");
    let e = err_of(deploy::app_config(
        &uri("test_settings.ini"),
        Some("section2"),
        &none(),
    ));
    assert!(
        e.contains(":14: [app:section2] key 'c'") && e.contains("default_c"),
        "{e}"
    );
    let c = deploy::app_config(
        &uri("test_settings.ini"),
        Some("section2"),
        &vars(&[("default_c", "default_c")]),
    )
    .unwrap();
    assert_eq!(c.local_conf["c"], "default_c");
}

#[test]
fn case29_server_settings() {
    let s = deploy::load_server(&uri("test_server.ini"), None, &none()).unwrap();
    assert_eq!(s.describe(), "foo=main");
    let s = deploy::load_server(&uri("test_server.ini"), Some("other"), &none()).unwrap();
    assert_eq!(s.describe(), "foo=other");
    let e = err_of(deploy::load_server(
        &uri("test_server.ini"),
        Some("nope"),
        &none(),
    ));
    assert!(
        e.contains("no section 'nope' (prefixed by 'server')"),
        "{e}"
    );
}

#[tokio::test]
async fn case30_filter_lookup_ignores_filter_app_sections() {
    let f = deploy::load_filter(&uri("filter_and_filter_app.ini"), Some("filt"), &none()).unwrap();
    assert_eq!(get(&f(named("x"))).await, "lower(x)");
}

// ---- 31-35: the serve command's config handling -----------------------------------------

#[test]
fn case31_cli_vars_in_global_conf() {
    let c = deploy::app_config(
        &uri("basic_app.ini"),
        None,
        &vars(&[("a", "1"), ("b", "2")]),
    )
    .unwrap();
    assert_eq!(c.global_conf["a"], "1");
    assert_eq!(c.global_conf["b"], "2");
}

#[test]
fn case32_bad_var_is_a_usage_error() {
    let e = mapproxy_serve::cli::parse_vars(&["a".to_string()]).unwrap_err();
    assert!(
        e.to_string().contains("variable assignment 'a' invalid"),
        "{e}"
    );
}

#[test]
fn case33_35_every_file_read_is_watched() {
    let d = Deployment::resolve(
        &file_of("test_config.ini"),
        Some("test_foreign_config"),
        None,
        &none(),
    )
    .unwrap();
    let names: Vec<String> = d
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["test_config.ini", "test_config_included.ini"]);
}

// ---- 40-50: the extra golden cases (reproduced, or deliberate differences) ---------------

#[test]
fn case40_default_shadowing_key_dropped_with_warning() {
    let c = deploy::app_config(&uri("shadow_default.ini"), None, &none()).unwrap();
    assert_eq!(
        c.local_conf,
        map(&[("c", "2")]),
        "dropped as in Paste; %(a)s sees the section's own a"
    );
    assert_eq!(c.global_conf["a"], "1");
    let d = Deployment::resolve(&file_of("shadow_default.ini"), None, None, &none()).unwrap();
    let w = d
        .warnings
        .iter()
        .map(ConfigError::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        w.contains("shadow_default.ini:6: [app:main] key 'a' is also in [DEFAULT]")
            && w.contains("set a"),
        "{w}"
    );
}

#[test]
fn case41_cli_values_win_over_default_in_interpolation() {
    // Paste gives port = 6543 here; mapproxy-serve gives the command line's value (a deliberate difference: see the README).
    let c =
        deploy::app_config(&uri("cli_wins.ini"), None, &vars(&[("http_port", "8080")])).unwrap();
    assert_eq!(c.local_conf["port"], "8080");
    assert_eq!(c.global_conf["http_port"], "8080");
}

#[tokio::test]
async fn case42_pipeline_and_filter_app_with_filter_with_work() {
    // Paste returns a bare function here; mapproxy-serve wraps the pipeline.
    assert_eq!(
        get(&load("pipeline_filter_with.ini", None)).await,
        "swapcase(upper(basic_app))"
    );
    assert_eq!(
        get(&load("pipeline_filter_with.ini", Some("fa"))).await,
        "swapcase(lower(basic_app))"
    );
}

#[test]
fn case43_empty_pipeline_is_a_clear_error() {
    let e = err_of(deploy::load_app(&uri("empty_pipeline.ini"), None, &none()));
    assert!(
        e.starts_with(&format!(
            "{}:2: [pipeline:main] key 'pipeline': empty pipeline",
            file_of("empty_pipeline.ini")
        )),
        "{e}"
    );
}

#[test]
fn case44_call_in_filter_app_is_a_clear_error() {
    let e = err_of(deploy::load_app(&uri("call_filter_app.ini"), None, &none()));
    assert!(
        e.contains("call_filter_app.ini:2: [filter-app:main]") && e.contains("names Python code"),
        "{e}"
    );
}

#[test]
fn case45_circular_use_prints_the_cycle() {
    let e = err_of(deploy::load_app(&uri("circular.ini"), None, &none()));
    assert!(
        e.contains("circular use: [app:a] (")
            && e.contains("→ [app:b] (")
            && e.ends_with("→ [app:a]"),
        "{e}"
    );
    assert!(
        e.contains("circular.ini:8: [app:b]"),
        "the error points at the use that closes the cycle: {e}"
    );
}

#[test]
fn case49_fragment_names_app_and_server() {
    let d = Deployment::resolve(
        &format!("{}#alt", file_of("app_and_server.ini")),
        None,
        None,
        &none(),
    )
    .unwrap();
    assert_eq!(d.app.name, "alt");
    assert_eq!(
        d.server
            .as_ref()
            .unwrap()
            .build_server()
            .unwrap()
            .describe(),
        "foo=alt"
    );
    let d = Deployment::resolve(
        &format!("{}#alt", file_of("app_and_server.ini")),
        Some("main"),
        Some("main"),
        &none(),
    )
    .unwrap();
    assert_eq!(d.app.name, "main");
    assert_eq!(
        d.server
            .as_ref()
            .unwrap()
            .build_server()
            .unwrap()
            .describe(),
        "foo=main"
    );
}

// ---- section lookup, types, options -----------------------------------------------------

#[tokio::test]
async fn ambiguous_and_prefix_priority() {
    let e = err_of(deploy::load_app(
        &uri("ambiguous.ini"),
        Some("other"),
        &none(),
    ));
    assert!(
        e.contains("ambiguous section names [composite:other] (line 1), [pipeline:other] (line 4)"),
        "{e}"
    );
    // [app:main] silently beats [application:main] (same prefix group)
    assert_eq!(get(&load("ambiguous.ini", None)).await, "basic_app");
}

#[test]
fn use_looks_up_the_requesting_type() {
    let e = err_of(deploy::load_app(&uri("wrong_type.ini"), None, &none()));
    assert!(
        e.starts_with(&format!(
            "{}:2: [app:main] no section 'f'",
            file_of("wrong_type.ini")
        )),
        "{e}"
    );
}

#[test]
fn unknown_options_are_all_reported_with_lines() {
    let e = err_of(deploy::load_app(&uri("unknown_option.ini"), None, &none()));
    let f = file_of("unknown_option.ini");
    assert_eq!(
        e,
        format!(
            "{f}:4: [app:main] unknown option 'relm' for egg:FakeApp#strict (known: greeting, realm)\n\
             {f}:5: [app:main] unknown option 'colour' for egg:FakeApp#strict (known: greeting, realm)"
        )
    );
}

#[test]
fn spec_tree_shows_structure() {
    let spec = deploy::app_spec(&uri("test_filter.ini"), Some("piped"), &none()).unwrap();
    assert!(matches!(spec.node, Node::Pipeline { .. }));
    let j = spec.to_json();
    assert_eq!(j["kind"], "pipeline");
    assert_eq!(j["children"][0]["factory"], "FakeApp#caps");
    assert_eq!(j["children"][1]["section"], "app:normal");
    assert_eq!(j["children"][1]["line"], 1);
}

#[test]
fn missing_file_names_it() {
    let e = err_of(deploy::load_app("config:/nonexistent/x.ini", None, &none()));
    assert!(e.starts_with("/nonexistent/x.ini"), "{e}");
}

#[test]
fn percent_in_here_still_works() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("100%dir");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(
        d.join("c.ini"),
        "[app:main]\nuse = egg:FakeApp#configed\npath = %(here)s/data\n",
    )
    .unwrap();
    let c = deploy::app_config(
        &format!("config:{}", d.join("c.ini").display()),
        None,
        &none(),
    )
    .unwrap();
    assert_eq!(c.local_conf["path"], format!("{}/data", d.display()));
}

#[allow(dead_code)]
fn unused(_: ConfigErrors, _: Infallible, _: FactoryConf) {}

// ---- 39, 46, 47, 50 with the built-in apps ----------------------------------------------

#[tokio::test]
async fn case39_gzip() {
    use std::io::Read;
    let app = load("gzip.ini", None);
    let req = Request::builder()
        .uri("/")
        .header("accept-encoding", "gzip")
        .body(empty_body())
        .unwrap();
    let res = app
        .clone()
        .oneshot(req)
        .await
        .unwrap_or_else(|e| match e {});
    assert_eq!(res.headers()["content-encoding"], "gzip");
    assert_eq!(
        res.headers()["vary"],
        "accept-encoding",
        "Paste sends no Vary: a deliberate fix"
    );
    let len = res.headers().get("content-length").cloned();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    if let Some(len) = len {
        assert_eq!(
            len.to_str().unwrap(),
            body.len().to_string(),
            "Content-Length is the compressed size"
        );
    }
    let mut text = String::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_string(&mut text)
        .unwrap();
    assert!(text.starts_with("<html><body>hello"), "{text}");
    // HEAD: not compressed (the server never sends a HEAD body).
    let req = Request::builder()
        .method("HEAD")
        .uri("/")
        .header("accept-encoding", "gzip")
        .body(empty_body())
        .unwrap();
    let res = app.oneshot(req).await.unwrap_or_else(|e| match e {});
    assert!(res.headers().get("content-encoding").is_none());
}

#[test]
fn case46_http_urlmap_keys_cannot_be_written() {
    // ConfigParser splits `http://example.org/ = app` at the first ':': key `http`.
    let e = err_of(deploy::load_app(&uri("urlmap_http_key.ini"), None, &none()));
    assert!(
        e.starts_with(&format!(
            "{}:3: [composite:main] key 'http': a mount path must start with /",
            file_of("urlmap_http_key.ini")
        )),
        "{e}"
    );
}

#[tokio::test]
async fn case47_mixed_case_domains_match() {
    // Paste never matches a domain key with capitals; mapproxy-serve compares hosts
    // case-insensitively (a deliberate difference: see the README).
    let app = load("urlmap_mixed_case.ini", None);
    let req = Request::builder()
        .uri("/x")
        .header("host", "maps.example.org")
        .body(empty_body())
        .unwrap();
    assert_eq!(
        call(&app, req).await,
        (StatusCode::OK, "matched".to_string())
    );
}

#[test]
fn case50_logging_sees_command_line_values() {
    // paster serve did not pass command-line values to fileConfig; mapproxy-serve does.
    let tmp = tempfile::tempdir().unwrap();
    let file = mapproxy_serve::ini::IniFile::read(&dir().join("logging_vars.ini")).unwrap();
    let v = mapproxy_serve::ini::Vars {
        overrides: vars(&[("logdir", &tmp.path().display().to_string())]),
        ..Default::default()
    };
    let cfg = mapproxy_serve::logging::LoggingConfig::from_ini(&file, &v)
        .unwrap()
        .expect("has [loggers]");
    assert_eq!(cfg.files(), [tmp.path().join("app.log")]);
    let e = mapproxy_serve::logging::LoggingConfig::from_ini(&file, &Default::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("logging_vars.ini:19: [handler_file]") && e.contains("logdir"),
        "{e}"
    );
}

// ---- appconfig as Python's PasteDeploy 3.1 gives it --------------------------------------
//
// tests/fixtures/paste/expected.json is written by gen_expected.py (beside it) with Python's
// PasteDeploy 3.1: each case is appconfig's local_conf and global_conf, or the error it raised.

fn paste_expected(case: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(dir().join("expected.json")).unwrap();
    let all: serde_json::Value = serde_json::from_str(&text).unwrap();
    let v = all[case].clone();
    assert!(!v.is_null(), "no case {case} in expected.json");
    v
}

/// A dict of expected.json as a sorted map, `{dir}` replaced by the fixtures directory.
fn paste_dict(v: &serde_json::Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().replace("{dir}", &here())))
        .collect()
}

fn sorted(m: &IndexMap<String, String>) -> BTreeMap<String, String> {
    m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// Our appconfig of `name` in `file` is Paste's (case `case` of expected.json).
fn assert_appconfig_like_paste(case: &str, file: &str, name: &str, gconf: &[(&str, &str)]) {
    let want = paste_expected(case);
    let got = deploy::app_config(&uri(file), Some(name), &vars(gconf))
        .unwrap_or_else(|e| panic!("{case}: {e}"));
    assert_eq!(
        sorted(&got.local_conf),
        paste_dict(&want["local_conf"]),
        "{case}: local_conf"
    );
    assert_eq!(
        sorted(&got.global_conf),
        paste_dict(&want["global_conf"]),
        "{case}: global_conf"
    );
}

fn warnings_of(file: &str, gconf: &[(&str, &str)]) -> String {
    let (_, w) = deploy::app_config_with_warnings(&uri(file), None, &vars(gconf)).unwrap();
    w.iter()
        .map(ConfigError::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn set_and_get_in_default_act_in_every_section() {
    // `[DEFAULT] set x = 1` puts x in every global_conf, `get y = x` y in every local_conf;
    // the two keys themselves stay in global_conf, as every [DEFAULT] key does.
    assert_appconfig_like_paste("default_set_get_main", "default_set_get.ini", "main", &[]);
    assert_appconfig_like_paste("default_set_get_other", "default_set_get.ini", "other", &[]);
    // A pipeline takes no options, so the `get` Paste applies to it is an error there too.
    assert!(paste_expected("default_set_get_piped")["error"]
        .as_str()
        .unwrap()
        .contains("has extra (disallowed) settings: y"));
    let e = err_of(deploy::app_config(
        &uri("default_set_get.ini"),
        Some("piped"),
        &none(),
    ));
    assert!(
        e.contains("default_set_get.ini:4: [DEFAULT]")
            && e.contains("extra (disallowed) settings: y"),
        "{e}"
    );
}

#[tokio::test]
async fn set_in_default_reaches_the_factory() {
    let c = deploy::app_config(&uri("default_set_get.ini"), None, &none()).unwrap();
    assert_eq!(c.global_conf["x"], "1");
    assert_eq!(c.local_conf["y"], "1");
    // The app still builds (configed takes any option).
    let _ = load("default_set_get.ini", None);
}

#[test]
fn use_of_a_pipeline_keeps_the_extra_keys_in_appconfig() {
    assert_appconfig_like_paste("use_pipeline_extra", "use_pipeline_extra.ini", "main", &[]);
    let w = warnings_of("use_pipeline_extra.ini", &[]);
    assert!(
        w.contains("use_pipeline_extra.ini:1: [app:main] keys extra have no effect"),
        "{w}"
    );
}

#[test]
fn a_caller_value_drops_the_section_key_of_the_same_name() {
    // Paste: a key also in global_conf is a global option and leaves local_conf; inside
    // %(port)s the section's own port still wins.
    assert_appconfig_like_paste(
        "cli_shadows_key",
        "cli_shadows_key.ini",
        "main",
        &[("port", "9")],
    );
    let w = warnings_of("cli_shadows_key.ini", &[("port", "9")]);
    assert!(
        w.contains("cli_shadows_key.ini:3: [app:main] key 'port' is also given by the caller"),
        "{w}"
    );
}

#[test]
fn caller_values_beat_default_inside_interpolation_unlike_paste() {
    // The deliberate difference (README, "Differences from Paste Deploy"): Paste's %(http_port)s
    // sees [DEFAULT]'s 6543; ours sees the caller's 8080. global_conf is the same in both.
    let want = paste_expected("cli_wins_paste");
    assert_eq!(want["local_conf"]["port"], "6543");
    let got =
        deploy::app_config(&uri("cli_wins.ini"), None, &vars(&[("http_port", "8080")])).unwrap();
    assert_eq!(got.local_conf["port"], "8080");
    assert_eq!(sorted(&got.global_conf), paste_dict(&want["global_conf"]));
}

#[test]
fn an_includers_double_percent_is_interpolated_in_the_included_file() {
    // tmpl = %%(libdir)s/x in the outer file is %(libdir)s/x in its global_conf; the included
    // file's %(tmpl)s interpolates it again with its own libdir.
    assert_appconfig_like_paste("include_percent", "include_percent.ini", "main", &[]);
    let c = deploy::app_config(&uri("include_percent.ini"), None, &none()).unwrap();
    assert_eq!(c.local_conf["path"], "/inner/lib/x");
}

#[test]
fn a_key_shadowed_by_default_is_never_interpolated() {
    // `a = 100%` would be a bad interpolation, but [DEFAULT] shadows a: dropped unread.
    assert_appconfig_like_paste("shadow_bad_percent", "shadow_bad_percent.ini", "main", &[]);
    let w = warnings_of("shadow_bad_percent.ini", &[]);
    assert!(
        w.contains("shadow_bad_percent.ini:6: [app:main] key 'a' is also in [DEFAULT]"),
        "{w}"
    );
}

#[test]
fn appconfig_never_asks_the_factory() {
    // Unknown options, a urlmap key that is not a path, a value the factory refuses: Paste's
    // appconfig lists them; building (check, serve) refuses them.
    assert_appconfig_like_paste("unknown_option", "unknown_option.ini", "main", &[]);
    assert_appconfig_like_paste("urlmap_http_key", "urlmap_http_key.ini", "main", &[]);
    assert_appconfig_like_paste("appconfig_lenient", "appconfig_lenient.ini", "main", &[]);
    assert_appconfig_like_paste(
        "appconfig_bad_value",
        "appconfig_bad_value.ini",
        "main",
        &[],
    );
    assert!(deploy::load_app(&uri("unknown_option.ini"), None, &none()).is_err());
    assert!(deploy::load_app(&uri("urlmap_http_key.ini"), None, &none()).is_err());
    assert!(deploy::load_app(&uri("appconfig_bad_value.ini"), None, &none()).is_err());
    // What Paste's appconfig fails on still fails: an egg nobody registered.
    let e = err_of(deploy::app_config("egg:FakeApp#nosuch", None, &none()));
    assert!(e.contains("no factory egg:FakeApp#nosuch"), "{e}");
}

#[test]
fn appconfig_and_its_refusals_never_build_the_app() {
    use std::sync::atomic::Ordering::SeqCst;
    // Only this test uses FakeApp#counted.
    let (c, w) =
        deploy::app_config_with_warnings(&uri("appconfig_counted.ini"), None, &none()).unwrap();
    assert_eq!(c.local_conf, map(&[("greeting", "hi"), ("colour", "blue")]));
    assert!(w.is_empty(), "{w:?}");
    // What resolving finds: the option the factory does not declare, nothing about values.
    let refused: Vec<String> = deploy::app_refusals(&uri("appconfig_counted.ini"), None, &none())
        .iter()
        .map(ConfigError::to_string)
        .collect();
    assert_eq!(refused.len(), 1, "{refused:?}");
    assert!(
        refused[0].contains("appconfig_counted.ini:5: [app:main] unknown option 'colour'"),
        "{refused:?}"
    );
    let known = deploy::app_refusals(&uri("appconfig_counted.ini"), Some("known"), &none());
    assert!(known.is_empty(), "{known:?}");
    assert_eq!(
        COUNTED_BUILDS.load(SeqCst),
        0,
        "appconfig called the factory"
    );
    // Building calls it (the counter works), and it refuses the value.
    let e = err_of(deploy::load_app(
        &uri("appconfig_counted.ini"),
        Some("known"),
        &none(),
    ));
    assert!(e.contains("refused by the factory"), "{e}");
    assert_eq!(COUNTED_BUILDS.load(SeqCst), 1);
}

#[test]
fn a_set_in_the_same_file_neither_shadows_nor_interpolates_a_used_sections_key() {
    // `[app:main] set a = 1` + `use = base`: base's own `a` stays in its local_conf (only
    // [DEFAULT] and the values the file was loaded with shadow keys), and base's `%(a)s` does
    // not see the `set` (it changes global_conf, not the file's defaults).
    assert_appconfig_like_paste(
        "use_same_file_set_main",
        "use_same_file_set.ini",
        "main",
        &[],
    );
    assert!(warnings_of("use_same_file_set.ini", &[]).is_empty());
    let want = paste_expected("use_same_file_set_interp")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(want.contains("interpolation key 'a'"), "{want}");
    let e = err_of(deploy::app_config(
        &uri("use_same_file_set.ini"),
        Some("interp"),
        &none(),
    ));
    assert!(
        e.contains("use_same_file_set.ini:16: [app:interp_base] key 'b'") && e.contains("'%(a)s'"),
        "{e}"
    );
}

#[test]
fn an_includers_default_and_set_drop_the_included_sections_keys() {
    // The includer's [DEFAULT] `a` and its `set b` are in the global_conf the included file is
    // loaded with: its section's `a` and `b` leave local_conf, unread.
    assert_appconfig_like_paste("include_shadow", "include_shadow.ini", "main", &[]);
    let w = warnings_of("include_shadow.ini", &[]);
    for key in ["a", "b"] {
        assert!(
            w.contains(&format!(
                "[app:main] key '{key}' is also in the global_conf the including file passes"
            )),
            "{w}"
        );
    }
}

#[test]
fn use_of_a_filter_app_keeps_the_extra_keys_in_appconfig() {
    assert_appconfig_like_paste(
        "use_filter_app_extra",
        "use_filter_app_extra.ini",
        "main",
        &[],
    );
    let w = warnings_of("use_filter_app_extra.ini", &[]);
    assert!(
        w.contains("use_filter_app_extra.ini:1: [app:main] keys extra have no effect"),
        "{w}"
    );
}

#[test]
fn an_includers_value_is_interpolated_only_where_the_included_file_uses_it_unlike_paste() {
    // The deliberate difference (README): Paste interpolates every value the includer passes
    // in the included file's [DEFAULT], used or not, so an unused `%%(nothing)s` or `100%%`
    // of the includer fails there. Ours interpolates them where they are used.
    let want = paste_expected("include_unused_percent")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(want.contains("interpolation key 'nothing'"), "{want}");
    let got = deploy::app_config(&uri("include_unused_percent.ini"), None, &none()).unwrap();
    assert_eq!(got.local_conf, map(&[("k", "v")]));
    assert_eq!(got.global_conf["tmpl"], "%(nothing)s/x");
    assert_eq!(got.global_conf["pct"], "100%");
}

#[test]
fn caller_values_are_used_literally_unlike_paste() {
    // The deliberate difference (README): Paste puts the caller's values among the file's
    // defaults and interpolates them, so `v=100%` fails; ours are used as they are.
    let want = paste_expected("cli_percent")["error"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(want.starts_with("InterpolationSyntaxError"), "{want}");
    let got = deploy::app_config(&uri("cli_percent.ini"), None, &vars(&[("v", "100%")])).unwrap();
    assert_eq!(got.local_conf, map(&[("keep", "k")]));
    assert_eq!(got.global_conf["v"], "100%");
}

#[test]
fn an_includers_default_set_and_get_act_again_in_the_included_file() {
    // The includer's `[DEFAULT] set x`/`get y` keys are in the global_conf the included file is
    // loaded with, so they act in its sections too: the included pipeline refuses the `get`.
    assert_appconfig_like_paste("include_set_get_other", "include_set_get.ini", "other", &[]);
    assert!(paste_expected("include_set_get_piped")["error"]
        .as_str()
        .unwrap()
        .contains("has extra (disallowed) settings: y"));
    let e = err_of(deploy::app_config(
        &uri("include_set_get.ini"),
        None,
        &none(),
    ));
    assert!(
        e.contains("include_set_get_inner.ini:1: [pipeline:piped]")
            && e.contains("extra (disallowed) settings: y"),
        "{e}"
    );
}
