//! [`LogFormat`]: Paste's `%(NAME)s` format parsed into its fields, and the plan for writing
//! a line (the runs rendered when the request starts, the fields filled in at its end).

use http::HeaderName;

/// Paste's `translogger` default: Apache's combined format.
pub const COMBINED: &str = "%(REMOTE_ADDR)s - %(REMOTE_USER)s [%(time)s] \
\"%(REQUEST_METHOD)s %(REQUEST_URI)s %(HTTP_VERSION)s\" %(status)s %(bytes)s \
\"%(HTTP_REFERER)s\" \"%(HTTP_USER_AGENT)s\"";

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Field {
    RemoteAddr,
    RemoteUser,
    Time,
    Method,
    RequestUri,
    ScriptName,
    PathInfo,
    QueryString,
    HttpVersion,
    Status,
    Bytes,
    Header(HeaderName),
    DurationSecs,
    DurationMs,
    DurationUs,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Segment {
    Lit(String),
    Field(Field),
}

/// A parsed log format; see the [module docs](super) for the fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogFormat {
    /// The segments grouped for writing: runs known when the request starts, rendered then
    /// (the request's own text is copied out at once, so no entry keeps a reference into the
    /// server's read buffer), and the fields known at the end.
    pub(super) parts: Vec<Part>,
    /// How many [`Part::Early`] runs there are.
    pub(super) early_runs: usize,
    /// A duration field: requests read the monotonic clock when they start.
    pub(super) needs_duration: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Part {
    /// Text of the format alone.
    Lit(String),
    /// Literals and request fields, rendered when the request starts.
    Early(Vec<Segment>),
    /// A field known when the response is sent (status, bytes, client, user, duration).
    Late(Field),
}

impl Field {
    /// Known only at the end: from the response (an inner layer may set the user or the
    /// client address) or from the finished body.
    fn is_late(&self) -> bool {
        matches!(
            self,
            Field::RemoteAddr
                | Field::RemoteUser
                | Field::Status
                | Field::Bytes
                | Field::DurationSecs
                | Field::DurationMs
                | Field::DurationUs
        )
    }
}

impl Default for LogFormat {
    fn default() -> Self {
        // the constant is known to parse
        LogFormat::parse(COMBINED).unwrap_or_else(|_| LogFormat::from_segments(Vec::new()))
    }
}

impl LogFormat {
    /// Parse Python `%`-formatting with named fields (`%(status)s`, `%(bytes)d`, `%%`).
    pub fn parse(s: &str) -> Result<LogFormat, String> {
        use mapproxy_serve_core::pyformat::{self, FormatError, Piece};
        let pieces = pyformat::parse(s).map_err(|e| match e {
            FormatError::NoName { rest } => format!(
                "'%' must start a field like %(status)s or be doubled as %%, at '%{}'",
                rest.chars().take(10).collect::<String>()
            ),
            FormatError::Unclosed { rest } => format!("unclosed field '%({rest}'"),
            FormatError::Width { name } | FormatError::NoConversion { name } => {
                format!("field %({name}) must end in 's' (like %({name})s)")
            }
        })?;
        let mut segments = Vec::with_capacity(pieces.len());
        for piece in pieces {
            segments.push(match piece {
                Piece::Lit(l) => Segment::Lit(l),
                Piece::Field(f) => {
                    let name = f.name;
                    if f.flags || f.width > 0 || !matches!(f.conv, 's' | 'd' | 'i') {
                        return Err(format!("field %({name}) must end in 's' (like %({name})s)"));
                    }
                    Segment::Field(Self::field(name)?)
                }
            });
        }
        Ok(LogFormat::from_segments(segments))
    }

    fn from_segments(segments: Vec<Segment>) -> LogFormat {
        let needs_duration = segments.iter().any(|s| {
            matches!(
                s,
                Segment::Field(Field::DurationSecs | Field::DurationMs | Field::DurationUs)
            )
        });
        let mut parts = Vec::new();
        let mut run: Vec<Segment> = Vec::new();
        let end_run = |run: &mut Vec<Segment>, parts: &mut Vec<Part>| {
            if run.iter().any(|s| matches!(s, Segment::Field(_))) {
                parts.push(Part::Early(std::mem::take(run)));
            } else if !run.is_empty() {
                let text = run
                    .drain(..)
                    .map(|s| match s {
                        Segment::Lit(l) => l,
                        Segment::Field(_) => String::new(),
                    })
                    .collect();
                parts.push(Part::Lit(text));
            }
        };
        for seg in segments {
            match seg {
                Segment::Field(f) if f.is_late() => {
                    end_run(&mut run, &mut parts);
                    parts.push(Part::Late(f));
                }
                other => run.push(other),
            }
        }
        end_run(&mut run, &mut parts);
        let early_runs = parts.iter().filter(|p| matches!(p, Part::Early(_))).count();
        LogFormat {
            parts,
            early_runs,
            needs_duration,
        }
    }

    fn field(name: &str) -> Result<Field, String> {
        Ok(match name {
            "REMOTE_ADDR" => Field::RemoteAddr,
            "REMOTE_USER" => Field::RemoteUser,
            "time" => Field::Time,
            "REQUEST_METHOD" => Field::Method,
            "REQUEST_URI" => Field::RequestUri,
            "SCRIPT_NAME" => Field::ScriptName,
            "PATH_INFO" => Field::PathInfo,
            "QUERY_STRING" => Field::QueryString,
            "HTTP_VERSION" => Field::HttpVersion,
            "status" => Field::Status,
            "bytes" => Field::Bytes,
            "duration" | "wsgi.duration" => Field::DurationSecs,
            "duration_ms" => Field::DurationMs,
            "duration_us" => Field::DurationUs,
            h if h.starts_with("HTTP_") && h.len() > 5 => {
                let name = h[5..].to_ascii_lowercase().replace('_', "-");
                Field::Header(
                    HeaderName::from_bytes(name.as_bytes())
                        .map_err(|_| format!("unknown field %({h})s"))?,
                )
            }
            other => {
                return Err(format!(
                    "unknown field %({other})s (known: REMOTE_ADDR, REMOTE_USER, time, \
                     REQUEST_METHOD, REQUEST_URI, HTTP_VERSION, status, bytes, HTTP_<HEADER>, \
                     SCRIPT_NAME, PATH_INFO, QUERY_STRING, duration, duration_ms, duration_us)"
                ))
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_parsing() {
        let f = LogFormat::parse("%(status)s %%(x) %(bytes)d %(HTTP_X_REQUEST_ID)s").unwrap();
        assert_eq!(f.parts.len(), 4);
        // the status and bytes are late; the header and the text between are one early run
        assert_eq!(f.early_runs, 1);
        assert!(
            matches!(&f.parts[..], [Part::Late(Field::Status), Part::Lit(l), Part::Late(Field::Bytes), Part::Early(_)] if l == " %(x) ")
        );
        let combined = LogFormat::default();
        assert_eq!(combined.early_runs, 2);
        assert_eq!(combined.parts.len(), 8);
        assert!(LogFormat::parse("%(nope)s")
            .unwrap_err()
            .contains("unknown field %(nope)s"));
        assert!(LogFormat::parse("%(status)").is_err());
        assert!(LogFormat::parse("%(status").is_err());
        assert!(LogFormat::parse("100%").is_err());
        assert!(LogFormat::parse("%s").is_err());
        assert!(!LogFormat::default().parts.is_empty());
        // early and late fields interleaved: five runs rendered when the request starts
        let many = LogFormat::parse(
            "%(SCRIPT_NAME)s|%(PATH_INFO)s|%(QUERY_STRING)s %(status)s %(HTTP_X_A)s \
             %(REMOTE_USER)s %(HTTP_X_B)s %(bytes)s [%(HTTP_X_C)s] %(REMOTE_ADDR)s \
             %(REQUEST_METHOD)s %(HTTP_VERSION)s %(duration_us)s end",
        )
        .unwrap();
        assert_eq!(many.early_runs, 5);
    }
}
