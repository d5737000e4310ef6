//! An in-memory server for tests: the same [`Hub`] and connection code as a real server, with
//! connections over `tokio::io::duplex` pipes instead of sockets, and a fault switch on the path.
//!
//! Nothing here touches the OS clock or network, so on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`) a test can let 90 s of heartbeat timeout pass in
//! no real time, with real clients talking the real protocol. [`MemoryServer::cut`],
//! [`MemoryServer::black_hole`], [`MemoryServer::refuse`] and [`MemoryServer::heal`] break the
//! path the way `parlor_testkit::FaultProxy` does for real sockets.

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::{Hub, ServerConfig};

/// The state of the path between clients and the in-memory server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Path {
    /// Bumped by every cut: connections opened before it are closed.
    cuts: u64,
    /// Nothing flows (connections stay open).
    black_hole: bool,
    /// New connections are closed at once.
    refuse: bool,
}

/// A server without a socket.
#[derive(Debug)]
pub struct MemoryServer {
    /// Its state.
    pub hub: Arc<Hub>,
    ticker: tokio::task::JoinHandle<()>,
    path: watch::Sender<Path>,
}

impl MemoryServer {
    /// Start the hub and its ticker on the current runtime.
    pub fn start(config: ServerConfig) -> MemoryServer {
        let hub = Arc::new(Hub::new(config));
        let ticker = crate::spawn_ticker(hub.clone());
        MemoryServer { hub, ticker, path: watch::Sender::new(Path::default()) }
    }

    /// Open a connection: the client end of a WebSocket whose server end is served by the hub.
    pub async fn connect(&self) -> WebSocketStream<DuplexStream> {
        WebSocketStream::from_raw_socket(self.connect_raw(), Role::Client, None).await
    }

    /// Open a connection and return the client's end of the byte pipe (before the WebSocket
    /// layer), for clients that wrap it themselves.
    pub fn connect_raw(&self) -> DuplexStream {
        let (client, near) = tokio::io::duplex(256 * 1024);
        let (far, server) = tokio::io::duplex(256 * 1024);
        let path = self.path.subscribe();
        tokio::spawn(forward(near, far, path));
        let hub = self.hub.clone();
        let config = crate::ws::ws_config(hub.config.max_frame);
        tokio::spawn(async move {
            let socket = WebSocketStream::from_raw_socket(server, Role::Server, Some(config)).await;
            crate::ws::serve(hub, socket).await;
        });
        client
    }

    /// Close every open connection at once (both ends see the pipe end, no close frame).
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

    /// Clear black hole and refuse (cut connections stay closed).
    pub fn heal(&self) {
        self.path.send_modify(|p| {
            p.black_hole = false;
            p.refuse = false;
        });
    }

    /// Stop, as an in-memory server that restarts would: every connection is closed with 4010;
    /// every session is forgotten once the hub is dropped.
    pub fn shutdown(self) {
        self.hub.shutdown();
    }
}

impl Drop for MemoryServer {
    fn drop(&mut self) {
        self.ticker.abort();
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
        tokio::select! {
            changed = path.changed() => if changed.is_err() { return },
            n = cr.read(&mut up) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if sw.write_all(&up[..n]).await.is_err() { return },
            },
            n = sr.read(&mut down) => match n {
                Ok(0) | Err(_) => return,
                Ok(n) => if cw.write_all(&down[..n]).await.is_err() { return },
            },
        }
    }
}
