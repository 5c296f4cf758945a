//! Simple-feature GML (2 and 3: what OGR writes and WFS servers answer) to and from `geo`
//! geometries.
//!
//! Written here because no maintained Rust crate reads GML (the `gml` crates on crates.io
//! are unmaintained stubs; GDAL's bindings would link a C library for one format): this reads
//! the features of a FeatureCollection with roxmltree and builds `geo` geometries from
//! `gml:coordinates` / `gml:coord` / `gml:pos` / `gml:posList`.

use std::fmt::Write as _;

use geo::{Coord, Geometry, LineString, MultiLineString, MultiPoint, MultiPolygon, Point, Polygon};

use crate::process::ProcessError;
use crate::xml::esc;

/// The GML 2 and 3 namespace (PyWPS's `xpath_ns` `gml:` prefix).
pub const GML_NS: &str = "http://www.opengis.net/gml";
const GML32_NS: &str = "http://www.opengis.net/gml/3.2";

/// One feature: its geometry (if any) and its simple properties.
#[derive(Clone, Debug)]
pub struct Feature {
    /// `fid` / `gml:id`
    pub id: Option<String>,
    /// The first geometry found in it.
    pub geometry: Option<Geometry<f64>>,
    /// Child elements holding text, in order.
    pub properties: Vec<(String, String)>,
}

fn is_gml(n: &roxmltree::Node<'_, '_>) -> bool {
    matches!(n.tag_name().namespace(), Some(GML_NS) | Some(GML32_NS))
}

fn gml_name<'a>(n: &roxmltree::Node<'a, '_>) -> Option<&'a str> {
    is_gml(n).then(|| n.tag_name().name())
}

/// Parses a document (no DTDs).
pub fn parse(data: &[u8]) -> Result<roxmltree::Document<'_>, ProcessError> {
    let text = std::str::from_utf8(data)
        .map_err(|e| ProcessError::new(format!("the GML is not UTF-8: {e}")))?;
    roxmltree::Document::parse_with_options(
        text,
        roxmltree::ParsingOptions {
            allow_dtd: false,
            ..roxmltree::ParsingOptions::default()
        },
    )
    .map_err(|e| ProcessError::new(format!("the GML does not parse: {e}")))
}

/// The `gml:featureMember` elements (PyWPS's feature_count counts these).
pub fn feature_members<'a, 'i>(
    doc: &'a roxmltree::Document<'i>,
) -> impl Iterator<Item = roxmltree::Node<'a, 'i>> {
    doc.descendants()
        .filter(|n| n.is_element() && gml_name(n) == Some("featureMember"))
}

/// Every feature: the children of `gml:featureMember` and `gml:featureMembers`.
pub fn features(data: &[u8]) -> Result<Vec<Feature>, ProcessError> {
    let doc = parse(data)?;
    let mut out = Vec::new();
    for member in doc.descendants().filter(|n| {
        n.is_element()
            && matches!(
                gml_name(n),
                Some("featureMember" | "featureMembers" | "member")
            )
    }) {
        for f in member.children().filter(|c| c.is_element()) {
            out.push(feature(f)?);
        }
    }
    Ok(out)
}

fn feature(f: roxmltree::Node<'_, '_>) -> Result<Feature, ProcessError> {
    let id = f
        .attribute("fid")
        .or_else(|| f.attribute((GML_NS, "id")))
        .or_else(|| f.attribute((GML32_NS, "id")))
        .map(str::to_string);
    let mut geometry = None;
    let mut properties = Vec::new();
    for prop in f.children().filter(|c| c.is_element()) {
        if gml_name(&prop).is_some() {
            continue; // gml:boundedBy, gml:name, ...
        }
        let geom_el = prop.children().find(|c| c.is_element() && is_gml(c));
        match geom_el {
            Some(g) => {
                if geometry.is_none() {
                    geometry = Some(read_geometry(g)?);
                }
            }
            None => {
                if prop.children().all(|c| !c.is_element()) {
                    properties.push((
                        prop.tag_name().name().to_string(),
                        prop.text().unwrap_or("").trim().to_string(),
                    ));
                }
            }
        }
    }
    Ok(Feature {
        id,
        geometry,
        properties,
    })
}

fn bad(what: &str) -> ProcessError {
    ProcessError::new(format!("unsupported or malformed GML geometry: {what}"))
}

/// The coordinates directly under `el` (one of the four encodings).
fn coords(el: roxmltree::Node<'_, '_>) -> Result<Vec<Coord<f64>>, ProcessError> {
    let num = |s: &str| {
        s.trim()
            .parse::<f64>()
            .map_err(|_| bad(&format!("number '{s}'")))
    };
    let mut out = Vec::new();
    for c in el.children().filter(|c| c.is_element()) {
        match gml_name(&c) {
            Some("coordinates") => {
                let cs = c.attribute("cs").unwrap_or(",");
                let ts = c.attribute("ts").unwrap_or(" ");
                let text = c.text().unwrap_or("");
                let tuples: Vec<&str> = if ts.trim().is_empty() {
                    text.split_whitespace().collect()
                } else {
                    text.split(ts)
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .collect()
                };
                for t in tuples {
                    let mut it = t.split(cs);
                    let x = num(it.next().unwrap_or(""))?;
                    let y = num(it.next().ok_or_else(|| bad("a coordinate without y"))?)?;
                    out.push(Coord { x, y });
                }
            }
            Some("coord") => {
                let get = |n: &str| {
                    c.children()
                        .find(|k| gml_name(k) == Some(n))
                        .and_then(|k| k.text())
                        .ok_or_else(|| bad("gml:coord without X or Y"))
                };
                out.push(Coord {
                    x: num(get("X")?)?,
                    y: num(get("Y")?)?,
                });
            }
            Some("pos") => {
                let v: Vec<f64> = c
                    .text()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(num)
                    .collect::<Result<_, _>>()?;
                if v.len() < 2 {
                    return Err(bad("gml:pos with fewer than 2 values"));
                }
                out.push(Coord { x: v[0], y: v[1] });
            }
            Some("posList") => {
                let dim: usize = c
                    .attribute("srsDimension")
                    .or_else(|| c.attribute("dimension"))
                    .and_then(|d| d.parse().ok())
                    .filter(|d| (2..=4).contains(d))
                    .unwrap_or(2);
                let v: Vec<f64> = c
                    .text()
                    .unwrap_or("")
                    .split_whitespace()
                    .map(num)
                    .collect::<Result<_, _>>()?;
                if !v.len().is_multiple_of(dim) {
                    return Err(bad("gml:posList length is not a multiple of its dimension"));
                }
                out.extend(v.chunks(dim).map(|p| Coord { x: p[0], y: p[1] }));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn ring(el: roxmltree::Node<'_, '_>) -> Result<LineString<f64>, ProcessError> {
    // outerBoundaryIs/exterior/interior → LinearRing
    let lr = el
        .children()
        .find(|c| gml_name(c) == Some("LinearRing"))
        .ok_or_else(|| bad("a polygon boundary without gml:LinearRing"))?;
    Ok(LineString::new(coords(lr)?))
}

fn polygon(el: roxmltree::Node<'_, '_>) -> Result<Polygon<f64>, ProcessError> {
    let mut exterior = None;
    let mut interiors = Vec::new();
    for c in el.children().filter(|c| c.is_element()) {
        match gml_name(&c) {
            Some("outerBoundaryIs" | "exterior") => exterior = Some(ring(c)?),
            Some("innerBoundaryIs" | "interior") => interiors.push(ring(c)?),
            _ => {}
        }
    }
    Ok(Polygon::new(
        exterior.ok_or_else(|| bad("gml:Polygon without an exterior"))?,
        interiors,
    ))
}

/// Members of a multi-geometry: `*Member` children holding one geometry, or `*Members`
/// holding several.
fn members<'a, 'i>(el: roxmltree::Node<'a, 'i>) -> Vec<roxmltree::Node<'a, 'i>> {
    el.children()
        .filter(|c| c.is_element() && is_gml(c))
        .flat_map(|m| m.children().filter(|g| g.is_element() && is_gml(g)))
        .collect()
}

/// How deep multi-geometries may nest: deeper input is refused, not followed (each level is
/// a stack frame; a hostile document nests thousands).
const MAX_NESTING: usize = 32;

/// One GML geometry element.
pub fn read_geometry(el: roxmltree::Node<'_, '_>) -> Result<Geometry<f64>, ProcessError> {
    read_geometry_at(el, 0)
}

fn read_geometry_at(
    el: roxmltree::Node<'_, '_>,
    depth: usize,
) -> Result<Geometry<f64>, ProcessError> {
    if depth > MAX_NESTING {
        return Err(bad(&format!(
            "GML geometries nested deeper than {MAX_NESTING} levels"
        )));
    }
    let read_geometry = |m| read_geometry_at(m, depth + 1);
    let name = gml_name(&el).unwrap_or("");
    Ok(match name {
        "Point" => {
            let c = coords(el)?;
            Geometry::Point(Point(*c.first().ok_or_else(|| bad("empty gml:Point"))?))
        }
        "LineString" | "LinearRing" => Geometry::LineString(LineString::new(coords(el)?)),
        "Curve" => {
            // gml:Curve/gml:segments/gml:LineStringSegment*
            let mut all = Vec::new();
            for seg in el
                .descendants()
                .filter(|d| gml_name(d) == Some("LineStringSegment"))
            {
                all.extend(coords(seg)?);
            }
            Geometry::LineString(LineString::new(all))
        }
        "Polygon" | "Surface" => {
            if name == "Surface" {
                let p = el
                    .descendants()
                    .find(|d| gml_name(d) == Some("PolygonPatch"))
                    .ok_or_else(|| bad("gml:Surface without gml:PolygonPatch"))?;
                Geometry::Polygon(polygon(p)?)
            } else {
                Geometry::Polygon(polygon(el)?)
            }
        }
        "MultiPoint" => {
            let mut pts = Vec::new();
            for m in members(el) {
                if let Geometry::Point(p) = read_geometry(m)? {
                    pts.push(p);
                }
            }
            Geometry::MultiPoint(MultiPoint::new(pts))
        }
        "MultiLineString" | "MultiCurve" => {
            let mut ls = Vec::new();
            for m in members(el) {
                if let Geometry::LineString(l) = read_geometry(m)? {
                    ls.push(l);
                }
            }
            Geometry::MultiLineString(MultiLineString::new(ls))
        }
        "MultiPolygon" | "MultiSurface" => {
            let mut ps = Vec::new();
            for m in members(el) {
                match read_geometry(m)? {
                    Geometry::Polygon(p) => ps.push(p),
                    Geometry::MultiPolygon(mp) => ps.extend(mp.0),
                    _ => {}
                }
            }
            Geometry::MultiPolygon(MultiPolygon::new(ps))
        }
        other => return Err(bad(other)),
    })
}

fn write_coords(o: &mut String, cs: &[Coord<f64>]) {
    o.push_str("<gml:coordinates>");
    for (i, c) in cs.iter().enumerate() {
        if i > 0 {
            o.push(' ');
        }
        let _ = write!(o, "{},{}", c.x, c.y);
    }
    o.push_str("</gml:coordinates>");
}

fn write_polygon(o: &mut String, p: &Polygon<f64>) {
    o.push_str("<gml:Polygon><gml:outerBoundaryIs><gml:LinearRing>");
    write_coords(o, &p.exterior().0);
    o.push_str("</gml:LinearRing></gml:outerBoundaryIs>");
    for r in p.interiors() {
        o.push_str("<gml:innerBoundaryIs><gml:LinearRing>");
        write_coords(o, &r.0);
        o.push_str("</gml:LinearRing></gml:innerBoundaryIs>");
    }
    o.push_str("</gml:Polygon>");
}

/// A GML 2 FeatureCollection of (multi)polygons, as OGR's GML driver writes one (`ogr:`
/// feature type `layer`, `geometryProperty`).
pub fn write_polygons(layer: &str, features: &[(Option<String>, MultiPolygon<f64>)]) -> String {
    let mut o = String::with_capacity(1024 * features.len().max(1));
    o.push_str("<?xml version=\"1.0\" encoding=\"utf-8\" ?>\n");
    o.push_str("<ogr:FeatureCollection xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:schemaLocation=\"http://schemas.opengis.net/gml/2.1.2/feature.xsd\" xmlns:ogr=\"http://ogr.maptools.org/\" xmlns:gml=\"http://www.opengis.net/gml\">\n");
    let layer = esc(layer);
    for (i, (fid, mp)) in features.iter().enumerate() {
        let fid = fid.clone().unwrap_or_else(|| format!("{layer}.{i}"));
        let _ = write!(
            o,
            "  <gml:featureMember>\n    <ogr:{layer} fid=\"{}\">\n      <ogr:geometryProperty>",
            esc(&fid)
        );
        if mp.0.len() == 1 {
            write_polygon(&mut o, &mp.0[0]);
        } else {
            o.push_str("<gml:MultiPolygon>");
            for p in &mp.0 {
                o.push_str("<gml:polygonMember>");
                write_polygon(&mut o, p);
                o.push_str("</gml:polygonMember>");
            }
            o.push_str("</gml:MultiPolygon>");
        }
        let _ = writeln!(
            o,
            "</ogr:geometryProperty>\n    </ogr:{layer}>\n  </gml:featureMember>"
        );
    }
    o.push_str("</ogr:FeatureCollection>\n");
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r#"<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">
  <gml:featureMember><ogr:a fid="a.1"><ogr:geometryProperty><gml:Polygon><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>0,0 2,0 2,2 0,2 0,0</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty><ogr:name>sq</ogr:name></ogr:a></gml:featureMember>
  <gml:featureMember><ogr:a><ogr:geometryProperty><gml:LineString><gml:posList srsDimension="3">0 0 9 4 0 9</gml:posList></gml:LineString></ogr:geometryProperty></ogr:a></gml:featureMember>
</ogr:FeatureCollection>"#;

    #[test]
    fn deeply_nested_multi_geometries_are_refused_not_followed() {
        let n = 20_000;
        let doc = format!(
            "<ogr:FeatureCollection xmlns:ogr=\"http://ogr.maptools.org/\" xmlns:g=\"http://www.opengis.net/gml\"><g:featureMember><ogr:a><ogr:geometryProperty>{}{}</ogr:geometryProperty></ogr:a></g:featureMember></ogr:FeatureCollection>",
            "<g:MultiPolygon><g:polygonMember>".repeat(n),
            "</g:polygonMember></g:MultiPolygon>".repeat(n)
        );
        let e = features(doc.as_bytes()).expect_err("too deep");
        assert!(e.to_string().contains("nested deeper than 32"), "{e}");
    }

    #[test]
    fn reads_gml2_and_gml3() {
        let f = features(DOC.as_bytes()).unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].id.as_deref(), Some("a.1"));
        assert_eq!(
            f[0].properties,
            vec![("name".to_string(), "sq".to_string())]
        );
        let Some(Geometry::LineString(l)) = &f[1].geometry else {
            panic!()
        };
        assert_eq!(
            l.0,
            vec![Coord { x: 0.0, y: 0.0 }, Coord { x: 4.0, y: 0.0 }]
        );
        let out = write_polygons(
            "b",
            &[(
                None,
                MultiPolygon::new(vec![match &f[0].geometry {
                    Some(Geometry::Polygon(p)) => p.clone(),
                    _ => panic!(),
                }]),
            )],
        );
        assert_eq!(features(out.as_bytes()).unwrap().len(), 1);
    }
}
