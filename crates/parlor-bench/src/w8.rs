//! W8, an audience at scale (Parlor on Redis nodes): `n` sessions (100 000; --quick 3 000) log
//! in to ONE room, spread over N nodes (6; --quick 2) sharing one redis-server, from --workers
//! generator processes, every one with `user_status_notify` — a live stream's room, large in
//! the sense of protocol §9.10.
//!
//! Each member keeps what a client keeps of a large room: the `users` and `room` channels' seqs
//! (no gap, no repeat), the member count as last told (`ok`, `user_update`, `online`). Then:
//! 1. logins: all in, and the time of the last one (wall clock: the workers share the box's);
//! 2. counts: every member's count is `n`, and when the last one got there (so "within 2 s of
//!    the last login" is measured across the workers);
//! 3. a host (session 0) broadcasts 5 msg/s for 10 s (--quick 3 s), each message carrying its
//!    wall-clock send time: every other member must get every one, in `seq` order (the
//!    fan-out's latency, send to receipt, as a p50 / p99);
//! 4. churn (`--churn SECS`, default 10 s; --quick 3 s): 2 000 members (--quick 120), each at
//!    its own phase, log out and in again every second — 1 000 leaves and 1 000 joins a second
//!    at full size — then all are back: every member's count must be `n` again, and how long
//!    after the last one came back (the parent reports the nodes' and Redis's CPU per change);
//! 5. a few members (4; --quick 1) page the whole list with `members` (500 a page): exactly the
//!    room, no one twice, and how long a walk takes.
//!
//! The parent ([`crate::cluster`]) starts Redis and the nodes, merges the workers' reports and
//! derives the cross-worker figures ([`finish`]).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{SinkExt, StreamExt};
use parking_lot::Mutex;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, parse, Client, SeqField};
use crate::cluster::Servers;
use crate::report::{percentile, Report};
use crate::target::{Endpoint, Kind};
use crate::{wait_until, Counts, Ctx};

/// The room.
const ROOM: &str = "w8";
/// Host broadcasts per second.
const RATE: u64 = 5;

/// Wall-clock milliseconds since the Unix epoch: one clock for every worker process.
fn wall_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// Broadcasts the host sends: 5 a second for 10 s (--quick 3 s).
fn broadcasts(ctx: &Ctx) -> u64 {
    RATE * if ctx.args.quick { 3 } else { 10 }
}

#[derive(Debug, Default)]
struct Shared {
    counts: Counts,
    /// Members whose count is `n`.
    exact: AtomicUsize,
    /// Wall ms of the last member's count becoming exact.
    exact_at: AtomicU64,
    /// Wall ms of the last login.
    last_login: AtomicU64,
    /// Text bytes received before the broadcasts (presence: the `ok`, batches, counts).
    presence_bytes: AtomicU64,
    /// Host broadcasts answered `ok`.
    sent: AtomicU64,
    /// Broadcasts received by members.
    delivered: AtomicU64,
    /// Members with every broadcast.
    all_received: AtomicUsize,
    /// Send-to-receipt latencies, ms.
    latencies: Mutex<Vec<u32>>,
    /// Seq gaps or repeats seen (either channel).
    gaps: AtomicU64,
    /// Of those: seen by churners; on the `users` channel.
    gaps_churners: AtomicU64,
    gaps_users: AtomicU64,
    /// The first few gaps seen: (member, channel, seq, last).
    gap_samples: Mutex<Vec<String>>,
    /// Walks of the whole list: (exact, wall time ms).
    walks: Mutex<Vec<Result<u64, String>>>,
    /// Churn: logouts and logins answered `ok`.
    changes: AtomicU64,
    /// Churn: logouts and logins answered `error` (the first few: code and request).
    churn_errors: AtomicU64,
    /// Churn steps skipped because the churner's last request was not answered yet.
    churn_skipped: AtomicU64,
    error_samples: Mutex<Vec<String>>,
    /// Churners back in the room after the churn.
    back: AtomicUsize,
    /// Wall ms of the last churner's return.
    back_at: AtomicU64,
}

/// Churners among `n` members: each logs out and in again every second during the churn.
fn churners(ctx: &Ctx, n: usize) -> usize {
    if ctx.args.quick {
        n / 25
    } else {
        2_000.min(n / 10)
    }
}

/// Seconds of churn.
fn churn_secs(ctx: &Ctx) -> u64 {
    ctx.args.churn.unwrap_or(if ctx.args.quick { 3 } else { 10 })
}

/// Log in as `u<i>` with retries (a refused upgrade waits a full-jitter backoff, as clients do);
/// returns the client and its login `ok`'s member count.
async fn login(ctx: &Ctx, ep: &Endpoint, i: usize, sh: &Shared) -> anyhow::Result<(Client, u64)> {
    let mut last = None;
    let started = Instant::now();
    for attempt in 0..20u32 {
        if attempt > 0 {
            let cap = Duration::from_millis(100 << attempt.min(6)).min(Duration::from_secs(5));
            tokio::time::sleep(cap.mul_f64(rand::random::<f64>())).await;
            if started.elapsed() > Duration::from_secs(60) {
                break;
            }
        }
        let attempt = async {
            let ws = client::connect_ws(ep.addr, &ep.path, client::source(i)).await?;
            let mut c = Client { ws, kind: ep.kind, parlor: Default::default(), next_id: 1 };
            c.parlor_hello(&ctx.app, &format!("u{i}")).await?;
            let mut online = 0;
            c.parlor_login_with(ROOM, true, &mut |text, ok| {
                sh.presence_bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                online = ok.online.unwrap_or(0);
            })
            .await?;
            anyhow::Ok((c, online))
        };
        match attempt.await {
            Ok(r) => return Ok(r),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

/// One member, after its login, until `stop`.
struct Member {
    i: usize,
    n: u64,
    c: Client,
    told: u64,
    received: u64,
    expect: u64,
    /// Send-to-receipt latencies of the broadcasts, ms.
    latencies: Vec<u32>,
    /// Logs out and in again during the churn.
    churner: bool,
    /// Out of the room (churning).
    out: bool,
    /// A churner's request sent and not yet answered: its id, and whether it is a login. A
    /// churner asks again only once answered (a client does): when answers take longer than a
    /// churn step, the step is skipped (counted), never two of its requests in flight, whose
    /// answers the seq bookkeeping would mix up.
    asked: Option<(u64, bool)>,
    /// A churner's last login again: when it was answered, and the `users` seq of its `ok`
    /// (what a gap is told against).
    rejoined: Option<(Instant, u64)>,
    /// The last `error` a churner's request was answered with.
    last_error: Option<String>,
}

impl Member {
    /// One text frame: seqs, counts, broadcasts.
    fn frame(&mut self, text: &str, sh: &Shared, broadcasting: bool) {
        if !broadcasting {
            sh.presence_bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        }
        if text.starts_with("{\"t\":\"ok\"") && self.churner {
            if let Ok(f) = parse(text) {
                self.answered(&f, sh);
            }
            return;
        }
        if text.starts_with("{\"t\":\"error\"") && self.churner {
            let Ok(f) = parse(text) else { return };
            let Some((_, login)) = self.asked.filter(|(id, _)| f.id == Some(*id)) else { return };
            self.asked = None;
            sh.churn_errors.fetch_add(1, Ordering::Relaxed);
            // Refused: the churner is where it was.
            self.out = login;
            let what = if login { "login" } else { "logout" };
            let e = format!("{what}: {}", text.chars().take(120).collect::<String>());
            let mut samples = sh.error_samples.lock();
            if samples.len() < 3 {
                samples.push(format!("u{} {e}", self.i));
            }
            self.last_error = Some(e);
            return;
        }
        if !text.starts_with("{\"t\":\"event\"") {
            return;
        }
        // The host's broadcasts, the bulk of the frames: found without a JSON parse (as W2 does;
        // a parse of each of 100 000s a second makes the generator the bottleneck).
        if let Some(message) = client::delivered(Kind::Parlor, text) {
            let sent: u64 = message.parse().unwrap_or(0);
            let seq = text.find("\"seq\":").and_then(|i| {
                let digits: String = text[i + 6..].chars().take_while(char::is_ascii_digit).collect();
                digits.parse::<u64>().ok()
            });
            let last = &mut self.c.parlor.room_seq;
            if seq != Some(*last + 1) {
                sh.gaps.fetch_add(1, Ordering::Relaxed);
                let mut samples = sh.gap_samples.lock();
                if samples.len() < 3 {
                    samples.push(format!("u{} room broadcast seq {seq:?} after {}", self.i, *last));
                }
            }
            *last = seq.unwrap_or(*last).max(*last);
            self.latencies.push(wall_ms().saturating_sub(sent) as u32);
            self.received += 1;
            if self.received == self.expect {
                sh.all_received.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        let Ok(f) = parse(text) else { return };
        let was_exact = self.told == self.n;
        if let (Some(ch), Some(SeqField::One(seq))) = (f.ch.as_deref(), f.seq) {
            let last = if ch == "users" { &mut self.c.parlor.users_seq } else { &mut self.c.parlor.room_seq };
            if seq != *last + 1 {
                sh.gaps.fetch_add(1, Ordering::Relaxed);
                sh.gaps_churners.fetch_add(u64::from(self.churner), Ordering::Relaxed);
                sh.gaps_users.fetch_add(u64::from(ch == "users"), Ordering::Relaxed);
                let mut samples = sh.gap_samples.lock();
                if samples.len() < 3 {
                    let kind = f.kind.as_deref().unwrap_or("");
                    let since = match self.rejoined {
                        Some((at, users)) => {
                            format!("{} ms after a login again with users seq {users}", at.elapsed().as_millis())
                        }
                        None => "no login again".to_string(),
                    };
                    samples.push(format!(
                        "u{} {ch} {kind} seq {seq} after {} (churner {}; {since}; last error {:?})",
                        self.i, *last, self.churner, self.last_error
                    ));
                }
            }
            *last = (*last).max(seq);
        }
        match f.kind.as_deref() {
            Some("user_update") | Some("online") => self.told = f.count.unwrap_or(self.told),
            _ => {}
        }
        let exact = self.told == self.n;
        if exact && !was_exact {
            sh.exact.fetch_add(1, Ordering::Relaxed);
            sh.exact_at.fetch_max(wall_ms(), Ordering::Relaxed);
        } else if was_exact && !exact {
            sh.exact.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// A churner's `ok`: of its logout, or of its login again (the room as it is now).
    fn answered(&mut self, f: &client::In<'_>, sh: &Shared) {
        let Some((_, login)) = self.asked.filter(|(id, _)| f.id == Some(*id)) else { return };
        self.asked = None;
        sh.changes.fetch_add(1, Ordering::Relaxed);
        if login {
            if let Some(SeqField::Channels { room, users, .. }) = f.seq {
                self.c.parlor.room_seq = room.unwrap_or(0);
                self.c.parlor.users_seq = users.unwrap_or(0);
            }
            self.rejoined = Some((Instant::now(), self.c.parlor.users_seq));
            let was_exact = self.told == self.n;
            self.told = f.online.unwrap_or(0);
            if self.told == self.n && !was_exact {
                sh.exact.fetch_add(1, Ordering::Relaxed);
                sh.exact_at.fetch_max(wall_ms(), Ordering::Relaxed);
            } else if was_exact && self.told != self.n {
                sh.exact.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// A churner's next step: out of the room, or into it again (skipped while the last one is
    /// not answered).
    async fn toggle(&mut self, sh: &Shared) -> anyhow::Result<()> {
        if self.asked.is_some() {
            sh.churn_skipped.fetch_add(1, Ordering::Relaxed);
            return Ok(());
        }
        let id = self.c.next_id;
        self.c.next_id += 1;
        self.asked = Some((id, self.out));
        let frame = if self.out {
            format!(
                "{{\"t\":\"login\",\"id\":{id},\"room\":{},\"config\":{{\"max_members\":0,\"user_status_notify\":true}}}}",
                client::js(ROOM)
            )
        } else {
            format!("{{\"t\":\"logout\",\"id\":{id},\"room\":{}}}", client::js(ROOM))
        };
        self.out = !self.out;
        self.c.ws.send(Message::text(frame)).await?;
        Ok(())
    }

    /// After the churn, with nothing asked: back in the room (counted), or a login to get there.
    async fn home(&mut self, sh: &Shared) -> anyhow::Result<()> {
        if self.out {
            return self.toggle(sh).await;
        }
        sh.back.fetch_add(1, Ordering::Relaxed);
        sh.back_at.fetch_max(wall_ms(), Ordering::Relaxed);
        Ok(())
    }

    /// Heartbeats and frames until `stop`; the host (`go` set) also broadcasts.
    async fn run(
        mut self,
        sh: Arc<Shared>,
        mut go: watch::Receiver<bool>,
        mut churn: watch::Receiver<bool>,
        mut stop: watch::Receiver<bool>,
    ) -> Self {
        let host = self.i == 0;
        let (mut churning, mut came_back) = (false, false);
        // Each churner at its own phase of the second.
        let phase = Duration::from_millis((self.i as u64 * 7919) % 1000);
        let mut step = tokio::time::interval_at(tokio::time::Instant::now() + phase, Duration::from_secs(1));
        step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hb = tokio::time::interval(self.c.heartbeat_every());
        let mut tick = tokio::time::interval(Duration::from_millis(1000 / RATE));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut broadcasting, mut left) = (false, if host { self.expect } else { 0 });
        loop {
            tokio::select! {
                r = stop.changed() => if r.is_err() || *stop.borrow() { break },
                r = go.changed(), if !broadcasting => match r {
                    Ok(()) => {
                        broadcasting = *go.borrow();
                        // From now on, not a burst of the ticks missed while waiting.
                        tick.reset();
                    }
                    Err(_) => break,
                },
                r = churn.changed(), if self.churner && !came_back => match r {
                    Ok(()) => {
                        churning = *churn.borrow();
                        if churning {
                            step.reset_after(phase);
                        } else {
                            came_back = true;
                            if self.asked.is_none() && self.home(&sh).await.is_err() {
                                break;
                            }
                        }
                    }
                    Err(_) => break,
                },
                _ = step.tick(), if churning => if self.toggle(&sh).await.is_err() { break },
                _ = hb.tick() => if self.c.heartbeat(ROOM).await.is_err() { break },
                _ = tick.tick(), if broadcasting && left > 0 => {
                    left -= 1;
                    let frame = self.c.broadcast_frame(ROOM, &wall_ms().to_string());
                    if self.c.ws.send(Message::text(frame)).await.is_err() { break }
                }
                m = self.c.ws.next() => match m {
                    Some(Ok(Message::Text(t))) => {
                        if host && t.starts_with("{\"t\":\"ok\"") {
                            sh.sent.fetch_add(1, Ordering::Relaxed);
                        }
                        let waiting = self.asked.is_some();
                        self.frame(t.as_str(), &sh, broadcasting);
                        if came_back && waiting && self.asked.is_none() && self.home(&sh).await.is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    _ => {
                        sh.counts.broken.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                },
            }
        }
        self
    }
}

/// One worker's share of W8 against the nodes `servers`.
pub async fn run_nodes(ctx: &Ctx, servers: &Servers<'_>, n: usize) -> anyhow::Result<Report> {
    let label = format!("parlor+redis, {} nodes", servers.nodes.len());
    let mut rep = Report::new("w8", &label, n);
    let sh = Arc::new(Shared::default());
    let ids = ctx.mine(n);
    let local = ids.len();
    let expect = broadcasts(ctx);
    let pb = ctx.bar(local as u64, "logins");
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (go_tx, go_rx) = watch::channel(false);
    let (churn_tx, churn_rx) = watch::channel(false);
    let every = (n / churners(ctx, n).max(1)).max(1);
    let churning_here = ids.iter().filter(|&&i| i > 0 && i % every == 0).count();
    let (stop_tx, stop_rx) = watch::channel(false);
    let walkers = if ctx.args.quick { 1 } else { 4 };
    ctx.barrier("start").await?;
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(local);
    for &i in &ids {
        let ep = servers.endpoint(i, 1);
        let (ctx2, sh, sem, go, stop, pb) =
            (ctx.clone(), sh.clone(), sem.clone(), go_rx.clone(), stop_rx.clone(), pb.clone());
        let churn = churn_rx.clone();
        tasks.push(tokio::spawn(async move {
            let permit = sem.acquire_owned().await.ok()?;
            let joined = login(&ctx2, &ep, i, &sh).await;
            drop(permit);
            let (c, told) = match joined {
                Ok(r) => r,
                Err(e) => {
                    sh.counts.failed.fetch_add(1, Ordering::Relaxed);
                    sh.counts.error(&e);
                    return None;
                }
            };
            sh.last_login.fetch_max(wall_ms(), Ordering::Relaxed);
            sh.counts.joined.fetch_add(1, Ordering::Relaxed);
            pb.inc(1);
            // (The host is not sent its own broadcasts: it never has them all.)
            let churner = i > 0 && i % every == 0;
            let m = Member {
                i,
                n: n as u64,
                c,
                told,
                received: 0,
                expect,
                latencies: Vec::new(),
                churner,
                out: false,
                asked: None,
                rejoined: None,
                last_error: None,
            };
            if told == n as u64 {
                sh.exact.fetch_add(1, Ordering::Relaxed);
                sh.exact_at.fetch_max(wall_ms(), Ordering::Relaxed);
            }
            let mut m = m.run(sh.clone(), go, churn, stop).await;
            sh.delivered.fetch_add(m.received, Ordering::Relaxed);
            sh.latencies.lock().extend(m.latencies.drain(..));
            if i % (n / walkers).max(1) == 1 {
                let started = Instant::now();
                let w = m.c.walk_members(ROOM, n).await.map(|_| started.elapsed().as_millis() as u64);
                let w = w.map_err(|e| format!("{e:#}"));
                sh.walks.lock().push(w);
            }
            Some(m.told)
        }));
    }
    let deadline = ctx.deadline();
    let counted = |f: &AtomicUsize| f.load(Ordering::Relaxed);
    let all_in = wait_until(deadline, || counted(&sh.counts.joined) + counted(&sh.counts.failed) >= local).await;
    pb.finish();
    let login_secs = t0.elapsed().as_secs_f64();
    ctx.barrier("logged-in").await?;
    let spin = ctx.spinner("counts");
    let stall = Duration::from_secs(if ctx.args.quick { 10 } else { 30 });
    let counts_in = Instant::now() + stall;
    wait_until(counts_in.min(deadline), || {
        spin.set_message(format!("{} of {local} members count {n}", counted(&sh.exact)));
        counted(&sh.exact) >= local
    })
    .await;
    ctx.barrier("counted").await?;
    let exact_after_logins = sh.exact_at.load(Ordering::Relaxed);
    spin.set_message("the host broadcasts");
    let _ = go_tx.send(true);
    // Everyone but the host gets every broadcast (bounded: the sending time and 20 s more).
    let others = local - usize::from(ids.contains(&0));
    let until = Instant::now() + Duration::from_secs(expect / RATE + 20);
    wait_until(until.min(deadline), || counted(&sh.all_received) >= others).await;
    ctx.barrier("delivered").await?;
    let secs = churn_secs(ctx);
    if secs > 0 {
        spin.set_message(format!("churn: {churning_here} members here out and in every second for {secs} s"));
        ctx.barrier("churn-start").await?;
        let _ = churn_tx.send(true);
        tokio::time::sleep(Duration::from_secs(secs)).await;
        let _ = churn_tx.send(false);
        ctx.barrier("churn-stop").await?;
        // Every churner back, then every count `n` again (bounded).
        let until = Instant::now() + Duration::from_secs(30);
        wait_until(until.min(deadline), || counted(&sh.back) >= churning_here && counted(&sh.exact) >= local).await;
        ctx.barrier("converged").await?;
    }
    spin.finish_and_clear();
    let _ = stop_tx.send(true);
    let mut exact = 0usize;
    for t in tasks {
        if let Ok(Some(told)) = t.await {
            exact += usize::from(told == n as u64);
        }
    }
    let joined = counted(&sh.counts.joined);
    let mut lat = std::mem::take(&mut *sh.latencies.lock());
    lat.sort_unstable();
    let lat: Vec<u64> = lat.into_iter().map(u64::from).collect();
    rep.metric("sessions logged in", joined as f64, "");
    rep.metric("time to all logged in", login_secs, "s");
    rep.metric("logins/s", joined as f64 / login_secs.max(1e-9), "1/s");
    rep.metric("last login at (wall ms)", sh.last_login.load(Ordering::Relaxed) as f64, "ms");
    rep.metric("all counts exact at (wall ms)", exact_after_logins as f64, "ms");
    rep.metric("counts exact", exact as f64, "");
    rep.metric("counts wrong", (joined - exact.min(joined)) as f64, "");
    rep.metric("presence bytes received", sh.presence_bytes.load(Ordering::Relaxed) as f64, "B");
    rep.metric("broadcasts sent", sh.sent.load(Ordering::Relaxed) as f64, "");
    rep.metric("broadcast deliveries", sh.delivered.load(Ordering::Relaxed) as f64, "");
    rep.metric("fan-out latency p50", percentile(&lat, 50.0) as f64, "ms");
    rep.metric("fan-out latency p99", percentile(&lat, 99.0) as f64, "ms");
    rep.metric("seq gaps", sh.gaps.load(Ordering::Relaxed) as f64, "");
    rep.metric("seq gaps seen by churners", sh.gaps_churners.load(Ordering::Relaxed) as f64, "");
    rep.metric("seq gaps on the users channel", sh.gaps_users.load(Ordering::Relaxed) as f64, "");
    for g in sh.gap_samples.lock().iter() {
        rep.problem(format!("a seq gap: {g}"));
    }
    if secs > 0 {
        rep.metric("churners", churning_here as f64, "");
        rep.metric("churners back", counted(&sh.back) as f64, "");
        rep.metric("churn changes", sh.changes.load(Ordering::Relaxed) as f64, "");
        rep.metric("churn requests refused", sh.churn_errors.load(Ordering::Relaxed) as f64, "");
        rep.metric("churn steps skipped (answer pending)", sh.churn_skipped.load(Ordering::Relaxed) as f64, "");
        for e in sh.error_samples.lock().iter() {
            rep.problem(format!("a churn request refused: {e}"));
        }
        rep.metric("last churner back at (wall ms)", sh.back_at.load(Ordering::Relaxed) as f64, "ms");
        rep.metric("all counts exact again at (wall ms)", sh.exact_at.load(Ordering::Relaxed) as f64, "ms");
        if counted(&sh.back) < churning_here {
            rep.problem(format!("{} of {churning_here} churners back", counted(&sh.back)));
        }
    }
    let walks = std::mem::take(&mut *sh.walks.lock());
    let ok: Vec<u64> = walks.iter().filter_map(|w| w.as_ref().ok().copied()).collect();
    rep.metric("whole-list walks exact", ok.len() as f64, "");
    if let Some(max) = ok.iter().max() {
        rep.metric("whole-list walk time", *max as f64 / 1000.0, "s");
    }
    for e in walks.iter().filter_map(|w| w.as_ref().err()) {
        rep.problem(format!("a walk of the member list: {e}"));
    }
    if !all_in || joined != local {
        let first = sh.counts.first_error.lock().clone().unwrap_or_default();
        rep.problem(format!("{joined} of {local} sessions logged in; first error: {first}"));
    }
    if exact < joined {
        rep.problem(format!("{} members' count is not {n}", joined - exact));
    }
    let broken = counted(&sh.counts.broken);
    if broken > 0 {
        rep.problem(format!("{broken} connections broke"));
    }
    Ok(rep)
}

/// The parent's figures from the merged report: counts exact after the last login, broadcasts
/// lost, presence bytes per member.
pub fn finish(rep: &mut Report) {
    let n = rep.sessions as f64;
    if let (Some(a), Some(b)) = (rep.get("last login at (wall ms)"), rep.get("all counts exact at (wall ms)")) {
        rep.metric("every count exact after the last login", (b - a).max(0.0) / 1000.0, "s");
    }
    let sent = rep.get("broadcasts sent").unwrap_or(0.0);
    let lost = sent * (n - 1.0) - rep.get("broadcast deliveries").unwrap_or(0.0);
    rep.metric("broadcasts lost", lost, "");
    if lost != 0.0 {
        rep.problem(format!("{lost} broadcast deliveries lost (or extra)"));
    }
    if let Some(b) = rep.get("presence bytes received") {
        rep.metric("presence bytes per member", b / n.max(1.0) / 1024.0, "KiB");
    }
    if let (Some(a), Some(b)) =
        (rep.get("last churner back at (wall ms)"), rep.get("all counts exact again at (wall ms)"))
    {
        rep.metric("every count exact after the churn", (b - a).max(0.0) / 1000.0, "s");
    }
    if rep.get("seq gaps").unwrap_or(0.0) > 0.0 {
        rep.problem("seq gaps or repeats seen");
    }
}
