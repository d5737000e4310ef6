//! [`Engine`]: the public API. Each call becomes a [`Command`] for the driver task and waits
//! for its outcome.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use parlor_client_core::{Command, Config, MemberPage, RoomStateReason};
use parlor_protocol::{ErrorCode, RoomConfig, User};
use tokio::sync::{mpsc, oneshot};

use crate::driver::{self, Msg, Reply};
use crate::event::Event;

/// Settings of an [`Engine`]; every timeout has the protocol's default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineConfig {
    /// Heartbeat interval until the server's `welcome` says otherwise (10 s).
    pub heartbeat: Duration,
    /// How long a login may take, connecting included (30 s).
    pub login_timeout: Duration,
    /// How long after a lost connection the engine tries to get its rooms back (5 min).
    pub reconnect_window: Duration,
    /// Where connections come from; `None` (the default) connects by TCP to the URL's host
    /// (and, for `wss://`, runs TLS over it). A connector's stream is used as it is: TLS, if
    /// any, is the connector's.
    pub connector: Option<Connector>,
    /// Root certificates (PEM, one or more) trusted for `wss://` besides the built-in Mozilla
    /// roots (`webpki-roots`): a private CA, a test's. Invalid PEM makes every login fail at
    /// once with 1002030 (could not connect).
    pub extra_roots_pem: Option<String>,
}

/// A byte stream a connection can run on.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

type ConnectFuture = Pin<Box<dyn Future<Output = std::io::Result<Box<dyn Io>>> + Send>>;

/// Opens the byte stream of each new connection; the engine then runs the WebSocket upgrade
/// (to the engine's URL) over it. For tests (an in-memory server, a fault-injecting path) and
/// for transports of the app's own.
#[derive(Clone)]
pub struct Connector(Arc<dyn Fn() -> ConnectFuture + Send + Sync>);

impl Connector {
    /// A connector calling `f` for every connection.
    pub fn new<F, Fut, S>(f: F) -> Connector
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = std::io::Result<S>> + Send + 'static,
        S: Io,
    {
        Connector(Arc::new(move || {
            let fut = f();
            Box::pin(async move { fut.await.map(|s| Box::new(s) as Box<dyn Io>) })
        }))
    }

    pub(crate) async fn connect(&self) -> std::io::Result<Box<dyn Io>> {
        (self.0)().await
    }
}

impl std::fmt::Debug for Connector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Connector(..)")
    }
}

impl PartialEq for Connector {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Connector {}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            heartbeat: Duration::from_secs(10),
            login_timeout: Duration::from_secs(30),
            reconnect_window: Duration::from_secs(300),
            connector: None,
            extra_roots_pem: None,
        }
    }
}

/// Why a call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// The server (or the engine, for client-side codes like 1002031) refused the call with a
    /// protocol error code (§8).
    #[error("{message} ({code})")]
    Code {
        /// Why the call failed (§8; [`ErrorCode::Unlisted`] for a code this version does not
        /// know).
        code: ErrorCode,
        /// What the code means, for people.
        message: String,
    },
    /// The engine's task has stopped (the runtime is shutting down).
    #[error("the engine has stopped")]
    Stopped,
}

impl Error {
    pub(crate) fn from_code(code: ErrorCode) -> Error {
        Error::Code { code, message: code.message().to_string() }
    }

    /// Why the call failed, if the server or the engine said (None for [`Error::Stopped`]).
    pub fn error_code(&self) -> Option<ErrorCode> {
        match self {
            Error::Code { code, .. } => Some(*code),
            Error::Stopped => None,
        }
    }

    /// The protocol error code as the wire number (0 for [`Error::Stopped`]).
    pub fn code(&self) -> u32 {
        self.error_code().map_or(0, ErrorCode::code)
    }
}

/// A Parlor client: one user's session with a server, in any number of rooms.
///
/// Create it inside a tokio runtime; it spawns one task that owns the connection. Dropping the
/// engine ends the session: `bye` when the session is up on the connection; nothing while a
/// `hello` or `resume` waits for its answer (the client sends nothing then, protocol §9.3).
#[derive(Debug)]
pub struct Engine {
    tx: mpsc::UnboundedSender<Msg>,
    /// For what the engine reports without the core: a server URL that can never be connected.
    ev_tx: mpsc::UnboundedSender<Event>,
    url_ok: bool,
    events: Mutex<Option<mpsc::UnboundedReceiver<Event>>>,
    states: Arc<Mutex<HashMap<String, RoomStateReason>>>,
    next_handle: AtomicU64,
}

impl Engine {
    /// An engine for `app_id` talking to `server_url` (e.g. `ws://127.0.0.1:7700/v1/ws`), with
    /// the default [`EngineConfig`]. Must be called within a tokio runtime.
    pub fn new(app_id: u32, server_url: impl Into<String>) -> Engine {
        Engine::with_config(app_id, server_url, EngineConfig::default())
    }

    /// An engine with explicit settings. Must be called within a tokio runtime.
    pub fn with_config(app_id: u32, server_url: impl Into<String>, config: EngineConfig) -> Engine {
        let core_config = Config {
            app_id,
            heartbeat_ms: config.heartbeat.as_millis() as u64,
            login_timeout_ms: config.login_timeout.as_millis() as u64,
            reconnect_window_ms: config.reconnect_window.as_millis() as u64,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let states = Arc::new(Mutex::new(HashMap::new()));
        let server_url = server_url.into();
        let mut url_ok = valid_server_url(&server_url);
        let connector = match config.connector {
            Some(c) => Some(c),
            None if url_ok && server_url.starts_with("wss:") => {
                match crate::tls::client_config(config.extra_roots_pem.as_deref())
                    .and_then(|tls| crate::tls::connector(&server_url, tls))
                {
                    Ok(c) => Some(c),
                    Err(e) => {
                        tracing::error!(error = %e, "cannot set up TLS: every login fails");
                        url_ok = false;
                        None
                    }
                }
            }
            None => None,
        };
        tokio::spawn(driver::run(core_config, server_url, connector, rx, ev_tx.clone(), states.clone()));
        Engine { tx, ev_tx, url_ok, events: Mutex::new(Some(ev_rx)), states, next_handle: AtomicU64::new(1) }
    }

    /// The event stream. Only the first call returns it; later calls return `None`.
    pub fn events(&self) -> Option<mpsc::UnboundedReceiver<Event>> {
        self.events.lock().ok().and_then(|mut e| e.take())
    }

    /// The last reported state of a room (`LOGOUT` for a room never entered).
    pub fn room_state(&self, room_id: &str) -> RoomStateReason {
        self.states.lock().ok().and_then(|s| s.get(room_id).copied()).unwrap_or(RoomStateReason::Logout)
    }

    /// A login to a server URL that can never be connected (not `ws://` / `wss://` with a host)
    /// fails at once with LOGIN_FAILED 1002030 ("could not connect"), instead of retrying for the
    /// whole login timeout.
    fn refuse_login(&self, room: &str) -> Error {
        let code = ErrorCode::ConnectFailed;
        for (reason, error_code) in [(RoomStateReason::Logining, None), (RoomStateReason::LoginFailed, Some(code))] {
            if let Ok(mut s) = self.states.lock() {
                s.insert(room.to_string(), reason);
            }
            let _ = self.ev_tx.send(Event::RoomStateChanged {
                room_id: room.to_string(),
                reason,
                error_code,
                extended_data: serde_json::json!({}),
            });
        }
        Error::from_code(code)
    }

    async fn call(&self, cmd: Command) -> Result<Reply, Error> {
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = oneshot::channel();
        self.tx.send(Msg::Command { handle, cmd, reply }).map_err(|_| Error::Stopped)?;
        let r = rx.await.map_err(|_| Error::Stopped)?;
        match r.error_code {
            None => Ok(r),
            Some(code) => Err(Error::from_code(code)),
        }
    }

    /// Log in to a room; resolves when the room is LOGINED (or the login failed). The first
    /// login names the session's user and token.
    pub async fn login_room(
        &self,
        room_id: impl Into<String>,
        user: User,
        token: impl Into<String>,
        config: RoomConfig,
    ) -> Result<(), Error> {
        if !self.url_ok {
            return Err(self.refuse_login(&room_id.into()));
        }
        self.call(Command::LoginRoom { room: room_id.into(), user, token: token.into(), config }).await.map(drop)
    }

    /// Log out of a room.
    pub async fn logout_room(&self, room_id: impl Into<String>) -> Result<(), Error> {
        self.call(Command::LogoutRoom { room: room_id.into() }).await.map(drop)
    }

    /// Leave `from` and log in to `to` in one step; resolves when `to` is LOGINED (or failed).
    pub async fn switch_room(
        &self,
        from: impl Into<String>,
        to: impl Into<String>,
        token: Option<String>,
        config: RoomConfig,
    ) -> Result<(), Error> {
        self.call(Command::SwitchRoom { from: from.into(), to: to.into(), token, config }).await.map(drop)
    }

    /// Publish a stream in a room (re-published automatically after a reconnection that lost it).
    pub async fn publish_stream(
        &self,
        room_id: impl Into<String>,
        stream_id: impl Into<String>,
        extra_info: impl Into<String>,
    ) -> Result<(), Error> {
        self.call(Command::Publish { room: room_id.into(), stream: stream_id.into(), extra: extra_info.into() })
            .await
            .map(drop)
    }

    /// Stop publishing a stream.
    pub async fn stop_publishing_stream(
        &self,
        room_id: impl Into<String>,
        stream_id: impl Into<String>,
    ) -> Result<(), Error> {
        self.call(Command::Unpublish { room: room_id.into(), stream: stream_id.into() }).await.map(drop)
    }

    /// Set the extra info of a stream this client publishes.
    pub async fn set_stream_extra_info(
        &self,
        room_id: impl Into<String>,
        stream_id: impl Into<String>,
        extra_info: impl Into<String>,
    ) -> Result<(), Error> {
        self.call(Command::SetStreamExtra { room: room_id.into(), stream: stream_id.into(), extra: extra_info.into() })
            .await
            .map(drop)
    }

    /// Set one key of a room's extra info.
    pub async fn set_room_extra_info(
        &self,
        room_id: impl Into<String>,
        key: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<(), Error> {
        self.call(Command::SetRoomExtra { room: room_id.into(), key: key.into(), value: value.into() }).await.map(drop)
    }

    /// Send a broadcast message; returns the server's message id.
    pub async fn send_broadcast_message(
        &self,
        room_id: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<String, Error> {
        self.call(Command::Broadcast { room: room_id.into(), message: message.into() })
            .await
            .map(|r| r.message_id.unwrap_or_default())
    }

    /// Send a barrage message; returns the server's message id.
    pub async fn send_barrage_message(
        &self,
        room_id: impl Into<String>,
        message: impl Into<String>,
    ) -> Result<String, Error> {
        self.call(Command::Barrage { room: room_id.into(), message: message.into() })
            .await
            .map(|r| r.message_id.unwrap_or_default())
    }

    /// One page of a room's member list, in the order of user ids (protocol §9.9; ZIM's
    /// `queryRoomMemberList`): pass "" as `next_flag` for the first page, then the page's
    /// `next_flag` until it is "". `count` is 1 to 500. A member who stays in the room through a
    /// whole walk is on exactly one page, whoever comes and goes meanwhile.
    pub async fn query_room_member_list(
        &self,
        room_id: impl Into<String>,
        next_flag: impl Into<String>,
        count: u32,
    ) -> Result<MemberPage, Error> {
        let cmd = Command::QueryRoomMemberList { room: room_id.into(), next_flag: next_flag.into(), count };
        self.call(cmd).await.map(|r| r.members.unwrap_or_default())
    }

    /// Send a custom command to some users of a room (an empty `to`: everyone else).
    pub async fn send_custom_command(
        &self,
        room_id: impl Into<String>,
        to: Vec<String>,
        command: impl Into<String>,
    ) -> Result<(), Error> {
        self.call(Command::CustomCommand { room: room_id.into(), to, command: command.into() }).await.map(drop)
    }

    /// Replace the session's token (answer to [`Event::RoomTokenWillExpire`]).
    pub async fn renew_token(&self, token: impl Into<String>) -> Result<(), Error> {
        self.call(Command::RenewToken { token: token.into() }).await.map(drop)
    }
}

/// Whether `url` can ever be connected: `ws://` or `wss://` with a host.
fn valid_server_url(url: &str) -> bool {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    match url.into_client_request() {
        Ok(req) => {
            let uri = req.uri();
            matches!(uri.scheme_str(), Some("ws") | Some("wss")) && uri.host().is_some_and(|h| !h.is_empty())
        }
        Err(_) => false,
    }
}

#[cfg(test)]
mod url_tests {
    use super::valid_server_url;

    #[test]
    fn server_urls() {
        assert!(valid_server_url("ws://127.0.0.1:7700/v1/ws"));
        assert!(valid_server_url("wss://parlor.example/v1/ws"));
        assert!(!valid_server_url("http://127.0.0.1:7700/v1/ws"));
        assert!(!valid_server_url("not a url"));
        assert!(!valid_server_url(""));
    }
}
