//! TLS (`--tls-cert` / `--tls-key`): one listener speaking only TLS — `wss://` for the protocol,
//! `https://` for the admin API, `/metrics` and `/healthz` — against a CA made in the test.

mod common;

use std::sync::Arc;

use common::*;
use parlor_server::config::TlsFiles;
use parlor_server::{Server, ServerConfig};
use parlor_testkit::tls::TestCa;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The test CA's files as the server's TLS settings.
fn files(ca: &TestCa) -> TlsFiles {
    TlsFiles { cert: ca.cert.clone(), key: ca.key.clone() }
}

/// A client trusting the test CA only.
fn connector(ca: &TestCa) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from_pem_slice(ca.ca_pem.as_bytes()).unwrap()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn tls_server(ca: &TestCa) -> Server {
    Server::start(ServerConfig { tls: Some(files(ca)), ..ServerConfig::for_tests(APP, SECRET) })
        .await
        .expect("server starts")
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

async fn tls(ca: &TestCa, s: &Server) -> Tls {
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    connector(ca).connect(ServerName::try_from("localhost").unwrap(), tcp).await.expect("TLS handshake")
}

/// A `wss://` peer after its `hello`.
async fn wss_user(ca: &TestCa, s: &Server, user: &str) -> Peer<Tls> {
    let url = format!("wss://localhost:{}/v1/ws", s.addr.port());
    let (ws, _) = tokio_tungstenite::client_async(url, tls(ca, s).await).await.expect("upgrade over TLS");
    hello(ws, user).await.0
}

/// One HTTPS request; the whole response.
async fn https(ca: &TestCa, s: &Server, method: &str, path: &str, secret: Option<&str>, body: &str) -> String {
    let mut io = tls(ca, s).await;
    let auth = secret.map(|s| format!("Authorization: Bearer {s}\r\n")).unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    io.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    // A peer may end TLS without close_notify after `Connection: close`; what was read counts.
    let _ = io.read_to_end(&mut out).await;
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn wss_end_to_end_and_https_for_admin_metrics_and_health() {
    let ca = TestCa::new();
    let s = tls_server(&ca).await;
    assert!(s.ws_url().starts_with("wss://"), "{}", s.ws_url());
    let mut a = wss_user(&ca, &s, "a").await;
    let mut b = wss_user(&ca, &s, "b").await;
    a.login("r").await;
    b.login("r").await;
    // The peer's address reaches the door through the TLS listener too (the per-IP limit).
    let loopback = std::net::IpAddr::from([127, 0, 0, 1]);
    assert_eq!(s.node.limits.connections_from(loopback), 2);
    let _ = a.events().await;
    assert_eq!(code(&b.request(json!({"t":"broadcast","room":"r","message":"over tls"})).await), 0);
    assert_eq!(a.recv().await["message"], "over tls");

    let rooms = https(&ca, &s, "GET", "/v1/admin/apps/7/rooms", Some(SECRET), "").await;
    assert!(rooms.starts_with("HTTP/1.1 200"), "{rooms}");
    assert!(rooms.contains(r#""room":"r""#) && rooms.contains(r#""id":"b""#), "{rooms}");
    let denied = https(&ca, &s, "GET", "/v1/admin/apps/7/rooms", Some("wrong"), "").await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let kick = https(&ca, &s, "POST", "/v1/admin/apps/7/rooms/r/kick", Some(SECRET), r#"{"user":"b"}"#).await;
    assert!(kick.starts_with("HTTP/1.1 200"), "{kick}");
    assert_eq!(b.recv().await["t"], "kicked");
    let metrics = https(&ca, &s, "GET", "/metrics", None, "").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    let health = https(&ca, &s, "GET", "/healthz", None, "").await;
    assert!(health.starts_with("HTTP/1.1 200") && health.contains(r#""status":"ok""#), "{health}");
}

#[tokio::test]
async fn the_tls_listener_speaks_only_tls() {
    let ca = TestCa::new();
    let s = tls_server(&ca).await;
    // A plain WebSocket upgrade is not HTTP to a TLS server: no upgrade, no session.
    let plain = format!("ws://{}/v1/ws", s.addr);
    assert!(tokio_tungstenite::connect_async(plain).await.is_err());
    // A client that does not trust the CA fails its handshake; the server goes on.
    let tcp = TcpStream::connect(s.addr).await.unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let roots = rustls::RootCertStore::empty();
    let untrusting = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let refused = tokio_rustls::TlsConnector::from(Arc::new(untrusting))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await;
    assert!(refused.is_err(), "an unknown CA is refused");
    let mut a = wss_user(&ca, &s, "a").await;
    a.login("r").await;
}

#[tokio::test]
async fn bad_certificate_files_stop_the_start_with_the_file_named() {
    let ca = TestCa::new();
    let missing = TlsFiles { cert: ca.cert.with_file_name("nope.pem"), key: ca.key.clone() };
    let e = Server::start(ServerConfig { tls: Some(missing), ..ServerConfig::for_tests(APP, SECRET) })
        .await
        .expect_err("a missing certificate stops the start");
    assert!(e.to_string().contains("nope.pem"), "{e}");
    // A key that is not the certificate's.
    let other = TestCa::new();
    let mismatched = TlsFiles { cert: ca.cert.clone(), key: other.key.clone() };
    let e = Server::start(ServerConfig { tls: Some(mismatched), ..ServerConfig::for_tests(APP, SECRET) })
        .await
        .expect_err("a key of another certificate stops the start");
    assert!(e.to_string().contains("key.pem"), "{e}");
}
