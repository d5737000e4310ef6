//! Requests answered `error` 1000004, "service temporarily unavailable" (`docs/protocol.md`
//! §9.6): the server's shared state could not be reached and nothing was done, so the request
//! is not failed but sent again with the same id after a short wait, until its deadline.
//!
//! - The wait is full jitter, `random × min(2 s, 100 ms × 2^n)` ([`crate::backoff`]), one
//!   [`Timer::Retry`] for every waiting request: they go again together, in id order, and no new
//!   request goes out before them. `n` counts the waits since the last other answer.
//! - A request's deadline is its kind's: a login's (or switch's) login deadline, a fresh
//!   login's reconnect window; any other request, which otherwise waits for its answer however
//!   long, is retried for the login timeout (30 s) from its first 1000004.
//! - At the deadline the request fails as an `error` 1000004 answer fails it (LOGIN_FAILED
//!   1000004, RECONNECT_FAILED 1002053 with `{"code":1000004}`, a result 1000004, …).
//! - A cut does not stop the wait; requests still waiting then go after the resume with the
//!   others cut in flight. A new session gives them new ids, as every waiting request.
//!
//! `hello` and `resume` answered 1000004 are one failed connection attempt (`connection.rs`).

use parlor_protocol::ErrorCode;

use crate::backoff;
use crate::core::Core;
use crate::requests::Kind;
use crate::timer::Timer;

impl Core {
    /// `error` 1000004 answers the request in flight with `id`: keep it for a retry, unless its
    /// deadline has come. Returns whether it is kept (else it fails as any error does).
    pub(crate) fn retry_later(&mut self, now: u64, id: u64) -> bool {
        let Some(p) = self.requests.in_flight(id) else {
            return false;
        };
        let deadline = p.retry_deadline.unwrap_or_else(|| self.retry_deadline(&p.kind, now));
        if now >= deadline {
            return false;
        }
        self.requests.wait(id, deadline);
        let at = match self.timers.get(&Timer::Retry) {
            Some(at) => at,
            None => now + backoff::retry_delay_ms(self.requests.next_retry(), (self.random)()),
        };
        self.timers.set(Timer::Retry, at.min(deadline));
        true
    }

    /// Until when a request of `kind`, first answered 1000004 at `now`, is retried.
    fn retry_deadline(&self, kind: &Kind, now: u64) -> u64 {
        let own = match kind {
            Kind::Login { room } | Kind::Switch { to: room } => self.timers.get(&Timer::Login(room.clone())),
            Kind::Relogin { .. } => self.timers.get(&Timer::ReconnectWindow),
            _ => None,
        };
        own.unwrap_or(now + self.config.login_timeout_ms)
    }

    /// The retry wait is over: requests past their deadline fail, the others go again.
    pub(crate) fn retry_due(&mut self, now: u64) {
        self.timers.stop(&Timer::Retry);
        for p in self.requests.end_wait(now) {
            self.fail_request(p, ErrorCode::ServiceUnavailable.code());
        }
        self.flush();
    }
}
