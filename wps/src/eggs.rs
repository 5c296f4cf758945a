//! Every egg of this crate, in one place: `egg:mapproxy-serve#wps` and PyWPS's own name.

use mapproxy_serve_core::register_factory;
use mapproxy_serve_core::registry::{Build, Factory, Opt};

register_factory!(Factory {
    eggs: &["mapproxy-serve#wps", "PyWPS#app"],
    summary: "an OGC WPS 1.0.0 (PyWPS-compatible) with the processes linked into the binary",
    options: &[
        Opt::new(
            "pywps_cfg",
            "pywps.cfg files, one path per line, relative to the ini; later ones override earlier ones (default: PyWPS's defaults)"
        ),
        Opt::new(
            "processes",
            "process identifiers to serve, separated by spaces or commas (default: all registered)"
        ),
        Opt::new(
            "outputs",
            "a path under the mount (e.g. /outputs) that serves [server] outputpath (default: none)"
        ),
    ],
    build: Build::App(crate::factory::build),
    ..Factory::DEFAULT
});
