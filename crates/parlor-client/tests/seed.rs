//! The seed document's reconnection scenarios and the kick-out, end to end: the Rust SDK against
//! the real server (in memory), each client on a link that can be cut, black-holed or refused,
//! on tokio's paused clock — 5 minutes of reconnect window pass in no real time.

mod common;

use common::*;
use parlor_client::{Event, RoomStateReason as S};

/// Scenario 1: back before the server's heartbeat timeout — the others notice nothing.
#[tokio::test(start_paused = true)]
async fn scenario_1_back_before_the_heartbeat_timeout_the_others_notice_nothing() {
    let s = server();
    let (mut a, mut b) = a_publishing_b_watching(&s).await;
    let (b_mark, a_mark) = (b.mark(), a.mark());

    a.lose_network();
    let (_, code) = a.wait_state(S::Reconnecting, secs(5)).await;
    assert_eq!(code, 1002051);
    tokio::time::sleep(secs(60)).await;
    b.barrier("r").await;
    a.link.heal();
    let (_, code) = a.wait_state(S::Reconnected, secs(15)).await;
    assert_eq!(code, 0);
    b.barrier("r").await;
    assert_eq!(b.changes_since(b_mark), Vec::<String>::new(), "B saw no user or stream change");
    assert_eq!(a.states_since(a_mark), vec![(S::Reconnecting, 1002051), (S::Reconnected, 0)]);
    // A is fully back: B hears it.
    a.engine.send_broadcast_message("r", "back").await.unwrap();
    b.wait_for("A's broadcast", secs(5), |e| matches!(e, Event::BroadcastMessage { message, .. } if message == "back"))
        .await;
}

/// Scenario 2: back after the heartbeat timeout, within retention — the others see the user
/// leave at ~90 s and come back; the client reports RECONNECTING → RECONNECTED.
#[tokio::test(start_paused = true)]
async fn scenario_2_back_after_the_timeout_the_others_see_leave_and_return() {
    let s = server();
    let (mut a, mut b) = a_publishing_b_watching(&s).await;
    let (b_mark, a_mark) = (b.mark(), a.mark());

    let t3 = tokio::time::Instant::now();
    a.lose_network();
    let (t_gone, _) = b
        .wait_for("user_delete of a", secs(120), |e| {
            matches!(e, Event::RoomUserUpdate { update_type: parlor_client::UpdateType::Delete, .. })
        })
        .await;
    let gone_after = t_gone - t3;
    // A's last frame was at most one heartbeat (10 s) before the cut.
    assert!(gone_after >= secs(80) && gone_after <= secs(92), "B saw A leave after {gone_after:?}");
    tokio::time::sleep(secs(60)).await;
    a.link.heal();
    let (t5, _) = a.wait_state(S::Reconnected, secs(15)).await;
    let (t6, _) = b
        .wait_for("user_add of a", secs(5), |e| {
            matches!(e, Event::RoomUserUpdate { update_type: parlor_client::UpdateType::Add, .. })
        })
        .await;
    assert!(t6 >= t5 - secs(1) && t6 - t5 <= secs(1), "B sees A back right after A's RECONNECTED");
    // A publishes its stream again; B sees it.
    b.wait_for("stream_add of cam-a", secs(5), |e| {
        matches!(e, Event::RoomStreamUpdate { update_type: parlor_client::UpdateType::Add, streams, .. } if streams[0].id == "cam-a")
    })
    .await;
    b.barrier("r").await;
    assert_eq!(b.changes_since(b_mark), vec!["stream DELETE cam-a", "user DELETE a", "user ADD a", "stream ADD cam-a"]);
    assert_eq!(a.states_since(a_mark), vec![(S::Reconnecting, 1002051), (S::Reconnected, 0)]);
}

/// Scenario 3: never back within the reconnect window — RECONNECT_FAILED at 5 min, then
/// nothing more: no state, no connection attempt.
#[tokio::test(start_paused = true)]
async fn scenario_3_never_back_reconnect_failed_after_five_minutes() {
    let s = server();
    let mut a = Client::new(&s, "a");
    let mut b = Client::new(&s, "b");
    a.login("r").await;
    b.login("r").await;
    let a_mark = a.mark();
    let t3 = tokio::time::Instant::now();
    a.lose_network();
    let (t_gone, _) = b.wait_for("user_delete", secs(120), |e| matches!(e, Event::RoomUserUpdate { .. })).await;
    assert!(t_gone - t3 <= secs(92));
    let (t_failed, code) = a.wait_state(S::ReconnectFailed, secs(320)).await;
    assert_eq!(code, 1002053);
    let failed_after = t_failed - t3;
    assert!(failed_after >= secs(299) && failed_after <= secs(301), "{failed_after:?}");
    let attempts = a.link.attempts();
    assert!(attempts > 5, "it kept trying meanwhile: {attempts}");
    a.link.heal();
    tokio::time::sleep(secs(600)).await;
    a.collect();
    assert_eq!(a.link.attempts(), attempts, "no attempt after RECONNECT_FAILED");
    assert_eq!(a.states_since(a_mark), vec![(S::Reconnecting, 1002051), (S::ReconnectFailed, 1002053)]);
    assert_eq!(a.engine.room_state("r"), S::ReconnectFailed);
}

/// A second login of the same user to the same room kicks the first: KICK_OUT 1002050, and the
/// kicked client does not try to come back.
#[tokio::test(start_paused = true)]
async fn duplicate_login_kicks_out_the_first_without_reconnection() {
    let s = server();
    let mut a = Client::new(&s, "a");
    let mut b = Client::new(&s, "b");
    a.login("r").await;
    b.login("r").await;
    b.barrier("r").await;
    let b_mark = b.mark();
    let attempts = a.link.attempts();
    let mut a2 = Client::new(&s, "a");
    a2.login("r").await;
    let (_, code) = a.wait_state(S::KickOut, secs(5)).await;
    assert_eq!(code, 1002050);
    tokio::time::sleep(secs(120)).await;
    a.collect();
    assert_eq!(a.link.attempts(), attempts, "no reconnection after a kick");
    assert_eq!(a.engine.room_state("r"), S::KickOut);
    b.barrier("r").await;
    assert_eq!(b.changes_since(b_mark), Vec::<String>::new(), "B sees no user change");
}

/// Kicked while away: the resume reports it, and the client shows KICK_OUT.
#[tokio::test(start_paused = true)]
async fn kicked_while_away_is_reported_as_kick_out_on_resume() {
    let s = server();
    let mut a = Client::new(&s, "a");
    a.login("r").await;
    a.lose_network();
    a.wait_state(S::Reconnecting, secs(5)).await;
    let mut a2 = Client::new(&s, "a");
    a2.login("r").await;
    a.link.heal();
    let (_, code) = a.wait_state(S::KickOut, secs(15)).await;
    assert_eq!(code, 1002050);
    assert_eq!(a2.engine.room_state("r"), S::Logined);
}
