//! The per-request path from hyper to the app: size limits, the mount prefix, the request
//! extensions, the app (taken from the [`SharedApp`] for each request), panics, `Server`.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{ready, Context, Poll};

use http::header::{HeaderValue, CONNECTION, CONTENT_LENGTH, HOST, SERVER};
use http::{Request, Response, StatusCode, Uri, Version};
use hyper::body::{Body as _, Incoming};

use super::body::{Leftover, ResponseBody, Watched, WatchedBody};
use super::conn::{ActiveGuard, BodyWait, ConnState};
use super::host;
use super::Settings;
use crate::app::{box_body, empty_body, text_response, Body};
use crate::environ::{MountPath, PeerAddr, PublicUrl};
use crate::server::panic::{catch_panic, catch_sync, CatchPanic, PanicInfo};
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

impl hyper::service::Service<Request<Incoming>> for RequestService {
    type Response = Response<ResponseBody>;
    type Error = Infallible;
    type Future = ResponseFuture;

    fn call(&self, req: Request<Incoming>) -> ResponseFuture {
        let guard = self.conn.request_started(req.version() == Version::HTTP_2);
        let settings = self.settings.clone();
        let h1 = req.version() < Version::HTTP_2;

        let (mut parts, incoming) = req.into_parts();
        if let Err(bad) = host::check_request(&parts) {
            log::debug!(target: LOG, "400 from {:?}: {}", self.peer, bad.message().trim_end());
            let res = text_response(
                StatusCode::BAD_REQUEST,
                "text/plain; charset=utf-8",
                bad.message(),
            );
            return ready(finish(res, guard, &settings, h1, !h1));
        }
        if let Some(len) = content_length(&parts.headers) {
            if len > settings.max_body {
                let res = text_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "text/plain; charset=utf-8",
                    "Request body too large\n",
                );
                return ready(finish(res, guard, &settings, h1, !h1));
            }
        }

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
                return ready(finish(res, guard, &settings, false, !h1));
            }
        };

        let host = parts
            .uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| parts.headers.get(HOST).and_then(|h| h.to_str().ok()));
        // `environ::public_url` derives the same scheme and host from the URI and the `Host`
        // header when no `PublicUrl` is set: only insert one when it says something else (a
        // `url_scheme` other than the URI's, or no host in the request). Saves an extension
        // and two strings per request.
        let public = match host {
            Some(_) if parts.uri.scheme_str().unwrap_or("http") == settings.url_scheme => None,
            Some(host) => Some(PublicUrl {
                scheme: settings.url_scheme.clone(),
                host: host.to_string(),
            }),
            None => Some(PublicUrl {
                scheme: settings.url_scheme.clone(),
                host: self.local_host.to_string(),
            }),
        };
        // Only what `environ`'s functions cannot derive: `remote_addr` falls back to the peer,
        // `mount_path` to "" (each extension is an allocation per request).
        let ext = &mut parts.extensions;
        if let Some(peer) = self.peer {
            ext.insert(PeerAddr(peer));
        }
        if let Some(public) = public {
            ext.insert(public);
        }
        if !mount.is_empty() {
            ext.insert(MountPath(mount));
        }
        if exact_prefix {
            // PATH_INFO "" (the prefix without a trailing slash), distinct from "/".
            ext.insert(crate::environ::EmptyPathInfo);
        }

        // A request without a body (most GETs) gets an empty body: no limit to watch, no
        // upload to wait for, and no allocation.
        // A body without a Content-Length (chunked, or HTTP/2 without one) that the app drops
        // unfinished is read to its end or the limit before the answer (`Leftover`).
        let (body, hit, leftover) = if incoming.is_end_stream() {
            (empty_body(), None, None)
        } else {
            let hit = Arc::new(AtomicBool::new(false));
            let wait = BodyWait::new(self.conn.clone());
            let leftover: Option<Leftover<Incoming>> = content_length(&parts.headers)
                .is_none()
                .then(|| Arc::new(Mutex::new(None)));
            let body = box_body(WatchedBody::new(
                incoming,
                settings.max_body,
                hit.clone(),
                wait,
                leftover.clone(),
            ));
            (body, Some(hit), leftover)
        };
        let req = Request::from_parts(parts, body);

        // The app's own `call` runs here, before its future: catch a panic in either.
        let fut = match catch_sync(|| self.app.call(req)) {
            Ok(fut) => fut,
            Err(info) => {
                let res = panic_response(&info, self.debug);
                return ready(finish(res, guard, &settings, false, !h1));
            }
        };
        let fut = ResponseFuture::App {
            fut: catch_panic(fut),
            pending: Some(Pending {
                hit,
                leftover,
                guard,
                settings,
                debug: self.debug,
                http2: !h1,
            }),
        };
        if h1 {
            fut.settle()
        } else {
            fut
        }
    }
}

impl ResponseFuture {
    /// Polls the future once, at once; when that answers, keeps the answer and drops the
    /// app's future, and with it the request it holds.
    ///
    /// HTTP/1 only. Right after `call`, hyper's HTTP/1 connection looks for the client's EOF
    /// before it polls the future. A request still alive then holds parts of hyper's read
    /// buffer (its header values), and hyper allocates a new 8 KiB buffer, for every request.
    /// Most answers (a cached tile, a static file, a capabilities document) are ready at the
    /// first poll. On HTTP/2 hyper calls the service on the connection's task and polls the
    /// future on a task of the stream's own, where the first poll stays: the connection does
    /// not wait for it.
    ///
    /// The poll has no waker of its own (`Waker::noop`): hyper polls the future again, with
    /// the task's waker, before it waits for it, and a future registers the waker of every
    /// poll. A panic is caught as in any poll (`catch_panic`), and a body the app left is
    /// drained as it is later (`Drain`).
    fn settle(mut self) -> ResponseFuture {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        match Pin::new(&mut self).poll(&mut cx) {
            Poll::Ready(Ok(res)) => ResponseFuture::Ready { res: Some(res) },
            Poll::Ready(Err(never)) => match never {},
            Poll::Pending => self,
        }
    }
}

/// What the response still needs once the app answered.
struct Pending {
    hit: Option<Arc<AtomicBool>>,
    /// Where the app's request body goes if it drops it unfinished (no Content-Length).
    leftover: Option<Leftover<Incoming>>,
    guard: ActiveGuard,
    settings: Arc<Settings>,
    debug: bool,
    http2: bool,
}

impl Pending {
    /// The app's body, if it dropped it before its end.
    fn take_leftover(&self) -> Option<Watched<Incoming>> {
        self.leftover.as_ref()?.lock().ok()?.take()
    }

    /// The response for the app's `res`: 413 instead when the body passed the limit and the
    /// app answered 5xx (it could not read the body), or when the server read the rest of a
    /// body the app left (`drained`) and it passed the limit (waitress reads whole bodies
    /// before it calls the app, and answers 413 then).
    fn answer(self, res: Response<Body>, drained: bool) -> Response<ResponseBody> {
        let limit_hit = self.hit.is_some_and(|h| h.load(Ordering::SeqCst));
        let res = if limit_hit && (drained || res.status().is_server_error()) {
            text_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                "text/plain; charset=utf-8",
                "Request body too large\n",
            )
        } else {
            res
        };
        finish(res, self.guard, &self.settings, false, self.http2)
    }
}

type AppCall = CatchPanic<crate::app::AppFuture>;

pin_project_lite::pin_project! {
    /// The future of [`RequestService`]: a response ready at once (413, 404 outside the
    /// prefix), or the app's, under `catch_unwind`, then the rest of a request body the app
    /// left unread. A named type rather than boxed `async` blocks: no allocation per request.
    #[project = ResponseFutureProj]
    pub(crate) enum ResponseFuture {
        Ready { res: Option<Response<ResponseBody>> },
        App {
            #[pin]
            fut: AppCall,
            pending: Option<Pending>,
        },
        Drain {
            body: Watched<Incoming>,
            res: Option<Response<Body>>,
            pending: Option<Pending>,
        },
    }
}

impl Future for ResponseFuture {
    type Output = Result<Response<ResponseBody>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        loop {
            let next = match self.as_mut().project() {
                ResponseFutureProj::Ready { res } => match res.take() {
                    Some(res) => return Poll::Ready(Ok(res)),
                    None => panic!("ResponseFuture polled after completion"),
                },
                ResponseFutureProj::App { fut, pending } => {
                    let res = ready!(fut.poll(cx));
                    let Some(p) = pending.take() else {
                        panic!("ResponseFuture polled after completion");
                    };
                    let res = match res {
                        Ok(res) => res,
                        Err(info) => panic_response(&info, p.debug),
                    };
                    match p.take_leftover() {
                        None => return Poll::Ready(Ok(p.answer(res, false))),
                        Some(body) => ResponseFuture::Drain {
                            body,
                            res: Some(res),
                            pending: Some(p),
                        },
                    }
                }
                ResponseFutureProj::Drain { body, res, pending } => {
                    // Read and drop the rest; the limit ends it with an error (and sets
                    // `hit`), a closed connection with another.
                    while let Some(Ok(_)) = ready!(Pin::new(&mut *body).poll_frame(cx)) {}
                    let (Some(p), Some(res)) = (pending.take(), res.take()) else {
                        panic!("ResponseFuture polled after completion");
                    };
                    return Poll::Ready(Ok(p.answer(res, true)));
                }
            };
            self.set(next);
        }
    }
}

fn ready(res: Response<ResponseBody>) -> ResponseFuture {
    ResponseFuture::Ready { res: Some(res) }
}

fn content_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
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
    http2: bool,
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
    Response::from_parts(parts, ResponseBody::new(body, guard, http2))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strip(prefix: &str, uri: &str) -> Option<(String, String)> {
        strip_prefix(prefix, &uri.parse().unwrap()).map(|(m, u)| (m, u.to_string()))
    }

    /// A response future for an HTTP/1 request answered by `app`.
    fn app_future(app: crate::app::AppFuture) -> ResponseFuture {
        let conf = crate::config::FactoryConf::from_pairs("mapproxy-serve#http", []);
        let settings = super::super::HttpServer::from_conf(&conf)
            .unwrap_or_else(|e| panic!("{e}"))
            .settings;
        ResponseFuture::App {
            fut: catch_panic(app),
            pending: Some(Pending {
                hit: None,
                leftover: None,
                guard: Arc::new(ConnState::new()).request_started(false),
                settings,
                debug: false,
                http2: false,
            }),
        }
    }

    fn status(fut: &ResponseFuture) -> Option<StatusCode> {
        match fut {
            ResponseFuture::Ready { res: Some(res) } => Some(res.status()),
            _ => None,
        }
    }

    /// An answer ready at the first poll is kept, and the app's future is dropped with what
    /// it holds (the request).
    #[test]
    fn settle_keeps_the_answer_and_drops_the_request() {
        let request = Arc::new(());
        let held = request.clone();
        let fut = app_future(crate::app::AppFuture::new(async move {
            let _request = held;
            Response::new(empty_body())
        }));
        assert_eq!(Arc::strong_count(&request), 2);
        let fut = fut.settle();
        assert_eq!(Arc::strong_count(&request), 1);
        assert_eq!(status(&fut), Some(StatusCode::OK));
    }

    /// A panic in the first poll is answered as one in any poll: 500.
    #[test]
    fn settle_catches_a_panic() {
        let fut = app_future(crate::app::AppFuture::new(async {
            panic!("in the first poll")
        }));
        assert_eq!(
            status(&fut.settle()),
            Some(StatusCode::INTERNAL_SERVER_ERROR)
        );
    }

    /// A future still waiting stays, and is woken through the waker of a later poll.
    #[tokio::test]
    async fn settle_keeps_a_waiting_future() {
        let (tx, rx) = tokio::sync::oneshot::channel::<StatusCode>();
        let fut = app_future(crate::app::AppFuture::new(async move {
            let mut res = Response::new(empty_body());
            *res.status_mut() = rx.await.unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            res
        }));
        let fut = fut.settle();
        assert_eq!(status(&fut), None);
        let task = tokio::spawn(fut);
        tokio::task::yield_now().await;
        let _ = tx.send(StatusCode::ACCEPTED);
        let res = task
            .await
            .expect("the task ends")
            .unwrap_or_else(|e| match e {});
        assert_eq!(res.status(), StatusCode::ACCEPTED);
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
