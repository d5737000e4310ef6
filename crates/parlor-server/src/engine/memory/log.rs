//! A channel log: the recent events of one channel, by contiguous `seq`, kept for replay (§6).
//!
//! An entry is the already-encoded frame, shared with every live recipient. The log keeps the
//! last `log_len` events or every event younger than `log_age`, whichever is more.

use std::collections::VecDeque;
use std::time::Duration;

use crate::frame::Frame;
use tokio::time::Instant;

/// One logged event.
#[derive(Debug, Clone)]
pub struct Entry {
    /// Its seq.
    pub seq: u64,
    /// When it happened.
    pub at: Instant,
    /// The encoded `event` frame.
    pub bytes: Frame,
    /// True for broadcasts and barrages (to tell `missed_messages`).
    pub is_message: bool,
}

/// The log of one channel.
#[derive(Debug, Default)]
pub struct ChannelLog {
    last: u64,
    entries: VecDeque<Entry>,
    /// The highest seq of a broadcast / barrage that was trimmed away.
    dropped_message: u64,
    /// How many broadcasts / barrages the channel carried in all.
    messages: u64,
}

impl ChannelLog {
    /// The last seq given out (0 when none).
    pub fn last(&self) -> u64 {
        self.last
    }

    /// The next seq to give out.
    pub fn next_seq(&self) -> u64 {
        self.last + 1
    }

    /// Append the event with the next seq.
    pub fn push(&mut self, bytes: Frame, at: Instant, is_message: bool) -> u64 {
        self.last += 1;
        if is_message {
            self.messages += 1;
        }
        self.entries.push_back(Entry { seq: self.last, at, bytes, is_message });
        self.last
    }

    /// Drop what is both beyond the newest `keep_len` and older than `keep_age`.
    pub fn trim(&mut self, now: Instant, keep_len: usize, keep_age: Duration) {
        while self.entries.len() > keep_len {
            match self.entries.front() {
                Some(e) if now.saturating_duration_since(e.at) > keep_age => {
                    if e.is_message {
                        self.dropped_message = e.seq;
                    }
                    self.entries.pop_front();
                }
                _ => break,
            }
        }
    }

    /// The events after `after`, or None if some of them are no longer kept (or `after` is in
    /// the future of this log, which means it belongs to another log).
    pub fn since(&self, after: u64) -> Option<impl Iterator<Item = &Entry>> {
        if after > self.last {
            return None;
        }
        let first = self.entries.front().map(|e| e.seq).unwrap_or(self.last + 1);
        if after + 1 < first {
            return None;
        }
        Some(self.entries.iter().filter(move |e| e.seq > after))
    }

    /// Whether a broadcast or barrage after `after` is no longer kept.
    pub fn lost_messages_after(&self, after: u64) -> bool {
        self.dropped_message > after
    }

    /// Whether the channel ever carried a broadcast or barrage.
    pub fn had_messages(&self) -> bool {
        self.messages > 0
    }

    /// Events currently kept.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Frame {
        Frame::from(s.to_string())
    }

    #[test]
    fn keeps_contiguous_seqs_and_tells_when_a_gap_is_gone() {
        let t0 = Instant::now();
        let mut log = ChannelLog::default();
        for i in 0..10 {
            assert_eq!(log.push(b("e"), t0, i % 2 == 0), i + 1);
        }
        assert_eq!(log.since(4).unwrap().map(|e| e.seq).collect::<Vec<_>>(), vec![5, 6, 7, 8, 9, 10]);
        assert_eq!(log.since(10).unwrap().count(), 0);
        assert!(log.since(11).is_none());
        // Young events are kept even beyond the length.
        log.trim(t0, 3, Duration::from_secs(60));
        assert_eq!(log.len(), 10);
        log.trim(t0 + Duration::from_secs(61), 3, Duration::from_secs(60));
        assert_eq!(log.len(), 3);
        assert!(log.since(6).is_none());
        assert_eq!(log.since(7).unwrap().count(), 3);
        assert!(log.lost_messages_after(6));
        assert!(!log.lost_messages_after(7));
    }
}
