//! W1, login storm: `n` sessions log in to `rooms` rooms at once (at most `--concurrency`
//! connecting at a time); measured: the time until all are LOGINED and logins per second.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use crate::report::{distribution, percentile, Report};
use crate::target::Target;
use crate::{hold, join_retry, wait_until, Counts, Ctx};

/// The report's curve of login latencies (ms) by percentile, for `--plot`.
pub const LATENCY_SERIES: &str = "login latency by percentile";

/// Run W1.
pub async fn run(ctx: &Ctx, target: &Target, n: usize, rooms: usize) -> anyhow::Result<Report> {
    let mut rep = Report::new("w1", target.kind.name(), n);
    let pb = ctx.bar(n as u64, "logins");
    let counts = Arc::new(Counts::default());
    let last_login_ns = Arc::new(AtomicU64::new(0));
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let ids = ctx.mine(n);
    let local = ids.len();
    ctx.barrier("start").await?;
    let cpu0 = target.cpu();
    let start = Instant::now();
    let mut tasks = Vec::with_capacity(local);
    for i in ids {
        let (ctx2, counts, last, sem, stop, pb) =
            (ctx.clone(), counts.clone(), last_login_ns.clone(), sem.clone(), stop_rx.clone(), pb.clone());
        let ep = target.endpoint();
        tasks.push(tokio::spawn(async move {
            let room = format!("w1-{}", i % rooms);
            let permit = sem.acquire_owned().await.ok()?;
            let t0 = Instant::now();
            let joined = join_retry(&ctx2, &ep, i, &format!("u{i}"), &room, true).await;
            drop(permit);
            match joined {
                Ok(c) => {
                    let lat = t0.elapsed();
                    last.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    counts.joined.fetch_add(1, Ordering::Relaxed);
                    pb.inc(1);
                    if let Err(e) = hold(c, room, stop, |_| {}).await {
                        counts.broken.fetch_add(1, Ordering::Relaxed);
                        counts.error(&e);
                    }
                    Some(lat)
                }
                Err(e) => {
                    counts.failed.fetch_add(1, Ordering::Relaxed);
                    counts.error(&e);
                    None
                }
            }
        }));
    }
    let all = wait_until(ctx.deadline(), || {
        counts.joined.load(Ordering::Relaxed) + counts.failed.load(Ordering::Relaxed) >= local
    })
    .await;
    ctx.barrier("logged-in").await?;
    let cpu1 = target.cpu();
    let rss = target.rss();
    pb.finish();
    let _ = stop_tx.send(true);
    let mut lats = Vec::new();
    for t in tasks {
        if let Ok(Some(l)) = t.await {
            lats.push(l.as_micros() as u64);
        }
    }
    lats.sort_unstable();
    let joined = counts.joined.load(Ordering::Relaxed);
    let secs = Duration::from_nanos(last_login_ns.load(Ordering::Relaxed)).as_secs_f64();
    rep.metric("sessions logged in", joined as f64, "");
    rep.metric("rooms", rooms as f64, "");
    rep.metric("time to all logged in", secs, "s");
    rep.metric("logins/s", if secs > 0.0 { joined as f64 / secs } else { 0.0 }, "1/s");
    rep.metric("login latency p50", percentile(&lats, 50.0) as f64 / 1000.0, "ms");
    rep.metric("login latency p99", percentile(&lats, 99.0) as f64 / 1000.0, "ms");
    rep.metric("login latency max", lats.last().copied().unwrap_or(0) as f64 / 1000.0, "ms");
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        rep.metric("server CPU", (b - a).as_secs_f64(), "s");
    }
    rep.series(LATENCY_SERIES, "%", "ms", distribution(&lats, 1e-3));
    if let Some(r) = rss {
        rep.metric("server RSS after", r as f64 / (1024.0 * 1024.0), "MiB");
    }
    if !all || joined != local {
        rep.problem(format!(
            "{joined} of {local} sessions logged in ({} failed){}",
            counts.failed.load(Ordering::Relaxed),
            counts.first_error.lock().as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default()
        ));
    }
    let broken = counts.broken.load(Ordering::Relaxed);
    if broken > 0 {
        rep.problem(format!("{broken} connections broke while held"));
    }
    Ok(rep)
}
