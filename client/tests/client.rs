//! The client against local servers on 127.0.0.1:0: hyper's HTTP/1 server, the same behind
//! tokio-rustls with a certificate from a test CA made here with rcgen, and a "silent" server
//! that accepts connections and never answers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Frame, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use mapproxy_serve_client::{
    Body, BoxError, ClientConfig, ClientError, ClientErrorKind, HttpClient,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

const SHORT: Duration = Duration::from_millis(200);
/// Upper bound for anything that should take about SHORT (generous: shared 2-core machine).
const PATIENCE: Duration = Duration::from_secs(10);
/// More than the socket buffers hold: the server waits for the client to read.
const LARGE: usize = 8 * 1024 * 1024;

// ---------------------------------------------------------------------------------------------
// Servers

/// Aborts the accept loop when the test ends.
struct Server {
    addr: SocketAddr,
    connections: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    fn url(&self, scheme: &str, path: &str) -> String {
        format!("{scheme}://{}{path}", self.addr)
    }
}

/// A body that sends one chunk and then nothing, forever.
struct StallBody {
    sent: bool,
}

impl hyper::body::Body for StallBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if self.sent {
            Poll::Pending
        } else {
            self.sent = true;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(b"partial")))))
        }
    }
}

type ServerBody = BoxBody<Bytes, Infallible>;

fn full(status: StatusCode, body: impl Into<Bytes>) -> Response<ServerBody> {
    let mut response = Response::new(Full::new(body.into()).boxed());
    *response.status_mut() = status;
    response
}

/// Routes: `/hello`, `/echo` (the request body), `/ua` (the User-Agent), `/big` (1000
/// bytes), `/large` ([`LARGE`] bytes), `/missing` (404), `/stall` (one chunk, then silence). Every response has
/// `x-conn`: the number of the connection it was sent on.
async fn handle(req: Request<Incoming>, conn: usize) -> Result<Response<ServerBody>, Infallible> {
    let mut response = match req.uri().path() {
        "/hello" => full(StatusCode::OK, "hello"),
        "/echo" => match req.into_body().collect().await {
            Ok(body) => full(StatusCode::OK, body.to_bytes()),
            Err(_) => full(StatusCode::BAD_REQUEST, ""),
        },
        "/ua" => {
            let ua = req
                .headers()
                .get(http::header::USER_AGENT)
                .map(|v| v.as_bytes().to_vec())
                .unwrap_or_default();
            full(StatusCode::OK, ua)
        }
        "/big" => full(StatusCode::OK, vec![b'x'; 1000]),
        "/stall" => Response::new(StallBody { sent: false }.boxed()),
        "/large" => full(StatusCode::OK, vec![b'x'; LARGE]),
        _ => full(StatusCode::NOT_FOUND, "not found"),
    };
    response
        .headers_mut()
        .insert("x-conn", conn.to_string().parse().expect("a number"));
    Ok(response)
}

async fn serve(listener: TcpListener, connections: Arc<AtomicUsize>, tls: Option<TlsAcceptor>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let conn = connections.fetch_add(1, Ordering::SeqCst) + 1;
        let tls = tls.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| handle(req, conn));
            match tls {
                Some(acceptor) => {
                    // The handshake fails when the client rejects the certificate.
                    if let Ok(stream) = acceptor.accept(stream).await {
                        let _ = http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await;
                    }
                }
                None => {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                }
            }
        });
    }
}

async fn start(tls: Option<TlsAcceptor>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let task = tokio::spawn(serve(listener, connections.clone(), tls));
    Server {
        addr,
        connections,
        task,
    }
}

/// Accepts connections and keeps them open without reading or writing anything.
async fn start_silent() -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        let mut held: Vec<TcpStream> = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            held.push(stream);
        }
    });
    Server {
        addr,
        connections,
        task,
    }
}

// ---------------------------------------------------------------------------------------------
// Test PKI

struct TestPki {
    ca_pem: String,
    acceptor: TlsAcceptor,
}

/// A CA, and a server certificate for 127.0.0.1 and localhost signed by it.
fn test_pki(ca_name: &str) -> TestPki {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, ca_name);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).expect("CA certificate");

    let leaf_key = KeyPair::generate().expect("server key");
    let mut leaf_params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .expect("server params");
    leaf_params
        .distinguished_name
        .push(DnType::CommonName, "127.0.0.1");
    let leaf = leaf_params
        .signed_by(&leaf_key, &ca_cert, &ca_key)
        .expect("server certificate");

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der())),
        )
        .expect("server TLS config");
    TestPki {
        ca_pem: ca_cert.pem(),
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

fn write_temp(contents: &str) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(contents.as_bytes())
        .expect("write temp file");
    file
}

fn config() -> ClientConfig {
    ClientConfig::default()
}

// ---------------------------------------------------------------------------------------------
// (1) plain http

#[tokio::test]
async fn plain_http_get_request_and_boxed_bodies() {
    let server = start(None).await;
    let client = HttpClient::new(&ClientConfig {
        user_agent: Some("mapproxy-serve-test/1".to_owned()),
        ..config()
    })
    .expect("client");

    let hello = client
        .get(&server.url("http", "/hello"), 1024)
        .await
        .expect("GET /hello");
    assert_eq!(hello, "hello");

    // The configured User-Agent is sent when the request has none ...
    let ua = client
        .get(&server.url("http", "/ua"), 1024)
        .await
        .expect("GET /ua");
    assert_eq!(ua, "mapproxy-serve-test/1");
    // ... and the request's own is kept.
    let req = Request::get(server.url("http", "/ua"))
        .header(http::header::USER_AGENT, "own")
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = client.request(req).await.expect("GET /ua, own agent");
    let body = response.into_body().collect().await.expect("body");
    assert_eq!(body.to_bytes(), "own");

    // The project's body type both ways.
    let body: Body = Full::new(Bytes::from_static(b"ping"))
        .map_err(|never| -> BoxError { match never {} })
        .boxed_unsync();
    let req = Request::post(server.url("http", "/echo"))
        .body(body)
        .expect("request");
    let response = client.request(req).await.expect("POST /echo");
    assert_eq!(response.status(), StatusCode::OK);
    let boxed: Body = response.into_body().into_body();
    let echoed = boxed.collect().await.expect("echo body").to_bytes();
    assert_eq!(echoed, "ping");

    // Statuses and size limits of `get`.
    let err = client
        .get(&server.url("http", "/missing"), 1024)
        .await
        .expect_err("404");
    assert_eq!(err.kind(), ClientErrorKind::Status(StatusCode::NOT_FOUND));
    assert_eq!(err.gateway_status(), StatusCode::BAD_GATEWAY);
    let response = client
        .get_response(&server.url("http", "/missing"), 1024)
        .await
        .expect("get_response of a 404");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.body(), "not found");
    let err = client
        .get(&server.url("http", "/big"), 999)
        .await
        .expect_err("over the limit");
    assert_eq!(err.kind(), ClientErrorKind::BodyTooLarge);
    let big = client
        .get(&server.url("http", "/big"), 1000)
        .await
        .expect("at the limit");
    assert_eq!(big.len(), 1000);

    // Not an absolute http(s) URL.
    for url in [
        "ftp://127.0.0.1/x",
        "/relative",
        "http:///nohost",
        "not a url",
    ] {
        let err = client.get(url, 10).await.expect_err(url);
        assert_eq!(err.kind(), ClientErrorKind::InvalidUrl, "{url}: {err}");
    }
}

#[test]
fn futures_clients_and_errors_are_send() {
    fn send<T: Send>(_: &T) {}
    fn send_sync_static<T: Send + Sync + 'static>() {}
    send_sync_static::<HttpClient>();
    send_sync_static::<ClientError>();
    let client = HttpClient::new(&config()).expect("client");
    let req = Request::get("http://127.0.0.1:1/")
        .body(Empty::<Bytes>::new())
        .expect("request");
    send(&client.request(req));
    send(&client.get("http://127.0.0.1:1/", 1));
    send(&client.get_response("http://127.0.0.1:1/", 1));
}

#[tokio::test]
async fn refused_connection_is_a_connect_error() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    drop(listener);
    let client = HttpClient::new(&config()).expect("client");
    let err = client
        .get(&format!("http://{addr}/"), 10)
        .await
        .expect_err("nobody listens");
    assert_eq!(err.kind(), ClientErrorKind::Connect, "{err}");
    assert_eq!(err.gateway_status(), StatusCode::BAD_GATEWAY);
}

// ---------------------------------------------------------------------------------------------
// (2) https with a test CA

#[tokio::test]
async fn https_trusts_the_ca_file_and_nothing_else_unless_insecure() {
    let pki = test_pki("mapproxy-serve test CA");
    let server = start(Some(pki.acceptor.clone())).await;
    let url = server.url("https", "/hello");
    let ca_file = write_temp(&pki.ca_pem);

    let with_ca = HttpClient::new(&ClientConfig {
        ca_file: Some(ca_file.path().to_owned()),
        ..config()
    })
    .expect("client with the CA file");
    assert_eq!(with_ca.get(&url, 1024).await.expect("trusted"), "hello");

    let without = HttpClient::new(&config()).expect("client");
    let err = without.get(&url, 1024).await.expect_err("unknown issuer");
    assert_eq!(err.kind(), ClientErrorKind::Certificate, "{err}");
    assert!(err.to_string().contains("certificate"), "{err}");

    // Another CA's file does not help either.
    let other = test_pki("another CA");
    let other_file = write_temp(&other.ca_pem);
    let wrong_ca = HttpClient::new(&ClientConfig {
        ca_file: Some(other_file.path().to_owned()),
        ..config()
    })
    .expect("client with another CA");
    let err = wrong_ca.get(&url, 1024).await.expect_err("wrong CA");
    assert_eq!(err.kind(), ClientErrorKind::Certificate, "{err}");

    let insecure = HttpClient::new(&ClientConfig {
        insecure: true,
        ..config()
    })
    .expect("insecure client");
    assert_eq!(insecure.get(&url, 1024).await.expect("insecure"), "hello");

    // Plain http still works on a client that has TLS settings.
    let plain = start(None).await;
    let hello = with_ca
        .get(&plain.url("http", "/hello"), 1024)
        .await
        .expect("http");
    assert_eq!(hello, "hello");
}

#[tokio::test]
async fn ca_file_errors_name_the_file() {
    let missing = std::env::temp_dir().join("mapproxy-serve-client-test-no-such-ca.pem");
    let err = HttpClient::new(&ClientConfig {
        ca_file: Some(missing.clone()),
        ..config()
    })
    .expect_err("missing CA file");
    assert_eq!(err.kind(), ClientErrorKind::Config);
    let text = err.to_string();
    assert!(text.contains(&missing.display().to_string()), "{text}");
    assert!(text.contains("not found"), "{text}");

    let empty = write_temp("# no certificates here\n");
    type Build = fn(&ClientConfig) -> Result<HttpClient, ClientError>;
    for build in [HttpClient::new as Build, HttpClient::shared] {
        let err = build(&ClientConfig {
            ca_file: Some(empty.path().to_owned()),
            ..config()
        })
        .expect_err("CA file without certificates");
        assert_eq!(err.kind(), ClientErrorKind::Config);
        let text = err.to_string();
        assert!(text.contains(&empty.path().display().to_string()), "{text}");
        assert!(text.contains("no certificates"), "{text}");
    }

    let err = HttpClient::new(&ClientConfig {
        user_agent: Some("bad\nagent".to_owned()),
        ..config()
    })
    .expect_err("bad user agent");
    assert_eq!(err.kind(), ClientErrorKind::Config);
}

// ---------------------------------------------------------------------------------------------
// (3) timeouts before the response head

#[tokio::test]
async fn header_timeout_when_the_server_never_answers() {
    let server = start_silent().await;
    let client = HttpClient::new(&ClientConfig {
        header_timeout: Some(SHORT),
        ..config()
    })
    .expect("client");
    let started = Instant::now();
    let err = client
        .get(&server.url("http", "/"), 10)
        .await
        .expect_err("no answer");
    let took = started.elapsed();
    assert_eq!(err.kind(), ClientErrorKind::HeaderTimeout, "{err}");
    assert_eq!(err.gateway_status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(err.is_timeout());
    assert!(took >= SHORT && took < PATIENCE, "took {took:?}");
    assert_eq!(server.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn request_timeout_before_the_head_when_it_is_the_shorter() {
    let server = start_silent().await;
    let client = HttpClient::new(&ClientConfig {
        request_timeout: Some(SHORT),
        ..config()
    })
    .expect("client");
    let err = client
        .get(&server.url("http", "/"), 10)
        .await
        .expect_err("no answer");
    assert_eq!(err.kind(), ClientErrorKind::RequestTimeout, "{err}");
    assert_eq!(err.gateway_status(), StatusCode::GATEWAY_TIMEOUT);
}

#[tokio::test]
async fn connect_timeout_covers_the_tls_handshake() {
    // The silent server accepts TCP but never answers the TLS ClientHello.
    let server = start_silent().await;
    let client = HttpClient::new(&ClientConfig {
        connect_timeout: Some(SHORT),
        ..config()
    })
    .expect("client");
    let started = Instant::now();
    let err = client
        .get(&server.url("https", "/"), 10)
        .await
        .expect_err("no handshake");
    let took = started.elapsed();
    assert_eq!(err.kind(), ClientErrorKind::ConnectTimeout, "{err}");
    assert_eq!(err.gateway_status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(took >= SHORT && took < PATIENCE, "took {took:?}");
}

// ---------------------------------------------------------------------------------------------
// (4) a body that stalls

#[tokio::test]
async fn stalled_body_ends_with_the_request_timeout() {
    let server = start(None).await;
    let client = HttpClient::new(&ClientConfig {
        request_timeout: Some(SHORT),
        ..config()
    })
    .expect("client");
    let req = Request::get(server.url("http", "/stall"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let started = Instant::now();
    let response = client.request(req).await.expect("the head arrives");
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .expect("a frame")
        .expect("the first chunk");
    assert_eq!(first.into_data().expect("data"), "partial");
    let err = body
        .frame()
        .await
        .expect("an error, not the end")
        .expect_err("the deadline passes while the body stalls");
    let took = started.elapsed();
    assert_eq!(err.kind(), ClientErrorKind::RequestTimeout, "{err}");
    assert!(took >= SHORT && took < PATIENCE, "took {took:?}");
    assert!(
        body.frame().await.is_none(),
        "the body ends after its error"
    );

    // The same through `get`, and through the boxed body (the kind survives the box).
    let err = client
        .get(&server.url("http", "/stall"), 1024)
        .await
        .expect_err("stalls");
    assert_eq!(err.kind(), ClientErrorKind::RequestTimeout, "{err}");
    let req = Request::get(server.url("http", "/stall"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let boxed: Body = client
        .request(req)
        .await
        .expect("head")
        .into_body()
        .into_body();
    let err = boxed.collect().await.expect_err("stalls");
    let err = err
        .downcast_ref::<ClientError>()
        .expect("a ClientError in the box");
    assert_eq!(err.kind(), ClientErrorKind::RequestTimeout);
}

#[tokio::test]
async fn stalled_body_ends_with_the_read_timeout() {
    let server = start(None).await;
    let client = HttpClient::new(&ClientConfig {
        read_timeout: Some(SHORT),
        request_timeout: None,
        ..config()
    })
    .expect("client");
    let req = Request::get(server.url("http", "/stall"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = client.request(req).await.expect("the head arrives");
    let mut body = response.into_body();
    let first = body
        .frame()
        .await
        .expect("a frame")
        .expect("the first chunk");
    assert_eq!(first.into_data().expect("data"), "partial");
    let waiting = Instant::now();
    let err = body
        .frame()
        .await
        .expect("an error, not the end")
        .expect_err("the server went silent");
    let took = waiting.elapsed();
    assert_eq!(err.kind(), ClientErrorKind::ReadTimeout, "{err}");
    assert!(err.is_timeout());
    assert_eq!(err.gateway_status(), StatusCode::GATEWAY_TIMEOUT);
    assert!(took >= SHORT && took < PATIENCE, "took {took:?}");
    assert!(
        body.frame().await.is_none(),
        "the body ends after its error"
    );
    // through `get` too
    let err = client
        .get(&server.url("http", "/stall"), 1024)
        .await
        .expect_err("stalls");
    assert_eq!(err.kind(), ClientErrorKind::ReadTimeout, "{err}");
    // the default is a minute, not forever
    assert_eq!(config().read_timeout, Some(Duration::from_secs(60)));
}

/// The read timeout counts time spent waiting for the server, not time the reader spends
/// elsewhere: a reader that pauses for longer than it still gets the whole body.
#[tokio::test]
async fn a_reader_that_pauses_is_not_cut() {
    let server = start(None).await;
    let client = HttpClient::new(&ClientConfig {
        read_timeout: Some(SHORT),
        ..config()
    })
    .expect("client");
    let req = Request::get(server.url("http", "/large"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let mut body = client.request(req).await.expect("head").into_body();
    let mut total = 0;
    let mut frames = 0;
    while let Some(frame) = body.frame().await {
        total += frame.expect("no error").into_data().map_or(0, |d| d.len());
        frames += 1;
        if frames <= 2 {
            // The pause is the behaviour under test, not a wait for something.
            tokio::time::sleep(SHORT * 3).await;
        }
    }
    assert_eq!(total, LARGE);
}

/// A TCP server that answers every request with `answer`, bytes as given, then keeps the
/// connection open.
async fn start_raw(answer: &'static [u8]) -> Server {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    let task = tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(answer).await;
                let _ = stream.read(&mut buf).await;
            });
        }
    });
    Server {
        addr,
        connections,
        task,
    }
}

/// A body that could end in two places is refused, whichever header comes first, and its
/// connection is not used again.
#[tokio::test]
async fn content_length_with_transfer_encoding_is_refused() {
    for answer in [
        &b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"[..],
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 100\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ] {
        let server = start_raw(answer).await;
        let client = HttpClient::new(&config()).expect("client");
        for _ in 0..2 {
            let err = client
                .get(&server.url("http", "/"), 1024)
                .await
                .expect_err("ambiguous framing");
            assert_eq!(err.kind(), ClientErrorKind::Request, "{err}");
            assert_eq!(err.gateway_status(), StatusCode::BAD_GATEWAY);
            assert!(err.message().contains("Content-Length"), "{err}");
        }
        assert_eq!(server.connections.load(Ordering::SeqCst), 2);
    }
}

// ---------------------------------------------------------------------------------------------
// (5) sharing

/// The connection number (`x-conn`) a request to `/hello` was answered on.
async fn conn_of(client: &HttpClient, server: &Server) -> String {
    let req = Request::get(server.url("http", "/hello"))
        .body(Empty::<Bytes>::new())
        .expect("request");
    let response = client.request(req).await.expect("GET /hello");
    let conn = response
        .headers()
        .get("x-conn")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    // Read to the end so that the connection can go back to the pool.
    response.into_body().collect().await.expect("body");
    conn
}

#[tokio::test]
async fn shared_clients_of_equal_configs_share_one_pool() {
    // A config no other test uses (the shared map is process-wide).
    let cfg = ClientConfig {
        user_agent: Some("shared-pool-test".to_owned()),
        ..config()
    };
    let a = HttpClient::shared(&cfg).expect("shared a");
    let b = HttpClient::shared(&cfg.clone()).expect("shared b");
    assert!(a.same_pool(&b));
    assert_eq!(a.config(), &cfg);

    let other = HttpClient::shared(&ClientConfig {
        pool_max_idle_per_host: 4,
        ..cfg.clone()
    })
    .expect("shared, another config");
    assert!(!a.same_pool(&other));
    let fresh = HttpClient::new(&cfg).expect("new");
    assert!(!a.same_pool(&fresh));

    // The connection `a` used serves `b`. The pool takes a connection back shortly after
    // its body ends (a task hyper-util spawns), so retry until a deadline; with separate
    // pools `b` could never get `a`'s connection.
    let server = start(None).await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let conn_a = conn_of(&a, &server).await;
        for _ in 0..16 {
            tokio::task::yield_now().await;
        }
        let conn_b = conn_of(&b, &server).await;
        if conn_a == conn_b {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b never reused a's connection ({} connections)",
            server.connections.load(Ordering::SeqCst)
        );
    }

    // Separate pools: `fresh` does not get the shared pool's connection.
    let shared_conn = conn_of(&a, &server).await;
    let fresh_conn = conn_of(&fresh, &server).await;
    assert_ne!(shared_conn, fresh_conn);
}

#[tokio::test]
async fn shared_client_changes_with_the_ca_file_contents() {
    let first = test_pki("CA one");
    let ca_file = write_temp(&first.ca_pem);
    let cfg = ClientConfig {
        ca_file: Some(ca_file.path().to_owned()),
        ..config()
    };
    let a = HttpClient::shared(&cfg).expect("shared a");
    let b = HttpClient::shared(&cfg).expect("shared b");
    assert!(a.same_pool(&b));

    let second = test_pki("CA two");
    std::fs::write(ca_file.path(), &second.ca_pem).expect("rewrite CA file");
    let c = HttpClient::shared(&cfg).expect("shared c");
    assert!(!a.same_pool(&c), "a changed CA file gives a new client");

    // c trusts the new CA.
    let server = start(Some(second.acceptor.clone())).await;
    assert_eq!(
        c.get(&server.url("https", "/hello"), 1024)
            .await
            .expect("trusted by the new CA"),
        "hello"
    );
}
