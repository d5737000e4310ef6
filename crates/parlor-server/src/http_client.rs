//! The one outbound HTTP client setup (webhook delivery, the `parlor` admin CLI): reqwest on
//! rustls with the ring provider and the Mozilla roots, so that nothing depends on a process-wide
//! default crypto provider or on the system's OpenSSL.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::time::Duration;

/// A client whose every request times out after `timeout` (connect and answer), trusting the
/// Mozilla roots plus the certificates in `extra_roots_pem` (a private CA; may be empty).
pub fn client(timeout: Duration, extra_roots_pem: &[u8]) -> Result<reqwest::Client, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in CertificateDer::pem_slice_iter(extra_roots_pem) {
        let cert = cert.map_err(|e| format!("extra roots: {e}"))?;
        roots.add(cert).map_err(|e| format!("extra roots: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .timeout(timeout)
        .connect_timeout(timeout)
        .user_agent(concat!("parlor/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| e.to_string())
}
