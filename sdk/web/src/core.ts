/**
 * The Parlor client state machine, sans-IO (protocol §3–§7).
 *
 * Like the Rust client core (`crates/parlor-client-core`), this owns no socket, no timer and no
 * clock: the driver passes the current time (ms, any monotonic origin) into every call, feeds it
 * the app's commands, connection events and received frames, and takes {@link CoreOutput}s out
 * with {@link ParlorCore.pollOutput}. {@link ParlorCore.pollTimeout} says when
 * {@link ParlorCore.handleTimeout} must be called next. The reconnection jitter comes from an
 * injected random source. The same behaviour is pinned for both SDKs by the shared scenario files
 * in `tests/scenarios/`.
 *
 * {@link ParlorCore} only coordinates. Each part of the machine has its own file, with the same
 * name as in the Rust core, so a reader moves between them file by file: `connection` (connecting,
 * liveness, backoff, the session), `timer` (every deadline), `room` (a room's phase and its
 * transitions), `requests` (the queue and each request's wire state), `command` (the app's
 * calls), `answers` (`ok` / `error`), `retry` (requests answered 1000004, sent again until their
 * deadline), `resume` (acks, `resumed`, snapshots, fresh logins,
 * re-publishing), `channel` (events, kicks, notices), `view` (what the client knows of a room,
 * and diffs), `backoff`; and `decode` (the strict decoder, as the protocol crate's `decode.rs`).
 *
 * The decisions (where protocol §6–§7 leave a choice) are the Rust core's, point for point; see
 * the crate docs of `parlor-client-core`.
 *
 * @packageDocumentation
 */

import {
  ClientFrame,
  CoreEvent,
  CoreOutput,
  CoreRoomStateReason,
  ErrorCodes,
  RoomExtraInfo,
  ServerFrame,
  Stream,
  User,
  WireRoomConfig,
} from './types.js';
import { DecodedFrame, decodeServerFrame, decodeServerValue } from './decode.js';
import { Connection, attemptDue, handleClosed, handleNetworkOnline, handleRefused, handleOpened, heard, lost, maybeEnd, onWelcome, pingDue, reconnectFailed, shutdown } from './connection.js';
import { TimerTable } from './timer.js';
import { Phase, Room, isAway, isIn } from './room.js';
import { Kind, Pending, Requests } from './requests.js';
import * as command from './command.js';
import { onError, onOk, removeRoom } from './answers.js';
import { onResumeDone, onResumed, onSnapshot } from './resume.js';
import { retryDue } from './retry.js';
import { onEvent, onKicked, onTokenWillExpire } from './channel.js';
import { byKey, sortedValues } from './view.js';

/** Settings of the core; every timeout is a setting with the protocol's default. */
export interface CoreConfig {
  /** The app id sent in `hello`. Default 1. */
  appId?: number;
  /** Heartbeat interval until a `welcome` / `resumed` says otherwise. Default 10 000 ms. */
  heartbeatMs?: number;
  /** Login timeout, connecting included (§7). Default 30 000 ms. */
  loginTimeoutMs?: number;
  /** Reconnect window (§7). Default 300 000 ms. */
  reconnectWindowMs?: number;
  /** Random source in `[0, 1)` for the reconnection jitter. Default `Math.random`. */
  random?: () => number;
}

/** Login settings in the SDK's terms. Both spellings are accepted. */
export interface LoginConfig {
  /** Maximum members (0 = no limit), honoured from the user who creates the room. */
  maxMemberCount?: number;
  /** Whether to receive the room's user updates. Default true. */
  userUpdate?: boolean;
  /** Wire spelling of `maxMemberCount`. */
  max_members?: number;
  /** Wire spelling of `userUpdate`. */
  user_status_notify?: boolean;
}

/** A room's phase inside the core, as the app may care about it. */
export type CorePhase = 'LOGINING' | 'ACTIVE' | 'RECONNECTING';

/** Normalizes app login settings to the wire's `config`. */
export function wireConfig(c: LoginConfig | undefined): WireRoomConfig {
  const cfg = c ?? {};
  const max = cfg.max_members ?? cfg.maxMemberCount ?? 0;
  const notify = cfg.user_status_notify ?? cfg.userUpdate ?? true;
  const n = typeof max === 'number' && Number.isFinite(max) ? max : 0;
  return { max_members: Math.max(0, Math.floor(n)), user_status_notify: notify !== false };
}

/** @internal The state of one core, shared by its modules. */
export interface Machine {
  /** The app id sent in `hello`. */
  readonly appId: number;
  /** How long a login may take, connecting included (ms). */
  readonly loginTimeoutMs: number;
  /** How long after a loss the client keeps trying to get its rooms back (ms). */
  readonly reconnectWindowMs: number;
  /** Where the reconnect jitter comes from. */
  readonly random: () => number;
  /** Outputs not yet taken by `pollOutput`. */
  readonly out: CoreOutput[];
  /** The connection and its session. */
  readonly conn: Connection;
  /** Every deadline. */
  readonly timers: TimerTable;
  /** The session's user, named by the first login. */
  user: User | undefined;
  /** The session's token (sent in `hello`), replaced by `renewToken`. */
  token: string;
  /** The last applied seq of the session's direct channel. */
  directSeq: number;
  /** The rooms the client is in, logging in to, or away from, by id. */
  readonly rooms: Map<string, Room>;
  /** The last state reported to the app for each room ever seen. */
  readonly states: Map<string, CoreRoomStateReason>;
  /** Requests waiting for their answer. */
  readonly requests: Requests;
  /** The room the app last published each stream in, as it asked (kept until it stops it). */
  readonly streamRooms: Map<string, string>;
}

/** @internal The `extendedData` of a state change that has none: `{}`. */
export const NO_DATA = (): Record<string, unknown> => ({});

/** @internal Sends `f` on the current connection. */
export function send(m: Machine, f: ClientFrame): void {
  m.out.push({ send: f });
}

/** @internal Tells the app. */
export function emit(m: Machine, e: CoreEvent): void {
  m.out.push({ event: e });
}

/** @internal Tells the app `room` is now `reason` (and remembers it for `roomState`). */
export function report(
  m: Machine,
  room: string,
  reason: CoreRoomStateReason,
  errorCode: number,
  extendedData: Record<string, unknown>,
): void {
  m.states.set(room, reason);
  emit(m, { type: 'roomStateChanged', room, reason, errorCode, extendedData });
}

/** @internal Reports the outcome of the app call `handle` (nothing for the core's own requests). */
export function result(m: Machine, handle: number | undefined, errorCode: number, messageId?: string): void {
  if (handle === undefined) return;
  const e: CoreEvent = { type: 'result', handle, errorCode };
  if (messageId !== undefined) e.messageId = messageId;
  emit(m, e);
}

/** @internal The session user's id ("" before the first login). */
export function me(m: Machine): string {
  return m.user?.id ?? '';
}

/** @internal A copy of the session's user. */
export function selfUser(m: Machine): User {
  return m.user ? { id: m.user.id, name: m.user.name } : { id: '', name: '' };
}

/** @internal The ids of every room, in id order. */
export function roomIds(m: Machine): string[] {
  return [...m.rooms.keys()].sort(byKey);
}

/** @internal The ids of the rooms whose phase `pick` chooses, in id order. */
export function roomsWhere(m: Machine, pick: (p: Phase) => boolean): string[] {
  return roomIds(m).filter((id) => pick((m.rooms.get(id) as Room).phase));
}

/** @internal Whether any room is away (RECONNECTING): the reconnect window runs while one is. */
export function anyAway(m: Machine): boolean {
  return [...m.rooms.values()].some((r) => isAway(r.phase));
}

/** @internal No room is away any more: the reconnect window is over. */
export function stopWindowIfBack(m: Machine): void {
  if (!anyAway(m)) m.timers.stop('reconnectWindow');
}

/** @internal Adds a room the app asks to enter, with its login deadline. */
export function addLoginingRoom(m: Machine, now: number, room: string, r: Room): void {
  m.rooms.set(room, r);
  m.timers.set({ login: room }, now + m.loginTimeoutMs);
}

/** @internal Takes a room out of the core (its login deadline too). */
export function forgetRoom(m: Machine, room: string): Room | undefined {
  m.timers.stop({ login: room });
  const r = m.rooms.get(room);
  m.rooms.delete(room);
  return r;
}

/** @internal Queues a request; it goes out now if it may, else when connection and room allow. */
export function request(
  m: Machine,
  frame: ClientFrame,
  kind: Kind,
  handle: number | undefined,
  needsRoom: string | undefined,
): void {
  m.requests.push(frame, kind, handle, needsRoom);
  flush(m);
}

/** @internal Sends what may go (see `Requests.flush`), when the session is ready. */
export function flush(m: Machine): void {
  if (m.conn.state !== 'ready') return;
  const maySend = (p: Pending) => {
    if (p.needsRoom === undefined) return true;
    const r = m.rooms.get(p.needsRoom);
    return r !== undefined && isIn(r.phase);
  };
  for (const f of m.requests.flush(maySend)) send(m, f);
}

/**
 * The client room state machine. One instance is one client: one user, one session at a time,
 * up to the server's limit of rooms. Every method takes `now` in ms.
 */
export class ParlorCore {
  private readonly m: Machine;

  constructor(config: CoreConfig = {}) {
    this.m = {
      appId: config.appId ?? 1,
      loginTimeoutMs: config.loginTimeoutMs ?? 30_000,
      reconnectWindowMs: config.reconnectWindowMs ?? 300_000,
      random: config.random ?? Math.random,
      out: [],
      conn: new Connection(Math.max(1, config.heartbeatMs ?? 10_000)),
      timers: new TimerTable(),
      user: undefined,
      token: '',
      directSeq: 0,
      rooms: new Map(),
      states: new Map(),
      requests: new Requests(),
      streamRooms: new Map(),
    };
  }

  // ------------------------------------------------------------------ introspection

  /** The last reported state of `room` (`LOGOUT` for a room never seen). */
  roomState(room: string): CoreRoomStateReason {
    return this.m.states.get(room) ?? 'LOGOUT';
  }

  /** The rooms the client is in or logging in to, sorted. */
  roomIds(): string[] {
    return roomIds(this.m);
  }

  /** The others in a room, as the client knows them. */
  roomUsers(room: string): User[] {
    const r = this.m.rooms.get(room);
    return r ? sortedValues(r.view.users) : [];
  }

  /** Everyone in a room (the client too) as last told: the login's `online`, then each count. */
  roomOnline(room: string): number {
    return this.m.rooms.get(room)?.view.online ?? 0;
  }

  /** The others' streams in a room, as the client knows them. */
  roomStreams(room: string): Stream[] {
    const r = this.m.rooms.get(room);
    const id = me(this.m);
    return r ? sortedValues(r.view.streams).filter((s) => s.user.id !== id) : [];
  }

  /** The room's extra info, as the client knows it. */
  roomExtraInfo(room: string): RoomExtraInfo[] {
    const r = this.m.rooms.get(room);
    return r ? sortedValues(r.view.extra) : [];
  }

  /**
   * The room in which the app publishes `stream`: where the server confirmed it, else where the
   * app last asked to publish it (until it stops it).
   */
  roomOfOwnStream(stream: string): string | undefined {
    for (const id of roomIds(this.m)) if (this.m.rooms.get(id)?.own.has(stream)) return id;
    return this.m.streamRooms.get(stream);
  }

  /** The current heartbeat interval (ms). */
  currentHeartbeatMs(): number {
    return this.m.conn.heartbeatMs;
  }

  /** The next output, if any. */
  pollOutput(): CoreOutput | undefined {
    return this.m.out.shift();
  }

  /** When {@link handleTimeout} must be called next (absolute ms), or `undefined`. */
  pollTimeout(): number | undefined {
    return this.m.timers.next();
  }

  /** Time has come: call at (or after) {@link pollTimeout}. */
  handleTimeout(now: number): void {
    const m = this.m;
    if (m.timers.expired('retry', now)) retryDue(m, now);
    if (m.timers.expired('reconnectWindow', now)) {
      m.timers.stop('reconnectWindow');
      reconnectFailed(m, now);
    }
    for (const room of m.timers.expiredLogins(now)) {
      const code = ErrorCodes.LOGIN_TIMEOUT;
      removeRoom(m, room, 'LOGIN_FAILED', code, NO_DATA(), code);
    }
    if (m.timers.expired('liveness', now)) lost(m, now, true);
    else if (m.timers.expired('attempt', now)) attemptDue(m, now);
    if (m.conn.hasSession() && m.timers.expired('ping', now)) pingDue(m, now);
    maybeEnd(m);
  }

  /**
   * The network is back (the browser's `online` event): a connection attempt waiting for its
   * backoff starts at once.
   */
  handleNetworkOnline(now: number): void {
    handleNetworkOnline(this.m, now);
  }

  // ------------------------------------------------------------------ app commands

  /**
   * `login_room`: LOGINING at once, then LOGINED or LOGIN_FAILED; the outcome is reported as a
   * `result` event with `handle`. The first login of a session names the user and the token.
   */
  loginRoom(now: number, a: { room: string; user: User; token: string; config?: LoginConfig; handle?: number }): void {
    command.loginRoom(this.m, now, a);
  }

  /** `logout_room`: LOGOUT when answered; LOGOUT_FAILED 1002002 for a room the client is not in. */
  logoutRoom(now: number, a: { room: string; handle?: number }): void {
    command.logoutRoom(this.m, now, a);
  }

  /**
   * `switch_room`: LOGOUT for `from` at once (the server leaves it in the same step), LOGINING
   * for `to`, then LOGINED or LOGIN_FAILED for `to`.
   */
  switchRoom(now: number, a: { from: string; to: string; token?: string; config?: LoginConfig; handle?: number }): void {
    command.switchRoom(this.m, now, a);
  }

  /** `publish` a stream (signalling only). */
  publish(now: number, a: { room: string; stream: string; extra?: string; handle?: number }): void {
    command.publish(this.m, now, a);
  }

  /** `unpublish` a stream; it is never re-published after this, whatever the answer. */
  unpublish(now: number, a: { room: string; stream: string; handle?: number }): void {
    command.unpublish(this.m, now, a);
  }

  /** `stream_extra`: set a published stream's extra info. */
  setStreamExtra(now: number, a: { room: string; stream: string; extra: string; handle?: number }): void {
    command.setStreamExtra(this.m, now, a);
  }

  /** `room_extra`: set one key of the room's extra info. */
  setRoomExtra(now: number, a: { room: string; key: string; value: string; handle?: number }): void {
    command.setRoomExtra(this.m, now, a);
  }

  /** `broadcast` or `barrage` a message; the result carries `messageId`. */
  message(now: number, a: { kind: 'broadcast' | 'barrage'; room: string; message: string; handle?: number }): void {
    command.message(this.m, now, a);
  }

  /** `command`: a custom command to some users (empty `to`: everyone else in the room). */
  command(now: number, a: { room: string; to: string[]; command: string; handle?: number }): void {
    command.command(this.m, now, a);
  }

  /** `members`: one page of a room's member list; the result carries `members`. */
  queryRoomMemberList(now: number, a: { room: string; nextFlag: string; count: number; handle?: number }): void {
    command.members(this.m, now, a);
  }

  /** `renew_token`: replaces the session's token (and every room's) when answered. */
  renewToken(now: number, a: { token: string; handle?: number }): void {
    command.renewToken(this.m, now, a);
  }

  /**
   * Ends the session (`bye` when ready) and forgets every room and request without reporting
   * anything: for tearing the engine down.
   */
  shutdown(now: number): void {
    shutdown(this.m, now);
  }

  // ------------------------------------------------------------------ connection events

  /** The connection asked for by `connect` is open. */
  handleOpened(now: number): void {
    handleOpened(this.m, now);
  }

  /**
   * A connect attempt was refused with HTTP 503 and `Retry-After` (protocol §9.7): as
   * {@link handleClosed}, the next attempt not before the server's slot.
   */
  handleRefused(now: number, retryAfterMs: number): void {
    handleRefused(this.m, now, retryAfterMs);
  }

  /** The connection closed, or a connect attempt failed (any close code). */
  handleClosed(now: number): void {
    handleClosed(this.m, now);
  }

  // ------------------------------------------------------------------ frames

  /**
   * A text frame arrived. It is decoded by the rules of the Rust decoder (see `decode.ts`); a
   * frame that does not decode, or of an unknown type, is ignored. Returns whether it was applied.
   */
  handleText(now: number, text: string): boolean {
    const d = decodeServerFrame(text);
    if (d.error) return false;
    this.apply(now, d.frame);
    return true;
  }

  /** A parsed frame arrived: decoded as {@link handleText} does. Returns whether it was applied. */
  handleFrame(now: number, f: ServerFrame): boolean {
    const d = decodeServerValue(f);
    if (d.error) return false;
    this.apply(now, d.frame);
    return true;
  }

  private apply(now: number, f: DecodedFrame): void {
    const m = this.m;
    const c = m.conn.state;
    if (c === 'idle' || c === 'waiting' || c === 'connecting') return;
    heard(m, now);
    switch (f.t) {
      case 'welcome':
        onWelcome(m, now, f);
        break;
      case 'resumed':
        onResumed(m, now, f);
        break;
      case 'resume_done':
        onResumeDone(m);
        break;
      case 'pong':
        break;
      case 'ok':
        onOk(m, f);
        break;
      case 'error':
        onError(m, now, f);
        break;
      case 'kicked':
        onKicked(m, f);
        break;
      case 'event':
        onEvent(m, f);
        break;
      case 'snapshot':
        onSnapshot(m, f);
        break;
      case 'token_will_expire':
        onTokenWillExpire(m, f);
        break;
    }
    maybeEnd(m);
  }
}
