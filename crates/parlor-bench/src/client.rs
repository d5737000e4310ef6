//! One client connection, for every target: the socket (bound to a 127.0.0.x source address),
//! the WebSocket handshake and each target's own session and room handshake.
//!
//! - Parlor: `hello` → `welcome`, then `login` → `ok` (docs/protocol.md §3–§4);
//! - Socket.IO 4 (Node and socketioxide): Engine.IO v4 open packet `0{…}`, socket.io connect `40` → `40{…}`, then
//!   `420["join",room]` → ack `430[]`; the server's pings `2` are answered `3`;
//! - bare: nothing but the WebSocket handshake (it has no rooms).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context};
use futures_util::{SinkExt, StreamExt};
use parlor_protocol::token::{self, Claims};
use serde::Deserialize;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::target::{Endpoint, Kind};

/// A client WebSocket.
pub type Ws = WebSocketStream<TcpStream>;

/// How many 127.0.0.x source addresses connections are spread over (each has its own ~28 000
/// ephemeral ports).
pub const SOURCES: usize = 32;

/// The source address of connection `i`: 127.0.0.10 … 127.0.0.41.
pub fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 10 + (i % SOURCES) as u8)
}

/// Open a TCP connection from `src` to `addr` and do the WebSocket handshake on `path`.
pub async fn connect_ws(addr: SocketAddr, path: &str, src: Ipv4Addr) -> anyhow::Result<Ws> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((src, 0))).with_context(|| format!("bind {src}:0"))?;
    let stream = socket.connect(addr).await.with_context(|| format!("connect {addr}"))?;
    let _ = stream.set_nodelay(true);
    // Small read buffers: 100 000 clients in one process must fit in memory.
    let config = WebSocketConfig::default().read_buffer_size(8 * 1024);
    let url = format!("ws://{addr}{path}");
    let (ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config)).await?;
    Ok(ws)
}

/// The fields of a Parlor server frame the generator looks at.
#[derive(Debug, Default, Deserialize)]
pub struct In<'a> {
    /// Type.
    #[serde(borrow)]
    pub t: Cow<'a, str>,
    /// Request id of `ok` / `error`.
    pub id: Option<u64>,
    /// Event kind.
    #[serde(borrow)]
    pub kind: Option<Cow<'a, str>>,
    /// Event channel.
    #[serde(borrow)]
    pub ch: Option<Cow<'a, str>>,
    /// A number in events, an object in `ok` / `snapshot`.
    pub seq: Option<SeqField>,
    /// Broadcast text.
    #[serde(borrow)]
    pub message: Option<Cow<'a, str>>,
    /// Room of an event / snapshot.
    #[serde(borrow)]
    pub room: Option<Cow<'a, str>>,
    /// `welcome` / `resumed`.
    pub session: Option<String>,
    /// `welcome` / `resumed`.
    pub resume_token: Option<String>,
    /// `welcome`.
    pub heartbeat_ms: Option<u64>,
    /// `ok` of a login, `snapshot`.
    pub room_session: Option<String>,
    /// `resumed`: room → "replay" | "snapshot" | "kicked:CODE".
    pub rooms: Option<HashMap<String, String>>,
    /// `error`.
    pub code: Option<u64>,
    /// `snapshot`.
    pub missed_messages: Option<bool>,
    /// `ok` of a broadcast.
    pub message_id: Option<String>,
    /// `ok` of a login (the others in the room), `user_add` / `user_delete` events.
    #[serde(borrow)]
    pub users: Option<Vec<UserIn<'a>>>,
    /// `user_update` (a large room's batch, §9.10).
    #[serde(borrow)]
    pub added: Option<Vec<UserIn<'a>>>,
    /// `user_update`.
    #[serde(borrow)]
    pub deleted: Option<Vec<UserIn<'a>>>,
    /// `user_update`, `online`, `ok` of `members`: the room's member count.
    pub count: Option<u64>,
    /// `ok` of a login, `snapshot`: the room's member count.
    pub online: Option<u64>,
    /// `ok` of a login in a large room, `snapshot`: the `members` cursor of the rest.
    pub users_next: Option<String>,
    /// `ok` of `members`: the next page's cursor ("" after the last).
    pub next: Option<String>,
}

/// A user in a `users` list: the generator looks at the id only.
#[derive(Debug, Deserialize)]
pub struct UserIn<'a> {
    /// User id.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
}

/// `seq` of an event (a number) or of an `ok` (per channel).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum SeqField {
    /// An event's.
    One(u64),
    /// An `ok`'s or a snapshot's.
    Channels {
        /// Room channel.
        room: Option<u64>,
        /// Users channel.
        users: Option<u64>,
        /// Direct channel.
        direct: Option<u64>,
    },
}

/// Parse a Parlor frame.
pub fn parse(text: &str) -> anyhow::Result<In<'_>> {
    serde_json::from_str(text).map_err(|e| anyhow!("bad frame {text:.200}: {e}"))
}

/// A JSON string literal.
pub fn js(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_default()
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

/// The app the generator signs tokens for.
#[derive(Debug, Clone)]
pub struct App {
    /// App id.
    pub id: u32,
    /// Server secret.
    pub secret: String,
}

impl App {
    /// A 24 h token for `user`.
    pub fn token(&self, user: &str) -> String {
        let claims = Claims::new(self.id, user, now_s(), 24 * 3600, format!("{:016x}", rand::random::<u64>()));
        token::mint(self.secret.as_bytes(), &claims)
    }
}

/// What a Parlor session knows after `welcome` and `login`.
#[derive(Debug, Clone, Default)]
pub struct ParlorSession {
    /// Public session id.
    pub session: String,
    /// Current resume token.
    pub resume_token: String,
    /// How often to ping.
    pub heartbeat: Duration,
    /// The room's epoch.
    pub epoch: String,
    /// Last room-channel seq known.
    pub room_seq: u64,
    /// Last users-channel seq known.
    pub users_seq: u64,
    /// Last direct-channel seq known.
    pub direct_seq: u64,
}

/// A connected client, after its handshake and (for Parlor and Socket.IO) after joining a room.
#[derive(Debug)]
pub struct Client {
    /// The socket.
    pub ws: Ws,
    /// The target's kind.
    pub kind: Kind,
    /// Parlor only.
    pub parlor: ParlorSession,
    /// The next Parlor request id.
    pub next_id: u64,
}

/// How long a handshake step may take.
const STEP: Duration = Duration::from_secs(30);

/// The next text frame (a close or the end is an error).
pub async fn next_text(ws: &mut Ws) -> anyhow::Result<String> {
    loop {
        let m = tokio::time::timeout(STEP, ws.next())
            .await
            .map_err(|_| anyhow!("no answer within {STEP:?}"))?
            .ok_or_else(|| anyhow!("connection closed"))??;
        match m {
            Message::Text(t) => return Ok(t.to_string()),
            Message::Close(c) => bail!("closed by the server: {c:?}"),
            _ => continue,
        }
    }
}

impl Client {
    /// Connect as `user` and join `room` (`notify`: Parlor's `user_status_notify`).
    pub async fn join(
        ep: &Endpoint,
        src: Ipv4Addr,
        app: &App,
        user: &str,
        room: &str,
        notify: bool,
    ) -> anyhow::Result<Client> {
        let kind = ep.kind;
        let ws = connect_ws(ep.addr, &ep.path, src).await?;
        let mut c = Client { ws, kind, parlor: ParlorSession::default(), next_id: 1 };
        match kind {
            Kind::Parlor => {
                c.parlor_hello(app, user).await?;
                c.parlor_login(room, notify).await?;
            }
            Kind::Socketio | Kind::Socketioxide => {
                let open = next_text(&mut c.ws).await?;
                if !open.starts_with('0') {
                    bail!("expected an Engine.IO open packet, got {open:.100}");
                }
                c.ws.send(Message::text("40")).await?;
                loop {
                    let t = next_text(&mut c.ws).await?;
                    if t.starts_with("40") {
                        break;
                    }
                    if t == "2" {
                        c.ws.send(Message::text("3")).await?;
                    }
                }
                c.ws.send(Message::text(format!("420[\"join\",{}]", js(room)))).await?;
                loop {
                    let t = next_text(&mut c.ws).await?;
                    if t.starts_with("430") {
                        break;
                    }
                    if t == "2" {
                        c.ws.send(Message::text("3")).await?;
                    }
                }
            }
            Kind::Bare => {}
        }
        Ok(c)
    }

    /// `hello` → `welcome`.
    pub async fn parlor_hello(&mut self, app: &App, user: &str) -> anyhow::Result<()> {
        let hello = format!(
            "{{\"t\":\"hello\",\"v\":1,\"app_id\":{},\"user\":{{\"id\":{},\"name\":\"\"}},\"token\":{}}}",
            app.id,
            js(user),
            js(&app.token(user))
        );
        self.ws.send(Message::text(hello)).await?;
        let t = next_text(&mut self.ws).await?;
        let f = parse(&t)?;
        if f.t != "welcome" {
            bail!("hello answered with {t:.200}");
        }
        self.parlor.session = f.session.unwrap_or_default();
        self.parlor.resume_token = f.resume_token.unwrap_or_default();
        self.parlor.heartbeat = Duration::from_millis(f.heartbeat_ms.unwrap_or(10_000).max(100));
        Ok(())
    }

    /// `login` → `ok` (events before the `ok` are counted on their channels).
    pub async fn parlor_login(&mut self, room: &str, notify: bool) -> anyhow::Result<()> {
        self.parlor_login_with(room, notify, &mut |_, _| {}).await
    }

    /// [`Client::parlor_login`], handing the `ok` frame (text and parsed) to `on_ok` (W7 reads
    /// its `users`).
    pub async fn parlor_login_with(
        &mut self,
        room: &str,
        notify: bool,
        on_ok: &mut (dyn FnMut(&str, &In<'_>) + Send),
    ) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let login = format!(
            "{{\"t\":\"login\",\"id\":{id},\"room\":{},\"config\":{{\"max_members\":0,\"user_status_notify\":{notify}}}}}",
            js(room)
        );
        self.ws.send(Message::text(login)).await?;
        loop {
            let t = next_text(&mut self.ws).await?;
            let f = parse(&t)?;
            match (&*f.t, f.id) {
                ("ok", Some(i)) if i == id => {
                    on_ok(&t, &f);
                    if let Some(SeqField::Channels { room, users, .. }) = f.seq {
                        self.parlor.room_seq = room.unwrap_or(0);
                        self.parlor.users_seq = users.unwrap_or(0);
                    }
                    self.parlor.epoch = f.room_session.unwrap_or_default();
                    return Ok(());
                }
                ("error", Some(i)) if i == id => bail!("login refused: {t:.200}"),
                _ => {}
            }
        }
    }

    /// Walk the whole member list of `room` with `members` (500 a page, §9.9): every user
    /// `u0`…`u<n-1>` exactly once, no one else. Returns the pages' bytes (W7, W8).
    pub async fn walk_members(&mut self, room: &str, n: usize) -> anyhow::Result<u64> {
        let (mut seen, mut cursor, mut bytes) = (vec![false; n], String::new(), 0u64);
        let mut retries = 0u32;
        loop {
            let id = self.next_id;
            self.next_id += 1;
            let req = format!(
                "{{\"t\":\"members\",\"id\":{id},\"room\":{},\"cursor\":{},\"limit\":500}}",
                js(room),
                js(&cursor)
            );
            self.ws.send(Message::text(req)).await?;
            let next = loop {
                let t = next_text(&mut self.ws).await?;
                let f = parse(&t)?;
                match (&*f.t, f.id) {
                    ("ok", Some(i)) if i == id => {
                        bytes += t.len() as u64;
                        for u in f.users.iter().flatten() {
                            let k = u.id.strip_prefix('u').and_then(|s| s.parse::<usize>().ok()).filter(|&k| k < n);
                            let Some(k) = k else { bail!("a page lists {:?}, not in the room", u.id) };
                            anyhow::ensure!(!seen[k], "{} on two pages", u.id);
                            seen[k] = true;
                        }
                        break Some(f.next.unwrap_or_default());
                    }
                    // Redis failing (§1: retryable): the same page again after a pause, as a
                    // client does, a few times.
                    ("error", Some(i)) if i == id && f.code == Some(1000004) && retries < 5 => {
                        retries += 1;
                        tokio::time::sleep(std::time::Duration::from_millis(200 << retries)).await;
                        break None;
                    }
                    ("error", Some(i)) if i == id => bail!("members refused: {t:.200}"),
                    _ => {}
                }
            };
            let Some(next) = next else { continue };
            if next.is_empty() {
                break;
            }
            cursor = next;
        }
        let missing = seen.iter().filter(|s| !**s).count();
        anyhow::ensure!(missing == 0, "{missing} of {n} members on no page");
        Ok(bytes)
    }

    /// A Parlor `ping` carrying the acks of one room.
    pub fn parlor_ping(&self, room: &str) -> String {
        format!("{{\"t\":\"ping\",\"ack\":{}}}", self.parlor_ack(room))
    }

    /// The `ack` object for one room.
    pub fn parlor_ack(&self, room: &str) -> String {
        let p = &self.parlor;
        format!(
            "{{\"direct\":{},\"rooms\":{{{}:{{\"epoch\":{},\"room\":{},\"users\":{}}}}}}}",
            p.direct_seq,
            js(room),
            js(&p.epoch),
            p.room_seq,
            p.users_seq
        )
    }

    /// The frame that broadcasts `text` to `room` (Parlor: a request with a fresh id).
    pub fn broadcast_frame(&mut self, room: &str, text: &str) -> String {
        match self.kind {
            Kind::Parlor => {
                let id = self.next_id;
                self.next_id += 1;
                format!("{{\"t\":\"broadcast\",\"id\":{id},\"room\":{},\"message\":{}}}", js(room), js(text))
            }
            Kind::Socketio | Kind::Socketioxide => format!("42[\"bcast\",{},{}]", js(room), js(text)),
            Kind::Bare => text.to_string(),
        }
    }

    /// Answer what must be answered to stay alive (Socket.IO's ping). Returns true if it did.
    pub async fn keepalive(&mut self, text: &str) -> anyhow::Result<bool> {
        if self.kind.is_socketio() && text == "2" {
            self.ws.send(Message::text("3")).await?;
            return Ok(true);
        }
        Ok(false)
    }

    /// The client's own heartbeat, if its protocol has one the client sends (Parlor `ping`; bare:
    /// a WebSocket ping frame). Socket.IO's heartbeat is driven by the server.
    pub async fn heartbeat(&mut self, room: &str) -> anyhow::Result<()> {
        match self.kind {
            Kind::Parlor => {
                let ping = self.parlor_ping(room);
                self.ws.send(Message::text(ping)).await?
            }
            Kind::Bare => self.ws.send(Message::Ping(Vec::new().into())).await?,
            Kind::Socketio | Kind::Socketioxide => {}
        }
        Ok(())
    }

    /// How often [`Client::heartbeat`] is due.
    pub fn heartbeat_every(&self) -> Duration {
        match self.kind {
            Kind::Parlor => self.parlor.heartbeat,
            _ => Duration::from_secs(10),
        }
    }
}

/// The broadcast text inside a delivered frame, for each target.
///
/// The generator's own messages contain no characters that JSON escapes, so the text is found by
/// a substring search on every target, as cheap for a Parlor or Socket.IO frame as for a bare
/// one. (A full JSON parse of each of hundreds of thousands of deliveries a second made the
/// generator, sharing the machine with the server, the bottleneck of the Parlor runs.)
pub fn delivered(kind: Kind, text: &str) -> Option<Cow<'_, str>> {
    match kind {
        Kind::Parlor => {
            if !text.contains("\"kind\":\"broadcast\"") || !text.starts_with("{\"t\":\"event\"") {
                return None;
            }
            const FIELD: &str = "\"message\":\"";
            let start = text.find(FIELD)? + FIELD.len();
            let len = text[start..].find('"')?;
            Some(Cow::Borrowed(&text[start..start + len]))
        }
        Kind::Socketio | Kind::Socketioxide => {
            let body = text.strip_prefix("42[\"msg\",\"")?.strip_suffix("\"]")?;
            (!body.contains('\\')).then_some(Cow::Borrowed(body))
        }
        Kind::Bare => Some(Cow::Borrowed(text)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_broadcast_text_of_each_target() {
        let parlor = r#"{"t":"event","room":"w2","ch":"room","seq":4,"kind":"broadcast","message_id":"4","from":{"id":"s","name":""},"message":"S:0:12","time_ms":1}"#;
        assert_eq!(delivered(Kind::Parlor, parlor).as_deref(), Some("S:0:12"));
        assert_eq!(delivered(Kind::Parlor, r#"{"t":"pong","server_time_ms":1}"#), None);
        assert_eq!(delivered(Kind::Socketio, r#"42["msg","S:1:5"]"#).as_deref(), Some("S:1:5"));
        assert_eq!(delivered(Kind::Socketio, "2"), None);
        assert_eq!(delivered(Kind::Bare, "S:2:9").as_deref(), Some("S:2:9"));
    }

    #[test]
    fn reads_seq_as_a_number_or_per_channel() {
        let ok = parse(r#"{"t":"ok","id":3,"seq":{"room":18,"users":2},"room_session":"e"}"#).unwrap();
        assert!(matches!(ok.seq, Some(SeqField::Channels { room: Some(18), users: Some(2), direct: None })));
        let ev = parse(r#"{"t":"event","ch":"users","seq":9,"kind":"user_delete","users":[]}"#).unwrap();
        assert!(matches!(ev.seq, Some(SeqField::One(9))));
    }

    #[test]
    fn sources_stay_on_loopback() {
        for i in 0..100 {
            let s = source(i);
            assert_eq!(s.octets()[..3], [127, 0, 0]);
            assert!(s.octets()[3] >= 10);
        }
    }
}
