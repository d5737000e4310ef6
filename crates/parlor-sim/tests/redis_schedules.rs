//! The seeded fault simulation on the Redis engine in the test suite: a handful of fixed seeds
//! (each a fresh `redis-server` shared by 2–3 nodes, Redis faults and node kills, a paced clock:
//! a few seconds of real time each), on four threads. `scripts/test.sh` also runs a fresh window
//! of seeds of its own (`parlor sim --engine redis`).
//!
//! - `PARLOR_SIM_REDIS_SCHEDULES=N` runs N seeds instead, from `PARLOR_SIM_REDIS_FIRST`
//!   (default 0);
//! - `PARLOR_SIM_REDIS_SEED=S` replays the one schedule of seed S (with `PARLOR_SIM_TRACE=1`
//!   it prints the schedule, every client's events and every call).
//!
//! Needs `redis-server` on the PATH.

use parlor_sim::{replay_command, run_many, trace_seed, Engine};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

/// Seeds that failed before a fix (docs/reliability.md).
const FOUND_BUGS: &[u64] =
    &[102, 1111, 3107, 4205, 5241, 6144, 7038, 1824309316, 12022, 523395100, 34064, 35112, 35130, 36006];

#[test]
fn redis_schedules_keep_every_promise() {
    let seeds: Vec<u64> = match env_u64("PARLOR_SIM_REDIS_SEED") {
        Some(seed) if std::env::var_os("PARLOR_SIM_TRACE").is_some() => {
            let o = trace_seed(seed, Engine::Redis);
            assert!(o.failures.is_empty(), "seed {seed}: {:#?}", o.failures);
            return;
        }
        Some(seed) => vec![seed],
        None => {
            let first = env_u64("PARLOR_SIM_REDIS_FIRST").unwrap_or(0);
            let n = env_u64("PARLOR_SIM_REDIS_SCHEDULES").unwrap_or(8);
            (first..first + n).chain(FOUND_BUGS.iter().copied()).collect()
        }
    };
    let t0 = std::time::Instant::now();
    let summary = run_many(&seeds, 4, Engine::Redis, |o| {
        if !o.failures.is_empty() {
            let mut text = format!("seed {} FAILED:\n", o.seed);
            for f in o.failures.iter().take(20) {
                text += &format!("  {f}\n");
            }
            eprintln!("{text}  replay: {}", replay_command(o.seed, Engine::Redis));
        }
    });
    eprintln!(
        "{} schedules, {} events checked, {:.1} s",
        summary.schedules,
        summary.events,
        t0.elapsed().as_secs_f64()
    );
    assert!(summary.events > 0, "the schedules checked nothing");
    let failed: Vec<u64> = summary.failed.iter().map(|o| o.seed).collect();
    assert!(failed.is_empty(), "{} of {} schedules failed: seeds {failed:?}", failed.len(), seeds.len());
}
