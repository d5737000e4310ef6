//! Room scenarios against a real server on a free loopback port, with raw WebSocket clients.

mod common;

use common::*;
use parlor_protocol::ErrorCode;
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

async fn server() -> Server {
    Server::start(ServerConfig::for_tests(APP, SECRET)).await.expect("server starts")
}

/// A server whose message rate limits stay out of the way of tests that send many messages.
async fn roomy_server() -> Server {
    let config =
        ServerConfig { user_message_rate: 1000, room_message_rate: 1000, ..ServerConfig::for_tests(APP, SECRET) };
    Server::start(config).await.expect("server starts")
}

async fn connect(s: &Server) -> Ws {
    tokio_tungstenite::connect_async(s.ws_url()).await.expect("connect").0
}

async fn user(s: &Server, id: &str) -> Peer<MaybeTlsStream<TcpStream>> {
    hello(connect(s).await, id).await.0
}

fn ids(list: &Value) -> Vec<String> {
    list.as_array().map(|a| a.iter().map(|u| u["id"].as_str().unwrap_or("").to_string()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn welcome_carries_the_session_settings() {
    let s = server().await;
    let (_p, w) = hello(connect(&s).await, "u1").await;
    assert_eq!(w["heartbeat_ms"], 10000);
    assert_eq!(w["session_timeout_ms"], 90000);
    assert_eq!(w["retention_ms"], 1_200_000);
    assert!(w["session"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(w["resume_token"].as_str().is_some_and(|v| !v.is_empty()));
    assert!(w["server_time_ms"].as_u64().unwrap() > 1_700_000_000_000);
}

#[tokio::test]
async fn login_ok_carries_the_room_and_the_others_see_the_user_arrive() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    let mut b = user(&s, "b").await;
    let ok_a = a.login("r1").await;
    assert_eq!(ok_a["room"], "r1");
    assert_eq!(ok_a["users"], json!([]));
    assert_eq!(ok_a["online"], 1);
    assert_eq!(ok_a["seq"], json!({"room":0,"users":1}), "the login's own user_add is counted");
    let epoch = ok_a["room_session"].as_str().unwrap().to_string();

    a.request(json!({"t":"publish","room":"r1","stream":"sa","extra":"cam"})).await;
    a.request(json!({"t":"room_extra","room":"r1","key":"topic","value":"hi"})).await;
    let ok_b = b.login("r1").await;
    assert_eq!(ids(&ok_b["users"]), vec!["a"]);
    assert_eq!(ok_b["users"][0]["name"], "a name");
    assert_eq!(ok_b["streams"], json!([{"id":"sa","user":{"id":"a","name":"a name"},"extra":"cam"}]));
    assert_eq!(ok_b["extra"][0]["key"], "topic");
    assert_eq!(ok_b["extra"][0]["value"], "hi");
    assert_eq!(ok_b["extra"][0]["user"]["id"], "a");
    assert_eq!(ok_b["online"], 2);
    assert_eq!(ok_b["seq"], json!({"room":2,"users":2}));
    assert_eq!(ok_b["room_session"], json!(epoch));

    let ev = a.events().await;
    assert_eq!(kinds(&ev), vec!["users:2:user_add"]);
    assert_eq!(ev[0]["users"], json!([{"id":"b","name":"b name"}]));
    assert_eq!(ev[0]["room"], "r1");
    assert!(b.events().await.is_empty(), "the author is not sent its own events");
}

#[tokio::test]
async fn events_reach_exactly_the_others_in_order_with_contiguous_seq() {
    let s = roomy_server().await;
    let mut a = user(&s, "a").await;
    let mut b = user(&s, "b").await;
    let mut c = user(&s, "c").await;
    let mut outsider = user(&s, "x").await;
    for p in [&mut a, &mut b, &mut c] {
        p.login("r").await;
    }
    outsider.login("elsewhere").await;
    let _ = a.events().await;
    let _ = b.events().await;

    let mut room_seqs_seen_by_author = Vec::new();
    for i in 0..5 {
        let ok = a.request(json!({"t":"broadcast","room":"r","message":format!("m{i}")})).await;
        assert_eq!(code(&ok), 0, "{ok}");
        assert!(ok["message_id"].as_str().is_some());
        room_seqs_seen_by_author.push(ok["seq"]["room"].as_u64().unwrap());
    }
    let ok = b.request(json!({"t":"barrage","room":"r","message":"from b"})).await;
    let b_seq = ok["seq"]["room"].as_u64().unwrap();
    let ok = c.request(json!({"t":"publish","room":"r","stream":"sc"})).await;
    let c_seq = ok["seq"]["room"].as_u64().unwrap();
    assert_eq!(room_seqs_seen_by_author, vec![1, 2, 3, 4, 5]);
    assert_eq!((b_seq, c_seq), (6, 7));

    let ev_b = b.events().await;
    assert_eq!(
        kinds(&ev_b),
        vec![
            "room:1:broadcast",
            "room:2:broadcast",
            "room:3:broadcast",
            "room:4:broadcast",
            "room:5:broadcast",
            "room:7:stream_add"
        ]
    );
    assert_eq!(ev_b[0]["message"], "m0");
    assert_eq!(ev_b[0]["from"]["id"], "a");
    let ev_a = a.events().await;
    assert_eq!(kinds(&ev_a), vec!["room:6:barrage", "room:7:stream_add"]);
    assert_eq!(ev_a[1]["streams"][0]["user"]["id"], "c");
    let ev_c = c.events().await;
    assert_eq!(ev_c.len(), 6);
    assert!(outsider.events().await.is_empty(), "another room hears nothing");
}

#[tokio::test]
async fn commands_go_to_the_named_users_on_their_direct_channel() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    let mut b = user(&s, "b").await;
    let mut c = user(&s, "c").await;
    for p in [&mut a, &mut b, &mut c] {
        p.login("r").await;
    }
    let _ = (a.events().await, b.events().await);
    let ok = a.request(json!({"t":"command","room":"r","to":["b"],"command":"go"})).await;
    assert_eq!(code(&ok), 0);
    let ok = a.request(json!({"t":"command","room":"r","to":[],"command":"all"})).await;
    assert_eq!(code(&ok), 0);
    let ev_b = b.events().await;
    assert_eq!(kinds(&ev_b), vec!["direct:1:command", "direct:2:command"]);
    assert_eq!(ev_b[0]["command"], "go");
    assert_eq!(ev_b[0]["room"], "r");
    assert_eq!(ev_b[0]["from"]["id"], "a");
    assert_eq!(kinds(&c.events().await), vec!["direct:1:command"]);
    assert!(a.events().await.is_empty());
}

#[tokio::test]
async fn logout_switch_and_multi_room() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    let mut b = user(&s, "b").await;
    for r in ["r1", "r2", "r3"] {
        a.login(r).await;
    }
    b.login("r1").await;
    b.login("r4").await;
    let _ = a.events().await;
    a.request(json!({"t":"publish","room":"r1","stream":"s1"})).await;
    let _ = b.events().await;

    // Logout: the others see the streams and the user go.
    let ok = a.request(json!({"t":"logout","room":"r1"})).await;
    assert_eq!(ok["t"], "ok");
    assert_eq!(ok["seq"], json!({"room":2,"users":3}));
    let ev = b.events().await;
    assert_eq!(kinds(&ev), vec!["room:2:stream_delete", "users:3:user_delete"]);
    assert_eq!(ev[0]["reason"], 5);
    assert_eq!(code(&a.request(json!({"t":"logout","room":"r1"})).await), ErrorCode::NotInRoomLogout.code() as u64);

    // Switch: out of r2, into r4 in one step, with the login's fields.
    let ok = a
        .request(json!({"t":"switch","from":"r2","to":"r4","config":{"max_members":0,"user_status_notify":true}}))
        .await;
    assert_eq!(ok["t"], "ok", "{ok}");
    assert_eq!(ok["room"], "r4");
    assert_eq!(ids(&ok["users"]), vec!["b"]);
    assert_eq!(kinds(&b.events().await), vec!["users:2:user_add"]);
    let rooms = s.node.admin_rooms(APP).await.expect("reachable");
    let names: Vec<&str> = rooms.iter().map(|r| r.room.as_str()).collect();
    assert_eq!(names, vec!["r1", "r3", "r4"], "r2 emptied and is gone");

    // Switch whose login fails: out of both rooms, the login's error.
    let bad = a.request(json!({"t":"switch","from":"r3","to":"bad room"})).await;
    assert_eq!(code(&bad), ErrorCode::RoomIdInvalid.code() as u64);
    let full = a.request(json!({"t":"login","room":"r3"})).await;
    assert_eq!(code(&full), 0, "r3 is still enterable, so the switch took a out of it: {full}");
}

#[tokio::test]
async fn at_most_five_rooms_and_never_the_same_twice() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    for i in 0..5 {
        a.login(&format!("r{i}")).await;
    }
    let e = a.request(json!({"t":"login","room":"r5"})).await;
    assert_eq!(code(&e), ErrorCode::TooManyRooms.code() as u64);
    let e = a.request(json!({"t":"login","room":"r0"})).await;
    assert_eq!(code(&e), ErrorCode::TooManyRooms.code() as u64, "already in this room");
}

#[tokio::test]
async fn user_status_notify_false_gets_no_users_channel() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    let mut quiet = user(&s, "q").await;
    a.login("r").await;
    let ok = quiet.request(json!({"t":"login","room":"r","config":{"max_members":0,"user_status_notify":false}})).await;
    assert_eq!(ok["t"], "ok");
    assert!(ok.get("users").is_none(), "no users list: {ok}");
    assert!(ok["seq"].get("users").is_none(), "no users seq: {ok}");
    assert_eq!(ok["online"], 2);
    let mut b = user(&s, "b").await;
    b.login("r").await;
    b.request(json!({"t":"publish","room":"r","stream":"sb"})).await;
    assert_eq!(kinds(&quiet.events().await), vec!["room:1:stream_add"]);
    assert_eq!(kinds(&a.events().await), vec!["users:2:user_add", "users:3:user_add", "room:1:stream_add"]);
}

#[tokio::test]
async fn duplicate_login_kicks_the_older_session_and_deletes_its_streams() {
    let s = server().await;
    let mut old = user(&s, "dup").await;
    let mut other = user(&s, "o").await;
    old.login("r").await;
    old.login("r2").await;
    old.request(json!({"t":"publish","room":"r","stream":"old-cam"})).await;
    other.login("r").await;
    let _ = other.events().await;

    let mut new = user(&s, "dup").await;
    let ok = new.login("r").await;
    assert_eq!(ids(&ok["users"]), vec!["o"]);
    assert_eq!(ok["streams"], json!([]), "the older session's streams are gone");

    let frames = old.drain().await;
    assert!(frames.iter().any(|f| f == &json!({"t":"kicked","room":"r","code":1002050})), "{frames:?}");
    let ev = other.events().await;
    assert_eq!(kinds(&ev), vec!["room:2:stream_delete"], "no user change, only the streams");
    assert_eq!(ev[0]["reason"], 3);
    // The older session is still in its other room.
    assert_eq!(code(&old.request(json!({"t":"broadcast","room":"r2","message":"still here"})).await), 0);
    assert_eq!(
        code(&old.request(json!({"t":"broadcast","room":"r","message":"x"})).await),
        ErrorCode::NotInRoom.code() as u64
    );
}

#[tokio::test]
async fn kicked_out_of_every_room_closes_with_4009() {
    let s = server().await;
    let mut old = user(&s, "dup").await;
    old.login("r").await;
    let mut new = user(&s, "dup").await;
    new.login("r").await;
    let (frames, end) = old.recv_until_end().await;
    assert_eq!(frames, vec![json!({"t":"kicked","room":"r","code":1002050})]);
    assert_eq!(end, End::Close(4009));
}

#[tokio::test]
async fn admin_kick_sends_1002055_with_the_reason() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    let mut b = user(&s, "b").await;
    a.login("r").await;
    a.login("r2").await;
    b.login("r").await;
    let _ = a.events().await;
    let http = reqwest_free_post(&s, "/v1/admin/apps/7/rooms/r/kick", r#"{"user":"b","reason":"spam"}"#, SECRET).await;
    assert!(http.starts_with("HTTP/1.1 200"), "{http}");
    let frames = b.recv_until_end().await.0;
    assert_eq!(frames[0], json!({"t":"kicked","room":"r","code":1002055,"extended_data":{"reason":"spam"}}));
    assert_eq!(kinds(&a.events().await), vec!["users:3:user_delete"]);
    let denied = reqwest_free_post(&s, "/v1/admin/apps/7/rooms/r/close", "{}", "wrong").await;
    assert!(denied.starts_with("HTTP/1.1 401"), "{denied}");
    let closed = reqwest_free_post(&s, "/v1/admin/apps/7/rooms/r/close", r#"{"reason":"done"}"#, SECRET).await;
    assert!(closed.starts_with("HTTP/1.1 200"), "{closed}");
    let frames = a.drain().await;
    assert_eq!(frames, vec![json!({"t":"kicked","room":"r","code":1002055,"extended_data":{"reason":"done"}})]);
}

/// A minimal HTTP/1.1 POST over a TCP socket (no HTTP client dependency for two requests).
async fn reqwest_free_post(s: &Server, path: &str, body: &str, secret: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = TcpStream::connect(s.addr).await.unwrap();
    let req = format!(
        "POST {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {secret}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(req.as_bytes()).await.unwrap();
    let mut out = String::new();
    tcp.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test]
async fn streams_extra_info_and_room_extra() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    let mut b = user(&s, "b").await;
    a.login("r").await;
    b.login("r").await;
    let _ = a.events().await;
    assert_eq!(code(&a.request(json!({"t":"publish","room":"r","stream":"s1","extra":"x"})).await), 0);
    assert_eq!(code(&a.request(json!({"t":"stream_extra","room":"r","stream":"s1","extra":"y"})).await), 0);
    assert_eq!(
        code(&b.request(json!({"t":"publish","room":"r","stream":"s1"})).await),
        ErrorCode::StreamIdTaken.code() as u64
    );
    assert_eq!(
        code(&b.request(json!({"t":"unpublish","room":"r","stream":"s1"})).await),
        ErrorCode::InvalidField.code() as u64
    );
    assert_eq!(code(&a.request(json!({"t":"unpublish","room":"r","stream":"s1"})).await), 0);
    for i in 0..10 {
        assert_eq!(code(&a.request(json!({"t":"room_extra","room":"r","key":format!("k{i}"),"value":"v"})).await), 0);
    }
    assert_eq!(
        code(&a.request(json!({"t":"room_extra","room":"r","key":"k0","value":"again"})).await),
        0,
        "an existing key can change"
    );
    let ev = b.events().await;
    let k = kinds(&ev);
    assert_eq!(&k[..3], &["room:1:stream_add", "room:2:stream_extra", "room:3:stream_delete"]);
    assert_eq!(ev[1]["streams"][0]["extra"], "y");
    assert_eq!(ev[2]["reason"], 1);
    assert_eq!(k.len(), 14);
    assert_eq!(ev[13]["kind"], "room_extra");
    assert_eq!(ev[13]["value"], "again");
    assert_eq!(ev[13]["user"]["id"], "a");
}
