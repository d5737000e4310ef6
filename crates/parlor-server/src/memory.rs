//! An in-memory server for tests: the same [`Hub`] and connection code as a real server, with
//! connections over `tokio::io::duplex` pipes instead of sockets.
//!
//! Nothing here touches the OS clock or network, so on tokio's paused clock
//! (`#[tokio::test(start_paused = true)]`) a test can let 90 s of heartbeat timeout pass in
//! no real time, with real clients talking the real protocol.

use std::sync::Arc;

use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::WebSocketStream;

use crate::{Hub, ServerConfig};

/// A server without a socket.
#[derive(Debug)]
pub struct MemoryServer {
    /// Its state.
    pub hub: Arc<Hub>,
    ticker: tokio::task::JoinHandle<()>,
}

impl MemoryServer {
    /// Start the hub and its ticker on the current runtime.
    pub fn start(config: ServerConfig) -> MemoryServer {
        let hub = Arc::new(Hub::new(config));
        let ticker = crate::spawn_ticker(hub.clone());
        MemoryServer { hub, ticker }
    }

    /// Open a connection: the client end of a WebSocket whose server end is served by the hub.
    pub async fn connect(&self) -> WebSocketStream<DuplexStream> {
        let (client, server) = tokio::io::duplex(256 * 1024);
        let hub = self.hub.clone();
        let config = crate::ws::ws_config(hub.config.max_frame);
        tokio::spawn(async move {
            let socket = WebSocketStream::from_raw_socket(server, Role::Server, Some(config)).await;
            crate::ws::serve(hub, socket).await;
        });
        WebSocketStream::from_raw_socket(client, Role::Client, None).await
    }

    /// Stop, as an in-memory server that restarts would: every connection is closed with 4010
    /// and every session is forgotten once the hub is dropped.
    pub fn shutdown(self) {
        self.hub.shutdown();
    }
}

impl Drop for MemoryServer {
    fn drop(&mut self) {
        self.ticker.abort();
    }
}
