//! The limits of a public server (`docs/operations.md`, "Limits"): connections per IP (HTTP 429
//! before the upgrade), new upgrades per second (HTTP 503), sessions per app (`error` 1000005 to
//! `hello`), the offline-session cap (the oldest dropped early, its resume refused with
//! 1002057), and the admin API's secret check. Each refusal leaves a well-behaved client in the
//! same room untouched.

mod common;

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use common::*;
use parlor_protocol::ErrorCode;
use parlor_server::memory::MemoryServer;
use parlor_server::{Server, ServerConfig};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;

const LOOPBACK: IpAddr = IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);

fn config() -> ServerConfig {
    ServerConfig { max_connections_per_ip: 0, connection_rate: 0, ..ServerConfig::for_tests(APP, SECRET) }
}

/// The HTTP status of a refused upgrade (None when the upgrade succeeded).
async fn upgrade_status(s: &Server) -> Option<u16> {
    match tokio_tungstenite::connect_async(s.ws_url()).await {
        Ok(_) => None,
        Err(WsError::Http(res)) => Some(res.status().as_u16()),
        Err(e) => panic!("unexpected: {e}"),
    }
}

/// Wait (bounded) until `f` holds: the server notices a closed socket on its own task.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(Duration::from_secs(10), async {
        while !f() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "not within 10 s: {what}");
}

#[tokio::test]
async fn connections_beyond_the_per_ip_limit_get_429_before_the_upgrade() {
    let s = Server::start(ServerConfig { max_connections_per_ip: 3, ..config() }).await.unwrap();
    let mut good = hello(tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0, "good").await.0;
    let mut speaker = hello(tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0, "speaker").await.0;
    good.login("r").await;
    speaker.login("r").await;
    let _ = good.events().await;
    let third = tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0;
    for _ in 0..5 {
        assert_eq!(upgrade_status(&s).await, Some(429));
    }
    assert_eq!(s.node.limits.connections_from(LOOPBACK), 3, "refusals hold no count");
    // Those admitted are untouched.
    assert_eq!(code(&speaker.request(json!({"t":"broadcast","room":"r","message":"still here"})).await), 0);
    assert_eq!(good.recv().await["message"], "still here");
    // A closed connection gives its place back.
    drop(third);
    until("the closed connection is given back", || s.node.limits.connections_from(LOOPBACK) == 2).await;
    assert_eq!(upgrade_status(&s).await, None);
}

#[tokio::test]
async fn upgrades_beyond_the_connection_rate_get_503_with_a_retry_after_at_the_rate() {
    // 1 per second, a burst of 1: of 40 upgrades in a row, the first passes and the others are
    // refused but for the refill while they run (one a second: the assertion holds unless 40
    // loopback upgrades take over 19 s).
    let s = Server::start(ServerConfig { connection_rate: 1, ..config() }).await.unwrap();
    let mut passed = 0;
    let mut refused = 0;
    let mut retry_after = Vec::new();
    let mut open = Vec::new();
    for i in 0..40 {
        match tokio_tungstenite::connect_async(s.ws_url()).await {
            Ok((ws, _)) => {
                passed += 1;
                open.push(ws);
            }
            Err(WsError::Http(res)) => {
                assert_eq!(res.status().as_u16(), 503, "attempt {i}");
                let secs = res.headers().get("retry-after").and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
                retry_after.push(secs.unwrap_or_else(|| panic!("attempt {i}: no Retry-After in seconds")));
                refused += 1;
            }
            Err(e) => panic!("unexpected: {e}"),
        }
        if i == 0 {
            assert_eq!(passed, 1, "the burst passes");
        }
    }
    assert!(refused >= 20, "{passed} passed, {refused} refused");
    // Each refused client is handed the next slot at the rate (one a second), up to 30 s ahead
    // (parlor_server::retry_after): they come back spread, not all in the next second.
    assert_eq!(retry_after.first(), Some(&1), "{retry_after:?}");
    assert!(retry_after.windows(2).all(|w| w[0] <= w[1]), "{retry_after:?}");
    assert_eq!(retry_after.iter().max(), Some(&30), "{retry_after:?}");
    drop(open);
}

#[tokio::test]
async fn hello_beyond_the_sessions_per_app_gets_1000005_and_a_resume_is_never_refused() {
    let mut apps = HashMap::from([(APP, SECRET.to_string())]);
    apps.insert(8, "other-secret".into());
    let s = Server::start(ServerConfig { max_sessions_per_app: 2, apps, ..config() }).await.unwrap();
    let connect = || async { tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0 };
    let (mut a, _) = hello(connect().await, "a").await;
    let (b, b_welcome) = hello(connect().await, "b").await;
    a.login("r").await;
    // The third session of the app: error 1000005 (no id), close 1008.
    let mut c = Peer::new(connect().await, "c");
    c.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"c","name":""},"token":token("c")})).await;
    let (frames, end) = c.recv_until_end().await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["code"], json!(ErrorCode::TooManySessions.code()), "{frames:?}");
    assert!(frames[0].get("id").is_none());
    assert_eq!(end, End::Close(1008));
    // Another app has its own count.
    let mut other = Peer::new(connect().await, "o");
    let other_token =
        parlor_protocol::token::mint(b"other-secret", &parlor_protocol::token::Claims::new(8, "o", now_s(), 3600, "n"));
    other.send(json!({"t":"hello","v":1,"app_id":8,"user":{"id":"o","name":""},"token":other_token})).await;
    assert_eq!(other.recv().await["t"], "welcome");
    // `b`'s connection goes: its place is free for a new session…
    drop(b);
    until("b's place is given back", || s.node.limits.sessions_of(APP) == 1).await;
    let (d, _) = hello(connect().await, "d").await;
    assert_eq!(s.node.limits.sessions_of(APP), 2);
    // …and `b` still resumes although the app is full again: limits never cost a session.
    let mut b2 = Peer::new(connect().await, "b");
    b2.send(json!({"t":"resume","v":1,"session":b_welcome["session"],"resume_token":b_welcome["resume_token"],
        "ack":{"direct":0,"rooms":{}}}))
        .await;
    assert_eq!(b2.recv().await["t"], "resumed");
    assert_eq!(s.node.limits.sessions_of(APP), 3);
    // The room of `a` never noticed.
    assert_eq!(code(&a.request(json!({"t":"room_extra","room":"r","key":"k","value":"v"})).await), 0);
    drop(d);
}

#[tokio::test(start_paused = true)]
async fn offline_sessions_beyond_the_cap_go_oldest_first_and_cannot_resume() {
    let s = MemoryServer::start(ServerConfig { max_offline_sessions: 2, ..config() });
    let mut welcomes = Vec::new();
    for user in ["a", "b", "c"] {
        let (p, w) = hello(s.connect().await, user).await;
        welcomes.push(w);
        drop(p); // gone without bye: offline after the session timeout
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    let (mut watcher, _) = hello(s.connect().await, "watcher").await;
    // a, b and c go offline at 90, 100 and 110 s; the cap keeps the two most recent.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(10)).await;
        watcher.barrier().await;
    }
    assert_eq!(s.node().stats().await.expect("reachable").sessions, 3, "watcher, b and c");
    let resume = |w: &serde_json::Value| json!({"t":"resume","v":1,"session":w["session"],"resume_token":w["resume_token"],"ack":{"direct":0,"rooms":{}}});
    let mut a = Peer::new(s.connect().await, "a");
    a.send(resume(&welcomes[0])).await;
    let refused = a.recv().await;
    assert_eq!((refused["t"].as_str(), code(&refused)), (Some("error"), ErrorCode::ResumeFailed.code() as u64));
    let mut b = Peer::new(s.connect().await, "b");
    b.send(resume(&welcomes[1])).await;
    assert_eq!(b.recv().await["t"], "resumed", "b is within the cap");
}

#[tokio::test]
async fn the_admin_api_takes_only_the_exact_secret() {
    let s = Server::start(config()).await.unwrap();
    // A prefix, the secret with more after it, one byte off, another app's, none: each 401. A
    // comparison that stops at the shorter string or the first difference would let some pass
    // (and leak by its time); `parlor_server::secret::same_secret` takes neither shortcut.
    let one_off = {
        let mut b = SECRET.as_bytes().to_vec();
        *b.last_mut().unwrap() ^= 1;
        String::from_utf8(b).unwrap()
    };
    let bad = [&SECRET[..SECRET.len() - 1], &format!("{SECRET}x"), &one_off, "", "parlor-dev-secret"];
    for secret in bad {
        let res = get(&s, "/v1/admin/apps/7/rooms", Some(secret)).await;
        assert!(res.starts_with("HTTP/1.1 401"), "{secret:?}: {res}");
    }
    assert!(get(&s, "/v1/admin/apps/7/rooms", None).await.starts_with("HTTP/1.1 401"));
    assert!(get(&s, "/v1/admin/apps/7/rooms", Some(SECRET)).await.starts_with("HTTP/1.1 200"));
    assert!(parlor_server::secret::same_secret(SECRET, SECRET));
    assert!(!parlor_server::secret::same_secret(SECRET, &one_off));
}

/// A minimal HTTP/1.1 GET over a TCP socket.
async fn get(s: &Server, path: &str, secret: Option<&str>) -> String {
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let auth = secret.map(|s| format!("Authorization: Bearer {s}\r\n")).unwrap_or_default();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn the_redis_engine_caps_offline_sessions_per_app_in_redis() {
    let redis = parlor_testkit::RedisServer::start();
    let s = Server::start(ServerConfig {
        redis: vec![redis.url()],
        max_offline_sessions: 2,
        session_timeout: Duration::from_secs(1),
        ..config()
    })
    .await
    .unwrap();
    let mut welcomes = Vec::new();
    for user in ["a", "b", "c"] {
        let (p, w) = hello(tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0, user).await;
        welcomes.push(w);
        drop(p);
        // One after the other: their deadlines in Redis are in this order.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // All three go offline after 1 s; the reaper then keeps the two that went quiet last.
    let stats = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let n = s.node.stats().await.expect("reachable").sessions;
            if n <= 2 {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the cap applies within 15 s");
    assert_eq!(stats, 2);
    let resume = |w: &serde_json::Value| json!({"t":"resume","v":1,"session":w["session"],"resume_token":w["resume_token"],"ack":{"direct":0,"rooms":{}}});
    let mut a = Peer::new(tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0, "a");
    a.send(resume(&welcomes[0])).await;
    assert_eq!(code(&a.recv().await), ErrorCode::ResumeFailed.code() as u64, "the oldest is gone");
    let mut c = Peer::new(tokio_tungstenite::connect_async(s.ws_url()).await.unwrap().0, "c");
    c.send(resume(&welcomes[2])).await;
    assert_eq!(c.recv().await["t"], "resumed", "the newest is kept");
}
