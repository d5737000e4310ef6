//! Live delivery for the Redis engine: what pub/sub brings and what this node's own scripts
//! produced, handed to the hub in `seq` order, exactly once, with gaps filled from the logs.
//!
//! Each room this node has sessions in has a [`Cursor`]: the last `seq` of each channel the hub
//! has been given. An event at or below it is a duplicate (the node's own copy and the pub/sub
//! copy, or a gap fill); one beyond the next is preceded by a read of the missing events from the
//! room's log (a Redis Stream whose ids are the seqs), so a dropped pub/sub message is never a lost
//! event. A cursor is guarded by an async lock: a request of this node holds it from before its
//! script runs until its `ok` is queued, so that the `ok` comes after every earlier event and
//! before every later one; pub/sub messages that arrive meanwhile wait in the room's queue.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::Mutex;
use parlor_protocol::Channel;

use crate::engine::{Deliver, Joining, SessionKey};
use crate::frame::Frame;

/// One event of a room channel.
#[derive(Debug, Clone)]
pub struct Ev {
    /// 0: the `room` channel, 1: `users`.
    pub ch: usize,
    /// Its seq.
    pub seq: u64,
    /// Its author (0: none).
    pub author: SessionKey,
    /// The room's epoch it belongs to.
    pub epoch: String,
    /// The encoded frame.
    pub frame: Frame,
}

/// What a room's channel carries, in script order.
#[derive(Debug, Clone)]
pub enum Msg {
    /// An event.
    Event(Ev),
    /// Session `key` left the room after these seqs: nothing later is for it.
    Left {
        /// The session.
        key: SessionKey,
        /// The room's last seqs at its departure.
        at: [u64; 2],
        /// The room's epoch then.
        epoch: String,
        /// The ordinal of the join this departure ends ([`Joining`]).
        ord: u64,
    },
}

/// How many handed events per channel a cursor remembers (seq and digest of the frame), to tell
/// a duplicate from another event at a seq it handed (lost writes, see `failover`).
const RECENT: usize = 16;

/// Where this node is in one room's channels.
#[derive(Debug)]
pub struct Cursor {
    /// The epoch these seqs belong to ("" before the first member joined).
    pub epoch: String,
    /// The last seq handed to the hub, per channel.
    pub last: [u64; 2],
    /// The frame of that seq, when known: after a failover it is compared with the log, since
    /// a seq reused by the new master for another event means lost writes (see `failover`).
    pub tail: [Option<Frame>; 2],
    /// The highest event not handed yet because the events before it could not be read (Redis
    /// away): evidence, too, of what Redis had written.
    pub ahead: [Option<(u64, Frame)>; 2],
    /// The last [`RECENT`] events handed per channel: seq and digest of the frame.
    recent: [VecDeque<(u64, u64)>; 2],
    /// The subscriber connection ([`Fanout::new_connection`]) this cursor was last compared
    /// with Redis at: events that came over another one may be another master's.
    pub checked: u64,
    /// Found not to match Redis (lost writes): nothing is handed until the failover check
    /// (`failover.rs`) has given the room a new epoch or cleared it.
    pub rewound: bool,
}

impl Cursor {
    /// At `last` of the room's life `epoch`.
    pub fn new(epoch: String, last: [u64; 2]) -> Cursor {
        Cursor {
            epoch,
            last,
            tail: [None, None],
            ahead: [None, None],
            recent: [VecDeque::new(), VecDeque::new()],
            checked: 0,
            rewound: false,
        }
    }

    /// Record the event handed at `seq` of channel `ch`.
    fn handed(&mut self, ch: usize, seq: u64, frame: &Frame) {
        self.last[ch] = seq;
        let recent = &mut self.recent[ch];
        if recent.len() == RECENT {
            recent.pop_front();
        }
        recent.push_back((seq, digest(frame)));
        self.tail[ch] = Some(frame.clone());
    }

    /// Whether `frame` at `seq` (at or below the cursor) is another event than the one handed
    /// there: the log was rewritten (a failover lost writes and the seq was used again).
    fn differs(&self, ch: usize, seq: u64, frame: &Frame) -> bool {
        self.recent[ch].iter().any(|(s, d)| *s == seq && *d != digest(frame))
    }
}

fn digest(frame: &Frame) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    frame.as_str().hash(&mut h);
    h.finish()
}

/// The hash of a room's state in Redis: `epoch`, `rseq`, `useq`, ….
pub fn meta_key(app: u32, room: &str) -> String {
    format!("parlor:{{{app}}}:r:{room}:meta")
}

/// A room's position in Redis: its epoch and the last seq of each channel (None when absent).
pub type Meta = (Option<String>, Option<u64>, Option<u64>);

/// How a cursor compares with its room's [`Meta`] in Redis.
#[derive(Debug, PartialEq, Eq)]
pub enum Match {
    /// As the cursor knows it.
    Same,
    /// Its seqs went back: events this node handed out are lost (a failover).
    Rewound,
    /// It is gone, or in another life: this node's members must resume.
    Lost,
}

/// Compare a cursor (its `epoch`, its `last` seqs) with the room's `meta`.
pub fn compare(epoch: &str, last: [u64; 2], meta: &Meta) -> Match {
    match meta {
        (Some(e), Some(rseq), Some(useq)) if e == epoch => {
            if *rseq < last[0] || *useq < last[1] {
                Match::Rewound
            } else {
                Match::Same
            }
        }
        _ => Match::Lost,
    }
}

/// Read a room's [`Meta`].
pub async fn read_meta(conn: &mut super::gate::Gated, app: u32, room: &str) -> redis::RedisResult<Meta> {
    redis::cmd("HMGET").arg(meta_key(app, room)).arg("epoch").arg("rseq").arg("useq").query_async(conn).await
}

/// One room's sequencer.
#[derive(Debug)]
pub struct RoomSeq {
    /// The app.
    pub app: u32,
    /// The room id.
    pub room: String,
    /// The cursor; held by whoever delivers.
    pub cursor: Arc<tokio::sync::Mutex<Cursor>>,
    /// Pub/sub events waiting for the cursor, and whether a drain is scheduled.
    pending: Mutex<(VecDeque<Msg>, bool)>,
    /// When the `online` count is due and what was last sent.
    pub online: Mutex<Online>,
}

/// When a room's `online` count is sent next to this node's members, and the last one sent.
#[derive(Debug)]
pub struct Online {
    /// The next `online_interval` (None: not yet planned): the cadence of a room that is not
    /// large.
    pub small: Option<tokio::time::Instant>,
    /// The next `presence_interval` (None: now): when the count is read, to see whether the room
    /// is large and its count changed (§9.10).
    pub large: Option<tokio::time::Instant>,
    /// The room was large at the last look: the count after it stops being large is sent at
    /// the fast pace too (§9.10).
    pub was_large: bool,
    /// The count last sent.
    pub sent: u32,
}

/// The rooms of this node and their sequencers.
pub struct Fanout {
    /// Where frames go.
    pub deliver: Arc<dyn Deliver>,
    rooms: Mutex<HashMap<(u32, String), Arc<RoomSeq>>>,
    conn: super::gate::Gated,
    /// Counts the subscriber's connections: after a reconnect the master may be another one.
    connection: AtomicU64,
    /// Rooms found not to match Redis, for the failover check of the next tick.
    suspects: Mutex<HashSet<(u32, String)>>,
}

impl std::fmt::Debug for Fanout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout").field("rooms", &self.rooms.lock().len()).finish()
    }
}

/// The pub/sub channel of a room's events.
pub fn room_channel(app: u32, room: &str) -> String {
    format!("parlor:{{{app}}}:ev:{room}")
}

/// The log (a Redis Stream) of channel `ch` (0: room, 1: users) of a room.
pub fn log_key(app: u32, room: &str, ch: usize) -> String {
    format!("parlor:{{{app}}}:r:{room}:log:{}", if ch == 0 { "room" } else { "users" })
}

fn channel_of(ch: usize) -> Channel {
    if ch == 0 {
        Channel::Room
    } else {
        Channel::Users
    }
}

impl Fanout {
    /// Sequencers over `conn` (for gap fills), delivering to `deliver`.
    pub fn new(deliver: Arc<dyn Deliver>, conn: super::gate::Gated) -> Fanout {
        Fanout {
            deliver,
            rooms: Mutex::new(HashMap::new()),
            conn,
            connection: AtomicU64::new(0),
            suspects: Mutex::new(HashSet::new()),
        }
    }

    /// The subscriber connected again: until a room's cursor has been compared with Redis, its
    /// events are not trusted (a promoted replica may lack the last writes, and reuse their
    /// seqs for other events). Called before the new connection's first message is read.
    pub fn new_connection(&self) -> u64 {
        self.connection.fetch_add(1, Ordering::SeqCst) + 1
    }

    /// The subscriber connection now: a cursor positioned from Redis now is checked at it.
    pub fn connection(&self) -> u64 {
        self.connection.load(Ordering::SeqCst)
    }

    /// The rooms found rewound since the last call.
    pub fn take_suspects(&self) -> Vec<(u32, String)> {
        self.suspects.lock().drain().collect()
    }

    /// `cursor` does not match Redis: stop handing events in it and have the tick's failover
    /// check repair the room.
    fn suspect(&self, r: &RoomSeq, cursor: &mut Cursor, why: &str) {
        if !cursor.rewound {
            tracing::warn!(app = r.app, room = %r.room, at = ?cursor.last, why, "room held: Redis no longer has what this node handed (lost writes?); checked at the next tick");
        }
        cursor.rewound = true;
        self.suspects.lock().insert((r.app, r.room.clone()));
    }

    /// Compare the cursor with Redis once per subscriber connection: the room's seqs must not
    /// be behind it, and the log must hold the same event at its last seqs. Err when Redis
    /// cannot be asked (try again later); Ok(false) when it does not match (held, suspect).
    async fn verify(&self, r: &RoomSeq, cursor: &mut Cursor) -> Result<bool, ()> {
        let now = self.connection();
        if cursor.rewound {
            return Ok(false);
        }
        if cursor.checked >= now || cursor.epoch.is_empty() {
            cursor.checked = now;
            return Ok(true);
        }
        let meta = read_meta(&mut self.conn.clone(), r.app, &r.room).await.map_err(|_| ())?;
        let mut same = compare(&cursor.epoch, cursor.last, &meta) == Match::Same;
        for ch in 0..2 {
            let (Some(tail), true) = (cursor.tail[ch].clone(), same) else { continue };
            let logged = self.read_log(r, ch, cursor.last[ch], cursor.last[ch]).await.map_err(|_| ())?;
            same = logged.first().is_none_or(|(_, _, f)| *f == tail);
        }
        cursor.checked = now;
        if !same {
            self.suspect(r, cursor, "another log after the subscriber reconnected");
        }
        Ok(same)
    }

    /// The failover check found the room as this node knows it: hand its events again.
    pub fn cleared(&self, cursor: &mut Cursor) {
        cursor.rewound = false;
    }

    /// The sequencer of a room, made if needed.
    pub fn room(&self, app: u32, room: &str) -> Arc<RoomSeq> {
        let mut rooms = self.rooms.lock();
        if let Some(r) = rooms.get(&(app, room.to_string())) {
            return r.clone();
        }
        let r = Arc::new(RoomSeq {
            app,
            room: room.to_string(),
            cursor: Arc::new(tokio::sync::Mutex::new(Cursor::new(String::new(), [0, 0]))),
            pending: Mutex::new((VecDeque::new(), false)),
            online: Mutex::new(Online { small: None, large: None, was_large: false, sent: 1 }),
        });
        rooms.insert((app, room.to_string()), r.clone());
        r
    }

    /// The sequencer of a room if this node has one.
    pub fn existing(&self, app: u32, room: &str) -> Option<Arc<RoomSeq>> {
        self.rooms.lock().get(&(app, room.to_string())).cloned()
    }

    /// Every room's sequencer.
    pub fn all(&self) -> Vec<Arc<RoomSeq>> {
        self.rooms.lock().values().cloned().collect()
    }

    /// Forget the rooms no session of this node is in any more (and no one is delivering in):
    /// their channels, to unsubscribe.
    pub fn forget_unused(&self) -> Vec<String> {
        let mut rooms = self.rooms.lock();
        let unused: Vec<(u32, String)> = rooms
            .iter()
            .filter(|(_, r)| r.cursor.try_lock().is_ok() && r.pending.lock().0.is_empty())
            .filter(|((app, room), _)| !self.deliver.has_members(*app, room))
            .map(|(k, _)| k.clone())
            .collect();
        unused.into_iter().filter_map(|k| rooms.remove(&k).map(|_| room_channel(k.0, &k.1))).collect()
    }

    /// A pub/sub message: queued, and drained by a task once the cursor is free.
    pub fn incoming(self: &Arc<Self>, app: u32, room: &str, ev: Msg) {
        let Some(r) = self.existing(app, room) else {
            return;
        };
        let schedule = {
            let mut p = r.pending.lock();
            p.0.push_back(ev);
            !std::mem::replace(&mut p.1, true)
        };
        if schedule {
            let me = self.clone();
            tokio::spawn(async move { me.drain(r).await });
        }
    }

    async fn drain(&self, r: Arc<RoomSeq>) {
        let mut cursor = r.cursor.lock().await;
        self.drain_locked(&r, &mut cursor).await;
    }

    /// Deliver what waits in the room's queue (the caller holds the cursor). A message whose
    /// gap could not be read stays first in the queue, with what came after it; the tick drains
    /// again ([`Fanout::retry_waiting`]).
    pub async fn drain_locked(&self, r: &RoomSeq, cursor: &mut Cursor) {
        loop {
            let next = {
                let mut p = r.pending.lock();
                match p.0.pop_front() {
                    Some(ev) => Some(ev),
                    None => {
                        p.1 = false;
                        None
                    }
                }
            };
            let Some(msg) = next else {
                return;
            };
            if let Err(msg) = self.apply(r, cursor, msg).await {
                let mut p = r.pending.lock();
                p.0.push_front(msg);
                p.1 = false;
                return;
            }
        }
    }

    /// Apply `msg` with the cursor held; when its gap cannot be read now it waits in the room's
    /// queue (drained when the holder lets go, or by the tick).
    pub async fn apply_or_queue(&self, r: &RoomSeq, cursor: &mut Cursor, msg: Msg) {
        if let Err(msg) = self.apply(r, cursor, msg).await {
            r.pending.lock().0.push_back(msg);
        }
    }

    /// Drain the rooms whose queue waits on a gap that could not be read (every tick).
    pub fn retry_waiting(self: &Arc<Self>) {
        for r in self.all() {
            self.kick_drain(&r);
        }
    }

    /// Whether events wait in the queue with no drain scheduled (after a holder let go).
    pub fn kick_drain(self: &Arc<Self>, r: &Arc<RoomSeq>) {
        let schedule = {
            let mut p = r.pending.lock();
            !p.0.is_empty() && !std::mem::replace(&mut p.1, true)
        };
        if schedule {
            let me = self.clone();
            let r = r.clone();
            tokio::spawn(async move { me.drain(r).await });
        }
    }

    /// Apply one message of the room's channel in order. Given back when the events before it
    /// could not be read from the log (Redis failing): nothing is handed past a hole.
    pub async fn apply(&self, r: &RoomSeq, cursor: &mut Cursor, msg: Msg) -> Result<(), Msg> {
        match msg {
            Msg::Event(ev) => self.in_order(r, cursor, ev).await.map_err(Msg::Event),
            Msg::Left { key, at, epoch, ord } => {
                // Everything up to its departure first: the member had it coming.
                if epoch == cursor.epoch
                    && !(self.fill(r, cursor, 0, at[0]).await && self.fill(r, cursor, 1, at[1]).await)
                {
                    return Err(Msg::Left { key, at, epoch, ord });
                }
                // Heard twice on the node whose request made it: the late copy must not end
                // the membership of a session that entered again meanwhile.
                self.deliver.left(r.app, &r.room, key, Joining::of(&epoch, ord));
                Ok(())
            }
        }
    }

    /// Hand `ev` to the hub after every event before it; drop it if it was handed already.
    /// Given back, not handed, when the events before it could not be read.
    pub async fn in_order(&self, r: &RoomSeq, cursor: &mut Cursor, ev: Ev) -> Result<(), Ev> {
        if ev.epoch != cursor.epoch {
            // Another life of the room: the members of this node entered this one with their
            // own positions (a join resets the cursor), so an event of another life is stale.
            return Ok(());
        }
        let i = ev.ch;
        if ev.seq <= cursor.last[i] {
            if cursor.differs(i, ev.seq, &ev.frame) {
                self.suspect(r, cursor, "another event at a seq already handed");
            }
            return Ok(());
        }
        if !matches!(self.verify(r, cursor).await, Ok(true)) {
            return Err(ev);
        }
        if ev.seq > cursor.last[i] + 1 && !self.fill(r, cursor, i, ev.seq - 1).await {
            // Redis unreachable (a failover): handing `ev` now would skip the missing ones for
            // good. It waits in the room's queue; what the node knows is ahead is kept for the
            // failover check (`failover.rs`).
            if cursor.ahead[i].as_ref().is_none_or(|(s, _)| *s < ev.seq) {
                cursor.ahead[i] = Some((ev.seq, ev.frame.clone()));
            }
            return Err(ev);
        }
        self.hand(r, i, ev.seq, &ev.frame, ev.author);
        cursor.handed(i, ev.seq, &ev.frame);
        Ok(())
    }

    fn hand(&self, r: &RoomSeq, ch: usize, seq: u64, frame: &Frame, author: SessionKey) {
        let author = (author != 0).then_some(author);
        self.deliver.room_event(r.app, &r.room, Some(channel_of(ch)), seq, frame, author);
    }

    /// The logged events of channel `ch` from `from` to `upto` (seqs), in order: seq, author,
    /// frame. An error when Redis cannot be reached.
    async fn read_log(
        &self,
        r: &RoomSeq,
        ch: usize,
        from: u64,
        upto: u64,
    ) -> redis::RedisResult<Vec<(u64, SessionKey, Frame)>> {
        let mut conn = self.conn.clone();
        let entries: Vec<(String, HashMap<String, String>)> = redis::cmd("XRANGE")
            .arg(log_key(r.app, &r.room, ch))
            .arg(format!("{from}-0"))
            .arg(format!("{upto}-9"))
            .query_async(&mut conn)
            .await?;
        Ok(entries
            .into_iter()
            .filter_map(|(id, mut fields)| {
                let seq = id.split('-').next()?.parse().ok()?;
                let author = fields.get("a").and_then(|a| a.parse().ok()).unwrap_or(0);
                Some((seq, author, Frame::from(fields.remove("f")?)))
            })
            .collect())
    }

    /// Read the events after the cursor up to `upto` from the log and hand them over. False
    /// when the log could not be read (the cursor stays where it was).
    pub async fn fill(&self, r: &RoomSeq, cursor: &mut Cursor, ch: usize, upto: u64) -> bool {
        let from = cursor.last[ch] + 1;
        if upto < from {
            return true;
        }
        if !matches!(self.verify(r, cursor).await, Ok(true)) {
            return false;
        }
        metrics::counter!("parlor_redis_gap_fills_total").increment(1);
        let Ok(entries) = self.read_log(r, ch, from, upto).await else {
            tracing::warn!(room = %r.room, "gap fill failed: Redis unreachable; the next event or tick retries");
            return false;
        };
        for (seq, author, frame) in entries {
            if seq <= cursor.last[ch] {
                continue;
            }
            self.hand(r, ch, seq, &frame, author);
            cursor.handed(ch, seq, &frame);
        }
        if cursor.last[ch] < upto {
            // Trimmed away (older than the log keeps): the hub cuts the members that miss them
            // at the next event, and they catch up by resume (a snapshot).
            tracing::warn!(room = %r.room, from, upto, "events no longer in the log");
            metrics::counter!("parlor_redis_gap_lost_total").increment(1);
            cursor.last[ch] = upto;
            cursor.tail[ch] = None;
        }
        true
    }

    /// Hand the events after `from` up to the cursor again, for a member that entered at
    /// `from` after the node had gone past it (the others drop them as duplicates). A read that
    /// fails is tried again a few times; if Redis stays away the member is left behind, and the
    /// hub cuts it at the next event (it resumes and is replayed what it missed).
    pub async fn catch_up(&self, r: &RoomSeq, cursor: &Cursor, ch: usize, from: u64) {
        let upto = cursor.last[ch];
        if upto <= from {
            return;
        }
        for attempt in 0..3u32 {
            if let Ok(entries) = self.read_log(r, ch, from + 1, upto).await {
                for (seq, author, frame) in entries {
                    self.hand(r, ch, seq, &frame, author);
                }
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100 << attempt)).await;
        }
        tracing::warn!(room = %r.room, from, upto, "catch-up failed: Redis unreachable; the member resumes");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_behind_the_node_is_rewound() {
        let meta = |e: &str, r, u| (Some(e.to_string()), Some(r), Some(u));
        assert_eq!(compare("e", [5, 2], &meta("e", 5, 2)), Match::Same);
        assert_eq!(compare("e", [5, 2], &meta("e", 7, 2)), Match::Same);
        assert_eq!(compare("e", [5, 2], &meta("e", 4, 2)), Match::Rewound);
        assert_eq!(compare("e", [5, 2], &meta("e", 5, 1)), Match::Rewound);
        assert_eq!(compare("e", [5, 2], &meta("f", 9, 9)), Match::Lost);
        assert_eq!(compare("e", [5, 2], &(None, None, None)), Match::Lost);
    }
}
