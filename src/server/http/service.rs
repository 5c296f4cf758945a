//! The per-request path from hyper to the app: size limits, the mount prefix, the request
//! extensions, the app (taken from the [`SharedApp`] for each request), panics, `Server`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::FutureExt;
use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, SERVER};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::Incoming;
use tower::Service;

use super::body::{LimitedBody, ResponseBody};
use super::conn::{ActiveGuard, BodyWait, ConnState};
use super::Settings;
use crate::app::{box_body, text_response, Body};
use crate::environ::{MountPath, PeerAddr, PublicUrl, RemoteAddr};
use crate::server::panic::{catch_panic, PanicInfo};
use crate::server::SharedApp;

const LOG: &str = "mapproxy_serve.server.http";

/// Serves one connection's requests.
#[derive(Clone)]
pub(crate) struct RequestService {
    pub(crate) app: SharedApp,
    pub(crate) settings: Arc<Settings>,
    pub(crate) conn: Arc<ConnState>,
    pub(crate) peer: Option<SocketAddr>,
    /// The listener's address, as a `Host` value for requests that name none.
    pub(crate) local_host: Arc<str>,
    pub(crate) debug: bool,
}

type ResFuture = Pin<Box<dyn Future<Output = Result<Response<ResponseBody>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResFuture;

    fn call(&self, req: Request<Incoming>) -> ResFuture {
        let guard = self.conn.request_started(req.version() == Version::HTTP_2);
        let settings = self.settings.clone();
        let h1 = req.version() < Version::HTTP_2;

        if let Some(len) = content_length(&req) {
            if len > settings.max_body {
                let res = text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain; charset=utf-8",
                    "Request body too large\n",
                );
                return ready(finish(res, guard, &settings, h1));
            }
        }

        let (mut parts, incoming) = req.into_parts();
        let exact_prefix =
            !settings.url_prefix.is_empty() && parts.uri.path() == settings.url_prefix;
        let mount = match strip_prefix(&settings.url_prefix, &parts.uri) {
            Some((mount, uri)) => {
                parts.uri = uri;
                mount
            }
            None => {
                let res = text_response(
                    StatusCode::NOT_FOUND,
                    "text/plain; charset=utf-8",
                    "Not Found\n",
                );
                return ready(finish(res, guard, &settings, false));
            }
        };

        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str().to_string())
            .or_else(|| {
                parts
                    .headers
                    .get(HOST)
                    .and_then(|h| h.to_str().ok())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| self.local_host.to_string());
        let ext = &mut parts.extensions;
        if let Some(peer) = self.peer {
            ext.insert(PeerAddr(peer));
            ext.insert(RemoteAddr(peer));
        }
        ext.insert(PublicUrl {
            scheme: settings.url_scheme.clone(),
            host,
        });
        ext.insert(MountPath(mount));
        if exact_prefix {
            // PATH_INFO "" (the prefix without a trailing slash), distinct from "/".
            ext.insert(crate::environ::EmptyPathInfo);
        }

        let hit = Arc::new(AtomicBool::new(false));
        let wait = BodyWait::new(self.conn.clone());
        let body = box_body(LimitedBody::new(
            incoming,
            settings.max_body,
            hit.clone(),
            wait,
        ));
        let req = Request::from_parts(parts, body);

        let fut = call_app(self.app.clone(), req);
        let debug = self.debug;
        Box::pin(async move {
            let res = match fut.await {
                Ok(res) => res,
                Err(info) => panic_response(&info, debug),
            };
            let res = if hit.load(Ordering::SeqCst) && res.status().is_server_error() {
                text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain; charset=utf-8",
                    "Request body too large\n",
                )
            } else {
                res
            };
            Ok(finish(res, guard, &settings, false))
        })
    }
}

type AppFuture = Pin<Box<dyn Future<Output = Result<Response<Body>, PanicInfo>> + Send>>;

/// Call the current app under `catch_unwind`. A plain `fn` returning a boxed future: an
/// `async` block holding the app's future trips "implementation of `Service` is not general
/// enough" (higher-ranked `dyn Error` lifetimes in `Body`), so combinators are used.
fn call_app(mut app: SharedApp, req: Request<Body>) -> AppFuture {
    Box::pin(catch_panic(app.call(req)).map(|r| match r {
        Ok(Ok(res)) => Ok(res),
        Ok(Err(never)) => match never {},
        Err(info) => Err(info),
    }))
}

fn ready(res: Response<ResponseBody>) -> ResFuture {
    Box::pin(std::future::ready(Ok(res)))
}

fn content_length<B>(req: &Request<B>) -> Option<u64> {
    req.headers()
        .get(CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Split off the mount prefix on a segment boundary: `/maps` takes `/maps` and `/maps/...`
/// but not `/mapsx`. The request for `/maps` itself continues as `/`. `None`: outside.
fn strip_prefix(prefix: &str, uri: &Uri) -> Option<(String, Uri)> {
    if prefix.is_empty() {
        return Some((String::new(), uri.clone()));
    }
    let path = uri.path();
    let rest = path.strip_prefix(prefix)?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    let rest = if rest.is_empty() { "/" } else { rest };
    let pq = match uri.query() {
        Some(q) => format!("{rest}?{q}"),
        None => rest.to_string(),
    };
    let mut parts = uri.clone().into_parts();
    parts.path_and_query = Some(pq.parse().ok()?);
    let uri = Uri::from_parts(parts).ok()?;
    Some((prefix.to_string(), uri))
}

fn panic_response(info: &PanicInfo, debug: bool) -> Response<Body> {
    crate::server::panic::response(info, debug, LOG)
}

fn finish(
    res: Response<Body>,
    guard: ActiveGuard,
    settings: &Settings,
    close: bool,
) -> Response<ResponseBody> {
    let (mut parts, body) = res.into_parts();
    if let Some(ident) = &settings.ident {
        if !parts.headers.contains_key(SERVER) {
            parts.headers.insert(SERVER, ident.clone());
        }
    }
    if close {
        parts
            .headers
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Response::from_parts(parts, ResponseBody::new(body, guard))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(prefix: &str, uri: &str) -> Option<(String, String)> {
        strip_prefix(prefix, &uri.parse().unwrap()).map(|(m, u)| (m, u.to_string()))
    }

    #[test]
    fn prefix_on_segment_boundary() {
        assert_eq!(strip("", "/a?b"), Some(("".into(), "/a?b".into())));
        assert_eq!(
            strip("/maps", "/maps/wms?x=1"),
            Some(("/maps".into(), "/wms?x=1".into()))
        );
        assert_eq!(strip("/maps", "/maps"), Some(("/maps".into(), "/".into())));
        assert_eq!(
            strip("/maps", "/maps?q"),
            Some(("/maps".into(), "/?q".into()))
        );
        assert_eq!(strip("/maps", "/mapsx"), None);
        assert_eq!(strip("/maps", "/"), None);
        assert_eq!(
            strip("/maps", "http://h:1/maps/a"),
            Some(("/maps".into(), "http://h:1/a".into()))
        );
    }
}
