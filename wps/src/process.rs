//! Writing a process: describe it with `const` descriptors, implement [`Process`], register it
//! with [`register_process!`](crate::register_process). The binary that links the crate
//! serves it under its identifier; an ini's `processes` option can pick a subset.
//!
//! ```
//! use mapproxy_serve_wps::process::*;
//!
//! pub struct Double;
//!
//! const DESC: ProcessDesc = ProcessDesc {
//!     identifier: "double",
//!     title: "Doubles a number",
//!     inputs: &[InputDesc::literal("x", "A number", DataType::Float)],
//!     outputs: &[OutputDesc::literal("y", "Twice x", DataType::Float)],
//!     ..ProcessDesc::DEFAULT
//! };
//!
//! impl Process for Double {
//!     fn describe(&self) -> &'static ProcessDesc {
//!         &DESC
//!     }
//!     fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
//!         let x = req.literal("x")?.as_f64()?;
//!         res.set_literal("y", LiteralValue::Float(2.0 * x));
//!         Ok(())
//!     }
//! }
//!
//! mapproxy_serve_wps::register_process!(Double);
//! ```
//!
//! The handler runs on a blocking thread (PyWPS handlers block too); it reports progress with
//! [`ExecuteResponse::update_status`], which rewrites the status document of an asynchronous
//! job. An error or a panic fails that job only (`ProcessFailed`).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;

/// A literal's XML Schema type (`ows:DataType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DataType {
    /// `string`
    String,
    /// `integer`
    Integer,
    /// `float`
    Float,
    /// `boolean`
    Boolean,
    /// `positiveInteger`
    PositiveInteger,
    /// `nonNegativeInteger`
    NonNegativeInteger,
    /// `anyURI`
    AnyUri,
    /// `date` (kept as text)
    Date,
    /// `time` (kept as text)
    Time,
    /// `dateTime` (kept as text)
    DateTime,
}

impl DataType {
    /// The name PyWPS writes (`integer`, `float`, ...).
    pub fn name(self) -> &'static str {
        match self {
            DataType::String => "string",
            DataType::Integer => "integer",
            DataType::Float => "float",
            DataType::Boolean => "boolean",
            DataType::PositiveInteger => "positiveInteger",
            DataType::NonNegativeInteger => "nonNegativeInteger",
            DataType::AnyUri => "anyURI",
            DataType::Date => "date",
            DataType::Time => "time",
            DataType::DateTime => "dateTime",
        }
    }

    /// Converts request text into a value of this type, as PyWPS's `convert_*` do; the error
    /// is PyWPS's message.
    pub fn convert(self, text: &str) -> Result<LiteralValue, String> {
        let fail = || {
            format!(
                "Could not convert value '{text}' to format '{}'",
                self.name()
            )
        };
        let t = text.trim();
        Ok(match self {
            DataType::Integer | DataType::PositiveInteger | DataType::NonNegativeInteger => {
                // Python's int(float(x)) accepts "3.0"; int("x") does not.
                let v = match t.parse::<i64>() {
                    Ok(v) => v,
                    Err(_) => match t.parse::<f64>() {
                        Ok(f) if f.is_finite() && f.fract() == 0.0 && f.abs() < 9.0e18 => f as i64,
                        _ => return Err(fail()),
                    },
                };
                if (self == DataType::PositiveInteger && v <= 0)
                    || (self == DataType::NonNegativeInteger && v < 0)
                {
                    return Err(fail());
                }
                LiteralValue::Integer(v)
            }
            DataType::Float => LiteralValue::Float(t.parse::<f64>().map_err(|_| fail())?),
            DataType::Boolean => match t.to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "y" | "t" | "on" => LiteralValue::Boolean(true),
                "false" | "0" | "no" | "n" | "f" | "off" | "" => LiteralValue::Boolean(false),
                _ => return Err(fail()),
            },
            _ => LiteralValue::String(text.to_string()),
        })
    }
}

/// A literal value.
#[derive(Clone, Debug, PartialEq)]
pub enum LiteralValue {
    /// Text (also anyURI, dates and times).
    String(String),
    /// A whole number.
    Integer(i64),
    /// A number.
    Float(f64),
    /// A boolean.
    Boolean(bool),
}

impl LiteralValue {
    /// The value as a float (integers convert), else an error naming the value.
    pub fn as_f64(&self) -> Result<f64, ProcessError> {
        match self {
            LiteralValue::Float(f) => Ok(*f),
            LiteralValue::Integer(i) => Ok(*i as f64),
            other => Err(ProcessError::new(format!("not a number: {other}"))),
        }
    }

    /// The value as text.
    pub fn as_text(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for LiteralValue {
    /// As Python's `str()` prints it (`True`, `1.5`, `2.0`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LiteralValue::String(s) => f.write_str(s),
            LiteralValue::Integer(i) => write!(f, "{i}"),
            LiteralValue::Float(x) if x.is_finite() && x.fract() == 0.0 && x.abs() < 1e16 => {
                write!(f, "{x:.1}")
            }
            LiteralValue::Float(x) => write!(f, "{x}"),
            LiteralValue::Boolean(true) => f.write_str("True"),
            LiteralValue::Boolean(false) => f.write_str("False"),
        }
    }
}

/// A complex format (`Format`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    /// `application/gml+xml`
    pub mime_type: &'static str,
    /// `""`, `base64`, `utf-8`
    pub encoding: &'static str,
    /// A schema URL or `""`.
    pub schema: &'static str,
    /// The file extension of outputs written in this format (`.gml`).
    pub extension: &'static str,
}

impl Format {
    /// A format by MIME type, its extension guessed as PyWPS's `FORMATS` table does.
    pub const fn new(mime_type: &'static str, extension: &'static str) -> Format {
        Format {
            mime_type,
            encoding: "",
            schema: "",
            extension,
        }
    }
    /// GML (`application/gml+xml`, `.gml`).
    pub const GML: Format = Format::new("application/gml+xml", ".gml");
    /// GeoJSON as PyWPS's `FORMATS.JSON` (`application/json`, `.json`).
    pub const JSON: Format = Format::new("application/json", ".json");
    /// GeoJSON (`application/geo+json`, `.geojson`).
    pub const GEOJSON: Format = Format::new("application/geo+json", ".geojson");
    /// Plain text.
    pub const TEXT: Format = Format::new("text/plain", ".txt");
    /// XML.
    pub const XML: Format = Format::new("text/xml", ".xml");
}

/// One entry of a literal's allowed values.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AllowedValue {
    /// Exactly this value (compared after conversion to the data type).
    Value(&'static str),
    /// A closed range (`ows:Range rangeClosure="closed"`) with an optional spacing.
    Range {
        /// Lower bound.
        min: f64,
        /// Upper bound.
        max: f64,
        /// Step, or 0 for none.
        spacing: f64,
    },
}

/// What kind of input.
#[derive(Clone, Copy, Debug)]
pub enum InputKind {
    /// A literal.
    Literal {
        /// Its type.
        data_type: DataType,
        /// Allowed values; empty: any value (`ows:AnyValue`).
        allowed: &'static [AllowedValue],
        /// The value used when the request gives none (`DefaultValue`).
        default: Option<&'static str>,
        /// Units of measure, the first the default.
        uoms: &'static [&'static str],
    },
    /// A complex input: the first format is the default.
    Complex {
        /// Supported formats.
        formats: &'static [Format],
    },
    /// A bounding box.
    BoundingBox {
        /// Supported CRSs, the first the default.
        crss: &'static [&'static str],
    },
}

/// One input of a process.
#[derive(Clone, Copy, Debug)]
pub struct InputDesc {
    /// `ows:Identifier`
    pub identifier: &'static str,
    /// `ows:Title`
    pub title: &'static str,
    /// `ows:Abstract`
    pub abstract_: &'static str,
    /// Type and constraints.
    pub kind: InputKind,
    /// `minOccurs` (default 1; 0 makes it optional).
    pub min_occurs: u32,
    /// `maxOccurs` (default 1).
    pub max_occurs: u32,
}

impl InputDesc {
    /// A required literal of any value.
    pub const fn literal(identifier: &'static str, title: &'static str, t: DataType) -> Self {
        InputDesc {
            identifier,
            title,
            abstract_: "",
            kind: InputKind::Literal {
                data_type: t,
                allowed: &[],
                default: None,
                uoms: &[],
            },
            min_occurs: 1,
            max_occurs: 1,
        }
    }
    /// A required complex input.
    pub const fn complex(
        identifier: &'static str,
        title: &'static str,
        formats: &'static [Format],
    ) -> Self {
        InputDesc {
            identifier,
            title,
            abstract_: "",
            kind: InputKind::Complex { formats },
            min_occurs: 1,
            max_occurs: 1,
        }
    }
    /// A required bounding box.
    pub const fn bbox(
        identifier: &'static str,
        title: &'static str,
        crss: &'static [&'static str],
    ) -> Self {
        InputDesc {
            identifier,
            title,
            abstract_: "",
            kind: InputKind::BoundingBox { crss },
            min_occurs: 1,
            max_occurs: 1,
        }
    }
}

/// What kind of output.
#[derive(Clone, Copy, Debug)]
pub enum OutputKind {
    /// A literal of this type.
    Literal {
        /// Its type.
        data_type: DataType,
    },
    /// A complex output: the first format is the default.
    Complex {
        /// Supported formats.
        formats: &'static [Format],
    },
    /// A bounding box.
    BoundingBox {
        /// Supported CRSs, the first the default.
        crss: &'static [&'static str],
    },
}

/// One output of a process.
#[derive(Clone, Copy, Debug)]
pub struct OutputDesc {
    /// `ows:Identifier`
    pub identifier: &'static str,
    /// `ows:Title`
    pub title: &'static str,
    /// `ows:Abstract`
    pub abstract_: &'static str,
    /// Type.
    pub kind: OutputKind,
}

impl OutputDesc {
    /// A literal output.
    pub const fn literal(identifier: &'static str, title: &'static str, t: DataType) -> Self {
        OutputDesc {
            identifier,
            title,
            abstract_: "",
            kind: OutputKind::Literal { data_type: t },
        }
    }
    /// A complex output.
    pub const fn complex(
        identifier: &'static str,
        title: &'static str,
        formats: &'static [Format],
    ) -> Self {
        OutputDesc {
            identifier,
            title,
            abstract_: "",
            kind: OutputKind::Complex { formats },
        }
    }
}

/// A process's description: what GetCapabilities and DescribeProcess print.
#[derive(Clone, Copy, Debug)]
pub struct ProcessDesc {
    /// `ows:Identifier`: the name clients call it by.
    pub identifier: &'static str,
    /// `ows:Title`
    pub title: &'static str,
    /// `ows:Abstract`
    pub abstract_: &'static str,
    /// `wps:processVersion` (PyWPS's default is the text `None`).
    pub version: &'static str,
    /// `ows:Keywords` in the capabilities.
    pub keywords: &'static [&'static str],
    /// `ows:Metadata xlink:title` entries.
    pub metadata: &'static [&'static str],
    /// Inputs, in order.
    pub inputs: &'static [InputDesc],
    /// Outputs, in order.
    pub outputs: &'static [OutputDesc],
    /// `storeSupported`: may run with `storeExecuteResponse=true`.
    pub store_supported: bool,
    /// `statusSupported`: may run asynchronously with `status=true`.
    pub status_supported: bool,
}

impl ProcessDesc {
    /// Defaults for `..ProcessDesc::DEFAULT`.
    pub const DEFAULT: ProcessDesc = ProcessDesc {
        identifier: "",
        title: "",
        abstract_: "",
        version: "None",
        keywords: &[],
        metadata: &[],
        inputs: &[],
        outputs: &[],
        store_supported: false,
        status_supported: false,
    };

    /// The input named `id`.
    pub fn input(&self, id: &str) -> Option<&'static InputDesc> {
        self.inputs.iter().find(|i| i.identifier == id)
    }

    /// The output named `id`.
    pub fn output(&self, id: &str) -> Option<&'static OutputDesc> {
        self.outputs.iter().find(|o| o.identifier == id)
    }
}

/// A process: its description and its handler.
pub trait Process: Send + Sync + 'static {
    /// What it is, takes and gives.
    fn describe(&self) -> &'static ProcessDesc;

    /// Run it: read `req`, set outputs on `res`, report progress with
    /// [`ExecuteResponse::update_status`]. Runs on a blocking thread.
    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError>;
}

/// A process registered at link time ([`register_process!`](crate::register_process)).
pub struct Registration(pub &'static dyn Process);

inventory::collect!(Registration);

/// Register a process (a `static`-constructible value implementing [`Process`]); one item at
/// module level.
#[macro_export]
macro_rules! register_process {
    ($process:expr) => {
        $crate::inventory::submit! { $crate::process::Registration(&$process) }
    };
}

/// Every registered process, sorted by identifier.
pub fn registered() -> Vec<&'static dyn Process> {
    let mut v: Vec<&'static dyn Process> = inventory::iter::<Registration>
        .into_iter()
        .map(|r| r.0)
        .collect();
    v.sort_by_key(|p| p.describe().identifier);
    v
}

/// A failure of a process: the job ends `ProcessFailed` with this message.
#[derive(Clone, Debug)]
pub struct ProcessError(pub String);

impl ProcessError {
    /// An error with a message for the client.
    pub fn new(msg: impl Into<String>) -> Self {
        ProcessError(msg.into())
    }
}

impl fmt::Display for ProcessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ProcessError {}

/// One value given for an input.
#[derive(Clone, Debug)]
pub enum InputValue {
    /// A literal, converted to the input's type.
    Literal {
        /// The value.
        value: LiteralValue,
        /// The text as sent (lineage prints it).
        text: String,
        /// `uom`, if given.
        uom: Option<String>,
    },
    /// Complex data: inline, or fetched from a reference.
    Complex {
        /// The bytes (base64 already decoded).
        data: Bytes,
        /// The format it was sent in.
        format: Format,
        /// The MIME type as the request named it.
        mime_type: String,
        /// `encoding` as the request named it.
        encoding: String,
        /// `schema` as the request named it.
        schema: String,
        /// The `xlink:href` it was fetched from, for references.
        href: Option<String>,
    },
    /// A bounding box.
    BoundingBox {
        /// Lower corner.
        lower: Vec<f64>,
        /// Upper corner.
        upper: Vec<f64>,
        /// CRS as given (or the input's default).
        crs: String,
        /// Number of dimensions.
        dimensions: usize,
    },
}

impl InputValue {
    /// The literal value, else an error.
    pub fn as_literal(&self) -> Result<&LiteralValue, ProcessError> {
        match self {
            InputValue::Literal { value, .. } => Ok(value),
            _ => Err(ProcessError::new("not a literal input")),
        }
    }
    /// The complex data, else an error.
    pub fn as_complex(&self) -> Result<&Bytes, ProcessError> {
        match self {
            InputValue::Complex { data, .. } => Ok(data),
            _ => Err(ProcessError::new("not a complex input")),
        }
    }
}

/// The inputs of a job: each input's identifier with its values, in the process's order.
pub type Inputs = Vec<(&'static str, Vec<InputValue>)>;

/// What a handler reads: the inputs by identifier, the job's working directory.
#[derive(Clone, Debug, Default)]
pub struct ExecuteRequest {
    /// Inputs in the process's order, each with its values (at least `min_occurs`, at most
    /// `max_occurs`; defaults applied).
    pub inputs: Inputs,
    /// This job's working directory (`[server] workdir/pywps_process_<uuid>`): created by
    /// [`workdir`](ExecuteRequest::workdir) when the handler first asks for it (most handlers
    /// never do), removed after the job.
    pub workdir_path: PathBuf,
}

impl ExecuteRequest {
    /// The job's working directory, created on first use.
    pub fn workdir(&self) -> Result<&std::path::Path, ProcessError> {
        std::fs::create_dir_all(&self.workdir_path).map_err(|e| {
            ProcessError::new(format!(
                "cannot create the working directory {}: {e}",
                self.workdir_path.display()
            ))
        })?;
        Ok(&self.workdir_path)
    }

    /// The values of an input (empty when it was optional and not given).
    pub fn values(&self, id: &str) -> &[InputValue] {
        self.inputs
            .iter()
            .find(|(i, _)| *i == id)
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }
    /// The first value of an input, else an error naming it.
    pub fn first(&self, id: &str) -> Result<&InputValue, ProcessError> {
        self.values(id)
            .first()
            .ok_or_else(|| ProcessError::new(format!("input '{id}' has no value")))
    }
    /// The first value of a literal input.
    pub fn literal(&self, id: &str) -> Result<&LiteralValue, ProcessError> {
        self.first(id)?.as_literal()
    }
    /// The first value of a complex input.
    pub fn complex(&self, id: &str) -> Result<&Bytes, ProcessError> {
        self.first(id)?.as_complex()
    }
}

/// An output's value.
#[derive(Clone, Debug)]
pub enum OutputValue {
    /// A literal.
    Literal {
        /// The value.
        value: LiteralValue,
        /// `uom`, if any.
        uom: Option<String>,
    },
    /// Complex data in a format.
    Complex {
        /// The bytes.
        data: Bytes,
        /// Its format.
        format: Format,
    },
    /// A bounding box.
    BoundingBox {
        /// Lower corner.
        lower: Vec<f64>,
        /// Upper corner.
        upper: Vec<f64>,
        /// CRS.
        crs: String,
    },
}

/// Progress reports of a running job: `(message, percent)`.
pub type StatusSink = Arc<dyn Fn(&str, u8) + Send + Sync>;

/// What a handler writes: outputs, progress.
pub struct ExecuteResponse {
    pub(crate) outputs: Vec<(String, OutputValue)>,
    pub(crate) status: Option<StatusSink>,
    pub(crate) percent: u8,
}

impl fmt::Debug for ExecuteResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExecuteResponse")
            .field("outputs", &self.outputs)
            .field("percent", &self.percent)
            .finish_non_exhaustive()
    }
}

impl Default for ExecuteResponse {
    fn default() -> Self {
        ExecuteResponse::new()
    }
}

impl ExecuteResponse {
    /// An empty response that reports progress nowhere (for tests of a handler).
    pub fn new() -> Self {
        ExecuteResponse {
            outputs: Vec::new(),
            status: None,
            percent: 0,
        }
    }

    pub(crate) fn with_status(sink: StatusSink) -> Self {
        ExecuteResponse {
            status: Some(sink),
            ..ExecuteResponse::new()
        }
    }

    /// Set an output (replacing an earlier value).
    pub fn set(&mut self, id: &str, value: OutputValue) {
        self.outputs.retain(|(i, _)| i != id);
        self.outputs.push((id.to_string(), value));
    }
    /// Set a literal output.
    pub fn set_literal(&mut self, id: &str, value: LiteralValue) {
        self.set(id, OutputValue::Literal { value, uom: None });
    }
    /// Set a complex output.
    pub fn set_complex(&mut self, id: &str, data: impl Into<Bytes>, format: Format) {
        self.set(
            id,
            OutputValue::Complex {
                data: data.into(),
                format,
            },
        );
    }
    /// The value set for an output.
    pub fn get(&self, id: &str) -> Option<&OutputValue> {
        self.outputs.iter().find(|(i, _)| i == id).map(|(_, v)| v)
    }
    /// Report progress (`ProcessStarted percentCompleted`, 0..=100; over 99 shows as 99 until
    /// the job ends, as PyWPS).
    pub fn update_status(&mut self, message: &str, percent: u8) {
        self.percent = percent.min(100);
        if let Some(sink) = &self.status {
            sink(message, self.percent);
        }
    }
    /// The last percentage reported.
    pub fn percent(&self) -> u8 {
        self.percent
    }
}
