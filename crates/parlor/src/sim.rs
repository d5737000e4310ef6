//! `parlor sim`: the seeded fault simulation (`parlor-sim`) for any number of schedules, with
//! progress and a summary; one seed with `--seed` (and its trace with `--trace`); the memory
//! engine by default, the Redis engine with `--engine redis`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// The engine of `parlor sim --engine`.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum EngineArg {
    /// One memory-engine node, restarts, a paused clock (no real time passes).
    Memory,
    /// A fresh redis-server per schedule shared by 2–3 nodes, Redis faults and node kills, a
    /// paced clock (seconds of real time per schedule).
    Redis,
}

/// Flags of `parlor sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// The engine the schedules run on.
    #[arg(long, value_enum, default_value = "memory")]
    engine: EngineArg,
    /// How many schedules to run (seeds FIRST..FIRST+N).
    #[arg(long, default_value_t = 500)]
    schedules: u64,
    /// The first seed.
    #[arg(long, default_value_t = 0)]
    first: u64,
    /// Run only this seed (a failing schedule's replay).
    #[arg(long)]
    seed: Option<u64>,
    /// With --seed: print the schedule, every client's events and every call.
    #[arg(long, requires = "seed")]
    trace: bool,
    /// Threads (default: every core; with Redis, 4 per core, as its schedules mostly wait).
    #[arg(long)]
    threads: Option<usize>,
}

/// Run the schedules; false when any failed.
pub fn run(a: SimArgs) -> bool {
    let engine = match a.engine {
        EngineArg::Memory => parlor_sim::Engine::Memory,
        EngineArg::Redis => parlor_sim::Engine::Redis,
    };
    if let (Some(seed), true) = (a.seed, a.trace) {
        let o = parlor_sim::trace_seed(seed, engine);
        print_failures(&o, engine);
        return o.failures.is_empty();
    }
    let seeds: Vec<u64> = match a.seed {
        Some(seed) => vec![seed],
        None => (a.first..a.first + a.schedules).collect(),
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = a.threads.unwrap_or(if engine == parlor_sim::Engine::Redis { 4 * cores } else { cores });
    let total = seeds.len() as u64;
    let step = (total / 20).max(1);
    let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let t0 = Instant::now();
    let what = match engine {
        parlor_sim::Engine::Memory => "in-memory engine, paused clock",
        parlor_sim::Engine::Redis => "Redis engine (redis-server, 2-3 nodes), paced clock",
    };
    println!("sim: {total} schedules on {threads} threads, {what}");
    let summary = parlor_sim::run_many(&seeds, threads, engine, |o| {
        if !o.failures.is_empty() {
            failed.fetch_add(1, Ordering::Relaxed);
            print_failures(o, engine);
        }
        let n = done.fetch_add(1, Ordering::Relaxed) + 1;
        if n % step == 0 || n == total {
            let f = failed.load(Ordering::Relaxed);
            println!("sim: {n}/{total} schedules, {f} failed, {:.1} s", t0.elapsed().as_secs_f64());
        }
    });
    println!(
        "sim: {} schedules, {} events checked, {:.1} s, {} failed{}",
        summary.schedules,
        summary.events,
        t0.elapsed().as_secs_f64(),
        summary.failed.len(),
        if summary.failed.is_empty() {
            String::new()
        } else {
            format!(": seeds {:?}", summary.failed.iter().map(|o| o.seed).collect::<Vec<_>>())
        }
    );
    summary.failed.is_empty()
}

fn print_failures(o: &parlor_sim::Outcome, engine: parlor_sim::Engine) {
    if o.failures.is_empty() {
        return;
    }
    let mut text = format!("seed {} FAILED:\n", o.seed);
    for f in o.failures.iter().take(20) {
        text += &format!("  {f}\n");
    }
    println!("{text}  replay: {}", parlor_sim::replay_command(o.seed, engine));
}
