//! Back-pressure in front of Redis: a node bounds its in-flight Redis calls and queues the rest,
//! measures the queue, and knows from its calls whether Redis itself is failing.
//!
//! Why: under a reconnect storm every resume is a script, and a node that sends all of them at
//! once makes Redis's own queue so long that calls pass their response timeout — a timeout that
//! then says "Redis is away" when Redis is only busy, gets answered 1000004, and the clients'
//! retries feed the storm. Here a call waits for a permit first (at most [`MAX_IN_FLIGHT`]
//! calls of this node are in Redis at once), and the response timeout runs only from the moment
//! the call is sent; time in this queue is never a failure. The queue's length and the time
//! spent in it are what the door looks at ([`Gate::saturated`]): a saturated node refuses new
//! upgrades with HTTP 503 and `Retry-After` before doing any work for them, so a storm drains at
//! the rate Redis serves instead of amplifying itself.
//!
//! Health ([`Gate::healthy`]) is measured, not assumed: Redis is failing when calls have failed
//! (a timeout, a refused or dropped connection) for [`UNHEALTHY_AFTER`] with none succeeding
//! meanwhile. Only then is a request answered 1000004; before, a call that failed is run again
//! (every retried operation is recognised by its script: a request by its id, a resume by its
//! token).

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use redis::aio::ConnectionLike;
use redis::{Cmd, Pipeline, RedisError, RedisFuture, Value};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::conn::Conn;

/// Calls of one node in Redis at once. Redis runs scripts one at a time, so more in flight only
/// lengthens its queue, where a call's 1 s response timeout runs: six nodes at 64 each put 384
/// scripts in front of one Redis, whose busy (not failing) queue then timed calls out.
/// Measured (`bench w4 --nodes 6 --sessions 100000 --concurrency 300`, one run each, release):
/// at 64, 62 176 timed-out calls and 51 761 answers 1000004; at 16, 27 and 0. At 20 000 on two
/// nodes 16 is as fast as 64 (5.78 and 5.52 s against 5.32 and 6.04 s): a loopback round
/// trip stays busy. The wait moves into the node's queue, where it is no failure.
pub const MAX_IN_FLIGHT: usize = 16;

/// Calls waiting for a permit beyond which the node is saturated. Since the scripts run as a
/// function library (a call costs Redis ~10× less), the queue drains fast enough that waiting
/// beats a refusal: `bench w4 --nodes 2` (20 000, release, quiet box) at 4 096, all back in
/// 15.5 s (p99 10.8 s) with 19 239 × 503 and their doubling backoff; at 16 384, 6.65 s (p99
/// 5.9 s), 0 × 503, one attempt per session, peak depth 8 964. The wait threshold below still
/// bounds what a queue may cost.
pub const SHED_DEPTH: usize = 16384;

/// A recent queue wait beyond which the node is saturated: well below a client's patience for
/// an answer (a resume's is two heartbeats, 20 s by default), well above a busy but healthy
/// Redis's. A refusal costs far more than the wait it saves: the refused client's doubling
/// backoff (up to 10 s) stretches the storm's tail. So the door shuts only on a queue that would
/// outlast that patience, not on a slow one. Measured (`bench w4 --nodes 2`, 20 000, release,
/// one core kept busy by a loop to stand for a loaded box; three runs each): at 2 s, all back
/// in 17.11, 8.50 and 16.75 s (339, 0 and 1 161 × 503: whether the average crosses 2 s decides
/// the run); at 6 s, 9.65, 9.27 and 7.13 s, 0 × 503, one attempt per session. (Earlier, before
/// the function library: 500 ms, 20.3 s; 1 s, 16.2 s; 2 s, 16.1 s.)
pub const SHED_WAIT: Duration = Duration::from_millis(6000);

/// How long calls must have been failing, none succeeding, before Redis counts as failing.
pub const UNHEALTHY_AFTER: Duration = Duration::from_secs(2);

/// The queue in front of Redis, and what it has seen of Redis.
#[derive(Debug)]
pub struct Gate {
    permits: Semaphore,
    waiting: AtomicUsize,
    /// The most calls waiting at once since the last [`Gate::report`], and ever.
    peak: AtomicUsize,
    peak_ever: AtomicUsize,
    /// A moving average of the queue wait, in µs.
    wait_us: AtomicU64,
    /// Since when calls fail with none succeeding (None: the last call succeeded).
    failing_since: Mutex<Option<Instant>>,
    /// Calls answered (or failed) since the start.
    done: AtomicU64,
    /// At the last [`Gate::report`]: when, `done` then, and calls a second (a moving average).
    pace: Mutex<Pace>,
}

/// How fast the queue drains, measured at each [`Gate::report`].
#[derive(Debug, Default)]
struct Pace {
    at: Option<Instant>,
    done: u64,
    per_s: f64,
}

impl Default for Gate {
    fn default() -> Gate {
        Gate {
            permits: Semaphore::new(MAX_IN_FLIGHT),
            waiting: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
            peak_ever: AtomicUsize::new(0),
            wait_us: AtomicU64::new(0),
            failing_since: Mutex::new(None),
            done: AtomicU64::new(0),
            pace: Mutex::default(),
        }
    }
}

impl Gate {
    /// Whether the node should shed new connections: its queue is long, or calls wait long.
    pub fn saturated(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) >= SHED_DEPTH
            || self.wait_us.load(Ordering::Relaxed) >= SHED_WAIT.as_micros() as u64
    }

    /// Whether Redis answers (see the module docs).
    pub fn healthy(&self) -> bool {
        self.failing_since.lock().is_none_or(|since| since.elapsed() < UNHEALTHY_AFTER)
    }

    /// Calls waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Calls this node's Redis work drains a second (a moving average over the recent reports;
    /// 0 before the first two).
    pub fn calls_per_s(&self) -> f64 {
        self.pace.lock().per_s
    }

    /// How long the calls waiting now will take to drain at [`Gate::calls_per_s`] (the whole
    /// of [`SHED_WAIT`] when nothing was measured yet).
    pub fn drain_time(&self) -> Duration {
        let per_s = self.calls_per_s();
        if per_s < 1.0 {
            return SHED_WAIT;
        }
        Duration::from_secs_f64(self.waiting() as f64 / per_s)
    }

    /// Set the queue's gauges (every tick): its peak since the last report, calls in flight,
    /// health; and measure the pace.
    pub fn report(&self) {
        let now = Instant::now();
        let done = self.done.load(Ordering::Relaxed);
        {
            let mut p = self.pace.lock();
            let secs = p.at.map(|at| (now - at).as_secs_f64());
            if let Some(secs) = secs.filter(|s| *s > 0.05) {
                let per_s = (done - p.done) as f64 / secs;
                p.per_s = if p.per_s == 0.0 { per_s } else { p.per_s * 0.5 + per_s * 0.5 };
            }
            if secs.is_none_or(|s| s > 0.05) {
                p.at = Some(now);
                p.done = done;
            }
        }
        let peak = self.peak.swap(self.waiting(), Ordering::Relaxed);
        metrics::gauge!("parlor_redis_queue_depth").set(peak as f64);
        metrics::gauge!("parlor_redis_queue_depth_max").set(self.peak_ever.load(Ordering::Relaxed) as f64);
        metrics::gauge!("parlor_redis_in_flight").set((MAX_IN_FLIGHT - self.permits.available_permits()) as f64);
        metrics::gauge!("parlor_redis_healthy").set(if self.healthy() { 1.0 } else { 0.0 });
        // A queue that emptied does not keep the door shut on an old average.
        if self.waiting() == 0 {
            self.wait_us.store(0, Ordering::Relaxed);
        }
    }

    /// Run `call` once a permit is free, and learn from its outcome.
    async fn run<T>(&self, call: impl std::future::Future<Output = Result<T, RedisError>>) -> Result<T, RedisError> {
        let queued = Instant::now();
        let depth = self.waiting.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak.fetch_max(depth, Ordering::Relaxed);
        self.peak_ever.fetch_max(depth, Ordering::Relaxed);
        metrics::counter!("parlor_redis_calls_total").increment(1);
        let permit = self.permits.acquire().await;
        self.waiting.fetch_sub(1, Ordering::Relaxed);
        let waited = queued.elapsed();
        metrics::histogram!("parlor_redis_queue_wait_seconds").record(waited.as_secs_f64());
        let us = waited.as_micros() as u64;
        let avg = self.wait_us.load(Ordering::Relaxed);
        self.wait_us.store(avg - avg / 8 + us / 8, Ordering::Relaxed);
        let result = call.await;
        drop(permit);
        self.done.fetch_add(1, Ordering::Relaxed);
        match &result {
            Err(e) if failing(e) => {
                self.failing_since.lock().get_or_insert_with(Instant::now);
            }
            _ => *self.failing_since.lock() = None,
        }
        result
    }
}

/// Whether an error says Redis could not be reached or did not answer in time (an error Redis
/// itself answered with means it is there).
fn failing(e: &RedisError) -> bool {
    e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal()
}

/// A Redis connection whose every call goes through the node's [`Gate`].
#[derive(Clone)]
pub struct Gated {
    conn: Conn,
    gate: Arc<Gate>,
}

impl Gated {
    /// `conn` behind `gate`.
    pub fn new(conn: Conn, gate: Arc<Gate>) -> Gated {
        Gated { conn, gate }
    }

    /// The gate.
    pub fn gate(&self) -> &Arc<Gate> {
        &self.gate
    }
}

impl ConnectionLike for Gated {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        let gate = self.gate.clone();
        Box::pin(async move { gate.run(self.conn.req_packed_command(cmd)).await })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        let gate = self.gate.clone();
        Box::pin(async move { gate.run(self.conn.req_packed_commands(cmd, offset, count)).await })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timeout() -> RedisError {
        RedisError::from(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out"))
    }

    #[tokio::test(start_paused = true)]
    async fn redis_is_failing_only_after_calls_failed_for_a_while_with_none_succeeding() {
        let gate = Gate::default();
        assert!(gate.healthy());
        let _ = gate.run(async { Err::<(), _>(timeout()) }).await;
        assert!(gate.healthy(), "one timeout is not a failing Redis");
        tokio::time::advance(UNHEALTHY_AFTER).await;
        let _ = gate.run(async { Err::<(), _>(timeout()) }).await;
        assert!(!gate.healthy(), "failing for UNHEALTHY_AFTER");
        let _ = gate.run(async { Ok::<_, RedisError>(()) }).await;
        assert!(gate.healthy(), "one answer is a Redis that is there");
        // An error Redis answered with is an answer.
        let _ = gate.run(async { Err::<(), _>(timeout()) }).await;
        tokio::time::advance(UNHEALTHY_AFTER).await;
        let answered = RedisError::from((redis::ErrorKind::Server(redis::ServerErrorKind::ResponseError), "WRONGTYPE"));
        let _ = gate.run(async { Err::<(), _>(answered) }).await;
        assert!(gate.healthy());
    }

    #[tokio::test(start_paused = true)]
    async fn calls_beyond_the_in_flight_bound_wait_and_a_long_queue_saturates() {
        let gate = Arc::new(Gate::default());
        let (tx, rx) = tokio::sync::watch::channel(false);
        let mut calls = Vec::new();
        for _ in 0..MAX_IN_FLIGHT + SHED_DEPTH {
            let (gate, mut rx) = (gate.clone(), rx.clone());
            calls.push(tokio::spawn(async move {
                gate.run(async move {
                    let _ = rx.wait_for(|go| *go).await;
                    Ok::<_, RedisError>(())
                })
                .await
            }));
        }
        tokio::task::yield_now().await;
        while gate.waiting() < SHED_DEPTH {
            tokio::task::yield_now().await;
        }
        assert_eq!(gate.waiting(), SHED_DEPTH, "only MAX_IN_FLIGHT calls are in Redis at once");
        assert!(gate.saturated());
        tx.send(true).expect("send");
        for c in calls {
            c.await.expect("join").expect("call");
        }
        assert_eq!(gate.waiting(), 0);
        gate.report();
        assert!(!gate.saturated(), "an empty queue does not shed");
        drop(rx);
    }
}
