//! Embedding: build the app of a Paste Deploy ini file with the library API and serve it with
//! your own hyper server (the same `App` nests into axum with `Router::fallback_service`).
//!
//! ```text
//! cargo run --example embed -- ini/develop.ini 127.0.0.1:8081
//! ```

use std::net::SocketAddr;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use indexmap::IndexMap;
use mapproxy_serve::app::box_request;
use mapproxy_serve::environ::PeerAddr;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let ini = args.next().unwrap_or_else(|| "ini/develop.ini".into());
    let addr: SocketAddr = args
        .next()
        .unwrap_or_else(|| "127.0.0.1:8081".into())
        .parse()?;

    // Paste's loadapp: `[app:main]` (or the pipeline/composite named main) of the file.
    // Command-line style values go in the map: they win over [DEFAULT] in %(name)s.
    let app = mapproxy_serve::deploy::load_app(&format!("config:{ini}"), None, &IndexMap::new())
        .map_err(|errors| format!("{errors}"))?;

    let listener = tokio::net::TcpListener::bind(addr).await?;
    eprintln!("serving {ini} on http://{}", listener.local_addr()?);
    loop {
        let (stream, peer) = listener.accept().await?;
        let app = app.clone();
        tokio::spawn(async move {
            // What the built-in server does too: tell the apps who is calling.
            let svc = tower::service_fn(move |req: http::Request<hyper::body::Incoming>| {
                let mut req = box_request(req);
                req.extensions_mut().insert(PeerAddr(peer));
                let res = app.call(req);
                async move { Ok::<_, std::convert::Infallible>(res.await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), TowerToHyperService::new(svc))
                .await;
        });
    }
}
