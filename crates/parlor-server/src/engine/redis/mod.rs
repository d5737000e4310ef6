//! The Redis engine: several nodes share every session and room through one Redis.
//!
//! - Every mutation is one Lua script (`lua/`): it checks the rule, changes the state, takes the
//!   channel's next `seq`, appends the encoded event to the channel's log (a Redis Stream whose
//!   entry ids are the seqs, trimmed as §9.3 says) and publishes it. `seq` is never assigned in
//!   Rust. All of an app's keys share the hash tag `{app}`. What a script answers, and the
//!   items it asks the calling node to apply in order, are read in [`items`].
//! - Sessions live in Redis (with their remembered answers and `direct` log), so `resume` works
//!   on any node, and a request retried on another node after its node died is recalled, not
//!   executed twice: the exactly-once gate is inside the same script as the mutation.
//! - Live fan-out: each node subscribes to the rooms it has sessions in and delivers through
//!   [`fanout`], which fills `seq` gaps from the logs. Messages for a session on another node
//!   (a kick, a direct event, a close) go on that node's control channel.
//! - Liveness: each session's deadline (last frame + session timeout) is in a sorted set,
//!   refreshed in batches every tick; every node's reaper takes expired sessions out of their
//!   rooms, each exactly once (the check is inside the script).
//!
//! See `docs/architecture.md` and `docs/operations.md` (what lives in Redis, for how long, and
//! what happens when Redis goes away).

mod admin;
mod conn;
mod engine;
mod failover;
mod fanout;
#[cfg(test)]
mod fanout_tests;
pub mod gate;
mod hooks;
mod items;
mod node;
#[cfg(test)]
mod resume_tests;
mod retell;
mod sentinel;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use parlor_protocol::token::Claims;
use parlor_protocol::{ErrorCode, RoomState, Seqs, User};
use serde::Deserialize;
use tokio::time::Instant;

use self::fanout::{Cursor, Fanout, Msg, RoomSeq};
use self::items::{Item, Joined, Out};
pub use self::node::NodeHealth;
use crate::clock::Clock;
use crate::config::ServerConfig;
use crate::engine::{
    ConnId, Deliver, Done, Engine, Joining, MembersPage, NewSession, Op, Opened, Outcome, Recalled, Refusal, Reply,
    Req, ResumeRefused, Resumed, RoomInfo, SessionKey, Stats, Unavailable,
};
use crate::frame::Frame;

/// The script: the steps (lib), presence in large rooms (presence), resume and liveness
/// (sessions), the admin API's operations (admin), the operations (ops). Loaded as a function
/// library ([`Library`]).
const SOURCE: &str = concat!(
    include_str!("lua/lib.lua"),
    include_str!("lua/presence.lua"),
    include_str!("lua/sessions.lua"),
    include_str!("lua/admin.lua"),
    include_str!("lua/ops.lua")
);

/// The script as a Redis function library (Redis 7 or newer): loaded once per Redis with
/// `FUNCTION LOAD REPLACE` (every primary of a cluster; replicas get it by replication), then
/// every operation is an `FCALL`. Its name carries the source's digest, so nodes of two
/// versions (a rolling upgrade) each call their own; a Redis that lost it (a restart without
/// persistence, a failover that lost the load) is given it again at the first call that
/// finds it missing.
#[derive(Debug)]
struct Library {
    /// `parlor_<digest>`: the library's and its one function's name.
    name: String,
    /// What `FUNCTION LOAD` is given.
    code: String,
}

impl Library {
    fn new() -> Library {
        let digest = redis::Script::new(SOURCE).get_hash().to_string();
        let name = format!("parlor_{}", &digest[..16]);
        let code = format!("#!lua name={name}\n{SOURCE}\nredis.register_function('{name}', main)\n");
        Library { name, code }
    }

    /// Load it (again): idempotent, the same name always has the same code.
    async fn load(&self, conn: &mut gate::Gated) -> redis::RedisResult<()> {
        let _: String = redis::cmd("FUNCTION").arg("LOAD").arg("REPLACE").arg(&self.code).query_async(conn).await?;
        Ok(())
    }
}

/// Whether a call failed because Redis does not have the library (any more).
fn library_missing(e: &redis::RedisError) -> bool {
    e.to_string().contains("Function not found")
}

/// `confirm KEY TOKEN` (the session's hash and its `told`): the client holds TOKEN, its last
/// `resumed`'s, so the token that resume used is void from now on and the kicks it told are
/// forgotten (protocol §9.3). Constant time like `same_secret` in lib.lua.
const CONFIRM: &str = r"
local rt = redis.call('HGET', KEYS[1], 'rt')
local t = ARGV[1]
if not rt or #rt ~= #t then return 0 end
local d = 0
for i = 1, #t do d = bit.bor(d, bit.bxor(string.byte(rt, i), string.byte(t, i))) end
if d ~= 0 then return 0 end
redis.call('HDEL', KEYS[1], 'prt')
redis.call('DEL', KEYS[2])
return 1
";

/// How long a Redis call may take, from the moment it is sent (time in the node's own queue is
/// not counted: [`gate`]), before it counts as failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(1);

/// How long a retried operation is run again while Redis is healthy ([`RedisEngine::run_retrying`]).
const RETRY_FOR: Duration = Duration::from_secs(10);

/// The Redis engine of one node.
pub struct RedisEngine {
    config: ServerConfig,
    clock: Clock,
    conn: gate::Gated,
    script: Library,
    /// `confirm` on its own ([`CONFIRM`]): one per resume, so it does not pay for the whole
    /// script's chunk.
    confirm: redis::Script,
    settings: String,
    fanout: Arc<Fanout>,
    subs: Arc<node::Subscriptions>,
    /// Last frame (wall ms) of this node's sessions since the last flush, by app.
    touches: Mutex<HashMap<u32, HashMap<SessionKey, u64>>>,
    /// The id this node found in `parlor:boot`: when it changes, Redis lost its data.
    boot: Mutex<Option<String>>,
    /// The masters' replication ids: when one changes, a failover may have lost writes.
    failover: failover::Watch,
    /// Kicks to tell again after a subscriber gap ([`retell`]).
    retell: retell::Retell,
    /// This node's webhook counts.
    webhooks: Arc<crate::webhook::Counters>,
    /// The webhook delivery tasks (one per app with webhooks; see [`hooks`]).
    hook_tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for RedisEngine {
    fn drop(&mut self) {
        for t in &self.hook_tasks {
            t.abort();
        }
        self.subs.stop();
    }
}

impl std::fmt::Debug for RedisEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisEngine").field("node", &self.config.node_id).finish()
    }
}

fn refusal_of(name: &str) -> Refusal {
    match name {
        "NotInRoom" => Refusal::NotInRoom,
        "AlreadyInRoom" => Refusal::AlreadyInRoom,
        "TooManyRooms" => Refusal::TooManyRooms,
        "RoomFull" => Refusal::RoomFull,
        "StreamIdTaken" => Refusal::StreamIdTaken,
        "NoPublishPrivilege" => Refusal::NoPublishPrivilege,
        "NotPublishing" => Refusal::NotPublishing,
        "TooManyExtraKeys" => Refusal::TooManyExtraKeys,
        "RoomMessageRate" => Refusal::RoomMessageRate,
        other => match other.strip_prefix("Login:").and_then(|c| c.parse().ok()).and_then(ErrorCode::from_code) {
            Some(code) => Refusal::Login(code),
            None => {
                if other != "NoSession" {
                    tracing::error!(refusal = other, "unknown refusal from the script");
                }
                Refusal::NoSession
            }
        },
    }
}

/// The `ok` payload of an applied operation: {"state":…,"seq":…,"message_id":…}.
#[derive(Debug, Default, Deserialize)]
struct Payload {
    #[serde(default)]
    state: Option<RoomState>,
    #[serde(default)]
    seq: Seqs,
    #[serde(default)]
    message_id: Option<String>,
}

impl Payload {
    fn done(self) -> Done {
        Done { seq: self.seq, message_id: self.message_id, state: self.state, users_json: None }
    }
}

/// A remembered answer, as `request` stored it.
#[derive(Debug, Deserialize)]
struct Remembered {
    k: String,
    #[serde(default)]
    ok: Option<Payload>,
    #[serde(default)]
    r: Option<String>,
    #[serde(default)]
    code: Option<u32>,
    #[serde(default)]
    message: Option<String>,
}

fn recalled(raw: &str) -> Reply {
    let Ok(a) = serde_json::from_str::<Remembered>(raw) else {
        return Reply::Forgotten;
    };
    let code = |c: Option<u32>| c.and_then(ErrorCode::from_code).unwrap_or(ErrorCode::InvalidField);
    Reply::Repeat(match a.k.as_str() {
        "login" => Recalled::LoggedIn(match a.ok {
            Some(Payload { state: Some(state), seq, .. }) => Ok((state, seq)),
            _ => Err(code(a.code)),
        }),
        "done" => {
            let p = a.ok.unwrap_or_default();
            Recalled::Done { seq: p.seq, message_id: p.message_id }
        }
        "refused" => Recalled::Refused(code(a.code), a.message.unwrap_or_default()),
        _ => Recalled::Refusal(refusal_of(a.r.as_deref().unwrap_or(""))),
    })
}

/// The script arguments of an operation, and the rooms whose order it must keep.
fn op_args(op: &Op) -> (&'static str, Vec<String>, Vec<String>) {
    let cfg = |c: &parlor_protocol::RoomConfig| serde_json::to_string(c).unwrap_or_else(|_| "{}".into());
    let b = |v: bool| if v { "1".to_string() } else { "0".to_string() };
    match op {
        Op::Login { room, config, grant } => (
            "login",
            vec![room.clone(), cfg(config), grant.exp_s.to_string(), b(grant.may_publish)],
            vec![room.clone()],
        ),
        Op::Logout { room } => ("logout", vec![room.clone()], vec![room.clone()]),
        Op::Switch { from, to, login } => {
            let args = match login {
                Ok((config, grant)) => {
                    vec![from.clone(), to.clone(), cfg(config), grant.exp_s.to_string(), b(grant.may_publish)]
                }
                Err(code) => vec![from.clone(), to.clone(), String::new(), code.code().to_string()],
            };
            ("switch", args, vec![from.clone(), to.clone()])
        }
        Op::Publish { room, stream, extra } => {
            ("publish", vec![room.clone(), stream.clone(), extra.clone()], vec![room.clone()])
        }
        Op::Unpublish { room, stream } => ("unpublish", vec![room.clone(), stream.clone()], vec![room.clone()]),
        Op::StreamExtra { room, stream, extra } => {
            ("stream_extra", vec![room.clone(), stream.clone(), extra.clone()], vec![room.clone()])
        }
        Op::RoomExtra { room, key, value, time_ms } => {
            ("room_extra", vec![room.clone(), key.clone(), value.clone(), time_ms.to_string()], vec![room.clone()])
        }
        Op::Message { room, barrage, message, time_ms } => {
            let kind = if *barrage { "barrage" } else { "broadcast" };
            ("message", vec![room.clone(), kind.into(), message.clone(), time_ms.to_string()], vec![room.clone()])
        }
        Op::Command { room, to, command, time_ms } => {
            let to = serde_json::to_string(to).unwrap_or_else(|_| "[]".into());
            ("command", vec![room.clone(), to, command.clone(), time_ms.to_string()], vec![])
        }
        Op::Renew { room, grant, claims } => {
            let claims = serde_json::to_string(claims).unwrap_or_else(|_| "{}".into());
            let room = room.clone().unwrap_or_default();
            ("renew", vec![room, grant.exp_s.to_string(), b(grant.may_publish), claims], vec![])
        }
        Op::Refused { code, message } => ("refused", vec![code.code().to_string(), message.clone()], vec![]),
    }
}

/// The app of a public session id (`<app>.<random>`, so that a resume finds the app's keys).
fn app_of(public: &str) -> Option<u32> {
    public.split_once('.').and_then(|(a, _)| a.parse().ok())
}

impl RedisEngine {
    /// Connect to `config.redis[0]` and start this node's subscriber and webhook delivery
    /// (counted in `webhooks`).
    pub async fn connect(
        config: ServerConfig,
        clock: Clock,
        deliver: Arc<dyn Deliver>,
        webhooks: Arc<crate::webhook::Counters>,
    ) -> Result<Arc<RedisEngine>, redis::RedisError> {
        let (conn, client) = conn::Conn::connect(&config.redis, RESPONSE_TIMEOUT).await?;
        let conn = gate::Gated::new(conn, Arc::new(gate::Gate::default()));
        let endpoints = crate::webhook::deliver::endpoints(&config);
        let mut hook_apps: Vec<u32> = endpoints.keys().copied().collect();
        hook_apps.sort_unstable();
        let mut hook_tasks = Vec::new();
        match crate::webhook::deliver::Sender::new(&config.webhook, webhooks.clone()) {
            Ok(sender) => {
                for (app, ep) in endpoints {
                    let task = hooks::run(app, config.node_id.clone(), conn.clone(), sender.clone(), ep);
                    hook_tasks.push(tokio::spawn(task));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "webhook HTTP client: webhooks are off");
                hook_apps.clear();
            }
        }
        let settings = serde_json::json!({
            "log_len": config.log_len,
            "log_age_ms": config.log_age.as_millis() as u64,
            "max_rooms": config.max_rooms,
            "room_message_rate": config.room_message_rate,
            "timeout_ms": config.session_timeout.as_millis() as u64,
            "retention_ms": config.retention.as_millis() as u64,
            "warn_s": config.token_warning.as_secs(),
            "answers": config.answer_memory,
            "max_extra_keys": parlor_protocol::validate::MAX_ROOM_EXTRA_KEYS,
            "max_offline": config.max_offline_sessions,
            "hooks": hook_apps,
            "hook_queue": config.webhook.queue.max(1),
            // §9.10: the threshold of large rooms (the server's and each app's own) and the
            // presence interval.
            "fpu": config.full_presence_up_to,
            "fpu_apps": config
                .app_settings
                .iter()
                .filter_map(|(app, s)| Some((app.to_string(), s.full_presence_up_to?)))
                .collect::<HashMap<_, _>>(),
            "presence_ms": config.presence_interval.as_millis() as u64,
        })
        .to_string();
        let script = Library::new();
        if let Err(e) = script.load(&mut conn.clone()).await {
            if e.to_string().to_lowercase().contains("unknown command") {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Client,
                    "Redis has no FUNCTION command: Parlor needs Redis 7 or newer",
                    e.to_string(),
                )));
            }
            // Redis away for now: the first call that finds the library missing loads it.
            tracing::warn!(error = %e, "cannot load Parlor's function library yet");
        }
        let fanout = Arc::new(Fanout::new(deliver, conn.clone()));
        let subs = node::Subscriptions::start(client, config.node_id.clone(), fanout.clone());
        let engine = Arc::new(RedisEngine {
            config,
            clock,
            conn,
            script,
            confirm: redis::Script::new(CONFIRM),
            settings,
            fanout,
            subs,
            touches: Mutex::new(HashMap::new()),
            boot: Mutex::new(None),
            failover: failover::Watch::default(),
            retell: retell::Retell::default(),
            webhooks,
            hook_tasks,
        });
        engine.check_boot().await;
        tracing::info!(node = %engine.config.node_id, "redis engine connected");
        Ok(engine)
    }

    /// [`RedisEngine::run`], run again while it fails and Redis is not known to be failing
    /// ([`gate::Gate::healthy`]), for at most [`RETRY_FOR`]: for operations that may have run in
    /// Redis although the call failed, and that the script recognises when run again with the
    /// same arguments (a request by its id, a resume by the token it used, an open by its key).
    /// Only a Redis that is failing is [`Unavailable`] — never a long queue or one slow call.
    async fn run_retrying(&self, app: u32, now: Instant, op: &str, args: &[String]) -> Result<Out, Unavailable> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(50);
        loop {
            let result = self.run(app, now, op, args).await;
            if result.is_ok() || !self.conn.gate().healthy() || started.elapsed() >= RETRY_FOR {
                return result;
            }
            metrics::counter!("parlor_redis_retries_total").increment(1);
            tokio::time::sleep(pause.mul_f64(0.5 + rand::random::<f64>() / 2.0)).await;
            pause = (pause * 2).min(Duration::from_millis(800));
        }
    }

    /// Run one operation of the script for `app`.
    async fn run(&self, app: u32, now: Instant, op: &str, args: &[String]) -> Result<Out, Unavailable> {
        let prefix = format!("parlor:{{{app}}}");
        let mut call = redis::cmd("FCALL");
        call.arg(&self.script.name)
            .arg(1)
            .arg(&prefix)
            .arg(&prefix)
            .arg(self.clock.wall_ms(now))
            .arg(&self.settings)
            .arg(&self.config.node_id)
            .arg(format!("{:024x}", rand::random::<u128>() >> 32))
            .arg(op);
        for a in args {
            call.arg(a);
        }
        let started = std::time::Instant::now();
        let mut conn = self.conn.clone();
        let mut result: redis::RedisResult<Vec<String>> = call.query_async(&mut conn).await;
        if result.as_ref().is_err_and(library_missing) {
            // The call did not run: load the library and make it (once more).
            tracing::warn!("Redis lost Parlor's function library: loading it again");
            result = match self.script.load(&mut conn).await {
                Ok(()) => call.query_async(&mut conn).await,
                Err(e) => Err(e),
            };
        }
        metrics::histogram!("parlor_redis_seconds").record(started.elapsed().as_secs_f64());
        match result {
            Ok(mut v) if v.len() >= 2 => {
                let mut raw = v.split_off(2);
                self.count_hook_drops(app, &mut raw);
                let payload = v.pop().unwrap_or_default();
                let status = v.pop().unwrap_or_default();
                Ok(Out { status, payload, raw })
            }
            Ok(_) => Err(Unavailable),
            Err(e) => {
                metrics::counter!("parlor_redis_errors_total").increment(1);
                tracing::warn!(error = %e, op, "redis call failed");
                Err(Unavailable)
            }
        }
    }

    /// Count (and take out) the webhook events a script dropped because the app's hook log was
    /// full.
    fn count_hook_drops(&self, app: u32, raw: &mut Vec<String>) {
        let before = raw.len();
        raw.retain(|r| r != r#"["hookdrop"]"#);
        for _ in raw.len()..before {
            let labels = [("app", app.to_string()), ("why", "queue_full".to_string())];
            metrics::counter!("parlor_webhook_dead_letters_total", &labels).increment(1);
            crate::webhook::Counters::add(&self.webhooks.dropped);
        }
        if raw.len() < before {
            tracing::warn!(app, dropped = before - raw.len(), "webhook queue full: events dropped (dead letters)");
        }
    }

    /// Run an operation outside a request (bye, reaper, admin) and apply what it asks; its
    /// status, or None when Redis could not be reached.
    async fn run_loose(&self, app: u32, now: Instant, op: &str, args: &[String]) -> Option<String> {
        let out = self.run(app, now, op, args).await.ok()?;
        self.apply_loose(app, out.items()).await;
        Some(out.status)
    }

    /// Apply what a script asked outside a request (bye, reaper, admin), in order: each event
    /// with its room's cursor taken, messages to sessions at once.
    async fn apply_loose(&self, app: u32, items: Vec<Item>) {
        for item in items {
            match item {
                Item::Ev(room, ev) => {
                    if let Some(r) = self.fanout.existing(app, &room) {
                        let mut cursor = r.cursor.clone().lock_owned().await;
                        self.fanout.apply_or_queue(&r, &mut cursor, ev).await;
                        drop(cursor);
                        self.fanout.kick_drain(&r);
                    }
                }
                Item::Ctl(ctl) => self.subs.apply_ctl(&ctl),
                Item::Join(_) | Item::Send(_) => {}
            }
        }
    }

    /// Sessions of this node are in these rooms at these seqs: their positions, and the events
    /// since (the rooms' cursors are held).
    async fn join_all(&self, held: &mut [Held], app: u32, joins: Vec<Joined>) {
        for j in joins {
            let Some((r, cursor)) = held.iter_mut().find(|(r, _)| r.room == j.room) else {
                continue;
            };
            let joining = Joining::of(&j.epoch, j.ord);
            if cursor.epoch != j.epoch {
                **cursor = Cursor::new(j.epoch, [j.rseq, j.useq]);
                cursor.checked = self.fanout.connection();
            }
            let at = Seqs { room: Some(j.rseq), users: Some(j.useq), direct: None };
            self.fanout.deliver.joined(app, &r.room, j.key, j.notify, at, joining);
            self.fanout.catch_up(r, cursor, 0, j.rseq).await;
            self.fanout.catch_up(r, cursor, 1, j.useq).await;
        }
    }

    /// Take the cursors of `rooms` (sorted, so that two requests never wait on each other).
    async fn lock_rooms(&self, app: u32, mut rooms: Vec<String>) -> Vec<Held> {
        rooms.sort();
        rooms.dedup();
        let mut held = Vec::new();
        for room in rooms {
            let r = self.fanout.room(app, &room);
            let cursor = r.cursor.clone().lock_owned().await;
            held.push((r, cursor));
        }
        held
    }

    /// Let go of held cursors: deliver what waited, forget rooms no session here is in any
    /// more, subscribe to rooms just entered.
    async fn release(&self, app: u32, held: Vec<Held>) {
        for (r, mut cursor) in held {
            self.fanout.drain_locked(&r, &mut cursor).await;
            let entered = !cursor.epoch.is_empty();
            drop(cursor);
            // Rooms left are unsubscribed lazily, by the tick.
            if entered && self.fanout.deliver.has_members(app, &r.room) {
                self.subs.subscribe(fanout::room_channel(app, &r.room)).await;
            }
            self.fanout.kick_drain(&r);
        }
    }
}

/// A room's sequencer with its cursor taken.
type Held = (Arc<RoomSeq>, tokio::sync::OwnedMutexGuard<Cursor>);
