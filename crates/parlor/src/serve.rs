//! `parlor serve`: its flags, how they combine with the environment and the config file
//! ([`resolve`]), and the process's life: start, serve, drain on the first SIGTERM / Ctrl-C,
//! exit at once on the second.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::parser::ValueSource;
use clap::ArgMatches;
use parlor_server::config::{limits, AppSettings, TlsFiles, WebhookSettings, DEV_APP_ID, DEV_APP_SECRET};
use parlor_server::{Server, ServerConfig};
use tokio::signal::unix::{signal, SignalKind};

use crate::config_file::{self, FileConfig, LogFormat};

/// Flags of `parlor serve`; each also an environment variable `PARLOR_<FLAG>` and a key of the
/// config file.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A TOML configuration file (see docs/operations.md, "Configuration file"); flags and
    /// environment variables override what it sets.
    #[arg(long, env = "PARLOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long, env = "PARLOR_LISTEN", default_value = "127.0.0.1:7700")]
    pub listen: SocketAddr,
    /// An app as ID:SECRET (repeatable; comma-separated in the environment). Without any, the
    /// dev app 1:parlor-dev-secret is used.
    #[arg(long = "app", env = "PARLOR_APP", value_delimiter = ',')]
    pub apps: Vec<String>,
    /// Heartbeat interval clients are told to use.
    #[arg(long, env = "PARLOR_HEARTBEAT", default_value = "10s", value_parser = humantime::parse_duration)]
    pub heartbeat: Duration,
    /// Silence after which a session goes offline and leaves its rooms.
    #[arg(long, env = "PARLOR_SESSION_TIMEOUT", default_value = "90s", value_parser = humantime::parse_duration)]
    pub session_timeout: Duration,
    /// How long an offline session can still resume.
    #[arg(long, env = "PARLOR_RETENTION", default_value = "20m", value_parser = humantime::parse_duration)]
    pub retention: Duration,
    /// Largest frame accepted, in bytes.
    #[arg(long, env = "PARLOR_MAX_FRAME", default_value_t = 65536)]
    pub max_frame: usize,
    /// Broadcasts / barrages per second per room (1002073 beyond).
    #[arg(long, env = "PARLOR_ROOM_MESSAGE_RATE", default_value_t = 10)]
    pub room_message_rate: u32,
    /// Broadcasts / barrages per second per user (1002073 beyond).
    #[arg(long, env = "PARLOR_USER_MESSAGE_RATE", default_value_t = 2)]
    pub user_message_rate: u32,
    /// Room requests per second per session (1002072 beyond).
    #[arg(long, env = "PARLOR_REQUEST_RATE", default_value_t = 50)]
    pub request_rate: u32,
    /// Largest outbound queue per connection, in bytes, before it is cut with 4008.
    #[arg(long, env = "PARLOR_OUTBOUND_LIMIT", default_value_t = 1024 * 1024)]
    pub outbound_limit: usize,
    /// Rooms with this many members or more hold the `user_add` of a login up to
    /// --users-batch-window, to announce a burst of logins in one event (memory engine; 0: never).
    #[arg(long, env = "PARLOR_USERS_BATCH_FROM", default_value_t = 50)]
    pub users_batch_from: usize,
    /// How long a big room's logins wait to be announced together (and their `ok`s with them).
    #[arg(long, env = "PARLOR_USERS_BATCH_WINDOW", default_value = "50ms", value_parser = humantime::parse_duration)]
    pub users_batch_window: Duration,
    /// Rooms with more members than this are large (protocol §9.10): a login's `ok` lists the
    /// first 100 others, arrivals and departures go out in batches (`user_update`) at most once
    /// per --presence-interval, counts stay exact (0: no room is ever large).
    #[arg(long, env = "PARLOR_FULL_PRESENCE_UP_TO", default_value_t = 500)]
    pub full_presence_up_to: usize,
    /// How often a large room's batch of arrivals and departures (and its `online` count) is sent.
    #[arg(long, env = "PARLOR_PRESENCE_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub presence_interval: Duration,
    /// Share sessions and rooms with other nodes through this Redis (redis://HOST:PORT[/DB]);
    /// several comma-separated URLs are the seed nodes of a Redis Cluster;
    /// redis+sentinel://HOST:PORT[,HOST:PORT…]/MASTER is the master Redis Sentinel names
    /// (followed through a failover). Without it, everything is in this process's memory.
    #[arg(long, env = "PARLOR_REDIS")]
    pub redis: Option<String>,
    /// This node's id (in logs and /healthz; default: random).
    #[arg(long, env = "PARLOR_NODE_ID")]
    pub node_id: Option<String>,
    /// Most WebSocket connections at once from one IP address; beyond, upgrades get HTTP 429
    /// (0: no limit).
    #[arg(long, env = "PARLOR_MAX_CONNECTIONS_PER_IP", default_value_t = limits::MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,
    /// New WebSocket upgrades per second on this node; beyond, HTTP 503 (0: no limit).
    #[arg(long, env = "PARLOR_CONNECTION_RATE", default_value_t = limits::CONNECTION_RATE)]
    pub connection_rate: u32,
    /// Most sessions of one app connected to this node; beyond, `hello` gets error 1000005
    /// (0: no limit).
    #[arg(long, env = "PARLOR_MAX_SESSIONS_PER_APP", default_value_t = limits::MAX_SESSIONS_PER_APP)]
    pub max_sessions_per_app: usize,
    /// Most offline sessions kept for resume (memory engine); beyond, the oldest are dropped
    /// early (0: no limit).
    #[arg(long, env = "PARLOR_MAX_OFFLINE_SESSIONS", default_value_t = limits::MAX_OFFLINE_SESSIONS)]
    pub max_offline_sessions: usize,
    /// TLS certificate chain (PEM); with --tls-key the listener speaks only TLS (wss://, https://).
    #[arg(long, env = "PARLOR_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PARLOR_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// How long a graceful drain (SIGTERM, Ctrl-C) spreads closing the connections over (0:
    /// all at once); the process exits when the last is gone, at most a few seconds after.
    #[arg(long, env = "PARLOR_DRAIN_TIME", default_value = "10s", value_parser = humantime::parse_duration)]
    pub drain_time: Duration,
    /// Log lines as `text` (colours only when stderr is a terminal) or `json` (one object a line).
    #[arg(long, env = "PARLOR_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// A webhook URL every app's events are sent to (repeatable; comma-separated in the
    /// environment). Replaces the config file's `webhooks`.
    #[arg(long = "webhook", env = "PARLOR_WEBHOOK", value_delimiter = ',', value_name = "URL")]
    pub webhooks: Vec<String>,
}

/// An app as `ID:SECRET`.
pub fn parse_app(s: &str) -> anyhow::Result<(u32, String)> {
    let (id, secret) = s.split_once(':').context("an app is ID:SECRET")?;
    let id: u32 = id.trim().parse().context("the app id is an unsigned 32-bit integer")?;
    if id == 0 {
        bail!("the app id must be > 0");
    }
    if secret.is_empty() {
        bail!("the app secret must not be empty");
    }
    Ok((id, secret.to_string()))
}

/// What `serve` runs with.
#[derive(Debug)]
pub struct Resolved {
    pub config: ServerConfig,
    pub log_format: LogFormat,
    /// No app was given anywhere: the dev app is used.
    pub dev_mode: bool,
}

/// The settings of `serve`: each from its flag if given, else its environment variable, else
/// the config file, else its default. `matches` are `serve`'s own (for where each value came
/// from). Lists (`--app`, `--webhook`) given by a flag or the environment replace the file's
/// (`[[app]]` tables with their settings, `webhooks`) rather than add to them.
pub fn resolve(mut args: ServeArgs, matches: &ArgMatches, file: Option<FileConfig>) -> anyhow::Result<Resolved> {
    let given =
        |id: &str| matches!(matches.value_source(id), Some(ValueSource::CommandLine | ValueSource::EnvVariable));
    let mut app_settings = HashMap::new();
    let mut webhook = WebhookSettings::default();
    if let Some(file) = file {
        macro_rules! from_file {
            ($($key:ident),* ; $($opt:ident),*) => {
                $(if let (Some(v), false) = (file.$key, given(stringify!($key))) { args.$key = v; })*
                $(if let (Some(v), false) = (file.$opt, given(stringify!($opt))) { args.$opt = Some(v); })*
            };
        }
        from_file!(listen, heartbeat, session_timeout, retention, max_frame, room_message_rate, user_message_rate,
            request_rate, outbound_limit, max_connections_per_ip, connection_rate, max_sessions_per_app,
            max_offline_sessions, drain_time, log_format, users_batch_from, users_batch_window, full_presence_up_to,
            presence_interval;
            redis, node_id, tls_cert, tls_key);
        if !given("apps") {
            for app in file.apps {
                let id = app.id.into_inner();
                args.apps.push(format!("{id}:{}", app.secret.get_ref()));
                let webhooks = app.webhooks.into_iter().map(|u| u.into_inner()).collect();
                let settings = AppSettings {
                    webhooks,
                    max_sessions: app.max_sessions,
                    full_presence_up_to: app.full_presence_up_to,
                };
                app_settings.insert(id, settings);
            }
        }
        if let (Some(urls), false) = (file.webhooks, given("webhooks")) {
            args.webhooks = urls.into_iter().map(|u| u.into_inner()).collect();
        }
        if let Some(w) = file.webhook {
            let d = WebhookSettings::default();
            webhook = WebhookSettings {
                queue: w.queue.unwrap_or(d.queue),
                attempts: w.attempts.unwrap_or(d.attempts),
                timeout: w.timeout.unwrap_or(d.timeout),
                retry_base: w.retry_base.unwrap_or(d.retry_base),
            };
        }
    }
    let mut apps = HashMap::new();
    for a in &args.apps {
        let (id, secret) = parse_app(a)?;
        if apps.insert(id, secret).is_some() {
            bail!("app {id} is given twice");
        }
    }
    let dev_mode = apps.is_empty();
    if dev_mode {
        apps.insert(DEV_APP_ID, DEV_APP_SECRET.to_string());
    }
    let tls = match (args.tls_cert, args.tls_key) {
        (Some(cert), Some(key)) => Some(TlsFiles { cert, key }),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together: give both or neither"),
    };
    let config = ServerConfig {
        listen: args.listen,
        apps,
        dev_mode,
        heartbeat: args.heartbeat,
        session_timeout: args.session_timeout,
        retention: args.retention,
        max_frame: args.max_frame,
        room_message_rate: args.room_message_rate,
        user_message_rate: args.user_message_rate,
        request_rate: args.request_rate,
        outbound_limit: args.outbound_limit,
        users_batch_from: args.users_batch_from,
        users_batch_window: args.users_batch_window,
        full_presence_up_to: args.full_presence_up_to,
        presence_interval: args.presence_interval,
        redis: args
            .redis
            .iter()
            .flat_map(|r| r.split(','))
            .map(|u| u.trim().to_string())
            .filter(|u| !u.is_empty())
            .collect(),
        max_connections_per_ip: args.max_connections_per_ip,
        connection_rate: args.connection_rate,
        max_sessions_per_app: args.max_sessions_per_app,
        max_offline_sessions: args.max_offline_sessions,
        tls,
        webhooks: args.webhooks.iter().map(|u| u.trim().to_string()).filter(|u| !u.is_empty()).collect(),
        webhook,
        app_settings,
        drain_time: args.drain_time,
        ..ServerConfig::default()
    };
    let config = match args.node_id {
        Some(node_id) => ServerConfig { node_id, ..config },
        None => config,
    };
    Ok(Resolved { config, log_format: args.log_format, dev_mode })
}

/// Read the config file `args.config` names, if any; on errors, print them (as `parlor config
/// check` does) and exit with code 1.
pub fn read_file(args: &ServeArgs) -> Option<FileConfig> {
    let path = args.config.as_ref()?;
    match config_file::load(path) {
        Ok(f) => Some(f),
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            std::process::exit(1);
        }
    }
}

/// Run the server until a signal: the first SIGTERM or SIGINT (Ctrl-C) drains it (see
/// `parlor_server::drain`), a second one during the drain stops it at once.
pub async fn serve(r: Resolved) -> anyhow::Result<()> {
    let Resolved { config, dev_mode, .. } = r;
    if dev_mode {
        tracing::warn!(
            "no app given: using the dev app {DEV_APP_ID}:{DEV_APP_SECRET}; anyone who knows this secret can mint tokens"
        );
    }
    let (listen, node_id, tls) = (config.listen, config.node_id.clone(), config.tls.is_some());
    let engine = if config.redis.is_empty() { "memory" } else { "redis" };
    let mut term = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
    let mut server = Server::start(config).await.with_context(|| format!("cannot start on {listen}"))?;
    let (http, ws) = if tls { ("https", "wss") } else { ("http", "ws") };
    tracing::info!(addr = %server.addr, node = %node_id, engine, "parlor serving: {ws}://{}/v1/ws", server.addr);
    println!("parlor listening on {http}://{}  (WebSocket: {ws}://{}/v1/ws)", server.addr, server.addr);
    let signalled = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = server.stopped() => return Ok(()),
    };
    tracing::info!(signal = signalled, "draining; a second signal stops at once");
    tokio::select! {
        report = server.drain() => {
            tracing::info!(closed = report.closed, batches = report.batches, left = report.left, "stopped");
        }
        _ = term.recv() => tracing::warn!("second signal: stopping at once"),
        _ = int.recv() => tracing::warn!("second signal: stopping at once"),
    }
    // Whatever is still open is closed with 4010 now (best effort: the process ends next).
    server.node.hub.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    #[derive(Debug, clap::Parser)]
    struct T {
        #[command(flatten)]
        serve: ServeArgs,
    }

    fn resolve_with(argv: &[&str], toml: &str) -> Resolved {
        let m = T::command().try_get_matches_from(std::iter::once("t").chain(argv.iter().copied())).unwrap();
        let args = T::from_arg_matches(&m).unwrap().serve;
        let file = config_file::parse(Path::new("t.toml"), toml).unwrap();
        resolve(args, &m, Some(file)).unwrap()
    }

    const FILE: &str = r#"
heartbeat = "3s"
session_timeout = "30s"
retention = "40m"
drain_time = "7s"
log_format = "json"
webhooks = ["http://file.example/all"]
[webhook]
attempts = 2
[[app]]
id = 5
secret = "file-secret"
webhooks = ["http://file.example/5"]
max_sessions = 10
"#;

    #[test]
    fn a_flag_beats_the_env_which_beats_the_file_which_beats_the_default() {
        // The only test of this binary that sets PARLOR_ variables (they are process-wide).
        std::env::set_var("PARLOR_SESSION_TIMEOUT", "33s");
        std::env::set_var("PARLOR_RETENTION", "44m");
        std::env::set_var("PARLOR_WEBHOOK", "http://env.example/a,http://env.example/b");
        let r = resolve_with(&["--retention", "50m", "--log-format", "text"], FILE);
        let c = &r.config;
        assert_eq!(c.heartbeat, Duration::from_secs(3), "the file beats the default");
        assert_eq!(c.session_timeout, Duration::from_secs(33), "the env beats the file");
        assert_eq!(c.retention, Duration::from_secs(50 * 60), "the flag beats the env and the file");
        assert_eq!(c.drain_time, Duration::from_secs(7));
        assert_eq!(r.log_format, LogFormat::Text, "the flag beats the file");
        assert_eq!(c.max_frame, 65536, "neither: the default");
        assert_eq!(c.webhooks, ["http://env.example/a", "http://env.example/b"], "the env's list replaces the file's");
        assert_eq!((c.webhook.attempts, c.webhook.queue), (2, WebhookSettings::default().queue));
        assert_eq!(c.apps, HashMap::from([(5, "file-secret".to_string())]));
        assert!(!r.dev_mode);
        let five = &c.app_settings[&5];
        assert_eq!(
            (five.webhooks.as_slice(), five.max_sessions),
            (&["http://file.example/5".to_string()][..], Some(10))
        );

        std::env::set_var("PARLOR_APP", "8:env-secret");
        let r = resolve_with(&["--app", "9:flag-secret"], FILE);
        assert_eq!(
            r.config.apps,
            HashMap::from([(9, "flag-secret".to_string())]),
            "the flag's apps replace the file's"
        );
        assert!(r.config.app_settings.is_empty(), "and their settings");
        let r = resolve_with(&[], FILE);
        assert_eq!(r.config.apps, HashMap::from([(8, "env-secret".to_string())]), "the env's apps replace the file's");
        assert_eq!(r.log_format, LogFormat::Json, "the file beats the default");
        for v in ["PARLOR_SESSION_TIMEOUT", "PARLOR_RETENTION", "PARLOR_WEBHOOK", "PARLOR_APP"] {
            std::env::remove_var(v);
        }
        let r = resolve_with(&["--tls-cert", "flag.pem"], "tls_key = \"file.pem\"\ntls_cert = \"c\"\n");
        let tls = r.config.tls.expect("the flag's cert with the file's key");
        assert_eq!((tls.cert.to_str(), tls.key.to_str()), (Some("flag.pem"), Some("file.pem")));
        let m = T::command().try_get_matches_from(["t", "--tls-key", "k.pem"]).unwrap();
        let args = T::from_arg_matches(&m).unwrap().serve;
        let e = resolve(args, &m, None).unwrap_err().to_string();
        assert_eq!(e, "--tls-cert and --tls-key go together: give both or neither");
        let r = resolve_with(&[], "");
        assert!(r.dev_mode && r.config.apps.contains_key(&DEV_APP_ID), "no app anywhere: the dev app");
        assert_eq!(r.config.drain_time, Duration::from_secs(10));
    }
}
