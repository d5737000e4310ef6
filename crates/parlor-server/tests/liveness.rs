//! Liveness, token expiry and the online count, on tokio's paused clock: the server runs in
//! memory ([`MemoryServer`]) and 90 s pass in no real time.

mod common;

use std::time::Duration;

use common::*;
use parlor_protocol::ErrorCode;
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;
use serde_json::json;
use tokio::time::sleep;

fn server() -> MemoryServer {
    MemoryServer::start(ServerConfig::for_tests(APP, SECRET))
}

#[tokio::test(start_paused = true)]
async fn a_closed_connection_is_removed_only_after_the_session_timeout() {
    let s = server();
    let (mut a, _) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    a.login("r").await;
    a.request(json!({"t":"publish","room":"r","stream":"cam-a"})).await;
    b.login("r").await;
    drop(a); // closed without bye: nothing happens yet
    let t0 = tokio::time::Instant::now();
    for _ in 0..8 {
        sleep(Duration::from_secs(10)).await;
        b.barrier().await; // b stays alive by pinging
    }
    assert!(b.channel_events().await.is_empty(), "80 s after: the others notice nothing");
    sleep(Duration::from_secs(11)).await;
    let ev = b.channel_events().await;
    assert_eq!(kinds(&ev), vec!["room:2:stream_delete", "users:3:user_delete"], "{ev:?}");
    assert_eq!(ev[0]["reason"], 2, "heartbeat timeout");
    assert_eq!(ev[1]["users"][0]["id"], "a");
    let waited = t0.elapsed();
    assert!(waited >= Duration::from_secs(90) && waited <= Duration::from_secs(92), "{waited:?}");
}

#[tokio::test(start_paused = true)]
async fn a_session_that_keeps_pinging_is_never_removed() {
    let s = server();
    let (mut a, _) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    a.login("r").await;
    b.login("r").await;
    for _ in 0..60 {
        sleep(Duration::from_secs(10)).await;
        a.barrier().await;
        b.barrier().await;
    }
    assert!(b.channel_events().await.is_empty(), "10 minutes of pings: no user change");
    assert_eq!(s.node().stats().await.expect("reachable").sessions, 2);
}

#[tokio::test(start_paused = true)]
async fn a_silent_open_connection_is_removed_and_closed_after_the_timeout() {
    let s = server();
    let (mut a, _) = hello(s.connect().await, "a").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    a.login("r").await;
    b.login("r").await;
    for _ in 0..10 {
        sleep(Duration::from_secs(10)).await;
        b.barrier().await;
    }
    let ev = b.channel_events().await;
    assert_eq!(kinds(&ev), vec!["users:3:user_delete"]);
    let (_, end) = a.recv_until_end().await;
    assert_eq!(end, End::Close(1001));
    assert_eq!(s.node().stats().await.expect("reachable").sessions, 2, "offline, kept for retention");
    // After retention, the session is forgotten.
    for _ in 0..125 {
        sleep(Duration::from_secs(10)).await;
        b.barrier().await;
    }
    assert_eq!(s.node().stats().await.expect("reachable").sessions, 1);
}

#[tokio::test(start_paused = true)]
async fn token_will_expire_then_kicked_1002056_unless_renewed() {
    let s = server();
    let short = token_with(|c| {
        c.user_id = "a".into();
        c.exp = now_s() + 60;
    });
    let mut a = Peer::new(s.connect().await, "a");
    a.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"a","name":""},"token":short})).await;
    assert_eq!(a.recv().await["t"], "welcome");
    a.login("r").await;
    a.login("r2").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    b.login("r").await;
    let mut warned = Vec::new();
    for _ in 0..4 {
        sleep(Duration::from_secs(10)).await;
        b.barrier().await;
        warned.extend(a.drain().await.into_iter().filter(|f| f["t"] == "token_will_expire"));
    }
    assert_eq!(warned.len(), 2, "one warning per room: {warned:?}");
    let remaining = warned[0]["remaining_s"].as_u64().unwrap();
    assert!((28..=30).contains(&remaining), "{remaining}");
    // Renew for r2 only (a room-bound token); r is left to expire.
    let for_r2 = token_with(|c| {
        c.user_id = "a".into();
        c.room_id = Some("r2".into());
    });
    assert_eq!(code(&a.request(json!({"t":"renew_token","token":for_r2})).await), 0);
    for _ in 0..3 {
        sleep(Duration::from_secs(10)).await;
        b.barrier().await;
    }
    let frames = a.drain().await;
    let kicks: Vec<_> = frames.iter().filter(|f| f["t"] == "kicked").collect();
    assert_eq!(kicks, vec![&json!({"t":"kicked","room":"r","code":ErrorCode::KickedTokenExpired.code()})]);
    assert_eq!(kinds(&b.channel_events().await), vec!["users:3:user_delete"]);
    assert_eq!(code(&a.request(json!({"t":"broadcast","room":"r2","message":"still in r2"})).await), 0);
}

#[tokio::test(start_paused = true)]
async fn the_online_count_comes_every_30_s_only_when_changed() {
    let s = server();
    let (mut a, _) = hello(s.connect().await, "a").await;
    a.login("r").await;
    let (mut b, _) = hello(s.connect().await, "b").await;
    b.login("r").await;
    let mut counts = Vec::new();
    for _ in 0..12 {
        sleep(Duration::from_secs(10)).await;
        a.barrier().await;
        b.barrier().await;
        counts.extend(b.drain().await.into_iter().filter(|f| f["kind"] == "online").map(|f| f["count"].clone()));
    }
    assert_eq!(counts, vec![json!(2)], "one count in two minutes: it changed once");
    let online: Vec<_> = a.drain().await.into_iter().filter(|f| f["kind"] == "online").collect();
    assert!(
        !online.is_empty()
            && online.iter().all(|f| f.get("seq").is_none() && f.get("ch").is_none() && f["room"] == "r")
    );
}

/// A node too busy to poll a new connection's task until after the hello timeout must still
/// serve the `hello` the client sent in time. Before, the deadline was looked at first, so a
/// `hello` (or a storm's `resume`) already waiting was refused with 1000003 "no hello within the
/// hello timeout": seen in `bench w6 --nodes 5 --sessions 60000` on an overloaded box, where it
/// ended 2 048 sessions that had sent their `resume` at once. Real clock and a real socket (so
/// that the frame and the deadline reach the task in the same turn of the runtime's driver), a
/// short hello timeout, and the runtime's only thread blocked past it after the `hello` is sent.
#[tokio::test]
async fn a_hello_sent_in_time_is_served_when_the_node_reads_it_after_the_hello_timeout() {
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::WebSocketStream;
    let mut config = ServerConfig::for_tests(APP, SECRET);
    config.hello_timeout = Duration::from_millis(200);
    let s = MemoryServer::start(config);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let client = tokio::net::TcpStream::connect(listener.local_addr().expect("addr")).await.expect("connect");
    let (server_end, _) = listener.accept().await.expect("accept");
    let node = s.node();
    tokio::spawn(async move {
        let ws = WebSocketStream::from_raw_socket(server_end, Role::Server, None).await;
        parlor_server::ws::serve(node, ws).await;
    });
    let mut p = Peer::new(WebSocketStream::from_raw_socket(client, Role::Client, None).await, "a");
    // Let the node's task start (its hello deadline runs from here) and wait for a frame.
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
    p.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"a","name":"a"},"token":token("a")})).await;
    // The node is busy: nothing on this runtime runs until the deadline has passed.
    std::thread::sleep(Duration::from_millis(400));
    let w = p.recv().await;
    assert_eq!(w["t"], "welcome", "{w}");
}

/// And a connection that sends nothing, or only pings, is still closed at the hello timeout.
#[tokio::test(start_paused = true)]
async fn a_connection_without_hello_is_closed_at_the_hello_timeout_even_when_it_pings() {
    let s = server();
    let mut p = Peer::new(s.connect().await, "a");
    let t0 = tokio::time::Instant::now();
    for _ in 0..12 {
        p.send_raw(tokio_tungstenite::tungstenite::Message::Ping(Vec::new().into())).await;
        sleep(Duration::from_secs(1)).await;
    }
    let (frames, end) = p.recv_until_end().await;
    assert!(frames.iter().any(|f| f["code"] == 1_000_003), "{frames:?}");
    assert_eq!(end, End::Close(1008));
    assert!(t0.elapsed() <= Duration::from_secs(13), "{:?}", t0.elapsed());
}
