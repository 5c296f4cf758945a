//! `egg:mapproxy-serve#wps` / `egg:PyWPS#app`: the ini section → the app.
//!
//! - `pywps_cfg`: pywps.cfg files, one path per line (a path may contain spaces), relative to
//!   the ini; later files override earlier ones. Each is watched (an edit rebuilds the stack).
//! - `processes`: identifiers separated by whitespace or commas (default: every registered
//!   process); an unknown one is an error naming the line.
//! - `outputs`: a path under the app's mount (`/outputs`) that serves `outputpath`, for an
//!   `outputurl` pointing back at this app.

use std::path::PathBuf;
use std::time::Duration;

use mapproxy_serve_client::{ClientConfig, HttpClient};
use mapproxy_serve_core::build::{BuildContext, FileLogger};
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::{ConfigErrors, Location};
use mapproxy_serve_core::App;

use crate::config::WpsConfig;
use crate::process::{registered, Process};
use crate::service::Wps;

/// Builds the app.
pub fn build(conf: &FactoryConf, ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
    let mut errors = ConfigErrors::new();
    let paths: Vec<PathBuf> = match conf.get("pywps_cfg") {
        None => Vec::new(),
        Some(v) => {
            let base = conf
                .location_of("pywps_cfg")
                .file
                .parent()
                .map(PathBuf::from)
                .unwrap_or_default();
            v.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|l| base.join(l))
                .collect()
        }
    };
    for p in &paths {
        ctx.watch(p.clone());
    }
    let origin: Location = conf.location_of("pywps_cfg");
    let cfg = match paths.is_empty() {
        true => Some(WpsConfig::defaults()),
        false => errors.take(WpsConfig::load(&paths, &origin)),
    };

    let all = registered();
    let processes: Vec<&'static dyn Process> = match conf.get("processes") {
        None => all.clone(),
        Some(_) => {
            let mut chosen = Vec::new();
            for id in conf.get_list("processes") {
                match all.iter().find(|p| p.describe().identifier == id) {
                    Some(p) => chosen.push(*p),
                    None => errors.push(conf.error(
                        "processes",
                        format!(
                            "unknown process '{id}' (registered: {})",
                            all.iter()
                                .map(|p| p.describe().identifier)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    )),
                }
            }
            chosen
        }
    };
    let outputs = match conf.get("outputs").map(str::trim) {
        None | Some("") => None,
        Some(v) => {
            let m = format!("/{}", v.trim_matches('/'));
            if m == "/" || m.contains("//") {
                errors.push(conf.error("outputs", "expected a path such as /outputs"));
                None
            } else {
                Some(m)
            }
        }
    };
    let client_config = ClientConfig {
        request_timeout: Some(Duration::from_secs(120)),
        user_agent: Some(format!("mapproxy-serve-wps/{}", env!("CARGO_PKG_VERSION"))),
        ..ClientConfig::default()
    };
    let client = errors.take(
        HttpClient::shared(&client_config)
            .map_err(|e| conf.section_error(format!("cannot set up the HTTP client: {e}"))),
    );
    let (Some(cfg), Some(client)) = (cfg, client) else {
        return Err(errors);
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    // PyWPS's Service: with `[logging] file` (and a level), the logger PYWPS gets that level
    // and a FileHandler with `[logging] format`; the ini's logging sections still apply to
    // everything else.
    if let Some(file) = &cfg.log_file {
        let path = PathBuf::from(file.text.trim());
        let path = match (&file.here, path.is_relative()) {
            (Some(here), true) => here.join(path),
            _ => path,
        };
        ctx.file_logger(FileLogger {
            logger: "PYWPS".into(),
            level: cfg.log_level,
            path,
            format: cfg.log_format.clone(),
            location: file.location.clone().unwrap_or_else(|| origin.clone()),
        });
    }
    if let Some(loc) = cfg.log_database.as_ref().and_then(|v| v.location.clone()) {
        ctx.warn(
            loc,
            "[logging] database is not used: jobs are tracked in memory",
        );
    }
    for dir in [&cfg.outputpath, &cfg.workdir] {
        if let Err(e) = std::fs::create_dir_all(dir) {
            ctx.warn(
                origin.clone(),
                format!("cannot create {}: {e}", dir.display()),
            );
        }
    }
    let wps = Wps::new(cfg, processes, client, ctx.runtime().clone(), outputs);
    Ok(App::from_handler(wps))
}
