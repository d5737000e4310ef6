/**
 * Every deadline of the core in one table, as the Rust core's `timer.rs` (in the style of
 * quinn-proto's `connection/timer.rs`). The core arms and stops timers as its state changes;
 * {@link TimerTable.next} is `pollTimeout`, and `handleTimeout` asks the table which timers have
 * expired, in a fixed order: the retry of requests answered 1000004 (a request whose deadline
 * has come fails as its kind fails), the reconnect window, the login deadlines (in room id order), the
 * connection's own (liveness, or the wait before the next attempt), the ping.
 *
 * @packageDocumentation
 * @internal
 */

import { byKey } from './view.js';

/**
 * @internal One deadline the core can be waiting for:
 * - `retry`: the end of the wait before the requests answered 1000004 go again (one wait for
 *   all of them, so they go again together, in id order); not stopped by a cut;
 * - `reconnectWindow`: the end of the reconnect window (started at the first loss with rooms in
 *   it, stopped when no room is away); its end is RECONNECT_FAILED 1002053;
 * - `liveness`: two heartbeat intervals after the last frame heard (or the attempt's start),
 *   armed exactly while a connection is open or on its way;
 * - `attempt`: the end of the backoff wait before the next connection attempt;
 * - `ping`: the next `ping`, armed while the session is ready or resuming;
 * - `{ login: room }`: the login deadline of a room logging in.
 */
export type Timer = 'retry' | 'reconnectWindow' | 'liveness' | 'attempt' | 'ping' | { login: string };

/** @internal The absolute time (ms) of every armed {@link Timer}. */
export class TimerTable {
  /** When each fixed timer fires, if armed. */
  private readonly fixed = new Map<string, number>();
  /** When each logging-in room's login fails, by room id. */
  private readonly login = new Map<string, number>();

  /** Arms `timer` at `at` (re-arming it if it was armed). */
  set(timer: Timer, at: number): void {
    if (typeof timer === 'string') this.fixed.set(timer, at);
    else this.login.set(timer.login, at);
  }

  /** Disarms `timer`. */
  stop(timer: Timer): void {
    if (typeof timer === 'string') this.fixed.delete(timer);
    else this.login.delete(timer.login);
  }

  /** When `timer` fires, if it is armed. */
  get(timer: Timer): number | undefined {
    return typeof timer === 'string' ? this.fixed.get(timer) : this.login.get(timer.login);
  }

  /** Whether `timer` is armed. */
  isSet(timer: Timer): boolean {
    return this.get(timer) !== undefined;
  }

  /** Whether `timer` is armed and its time has come. */
  expired(timer: Timer, now: number): boolean {
    const t = this.get(timer);
    return t !== undefined && t <= now;
  }

  /** The rooms whose login deadline has come, in id order. */
  expiredLogins(now: number): string[] {
    return [...this.login.keys()].sort(byKey).filter((room) => (this.login.get(room) as number) <= now);
  }

  /** Disarms the connection's timers (liveness, attempt, ping): there is no connection. */
  stopConnection(): void {
    this.fixed.delete('liveness');
    this.fixed.delete('attempt');
    this.fixed.delete('ping');
  }

  /** The earliest armed deadline. */
  next(): number | undefined {
    let t: number | undefined;
    for (const x of [...this.fixed.values(), ...this.login.values()]) if (t === undefined || x < t) t = x;
    return t;
  }
}
