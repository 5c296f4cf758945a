//! The HTTP server (`egg:mapproxy-serve#http`) over real sockets on 127.0.0.1 and in a tempdir.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use http::{Request, Response, StatusCode, Version};
use http_body_util::{BodyExt, Full, LengthLimitError};
use hyper_util::rt::TokioIo;
use mapproxy_serve::app::{app_fn, text_response, App, Body};
use mapproxy_serve::config::FactoryConf;
use mapproxy_serve::environ::{mount_path, public_url, remote_addr, PeerAddr};
use mapproxy_serve::registry::{registry, Build};
use mapproxy_serve::server::bind::BoundAddr;
use mapproxy_serve::server::http::HttpServer;
use mapproxy_serve::server::{ServeContext, ServeError, SharedApp};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const DEADLINE: Duration = Duration::from_secs(10);

struct Running {
    addrs: Vec<BoundAddr>,
    app: SharedApp,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), ServeError>>,
}

impl Running {
    fn tcp(&self) -> SocketAddr {
        self.addrs[0].tcp().expect("a tcp listener")
    }
    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.tcp())
    }
    async fn stop(self) {
        self.shutdown.cancel();
        let r = tokio::time::timeout(DEADLINE, self.handle)
            .await
            .expect("serve() returns after shutdown");
        r.expect("task").expect("serve ok");
    }
}

async fn start(pairs: &[(&str, &str)], app: App, debug: bool) -> Running {
    let mut all = vec![("port", "0")];
    all.extend_from_slice(pairs);
    if pairs
        .iter()
        .any(|(k, _)| *k == "unix_socket" || *k == "listen")
    {
        all.remove(0);
    }
    let conf = FactoryConf::from_pairs("mapproxy-serve#http", all);
    let server = HttpServer::from_conf(&conf).expect("valid conf");
    let bound = server.bind(&[]).await.expect("bind");
    let addrs = bound.local_addrs();
    let shared = SharedApp::new(app);
    let shutdown = CancellationToken::new();
    let ctx = ServeContext {
        app: shared.clone(),
        shutdown: shutdown.clone(),
        bind: vec![],
        debug,
    };
    let handle = tokio::spawn(bound.run(ctx));
    Running {
        addrs,
        app: shared,
        shutdown,
        handle,
    }
}

fn text(s: impl Into<Bytes>) -> Response<Body> {
    text_response(StatusCode::OK, "text/plain", s)
}

/// `/` hello, `/info` the request extensions, `/echo` the body, `/panic` (in the app's
/// future), `/panic-in-call` (in the app's `call`, before there is a future).
fn test_app() -> App {
    app_fn(|req: Request<Body>| {
        if req.uri().path() == "/panic-in-call" {
            panic!("kaboom in call");
        }
        test_response(req)
    })
}

async fn test_response(req: Request<Body>) -> Response<Body> {
    match req.uri().path() {
        "/info" => {
            let p = public_url(&req);
            let ext = req.extensions();
            text(format!(
                "path={} mount={} scheme={} host={} peer={:?} remote={:?}",
                req.uri().path(),
                mount_path(&req),
                p.scheme,
                p.host,
                ext.get::<PeerAddr>().map(|a| a.0.ip()),
                remote_addr(&req).map(|a| a.ip()),
            ))
        }
        "/echo" => match req.into_body().collect().await {
            Ok(b) => text(b.to_bytes()),
            // a careless app: any body error becomes 500 (the server turns it into 413)
            Err(e) => text_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain",
                e.to_string(),
            ),
        },
        "/careful" => match req.into_body().collect().await {
            Ok(b) => text(b.to_bytes()),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => text_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain",
                "too big, says the app",
            ),
            Err(_) => text_response(StatusCode::BAD_REQUEST, "text/plain", "bad body"),
        },
        "/panic" => panic!("kaboom in the app"),
        "/panic-body" => {
            let chunks = futures_util::stream::iter(0..3).map(|i| {
                if i == 2 {
                    panic!("kaboom in the body");
                }
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from_static(b"part ")))
            });
            Response::new(mapproxy_serve::app::box_body(
                http_body_util::StreamBody::new(chunks),
            ))
        }
        _ => text("hello"),
    }
}

fn const_app(s: &'static str) -> App {
    app_fn(move |_req| async move { text(s) })
}

/// One HTTP/1.1 connection driven by hyper's client, for "same connection" tests.
struct H1Conn {
    send: hyper::client::conn::http1::SendRequest<Full<Bytes>>,
}

impl H1Conn {
    async fn tcp(addr: SocketAddr) -> H1Conn {
        Self::over(TcpStream::connect(addr).await.expect("connect")).await
    }
    async fn over<S>(io: S) -> H1Conn
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        H1Conn { send }
    }
    async fn get(&mut self, path: &str) -> (StatusCode, String) {
        let req = Request::get(path)
            .header("host", "test.example")
            .body(Full::new(Bytes::new()))
            .expect("request");
        self.send.ready().await.expect("connection ready");
        let res = self.send.send_request(req).await.expect("response");
        let status = res.status();
        let body = res.into_body().collect().await.expect("body").to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    }
}

/// Read until EOF or error; true when the peer closed within `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
        }
    }
}

async fn raw_response(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    // the server may answer before the whole request is written
    let _ = s.write_all(request).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(DEADLINE, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_zero_http1_and_h2c() {
    let srv = start(&[("url_scheme", "https")], test_app(), false).await;
    assert_ne!(srv.tcp().port(), 0);

    let h1 = reqwest::Client::builder().http1_only().build().unwrap();
    let res = h1.get(srv.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), Version::HTTP_11);
    let server = res.headers()["server"].to_str().unwrap().to_string();
    assert!(server.starts_with("mapproxy-serve/"), "{server}");
    assert_eq!(res.text().await.unwrap(), "hello");

    let info = h1
        .get(srv.url("/info"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let host = srv.tcp().to_string();
    assert_eq!(
        info,
        format!("path=/info mount= scheme=https host={host} peer=Some(127.0.0.1) remote=Some(127.0.0.1)")
    );

    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2.get(srv.url("/info")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.version(), Version::HTTP_2);
    assert!(res.text().await.unwrap().contains(&format!("host={host}")));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_off_refuses_h2c() {
    let srv = start(&[("http2", "false"), ("ident", "")], test_app(), false).await;
    let h1 = reqwest::Client::new();
    let res = h1.get(srv.url("/")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().get("server").is_none());
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    // refused: an error, or (seen once under a loaded parallel test run) no answer at all
    let h2c = tokio::time::timeout(Duration::from_secs(5), h2.get(srv.url("/")).send()).await;
    assert!(!matches!(h2c, Ok(Ok(_))), "h2c was served: {h2c:?}");
    drop(h2);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_serves_and_is_removed() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("app.sock");
    let path_s = path.to_str().unwrap().to_string();
    let srv = start(
        &[("unix_socket", &path_s), ("unix_socket_perms", "660")],
        test_app(),
        false,
    )
    .await;
    assert_eq!(srv.addrs, vec![BoundAddr::Unix(path.clone())]);
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    let mut c = H1Conn::over(tokio::net::UnixStream::connect(&path).await.unwrap()).await;
    let (status, body) = c.get("/info").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("host=test.example peer=None remote=None"),
        "{body}"
    );
    drop(c);
    srv.stop().await;
    assert!(!path.exists(), "socket file removed on exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn url_prefix_mounts_and_404s_outside() {
    let srv = start(&[("url_prefix", "/maps/")], test_app(), false).await;
    let c = reqwest::Client::new();
    let body = c
        .get(srv.url("/maps/info?x=1"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(body.starts_with("path=/info mount=/maps "), "{body}");
    let res = c.get(srv.url("/mapsinfo")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    let res = c.get(srv.url("/other")).send().await.unwrap();
    assert_eq!(res.status(), 404);
    assert_eq!(
        c.get(srv.url("/maps"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "hello"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_header_gets_431() {
    let srv = start(&[], test_app(), false).await;
    let big = "a".repeat(100 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let res = raw_response(srv.tcp(), req.as_bytes()).await;
    assert!(
        res.starts_with("HTTP/1.1 431"),
        "{}",
        &res[..res.len().min(200)]
    );

    // HTTP/2 too
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let res = h2
        .get(srv.url("/"))
        .header("x-big", big.as_str())
        .send()
        .await;
    match res {
        Ok(r) => assert_eq!(r.status(), 431),
        Err(e) => panic!("h2 big header: {e}"),
    }
    // a normal request still works
    let res = reqwest::get(srv.url("/")).await.unwrap();
    assert_eq!(res.status(), 200);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_limit_413_with_content_length_and_chunked() {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    let inner = test_app();
    let app = app_fn(move |req: Request<Body>| {
        calls2.fetch_add(1, Ordering::SeqCst);
        let mut inner = inner.clone();
        async move {
            use tower::ServiceExt;
            match inner.ready().await {
                Ok(s) => match tower::Service::call(s, req).await {
                    Ok(r) => r,
                    Err(never) => match never {},
                },
                Err(never) => match never {},
            }
        }
    });
    let srv = start(&[("max_request_body_size", "1000")], app, false).await;
    let c = reqwest::Client::new();

    // Content-Length over the limit: 413, the app is not called
    let res = c
        .post(srv.url("/echo"))
        .body(vec![b'x'; 2000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    // under the limit: echoed
    let res = c
        .post(srv.url("/echo"))
        .body(vec![b'y'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.bytes().await.unwrap().len(), 1000);

    // chunked over the limit: the app's 500 becomes 413
    let chunks: Vec<Result<Vec<u8>, Infallible>> = (0..4).map(|_| Ok(vec![b'z'; 400])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = c.post(srv.url("/echo")).body(body).send().await.unwrap();
    assert_eq!(res.status(), 413);
    // a careful app answers 413 itself
    let chunks: Vec<Result<Vec<u8>, Infallible>> = (0..4).map(|_| Ok(vec![b'z'; 400])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = c.post(srv.url("/careful")).body(body).send().await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.text().await.unwrap(), "too big, says the app");
    // chunked under the limit
    let chunks: Vec<Result<Vec<u8>, Infallible>> = (0..2).map(|_| Ok(vec![b'z'; 400])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = c.post(srv.url("/echo")).body(body).send().await.unwrap();
    assert_eq!(res.status(), 200);

    // HTTP/2 without content-length
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let chunks: Vec<Result<Vec<u8>, Infallible>> = (0..4).map(|_| Ok(vec![b'z'; 400])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = h2.post(srv.url("/echo")).body(body).send().await.unwrap();
    assert_eq!(res.status(), 413);

    // An app that never reads the body (`/` answers hello): the server reads the rest before
    // it answers, as waitress reads whole bodies first; past the limit that is 413.
    let chunks: Vec<Result<Vec<u8>, Infallible>> = (0..4).map(|_| Ok(vec![b'z'; 400])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = c.post(srv.url("/")).body(body).send().await.unwrap();
    assert_eq!(res.status(), 413);
    assert_eq!(res.text().await.unwrap(), "Request body too large\n");
    let chunks: Vec<Result<Vec<u8>, Infallible>> = (0..4).map(|_| Ok(vec![b'z'; 400])).collect();
    let body = reqwest::Body::wrap_stream(futures_util::stream::iter(chunks));
    let res = h2.post(srv.url("/")).body(body).send().await.unwrap();
    assert_eq!(res.status(), 413);
    // under the limit the app's answer stands, and the connection serves the next request
    let mut raw = TcpStream::connect(srv.tcp()).await.unwrap();
    raw.write_all(
        b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
          190\r\n",
    )
    .await
    .unwrap();
    raw.write_all(&[b'z'; 400]).await.unwrap();
    raw.write_all(b"\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 4096];
    while String::from_utf8_lossy(&got).matches("hello").count() < 2 && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), raw.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => got.extend_from_slice(&buf[..n]),
            _ => break,
        }
    }
    let got = String::from_utf8_lossy(&got);
    assert_eq!(got.matches("HTTP/1.1 200 OK").count(), 2, "{got}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_slowloris_connections_close_within_header_timeout() {
    let srv = start(
        &[("header_read_timeout", "0.5"), ("channel_timeout", "60")],
        test_app(),
        false,
    )
    .await;
    // silent: connect, send nothing
    let t0 = Instant::now();
    let mut silent = TcpStream::connect(srv.tcp()).await.unwrap();
    assert!(closed_within(&mut silent, Duration::from_secs(5)).await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // slowloris: a header byte every 50 ms, never finished
    let t0 = Instant::now();
    let s = TcpStream::connect(srv.tcp()).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n").await;
        for _ in 0..200 {
            if wr.write_all(b"X").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    let mut buf = [0u8; 64];
    let r = tokio::time::timeout(Duration::from_secs(5), rd.read(&mut buf)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "slowloris connection not closed: {r:?}"
    );
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    writer.abort();

    // HTTP/2 prior knowledge preface, then silence
    let mut h2 = TcpStream::connect(srv.tcp()).await.unwrap();
    h2.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut h2, Duration::from_secs(5)).await);
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_outlives_header_timeout_and_idles_out_on_channel_timeout() {
    let srv = start(
        &[("header_read_timeout", "0.2"), ("channel_timeout", "1.5")],
        test_app(),
        false,
    )
    .await;
    let mut s = TcpStream::connect(srv.tcp()).await.unwrap();
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // idle longer than the header timeout: the connection stays open
    let t0 = Instant::now();
    assert!(!closed_within(&mut s, Duration::from_millis(600)).await);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let n = s.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // then idle past channel_timeout: closed
    let t1 = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(6)).await);
    let idle = t1.elapsed();
    assert!(
        idle >= Duration::from_millis(1300),
        "{idle:?} (t0 {:?})",
        t0.elapsed()
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_closed_on_channel_timeout() {
    let srv = start(
        &[("header_read_timeout", "5"), ("channel_timeout", "0.5")],
        test_app(),
        false,
    )
    .await;
    let mut s = TcpStream::connect(srv.tcp()).await.unwrap();
    s.write_all(b"POST /careful HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n0123456789")
        .await
        .unwrap();
    let t0 = Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "{took:?}"
    );
    // an app that is slow to answer is not cut
    srv.app.store(app_fn(|_req| async {
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_millis(1200) {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        text("slow but whole")
    }));
    let res = reqwest::get(srv.url("/")).await.unwrap();
    assert_eq!(res.text().await.unwrap(), "slow but whole");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_completes_the_request_in_flight() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
    let release = Arc::new(Notify::new());
    let release2 = release.clone();
    let app = app_fn(move |req: Request<Body>| {
        let started = started_tx.clone();
        let release = release2.clone();
        async move {
            if req.uri().path() == "/slow" {
                let _ = started.send(());
                release.notified().await;
                return text("slow done");
            }
            text("fast")
        }
    });
    let srv = start(&[("shutdown_timeout", "10")], app, false).await;
    let url = srv.url("/slow");
    let client = reqwest::Client::new();
    let slow = tokio::spawn(async move {
        let res = client.get(url).send().await?;
        let status = res.status();
        Ok::<_, reqwest::Error>((status, res.text().await?))
    });
    tokio::time::timeout(DEADLINE, started_rx.recv())
        .await
        .unwrap();
    srv.shutdown.cancel();
    // new connections are refused once the listener is closed
    let addr = srv.tcp();
    let deadline = Instant::now() + DEADLINE;
    loop {
        if TcpStream::connect(addr).await.is_err() {
            break;
        }
        assert!(Instant::now() < deadline, "still accepting after shutdown");
        tokio::task::yield_now().await;
    }
    assert!(!srv.handle.is_finished());
    release.notify_one();
    let (status, body) = tokio::time::timeout(DEADLINE, slow)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((status.as_u16(), body.as_str()), (200, "slow done"));
    let r = tokio::time::timeout(DEADLINE, srv.handle)
        .await
        .expect("serve returns");
    r.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_cuts_a_hung_request() {
    let (started_tx, mut started_rx) = mpsc::unbounded_channel::<()>();
    let app = app_fn(move |_req: Request<Body>| {
        let started = started_tx.clone();
        async move {
            let _ = started.send(());
            std::future::pending::<()>().await;
            text("never")
        }
    });
    let srv = start(&[("shutdown_timeout", "0.3")], app, false).await;
    let url = srv.url("/");
    let hung = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::timeout(DEADLINE, started_rx.recv())
        .await
        .unwrap();
    let t0 = Instant::now();
    srv.stop().await;
    assert!(t0.elapsed() < Duration::from_secs(5));
    assert!(hung.await.unwrap().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_gives_500_and_serving_goes_on() {
    let srv = start(&[], test_app(), false).await;
    let mut c = H1Conn::tcp(srv.tcp()).await;
    let (status, body) = c.get("/panic").await;
    assert_eq!(status, 500);
    assert_eq!(body, "Internal Server Error\n");
    let (status, body) = c.get("/").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "hello"));
    let (status, body) = c.get("/panic-in-call").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (500, "Internal Server Error\n")
    );
    let (status, body) = c.get("/").await;
    assert_eq!((status.as_u16(), body.as_str()), (200, "hello"));
    // a panic while streaming the body cuts that response; the server goes on
    // (hyper may not have flushed the head yet: the request or the body fails)
    let cut = match reqwest::get(srv.url("/panic-body")).await {
        Ok(res) => res.bytes().await.is_err(),
        Err(_) => true,
    };
    assert!(cut, "a response whose body panicked looked complete");
    let res = reqwest::get(srv.url("/")).await.unwrap();
    assert_eq!(res.text().await.unwrap(), "hello");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn debug_panic_body_shows_message_and_backtrace() {
    let srv = start(&[], test_app(), true).await;
    let res = reqwest::get(srv.url("/panic")).await.unwrap();
    assert_eq!(res.status(), 500);
    let body = res.text().await.unwrap();
    assert!(body.contains("panic: kaboom in the app"), "{body}");
    assert!(body.contains("http_server.rs"), "location: {body}");
    assert!(
        body.contains("backtrace:\n") && !body.contains("(not captured)"),
        "{body}"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_makes_extra_connections_wait() {
    let srv = start(&[("connection_limit", "1")], test_app(), false).await;
    let mut a = H1Conn::tcp(srv.tcp()).await;
    assert_eq!(a.get("/").await.0, 200);
    // b connects (the kernel backlog takes it) but is not served while a is open
    let mut b = TcpStream::connect(srv.tcp()).await.unwrap();
    b.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let early = tokio::time::timeout(Duration::from_millis(300), b.read(&mut buf)).await;
    assert!(early.is_err(), "second connection served past the limit");
    drop(a);
    let n = tokio::time::timeout(DEADLINE, b.read(&mut buf))
        .await
        .expect("served once a slot is free")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_app_swap_reaches_open_keep_alive_connections() {
    let srv = start(&[], const_app("gen1"), false).await;
    let mut c = H1Conn::tcp(srv.tcp()).await;
    assert_eq!(c.get("/").await.1, "gen1");
    srv.app.store(const_app("gen2"));
    assert_eq!(c.get("/").await.1, "gen2");
    // and on HTTP/2
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    assert_eq!(
        h2.get(srv.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "gen2"
    );
    srv.app.store(const_app("gen3"));
    assert_eq!(
        h2.get(srv.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "gen3"
    );
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn factory_serves_through_the_server_trait() {
    let f = registry()
        .find("egg:waitress#main".trim_start_matches("egg:"))
        .expect("registered");
    let Build::Server(build) = f.build else {
        panic!("not a server factory")
    };
    let conf = FactoryConf::from_pairs("waitress#main", [("port", "0"), ("threads", "4")]);
    let server = build(&conf).expect("builds");
    assert_eq!(server.worker_threads(), Some(4));
    assert_eq!(server.describe(), "http (HTTP/1.1, h2c) on 127.0.0.1:0");
    // -b overrides the section's address; the serving line goes to stderr
    let shutdown = CancellationToken::new();
    let ctx = ServeContext {
        app: SharedApp::new(const_app("via trait")),
        shutdown: shutdown.clone(),
        bind: vec!["127.0.0.1:0".into()],
        debug: false,
    };
    let h = tokio::spawn(server.serve(ctx));
    shutdown.cancel();
    tokio::time::timeout(DEADLINE, h)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    let bad = FactoryConf::from_pairs("Paste#http", [("port", "eighty")]);
    let e = build(&bad).err().expect("error").to_string();
    assert!(e.contains("key 'port'") && e.contains("eighty"), "{e}");
    let ctx = ServeContext {
        app: SharedApp::new(const_app("x")),
        shutdown: CancellationToken::new(),
        bind: vec!["nope:".into()],
        debug: false,
    };
    let server = build(&conf).unwrap();
    let e = server.serve(ctx).await.unwrap_err().to_string();
    assert!(e.contains("--bind nope:"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_error_names_the_address_and_os_error() {
    let srv = start(&[], test_app(), false).await;
    let port = srv.tcp().port().to_string();
    let conf = FactoryConf::from_pairs("mapproxy-serve#http", [("port", port.as_str())]);
    let e = HttpServer::from_conf(&conf)
        .unwrap()
        .bind(&[])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains(&format!("127.0.0.1:{port}")) && e.to_lowercase().contains("in use"),
        "{e}"
    );
    srv.stop().await;
}

/// An app whose `/big` body is endless 256 KiB chunks (the size the static file app reads),
/// counting the chunks it produced; anything else answers "hello".
fn chunky_app(produced: Arc<AtomicUsize>) -> App {
    app_fn(move |req: Request<Body>| {
        let produced = produced.clone();
        async move {
            if req.uri().path() != "/big" {
                return text("hello");
            }
            let chunks = futures_util::stream::repeat_with(move || {
                produced.fetch_add(1, Ordering::SeqCst);
                Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(vec![7u8; 256 * 1024])))
            });
            Response::new(mapproxy_serve::app::box_body(
                http_body_util::StreamBody::new(chunks),
            ))
        }
    })
}

/// An HTTP/2 connection driven by the `h2` crate; `window` is the flow-control window the
/// client grants the server for each stream.
async fn h2_connect(
    addr: SocketAddr,
    window: u32,
) -> (
    h2::client::SendRequest<Bytes>,
    h2::client::Connection<TcpStream, Bytes>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    h2::client::Builder::new()
        .initial_window_size(window)
        .handshake(tcp)
        .await
        .expect("h2 handshake")
}

fn h2_get(uri: &str) -> Request<()> {
    Request::get(uri).body(()).expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_without_window_hold_few_chunks_and_are_cut_on_send_timeout() {
    let produced = Arc::new(AtomicUsize::new(0));
    let srv = start(
        &[("send_timeout", "1"), ("channel_timeout", "60")],
        chunky_app(produced.clone()),
        false,
    )
    .await;
    let (mut send, conn) = h2_connect(srv.tcp(), 0).await;
    let conn = tokio::spawn(conn);
    const STREAMS: usize = 60;
    let mut heads = Vec::new();
    for _ in 0..STREAMS {
        send = send.ready().await.expect("stream slot");
        let (res, _) = send
            .send_request(h2_get(&srv.url("/big")), true)
            .expect("send request");
        heads.push(res);
    }
    // every stream is accepted and answered (HEADERS need no window)...
    let t0 = Instant::now();
    // (kept: dropping a response would reset its stream)
    let mut responses = Vec::new();
    for res in heads {
        let res = tokio::time::timeout(DEADLINE, res)
            .await
            .expect("response head in time")
            .expect("response head");
        assert_eq!(res.status(), 200);
        responses.push(res);
    }
    // ...but with no window nothing is sent: the connection is closed after send_timeout
    let closed = tokio::time::timeout(DEADLINE, conn).await;
    assert!(
        closed.is_ok(),
        "a connection that sends nothing was kept open"
    );
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
    // and only a few bodies read ahead, not one chunk per stream
    let n = produced.load(Ordering::SeqCst);
    assert!(
        n <= 8,
        "{n} chunks of 256 KiB read for {STREAMS} stalled streams"
    );
    drop(responses);
    // the server goes on
    let res = reqwest::get(srv.url("/")).await.unwrap();
    assert_eq!(res.text().await.unwrap(), "hello");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_concurrent_downloads_are_whole() {
    let app = app_fn(|req: Request<Body>| async move {
        let n: usize = req.uri().query().and_then(|q| q.parse().ok()).unwrap_or(0);
        // chunks of odd sizes, some far above a frame
        let chunks = (0..n).map(|i| {
            let len = 1 + (i * 7919) % 300_000;
            Ok::<_, Infallible>(http_body::Frame::data(Bytes::from(vec![
                (i % 251) as u8;
                len
            ])))
        });
        Response::new(mapproxy_serve::app::box_body(
            http_body_util::StreamBody::new(futures_util::stream::iter(chunks)),
        ))
    });
    let srv = start(&[], app, false).await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let gets = (0..12).map(|k| {
        let h2 = h2.clone();
        let url = srv.url(&format!("/?{}", 3 + k));
        async move {
            let body = h2.get(url).send().await?.bytes().await?;
            Ok::<_, reqwest::Error>((k, body))
        }
    });
    let results = tokio::time::timeout(DEADLINE, futures_util::future::join_all(gets))
        .await
        .expect("downloads in time");
    for r in results {
        let (k, body) = r.unwrap();
        let mut expected = Vec::new();
        for i in 0..3 + k {
            let len = 1 + (i * 7919) % 300_000;
            expected.extend(std::iter::repeat_n((i % 251) as u8, len));
        }
        assert!(body[..] == expected[..], "download {k} differs");
    }
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_pings_settings_and_window_updates_do_not_keep_an_idle_connection() {
    let srv = start(&[("channel_timeout", "1")], test_app(), false).await;
    let (mut send, mut conn) = h2_connect(srv.tcp(), 65_535).await;
    let mut ping_pong = conn.ping_pong().expect("ping_pong");
    let (res, _) = send.send_request(h2_get(&srv.url("/")), true).unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(150));
    let mut res = Box::pin(res);
    // one request, answered
    let res = tokio::select! {
        r = &mut res => r.expect("response"),
        r = &mut conn => panic!("connection ended early: {r:?}"),
    };
    assert_eq!(res.status(), 200);
    let mut body = res.into_body();
    let t0 = Instant::now();
    let mut window = 1 << 20;
    let pinger = tokio::spawn(async move {
        loop {
            if ping_pong.ping(h2::Ping::opaque()).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    let closed = tokio::time::timeout(DEADLINE, async {
        loop {
            tokio::select! {
                r = &mut conn => break r,
                _ = tick.tick() => {
                    window += 1;
                    conn.set_target_window_size(window);
                    let _ = conn.set_initial_window_size(window);
                }
                _ = body.data() => {}
            }
        }
    })
    .await;
    pinger.abort();
    assert!(closed.is_ok(), "pings kept an idle connection open");
    let idle = t0.elapsed();
    assert!(idle >= Duration::from_millis(800), "{idle:?}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_does_not_read_is_cut_on_send_timeout() {
    // the static file app with a large (sparse) file
    let dir = tempfile::tempdir().unwrap();
    let file = std::fs::File::create(dir.path().join("big.bin")).unwrap();
    const SIZE: u64 = 256 << 20;
    file.set_len(SIZE).unwrap();
    drop(file);
    let f = registry().find("Paste#static").expect("static files app");
    let Build::App(build) = f.build else {
        panic!("not an app factory")
    };
    let root = dir.path().to_str().unwrap();
    let app = build(
        &FactoryConf::from_pairs("Paste#static", [("document_root", root)]),
        &mut mapproxy_serve::build::BuildContext::current(),
    )
    .expect("static app");
    let srv = start(
        &[
            ("send_timeout", "1"),
            ("channel_timeout", "60"),
            ("connection_limit", "1"),
        ],
        app,
        false,
    )
    .await;
    // the slow reader takes the only connection slot and never reads
    let mut slow = TcpStream::connect(srv.tcp()).await.unwrap();
    slow.write_all(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    // the next client is served once the server gave up on the slow one
    let t0 = Instant::now();
    let mut next = TcpStream::connect(srv.tcp()).await.unwrap();
    next.write_all(b"HEAD /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(DEADLINE, next.read(&mut buf))
        .await
        .expect("second client served within the deadline")
        .unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
    // the slow reader finds its response cut: what was buffered, then EOF or reset
    let mut got = 0u64;
    let drained = tokio::time::timeout(DEADLINE, async {
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match slow.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
    })
    .await;
    assert!(
        drained.is_ok(),
        "the slow reader's connection is still open"
    );
    assert!(got < SIZE, "the whole file arrived: {got}");
    srv.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_hosts_and_targets_get_400_without_calling_the_app() {
    let calls = Arc::new(AtomicUsize::new(0));
    let calls2 = calls.clone();
    let app = app_fn(move |req: Request<Body>| {
        calls2.fetch_add(1, Ordering::SeqCst);
        test_response(req)
    });
    let srv = start(&[], app, false).await;
    let bad: &[&str] = &[
        "GET /info HTTP/1.1\r\nHost: evil.example/x?\r\n\r\n",
        "GET /info HTTP/1.1\r\nHost: a b@c\r\n\r\n",
        "GET /info HTTP/1.1\r\nHost: good@evil.example\r\n\r\n",
        "GET /info HTTP/1.1\r\nHost: \r\n\r\n",
        "GET /info HTTP/1.1\r\nHost: x:http\r\n\r\n",
        "GET /info HTTP/1.1\r\n\r\n",
        "GET /info HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
        "GET ftp://evil:21/info HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET http://good@evil.example/info HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET http://evil.example:99999/info HTTP/1.0\r\n\r\n",
    ];
    for req in bad {
        let res = raw_response(srv.tcp(), req.as_bytes()).await;
        assert!(
            res.starts_with("HTTP/1.") && res[..12].ends_with(" 400"),
            "{req:?}: {res}"
        );
        assert!(!res.contains("evil"), "{req:?} echoed: {res}");
    }
    assert_eq!(calls.load(Ordering::SeqCst), 0);
    let good: &[(&str, &str)] = &[
        ("GET /info HTTP/1.0\r\n\r\n", "host=127.0.0.1:"),
        (
            "GET /info HTTP/1.1\r\nHost: maps.example:8080\r\nConnection: close\r\n\r\n",
            "host=maps.example:8080 ",
        ),
        (
            "GET /info HTTP/1.1\r\nHost: [::1]:81\r\nConnection: close\r\n\r\n",
            "host=[::1]:81 ",
        ),
        (
            "GET http://maps.example/info HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n",
            "host=maps.example ",
        ),
    ];
    for (req, want) in good {
        let res = raw_response(srv.tcp(), req.as_bytes()).await;
        assert!(
            res.contains(" 200 ") && res.contains(want),
            "{req:?}: {res}"
        );
    }
    // HTTP/2: `:authority` is checked the same way, and must agree with a Host header
    let (send, conn) = h2_connect(srv.tcp(), 65_535).await;
    tokio::spawn(conn);
    let cases: &[(&str, Option<&str>, u16)] = &[
        ("http://maps.example/info", None, 200),
        ("http://good@evil.example/info", None, 400),
        ("http://maps.example/info", Some("evil.example"), 400),
        ("http://maps.example/info", Some("maps.example"), 200),
    ];
    for (uri, host, status) in cases {
        let mut b = Request::get(*uri);
        if let Some(h) = host {
            b = b.header("host", *h);
        }
        let mut send = send.clone().ready().await.expect("ready");
        let (res, _) = send.send_request(b.body(()).unwrap(), true).unwrap();
        let res = tokio::time::timeout(DEADLINE, res).await.unwrap().unwrap();
        assert_eq!(res.status().as_u16(), *status, "{uri} {host:?}");
    }
    srv.stop().await;
}
