/**
 * Reading server frames from the wire, by the rules of the Rust decoder
 * (`crates/parlor-protocol/src/decode.rs` and the serde shapes of `frames.rs`), so that both SDKs
 * accept and refuse exactly the same frames:
 *
 * - not one JSON object with a string `t`: {@link DecodeError} `malformed` (1000001);
 * - a `t` (or an event `kind`) not known: `unknown_type` (1000002): ignored, so servers can add
 *   types;
 * - a field missing or of the wrong type: `invalid_field` (1000003). A field with a default may
 *   be left out, but `null` is only accepted where the field is optional. Integers must be
 *   whole, non-negative and within their width (u32 / u64). Unknown fields are ignored.
 *
 * Then server-sent durations are clamped into {@link DURATION_BOUNDS} (the numbers of
 * `parlor_protocol::bounds`): a heartbeat of 0 ms, or of 2^64 ms, never reaches a timer.
 *
 * Two differences JavaScript cannot avoid: `JSON.parse` keeps the last of duplicate fields (serde
 * refuses them), and it cannot tell `1000` from `1e3` or `1000.0` (serde refuses the latter two
 * for integers).
 *
 * @packageDocumentation
 */

import { ErrorCodes, Stream, User, WireRoomExtraItem, WireSeqs } from './types.js';

/** The ranges server-sent durations are clamped into (ms), as `parlor_protocol::bounds`. */
export const DURATION_BOUNDS = {
  /** `heartbeat_ms`: 1 s to 5 min. */
  heartbeatMs: { min: 1_000, max: 300_000 },
  /** `session_timeout_ms`: 1 s to 1 h. */
  sessionTimeoutMs: { min: 1_000, max: 3_600_000 },
  /** `retention_ms`: 0 to 24 h. */
  retentionMs: { min: 0, max: 86_400_000 },
} as const;

/** `heartbeat_ms` clamped into {@link DURATION_BOUNDS}. */
export function clampHeartbeatMs(ms: number): number {
  return Math.min(Math.max(ms, DURATION_BOUNDS.heartbeatMs.min), DURATION_BOUNDS.heartbeatMs.max);
}

/** What became of one room in a resume: `"replay"`, `"snapshot"` or `"kicked:<code>"`. */
export type ResumeOutcome =
  | { outcome: 'replay' }
  | { outcome: 'snapshot' }
  | { outcome: 'kicked'; code: number };

/** A room's state, as a login `ok` and a `snapshot` carry it. */
export interface WireRoomState {
  /** The others in the room (absent when `user_status_notify` is false); in a large room
   * (protocol §9.10) only the first page of them. */
  users?: User[];
  /** In a large room (§9.10): the `members` cursor of the rest of the list ("" when `users` held
   * them all); absent in a room that is not large, whose `users` is the whole list. */
  users_next?: string;
  /** Published streams. */
  streams: Stream[];
  /** Room extra info. */
  extra: WireRoomExtraItem[];
  /** Everyone in the room, the client too. */
  online: number;
  /** The id of this room's life (the `epoch` of acks). */
  room_session: string;
}

/** What happened in an `event`, by `kind`. */
export type WireEventBody =
  | { kind: 'user_add' | 'user_delete'; users: User[] }
  | { kind: 'user_update'; added: User[]; deleted: User[]; count: number; list_changed: boolean }
  | { kind: 'stream_add' | 'stream_extra'; streams: Stream[] }
  | { kind: 'stream_delete'; streams: Stream[]; reason: number }
  | { kind: 'room_extra'; key: string; value: string; user: User; time_ms: number }
  | { kind: 'broadcast' | 'barrage'; message_id: string; from: User; message: string; time_ms: number }
  | { kind: 'command'; from: User; command: string; time_ms: number }
  | { kind: 'online'; count: number };

/** A server frame after decoding: every field present and of its type. */
/** One page of `members`, as the `ok` carries it (protocol §9.9). */
export interface WireMemberPage {
  users: User[];
  count: number;
  /** The next page's cursor; "" after the last. */
  next: string;
}

export type DecodedFrame =
  | {
      t: 'welcome';
      session: string;
      resume_token: string;
      heartbeat_ms: number;
      session_timeout_ms: number;
      retention_ms: number;
      server_time_ms: number;
    }
  | {
      t: 'resumed';
      session: string;
      resume_token: string;
      /** By room id, in id order. */
      rooms: Map<string, ResumeOutcome>;
      heartbeat_ms?: number;
      server_time_ms?: number;
    }
  | { t: 'pong'; server_time_ms: number }
  | {
      t: 'ok';
      id: number;
      room?: string;
      /** For a login / switch: the room's state (present when `room_session` is). */
      state?: WireRoomState;
      seq: WireSeqs;
      message_id?: string;
      /** For `members`: the page (protocol §9.9). */
      members?: WireMemberPage;
    }
  | { t: 'error'; id?: number; code: number; message: string }
  | { t: 'kicked'; room: string; code: number; extended_data?: unknown }
  | { t: 'event'; room: string; ch?: 'room' | 'users' | 'direct'; seq?: number; body: WireEventBody }
  | { t: 'snapshot'; room: string; state: WireRoomState; seq: WireSeqs; missed_messages: boolean }
  | { t: 'resume_done' }
  | { t: 'token_will_expire'; room: string; remaining_s: number };

/** Why a frame could not be decoded. */
export interface DecodeError {
  /** Which rule it broke. */
  kind: 'malformed' | 'unknown_type' | 'invalid_field';
  /** The protocol code of that rule: 1000001, 1000002 or 1000003. */
  code: number;
  /** The frame's `t`, when it has one (`event/<kind>` for an unknown event kind). */
  t?: string;
  /** The frame's `id`, when one could be read. */
  id?: number;
  /** What is wrong, for a log. */
  message: string;
}

/** The outcome of decoding: the frame, or why not. */
export type Decoded = { frame: DecodedFrame; error?: undefined } | { frame?: undefined; error: DecodeError };

const SERVER_TYPES = [
  'welcome',
  'resumed',
  'pong',
  'ok',
  'error',
  'kicked',
  'event',
  'snapshot',
  'resume_done',
  'token_will_expire',
];
const EVENT_KINDS = [
  'user_add',
  'user_delete',
  'user_update',
  'stream_add',
  'stream_delete',
  'stream_extra',
  'room_extra',
  'broadcast',
  'barrage',
  'command',
  'online',
];
const MAX_U32 = 4_294_967_295;
const MAX_U64 = 18_446_744_073_709_551_615; // 2^64 as a double: JSON.parse rounds u64::MAX up to it

type Obj = Record<string, unknown>;

/** A field that does not fit; caught by {@link decodeServerValue}. */
class Invalid extends Error {}

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}
function has(o: Obj, k: string): boolean {
  return Object.prototype.hasOwnProperty.call(o, k);
}
function asStr(v: unknown, what: string): string {
  if (typeof v !== 'string') throw new Invalid(`${what}: expected a string`);
  return v;
}
function asInt(v: unknown, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max) {
    throw new Invalid(`${what}: expected an integer in [0, ${max}]`);
  }
  return v;
}
function asObj(v: unknown, what: string): Obj {
  if (!isObj(v)) throw new Invalid(`${what}: expected an object`);
  return v;
}
function asArr<T>(v: unknown, what: string, each: (x: unknown, what: string) => T): T[] {
  if (!Array.isArray(v)) throw new Invalid(`${what}: expected an array`);
  return v.map((x, i) => each(x, `${what}[${i}]`));
}
/** A field without default: it must be there. */
function req<T>(o: Obj, k: string, read: (v: unknown, what: string) => T): T {
  if (!has(o, k)) throw new Invalid(`missing field ${k}`);
  return read(o[k], k);
}
/** A field with a default: missing is the default, `null` is wrong (as serde's `default`). */
function dflt<T>(o: Obj, k: string, d: T, read: (v: unknown, what: string) => T): T {
  return has(o, k) ? read(o[k], k) : d;
}
/** An optional field: missing or `null` is undefined (as serde's `Option`). */
function opt<T>(o: Obj, k: string, read: (v: unknown, what: string) => T): T | undefined {
  return has(o, k) && o[k] !== null ? read(o[k], k) : undefined;
}
const str = (v: unknown, what: string) => asStr(v, what);
const u32 = (v: unknown, what: string) => asInt(v, MAX_U32, what);
const u64 = (v: unknown, what: string) => asInt(v, MAX_U64, what);
function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new Invalid(`${what}: expected a boolean`);
  return v;
}

function user(v: unknown, what: string): User {
  const o = asObj(v, what);
  return { id: req(o, 'id', str), name: dflt(o, 'name', '', str) };
}
function stream(v: unknown, what: string): Stream {
  const o = asObj(v, what);
  return { id: req(o, 'id', str), user: req(o, 'user', user), extra: dflt(o, 'extra', '', str) };
}
function extraItem(v: unknown, what: string): WireRoomExtraItem {
  const o = asObj(v, what);
  return {
    key: req(o, 'key', str),
    value: req(o, 'value', str),
    user: req(o, 'user', user),
    time_ms: req(o, 'time_ms', u64),
  };
}
const users = (v: unknown, what: string) => asArr(v, what, user);
const streams = (v: unknown, what: string) => asArr(v, what, stream);
const extras = (v: unknown, what: string) => asArr(v, what, extraItem);

function seqs(v: unknown, what: string): WireSeqs {
  const o = asObj(v, what);
  const s: WireSeqs = {};
  const room = opt(o, 'room', u64);
  const us = opt(o, 'users', u64);
  const direct = opt(o, 'direct', u64);
  if (room !== undefined) s.room = room;
  if (us !== undefined) s.users = us;
  if (direct !== undefined) s.direct = direct;
  return s;
}

function outcome(v: unknown, what: string): ResumeOutcome {
  const s = asStr(v, what);
  if (s === 'replay') return { outcome: 'replay' };
  if (s === 'snapshot') return { outcome: 'snapshot' };
  const m = /^kicked:([0-9]+)$/.exec(s);
  if (m) {
    const code = Number(m[1]);
    if (code <= MAX_U32) return { outcome: 'kicked', code };
  }
  throw new Invalid(`${what}: ${JSON.stringify(s)} is not replay, snapshot or kicked:<code>`);
}

/** The room state of a snapshot (fields with defaults) or of an `ok` (fields optional). */
function roomState(o: Obj): WireRoomState {
  const st: WireRoomState = {
    streams: dflt(o, 'streams', [] as Stream[], streams),
    extra: dflt(o, 'extra', [] as WireRoomExtraItem[], extras),
    online: dflt(o, 'online', 0, u32),
    room_session: dflt(o, 'room_session', '', str),
  };
  const us = opt(o, 'users', users);
  if (us !== undefined) st.users = us;
  const next = opt(o, 'users_next', str);
  if (next !== undefined) st.users_next = next;
  return st;
}

function body(o: Obj, kind: string): WireEventBody {
  switch (kind) {
    case 'user_add':
    case 'user_delete':
      return { kind, users: req(o, 'users', users) };
    case 'user_update':
      return {
        kind,
        added: dflt(o, 'added', [] as User[], users),
        deleted: dflt(o, 'deleted', [] as User[], users),
        count: req(o, 'count', u32),
        list_changed: dflt(o, 'list_changed', false, bool),
      };
    case 'stream_add':
    case 'stream_extra':
      return { kind, streams: req(o, 'streams', streams) };
    case 'stream_delete':
      return { kind, streams: req(o, 'streams', streams), reason: req(o, 'reason', u32) };
    case 'room_extra':
      return {
        kind,
        key: req(o, 'key', str),
        value: req(o, 'value', str),
        user: req(o, 'user', user),
        time_ms: req(o, 'time_ms', u64),
      };
    case 'broadcast':
    case 'barrage':
      return {
        kind,
        message_id: req(o, 'message_id', str),
        from: req(o, 'from', user),
        message: req(o, 'message', str),
        time_ms: req(o, 'time_ms', u64),
      };
    case 'command':
      return { kind, from: req(o, 'from', user), command: req(o, 'command', str), time_ms: req(o, 'time_ms', u64) };
    case 'online':
      return { kind, count: req(o, 'count', u32) };
    default:
      throw new Invalid(`unknown variant ${JSON.stringify(kind)}`);
  }
}

function frame(t: string, o: Obj): DecodedFrame {
  switch (t) {
    case 'welcome':
      return {
        t,
        session: req(o, 'session', str),
        resume_token: req(o, 'resume_token', str),
        heartbeat_ms: clampHeartbeatMs(req(o, 'heartbeat_ms', u64)),
        session_timeout_ms: clamp(req(o, 'session_timeout_ms', u64), DURATION_BOUNDS.sessionTimeoutMs),
        retention_ms: clamp(req(o, 'retention_ms', u64), DURATION_BOUNDS.retentionMs),
        server_time_ms: req(o, 'server_time_ms', u64),
      };
    case 'resumed': {
      const rooms = new Map<string, ResumeOutcome>();
      const raw = dflt(o, 'rooms', {} as Obj, asObj);
      for (const room of Object.keys(raw).sort()) rooms.set(room, outcome(raw[room], `rooms.${room}`));
      const f: DecodedFrame = {
        t,
        session: req(o, 'session', str),
        resume_token: req(o, 'resume_token', str),
        rooms,
      };
      const hb = opt(o, 'heartbeat_ms', u64);
      if (hb !== undefined) f.heartbeat_ms = clampHeartbeatMs(hb);
      const st = opt(o, 'server_time_ms', u64);
      if (st !== undefined) f.server_time_ms = st;
      return f;
    }
    case 'pong':
      return { t, server_time_ms: req(o, 'server_time_ms', u64) };
    case 'ok': {
      const f: DecodedFrame = { t, id: req(o, 'id', u64), seq: dflt(o, 'seq', {}, seqs) };
      const room = opt(o, 'room', str);
      if (room !== undefined) f.room = room;
      const mid = opt(o, 'message_id', str);
      if (mid !== undefined) f.message_id = mid;
      // The state's fields are each optional here; the state is there when `room_session` is.
      const us = opt(o, 'users', users);
      const ss = opt(o, 'streams', streams);
      const ex = opt(o, 'extra', extras);
      const online = opt(o, 'online', u32);
      const session = opt(o, 'room_session', str);
      if (session !== undefined) {
        f.state = { streams: ss ?? [], extra: ex ?? [], online: online ?? 0, room_session: session };
        if (us !== undefined) f.state.users = us;
        const usNext = opt(o, 'users_next', str);
        if (usNext !== undefined) f.state.users_next = usNext;
      }
      const next = opt(o, 'next', str);
      if (next !== undefined) f.members = { users: us ?? [], count: opt(o, 'count', u32) ?? 0, next };
      return f;
    }
    case 'error': {
      const f: DecodedFrame = { t, code: req(o, 'code', u32), message: dflt(o, 'message', '', str) };
      const id = opt(o, 'id', u64);
      if (id !== undefined) f.id = id;
      return f;
    }
    case 'kicked': {
      const f: DecodedFrame = { t, room: req(o, 'room', str), code: req(o, 'code', u32) };
      if (has(o, 'extended_data') && o.extended_data !== null) f.extended_data = o.extended_data;
      return f;
    }
    case 'event': {
      const f: DecodedFrame = { t, room: req(o, 'room', str), body: body(o, req(o, 'kind', str)) };
      const ch = opt(o, 'ch', str);
      if (ch !== undefined) {
        if (ch !== 'room' && ch !== 'users' && ch !== 'direct') throw new Invalid(`ch: unknown channel ${ch}`);
        f.ch = ch;
      }
      const seq = opt(o, 'seq', u64);
      if (seq !== undefined) f.seq = seq;
      return f;
    }
    case 'snapshot':
      return {
        t,
        room: req(o, 'room', str),
        state: roomState(o),
        seq: dflt(o, 'seq', {}, seqs),
        missed_messages: dflt(o, 'missed_messages', false, bool),
      };
    case 'resume_done':
      return { t };
    case 'token_will_expire':
      return { t, room: req(o, 'room', str), remaining_s: req(o, 'remaining_s', u64) };
    default:
      throw new Invalid(`unknown type ${t}`);
  }
}

function clamp(ms: number, b: { min: number; max: number }): number {
  return Math.min(Math.max(ms, b.min), b.max);
}

/** Decode a parsed server frame (a value of `JSON.parse`). */
export function decodeServerValue(value: unknown): Decoded {
  if (!isObj(value)) {
    return { error: { kind: 'malformed', code: ErrorCodes.MALFORMED_FRAME, message: 'not a JSON object' } };
  }
  if (typeof value.t !== 'string') {
    const message = has(value, 't') ? 'field t is not a string' : 'no field t';
    return { error: { kind: 'malformed', code: ErrorCodes.MALFORMED_FRAME, message } };
  }
  const t = value.t;
  const rawId = value.id;
  const id = typeof rawId === 'number' && Number.isInteger(rawId) && rawId >= 0 ? rawId : undefined;
  const withId = (e: DecodeError): DecodeError => {
    if (id !== undefined) e.id = id;
    return e;
  };
  if (!SERVER_TYPES.includes(t)) {
    return { error: withId({ kind: 'unknown_type', code: ErrorCodes.UNKNOWN_TYPE, t, message: `unknown type ${t}` }) };
  }
  if (t === 'event' && typeof value.kind === 'string' && !EVENT_KINDS.includes(value.kind)) {
    const et = `event/${value.kind}`;
    return { error: withId({ kind: 'unknown_type', code: ErrorCodes.UNKNOWN_TYPE, t: et, message: `unknown type ${et}` }) };
  }
  try {
    return { frame: frame(t, value) };
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    return { error: withId({ kind: 'invalid_field', code: ErrorCodes.INVALID_FIELD, t, message: e.message }) };
  }
}

/** Decode the text of one WebSocket frame sent by the server. */
export function decodeServerFrame(text: string): Decoded {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: { kind: 'malformed', code: ErrorCodes.MALFORMED_FRAME, message: String(e) } };
  }
  return decodeServerValue(value);
}
