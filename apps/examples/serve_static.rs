//! Serve a directory with [`StaticFiles`] over HTTP/1.1, for manual tests and benchmarks:
//! `cargo run --release -p mapproxy-serve-filters --example serve_static -- DIR 127.0.0.1:8080`

use std::convert::Infallible;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mapproxy_serve_apps::serve_dir::StaticFiles;
use tower::Service;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| ".".into());
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:8080".into());
    // Tuning knobs for measurements: STATIC_CHUNK, STATIC_MAX_CACHED (bytes),
    // STATIC_REVALIDATE_MS.
    let env = |k: &str| std::env::var(k).ok().and_then(|v| v.parse::<u64>().ok());
    let mut builder = StaticFiles::builder(&dir);
    if let Some(n) = env("STATIC_CHUNK") {
        builder = builder.chunk_size(usize::try_from(n)?);
    }
    if let Some(n) = env("STATIC_MAX_CACHED") {
        builder = builder.max_cached_file_size(n);
    }
    if let Some(n) = env("STATIC_REVALIDATE_MS") {
        builder = builder.revalidate_after(std::time::Duration::from_millis(n));
    }
    let files = builder.build()?;
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    eprintln!("serving on http://{}", listener.local_addr()?);
    loop {
        let (sock, _) = listener.accept().await?;
        let _ = sock.set_nodelay(true);
        let files = files.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(move |req| {
                let mut f = files.clone();
                async move { Ok::<_, Infallible>(f.call(req).await.unwrap_or_else(|n| match n {})) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(sock), svc)
                .await;
        });
    }
}
