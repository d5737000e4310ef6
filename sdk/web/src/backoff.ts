/**
 * Reconnection backoff with full jitter (protocol §7): attempt `n` (counted from 0) waits a
 * random time in `[0, min(10 s, 0.5 s × 2^n)]`, so that thousands of clients cut at once do not
 * come back at once.
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
