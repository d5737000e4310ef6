//! A graceful drain (SIGTERM, Ctrl-C; see `docs/operations.md`, "Graceful drain").
//!
//! In this order:
//! 1. the door closes at once ([`crate::limits::Limits::set_draining`]): `/readyz` answers 503,
//!    so the balancer stops choosing this node, and a new WebSocket upgrade gets HTTP 503 with
//!    `Retry-After` (a client takes it as one failed attempt and backs off; a balancer that
//!    retries 503s sends it to another node). The admin API, `/healthz` and `/metrics` keep
//!    answering;
//! 2. the open connections are closed with 4010 (after what is queued for them) in batches
//!    spread over `drain_time`, in a random order and at jittered times, so that their clients
//!    come back elsewhere a few at a time rather than all at once (no thundering herd of
//!    resumes on the other nodes);
//! 3. it waits until every connection task is gone (a peer gets [`crate::ws::CLOSE_GRACE`] to
//!    take its close frame), but no longer than `drain_time` + [`DRAIN_GRACE`];
//! 4. and in any case until `drain_time` has passed: the door stays shut (`/readyz` 503,
//!    upgrades refused) for the whole drain time even when the last connection ended earlier,
//!    because a balancer takes a few probes to notice, and a node that exits sooner has its
//!    clients sent back to a port nobody listens on.
//!
//! Like mini-redis's shutdown, the "stop" is a flag every acceptor sees and completion is the
//! last tracked task dropping its count; here the count is a `TaskTracker` token held by each
//! connection for its whole life ([`crate::hub::Hub::tasks`]).

use std::time::Duration;

use rand::seq::SliceRandom;
use tokio::time::Instant;

use crate::node::Node;
use crate::outbox::close_code;

/// Time between two batches of closes (and so the jitter within one). 100 ms: a 10 s drain of
/// 20 000 connections closes ~200 per batch, which the other nodes take in their stride.
pub const BATCH_EVERY: Duration = Duration::from_millis(100);

/// How long after `drain_time` the drain still waits for the last connections to end: the
/// close grace of a connection closed in the last batch.
pub const DRAIN_GRACE: Duration = crate::ws::CLOSE_GRACE;

/// What a drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections closed with 4010.
    pub closed: usize,
    /// Batches they were closed in.
    pub batches: usize,
    /// Connection tasks still running when the drain gave up waiting (0: all ended).
    pub left: usize,
}

/// The batch plan: for `n` connections over `drain_time`, how many batches and the offset of
/// batch `i` from the start (batch 0 at once; then one per slot, each jittered within the
/// first half of its slot, so that the last one ends before `drain_time`).
fn plan(n: usize, drain_time: Duration) -> (usize, impl Fn(usize) -> Duration) {
    let slots = (drain_time.as_millis() / BATCH_EVERY.as_millis()).max(1) as usize;
    let batches = slots.min(n).max(1);
    let step = drain_time / batches as u32;
    let at = move |i: usize| {
        if i == 0 {
            return Duration::ZERO;
        }
        let jitter = step.mul_f64(rand::random::<f64>() * 0.5);
        step * i as u32 + jitter
    };
    (batches, at)
}

/// Drain `node` as the module docs say, over `node.config.drain_time` (0: every connection is
/// closed at once). Returns once the drain time has passed and every connection task is gone,
/// or `drain_time` + [`DRAIN_GRACE`] is up.
pub async fn drain(node: &Node) -> DrainReport {
    node.limits.set_draining();
    let drain_time = node.config.drain_time;
    let start = Instant::now();
    let mut conns = node.hub.conn_ids();
    conns.shuffle(&mut rand::rng());
    let (batches, at) = plan(conns.len(), drain_time);
    tracing::info!(connections = conns.len(), batches, ?drain_time, "draining");
    let per_batch = conns.len().div_ceil(batches).max(1);
    let mut closed = 0;
    for (i, batch) in conns.chunks(per_batch).enumerate() {
        tokio::time::sleep_until(start + at(i)).await;
        for id in batch {
            if node.hub.close_conn(*id, close_code::SHUTDOWN, "server draining") {
                closed += 1;
            }
        }
    }
    // Connections whose upgrade was already under way when the door closed.
    closed += node.hub.shutdown();
    node.hub.tasks.close();
    let waited = tokio::time::timeout_at(start + drain_time + DRAIN_GRACE, node.hub.tasks.wait()).await;
    let left = if waited.is_ok() { 0 } else { node.hub.tasks.len() };
    tokio::time::sleep_until(start + drain_time).await;
    metrics::counter!("parlor_drain_closed_total").increment(closed as u64);
    tracing::info!(closed, left, "drained");
    DrainReport { closed, batches: conns.len().div_ceil(per_batch), left }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batches_fill_the_drain_time_and_end_before_it() {
        let (batches, at) = plan(1000, Duration::from_secs(10));
        assert_eq!(batches, 100);
        assert_eq!(at(0), Duration::ZERO);
        for i in 1..batches {
            let t = at(i);
            assert!(t >= Duration::from_millis(100) * i as u32, "batch {i} at {t:?}");
            assert!(t < Duration::from_secs(10), "batch {i} at {t:?}");
        }
    }

    #[test]
    fn few_connections_get_one_batch_each_and_zero_is_all_at_once() {
        assert_eq!(plan(3, Duration::from_secs(10)).0, 3);
        let (batches, at) = plan(50, Duration::ZERO);
        assert_eq!((batches, at(0)), (1, Duration::ZERO));
        assert_eq!(plan(0, Duration::from_secs(1)).0, 1);
    }
}
