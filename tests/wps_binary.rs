//! The WPS app (`egg:PyWPS#app`) through the real binary: PyWPS's deployment check (bare
//! `GET /wps` → 400 MissingParameterValue, locator `service`), the exceptions, GetCapabilities,
//! DescribeProcess, Execute (KVP and XML POST, raw and document answers, lineage, outputs as
//! reference served by the outputs mount, complex input by reference through the shared
//! client and its size limit), the asynchronous life cycle and its status document,
//! parallelprocesses / maxprocesses / ServerBusy, a failing process (ProcessFailed), a reload
//! on an edit of pywps.cfg, configuration errors with file:line, the shipped ini/wps.ini, and
//! OWSLib as a real client (`WPS_OWSLIB_PYTHON`, installed by `.ci/test`).

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::{free_port, get, run, send, write, Resp, Served};

const GML: &str = r#"<?xml version="1.0" encoding="utf-8" ?>
<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">
  <gml:featureMember><ogr:a fid="a.1"><ogr:geometryProperty><gml:Polygon><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>0,0 2,0 2,2 0,2 0,0</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty><ogr:name>a</ogr:name></ogr:a></gml:featureMember>
  <gml:featureMember><ogr:a fid="a.2"><ogr:geometryProperty><gml:Polygon><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>10,10 11,10 11,11 10,11 10,10</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty><ogr:name>b</ogr:name></ogr:a></gml:featureMember>
  <gml:featureMember><ogr:a fid="a.3"><ogr:geometryProperty><gml:Point><gml:coordinates>5,5</gml:coordinates></gml:Point></ogr:geometryProperty><ogr:name>c</ogr:name></ogr:a></gml:featureMember>
</ogr:FeatureCollection>
"#;

/// A site: the WPS at /wps next to a text app in one urlmap, on a port chosen beforehand (so
/// `url` and `outputurl` in pywps.cfg name it), its outputs served at /wps/outputs.
/// The GML served as a reference input through the outputs mount.
const LAYER: &str = "layer-6f1c2a9e-4b7d-4c1e-9a8b-3d2e1f0a5b6c.gml";
/// One over `maxsingleinputsize`.
const BIG: &str = "big-0b4e5c6d-7e8f-4a1b-8c2d-3e4f5a6b7c8d.gml";

struct Site {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    port: u16,
    served: Served,
}

fn site(server_cfg: &str) -> Site {
    site_with(server_cfg, "")
}

/// [`site`], with more `[logging]` keys.
fn site_with(server_cfg: &str, logging_cfg: &str) -> Site {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().join("my conf"); // a space in the path, as %(here)s often has
    let port = free_port();
    write(
        &d,
        "pywps.cfg",
        &format!(
            "[metadata:main]
identification_title = Test WPS
provider_name = Test Provider
contact_fax = +00 99 88
contact_address = My Street 1
contact_stateorprovince = Some Area

[server]
url = http://127.0.0.1:{port}/wps
outputurl = http://127.0.0.1:{port}/wps/outputs/
outputpath = outputs
workdir = workdir
{server_cfg}

[logging]
level = INFO
{logging_cfg}
"
        ),
    );
    // A second file overrides the first key by key.
    write(
        &d,
        "local.cfg",
        "[metadata:main]\nidentification_abstract = local abstract\n",
    );
    // named as the app names its outputs: the mount serves nothing else
    write(&d, &format!("outputs/{LAYER}"), GML);
    let ini = write(
        &d,
        "site.ini",
        "[composite:main]
use = egg:Paste#urlmap
/wps = wps
/ = hello

[app:wps]
use = egg:PyWPS#app
pywps_cfg = %(here)s/pywps.cfg
    %(here)s/local.cfg
outputs = /outputs

[app:hello]
use = egg:mapproxy-serve#text
body = hello
",
    );
    let bind = format!("127.0.0.1:{port}");
    let served = support::serve(&[ini.to_str().expect("utf-8 path"), "-b", &bind], None);
    Site {
        dir: d,
        port,
        served,
        _dir: dir,
    }
}

impl Site {
    async fn get(&self, path: &str) -> Resp {
        get(self.served.addr(), path, &[]).await
    }
    async fn post(&self, body: &str) -> Resp {
        send(
            self.served.addr(),
            "POST",
            "/wps",
            &[("content-type", "text/xml")],
            body.to_string(),
        )
        .await
    }
    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
    fn outputs(&self) -> PathBuf {
        self.dir.join("outputs")
    }
}

/// `exceptionCode` and `locator` of an exception report.
fn exception(r: &Resp) -> (String, String, String) {
    let t = r.text();
    let attr = |name: &str| {
        t.split(&format!("{name}=\""))
            .nth(1)
            .and_then(|s| s.split('"').next())
            .unwrap_or("<none>")
            .to_string()
    };
    let text = t
        .split("<ows:ExceptionText>")
        .nth(1)
        .and_then(|s| s.split("</ows:ExceptionText>").next())
        .unwrap_or("")
        .to_string();
    (attr("exceptionCode"), attr("locator"), text)
}

fn between<'a>(t: &'a str, start: &str, end: &str) -> &'a str {
    t.split(start)
        .nth(1)
        .and_then(|s| s.split(end).next())
        .unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_check_and_exceptions_as_pywps() {
    let s = site("");
    // The seed's deployment check: wget -O - http://localhost/wps
    for path in ["/wps", "/wps/"] {
        let r = s.get(path).await;
        assert_eq!(r.status, 400, "{path}");
        assert_eq!(r.header("content-type"), "text/xml; charset=utf-8");
        assert_eq!(r.body.len(), 476, "PyWPS's 476 bytes: {}", r.text());
        assert!(r.text().contains(
            "<ows:Exception exceptionCode=\"MissingParameterValue\" locator=\"service\" >"
        ));
        assert_eq!(exception(&r).2, "service");
    }
    // The other app of the urlmap is untouched.
    assert_eq!(s.get("/").await.text(), "hello");
    let cases: &[(&str, u16, &str, &str, &str)] = &[
        ("?service=WPS", 400, "MissingParameterValue", "request", "Missing request value"),
        ("?service=foo&request=GetCapabilities", 400, "InvalidParameterValue", "service", "parameter SERVICE [foo] not supported"),
        ("?service=wps&request=Foo", 400, "OperationNotSupported", "Foo", "Unknown request foo"),
        ("?service=wps&request=DescribeProcess", 400, "MissingParameterValue", "identifier", "Missing parameter value &#34;identifier&#34;"),
        ("?service=wps&request=DescribeProcess&identifier=nope", 400, "InvalidParameterValue", "identifier", "Unknown process nope"),
        ("?service=wps&request=DescribeProcess&identifier=all&version=3.0.0", 400, "VersionNegotiationFailed", "version", "The requested version &#34;3.0.0&#34; is not supported by this server"),
        ("?service=wps&request=GetCapabilities&language=xx", 400, "InvalidParameterValue", "language", "The requested language &#34;xx&#34; is not supported by this server"),
        ("?service=wps&request=Execute&identifier=nope", 400, "InvalidParameterValue", "Identifier", "Unknown process &#39;nope&#39;"),
        ("?service=wps&request=Execute&identifier=say_hello", 400, "MissingParameterValue", "name", "name"),
        ("?service=wps&request=Execute&identifier=sleep&DataInputs=delay=x", 400, "InvalidParameterValue", "", "Could not convert value &#39;x&#39; to format &#39;float&#39;"),
        ("?service=wps&request=Execute&identifier=buffer&DataInputs=poly_in=x;buffer=7", 400, "InvalidParameterValue", "buffer", "Input value 7.0 of buffer is not in the allowed values"),
        ("?service=wps&request=Execute&identifier=say_hello&DataInputs=name=a&RawDataOutput=nope", 400, "InvalidParameterValue", "nope", "Unknown output nope of process say_hello"),
        ("?service=wps&request=Execute&identifier=ultimate_question&storeExecuteResponse=true", 400, "StorageNotSupported", "", "Process does not support the storing of the execute response"),
        ("?service=wps&request=Execute&identifier=feature_count&DataInputs=layer=x@mimeType=text/csv", 400, "InvalidParameterValue", "mimeType", "Invalid mimeType value text/csv for input layer"),
    ];
    for (q, status, code, locator, text) in cases {
        let r = s.get(&format!("/wps{q}")).await;
        assert_eq!(r.status, *status, "{q}: {}", r.text());
        assert_eq!(
            exception(&r),
            (code.to_string(), locator.to_string(), text.to_string()),
            "{q}"
        );
    }
    // POST: not XML, a WPS 2.0 document, another method.
    let r = s.post("not xml").await;
    assert_eq!(
        (r.status.as_u16(), exception(&r).0.as_str()),
        (400, "NoApplicableCode")
    );
    let r = s
        .post(r#"<wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/2.0" service="WPS"/>"#)
        .await;
    assert_eq!(exception(&r).0, "VersionNegotiationFailed");
    let r = send(s.served.addr(), "PUT", "/wps", &[], "x").await;
    assert_eq!(
        (r.status.as_u16(), exception(&r).0.as_str()),
        (405, "NoApplicableCode")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_and_describe() {
    let s = site("maxsingleinputsize = 2mb");
    let r = s.get("/wps?service=WPS&request=GetCapabilities").await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        "text/xml",
        "as PyWPS 4.8.1: no charset"
    );
    let t = r.text();
    assert!(t.contains("<wps:Capabilities service=\"WPS\" version=\"1.0.0\" xml:lang=\"en-US\""));
    assert!(t.contains("<ows:Title>Test WPS</ows:Title>"));
    assert!(
        t.contains("<ows:Abstract>local abstract</ows:Abstract>"),
        "the second cfg file wins"
    );
    // PyWPS leaves these empty (its template reads keys that do not exist): filled here.
    assert!(t.contains("<ows:Facsimile>+00 99 88</ows:Facsimile>"));
    assert!(t.contains("<ows:DeliveryPoint>My Street 1</ows:DeliveryPoint>"));
    assert!(t.contains("<ows:AdministrativeArea>Some Area</ows:AdministrativeArea>"));
    assert!(t.contains(&format!("<ows:Get xlink:href=\"{}\"/>", s.url("/wps"))));
    let ids: Vec<&str> = t
        .split("<wps:Process wps:processVersion=")
        .skip(1)
        .map(|p| between(p, "<ows:Identifier>", "</ows:Identifier>"))
        .collect();
    for id in [
        "say_hello",
        "ultimate_question",
        "sleep",
        "feature_count",
        "centroids",
        "buffer",
        "area",
    ] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    // POST GetCapabilities answers the same document.
    let r = s
        .post(r#"<wps:GetCapabilities xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS"><ows:AcceptVersions><ows:Version>1.0.0</ows:Version></ows:AcceptVersions></wps:GetCapabilities>"#)
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<ows:Title>Test WPS</ows:Title>"));

    let r = s
        .get("/wps?service=WPS&request=DescribeProcess&version=1.0.0&identifier=say_hello,buffer")
        .await;
    let t = r.text();
    assert_eq!(t.matches("<ProcessDescription ").count(), 2);
    assert!(t.contains("<ProcessDescription wps:processVersion=\"1.3.3.7\" storeSupported=\"true\" statusSupported=\"true\">"));
    assert!(t.contains("<ComplexData maximumMegabytes=\"2\">"));
    assert!(t.contains("<ows:Range ows:rangeClosure=\"closed\">"));
    // Bounds as the process wrote them, as PyWPS prints them.
    assert!(t.contains("<ows:MinimumValue>10</ows:MinimumValue>"), "{t}");
    let r = s
        .get("/wps?service=WPS&request=DescribeProcess&identifier=all")
        .await;
    assert!(r.text().matches("<ProcessDescription ").count() >= 7);
    let r = s
        .post(r#"<wps:DescribeProcess xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" service="WPS" version="1.0.0"><ows:Identifier>area</ows:Identifier></wps:DescribeProcess>"#)
        .await;
    assert!(r.text().contains("<ows:Identifier>area</ows:Identifier>"));
    assert_eq!(r.text().matches("<ProcessDescription ").count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn execute_kvp_xml_raw_lineage_and_references() {
    let s = site("maxsingleinputsize = 0.005mb\nmaxrequestsize = 0.02mb");
    // KVP, response document.
    let r = s
        .get("/wps?service=WPS&request=Execute&version=1.0.0&identifier=say_hello&DataInputs=name=W%2540rld")
        .await;
    assert_eq!(r.status, 200);
    let t = r.text();
    assert!(
        t.contains(&format!(
            "serviceInstance=\"{}?request=GetCapabilities&amp;service=WPS\" statusLocation=\"\"",
            s.url("/wps")
        )),
        "escaped once: {t}"
    );
    assert!(t.contains("<wps:ProcessSucceeded>"));
    assert!(t.contains("dataType=\"string\">Hello W@rld</wps:LiteralData>"));
    assert!(!t.contains("<wps:DataInputs>"), "no lineage unless asked");
    // Raw output.
    let r = s
        .get("/wps?service=WPS&request=Execute&identifier=say_hello&DataInputs=name=x&RawDataOutput=response")
        .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "Hello x"));
    assert_eq!(r.header("content-type"), "text/plain; charset=utf-8");
    assert_eq!(
        r.header("content-disposition"),
        "attachment; filename=\"response\""
    );
    // Lineage.
    let r = s
        .get("/wps?service=WPS&request=Execute&identifier=say_hello&DataInputs=name=x&lineage=true")
        .await;
    let t = r.text();
    assert!(t.contains("<wps:DataInputs>") && t.contains("<wps:LiteralData>x</wps:LiteralData>"));
    assert!(t.contains("<wps:OutputDefinitions>"));

    // XML POST with inline GML; area as a raw output.
    let execute = |process: &str, inputs: &str, form: &str| {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>{process}</ows:Identifier>
  <wps:DataInputs>{inputs}</wps:DataInputs>
  <wps:ResponseForm>{form}</wps:ResponseForm>
</wps:Execute>"#
        )
    };
    let inline = |id: &str| {
        format!(
            r#"<wps:Input><ows:Identifier>{id}</ows:Identifier><wps:Data><wps:ComplexData mimeType="application/gml+xml">{}</wps:ComplexData></wps:Data></wps:Input>"#,
            GML.trim_start_matches(r#"<?xml version="1.0" encoding="utf-8" ?>"#)
        )
    };
    let r = s
        .post(&execute(
            "area",
            &inline("layer"),
            "<wps:RawDataOutput><ows:Identifier>area</ows:Identifier></wps:RawDataOutput>",
        ))
        .await;
    assert_eq!(
        (r.status.as_u16(), r.text().as_str()),
        (200, "[4.0, 1.0, 0.0]")
    );
    let r = s
        .post(&execute("feature_count", &inline("layer"), "<wps:ResponseDocument><wps:Output><ows:Identifier>count</ows:Identifier></wps:Output></wps:ResponseDocument>"))
        .await;
    assert!(
        r.text()
            .contains("dataType=\"integer\">3</wps:LiteralData>"),
        "{}",
        r.text()
    );
    // Centroids as GeoJSON, raw.
    let r = s
        .post(&execute("centroids", &inline("layer"), "<wps:RawDataOutput mimeType=\"application/json\"><ows:Identifier>out</ows:Identifier></wps:RawDataOutput>"))
        .await;
    assert_eq!(r.header("content-type"), "application/json");
    let v: serde_json::Value = serde_json::from_slice(&r.body).expect("GeoJSON");
    assert_eq!(
        v["features"][0]["geometry"]["coordinates"],
        serde_json::json!([1.0, 1.0])
    );
    assert_eq!(v["features"][2]["properties"]["name"], "c");

    // Buffer, output as reference: written under outputpath, served by the outputs mount.
    let buffer_input = r#"<wps:Input><ows:Identifier>buffer</ows:Identifier><wps:Data><wps:LiteralData>1</wps:LiteralData></wps:Data></wps:Input>"#;
    let r = s
        .post(&execute("buffer", &(inline("poly_in") + buffer_input), "<wps:ResponseDocument lineage=\"true\"><wps:Output asReference=\"true\"><ows:Identifier>buff_out</ows:Identifier></wps:Output></wps:ResponseDocument>"))
        .await;
    let t = r.text();
    let href = between(&t, "<wps:Reference href=\"", "\"").to_string();
    assert!(
        href.starts_with(&s.url("/wps/outputs/buff_out-")) && href.ends_with(".gml"),
        "{t}"
    );
    assert!(
        t.contains("asReference=\"true\""),
        "lineage's output definitions: {t}"
    );
    assert!(
        t.contains("<wps:LiteralData>1.0</wps:LiteralData>"),
        "lineage shows the converted float: {t}"
    );
    let name = href.rsplit('/').next().expect("name");
    assert!(s.outputs().join(name).is_file());
    let r = s.get(&format!("/wps/outputs/{name}")).await;
    assert_eq!(r.header("content-type"), "application/gml+xml");
    assert_eq!(r.text().matches("<gml:featureMember>").count(), 3);
    assert_eq!(s.get("/wps/outputs/..%2Fpywps.cfg").await.status, 404);
    // a file the app did not write is not served, whatever its name
    write(&s.outputs(), "secret.txt", "not for you");
    assert_eq!(s.get("/wps/outputs/secret.txt").await.status, 404);
    // a key given twice: its first value, as Werkzeug's args.get; `True` is not `true`
    let r = s
        .get("/wps?service=WPS&request=Execute&identifier=say_hello&identifier=nope&DataInputs=name=x&storeExecuteResponse=True&status=True")
        .await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("<wps:ProcessSucceeded>"), "{}", r.text());

    // Complex input by reference through the shared client (this server's outputs mount),
    // KVP and XML; too large → FileSizeExceeded.
    let layer = s.url(&format!("/wps/outputs/{LAYER}"));
    let r = s
        .get(&format!(
            "/wps?service=WPS&request=Execute&identifier=feature_count&DataInputs=layer=@xlink:href={layer}&RawDataOutput=count"
        ))
        .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "3"));
    // a reference that redirects (twice, the second relatively) is followed, as PyWPS's requests
    let redirect = redirector(vec!["/again".to_string(), layer.clone()]);
    let r = s
        .get(&format!(
            "/wps?service=WPS&request=Execute&identifier=feature_count&DataInputs=layer=@xlink:href=http://{redirect}/first&RawDataOutput=count"
        ))
        .await;
    assert_eq!((r.status.as_u16(), r.text().as_str()), (200, "3"));
    let big = format!("{}{}", GML, " ".repeat(6000));
    write(&s.outputs(), BIG, &big);
    let r = s
        .post(&execute(
            "feature_count",
            &format!(r#"<wps:Input><ows:Identifier>layer</ows:Identifier><wps:Reference xlink:href="{}" mimeType="application/gml+xml"/></wps:Input>"#, s.url(&format!("/wps/outputs/{BIG}"))),
            "",
        ))
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(exception(&r).0, "FileSizeExceeded");
    assert_eq!(exception(&r).1, "layer");
    // Inline data over maxsingleinputsize too.
    let r = s
        .post(&execute("feature_count", &format!(r#"<wps:Input><ows:Identifier>layer</ows:Identifier><wps:Data><wps:ComplexData mimeType="application/gml+xml"><![CDATA[{big}]]></wps:ComplexData></wps:Data></wps:Input>"#), ""))
        .await;
    assert_eq!(exception(&r).0, "FileSizeExceeded");
    // A POST body over maxrequestsize.
    let r = s.post(&" ".repeat(30_000)).await;
    assert_eq!(r.status, 400);
    assert_eq!(
        exception(&r),
        (
            "FileSizeExceeded".to_string(),
            String::new(),
            "File size for input exceeded. Maximum request size allowed: 0.02 megabytes"
                .to_string()
        )
    );
    // file: references are refused (no allowedinputpaths).
    let r = s
        .get("/wps?service=WPS&request=Execute&identifier=feature_count&DataInputs=layer=@xlink:href=file:///etc/passwd")
        .await;
    assert_eq!(exception(&r).0, "FileURLNotSupported");
}

/// Polls a status document until it holds `what`; every version seen.
async fn poll_status(s: &Site, status_url: &str, what: &str) -> Vec<String> {
    let path = status_url
        .strip_prefix(&s.url(""))
        .unwrap_or_else(|| panic!("status location {status_url} is not on this server"))
        .to_string();
    let end = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    loop {
        let r = s.get(&path).await;
        assert_eq!(r.status, 200, "{path}");
        let t = r.text();
        let done = t.contains(what);
        if seen.last() != Some(&t) {
            seen.push(t);
        }
        if done {
            return seen;
        }
        assert!(Instant::now() < end, "no {what} within 30 s: {seen:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_life_cycle_and_limits() {
    let s = site("parallelprocesses = 1\nmaxprocesses = 1");
    let start = |delay: &str| {
        format!("/wps?service=WPS&request=Execute&identifier=sleep&DataInputs=delay={delay}&storeExecuteResponse=true&status=true")
    };
    // One running (five waits of 0.3 s).
    let r = s.get(&start("0.3")).await;
    let t = r.text();
    assert!(t.contains("<wps:ProcessAccepted percentCompleted=\"0\">PyWPS Process sleep accepted</wps:ProcessAccepted>"), "{t}");
    let first = between(&t, "statusLocation=\"", "\"").to_string();
    assert!(first.starts_with(&s.url("/wps/outputs/")) && first.ends_with(".xml"));
    // One queued.
    let r = s.get(&start("0.01")).await;
    assert!(r.text().contains("ProcessAccepted"), "{}", r.text());
    let second = between(&r.text(), "statusLocation=\"", "\"").to_string();
    // The queue is full: ServerBusy, its own body.
    let r = s.get(&start("0.01")).await;
    assert_eq!(r.status, 400);
    assert!(r.text().contains("<ows:Exception exceptionCode=\"ServerBusy\">Maximum number of processes in queue reached. Please try later.</ows:Exception>"), "{}", r.text());
    // A synchronous run finds no free slot either.
    let r = s
        .get("/wps?service=WPS&request=Execute&identifier=ultimate_question")
        .await;
    assert_eq!(exception(&r).0, "ServerBusy");

    let seen = poll_status(&s, &first, "<wps:ProcessSucceeded>").await;
    let percents: Vec<u32> = seen
        .iter()
        .filter_map(|t| {
            between(t, "<wps:ProcessStarted percentCompleted=\"", "\"")
                .parse()
                .ok()
        })
        .collect();
    assert!(
        !percents.is_empty(),
        "the status document showed ProcessStarted: {seen:?}"
    );
    assert!(
        percents.windows(2).all(|w| w[0] <= w[1]),
        "rising: {percents:?}"
    );
    let last = seen.last().expect("a document");
    assert!(last.contains(&format!("statusLocation=\"{first}\"")));
    assert!(last.contains(">done sleeping</wps:LiteralData>"));
    // The queued job ran too (none lost), and slots are free again.
    let seen = poll_status(&s, &second, "<wps:ProcessSucceeded>").await;
    assert!(seen.last().expect("doc").contains(">done sleeping<"));
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.get("/wps?service=WPS&request=Execute&identifier=ultimate_question&RawDataOutput=answer").await;
        if r.status == 200 {
            assert_eq!(r.text(), "42");
            break;
        }
        assert!(Instant::now() < end, "slot not released: {}", r.text());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Status is written atomically: no temporary files left behind.
    let leftovers: Vec<_> = std::fs::read_dir(s.outputs())
        .expect("outputs")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
    // Working directories are removed (cleantempdir defaults to true).
    let left = std::fs::read_dir(s.dir.join("workdir"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(left, 0);
}

#[test]
fn configuration_errors_name_file_and_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "pywps.cfg",
        "[server]\nurl = http://x/wps\nparallelprocesses = lots\n",
    );
    let ini = write(
        d,
        "wps.ini",
        "[app:main]\nuse = egg:mapproxy-serve#wps\npywps_cfg = pywps.cfg\nprocesses = say_hello\n    nope\n",
    );
    let out = run(&["check", ini.to_str().expect("path")], None);
    assert_eq!(out.code(), Some(2), "{}", out.stderr);
    let cfg: &Path = &d.join("pywps.cfg");
    assert!(
        out.stderr.contains(&format!(
            "{}:3: [server] key 'parallelprocesses'",
            cfg.display()
        )),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("wps.ini:4: [app:main] key 'processes': unknown process 'nope'"),
        "{}",
        out.stderr
    );
    let ini = write(
        d,
        "missing.ini",
        "[app:main]\nuse = egg:PyWPS#app\npywps_cfg = gone.cfg\n",
    );
    let out = run(&["check", ini.to_str().expect("path")], None);
    assert_eq!(out.code(), Some(2));
    assert!(
        out.stderr
            .contains("missing.ini:3: [app:main] pywps_cfg: cannot use"),
        "{}",
        out.stderr
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owslib_as_a_client() {
    let python = match std::env::var("WPS_OWSLIB_PYTHON") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "WPS_OWSLIB_PYTHON is not set (required when CI=true; .ci/test installs OWSLib)"
            );
            eprintln!("SKIP: WPS_OWSLIB_PYTHON is not set; the OWSLib client test does not run");
            return;
        }
    };
    let s = site("");
    let script = support::repo_root().join("tests/fixtures/wps/owslib_client.py");
    let wps = s.url("/wps");
    let layer = s.url(&format!("/wps/outputs/{LAYER}"));
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(python)
            .arg(script)
            .arg(wps)
            .arg(layer)
            .output()
            .expect("run OWSLib")
    })
    .await
    .expect("join");
    assert!(
        out.status.success(),
        "OWSLib failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON from the script");
    assert_eq!(v["title"], "Test WPS");
    assert_eq!(v["provider"], "Test Provider");
    assert!(v["processes"]
        .as_array()
        .expect("list")
        .contains(&"say_hello".into()));
    assert_eq!(v["buffer_inputs"], serde_json::json!(["poly_in", "buffer"]));
    assert_eq!(v["buffer_outputs"], serde_json::json!(["buff_out"]));
    assert_eq!(v["sync_status"], "ProcessSucceeded");
    assert_eq!(v["sync_output"], serde_json::json!(["Hello OWSLib"]));
    assert_eq!(v["reference_status"], "ProcessSucceeded");
    assert_eq!(v["reference_output"], serde_json::json!(["3"]));
    assert_eq!(v["async_first_status"], "ProcessAccepted");
    assert!(v["async_status_location"]
        .as_str()
        .expect("url")
        .starts_with(&s.url("/wps/outputs/")));
    assert_eq!(v["async_status"], "ProcessSucceeded");
    assert_eq!(v["async_output"], serde_json::json!(["done sleeping"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shipped_ini_serves_wps_next_to_mapproxy() {
    let ini = support::repo_root().join("ini/wps.ini");
    let served = Served::start(&ini, &[]);
    let r = get(served.addr(), "/wps", &[]).await;
    assert_eq!(r.status, 400);
    assert_eq!(exception(&r).1, "service");
    let r = get(served.addr(), "/wps?service=WPS&request=Execute&identifier=say_hello&DataInputs=name=ini&RawDataOutput=response", &[]).await;
    assert_eq!(r.text(), "Hello ini");
    let r = get(served.addr(), "/mapproxy/tms/1.0.0/", &[]).await;
    assert_eq!(r.status, 200, "MapProxy in the same urlmap: {}", r.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_process_and_a_cfg_edit() {
    // `[logging] file` (relative to the cfg) and `format`: PyWPS's FileHandler on PYWPS
    let s = site_with(
        "",
        "file = pywps.log\nformat = %(levelname)s %(name)s: %(message)s",
    );
    // feature_count on something that is not GML: the process fails (a ProcessError), the
    // answer is a document with ProcessFailed, synchronously and in the status document.
    let run =
        "/wps?service=WPS&request=Execute&identifier=feature_count&DataInputs=layer=not%2520xml";
    let r = s.get(run).await;
    assert_eq!(r.status, 200);
    let t = r.text();
    assert!(t.contains("<wps:ProcessFailed>"), "{t}");
    assert!(
        t.contains("<ows:ExceptionText>Process error: the GML does not parse"),
        "{t}"
    );
    let r = s
        .get(&format!("{run}&storeExecuteResponse=true&status=true"))
        .await;
    let loc = between(&r.text(), "statusLocation=\"", "\"").to_string();
    let seen = poll_status(&s, &loc, "<wps:ProcessFailed>").await;
    assert!(seen
        .last()
        .expect("doc")
        .contains("Process error: the GML does not parse"));
    let log = s.dir.join("pywps.log");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("ERROR PYWPS: Process error: the GML does not parse") {
            break;
        }
        assert!(Instant::now() < deadline, "PYWPS log file: {text:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_pywps_cfg_reloads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = write(
        dir.path(),
        "pywps.cfg",
        "[metadata:main]\nidentification_title = before\n",
    );
    let ini = write(
        dir.path(),
        "wps.ini",
        "[app:main]\nuse = egg:PyWPS#app\npywps_cfg = pywps.cfg\n",
    );
    let served = support::serve(
        &[ini.to_str().expect("path"), "-b", "127.0.0.1:0", "--reload"],
        None,
    );
    let caps = "/?service=WPS&request=GetCapabilities";
    assert!(get(served.addr(), caps, &[])
        .await
        .text()
        .contains("<ows:Title>before</ows:Title>"));
    support::write_by_rename(&cfg, "[metadata:main]\nidentification_title = after\n");
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        if get(served.addr(), caps, &[])
            .await
            .text()
            .contains("<ows:Title>after</ows:Title>")
        {
            break;
        }
        assert!(
            Instant::now() < end,
            "no reload within 20 s:\n{}",
            served.stderr()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A loopback server answering its n-th request with `301 Location: locations[n]` (the last
/// one for every later request); one request per connection.
fn redirector(locations: Vec<String>) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    std::thread::spawn(move || {
        for (n, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { return };
            let mut buf = [0u8; 4096];
            let mut head = Vec::new();
            while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(k) => head.extend_from_slice(&buf[..k]),
                }
            }
            let to = &locations[n.min(locations.len() - 1)];
            let _ = write!(
                stream,
                "HTTP/1.1 301 Moved Permanently\r\nLocation: {to}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    addr
}
