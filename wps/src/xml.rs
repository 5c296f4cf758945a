//! The WPS 1.0.0 documents, shaped like PyWPS's Jinja templates (`templates/1.0.0/`): the
//! same namespaces, element order and attributes. Every text and attribute value goes
//! through [`esc`], once.

use std::borrow::Cow;
use std::fmt::Write as _;

use crate::config::WpsConfig;
use crate::process::{
    AllowedValue, DataType, Format, InputKind, InputValue, Inputs, LiteralValue, OutputKind,
    OutputValue, ProcessDesc,
};

/// Escapes text or an attribute value as PyWPS does (markupsafe, Jinja's autoescape:
/// `&amp; &lt; &gt; &#34; &#39;`), so that documents and exception texts are byte-identical to
/// PyWPS's. Written here because the XML crates (quick-xml, xml-rs) emit the named entities
/// `&quot;`/`&apos;` and cannot be told otherwise; the rule is these five replacements.
pub fn esc(s: &str) -> Cow<'_, str> {
    if !s.contains(['&', '<', '>', '"', '\'']) && s.chars().all(xml_char) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&#34;"),
            '\'' => o.push_str("&#39;"),
            // a character XML 1.0 cannot hold (PyWPS writes it and its document does not
            // parse): U+FFFD in its place
            c if !xml_char(c) => o.push('\u{FFFD}'),
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

/// XML 1.0's `Char`: tab, newline, carriage return and everything from U+0020 but the
/// surrogates (absent from Rust strings) and U+FFFE/U+FFFF.
fn xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

const HEAD: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n";

/// `GetCapabilities`.
pub fn capabilities(cfg: &WpsConfig, language: &str, processes: &[&'static ProcessDesc]) -> String {
    let m = &cfg.metadata;
    let mut o = String::with_capacity(4096);
    o.push_str(HEAD);
    let _ = writeln!(o, "<!-- PyWPS {} -->", crate::PYWPS_VERSION);
    let _ = writeln!(
        o,
        "<wps:Capabilities service=\"WPS\" version=\"1.0.0\" xml:lang=\"{}\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" xmlns:wps=\"http://www.opengis.net/wps/1.0.0\" xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://www.opengis.net/wps/1.0.0 ../wpsGetCapabilities_response.xsd\" updateSequence=\"1\">",
        esc(language)
    );
    o.push_str("    <ows:ServiceIdentification>\n");
    let _ = writeln!(
        o,
        "        <ows:Title>{}</ows:Title>",
        esc(&m.identification_title)
    );
    let _ = writeln!(
        o,
        "        <ows:Abstract>{}</ows:Abstract>",
        esc(&m.identification_abstract)
    );
    o.push_str("        <ows:Keywords>\n");
    for k in &m.identification_keywords {
        let _ = writeln!(o, "            <ows:Keyword>{}</ows:Keyword>", esc(k));
    }
    for k in &m.identification_keywords_type {
        let _ = writeln!(
            o,
            "            <ows:Type codeSpace=\"ISOTC211/19115\">{}</ows:Type>",
            esc(k)
        );
    }
    o.push_str("        </ows:Keywords>\n");
    o.push_str("        <ows:ServiceType>WPS</ows:ServiceType>\n");
    o.push_str("        <ows:ServiceTypeVersion>1.0.0</ows:ServiceTypeVersion>\n");
    o.push_str("        <ows:ServiceTypeVersion>2.0.0</ows:ServiceTypeVersion>\n");
    let _ = writeln!(
        o,
        "        <ows:Fees>{}</ows:Fees>",
        esc(&m.identification_fees)
    );
    let _ = writeln!(
        o,
        "        <ows:AccessConstraints>{}</ows:AccessConstraints>",
        esc(&m.identification_accessconstraints.join(","))
    );
    o.push_str("    </ows:ServiceIdentification>\n");
    o.push_str("    <ows:ServiceProvider>\n");
    let _ = writeln!(
        o,
        "        <ows:ProviderName>{}</ows:ProviderName>",
        esc(&m.provider_name)
    );
    let _ = writeln!(
        o,
        "        <ows:ProviderSite xlink:href=\"{}\"/>",
        esc(&m.provider_url)
    );
    o.push_str("        <ows:ServiceContact>\n");
    let _ = writeln!(
        o,
        "            <ows:IndividualName>{}</ows:IndividualName>",
        esc(&m.contact_name)
    );
    let _ = writeln!(
        o,
        "            <ows:PositionName>{}</ows:PositionName>",
        esc(&m.contact_position)
    );
    o.push_str("            <ows:ContactInfo>\n                <ows:Phone>\n");
    let _ = writeln!(
        o,
        "                    <ows:Voice>{}</ows:Voice>",
        esc(&m.contact_phone)
    );
    let _ = writeln!(
        o,
        "                    <ows:Facsimile>{}</ows:Facsimile>",
        esc(&m.contact_fax)
    );
    o.push_str("                </ows:Phone>\n                <ows:Address>\n");
    let _ = writeln!(
        o,
        "                    <ows:DeliveryPoint>{}</ows:DeliveryPoint>",
        esc(&m.contact_address)
    );
    let _ = writeln!(
        o,
        "                    <ows:City>{}</ows:City>",
        esc(&m.contact_city)
    );
    let _ = writeln!(
        o,
        "                    <ows:AdministrativeArea>{}</ows:AdministrativeArea>",
        esc(&m.contact_stateorprovince)
    );
    let _ = writeln!(
        o,
        "                    <ows:PostalCode>{}</ows:PostalCode>",
        esc(&m.contact_postalcode)
    );
    let _ = writeln!(
        o,
        "                    <ows:Country>{}</ows:Country>",
        esc(&m.contact_country)
    );
    let _ = writeln!(
        o,
        "                    <ows:ElectronicMailAddress>{}</ows:ElectronicMailAddress>",
        esc(&m.contact_email)
    );
    o.push_str("                </ows:Address>\n");
    let _ = writeln!(
        o,
        "                <ows:OnlineResource xlink:href=\"{}\"/>",
        esc(&m.contact_url)
    );
    let _ = writeln!(
        o,
        "                <ows:HoursOfService>{}</ows:HoursOfService>",
        esc(&m.contact_hours)
    );
    let _ = writeln!(
        o,
        "                <ows:ContactInstructions>{}</ows:ContactInstructions>",
        esc(&m.contact_instructions)
    );
    o.push_str("            </ows:ContactInfo>\n");
    let _ = writeln!(
        o,
        "            <ows:Role>{}</ows:Role>",
        esc(&m.contact_role)
    );
    o.push_str("        </ows:ServiceContact>\n    </ows:ServiceProvider>\n");
    o.push_str("    <ows:OperationsMetadata>\n");
    let url = esc(&cfg.url);
    for (op, post) in [
        ("GetCapabilities", false),
        ("DescribeProcess", true),
        ("Execute", true),
    ] {
        let _ = write!(
            o,
            "        <ows:Operation name=\"{op}\">\n            <ows:DCP>\n                <ows:HTTP>\n                    <ows:Get xlink:href=\"{url}\"/>\n"
        );
        if post {
            let _ = writeln!(o, "                    <ows:Post xlink:href=\"{url}\"/>");
        }
        o.push_str(
            "                </ows:HTTP>\n            </ows:DCP>\n        </ows:Operation>\n",
        );
    }
    o.push_str("    </ows:OperationsMetadata>\n    <wps:ProcessOfferings>\n");
    for p in processes {
        let _ = writeln!(
            o,
            "        <wps:Process wps:processVersion=\"{}\">",
            esc(p.version)
        );
        let _ = writeln!(
            o,
            "            <ows:Identifier>{}</ows:Identifier>",
            esc(p.identifier)
        );
        let _ = writeln!(o, "            <ows:Title>{}</ows:Title>", esc(p.title));
        let _ = writeln!(
            o,
            "            <ows:Abstract>{}</ows:Abstract>",
            esc(p.abstract_)
        );
        if !p.keywords.is_empty() {
            o.push_str("            <ows:Keywords>\n");
            for k in p.keywords {
                let _ = writeln!(o, "                <ows:Keyword>{}</ows:Keyword>", esc(k));
            }
            o.push_str("            </ows:Keywords>\n");
        }
        metadata(&mut o, p, "            ");
        o.push_str("        </wps:Process>\n");
    }
    o.push_str("    </wps:ProcessOfferings>\n    <wps:Languages>\n        <wps:Default>\n");
    let _ = writeln!(
        o,
        "            <ows:Language>{}</ows:Language>",
        esc(cfg.languages.first().map_or("en-US", String::as_str))
    );
    o.push_str("        </wps:Default>\n        <wps:Supported>\n");
    for l in &cfg.languages {
        let _ = writeln!(o, "            <ows:Language>{}</ows:Language>", esc(l));
    }
    o.push_str("        </wps:Supported>\n    </wps:Languages>\n</wps:Capabilities>");
    o
}

fn metadata(o: &mut String, p: &ProcessDesc, indent: &str) {
    for m in p.metadata {
        let _ = writeln!(
            o,
            "{indent}<ows:Metadata xlink:title=\"{}\" xlink:type=\"simple\"/>",
            esc(m)
        );
    }
}

/// `DescribeProcess` for `processes`.
pub fn describe(cfg: &WpsConfig, language: &str, processes: &[&'static ProcessDesc]) -> String {
    // int(get_size_mb(...)), as PyWPS
    let max_mb = cfg.maxsingleinputsize_mb as u64;
    let mut o = String::with_capacity(4096);
    o.push_str(HEAD);
    let _ = writeln!(o, "<!-- PyWPS {} -->", crate::PYWPS_VERSION);
    let _ = writeln!(
        o,
        "<wps:ProcessDescriptions xmlns:wps=\"http://www.opengis.net/wps/1.0.0\" xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://www.opengis.net/wps/1.0.0 ../wpsDescribeProcess_response.xsd\" service=\"WPS\" version=\"1.0.0\" xml:lang=\"{}\">",
        esc(language)
    );
    for p in processes {
        let _ = writeln!(
            o,
            "    <ProcessDescription wps:processVersion=\"{}\" storeSupported=\"{}\" statusSupported=\"{}\">",
            esc(p.version),
            p.store_supported,
            p.status_supported
        );
        let _ = writeln!(
            o,
            "        <ows:Identifier>{}</ows:Identifier>",
            esc(p.identifier)
        );
        let _ = writeln!(o, "        <ows:Title>{}</ows:Title>", esc(p.title));
        let _ = writeln!(
            o,
            "        <ows:Abstract>{}</ows:Abstract>",
            esc(p.abstract_)
        );
        metadata(&mut o, p, "        ");
        if !p.inputs.is_empty() {
            o.push_str("        <DataInputs>\n");
            for i in p.inputs {
                let _ = writeln!(
                    o,
                    "            <Input minOccurs=\"{}\" maxOccurs=\"{}\">",
                    i.min_occurs, i.max_occurs
                );
                ident(
                    &mut o,
                    i.identifier,
                    i.title,
                    i.abstract_,
                    "                ",
                );
                match i.kind {
                    InputKind::Literal {
                        data_type,
                        allowed,
                        default,
                        uoms,
                    } => {
                        o.push_str("                <LiteralData>\n");
                        literal(&mut o, data_type, allowed, default, uoms, true);
                        o.push_str("                </LiteralData>\n");
                    }
                    InputKind::Complex { formats } => {
                        let _ = writeln!(
                            o,
                            "                <ComplexData maximumMegabytes=\"{max_mb}\">"
                        );
                        complex(&mut o, formats);
                        o.push_str("                </ComplexData>\n");
                    }
                    InputKind::BoundingBox { crss } => {
                        o.push_str("                <BoundingBoxData>\n");
                        bbox(&mut o, crss);
                        o.push_str("                </BoundingBoxData>\n");
                    }
                }
                o.push_str("            </Input>\n");
            }
            o.push_str("        </DataInputs>\n");
        }
        if !p.outputs.is_empty() {
            o.push_str("        <ProcessOutputs>\n");
            for out in p.outputs {
                o.push_str("            <Output>\n");
                ident(
                    &mut o,
                    out.identifier,
                    out.title,
                    out.abstract_,
                    "                ",
                );
                match out.kind {
                    OutputKind::Literal { data_type } => {
                        o.push_str("                <LiteralOutput>\n");
                        literal(&mut o, data_type, &[], None, &[], false);
                        o.push_str("                </LiteralOutput>\n");
                    }
                    OutputKind::Complex { formats } => {
                        o.push_str("                <ComplexOutput>\n");
                        complex(&mut o, formats);
                        o.push_str("                </ComplexOutput>\n");
                    }
                    OutputKind::BoundingBox { crss } => {
                        o.push_str("                <BoundingBoxOutput>\n");
                        bbox(&mut o, crss);
                        o.push_str("                </BoundingBoxOutput>\n");
                    }
                }
                o.push_str("            </Output>\n");
            }
            o.push_str("        </ProcessOutputs>\n");
        }
        o.push_str("    </ProcessDescription>\n");
    }
    o.push_str("</wps:ProcessDescriptions>");
    o
}

fn ident(o: &mut String, id: &str, title: &str, abs: &str, indent: &str) {
    let _ = writeln!(o, "{indent}<ows:Identifier>{}</ows:Identifier>", esc(id));
    let _ = writeln!(o, "{indent}<ows:Title>{}</ows:Title>", esc(title));
    let _ = writeln!(o, "{indent}<ows:Abstract>{}</ows:Abstract>", esc(abs));
}

fn literal(
    o: &mut String,
    t: DataType,
    allowed: &[AllowedValue],
    default: Option<&str>,
    uoms: &[&str],
    input: bool,
) {
    let ind = "                    ";
    let _ = writeln!(
        o,
        "{ind}<ows:DataType ows:reference=\"http://www.w3.org/TR/xmlschema-2/#{0}\">{0}</ows:DataType>",
        t.name()
    );
    if let Some(first) = uoms.first() {
        let _ = writeln!(o, "{ind}<UOMs>\n{ind}    <Default>\n{ind}        <ows:UOM>{}</ows:UOM>\n{ind}    </Default>\n{ind}    <Supported>", esc(first));
        for u in uoms {
            let _ = writeln!(o, "{ind}        <ows:UOM>{}</ows:UOM>", esc(u));
        }
        let _ = writeln!(o, "{ind}    </Supported>\n{ind}</UOMs>");
    }
    if input {
        if allowed.is_empty() {
            let _ = writeln!(o, "{ind}<ows:AnyValue/>");
        } else {
            let _ = writeln!(o, "{ind}<ows:AllowedValues>");
            for a in allowed {
                match a {
                    AllowedValue::Value(v) => {
                        let _ = writeln!(o, "{ind}    <ows:Value>{}</ows:Value>", esc(v));
                    }
                    AllowedValue::Range { min, max, spacing } => {
                        let _ = writeln!(
                            o,
                            "{ind}    <ows:Range ows:rangeClosure=\"closed\">\n{ind}        <ows:MinimumValue>{}</ows:MinimumValue>\n{ind}        <ows:MaximumValue>{}</ows:MaximumValue>",
                            num(*min),
                            num(*max)
                        );
                        if *spacing != 0.0 {
                            let _ = writeln!(
                                o,
                                "{ind}        <ows:Spacing>{}</ows:Spacing>",
                                num(*spacing)
                            );
                        }
                        let _ = writeln!(o, "{ind}    </ows:Range>");
                    }
                }
            }
            let _ = writeln!(o, "{ind}</ows:AllowedValues>");
        }
        if let Some(d) = default {
            let _ = writeln!(o, "{ind}<DefaultValue>{}</DefaultValue>", esc(d));
        }
    }
}

/// A range bound as PyWPS prints what the process wrote (`10`, `0.5`).
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        LiteralValue::Float(v).to_string()
    }
}

fn complex(o: &mut String, formats: &[Format]) {
    let ind = "                    ";
    let Some(default) = formats.first() else {
        return;
    };
    let _ = writeln!(o, "{ind}<Default>");
    format_el(o, default, &format!("{ind}    "));
    let _ = writeln!(o, "{ind}</Default>\n{ind}<Supported>");
    for f in formats {
        format_el(o, f, &format!("{ind}    "));
    }
    let _ = writeln!(o, "{ind}</Supported>");
}

fn format_el(o: &mut String, f: &Format, ind: &str) {
    let _ = writeln!(
        o,
        "{ind}<Format>\n{ind}    <MimeType>{}</MimeType>",
        esc(f.mime_type)
    );
    if !f.encoding.is_empty() {
        let _ = writeln!(o, "{ind}    <Encoding>{}</Encoding>", esc(f.encoding));
    }
    if !f.schema.is_empty() {
        let _ = writeln!(o, "{ind}    <Schema>{}</Schema>", esc(f.schema));
    }
    let _ = writeln!(o, "{ind}</Format>");
}

fn bbox(o: &mut String, crss: &[&str]) {
    let ind = "                    ";
    let _ = writeln!(
        o,
        "{ind}<Default>\n{ind}    <CRS>{}</CRS>\n{ind}</Default>\n{ind}<Supported>",
        esc(crss.first().copied().unwrap_or("EPSG:4326"))
    );
    for c in crss {
        let _ = writeln!(o, "{ind}    <CRS>{}</CRS>", esc(c));
    }
    let _ = writeln!(o, "{ind}</Supported>");
}

/// A job's state in the `wps:Status` element.
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    /// `ProcessAccepted` with its message.
    Accepted(String),
    /// `ProcessStarted`: message, percent.
    Started(String, u8),
    /// `ProcessSucceeded` with its message.
    Succeeded(String),
    /// `ProcessFailed` with the error text.
    Failed(String),
}

/// An output as the response document shows it.
#[derive(Clone, Debug)]
pub enum ShownOutput {
    /// Inline data.
    Data(OutputValue),
    /// Written to a file: `wps:Reference href mimeType`.
    Reference {
        /// Public URL.
        href: String,
        /// Its format.
        format: Format,
    },
}

/// A requested output (lineage's `wps:OutputDefinitions`).
#[derive(Clone, Debug)]
pub struct OutputDefinition {
    /// Identifier.
    pub identifier: String,
    /// Requested as reference.
    pub as_reference: bool,
    /// `mimeType` asked for, if any.
    pub mime_type: Option<String>,
}

/// What an `ExecuteResponse` document shows.
pub struct ExecuteDoc<'a> {
    /// The process.
    pub process: &'static ProcessDesc,
    /// `serviceInstance`.
    pub service_instance: &'a str,
    /// `statusLocation` (empty for synchronous runs).
    pub status_location: &'a str,
    /// `xml:lang`.
    pub language: &'a str,
    /// `creationTime`.
    pub time: String,
    /// The status.
    pub status: Status,
    /// Lineage: the inputs (`None`: lineage not asked for).
    pub lineage: Option<(&'a Inputs, &'a [OutputDefinition])>,
    /// Outputs (only with `ProcessSucceeded`).
    pub outputs: &'a [(String, ShownOutput)],
}

/// `wps:ExecuteResponse`.
pub fn execute_response(d: &ExecuteDoc<'_>) -> String {
    let p = d.process;
    let mut o = String::with_capacity(2048);
    o.push_str(HEAD);
    let _ = writeln!(
        o,
        "<wps:ExecuteResponse xmlns:wps=\"http://www.opengis.net/wps/1.0.0\" xmlns:ows=\"http://www.opengis.net/ows/1.1\" xmlns:xlink=\"http://www.w3.org/1999/xlink\" xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://www.opengis.net/wps/1.0.0 ../wpsExecute_response.xsd\" service=\"WPS\" version=\"1.0.0\" xml:lang=\"{}\" serviceInstance=\"{}\" statusLocation=\"{}\">",
        esc(d.language),
        esc(d.service_instance),
        esc(d.status_location)
    );
    let _ = writeln!(
        o,
        "    <wps:Process wps:processVersion=\"{}\">",
        esc(p.version)
    );
    ident(&mut o, p.identifier, p.title, p.abstract_, "        ");
    o.push_str("    </wps:Process>\n");
    let _ = writeln!(o, "    <wps:Status creationTime=\"{}\">", esc(&d.time));
    match &d.status {
        Status::Accepted(m) => {
            let _ = writeln!(
                o,
                "        <wps:ProcessAccepted percentCompleted=\"0\">{}</wps:ProcessAccepted>",
                esc(m)
            );
        }
        Status::Started(m, pct) => {
            let _ = writeln!(
                o,
                "        <wps:ProcessStarted percentCompleted=\"{}\">{}</wps:ProcessStarted>",
                (*pct).min(99),
                esc(m)
            );
        }
        Status::Succeeded(m) => {
            let _ = writeln!(
                o,
                "        <wps:ProcessSucceeded>{}</wps:ProcessSucceeded>",
                esc(m)
            );
        }
        Status::Failed(m) => {
            let _ = writeln!(
                o,
                "        <wps:ProcessFailed>\n            <wps:ExceptionReport>\n                <ows:Exception exceptionCode=\"NoApplicableCode\" locator=\"None\">\n                    <ows:ExceptionText>{}</ows:ExceptionText>\n                </ows:Exception>\n            </wps:ExceptionReport>\n        </wps:ProcessFailed>",
                esc(m)
            );
        }
    }
    o.push_str("    </wps:Status>\n");
    let finished = matches!(d.status, Status::Succeeded(_) | Status::Failed(_));
    if let (Some((inputs, defs)), true) = (d.lineage, finished) {
        if !inputs.is_empty() {
            o.push_str("    <wps:DataInputs>\n");
            for (id, values) in inputs {
                let desc = p.input(id);
                for v in values {
                    o.push_str("        <wps:Input>\n");
                    ident(
                        &mut o,
                        id,
                        desc.map_or("", |d| d.title),
                        desc.map_or("", |d| d.abstract_),
                        "            ",
                    );
                    lineage_input(&mut o, v);
                    o.push_str("        </wps:Input>\n");
                }
            }
            o.push_str("    </wps:DataInputs>\n");
        }
        if !defs.is_empty() {
            o.push_str("    <wps:OutputDefinitions>\n");
            for def in defs {
                let desc = p.output(&def.identifier);
                match desc.map(|d| d.kind) {
                    Some(OutputKind::Complex { formats }) => {
                        let f = formats.first().copied().unwrap_or(Format::XML);
                        let _ = writeln!(
                            o,
                            "        <wps:Output mimeType=\"{}\" encoding=\"{}\" schema=\"{}\" asReference=\"{}\">",
                            esc(def.mime_type.as_deref().unwrap_or(f.mime_type)),
                            esc(f.encoding),
                            esc(f.schema),
                            def.as_reference
                        );
                    }
                    _ => o.push_str("        <wps:Output>\n"),
                }
                ident(
                    &mut o,
                    &def.identifier,
                    desc.map_or("", |d| d.title),
                    desc.map_or("", |d| d.abstract_),
                    "            ",
                );
                o.push_str("        </wps:Output>\n");
            }
            o.push_str("    </wps:OutputDefinitions>\n");
        }
    }
    if matches!(d.status, Status::Succeeded(_)) && !d.outputs.is_empty() {
        o.push_str("    <wps:ProcessOutputs>\n");
        for (id, shown) in d.outputs {
            let desc = p.output(id);
            o.push_str("        <wps:Output>\n");
            ident(
                &mut o,
                id,
                desc.map_or("", |d| d.title),
                desc.map_or("", |d| d.abstract_),
                "            ",
            );
            match shown {
                ShownOutput::Reference { href, format } => {
                    let _ = writeln!(
                        o,
                        "            <wps:Reference href=\"{}\" mimeType=\"{}\" encoding=\"{}\" schema=\"{}\"/>",
                        esc(href),
                        esc(format.mime_type),
                        esc(format.encoding),
                        esc(format.schema)
                    );
                }
                ShownOutput::Data(OutputValue::Complex { data, format }) => {
                    let _ = writeln!(
                        o,
                        "            <wps:Data>\n                <wps:ComplexData mimeType=\"{}\" encoding=\"{}\" schema=\"{}\">{}</wps:ComplexData>\n            </wps:Data>",
                        esc(format.mime_type),
                        esc(format.encoding),
                        esc(format.schema),
                        complex_payload(data, format)
                    );
                }
                ShownOutput::Data(OutputValue::Literal { value, uom }) => {
                    let data_type = match desc.map(|d| d.kind) {
                        Some(OutputKind::Literal { data_type }) => data_type.name(),
                        _ => "string",
                    };
                    let uom = uom
                        .as_ref()
                        .map(|u| format!("uom=\"{}\" ", esc(u)))
                        .unwrap_or_default();
                    let _ = writeln!(
                        o,
                        "            <wps:Data>\n                <wps:LiteralData {uom}dataType=\"{data_type}\">{}</wps:LiteralData>\n            </wps:Data>",
                        esc(&value.to_string())
                    );
                }
                ShownOutput::Data(OutputValue::BoundingBox { lower, upper, crs }) => {
                    let _ = writeln!(
                        o,
                        "            <wps:Data>\n                <wps:BoundingBoxData crs=\"{}\" dimensions=\"{}\">\n                    <ows:LowerCorner>{}</ows:LowerCorner>\n                    <ows:UpperCorner>{}</ows:UpperCorner>\n                </wps:BoundingBoxData>\n            </wps:Data>",
                        esc(crs),
                        lower.len(),
                        corner(lower),
                        corner(upper)
                    );
                }
            }
            o.push_str("        </wps:Output>\n");
        }
        o.push_str("    </wps:ProcessOutputs>\n");
    }
    o.push_str("</wps:ExecuteResponse>");
    o
}

fn corner(c: &[f64]) -> String {
    c.iter()
        .map(|v| LiteralValue::Float(*v).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Complex data inside `wps:ComplexData`: XML as it is (its XML declaration dropped), JSON and
/// text in CDATA, anything else base64 (PyWPS puts non-XML data in CDATA).
fn complex_payload(data: &[u8], format: &Format) -> String {
    let text = match std::str::from_utf8(data) {
        Ok(t) if format.encoding != "base64" => t,
        _ => {
            use base64::Engine as _;
            return base64::engine::general_purpose::STANDARD.encode(data);
        }
    };
    if format.mime_type.contains("xml") && roxmltree::Document::parse(text).is_ok() {
        let t = text.trim_start();
        if let Some(rest) = t.strip_prefix("<?xml") {
            if let Some(end) = rest.find("?>") {
                return rest[end + 2..].to_string();
            }
        }
        return t.to_string();
    }
    cdata(text)
}

/// `text` in CDATA sections (a `]]>` inside is split across two sections).
fn cdata(text: &str) -> String {
    format!("<![CDATA[{}]]>", text.replace("]]>", "]]]]><![CDATA[>"))
}

fn lineage_input(o: &mut String, v: &InputValue) {
    match v {
        InputValue::Literal { value, uom, .. } => {
            // The converted value, as PyWPS prints it (`buffer=1` of a float shows 1.0).
            let uom = uom
                .as_ref()
                .map(|u| format!(" uom=\"{}\"", esc(u)))
                .unwrap_or_default();
            let _ = writeln!(
                o,
                "            <wps:Data>\n                <wps:LiteralData{uom}>{}</wps:LiteralData>\n            </wps:Data>",
                esc(&value.to_string())
            );
        }
        InputValue::Complex {
            href: Some(href),
            mime_type,
            encoding,
            schema,
            ..
        } => {
            let _ = writeln!(
                o,
                "            <wps:Reference xlink:href=\"{}\" method=\"GET\" mimeType=\"{}\" encoding=\"{}\" schema=\"{}\"/>",
                esc(href),
                esc(mime_type),
                esc(encoding),
                esc(schema)
            );
        }
        InputValue::Complex {
            data,
            format,
            mime_type,
            encoding,
            schema,
            ..
        } => {
            let _ = writeln!(
                o,
                "            <wps:Data>\n                <wps:ComplexData mimeType=\"{}\" encoding=\"{}\" schema=\"{}\">{}</wps:ComplexData>\n            </wps:Data>",
                esc(mime_type),
                esc(encoding),
                esc(schema),
                complex_payload(data, format)
            );
        }
        InputValue::BoundingBox {
            lower,
            upper,
            crs,
            dimensions,
        } => {
            let _ = writeln!(
                o,
                "            <wps:Data>\n                <wps:BoundingBoxData crs=\"{}\" dimensions=\"{dimensions}\">\n                    <ows:LowerCorner>{}</ows:LowerCorner>\n                    <ows:UpperCorner>{}</ows:UpperCorner>\n                </wps:BoundingBoxData>\n            </wps:Data>",
                esc(crs),
                corner(lower),
                corner(upper)
            );
        }
    }
}
