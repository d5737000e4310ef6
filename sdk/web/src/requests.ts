/**
 * The request queue: every request the app (or the core itself) made that is not answered yet,
 * with where it stands on the wire (as the Rust core's `requests.rs`).
 *
 * A request is `held` until it may go (its connection is ready and its room is in), and gets its
 * `id` only when it first goes out, so ids increase on the wire even when a held request goes out
 * after a later one (§9.1). A cut turns every `inFlight` request into `unsent`: it goes again
 * after the resume with the same id, and the server answers it from memory. A new session (a
 * refused resume) knows none of the old ids, so every request is held again and gets a new id.
 * A request answered `error` 1000004 is `waiting`: nothing was done, and it goes again with the
 * same id when the retry wait ends (`retry.ts`); meanwhile no new request goes out, so that the
 * retry is not overtaken by a higher id.
 *
 * @packageDocumentation
 */

import { ClientFrame } from './types.js';

/**
 * What a request is, for what its answer does: the app's `login`, `switch`, `logout`,
 * `publish`, `unpublish`, `stream_extra`, `room_extra`, `renew_token`; the core's `relogin` (a fresh login
 * for a room the client was in) and `republish` (a stream of the app's the server lost);
 * `quiet_logout` (leaving a room the app gave up on while its login was in flight);
 * `abandoned` (a login the app gave up on after it was sent: an `ok` is answered with a logout,
 * unless the app is entering the room again meanwhile; not sent again after a reconnection); `plain` (messages, commands: a result only);
 * `left` (any of those sent for a room the app has since left by a switch: the server executes it
 * before the switch, in that life of the room, so its answer is a result only and touches no later
 * life of the room; sim seed 1000979).
 */
export type Kind =
  | { k: 'login'; room: string }
  | { k: 'relogin'; room: string }
  | { k: 'switch'; to: string }
  | { k: 'logout'; room: string }
  | { k: 'publish'; room: string; stream: string; extra: string }
  | { k: 'republish'; room: string; stream: string }
  | { k: 'unpublish'; room: string; stream: string }
  | { k: 'stream_extra'; room: string; stream: string; extra: string }
  | { k: 'room_extra'; room: string; key: string; value: string }
  | { k: 'renew_token'; token: string }
  | { k: 'quiet_logout' }
  | { k: 'abandoned'; room: string }
  | { k: 'plain' }
  | { k: 'members' }
  | { k: 'left' };

/** The room a login, relogin or switch enters (undefined for other requests). */
export function loginRoomOf(k: Kind): string | undefined {
  if (k.k === 'login' || k.k === 'relogin') return k.room;
  if (k.k === 'switch') return k.to;
  return undefined;
}

/** Whether this request takes the session out of `room` (a logout, or a switch from it). */
export function leaves(p: Pending, room: string): boolean {
  const f = p.frame;
  return (f.t === 'logout' && f.room === room) || (f.t === 'switch' && f.from === room);
}

/** Whether this request publishes, re-publishes or stops `stream` in `room`. */
export function touchesStream(k: Kind, room: string, stream: string): boolean {
  return (k.k === 'publish' || k.k === 'republish' || k.k === 'unpublish') && k.room === room && k.stream === stream;
}

/**
 * Where a request stands on the wire: `held` (never sent, no id yet), `inFlight` (sent on the
 * current connection with `id`, its answer awaited), `unsent` (sent with `id` on a connection
 * since lost: goes again, with the same id, once the session is back), `waiting` (answered
 * 1000004, nothing was done: goes again with `id` when the retry wait ends).
 */
export type Wire =
  | { w: 'held' }
  | { w: 'inFlight'; id: number }
  | { w: 'unsent'; id: number }
  | { w: 'waiting'; id: number };

/** One request waiting for its answer. */
export interface Pending {
  /** The frame to send (its `id` is written when it first goes out). */
  frame: ClientFrame;
  /** What it is, for what its answer does. */
  kind: Kind;
  /** The app call whose result it reports; undefined for the core's own requests. */
  handle: number | undefined;
  /** A room that must be in before the request may be sent. */
  needsRoom: string | undefined;
  /** Where it stands on the wire. */
  wire: Wire;
  /** Once answered 1000004: until when it is retried (then it fails as its kind fails). */
  retryDeadline?: number;
}

/** The waiting requests, in the order they were made. */
export class Requests {
  /** By key: the order in which the requests were made. */
  private readonly pending = new Map<number, Pending>();
  /** The key of the last request made. */
  private lastKey = 0;
  /** The wire id of the next request sent for the first time (never reused, across sessions). */
  private nextId = 1;
  /** Retry waits since the last answer other than 1000004 (the `n` of the retry backoff). */
  private retries = 0;

  /** The keys, in the order the requests were made. */
  private keys(): number[] {
    return [...this.pending.keys()].sort((a, b) => a - b);
  }

  /** A new request, held until {@link flush} sends it. */
  push(frame: ClientFrame, kind: Kind, handle: number | undefined, needsRoom: string | undefined): void {
    this.pending.set(++this.lastKey, { frame, kind, handle, needsRoom, wire: { w: 'held' } });
  }

  /**
   * The frames to send now, in order: first the requests that were in flight at a cut, again,
   * with their own ids, in id order; then the held ones `maySend` allows, in the order they were
   * made, each getting its id now — unless a request waits for its retry (its id must not be
   * overtaken).
   */
  flush(maySend: (p: Pending) => boolean): ClientFrame[] {
    const out: ClientFrame[] = [];
    const again = [...this.pending.values()]
      .filter((p) => p.wire.w === 'unsent')
      .sort((a, b) => (a.wire as { id: number }).id - (b.wire as { id: number }).id);
    for (const p of again) {
      p.wire = { w: 'inFlight', id: (p.wire as { id: number }).id };
      out.push({ ...p.frame });
    }
    if ([...this.pending.values()].some((p) => p.wire.w === 'waiting')) return out;
    const fresh = this.keys().filter((key) => {
      const p = this.pending.get(key) as Pending;
      return p.wire.w === 'held' && maySend(p);
    });
    for (const key of fresh) {
      const p = this.pending.get(key) as Pending;
      const id = this.nextId++;
      p.wire = { w: 'inFlight', id };
      p.frame = { ...p.frame, id };
      out.push({ ...p.frame });
    }
    return out;
  }

  /** Takes the request in flight that wire id `id` answers. */
  takeAnswered(id: number): Pending | undefined {
    return this.takeFirst((p) => p.wire.w === 'inFlight' && p.wire.id === id);
  }

  /** The request in flight with wire id `id`. */
  inFlight(id: number): Pending | undefined {
    return [...this.pending.values()].find((p) => p.wire.w === 'inFlight' && p.wire.id === id);
  }

  /** The request in flight with wire id `id` was answered 1000004: it waits, until `deadline`. */
  wait(id: number, deadline: number): void {
    const p = this.inFlight(id);
    if (!p) return;
    p.wire = { w: 'waiting', id };
    p.retryDeadline = deadline;
  }

  /** The `n` of the next retry wait (and counts it). */
  nextRetry(): number {
    return this.retries++;
  }

  /** An answer other than 1000004 came: the service is back, the retry backoff starts over. */
  served(): void {
    this.retries = 0;
  }

  /**
   * The retry wait is over: takes out the waiting requests whose deadline has come (in the order
   * they were made); the others go again with their ids, like requests cut in flight.
   */
  endWait(now: number): Pending[] {
    const expired = this.takeWhere(
      (p) => p.wire.w === 'waiting' && p.retryDeadline !== undefined && p.retryDeadline <= now,
    ).map(([, p]) => p);
    for (const p of this.pending.values()) if (p.wire.w === 'waiting') p.wire = { w: 'unsent', id: p.wire.id };
    return expired;
  }

  /** The connection is gone: what was in flight goes again; abandoned logins are forgotten. */
  cut(): void {
    this.retain((p) => p.kind.k !== 'abandoned');
    this.unsend();
  }

  /** Everything in flight goes again with its id (the session is being resumed or refused). */
  unsend(): void {
    for (const p of this.pending.values()) if (p.wire.w === 'inFlight') p.wire = { w: 'unsent', id: p.wire.id };
  }

  /** A new session: old ids mean nothing to it, so every request is held again. */
  forgetIds(): void {
    for (const p of this.pending.values()) p.wire = { w: 'held' };
  }

  /** The waiting requests, in the order they were made. */
  all(): Pending[] {
    return this.keys().map((k) => this.pending.get(k) as Pending);
  }

  /** Whether the app waits for the result of any request. */
  appWaits(): boolean {
    return [...this.pending.values()].some((p) => p.handle !== undefined);
  }

  /** Takes out every request `pick` chooses, with its key, in the order they were made. */
  takeWhere(pick: (p: Pending) => boolean): Array<[number, Pending]> {
    const out: Array<[number, Pending]> = [];
    for (const key of this.keys()) {
      const p = this.pending.get(key) as Pending;
      if (!pick(p)) continue;
      this.pending.delete(key);
      out.push([key, p]);
    }
    return out;
  }

  /** Takes out the first request (in the order they were made) that `pick` chooses. */
  takeFirst(pick: (p: Pending) => boolean): Pending | undefined {
    for (const key of this.keys()) {
      const p = this.pending.get(key) as Pending;
      if (!pick(p)) continue;
      this.pending.delete(key);
      return p;
    }
    return undefined;
  }

  /** Puts back a request taken out with {@link takeWhere}, at its place in the order. */
  putBack(key: number, p: Pending): void {
    this.pending.set(key, p);
  }

  /** Keeps only the requests `keep` chooses. */
  retain(keep: (p: Pending) => boolean): void {
    for (const [key, p] of this.pending) if (!keep(p)) this.pending.delete(key);
  }

  /** Forgets every request. */
  clear(): void {
    this.pending.clear();
  }
}
