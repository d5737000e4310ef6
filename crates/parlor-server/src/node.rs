//! A node: one server process — its settings, its clock, its [`Hub`] (the connections it
//! serves) and the [`Engine`] it shares with the other nodes of its deployment.
//!
//! This is the session layer of the server: `hello` and `resume`, liveness, and each request
//! of a session turned by the [`rules`](crate::rules) into an engine operation and its answer.
//! [`ws`](crate::ws) calls it for every frame; the admin API calls it too.

use std::sync::Arc;

use parlor_protocol::{token, validate, ClientFrame, ErrorCode, Hello, OkFrame, Pong, Resume, ServerFrame, Welcome};
use tokio::time::Instant;

use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::memory::MemoryEngine;
use crate::engine::redis::RedisEngine;
use crate::engine::{ConnId, Deliver, NewSession, Op, Outcome, Reply, Req, RoomInfo, SessionKey, Unavailable};
use crate::frame::Frame;
use crate::hub::Hub;
use crate::limits::Limits;
use crate::rules::{self, SessionCtx, Spend};
use crate::telemetry;
use crate::webhook;

pub use crate::engine::AnyEngine;

/// Counts for `/healthz`, metrics and the admin API.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Stats {
    /// Sessions, offline ones included.
    pub sessions: usize,
    /// Sessions with a connection on this node.
    pub connected: usize,
    /// Rooms.
    pub rooms: usize,
    /// Streams.
    pub streams: usize,
}

/// One server process.
#[derive(Debug)]
pub struct Node {
    /// Settings.
    pub config: ServerConfig,
    /// The clock.
    pub clock: Clock,
    /// This node's connections.
    pub hub: Arc<Hub>,
    /// The shared state.
    pub engine: AnyEngine,
    /// The door's counters (connections per IP, upgrade rate, sessions per app).
    pub limits: Arc<Limits>,
    /// What this node's webhook delivery did.
    pub webhooks: Arc<webhook::Counters>,
    /// Ticks so far (the gauges are set every 10th).
    ticks: std::sync::atomic::AtomicU64,
}

/// Which requests the node measures: logins (count by outcome, latency) and room messages
/// (fan-out latency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Measured {
    Login,
    Message,
    Other,
}

impl Measured {
    fn of(frame: &ClientFrame) -> Measured {
        match frame {
            ClientFrame::Login(_) | ClientFrame::Switch(_) => Measured::Login,
            ClientFrame::Broadcast(_) | ClientFrame::Barrage(_) | ClientFrame::Command(_) => Measured::Message,
            _ => Measured::Other,
        }
    }

    /// The engine answered the request (read at `read`) with `reply`.
    fn answered(self, reply: &Reply, read: Instant) {
        if let Reply::Fresh(Err(crate::engine::Refusal::RoomMessageRate)) = reply {
            telemetry::rate_limited(ErrorCode::MessagesTooFrequent.code());
        }
        if self != Measured::Login {
            return;
        }
        let outcome = match reply {
            Reply::Fresh(Ok(_)) | Reply::Repeat(_) => "ok",
            Reply::Fresh(Err(_)) | Reply::Forgotten => "refused",
            Reply::Unavailable => "unavailable",
        };
        telemetry::login(outcome, Instant::now().saturating_duration_since(read));
    }
}

type Refuse = (ErrorCode, String);

fn unavailable() -> Refuse {
    metrics::counter!("parlor_unavailable_total").increment(1);
    (ErrorCode::ServiceUnavailable, ErrorCode::ServiceUnavailable.message().to_string())
}

impl Node {
    /// A node on the memory engine.
    pub fn memory(config: ServerConfig) -> Node {
        Node::memory_with_clock(config, Clock::new())
    }

    /// A node on the memory engine, on `clock`.
    pub fn memory_with_clock(config: ServerConfig, clock: Clock) -> Node {
        let hub = Arc::new(Hub::new());
        let webhooks = Arc::new(webhook::Counters::default());
        let hooks = webhook::queue::start(&config, clock, webhooks.clone());
        let engine = AnyEngine::Memory(MemoryEngine::new(config.clone(), clock, hub.clone()).with_hooks(hooks));
        let limits = Limits::new(&config);
        Node { config, clock, hub, engine, limits, webhooks, ticks: Default::default() }
    }

    /// A node on the engine `config` asks for: Redis when `config.redis` names a server, else
    /// memory.
    pub async fn start(config: ServerConfig) -> Result<Node, String> {
        if config.redis.is_empty() {
            return Ok(Node::memory(config));
        }
        Node::redis_with_clock(config, Clock::new()).await
    }

    /// A node on the Redis engine (`config.redis`), on `clock` (the seeded simulation gives its
    /// nodes one wall clock).
    pub async fn redis_with_clock(config: ServerConfig, clock: Clock) -> Result<Node, String> {
        let hub = Arc::new(Hub::new());
        let webhooks = Arc::new(webhook::Counters::default());
        let engine = RedisEngine::connect(config.clone(), clock, hub.clone(), webhooks.clone())
            .await
            .map_err(|e| format!("cannot reach Redis at {}: {e}", config.redis.join(",")))?;
        let limits = Limits::new(&config);
        limits.watch(engine.gate().clone());
        Ok(Node { config, clock, hub, engine: AnyEngine::Redis(engine), limits, webhooks, ticks: Default::default() })
    }

    /// What `/healthz` says: this node, its engine, and (with Redis) the nodes it sees.
    pub async fn health(&self) -> serde_json::Value {
        // Counts that could not be asked are null, not 0.
        let stats = match self.stats().await {
            Ok(s) => serde_json::json!(s),
            Err(Unavailable) => serde_json::json!({
                "sessions": null, "connected": self.hub.connected(), "rooms": null, "streams": null
            }),
        };
        let mut h = serde_json::json!({ "status": "ok", "node": self.config.node_id, "stats": stats });
        h["engine"] = self.engine.kind().into();
        if let Some(seen) = self.engine.health(Instant::now()).await {
            if !seen.redis {
                h["status"] = "degraded".into();
            }
            h["redis"] = serde_json::json!({ "reachable": seen.redis, "nodes": seen.nodes });
        }
        h
    }

    /// Start a session from `hello` on connection `conn`; `welcome` is queued on it.
    pub async fn hello(&self, h: Hello, conn: ConnId, now: Instant) -> Result<(SessionKey, SessionCtx), Refuse> {
        if h.v != parlor_protocol::PROTOCOL_VERSION {
            return Err((ErrorCode::InvalidField, format!("unsupported protocol version {}", h.v)));
        }
        let Some(secret) = self.config.apps.get(&h.app_id) else {
            return Err((ErrorCode::AuthFailed, format!("unknown app {}", h.app_id)));
        };
        let refuse = |c: ErrorCode| (c, c.message().to_string());
        validate::user_id(&h.user.id).map_err(refuse)?;
        // The server's own sender in the events it causes (the admin API): no session is it.
        if h.user.id == crate::engine::admin::SERVER_USER_ID {
            return Err((ErrorCode::UserIdInvalid, "the user id $server is reserved for the server".into()));
        }
        validate::user_name(&h.user.name).map_err(refuse)?;
        let claims = token::verify(secret.as_bytes(), &h.token, h.app_id, &h.user.id, None, self.clock.wall_s(now))
            .map_err(refuse)?;
        let ctx = SessionCtx::new(h.app_id, h.user.id.clone(), claims.clone(), 0);
        let new = NewSession { app: h.app_id, user: h.user, claims };
        let opened = self.engine.open(new, conn, now).await.map_err(|_| unavailable())?;
        let welcome = ServerFrame::Welcome(Welcome {
            session: opened.public_id,
            resume_token: opened.resume_token,
            heartbeat_ms: self.config.heartbeat.as_millis() as u64,
            session_timeout_ms: self.config.session_timeout.as_millis() as u64,
            retention_ms: self.config.retention.as_millis() as u64,
            server_time_ms: self.clock.wall_ms(now),
        });
        self.hub.to_session(opened.key, Frame::encode(&welcome));
        Ok((opened.key, ctx))
    }

    /// Resume a session on connection `conn` (§6): `resumed`, the replays and snapshots, the
    /// missed direct events and `resume_done` are queued on it.
    pub async fn resume(&self, r: Resume, conn: ConnId, now: Instant) -> Result<(SessionKey, SessionCtx), Refuse> {
        let resumed = self
            .engine
            .resume(&r.session, &r.resume_token, &r.ack, conn, now)
            .await
            .map_err(|_| unavailable())?
            .map_err(|refused| {
                telemetry::resume_refused();
                (ErrorCode::ResumeFailed, refused.0.to_string())
            })?;
        let mut ctx = SessionCtx::new(resumed.app, resumed.user.id, resumed.claims, resumed.last_request);
        ctx.unconfirmed = Some(resumed.resume_token);
        Ok((resumed.key, ctx))
    }

    /// The first frame after `resumed` shows that the client holds the new token: the one the
    /// resume used is void from now on (§9.3). Before anything else the frame does, so that a
    /// resume with the old token after the frame's answer is refused.
    async fn confirm(&self, key: SessionKey, ctx: &mut SessionCtx, now: Instant) {
        if let Some(token) = ctx.unconfirmed.take() {
            self.engine.confirm(key, ctx.app, &token, now).await;
        }
    }

    /// A `ping` of an established session: life, its acks, and the `pong`. Apart from
    /// [`Node::frame`] (which handles it too) so that a connection task waiting for its next
    /// frame holds only this small future inline, and the larger ones boxed.
    pub async fn ping(&self, key: SessionKey, ctx: &mut SessionCtx, p: parlor_protocol::Ping, now: Instant) {
        if ctx.unconfirmed.is_some() {
            Box::pin(self.confirm(key, ctx, now)).await;
        }
        self.engine.touch(key, ctx.app, p.ack.as_ref(), now).await;
        let pong = ServerFrame::Pong(Pong { server_time_ms: self.clock.wall_ms(now) });
        self.hub.to_session(key, Frame::encode(&pong));
    }

    /// Handle one frame of an established session.
    pub async fn frame(&self, key: SessionKey, ctx: &mut SessionCtx, frame: ClientFrame, now: Instant) {
        self.confirm(key, ctx, now).await;
        match frame {
            ClientFrame::Ping(p) => self.ping(key, ctx, p, now).await,
            ClientFrame::Bye(_) => self.engine.bye(key, ctx.app, now).await,
            ClientFrame::Hello(_) | ClientFrame::Resume(_) => {
                self.engine.touch(key, ctx.app, None, now).await;
                let error = ServerFrame::error_with(None, ErrorCode::InvalidField, "the session has already started");
                self.hub.to_session(key, Frame::encode(&error));
            }
            ClientFrame::Members(m) => self.members(key, ctx, m, now).await,
            request => {
                let Some(id) = request.request_id() else {
                    return;
                };
                // The request counts as life: the engine's `request` notes it.
                let (fresh, before) = (id > ctx.last_request, ctx.last_request);
                ctx.last_request = ctx.last_request.max(id);
                let (now_s, time_ms) = (self.clock.wall_s(now), self.clock.wall_ms(now));
                let subject = rules::subject(&request);
                let kind = Measured::of(&request);
                let op = rules::op(ctx, request, fresh, &self.config, now, now_s, time_ms);
                let (spend, rules_refusal) = match &op {
                    Op::Refused { code, message } => {
                        if matches!(code, ErrorCode::RequestsTooFrequent | ErrorCode::MessagesTooFrequent) {
                            telemetry::rate_limited(code.code());
                        }
                        (Spend::Nothing, Some(message.clone()))
                    }
                    op => (Spend::of(op), None),
                };
                let answer = move |reply: Reply| {
                    kind.answered(&reply, now);
                    rules::answer_frame(id, subject, reply, rules_refusal.as_deref())
                };
                let run = async { self.engine.request(Req { key, app: ctx.app, id }, op, now, answer).await };
                // A room message's fan-out is timed from this frame's read to its last local
                // recipient's write (`telemetry::FanoutClock`).
                let read = (kind == Measured::Message).then_some(now);
                match telemetry::with_read_at(read, run).await {
                    Outcome::Applied => rules::applied(ctx, spend, now),
                    Outcome::Answered => {}
                    // Nothing is known to have happened: the client's retry with the same id is
                    // fresh here, and the engine executes or recalls it.
                    Outcome::Unavailable => {
                        metrics::counter!("parlor_unavailable_total").increment(1);
                        ctx.last_request = before;
                    }
                }
            }
        }
    }

    /// `members` (protocol §9.9): a read, not an operation. It changes nothing, so it is not
    /// remembered for repeats: a repeat (after a resume) is simply read again; it does not
    /// advance the session's last request id. It counts against the request rate.
    async fn members(&self, key: SessionKey, ctx: &mut SessionCtx, m: parlor_protocol::Members, now: Instant) {
        self.engine.touch(key, ctx.app, None, now).await;
        let error = |code: ErrorCode, message: &str| ServerFrame::error_with(Some(m.id), code, message.to_string());
        let frame = if !ctx.requests.allow(now, self.config.request_rate) {
            error(ErrorCode::RequestsTooFrequent, "too many requests")
        } else if validate::room_id(&m.room).is_err() {
            error(ErrorCode::InvalidField, "invalid room id")
        } else if m.limit == 0 || m.limit > parlor_protocol::MAX_MEMBERS_PAGE {
            error(ErrorCode::InvalidField, "limit must be 1 to 500")
        } else {
            match self.engine.members(ctx.app, Some(key), &m.room, &m.cursor, m.limit as usize).await {
                Ok(Some(page)) => ServerFrame::Ok(OkFrame::members(m.id, m.room, page.users, page.count, page.next)),
                Ok(None) => error(ErrorCode::NotInRoom, "not in the room"),
                Err(Unavailable) => {
                    metrics::counter!("parlor_unavailable_total").increment(1);
                    error(ErrorCode::ServiceUnavailable, "service temporarily unavailable")
                }
            }
        };
        self.hub.to_session(key, Frame::encode(&frame));
    }

    /// Answer a frame that could not be decoded (it still counts as life).
    pub async fn bad_frame(
        &self,
        key: SessionKey,
        ctx: &mut SessionCtx,
        id: Option<u64>,
        code: ErrorCode,
        message: String,
        now: Instant,
    ) {
        self.confirm(key, ctx, now).await;
        self.engine.touch(key, ctx.app, None, now).await;
        self.hub.to_session(key, Frame::encode(&ServerFrame::error_with(id, code, message)));
    }

    /// Everything that happens with time. Called about every 500 ms; every 10th call also sets
    /// the gauges of what the engine holds (a round trip with Redis, so not every tick).
    pub async fn tick(&self, now: Instant) {
        self.engine.tick(now).await;
        let n = self.ticks.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if n.is_multiple_of(10) {
            // Unknown counts leave the gauges as they were rather than at 0.
            if let Ok(s) = self.stats().await {
                telemetry::holdings(s.sessions, s.connected, s.rooms, s.streams);
            }
        }
    }

    /// Counts of what the deployment holds and this node serves.
    pub async fn stats(&self) -> Result<Stats, Unavailable> {
        let s = self.engine.stats().await?;
        Ok(Stats { sessions: s.sessions, connected: self.hub.connected(), rooms: s.rooms, streams: s.streams })
    }

    /// The rooms of `app`.
    pub async fn admin_rooms(&self, app: u32) -> Result<Vec<RoomInfo>, Unavailable> {
        self.engine.rooms(app).await
    }

    /// One room of `app`: None when there is no such room.
    pub async fn admin_room(&self, app: u32, room: &str) -> Result<Option<RoomInfo>, Unavailable> {
        self.engine.room(app, room).await
    }

    /// Kick `user` out of `room` with 1002055 and `reason`. False when no such member.
    pub async fn admin_kick(
        &self,
        app: u32,
        room: &str,
        user: &str,
        reason: &str,
        now: Instant,
    ) -> Result<bool, Unavailable> {
        self.engine.kick(app, room, user, reason, now).await
    }

    /// Close `room`: everyone is kicked with 1002055 and `reason`. False when no such room.
    pub async fn admin_close_room(
        &self,
        app: u32,
        room: &str,
        reason: &str,
        now: Instant,
    ) -> Result<bool, Unavailable> {
        self.engine.close_room(app, room, reason, now).await
    }

    /// Drop every connection of `app` with 4010 (the sessions stay; clients resume). With
    /// Redis every node drops its own; the count is this node's. Unavailable (and nothing
    /// dropped here) when the other nodes could not be asked.
    pub async fn admin_drop_connections(&self, app: u32) -> Result<usize, Unavailable> {
        self.engine.drop_elsewhere(app).await?;
        Ok(self.hub.drop_connections(app))
    }
}
