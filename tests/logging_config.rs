//! Reading the logging sections (no global logger involved): what is accepted, and errors
//! that name file:line and section.

use std::path::Path;

use mapproxy_serve::ini::{IniFile, Vars};
use mapproxy_serve::logging::{LoggingConfig, LOG_INI_TEMPLATE};

fn read(text: &str) -> Result<Option<LoggingConfig>, String> {
    let file = IniFile::parse_str(Path::new("/etc/mp/log.ini"), text).map_err(|e| e.to_string())?;
    LoggingConfig::from_ini(&file, &Vars::default()).map_err(|e| e.to_string())
}

#[test]
fn no_loggers_section_is_none() {
    assert!(read("[app:main]\nuse = egg:x#y\n").unwrap().is_none());
}

#[test]
fn template_reads_with_here() {
    let cfg = read(LOG_INI_TEMPLATE).unwrap().unwrap();
    let files: Vec<String> = cfg
        .files()
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    assert_eq!(
        files,
        ["/etc/mp/mapproxy.log", "/etc/mp/source-requests.log"]
    );
}

#[test]
fn keys_are_case_insensitive_and_default_visible() {
    let text = "\
[DEFAULT]
logdir = %(here)s/logs
[loggers]
Keys = root
[handlers]
KEYS = file
[formatters]
keys =
[logger_root]
LEVEL = DEBUG
handlers = file
[handler_file]
Class = handlers.RotatingFileHandler
ARGS = ('%(LOGDIR)s/app.log', 'a')
kwargs = {'maxBytes': 10*1024*1024, 'backupCount': 5}
";
    let cfg = read(text).unwrap().unwrap();
    assert_eq!(cfg.files()[0], Path::new("/etc/mp/logs/app.log"));
}

#[test]
fn command_line_values_reach_args() {
    let text = "[loggers]\nkeys=root\n[handlers]\nkeys=f\n[formatters]\nkeys=\n\
                [logger_root]\nhandlers=f\n[handler_f]\nclass=FileHandler\nargs=('%(logdir)s/x.log',)\n";
    let file = IniFile::parse_str(Path::new("/etc/mp/log.ini"), text).unwrap();
    let mut vars = Vars::default();
    vars.overrides.insert("logdir".into(), "/var/log/mp".into());
    let cfg = LoggingConfig::from_ini(&file, &vars).unwrap().unwrap();
    assert_eq!(cfg.files()[0], Path::new("/var/log/mp/x.log"));
}

#[test]
fn all_errors_are_collected_with_file_line_section() {
    let text = "\
[loggers]
keys = root, app, ghost
[handlers]
keys = console, sock, file, rot
[formatters]
keys = generic, bad
[logger_root]
level = info
handlers = console, nope
[logger_app]
handlers =
propagate = maybe
[handler_console]
class = StreamHandler
args = (sys.stdin,)
formatter = missing
[handler_sock]
class = handlers.SocketHandler
args = ('localhost', 9020)
[handler_file]
class = FileHandler
args = (os.path.join('a', 'b'),)
[handler_rot]
class = handlers.RotatingFileHandler
args = ('x.log', 'a', 1024)
kwargs = {'maxbytes': 3}
[formatter_generic]
format = %(asctime)s %(levelname)-5.5s %(nope)s
[formatter_bad]
format = %(message)s
style = {
";
    let err = read(text).unwrap_err();
    let expect = [
        "/etc/mp/log.ini:2: [loggers] logger 'ghost' is listed but there is no [logger_ghost] section",
        "/etc/mp/log.ini:8: [logger_root] level: unknown level 'info' (level names are upper case: 'INFO')",
        "/etc/mp/log.ini:9: [logger_root] handler 'nope' is not listed",
        "/etc/mp/log.ini:10: [logger_app] missing key 'qualname'",
        "/etc/mp/log.ini:12: [logger_app] propagate must be an integer",
        "/etc/mp/log.ini:15: [handler_console] args: 'sys.stdin' is a Python name",
        "/etc/mp/log.ini:16: [handler_console] formatter 'missing' is not listed",
        "/etc/mp/log.ini:18: [handler_sock] handler class 'handlers.SocketHandler' is not supported (supported: StreamHandler, FileHandler, NullHandler, handlers.RotatingFileHandler",
        "/etc/mp/log.ini:22: [handler_file] args: 'os.path.join' is a Python name",
        "/etc/mp/log.ini:26: [handler_rot] kwargs: RotatingFileHandler has no argument 'maxbytes'",
        "/etc/mp/log.ini:28: [formatter_generic] format: unknown field %(nope)s",
        "/etc/mp/log.ini:31: [formatter_bad] style '{' is not supported",
    ];
    for e in expect {
        assert!(err.contains(e), "missing error {e:?} in:\n{err}");
    }
    // A broken handler is reported once, not again where a logger uses it.
    assert!(!err.contains("handler 'console'"), "{err}");
    assert_eq!(err.lines().count(), expect.len(), "{err}");
}

#[test]
fn missing_sections_and_root() {
    let err = read("[loggers]\nkeys = app\n[logger_app]\nqualname=a\nhandlers=\n").unwrap_err();
    assert!(
        err.contains(
            "/etc/mp/log.ini:1: [loggers] there is a [loggers] section but no [formatters] section"
        ),
        "{err}"
    );
    assert!(err.contains("no [handlers] section"), "{err}");
    assert!(
        err.contains("/etc/mp/log.ini:2: [loggers] keys must include 'root'"),
        "{err}"
    );
}

#[test]
fn args_forms() {
    let base = "[loggers]\nkeys=root\n[handlers]\nkeys=h\n[formatters]\nkeys=\n[logger_root]\nhandlers=h\n[handler_h]\n";
    for ok in [
        "class=StreamHandler\n",
        "class=StreamHandler\nargs=()\n",
        "class=logging.StreamHandler\nargs=(sys.stdout,)\n",
        "class=NullHandler\n",
        "class=handlers.WatchedFileHandler\nargs=('/tmp/x.log',)\n",
        "class=logging.handlers.TimedRotatingFileHandler\nargs=('/tmp/x.log', 'midnight', 1, 7)\n",
        "class=handlers.TimedRotatingFileHandler\nargs=('/tmp/x.log',)\nkwargs={'when': 'W6', 'utc': True}\n",
        "class=FileHandler\nargs=('/tmp/x.log', 'w', 'utf-8', True)\n",
        "class=FileHandler\nargs='/tmp/x.log', 'a'\n",
    ] {
        read(&format!("{base}{ok}")).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    for (bad, msg) in [
        ("class=FileHandler\n", "FileHandler needs a file name"),
        (
            "class=FileHandler\nargs=('/tmp/x.log')\n",
            "args must be a tuple",
        ),
        (
            "class=FileHandler\nargs=('/tmp/x.log', 'r')\n",
            "mode 'r' is not supported",
        ),
        (
            "class=FileHandler\nargs=('/tmp/x.log', 'a', 'latin-1')\n",
            "encoding 'latin-1'",
        ),
        (
            "class=handlers.TimedRotatingFileHandler\nargs=('/tmp/x.log', 'W7')\n",
            "when 'W7'",
        ),
        (
            "class=StreamHandler\nargs=(sys.stdout, 1)\n",
            "takes at most 1 arguments",
        ),
        ("class=StreamHandler\nlevel=LOUD\n", "unknown level 'LOUD'"),
        ("class=StreamHandler\nargs=('%(nothere)s',)\n", "nothere"),
    ] {
        let err = read(&format!("{base}{bad}")).unwrap_err();
        assert!(err.contains(msg), "{bad}: {err}");
        assert!(err.contains("/etc/mp/log.ini:"), "{err}");
    }
}

// ---- a factory's logging file (MapProxy's `log_conf`) ----------------------------------

mod logging_file {
    use std::path::Path;

    use clap::Parser;
    use mapproxy_serve::app::{app_fn, text_response, App};
    use mapproxy_serve::build::BuildContext;
    use mapproxy_serve::cli::{run, Cli};
    use mapproxy_serve::config::FactoryConf;
    use mapproxy_serve::error::ConfigErrors;
    use mapproxy_serve::register_factory;
    use mapproxy_serve::registry::{Build, Factory, Opt};

    /// An app that asks for its `log_conf` as MapProxy's app does.
    fn with_log_conf(conf: &FactoryConf, ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
        if let Some(path) = conf.get_path("log_conf") {
            ctx.logging_file(conf.location_of("log_conf"), path);
        }
        Ok(app_fn(|_req| async {
            text_response(http::StatusCode::OK, "text/plain", "ok")
        }))
    }

    register_factory!(Factory {
        eggs: &["LogConfTest#app"],
        options: &[Opt::new("log_conf", "a logging configuration file")],
        build: Build::App(with_log_conf),
        ..Factory::DEFAULT
    });

    fn check(dir: &Path, log_conf: &str) -> i32 {
        let ini = dir.join("config.ini");
        std::fs::write(
            &ini,
            format!("[app:main]\nuse = egg:LogConfTest#app\nlog_conf = {log_conf}\n"),
        )
        .unwrap();
        run(Cli::parse_from([
            "mapproxy-serve",
            "check",
            ini.to_str().unwrap(),
        ]))
    }

    #[test]
    fn log_conf_may_name_a_log4rs_yaml_or_an_ini_file() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("log.yaml"),
            "appenders:\n  e:\n    kind: console\n    target: stderr\n    encoder:\n      \
             kind: python\n      format: \"%(levelname)s %(message)s\"\n\
             root:\n  level: info\n  appenders: [e]\n",
        )
        .unwrap();
        assert_eq!(check(d, "%(here)s/log.yaml"), 0);
        // not log4rs's structure: an error (exit 2), as a bad ini file's logging sections
        std::fs::write(d.join("bad.yml"), "appenders: [1, 2\n").unwrap();
        assert_eq!(check(d, "%(here)s/bad.yml"), 2);
        std::fs::write(d.join("unknown.yaml"), "loggerz: {}\n").unwrap();
        assert_eq!(check(d, "%(here)s/unknown.yaml"), 2);
        // an ini file with Python's fileConfig sections (MapProxy's log.ini)
        std::fs::write(d.join("log.ini"), super::LOG_INI_TEMPLATE).unwrap();
        assert_eq!(check(d, "%(here)s/log.ini"), 0);
        std::fs::write(d.join("nolog.ini"), "[app:x]\nk = v\n").unwrap();
        assert_eq!(check(d, "%(here)s/nolog.ini"), 2);
        assert_eq!(check(d, "%(here)s/missing.ini"), 2);
    }
}
