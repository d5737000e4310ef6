//! An in-memory server for tests: the same [`Node`] and connection code as a real server, with
//! connections over `tokio::io::duplex` pipes instead of sockets, each through a [`Link`] that
//! can be broken the way `parlor_testkit::FaultProxy` breaks real sockets.
//!
//! Nothing here touches the OS clock or network, so on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`) a test can let 90 s of heartbeat timeout pass in
//! no real time, with real clients talking the real protocol.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::clock::Clock;
use crate::node::Node;
use crate::ServerConfig;

/// The state of one link's path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Path {
    /// Bumped by every cut: connections opened before it are closed.
    cuts: u64,
    /// Nothing flows (connections stay open).
    black_hole: bool,
    /// New connections are closed at once.
    refuse: bool,
    /// Every chunk of bytes waits this long before it is passed on (a slow or distant path;
    /// the order of bytes is kept).
    delay: std::time::Duration,
}

/// The running node and its ticker; replaced as a whole by [`MemoryServer::restart`].
#[derive(Debug)]
struct Running {
    node: Arc<Node>,
    ticker: tokio::task::JoinHandle<()>,
    /// Set when this node is replaced: every connection to it ends, also one still in its
    /// upgrade or before its `hello` (which the hub does not know yet), as when a process dies.
    retired: watch::Sender<bool>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}

/// A server without a socket.
#[derive(Debug, Clone)]
pub struct MemoryServer {
    config: ServerConfig,
    /// With [`MemoryServer::start_at_wall`]: the instant and wall time (ms) every node's clock
    /// counts from, across restarts.
    wall: Option<(tokio::time::Instant, u64)>,
    running: Arc<Mutex<Running>>,
    default_link: Link,
}

/// One client's path to a [`MemoryServer`]: cut it, black-hole it, refuse it, heal it.
#[derive(Debug, Clone)]
pub struct Link {
    running: Arc<Mutex<Running>>,
    path: Arc<watch::Sender<Path>>,
    attempts: Arc<AtomicU64>,
}

impl MemoryServer {
    /// Start the node and its ticker on the current runtime.
    pub fn start(config: ServerConfig) -> MemoryServer {
        MemoryServer::start_with(config, None)
    }

    /// Start as [`MemoryServer::start`] with the wall clock at `wall_ms` now, for this node and
    /// every one after a restart: a run on the paused clock then sees the same wall times (token
    /// expiry, `time_ms`) in every replay, not ones shifted by the OS clock's milliseconds.
    pub fn start_at_wall(config: ServerConfig, wall_ms: u64) -> MemoryServer {
        MemoryServer::start_with(config, Some((tokio::time::Instant::now(), wall_ms)))
    }

    fn start_with(config: ServerConfig, wall: Option<(tokio::time::Instant, u64)>) -> MemoryServer {
        let running = Arc::new(Mutex::new(Running::new(config.clone(), clock_of(wall))));
        let default_link = Link::new(running.clone());
        MemoryServer { config, wall, running, default_link }
    }

    /// Serve `node` (on any engine, e.g. a Redis node of a multi-node simulation) through links
    /// like a memory node. [`MemoryServer::restart`] then starts a memory node; use
    /// [`MemoryServer::replace`] to put another node of that engine in its place.
    pub fn serving(node: Arc<Node>) -> MemoryServer {
        let config = node.config.clone();
        let running = Arc::new(Mutex::new(Running::of(node)));
        let default_link = Link::new(running.clone());
        MemoryServer { config, wall: None, running, default_link }
    }

    /// The node dies as a killed process does (no close frame, no `bye` to its engine: every
    /// connection just ends) and `node` takes its place: links reach it from now on, as a
    /// balancer sends the dead node's clients to another.
    pub fn replace(&self, node: Arc<Node>) {
        let old = std::mem::replace(&mut *self.running.lock(), Running::of(node));
        old.retired.send_replace(true);
    }

    /// The node now serving.
    pub fn node(&self) -> Arc<Node> {
        self.running.lock().node.clone()
    }

    /// A new path to this server, with faults of its own.
    pub fn link(&self) -> Link {
        Link::new(self.running.clone())
    }

    /// Open a connection on the default link: the client end of a WebSocket (no HTTP upgrade)
    /// whose server end is served by the node.
    pub async fn connect(&self) -> WebSocketStream<DuplexStream> {
        self.default_link.connect().await
    }

    /// Restart, as an in-memory server does: every connection is closed with 4010 and every
    /// session, room and log is forgotten. Links stay usable and reach the new server.
    pub fn restart(&self) {
        let fresh = Running::new(self.config.clone(), clock_of(self.wall));
        let old = std::mem::replace(&mut *self.running.lock(), fresh);
        old.node.hub.shutdown();
        old.retired.send_replace(true);
    }
}

/// A node's clock: the OS clock's, or one counting from a fixed wall time.
fn clock_of(wall: Option<(tokio::time::Instant, u64)>) -> Clock {
    match wall {
        Some((at, wall_ms)) => {
            Clock::starting_at(wall_ms + tokio::time::Instant::now().saturating_duration_since(at).as_millis() as u64)
        }
        None => Clock::new(),
    }
}

impl Running {
    fn new(config: ServerConfig, clock: Clock) -> Running {
        Running::of(Arc::new(Node::memory_with_clock(config, clock)))
    }

    fn of(node: Arc<Node>) -> Running {
        let ticker = crate::spawn_ticker(node.clone());
        Running { node, ticker, retired: watch::Sender::new(false) }
    }
}

impl Link {
    fn new(running: Arc<Mutex<Running>>) -> Link {
        Link { running, path: Arc::new(watch::Sender::new(Path::default())), attempts: Arc::new(AtomicU64::new(0)) }
    }

    /// Open a WebSocket without an HTTP upgrade (both ends agree on the protocol already).
    pub async fn connect(&self) -> WebSocketStream<DuplexStream> {
        WebSocketStream::from_raw_socket(self.open(false), Role::Client, None).await
    }

    /// Open a byte stream on which the server expects an HTTP upgrade, as on a real socket:
    /// for clients that do their own handshake (`tokio_tungstenite::client_async`).
    pub fn connect_io(&self) -> DuplexStream {
        self.open(true)
    }

    /// How many connections were attempted through this link.
    pub fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    fn open(&self, handshake: bool) -> DuplexStream {
        self.attempts.fetch_add(1, Ordering::Relaxed);
        let (client, near) = tokio::io::duplex(256 * 1024);
        let (far, server) = tokio::io::duplex(256 * 1024);
        tokio::spawn(forward(near, far, self.path.subscribe()));
        let (node, mut retired) = {
            let running = self.running.lock();
            (running.node.clone(), running.retired.subscribe())
        };
        let config = crate::ws::ws_config(node.config.max_frame);
        tokio::spawn(async move {
            let serve = async move {
                let socket = if handshake {
                    match tokio_tungstenite::accept_async_with_config(server, Some(config)).await {
                        Ok(s) => s,
                        Err(_) => return,
                    }
                } else {
                    WebSocketStream::from_raw_socket(server, Role::Server, Some(config)).await
                };
                crate::ws::serve(node, socket).await;
            };
            // Dropping the connection's future closes its pipe.
            tokio::select! {
                _ = serve => {}
                _ = retired.wait_for(|r| *r) => {}
            }
        });
        client
    }

    /// Close every open connection of this link at once (the pipe ends, no close frame).
    pub fn cut(&self) {
        self.path.send_modify(|p| p.cuts += 1);
    }

    /// Stop every byte in both directions, on open and new connections, without closing.
    pub fn black_hole(&self) {
        self.path.send_modify(|p| p.black_hole = true);
    }

    /// New connections are closed at once (the server is unreachable).
    pub fn refuse(&self) {
        self.path.send_modify(|p| p.refuse = true);
    }

    /// Delay every chunk of bytes, both ways, by `delay` (zero: no delay). Applies to open and
    /// new connections; `heal` clears it.
    pub fn delay(&self, delay: std::time::Duration) {
        self.path.send_modify(|p| p.delay = delay);
    }

    /// Clear black hole, refuse and delay (cut connections stay closed).
    pub fn heal(&self) {
        self.path.send_modify(|p| {
            p.black_hole = false;
            p.refuse = false;
            p.delay = std::time::Duration::ZERO;
        });
    }
}

/// Copy bytes between the client's pipe and the server's, obeying the path.
async fn forward(client: DuplexStream, server: DuplexStream, mut path: watch::Receiver<Path>) {
    let start = *path.borrow_and_update();
    if start.refuse {
        return;
    }
    let (mut cr, mut cw) = tokio::io::split(client);
    let (mut sr, mut sw) = tokio::io::split(server);
    let mut up = vec![0u8; 16 * 1024];
    let mut down = vec![0u8; 16 * 1024];
    // A side that went (its pipe dropped) no longer reads; what it wrote before it went is still
    // delivered to the other, as TCP delivers what was sent before a close (a `bye`, say).
    let (mut client_gone, mut server_gone) = (false, false);
    loop {
        let now = *path.borrow_and_update();
        if now.cuts != start.cuts {
            return;
        }
        if now.black_hole {
            if path.changed().await.is_err() {
                return;
            }
            continue;
        }
        // A delayed chunk waits while both directions stand still: a slow path, in order.
        let delay = now.delay;
        tokio::select! {
            changed = path.changed() => if changed.is_err() { return },
            n = cr.read(&mut up), if !server_gone => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    pause(delay).await;
                    if sw.write_all(&up[..n]).await.is_err() {
                        if client_gone { return }
                        server_gone = true;
                    }
                }
            },
            n = sr.read(&mut down), if !client_gone => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    pause(delay).await;
                    if cw.write_all(&down[..n]).await.is_err() {
                        if server_gone { return }
                        client_gone = true;
                    }
                }
            },
        }
    }
}

async fn pause(delay: std::time::Duration) {
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use futures_util::{SinkExt, StreamExt};
    use tokio::time::Instant;
    use tokio_tungstenite::tungstenite::Message;

    use super::*;

    fn server() -> MemoryServer {
        MemoryServer::start(ServerConfig::for_tests(7, "secret"))
    }

    #[tokio::test(start_paused = true)]
    async fn a_restart_ends_connections_still_in_their_upgrade() {
        let s = server();
        let link = s.link();
        link.black_hole();
        let io = link.connect_io();
        let upgrade = tokio::spawn(tokio_tungstenite::client_async("ws://parlor.test/v1/ws", io));
        tokio::time::sleep(Duration::from_millis(10)).await;
        s.restart();
        link.heal();
        let upgraded = tokio::time::timeout(Duration::from_secs(5), upgrade).await.expect("bounded").unwrap();
        assert!(upgraded.is_err(), "the replaced node must not take the connection");
    }

    #[tokio::test(start_paused = true)]
    async fn a_delayed_link_delays_every_frame_both_ways() {
        let s = server();
        let link = s.link();
        link.delay(Duration::from_millis(300));
        let mut ws = link.connect().await;
        let t0 = Instant::now();
        ws.send(Message::Text(r#"{"t":"ping"}"#.into())).await.unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("bounded");
        assert!(matches!(answer, Some(Ok(Message::Text(_)))), "{answer:?}");
        assert!(t0.elapsed() >= Duration::from_millis(600), "{:?}", t0.elapsed());
        link.heal();
        let mut ws = link.connect().await;
        let t1 = Instant::now();
        ws.send(Message::Text(r#"{"t":"ping"}"#.into())).await.unwrap();
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("bounded");
        assert!(t1.elapsed() < Duration::from_millis(300), "healed: {:?}", t1.elapsed());
    }

    /// A client that sends `bye` and closes while an answer is still on its (slow) way to it:
    /// the `bye` still reaches the server, which ends the session at once (found by the seeded
    /// fault simulation, seed 9536: the path dropped the `bye` and the server kept the user in
    /// the room until the session timeout).
    #[tokio::test(start_paused = true)]
    async fn what_a_client_sent_before_it_went_still_arrives() {
        let s = server();
        let link = s.link();
        link.delay(Duration::from_millis(300));
        let mut ws = link.connect().await;
        let now_s = s.node().clock.wall_s(Instant::now());
        let token =
            parlor_protocol::token::mint(b"secret", &parlor_protocol::token::Claims::new(7, "u1", now_s, 3600, "n"));
        let user = r#"{"id":"u1","name":"A"}"#;
        let hello = format!(r#"{{"t":"hello","v":1,"app_id":7,"user":{user},"token":"{token}"}}"#);
        ws.send(Message::Text(hello.into())).await.unwrap();
        let welcome = tokio::time::timeout(Duration::from_secs(5), ws.next()).await.expect("bounded");
        assert!(matches!(&welcome, Some(Ok(Message::Text(t))) if t.contains("welcome")), "{welcome:?}");
        let login = r#"{"t":"login","id":1,"room":"r1","config":{"max_members":0,"user_status_notify":true}}"#;
        ws.send(Message::Text(login.into())).await.unwrap();
        // The login reaches the server after 300 ms; its `ok` is then 300 ms on its way back.
        tokio::time::sleep(Duration::from_millis(350)).await;
        let in_room = |rooms: Vec<crate::engine::RoomInfo>| rooms.iter().any(|r| r.users.iter().any(|u| u.id == "u1"));
        assert!(in_room(s.node().admin_rooms(7).await.unwrap()), "the login went through");
        ws.send(Message::Text(r#"{"t":"bye"}"#.into())).await.unwrap();
        drop(ws);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert!(!in_room(s.node().admin_rooms(7).await.unwrap()), "the bye must end the session, not the 90 s timeout");
    }
}
