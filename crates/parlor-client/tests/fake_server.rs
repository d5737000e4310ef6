//! The SDK against a minimal scripted WebSocket server on a local port (the real server's
//! integration tests live elsewhere): login, a lost connection and its resume, and an HTTP 503
//! on upgrade counted as one failed attempt, what a dropped engine still sends. Waits are bounded
//! by a guard timeout only.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use parlor_client::{Engine, Event, RoomConfig, RoomStateReason, UpdateType, User};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

const GUARD: Duration = Duration::from_secs(30);

async fn next_json(ws: &mut WebSocketStream<TcpStream>) -> Value {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("client sends JSON");
                if v["t"] != "ping" {
                    return v;
                }
            }
            Some(Ok(_)) => {}
            other => panic!("connection ended: {other:?}"),
        }
    }
}

async fn send(ws: &mut WebSocketStream<TcpStream>, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.expect("send");
}

async fn wait_state(events: &mut tokio::sync::mpsc::UnboundedReceiver<Event>, want: RoomStateReason) -> Vec<Event> {
    let mut seen = Vec::new();
    loop {
        let ev = events.recv().await.expect("events open");
        let done = matches!(&ev, Event::RoomStateChanged { reason, .. } if *reason == want);
        seen.push(ev);
        if done {
            return seen;
        }
    }
}

async fn scripted(listener: TcpListener, refuse_first: bool, cut: tokio::sync::oneshot::Receiver<()>) {
    if refuse_first {
        let (mut tcp, _) = listener.accept().await.expect("accept");
        let mut buf = [0u8; 2048];
        let _ = tcp.read(&mut buf).await;
        let _ = tcp.write_all(b"HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n").await;
        drop(tcp);
    }
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
    let hello = next_json(&mut ws).await;
    assert_eq!(hello["t"], "hello");
    assert_eq!(hello["app_id"], 7);
    send(
        &mut ws,
        json!({"t":"welcome","session":"S1","resume_token":"R1","heartbeat_ms":10000,
        "session_timeout_ms":90000,"retention_ms":1200000,"server_time_ms":0}),
    )
    .await;
    let login = next_json(&mut ws).await;
    assert_eq!(login["t"], "login");
    send(
        &mut ws,
        json!({"t":"ok","id":login["id"],"room":"r1","users":[{"id":"u2","name":"Bob"}],
        "streams":[],"extra":[],"online":2,"seq":{"room":3,"users":4},"room_session":"rs1"}),
    )
    .await;
    // Cut the connection when the test says so: the client resumes.
    let _ = cut.await;
    drop(ws);
    let (tcp, _) = listener.accept().await.expect("accept");
    let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
    let resume = next_json(&mut ws).await;
    assert_eq!(resume["t"], "resume");
    assert_eq!(resume["ack"]["rooms"]["r1"]["users"], 4);
    send(&mut ws, json!({"t":"resumed","session":"S1","resume_token":"R2","rooms":{"r1":"replay"}})).await;
    send(
        &mut ws,
        json!({"t":"event","room":"r1","ch":"users","seq":5,"kind":"user_add","users":[{"id":"u3","name":"Carol"}]}),
    )
    .await;
    send(&mut ws, json!({"t":"resume_done"})).await;
    let b = next_json(&mut ws).await;
    assert_eq!(b["t"], "broadcast");
    send(&mut ws, json!({"t":"ok","id":b["id"],"room":"r1","seq":{"room":4},"message_id":"m4"})).await;
    let bye = next_json(&mut ws).await;
    assert_eq!(bye["t"], "logout");
    send(&mut ws, json!({"t":"ok","id":bye["id"],"room":"r1"})).await;
    let bye = next_json(&mut ws).await;
    assert_eq!(bye["t"], "bye");
}

async fn run(refuse_first: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/v1/ws", listener.local_addr().expect("addr"));
    let (cut, cut_rx) = tokio::sync::oneshot::channel();
    let server = tokio::spawn(scripted(listener, refuse_first, cut_rx));
    let engine = Engine::new(7, url);
    let mut events = engine.events().expect("events");
    assert!(engine.events().is_none());
    let me = User { id: "u1".into(), name: "Alice".into() };
    engine.login_room("r1", me, "t", RoomConfig::default()).await.expect("login");
    assert_eq!(engine.room_state("r1"), RoomStateReason::Logined);
    let seen = wait_state(&mut events, RoomStateReason::Logined).await;
    assert_eq!(seen.len(), 2, "LOGINING, LOGINED: {seen:?}");
    match events.recv().await {
        Some(Event::RoomUserUpdate { update_type: UpdateType::Add, users, .. }) => assert_eq!(users[0].id, "u2"),
        other => panic!("{other:?}"),
    }
    let _ = cut.send(());
    wait_state(&mut events, RoomStateReason::Reconnecting).await;
    wait_state(&mut events, RoomStateReason::Reconnected).await;
    match events.recv().await {
        Some(Event::RoomUserUpdate { update_type: UpdateType::Add, users, .. }) => assert_eq!(users[0].id, "u3"),
        other => panic!("{other:?}"),
    }
    let id = engine.send_broadcast_message("r1", "hi").await.expect("broadcast");
    assert_eq!(id, "m4");
    engine.logout_room("r1").await.expect("logout");
    assert_eq!(engine.room_state("r1"), RoomStateReason::Logout);
    server.await.expect("server script");
}

#[tokio::test]
async fn login_cut_resume_broadcast_logout() {
    tokio::time::timeout(GUARD, run(false)).await.expect("guard timeout");
}

#[tokio::test]
async fn http_503_on_upgrade_is_one_failed_attempt() {
    tokio::time::timeout(GUARD, run(true)).await.expect("guard timeout");
}

#[tokio::test]
async fn calls_on_rooms_not_entered_fail_with_their_codes() {
    let engine = Engine::new(1, "ws://127.0.0.1:9/v1/ws");
    let e = engine.logout_room("nowhere").await.expect_err("not in room");
    assert_eq!(e.code(), 1002002);
    let e = engine.send_broadcast_message("nowhere", "x").await.expect_err("not in room");
    assert_eq!(e.code(), 1009005);
    assert_eq!(engine.room_state("nowhere"), RoomStateReason::LogoutFailed);
}

/// What the client sends on a connection until it closes (pings included), as `t` values.
async fn rest_of(ws: &mut WebSocketStream<TcpStream>) -> Vec<String> {
    let mut ts = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).expect("client sends JSON");
                ts.push(v["t"].as_str().unwrap_or("?").to_string());
            }
            Message::Close(_) => break,
            _ => {}
        }
    }
    ts
}

/// Dropping the engine ends the session: `bye` when it is up on the connection, and nothing at
/// all while a `resume` waits for its answer (protocol §9.3: the client sends nothing between
/// its `resume` and the answer; the server may count any frame as holding the new token).
async fn dropped(while_resuming: bool) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("ws://{}/v1/ws", listener.local_addr().expect("addr"));
    let engine = Engine::new(7, url);
    let mut events = engine.events().expect("events");
    let me = User { id: "u1".into(), name: "Alice".into() };
    let login = engine.login_room("r1", me, "t", RoomConfig::default());
    let server = async {
        let (tcp, _) = listener.accept().await.expect("accept");
        let mut ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        assert_eq!(next_json(&mut ws).await["t"], "hello");
        send(
            &mut ws,
            json!({"t":"welcome","session":"S1","resume_token":"R1","heartbeat_ms":10000,
            "session_timeout_ms":90000,"retention_ms":1200000,"server_time_ms":0}),
        )
        .await;
        let login = next_json(&mut ws).await;
        send(
            &mut ws,
            json!({"t":"ok","id":login["id"],"room":"r1","users":[],"streams":[],"extra":[],
            "online":1,"seq":{"room":0,"users":1},"room_session":"rs1"}),
        )
        .await;
        ws
    };
    let (ok, mut ws) = tokio::join!(login, server);
    ok.expect("login");
    if while_resuming {
        drop(ws);
        wait_state(&mut events, RoomStateReason::Reconnecting).await;
        let (tcp, _) = listener.accept().await.expect("accept");
        ws = tokio_tungstenite::accept_async(tcp).await.expect("upgrade");
        let resume = next_json(&mut ws).await;
        assert_eq!((resume["t"].as_str(), resume["resume_token"].as_str()), (Some("resume"), Some("R1")));
    }
    drop(engine);
    let sent = rest_of(&mut ws).await;
    let want: &[&str] = if while_resuming { &[] } else { &["bye"] };
    assert_eq!(sent, want, "sent after the engine was dropped");
}

#[tokio::test]
async fn dropped_while_resume_unanswered_sends_nothing_more() {
    tokio::time::timeout(GUARD, dropped(true)).await.expect("guard timeout");
}

#[tokio::test]
async fn dropped_with_the_session_up_says_bye() {
    tokio::time::timeout(GUARD, dropped(false)).await.expect("guard timeout");
}
