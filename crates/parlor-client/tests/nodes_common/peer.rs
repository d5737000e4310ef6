//! A raw protocol client that pings by itself and checks `seq` contiguity on every channel.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::*;

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
