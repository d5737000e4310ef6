//! A Parlor session that survives losing its connection: it logs in, keeps heartbeating (one
//! member per room also broadcasts), and on a lost connection reconnects with full-jitter
//! backoff (§7) and resumes (§6: `resume` with its acks, the replay, `resume_done`), trying its
//! addresses in turn (W6: the next node when its own is dead). Used by W4 and W6, which count
//! what each session saw: events lost, duplicated, `seq` gaps, false `user_delete`.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{connect_ws, js, parse, source, Client, SeqField, Ws};
use crate::{now_ns, stopped, Counts};

/// State shared between the controller and the sessions.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    pub(crate) counts: Counts,
    /// Broadcasters may send.
    pub(crate) broadcasting: AtomicBool,
    /// Connections lost so far.
    pub(crate) downs: AtomicUsize,
    /// Sessions back (`resume_done`) so far.
    pub(crate) ups: AtomicUsize,
    /// Sessions that gave up (resume refused, kicked).
    pub(crate) dead: AtomicUsize,
    /// When the last session came back (ns).
    pub(crate) last_up_ns: AtomicU64,
    /// Resume attempts (connections opened to resume).
    pub(crate) attempts: AtomicU64,
    /// Broadcasts sent and not yet answered.
    pub(crate) in_flight: AtomicUsize,
    /// Rooms answered with `snapshot` instead of `replay`.
    pub(crate) snapshots: AtomicU64,
    /// Each room's last `seq` on the room channel, from its broadcaster's `ok`s.
    pub(crate) room_last: Vec<AtomicU64>,
    /// Each session's last room-channel `seq`.
    pub(crate) session_seq: Vec<AtomicU64>,
    /// When the cut came (ns; 0 before).
    pub(crate) cut_ns: AtomicU64,
    /// The cut is about to come: a connection lost from now on is the cut's.
    pub(crate) armed: AtomicBool,
    /// When the first connection was lost once armed (ns; 0: none yet). In a worker the parent
    /// cuts (drop-connections, a node's SIGKILL) before it releases the barrier, which a loaded
    /// worker may read seconds later: the first loss is the better clock for the cut.
    pub(crate) first_down_ns: AtomicU64,
    /// When the first `ok` came to a broadcast sent after the cut (ns; 0: none yet).
    pub(crate) first_ok_ns: AtomicU64,
    /// Broadcasts answered 1000004, and so sent again (§9.6).
    pub(crate) retried: AtomicU64,
}

/// What a session reports at the end.
#[derive(Debug, Default)]
pub(crate) struct Outcome {
    pub(crate) room: usize,
    pub(crate) broadcaster: bool,
    pub(crate) received: HashSet<String>,
    pub(crate) sent: Vec<String>,
    pub(crate) dup_seq: u64,
    pub(crate) dup_msg: u64,
    pub(crate) gaps: u64,
    pub(crate) false_deletes: u64,
    pub(crate) missed_messages: u64,
    pub(crate) refused: u64,
    pub(crate) back_ms: Vec<u64>,
    pub(crate) fatal: Option<String>,
    /// The broadcast still unanswered at the end, and whether it was repeated after a resume.
    pub(crate) unanswered: Option<(String, bool)>,
    /// Why resume attempts failed.
    pub(crate) failures: Vec<String>,
    /// Debugging: when the last broadcast was sent and when the session was last back (ns).
    pub(crate) sent_ns: u64,
    pub(crate) up_ns: u64,
    pub(crate) count: u64,
}

pub(crate) struct Session {
    pub(crate) i: usize,
    pub(crate) room: String,
    /// Where it resumes: the first address first, then the others in turn.
    pub(crate) addrs: Vec<SocketAddr>,
    pub(crate) path: String,
    pub(crate) c: Client,
    /// The broadcast in flight: (id, text, frame), repeated after a resume.
    pub(crate) pending: Option<(u64, String, String)>,
    /// The pending broadcast was repeated after a resume.
    pub(crate) repeated: bool,
    /// The pending broadcast was answered 1000004: when it goes again, and retries since the
    /// last other answer (§9.6: full jitter in [0, min(2 s, 100 ms × 2^n)]).
    pub(crate) retry_at: Option<tokio::time::Instant>,
    pub(crate) retries: u32,
    pub(crate) count: u64,
    pub(crate) out: Outcome,
}

/// Full jitter (§7): attempt k waits a random time in [0, min(10 s, 0.5 s × 2^k)].
pub(crate) fn backoff(attempt: u32) -> Duration {
    let cap = (0.5 * 2f64.powi(attempt.min(10) as i32)).min(10.0);
    Duration::from_secs_f64(rand::random::<f64>() * cap)
}

impl Session {
    pub(crate) async fn run(mut self, sh: Arc<Shared>, mut stop: watch::Receiver<bool>, period: Duration) -> Outcome {
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
                _ = until(self.retry_at), if self.retry_at.is_some() => {
                    self.retry_at = None;
                    let Some((_, _, frame)) = &self.pending else { continue };
                    self.c.ws.send(Message::text(frame.clone())).await.err().map(|e| anyhow!("{e}"))
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
                if sh.armed.load(Ordering::Relaxed) {
                    let _ = sh.first_down_ns.compare_exchange(0, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
                }
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
                        self.retry_at = None;
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
        let mut wait = backoff(0);
        loop {
            if attempt > 60 {
                bail!("no resume after {attempt} attempts");
            }
            tokio::time::sleep(wait).await;
            attempt += 1;
            wait = backoff(attempt);
            sh.attempts.fetch_add(1, Ordering::Relaxed);
            let addr = self.addrs[(attempt as usize - 1) % self.addrs.len()];
            let ws = match connect_ws(addr, &self.path, source(self.i)).await {
                Ok(ws) => ws,
                Err(e) => {
                    // A refusal's `Retry-After` is the node's slot for this client (§9.7): no
                    // sooner, and within a second of it, as the Rust SDK waits.
                    if let Some(ms) = e.downcast_ref().and_then(parlor_client::retry_after_ms) {
                        wait = Duration::from_millis(parlor_client::retry_after_delay_ms(ms, rand::random()));
                    }
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
                // §9.6: a resume answered 1000004 (the shared state did not answer in time) is
                // one failed connection attempt; the next attempt resumes the same session.
                "error" if !resumed && f.code == Some(1_000_004) => {
                    self.out.failures.push("resume answered 1000004".into());
                    return Ok(false);
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
                if f.t == "error" && f.code == Some(1_000_004) {
                    // Not failed (§9.6): the same request goes again after a full-jitter wait.
                    sh.retried.fetch_add(1, Ordering::Relaxed);
                    let cap = Duration::from_millis(100 << self.retries.min(5)).min(Duration::from_secs(2));
                    self.retries += 1;
                    self.retry_at = Some(tokio::time::Instant::now() + cap.mul_f64(rand::random::<f64>()));
                    return Ok(());
                }
                self.retries = 0;
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
                    let cut = sh.cut_ns.load(Ordering::Relaxed);
                    if cut > 0 && self.out.sent_ns > cut {
                        let _ = sh.first_ok_ns.compare_exchange(0, now_ns(), Ordering::Relaxed, Ordering::Relaxed);
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

/// Resolves at `at` (never when None).
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
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
