/**
 * One room the client is in or logging in to: its phase, as a union whose variants say
 * everything the core must know about it, and every phase change in one place (as the Rust
 * core's `room.rs`).
 *
 * - `loginRoom` / `switchRoom` → `logining`; its `ok` (or, after a cut, the snapshot `resumed`
 *   promised) → `active`.
 * - A loss: `active` / `replaying` → `reconnecting` (a room still logging in stays `logining`).
 * - `resumed` with `replay` / `snapshot` → `replaying`, and at `resume_done` → `active`;
 *   `resumed` without the room, or a new session → `relogining`, whose `ok` (or snapshot) →
 *   `active`.
 *
 * Leaving (logout, kick, failure, window end) removes the room from the core altogether.
 *
 * @packageDocumentation
 */

import { RoomExtraInfo, WireRoomConfig, WireSeqs } from './types.js';
import { WireRoomState } from './decode.js';
import { RoomView, emptyView } from './view.js';

/**
 * What will answer a login in flight: its own `ok` (or `error`), or — the connection was lost
 * before the `ok` and `resumed` said the server has the session in the room (`"snapshot"`) —
 * the `snapshot` that follows.
 */
export type LoginAnswer = 'ok' | 'snapshot';

/**
 * Where a room stands:
 * - `logining`: the app asked to enter; the login is sent or waits for a connection, under its
 *   login deadline; no epoch yet;
 * - `active`: in the room (LOGINED or RECONNECTED): events are applied, requests go out;
 * - `replaying`: back by a resume (RECONNECTED), the replay or snapshot being applied; at
 *   `resume_done` the app's streams the server lost are published again. Otherwise as `active`;
 * - `reconnecting`: the connection was lost while in (RECONNECTING); waiting for a resume;
 * - `relogining`: still away, the server no longer has us there (new session, or `resumed` left
 *   the room out), and a fresh login is in flight.
 */
export type Phase =
  | { p: 'logining'; answer: LoginAnswer }
  | { p: 'active' }
  | { p: 'replaying' }
  | { p: 'reconnecting' }
  | { p: 'relogining'; answer: LoginAnswer };

/** In the room: events are applied and requests for the room may go out. */
export function isIn(ph: Phase): boolean {
  return ph.p === 'active' || ph.p === 'replaying';
}
/** Entering for the app: LOGINING was reported, LOGINED or LOGIN_FAILED will be. */
export function isLogining(ph: Phase): boolean {
  return ph.p === 'logining';
}
/** Away: RECONNECTING was reported, RECONNECTED or RECONNECT_FAILED will be. */
export function isAway(ph: Phase): boolean {
  return ph.p === 'reconnecting' || ph.p === 'relogining';
}
/** A login for the room is (or is to be) in flight: the app's own, or a fresh one while away. */
export function isLoggingIn(ph: Phase): boolean {
  return ph.p === 'logining' || ph.p === 'relogining';
}
/** Away, with a fresh login in flight. */
export function isRelogining(ph: Phase): boolean {
  return ph.p === 'relogining';
}
/** Whether `resumed` said the room's snapshot answers its login. */
export function answeredBySnapshot(ph: Phase): boolean {
  return (ph.p === 'logining' || ph.p === 'relogining') && ph.answer === 'snapshot';
}

/** One room. */
export class Room {
  /** Where the room stands; changed only by the methods below. */
  private ph: Phase = { p: 'logining', answer: 'ok' };
  /** The server's room session, acked in `resume`; undefined until logged in. */
  epoch: string | undefined = undefined;
  /** The last applied seq of the room channel. */
  seqRoom = 0;
  /** The last applied seq of the users channel. */
  seqUsers = 0;
  /** What the client knows of the room (the others, every stream, extra info). */
  view: RoomView = emptyView();
  /**
   * The room-channel seq of the change each key of `view.extra` last took, for the keys changed
   * since the view's snapshot; a key not here was last changed at or before `extraFloor`, the
   * room seq of that snapshot. Tells whether the `ok` of the app's own set is older than what
   * the view holds ({@link Room.ownExtraSet}).
   */
  readonly extraSeq = new Map<string, number>();
  /** See `extraSeq`. */
  private extraFloor = 0;
  /**
   * Streams the app publishes here (id → extra), as it last asked and the server confirmed:
   * what is published again when the server lost them.
   */
  readonly own = new Map<string, string>();
  /**
   * `resumed` named the room while its login was still held: the server has us there from
   * before (a login given up on a stalled path that got through later, say). If that held login
   * never lands (it fails, times out, or the app logs out first), the core leaves the room
   * quietly, as for any room the server has and the app gave up.
   */
  onServer = false;

  /**
   * A room the app just asked to enter (login or switch), with the login settings sent again
   * with every fresh login, and the token for its logins.
   */
  constructor(
    readonly config: WireRoomConfig,
    public token: string | undefined,
  ) {}

  /** Where the room stands. */
  get phase(): Phase {
    return this.ph;
  }

  /** The login (or fresh login) was answered with the room's state; returns the old view. */
  entered(state: WireRoomState, seq: WireSeqs, view: RoomView): RoomView {
    this.ph = { p: 'active' };
    this.onServer = false;
    return this.atState(state, seq, view);
  }

  /** A snapshot replaced what the client knew: new epoch, seqs and view; returns the old view. */
  atState(state: WireRoomState, seq: WireSeqs, view: RoomView): RoomView {
    const old = this.view;
    this.epoch = state.room_session;
    this.seqRoom = seq.room ?? 0;
    this.seqUsers = seq.users ?? 0;
    this.extraSeq.clear();
    this.extraFloor = this.seqRoom;
    this.view = view;
    return old;
  }

  /** The connection was lost: a room that was in is now away. Returns whether it was in. */
  connectionLost(): boolean {
    if (isIn(this.ph)) {
      this.ph = { p: 'reconnecting' };
      return true;
    }
    return false;
  }

  /** `resumed` kept the room (replay or snapshot): back in, streams checked at `resume_done`. */
  resumed(): void {
    this.ph = { p: 'replaying' };
  }

  /** Back in without a replay to wait for (our own logout reached the server before the cut). */
  back(): void {
    this.ph = { p: 'active' };
  }

  /** The replay is over, or the room is back by a fresh login. Returns whether it was replaying. */
  replayDone(): boolean {
    if (this.ph.p === 'replaying') {
      this.ph = { p: 'active' };
      return true;
    }
    return false;
  }

  /** A fresh login for the away room goes out. */
  relogining(): void {
    this.ph = { p: 'relogining', answer: 'ok' };
  }

  /** `resumed` said the server has the session in this room whose login was not answered. */
  answerBySnapshot(): void {
    if (this.ph.p === 'logining' || this.ph.p === 'relogining') this.ph = { p: this.ph.p, answer: 'snapshot' };
  }

  /**
   * The `ok` of the app's own room extra set (`item`, made the room channel's event `seq`): when
   * a later change of the key is already in the view (the `ok` came after the replay that carried
   * it), returns the view's item if it differs, for the app to be told; otherwise the set is the
   * key's latest change and goes into the view (the server never echoes a client's own change
   * live). `item.timeMs` is unknown here (0): a later snapshot reports the key again with its time.
   */
  ownExtraSet(item: RoomExtraInfo, seq: number | undefined): RoomExtraInfo | undefined {
    if (seq === undefined) return undefined;
    const last = this.extraSeq.get(item.key) ?? this.extraFloor;
    if (last > seq) {
      const now = this.view.extra.get(item.key);
      return now !== undefined && now.value !== item.value ? now : undefined;
    }
    // (At `last === seq` the view holds this very change, from a replay, with its time.)
    if (last < seq) {
      this.extraSeq.set(item.key, seq);
      this.view.extra.set(item.key, item);
    }
    return undefined;
  }

  /** Raises the channel positions to those an `ok` names; not for a room still logging in. */
  sawSeqs(seq: WireSeqs): void {
    if (isLogining(this.ph)) return;
    if (seq.room !== undefined) this.seqRoom = Math.max(this.seqRoom, seq.room);
    if (seq.users !== undefined) this.seqUsers = Math.max(this.seqUsers, seq.users);
  }
}
