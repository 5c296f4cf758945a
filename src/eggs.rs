//! Every egg of the runtime crate: its servers. (Apps and filters register in their own
//! crates' `eggs.rs`: `apps/src/eggs.rs`, `filters/src/eggs.rs`.)

use mapproxy_serve_core::register_factory;
use mapproxy_serve_core::registry::{Build, Factory};

register_factory!(Factory {
    eggs: &[
        "mapproxy-serve#http",
        "Paste#http",
        "waitress#main",
        "gunicorn#main",
        "pyramid#wsgiref",
    ],
    summary: "HTTP/1.1 and h2c server on TCP and unix sockets (Paste#http, waitress options)",
    options: crate::server::http::OPTIONS,
    ignored: crate::server::http::IGNORED,
    build: Build::Server(crate::server::http::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#fcgi", "Flup#fcgi_fork", "Flup#fcgi_thread"],
    summary: "FastCGI server on a unix socket or TCP port (flup compatible)",
    options: crate::server::fcgi::OPTIONS,
    ignored: &[
        "maxRequests",
        "minSpare",
        "maxSpare",
        "multiplexed",
        "multithreaded",
        "multiprocess",
        "debug",
        "loggingLevel",
        "forceCGI",
        "roles",
        "environ",
    ],
    build: Build::Server(crate::server::fcgi::build),
    ..Factory::DEFAULT
});
