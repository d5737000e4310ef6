//! A property test of the core against a small fake server and a reference model of §7.
//!
//! Random sequences of app calls, connection opens / failures, server answers (some lost),
//! other users' events (some delivered twice), kicks, the session going offline, rooms being
//! created again, and time passing. After every step:
//! - each room's reported state sequence is one the §7 model allows (RECONNECT_FAILED, like
//!   every end state, is left only by a new login);
//! - the app's picture built from updates alone never adds a user it has or deletes one it has
//!   not, and no message is reported twice;
//! - whenever a room is LOGINED / RECONNECTED and the server has the session attached, the app's
//!   picture of the room's users equals the server's;
//! - no connection is asked for when no room is alive.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use parlor_client_core::{AppEvent, Command, Config, Core, Output, RoomStateReason, UpdateType};
use parlor_protocol::{ClientFrame, RoomConfig, User};
use proptest::prelude::*;
use serde_json::{json, Value};

use RoomStateReason::*;

const ROOMS: [&str; 3] = ["r0", "r1", "r2"];
const ME: &str = "me";

#[derive(Debug, Clone)]
enum Action {
    Login(usize),
    Logout(usize),
    Switch(usize, usize),
    Broadcast(usize),
    Open,
    Fail,
    Serve { drop_reply: bool, variant: u8 },
    OtherJoin(usize),
    OtherLeave(usize),
    OtherMsg(usize),
    Dup,
    Kick(usize),
    Offline,
    Recreate(usize),
    Advance(u64),
}

fn action() -> impl Strategy<Value = Action> {
    let r = 0..ROOMS.len();
    prop_oneof![
        3 => r.clone().prop_map(Action::Login),
        1 => r.clone().prop_map(Action::Logout),
        1 => (r.clone(), r.clone()).prop_map(|(a, b)| Action::Switch(a, b)),
        1 => r.clone().prop_map(Action::Broadcast),
        3 => Just(Action::Open),
        2 => Just(Action::Fail),
        8 => (prop::bool::weighted(0.1), any::<u8>()).prop_map(|(d, v)| Action::Serve { drop_reply: d, variant: v }),
        2 => r.clone().prop_map(Action::OtherJoin),
        1 => r.clone().prop_map(Action::OtherLeave),
        1 => r.clone().prop_map(Action::OtherMsg),
        1 => Just(Action::Dup),
        1 => r.clone().prop_map(Action::Kick),
        1 => Just(Action::Offline),
        1 => r.clone().prop_map(Action::Recreate),
        3 => prop::sample::select(vec![1u64, 250, 1_000, 10_000, 30_000, 100_000, 300_000]).prop_map(Action::Advance),
    ]
}

#[derive(Debug, Default)]
struct SrvRoom {
    epoch: u32,
    users_seq: u64,
    room_seq: u64,
    members: BTreeSet<String>,
    me_in: bool,
    /// (channel, seq, frame, authored by the session)
    log: Vec<(&'static str, u64, Value, bool)>,
}

#[derive(Debug, Default)]
struct Sess {
    id: u32,
    rooms: BTreeSet<String>,
    kicked: BTreeSet<String>,
    offline: bool,
    answers: BTreeMap<u64, Vec<Value>>,
}

#[derive(Debug, PartialEq)]
enum SrvConn {
    None,
    Pending,
    Open { attached: bool },
}

#[derive(Debug)]
struct Srv {
    rooms: BTreeMap<String, SrvRoom>,
    session: Option<Sess>,
    next_session: u32,
    conn: SrvConn,
    inbox: VecDeque<ClientFrame>,
    last_event: Option<Value>,
    next_other: u32,
    next_msg: u32,
}

#[derive(Default)]
struct Model {
    state: BTreeMap<String, RoomStateReason>,
    users: BTreeMap<String, BTreeSet<String>>,
    messages: BTreeSet<String>,
    results: BTreeSet<u64>,
}

fn user(id: &str) -> Value {
    json!({"id": id, "name": ""})
}

impl Srv {
    fn attached(&self) -> bool {
        self.conn == SrvConn::Open { attached: true }
    }

    fn in_room(&self, r: &str) -> bool {
        self.session.as_ref().is_some_and(|s| s.rooms.contains(r) && !s.offline)
            && self.rooms.get(r).is_some_and(|x| x.me_in)
    }

    fn room(&mut self, r: &str) -> &mut SrvRoom {
        let next = self.rooms.len() as u32 * 100;
        self.rooms.entry(r.to_string()).or_insert_with(|| SrvRoom { epoch: next, ..Default::default() })
    }

    /// Log an event; returns its frame.
    fn log(&mut self, r: &str, ch: &'static str, kind: &str, body: Value, mine: bool) -> Value {
        let room = self.room(r);
        let seq = if ch == "users" {
            room.users_seq += 1;
            room.users_seq
        } else {
            room.room_seq += 1;
            room.room_seq
        };
        let mut f = json!({"t": "event", "room": r, "ch": ch, "seq": seq, "kind": kind});
        if let (Some(o), Some(b)) = (f.as_object_mut(), body.as_object()) {
            for (k, v) in b {
                o.insert(k.clone(), v.clone());
            }
        }
        room.log.push((ch, seq, f.clone(), mine));
        f
    }

    fn leave(&mut self, r: &str) -> u64 {
        if let Some(room) = self.rooms.get_mut(r) {
            room.me_in = false;
        }
        self.log(r, "users", "user_delete", json!({"users": [user(ME)]}), true);
        self.rooms[r].users_seq
    }

    fn join_state(&mut self, r: &str, id: u64) -> Value {
        self.log(r, "users", "user_add", json!({"users": [user(ME)]}), true);
        let room = self.room(r);
        room.me_in = true;
        let users: Vec<Value> = room.members.iter().map(|m| user(m)).collect();
        json!({"t": "ok", "id": id, "room": r, "users": users, "streams": [], "extra": [],
               "online": room.members.len() + 1, "seq": {"room": room.room_seq, "users": room.users_seq},
               "room_session": format!("e{}", room.epoch)})
    }

    fn err(id: Option<u64>, code: u32) -> Value {
        match id {
            Some(id) => json!({"t": "error", "id": id, "code": code, "message": ""}),
            None => json!({"t": "error", "code": code, "message": ""}),
        }
    }

    /// Process the next client frame; returns the frames to send back.
    fn serve(&mut self, variant: u8) -> Vec<Value> {
        let Some(f) = self.inbox.pop_front() else {
            return vec![];
        };
        let attached = self.attached();
        match f {
            ClientFrame::Hello(_) => {
                if attached {
                    return vec![];
                }
                if let Some(old) = self.session.take() {
                    for r in old.rooms {
                        if self.rooms.get(&r).is_some_and(|x| x.me_in) {
                            self.leave(&r);
                        }
                    }
                }
                self.next_session += 1;
                self.session = Some(Sess { id: self.next_session, ..Default::default() });
                self.conn = SrvConn::Open { attached: true };
                vec![json!({"t": "welcome", "session": format!("S{}", self.next_session),
                    "resume_token": "R", "heartbeat_ms": 10000, "session_timeout_ms": 90000,
                    "retention_ms": 1200000, "server_time_ms": 0})]
            }
            ClientFrame::Resume(res) => {
                if attached {
                    return vec![];
                }
                let ok = self.session.as_ref().is_some_and(|s| format!("S{}", s.id) == res.session) && variant % 5 != 0;
                if !ok {
                    if let Some(old) = self.session.take() {
                        for r in old.rooms {
                            if self.rooms.get(&r).is_some_and(|x| x.me_in) {
                                self.leave(&r);
                            }
                        }
                    }
                    return vec![Srv::err(None, 1002057)];
                }
                let Some(mut sess) = self.session.take() else {
                    return vec![];
                };
                let mut out = Vec::new();
                let mut statuses = serde_json::Map::new();
                let mut after = Vec::new();
                for r in std::mem::take(&mut sess.kicked) {
                    statuses.insert(r, json!("kicked:1002050"));
                }
                for r in sess.rooms.clone() {
                    if sess.offline {
                        self.log(&r, "users", "user_add", json!({"users": [user(ME)]}), false);
                        self.room(&r).me_in = true;
                    }
                    let room = self.room(&r);
                    let ack = res.ack.rooms.get(&r);
                    let replay = ack.is_some_and(|a| a.epoch == format!("e{}", room.epoch)) && variant % 3 != 0;
                    if replay {
                        statuses.insert(r.clone(), json!("replay"));
                        let (au, ar) = ack.map(|a| (a.users, a.room)).unwrap_or((0, 0));
                        for (ch, seq, f, mine) in &room.log {
                            let last = if *ch == "users" { au } else { ar };
                            // Like the real server (docs/protocol.md §9.3): the
                            // session's own events are replayed too.
                            let _ = mine;
                            if *seq > last {
                                after.push(f.clone());
                            }
                        }
                    } else {
                        statuses.insert(r.clone(), json!("snapshot"));
                        let users: Vec<Value> = room.members.iter().map(|m| user(m)).collect();
                        after.push(json!({"t": "snapshot", "room": r, "users": users, "streams": [],
                            "extra": [], "online": room.members.len() + 1,
                            "room_session": format!("e{}", room.epoch),
                            "seq": {"room": room.room_seq, "users": room.users_seq}}));
                    }
                }
                sess.offline = false;
                self.session = Some(sess);
                self.conn = SrvConn::Open { attached: true };
                out.push(json!({"t": "resumed", "session": res.session, "resume_token": "R", "rooms": statuses}));
                out.extend(after);
                out.push(json!({"t": "resume_done"}));
                out
            }
            ClientFrame::Ping(_) => vec![json!({"t": "pong", "server_time_ms": 0})],
            ClientFrame::Bye(_) => {
                if attached {
                    if let Some(old) = self.session.take() {
                        for r in old.rooms {
                            if self.rooms.get(&r).is_some_and(|x| x.me_in) {
                                self.leave(&r);
                            }
                        }
                    }
                }
                vec![]
            }
            other => {
                if !attached {
                    return vec![];
                }
                let Some(id) = other.request_id() else {
                    return vec![];
                };
                if let Some(prev) = self.session.as_ref().and_then(|s| s.answers.get(&id)) {
                    return prev.clone();
                }
                let reply = self.execute(other, id, variant);
                if let Some(s) = self.session.as_mut() {
                    s.answers.insert(id, reply.clone());
                }
                reply
            }
        }
    }

    fn login_part(&mut self, room: &str, id: u64, variant: u8) -> Vec<Value> {
        if self.session.as_ref().is_some_and(|s| s.rooms.contains(room)) {
            return vec![Srv::err(Some(id), 1002001)];
        }
        if variant % 7 == 0 {
            return vec![Srv::err(Some(id), 1002034)];
        }
        if let Some(s) = self.session.as_mut() {
            s.rooms.insert(room.to_string());
        }
        vec![self.join_state(room, id)]
    }

    fn execute(&mut self, f: ClientFrame, id: u64, variant: u8) -> Vec<Value> {
        match f {
            ClientFrame::Login(l) => self.login_part(&l.room, id, variant),
            ClientFrame::Logout(l) => {
                if !self.in_room(&l.room) {
                    return vec![Srv::err(Some(id), 1002002)];
                }
                if let Some(s) = self.session.as_mut() {
                    s.rooms.remove(&l.room);
                }
                let seq = self.leave(&l.room);
                vec![json!({"t": "ok", "id": id, "room": l.room, "seq": {"users": seq}})]
            }
            ClientFrame::Switch(sw) => {
                if !self.in_room(&sw.from) {
                    return vec![Srv::err(Some(id), 1002002)];
                }
                if let Some(s) = self.session.as_mut() {
                    s.rooms.remove(&sw.from);
                }
                self.leave(&sw.from);
                self.login_part(&sw.to, id, variant)
            }
            ClientFrame::Broadcast(b) => {
                if !self.in_room(&b.room) {
                    return vec![Srv::err(Some(id), 1009005)];
                }
                self.next_msg += 1;
                let mid = format!("mine{}", self.next_msg);
                let f = self.log(
                    &b.room,
                    "room",
                    "broadcast",
                    json!({"message_id": mid, "from": user(ME), "message": b.message, "time_ms": 0}),
                    true,
                );
                vec![json!({"t": "ok", "id": id, "room": b.room, "seq": {"room": f["seq"]}, "message_id": mid})]
            }
            _ => vec![json!({"t": "ok", "id": id})],
        }
    }
}

struct World {
    core: Core,
    srv: Srv,
    model: Model,
    now: u64,
    handle: u64,
}

impl World {
    fn deliver(&mut self, frames: Vec<Value>) -> Result<(), TestCaseError> {
        for f in frames {
            if !matches!(self.srv.conn, SrvConn::Open { .. }) {
                break;
            }
            if f["t"] == "event" {
                self.srv.last_event = Some(f.clone());
            }
            let _ = self.core.handle_text(self.now, &f.to_string());
            self.drain()?;
        }
        Ok(())
    }

    fn live(&self) -> bool {
        self.model.state.values().any(|s| matches!(s, Logining | Logined | Reconnecting | Reconnected))
    }

    fn drain(&mut self) -> Result<(), TestCaseError> {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Connect => {
                    prop_assert!(self.live(), "connect with no room alive: {:?}", self.model.state);
                    self.srv.conn = SrvConn::Pending;
                    self.srv.inbox.clear();
                }
                Output::Disconnect => {
                    self.srv.conn = SrvConn::None;
                    self.srv.inbox.clear();
                }
                Output::Send(f) => {
                    if matches!(self.srv.conn, SrvConn::Open { .. }) {
                        self.srv.inbox.push_back(f);
                    }
                }
                Output::Event(e) => self.check_event(e)?,
            }
        }
        Ok(())
    }

    fn check_event(&mut self, e: AppEvent) -> Result<(), TestCaseError> {
        match e {
            AppEvent::RoomStateChanged { room, reason, .. } => {
                let prev = self.model.state.get(&room).copied();
                let ok = match reason {
                    Logining => {
                        matches!(prev, None | Some(Logout | LoginFailed | ReconnectFailed | KickOut | LogoutFailed))
                    }
                    Logined | LoginFailed => prev == Some(Logining),
                    Reconnecting => matches!(prev, Some(Logined | Reconnected)),
                    Reconnected | ReconnectFailed => prev == Some(Reconnecting),
                    KickOut | Logout => matches!(prev, Some(Logining | Logined | Reconnected | Reconnecting)),
                    LogoutFailed => true,
                };
                prop_assert!(ok, "room {}: {:?} -> {:?} is not a §7 transition", room, prev, reason);
                if matches!(reason, Logined | LoginFailed | KickOut | Logout | ReconnectFailed | LogoutFailed) {
                    self.model.users.remove(&room);
                }
                self.model.state.insert(room, reason);
            }
            AppEvent::RoomUserUpdate { room, update_type, users } => {
                let st = self.model.state.get(&room).copied();
                prop_assert!(matches!(st, Some(Logined | Reconnected)), "user update for {} in {:?}", room, st);
                let view = self.model.users.entry(room.clone()).or_default();
                for u in users {
                    prop_assert!(u.id != ME, "own user reported");
                    match update_type {
                        UpdateType::Add => prop_assert!(view.insert(u.id.clone()), "{} added twice in {}", u.id, room),
                        UpdateType::Delete => {
                            prop_assert!(view.remove(&u.id), "{} deleted but not there in {}", u.id, room)
                        }
                    }
                }
            }
            AppEvent::BroadcastMessage { room, message_id, from, .. } => {
                prop_assert!(from.id != ME);
                prop_assert!(
                    self.model.messages.insert(format!("{room}/{message_id}")),
                    "message {} twice",
                    message_id
                );
            }
            AppEvent::Result { handle, .. } => {
                prop_assert!(self.model.results.insert(handle), "two results for handle {}", handle);
            }
            _ => {}
        }
        Ok(())
    }

    fn check_views(&self) -> Result<(), TestCaseError> {
        if !self.srv.attached() {
            return Ok(());
        }
        for r in ROOMS {
            let st = self.model.state.get(r).copied();
            if matches!(st, Some(Logined | Reconnected)) && self.srv.in_room(r) {
                let server: BTreeSet<String> = self.srv.rooms[r].members.clone();
                let app = self.model.users.get(r).cloned().unwrap_or_default();
                prop_assert_eq!(&app, &server, "room {} app view differs from the server", r);
            }
        }
        Ok(())
    }

    fn step(&mut self, a: Action) -> Result<(), TestCaseError> {
        self.handle += 1;
        let h = self.handle;
        match a {
            Action::Login(r) => self.core.handle_command(
                self.now,
                h,
                Command::LoginRoom {
                    room: ROOMS[r].into(),
                    user: User { id: ME.into(), name: "Me".into() },
                    token: "t".into(),
                    config: RoomConfig::default(),
                },
            ),
            Action::Logout(r) => self.core.handle_command(self.now, h, Command::LogoutRoom { room: ROOMS[r].into() }),
            Action::Switch(a, b) => self.core.handle_command(
                self.now,
                h,
                Command::SwitchRoom {
                    from: ROOMS[a].into(),
                    to: ROOMS[b].into(),
                    token: None,
                    config: RoomConfig::default(),
                },
            ),
            Action::Broadcast(r) => {
                self.core.handle_command(self.now, h, Command::Broadcast { room: ROOMS[r].into(), message: "x".into() })
            }
            Action::Open => {
                if self.srv.conn == SrvConn::Pending {
                    self.srv.conn = SrvConn::Open { attached: false };
                    self.core.handle_opened(self.now);
                }
            }
            Action::Fail => {
                if self.srv.conn != SrvConn::None {
                    self.srv.conn = SrvConn::None;
                    self.srv.inbox.clear();
                    self.core.handle_closed(self.now);
                }
            }
            Action::Serve { drop_reply, variant } => {
                if matches!(self.srv.conn, SrvConn::Open { .. }) {
                    let frames = self.srv.serve(variant);
                    if !drop_reply {
                        self.deliver(frames)?;
                    }
                }
            }
            Action::OtherJoin(r) => {
                self.srv.next_other += 1;
                let id = format!("o{}", self.srv.next_other);
                self.srv.room(ROOMS[r]).members.insert(id.clone());
                let f = self.srv.log(ROOMS[r], "users", "user_add", json!({"users": [user(&id)]}), false);
                if self.srv.attached() && self.srv.in_room(ROOMS[r]) {
                    self.deliver(vec![f])?;
                }
            }
            Action::OtherLeave(r) => {
                let first = self.srv.rooms.get(ROOMS[r]).and_then(|x| x.members.iter().next().cloned());
                if let Some(id) = first {
                    self.srv.room(ROOMS[r]).members.remove(&id);
                    let f = self.srv.log(ROOMS[r], "users", "user_delete", json!({"users": [user(&id)]}), false);
                    if self.srv.attached() && self.srv.in_room(ROOMS[r]) {
                        self.deliver(vec![f])?;
                    }
                }
            }
            Action::OtherMsg(r) => {
                self.srv.next_msg += 1;
                let body = json!({"message_id": format!("m{}", self.srv.next_msg), "from": user("o0"), "message": "hi", "time_ms": 0});
                let f = self.srv.log(ROOMS[r], "room", "broadcast", body, false);
                if self.srv.attached() && self.srv.in_room(ROOMS[r]) {
                    self.deliver(vec![f])?;
                }
            }
            Action::Dup => {
                if let Some(f) = self.srv.last_event.clone() {
                    if self.srv.attached() {
                        self.deliver(vec![f])?;
                    }
                }
            }
            Action::Kick(r) => {
                let room = ROOMS[r];
                if self.srv.in_room(room) {
                    if let Some(s) = self.srv.session.as_mut() {
                        s.rooms.remove(room);
                    }
                    self.srv.room(room).me_in = false;
                    if self.srv.attached() {
                        self.deliver(vec![json!({"t": "kicked", "room": room, "code": 1002050})])?;
                    } else if let Some(s) = self.srv.session.as_mut() {
                        s.kicked.insert(room.to_string());
                    }
                }
            }
            Action::Offline => {
                if !self.srv.attached() {
                    if let Some(rooms) = self.srv.session.as_ref().filter(|s| !s.offline).map(|s| s.rooms.clone()) {
                        for r in rooms {
                            if self.srv.rooms.get(&r).is_some_and(|x| x.me_in) {
                                if let Some(x) = self.srv.rooms.get_mut(&r) {
                                    x.me_in = false;
                                }
                                self.srv.log(&r, "users", "user_delete", json!({"users": [user(ME)]}), false);
                            }
                        }
                        if let Some(s) = self.srv.session.as_mut() {
                            s.offline = true;
                        }
                    }
                }
            }
            Action::Recreate(r) => {
                let room = ROOMS[r];
                if !self.srv.rooms.get(room).is_some_and(|x| x.me_in) {
                    let epoch = self.srv.rooms.get(room).map_or(0, |x| x.epoch) + 1;
                    self.srv.rooms.insert(room.to_string(), SrvRoom { epoch, ..Default::default() });
                    // An event of the old life is never sent again.
                    self.srv.last_event = None;
                }
            }
            Action::Advance(ms) => {
                let target = self.now + ms;
                let mut guard = 0;
                while let Some(t) = self.core.poll_timeout() {
                    if t > target {
                        break;
                    }
                    self.now = self.now.max(t);
                    self.core.handle_timeout(self.now);
                    self.drain()?;
                    guard += 1;
                    prop_assert!(guard < 10_000, "timers never settle");
                }
                self.now = target;
            }
        }
        self.drain()?;
        self.check_views()
    }
}

proptest! {
    // 512 cases by default; PROPTEST_CASES=N runs more.
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(512),
        ..ProptestConfig::default()
    })]

    #[test]
    fn core_follows_the_room_state_model(actions in prop::collection::vec(action(), 1..120), random in 0.0f64..1.0) {
        let mut w = World {
            core: Core::new(Config::default(), Box::new(move || random)),
            srv: Srv {
                rooms: BTreeMap::new(),
                session: None,
                next_session: 0,
                conn: SrvConn::None,
                inbox: VecDeque::new(),
                last_event: None,
                next_other: 0,
                next_msg: 0,
            },
            model: Model::default(),
            now: 0,
            handle: 0,
        };
        for a in actions {
            w.step(a)?;
        }
    }
}
