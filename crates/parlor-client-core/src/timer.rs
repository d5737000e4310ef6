//! Every deadline of the core in one table, in the style of quinn-proto's `connection/timer.rs`.
//!
//! The core arms and stops [`Timer`]s as its state changes; [`TimerTable::next`] is
//! [`crate::Core::poll_timeout`], and [`crate::Core::handle_timeout`] asks the table which timers
//! have expired, in the fixed order of [`Timer`]: the retry of requests answered 1000004 first
//! (a request whose deadline has come fails as its kind fails), the reconnect window (its end
//! may drop the connection), then the login deadlines (room by room, in id order), then the connection's
//! own (liveness, or the wait before the next attempt), then the ping.

use std::collections::BTreeMap;

/// One deadline the core can be waiting for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Timer {
    /// The end of the wait before the requests answered 1000004 go again (one wait for all of
    /// them, so they go again together, in id order). Not stopped by a cut.
    Retry,
    /// The end of the reconnect window: started at the first loss of a connection with rooms in
    /// it, stopped when no room is away any more. Its end is RECONNECT_FAILED (1002053).
    ReconnectWindow,
    /// The login deadline of a room that is logging in (login timeout, connecting included).
    Login(String),
    /// Two heartbeat intervals after the last frame heard (or after the connect attempt began):
    /// the connection is judged dead. Armed exactly while a connection is open or on its way.
    Liveness,
    /// The end of the backoff wait: the next connection attempt starts.
    Attempt,
    /// The next `ping`. Armed while the session is ready or resuming.
    Ping,
}

/// The absolute time (ms) of every armed [`Timer`].
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    /// When the requests answered 1000004 go again.
    retry: Option<u64>,
    /// When the reconnect window ends.
    reconnect_window: Option<u64>,
    /// When the connection is judged dead.
    liveness: Option<u64>,
    /// When the next connection attempt starts.
    attempt: Option<u64>,
    /// When the next ping goes out.
    ping: Option<u64>,
    /// When each logging-in room's login fails, by room id.
    login: BTreeMap<String, u64>,
}

impl TimerTable {
    fn slot(&mut self, timer: &Timer) -> Option<&mut Option<u64>> {
        match timer {
            Timer::Retry => Some(&mut self.retry),
            Timer::ReconnectWindow => Some(&mut self.reconnect_window),
            Timer::Liveness => Some(&mut self.liveness),
            Timer::Attempt => Some(&mut self.attempt),
            Timer::Ping => Some(&mut self.ping),
            Timer::Login(_) => None,
        }
    }

    /// Arm `timer` to fire at `at` (re-arming it if it was armed).
    pub(crate) fn set(&mut self, timer: Timer, at: u64) {
        match timer {
            Timer::Login(room) => {
                self.login.insert(room, at);
            }
            t => {
                if let Some(slot) = self.slot(&t) {
                    *slot = Some(at);
                }
            }
        }
    }

    /// Disarm `timer`.
    pub(crate) fn stop(&mut self, timer: &Timer) {
        match timer {
            Timer::Login(room) => {
                self.login.remove(room);
            }
            t => {
                if let Some(slot) = self.slot(t) {
                    *slot = None;
                }
            }
        }
    }

    /// When `timer` fires, if it is armed.
    pub(crate) fn get(&self, timer: &Timer) -> Option<u64> {
        match timer {
            Timer::Retry => self.retry,
            Timer::ReconnectWindow => self.reconnect_window,
            Timer::Liveness => self.liveness,
            Timer::Attempt => self.attempt,
            Timer::Ping => self.ping,
            Timer::Login(room) => self.login.get(room).copied(),
        }
    }

    /// Whether `timer` is armed.
    pub(crate) fn is_set(&self, timer: &Timer) -> bool {
        self.get(timer).is_some()
    }

    /// Whether `timer` is armed and its time has come.
    pub(crate) fn expired(&self, timer: &Timer, now: u64) -> bool {
        self.get(timer).is_some_and(|t| t <= now)
    }

    /// The rooms whose login deadline has come, in id order.
    pub(crate) fn expired_logins(&self, now: u64) -> Vec<String> {
        self.login.iter().filter(|(_, t)| **t <= now).map(|(room, _)| room.clone()).collect()
    }

    /// Disarm the connection's timers (liveness, attempt, ping): there is no connection.
    pub(crate) fn stop_connection(&mut self) {
        self.liveness = None;
        self.attempt = None;
        self.ping = None;
    }

    /// The earliest armed deadline.
    pub(crate) fn next(&self) -> Option<u64> {
        [self.retry, self.reconnect_window, self.liveness, self.attempt, self.ping]
            .into_iter()
            .flatten()
            .chain(self.login.values().copied())
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_and_stopped_timers_do_not_count() {
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Ping, 50);
        t.set(Timer::Login("r1".into()), 30);
        t.set(Timer::ReconnectWindow, 40);
        assert_eq!(t.next(), Some(30));
        t.stop(&Timer::Login("r1".into()));
        assert_eq!(t.next(), Some(40));
        assert!(t.expired(&Timer::ReconnectWindow, 40) && !t.expired(&Timer::Ping, 40));
        t.stop_connection();
        assert_eq!(t.next(), Some(40));
        t.set(Timer::Login("r2".into()), 10);
        t.set(Timer::Login("r0".into()), 10);
        assert_eq!(t.expired_logins(10), vec!["r0".to_string(), "r2".to_string()]);
        t.set(Timer::Retry, 5);
        t.stop_connection();
        assert_eq!(t.next(), Some(5), "a cut does not stop the retry");
    }
}
