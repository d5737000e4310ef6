//! What a Redis failover may have lost, found and repaired on the live path.
//!
//! Replication is asynchronous: writes the old primary acknowledged but had not sent to its
//! replica are gone once the replica is promoted (Sentinel, or a cluster replica taking over a
//! dead primary's slots). For a room that means its `seq` may go *backwards* (meta `rseq` lower
//! than what this node already handed to its members), its membership may lack a late login, or
//! the room may be gone. Handing the new master's events by seq would then drop the new events
//! that reuse a lost seq as duplicates (a silent hole), and a resume could replay another log.
//!
//! So every tick each node reads the master's replication id of each app's slot (it changes
//! when a replica is promoted or a Redis restarts). When it changed, and on every tick for 10 s
//! after (another node may change a room meanwhile), every room this node handed events of in
//! the last minute is checked against its cursor (a copy is kept each tick: the members'
//! connections may have closed during the outage and their rooms been forgotten here): a room whose seq went backwards, or whose log holds another event
//! at the last seq this node handed out (the new master's writes already went past the lost
//! ones), gets a new epoch (once: the change is conditional, whichever node sees it first); a
//! room gone or in another epoch is lost. When such a room has members here, the app's
//! connections on this node are closed with 4010. Their clients resume at once (invisible to the others); the
//! resume re-enters rooms whose membership was lost and answers a room whose epoch changed with
//! a snapshot (`missed_messages`), never a replay of the wrong log. The other nodes see the new
//! epoch (or the same rewind) at their own check. False `user_delete`s from deadline refreshes
//! the failover lost are prevented in the reaper (`reap` in `lua/sessions.lua`: after a gap in
//! reaping it waits for every node's touch batch).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::time::Instant;

use super::fanout::{compare, log_key, read_meta, Cursor, Match};
use super::RedisEngine;
use crate::frame::Frame;

/// How long after a master change the rooms are checked on every tick.
const RECHECK: Duration = Duration::from_secs(10);

/// The master's `INFO replication` of the node that holds the app's slot (`KEYS[1]` routes it).
const REPLICATION: &str = "return redis.call('INFO', 'replication')";

/// Set a new epoch on a room whose seqs went back below what a node had handed out, unless
/// another node did already (`ARGV`: old epoch, the node's rseq, useq, the new epoch, and 1
/// when the node found another event at its last seq).
const REWOUND: &str = r"
local m = redis.call('HMGET', KEYS[1], 'epoch', 'rseq', 'useq')
local behind = tonumber(m[2]) < tonumber(ARGV[2]) or tonumber(m[3]) < tonumber(ARGV[3])
if m[1] == ARGV[1] and (ARGV[5] == '1' or behind) then
  redis.call('HSET', KEYS[1], 'epoch', ARGV[4])
  return 1
end
return 0";

/// The replication id last seen per app, until when its rooms are checked every tick, and what
/// this node handed out in each room.
#[derive(Debug, Default)]
pub struct Watch {
    replids: Mutex<HashMap<u32, String>>,
    recheck: Mutex<HashMap<u32, Instant>>,
    seen: Mutex<HashMap<(u32, String), Seen>>,
}

/// What this node last handed out in a room: its cursor, copied every tick and kept for a while
/// after the room is forgotten here (its members' connections may have closed before the
/// failover is seen, and they resume anywhere).
#[derive(Debug, Clone)]
struct Seen {
    epoch: String,
    last: [u64; 2],
    /// Events this node had from Redis, per channel: (seq, frame when known).
    evidence: Vec<(usize, u64, Option<Frame>)>,
    at: Instant,
}

/// What a cursor shows of the events Redis had written: its last handed event and the highest
/// one it could not hand yet.
fn evidence(c: &Cursor) -> Vec<(usize, u64, Option<Frame>)> {
    let mut out = Vec::new();
    for ch in 0..2 {
        out.push((ch, c.last[ch], c.tail[ch].clone()));
        if let Some((seq, f)) = &c.ahead[ch] {
            out.push((ch, *seq, Some(f.clone())));
        }
    }
    out
}

/// How long a room's [`Seen`] is kept after its cursor was last copied.
const KEEP_SEEN: Duration = Duration::from_secs(60);

impl RedisEngine {
    /// Each tick: has the master of an app's slot changed? Then repair what it lost.
    pub(super) async fn watch_failover(&self) {
        self.remember_rooms();
        // Rooms the fan-out found rewound (another event at a seq it handed, or a cursor ahead
        // of the room after the subscriber reconnected): checked now and for a while, even
        // before this node reads the new master's replication id.
        let suspects = self.fanout.take_suspects();
        for app in self.config.apps.keys().copied().collect::<Vec<_>>() {
            if suspects.iter().any(|(a, _)| *a == app) {
                self.failover.recheck.lock().insert(app, Instant::now() + RECHECK);
            }
            if self.failover.recheck.lock().get(&app).is_some_and(|t| Instant::now() < *t) {
                self.after_failover(app).await;
            }
            let mut c = self.conn.clone();
            let info: redis::RedisResult<String> =
                redis::Script::new(REPLICATION).key(format!("parlor:{{{app}}}")).invoke_async(&mut c).await;
            let Ok(info) = info else { continue };
            let Some(id) = info.lines().find_map(|l| l.strip_prefix("master_replid:")) else {
                continue;
            };
            let before = self.failover.replids.lock().insert(app, id.trim().to_string());
            if before.is_some_and(|b| b != id.trim()) {
                tracing::warn!(app, "the Redis master changed: checking this node's rooms for lost writes");
                metrics::counter!("parlor_redis_master_changes_total").increment(1);
                self.failover.recheck.lock().insert(app, Instant::now() + RECHECK);
                self.after_failover(app).await;
            }
        }
    }

    /// Copy every free cursor that is in a life; forget copies older than [`KEEP_SEEN`].
    fn remember_rooms(&self) {
        let now = Instant::now();
        let mut seen = self.failover.seen.lock();
        for r in self.fanout.all() {
            let Ok(c) = r.cursor.try_lock() else { continue };
            if !c.epoch.is_empty() {
                let s = Seen { epoch: c.epoch.clone(), last: c.last, evidence: evidence(&c), at: now };
                seen.insert((r.app, r.room.clone()), s);
            }
        }
        seen.retain(|_, s| now.duration_since(s.at) < KEEP_SEEN);
    }

    /// Compare every room of `app` this node handed events of lately with Redis: rewound rooms
    /// get a new epoch; when a room with members here was rewound or lost, this node's
    /// connections of the app resume.
    async fn after_failover(&self, app: u32) {
        let rooms: Vec<(String, Seen)> = {
            let seen = self.failover.seen.lock();
            seen.iter().filter(|((a, _), _)| *a == app).map(|((_, room), s)| (room.clone(), s.clone())).collect()
        };
        let mut damaged = 0;
        for (room, rec) in rooms {
            let live = self.fanout.existing(app, &room);
            let mut guard = match &live {
                Some(r) => Some(r.cursor.clone().lock_owned().await),
                None => None,
            };
            // The live cursor when it is in a life, else the copy.
            let (epoch, mut last, evidence) = match guard.as_deref() {
                Some(c) if !c.epoch.is_empty() => (c.epoch.clone(), c.last, evidence(c)),
                _ => (rec.epoch, rec.last, rec.evidence),
            };
            for (ch, seq, _) in &evidence {
                last[*ch] = last[*ch].max(*seq);
            }
            let meta_key = super::fanout::meta_key(app, &room);
            let mut c = self.conn.clone();
            let Ok(meta) = read_meta(&mut c, app, &room).await else {
                // Redis away again: the next tick of the recheck tries again.
                continue;
            };
            let mut state = compare(&epoch, last, &meta);
            let mut reused = false;
            if state == Match::Same {
                for (ch, seq, frame) in &evidence {
                    if let Some(frame) = frame {
                        let found = logged(&mut c, &log_key(app, &room, *ch), *seq).await;
                        reused |= found.is_some_and(|f| f != frame.as_str());
                    }
                }
                if reused {
                    state = Match::Rewound;
                }
            }
            if state == Match::Same {
                if let Some(c) = guard.as_mut().filter(|c| c.rewound) {
                    self.fanout.cleared(c);
                    drop(guard);
                    if let Some(r) = &live {
                        self.fanout.kick_drain(r);
                    }
                }
                continue;
            }
            if state == Match::Rewound {
                let fresh = format!("{:024x}", rand::random::<u128>() >> 32);
                let set: redis::RedisResult<i64> = redis::Script::new(REWOUND)
                    .key(&meta_key)
                    .arg(&epoch)
                    .arg(last[0])
                    .arg(last[1])
                    .arg(&fresh)
                    .arg(if reused { "1" } else { "0" })
                    .invoke_async(&mut c)
                    .await;
                tracing::warn!(app, room = %room, at = ?last, redis = ?meta, new_epoch = set.is_ok_and(|n| n == 1),
                    "room rewound by a failover (lost writes): new epoch, its members get a snapshot");
            }
            metrics::counter!("parlor_redis_failover_rooms_total").increment(1);
            if self.fanout.deliver.has_members(app, &room) {
                if state == Match::Lost {
                    tracing::warn!(app, room = %room, redis = ?meta, "room lost or changed by a failover: its members resume");
                }
                damaged += 1;
            } else {
                // Nobody here: the next member's join takes the room's position in Redis.
                if let Some(c) = guard.as_mut() {
                    **c = Cursor::new(String::new(), [0, 0]);
                }
                self.failover.seen.lock().remove(&(app, room));
            }
        }
        if damaged > 0 {
            let n = self.fanout.deliver.drop_connections(app);
            tracing::warn!(app, rooms = damaged, connections = n, "failover lost writes: this node's clients resume");
        }
    }
}

/// The frame logged at `seq` (None when it is not there, e.g. trimmed, or Redis is away).
async fn logged(c: &mut super::gate::Gated, log: &str, seq: u64) -> Option<String> {
    let entries: redis::RedisResult<Vec<(String, HashMap<String, String>)>> =
        redis::cmd("XRANGE").arg(log).arg(format!("{seq}-0")).arg(format!("{seq}-9")).query_async(c).await;
    entries.ok()?.into_iter().next()?.1.remove("f")
}
