//! Soak (Parlor only): `parlor bench soak --minutes N`. A Parlor server process started by the
//! generator, and `clients` Rust SDK clients (`parlor_client::Engine`, one task each) over
//! `rooms` rooms for N minutes, each in a loop: log in to a random room, broadcast about once a
//! second, now and then have its TCP connection cut (the SDK resumes), log out after a few
//! seconds, after one to three stays end the session (`bye`) and start a new one as a new user.
//!
//! Every few seconds the server's RSS and open files are read from `/proc/PID/status` and
//! `/proc/PID/fd` and a line of the progress table is printed. At the end: first, last and
//! max RSS and open files, and the error counts. The run fails (exit status 1) when
//! - any call failed, any room was RECONNECT_FAILED, KICK_OUT or LOGIN_FAILED;
//! - any broadcast was lost (a session in the room from before the send until after its
//!   acknowledgement did not get it) or received twice;
//! - RSS kept growing: the mean of the last third of the samples is more than
//!   [`sample::RSS_GROWTH_LIMIT`] above the middle third's (the first third is warm-up);
//! - open files grew: once every client is gone, the idle server holds more than
//!   [`sample::FD_SLACK`] more files than it did before the first client came.

pub mod client;
pub mod sample;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::watch;

use crate::report::Report;
use crate::target::Target;
use crate::Ctx;
use client::{Pace, Tally};
use sample::{Flatness, Sample};

const MIB: f64 = 1024.0 * 1024.0;

/// Run the soak against `target` for `minutes`.
pub async fn run(ctx: &Ctx, target: &Target, clients: usize, rooms: usize, minutes: f64) -> anyhow::Result<Report> {
    let pid = target.pid.context("the soak reads the server's /proc: it needs its PID (--server-pid)")?;
    let quick = ctx.args.quick;
    let length = Duration::from_secs_f64(minutes * 60.0);
    let every = if quick { Duration::from_secs(1) } else { Duration::from_secs(5) };
    let pace = if quick {
        Pace {
            stay: (Duration::from_secs(2), Duration::from_secs(5)),
            message_every: Duration::from_millis(500),
            cut_chance: 0.05,
            stays_per_session: 3,
        }
    } else {
        Pace {
            stay: (Duration::from_secs(5), Duration::from_secs(20)),
            message_every: Duration::from_secs(1),
            cut_chance: 0.02,
            stays_per_session: 3,
        }
    };
    let mut rep = Report::new("soak", target.kind.name(), clients);
    let idle_before = sample::open_files(pid).context("cannot read the server's /proc/PID/fd")?;
    let tally = Arc::new(Tally::default());
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(clients);
    for i in 0..clients {
        let task = client::run(i, rooms, target.addr, ctx.app.clone(), pace, tally.clone(), stop_rx.clone());
        tasks.push(tokio::spawn(task));
    }

    let out = |line: String| {
        if ctx.args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    out(format!(
        "soak: {clients} clients, {rooms} rooms, {minutes} min; the server (pid {pid}) held {idle_before} open files idle"
    ));
    out(format!(
        "{:>7} {:>9} {:>6} {:>8} {:>8} {:>9} {:>10} {:>6} {:>9} {:>6}",
        "t (s)", "RSS MiB", "files", "logins", "logouts", "messages", "received", "cuts", "resumed", "errors"
    ));
    let start = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next = tokio::time::Instant::now() + every;
    while start.elapsed() < length {
        tokio::time::sleep_until(next).await;
        next += every;
        let Some(s) = sample::read(pid, start.elapsed()) else {
            rep.problem("the server process is gone");
            break;
        };
        samples.push(s);
        let t = &tally;
        out(format!(
            "{:>7.0} {:>9.1} {:>6} {:>8} {:>8} {:>9} {:>10} {:>6} {:>9} {:>6}",
            s.at.as_secs_f64(),
            s.rss as f64 / MIB,
            s.fds,
            t.logins.load(Ordering::Relaxed),
            t.logouts.load(Ordering::Relaxed),
            t.messages.load(Ordering::Relaxed),
            t.received.load(Ordering::Relaxed),
            t.cuts.load(Ordering::Relaxed),
            t.reconnected.load(Ordering::Relaxed),
            t.errors.load(Ordering::Relaxed),
        ));
    }
    // Each client finishes its stay (logout) and session (bye).
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(60), t).await;
    }
    // The server lets go of the closed connections on its own schedule: give it a few seconds.
    let settle = Instant::now() + Duration::from_secs(10);
    let mut idle_after = sample::open_files(pid).unwrap_or(usize::MAX);
    while idle_after > idle_before + sample::FD_SLACK && Instant::now() < settle {
        tokio::time::sleep(Duration::from_millis(100)).await;
        idle_after = sample::open_files(pid).unwrap_or(usize::MAX);
    }

    let (checked, lost) = client::lost(&tally.sent.lock(), &tally.stays.lock());
    let t = &tally;
    let count = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed) as f64;
    rep.metric("minutes", minutes, "");
    rep.metric("rooms", rooms as f64, "");
    rep.metric("logins", count(&t.logins), "");
    rep.metric("logouts", count(&t.logouts), "");
    rep.metric("sessions ended (bye)", count(&t.sessions), "");
    rep.metric("broadcasts acknowledged", count(&t.messages), "");
    rep.metric("broadcasts received", count(&t.received), "");
    rep.metric("deliveries checked", checked as f64, "");
    rep.metric("connections cut", count(&t.cuts), "");
    rep.metric("rooms RECONNECTED", count(&t.reconnected), "");
    rep.metric("lost", lost as f64, "");
    rep.metric("duplicated", count(&t.duplicated), "");
    rep.metric("RECONNECT_FAILED", count(&t.reconnect_failed), "");
    rep.metric("KICK_OUT", count(&t.kicked), "");
    let unexpected = count(&t.errors) - count(&t.duplicated) - count(&t.reconnect_failed) - count(&t.kicked);
    rep.metric("other errors (calls failed, LOGIN_FAILED)", unexpected, "");
    if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
        let max_rss = samples.iter().map(|s| s.rss).max().unwrap_or(0);
        let max_fds = samples.iter().map(|s| s.fds).max().unwrap_or(0);
        rep.metric("RSS first", first.rss as f64 / MIB, "MiB");
        rep.metric("RSS last", last.rss as f64 / MIB, "MiB");
        rep.metric("RSS max", max_rss as f64 / MIB, "MiB");
        rep.metric("open files first", first.fds as f64, "");
        rep.metric("open files last", last.fds as f64, "");
        rep.metric("open files max", max_fds as f64, "");
    }
    rep.metric("open files idle, before", idle_before as f64, "");
    rep.metric("open files idle, after", idle_after as f64, "");
    match Flatness::of(&samples) {
        Some(f) => {
            rep.metric("RSS mean, middle third", f.middle_rss / MIB, "MiB");
            rep.metric("RSS mean, last third", f.last_rss / MIB, "MiB");
            rep.metric("RSS growth, last third vs middle", f.growth * 100.0, "%");
            if !f.flat() {
                rep.problem(format!(
                    "RSS kept growing: last third {:.1} MiB vs middle third {:.1} MiB (+{:.1} %, limit {} %)",
                    f.last_rss / MIB,
                    f.middle_rss / MIB,
                    f.growth * 100.0,
                    sample::RSS_GROWTH_LIMIT * 100.0
                ));
            }
        }
        None => rep.problem("too short: fewer than 3 samples"),
    }
    if idle_after > idle_before + sample::FD_SLACK {
        rep.problem(format!("open files grew: {idle_before} idle before, {idle_after} idle after"));
    }
    let errors = count(&t.errors) as u64 + lost;
    if errors > 0 {
        let first = t.first_errors.lock().join("; ");
        rep.problem(format!("{errors} errors ({lost} lost); first: {first}"));
    }
    if count(&t.messages) == 0.0 || checked == 0 {
        rep.problem("no broadcast was delivered where it could be checked");
    }
    Ok(rep)
}
