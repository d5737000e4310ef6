//! The one door to the engine: [`AnyEngine`], the engine a node runs on, chosen at start.
//!
//! The session layer ([`crate::node`]) and the admin API ([`crate::admin`]) call its plain async
//! methods; each one matches the concrete engine here, once, so that no caller matches
//! [`MemoryEngine`] and [`RedisEngine`] itself. A call that can fail (Redis unreachable) says so
//! in its type ([`Unavailable`]); on the memory engine it never does.

use std::sync::Arc;

use parlor_protocol::Ack;
use tokio::time::Instant;

use super::admin::{AdminEngine, AdminResult, RoomPage, Sent, SessionRef};
use super::memory::MemoryEngine;
use super::redis::{NodeHealth, RedisEngine};
use super::{
    ConnId, Engine, MembersPage, NewSession, Op, Opened, Outcome, Reply, Req, ResumeRefused, Resumed, RoomInfo,
    SessionKey, Stats, Unavailable,
};
use crate::frame::Frame;

/// The engine a node runs on, chosen at start.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // one per process; boxing would add a hop to every request
pub enum AnyEngine {
    /// Everything in this process.
    Memory(MemoryEngine),
    /// Shared with the other nodes through Redis.
    Redis(Arc<RedisEngine>),
}

/// Call `$call` on whichever engine `$e` is: the only match over the concrete engines.
macro_rules! dispatch {
    ($e:expr, $x:ident => $call:expr) => {
        match $e {
            AnyEngine::Memory($x) => $call,
            AnyEngine::Redis($x) => $call,
        }
    };
}

impl AnyEngine {
    /// `"memory"` or `"redis"` (`/healthz`, the admin API's stats).
    pub fn kind(&self) -> &'static str {
        match self {
            AnyEngine::Memory(_) => "memory",
            AnyEngine::Redis(_) => "redis",
        }
    }

    /// Redis reachable and the nodes alive; None on the memory engine (nothing to reach).
    pub async fn health(&self, now: Instant) -> Option<NodeHealth> {
        match self {
            AnyEngine::Memory(_) => None,
            AnyEngine::Redis(e) => Some(e.health(now).await),
        }
    }

    /// See [`Engine::open`].
    pub async fn open(&self, s: NewSession, conn: ConnId, now: Instant) -> Result<Opened, Unavailable> {
        dispatch!(self, e => e.open(s, conn, now).await)
    }

    /// See [`Engine::resume`].
    pub async fn resume(
        &self,
        session: &str,
        resume_token: &str,
        ack: &Ack,
        conn: ConnId,
        now: Instant,
    ) -> Result<Result<Resumed, ResumeRefused>, Unavailable> {
        dispatch!(self, e => e.resume(session, resume_token, ack, conn, now).await)
    }

    /// See [`Engine::confirm`].
    pub async fn confirm(&self, key: SessionKey, app: u32, token: &str, now: Instant) {
        dispatch!(self, e => e.confirm(key, app, token, now).await)
    }

    /// See [`Engine::touch`].
    pub async fn touch(&self, key: SessionKey, app: u32, ack: Option<&Ack>, now: Instant) {
        dispatch!(self, e => e.touch(key, app, ack, now).await)
    }

    /// See [`Engine::request`].
    pub async fn request<A>(&self, req: Req, op: Op, now: Instant, answer: A) -> Outcome
    where
        A: FnOnce(Reply) -> Frame + Send + 'static,
    {
        dispatch!(self, e => e.request(req, op, now, answer).await)
    }

    /// See [`Engine::bye`].
    pub async fn bye(&self, key: SessionKey, app: u32, now: Instant) {
        dispatch!(self, e => e.bye(key, app, now).await)
    }

    /// See [`Engine::tick`].
    pub async fn tick(&self, now: Instant) {
        dispatch!(self, e => e.tick(now).await)
    }

    /// See [`Engine::stats`].
    pub async fn stats(&self) -> Result<Stats, Unavailable> {
        dispatch!(self, e => e.stats().await)
    }

    /// See [`Engine::rooms`].
    pub async fn rooms(&self, app: u32) -> Result<Vec<RoomInfo>, Unavailable> {
        dispatch!(self, e => e.rooms(app).await)
    }

    /// See [`Engine::room`].
    pub async fn room(&self, app: u32, room: &str) -> Result<Option<RoomInfo>, Unavailable> {
        dispatch!(self, e => e.room(app, room).await)
    }

    /// See [`Engine::members`].
    pub async fn members(
        &self,
        app: u32,
        key: Option<SessionKey>,
        room: &str,
        cursor: &str,
        limit: usize,
    ) -> Result<Option<MembersPage>, Unavailable> {
        dispatch!(self, e => e.members(app, key, room, cursor, limit).await)
    }

    /// See [`Engine::kick`].
    pub async fn kick(
        &self,
        app: u32,
        room: &str,
        user: &str,
        reason: &str,
        now: Instant,
    ) -> Result<bool, Unavailable> {
        dispatch!(self, e => e.kick(app, room, user, reason, now).await)
    }

    /// See [`Engine::close_room`].
    pub async fn close_room(&self, app: u32, room: &str, reason: &str, now: Instant) -> Result<bool, Unavailable> {
        dispatch!(self, e => e.close_room(app, room, reason, now).await)
    }

    /// See [`AdminEngine::room_page`].
    pub async fn room_page(&self, app: u32, after: Option<&str>, limit: usize) -> Result<RoomPage, Unavailable> {
        dispatch!(self, e => e.room_page(app, after, limit).await)
    }

    /// See [`AdminEngine::server_message`].
    pub async fn server_message(
        &self,
        app: u32,
        room: &str,
        barrage: bool,
        message: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<Sent> {
        dispatch!(self, e => e.server_message(app, room, barrage, message, time_ms, now).await)
    }

    /// See [`AdminEngine::server_command`].
    pub async fn server_command(
        &self,
        app: u32,
        room: &str,
        to: &[String],
        command: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<usize> {
        dispatch!(self, e => e.server_command(app, room, to, command, time_ms, now).await)
    }

    /// See [`AdminEngine::server_room_extra`].
    pub async fn server_room_extra(
        &self,
        app: u32,
        room: &str,
        key: &str,
        value: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<u64> {
        dispatch!(self, e => e.server_room_extra(app, room, key, value, time_ms, now).await)
    }

    /// See [`AdminEngine::delete_stream`].
    pub async fn delete_stream(&self, app: u32, room: &str, stream: &str, now: Instant) -> AdminResult<u64> {
        dispatch!(self, e => e.delete_stream(app, room, stream, now).await)
    }

    /// See [`AdminEngine::reconnect`].
    pub async fn reconnect(&self, app: u32, who: &SessionRef, now: Instant) -> AdminResult<String> {
        dispatch!(self, e => e.reconnect(app, who, now).await)
    }

    /// See [`AdminEngine::app_stats`].
    pub async fn app_stats(&self, app: u32) -> Result<Stats, Unavailable> {
        dispatch!(self, e => e.app_stats(app).await)
    }

    /// See [`AdminEngine::drop_elsewhere`].
    pub async fn drop_elsewhere(&self, app: u32) -> Result<(), Unavailable> {
        dispatch!(self, e => e.drop_elsewhere(app).await)
    }
}
