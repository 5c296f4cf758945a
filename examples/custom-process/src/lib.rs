//! A WPS process of your own: `word_count` counts the words of a text (a complex input,
//! inline or by reference) that are at least `min_length` characters long (a literal with a
//! default), reporting progress as it goes.
//!
//! Three steps: describe it with `const` descriptors, implement `Process`, register it with
//! `register_process!`. A binary that links this crate (`src/main.rs`) serves it with every
//! other registered process under `egg:PyWPS#app`.

use mapproxy_serve_wps::process::{
    DataType, ExecuteRequest, ExecuteResponse, Format, InputDesc, InputKind, LiteralValue,
    OutputDesc, Process, ProcessDesc, ProcessError,
};

/// The process (a unit struct: registered as a `static`).
pub struct WordCount;

const DESC: ProcessDesc = ProcessDesc {
    identifier: "word_count",
    title: "Word count",
    abstract_: "Counts the words of a text that are at least min_length characters long",
    version: "1.0",
    inputs: &[
        InputDesc::complex("text", "The text", &[Format::TEXT]),
        InputDesc {
            kind: InputKind::Literal {
                data_type: DataType::Integer,
                allowed: &[],
                default: Some("1"),
                uoms: &[],
            },
            min_occurs: 0,
            ..InputDesc::literal("min_length", "Shortest word counted", DataType::Integer)
        },
    ],
    outputs: &[OutputDesc::literal(
        "count",
        "Number of words",
        DataType::Integer,
    )],
    store_supported: true,
    status_supported: true,
    ..ProcessDesc::DEFAULT
};

impl Process for WordCount {
    fn describe(&self) -> &'static ProcessDesc {
        &DESC
    }

    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        let text = std::str::from_utf8(req.complex("text")?)
            .map_err(|_| ProcessError::new("the text is not UTF-8"))?;
        let min = match req.literal("min_length")? {
            LiteralValue::Integer(n) => usize::try_from(*n).unwrap_or(0),
            other => return Err(ProcessError::new(format!("not an integer: {other}"))),
        };
        res.update_status("counting", 50);
        let n = text
            .split_whitespace()
            .filter(|w| w.chars().count() >= min)
            .count();
        res.set_literal("count", LiteralValue::Integer(n as i64));
        Ok(())
    }
}

mapproxy_serve_wps::register_process!(WordCount);

#[cfg(test)]
mod tests {
    use super::*;
    use mapproxy_serve_wps::process::{InputValue, OutputValue};

    #[test]
    fn counts_long_words() {
        let req = ExecuteRequest {
            inputs: vec![
                (
                    "text",
                    vec![InputValue::Complex {
                        data: "a bb ccc dddd".into(),
                        format: Format::TEXT,
                        mime_type: "text/plain".into(),
                        encoding: String::new(),
                        schema: String::new(),
                        href: None,
                    }],
                ),
                (
                    "min_length",
                    vec![InputValue::Literal {
                        value: LiteralValue::Integer(3),
                        text: "3".into(),
                        uom: None,
                    }],
                ),
            ],
            ..ExecuteRequest::default()
        };
        let mut res = ExecuteResponse::new();
        WordCount.execute(&req, &mut res).unwrap();
        assert!(matches!(
            res.get("count"),
            Some(OutputValue::Literal {
                value: LiteralValue::Integer(2),
                ..
            })
        ));
        assert_eq!(res.percent(), 50);
    }
}
