//! Seeded fault simulation of Parlor: the real server rules (the memory engine, through the
//! same `Node` and connection code as `parlor serve`) and real client cores
//! (`parlor-client-core`, driven as the Rust SDK drives it) in one process, on tokio's paused
//! clock, each client on its own simulated [`Link`](parlor_server::memory::Link) that is cut,
//! black-holed, delayed and refused, while the server restarts.
//!
//! One `u64` seed gives one [`Schedule`]: several clients (one a second client of another's
//! user, for duplicate logins) in several rooms log in, switch, log out, publish, stop and
//! re-describe streams, set room extra info, broadcast, send barrages and commands, renew
//! tokens and let short ones expire, are kicked by the admin, while their paths fail. After the
//! last step every path heals and the run settles (30 s of simulated time); then
//! [`check::all`] holds it to the protocol's promises:
//!
//! - **Views**: every room a client is in (LOGINED / RECONNECTED) equals the server's (the admin
//!   side of the `Node`): the app's picture built from its events alone, and the core's own
//!   view — users, streams (with extra info), room extra info; and the server has nobody in a
//!   room whose client is not in it. No room is still LOGINING / RECONNECTING.
//! - **Seq**: every event each client receives on every channel is the next `seq` after what
//!   it knows (a login `ok`, its own `ok`s, a `snapshot`, its `resume` ack): no duplicate, no
//!   gap; a gap is only ever covered by a `snapshot`.
//! - **Events**: each room's reported states follow §7; updates never add what the app has or
//!   delete what it has not; the app never hears its own user or messages; no message or
//!   command is reported twice; no connection is opened with no room alive; the core's timers
//!   settle (a deadline that stays due without time passing is a failure, not a hang).
//! - **Requests**: every call is answered exactly once; no broadcast, barrage or command is
//!   executed twice (the others get it once, under one message id, the one the `ok` gave), and
//!   none that failed was delivered.
//! - **Presence**: the server's rooms are watched every 200 ms; nobody leaves a room without a
//!   cause: their logout / switch / login under way, an admin kick, their token expiring, a
//!   restart, or their path down for 70 s or more (a session is offline after 90 s of silence).
//!   Short faults (≤ 45 s) therefore must never make anyone gone.
//!
//! **Restarts** of the in-memory engine lose every session, room, log and extra info: that is
//! what the protocol promises for such a server (§6: a resume is refused with 1002057, the
//! client starts a new session, logs in again and reports RECONNECTED with the diff). So after
//! a restart the checks are the same, against the new server's state, except that a message
//! or command whose call was under way across a restart may legitimately run twice (the new
//! session sends it as new), and a removal at the restart is not a false "gone".
//!
//! **The Redis engine** ([`Engine::Redis`], `parlor sim --engine redis`, module [`redis`]): each
//! schedule starts its own `redis-server` (loopback, free port, `--save ""`) shared by 2–3
//! in-process nodes (`Node` + `RedisEngine`, as `parlor serve --redis` builds them), the clients
//! spread over them (client `c` on node `c % nodes`). Each node reaches Redis through its own
//! fault proxy, which the schedule delays (5–300 ms per chunk), stalls (a black hole of
//! 0.2–6 s: calls time out after 1 s, Redis counts as failing after 2 s, and the held bytes are
//! delivered at the heal, so a script may run after its call was given up) and cuts; and nodes
//! are killed: their connections end with no close frame, their Redis connections reset mid-call,
//! and a new node serves their clients, who resume there. There are no restarts: Redis keeps the
//! state. The schedules are shorter (steps every 0–2 s, fewer long faults) since simulated time
//! costs real time here: the clock is paused and moved by a pacer, 20 ms every 0.5 ms of real
//! time ([`redis::run_paced`]). The checks are the same, with the allowances protocol §9.6
//! gives a Redis that fails: a call reported failed with 1000004 (its retries ran out) may
//! still have run once, like one reported 1002053; an admin kick whose call failed may have run
//! (it counts as a cause of removal at the call and when that node's path to Redis heals); and the server's rooms are not watched while no node can
//! reach Redis (a removal is then seen at the next look).
//!
//! **Replay**: the schedule and every client's jitter are functions of the seed. Tasks that are
//! ready at the same simulated instant run in tokio's order (its `select!` draws from an
//! unseeded generator), so a replay runs the same schedule and almost always the same
//! interleaving. On the Redis engine the timing of Redis's answers is real, so the interleaving
//! varies more: most failures found so far replayed every time, one (7043) did not.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod check;
pub mod client;
pub mod harness;
pub mod picture;
pub mod redis;
pub mod schedule;
pub mod wire;

pub use schedule::Schedule;

/// What one schedule came to.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its seed.
    pub seed: u64,
    /// Events checked (received frames with a `seq`, and app events).
    pub events: u64,
    /// Broken invariants, described (empty: it passed).
    pub failures: Vec<String>,
}

/// Which engine the schedules run on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// One memory-engine node, restarts, tokio's paused clock (no real time passes).
    Memory,
    /// Two or three Redis-engine nodes on a real `redis-server`, Redis faults and node kills,
    /// a paced clock ([`redis`]).
    Redis,
}

/// The command that replays one seed.
pub fn replay_command(seed: u64, engine: Engine) -> String {
    match engine {
        Engine::Memory => {
            format!("PARLOR_SIM_SEED={seed} cargo test -p parlor-sim --test schedules   (or: parlor sim --seed {seed})")
        }
        Engine::Redis => format!(
            "PARLOR_SIM_REDIS_SEED={seed} cargo test -p parlor-sim --test redis_schedules   (or: parlor sim --engine redis --seed {seed})"
        ),
    }
}

/// Run `seed`'s schedule: on the memory engine on a fresh current-thread runtime with a paused
/// clock; on the Redis engine with a fresh `redis-server` and a paced clock.
pub fn run_seed(seed: u64, engine: Engine) -> Outcome {
    let (run, (events, failures)) = run_checked(seed, engine);
    drop(run);
    Outcome { seed, events, failures }
}

fn run_checked(seed: u64, engine: Engine) -> (harness::Run, (u64, Vec<String>)) {
    match engine {
        Engine::Memory => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .expect("a runtime");
            rt.block_on(async {
                let run = harness::run(Schedule::generate(seed, true)).await;
                let checked = check::all(&run);
                (run, checked)
            })
        }
        Engine::Redis => {
            let redis = parlor_testkit::RedisServer::start();
            redis::run_paced(async {
                let run = harness::run_redis(Schedule::generate_redis(seed), redis).await;
                let checked = check::all(&run);
                (run, checked)
            })
        }
    }
}

/// Run `seed` and print its schedule and every client's events (for looking into a failure).
pub fn trace_seed(seed: u64, engine: Engine) -> Outcome {
    let (run, (events, failures)) = run_checked(seed, engine);
    {
        for (at, a) in &run.schedule.steps {
            println!("{at:>7} ms  {a:?}");
        }
        for (c, client) in run.clients.iter().enumerate() {
            println!("--- c{c} ({})", run.users[c]);
            for (ms, e) in &client.record.lock().events {
                println!("{ms:>7} ms  {}", e.to_json());
            }
        }
        for (h, i) in &run.issued {
            println!("call {h} c{} at {} {:?} -> {:?}", i.c, i.at_ms, i.cmd, i.results);
        }
    }
    Outcome { seed, events, failures }
}

/// What a batch of schedules came to.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Schedules run.
    pub schedules: u64,
    /// Events checked in all.
    pub events: u64,
    /// The schedules that failed, with their failures.
    pub failed: Vec<Outcome>,
}

/// Run every seed in `seeds` on `threads` threads (each schedule on its own runtime), calling
/// `done` after each.
pub fn run_many(seeds: &[u64], threads: usize, engine: Engine, done: impl Fn(&Outcome) + Sync) -> Summary {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let summary = parking_lot::Mutex::new(Summary::default());
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(&seed) = seeds.get(i) else { return };
                let o = run_seed(seed, engine);
                done(&o);
                let mut s = summary.lock();
                s.schedules += 1;
                s.events += o.events;
                if !o.failures.is_empty() {
                    s.failed.push(o);
                }
            });
        }
    });
    let mut s = summary.into_inner();
    s.failed.sort_by_key(|o| o.seed);
    s
}
