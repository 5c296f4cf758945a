//! Requests as PyWPS parses them (`pywps/app/WPSRequest.py`): KVP on GET (keys compared
//! case-insensitively, the last one given wins; `DataInputs=a=1;b=2@uom=m@xlink:href=...`)
//! and the XML documents of WPS 1.0.0 on POST.

use crate::exception::{Code, WpsException};

const WPS_NS: &str = "http://www.opengis.net/wps/1.0.0";
const OWS_NS: &str = "http://www.opengis.net/ows/1.1";
const XLINK_NS: &str = "http://www.w3.org/1999/xlink";

/// A parsed request.
#[derive(Clone, Debug, PartialEq)]
pub enum WpsRequest {
    /// `GetCapabilities`
    GetCapabilities {
        /// `language`, if given.
        language: Option<String>,
    },
    /// `DescribeProcess`
    DescribeProcess {
        /// `identifier` list (`all` for every process).
        identifiers: Vec<String>,
        /// `language`, if given.
        language: Option<String>,
    },
    /// `Execute`
    Execute(ExecuteSpec),
}

/// One input value as the request gave it (its meaning depends on the process's input).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RawInput {
    /// The value or inline data (`None` for references).
    pub data: Option<String>,
    /// `xlink:href` of a reference.
    pub href: Option<String>,
    /// `mimeType`
    pub mime_type: Option<String>,
    /// `encoding`
    pub encoding: String,
    /// `schema`
    pub schema: String,
    /// `uom`
    pub uom: Option<String>,
    /// A parsed `wps:BoundingBoxData`: lower, upper, crs.
    pub bbox: Option<(Vec<f64>, Vec<f64>, Option<String>)>,
}

/// One requested output.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutputRequest {
    /// Identifier.
    pub identifier: String,
    /// `mimeType` asked for.
    pub mime_type: Option<String>,
    /// `asReference`
    pub as_reference: bool,
    /// `uom`
    pub uom: Option<String>,
}

/// An Execute request.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ExecuteSpec {
    /// The process.
    pub identifier: String,
    /// Inputs in the order given, values grouped by identifier.
    pub inputs: Vec<(String, Vec<RawInput>)>,
    /// `ResponseDocument` outputs (empty: all).
    pub outputs: Vec<OutputRequest>,
    /// `RawDataOutput`: the one output to answer with, raw.
    pub raw: Option<OutputRequest>,
    /// `storeExecuteResponse`
    pub store: bool,
    /// `status`
    pub status: bool,
    /// `lineage`
    pub lineage: bool,
    /// `language`, if given.
    pub language: Option<String>,
}

/// How many distinct input identifiers one Execute may name (a process declares a handful).
const MAX_DISTINCT_INPUTS: usize = 256;

impl ExecuteSpec {
    fn push_input(&mut self, id: String, v: RawInput) {
        let full = self.inputs.len() >= MAX_DISTINCT_INPUTS;
        match self.inputs.iter_mut().find(|(i, _)| *i == id) {
            Some((_, vs)) => vs.push(v),
            // identifiers beyond any process description's are dropped (the lookup stays
            // bounded: a 3 MB request can name 30,000)
            None if full => {}
            None => self.inputs.push((id, vec![v])),
        }
    }
}

/// The query string's pairs, decoded (`+` is a space).
pub fn query_pairs(query: &str) -> Vec<(String, String)> {
    form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `_get_get_param`: over the distinct keys in order (Werkzeug's `args.keys()`), the first
/// value (`args.get(k)`) of the last key equal to `key` ignoring case: `a=1&a=2` is 1,
/// `a=1&A=2` is 2.
fn param<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    let mut found = None;
    for (i, (k, v)) in pairs.iter().enumerate() {
        let first_of_key = !pairs[..i].iter().any(|(seen, _)| seen == k);
        if first_of_key && k.eq_ignore_ascii_case(key) {
            found = Some(v.as_str());
        }
    }
    found
}

/// PyWPS compares with `== 'true'`: `True` or ` true` is false.
fn is_true(v: Option<&str>) -> bool {
    v == Some("true")
}

/// `check_and_set_version`: 1.0.0 (the default) only.
fn check_version(v: Option<&str>) -> Result<(), WpsException> {
    match v {
        None | Some("") | Some("1.0.0") => Ok(()),
        Some(other) => Err(WpsException::new(
            Code::VersionNegotiationFailed,
            format!("The requested version \"{other}\" is not supported by this server"),
            "version",
        )),
    }
}

/// A GET request's query.
pub fn parse_kvp(query: &str) -> Result<WpsRequest, WpsException> {
    let pairs = query_pairs(query);
    match param(&pairs, "service") {
        Some(s) if !s.is_empty() => {
            if !s.eq_ignore_ascii_case("wps") {
                return Err(WpsException::invalid(
                    format!("parameter SERVICE [{s}] not supported"),
                    "service",
                ));
            }
        }
        _ => return Err(WpsException::missing("service", "service")),
    }
    let Some(op) = param(&pairs, "request").filter(|r| !r.is_empty()) else {
        return Err(WpsException::missing("Missing request value", "request"));
    };
    let language = param(&pairs, "language").map(str::to_string);
    match op.to_ascii_lowercase().as_str() {
        "getcapabilities" => {
            if let Some(accept) = param(&pairs, "acceptversions").filter(|a| !a.is_empty()) {
                if !accept.split(',').any(|v| v.trim() == "1.0.0") {
                    return Err(WpsException::new(
                        Code::VersionNegotiationFailed,
                        format!(
                            "The requested version \"{accept}\" is not supported by this server"
                        ),
                        "version",
                    ));
                }
            }
            Ok(WpsRequest::GetCapabilities { language })
        }
        "describeprocess" => {
            check_version(param(&pairs, "version"))?;
            let identifiers = param(&pairs, "identifier")
                .map(|v| v.split(',').map(str::to_string).collect())
                .unwrap_or_default();
            Ok(WpsRequest::DescribeProcess {
                identifiers,
                language,
            })
        }
        "execute" => {
            check_version(param(&pairs, "version"))?;
            let mut spec = ExecuteSpec {
                identifier: param(&pairs, "identifier").unwrap_or("").to_string(),
                store: is_true(param(&pairs, "storeExecuteResponse")),
                status: is_true(param(&pairs, "status")),
                lineage: is_true(param(&pairs, "lineage")),
                language,
                ..ExecuteSpec::default()
            };
            if let Some(d) = param(&pairs, "DataInputs") {
                for (id, attrs, data) in kvp_items(d) {
                    let mut input = RawInput {
                        data: Some(data),
                        ..RawInput::default()
                    };
                    for (k, v) in attrs {
                        match k.as_str() {
                            "xlink:href" | "href" => input.href = Some(v),
                            "mimeType" | "mimetype" => input.mime_type = Some(v),
                            "encoding" => input.encoding = v.to_ascii_lowercase(),
                            "schema" => input.schema = v,
                            "uom" => input.uom = Some(v),
                            _ => {}
                        }
                    }
                    if input.href.is_some() {
                        input.data = None;
                    }
                    spec.push_input(id, input);
                }
            }
            // ResponseDocument is taken first, as PyWPS does.
            if let Some(doc) = param(&pairs, "ResponseDocument") {
                spec.outputs = kvp_items(doc)
                    .into_iter()
                    .map(|(id, attrs, _)| output_request(id, attrs))
                    .collect();
            } else if let Some(raw) = param(&pairs, "RawDataOutput") {
                spec.raw = kvp_items(raw)
                    .into_iter()
                    .next()
                    .map(|(id, attrs, _)| output_request(id, attrs));
                // A raw answer is neither stored nor updated.
                spec.store = false;
                spec.status = false;
            }
            Ok(WpsRequest::Execute(spec))
        }
        _ => Err(WpsException::new(
            Code::OperationNotSupported,
            format!("Unknown request {}", op.to_ascii_lowercase()),
            op,
        )),
    }
}

fn output_request(id: String, attrs: Vec<(String, String)>) -> OutputRequest {
    let mut o = OutputRequest {
        identifier: id,
        ..OutputRequest::default()
    };
    for (k, v) in attrs {
        match k.as_str() {
            "mimeType" | "mimetype" => o.mime_type = Some(v),
            "asReference" | "asreference" => o.as_reference = v.eq_ignore_ascii_case("true"),
            "uom" => o.uom = Some(v),
            _ => {}
        }
    }
    o
}

/// One `id=value@attr=v` item: identifier, attributes, value.
type KvpItem = (String, Vec<(String, String)>, String);

/// `get_data_from_kvp`: `id=value@attr=v@...` items separated by `;`, each value
/// percent-decoded once more. An item without `=` is an identifier with no value.
fn kvp_items(s: &str) -> Vec<KvpItem> {
    let unquote = |v: &str| percent_decode(v);
    s.split(';')
        .filter(|item| !item.is_empty())
        .map(|item| {
            let mut fields = item.split('@');
            let first = fields.next().unwrap_or("");
            let (id, value) = match first.split_once('=') {
                Some((i, v)) => (i.to_string(), unquote(v)),
                None => (first.to_string(), String::new()),
            };
            let attrs = fields
                .filter_map(|a| a.split_once('='))
                .map(|(k, v)| (k.to_string(), unquote(v)))
                .collect();
            (id, attrs, value)
        })
        .collect()
}

/// Python's `urllib.parse.unquote` (`%XX` only; `+` stays).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// A POST body: a WPS 1.0.0 XML request.
pub fn parse_xml(body: &str) -> Result<WpsRequest, WpsException> {
    let opts = roxmltree::ParsingOptions {
        allow_dtd: false,
        ..roxmltree::ParsingOptions::default()
    };
    let doc = roxmltree::Document::parse_with_options(body, opts)
        .map_err(|e| WpsException::new(Code::NoApplicableCode, e.to_string(), ""))?;
    let root = doc.root_element();
    let ns = root.tag_name().namespace().unwrap_or("");
    if ns != WPS_NS {
        if ns.starts_with("http://www.opengis.net/wps/") {
            return Err(WpsException::new(
                Code::VersionNegotiationFailed,
                format!(
                    "The requested version \"{}\" is not supported by this server",
                    ns.rsplit('/').next().unwrap_or(ns)
                ),
                "version",
            ));
        }
        return Err(WpsException::invalid(
            format!("Unknown request {{{ns}}}{}", root.tag_name().name()),
            "request",
        ));
    }
    let language = root.attribute("language").map(str::to_string);
    match root.tag_name().name() {
        "GetCapabilities" => {
            let versions: Vec<&str> = root
                .descendants()
                .filter(|n| n.has_tag_name((OWS_NS, "Version")))
                .filter_map(|n| n.text())
                .collect();
            if !versions.is_empty() && !versions.iter().any(|v| v.trim() == "1.0.0") {
                return Err(WpsException::new(
                    Code::VersionNegotiationFailed,
                    format!(
                        "The requested version \"{}\" is not supported by this server",
                        versions.join(",")
                    ),
                    "version",
                ));
            }
            Ok(WpsRequest::GetCapabilities { language })
        }
        "DescribeProcess" => {
            check_version(root.attribute("version"))?;
            let identifiers = children(root, OWS_NS, "Identifier")
                .map(|n| n.text().unwrap_or("").trim().to_string())
                .collect();
            Ok(WpsRequest::DescribeProcess {
                identifiers,
                language,
            })
        }
        "Execute" => parse_execute(root, language),
        other => Err(WpsException::invalid(
            format!("Unknown request {{{WPS_NS}}}{other}"),
            "request",
        )),
    }
}

fn children<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    n.children().filter(move |c| c.has_tag_name((ns, name)))
}

fn child<'a, 'i>(
    n: roxmltree::Node<'a, 'i>,
    ns: &'static str,
    name: &'static str,
) -> Option<roxmltree::Node<'a, 'i>> {
    children(n, ns, name).next()
}

fn identifier_of(n: roxmltree::Node<'_, '_>) -> Option<String> {
    child(n, OWS_NS, "Identifier").map(|i| i.text().unwrap_or("").trim().to_string())
}

fn parse_execute(
    root: roxmltree::Node<'_, '_>,
    language: Option<String>,
) -> Result<WpsRequest, WpsException> {
    check_version(root.attribute("version"))?;
    let Some(identifier) = identifier_of(root) else {
        return Err(WpsException::missing(
            "Process identifier not set",
            "Identifier",
        ));
    };
    let mut spec = ExecuteSpec {
        identifier,
        language,
        ..ExecuteSpec::default()
    };
    if let Some(inputs) = child(root, WPS_NS, "DataInputs") {
        for input in children(inputs, WPS_NS, "Input") {
            let Some(id) = identifier_of(input) else {
                return Err(WpsException::missing(
                    "Input identifier not set",
                    "Identifier",
                ));
            };
            let data = child(input, WPS_NS, "Data");
            if let Some(lit) = data.and_then(|d| child(d, WPS_NS, "LiteralData")) {
                spec.push_input(
                    id,
                    RawInput {
                        data: Some(lit.text().unwrap_or("").to_string()),
                        uom: lit
                            .attribute("uom")
                            .filter(|u| !u.is_empty())
                            .map(str::to_string),
                        ..RawInput::default()
                    },
                );
            } else if let Some(cx) = data.and_then(|d| child(d, WPS_NS, "ComplexData")) {
                spec.push_input(
                    id,
                    RawInput {
                        data: Some(complex_content(cx)),
                        mime_type: cx.attribute("mimeType").map(str::to_string),
                        encoding: cx.attribute("encoding").unwrap_or("").to_ascii_lowercase(),
                        schema: cx.attribute("schema").unwrap_or("").to_string(),
                        ..RawInput::default()
                    },
                );
            } else if let Some(bb) = data.and_then(|d| child(d, WPS_NS, "BoundingBoxData")) {
                let corner = |name: &'static str| -> Result<Vec<f64>, WpsException> {
                    let text = child(bb, OWS_NS, name)
                        .or_else(|| child(bb, WPS_NS, name))
                        .and_then(|n| n.text())
                        .unwrap_or("");
                    text.split_whitespace()
                        .map(|v| {
                            v.parse::<f64>().map_err(|_| {
                                WpsException::invalid(
                                    format!("Could not convert value '{v}' of {name} to a number"),
                                    id.clone(),
                                )
                            })
                        })
                        .collect()
                };
                spec.push_input(
                    id.clone(),
                    RawInput {
                        bbox: Some((
                            corner("LowerCorner")?,
                            corner("UpperCorner")?,
                            bb.attribute("crs").map(str::to_string),
                        )),
                        ..RawInput::default()
                    },
                );
            } else if let Some(r) = child(input, WPS_NS, "Reference") {
                if r.attribute("method")
                    .is_some_and(|m| !m.eq_ignore_ascii_case("GET"))
                {
                    return Err(WpsException::invalid(
                        "Only references fetched with GET are supported",
                        id,
                    ));
                }
                spec.push_input(
                    id,
                    RawInput {
                        href: Some(
                            r.attribute((XLINK_NS, "href"))
                                .or_else(|| r.attribute("href"))
                                .unwrap_or("")
                                .to_string(),
                        ),
                        mime_type: r.attribute("mimeType").map(str::to_string),
                        encoding: r.attribute("encoding").unwrap_or("").to_ascii_lowercase(),
                        schema: r.attribute("schema").unwrap_or("").to_string(),
                        ..RawInput::default()
                    },
                );
            } else {
                return Err(WpsException::missing(
                    format!("No data given for input {id}"),
                    id,
                ));
            }
        }
    }
    if let Some(form) = child(root, WPS_NS, "ResponseForm") {
        if let Some(doc) = child(form, WPS_NS, "ResponseDocument") {
            spec.store = doc.attribute("storeExecuteResponse") == Some("true");
            spec.status = doc.attribute("status") == Some("true");
            spec.lineage = doc.attribute("lineage") == Some("true");
            for o in children(doc, WPS_NS, "Output") {
                spec.outputs.push(OutputRequest {
                    identifier: identifier_of(o).unwrap_or_default(),
                    mime_type: o.attribute("mimeType").map(str::to_string),
                    as_reference: o.attribute("asReference") == Some("true"),
                    uom: o.attribute("uom").map(str::to_string),
                });
            }
        } else if let Some(raw) = child(form, WPS_NS, "RawDataOutput") {
            spec.raw = Some(OutputRequest {
                identifier: identifier_of(raw).unwrap_or_default(),
                mime_type: raw.attribute("mimeType").map(str::to_string),
                uom: raw.attribute("uom").map(str::to_string),
                ..OutputRequest::default()
            });
        }
    }
    Ok(WpsRequest::Execute(spec))
}

/// `wps:ComplexData`'s content: its first child element as XML (with the namespace
/// declarations it inherits added to its start tag, so it parses on its own, as lxml's
/// `tostring` does), else its text (CDATA included).
fn complex_content(cx: roxmltree::Node<'_, '_>) -> String {
    let Some(el) = cx.children().find(|c| c.is_element()) else {
        return cx.children().filter_map(|c| c.text()).collect::<String>();
    };
    let src = cx.document().input_text();
    let range = el.range();
    let raw = &src[range];
    // The end of the start tag's name: insert the declarations right after it.
    let name_end = raw[1..]
        .find(|c: char| c.is_whitespace() || c == '>' || c == '/')
        .map_or(raw.len(), |p| p + 1);
    let start_tag_end = raw.find('>').unwrap_or(raw.len());
    let start_tag = &raw[..start_tag_end];
    let mut decls = String::new();
    for ns in el.namespaces() {
        let (attr, uri) = match ns.name() {
            Some(p) => (format!("xmlns:{p}="), ns.uri()),
            None => ("xmlns=".to_string(), ns.uri()),
        };
        if p_is_xml(ns.name()) || start_tag.contains(&attr) {
            continue;
        }
        decls.push(' ');
        decls.push_str(&attr);
        decls.push('"');
        decls.push_str(&crate::xml::esc(uri));
        decls.push('"');
    }
    format!("{}{}{}", &raw[..name_end], decls, &raw[name_end..])
}

fn p_is_xml(prefix: Option<&str>) -> bool {
    prefix == Some("xml")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvp_execute() {
        let r = parse_kvp(
            "service=WPS&request=execute&version=1.0.0&identifier=say_hello&DataInputs=name=J%2540ne;x=1@uom=m@xlink:href=http://h/a%3Fb&RawDataOutput=response",
        )
        .unwrap();
        let WpsRequest::Execute(s) = r else { panic!() };
        assert_eq!(s.identifier, "say_hello");
        assert_eq!(s.inputs[0].1[0].data.as_deref(), Some("J@ne"));
        assert_eq!(s.inputs[1].1[0].uom.as_deref(), Some("m"));
        assert_eq!(s.inputs[1].1[0].href.as_deref(), Some("http://h/a?b"));
        assert_eq!(s.raw.unwrap().identifier, "response");
    }

    #[test]
    fn kvp_errors_as_pywps() {
        let e = parse_kvp("").unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_str(), e.text.as_str()),
            (Code::MissingParameterValue, "service", "service")
        );
        let e = parse_kvp("service=WPS").unwrap_err();
        assert_eq!(
            (e.locator.as_str(), e.text.as_str()),
            ("request", "Missing request value")
        );
        let e = parse_kvp("service=foo&request=GetCapabilities").unwrap_err();
        assert_eq!(e.text, "parameter SERVICE [foo] not supported");
        let e = parse_kvp("service=wps&request=Foo").unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_str(), e.text.as_str()),
            (Code::OperationNotSupported, "Foo", "Unknown request foo")
        );
        let e = parse_kvp("service=wps&request=DescribeProcess&version=3.0.0").unwrap_err();
        assert_eq!(
            (e.code, e.locator.as_str()),
            (Code::VersionNegotiationFailed, "version")
        );
    }

    #[test]
    fn xml_execute_keeps_inherited_namespaces() {
        let body = r#"<wps:Execute service="WPS" version="1.0.0" xmlns:wps="http://www.opengis.net/wps/1.0.0" xmlns:ows="http://www.opengis.net/ows/1.1" xmlns:gml="http://www.opengis.net/gml" xmlns:xlink="http://www.w3.org/1999/xlink">
  <ows:Identifier>area</ows:Identifier>
  <wps:DataInputs>
    <wps:Input><ows:Identifier>layer</ows:Identifier>
      <wps:Data><wps:ComplexData mimeType="application/gml+xml"><gml:FeatureCollection><gml:featureMember/></gml:FeatureCollection></wps:ComplexData></wps:Data></wps:Input>
    <wps:Input><ows:Identifier>r</ows:Identifier><wps:Reference xlink:href="http://x/y.gml"/></wps:Input>
    <wps:Input><ows:Identifier>b</ows:Identifier><wps:Data><wps:BoundingBoxData crs="EPSG:4326" dimensions="2"><ows:LowerCorner>1 2</ows:LowerCorner><ows:UpperCorner>3 4</ows:UpperCorner></wps:BoundingBoxData></wps:Data></wps:Input>
  </wps:DataInputs>
  <wps:ResponseForm><wps:ResponseDocument storeExecuteResponse="true" status="true" lineage="true"><wps:Output asReference="true"><ows:Identifier>area</ows:Identifier></wps:Output></wps:ResponseDocument></wps:ResponseForm>
</wps:Execute>"#;
        let WpsRequest::Execute(s) = parse_xml(body).unwrap() else {
            panic!()
        };
        let gml = s.inputs[0].1[0].data.clone().unwrap();
        assert!(gml.starts_with("<gml:FeatureCollection xmlns:"), "{gml}");
        assert!(
            gml.contains(" xmlns:gml=\"http://www.opengis.net/gml\""),
            "{gml}"
        );
        assert!(roxmltree::Document::parse(&gml).is_ok());
        assert_eq!(s.inputs[1].1[0].href.as_deref(), Some("http://x/y.gml"));
        assert_eq!(
            s.inputs[2].1[0].bbox,
            Some((vec![1.0, 2.0], vec![3.0, 4.0], Some("EPSG:4326".into())))
        );
        assert!(s.store && s.status && s.lineage && s.outputs[0].as_reference);
    }
}
