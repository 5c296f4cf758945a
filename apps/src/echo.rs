//! `egg:mapproxy-serve#echo`: answers every request with a JSON description of it, as the app
//! sees it after all filters and mounts. For debugging deployments and for tests.
//!
//! ```ini
//! [app:main]
//! use = egg:mapproxy-serve#echo
//! any_key = is echoed in local_conf
//! ```
//!
//! The answer (`application/json`) has exactly these keys:
//!
//! | key | value |
//! |---|---|
//! | `method` | the request method |
//! | `script_name` | the mount path (`SCRIPT_NAME`), `""` at the root |
//! | `path_info` | the path below the mount ([`environ::path_info`]; percent-encoded as in the URI, `""` when a mount consumed the whole path) |
//! | `query` | the raw query string, `""` if none |
//! | `scheme`, `host` | the public scheme and host ([`environ::public_url`]) |
//! | `remote_addr` | the client IP ([`environ::RemoteAddr`]), or `null` |
//! | `remote_user` | the authenticated user ([`environ::RemoteUser`]), or `null` |
//! | `headers` | an object of lower-case names; repeated headers joined with `", "` |
//! | `body_length` | the number of request body bytes read |
//! | `local_conf`, `global_conf` | the section's options, as the factory got them |
//!
//! A body over 16 MiB, or over the server's limit, gets 413; a body that fails to arrive 400.
//!
//! Test options (set in the ini only; a request can never turn them on). They are echoed in
//! `local_conf` like any other key:
//!
//! - `panic_path`: a request whose `path_info` is exactly this panics, to test how the server
//!   answers a crashing app (500 for that request, the next one is served).
//! - `slow_path`, `slow_seconds` (default 1): a request whose `path_info` is exactly
//!   `slow_path` is answered after sleeping `slow_seconds`, to test graceful shutdown and
//!   reload with requests in flight. It logs `slow_path PATH: answering in ...` (INFO, target
//!   `mapproxy_serve.apps.echo`) when the sleep starts.
//!
//! ```
//! use http::Request;
//! use http_body_util::BodyExt;
//! use mapproxy_serve_apps::echo;
//! use mapproxy_serve_core::{app::full_body, build::BuildContext, config::FactoryConf};
//! use tower::ServiceExt;
//!
//! let app = echo::build(&FactoryConf::from_pairs("mapproxy-serve#echo", [("a", "1")]), &mut BuildContext::current()).unwrap();
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let res = rt.block_on(app.oneshot(Request::post("/x?y").body(full_body("hi")).unwrap())).unwrap();
//! let body = rt.block_on(res.into_body().collect()).unwrap().to_bytes();
//! let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
//! assert_eq!(v["body_length"], 2);
//! assert_eq!(v["local_conf"]["a"], "1");
//! ```

use std::sync::Arc;

use http::{header, HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Map, Value};

use mapproxy_serve_core::app::{app_fn, full_body, text_response, App, Body};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::environ::{self, RemoteUser};
use mapproxy_serve_core::error::ConfigErrors;
use mapproxy_serve_core::registry::Opt;

/// The largest request body the echo app reads.
pub const MAX_BODY: usize = 16 * 1024 * 1024;

/// The options the echo app reads itself (any other key is only echoed).
pub const OPTIONS: &[Opt] = &[
    Opt::new(
        "panic_path",
        "tests: a request to exactly this path_info panics (ini only)",
    ),
    Opt::new(
        "slow_path",
        "tests: a request to exactly this path_info answers after slow_seconds (ini only)",
    ),
    Opt::new(
        "slow_seconds",
        "tests: how long slow_path sleeps (default 1)",
    ),
];

/// The test behaviours set by the ini.
#[derive(Debug, Default)]
struct Testing {
    panic_path: Option<String>,
    slow: Option<(String, std::time::Duration)>,
}

fn testing(conf: &FactoryConf) -> Result<Testing, ConfigErrors> {
    let path = |key: &str| conf.get(key).map(str::trim).filter(|p| !p.is_empty());
    let slow = conf
        .get_seconds("slow_seconds", 0.0..=3600.0)?
        .unwrap_or(std::time::Duration::from_secs(1));
    Ok(Testing {
        panic_path: path("panic_path").map(str::to_string),
        slow: path("slow_path").map(|p| (p.to_string(), slow)),
    })
}

/// Build the echo app; `local_conf` and `global_conf` are captured for the answer.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
    let testing = Arc::new(testing(conf)?);
    let local: Map<String, Value> = conf
        .local
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.value.clone())))
        .collect();
    let global: Map<String, Value> = conf
        .global
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    let confs = Arc::new((Value::Object(local), Value::Object(global)));
    Ok(app_fn(move |req| {
        echo(req, Arc::clone(&confs), Arc::clone(&testing))
    }))
}

async fn echo(
    req: Request<Body>,
    confs: Arc<(Value, Value)>,
    testing: Arc<Testing>,
) -> Response<Body> {
    let path = environ::path_info(&req);
    if testing.panic_path.as_deref() == Some(path) {
        panic!("echo: panic_path {path} was requested");
    }
    if let Some((_, secs)) = testing.slow.as_ref().filter(|(p, _)| *p == path) {
        // Tests wait for this line to know the request is in flight.
        log::info!(target: "mapproxy_serve.apps.echo", "slow_path {path}: answering in {secs:?}");
        tokio::time::sleep(*secs).await;
    }
    let too_large = || {
        text_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "text/plain; charset=utf-8",
            "413 Request Entity Too Large\r\n",
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let (parts, mut body) = req.into_parts();
    // Read (and count) the whole body without keeping it.
    let mut body_length = 0usize;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(frame) => {
                body_length += frame.data_ref().map_or(0, |d| d.len());
                if body_length > MAX_BODY {
                    return too_large();
                }
            }
            // The server's body limit (`max_request_body_size`) passed mid-stream.
            Err(e) if e.is::<http_body_util::LengthLimitError>() => return too_large(),
            Err(e) => {
                log::debug!(target: "mapproxy_serve.apps.echo", "request body failed: {e}");
                return text_response(
                    StatusCode::BAD_REQUEST,
                    "text/plain; charset=utf-8",
                    "400 Bad Request\r\n",
                );
            }
        }
    }
    let req = Request::from_parts(parts, ());

    let mut headers = Map::new();
    for name in req.headers().keys() {
        let joined = req
            .headers()
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()))
            .collect::<Vec<_>>()
            .join(", ");
        headers.insert(name.as_str().to_string(), Value::String(joined));
    }
    let public = environ::public_url(&req);
    let mut out = Map::new();
    out.insert("method".into(), req.method().as_str().into());
    out.insert("script_name".into(), environ::mount_path(&req).into());
    out.insert("path_info".into(), environ::path_info(&req).into());
    out.insert("query".into(), req.uri().query().unwrap_or("").into());
    out.insert("scheme".into(), public.scheme.into());
    out.insert("host".into(), public.host.into());
    out.insert(
        "remote_addr".into(),
        environ::remote_ip(&req).map_or(Value::Null, |ip| ip.to_string().into()),
    );
    out.insert(
        "remote_user".into(),
        req.extensions()
            .get::<RemoteUser>()
            .map_or(Value::Null, |u| u.0.clone().into()),
    );
    out.insert("headers".into(), Value::Object(headers));
    out.insert("body_length".into(), body_length.into());
    out.insert("local_conf".into(), confs.0.clone());
    out.insert("global_conf".into(), confs.1.clone());

    let mut json = serde_json::to_vec_pretty(&Value::Object(out)).unwrap_or_default();
    json.push(b'\n');
    let mut res = Response::new(full_body(json));
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use bytes::Bytes;
    use http_body_util::StreamBody;
    use tower::ServiceExt;

    use super::*;
    use mapproxy_serve_core::app::{box_body, empty_body};
    use mapproxy_serve_core::environ::{EmptyPathInfo, MountPath, PublicUrl, RemoteAddr};

    async fn call(app: &App, req: Request<Body>) -> (StatusCode, Option<String>, Bytes) {
        let res = app.clone().oneshot(req).await.expect("infallible");
        let status = res.status();
        let ct = res
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string());
        (
            status,
            ct,
            res.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    async fn json(app: &App, req: Request<Body>) -> Value {
        let (status, ct, body) = call(app, req).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(ct.as_deref(), Some("application/json"));
        serde_json::from_slice(&body).unwrap()
    }

    fn echo_app() -> App {
        let mut conf = FactoryConf::from_pairs("mapproxy-serve#echo", [("b", "2"), ("a", "1")]);
        conf.global.insert("here".into(), "/etc".into());
        build(&conf, &mut BuildContext::current()).unwrap()
    }

    #[tokio::test]
    async fn describes_the_request() {
        let mut req = Request::post("/x/y%20z?q=1&r")
            .header("host", "example.org:8080")
            .header("x-multi", "one")
            .header("X-Multi", "two")
            .body(full_body("hello"))
            .unwrap();
        req.extensions_mut().insert(MountPath("/mnt".into()));
        req.extensions_mut()
            .insert(RemoteAddr(SocketAddr::from(([192, 0, 2, 7], 5555))));
        req.extensions_mut().insert(RemoteUser("alice".into()));
        let v = json(&echo_app(), req).await;
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "method",
                "script_name",
                "path_info",
                "query",
                "scheme",
                "host",
                "remote_addr",
                "remote_user",
                "headers",
                "body_length",
                "local_conf",
                "global_conf"
            ]
        );
        assert_eq!(v["method"], "POST");
        assert_eq!(v["script_name"], "/mnt");
        assert_eq!(v["path_info"], "/x/y%20z");
        assert_eq!(v["query"], "q=1&r");
        assert_eq!(v["scheme"], "http");
        assert_eq!(v["host"], "example.org:8080");
        assert_eq!(v["remote_addr"], "192.0.2.7");
        assert_eq!(v["remote_user"], "alice");
        assert_eq!(v["headers"]["x-multi"], "one, two");
        assert_eq!(v["headers"]["host"], "example.org:8080");
        assert_eq!(v["body_length"], 5);
        assert_eq!(v["local_conf"], serde_json::json!({"b": "2", "a": "1"}));
        let local_keys: Vec<_> = v["local_conf"].as_object().unwrap().keys().collect();
        assert_eq!(local_keys, ["b", "a"]);
        assert_eq!(v["global_conf"], serde_json::json!({"here": "/etc"}));
    }

    #[tokio::test]
    async fn defaults_when_nothing_is_set() {
        let mut req = Request::get("/").body(empty_body()).unwrap();
        req.extensions_mut().insert(EmptyPathInfo);
        req.extensions_mut().insert(PublicUrl {
            scheme: "https".into(),
            host: "pub.example".into(),
        });
        let v = json(&echo_app(), req).await;
        assert_eq!(v["script_name"], "");
        assert_eq!(v["path_info"], "");
        assert_eq!(v["query"], "");
        assert_eq!(v["scheme"], "https");
        assert_eq!(v["host"], "pub.example");
        assert_eq!(v["remote_addr"], Value::Null);
        assert_eq!(v["remote_user"], Value::Null);
        assert_eq!(v["headers"], serde_json::json!({}));
        assert_eq!(v["body_length"], 0);
    }

    #[tokio::test]
    async fn large_bodies_get_413() {
        let app = echo_app();
        // Declared too large: refused before reading.
        let req = Request::put("/")
            .header(header::CONTENT_LENGTH, (MAX_BODY + 1).to_string())
            .body(empty_body())
            .unwrap();
        assert_eq!(call(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        // Streamed without a length: refused once the limit is passed.
        let chunk = Bytes::from(vec![b'x'; 1024 * 1024]);
        let chunks = (0..17)
            .map(move |_| Ok::<_, std::convert::Infallible>(http_body::Frame::data(chunk.clone())));
        let body = box_body(StreamBody::new(futures_util::stream::iter(chunks)));
        let req = Request::put("/").body(body).unwrap();
        assert_eq!(call(&app, req).await.0, StatusCode::PAYLOAD_TOO_LARGE);
        // Exactly the limit is fine.
        let req = Request::put("/")
            .body(full_body(vec![0u8; MAX_BODY]))
            .unwrap();
        assert_eq!(json(&app, req).await["body_length"], MAX_BODY);
    }

    #[tokio::test]
    async fn server_body_limit_gets_413() {
        // The server wraps request bodies in `Limited`, whose error is `LengthLimitError`.
        let body = box_body(http_body_util::Limited::new(full_body("abc"), 2));
        let req = Request::post("/").body(body).unwrap();
        assert_eq!(
            call(&echo_app(), req).await.0,
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[tokio::test]
    async fn broken_body_gets_400() {
        let chunks = [
            Ok(http_body::Frame::data(Bytes::from_static(b"ab"))),
            Err(mapproxy_serve_core::app::BoxError::from("connection reset")),
        ];
        let body = box_body(StreamBody::new(futures_util::stream::iter(chunks)));
        let req = Request::post("/").body(body).unwrap();
        assert_eq!(call(&echo_app(), req).await.0, StatusCode::BAD_REQUEST);
    }

    #[tokio::test]
    async fn panic_path_and_slow_path_are_ini_only() {
        let conf = FactoryConf::from_pairs(
            "mapproxy-serve#echo",
            [
                ("panic_path", "/boom"),
                ("slow_path", "/slow"),
                ("slow_seconds", "0.2"),
            ],
        );
        let app = build(&conf, &mut BuildContext::current()).unwrap();
        // Other paths, also below or next to them, are echoed as usual.
        for p in ["/", "/boom/x", "/slo", "/slow/"] {
            let req = Request::get(p).body(empty_body()).unwrap();
            assert_eq!(json(&app, req).await["local_conf"]["panic_path"], "/boom");
        }
        let started = std::time::Instant::now();
        let req = Request::get("/slow?x").body(empty_body()).unwrap();
        assert_eq!(json(&app, req).await["path_info"], "/slow");
        assert!(started.elapsed() >= std::time::Duration::from_millis(200));
        let req = Request::get("/boom").body(empty_body()).unwrap();
        let task = tokio::spawn(app.oneshot(req));
        assert!(task.await.unwrap_err().is_panic());
    }

    #[test]
    fn slow_seconds_errors_name_the_key() {
        let conf = FactoryConf::from_pairs("mapproxy-serve#echo", [("slow_seconds", "soon")]);
        let e = build(&conf, &mut BuildContext::current())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("key 'slow_seconds'"), "{e}");
        let conf = FactoryConf::from_pairs("mapproxy-serve#echo", [("slow_seconds", "-1")]);
        let e = build(&conf, &mut BuildContext::current())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("key 'slow_seconds'"), "{e}");
    }

    #[test]
    fn registered() {
        let f = mapproxy_serve_core::registry::registry()
            .find("mapproxy-serve#echo")
            .unwrap();
        assert_eq!(f.kind(), mapproxy_serve_core::registry::Kind::App);
        assert!(f.any_options);
        assert!(f.knows_option("panic_path") && f.knows_option("slow_seconds"));
    }
}
