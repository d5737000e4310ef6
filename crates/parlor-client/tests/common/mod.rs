//! The Rust SDK against a real (in-memory) server on tokio's paused clock.
#![allow(dead_code)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use parlor_client::{Connector, Engine, EngineConfig, Event, RoomConfig, RoomStateReason, User};
use parlor_protocol::token::{self, Claims};
use parlor_protocol::ErrorCode;
use parlor_server::memory::{Link, MemoryServer};
use parlor_server::ServerConfig;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

pub mod changes;

pub const APP: u32 = 7;
pub const SECRET: &str = "some-secret";

pub fn server() -> MemoryServer {
    MemoryServer::start(ServerConfig::for_tests(APP, SECRET))
}

pub fn token(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    token::mint(SECRET.as_bytes(), &Claims::new(APP, user, now, 24 * 3600, "n"))
}

/// One SDK client on its own link to the server, with everything it reported.
pub struct Client {
    pub engine: Engine,
    pub link: Link,
    pub user: User,
    events: UnboundedReceiver<Event>,
    /// Every event received so far, stamped with when the test took it.
    pub log: Vec<(Instant, Event)>,
    /// `wait_for` looks at events from here on (each event satisfies one wait).
    cursor: usize,
}

impl Client {
    pub fn new(server: &MemoryServer, user: &str) -> Client {
        let link = server.link();
        let l = link.clone();
        let config = EngineConfig {
            connector: Some(Connector::new(move || {
                let io = l.connect_io();
                async move { Ok(io) }
            })),
            ..EngineConfig::default()
        };
        let engine = Engine::with_config(APP, "ws://parlor.test/v1/ws", config);
        let events = engine.events().expect("first call");
        Client {
            engine,
            link,
            user: User { id: user.into(), name: format!("{user} name") },
            events,
            log: Vec::new(),
            cursor: 0,
        }
    }

    pub async fn login(&mut self, room: &str) {
        self.engine
            .login_room(room, self.user.clone(), token(&self.user.id), RoomConfig::default())
            .await
            .unwrap_or_else(|e| panic!("{} login {room}: {e}", self.user.id));
    }

    /// The network goes away: the connection is cut and new ones are refused until `heal`.
    pub fn lose_network(&self) {
        self.link.refuse();
        self.link.cut();
    }

    /// Collect what has arrived and return the index the next event will have in `log`; later
    /// waits and `*_since` look from there.
    pub fn mark(&mut self) -> usize {
        self.collect();
        self.cursor = self.log.len();
        self.cursor
    }

    /// Take what has arrived so far into `log`; return how many new events.
    pub fn collect(&mut self) -> usize {
        let mut n = 0;
        while let Ok(e) = self.events.try_recv() {
            self.log.push((Instant::now(), e));
            n += 1;
        }
        n
    }

    /// A round trip through the server: every event queued for us before it is in `log` after.
    pub async fn barrier(&mut self, room: &str) {
        self.engine.send_custom_command(room, vec!["nobody-by-this-id".into()], "barrier").await.expect("barrier");
        self.collect();
    }

    /// Wait (on the paused clock, bounded) for an event matching `pred`; returns it and when.
    pub async fn wait_for(&mut self, what: &str, limit: Duration, pred: impl Fn(&Event) -> bool) -> (Instant, Event) {
        let start = self.cursor;
        if let Some(i) = self.log[self.cursor..].iter().position(|(_, e)| pred(e)) {
            let i = self.cursor + i;
            self.cursor = i + 1;
            return self.log[i].clone();
        }
        let deadline = Instant::now() + limit;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(e)) => {
                    let now = Instant::now();
                    self.log.push((now, e.clone()));
                    if pred(&e) {
                        self.cursor = self.log.len();
                        return (now, e);
                    }
                }
                Ok(None) => panic!("{}: engine stopped while waiting for {what}", self.user.id),
                Err(_) => panic!("{}: no {what} within {limit:?}; got {:#?}", self.user.id, &self.log[start..]),
            }
        }
    }

    /// Wait for a room state.
    pub async fn wait_state(&mut self, reason: RoomStateReason, limit: Duration) -> (Instant, u32) {
        let (t, e) = self
            .wait_for(
                &format!("{reason:?}"),
                limit,
                |e| matches!(e, Event::RoomStateChanged { reason: r, .. } if *r == reason),
            )
            .await;
        match e {
            Event::RoomStateChanged { error_code, .. } => (t, error_code.map_or(0, ErrorCode::code)),
            _ => unreachable!(),
        }
    }

    /// The room states reported since `from` (an index in `log`).
    pub fn states_since(&self, from: usize) -> Vec<(RoomStateReason, u32)> {
        self.log[from..]
            .iter()
            .filter_map(|(_, e)| match e {
                Event::RoomStateChanged { reason, error_code, .. } => {
                    Some((*reason, error_code.map_or(0, ErrorCode::code)))
                }
                _ => None,
            })
            .collect()
    }

    /// User and stream updates since `from`.
    pub fn changes_since(&self, from: usize) -> Vec<String> {
        self.log[from..].iter().filter_map(|(_, e)| changes::describe(e)).collect()
    }
}

/// A publishes `cam-a` in room `r`, B is there too and has heard everything so far.
pub async fn a_publishing_b_watching(s: &MemoryServer) -> (Client, Client) {
    let mut a = Client::new(s, "a");
    let mut b = Client::new(s, "b");
    a.login("r").await;
    a.engine.publish_stream("r", "cam-a", "").await.unwrap();
    b.login("r").await;
    b.barrier("r").await;
    (a, b)
}

/// Whether `room` on `s` comes to hold `users` members and `streams` streams within 10 s of
/// (simulated) time, polled every 100 ms: after a restart the members log in again in either
/// order, so the end state is waited for, not an order of events.
pub async fn room_becomes(s: &MemoryServer, room: &str, users: usize, streams: usize) -> bool {
    for _ in 0..100 {
        if s.node()
            .admin_room(APP, room)
            .await
            .expect("reachable")
            .is_some_and(|r| r.streams.len() == streams && r.users.len() == users)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}
