//! The core service types: every app, filter and composite is one of these.
//!
//! Apps never fail at the service level (`Error = Infallible`): errors become responses.
//! Type erasure happens here, at the config boundary; inside a filter use concrete types.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, Empty, Full};
use tower::util::BoxCloneSyncService;
use tower::{Layer, Service, ServiceExt};

/// Errors inside bodies and services.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The body type of every request and response (`Send`, not `Sync`, like axum's).
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A built application: a cloneable, type-erased Tower service.
pub type App = BoxCloneSyncService<Request<Body>, Response<Body>, Infallible>;

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

/// Erase any body type into [`Body`].
pub fn box_body<B>(body: B) -> Body
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
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
pub fn box_response<B>(res: Response<B>) -> Response<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    res.map(box_body)
}

/// Erase the body type of a request.
pub fn box_request<B>(req: Request<B>) -> Request<Body>
where
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
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

/// Erase a service whose requests are [`Body`] requests into an [`App`].
pub fn app<S, B>(svc: S) -> App
where
    S: Service<Request<Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    S::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    BoxCloneSyncService::new(svc.map_response(box_response))
}

/// An app from an async function of the request.
pub fn app_fn<F, Fut>(f: F) -> App
where
    F: Fn(Request<Body>) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    BoxCloneSyncService::new(tower::service_fn(move |req| {
        let fut = f(req);
        async move { Ok::<_, Infallible>(fut.await) }
    }))
}

/// Turn a Tower layer over [`App`] into a [`Filter`].
pub fn layer_filter<L, B>(layer: L) -> Filter
where
    L: Layer<App> + Send + Sync + 'static,
    L::Service: Service<Request<Body>, Response = Response<B>, Error = Infallible>
        + Clone
        + Send
        + Sync
        + 'static,
    <L::Service as Service<Request<Body>>>::Future: Send + 'static,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError>,
{
    Arc::new(move |inner: App| app(layer.layer(inner)))
}

/// A boxed response future, as returned by [`call`].
pub type ResponseFuture =
    std::pin::Pin<Box<dyn std::future::Future<Output = Response<Body>> + Send>>;

/// Call an app and get its response. Use this inside `async` blocks that call another app:
/// awaiting `app.oneshot(req)` there directly trips a compiler limitation with higher-ranked
/// lifetimes ("implementation of `Service` is not general enough").
pub fn call(app: App, req: Request<Body>) -> ResponseFuture {
    use futures_util::FutureExt;
    Box::pin(app.oneshot(req).map(|r| match r {
        Ok(res) => res,
        Err(never) => match never {},
    }))
}
