//! The WPS app: dispatch (`Service.call`), Execute (inputs, outputs, sync and async runs), the
//! job table that replaces PyWPS's sqlite job log, and the optional outputs mount.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::BodyExt;
use mapproxy_serve_client::{ClientErrorKind, HttpClient};
use mapproxy_serve_core::app::{text_response, AppFuture, Body, Handler};
use mapproxy_serve_core::environ::path_info;

use crate::config::WpsConfig;
use crate::exception::{Code, WpsException};
use crate::process::{
    DataType, ExecuteRequest, ExecuteResponse, Format, InputKind, InputValue, LiteralValue,
    OutputValue, Process, ProcessDesc, StatusSink,
};
use crate::request::{parse_kvp, parse_xml, ExecuteSpec, OutputRequest, RawInput, WpsRequest};
use crate::xml::{self, ExecuteDoc, OutputDefinition, ShownOutput, Status};

const XML: &str = "text/xml; charset=utf-8";
/// The logger PyWPS logs to.
const LOG: &str = "PYWPS";

/// The app.
pub struct Wps {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: WpsConfig,
    processes: Vec<&'static dyn Process>,
    jobs: Jobs,
    client: HttpClient,
    runtime: tokio::runtime::Handle,
    /// `outputs`: the path (under the app's mount) that serves `outputpath`.
    outputs_mount: Option<String>,
}

impl Wps {
    /// An app serving `processes` (in this order) with `cfg`.
    pub fn new(
        cfg: WpsConfig,
        processes: Vec<&'static dyn Process>,
        client: HttpClient,
        runtime: tokio::runtime::Handle,
        outputs_mount: Option<String>,
    ) -> Wps {
        Wps {
            inner: Arc::new(Inner {
                cfg,
                processes,
                jobs: Jobs::default(),
                client,
                runtime,
                outputs_mount,
            }),
        }
    }
}

impl Handler for Wps {
    fn call(&self, req: Request<Body>) -> AppFuture {
        let inner = self.inner.clone();
        AppFuture::new(async move { inner.handle(req).await })
    }
}

fn xml_response(body: String) -> Response<Body> {
    text_response(StatusCode::OK, XML, body)
}

/// GetCapabilities and DescribeProcess: PyWPS 4.8 sends these without a charset.
fn plain_xml_response(body: String) -> Response<Body> {
    text_response(StatusCode::OK, "text/xml", body)
}

impl Inner {
    async fn handle(self: Arc<Self>, req: Request<Body>) -> Response<Body> {
        if let Some(mount) = &self.outputs_mount {
            if let Some(name) = path_info(&req).strip_prefix(mount.as_str()) {
                if let Some(name) = name.strip_prefix('/') {
                    let (method, name) = (req.method().clone(), name.to_string());
                    return self.serve_output(method, &name).await;
                }
            }
        }
        match self.clone().dispatch(req).await {
            Ok(res) => res,
            Err(e) => {
                self.log(log::Level::Info, &format!("Exception: {e}"));
                e.response()
            }
        }
    }

    async fn dispatch(self: Arc<Self>, req: Request<Body>) -> Result<Response<Body>, WpsException> {
        let request = match *req.method() {
            Method::GET | Method::HEAD => parse_kvp(req.uri().query().unwrap_or(""))?,
            Method::POST => {
                let limit = self.cfg.maxrequestsize;
                let declared = req
                    .headers()
                    .get(header::CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok());
                let too_large = || {
                    WpsException::new(
                        Code::FileSizeExceeded,
                        format!(
                            "File size for input exceeded. Maximum request size allowed: {} megabytes",
                            mb(self.cfg.maxrequestsize_mb)
                        ),
                        "",
                    )
                };
                if declared.is_some_and(|n| n > limit) {
                    return Err(too_large());
                }
                let body = match read_limited(req.into_body(), limit).await {
                    Ok(b) => b,
                    Err(None) => return Err(too_large()),
                    Err(Some(e)) => {
                        return Err(WpsException::new(
                            Code::NoApplicableCode,
                            format!("cannot read the request body: {e}"),
                            "",
                        ))
                    }
                };
                let text = std::str::from_utf8(&body).map_err(|e| {
                    WpsException::new(
                        Code::NoApplicableCode,
                        format!("the request body is not UTF-8: {e}"),
                        "",
                    )
                })?;
                parse_xml(text)?
            }
            _ => {
                return Err(WpsException {
                    status: StatusCode::METHOD_NOT_ALLOWED,
                    ..WpsException::new(
                        Code::NoApplicableCode,
                        "The method is not allowed for the requested URL.",
                        "",
                    )
                })
            }
        };
        match request {
            WpsRequest::GetCapabilities { language } => {
                let lang = self.language(language.as_deref())?;
                let descs: Vec<_> = self.processes.iter().map(|p| p.describe()).collect();
                Ok(plain_xml_response(xml::capabilities(
                    &self.cfg, &lang, &descs,
                )))
            }
            WpsRequest::DescribeProcess {
                identifiers,
                language,
            } => {
                let lang = self.language(language.as_deref())?;
                if identifiers.iter().all(|i| i.is_empty()) {
                    return Err(WpsException::missing(
                        "Missing parameter value \"identifier\"",
                        "identifier",
                    ));
                }
                let descs: Vec<&'static ProcessDesc> = if identifiers
                    .iter()
                    .any(|i| i.eq_ignore_ascii_case("all"))
                {
                    self.processes.iter().map(|p| p.describe()).collect()
                } else {
                    identifiers
                        .iter()
                        .map(|i| {
                            self.find(i).map(|p| p.describe()).ok_or_else(|| {
                                WpsException::invalid(format!("Unknown process {i}"), "identifier")
                            })
                        })
                        .collect::<Result<_, _>>()?
                };
                Ok(plain_xml_response(xml::describe(&self.cfg, &lang, &descs)))
            }
            WpsRequest::Execute(spec) => self.execute(spec).await,
        }
    }

    fn find(&self, id: &str) -> Option<&'static dyn Process> {
        self.processes
            .iter()
            .find(|p| p.describe().identifier == id)
            .copied()
    }

    /// `check_and_set_language`.
    fn language(&self, asked: Option<&str>) -> Result<String, WpsException> {
        let default = self.cfg.languages.first().map_or("en-US", String::as_str);
        match asked.filter(|l| !l.is_empty()) {
            None => Ok(default.to_string()),
            Some(l) if self.cfg.languages.iter().any(|s| s == l) => Ok(l.to_string()),
            Some(l) => Err(WpsException::invalid(
                format!("The requested language \"{l}\" is not supported by this server"),
                "language",
            )),
        }
    }

    fn service_instance(&self) -> String {
        // PyWPS's _get_serviceinstance: the url's query with request and service set
        // (escaped once here; PyWPS escapes the & twice).
        let (base, query) = self.cfg.url.split_once('?').unwrap_or((&self.cfg.url, ""));
        let mut pairs: Vec<(String, String)> = crate::request::query_pairs(query)
            .into_iter()
            .filter(|(k, _)| k != "request" && k != "service")
            .collect();
        pairs.push(("request".into(), "GetCapabilities".into()));
        pairs.push(("service".into(), "WPS".into()));
        let q: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        format!("{base}?{q}")
    }

    async fn execute(self: Arc<Self>, spec: ExecuteSpec) -> Result<Response<Body>, WpsException> {
        let language = self.language(spec.language.as_deref())?;
        if spec.identifier.is_empty() {
            return Err(WpsException::missing(
                "Process identifier not set",
                "Identifier",
            ));
        }
        let Some(process) = self.find(&spec.identifier) else {
            return Err(WpsException::invalid(
                format!("Unknown process '{}'", spec.identifier),
                "Identifier",
            ));
        };
        let desc = process.describe();
        // Outputs asked for must exist (PyWPS: KeyError → 500 for RawDataOutput).
        for o in spec.outputs.iter().chain(spec.raw.iter()) {
            if desc.output(&o.identifier).is_none() {
                return Err(WpsException::invalid(
                    format!(
                        "Unknown output {} of process {}",
                        o.identifier, desc.identifier
                    ),
                    o.identifier.clone(),
                ));
            }
        }
        let is_async = if spec.store {
            if !desc.store_supported {
                return Err(WpsException::new(
                    Code::StorageNotSupported,
                    "Process does not support the storing of the execute response",
                    "",
                ));
            }
            if spec.status && !desc.status_supported {
                return Err(WpsException::new(
                    Code::OperationNotSupported,
                    "Process does not support the updating of status",
                    "",
                ));
            }
            spec.status
        } else {
            false
        };
        let inputs = self.resolve_inputs(desc, &spec).await?;
        let uuid = uuid::Uuid::new_v4().to_string();
        let job = Job {
            inner: self.clone(),
            process,
            spec: Arc::new(spec),
            inputs,
            uuid,
            language,
            is_async,
        };
        if is_async {
            job.start_async()
        } else {
            job.run_sync().await
        }
    }

    /// Inputs checked against the description, defaults applied, references fetched.
    async fn resolve_inputs(
        &self,
        desc: &'static ProcessDesc,
        spec: &ExecuteSpec,
    ) -> Result<Vec<(&'static str, Vec<InputValue>)>, WpsException> {
        let mut out = Vec::with_capacity(desc.inputs.len());
        for input in desc.inputs {
            let given = spec
                .inputs
                .iter()
                .find(|(i, _)| i == input.identifier)
                .map(|(_, v)| v.as_slice())
                .unwrap_or(&[]);
            // deque(maxlen=max_occurs): only the last ones given count, and only those are
            // fetched (PyWPS fetches a reference when the process reads it; fetching all of a
            // request's references first would let one small request make thousands)
            let max = input.max_occurs.max(1) as usize;
            let given = &given[given.len().saturating_sub(max)..];
            let mut values = Vec::with_capacity(given.len());
            for raw in given {
                values.push(
                    self.resolve_value(input.identifier, &input.kind, raw)
                        .await?,
                );
            }
            if values.is_empty() {
                if let InputKind::Literal {
                    default: Some(d),
                    data_type,
                    ..
                } = input.kind
                {
                    let value = data_type
                        .convert(d)
                        .map_err(|m| WpsException::invalid(m, ""))?;
                    values.push(InputValue::Literal {
                        value,
                        text: d.to_string(),
                        uom: None,
                    });
                }
            }
            if values.is_empty() && input.min_occurs > 0 {
                return Err(WpsException::missing(input.identifier, input.identifier));
            }
            if (values.len() as u64) < u64::from(input.min_occurs) {
                return Err(WpsException::missing(
                    format!(
                        "At least {} inputs are required. You provided {}.",
                        input.min_occurs,
                        values.len()
                    ),
                    input.identifier,
                ));
            }
            if !values.is_empty() {
                out.push((input.identifier, values));
            }
        }
        Ok(out)
    }

    async fn resolve_value(
        &self,
        id: &'static str,
        kind: &InputKind,
        raw: &RawInput,
    ) -> Result<InputValue, WpsException> {
        match *kind {
            InputKind::Literal {
                data_type, allowed, ..
            } => {
                let text = raw.data.clone().unwrap_or_default();
                let value = data_type
                    .convert(&text)
                    .map_err(|m| WpsException::invalid(m, ""))?;
                if !allowed.is_empty() && !allowed_contains(allowed, data_type, &value) {
                    return Err(WpsException::invalid(
                        format!("Input value {value} of {id} is not in the allowed values"),
                        id,
                    ));
                }
                Ok(InputValue::Literal {
                    value,
                    text,
                    uom: raw.uom.clone(),
                })
            }
            InputKind::Complex { formats } => {
                let format = match raw.mime_type.as_deref().filter(|m| !m.is_empty()) {
                    None => formats.first().copied().unwrap_or(Format::XML),
                    Some(m) => formats
                        .iter()
                        .find(|f| f.mime_type == m)
                        .copied()
                        .ok_or_else(|| {
                            WpsException::invalid(
                                format!("Invalid mimeType value {m} for input {id}"),
                                "mimeType",
                            )
                        })?,
                };
                let limit = self.cfg.maxsingleinputsize;
                let too_large = || {
                    WpsException::new(
                        Code::FileSizeExceeded,
                        format!(
                            "File size for input {id} exceeded. Maximum allowed: {} megabytes",
                            mb(self.cfg.maxsingleinputsize_mb)
                        ),
                        id,
                    )
                };
                let data = match (&raw.href, &raw.data) {
                    (Some(href), _) => self.fetch(id, href, limit, too_large).await?,
                    (None, Some(d)) if raw.encoding == "base64" => {
                        use base64::Engine as _;
                        let clean: String = d.split_whitespace().collect();
                        Bytes::from(
                            base64::engine::general_purpose::STANDARD
                                .decode(clean)
                                .map_err(|e| {
                                    WpsException::invalid(
                                        format!("Input {id} is not valid base64: {e}"),
                                        id,
                                    )
                                })?,
                        )
                    }
                    (None, Some(d)) => Bytes::from(d.clone()),
                    (None, None) => Bytes::new(),
                };
                if data.len() as u64 > limit {
                    return Err(too_large());
                }
                Ok(InputValue::Complex {
                    data,
                    format,
                    mime_type: raw
                        .mime_type
                        .clone()
                        .unwrap_or_else(|| format.mime_type.to_string()),
                    encoding: raw.encoding.clone(),
                    schema: raw.schema.clone(),
                    href: raw.href.clone(),
                })
            }
            InputKind::BoundingBox { crss } => {
                let default_crs = crss.first().copied().unwrap_or("EPSG:4326");
                let (lower, upper, crs) = match &raw.bbox {
                    Some((l, u, c)) => (l.clone(), u.clone(), c.clone()),
                    None => {
                        // KVP: minx,miny,maxx,maxy[,crs]
                        let text = raw.data.as_deref().unwrap_or("");
                        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
                        let nums: Vec<f64> = parts.iter().map_while(|p| p.parse().ok()).collect();
                        if nums.len() < 4 || !nums.len().is_multiple_of(2) {
                            return Err(WpsException::invalid(
                                format!("Could not parse bounding box '{text}' of {id}"),
                                id,
                            ));
                        }
                        let crs = parts.get(nums.len()).map(|s| s.to_string());
                        let half = nums.len() / 2;
                        (nums[..half].to_vec(), nums[half..].to_vec(), crs)
                    }
                };
                if lower.len() != upper.len() || lower.is_empty() {
                    return Err(WpsException::invalid(
                        format!("The corners of bounding box {id} differ in dimensions"),
                        id,
                    ));
                }
                Ok(InputValue::BoundingBox {
                    dimensions: lower.len(),
                    lower,
                    upper,
                    crs: crs.unwrap_or_else(|| default_crs.to_string()),
                })
            }
        }
    }

    /// A reference input: http(s) through the shared client, `file:` only under
    /// `allowedinputpaths`; never more than `limit` bytes.
    async fn fetch(
        &self,
        id: &str,
        href: &str,
        limit: u64,
        too_large: impl Fn() -> WpsException,
    ) -> Result<Bytes, WpsException> {
        if let Some(path) = href.strip_prefix("file://") {
            let path = PathBuf::from(path);
            let allowed = path.is_absolute()
                && !path
                    .components()
                    .any(|c| c == std::path::Component::ParentDir)
                && self
                    .cfg
                    .allowedinputpaths
                    .iter()
                    .any(|a| path.starts_with(a));
            if !allowed {
                return Err(WpsException::new(
                    Code::FileUrlNotSupported,
                    "File URL not supported as input.",
                    "",
                ));
            }
            let meta = tokio::fs::metadata(&path).await.map_err(|e| {
                WpsException::invalid(format!("Cannot read input {id} ({href}): {e}"), id)
            })?;
            if !meta.is_file() {
                // a FIFO or a device would block or never end
                return Err(WpsException::invalid(
                    format!("Cannot read input {id} ({href}): not a regular file"),
                    id,
                ));
            }
            if meta.len() > limit {
                return Err(too_large());
            }
            return tokio::fs::read(&path).await.map(Bytes::from).map_err(|e| {
                WpsException::invalid(format!("Cannot read input {id} ({href}): {e}"), id)
            });
        }
        match self
            .client
            .get_following_redirects(href, limit as usize, MAX_REDIRECTS)
            .await
        {
            Ok(b) => Ok(b),
            Err(e) if e.kind() == ClientErrorKind::BodyTooLarge => Err(too_large()),
            Err(e) if e.kind() == ClientErrorKind::InvalidUrl => Err(WpsException::invalid(
                format!("Invalid reference {href} for input {id}"),
                id,
            )),
            Err(e) => Err(WpsException::new(
                Code::NoApplicableCode,
                format!("Reference of input {id} could not be fetched: {e}"),
                id,
            )),
        }
    }

    /// The outputs mount: a file written under `outputpath` (one name, no directories).
    async fn serve_output(&self, method: Method, name: &str) -> Response<Body> {
        let name = percent_encoding::percent_decode_str(name).decode_utf8_lossy();
        let plain = !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
            && !name.starts_with('.');
        let not_found = || {
            text_response(
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                "not found\n",
            )
        };
        // only the names this app writes (`<uuid>.xml`, `<process>-<uuid><ext>`): the
        // outputpath may be a shared directory (PyWPS's default is the system's temporary one)
        if !plain || !written_here(&name) || !(method == Method::GET || method == Method::HEAD) {
            return not_found();
        }
        match tokio::fs::read(self.cfg.outputpath.join(&*name)).await {
            Ok(bytes) => {
                let ct = content_type_of(&name);
                let mut res = text_response(StatusCode::OK, ct, bytes);
                res.headers_mut().insert(
                    header::CACHE_CONTROL,
                    http::HeaderValue::from_static("no-cache"),
                );
                res
            }
            Err(_) => not_found(),
        }
    }
}

/// How many redirects a reference may take (PyWPS's requests allows 30; browsers 20).
const MAX_REDIRECTS: usize = 10;

/// A status document (`<uuid>.xml`) or an output written as a reference
/// (`<process>-<uuid><ext>`).
fn written_here(name: &str) -> bool {
    let is_uuid = |s: &str| s.len() == 36 && uuid::Uuid::try_parse(s).is_ok();
    if name.strip_suffix(".xml").is_some_and(is_uuid) {
        return true;
    }
    name.char_indices()
        .filter(|(_, c)| *c == '-')
        .any(|(i, _)| {
            let rest = &name[i + 1..];
            rest.get(..36).is_some_and(is_uuid)
                && rest
                    .get(36..)
                    .is_some_and(|ext| ext.is_empty() || ext.starts_with('.'))
        })
}

/// The whole body, at most `limit` bytes: `Err(None)` when longer, `Err(Some(message))` when
/// it cannot be read. (A frame loop: `Limited::collect` inside the handler's future trips
/// "implementation of `From` is not general enough".)
async fn read_limited(mut body: Body, limit: u64) -> Result<Bytes, Option<String>> {
    let mut buf = bytes::BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| Some(e.to_string()))?;
        if let Ok(data) = frame.into_data() {
            if (buf.len() + data.len()) as u64 > limit {
                return Err(None);
            }
            buf.extend_from_slice(&data);
        }
    }
    Ok(buf.freeze())
}

fn content_type_of(name: &str) -> &'static str {
    match name.rsplit('.').next().unwrap_or("") {
        "xml" => XML,
        "gml" => "application/gml+xml",
        "json" => "application/json",
        "geojson" => "application/geo+json",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

fn allowed_contains(
    allowed: &[crate::process::AllowedValue],
    t: DataType,
    value: &LiteralValue,
) -> bool {
    use crate::process::AllowedValue;
    allowed.iter().any(|a| match a {
        AllowedValue::Value(v) => t.convert(v).is_ok_and(|c| &c == value),
        AllowedValue::Range { min, max, spacing } => match value.as_f64() {
            Ok(x) => {
                x >= *min
                    && x <= *max
                    && (*spacing == 0.0 || ((x - min) / spacing).fract().abs() < 1e-9)
            }
            Err(_) => false,
        },
    })
}

/// Megabytes as Python prints a float.
fn mb(mb: f64) -> String {
    LiteralValue::Float(mb).to_string()
}

impl Inner {
    /// A line to the logger `PYWPS` (the runtime's logging: `[logger_*]` with
    /// `qualname = PYWPS`), if `[logging] level` lets it through.
    fn log(&self, level: log::Level, msg: &str) {
        let py = match level {
            log::Level::Error => 40,
            log::Level::Warn => 30,
            log::Level::Info => 20,
            log::Level::Debug => 10,
            log::Level::Trace => 5,
        };
        if py >= self.cfg.log_level {
            log::log!(target: LOG, level, "{msg}");
        }
    }
}

/// `creationTime` (UTC).
fn now() -> String {
    chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// Running and queued jobs: counted in memory, released by a guard whatever happens to the
/// job, so nothing can keep a slot after its job ended (PyWPS's job log in sqlite can).
#[derive(Default)]
struct Jobs {
    state: Mutex<JobState>,
}

#[derive(Default)]
struct JobState {
    running: usize,
    queue: VecDeque<Box<dyn FnOnce(Slot) + Send>>,
}

/// A running slot; dropping it starts the next queued job in it, or frees it.
struct Slot {
    inner: Arc<Inner>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let next = {
            let mut st = self
                .inner
                .jobs
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            match st.queue.pop_front() {
                Some(next) => Some(next),
                None => {
                    st.running = st.running.saturating_sub(1);
                    None
                }
            }
        };
        if let Some(next) = next {
            next(Slot {
                inner: self.inner.clone(),
            });
        }
    }
}

impl Inner {
    fn limit(&self) -> Option<usize> {
        (self.cfg.parallelprocesses >= 0).then_some(self.cfg.parallelprocesses as usize)
    }

    /// A slot now, or `None` when `parallelprocesses` are running.
    fn try_slot(self: &Arc<Self>) -> Option<Slot> {
        let mut st = self
            .jobs
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if self.limit().is_some_and(|l| st.running >= l) {
            return None;
        }
        st.running += 1;
        Some(Slot {
            inner: self.clone(),
        })
    }
}

/// One Execute.
struct Job {
    inner: Arc<Inner>,
    process: &'static dyn Process,
    spec: Arc<ExecuteSpec>,
    inputs: Vec<(&'static str, Vec<InputValue>)>,
    uuid: String,
    language: String,
    is_async: bool,
}

/// How a handler run ended.
enum Outcome {
    Succeeded(Vec<(String, OutputValue)>),
    Failed(String),
}

impl Job {
    fn status_path(&self) -> PathBuf {
        self.inner.cfg.outputpath.join(format!("{}.xml", self.uuid))
    }

    fn status_url(&self) -> String {
        format!("{}{}.xml", self.inner.cfg.outputurl, self.uuid)
    }

    fn output_definitions(&self) -> Vec<OutputDefinition> {
        let desc = self.process.describe();
        if self.spec.outputs.is_empty() {
            desc.outputs
                .iter()
                .map(|o| OutputDefinition {
                    identifier: o.identifier.to_string(),
                    as_reference: false,
                    mime_type: None,
                })
                .collect()
        } else {
            self.spec
                .outputs
                .iter()
                .map(|o| OutputDefinition {
                    identifier: o.identifier.clone(),
                    as_reference: o.as_reference,
                    mime_type: o.mime_type.clone(),
                })
                .collect()
        }
    }

    fn document(&self, status: Status, outputs: &[(String, ShownOutput)]) -> String {
        let service_instance = self.inner.service_instance();
        let status_location = if self.is_async {
            self.status_url()
        } else {
            String::new()
        };
        let defs = self.output_definitions();
        xml::execute_response(&ExecuteDoc {
            process: self.process.describe(),
            service_instance: &service_instance,
            status_location: &status_location,
            language: &self.language,
            time: now(),
            status,
            lineage: self.spec.lineage.then_some((&self.inputs, defs.as_slice())),
            outputs,
        })
    }

    /// Synchronous: `ServerBusy` when `parallelprocesses` run, else run and answer.
    async fn run_sync(self) -> Result<Response<Body>, WpsException> {
        let Some(slot) = self.inner.try_slot() else {
            return Err(WpsException::new(
                Code::ServerBusy,
                "Maximum number of parallel running processes reached. Please try later.",
                "",
            ));
        };
        let job = Arc::new(self);
        let outcome = job.clone().run(slot, false).await;
        job.answer(outcome)
    }

    /// Asynchronous: accepted at once (running or queued), `ServerBusy` when the queue is
    /// full; the status document under `outputpath` follows the job.
    fn start_async(self) -> Result<Response<Body>, WpsException> {
        let inner = self.inner.clone();
        let job = Arc::new(self);
        // PyWPS's ExecuteResponse.json replaces the message of an accepted job.
        let accepted = |_why: &str| {
            let msg = format!(
                "PyWPS Process {} accepted",
                job.process.describe().identifier
            );
            job.document(Status::Accepted(msg), &[])
        };
        let (doc, start_now) = {
            let mut st = inner
                .jobs
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if inner.limit().is_none_or(|l| st.running < l) {
                st.running += 1;
                (accepted("PyWPS Request accepted"), true)
            } else {
                let maxq = inner.cfg.maxprocesses;
                if maxq >= 0 && st.queue.len() >= maxq as usize {
                    return Err(WpsException::new(
                        Code::ServerBusy,
                        "Maximum number of processes in queue reached. Please try later.",
                        "",
                    ));
                }
                let doc = accepted("PyWPS Process stored in job queue");
                // Written before the job can start, so a later document always wins.
                job.write_status(&doc)?;
                let queued = job.clone();
                let rt = inner.runtime.clone();
                st.queue.push_back(Box::new(move |slot: Slot| {
                    rt.spawn(async move {
                        let _ = queued.clone().run(slot, true).await;
                    });
                }));
                (doc, false)
            }
        };
        if start_now {
            // The slot counted above: released by this guard if the document cannot be written.
            let slot = Slot {
                inner: inner.clone(),
            };
            job.write_status(&doc)?;
            let j = job.clone();
            inner.runtime.spawn(async move {
                let _ = j.run(slot, true).await;
            });
        }
        Ok(xml_response(doc))
    }

    fn write_status(&self, doc: &str) -> Result<(), WpsException> {
        write_atomic(&self.status_path(), doc.as_bytes()).map_err(|e| {
            WpsException::new(
                Code::NoApplicableCode,
                format!("Writing Response Document failed with : {e}"),
                "",
            )
        })
    }

    /// Runs the handler on a blocking thread, holding `slot` and the job's working directory
    /// until the handler returns or panics (also when the request that waits for it is
    /// dropped: a client that hangs up does not free the slot early). In async mode the
    /// status document follows the job and its final version is written. A panic is a failure
    /// of this job only.
    async fn run(self: Arc<Self>, slot: Slot, is_async: bool) -> Outcome {
        let job = self.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let workdir = job
                .inner
                .cfg
                .workdir
                .join(format!("pywps_process_{}", job.uuid));
            let sink: Option<StatusSink> = is_async.then(|| {
                let j = job.clone();
                Arc::new(move |msg: &str, pct: u8| {
                    let doc = j.document(Status::Started(msg.to_string(), pct), &[]);
                    if let Err(e) = j.write_status(&doc) {
                        j.inner.log(log::Level::Error, &e.to_string());
                    }
                }) as StatusSink
            });
            let mut res = match sink {
                Some(s) => {
                    s("PyWPS Process started", 0);
                    ExecuteResponse::with_status(s)
                }
                None => ExecuteResponse::new(),
            };
            let req = ExecuteRequest {
                inputs: job.inputs.clone(),
                workdir_path: workdir.clone(),
            };
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job.process.execute(&req, &mut res)
            }));
            if job.inner.cfg.cleantempdir {
                // Absent unless the handler asked for it: one failing syscall then.
                let _ = std::fs::remove_dir_all(&workdir);
            }
            result.map(|r| r.map(|()| res.outputs))
        })
        .await;
        let debug = self.inner.cfg.log_level <= 10;
        let outcome = match joined {
            Ok(Ok(Ok(outputs))) => Outcome::Succeeded(outputs),
            Ok(Ok(Err(e))) => {
                self.inner
                    .log(log::Level::Error, &format!("Process error: {e}"));
                Outcome::Failed(format!("Process error: {e}"))
            }
            Ok(Err(panic)) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "panic".to_string());
                self.inner.log(
                    log::Level::Error,
                    &format!(
                        "Process error: process {} panicked: {what}",
                        self.spec.identifier
                    ),
                );
                if debug {
                    Outcome::Failed(format!("Process error: panic: {what}"))
                } else {
                    Outcome::Failed("Process failed, please check server error log".to_string())
                }
            }
            Err(e) => Outcome::Failed(format!("Process error: {e}")),
        };
        if is_async {
            let doc = match &outcome {
                Outcome::Succeeded(outputs) => match self.shown_outputs(outputs) {
                    Ok(shown) => self.document(self.succeeded_status(), &shown),
                    Err(e) => self.document(Status::Failed(e.text), &[]),
                },
                Outcome::Failed(msg) => self.document(Status::Failed(msg.clone()), &[]),
            };
            if let Err(e) = self.write_status(&doc) {
                self.inner.log(log::Level::Error, &e.to_string());
            }
        }
        outcome
    }

    fn succeeded_status(&self) -> Status {
        Status::Succeeded(format!(
            "PyWPS Process {} finished",
            self.process.describe().title
        ))
    }

    /// The outputs as the document shows them: the requested ones (all if none was named),
    /// written under `outputpath` when asked for as reference.
    fn shown_outputs(
        &self,
        outputs: &[(String, OutputValue)],
    ) -> Result<Vec<(String, ShownOutput)>, WpsException> {
        let defs = self.output_definitions();
        let mut shown = Vec::with_capacity(defs.len());
        for def in defs {
            let Some((_, value)) = outputs.iter().find(|(i, _)| *i == def.identifier) else {
                continue;
            };
            if def.as_reference {
                let (bytes, format) = match value {
                    OutputValue::Complex { data, format } => (data.clone(), *format),
                    OutputValue::Literal { value, .. } => {
                        (Bytes::from(value.to_string()), Format::TEXT)
                    }
                    OutputValue::BoundingBox { .. } => {
                        shown.push((def.identifier, ShownOutput::Data(value.clone())));
                        continue;
                    }
                };
                let name = format!("{}-{}{}", def.identifier, self.uuid, format.extension);
                write_atomic(&self.inner.cfg.outputpath.join(&name), &bytes).map_err(|e| {
                    WpsException::new(
                        Code::FileStorageError,
                        format!("Writing output {} failed: {e}", def.identifier),
                        def.identifier.clone(),
                    )
                })?;
                shown.push((
                    def.identifier,
                    ShownOutput::Reference {
                        href: format!("{}{}", self.inner.cfg.outputurl, name),
                        format,
                    },
                ));
            } else {
                shown.push((def.identifier, ShownOutput::Data(value.clone())));
            }
        }
        Ok(shown)
    }

    /// The synchronous answer: the document, or the raw output.
    fn answer(&self, outcome: Outcome) -> Result<Response<Body>, WpsException> {
        match (&self.spec.raw, outcome) {
            (Some(_), Outcome::Failed(msg)) => {
                Err(WpsException::new(Code::NoApplicableCode, msg, ""))
            }
            (Some(raw), Outcome::Succeeded(outputs)) => raw_output(raw, &outputs),
            (None, Outcome::Failed(msg)) => {
                Ok(xml_response(self.document(Status::Failed(msg), &[])))
            }
            (None, Outcome::Succeeded(outputs)) => {
                let shown = self.shown_outputs(&outputs)?;
                Ok(xml_response(self.document(self.succeeded_status(), &shown)))
            }
        }
    }
}

fn raw_output(
    raw: &OutputRequest,
    outputs: &[(String, OutputValue)],
) -> Result<Response<Body>, WpsException> {
    let Some((id, value)) = outputs.iter().find(|(i, _)| *i == raw.identifier) else {
        return Err(WpsException::new(
            Code::NoApplicableCode,
            "Expected output was not generated",
            "",
        ));
    };
    let (body, ct, suffix) = match value {
        OutputValue::Literal { value, .. } => (
            Bytes::from(value.to_string()),
            "text/plain; charset=utf-8".to_string(),
            "",
        ),
        OutputValue::Complex { data, format } => {
            (data.clone(), format.mime_type.to_string(), format.extension)
        }
        OutputValue::BoundingBox { lower, upper, crs } => {
            let v = serde_json::json!({"bbox": [lower, upper], "crs": crs});
            (
                Bytes::from(v.to_string()),
                "application/json".to_string(),
                ".json",
            )
        }
    };
    let mut res = text_response(StatusCode::OK, &ct, body);
    if let Ok(v) = http::HeaderValue::from_str(&format!("attachment; filename=\"{id}{suffix}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(res)
}

/// Write a file whole: a temporary file beside it, then a rename (a reader of a status
/// document never sees half of one).
fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("out"),
        uuid::Uuid::new_v4()
    ));
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}
