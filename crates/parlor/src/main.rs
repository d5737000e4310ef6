//! `parlor`: the Parlor room server and its tools.
//!
//! - `parlor serve` runs the server (in memory, or as one of several nodes sharing Redis);
//! - `parlor token` mints a token for an app;
//! - `parlor bench` runs the load generator (see `docs/benchmarks.md`);
//! - `parlor sim` runs the seeded fault simulation (see `docs/reliability.md`);
//! - `parlor config check FILE` validates a config file.
//! - `parlor rooms|users|send …` call the admin API (see `docs/operations.md`).
//!
//! Every flag of `serve` can also be given as an environment variable `PARLOR_<FLAG>` and as a
//! key of the config file (`serve --config FILE`; see `config_file`).

// Denied, not forbidden: `tune_allocator` makes the one audited FFI call.
#![deny(unsafe_code)]

mod admin_cli;
mod config_file;
mod logs;
mod serve;
mod sim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use parlor_protocol::token::{self, Claims};
use serve::{parse_app, ServeArgs};

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
    /// Check a configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
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

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Validate a config file: print OK and what it sets, or every error with its line and
    /// column (exit code 1).
    Check {
        /// The TOML file.
        file: PathBuf,
    },
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

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
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

/// mimalloc's `mi_option_purge_delay` (mimalloc.h of v3.3, which libmimalloc-sys 0.1.49 builds
/// by default, and of v2.3: the same index in both).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Two allocator settings, each still decided by its `MIMALLOC_*` variable when that is set.
///
/// - **No transparent huge pages** (unless `MIMALLOC_ALLOW_THP` is set): mimalloc asks the
///   kernel for huge pages on its arenas (`madvise(MADV_HUGEPAGE)`), so the first touch of each
///   2 MiB of a fresh or purged arena region faults in a whole zeroed huge page. That zeroing
///   was the kernel's `clear_page_erms`: 16 % of the server's samples in W1, 74 % in W2 at
///   320 msg/s (`do_huge_pmd_anonymous_page` under mimalloc's page init in every stack).
///   Off, a touch costs one 4 KiB page, and only for what is used (docs/benchmarks.md,
///   "Performance, round 3"). mimalloc's own `allow_thp` option cannot do it from here: its
///   first arena is reserved (and advised) by the allocations before `main`. The process's
///   `PR_SET_THP_DISABLE` covers existing mappings too, and is inherited by the servers and
///   workers `parlor bench` starts.
/// - **Purge after 1 s** (unless `MIMALLOC_PURGE_DELAY` is set), not sooner: under load the
///   server frees and reallocates the same pages constantly, and a page given back and used
///   again is faulted in zeroed.
#[allow(unsafe_code)]
fn tune_allocator() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_none() {
        // SAFETY: called first thing in main, before any other thread exists.
        unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 1000) };
    }
    #[cfg(target_os = "linux")]
    if std::env::var_os("MIMALLOC_ALLOW_THP").is_none() {
        // SAFETY: a plain prctl with integer arguments; a kernel without it answers EINVAL,
        // which leaves things as they were.
        unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) };
    }
}

fn main() -> anyhow::Result<()> {
    tune_allocator();
    run()
}

#[tokio::main]
async fn run() -> anyhow::Result<()> {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
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
    if let Command::Config(ConfigCommand::Check { file }) = &cli.command {
        if !config_file::check(file) {
            std::process::exit(1);
        }
        return Ok(());
    }
    if let Command::Serve(args) = cli.command {
        // The file is read before logging starts: it may set the log format.
        let file = serve::read_file(&args);
        let serve_matches = matches.subcommand_matches("serve").expect("the serve subcommand");
        let resolved = serve::resolve(args, serve_matches, file)?;
        logs::init(resolved.log_format);
        return serve::serve(resolved).await;
    }
    logs::init(config_file::LogFormat::Text);
    match cli.command {
        Command::Token(a) => mint(a),
        Command::BarePeer { listen } => parlor_bench::bare_peer(listen).await,
        Command::Rooms(a) => admin_cli::rooms(a).await,
        Command::Users(a) => admin_cli::users(a).await,
        Command::Send(a) => admin_cli::send(a).await,
        Command::Serve(_) | Command::Config(_) | Command::Bench(_) | Command::Sim(_) => unreachable!("handled above"),
    }
}
