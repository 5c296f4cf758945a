//! Every egg of this crate, in one place: the egg names, the one-line summary and the options
//! `list-factories` shows, and the `build` function each names.

use mapproxy_serve_core::register_factory;
use mapproxy_serve_core::registry::{Build, Factory, Opt};

register_factory!(Factory {
    eggs: &["mapproxy-serve#urlmap", "Paste#urlmap"],
    summary:
        "dispatch to apps by mount path and host (keys: /path or domain HOST [port N] [/path])",
    options: &[Opt::new(
        crate::urlmap::NOT_FOUND_APP,
        "the app for requests no mount matches (default: [DEFAULT]'s, else a 404 page)"
    )],
    any_options: true,
    build: Build::Composite {
        children: crate::urlmap::children,
        build: crate::urlmap::build,
    },
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#cascade", "Paste#cascade"],
    summary: "tries app1, app2, ... in turn while they answer a 'catch' status (404)",
    options: &[],
    any_options: true,
    build: Build::Composite {
        children: crate::cascade::children,
        build: crate::cascade::build,
    },
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#static", "Paste#static"],
    summary: "static files from a directory (ETag, 304, Range, index.html)",
    options: &[
        Opt::new(
            "document_root",
            "the directory to serve (required; relative to the ini file)"
        ),
        Opt::new(
            "cache_max_age",
            "seconds for Cache-Control: max-age (default: no header)"
        ),
        Opt::new(
            "max_cached_file_size",
            "files up to this size (bytes, or 64k, 1M) are served from memory (default 65536; 0 = no memory cache)"
        ),
    ],
    build: Build::App(crate::serve_dir::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#proxy", "Paste#proxy"],
    summary: "streaming reverse proxy to an HTTP or HTTPS upstream",
    options: &[
        Opt::new(
            "address",
            "upstream base URL, http(s)://host:port/path/ (required)"
        ),
        Opt::new(
            "allowed_request_methods",
            "space-separated methods to forward; others get 405 (default: all)"
        ),
        Opt::new(
            "suppress_http_headers",
            "space-separated request headers not sent upstream"
        ),
        Opt::new(
            "timeout",
            "seconds to wait for the upstream's response head (then 504), and for each piece \
             of its body (then the connection is cut) (default: 60; 0 = no limit)"
        ),
        Opt::new(
            "ssl_ca_certs",
            "PEM file of CAs trusted for https upstreams, besides the system's"
        ),
        Opt::new(
            "ssl_no_cert_checks",
            "accept any upstream certificate: insecure (default: false)"
        ),
    ],
    build: Build::App(crate::proxy::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#text"],
    summary: "answers every request with a fixed text (health checks, benchmarks)",
    options: &[
        Opt::new("body", "the response body (default: ok and a newline)"),
        Opt::new("status", "the response status code (default 200)"),
        Opt::new(
            "content_type",
            "the Content-Type (default text/plain; charset=utf-8)"
        ),
    ],
    build: Build::App(crate::text::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#echo"],
    summary: "answers with a JSON description of the request (method, paths, headers, confs)",
    options: crate::echo::OPTIONS,
    any_options: true,
    build: Build::App(crate::echo::build),
    ..Factory::DEFAULT
});
