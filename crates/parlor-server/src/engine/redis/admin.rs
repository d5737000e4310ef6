//! The Redis engine's admin operations ([`AdminEngine`]): each one run of `lua/admin.lua`, whose
//! events and closes are applied like those of any operation outside a request.

use tokio::time::Instant;

use super::{Out, RedisEngine};
use crate::engine::admin::{AdminEngine, AdminRefusal, AdminResult, RoomPage, Sent, SessionRef};
use crate::engine::{RoomInfo, Stats, Unavailable};

fn refusal_of(name: &str) -> AdminRefusal {
    match name {
        "NoSuchUser" => AdminRefusal::NoSuchUser,
        "NoSuchStream" => AdminRefusal::NoSuchStream,
        "NoSuchSession" => AdminRefusal::NoSuchSession,
        "TooManyExtraKeys" => AdminRefusal::TooManyExtraKeys,
        _ => AdminRefusal::NoSuchRoom,
    }
}

impl RedisEngine {
    /// Run an admin operation and apply its items; its payload, or the refusal it names.
    pub(super) async fn admin_op(&self, app: u32, now: Instant, op: &str, args: &[String]) -> AdminResult<String> {
        let out: Out = self.run(app, now, op, args).await.inspect_err(|_| self.retell.answer_lost())?;
        self.apply_loose(app, out.items()).await;
        if out.status == "ok" {
            Ok(Ok(out.payload))
        } else {
            Ok(Err(refusal_of(&out.payload)))
        }
    }
}

impl AdminEngine for RedisEngine {
    async fn room_page(&self, app: u32, after: Option<&str>, limit: usize) -> Result<RoomPage, Unavailable> {
        let args = [after.unwrap_or("").to_string(), limit.to_string()];
        let out = self.run_retrying(app, Instant::now(), "room_page", &args).await?;
        let rooms: Vec<RoomInfo> = out.raw.iter().filter_map(|raw| serde_json::from_str(raw).ok()).collect();
        let more_after = (!out.payload.is_empty()).then_some(out.payload);
        Ok(RoomPage { rooms, more_after })
    }

    async fn server_message(
        &self,
        app: u32,
        room: &str,
        barrage: bool,
        message: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<Sent> {
        let kind = if barrage { "barrage" } else { "broadcast" };
        let args = [room.to_string(), kind.to_string(), message.to_string(), time_ms.to_string()];
        Ok(self.admin_op(app, now, "server_message", &args).await?.map(|payload| {
            let v: serde_json::Value = serde_json::from_str(&payload).unwrap_or_default();
            Sent {
                seq: v["seq"].as_u64().unwrap_or(0),
                message_id: v["message_id"].as_str().unwrap_or_default().to_string(),
            }
        }))
    }

    async fn server_command(
        &self,
        app: u32,
        room: &str,
        to: &[String],
        command: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<usize> {
        let to = serde_json::to_string(to).unwrap_or_else(|_| "[]".into());
        let args = [room.to_string(), to, command.to_string(), time_ms.to_string()];
        Ok(self.admin_op(app, now, "server_command", &args).await?.map(|n| n.parse().unwrap_or(0)))
    }

    async fn server_room_extra(
        &self,
        app: u32,
        room: &str,
        key: &str,
        value: &str,
        time_ms: u64,
        now: Instant,
    ) -> AdminResult<u64> {
        let args = [room.to_string(), key.to_string(), value.to_string(), time_ms.to_string()];
        Ok(self.admin_op(app, now, "server_room_extra", &args).await?.map(|seq| seq.parse().unwrap_or(0)))
    }

    async fn delete_stream(&self, app: u32, room: &str, stream: &str, now: Instant) -> AdminResult<u64> {
        let args = [room.to_string(), stream.to_string()];
        Ok(self.admin_op(app, now, "delete_stream", &args).await?.map(|seq| seq.parse().unwrap_or(0)))
    }

    async fn reconnect(&self, app: u32, who: &SessionRef, now: Instant) -> AdminResult<String> {
        match who {
            SessionRef::Id(id) => self.admin_op(app, now, "reconnect_session", std::slice::from_ref(id)).await,
            SessionRef::Member { room, user } => {
                self.admin_op(app, now, "reconnect_member", &[room.clone(), user.clone()]).await
            }
        }
    }

    async fn app_stats(&self, app: u32) -> Result<Stats, Unavailable> {
        app_stats(self, app).await
    }

    async fn drop_elsewhere(&self, app: u32) -> Result<(), Unavailable> {
        let mut c = self.conn.clone();
        let msg = serde_json::json!({ "drop": app, "from": self.config.node_id }).to_string();
        let _: i64 =
            redis::cmd("PUBLISH").arg(super::node::ALL).arg(msg).query_async(&mut c).await.map_err(|_| Unavailable)?;
        Ok(())
    }
}

/// Counts of `app` alone: one run of the `stats` operation (also summed over the apps for the
/// engine's [`Engine::stats`](crate::engine::Engine::stats)).
pub(super) async fn app_stats(e: &RedisEngine, app: u32) -> Result<Stats, Unavailable> {
    let out = e.run(app, Instant::now(), "stats", &[]).await?;
    let s: serde_json::Value = serde_json::from_str(&out.payload).map_err(|_| Unavailable)?;
    let n = |k: &str| s.get(k).and_then(serde_json::Value::as_u64).unwrap_or(0) as usize;
    Ok(Stats { sessions: n("sessions"), rooms: n("rooms"), streams: n("streams") })
}
