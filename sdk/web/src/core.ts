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
 * The decisions (where protocol §6–§7 leave a choice) are the Rust core's, point for point:
 *
 * - One session for all rooms; the first `loginRoom` names the user and the `hello` token. A
 *   later login as another user is LOGIN_FAILED 1002077. With no room left and no app call
 *   outstanding, the core sends `bye` and disconnects.
 * - A login with no connection connects at once; every later attempt waits
 *   `random × min(10 s, 0.5 s × 2^n)`, `n` from 0, reset by `welcome` / `resumed`.
 * - Every frame from the server counts as life; nothing heard for two heartbeat intervals
 *   (also a connect attempt that neither opens nor fails) means the connection is dead.
 * - `resumed` reports `replay` / `snapshot` rooms RECONNECTED at once (the replayed events or the
 *   snapshot's diff follow), `kicked:<code>` rooms KICK_OUT. A room the client acked that
 *   `resumed` leaves out is no longer ours on the server (protocol §9.3): unless our own logout
 *   explains it, the client logs in to it again on the same session (after `resume_done`) and
 *   reports it RECONNECTED at the `ok`, with the diff. A room whose login went out but was never
 *   answered is acked with an empty epoch; a `snapshot` for it is taken as the login's answer.
 *   Requests go out again after `resume_done`: in-flight ones first (with their ids, in id
 *   order), then the held ones.
 * - A refused resume is followed on the same connection by `hello` and a `login` per room; each
 *   room is RECONNECTED at its `ok`, then the diff. Requests get new ids in the new session.
 * - Requests for a room that is not in (LOGINING, RECONNECTING, resuming) are held. Requests for
 *   a room the client is not in fail at once with 1009005. A request's `id` is given when it is
 *   first sent, not when the app makes it, so ids increase on the wire even when a held request
 *   goes out after a later one (the server treats an id not above the last as a repeat, §9.1).
 * - Channel events at or below the last applied seq are dropped; gaps are applied anyway.
 *   Updates are computed against the client's view (an ADD of a known user is not reported);
 *   events about the client's own user and streams, and its own messages (a replay carries
 *   them, §9.3), update the view and the acks but are never reported.
 * - After LOGINED: users ADD, streams ADD and (a Parlor addition) one `roomExtraInfoUpdate`, each
 *   only when non-empty, sorted by id / key. Diffs: users DELETE, users ADD, streams DELETE,
 *   streams ADD, stream extra, room extra, online count.
 *
 * @packageDocumentation
 */

import { backoffDelayMs } from './backoff.js';
import {
  Ack,
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
  WireRoomExtraItem,
} from './types.js';

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

/** A room's phase inside the core. */
export type CorePhase = 'LOGINING' | 'ACTIVE' | 'RECONNECTING';

/** The client's view of a room: the others, every stream (its own too), extra info. */
interface RoomView {
  users: Map<string, User>;
  streams: Map<string, Stream>;
  extra: Map<string, RoomExtraInfo>;
  online: number;
}

interface Room {
  phase: CorePhase;
  config: WireRoomConfig;
  token: string | undefined;
  loginDeadline: number | undefined;
  epoch: string | undefined;
  seqRoom: number;
  seqUsers: number;
  view: RoomView;
  /** Streams the app publishes here (id → extra), as it last asked and the server confirmed. */
  own: Map<string, string>;
  /** A fresh login after a refused resume is in flight. */
  relogin: boolean;
  /** After this reconnection completes, re-publish own streams the server no longer has. */
  republishCheck: boolean;
  /**
   * `resumed` said the server has this room (whose login `ok` was lost): its snapshot is the
   * login's answer.
   */
  loginBySnapshot: boolean;
}

type Kind =
  | { k: 'login'; room: string }
  | { k: 'relogin'; room: string }
  | { k: 'switch'; to: string }
  | { k: 'logout'; room: string }
  | { k: 'publish'; room: string; stream: string; extra: string }
  | { k: 'republish'; room: string; stream: string }
  | { k: 'unpublish'; room: string; stream: string }
  | { k: 'stream_extra'; room: string; stream: string; extra: string }
  | { k: 'renew_token'; token: string }
  /** Logout of a room the app gave up on while its login was in flight. */
  | { k: 'abandon' }
  /**
   * A login (or switch) the app gave up on after it was sent: if the server answers `ok`, leave
   * the room again. Not sent again after a reconnection.
   */
  | { k: 'abandoned'; room: string }
  | { k: 'plain' };

interface Pending {
  frame: ClientFrame;
  kind: Kind;
  handle: number | undefined;
  /** A room that must be in (ACTIVE) before the request may be sent. */
  needsRoom: string | undefined;
  sent: boolean;
  /** The `id` it went out with (kept when it goes again after a resume); undefined until sent. */
  wire: number | undefined;
}

type Conn =
  | { s: 'idle' }
  | { s: 'waiting'; at: number }
  | { s: 'connecting' }
  | { s: 'handshake' }
  | { s: 'resuming' }
  | { s: 'ready' };

const NO_DATA = (): Record<string, unknown> => ({});

function byKey(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
function sortedValues<V>(m: Map<string, V>): V[] {
  return [...m.keys()].sort(byKey).map((k) => m.get(k) as V);
}
function str(v: unknown, dflt = ''): string {
  return typeof v === 'string' ? v : dflt;
}
function num(v: unknown, dflt = 0): number {
  return typeof v === 'number' && Number.isFinite(v) ? v : dflt;
}
function optNum(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isFinite(v) ? v : undefined;
}
function obj(v: unknown): Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v)
    ? (v as Record<string, unknown>)
    : {};
}
function toUser(v: unknown): User {
  const o = obj(v);
  return { id: str(o.id), name: str(o.name) };
}
function toUsers(v: unknown): User[] {
  return Array.isArray(v) ? v.map(toUser) : [];
}
function toStream(v: unknown): Stream {
  const o = obj(v);
  return { id: str(o.id), user: toUser(o.user), extra: str(o.extra) };
}
function toStreams(v: unknown): Stream[] {
  return Array.isArray(v) ? v.map(toStream) : [];
}
function toExtra(v: unknown): RoomExtraInfo {
  const o = obj(v) as Partial<WireRoomExtraItem>;
  return { key: str(o.key), value: str(o.value), user: toUser(o.user), timeMs: num(o.time_ms) };
}
function sameExtra(a: RoomExtraInfo | undefined, b: RoomExtraInfo): boolean {
  return (
    a !== undefined &&
    a.key === b.key &&
    a.value === b.value &&
    a.user.id === b.user.id &&
    a.user.name === b.user.name &&
    a.timeMs === b.timeMs
  );
}

/** The room a login, switch or relogin request logs in to (undefined for other requests). */
function loginRoomOf(k: Kind): string | undefined {
  if (k.k === 'login' || k.k === 'relogin') return k.room;
  if (k.k === 'switch') return k.to;
  return undefined;
}

/** The code of a `kicked:<code>` status of `resumed`. */
function kickedCode(status: string): number {
  const parsed = Number.parseInt(status.slice('kicked:'.length).trim(), 10);
  return Number.isFinite(parsed) && parsed >= 0 ? parsed : ErrorCodes.KICKED_BY_SERVER;
}

function emptyView(): RoomView {
  return { users: new Map(), streams: new Map(), extra: new Map(), online: 0 };
}

/** The view carried by a login `ok` or a `snapshot` (others only; every stream). */
function viewFromState(f: Record<string, unknown>, me: string): RoomView {
  const v = emptyView();
  for (const u of toUsers(f.users)) if (u.id !== me) v.users.set(u.id, u);
  for (const s of toStreams(f.streams)) v.streams.set(s.id, s);
  for (const e of Array.isArray(f.extra) ? f.extra.map(toExtra) : []) v.extra.set(e.key, e);
  v.online = num(f.online);
  return v;
}

/** The exact updates that turn view `a` into view `b`, as the app must see them. */
function diffViews(a: RoomView, b: RoomView, room: string, me: string): CoreEvent[] {
  const out: CoreEvent[] = [];
  const gone = sortedValues(a.users).filter((u) => u.id !== me && !b.users.has(u.id));
  const came = sortedValues(b.users).filter((u) => u.id !== me && !a.users.has(u.id));
  if (gone.length) out.push({ type: 'roomUserUpdate', room, updateType: 'DELETE', users: gone });
  if (came.length) out.push({ type: 'roomUserUpdate', room, updateType: 'ADD', users: came });
  // A stream that changed publisher counts as deleted and added.
  const same = (x: Stream, y: Stream | undefined) => y !== undefined && x.user.id === y.user.id;
  const othersA = sortedValues(a.streams).filter((s) => s.user.id !== me);
  const othersB = sortedValues(b.streams).filter((s) => s.user.id !== me);
  const sGone = othersA.filter((s) => !same(s, b.streams.get(s.id)));
  const sCame = othersB.filter((s) => !same(s, a.streams.get(s.id)));
  const sChanged = othersB.filter((s) => {
    const o = a.streams.get(s.id);
    return same(s, o) && o !== undefined && o.extra !== s.extra;
  });
  if (sGone.length) {
    out.push({ type: 'roomStreamUpdate', room, updateType: 'DELETE', streams: sGone, extendedData: {} });
  }
  if (sCame.length) {
    out.push({ type: 'roomStreamUpdate', room, updateType: 'ADD', streams: sCame, extendedData: {} });
  }
  if (sChanged.length) out.push({ type: 'roomStreamExtraInfoUpdate', room, streams: sChanged });
  const extra = sortedValues(b.extra).filter((e) => !sameExtra(a.extra.get(e.key), e));
  if (extra.length) out.push({ type: 'roomExtraInfoUpdate', room, extra });
  return out;
}

/** Normalizes app login settings to the wire's `config`. */
export function wireConfig(c: LoginConfig | undefined): WireRoomConfig {
  const cfg = c ?? {};
  const max = cfg.max_members ?? cfg.maxMemberCount ?? 0;
  const notify = cfg.user_status_notify ?? cfg.userUpdate ?? true;
  return { max_members: Math.max(0, Math.floor(num(max))), user_status_notify: notify !== false };
}

/**
 * The client room state machine. One instance is one client: one user, one session at a time,
 * up to the server's limit of rooms. Every method takes `now` in ms.
 */
export class ParlorCore {
  private readonly appId: number;
  private readonly loginTimeoutMs: number;
  private readonly reconnectWindowMs: number;
  private readonly random: () => number;

  private readonly out: CoreOutput[] = [];
  private conn: Conn = { s: 'idle' };
  private attempt = 0;
  private session: { id: string; resumeToken: string } | undefined;
  private user: User | undefined;
  private token = '';
  private heartbeatMs: number;
  private nextPing: number | undefined;
  private lastHeard = 0;
  private windowEnd: number | undefined;
  private directSeq = 0;
  private nextId = 1;
  /** Pending requests are keyed in the order the app (or the core) made them. */
  private nextKey = 0;
  private readonly rooms = new Map<string, Room>();
  private readonly states = new Map<string, CoreRoomStateReason>();
  private readonly pending = new Map<number, Pending>();

  constructor(config: CoreConfig = {}) {
    this.appId = config.appId ?? 1;
    this.heartbeatMs = Math.max(1, config.heartbeatMs ?? 10_000);
    this.loginTimeoutMs = config.loginTimeoutMs ?? 30_000;
    this.reconnectWindowMs = config.reconnectWindowMs ?? 300_000;
    this.random = config.random ?? Math.random;
  }

  // ------------------------------------------------------------------ introspection

  /** The last reported state of `room` (`LOGOUT` for a room never seen). */
  roomState(room: string): CoreRoomStateReason {
    return this.states.get(room) ?? 'LOGOUT';
  }

  /** The rooms the client is in or logging in to, sorted. */
  roomIds(): string[] {
    return [...this.rooms.keys()].sort(byKey);
  }

  /** The others in a room, as the client knows them. */
  roomUsers(room: string): User[] {
    const r = this.rooms.get(room);
    return r ? sortedValues(r.view.users) : [];
  }

  /** The others' streams in a room, as the client knows them. */
  roomStreams(room: string): Stream[] {
    const r = this.rooms.get(room);
    const me = this.me();
    return r ? sortedValues(r.view.streams).filter((s) => s.user.id !== me) : [];
  }

  /** The room's extra info, as the client knows it. */
  roomExtraInfo(room: string): RoomExtraInfo[] {
    const r = this.rooms.get(room);
    return r ? sortedValues(r.view.extra) : [];
  }

  /** The room in which the app publishes `stream`, if any. */
  roomOfOwnStream(stream: string): string | undefined {
    for (const id of this.roomIds()) if (this.rooms.get(id)?.own.has(stream)) return id;
    return undefined;
  }

  /** The current heartbeat interval (ms). */
  currentHeartbeatMs(): number {
    return this.heartbeatMs;
  }

  // ------------------------------------------------------------------ outputs and time

  /** The next output, or `undefined` when there is none. */
  pollOutput(): CoreOutput | undefined {
    return this.out.shift();
  }

  /** When {@link handleTimeout} must be called next (absolute ms), or `undefined`. */
  pollTimeout(): number | undefined {
    let t: number | undefined;
    const put = (x: number | undefined) => {
      if (x !== undefined && (t === undefined || x < t)) t = x;
    };
    put(this.windowEnd);
    for (const r of this.rooms.values()) put(r.loginDeadline);
    switch (this.conn.s) {
      case 'waiting':
        put(this.conn.at);
        break;
      case 'connecting':
      case 'handshake':
      case 'resuming':
      case 'ready':
        put(this.livenessDeadline());
        put(this.nextPing);
        break;
      default:
        break;
    }
    return t;
  }

  private livenessDeadline(): number {
    return this.lastHeard + 2 * this.heartbeatMs;
  }

  /** Time has come: call at (or after) {@link pollTimeout}. */
  handleTimeout(now: number): void {
    if (this.windowEnd !== undefined && this.windowEnd <= now) {
      this.windowEnd = undefined;
      this.reconnectFailed(now);
    }
    for (const id of this.roomIds()) {
      const r = this.rooms.get(id);
      if (r && r.loginDeadline !== undefined && r.loginDeadline <= now) {
        const code = ErrorCodes.LOGIN_TIMEOUT;
        this.removeRoom(id, 'LOGIN_FAILED', code, NO_DATA(), code);
      }
    }
    const c = this.conn;
    if (c.s === 'connecting' || c.s === 'handshake' || c.s === 'resuming' || c.s === 'ready') {
      if (this.livenessDeadline() <= now) this.lost(now, true);
    } else if (c.s === 'waiting' && c.at <= now) {
      if (this.rooms.size === 0) this.conn = { s: 'idle' };
      else this.connect(now);
    }
    if (
      (this.conn.s === 'ready' || this.conn.s === 'resuming') &&
      this.nextPing !== undefined &&
      this.nextPing <= now
    ) {
      this.send({ t: 'ping', ack: this.ack() });
      const next = this.nextPing + this.heartbeatMs;
      this.nextPing = next <= now ? now + this.heartbeatMs : next;
    }
    this.maybeEnd();
  }

  /**
   * The network is back (the browser's `online` event): a reconnection attempt waiting for its
   * backoff is made at once. (An addition of the Web SDK; the Rust core has no such input.)
   */
  handleNetworkOnline(now: number): void {
    if (this.conn.s === 'waiting') {
      if (this.rooms.size === 0) this.conn = { s: 'idle' };
      else this.connect(now);
    }
  }

  // ------------------------------------------------------------------ outputs

  private send(f: ClientFrame): void {
    this.out.push({ send: f });
  }

  private emit(e: CoreEvent): void {
    this.out.push({ event: e });
  }

  private report(
    room: string,
    reason: CoreRoomStateReason,
    errorCode: number,
    extendedData: Record<string, unknown>,
  ): void {
    this.states.set(room, reason);
    this.emit({ type: 'roomStateChanged', room, reason, errorCode, extendedData });
  }

  private result(handle: number | undefined, errorCode: number, messageId?: string): void {
    if (handle === undefined) return;
    const e: CoreEvent = { type: 'result', handle, errorCode };
    if (messageId !== undefined) e.messageId = messageId;
    this.emit(e);
  }

  private me(): string {
    return this.user?.id ?? '';
  }

  private ack(): Ack {
    const rooms: Ack['rooms'] = {};
    for (const id of this.roomIds()) {
      const r = this.rooms.get(id) as Room;
      if (r.phase === 'LOGINING' || r.relogin || r.epoch === undefined) continue;
      rooms[id] = { epoch: r.epoch, room: r.seqRoom, users: r.seqUsers };
    }
    // A room whose login went out but was not answered may be ours on the server: ack it with
    // an empty epoch, so that the server, if it has us there, answers with a snapshot (which
    // then serves as the login's answer), never a replay we have no base for.
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key) as Pending;
      const room = loginRoomOf(p.kind);
      if (room === undefined || p.wire === undefined) continue;
      const r = this.rooms.get(room);
      if (r && (r.phase === 'LOGINING' || r.relogin) && rooms[room] === undefined) {
        rooms[room] = { epoch: '', room: 0, users: 0 };
      }
    }
    return { direct: this.directSeq, rooms };
  }

  // ------------------------------------------------------------------ requests

  /**
   * Queues a request; it goes out now if it may, else when the connection and room allow. Its
   * `id` is given when it is first sent (see {@link flush}).
   */
  private request(
    frameOf: (id: number) => ClientFrame,
    kind: Kind,
    handle: number | undefined,
    needsRoom: string | undefined,
  ): void {
    const key = ++this.nextKey;
    this.pending.set(key, { frame: frameOf(0), kind, handle, needsRoom, sent: false, wire: undefined });
    this.flush();
  }

  /** The pending requests' keys, in the order they were made. */
  private pendingKeys(): number[] {
    return [...this.pending.keys()].sort((a, b) => a - b);
  }

  private maySend(p: Pending): boolean {
    if (p.needsRoom === undefined) return true;
    return this.rooms.get(p.needsRoom)?.phase === 'ACTIVE';
  }

  /**
   * Sends what may go: first the requests that were in flight at a cut, again, with their own
   * ids, in id order (the server answers repeats from memory); then the ones held meanwhile, in
   * the order they were made, each getting its id now — ids are given at sending, so they
   * increase on the wire even when a held request goes out after a later one (§9.1).
   */
  private flush(): void {
    if (this.conn.s !== 'ready') return;
    const again = [...this.pending.values()]
      .filter((p) => p.wire !== undefined && !p.sent)
      .sort((a, b) => (a.wire as number) - (b.wire as number));
    for (const p of again) {
      p.sent = true;
      this.send({ ...p.frame });
    }
    const fresh = this.pendingKeys().filter((key) => {
      const p = this.pending.get(key) as Pending;
      return p.wire === undefined && !p.sent && this.maySend(p);
    });
    for (const key of fresh) {
      const p = this.pending.get(key);
      if (!p) continue;
      const id = this.nextId++;
      p.sent = true;
      p.wire = id;
      p.frame = { ...p.frame, id };
      this.send({ ...p.frame });
    }
  }

  /** Takes the request answered by wire id `id`. */
  private takeAnswered(id: number | undefined): Pending | undefined {
    if (id === undefined) return undefined;
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key) as Pending;
      if (p.sent && p.wire === id) {
        this.pending.delete(key);
        return p;
      }
    }
    return undefined;
  }

  /** Fails every request that needs `room` (and a login for it) with `code`. */
  private failRoomRequests(room: string, code: number): void {
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key);
      if (!p) continue;
      if (p.needsRoom !== room && loginRoomOf(p.kind) !== room) continue;
      this.pending.delete(key);
      this.result(p.handle, code);
      if (loginRoomOf(p.kind) !== undefined && p.sent) {
        // The server may still put us in the room: keep it without a handle, so that its
        // `ok` is answered with a logout.
        this.pending.set(key, { ...p, handle: undefined, kind: { k: 'abandoned', room } });
      }
    }
  }

  private removeRoom(
    room: string,
    reason: CoreRoomStateReason,
    code: number,
    data: Record<string, unknown>,
    failCode: number,
  ): void {
    this.rooms.delete(room);
    this.report(room, reason, code, data);
    this.failRoomRequests(room, failCode);
  }

  private newRoom(config: WireRoomConfig, token: string | undefined, now: number): Room {
    return {
      phase: 'LOGINING',
      config,
      token,
      loginDeadline: now + this.loginTimeoutMs,
      epoch: undefined,
      seqRoom: 0,
      seqUsers: 0,
      view: emptyView(),
      own: new Map(),
      relogin: false,
      republishCheck: false,
      loginBySnapshot: false,
    };
  }

  // ------------------------------------------------------------------ app commands

  /**
   * `login_room`: LOGINING at once, then LOGINED or LOGIN_FAILED; the outcome is reported as a
   * `result` event with `handle`. The first login of a session names the user and the token.
   */
  loginRoom(
    now: number,
    a: { room: string; user: User; token: string; config?: LoginConfig; handle?: number },
  ): void {
    this.loginRoomInner(now, a);
    this.maybeEnd();
  }

  private loginRoomInner(
    now: number,
    a: { room: string; user: User; token: string; config?: LoginConfig; handle?: number },
  ): void {
    const room = a.room;
    if (this.rooms.has(room)) {
      this.result(a.handle, ErrorCodes.ALREADY_IN_ROOM);
      return;
    }
    const user = { id: a.user.id, name: a.user.name ?? '' };
    if (this.user !== undefined && (this.session !== undefined || this.conn.s !== 'idle')) {
      if (this.user.id !== user.id) {
        // One session is one user: a second user needs a second engine.
        this.report(room, 'LOGINING', 0, NO_DATA());
        this.report(room, 'LOGIN_FAILED', ErrorCodes.TOKEN_USER_MISMATCH, NO_DATA());
        this.result(a.handle, ErrorCodes.TOKEN_USER_MISMATCH);
        return;
      }
    } else {
      this.user = user;
      this.token = a.token;
    }
    const config = wireConfig(a.config);
    this.rooms.set(room, this.newRoom(config, a.token, now));
    this.report(room, 'LOGINING', 0, NO_DATA());
    this.wantConnection(now);
    this.request(
      (id) => ({ t: 'login', id, room, config: { ...config }, token: a.token }),
      { k: 'login', room },
      a.handle,
      undefined,
    );
  }

  /** `logout_room`: LOGOUT when answered; LOGOUT_FAILED 1002002 for a room the client is not in. */
  logoutRoom(now: number, a: { room: string; handle?: number }): void {
    const room = a.room;
    const r = this.rooms.get(room);
    if (!r) {
      const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
      this.report(room, 'LOGOUT_FAILED', code, NO_DATA());
      this.result(a.handle, code);
    } else if (r.phase === 'LOGINING') {
      // Give up the login; a login already sent is answered with a logout later.
      this.rooms.delete(room);
      this.failRoomRequests(room, ErrorCodes.NOT_IN_ROOM);
      this.report(room, 'LOGOUT', 0, NO_DATA());
      this.result(a.handle, 0);
    } else {
      this.request((id) => ({ t: 'logout', id, room }), { k: 'logout', room }, a.handle, room);
    }
    void now;
    this.maybeEnd();
  }

  /**
   * `switch_room`: LOGOUT for `from` at once (the server leaves it in the same step), LOGINING
   * for `to`, then LOGINED or LOGIN_FAILED for `to`.
   */
  switchRoom(
    now: number,
    a: { from: string; to: string; token?: string; config?: LoginConfig; handle?: number },
  ): void {
    const { from, to } = a;
    if (!this.rooms.has(from)) {
      const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
      this.report(from, 'LOGOUT_FAILED', code, NO_DATA());
      this.result(a.handle, code);
    } else if (this.rooms.has(to)) {
      this.result(a.handle, ErrorCodes.ALREADY_IN_ROOM);
    } else {
      const old = this.rooms.get(from);
      this.rooms.delete(from);
      this.failRoomRequests(from, ErrorCodes.NOT_IN_ROOM);
      this.report(from, 'LOGOUT', 0, NO_DATA());
      const config = wireConfig(a.config);
      this.rooms.set(to, this.newRoom(config, a.token ?? old?.token, now));
      this.report(to, 'LOGINING', 0, NO_DATA());
      this.wantConnection(now);
      this.request(
        (id) => {
          const f: ClientFrame = { t: 'switch', id, from, to, config: { ...config } };
          if (a.token !== undefined) f.token = a.token;
          return f;
        },
        { k: 'switch', to },
        a.handle,
        undefined,
      );
    }
    this.maybeEnd();
  }

  /** `publish` a stream (signalling only). */
  publish(now: number, a: { room: string; stream: string; extra?: string; handle?: number }): void {
    const { room, stream } = a;
    const extra = a.extra ?? '';
    this.roomRequest(
      a.handle,
      room,
      (id) => ({ t: 'publish', id, room, stream, extra }),
      { k: 'publish', room, stream, extra },
    );
    void now;
    this.maybeEnd();
  }

  /** `unpublish` a stream; it is never re-published after this, whatever the answer. */
  unpublish(now: number, a: { room: string; stream: string; handle?: number }): void {
    const { room, stream } = a;
    this.rooms.get(room)?.own.delete(stream);
    this.roomRequest(
      a.handle,
      room,
      (id) => ({ t: 'unpublish', id, room, stream }),
      { k: 'unpublish', room, stream },
    );
    void now;
    this.maybeEnd();
  }

  /** `stream_extra`: set a published stream's extra info. */
  setStreamExtra(
    now: number,
    a: { room: string; stream: string; extra: string; handle?: number },
  ): void {
    const { room, stream, extra } = a;
    this.roomRequest(
      a.handle,
      room,
      (id) => ({ t: 'stream_extra', id, room, stream, extra }),
      { k: 'stream_extra', room, stream, extra },
    );
    void now;
    this.maybeEnd();
  }

  /** `room_extra`: set one key of the room's extra info. */
  setRoomExtra(now: number, a: { room: string; key: string; value: string; handle?: number }): void {
    const { room, key, value } = a;
    this.roomRequest(a.handle, room, (id) => ({ t: 'room_extra', id, room, key, value }), {
      k: 'plain',
    });
    void now;
    this.maybeEnd();
  }

  /** `broadcast` or `barrage` a message; the result carries `messageId`. */
  message(
    now: number,
    a: { kind: 'broadcast' | 'barrage'; room: string; message: string; handle?: number },
  ): void {
    const { room, message, kind } = a;
    this.roomRequest(a.handle, room, (id) => ({ t: kind, id, room, message }), { k: 'plain' });
    void now;
    this.maybeEnd();
  }

  /** `command`: a custom command to some users (empty `to`: everyone else in the room). */
  command(now: number, a: { room: string; to: string[]; command: string; handle?: number }): void {
    const { room, command } = a;
    const to = [...a.to];
    this.roomRequest(a.handle, room, (id) => ({ t: 'command', id, room, to, command }), {
      k: 'plain',
    });
    void now;
    this.maybeEnd();
  }

  /** `renew_token`: replaces the session's token (and every room's) when answered. */
  renewToken(now: number, a: { token: string; handle?: number }): void {
    const token = a.token;
    if (this.session === undefined && this.conn.s === 'idle') {
      this.token = token;
      this.result(a.handle, 0);
    } else {
      this.request((id) => ({ t: 'renew_token', id, token }), { k: 'renew_token', token }, a.handle, undefined);
    }
    void now;
    this.maybeEnd();
  }

  private roomRequest(
    handle: number | undefined,
    room: string,
    frameOf: (id: number) => ClientFrame,
    kind: Kind,
  ): void {
    if (!this.rooms.has(room)) {
      this.result(handle, ErrorCodes.NOT_IN_ROOM);
      return;
    }
    this.request(frameOf, kind, handle, room);
  }

  private wantConnection(now: number): void {
    if (this.conn.s === 'idle') this.connect(now);
  }

  private connect(now: number): void {
    this.conn = { s: 'connecting' };
    this.lastHeard = now;
    this.out.push({ connect: true });
  }

  /**
   * Ends the session (`bye` when ready) and forgets every room and request without reporting
   * anything: for tearing the engine down.
   */
  shutdown(now: number): void {
    this.rooms.clear();
    this.pending.clear();
    this.endSession(true);
    void now;
  }

  // ------------------------------------------------------------------ connection events

  /** The connection asked for by `connect` is open. */
  handleOpened(now: number): void {
    if (this.conn.s !== 'connecting') return;
    this.conn = { s: 'handshake' };
    this.lastHeard = now;
    if (this.session) {
      this.send({
        t: 'resume',
        v: 1,
        session: this.session.id,
        resume_token: this.session.resumeToken,
        ack: this.ack(),
      });
    } else {
      this.sendHello();
    }
  }

  private sendHello(): void {
    const u = this.user ?? { id: '', name: '' };
    this.send({ t: 'hello', v: 1, app_id: this.appId, user: { id: u.id, name: u.name }, token: this.token });
  }

  /** The connection closed, or a connect attempt failed (any close code). */
  handleClosed(now: number): void {
    if (this.conn.s === 'idle' || this.conn.s === 'waiting') return;
    this.lost(now, false);
  }

  /** The connection is gone (closed, failed, or judged dead). */
  private lost(now: number, disconnect: boolean): void {
    if (disconnect) this.out.push({ disconnect: true });
    this.conn = { s: 'idle' };
    this.nextPing = undefined;
    for (const [key, p] of this.pending) if (p.kind.k === 'abandoned') this.pending.delete(key);
    for (const p of this.pending.values()) p.sent = false;
    if (this.rooms.size === 0) {
      this.endSession(false);
      return;
    }
    for (const id of this.roomIds()) {
      const r = this.rooms.get(id) as Room;
      if (r.phase !== 'ACTIVE') continue;
      r.phase = 'RECONNECTING';
      r.republishCheck = false;
      this.report(id, 'RECONNECTING', ErrorCodes.RECONNECTING, NO_DATA());
    }
    const reconnecting = [...this.rooms.values()].some((r) => r.phase === 'RECONNECTING');
    if (reconnecting && this.windowEnd === undefined) this.windowEnd = now + this.reconnectWindowMs;
    this.scheduleAttempt(now);
  }

  private scheduleAttempt(now: number): void {
    const wait = Math.floor(backoffDelayMs(this.attempt, this.random()));
    this.attempt++;
    this.conn = { s: 'waiting', at: now + wait };
  }

  /** Forgets the session (and closes the connection, saying `bye` when `bye`). */
  private endSession(bye: boolean): void {
    switch (this.conn.s) {
      case 'ready':
      case 'resuming':
        if (bye) this.send({ t: 'bye' });
        this.out.push({ disconnect: true });
        break;
      case 'connecting':
      case 'handshake':
        this.out.push({ disconnect: true });
        break;
      default:
        break;
    }
    this.conn = { s: 'idle' };
    this.session = undefined;
    this.windowEnd = undefined;
    this.nextPing = undefined;
    this.attempt = 0;
    this.directSeq = 0;
    for (const [id, p] of this.pending) if (p.handle === undefined) this.pending.delete(id);
  }

  /** With no room left and nothing the app waits for, ends the session. */
  private maybeEnd(): void {
    if (
      this.rooms.size === 0 &&
      ![...this.pending.values()].some((p) => p.handle !== undefined) &&
      (this.conn.s !== 'idle' || this.session !== undefined)
    ) {
      this.endSession(true);
    }
  }

  /** The reconnect window has passed: every room still away has failed, for good. */
  private reconnectFailed(now: number): void {
    const code = ErrorCodes.RECONNECT_FAILED;
    for (const id of this.roomIds()) {
      if (this.rooms.get(id)?.phase === 'RECONNECTING') {
        this.removeRoom(id, 'RECONNECT_FAILED', code, NO_DATA(), code);
      }
    }
    if (this.conn.s !== 'ready') {
      // Requests for no room (renew_token) held since the loss fail too.
      for (const key of this.pendingKeys()) {
        const p = this.pending.get(key) as Pending;
        if (p.needsRoom === undefined && (p.kind.k === 'renew_token' || p.kind.k === 'plain')) {
          this.pending.delete(key);
          this.result(p.handle, code);
        }
      }
      const logining = this.rooms.size > 0;
      this.endSession(false);
      // Rooms still logging in start over with a new session.
      if (logining) this.wantConnection(now);
    }
  }

  // ------------------------------------------------------------------ frames

  /** A text frame arrived; text that is not a JSON object with a string `t` is ignored. */
  handleText(now: number, text: string): boolean {
    let f: unknown;
    try {
      f = JSON.parse(text);
    } catch {
      return false;
    }
    if (f === null || typeof f !== 'object' || Array.isArray(f)) return false;
    if (typeof (f as ServerFrame).t !== 'string') return false;
    this.handleFrame(now, f as ServerFrame);
    return true;
  }

  /** A parsed frame arrived. Unknown `t` values are ignored (§1). */
  handleFrame(now: number, f: ServerFrame): void {
    const c = this.conn.s;
    if (c === 'idle' || c === 'waiting' || c === 'connecting') return;
    this.lastHeard = now;
    switch (f.t) {
      case 'welcome':
        this.onWelcome(now, f);
        break;
      case 'resumed':
        this.onResumed(now, f);
        break;
      case 'resume_done':
        this.onResumeDone();
        break;
      case 'pong':
        break;
      case 'ok':
        this.onOk(f);
        break;
      case 'error':
        this.onError(now, f);
        break;
      case 'kicked':
        this.onKicked(f);
        break;
      case 'event':
        this.onEvent(f);
        break;
      case 'snapshot':
        this.onSnapshot(f);
        break;
      case 'token_will_expire': {
        const room = str(f.room);
        if (this.rooms.has(room)) {
          this.emit({ type: 'roomTokenWillExpire', room, remainingS: num(f.remaining_s) });
        }
        break;
      }
      default:
        break;
    }
    this.maybeEnd();
  }

  private startHeartbeat(now: number, hb: unknown): void {
    const ms = optNum(hb);
    if (ms !== undefined && ms > 0) this.heartbeatMs = ms;
    this.nextPing = now + this.heartbeatMs;
    this.attempt = 0;
  }

  private onWelcome(now: number, f: ServerFrame): void {
    if (this.conn.s !== 'handshake' || this.session !== undefined) return;
    this.session = { id: str(f.session), resumeToken: str(f.resume_token) };
    this.directSeq = 0;
    this.conn = { s: 'ready' };
    this.startHeartbeat(now, f.heartbeat_ms);
    const away = this.roomIds().filter((id) => this.rooms.get(id)?.phase === 'RECONNECTING');
    if (away.length > 0) {
      // A new session after a refused resume: old request ids mean nothing to it, so every
      // waiting request goes out as new (with a new id); then every room that was in logs in
      // again.
      for (const p of this.pending.values()) {
        p.wire = undefined;
        p.sent = false;
      }
      for (const room of away) this.relogin(room);
    }
    this.flush();
  }

  private onResumed(now: number, f: ServerFrame): void {
    if (this.conn.s !== 'handshake' || !this.session) return;
    this.session.id = str(f.session, this.session.id);
    this.session.resumeToken = str(f.resume_token, this.session.resumeToken);
    this.conn = { s: 'resuming' };
    this.startHeartbeat(now, f.heartbeat_ms);
    const statuses = obj(f.rooms);
    const statusOf = (room: string): string | undefined =>
      Object.prototype.hasOwnProperty.call(statuses, room) ? str(statuses[room], 'replay') : undefined;
    const away = this.roomIds().filter((id) => {
      const r = this.rooms.get(id) as Room;
      return r.phase === 'RECONNECTING' && !r.relogin;
    });
    // Rooms that are (re-)logging in: their login's answer may have been lost.
    const logining = this.roomIds().filter((id) => {
      const r = this.rooms.get(id) as Room;
      return r.phase === 'LOGINING' || r.relogin;
    });
    for (const room of logining) {
      const status = statusOf(room);
      if (status === 'snapshot') {
        const r = this.rooms.get(room);
        if (r) r.loginBySnapshot = true;
      } else if (status !== undefined && status.startsWith('kicked:')) {
        const code = kickedCode(status);
        this.removeRoom(room, 'KICK_OUT', code, NO_DATA(), code);
      }
      // Not there (the login never arrived: it goes again) or a replay (the repeated login's
      // `ok` answers it).
    }
    for (const room of away) {
      const status = statusOf(room);
      if (status === undefined) {
        const leaving = [...this.pending.values()].some((p) => p.kind.k === 'logout' && p.kind.room === room);
        if (leaving) {
          // Our logout reached the server before the cut: its repeat gets the answer.
          const r = this.rooms.get(room);
          if (r) r.phase = 'ACTIVE';
          this.report(room, 'RECONNECTED', 0, NO_DATA());
        } else {
          // The server no longer has us there (§9.3): log in again, on this session.
          this.relogin(room);
        }
        continue;
      }
      if (status.startsWith('kicked:')) {
        const code = kickedCode(status);
        this.removeRoom(room, 'KICK_OUT', code, NO_DATA(), code);
        continue;
      }
      const r = this.rooms.get(room);
      if (r) {
        r.phase = 'ACTIVE';
        r.republishCheck = true;
      }
      this.report(room, 'RECONNECTED', 0, NO_DATA());
    }
    // Rooms the server still has us in but the app gave up meanwhile: leave them.
    for (const room of Object.keys(statuses).sort(byKey)) {
      const status = str(statuses[room], 'replay');
      if (!this.rooms.has(room) && !status.startsWith('kicked:')) this.abandon(room);
    }
    if (![...this.rooms.values()].some((x) => x.phase === 'RECONNECTING')) {
      this.windowEnd = undefined;
    }
  }

  private onResumeDone(): void {
    if (this.conn.s !== 'resuming') return;
    this.conn = { s: 'ready' };
    for (const room of this.roomIds()) {
      if (this.rooms.get(room)?.republishCheck) this.republish(room);
    }
    this.flush();
  }

  /**
   * Re-publishes the app's streams that the server no longer has in `room` (and that no
   * request in flight is already publishing or stopping).
   */
  private republish(room: string): void {
    const r = this.rooms.get(room);
    if (!r) return;
    r.republishCheck = false;
    const missing = [...r.own.keys()]
      .sort(byKey)
      .filter((s) => !r.view.streams.has(s))
      .map((s) => [s, r.own.get(s) as string] as const);
    for (const [stream, extra] of missing) {
      const busy = [...this.pending.values()].some((p) => {
        const k = p.kind;
        return (
          (k.k === 'publish' || k.k === 'republish' || k.k === 'unpublish') &&
          k.room === room &&
          k.stream === stream
        );
      });
      if (busy) continue;
      this.request(
        (id) => ({ t: 'publish', id, room, stream, extra }),
        { k: 'republish', room, stream },
        undefined,
        room,
      );
    }
  }

  private applyOkSeq(room: string | undefined, seq: Record<string, unknown>): void {
    const r = room !== undefined ? this.rooms.get(room) : undefined;
    if (r && r.phase !== 'LOGINING') {
      const sr = optNum(seq.room);
      const su = optNum(seq.users);
      if (sr !== undefined) r.seqRoom = Math.max(r.seqRoom, sr);
      if (su !== undefined) r.seqUsers = Math.max(r.seqUsers, su);
    }
    const sd = optNum(seq.direct);
    if (sd !== undefined) this.directSeq = Math.max(this.directSeq, sd);
  }

  private onOk(f: ServerFrame): void {
    const p = this.takeAnswered(optNum(f.id));
    if (!p) return;
    const seq = obj(f.seq);
    const k = p.kind;
    switch (k.k) {
      case 'login':
      case 'switch': {
        const room = k.k === 'login' ? k.room : k.to;
        if (this.rooms.get(room)?.phase !== 'LOGINING') {
          this.abandon(room);
          return;
        }
        this.logined(room, f, seq, p.handle);
        return;
      }
      case 'relogin': {
        if (!this.rooms.get(k.room)?.relogin) {
          this.abandon(k.room);
          return;
        }
        this.relogined(k.room, f, seq);
        return;
      }
      case 'logout':
        this.rooms.delete(k.room);
        this.failRoomRequests(k.room, ErrorCodes.NOT_IN_ROOM);
        this.report(k.room, 'LOGOUT', 0, NO_DATA());
        this.result(p.handle, 0);
        return;
      case 'publish': {
        this.applyOkSeq(k.room, seq);
        const r = this.rooms.get(k.room);
        if (r) {
          r.own.set(k.stream, k.extra);
          r.view.streams.set(k.stream, { id: k.stream, user: this.selfUser(), extra: k.extra });
        }
        this.result(p.handle, 0);
        return;
      }
      case 'republish': {
        this.applyOkSeq(k.room, seq);
        const r = this.rooms.get(k.room);
        const extra = r?.own.get(k.stream);
        if (r && extra !== undefined) {
          r.view.streams.set(k.stream, { id: k.stream, user: this.selfUser(), extra });
        }
        return;
      }
      case 'unpublish': {
        this.applyOkSeq(k.room, seq);
        this.rooms.get(k.room)?.view.streams.delete(k.stream);
        this.result(p.handle, 0);
        return;
      }
      case 'stream_extra': {
        this.applyOkSeq(k.room, seq);
        const r = this.rooms.get(k.room);
        if (r) {
          if (r.own.has(k.stream)) r.own.set(k.stream, k.extra);
          const s = r.view.streams.get(k.stream);
          if (s) r.view.streams.set(k.stream, { ...s, extra: k.extra });
        }
        this.result(p.handle, 0);
        return;
      }
      case 'renew_token':
        this.token = k.token;
        for (const r of this.rooms.values()) r.token = k.token;
        this.result(p.handle, 0);
        return;
      case 'abandon':
        return;
      case 'abandoned':
        this.abandon(k.room);
        return;
      case 'plain': {
        const room = typeof f.room === 'string' ? f.room : p.needsRoom;
        this.applyOkSeq(room, seq);
        this.result(p.handle, 0, typeof f.message_id === 'string' ? f.message_id : undefined);
        return;
      }
    }
  }

  /** A login succeeded (by its `ok`, or by the snapshot of a resume): LOGINED, then the room. */
  private logined(
    room: string,
    state: Record<string, unknown>,
    seq: Record<string, unknown>,
    handle: number | undefined,
  ): void {
    const me = this.me();
    const r = this.rooms.get(room);
    if (!r) return;
    const view = viewFromState(state, me);
    r.phase = 'ACTIVE';
    r.loginDeadline = undefined;
    r.loginBySnapshot = false;
    r.epoch = str(state.room_session);
    r.seqRoom = num(seq.room);
    r.seqUsers = num(seq.users);
    r.view = view;
    this.report(room, 'LOGINED', 0, { room_session_id: r.epoch });
    for (const e of diffViews(emptyView(), view, room, me)) this.emit(e);
    this.result(handle, 0);
    this.flush();
  }

  /**
   * Log in to a room that was in again (new session, or a resume that no longer has it); the
   * room stays RECONNECTING until the answer.
   */
  private relogin(room: string): void {
    // One login per room at a time: a relogin of a previous session is replaced.
    for (const [key, p] of this.pending) {
      if (p.kind.k === 'relogin' && p.kind.room === room) this.pending.delete(key);
    }
    const r = this.rooms.get(room);
    if (!r) return;
    r.relogin = true;
    const config = { ...r.config };
    const token = r.token;
    this.request(
      (id) => {
        const frame: ClientFrame = { t: 'login', id, room, config };
        if (token !== undefined) frame.token = token;
        return frame;
      },
      { k: 'relogin', room },
      undefined,
      undefined,
    );
  }

  /** A fresh login of a room that was in succeeded: RECONNECTED, then the diff. */
  private relogined(room: string, state: Record<string, unknown>, seq: Record<string, unknown>): void {
    const me = this.me();
    const r = this.rooms.get(room);
    if (!r) return;
    const view = viewFromState(state, me);
    const old = r.view;
    r.view = view;
    r.phase = 'ACTIVE';
    r.relogin = false;
    r.loginBySnapshot = false;
    r.epoch = str(state.room_session);
    r.seqRoom = num(seq.room);
    r.seqUsers = num(seq.users);
    this.report(room, 'RECONNECTED', 0, NO_DATA());
    for (const e of diffViews(old, view, room, me)) this.emit(e);
    if (old.online !== view.online) {
      this.emit({ type: 'roomOnlineUserCountUpdate', room, count: view.online });
    }
    if (![...this.rooms.values()].some((x) => x.phase === 'RECONNECTING')) {
      this.windowEnd = undefined;
    }
    this.republish(room);
    this.flush();
  }

  private selfUser(): User {
    return this.user ? { id: this.user.id, name: this.user.name } : { id: '', name: '' };
  }

  /** We are in `room` on the server but the app gave up on it: leave quietly. */
  private abandon(room: string): void {
    this.request((id) => ({ t: 'logout', id, room }), { k: 'abandon' }, undefined, undefined);
  }

  private onError(now: number, f: ServerFrame): void {
    const code = num(f.code);
    const id = optNum(f.id);
    if (id === undefined) {
      this.onSessionError(now, code);
      return;
    }
    const p = this.takeAnswered(id);
    if (!p) return;
    const k = p.kind;
    switch (k.k) {
      case 'login':
      case 'switch': {
        const room = k.k === 'login' ? k.room : k.to;
        if (this.rooms.get(room)?.phase === 'LOGINING') {
          this.removeRoom(room, 'LOGIN_FAILED', code, NO_DATA(), code);
        }
        this.result(p.handle, code);
        return;
      }
      case 'relogin': {
        const fail = ErrorCodes.RECONNECT_FAILED;
        if (this.rooms.get(k.room)?.relogin) {
          this.removeRoom(k.room, 'RECONNECT_FAILED', fail, { code }, fail);
        }
        if (![...this.rooms.values()].some((x) => x.phase === 'RECONNECTING')) {
          this.windowEnd = undefined;
        }
        return;
      }
      case 'logout':
        if (code === ErrorCodes.NOT_IN_ROOM_LOGOUT) {
          this.rooms.delete(k.room);
          this.failRoomRequests(k.room, ErrorCodes.NOT_IN_ROOM);
        }
        this.report(k.room, 'LOGOUT_FAILED', code, NO_DATA());
        this.result(p.handle, code);
        return;
      case 'republish':
        // Refused (e.g. 1003025): the stream is no longer ours to publish.
        this.rooms.get(k.room)?.own.delete(k.stream);
        return;
      case 'abandon':
        return;
      default:
        this.result(p.handle, code);
    }
  }

  /** An `error` without `id`: the server refused `hello` or `resume`. */
  private onSessionError(now: number, code: number): void {
    if (this.conn.s !== 'handshake') return;
    if (this.session !== undefined) {
      // The resume cannot be honoured (1002057): start a new session on this connection and
      // log in to every room again (reported RECONNECTED with the diff).
      this.session = undefined;
      this.directSeq = 0;
      for (const p of this.pending.values()) p.sent = false;
      this.sendHello();
      return;
    }
    // `hello` refused (bad token, …): nothing will get better by retrying.
    for (const room of this.roomIds()) {
      const r = this.rooms.get(room) as Room;
      if (r.phase === 'LOGINING') {
        this.removeRoom(room, 'LOGIN_FAILED', code, NO_DATA(), code);
      } else {
        const fail = ErrorCodes.RECONNECT_FAILED;
        this.removeRoom(room, 'RECONNECT_FAILED', fail, { code }, fail);
      }
    }
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key) as Pending;
      this.pending.delete(key);
      this.result(p.handle, code);
    }
    void now;
    this.endSession(false);
  }

  private onKicked(f: ServerFrame): void {
    const room = str(f.room);
    if (!this.rooms.has(room)) return;
    const code = num(f.code);
    const data =
      f.extended_data !== null && typeof f.extended_data === 'object' && !Array.isArray(f.extended_data)
        ? (f.extended_data as Record<string, unknown>)
        : NO_DATA();
    this.removeRoom(room, 'KICK_OUT', code, data, code);
  }

  private onSnapshot(f: ServerFrame): void {
    const me = this.me();
    const room = str(f.room);
    const r = this.rooms.get(room);
    if (!r) return;
    const seq = obj(f.seq);
    if (r.phase === 'LOGINING' && r.loginBySnapshot) {
      // The login whose answer was lost: this snapshot is its answer.
      const key = this.pendingKeys().find((kk) => {
        const k = (this.pending.get(kk) as Pending).kind;
        return (k.k === 'login' || k.k === 'switch') && loginRoomOf(k) === room;
      });
      const p = key !== undefined ? this.pending.get(key) : undefined;
      if (key !== undefined) this.pending.delete(key);
      this.logined(room, f, seq, p?.handle);
      return;
    }
    if (r.relogin && r.loginBySnapshot) {
      for (const [key, p] of this.pending) {
        if (p.kind.k === 'relogin' && p.kind.room === room) {
          this.pending.delete(key);
          break;
        }
      }
      this.relogined(room, f, seq);
      return;
    }
    if (r.phase !== 'ACTIVE') return;
    const view = viewFromState(f, me);
    const old = r.view;
    r.view = view;
    r.epoch = str(f.room_session);
    r.seqRoom = num(seq.room);
    r.seqUsers = num(seq.users);
    for (const e of diffViews(old, view, room, me)) this.emit(e);
    if (old.online !== view.online) {
      this.emit({ type: 'roomOnlineUserCountUpdate', room, count: view.online });
    }
  }

  private onEvent(f: ServerFrame): void {
    const me = this.me();
    const room = str(f.room);
    const seq = optNum(f.seq);
    if (f.ch === 'direct') {
      if (seq !== undefined) {
        if (seq <= this.directSeq) return;
        this.directSeq = seq;
      }
      if (f.kind === 'command' && this.rooms.has(room) && toUser(f.from).id !== me) {
        this.emit({
          type: 'IMRecvCustomCommand',
          room,
          from: toUser(f.from),
          command: str(f.command),
          timeMs: num(f.time_ms),
        });
      }
      return;
    }
    const r = this.rooms.get(room);
    if (!r || r.phase !== 'ACTIVE') return;
    if ((f.ch === 'room' || f.ch === 'users') && seq !== undefined) {
      const last = f.ch === 'room' ? r.seqRoom : r.seqUsers;
      if (seq <= last) return; // seen already (a replay overlapping what was applied)
      // A gap (seq > last + 1) is applied anyway.
      if (f.ch === 'room') r.seqRoom = seq;
      else r.seqUsers = seq;
    }
    const v = r.view;
    switch (f.kind) {
      case 'user_add': {
        const added: User[] = [];
        for (const u of toUsers(f.users)) {
          if (u.id === me) continue;
          const known = v.users.has(u.id);
          v.users.set(u.id, u);
          if (!known) added.push(u);
        }
        if (added.length) this.emit({ type: 'roomUserUpdate', room, updateType: 'ADD', users: added });
        return;
      }
      case 'user_delete': {
        const gone: User[] = [];
        for (const u of toUsers(f.users)) {
          if (u.id === me) continue;
          const old = v.users.get(u.id);
          if (old) {
            v.users.delete(u.id);
            gone.push(old);
          }
        }
        if (gone.length) this.emit({ type: 'roomUserUpdate', room, updateType: 'DELETE', users: gone });
        return;
      }
      case 'stream_add': {
        const added: Stream[] = [];
        for (const s of toStreams(f.streams)) {
          const isNew = !v.streams.has(s.id);
          v.streams.set(s.id, s);
          if (isNew && s.user.id !== me) added.push(s);
        }
        if (added.length) {
          this.emit({ type: 'roomStreamUpdate', room, updateType: 'ADD', streams: added, extendedData: {} });
        }
        return;
      }
      case 'stream_delete': {
        const gone: Stream[] = [];
        for (const s of toStreams(f.streams)) {
          const old = v.streams.get(s.id);
          if (old) {
            v.streams.delete(s.id);
            if (old.user.id !== me) gone.push(old);
          }
        }
        if (gone.length) {
          this.emit({
            type: 'roomStreamUpdate',
            room,
            updateType: 'DELETE',
            streams: gone,
            extendedData: { reason: num(f.reason) },
          });
        }
        return;
      }
      case 'stream_extra': {
        const changed: Stream[] = [];
        for (const s of toStreams(f.streams)) {
          const old = v.streams.get(s.id);
          if (old) v.streams.set(s.id, { ...old, extra: s.extra });
          if (s.user.id !== me) changed.push(s);
        }
        if (changed.length) this.emit({ type: 'roomStreamExtraInfoUpdate', room, streams: changed });
        return;
      }
      case 'room_extra': {
        const item = toExtra(f);
        if (item.user.id !== me) this.emit({ type: 'roomExtraInfoUpdate', room, extra: [item] });
        v.extra.set(item.key, item);
        return;
      }
      // A replay carries the client's own events too (§9.3): they are counted (above), never
      // reported.
      case 'broadcast':
      case 'barrage':
        if (toUser(f.from).id === me) return;
        this.emit({
          type: f.kind === 'broadcast' ? 'IMRecvBroadcastMessage' : 'IMRecvBarrageMessage',
          room,
          from: toUser(f.from),
          message: str(f.message),
          messageId: str(f.message_id),
          timeMs: num(f.time_ms),
        });
        return;
      case 'command':
        if (toUser(f.from).id === me) return;
        this.emit({
          type: 'IMRecvCustomCommand',
          room,
          from: toUser(f.from),
          command: str(f.command),
          timeMs: num(f.time_ms),
        });
        return;
      case 'online': {
        const count = num(f.count);
        if (v.online !== count) {
          v.online = count;
          this.emit({ type: 'roomOnlineUserCountUpdate', room, count });
        }
        return;
      }
      default:
        return;
    }
  }
}
