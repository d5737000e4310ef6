//! A test certificate authority for TLS tests: a CA, and a certificate it signed for
//! `localhost` and 127.0.0.1, written as PEM files into a temp dir removed on drop.

use std::path::PathBuf;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};

/// A CA and a server certificate it signed, in PEM files.
pub struct TestCa {
    /// The CA's certificate (what a client trusts).
    pub ca_pem: String,
    /// The server's certificate chain file.
    pub cert: PathBuf,
    /// The server's key file.
    pub key: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestCa {
    /// A new CA and certificate (panics on failure: tests only).
    pub fn new() -> TestCa {
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name.push(DnType::CommonName, "Parlor test CA");
        let ca_cert = ca.self_signed(&ca_key).expect("a self-signed CA");
        let issuer = Issuer::new(ca, ca_key);
        let key = KeyPair::generate().expect("a server key");
        let leaf = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).expect("params");
        let cert = leaf.signed_by(&key, &issuer).expect("a signed certificate");
        let dir = tempfile::Builder::new().prefix("parlor-tls-").tempdir().expect("a temp dir");
        let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
        std::fs::write(&cert_path, cert.pem()).expect("cert.pem written");
        std::fs::write(&key_path, key.serialize_pem()).expect("key.pem written");
        TestCa { ca_pem: ca_cert.pem(), cert: cert_path, key: key_path, _dir: dir }
    }
}

impl Default for TestCa {
    fn default() -> Self {
        TestCa::new()
    }
}
