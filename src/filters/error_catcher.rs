//! `egg:mapproxy-serve#error_catcher`, `egg:Paste#errorcatcher`: a panic in the app becomes a
//! clean `500` page, and the bodies of `5xx` answers are replaced by a clean page.
//!
//! Options:
//! - `debug`: show the panic message and pass `5xx` bodies through; read from the section,
//!   else from `[DEFAULT]` (as Paste does); default false.
//! - `error_message`: the text on the page.
//!
//! Paste's e-mail and log-file options are accepted and ignored.

use mapproxy_serve_filters::error_catcher::ErrorCatcherLayer;

use crate::app::{layer_filter, Filter};
use crate::config::{asbool, FactoryConf};
use crate::error::ConfigErrors;
use crate::registry::{Build, Factory, Opt};

crate::register_factory!(Factory {
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
    build: Build::Filter(build),
    ..Factory::DEFAULT
});

/// Build the filter from its options.
pub fn build(conf: &FactoryConf) -> Result<Filter, ConfigErrors> {
    let debug = match conf.get("debug") {
        Some(_) => conf.get_bool("debug", false)?,
        // a [DEFAULT] value that is not a boolean is not ours to complain about
        None => conf
            .global
            .get("debug")
            .and_then(|v| asbool(v).ok())
            .unwrap_or(false),
    };
    let layer = match conf.get("error_message") {
        Some(m) => ErrorCatcherLayer::with_message(debug, m),
        None => ErrorCatcherLayer::new(debug),
    };
    Ok(layer_filter(layer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::app_fn;
    use crate::filters::test_util::{err, send};
    use http::{Request, StatusCode};

    fn boom() -> crate::App {
        app_fn(|req: Request<crate::Body>| async move {
            if req.uri().path() == "/panic" {
                panic!("internal detail");
            }
            crate::app::text_response(StatusCode::OK, "text/plain", "ok")
        })
    }

    fn req(p: &str) -> Request<crate::Body> {
        Request::builder()
            .uri(p)
            .body(crate::app::empty_body())
            .unwrap()
    }

    #[tokio::test]
    async fn panic_is_a_clean_500_and_debug_comes_from_default() {
        let f = build(&FactoryConf::from_pairs("Paste#errorcatcher", [])).unwrap();
        let (st, _, body) = send(&f, boom(), req("/panic")).await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("internal detail"));
        assert_eq!(send(&f, boom(), req("/")).await.2, "ok");

        let mut conf = FactoryConf::from_pairs("Paste#errorcatcher", []);
        conf.global.insert("debug".into(), "true".into());
        let f = build(&conf).unwrap();
        let (_, _, body) = send(&f, boom(), req("/panic")).await;
        assert!(body.contains("internal detail"), "{body}");
    }

    #[test]
    fn invalid_debug_names_the_key() {
        let e = err(build(&FactoryConf::from_pairs(
            "Paste#errorcatcher",
            [("debug", "sometimes")],
        )));
        assert!(e.contains("key 'debug'"), "{e}");
    }
}
