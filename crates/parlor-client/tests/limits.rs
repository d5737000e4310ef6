//! The Rust SDK against a server's limits (`docs/operations.md`, "Limits"), on tokio's paused
//! clock: an upgrade answered HTTP 503 (`--connection-rate`, a saturated node) is one failed
//! attempt, the next not before its `Retry-After` slot (protocol §9.7); one answered 429 is one
//! failed attempt and the engine backs off (§7); a `hello` refused with 1000005
//! (`--max-sessions-per-app`) is LOGIN_FAILED with that code.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use parlor_client::{Connector, Engine, EngineConfig, Event, RoomConfig, RoomStateReason, User};
use parlor_protocol::ErrorCode;
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

/// A connector whose every connection is answered `HTTP/1.1 <status>` with `Retry-After: <secs>`
/// instead of an upgrade; it notes when each attempt came.
fn refusing(status: &'static str, retry_after_s: u64, attempts: Arc<Mutex<Vec<Instant>>>) -> Connector {
    Connector::new(move || {
        attempts.lock().unwrap().push(Instant::now());
        let (client, mut server) = tokio::io::duplex(16 * 1024);
        tokio::spawn(async move {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                match server.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let res = format!("HTTP/1.1 {status}\r\nRetry-After: {retry_after_s}\r\nContent-Length: 0\r\n\r\n");
            let _ = server.write_all(res.as_bytes()).await;
        });
        async move { Ok(client) }
    })
}

/// Log in through a connector that refuses every upgrade; the instants of the attempts.
async fn attempts_against(status: &'static str, retry_after_s: u64) -> Vec<Instant> {
    let attempts = Arc::new(Mutex::new(Vec::new()));
    let connector = refusing(status, retry_after_s, attempts.clone());
    let config = EngineConfig { connector: Some(connector), ..EngineConfig::default() };
    let engine = Engine::with_config(APP, "ws://parlor.test/v1/ws", config);
    let me = User { id: "u".into(), name: String::new() };
    let t0 = Instant::now();
    let r = engine.login_room("r", me, token("u"), RoomConfig::default()).await;
    // Refused upgrades are failed attempts until the login timeout (30 s), then 1002031.
    assert_eq!(r.unwrap_err().error_code(), Some(ErrorCode::LoginTimeout));
    assert_eq!(t0.elapsed(), Duration::from_secs(30));
    let at = attempts.lock().unwrap().clone();
    let waited: Duration = at.windows(2).map(|w| w[1] - w[0]).sum();
    assert!(waited >= Duration::from_secs(15), "the engine spent its 30 s waiting, not hammering ({waited:?})");
    at
}

/// The cap of the full-jitter wait before attempt `n + 1` (§7).
fn cap(n: usize) -> Duration {
    Duration::from_millis((500u64 << n.min(20)).min(10_000))
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_answered_503_waits_for_its_retry_after_slot() {
    // §9.7: a 503's Retry-After is the client's slot; the engine comes back no sooner, and
    // within a second of it (or later, when its own backoff is longer).
    let at = attempts_against("503 Service Unavailable", 4).await;
    assert!(at.len() >= 3 && at.len() <= 8, "{} attempts in 30 s", at.len());
    for (n, w) in at.windows(2).enumerate() {
        let wait = w[1] - w[0];
        assert!(wait >= Duration::from_secs(4), "wait {n} was {wait:?}, before the slot");
        assert!(wait <= cap(n).max(Duration::from_secs(5)), "wait {n} was {wait:?}, past the slot and its cap");
    }
}

#[tokio::test(start_paused = true)]
async fn an_upgrade_answered_429_is_a_failed_attempt_and_the_engine_backs_off() {
    // A 429's Retry-After is not a slot (§9.7 sends none): the full jitter of §7 (means 0.25,
    // 0.5, 1, 2, 4, then 5 s), about ten attempts in 30 s, each within its cap.
    let at = attempts_against("429 Too Many Requests", 1).await;
    assert!(at.len() >= 3 && at.len() <= 40, "{} attempts in 30 s", at.len());
    for (n, w) in at.windows(2).enumerate() {
        assert!(w[1] - w[0] <= cap(n), "wait {n} was {:?}, over its cap {:?}", w[1] - w[0], cap(n));
    }
}

#[tokio::test(start_paused = true)]
async fn a_hello_refused_with_1000005_is_login_failed_with_that_code() {
    let s = MemoryServer::start(ServerConfig { max_sessions_per_app: 1, ..ServerConfig::for_tests(APP, SECRET) });
    let mut first = Client::new(&s, "first");
    first.login("r").await;
    let mut second = Client::new(&s, "second");
    let r = second.engine.login_room("r", second.user.clone(), token("second"), RoomConfig::default()).await;
    assert_eq!(r.unwrap_err().error_code(), Some(ErrorCode::TooManySessions));
    let (_, code) = second.wait_state(RoomStateReason::LoginFailed, Duration::from_secs(1)).await;
    assert_eq!(code, ErrorCode::TooManySessions.code());
    assert_eq!(second.engine.room_state("r"), RoomStateReason::LoginFailed);
    // The one admitted is untouched.
    first.barrier("r").await;
    assert!(!first
        .log
        .iter()
        .any(|(_, e)| matches!(e, Event::RoomStateChanged { reason: RoomStateReason::Reconnecting, .. })));
}
