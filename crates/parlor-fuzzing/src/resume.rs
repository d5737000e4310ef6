//! The `resume_ack` target: a `resume` frame, its `ack` from the fuzzer, decoded by the real
//! decoder and handled by a real memory-engine [`Node`] (the code `parlor serve` runs), after a
//! session that was in rooms with traffic went offline.
//!
//! Input: one selector byte, then the `ack` JSON text. In the ack text `%1`, `%2`, `%3` stand
//! for the current epochs of rooms r1, r2, r3 (random per run, so no input could name them).
//!
//! Checked, beyond "no panic":
//! - a wrong resume token or an unknown session is refused, and nothing is sent;
//! - an accepted resume sends `resumed` first and `resume_done` last, once each, every frame in
//!   between a decodable `event` or `snapshot`;
//! - `resumed` names every room the session is in, each `replay` or `snapshot`, and the room
//!   it was kicked from while away (and still acks) as `kicked:1002055`;
//! - a replayed room's events are above the ack, contiguous and in `seq` order per channel; a
//!   snapshot room gets exactly one `snapshot` and no events; direct events are in `seq` order;
//! - a resume retried with the token it used (its answer lost) gets the same session and new
//!   token; once a frame on the resumed connection confirmed the new one, the old is refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parlor_protocol::{
    decode_client_frame, decode_server_frame, token, Channel, ClientFrame, ResumeOutcome, ServerFrame, Welcome,
};
use parlor_server::engine::{ConnId, SessionKey};
use parlor_server::outbox::{Out, Outbox, OutboxReader};
use parlor_server::rules::SessionCtx;
use parlor_server::{Node, ServerConfig};
use tokio::time::Instant;

use crate::input::Input;

const SECRET: &str = "fuzz-secret";

/// One connection of the node, as `ws::serve` would hold it.
pub(crate) struct Conn {
    pub(crate) id: ConnId,
    pub(crate) reader: OutboxReader,
}

impl Conn {
    pub(crate) fn open(node: &Node) -> Conn {
        let id = node.hub.next_conn_id();
        let (outbox, reader) = Outbox::new(node.config.outbound_limit, id);
        node.hub.register(outbox);
        Conn { id, reader }
    }

    /// Every text frame queued so far, decoded (the server must send only decodable frames).
    pub(crate) fn drain(&mut self) -> Vec<ServerFrame> {
        let mut frames = Vec::new();
        while let Some(out) = self.reader.try_next() {
            if let Out::Text(t, _) | Out::Replay(t) = out {
                frames.push(decode_server_frame(t.as_str()).expect("the server sends only decodable frames"));
            }
        }
        frames
    }
}

/// A session on a connection.
pub(crate) struct Session {
    pub(crate) key: SessionKey,
    pub(crate) ctx: SessionCtx,
    pub(crate) conn: Conn,
}

impl Session {
    pub(crate) async fn hello(node: &Node, user: &str, now: Instant) -> (Session, Welcome) {
        let mut conn = Conn::open(node);
        let wall_s = node.clock.wall_s(now);
        let t = token::mint(SECRET.as_bytes(), &token::Claims::new(1, user, wall_s, 86_400, "n"));
        let hello = format!(r#"{{"t":"hello","v":1,"app_id":1,"user":{{"id":"{user}"}},"token":"{t}"}}"#);
        let Ok(ClientFrame::Hello(h)) = decode_client_frame(&hello) else { unreachable!("a hello decodes") };
        let (key, ctx) = node.hello(h, conn.id, now).await.expect("a valid hello is welcomed");
        let welcome = match conn.drain().into_iter().next() {
            Some(ServerFrame::Welcome(w)) => w,
            other => panic!("hello answered with {other:?}"),
        };
        (Session { key, ctx, conn }, welcome)
    }

    /// Send one request (JSON text) and return what the server queued for this session.
    pub(crate) async fn send(&mut self, node: &Node, text: &str, now: Instant) -> Vec<ServerFrame> {
        let frame = decode_client_frame(text).expect("the target's own frames decode");
        node.frame(self.key, &mut self.ctx, frame, now).await;
        self.conn.drain()
    }
}

/// The room epochs learnt from login answers.
fn epoch_of(frames: &[ServerFrame]) -> String {
    frames
        .iter()
        .find_map(|f| match f {
            ServerFrame::Ok(ok) => ok.room_session.clone(),
            _ => None,
        })
        .expect("a login is answered with the room's state")
}

/// See the module docs.
pub fn resume_ack(data: &[u8]) {
    let mut input = Input::new(data);
    let sel = input.byte();
    let Ok(ack_text) = std::str::from_utf8(input.rest()) else {
        return;
    };
    crate::runtime::block_on(run(sel, ack_text));
}

async fn run(sel: u8, ack_text: &str) {
    let mut config = ServerConfig::for_tests(1, SECRET);
    // A short log, trimmed by the tick below: some acks fall in the gap and get a snapshot.
    config.log_len = 3;
    config.log_age = Duration::ZERO;
    let node = Arc::new(Node::memory(config));
    let now = Instant::now();

    let (mut a, welcome) = Session::hello(&node, "a", now).await;
    let (mut b, _) = Session::hello(&node, "b", now).await;
    let mut epochs = Vec::new();
    for (i, room) in ["r1", "r2", "r3"].into_iter().enumerate() {
        let frames = a.send(&node, &format!(r#"{{"t":"login","id":{},"room":"{room}"}}"#, i + 1), now).await;
        epochs.push(epoch_of(&frames));
    }
    a.send(&node, r#"{"t":"publish","id":4,"room":"r1","stream":"s1"}"#, now).await;
    b.send(&node, r#"{"t":"login","id":1,"room":"r1"}"#, now).await;
    // Traffic while `a` is still there, then `a` goes offline, then more traffic and changes.
    let messages = u64::from(sel & 7);
    let mut id = 2;
    for _ in 0..messages {
        b.send(&node, &format!(r#"{{"t":"broadcast","id":{id},"room":"r1","message":"m"}}"#), now).await;
        id += 1;
    }
    b.send(&node, &format!(r#"{{"t":"command","id":{id},"room":"r1","to":["a"],"command":"c"}}"#), now).await;
    id += 1;
    node.hub.detach(Some(a.key), a.conn.id);
    a.conn.drain();
    b.send(&node, &format!(r#"{{"t":"room_extra","id":{id},"room":"r1","key":"k","value":"v"}}"#), now).await;
    id += 1;
    b.send(&node, &format!(r#"{{"t":"login","id":{id},"room":"r3"}}"#), now).await;
    let kicked = sel & 8 != 0;
    if kicked {
        assert!(node.admin_kick(1, "r2", "a", "", now).await.expect("memory"), "a is in r2");
    }
    node.tick(now + Duration::from_millis(1)).await;

    let mut ack = ack_text.to_string();
    for (i, epoch) in epochs.iter().enumerate() {
        ack = ack.replace(&format!("%{}", i + 1), epoch);
    }
    let (session, resume_token) = match (sel >> 4) & 3 {
        1 => (welcome.session.clone(), format!("{}x", welcome.resume_token)),
        2 => ("no-such-session".to_string(), welcome.resume_token.clone()),
        _ => (welcome.session.clone(), welcome.resume_token.clone()),
    };
    let text = format!(
        r#"{{"t":"resume","v":1,"session":{},"resume_token":{},"ack":{ack}}}"#,
        serde_json::Value::from(session.as_str()),
        serde_json::Value::from(resume_token.as_str()),
    );
    let Ok(ClientFrame::Resume(resume)) = decode_client_frame(&text) else {
        return;
    };
    let genuine = resume.session == welcome.session && resume.resume_token == welcome.resume_token;
    let mut c = Conn::open(&node);
    let result = node.resume(resume.clone(), c.id, now).await;
    let frames = c.drain();
    if !genuine {
        assert!(result.is_err(), "a wrong resume token or session is refused");
        assert!(frames.is_empty(), "a refused resume sends nothing: {frames:?}");
        return;
    }
    let (key, ctx) = result.expect("the genuine resume token resumes");
    check_replay(&frames, &resume.ack, kicked);

    // Its answer lost, the same resume again gets the same session and the same new token.
    let mut d = Conn::open(&node);
    let (again_key, mut again_ctx) = node.resume(resume.clone(), d.id, now).await.expect("a retried resume resumes");
    assert_eq!(again_key, key, "a retried resume resumes the same session");
    let token_of = |frames: &[ServerFrame]| match frames.first() {
        Some(ServerFrame::Resumed(r)) => r.resume_token.clone(),
        other => panic!("a resume is answered with resumed first: {other:?}"),
    };
    let retried = d.drain();
    assert_eq!(token_of(&retried), token_of(&frames), "a retried resume carries the same new token");
    check_replay(&retried, &resume.ack, kicked);
    // The same ack in a ping (the other place an ack arrives): the first frame after `resumed`,
    // it shows the client holds the new token.
    if let Ok(ping @ ClientFrame::Ping(_)) = decode_client_frame(&format!(r#"{{"t":"ping","ack":{ack}}}"#)) {
        node.frame(key, &mut again_ctx, ping, now).await;
        assert!(d.drain().iter().any(|f| matches!(f, ServerFrame::Pong(_))), "a ping is answered with a pong");
        // The token just used is spent.
        let mut e = Conn::open(&node);
        assert!(node.resume(resume.clone(), e.id, now).await.is_err(), "a used resume token is refused");
        assert!(e.drain().is_empty());
    }
    drop((c, ctx));
}

fn check_replay(frames: &[ServerFrame], ack: &parlor_protocol::Ack, kicked: bool) {
    let Some((ServerFrame::Resumed(resumed), rest)) = frames.split_first() else {
        panic!("a resume is answered with resumed first: {frames:?}");
    };
    let Some((ServerFrame::ResumeDone(_), between)) = rest.split_last() else {
        panic!("resume_done comes last: {frames:?}");
    };
    for room in ["r1", "r3"].into_iter().chain((!kicked).then_some("r2")) {
        let outcome = resumed.rooms.get(room);
        assert!(
            matches!(outcome, Some(ResumeOutcome::Replay | ResumeOutcome::Snapshot)),
            "{room}, where the session is, comes back as a replay or a snapshot, not {outcome:?}"
        );
    }
    // A kick while away is told for a room the client still acks (it knows of no other).
    if kicked && ack.rooms.contains_key("r2") {
        assert_eq!(resumed.rooms.get("r2"), Some(&ResumeOutcome::Kicked(1002055)), "the kick while away is told");
    }
    let mut last: BTreeMap<(String, Channel), u64> = BTreeMap::new();
    let mut snapshots: BTreeMap<&str, usize> = BTreeMap::new();
    for f in between {
        match f {
            ServerFrame::Event(e) => {
                let (Some(ch), Some(seq)) = (e.ch, e.seq) else {
                    panic!("a replayed event has a channel and a seq: {e:?}");
                };
                let previous = last.insert((e.room.clone(), ch), seq);
                if ch == Channel::Direct {
                    assert!(previous.is_none_or(|p| seq > p), "direct events in seq order: {frames:?}");
                    continue;
                }
                let outcome = resumed.rooms.get(&e.room);
                assert_eq!(outcome, Some(&ResumeOutcome::Replay), "events only for replayed rooms: {e:?}");
                let acked = ack.rooms.get(&e.room).map(|a| if ch == Channel::Room { a.room } else { a.users });
                let after = previous.or(acked).unwrap_or(0);
                assert_eq!(Some(seq), after.checked_add(1), "replay of {} {ch:?} follows the ack: {frames:?}", e.room);
            }
            ServerFrame::Snapshot(s) => {
                assert_eq!(resumed.rooms.get(&s.room), Some(&ResumeOutcome::Snapshot), "snapshot for {}", s.room);
                *snapshots.entry(s.room.as_str()).or_default() += 1;
            }
            other => panic!("only events and snapshots between resumed and resume_done, not {other:?}"),
        }
    }
    for (room, outcome) in &resumed.rooms {
        if *outcome == ResumeOutcome::Snapshot {
            assert_eq!(snapshots.get(room.as_str()), Some(&1), "one snapshot for {room}: {frames:?}");
        }
    }
}
