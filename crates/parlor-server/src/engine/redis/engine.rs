//! [`Engine`] for [`RedisEngine`]: each operation is one script run, and what it produced is
//! applied on this node in order (see the module docs of [`super`] and [`super::fanout`]).

use std::collections::HashMap;

use parlor_protocol::Ack;
use serde::Deserialize;

use super::*;

#[derive(Debug, Deserialize)]
struct ResumedPayload {
    key: SessionKey,
    user: User,
    claims: Claims,
    last_request: u64,
    resume_token: String,
}

impl RedisEngine {
    /// Apply a request's items with its rooms' cursors held: events in order, messages to
    /// sessions, then the answer, then the rooms entered.
    async fn apply_request(&self, app: u32, key: SessionKey, held: &mut [Held], items: Vec<Item>, answer: Frame) {
        let mut joins = Vec::new();
        for item in items {
            match item {
                Item::Ev(room, msg) => match held.iter_mut().find(|(r, _)| r.room == room) {
                    Some((r, cursor)) => self.fanout.apply_or_queue(r, cursor, msg).await,
                    None => self.fanout.incoming(app, &room, msg),
                },
                Item::Ctl(ctl) => self.subs.apply_ctl(&ctl),
                Item::Join(j) => joins.push(j),
                Item::Send(_) => {}
            }
        }
        self.fanout.deliver.to_session(key, answer);
        self.join_all(held, app, joins).await;
    }

    /// Send every session's batched last frame to Redis.
    async fn flush_touches(&self, now: Instant) {
        let batches: Vec<(u32, HashMap<SessionKey, u64>)> =
            std::mem::take(&mut *self.touches.lock()).into_iter().collect();
        for (app, batch) in batches {
            let args: Vec<String> = batch.iter().flat_map(|(k, lf)| [k.to_string(), lf.to_string()]).collect();
            if self.run(app, now, "touch", &args).await.is_err() {
                // Keep them for the next tick (newer frames win).
                let mut t = self.touches.lock();
                let app_t = t.entry(app).or_default();
                for (k, lf) in batch {
                    app_t.entry(k).and_modify(|v| *v = (*v).max(lf)).or_insert(lf);
                }
            }
        }
    }

    /// Redis restarted empty (or was flushed): every session and room of this node is gone
    /// there. Close this node's connections with 4010: their clients resume, are told 1002057,
    /// and log in again with a fresh session (new epochs, snapshots by diff).
    pub(super) async fn check_boot(&self) {
        let mut conn = self.conn.clone();
        let candidate = format!("{:032x}", rand::random::<u128>());
        let set: redis::RedisResult<Option<String>> =
            redis::cmd("SET").arg("parlor:boot").arg(&candidate).arg("NX").arg("GET").query_async(&mut conn).await;
        let Ok(found) = set else {
            return;
        };
        let current = found.unwrap_or(candidate);
        let previous = self.boot.lock().replace(current.clone());
        if previous.is_some_and(|p| p != current) {
            tracing::warn!("Redis lost its data: every connection of this node resumes or logs in again");
            metrics::counter!("parlor_redis_data_lost_total").increment(1);
            for app in self.config.apps.keys() {
                self.fanout.deliver.drop_connections(*app);
            }
        }
    }

    /// The `online` count of each room this node has sessions in, to them, only when it changed:
    /// every `online_interval` in a room that is not large, every `presence_interval` in a large
    /// one (§9.10). Each node counts for its own sessions; the counts it needs at a tick are read
    /// in one pipelined call per app.
    async fn online_counts(&self, now: Instant) {
        let mut due: HashMap<u32, Vec<(Arc<fanout::RoomSeq>, bool)>> = HashMap::new();
        for r in self.fanout.all() {
            let large_on = self.config.full_presence_up_to(r.app) > 0;
            let mut o = r.online.lock();
            let small = match o.small {
                None => {
                    o.small = Some(now + self.config.online_interval);
                    false
                }
                Some(at) if now >= at => {
                    o.small = Some(now + self.config.online_interval);
                    true
                }
                Some(_) => false,
            };
            let large = large_on && o.large.is_none_or(|at| now >= at);
            if large {
                o.large = Some(now + self.config.presence_interval);
            }
            if small || large {
                due.entry(r.app).or_default().push((r.clone(), small));
            }
        }
        for (app, rooms) in due {
            let mut pipe = redis::pipe();
            for (r, _) in &rooms {
                pipe.cmd("HLEN").arg(format!("parlor:{{{app}}}:r:{}:mem", r.room));
            }
            let Ok(counts) = pipe.query_async::<Vec<u32>>(&mut self.conn.clone()).await else {
                continue;
            };
            for ((r, small), count) in rooms.into_iter().zip(counts) {
                // A room that is not large (and was not at the last look) is told only at its
                // own cadence.
                let large = self.config.is_large(app, count as usize);
                let mut o = r.online.lock();
                if !(small || large || o.was_large) {
                    continue;
                }
                o.small = Some(now + self.config.online_interval);
                o.was_large = large;
                if std::mem::replace(&mut o.sent, count) != count {
                    drop(o);
                    let frame = Frame::event(&r.room, None, None, parlor_protocol::EventBody::Online { count });
                    self.fanout.deliver.room_event(r.app, &r.room, None, 0, &frame, None);
                }
            }
        }
    }

    /// The backstop of gap filling: a room whose last event pub/sub never brought, and rooms
    /// whose queue waits on a gap that could not be read.
    async fn check_cursors(&self) {
        self.fanout.retry_waiting();
        for r in self.fanout.all() {
            let got = super::fanout::read_meta(&mut self.conn.clone(), r.app, &r.room).await;
            let Ok((Some(epoch), Some(rseq), Some(useq))) = got else {
                continue;
            };
            let Ok(mut cursor) = r.cursor.clone().try_lock_owned() else {
                continue;
            };
            if cursor.epoch == epoch && (cursor.last[0] < rseq || cursor.last[1] < useq) {
                self.fanout.fill(&r, &mut cursor, 0, rseq).await;
                self.fanout.fill(&r, &mut cursor, 1, useq).await;
            }
        }
    }
}

impl RedisEngine {
    /// The queue in front of Redis.
    pub fn gate(&self) -> &Arc<gate::Gate> {
        self.conn.gate()
    }

    /// What `/healthz` shows: Redis reachable, the nodes alive.
    pub async fn health(&self, now: Instant) -> NodeHealth {
        node::health(&self.conn, self.clock.wall_ms(now)).await
    }
}

impl Engine for RedisEngine {
    async fn open(&self, n: NewSession, conn: ConnId, now: Instant) -> Result<Opened, Unavailable> {
        let mut c = self.conn.clone();
        let key: SessionKey =
            redis::cmd("INCR").arg("parlor:next_session").query_async(&mut c).await.map_err(|_| Unavailable)?;
        let public_id = format!("{}.{:032x}", n.app, rand::random::<u128>());
        let resume_token = format!("{:032x}", rand::random::<u128>());
        let user = serde_json::to_string(&n.user).unwrap_or_default();
        let claims = serde_json::to_string(&n.claims).unwrap_or_default();
        let args = [
            key.to_string(),
            public_id.clone(),
            resume_token.clone(),
            user,
            n.user.id.clone(),
            claims,
            conn.to_string(),
        ];
        let heard = self.subs.up();
        self.run_retrying(n.app, now, "open", &args).await?;
        tracing::info!(session = %public_id, app = n.app, user = %n.user.id, "hello");
        self.fanout.deliver.bind(key, conn);
        self.retell.bound(n.app, key, heard, self.subs.up());
        Ok(Opened { key, public_id, resume_token })
    }

    async fn resume(
        &self,
        session: &str,
        resume_token: &str,
        ack: &Ack,
        conn: ConnId,
        now: Instant,
    ) -> Result<Result<Resumed, ResumeRefused>, Unavailable> {
        let Some(app) = app_of(session) else {
            return Ok(Err(ResumeRefused("unknown or expired session")));
        };
        let ack_json = serde_json::to_string(ack).unwrap_or_else(|_| "{}".into());
        let new_token = format!("{:032x}", rand::random::<u128>());
        let args = [session.to_string(), resume_token.to_string(), ack_json, conn.to_string(), new_token];
        // A call that timed out may have run: the same attempt runs again, and the script, seeing
        // the token it just replaced, answers it as the retry it is (§9.3).
        let heard = self.subs.up();
        let out = self.run_retrying(app, now, "resume", &args).await?;
        if out.status != "resumed" {
            let why =
                if out.payload == "wrong resume token" { "wrong resume token" } else { "unknown or expired session" };
            return Ok(Err(ResumeRefused(why)));
        }
        let Ok(p) = serde_json::from_str::<ResumedPayload>(&out.payload) else {
            return Ok(Err(ResumeRefused("unknown or expired session")));
        };
        let (mut frames, mut joins) = (Vec::new(), Vec::new());
        for item in out.items() {
            match item {
                Item::Ctl(ctl) => self.subs.apply_ctl(&ctl),
                Item::Ev(room, ev) => self.fanout.incoming(app, &room, ev),
                Item::Join(j) => joins.push(j),
                Item::Send(f) => frames.push(f),
            }
        }
        // The rooms' cursors first: no live event reaches the new connection before the replay,
        // and every event after the script is handed again from the log (the hub drops the
        // ones the session has).
        let mut held = self.lock_rooms(app, joins.iter().map(|j| j.room.clone()).collect()).await;
        self.fanout.deliver.bind_with(p.key, conn, frames);
        // A room the session entered after this script ran (a request of the old connection,
        // answered there; sim seed 36006) is not in `resumed`: the client, which never got that
        // `ok`, would be sent the room's events first. Its membership here ends; the client's
        // retry of the request is recalled, and joins it again after its `ok`.
        for (a, room) in self.fanout.deliver.rooms_of(p.key) {
            if a == app && !joins.iter().any(|j| j.room == room) {
                self.fanout.deliver.left(app, &room, p.key, Joining::default());
            }
        }
        self.retell.bound(app, p.key, heard, self.subs.up());
        self.join_all(&mut held, app, joins).await;
        self.release(app, held).await;
        tracing::info!(session = %session, user = %p.user.id, "resume");
        Ok(Ok(Resumed {
            key: p.key,
            app,
            user: p.user,
            claims: p.claims,
            last_request: p.last_request,
            resume_token: p.resume_token,
        }))
    }

    async fn confirm(&self, key: SessionKey, app: u32, token: &str, _now: Instant) {
        // When Redis is away the used token stays valid a little longer; no resume can happen
        // meanwhile either.
        let session = format!("parlor:{{{app}}}:s:{key}");
        let mut conn = self.conn.clone();
        let confirmed: redis::RedisResult<i64> =
            self.confirm.key(&session).key(format!("{session}:told")).arg(token).invoke_async(&mut conn).await;
        if let Err(e) = confirmed {
            tracing::warn!(error = %e, "confirm failed: the used resume token stays valid a little longer");
        }
    }

    async fn touch(&self, key: SessionKey, app: u32, _ack: Option<&Ack>, now: Instant) {
        // Batched: sent to Redis every tick, not one call per ping. A kick the client no longer
        // acks is forgotten at the next resume (the script reports each kick once).
        self.touches.lock().entry(app).or_default().insert(key, self.clock.wall_ms(now));
    }

    async fn request<A>(&self, req: Req, op: Op, now: Instant, answer: A) -> Outcome
    where
        A: FnOnce(Reply) -> Frame + Send + 'static,
    {
        let (name, args, rooms) = op_args(&op);
        // A refusal of the rules comes back as "Refused": its code is the op's.
        let refused = match &op {
            Op::Refused { code, .. } => Some(*code),
            _ => None,
        };
        // Every request holds its rooms' cursors from before its script until its `ok` is
        // queued. (Taking a login's after its script, as a resume does, let logins to one room
        // run side by side — W8 at 20 000 on 6 nodes: 999 → 1 455 logins/s — but the Redis sim
        // found a joiner sent an event of its room before its login's `ok`, seed 12022, once
        // in 300 under load: not kept. docs/benchmarks.md, "Audience-scale rooms".)
        let mut held = self.lock_rooms(req.app, rooms).await;
        // A room entered is heard before the script runs: an event of another node right after
        // the login (the next member's `user_add`) comes by pub/sub, not a tick later by the
        // backstop (`check_cursors`).
        if let Op::Login { room, .. } | Op::Switch { to: room, .. } = &op {
            self.subs.subscribe(super::fanout::room_channel(req.app, room)).await;
        }
        let mut full = vec![req.key.to_string(), req.id.to_string(), name.to_string()];
        full.extend(args);
        // A call that timed out may still have run: the retry (the same id) is then recalled,
        // and its answer is the real one, in order. Only a Redis away for longer is 1000004.
        let result = self.run_retrying(req.app, now, "request", &full).await;
        // Until the client's retry is answered, the session is sent its own events in these
        // rooms: if the request did run after all, its event keeps the session's seqs
        // contiguous (a client counts its own events without reporting them, §9.3).
        let uncertain = result.is_err();
        if uncertain {
            for (r, _) in &held {
                self.fanout.deliver.echo_own(req.key, req.app, &r.room, true);
            }
        }
        let (mut reply, mut items, mut outcome) = match result {
            Err(Unavailable) => (Reply::Unavailable, Vec::new(), Outcome::Unavailable),
            Ok(out) => match out.status.as_str() {
                "done" => {
                    let p = serde_json::from_str::<Payload>(&out.payload).unwrap_or_default();
                    (Reply::Fresh(Ok(p.done())), out.items(), Outcome::Applied)
                }
                "refusal" => {
                    let r = match (out.payload.as_str(), refused) {
                        ("Refused", Some(code)) => Refusal::Login(code),
                        (name, _) => refusal_of(name),
                    };
                    (Reply::Fresh(Err(r)), out.items(), Outcome::Answered)
                }
                "repeat" => (recalled(&out.payload), out.items(), Outcome::Answered),
                _ => (Reply::Forgotten, out.items(), Outcome::Answered),
            },
        };
        if !uncertain {
            // Answered: first hand over everything before this request's own events (what an
            // earlier, uncertain request of the session caused reaches it, echoed), then stop
            // echoing, so that its own new events are not sent to it.
            let mut filled = true;
            for item in &items {
                if let Item::Ev(room, Msg::Event(ev)) = item {
                    if let Some((r, cursor)) = held.iter_mut().find(|(r, _)| &r.room == room) {
                        filled &= self.fanout.fill(r, cursor, ev.ch, ev.seq.saturating_sub(1)).await;
                    }
                }
            }
            // A recalled answer carries no events: they were published when it first ran (its
            // answer lost), maybe after events this node has not delivered yet (its subscriber
            // on the same stalled path). Those go first, or the client, raising its seq to the
            // answer's, takes them for duplicates (parlor sim --engine redis, seed 4205).
            if let (Reply::Repeat(Recalled::Done { seq, .. }), [(r, cursor)]) = (&reply, held.as_mut_slice()) {
                for (ch, at) in [(0, seq.room), (1, seq.users)] {
                    if let Some(at) = at {
                        filled &= self.fanout.fill(r, cursor, ch, at.saturating_sub(1)).await;
                    }
                }
            }
            // When the events before its own could not be read, an `ok` now would overtake
            // them: answered as if the call had failed, the client's retry is recalled in order,
            // and meanwhile it is sent its own events (echo), as above.
            for (r, _) in &held {
                self.fanout.deliver.echo_own(req.key, req.app, &r.room, !filled);
            }
            if !filled {
                (reply, outcome) = (Reply::Unavailable, Outcome::Unavailable);
                // Nor is a login answered 1000004 a membership of this node yet: the member
                // would be sent its room's events before the `ok` of the client's retry (sim
                // seed 35112). That retry is recalled, and its `at` item joins it then.
                items.retain(|i| !matches!(i, Item::Join(_)));
            }
        }
        self.apply_request(req.app, req.key, &mut held, items, answer(reply)).await;
        self.release(req.app, held).await;
        outcome
    }

    async fn bye(&self, key: SessionKey, app: u32, now: Instant) {
        self.run_loose(app, now, "bye", &[key.to_string()]).await;
    }

    async fn tick(&self, now: Instant) {
        self.conn.gate().report();
        self.watch_failover().await;
        self.flush_touches(now).await;
        for app in self.config.apps.keys().copied().collect::<Vec<_>>() {
            match self.run(app, now, "reap", &[]).await {
                Ok(out) => {
                    let mut counts = out.payload.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
                    crate::telemetry::offline(counts.next().unwrap_or(0), counts.next().unwrap_or(0));
                    self.apply_loose(app, out.items()).await;
                }
                // Its token-expiry kicks may have run: told again by `retell_kicks` below.
                Err(_) => self.retell.answer_lost(),
            }
        }
        self.check_boot().await;
        self.check_cursors().await;
        self.retell_kicks(now).await;
        self.online_counts(now).await;
        self.subs.unsubscribe_unused().await;
        node::beat(&self.conn, &self.config.node_id, self.clock.wall_ms(now)).await;
    }

    async fn stats(&self) -> Result<Stats, Unavailable> {
        let mut total = Stats::default();
        for app in self.config.apps.keys().copied().collect::<Vec<_>>() {
            let s = super::admin::app_stats(self, app).await?;
            total.sessions += s.sessions;
            total.rooms += s.rooms;
            total.streams += s.streams;
        }
        Ok(total)
    }

    async fn rooms(&self, app: u32) -> Result<Vec<RoomInfo>, Unavailable> {
        let out = self.run_retrying(app, Instant::now(), "rooms", &[]).await?;
        Ok(out.raw.iter().filter_map(|raw| serde_json::from_str(raw).ok()).collect())
    }

    async fn room(&self, app: u32, room: &str) -> Result<Option<RoomInfo>, Unavailable> {
        let out = self.run_retrying(app, Instant::now(), "room", &[room.to_string()]).await?;
        if out.status != "ok" {
            return Ok(None);
        }
        serde_json::from_str(&out.payload).map(Some).map_err(|_| Unavailable)
    }

    async fn members(
        &self,
        app: u32,
        key: Option<SessionKey>,
        room: &str,
        cursor: &str,
        limit: usize,
    ) -> Result<Option<MembersPage>, Unavailable> {
        let key = key.map(|k| k.to_string()).unwrap_or_default();
        let args = [key, room.to_string(), cursor.to_string(), limit.to_string()];
        // A read: run again while Redis is healthy but slow (only a failing Redis is 1000004).
        let out = self.run_retrying(app, Instant::now(), "members", &args).await?;
        if out.status != "ok" {
            return Ok(None);
        }
        let mut raw = out.raw.iter();
        let count = raw.next().and_then(|c| c.parse().ok()).ok_or(Unavailable)?;
        let users =
            raw.map(|u| serde_json::from_str::<User>(u)).collect::<Result<Vec<_>, _>>().map_err(|_| Unavailable)?;
        Ok(Some(MembersPage { users, count, next: out.payload }))
    }

    async fn kick(&self, app: u32, room: &str, user: &str, reason: &str, now: Instant) -> Result<bool, Unavailable> {
        let args = [room.to_string(), user.to_string(), reason.to_string()];
        Ok(self.admin_op(app, now, "admin_kick", &args).await?.is_ok())
    }

    async fn close_room(&self, app: u32, room: &str, reason: &str, now: Instant) -> Result<bool, Unavailable> {
        let args = [room.to_string(), reason.to_string()];
        Ok(self.admin_op(app, now, "admin_close", &args).await?.is_ok())
    }
}
