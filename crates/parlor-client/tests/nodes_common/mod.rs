//! Helpers for the multi-process tests in `nodes.rs`: Redis, `parlor serve --redis` nodes and
//! HAProxy as real processes (from `parlor_testkit::procs`), a raw protocol client that pings
//! by itself and checks `seq` contiguity on every channel, a Rust SDK client that records what
//! it reports, and a tiny HTTP client for `/healthz` and the admin API.
//!
//! Everything waits with a deadline; nothing sleeps in place of an assertion.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use parlor_client::{Engine, Event, RoomConfig, RoomStateReason, UpdateType, User};
use parlor_protocol::token::{self, Claims};
use parlor_protocol::ErrorCode;
use parlor_testkit::{bin_path, Haproxy, Node, RedisServer};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

pub const APP: u32 = 7;
pub const SECRET: &str = "some-secret";
/// The nodes' session timeout (`--session-timeout`).
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(4);
/// The nodes' heartbeat (`--heartbeat`).
pub const HEARTBEAT: Duration = Duration::from_secs(1);

pub fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token for `user` valid for `ttl_s` seconds.
pub fn token_for(user: &str, ttl_s: u64) -> String {
    token::mint(SECRET.as_bytes(), &Claims::new(APP, user, now_s(), ttl_s, format!("n-{user}")))
}

/// A token for `user` valid for an hour.
pub fn token(user: &str) -> String {
    token_for(user, 3600)
}

/// Await `fut` for at most `limit`; panics naming `what` when it takes longer.
pub async fn within<T>(limit: Duration, what: &str, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut).await.unwrap_or_else(|_| panic!("{what}: not done within {limit:?}"))
}

pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// The arguments of one node (after `serve --listen …`).
pub fn node_args(redis: &RedisServer, id: &str) -> Vec<String> {
    [
        "--redis",
        &redis.url(),
        "--node-id",
        id,
        "--app",
        &format!("{APP}:{SECRET}"),
        "--heartbeat",
        "1s",
        "--session-timeout",
        "4s",
        "--retention",
        "60s",
        // The tests send ~10 messages per second per user; the defaults (2/s, 10/s) would refuse.
        "--user-message-rate",
        "100",
        "--room-message-rate",
        "1000",
        "--request-rate",
        "200",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// One Redis, `n` nodes (ids `n1`…), optionally HAProxy in front of them.
pub struct Cluster {
    pub redis: RedisServer,
    pub nodes: Vec<Node>,
    pub haproxy: Option<Haproxy>,
}

impl Cluster {
    pub fn start(n: usize, with_haproxy: bool) -> Cluster {
        let redis = RedisServer::start();
        let nodes: Vec<Node> =
            (1..=n).map(|i| Node::start(&bin_path(), &node_args(&redis, &format!("n{i}")))).collect();
        let haproxy = with_haproxy.then(|| Haproxy::start(&nodes.iter().map(Node::addr).collect::<Vec<_>>()));
        Cluster { redis, nodes, haproxy }
    }

    pub fn lb(&self) -> &Haproxy {
        self.haproxy.as_ref().expect("started with HAProxy")
    }

    /// The tails of every node's log (and HAProxy's), for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for (i, n) in self.nodes.iter().enumerate() {
            out.push_str(&format!("\n--- node n{} ({}) log tail ---\n{}\n", i + 1, n.addr(), n.log_tail()));
        }
        if let Some(h) = &self.haproxy {
            out.push_str(&format!("\n--- haproxy log tail ---\n{}\n", h.log_tail()));
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// One HTTP/1.1 request with `Connection: close`; the status and the body as JSON
/// (`Value::String` of the text when it is not JSON). Bounded by 5 s.
pub async fn http(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
    let fut = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect for HTTP");
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nAuthorization: Bearer {SECRET}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.expect("write HTTP request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.expect("read HTTP response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status: u16 = head.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = if head.to_ascii_lowercase().contains("transfer-encoding: chunked") {
            dechunk(body)
        } else {
            body.to_string()
        };
        let value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        (status, value)
    };
    tokio::time::timeout(secs(5), fut)
        .await
        .unwrap_or_else(|_| panic!("{method} {path} on {addr}: no answer within 5 s"))
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || tail.len() < n {
            break;
        }
        out.push_str(&tail[..n]);
        rest = tail[n..].trim_start_matches("\r\n");
    }
    out
}

/// `GET /healthz` of a node.
pub async fn healthz(addr: SocketAddr) -> Value {
    let (status, v) = http(addr, "GET", "/healthz", None).await;
    assert_eq!(status, 200, "healthz of {addr}: {v}");
    v
}

/// The admin view of a room from a node: `Some(room)` or `None` on 404.
pub async fn admin_room(addr: SocketAddr, room: &str) -> Option<Value> {
    let (status, v) = http(addr, "GET", &format!("/v1/admin/apps/{APP}/rooms/{room}"), None).await;
    match status {
        200 => Some(v),
        404 => None,
        other => panic!("GET room {room} on {addr}: {other} {v}"),
    }
}

/// The sorted ids of a room's users (admin view), each `users` entry either a user or an id.
pub fn admin_users(room: &Value) -> Vec<String> {
    let mut v: Vec<String> = room["users"]
        .as_array()
        .map(|a| a.iter().map(|u| u["id"].as_str().or(u.as_str()).unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The sorted ids of a room's streams (admin view).
pub fn admin_streams(room: &Value) -> Vec<String> {
    let mut v: Vec<String> = room["streams"]
        .as_array()
        .map(|a| a.iter().map(|s| s["id"].as_str().or(s.as_str()).unwrap_or_default().to_string()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

// ---------------------------------------------------------------------------------------------
// Raw protocol client

enum Inbound {
    Frame(Instant, Value),
    End(Instant, u16),
}

/// A raw protocol client on its own tasks: a reader that timestamps every frame, a writer that
/// pings every 400 ms (so an idle peer stays alive; see [`Peer::set_pinging`]). It checks, for
/// every frame it takes in, that each channel's `seq` is the last known + 1 (an `ok` counts its
/// seqs as known) and records each violation.
pub struct Peer {
    pub user: String,
    out: mpsc::UnboundedSender<Message>,
    inbox: mpsc::UnboundedReceiver<Inbound>,
    tasks: Vec<JoinHandle<()>>,
    pinging: Arc<AtomicBool>,
    next_id: u64,
    /// Every frame received but `pong`, with when it was taken in.
    pub log: Vec<(Instant, Value)>,
    /// How the connection ended: when and the close code (1006 when it just went away).
    pub end: Option<(Instant, u16)>,
    /// Last known seq per channel (`room/room`, `room/users`, `direct`).
    pub seqs: HashMap<String, u64>,
    /// Every seq contract violation seen.
    pub violations: Vec<String>,
    /// The room of each request sent, by id (an `ok` carries seqs but no room).
    rooms_of: HashMap<u64, String>,
    pub welcome: Value,
}

impl Peer {
    /// Open a WebSocket to `url` (no first frame yet).
    pub async fn open(url: &str, user: &str) -> Peer {
        let (ws, _) = tokio::time::timeout(secs(5), tokio_tungstenite::connect_async(url))
            .await
            .unwrap_or_else(|_| panic!("{user}: connect to {url} timed out"))
            .unwrap_or_else(|e| panic!("{user}: connect to {url}: {e}"));
        let (mut sink, mut stream) = ws.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (in_tx, inbox) = mpsc::unbounded_channel();
        // Pings start after `welcome`: before it, only `hello` or `resume` may be sent.
        let pinging = Arc::new(AtomicBool::new(false));
        let p = pinging.clone();
        let writer = tokio::spawn(async move {
            let mut tick = tokio::time::interval(ms(400));
            loop {
                let m = tokio::select! {
                    m = out_rx.recv() => match m { Some(m) => m, None => break },
                    _ = tick.tick() => {
                        if !p.load(Ordering::Relaxed) { continue; }
                        Message::Text(json!({"t":"ping"}).to_string().into())
                    }
                };
                if sink.send(m).await.is_err() {
                    break;
                }
            }
        });
        let reader = tokio::spawn(async move {
            loop {
                match stream.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let v: Value = serde_json::from_str(t.as_str()).unwrap_or(Value::String(t.to_string()));
                        if in_tx.send(Inbound::Frame(Instant::now(), v)).is_err() {
                            break;
                        }
                    }
                    Some(Ok(Message::Close(c))) => {
                        let _ = in_tx.send(Inbound::End(Instant::now(), c.map(|c| u16::from(c.code)).unwrap_or(1005)));
                        break;
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        let _ = in_tx.send(Inbound::End(Instant::now(), 1006));
                        break;
                    }
                }
            }
        });
        Peer {
            user: user.to_string(),
            out,
            inbox,
            tasks: vec![writer, reader],
            pinging,
            next_id: 0,
            log: Vec::new(),
            end: None,
            seqs: HashMap::new(),
            violations: Vec::new(),
            rooms_of: HashMap::new(),
            welcome: Value::Null,
        }
    }

    /// Open and `hello` as `user` (name "`user` name") with `token`; panics unless `welcome`.
    pub async fn connect_with(url: &str, user: &str, token: &str) -> Peer {
        let mut p = Peer::open(url, user).await;
        p.hello(token).await;
        p
    }

    /// [`Peer::connect_with`] with an hour-long token.
    pub async fn connect(url: &str, user: &str) -> Peer {
        Peer::connect_with(url, user, &token(user)).await
    }

    /// Send `hello`; panics unless the answer is `welcome`.
    pub async fn hello(&mut self, token: &str) {
        let from = self.log.len();
        let user = self.user.clone();
        self.send(
            json!({"t":"hello","v":1,"app_id":APP,"user":{"id":user,"name":format!("{user} name")},"token":token}),
        );
        let w = self.wait_for("welcome", secs(5), |f| f["t"] == "welcome" || f["t"] == "error", from).await;
        assert_eq!(w["t"], "welcome", "{}: hello answered {w}", self.user);
        self.welcome = w;
        self.set_pinging(true);
    }

    pub fn send(&self, v: Value) {
        let _ = self.out.send(Message::Text(v.to_string().into()));
    }

    /// Stop (or restart) the automatic pings.
    pub fn set_pinging(&self, on: bool) {
        self.pinging.store(on, Ordering::Relaxed);
    }

    fn apply(&mut self, at: Instant, f: Value) {
        if f["t"] == "pong" {
            return;
        }
        if f["t"] == "event" {
            if let Some(seq) = f["seq"].as_u64() {
                let key = match f["ch"].as_str() {
                    Some("direct") => "direct".to_string(),
                    Some(ch) => format!("{}/{ch}", f["room"].as_str().unwrap_or("?")),
                    None => "?".into(),
                };
                let last = self.seqs.get(&key).copied().unwrap_or(0);
                if seq != last + 1 {
                    self.violations.push(format!("{}: {key} seq {seq} after {last}: {f}", self.user));
                }
                self.seqs.insert(key, seq.max(last));
            }
        } else if f["t"] == "ok" || f["t"] == "snapshot" {
            let room = f["room"]
                .as_str()
                .map(str::to_string)
                .or_else(|| f["id"].as_u64().and_then(|id| self.rooms_of.get(&id).cloned()));
            let fresh = f.get("room_session").is_some(); // a login / switch / snapshot: seqs as they are
            if let Some(seq) = f["seq"].as_object() {
                for (ch, n) in seq {
                    let Some(n) = n.as_u64() else { continue };
                    let key = if ch == "direct" {
                        "direct".to_string()
                    } else {
                        format!("{}/{ch}", room.clone().unwrap_or_default())
                    };
                    let last = self.seqs.get(&key).copied().unwrap_or(0);
                    if !fresh && n <= last {
                        self.violations.push(format!("{}: ok {key} seq {n} not above {last}: {f}", self.user));
                    }
                    self.seqs.insert(key, if fresh { n } else { n.max(last) });
                }
            }
        }
        self.log.push((at, f));
    }

    /// Take in what has arrived (without waiting).
    pub fn pump(&mut self) {
        while let Ok(m) = self.inbox.try_recv() {
            match m {
                Inbound::Frame(at, f) => self.apply(at, f),
                Inbound::End(at, code) => self.end = Some((at, code)),
            }
        }
    }

    /// Take in frames until `f` says yes or `limit` passes (then panic naming `what`).
    pub async fn wait_until<T>(&mut self, what: &str, limit: Duration, mut f: impl FnMut(&Peer) -> Option<T>) -> T {
        let deadline = Instant::now() + limit;
        loop {
            self.pump();
            if let Some(v) = f(self) {
                return v;
            }
            match tokio::time::timeout_at(deadline, self.inbox.recv()).await {
                Ok(Some(Inbound::Frame(at, fr))) => self.apply(at, fr),
                Ok(Some(Inbound::End(at, code))) => {
                    self.end = Some((at, code));
                    if let Some(v) = f(self) {
                        return v;
                    }
                    panic!(
                        "{}: connection ended ({code}) while waiting for {what}; log: {:#?}",
                        self.user,
                        self.tail()
                    );
                }
                Ok(None) => panic!("{}: reader gone while waiting for {what}", self.user),
                Err(_) => panic!("{}: no {what} within {limit:?}; last frames: {:#?}", self.user, self.tail()),
            }
        }
    }

    /// Keep taking frames in (and pinging) for `d`.
    pub async fn idle(&mut self, d: Duration) {
        let deadline = Instant::now() + d;
        while let Ok(Some(m)) = tokio::time::timeout_at(deadline, self.inbox.recv()).await {
            match m {
                Inbound::Frame(at, f) => self.apply(at, f),
                Inbound::End(at, code) => {
                    self.end = Some((at, code));
                    break;
                }
            }
        }
    }

    fn tail(&self) -> Vec<&Value> {
        self.log.iter().rev().take(12).rev().map(|(_, v)| v).collect()
    }

    /// The first frame from index `from` of the log matching `pred`.
    pub async fn wait_for(&mut self, what: &str, limit: Duration, pred: impl Fn(&Value) -> bool, from: usize) -> Value {
        self.wait_until(what, limit, |p| {
            p.log[from.min(p.log.len())..].iter().find(|(_, f)| pred(f)).map(|(_, f)| f.clone())
        })
        .await
    }

    /// Send a request with the next id (`room` remembered for its `ok`'s seqs); its answer.
    pub async fn request(&mut self, v: Value) -> Value {
        self.request_within(v, secs(10)).await
    }

    pub async fn request_within(&mut self, mut v: Value, limit: Duration) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        v["id"] = json!(id);
        if let Some(room) = v["room"].as_str().or(v["to"].as_str()) {
            self.rooms_of.insert(id, room.to_string());
        }
        let from = self.log.len();
        self.send(v.clone());
        let what = format!("the answer to {v}");
        self.wait_for(&what, limit, |f| (f["t"] == "ok" || f["t"] == "error") && f["id"] == json!(id), from).await
    }

    /// Log in to `room` (default config); panics unless `ok`.
    pub async fn login(&mut self, room: &str) -> Value {
        let ok =
            self.request(json!({"t":"login","room":room,"config":{"max_members":0,"user_status_notify":true}})).await;
        assert_eq!(ok["t"], "ok", "{}: login to {room}: {ok}", self.user);
        ok
    }

    /// Request and require `ok`.
    pub async fn ok(&mut self, v: Value) -> Value {
        let a = self.request(v.clone()).await;
        assert_eq!(a["t"], "ok", "{}: {v} answered {a}", self.user);
        a
    }

    /// The channel events (with a `seq`) received so far.
    pub fn channel_events(&self) -> Vec<&Value> {
        self.log.iter().map(|(_, f)| f).filter(|f| f["t"] == "event" && f.get("seq").is_some()).collect()
    }

    /// `(kind, id)` for each user in each `users`-channel event of `room`, in order.
    pub fn user_changes(&self, room: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for f in self.channel_events() {
            if f["ch"] == "users" && f["room"] == room {
                for u in f["users"].as_array().into_iter().flatten() {
                    out.push((
                        f["kind"].as_str().unwrap_or("?").to_string(),
                        u["id"].as_str().unwrap_or("?").to_string(),
                    ));
                }
            }
        }
        out
    }

    /// `(kind, stream id, reason)` for each stream in each stream event of `room`, in order.
    pub fn stream_changes(&self, room: &str) -> Vec<(String, String, u64)> {
        let mut out = Vec::new();
        for f in self.channel_events() {
            let kind = f["kind"].as_str().unwrap_or("?");
            if f["room"] == room && (kind == "stream_add" || kind == "stream_delete") {
                for s in f["streams"].as_array().into_iter().flatten() {
                    out.push((
                        kind.to_string(),
                        s["id"].as_str().unwrap_or("?").to_string(),
                        f["reason"].as_u64().unwrap_or(0),
                    ));
                }
            }
        }
        out
    }

    /// The texts of the broadcasts in `room` from `user`, in the order received.
    pub fn messages_from(&self, room: &str, user: &str) -> Vec<String> {
        self.channel_events()
            .into_iter()
            .filter(|f| f["kind"] == "broadcast" && f["room"] == room && f["from"]["id"] == user)
            .map(|f| f["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// Panics with every seq violation seen.
    pub fn assert_contiguous(&self) {
        assert!(self.violations.is_empty(), "{}: seq contract broken:\n{}", self.user, self.violations.join("\n"));
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rust SDK client

/// A Rust SDK engine and everything it reported, with when (collected by a task).
pub struct Sdk {
    pub engine: Arc<Engine>,
    pub user: User,
    pub log: Arc<Mutex<Vec<(Instant, Event)>>>,
    task: JoinHandle<()>,
}

impl Sdk {
    pub fn new(url: &str, user: &str) -> Sdk {
        let engine = Arc::new(Engine::new(APP, url));
        let mut events = engine.events().expect("first call");
        let log = Arc::new(Mutex::new(Vec::new()));
        let l = log.clone();
        let task = tokio::spawn(async move {
            while let Some(e) = events.recv().await {
                l.lock().unwrap().push((Instant::now(), e));
            }
        });
        Sdk { engine, user: User { id: user.into(), name: format!("{user} name") }, log, task }
    }

    pub async fn login(&self, room: &str) {
        tokio::time::timeout(
            secs(10),
            self.engine.login_room(room, self.user.clone(), token(&self.user.id), RoomConfig::default()),
        )
        .await
        .unwrap_or_else(|_| panic!("{}: login {room} timed out", self.user.id))
        .unwrap_or_else(|e| panic!("{}: login {room}: {e}", self.user.id));
    }

    pub fn len(&self) -> usize {
        self.log.lock().unwrap().len()
    }

    /// Poll (every 20 ms, up to `limit`) until `f` over the log says yes.
    pub async fn wait_until<T>(&self, what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
        // `f` looks through this client's methods: the log is not locked while it runs.
        let deadline = Instant::now() + limit;
        loop {
            if let Some(v) = f() {
                return v;
            }
            if Instant::now() >= deadline {
                let log = self.log.lock().unwrap();
                let tail: Vec<_> = log.iter().rev().take(15).rev().map(|(_, e)| e).collect();
                panic!("{}: no {what} within {limit:?}; last events: {tail:#?}", self.user.id);
            }
            tokio::time::sleep(ms(20)).await;
        }
    }

    /// The room states reported from index `from`, with when.
    pub fn states_since(&self, from: usize) -> Vec<(Instant, RoomStateReason, u32)> {
        self.log.lock().unwrap()[from..]
            .iter()
            .filter_map(|(t, e)| match e {
                Event::RoomStateChanged { reason, error_code, .. } => {
                    Some((*t, *reason, error_code.map_or(0, ErrorCode::code)))
                }
                _ => None,
            })
            .collect()
    }

    /// User and stream updates from index `from`, as text.
    pub fn changes_since(&self, from: usize) -> Vec<String> {
        self.log.lock().unwrap()[from..]
            .iter()
            .filter_map(|(_, e)| match e {
                Event::RoomUserUpdate { update_type, users, .. } => Some(format!(
                    "user {} {}",
                    kind(update_type),
                    users.iter().map(|u| u.id.as_str()).collect::<Vec<_>>().join(",")
                )),
                Event::RoomStreamUpdate { update_type, streams, .. } => Some(format!(
                    "stream {} {}",
                    kind(update_type),
                    streams.iter().map(|s| s.id.as_str()).collect::<Vec<_>>().join(",")
                )),
                _ => None,
            })
            .collect()
    }

    /// The users this client knows in a room, built from its updates alone (as an app would).
    pub fn known_users(&self) -> Vec<String> {
        let mut set = std::collections::BTreeSet::new();
        for (_, e) in self.log.lock().unwrap().iter() {
            if let Event::RoomUserUpdate { update_type, users, .. } = e {
                for u in users {
                    match update_type {
                        UpdateType::Add => set.insert(u.id.clone()),
                        UpdateType::Delete => set.remove(&u.id),
                    };
                }
            }
        }
        set.into_iter().collect()
    }

    /// The streams this client knows, built from its updates alone.
    pub fn known_streams(&self) -> Vec<String> {
        let mut set = std::collections::BTreeSet::new();
        for (_, e) in self.log.lock().unwrap().iter() {
            if let Event::RoomStreamUpdate { update_type, streams, .. } = e {
                for s in streams {
                    match update_type {
                        UpdateType::Add => set.insert(s.id.clone()),
                        UpdateType::Delete => set.remove(&s.id),
                    };
                }
            }
        }
        set.into_iter().collect()
    }

    /// The broadcast texts received from `user`, in order.
    pub fn messages_from(&self, user: &str) -> Vec<String> {
        self.log
            .lock()
            .unwrap()
            .iter()
            .filter_map(|(_, e)| match e {
                Event::BroadcastMessage { from, message, .. } if from.id == user => Some(message.clone()),
                _ => None,
            })
            .collect()
    }
}

impl Drop for Sdk {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn kind(u: &UpdateType) -> &'static str {
    match u {
        UpdateType::Add => "ADD",
        UpdateType::Delete => "DELETE",
    }
}
