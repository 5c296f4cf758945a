//! The layers together behind a real hyper HTTP/1.1 server on 127.0.0.1:0.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use mapproxy_serve_core::environ::{script_url, PeerAddr, RemoteAddr, RemoteUser};
use mapproxy_serve_filters::access_log::{AccessLogLayer, AccessLogSink, LogFormat};
use mapproxy_serve_filters::basic_auth::htpasswd::Users;
use mapproxy_serve_filters::basic_auth::{BasicAuthLayer, CredentialStore};
use mapproxy_serve_filters::proxy_headers::{ProxyHeadersConfig, ProxyHeadersLayer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceBuilder;

#[derive(Default)]
struct Lines(Mutex<Vec<String>>);
impl AccessLogSink for Lines {
    fn write(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

async fn hello(req: Request<hyper::body::Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let user = req.extensions().get::<RemoteUser>().map(|u| u.0.clone());
    let body = format!("{} {}", script_url(&req), user.unwrap_or_default());
    Ok(Response::new(Full::new(Bytes::from(body))))
}

async fn serve(lines: Arc<Lines>, pw: std::path::PathBuf) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let store = CredentialStore::new(Users::new(), Some(pw)).unwrap();
    let auth = BasicAuthLayer::new("maps", store).unwrap();
    let log = AccessLogLayer::new(LogFormat::default(), lines);
    let proxy = ProxyHeadersLayer::new(ProxyHeadersConfig::default());
    tokio::spawn(async move {
        for _ in 0..100 {
            let Ok((stream, peer)) = listener.accept().await else {
                return;
            };
            let svc = ServiceBuilder::new()
                .map_request(move |mut req: Request<hyper::body::Incoming>| {
                    req.extensions_mut().insert(PeerAddr(peer));
                    req.extensions_mut().insert(RemoteAddr(peer));
                    req
                })
                .layer(log.clone())
                .layer(proxy.clone())
                .layer(auth.clone())
                .service_fn(hello);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                    .await;
            });
        }
    });
    addr
}

async fn raw(addr: SocketAddr, head: &str) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn wait_lines(lines: &Lines, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let l = lines.0.lock().unwrap().clone();
        if l.len() >= n || Instant::now() > deadline {
            return l;
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn auth_forwarded_headers_and_access_log_over_http() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    // htpasswd -nbm dave secret
    std::fs::write(&pw, "dave:$apr1$MvGLl1AV$MEHgkm3R4VHTlhjpUOnBh/\n").unwrap();
    let lines = Arc::new(Lines::default());
    let addr = serve(lines.clone(), pw).await;

    let r = raw(
        addr,
        "GET /x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");
    assert!(r.contains("www-authenticate: Basic realm=\"maps\""), "{r}");

    let r = raw(
        addr,
        "GET /maps/x?a=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic !!\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 401"), "{r}");

    // dave:secret, through a (loopback = trusted) proxy
    let r = raw(
        addr,
        "GET /maps/x?a=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Basic ZGF2ZTpzZWNyZXQ=\r\n\
         X-Forwarded-For: 203.0.113.7\r\nX-Forwarded-Proto: https\r\nX-Script-Name: /maps\r\n\
         User-Agent: t/1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("https://h/maps dave"), "{r}");

    let l = wait_lines(&lines, 3).await;
    assert_eq!(l.len(), 3, "{l:?}");
    assert!(l[0].starts_with("127.0.0.1 - - ["), "{}", l[0]);
    assert!(l[0].contains("\"GET /x HTTP/1.1\" 401 "), "{}", l[0]);
    assert!(l[2].starts_with("203.0.113.7 - dave ["), "{}", l[2]);
    assert!(
        l[2].ends_with("\"GET /maps/x?a=1 HTTP/1.1\" 200 19 \"-\" \"t/1\""),
        "{}",
        l[2]
    );
}
