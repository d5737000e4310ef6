//! `wss://`: TLS through rustls (ring provider), trusting the Mozilla roots of `webpki-roots`
//! and any extra roots the app gives ([`crate::EngineConfig::extra_roots_pem`], e.g. a private
//! CA, or a test's).
//!
//! Why webpki-roots rather than the OS store: the same trust on every machine, no file system
//! or platform verifier in the way, and a private CA is one field away. An app that wants the
//! OS store can pass its PEM bundle (e.g. `/etc/ssl/certs/ca-certificates.crt`) the same way.
//!
//! A `wss://` URL without a [`crate::Connector`] gets one from [`connector`]: TCP to the URL's
//! host, then the TLS handshake, over which the engine runs its WebSocket upgrade as usual.

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use crate::engine::Connector;

/// The rustls client settings: the webpki roots, plus every certificate in `extra_pem`.
pub(crate) fn client_config(extra_pem: Option<&str>) -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(pem) = extra_pem {
        let mut added = 0;
        for cert in CertificateDer::pem_slice_iter(pem.as_bytes()) {
            let cert = cert.map_err(|e| format!("extra root certificates: {e}"))?;
            roots.add(cert).map_err(|e| format!("extra root certificate: {e}"))?;
            added += 1;
        }
        if added == 0 {
            return Err("extra root certificates: no PEM certificate found".into());
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// A connector for the `wss://` URL `url`: TCP to its host and port (443 by default), then TLS
/// checked against `config` for the URL's host name (or IP address).
pub(crate) fn connector(url: &str, config: Arc<rustls::ClientConfig>) -> Result<Connector, String> {
    let req = url.into_client_request().map_err(|e| e.to_string())?;
    let uri = req.uri();
    let host = uri.host().ok_or("the URL has no host")?;
    // An IPv6 literal comes bracketed in the URL and bare in the name to verify.
    let bare = host.trim_start_matches('[').trim_end_matches(']').to_string();
    let port = uri.port_u16().unwrap_or(443);
    let name = ServerName::try_from(bare.clone()).map_err(|e| format!("{bare}: {e}"))?;
    let tls = tokio_rustls::TlsConnector::from(config);
    Ok(Connector::new(move || {
        let (tls, name, host) = (tls.clone(), name.clone(), bare.clone());
        async move {
            let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            let _ = tcp.set_nodelay(true);
            tls.connect(name, tcp).await
        }
    }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn extra_roots_must_hold_a_certificate() {
        assert!(super::client_config(None).is_ok());
        assert!(super::client_config(Some("not a certificate")).is_err());
    }
}
