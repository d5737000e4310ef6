//! Every error code of protocol §8 that the server produces, each reached by name, and the bad
//! input of §1: each gets its documented code or close code, and a well-behaved client in the
//! same room keeps receiving its events meanwhile.

mod common;

use common::*;
use parlor_protocol::ErrorCode;
use parlor_server::{Server, ServerConfig};
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::MaybeTlsStream;

type P = Peer<MaybeTlsStream<TcpStream>>;

async fn server() -> Server {
    Server::start(ServerConfig::for_tests(APP, SECRET)).await.expect("server starts")
}

async fn raw(s: &Server, name: &str) -> P {
    Peer::new(tokio_tungstenite::connect_async(s.ws_url()).await.expect("connect").0, name)
}

async fn user(s: &Server, id: &str) -> P {
    hello(tokio_tungstenite::connect_async(s.ws_url()).await.expect("connect").0, id).await.0
}

/// Send `hello` with these fields and return the error code and the close code.
async fn bad_hello(s: &Server, user: Value, token: String, app: u32) -> (u64, End) {
    let mut p = raw(s, "bad").await;
    p.send(json!({"t":"hello","v":1,"app_id":app,"user":user,"token":token})).await;
    let (frames, end) = p.recv_until_end().await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0]["t"], "error");
    assert!(frames[0].get("id").is_none(), "a hello error has no id");
    (frames[0]["code"].as_u64().unwrap(), end)
}

fn c(code: ErrorCode) -> u64 {
    code.code() as u64
}

#[tokio::test]
async fn bad_hello_is_answered_with_its_code_and_closed_with_1008() {
    let s = server().await;
    let cases: Vec<(Value, String, u32, ErrorCode)> = vec![
        (json!({"id":"","name":""}), token(""), APP, ErrorCode::UserIdEmpty),
        (json!({"id":"a b","name":""}), token("a b"), APP, ErrorCode::UserIdInvalid),
        (json!({"id":"u".repeat(65),"name":""}), token(&"u".repeat(65)), APP, ErrorCode::UserIdTooLong),
        (json!({"id":"u","name":"bell\u{7}"}), token("u"), APP, ErrorCode::UserNameInvalid),
        (json!({"id":"u","name":"n".repeat(257)}), token("u"), APP, ErrorCode::UserNameTooLong),
        (json!({"id":"u","name":""}), "not-a-jwt".to_string(), APP, ErrorCode::AuthFailed),
        (
            json!({"id":"u","name":""}),
            parlor_protocol::token::mint(
                b"wrong-secret",
                &parlor_protocol::token::Claims::new(APP, "u", now_s(), 60, "n"),
            ),
            APP,
            ErrorCode::AuthFailed,
        ),
        (json!({"id":"u","name":""}), token("u"), 99, ErrorCode::AuthFailed),
        (json!({"id":"u","name":""}), token_with(|c| c.app_id = 8), APP, ErrorCode::TokenAppMismatch),
        (json!({"id":"u","name":""}), token("someone-else"), APP, ErrorCode::TokenUserMismatch),
        (
            json!({"id":"u","name":""}),
            token_with(|c| {
                c.user_id = "u".into();
                c.exp = now_s() - 120;
            }),
            APP,
            ErrorCode::TokenExpired,
        ),
    ];
    for (u, t, app, want) in cases {
        let (code, end) = bad_hello(&s, u.clone(), t, app).await;
        assert_eq!(code, c(want), "hello as {u}");
        assert_eq!(end, End::Close(1008), "hello as {u}");
    }
}

#[tokio::test]
async fn login_errors() {
    let s = server().await;
    let mut a = user(&s, "u").await;
    let login = |room: Value| json!({"t":"login","room":room});
    assert_eq!(code(&a.request(login(json!(""))).await), c(ErrorCode::RoomIdEmpty));
    assert_eq!(code(&a.request(login(json!("a room"))).await), c(ErrorCode::RoomIdInvalid));
    assert_eq!(code(&a.request(login(json!("r".repeat(129)))).await), c(ErrorCode::RoomIdTooLong));
    assert_eq!(code(&a.request(json!({"t":"login"})).await), c(ErrorCode::InvalidField), "no room field");
    assert_eq!(code(&a.request(json!({"t":"login","room":"r","token":"garbage"})).await), c(ErrorCode::AuthFailed));
    let other_room = token_with(|c| {
        c.user_id = "u".into();
        c.room_id = Some("elsewhere".into());
    });
    assert_eq!(code(&a.request(json!({"t":"login","room":"r","token":other_room})).await), c(ErrorCode::AuthFailed));
    let expired = token_with(|c| {
        c.user_id = "u".into();
        c.exp = now_s() - 100;
    });
    assert_eq!(code(&a.request(json!({"t":"login","room":"r","token":expired})).await), c(ErrorCode::TokenExpired));
    // max_members is honoured from the creator.
    let mut creator = user(&s, "creator").await;
    let ok =
        creator.request(json!({"t":"login","room":"small","config":{"max_members":1,"user_status_notify":true}})).await;
    assert_eq!(code(&ok), 0);
    assert_eq!(code(&a.request(login(json!("small"))).await), c(ErrorCode::RoomFull));
}

#[tokio::test]
async fn room_request_errors() {
    let s = server().await;
    let mut a = user(&s, "u").await;
    a.login("r").await;
    let bc = |m: Value| json!({"t":"broadcast","room":"r","message":m});
    assert_eq!(code(&a.request(bc(json!(""))).await), c(ErrorCode::MessageEmpty));
    assert_eq!(code(&a.request(bc(json!("m".repeat(1025)))).await), c(ErrorCode::MessageTooLong));
    assert_eq!(code(&a.request(json!({"t":"broadcast","room":"nope","message":"x"})).await), c(ErrorCode::NotInRoom));
    assert_eq!(
        code(&a.request(json!({"t":"command","room":"r","to":[],"command":""})).await),
        c(ErrorCode::MessageEmpty)
    );
    let extra = |k: Value, v: Value| json!({"t":"room_extra","room":"r","key":k,"value":v});
    assert_eq!(code(&a.request(extra(json!(""), json!("v"))).await), c(ErrorCode::RoomExtraKeyEmpty));
    assert_eq!(code(&a.request(extra(json!("k".repeat(129)), json!("v"))).await), c(ErrorCode::RoomExtraKeyTooLong));
    assert_eq!(code(&a.request(extra(json!("k"), json!("v".repeat(1025)))).await), c(ErrorCode::RoomExtraValueTooLong));
    for i in 0..10 {
        assert_eq!(code(&a.request(extra(json!(format!("k{i}")), json!("v"))).await), 0);
    }
    assert_eq!(code(&a.request(extra(json!("k10"), json!("v"))).await), c(ErrorCode::RoomExtraTooManyKeys));
    assert_eq!(code(&a.request(json!({"t":"publish","room":"r","stream":"bad.id"})).await), c(ErrorCode::InvalidField));

    // A token without publish rights.
    let mut viewer = raw(&s, "viewer").await;
    let t = token_with(|c| {
        c.user_id = "viewer".into();
        c.publish = Some(false);
    });
    viewer.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"viewer","name":""},"token":t})).await;
    assert_eq!(viewer.recv().await["t"], "welcome");
    viewer.login("r").await;
    assert_eq!(
        code(&viewer.request(json!({"t":"publish","room":"r","stream":"v1"})).await),
        c(ErrorCode::NoPublishPrivilege)
    );
    // renew_token with a token that allows it.
    let renewed = viewer.request(json!({"t":"renew_token","token":token("viewer")})).await;
    assert_eq!(code(&renewed), 0);
    assert_eq!(code(&viewer.request(json!({"t":"publish","room":"r","stream":"v1"})).await), 0);
    assert_eq!(
        code(&viewer.request(json!({"t":"renew_token","token":token("intruder")})).await),
        c(ErrorCode::TokenUserMismatch)
    );
}

#[tokio::test]
async fn message_rates_are_limited_per_user_and_room() {
    let s = server().await;
    let mut a = user(&s, "a").await;
    a.login("r").await;
    let mut codes = Vec::new();
    for i in 0..3 {
        codes.push(code(&a.request(json!({"t":"broadcast","room":"r","message":format!("{i}")})).await));
    }
    assert_eq!(codes, vec![0, 0, c(ErrorCode::MessagesTooFrequent)], "2 per second per user");
    let mut codes = Vec::new();
    for i in 0..11 {
        codes.push(code(&a.request(json!({"t":"command","room":"r","to":[],"command":format!("{i}")})).await));
    }
    assert_eq!(codes.iter().filter(|c| **c == 0).count(), 10);
    assert_eq!(codes[10], c(ErrorCode::MessagesTooFrequent));
}

#[tokio::test]
async fn a_flood_of_requests_gets_1002072_and_the_room_goes_on() {
    let s = server().await;
    let mut good = user(&s, "good").await;
    let mut flooder = user(&s, "flood").await;
    let mut speaker = user(&s, "speaker").await;
    for p in [&mut good, &mut flooder, &mut speaker] {
        p.login("r").await;
    }
    let _ = good.events().await;
    // 200 requests written back to back, without waiting for answers.
    let first = flooder.peek_id();
    for _ in 0..200 {
        let id = flooder.take_id();
        flooder.send(json!({"t":"room_extra","id":id,"room":"r","key":"k","value":"v"})).await;
    }
    let mut limited = 0;
    for id in first..first + 200 {
        let a = flooder.answer(id).await;
        if code(&a) == c(ErrorCode::RequestsTooFrequent) {
            limited += 1;
        }
    }
    assert!(limited >= 100, "most of a 200-request burst is refused, got {limited}");
    assert_eq!(code(&speaker.request(json!({"t":"broadcast","room":"r","message":"still flowing"})).await), 0);
    let ev = good.events().await;
    assert!(ev.iter().any(|e| e["kind"] == "broadcast" && e["message"] == "still flowing"));
}

#[tokio::test]
async fn bad_frames_get_their_codes_and_others_keep_receiving() {
    let s = server().await;
    let mut good = user(&s, "good").await;
    let mut speaker = user(&s, "speaker").await;
    good.login("r").await;
    speaker.login("r").await;
    let _ = good.events().await;

    // Unknown `t`: 1000002, the connection stays open.
    let mut odd = user(&s, "odd").await;
    odd.login("r").await;
    odd.send(json!({"t":"dance","id":50})).await;
    let e = odd.answer(50).await;
    assert_eq!(e["code"], json!(c(ErrorCode::UnknownRequest)));
    assert_eq!(code(&odd.request(json!({"t":"broadcast","room":"r","message":"after"})).await), 0, "still open");

    // Malformed JSON: 1000001, then close 1007.
    let mut m = user(&s, "malformed").await;
    m.login("r").await;
    m.send_raw(Message::Text("{not json".into())).await;
    let (frames, end) = m.recv_until_end().await;
    assert_eq!(frames.last().unwrap()["code"], json!(c(ErrorCode::MalformedFrame)));
    assert_eq!(end, End::Close(1007));

    // No `t`: 1000001, then close 1007.
    let mut m = user(&s, "no-t").await;
    m.send(json!({"id":1,"room":"r"})).await;
    let (frames, end) = m.recv_until_end().await;
    assert_eq!(frames.last().unwrap()["code"], json!(c(ErrorCode::MalformedFrame)));
    assert_eq!(end, End::Close(1007));

    // Binary frame: close 1003.
    let mut b = user(&s, "binary").await;
    b.send_raw(Message::Binary(vec![1, 2, 3].into())).await;
    assert_eq!(b.recv_until_end().await.1, End::Close(1003));

    // Oversize frame: close 1009.
    let mut big = user(&s, "big").await;
    big.send_raw(Message::Text("x".repeat(70 * 1024).into())).await;
    assert_eq!(big.recv_until_end().await.1, End::Close(1009));
    let mut big = user(&s, "big2").await;
    big.send_raw(Message::Text(format!("{{\"t\":\"ping\",\"pad\":\"{}\"}}", "x".repeat(65 * 1024 - 10)).into())).await;
    assert_eq!(big.recv_until_end().await.1, End::Close(1009), "just over the 64 KiB default");

    // hello not first: error, close 1008.
    let mut h = raw(&s, "nohello").await;
    h.send(json!({"t":"login","id":1,"room":"r"})).await;
    let (frames, end) = h.recv_until_end().await;
    assert_eq!(frames[0]["code"], json!(c(ErrorCode::InvalidField)));
    assert_eq!(end, End::Close(1008));

    // A second hello on a started session is refused, the session goes on.
    good.send(json!({"t":"hello","v":1,"app_id":APP,"user":{"id":"good","name":""},"token":token("good")})).await;

    // Meanwhile the well-behaved client heard everything, in order.
    assert_eq!(code(&speaker.request(json!({"t":"broadcast","room":"r","message":"hello?"})).await), 0);
    let frames = good.drain().await;
    assert!(frames.iter().any(|f| f["t"] == "error" && f["code"] == json!(c(ErrorCode::InvalidField))));
    let ev: Vec<&Value> = frames.iter().filter(|f| f["t"] == "event" && f["ch"] == "room").collect();
    assert_eq!(ev.last().unwrap()["message"], "hello?");
    let seqs: Vec<u64> = ev.iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1), "contiguous: {seqs:?}");
}

#[tokio::test]
async fn a_slow_consumer_is_cut_with_4008_and_does_not_slow_the_room() {
    let config = ServerConfig {
        outbound_limit: 16 * 1024,
        user_message_rate: 100_000,
        room_message_rate: 100_000,
        request_rate: 100_000,
        ..ServerConfig::for_tests(APP, SECRET)
    };
    let s = Server::start(config).await.unwrap();
    let mut good = user(&s, "good").await;
    let mut slow = user(&s, "slow").await;
    let mut speaker = user(&s, "speaker").await;
    for p in [&mut good, &mut slow, &mut speaker] {
        p.login("r").await;
    }
    let _ = good.events().await;
    // `slow` never reads; the speaker sends until the kernel's socket buffers and then the
    // server's queue for `slow` are full (bounded: 100 000 messages at most).
    let text = "y".repeat(1000);
    let mut sent = 0;
    while s.node.stats().await.expect("memory").connected == 3 && sent < 100_000 {
        let a = speaker.request(json!({"t":"broadcast","room":"r","message":text})).await;
        assert_eq!(code(&a), 0);
        sent += 1;
        // `good` keeps up, message by message.
        let e = good.recv().await;
        assert_eq!(e["seq"], json!(sent));
    }
    assert_eq!(s.node.stats().await.expect("memory").connected, 2, "slow was cut after {sent} messages");
    let (_frames, end) = slow.recv_until_end().await;
    assert_eq!(end, End::Close(4008));
    // The cut session is still there, to resume.
    assert_eq!(s.node.stats().await.expect("memory").sessions, 3);
}
