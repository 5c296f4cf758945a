//! rustls configuration: the system roots (loaded once), the extra CA file, and the verifier
//! of the insecure mode.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::error::{ClientError, ClientErrorKind};

const LOG: &str = "mapproxy_serve.client";

/// The crypto provider of every client: ring, named explicitly so that no process-wide
/// default has to be installed (and none is disturbed).
pub(crate) fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    PROVIDER
        .get_or_init(|| Arc::new(rustls::crypto::ring::default_provider()))
        .clone()
}

/// The system's trusted roots, loaded once per process; Mozilla's compiled-in roots
/// (webpki-roots) when none of the system's could be loaded.
pub(crate) fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                log::debug!(target: LOG, "loading the system's CA certificates: {e}");
            }
            let mut roots = RootCertStore::empty();
            let (added, ignored) = roots.add_parsable_certificates(loaded.certs);
            if added > 0 {
                log::debug!(
                    target: LOG,
                    "trusting {added} CA certificates of the system ({ignored} unusable ones ignored)"
                );
            } else {
                log::warn!(
                    target: LOG,
                    "no CA certificate of the system could be loaded; trusting the compiled-in \
                     Mozilla roots (webpki-roots) instead"
                );
                roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
            }
            Arc::new(roots)
        })
        .clone()
}

/// Reads a CA file. Errors name the file and say what is wrong with it.
pub(crate) fn read_ca_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path).map_err(|e| {
        let why = match e.kind() {
            std::io::ErrorKind::NotFound => "not found".to_owned(),
            std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
            _ => e.to_string(),
        };
        ClientError::new(
            ClientErrorKind::Config,
            format!("CA file {}: {why}", path.display()),
        )
        .with_source(e)
    })
}

/// The PEM certificates of a CA file's contents (`path` is for messages).
pub(crate) fn parse_ca_pem(
    path: &Path,
    pem_bytes: &[u8],
) -> Result<Vec<CertificateDer<'static>>, ClientError> {
    let bad = |why: String| {
        ClientError::new(
            ClientErrorKind::Config,
            format!("CA file {}: {why}", path.display()),
        )
    };
    let mut certs = Vec::new();
    for item in CertificateDer::pem_slice_iter(pem_bytes) {
        match item {
            Ok(c) => certs.push(c),
            Err(pem::Error::NoItemsFound) => break,
            Err(e) => return Err(bad(format!("not valid PEM: {e}")).with_source(e)),
        }
    }
    if certs.is_empty() {
        return Err(bad(
            "no certificates in it (expected PEM '-----BEGIN CERTIFICATE-----' blocks)".to_owned(),
        ));
    }
    Ok(certs)
}

/// The rustls client configuration: the system roots plus those of the CA file, or no
/// verification at all when `insecure`.
pub(crate) fn client_config(
    ca: Option<(&Path, &[u8])>,
    insecure: bool,
) -> Result<rustls::ClientConfig, ClientError> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            ClientError::new(
                ClientErrorKind::Config,
                format!("TLS configuration rejected: {e}"),
            )
            .with_source(e)
        })?;
    // The CA file is checked in the insecure mode too: a broken setting is reported either way.
    let extra = match ca {
        Some((path, pem_bytes)) => Some((path, parse_ca_pem(path, pem_bytes)?)),
        None => None,
    };
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoCertificateCheck { provider }))
            .with_no_client_auth()
    } else {
        let mut roots = (*system_roots()).clone();
        if let Some((path, certs)) = extra {
            for (i, cert) in certs.into_iter().enumerate() {
                roots.add(cert).map_err(|e| {
                    ClientError::new(
                        ClientErrorKind::Config,
                        format!(
                            "CA file {}: certificate #{} is not usable as a trust anchor: {e}",
                            path.display(),
                            i + 1
                        ),
                    )
                    .with_source(e)
                })?;
            }
        }
        builder.with_root_certificates(roots).with_no_client_auth()
    };
    Ok(config)
}

/// The verifier of [`ClientConfig::insecure`](crate::ClientConfig::insecure) (MapProxy's
/// `http.ssl_no_cert_checks`).
///
/// **Insecure**: any server certificate is accepted, whoever issued it, whatever name it is
/// for and however expired, so anyone on the path can impersonate the server. What is still
/// checked is what the TLS handshake itself needs: the certificate must parse, and the
/// server's handshake signature must be a valid signature of a supported scheme made with that
/// certificate's key.
#[derive(Debug)]
struct NoCertificateCheck {
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoCertificateCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        // Well-formedness only: an unparsable certificate is still refused.
        rustls::server::ParsedCertificate::try_from(end_entity)?;
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_file_without_certificates_is_named() {
        let path = Path::new("/nowhere/ca.pem");
        let err = parse_ca_pem(path, b"just text\n").unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::Config);
        assert!(err.to_string().contains("/nowhere/ca.pem"), "{err}");
        assert!(err.to_string().contains("no certificates"), "{err}");
    }

    #[test]
    fn ca_file_with_broken_pem_is_refused() {
        let path = Path::new("ca.pem");
        let pem = b"-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n";
        let err = parse_ca_pem(path, pem).unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::Config);
        assert!(err.to_string().contains("ca.pem"), "{err}");
    }

    #[test]
    fn missing_ca_file_says_not_found() {
        let err = read_ca_file(Path::new("/nonexistent/dir/ca.pem")).unwrap_err();
        assert_eq!(err.kind(), ClientErrorKind::Config);
        assert_eq!(
            err.to_string(),
            "CA file /nonexistent/dir/ca.pem: not found"
        );
    }
}
