//! The admin API while Redis is away: every route answers 503 `{"error","code":"unavailable"}`,
//! never 404 or an empty answer for "could not ask", and answers again once Redis is back.
//! (The memory engine's answers are `admin_api.rs`'s: it never answers 503.)
//!
//! A node on a real redis-server behind the testkit's fault proxy: the proxy resets every
//! connection and refuses new ones (Redis stopped), then holds every byte back (Redis stalled).
//! Needs Debian's `redis-server`; real time, bounded waits.

mod common;

use std::time::Duration;

use common::*;
use parlor_server::{Server, ServerConfig};
use parlor_testkit::{FaultProxy, RedisServer};
use serde_json::{json, Value};
use tokio::time::Instant;
use tokio_tungstenite::connect_async;

/// One request; (status, JSON body).
async fn call(s: &Server, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let client = parlor_server::http_client::client(Duration::from_secs(20), &[]).expect("client");
    let mut req =
        client.request(method.parse().expect("method"), format!("http://{}{path}", s.addr)).bearer_auth(SECRET);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("the server answers");
    let status = res.status().as_u16();
    let text = res.text().await.expect("a body");
    (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("{path}: a JSON answer, got {text:?}")))
}

/// Every admin operation but the document, each naming what exists (so that a 404 would be a
/// lie), with a body it accepts.
fn operations(session: &str) -> Vec<(&'static str, String, Option<Value>)> {
    let a = format!("/v1/admin/apps/{APP}");
    vec![
        ("GET", format!("{a}/rooms"), None),
        ("GET", format!("{a}/rooms?limit=1"), None),
        ("GET", format!("{a}/rooms/r"), None),
        ("GET", format!("{a}/rooms/r/members"), None),
        ("POST", format!("{a}/rooms/r/extra"), Some(json!({"key":"k","value":"v"}))),
        ("DELETE", format!("{a}/rooms/r/streams/s1"), None),
        ("POST", format!("{a}/rooms/r/kick"), Some(json!({"user":"alice","reason":"x"}))),
        ("POST", format!("{a}/rooms/r/users/alice/reconnect"), None),
        ("POST", format!("{a}/sessions/{session}/reconnect"), None),
        ("POST", format!("{a}/connections/drop"), None),
        ("GET", format!("{a}/stats"), None),
        ("POST", format!("{a}/rooms/r/broadcast"), Some(json!({"message":"hi"}))),
        ("POST", format!("{a}/rooms/r/barrage"), Some(json!({"message":"hi"}))),
        ("POST", format!("{a}/rooms/r/command"), Some(json!({"command":"go","to":[]}))),
        // Last: on a reachable Redis it would end the room.
        ("POST", format!("{a}/rooms/r/close"), Some(json!({"reason":"x"}))),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_admin_route_answers_503_while_redis_is_away() {
    let redis = RedisServer::start();
    let proxy = FaultProxy::start(redis.addr()).expect("proxy");
    let mut config = ServerConfig::for_tests(APP, SECRET);
    config.redis = vec![format!("redis://{}", proxy.addr())];
    let s = Server::start(config).await.expect("a node on Redis");
    let (ws, _) = connect_async(s.ws_url()).await.expect("connect");
    let (mut alice, welcome) = hello(ws, "alice").await;
    let session = welcome["session"].as_str().expect("a session id").to_string();
    assert_eq!(alice.login("r").await["t"], "ok");
    let ok = alice.request(json!({"t":"publish","room":"r","stream":"s1","extra":""})).await;
    assert_eq!(ok["t"], "ok", "{ok}");
    let (status, room) = call(&s, "GET", &format!("/v1/admin/apps/{APP}/rooms/r"), None).await;
    assert_eq!((status, room["users"][0]["id"].as_str()), (200, Some("alice")), "{room}");

    // Redis goes away: every connection reset, every new one refused.
    proxy.refuse(true);
    proxy.cut();
    for (method, path, body) in operations(&session) {
        let (status, answer) = call(&s, method, &path, body).await;
        assert_eq!((status, answer["code"].as_str()), (503, Some("unavailable")), "{method} {path}: {answer}");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()), "{method} {path}: {answer}");
    }
    // Liveness says so too, with counts it could not ask as null rather than 0.
    let (status, health) = call(&s, "GET", "/healthz", None).await;
    assert_eq!((status, health["status"].as_str()), (200, Some("degraded")), "{health}");
    assert_eq!(health["stats"]["sessions"], Value::Null, "{health}");

    // Back: the same room is found again (the 503 was "could not ask", not "not there").
    proxy.heal();
    let until = Instant::now() + Duration::from_secs(15);
    let room = loop {
        let (status, room) = call(&s, "GET", &format!("/v1/admin/apps/{APP}/rooms/r"), None).await;
        if status == 200 {
            break room;
        }
        assert_eq!(status, 503, "{room}");
        assert!(Instant::now() < until, "Redis back for 15 s and still {status}: {room}");
        tokio::time::sleep(Duration::from_millis(100)).await; // a poll interval, not a timing assumption
    };
    assert_eq!(room["users"][0]["id"], "alice", "{room}");

    // Redis stalls (the path goes dead, nothing is reset): every route, at once, times out into
    // 503 too.
    proxy.black_hole();
    let calls = operations(&session).into_iter().map(|(method, path, body)| {
        let s = &s;
        async move { (method, path.clone(), call(s, method, &path, body).await) }
    });
    for (method, path, (status, answer)) in futures_util::future::join_all(calls).await {
        assert_eq!((status, answer["code"].as_str()), (503, Some("unavailable")), "{method} {path}: {answer}");
    }
    proxy.heal();
    let (status, answer) =
        call(&s, "POST", &format!("/v1/admin/apps/{APP}/rooms/r/kick"), Some(json!({"user":"nobody"}))).await;
    assert_eq!((status, answer["code"].as_str()), (404, Some("no_such_user")), "{answer}");
    s.shutdown().await;
}
