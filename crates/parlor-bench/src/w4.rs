//! W4, reconnect storm (Parlor only): `n` sessions in `rooms` rooms connect through a
//! [`FaultProxy`] (or straight to the server, `--cut server`); one member per room keeps
//! broadcasting; every connection is cut at once (the proxy's `cut()`, or the admin API's
//! drop-connections); each session resumes (protocol §6) after a full-jitter backoff (§7: attempt
//! k waits a random time in [0, min(10 s, 0.5 s × 2^k)]). The sessions are [`crate::resume`]'s.
//!
//! Measured: the time from the cut until every session is back; events lost (per session: the
//! broadcasts its room's broadcaster got an `ok` for, minus those it received — every session
//! joined before the first broadcast, so that is the whole set), events duplicated (a `seq` seen
//! twice on a channel, or a message twice), gaps in `seq`, and `user_delete` seen by anyone
//! (nobody leaves, so any is false). `storm` is the same storm for W6, whose cut is a node's
//! SIGKILL.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parlor_testkit::FaultProxy;
use tokio::sync::{watch, Semaphore};

use crate::cluster::Servers;
use crate::report::{cumulative, percentile, Report};
use crate::resume::{Outcome, Session, Shared};
use crate::target::{Endpoint, Target};
use crate::{join_retry, now_ns, wait_until, Ctx};

/// How the storm cuts the connections.
pub(crate) enum CutBy<'a> {
    /// A fault proxy every session goes through: its `cut()`.
    Proxy(&'a FaultProxy),
    /// The admin API's drop-connections on this server.
    Server(SocketAddr),
    /// SIGKILL this node: only its sessions lose their connection.
    Kill(&'a mut Target),
    /// A `--workers` worker of W6: the parent SIGKILLs the node on this address at the `kill`
    /// barrier; only its sessions lose their connection.
    KillByParent(SocketAddr),
    /// The failover workload: SIGKILL the Redis primary (no connection need drop; requests are
    /// answered 1000004 and retried until the sentinels have promoted the replica).
    RedisPrimary(&'a mut crate::failover::Sentinel),
}

/// One storm: who logs in where, and how the cut comes.
pub(crate) struct Storm<'a> {
    /// `w4`, `w6`.
    pub workload: &'static str,
    /// The report's target name.
    pub label: String,
    /// Sessions and rooms.
    pub n: usize,
    /// Rooms (session `i` is in room `i % rooms`; sessions `0..rooms` broadcast).
    pub rooms: usize,
    /// Where session `i` logs in and, in this order, tries to resume.
    pub addrs: &'a (dyn Fn(usize) -> Vec<Endpoint> + Sync),
    /// The cut.
    pub cut: CutBy<'a>,
    /// Called with the report once every session is logged in, before the traffic (W6: Redis's
    /// memory and the nodes' RSS).
    pub at_joined: Option<&'a (dyn Fn(&mut Report) + Sync)>,
    /// Each broadcaster's period (default: 1 s, 100 ms with `--quick`).
    pub period: Option<Duration>,
}

/// Run W4.
pub async fn run(ctx: &Ctx, target: &Target, n: usize, rooms: usize) -> anyhow::Result<Report> {
    let proxy = match ctx.args.cut {
        crate::Cut::Proxy => Some(FaultProxy::start(target.addr)?),
        crate::Cut::Server => None,
    };
    let mut ep = target.endpoint();
    if let Some(p) = &proxy {
        ep.addr = p.addr();
    }
    let addrs = move |_| vec![ep.clone()];
    let cut = match &proxy {
        Some(p) => CutBy::Proxy(p),
        None => CutBy::Server(target.addr),
    };
    let label = target.kind.name().into();
    let spec = Storm { workload: "w4", label, n, rooms, addrs: &addrs, cut, at_joined: None, period: None };
    let rep = storm(ctx, spec).await;
    if let Some(p) = &proxy {
        p.stop();
    }
    rep
}

/// Run W4 on Redis nodes (`--nodes`): session `i` logs in to [`Servers::endpoints`]'s first and
/// resumes there (then on the others in turn); the cut is the admin API's drop-connections on the
/// first node, which has every node drop its own.
pub async fn run_nodes(ctx: &Ctx, servers: &Servers<'_>, n: usize, rooms: usize) -> anyhow::Result<Report> {
    let addrs = |i| servers.endpoints(i, rooms);
    let cut = CutBy::Server(servers.nodes[0].addr);
    let label = format!("parlor+redis, {} nodes", servers.nodes.len());
    storm(ctx, Storm { workload: "w4", label, n, rooms, addrs: &addrs, cut, at_joined: None, period: None }).await
}

/// The report's curve of sessions back by seconds since their connection was lost (`--plot`).
pub const BACK_SERIES: &str = "sessions back";

/// The storm: log in, broadcast, cut, wait until every cut session is back, count.
pub(crate) async fn storm(ctx: &Ctx, spec: Storm<'_>) -> anyhow::Result<Report> {
    let Storm { workload, label, n, rooms, addrs, mut cut, at_joined, period } = spec;
    let rooms = rooms.clamp(1, n.max(1));
    let mut rep = Report::new(workload, &label, n);
    let quick = ctx.args.quick;
    let period = period.unwrap_or(Duration::from_millis(if quick { 100 } else { 1000 }));
    let shared = Arc::new(Shared {
        room_last: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
        session_seq: (0..n).map(|_| AtomicU64::new(0)).collect(),
        ..Shared::default()
    });
    let pb = ctx.bar(n as u64, "logins");
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let ids = ctx.mine(n);
    let local = ids.len();
    let mut tasks = Vec::with_capacity(local);
    for &i in &ids {
        let eps = addrs(i);
        let (ctx2, sh, sem, stop, pb) = (ctx.clone(), shared.clone(), sem.clone(), stop_rx.clone(), pb.clone());
        tasks.push(tokio::spawn(async move {
            let r = i % rooms;
            let room = format!("{workload}-{r}");
            let ep = &eps[0];
            let Ok(permit) = sem.acquire_owned().await else { return None };
            let joined = join_retry(&ctx2, ep, i, &format!("u{i}"), &room, true).await;
            drop(permit);
            let c = match joined {
                Ok(c) => c,
                Err(e) => {
                    sh.counts.failed.fetch_add(1, Ordering::Relaxed);
                    sh.counts.error(&e);
                    return None;
                }
            };
            sh.session_seq[i].store(c.parlor.room_seq, Ordering::Relaxed);
            sh.counts.joined.fetch_add(1, Ordering::Relaxed);
            pb.inc(1);
            let out = Outcome { room: r, broadcaster: i < rooms, ..Outcome::default() };
            let s = Session {
                i,
                room,
                addrs: eps.iter().map(|e| e.addr).collect(),
                path: ep.path.clone(),
                c,
                pending: None,
                repeated: false,
                retry_at: None,
                retries: 0,
                count: 0,
                out,
            };
            Some(s.run(sh, stop, period).await)
        }));
    }
    let deadline = ctx.deadline();
    let sh = &shared;
    let all = wait_until(deadline, || {
        sh.counts.joined.load(Ordering::Relaxed) + sh.counts.failed.load(Ordering::Relaxed) >= local
    })
    .await;
    pb.finish();
    let joined = sh.counts.joined.load(Ordering::Relaxed);
    if !all || joined != local {
        rep.problem(format!(
            "{joined} of {local} sessions logged in{}",
            sh.counts.first_error.lock().as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default()
        ));
        let _ = stop_tx.send(true);
        return Ok(rep);
    }
    if let CutBy::Proxy(p) = &cut {
        let _ = tokio::time::timeout(Duration::from_secs(10), p.wait_for_connections(local)).await;
    }
    // The sessions that lose their connection: all, or the killed node's.
    let down_on = |a: SocketAddr| ids.iter().filter(|&&i| addrs(i)[0].addr == a).count();
    let expect_down = match &cut {
        CutBy::Kill(t) => down_on(t.addr),
        CutBy::KillByParent(a) => down_on(*a),
        CutBy::RedisPrimary(_) => 0,
        _ => local,
    };
    ctx.barrier("joined").await?;
    if let Some(f) = at_joined {
        f(&mut rep);
    }

    // Traffic, then the cut.
    let spin = ctx.spinner("storm");
    spin.set_message("broadcasting");
    sh.broadcasting.store(true, Ordering::Relaxed);
    tokio::time::sleep(if quick { Duration::from_secs(1) } else { Duration::from_secs(3) }).await;
    sh.armed.store(true, Ordering::SeqCst);
    match &cut {
        // Every worker cuts its own proxy at once.
        CutBy::Proxy(_) => ctx.barrier("cut").await?,
        // The parent has the server drop every connection, then lets the workers go.
        CutBy::Server(_) if ctx.is_worker() => {
            spin.set_message("the parent has the server drop every connection");
            ctx.barrier("drop").await?;
        }
        CutBy::KillByParent(_) => {
            spin.set_message("the parent SIGKILLs a node");
            ctx.barrier("kill").await?;
        }
        _ => {}
    }
    let cut_ns = match sh.first_down_ns.load(Ordering::SeqCst) {
        0 => now_ns(),
        first => first.min(now_ns()),
    };
    sh.cut_ns.store(cut_ns, Ordering::SeqCst);
    let cut_at = Instant::now();
    match &mut cut {
        CutBy::Proxy(p) => {
            spin.set_message(format!("cut {} connections", p.connection_count()));
            p.cut();
        }
        CutBy::Server(_) if ctx.is_worker() => {} // done at the barrier
        CutBy::Server(addr) => {
            spin.set_message("the server drops every connection");
            drop_connections(*addr, &ctx.app).await?;
        }
        CutBy::Kill(t) => {
            spin.set_message(format!("SIGKILL the node on {}", t.addr));
            t.kill();
        }
        CutBy::KillByParent(_) => {} // done at the barrier
        CutBy::RedisPrimary(s) => {
            spin.set_message("SIGKILL the Redis primary; waiting for the promotion");
            s.kill_primary_and_wait(&mut rep).await;
        }
    }
    // Past the nodes' session timeout (90 s) on purpose: a session back later is counted (and
    // its room's members will have seen a false `user_delete`), not cut off.
    let back_limit = Instant::now() + Duration::from_secs(if quick { 12 } else { 150 });
    let all_back = wait_until(back_limit.min(deadline), || {
        let downs = sh.downs.load(Ordering::Relaxed);
        let ups = sh.ups.load(Ordering::Relaxed) + sh.dead.load(Ordering::Relaxed);
        spin.set_message(format!("{ups} of {downs} cut sessions back"));
        downs >= expect_down && ups >= downs
    })
    .await;
    let storm_secs = cut_at.elapsed().as_secs_f64();
    let back_secs = Duration::from_nanos(sh.last_up_ns.load(Ordering::Relaxed).saturating_sub(cut_ns)).as_secs_f64();

    // More traffic after the storm, then let every session catch up with its room.
    spin.set_message("broadcasting after the storm");
    tokio::time::sleep(if quick { Duration::from_secs(1) } else { Duration::from_secs(3) }).await;
    sh.broadcasting.store(false, Ordering::SeqCst);
    // A broadcaster that read the flag just before it fell sends once more: let it, then wait
    // until every broadcast is answered, so that the sent sets are complete.
    tokio::time::sleep(Duration::from_millis(50)).await;
    wait_until(Instant::now() + Duration::from_secs(10), || sh.in_flight.load(Ordering::SeqCst) == 0).await;
    spin.set_message("draining");
    // Long enough for a loaded node's fan-out backlog (the queue wait's p99 reached 7 s at 60 000):
    // a session still behind after it is stuck, not late.
    let drain_started = Instant::now();
    let behind =
        |i: &&usize| sh.session_seq[**i].load(Ordering::Relaxed) < sh.room_last[**i % rooms].load(Ordering::Relaxed);
    let drained = wait_until(drain_started + Duration::from_secs(30), || !ids.iter().any(|i| behind(&i))).await;
    rep.metric("time to catch up after the traffic", drain_started.elapsed().as_secs_f64(), "s");
    if !drained && std::env::var_os("PARLOR_BENCH_DEBUG").is_some() {
        for &i in ids.iter().filter(|i| behind(i)).take(20) {
            eprintln!(
                "behind: session {i} room {} home {} seq {} of {}",
                i % rooms,
                addrs(i)[0].addr,
                sh.session_seq[i].load(Ordering::Relaxed),
                sh.room_last[i % rooms].load(Ordering::Relaxed)
            );
        }
    }
    spin.finish_and_clear();
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(Some(o)) = t.await {
            outcomes.push(o);
        }
    }

    // The counts.
    let mut sent: Vec<HashSet<&str>> = vec![HashSet::new(); rooms];
    for o in outcomes.iter().filter(|o| o.broadcaster) {
        sent[o.room].extend(o.sent.iter().map(String::as_str));
    }
    let (mut lost, mut dup, mut gaps, mut false_deletes, mut missed, mut refused) = (0u64, 0u64, 0, 0, 0, 0);
    let (mut checked, mut unexpected) = (0u64, 0u64);
    let mut fatal = Vec::new();
    let mut back_ms = Vec::new();
    for o in &outcomes {
        let expected = &sent[o.room];
        let own = o.broadcaster;
        if !own {
            checked += expected.len() as u64;
            lost += expected.iter().filter(|m| !o.received.contains(**m)).count() as u64;
        }
        unexpected += o.received.iter().filter(|m| !expected.contains(m.as_str())).count() as u64;
        dup += o.dup_seq + o.dup_msg;
        gaps += o.gaps;
        false_deletes += o.false_deletes;
        missed += o.missed_messages;
        refused += o.refused;
        back_ms.extend(o.back_ms.iter().copied());
        if let Some(f) = &o.fatal {
            fatal.push(f.clone());
        }
    }
    back_ms.sort_unstable();
    if std::env::var_os("PARLOR_BENCH_DEBUG").is_some() {
        for o in outcomes.iter().filter(|o| o.unanswered.is_some()).take(5) {
            let rel = |ns: u64| (ns as f64 - cut_ns as f64) / 1e9;
            eprintln!(
                "unanswered {:?} of {} sent {:.2} s after the cut, back {:.2} s after",
                o.unanswered,
                o.count,
                rel(o.sent_ns),
                rel(o.up_ns)
            );
        }
        for o in outcomes.iter().filter(|o| !o.failures.is_empty()).take(5) {
            eprintln!("failures {:?} (broadcaster: {})", o.failures, o.broadcaster);
        }
    }
    let unanswered: Vec<&(String, bool)> = outcomes.iter().filter_map(|o| o.unanswered.as_ref()).collect();
    let total_sent: usize = sent.iter().map(HashSet::len).sum();
    let ups = sh.ups.load(Ordering::Relaxed);
    let downs = sh.downs.load(Ordering::Relaxed);
    rep.metric("rooms", rooms as f64, "");
    rep.metric("broadcasts sent", total_sent as f64, "");
    rep.metric("connections cut", downs as f64, "");
    rep.metric("sessions back", ups as f64, "");
    rep.metric("time until all back", back_secs, "s");
    rep.metric("back after p50", percentile(&back_ms, 50.0) as f64 / 1000.0, "s");
    rep.metric("back after p99", percentile(&back_ms, 99.0) as f64 / 1000.0, "s");
    rep.series(BACK_SERIES, "s", "sessions", cumulative(&back_ms, 1e-3));
    rep.metric("resume attempts", sh.attempts.load(Ordering::Relaxed) as f64, "");
    rep.metric("snapshots instead of replay", sh.snapshots.load(Ordering::Relaxed) as f64, "");
    rep.metric("deliveries checked", checked as f64, "");
    rep.metric("deliveries without an ok", unexpected as f64, "");
    rep.metric("events lost", lost as f64, "");
    rep.metric("events duplicated", dup as f64, "");
    rep.metric("seq gaps", gaps as f64, "");
    rep.metric("false user_delete", false_deletes as f64, "");
    if !all_back {
        rep.problem(format!(
            "only {ups} of {downs} cut sessions were back {storm_secs:.1} s after the cut (of {local})"
        ));
    }
    rep.metric("sessions the cut should reach", expect_down as f64, "");
    if downs < expect_down {
        rep.problem(format!("the cut reached only {downs} of {expect_down} sessions"));
    }
    rep.metric("broadcasts answered 1000004 (retried)", sh.retried.load(Ordering::Relaxed) as f64, "");
    rep.metric("broadcasts failed (an error other than 1000004)", refused as f64, "");
    let first_ok = sh.first_ok_ns.load(Ordering::Relaxed);
    if first_ok > 0 {
        rep.metric("first ok after the cut (of a broadcast sent after it)", (first_ok - cut_ns) as f64 / 1e6, "ms");
    }
    rep.metric("broadcasts never answered", unanswered.len() as f64, "");
    rep.metric(
        "broadcasts never answered after a repeat",
        unanswered.iter().filter(|(_, repeated)| *repeated).count() as f64,
        "",
    );
    if unexpected > 0 {
        rep.problem(format!("{unexpected} deliveries of broadcasts whose ok never came (accounting incomplete)"));
    }
    if !drained {
        rep.problem("some sessions never caught up with their room's last seq");
    }
    if lost > 0 {
        rep.problem(format!("{lost} events lost"));
    }
    if dup > 0 {
        rep.problem(format!("{dup} events duplicated"));
    }
    if gaps > 0 {
        rep.problem(format!("{gaps} seq gaps"));
    }
    if false_deletes > 0 {
        rep.problem(format!("{false_deletes} false user_delete"));
    }
    if missed > 0 {
        rep.problem(format!("{missed} snapshots with missed_messages"));
    }
    if refused > 0 {
        rep.problem(format!("{refused} broadcasts refused (an error other than 1000004)"));
    }
    if total_sent == 0 {
        rep.problem("no broadcast was sent");
    }
    if !fatal.is_empty() {
        rep.problem(format!("{} sessions failed, first: {}", fatal.len(), fatal[0]));
    }
    Ok(rep)
}

/// `POST /v1/admin/apps/{app}/connections/drop`: the server closes every connection at once.
pub(crate) async fn drop_connections(addr: SocketAddr, app: &crate::client::App) -> anyhow::Result<()> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await?;
    let req = format!(
        "POST /v1/admin/apps/{}/connections/drop HTTP/1.1\r\nHost: parlor\r\nAuthorization: Bearer {}\r\n\
         Content-Length: 0\r\nConnection: close\r\n\r\n",
        app.id, app.secret
    );
    tcp.write_all(req.as_bytes()).await?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await?;
    anyhow::ensure!(answer.starts_with("HTTP/1.1 200"), "drop-connections refused: {answer:.200}");
    Ok(())
}
