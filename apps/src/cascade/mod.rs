//! Try several apps in turn until one answers (`egg:Paste#cascade`).
//!
//! [`Cascade`] sends the request to each app in order. When an app that is not the last
//! answers with a status in the catch list (default `404`), its response is dropped and the
//! next app is tried; the last app's answer is returned as it is. The request body is
//! buffered once (up to [`Cascade::max_body`], 16 MiB by default; a larger body gets an empty 413,
//! a broken one an empty 400) and replayed for every try. With a single app nothing is buffered.
//!
//! ```
//! use http::{Request, Response, StatusCode};
//! use mapproxy_serve_apps::cascade::{Cascade, CascadeBody};
//! use tower::ServiceExt;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! let status_app = |code: u16| {
//!     tower::service_fn(move |_req: Request<CascadeBody>| async move {
//!         let mut res = Response::new(String::new());
//!         *res.status_mut() = StatusCode::from_u16(code).unwrap();
//!         Ok::<_, std::convert::Infallible>(res)
//!     })
//! };
//! let cascade = Cascade::new(vec![status_app(404), status_app(200)]).unwrap();
//! let req = Request::new(http_body_util::Empty::<bytes::Bytes>::new());
//! let res = cascade.oneshot(req).await.unwrap();
//! assert_eq!(res.status(), StatusCode::OK);
//! # }
//! ```

mod factory;
pub use factory::{build, children};

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use tower::{Service, ServiceExt};

pub use mapproxy_serve_core::BoxError;

/// The request body each app of a [`Cascade`] is given.
pub type CascadeBody = UnsyncBoxBody<Bytes, BoxError>;

/// Default bound on the buffered request body.
pub const DEFAULT_MAX_BODY: usize = 16 * 1024 * 1024;

/// A cascade needs at least one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EmptyCascade;

impl std::fmt::Display for EmptyCascade {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a cascade needs at least one app")
    }
}

impl std::error::Error for EmptyCascade {}

/// Apps tried in order; see the [module docs](self).
#[derive(Clone, Debug)]
pub struct Cascade<S> {
    apps: Arc<[S]>,
    catch: Arc<[StatusCode]>,
    max_body: usize,
}

impl<S> Cascade<S> {
    /// Try `apps` in this order; a 404 from any but the last means "try the next".
    pub fn new(apps: Vec<S>) -> Result<Self, EmptyCascade> {
        if apps.is_empty() {
            return Err(EmptyCascade);
        }
        Ok(Cascade {
            apps: apps.into(),
            catch: Arc::new([StatusCode::NOT_FOUND]),
            max_body: DEFAULT_MAX_BODY,
        })
    }

    /// The statuses that mean "try the next app" (Paste's `catch`).
    pub fn catch(mut self, codes: impl IntoIterator<Item = StatusCode>) -> Self {
        self.catch = codes.into_iter().collect::<Vec<_>>().into();
        self
    }

    /// The largest request body buffered for replay; larger ones get 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// The number of apps.
    pub fn len(&self) -> usize {
        self.apps.len()
    }

    /// Always false: a cascade has at least one app.
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
    }
}

/// An error answer with an empty body (the response body type is the apps').
fn status_only<RB: Default>(status: StatusCode) -> Response<RB> {
    let mut res = Response::new(RB::default());
    *res.status_mut() = status;
    res
}

fn full(bytes: Bytes) -> CascadeBody {
    Full::new(bytes)
        .map_err(|never| match never {})
        .boxed_unsync()
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

/// One call, boxed here where the compiler sees `S::Future: Send` (a boxed future inside the
/// `async` block below avoids rustc's "`Send` is not general enough" limitation).
fn call_app<S, RB>(app: S, req: Request<CascadeBody>) -> BoxFuture<Result<Response<RB>, S::Error>>
where
    S: Service<Request<CascadeBody>, Response = Response<RB>> + Send + 'static,
    S::Future: Send + 'static,
{
    Box::pin(app.oneshot(req))
}

impl<S, B, RB> Service<Request<B>> for Cascade<S>
where
    S: Service<Request<CascadeBody>, Response = Response<RB>> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
    RB: Default + Send + 'static,
{
    type Response = Response<RB>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Response<RB>, S::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<B>) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let (parts, body) = req.into_parts();
            if this.apps.len() == 1 {
                let app = this.apps[0].clone();
                let body = body.map_err(|e| -> BoxError { e.into() }).boxed_unsync();
                return call_app(app, Request::from_parts(parts, body)).await;
            }
            let bytes = match Limited::new(body, this.max_body).collect().await {
                Ok(c) => c.to_bytes(),
                Err(e) if e.is::<LengthLimitError>() => {
                    return Ok(status_only(StatusCode::PAYLOAD_TOO_LARGE))
                }
                Err(_) => return Ok(status_only(StatusCode::BAD_REQUEST)),
            };
            let n = this.apps.len();
            for i in 0..n.saturating_sub(1) {
                let app = this.apps[i].clone();
                let req = Request::from_parts(parts.clone(), full(bytes.clone()));
                let res = call_app(app, req).await?;
                if !this.catch.contains(&res.status()) {
                    return Ok(res);
                }
            }
            let last = this.apps[n - 1].clone();
            call_app(last, Request::from_parts(parts, full(bytes))).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;
    use std::sync::atomic::{AtomicUsize, Ordering};

    type TestApp =
        tower::util::BoxCloneSyncService<Request<CascadeBody>, Response<Bytes>, Infallible>;

    /// An app answering `code` with "<name>:<request body>", counting its calls.
    fn app(name: &'static str, code: u16, calls: Arc<AtomicUsize>) -> TestApp {
        tower::util::BoxCloneSyncService::new(tower::service_fn(
            move |req: Request<CascadeBody>| {
                let calls = calls.clone();
                async move {
                    calls.fetch_add(1, Ordering::SeqCst);
                    let body = req.into_body().collect().await.unwrap().to_bytes();
                    let mut text = format!("{name}:").into_bytes();
                    text.extend_from_slice(&body);
                    let mut res = Response::new(Bytes::from(text));
                    *res.status_mut() = StatusCode::from_u16(code).unwrap();
                    Ok::<_, Infallible>(res)
                }
            },
        ))
    }

    fn req(body: &'static str) -> Request<Full<Bytes>> {
        Request::builder()
            .method("POST")
            .uri("/x")
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    }

    #[tokio::test]
    async fn tries_in_order_and_replays_the_body() {
        let calls = Arc::new(AtomicUsize::new(0));
        let c = Cascade::new(vec![
            app("a", 404, calls.clone()),
            app("b", 404, calls.clone()),
            app("c", 200, calls.clone()),
            app("d", 200, calls.clone()),
        ])
        .unwrap();
        let res = c.oneshot(req("payload")).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.into_body(), "c:payload");
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn catch_list_and_last_answer_as_is() {
        let n = Arc::new(AtomicUsize::new(0));
        let c = Cascade::new(vec![app("a", 403, n.clone()), app("b", 500, n.clone())])
            .unwrap()
            .catch([StatusCode::FORBIDDEN, StatusCode::NOT_FOUND]);
        let res = c.oneshot(req("")).await.unwrap();
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert_eq!(res.into_body(), "b:");

        // A status outside the list stops the cascade.
        let c = Cascade::new(vec![app("a", 500, n.clone()), app("b", 200, n.clone())]).unwrap();
        let res = c.oneshot(req("")).await.unwrap();
        assert_eq!(res.into_body(), "a:");

        // The last app's 404 is returned.
        let c = Cascade::new(vec![app("a", 404, n.clone()), app("b", 404, n.clone())]).unwrap();
        let res = c.oneshot(req("")).await.unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(res.into_body(), "b:");
    }

    #[tokio::test]
    async fn bounded_body() {
        let n = Arc::new(AtomicUsize::new(0));
        let c = Cascade::new(vec![app("a", 404, n.clone()), app("b", 200, n.clone())])
            .unwrap()
            .max_body(4);
        let res = c.clone().oneshot(req("12345")).await.unwrap();
        assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert_eq!(n.load(Ordering::SeqCst), 0);
        let res = c.oneshot(req("1234")).await.unwrap();
        assert_eq!(res.into_body(), "b:1234");
        // One app: the body is passed through, not buffered or bounded.
        let c = Cascade::new(vec![app("a", 200, n.clone())])
            .unwrap()
            .max_body(1);
        let res = c.oneshot(req("12345")).await.unwrap();
        assert_eq!(res.into_body(), "a:12345");
    }

    #[test]
    fn empty_is_an_error() {
        assert!(Cascade::<TestApp>::new(vec![]).is_err());
    }
}
