//! Real web servers as FastCGI clients: nginx (two recipes), lighttpd and Apache
//! `mod_proxy_fcgi`, each started on loopback with a config from `tests/fcgi/`, in front of
//! the FastCGI server running in-process with the echo app.
//!
//! A missing web server is skipped with a visible `SKIP:` line, unless `CI=true`.

mod support;

use support::{fcgi as common, peer};

use std::collections::HashSet;
use std::time::Duration;

use common::*;
use peer::*;

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client")
}

fn cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap_or("").to_string())
        .collect()
}

/// What every web server must get right; returns the FastCGI connection ids seen by the
/// keep-alive run.
async fn check(kind: Kind, port: u16, keep_alive_requests: usize) -> HashSet<String> {
    let name = kind.binary();
    let base = format!("http://127.0.0.1:{port}");
    let http = client();

    // Mount path, path, query, public host, status passthrough, two Set-Cookie headers.
    let res = http
        .get(format!(
            "{base}/mapproxy/service?SERVICE=WMS&REQUEST=GetCapabilities&status=404"
        ))
        .send()
        .await
        .expect("GET");
    assert_eq!(res.status(), 404, "{name}: status passthrough");
    assert_eq!(
        cookies(&res),
        vec!["a=1; Path=/".to_string(), "b=2; Path=/".to_string()],
        "{name}: both Set-Cookie headers"
    );
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "method"), "GET", "{name}");
    assert_eq!(field(&body, "mount"), "/mapproxy", "{name}: {body}");
    assert_eq!(field(&body, "path"), "/service", "{name}: {body}");
    assert_eq!(
        field(&body, "query"),
        "SERVICE=WMS&REQUEST=GetCapabilities&status=404",
        "{name}"
    );
    assert_eq!(field(&body, "scheme"), "http", "{name}");
    assert_eq!(field(&body, "host"), format!("127.0.0.1:{port}"), "{name}");
    assert!(
        field(&body, "remote").starts_with("127.0.0.1:"),
        "{name}: {body}"
    );

    for (status, want) in [(201u16, 201u16), (500, 500), (302, 302)] {
        let res = http
            .get(format!("{base}/mapproxy/s?status={status}"))
            .send()
            .await
            .expect("GET");
        assert_eq!(res.status().as_u16(), want, "{name}: status {status}");
    }

    // Escaped characters in the path survive the trip through PATH_INFO.
    let res = http
        .get(format!("{base}/mapproxy/a%20b/c%25d"))
        .send()
        .await
        .expect("GET");
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "path"), "/a%20b/c%25d", "{name}: {body}");

    // The mount path alone.
    let res = http
        .get(format!("{base}/mapproxy"))
        .send()
        .await
        .expect("GET");
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "mount"), "/mapproxy", "{name}: {body}");
    assert_eq!(field(&body, "path"), "/", "{name}: {body}");

    // A POST body (1 MiB) arrives intact.
    let data: Vec<u8> = (0..1024 * 1024u32).map(|i| (i % 249) as u8).collect();
    let res = http
        .post(format!("{base}/mapproxy/post?x=1"))
        .header("content-type", "application/octet-stream")
        .body(data.clone())
        .send()
        .await
        .expect("POST");
    assert_eq!(res.status(), 200, "{name}: POST");
    let body = res.text().await.expect("body");
    assert_eq!(field(&body, "method"), "POST", "{name}");
    assert_eq!(field(&body, "body_len"), data.len().to_string(), "{name}");
    assert_eq!(
        field(&body, "body_sum"),
        checksum(&data).to_string(),
        "{name}"
    );
    assert_eq!(
        field(&body, "content_type"),
        "application/octet-stream",
        "{name}"
    );

    // A streamed 5 MiB response arrives intact.
    let n = 5 * 1024 * 1024u64;
    let res = http
        .get(format!("{base}/mapproxy/big?n={n}"))
        .send()
        .await
        .expect("GET big");
    assert_eq!(res.status(), 200, "{name}: big");
    let bytes = res.bytes().await.expect("big body");
    assert_eq!(bytes.len() as u64, n, "{name}: big length");
    assert!(
        bytes
            .iter()
            .enumerate()
            .all(|(i, b)| *b == big_byte(i as u64)),
        "{name}: big content"
    );

    // Many requests on one keep-alive HTTP connection.
    let mut conns = HashSet::new();
    for i in 0..keep_alive_requests {
        let res = http
            .get(format!("{base}/mapproxy/k?i={i}"))
            .send()
            .await
            .expect("keep-alive GET");
        assert_eq!(res.status(), 200, "{name}: request {i}");
        let body = res.text().await.expect("body");
        assert_eq!(field(&body, "query"), format!("i={i}"), "{name}");
        conns.insert(field(&body, "conn").to_string());
    }
    conns
}

async fn run_peer(kind: Kind, template: &str) -> Option<HashSet<String>> {
    let bin = find(kind)?;
    let srv = start_unix(|s| s.socket_mode(0o777)).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let peer = {
        let (bin, socket, tmp) = (bin.clone(), srv.socket.clone(), tmp.path().to_path_buf());
        let template = template.to_string();
        tokio::task::spawn_blocking(move || start_peer(kind, &bin, &template, &socket, &tmp))
            .await
            .expect("start peer")
    };
    let conns = check(kind, peer.port, 200).await;
    tokio::task::spawn_blocking(move || drop(peer))
        .await
        .expect("stop peer");
    srv.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), srv.done)
        .await
        .expect("server stops")
        .expect("server task");
    Some(conns)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_split_path_info_with_keepalive_upstream() {
    let Some(conns) = run_peer(Kind::Nginx, "nginx.conf").await else {
        return;
    };
    // `fastcgi_keep_conn on` + upstream keepalive: 200 requests over a few connections.
    assert!(
        conns.len() <= 4,
        "nginx reused FastCGI connections: {} used",
        conns.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_if_uri_variant() {
    run_peer(Kind::Nginx, "nginx-if.conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lighttpd_fastcgi_server() {
    run_peer(Kind::Lighttpd, "lighttpd.conf").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apache_mod_proxy_fcgi() {
    let Some(conns) = run_peer(Kind::Apache, "apache.conf").await else {
        return;
    };
    // enablereuse=on keeps backend connections.
    assert!(
        conns.len() < 50,
        "Apache reused FastCGI connections: {} used",
        conns.len()
    );
}
