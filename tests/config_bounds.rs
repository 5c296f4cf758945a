//! Hostile configurations end in a configuration error that names file:line (`check` exits
//! with 2), never in a stack overflow, a hang or gigabytes of memory: cycles whichever way they
//! are named, sections nested deeper than the bound, interpolation bombs, absurd format widths,
//! handler `args` nested thousands deep, files that are not regular files or are too large, and
//! files that are not ini files at all. Large legitimate files (80,000 keys, 100,000 mounts)
//! are read once, to show they work; the lookups behind them are hash lookups (unit tests in
//! `src/ini/tests.rs`).

mod support;

use std::path::Path;
use std::time::Duration;

use indexmap::IndexMap;
use mapproxy_serve::deploy::{Deployment, MAX_NESTING};
use support::{run, write, Exited};

/// `mapproxy-serve check NAME` in `dir`.
fn check(dir: &Path, name: &str) -> Exited {
    run(&["check", name], Some(dir))
}

/// `check` failed with exit status 2, and its first error line starts with `start` and
/// contains `what`. Returns stderr.
fn config_error(dir: &Path, name: &str, start: &str, what: &str) -> String {
    let e = check(dir, name);
    assert_eq!(e.code(), Some(2), "{name}: {e:?}");
    let first = e.stderr.lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with(start) && first.contains(what),
        "{name}: expected an error starting {start:?} with {what:?}, got:\n{}",
        e.stderr
    );
    assert!(!e.stderr.contains("panicked"), "{name}: {}", e.stderr);
    e.stderr
}

// ---- nesting: every way a section names another, at the bound and one past it -------------

/// A way one section names the next. `section(i, next)` is section `i` of a chain whose
/// section `i + 1` is `next`; `last(i)` ends the chain with an app.
struct Nesting {
    kind: &'static str,
    section: fn(usize) -> String,
    last: fn(usize) -> String,
}

fn name(i: usize) -> String {
    if i == 0 {
        "main".into()
    } else {
        format!("s{i}")
    }
}

const NESTINGS: &[Nesting] = &[
    Nesting {
        kind: "use",
        section: |i| format!("[app:{}]\nuse = {}\n", name(i), name(i + 1)),
        last: |i| format!("[app:{}]\nuse = egg:mapproxy-serve#echo\n", name(i)),
    },
    Nesting {
        kind: "urlmap",
        section: |i| {
            format!(
                "[composite:{}]\nuse = egg:Paste#urlmap\n/ = {}\n",
                name(i),
                name(i + 1)
            )
        },
        last: |i| format!("[app:{}]\nuse = egg:mapproxy-serve#echo\n", name(i)),
    },
    Nesting {
        kind: "cascade",
        section: |i| {
            format!(
                "[app:{}]\nuse = egg:Paste#cascade\napp1 = {}\n",
                name(i),
                name(i + 1)
            )
        },
        last: |i| format!("[app:{}]\nuse = egg:mapproxy-serve#echo\n", name(i)),
    },
    Nesting {
        kind: "pipeline",
        section: |i| format!("[pipeline:{}]\npipeline = {}\n", name(i), name(i + 1)),
        last: |i| format!("[app:{}]\nuse = egg:mapproxy-serve#echo\n", name(i)),
    },
    Nesting {
        kind: "filter-app",
        section: |i| {
            format!(
                "[filter-app:{}]\nuse = egg:Paste#gzip\nnext = {}\n",
                name(i),
                name(i + 1)
            )
        },
        last: |i| format!("[app:{}]\nuse = egg:mapproxy-serve#echo\n", name(i)),
    },
    Nesting {
        kind: "filter-with",
        section: |i| {
            if i == 0 {
                "[app:main]\nuse = egg:mapproxy-serve#echo\nfilter-with = s1\n".into()
            } else {
                format!(
                    "[filter:{}]\nuse = egg:Paste#gzip\nfilter-with = {}\n",
                    name(i),
                    name(i + 1)
                )
            }
        },
        last: |i| format!("[filter:{}]\nuse = egg:Paste#gzip\n", name(i)),
    },
];

/// A chain of `depth` sections of one kind in one file.
fn chain(n: &Nesting, depth: usize) -> String {
    let mut text = String::new();
    for i in 0..depth - 1 {
        text.push_str(&(n.section)(i));
        text.push('\n');
    }
    text.push_str(&(n.last)(depth - 1));
    text
}

/// `depth` files, each including the next (`[app:main] use = config:f1.ini`).
fn include_chain(dir: &Path, depth: usize) {
    for i in 0..depth - 1 {
        write(
            dir,
            &format!("f{i}.ini"),
            &format!("[app:main]\nuse = config:f{}.ini\n", i + 1),
        );
    }
    write(
        dir,
        &format!("f{}.ini", depth - 1),
        "[app:main]\nuse = egg:mapproxy-serve#echo\n",
    );
}

/// Resolve and build `ini`'s main app, and print its tree, on a thread with the stack a
/// reload gets (a tokio blocking thread's 2 MiB), as the resolution and the build recurse once
/// per level.
fn resolve_on_a_small_stack(ini: &Path) -> Result<(), String> {
    let ini = ini.to_str().expect("utf-8 path").to_string();
    std::thread::Builder::new()
        .stack_size(2 * 1024 * 1024)
        .spawn(move || {
            let d = Deployment::resolve(&ini, None, None, &IndexMap::new())
                .map_err(|e| e.to_string())?;
            d.app
                .build_app(&mut mapproxy_serve::build::BuildContext::current())
                .map_err(|e| e.to_string())?;
            let _ = (d.app.to_text(), d.app.to_json().to_string());
            Ok(())
        })
        .expect("spawn")
        .join()
        .map_err(|_| "panicked".to_string())?
}

#[test]
fn sections_nest_up_to_the_bound_on_a_small_stack() {
    let dir = tempfile::tempdir().unwrap();
    for n in NESTINGS {
        let ini = write(
            dir.path(),
            &format!("{}.ini", n.kind),
            &chain(n, MAX_NESTING),
        );
        if let Err(e) = resolve_on_a_small_stack(&ini) {
            panic!("{} nested {MAX_NESTING} deep: {e}", n.kind);
        }
    }
    let inc = dir.path().join("includes");
    include_chain(&inc, MAX_NESTING);
    resolve_on_a_small_stack(&inc.join("f0.ini")).expect("includes nested to the bound");
}

#[test]
fn nesting_past_the_bound_is_an_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    for n in NESTINGS {
        let file = format!("{}.ini", n.kind);
        write(dir.path(), &file, &chain(n, MAX_NESTING + 1));
        // The reference that would open the 101st level, in section s99.
        let err = config_error(
            dir.path(),
            &file,
            &format!("{file}:"),
            &format!("sections nested more than {MAX_NESTING} deep: "),
        );
        let line = err.lines().next().unwrap_or_default();
        assert!(
            line.contains(":s99] sections nested more than 100 deep: [")
                && line.contains(" → (94 more) → ")
                && line.ends_with(":s100]"),
            "{}: {line}",
            n.kind
        );
    }
    let inc = dir.path().join("includes");
    include_chain(&inc, MAX_NESTING + 1);
    config_error(
        &inc,
        "f0.ini",
        "f99.ini:2: [app:main] ",
        "sections nested more than 100 deep",
    );
}

#[test]
fn a_600_deep_use_chain_is_an_error_not_a_stack_overflow() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "deep.ini", &chain(&NESTINGS[0], 600));
    config_error(
        dir.path(),
        "deep.ini",
        "deep.ini:299: [app:s99] ",
        "sections nested more than 100 deep: [app:main] (deep.ini:1) → [app:s1] (deep.ini:4)",
    );
}

#[test]
fn a_composite_fanning_out_to_composites_is_bounded() {
    // Four mounts per level, nine levels: 262,144 apps, each with a copy of a 2,000-key
    // [DEFAULT]. The load stops with one error instead of exhausting memory.
    let mut text = String::from("[DEFAULT]\n");
    for i in 0..2000 {
        text.push_str(&format!("d{i} = {i}\n"));
    }
    for level in 0..9 {
        text.push_str(&format!(
            "\n[composite:{}]\nuse = egg:Paste#urlmap\n",
            name(level)
        ));
        for m in ["a", "b", "c", "d"] {
            text.push_str(&format!("/{m} = {}\n", name(level + 1)));
        }
    }
    text.push_str(&format!(
        "\n[app:{}]\nuse = egg:mapproxy-serve#echo\n",
        name(9)
    ));
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "fan.ini", &text);
    let err = config_error(
        dir.path(),
        "fan.ini",
        "fan.ini:",
        "the configuration is too large to resolve: more than 4000000 settings",
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

// ---- cycles: every way a section can name itself ---------------------------------------

#[test]
fn cycles_through_any_reference_print_the_cycle() {
    // (ini text, where the error is, the cycle's start, the section that closes it)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "[composite:main]\nuse = egg:Paste#urlmap\n/ = main\n",
            "x.ini:3: [composite:main] ",
            "[composite:main] (x.ini:1)",
            "[composite:main]",
        ),
        (
            "[app:main]\nuse = egg:Paste#cascade\napp1 = other\napp2 = main\n\n\
             [app:other]\nuse = egg:mapproxy-serve#echo\n",
            "x.ini:4: [app:main] ",
            "[app:main] (x.ini:1)",
            "[app:main]",
        ),
        (
            "[composite:main]\nuse = egg:Paste#urlmap\n/a = x\nnot_found_app = main\n\n\
             [app:x]\nuse = egg:mapproxy-serve#echo\n",
            "x.ini:4: [composite:main] ",
            "[composite:main] (x.ini:1)",
            "[composite:main]",
        ),
        (
            // through `use` into a composite whose app is the user
            "[app:main]\nuse = c\n\n[composite:c]\nuse = egg:Paste#urlmap\n/ = main\n",
            "x.ini:6: [composite:c] ",
            "[app:main] (x.ini:1) → [composite:c] (x.ini:4)",
            "[app:main]",
        ),
        (
            "[app:main]\nuse = egg:mapproxy-serve#echo\nfilter-with = f1\n\n\
             [filter:f1]\nuse = egg:Paste#gzip\nfilter-with = f2\n\n\
             [filter:f2]\nuse = egg:Paste#gzip\nfilter-with = f1\n",
            "x.ini:11: [filter:f2] ",
            "[filter:f1] (x.ini:5) → [filter:f2] (x.ini:9)",
            "[filter:f1]",
        ),
        (
            "[pipeline:main]\npipeline = p2\n\n[pipeline:p2]\npipeline = main\n",
            "x.ini:5: [pipeline:p2] ",
            "[pipeline:main] (x.ini:1) → [pipeline:p2] (x.ini:4)",
            "[pipeline:main]",
        ),
        (
            "[filter-app:main]\nuse = egg:Paste#gzip\nnext = main\n",
            "x.ini:3: [filter-app:main] ",
            "[filter-app:main] (x.ini:1)",
            "[filter-app:main]",
        ),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (text, start, first, last) in cases {
        write(dir.path(), "x.ini", text);
        let err = config_error(dir.path(), "x.ini", start, "circular use: ");
        let line = err.lines().next().unwrap_or_default();
        assert!(
            line.contains(&format!("circular use: {first}"))
                && line.ends_with(&format!("→ {last}")),
            "{text}\n{err}"
        );
    }
}

#[test]
fn config_files_including_each_other_are_a_cycle_however_the_path_is_spelled() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "a.ini", "[app:main]\nuse = config:b.ini#x\n");
    // `loop` is the directory itself: loop/loop/a.ini is a.ini.
    std::os::unix::fs::symlink(".", dir.path().join("loop")).unwrap();
    write(
        dir.path(),
        "b.ini",
        "[app:x]\nuse = config:loop/loop/a.ini\n",
    );
    let err = config_error(dir.path(), "a.ini", "b.ini:2: [app:x] ", "circular use: ");
    assert!(
        err.contains("[app:main] (a.ini:1) → [app:x] (b.ini:1) → [app:main]"),
        "{err}"
    );
}

// ---- interpolation, logging formats and args -------------------------------------------

#[test]
fn an_interpolation_bomb_is_an_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for x0 in ["aaaaaaaaaa", ""] {
        let mut text = format!("[app:main]\nuse = egg:mapproxy-serve#echo\nx0 = {x0}\n");
        for i in 1..10 {
            text.push_str(&format!(
                "x{i} = {}\n",
                format!("%(x{})s", i - 1).repeat(10)
            ));
        }
        write(dir.path(), "bomb.ini", &text);
        let e = check(dir.path(), "bomb.ini");
        assert_eq!(e.code(), Some(2), "{e:?}");
        // Every key past the bound fails, each at its own line.
        for i in 5..10 {
            assert!(
                e.stderr
                    .contains(&format!("bomb.ini:{}: [app:main] key 'x{i}': ", i + 3)),
                "x{i}:\n{}",
                e.stderr
            );
        }
        assert!(!e.stderr.contains("x4'"), "{}", e.stderr);
    }
}

/// A site whose logging has this handler `args` and this formatter `format`.
fn logging_site(args: &str, format: &str) -> String {
    format!(
        "[app:main]\nuse = egg:mapproxy-serve#echo\n\n\
         [loggers]\nkeys = root\n\n[handlers]\nkeys = console\n\n[formatters]\nkeys = x\n\n\
         [logger_root]\nlevel = INFO\nhandlers = console\n\n\
         [handler_console]\nclass = StreamHandler\nargs = {args}\nformatter = x\n\n\
         [formatter_x]\nformat = {format}\n"
    )
}

#[test]
fn absurd_format_widths_are_rejected_when_the_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    for format in [
        "%(message)99999999999999999999s",
        "%(levelname)-999999999s %(message)s",
        "%(message).10001s",
        "%(created)20000.3f %(message)s",
    ] {
        write(
            dir.path(),
            "log.ini",
            &logging_site("(sys.stderr,)", format),
        );
        config_error(
            dir.path(),
            "log.ini",
            "log.ini:23: [formatter_x] format: ",
            "is too large (at most 10000)",
        );
        // And `serve` does not start with it.
        let e = run(&["log.ini"], Some(dir.path()));
        assert_eq!(e.code(), Some(2), "{format}: {e:?}");
    }
}

#[test]
fn handler_args_nested_thousands_deep_are_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for args in [
        format!("{}sys.stderr,{}", "(".repeat(10_000), ")".repeat(10_000)),
        format!("{}sys.stderr{}", "[".repeat(10_000), "]".repeat(10_000)),
        format!("({}1,)", "-".repeat(100_000)),
        format!("({}1,)", "+".repeat(100_000)),
    ] {
        write(dir.path(), "log.ini", &logging_site(&args, "%(message)s"));
        config_error(dir.path(), "log.ini", "log.ini:19: [handler_console] ", "");
    }
}

#[test]
fn an_absurd_thread_count_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    for key in ["threads", "workers"] {
        write(
            dir.path(),
            "t.ini",
            &format!(
                "[app:main]\nuse = egg:mapproxy-serve#echo\n\n\
                 [server:main]\nuse = egg:mapproxy-serve#http\n{key} = 100000000\n"
            ),
        );
        config_error(
            dir.path(),
            "t.ini",
            "t.ini:6: [server:main] ",
            &format!("key '{key}': expected a whole number from 1 to 1024, found '100000000'"),
        );
    }
}

// ---- files -------------------------------------------------------------------------------

#[test]
fn only_regular_files_of_bounded_size_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.ini");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let big = format!(
        "[app:main]\nuse = egg:mapproxy-serve#echo\nx = {}\n",
        "a".repeat(17 * 1024 * 1024)
    );
    write(dir.path(), "big.ini", &big);
    let cases = [
        ("fifo.ini", "not a regular file (a FIFO)"),
        ("/dev/zero", "not a regular file (a device)"),
        ("sub", "not a regular file (a directory)"),
        ("big.ini", "larger than 16 MiB"),
    ];
    for (target, what) in cases {
        // Included...
        write(
            dir.path(),
            "top.ini",
            &format!("[app:main]\nuse = config:{target}\n"),
        );
        config_error(
            dir.path(),
            "top.ini",
            &format!("top.ini:2: [app:main] 'config:{target}': {target}: cannot read: "),
            what,
        );
        // ...or named on the command line.
        let e = check(dir.path(), target);
        assert_eq!(e.code(), Some(2), "{target}: {e:?}");
        assert!(
            e.stderr.starts_with(&format!("{target}: cannot read: ")) && e.stderr.contains(what),
            "{target}: {}",
            e.stderr
        );
    }
}

#[test]
fn a_log_file_that_is_a_fifo_nobody_reads_is_an_error_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo.log");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo");
    let site = logging_site("(sys.stderr,)", "%(message)s").replace(
        "class = StreamHandler\nargs = (sys.stderr,)",
        "class = FileHandler\nargs = ('fifo.log', 'a')",
    );
    write(dir.path(), "log.ini", &site);
    let e = run(&["log.ini"], Some(dir.path()));
    assert_eq!(e.code(), Some(2), "{e:?}");
    assert!(
        e.stderr
            .starts_with("log.ini:19: [handler_console] cannot open log file '")
            && e.stderr.contains("fifo.log': a FIFO that nobody reads"),
        "{}",
        e.stderr
    );
}

#[test]
fn a_file_that_is_not_an_ini_file_is_not_quoted() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "secret.txt",
        "root:SECRET-HASH:0:0:root:/root:/bin/bash\nmore SECRET\n",
    );
    write(
        dir.path(),
        "top.ini",
        "[app:main]\nuse = config:secret.txt\n",
    );
    let err = config_error(
        dir.path(),
        "top.ini",
        "top.ini:2: [app:main] 'config:secret.txt': secret.txt:1: ",
        "text before the first [section] header",
    );
    assert!(!err.contains("SECRET") && !err.contains("root"), "{err}");
    // A bad line inside a section is quoted, but only its start, escaped.
    let long = format!("\u{1b}[31m{}", "x".repeat(200));
    write(
        dir.path(),
        "bad.ini",
        &format!("[app:main]\nuse = egg:mapproxy-serve#echo\n{long}\n"),
    );
    let err = config_error(
        dir.path(),
        "bad.ini",
        "bad.ini:3: [app:main] ",
        &format!("found '\\x1b[31m{}'…", "x".repeat(27)),
    );
    assert!(
        !err.contains('\u{1b}') && !err.contains(&"x".repeat(40)),
        "{err}"
    );
}

#[test]
fn relative_includes_resolve_from_the_including_files_directory_however_it_was_named() {
    // real/a/top.ini includes config:../inc.ini; `link` is a symlink to real/a. The file
    // system resolves link/../inc.ini to real/inc.ini; a decoy inc.ini sits next to `link`.
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let top = "[app:main]\nuse = config:../inc.ini\n";
    write(&root, "real/a/top.ini", top);
    write(
        &root,
        "real/inc.ini",
        "[app:main]\nuse = egg:mapproxy-serve#echo\nwhich = real\n",
    );
    write(
        &root,
        "inc.ini",
        "[app:main]\nuse = egg:mapproxy-serve#echo\nwhich = decoy\n",
    );
    std::os::unix::fs::symlink(root.join("real/a"), root.join("link")).unwrap();
    let link_top = root.join("link/top.ini");
    let namings: [(&str, &Path); 4] = [
        ("link/top.ini", &root),
        (link_top.to_str().unwrap(), Path::new("/")),
        ("top.ini", &root.join("link")),
        ("../a/top.ini", &root.join("real/a")),
    ];
    for (name, cwd) in namings {
        let e = run(&["appconfig", "--json", name], Some(cwd));
        assert_eq!(e.code(), Some(0), "{name}: {e:?}");
        assert!(
            e.stdout.contains("\"which\": \"real\""),
            "{name} from {}: {}",
            cwd.display(),
            e.stdout
        );
    }
}

// ---- scale: large legitimate files are read once (the lookups are hash lookups) --------

#[test]
fn eighty_thousand_keys_and_a_hundred_thousand_mounts_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let mut keys = String::from("[app:main]\nuse = egg:mapproxy-serve#echo\nbase = b\n");
    let mut default = String::from("[app:main]\nuse = egg:mapproxy-serve#echo\n\n[DEFAULT]\n");
    for i in 0..80_000 {
        keys.push_str(&format!("k{i} = v{i} %(base)s\n"));
        default.push_str(&format!("k{i} = v{i}\n"));
    }
    write(dir.path(), "keys.ini", &keys);
    write(dir.path(), "default.ini", &default);
    let mut mounts = String::from("[composite:main]\nuse = egg:Paste#urlmap\n");
    for i in 0..100_000 {
        mounts.push_str(&format!("/m{i} = echo\n"));
    }
    mounts.push_str("\n[app:echo]\nuse = egg:mapproxy-serve#echo\n");
    write(dir.path(), "mounts.ini", &mounts);
    for name in ["keys.ini", "default.ini", "mounts.ini"] {
        // a deadline for a hang: linear work takes 15 s in a debug build on a busy machine,
        // a quadratic lookup would take hours
        let e = support::run_within(&["check", name], Some(dir.path()), Duration::from_secs(120));
        assert_eq!(e.code(), Some(0), "{name}: {}", e.stderr);
    }
}

// ---- every duration, size and count option: absurd values are errors with file:line --------

/// A site whose one option under test is `KEY = VALUE`, and the section that holds it.
struct NumericOption {
    key: &'static str,
    /// The site; `@` is replaced by the line `KEY = VALUE`.
    site: &'static str,
    section: &'static str,
    bad: &'static [&'static str],
}

const SECONDS: &[&str] = &["1e30", "-1", "NaN", "inf", "1e9999", "soon", "86401"];
const SIZES: &[&str] = &["99999999999G", "99999999999999999999", "-1", "1.5k", "lots"];
const COUNTS: &[&str] = &["100000000000000000000", "-1", "0", "many"];

const HTTP: &str =
    "[server:main]\nuse = egg:Paste#http\nport = 0\n@\n[app:main]\nuse = egg:mapproxy-serve#text\n";
const FCGI: &str = "[server:main]\nuse = egg:Flup#fcgi_fork\nsocket = %(here)s/fcgi.sock\n@\n[app:main]\nuse = egg:mapproxy-serve#text\n";

const NUMERIC_OPTIONS: &[NumericOption] = &[
    NumericOption { key: "channel_timeout", site: HTTP, section: "server:main", bad: SECONDS },
    NumericOption { key: "header_read_timeout", site: HTTP, section: "server:main", bad: SECONDS },
    NumericOption { key: "send_timeout", site: HTTP, section: "server:main", bad: SECONDS },
    NumericOption { key: "shutdown_timeout", site: HTTP, section: "server:main", bad: SECONDS },
    NumericOption { key: "graceful_timeout", site: HTTP, section: "server:main", bad: SECONDS },
    NumericOption { key: "max_request_header_size", site: HTTP, section: "server:main", bad: SIZES },
    NumericOption { key: "max_request_body_size", site: HTTP, section: "server:main", bad: SIZES },
    NumericOption { key: "threads", site: HTTP, section: "server:main", bad: &["100000000", "0", "-1", "x"] },
    NumericOption { key: "workers", site: HTTP, section: "server:main", bad: &["1025", "0"] },
    NumericOption { key: "connection_limit", site: HTTP, section: "server:main", bad: COUNTS },
    NumericOption { key: "shutdown_timeout", site: FCGI, section: "server:main", bad: SECONDS },
    NumericOption { key: "header_read_timeout", site: FCGI, section: "server:main", bad: SECONDS },
    NumericOption { key: "channel_timeout", site: FCGI, section: "server:main", bad: SECONDS },
    NumericOption { key: "send_timeout", site: FCGI, section: "server:main", bad: SECONDS },
    NumericOption { key: "connection_limit", site: FCGI, section: "server:main", bad: COUNTS },
    NumericOption { key: "max_request_header_size", site: FCGI, section: "server:main", bad: SIZES },
    NumericOption { key: "maxChildren", site: FCGI, section: "server:main", bad: COUNTS },
    NumericOption { key: "maxThreads", site: FCGI, section: "server:main", bad: COUNTS },
    NumericOption {
        key: "timeout",
        site: "[app:main]\nuse = egg:mapproxy-serve#text\nfilter-with = t\n[filter:t]\nuse = egg:mapproxy-serve#timeout\n@\n",
        section: "filter:t",
        bad: SECONDS,
    },
    NumericOption {
        key: "max_body_size",
        site: "[app:main]\nuse = egg:mapproxy-serve#text\nfilter-with = b\n[filter:b]\nuse = egg:mapproxy-serve#body_limit\n@\n",
        section: "filter:b",
        bad: SIZES,
    },
    NumericOption {
        key: "min_size",
        site: "[app:main]\nuse = egg:mapproxy-serve#text\nfilter-with = c\n[filter:c]\nuse = egg:Paste#gzip\n@\n",
        section: "filter:c",
        bad: SIZES,
    },
    NumericOption {
        key: "compress_level",
        site: "[app:main]\nuse = egg:mapproxy-serve#text\nfilter-with = c\n[filter:c]\nuse = egg:Paste#gzip\n@\n",
        section: "filter:c",
        bad: &["0", "10", "-1", "99999999999", "max"],
    },
    NumericOption {
        key: "max_age",
        site: "[app:main]\nuse = egg:mapproxy-serve#text\nfilter-with = c\n[filter:c]\nuse = egg:mapproxy-serve#cors\n@\n",
        section: "filter:c",
        bad: &["99999999999999999999", "-1", "1e30", "x"],
    },
    NumericOption {
        key: "timeout",
        site: "[app:main]\nuse = egg:Paste#proxy\naddress = http://127.0.0.1:9/\n@\n",
        section: "app:main",
        bad: SECONDS,
    },
    NumericOption {
        key: "cache_max_age",
        site: "[app:main]\nuse = egg:Paste#static\ndocument_root = %(here)s\n@\n",
        section: "app:main",
        bad: &["99999999999999999999", "-1", "1e30", "x"],
    },
    NumericOption {
        key: "max_cached_file_size",
        site: "[app:main]\nuse = egg:Paste#static\ndocument_root = %(here)s\n@\n",
        section: "app:main",
        bad: SIZES,
    },
    NumericOption {
        key: "slow_seconds",
        site: "[app:main]\nuse = egg:mapproxy-serve#echo\nslow_path = /slow\n@\n",
        section: "app:main",
        bad: SECONDS,
    },
];

#[test]
fn every_duration_size_and_count_option_rejects_absurd_values_naming_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    for opt in NUMERIC_OPTIONS {
        for bad in opt.bad {
            let text = opt.site.replace('@', &format!("{} = {bad}", opt.key));
            let line = text
                .lines()
                .position(|l| l.starts_with(&format!("{} = ", opt.key)))
                .map(|i| i + 1)
                .expect("the option's line");
            write(dir.path(), "site.ini", &text);
            let start = format!("site.ini:{line}: [{}] key '{}'", opt.section, opt.key);
            let e = check(dir.path(), "site.ini");
            assert_eq!(e.code(), Some(2), "{} = {bad}: {e:?}", opt.key);
            assert!(
                e.stderr.lines().any(|l| l.starts_with(&start)),
                "{} = {bad} in\n{text}\nexpected a line starting {start:?}, got:\n{}",
                opt.key,
                e.stderr
            );
            assert!(!e.stderr.contains("panicked"), "{}", e.stderr);
        }
    }
}
