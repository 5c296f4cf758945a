//! Tests of the reader and of interpolation. Expected values were checked against CPython
//! 3.11's `configparser` with Paste Deploy's settings where the rule comes from Python.

use std::path::{Path, PathBuf};

use super::*;

const PATH: &str = "/cfg/test.ini";

fn parse(text: &str) -> IniFile {
    match IniFile::parse_str(Path::new(PATH), text) {
        Ok(f) => f,
        Err(e) => panic!("unexpected errors:\n{e}"),
    }
}

fn errors(text: &str) -> Vec<String> {
    match IniFile::parse_str(Path::new(PATH), text) {
        Ok(f) => panic!("expected errors, got {f:#?}"),
        Err(e) => e.0.iter().map(ToString::to_string).collect(),
    }
}

/// `(key, value)` pairs of a section.
fn items<'a>(f: &'a IniFile, section: &str) -> Vec<(&'a str, &'a str)> {
    f.section(section)
        .unwrap_or_else(|| panic!("no section [{section}]"))
        .entries
        .iter()
        .map(|e| (e.key.as_str(), e.value.as_str()))
        .collect()
}

fn value<'a>(f: &'a IniFile, section: &str, key: &str) -> &'a str {
    f.section(section)
        .and_then(|s| s.get(key))
        .map(|e| e.value.as_str())
        .unwrap_or_else(|| panic!("no [{section}] {key}"))
}

fn names(f: &IniFile) -> Vec<&str> {
    f.sections.iter().map(|s| s.name.as_str()).collect()
}

// ---------------------------------------------------------------------------------------
// Reader: comments

#[test]
fn comment_lines_are_dropped_even_indented_and_inside_values() {
    let f = parse(
        "# top comment\n\
         ; another\n\
         [s]\n\
         \x20 # indented comment before any key\n\
         pipeline = egg:Paste#printdebug\n\
         \x20   auth\n\
         \x20   # a comment inside the pipeline\n\
         ; a column-0 comment inside the value\n\
         \n\
         \x20   myapp\n\
         a = b # c\n\
         semi = v ; x\n\
         hash = #not-a-comment\n",
    );
    assert_eq!(
        items(&f, "s"),
        vec![
            ("pipeline", "egg:Paste#printdebug\nauth\n\nmyapp"),
            ("a", "b # c"),
            ("semi", "v ; x"),
            ("hash", "#not-a-comment"),
        ]
    );
}

#[test]
fn comment_does_not_end_a_value_or_add_a_blank_line() {
    let f = parse("[s]\nk = 1\n# c\n  2\n;c\n  3\n");
    assert_eq!(value(&f, "s", "k"), "1\n2\n3");
}

// ---------------------------------------------------------------------------------------
// Reader: line ends, BOM

#[test]
fn crlf_and_cr_files_parse_like_lf_files() {
    let lf = "[DEFAULT]\nd = 1\n\n[app:main]\nx = 1\n  2\n\n  3\n\ny: z \n";
    let crlf = lf.replace('\n', "\r\n");
    let cr = lf.replace('\n', "\r");
    let a = parse(lf);
    for other in [parse(&crlf), parse(&cr)] {
        assert_eq!(a.sections, other.sections);
        assert_eq!(a.defaults, other.defaults);
    }
    assert_eq!(value(&a, "app:main", "x"), "1\n2\n\n3");
    assert_eq!(value(&a, "app:main", "y"), "z");
    assert_eq!(a.section("app:main").map(|s| s.line), Some(4));
    assert_eq!(
        a.section("app:main")
            .and_then(|s| s.get("y"))
            .map(|e| e.line),
        Some(10)
    );
}

#[test]
fn utf8_bom_is_skipped() {
    let f = parse("\u{feff}[s]\nk = v\n");
    assert_eq!(names(&f), vec!["s"]);
    assert_eq!(value(&f, "s", "k"), "v");
    // No trailing newline at the end of the file is fine too.
    let f = parse("[s]\nk = v");
    assert_eq!(value(&f, "s", "k"), "v");
}

// ---------------------------------------------------------------------------------------
// Reader: continuation lines

#[test]
fn continuation_lines_are_stripped_joined_blank_lines_kept_trailing_trimmed() {
    let f = parse("[s]\ncont = first\n  second\n\n  third\n\n\nnext = 1\n");
    assert_eq!(value(&f, "s", "cont"), "first\nsecond\n\nthird");
    // PT test_config3: trailing spaces of every line go.
    let f = parse("[s]\nanother = something more  \n    across several   \n    lines\n");
    assert_eq!(
        value(&f, "s", "another"),
        "something more\nacross several\nlines"
    );
    // Trailing blank lines at the end of the file.
    let f = parse("[s]\nk = a\n  b\n\n\n");
    assert_eq!(value(&f, "s", "k"), "a\nb");
}

#[test]
fn deeper_indented_lines_are_continuations_whatever_they_look_like() {
    let f = parse("[s]\nk = v\n  [x]\n  k2 = v2\n\t# comment\n  ;c\nk3 = 3\n");
    assert_eq!(items(&f, "s"), vec![("k", "v\n[x]\nk2 = v2"), ("k3", "3")]);
    assert_eq!(names(&f), vec!["s"]);
}

#[test]
fn continuation_means_deeper_than_the_key_line() {
    // An indented key: a line indented the same is a new key, a deeper one continues it.
    let f = parse("[s]\n  a = 1\n  b = 2\n    more\n c = 3\n");
    assert_eq!(
        items(&f, "s"),
        vec![("a", "1"), ("b", "2\nmore"), ("c", "3")]
    );
    // After a header there is no current key: an indented line is a key.
    let f = parse("[s]\n    k = v\n");
    assert_eq!(items(&f, "s"), vec![("k", "v")]);
    // A tab counts as one column, like Python.
    let f = parse("[s]\n\tk = v\n  w\n");
    assert_eq!(items(&f, "s"), vec![("k", "v\nw")]);
}

#[test]
fn empty_first_line_is_kept_like_python() {
    let f = parse("[s]\npipeline =\n    auth\n    app\nempty =\nblank =\n\n\n  x\n");
    assert_eq!(value(&f, "s", "pipeline"), "\nauth\napp");
    assert_eq!(value(&f, "s", "empty"), "");
    assert_eq!(value(&f, "s", "blank"), "\n\n\nx");
}

#[test]
fn blank_lines_do_not_end_a_value() {
    // empty_lines_in_values=True: a deeper line after blank lines still continues the value.
    let f = parse("[s]\nk = 1\n\n\n   2\nj = 3\n");
    assert_eq!(items(&f, "s"), vec![("k", "1\n\n\n2"), ("j", "3")]);
}

// ---------------------------------------------------------------------------------------
// Reader: keys and values

#[test]
fn keys_split_at_the_first_delimiter() {
    let f = parse(
        "[s]\n\
         a:b = c\n\
         x=y=z\n\
         http://h/p = app\n\
         local conf = something\n\
         colon: value\n\
         spaced   =   v  \n\
         empty =\n\
         Key = upper\n\
         key = lower\n\
         /foo = app2\n\
         /Foo/Bar: app3\n",
    );
    assert_eq!(
        items(&f, "s"),
        vec![
            ("a", "b = c"),
            ("x", "y=z"),
            ("http", "//h/p = app"),
            ("local conf", "something"),
            ("colon", "value"),
            ("spaced", "v"),
            ("empty", ""),
            ("Key", "upper"),
            ("key", "lower"),
            ("/foo", "app2"),
            ("/Foo/Bar", "app3"),
        ]
    );
}

#[test]
fn values_are_verbatim_no_quotes_no_escapes() {
    let f = parse(
        "[s]\n\
         realm = \"My Realm\"\n\
         single = 'x'\n\
         path = C:\\temp\\new\n\
         ratio = 50% ; not a comment\n\
         trail = ends with \\\n\
         next = 1\n\
         two = a\\\\\n\
         \x20 cont \\\n\
         back\\slash\\ = k\n",
    );
    assert_eq!(
        items(&f, "s"),
        vec![
            ("realm", "\"My Realm\""),
            ("single", "'x'"),
            ("path", "C:\\temp\\new"),
            ("ratio", "50% ; not a comment"),
            ("trail", "ends with \\"),
            ("next", "1"),
            ("two", "a\\\\\ncont \\"),
            ("back\\slash\\", "k"),
        ]
    );
}

#[test]
fn keys_rust_ini_cannot_express_are_kept() {
    // A key starting with `[` (the line is not a header: no closing bracket).
    let f = parse("[s]\n[a = b\n[c: d ]e\n[e: f\n");
    assert_eq!(items(&f, "s"), vec![("[a", "b")]);
    // ... but with a closing bracket it is a header.
    assert_eq!(items(&f, "c: d "), vec![("[e", "f")]);
}

#[test]
fn python_whitespace_is_stripped() {
    // \x0c (form feed) and \x1c..\x1f are whitespace for Python's str.strip().
    let f = parse("[s]\n\x0ck\x1f = \x1cv\x0b\n");
    assert_eq!(items(&f, "s"), vec![("k", "v")]);
}

// ---------------------------------------------------------------------------------------
// Reader: section headers

#[test]
fn section_headers_like_python() {
    let f = parse(
        "[app:main] junk\n\
         a = 1\n\
         [ app:x ]\n\
         b = 2\n\
         [default]\n\
         c = 3\n\
         [App:main]\n\
         [a]b]\n\
         [x\\]\n\
         []]\n\
         \x20 [indented]\n\
         [DEFAULT]\n\
         d = 4\n",
    );
    assert_eq!(
        names(&f),
        vec!["app:main", " app:x ", "default", "App:main", "a]b", "x\\", "]", "indented"]
    );
    assert_eq!(items(&f, "app:main"), vec![("a", "1")]);
    assert_eq!(items(&f, " app:x "), vec![("b", "2")]);
    assert_eq!(items(&f, "default"), vec![("c", "3")]);
    assert_eq!(items(&f, "DEFAULT"), vec![("d", "4")]);
    assert!(f.section("app:x").is_none());
    let lines: Vec<usize> = f.sections.iter().map(|s| s.line).collect();
    assert_eq!(lines, vec![1, 3, 5, 7, 8, 9, 10, 11]);
    assert_eq!(f.defaults.line, 12);
}

#[test]
fn default_blocks_merge() {
    let f = parse("[DEFAULT]\na = 1\n[s]\nx = 1\n[DEFAULT]\nb = 2\n");
    assert_eq!(f.defaults.name, "DEFAULT");
    assert_eq!(f.defaults.line, 1);
    assert_eq!(items(&f, "DEFAULT"), vec![("a", "1"), ("b", "2")]);
    let lines: Vec<usize> = f.defaults.entries.iter().map(|e| e.line).collect();
    assert_eq!(lines, vec![2, 6]);
    assert_eq!(names(&f), vec!["s"]);
    // No DEFAULT at all.
    let f = parse("[s]\n");
    assert_eq!(f.defaults.line, 0);
    assert!(f.defaults.entries.is_empty());
    assert_eq!(items(&f, "s"), vec![]);
}

#[test]
fn positions_are_the_header_and_key_lines() {
    let f = parse("# c\n\n[s]\n\na = 1\n  cont\n# x\nb = 2\n[t]\nc:3\n");
    let s = &f.sections[0];
    assert_eq!(s.line, 3);
    assert_eq!(s.get("a").map(|e| e.line), Some(5));
    assert_eq!(s.get("b").map(|e| e.line), Some(8));
    let t = &f.sections[1];
    assert_eq!((t.line, t.entries[0].line), (9, 10));
    assert_eq!(
        f.entry_location(t, &t.entries[0]).to_string(),
        "/cfg/test.ini:10: [t]"
    );
}

#[test]
fn empty_file_and_comment_only_file() {
    let f = parse("");
    assert!(f.sections.is_empty());
    let f = parse("# only\n; comments\n\n   \n");
    assert!(f.sections.is_empty());
}

// ---------------------------------------------------------------------------------------
// Reader: errors

#[test]
fn line_without_delimiter() {
    assert_eq!(
        errors("[app:main]\na = 1\nnoequals\n"),
        vec![
            "/cfg/test.ini:3: [app:main] expected 'key = value' or 'key: value', found 'noequals'"
        ]
    );
    // `[a` is not a header.
    assert_eq!(
        errors("[s]\n[a\n"),
        vec!["/cfg/test.ini:2: [s] expected 'key = value' or 'key: value', found '[a'"]
    );
}

#[test]
fn empty_key() {
    assert_eq!(
        errors("[app:main]\n= v\n  : w\n"),
        vec![
            "/cfg/test.ini:2: [app:main] empty key in '= v'",
            // Not a continuation: an empty key starts no value (Python's optname is '').
            "/cfg/test.ini:3: [app:main] empty key in ': w'",
        ]
    );
}

/// The error for text before the first header (the line is not quoted).
const NO_HEADER: &str = "text before the first [section] header (an ini file starts with a [section] line; is this an ini file?)";

#[test]
fn text_before_any_section() {
    // Only the first such line is reported (a file without headers would give one error
    // per line otherwise).
    let e =
        IniFile::parse_str(Path::new(PATH), "# c\n\na = 1\nb = 2\n[s]\n").expect_err("no header");
    assert_eq!(e.0, vec![Location::file(PATH, 3).error(NO_HEADER)]);
    // error.rs prints no colon after the line when there is no section.
    assert_eq!(
        errors("  indented\n"),
        vec![format!("/cfg/test.ini:1: {NO_HEADER}")]
    );
}

#[test]
fn errors_quote_a_short_escaped_start_of_the_line_at_most() {
    // A file that is not an ini file: its first line is not shown at all.
    let e = errors("root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n");
    assert_eq!(e, vec![format!("/cfg/test.ini:1: {NO_HEADER}")]);
    // Inside a section: 32 characters at most, escaped as Python's repr does.
    let long = format!("\u{1b}[2J{}", "y".repeat(100));
    assert_eq!(
        errors(&format!("[s]\n{long}\n= {long}\n")),
        vec![
            format!(
                "/cfg/test.ini:2: [s] expected 'key = value' or 'key: value', found \
                 '\\x1b[2J{}'…",
                "y".repeat(28)
            ),
            format!(
                "/cfg/test.ini:3: [s] empty key in '= \\x1b[2J{}'…",
                "y".repeat(26)
            ),
        ]
    );
    let key = "k".repeat(40);
    assert_eq!(
        errors(&format!("[s]\n{key} = 1\n{key} = 2\n")),
        vec![format!(
            "/cfg/test.ini:3: [s] duplicate key '{}'… (first at line 2)",
            "k".repeat(32)
        )]
    );
}

#[test]
fn duplicate_section() {
    assert_eq!(
        errors("[app:main]\na = 1\n\n[app:main]\nb = 2\n"),
        vec!["/cfg/test.ini:4: [app:main] duplicate section (first at line 1)"]
    );
    // Case matters, and junk after the bracket does not make it a different section.
    parse("[app:main]\n[App:main]\n[app:Main]\n");
    assert_eq!(
        errors("[s]\n[s] # again\n"),
        vec!["/cfg/test.ini:2: [s] duplicate section (first at line 1)"]
    );
}

#[test]
fn duplicate_key() {
    assert_eq!(
        errors("[app:main]\na = 1\nA = 2\n  a = cont\na: 3\n"),
        vec!["/cfg/test.ini:5: [app:main] duplicate key 'a' (first at line 2)"]
    );
    // Across [DEFAULT] blocks.
    assert_eq!(
        errors("[DEFAULT]\nk = 1\n[s]\nk = 2\n[DEFAULT]\nk = 3\n"),
        vec!["/cfg/test.ini:6: [DEFAULT] duplicate key 'k' (first at line 2)"]
    );
    // Key text is compared after the trailing spaces go.
    assert_eq!(
        errors("[s]\nk = 1\nk   : 2\n"),
        vec!["/cfg/test.ini:3: [s] duplicate key 'k' (first at line 2)"]
    );
}

#[test]
fn all_errors_are_collected() {
    let text = "stray\n\
                [a]\n\
                x = 1\n\
                noequals\n\
                = v\n\
                x = 2\n\
                [a]\n\
                y = 1\n\
                y = 2\n\
                [DEFAULT]\n\
                d = 1\n\
                [DEFAULT]\n\
                d = 2\n";
    assert_eq!(
        errors(text),
        vec![
            &format!("/cfg/test.ini:1: {NO_HEADER}"),
            "/cfg/test.ini:4: [a] expected 'key = value' or 'key: value', found 'noequals'",
            "/cfg/test.ini:5: [a] empty key in '= v'",
            "/cfg/test.ini:6: [a] duplicate key 'x' (first at line 3)",
            "/cfg/test.ini:7: [a] duplicate section (first at line 2)",
            "/cfg/test.ini:9: [a] duplicate key 'y' (first at line 8)",
            "/cfg/test.ini:13: [DEFAULT] duplicate key 'd' (first at line 11)",
        ]
    );
}

#[test]
fn error_lines_keep_the_current_value_like_python() {
    // After a bad line Python keeps the current key: a line deeper than the bad one continues
    // it (no second error), a line at the same depth is parsed again.
    assert_eq!(
        errors("[s]\nk = 1\nbad\n  more\nworse\n"),
        vec![
            "/cfg/test.ini:3: [s] expected 'key = value' or 'key: value', found 'bad'",
            "/cfg/test.ini:5: [s] expected 'key = value' or 'key: value', found 'worse'",
        ]
    );
}

#[test]
fn crlf_errors_have_the_same_lines() {
    assert_eq!(
        errors("[s]\r\na = 1\r\n\r\nnoequals\r\n"),
        vec!["/cfg/test.ini:4: [s] expected 'key = value' or 'key: value', found 'noequals'"]
    );
}

// ---------------------------------------------------------------------------------------
// Reader: files and paths

#[test]
fn read_missing_file_names_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("nope.ini");
    let err = IniFile::read(&path).expect_err("missing file");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}: cannot read: ", path.display())),
        "{text}"
    );
}

#[test]
fn read_non_utf8_is_an_error_with_its_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("latin1.ini");
    std::fs::write(&path, b"[s]\nk = caf\xe9\n").expect("write");
    let err = IniFile::read(&path).expect_err("not utf-8");
    assert_eq!(err.0.len(), 1);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}:2: not valid UTF-8 text", path.display())),
        "{text}"
    );
}

#[test]
fn read_file_paths() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).expect("mkdir");
    let path = sub.join("a.ini");
    std::fs::write(&path, "[s]\r\nk = v\r\n  w\r\n").expect("write");
    let dotted = dir.path().join("sub/./../sub/a.ini");
    let f = IniFile::read(&dotted).expect("read");
    assert_eq!(f.path, dotted);
    assert_eq!(f.abs_path, path);
    assert_eq!(f.here, sub);
    assert_eq!(value(&f, "s", "k"), "v\nw");
}

#[test]
fn relative_paths_are_joined_with_the_cwd() {
    let cwd = std::env::current_dir().expect("cwd");
    let f = IniFile::parse_str(Path::new("conf/../x/./test.ini"), "[s]\n").expect("parse");
    assert_eq!(f.path, PathBuf::from("conf/../x/./test.ini"));
    assert_eq!(f.abs_path, cwd.join("x/test.ini"));
    assert_eq!(f.here, cwd.join("x"));
    let f = IniFile::parse_str(Path::new(PATH), "").expect("parse");
    assert_eq!(f.abs_path, PathBuf::from("/cfg/test.ini"));
    assert_eq!(f.here, PathBuf::from("/cfg"));
}

// ---------------------------------------------------------------------------------------
// Reader: many generated files through rust-ini. The reader checks rust-ini's tokens against
// the line pass's own values and reports an internal error on any difference: there must be
// none. (The same generator, 5000 files, was compared with CPython 3.11's configparser: same
// sections, keys and values, and every error line Python reports is among ours.)

#[test]
fn generated_files_tokenize_consistently() {
    // `@` is replaced by a number unique in the file, so that most files are valid.
    const PIECES: &[&str] = &[
        "[s@]",
        "[t@] junk",
        "[ sp@ ]",
        "[a]b@]",
        "[x@\\]",
        "[DEFAULT]",
        "k@ = v",
        "k@: v2",
        "a@:b = c",
        "  cont",
        "    deeper",
        "\t tab",
        "",
        "   ",
        "# c",
        "  ; c",
        "[k@ = v",
        "e@ =",
        "e@:",
        "b@ = x\\",
        "  y\\",
        "q@ = \"quoted\"",
        "u@ = caf\u{e9} \u{3000}",
        "w@ = a\\\\",
        "  [h]",
        "  z@ = 1",
        "p@ = 50%",
        "h@ = http://x/y",
        "  ",
        "\u{3000}k@ = v",
    ];
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let mut parsed = 0;
    for _ in 0..3000 {
        let n = 1 + (next() % 14) as usize;
        let mut text = String::from("[first]\n");
        for i in 0..n {
            let piece = PIECES[(next() % PIECES.len() as u64) as usize];
            text.push_str(&piece.replace('@', &i.to_string()));
            text.push_str(if next() % 5 == 0 { "\r\n" } else { "\n" });
        }
        match IniFile::parse_str(Path::new(PATH), &text) {
            Ok(_) => parsed += 1,
            Err(e) => assert!(
                !e.to_string().contains("internal error"),
                "{e}\n--- input ---\n{text}"
            ),
        }
    }
    assert!(parsed > 300, "only {parsed} valid files generated");
}

// ---------------------------------------------------------------------------------------
// Interpolation: `interpolate` on its own

fn no_lookup(_: &str) -> Option<Found<'static>> {
    None
}

#[test]
fn percent_percent_and_plain_text() {
    assert_eq!(interpolate("x%%y", &no_lookup).as_deref(), Ok("x%y"));
    assert_eq!(interpolate("%%%%", &no_lookup).as_deref(), Ok("%%"));
    assert_eq!(interpolate("", &no_lookup).as_deref(), Ok(""));
    assert_eq!(
        interpolate("caf\u{e9} 50%%", &no_lookup).as_deref(),
        Ok("caf\u{e9} 50%")
    );
}

#[test]
fn syntax_errors_like_python() {
    assert_eq!(
        interpolate("100%", &no_lookup),
        Err("'%' must be followed by '%' or '(', found: '%' (write %% for a literal %)".into())
    );
    assert_eq!(
        interpolate("datefmt=%H:%M", &no_lookup),
        Err("'%' must be followed by '%' or '(', found: '%H:%M' (write %% for a literal %)".into())
    );
    // The rest of the value is shown as Python's repr() shows it.
    assert_eq!(
        interpolate("a\n%x\n'b'", &no_lookup),
        Err(
            "'%' must be followed by '%' or '(', found: \"%x\\n'b'\" (write %% for a literal %)"
                .into()
        )
    );
    assert_eq!(
        interpolate("x %(a", &no_lookup),
        Err("bad interpolation variable reference '%(a'".into())
    );
    assert_eq!(
        interpolate("%(a)d", &no_lookup),
        Err("bad interpolation variable reference '%(a)d'".into())
    );
    assert_eq!(
        interpolate("%()s", &no_lookup),
        Err("bad interpolation variable reference '%()s'".into())
    );
}

#[test]
fn raw_values_are_interpolated_again_literals_are_not() {
    let lookup = |name: &str| match name {
        "a" => Some(Found::Raw("<%(b)s>")),
        "b" => Some(Found::Raw("5%%")),
        "lit" => Some(Found::Literal("%(a)s 100%".to_string())),
        "A" => Some(Found::Raw("upper")),
        _ => None,
    };
    assert_eq!(interpolate("%(a)s", &lookup).as_deref(), Ok("<5%>"));
    assert_eq!(interpolate("%(lit)s", &lookup).as_deref(), Ok("%(a)s 100%"));
    assert_eq!(
        interpolate("%(A)s-%(a)s", &lookup).as_deref(),
        Ok("upper-<5%>")
    );
    assert_eq!(
        interpolate("x %(nope)s", &lookup),
        Err(
            "bad value substitution: '%(nope)s' names no key of this section, [DEFAULT] or \
             the command line (raw value: 'x %(nope)s')"
                .into()
        )
    );
}

/// The values of `k0 = %(k1)s`, ..., `k{n-1} = %(k{n})s`, `k{n} = end`.
fn chain(n: usize) -> Vec<String> {
    let mut values: Vec<String> = (0..n).map(|i| format!("%(k{})s", i + 1)).collect();
    values.push("end".to_string());
    values
}

fn chain_lookup<'a>(values: &'a [String]) -> impl Fn(&str) -> Option<Found<'a>> + 'a {
    move |name: &str| {
        let i: usize = name.strip_prefix('k')?.parse().ok()?;
        values.get(i).map(|v| Found::Raw(v.as_str()))
    }
}

#[test]
fn depth_limit_is_pythons() {
    // Checked with CPython: a chain of 10 references works, 11 fail.
    assert_eq!(
        interpolate("%(k1)s", &chain_lookup(&chain(10))).as_deref(),
        Ok("end")
    );
    assert_eq!(
        interpolate("%(k1)s", &chain_lookup(&chain(11))),
        Err(
            "recursion limit exceeded in value substitution: more than 10 steps \
             (raw value: '%(k1)s')"
                .into()
        )
    );
    assert_eq!(MAX_DEPTH, 10);
}

#[test]
fn env_names() {
    std::env::set_var("MAPPROXY_SERVE_INI_TEST_VAR", "from env 50%");
    let lookup = |name: &str| match name {
        "ENV:SHADOWED" => Some(Found::Literal("lookup wins".to_string())),
        _ => None,
    };
    assert_eq!(
        interpolate("%(ENV:MAPPROXY_SERVE_INI_TEST_VAR)s!", &lookup).as_deref(),
        Ok("from env 50%!")
    );
    assert_eq!(
        interpolate("%(ENV:SHADOWED)s", &lookup).as_deref(),
        Ok("lookup wins")
    );
    assert_eq!(
        interpolate("%(ENV:MAPPROXY_SERVE_INI_TEST_UNSET)s", &lookup),
        Err(
            "environment variable MAPPROXY_SERVE_INI_TEST_UNSET is not set \
             (from '%(ENV:MAPPROXY_SERVE_INI_TEST_UNSET)s')"
                .into()
        )
    );
}

// ---------------------------------------------------------------------------------------
// Interpolation: `IniFile::get` and `defaults_interpolated`

fn get(f: &IniFile, section: &str, key: &str, vars: &Vars) -> Result<String, String> {
    let s = f.section(section).expect("section");
    f.get(s, key, vars).map_err(|e| e.to_string())
}

fn vars(overrides: &[(&str, &str)], fallbacks: &[(&str, &str)]) -> Vars {
    let map = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    Vars {
        overrides: map(overrides),
        fallbacks: map(fallbacks),
    }
}

#[test]
fn lookup_order() {
    let f = parse(
        "[DEFAULT]\n\
         a = default a\n\
         b = default b\n\
         c = default c\n\
         d = default d\n\
         [app:main]\n\
         a = own a\n\
         ua = %(a)s\n\
         ub = %(b)s\n\
         uc = %(c)s\n\
         ud = %(d)s\n\
         ue = %(e)s\n\
         uf = %(f)s\n\
         here_file = %(here)s %(__file__)s\n",
    );
    let v = vars(
        &[("a", "cli a"), ("b", "cli b"), ("e", "cli e")],
        &[("c", "fb c"), ("f", "fb f")],
    );
    let g = |k: &str| get(&f, "app:main", k, &v);
    // Own keys beat the command line, which beats DEFAULT, which beats the fallbacks.
    assert_eq!(g("ua").as_deref(), Ok("own a"));
    assert_eq!(g("ub").as_deref(), Ok("cli b"));
    assert_eq!(g("uc").as_deref(), Ok("default c"));
    assert_eq!(g("ud").as_deref(), Ok("default d"));
    assert_eq!(g("ue").as_deref(), Ok("cli e"));
    assert_eq!(g("uf").as_deref(), Ok("fb f"));
    assert_eq!(g("here_file").as_deref(), Ok("/cfg /cfg/test.ini"));
    // In DEFAULT itself the section step is skipped: the command line wins.
    assert_eq!(get(&f, "DEFAULT", "a", &v).as_deref(), Ok("default a"));
    let f2 = parse("[DEFAULT]\na = x\nref = %(a)s\n");
    assert_eq!(get(&f2, "DEFAULT", "ref", &v).as_deref(), Ok("cli a"));
    assert_eq!(
        get(&f2, "DEFAULT", "ref", &Vars::default()).as_deref(),
        Ok("x")
    );
}

#[test]
fn python_examples() {
    // pastedeploy-semantics.md §1: a section key shadows DEFAULT for interpolation.
    let f = parse("[DEFAULT]\na = 1\n[app:main]\na = 2\nc = %(a)s\n");
    assert_eq!(
        get(&f, "app:main", "c", &Vars::default()).as_deref(),
        Ok("2")
    );
    // Other sections are not visible.
    let f =
        parse("[app:other]\nx = 1\n[app:missing]\nx = %(nope)s\ny = %(x)s\n[app:c]\nz = %(x)s\n");
    assert_eq!(
        get(&f, "app:missing", "x", &Vars::default()),
        Err(
            "/cfg/test.ini:4: [app:missing] key 'x': bad value substitution: '%(nope)s' names \
             no key of this section, [DEFAULT] or the command line (raw value: '%(nope)s')"
                .into()
        )
    );
    assert_eq!(
        get(&f, "app:missing", "y", &Vars::default()),
        Err(
            "/cfg/test.ini:5: [app:missing] key 'y': bad value substitution: '%(nope)s' names \
             no key of this section, [DEFAULT] or the command line (raw value: '%(x)s')"
                .into()
        )
    );
    assert!(
        get(&f, "app:c", "z", &Vars::default()).is_err_and(|e| e.contains("'%(x)s' names no key"))
    );
    // A DEFAULT value referencing a section key fails.
    let f = parse("[DEFAULT]\nd = %(s)s\n[app:main]\ns = 1\nuse_d = %(d)s\n");
    assert!(get(&f, "app:main", "use_d", &Vars::default()).is_ok_and(|v| v == "1"));
    assert_eq!(
        get(&f, "DEFAULT", "d", &Vars::default()),
        Err(
            "/cfg/test.ini:2: [DEFAULT] key 'd': bad value substitution: '%(s)s' names no key \
             of this section, [DEFAULT] or the command line (raw value: '%(s)s')"
                .into()
        )
    );
    // PT test_config: DEFAULT interpolation with a multi-line value.
    let f = parse(
        "[DEFAULT]\ndef1 = a\ndef2 = b\nbasepath = %(here)s\n[app:test1]\n\
         setting1 = foo\nsetting2 = %(def1)s/bar\n",
    );
    assert_eq!(
        get(&f, "app:test1", "setting2", &Vars::default()).as_deref(),
        Ok("a/bar")
    );
    // logging's datefmt needs %% in a file that is interpolated.
    let f = parse("[formatter_generic]\ndatefmt = %H:%M:%S\n");
    assert_eq!(
        get(&f, "formatter_generic", "datefmt", &Vars::default()),
        Err(
            "/cfg/test.ini:2: [formatter_generic] key 'datefmt': '%' must be followed by '%' \
             or '(', found: '%H:%M:%S' (write %% for a literal %)"
                .into()
        )
    );
}

#[test]
fn loops_and_depth_in_a_file() {
    let f = parse("[app:main]\na = %(b)s\nb = %(a)s\n");
    assert_eq!(
        get(&f, "app:main", "a", &Vars::default()),
        Err(
            "/cfg/test.ini:2: [app:main] key 'a': recursion limit exceeded in value \
             substitution: more than 10 steps (raw value: '%(b)s')"
                .into()
        )
    );
    let chain_file = |n: usize| {
        let mut t = String::from("[app:main]\n");
        for i in 0..n {
            t.push_str(&format!("k{i} = %(k{})s\n", i + 1));
        }
        t.push_str(&format!("k{n} = end\n"));
        parse(&t)
    };
    assert_eq!(
        get(&chain_file(10), "app:main", "k0", &Vars::default()).as_deref(),
        Ok("end")
    );
    assert_eq!(
        get(&chain_file(11), "app:main", "k0", &Vars::default()),
        Err(
            "/cfg/test.ini:2: [app:main] key 'k0': recursion limit exceeded in value \
             substitution: more than 10 steps (raw value: '%(k1)s')"
                .into()
        )
    );
    // A self-reference through DEFAULT.
    let f = parse("[DEFAULT]\nx = %(x)s\n");
    assert!(get(&f, "DEFAULT", "x", &Vars::default())
        .is_err_and(|e| e.contains("recursion limit exceeded")));
}

#[test]
fn percent_in_here_and_in_literals_works() {
    let f = IniFile::parse_str(
        Path::new("/srv/100%/app.ini"),
        "[DEFAULT]\ncache = %(here)s/cache\n[app:main]\ndir = %(cache)s\nfile = %(__file__)s\n\
         cli = %(x)s\n",
    )
    .expect("parse");
    let v = vars(&[("x", "%(cache)s%")], &[]);
    assert_eq!(
        get(&f, "app:main", "dir", &v).as_deref(),
        Ok("/srv/100%/cache")
    );
    assert_eq!(
        get(&f, "app:main", "file", &v).as_deref(),
        Ok("/srv/100%/app.ini")
    );
    assert_eq!(get(&f, "app:main", "cli", &v).as_deref(), Ok("%(cache)s%"));
}

#[test]
fn here_can_be_redefined_in_default() {
    let f = parse("[DEFAULT]\nhere = /elsewhere\n[app:main]\nx = %(here)s\n");
    assert_eq!(
        get(&f, "app:main", "x", &Vars::default()).as_deref(),
        Ok("/elsewhere")
    );
    let d = f.defaults_interpolated(&Vars::default()).expect("defaults");
    let keys: Vec<(&str, &str)> = d.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        keys,
        vec![("here", "/elsewhere"), ("__file__", "/cfg/test.ini")]
    );
}

#[test]
fn env_in_a_file() {
    std::env::set_var("MAPPROXY_SERVE_INI_TEST_HOME", "/home/t%");
    let f = parse(
        "[app:main]\nhome = %(ENV:MAPPROXY_SERVE_INI_TEST_HOME)s/x\n\
         unset = %(ENV:MAPPROXY_SERVE_INI_TEST_NOPE)s\n",
    );
    assert_eq!(
        get(&f, "app:main", "home", &Vars::default()).as_deref(),
        Ok("/home/t%/x")
    );
    assert_eq!(
        get(&f, "app:main", "unset", &Vars::default()),
        Err(
            "/cfg/test.ini:3: [app:main] key 'unset': environment variable \
             MAPPROXY_SERVE_INI_TEST_NOPE is not set (from '%(ENV:MAPPROXY_SERVE_INI_TEST_NOPE)s')"
                .into()
        )
    );
}

#[test]
fn missing_key_is_an_error_not_a_panic() {
    let f = parse("[app:main]\na = 1\n");
    assert_eq!(
        get(&f, "app:main", "b", &Vars::default()),
        Err("/cfg/test.ini:1: [app:main] key 'b': no such key in this section".into())
    );
    assert!(get(&f, "DEFAULT", "b", &Vars::default()).is_err());
}

#[test]
fn defaults_interpolated_order_errors_and_empty_quirk() {
    let f = parse(
        "[DEFAULT]\n\
         def1 = a\n\
         basepath = %(here)s/x\n\
         empty =\n\
         to_empty = %(empty)s\n\
         cli = %(over)s\n\
         [app:main]\n",
    );
    let v = vars(&[("over", "from cli")], &[("fb", "z")]);
    let d = f.defaults_interpolated(&v).expect("defaults");
    let items: Vec<(&str, &str)> = d.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(
        items,
        vec![
            ("def1", "a"),
            ("basepath", "/cfg/x"),
            ("empty", ""),
            // Paste: `self.get('DEFAULT', key) or val`.
            ("to_empty", "%(empty)s"),
            ("cli", "from cli"),
            ("here", "/cfg"),
            ("__file__", "/cfg/test.ini"),
        ]
    );
    // No DEFAULT section: just here and __file__.
    let d = parse("[s]\n")
        .defaults_interpolated(&Vars::default())
        .expect("defaults");
    assert_eq!(d.len(), 2);
    // Every bad DEFAULT value is reported.
    let f = parse("[DEFAULT]\na = %(nope)s\nb = ok\nc = 5%\n");
    let e = f
        .defaults_interpolated(&Vars::default())
        .expect_err("bad defaults");
    let msgs: Vec<String> = e.0.iter().map(ToString::to_string).collect();
    assert_eq!(
        msgs,
        vec![
            "/cfg/test.ini:2: [DEFAULT] key 'a': bad value substitution: '%(nope)s' names no \
             key of this section, [DEFAULT] or the command line (raw value: '%(nope)s')",
            "/cfg/test.ini:4: [DEFAULT] key 'c': '%' must be followed by '%' or '(', found: \
             '%' (write %% for a literal %)",
        ]
    );
    // Fallbacks lose to DEFAULT but fill in names the file does not define.
    let f = parse("[DEFAULT]\nx = file\ny = %(x)s %(g)s\n");
    let d = f
        .defaults_interpolated(&vars(&[], &[("x", "fb"), ("g", "fb g")]))
        .expect("defaults");
    assert_eq!(d.get("y").map(String::as_str), Some("file fb g"));
}

// ---------------------------------------------------------------------------------------
// Bounds: value length and substitutions, checked while expanding; hash lookups

#[test]
fn interpolation_stops_as_soon_as_a_value_is_too_long() {
    use std::cell::Cell;
    // Each reference brings 600 KiB: the second one would pass 1 MiB, and no third lookup
    // happens (the bound is checked while expanding, not on the result).
    let calls = Cell::new(0);
    let big = "b".repeat(600 * 1024);
    let lookup = |_: &str| {
        calls.set(calls.get() + 1);
        Some(Found::Literal(big.clone()))
    };
    let e = interpolate("%(a)s%(a)s%(a)s%(a)s", &lookup).expect_err("too long");
    assert!(
        e.starts_with("the value is longer than 1 MiB after %(...)s substitution (raw value: "),
        "{e}"
    );
    assert_eq!(calls.get(), 2);
    // Literal text counts too, and exactly MAX_VALUE_LEN bytes is fine.
    let exact = "x".repeat(MAX_VALUE_LEN);
    assert_eq!(
        interpolate(&exact, &|_| None).map(|v| v.len()),
        Ok(MAX_VALUE_LEN)
    );
    assert!(interpolate(&format!("{exact}%%"), &|_| None).is_err());
}

#[test]
fn interpolation_stops_after_the_substitution_bound() {
    use std::cell::Cell;
    // References to an empty value produce nothing, so only a count of them bounds the work.
    // `e0` is ten `e1`s, ..., `e6` is empty: a million substitutions for nothing.
    let raws: Vec<String> = (0..6)
        .map(|n| format!("%(e{})s", n + 1).repeat(10))
        .collect();
    let calls = Cell::new(0);
    let lookup = |name: &str| {
        calls.set(calls.get() + 1);
        let n: usize = name.trim_start_matches('e').parse().ok()?;
        Some(Found::Raw(raws.get(n).map_or("", String::as_str)))
    };
    let e = interpolate("%(e0)s", &lookup).expect_err("too many substitutions");
    assert!(
        e.starts_with("the value takes more than 100000 %(...)s substitutions (raw value: "),
        "{e}"
    );
    assert_eq!(calls.get(), MAX_SUBSTITUTIONS);
}

/// Ten keys, each the previous one ten times: `x9` would be 10 GB (or, with an empty `x0`, a
/// billion substitutions).
fn bomb(x0: &str) -> String {
    let mut text = format!("[app:main]\nx0 = {x0}\n");
    for i in 1..10 {
        text.push_str(&format!(
            "x{i} = {}\n",
            format!("%(x{})s", i - 1).repeat(10)
        ));
    }
    text
}

#[test]
fn an_interpolation_bomb_is_an_error_at_the_key() {
    for x0 in ["aaaaaaaaaa", ""] {
        let f = parse(&bomb(x0));
        // x4: 100,000 bytes in 11,110 substitutions, fine.
        assert_eq!(
            get(&f, "app:main", "x4", &Vars::default()).map(|v| v.len()),
            Ok(10 * x0.len() * 1000)
        );
        for i in 5..10 {
            let e = get(&f, "app:main", &format!("x{i}"), &Vars::default()).expect_err("bomb");
            assert!(
                e.starts_with(&format!(
                    "/cfg/test.ini:{}: [app:main] key 'x{i}': the value ",
                    i + 2
                )),
                "{e}"
            );
        }
    }
}

#[test]
fn keys_and_sections_are_found_by_hash_lookups() {
    let mut text = String::from("[DEFAULT]\n");
    for i in 0..1000 {
        text.push_str(&format!("d{i} = {i}\n"));
    }
    text.push_str("[s]\nKey = first\nother = x\nKEY = last\n");
    for i in 0..1000 {
        text.push_str(&format!("[sec{i}]\nk = {i}\n"));
    }
    let f = parse(&text);
    let s = f.section("s").expect("[s]");
    // Every key is in the index: a lookup is one hash probe, not a scan of the section.
    assert_eq!(s.index.exact.len(), 3);
    assert_eq!(s.index.len, s.entries.len());
    assert_eq!(f.defaults.index.exact.len(), 1000);
    assert_eq!(f.section_index.0.len(), 1001);
    assert_eq!(s.get("Key").map(|e| e.value.as_str()), Some("first"));
    assert_eq!(s.get("KEY").map(|e| e.value.as_str()), Some("last"));
    assert!(s.get("key").is_none());
    // Case-insensitive (logging's fileConfig): the last one wins.
    assert_eq!(
        s.get_ignore_ascii_case("key").map(|e| e.value.as_str()),
        Some("last")
    );
    assert_eq!(f.defaults.get("d999").map(|e| e.line), Some(1001));
    assert_eq!(f.section("sec999").map(|s| s.line), Some(3004));
    assert!(f.section("sec1000").is_none());
    // Entries pushed after reading (the fields are public) are still found.
    let mut s = s.clone();
    s.entries.push(Entry {
        key: "late".into(),
        value: "v".into(),
        line: 99,
    });
    assert_eq!(s.get("late").map(|e| e.line), Some(99));
    assert_eq!(s.get_ignore_ascii_case("LATE").map(|e| e.line), Some(99));
}

#[test]
fn only_regular_files_are_read_and_never_block() {
    let dir = std::env::temp_dir().join(format!("ini-read-limited-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("mkdir");
    let fifo = dir.join("fifo");
    let made = std::process::Command::new("mkfifo").arg(&fifo).status();
    assert!(made.is_ok_and(|s| s.success()), "mkfifo {}", fifo.display());
    let file = dir.join("f.ini");
    std::fs::write(&file, "[s]\nk = v\n").expect("write");
    let err = |p: &Path, limit| read_limited(p, limit).expect_err("not read").to_string();
    assert_eq!(err(&fifo, MAX_FILE_SIZE), "not a regular file (a FIFO)");
    assert_eq!(
        err(Path::new("/dev/zero"), MAX_FILE_SIZE),
        "not a regular file (a device)"
    );
    assert_eq!(err(&dir, MAX_FILE_SIZE), "not a regular file (a directory)");
    assert_eq!(
        err(&file, 9),
        "larger than 9 bytes (the limit for this file)"
    );
    assert_eq!(read_limited(&file, 10).map(|b| b.len()).ok(), Some(10));
    let e = IniFile::read(&fifo).expect_err("a FIFO");
    assert!(
        e.to_string()
            .ends_with("fifo: cannot read: not a regular file (a FIFO)"),
        "{e}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn includer_values_are_interpolated_again() {
    // An includer's `tmpl = %%(libdir)s/x` reaches the included file as `%(libdir)s/x`: as in
    // Paste (the includer's values are raw defaults there), it takes this file's libdir.
    let f = parse("[DEFAULT]\nlibdir = /inner\n[app:main]\npath = %(tmpl)s\nraw = %(pct)s\n");
    let v = vars(&[], &[("tmpl", "%(libdir)s/x"), ("pct", "100%")]);
    assert_eq!(get(&f, "app:main", "path", &v).as_deref(), Ok("/inner/x"));
    // A lone `%` left in an includer's value is an error where it is used, as in Paste.
    let e = get(&f, "app:main", "raw", &v).unwrap_err();
    assert!(
        e.starts_with("/cfg/test.ini:5: [app:main] key 'raw': '%' must be followed"),
        "{e}"
    );
}
