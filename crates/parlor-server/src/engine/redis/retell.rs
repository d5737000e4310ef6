//! Kicks told again after this node could not hear its control channel.
//!
//! A script run on another node tells a session of this node of its kick by publishing the
//! `kicked` frame on `parlor:node:<id>`. Pub/sub keeps nothing: while this node's subscriber is
//! (re)connecting — a node just started, Redis away or failed over — such a frame is lost, and
//! the client stays in a room the server took it out of until its next resume (which reports
//! the kick). So, once the subscriber hears the channel again, every connected session of this
//! node has its pending kicks (`kicked`, not yet reported by a resume) told again; and so has a
//! session bound by a call that started while the channel was not heard throughout (its script
//! may have made it this node's before the subscriber was up). The client ignores a kick of a
//! room it is not in, so a kick told twice does no harm.
//!
//! A kick of a session of the calling node goes in the call's answer instead. A request
//! remembers its kicks with its answer (`kicks_again` in lib.lua), but the reaper's and the admin
//! API's calls do not: when such an answer is lost (the call timed out while Redis stalled, and
//! ran when the path healed; sim seed 523395100), every connected session is told its pending
//! kicks again too. The retell goes on the same connection as the lost call, so Redis runs it
//! after that call.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::time::Instant;

use parking_lot::Mutex;

use super::RedisEngine;
use crate::engine::SessionKey;

/// Keys per `retell` call: bounded work per script run.
const CHUNK: usize = 500;

/// What is left to tell again.
#[derive(Debug, Default)]
pub struct Retell {
    /// The subscriber connection whose sessions were told ([`super::node::Subscriptions::up`]).
    done: AtomicU64,
    /// Sessions bound across a gap, to tell at the next tick.
    pending: Mutex<HashSet<(u32, SessionKey)>>,
    /// The answer of a call that may have kicked a session of this node was lost.
    lost: AtomicBool,
}

impl Retell {
    /// A session was bound by a call that started when the subscriber connection was `before`
    /// and ended when it is `after` (0: none): unless one connection heard the channel all
    /// along, its kicks are told again.
    pub fn bound(&self, app: u32, key: SessionKey, before: u64, after: u64) {
        if before == 0 || before != after {
            self.pending.lock().insert((app, key));
        }
    }

    /// A call outside a request (the reaper, the admin API) got no answer: it may have run, and
    /// the kicks it put in its answer for this node's sessions are to be told again.
    pub fn answer_lost(&self) {
        self.lost.store(true, Ordering::SeqCst);
    }
}

impl RedisEngine {
    /// From the tick: tell pending kicks again where a subscriber gap may have lost them.
    pub(super) async fn retell_kicks(&self, now: Instant) {
        let up = self.subs.up();
        if up == 0 {
            return; // not heard yet: wait for the connection, then tell
        }
        let mut todo: Vec<(u32, SessionKey)> = self.retell.pending.lock().drain().collect();
        let lost = self.retell.lost.swap(false, Ordering::SeqCst);
        if lost || self.retell.done.load(Ordering::SeqCst) != up {
            todo.extend(self.fanout.deliver.connected());
        }
        let mut failed = Vec::new();
        let mut by_app: std::collections::BTreeMap<u32, Vec<SessionKey>> = Default::default();
        for (app, key) in todo {
            by_app.entry(app).or_default().push(key);
        }
        for (app, keys) in by_app {
            for chunk in keys.chunks(CHUNK) {
                let args: Vec<String> = chunk.iter().map(|k| k.to_string()).collect();
                match self.run(app, now, "retell", &args).await {
                    Ok(out) => self.apply_loose(app, out.items()).await,
                    Err(_) => failed.extend(chunk.iter().map(|k| (app, *k))),
                }
            }
        }
        if !failed.is_empty() {
            tracing::debug!(sessions = failed.len(), "kicks not told again yet: Redis unavailable");
            self.retell.pending.lock().extend(failed);
        }
        self.retell.done.store(up, Ordering::SeqCst);
    }
}
