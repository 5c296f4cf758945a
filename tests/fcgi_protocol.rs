//! FastCGI protocol tests: the `fastcgi-client` crate and hand-made records against the
//! server running in-process on a unix socket (or TCP port 0).

mod support;

use support::fcgi as common;

use std::sync::atomic::Ordering;
use std::time::Duration;

use common::*;
use fastcgi_client::{Client, Params, Request as FcgiRequest};
use mapproxy_serve::server::fcgi::{Address, FcgiServer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const MIB: usize = 1024 * 1024;
/// Bytes the server may hold for one streaming request (queues + socket buffers), far
/// below the 10 MiB moved.
const IN_FLIGHT_BOUND: u64 = 3 * MIB as u64;

fn client_params<'a>(vars: &'a [(String, String)]) -> Params<'a> {
    let mut p = Params::default();
    for (k, v) in vars {
        p = p.custom(k.as_str(), v.as_str());
    }
    p
}

fn split_head(stdout: &[u8]) -> (String, Vec<u8>) {
    let pos = stdout
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of head");
    (
        String::from_utf8_lossy(&stdout[..pos + 2]).into_owned(),
        stdout[pos + 4..].to_vec(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_fastcgi_client() {
    let srv = start_unix(|s| s).await;
    let vars = cgi("/service", "SERVICE=WMS&status=404");
    let stream = UnixStream::connect(&srv.socket).await.unwrap();
    let out = Client::new_tokio(stream)
        .execute_once(FcgiRequest::new_tokio(
            client_params(&vars),
            tokio::io::empty(),
        ))
        .await
        .unwrap();
    let (head, body) = split_head(&out.stdout.unwrap());
    let body = String::from_utf8(body).unwrap();
    assert!(head.starts_with("Status: 404 Not Found\r\n"), "{head}");
    assert!(head.contains("set-cookie: a=1; Path=/\r\n"), "{head}");
    assert!(head.contains("set-cookie: b=2; Path=/\r\n"), "{head}");
    assert_eq!(field(&body, "mount"), "/mapproxy");
    assert_eq!(field(&body, "path"), "/service");
    assert_eq!(field(&body, "query"), "SERVICE=WMS&status=404");
    assert_eq!(field(&body, "scheme"), "http");
    assert_eq!(field(&body, "host"), "example.org");
    assert_eq!(field(&body, "remote"), "192.0.2.7:4711");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_body_with_fastcgi_client() {
    let srv = start_unix(|s| s).await;
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    let mut vars = cgi("/post", "");
    vars[0].1 = "POST".into();
    vars.push(("CONTENT_LENGTH".into(), data.len().to_string()));
    vars.push(("CONTENT_TYPE".into(), "application/xml".into()));
    vars.push(("HTTP_X_TEST".into(), "yes".into()));
    let stream = UnixStream::connect(&srv.socket).await.unwrap();
    let out = Client::new_tokio(stream)
        .execute_once(FcgiRequest::new_tokio(client_params(&vars), &data[..]))
        .await
        .unwrap();
    let (head, body) = split_head(&out.stdout.unwrap());
    let body = String::from_utf8(body).unwrap();
    assert!(head.starts_with("Status: 200 OK\r\n"), "{head}");
    assert_eq!(field(&body, "method"), "POST");
    assert_eq!(field(&body, "body_len"), data.len().to_string());
    assert_eq!(field(&body, "body_sum"), checksum(&data).to_string());
    assert_eq!(field(&body, "content_type"), "application/xml");
    assert_eq!(field(&body, "x_test"), "yes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keep_alive_1000_requests_on_one_connection() {
    let srv = start_unix(|s| s).await;
    let stream = UnixStream::connect(&srv.socket).await.unwrap();
    let mut client = Client::new_keep_alive_tokio(stream);
    let mut conn_ids = std::collections::HashSet::new();
    for i in 0..1000 {
        let vars = cgi("/k", &format!("i={i}"));
        let out = client
            .execute(FcgiRequest::new_tokio(
                client_params(&vars),
                tokio::io::empty(),
            ))
            .await
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        let (_, body) = split_head(&out.stdout.unwrap());
        let body = String::from_utf8(body).unwrap();
        assert_eq!(field(&body, "query"), format!("i={i}"));
        conn_ids.insert(field(&body, "conn").to_string());
    }
    assert_eq!(conn_ids.len(), 1, "all on one connection: {conn_ids:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_split_into_one_byte_records() {
    let srv = start_unix(|s| s).await;
    let long_cookie = "c".repeat(1000);
    let mut vars = cgi("/split path/é", "x=1");
    vars.push(("HTTP_COOKIE".into(), long_cookie.clone()));
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    let mut out = begin(1, false);
    out.extend(params(1, &kv(&vars), 1));
    out.extend(rec(STDIN, 1, b""));
    s.write_all(&out).await.unwrap();
    let res = read_response(&mut s, 1).await.expect("response");
    assert_eq!(res.protocol_status, 0);
    let text = res.text();
    assert!(text.starts_with("Status: 200 OK\r\n"), "{text}");
    assert!(text.contains("path=/split%20path/%C3%A9\n"), "{text}");
    // KEEP_CONN was not set: the server closes.
    assert!(read_rec(&mut s).await.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn download_10_mib_streams_in_bounded_records() {
    let srv = start_unix(|s| s).await;
    let n = 10 * MIB;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    send_request(&mut s, 1, true, &kv(&cgi("/big", &format!("n={n}"))), b"").await;
    let (mut rd, _wr) = s.split();
    let mut received_body = 0u64;
    let mut head_seen = false;
    let mut pending = Vec::new();
    let mut records = 0;
    loop {
        let r = read_rec(&mut rd).await.expect("record");
        assert_eq!(r.id, 1);
        if r.kind == END_REQUEST {
            break;
        }
        assert_eq!(r.kind, STDOUT);
        assert!(r.content.len() <= 65535);
        records += 1;
        let mut data = &r.content[..];
        if !head_seen {
            pending.extend_from_slice(data);
            let Some(pos) = pending.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            head_seen = true;
            let head = String::from_utf8_lossy(&pending[..pos]).into_owned();
            assert!(head.starts_with("Status: 200 OK"), "{head}");
            let rest = pending.split_off(pos + 4);
            pending = rest;
            data = &pending;
        }
        for (i, b) in data.iter().enumerate() {
            assert_eq!(*b, big_byte(received_body + i as u64));
        }
        received_body += data.len() as u64;
        let produced = srv.probe.produced.load(Ordering::SeqCst);
        assert!(
            produced <= received_body + IN_FLIGHT_BOUND,
            "the app ran {} bytes ahead of the client: not streaming",
            produced - received_body
        );
    }
    assert_eq!(received_body, n as u64);
    assert!(records >= n / 65535);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upload_10_mib_streams_with_backpressure() {
    let srv = start_unix(|s| s).await;
    let n = 10 * MIB;
    let data: Vec<u8> = (0..n).map(|i| (i % 241) as u8).collect();
    let mut vars = cgi("/upload", "");
    vars[0].1 = "PUT".into();
    vars.push(("CONTENT_LENGTH".into(), n.to_string()));
    let s = UnixStream::connect(&srv.socket).await.unwrap();
    let (rd, mut wr) = s.into_split();
    let mut head = begin(1, true);
    head.extend(params(1, &kv(&vars), 0xffff));
    wr.write_all(&head).await.unwrap();

    // The app does not read until the gate opens: the writer must get stuck after a
    // bounded number of bytes, not deliver all 10 MiB into server memory.
    let mut sent = 0usize;
    let mut gate_opened = false;
    for chunk in data.chunks(65535) {
        let r = rec(STDIN, 1, chunk);
        if gate_opened {
            wr.write_all(&r).await.unwrap();
        } else {
            match tokio::time::timeout(Duration::from_millis(500), wr.write_all(&r)).await {
                Ok(res) => res.unwrap(),
                Err(_) => {
                    assert!(
                        (sent as u64) <= IN_FLIGHT_BOUND,
                        "{sent} bytes accepted before backpressure"
                    );
                    assert_eq!(srv.probe.consumed.load(Ordering::SeqCst), 0);
                    srv.probe.upload_gate.notify_one();
                    gate_opened = true;
                    // write_all was cancelled part-way: the record is incomplete, so this
                    // connection cannot continue. Finish the check on a new one.
                    break;
                }
            }
        }
        sent += chunk.len();
    }
    assert!(
        gate_opened,
        "all {sent} bytes accepted with the app not reading"
    );
    drop((rd, wr));

    // The same upload with the app reading (a fresh server): complete and intact, and the
    // client never gets far ahead of what the app has read.
    let srv = start_unix(|s| s).await;
    srv.probe.upload_gate.notify_one();
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    let start_consumed = 0;
    let (mut rd, mut wr) = s.split();
    let writer = async {
        let mut out = begin(2, true);
        out.extend(params(2, &kv(&vars), 0xffff));
        wr.write_all(&out).await.unwrap();
        let mut sent = 0u64;
        for chunk in data.chunks(65535) {
            let consumed = srv.probe.consumed.load(Ordering::SeqCst) - start_consumed;
            assert!(
                sent <= consumed + IN_FLIGHT_BOUND,
                "ran ahead: {sent} vs {consumed}"
            );
            wr.write_all(&rec(STDIN, 2, chunk)).await.unwrap();
            sent += chunk.len() as u64;
        }
        wr.write_all(&rec(STDIN, 2, b"")).await.unwrap();
    };
    let reader = read_response(&mut rd, 2);
    let ((), res) = tokio::join!(writer, reader);
    let text = res.expect("response").text();
    assert!(text.contains(&format!("body_len={n}\n")), "{text}");
    assert!(
        text.contains(&format!("body_sum={}\n", checksum(&data))),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_drops_the_request_and_keeps_the_connection() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    send_request(&mut s, 1, true, &kv(&cgi("/slow", "")), b"").await;
    assert!(
        wait_until(Duration::from_secs(5), || srv
            .probe
            .slow_started
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    s.write_all(&rec(ABORT_REQUEST, 1, b"")).await.unwrap();
    let res = read_response(&mut s, 1).await.expect("END_REQUEST");
    assert_eq!(res.protocol_status, 0);
    assert!(res.stdout.is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || srv
            .probe
            .slow_dropped
            .load(Ordering::SeqCst))
        .await,
        "the app's future was not dropped"
    );
    // Same id again, same connection.
    send_request(&mut s, 1, true, &kv(&cgi("/after", "")), b"").await;
    let res = read_response(&mut s, 1).await.expect("response");
    assert!(res.text().contains("path=/after\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_before_params_end() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    let mut out = begin(3, true);
    out.extend(rec(PARAMS, 3, &pairs(&[("REQUEST_METHOD", "GET")])));
    out.extend(rec(ABORT_REQUEST, 3, b""));
    s.write_all(&out).await.unwrap();
    let res = read_response(&mut s, 3).await.expect("END_REQUEST");
    assert!(res.stdout.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_values_and_unknown_type() {
    let srv = start_unix(|s| s.max_concurrency(7)).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    let ask = pairs(&[
        ("FCGI_MAX_CONNS", ""),
        ("FCGI_MAX_REQS", ""),
        ("FCGI_MPXS_CONNS", ""),
        ("FCGI_NOT_A_THING", ""),
    ]);
    s.write_all(&rec(GET_VALUES, 0, &ask)).await.unwrap();
    let r = read_rec(&mut s).await.unwrap();
    assert_eq!((r.kind, r.id), (GET_VALUES_RESULT, 0));
    assert_eq!(
        r.content,
        pairs(&[
            ("FCGI_MAX_CONNS", "7"),
            ("FCGI_MAX_REQS", "7"),
            ("FCGI_MPXS_CONNS", "1")
        ])
    );
    s.write_all(&rec(42, 0, b"xyz")).await.unwrap();
    let r = read_rec(&mut s).await.unwrap();
    assert_eq!((r.kind, r.id), (UNKNOWN_TYPE, 0));
    assert_eq!(r.content, vec![42, 0, 0, 0, 0, 0, 0, 0]);
    // The connection still serves requests.
    send_request(&mut s, 9, false, &kv(&cgi("/x", "")), b"").await;
    assert!(read_response(&mut s, 9)
        .await
        .unwrap()
        .text()
        .contains("path=/x\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_role_is_refused() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    // Role 2 = AUTHORIZER.
    let mut out = rec(BEGIN_REQUEST, 5, &[0, 2, 1, 0, 0, 0, 0, 0]);
    out.extend(params(5, &[("REQUEST_METHOD", "GET")], 100));
    out.extend(rec(STDIN, 5, b""));
    s.write_all(&out).await.unwrap();
    let res = read_response(&mut s, 5).await.unwrap();
    assert_eq!(res.protocol_status, 3, "UNKNOWN_ROLE");
    send_request(&mut s, 6, true, &kv(&cgi("/y", "")), b"").await;
    assert!(read_response(&mut s, 6)
        .await
        .unwrap()
        .text()
        .contains("path=/y\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiplexed_requests_are_served_concurrently() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    // Interleave: BEGIN 1, BEGIN 2, params of both, stdin of both.
    let v1 = cgi("/slow", "");
    let v2 = cgi("/fast", "");
    let mut out = begin(1, true);
    out.extend(begin(2, true));
    let p1 = params(1, &kv(&v1), 7);
    let p2 = params(2, &kv(&v2), 5);
    out.extend(p1);
    out.extend(p2);
    out.extend(rec(STDIN, 2, b""));
    out.extend(rec(STDIN, 1, b""));
    s.write_all(&out).await.unwrap();
    // Request 2 completes while 1 is still waiting.
    let res2 = read_response(&mut s, 2).await.unwrap();
    assert!(res2.text().contains("path=/fast\n"));
    srv.probe.slow_gate.add_permits(1);
    let res1 = read_response(&mut s, 1).await.unwrap();
    assert!(res1.text().contains("path=/slow\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panic_is_500_for_that_request_only() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    // A panic in the app's future, then in its `call` itself (before there is a future).
    for path in ["/panic", "/panic-in-call"] {
        send_request(&mut s, 1, true, &kv(&cgi(path, "")), b"").await;
        let text = read_response(&mut s, 1).await.unwrap().text();
        assert!(
            text.starts_with("Status: 500 Internal Server Error\r\n"),
            "{path}: {text}"
        );
        assert!(text.contains("boom"), "debug shows the message: {text}");
        assert_next_request_ok(&mut s).await;
    }
}

/// The connection still serves: `/ok` on request id 1 answers 200.
async fn assert_next_request_ok(s: &mut UnixStream) {
    send_request(s, 1, true, &kv(&cgi("/ok", "")), b"").await;
    assert!(read_response(s, 1)
        .await
        .unwrap()
        .text()
        .contains("Status: 200 OK"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cgi_variables_get_400() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    let vars = [("REQUEST_METHOD", "G E T"), ("PATH_INFO", "/")];
    send_request(&mut s, 1, true, &vars, b"ignored body").await;
    let text = read_response(&mut s, 1).await.unwrap().text();
    assert!(text.starts_with("Status: 400 Bad Request\r\n"), "{text}");
    assert_next_request_ok(&mut s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unread_body_is_drained() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    // /panic never reads its 1 MiB body; the connection must stay in sync.
    let mut vars = cgi("/panic", "");
    vars.push(("CONTENT_LENGTH".into(), MIB.to_string()));
    let body = vec![7u8; MIB];
    let (mut rd, mut wr) = s.split();
    let pairs = kv(&vars);
    let w = send_request(&mut wr, 1, true, &pairs, &body);
    let r = read_response(&mut rd, 1);
    let ((), res) = tokio::join!(w, r);
    assert!(res.unwrap().text().starts_with("Status: 500"));
    send_request(&mut s, 2, true, &kv(&cgi("/next", "")), b"").await;
    assert!(read_response(&mut s, 2)
        .await
        .unwrap()
        .text()
        .contains("path=/next\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_closes_only_that_connection() {
    let srv = start_unix(|s| s).await;
    let inputs: Vec<Vec<u8>> = vec![
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![1, 1, 0, 1, 0, 2, 0, 0, 0, 1], // BEGIN_REQUEST with a 2-byte body
        {
            // STDIN before the end of PARAMS
            let mut v = begin(1, true);
            v.extend(rec(STDIN, 1, b"x"));
            v
        },
        {
            // a name-value pair longer than its stream
            let mut v = begin(1, true);
            v.extend(rec(PARAMS, 1, &[0x80, 0, 1, 0, 1, b'a']));
            v.extend(rec(PARAMS, 1, b""));
            v
        },
        {
            // BEGIN twice for the same active id
            let mut v = begin(1, true);
            v.extend(begin(1, true));
            v
        },
    ];
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut random = Vec::new();
    for _ in 0..20 {
        let len = 1 + (seed % 300) as usize;
        let mut v = Vec::with_capacity(len);
        for _ in 0..len {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            v.push(seed as u8);
        }
        random.push(v);
    }
    for (i, input) in inputs.iter().enumerate() {
        let mut s = UnixStream::connect(&srv.socket).await.unwrap();
        s.write_all(input).await.unwrap();
        let mut sink = Vec::new();
        let closed = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
        assert!(closed.is_ok(), "input {i}: connection not closed");
    }
    for input in &random {
        let mut s = UnixStream::connect(&srv.socket).await.unwrap();
        let _ = s.write_all(input).await;
        s.shutdown().await.ok();
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    }
    // The server is still up.
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    send_request(&mut s, 1, false, &kv(&cgi("/alive", "")), b"").await;
    assert!(read_response(&mut s, 1)
        .await
        .unwrap()
        .text()
        .contains("path=/alive\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_and_removes_socket() {
    let srv = start_unix(|s| s).await;
    let mut busy = UnixStream::connect(&srv.socket).await.unwrap();
    let idle = UnixStream::connect(&srv.socket).await.unwrap();
    send_request(&mut busy, 1, true, &kv(&cgi("/slow", "")), b"").await;
    assert!(
        wait_until(Duration::from_secs(5), || srv
            .probe
            .slow_started
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    srv.shutdown.cancel();
    assert!(
        wait_until(Duration::from_secs(5), || !exists(&srv.socket)).await,
        "socket file not removed"
    );
    assert!(UnixStream::connect(&srv.socket).await.is_err());
    // The idle keep-alive connection is closed.
    let mut idle = idle;
    let mut sink = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut sink))
        .await
        .expect("idle connection closed")
        .unwrap();
    assert!(!srv.done.is_finished());
    srv.probe.slow_gate.add_permits(1);
    let res = read_response(&mut busy, 1)
        .await
        .expect("in-flight response");
    assert!(res.text().contains("path=/slow\n"));
    tokio::time::timeout(Duration::from_secs(5), srv.done)
        .await
        .expect("server returned")
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_timeout_bounds_the_drain() {
    let srv = start_unix(|s| s.shutdown_timeout(Duration::from_millis(200))).await;
    let mut busy = UnixStream::connect(&srv.socket).await.unwrap();
    send_request(&mut busy, 1, true, &kv(&cgi("/slow", "")), b"").await;
    assert!(
        wait_until(Duration::from_secs(5), || srv
            .probe
            .slow_started
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    srv.shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), srv.done)
        .await
        .expect("server returned after its shutdown timeout")
        .unwrap();
    assert!(srv.probe.slow_dropped.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_socket_is_replaced_and_files_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s");
    // A stale socket: bound, then its listener dropped.
    drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
    assert!(exists(&path));
    let server = FcgiServer::new(Address::Unix(path.clone())).socket_mode(0o660);
    let bound = server.bind(&[]).await.expect("stale socket replaced");
    assert_eq!(bound.urls(), vec![format!("fcgi:unix:{}", path.display())]);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o660);
    // A live one is not taken over.
    let err = server.bind(&[]).await.unwrap_err();
    assert!(err.to_string().contains("in use"), "{err}");
    drop(bound);
    assert!(!exists(&path), "removed with its listener");
    // A regular file is never removed.
    std::fs::write(&path, "data").unwrap();
    let err = server.bind(&[]).await.unwrap_err();
    assert!(err.to_string().contains("not a socket"), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_port_zero_and_bind_override() {
    let server = FcgiServer::new(Address::Unix("/nonexistent/dir/never-used".into()));
    let bound = server.bind(&["127.0.0.1:0".to_string()]).await.unwrap();
    let addr = bound.tcp_addrs()[0];
    assert_eq!(bound.urls(), vec![format!("fcgi://{addr}")]);
    let probe = std::sync::Arc::new(Probe::default());
    let (shutdown, done) = run(bound, echo_app(probe));
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut client = Client::new_keep_alive_tokio(stream);
    for i in 0..3 {
        let vars = cgi("/tcp", &format!("i={i}"));
        let out = client
            .execute(FcgiRequest::new_tokio(
                client_params(&vars),
                tokio::io::empty(),
            ))
            .await
            .unwrap();
        let text = String::from_utf8(out.stdout.unwrap()).unwrap();
        assert!(text.contains(&format!("query=i={i}\n")), "{text}");
    }
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_applies_to_the_next_request_on_an_open_connection() {
    use mapproxy_serve::app::{app_fn, text_response};
    use mapproxy_serve::server::{ServeContext, Server, SharedApp};

    fn generation(n: u32) -> mapproxy_serve::App {
        app_fn(move |_req| async move {
            text_response(http::StatusCode::OK, "text/plain", format!("gen{n}"))
        })
    }
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("reload.sock");
    let app = SharedApp::new(generation(1));
    let shutdown = tokio_util::sync::CancellationToken::new();
    let ctx = ServeContext {
        app: app.clone(),
        shutdown: shutdown.clone(),
        bind: vec![],
        debug: false,
    };
    // Through the `Server` trait, as the command line runs it.
    let server: Box<dyn Server> = Box::new(FcgiServer::new(Address::Unix(socket.clone())));
    assert_eq!(
        server.describe(),
        format!("fcgi on unix:{}", socket.display())
    );
    let done = tokio::spawn(server.serve(ctx));
    assert!(wait_until(Duration::from_secs(5), || exists(&socket)).await);

    let mut s = UnixStream::connect(&socket).await.unwrap();
    send_request(&mut s, 1, true, &kv(&cgi("/", "")), b"").await;
    assert!(read_response(&mut s, 1)
        .await
        .unwrap()
        .text()
        .ends_with("gen1"));
    app.store(generation(2));
    send_request(&mut s, 1, true, &kv(&cgi("/", "")), b"").await;
    assert!(read_response(&mut s, 1)
        .await
        .unwrap()
        .text()
        .ends_with("gen2"));

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(!exists(&socket), "socket removed on exit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_request_gets_headers_only() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    let mut vars = cgi("/h", "");
    vars[0].1 = "HEAD".into();
    send_request(&mut s, 1, true, &kv(&vars), b"").await;
    let text = read_response(&mut s, 1).await.unwrap().text();
    assert!(text.starts_with("Status: 200 OK\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\n"), "no body: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_concurrency_limits_running_requests() {
    // maxChildren = 1: a second request waits until the first is done.
    let srv = start_unix(|s| s.max_concurrency(1)).await;
    let mut a = UnixStream::connect(&srv.socket).await.unwrap();
    let mut b = UnixStream::connect(&srv.socket).await.unwrap();
    send_request(&mut a, 1, true, &kv(&cgi("/slow", "")), b"").await;
    assert!(
        wait_until(Duration::from_secs(5), || srv
            .probe
            .slow_started
            .load(Ordering::SeqCst)
            == 1)
        .await
    );
    send_request(&mut b, 1, true, &kv(&cgi("/quick", "")), b"").await;
    let waited = tokio::time::timeout(Duration::from_millis(300), read_rec(&mut b)).await;
    assert!(
        waited.is_err(),
        "second request ran past the limit: {waited:?}"
    );
    srv.probe.slow_gate.add_permits(1);
    assert!(read_response(&mut a, 1)
        .await
        .unwrap()
        .text()
        .contains("path=/slow\n"));
    assert!(read_response(&mut b, 1)
        .await
        .unwrap()
        .text()
        .contains("path=/quick\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_peers_outside_web_server_addrs_are_refused() {
    let probe = std::sync::Arc::new(Probe::default());
    let server = FcgiServer::new(Address::Tcp {
        host: "127.0.0.1".into(),
        port: 0,
    })
    .web_server_addrs(vec!["192.0.2.1".parse().unwrap()]);
    let bound = server.bind(&[]).await.unwrap();
    let addr = bound.tcp_addrs()[0];
    let (shutdown, done) = run(bound, echo_app(probe.clone()));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let _ = s.write_all(&begin(1, false)).await;
    let mut sink = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut sink)).await;
    assert!(
        matches!(r, Ok(Ok(0)) | Ok(Err(_))),
        "closed without an answer: {r:?}"
    );
    shutdown.cancel();
    done.await.unwrap();

    let server = FcgiServer::new(Address::Tcp {
        host: "127.0.0.1".into(),
        port: 0,
    })
    .web_server_addrs(vec!["127.0.0.1".parse().unwrap()]);
    let bound = server.bind(&[]).await.unwrap();
    let addr = bound.tcp_addrs()[0];
    let (shutdown, done) = run(bound, echo_app(probe));
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    send_request(&mut s, 1, false, &kv(&cgi("/ok", "")), b"").await;
    assert!(read_response(&mut s, 1)
        .await
        .unwrap()
        .text()
        .contains("path=/ok\n"));
    shutdown.cancel();
    done.await.unwrap();
}

/// Read until EOF or error within `limit`; `None` when the connection stayed open.
async fn closed_within<R: tokio::io::AsyncRead + Unpin>(r: &mut R, limit: Duration) -> Option<u64> {
    let mut got = 0u64;
    let mut buf = vec![0u8; 1 << 16];
    tokio::time::timeout(limit, async {
        loop {
            match r.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got += n as u64,
            }
        }
    })
    .await
    .ok()?;
    Some(got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_params_get_431_and_the_connection_goes_on() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    // just under the 64 KiB default, over it, and far over the old 1 MiB protocol limit
    for (i, cookie) in [60_000usize, 70_000, 2 << 20].into_iter().enumerate() {
        let mut vars = cgi("/c", "");
        vars.push(("HTTP_COOKIE".into(), "c".repeat(cookie)));
        let id = i as u16 + 1;
        send_request(&mut s, id, true, &kv(&vars), b"").await;
        let res = read_response(&mut s, id).await.expect("answered");
        let text = res.text();
        let want = if cookie < 64 * 1024 {
            "Status: 200 OK\r\n"
        } else {
            "Status: 431 Request Header Fields Too Large\r\n"
        };
        assert!(text.starts_with(want), "{cookie}: {text}");
        assert_eq!(res.protocol_status, 0);
    }
    assert_next_request_ok(&mut s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn params_buffered_on_one_connection_are_bounded() {
    let srv = start_unix(|s| s).await;
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    // eight requests, each with 60,000 bytes of PARAMS and no end to them: the connection
    // holds four requests' worth (4 x 64 KiB); the others are refused at once
    let chunk = vec![b'x'; 60_000];
    let mut out = Vec::new();
    for id in 1..=8u16 {
        out.extend(begin(id, true));
        out.extend(rec(PARAMS, id, &chunk));
    }
    s.write_all(&out).await.unwrap();
    let mut refused = Vec::new();
    for _ in 5..=8 {
        let r = tokio::time::timeout(Duration::from_secs(10), read_rec(&mut s))
            .await
            .expect("refusal in time")
            .expect("a record");
        assert_eq!(r.kind, END_REQUEST, "{r:?}");
        assert_eq!(r.content[4], 2, "OVERLOADED");
        refused.push(r.id);
    }
    assert_eq!(refused, vec![5, 6, 7, 8]);
    // aborting an open request frees its share
    s.write_all(&rec(ABORT_REQUEST, 2, b"")).await.unwrap();
    let r = read_rec(&mut s).await.expect("END_REQUEST for the abort");
    assert_eq!((r.kind, r.id), (END_REQUEST, 2));
    // and a new one fits again
    send_request(&mut s, 9, true, &kv(&cgi("/fits", "")), b"").await;
    let res = read_response(&mut s, 9).await.expect("served");
    assert!(res.text().contains("path=/fits\n"), "{}", res.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_half_finished_connections_are_closed() {
    let srv = start_unix(|s| {
        s.header_read_timeout(Some(Duration::from_millis(500)))
            .channel_timeout(Some(Duration::from_secs(1)))
    })
    .await;
    let mut stalled_upload = cgi("/upload", "");
    stalled_upload[0].1 = "PUT".into();
    stalled_upload.push(("CONTENT_LENGTH".into(), "100".into()));
    srv.probe.upload_gate.notify_one();
    let inputs: Vec<(&str, Vec<u8>, Duration)> = vec![
        ("silent", vec![], Duration::from_millis(400)),
        (
            "half a record header",
            vec![1, 1, 0],
            Duration::from_millis(400),
        ),
        (
            "PARAMS never ended",
            [
                begin(1, true),
                rec(PARAMS, 1, &pairs(&[("REQUEST_METHOD", "GET")])),
            ]
            .concat(),
            Duration::from_millis(400),
        ),
        (
            "upload stalled",
            {
                let mut v = begin(1, true);
                v.extend(params(1, &kv(&stalled_upload), 0xffff));
                v.extend(rec(STDIN, 1, b"0123456789"));
                v
            },
            Duration::from_millis(800),
        ),
    ];
    for (what, input, at_least) in inputs {
        let t0 = std::time::Instant::now();
        let mut s = UnixStream::connect(&srv.socket).await.unwrap();
        s.write_all(&input).await.unwrap();
        let closed = closed_within(&mut s, Duration::from_secs(10)).await;
        assert!(closed.is_some(), "{what}: connection kept open");
        assert!(t0.elapsed() >= at_least, "{what}: {:?}", t0.elapsed());
    }
    // an idle keep-alive connection lasts past the header time, until channel_timeout
    let mut s = UnixStream::connect(&srv.socket).await.unwrap();
    assert_next_request_ok(&mut s).await;
    let t0 = std::time::Instant::now();
    assert!(closed_within(&mut s, Duration::from_secs(10))
        .await
        .is_some());
    assert!(
        t0.elapsed() >= Duration::from_millis(800),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_web_server_that_does_not_read_is_cut_and_frees_its_connection_slot() {
    let srv = start_unix(|s| {
        s.connection_limit(1)
            .send_timeout(Some(Duration::from_millis(500)))
    })
    .await;
    // takes the only connection slot and never reads its 1 GiB answer
    let mut slow = UnixStream::connect(&srv.socket).await.unwrap();
    let n = 1u64 << 30;
    send_request(
        &mut slow,
        1,
        true,
        &kv(&cgi("/big", &format!("n={n}"))),
        b"",
    )
    .await;
    // the next connection waits in the backlog until the slow one is cut
    let t0 = std::time::Instant::now();
    let mut next = UnixStream::connect(&srv.socket).await.unwrap();
    send_request(&mut next, 1, true, &kv(&cgi("/next", "")), b"").await;
    let res = tokio::time::timeout(Duration::from_secs(10), read_response(&mut next, 1))
        .await
        .expect("second connection served in time")
        .expect("response");
    assert!(res.text().contains("path=/next\n"));
    assert!(
        t0.elapsed() >= Duration::from_millis(400),
        "{:?}",
        t0.elapsed()
    );
    let got = closed_within(&mut slow, Duration::from_secs(10)).await;
    assert!(got.is_some_and(|g| g < n), "slow connection: {got:?}");
    assert!(srv.probe.produced.load(Ordering::SeqCst) < n);
}

/// `REMOTE_USER` sent by whoever reaches the socket does not pass an `auth_basic` pipeline:
/// the server ignores it unless `trust_remote_user`, and the filter ignores a carried user
/// unless its own `trust_remote_user`. Real credentials pass either way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_remote_user_passes_basic_auth_only_when_both_trust_it() {
    use mapproxy_serve::build::BuildContext;
    use mapproxy_serve::config::FactoryConf;

    for (server_trusts, filter_trusts) in
        [(false, false), (true, false), (false, true), (true, true)]
    {
        let what = format!("server trusts {server_trusts}, filter trusts {filter_trusts}");
        let srv = start_unix_app(
            |s| s.trust_remote_user(server_trusts),
            |probe| {
                let conf = FactoryConf::from_pairs(
                    "Paste#auth_basic",
                    [
                        ("users", "bob:pw"),
                        (
                            "trust_remote_user",
                            if filter_trusts { "on" } else { "off" },
                        ),
                    ],
                );
                let auth =
                    mapproxy_serve::filters::basic_auth::build(&conf, &mut BuildContext::current())
                        .expect("auth_basic");
                auth(echo_app(probe))
            },
        )
        .await;
        let mut s = UnixStream::connect(&srv.socket).await.unwrap();
        let mut forged = cgi("/x", "");
        forged.push(("REMOTE_USER".into(), "alice".into()));
        send_request(&mut s, 1, true, &kv(&forged), b"").await;
        let (head, body) = split_head(&read_response(&mut s, 1).await.unwrap().stdout);
        if server_trusts && filter_trusts {
            assert!(head.starts_with("Status: 200 OK\r\n"), "{what}: {head}");
            assert_eq!(field(&String::from_utf8_lossy(&body), "user"), "alice");
        } else {
            assert!(
                head.starts_with("Status: 401 Unauthorized\r\n"),
                "{what}: {head}"
            );
            assert!(head.contains("www-authenticate: Basic"), "{what}: {head}");
        }
        // real credentials next to the forged variable: their user, unless both trust it
        let mut with_credentials = forged.clone();
        with_credentials.push(("HTTP_AUTHORIZATION".into(), support::basic("bob:pw")));
        send_request(&mut s, 1, true, &kv(&with_credentials), b"").await;
        let (head, body) = split_head(&read_response(&mut s, 1).await.unwrap().stdout);
        assert!(head.starts_with("Status: 200 OK\r\n"), "{what}: {head}");
        let expected = if server_trusts && filter_trusts {
            "alice"
        } else {
            "bob"
        };
        assert_eq!(
            field(&String::from_utf8_lossy(&body), "user"),
            expected,
            "{what}"
        );
        srv.shutdown.cancel();
    }
}
