//! A raw protocol client for scenario tests: JSON in, JSON out, no SDK.
#![allow(dead_code)]
pub mod bystander;
pub mod receiver;
pub mod transcript;

use std::collections::VecDeque;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use parlor_protocol::token::{self, Claims};
use serde_json::{json, Value};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

pub const APP: u32 = 7;
pub const SECRET: &str = "some-secret";

pub fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// A token for `user` valid for an hour.
pub fn token(user: &str) -> String {
    token::mint(SECRET.as_bytes(), &Claims::new(APP, user, now_s(), 3600, "n"))
}

/// A token with custom claims.
pub fn token_with(f: impl FnOnce(&mut Claims)) -> String {
    let mut c = Claims::new(APP, "u", now_s(), 3600, "n");
    f(&mut c);
    token::mint(SECRET.as_bytes(), &c)
}

/// How a peer's connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Close(u16),
    Gone,
}

pub struct Peer<S> {
    pub ws: WebSocketStream<S>,
    next_id: u64,
    pending: VecDeque<Value>,
    pub user: String,
}

const WAIT: Duration = Duration::from_secs(20);

impl<S: AsyncRead + AsyncWrite + Unpin> Peer<S> {
    pub fn new(ws: WebSocketStream<S>, user: &str) -> Peer<S> {
        Peer { ws, next_id: 0, pending: VecDeque::new(), user: user.to_string() }
    }

    pub async fn send(&mut self, v: Value) {
        self.ws.send(Message::Text(v.to_string().into())).await.expect("send");
    }

    pub async fn send_raw(&mut self, m: Message) {
        let _ = self.ws.send(m).await;
    }

    async fn read(&mut self) -> Result<Value, End> {
        loop {
            let m = tokio::time::timeout(WAIT, self.ws.next()).await.expect("no frame within the wait");
            match m {
                Some(Ok(Message::Text(t))) => return Ok(serde_json::from_str(t.as_str()).expect("server sent JSON")),
                Some(Ok(Message::Close(c))) => return Err(End::Close(c.map(|c| u16::from(c.code)).unwrap_or(1005))),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Err(End::Gone),
            }
        }
    }

    /// The next frame.
    pub async fn recv(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        match self.read().await {
            Ok(v) => v,
            Err(e) => panic!("{}: connection ended ({e:?}) while a frame was expected", self.user),
        }
    }

    /// Frames until the connection ends, and how it ended.
    pub async fn recv_until_end(&mut self) -> (Vec<Value>, End) {
        let mut frames: Vec<Value> = self.pending.drain(..).collect();
        loop {
            match self.read().await {
                Ok(v) => frames.push(v),
                Err(e) => return (frames, e),
            }
        }
    }

    /// Send a request with the next id; return its `ok` or `error`, keeping other frames.
    pub async fn request(&mut self, mut v: Value) -> Value {
        self.next_id += 1;
        v["id"] = json!(self.next_id);
        self.send(v).await;
        self.answer(self.next_id).await
    }

    /// Wait for the answer to request `id`.
    pub async fn answer(&mut self, id: u64) -> Value {
        if let Some(pos) = self.pending.iter().position(|f| is_answer(f, id)) {
            return self.pending.remove(pos).unwrap();
        }
        loop {
            let f = match self.read().await {
                Ok(f) => f,
                Err(e) => panic!("{}: connection ended ({e:?}) before the answer to {id}", self.user),
            };
            if is_answer(&f, id) {
                return f;
            }
            self.pending.push_back(f);
        }
    }

    /// The same peer (its request ids go on) on a new connection, and the old connection.
    pub fn on<T>(self, ws: WebSocketStream<T>) -> (Peer<T>, WebSocketStream<S>) {
        (Peer { ws, next_id: self.next_id, pending: VecDeque::new(), user: self.user }, self.ws)
    }

    /// The id the next request will carry.
    pub fn peek_id(&self) -> u64 {
        self.next_id + 1
    }

    /// Use up an id (for sending raw requests).
    pub fn take_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// A round trip: every frame the server queued for us before our ping is now in `pending`.
    pub async fn barrier(&mut self) {
        self.send(json!({"t":"ping"})).await;
        loop {
            let f = match self.read().await {
                Ok(f) => f,
                Err(e) => panic!("{}: connection ended ({e:?}) during a barrier", self.user),
            };
            if f["t"] == "pong" {
                return;
            }
            self.pending.push_back(f);
        }
    }

    /// Everything received up to now (after a barrier).
    pub async fn drain(&mut self) -> Vec<Value> {
        self.barrier().await;
        self.pending.drain(..).collect()
    }

    /// Events received up to now (after a barrier).
    pub async fn events(&mut self) -> Vec<Value> {
        self.drain().await.into_iter().filter(|f| f["t"] == "event").collect()
    }

    /// Channel events received up to now (after a barrier): those with a `seq`, so not `online`.
    pub async fn channel_events(&mut self) -> Vec<Value> {
        self.events().await.into_iter().filter(|f| f.get("seq").is_some()).collect()
    }

    /// The next `n` channel events (with a `seq`), skipping other frames; each waits within the
    /// peer's bounded wait (events from another node come by pub/sub: a barrier on the own node
    /// does not wait for them, this does).
    pub async fn next_events(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::new();
        while out.len() < n {
            let f = self.recv().await;
            if f["t"] == "event" && f.get("seq").is_some() {
                out.push(f);
            }
        }
        out
    }

    /// Log in to `room` with default config.
    pub async fn login(&mut self, room: &str) -> Value {
        let ok =
            self.request(json!({"t":"login","room":room,"config":{"max_members":0,"user_status_notify":true}})).await;
        assert_eq!(ok["t"], "ok", "{}: login to {room}: {ok}", self.user);
        ok
    }
}

fn is_answer(f: &Value, id: u64) -> bool {
    (f["t"] == "ok" || f["t"] == "error") && f["id"] == json!(id)
}

/// `hello` as `user` on `ws`; returns the peer and the `welcome`.
pub async fn hello<S: AsyncRead + AsyncWrite + Unpin>(ws: WebSocketStream<S>, user: &str) -> (Peer<S>, Value) {
    let mut p = Peer::new(ws, user);
    p.send(
        json!({"t":"hello","v":1,"app_id":APP,"user":{"id":user,"name":format!("{user} name")},"token":token(user)}),
    )
    .await;
    let w = p.recv().await;
    assert_eq!(w["t"], "welcome", "{user}: {w}");
    (p, w)
}

/// The `kind`s and `seq`s of events, for compact assertions.
pub fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| format!("{}:{}:{}", e["ch"].as_str().unwrap_or("-"), e["seq"], e["kind"].as_str().unwrap_or("?")))
        .collect()
}

/// The error code of an answer (0 for ok).
pub fn code(answer: &Value) -> u64 {
    if answer["t"] == "ok" {
        0
    } else {
        answer["code"].as_u64().unwrap_or(u64::MAX)
    }
}
