//! W3, idle hold: `n` sessions connect, join one of `rooms` rooms (Parlor: with
//! `user_status_notify` false, so that joining is not an n² event storm) and heartbeat; measured:
//! the server's RSS per session (RSS after − RSS before, / n) and its CPU while they idle.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use crate::cluster::Servers;
use crate::redis::memory_metrics;
use crate::report::Report;
use crate::{hold, join_retry, wait_until, Counts, Ctx};

/// Run W3 against `servers` (session `i` on [`Servers::endpoint`]); the servers' RSS and CPU
/// are their sum (and Redis's CPU when there is one).
pub async fn run(ctx: &Ctx, servers: &Servers<'_>, n: usize, rooms: usize) -> anyhow::Result<Report> {
    let mut rep = Report::new("w3", servers.kind().name(), n);
    // Let a freshly started server settle before the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let ids = ctx.mine(n);
    let local = ids.len();
    ctx.barrier("start").await?;
    let rss0 = servers.rss();
    let mem0 = servers.redis_memory();
    let pb = ctx.bar(n as u64, "sessions");
    let counts = Arc::new(Counts::default());
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(local);
    for i in ids {
        let (ctx2, counts, sem, stop, pb, ep) =
            (ctx.clone(), counts.clone(), sem.clone(), stop_rx.clone(), pb.clone(), servers.endpoint(i, rooms));
        tasks.push(tokio::spawn(async move {
            let room = format!("w3-{}", i % rooms);
            let Ok(permit) = sem.acquire_owned().await else { return };
            let joined = join_retry(&ctx2, &ep, i, &format!("u{i}"), &room, false).await;
            drop(permit);
            match joined {
                Ok(c) => {
                    counts.joined.fetch_add(1, Ordering::Relaxed);
                    pb.inc(1);
                    if let Err(e) = hold(c, room, stop, |_| {}).await {
                        counts.broken.fetch_add(1, Ordering::Relaxed);
                        counts.error(&e);
                    }
                }
                Err(e) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    counts.error(&e);
                }
            }
        }));
    }
    let all = wait_until(ctx.deadline(), || {
        counts.joined.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) >= local
    })
    .await;
    let connect_secs = start.elapsed().as_secs_f64();
    ctx.barrier("connected").await?;
    pb.finish();
    let hold_for = Duration::from_secs_f64(ctx.args.hold_secs.unwrap_or(if ctx.args.quick { 2.0 } else { 15.0 }));
    let spin = ctx.spinner("holding");
    spin.set_message(format!("{} sessions for {hold_for:?}", counts.joined.load(Ordering::Relaxed)));
    let cpu0 = servers.cpu();
    let held = Instant::now();
    tokio::time::sleep(hold_for).await;
    ctx.barrier("held").await?;
    let cpu1 = servers.cpu();
    let idle_secs = held.elapsed().as_secs_f64();
    let rss1 = servers.rss();
    let mem1 = servers.redis_memory();
    spin.finish_and_clear();
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    let joined = counts.joined.load(Ordering::Relaxed);
    rep.metric("sessions held", joined as f64, "");
    rep.metric("rooms", rooms as f64, "");
    rep.metric("time to connect all", connect_secs, "s");
    rep.metric("hold", idle_secs, "s");
    if let (Some(a), Some(b)) = (rss0, rss1) {
        rep.metric("server RSS before", a as f64 / 1048576.0, "MiB");
        rep.metric("server RSS after", b as f64 / 1048576.0, "MiB");
        if joined > 0 {
            rep.metric("server RSS per session", (b as f64 - a as f64) / joined as f64 / 1024.0, "KiB");
        }
    }
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        rep.metric("server CPU while idle", 100.0 * (b - a).as_secs_f64() / idle_secs, "% of a core");
    }
    memory_metrics(&mut rep, mem0, mem1, joined as f64, rooms as f64);
    if !all || joined != local {
        rep.problem(format!(
            "{joined} of {local} sessions connected ({} failed){}",
            counts.failed.load(Ordering::Relaxed),
            counts.first_error.lock().as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default()
        ));
    }
    let broken = counts.broken.load(Ordering::Relaxed);
    if broken > 0 {
        rep.problem(format!(
            "{broken} connections broke while held{}",
            counts.first_error.lock().as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default()
        ));
    }
    Ok(rep)
}
