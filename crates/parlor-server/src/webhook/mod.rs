//! Webhooks: what happens in rooms, sent to the app's backend as signed JSON `POST`s.
//!
//! - [`event`]: the events (`room_created`, `room_closed`, `user_login`, `user_logout`,
//!   `stream_added`, `stream_deleted`, `room_extra_updated`) and their bodies;
//! - [`sign`]: the `Parlor-Signature` header and [`sign::verify`] for receivers;
//! - [`deliver`]: one event to the app's URLs, with retries, backoff and dead letters;
//! - [`queue`]: the memory engine's sink, a bounded queue and a delivery task per app.
//!
//! The Redis engine appends its events to a per-app Redis Stream in the same script as the
//! change, and one node per app (a lease holder) delivers them (`engine/redis/hooks.rs`).
//!
//! Emission is never on a room's path: an engine hands an event to a [`Hooks`] sink without
//! waiting (memory: a `try_send`; Redis: an `XADD` inside the script it runs anyway), and the
//! sending happens on other tasks. With no webhook URL the sink is [`NoHooks`] and the engine
//! builds no event at all.
//!
//! Guarantees (also in `docs/operations.md`): per app, events are sent one at a time in the
//! order the engine applied the changes (so per room in the room's order); each is sent once
//! unless a node dies mid-delivery on Redis (then the next lease holder sends it again, with
//! the same `id`); dropped only when the queue is full or its attempts are used up, and then
//! counted.

pub mod deliver;
pub mod event;
pub mod queue;
pub mod sign;

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::time::Instant;

pub use self::event::{Event, HookEvent, LogoutReason};
pub use self::sign::{verify, VerifyError};

/// Where an engine emits webhook events. Called under the engine's lock (memory), so it must
/// not wait.
pub trait Hooks: Send + Sync + 'static {
    /// Whether events of `app` go anywhere (when not, the engine does not build them).
    fn wants(&self, app: u32) -> bool;
    /// Queue one event of `app` that happened at `now`.
    fn emit(&self, app: u32, now: Instant, event: HookEvent);
}

/// Webhooks off.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHooks;

impl Hooks for NoHooks {
    fn wants(&self, _app: u32) -> bool {
        false
    }

    fn emit(&self, _app: u32, _now: Instant, _event: HookEvent) {}
}

/// A fresh event id: 128 random bits in hex, unique without coordination between nodes.
pub fn event_id() -> String {
    format!("{:032x}", rand::random::<u128>())
}

/// This process's webhook counts (the same as the metrics, but per node, for tests and the
/// admin API's stats).
#[derive(Debug, Default)]
pub struct Counters {
    /// Events a receiver took (2xx), per URL.
    pub sent: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
    /// Events given up after every attempt, per URL.
    pub given_up: AtomicU64,
    /// Events dropped because the queue was full.
    pub dropped: AtomicU64,
}

impl Counters {
    /// Dead letters: given up plus dropped.
    pub fn dead_letters(&self) -> u64 {
        self.given_up.load(Ordering::Relaxed) + self.dropped.load(Ordering::Relaxed)
    }

    pub(crate) fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}
