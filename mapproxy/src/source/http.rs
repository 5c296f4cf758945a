//! A source's HTTP (MapProxy's `mapproxy/client/http.py` `HTTPClient` on the project's shared
//! client): the source's headers and `client_timeout`, MapProxy's error texts, and one
//! `mapproxy.source.request` log line per request.
//!
//! Errors as MapProxy words them; with `hide_error_details` (MapProxy's default) the text
//! shown is `<what> (see logs for URL and reason).` and the full text (`<what> "<url>":
//! <reason>`) goes to the source's log:
//!
//! | failure | what |
//! |---|---|
//! | status other than 2xx | `HTTP Error`, reason the status code |
//! | 204 | `HTTP Error "204 No Content"` (always shown so) |
//! | refused, unreachable, connect timeout | `No response from URL` |
//! | certificate, TLS | `Could not verify connection to URL` |
//! | a URL that does not parse | `URL not correct` |
//! | timeout waiting for the response, broken response | `Internal HTTP error` |
//!
//! The request line (MapProxy's `client/log.py`), at INFO on target
//! `mapproxy.source.request`: `GET <url> <status or -> <Content-Length in KiB, %.1f, or -> <ms
//! to the response head, or ->`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{HeaderName, HeaderValue, CONTENT_LENGTH, CONTENT_TYPE};
use http::{HeaderMap, Request, Response};
use http_body_util::{BodyExt, Empty, Limited};
use mapproxy_serve_client::{ClientConfig, ClientError, ClientErrorKind, HttpClient};

use super::pyfmt::py_bytes_repr;
use super::{SourceError, SourceImage};
use crate::image::ImageFormat;

/// HTTP settings of a source (MapProxy's `http:` globals and a source's `http:`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpOpts {
    /// `http.client_timeout` (default 60 s): connecting, waiting for the response and each
    /// read; also the limit of the whole request.
    pub client_timeout: Duration,
    /// `http.headers`: sent with every request.
    pub headers: Vec<(String, String)>,
    /// `http.hide_error_details` (default true).
    pub hide_error_details: bool,
    /// `http.ssl_no_cert_checks`.
    pub insecure: bool,
    /// `http.ssl_ca_certs`.
    pub ca_file: Option<PathBuf>,
    /// Sent when `headers` has no User-Agent (MapProxy: `MapProxy-7.0.0`).
    pub user_agent: Option<String>,
    /// The longest response body read (default 64 MiB).
    pub max_body: usize,
}

impl Default for HttpOpts {
    fn default() -> Self {
        HttpOpts {
            client_timeout: Duration::from_secs(60),
            headers: Vec::new(),
            hide_error_details: true,
            insecure: false,
            ca_file: None,
            user_agent: Some("MapProxy-7.0.0".into()),
            max_body: 64 << 20,
        }
    }
}

/// A failed request: what to show, what to log, and the HTTP status if there was one (for
/// `on_error`).
#[derive(Debug, Clone, PartialEq)]
pub struct HttpSourceError {
    pub message: String,
    pub full_msg: String,
    pub status: Option<u16>,
}

impl From<HttpSourceError> for SourceError {
    fn from(e: HttpSourceError) -> SourceError {
        SourceError::new(e.message)
    }
}

/// The HTTP client of one source.
#[derive(Debug, Clone)]
pub struct SourceHttp {
    client: HttpClient,
    headers: HeaderMap,
    hide_error_details: bool,
    max_body: usize,
}

impl SourceHttp {
    /// Fails when a header is not valid or the CA file cannot be read.
    pub fn new(opts: &HttpOpts) -> Result<SourceHttp, SourceError> {
        let t = Some(opts.client_timeout);
        let config = ClientConfig {
            connect_timeout: t,
            header_timeout: t,
            request_timeout: t,
            read_timeout: t,
            ca_file: opts.ca_file.clone(),
            insecure: opts.insecure,
            user_agent: opts.user_agent.clone(),
            ..ClientConfig::default()
        };
        let client = HttpClient::shared(&config).map_err(|e| SourceError::new(e.to_string()))?;
        let mut headers = HeaderMap::new();
        for (k, v) in &opts.headers {
            let name = HeaderName::from_bytes(k.as_bytes())
                .map_err(|e| SourceError::new(format!("invalid HTTP header name {k:?}: {e}")))?;
            let value = HeaderValue::from_str(v)
                .map_err(|e| SourceError::new(format!("invalid value of HTTP header {k}: {e}")))?;
            headers.append(name, value);
        }
        Ok(SourceHttp {
            client,
            headers,
            hide_error_details: opts.hide_error_details,
            max_body: opts.max_body,
        })
    }

    fn error(&self, url: &str, what: &str, reason: &str, status: Option<u16>) -> HttpSourceError {
        let full_msg = format!("{what} \"{url}\": {reason}");
        let message = if self.hide_error_details {
            format!("{what} (see logs for URL and reason).")
        } else {
            full_msg.clone()
        };
        HttpSourceError {
            message,
            full_msg,
            status,
        }
    }

    /// GETs `url`: the response with its whole body when the status is 2xx (not 204).
    pub async fn open(&self, url: &str) -> Result<Response<Bytes>, HttpSourceError> {
        let start = Instant::now();
        let req = match url.parse::<http::Uri>() {
            Ok(uri) => {
                let mut req = Request::get(uri).body(Empty::<Bytes>::new());
                if let Ok(r) = req.as_mut() {
                    r.headers_mut().extend(self.headers.clone());
                }
                req.map_err(|e| e.to_string())
            }
            Err(e) => Err(e.to_string()),
        };
        let req = match req {
            Ok(r) => r,
            Err(reason) => {
                log_request(url, None, None, None);
                return Err(self.error(url, "URL not correct", &reason, None));
            }
        };
        let response = match self.client.request(req).await {
            Ok(r) => r,
            Err(e) => {
                log_request(url, None, None, Some(start.elapsed()));
                return Err(self.client_error(url, &e));
            }
        };
        let elapsed = start.elapsed();
        let status = response.status();
        let size = response
            .headers()
            .get(CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        log_request(url, Some(status.as_u16()), size, Some(elapsed));
        if !status.is_success() || status == http::StatusCode::NO_CONTENT {
            // the error body is not shown: a short one is read so the connection is used again
            response.into_body().drain().await;
            if status == http::StatusCode::NO_CONTENT {
                return Err(HttpSourceError {
                    message: "HTTP Error \"204 No Content\"".into(),
                    full_msg: format!("HTTP Error \"204 No Content\" \"{url}\""),
                    status: Some(204),
                });
            }
            let code = status.as_u16();
            return Err(self.error(url, "HTTP Error", &code.to_string(), Some(code)));
        }
        let (parts, body) = response.into_parts();
        let body = match Limited::new(body, self.max_body).collect().await {
            Ok(b) => b.to_bytes(),
            Err(e) => {
                let reason = match e.downcast_ref::<ClientError>() {
                    Some(c) => c.message().to_owned(),
                    None => e.to_string(),
                };
                return Err(self.error(url, "Internal HTTP error", &reason, None));
            }
        };
        Ok(Response::from_parts(parts, body))
    }

    /// [`open`](Self::open), then MapProxy's `open_image` check: a response with a
    /// Content-Type that does not start with `image` is an error (`response is not an image:
    /// (<body>)`).
    pub async fn open_image(&self, url: &str) -> Result<SourceImage, HttpSourceError> {
        let resp = self.open(url).await?;
        let ct = content_type(resp.headers());
        if let Some(ct) = &ct {
            if !ct.to_ascii_lowercase().starts_with("image") {
                let body = resp.body();
                let shown = &body[..body.len().min(1000)];
                let msg = format!("response is not an image: ({})", py_bytes_repr(shown));
                return Err(HttpSourceError {
                    message: msg.clone(),
                    full_msg: msg,
                    status: None,
                });
            }
        }
        Ok(SourceImage::new(
            resp.into_body(),
            ct.as_deref().and_then(image_format_of),
        ))
    }

    fn client_error(&self, url: &str, e: &ClientError) -> HttpSourceError {
        let what = match e.kind() {
            ClientErrorKind::Connect | ClientErrorKind::ConnectTimeout => "No response from URL",
            ClientErrorKind::Certificate | ClientErrorKind::Tls => {
                "Could not verify connection to URL"
            }
            ClientErrorKind::InvalidUrl => "URL not correct",
            _ => "Internal HTTP error",
        };
        self.error(url, what, e.message(), None)
    }
}

/// The Content-Type header, if any and readable.
pub(crate) fn content_type(headers: &HeaderMap) -> Option<String> {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// `image/png; x=y` → the format; other types → `None`.
pub(crate) fn image_format_of(content_type: &str) -> Option<ImageFormat> {
    let ct = content_type.trim();
    ct.to_ascii_lowercase()
        .starts_with("image/")
        .then(|| ImageFormat::new(ct))
}

/// MapProxy's `log_request`.
fn log_request(url: &str, status: Option<u16>, size: Option<u64>, duration: Option<Duration>) {
    if !log::log_enabled!(target: "mapproxy.source.request", log::Level::Info) {
        return;
    }
    let url: String = url.chars().filter(|c| *c != ' ').collect();
    let status = status.map_or_else(|| "-".to_owned(), |s| s.to_string());
    let size = match size {
        // a Content-Length of 0 is shown as 0.0, as MapProxy (the header's text is truthy)
        Some(n) => kib_one_decimal(n),
        _ => "-".to_owned(),
    };
    let duration = match duration {
        Some(d) if !d.is_zero() => format!("{}", d.as_millis()),
        _ => "-".to_owned(),
    };
    log::info!(target: "mapproxy.source.request", "GET {url} {status} {size} {duration}");
}

/// Python's `"%.1f" % (n / 1024.0)` in integers (n / 1024 is exact in binary, so the digits
/// are those of the exact quotient, a tie rounded to even), without float formatting's slow
/// exact path (a tenth of a miss's user time in a profile).
fn kib_one_decimal(n: u64) -> String {
    if n >= 1 << 50 {
        return format!("{:.1}", n as f64 / 1024.0);
    }
    let tenths = n * 10;
    let (mut q, r) = (tenths / 1024, tenths % 1024);
    if r > 512 || (r == 512 && q % 2 == 1) {
        q += 1;
    }
    format!("{}.{}", q / 10, q % 10)
}

#[cfg(test)]
mod tests {
    #[test]
    fn kib_one_decimal_is_pythons_format() {
        for n in (0..20_000u64).chain([31_791, 1 << 40, (1 << 50) + 7, u64::MAX]) {
            assert_eq!(
                super::kib_one_decimal(n),
                format!("{:.1}", n as f64 / 1024.0),
                "{n}"
            );
        }
    }
}
