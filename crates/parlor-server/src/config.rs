//! Server settings. Every timeout and limit of the protocol is a setting with the protocol's
//! default, so that tests can shorten them and operators can tune them.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The dev app used when no `--app` is given.
pub const DEV_APP_ID: u32 = 1;
/// The dev app's secret.
pub const DEV_APP_SECRET: &str = "parlor-dev-secret";

/// Everything the server can be told.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Where to listen.
    pub listen: SocketAddr,
    /// App id → server secret.
    pub apps: HashMap<u32, String>,
    /// True when `apps` is the dev app only (enables the dev token endpoint of the demo page).
    pub dev_mode: bool,
    /// How often clients ping (sent in `welcome`).
    pub heartbeat: Duration,
    /// Silence after which a session goes offline.
    pub session_timeout: Duration,
    /// How long an offline session can still resume.
    pub retention: Duration,
    /// Largest accepted frame, in bytes.
    pub max_frame: usize,
    /// Largest outbound queue per connection before it is cut with 4008.
    pub outbound_limit: usize,
    /// Most rooms per session.
    pub max_rooms: usize,
    /// Time allowed between the upgrade and `hello`.
    pub hello_timeout: Duration,
    /// Each channel log keeps at least this many events…
    pub log_len: usize,
    /// …and every event younger than this.
    pub log_age: Duration,
    /// Room requests per second per session (1002072 beyond).
    pub request_rate: u32,
    /// Broadcasts / barrages per second per room (1002073 beyond).
    pub room_message_rate: u32,
    /// Broadcasts / barrages per second per user (1002073 beyond).
    pub user_message_rate: u32,
    /// Commands per second per session (1002073 beyond).
    pub command_rate: u32,
    /// How often the `online` count is sent (only when changed).
    pub online_interval: Duration,
    /// How long before a token's expiry `token_will_expire` is sent.
    pub token_warning: Duration,
    /// How many recent answers a session remembers for repeated request ids.
    pub answer_memory: usize,
    /// Rooms with this many members or more (0: none) hold the `user_add` of a login up to
    /// `users_batch_window` for more logins to announce with it (memory engine).
    pub users_batch_from: usize,
    /// How long a big room's logins wait to be announced together.
    pub users_batch_window: Duration,
    /// Rooms with more members than this are large (protocol §9.10): the `ok` lists a page,
    /// arrivals and departures go out in `user_update` batches (0: no room is large). An app's
    /// own setting ([`AppSettings::full_presence_up_to`]) wins.
    pub full_presence_up_to: usize,
    /// At most one `user_update` (and `online`) per large room per this interval.
    pub presence_interval: Duration,
    /// The Redis engine's server (`redis://HOST:PORT[/DB]`); empty for the memory engine.
    /// Several URLs are the seed nodes of a Redis Cluster; `redis+sentinel://HOST:PORT[,…]/MASTER`
    /// (split at its commas like the others) is a Sentinel deployment.
    pub redis: Vec<String>,
    /// This node's id (in logs, `/healthz`, and the Redis engine's node records).
    pub node_id: String,
    /// Most WebSocket connections open at once from one IP address; an upgrade beyond is
    /// answered HTTP 429 (0: no limit).
    pub max_connections_per_ip: usize,
    /// New WebSocket upgrades per second on this node (a burst of one second's worth is
    /// allowed); an upgrade beyond is answered HTTP 503, which clients take as one failed
    /// attempt and back off (protocol §7) (0: no limit).
    pub connection_rate: u32,
    /// Most sessions of one app connected to this node; a `hello` beyond gets `error` 1000005
    /// and close 1008 (0: no limit). Counted per node, also with Redis.
    pub max_sessions_per_app: usize,
    /// Most offline sessions kept for resume — by this node's memory engine in all, by the
    /// Redis engine per app (in Redis, for every node); beyond, those quiet longest are dropped
    /// before their retention ends and their resume gets 1002057 (0: no limit).
    pub max_offline_sessions: usize,
    /// A TLS certificate chain and private key: the listener then speaks only TLS (`wss://`,
    /// `https://`).
    pub tls: Option<TlsFiles>,
    /// Webhook URLs every app's events are sent to (`--webhook`; see `crate::webhook`).
    pub webhooks: Vec<String>,
    /// How webhooks are queued and retried.
    pub webhook: WebhookSettings,
    /// Per-app settings beyond the secret (from the config file): their own webhooks, limits.
    pub app_settings: HashMap<u32, AppSettings>,
    /// How long a graceful drain (SIGTERM, Ctrl-C) spreads closing the connections over.
    pub drain_time: Duration,
}

/// Settings of one app beyond its secret (the config file's `[[app]]` tables).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppSettings {
    /// Webhook URLs of this app's events, in addition to [`ServerConfig::webhooks`].
    pub webhooks: Vec<String>,
    /// This app's own `max_sessions_per_app` (sessions connected to this node), when set.
    pub max_sessions: Option<usize>,
    /// This app's own `full_presence_up_to`, when set.
    pub full_presence_up_to: Option<usize>,
}

/// How webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    /// Most events waiting per app; beyond, new events are dropped and counted as dead letters.
    pub queue: usize,
    /// Attempts per event before it is a dead letter.
    pub attempts: u32,
    /// Time allowed for one attempt (connect and answer).
    pub timeout: Duration,
    /// The first retry's delay; it doubles per attempt (with jitter), up to 30 s.
    pub retry_base: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            queue: 10_000,
            attempts: 8,
            timeout: Duration::from_secs(5),
            retry_base: Duration::from_millis(500),
        }
    }
}

/// Where the TLS certificate and key are (PEM files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// The defaults of the limits of a public server, and why (also in `docs/operations.md`).
pub mod limits {
    /// 1 000 connections per IP address: far above one person's tabs and devices, high enough
    /// for an office or a carrier-grade NAT behind one address, and still only 5 % of a
    /// process's 20 000 open files, so that one address cannot take the node's sockets.
    pub const MAX_CONNECTIONS_PER_IP: usize = 1000;
    /// 1 000 new upgrades per second per node: a node of 20 000 connections cut at once comes
    /// back, with the clients' jittered backoff (up to 10 s), at about 2 000 per second at
    /// first; 1 000 spreads that over ~20 s instead of letting the TLS handshakes, token checks
    /// and resumes of all of them compete with the delivery to those already back.
    pub const CONNECTION_RATE: u32 = 1000;
    /// 20 000 sessions per app per node: a node's open-file budget, so that one app cannot
    /// take a shared node from the others, while one app alone can fill it.
    pub const MAX_SESSIONS_PER_APP: usize = 20_000;
    /// 100 000 offline sessions: a few KiB each (the direct channel log, the answers
    /// remembered), a few hundred MiB at most — five full nodes' worth of clients gone at once.
    pub const MAX_OFFLINE_SESSIONS: usize = 100_000;
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 7700)),
            apps: HashMap::from([(DEV_APP_ID, DEV_APP_SECRET.to_string())]),
            dev_mode: true,
            heartbeat: Duration::from_secs(10),
            session_timeout: Duration::from_secs(90),
            retention: Duration::from_secs(20 * 60),
            max_frame: 64 * 1024,
            outbound_limit: 1024 * 1024,
            max_rooms: 5,
            hello_timeout: Duration::from_secs(10),
            log_len: 1024,
            log_age: Duration::from_secs(5 * 60),
            request_rate: 50,
            room_message_rate: 10,
            user_message_rate: 2,
            command_rate: 10,
            online_interval: Duration::from_secs(30),
            token_warning: Duration::from_secs(30),
            answer_memory: 64,
            users_batch_from: 50,
            users_batch_window: Duration::from_millis(50),
            full_presence_up_to: 500,
            presence_interval: Duration::from_secs(1),
            redis: Vec::new(),
            node_id: format!("{:08x}", rand::random::<u32>()),
            max_connections_per_ip: limits::MAX_CONNECTIONS_PER_IP,
            connection_rate: limits::CONNECTION_RATE,
            max_sessions_per_app: limits::MAX_SESSIONS_PER_APP,
            max_offline_sessions: limits::MAX_OFFLINE_SESSIONS,
            tls: None,
            webhooks: Vec::new(),
            webhook: WebhookSettings::default(),
            app_settings: HashMap::new(),
            drain_time: Duration::from_secs(10),
        }
    }
}

impl ServerConfig {
    /// The largest room of `app` with full presence (§9.10; 0: every room has it).
    pub fn full_presence_up_to(&self, app: u32) -> usize {
        self.app_settings.get(&app).and_then(|a| a.full_presence_up_to).unwrap_or(self.full_presence_up_to)
    }

    /// Whether a room of `app` with `members` members is large (§9.10).
    pub fn is_large(&self, app: u32, members: usize) -> bool {
        let up_to = self.full_presence_up_to(app);
        up_to > 0 && members > up_to
    }

    /// A config for tests: port 0 on loopback, one app, everything else default.
    pub fn for_tests(app_id: u32, secret: &str) -> ServerConfig {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            apps: HashMap::from([(app_id, secret.to_string())]),
            dev_mode: false,
            ..ServerConfig::default()
        }
    }
}
