// src/types.ts
var CloseCodes = {
  /** Normal, after `bye`. */
  NORMAL: 1e3,
  /** The session went offline or its connection was replaced by a resume. */
  GOING_AWAY: 1001,
  /** A binary frame arrived: the protocol is text only. */
  UNSUPPORTED: 1003,
  /** A malformed frame (error 1000001). */
  INVALID_DATA: 1007,
  /** Policy: a bad `hello` or `resume`, or failed authentication. */
  POLICY: 1008,
  /** A frame over the server's size limit. */
  TOO_BIG: 1009,
  /** The client did not read its frames fast enough. */
  SLOW_CONSUMER: 4008,
  /** The session was kicked out of every room it was in. */
  KICKED: 4009,
  /** The server is shutting down. */
  SHUTDOWN: 4010
};
var ErrorCodes = {
  SUCCESS: 0,
  MALFORMED_FRAME: 1000001,
  UNKNOWN_TYPE: 1000002,
  INVALID_FIELD: 1000003,
  /** The server's shared state is unreachable; the request is retried with its id (§9.6). */
  SERVICE_UNAVAILABLE: 1000004,
  /** `hello` refused: the app has the most sessions the server node admits (LOGIN_FAILED). */
  TOO_MANY_SESSIONS: 1000005,
  ALREADY_IN_ROOM: 1002001,
  NOT_IN_ROOM_LOGOUT: 1002002,
  COULD_NOT_CONNECT: 1002030,
  LOGIN_TIMEOUT: 1002031,
  KICKED_DUPLICATE_LOGIN: 1002050,
  RECONNECTING: 1002051,
  RECONNECT_FAILED: 1002053,
  KICKED_BY_SERVER: 1002055,
  KICKED_TOKEN_EXPIRED: 1002056,
  TOKEN_USER_MISMATCH: 1002077,
  CANNOT_RESUME: 1002057,
  NOT_IN_ROOM: 1009005
};

// src/backoff.ts
var BACKOFF_BASE_MS = 500;
var BACKOFF_CAP_MS = 1e4;
function backoffCeilingMs(attempt) {
  const exp = Math.min(Math.max(0, Math.floor(attempt)), 16);
  return Math.min(BACKOFF_CAP_MS, BACKOFF_BASE_MS * 2 ** exp);
}
function backoffDelayMs(attempt, random) {
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return r * backoffCeilingMs(attempt);
}
var RETRY_AFTER_MAX_MS = 6e4;
var RETRY_AFTER_JITTER_MS = 1e3;
function retryAfterDelayMs(retryAfterMs, random) {
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return Math.min(Math.max(0, retryAfterMs), RETRY_AFTER_MAX_MS) + Math.floor(r * RETRY_AFTER_JITTER_MS);
}
var RETRY_BASE_MS = 100;
var RETRY_CAP_MS = 2e3;
function retryCeilingMs(retry) {
  const exp = Math.min(Math.max(0, Math.floor(retry)), 20);
  return Math.min(RETRY_CAP_MS, RETRY_BASE_MS * 2 ** exp);
}
function retryDelayMs(retry, random) {
  const r = Number.isFinite(random) ? Math.min(Math.max(random, 0), 1) : 0;
  return Math.floor(r * retryCeilingMs(retry));
}

// src/decode.ts
var DURATION_BOUNDS = {
  /** `heartbeat_ms`: 1 s to 5 min. */
  heartbeatMs: { min: 1e3, max: 3e5 },
  /** `session_timeout_ms`: 1 s to 1 h. */
  sessionTimeoutMs: { min: 1e3, max: 36e5 },
  /** `retention_ms`: 0 to 24 h. */
  retentionMs: { min: 0, max: 864e5 }
};
function clampHeartbeatMs(ms) {
  return Math.min(Math.max(ms, DURATION_BOUNDS.heartbeatMs.min), DURATION_BOUNDS.heartbeatMs.max);
}
var SERVER_TYPES = [
  "welcome",
  "resumed",
  "pong",
  "ok",
  "error",
  "kicked",
  "event",
  "snapshot",
  "resume_done",
  "token_will_expire"
];
var EVENT_KINDS = [
  "user_add",
  "user_delete",
  "user_update",
  "stream_add",
  "stream_delete",
  "stream_extra",
  "room_extra",
  "broadcast",
  "barrage",
  "command",
  "online"
];
var MAX_U32 = 4294967295;
var MAX_U64 = 18446744073709552e3;
var Invalid = class extends Error {
};
function isObj(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}
function has(o, k) {
  return Object.prototype.hasOwnProperty.call(o, k);
}
function asStr(v, what) {
  if (typeof v !== "string") throw new Invalid(`${what}: expected a string`);
  return v;
}
function asInt(v, max, what) {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0 || v > max) {
    throw new Invalid(`${what}: expected an integer in [0, ${max}]`);
  }
  return v;
}
function asObj(v, what) {
  if (!isObj(v)) throw new Invalid(`${what}: expected an object`);
  return v;
}
function asArr(v, what, each) {
  if (!Array.isArray(v)) throw new Invalid(`${what}: expected an array`);
  return v.map((x, i) => each(x, `${what}[${i}]`));
}
function req(o, k, read) {
  if (!has(o, k)) throw new Invalid(`missing field ${k}`);
  return read(o[k], k);
}
function dflt(o, k, d, read) {
  return has(o, k) ? read(o[k], k) : d;
}
function opt(o, k, read) {
  return has(o, k) && o[k] !== null ? read(o[k], k) : void 0;
}
var str = (v, what) => asStr(v, what);
var u32 = (v, what) => asInt(v, MAX_U32, what);
var u64 = (v, what) => asInt(v, MAX_U64, what);
function bool(v, what) {
  if (typeof v !== "boolean") throw new Invalid(`${what}: expected a boolean`);
  return v;
}
function user(v, what) {
  const o = asObj(v, what);
  return { id: req(o, "id", str), name: dflt(o, "name", "", str) };
}
function stream(v, what) {
  const o = asObj(v, what);
  return { id: req(o, "id", str), user: req(o, "user", user), extra: dflt(o, "extra", "", str) };
}
function extraItem(v, what) {
  const o = asObj(v, what);
  return {
    key: req(o, "key", str),
    value: req(o, "value", str),
    user: req(o, "user", user),
    time_ms: req(o, "time_ms", u64)
  };
}
var users = (v, what) => asArr(v, what, user);
var streams = (v, what) => asArr(v, what, stream);
var extras = (v, what) => asArr(v, what, extraItem);
function seqs(v, what) {
  const o = asObj(v, what);
  const s = {};
  const room = opt(o, "room", u64);
  const us = opt(o, "users", u64);
  const direct = opt(o, "direct", u64);
  if (room !== void 0) s.room = room;
  if (us !== void 0) s.users = us;
  if (direct !== void 0) s.direct = direct;
  return s;
}
function outcome(v, what) {
  const s = asStr(v, what);
  if (s === "replay") return { outcome: "replay" };
  if (s === "snapshot") return { outcome: "snapshot" };
  const m = /^kicked:([0-9]+)$/.exec(s);
  if (m) {
    const code = Number(m[1]);
    if (code <= MAX_U32) return { outcome: "kicked", code };
  }
  throw new Invalid(`${what}: ${JSON.stringify(s)} is not replay, snapshot or kicked:<code>`);
}
function roomState(o) {
  const st = {
    streams: dflt(o, "streams", [], streams),
    extra: dflt(o, "extra", [], extras),
    online: dflt(o, "online", 0, u32),
    room_session: dflt(o, "room_session", "", str)
  };
  const us = opt(o, "users", users);
  if (us !== void 0) st.users = us;
  const next = opt(o, "users_next", str);
  if (next !== void 0) st.users_next = next;
  return st;
}
function body(o, kind) {
  switch (kind) {
    case "user_add":
    case "user_delete":
      return { kind, users: req(o, "users", users) };
    case "user_update":
      return {
        kind,
        added: dflt(o, "added", [], users),
        deleted: dflt(o, "deleted", [], users),
        count: req(o, "count", u32),
        list_changed: dflt(o, "list_changed", false, bool)
      };
    case "stream_add":
    case "stream_extra":
      return { kind, streams: req(o, "streams", streams) };
    case "stream_delete":
      return { kind, streams: req(o, "streams", streams), reason: req(o, "reason", u32) };
    case "room_extra":
      return {
        kind,
        key: req(o, "key", str),
        value: req(o, "value", str),
        user: req(o, "user", user),
        time_ms: req(o, "time_ms", u64)
      };
    case "broadcast":
    case "barrage":
      return {
        kind,
        message_id: req(o, "message_id", str),
        from: req(o, "from", user),
        message: req(o, "message", str),
        time_ms: req(o, "time_ms", u64)
      };
    case "command":
      return { kind, from: req(o, "from", user), command: req(o, "command", str), time_ms: req(o, "time_ms", u64) };
    case "online":
      return { kind, count: req(o, "count", u32) };
    default:
      throw new Invalid(`unknown variant ${JSON.stringify(kind)}`);
  }
}
function frame(t, o) {
  switch (t) {
    case "welcome":
      return {
        t,
        session: req(o, "session", str),
        resume_token: req(o, "resume_token", str),
        heartbeat_ms: clampHeartbeatMs(req(o, "heartbeat_ms", u64)),
        session_timeout_ms: clamp(req(o, "session_timeout_ms", u64), DURATION_BOUNDS.sessionTimeoutMs),
        retention_ms: clamp(req(o, "retention_ms", u64), DURATION_BOUNDS.retentionMs),
        server_time_ms: req(o, "server_time_ms", u64)
      };
    case "resumed": {
      const rooms = /* @__PURE__ */ new Map();
      const raw = dflt(o, "rooms", {}, asObj);
      for (const room of Object.keys(raw).sort()) rooms.set(room, outcome(raw[room], `rooms.${room}`));
      const f = {
        t,
        session: req(o, "session", str),
        resume_token: req(o, "resume_token", str),
        rooms
      };
      const hb = opt(o, "heartbeat_ms", u64);
      if (hb !== void 0) f.heartbeat_ms = clampHeartbeatMs(hb);
      const st = opt(o, "server_time_ms", u64);
      if (st !== void 0) f.server_time_ms = st;
      return f;
    }
    case "pong":
      return { t, server_time_ms: req(o, "server_time_ms", u64) };
    case "ok": {
      const f = { t, id: req(o, "id", u64), seq: dflt(o, "seq", {}, seqs) };
      const room = opt(o, "room", str);
      if (room !== void 0) f.room = room;
      const mid = opt(o, "message_id", str);
      if (mid !== void 0) f.message_id = mid;
      const us = opt(o, "users", users);
      const ss = opt(o, "streams", streams);
      const ex = opt(o, "extra", extras);
      const online = opt(o, "online", u32);
      const session = opt(o, "room_session", str);
      if (session !== void 0) {
        f.state = { streams: ss ?? [], extra: ex ?? [], online: online ?? 0, room_session: session };
        if (us !== void 0) f.state.users = us;
        const usNext = opt(o, "users_next", str);
        if (usNext !== void 0) f.state.users_next = usNext;
      }
      const next = opt(o, "next", str);
      if (next !== void 0) f.members = { users: us ?? [], count: opt(o, "count", u32) ?? 0, next };
      return f;
    }
    case "error": {
      const f = { t, code: req(o, "code", u32), message: dflt(o, "message", "", str) };
      const id = opt(o, "id", u64);
      if (id !== void 0) f.id = id;
      return f;
    }
    case "kicked": {
      const f = { t, room: req(o, "room", str), code: req(o, "code", u32) };
      if (has(o, "extended_data") && o.extended_data !== null) f.extended_data = o.extended_data;
      return f;
    }
    case "event": {
      const f = { t, room: req(o, "room", str), body: body(o, req(o, "kind", str)) };
      const ch = opt(o, "ch", str);
      if (ch !== void 0) {
        if (ch !== "room" && ch !== "users" && ch !== "direct") throw new Invalid(`ch: unknown channel ${ch}`);
        f.ch = ch;
      }
      const seq = opt(o, "seq", u64);
      if (seq !== void 0) f.seq = seq;
      return f;
    }
    case "snapshot":
      return {
        t,
        room: req(o, "room", str),
        state: roomState(o),
        seq: dflt(o, "seq", {}, seqs),
        missed_messages: dflt(o, "missed_messages", false, bool)
      };
    case "resume_done":
      return { t };
    case "token_will_expire":
      return { t, room: req(o, "room", str), remaining_s: req(o, "remaining_s", u64) };
    default:
      throw new Invalid(`unknown type ${t}`);
  }
}
function clamp(ms, b) {
  return Math.min(Math.max(ms, b.min), b.max);
}
function decodeServerValue(value) {
  if (!isObj(value)) {
    return { error: { kind: "malformed", code: ErrorCodes.MALFORMED_FRAME, message: "not a JSON object" } };
  }
  if (typeof value.t !== "string") {
    const message2 = has(value, "t") ? "field t is not a string" : "no field t";
    return { error: { kind: "malformed", code: ErrorCodes.MALFORMED_FRAME, message: message2 } };
  }
  const t = value.t;
  const rawId = value.id;
  const id = typeof rawId === "number" && Number.isInteger(rawId) && rawId >= 0 ? rawId : void 0;
  const withId = (e) => {
    if (id !== void 0) e.id = id;
    return e;
  };
  if (!SERVER_TYPES.includes(t)) {
    return { error: withId({ kind: "unknown_type", code: ErrorCodes.UNKNOWN_TYPE, t, message: `unknown type ${t}` }) };
  }
  if (t === "event" && typeof value.kind === "string" && !EVENT_KINDS.includes(value.kind)) {
    const et = `event/${value.kind}`;
    return { error: withId({ kind: "unknown_type", code: ErrorCodes.UNKNOWN_TYPE, t: et, message: `unknown type ${et}` }) };
  }
  try {
    return { frame: frame(t, value) };
  } catch (e) {
    if (!(e instanceof Invalid)) throw e;
    return { error: withId({ kind: "invalid_field", code: ErrorCodes.INVALID_FIELD, t, message: e.message }) };
  }
}
function decodeServerFrame(text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (e) {
    return { error: { kind: "malformed", code: ErrorCodes.MALFORMED_FRAME, message: String(e) } };
  }
  return decodeServerValue(value);
}

// src/view.ts
function byKey(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}
function sortedValues(m) {
  return [...m.keys()].sort(byKey).map((k) => m.get(k));
}
function toExtraInfo(e) {
  return { key: e.key, value: e.value, user: { id: e.user.id, name: e.user.name }, timeMs: e.time_ms };
}
function sameExtra(a, b) {
  return a !== void 0 && a.key === b.key && a.value === b.value && a.user.id === b.user.id && a.user.name === b.user.name && a.timeMs === b.timeMs;
}
function emptyView() {
  return { users: /* @__PURE__ */ new Map(), streams: /* @__PURE__ */ new Map(), extra: /* @__PURE__ */ new Map(), online: 0, usersPartial: false };
}
function viewFromState(state, me2) {
  const v = emptyView();
  for (const u of state.users ?? []) if (u.id !== me2) v.users.set(u.id, { id: u.id, name: u.name });
  for (const s of state.streams) v.streams.set(s.id, s);
  for (const e of state.extra) v.extra.set(e.key, toExtraInfo(e));
  v.online = state.online;
  v.usersPartial = usersPaged(state);
  return v;
}
function usersPaged(state) {
  return state.users_next !== void 0 && state.users_next !== "";
}
function diffViews(a, b, room, me2) {
  const out = [];
  const gone = sortedValues(a.users).filter((u) => u.id !== me2 && !b.users.has(u.id));
  const came = sortedValues(b.users).filter((u) => u.id !== me2 && !a.users.has(u.id));
  if (gone.length) out.push({ type: "roomUserUpdate", room, updateType: "DELETE", users: gone });
  if (came.length) out.push({ type: "roomUserUpdate", room, updateType: "ADD", users: came });
  out.push(...diffStreamsAndExtra(a, b, room, me2));
  return out;
}
function diffStreamsAndExtra(a, b, room, me2) {
  const out = [];
  const same = (x, y) => y !== void 0 && x.user.id === y.user.id;
  const othersA = sortedValues(a.streams).filter((s) => s.user.id !== me2);
  const othersB = sortedValues(b.streams).filter((s) => s.user.id !== me2);
  const sGone = othersA.filter((s) => !same(s, b.streams.get(s.id)));
  const sCame = othersB.filter((s) => !same(s, a.streams.get(s.id)));
  const sChanged = othersB.filter((s) => {
    const o = a.streams.get(s.id);
    return same(s, o) && o !== void 0 && o.extra !== s.extra;
  });
  if (sGone.length) {
    out.push({ type: "roomStreamUpdate", room, updateType: "DELETE", streams: sGone, extendedData: {} });
  }
  if (sCame.length) {
    out.push({ type: "roomStreamUpdate", room, updateType: "ADD", streams: sCame, extendedData: {} });
  }
  if (sChanged.length) out.push({ type: "roomStreamExtraInfoUpdate", room, streams: sChanged });
  const extra = sortedValues(b.extra).filter((e) => !sameExtra(a.extra.get(e.key), e));
  if (extra.length) out.push({ type: "roomExtraInfoUpdate", room, extra });
  return out;
}

// src/room.ts
function isIn(ph) {
  return ph.p === "active" || ph.p === "replaying";
}
function isLogining(ph) {
  return ph.p === "logining";
}
function isAway(ph) {
  return ph.p === "reconnecting" || ph.p === "relogining";
}
function isLoggingIn(ph) {
  return ph.p === "logining" || ph.p === "relogining";
}
function isRelogining(ph) {
  return ph.p === "relogining";
}
function answeredBySnapshot(ph) {
  return (ph.p === "logining" || ph.p === "relogining") && ph.answer === "snapshot";
}
var Room = class {
  /**
   * A room the app just asked to enter (login or switch), with the login settings sent again
   * with every fresh login, and the token for its logins.
   */
  constructor(config, token) {
    this.config = config;
    this.token = token;
    /** Where the room stands; changed only by the methods below. */
    this.ph = { p: "logining", answer: "ok" };
    /** The server's room session, acked in `resume`; undefined until logged in. */
    this.epoch = void 0;
    /** The last applied seq of the room channel. */
    this.seqRoom = 0;
    /** The last applied seq of the users channel. */
    this.seqUsers = 0;
    /** What the client knows of the room (the others, every stream, extra info). */
    this.view = emptyView();
    /**
     * The room-channel seq of the change each key of `view.extra` last took, for the keys changed
     * since the view's snapshot; a key not here was last changed at or before `extraFloor`, the
     * room seq of that snapshot. Tells whether the `ok` of the app's own set is older than what
     * the view holds ({@link Room.ownExtraSet}).
     */
    this.extraSeq = /* @__PURE__ */ new Map();
    /** See `extraSeq`. */
    this.extraFloor = 0;
    /**
     * Streams the app publishes here (id → extra), as it last asked and the server confirmed:
     * what is published again when the server lost them.
     */
    this.own = /* @__PURE__ */ new Map();
    /**
     * `resumed` named the room while its login was still held: the server has us there from
     * before (a login given up on a stalled path that got through later, say). If that held login
     * never lands (it fails, times out, or the app logs out first), the core leaves the room
     * quietly, as for any room the server has and the app gave up.
     */
    this.onServer = false;
  }
  /** Where the room stands. */
  get phase() {
    return this.ph;
  }
  /** The login (or fresh login) was answered with the room's state; returns the old view. */
  entered(state, seq, view) {
    this.ph = { p: "active" };
    this.onServer = false;
    return this.atState(state, seq, view);
  }
  /** A snapshot replaced what the client knew: new epoch, seqs and view; returns the old view. */
  atState(state, seq, view) {
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
  connectionLost() {
    if (isIn(this.ph)) {
      this.ph = { p: "reconnecting" };
      return true;
    }
    return false;
  }
  /** `resumed` kept the room (replay or snapshot): back in, streams checked at `resume_done`. */
  resumed() {
    this.ph = { p: "replaying" };
  }
  /** Back in without a replay to wait for (our own logout reached the server before the cut). */
  back() {
    this.ph = { p: "active" };
  }
  /** The replay is over, or the room is back by a fresh login. Returns whether it was replaying. */
  replayDone() {
    if (this.ph.p === "replaying") {
      this.ph = { p: "active" };
      return true;
    }
    return false;
  }
  /** A fresh login for the away room goes out. */
  relogining() {
    this.ph = { p: "relogining", answer: "ok" };
  }
  /** `resumed` said the server has the session in this room whose login was not answered. */
  answerBySnapshot() {
    if (this.ph.p === "logining" || this.ph.p === "relogining") this.ph = { p: this.ph.p, answer: "snapshot" };
  }
  /**
   * The `ok` of the app's own room extra set (`item`, made the room channel's event `seq`): when
   * a later change of the key is already in the view (the `ok` came after the replay that carried
   * it), returns the view's item if it differs, for the app to be told; otherwise the set is the
   * key's latest change and goes into the view (the server never echoes a client's own change
   * live). `item.timeMs` is unknown here (0): a later snapshot reports the key again with its time.
   */
  ownExtraSet(item, seq) {
    if (seq === void 0) return void 0;
    const last = this.extraSeq.get(item.key) ?? this.extraFloor;
    if (last > seq) {
      const now = this.view.extra.get(item.key);
      return now !== void 0 && now.value !== item.value ? now : void 0;
    }
    if (last < seq) {
      this.extraSeq.set(item.key, seq);
      this.view.extra.set(item.key, item);
    }
    return void 0;
  }
  /** Raises the channel positions to those an `ok` names; not for a room still logging in. */
  sawSeqs(seq) {
    if (isLogining(this.ph)) return;
    if (seq.room !== void 0) this.seqRoom = Math.max(this.seqRoom, seq.room);
    if (seq.users !== void 0) this.seqUsers = Math.max(this.seqUsers, seq.users);
  }
};

// src/requests.ts
function loginRoomOf(k) {
  if (k.k === "login" || k.k === "relogin") return k.room;
  if (k.k === "switch") return k.to;
  return void 0;
}
function leaves(p, room) {
  const f = p.frame;
  return f.t === "logout" && f.room === room || f.t === "switch" && f.from === room;
}
function touchesStream(k, room, stream2) {
  return (k.k === "publish" || k.k === "republish" || k.k === "unpublish") && k.room === room && k.stream === stream2;
}
var Requests = class {
  constructor() {
    /** By key: the order in which the requests were made. */
    this.pending = /* @__PURE__ */ new Map();
    /** The key of the last request made. */
    this.lastKey = 0;
    /** The wire id of the next request sent for the first time (never reused, across sessions). */
    this.nextId = 1;
    /** Retry waits since the last answer other than 1000004 (the `n` of the retry backoff). */
    this.retries = 0;
  }
  /** The keys, in the order the requests were made. */
  keys() {
    return [...this.pending.keys()].sort((a, b) => a - b);
  }
  /** A new request, held until {@link flush} sends it. */
  push(frame2, kind, handle, needsRoom) {
    this.pending.set(++this.lastKey, { frame: frame2, kind, handle, needsRoom, wire: { w: "held" } });
  }
  /**
   * The frames to send now, in order: first the requests that were in flight at a cut, again,
   * with their own ids, in id order; then the held ones `maySend` allows, in the order they were
   * made, each getting its id now — unless a request waits for its retry (its id must not be
   * overtaken).
   */
  flush(maySend) {
    const out = [];
    const again = [...this.pending.values()].filter((p) => p.wire.w === "unsent").sort((a, b) => a.wire.id - b.wire.id);
    for (const p of again) {
      p.wire = { w: "inFlight", id: p.wire.id };
      out.push({ ...p.frame });
    }
    if ([...this.pending.values()].some((p) => p.wire.w === "waiting")) return out;
    const fresh = this.keys().filter((key) => {
      const p = this.pending.get(key);
      return p.wire.w === "held" && maySend(p);
    });
    for (const key of fresh) {
      const p = this.pending.get(key);
      const id = this.nextId++;
      p.wire = { w: "inFlight", id };
      p.frame = { ...p.frame, id };
      out.push({ ...p.frame });
    }
    return out;
  }
  /** Takes the request in flight that wire id `id` answers. */
  takeAnswered(id) {
    return this.takeFirst((p) => p.wire.w === "inFlight" && p.wire.id === id);
  }
  /** The request in flight with wire id `id`. */
  inFlight(id) {
    return [...this.pending.values()].find((p) => p.wire.w === "inFlight" && p.wire.id === id);
  }
  /** The request in flight with wire id `id` was answered 1000004: it waits, until `deadline`. */
  wait(id, deadline) {
    const p = this.inFlight(id);
    if (!p) return;
    p.wire = { w: "waiting", id };
    p.retryDeadline = deadline;
  }
  /** The `n` of the next retry wait (and counts it). */
  nextRetry() {
    return this.retries++;
  }
  /** An answer other than 1000004 came: the service is back, the retry backoff starts over. */
  served() {
    this.retries = 0;
  }
  /**
   * The retry wait is over: takes out the waiting requests whose deadline has come (in the order
   * they were made); the others go again with their ids, like requests cut in flight.
   */
  endWait(now) {
    const expired = this.takeWhere(
      (p) => p.wire.w === "waiting" && p.retryDeadline !== void 0 && p.retryDeadline <= now
    ).map(([, p]) => p);
    for (const p of this.pending.values()) if (p.wire.w === "waiting") p.wire = { w: "unsent", id: p.wire.id };
    return expired;
  }
  /** The connection is gone: what was in flight goes again; abandoned logins are forgotten. */
  cut() {
    this.retain((p) => p.kind.k !== "abandoned");
    this.unsend();
  }
  /** Everything in flight goes again with its id (the session is being resumed or refused). */
  unsend() {
    for (const p of this.pending.values()) if (p.wire.w === "inFlight") p.wire = { w: "unsent", id: p.wire.id };
  }
  /** A new session: old ids mean nothing to it, so every request is held again. */
  forgetIds() {
    for (const p of this.pending.values()) p.wire = { w: "held" };
  }
  /** The waiting requests, in the order they were made. */
  all() {
    return this.keys().map((k) => this.pending.get(k));
  }
  /** Whether the app waits for the result of any request. */
  appWaits() {
    return [...this.pending.values()].some((p) => p.handle !== void 0);
  }
  /** Takes out every request `pick` chooses, with its key, in the order they were made. */
  takeWhere(pick) {
    const out = [];
    for (const key of this.keys()) {
      const p = this.pending.get(key);
      if (!pick(p)) continue;
      this.pending.delete(key);
      out.push([key, p]);
    }
    return out;
  }
  /** Takes out the first request (in the order they were made) that `pick` chooses. */
  takeFirst(pick) {
    for (const key of this.keys()) {
      const p = this.pending.get(key);
      if (!pick(p)) continue;
      this.pending.delete(key);
      return p;
    }
    return void 0;
  }
  /** Puts back a request taken out with {@link takeWhere}, at its place in the order. */
  putBack(key, p) {
    this.pending.set(key, p);
  }
  /** Keeps only the requests `keep` chooses. */
  retain(keep) {
    for (const [key, p] of this.pending) if (!keep(p)) this.pending.delete(key);
  }
  /** Forgets every request. */
  clear() {
    this.pending.clear();
  }
};

// src/retry.ts
function retryLater(m, now, id) {
  const p = m.requests.inFlight(id);
  if (!p) return false;
  const deadline = p.retryDeadline ?? retryDeadline(m, p.kind, now);
  if (now >= deadline) return false;
  m.requests.wait(id, deadline);
  const at = m.timers.get("retry") ?? now + retryDelayMs(m.requests.nextRetry(), m.random());
  m.timers.set("retry", Math.min(at, deadline));
  return true;
}
function retryDeadline(m, kind, now) {
  let own;
  if (kind.k === "login") own = m.timers.get({ login: kind.room });
  else if (kind.k === "switch") own = m.timers.get({ login: kind.to });
  else if (kind.k === "relogin") own = m.timers.get("reconnectWindow");
  return own ?? now + m.loginTimeoutMs;
}
function retryDue(m, now) {
  m.timers.stop("retry");
  for (const p of m.requests.endWait(now)) failRequest(m, p, ErrorCodes.SERVICE_UNAVAILABLE);
  flush(m);
}

// src/answers.ts
function noState() {
  return { streams: [], extra: [], online: 0, room_session: "" };
}
function onOk(m, f) {
  m.requests.served();
  const p = m.requests.takeAnswered(f.id);
  if (!p) {
    if (f.room !== void 0 && f.state !== void 0) abandonUnlessWanted(m, f.room);
    return;
  }
  const seq = f.seq;
  const k = p.kind;
  switch (k.k) {
    case "login":
    case "switch": {
      const room = k.k === "login" ? k.room : k.to;
      const r = m.rooms.get(room);
      if (!r || !isLogining(r.phase)) {
        abandonUnlessWanted(m, room);
        return;
      }
      logined(m, room, f.state ?? noState(), seq, p.handle);
      return;
    }
    case "relogin": {
      const r = m.rooms.get(k.room);
      if (!r || !isRelogining(r.phase)) {
        abandonUnlessWanted(m, k.room);
        return;
      }
      relogined(m, k.room, f.state ?? noState(), seq);
      return;
    }
    case "logout":
      forgetRoom(m, k.room);
      failRoomRequests(m, k.room, ErrorCodes.NOT_IN_ROOM);
      report(m, k.room, "LOGOUT", 0, NO_DATA());
      result(m, p.handle, 0);
      return;
    case "publish": {
      sawSeqs(m, k.room, seq);
      const r = m.rooms.get(k.room);
      if (r) {
        r.own.set(k.stream, k.extra);
        r.view.streams.set(k.stream, { id: k.stream, user: selfUser(m), extra: k.extra });
      }
      result(m, p.handle, 0);
      return;
    }
    case "republish": {
      sawSeqs(m, k.room, seq);
      const r = m.rooms.get(k.room);
      const extra = r?.own.get(k.stream);
      if (r && extra !== void 0) r.view.streams.set(k.stream, { id: k.stream, user: selfUser(m), extra });
      return;
    }
    case "unpublish":
      sawSeqs(m, k.room, seq);
      m.rooms.get(k.room)?.view.streams.delete(k.stream);
      result(m, p.handle, 0);
      return;
    case "stream_extra": {
      sawSeqs(m, k.room, seq);
      const r = m.rooms.get(k.room);
      if (r) {
        if (r.own.has(k.stream)) r.own.set(k.stream, k.extra);
        const s = r.view.streams.get(k.stream);
        if (s) r.view.streams.set(k.stream, { ...s, extra: k.extra });
      }
      result(m, p.handle, 0);
      return;
    }
    case "renew_token":
      m.token = k.token;
      for (const r of m.rooms.values()) r.token = k.token;
      result(m, p.handle, 0);
      return;
    case "quiet_logout":
      return;
    case "abandoned":
      abandonUnlessWanted(m, k.room);
      return;
    case "members": {
      const page = f.members ?? { users: [], count: 0, next: "" };
      const r = m.rooms.get(f.room ?? p.needsRoom ?? "");
      if (r && r.view.usersPartial) {
        const id = me(m);
        for (const u of page.users) if (u.id !== id) r.view.users.set(u.id, { id: u.id, name: u.name });
      }
      if (p.handle !== void 0) {
        emit(m, {
          type: "result",
          handle: p.handle,
          errorCode: 0,
          members: { room: f.room ?? "", users: page.users, count: page.count, nextFlag: page.next }
        });
      }
      return;
    }
    case "room_extra": {
      const r = m.rooms.get(k.room);
      const item = { key: k.key, value: k.value, user: selfUser(m), timeMs: 0 };
      const newer = r !== void 0 && isIn(r.phase) ? r.ownExtraSet(item, seq.room) : void 0;
      sawSeqs(m, k.room, seq);
      result(m, p.handle, 0);
      if (newer) emit(m, { type: "roomExtraInfoUpdate", room: k.room, extra: [newer] });
      return;
    }
    case "plain":
      sawSeqs(m, f.room ?? p.needsRoom, seq);
      result(m, p.handle, 0, f.message_id);
      return;
    case "left":
      sawSeqs(m, void 0, seq);
      result(m, p.handle, 0, f.message_id);
      return;
  }
}
function onError(m, now, f) {
  const code = f.code;
  if (f.id === void 0) {
    onSessionError(m, now, code);
    return;
  }
  if (code === ErrorCodes.SERVICE_UNAVAILABLE) {
    if (retryLater(m, now, f.id)) return;
  } else {
    m.requests.served();
  }
  const p = m.requests.takeAnswered(f.id);
  if (!p) return;
  failRequest(m, p, code);
}
function failRequest(m, p, code) {
  const k = p.kind;
  switch (k.k) {
    case "login":
    case "switch": {
      const room = k.k === "login" ? k.room : k.to;
      const r = m.rooms.get(room);
      if (r && isLogining(r.phase)) removeRoom(m, room, "LOGIN_FAILED", code, NO_DATA(), code);
      result(m, p.handle, code);
      return;
    }
    case "relogin": {
      const fail = ErrorCodes.RECONNECT_FAILED;
      const r = m.rooms.get(k.room);
      if (r && isRelogining(r.phase)) removeRoom(m, k.room, "RECONNECT_FAILED", fail, { code }, fail);
      stopWindowIfBack(m);
      return;
    }
    case "logout":
      if (code === ErrorCodes.NOT_IN_ROOM_LOGOUT) {
        forgetRoom(m, k.room);
        failRoomRequests(m, k.room, ErrorCodes.NOT_IN_ROOM);
      }
      report(m, k.room, "LOGOUT_FAILED", code, NO_DATA());
      result(m, p.handle, code);
      return;
    case "republish":
      m.rooms.get(k.room)?.own.delete(k.stream);
      return;
    case "quiet_logout":
      return;
    default:
      result(m, p.handle, code);
  }
}
function sawSeqs(m, room, seq) {
  if (room !== void 0) m.rooms.get(room)?.sawSeqs(seq);
  if (seq.direct !== void 0) m.directSeq = Math.max(m.directSeq, seq.direct);
}
function logined(m, room, state, seq, handle) {
  const id = me(m);
  const r = m.rooms.get(room);
  if (!r) return;
  const view = viewFromState(state, id);
  m.timers.stop({ login: room });
  r.entered(state, seq, view);
  report(m, room, "LOGINED", 0, { room_session_id: r.epoch });
  for (const e of diffViews(emptyView(), view, room, id)) emit(m, e);
  result(m, handle, 0);
  flush(m);
}
function abandon(m, room) {
  request(m, { t: "logout", id: 0, room }, { k: "quiet_logout" }, void 0, void 0);
}
function abandonUnlessWanted(m, room) {
  const r = m.rooms.get(room);
  if (r === void 0) abandon(m, room);
  else if (isLoggingIn(r.phase)) r.onServer = true;
}
function failRoomRequests(m, room, code) {
  const failed = m.requests.takeWhere((p) => p.needsRoom === room || loginRoomOf(p.kind) === room);
  for (const [key, p] of failed) {
    result(m, p.handle, code);
    if (loginRoomOf(p.kind) !== void 0 && p.wire.w === "inFlight") {
      m.requests.putBack(key, { ...p, handle: void 0, kind: { k: "abandoned", room } });
    }
  }
}
function leaveRoomRequests(m, room) {
  const sent = takeSentRoomRequests(m, room);
  failRoomRequests(m, room, ErrorCodes.NOT_IN_ROOM);
  answerAsLeft(m, sent);
}
function takeSentRoomRequests(m, room) {
  return m.requests.takeWhere(
    (p) => p.needsRoom === room && p.wire.w !== "held" && ["plain", "room_extra", "publish", "unpublish", "stream_extra"].includes(p.kind.k)
  );
}
function answerAsLeft(m, sent) {
  for (const [key, p] of sent) m.requests.putBack(key, { ...p, needsRoom: void 0, kind: { k: "left" } });
}
function kickedOut(m, room, code, data) {
  const sent = takeSentRoomRequests(m, room);
  removeRoom(m, room, "KICK_OUT", code, data, code);
  answerAsLeft(m, sent);
}
function removeRoom(m, room, reason, code, data, failCode) {
  const old = forgetRoom(m, room);
  report(m, room, reason, code, data);
  failRoomRequests(m, room, failCode);
  leaveIfOnServer(m, room, old);
}
function leaveIfOnServer(m, room, old) {
  if (old?.onServer) abandon(m, room);
}

// src/resume.ts
function ack(m) {
  const rooms = {};
  for (const id of roomIds(m)) {
    const r = m.rooms.get(id);
    if (isLoggingIn(r.phase) || r.epoch === void 0) continue;
    rooms[id] = { epoch: r.epoch, room: r.seqRoom, users: r.seqUsers };
  }
  for (const p of m.requests.all()) {
    const room = loginRoomOf(p.kind);
    if (room === void 0 || p.wire.w === "held") continue;
    const r = m.rooms.get(room);
    if (r && isLoggingIn(r.phase) && rooms[room] === void 0) rooms[room] = { epoch: "", room: 0, users: 0 };
  }
  return { direct: m.directSeq, rooms };
}
function loginSent(m, room) {
  for (const p of m.requests.all()) if (loginRoomOf(p.kind) === room && p.wire.w !== "held") return true;
  return false;
}
function snapshotAnswersLogin(m, room) {
  let login;
  for (const p of m.requests.all()) {
    if (loginRoomOf(p.kind) === room && p.wire.w !== "held") {
      login = p.wire.id;
      break;
    }
  }
  if (login === void 0) return false;
  const before = login;
  return !m.requests.all().some((p) => p.wire.w !== "held" && p.wire.id < before && leaves(p, room));
}
function onResumed(m, now, f) {
  const s = m.conn.session;
  if (m.conn.state !== "handshake" || !s) return;
  s.id = f.session;
  s.resumeToken = f.resume_token;
  m.conn.state = "resuming";
  startHeartbeat(m, now, f.heartbeat_ms);
  const away = roomsWhere(m, (p) => isAway(p) && !isRelogining(p));
  for (const room of roomsWhere(m, isLoggingIn)) {
    const o = f.rooms.get(room);
    if (o?.outcome === "snapshot" && snapshotAnswersLogin(m, room)) m.rooms.get(room)?.answerBySnapshot();
    else if (o?.outcome === "kicked") removeRoom(m, room, "KICK_OUT", o.code, NO_DATA(), o.code);
    else if (o !== void 0 && !loginSent(m, room)) {
      const r = m.rooms.get(room);
      if (r) r.onServer = true;
    }
  }
  for (const room of away) {
    const o = f.rooms.get(room);
    if (o === void 0) {
      const leaving = m.requests.all().some((p) => p.kind.k === "logout" && p.kind.room === room);
      if (leaving) {
        m.rooms.get(room)?.back();
        report(m, room, "RECONNECTED", 0, NO_DATA());
      } else {
        relogin(m, room);
      }
    } else if (o.outcome === "kicked") {
      kickedOut(m, room, o.code, NO_DATA());
    } else {
      m.rooms.get(room)?.resumed();
      report(m, room, "RECONNECTED", 0, NO_DATA());
    }
  }
  for (const room of [...f.rooms.keys()].sort(byKey)) {
    const o = f.rooms.get(room);
    if (!m.rooms.has(room) && o?.outcome !== "kicked") abandon(m, room);
  }
  stopWindowIfBack(m);
}
function onResumeDone(m) {
  if (m.conn.state !== "resuming") return;
  m.conn.state = "ready";
  for (const room of roomsWhere(m, (p) => p.p === "replaying")) republish(m, room);
  flush(m);
}
function onSnapshot(m, f) {
  const room = f.room;
  const r = m.rooms.get(room);
  if (!r) return;
  const ph = r.phase;
  if (isLogining(ph) && answeredBySnapshot(ph)) {
    const p = m.requests.takeFirst(
      (q) => (q.kind.k === "login" || q.kind.k === "switch") && loginRoomOf(q.kind) === room
    );
    logined(m, room, f.state, f.seq, p?.handle);
    return;
  }
  if (isRelogining(ph) && answeredBySnapshot(ph)) {
    m.requests.takeFirst((q) => q.kind.k === "relogin" && q.kind.room === room);
    relogined(m, room, f.state, f.seq);
    return;
  }
  if (!isIn(ph)) return;
  const view = viewFromState(f.state, me(m));
  const old = r.atState(f.state, f.seq, view);
  reportDiff(m, room, old, view);
}
function reportDiff(m, room, old, view) {
  const events = view.usersPartial ? [{ type: "roomUserListChanged", room, count: view.online }, ...diffStreamsAndExtra(old, view, room, me(m))] : diffViews(old, view, room, me(m));
  for (const e of events) emit(m, e);
  if (old.online !== view.online) emit(m, { type: "roomOnlineUserCountUpdate", room, count: view.online });
}
function relogin(m, room) {
  m.requests.retain((p) => !(p.kind.k === "relogin" && p.kind.room === room));
  const r = m.rooms.get(room);
  if (!r) return;
  r.relogining();
  const frame2 = { t: "login", id: 0, room, config: { ...r.config } };
  if (r.token !== void 0) frame2.token = r.token;
  request(m, frame2, { k: "relogin", room }, void 0, void 0);
}
function relogined(m, room, state, seq) {
  const r = m.rooms.get(room);
  if (!r) return;
  const view = viewFromState(state, me(m));
  const old = r.entered(state, seq, view);
  report(m, room, "RECONNECTED", 0, NO_DATA());
  reportDiff(m, room, old, view);
  stopWindowIfBack(m);
  republish(m, room);
  flush(m);
}
function republish(m, room) {
  const r = m.rooms.get(room);
  if (!r) return;
  r.replayDone();
  const missing = [...r.own.keys()].sort(byKey).filter((s) => !r.view.streams.has(s)).map((s) => [s, r.own.get(s)]);
  for (const [stream2, extra] of missing) {
    if (m.requests.all().some((p) => touchesStream(p.kind, room, stream2))) continue;
    request(m, { t: "publish", id: 0, room, stream: stream2, extra }, { k: "republish", room, stream: stream2 }, void 0, room);
  }
}

// src/connection.ts
var Connection = class {
  /** No connection yet; `heartbeatMs` is the interval in force until the server names one. */
  constructor(heartbeatMs) {
    this.heartbeatMs = heartbeatMs;
    /** Where the connection stands. */
    this.state = "idle";
    /** Attempts since the last loss (or failure), for the backoff; reset by `welcome` / `resumed`. */
    this.attempt = 0;
    /** The session to resume, once `welcome` gave one. */
    this.session = void 0;
    /** When a frame was last heard (or the attempt began): liveness runs from here. */
    this.lastHeard = 0;
  }
  /** A connection is open or on its way (its liveness is watched). */
  isLive() {
    return this.state === "connecting" || this.state === "handshake" || this.state === "resuming" || this.state === "ready";
  }
  /** The session is established on this connection (pings go out). */
  hasSession() {
    return this.state === "resuming" || this.state === "ready";
  }
  /** When the connection is judged dead: two heartbeat intervals after the last frame heard. */
  livenessDeadline() {
    return this.lastHeard + 2 * this.heartbeatMs;
  }
};
function heard(m, now) {
  m.conn.lastHeard = now;
  m.timers.set("liveness", m.conn.livenessDeadline());
}
function wantConnection(m, now) {
  if (m.conn.state === "idle") connect(m, now);
}
function connect(m, now) {
  m.conn.state = "connecting";
  m.timers.stop("attempt");
  heard(m, now);
  m.out.push({ connect: true });
}
function handleOpened(m, now) {
  if (m.conn.state !== "connecting") return;
  m.conn.state = "handshake";
  heard(m, now);
  const s = m.conn.session;
  if (s) {
    send(m, { t: "resume", v: 1, session: s.id, resume_token: s.resumeToken, ack: ack(m) });
  } else {
    sendHello(m);
  }
}
function sendHello(m) {
  const u = m.user ?? { id: "", name: "" };
  send(m, { t: "hello", v: 1, app_id: m.appId, user: { id: u.id, name: u.name }, token: m.token });
}
function handleClosed(m, now) {
  if (!m.conn.isLive()) return;
  lost(m, now, false);
  maybeEnd(m);
}
function handleRefused(m, now, retryAfterMs) {
  if (!m.conn.isLive()) return;
  handleClosed(m, now);
  if (m.conn.state === "waiting") {
    const at = now + retryAfterDelayMs(retryAfterMs, m.random());
    const current = m.timers.get("attempt");
    if (current === void 0 || current < at) m.timers.set("attempt", at);
  }
}
function handleNetworkOnline(m, now) {
  if (m.conn.state === "waiting") attemptDue(m, now);
}
function attemptDue(m, now) {
  m.timers.stop("attempt");
  if (m.rooms.size === 0) m.conn.state = "idle";
  else connect(m, now);
}
function lost(m, now, disconnect) {
  if (disconnect) m.out.push({ disconnect: true });
  m.conn.state = "idle";
  m.timers.stopConnection();
  m.requests.cut();
  if (m.rooms.size === 0) {
    endSession(m, false);
    return;
  }
  const gone = roomIds(m).filter((id) => m.rooms.get(id)?.connectionLost());
  for (const id of gone) report(m, id, "RECONNECTING", ErrorCodes.RECONNECTING, NO_DATA());
  if (anyAway(m) && !m.timers.isSet("reconnectWindow")) {
    m.timers.set("reconnectWindow", now + m.reconnectWindowMs);
  }
  scheduleAttempt(m, now);
}
function scheduleAttempt(m, now) {
  const wait = Math.floor(backoffDelayMs(m.conn.attempt, m.random()));
  m.conn.attempt++;
  m.conn.state = "waiting";
  m.timers.set("attempt", now + wait);
}
function endSession(m, bye) {
  switch (m.conn.state) {
    case "ready":
    case "resuming":
      if (bye) send(m, { t: "bye" });
      m.out.push({ disconnect: true });
      break;
    case "connecting":
    case "handshake":
      m.out.push({ disconnect: true });
      break;
    default:
      break;
  }
  m.conn.state = "idle";
  m.conn.session = void 0;
  m.conn.attempt = 0;
  m.timers.stop("reconnectWindow");
  m.timers.stopConnection();
  m.directSeq = 0;
  m.requests.retain((p) => p.handle !== void 0);
}
function maybeEnd(m) {
  if (m.rooms.size === 0 && m.conn.state !== "ready" && m.conn.state !== "resuming") {
    for (const [, p] of m.requests.takeWhere((p2) => p2.handle !== void 0)) {
      if (p.kind.k === "renew_token") {
        m.token = p.kind.token;
        result(m, p.handle, 0);
      } else result(m, p.handle, ErrorCodes.RECONNECT_FAILED);
    }
  }
  if (m.rooms.size === 0 && !m.requests.appWaits() && (m.conn.state !== "idle" || m.conn.session !== void 0)) {
    endSession(m, true);
  }
}
function shutdown(m, now) {
  for (const room of m.rooms.keys()) m.timers.stop({ login: room });
  m.timers.stop("retry");
  m.rooms.clear();
  m.requests.clear();
  endSession(m, true);
  void now;
}
function startHeartbeat(m, now, hb) {
  if (hb !== void 0) {
    m.conn.heartbeatMs = clampHeartbeatMs(hb);
    m.timers.set("liveness", m.conn.livenessDeadline());
  }
  m.timers.set("ping", now + m.conn.heartbeatMs);
  m.conn.attempt = 0;
}
function pingDue(m, now) {
  send(m, { t: "ping", ack: ack(m) });
  const hb = m.conn.heartbeatMs;
  const next = (m.timers.get("ping") ?? now) + hb;
  m.timers.set("ping", next <= now ? now + hb : next);
}
function onWelcome(m, now, f) {
  if (m.conn.state !== "handshake" || m.conn.session !== void 0) return;
  m.conn.session = { id: f.session, resumeToken: f.resume_token };
  m.directSeq = 0;
  m.conn.state = "ready";
  startHeartbeat(m, now, f.heartbeat_ms);
  const away = roomsWhere(m, isAway);
  if (away.length > 0) {
    m.requests.forgetIds();
    m.requests.retain((p) => !(p.kind.k === "relogin" && away.includes(p.kind.room)));
    for (const room of away) relogin(m, room);
  }
  flush(m);
}
function onSessionError(m, now, code) {
  if (m.conn.state !== "handshake") return;
  if (code === ErrorCodes.SERVICE_UNAVAILABLE) {
    lost(m, now, true);
    return;
  }
  if (m.conn.session !== void 0) {
    m.conn.session = void 0;
    m.directSeq = 0;
    m.requests.unsend();
    sendHello(m);
    return;
  }
  for (const room of roomIds(m)) {
    const r = m.rooms.get(room);
    if (r && isLogining(r.phase)) {
      removeRoom(m, room, "LOGIN_FAILED", code, NO_DATA(), code);
    } else {
      const fail = ErrorCodes.RECONNECT_FAILED;
      removeRoom(m, room, "RECONNECT_FAILED", fail, { code }, fail);
    }
  }
  for (const [, p] of m.requests.takeWhere(() => true)) result(m, p.handle, code);
  endSession(m, false);
}
function reconnectFailed(m, now) {
  const code = ErrorCodes.RECONNECT_FAILED;
  for (const id of roomsWhere(m, isAway)) removeRoom(m, id, "RECONNECT_FAILED", code, NO_DATA(), code);
  if (m.conn.state !== "ready") {
    const failed = m.requests.takeWhere(
      (p) => p.needsRoom === void 0 && (p.kind.k === "renew_token" || p.kind.k === "left")
    );
    for (const [, p] of failed) result(m, p.handle, code);
    const logining = m.rooms.size > 0;
    endSession(m, false);
    if (logining) wantConnection(m, now);
  }
}

// src/timer.ts
var TimerTable = class {
  constructor() {
    /** When each fixed timer fires, if armed. */
    this.fixed = /* @__PURE__ */ new Map();
    /** When each logging-in room's login fails, by room id. */
    this.login = /* @__PURE__ */ new Map();
  }
  /** Arms `timer` at `at` (re-arming it if it was armed). */
  set(timer, at) {
    if (typeof timer === "string") this.fixed.set(timer, at);
    else this.login.set(timer.login, at);
  }
  /** Disarms `timer`. */
  stop(timer) {
    if (typeof timer === "string") this.fixed.delete(timer);
    else this.login.delete(timer.login);
  }
  /** When `timer` fires, if it is armed. */
  get(timer) {
    return typeof timer === "string" ? this.fixed.get(timer) : this.login.get(timer.login);
  }
  /** Whether `timer` is armed. */
  isSet(timer) {
    return this.get(timer) !== void 0;
  }
  /** Whether `timer` is armed and its time has come. */
  expired(timer, now) {
    const t = this.get(timer);
    return t !== void 0 && t <= now;
  }
  /** The rooms whose login deadline has come, in id order. */
  expiredLogins(now) {
    return [...this.login.keys()].sort(byKey).filter((room) => this.login.get(room) <= now);
  }
  /** Disarms the connection's timers (liveness, attempt, ping): there is no connection. */
  stopConnection() {
    this.fixed.delete("liveness");
    this.fixed.delete("attempt");
    this.fixed.delete("ping");
  }
  /** The earliest armed deadline. */
  next() {
    let t;
    for (const x of [...this.fixed.values(), ...this.login.values()]) if (t === void 0 || x < t) t = x;
    return t;
  }
};

// src/command.ts
function loginRoom(m, now, a) {
  loginRoomInner(m, now, a);
  maybeEnd(m);
}
function loginRoomInner(m, now, a) {
  const room = a.room;
  if (m.rooms.has(room)) {
    result(m, a.handle, ErrorCodes.ALREADY_IN_ROOM);
    return;
  }
  const user2 = { id: a.user.id, name: a.user.name ?? "" };
  if (m.user !== void 0 && (m.conn.session !== void 0 || m.conn.state !== "idle")) {
    if (m.user.id !== user2.id) {
      report(m, room, "LOGINING", 0, NO_DATA());
      report(m, room, "LOGIN_FAILED", ErrorCodes.TOKEN_USER_MISMATCH, NO_DATA());
      result(m, a.handle, ErrorCodes.TOKEN_USER_MISMATCH);
      return;
    }
  } else {
    m.user = user2;
    m.token = a.token;
  }
  const config = wireConfig(a.config);
  addLoginingRoom(m, now, room, new Room(config, a.token));
  report(m, room, "LOGINING", 0, NO_DATA());
  wantConnection(m, now);
  request(m, { t: "login", id: 0, room, config: { ...config }, token: a.token }, { k: "login", room }, a.handle, void 0);
}
function logoutRoom(m, now, a) {
  const room = a.room;
  const r = m.rooms.get(room);
  if (!r) {
    const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
    report(m, room, "LOGOUT_FAILED", code, NO_DATA());
    result(m, a.handle, code);
  } else if (isLogining(r.phase)) {
    const old = forgetRoom(m, room);
    failRoomRequests(m, room, ErrorCodes.NOT_IN_ROOM);
    report(m, room, "LOGOUT", 0, NO_DATA());
    result(m, a.handle, 0);
    leaveIfOnServer(m, room, old);
  } else {
    request(m, { t: "logout", id: 0, room }, { k: "logout", room }, a.handle, room);
  }
  void now;
  maybeEnd(m);
}
function switchRoom(m, now, a) {
  const { from, to } = a;
  if (!m.rooms.has(from)) {
    const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
    report(m, from, "LOGOUT_FAILED", code, NO_DATA());
    result(m, a.handle, code);
  } else if (m.rooms.has(to)) {
    result(m, a.handle, ErrorCodes.ALREADY_IN_ROOM);
  } else {
    const old = forgetRoom(m, from);
    leaveRoomRequests(m, from);
    report(m, from, "LOGOUT", 0, NO_DATA());
    const config = wireConfig(a.config);
    addLoginingRoom(m, now, to, new Room(config, a.token ?? old?.token));
    report(m, to, "LOGINING", 0, NO_DATA());
    wantConnection(m, now);
    const f = { t: "switch", id: 0, from, to, config: { ...config } };
    if (a.token !== void 0) f.token = a.token;
    request(m, f, { k: "switch", to }, a.handle, void 0);
  }
  maybeEnd(m);
}
function publish(m, now, a) {
  const { room, stream: stream2 } = a;
  const extra = a.extra ?? "";
  m.streamRooms.set(stream2, room);
  roomRequest(m, a.handle, room, { t: "publish", id: 0, room, stream: stream2, extra }, { k: "publish", room, stream: stream2, extra });
  void now;
  maybeEnd(m);
}
function unpublish(m, now, a) {
  const { room, stream: stream2 } = a;
  m.rooms.get(room)?.own.delete(stream2);
  m.streamRooms.delete(stream2);
  roomRequest(m, a.handle, room, { t: "unpublish", id: 0, room, stream: stream2 }, { k: "unpublish", room, stream: stream2 });
  void now;
  maybeEnd(m);
}
function setStreamExtra(m, now, a) {
  const { room, stream: stream2, extra } = a;
  roomRequest(m, a.handle, room, { t: "stream_extra", id: 0, room, stream: stream2, extra }, { k: "stream_extra", room, stream: stream2, extra });
  void now;
  maybeEnd(m);
}
function setRoomExtra(m, now, a) {
  const { room, key, value } = a;
  roomRequest(m, a.handle, room, { t: "room_extra", id: 0, room, key, value }, { k: "room_extra", room, key, value });
  void now;
  maybeEnd(m);
}
function message(m, now, a) {
  const { room, kind } = a;
  roomRequest(m, a.handle, room, { t: kind, id: 0, room, message: a.message }, { k: "plain" });
  void now;
  maybeEnd(m);
}
function command(m, now, a) {
  const { room } = a;
  roomRequest(m, a.handle, room, { t: "command", id: 0, room, to: [...a.to], command: a.command }, { k: "plain" });
  void now;
  maybeEnd(m);
}
function renewToken(m, now, a) {
  const token = a.token;
  if (m.conn.session === void 0 && m.conn.state === "idle") {
    m.token = token;
    result(m, a.handle, 0);
  } else {
    request(m, { t: "renew_token", id: 0, token }, { k: "renew_token", token }, a.handle, void 0);
  }
  void now;
  maybeEnd(m);
}
function members(m, now, a) {
  const { room } = a;
  roomRequest(m, a.handle, room, { t: "members", id: 0, room, cursor: a.nextFlag, limit: a.count }, { k: "members" });
  void now;
  maybeEnd(m);
}
function roomRequest(m, handle, room, frame2, kind) {
  if (!m.rooms.has(room)) {
    result(m, handle, ErrorCodes.NOT_IN_ROOM);
    return;
  }
  request(m, frame2, kind, handle, room);
}

// src/channel.ts
function onKicked(m, f) {
  if (!m.rooms.has(f.room)) return;
  const d = f.extended_data;
  const data = d !== null && typeof d === "object" && !Array.isArray(d) ? d : NO_DATA();
  kickedOut(m, f.room, f.code, data);
}
function onTokenWillExpire(m, f) {
  if (m.rooms.has(f.room)) emit(m, { type: "roomTokenWillExpire", room: f.room, remainingS: f.remaining_s });
}
function onEvent(m, f) {
  const id = me(m);
  const room = f.room;
  const seq = f.seq;
  const b = f.body;
  if (f.ch === "direct") {
    if (seq !== void 0) {
      if (seq <= m.directSeq) return;
      m.directSeq = seq;
    }
    const inRoom = m.rooms.get(room);
    if (b.kind === "command" && inRoom !== void 0 && isIn(inRoom.phase) && b.from.id !== id) {
      emit(m, { type: "IMRecvCustomCommand", room, from: b.from, command: b.command, timeMs: b.time_ms });
    }
    return;
  }
  const r = m.rooms.get(room);
  if (!r || !isIn(r.phase)) return;
  if ((f.ch === "room" || f.ch === "users") && seq !== void 0) {
    const last = f.ch === "room" ? r.seqRoom : r.seqUsers;
    if (seq <= last) return;
    if (f.ch === "room") r.seqRoom = seq;
    else r.seqUsers = seq;
  }
  const v = r.view;
  switch (b.kind) {
    case "user_add": {
      const added = [];
      for (const u of b.users) {
        if (u.id === id) continue;
        const known = v.users.has(u.id);
        v.users.set(u.id, u);
        if (!known) added.push(u);
      }
      if (added.length) emit(m, { type: "roomUserUpdate", room, updateType: "ADD", users: added });
      return;
    }
    case "user_delete": {
      const gone = [];
      for (const u of b.users) {
        if (u.id === id) continue;
        const old = v.users.get(u.id);
        if (old) {
          v.users.delete(u.id);
          gone.push(old);
        }
      }
      if (gone.length) emit(m, { type: "roomUserUpdate", room, updateType: "DELETE", users: gone });
      return;
    }
    // A large room's batch (§9.10): applied as a set, like `user_add` and `user_delete` above
    // (deletes first); the count is reported like `online`.
    case "user_update": {
      if (b.list_changed) {
        v.users.clear();
        v.usersPartial = true;
      }
      const gone = [];
      for (const u of b.deleted) {
        if (u.id === id) continue;
        const old = v.users.get(u.id);
        if (old) {
          v.users.delete(u.id);
          gone.push(old);
        }
      }
      const added = [];
      for (const u of b.added) {
        if (u.id === id) continue;
        const known = v.users.has(u.id);
        v.users.set(u.id, u);
        if (!known) added.push(u);
      }
      if (gone.length) emit(m, { type: "roomUserUpdate", room, updateType: "DELETE", users: gone });
      if (added.length) emit(m, { type: "roomUserUpdate", room, updateType: "ADD", users: added });
      if (b.list_changed) emit(m, { type: "roomUserListChanged", room, count: b.count });
      if (v.online !== b.count) {
        v.online = b.count;
        emit(m, { type: "roomOnlineUserCountUpdate", room, count: b.count });
      }
      return;
    }
    case "stream_add": {
      const added = [];
      for (const s of b.streams) {
        const isNew = !v.streams.has(s.id);
        v.streams.set(s.id, s);
        if (isNew && s.user.id !== id) added.push(s);
      }
      if (added.length) emit(m, { type: "roomStreamUpdate", room, updateType: "ADD", streams: added, extendedData: {} });
      return;
    }
    case "stream_delete": {
      const gone = [];
      for (const s of b.streams) {
        const old = v.streams.get(s.id);
        if (old) {
          v.streams.delete(s.id);
          if (old.user.id !== id) gone.push(old);
        }
      }
      if (gone.length) {
        emit(m, { type: "roomStreamUpdate", room, updateType: "DELETE", streams: gone, extendedData: { reason: b.reason } });
      }
      return;
    }
    case "stream_extra": {
      const changed = [];
      for (const s of b.streams) {
        const old = v.streams.get(s.id);
        if (old) v.streams.set(s.id, { ...old, extra: s.extra });
        if (s.user.id !== id) changed.push(s);
      }
      if (changed.length) emit(m, { type: "roomStreamExtraInfoUpdate", room, streams: changed });
      return;
    }
    case "room_extra": {
      const item = toExtraInfo({ key: b.key, value: b.value, user: b.user, time_ms: b.time_ms });
      const own = item.user.id === id && m.requests.all().some((p) => p.kind.k === "room_extra" && p.kind.room === room && p.kind.key === item.key && p.kind.value === item.value);
      if (!own) emit(m, { type: "roomExtraInfoUpdate", room, extra: [item] });
      r.extraSeq.set(item.key, seq ?? r.seqRoom);
      v.extra.set(item.key, item);
      return;
    }
    // A replay carries the client's own events too (§9.3): they are counted (above), never
    // reported.
    case "broadcast":
    case "barrage":
      if (b.from.id === id) return;
      emit(m, {
        type: b.kind === "broadcast" ? "IMRecvBroadcastMessage" : "IMRecvBarrageMessage",
        room,
        from: b.from,
        message: b.message,
        messageId: b.message_id,
        timeMs: b.time_ms
      });
      return;
    case "command":
      if (b.from.id === id) return;
      emit(m, { type: "IMRecvCustomCommand", room, from: b.from, command: b.command, timeMs: b.time_ms });
      return;
    case "online":
      if (v.online !== b.count) {
        v.online = b.count;
        emit(m, { type: "roomOnlineUserCountUpdate", room, count: b.count });
      }
      return;
  }
}

// src/core.ts
function wireConfig(c) {
  const cfg = c ?? {};
  const max = cfg.max_members ?? cfg.maxMemberCount ?? 0;
  const notify = cfg.user_status_notify ?? cfg.userUpdate ?? true;
  const n = typeof max === "number" && Number.isFinite(max) ? max : 0;
  return { max_members: Math.max(0, Math.floor(n)), user_status_notify: notify !== false };
}
var NO_DATA = () => ({});
function send(m, f) {
  m.out.push({ send: f });
}
function emit(m, e) {
  m.out.push({ event: e });
}
function report(m, room, reason, errorCode, extendedData) {
  m.states.set(room, reason);
  emit(m, { type: "roomStateChanged", room, reason, errorCode, extendedData });
}
function result(m, handle, errorCode, messageId) {
  if (handle === void 0) return;
  const e = { type: "result", handle, errorCode };
  if (messageId !== void 0) e.messageId = messageId;
  emit(m, e);
}
function me(m) {
  return m.user?.id ?? "";
}
function selfUser(m) {
  return m.user ? { id: m.user.id, name: m.user.name } : { id: "", name: "" };
}
function roomIds(m) {
  return [...m.rooms.keys()].sort(byKey);
}
function roomsWhere(m, pick) {
  return roomIds(m).filter((id) => pick(m.rooms.get(id).phase));
}
function anyAway(m) {
  return [...m.rooms.values()].some((r) => isAway(r.phase));
}
function stopWindowIfBack(m) {
  if (!anyAway(m)) m.timers.stop("reconnectWindow");
}
function addLoginingRoom(m, now, room, r) {
  m.rooms.set(room, r);
  m.timers.set({ login: room }, now + m.loginTimeoutMs);
}
function forgetRoom(m, room) {
  m.timers.stop({ login: room });
  const r = m.rooms.get(room);
  m.rooms.delete(room);
  return r;
}
function request(m, frame2, kind, handle, needsRoom) {
  m.requests.push(frame2, kind, handle, needsRoom);
  flush(m);
}
function flush(m) {
  if (m.conn.state !== "ready") return;
  const maySend = (p) => {
    if (p.needsRoom === void 0) return true;
    const r = m.rooms.get(p.needsRoom);
    return r !== void 0 && isIn(r.phase);
  };
  for (const f of m.requests.flush(maySend)) send(m, f);
}
var ParlorCore = class {
  constructor(config = {}) {
    this.m = {
      appId: config.appId ?? 1,
      loginTimeoutMs: config.loginTimeoutMs ?? 3e4,
      reconnectWindowMs: config.reconnectWindowMs ?? 3e5,
      random: config.random ?? Math.random,
      out: [],
      conn: new Connection(Math.max(1, config.heartbeatMs ?? 1e4)),
      timers: new TimerTable(),
      user: void 0,
      token: "",
      directSeq: 0,
      rooms: /* @__PURE__ */ new Map(),
      states: /* @__PURE__ */ new Map(),
      requests: new Requests(),
      streamRooms: /* @__PURE__ */ new Map()
    };
  }
  // ------------------------------------------------------------------ introspection
  /** The last reported state of `room` (`LOGOUT` for a room never seen). */
  roomState(room) {
    return this.m.states.get(room) ?? "LOGOUT";
  }
  /** The rooms the client is in or logging in to, sorted. */
  roomIds() {
    return roomIds(this.m);
  }
  /** The others in a room, as the client knows them. */
  roomUsers(room) {
    const r = this.m.rooms.get(room);
    return r ? sortedValues(r.view.users) : [];
  }
  /** Everyone in a room (the client too) as last told: the login's `online`, then each count. */
  roomOnline(room) {
    return this.m.rooms.get(room)?.view.online ?? 0;
  }
  /** The others' streams in a room, as the client knows them. */
  roomStreams(room) {
    const r = this.m.rooms.get(room);
    const id = me(this.m);
    return r ? sortedValues(r.view.streams).filter((s) => s.user.id !== id) : [];
  }
  /** The room's extra info, as the client knows it. */
  roomExtraInfo(room) {
    const r = this.m.rooms.get(room);
    return r ? sortedValues(r.view.extra) : [];
  }
  /**
   * The room in which the app publishes `stream`: where the server confirmed it, else where the
   * app last asked to publish it (until it stops it).
   */
  roomOfOwnStream(stream2) {
    for (const id of roomIds(this.m)) if (this.m.rooms.get(id)?.own.has(stream2)) return id;
    return this.m.streamRooms.get(stream2);
  }
  /** The current heartbeat interval (ms). */
  currentHeartbeatMs() {
    return this.m.conn.heartbeatMs;
  }
  /** The next output, if any. */
  pollOutput() {
    return this.m.out.shift();
  }
  /** When {@link handleTimeout} must be called next (absolute ms), or `undefined`. */
  pollTimeout() {
    return this.m.timers.next();
  }
  /** Time has come: call at (or after) {@link pollTimeout}. */
  handleTimeout(now) {
    const m = this.m;
    if (m.timers.expired("retry", now)) retryDue(m, now);
    if (m.timers.expired("reconnectWindow", now)) {
      m.timers.stop("reconnectWindow");
      reconnectFailed(m, now);
    }
    for (const room of m.timers.expiredLogins(now)) {
      const code = ErrorCodes.LOGIN_TIMEOUT;
      removeRoom(m, room, "LOGIN_FAILED", code, NO_DATA(), code);
    }
    if (m.timers.expired("liveness", now)) lost(m, now, true);
    else if (m.timers.expired("attempt", now)) attemptDue(m, now);
    if (m.conn.hasSession() && m.timers.expired("ping", now)) pingDue(m, now);
    maybeEnd(m);
  }
  /**
   * The network is back (the browser's `online` event): a connection attempt waiting for its
   * backoff starts at once.
   */
  handleNetworkOnline(now) {
    handleNetworkOnline(this.m, now);
  }
  // ------------------------------------------------------------------ app commands
  /**
   * `login_room`: LOGINING at once, then LOGINED or LOGIN_FAILED; the outcome is reported as a
   * `result` event with `handle`. The first login of a session names the user and the token.
   */
  loginRoom(now, a) {
    loginRoom(this.m, now, a);
  }
  /** `logout_room`: LOGOUT when answered; LOGOUT_FAILED 1002002 for a room the client is not in. */
  logoutRoom(now, a) {
    logoutRoom(this.m, now, a);
  }
  /**
   * `switch_room`: LOGOUT for `from` at once (the server leaves it in the same step), LOGINING
   * for `to`, then LOGINED or LOGIN_FAILED for `to`.
   */
  switchRoom(now, a) {
    switchRoom(this.m, now, a);
  }
  /** `publish` a stream (signalling only). */
  publish(now, a) {
    publish(this.m, now, a);
  }
  /** `unpublish` a stream; it is never re-published after this, whatever the answer. */
  unpublish(now, a) {
    unpublish(this.m, now, a);
  }
  /** `stream_extra`: set a published stream's extra info. */
  setStreamExtra(now, a) {
    setStreamExtra(this.m, now, a);
  }
  /** `room_extra`: set one key of the room's extra info. */
  setRoomExtra(now, a) {
    setRoomExtra(this.m, now, a);
  }
  /** `broadcast` or `barrage` a message; the result carries `messageId`. */
  message(now, a) {
    message(this.m, now, a);
  }
  /** `command`: a custom command to some users (empty `to`: everyone else in the room). */
  command(now, a) {
    command(this.m, now, a);
  }
  /** `members`: one page of a room's member list; the result carries `members`. */
  queryRoomMemberList(now, a) {
    members(this.m, now, a);
  }
  /** `renew_token`: replaces the session's token (and every room's) when answered. */
  renewToken(now, a) {
    renewToken(this.m, now, a);
  }
  /**
   * Ends the session (`bye` when ready) and forgets every room and request without reporting
   * anything: for tearing the engine down.
   */
  shutdown(now) {
    shutdown(this.m, now);
  }
  // ------------------------------------------------------------------ connection events
  /** The connection asked for by `connect` is open. */
  handleOpened(now) {
    handleOpened(this.m, now);
  }
  /**
   * A connect attempt was refused with HTTP 503 and `Retry-After` (protocol §9.7): as
   * {@link handleClosed}, the next attempt not before the server's slot.
   */
  handleRefused(now, retryAfterMs) {
    handleRefused(this.m, now, retryAfterMs);
  }
  /** The connection closed, or a connect attempt failed (any close code). */
  handleClosed(now) {
    handleClosed(this.m, now);
  }
  // ------------------------------------------------------------------ frames
  /**
   * A text frame arrived. It is decoded by the rules of the Rust decoder (see `decode.ts`); a
   * frame that does not decode, or of an unknown type, is ignored. Returns whether it was applied.
   */
  handleText(now, text) {
    const d = decodeServerFrame(text);
    if (d.error) return false;
    this.apply(now, d.frame);
    return true;
  }
  /** A parsed frame arrived: decoded as {@link handleText} does. Returns whether it was applied. */
  handleFrame(now, f) {
    const d = decodeServerValue(f);
    if (d.error) return false;
    this.apply(now, d.frame);
    return true;
  }
  apply(now, f) {
    const m = this.m;
    const c = m.conn.state;
    if (c === "idle" || c === "waiting" || c === "connecting") return;
    heard(m, now);
    switch (f.t) {
      case "welcome":
        onWelcome(m, now, f);
        break;
      case "resumed":
        onResumed(m, now, f);
        break;
      case "resume_done":
        onResumeDone(m);
        break;
      case "pong":
        break;
      case "ok":
        onOk(m, f);
        break;
      case "error":
        onError(m, now, f);
        break;
      case "kicked":
        onKicked(m, f);
        break;
      case "event":
        onEvent(m, f);
        break;
      case "snapshot":
        onSnapshot(m, f);
        break;
      case "token_will_expire":
        onTokenWillExpire(m, f);
        break;
    }
    maybeEnd(m);
  }
};

// src/api.ts
function parlorWebSocketURL(server) {
  const u = new URL(server);
  if (u.protocol === "http:") u.protocol = "ws:";
  else if (u.protocol === "https:") u.protocol = "wss:";
  else if (u.protocol !== "ws:" && u.protocol !== "wss:") {
    throw new Error(`unsupported server URL ${server}: use ws://, wss://, http:// or https://`);
  }
  if (u.pathname === "" || u.pathname === "/") u.pathname = "/v1/ws";
  u.hash = "";
  return u.toString();
}

// src/engine.ts
var OPEN = 1;
function defaultClock() {
  const perf = globalThis.performance;
  return {
    now: perf ? () => perf.now() : () => Date.now(),
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (t) => globalThis.clearTimeout(t)
  };
}
function pubUser(u) {
  return { userID: u.id, userName: u.name };
}
function pubStream(s) {
  return { streamID: s.id, user: pubUser(s.user), extraInfo: s.extra };
}
function pubExtra(e) {
  return { key: e.key, value: e.value, updateUser: pubUser(e.user), updateTime: e.timeMs };
}
var ParlorEngine = class {
  /**
   * @param appID - the app id (unsigned 32-bit, > 0)
   * @param server - the server: `ws://host:port/v1/ws`, or `http(s)://host[:port]` (the
   *   WebSocket URL is derived)
   * @param options - timeouts and test hooks; all optional
   */
  constructor(appID, server, options = {}) {
    this.handlers = /* @__PURE__ */ new Map();
    this.waiting = /* @__PURE__ */ new Map();
    this.roomOrder = [];
    this.nextHandle = 1;
    this.ws = null;
    this.timer = void 0;
    this.driving = false;
    this.destroyed = false;
    this.onOnline = () => {
      if (this.destroyed) return;
      this.core.handleNetworkOnline(this.clock.now());
      this.drive();
    };
    this.appID = appID;
    this.url = parlorWebSocketURL(server);
    this.clock = options.clock ?? defaultClock();
    const WS = options.WebSocket ?? globalThis.WebSocket;
    if (!WS) throw new Error("no WebSocket implementation: pass options.WebSocket");
    this.WS = WS;
    this.core = new ParlorCore({
      appId: appID,
      heartbeatMs: options.heartbeatMs,
      loginTimeoutMs: options.loginTimeoutMs,
      reconnectWindowMs: options.reconnectWindowMs,
      random: options.random
    });
    const win = globalThis.window;
    this.net = options.networkEvents === void 0 ? win ?? null : options.networkEvents;
    this.net?.addEventListener("online", this.onOnline);
  }
  // ------------------------------------------------------------------ events
  /** Adds a handler for an event. */
  on(event, handler) {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, set = /* @__PURE__ */ new Set());
    set.add(handler);
  }
  /** Removes a handler added with {@link ParlorEngine.on} (or every handler of the event). */
  off(event, handler) {
    if (handler === void 0) this.handlers.delete(event);
    else this.handlers.get(event)?.delete(handler);
  }
  fire(event, ...args) {
    for (const h of [...this.handlers.get(event) ?? []]) {
      try {
        h(...args);
      } catch (e) {
        console.error(`parlor: ${event} handler threw`, e);
      }
    }
  }
  // ------------------------------------------------------------------ rooms
  /**
   * Logs in to a room. Reports LOGINING now, then LOGINED (followed by `roomUserUpdate` /
   * `roomStreamUpdate` / `roomExtraInfoUpdate` ADDs with what the room holds) or LOGIN_FAILED.
   * The first login names the user and opens the session; every room of an engine has the
   * same user.
   *
   * @param roomID - the room (1–128 bytes)
   * @param token - a token for this user (and optionally this room), minted by your server
   * @param user - who logs in
   * @param config - login settings
   * @returns true when logged in
   */
  loginRoom(roomID, token, user2, config = {}) {
    const handle = this.newHandle();
    if (!this.roomOrder.includes(roomID)) this.roomOrder.push(roomID);
    const p = this.wait(handle).then((r) => r.errorCode === 0);
    this.call(
      (now) => this.core.loginRoom(now, {
        room: roomID,
        user: { id: user2.userID, name: user2.userName ?? "" },
        token,
        config: { maxMemberCount: config.maxMemberCount, userUpdate: config.userUpdate },
        handle
      })
    );
    return p;
  }
  /**
   * Logs out of a room (LOGOUT), or of every room when `roomID` is omitted. A room the client
   * is not in is LOGOUT_FAILED 1002002.
   */
  async logoutRoom(roomID) {
    if (roomID === void 0) {
      const rooms = this.core.roomIds();
      const results = await Promise.all(rooms.map((r) => this.logoutRoom(r)));
      return results.find((r) => r.errorCode !== 0) ?? { errorCode: 0 };
    }
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.logoutRoom(now, { room: roomID, handle }));
    return p;
  }
  /**
   * Leaves `fromRoomID` and enters `toRoomID` in one step: LOGOUT for the first at once,
   * LOGINING then LOGINED / LOGIN_FAILED for the second.
   *
   * @returns true when logged in to `toRoomID`
   */
  switchRoom(fromRoomID, toRoomID, config = {}) {
    const handle = this.newHandle();
    if (!this.roomOrder.includes(toRoomID)) this.roomOrder.push(toRoomID);
    const p = this.wait(handle).then((r) => r.errorCode === 0);
    this.call(
      (now) => this.core.switchRoom(now, {
        from: fromRoomID,
        to: toRoomID,
        token: config.token,
        config: { maxMemberCount: config.maxMemberCount, userUpdate: config.userUpdate },
        handle
      })
    );
    return p;
  }
  /**
   * Replaces the token (for the session and its rooms), e.g. after `roomTokenWillExpire`.
   * The wire request is per session; `roomID` is accepted for API symmetry.
   *
   * @returns true when the server accepted the token
   */
  renewToken(roomID, token) {
    void roomID;
    const handle = this.newHandle();
    const p = this.wait(handle).then((r) => r.errorCode === 0);
    this.call((now) => this.core.renewToken(now, { token, handle }));
    return p;
  }
  /** The room's last reported state (`LOGOUT` for a room the client is not in). */
  getRoomState(roomID) {
    const s = this.core.roomState(roomID);
    return s === "KICK_OUT" ? "KICKOUT" : s;
  }
  /** The others in a room as the client knows them. */
  getRoomUsers(roomID) {
    return this.core.roomUsers(roomID).map(pubUser);
  }
  /**
   * Everyone in a room (this client too) as last told: the login's count, then each
   * `roomOnlineUserCountUpdate`. 0 for a room the client is not in. In a large room (protocol
   * §9.10) this is the size to show, as `getRoomUsers` holds only the pages seen.
   */
  getRoomOnlineUserCount(roomID) {
    return this.core.roomOnline(roomID);
  }
  /** Others' streams in a room as the client knows them. */
  getRoomStreams(roomID) {
    return this.core.roomStreams(roomID).map(pubStream);
  }
  // ------------------------------------------------------------------ streams
  /**
   * Publishes a stream (signalling only: the room learns of it through `roomStreamUpdate`).
   * Works while the room is LOGINED or RECONNECTED (held meanwhile); after a reconnection in
   * which the server dropped it, the engine publishes it again by itself.
   *
   * @param streamID - 1–256 bytes of `A-Z a-z 0-9 _ -`
   * @param config - `extraInfo`, and `roomID` (default: the first room logged in to)
   */
  startPublishingStream(streamID, config = {}) {
    const room = config.roomID ?? this.defaultRoom();
    if (room === void 0) return Promise.resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call(
      (now) => this.core.publish(now, { room, stream: streamID, extra: config.extraInfo ?? "", handle })
    );
    return p;
  }
  /** Stops publishing a stream. */
  stopPublishingStream(streamID) {
    const room = this.core.roomOfOwnStream(streamID);
    if (room === void 0) return Promise.resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.unpublish(now, { room, stream: streamID, handle }));
    return p;
  }
  /** Sets a published stream's extra info (others get `roomStreamExtraInfoUpdate`). */
  setStreamExtraInfo(streamID, extraInfo) {
    const room = this.core.roomOfOwnStream(streamID);
    if (room === void 0) return Promise.resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call(
      (now) => this.core.setStreamExtra(now, { room, stream: streamID, extra: extraInfo, handle })
    );
    return p;
  }
  // ------------------------------------------------------------------ room extra info, messages
  /** Sets one key of the room's extra info (others get `roomExtraInfoUpdate`). */
  setRoomExtraInfo(roomID, key, value) {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.setRoomExtra(now, { room: roomID, key, value, handle }));
    return p;
  }
  /** Sends a broadcast message to the room; resolves with its `messageID`. */
  sendBroadcastMessage(roomID, message2) {
    return this.message("broadcast", roomID, message2);
  }
  /** Sends a barrage message to the room; resolves with its `messageID`. */
  sendBarrageMessage(roomID, message2) {
    return this.message("barrage", roomID, message2);
  }
  /**
   * Sends a custom command to some users of the room (an empty list: everyone else in it).
   */
  sendCustomCommand(roomID, command2, toUserIDs = []) {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.command(now, { room: roomID, to: toUserIDs, command: command2, handle }));
    return p;
  }
  /**
   * One page of the room's member list, in the order of user ids (protocol §9.9): `nextFlag` ""
   * for the first page, then the page's `nextFlag` until it is "". `count` is 1 to 500. A member
   * who stays in the room through a whole walk is on exactly one page.
   */
  queryRoomMemberList(roomID, config = {}) {
    const handle = this.newHandle();
    const p = this.wait(handle);
    const a = { room: roomID, nextFlag: config.nextFlag ?? "", count: config.count ?? 100, handle };
    this.call((now) => this.core.queryRoomMemberList(now, a));
    return p.then((r) => {
      const page = r.members;
      return {
        errorCode: r.errorCode,
        roomID,
        memberList: (page?.users ?? []).map((u) => ({ userID: u.id, userName: u.name ?? "" })),
        count: page?.count ?? 0,
        nextFlag: page?.nextFlag ?? ""
      };
    });
  }
  message(kind, roomID, message2) {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.message(now, { kind, room: roomID, message: message2, handle }));
    return p;
  }
  // ------------------------------------------------------------------ lifecycle
  /**
   * Ends the session (`bye`: logged out of every room at once, without events; no `bye` while a
   * resume waits for its answer, the server then ends the session at its timeout), closes the
   * connection and stops every timer. Calls still waiting resolve with errorCode 1009005.
   */
  destroy() {
    if (this.destroyed) return;
    this.call((now) => this.core.shutdown(now));
    this.destroyed = true;
    this.net?.removeEventListener("online", this.onOnline);
    this.clearTimer();
    this.closeSocket();
    for (const [h, resolve] of [...this.waiting]) {
      this.waiting.delete(h);
      resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    }
  }
  /**
   * DEBUG ONLY — for demos and tests, not for apps: drops the WebSocket as a network cut
   * would, without `bye`. The engine then reconnects and resumes as after a real loss.
   */
  _debugDropConnection() {
    if (!this.ws || this.destroyed) return;
    this.closeSocket(4e3, "debug drop");
    this.core.handleClosed(this.clock.now());
    this.drive();
  }
  // ------------------------------------------------------------------ the IO loop
  defaultRoom() {
    const rooms = new Set(this.core.roomIds());
    return this.roomOrder.find((r) => rooms.has(r)) ?? [...rooms][0];
  }
  newHandle() {
    return this.nextHandle++;
  }
  wait(handle) {
    return new Promise((resolve) => {
      if (this.destroyed) resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
      else this.waiting.set(handle, resolve);
    });
  }
  call(fn) {
    if (this.destroyed) return;
    fn(this.clock.now());
    this.drive();
  }
  /** Carries out the core's outputs and re-arms the timer. Not re-entrant. */
  drive() {
    if (this.driving) return;
    this.driving = true;
    try {
      for (let o = this.core.pollOutput(); o !== void 0; o = this.core.pollOutput()) {
        this.perform(o);
      }
    } finally {
      this.driving = false;
    }
    this.armTimer();
  }
  perform(o) {
    if ("connect" in o) this.openSocket();
    else if ("disconnect" in o) this.closeSocket();
    else if ("send" in o) {
      const ws = this.ws;
      if (ws && ws.readyState === OPEN) ws.send(JSON.stringify(o.send));
    } else if ("event" in o) this.dispatch(o.event);
  }
  armTimer() {
    if (this.destroyed) return;
    const at = this.core.pollTimeout();
    if (at === this.timerAt && this.timer !== void 0) return;
    this.clearTimer();
    if (at === void 0) return;
    this.timerAt = at;
    const delay = Math.max(0, at - this.clock.now());
    this.timer = this.clock.setTimeout(() => {
      this.timer = void 0;
      this.timerAt = void 0;
      if (this.destroyed) return;
      this.core.handleTimeout(this.clock.now());
      this.drive();
    }, delay);
  }
  clearTimer() {
    if (this.timer !== void 0) this.clock.clearTimeout(this.timer);
    this.timer = void 0;
    this.timerAt = void 0;
  }
  openSocket() {
    this.closeSocket();
    let ws;
    try {
      ws = new this.WS(this.url);
    } catch {
      this.clock.setTimeout(() => {
        if (this.destroyed || this.ws !== null) return;
        this.core.handleClosed(this.clock.now());
        this.drive();
      }, 0);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (this.ws !== ws) return;
      this.core.handleOpened(this.clock.now());
      this.drive();
    };
    ws.onmessage = (ev) => {
      if (this.ws !== ws) return;
      if (typeof ev.data === "string") {
        this.core.handleText(this.clock.now(), ev.data);
        this.drive();
      }
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.core.handleClosed(this.clock.now());
      this.drive();
    };
    ws.onerror = () => {
    };
  }
  closeSocket(code = CloseCodes.NORMAL, reason = "") {
    const ws = this.ws;
    if (!ws) return;
    this.ws = null;
    ws.onopen = null;
    ws.onmessage = null;
    ws.onclose = null;
    ws.onerror = null;
    try {
      ws.close(code, reason);
    } catch {
    }
  }
  dispatch(e) {
    switch (e.type) {
      case "result": {
        const resolve = this.waiting.get(e.handle);
        if (resolve) {
          this.waiting.delete(e.handle);
          const r = { errorCode: e.errorCode };
          if (e.messageId !== void 0) r.messageID = e.messageId;
          if (e.members !== void 0) r.members = e.members;
          resolve(r);
        }
        return;
      }
      case "roomStateChanged": {
        const reason = e.reason === "KICK_OUT" ? "KICKOUT" : e.reason;
        this.fire("roomStateChanged", e.room, reason, e.errorCode, e.extendedData);
        return;
      }
      case "roomUserUpdate":
        this.fire("roomUserUpdate", e.room, e.updateType, e.users.map(pubUser));
        return;
      case "roomStreamUpdate":
        this.fire("roomStreamUpdate", e.room, e.updateType, e.streams.map(pubStream), e.extendedData);
        return;
      case "roomStreamExtraInfoUpdate":
        this.fire("roomStreamExtraInfoUpdate", e.room, e.streams.map(pubStream));
        return;
      case "roomExtraInfoUpdate":
        this.fire("roomExtraInfoUpdate", e.room, e.extra.map(pubExtra));
        return;
      case "roomUserListChanged":
        this.fire("roomUserListChanged", e.room, e.count);
        return;
      case "roomOnlineUserCountUpdate":
        this.fire("roomOnlineUserCountUpdate", e.room, e.count);
        return;
      case "roomTokenWillExpire":
        this.fire("roomTokenWillExpire", e.room, e.remainingS);
        return;
      case "IMRecvBroadcastMessage":
      case "IMRecvBarrageMessage":
        this.fire(e.type, e.room, [
          { message: e.message, messageID: e.messageId, sendTime: e.timeMs, fromUser: pubUser(e.from) }
        ]);
        return;
      case "IMRecvCustomCommand":
        this.fire("IMRecvCustomCommand", e.room, pubUser(e.from), e.command);
        return;
      default:
        return;
    }
  }
};
export {
  BACKOFF_BASE_MS,
  BACKOFF_CAP_MS,
  CloseCodes,
  DURATION_BOUNDS,
  ErrorCodes,
  NO_DATA,
  ParlorCore,
  ParlorEngine,
  RETRY_AFTER_JITTER_MS,
  RETRY_AFTER_MAX_MS,
  RETRY_BASE_MS,
  RETRY_CAP_MS,
  addLoginingRoom,
  anyAway,
  backoffCeilingMs,
  backoffDelayMs,
  clampHeartbeatMs,
  decodeServerFrame,
  decodeServerValue,
  emit,
  flush,
  forgetRoom,
  me,
  parlorWebSocketURL,
  report,
  request,
  result,
  retryAfterDelayMs,
  retryCeilingMs,
  retryDelayMs,
  roomIds,
  roomsWhere,
  selfUser,
  send,
  stopWindowIfBack,
  wireConfig
};
