//! Every egg of this crate, in one place: `egg:MapProxy#app` and `egg:MapProxy#multiapp`
//! (the entry points MapProxy ≤ 1.11 registered), with our own aliases.

use mapproxy_serve_core::register_factory;
use mapproxy_serve_core::registry::{Build, Factory, Opt};

register_factory!(Factory {
    eggs: &["MapProxy#app", "mapproxy-serve#mapproxy"],
    summary: "MapProxy 7 from a mapproxy.yaml: /tms, /tiles, /wmts, /kml, /service, /demo",
    options: &[
        Opt::new(
            "mapproxy_conf",
            "the mapproxy.yaml (required; relative to the ini file)"
        ),
        Opt::new(
            "log_conf",
            "a logging file used instead of the ini's logging sections: Python's fileConfig ini (MapProxy ≤ 1.11's log.ini) or a log4rs YAML; relative to the ini file"
        ),
        Opt::new(
            "reload_files",
            "more files to watch for --reload (globs, one per line or space-separated)"
        ),
        Opt::new(
            "trusted_proxies",
            "peers whose X-Script-Name / X-Forwarded-Host / X-Forwarded-Proto are believed (default 127.0.0.0/8, ::1)"
        ),
    ],
    build: Build::App(crate::app::factory),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["MapProxy#multiapp", "mapproxy-serve#multiapp"],
    summary: "MultiMapProxy: every NAME.yaml of a directory served at /NAME/",
    options: &[
        Opt::new(
            "config_dir",
            "the directory of project YAML files (required; relative to the ini file)"
        ),
        Opt::new("allow_listing", "list the projects at / (default false)"),
        Opt::new(
            "app_cache_size",
            "projects kept built, least recently used dropped first (default 100)"
        ),
        Opt::new("preload", "build every project at start (default false)"),
    ],
    build: Build::App(crate::multiapp::factory),
    ..Factory::DEFAULT
});
