//! `egg:mapproxy-serve#error_catcher`, `egg:Paste#errorcatcher`: a panic in the app becomes a
//! clean `500` page, and the bodies of `5xx` answers are replaced by a clean page.
//!
//! Options:
//! - `debug`: show the panic message and pass `5xx` bodies through; read from the section,
//!   else from `[DEFAULT]` (as Paste does); default false.
//! - `error_message`: the text on the page.
//!
//! Paste's e-mail and log-file options are accepted and ignored.

use crate::error_catcher::ErrorCatcherLayer;

use mapproxy_serve_core::app::{layer_filter, Filter};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::{asbool, FactoryConf};
use mapproxy_serve_core::error::ConfigErrors;

/// Build the filter from its options.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<Filter, ConfigErrors> {
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
    use crate::test_util::{err, send};
    use http::{Request, StatusCode};
    use mapproxy_serve_core::app::app_fn;

    fn boom() -> mapproxy_serve_core::App {
        app_fn(|req: Request<mapproxy_serve_core::Body>| async move {
            if req.uri().path() == "/panic" {
                panic!("internal detail");
            }
            mapproxy_serve_core::app::text_response(StatusCode::OK, "text/plain", "ok")
        })
    }

    fn req(p: &str) -> Request<mapproxy_serve_core::Body> {
        Request::builder()
            .uri(p)
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap()
    }

    #[tokio::test]
    async fn panic_is_a_clean_500_and_debug_comes_from_default() {
        let f = build(
            &FactoryConf::from_pairs("Paste#errorcatcher", []),
            &mut BuildContext::current(),
        )
        .unwrap();
        let (st, _, body) = send(&f, boom(), req("/panic")).await;
        assert_eq!(st, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!body.contains("internal detail"));
        assert_eq!(send(&f, boom(), req("/")).await.2, "ok");

        let mut conf = FactoryConf::from_pairs("Paste#errorcatcher", []);
        conf.global.insert("debug".into(), "true".into());
        let f = build(&conf, &mut BuildContext::current()).unwrap();
        let (_, _, body) = send(&f, boom(), req("/panic")).await;
        assert!(body.contains("internal detail"), "{body}");
    }

    #[test]
    fn invalid_debug_names_the_key() {
        let e = err(build(
            &FactoryConf::from_pairs("Paste#errorcatcher", [("debug", "sometimes")]),
            &mut BuildContext::current(),
        ));
        assert!(e.contains("key 'debug'"), "{e}");
    }
}
