//! One soak client: a loop of Rust SDK sessions (`parlor_client::Engine`), each logging in to
//! rooms, broadcasting, having its connection cut, logging out, and ending with `bye`.
//!
//! Every connection goes through a [`Link`] of its own, so that the controller can cut one
//! client's TCP connection (no close frame; the server sees the socket end) while the others go
//! on: the SDK then resumes as after any network loss.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use parlor_client::{Connector, Engine, EngineConfig, Event, RoomConfig, RoomStateReason, User};
use rand::Rng;
use tokio::net::TcpStream;
use tokio::sync::watch;

use crate::client::App;
use crate::stopped;

/// How a client behaves.
#[derive(Debug, Clone, Copy)]
pub struct Pace {
    /// How long one stay in a room lasts (uniform in this range).
    pub stay: (Duration, Duration),
    /// Time between two broadcasts of a client in a room.
    pub message_every: Duration,
    /// Chance per broadcast tick that the client's connection is cut.
    pub cut_chance: f64,
    /// Stays per session (uniform in 1..=this) before the session ends with `bye`.
    pub stays_per_session: u32,
}

/// A broadcast that the server acknowledged.
#[derive(Debug, Clone)]
pub struct Sent {
    /// The room.
    pub room: usize,
    /// The sender's user id.
    pub user: String,
    /// The text, unique in the run.
    pub text: String,
    /// When the call was made and when it resolved.
    pub start: Instant,
    /// See `start`.
    pub end: Instant,
}

/// One session's time in one room, from its login's answer to its logout call.
#[derive(Debug, Clone)]
pub struct Stay {
    /// The room.
    pub room: usize,
    /// The session's user id.
    pub user: String,
    /// When the login resolved (the server had let it in before).
    pub logined: Instant,
    /// When the logout was called (the server let it out after).
    pub leaving: Instant,
    /// The broadcast texts it received.
    pub received: HashSet<String>,
}

/// Counters and records shared by every client.
#[derive(Debug, Default)]
pub struct Tally {
    /// Logins answered LOGINED.
    pub logins: AtomicU64,
    /// Logouts answered.
    pub logouts: AtomicU64,
    /// Sessions ended with `bye`.
    pub sessions: AtomicU64,
    /// Broadcasts acknowledged.
    pub messages: AtomicU64,
    /// Broadcasts received.
    pub received: AtomicU64,
    /// Connections cut.
    pub cuts: AtomicU64,
    /// Rooms reported RECONNECTED.
    pub reconnected: AtomicU64,
    /// Rooms reported RECONNECT_FAILED.
    pub reconnect_failed: AtomicU64,
    /// Rooms reported KICK_OUT (nobody is kicked in a soak).
    pub kicked: AtomicU64,
    /// A call that failed, or a broadcast received twice.
    pub errors: AtomicU64,
    /// Broadcasts received twice by one session.
    pub duplicated: AtomicU64,
    /// The first few error texts.
    pub first_errors: Mutex<Vec<String>>,
    /// Every acknowledged broadcast.
    pub sent: Mutex<Vec<Sent>>,
    /// Every finished stay.
    pub stays: Mutex<Vec<Stay>>,
}

impl Tally {
    fn error(&self, what: String) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut first = self.first_errors.lock();
        if first.len() < 5 {
            first.push(what);
        }
    }
}

/// One client's cuttable path to the server.
#[derive(Debug, Clone)]
struct Link {
    cuts: Arc<watch::Sender<u64>>,
}

impl Link {
    fn new() -> Link {
        Link { cuts: Arc::new(watch::Sender::new(0)) }
    }

    /// A connector for the SDK: a TCP connection to `addr`, piped through this link.
    fn connector(&self, addr: SocketAddr) -> Connector {
        let cuts = self.cuts.clone();
        Connector::new(move || {
            let mut cut = cuts.subscribe();
            async move {
                let mut tcp = TcpStream::connect(addr).await?;
                tcp.set_nodelay(true)?;
                let (client, mut near) = tokio::io::duplex(64 * 1024);
                cut.borrow_and_update();
                tokio::spawn(async move {
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut near, &mut tcp) => {}
                        _ = cut.changed() => {}
                    }
                });
                Ok(client)
            }
        })
    }

    /// End the open connection: both of its ends are dropped, without a close frame.
    fn cut(&self) {
        self.cuts.send_modify(|n| *n += 1);
    }
}

/// Run client `i` until `stop`.
pub async fn run(
    i: usize,
    rooms: usize,
    addr: SocketAddr,
    app: App,
    pace: Pace,
    tally: Arc<Tally>,
    mut stop: watch::Receiver<bool>,
) {
    let url = format!("ws://{addr}/v1/ws");
    let mut generation = 0u64;
    let mut n = 0u64;
    while !*stop.borrow() {
        generation += 1;
        let user = format!("soak{i}-{generation}");
        let link = Link::new();
        let config = EngineConfig { connector: Some(link.connector(addr)), ..EngineConfig::default() };
        let engine = Engine::with_config(app.id, url.as_str(), config);
        let Some(mut events) = engine.events() else { return };
        let mut seen: HashSet<String> = HashSet::new();
        let stays = rand::rng().random_range(1..=pace.stays_per_session);
        for _ in 0..stays {
            if *stop.borrow() {
                break;
            }
            let room = rand::rng().random_range(0..rooms);
            let room_id = format!("soak-{room}");
            let who = User { id: user.clone(), name: String::new() };
            if let Err(e) = engine.login_room(room_id.as_str(), who, app.token(&user), RoomConfig::default()).await {
                tally.error(format!("{user}: login {room_id}: {e}"));
                continue;
            }
            tally.logins.fetch_add(1, Ordering::Relaxed);
            let mut stay = Stay {
                room,
                user: user.clone(),
                logined: Instant::now(),
                leaving: Instant::now(),
                received: HashSet::new(),
            };
            let length = rand::rng().random_range(pace.stay.0..=pace.stay.1);
            let until = tokio::time::Instant::now() + length;
            let first = pace.message_every.mul_f64(rand::rng().random::<f64>());
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + first, pace.message_every);
            loop {
                tokio::select! {
                    _ = stopped(&mut stop) => break,
                    _ = tokio::time::sleep_until(until) => break,
                    Some(ev) = events.recv() => on_event(ev, &tally, &mut seen, &mut stay, &room_id),
                    _ = tick.tick() => {
                        if rand::rng().random::<f64>() < pace.cut_chance {
                            link.cut();
                            tally.cuts.fetch_add(1, Ordering::Relaxed);
                        }
                        n += 1;
                        let text = format!("{user}:{n}");
                        let start = Instant::now();
                        match engine.send_broadcast_message(room_id.as_str(), text.as_str()).await {
                            Ok(_) => {
                                tally.messages.fetch_add(1, Ordering::Relaxed);
                                let sent = Sent { room, user: user.clone(), text, start, end: Instant::now() };
                                tally.sent.lock().push(sent);
                            }
                            Err(e) => tally.error(format!("{user}: broadcast in {room_id}: {e}")),
                        }
                    }
                }
            }
            stay.leaving = Instant::now();
            match engine.logout_room(room_id.as_str()).await {
                Ok(()) => {
                    tally.logouts.fetch_add(1, Ordering::Relaxed);
                }
                Err(e) => tally.error(format!("{user}: logout {room_id}: {e}")),
            }
            // What arrived before the logout's answer belongs to this stay.
            while let Ok(ev) = events.try_recv() {
                on_event(ev, &tally, &mut seen, &mut stay, &room_id);
            }
            tally.stays.lock().push(stay);
        }
        // Dropping the engine ends the session with `bye`.
        drop(engine);
        tally.sessions.fetch_add(1, Ordering::Relaxed);
    }
}

fn on_event(ev: Event, tally: &Tally, seen: &mut HashSet<String>, stay: &mut Stay, room_id: &str) {
    match ev {
        Event::BroadcastMessage { room_id: r, message, .. } => {
            tally.received.fetch_add(1, Ordering::Relaxed);
            if !seen.insert(message.clone()) {
                tally.duplicated.fetch_add(1, Ordering::Relaxed);
                tally.error(format!("{}: {message} received twice", stay.user));
            }
            if r == room_id {
                stay.received.insert(message);
            }
        }
        Event::RoomStateChanged { room_id: r, reason, error_code, .. } => match reason {
            RoomStateReason::Reconnected => {
                tally.reconnected.fetch_add(1, Ordering::Relaxed);
            }
            RoomStateReason::ReconnectFailed => {
                tally.reconnect_failed.fetch_add(1, Ordering::Relaxed);
                tally.error(format!("{}: {r} RECONNECT_FAILED {error_code:?}", stay.user));
            }
            RoomStateReason::KickOut => {
                tally.kicked.fetch_add(1, Ordering::Relaxed);
                tally.error(format!("{}: {r} KICK_OUT {error_code:?}", stay.user));
            }
            RoomStateReason::LoginFailed => tally.error(format!("{}: {r} LOGIN_FAILED {error_code:?}", stay.user)),
            _ => {}
        },
        _ => {}
    }
}

/// Broadcasts a stay must have received: sent by another session in its room, sent after it
/// was let in and acknowledged before it left. Returns (checked, lost).
pub fn lost(sent: &[Sent], stays: &[Stay]) -> (u64, u64) {
    let mut by_room: std::collections::HashMap<usize, Vec<&Sent>> = std::collections::HashMap::new();
    for s in sent {
        by_room.entry(s.room).or_default().push(s);
    }
    let (mut checked, mut lost) = (0, 0);
    for stay in stays {
        let in_room = by_room.get(&stay.room).map(Vec::as_slice).unwrap_or_default();
        for s in in_room.iter().filter(|s| s.user != stay.user) {
            if s.start > stay.logined && s.end < stay.leaving {
                checked += 1;
                if !stay.received.contains(&s.text) {
                    lost += 1;
                }
            }
        }
    }
    (checked, lost)
}
