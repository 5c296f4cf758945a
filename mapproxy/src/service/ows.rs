//! `/service?`, `/ows?`, `/wms?`: MapProxy's `OWSServer` (`service/ows.py`) dispatching on
//! `SERVICE`, with its `ows:ExceptionReport` documents.

use http::{Response, StatusCode};
use mapproxy_serve_core::app::Body;

use super::response::{html_escape, mimetype_response, no_cache};
use super::{Ctx, MapProxyService};

/// MapProxy's `ows_exception.xml` (`OWSExceptionHandler`, text/xml).
pub(crate) fn ows_exception(
    status: StatusCode,
    code: Option<&str>,
    locator: Option<&str>,
    msg: &str,
) -> Response<Body> {
    let mut body = String::from(
        "<?xml version=\"1.0\"?>\n<ows:ExceptionReport xmlns:ows=\"http://www.opengis.net/ows/1.1\"\n  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n  xsi:schemaLocation=\"http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd\"\n  version=\"1.0.0\" xml:lang=\"en\">\n  <ows:Exception",
    );
    if let Some(c) = code {
        body.push_str(&format!(" exceptionCode=\"{c}\""));
    }
    body.push_str("\n     ");
    if let Some(l) = locator {
        body.push_str(&format!(" locator=\"{l}\""));
    }
    body.push_str(&format!(
        ">\n    <ows:ExceptionText>{}</ows:ExceptionText>\n  </ows:Exception>\n</ows:ExceptionReport>",
        html_escape(msg)
    ));
    mimetype_response(status, "text/xml", body)
}

/// WMS 1.3.0's `ServiceExceptionReport` (`wms130exception.xml`, text/xml, 500).
pub(crate) fn wms130_exception(code: Option<&str>, msg: &str) -> Response<Body> {
    let code = code.map(|c| format!(" code=\"{c}\"")).unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\"?>\n<ServiceExceptionReport version=\"1.3.0\"\n  xmlns=\"http://www.opengis.net/ogc\"\n  xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\"\n  xsi:schemaLocation=\"http://www.opengis.net/ogc\nhttp://schemas.opengis.net/wms/1.3.0/exceptions_1_3_0.xsd\">\n    <ServiceException{code}>{}</ServiceException>\n</ServiceExceptionReport>",
        html_escape(msg)
    );
    no_cache(mimetype_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        "text/xml",
        body,
    ))
}

pub(crate) async fn handle(svc: &MapProxyService, ctx: &Ctx<'_>) -> Response<Body> {
    let service = ctx.arg("service").filter(|s| !s.is_empty());
    let service = match service {
        Some(s) => s.to_lowercase(),
        None => {
            let wmtver = ctx.arg("wmtver");
            let request = ctx.arg("request");
            if wmtver.as_deref() == Some("1.0.0") || request.as_deref() == Some("GetMap") {
                "wms".to_string()
            } else {
                // MapProxy renders this one without the no-cache headers.
                return ows_exception(
                    StatusCode::BAD_REQUEST,
                    Some("MissingParameterValue"),
                    Some("service"),
                    "The service parameter is missing",
                );
            }
        }
    };
    let wmts_kvp = svc.config.wmts.as_ref().is_some_and(|w| w.kvp);
    match service.as_str() {
        "wms" if svc.config.wms => match svc.wms() {
            Some(w) => super::wms::handle(w, ctx).await,
            // services.wms without a layer MapProxy can serve (its "found no WMS layer")
            None => wms130_exception(
                Some("OperationNotSupported"),
                "WMS is not available: no WMS layer is configured",
            ),
        },
        "wmts" if wmts_kvp => super::wmts::kvp(svc, ctx).await,
        _ => no_cache(ows_exception(
            StatusCode::BAD_REQUEST,
            Some("InvalidParameterValue"),
            Some("service"),
            &format!("The value of the service parameter \"{service}\" is invalid"),
        )),
    }
}
