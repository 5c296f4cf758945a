//! What a server is: built from its `[server:NAME]` section by a registered factory, then
//! given a [`ServeContext`]: the [`SharedApp`] (swapped atomically on reload), a shutdown
//! token and the command line's overrides. It binds, prints `serving on ...` to stderr, and
//! serves until the token is cancelled, then drains in-flight requests.
//!
//! The runtime's servers (HTTP, FastCGI) implement [`Server`]; so can a crate of its own.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ::http::{Request, Response};
use arc_swap::ArcSwap;
use tokio_util::sync::CancellationToken;
use tower::Service;

use crate::app::{App, AppFuture, Body, ServiceFuture};

/// A boxed future returned by [`Server::serve`].
pub type ServeFuture = Pin<Box<dyn Future<Output = Result<(), ServeError>> + Send>>;

/// A failure while serving (bind error, accept error): exit status 1.
#[derive(Debug)]
pub struct ServeError(pub String);

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ServeError {}

/// A built server, ready to run an app.
pub trait Server: Send + Sync + 'static {
    /// One line naming what it will serve on, e.g. `http on 127.0.0.1:8080`.
    fn describe(&self) -> String;

    /// Bind, print one `serving on ...` line per listener on stderr, serve until
    /// `ctx.shutdown` is cancelled, then let in-flight requests finish (up to the server's
    /// shutdown timeout) and return.
    fn serve(self: Box<Self>, ctx: ServeContext) -> ServeFuture;

    /// Worker threads the tokio runtime should have (the section's `threads`/`workers`);
    /// `None`: tokio's default (one per CPU). The command line asks before building the
    /// runtime that runs [`Server::serve`].
    fn worker_threads(&self) -> Option<usize> {
        None
    }
}

/// What the command line hands a server.
#[derive(Clone)]
pub struct ServeContext {
    /// The app to serve; reloads swap it.
    pub app: SharedApp,
    /// Cancelled on SIGTERM/SIGINT: stop accepting, drain, return.
    pub shutdown: CancellationToken,
    /// `-b/--bind` addresses (`8080`, `:8080`, `host:port`, `[v6]:port`, `unix:/path`), which
    /// replace the section's own.
    pub bind: Vec<String>,
    /// `--debug`: panics show their message and backtrace in the 500 body.
    pub debug: bool,
}

/// The running app, swapped atomically on reload: each request takes the current stack when
/// it starts (also on open keep-alive and HTTP/2 connections); in-flight requests keep theirs.
#[derive(Clone)]
pub struct SharedApp(Arc<ArcSwap<App>>);

impl SharedApp {
    /// Start with `app`.
    pub fn new(app: App) -> Self {
        SharedApp(Arc::new(ArcSwap::from_pointee(app)))
    }

    /// Replace the app for every request that starts from now on.
    pub fn store(&self, app: App) {
        self.0.store(Arc::new(app));
    }

    /// Answer `req` with the app as it is now (no clone of the app).
    pub fn call(&self, req: Request<Body>) -> AppFuture {
        self.0.load().call(req)
    }
}

impl Service<Request<Body>> for SharedApp {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> Self::Future {
        SharedApp::call(self, req).into()
    }
}
