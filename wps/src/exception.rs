//! OWS exceptions as PyWPS answers them (`pywps/exceptions.py`): the class name is the
//! `exceptionCode`, every one is HTTP 400 unless a code is given (PyWPS's
//! `NoApplicableCode.__init__(code=400)` overrides the class codes, OperationNotSupported's
//! 501 included), `ServerBusy` has a body of its own.

use http::{Response, StatusCode};
use mapproxy_serve_core::app::{text_response, Body};

use crate::xml::esc;

/// The `exceptionCode`s PyWPS uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Code {
    /// `NoApplicableCode`
    NoApplicableCode,
    /// `InvalidParameterValue`
    InvalidParameterValue,
    /// `MissingParameterValue`
    MissingParameterValue,
    /// `FileSizeExceeded`
    FileSizeExceeded,
    /// `VersionNegotiationFailed`
    VersionNegotiationFailed,
    /// `OperationNotSupported`
    OperationNotSupported,
    /// `StorageNotSupported`
    StorageNotSupported,
    /// `NotEnoughStorage`
    NotEnoughStorage,
    /// `FileStorageError`
    FileStorageError,
    /// `ServerBusy`
    ServerBusy,
    /// `FileURLNotSupported`
    FileUrlNotSupported,
}

impl Code {
    /// The class name PyWPS prints.
    pub fn name(self) -> &'static str {
        match self {
            Code::NoApplicableCode => "NoApplicableCode",
            Code::InvalidParameterValue => "InvalidParameterValue",
            Code::MissingParameterValue => "MissingParameterValue",
            Code::FileSizeExceeded => "FileSizeExceeded",
            Code::VersionNegotiationFailed => "VersionNegotiationFailed",
            Code::OperationNotSupported => "OperationNotSupported",
            Code::StorageNotSupported => "StorageNotSupported",
            Code::NotEnoughStorage => "NotEnoughStorage",
            Code::FileStorageError => "FileStorageError",
            Code::ServerBusy => "ServerBusy",
            Code::FileUrlNotSupported => "FileURLNotSupported",
        }
    }
}

/// One OWS exception: code, locator, text and HTTP status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WpsException {
    /// `exceptionCode`
    pub code: Code,
    /// `locator`
    pub locator: String,
    /// `ows:ExceptionText`
    pub text: String,
    /// HTTP status (400 unless PyWPS passes another).
    pub status: StatusCode,
}

impl WpsException {
    /// An exception with status 400, as PyWPS raises them.
    pub fn new(code: Code, text: impl Into<String>, locator: impl Into<String>) -> Self {
        WpsException {
            code,
            locator: locator.into(),
            text: text.into(),
            status: StatusCode::BAD_REQUEST,
        }
    }
    /// `MissingParameterValue`
    pub fn missing(text: impl Into<String>, locator: impl Into<String>) -> Self {
        Self::new(Code::MissingParameterValue, text, locator)
    }
    /// `InvalidParameterValue`
    pub fn invalid(text: impl Into<String>, locator: impl Into<String>) -> Self {
        Self::new(Code::InvalidParameterValue, text, locator)
    }
    /// `NoApplicableCode` with HTTP 500: the server's fault (PyWPS's catch-all).
    pub fn internal(text: impl Into<String>) -> Self {
        WpsException {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            ..Self::new(Code::NoApplicableCode, text, "")
        }
    }

    /// The `ows:ExceptionReport` document.
    pub fn body(&self) -> String {
        if self.code == Code::ServerBusy {
            // PyWPS's ServerBusy.get_body: no locator, no ExceptionText element, one line.
            return format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
                 <ows:ExceptionReport xmlns:ows=\"http://www.opengis.net/ows/1.1\" \
                 xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
                 xsi:schemaLocation=\"http://www.opengis.net/ows/1.1 ../../../ows/1.1.0/owsExceptionReport.xsd\" \
                 version=\"1.0.0\"><ows:Exception exceptionCode=\"ServerBusy\">{}</ows:Exception></ows:ExceptionReport>",
                esc(&self.text)
            );
        }
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
             <!-- PyWPS {} -->\n\
             <ows:ExceptionReport xmlns:ows=\"http://www.opengis.net/ows/1.1\" \
             xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" \
             xsi:schemaLocation=\"http://www.opengis.net/ows/1.1 http://schemas.opengis.net/ows/1.1.0/owsExceptionReport.xsd\" \
             version=\"1.0.0\">\n  <ows:Exception exceptionCode=\"{}\" locator=\"{}\" >\n      \
             <ows:ExceptionText>{}</ows:ExceptionText>\n  </ows:Exception>\n</ows:ExceptionReport>",
            crate::PYWPS_VERSION,
            self.code.name(),
            esc(&self.locator),
            esc(&self.text)
        )
    }

    /// The HTTP response: the report as `text/xml; charset=utf-8`.
    pub fn response(&self) -> Response<Body> {
        text_response(self.status, "text/xml; charset=utf-8", self.body())
    }
}

impl std::fmt::Display for WpsException {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} (locator {:?}): {}",
            self.code.name(),
            self.locator,
            self.text
        )
    }
}

impl std::error::Error for WpsException {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_is_pywps_format() {
        let e = WpsException::missing("service", "service");
        let body = e.body();
        assert!(body.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!-- PyWPS "));
        assert!(body.contains(
            "<ows:Exception exceptionCode=\"MissingParameterValue\" locator=\"service\" >\n      <ows:ExceptionText>service</ows:ExceptionText>"
        ));
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        let busy = WpsException::new(Code::ServerBusy, "a<b", "");
        assert!(busy
            .body()
            .ends_with("<ows:Exception exceptionCode=\"ServerBusy\">a&lt;b</ows:Exception></ows:ExceptionReport>"));
    }
}
