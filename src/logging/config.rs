//! `[loggers]`, `[handlers]`, `[formatters]` and their `[logger_*]`, `[handler_*]`,
//! `[formatter_*]` sections read as Python's `logging.config.fileConfig` reads them: keys
//! case-insensitive, `[DEFAULT]` visible, `args`/`kwargs`/levels `%`-interpolated (with `here`,
//! `__file__` and the command-line values), `format`/`datefmt` raw.
//!
//! Reading checks everything it can without touching the file system; files are opened when
//! the configuration is applied ([`super::LogHandle::apply`]).

use std::path::{Path, PathBuf};

use super::format::Formatter;
use super::level;
use super::pyliteral::{self, Value};
use crate::error::{ConfigError, ConfigErrors, Location};
use crate::ini::{Entry, Found, IniFile, Section, Vars};

/// A logging configuration read from an ini file's logging sections (or a log4rs YAML
/// file), ready to apply.
#[derive(Clone, Debug)]
pub struct LoggingConfig {
    pub(super) source: Source,
}

/// Where a configuration came from.
#[derive(Clone, Debug)]
pub(super) enum Source {
    Ini(IniConfig),
    Log4rs(super::yaml::Log4rsYaml),
}

/// The logging sections of an ini file.
#[derive(Clone, Debug)]
pub(super) struct IniConfig {
    pub root: LoggerConf,
    pub loggers: Vec<LoggerConf>,
    pub handlers: Vec<HandlerConf>,
}

/// One logger (`[logger_root]` has the name `""`).
#[derive(Clone, Debug)]
pub(super) struct LoggerConf {
    /// The dotted name (`qualname`).
    pub name: String,
    /// The level; 0 is NOTSET (inherit).
    pub level: u32,
    /// Indexes into `handlers`.
    pub handlers: Vec<usize>,
    pub propagate: bool,
}

/// One handler.
#[derive(Clone, Debug)]
pub(super) struct HandlerConf {
    pub location: Location,
    pub level: u32,
    pub formatter: Formatter,
    pub kind: HandlerKind,
}

/// What a handler writes to.
#[derive(Clone, Debug)]
pub(super) enum HandlerKind {
    Stdout,
    Stderr,
    Null,
    File(FileConf),
}

/// A file handler's settings.
#[derive(Clone, Debug)]
pub(super) struct FileConf {
    pub path: PathBuf,
    pub append: bool,
    pub delay: bool,
    pub rotation: Rotation,
}

/// How a file is rotated.
#[derive(Clone, Debug)]
pub(super) enum Rotation {
    /// `FileHandler`: never.
    None,
    /// `WatchedFileHandler`: reopened when the path no longer names the open file.
    Watched,
    /// `RotatingFileHandler`: before a write that would reach `max_bytes`.
    Size { max_bytes: u64, backups: u32 },
    /// `TimedRotatingFileHandler`.
    Time {
        when: When,
        interval: u32,
        backups: u32,
        utc: bool,
    },
}

/// `when` of a `TimedRotatingFileHandler`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum When {
    Seconds,
    Minutes,
    Hours,
    Days,
    Midnight,
    /// Weekly, on this day (0 = Monday).
    Weekday(u32),
}

const SUPPORTED_CLASSES: &str = "StreamHandler, FileHandler, NullHandler, \
     handlers.RotatingFileHandler, handlers.TimedRotatingFileHandler, handlers.WatchedFileHandler";

impl LoggingConfig {
    /// Read the logging sections of `file`. `Ok(None)` when the file has no `[loggers]`
    /// section. All errors are collected; each names file:line and section.
    pub fn from_ini(file: &IniFile, vars: &Vars) -> Result<Option<LoggingConfig>, ConfigErrors> {
        let Some(loggers) = file.section("loggers") else {
            return Ok(None);
        };
        let r = Reader { file, vars };
        let mut errors = ConfigErrors::new();

        // Formatters (fileConfig: `_create_formatters`).
        // Listed formatters and handlers; `None` when their section has errors (reported
        // once, not again where they are used).
        let mut formatters: Vec<(String, Option<Formatter>)> = Vec::new();
        match r.required_section("formatters", loggers) {
            Err(e) => errors.push(e),
            Ok(sec) => {
                if let Some(keys) = errors.take(r.list(sec, "keys", true)) {
                    for (key, entry) in keys {
                        let name = format!("formatter_{key}");
                        match file.section(&name) {
                            None => errors.push(r.at(sec, entry).error(format!(
                                "formatter '{key}' is listed but there is no [{name}] section"
                            ))),
                            Some(fs) => {
                                let f = errors.take(r.formatter(fs));
                                formatters.push((key, f));
                            }
                        }
                    }
                }
            }
        }

        // Handlers (`_install_handlers`).
        let mut handlers: Vec<(String, Option<HandlerConf>)> = Vec::new();
        match r.required_section("handlers", loggers) {
            Err(e) => errors.push(e),
            Ok(sec) => {
                if let Some(keys) = errors.take(r.list(sec, "keys", true)) {
                    for (key, entry) in keys {
                        let name = format!("handler_{key}");
                        match file.section(&name) {
                            None => errors.push(r.at(sec, entry).error(format!(
                                "handler '{key}' is listed but there is no [{name}] section"
                            ))),
                            Some(hs) => {
                                let h = errors.take(r.handler(hs, &formatters));
                                handlers.push((key, h));
                            }
                        }
                    }
                }
            }
        }

        // Loggers (`_install_loggers`).
        let mut root = None;
        let mut others: Vec<LoggerConf> = Vec::new();
        if let Some(keys) = errors.take(r.list(loggers, "keys", true)) {
            let keys_entry = r.entry(loggers, "keys").map(|(e, _)| e);
            if !keys.iter().any(|(k, _)| k == "root") {
                let loc = match keys_entry {
                    Some(e) => r.at(loggers, e),
                    None => file.location(loggers),
                };
                errors.push(
                    loc.error("keys must include 'root' (Python's fileConfig fails without it)"),
                );
            }
            for (key, entry) in keys {
                let name = format!("logger_{key}");
                let Some(ls) = file.section(&name) else {
                    errors.push(r.at(loggers, entry).error(format!(
                        "logger '{key}' is listed but there is no [{name}] section"
                    )));
                    continue;
                };
                let is_root = key == "root";
                match r.logger(ls, is_root, &handlers) {
                    Err(e) => errors.extend(e),
                    Ok(l) if is_root => root = Some(l),
                    Ok(l) => {
                        // fileConfig configures the same logger again: the last section wins.
                        others.retain(|o| o.name != l.name);
                        others.push(l);
                    }
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let Some(root) = root else {
            // Only reached when 'root' was missing, which is already an error.
            return Err(file.location(loggers).error("no root logger").into());
        };
        Ok(Some(LoggingConfig {
            source: Source::Ini(IniConfig {
                root,
                loggers: others,
                handlers: handlers.into_iter().filter_map(|(_, h)| h).collect(),
            }),
        }))
    }

    /// A log4rs YAML file (log4rs's `appenders`, `root`, `loggers`; any of log4rs's appender,
    /// encoder and filter kinds, and `kind: python` for an encoder with Python's `format` and
    /// `datefmt`). Logger names may be dotted as Python's. Its structure is checked here; its
    /// appenders are made (files opened) when it is applied.
    pub fn from_log4rs_yaml(path: &Path) -> Result<LoggingConfig, ConfigErrors> {
        Ok(LoggingConfig {
            source: Source::Log4rs(super::yaml::Log4rsYaml::read(path)?),
        })
    }

    /// The files the handlers write (for information; rotated backups are not listed; the
    /// files a log4rs YAML configuration's appenders write are not known here: none).
    pub fn files(&self) -> Vec<PathBuf> {
        match &self.source {
            Source::Ini(c) => c
                .handlers
                .iter()
                .filter_map(|h| match &h.kind {
                    HandlerKind::File(f) => Some(f.path.clone()),
                    _ => None,
                })
                .collect(),
            Source::Log4rs(_) => Vec::new(),
        }
    }
}

struct Reader<'a> {
    file: &'a IniFile,
    vars: &'a Vars,
}

impl Reader<'_> {
    fn at(&self, section: &Section, entry: &Entry) -> Location {
        self.file.entry_location(section, entry)
    }

    fn required_section(&self, name: &str, loggers: &Section) -> Result<&Section, ConfigError> {
        self.file.section(name).ok_or_else(|| {
            self.file.location(loggers).error(format!(
                "there is a [loggers] section but no [{name}] section \
                 (fileConfig needs [loggers], [handlers] and [formatters]; keys may be empty)"
            ))
        })
    }

    /// The entry for `key` (case-insensitive), from the section or else `[DEFAULT]`.
    fn entry<'s>(&'s self, section: &'s Section, key: &str) -> Option<(&'s Entry, &'s Section)> {
        if let Some(e) = section.get_ignore_ascii_case(key) {
            return Some((e, section));
        }
        let d = &self.file.defaults;
        d.get_ignore_ascii_case(key).map(|e| (e, d))
    }

    /// The raw value of `key`.
    fn raw<'s>(&'s self, section: &'s Section, key: &str) -> Option<(&'s str, Location)> {
        self.entry(section, key)
            .map(|(e, s)| (e.value.as_str(), self.at(s, e)))
    }

    /// The `%`-interpolated value of `key`.
    fn get<'s>(
        &'s self,
        section: &'s Section,
        key: &str,
    ) -> Result<Option<(String, Location)>, ConfigError> {
        let Some((e, owner)) = self.entry(section, key) else {
            return Ok(None);
        };
        let loc = self.at(owner, e);
        if !e.value.contains('%') {
            return Ok(Some((e.value.clone(), loc)));
        }
        let here = self.file.here.to_string_lossy().into_owned();
        let file = self.file.abs_path.to_string_lossy().into_owned();
        let defaults = &self.file.defaults;
        let vars = self.vars;
        let lookup: &dyn Fn(&str) -> Option<Found<'s>> = &|name: &str| {
            if let Some(v) = find(section, name) {
                return Some(Found::Raw(v));
            }
            if let Some(v) = var(&vars.overrides, name) {
                return Some(Found::Literal(v));
            }
            if let Some(v) = find(defaults, name) {
                return Some(Found::Raw(v));
            }
            if name.eq_ignore_ascii_case("here") {
                return Some(Found::Literal(here.clone()));
            }
            if name.eq_ignore_ascii_case("__file__") {
                return Some(Found::Literal(file.clone()));
            }
            var(&vars.fallbacks, name).map(Found::Literal)
        };
        crate::ini::interpolate(&e.value, lookup)
            .map(|v| Some((v, loc.clone())))
            .map_err(|m| loc.error(format!("{key}: {m}")))
    }

    /// A comma-separated list (`keys`, `handlers`), stripped, empty items dropped.
    fn list<'s>(
        &'s self,
        section: &'s Section,
        key: &str,
        required: bool,
    ) -> Result<Vec<(String, &'s Entry)>, ConfigError> {
        let Some((entry, _)) = self.entry(section, key) else {
            if required {
                return Err(self
                    .file
                    .location(section)
                    .error(format!("missing key '{key}' (it may be empty)")));
            }
            return Ok(Vec::new());
        };
        let value = self.get(section, key)?.map(|(v, _)| v).unwrap_or_default();
        Ok(value
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| (s.to_string(), entry))
            .collect())
    }

    fn formatter(&self, section: &Section) -> Result<Formatter, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        if let Some((class, loc)) = self.raw(section, "class") {
            let class = class.trim();
            if !class.is_empty() && class != "logging.Formatter" {
                errors.push(loc.error(format!(
                    "formatter class '{class}' is Python code; only logging.Formatter is supported"
                )));
            }
        }
        if let Some((style, loc)) = self.raw(section, "style") {
            if style.trim() != "%" {
                errors.push(loc.error(format!(
                    "style '{style}' is not supported; only '%' formats (%(name)s) are"
                )));
            }
        }
        let format = self.raw(section, "format");
        let datefmt = self.raw(section, "datefmt");
        match Formatter::new(
            format.as_ref().map(|(f, _)| *f),
            datefmt.as_ref().map(|(d, _)| *d),
        ) {
            Ok(f) => errors.into_result(f),
            Err(m) => {
                let loc = format
                    .map(|(_, l)| l)
                    .unwrap_or_else(|| self.file.location(section));
                errors.push(loc.error(format!("format: {m}")));
                Err(errors)
            }
        }
    }

    fn handler(
        &self,
        section: &Section,
        formatters: &[(String, Option<Formatter>)],
    ) -> Result<HandlerConf, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let head = self.file.location(section);
        let formatter = match self.get(section, "formatter") {
            Err(e) => {
                errors.push(e);
                None
            }
            Ok(None) => Some(Formatter::new(None, None).map_err(|m| head.error(m))),
            Ok(Some((name, loc))) if name.trim().is_empty() => {
                let _ = loc;
                Some(Formatter::new(None, None).map_err(|m| head.error(m)))
            }
            Ok(Some((name, loc))) => {
                let name = name.trim();
                match formatters.iter().find(|(k, _)| k == name) {
                    Some((_, Some(f))) => Some(Ok(f.clone())),
                    // Its own errors are reported.
                    Some((_, None)) => None,
                    None => {
                        errors.push(loc.error(format!(
                            "formatter '{name}' is not listed in [formatters] keys"
                        )));
                        None
                    }
                }
            }
        };
        let formatter = formatter.and_then(|f| errors.take(f.map_err(ConfigErrors::from)));
        let level = match self.get(section, "level") {
            Err(e) => {
                errors.push(e);
                0
            }
            Ok(None) => 0,
            Ok(Some((l, _))) if l.is_empty() => 0,
            Ok(Some((l, loc))) => match level::from_name(&l) {
                Some(n) => n,
                None => {
                    errors.push(loc.error(format!("level: {}", level::unknown(&l))));
                    0
                }
            },
        };
        let kind = match self.get(section, "class") {
            Err(e) => {
                errors.push(e);
                None
            }
            Ok(None) => {
                errors.push(head.error(format!(
                    "missing key 'class' (supported: {SUPPORTED_CLASSES})"
                )));
                None
            }
            Ok(Some((class, loc))) => errors.take(self.handler_kind(section, class.trim(), &loc)),
        };
        match (formatter, kind) {
            (Some(formatter), Some(kind)) if errors.is_empty() => Ok(HandlerConf {
                // Errors opening the file point at `args` (or `kwargs`), else the header.
                location: self
                    .raw(section, "args")
                    .or_else(|| self.raw(section, "kwargs"))
                    .map(|(_, l)| l)
                    .unwrap_or(head),
                level,
                formatter,
                kind,
            }),
            _ => Err(errors),
        }
    }

    fn handler_kind(
        &self,
        section: &Section,
        class: &str,
        class_loc: &Location,
    ) -> Result<HandlerKind, ConfigErrors> {
        let short = class
            .strip_prefix("logging.")
            .unwrap_or(class)
            .strip_prefix("handlers.")
            .unwrap_or_else(|| class.strip_prefix("logging.").unwrap_or(class));
        let params: &[&str] = match short {
            "StreamHandler" => &["stream"],
            "NullHandler" => &[],
            "FileHandler" | "WatchedFileHandler" => {
                &["filename", "mode", "encoding", "delay", "errors"]
            }
            "RotatingFileHandler" => &[
                "filename",
                "mode",
                "maxBytes",
                "backupCount",
                "encoding",
                "delay",
                "errors",
            ],
            "TimedRotatingFileHandler" => &[
                "filename",
                "when",
                "interval",
                "backupCount",
                "encoding",
                "delay",
                "utc",
                "atTime",
                "errors",
            ],
            _ => {
                return Err(class_loc
                    .error(format!(
                        "handler class '{class}' is not supported (supported: {SUPPORTED_CLASSES})"
                    ))
                    .into())
            }
        };
        let args = self.bind(section, short, params)?;
        let loc = |name: &str| -> Location {
            args.iter()
                .find(|(n, _, _)| n == name)
                .map(|(_, _, l)| l.clone())
                .unwrap_or_else(|| class_loc.clone())
        };
        let arg = |name: &str| args.iter().find(|(n, _, _)| n == name).map(|(_, v, _)| v);
        let mut errors = ConfigErrors::new();
        let string = |name: &str, errors: &mut ConfigErrors| -> Option<String> {
            match arg(name) {
                None | Some(Value::None) => None,
                Some(Value::Str(s)) => Some(s.clone()),
                Some(other) => {
                    errors.push(loc(name).error(format!("{name} must be a string, not {other}")));
                    None
                }
            }
        };
        let int = |name: &str, default: i64, errors: &mut ConfigErrors| -> i64 {
            match arg(name) {
                None => default,
                Some(Value::Int(i)) => *i,
                Some(Value::Bool(b)) => i64::from(*b),
                Some(other) => {
                    errors.push(loc(name).error(format!("{name} must be an integer, not {other}")));
                    default
                }
            }
        };
        let boolean = |name: &str, errors: &mut ConfigErrors| -> bool {
            match arg(name) {
                None | Some(Value::None) => false,
                Some(Value::Bool(b)) => *b,
                Some(Value::Int(i)) => *i != 0,
                Some(other) => {
                    errors.push(
                        loc(name).error(format!("{name} must be True or False, not {other}")),
                    );
                    false
                }
            }
        };
        if let Some(enc) = string("encoding", &mut errors) {
            let e = enc.to_ascii_lowercase().replace(['-', '_'], "");
            if e != "utf8" && e != "ascii" && e != "usascii" {
                errors.push(loc("encoding").error(format!(
                    "encoding '{enc}' is not supported; log files are written as UTF-8"
                )));
            }
        }
        let _ = string("errors", &mut errors);
        if let Some(v) = arg("atTime") {
            if *v != Value::None {
                errors
                    .push(loc("atTime").error(
                        "atTime needs a datetime.time object, which cannot be written here",
                    ));
            }
        }
        let kind = match short {
            "StreamHandler" => match arg("stream") {
                None | Some(Value::None) | Some(Value::Stderr) => HandlerKind::Stderr,
                Some(Value::Stdout) => HandlerKind::Stdout,
                Some(other) => {
                    errors.push(loc("stream").error(format!(
                        "stream must be sys.stdout or sys.stderr, not {other}"
                    )));
                    HandlerKind::Stderr
                }
            },
            "NullHandler" => HandlerKind::Null,
            _ => {
                let filename = string("filename", &mut errors);
                if filename.is_none() && !errors.0.iter().any(|e| e.message.starts_with("filename"))
                {
                    errors.push(class_loc.error(format!(
                        "{short} needs a file name: args = ('path/to/file.log', 'a')"
                    )));
                }
                let path = filename
                    .map(|f| absolute(Path::new(&f)))
                    .unwrap_or_default();
                let mode = string("mode", &mut errors).unwrap_or_else(|| "a".into());
                let append = match mode.chars().next() {
                    Some('a') => true,
                    Some('w') => false,
                    _ => {
                        errors.push(loc("mode").error(format!(
                            "mode '{mode}' is not supported for a log file (use 'a' or 'w')"
                        )));
                        true
                    }
                };
                let delay = boolean("delay", &mut errors);
                let rotation = match short {
                    "WatchedFileHandler" => Rotation::Watched,
                    "RotatingFileHandler" => {
                        let max_bytes = int("maxBytes", 0, &mut errors);
                        let backups = int("backupCount", 0, &mut errors);
                        if max_bytes > 0 && backups > 0 {
                            Rotation::Size {
                                max_bytes: max_bytes as u64,
                                backups: backups.clamp(0, 1_000_000) as u32,
                            }
                        } else {
                            // Python: with maxBytes or backupCount 0 the file never rolls over.
                            Rotation::None
                        }
                    }
                    "TimedRotatingFileHandler" => {
                        let when_s = string("when", &mut errors).unwrap_or_else(|| "h".into());
                        let interval = int("interval", 1, &mut errors);
                        let backups = int("backupCount", 0, &mut errors);
                        let utc = boolean("utc", &mut errors);
                        let when = match when_s.to_ascii_uppercase().as_str() {
                            "S" => Some(When::Seconds),
                            "M" => Some(When::Minutes),
                            "H" => Some(When::Hours),
                            "D" => Some(When::Days),
                            "MIDNIGHT" => Some(When::Midnight),
                            w if w.len() == 2 && w.starts_with('W') => w[1..]
                                .parse::<u32>()
                                .ok()
                                .filter(|d| *d <= 6)
                                .map(When::Weekday),
                            _ => None,
                        };
                        let when = when.unwrap_or_else(|| {
                            errors.push(loc("when").error(format!(
                                "when '{when_s}' is not one of S, M, H, D, midnight, W0..W6"
                            )));
                            When::Hours
                        });
                        if interval < 1 {
                            errors.push(loc("interval").error("interval must be at least 1"));
                        }
                        // Python forces append mode for rotating handlers.
                        Rotation::Time {
                            when,
                            interval: interval.clamp(1, i64::from(u32::MAX)) as u32,
                            backups: backups.clamp(0, 1_000_000) as u32,
                            utc,
                        }
                    }
                    _ => Rotation::None,
                };
                let append = match rotation {
                    Rotation::Size { .. } | Rotation::Time { .. } => true,
                    _ => append,
                };
                HandlerKind::File(FileConf {
                    path,
                    append,
                    delay,
                    rotation,
                })
            }
        };
        errors.into_result(kind)
    }

    /// `args` and `kwargs` bound to the parameter names of the handler class.
    fn bind(
        &self,
        section: &Section,
        class: &str,
        params: &[&str],
    ) -> Result<Vec<(String, Value, Location)>, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let mut bound: Vec<(String, Value, Location)> = Vec::new();
        if let Some((text, loc)) = errors.take(self.get(section, "args")).flatten() {
            match pyliteral::parse(&text) {
                Ok(Value::Tuple(items)) | Ok(Value::List(items)) => {
                    if items.len() > params.len() {
                        errors.push(loc.error(format!(
                            "args: {class} takes at most {} arguments ({}), {} given",
                            params.len(),
                            params.join(", "),
                            items.len()
                        )));
                    }
                    for (p, v) in params.iter().zip(items) {
                        bound.push((p.to_string(), v, loc.clone()));
                    }
                }
                Ok(other) => errors.push(loc.error(format!(
                    "args must be a tuple such as ({other},) — note the trailing comma"
                ))),
                Err(m) => errors.push(loc.error(format!("args: {m}"))),
            }
        }
        if let Some((text, loc)) = errors.take(self.get(section, "kwargs")).flatten() {
            match pyliteral::parse(&text) {
                Ok(Value::Dict(items)) => {
                    for (k, v) in items {
                        if !params.contains(&k.as_str()) {
                            errors.push(loc.error(format!(
                                "kwargs: {class} has no argument '{k}' (known: {})",
                                params.join(", ")
                            )));
                        } else if bound.iter().any(|(n, _, _)| *n == k) {
                            errors
                                .push(loc.error(format!("kwargs: '{k}' is already given in args")));
                        } else {
                            bound.push((k, v, loc.clone()));
                        }
                    }
                }
                Ok(other) => errors.push(loc.error(format!(
                    "kwargs must be a dict such as {{'maxBytes': 1048576}}, not {other}"
                ))),
                Err(m) => errors.push(loc.error(format!("kwargs: {m}"))),
            }
        }
        errors.into_result(bound)
    }

    fn logger(
        &self,
        section: &Section,
        is_root: bool,
        handlers: &[(String, Option<HandlerConf>)],
    ) -> Result<LoggerConf, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let head = self.file.location(section);
        let name = if is_root {
            String::new()
        } else {
            match self.get(section, "qualname") {
                Err(e) => {
                    errors.push(e);
                    String::new()
                }
                Ok(None) => {
                    errors.push(head.error("missing key 'qualname' (the dotted logger name)"));
                    String::new()
                }
                Ok(Some((q, _))) => q.trim().to_string(),
            }
        };
        // Python: the root logger keeps WARNING unless `level` is given; others are NOTSET.
        let level = match self.get(section, "level") {
            Err(e) => {
                errors.push(e);
                0
            }
            Ok(None) => {
                if is_root {
                    level::WARNING
                } else {
                    0
                }
            }
            Ok(Some((l, loc))) => match level::from_name(&l) {
                Some(n) => n,
                None => {
                    errors.push(loc.error(format!("level: {}", level::unknown(&l))));
                    0
                }
            },
        };
        let propagate = if is_root {
            true
        } else {
            match self.get(section, "propagate") {
                Err(e) => {
                    errors.push(e);
                    true
                }
                Ok(None) => true,
                Ok(Some((p, loc))) => match parse_int(&p) {
                    Some(n) => n != 0,
                    None => {
                        errors.push(
                            loc.error(format!("propagate must be an integer (0 or 1), not {p:?}")),
                        );
                        true
                    }
                },
            }
        };
        let mut idx = Vec::new();
        match self.list(section, "handlers", true) {
            Err(e) => errors.push(e),
            Ok(list) => {
                for (h, entry) in list {
                    match handlers.iter().position(|(k, _)| *k == h) {
                        Some(i) => idx.push(i),
                        None => errors.push(
                            self.at(section, entry)
                                .error(format!("handler '{h}' is not listed in [handlers] keys")),
                        ),
                    }
                }
            }
        }
        errors.into_result(LoggerConf {
            name,
            level,
            handlers: idx,
            propagate,
        })
    }
}

/// Python's `int()` of a config value. A trailing `# comment` is tolerated (MapProxy's own
/// log.ini template has `propagate=0 # ...`, which Python rejects).
fn parse_int(s: &str) -> Option<i64> {
    let s = match s.find([';', '#']) {
        Some(i) if i > 0 && s[..i].ends_with(char::is_whitespace) => &s[..i],
        _ => s,
    };
    s.trim().replace('_', "").parse().ok()
}

/// A key of a section, case-insensitively (the last one if repeated).
fn find<'s>(s: &'s Section, name: &str) -> Option<&'s str> {
    s.get_ignore_ascii_case(name).map(|x| x.value.as_str())
}

/// A command-line value, case-insensitively.
fn var(m: &indexmap::IndexMap<String, String>, name: &str) -> Option<String> {
    m.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|d| d.join(p))
            .unwrap_or_else(|_| p.to_path_buf())
    }
}
