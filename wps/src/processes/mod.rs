//! The pywps-flask example processes, under their identifiers and with their inputs and
//! outputs: `say_hello`, `ultimate_question`, `sleep`, `feature_count`, `centroids`,
//! `buffer`, `area`. Geometry through the `geo` crate (PyWPS uses shapely and OGR).

pub mod gml;

use std::time::Duration;

use geo::{Area as _, Buffer as _, Centroid as _, Geometry, MultiPolygon};

use crate::process::{
    AllowedValue, DataType, ExecuteRequest, ExecuteResponse, Format, InputDesc, InputKind,
    LiteralValue, OutputDesc, OutputValue, Process, ProcessDesc, ProcessError,
};
use crate::register_process;

const GML_ONLY: &[Format] = &[Format::GML];

/// `say_hello`: "Hello " + name.
pub struct SayHello;

impl Process for SayHello {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "say_hello",
            title: "Process Say Hello",
            abstract_: "Returns a literal string output with Hello plus the inputed name",
            version: "1.3.3.7",
            inputs: &[InputDesc::literal("name", "Input name", DataType::String)],
            outputs: &[OutputDesc::literal(
                "response",
                "Output response",
                DataType::String,
            )],
            store_supported: true,
            status_supported: true,
            ..ProcessDesc::DEFAULT
        };
        &D
    }

    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        let name = req.literal("name")?;
        res.set(
            "response",
            OutputValue::Literal {
                value: LiteralValue::String(format!("Hello {name}")),
                uom: Some("urn:ogc:def:uom:OGC:1.0:unity".to_string()),
            },
        );
        Ok(())
    }
}
register_process!(SayHello);

/// `ultimate_question`: 42.
pub struct UltimateQuestion;

impl Process for UltimateQuestion {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "ultimate_question",
            title: "Answer to the ultimate question",
            abstract_: "The process gives the answer to the ultimate question of \"What is the meaning of life?",
            version: "1.3.3.7",
            metadata: &["Ultimate Question", "What is the meaning of life"],
            outputs: &[OutputDesc::literal("answer", "Answer to Ultimate Question", DataType::String)],
            ..ProcessDesc::DEFAULT
        };
        &D
    }

    fn execute(&self, _: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        res.set_literal("answer", LiteralValue::String("42".into()));
        Ok(())
    }
}
register_process!(UltimateQuestion);

/// `sleep`: five waits of `delay` seconds, reporting 20, 40, 60, 80 %.
pub struct Sleep;

impl Process for Sleep {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "sleep",
            title: "Sleep Process",
            abstract_:
                "The process will sleep for a given delay or 10 seconds if not a valid value",
            metadata: &["Sleep", "Wait", "Delay"],
            inputs: &[InputDesc::literal(
                "delay",
                "Delay between every update",
                DataType::Float,
            )],
            outputs: &[OutputDesc::literal(
                "sleep_output",
                "Sleep Output",
                DataType::String,
            )],
            store_supported: true,
            status_supported: true,
            ..ProcessDesc::DEFAULT
        };
        &D
    }

    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        let d = req.literal("delay")?.as_f64()?;
        // As pywps-flask: a false value (0) means 10 seconds. Bounded to an hour per step.
        let d = if d == 0.0 || !d.is_finite() {
            10.0
        } else {
            d.clamp(0.0, 3600.0)
        };
        let wait = Duration::from_secs_f64(d);
        std::thread::sleep(wait);
        for pct in [20, 40, 60, 80] {
            res.update_status("PyWPS Process started. Waiting...", pct);
            std::thread::sleep(wait);
        }
        res.set_literal("sleep_output", LiteralValue::String("done sleeping".into()));
        Ok(())
    }
}
register_process!(Sleep);

/// `feature_count`: the number of `gml:featureMember`s.
pub struct FeatureCount;

impl Process for FeatureCount {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "feature_count",
            title: "Feature count",
            abstract_: "This process counts the number of features in an uploaded GML ",
            metadata: &["Feature", "Count"],
            inputs: &[InputDesc::complex("layer", "Layer", GML_ONLY)],
            outputs: &[OutputDesc::literal("count", "Count", DataType::Integer)],
            store_supported: true,
            status_supported: true,
            ..ProcessDesc::DEFAULT
        };
        &D
    }

    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        let doc = gml::parse(req.complex("layer")?)?;
        let n = gml::feature_members(&doc).count();
        res.set_literal("count", LiteralValue::Integer(n as i64));
        Ok(())
    }
}
register_process!(FeatureCount);

fn geometries(req: &ExecuteRequest, id: &str) -> Result<Vec<gml::Feature>, ProcessError> {
    gml::features(req.complex(id)?)
}

/// `centroids`: GeoJSON of the features' centroids.
pub struct Centroids;

impl Process for Centroids {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "centroids",
            title: "Process Centroids",
            abstract_: "Returns a GeoJSON with centroids of features from  an uploaded GML.",
            inputs: &[InputDesc::complex("layer", "Layer", GML_ONLY)],
            outputs: &[OutputDesc::complex(
                "out",
                "Referenced Output",
                &[Format::JSON],
            )],
            store_supported: true,
            status_supported: true,
            ..ProcessDesc::DEFAULT
        };
        &D
    }

    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        let mut features = Vec::new();
        for f in geometries(req, "layer")? {
            let centroid = f.geometry.as_ref().and_then(|g| g.centroid());
            let mut props = geojson::JsonObject::new();
            for (k, v) in f.properties {
                props.insert(k, serde_json::Value::String(v));
            }
            features.push(geojson::Feature {
                bbox: None,
                geometry: centroid
                    .map(|p| geojson::Geometry::new(geojson::GeometryValue::from(&p))),
                id: f.id.map(geojson::feature::Id::String),
                properties: Some(props),
                foreign_members: None,
            });
        }
        let fc = geojson::FeatureCollection {
            bbox: None,
            features,
            foreign_members: None,
        };
        let text = serde_json::to_string_pretty(&fc)
            .map_err(|e| ProcessError::new(format!("cannot write GeoJSON: {e}")))?;
        res.set_complex("out", text, Format::JSON);
        Ok(())
    }
}
register_process!(Centroids);

/// `buffer`: the features buffered by `buffer`, as GML.
pub struct Buffer;

impl Process for Buffer {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "buffer",
            title: "GDAL Buffer process",
            abstract_:
                "The process returns buffers around the input features, using the GDAL library",
            version: "0.1",
            inputs: &[
                InputDesc::complex("poly_in", "Input vector file", GML_ONLY),
                InputDesc {
                    kind: InputKind::Literal {
                        data_type: DataType::Float,
                        allowed: &[
                            AllowedValue::Value("0"),
                            AllowedValue::Value("1"),
                            AllowedValue::Value("10"),
                            AllowedValue::Range {
                                min: 10.0,
                                max: 100.0,
                                spacing: 10.0,
                            },
                            AllowedValue::Range {
                                min: 100.0,
                                max: 1000.0,
                                spacing: 100.0,
                            },
                        ],
                        default: None,
                        uoms: &[],
                    },
                    ..InputDesc::literal("buffer", "Buffer size", DataType::Float)
                },
            ],
            outputs: &[OutputDesc::complex("buff_out", "Buffered file", GML_ONLY)],
            store_supported: true,
            status_supported: true,
            ..ProcessDesc::DEFAULT
        };
        &D
    }

    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        let distance = req.literal("buffer")?.as_f64()?;
        let features = geometries(req, "poly_in")?;
        let n = features.len().max(1);
        let mut out = Vec::with_capacity(features.len());
        for (i, f) in features.into_iter().enumerate() {
            if let Some(g) = f.geometry {
                let buffered: MultiPolygon<f64> = match &g {
                    Geometry::Point(p) => p.buffer(distance),
                    Geometry::LineString(l) => l.buffer(distance),
                    Geometry::Polygon(p) => p.buffer(distance),
                    Geometry::MultiPoint(m) => m.buffer(distance),
                    Geometry::MultiLineString(m) => m.buffer(distance),
                    Geometry::MultiPolygon(m) => m.buffer(distance),
                    _ => continue,
                };
                out.push((f.id, buffered));
            }
            res.update_status("Buffering", (100 * (i + 1) / n) as u8);
        }
        res.set_complex("buff_out", gml::write_polygons("buffer", &out), Format::GML);
        Ok(())
    }
}
register_process!(Buffer);

/// `area`: the area of each feature, as a list.
pub struct Area;

impl Process for Area {
    fn describe(&self) -> &'static ProcessDesc {
        const D: ProcessDesc = ProcessDesc {
            identifier: "area",
            title: "Process Area",
            abstract_: "Process returns the area of each feature from a submitted GML file",
            inputs: &[InputDesc::complex("layer", "Layer", GML_ONLY)],
            outputs: &[OutputDesc::literal("area", "Area", DataType::String)],
            store_supported: true,
            status_supported: true,
            ..ProcessDesc::DEFAULT
        };
        &D
    }

    fn execute(&self, req: &ExecuteRequest, res: &mut ExecuteResponse) -> Result<(), ProcessError> {
        let areas: Vec<String> = geometries(req, "layer")?
            .iter()
            .map(|f| {
                let a = f.geometry.as_ref().map_or(0.0, |g| g.unsigned_area());
                LiteralValue::Float(a).to_string()
            })
            .collect();
        // str() of a Python list of floats, as pywps-flask's output.
        res.set_literal(
            "area",
            LiteralValue::String(format!("[{}]", areas.join(", "))),
        );
        Ok(())
    }
}
register_process!(Area);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::process::InputValue;
    use bytes::Bytes;

    fn gml_input(id: &'static str, gml: &str) -> (&'static str, Vec<InputValue>) {
        (
            id,
            vec![InputValue::Complex {
                data: Bytes::from(gml.to_string()),
                format: Format::GML,
                mime_type: "application/gml+xml".into(),
                encoding: String::new(),
                schema: String::new(),
                href: None,
            }],
        )
    }

    const SQUARES: &str = r#"<ogr:FeatureCollection xmlns:ogr="http://ogr.maptools.org/" xmlns:gml="http://www.opengis.net/gml">
<gml:featureMember><ogr:a fid="a.1"><ogr:geometryProperty><gml:Polygon><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>0,0 2,0 2,2 0,2 0,0</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty></ogr:a></gml:featureMember>
<gml:featureMember><ogr:a fid="a.2"><ogr:geometryProperty><gml:Polygon><gml:outerBoundaryIs><gml:LinearRing><gml:coordinates>10,10 11,10 11,11 10,11 10,10</gml:coordinates></gml:LinearRing></gml:outerBoundaryIs></gml:Polygon></ogr:geometryProperty></ogr:a></gml:featureMember>
</ogr:FeatureCollection>"#;

    #[test]
    fn area_centroids_count_buffer() {
        let req = ExecuteRequest {
            inputs: vec![gml_input("layer", SQUARES)],
            ..ExecuteRequest::default()
        };
        let mut res = ExecuteResponse::new();
        Area.execute(&req, &mut res).unwrap();
        assert!(
            matches!(res.get("area"), Some(OutputValue::Literal { value: LiteralValue::String(s), .. }) if s == "[4.0, 1.0]")
        );
        FeatureCount.execute(&req, &mut res).unwrap();
        assert!(matches!(
            res.get("count"),
            Some(OutputValue::Literal {
                value: LiteralValue::Integer(2),
                ..
            })
        ));
        Centroids.execute(&req, &mut res).unwrap();
        let Some(OutputValue::Complex { data, .. }) = res.get("out") else {
            panic!()
        };
        let v: serde_json::Value = serde_json::from_slice(data).unwrap();
        assert_eq!(
            v["features"][0]["geometry"]["coordinates"],
            serde_json::json!([1.0, 1.0])
        );

        let req = ExecuteRequest {
            inputs: vec![
                gml_input("poly_in", SQUARES),
                (
                    "buffer",
                    vec![InputValue::Literal {
                        value: LiteralValue::Float(1.0),
                        text: "1".into(),
                        uom: None,
                    }],
                ),
            ],
            ..ExecuteRequest::default()
        };
        Buffer.execute(&req, &mut res).unwrap();
        assert_eq!(res.percent(), 100);
        let Some(OutputValue::Complex { data, .. }) = res.get("buff_out") else {
            panic!()
        };
        let f = gml::features(data).unwrap();
        let a = f[0].geometry.as_ref().unwrap().unsigned_area();
        // a 2x2 square grown by 1: 4 + 4*2 + pi ≈ 15.14
        assert!((a - (12.0 + std::f64::consts::PI)).abs() < 0.1, "{a}");
    }
}
