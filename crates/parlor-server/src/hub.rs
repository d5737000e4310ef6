//! The node-local hub: this node's connections, and which of its sessions are in which room.
//!
//! It owns no shared state: it delivers what the engine publishes ([`Deliver`]). A room event is
//! one [`Frame`] handed (a reference-counted clone) to each local member's outbox. Each member
//! record holds its connection's outbox, so that the fan-out — the hottest loop of the server —
//! touches only the room's member list.
//!
//! Each member also holds the last `seq` it has of each channel of the room (from its login
//! `ok`, its resume, and every event since). An event at or below it is a duplicate and is not
//! sent again; this is what makes delivery exactly-once when an engine can deliver an event
//! twice (the Redis engine: its own copy and the one pub/sub brings, or a gap fill). An event
//! beyond the next one is a hole that no engine should ever make: rather than hand it over past
//! the hole, the member's connection is cut (4010) and its client resumes, which replays what it
//! missed from the logs (protocol §6: every event of every channel, exactly once).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;
use parlor_protocol::{Channel, Seqs};

use crate::engine::{ConnId, Deliver, Joining, SessionKey};
use crate::frame::Frame;
use crate::outbox::{close_code, Outbox};

/// One local member of a room.
#[derive(Debug)]
struct Member {
    key: SessionKey,
    /// Whether it gets the `users` channel.
    notify: bool,
    /// Its session's connection (kept in step by `bind` / `detach`).
    conn: Option<Outbox>,
    /// The last seq it has of the `room` and `users` channels.
    at: [u64; 2],
    /// Also send it its own events (see [`Deliver::echo_own`]).
    echo: bool,
    /// Which membership of the room this is: an older one's departure heard late leaves it.
    joining: Joining,
}

/// A session this node serves.
#[derive(Debug, Default)]
struct Local {
    app: u32,
    conn: Option<Outbox>,
    /// The rooms it is in, by app and id.
    rooms: Vec<(u32, Box<str>)>,
    /// The last membership of each room it left here: a join of that membership or an older
    /// one, applied late (a resume's, whose script ran before the departure's; sim seed 35130),
    /// would put it back into a room it has left.
    ended: Vec<(u32, Box<str>, Joining)>,
}

#[derive(Debug, Default)]
struct State {
    /// Open connections, bound to a session or not yet.
    conns: HashMap<ConnId, Outbox>,
    sessions: HashMap<SessionKey, Local>,
    /// Local members by app and room id (two levels, so that a lookup borrows the id).
    rooms: HashMap<u32, HashMap<Box<str>, Vec<Member>>>,
}

impl State {
    fn members(&mut self, app: u32, room: &str) -> Option<&mut Vec<Member>> {
        self.rooms.get_mut(&app)?.get_mut(room)
    }

    /// Attach `conn` (None: detach) to `key`'s session and its member records.
    fn set_conn(&mut self, key: SessionKey, conn: Option<Outbox>) -> Option<Outbox> {
        let State { sessions, rooms, .. } = self;
        let local = sessions.get_mut(&key)?;
        for (app, room) in &local.rooms {
            if let Some(m) =
                rooms.get_mut(app).and_then(|r| r.get_mut(room)).and_then(|ms| ms.iter_mut().find(|m| m.key == key))
            {
                m.conn = conn.clone();
            }
        }
        std::mem::replace(&mut local.conn, conn)
    }

    /// Forget a session that has neither a connection nor a room here.
    fn forget_if_idle(&mut self, key: SessionKey) {
        if self.sessions.get(&key).is_some_and(|l| l.conn.is_none() && l.rooms.is_empty()) {
            self.sessions.remove(&key);
        }
    }
}

/// This node's connections and local room members.
#[derive(Debug, Default)]
pub struct Hub {
    state: Mutex<State>,
    next_conn: AtomicU64,
    /// Every connection task, counted from its start to its end (a token each, whatever its
    /// transport), so that a drain can wait for the last ([`crate::drain`]).
    pub tasks: tokio_util::task::TaskTracker,
}

fn channel_index(ch: Channel) -> Option<usize> {
    match ch {
        Channel::Room => Some(0),
        Channel::Users => Some(1),
        Channel::Direct => None,
    }
}

impl Hub {
    /// An empty hub.
    pub fn new() -> Hub {
        Hub::default()
    }

    /// A new connection id.
    pub fn next_conn_id(&self) -> ConnId {
        self.next_conn.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A new connection (not yet bound to a session).
    pub fn register(&self, conn: Outbox) {
        self.state.lock().conns.insert(conn.id(), conn);
    }

    /// Connection `conn` ended; if it was `key`'s, the session stays (invisible to the others)
    /// without a connection until it resumes or goes offline.
    pub fn detach(&self, key: Option<SessionKey>, conn: ConnId) {
        let mut st = self.state.lock();
        st.conns.remove(&conn);
        if let Some(key) = key {
            if st.sessions.get(&key).and_then(|l| l.conn.as_ref()).map(Outbox::id) == Some(conn) {
                st.set_conn(key, None);
                st.forget_if_idle(key);
            }
        }
    }

    /// Sessions of this node with a connection.
    pub fn connected(&self) -> usize {
        self.state.lock().sessions.values().filter(|l| l.conn.is_some()).count()
    }

    /// Sessions of `app` on this node with a connection (the admin API's stats).
    pub fn connected_of(&self, app: u32) -> usize {
        self.state.lock().sessions.values().filter(|l| l.app == app && l.conn.is_some()).count()
    }

    /// Close every connection with 4010 (the server is shutting down; clients reconnect).
    /// Returns how many were not closing already.
    pub fn shutdown(&self) -> usize {
        let st = self.state.lock();
        let open = st.conns.values().filter(|c| !c.is_closed()).count();
        for c in st.conns.values() {
            c.close(close_code::SHUTDOWN, "server shutting down");
        }
        open
    }

    /// The ids of the open connections (a snapshot, for a drain's batches).
    pub fn conn_ids(&self) -> Vec<ConnId> {
        self.state.lock().conns.keys().copied().collect()
    }

    /// Close connection `id` with `code` after what is queued for it; false when it is gone
    /// or closing already.
    pub fn close_conn(&self, id: ConnId, code: u16, reason: &str) -> bool {
        match self.state.lock().conns.get(&id) {
            Some(c) if !c.is_closed() => {
                c.close(code, reason);
                true
            }
            _ => false,
        }
    }
}

impl Deliver for Hub {
    /// Drop every connection of `app` at once, ahead of what is queued, with 4010: the sessions
    /// stay, and their clients resume. Returns how many were dropped.
    fn drop_connections(&self, app: u32) -> usize {
        let st = self.state.lock();
        let mut dropped = 0;
        for l in st.sessions.values().filter(|l| l.app == app) {
            if let Some(c) = &l.conn {
                c.abort(close_code::SHUTDOWN, "connections dropped by the server");
                dropped += 1;
            }
        }
        dropped
    }

    fn bind(&self, key: SessionKey, conn: ConnId) -> bool {
        self.bind_with(key, conn, Vec::new())
    }

    fn connected(&self) -> Vec<(u32, SessionKey)> {
        let st = self.state.lock();
        st.sessions.iter().filter(|(_, l)| l.conn.is_some()).map(|(k, l)| (l.app, *k)).collect()
    }

    fn room_event(
        &self,
        app: u32,
        room: &str,
        ch: Option<Channel>,
        seq: u64,
        frame: &Frame,
        author: Option<SessionKey>,
    ) {
        let mut st = self.state.lock();
        let Some(members) = st.members(app, room) else {
            return;
        };
        let index = ch.and_then(channel_index);
        // Dropped at the end, after every recipient holds its share.
        let clock = crate::telemetry::FanoutClock::current();
        let mut delivered = 0u64;
        for m in members.iter_mut() {
            if let Some(i) = index {
                if seq <= m.at[i] {
                    continue;
                }
                let hole = m.at[i] != 0 && seq > m.at[i] + 1;
                m.at[i] = seq;
                if hole {
                    if let Some(c) = &m.conn {
                        tracing::warn!(room, session = m.key, seq, "events missed: the member resumes");
                        metrics::counter!("parlor_delivery_holes_total").increment(1);
                        c.abort(close_code::SHUTDOWN, "events missed: resume to catch up");
                    }
                    continue;
                }
            }
            if (Some(m.key) == author && !m.echo) || (ch == Some(Channel::Users) && !m.notify) {
                continue;
            }
            if let Some(c) = &m.conn {
                c.send_timed(frame.clone().into_ws(), clock.clone());
                delivered += 1;
            }
        }
        metrics::counter!("parlor_deliveries_total").increment(delivered);
    }

    fn bind_with(&self, key: SessionKey, conn: ConnId, frames: Vec<Frame>) -> bool {
        let mut st = self.state.lock();
        let Some(outbox) = st.conns.get(&conn).cloned() else {
            return false;
        };
        st.sessions.entry(key).or_default();
        if let Some(old) = st.set_conn(key, Some(outbox.clone())) {
            if old.id() != conn {
                old.abort(close_code::GOING_AWAY, "replaced by a resume");
            }
        }
        // Under the lock: no event reaches the connection before these.
        for f in frames {
            crate::telemetry::to_session(f.as_str());
            outbox.send_replay(f.into_ws());
        }
        true
    }

    fn echo_own(&self, key: SessionKey, app: u32, room: &str, on: bool) {
        if let Some(m) = self.state.lock().members(app, room).and_then(|ms| ms.iter_mut().find(|m| m.key == key)) {
            m.echo = on;
        }
    }

    fn rooms_of(&self, key: SessionKey) -> Vec<(u32, String)> {
        let st = self.state.lock();
        st.sessions.get(&key).map(|l| l.rooms.iter().map(|(a, r)| (*a, r.to_string())).collect()).unwrap_or_default()
    }

    fn has_members(&self, app: u32, room: &str) -> bool {
        self.state.lock().rooms.get(&app).is_some_and(|r| r.contains_key(room))
    }

    fn to_session(&self, key: SessionKey, frame: Frame) {
        crate::telemetry::to_session(frame.as_str());
        let st = self.state.lock();
        if let Some(c) = st.sessions.get(&key).and_then(|l| l.conn.as_ref()) {
            c.send(frame.into_ws());
        }
    }

    fn replay(&self, key: SessionKey, frame: Frame) {
        crate::telemetry::to_session(frame.as_str());
        let st = self.state.lock();
        if let Some(c) = st.sessions.get(&key).and_then(|l| l.conn.as_ref()) {
            c.send_replay(frame.into_ws());
        }
    }

    fn joined(&self, app: u32, room: &str, key: SessionKey, notify: bool, at: Seqs, joining: Joining) {
        let mut st = self.state.lock();
        let local = st.sessions.entry(key).or_default();
        local.app = app;
        let gone = |(a, r, _): &(u32, Box<str>, Joining)| *a == app && &**r == room;
        if local.ended.iter().any(|e| gone(e) && joining.ended_by(&e.2)) {
            return;
        }
        local.ended.retain(|e| !gone(e));
        if !local.rooms.iter().any(|(a, r)| *a == app && &**r == room) {
            local.rooms.push((app, room.into()));
        }
        let conn = local.conn.clone();
        let members = st.rooms.entry(app).or_default().entry(room.into()).or_default();
        members.retain(|m| m.key != key);
        let at = [at.room.unwrap_or(0), at.users.unwrap_or(0)];
        members.push(Member { key, notify, conn, at, echo: false, joining });
    }

    fn left(&self, app: u32, room: &str, key: SessionKey, ended: Joining) {
        let mut st = self.state.lock();
        if let Some(rooms) = st.rooms.get_mut(&app) {
            if let Some(members) = rooms.get_mut(room) {
                if let Some(i) = members.iter().position(|m| m.key == key) {
                    if !ended.ends(&members[i].joining) {
                        // A late copy of an older membership's departure: this one stays.
                        return;
                    }
                    members.swap_remove(i);
                }
                if members.is_empty() {
                    rooms.remove(room);
                }
            }
            if rooms.is_empty() {
                st.rooms.remove(&app);
            }
        }
        if let Some(l) = st.sessions.get_mut(&key) {
            l.rooms.retain(|(a, r)| !(*a == app && &**r == room));
            l.ended.retain(|(a, r, _)| !(*a == app && &**r == room));
            l.ended.push((app, room.into(), ended));
        }
        st.forget_if_idle(key);
    }

    fn close(&self, key: SessionKey, conn: Option<ConnId>, code: u16, reason: &str, abort: bool) {
        let mut st = self.state.lock();
        let current = st.sessions.get(&key).and_then(|l| l.conn.as_ref()).map(Outbox::id);
        if conn.is_some() && conn != current {
            return;
        }
        if abort {
            if let Some(c) = st.set_conn(key, None) {
                c.abort(code, reason);
            }
            st.forget_if_idle(key);
        } else if let Some(c) = st.sessions.get(&key).and_then(|l| l.conn.as_ref()) {
            c.close(code, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbox::Out;

    fn text(out: Option<Out>) -> String {
        match out {
            Some(Out::Text(t, _)) => t.to_string(),
            other => format!("{other:?}"),
        }
    }

    /// A member handed seq 5 after seq 3 does not get 5: its connection is cut (4010) so that
    /// its client resumes and is replayed 4 and 5. The other member, which had 4, gets 5.
    #[tokio::test]
    async fn an_event_past_a_hole_cuts_the_member_instead_of_being_delivered() {
        let hub = Hub::new();
        let (a, mut ra) = Outbox::new(1 << 20, 1);
        let (b, mut rb) = Outbox::new(1 << 20, 2);
        hub.register(a);
        hub.register(b);
        assert!(hub.bind(10, 1) && hub.bind(20, 2));
        let at = |room| Seqs { room: Some(room), users: Some(1), direct: None };
        hub.joined(7, "r", 10, true, at(3), Joining::default());
        hub.joined(7, "r", 20, true, at(4), Joining::default());
        let ev = |seq: u64| Frame::from(format!("ev{seq}"));
        hub.room_event(7, "r", Some(Channel::Room), 5, &ev(5), None);
        assert_eq!(text(rb.try_next()), "ev5");
        assert!(matches!(ra.try_next(), Some(Out::Close(4010, _))), "the member behind the hole is cut");
        // In order, nothing is cut: the next event reaches the member that had every one.
        hub.room_event(7, "r", Some(Channel::Room), 6, &ev(6), None);
        assert_eq!(text(rb.try_next()), "ev6");
        assert!(rb.try_next().is_none());
    }

    /// A departure heard late (the Redis engine hears its own twice) leaves alone the newer
    /// membership of the session that entered the room again; its own membership's ends it.
    #[tokio::test]
    async fn a_late_copy_of_an_older_departure_does_not_end_a_newer_membership() {
        let hub = Hub::new();
        let (a, mut ra) = Outbox::new(1 << 20, 1);
        hub.register(a);
        assert!(hub.bind(10, 1));
        let at = Seqs { room: Some(3), users: Some(1), direct: None };
        let (first, again) = (Joining::of("e1", 4), Joining::of("e1", 9));
        hub.joined(7, "r", 10, true, at, first);
        hub.left(7, "r", 10, first);
        hub.joined(7, "r", 10, true, at, again);
        hub.left(7, "r", 10, first);
        assert!(hub.has_members(7, "r"), "still in the room");
        hub.room_event(7, "r", Some(Channel::Room), 4, &Frame::from("ev4".to_string()), None);
        assert_eq!(text(ra.try_next()), "ev4");
        hub.left(7, "r", 10, again);
        assert!(!hub.has_members(7, "r"));
        // A departure of another life of the room always applies.
        hub.joined(7, "r", 10, true, at, again);
        hub.left(7, "r", 10, Joining::of("e0", 1));
        assert!(!hub.has_members(7, "r"));
    }

    /// A join applied after the departure of the same membership (a resume whose script ran
    /// before a switch's, its items applied after; sim seed 35130) does not put the session back
    /// into the room; a later join of the room does. The memory engine's joins name no
    /// membership and always apply.
    #[tokio::test]
    async fn a_late_join_of_a_membership_already_ended_is_ignored() {
        let hub = Hub::new();
        let (a, mut ra) = Outbox::new(1 << 20, 1);
        hub.register(a);
        assert!(hub.bind(10, 1));
        let at = Seqs { room: Some(3), users: Some(1), direct: None };
        let (first, again) = (Joining::of("e1", 2), Joining::of("e1", 5));
        hub.joined(7, "r", 10, true, at, first);
        hub.left(7, "r", 10, first);
        hub.joined(7, "r", 10, true, at, first);
        assert!(!hub.has_members(7, "r"), "the ended membership stays ended");
        hub.room_event(7, "r", Some(Channel::Room), 4, &Frame::from("ev4".to_string()), None);
        assert!(ra.try_next().is_none(), "nothing of a room left");
        hub.joined(7, "r", 10, true, at, again);
        assert!(hub.has_members(7, "r"), "a later login of the room");
        hub.left(7, "r", 10, again);
        hub.joined(7, "r", 10, true, at, Joining::of("e2", 1));
        assert!(hub.has_members(7, "r"), "a new life of the room");
        hub.left(7, "r", 10, Joining::default());
        hub.joined(7, "r", 10, true, at, Joining::default());
        assert!(hub.has_members(7, "r"), "the memory engine's join");
    }
}
