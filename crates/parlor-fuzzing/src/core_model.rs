//! The `client_core` target: the sans-IO client core driven by an arbitrary app (every
//! command), an arbitrary network (connections that open, fail and close) and a hostile server
//! (every frame, with ids, rooms, seqs and codes chosen by the fuzzer, and raw text), with time
//! passing. The harness obeys the driver's contract (`Core`'s docs): it opens only a
//! connection the core asked for, delivers frames only on an open one, and calls
//! `handle_timeout` whenever `poll_timeout` is due.
//!
//! Checked after every input, beyond "no panic" — the impossible states of the room state
//! machine (`parlor_client_core` crate docs, protocol §7):
//! - a room's state changes only along the machine's edges: LOGINING only by the app's
//!   `login_room` / `switch_room` from a state out of the room; LOGINED and LOGIN_FAILED only
//!   from LOGINING; RECONNECTING only from LOGINED / RECONNECTED; RECONNECTED and
//!   RECONNECT_FAILED only from RECONNECTING; KICK_OUT only from a room the client is in,
//!   entering or getting back; LOGOUT only after the app asked to leave (logout, or the
//!   `from` of a switch; at the call or at the server's answer), from a room it is in or
//!   entering; LOGOUT_FAILED only after such a call (a room it is not in, or a logout the
//!   server refused);
//! - LOGINING, LOGINED, RECONNECTED and LOGOUT carry no error code, RECONNECTING 1002051;
//! - no room event (users, streams, extra, count, messages, commands) for a room that is not
//!   LOGINED or RECONNECTED (e.g. after LOGOUT, before LOGINED); `token_will_expire` only for a
//!   room in use; no event about the client's own user, streams or messages;
//! - `room_state` says what was reported last;
//! - each app call is answered at most once, and only calls that were made;
//! - a frame is sent only on an open connection; after `shutdown`, no event at all;
//! - time moves: after `handle_timeout(now)` the next deadline is later than `now` (a timer
//!   that stays due would spin the driver).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use parlor_client_core::{AppEvent, Command, Config, Core, Output, RoomStateReason};
use parlor_protocol::{
    Channel, ClientFrame, ErrorCode, ErrorFrame, Event, EventBody, Kicked, OkFrame, Pong, ResumeDone, ResumeOutcome,
    Resumed, RoomConfig, RoomExtraItem, RoomState, Seqs, ServerFrame, Snapshot, Stream, TokenWillExpire, User, Welcome,
};

use crate::input::Input;

const ROOMS: [&str; 3] = ["r1", "r2", "r3"];
const ME: &str = "u1";
const USERS: [&str; 3] = [ME, "u2", "u3"];
const STREAMS: [&str; 3] = ["s1", "s2", "s3"];
/// Codes a server sends, and some it should not.
const CODES: [u32; 10] = [1000004, 1002057, 1002033, 1002055, 1002001, 1009005, 1002053, 1002031, 0, 1];

/// What caused the outputs being checked.
#[derive(Debug, Clone, PartialEq)]
enum Cause {
    /// The app's login_room / switch_room entering this room (and leaving `from`).
    Enter { to: String, from: Option<String> },
    /// The app's logout_room.
    Leave(String),
    /// Anything else: the network, the server, time.
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Link {
    None,
    Attempt,
    Open,
}

struct Harness {
    core: Core,
    now: u64,
    link: Link,
    next_handle: u64,
    calls: BTreeSet<u64>,
    answered: BTreeSet<u64>,
    states: BTreeMap<String, RoomStateReason>,
    /// Rooms still held after a logout the server refused with another code than 1002002 (a
    /// rate limit, say): LOGOUT_FAILED was reported, but the room is in the state it was before.
    kept: BTreeMap<String, RoomStateReason>,
    /// The last request ids sent, with the room of a login / switch.
    sent: VecDeque<(u64, Option<String>)>,
    /// Rooms the app asked to leave (logout, or the `from` of a switch) and not yet LOGOUT or
    /// LOGOUT_FAILED, with how many such calls are open (a second logout may be sent before the
    /// first is answered): the answer may come with the server's.
    leaving: BTreeMap<String, u32>,
    shut: bool,
}

/// See the module docs.
pub fn client_core(data: &[u8]) {
    let mut h = Harness {
        core: Core::new(Config::default(), Box::new(|| 0.5)),
        now: 0,
        link: Link::None,
        next_handle: 1,
        calls: BTreeSet::new(),
        answered: BTreeSet::new(),
        states: BTreeMap::new(),
        kept: BTreeMap::new(),
        sent: VecDeque::new(),
        leaving: BTreeMap::new(),
        shut: false,
    };
    let mut input = Input::new(data);
    let mut steps = 0;
    while !input.is_empty() && !h.shut && steps < 4096 {
        h.step(&mut input);
        steps += 1;
    }
    // Then nothing more from anyone: every connection fails and time runs out, so every
    // deadline (login timeouts, the reconnect window) fires.
    for _ in 0..64 {
        if h.shut {
            break;
        }
        if h.link != Link::None {
            h.core.handle_closed(h.now);
            h.link = Link::None;
            h.outputs(&Cause::Other);
        }
        match h.core.poll_timeout() {
            Some(t) => {
                h.now = h.now.max(t);
                h.timeouts();
            }
            None => break,
        }
    }
}

fn room(input: &mut Input) -> String {
    input.pick(&ROOMS).to_string()
}

fn user(input: &mut Input) -> User {
    User { id: input.pick(&USERS).to_string(), name: String::new() }
}

fn users(input: &mut Input) -> Vec<User> {
    (0..input.below(3)).map(|_| user(input)).collect()
}

fn streams(input: &mut Input) -> Vec<Stream> {
    (0..input.below(3))
        .map(|_| Stream { id: input.pick(&STREAMS).to_string(), user: user(input), extra: input.text() })
        .collect()
}

fn small(input: &mut Input) -> u64 {
    match input.below(8) {
        0 => 0,
        1 => u64::MAX,
        2 => input.uint(8),
        _ => u64::from(input.below(12)),
    }
}

fn opt(input: &mut Input) -> Option<u64> {
    if input.below(2) == 0 {
        None
    } else {
        Some(small(input))
    }
}

fn room_state(input: &mut Input) -> RoomState {
    RoomState {
        users: if input.below(4) == 0 { None } else { Some(users(input)) },
        users_next: if input.below(4) == 0 { Some(input.pick(&["", "u5"]).to_string()) } else { None },
        streams: streams(input),
        extra: (0..input.below(2))
            .map(|_| RoomExtraItem { key: "k".into(), value: input.text(), user: user(input), time_ms: 1 })
            .collect(),
        online: u32::from(input.byte()),
        room_session: input.pick(&["e1", "e2", ""]).to_string(),
    }
}

fn seqs(input: &mut Input) -> Seqs {
    Seqs { room: opt(input), users: opt(input), direct: opt(input) }
}

fn event_body(input: &mut Input) -> EventBody {
    let (from, text) = (user(input), input.text());
    match input.below(10) {
        0 => EventBody::UserAdd { users: users(input) },
        1 => EventBody::UserDelete { users: users(input) },
        2 => EventBody::StreamAdd { streams: streams(input) },
        3 => EventBody::StreamDelete { streams: streams(input), reason: u32::from(input.byte()) },
        4 => EventBody::StreamExtra { streams: streams(input) },
        5 => EventBody::RoomExtra { key: "k".into(), value: text, user: from, time_ms: 1 },
        6 => EventBody::Broadcast { message_id: "m".into(), from, message: text, time_ms: 1 },
        7 => EventBody::Barrage { message_id: "m".into(), from, message: text, time_ms: 1 },
        8 => EventBody::Command { from, command: text, time_ms: 1 },
        _ => EventBody::Online { count: u32::from(input.byte()) },
    }
}

impl Harness {
    fn call(&mut self, input: &mut Input, cmd: Command) {
        let cause = match &cmd {
            Command::LoginRoom { room, .. } => Cause::Enter { to: room.clone(), from: None },
            Command::SwitchRoom { from, to, .. } => Cause::Enter { to: to.clone(), from: Some(from.clone()) },
            Command::LogoutRoom { room } => Cause::Leave(room.clone()),
            _ => Cause::Other,
        };
        let _ = input;
        match &cause {
            Cause::Leave(room) | Cause::Enter { from: Some(room), .. } => {
                *self.leaving.entry(room.clone()).or_default() += 1;
            }
            _ => {}
        }
        let handle = self.next_handle;
        self.next_handle += 1;
        self.calls.insert(handle);
        self.core.handle_command(self.now, handle, cmd);
        self.outputs(&cause);
    }

    fn step(&mut self, input: &mut Input) {
        let op = input.below(20);
        match op {
            0 => {
                // Always the same user: the model's "own user" checks need to know who that is.
                // (The byte that once chose another user is still read: corpus inputs keep
                // their meaning.)
                let _ = input.byte();
                let user = User { id: ME.to_string(), name: String::new() };
                let config = RoomConfig { max_members: 0, user_status_notify: input.below(4) != 0 };
                let cmd =
                    Command::LoginRoom { room: room(input), user, token: input.pick(&["t", "t2"]).into(), config };
                self.call(input, cmd);
            }
            1 => {
                let cmd = Command::LogoutRoom { room: room(input) };
                self.call(input, cmd);
            }
            2 => {
                let (from, to) = (room(input), room(input));
                let token = if input.below(2) == 0 { None } else { Some("t3".to_string()) };
                let cmd = Command::SwitchRoom { from, to, token, config: RoomConfig::default() };
                self.call(input, cmd);
            }
            3 => {
                let (room, stream) = (room(input), input.pick(&STREAMS).to_string());
                let cmd = match input.below(8) {
                    0 => Command::Publish { room, stream, extra: input.text() },
                    1 => Command::Unpublish { room, stream },
                    2 => Command::SetStreamExtra { room, stream, extra: input.text() },
                    3 => Command::SetRoomExtra { room, key: "k".into(), value: input.text() },
                    4 => Command::Broadcast { room, message: input.text() },
                    5 => Command::Barrage { room, message: input.text() },
                    6 => Command::CustomCommand {
                        room,
                        to: users(input).into_iter().map(|u| u.id).collect(),
                        command: "c".into(),
                    },
                    _ => Command::RenewToken { token: "t4".into() },
                };
                self.call(input, cmd);
            }
            4 => {
                if self.link == Link::Attempt {
                    self.link = Link::Open;
                    self.core.handle_opened(self.now);
                    self.outputs(&Cause::Other);
                }
            }
            5 => {
                if self.link != Link::None {
                    self.link = Link::None;
                    self.core.handle_closed(self.now);
                    self.outputs(&Cause::Other);
                }
            }
            6 => {
                self.core.handle_network_online(self.now);
                self.outputs(&Cause::Other);
            }
            7 => {
                let delta = input.pick(&[1, 100, 1_000, 10_000, 20_001, 30_000, 300_000, 0]);
                self.now = match (delta, self.core.poll_timeout()) {
                    (0, Some(t)) => self.now.max(t),
                    _ => self.now + delta,
                };
                self.timeouts();
            }
            19 => {
                self.core.shutdown(self.now);
                self.shut = true;
                while let Some(out) = self.core.poll_output() {
                    match out {
                        Output::Event(e) => panic!("an event after shutdown: {e:?}"),
                        Output::Send(f) => assert_eq!(self.link, Link::Open, "{f:?} sent without a connection"),
                        Output::Connect => panic!("a connection attempt at shutdown"),
                        Output::Disconnect => self.link = Link::None,
                    }
                }
            }
            _ if self.link != Link::Open => {}
            18 => {
                let text = input.text();
                let _ = self.core.handle_text(self.now, &text);
                self.outputs(&Cause::Other);
            }
            _ => {
                let frame = self.frame(op, input);
                self.core.handle_frame(self.now, frame);
                self.outputs(&Cause::Other);
            }
        }
        for (room, state) in &self.states {
            assert_eq!(self.core.room_state(room), *state, "room_state({room}) is what was reported");
        }
    }

    /// Call `handle_timeout` for as long as a deadline is due.
    fn timeouts(&mut self) {
        let mut spins = 0;
        while self.core.poll_timeout().is_some_and(|t| t <= self.now) {
            self.core.handle_timeout(self.now);
            self.outputs(&Cause::Other);
            spins += 1;
            assert!(spins < 64, "a deadline stays due at {}: {:?}", self.now, self.core);
        }
    }

    /// A server frame of the kind `op` picks (8..=17).
    fn frame(&mut self, op: u8, input: &mut Input) -> ServerFrame {
        let recent = |input: &mut Input, sent: &VecDeque<(u64, Option<String>)>| {
            if sent.is_empty() || input.below(8) == 0 {
                (small(input), None)
            } else {
                sent[usize::from(input.byte()) % sent.len()].clone()
            }
        };
        match op {
            8 => ServerFrame::Welcome(Welcome {
                session: input.pick(&["S1", "S2"]).into(),
                resume_token: input.pick(&["T1", "T2"]).into(),
                heartbeat_ms: small(input),
                session_timeout_ms: 30_000,
                retention_ms: 300_000,
                server_time_ms: small(input),
            }),
            9 => {
                let mut rooms = BTreeMap::new();
                let mask = input.byte();
                for (i, r) in ROOMS.iter().enumerate() {
                    if mask & (1 << i) != 0 {
                        let code = input.pick(&CODES);
                        let outcome =
                            input.pick(&[ResumeOutcome::Replay, ResumeOutcome::Snapshot, ResumeOutcome::Kicked(code)]);
                        rooms.insert(r.to_string(), outcome);
                    }
                }
                ServerFrame::Resumed(Resumed {
                    session: input.pick(&["S1", "S2"]).into(),
                    resume_token: input.pick(&["T1", "T2"]).into(),
                    rooms,
                    heartbeat_ms: opt(input),
                    server_time_ms: opt(input),
                })
            }
            10 => ServerFrame::ResumeDone(ResumeDone {}),
            11 => {
                let (id, known) = recent(input, &self.sent);
                let room = known.or_else(|| (input.below(2) == 0).then(|| room(input)));
                let mut ok = OkFrame { id, room: room.clone(), ..OkFrame::default() };
                if input.below(3) != 0 {
                    ok = OkFrame::with_state(id, room.unwrap_or_default(), room_state(input), seqs(input));
                } else {
                    ok.seq = seqs(input);
                    ok.message_id = (input.below(2) == 0).then(|| "m".to_string());
                }
                ServerFrame::Ok(ok)
            }
            12 => {
                let id = if input.below(4) == 0 { None } else { Some(recent(input, &self.sent).0) };
                ServerFrame::Error(ErrorFrame { id, code: input.pick(&CODES), message: String::new() })
            }
            13 => ServerFrame::Kicked(Kicked { room: room(input), code: input.pick(&CODES), extended_data: None }),
            14 => {
                let ch = input.pick(&[Some(Channel::Room), Some(Channel::Users), Some(Channel::Direct), None]);
                let (room, seq) = (room(input), opt(input));
                ServerFrame::Event(Event { room, ch, seq, body: event_body(input) })
            }
            15 => ServerFrame::Snapshot(Snapshot {
                room: room(input),
                state: room_state(input),
                seq: seqs(input),
                missed_messages: input.below(2) == 0,
            }),
            16 => ServerFrame::TokenWillExpire(TokenWillExpire { room: room(input), remaining_s: small(input) }),
            _ => ServerFrame::Pong(Pong { server_time_ms: small(input) }),
        }
    }

    /// Take every output and check it.
    fn outputs(&mut self, cause: &Cause) {
        while let Some(out) = self.core.poll_output() {
            match out {
                Output::Connect => self.link = Link::Attempt,
                Output::Disconnect => self.link = Link::None,
                Output::Send(f) => {
                    assert_eq!(self.link, Link::Open, "{f:?} sent without an open connection");
                    if let Some(id) = f.request_id() {
                        let room = match &f {
                            ClientFrame::Login(l) => Some(l.room.clone()),
                            ClientFrame::Switch(s) => Some(s.to.clone()),
                            _ => None,
                        };
                        self.sent.push_back((id, room));
                        if self.sent.len() > 8 {
                            self.sent.pop_front();
                        }
                    }
                }
                Output::Event(e) => self.event(e, cause),
            }
        }
    }

    /// The state `room` is in for the checks: what was reported, unless a refused logout kept it.
    fn effective(&self, room: &str) -> Option<RoomStateReason> {
        self.kept.get(room).or(self.states.get(room)).copied()
    }

    fn event(&mut self, e: AppEvent, cause: &Cause) {
        use RoomStateReason::*;
        let in_use = |s: Option<&RoomStateReason>| matches!(s, Some(Logined | Reconnected));
        let active = |s: RoomStateReason| matches!(s, Logining | Logined | Reconnecting | Reconnected);
        match e {
            AppEvent::RoomStateChanged { room, reason, error_code, .. } => {
                let prev = self.effective(&room).unwrap_or(Logout);
                let entering = matches!(cause, Cause::Enter { to, .. } if *to == room);
                let leaving = self.leaving.contains_key(&room);
                let allowed = match reason {
                    Logining => entering && !active(prev),
                    Logined | LoginFailed => prev == Logining,
                    Reconnecting => prev.is_in_room(),
                    Reconnected | ReconnectFailed => prev == Reconnecting,
                    // Also from LOGINING: the server let the session in and put it out before the login's
                    // answer reached it (a `kicked`, or `kicked:<code>` in `resumed` for a room acked
                    // with an empty epoch).
                    KickOut => matches!(prev, Logining | Logined | Reconnected | Reconnecting),
                    Logout => leaving && active(prev),
                    // From any state once asked: a room it is not in, or a logout the server
                    // refused (the shared scenario logout_failed).
                    LogoutFailed => leaving,
                };
                assert!(allowed, "{room}: {prev:?} -> {reason:?} ({error_code:?}) on {cause:?}: impossible");
                match reason {
                    Logining | Logined | Reconnected | Logout => {
                        assert_eq!(error_code, None, "{room}: {reason:?} carries no error code")
                    }
                    Reconnecting => assert_eq!(error_code, Some(ErrorCode::Reconnecting), "{room}: RECONNECTING"),
                    _ => {}
                }
                if matches!(reason, Logout | LogoutFailed) {
                    if let Some(n) = self.leaving.get_mut(&room) {
                        *n -= 1;
                        if *n == 0 {
                            self.leaving.remove(&room);
                        }
                    }
                }
                // The core forgets the room only on 1002002 (not in the room); outputs are checked
                // after the whole step, so the core's rooms now may not be what they were then.
                if reason == LogoutFailed && active(prev) && error_code != Some(ErrorCode::NotInRoomLogout) {
                    self.kept.insert(room.clone(), prev);
                } else {
                    self.kept.remove(&room);
                }
                self.states.insert(room, reason);
            }
            AppEvent::Result { handle, .. } => {
                assert!(self.calls.contains(&handle), "a result for handle {handle}, which no call had");
                assert!(self.answered.insert(handle), "call {handle} answered twice");
            }
            AppEvent::RoomTokenWillExpire { room, .. } => {
                let state = self.effective(&room);
                assert!(state.is_some_and(active), "token_will_expire for {room} while {state:?}");
            }
            AppEvent::RoomUserUpdate { ref room, ref users, .. } => {
                assert!(in_use(self.effective(room).as_ref()), "{e:?} while {:?}", self.effective(room));
                assert!(users.iter().all(|u| u.id != ME), "the app is told about its own user: {e:?}");
            }
            AppEvent::RoomStreamUpdate { ref room, ref streams, .. }
            | AppEvent::RoomStreamExtraInfoUpdate { ref room, ref streams } => {
                assert!(in_use(self.effective(room).as_ref()), "{e:?} while {:?}", self.effective(room));
                assert!(streams.iter().all(|s| s.user.id != ME), "the app is told about its own stream: {e:?}");
            }
            AppEvent::BroadcastMessage { ref room, ref from, .. }
            | AppEvent::BarrageMessage { ref room, ref from, .. } => {
                assert!(in_use(self.effective(room).as_ref()), "{e:?} while {:?}", self.effective(room));
                assert_ne!(from.id, ME, "the app is told its own message: {e:?}");
            }
            AppEvent::RoomExtraInfoUpdate { ref room, .. }
            | AppEvent::RoomOnlineUserCountUpdate { ref room, .. }
            | AppEvent::RoomUserListChanged { ref room, .. }
            | AppEvent::CustomCommand { ref room, .. } => {
                assert!(in_use(self.effective(room).as_ref()), "{e:?} while {:?}", self.effective(room));
            }
        }
    }
}
