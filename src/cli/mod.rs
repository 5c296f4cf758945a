//! The `mapproxy-serve` command line: serve, check, inspect, appconfig, list-factories, create,
//! and MapProxy's serve-develop, serve-multiapp-develop, grids and seed.
//!
//! A binary that links extra factory crates calls [`main`] to get the whole command line:
//!
//! ```no_run
//! // use my_filters as _;   // link the crate so its factories register
//! mapproxy_serve::cli::main()
//! ```
//!
//! Exit status: 0 clean stop, 2 configuration or usage error, 1 other failure.

mod create;
mod develop;
mod grids;
mod seed;
mod serve;

use std::io::Write;

use clap::{Args, Parser, Subcommand};
use indexmap::IndexMap;

use crate::deploy::{self, Deployment};
use crate::error::{ConfigError, ConfigErrors};
use crate::registry::registry;

pub use create::TEMPLATES;

/// Compose and serve HTTP apps from a Paste Deploy ini file.
#[derive(Parser, Debug)]
#[command(
    name = "mapproxy-serve",
    version,
    about,
    args_conflicts_with_subcommands = true
)]
#[command(
    after_help = "CONFIG_URI is FILE.ini, FILE.ini#name or config:FILE.ini#name. \
NAME=VALUE values are in every global_conf and win over [DEFAULT] in %(NAME)s."
)]
pub struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

/// `mapproxy-serve [OPTIONS] CONFIG_URI [NAME=VALUE ...]`
#[derive(Args, Debug, Default, Clone)]
pub struct ServeArgs {
    /// The config file (FILE.ini, FILE.ini#name, config:FILE.ini#name)
    #[arg(value_name = "CONFIG_URI")]
    pub config_uri: Option<String>,
    /// NAME=VALUE values for %(NAME)s and global_conf
    #[arg(value_name = "NAME=VALUE")]
    pub vars: Vec<String>,
    /// The app to serve (default: the URI's #name, else main)
    #[arg(short = 'n', long = "app-name", value_name = "NAME")]
    pub app_name: Option<String>,
    /// The server section to use (default: the URI's #name, else main)
    #[arg(short = 's', long = "server-name", value_name = "NAME")]
    pub server_name: Option<String>,
    /// Listen here instead of the server section's address: PORT, :PORT, HOST:PORT, [V6]:PORT, unix:/PATH (repeatable)
    #[arg(short = 'b', long = "bind", value_name = "ADDR")]
    pub bind: Vec<String>,
    /// Rebuild the whole composition when a file it read changes
    #[arg(long)]
    pub reload: bool,
    /// Show panic messages and backtraces in 500 responses; debug logging
    #[arg(long)]
    pub debug: bool,
    /// More output (repeatable)
    #[arg(short = 'v', long = "verbose", action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Less output (repeatable)
    #[arg(short = 'q', long = "quiet", action = clap::ArgAction::Count)]
    pub quiet: u8,
    /// Write the process id to this file (removed on exit)
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_file: Option<std::path::PathBuf>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Build everything, bind nothing, report every error (exit 2 on any)
    Check {
        /// The config file
        config_uri: String,
        /// NAME=VALUE values
        vars: Vec<String>,
        #[arg(short = 'n', long = "app-name")]
        app_name: Option<String>,
        #[arg(short = 's', long = "server-name")]
        server_name: Option<String>,
    },
    /// Print the resolved composition tree
    Inspect {
        /// The config file
        config_uri: String,
        /// NAME=VALUE values
        vars: Vec<String>,
        /// JSON instead of text
        #[arg(long)]
        json: bool,
        #[arg(short = 'n', long = "app-name")]
        app_name: Option<String>,
    },
    /// Print one app's local_conf and global_conf, as Paste's appconfig gives them
    Appconfig {
        /// The config file (FILE.ini or FILE.ini#name)
        config_uri: String,
        /// NAME=VALUE values
        vars: Vec<String>,
        /// JSON instead of text
        #[arg(long)]
        json: bool,
        #[arg(short = 'n', long = "app-name")]
        app_name: Option<String>,
    },
    /// List every registered egg name, its kind and options
    ListFactories {
        /// JSON instead of text
        #[arg(long)]
        json: bool,
    },
    /// Serve a mapproxy.yaml as MapProxy's serve-develop does (reloads on edits)
    ServeDevelop {
        /// The MapProxy configuration
        mapproxy_conf: std::path::PathBuf,
        #[command(flatten)]
        server: DevelopServer,
    },
    /// Serve a directory of MapProxy configurations (MultiMapProxy, listing on), reloading
    ServeMultiappDevelop {
        /// The directory of MapProxy configurations
        projects_dir: std::path::PathBuf,
        #[command(flatten)]
        server: DevelopServer,
    },
    /// Show the grids of a mapproxy.yaml as MapProxy's `mapproxy-util grids` does
    Grids {
        /// The MapProxy configuration
        mapproxy_conf: Option<std::path::PathBuf>,
        /// The MapProxy configuration (MapProxy's -f; instead of the argument)
        #[arg(
            short = 'f',
            long = "mapproxy-conf",
            value_name = "FILE",
            conflicts_with = "mapproxy_conf"
        )]
        conf_option: Option<std::path::PathBuf>,
        /// Only this grid (of all grids; case is ignored)
        #[arg(short = 'g', long = "grid", value_name = "NAME")]
        grid: Option<String>,
        /// The names only
        #[arg(short = 'l', long = "list")]
        list: bool,
        /// Also the grids no cache uses, and the built-in ones
        #[arg(short = 'a', long = "all")]
        all: bool,
    },
    /// Seed and clean up caches as MapProxy's mapproxy-seed (-f mapproxy.yaml -s seed.yaml)
    Seed(seed::SeedArgs),
    /// Write an ini template (or, with -t base-config DIR, a MapProxy project)
    Create {
        /// The template: develop, production, urlmap, fcgi, log-ini, base-config
        #[arg(short = 't', long = "template")]
        template: Option<String>,
        /// Where to write it
        dest: Option<std::path::PathBuf>,
        /// Overwrite an existing file
        #[arg(long)]
        force: bool,
        /// List the templates
        #[arg(short = 'l', long = "list")]
        list: bool,
    },
}

/// `println!` that ignores a closed stdout (`mapproxy-serve list-factories | head`).
macro_rules! outln {
    ($($arg:tt)*) => {{
        let _ = writeln!(std::io::stdout(), $($arg)*);
    }};
}

/// `print!` that ignores a closed stdout.
macro_rules! out {
    ($($arg:tt)*) => {{
        let _ = write!(std::io::stdout(), $($arg)*);
    }};
}

/// Exit status for configuration and usage errors.
pub const EXIT_CONFIG: i32 = 2;

/// The server options of `serve-develop` and `serve-multiapp-develop`.
#[derive(Args, Debug, Clone)]
pub struct DevelopServer {
    /// Listen here: PORT, :PORT, HOST, HOST:PORT (MapProxy's -b)
    #[arg(
        short = 'b',
        long = "bind",
        value_name = "ADDR",
        default_value = "127.0.0.1:8080"
    )]
    bind: String,
    /// Show panic messages and backtraces in 500 responses; debug logging
    #[arg(long)]
    debug: bool,
}

/// Parse `NAME=VALUE` arguments (a missing `=` is a usage error).
pub fn parse_vars(vars: &[String]) -> Result<IndexMap<String, String>, ConfigError> {
    let mut out = IndexMap::new();
    for v in vars {
        match v.split_once('=') {
            Some((k, val)) if !k.trim().is_empty() => {
                out.insert(k.trim().to_string(), val.to_string());
            }
            _ => {
                return Err(ConfigError::new(format!(
                    "variable assignment '{v}' invalid (no \"=\"): write NAME=VALUE"
                )))
            }
        }
    }
    Ok(out)
}

/// Print errors, one per line, on stderr.
pub fn print_errors(errs: &ConfigErrors) {
    let mut e = std::io::stderr().lock();
    for err in &errs.0 {
        let _ = writeln!(e, "{err}");
    }
}

fn print_warnings(warnings: &[ConfigError]) {
    let mut seen = std::collections::HashSet::new();
    let mut e = std::io::stderr().lock();
    for w in warnings {
        let s = w.to_string();
        if seen.insert(s.clone()) {
            let _ = writeln!(e, "warning: {s}");
        }
    }
}

/// Run the command line with the process arguments and exit.
pub fn main() {
    let cli = Cli::parse();
    std::process::exit(run(cli));
}

/// Run a parsed command line; returns the exit status.
pub fn run(cli: Cli) -> i32 {
    if let Err(e) = registry().check() {
        print_errors(&e);
        return EXIT_CONFIG;
    }
    match cli.command {
        Some(Command::Check {
            config_uri,
            vars,
            app_name,
            server_name,
        }) => check(
            &config_uri,
            &vars,
            app_name.as_deref(),
            server_name.as_deref(),
        ),
        Some(Command::Inspect {
            config_uri,
            vars,
            json,
            app_name,
        }) => inspect(&config_uri, &vars, json, app_name.as_deref()),
        Some(Command::Appconfig {
            config_uri,
            vars,
            json,
            app_name,
        }) => appconfig(&config_uri, &vars, json, app_name.as_deref()),
        Some(Command::ListFactories { json }) => list_factories(json),
        Some(Command::ServeDevelop {
            mapproxy_conf,
            server,
        }) => develop::run(
            develop::Kind::App,
            &mapproxy_conf,
            &server.bind,
            server.debug,
        ),
        Some(Command::ServeMultiappDevelop {
            projects_dir,
            server,
        }) => develop::run(
            develop::Kind::MultiApp,
            &projects_dir,
            &server.bind,
            server.debug,
        ),
        Some(Command::Grids {
            mapproxy_conf,
            conf_option,
            grid,
            list,
            all,
        }) => match conf_option.or(mapproxy_conf) {
            Some(conf) => grids::run(conf, grid, list, all),
            None => {
                eprintln!("mapproxy-serve grids: give the MapProxy configuration: grids mapproxy.yaml (or -f mapproxy.yaml)");
                EXIT_CONFIG
            }
        },
        Some(Command::Seed(args)) => seed::run(args),
        Some(Command::Create {
            template,
            dest,
            force,
            list,
        }) => create::run(template, dest, force, list),
        None => match cli.serve.config_uri.clone() {
            Some(_) => serve::run(cli.serve),
            None => {
                eprintln!("mapproxy-serve: you must give a config file (mapproxy-serve CONFIG_URI; --help for more)");
                EXIT_CONFIG
            }
        },
    }
}

fn vars_or_exit(vars: &[String]) -> Result<IndexMap<String, String>, i32> {
    parse_vars(vars).map_err(|e| {
        eprintln!("mapproxy-serve: {e}");
        EXIT_CONFIG
    })
}

fn check(uri: &str, vars: &[String], app_name: Option<&str>, server_name: Option<&str>) -> i32 {
    let vars = match vars_or_exit(vars) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let d = match Deployment::resolve(uri, app_name, server_name, &vars) {
        Ok(d) => d,
        Err(e) => {
            print_errors(&e);
            return EXIT_CONFIG;
        }
    };
    print_warnings(&d.warnings);
    let mut errs = ConfigErrors::new();
    errs.take(serve::logging_config(&d, &vars));
    let built = errs.take(build_once(&d)).flatten();
    if let Some(b) = &built {
        errs.take(serve::logging_file_config(&b.context.logging_files, &vars));
    }
    if let Some(s) = &d.server {
        errs.take(s.build_server());
    }
    let files = match &built {
        Some(b) => {
            print_warnings(&b.context.warnings);
            d.all_files(&b.context).len()
        }
        None => d.files.len(),
    };
    if errs.is_empty() {
        eprintln!("{}: ok ({} file(s) read)", uri, files);
        0
    } else {
        print_errors(&errs);
        EXIT_CONFIG
    }
}

/// Build the app once, as serving would, on a runtime of its own that is dropped afterwards
/// (`check`, `inspect`); the factories' shutdown work runs before it is. `Ok(None)`: no
/// runtime could be started (said on stderr).
fn build_once(d: &Deployment) -> Result<Option<deploy::BuiltApp>, ConfigErrors> {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mapproxy-serve: cannot start a runtime to build the app: {e}");
            return Ok(None);
        }
    };
    let mut built = d.build_app(rt.handle())?;
    let mut shutdown = std::mem::take(&mut built.context.shutdown);
    rt.block_on(async move {
        for hook in shutdown.drain(..) {
            hook.await;
        }
    });
    Ok(Some(built))
}

fn inspect(uri: &str, vars: &[String], json: bool, app_name: Option<&str>) -> i32 {
    let vars = match vars_or_exit(vars) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let d = match Deployment::resolve(uri, app_name, None, &vars) {
        Ok(d) => d,
        Err(e) => {
            print_errors(&e);
            return EXIT_CONFIG;
        }
    };
    print_warnings(&d.warnings);
    // The files the factories read are known once they have run.
    let files = match build_once(&d) {
        Ok(Some(b)) => {
            print_warnings(&b.context.warnings);
            d.all_files(&b.context)
        }
        Ok(None) => d.files.clone(),
        Err(e) => {
            eprintln!("mapproxy-serve: the app does not build, so the files its factories read are not listed:");
            print_errors(&e);
            d.files.clone()
        }
    };
    if json {
        let v = serde_json::json!({
            "app": d.app.to_json(),
            "server": d.server.as_ref().map(|s| s.to_json()),
            "files": files.iter().map(|f| f.display().to_string()).collect::<Vec<_>>(),
        });
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        out!("{}", d.app.to_text());
        if let Some(s) = &d.server {
            out!("{}", s.to_text());
        }
        outln!("files read:");
        for f in &files {
            outln!("  {}", f.display());
        }
    }
    0
}

fn appconfig(uri: &str, vars: &[String], json: bool, app_name: Option<&str>) -> i32 {
    let vars = match vars_or_exit(vars) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match deploy::app_config_with_warnings(uri, app_name, &vars) {
        Ok((conf, warnings)) => {
            print_warnings(&warnings);
            // What Paste would only find when the factory is called: said, not fatal. No
            // factory is called here either (building may have side effects); values are
            // checked only when the app is built (`check`).
            let refused = deploy::app_refusals(uri, app_name, &vars);
            if !refused.is_empty() {
                eprintln!(
                    "warning: 'check' and serving refuse this app (appconfig shows its options anyway, as Paste's does):"
                );
                print_warnings(&refused);
            }
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&conf).unwrap_or_default()
                );
            } else {
                outln!("[local_conf]");
                for (k, v) in &conf.local_conf {
                    outln!("{k} = {}", v.replace('\n', "\n    "));
                }
                outln!("\n[global_conf]");
                for (k, v) in &conf.global_conf {
                    outln!("{k} = {}", v.replace('\n', "\n    "));
                }
            }
            0
        }
        Err(e) => {
            print_errors(&e);
            EXIT_CONFIG
        }
    }
}

fn list_factories(json: bool) -> i32 {
    let reg = registry();
    if json {
        let v: Vec<serde_json::Value> = reg
            .all()
            .iter()
            .map(|f| {
                serde_json::json!({
                    "eggs": f.eggs.iter().map(|e| format!("egg:{e}")).collect::<Vec<_>>(),
                    "kind": f.kind().as_str(),
                    "summary": f.summary,
                    "options": f.options.iter().map(|o| serde_json::json!({"name": o.name, "doc": o.doc})).collect::<Vec<_>>(),
                    "any_options": f.any_options,
                    "ignored": f.ignored,
                })
            })
            .collect();
        outln!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        return 0;
    }
    for f in reg.all() {
        let eggs: Vec<String> = f.eggs.iter().map(|e| format!("egg:{e}")).collect();
        outln!("{}  ({})", eggs.join(", "), f.kind().as_str());
        if !f.summary.is_empty() {
            outln!("    {}", f.summary);
        }
        for o in f.options {
            outln!("    {:<24} {}", o.name, o.doc);
        }
        if f.any_options {
            outln!("    (any key: see the summary)");
        }
    }
    0
}
