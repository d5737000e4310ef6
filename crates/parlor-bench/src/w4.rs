//! W4, reconnect storm (Parlor only): `n` sessions in `rooms` rooms connect through a
//! [`FaultProxy`]; one member per room keeps broadcasting; the proxy cuts every connection at
//! once; each session resumes (protocol §6: `resume` with its acks, the replay, `resume_done`)
//! after a full-jitter backoff (§7: attempt k waits a random time in [0, min(10 s, 0.5 s × 2^k)]).
//!
//! Measured: the time from the cut until every session is back; events lost (per session: the
//! broadcasts its room's broadcaster got an `ok` for, minus those it received — every session
//! joined before the first broadcast, so that is the whole set), events duplicated (a `seq` seen
//! twice on a channel, or a message twice), gaps in `seq`, and `user_delete` seen by anyone
//! (nobody leaves, so any is false).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use parlor_testkit::FaultProxy;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect_ws, js, parse, source, Client, SeqField, Ws};
use crate::report::{cumulative, percentile, Report};
use crate::target::Target;
use crate::{join_retry, now_ns, stopped, wait_until, Counts, Ctx};

/// State shared between the controller and the sessions.
#[derive(Debug, Default)]
struct Shared {
    counts: Counts,
    /// Broadcasters may send.
    broadcasting: AtomicBool,
    /// Connections lost so far.
    downs: AtomicUsize,
    /// Sessions back (`resume_done`) so far.
    ups: AtomicUsize,
    /// Sessions that gave up (resume refused, kicked).
    dead: AtomicUsize,
    /// When the last session came back (ns).
    last_up_ns: AtomicU64,
    /// Resume attempts (connections opened to resume).
    attempts: AtomicU64,
    /// Broadcasts sent and not yet answered.
    in_flight: AtomicUsize,
    /// Rooms answered with `snapshot` instead of `replay`.
    snapshots: AtomicU64,
    /// Each room's last `seq` on the room channel, from its broadcaster's `ok`s.
    room_last: Vec<AtomicU64>,
    /// Each session's last room-channel `seq`.
    session_seq: Vec<AtomicU64>,
}

/// What a session reports at the end.
#[derive(Debug, Default)]
struct Outcome {
    room: usize,
    broadcaster: bool,
    received: HashSet<String>,
    sent: Vec<String>,
    dup_seq: u64,
    dup_msg: u64,
    gaps: u64,
    false_deletes: u64,
    missed_messages: u64,
    refused: u64,
    back_ms: Vec<u64>,
    fatal: Option<String>,
    /// The broadcast still unanswered at the end, and whether it was repeated after a resume.
    unanswered: Option<(String, bool)>,
    /// Why resume attempts failed.
    failures: Vec<String>,
    /// Debugging: when the last broadcast was sent and when the session was last back (ns).
    sent_ns: u64,
    up_ns: u64,
    count: u64,
}

struct Session {
    i: usize,
    room: String,
    proxy: SocketAddr,
    path: String,
    c: Client,
    /// The broadcast in flight: (id, text, frame), repeated after a resume.
    pending: Option<(u64, String, String)>,
    /// The pending broadcast was repeated after a resume.
    repeated: bool,
    count: u64,
    out: Outcome,
}

/// The report's curve of sessions back by seconds since their connection was lost (`--plot`).
pub const BACK_SERIES: &str = "sessions back";

/// Run W4.
pub async fn run(ctx: &Ctx, target: &Target, n: usize, rooms: usize) -> anyhow::Result<Report> {
    let rooms = rooms.clamp(1, n.max(1));
    let mut rep = Report::new("w4", target.kind.name(), n);
    let proxy = match ctx.args.cut {
        crate::Cut::Proxy => Some(FaultProxy::start(target.addr)?),
        crate::Cut::Server => None,
    };
    let mut ep = target.endpoint();
    if let Some(p) = &proxy {
        ep.addr = p.addr();
    }
    let quick = ctx.args.quick;
    let period = Duration::from_millis(if quick { 100 } else { 1000 });
    let shared = Arc::new(Shared {
        room_last: (0..rooms).map(|_| AtomicU64::new(0)).collect(),
        session_seq: (0..n).map(|_| AtomicU64::new(0)).collect(),
        ..Shared::default()
    });
    let pb = ctx.bar(n as u64, "logins");
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (ctx2, sh, sem, stop, pb, ep) =
            (ctx.clone(), shared.clone(), sem.clone(), stop_rx.clone(), pb.clone(), ep.clone());
        tasks.push(tokio::spawn(async move {
            let r = i % rooms;
            let room = format!("w4-{r}");
            let Ok(permit) = sem.acquire_owned().await else { return None };
            let joined = join_retry(&ctx2, &ep, i, &format!("u{i}"), &room, true).await;
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
                proxy: ep.addr,
                path: ep.path.clone(),
                c,
                pending: None,
                repeated: false,
                count: 0,
                out,
            };
            Some(s.run(sh, stop, period).await)
        }));
    }
    let deadline = ctx.deadline();
    let sh = &shared;
    let all = wait_until(deadline, || {
        sh.counts.joined.load(Ordering::Relaxed) + sh.counts.failed.load(Ordering::Relaxed) >= n
    })
    .await;
    pb.finish();
    let joined = sh.counts.joined.load(Ordering::Relaxed);
    if !all || joined != n {
        rep.problem(format!(
            "{joined} of {n} sessions logged in{}",
            sh.counts.first_error.lock().as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default()
        ));
        let _ = stop_tx.send(true);
        return Ok(rep);
    }
    if let Some(p) = &proxy {
        let _ = tokio::time::timeout(Duration::from_secs(10), p.wait_for_connections(n)).await;
    }

    // Traffic, then the cut.
    let spin = ctx.spinner("storm");
    spin.set_message("broadcasting");
    sh.broadcasting.store(true, Ordering::Relaxed);
    tokio::time::sleep(if quick { Duration::from_secs(1) } else { Duration::from_secs(3) }).await;
    let cut_ns = now_ns();
    let cut_at = Instant::now();
    match &proxy {
        Some(p) => {
            spin.set_message(format!("cut {} connections", p.connection_count()));
            p.cut();
        }
        None => {
            spin.set_message("the server drops every connection");
            drop_connections(target.addr, &ctx.app).await?;
        }
    }
    let back_limit = Instant::now() + Duration::from_secs(if quick { 12 } else { 80 });
    let all_back = wait_until(back_limit.min(deadline), || {
        let downs = sh.downs.load(Ordering::Relaxed);
        let ups = sh.ups.load(Ordering::Relaxed) + sh.dead.load(Ordering::Relaxed);
        spin.set_message(format!("{ups} of {downs} cut sessions back"));
        downs >= n && ups >= downs
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
    let drained = wait_until(Instant::now() + Duration::from_secs(10), || {
        (0..n).all(|i| sh.session_seq[i].load(Ordering::Relaxed) >= sh.room_last[i % rooms].load(Ordering::Relaxed))
    })
    .await;
    spin.finish_and_clear();
    let _ = stop_tx.send(true);
    let mut outcomes = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(Some(o)) = t.await {
            outcomes.push(o);
        }
    }
    if let Some(p) = &proxy {
        p.stop();
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
        rep.problem(format!("only {ups} of {downs} cut sessions were back {storm_secs:.1} s after the cut (of {n})"));
    }
    if downs < n {
        rep.problem(format!("the cut reached only {downs} of {n} sessions"));
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
        rep.problem(format!("{refused} broadcasts refused"));
    }
    if total_sent == 0 {
        rep.problem("no broadcast was sent");
    }
    if !fatal.is_empty() {
        rep.problem(format!("{} sessions failed, first: {}", fatal.len(), fatal[0]));
    }
    Ok(rep)
}

/// Full jitter (§7): attempt k waits a random time in [0, min(10 s, 0.5 s × 2^k)].
fn backoff(attempt: u32) -> Duration {
    let cap = (0.5 * 2f64.powi(attempt.min(10) as i32)).min(10.0);
    Duration::from_secs_f64(rand::random::<f64>() * cap)
}

impl Session {
    async fn run(mut self, sh: Arc<Shared>, mut stop: watch::Receiver<bool>, period: Duration) -> Outcome {
        let every = self.c.parlor.heartbeat;
        let mut hb = tokio::time::interval_at(tokio::time::Instant::now() + every.mul_f64(rand::random()), every);
        let mut bc = tokio::time::interval_at(tokio::time::Instant::now() + period.mul_f64(rand::random()), period);
        bc.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let broadcaster = self.out.broadcaster;
        loop {
            let lost = tokio::select! {
                _ = stopped(&mut stop) => break,
                _ = hb.tick() => {
                    let ping = self.c.parlor_ping(&self.room);
                    self.c.ws.send(Message::text(ping)).await.err().map(|e| anyhow!("{e}"))
                }
                _ = bc.tick(), if broadcaster && self.pending.is_none() => {
                    // The flag is read here, not in the guard: a guard is read once when the
                    // select starts, and this select may have waited since before the flag fell.
                    if !sh.broadcasting.load(Ordering::SeqCst) {
                        continue;
                    }
                    self.count += 1;
                    let text = format!("b{}:{}", self.i, self.count);
                    let id = self.c.next_id;
                    let frame = self.c.broadcast_frame(&self.room, &text);
                    self.pending = Some((id, text, frame.clone()));
                    self.repeated = false;
                    self.out.sent_ns = now_ns();
                    sh.in_flight.fetch_add(1, Ordering::SeqCst);
                    self.c.ws.send(Message::text(frame)).await.err().map(|e| anyhow!("{e}"))
                }
                m = self.c.ws.next() => match m {
                    Some(Ok(Message::Text(t))) => match self.frame(&sh, &t) {
                        Ok(_) => None,
                        Err(e) => { self.out.fatal = Some(format!("{e:#}")); break; }
                    },
                    Some(Ok(Message::Close(f))) => Some(anyhow!("closed: {f:?}")),
                    Some(Ok(_)) => None,
                    Some(Err(e)) => Some(anyhow!("{e}")),
                    None => Some(anyhow!("closed")),
                },
            };
            if lost.is_some() {
                sh.downs.fetch_add(1, Ordering::Relaxed);
                let down_at = Instant::now();
                let resumed = tokio::select! {
                    _ = stopped(&mut stop) => break,
                    r = self.resume(&sh) => r,
                };
                match resumed {
                    Ok(()) => {
                        self.out.back_ms.push(down_at.elapsed().as_millis() as u64);
                        sh.last_up_ns.fetch_max(now_ns(), Ordering::Relaxed);
                        self.out.up_ns = now_ns();
                        sh.ups.fetch_add(1, Ordering::Relaxed);
                        // Repeat the request whose answer may have been lost (same id: §1).
                        if let Some((_, _, frame)) = &self.pending {
                            self.repeated = true;
                            let _ = self.c.ws.send(Message::text(frame.clone())).await;
                        }
                    }
                    Err(e) => {
                        sh.dead.fetch_add(1, Ordering::Relaxed);
                        self.out.fatal = Some(format!("{e:#}"));
                        break;
                    }
                }
            }
        }
        self.out.count = self.count;
        self.out.unanswered = self.pending.take().map(|(_, text, _)| (text, self.repeated));
        self.out
    }

    /// Reconnect with backoff and resume; returns once `resume_done` is processed.
    async fn resume(&mut self, sh: &Shared) -> anyhow::Result<()> {
        let mut attempt = 0u32;
        loop {
            if attempt > 60 {
                bail!("no resume after {attempt} attempts");
            }
            tokio::time::sleep(backoff(attempt)).await;
            attempt += 1;
            sh.attempts.fetch_add(1, Ordering::Relaxed);
            let ws = match connect_ws(self.proxy, &self.path, source(self.i)).await {
                Ok(ws) => ws,
                Err(e) => {
                    self.out.failures.push(format!("connect: {e:#}"));
                    continue;
                }
            };
            self.c.ws = ws;
            let p = &self.c.parlor;
            let frame = format!(
                "{{\"t\":\"resume\",\"v\":1,\"session\":{},\"resume_token\":{},\"ack\":{}}}",
                js(&p.session),
                js(&p.resume_token),
                self.c.parlor_ack(&self.room)
            );
            if let Err(e) = self.c.ws.send(Message::text(frame)).await {
                self.out.failures.push(format!("send resume: {e}"));
                continue;
            }
            match tokio::time::timeout(Duration::from_secs(15), self.replay(sh)).await {
                Ok(Ok(true)) => return Ok(()),
                Ok(Ok(false)) => {
                    self.out.failures.push("broke during the replay".into());
                    continue;
                }
                Err(_) => {
                    self.out.failures.push("no resume_done within 15 s".into());
                    continue;
                }
                Ok(Err(e)) => return Err(e),
            }
        }
    }

    /// Read `resumed`, the replay and `resume_done`. Ok(false): the connection broke, try again.
    async fn replay(&mut self, sh: &Shared) -> anyhow::Result<bool> {
        let mut resumed = false;
        loop {
            let t = match next(&mut self.c.ws).await {
                Some(t) => t,
                None => return Ok(false),
            };
            let f = parse(&t)?;
            match &*f.t {
                "resumed" => {
                    resumed = true;
                    if let Some(tok) = f.resume_token {
                        self.c.parlor.resume_token = tok;
                    }
                    match f.rooms.as_ref().and_then(|r| r.get(&self.room)).map(String::as_str) {
                        Some("replay") => {}
                        Some("snapshot") => {
                            sh.snapshots.fetch_add(1, Ordering::Relaxed);
                        }
                        other => bail!("resume of {}: room {} is {other:?}", self.i, self.room),
                    }
                }
                "error" if !resumed => bail!("resume refused: {t:.200}"),
                "resume_done" => return Ok(true),
                _ => {
                    drop(f);
                    self.frame(sh, &t)?;
                }
            }
        }
    }

    /// Apply one frame (live or replayed).
    fn frame(&mut self, sh: &Shared, t: &str) -> anyhow::Result<()> {
        let f = parse(t)?;
        let p = &mut self.c.parlor;
        match &*f.t {
            "event" => {
                let Some(SeqField::One(seq)) = f.seq else { return Ok(()) };
                let last = match f.ch.as_deref() {
                    Some("room") => &mut p.room_seq,
                    Some("users") => &mut p.users_seq,
                    Some("direct") => &mut p.direct_seq,
                    _ => return Ok(()),
                };
                if seq <= *last {
                    self.out.dup_seq += 1;
                    return Ok(());
                }
                self.out.gaps += seq - *last - 1;
                *last = seq;
                if f.ch.as_deref() == Some("room") {
                    sh.session_seq[self.i].store(seq, Ordering::Relaxed);
                }
                match f.kind.as_deref() {
                    Some("broadcast") => {
                        if let Some(m) = f.message {
                            let own = m.starts_with(&format!("b{}:", self.i));
                            if !own && !self.out.received.insert(m.into_owned()) {
                                self.out.dup_msg += 1;
                            }
                        }
                    }
                    Some("user_delete") => self.out.false_deletes += 1,
                    _ => {}
                }
            }
            "ok" | "error" => {
                let is_pending = matches!((&self.pending, f.id), (Some((id, _, _)), Some(fid)) if *id == fid);
                if !is_pending {
                    return Ok(());
                }
                let Some((_, text, _)) = self.pending.take() else { return Ok(()) };
                sh.in_flight.fetch_sub(1, Ordering::Relaxed);
                if f.t == "ok" {
                    if let Some(SeqField::Channels { room: Some(s), .. }) = f.seq {
                        if s > p.room_seq {
                            p.room_seq = s;
                            sh.session_seq[self.i].store(s, Ordering::Relaxed);
                        }
                        sh.room_last[self.out.room].fetch_max(s, Ordering::Relaxed);
                    }
                    self.out.sent.push(text);
                } else {
                    self.out.refused += 1;
                }
            }
            "snapshot" => {
                if let Some(SeqField::Channels { room, users, .. }) = f.seq {
                    p.room_seq = room.unwrap_or(p.room_seq);
                    p.users_seq = users.unwrap_or(p.users_seq);
                    sh.session_seq[self.i].store(p.room_seq, Ordering::Relaxed);
                }
                if let Some(e) = f.room_session {
                    p.epoch = e;
                }
                if f.missed_messages == Some(true) {
                    self.out.missed_messages += 1;
                }
            }
            "kicked" => bail!("session {} kicked: {t:.200}", self.i),
            _ => {}
        }
        Ok(())
    }
}

/// The next text frame, or None when the connection broke.
async fn next(ws: &mut Ws) -> Option<String> {
    loop {
        match ws.next().await? {
            Ok(Message::Text(t)) => return Some(t.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

/// `POST /v1/admin/apps/{app}/connections/drop`: the server closes every connection at once.
async fn drop_connections(addr: SocketAddr, app: &crate::client::App) -> anyhow::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_is_full_jitter_capped_at_ten_seconds() {
        for attempt in 0..20 {
            let cap = (0.5 * 2f64.powi(attempt.min(10) as i32)).min(10.0);
            for _ in 0..50 {
                assert!(backoff(attempt).as_secs_f64() <= cap);
            }
        }
    }
}
