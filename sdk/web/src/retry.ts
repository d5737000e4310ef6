/**
 * Requests answered `error` 1000004, "service temporarily unavailable" (`docs/protocol.md`
 * §9.6), as the Rust core's `retry.rs`: the server's shared state could not be reached and
 * nothing was done, so the request is not failed but sent again with the same id after a short
 * wait, until its deadline.
 *
 * - The wait is full jitter, `random × min(2 s, 100 ms × 2^n)` (`backoff.ts`), one `retry` timer
 *   for every waiting request: they go again together, in id order, and no new request goes out
 *   before them. `n` counts the waits since the last other answer.
 * - A request's deadline is its kind's: a login's (or switch's) login deadline, a fresh login's
 *   reconnect window; any other request, which otherwise waits for its answer however long, is
 *   retried for the login timeout (30 s) from its first 1000004.
 * - At the deadline the request fails as an `error` 1000004 answer fails it (LOGIN_FAILED
 *   1000004, RECONNECT_FAILED 1002053 with `{code: 1000004}`, a result 1000004, …).
 * - A cut does not stop the wait; requests still waiting then go after the resume with the
 *   others cut in flight. A new session gives them new ids, as every waiting request.
 *
 * `hello` and `resume` answered 1000004 are one failed connection attempt (`connection.ts`).
 *
 * @packageDocumentation
 */

import { ErrorCodes } from './types.js';
import { Machine, flush } from './core.js';
import { Kind } from './requests.js';
import { retryDelayMs } from './backoff.js';
import { failRequest } from './answers.js';

/**
 * `error` 1000004 answers the request in flight with `id`: keeps it for a retry, unless its
 * deadline has come. Returns whether it is kept (else it fails as any error does).
 */
export function retryLater(m: Machine, now: number, id: number): boolean {
  const p = m.requests.inFlight(id);
  if (!p) return false;
  const deadline = p.retryDeadline ?? retryDeadline(m, p.kind, now);
  if (now >= deadline) return false;
  m.requests.wait(id, deadline);
  const at = m.timers.get('retry') ?? now + retryDelayMs(m.requests.nextRetry(), m.random());
  m.timers.set('retry', Math.min(at, deadline));
  return true;
}

/** Until when a request of `kind`, first answered 1000004 at `now`, is retried. */
function retryDeadline(m: Machine, kind: Kind, now: number): number {
  let own: number | undefined;
  if (kind.k === 'login') own = m.timers.get({ login: kind.room });
  else if (kind.k === 'switch') own = m.timers.get({ login: kind.to });
  else if (kind.k === 'relogin') own = m.timers.get('reconnectWindow');
  return own ?? now + m.loginTimeoutMs;
}

/** The retry wait is over: requests past their deadline fail, the others go again. */
export function retryDue(m: Machine, now: number): void {
  m.timers.stop('retry');
  for (const p of m.requests.endWait(now)) failRequest(m, p, ErrorCodes.SERVICE_UNAVAILABLE);
  flush(m);
}
