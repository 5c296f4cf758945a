//! The ConfigParser-exact reader on top of rust-ini.
//!
//! Two passes:
//!
//! 1. [`scan`] classifies every line exactly like CPython's `RawConfigParser._read` with Paste
//!    Deploy's settings (comment / blank / header / option / continuation), records the line of
//!    every header and key and collects every error (missing delimiter, empty key, text before
//!    the first header, duplicate sections and keys).
//! 2. When there is no error, [`canonical_text`] writes the result as plain ini text (LF,
//!    comments and header junk removed, continuation lines indented uniformly, trailing blank
//!    value lines trimmed) which rust-ini tokenizes; its ordered sections and keys are mapped
//!    back onto the recorded positions.
//!
//! rust-ini cannot express a few inputs even in canonical form; those are handled here:
//! - a section name with `]` in it, with leading or trailing whitespace, or ending in `\`
//!   (`[a]b]`, `[ app:x ]`): a placeholder header is written and the recorded name is used;
//! - a key starting with `[` (`[a = b`): a placeholder key is written and the recorded key used;
//! - a line ending in `\` (rust-ini joins it with the next line even with escapes off): a space
//!   is written after it, which rust-ini trims;
//! - a value whose first line is empty (`key =` followed by continuation lines): rust-ini drops
//!   the leading line feeds, Python keeps them (`"\na\nb"`); they are put back.
//!
//! Files: only a regular file is read, and at most [`MAX_FILE_SIZE`] bytes of it. It is opened
//! with `O_NONBLOCK` and its type is checked on the open handle, so a FIFO (no writer), a
//! device (`/dev/zero`) or a directory is refused at once instead of blocking or filling
//! memory.
//!
//! Quoting: an error quotes at most [`QUOTE_CHARS`] characters of the line, escaped as Python's
//! `repr` does (`'noequals'`, `'\x1b[…'`), and a line before the first section header is not
//! quoted at all: that is where a file that is not an ini file (a `config:` URI naming
//! `/etc/passwd`) fails, and its content is nobody's business. File:line says where the line is.

use std::collections::HashMap;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use ini::{Ini, ParseOption};

use super::{short_repr, Entry, IniFile, Section};
use crate::error::{ConfigError, ConfigErrors, Location};

/// The name of the defaults section.
const DEFAULT: &str = "DEFAULT";

/// The largest ini file read: 16 MiB. (A 100,000-mount urlmap is about 1.5 MB.)
pub const MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// How much of a line an error message quotes.
pub(crate) const QUOTE_CHARS: usize = 32;

/// The contents of the regular file at `path`, at most `limit` bytes. Anything else (a FIFO,
/// a device, a directory, a socket, a longer file) is an error; a FIFO never blocks: the file
/// is opened with `O_NONBLOCK` and its type is read from the open handle.
pub fn read_limited(path: &Path, limit: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind};
    use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    let ft = meta.file_type();
    if !ft.is_file() {
        let what = if ft.is_dir() {
            "a directory"
        } else if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_char_device() || ft.is_block_device() {
            "a device"
        } else if ft.is_socket() {
            "a socket"
        } else {
            "a special file"
        };
        return Err(Error::new(
            ErrorKind::InvalidInput,
            format!("not a regular file ({what})"),
        ));
    }
    let too_big = || {
        Error::new(
            ErrorKind::InvalidData,
            format!("larger than {} (the limit for this file)", size_text(limit)),
        )
    };
    if meta.len() > limit {
        return Err(too_big());
    }
    // The file may grow while it is read: never read more than the limit.
    let mut buf = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut buf)?;
    if buf.len() as u64 > limit {
        return Err(too_big());
    }
    Ok(buf)
}

/// `16 MiB`, `1 MiB`, `512 bytes`.
pub(crate) fn size_text(n: u64) -> String {
    const MIB: u64 = 1024 * 1024;
    if n >= MIB && n.is_multiple_of(MIB) {
        format!("{} MiB", n / MIB)
    } else {
        format!("{n} bytes")
    }
}

/// Read the file at `open`, named `shown` in messages; `abs` is its `%(__file__)s` (default:
/// `shown` made absolute).
pub(super) fn read(open: &Path, shown: &Path, abs: Option<&Path>) -> Result<IniFile, ConfigErrors> {
    let bytes = read_limited(open, MAX_FILE_SIZE)
        .map_err(|e| ConfigError::in_file(shown, format!("cannot read: {e}")))?;
    let text = match std::str::from_utf8(&bytes) {
        Ok(t) => t,
        Err(e) => {
            let good = &bytes[..e.valid_up_to()];
            let line = 1 + good.iter().filter(|&&b| b == b'\n').count();
            return Err(Location::file(shown, line)
                .error(format!("not valid UTF-8 text ({e})"))
                .into());
        }
    };
    let mut f = parse_str(shown, text)?;
    f.real_path = std::fs::canonicalize(open).unwrap_or_else(|_| absolute(open));
    if let Some(abs) = abs {
        f.abs_path = abs.to_path_buf();
        f.here = parent_or_root(abs);
    }
    Ok(f)
}

fn parent_or_root(p: &Path) -> PathBuf {
    p.parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"))
}

pub(super) fn parse_str(path: &Path, text: &str) -> Result<IniFile, ConfigErrors> {
    let abs_path = absolute(path);
    let here = parent_or_root(&abs_path);
    let blocks = scan(path, text)?;
    let (sections, defaults) = tokenize(path, &blocks)?;
    let mut index = HashMap::with_capacity(sections.len());
    for (i, s) in sections.iter().enumerate() {
        index.entry(s.name.clone()).or_insert(i);
    }
    Ok(IniFile {
        path: path.to_path_buf(),
        real_path: abs_path.clone(),
        abs_path,
        here,
        section_index: (index, sections.len()),
        sections,
        defaults,
    })
}

/// `path` made absolute against the current directory, `.` and `..` removed lexically
/// (symlinks are not resolved).
fn absolute(path: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        match std::env::current_dir() {
            Ok(cwd) => cwd.join(path),
            Err(_) => path.to_path_buf(),
        }
    };
    let mut out = PathBuf::new();
    for c in joined.components() {
        match c {
            Component::CurDir => {}
            // `/..` stays `/`; a relative path (no cwd) keeps its leading `..`s.
            Component::ParentDir => match out.components().next_back() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir | Component::Prefix(_)) => {}
                Some(Component::ParentDir | Component::CurDir) | None => out.push(".."),
            },
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// Python's `str.isspace` (Rust's `char::is_whitespace` plus the separators U+001C..U+001F).
fn py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

fn py_strip(s: &str) -> &str {
    s.trim_matches(py_space)
}

/// The lines of `text` as Python's universal-newline reading gives them: split at `\r\n`,
/// `\r` or `\n`, terminators removed.
fn lines(text: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let bytes = text.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\n' => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            b'\r' => {
                out.push(&text[start..i]);
                if bytes.get(i + 1) == Some(&b'\n') {
                    i += 1;
                }
                start = i + 1;
            }
            _ => {}
        }
        i += 1;
    }
    if start < bytes.len() {
        out.push(&text[start..]);
    }
    out
}

/// One `[header]` block as read (the `[DEFAULT]` blocks stay separate here).
#[derive(Debug)]
struct Block {
    name: String,
    line: usize,
    entries: Vec<RawEntry>,
}

/// One key with its value lines (the first line and the continuation lines, blank ones as "").
#[derive(Debug)]
struct RawEntry {
    key: String,
    line: usize,
    lines: Vec<String>,
}

impl RawEntry {
    /// Python's `'\n'.join(lines).rstrip()` (the lines are already stripped).
    fn value(&self) -> String {
        self.lines.join("\n").trim_end_matches('\n').to_string()
    }

    /// The value lines without trailing blank lines (always at least the first line).
    fn trimmed_lines(&self) -> &[String] {
        let mut n = self.lines.len();
        while n > 1 && self.lines[n - 1].is_empty() {
            n -= 1;
        }
        &self.lines[..n]
    }
}

/// The line pass: `RawConfigParser._read` with `strict=True`, comment prefixes `#`/`;`
/// (full line only), delimiters `=`/`:`, `empty_lines_in_values=True`; every error collected.
fn scan(path: &Path, text: &str) -> Result<Vec<Block>, ConfigErrors> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut errors = ConfigErrors::new();
    let mut blocks: Vec<Block> = Vec::new();
    // First line of each section name (not DEFAULT).
    let mut section_lines: HashMap<String, usize> = HashMap::new();
    // First line of each key, per key group: the block index, or usize::MAX for all DEFAULT blocks.
    let mut key_lines: HashMap<(usize, String), usize> = HashMap::new();
    // (block index, entry index) of the option that continuation lines extend.
    let mut cur: Option<usize> = None;
    let mut opt: Option<usize> = None;
    let mut indent_level = 0usize;
    let mut reported_no_header = false;

    for (idx, raw) in lines(text).into_iter().enumerate() {
        let lineno = idx + 1;
        let value = py_strip(raw);
        if value.starts_with('#') || value.starts_with(';') {
            continue;
        }
        if value.is_empty() {
            if let (Some(b), Some(o)) = (cur, opt) {
                blocks[b].entries[o].lines.push(String::new());
            }
            continue;
        }
        let indent = raw.chars().take_while(|&c| py_space(c)).count();
        if let (Some(b), Some(o), true) = (cur, opt, indent > indent_level) {
            blocks[b].entries[o].lines.push(value.to_string());
            continue;
        }
        indent_level = indent;
        if let Some(name) = header_name(value) {
            opt = None;
            // `[DEFAULT]` may repeat (its blocks merge). A repeated section is an error; its
            // block is still read so that the lines after it parse as Python would.
            if name != DEFAULT {
                if let Some(&first) = section_lines.get(name) {
                    errors.push(
                        Location::in_section(path, lineno, name)
                            .error(format!("duplicate section (first at line {first})")),
                    );
                } else {
                    section_lines.insert(name.to_string(), lineno);
                }
            }
            blocks.push(Block {
                name: name.to_string(),
                line: lineno,
                entries: Vec::new(),
            });
            cur = Some(blocks.len() - 1);
            continue;
        }
        let Some(b) = cur else {
            if !reported_no_header {
                reported_no_header = true;
                // Not quoted: this is where a file that is not an ini file fails.
                errors.push(Location::file(path, lineno).error(
                    "text before the first [section] header (an ini file starts with a \
                     [section] line; is this an ini file?)",
                ));
            }
            continue;
        };
        let block_name = blocks[b].name.clone();
        let at = Location::in_section(path, lineno, block_name.as_str());
        let Some(split) = value.find(['=', ':']) else {
            // Python keeps the current option: deeper lines still continue it.
            errors.push(at.error(format!(
                "expected 'key = value' or 'key: value', found {}",
                short_repr(value, QUOTE_CHARS)
            )));
            continue;
        };
        let key = value[..split].trim_end_matches(py_space);
        let val = py_strip(&value[split + 1..]);
        if key.is_empty() {
            errors.push(at.error(format!("empty key in {}", short_repr(value, QUOTE_CHARS))));
            opt = None;
            continue;
        }
        let group = if block_name == DEFAULT { usize::MAX } else { b };
        if let Some(&first) = key_lines.get(&(group, key.to_string())) {
            // Still read (with its continuation lines); the file is rejected anyway.
            errors.push(at.error(format!(
                "duplicate key {} (first at line {first})",
                short_repr(key, QUOTE_CHARS)
            )));
        } else {
            key_lines.insert((group, key.to_string()), lineno);
        }
        blocks[b].entries.push(RawEntry {
            key: key.to_string(),
            line: lineno,
            lines: vec![val.to_string()],
        });
        opt = Some(blocks[b].entries.len() - 1);
    }
    errors.into_result(blocks)
}

/// `SECTCRE.match(stripped_line)`: `\[(?P<header>.+)\]`, greedy (text after the last `]` is
/// ignored), the name not stripped.
fn header_name(value: &str) -> Option<&str> {
    let rest = value.strip_prefix('[')?;
    let end = rest.rfind(']')?;
    (end > 0).then(|| &rest[..end])
}

/// A section name rust-ini gives back unchanged from `[name]`.
fn header_safe(name: &str) -> bool {
    !name.contains(']') && !name.ends_with('\\') && name.trim() == name && !name.is_empty()
}

/// A key rust-ini gives back unchanged from `key = ...` at the start of a line.
fn key_safe(key: &str) -> bool {
    !key.starts_with('[') && key.trim() == key
}

/// One value line as written for rust-ini: a trailing `\` would join the next line.
fn push_value_line(out: &mut String, line: &str) {
    out.push_str(line);
    if line.ends_with('\\') {
        out.push(' ');
    }
    out.push('\n');
}

/// The canonical text rust-ini tokenizes.
fn canonical_text(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        out.push('[');
        out.push_str(if header_safe(&block.name) {
            &block.name
        } else {
            "?"
        });
        out.push_str("]\n");
        for entry in &block.entries {
            out.push_str(if key_safe(&entry.key) {
                &entry.key
            } else {
                "?"
            });
            out.push_str(" = ");
            let lines = entry.trimmed_lines();
            push_value_line(&mut out, &lines[0]);
            for line in &lines[1..] {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str("    ");
                    push_value_line(&mut out, line);
                }
            }
        }
    }
    out
}

/// rust-ini's reading of the canonical text, mapped back onto the recorded blocks.
fn tokenize(path: &Path, blocks: &[Block]) -> Result<(Vec<Section>, Section), ConfigErrors> {
    let text = canonical_text(blocks);
    let opt = ParseOption {
        enabled_quote: false,
        enabled_escape: false,
        enabled_indented_mutiline_value: true,
        enabled_preserve_key_leading_whitespace: false,
    };
    let internal = |line: usize, what: String| -> ConfigErrors {
        Location::file(path, line)
            .error(format!("internal error reading the ini file: {what}"))
            .into()
    };
    let parsed = Ini::load_from_str_opt(&text, opt).map_err(|e| internal(0, e.to_string()))?;
    let tokens: Vec<_> = parsed
        .iter()
        .filter_map(|(name, props)| name.map(|n| (n, props)))
        .collect();
    if tokens.len() != blocks.len() {
        return Err(internal(
            0,
            format!("{} sections tokenized, {} read", tokens.len(), blocks.len()),
        ));
    }
    let mut sections = Vec::new();
    let mut default_line = 0;
    let mut default_entries = Vec::new();
    for (block, (tok_name, props)) in blocks.iter().zip(tokens) {
        if header_safe(&block.name) && tok_name != block.name {
            return Err(internal(
                block.line,
                format!("section '{}' tokenized as '{tok_name}'", block.name),
            ));
        }
        let count = props.iter().count();
        if count != block.entries.len() {
            return Err(internal(
                block.line,
                format!(
                    "{count} keys tokenized in [{}], {} read",
                    block.name,
                    block.entries.len()
                ),
            ));
        }
        let mut entries = Vec::with_capacity(block.entries.len());
        for (raw, (tok_key, tok_value)) in block.entries.iter().zip(props.iter()) {
            let key = if key_safe(&raw.key) {
                if tok_key != raw.key {
                    return Err(internal(
                        raw.line,
                        format!("key '{}' tokenized as '{tok_key}'", raw.key),
                    ));
                }
                tok_key.to_string()
            } else {
                raw.key.clone()
            };
            // rust-ini drops leading line feeds (an empty first line); Python keeps them.
            let lines = raw.trimmed_lines();
            let leading = if lines.len() > 1 {
                lines.iter().take_while(|l| l.is_empty()).count()
            } else {
                0
            };
            let mut value = "\n".repeat(leading);
            value.push_str(tok_value);
            // The line pass knows the answer too: never hand out a value that differs.
            if value != raw.value() {
                return Err(internal(
                    raw.line,
                    format!("value of '{}' tokenized as {value:?}", raw.key),
                ));
            }
            entries.push(Entry {
                key,
                value,
                line: raw.line,
            });
        }
        if block.name == DEFAULT {
            if default_line == 0 {
                default_line = block.line;
            }
            default_entries.extend(entries);
        } else {
            sections.push(Section::new(block.name.clone(), block.line, entries));
        }
    }
    Ok((
        sections,
        Section::new(DEFAULT, default_line, default_entries),
    ))
}
