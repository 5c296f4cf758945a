//! Two crates registering the same egg name is an error at start-up, naming both.

use mapproxy_serve::app::{app_fn, text_response, App};
use mapproxy_serve::build::BuildContext;
use mapproxy_serve::config::FactoryConf;
use mapproxy_serve::error::ConfigErrors;
use mapproxy_serve::register_factory;
use mapproxy_serve::registry::{registry, Build, Factory};

fn one(_: &FactoryConf, _: &mut BuildContext) -> Result<App, ConfigErrors> {
    Ok(app_fn(|_req| async {
        text_response(http::StatusCode::OK, "text/plain", "one")
    }))
}

// Same dist under another spelling (Python's rule: case and -/_/. do not matter).
register_factory!(Factory {
    eggs: &["Dup-Dist#thing"],
    build: Build::App(one),
    ..Factory::DEFAULT
});
register_factory!(Factory {
    eggs: &["dup_dist#thing"],
    build: Build::App(one),
    ..Factory::DEFAULT
});

#[test]
fn duplicate_egg_names_fail_at_start_up() {
    let err = registry().check().expect_err("duplicates must be reported");
    let text = err.to_string();
    assert!(text.contains("is registered twice"), "{text}");
    assert!(text.to_ascii_lowercase().contains("dup"), "{text}");
    // The built-ins themselves do not collide.
    assert_eq!(err.0.len(), 1, "{text}");
}
