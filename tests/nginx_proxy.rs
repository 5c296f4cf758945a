//! `ini/production.ini` served by the real binary behind a real nginx reverse proxy
//! (`tests/nginx/reverse-proxy.conf`): the echo app sees the public scheme, host, mount path,
//! client address and user through nginx, and the same headers sent directly from an
//! untrusted peer (127.0.0.1; only nginx's 127.0.0.2 is trusted) are ignored.
//!
//! Without nginx the test prints `SKIP:` and passes, unless `CI=true`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::*;

const DEMO: &str = "demo:demo-password";

/// A running nginx; stopped (SIGTERM, then SIGKILL) when dropped.
struct Nginx {
    child: Child,
    port: u16,
    tmp: PathBuf,
}

impl Nginx {
    fn logs(&self) -> String {
        let mut out = String::new();
        for name in ["stderr.log", "nginx-early-error.log", "nginx-error.log"] {
            if let Ok(t) = std::fs::read_to_string(self.tmp.join(name)) {
                out.push_str(&format!("--- {name}\n{t}"));
            }
        }
        out
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start nginx with the recipe in front of `backend`; nginx cannot listen on port 0, so a
/// port that was free a moment ago is used, and another one once more if nginx fails.
fn start_nginx(bin: &Path, backend: std::net::SocketAddr, tmp: &Path) -> Nginx {
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/nginx/reverse-proxy.conf"),
    )
    .expect("tests/nginx/reverse-proxy.conf");
    for attempt in 0..2 {
        let port = free_port();
        let conf = tmp.join("reverse-proxy.conf");
        let text = template
            .replace("@PORT@", &port.to_string())
            .replace("@BACKEND@", &backend.to_string())
            .replace("@TMP@", &tmp.display().to_string());
        std::fs::write(&conf, text).expect("write nginx config");
        let child = Command::new(bin)
            .arg("-e")
            .arg(tmp.join("nginx-early-error.log"))
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(tmp.join("stderr.log")).expect("stderr log"),
            ))
            .spawn()
            .expect("start nginx");
        let mut nginx = Nginx {
            child,
            port,
            tmp: tmp.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return nginx;
            }
            if let Ok(Some(_)) = nginx.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!(
            "nginx did not come up on port {port} (attempt {attempt}):\n{}",
            nginx.logs()
        );
    }
    panic!("nginx did not start");
}

#[tokio::test]
async fn production_ini_behind_nginx() {
    let Some(nginx_bin) = find_program("nginx", "not testing ini/production.ini behind nginx")
    else {
        return;
    };
    let tmp = tempfile::tempdir().expect("tempdir");

    // The service behind /proxy: another mapproxy-serve answering with the echo app.
    let up_ini = write(
        tmp.path(),
        "upstream.ini",
        "[app:main]\nuse = egg:mapproxy-serve#echo\n",
    );
    let upstream = Served::start(&up_ini, &[]);
    let production = Path::new(env!("CARGO_MANIFEST_DIR")).join("ini/production.ini");
    let up_var = format!("upstream=http://{}/", upstream.addr());
    let logdir = tmp.path().join("log");
    std::fs::create_dir(&logdir).expect("log dir");
    let log_var = format!("logdir={}", logdir.display());
    let served = Served::start(&production, &[&up_var, &log_var]);
    let nginx = start_nginx(&nginx_bin, served.addr(), tmp.path());
    let front = std::net::SocketAddr::from(([127, 0, 0, 1], nginx.port));
    let auth = basic(DEMO);

    // The Host the client sent to nginx, port included, is the public host.
    let public = "maps.example.test:8443";
    let via_nginx = |path: &'static str, extra: Vec<(&'static str, String)>| {
        let auth = auth.clone();
        async move {
            let mut h: Vec<(&str, String)> = vec![("host", public.to_string())];
            h.push(("authorization", auth));
            h.extend(extra);
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            get(front, path, &h).await
        }
    };

    // Basic auth through nginx.
    let r = get(front, "/mapproxy/echo/x", &[("host", public)]).await;
    assert_eq!(r.status, 401, "{}", nginx.logs());
    assert_eq!(r.header("www-authenticate"), "Basic realm=\"mapproxy\"");

    // The echo app sees the public URL and the client, not nginx.
    let r = via_nginx(
        "/mapproxy/echo/x?y=1",
        vec![
            ("x-forwarded-proto", "https".into()),
            // a client's own X-Forwarded-For cannot name another client
            ("x-forwarded-for", "203.0.113.9".into()),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}\n{}", r.text(), nginx.logs());
    let v = r.json();
    assert_eq!(v["script_name"], "/mapproxy/echo", "{v:#}");
    assert_eq!(v["path_info"], "/x");
    assert_eq!(v["query"], "y=1");
    assert_eq!(v["scheme"], "https");
    assert_eq!(v["host"], public);
    assert_eq!(v["remote_addr"], "127.0.0.1");
    assert_eq!(v["remote_user"], "demo");
    for h in [
        "x-script-name",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
    ] {
        assert!(v["headers"].get(h).is_none(), "{h} reached the app: {v:#}");
    }

    // Without X-Forwarded-Proto, nginx sends its own scheme.
    let v = via_nginx("/mapproxy/echo/", vec![]).await.json();
    assert_eq!(v["scheme"], "http");
    assert_eq!(v["script_name"], "/mapproxy/echo");

    // The access log (production.ini's logging sections: a file) names the client, the user
    // and the public path.
    let access = logdir.join("access.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let line = loop {
        let text = std::fs::read_to_string(&access).unwrap_or_default();
        if let Some(l) = text
            .lines()
            .find(|l| l.contains("\"GET /mapproxy/echo/x?y=1 HTTP/1.1\""))
        {
            break l.to_string();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no access line in {}:\n{text}",
            access.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(line.starts_with("127.0.0.1 - demo ["), "{line}");
    assert!(line.contains("\" 200 "), "{line}");
    assert!(
        !served.stderr().contains("GET /mapproxy/echo/x?y=1"),
        "setup_console_handler = false: file only"
    );

    // Static files through nginx; a directory without a slash redirects to the public URL.
    let r = via_nginx("/mapproxy/static/hello.txt", vec![]).await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "static file\n")
    );
    assert_eq!(r.header("cache-control"), "max-age=3600");
    let r = via_nginx(
        "/mapproxy/static?a=b",
        vec![("x-forwarded-proto", "https".into())],
    )
    .await;
    assert_eq!(r.status, 301);
    assert_eq!(
        r.header("location"),
        "https://maps.example.test:8443/mapproxy/static/?a=b"
    );
    let r = via_nginx("/mapproxy/static/", vec![]).await;
    assert!(r.text().contains("production example"), "{}", r.text());

    // The reverse proxy through nginx: the upstream gets the path below the mount and the
    // public host and scheme.
    let r = via_nginx(
        "/mapproxy/proxy/up/x?q=1",
        vec![("x-forwarded-proto", "https".into())],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["path_info"], "/up/x", "{v:#}");
    assert_eq!(v["query"], "q=1");
    assert_eq!(v["headers"]["x-forwarded-host"], public);
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.1");

    // The same headers sent directly from 127.0.0.1 (not a trusted proxy) are ignored.
    let direct_host = served.addr().to_string();
    let r = get(
        served.addr(),
        "/echo/x",
        &[
            ("authorization", &auth),
            ("x-script-name", "/mapproxy"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", public),
            ("x-forwarded-for", "203.0.113.9"),
            ("forwarded", "for=203.0.113.9;proto=https;host=evil.test"),
        ],
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let v = r.json();
    assert_eq!(v["script_name"], "/echo", "{v:#}");
    assert_eq!(v["path_info"], "/x");
    assert_eq!(v["scheme"], "http");
    assert_eq!(v["host"], direct_host.as_str());
    assert_eq!(v["remote_addr"], "127.0.0.1");
    for h in [
        "x-script-name",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-forwarded-for",
        "forwarded",
    ] {
        assert!(v["headers"].get(h).is_none(), "{h} reached the app: {v:#}");
    }
    // ... and a path under /mapproxy is not found directly.
    let r = get(
        served.addr(),
        "/mapproxy/echo/x",
        &[("authorization", &auth), ("x-script-name", "/mapproxy")],
    )
    .await;
    assert_eq!(r.status, 404);
}
