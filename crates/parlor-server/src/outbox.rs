//! A connection's bounded outbound queue.
//!
//! Frames are pushed by whoever produces them (the room fan-out, under the hub's lock) without
//! waiting; the connection's task ([`crate::ws`]) drains the queue. When the bytes waiting exceed the
//! limit, the connection is cut with close code 4008 at once (ahead of the queue), so that one
//! slow reader never slows the room: it resumes and catches up from the logs.
//!
//! What a session is owed from the logs on a resume (the replay) is queued with
//! [`Outbox::send_replay`] and does not count toward the limit: it is bounded by the logs (in the
//! memory engine it *is* the logs' frames, shared), and counting it would cut a client whose gap
//! is larger than the limit on every resume, so that it could never catch up. Everything after
//! it counts as usual.
//!
//! Memory a peer that reads nothing can make the server hold: at most the limit in this queue
//! (plus the replay it was owed, plus the writer's buffer and the socket's), and only until the
//! cut: an abort drops what is queued at once, and the connection task lets go of the socket
//! within [`crate::ws::CLOSE_GRACE`].
//!
//! The reader side is polled by the connection's one task ([`OutboxReader::poll_next`] or
//! [`OutboxReader::try_next`] after [`OutboxReader::register`]): one `AtomicWaker`, woken when a
//! frame lands in an empty queue and on every close or abort (so that the task stops reading
//! frames at once, even while its socket is blocked).
//!
//! The queue is a `VecDeque` under a mutex, not a tokio mpsc channel: the channel allocates
//! its first block of 32 slots (~2 KiB with its state) for every connection, idle or not, and
//! under a room's fan-out its block allocation and the receiver wake-up per frame led the
//! profile (W2 at 320 msg/s: `Tx::send` 12 %, the kernel's `clear_page` 21 % of the server's
//! samples). A deque allocates nothing until used, keeps its capacity while busy, and the task
//! is woken only when a frame lands in an empty queue.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_util::task::AtomicWaker;
use parking_lot::Mutex;
use tokio_tungstenite::tungstenite::Utf8Bytes;

use crate::telemetry::FanoutClock;

/// Close codes the server uses (§1), from the protocol crate.
pub use parlor_protocol::close_code;

/// What the writer does next.
#[derive(Debug)]
pub enum Out {
    /// Send a text frame; the writer lets go of the fan-out's clock once it is written.
    Text(Utf8Bytes, Option<Arc<FanoutClock>>),
    /// Send a text frame of a replay (not counted toward the limit).
    Replay(Utf8Bytes),
    /// Send a close frame, then stop.
    Close(u16, String),
}

/// A drained queue keeps at most this capacity (an idle connection should cost nothing here).
const KEEP_CAPACITY: usize = 64;

#[derive(Debug)]
struct Shared {
    /// What the writer has yet to take, in order.
    queue: Mutex<VecDeque<Out>>,
    /// The connection task, woken when a frame lands in an empty queue, on a close or an abort,
    /// and when the last producer is gone.
    waker: AtomicWaker,
    /// Producers alive (clones of the [`Outbox`]); none left and the queue empty ends the reader.
    senders: AtomicUsize,
    queued: AtomicUsize,
    closed: AtomicBool,
    /// An abort is waiting in `abort` (checked per frame without taking the lock).
    aborted: AtomicBool,
    abort: Mutex<Option<(u16, String)>>,
}

/// The producer side, cheap to clone.
#[derive(Debug)]
pub struct Outbox {
    shared: Arc<Shared>,
    limit: usize,
    id: u64,
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.shared.senders.fetch_add(1, Ordering::AcqRel);
        Outbox { shared: self.shared.clone(), limit: self.limit, id: self.id }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.shared.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.waker.wake();
        }
    }
}

/// The writer side.
#[derive(Debug)]
pub struct OutboxReader {
    shared: Arc<Shared>,
}

impl Outbox {
    /// A queue holding at most `limit` bytes; `id` tells connections apart.
    pub fn new(limit: usize, id: u64) -> (Outbox, OutboxReader) {
        let shared = Arc::new(Shared {
            queue: Mutex::new(VecDeque::new()),
            waker: AtomicWaker::new(),
            senders: AtomicUsize::new(1),
            queued: AtomicUsize::new(0),
            closed: AtomicBool::new(false),
            aborted: AtomicBool::new(false),
            abort: Mutex::new(None),
        });
        (Outbox { shared: shared.clone(), limit, id }, OutboxReader { shared })
    }

    /// Append to the queue; wake the writer when it may be waiting (the queue was empty).
    fn push(&self, out: Out) {
        let was_empty = {
            let mut q = self.shared.queue.lock();
            q.push_back(out);
            q.len() == 1
        };
        if was_empty {
            self.shared.waker.wake();
        }
    }

    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Queue a frame. Returns false when the connection is closing (the frame is dropped: the
    /// logs still hold it for a resume).
    pub fn send(&self, frame: Utf8Bytes) -> bool {
        self.send_timed(frame, None)
    }

    /// [`Outbox::send`] with a share of a fan-out's clock (see [`FanoutClock`]).
    pub fn send_timed(&self, frame: Utf8Bytes, clock: Option<Arc<FanoutClock>>) -> bool {
        if self.is_closed() {
            return false;
        }
        let len = frame.as_str().len();
        let before = self.shared.queued.fetch_add(len, Ordering::AcqRel);
        if before + len > self.limit {
            metrics::counter!("parlor_slow_consumer_total").increment(1);
            self.abort(close_code::SLOW_CONSUMER, "slow consumer");
            return false;
        }
        self.push(Out::Text(frame, clock));
        true
    }

    /// Queue a frame of a replay: after what is queued, without counting it toward the limit
    /// (see the module docs). Returns false when the connection is closing.
    pub fn send_replay(&self, frame: Utf8Bytes) -> bool {
        if self.is_closed() {
            return false;
        }
        self.push(Out::Replay(frame));
        true
    }

    /// Bytes queued and counted toward the limit.
    pub fn queued(&self) -> usize {
        self.shared.queued.load(Ordering::Acquire)
    }

    /// Send a close frame after what is queued.
    pub fn close(&self, code: u16, reason: &str) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            self.push(Out::Close(code, reason.to_string()));
            // Also when the queue was not empty: the task stops reading frames now.
            self.shared.waker.wake();
        }
    }

    /// Close at once, ahead of what is queued.
    pub fn abort(&self, code: u16, reason: &str) {
        if !self.shared.closed.swap(true, Ordering::AcqRel) {
            *self.shared.abort.lock() = Some((code, reason.to_string()));
            self.shared.aborted.store(true, Ordering::Release);
            // Also a task waiting on a socket that does not drain.
            self.shared.waker.wake();
        }
    }

    /// True once a close was asked for.
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Acquire)
    }
}

impl OutboxReader {
    /// The abort's close, once; what is still queued is dropped then (it will never be sent, and
    /// a peer that reads nothing must not keep it alive).
    fn take_abort(&mut self) -> Option<Out> {
        if !self.shared.aborted.load(Ordering::Acquire) {
            return None;
        }
        let close = self.shared.abort.lock().take().map(|(code, reason)| Out::Close(code, reason))?;
        *self.shared.queue.lock() = VecDeque::new();
        self.shared.queued.store(0, Ordering::Release);
        Some(close)
    }

    /// True once an abort is asked for (it goes ahead of a socket that does not drain).
    pub fn is_aborted(&self) -> bool {
        self.shared.aborted.load(Ordering::Acquire)
    }

    /// Wake `waker` on the next push into an empty queue, close, abort or last producer gone.
    /// Register before looking at the queue, so that no wake is lost in between.
    pub fn register(&self, waker: &Waker) {
        self.shared.waker.register(waker);
    }

    /// Wake nobody until the next [`OutboxReader::register`]: the connection task does this
    /// while it runs, so that the frames it queues itself (a `pong`) do not wake it again.
    pub fn unregister(&self) {
        drop(self.shared.waker.take());
    }

    /// What is ready now without waiting: an abort first, else the next queued frame.
    pub fn try_next(&mut self) -> Option<Out> {
        if let Some(close) = self.take_abort() {
            return Some(close);
        }
        let out = self.pop()?;
        self.dequeued(&out);
        Some(out)
    }

    /// The next queued frame; a drained queue gives back a large capacity.
    fn pop(&self) -> Option<Out> {
        let mut q = self.shared.queue.lock();
        let out = q.pop_front();
        if q.is_empty() && q.capacity() > KEEP_CAPACITY {
            q.shrink_to(KEEP_CAPACITY);
        }
        out
    }

    fn dequeued(&self, out: &Out) {
        if let Out::Text(t, _) = out {
            self.shared.queued.fetch_sub(t.as_str().len(), Ordering::AcqRel);
        }
    }

    /// The next thing to do: an abort first, else the queue in order; None once every producer
    /// is gone and the queue is empty.
    pub fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Out>> {
        // Registered first: a push after the look below wakes the task.
        self.register(cx.waker());
        if let Some(out) = self.try_next() {
            return Poll::Ready(Some(out));
        }
        if self.shared.senders.load(Ordering::Acquire) == 0 {
            // A frame pushed just before the last producer went is still taken.
            return Poll::Ready(self.try_next());
        }
        Poll::Pending
    }

    /// [`OutboxReader::poll_next`] as a future.
    pub async fn next(&mut self) -> Option<Out> {
        std::future::poll_fn(|cx| self.poll_next(cx)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_full_queue_aborts_ahead_of_the_queue() {
        let (out, mut rd) = Outbox::new(10, 1);
        assert!(out.send(Utf8Bytes::from("12345".to_string())));
        assert!(!out.send(Utf8Bytes::from("1234567".to_string())));
        assert!(out.is_closed());
        match rd.next().await {
            Some(Out::Close(code, _)) => assert_eq!(code, close_code::SLOW_CONSUMER),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_abort_drops_what_is_queued_at_once() {
        let (out, mut rd) = Outbox::new(10, 1);
        assert!(out.send(Utf8Bytes::from("12345".to_string())));
        assert!(out.send_replay(Utf8Bytes::from("replayed".to_string())));
        assert!(!out.send(Utf8Bytes::from("123456".to_string())));
        assert!(matches!(rd.next().await, Some(Out::Close(4008, _))));
        assert_eq!(out.queued(), 0);
        assert!(rd.try_next().is_none(), "nothing queued survives the abort");
        assert!(!out.send_replay(Utf8Bytes::from("late".to_string())));
    }

    #[tokio::test]
    async fn a_replay_does_not_count_toward_the_limit() {
        let (out, mut rd) = Outbox::new(10, 1);
        assert!(out.send_replay(Utf8Bytes::from("a replay longer than the limit".to_string())));
        assert!(out.send(Utf8Bytes::from("1234567890".to_string())), "the live flow still has its limit");
        assert_eq!(out.queued(), 10);
        assert!(matches!(rd.next().await, Some(Out::Replay(_))));
        assert!(matches!(rd.next().await, Some(Out::Text(..))));
        assert_eq!(out.queued(), 0);
        assert!(!out.is_closed());
    }

    #[tokio::test]
    async fn an_orderly_close_comes_after_the_queue() {
        let (out, mut rd) = Outbox::new(100, 1);
        assert!(out.send(Utf8Bytes::from("a".to_string())));
        out.close(close_code::POLICY, "bad hello");
        assert!(!out.send(Utf8Bytes::from("b".to_string())));
        assert!(matches!(rd.next().await, Some(Out::Text(t, _)) if t.as_str() == "a"));
        assert!(matches!(rd.next().await, Some(Out::Close(1008, _))));
    }

    #[tokio::test]
    async fn the_reader_waits_for_a_frame_and_ends_with_the_last_producer() {
        let (out, mut rd) = Outbox::new(100, 1);
        let other = out.clone();
        let writer = tokio::spawn(async move {
            let mut got = Vec::new();
            while let Some(Out::Text(t, _)) = rd.next().await {
                got.push(t.as_str().to_string());
            }
            got
        });
        tokio::task::yield_now().await;
        assert!(out.send(Utf8Bytes::from("a".to_string())));
        drop(out);
        assert!(other.send(Utf8Bytes::from("b".to_string())));
        drop(other);
        assert_eq!(writer.await.unwrap(), ["a", "b"]);
    }

    #[test]
    fn a_drained_queue_gives_back_its_capacity() {
        let (out, mut rd) = Outbox::new(usize::MAX, 1);
        for _ in 0..1000 {
            assert!(out.send(Utf8Bytes::from("x".to_string())));
        }
        while rd.try_next().is_some() {}
        assert!(out.shared.queue.lock().capacity() <= KEEP_CAPACITY);
        assert_eq!(out.queued(), 0);
    }
}
