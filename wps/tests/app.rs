//! The WPS app as a library (its factory, called with requests), with processes registered
//! by this test binary: a panic or an error fails that job only (ProcessFailed, in the answer
//! and in the status document) and frees its slot; bounding-box inputs and outputs.

use std::time::{Duration, Instant};

use http::Request;
use http_body_util::BodyExt;
use mapproxy_serve_core::app::{empty_body, full_body};
use mapproxy_serve_core::build::BuildContext;
use mapproxy_serve_core::config::FactoryConf;
use mapproxy_serve_core::App;
use mapproxy_serve_wps::process::*;

struct Panics;

impl Process for Panics {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "test_panics",
            title: "Panics",
            inputs: &[InputDesc::literal(
                "how",
                "panic or error",
                DataType::String,
            )],
            outputs: &[OutputDesc::literal("never", "Never set", DataType::String)],
            store_supported: true,
            status_supported: true,
            ..ProcessDesc::DEFAULT
        };
        &D
    }
    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        res.update_status("about to fail", 50);
        // The working directory is made on request and removed after the job.
        let dir = req.workdir()?;
        std::fs::write(dir.join("scratch"), "x").map_err(|e| ProcessError::new(e.to_string()))?;
        match req.literal("how")?.as_text().as_str() {
            "error" => Err(ProcessError::new("bad input <x>")),
            _ => panic!("the process panicked on purpose"),
        }
    }
}
mapproxy_serve_wps::register_process!(Panics);

struct BboxEcho;

impl Process for BboxEcho {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "test_bbox",
            title: "Bbox echo",
            inputs: &[InputDesc::bbox(
                "bbox",
                "A box",
                &["EPSG:4326", "EPSG:3857"],
            )],
            outputs: &[OutputDesc {
                identifier: "bbox",
                title: "The box",
                abstract_: "",
                kind: OutputKind::BoundingBox {
                    crss: &["EPSG:4326"],
                },
            }],
            ..ProcessDesc::DEFAULT
        };
        &D
    }
    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        match req.first("bbox")? {
            InputValue::BoundingBox {
                lower, upper, crs, ..
            } => {
                res.set(
                    "bbox",
                    OutputValue::BoundingBox {
                        lower: lower.clone(),
                        upper: upper.clone(),
                        crs: crs.clone(),
                    },
                );
                Ok(())
            }
            _ => Err(ProcessError::new("not a box")),
        }
    }
}
mapproxy_serve_wps::register_process!(BboxEcho);

struct Setup {
    _dir: tempfile::TempDir,
    outputs: std::path::PathBuf,
    work: std::path::PathBuf,
    app: App,
}

fn setup(level: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = dir.path().join("pywps.cfg");
    std::fs::write(
        &cfg,
        format!(
            "[server]\noutputurl = http://example.org/out/\noutputpath = out\nworkdir = work\nparallelprocesses = 1\n[logging]\nlevel = {level}\n"
        ),
    )
    .expect("write cfg");
    let conf = FactoryConf::from_pairs(
        "mapproxy-serve#wps",
        [
            ("pywps_cfg", cfg.to_str().expect("utf-8")),
            ("processes", "test_panics test_bbox say_hello"),
        ],
    );
    let mut ctx = BuildContext::current();
    let app = mapproxy_serve_wps::build(&conf, &mut ctx).expect("build");
    assert_eq!(ctx.finish().watched, vec![cfg]);
    Setup {
        outputs: dir.path().join("out"),
        work: dir.path().join("work"),
        _dir: dir,
        app,
    }
}

async fn call(app: &App, method: &str, query: &str, body: &str) -> (u16, String) {
    let req = Request::builder()
        .method(method)
        .uri(format!("/wps?{query}"))
        .body(if body.is_empty() {
            empty_body()
        } else {
            full_body(body.to_string())
        })
        .expect("request");
    let res = app.call(req).await;
    let status = res.status().as_u16();
    let bytes = res.into_body().collect().await.expect("body").to_bytes();
    (status, String::from_utf8_lossy(&bytes).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_job_only() {
    let s = setup("INFO");
    let run = "service=WPS&request=Execute&identifier=test_panics&DataInputs=how=";
    let (status, t) = call(&s.app, "GET", &format!("{run}panic"), "").await;
    assert_eq!(status, 200);
    assert!(
        t.contains("<ows:Exception exceptionCode=\"NoApplicableCode\" locator=\"None\">"),
        "{t}"
    );
    assert!(
        t.contains(
            "<ows:ExceptionText>Process failed, please check server error log</ows:ExceptionText>"
        ),
        "{t}"
    );
    let (_, t) = call(&s.app, "GET", &format!("{run}error"), "").await;
    assert!(
        t.contains("<ows:ExceptionText>Process error: bad input &lt;x&gt;</ows:ExceptionText>"),
        "{t}"
    );
    // RawDataOutput of a failed job: an exception report.
    let (status, t) = call(
        &s.app,
        "GET",
        &format!("{run}error&RawDataOutput=never"),
        "",
    )
    .await;
    assert_eq!(status, 400);
    assert!(t.contains("exceptionCode=\"NoApplicableCode\""), "{t}");
    let left = std::fs::read_dir(&s.work).map(|d| d.count()).unwrap_or(0);
    assert_eq!(
        left, 0,
        "working directories are removed after failed jobs too"
    );
    // The slot (parallelprocesses = 1) is free again.
    let (status, t) = call(
        &s.app,
        "GET",
        "service=WPS&request=Execute&identifier=say_hello&DataInputs=name=x&RawDataOutput=response",
        "",
    )
    .await;
    assert_eq!((status, t.as_str()), (200, "Hello x"));

    // Asynchronously: the status document ends ProcessFailed.
    let (_, t) = call(
        &s.app,
        "GET",
        &format!("{run}panic&storeExecuteResponse=true&status=true"),
        "",
    )
    .await;
    let loc = t
        .split("statusLocation=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("statusLocation");
    let name = loc
        .strip_prefix("http://example.org/out/")
        .expect("under outputurl");
    let path = s.outputs.join(name);
    let end = Instant::now() + Duration::from_secs(20);
    let doc = loop {
        let doc = std::fs::read_to_string(&path).unwrap_or_default();
        if doc.contains("<wps:ProcessFailed>") {
            break doc;
        }
        assert!(Instant::now() < end, "no ProcessFailed: {doc}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(doc.contains("Process failed, please check server error log"));
    let (status, _) = call(
        &s.app,
        "GET",
        "service=WPS&request=Execute&identifier=say_hello&DataInputs=name=x",
        "",
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_debug_level_the_panic_message_is_shown() {
    let s = setup("DEBUG");
    let (_, t) = call(
        &s.app,
        "GET",
        "service=WPS&request=Execute&identifier=test_panics&DataInputs=how=panic",
        "",
    )
    .await;
    assert!(
        t.contains("Process error: panic: the process panicked on purpose"),
        "{t}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bounding_boxes_kvp_and_xml() {
    let s = setup("INFO");
    let (_, t) = call(
        &s.app,
        "GET",
        "service=WPS&request=DescribeProcess&identifier=test_bbox",
        "",
    )
    .await;
    assert!(
        t.contains("<BoundingBoxData>") && t.contains("<CRS>EPSG:3857</CRS>"),
        "{t}"
    );
    let (_, t) = call(&s.app, "GET", "service=WPS&request=Execute&identifier=test_bbox&DataInputs=bbox=1,2,3,4.5,EPSG:3857&lineage=true", "").await;
    assert!(
        t.contains("<wps:BoundingBoxData crs=\"EPSG:3857\" dimensions=\"2\">"),
        "{t}"
    );
    assert!(
        t.contains("<ows:LowerCorner>1.0 2.0</ows:LowerCorner>"),
        "{t}"
    );
    assert!(
        t.contains("<ows:UpperCorner>3.0 4.5</ows:UpperCorner>"),
        "{t}"
    );
    let body = r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1">
<ows:Identifier>test_bbox</ows:Identifier><wps:DataInputs><wps:Input><ows:Identifier>bbox</ows:Identifier>
<wps:Data><wps:BoundingBoxData dimensions="2"><ows:LowerCorner>-1 -2</ows:LowerCorner><ows:UpperCorner>5 6</ows:UpperCorner></wps:BoundingBoxData></wps:Data></wps:Input></wps:DataInputs></wps:Execute>"#;
    let (status, t) = call(&s.app, "POST", "", body).await;
    assert_eq!(status, 200, "{t}");
    assert!(
        t.contains("<wps:BoundingBoxData crs=\"EPSG:4326\" dimensions=\"2\">"),
        "the default CRS: {t}"
    );
    let (status, t) = call(
        &s.app,
        "GET",
        "service=WPS&request=Execute&identifier=test_bbox&DataInputs=bbox=1,2,3",
        "",
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        t.contains("exceptionCode=\"InvalidParameterValue\" locator=\"bbox\""),
        "{t}"
    );
    // Processes not chosen by `processes` are not served.
    let (_, t) = call(
        &s.app,
        "GET",
        "service=WPS&request=DescribeProcess&identifier=sleep",
        "",
    )
    .await;
    assert!(t.contains("Unknown process sleep"), "{t}");
}
