//! The Parlor room server.
//!
//! In layers, arrows pointing down only (see `docs/architecture.md`):
//! - transport: [`ws`] (one WebSocket connection, one task: decoding, limits, writing), [`http`]
//!   (the axum router — `/v1/ws`, `/metrics`, `/healthz`), [`admin`] (`/v1/admin/…` and its
//!   OpenAPI document), [`web`] (the demo
//!   page, the embedded Web SDK, the dev token endpoint);
//! - session: [`node`] (`hello`, `resume`, liveness, each request to the engine and its answer);
//! - rules: [`rules`] (validation, tokens, per-session rate limits, the code of every refusal);
//! - engine: [`engine`] (all shared state: sessions, rooms, channel logs; in memory or Redis);
//! - hub: [`hub`] (this node's connections; delivers what the engine publishes);
//! - beside them: [`webhook`] (the engine's events for the app's backend, sent off the room's
//!   path);
//! - and the pieces they share: [`config`], [`clock`], [`frame`], [`outbox`], [`window`],
//!   [`named`], [`secret`], [`limits`] (the door: per-IP, rate, per-app), [`tls`].
//!
//! [`Server::start`] binds and serves; tests use it on port 0. [`Server::drain`] is the graceful
//! stop ([`drain`]), [`Server::shutdown`] the immediate one.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod admin;
pub mod clock;
pub mod config;
pub mod drain;
pub mod engine;
pub mod frame;
pub mod http;
pub mod http_client;
pub mod hub;
pub mod limits;
pub mod memory;
pub mod named;
pub mod node;
pub mod outbox;
pub mod retry_after;
pub mod rules;
pub mod secret;
pub mod telemetry;
pub mod tls;
pub mod web;
pub mod webhook;
pub mod window;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

pub use config::ServerConfig;
pub use node::Node;

/// A running server.
#[derive(Debug)]
pub struct Server {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Its node: the engine and this process's connections.
    pub node: Arc<Node>,
    /// Stops the listener (and closes what is left with 4010) when cancelled.
    stop: tokio_util::sync::CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Server {
    /// Bind `config.listen` and serve until [`Server::shutdown`] or drop.
    pub async fn start(config: ServerConfig) -> std::io::Result<Server> {
        // A deep accept queue: a login storm of thousands of connections at once should wait in
        // the queue, not in SYN retries (tokio's default backlog is 1024).
        let socket =
            if config.listen.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
        socket.set_reuseaddr(true)?;
        socket.bind(config.listen)?;
        let listener = socket.listen(4096)?;
        let addr = listener.local_addr()?;
        // The certificate is read before anything starts, so that a bad file stops the start.
        let tls = config.tls.as_ref().map(tls::server_config).transpose()?;
        let node = Arc::new(Node::start(config).await.map_err(std::io::Error::other)?);
        let stop_token = tokio_util::sync::CancellationToken::new();
        let ticker = spawn_ticker(node.clone());
        let app = http::router(node.clone());
        let node2 = node.clone();
        let cancelled = stop_token.clone().cancelled_owned();
        let stop = async move {
            cancelled.await;
            node2.hub.shutdown();
        };
        let task = tokio::spawn(async move {
            let served = match tls {
                None => {
                    // No Nagle delay: frames are small and latency matters; the writer batches itself.
                    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
                        let _ = tcp.set_nodelay(true);
                        limit_unsent(tcp);
                    });
                    serve_until(listener, app, stop).await
                }
                Some(tls) => match tls::TlsListener::new(listener, tls) {
                    // Tapped (with nothing) for axum's connect info of a tapped listener: the
                    // peer's address, which the per-IP limit needs.
                    Ok(listener) => serve_until(axum::serve::ListenerExt::tap_io(listener, |_| {}), app, stop).await,
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "server stopped");
            }
            ticker.abort();
        });
        Ok(Server { addr, node, stop: stop_token, task: Some(task) })
    }

    /// The WebSocket URL of this server (`wss://` with TLS).
    pub fn ws_url(&self) -> String {
        let scheme = if self.node.config.tls.is_some() { "wss" } else { "ws" };
        format!("{scheme}://{}/v1/ws", self.addr)
    }

    /// Close every connection with 4010 at once and stop.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }

    /// Drain gracefully ([`drain`]): `/readyz` answers 503 and upgrades are refused at once,
    /// the connections are closed with 4010 in batches over `drain_time`, and this returns when
    /// `drain_time` has passed and the last connection task is gone, or `drain_time` +
    /// [`drain::DRAIN_GRACE`] is up; then the listener stops.
    pub async fn drain(&self) -> drain::DrainReport {
        let report = drain::drain(&self.node).await;
        self.stop.cancel();
        report
    }

    /// Wait until the server stops.
    pub async fn wait(mut self) {
        self.stopped().await;
    }

    /// Wait until the listener has stopped (after [`Server::drain`], or on an error).
    pub async fn stopped(&mut self) {
        if let Some(task) = self.task.as_mut() {
            let _ = task.await;
            self.task = None;
        }
    }

    /// A token that stops the server (as [`Server::shutdown`] does) when cancelled.
    pub fn stop_token(&self) -> tokio_util::sync::CancellationToken {
        self.stop.clone()
    }
}

/// Serve `app` on `listener` until `stop` resolves, with each connection's peer address.
async fn serve_until<L>(
    listener: L,
    app: axum::Router,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
    for<'a> SocketAddr: axum::extract::connect_info::Connected<axum::serve::IncomingStream<'a, L>>,
{
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>()).with_graceful_shutdown(stop).await
}

/// Unsent bytes the kernel may hold for one connection (`TCP_NOTSENT_LOWAT`).
///
/// Without it the kernel's send buffer of a peer that reads nothing grows to `tcp_wmem`'s
/// maximum (4 MiB on Linux) before the socket pushes back, so the server would hold several
/// times the outbound limit per stalled peer, and the cut with 4008 would come only after
/// megabytes. With it, writes wait once this much is unsent, and the outbound queue — the part
/// the limit measures — fills instead. Only unsent data is capped: what is in flight, and so the
/// throughput of a fast peer on a long path, is not.
pub const NOTSENT_LOWAT: u32 = 64 * 1024;

pub(crate) fn limit_unsent(tcp: &tokio::net::TcpStream) {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = socket2::SockRef::from(tcp).set_tcp_notsent_lowat(NOTSENT_LOWAT);
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    let _ = tcp;
}

/// Run [`Node::tick`] every 500 ms (on tokio time, so a paused clock drives it).
pub fn spawn_ticker(node: Arc<Node>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut interval = tokio::time::interval(Duration::from_millis(500));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let now = interval.tick().await;
            node.tick(now).await;
        }
    })
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
