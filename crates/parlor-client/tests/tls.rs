//! `wss://` end to end with the Rust SDK: a real server with a certificate from a CA made in
//! the test (rcgen), engines trusting that CA through `EngineConfig::extra_roots_pem`, and one
//! that does not trust it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parlor_client::{Engine, EngineConfig, ErrorCode, Event, RoomConfig, User};
use parlor_protocol::token::{self, Claims};
use parlor_server::config::TlsFiles;
use parlor_server::{Server, ServerConfig};
use parlor_testkit::tls::TestCa;

const APP: u32 = 7;
const SECRET: &str = "some-secret";

/// The test CA's files as the server's TLS settings.
fn files(ca: &TestCa) -> TlsFiles {
    TlsFiles { cert: ca.cert.clone(), key: ca.key.clone() }
}

fn token(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    token::mint(SECRET.as_bytes(), &Claims::new(APP, user, now, 3600, "n"))
}

fn user(id: &str) -> User {
    User { id: id.into(), name: String::new() }
}

#[tokio::test]
async fn wss_end_to_end_with_an_extra_root() {
    let ca = TestCa::new();
    let s =
        Server::start(ServerConfig { tls: Some(files(&ca)), ..ServerConfig::for_tests(APP, SECRET) }).await.unwrap();
    let config = EngineConfig { extra_roots_pem: Some(ca.ca_pem.clone()), ..EngineConfig::default() };
    // By name and by IP address: both are in the certificate.
    let by_name = format!("wss://localhost:{}/v1/ws", s.addr.port());
    let a = Engine::with_config(APP, by_name, config.clone());
    let b = Engine::with_config(APP, s.ws_url(), config);
    let mut a_events = a.events().unwrap();
    a.login_room("r", user("a"), token("a"), RoomConfig::default()).await.expect("a logs in over wss");
    b.login_room("r", user("b"), token("b"), RoomConfig::default()).await.expect("b logs in over wss");
    b.send_broadcast_message("r", "over tls").await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(e) = a_events.recv().await {
            if let Event::BroadcastMessage { message, .. } = e {
                return message;
            }
        }
        String::new()
    })
    .await
    .expect("a hears b within 20 s");
    assert_eq!(got, "over tls");
}

#[tokio::test]
async fn a_server_of_an_unknown_ca_is_not_trusted() {
    let ca = TestCa::new();
    let s =
        Server::start(ServerConfig { tls: Some(files(&ca)), ..ServerConfig::for_tests(APP, SECRET) }).await.unwrap();
    // The built-in roots do not know the test CA: every attempt fails its handshake until the
    // login timeout.
    let config = EngineConfig { login_timeout: Duration::from_secs(2), ..EngineConfig::default() };
    let e = Engine::with_config(APP, s.ws_url(), config);
    let r = e.login_room("r", user("a"), token("a"), RoomConfig::default()).await;
    assert_eq!(r.unwrap_err().error_code(), Some(ErrorCode::LoginTimeout));
    assert_eq!(s.node.stats().await.expect("reachable").sessions, 0, "no session was made");
    // Extra roots that are not PEM certificates fail every login at once.
    let bad = EngineConfig { extra_roots_pem: Some("not a certificate".into()), ..EngineConfig::default() };
    let e = Engine::with_config(APP, s.ws_url(), bad);
    let r = e.login_room("r", user("a"), token("a"), RoomConfig::default()).await;
    assert_eq!(r.unwrap_err().error_code(), Some(ErrorCode::ConnectFailed));
}
