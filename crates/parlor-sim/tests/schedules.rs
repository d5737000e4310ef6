//! The seeded fault simulation in the test suite: 500 schedules by default, on the in-memory
//! engine and tokio's paused clock (no real time passes), on two threads. `scripts/test.sh`
//! runs them as part of its `cargo test`, so it needs no step of its own.
//!
//! - `PARLOR_SIM_SCHEDULES=N` runs N seeds instead, from `PARLOR_SIM_FIRST` (default 0);
//! - `PARLOR_SIM_SEED=S` replays the one schedule of seed S (with `PARLOR_SIM_TRACE=1` it
//!   prints the schedule, every client's events and every call).
//!
//! A failing seed prints itself, what broke, and the command that replays it.

use parlor_sim::{replay_command, run_many, trace_seed, Engine};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v}: not a number")))
}

/// Seeds that failed before a fix (docs/reliability.md): of the first 10 000-schedule runs, and
/// of the windows from 1 000 000 on.
const FOUND_BUGS: &[u64] = &[
    1014, 3188, 4560, 4918, 9536, 1000979, 1006124, 1015244, 1019609, 2000228, 3010818, 3064055, 3098906, 4012098,
    6003249, 9146734, 9366268, 9523566, 9713742,
];

#[test]
fn seeded_schedules_keep_every_promise() {
    let seeds: Vec<u64> = match env_u64("PARLOR_SIM_SEED") {
        Some(seed) if std::env::var_os("PARLOR_SIM_TRACE").is_some() => {
            let o = trace_seed(seed, Engine::Memory);
            assert!(o.failures.is_empty(), "seed {seed}: {:#?}", o.failures);
            return;
        }
        Some(seed) => vec![seed],
        // Seeds FIRST..FIRST+N, and every seed that once found a bug (each is also pinned by
        // a scenario or unit test where one could be written; see docs/reliability.md).
        None => {
            let first = env_u64("PARLOR_SIM_FIRST").unwrap_or(0);
            let n = env_u64("PARLOR_SIM_SCHEDULES").unwrap_or(500);
            (first..first + n).chain(FOUND_BUGS.iter().copied()).collect()
        }
    };
    let summary = run_many(&seeds, 2, Engine::Memory, |o| {
        if !o.failures.is_empty() {
            let mut text = format!("seed {} FAILED:\n", o.seed);
            for f in o.failures.iter().take(20) {
                text += &format!("  {f}\n");
            }
            eprintln!("{text}  replay: {}", replay_command(o.seed, Engine::Memory));
        }
    });
    eprintln!("{} schedules, {} events checked", summary.schedules, summary.events);
    assert!(summary.events > 0, "the schedules checked nothing");
    let failed: Vec<u64> = summary.failed.iter().map(|o| o.seed).collect();
    assert!(failed.is_empty(), "{} of {} schedules failed: seeds {failed:?}", failed.len(), seeds.len());
}
