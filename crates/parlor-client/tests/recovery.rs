//! What a reconnection recovers, end to end on the paused clock: every missed event exactly
//! once, exact diffs when the log no longer covers the gap, snapshots for a new room life, the
//! `hello` + login fallback after a server restart, black-hole detection, and the login and
//! logout failures of §7.

mod common;

use std::time::Duration;

use common::*;
use parlor_client::{ErrorCode, Event, RoomConfig, RoomStateReason as S};
use parlor_server::memory::MemoryServer;
use parlor_server::ServerConfig;

fn broadcasts(c: &Client, from: usize) -> Vec<String> {
    c.log[from..]
        .iter()
        .filter_map(|(_, e)| match e {
            Event::BroadcastMessage { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

fn commands(c: &Client, from: usize) -> Vec<String> {
    c.log[from..]
        .iter()
        .filter_map(|(_, e)| match e {
            Event::CustomCommand { command, .. } => Some(command.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn messages_sent_while_cut_off_arrive_exactly_once() {
    let s = server();
    let mut a = Client::new(&s, "a");
    let mut b = Client::new(&s, "b");
    a.login("r").await;
    b.login("r").await;
    let a_mark = a.mark();
    a.lose_network();
    a.wait_state(S::Reconnecting, secs(5)).await;
    b.engine.send_broadcast_message("r", "while away").await.unwrap();
    b.engine.send_custom_command("r", vec!["a".into()], "go").await.unwrap();
    tokio::time::sleep(secs(20)).await;
    a.link.heal();
    a.wait_state(S::Reconnected, secs(15)).await;
    // After the resume, a round trip of A's own: everything replayed is in.
    a.barrier("r").await;
    tokio::time::sleep(secs(30)).await;
    a.collect();
    assert_eq!(broadcasts(&a, a_mark), vec!["while away"]);
    assert_eq!(commands(&a, a_mark), vec!["go"]);
}

#[tokio::test(start_paused = true)]
async fn a_request_sent_just_before_the_cut_executes_exactly_once() {
    let s = server();
    let mut a = Client::new(&s, "a");
    let mut b = Client::new(&s, "b");
    a.login("r").await;
    b.login("r").await;
    let b_mark = b.mark();
    // The request goes out; the path dies before anything comes back.
    a.link.black_hole();
    let engine = std::sync::Arc::new(a.engine);
    let sender = engine.clone();
    let call = tokio::spawn(async move { sender.send_broadcast_message("r", "just before").await });
    tokio::time::sleep(Duration::from_millis(100)).await;
    a.link.cut();
    a.link.heal();
    let message_id = tokio::time::timeout(secs(30), call).await.expect("answered").unwrap().expect("ok");
    assert!(!message_id.is_empty());
    b.barrier("r").await;
    tokio::time::sleep(secs(5)).await;
    b.barrier("r").await;
    assert_eq!(broadcasts(&b, b_mark), vec!["just before"]);

    // And the other way: the request reaches the server, its answer is lost.
    let b_mark = b.mark();
    let sender = engine.clone();
    let call = tokio::spawn(async move { sender.send_broadcast_message("r", "answer lost").await });
    b.wait_for("the broadcast", secs(5), |e| matches!(e, Event::BroadcastMessage { .. })).await;
    a.link.cut();
    let answered = tokio::time::timeout(secs(30), call).await.expect("answered").unwrap();
    assert!(answered.is_ok(), "{answered:?}");
    tokio::time::sleep(secs(5)).await;
    b.barrier("r").await;
    assert_eq!(broadcasts(&b, b_mark), vec!["answer lost"], "executed once");
}

#[tokio::test(start_paused = true)]
async fn an_outage_longer_than_the_log_reports_the_exact_difference() {
    let s = MemoryServer::start(ServerConfig {
        log_len: 4,
        log_age: Duration::from_secs(1),
        user_message_rate: 1000,
        room_message_rate: 1000,
        ..ServerConfig::for_tests(APP, SECRET)
    });
    let mut a = Client::new(&s, "a");
    let b = Client::new(&s, "b");
    let c = Client::new(&s, "c");
    a.login("r").await;
    let mut b = b;
    b.login("r").await;
    let mut c = c;
    c.login("r").await;
    c.engine.publish_stream("r", "cam-c", "").await.unwrap();
    a.wait_for("cam-c", secs(5), |e| matches!(e, Event::RoomStreamUpdate { .. })).await;
    let a_mark = a.mark();
    a.lose_network();
    a.wait_state(S::Reconnecting, secs(5)).await;
    // Meanwhile: c leaves; d comes and publishes; e comes and goes; b talks a lot.
    c.engine.logout_room("r").await.unwrap();
    let mut d = Client::new(&s, "d");
    d.login("r").await;
    d.engine.publish_stream("r", "cam-d", "").await.unwrap();
    let mut e = Client::new(&s, "e");
    e.login("r").await;
    e.engine.logout_room("r").await.unwrap();
    for i in 0..10 {
        b.engine.send_broadcast_message("r", format!("m{i}")).await.unwrap();
    }
    tokio::time::sleep(secs(30)).await;
    a.link.heal();
    a.wait_state(S::Reconnected, secs(15)).await;
    a.barrier("r").await;
    let mut changes = a.changes_since(a_mark);
    changes.sort();
    assert_eq!(changes, vec!["stream ADD cam-d", "stream DELETE cam-c", "user ADD d", "user DELETE c"]);
}

#[tokio::test(start_paused = true)]
async fn a_room_emptied_and_created_again_is_recovered_from_a_snapshot() {
    let s = server();
    let mut a = Client::new(&s, "a");
    a.login("r").await;
    let a_mark = a.mark();
    a.lose_network();
    a.wait_state(S::Reconnecting, secs(5)).await;
    tokio::time::sleep(secs(100)).await; // a is offline: the room is emptied and dropped
    let mut b = Client::new(&s, "b");
    b.login("r").await;
    b.engine.publish_stream("r", "cam-b", "").await.unwrap();
    a.link.heal();
    a.wait_state(S::Reconnected, secs(15)).await;
    a.barrier("r").await;
    assert_eq!(a.changes_since(a_mark), vec!["user ADD b", "stream ADD cam-b"]);
    assert_eq!(a.states_since(a_mark), vec![(S::Reconnecting, 1002051), (S::Reconnected, 0)]);
}

#[tokio::test(start_paused = true)]
async fn after_a_server_restart_the_client_logs_in_again_and_reports_reconnected() {
    let s = server();
    let mut a = Client::new(&s, "a");
    let mut b = Client::new(&s, "b");
    a.login("r").await;
    a.engine.publish_stream("r", "cam-a", "").await.unwrap();
    b.login("r").await;
    let (a_mark, b_mark) = (a.mark(), b.mark());
    s.restart();
    a.wait_state(S::Reconnected, secs(30)).await;
    b.wait_state(S::Reconnected, secs(30)).await;
    // Both are back on a new session. Whoever logs in again second finds the other already
    // there, so the order of events varies; the end state does not: wait (in simulated time,
    // bounded) until A's stream is published again.
    let published = room_becomes(&s, "r", 2, 1).await;
    assert!(published, "A's stream is published again on the new server");
    a.barrier("r").await;
    b.barrier("r").await;
    assert_eq!(a.states_since(a_mark), vec![(S::Reconnecting, 1002051), (S::Reconnected, 0)]);
    assert_eq!(b.states_since(b_mark), vec![(S::Reconnecting, 1002051), (S::Reconnected, 0)]);
    // B's view ends with A and A's stream in it, whatever the order of the diffs (an in-memory
    // restart loses everything, so B may see A missing for a moment if B is back first).
    let b_changes = b.changes_since(b_mark);
    if let Some(last) = b_changes.iter().rev().find(|c| c.starts_with("user")) {
        assert_eq!(last, "user ADD a", "{b_changes:?}");
    }
    if let Some(last) = b_changes.iter().rev().find(|c| c.starts_with("stream")) {
        assert_eq!(last, "stream ADD cam-a", "{b_changes:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_black_hole_is_detected_by_the_missing_pong_and_resumed() {
    let s = server();
    let mut a = Client::new(&s, "a");
    let mut b = Client::new(&s, "b");
    a.login("r").await;
    b.login("r").await;
    let (a_mark, b_mark) = (a.mark(), b.mark());
    let t0 = tokio::time::Instant::now();
    a.link.black_hole();
    let (t_lost, code) = a.wait_state(S::Reconnecting, secs(40)).await;
    assert_eq!(code, 1002051);
    let detected = t_lost - t0;
    assert!(detected >= secs(10) && detected <= secs(31), "two heartbeats without pong: {detected:?}");
    a.link.heal();
    a.wait_state(S::Reconnected, secs(15)).await;
    b.barrier("r").await;
    assert_eq!(b.changes_since(b_mark), Vec::<String>::new());
    assert_eq!(a.states_since(a_mark), vec![(S::Reconnecting, 1002051), (S::Reconnected, 0)]);
}

#[tokio::test(start_paused = true)]
async fn login_failed_1002031_when_no_server_answers_within_30_s() {
    let s = server();
    let mut a = Client::new(&s, "a");
    a.link.black_hole();
    let t0 = tokio::time::Instant::now();
    let err = a.engine.login_room("r", a.user.clone(), token("a"), RoomConfig::default()).await.unwrap_err();
    assert_eq!(err.code(), 1002031);
    let took = t0.elapsed();
    assert!(took >= secs(30) && took <= secs(31), "{took:?}");
    a.collect();
    assert_eq!(a.states_since(0), vec![(S::Logining, 0), (S::LoginFailed, 1002031)]);

    let r = Client::new(&s, "r");
    r.link.refuse();
    let err = r.engine.login_room("r", r.user.clone(), token("r"), RoomConfig::default()).await.unwrap_err();
    assert_eq!(err.code(), 1002031, "refused connections: the same timeout");
}

#[tokio::test(start_paused = true)]
async fn logout_of_a_room_not_in_is_logout_failed_1002002() {
    let s = server();
    let mut a = Client::new(&s, "a");
    a.login("r").await;
    let a_mark = a.mark();
    let err = a.engine.logout_room("elsewhere").await.unwrap_err();
    assert_eq!(err.code(), 1002002);
    a.collect();
    assert_eq!(a.states_since(a_mark), vec![(S::LogoutFailed, 1002002)]);
    a.engine.logout_room("r").await.unwrap();
    a.collect();
    assert_eq!(a.states_since(a_mark), vec![(S::LogoutFailed, 1002002), (S::Logout, 0)]);
}

#[tokio::test(start_paused = true)]
async fn a_server_url_that_can_never_connect_fails_the_login_at_once_with_1002030() {
    let engine = parlor_client::Engine::new(APP, "http://127.0.0.1:7700/v1/ws");
    let mut events = engine.events().unwrap();
    let t0 = tokio::time::Instant::now();
    let user = parlor_client::User { id: "a".into(), name: String::new() };
    let err = engine.login_room("r", user, token("a"), RoomConfig::default()).await.unwrap_err();
    assert_eq!(err.code(), 1002030);
    assert_eq!(t0.elapsed(), Duration::ZERO, "no waiting for the login timeout");
    let mut states = Vec::new();
    while let Ok(Event::RoomStateChanged { reason, error_code, .. }) = events.try_recv() {
        states.push((reason, error_code));
    }
    assert_eq!(states, vec![(S::Logining, None), (S::LoginFailed, Some(ErrorCode::ConnectFailed))]);
    assert_eq!(engine.room_state("r"), S::LoginFailed);
}
