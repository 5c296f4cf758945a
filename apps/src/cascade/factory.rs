//! `egg:Paste#cascade`, `egg:mapproxy-serve#cascade`: try `app1`, `app2`, ... in turn.
//!
//! Keys `app1` .. `appN` name the apps, tried in **numeric** order (`app2` before `app10`;
//! Paste sorts the keys as strings). Keys starting with `app` without a number come after the
//! numbered ones, in string order. `catch` (default `404`) is a whitespace list of statuses
//! that mean "try the next app"; the last app's answer is returned as it is. Any other key is
//! an error, as in Paste. The request body is buffered (up to 16 MiB, else 413) and replayed
//! for each try; see [`crate::cascade`].

use crate::cascade::Cascade;
use http::StatusCode;

use mapproxy_serve_core::app::{app, App};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::error::ConfigErrors;
use mapproxy_serve_core::registry::Child;

/// Sort key: numbered `appN` first by N, then other `app*` keys by name.
fn order(key: &str) -> (u8, u64, String) {
    let suffix = key.strip_prefix("app").unwrap_or(key);
    match suffix.parse::<u64>() {
        Ok(n) if suffix.bytes().all(|b| b.is_ascii_digit()) => (0, n, key.to_string()),
        _ => (1, 0, key.to_string()),
    }
}

pub fn children(conf: &FactoryConf) -> Result<Vec<Child>, ConfigErrors> {
    let mut errs = ConfigErrors::new();
    let mut children = Vec::new();
    for (key, v) in &conf.local {
        if key == "catch" {
            continue;
        }
        if !key.starts_with("app") {
            errs.push(v.location.error(format!(
                "bad configuration key '{key}' (= '{}'): all keys must start with 'app'",
                v.value
            )));
            continue;
        }
        children.push(Child {
            key: key.clone(),
            app: v.value.trim().to_string(),
        });
    }
    if children.is_empty() && errs.is_empty() {
        errs.push(conf.section_error(format!(
            "egg:{} needs at least one app: give app1 = ..., app2 = ...",
            conf.egg
        )));
    }
    children.sort_by_key(|c| order(&c.key));
    errs.into_result(children)
}

fn catch_codes(conf: &FactoryConf) -> Result<Vec<StatusCode>, ConfigErrors> {
    let Some(list) = conf.get("catch") else {
        return Ok(vec![StatusCode::NOT_FOUND]);
    };
    let mut errs = ConfigErrors::new();
    let mut codes = Vec::new();
    for word in mapproxy_serve_core::config::split_list(list) {
        match word
            .parse::<u16>()
            .ok()
            .and_then(|n| StatusCode::from_u16(n).ok())
        {
            Some(c) => codes.push(c),
            None => errs.push(conf.error(
                "catch",
                format!("expected HTTP status codes like '404 403', found '{word}'"),
            )),
        }
    }
    errs.into_result(codes)
}

pub fn build(
    conf: &FactoryConf,
    _ctx: &mut BuildContext,
    apps: Vec<(Child, App)>,
) -> Result<App, ConfigErrors> {
    let codes = catch_codes(conf)?;
    let apps: Vec<App> = apps.into_iter().map(|(_, a)| a).collect();
    let cascade = Cascade::new(apps)
        .map_err(|e| conf.section_error(e.to_string()))?
        .catch(codes);
    Ok(app(cascade))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::Request;
    use http_body_util::BodyExt;
    use mapproxy_serve_core::app::{app_fn, empty_body, text_response};
    use tower::ServiceExt;

    fn status_app(code: u16, name: &'static str) -> App {
        app_fn(move |_req| async move {
            text_response(StatusCode::from_u16(code).unwrap(), "text/plain", name)
        })
    }

    #[test]
    fn children_sorted_numerically() {
        let conf = FactoryConf::from_pairs(
            "Paste#cascade",
            [
                ("app10", "ten"),
                ("catch", "404 403"),
                ("app2", "two"),
                ("app_other", "other"),
                ("app1", " one "),
            ],
        );
        let keys: Vec<(String, String)> = children(&conf)
            .unwrap()
            .into_iter()
            .map(|c| (c.key, c.app))
            .collect();
        assert_eq!(
            keys,
            [
                ("app1".into(), "one".into()),
                ("app2".into(), "two".into()),
                ("app10".into(), "ten".into()),
                ("app_other".into(), "other".into()),
            ]
        );
    }

    #[test]
    fn bad_keys_and_codes() {
        let conf = FactoryConf::from_pairs("Paste#cascade", [("app1", "a"), ("x", "y")]);
        let e = children(&conf).unwrap_err().to_string();
        assert_eq!(
            e,
            "<memory>: [Paste#cascade] bad configuration key 'x' (= 'y'): all keys must start with 'app'"
        );
        let conf = FactoryConf::from_pairs("Paste#cascade", [("catch", "404")]);
        assert!(children(&conf).is_err());
        let conf = FactoryConf::from_pairs("Paste#cascade", [("catch", "404 nope 99")]);
        let e = catch_codes(&conf).unwrap_err();
        assert_eq!(e.0.len(), 2, "{e}");
        assert!(e.to_string().contains("key 'catch'"));
    }

    #[tokio::test]
    async fn builds_and_cascades() {
        let conf = FactoryConf::from_pairs("Paste#cascade", [("catch", "404 403")]);
        let child = |k: &str| Child {
            key: k.into(),
            app: k.into(),
        };
        let app = build(
            &conf,
            &mut BuildContext::current(),
            vec![
                (child("app1"), status_app(404, "one")),
                (child("app2"), status_app(403, "two")),
                (child("app3"), status_app(200, "three")),
            ],
        )
        .unwrap();
        let req = Request::builder().uri("/").body(empty_body()).unwrap();
        let res = app.oneshot(req).await.unwrap();
        assert_eq!(res.status(), StatusCode::OK);
        let body = res.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(body, "three");
    }

    #[test]
    fn registered_as_composite() {
        let reg = mapproxy_serve_core::registry::registry();
        for egg in ["Paste#cascade", "mapproxy-serve#cascade"] {
            let f = reg.find(egg).unwrap();
            assert_eq!(f.kind(), mapproxy_serve_core::registry::Kind::Composite);
        }
    }
}
