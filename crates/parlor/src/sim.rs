//! `parlor sim`: the seeded fault simulation (`parlor-sim`) for any number of schedules, with
//! progress and a summary; one seed with `--seed` (and its trace with `--trace`).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Flags of `parlor sim`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
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
    /// Threads (default: every core).
    #[arg(long)]
    threads: Option<usize>,
}

/// Run the schedules; false when any failed.
pub fn run(a: SimArgs) -> bool {
    if let (Some(seed), true) = (a.seed, a.trace) {
        let o = parlor_sim::trace_seed(seed, true);
        print_failures(&o);
        return o.failures.is_empty();
    }
    let seeds: Vec<u64> = match a.seed {
        Some(seed) => vec![seed],
        None => (a.first..a.first + a.schedules).collect(),
    };
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let total = seeds.len() as u64;
    let step = (total / 20).max(1);
    let (done, failed) = (AtomicU64::new(0), AtomicU64::new(0));
    let t0 = Instant::now();
    println!("sim: {total} schedules on {threads} threads, in-memory engine, paused clock");
    let summary = parlor_sim::run_many(&seeds, threads, true, |o| {
        if !o.failures.is_empty() {
            failed.fetch_add(1, Ordering::Relaxed);
            print_failures(o);
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

fn print_failures(o: &parlor_sim::Outcome) {
    if o.failures.is_empty() {
        return;
    }
    let mut text = format!("seed {} FAILED:\n", o.seed);
    for f in o.failures.iter().take(20) {
        text += &format!("  {f}\n");
    }
    println!("{text}  replay: {}", parlor_sim::replay_command(o.seed));
}
