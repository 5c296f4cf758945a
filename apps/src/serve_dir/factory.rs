//! `egg:Paste#static`, `egg:mapproxy-serve#static`: the files under `document_root`.
//!
//! Options: `document_root` (required; a relative path is taken from the directory of the ini
//! file that wrote it — Paste takes it from the working directory), `cache_max_age` (seconds,
//! sent as `Cache-Control: max-age=N`). The service is
//! [`crate::serve_dir::StaticFiles`].

use crate::serve_dir::StaticFiles;

use http::Request;

use mapproxy_serve_core::app::{box_response, App, AppFuture, Body, Handler};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;

/// Build the app from its options.
pub fn build(conf: &FactoryConf, _ctx: &mut BuildContext) -> Result<App, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    conf.require("document_root")?;
    // Seconds in Cache-Control (ten years at most, as RFC 9111 advises far less), and the
    // largest file kept in memory.
    let max_age = errs.take(conf.get_int::<u64>("cache_max_age", 0..=315_360_000));
    let max_cached = errs.take(conf.get_size("max_cached_file_size", 0..=1 << 30));
    let Some(root) = conf.get_path("document_root") else {
        return Err(errs);
    };
    let mut builder = StaticFiles::builder(&root);
    if let Some(Some(secs)) = max_age {
        builder = builder.cache_max_age(secs);
    }
    if let Some(Some(bytes)) = max_cached {
        builder = builder.max_cached_file_size(bytes);
    }
    let files = errs.take(
        builder
            .build()
            .map_err(|e| conf.error("document_root", format!("cannot serve files from {e}"))),
    );
    match files {
        Some(files) if errs.is_empty() => Ok(App::from_handler(Static(files))),
        _ => Err(errs),
    }
}

/// The app: `StaticFiles` answers at once (a cached body, or a file streamed from the
/// blocking pool), so the answer needs no boxed future.
struct Static(StaticFiles);

impl Handler for Static {
    fn call(&self, req: Request<Body>) -> AppFuture {
        AppFuture::ready(box_response(self.0.respond(&req)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{Request, StatusCode};
    use http_body_util::BodyExt;
    use tower::ServiceExt;

    #[tokio::test]
    async fn serves_files_with_options() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("a.txt"), "hello").unwrap();
        let root = tmp.path().to_str().unwrap();
        let conf = FactoryConf::from_pairs(
            "Paste#static",
            [
                ("document_root", root),
                ("cache_max_age", "60"),
                ("max_cached_file_size", "1048576"),
            ],
        );
        let app = build(&conf, &mut BuildContext::current()).unwrap();
        let req = Request::builder()
            .uri("/a.txt")
            .body(mapproxy_serve_core::app::empty_body())
            .unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()["cache-control"], "max-age=60");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "hello");
    }

    #[test]
    fn config_errors_name_the_key() {
        let conf = FactoryConf::from_pairs("Paste#static", []);
        let e = build(&conf, &mut BuildContext::current())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("[Paste#static]") && e.contains("document_root"),
            "{e}"
        );

        let conf = FactoryConf::from_pairs(
            "Paste#static",
            [("document_root", "/nonexistent/mapproxy-serve-test")],
        );
        let e = build(&conf, &mut BuildContext::current())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("key 'document_root'") && e.contains("/nonexistent/mapproxy-serve-test"),
            "{e}"
        );

        let tmp = tempfile::tempdir().unwrap();
        let conf = FactoryConf::from_pairs(
            "Paste#static",
            [
                ("document_root", tmp.path().to_str().unwrap()),
                ("cache_max_age", "soon"),
                ("max_cached_file_size", "1.5M"),
            ],
        );
        let e = build(&conf, &mut BuildContext::current())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("key 'cache_max_age'"), "{e}");
        assert!(e.contains("key 'max_cached_file_size'"), "{e}");
    }

    #[test]
    fn registered_under_both_eggs() {
        let reg = mapproxy_serve_core::registry::registry();
        for egg in ["Paste#static", "mapproxy-serve#static"] {
            let f = reg.find(egg).unwrap();
            assert_eq!(f.name(), "mapproxy-serve#static");
            assert!(f.knows_option("document_root") && f.knows_option("cache_max_age"));
        }
    }
}
