//! One table of requests and the lines they log, each case run through the Tower layer
//! ([`AccessLogLayer`] over the app as a Tower service) and through the filter the
//! `translogger` factory builds (its sink is the runtime's line logger, captured here).

use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Frame;
use http_body_util::{BodyExt, StreamBody};
use tower::{Layer, ServiceExt};

use mapproxy_serve_core::app::{app_fn, box_response, empty_body, full_body, App, Body};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::environ::{MountPath, RemoteAddr, RemoteUser};
use mapproxy_serve_core::logline::{set_line_logger, LineLogger};

use super::{build, AccessLogLayer, AccessLogSink, LogFormat};

/// One request and the line it logs.
struct Case {
    name: &'static str,
    /// The `format` option; `None` for the default (Apache's combined format).
    format: Option<&'static str>,
    request: fn() -> Request<Body>,
    app: fn() -> App,
    /// Read the body to its end (else the response is dropped unread).
    read: bool,
    /// The body, when read.
    body: &'static str,
    /// The line: `*` stands for any text, `#` for one or more digits.
    line: &'static str,
}

const CASES: &[Case] = &[
    Case {
        name: "combined format, a streamed body, the user from the response",
        format: None,
        request: || {
            let mut r = Request::builder()
                .uri("/a%20b/c?x=1")
                .header("user-agent", "UA \"q\"")
                .body(empty_body())
                .unwrap();
            r.extensions_mut()
                .insert(RemoteAddr("1.2.3.4:5".parse().unwrap()));
            r.extensions_mut().insert(MountPath("/maps".into()));
            r
        },
        app: || {
            app_fn(|_req| async {
                let chunks = vec![
                    Ok::<_, Infallible>(Frame::data(Bytes::from_static(b"hello "))),
                    Ok(Frame::data(Bytes::from_static(b"world"))),
                ];
                let body = StreamBody::new(futures_util::stream::iter(chunks));
                let mut res = box_response(Response::new(body));
                res.extensions_mut().insert(RemoteUser("alice".into()));
                *res.status_mut() = StatusCode::CREATED;
                res
            })
        },
        read: true,
        body: "hello world",
        line: r#"1.2.3.4 - alice [*] "GET /maps/a%20b/c?x=1 HTTP/1.1" 201 11 "-" "UA \"q\"""#,
    },
    Case {
        name: "a body dropped unread: logged once, no bytes",
        format: Some("%(REMOTE_ADDR)s %(status)s %(bytes)s %(duration_ms)s"),
        request: || get("/"),
        app: || app_fn(|_req| async { Response::new(full_body("abc")) }),
        read: false,
        body: "",
        line: "- 200 - #",
    },
    Case {
        name: "an empty body: logged once, no bytes",
        format: Some("%(REMOTE_ADDR)s %(status)s %(bytes)s %(duration_ms)s"),
        request: || get("/"),
        app: || app_fn(|_req| async { Response::new(full_body(Bytes::new())) }),
        read: true,
        body: "",
        line: "- 200 - #",
    },
    Case {
        // More early runs than are kept inline, a mount path, a header sent twice (the
        // first counts), and escaping in the early text.
        name: "early and late fields interleaved, in format order",
        format: Some(
            "%(SCRIPT_NAME)s|%(PATH_INFO)s|%(QUERY_STRING)s %(status)s %(HTTP_X_A)s \
             %(REMOTE_USER)s %(HTTP_X_B)s %(bytes)s [%(HTTP_X_C)s] %(REMOTE_ADDR)s \
             %(REQUEST_METHOD)s %(HTTP_VERSION)s %(duration_us)s end",
        ),
        request: || {
            let mut r = Request::builder()
                .uri("/p%20q?x=1")
                .header("x-b", "say \"hi\"")
                .header("x-a", "one")
                .header("x-a", "two")
                .header("x-c", "t\u{e9}")
                .body(empty_body())
                .unwrap();
            r.extensions_mut().insert(MountPath("/m".into()));
            r.extensions_mut()
                .insert(RemoteAddr("[::1]:5".parse().unwrap()));
            r
        },
        app: || app_fn(|_req| async { Response::new(full_body("abc")) }),
        read: true,
        body: "abc",
        line: r#"/m|/p%20q|x=1 200 one - say \"hi\" 3 [t\xc3\xa9] ::1 GET HTTP/1.1 # end"#,
    },
    Case {
        name: "an app that answers later, behind basic auth naming the user",
        format: Some("%(REMOTE_USER)s %(REQUEST_URI)s %(status)s %(bytes)s"),
        request: || {
            Request::builder()
                .uri("/a?b=1")
                .header("authorization", "Basic YW5uOnB3") // ann:pw
                .body(empty_body())
                .unwrap()
        },
        app: slow_app_behind_auth,
        read: true,
        body: "later",
        line: "ann /a?b=1 200 5",
    },
    Case {
        name: "refused by the inner basic auth: the 401, without a user",
        format: Some("%(REMOTE_USER)s %(REQUEST_URI)s %(status)s %(bytes)s"),
        request: || get("/x"),
        app: slow_app_behind_auth,
        read: false,
        body: "",
        line: "- /x 401 -",
    },
];

fn get(uri: &str) -> Request<Body> {
    Request::builder().uri(uri).body(empty_body()).unwrap()
}

/// An app that answers `later` after yielding once (a boxed future), behind basic auth
/// accepting `ann:pw`.
fn slow_app_behind_auth() -> App {
    let slow = app_fn(|_req| async {
        tokio::task::yield_now().await;
        Response::new(full_body("later"))
    });
    let auth = crate::basic_auth::build(
        &FactoryConf::from_pairs("Paste#auth_basic", [("users", "ann:pw")]),
        &mut BuildContext::current(),
    )
    .unwrap();
    auth(slow)
}

/// Lines given to a sink.
#[derive(Default)]
struct Lines(Mutex<Vec<String>>);

impl AccessLogSink for Lines {
    fn write(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

/// The runtime's line logger, for the factory-built filter: lines by logger name.
struct Captured(Mutex<Vec<(String, String)>>);

impl LineLogger for Captured {
    fn log_line(&self, name: &str, _levelno: u32, line: &str) -> bool {
        self.0
            .lock()
            .unwrap()
            .push((name.to_string(), line.to_string()));
        true
    }
}

static CAPTURED: Captured = Captured(Mutex::new(Vec::new()));

fn captured(name: &str) -> Vec<String> {
    let lines = CAPTURED.0.lock().unwrap();
    lines
        .iter()
        .filter(|(n, _)| n == name)
        .map(|(_, l)| l.clone())
        .collect()
}

/// `line` matches `pattern`: `*` stands for any text, `#` for one or more digits.
fn matches(pattern: &[u8], line: &[u8]) -> bool {
    match pattern.split_first() {
        None => line.is_empty(),
        Some((b'*', rest)) => (0..=line.len()).any(|i| matches(rest, &line[i..])),
        Some((b'#', rest)) => {
            let digits = line.iter().take_while(|b| b.is_ascii_digit()).count();
            (1..=digits).any(|i| matches(rest, &line[i..]))
        }
        Some((c, rest)) => line.first() == Some(c) && matches(rest, &line[1..]),
    }
}

/// The response's body read to its end, or the response dropped unread; `lines` must be
/// empty until then, and hold the one line of `case` after.
async fn finish(case: &Case, path: &str, res: Response<Body>, lines: impl Fn() -> Vec<String>) {
    let what = format!("{} ({path})", case.name);
    assert!(lines().is_empty(), "{what}: written before the body");
    if case.read {
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(&body[..], case.body.as_bytes(), "{what}");
    } else {
        drop(res);
    }
    let lines = lines();
    assert_eq!(lines.len(), 1, "{what}: {lines:?}");
    assert!(
        matches(case.line.as_bytes(), lines[0].as_bytes()),
        "{what}: {:?} is not {:?}",
        lines[0],
        case.line
    );
}

#[tokio::test]
async fn every_case_through_the_layer_and_the_factory() {
    set_line_logger(&CAPTURED);
    for (i, case) in CASES.iter().enumerate() {
        // The Tower layer, over the app as a Tower service.
        let lines = Arc::new(Lines::default());
        let format = match case.format {
            Some(f) => LogFormat::parse(f).unwrap(),
            None => LogFormat::default(),
        };
        let svc = AccessLogLayer::new(format, lines.clone()).layer((case.app)());
        let res = svc.oneshot((case.request)()).await.unwrap();
        finish(case, "layer", box_response(res), || {
            lines.0.lock().unwrap().clone()
        })
        .await;

        // The filter the factory builds, around the app.
        let logger = format!("table.case{i}");
        let mut options = vec![
            ("logger_name", logger.as_str()),
            ("setup_console_handler", "false"),
        ];
        if let Some(f) = case.format {
            options.push(("format", f));
        }
        let conf = FactoryConf::from_pairs("Paste#translogger", options);
        let filter = build(&conf, &mut BuildContext::current()).unwrap();
        let res = filter((case.app)()).call((case.request)()).await;
        finish(case, "factory", res, || captured(&logger)).await;
    }
}

#[test]
fn the_line_patterns_match_as_documented() {
    assert!(matches(b"a * b", b"a x] y b"));
    assert!(matches(b"- 200 - #", b"- 200 - 17"));
    assert!(!matches(b"- 200 - #", b"- 200 - "));
    assert!(!matches(b"- 200 - #", b"- 200 - 1x"));
    assert!(!matches(b"abc", b"abcd"));
}

/// A Tower service that fails: no response, the line is written at once with status 500.
#[tokio::test]
async fn a_failed_service_is_logged_as_500() {
    let lines = Arc::new(Lines::default());
    let format = LogFormat::parse("%(REQUEST_URI)s %(status)s %(bytes)s").unwrap();
    let svc = tower::service_fn(|_req: Request<()>| async {
        Err::<Response<Body>, _>(std::io::Error::other("down"))
    });
    let res = AccessLogLayer::new(format, lines.clone())
        .layer(svc)
        .oneshot(Request::builder().uri("/f").body(()).unwrap())
        .await;
    assert!(res.is_err());
    assert_eq!(*lines.0.lock().unwrap(), vec!["/f 500 -".to_string()]);
}
