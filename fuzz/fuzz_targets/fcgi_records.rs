//! Arbitrary bytes as what a web server sends on a FastCGI connection:
//!
//! 1. through the record parser, record by record until it needs more bytes or fails; every
//!    BEGIN_REQUEST body through `parse_begin`, every PARAMS stream (per request id, up to
//!    its empty record) and every GET_VALUES body through `parse_pairs`, and the pairs
//!    through `build_request` (the CGI variables → HTTP request);
//! 2. as a whole connection served in memory (`tokio::io::duplex`) by the real connection
//!    code with a tiny app that reads the body and answers, until the server closes it.
//!
//! Errors are expected; a panic, an abort, a hang or unbounded memory is a bug. A connection
//! that has not finished 5 seconds after the input ended is reported as a panic.
#![no_main]

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use libfuzzer_sys::fuzz_target;
use mapproxy_serve::app::{app_fn, text_response, App};
use mapproxy_serve::server::fcgi::fuzzing::{
    build_request, parse_begin, parse_pairs, parse_record, serve_connection,
};
use mapproxy_serve::server::SharedApp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const BEGIN_REQUEST: u8 = 1;
const PARAMS: u8 = 4;
const GET_VALUES: u8 = 9;

/// The most PARAMS bytes kept per request id here (the server's own limit is 1 MiB).
const MAX_PARAMS: usize = 1 << 20;

fn parse_all(data: &[u8]) {
    let mut buf = BytesMut::from(data);
    let mut params: HashMap<u16, BytesMut> = HashMap::new();
    while let Ok(Some(rec)) = parse_record(&mut buf) {
        // Every content as a name-value stream too: more shapes for build_request.
        if let Ok(pairs) = parse_pairs(&rec.content) {
            let _ = build_request(&pairs);
        }
        match rec.kind {
            BEGIN_REQUEST => {
                if parse_begin(&rec.content).is_ok() {
                    params.insert(rec.request_id, BytesMut::new());
                }
            }
            PARAMS if rec.content.is_empty() => {
                if let Some(stream) = params.remove(&rec.request_id) {
                    match parse_pairs(&stream) {
                        Ok(pairs) => match build_request(&pairs) {
                            Ok(req) => {
                                let _ = (req.request.uri().to_string(), req.content_length);
                            }
                            Err(e) => {
                                let _ = format!("{e:?}");
                            }
                        },
                        Err(e) => {
                            let _ = e.to_string();
                        }
                    }
                }
            }
            PARAMS => {
                if let Some(stream) = params.get_mut(&rec.request_id) {
                    if stream.len() + rec.content.len() <= MAX_PARAMS {
                        stream.extend_from_slice(&rec.content);
                    }
                }
            }
            GET_VALUES => {
                let _ = parse_pairs(&rec.content);
            }
            _ => {}
        }
    }
}

/// Reads the whole body (at most 1 MiB of it), then answers with what it saw.
fn app() -> App {
    app_fn(|req: http::Request<mapproxy_serve::Body>| async move {
        let (parts, mut body) = req.into_parts();
        let mut n = 0usize;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        n += d.len();
                    }
                    if n > 1 << 20 {
                        break;
                    }
                }
                Err(_) => break,
            }
        }
        let text = format!("{} {} {} bytes\n", parts.method, parts.uri, n);
        text_response(http::StatusCode::OK, "text/plain", Bytes::from(text))
    })
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    })
}

fn serve(data: &[u8]) {
    static APP: OnceLock<SharedApp> = OnceLock::new();
    let app = APP.get_or_init(|| SharedApp::new(app())).clone();
    let input = Bytes::copy_from_slice(data);
    runtime().block_on(async move {
        let (client, server) = tokio::io::duplex(64 * 1024);
        let (srd, swr) = tokio::io::split(server);
        let (mut crd, mut cwr) = tokio::io::split(client);
        let server = tokio::spawn(serve_connection(srd, swr, app));
        let write = async move {
            // The server may close first (protocol error, KEEP_CONN=0): a broken pipe then.
            let _ = cwr.write_all(&input).await;
            let _ = cwr.shutdown().await;
            cwr
        };
        let read = async move {
            let mut out = Vec::new();
            let _ = crd.read_to_end(&mut out).await;
            out
        };
        let done = async {
            let (_cwr, _out) = tokio::join!(write, read);
            server.await
        };
        match tokio::time::timeout(Duration::from_secs(5), done).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => std::panic::resume_unwind(e.into_panic()),
            Err(_) => panic!("the connection did not finish 5 s after the input ended"),
        }
    });
}

fuzz_target!(|data: &[u8]| {
    parse_all(data);
    serve(data);
});
