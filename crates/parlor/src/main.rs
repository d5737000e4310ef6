//! `parlor`: the Parlor room server and its tools.
//!
//! - `parlor serve` runs the server (in memory, or as one of several nodes sharing Redis);
//! - `parlor token` mints a token for an app;
//! - `parlor bench` runs the load generator (see `docs/benchmarks.md`);
//! - `parlor sim` runs the seeded fault simulation (see `docs/reliability.md`);
//! - `parlor rooms|users|send …` call the admin API (see `docs/operations.md`).
//!
//! Every flag of `serve` can also be given as an environment variable `PARLOR_<FLAG>`.

#![forbid(unsafe_code)]

mod admin_cli;
mod sim;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand};
use parlor_protocol::token::{self, Claims};
use parlor_server::config::{limits, TlsFiles, DEV_APP_ID, DEV_APP_SECRET};
use parlor_server::{Server, ServerConfig};

#[derive(Debug, Parser)]
#[command(name = "parlor", version, about = "Parlor: rooms for real-time apps")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server.
    Serve(ServeArgs),
    /// Print a token for a user of an app.
    Token(TokenArgs),
    /// Load-test Parlor (or a peer server) with a workload: w1, w2, w3, w4, w5, slow, soak or all.
    Bench(parlor_bench::BenchArgs),
    /// Run the seeded fault simulation: N schedules of clients, faults and restarts.
    Sim(sim::SimArgs),
    /// The admin API: list, show or close rooms.
    Rooms(admin_cli::RoomsArgs),
    /// The admin API: kick users, force a reconnect.
    Users(admin_cli::UsersArgs),
    /// The admin API: send a broadcast, barrage or command as the server.
    Send(admin_cli::SendArgs),
    /// The bare WebSocket broadcaster `parlor bench --target bare` starts (benchmark peer).
    #[command(hide = true)]
    BarePeer {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7800")]
        listen: SocketAddr,
    },
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "PARLOR_LISTEN", default_value = "127.0.0.1:7700")]
    listen: SocketAddr,
    /// An app as ID:SECRET (repeatable; comma-separated in the environment). Without any, the
    /// dev app 1:parlor-dev-secret is used.
    #[arg(long = "app", env = "PARLOR_APP", value_delimiter = ',')]
    apps: Vec<String>,
    /// Heartbeat interval clients are told to use.
    #[arg(long, env = "PARLOR_HEARTBEAT", default_value = "10s", value_parser = humantime::parse_duration)]
    heartbeat: Duration,
    /// Silence after which a session goes offline and leaves its rooms.
    #[arg(long, env = "PARLOR_SESSION_TIMEOUT", default_value = "90s", value_parser = humantime::parse_duration)]
    session_timeout: Duration,
    /// How long an offline session can still resume.
    #[arg(long, env = "PARLOR_RETENTION", default_value = "20m", value_parser = humantime::parse_duration)]
    retention: Duration,
    /// Largest frame accepted, in bytes.
    #[arg(long, env = "PARLOR_MAX_FRAME", default_value_t = 65536)]
    max_frame: usize,
    /// Broadcasts / barrages per second per room (1002073 beyond).
    #[arg(long, env = "PARLOR_ROOM_MESSAGE_RATE", default_value_t = 10)]
    room_message_rate: u32,
    /// Broadcasts / barrages per second per user (1002073 beyond).
    #[arg(long, env = "PARLOR_USER_MESSAGE_RATE", default_value_t = 2)]
    user_message_rate: u32,
    /// Room requests per second per session (1002072 beyond).
    #[arg(long, env = "PARLOR_REQUEST_RATE", default_value_t = 50)]
    request_rate: u32,
    /// Largest outbound queue per connection, in bytes, before it is cut with 4008.
    #[arg(long, env = "PARLOR_OUTBOUND_LIMIT", default_value_t = 1024 * 1024)]
    outbound_limit: usize,
    /// Share sessions and rooms with other nodes through this Redis (redis://HOST:PORT[/DB]);
    /// several comma-separated URLs are the seed nodes of a Redis Cluster. Without it,
    /// everything is in this process's memory.
    #[arg(long, env = "PARLOR_REDIS")]
    redis: Option<String>,
    /// This node's id (in logs and /healthz; default: random).
    #[arg(long, env = "PARLOR_NODE_ID")]
    node_id: Option<String>,
    /// Most WebSocket connections at once from one IP address; beyond, upgrades get HTTP 429
    /// (0: no limit).
    #[arg(long, env = "PARLOR_MAX_CONNECTIONS_PER_IP", default_value_t = limits::MAX_CONNECTIONS_PER_IP)]
    max_connections_per_ip: usize,
    /// New WebSocket upgrades per second on this node; beyond, HTTP 503 (0: no limit).
    #[arg(long, env = "PARLOR_CONNECTION_RATE", default_value_t = limits::CONNECTION_RATE)]
    connection_rate: u32,
    /// Most sessions of one app connected to this node; beyond, `hello` gets error 1000005
    /// (0: no limit).
    #[arg(long, env = "PARLOR_MAX_SESSIONS_PER_APP", default_value_t = limits::MAX_SESSIONS_PER_APP)]
    max_sessions_per_app: usize,
    /// Most offline sessions kept for resume (memory engine); beyond, the oldest are dropped
    /// early (0: no limit).
    #[arg(long, env = "PARLOR_MAX_OFFLINE_SESSIONS", default_value_t = limits::MAX_OFFLINE_SESSIONS)]
    max_offline_sessions: usize,
    /// TLS certificate chain (PEM); with --tls-key the listener speaks only TLS (wss://, https://).
    #[arg(long, env = "PARLOR_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "PARLOR_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
struct TokenArgs {
    /// The app as ID:SECRET.
    #[arg(long, env = "PARLOR_APP")]
    app: String,
    /// The user id.
    #[arg(long)]
    user: String,
    /// Make the token valid for this room only.
    #[arg(long)]
    room: Option<String>,
    /// Validity.
    #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
    ttl: Duration,
    /// Forbid publishing streams.
    #[arg(long)]
    no_publish: bool,
}

fn parse_app(s: &str) -> anyhow::Result<(u32, String)> {
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

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut apps = HashMap::new();
    for a in &args.apps {
        let (id, secret) = parse_app(a)?;
        apps.insert(id, secret);
    }
    let dev_mode = apps.is_empty();
    if dev_mode {
        tracing::warn!(
            "no --app given: using the dev app {DEV_APP_ID}:{DEV_APP_SECRET}; anyone who knows this secret can mint tokens"
        );
        apps.insert(DEV_APP_ID, DEV_APP_SECRET.to_string());
    }
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
        tls: match (&args.tls_cert, &args.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles { cert: cert.clone(), key: key.clone() }),
            _ => None,
        },
        ..ServerConfig::default()
    };
    let config = match args.node_id.clone() {
        Some(node_id) => ServerConfig { node_id, ..config },
        None => config,
    };
    let node_id = config.node_id.clone();
    let mut server = Server::start(config).await.with_context(|| format!("cannot start on {}", args.listen))?;
    let engine = if args.redis.is_some() { "redis" } else { "memory" };
    let (http, ws) = if args.tls_cert.is_some() { ("https", "wss") } else { ("http", "ws") };
    tracing::info!(addr = %server.addr, node = %node_id, engine, "parlor serving: {ws}://{}/v1/ws", server.addr);
    println!("parlor listening on {http}://{}  (WebSocket: {ws}://{}/v1/ws)", server.addr, server.addr);
    let stop = server.take_shutdown();
    tokio::spawn(async move {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
    });
    server.wait().await;
    Ok(())
}

fn mint(args: TokenArgs) -> anyhow::Result<()> {
    let (app, secret) = parse_app(&args.app)?;
    parlor_protocol::validate::user_id(&args.user).map_err(|c| anyhow::anyhow!("user id: {c}"))?;
    if let Some(r) = &args.room {
        parlor_protocol::validate::room_id(r).map_err(|c| anyhow::anyhow!("room id: {c}"))?;
    }
    let nonce = format!("{:016x}", rand::random::<u64>());
    let mut claims = Claims::new(app, &args.user, now_s(), args.ttl.as_secs(), nonce);
    claims.room_id = args.room;
    if args.no_publish {
        claims.publish = Some(false);
    }
    println!("{}", token::mint(secret.as_bytes(), &claims));
    Ok(())
}

/// mimalloc instead of glibc's malloc: the server allocates and frees many small buffers across
/// threads (frames, queue blocks), where glibc's arenas showed up in profiles.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Command::Bench(args) = cli.command {
        // No log lines between the progress bars; the server child logs at warn.
        let reports = parlor_bench::run(args.clone()).await?;
        if !parlor_bench::finish(&args, &reports)? {
            std::process::exit(1);
        }
        return Ok(());
    }
    if let Command::Sim(args) = cli.command {
        // Each schedule runs on a runtime of its own, on threads of the simulation's own.
        if !tokio::task::block_in_place(|| sim::run(args)) {
            std::process::exit(1);
        }
        return Ok(());
    }
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(a) => serve(a).await,
        Command::Token(a) => mint(a),
        Command::BarePeer { listen } => parlor_bench::bare_peer(listen).await,
        Command::Rooms(a) => admin_cli::rooms(a).await,
        Command::Users(a) => admin_cli::users(a).await,
        Command::Send(a) => admin_cli::send(a).await,
        Command::Bench(_) | Command::Sim(_) => unreachable!("handled above"),
    }
}
