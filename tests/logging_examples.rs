//! The shipped examples' logging: `ini/production.ini`'s logging sections, served
//! by the real binary; the files written are compared line by line with the expected format
//! (time fields matched by pattern).

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use support::{basic, get, Served};

/// `dd/Mon/yyyy:HH:MM:SS +zzzz`, Apache's time field.
fn is_apache_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 26
        && b[2] == b'/'
        && b[6] == b'/'
        && b[11] == b':'
        && b[20] == b' '
        && (b[21] == b'+' || b[21] == b'-')
        && t[..2].chars().all(|c| c.is_ascii_digit())
        && t[3..6].chars().all(|c| c.is_ascii_alphabetic())
        && t[7..11].chars().all(|c| c.is_ascii_digit())
        && t[22..].chars().all(|c| c.is_ascii_digit())
}

/// `yyyy-mm-dd HH:MM:SS,mmm`, Python's default asctime.
fn is_asctime(t: &str) -> bool {
    let shape = "dddd-dd-dd dd:dd:dd,ddd";
    t.len() == shape.len()
        && t.chars()
            .zip(shape.chars())
            .all(|(c, s)| if s == 'd' { c.is_ascii_digit() } else { c == s })
}

fn wait_for_lines(path: &Path, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<String> = text.lines().map(str::to_string).collect();
        if lines.len() >= n {
            return lines;
        }
        assert!(
            Instant::now() < deadline,
            "{}: {} lines, expected {n}:\n{text}",
            path.display(),
            lines.len()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn production_ini_logging_sections_write_the_expected_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let logdir = tmp.path().join("log");
    std::fs::create_dir(&logdir).expect("log dir");
    let production = Path::new(env!("CARGO_MANIFEST_DIR")).join("ini/production.ini");
    let log_var = format!("logdir={}", logdir.display());
    let served = Served::start(&production, &[&log_var]);

    let auth = basic("demo:demo-password");
    assert_eq!(
        get(
            served.addr(),
            "/echo/a?b=1",
            &[("authorization", &auth), ("user-agent", "t/1")]
        )
        .await
        .status,
        200
    );
    assert_eq!(get(served.addr(), "/echo/", &[]).await.status, 401);
    assert_eq!(
        get(served.addr(), "/static/nope", &[("authorization", &auth)])
            .await
            .status,
        404
    );

    // access.log: `%(message)s` of the combined lines, in request order.
    let lines = wait_for_lines(&logdir.join("access.log"), 3);
    let expected = [
        (
            "127.0.0.1 - demo [",
            "] \"GET /echo/a?b=1 HTTP/1.1\" 200 ",
            " \"-\" \"t/1\"",
        ),
        (
            "127.0.0.1 - - [",
            "] \"GET /echo/ HTTP/1.1\" 401 ",
            " \"-\" \"-\"",
        ),
        (
            "127.0.0.1 - demo [",
            "] \"GET /static/nope HTTP/1.1\" 404 ",
            " \"-\" \"-\"",
        ),
    ];
    assert_eq!(lines.len(), expected.len(), "{lines:#?}");
    for (line, (head, mid, tail)) in lines.iter().zip(expected) {
        let rest = line.strip_prefix(head).unwrap_or_else(|| panic!("{line}"));
        let (time, rest) = rest.split_at(26);
        assert!(is_apache_time(time), "time field {time:?} in {line}");
        let rest = rest.strip_prefix(mid).unwrap_or_else(|| panic!("{line}"));
        let (bytes, end) = rest.split_once(' ').unwrap_or_else(|| panic!("{line}"));
        assert!(bytes.chars().all(|c| c.is_ascii_digit()), "{line}");
        assert_eq!(format!(" {end}"), tail, "{line}");
    }
    // The console (root at WARNING) has no access lines: the wsgi logger does not propagate.
    assert!(
        !served.stderr().contains("GET /echo/a"),
        "{}",
        served.stderr()
    );

    // mapproxy-serve.log: the server's own INFO lines, `%(asctime)s %(levelname)-7s [%(name)s] %(message)s`.
    drop(served); // SIGTERM: logs "SIGTERM: stopping", flushes the files
    let lines = wait_for_lines(&logdir.join("mapproxy-serve.log"), 1);
    for line in &lines {
        let (time, rest) = line.split_at(23);
        assert!(is_asctime(time), "{line}");
        assert!(rest.starts_with(" INFO    [mapproxy_serve."), "{line}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(" INFO    [mapproxy_serve.serve] SIGTERM: stopping")),
        "{lines:#?}"
    );
}
