//! Python's `logging.Formatter` with the `%` style: `%(name)s`-style fields of a log record,
//! formatted with the flags, width, precision and conversion Python's `%` operator applies, and
//! `asctime` rendered with `datefmt` through strftime (or Python's default
//! `%Y-%m-%d %H:%M:%S,mmm`).
//!
//! Unlike Python, every field is checked when the format is read: a field that has no meaning
//! for records of this program (`%(exc_info)s`, `%(taskName)s`, a typo) or a conversion that
//! Python would reject at emit time (`%(name)d`) is an error then, not a blank or a
//! `--- Logging error ---` later. So is a width or precision above [`MAX_WIDTH`]
//! (`%(message)99999999999999999999s` would ask for more memory than there is, at every line).
//!
//! ```
//! use mapproxy_serve::logging::format::{Formatter, LogRecord};
//!
//! let f = Formatter::new(Some("%(levelname)-8s %(name)s: %(message)s"), None).unwrap();
//! let mut record = LogRecord::example();
//! record.message = "hello";
//! assert_eq!(f.format(&record), "INFO     mapproxy.source.request: hello");
//! ```

use std::fmt::Write as _;

use chrono::{DateTime, FixedOffset, Local, TimeZone, Utc};

/// Python's default format (`logging.Formatter()` with no format).
pub const DEFAULT_FORMAT: &str = "%(message)s";

/// The largest width or precision a format field may give (`%(levelname)-10000s`).
pub const MAX_WIDTH: usize = 10_000;

/// One log record as Python's `LogRecord` presents it to a formatter.
#[derive(Clone, Debug)]
pub struct LogRecord<'a> {
    /// The logger name, dotted (`mapproxy.source.request`).
    pub name: &'a str,
    /// The numeric level (DEBUG 10, INFO 20, WARNING 30, ERROR 40, CRITICAL 50; TRACE 5).
    pub levelno: u32,
    /// The level name as Python prints it (`WARNING`, not `WARN`).
    pub levelname: &'a str,
    /// The source file, if known.
    pub pathname: Option<&'a str>,
    /// The source line, if known.
    pub lineno: Option<u32>,
    /// The function name, if known (Rust log records do not carry it).
    pub func_name: Option<&'a str>,
    /// Creation time: seconds since the epoch.
    pub created_secs: i64,
    /// Creation time: nanoseconds within the second.
    pub created_nanos: u32,
    /// Milliseconds since logging was initialised (`relativeCreated`).
    pub relative_created: f64,
    /// A numeric id of the thread.
    pub thread: u64,
    /// The thread's name.
    pub thread_name: &'a str,
    /// The process id.
    pub process: u32,
    /// The formatted message.
    pub message: &'a str,
    /// The time zone for `asctime`; `None` is the local zone (honouring `TZ`).
    pub tz: Option<FixedOffset>,
}

impl LogRecord<'static> {
    /// A fixed record (for examples and tests): `mapproxy.source.request` at INFO, created
    /// 2023-11-14 22:13:20.123456 UTC, shown in UTC.
    pub fn example() -> Self {
        LogRecord {
            name: "mapproxy.source.request",
            levelno: 20,
            levelname: "INFO",
            pathname: Some("src/client/log.rs"),
            lineno: Some(42),
            func_name: Some("log_request"),
            created_secs: 1_700_000_000,
            created_nanos: 123_456_000,
            relative_created: 1234.5678,
            thread: 140_000_000_001,
            thread_name: "MainThread",
            process: 4242,
            message: "GET http://example.org/wms 200 1.1 10",
            tz: Some(FixedOffset::east_opt(0).expect("zero offset")),
        }
    }
}

/// A record field that a format string can name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    Name,
    Levelno,
    Levelname,
    Pathname,
    Filename,
    Module,
    Lineno,
    FuncName,
    Created,
    Msecs,
    RelativeCreated,
    Asctime,
    Thread,
    ThreadName,
    Process,
    ProcessName,
    Message,
}

/// The Python type of a field's value (decides which conversions apply).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Str,
    Int,
    Float,
}

impl Field {
    fn from_name(name: &str) -> Result<Field, String> {
        Ok(match name {
            "name" => Field::Name,
            "levelno" => Field::Levelno,
            "levelname" => Field::Levelname,
            "pathname" => Field::Pathname,
            "filename" => Field::Filename,
            "module" => Field::Module,
            "lineno" => Field::Lineno,
            "funcName" => Field::FuncName,
            "created" => Field::Created,
            "msecs" => Field::Msecs,
            "relativeCreated" => Field::RelativeCreated,
            "asctime" => Field::Asctime,
            "thread" => Field::Thread,
            "threadName" => Field::ThreadName,
            "process" => Field::Process,
            "processName" => Field::ProcessName,
            "message" => Field::Message,
            "msg" | "args" | "exc_info" | "exc_text" | "stack_info" | "taskName" => {
                return Err(format!(
                    "field %({name})s has no meaning for this program's log records \
                     (known: {KNOWN_FIELDS})"
                ))
            }
            _ => return Err(format!("unknown field %({name})s (known: {KNOWN_FIELDS})")),
        })
    }

    fn kind(self) -> Kind {
        match self {
            Field::Levelno | Field::Lineno | Field::Thread | Field::Process => Kind::Int,
            Field::Created | Field::Msecs | Field::RelativeCreated => Kind::Float,
            _ => Kind::Str,
        }
    }
}

const KNOWN_FIELDS: &str = "asctime, created, filename, funcName, levelname, levelno, lineno, \
                            message, module, msecs, name, pathname, process, processName, \
                            relativeCreated, thread, threadName";

/// A conversion spec: `%(field)[flags][width][.precision]type`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Spec {
    left: bool,
    zero: bool,
    plus: bool,
    space: bool,
    alt: bool,
    width: Option<usize>,
    precision: Option<usize>,
    conv: char,
}

#[derive(Clone, Debug)]
enum Part {
    Lit(String),
    Field(Field, Spec),
}

/// A parsed `%`-style format plus its `datefmt`.
#[derive(Clone, Debug)]
pub struct Formatter {
    parts: Vec<Part>,
    datefmt: Option<Vec<DatePart>>,
    /// The last second's `asctime` without milliseconds, with the second and zone it is for:
    /// many lines share a second, and the local zone's lookup and the date's formatting cost
    /// more than the rest of a line.
    second: std::sync::Arc<std::sync::Mutex<Option<SecondText>>>,
}

/// A second since the epoch, the zone it was shown in, and its `asctime` there.
type SecondText = (i64, Option<FixedOffset>, String);

impl Formatter {
    /// Read a format (`None` or empty: `%(message)s`, like Python) and an optional `datefmt`.
    /// The error is the bare message; the caller adds where the format was written.
    pub fn new(format: Option<&str>, datefmt: Option<&str>) -> Result<Formatter, String> {
        let fmt = match format {
            Some(f) if !f.is_empty() => f,
            _ => DEFAULT_FORMAT,
        };
        let parts = parse(fmt)?;
        if !parts.iter().any(|p| matches!(p, Part::Field(..))) {
            // Python's Formatter(validate=True): "Invalid format '...' for '%' style".
            return Err(format!(
                "invalid format {fmt:?}: it has no %(field)s (Python rejects it too)"
            ));
        }
        let datefmt = match datefmt {
            Some(d) if !d.is_empty() => Some(parse_datefmt(d)),
            _ => None,
        };
        Ok(Formatter {
            parts,
            datefmt,
            second: Default::default(),
        })
    }

    /// True when the format shows the record's time in any form (`asctime`, `created`,
    /// `msecs`, `relativeCreated`): records for other formats skip reading the clock.
    pub fn uses_clock(&self) -> bool {
        self.parts.iter().any(|p| {
            matches!(
                p,
                Part::Field(
                    Field::Asctime | Field::Created | Field::Msecs | Field::RelativeCreated,
                    _
                )
            )
        })
    }

    /// True when the format is `%(message)s` alone: the line is the message as it is.
    pub fn is_message_only(&self) -> bool {
        matches!(
            self.parts.as_slice(),
            [Part::Field(Field::Message, spec)]
                if spec.width.is_none() && spec.precision.is_none() && spec.conv == 's'
        )
    }

    /// Render a record (without the line terminator).
    pub fn format(&self, r: &LogRecord<'_>) -> String {
        let mut out = String::with_capacity(128);
        self.format_into(r, &mut out);
        out
    }

    /// Render a record into `out` (without the line terminator).
    pub fn format_into(&self, r: &LogRecord<'_>, out: &mut String) {
        let mut asctime: Option<String> = None;
        for part in &self.parts {
            match part {
                Part::Lit(s) => out.push_str(s),
                Part::Field(field, spec) => {
                    let value = match field {
                        Field::Asctime => {
                            let s = asctime.get_or_insert_with(|| self.asctime(r));
                            Value::Str(s.as_str().into())
                        }
                        _ => value(*field, r),
                    };
                    render(out, &value, spec);
                }
            }
        }
    }

    fn asctime(&self, r: &LogRecord<'_>) -> String {
        let mut s = self.asctime_second(r);
        if self.datefmt.is_none() {
            let _ = write!(s, ",{:03}", msecs(r) as u64);
        }
        s
    }

    /// `asctime` without Python's default `,mmm`: a function of the whole second and the zone.
    fn asctime_second(&self, r: &LogRecord<'_>) -> String {
        let key = (r.created_secs, r.tz);
        if let Ok(last) = self.second.try_lock() {
            if let Some((secs, tz, text)) = &*last {
                if (*secs, *tz) == key {
                    return text.clone();
                }
            }
        }
        let text = self.render_second(r);
        if let Ok(mut last) = self.second.try_lock() {
            *last = Some((key.0, key.1, text.clone()));
        }
        text
    }

    fn render_second(&self, r: &LogRecord<'_>) -> String {
        // Python: time.localtime(created) — whole seconds.
        let dt: DateTime<FixedOffset> = match r.tz {
            Some(tz) => tz.timestamp_opt(r.created_secs, 0).single(),
            None => Local
                .timestamp_opt(r.created_secs, 0)
                .single()
                .map(|d| d.fixed_offset()),
        }
        .unwrap_or_else(|| {
            Utc.timestamp_opt(0, 0)
                .single()
                .unwrap_or_default()
                .fixed_offset()
        });
        match &self.datefmt {
            Some(items) => strftime(&dt, items),
            None => dt.format("%Y-%m-%d %H:%M:%S").to_string(),
        }
    }
}

enum Value<'a> {
    Str(std::borrow::Cow<'a, str>),
    Int(i128),
    Float(f64),
}

fn msecs(r: &LogRecord<'_>) -> f64 {
    f64::from(r.created_nanos / 1_000_000)
}

fn value<'a>(field: Field, r: &LogRecord<'a>) -> Value<'a> {
    const UNKNOWN_FILE: &str = "(unknown file)";
    match field {
        Field::Name => Value::Str(r.name.into()),
        Field::Levelno => Value::Int(r.levelno.into()),
        Field::Levelname => Value::Str(r.levelname.into()),
        Field::Pathname => Value::Str(r.pathname.unwrap_or(UNKNOWN_FILE).into()),
        Field::Filename => Value::Str(filename(r.pathname).into()),
        Field::Module => {
            let f = filename(r.pathname);
            let m = match f.rfind('.') {
                Some(i) if i > 0 && r.pathname.is_some() => &f[..i],
                _ => f,
            };
            Value::Str(m.into())
        }
        Field::Lineno => Value::Int(r.lineno.unwrap_or(0).into()),
        Field::FuncName => Value::Str(r.func_name.unwrap_or("(unknown function)").into()),
        Field::Created => {
            Value::Float(r.created_secs as f64 + f64::from(r.created_nanos) / 1_000_000_000.0)
        }
        Field::Msecs => Value::Float(msecs(r)),
        Field::RelativeCreated => Value::Float(r.relative_created),
        Field::Asctime => Value::Str("".into()),
        Field::Thread => Value::Int(r.thread.into()),
        Field::ThreadName => Value::Str(r.thread_name.into()),
        Field::Process => Value::Int(r.process.into()),
        Field::ProcessName => Value::Str("MainProcess".into()),
        Field::Message => Value::Str(r.message.into()),
    }
}

fn filename(path: Option<&str>) -> &str {
    match path {
        Some(p) => p.rsplit(['/', '\\']).next().unwrap_or(p),
        None => "(unknown file)",
    }
}

/// Parse a `%`-style format into literal text and fields.
fn parse(fmt: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = fmt.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        match chars.peek() {
            Some((_, '%')) => {
                chars.next();
                lit.push('%');
                continue;
            }
            Some((_, '(')) => {}
            _ => {
                return Err(format!(
                    "bad format at position {i}: '%' must be followed by '(name)' or '%' \
                     (Python raises 'format requires a mapping'); write '%%' for a literal '%'"
                ))
            }
        }
        chars.next();
        let mut name = String::new();
        loop {
            match chars.next() {
                Some((_, ')')) => break,
                Some((_, ch)) => name.push(ch),
                None => return Err(format!("bad format at position {i}: missing ')'")),
            }
        }
        let field = Field::from_name(&name)?;
        let mut spec = Spec::default();
        while let Some(&(_, ch)) = chars.peek() {
            match ch {
                '-' => spec.left = true,
                '0' => spec.zero = true,
                '+' => spec.plus = true,
                ' ' => spec.space = true,
                '#' => spec.alt = true,
                _ => break,
            }
            chars.next();
        }
        let number = |chars: &mut std::iter::Peekable<std::str::CharIndices<'_>>,
                      what: &str|
         -> Result<Option<usize>, String> {
            let mut digits = String::new();
            while let Some(&(_, ch)) = chars.peek() {
                if !ch.is_ascii_digit() {
                    break;
                }
                digits.push(ch);
                chars.next();
            }
            if digits.is_empty() {
                return Ok(None);
            }
            match digits.parse::<usize>() {
                Ok(n) if n <= MAX_WIDTH => Ok(Some(n)),
                _ => {
                    let shown = if digits.len() > 24 {
                        format!("{}… ({} digits)", &digits[..20], digits.len())
                    } else {
                        digits
                    };
                    Err(format!(
                        "%({name}): {what} {shown} is too large (at most {MAX_WIDTH})"
                    ))
                }
            }
        };
        if matches!(chars.peek(), Some((_, '*'))) {
            return Err(format!(
                "%({name})*: a '*' width needs positional arguments, which a log format has not"
            ));
        }
        spec.width = number(&mut chars, "width")?;
        if matches!(chars.peek(), Some((_, '.'))) {
            chars.next();
            if matches!(chars.peek(), Some((_, '*'))) {
                return Err(format!(
                    "%({name}).*: a '*' precision needs positional arguments, which a log format has not"
                ));
            }
            spec.precision = Some(number(&mut chars, "precision")?.unwrap_or(0));
        }
        // Python accepts length modifiers h, l, L and ignores them.
        while matches!(chars.peek(), Some((_, 'h' | 'l' | 'L'))) {
            chars.next();
        }
        let conv = match chars.next() {
            Some((_, ch)) => ch,
            None => return Err(format!("%({name}): incomplete format (no conversion type)")),
        };
        let ok = match conv {
            's' | 'r' | 'a' => true,
            'd' | 'i' | 'u' | 'f' | 'F' | 'e' | 'E' | 'g' | 'G' => field.kind() != Kind::Str,
            'x' | 'X' | 'o' => field.kind() == Kind::Int,
            _ => {
                return Err(format!(
                    "%({name}){conv}: unsupported format character {conv:?} \
                     (use one of s r a d i u f F e E g G x X o)"
                ))
            }
        };
        if !ok {
            let what = match field.kind() {
                Kind::Str => "a string",
                Kind::Float => "a float",
                Kind::Int => "an integer",
            };
            return Err(format!(
                "%({name}){conv}: {name} is {what}, which %{conv} cannot format (Python raises TypeError)"
            ));
        }
        spec.conv = conv;
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(&mut lit)));
        }
        parts.push(Part::Field(field, spec));
    }
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

/// Pad `body` (already signed) to the spec's width as Python's `%` does.
fn pad(out: &mut String, body: &str, spec: &Spec, numeric: bool) {
    let width = spec.width.unwrap_or(0);
    if width == 0 {
        out.push_str(body);
        return;
    }
    let len = body.chars().count();
    if len >= width {
        out.push_str(body);
        return;
    }
    let fill = width - len;
    if spec.left {
        out.push_str(body);
        out.extend(std::iter::repeat_n(' ', fill));
    } else if spec.zero && numeric {
        // Zeros go after the sign and any 0x/0o prefix.
        let mut split = 0;
        let b = body.as_bytes();
        if matches!(b.first(), Some(b'-' | b'+' | b' ')) {
            split = 1;
        }
        if b.len() >= split + 2 && b[split] == b'0' && matches!(b[split + 1], b'x' | b'X' | b'o') {
            split += 2;
        }
        // Python does not zero-pad inf/nan.
        let rest = &body[split..];
        if rest.starts_with("inf") || rest.starts_with("nan") || rest.starts_with("INF") {
            out.extend(std::iter::repeat_n(' ', fill));
            out.push_str(body);
            return;
        }
        out.push_str(&body[..split]);
        out.extend(std::iter::repeat_n('0', fill));
        out.push_str(rest);
    } else {
        out.extend(std::iter::repeat_n(' ', fill));
        out.push_str(body);
    }
}

fn render(out: &mut String, value: &Value<'_>, spec: &Spec) {
    match spec.conv {
        's' if spec.precision.is_none() && matches!(value, Value::Str(_)) => {
            // the common `%(message)s`: no copy
            if let Value::Str(s) = value {
                pad(out, s, spec, false);
            }
        }
        's' | 'r' | 'a' => {
            let s: String = match value {
                Value::Str(s) if spec.conv == 's' => s.to_string(),
                Value::Str(s) => crate::ini::py_repr(s, spec.conv == 'a'),
                Value::Int(i) => i.to_string(),
                Value::Float(f) => py_float_repr(*f),
            };
            let s = match spec.precision {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            };
            pad(out, &s, spec, false);
        }
        'd' | 'i' | 'u' => {
            let i = match value {
                Value::Int(i) => *i,
                Value::Float(f) => f.trunc() as i128,
                Value::Str(_) => 0,
            };
            let mut digits = i.unsigned_abs().to_string();
            if let Some(p) = spec.precision {
                while digits.len() < p {
                    digits.insert(0, '0');
                }
            }
            let body = format!("{}{digits}", sign(i < 0, spec));
            pad(out, &body, spec, true);
        }
        'x' | 'X' | 'o' => {
            let i = match value {
                Value::Int(i) => *i,
                _ => 0,
            };
            let mut digits = match spec.conv {
                'x' => format!("{:x}", i.unsigned_abs()),
                'X' => format!("{:X}", i.unsigned_abs()),
                _ => format!("{:o}", i.unsigned_abs()),
            };
            if let Some(p) = spec.precision {
                while digits.len() < p {
                    digits.insert(0, '0');
                }
            }
            let prefix = match (spec.alt, spec.conv) {
                (false, _) => "",
                (true, 'x') => "0x",
                (true, 'X') => "0X",
                (true, _) => "0o",
            };
            let body = format!("{}{prefix}{digits}", sign(i < 0, spec));
            pad(out, &body, spec, true);
        }
        _ => {
            let f = match value {
                Value::Int(i) => *i as f64,
                Value::Float(f) => *f,
                Value::Str(_) => 0.0,
            };
            let p = spec.precision.unwrap_or(6);
            let upper = spec.conv.is_ascii_uppercase();
            let mut body = if !f.is_finite() {
                if f.is_nan() {
                    "nan".to_string()
                } else {
                    "inf".to_string()
                }
            } else {
                match spec.conv.to_ascii_lowercase() {
                    'f' => format!("{:.*}", p, f.abs()),
                    'e' => py_exp(f.abs(), p),
                    _ => py_general(f.abs(), p, spec.alt),
                }
            };
            if spec.alt && !body.contains('.') && f.is_finite() {
                // '#' keeps the decimal point: '%#.0f' % 1 == '1.'
                match body.find('e') {
                    Some(i) => body.insert(i, '.'),
                    None => body.push('.'),
                }
            }
            if upper {
                body = body.to_ascii_uppercase();
            }
            let neg = f.is_sign_negative() && !f.is_nan();
            let body = format!("{}{body}", sign(neg, spec));
            pad(out, &body, spec, true);
        }
    }
}

fn sign(neg: bool, spec: &Spec) -> &'static str {
    if neg {
        "-"
    } else if spec.plus {
        "+"
    } else if spec.space {
        " "
    } else {
        ""
    }
}

/// `'%.{p}e' % v` for v >= 0: mantissa with p decimals, exponent signed with 2+ digits.
fn py_exp(v: f64, p: usize) -> String {
    let s = format!("{:.*e}", p, v);
    match s.split_once('e') {
        Some((m, e)) => {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            format!("{m}e{sign}{digits:0>2}")
        }
        None => s,
    }
}

/// `'%.{p}g' % v` for v >= 0.
fn py_general(v: f64, p: usize, alt: bool) -> String {
    let p = p.max(1);
    if v == 0.0 {
        return if alt {
            format!("{:.*}", p - 1, 0.0)
        } else {
            "0".to_string()
        };
    }
    // The exponent after rounding to p significant digits.
    let e = format!("{:.*e}", p - 1, v);
    let exp: i32 = e
        .split_once('e')
        .and_then(|(_, x)| x.parse().ok())
        .unwrap_or(0);
    let s = if exp >= -4 && (exp as i64) < p as i64 {
        format!("{:.*}", (p as i64 - 1 - exp as i64).max(0) as usize, v)
    } else {
        py_exp(v, p - 1)
    };
    if alt {
        return s;
    }
    // Remove trailing zeros (and a trailing point) from the mantissa.
    let (mant, expo) = match s.find('e') {
        Some(i) => (&s[..i], &s[i..]),
        None => (s.as_str(), ""),
    };
    let mant = if mant.contains('.') {
        mant.trim_end_matches('0').trim_end_matches('.')
    } else {
        mant
    };
    format!("{mant}{expo}")
}

/// Python's `repr(float)`.
fn py_float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".into();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf".into() } else { "-inf".into() };
    }
    let a = f.abs();
    if a != 0.0 && !(1e-4..1e16).contains(&a) {
        // Shortest round-trip digits in exponent form, Python style (1e+16, 1.5e-05).
        let s = format!("{f:e}");
        if let Some((m, e)) = s.split_once('e') {
            let (sign, digits) = match e.strip_prefix('-') {
                Some(d) => ('-', d),
                None => ('+', e),
            };
            return format!("{m}e{sign}{digits:0>2}");
        }
        return s;
    }
    let s = format!("{f}");
    if s.contains('.') {
        s
    } else {
        format!("{s}.0")
    }
}

/// One piece of a `datefmt`.
#[derive(Clone, Debug)]
enum DatePart {
    /// Text copied as is (including conversions the C library does not know, as glibc does).
    Lit(String),
    /// A conversion chrono renders like the C library (`%Y`, `%-d`, ...).
    Spec(String),
}

/// The conversions rendered like glibc's strftime in the C locale.
const STRFTIME_SPECS: &str = "aAbBcCdDeFgGhHIjklmMnpPrRsStTuUVwWxXyYzZ%";

fn parse_datefmt(fmt: &str) -> Vec<DatePart> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        let mut flag = None;
        if let Some(&f) = chars.peek() {
            if matches!(f, '-' | '_' | '0') {
                flag = Some(f);
                chars.next();
            }
        }
        match chars.peek() {
            Some(&ch) if STRFTIME_SPECS.contains(ch) && !(ch == '%' && flag.is_some()) => {
                chars.next();
                if !lit.is_empty() {
                    parts.push(DatePart::Lit(std::mem::take(&mut lit)));
                }
                let mut spec = String::from("%");
                if let Some(f) = flag {
                    spec.push(f);
                }
                spec.push(ch);
                parts.push(DatePart::Spec(spec));
            }
            _ => {
                // glibc copies an unknown conversion (`%f`, `%Q`) as it is.
                lit.push('%');
                if let Some(f) = flag {
                    lit.push(f);
                }
            }
        }
    }
    if !lit.is_empty() {
        parts.push(DatePart::Lit(lit));
    }
    parts
}

fn strftime(dt: &DateTime<FixedOffset>, items: &[DatePart]) -> String {
    let mut out = String::new();
    for item in items {
        match item {
            DatePart::Lit(s) => out.push_str(s),
            DatePart::Spec(s) if s == "%Z" => {
                // chrono has no zone abbreviations: UTC prints as Python does, others as +hh:mm.
                if dt.offset().local_minus_utc() == 0 {
                    out.push_str("UTC");
                } else {
                    let _ = write!(out, "{}", dt.format("%:z"));
                }
            }
            DatePart::Spec(s) => {
                let _ = write!(out, "{}", dt.format(s));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(f: &str) -> String {
        Formatter::new(Some(f), None)
            .expect("valid format")
            .format(&LogRecord::example())
    }

    #[test]
    fn python_padding_and_precision() {
        assert_eq!(fmt("%(levelname)-8s|"), "INFO    |");
        assert_eq!(fmt("%(levelname)8s|"), "    INFO|");
        assert_eq!(fmt("%(name)-5.5s|"), "mappr|");
        assert_eq!(fmt("%(msecs)03d"), "123");
        assert_eq!(fmt("%(process)05d"), "04242");
        assert_eq!(fmt("%(created)f"), "1700000000.123456");
        assert_eq!(fmt("%(asctime)s"), "2023-11-14 22:13:20,123");
        // one formatter, records of other seconds, milliseconds and zones
        for datefmt in [None, Some("%H:%M:%S %z")] {
            let f = Formatter::new(Some("%(asctime)s"), datefmt).expect("valid format");
            let mut r = LogRecord::example();
            let mut seen = Vec::new();
            for (secs, nanos, east) in
                [(0, 123, 0), (0, 999, 0), (1, 5, 0), (1, 5, 3600), (0, 1, 0)]
            {
                r.created_secs = 1_700_000_000 + secs;
                r.created_nanos = nanos * 1_000_000;
                r.tz = FixedOffset::east_opt(east);
                seen.push(f.format(&r));
            }
            let want: &[&str] = match datefmt {
                None => &[
                    "2023-11-14 22:13:20,123",
                    "2023-11-14 22:13:20,999",
                    "2023-11-14 22:13:21,005",
                    "2023-11-14 23:13:21,005",
                    "2023-11-14 22:13:20,001",
                ],
                Some(_) => &[
                    "22:13:20 +0000",
                    "22:13:20 +0000",
                    "22:13:21 +0000",
                    "23:13:21 +0100",
                    "22:13:20 +0000",
                ],
            };
            assert_eq!(seen, want);
        }
        assert_eq!(fmt("%(msecs)s"), "123.0");
        assert_eq!(fmt("%(levelno)+d %(levelno)x %(levelno)#o"), "+20 14 0o24");
        assert_eq!(fmt("%(created).3e"), "1.700e+09");
        assert_eq!(fmt("%(relativeCreated)g"), "1234.57");
        assert_eq!(fmt("100%% %(levelname)r"), "100% 'INFO'");
    }

    #[test]
    fn errors_at_read_time() {
        assert!(Formatter::new(Some("%(nope)s"), None).is_err());
        assert!(Formatter::new(Some("%(exc_info)s"), None).is_err());
        assert!(Formatter::new(Some("%(name)d"), None).is_err());
        assert!(Formatter::new(Some("%(created)x"), None).is_err());
        assert!(Formatter::new(Some("%s"), None).is_err());
        assert!(Formatter::new(Some("no fields"), None).is_err());
        assert!(Formatter::new(Some(""), None).is_ok());
    }

    #[test]
    fn widths_and_precisions_are_bounded_when_read() {
        for (format, shown) in [
            (
                "%(message)99999999999999999999s",
                "width 99999999999999999999",
            ),
            ("%(levelname)-999999999s", "width 999999999"),
            ("%(message)10001s", "width 10001"),
            ("%(message).10001s", "precision 10001"),
            ("%(created)1.99999f", "precision 99999"),
            (
                "%(message)-1234567890123456789012345s",
                "width 12345678901234567890… (25 digits)",
            ),
            ("%(message)0000000000000000000000000010001s", "width 10001"),
        ] {
            let e = Formatter::new(Some(format), None).expect_err(format);
            assert!(
                e.ends_with(&format!("{shown} is too large (at most {MAX_WIDTH})")),
                "{format}: {e}"
            );
        }
        // The bound itself is fine, and so are leading zeros (a flag, then a width).
        assert_eq!(fmt("%(levelno)010000d").len(), MAX_WIDTH);
        assert_eq!(fmt("%(levelname)-10000.10000s").len(), MAX_WIDTH);
        assert_eq!(fmt("%(levelno)000000000000000000000000000003d"), "020");
    }

    #[test]
    fn datefmt_like_glibc() {
        let f = Formatter::new(Some("%(asctime)s"), Some("%d/%b/%Y:%H:%M:%S %z %f")).unwrap();
        assert_eq!(
            f.format(&LogRecord::example()),
            "14/Nov/2023:22:13:20 +0000 %f"
        );
    }
}
