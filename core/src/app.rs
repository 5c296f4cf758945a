//! The core service types: every app, filter and composite is one of these.
//!
//! Apps never fail at the service level (`Error = Infallible`): errors become responses.
//! Type erasure happens here, at the config boundary; inside a filter use concrete types.
//!
//! Per request, a stack of erased apps costs one boxed future per Tower layer and nothing for
//! a [`Handler`] that answers at once; the stack itself is never cloned (see [`App`]).
//!
//! ```
//! use http::{Request, StatusCode};
//! use mapproxy_serve_core::app::{app_fn, empty_body, text_response, App};
//!
//! let app: App = app_fn(|_req| async { text_response(StatusCode::OK, "text/plain", "hi") });
//! let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! let res = rt.block_on(app.call(Request::new(empty_body())));
//! assert_eq!(res.status(), StatusCode::OK);
//! ```

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use tower::{Layer, Service, ServiceExt};

pub use crate::error::BoxError;

/// The body type of every request and response (`Send`, not `Sync`, like axum's).
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A built application: a type-erased service that is called through `&self`.
///
/// Cloning is one reference count (no allocation) and calling needs no clone, so a stack of
/// erased apps costs one boxed future per Tower layer per request, and none for apps that
/// implement [`Handler`] themselves and answer at once (text, urlmap). It is also a Tower
/// [`Service`], so Tower middleware wraps it as usual.
#[derive(Clone)]
pub struct App(Arc<dyn Handler>);

/// An app called through `&self`: what [`App`] erases. Implement it for apps that do not need
/// Tower's `&mut self` and `poll_ready` (most apps); wrap a Tower service with [`app`] instead.
pub trait Handler: Send + Sync + 'static {
    /// Answer `req`. Work that can panic belongs in the future: servers catch panics of both.
    fn call(&self, req: Request<Body>) -> AppFuture;
}

impl App {
    /// Erase a [`Handler`].
    pub fn from_handler(handler: impl Handler) -> App {
        App(Arc::new(handler))
    }

    /// Answer `req`.
    pub fn call(&self, req: Request<Body>) -> AppFuture {
        self.0.call(req)
    }
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("App")
    }
}

impl Service<Request<Body>> for App {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request<Body>) -> ServiceFuture {
        ServiceFuture(App::call(self, req))
    }
}

/// The future of an [`App`]: a response that is ready at once (no allocation), or a boxed
/// future.
pub struct AppFuture(FutureKind);

enum FutureKind {
    Ready(Option<Response<Body>>),
    Boxed(Pin<Box<dyn Future<Output = Response<Body>> + Send>>),
}

impl AppFuture {
    /// A response that is already there.
    pub fn ready(res: Response<Body>) -> AppFuture {
        AppFuture(FutureKind::Ready(Some(res)))
    }

    /// A response still to come (boxed).
    pub fn new(fut: impl Future<Output = Response<Body>> + Send + 'static) -> AppFuture {
        AppFuture(FutureKind::Boxed(Box::pin(fut)))
    }

    /// The response passed through `f`: at once when it is ready (no allocation), else in a
    /// new boxed future.
    pub fn map(
        self,
        f: impl FnOnce(Response<Body>) -> Response<Body> + Send + 'static,
    ) -> AppFuture {
        match self.0 {
            FutureKind::Ready(Some(res)) => AppFuture::ready(f(res)),
            FutureKind::Ready(None) => self,
            FutureKind::Boxed(fut) => AppFuture::new(async move { f(fut.await) }),
        }
    }
}

impl Future for AppFuture {
    type Output = Response<Body>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Response<Body>> {
        match &mut self.get_mut().0 {
            FutureKind::Ready(res) => match res.take() {
                Some(res) => Poll::Ready(res),
                None => panic!("AppFuture polled after completion"),
            },
            FutureKind::Boxed(fut) => fut.as_mut().poll(cx),
        }
    }
}

/// [`AppFuture`] as a Tower service's future (`Result<_, Infallible>`).
pub struct ServiceFuture(AppFuture);

impl From<AppFuture> for ServiceFuture {
    fn from(fut: AppFuture) -> ServiceFuture {
        ServiceFuture(fut)
    }
}

impl Future for ServiceFuture {
    type Output = Result<Response<Body>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.get_mut().0).poll(cx).map(Ok)
    }
}

/// A built filter: wraps an app into another app (Paste's `filter(app) -> app`).
pub type Filter = Arc<dyn Fn(App) -> App + Send + Sync>;

/// An empty body.
pub fn empty_body() -> Body {
    Empty::<Bytes>::new()
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body holding `bytes` in one frame.
pub fn full_body(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into())
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// A body that [`box_body`] erases into [`Body`] (the bounds, written once; every body with
/// `Bytes` frames, an error that converts to [`BoxError`], `Send + 'static` is one).
pub trait IntoBody: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static {}

impl<B> IntoBody for B where B: http_body::Body<Data = Bytes, Error: Into<BoxError>> + Send + 'static
{}

/// A response that [`app`] erases into `Response<Body>`: `Response<B>` for any [`IntoBody`].
pub trait IntoAppResponse: Send + 'static {
    /// The response with its body erased.
    fn into_app_response(self) -> Response<Body>;
}

impl<B: IntoBody> IntoAppResponse for Response<B> {
    fn into_app_response(self) -> Response<Body> {
        box_response(self)
    }
}

/// A Tower service that [`app`] erases into an [`App`] (the bounds, written once; blanket
/// implemented).
pub trait AppService:
    Service<Request<Body>, Response: IntoAppResponse, Error = Infallible, Future: Send + 'static>
    + Clone
    + Send
    + Sync
    + 'static
{
}

impl<S> AppService for S where
    S: Service<
            Request<Body>,
            Response: IntoAppResponse,
            Error = Infallible,
            Future: Send + 'static,
        > + Clone
        + Send
        + Sync
        + 'static
{
}

/// Erase any body type into [`Body`].
pub fn box_body<B: IntoBody>(body: B) -> Body {
    // Already a `Body`: boxing it again would add an allocation and a second dynamic call
    // per frame.
    if std::any::TypeId::of::<B>() == std::any::TypeId::of::<Body>() {
        let mut slot = Some(body);
        if let Some(b) = (&mut slot as &mut dyn std::any::Any).downcast_mut::<Option<Body>>() {
            if let Some(b) = b.take() {
                return b;
            }
        }
        if let Some(body) = slot {
            return body.map_err(Into::into).boxed_unsync();
        }
        return empty_body();
    }
    body.map_err(Into::into).boxed_unsync()
}

/// Erase the body type of a response.
pub fn box_response<B: IntoBody>(res: Response<B>) -> Response<Body> {
    res.map(box_body)
}

/// Erase the body type of a request.
pub fn box_request<B: IntoBody>(req: Request<B>) -> Request<Body> {
    req.map(box_body)
}

/// A plain response with a content type.
pub fn text_response(
    status: StatusCode,
    content_type: &str,
    body: impl Into<Bytes>,
) -> Response<Body> {
    let mut res = Response::new(full_body(body));
    *res.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(content_type) {
        res.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    res
}

/// Erase a Tower service into an [`App`]. Each request calls a clone of `svc` (Tower's
/// `&mut self`), so keep its clone cheap: `Arc`s and [`App`]s, which are one reference count.
pub fn app<S: AppService>(svc: S) -> App {
    App::from_handler(TowerHandler(svc))
}

struct TowerHandler<S>(S);

impl<S: AppService> Handler for TowerHandler<S> {
    fn call(&self, req: Request<Body>) -> AppFuture {
        use futures_util::FutureExt;
        // Tower's `call` takes `&mut self`: call a clone (reference counts, see `app`).
        let mut svc = self.0.clone();
        // Ready at once (every service over `App` is): call it now and box only its future.
        // Otherwise `oneshot` waits for readiness inside the future; polling `poll_ready` again
        // there with the task's waker is what the Tower contract asks for anyway.
        // Combinators, not `async` blocks: awaiting the service's future there trips
        // "implementation of `Send` is not general enough".
        match svc.poll_ready(&mut Context::from_waker(std::task::Waker::noop())) {
            Poll::Ready(Ok(())) => AppFuture::new(svc.call(req).map(infallible_response)),
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => AppFuture::new(svc.oneshot(req).map(infallible_response)),
        }
    }
}

fn infallible_response<R: IntoAppResponse>(r: Result<R, Infallible>) -> Response<Body> {
    match r {
        Ok(res) => res.into_app_response(),
        Err(never) => match never {},
    }
}

/// An app from an async function of the request.
pub fn app_fn<F, Fut>(f: F) -> App
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    App::from_handler(FnHandler(f))
}

struct FnHandler<F>(F);

impl<F, Fut> Handler for FnHandler<F>
where
    F: Fn(Request<Body>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response<Body>> + Send + 'static,
{
    fn call(&self, req: Request<Body>) -> AppFuture {
        AppFuture::new((self.0)(req))
    }
}

/// Turn a Tower layer over [`App`] into a [`Filter`].
pub fn layer_filter<L>(layer: L) -> Filter
where
    L: Layer<App, Service: AppService> + Send + Sync + 'static,
{
    Arc::new(move |inner: App| app(layer.layer(inner)))
}
