//! Golden tests (Caddy style): every `tests/golden/*.ini` goes through the real binary's
//! `inspect --json`; the output must equal `NAME.json` (success) or `NAME.err` (exit 2, the
//! error text), and warnings must equal `NAME.warn`. The golden directory's absolute path is
//! written `$DIR`. Regenerate with `UPDATE_GOLDEN=1 cargo test --test golden` and review the diff.

use std::path::{Path, PathBuf};
use std::process::Command;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn normalize(text: &str, dir: &Path) -> String {
    // Files read are listed by their canonical paths: the checkout may be under a symlink.
    let text = match dir.canonicalize() {
        Ok(real) if real != dir => text.replace(&real.display().to_string(), "$DIR"),
        _ => text.to_string(),
    };
    text.replace(&dir.display().to_string(), "$DIR")
}

fn compare(path: &Path, actual: &str, update: bool, failures: &mut Vec<String>) {
    if update {
        if actual.is_empty() {
            let _ = std::fs::remove_file(path);
        } else {
            std::fs::write(path, actual).expect("write golden file");
        }
        return;
    }
    let expected = std::fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        failures.push(format!(
            "{}:\n--- expected\n{expected}\n--- actual\n{actual}",
            path.display()
        ));
    }
}

#[test]
fn golden_inspect() {
    let dir = golden_dir();
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut inis: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/golden")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "ini"))
        .collect();
    inis.sort();
    assert!(
        inis.len() >= 20,
        "expected at least 20 golden files, found {}",
        inis.len()
    );
    let mut failures = Vec::new();
    for ini in &inis {
        let name = ini.file_name().unwrap().to_string_lossy().into_owned();
        let out = Command::new(env!("CARGO_BIN_EXE_mapproxy-serve"))
            .args(["inspect", "--json", &name])
            .current_dir(&dir)
            .output()
            .expect("run mapproxy-serve");
        let stdout = normalize(&String::from_utf8_lossy(&out.stdout), &dir);
        let stderr = normalize(&String::from_utf8_lossy(&out.stderr), &dir);
        let stem = ini.with_extension("");
        match out.status.code() {
            Some(0) => {
                if update {
                    let _ = std::fs::remove_file(stem.with_extension("err"));
                }
                compare(&stem.with_extension("json"), &stdout, update, &mut failures);
                compare(&stem.with_extension("warn"), &stderr, update, &mut failures);
            }
            Some(2) => {
                if update {
                    let _ = std::fs::remove_file(stem.with_extension("json"));
                    let _ = std::fs::remove_file(stem.with_extension("warn"));
                }
                assert!(stdout.is_empty(), "{name}: stdout on error: {stdout}");
                compare(&stem.with_extension("err"), &stderr, update, &mut failures);
                // Every configuration error names the file and a line.
                for line in stderr.lines() {
                    assert!(
                        line.starts_with(&format!("{name}:")),
                        "{name}: error without file:line: {line}"
                    );
                }
            }
            other => failures.push(format!("{name}: exit status {other:?}\n{stderr}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden mismatches:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
