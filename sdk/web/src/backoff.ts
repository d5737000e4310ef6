/**
 * Reconnection backoff with full jitter (protocol §7): attempt `n` (counted from 0) waits a
 * random time in `[0, min(10 s, 0.5 s × 2^n)]`, so that thousands of clients cut at once do not
 * come back at once.
 *
 * A request answered `error` 1000004 (service temporarily unavailable, `docs/protocol.md` §9.6)
 * is sent again after a shorter full-jitter wait: retry `n` (from 0) waits a random time in
 * `[0, min(2 s, 100 ms × 2^n)]` ({@link retryDelayMs}).
 */

/** The base wait of attempt 0, in ms. */
export const BACKOFF_BASE_MS = 500;
/** The cap of the wait, in ms. */
export const BACKOFF_CAP_MS = 10_000;

/**
 * The upper bound of the wait before attempt `attempt` (0-based): `min(cap, base × 2^attempt)`.
 */
export function backoffCeilingMs(attempt: number): number {
  // 2^5 × 500 already exceeds the cap; clamp the exponent so huge attempt counts stay finite.
  const exp = Math.min(Math.max(0, Math.floor(attempt)), 16);
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** exp);
}

/**
 * The wait before attempt `attempt`, given a random draw in `[0, 1)`.
 * Draws outside `[0, 1)` are clamped into it.
 */
export function backoffDelayMs(attempt: number, random: number): number {
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return r * backoffCeilingMs(attempt);
}

/** The most of a refusal's `Retry-After` a client honours, in ms (its reconnect window still runs). */
export const RETRY_AFTER_MAX_MS = 60_000;
/** The jitter added to a `Retry-After`, in ms: the clients of one whole-second slot spread over it. */
export const RETRY_AFTER_JITTER_MS = 1_000;

/**
 * The wait before the next attempt after an upgrade refused with `Retry-After` (protocol §9.7),
 * given a random draw in `[0, 1)`: at least the server's slot, at most a second after it (as the
 * Rust core's `retry_after_delay_ms`).
 */
export function retryAfterDelayMs(retryAfterMs: number, random: number): number {
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return Math.min(Math.max(0, retryAfterMs), RETRY_AFTER_MAX_MS) + Math.floor(r * RETRY_AFTER_JITTER_MS);
}

/** The base wait of retry 0 of requests answered 1000004, in ms. */
export const RETRY_BASE_MS = 100;
/** The cap of the wait of requests answered 1000004, in ms. */
export const RETRY_CAP_MS = 2_000;

/** The upper bound of the wait before retry `retry` (0-based): `min(2 000, 100 × 2^retry)`. */
export function retryCeilingMs(retry: number): number {
  const exp = Math.min(Math.max(0, Math.floor(retry)), 20);
  return Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** exp);
}

/** The wait (whole ms) before retry `retry` of requests answered 1000004, for a draw in `[0, 1)`. */
export function retryDelayMs(retry: number, random: number): number {
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return Math.floor(r * retryCeilingMs(retry));
}
