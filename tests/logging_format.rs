//! Golden table: each format in tests/logging/formats.json renders, for the same record, the
//! text Python's `logging.Formatter` produced (tests/logging/gen_formats.py, CPython 3.11).

use mapproxy_serve::logging::format::{Formatter, LogRecord};

fn record(which: &str) -> LogRecord<'static> {
    // The fixed record of the library (UTC); the variants change a few fields of it.
    let base = LogRecord::example();
    match which {
        "info" => base,
        "warning" => LogRecord {
            name: "mapproxy.config",
            levelno: 30,
            levelname: "WARNING",
            pathname: Some("/srv/app/src/config/loader.rs"),
            lineno: Some(7),
            func_name: None,
            thread: 2,
            thread_name: "tokio-runtime-worker",
            process: 1,
            message: "h\u{e9}llo w\u{f6}rld \u{2713} 'quoted'",
            ..base
        },
        other => panic!("unknown record {other}"),
    }
}

#[test]
fn formats_render_like_python() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/logging/formats.json"
    ))
    .expect("fixture");
    let json: serde_json::Value = serde_json::from_str(&text).expect("json");
    let cases = json["cases"].as_array().expect("cases");
    assert!(cases.len() > 150);
    let mut failures = Vec::new();
    for case in cases {
        let fmt = case["format"].as_str().expect("format");
        let datefmt = case["datefmt"].as_str();
        let expected = case["expected"].as_str().expect("expected");
        let rec = record(case["record"].as_str().expect("record"));
        match Formatter::new(Some(fmt), datefmt) {
            Ok(f) => {
                let got = f.format(&rec);
                if got != expected {
                    failures.push(format!(
                        "{fmt:?} datefmt={datefmt:?}\n   python: {expected:?}\n   ours:   {got:?}"
                    ));
                }
            }
            Err(e) => failures.push(format!("{fmt:?}: rejected: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn fields_without_meaning_are_errors() {
    for bad in [
        "%(exc_info)s",
        "%(stack_info)s",
        "%(taskName)s",
        "%(msg)s",
        "%(args)s",
        "%(levelnam)s",
        "%(name)d",
        "%(created)x",
        "%(levelname)",
        "%(message)s %",
        "plain text",
    ] {
        assert!(Formatter::new(Some(bad), None).is_err(), "{bad} accepted");
    }
}
