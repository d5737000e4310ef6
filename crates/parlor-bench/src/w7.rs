//! W7, big room (Parlor only): `n` sessions log in to ONE room with `user_status_notify` true —
//! the live-stream case. Each member builds the room's user list as a client would: the others
//! in its login `ok`, then every `user_add` / `user_delete` on the `users` channel (in `seq`
//! order, no gaps, no repeats).
//!
//! Up to the server's `--full-presence-up-to` (default 500) that list is the whole room, and the
//! storm is over when every member lists all the other `n − 1` users, each list then checked to
//! be exactly that. Above it the room is *large* (protocol §9.10): the `ok` carries a page and a
//! cursor (`users_next`), arrivals come in `user_update` batches (applied as sets) and the count
//! in `user_update` / `online`. Then the storm is over when every member's count is `n`; each
//! member's list must hold no one who is not in the room; and some members (all with --quick,
//! else 20) page the whole list with `members` (500 a page), which must be exactly the room, no
//! one twice.
//!
//! Measured: the time until all are logged in, the time until every list (or count) is complete,
//! users events and user entries delivered, bytes received for presence (every text frame from
//! the login `ok` on, the pages excluded) and per member, the pages' bytes, the server's CPU and
//! RSS. Naively each login tells everyone already there (n²/2 user entries).
//!
//! A member's list is a bitset over the user indices (`u<i>`), so 10 000 members × 10 000 users
//! cost the generator 12.5 MB, not a string per entry.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{watch, Semaphore};

use crate::client::{self, parse, Client, In, SeqField};
use crate::report::{percentile, Report};
use crate::target::{Endpoint, Target};
use crate::{hold, wait_until, Counts, Ctx};

/// The room.
const ROOM: &str = "w7";

/// Counters every member adds to.
#[derive(Debug, Default)]
struct Shared {
    counts: Counts,
    /// Members whose list holds every other user.
    complete: AtomicUsize,
    /// `users` events received (after the login `ok`).
    events: AtomicU64,
    /// User entries in those events.
    entries: AtomicU64,
    /// Text bytes received, the login `ok` included.
    bytes: AtomicU64,
    /// When the last member became complete (ns since the start).
    last_complete_ns: AtomicU64,
    /// Members who saw their room large (a page in the `ok`, or a `user_update`).
    large: AtomicUsize,
    /// Bytes of the `members` pages read at the end.
    page_bytes: AtomicU64,
}

/// One member's view of the room's users.
#[derive(Debug)]
struct Member {
    me: usize,
    n: usize,
    bits: Vec<u64>,
    count: usize,
    users_seq: u64,
    /// The room is large (§9.10): the list is a partial view, applied as a set.
    large: bool,
    /// The room's member count as last told (`ok`, `user_update`, `online`).
    told: u64,
    /// Wrong things seen: an add of a user already listed, a delete of one not listed (in a room
    /// that is not large), an id that is not one of the generator's, a `seq` gap or repeat.
    errors: Vec<String>,
}

impl Member {
    fn new(me: usize, n: usize) -> Member {
        let bits = vec![0; n.div_ceil(64)];
        Member { me, n, bits, count: 0, users_seq: 0, large: false, told: 0, errors: Vec::new() }
    }

    /// A room that is not large: every other user listed. A large one: the count is the room's.
    fn complete(&self) -> bool {
        match self.large {
            true => self.told == self.n as u64 && !self.has(self.me),
            false => self.count == self.n - 1 && !self.has(self.me),
        }
    }

    fn has(&self, i: usize) -> bool {
        self.bits[i / 64] & (1 << (i % 64)) != 0
    }

    fn error(&mut self, e: String) {
        if self.errors.len() < 5 {
            self.errors.push(e);
        }
    }

    /// Apply a user added (`add`) or deleted; false for a wrong one (recorded).
    fn apply(&mut self, id: &str, add: bool) {
        let Some(i) = id.strip_prefix('u').and_then(|s| s.parse::<usize>().ok()).filter(|&i| i < self.n) else {
            self.error(format!("unknown user {id:?}"));
            return;
        };
        if i == self.me {
            // A large room's batch carries the member's own arrival too (§9.10).
            if !self.large {
                self.error("its own user in its list".into());
            }
            return;
        }
        let (w, b) = (i / 64, 1u64 << (i % 64));
        match (add, self.bits[w] & b != 0) {
            // As a set in a large room: a batch may repeat what the `ok`'s page listed.
            (true, true) | (false, false) if self.large => {}
            (true, false) => {
                self.bits[w] |= b;
                self.count += 1;
            }
            (false, true) => {
                self.bits[w] &= !b;
                self.count -= 1;
            }
            (true, true) => self.error(format!("user_add of {id}, already listed")),
            (false, false) => self.error(format!("user_delete of {id}, not listed")),
        }
    }

    /// The login `ok`: the others already there and the `users` channel's last `seq`.
    fn login(&mut self, ok: &In<'_>) {
        self.large = ok.users_next.is_some();
        self.told = ok.online.unwrap_or(0);
        for u in ok.users.iter().flatten() {
            self.apply(&u.id, true);
        }
        if let Some(SeqField::Channels { users, .. }) = ok.seq {
            self.users_seq = users.unwrap_or(0);
        }
    }

    /// One frame after the login; returns the user entries it carried.
    fn frame(&mut self, text: &str) -> u64 {
        let users = text.contains("\"ch\":\"users\"");
        if !text.starts_with("{\"t\":\"event\"") || !(users || text.contains("\"kind\":\"online\"")) {
            return 0;
        }
        let f = match parse(text) {
            Ok(f) => f,
            Err(e) => {
                self.error(format!("{e:#}"));
                return 0;
            }
        };
        if f.kind.as_deref() == Some("online") {
            self.told = f.count.unwrap_or(self.told);
            return 0;
        }
        let Some(SeqField::One(seq)) = f.seq else { return 0 };
        if seq != self.users_seq + 1 {
            self.error(format!("users seq {seq} after {}", self.users_seq));
        }
        self.users_seq = self.users_seq.max(seq);
        let add = match f.kind.as_deref() {
            Some("user_add") => true,
            Some("user_delete") => false,
            Some("user_update") => {
                self.large = true;
                self.told = f.count.unwrap_or(self.told);
                let (added, deleted) = (f.added.unwrap_or_default(), f.deleted.unwrap_or_default());
                for u in &deleted {
                    self.apply(&u.id, false);
                }
                for u in &added {
                    self.apply(&u.id, true);
                }
                return (added.len() + deleted.len()) as u64;
            }
            _ => return 0,
        };
        let users = f.users.unwrap_or_default();
        for u in &users {
            self.apply(&u.id, add);
        }
        users.len() as u64
    }
}

/// Log in as `u<i>` to the room, with a few retries; the `ok` goes to `m`.
async fn login(ctx: &Ctx, ep: &Endpoint, i: usize, m: &mut Member, bytes: &AtomicU64) -> anyhow::Result<Client> {
    let user = format!("u{i}");
    let mut last = None;
    for attempt in 0..5u64 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(100 * attempt)).await;
        }
        let attempt = async {
            let ws = client::connect_ws(ep.addr, &ep.path, client::source(i)).await?;
            let mut c = Client { ws, kind: ep.kind, parlor: Default::default(), next_id: 1 };
            c.parlor_hello(&ctx.app, &user).await?;
            c.parlor_login_with(ROOM, true, &mut |text, ok| {
                bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                m.login(ok);
            })
            .await?;
            anyhow::Ok(c)
        };
        match attempt.await {
            Ok(c) => return Ok(c),
            Err(e) => {
                *m = Member::new(i, m.n);
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no attempt")))
}

/// Run W7.
pub async fn run(ctx: &Ctx, target: &Target, n: usize) -> anyhow::Result<Report> {
    let n = n.max(2);
    let mut rep = Report::new("w7", target.kind.name(), n);
    let sh = Arc::new(Shared::default());
    let pb = ctx.bar(n as u64, "logins");
    let sem = Arc::new(Semaphore::new(ctx.args.concurrency.max(1)));
    let (stop_tx, stop_rx) = watch::channel(false);
    let cpu0 = target.cpu();
    let start = Instant::now();
    let last_login_ns = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (ctx2, sh, sem, stop, pb, ep, last) = (
            ctx.clone(),
            sh.clone(),
            sem.clone(),
            stop_rx.clone(),
            pb.clone(),
            target.endpoint(),
            last_login_ns.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut m = Member::new(i, n);
            let permit = sem.acquire_owned().await.ok()?;
            let t0 = Instant::now();
            let joined = login(&ctx2, &ep, i, &mut m, &sh.bytes).await;
            drop(permit);
            let c = match joined {
                Ok(c) => c,
                Err(e) => {
                    sh.counts.failed.fetch_add(1, Ordering::Relaxed);
                    sh.counts.error(&e);
                    return None;
                }
            };
            let lat = t0.elapsed();
            last.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            sh.counts.joined.fetch_add(1, Ordering::Relaxed);
            pb.inc(1);
            let mut was_complete = m.complete();
            if was_complete {
                sh.complete.fetch_add(1, Ordering::Relaxed);
                sh.last_complete_ns.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
            }
            let held = hold(c, ROOM.to_string(), stop, |text| {
                sh.bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
                let entries = m.frame(text);
                if entries > 0 {
                    sh.events.fetch_add(1, Ordering::Relaxed);
                    sh.entries.fetch_add(entries, Ordering::Relaxed);
                }
                let now = m.complete();
                if now != was_complete {
                    if now {
                        sh.complete.fetch_add(1, Ordering::Relaxed);
                        sh.last_complete_ns.fetch_max(start.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    } else {
                        sh.complete.fetch_sub(1, Ordering::Relaxed);
                    }
                    was_complete = now;
                }
            })
            .await;
            let mut paged = None;
            match held {
                // Some members page the whole list at the end (all with --quick).
                Ok(mut c) if m.large && (ctx2.args.quick || i % (n / 20).max(1) == 0) => {
                    let p = c.walk_members(ROOM, n).await;
                    if let Ok(b) = &p {
                        sh.page_bytes.fetch_add(*b, Ordering::Relaxed);
                    }
                    paged = Some(p.map_err(|e| format!("{e:#}")));
                }
                Ok(_) => {}
                Err(e) => {
                    sh.counts.broken.fetch_add(1, Ordering::Relaxed);
                    sh.counts.error(&e);
                }
            }
            if m.large {
                sh.large.fetch_add(1, Ordering::Relaxed);
            }
            Some((lat, m, paged))
        }));
    }
    let deadline = ctx.deadline();
    let all_in = wait_until(deadline, || {
        sh.counts.joined.load(Ordering::Relaxed) + sh.counts.failed.load(Ordering::Relaxed) >= n
    })
    .await;
    pb.finish();
    let login_secs = Duration::from_nanos(last_login_ns.load(Ordering::Relaxed)).as_secs_f64();
    // Then until every list is complete, or nothing moved for a while (a lost event never comes).
    let spin = ctx.spinner("lists");
    let stall = Duration::from_secs(if ctx.args.quick { 5 } else { 20 });
    let (mut seen, mut moved) = ((0, 0), Instant::now());
    let all_complete = wait_until(deadline, || {
        let now = (sh.complete.load(Ordering::Relaxed), sh.entries.load(Ordering::Relaxed));
        spin.set_message(format!("{} of {n} members have every other user", now.0));
        if now != seen {
            (seen, moved) = (now, Instant::now());
        }
        now.0 >= n || moved.elapsed() > stall
    })
    .await
        && sh.complete.load(Ordering::Relaxed) >= n;
    let cpu1 = target.cpu();
    let rss = target.rss();
    spin.finish_and_clear();
    let _ = stop_tx.send(true);
    let mut lats = Vec::with_capacity(n);
    let (mut exact, mut wrong, mut first_wrong) = (0usize, 0usize, None);
    let (mut pages_ok, mut pages_wrong, mut first_page_wrong) = (0usize, 0usize, None);
    for t in tasks {
        let Ok(Some((lat, m, paged))) = t.await else { continue };
        match paged {
            Some(Ok(_)) => pages_ok += 1,
            Some(Err(e)) => {
                pages_wrong += 1;
                first_page_wrong.get_or_insert(format!("u{}: {e}", m.me));
            }
            None => {}
        }
        lats.push(lat.as_micros() as u64);
        if m.complete() && m.errors.is_empty() {
            exact += 1;
        } else {
            wrong += 1;
            if first_wrong.is_none() {
                first_wrong = Some(format!(
                    "u{}: {} of {} others listed, count told {}; {:?}",
                    m.me,
                    m.count,
                    n - 1,
                    m.told,
                    m.errors
                ));
            }
        }
    }
    lats.sort_unstable();
    let joined = sh.counts.joined.load(Ordering::Relaxed);
    let storm_secs = Duration::from_nanos(sh.last_complete_ns.load(Ordering::Relaxed)).as_secs_f64();
    let (events, entries, bytes) =
        (sh.events.load(Ordering::Relaxed), sh.entries.load(Ordering::Relaxed), sh.bytes.load(Ordering::Relaxed));
    rep.metric("sessions logged in", joined as f64, "");
    rep.metric("time to all logged in", login_secs, "s");
    rep.metric("logins/s", if login_secs > 0.0 { joined as f64 / login_secs } else { 0.0 }, "1/s");
    rep.metric("login latency p50", percentile(&lats, 50.0) as f64 / 1000.0, "ms");
    rep.metric("login latency p99", percentile(&lats, 99.0) as f64 / 1000.0, "ms");
    rep.metric("time until every user list complete", storm_secs, "s");
    rep.metric("user lists exact", exact as f64, "");
    rep.metric("user lists wrong", wrong as f64, "");
    rep.metric("users events delivered", events as f64, "");
    rep.metric("user entries delivered", entries as f64, "");
    rep.metric("user entries per event", if events > 0 { entries as f64 / events as f64 } else { 0.0 }, "");
    rep.metric("bytes received", bytes as f64 / 1048576.0, "MiB");
    rep.metric("bytes received per member", bytes as f64 / joined.max(1) as f64 / 1024.0, "KiB");
    let large = sh.large.load(Ordering::Relaxed);
    rep.metric("members that saw the room large", large as f64, "");
    if large > 0 {
        rep.metric("members that paged the whole list", (pages_ok + pages_wrong) as f64, "");
        rep.metric("paged lists exact", pages_ok as f64, "");
        let paging = sh.page_bytes.load(Ordering::Relaxed) as f64 / (pages_ok.max(1) as f64) / 1024.0;
        rep.metric("bytes per whole-list walk", paging, "KiB");
    }
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        rep.metric("server CPU", (b - a).as_secs_f64(), "s");
    }
    if let Some(r) = rss {
        rep.metric("server RSS after", r as f64 / 1048576.0, "MiB");
    }
    let first_error =
        || sh.counts.first_error.lock().as_ref().map(|e| format!("; first error: {e}")).unwrap_or_default();
    if !all_in || joined != n {
        rep.problem(format!("{joined} of {n} sessions logged in{}", first_error()));
    }
    if !all_complete {
        rep.problem(format!(
            "only {} of {n} members ever listed every other user",
            sh.complete.load(Ordering::Relaxed)
        ));
    }
    if wrong > 0 {
        rep.problem(format!("{wrong} user lists wrong, first: {}", first_wrong.unwrap_or_default()));
    }
    if pages_wrong > 0 {
        rep.problem(format!("{pages_wrong} paged lists wrong, first: {}", first_page_wrong.unwrap_or_default()));
    }
    let broken = sh.counts.broken.load(Ordering::Relaxed);
    if broken > 0 {
        rep.problem(format!("{broken} connections broke while held{}", first_error()));
    }
    Ok(rep)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_list_is_exact_only_with_every_other_user_once() {
        let mut m = Member::new(1, 4);
        let ok = parse(r#"{"t":"ok","id":1,"users":[{"id":"u0","name":""}],"seq":{"room":0,"users":2}}"#).unwrap();
        m.login(&ok);
        assert!(!m.complete());
        let add = r#"{"t":"event","room":"w7","ch":"users","seq":3,"kind":"user_add","users":[{"id":"u2","name":""},{"id":"u3","name":""}]}"#;
        assert_eq!(m.frame(add), 2);
        assert!(m.complete() && m.errors.is_empty());
        // The same event again: a repeated seq and two users already listed.
        m.frame(add);
        assert!(!m.errors.is_empty());
        let mut d = Member::new(0, 3);
        d.frame(
            r#"{"t":"event","room":"w7","ch":"users","seq":1,"kind":"user_delete","users":[{"id":"u2","name":""}]}"#,
        );
        assert_eq!(d.errors.len(), 1, "a delete of a user never listed");
        d.frame(r#"{"t":"event","room":"w7","ch":"users","seq":2,"kind":"user_add","users":[{"id":"x9","name":""}]}"#);
        assert_eq!(d.errors.len(), 2, "an id that is not the generator's");
    }

    #[test]
    fn a_large_room_is_complete_when_its_count_is() {
        let mut m = Member::new(1, 4);
        let ok = parse(
            r#"{"t":"ok","id":1,"users":[{"id":"u0","name":""}],"users_next":"","online":2,"seq":{"room":0,"users":2}}"#,
        )
        .unwrap();
        m.login(&ok);
        assert!(m.large && !m.complete());
        // A batch with its own arrival and u0 again (listed by the page): neither is wrong.
        let batch = r#"{"t":"event","room":"w7","ch":"users","seq":3,"kind":"user_update","added":[{"id":"u0","name":""},{"id":"u1","name":""},{"id":"u2","name":""}],"deleted":[],"count":3}"#;
        assert_eq!(m.frame(batch), 3);
        assert!(!m.complete(), "the count is 3 of 4");
        m.frame(r#"{"t":"event","room":"w7","kind":"online","count":4}"#);
        assert!(m.complete() && m.errors.is_empty(), "{:?}", m.errors);
        m.frame(r#"{"t":"event","room":"w7","ch":"users","seq":5,"kind":"user_update","added":[],"deleted":[],"count":4,"list_changed":true}"#);
        assert_eq!(m.errors.len(), 1, "a gap in the users channel is still one: {:?}", m.errors);
    }
}
