//! Every metric the server exports, named and described in one place (the list and what each
//! answers is in `docs/operations.md` "Metrics and dashboard"; `docs/grafana/parlor.json` is a
//! dashboard over them).
//!
//! No metric has a per-room or per-user label: a label per room would make one time series per
//! room, which a Prometheus of a busy deployment cannot hold. Labels are small closed sets
//! (an outcome, an error code, a reason).
//!
//! Most counts are taken where every engine passes: the node (logins, fan-out, rate limits) and
//! the hub (kicks and resumes, recognised by the frame's type, which both engines encode first:
//! `{"t":"kicked"…`, `{"t":"resumed"…`). So the Redis engine's figures mean the same as the
//! memory engine's, and each node counts what its own sessions saw: summed over nodes, each
//! kick and resume is counted once.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Unit};

/// Histogram buckets of every `*_seconds` metric: 0.5 ms to 10 s.
pub const SECONDS_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0];

/// Describe every metric (the `# HELP` lines). Called once, when the recorder is installed.
pub fn describe() {
    describe_gauge!("parlor_sessions", "Sessions the engine holds, offline ones included (Redis: of every node).");
    describe_gauge!("parlor_sessions_connected", "Sessions with a connection on this node.");
    describe_gauge!("parlor_connections", "Open WebSocket connections on this node, before hello too.");
    describe_gauge!("parlor_rooms", "Rooms (Redis: of every node).");
    describe_gauge!("parlor_streams", "Published streams.");
    describe_counter!("parlor_logins_total", "Logins and switches answered, by outcome: ok, refused, unavailable.");
    describe_histogram!("parlor_login_seconds", Unit::Seconds, "Time from a login's frame read to its answer queued.");
    describe_counter!(
        "parlor_resumes_total",
        "Resumes by outcome: replay (every room replayed), snapshot (a room answered by a snapshot), refused."
    );
    describe_counter!(
        "parlor_sessions_offline_total",
        "Sessions that went offline at the session timeout (their rooms left)."
    );
    describe_counter!("parlor_sessions_expired_total", "Offline sessions forgotten at the end of their retention.");
    describe_counter!(
        "parlor_offline_sessions_dropped_total",
        "Offline sessions dropped early by --max-offline-sessions."
    );
    describe_counter!("parlor_kicks_total", "Kicks told to this node's sessions, by code (1002050 duplicate login, 1002055 by the server, 1002056 token expired).");
    describe_counter!("parlor_events_total", "Room channel events produced.");
    describe_counter!("parlor_deliveries_total", "Room events queued to this node's connections.");
    describe_histogram!(
        "parlor_fanout_seconds",
        Unit::Seconds,
        "Time from a broadcast, barrage or command frame read to its event written to the socket of every recipient on this node (or dropped at a cut)."
    );
    describe_counter!("parlor_slow_consumer_total", "Connections cut with 4008 for an outbound queue over the limit.");
    describe_counter!(
        "parlor_rate_limited_total",
        "Requests refused for a rate, by code (1002072 requests, 1002073 messages)."
    );
    describe_counter!(
        "parlor_upgrades_refused_total",
        "WebSocket upgrades refused at the door, by why: per_ip (429), rate (503), draining (503)."
    );
    describe_counter!(
        "parlor_hellos_refused_total",
        "hello frames refused, by code (1000005 too many sessions, 1002033 bad token, ...)."
    );
    describe_gauge!("parlor_webhook_queue", "Webhook events waiting to be sent, by app.");
    describe_counter!("parlor_webhook_sent_total", "Webhook events delivered (a 2xx answer), by app.");
    describe_counter!(
        "parlor_webhook_failures_total",
        "Webhook attempts that failed (not 2xx, timeout, no connection), by app."
    );
    describe_counter!(
        "parlor_webhook_dead_letters_total",
        "Webhook events given up, by app and why: attempts (every attempt failed), queue_full (dropped)."
    );
    describe_counter!("parlor_drain_closed_total", "Connections closed with 4010 by a graceful drain.");
    describe_histogram!("parlor_redis_seconds", Unit::Seconds, "Redis script round trips.");
    describe_counter!("parlor_redis_errors_total", "Redis calls that failed.");
    describe_gauge!(
        "parlor_redis_queue_depth",
        "Redis calls waiting in this node's queue for one of its in-flight permits (the peak since the last tick)."
    );
    describe_gauge!("parlor_redis_queue_depth_max", "The most Redis calls ever waiting at once in this node's queue.");
    describe_counter!("parlor_redis_calls_total", "Redis calls of this node (commands, scripts and pipelines).");
    describe_counter!("parlor_unavailable_total", "Answers 1000004 (hello, resume and requests): Redis failing.");
    describe_gauge!("parlor_redis_in_flight", "Redis calls of this node in Redis now (at most 64).");
    describe_histogram!(
        "parlor_redis_queue_wait_seconds",
        Unit::Seconds,
        "Time a Redis call waited in this node's queue before it was sent (never counted as a failure)."
    );
    describe_gauge!("parlor_redis_healthy", "1 while Redis answers, 0 once calls failed for 2 s with none succeeding.");
    describe_counter!(
        "parlor_redis_retries_total",
        "Redis operations run again after a failed call while Redis was healthy."
    );
    describe_counter!(
        "parlor_delivery_holes_total",
        "Members cut (4010, they resume) because an event would have reached them past a missing one."
    );
}

/// Set the gauges of what the engine holds (every few seconds, from the node's ticker).
pub fn holdings(sessions: usize, connected: usize, rooms: usize, streams: usize) {
    gauge!("parlor_sessions").set(sessions as f64);
    gauge!("parlor_sessions_connected").set(connected as f64);
    gauge!("parlor_rooms").set(rooms as f64);
    gauge!("parlor_streams").set(streams as f64);
}

/// A login or switch was answered.
pub fn login(outcome: &'static str, took: Duration) {
    counter!("parlor_logins_total", "outcome" => outcome).increment(1);
    histogram!("parlor_login_seconds").record(took.as_secs_f64());
}

tokio::task_local! {
    /// When the frame of the room message being executed was read (None: not a room message).
    static READ_AT: Option<Instant>;
}

/// Run `request` with its frame's read time known to the fan-out when it is a room message's.
/// (Every request runs in the scope, measured or not: one future type, not two side by side in
/// the connection task's state.)
pub async fn with_read_at<F: Future>(read: Option<Instant>, request: F) -> F::Output {
    READ_AT.scope(read, request).await
}

/// The server's own fan-out latency of one room message on this node: from its frame's read to
/// the last local recipient's write. Every recipient's queued frame holds a share; a writer lets
/// go of its share once it has written (flushed) the frame, or when the frame is dropped at a
/// cut; the fan-out holds one until every recipient has its share. The last to let go records
/// `parlor_fanout_seconds`. Events of the Redis engine that reach this node by pub/sub (another
/// node read the frame) are not timed.
#[derive(Debug)]
pub struct FanoutClock {
    read: Instant,
}

impl FanoutClock {
    /// The clock of the room event being fanned out now, when it comes from a room message read
    /// by this task ([`with_read_at`]).
    pub fn current() -> Option<Arc<FanoutClock>> {
        let read = READ_AT.try_with(|read| *read).ok().flatten()?;
        Some(Arc::new(FanoutClock { read }))
    }
}

impl Drop for FanoutClock {
    fn drop(&mut self) {
        histogram!("parlor_fanout_seconds").record(Instant::now().saturating_duration_since(self.read).as_secs_f64());
    }
}

/// A request was refused for a rate (1002072, 1002073).
pub fn rate_limited(code: u32) {
    counter!("parlor_rate_limited_total", "code" => code.to_string()).increment(1);
}

/// A `hello` was refused with `code`.
pub fn hello_refused(code: u32) {
    counter!("parlor_hellos_refused_total", "code" => code.to_string()).increment(1);
}

/// A resume was refused.
pub fn resume_refused() {
    counter!("parlor_resumes_total", "outcome" => "refused").increment(1);
}

/// Sessions went offline at the session timeout, and retained ones were forgotten.
pub fn offline(went_offline: u64, expired: u64) {
    counter!("parlor_sessions_offline_total").increment(went_offline);
    counter!("parlor_sessions_expired_total").increment(expired);
}

/// A frame for one session, as the hub hands it on: counts kicks and resumes.
pub fn to_session(frame: &str) {
    if frame.starts_with(r#"{"t":"kicked""#) {
        let code = serde_json::from_str::<serde_json::Value>(frame)
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_u64()))
            .unwrap_or(0);
        counter!("parlor_kicks_total", "code" => code.to_string()).increment(1);
    } else if frame.starts_with(r#"{"t":"resumed""#) {
        // Rare (once per resume), so parsing it costs nothing that matters.
        let snapshot = serde_json::from_str::<serde_json::Value>(frame)
            .ok()
            .and_then(|v| v.get("rooms").and_then(|r| r.as_object()).map(|r| r.values().any(|o| o == "snapshot")))
            .unwrap_or(false);
        let outcome = if snapshot { "snapshot" } else { "replay" };
        counter!("parlor_resumes_total", "outcome" => outcome).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use parlor_protocol::{Kicked, ServerFrame};

    /// The hub's counting relies on the tag coming first in every encoded frame.
    #[test]
    fn frames_begin_with_their_tag() {
        let k = ServerFrame::Kicked(Kicked { room: "r".into(), code: 1002050, extended_data: None }).to_json();
        assert!(k.starts_with(r#"{"t":"kicked""#), "{k}");
    }
}
