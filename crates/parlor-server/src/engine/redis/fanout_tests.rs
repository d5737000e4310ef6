//! The hole of issue 19: a node handed seq 18 when the read of seq 17 from the log failed (a
//! Redis call timing out under a reconnect storm), so a member that resumed got 16, then 18,
//! and never 17. Now nothing is handed past a gap that could not be read: the event waits in the
//! room's queue, and is handed after the missing ones once the log can be read.

use std::sync::Arc;

use parking_lot::Mutex;
use parlor_protocol::{Channel, Seqs};

use super::conn::Conn;
use super::fanout::{Cursor, Ev, Fanout, Msg, RoomSeq};
use crate::engine::{ConnId, Deliver, Joining, SessionKey};
use crate::frame::Frame;

/// Records the seqs of the room events handed to the hub.
#[derive(Default)]
struct Seen(Mutex<Vec<u64>>);

impl Deliver for Seen {
    fn bind(&self, _: SessionKey, _: ConnId) -> bool {
        true
    }
    fn room_event(&self, _: u32, _: &str, _: Option<Channel>, seq: u64, _: &Frame, _: Option<SessionKey>) {
        self.0.lock().push(seq);
    }
    fn to_session(&self, _: SessionKey, _: Frame) {}
    fn joined(&self, _: u32, _: &str, _: SessionKey, _: bool, _: Seqs, _: Joining) {}
    fn left(&self, _: u32, _: &str, _: SessionKey, _: Joining) {}
    fn close(&self, _: SessionKey, _: Option<ConnId>, _: u16, _: &str, _: bool) {}
    fn has_members(&self, _: u32, _: &str) -> bool {
        true
    }
    fn drop_connections(&self, _: u32) -> usize {
        0
    }
}

fn ev(seq: u64) -> Ev {
    Ev { ch: 0, seq, author: 0, epoch: "e1".into(), frame: Frame::from(format!("ev{seq}")) }
}

/// A fresh Redis and a gated connection to it.
async fn redis() -> (parlor_testkit::RedisServer, super::gate::Gated) {
    let redis = parlor_testkit::RedisServer::start();
    let (conn, _) = Conn::connect(&[redis.url()], std::time::Duration::from_secs(1)).await.expect("connect");
    (redis, super::gate::Gated::new(conn, Default::default()))
}

/// A fresh Redis, a gated connection to it, and one room's sequencer handing to [`Seen`].
async fn setup() -> (parlor_testkit::RedisServer, super::gate::Gated, Arc<Seen>, Arc<Fanout>, Arc<RoomSeq>) {
    let (redis, conn) = redis().await;
    let seen = Arc::new(Seen::default());
    let fanout = Arc::new(Fanout::new(seen.clone(), conn.clone()));
    let room = fanout.room(1, "r");
    (redis, conn, seen, fanout, room)
}

#[tokio::test]
async fn an_event_after_a_gap_that_cannot_be_read_waits_instead_of_being_handed_past_it() {
    let (_redis, conn, seen, fanout, room) = setup().await;
    *room.cursor.lock().await = Cursor::new("e1".into(), [16, 0]);
    let log = "parlor:{1}:r:r:log:room";
    let mut c = conn.clone();
    // The log cannot be read (a failing call; here, deterministically, a key of the wrong type).
    let _: () = redis::cmd("SET").arg(log).arg("not a stream").query_async(&mut c).await.expect("set");
    // Seq 18 arrives (by pub/sub, or as a script's own event); 17 never did.
    {
        let mut cursor = room.cursor.lock().await;
        fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(18))).await;
        // The tick's retry: still nothing can be read.
        fanout.drain_locked(&room, &mut cursor).await;
        assert_eq!(cursor.last, [16, 0]);
    }
    assert_eq!(*seen.0.lock(), Vec::<u64>::new(), "nothing is handed past a seq that could not be read");
    // Redis answers again: the tick's retry hands 17 from the log, then 18, once each.
    // (In one step: a drain still running from above must not find the log empty.)
    let mut fix = redis::pipe();
    fix.atomic().cmd("DEL").arg(log).ignore();
    for seq in [17u64, 18] {
        fix.cmd("XADD").arg(log).arg(format!("{seq}-1")).arg("f").arg(format!("ev{seq}")).arg("a").arg(0).ignore();
    }
    let _: () = fix.query_async(&mut c).await.expect("log");
    {
        let mut cursor = room.cursor.lock().await;
        fanout.drain_locked(&room, &mut cursor).await;
        assert_eq!(*seen.0.lock(), vec![17, 18]);
        // A duplicate (the node's own copy, or pub/sub's) is dropped.
        fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(18))).await;
    }
    assert_eq!(*seen.0.lock(), vec![17, 18]);
}

/// A failover that lost writes: the new master logs other events at the seqs this node handed.
/// Another event at a handed seq, or a room behind the cursor after the subscriber reconnected,
/// holds the room (nothing more handed, its events queued) for the tick's failover check;
/// before, the reused seqs were dropped as duplicates and the next ones handed: a silent hole.
#[tokio::test]
async fn another_event_at_a_handed_seq_holds_the_room() {
    let (_redis, _, seen, fanout, room) = setup().await;
    *room.cursor.lock().await = Cursor::new("e1".into(), [15, 0]);
    let mut cursor = room.cursor.lock().await;
    fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(16))).await;
    assert_eq!(*seen.0.lock(), vec![16]);
    // The same event again (pub/sub's copy): a duplicate, dropped, nothing suspected.
    fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(16))).await;
    assert!(!cursor.rewound && fanout.take_suspects().is_empty());
    // The new master's own event 16.
    let mut other = ev(16);
    other.frame = Frame::from("another event".to_string());
    fanout.apply_or_queue(&room, &mut cursor, Msg::Event(other)).await;
    assert!(cursor.rewound, "another event at a handed seq");
    assert_eq!(fanout.take_suspects(), vec![(1, "r".to_string())]);
    fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(17))).await;
    assert_eq!(*seen.0.lock(), vec![16], "nothing handed while the room is held");
    // The check found it as the node knows it after all: handed on, in order.
    fanout.cleared(&mut cursor);
    fanout.drain_locked(&room, &mut cursor).await;
    assert_eq!(*seen.0.lock(), vec![16, 17]);
}

#[tokio::test]
async fn a_room_behind_the_cursor_after_the_subscriber_reconnected_is_held() {
    let (_redis, conn, seen, fanout, room) = setup().await;
    let mut c = conn.clone();
    let meta = super::fanout::meta_key(1, "r");
    let _: () = redis::cmd("HSET")
        .arg(&meta)
        .arg("epoch")
        .arg("e1")
        .arg("rseq")
        .arg(16)
        .arg("useq")
        .arg(0)
        .query_async(&mut c)
        .await
        .expect("meta");
    *room.cursor.lock().await = Cursor::new("e1".into(), [16, 0]);
    let mut cursor = room.cursor.lock().await;
    // Same connection: no question asked.
    fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(17))).await;
    assert_eq!(*seen.0.lock(), vec![17]);
    // The subscriber reconnected to a master whose room is at 12 (writes 13..17 lost).
    fanout.new_connection();
    let _: () = redis::cmd("HSET").arg(&meta).arg("rseq").arg(12).query_async(&mut c).await.expect("meta");
    fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(18))).await;
    assert!(cursor.rewound, "a room behind the cursor is held");
    assert_eq!(*seen.0.lock(), vec![17]);
    assert_eq!(fanout.take_suspects(), vec![(1, "r".to_string())]);
}

/// The node whose request made a departure hears it twice: in the script's answer, then by
/// pub/sub. A client that logs out and at once in again can be in the room again before the
/// pub/sub copy is drained (late under load); that copy must not take the new membership out
/// of the hub, or the member silently gets nothing more.
#[tokio::test]
async fn a_departure_heard_again_after_the_member_came_back_does_not_end_its_stay() {
    let (_redis, conn) = redis().await;
    let hub = Arc::new(crate::hub::Hub::new());
    let (outbox, mut reader) = crate::outbox::Outbox::new(1 << 20, 1);
    hub.register(outbox);
    assert!(hub.bind(10, 1));
    let fanout = Arc::new(Fanout::new(hub.clone(), conn));
    let room = fanout.room(1, "r");
    let mut cursor = room.cursor.lock().await;
    *cursor = Cursor::new("e1".into(), [3, 0]);
    let at = Seqs { room: Some(3), users: Some(0), direct: None };
    let left = |ord| Msg::Left { key: 10, at: [3, 0], epoch: "e1".into(), ord };
    hub.joined(1, "r", 10, true, at, Joining::of("e1", 4));
    // Logout: the script's answer.
    fanout.apply_or_queue(&room, &mut cursor, left(4)).await;
    assert!(!hub.has_members(1, "r"));
    // Login again, then the pub/sub copy of the logout.
    hub.joined(1, "r", 10, true, at, Joining::of("e1", 9));
    fanout.apply_or_queue(&room, &mut cursor, left(4)).await;
    fanout.apply_or_queue(&room, &mut cursor, Msg::Event(ev(4))).await;
    match reader.try_next() {
        Some(crate::outbox::Out::Text(t, _)) => assert_eq!(t.as_str(), "ev4"),
        other => panic!("the member back in the room gets the next event, not {other:?}"),
    }
    // Its own departure does end it.
    fanout.apply_or_queue(&room, &mut cursor, left(9)).await;
    assert!(!hub.has_members(1, "r"));
}
