//! Running one [`Schedule`]: the in-memory server (or the Redis nodes of [`crate::redis`]), one
//! [`SimClient`] per client on its own link, the steps at their simulated times, the server's
//! rooms watched every second, then the settling and what the checks need ([`Run`]).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use parlor_client_core::{AppEvent, Command};
use parlor_protocol::token::{self, Claims};
use parlor_protocol::{ErrorCode, RoomConfig, User};
use parlor_server::engine::{RoomInfo, Unavailable};
use parlor_server::memory::{Link, MemoryServer};
use parlor_server::{Node, ServerConfig};
use tokio::time::Instant;

use crate::client::{RoomNow, SimClient};
use crate::redis::Cluster;
use crate::schedule::{Action, Schedule, ROOMS};

/// The app of every run.
pub const APP: u32 = 7;
const SECRET: &str = "sim-secret";
/// How often the server's rooms are looked at.
pub const WATCH_MS: u64 = 1000;
/// The server's wall clock at the start of every run (a whole second, so that every replay
/// sees token expiry at the same simulated instant).
const WALL_MS: u64 = 1_796_600_000_000;
/// How long the network is healthy before the views are compared (a black hole is noticed
/// within 20 s of silence, a reconnect waits at most 10 s).
pub const SETTLE_MS: u64 = 30_000;

/// An app call and what became of it.
#[derive(Debug, Clone)]
pub struct Issued {
    /// The client.
    pub c: usize,
    /// When it was made (ms).
    pub at_ms: u64,
    /// The call.
    pub cmd: Command,
    /// Every result reported for it: (ms, error code, message id).
    pub results: Vec<(u64, Option<ErrorCode>, Option<String>)>,
}

/// A room of the server at the end.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ServerRoom {
    /// Member user ids.
    pub users: BTreeSet<String>,
    /// Stream id → (publisher, extra).
    pub streams: BTreeMap<String, (String, String)>,
    /// Extra key → value.
    pub extra: BTreeMap<String, String>,
}

/// Everything a finished run leaves for the checks.
pub struct Run {
    /// The schedule.
    pub schedule: Schedule,
    /// Each client's user id.
    pub users: Vec<String>,
    /// Each client's events and wire check.
    pub clients: Vec<SimClient>,
    /// Every app call by handle.
    pub issued: BTreeMap<u64, Issued>,
    /// Server restarts (ms).
    pub restarts: Vec<u64>,
    /// Admin kicks: (ms, user, room).
    pub kicks: Vec<(u64, String, String)>,
    /// Users the server removed from a room: (ms seen, user, room, whether a short token of
    /// theirs had expired by the server's clock, by at most the 30 s leeway a login allows
    /// and a few seconds more).
    pub removals: Vec<(u64, String, String, bool)>,
    /// The server's rooms at the end.
    pub server: BTreeMap<String, ServerRoom>,
    /// The clients' rooms at the end, as their cores hold them.
    pub views: Vec<Vec<RoomNow>>,
    /// When the views were taken (ms).
    pub end_ms: u64,
}

/// The server side of a run.
pub enum Backend {
    /// One node on the memory engine.
    Memory(MemoryServer),
    /// Nodes on the Redis engine, sharing one Redis.
    Redis(Cluster),
}

impl Backend {
    fn link(&self, c: usize, nodes: usize) -> Link {
        match self {
            Backend::Memory(s) => s.link(),
            Backend::Redis(cluster) => cluster.link(c % nodes),
        }
    }

    /// The nodes to ask for the shared state, in order of preference.
    fn nodes(&self) -> Vec<std::sync::Arc<Node>> {
        match self {
            Backend::Memory(s) => vec![s.node()],
            Backend::Redis(cluster) => cluster.admin_nodes(),
        }
    }

    /// Every room of the app, from the first node that can say.
    async fn rooms(&self) -> Result<Vec<RoomInfo>, Unavailable> {
        for node in self.nodes() {
            if let Ok(rooms) = node.admin_rooms(APP).await {
                return Ok(rooms);
            }
        }
        Err(Unavailable)
    }
}

/// The server settings of every run.
pub fn config() -> ServerConfig {
    ServerConfig {
        user_message_rate: 100,
        room_message_rate: 100,
        command_rate: 100,
        ..ServerConfig::for_tests(APP, SECRET)
    }
}

/// Run `schedule` on the current (paused-clock) runtime, on the memory engine.
pub async fn run(schedule: Schedule) -> Run {
    // Boxed: the whole run is one large future.
    Box::pin(run_on(schedule, Backend::Memory(MemoryServer::start_at_wall(config(), WALL_MS)))).await
}

/// Run `schedule` on the Redis engine: `redis` (running, empty) shared by the schedule's nodes;
/// the runtime's clock must be paced ([`crate::redis::run_paced`]).
pub async fn run_redis(schedule: Schedule, redis: parlor_testkit::RedisServer) -> Run {
    let cluster = Cluster::start(redis, config(), schedule.nodes, WALL_MS).await;
    Box::pin(run_on(schedule, Backend::Redis(cluster))).await
}

async fn run_on(schedule: Schedule, server: Backend) -> Run {
    let t0 = Instant::now();
    let users: Vec<String> = (0..schedule.clients).map(|c| schedule.user(c)).collect();
    let clients: Vec<SimClient> = (0..schedule.clients)
        .map(|c| {
            let seed = schedule.seed.wrapping_mul(31).wrapping_add(c as u64);
            SimClient::start(APP, server.link(c, schedule.nodes), seed, t0)
        })
        .collect();
    // When each node's path to Redis heals (or the node is replaced), and when every path heals.
    let redis_heals = schedule
        .steps
        .iter()
        .filter_map(|(t, a)| match a {
            Action::RedisHeal { n } | Action::Kill { n } => Some((*t, *n)),
            _ => None,
        })
        .collect();
    let mut h = Harness {
        redis_heals,
        end_ms: schedule.end_ms,
        server,
        t0,
        users,
        clients,
        issued: BTreeMap::new(),
        seen: vec![0; schedule.clients],
        published: vec![Vec::new(); schedule.clients],
        next: 1,
        restarts: Vec::new(),
        kicks: Vec::new(),
        tokens: Vec::new(),
        removals: Vec::new(),
        watched: BTreeMap::new(),
    };
    for (at, action) in &schedule.steps {
        h.advance_to(*at).await;
        h.absorb();
        h.step(action).await;
    }
    for c in &h.clients {
        c.link.heal();
    }
    if let Backend::Redis(cluster) = &mut h.server {
        cluster.heal_all();
    }
    h.advance_to(schedule.end_ms + SETTLE_MS).await;
    // Settled: compare at one instant. A view still moving (a token expiring just now, an
    // `online` in flight) gets a few more seconds before it counts as different.
    let (mut server_rooms, mut views) = h.end_state().await;
    for _ in 0..3 {
        if h.views_agree(&schedule, &server_rooms, &views) {
            break;
        }
        let now = h.ms();
        h.advance_to(now + 5_000).await;
        (server_rooms, views) = h.end_state().await;
    }
    h.absorb();
    let end_ms = h.ms();
    Run {
        schedule,
        users: h.users,
        clients: h.clients,
        issued: h.issued,
        restarts: h.restarts,
        kicks: h.kicks,
        removals: h.removals,
        server: server_rooms,
        views,
        end_ms,
    }
}

struct Harness {
    /// When each node's path to Redis heals: (ms, node).
    redis_heals: Vec<(u64, usize)>,
    /// When every path heals.
    end_ms: u64,
    server: Backend,
    t0: Instant,
    users: Vec<String>,
    clients: Vec<SimClient>,
    issued: BTreeMap<u64, Issued>,
    /// How many of each client's events have been absorbed.
    seen: Vec<usize>,
    /// The streams each client has published (answered ok) and not stopped: (stream, room).
    published: Vec<Vec<(String, String)>>,
    next: u64,
    restarts: Vec<u64>,
    kicks: Vec<(u64, String, String)>,
    /// Short tokens: (user, expiry in the server's wall seconds).
    tokens: Vec<(String, u64)>,
    removals: Vec<(u64, String, String, bool)>,
    watched: BTreeMap<String, BTreeSet<String>>,
}

impl Harness {
    fn ms(&self) -> u64 {
        self.t0.elapsed().as_millis() as u64
    }

    /// Let simulated time pass until `at_ms`, watching the server's rooms.
    async fn advance_to(&mut self, at_ms: u64) {
        loop {
            let now = self.ms();
            if now >= at_ms {
                return;
            }
            let next = (now / WATCH_MS + 1) * WATCH_MS;
            tokio::time::sleep_until(self.t0 + Duration::from_millis(next.min(at_ms))).await;
            self.watch().await;
        }
    }

    /// Note who left which room since the last look.
    async fn watch(&mut self) {
        let now = self.ms();
        let wall_s = self.wall_s();
        // Redis unreachable from every node: look again next time.
        let Ok(rooms) = self.server.rooms().await else { return };
        let mut seen: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for r in rooms {
            seen.insert(r.room.clone(), r.users.into_iter().map(|u| u.id).collect());
        }
        for (room, before) in &self.watched {
            let after = seen.get(room);
            for u in before {
                if !after.is_some_and(|a| a.contains(u)) {
                    let expired =
                        self.tokens.iter().any(|(t, exp)| t == u && *exp <= wall_s + 1 && *exp + 35 >= wall_s);
                    self.removals.push((now, u.clone(), room.clone(), expired));
                }
            }
        }
        self.watched = seen;
    }

    /// Take the results reported since the last look.
    fn absorb(&mut self) {
        for c in 0..self.clients.len() {
            let record = self.clients[c].record.lock();
            for (ms, e) in &record.events[self.seen[c]..] {
                let AppEvent::Result { handle, error_code, message_id, .. } = e else { continue };
                let Some(issued) = self.issued.get_mut(handle) else { continue };
                issued.results.push((*ms, *error_code, message_id.clone()));
                if error_code.is_some() {
                    continue;
                }
                match &issued.cmd {
                    Command::Publish { room, stream, .. } => {
                        self.published[c].retain(|(s, _)| s != stream);
                        self.published[c].push((stream.clone(), room.clone()));
                    }
                    Command::Unpublish { stream, .. } => self.published[c].retain(|(s, _)| s != stream),
                    _ => {}
                }
            }
            self.seen[c] = record.events.len();
        }
    }

    /// The servers' wall clock (every node's reads the same).
    fn wall_s(&self) -> u64 {
        self.server.nodes()[0].clock.wall_s(Instant::now())
    }

    fn token(&mut self, c: usize, ttl_s: u64) -> String {
        let now_s = self.wall_s();
        if ttl_s < 3600 {
            self.tokens.push((self.users[c].clone(), now_s + ttl_s));
        }
        token::mint(SECRET.as_bytes(), &Claims::new(APP, self.users[c].clone(), now_s, ttl_s, "sim"))
    }

    fn call(&mut self, c: usize, cmd: Command) {
        let handle = self.next;
        self.next += 1;
        self.issued.insert(handle, Issued { c, at_ms: self.ms(), cmd: cmd.clone(), results: Vec::new() });
        self.clients[c].command(handle, cmd);
    }

    async fn step(&mut self, action: &Action) {
        let n = self.next;
        let room = |r: usize| ROOMS[r].to_string();
        match *action {
            Action::Login { c, room: r, ttl_s } => {
                let token = self.token(c, ttl_s);
                let user = User { id: self.users[c].clone(), name: format!("{} name", self.users[c]) };
                let config = RoomConfig { max_members: 0, user_status_notify: true };
                self.call(c, Command::LoginRoom { room: room(r), user, token, config });
            }
            Action::Logout { c, room: r } => self.call(c, Command::LogoutRoom { room: room(r) }),
            Action::Switch { c, from, to } => self.call(
                c,
                Command::SwitchRoom {
                    from: room(from),
                    to: room(to),
                    token: None,
                    config: RoomConfig { max_members: 0, user_status_notify: true },
                },
            ),
            Action::Publish { c, room: r } => {
                self.call(c, Command::Publish { room: room(r), stream: format!("s{c}-{n}"), extra: String::new() })
            }
            Action::Unpublish { c, k } | Action::StreamExtra { c, k } => {
                let Some((stream, r)) = pick(&self.published[c], k) else { return };
                let cmd = match action {
                    Action::Unpublish { .. } => Command::Unpublish { room: r, stream },
                    _ => Command::SetStreamExtra { room: r, stream, extra: format!("e{n}") },
                };
                self.call(c, cmd);
            }
            Action::RoomExtra { c, room: r, key } => {
                self.call(c, Command::SetRoomExtra { room: room(r), key: format!("k{key}"), value: format!("v{n}") })
            }
            Action::Message { c, room: r, barrage } => {
                let message = format!("m{n}");
                let cmd = if barrage {
                    Command::Barrage { room: room(r), message }
                } else {
                    Command::Broadcast { room: room(r), message }
                };
                self.call(c, cmd);
            }
            Action::Command { c, room: r, to } => {
                let to = to.map(|t| vec![self.users[t].clone()]).unwrap_or_default();
                self.call(c, Command::CustomCommand { room: room(r), to, command: format!("x{n}") });
            }
            Action::Renew { c } => {
                let token = self.token(c, 3600);
                self.call(c, Command::RenewToken { token });
            }
            Action::Kick { c, room: r } => {
                let user = self.users[c].clone();
                let at = self.ms();
                let (n, node) = match &self.server {
                    Backend::Memory(s) => (0, s.node()),
                    Backend::Redis(cluster) => cluster.admin_node(),
                };
                match node.admin_kick(APP, &room(r), &user, "sim", Instant::now()).await {
                    Ok(true) => self.kicks.push((at, user, room(r))),
                    Ok(false) => {}
                    // Redis unreachable from that node: the kick may have run before its call
                    // gave up, or runs when the node's stalled path heals and delivers it (seed
                    // 5241): it counts as made at both times.
                    Err(Unavailable) => {
                        let healed =
                            self.redis_heals.iter().find(|(t, x)| *t >= at && *x == n).map_or(self.end_ms, |(t, _)| *t);
                        self.kicks.push((at, user.clone(), room(r)));
                        self.kicks.push((healed, user, room(r)));
                    }
                }
            }
            Action::Cut { c } => self.clients[c].link.cut(),
            Action::BlackHole { c } => self.clients[c].link.black_hole(),
            Action::Refuse { c } => {
                self.clients[c].link.refuse();
                self.clients[c].link.cut();
            }
            Action::Delay { c, ms } => self.clients[c].link.delay(Duration::from_millis(ms)),
            Action::Heal { c } => self.clients[c].link.heal(),
            Action::Restart => {
                if let Backend::Memory(server) = &self.server {
                    server.restart();
                    self.restarts.push(self.ms());
                }
            }
            Action::RedisDelay { .. }
            | Action::RedisStall { .. }
            | Action::RedisCut { .. }
            | Action::RedisHeal { .. }
            | Action::Kill { .. } => {
                if let Backend::Redis(cluster) = &mut self.server {
                    cluster.apply(action).await;
                }
            }
        }
    }

    fn views_agree(&self, schedule: &Schedule, server: &BTreeMap<String, ServerRoom>, views: &[Vec<RoomNow>]) -> bool {
        let calls = crate::check::calls_by_client(&self.issued, self.clients.len());
        let pictures: Vec<_> = (0..self.clients.len())
            .map(|c| crate::picture::build(&self.users[c], &self.clients[c].record.lock().events, &calls[c]))
            .collect();
        let orphans = crate::check::orphaned_users(schedule, &self.users, &self.clients, self.ms());
        crate::check::views(&self.users, server, views, &pictures, &orphans).is_empty()
    }

    /// The server's rooms and every client's, at one instant.
    async fn end_state(&mut self) -> (BTreeMap<String, ServerRoom>, Vec<Vec<RoomNow>>) {
        let mut rooms = BTreeMap::new();
        // Every path is healed by now; a node's gate may still need a moment to see Redis well.
        let mut all = self.server.rooms().await;
        for _ in 0..20 {
            if all.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            all = self.server.rooms().await;
        }
        for r in all.expect("Redis reachable once every path healed") {
            rooms.insert(
                r.room.clone(),
                ServerRoom {
                    users: r.users.into_iter().map(|u| u.id).collect(),
                    streams: r.streams.into_iter().map(|s| (s.id, (s.user.id, s.extra))).collect(),
                    extra: r.extra.into_iter().map(|e| (e.key, e.value)).collect(),
                },
            );
        }
        let mut views = Vec::new();
        for c in &self.clients {
            views.push(c.inspect().await);
        }
        (rooms, views)
    }
}

fn pick(list: &[(String, String)], k: usize) -> Option<(String, String)> {
    if list.is_empty() {
        None
    } else {
        Some(list[k % list.len()].clone())
    }
}
