//! Every egg of this crate, in one place: the egg names, the one-line summary and the options
//! `list-factories` shows, and the `build` function each names.

use mapproxy_serve_core::register_factory;
use mapproxy_serve_core::registry::{Build, Factory, Opt};

register_factory!(Factory {
    eggs: &["mapproxy-serve#access_log", "Paste#translogger"],
    summary: "access log: one line per request (Apache combined format) to the `wsgi` logger",
    options: &[
        Opt::new("logger_name", "the logger the lines go to (default: wsgi)"),
        Opt::new(
            "format",
            "Paste's format, %%(REMOTE_ADDR)s ... (default: Apache combined)"
        ),
        Opt::new(
            "logging_level",
            "level of the lines: name or number (default: INFO)"
        ),
        Opt::new(
            "setup_console_handler",
            "print to stderr when logging would not take the line (default: true)"
        ),
        Opt::new(
            "set_logger_level",
            "drop lines below this level (default: keep all)"
        ),
    ],
    build: Build::Filter(crate::access_log::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#basic_auth", "Paste#auth_basic"],
    summary: "HTTP Basic authentication against an htpasswd file or inline users",
    options: &[
        Opt::new("realm", "the realm browsers show (default: restricted)"),
        Opt::new(
            "htpasswd",
            "Apache htpasswd file (bcrypt, apr1, {SHA}, {PLAIN}); re-read when it changes"
        ),
        Opt::new(
            "users",
            "inline user:password pairs, whitespace-separated (tests, demos)"
        ),
        Opt::new(
            "authfunc",
            "Paste's Python check function: not supported (use htpasswd)"
        ),
        Opt::new(
            "trust_remote_user",
            "a request that already carries a user (outer filter, trusted FastCGI REMOTE_USER) \
             passes as that user (default: false, only the Authorization header decides)"
        ),
        Opt::new(
            "max_concurrent_checks",
            "bcrypt/MD5-crypt checks running at once (default: the number of CPUs)"
        ),
        Opt::new(
            "max_queued_checks",
            "checks that may wait for a turn; past that 503 with Retry-After: 1 (default 64)"
        ),
    ],
    build: Build::Filter(crate::basic_auth::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#proxy_headers", "PasteDeploy#prefix"],
    summary: "mount prefix and forwarded headers (X-Forwarded-*, Forwarded, X-Script-Name) \
              from trusted proxies",
    options: &[
        Opt::new(
            "prefix",
            "mount path, removed from request paths that start with it"
        ),
        Opt::new(
            "trusted_proxies",
            "addresses/CIDRs whose forwarded headers count (default: 127.0.0.0/8 ::1)"
        ),
        Opt::new(
            "translate_forwarded_server",
            "apply forwarded headers (default: true)"
        ),
        Opt::new("force_port", "public port (empty: no port)"),
        Opt::new("scheme", "public scheme: http or https"),
    ],
    build: Build::Filter(crate::proxy_headers::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#compress", "Paste#gzip"],
    summary: "compress responses (gzip, br, zstd) as the client accepts; adds Vary",
    options: &[
        Opt::new(
            "compress_level",
            "1 (fast) to 9 (small) (default: the encoding's default)"
        ),
        Opt::new(
            "encodings",
            "allowed encodings: gzip br zstd deflate (default: gzip br zstd)"
        ),
        Opt::new(
            "min_size",
            "do not compress smaller responses (default: 32 bytes)"
        ),
    ],
    build: Build::Filter(crate::compress::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#error_catcher", "Paste#errorcatcher"],
    summary: "panics and 5xx answers become a clean error page (details with debug)",
    options: &[
        Opt::new(
            "debug",
            "show details (default: [DEFAULT] debug, else false)"
        ),
        Opt::new("error_message", "the text shown on the error page"),
    ],
    ignored: &[
        "error_email",
        "error_log",
        "show_exceptions_in_wsgi_errors",
        "from_address",
        "smtp_*",
        "error_subject_prefix",
        "error_email_from",
        "xmlhttp_key",
    ],
    build: Build::Filter(crate::error_catcher::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#cors"],
    summary: "CORS headers and preflight answers",
    options: &[
        Opt::new("allow_origin", "allowed origins, or * (default: *)"),
        Opt::new(
            "allow_methods",
            "allowed methods, or * (default: GET HEAD OPTIONS)"
        ),
        Opt::new("allow_headers", "request headers clients may send, or *"),
        Opt::new("expose_headers", "response headers scripts may read, or *"),
        Opt::new("max_age", "seconds a preflight answer may be cached"),
        Opt::new(
            "allow_credentials",
            "allow cookies/credentials (default: false)"
        ),
    ],
    build: Build::Filter(crate::cors::build),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#body_limit"],
    summary: "limit request body size (413 when larger)",
    options: &[Opt::new(
        "max_body_size",
        "largest request body in bytes; k/M/G suffixes (required)"
    )],
    build: Build::Filter(crate::limits::build_body_limit),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#timeout"],
    summary: "answer 504 when the app takes longer than `timeout` seconds",
    options: &[
        Opt::new("timeout", "seconds the app may take to answer (required)"),
        Opt::new("status", "status code sent on timeout (default: 504)"),
    ],
    build: Build::Filter(crate::limits::build_timeout),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#headers"],
    summary: "set response headers",
    options: &[
        Opt::new("headers", "one `Name: value` per line (required)"),
        Opt::new("override", "replace the app's value (default: true)"),
    ],
    build: Build::Filter(crate::limits::build_headers),
    ..Factory::DEFAULT
});

register_factory!(Factory {
    eggs: &["mapproxy-serve#request_id"],
    summary: "give each request an id (UUID) and copy it to the response",
    options: &[Opt::new("header", "the header (default: x-request-id)")],
    build: Build::Filter(crate::limits::build_request_id),
    ..Factory::DEFAULT
});

#[cfg(test)]
mod tests {
    use mapproxy_serve_core::registry::{registry, Kind};

    #[test]
    fn every_egg_resolves_to_a_filter() {
        registry().check().unwrap();
        for egg in [
            "Paste#translogger",
            "mapproxy-serve#access_log",
            "Paste#auth_basic",
            "mapproxy_serve#basic_auth",
            "PasteDeploy#prefix",
            "mapproxy-serve#proxy_headers",
            "Paste#gzip",
            "mapproxy-serve#compress",
            "Paste#errorcatcher",
            "mapproxy-serve#error_catcher",
            "mapproxy-serve#cors",
            "mapproxy-serve#body_limit",
            "mapproxy-serve#timeout",
            "mapproxy-serve#headers",
            "mapproxy-serve#request_id",
        ] {
            let f = registry()
                .find(egg)
                .unwrap_or_else(|| panic!("{egg} not registered"));
            assert_eq!(f.kind(), Kind::Filter, "{egg}");
            assert!(!f.summary.is_empty() && !f.options.is_empty(), "{egg}");
        }
        let f = registry().find("Paste#errorcatcher").unwrap();
        assert!(f.ignores_option("smtp_server"));
    }
}
