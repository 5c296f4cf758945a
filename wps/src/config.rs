//! `pywps.cfg` as PyWPS reads it (`pywps/configuration.py`): Python's `ConfigParser` with the
//! process environment as defaults (`%(HOME)s`), keys compared case-insensitively, `%(name)s`
//! interpolation and then `$VAR` / `${VAR}` expansion (`EnvInterpolation`); several files, a
//! later one overriding an earlier one key by key; PyWPS's hard-coded defaults for every key
//! not given.
//!
//! Differences, each deliberate: a file that cannot be read is an error (PyWPS skips it
//! silently), and so is a value that does not parse (a size, a number), naming the file, line,
//! section and key; relative paths (`outputpath`, `workdir`, `temp_path`, `[logging] file`)
//! are taken from the directory of the file that set them, not from the server's working
//! directory.

use std::path::{Path, PathBuf};

use mapproxy_serve_core::error::{ConfigError, ConfigErrors, Location};
use mapproxy_serve_core::ini::{interpolate, Found, IniFile};

/// One value of the merged configuration, with where it was written (`None`: a default).
#[derive(Clone, Debug)]
pub struct Value {
    /// The interpolated text.
    pub text: String,
    /// Where it was written.
    pub location: Option<Location>,
    /// The directory of the file it came from (relative paths resolve against it).
    pub here: Option<PathBuf>,
}

/// The `[metadata:main]` keys (PyWPS's defaults when absent).
#[derive(Clone, Debug)]
pub struct Metadata {
    pub identification_title: String,
    pub identification_abstract: String,
    pub identification_keywords: Vec<String>,
    pub identification_keywords_type: Vec<String>,
    pub identification_fees: String,
    pub identification_accessconstraints: Vec<String>,
    pub provider_name: String,
    pub provider_url: String,
    pub contact_name: String,
    pub contact_position: String,
    pub contact_address: String,
    pub contact_city: String,
    pub contact_stateorprovince: String,
    pub contact_postalcode: String,
    pub contact_country: String,
    pub contact_phone: String,
    pub contact_fax: String,
    pub contact_email: String,
    pub contact_url: String,
    pub contact_hours: String,
    pub contact_instructions: String,
    pub contact_role: String,
}

/// The configuration the app runs with.
#[derive(Clone, Debug)]
pub struct WpsConfig {
    /// `[server] url`: the service URL printed in documents.
    pub url: String,
    /// `[server] outputurl`: the URL `outputpath` is served at (ends with `/`).
    pub outputurl: String,
    /// `[server] outputpath`: where status documents and reference outputs are written.
    pub outputpath: PathBuf,
    /// `[server] workdir`: jobs get a `pywps_process_*` directory below it.
    pub workdir: PathBuf,
    /// `[server] temp_path`.
    pub temp_path: PathBuf,
    /// `[server] maxsingleinputsize` in bytes (complex inputs, inline or by reference).
    pub maxsingleinputsize: u64,
    /// `[server] maxrequestsize` in bytes (the POST body).
    pub maxrequestsize: u64,
    /// The two sizes in megabytes as PyWPS computes them (for messages: `0.02`, not the
    /// byte count divided back).
    pub maxsingleinputsize_mb: f64,
    /// See `maxsingleinputsize_mb`.
    pub maxrequestsize_mb: f64,
    /// `[server] parallelprocesses` (-1: no limit).
    pub parallelprocesses: i64,
    /// `[server] maxprocesses`: queued asynchronous jobs (-1: no limit).
    pub maxprocesses: i64,
    /// `[server] language`: supported languages, the first the default.
    pub languages: Vec<String>,
    /// `[server] allowedinputpaths`: directories `file:` references may read (`:`-separated).
    pub allowedinputpaths: Vec<PathBuf>,
    /// `[server] cleantempdir`: remove a job's working directory when it ends.
    pub cleantempdir: bool,
    /// `[metadata:main]`.
    pub metadata: Metadata,
    /// `[logging] level` (a Python level number; PyWPS's default DEBUG).
    pub log_level: u32,
    /// `[logging] level` as written (ProcessFailed shows the error only at DEBUG, as PyWPS).
    pub log_level_name: String,
    /// `[logging] file`, if set: PyWPS's `FileHandler` on the logger `PYWPS`.
    pub log_file: Option<Value>,
    /// `[logging] format` (read raw, as PyWPS's RAW_OPTIONS).
    pub log_format: String,
    /// `[logging] database`, if set in a file (not used: jobs are tracked in memory).
    pub log_database: Option<Value>,
    /// The files read, in order.
    pub files: Vec<PathBuf>,
}

/// PyWPS's `get_size_mb`: a number with an optional unit (`g`, `m`, `k`; `b` or nothing means
/// megabytes: `3` is 3 MiB), in bytes.
pub fn parse_size_mb(text: &str) -> Option<u64> {
    let bytes = size_mb(text)? * 1024.0 * 1024.0;
    (bytes < 1e18).then_some(bytes as u64)
}

/// PyWPS's `get_size_mb` itself: the size in megabytes.
pub fn size_mb(text: &str) -> Option<f64> {
    let t = text.trim().to_ascii_lowercase();
    let cut = t.find(['g', 'm', 'k', 'b']).unwrap_or(t.len());
    let n: f64 = t[..cut].trim().parse().ok()?;
    if !n.is_finite() || n < 0.0 {
        return None;
    }
    let mb = if t.contains('g') {
        n * 1024.0
    } else if t.contains('m') {
        n
    } else if t.contains('k') {
        n / 1024.0
    } else {
        n
    };
    Some(mb)
}

/// The configuration files, merged as ConfigParser's `read([...])`.
struct Files {
    files: Vec<IniFile>,
}

impl Files {
    /// The raw entry of `key` in `section`: the last file that has it wins.
    fn raw(&self, section: &str, key: &str) -> Option<(&IniFile, &str, Location)> {
        for f in self.files.iter().rev() {
            let Some(s) = f.section(section) else {
                continue;
            };
            if let Some(e) = s.get_ignore_ascii_case(key) {
                return Some((f, &e.value, f.entry_location(s, e)));
            }
        }
        None
    }

    /// The interpolated value of a key that some file sets.
    fn get(&self, section: &str, key: &str) -> Result<Option<Value>, ConfigError> {
        let Some((file, raw, location)) = self.raw(section, key) else {
            return Ok(None);
        };
        // RAW_OPTIONS: [logging] format is read raw.
        if section == "logging" && key == "format" {
            return Ok(Some(Value {
                text: raw.to_string(),
                location: Some(location),
                here: Some(file.here.clone()),
            }));
        }
        let lookup = |name: &str| -> Option<Found<'_>> {
            let name = name.to_ascii_lowercase();
            if let Some((_, v, _)) = self.raw(section, &name) {
                return Some(Found::Raw(v));
            }
            if let Some((_, v, _)) = self.raw("DEFAULT", &name) {
                return Some(Found::Raw(v));
            }
            // ConfigParser(os.environ): the environment is the defaults, keys lower-cased.
            std::env::vars()
                .find(|(k, _)| k.to_ascii_lowercase() == name)
                .map(|(_, v)| Found::Literal(v))
        };
        let text =
            interpolate(raw, &lookup).map_err(|m| location.error(format!("key '{key}': {m}")))?;
        Ok(Some(Value {
            text: expandvars(&text),
            location: Some(location),
            here: Some(file.here.clone()),
        }))
    }
}

/// Python's `os.path.expandvars`: `$NAME` and `${NAME}` replaced by the environment variable
/// when it is set, left as written otherwise (a rule of Python's, not ConfigParser's: no crate
/// does exactly this, it is a dozen lines).
pub fn expandvars(s: &str) -> String {
    if !s.contains('$') {
        return s.to_string();
    }
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(p) = rest.find('$') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        let (name, consumed) = if let Some(braced) = after.strip_prefix('{') {
            match braced.find('}') {
                Some(end) => (&braced[..end], end + 2),
                None => ("", 0),
            }
        } else {
            let end = after.find(|c| !is_name(c)).unwrap_or(after.len());
            (&after[..end], end)
        };
        match (!name.is_empty())
            .then(|| std::env::var(name).ok())
            .flatten()
        {
            Some(v) => {
                out.push_str(&v);
                rest = &after[consumed..];
            }
            None => {
                out.push('$');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

impl WpsConfig {
    /// PyWPS's hard-coded configuration, nothing read.
    pub fn defaults() -> WpsConfig {
        Self::from_files(Files { files: Vec::new() }).unwrap_or_else(|_| unreachable_defaults())
    }

    /// Read and merge `paths` (later ones override earlier ones). `origin` is where the list
    /// was written (the ini's `pywps_cfg`), for a file that cannot be read.
    pub fn load(paths: &[PathBuf], origin: &Location) -> Result<WpsConfig, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let mut files = Vec::new();
        for p in paths {
            match IniFile::read(p) {
                Ok(f) => files.push(f),
                Err(e) => {
                    errors.push(origin.error(format!("pywps_cfg: cannot use {}", p.display())));
                    errors.extend(e);
                }
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let mut cfg = Self::from_files(Files { files })?;
        cfg.files = paths.to_vec();
        Ok(cfg)
    }

    fn from_files(files: Files) -> Result<WpsConfig, ConfigErrors> {
        let mut errors = ConfigErrors::new();
        let tmp = std::env::temp_dir();
        let mut get = |section: &str, key: &str| -> Option<Value> {
            match files.get(section, key) {
                Ok(v) => v,
                Err(e) => {
                    errors.push(e);
                    None
                }
            }
        };
        let text = |v: &Option<Value>, default: &str| -> String {
            v.as_ref()
                .map_or_else(|| default.to_string(), |v| v.text.clone())
        };
        let path = |v: &Option<Value>, default: &Path| -> PathBuf {
            match v {
                Some(v) => {
                    let p = PathBuf::from(v.text.trim());
                    match (&v.here, p.is_relative()) {
                        (Some(here), true) => here.join(p),
                        _ => p,
                    }
                }
                None => default.to_path_buf(),
            }
        };
        let list = |s: &str| -> Vec<String> {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        };

        let url = get("server", "url");
        let outputurl = get("server", "outputurl");
        let outputpath = get("server", "outputpath");
        let workdir = get("server", "workdir");
        let temp_path = get("server", "temp_path");
        let single = get("server", "maxsingleinputsize");
        let request = get("server", "maxrequestsize");
        let parallel = get("server", "parallelprocesses");
        let maxproc = get("server", "maxprocesses");
        let language = get("server", "language");
        let allowed = get("server", "allowedinputpaths");
        let clean = get("server", "cleantempdir");
        let level = get("logging", "level");
        let log_file = get("logging", "file").filter(|v| !v.text.trim().is_empty());
        let log_format =
            get("logging", "format").map_or_else(|| DEFAULT_LOG_FORMAT.to_string(), |v| v.text);
        let log_database = get("logging", "database");

        let mut m = |key: &str, default: &str| text(&get("metadata:main", key), default);
        let metadata = Metadata {
            identification_title: m("identification_title", "PyWPS Processing Service"),
            identification_abstract: m(
                "identification_abstract",
                "PyWPS is an implementation of the Web Processing Service standard from the Open Geospatial Consortium. PyWPS is written in Python.",
            ),
            identification_keywords: list(&m("identification_keywords", "PyWPS,WPS,OGC,processing")),
            identification_keywords_type: list(&m("identification_keywords_type", "theme")),
            identification_fees: m("identification_fees", "NONE"),
            identification_accessconstraints: list(&m("identification_accessconstraints", "NONE")),
            provider_name: m("provider_name", "Organization Name"),
            provider_url: m("provider_url", "https://pywps.org/"),
            contact_name: m("contact_name", "Lastname, Firstname"),
            contact_position: m("contact_position", "Position Title"),
            contact_address: m("contact_address", "Mailing Address"),
            contact_city: m("contact_city", "City"),
            contact_stateorprovince: m("contact_stateorprovince", "Administrative Area"),
            contact_postalcode: m("contact_postalcode", "Zip or Postal Code"),
            contact_country: m("contact_country", "Country"),
            contact_phone: m("contact_phone", "+xx-xxx-xxx-xxxx"),
            contact_fax: m("contact_fax", "+xx-xxx-xxx-xxxx"),
            contact_email: m("contact_email", "Email Address"),
            contact_url: m("contact_url", "Contact URL"),
            contact_hours: m("contact_hours", "Hours of Service"),
            contact_instructions: m(
                "contact_instructions",
                "During hours of service.  Off on weekends.",
            ),
            contact_role: m("contact_role", "pointOfContact"),
        };

        let mut errors2 = ConfigErrors::new();
        let mut size = |v: &Option<Value>, key: &str, default: &str| -> u64 {
            let t = text(v, default);
            match parse_size_mb(&t) {
                Some(n) => n,
                None => {
                    errors2.push(bad(
                        v,
                        key,
                        &t,
                        "a size such as 1mb, 500kb, 2gb or 3 (megabytes)",
                    ));
                    parse_size_mb(default).unwrap_or(0)
                }
            }
        };
        let maxsingleinputsize = size(&single, "maxsingleinputsize", "1mb");
        let maxrequestsize = size(&request, "maxrequestsize", "3mb");
        let maxsingleinputsize_mb = size_mb(&text(&single, "1mb")).unwrap_or(1.0);
        let maxrequestsize_mb = size_mb(&text(&request, "3mb")).unwrap_or(3.0);
        let mut int = |v: &Option<Value>, key: &str, default: i64| -> i64 {
            match v {
                None => default,
                Some(x) => match x.text.trim().parse::<i64>() {
                    Ok(n) if (-1..=1_000_000).contains(&n) => n,
                    _ => {
                        errors2.push(bad(
                            v,
                            key,
                            &x.text,
                            "a whole number from -1 (no limit) to 1000000",
                        ));
                        default
                    }
                },
            }
        };
        let parallelprocesses = int(&parallel, "parallelprocesses", 2);
        let maxprocesses = int(&maxproc, "maxprocesses", 30);
        let level_text = text(&level, "DEBUG");
        let log_level = match mapproxy_serve_core::config::parse_level(level_text.trim()) {
            Ok(l) => l,
            Err(msg) => {
                errors2.push(bad(&level, "level", &level_text, &msg));
                10
            }
        };
        let cleantempdir = match clean.as_ref().map(|v| v.text.trim().to_ascii_lowercase()) {
            None => true,
            Some(t) if t == "false" => false,
            Some(_) => true,
        };
        let languages = {
            let l = list(&text(&language, "en-US"));
            if l.is_empty() {
                vec!["en-US".to_string()]
            } else {
                l
            }
        };
        let allowedinputpaths = text(&allowed, "")
            .split(':')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        let outputpath_p = path(&outputpath, &tmp);
        let mut outputurl = text(
            &outputurl,
            &format!("file://{}", outputpath_p.to_string_lossy()),
        );
        if !outputurl.ends_with('/') {
            outputurl.push('/');
        }
        errors.extend(errors2);
        let cfg = WpsConfig {
            url: text(&url, "http://localhost/wps"),
            outputurl,
            outputpath: outputpath_p,
            workdir: path(&workdir, &tmp),
            temp_path: path(&temp_path, &tmp),
            maxsingleinputsize,
            maxrequestsize,
            maxsingleinputsize_mb,
            maxrequestsize_mb,
            parallelprocesses,
            maxprocesses,
            languages,
            allowedinputpaths,
            cleantempdir,
            metadata,
            log_level,
            log_level_name: level_text.trim().to_string(),
            log_file,
            log_format,
            log_database: log_database.filter(|v| v.location.is_some()),
            files: Vec::new(),
        };
        errors.into_result(cfg)
    }
}

/// PyWPS's default `[logging] format`.
pub const DEFAULT_LOG_FORMAT: &str = "%(asctime)s] [%(levelname)s] file=%(pathname)s line=%(lineno)s module=%(module)s function=%(funcName)s %(message)s";

fn bad(v: &Option<Value>, key: &str, text: &str, expected: &str) -> ConfigError {
    let msg = format!("key '{key}': {text:?} is not {expected}");
    match v.as_ref().and_then(|v| v.location.as_ref()) {
        Some(loc) => loc.error(msg),
        None => ConfigError::new(msg),
    }
}

fn unreachable_defaults() -> WpsConfig {
    // The defaults parse; this is only reached if a default above were broken.
    panic!("PyWPS's default configuration does not parse")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_as_pywps() {
        assert_eq!(parse_size_mb("1mb"), Some(1 << 20));
        assert_eq!(parse_size_mb("3"), Some(3 << 20));
        assert_eq!(parse_size_mb("512kb"), Some(512 << 10));
        assert_eq!(parse_size_mb("2GB"), Some(2 << 30));
        assert_eq!(parse_size_mb("0.5mb"), Some(1 << 19));
        assert_eq!(parse_size_mb("lots"), None);
    }

    #[test]
    fn defaults_are_pywps() {
        let c = WpsConfig::defaults();
        assert_eq!(c.url, "http://localhost/wps");
        assert_eq!(c.parallelprocesses, 2);
        assert_eq!(c.maxprocesses, 30);
        assert_eq!(c.maxsingleinputsize, 1 << 20);
        assert_eq!(c.maxrequestsize, 3 << 20);
        assert_eq!(c.languages, ["en-US"]);
        assert_eq!(c.metadata.provider_name, "Organization Name");
        assert_eq!(c.log_level, 10);
    }

    #[test]
    fn later_file_wins_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.cfg");
        let b = dir.path().join("b.cfg");
        std::fs::write(
            &a,
            "[server]\nurl = http://a/wps\nmaxprocesses = 5\noutputpath = out\n",
        )
        .unwrap();
        std::fs::write(&b, "[server]\nURL = http://b/%(prefix)s\nprefix = wps\n").unwrap();
        let origin = Location::in_section("x.ini", 3, "app:wps");
        let c = WpsConfig::load(&[a.clone(), b.clone()], &origin).unwrap();
        assert_eq!(c.url, "http://b/wps");
        assert_eq!(c.maxprocesses, 5);
        assert_eq!(c.outputpath, dir.path().join("out"));
        std::fs::write(&b, "[server]\n\nparallelprocesses = many\n").unwrap();
        let e = WpsConfig::load(&[a, b.clone()], &origin)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!(
                "{}:3: [server] key 'parallelprocesses'",
                b.display()
            )),
            "{e}"
        );
        let e = WpsConfig::load(&[dir.path().join("nope.cfg")], &origin)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("x.ini:3: [app:wps] pywps_cfg: cannot use"),
            "{e}"
        );
    }

    #[test]
    fn expandvars_as_python() {
        std::env::set_var("WPS_TEST_HOST", "example.org");
        assert_eq!(
            expandvars("http://${WPS_TEST_HOST}/$WPS_TEST_HOST/x"),
            "http://example.org/example.org/x"
        );
        assert_eq!(expandvars("$NOPE_NOT_SET_42 ${x"), "$NOPE_NOT_SET_42 ${x");
    }
}
