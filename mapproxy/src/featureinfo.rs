//! Feature info documents and how several are merged into one answer (MapProxy's
//! `featureinfo.py`: `create_featureinfo_doc`, `combine_docs`), and how the info sources of a
//! layer are asked ([`InfoLayer`], [`query_all`]: MapProxy's `WMSInfoSource`, `WMSInfoClient`),
//! for the WMS and the WMTS alike.
//!
//! | type | MIME types | merged as MapProxy merges |
//! |---|---|---|
//! | text | anything else | the non-empty documents joined by `\n` |
//! | xml | `text/xml`, `application/xml`, `application/gml+xml`, `application/vnd.ogc.gml` | the children of each later root element appended to the first root; no XML declaration |
//! | html | `text/html` | the children of each later `<body>` appended to the first `<body>`; from `<html>` on |
//! | json | `application/json` | objects merged key by key (nested objects merged, lists extended, other values replaced), written as Python's `json.dumps` |
//!
//! Documents of different types are merged as text.
//!
//! MapProxy parses and re-serializes XML and HTML with lxml. Here the upstream's text is
//! kept and spliced: XML is parsed with roxmltree to find the root element and its content
//! exactly (a document that does not parse is left out, MapProxy logs and skips it too);
//! HTML is not parsed (no maintained small crate re-serializes HTML as lxml does; html5ever
//! would normalise more than MapProxy does): the `<body>` tags are found case-insensitively
//! and a fragment without one is taken whole, as lxml's `document_fromstring` wraps it.

use std::sync::Arc;

use futures_util::future::join_all;
use serde_json::Value;

use crate::grid::Bbox;
use crate::source::{InfoQuery, WmsSource};
use crate::srs::Srs;

/// A document's type, from its MIME type (MapProxy's `featureinfo_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InfoType {
    Text,
    Html,
    Xml,
    Json,
}

impl InfoType {
    /// The type of a MIME type (options such as `charset` ignored).
    pub fn of_mime(mime: &str) -> InfoType {
        let m = mime.split(';').next().unwrap_or("").trim();
        match m {
            "text/xml" | "application/xml" | "application/gml+xml" | "application/vnd.ogc.gml" => {
                InfoType::Xml
            }
            "text/html" => InfoType::Html,
            "application/json" => InfoType::Json,
            _ => InfoType::Text,
        }
    }

    /// `text`, `html`, `xml`, `json` (the `featureinfo_types` names).
    pub fn parse(name: &str) -> Option<InfoType> {
        match name {
            "text" => Some(InfoType::Text),
            "html" => Some(InfoType::Html),
            "xml" => Some(InfoType::Xml),
            "json" => Some(InfoType::Json),
            _ => None,
        }
    }

    /// The WMS MIME type of the type (MapProxy's `mimetype_from_infotype`): XML is
    /// `application/vnd.ogc.gml` before 1.3.0, `text/xml` in 1.3.0.
    pub fn mime(self, v130: bool) -> &'static str {
        match self {
            InfoType::Text => "text/plain",
            InfoType::Html => "text/html",
            InfoType::Xml if v130 => "text/xml",
            InfoType::Xml => "application/vnd.ogc.gml",
            InfoType::Json => "application/json",
        }
    }
}

/// One source's answer.
#[derive(Debug, Clone, PartialEq)]
pub struct InfoDoc {
    pub kind: InfoType,
    pub content: String,
}

impl InfoDoc {
    /// A document of `mime`'s type.
    pub fn new(content: String, mime: &str) -> InfoDoc {
        InfoDoc {
            kind: InfoType::of_mime(mime),
            content,
        }
    }
}

/// MapProxy's `combine_docs`: the merged text and its type. `docs` must not be empty.
pub fn combine(docs: &[InfoDoc]) -> (String, InfoType) {
    let Some(first) = docs.first() else {
        return (String::new(), InfoType::Text);
    };
    if docs.iter().any(|d| d.kind != first.kind) {
        return (combine_text(docs), InfoType::Text);
    }
    let out = match first.kind {
        InfoType::Text => combine_text(docs),
        InfoType::Xml => combine_xml(docs).unwrap_or_else(|| combine_text(docs)),
        InfoType::Html => combine_html(docs),
        InfoType::Json => combine_json(docs),
    };
    (out, first.kind)
}

// ---- asking the info sources (WMS and WMTS GetFeatureInfo) ----

/// A source answering GetFeatureInfo for a layer (MapProxy's `WMSInfoSource` over its
/// `WMSInfoClient`).
#[derive(Clone)]
pub struct InfoLayer {
    pub source: Arc<WmsSource>,
    /// `supported_srs` of the source (empty: any).
    pub supported_srs: Vec<Arc<Srs>>,
}

/// A feature info query (MapProxy's `InfoQuery`): a pixel of an image of `size` over `bbox`.
pub struct InfoRequest {
    pub bbox: Bbox,
    pub size: (u32, u32),
    pub srs: Arc<Srs>,
    pub pos: (f64, f64),
    /// The position was written with a decimal point (WMS `X`/`Y` kept as floats).
    pub pos_float: bool,
    pub info_format: Option<String>,
    pub format: Option<String>,
    pub feature_count: Option<String>,
}

impl InfoRequest {
    /// `InfoQuery.coord`: the queried pixel in the query's SRS.
    pub fn coord(&self) -> (f64, f64) {
        pixel_to_coord(self.bbox, self.size, self.pos)
    }

    fn source_query(
        &self,
        srs: u32,
        bbox: Bbox,
        size: (u32, u32),
        pos: (f64, f64),
        pos_float: bool,
    ) -> InfoQuery {
        InfoQuery {
            bbox,
            size,
            srs,
            pos,
            pos_float,
            info_format: self.info_format.clone(),
            format: self.format.clone(),
            feature_count: self.feature_count.clone(),
        }
    }
}

impl InfoLayer {
    /// The source's document; `None` outside its coverage (MapProxy's `WMSInfoSource`).
    /// In the query's SRS when the source supports it, else in a supported one with the
    /// bbox and the point transformed, the size keeping square pixels
    /// (`WMSInfoClient._get_transformed_query`).
    pub async fn get_info(&self, q: &InfoRequest) -> Result<Option<InfoDoc>, String> {
        if let Some(cov) = self.source.coverage() {
            if !cov.contains_point(&q.srs, q.coord()) {
                return Ok(None);
            }
        }
        let supported =
            self.supported_srs.is_empty() || self.supported_srs.iter().any(|s| **s == *q.srs);
        let iq = if supported {
            q.source_query(q.srs.epsg(), q.bbox, q.size, q.pos, q.pos_float)
        } else {
            let target = self
                .supported_srs
                .iter()
                .find(|s| s.is_latlong() == q.srs.is_latlong())
                .or_else(|| self.supported_srs.first())
                .ok_or("no supported SRS")?;
            let coord = q.coord();
            let bbox = q
                .srs
                .transform_bbox_to(target, q.bbox)
                .map_err(|e| e.to_string())?;
            let aratio = (bbox[3] - bbox[1]) / (bbox[2] - bbox[0]);
            let size = (q.size.0, (aratio * f64::from(q.size.0)) as u32);
            let c = q.srs.transform_to(target, coord);
            let px = (c.0 - bbox[0]) * f64::from(size.0) / (bbox[2] - bbox[0]);
            let py = (bbox[3] - c.1) * f64::from(size.1) / (bbox[3] - bbox[1]);
            if !(px.is_finite() && py.is_finite()) {
                return Err("the point cannot be transformed into a supported SRS".into());
            }
            q.source_query(target.epsg(), bbox, size, (px.round(), py.round()), false)
        };
        self.source
            .get_info(&iq)
            .await
            .map(Some)
            .map_err(|e| e.message)
    }
}

/// Every layer asked concurrently; the documents in the layers' order (a source outside its
/// coverage gives none). The first error ends the request, as MapProxy's exception does.
pub async fn query_all(layers: &[InfoLayer], q: &InfoRequest) -> Result<Vec<InfoDoc>, String> {
    let results = join_all(layers.iter().map(|l| l.get_info(q))).await;
    let mut docs = Vec::new();
    for r in results {
        if let Some(d) = r? {
            docs.push(d);
        }
    }
    Ok(docs)
}

/// `make_lin_transf((0, 0, w, h), bbox)(pos)`.
pub fn pixel_to_coord(bbox: Bbox, size: (u32, u32), pos: (f64, f64)) -> (f64, f64) {
    (
        bbox[0] + pos.0 * (bbox[2] - bbox[0]) / f64::from(size.0),
        bbox[1] + (f64::from(size.1) - pos.1) * (bbox[3] - bbox[1]) / f64::from(size.1),
    )
}

fn combine_text(docs: &[InfoDoc]) -> String {
    docs.iter()
        .map(|d| d.content.as_str())
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

/// The root element of an XML text: its whole text, the end of its start tag and the start
/// of its end tag (equal for `<root/>`), its tag name as written.
struct XmlRoot<'a> {
    text: &'a str,
    start_end: usize,
    end_start: usize,
    self_closing: bool,
    name: &'a str,
}

fn xml_root(text: &str) -> Option<XmlRoot<'_>> {
    let doc = roxmltree::Document::parse(text).ok()?;
    let root = doc.root_element();
    let range = root.range();
    let whole = text.get(range.clone())?;
    let name_end = whole[1..]
        .find(|c: char| c.is_whitespace() || c == '/' || c == '>')
        .map(|i| i + 1)?;
    let name = &whole[1..name_end];
    // the end of the start tag: the first '>' outside quoted attribute values
    let mut quote = None;
    let mut start_end = None;
    for (i, c) in whole.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '>') => {
                start_end = Some(i + 1);
                break;
            }
            _ => {}
        }
    }
    let start_end = start_end?;
    let self_closing = whole[..start_end].ends_with("/>");
    let end_start = if self_closing {
        start_end
    } else {
        whole.rfind("</")?
    };
    Some(XmlRoot {
        text: whole,
        start_end,
        end_start,
        self_closing,
        name,
    })
}

fn combine_xml(docs: &[InfoDoc]) -> Option<String> {
    let mut roots = docs.iter().filter_map(|d| {
        let r = xml_root(&d.content);
        if r.is_none() {
            log::warn!(target: "mapproxy.featureinfo", "Document has no root element, skipping: {}", d.content);
        }
        r
    });
    let first = roots.next()?;
    let mut inner = String::new();
    for r in roots {
        if !r.self_closing {
            inner.push_str(&r.text[r.start_end..r.end_start]);
        }
    }
    let mut out = String::with_capacity(first.text.len() + inner.len());
    if first.self_closing {
        if inner.is_empty() {
            return Some(first.text.to_string());
        }
        let open = first.text[..first.start_end - 2].trim_end();
        out.push_str(open);
        out.push('>');
        out.push_str(&inner);
        out.push_str(&format!("</{}>", first.name));
    } else {
        out.push_str(&first.text[..first.end_start]);
        out.push_str(&inner);
        out.push_str(&first.text[first.end_start..]);
    }
    Some(out)
}

/// The content of `<body>` (case-insensitive), or the whole text of a fragment without one.
fn html_body(text: &str) -> (Option<(usize, usize)>, &str) {
    let lower = text.to_ascii_lowercase();
    let open = lower.find("<body").and_then(|i| {
        let after = lower[i + 5..].chars().next()?;
        (after == '>' || after.is_whitespace())
            .then(|| lower[i..].find('>').map(|j| i + j + 1))
            .flatten()
    });
    match open {
        Some(start) => {
            let end = lower[start..]
                .rfind("</body")
                .map(|j| start + j)
                .unwrap_or(text.len());
            (Some((start, end)), &text[start..end])
        }
        None => (None, text),
    }
}

fn combine_html(docs: &[InfoDoc]) -> String {
    let first = &docs[0].content;
    let mut inner = String::new();
    for d in &docs[1..] {
        inner.push_str(html_body(&d.content).1);
    }
    match html_body(first) {
        (Some((_, end)), _) => {
            // from <html> on (lxml writes the root element, not a doctype before it)
            let lower = first.to_ascii_lowercase();
            let start = lower.find("<html").unwrap_or(0);
            format!("{}{}{}", &first[start..end], inner, &first[end..])
        }
        (None, body) => format!("<html><body>{body}{inner}</body></html>"),
    }
}

fn combine_json(docs: &[InfoDoc]) -> String {
    let mut merged: Option<serde_json::Map<String, Value>> = None;
    for d in docs {
        let v: Value = match serde_json::from_str(&d.content) {
            Ok(v) => v,
            Err(e) => {
                log::warn!(target: "mapproxy.featureinfo", "feature info is not JSON ({e}), skipping: {}", d.content);
                continue;
            }
        };
        // Python's `if result:` (empty objects and falsy values are left out)
        let Value::Object(obj) = v else { continue };
        if obj.is_empty() {
            continue;
        }
        match &mut merged {
            None => merged = Some(obj),
            Some(base) => merge_dict(base, obj),
        }
    }
    let mut out = String::new();
    py_json(&Value::Object(merged.unwrap_or_default()), &mut out);
    out
}

/// MapProxy's `merge_dict`.
fn merge_dict(base: &mut serde_json::Map<String, Value>, other: serde_json::Map<String, Value>) {
    for (k, v) in other {
        match (base.get_mut(&k), v) {
            (None, v) => {
                base.insert(k, v);
            }
            (Some(Value::Object(b)), Value::Object(o)) => merge_dict(b, o),
            (Some(Value::Array(b)), Value::Array(o)) => b.extend(o),
            (Some(slot), v) => *slot = v,
        }
    }
}

/// Python's `json.dumps` (separators `, ` and `: `, `ensure_ascii`, floats as `repr`);
/// serde_json's writers have neither the separators nor the ASCII escaping.
fn py_json(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(&i.to_string());
            } else if let Some(u) = n.as_u64() {
                out.push_str(&u.to_string());
            } else {
                let f = n.as_f64().unwrap_or(f64::NAN);
                out.push_str(&crate::source::py_float_repr(f));
            }
        }
        Value::String(s) => py_json_str(s, out),
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_json(x, out);
            }
            out.push(']');
        }
        Value::Object(o) => {
            out.push('{');
            for (i, (k, x)) in o.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                py_json_str(k, out);
                out.push_str(": ");
                py_json(x, out);
            }
            out.push('}');
        }
    }
}

fn py_json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 || !c.is_ascii() => {
                let mut buf = [0u16; 2];
                for unit in c.encode_utf16(&mut buf) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(s: &str, mime: &str) -> InfoDoc {
        InfoDoc::new(s.to_string(), mime)
    }

    #[test]
    fn types_as_mapproxy() {
        assert_eq!(InfoType::of_mime("text/xml; charset=utf-8"), InfoType::Xml);
        assert_eq!(InfoType::of_mime("application/vnd.ogc.gml"), InfoType::Xml);
        assert_eq!(InfoType::of_mime("text/html"), InfoType::Html);
        assert_eq!(InfoType::of_mime("text/plain"), InfoType::Text);
        assert_eq!(InfoType::of_mime("foo/bar"), InfoType::Text);
        assert_eq!(InfoType::Xml.mime(false), "application/vnd.ogc.gml");
        assert_eq!(InfoType::Xml.mime(true), "text/xml");
    }

    #[test]
    fn text_joined() {
        let (t, k) = combine(&[doc("a", "text/plain"), doc("", "text/plain"), doc("b", "x")]);
        assert_eq!((t.as_str(), k), ("a\nb", InfoType::Text));
    }

    #[test]
    fn xml_children_appended() {
        let (t, k) = combine(&[
            doc("<?xml version=\"1.0\"?>\n<a x=\"1>2\"><b/></a>", "text/xml"),
            doc("<a><c>1</c><d/></a>", "application/vnd.ogc.gml"),
            doc("<a/>", "text/xml"),
            doc("not xml", "text/xml"),
        ]);
        assert_eq!(k, InfoType::Xml);
        assert_eq!(t, "<a x=\"1>2\"><b/><c>1</c><d/></a>");
        let (t, _) = combine(&[doc("<a />", "text/xml"), doc("<r><c/></r>", "text/xml")]);
        assert_eq!(t, "<a><c/></a>");
    }

    #[test]
    fn html_bodies_appended() {
        let (t, k) = combine(&[
            doc(
                "<!DOCTYPE html><html><head><title>x</title></head><BODY><p>1</p></BODY></html>",
                "text/html",
            ),
            doc(
                "<html><body class=\"y\"><p>2</p></body></html>",
                "text/html",
            ),
            doc("<p>3</p>", "text/html"),
        ]);
        assert_eq!(k, InfoType::Html);
        assert_eq!(
            t,
            "<html><head><title>x</title></head><BODY><p>1</p><p>2</p><p>3</p></BODY></html>"
        );
        let (t, _) = combine(&[doc("<p>1</p>", "text/html"), doc("<p>2</p>", "text/html")]);
        assert_eq!(t, "<html><body><p>1</p><p>2</p></body></html>");
    }

    #[test]
    fn json_merged_as_python() {
        let (t, k) = combine(&[
            doc(
                r#"{"type": "FeatureCollection", "features": [{"id": 1}], "m": {"a": 1}}"#,
                "application/json",
            ),
            doc("{}", "application/json"),
            doc(
                r#"{"features": [{"id": 2}], "m": {"b": 2.5}, "n": "ä"}"#,
                "application/json",
            ),
        ]);
        assert_eq!(k, InfoType::Json);
        assert_eq!(
            t,
            r#"{"type": "FeatureCollection", "features": [{"id": 1}, {"id": 2}], "m": {"a": 1, "b": 2.5}, "n": "\u00e4"}"#
        );
    }

    #[test]
    fn mixed_types_as_text() {
        let (t, k) = combine(&[doc("<a/>", "text/xml"), doc("b", "text/plain")]);
        assert_eq!((t.as_str(), k), ("<a/>\nb", InfoType::Text));
    }
}
