// src/types.ts
var ErrorCodes = {
  SUCCESS: 0,
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

// src/core.ts
var NO_DATA = () => ({});
function byKey(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}
function sortedValues(m) {
  return [...m.keys()].sort(byKey).map((k) => m.get(k));
}
function str(v, dflt = "") {
  return typeof v === "string" ? v : dflt;
}
function num(v, dflt = 0) {
  return typeof v === "number" && Number.isFinite(v) ? v : dflt;
}
function optNum(v) {
  return typeof v === "number" && Number.isFinite(v) ? v : void 0;
}
function obj(v) {
  return v !== null && typeof v === "object" && !Array.isArray(v) ? v : {};
}
function toUser(v) {
  const o = obj(v);
  return { id: str(o.id), name: str(o.name) };
}
function toUsers(v) {
  return Array.isArray(v) ? v.map(toUser) : [];
}
function toStream(v) {
  const o = obj(v);
  return { id: str(o.id), user: toUser(o.user), extra: str(o.extra) };
}
function toStreams(v) {
  return Array.isArray(v) ? v.map(toStream) : [];
}
function toExtra(v) {
  const o = obj(v);
  return { key: str(o.key), value: str(o.value), user: toUser(o.user), timeMs: num(o.time_ms) };
}
function sameExtra(a, b) {
  return a !== void 0 && a.key === b.key && a.value === b.value && a.user.id === b.user.id && a.user.name === b.user.name && a.timeMs === b.timeMs;
}
function loginRoomOf(k) {
  if (k.k === "login" || k.k === "relogin") return k.room;
  if (k.k === "switch") return k.to;
  return void 0;
}
function kickedCode(status) {
  const parsed = Number.parseInt(status.slice("kicked:".length).trim(), 10);
  return Number.isFinite(parsed) && parsed >= 0 ? parsed : ErrorCodes.KICKED_BY_SERVER;
}
function emptyView() {
  return { users: /* @__PURE__ */ new Map(), streams: /* @__PURE__ */ new Map(), extra: /* @__PURE__ */ new Map(), online: 0 };
}
function viewFromState(f, me) {
  const v = emptyView();
  for (const u of toUsers(f.users)) if (u.id !== me) v.users.set(u.id, u);
  for (const s of toStreams(f.streams)) v.streams.set(s.id, s);
  for (const e of Array.isArray(f.extra) ? f.extra.map(toExtra) : []) v.extra.set(e.key, e);
  v.online = num(f.online);
  return v;
}
function diffViews(a, b, room, me) {
  const out = [];
  const gone = sortedValues(a.users).filter((u) => u.id !== me && !b.users.has(u.id));
  const came = sortedValues(b.users).filter((u) => u.id !== me && !a.users.has(u.id));
  if (gone.length) out.push({ type: "roomUserUpdate", room, updateType: "DELETE", users: gone });
  if (came.length) out.push({ type: "roomUserUpdate", room, updateType: "ADD", users: came });
  const same = (x, y) => y !== void 0 && x.user.id === y.user.id;
  const othersA = sortedValues(a.streams).filter((s) => s.user.id !== me);
  const othersB = sortedValues(b.streams).filter((s) => s.user.id !== me);
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
function wireConfig(c) {
  const cfg = c ?? {};
  const max = cfg.max_members ?? cfg.maxMemberCount ?? 0;
  const notify = cfg.user_status_notify ?? cfg.userUpdate ?? true;
  return { max_members: Math.max(0, Math.floor(num(max))), user_status_notify: notify !== false };
}
var ParlorCore = class {
  constructor(config = {}) {
    this.out = [];
    this.conn = { s: "idle" };
    this.attempt = 0;
    this.token = "";
    this.lastHeard = 0;
    this.directSeq = 0;
    this.nextId = 1;
    /** Pending requests are keyed in the order the app (or the core) made them. */
    this.nextKey = 0;
    this.rooms = /* @__PURE__ */ new Map();
    this.states = /* @__PURE__ */ new Map();
    this.pending = /* @__PURE__ */ new Map();
    this.appId = config.appId ?? 1;
    this.heartbeatMs = Math.max(1, config.heartbeatMs ?? 1e4);
    this.loginTimeoutMs = config.loginTimeoutMs ?? 3e4;
    this.reconnectWindowMs = config.reconnectWindowMs ?? 3e5;
    this.random = config.random ?? Math.random;
  }
  // ------------------------------------------------------------------ introspection
  /** The last reported state of `room` (`LOGOUT` for a room never seen). */
  roomState(room) {
    return this.states.get(room) ?? "LOGOUT";
  }
  /** The rooms the client is in or logging in to, sorted. */
  roomIds() {
    return [...this.rooms.keys()].sort(byKey);
  }
  /** The others in a room, as the client knows them. */
  roomUsers(room) {
    const r = this.rooms.get(room);
    return r ? sortedValues(r.view.users) : [];
  }
  /** The others' streams in a room, as the client knows them. */
  roomStreams(room) {
    const r = this.rooms.get(room);
    const me = this.me();
    return r ? sortedValues(r.view.streams).filter((s) => s.user.id !== me) : [];
  }
  /** The room's extra info, as the client knows it. */
  roomExtraInfo(room) {
    const r = this.rooms.get(room);
    return r ? sortedValues(r.view.extra) : [];
  }
  /** The room in which the app publishes `stream`, if any. */
  roomOfOwnStream(stream) {
    for (const id of this.roomIds()) if (this.rooms.get(id)?.own.has(stream)) return id;
    return void 0;
  }
  /** The current heartbeat interval (ms). */
  currentHeartbeatMs() {
    return this.heartbeatMs;
  }
  // ------------------------------------------------------------------ outputs and time
  /** The next output, or `undefined` when there is none. */
  pollOutput() {
    return this.out.shift();
  }
  /** When {@link handleTimeout} must be called next (absolute ms), or `undefined`. */
  pollTimeout() {
    let t;
    const put = (x) => {
      if (x !== void 0 && (t === void 0 || x < t)) t = x;
    };
    put(this.windowEnd);
    for (const r of this.rooms.values()) put(r.loginDeadline);
    switch (this.conn.s) {
      case "waiting":
        put(this.conn.at);
        break;
      case "connecting":
      case "handshake":
      case "resuming":
      case "ready":
        put(this.livenessDeadline());
        put(this.nextPing);
        break;
      default:
        break;
    }
    return t;
  }
  livenessDeadline() {
    return this.lastHeard + 2 * this.heartbeatMs;
  }
  /** Time has come: call at (or after) {@link pollTimeout}. */
  handleTimeout(now) {
    if (this.windowEnd !== void 0 && this.windowEnd <= now) {
      this.windowEnd = void 0;
      this.reconnectFailed(now);
    }
    for (const id of this.roomIds()) {
      const r = this.rooms.get(id);
      if (r && r.loginDeadline !== void 0 && r.loginDeadline <= now) {
        const code = ErrorCodes.LOGIN_TIMEOUT;
        this.removeRoom(id, "LOGIN_FAILED", code, NO_DATA(), code);
      }
    }
    const c = this.conn;
    if (c.s === "connecting" || c.s === "handshake" || c.s === "resuming" || c.s === "ready") {
      if (this.livenessDeadline() <= now) this.lost(now, true);
    } else if (c.s === "waiting" && c.at <= now) {
      if (this.rooms.size === 0) this.conn = { s: "idle" };
      else this.connect(now);
    }
    if ((this.conn.s === "ready" || this.conn.s === "resuming") && this.nextPing !== void 0 && this.nextPing <= now) {
      this.send({ t: "ping", ack: this.ack() });
      const next = this.nextPing + this.heartbeatMs;
      this.nextPing = next <= now ? now + this.heartbeatMs : next;
    }
    this.maybeEnd();
  }
  /**
   * The network is back (the browser's `online` event): a reconnection attempt waiting for its
   * backoff is made at once. (An addition of the Web SDK; the Rust core has no such input.)
   */
  handleNetworkOnline(now) {
    if (this.conn.s === "waiting") {
      if (this.rooms.size === 0) this.conn = { s: "idle" };
      else this.connect(now);
    }
  }
  // ------------------------------------------------------------------ outputs
  send(f) {
    this.out.push({ send: f });
  }
  emit(e) {
    this.out.push({ event: e });
  }
  report(room, reason, errorCode, extendedData) {
    this.states.set(room, reason);
    this.emit({ type: "roomStateChanged", room, reason, errorCode, extendedData });
  }
  result(handle, errorCode, messageId) {
    if (handle === void 0) return;
    const e = { type: "result", handle, errorCode };
    if (messageId !== void 0) e.messageId = messageId;
    this.emit(e);
  }
  me() {
    return this.user?.id ?? "";
  }
  ack() {
    const rooms = {};
    for (const id of this.roomIds()) {
      const r = this.rooms.get(id);
      if (r.phase === "LOGINING" || r.relogin || r.epoch === void 0) continue;
      rooms[id] = { epoch: r.epoch, room: r.seqRoom, users: r.seqUsers };
    }
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key);
      const room = loginRoomOf(p.kind);
      if (room === void 0 || p.wire === void 0) continue;
      const r = this.rooms.get(room);
      if (r && (r.phase === "LOGINING" || r.relogin) && rooms[room] === void 0) {
        rooms[room] = { epoch: "", room: 0, users: 0 };
      }
    }
    return { direct: this.directSeq, rooms };
  }
  // ------------------------------------------------------------------ requests
  /**
   * Queues a request; it goes out now if it may, else when the connection and room allow. Its
   * `id` is given when it is first sent (see {@link flush}).
   */
  request(frameOf, kind, handle, needsRoom) {
    const key = ++this.nextKey;
    this.pending.set(key, { frame: frameOf(0), kind, handle, needsRoom, sent: false, wire: void 0 });
    this.flush();
  }
  /** The pending requests' keys, in the order they were made. */
  pendingKeys() {
    return [...this.pending.keys()].sort((a, b) => a - b);
  }
  maySend(p) {
    if (p.needsRoom === void 0) return true;
    return this.rooms.get(p.needsRoom)?.phase === "ACTIVE";
  }
  /**
   * Sends what may go: first the requests that were in flight at a cut, again, with their own
   * ids, in id order (the server answers repeats from memory); then the ones held meanwhile, in
   * the order they were made, each getting its id now — ids are given at sending, so they
   * increase on the wire even when a held request goes out after a later one (§9.1).
   */
  flush() {
    if (this.conn.s !== "ready") return;
    const again = [...this.pending.values()].filter((p) => p.wire !== void 0 && !p.sent).sort((a, b) => a.wire - b.wire);
    for (const p of again) {
      p.sent = true;
      this.send({ ...p.frame });
    }
    const fresh = this.pendingKeys().filter((key) => {
      const p = this.pending.get(key);
      return p.wire === void 0 && !p.sent && this.maySend(p);
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
  takeAnswered(id) {
    if (id === void 0) return void 0;
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key);
      if (p.sent && p.wire === id) {
        this.pending.delete(key);
        return p;
      }
    }
    return void 0;
  }
  /** Fails every request that needs `room` (and a login for it) with `code`. */
  failRoomRequests(room, code) {
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key);
      if (!p) continue;
      if (p.needsRoom !== room && loginRoomOf(p.kind) !== room) continue;
      this.pending.delete(key);
      this.result(p.handle, code);
      if (loginRoomOf(p.kind) !== void 0 && p.sent) {
        this.pending.set(key, { ...p, handle: void 0, kind: { k: "abandoned", room } });
      }
    }
  }
  removeRoom(room, reason, code, data, failCode) {
    this.rooms.delete(room);
    this.report(room, reason, code, data);
    this.failRoomRequests(room, failCode);
  }
  newRoom(config, token, now) {
    return {
      phase: "LOGINING",
      config,
      token,
      loginDeadline: now + this.loginTimeoutMs,
      epoch: void 0,
      seqRoom: 0,
      seqUsers: 0,
      view: emptyView(),
      own: /* @__PURE__ */ new Map(),
      relogin: false,
      republishCheck: false,
      loginBySnapshot: false
    };
  }
  // ------------------------------------------------------------------ app commands
  /**
   * `login_room`: LOGINING at once, then LOGINED or LOGIN_FAILED; the outcome is reported as a
   * `result` event with `handle`. The first login of a session names the user and the token.
   */
  loginRoom(now, a) {
    this.loginRoomInner(now, a);
    this.maybeEnd();
  }
  loginRoomInner(now, a) {
    const room = a.room;
    if (this.rooms.has(room)) {
      this.result(a.handle, ErrorCodes.ALREADY_IN_ROOM);
      return;
    }
    const user = { id: a.user.id, name: a.user.name ?? "" };
    if (this.user !== void 0 && (this.session !== void 0 || this.conn.s !== "idle")) {
      if (this.user.id !== user.id) {
        this.report(room, "LOGINING", 0, NO_DATA());
        this.report(room, "LOGIN_FAILED", ErrorCodes.TOKEN_USER_MISMATCH, NO_DATA());
        this.result(a.handle, ErrorCodes.TOKEN_USER_MISMATCH);
        return;
      }
    } else {
      this.user = user;
      this.token = a.token;
    }
    const config = wireConfig(a.config);
    this.rooms.set(room, this.newRoom(config, a.token, now));
    this.report(room, "LOGINING", 0, NO_DATA());
    this.wantConnection(now);
    this.request(
      (id) => ({ t: "login", id, room, config: { ...config }, token: a.token }),
      { k: "login", room },
      a.handle,
      void 0
    );
  }
  /** `logout_room`: LOGOUT when answered; LOGOUT_FAILED 1002002 for a room the client is not in. */
  logoutRoom(now, a) {
    const room = a.room;
    const r = this.rooms.get(room);
    if (!r) {
      const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
      this.report(room, "LOGOUT_FAILED", code, NO_DATA());
      this.result(a.handle, code);
    } else if (r.phase === "LOGINING") {
      this.rooms.delete(room);
      this.failRoomRequests(room, ErrorCodes.NOT_IN_ROOM);
      this.report(room, "LOGOUT", 0, NO_DATA());
      this.result(a.handle, 0);
    } else {
      this.request((id) => ({ t: "logout", id, room }), { k: "logout", room }, a.handle, room);
    }
    void now;
    this.maybeEnd();
  }
  /**
   * `switch_room`: LOGOUT for `from` at once (the server leaves it in the same step), LOGINING
   * for `to`, then LOGINED or LOGIN_FAILED for `to`.
   */
  switchRoom(now, a) {
    const { from, to } = a;
    if (!this.rooms.has(from)) {
      const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
      this.report(from, "LOGOUT_FAILED", code, NO_DATA());
      this.result(a.handle, code);
    } else if (this.rooms.has(to)) {
      this.result(a.handle, ErrorCodes.ALREADY_IN_ROOM);
    } else {
      const old = this.rooms.get(from);
      this.rooms.delete(from);
      this.failRoomRequests(from, ErrorCodes.NOT_IN_ROOM);
      this.report(from, "LOGOUT", 0, NO_DATA());
      const config = wireConfig(a.config);
      this.rooms.set(to, this.newRoom(config, a.token ?? old?.token, now));
      this.report(to, "LOGINING", 0, NO_DATA());
      this.wantConnection(now);
      this.request(
        (id) => {
          const f = { t: "switch", id, from, to, config: { ...config } };
          if (a.token !== void 0) f.token = a.token;
          return f;
        },
        { k: "switch", to },
        a.handle,
        void 0
      );
    }
    this.maybeEnd();
  }
  /** `publish` a stream (signalling only). */
  publish(now, a) {
    const { room, stream } = a;
    const extra = a.extra ?? "";
    this.roomRequest(
      a.handle,
      room,
      (id) => ({ t: "publish", id, room, stream, extra }),
      { k: "publish", room, stream, extra }
    );
    void now;
    this.maybeEnd();
  }
  /** `unpublish` a stream; it is never re-published after this, whatever the answer. */
  unpublish(now, a) {
    const { room, stream } = a;
    this.rooms.get(room)?.own.delete(stream);
    this.roomRequest(
      a.handle,
      room,
      (id) => ({ t: "unpublish", id, room, stream }),
      { k: "unpublish", room, stream }
    );
    void now;
    this.maybeEnd();
  }
  /** `stream_extra`: set a published stream's extra info. */
  setStreamExtra(now, a) {
    const { room, stream, extra } = a;
    this.roomRequest(
      a.handle,
      room,
      (id) => ({ t: "stream_extra", id, room, stream, extra }),
      { k: "stream_extra", room, stream, extra }
    );
    void now;
    this.maybeEnd();
  }
  /** `room_extra`: set one key of the room's extra info. */
  setRoomExtra(now, a) {
    const { room, key, value } = a;
    this.roomRequest(a.handle, room, (id) => ({ t: "room_extra", id, room, key, value }), {
      k: "plain"
    });
    void now;
    this.maybeEnd();
  }
  /** `broadcast` or `barrage` a message; the result carries `messageId`. */
  message(now, a) {
    const { room, message, kind } = a;
    this.roomRequest(a.handle, room, (id) => ({ t: kind, id, room, message }), { k: "plain" });
    void now;
    this.maybeEnd();
  }
  /** `command`: a custom command to some users (empty `to`: everyone else in the room). */
  command(now, a) {
    const { room, command } = a;
    const to = [...a.to];
    this.roomRequest(a.handle, room, (id) => ({ t: "command", id, room, to, command }), {
      k: "plain"
    });
    void now;
    this.maybeEnd();
  }
  /** `renew_token`: replaces the session's token (and every room's) when answered. */
  renewToken(now, a) {
    const token = a.token;
    if (this.session === void 0 && this.conn.s === "idle") {
      this.token = token;
      this.result(a.handle, 0);
    } else {
      this.request((id) => ({ t: "renew_token", id, token }), { k: "renew_token", token }, a.handle, void 0);
    }
    void now;
    this.maybeEnd();
  }
  roomRequest(handle, room, frameOf, kind) {
    if (!this.rooms.has(room)) {
      this.result(handle, ErrorCodes.NOT_IN_ROOM);
      return;
    }
    this.request(frameOf, kind, handle, room);
  }
  wantConnection(now) {
    if (this.conn.s === "idle") this.connect(now);
  }
  connect(now) {
    this.conn = { s: "connecting" };
    this.lastHeard = now;
    this.out.push({ connect: true });
  }
  /**
   * Ends the session (`bye` when ready) and forgets every room and request without reporting
   * anything: for tearing the engine down.
   */
  shutdown(now) {
    this.rooms.clear();
    this.pending.clear();
    this.endSession(true);
    void now;
  }
  // ------------------------------------------------------------------ connection events
  /** The connection asked for by `connect` is open. */
  handleOpened(now) {
    if (this.conn.s !== "connecting") return;
    this.conn = { s: "handshake" };
    this.lastHeard = now;
    if (this.session) {
      this.send({
        t: "resume",
        v: 1,
        session: this.session.id,
        resume_token: this.session.resumeToken,
        ack: this.ack()
      });
    } else {
      this.sendHello();
    }
  }
  sendHello() {
    const u = this.user ?? { id: "", name: "" };
    this.send({ t: "hello", v: 1, app_id: this.appId, user: { id: u.id, name: u.name }, token: this.token });
  }
  /** The connection closed, or a connect attempt failed (any close code). */
  handleClosed(now) {
    if (this.conn.s === "idle" || this.conn.s === "waiting") return;
    this.lost(now, false);
  }
  /** The connection is gone (closed, failed, or judged dead). */
  lost(now, disconnect) {
    if (disconnect) this.out.push({ disconnect: true });
    this.conn = { s: "idle" };
    this.nextPing = void 0;
    for (const [key, p] of this.pending) if (p.kind.k === "abandoned") this.pending.delete(key);
    for (const p of this.pending.values()) p.sent = false;
    if (this.rooms.size === 0) {
      this.endSession(false);
      return;
    }
    for (const id of this.roomIds()) {
      const r = this.rooms.get(id);
      if (r.phase !== "ACTIVE") continue;
      r.phase = "RECONNECTING";
      r.republishCheck = false;
      this.report(id, "RECONNECTING", ErrorCodes.RECONNECTING, NO_DATA());
    }
    const reconnecting = [...this.rooms.values()].some((r) => r.phase === "RECONNECTING");
    if (reconnecting && this.windowEnd === void 0) this.windowEnd = now + this.reconnectWindowMs;
    this.scheduleAttempt(now);
  }
  scheduleAttempt(now) {
    const wait = Math.floor(backoffDelayMs(this.attempt, this.random()));
    this.attempt++;
    this.conn = { s: "waiting", at: now + wait };
  }
  /** Forgets the session (and closes the connection, saying `bye` when `bye`). */
  endSession(bye) {
    switch (this.conn.s) {
      case "ready":
      case "resuming":
        if (bye) this.send({ t: "bye" });
        this.out.push({ disconnect: true });
        break;
      case "connecting":
      case "handshake":
        this.out.push({ disconnect: true });
        break;
      default:
        break;
    }
    this.conn = { s: "idle" };
    this.session = void 0;
    this.windowEnd = void 0;
    this.nextPing = void 0;
    this.attempt = 0;
    this.directSeq = 0;
    for (const [id, p] of this.pending) if (p.handle === void 0) this.pending.delete(id);
  }
  /** With no room left and nothing the app waits for, ends the session. */
  maybeEnd() {
    if (this.rooms.size === 0 && ![...this.pending.values()].some((p) => p.handle !== void 0) && (this.conn.s !== "idle" || this.session !== void 0)) {
      this.endSession(true);
    }
  }
  /** The reconnect window has passed: every room still away has failed, for good. */
  reconnectFailed(now) {
    const code = ErrorCodes.RECONNECT_FAILED;
    for (const id of this.roomIds()) {
      if (this.rooms.get(id)?.phase === "RECONNECTING") {
        this.removeRoom(id, "RECONNECT_FAILED", code, NO_DATA(), code);
      }
    }
    if (this.conn.s !== "ready") {
      for (const key of this.pendingKeys()) {
        const p = this.pending.get(key);
        if (p.needsRoom === void 0 && (p.kind.k === "renew_token" || p.kind.k === "plain")) {
          this.pending.delete(key);
          this.result(p.handle, code);
        }
      }
      const logining = this.rooms.size > 0;
      this.endSession(false);
      if (logining) this.wantConnection(now);
    }
  }
  // ------------------------------------------------------------------ frames
  /** A text frame arrived; text that is not a JSON object with a string `t` is ignored. */
  handleText(now, text) {
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return false;
    }
    if (f === null || typeof f !== "object" || Array.isArray(f)) return false;
    if (typeof f.t !== "string") return false;
    this.handleFrame(now, f);
    return true;
  }
  /** A parsed frame arrived. Unknown `t` values are ignored (§1). */
  handleFrame(now, f) {
    const c = this.conn.s;
    if (c === "idle" || c === "waiting" || c === "connecting") return;
    this.lastHeard = now;
    switch (f.t) {
      case "welcome":
        this.onWelcome(now, f);
        break;
      case "resumed":
        this.onResumed(now, f);
        break;
      case "resume_done":
        this.onResumeDone();
        break;
      case "pong":
        break;
      case "ok":
        this.onOk(f);
        break;
      case "error":
        this.onError(now, f);
        break;
      case "kicked":
        this.onKicked(f);
        break;
      case "event":
        this.onEvent(f);
        break;
      case "snapshot":
        this.onSnapshot(f);
        break;
      case "token_will_expire": {
        const room = str(f.room);
        if (this.rooms.has(room)) {
          this.emit({ type: "roomTokenWillExpire", room, remainingS: num(f.remaining_s) });
        }
        break;
      }
      default:
        break;
    }
    this.maybeEnd();
  }
  startHeartbeat(now, hb) {
    const ms = optNum(hb);
    if (ms !== void 0 && ms > 0) this.heartbeatMs = ms;
    this.nextPing = now + this.heartbeatMs;
    this.attempt = 0;
  }
  onWelcome(now, f) {
    if (this.conn.s !== "handshake" || this.session !== void 0) return;
    this.session = { id: str(f.session), resumeToken: str(f.resume_token) };
    this.directSeq = 0;
    this.conn = { s: "ready" };
    this.startHeartbeat(now, f.heartbeat_ms);
    const away = this.roomIds().filter((id) => this.rooms.get(id)?.phase === "RECONNECTING");
    if (away.length > 0) {
      for (const p of this.pending.values()) {
        p.wire = void 0;
        p.sent = false;
      }
      for (const room of away) this.relogin(room);
    }
    this.flush();
  }
  onResumed(now, f) {
    if (this.conn.s !== "handshake" || !this.session) return;
    this.session.id = str(f.session, this.session.id);
    this.session.resumeToken = str(f.resume_token, this.session.resumeToken);
    this.conn = { s: "resuming" };
    this.startHeartbeat(now, f.heartbeat_ms);
    const statuses = obj(f.rooms);
    const statusOf = (room) => Object.prototype.hasOwnProperty.call(statuses, room) ? str(statuses[room], "replay") : void 0;
    const away = this.roomIds().filter((id) => {
      const r = this.rooms.get(id);
      return r.phase === "RECONNECTING" && !r.relogin;
    });
    const logining = this.roomIds().filter((id) => {
      const r = this.rooms.get(id);
      return r.phase === "LOGINING" || r.relogin;
    });
    for (const room of logining) {
      const status = statusOf(room);
      if (status === "snapshot") {
        const r = this.rooms.get(room);
        if (r) r.loginBySnapshot = true;
      } else if (status !== void 0 && status.startsWith("kicked:")) {
        const code = kickedCode(status);
        this.removeRoom(room, "KICK_OUT", code, NO_DATA(), code);
      }
    }
    for (const room of away) {
      const status = statusOf(room);
      if (status === void 0) {
        const leaving = [...this.pending.values()].some((p) => p.kind.k === "logout" && p.kind.room === room);
        if (leaving) {
          const r2 = this.rooms.get(room);
          if (r2) r2.phase = "ACTIVE";
          this.report(room, "RECONNECTED", 0, NO_DATA());
        } else {
          this.relogin(room);
        }
        continue;
      }
      if (status.startsWith("kicked:")) {
        const code = kickedCode(status);
        this.removeRoom(room, "KICK_OUT", code, NO_DATA(), code);
        continue;
      }
      const r = this.rooms.get(room);
      if (r) {
        r.phase = "ACTIVE";
        r.republishCheck = true;
      }
      this.report(room, "RECONNECTED", 0, NO_DATA());
    }
    for (const room of Object.keys(statuses).sort(byKey)) {
      const status = str(statuses[room], "replay");
      if (!this.rooms.has(room) && !status.startsWith("kicked:")) this.abandon(room);
    }
    if (![...this.rooms.values()].some((x) => x.phase === "RECONNECTING")) {
      this.windowEnd = void 0;
    }
  }
  onResumeDone() {
    if (this.conn.s !== "resuming") return;
    this.conn = { s: "ready" };
    for (const room of this.roomIds()) {
      if (this.rooms.get(room)?.republishCheck) this.republish(room);
    }
    this.flush();
  }
  /**
   * Re-publishes the app's streams that the server no longer has in `room` (and that no
   * request in flight is already publishing or stopping).
   */
  republish(room) {
    const r = this.rooms.get(room);
    if (!r) return;
    r.republishCheck = false;
    const missing = [...r.own.keys()].sort(byKey).filter((s) => !r.view.streams.has(s)).map((s) => [s, r.own.get(s)]);
    for (const [stream, extra] of missing) {
      const busy = [...this.pending.values()].some((p) => {
        const k = p.kind;
        return (k.k === "publish" || k.k === "republish" || k.k === "unpublish") && k.room === room && k.stream === stream;
      });
      if (busy) continue;
      this.request(
        (id) => ({ t: "publish", id, room, stream, extra }),
        { k: "republish", room, stream },
        void 0,
        room
      );
    }
  }
  applyOkSeq(room, seq) {
    const r = room !== void 0 ? this.rooms.get(room) : void 0;
    if (r && r.phase !== "LOGINING") {
      const sr = optNum(seq.room);
      const su = optNum(seq.users);
      if (sr !== void 0) r.seqRoom = Math.max(r.seqRoom, sr);
      if (su !== void 0) r.seqUsers = Math.max(r.seqUsers, su);
    }
    const sd = optNum(seq.direct);
    if (sd !== void 0) this.directSeq = Math.max(this.directSeq, sd);
  }
  onOk(f) {
    const p = this.takeAnswered(optNum(f.id));
    if (!p) return;
    const seq = obj(f.seq);
    const k = p.kind;
    switch (k.k) {
      case "login":
      case "switch": {
        const room = k.k === "login" ? k.room : k.to;
        if (this.rooms.get(room)?.phase !== "LOGINING") {
          this.abandon(room);
          return;
        }
        this.logined(room, f, seq, p.handle);
        return;
      }
      case "relogin": {
        if (!this.rooms.get(k.room)?.relogin) {
          this.abandon(k.room);
          return;
        }
        this.relogined(k.room, f, seq);
        return;
      }
      case "logout":
        this.rooms.delete(k.room);
        this.failRoomRequests(k.room, ErrorCodes.NOT_IN_ROOM);
        this.report(k.room, "LOGOUT", 0, NO_DATA());
        this.result(p.handle, 0);
        return;
      case "publish": {
        this.applyOkSeq(k.room, seq);
        const r = this.rooms.get(k.room);
        if (r) {
          r.own.set(k.stream, k.extra);
          r.view.streams.set(k.stream, { id: k.stream, user: this.selfUser(), extra: k.extra });
        }
        this.result(p.handle, 0);
        return;
      }
      case "republish": {
        this.applyOkSeq(k.room, seq);
        const r = this.rooms.get(k.room);
        const extra = r?.own.get(k.stream);
        if (r && extra !== void 0) {
          r.view.streams.set(k.stream, { id: k.stream, user: this.selfUser(), extra });
        }
        return;
      }
      case "unpublish": {
        this.applyOkSeq(k.room, seq);
        this.rooms.get(k.room)?.view.streams.delete(k.stream);
        this.result(p.handle, 0);
        return;
      }
      case "stream_extra": {
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
      case "renew_token":
        this.token = k.token;
        for (const r of this.rooms.values()) r.token = k.token;
        this.result(p.handle, 0);
        return;
      case "abandon":
        return;
      case "abandoned":
        this.abandon(k.room);
        return;
      case "plain": {
        const room = typeof f.room === "string" ? f.room : p.needsRoom;
        this.applyOkSeq(room, seq);
        this.result(p.handle, 0, typeof f.message_id === "string" ? f.message_id : void 0);
        return;
      }
    }
  }
  /** A login succeeded (by its `ok`, or by the snapshot of a resume): LOGINED, then the room. */
  logined(room, state, seq, handle) {
    const me = this.me();
    const r = this.rooms.get(room);
    if (!r) return;
    const view = viewFromState(state, me);
    r.phase = "ACTIVE";
    r.loginDeadline = void 0;
    r.loginBySnapshot = false;
    r.epoch = str(state.room_session);
    r.seqRoom = num(seq.room);
    r.seqUsers = num(seq.users);
    r.view = view;
    this.report(room, "LOGINED", 0, { room_session_id: r.epoch });
    for (const e of diffViews(emptyView(), view, room, me)) this.emit(e);
    this.result(handle, 0);
    this.flush();
  }
  /**
   * Log in to a room that was in again (new session, or a resume that no longer has it); the
   * room stays RECONNECTING until the answer.
   */
  relogin(room) {
    for (const [key, p] of this.pending) {
      if (p.kind.k === "relogin" && p.kind.room === room) this.pending.delete(key);
    }
    const r = this.rooms.get(room);
    if (!r) return;
    r.relogin = true;
    const config = { ...r.config };
    const token = r.token;
    this.request(
      (id) => {
        const frame = { t: "login", id, room, config };
        if (token !== void 0) frame.token = token;
        return frame;
      },
      { k: "relogin", room },
      void 0,
      void 0
    );
  }
  /** A fresh login of a room that was in succeeded: RECONNECTED, then the diff. */
  relogined(room, state, seq) {
    const me = this.me();
    const r = this.rooms.get(room);
    if (!r) return;
    const view = viewFromState(state, me);
    const old = r.view;
    r.view = view;
    r.phase = "ACTIVE";
    r.relogin = false;
    r.loginBySnapshot = false;
    r.epoch = str(state.room_session);
    r.seqRoom = num(seq.room);
    r.seqUsers = num(seq.users);
    this.report(room, "RECONNECTED", 0, NO_DATA());
    for (const e of diffViews(old, view, room, me)) this.emit(e);
    if (old.online !== view.online) {
      this.emit({ type: "roomOnlineUserCountUpdate", room, count: view.online });
    }
    if (![...this.rooms.values()].some((x) => x.phase === "RECONNECTING")) {
      this.windowEnd = void 0;
    }
    this.republish(room);
    this.flush();
  }
  selfUser() {
    return this.user ? { id: this.user.id, name: this.user.name } : { id: "", name: "" };
  }
  /** We are in `room` on the server but the app gave up on it: leave quietly. */
  abandon(room) {
    this.request((id) => ({ t: "logout", id, room }), { k: "abandon" }, void 0, void 0);
  }
  onError(now, f) {
    const code = num(f.code);
    const id = optNum(f.id);
    if (id === void 0) {
      this.onSessionError(now, code);
      return;
    }
    const p = this.takeAnswered(id);
    if (!p) return;
    const k = p.kind;
    switch (k.k) {
      case "login":
      case "switch": {
        const room = k.k === "login" ? k.room : k.to;
        if (this.rooms.get(room)?.phase === "LOGINING") {
          this.removeRoom(room, "LOGIN_FAILED", code, NO_DATA(), code);
        }
        this.result(p.handle, code);
        return;
      }
      case "relogin": {
        const fail = ErrorCodes.RECONNECT_FAILED;
        if (this.rooms.get(k.room)?.relogin) {
          this.removeRoom(k.room, "RECONNECT_FAILED", fail, { code }, fail);
        }
        if (![...this.rooms.values()].some((x) => x.phase === "RECONNECTING")) {
          this.windowEnd = void 0;
        }
        return;
      }
      case "logout":
        if (code === ErrorCodes.NOT_IN_ROOM_LOGOUT) {
          this.rooms.delete(k.room);
          this.failRoomRequests(k.room, ErrorCodes.NOT_IN_ROOM);
        }
        this.report(k.room, "LOGOUT_FAILED", code, NO_DATA());
        this.result(p.handle, code);
        return;
      case "republish":
        this.rooms.get(k.room)?.own.delete(k.stream);
        return;
      case "abandon":
        return;
      default:
        this.result(p.handle, code);
    }
  }
  /** An `error` without `id`: the server refused `hello` or `resume`. */
  onSessionError(now, code) {
    if (this.conn.s !== "handshake") return;
    if (this.session !== void 0) {
      this.session = void 0;
      this.directSeq = 0;
      for (const p of this.pending.values()) p.sent = false;
      this.sendHello();
      return;
    }
    for (const room of this.roomIds()) {
      const r = this.rooms.get(room);
      if (r.phase === "LOGINING") {
        this.removeRoom(room, "LOGIN_FAILED", code, NO_DATA(), code);
      } else {
        const fail = ErrorCodes.RECONNECT_FAILED;
        this.removeRoom(room, "RECONNECT_FAILED", fail, { code }, fail);
      }
    }
    for (const key of this.pendingKeys()) {
      const p = this.pending.get(key);
      this.pending.delete(key);
      this.result(p.handle, code);
    }
    void now;
    this.endSession(false);
  }
  onKicked(f) {
    const room = str(f.room);
    if (!this.rooms.has(room)) return;
    const code = num(f.code);
    const data = f.extended_data !== null && typeof f.extended_data === "object" && !Array.isArray(f.extended_data) ? f.extended_data : NO_DATA();
    this.removeRoom(room, "KICK_OUT", code, data, code);
  }
  onSnapshot(f) {
    const me = this.me();
    const room = str(f.room);
    const r = this.rooms.get(room);
    if (!r) return;
    const seq = obj(f.seq);
    if (r.phase === "LOGINING" && r.loginBySnapshot) {
      const key = this.pendingKeys().find((kk) => {
        const k = this.pending.get(kk).kind;
        return (k.k === "login" || k.k === "switch") && loginRoomOf(k) === room;
      });
      const p = key !== void 0 ? this.pending.get(key) : void 0;
      if (key !== void 0) this.pending.delete(key);
      this.logined(room, f, seq, p?.handle);
      return;
    }
    if (r.relogin && r.loginBySnapshot) {
      for (const [key, p] of this.pending) {
        if (p.kind.k === "relogin" && p.kind.room === room) {
          this.pending.delete(key);
          break;
        }
      }
      this.relogined(room, f, seq);
      return;
    }
    if (r.phase !== "ACTIVE") return;
    const view = viewFromState(f, me);
    const old = r.view;
    r.view = view;
    r.epoch = str(f.room_session);
    r.seqRoom = num(seq.room);
    r.seqUsers = num(seq.users);
    for (const e of diffViews(old, view, room, me)) this.emit(e);
    if (old.online !== view.online) {
      this.emit({ type: "roomOnlineUserCountUpdate", room, count: view.online });
    }
  }
  onEvent(f) {
    const me = this.me();
    const room = str(f.room);
    const seq = optNum(f.seq);
    if (f.ch === "direct") {
      if (seq !== void 0) {
        if (seq <= this.directSeq) return;
        this.directSeq = seq;
      }
      if (f.kind === "command" && this.rooms.has(room) && toUser(f.from).id !== me) {
        this.emit({
          type: "IMRecvCustomCommand",
          room,
          from: toUser(f.from),
          command: str(f.command),
          timeMs: num(f.time_ms)
        });
      }
      return;
    }
    const r = this.rooms.get(room);
    if (!r || r.phase !== "ACTIVE") return;
    if ((f.ch === "room" || f.ch === "users") && seq !== void 0) {
      const last = f.ch === "room" ? r.seqRoom : r.seqUsers;
      if (seq <= last) return;
      if (f.ch === "room") r.seqRoom = seq;
      else r.seqUsers = seq;
    }
    const v = r.view;
    switch (f.kind) {
      case "user_add": {
        const added = [];
        for (const u of toUsers(f.users)) {
          if (u.id === me) continue;
          const known = v.users.has(u.id);
          v.users.set(u.id, u);
          if (!known) added.push(u);
        }
        if (added.length) this.emit({ type: "roomUserUpdate", room, updateType: "ADD", users: added });
        return;
      }
      case "user_delete": {
        const gone = [];
        for (const u of toUsers(f.users)) {
          if (u.id === me) continue;
          const old = v.users.get(u.id);
          if (old) {
            v.users.delete(u.id);
            gone.push(old);
          }
        }
        if (gone.length) this.emit({ type: "roomUserUpdate", room, updateType: "DELETE", users: gone });
        return;
      }
      case "stream_add": {
        const added = [];
        for (const s of toStreams(f.streams)) {
          const isNew = !v.streams.has(s.id);
          v.streams.set(s.id, s);
          if (isNew && s.user.id !== me) added.push(s);
        }
        if (added.length) {
          this.emit({ type: "roomStreamUpdate", room, updateType: "ADD", streams: added, extendedData: {} });
        }
        return;
      }
      case "stream_delete": {
        const gone = [];
        for (const s of toStreams(f.streams)) {
          const old = v.streams.get(s.id);
          if (old) {
            v.streams.delete(s.id);
            if (old.user.id !== me) gone.push(old);
          }
        }
        if (gone.length) {
          this.emit({
            type: "roomStreamUpdate",
            room,
            updateType: "DELETE",
            streams: gone,
            extendedData: { reason: num(f.reason) }
          });
        }
        return;
      }
      case "stream_extra": {
        const changed = [];
        for (const s of toStreams(f.streams)) {
          const old = v.streams.get(s.id);
          if (old) v.streams.set(s.id, { ...old, extra: s.extra });
          if (s.user.id !== me) changed.push(s);
        }
        if (changed.length) this.emit({ type: "roomStreamExtraInfoUpdate", room, streams: changed });
        return;
      }
      case "room_extra": {
        const item = toExtra(f);
        if (item.user.id !== me) this.emit({ type: "roomExtraInfoUpdate", room, extra: [item] });
        v.extra.set(item.key, item);
        return;
      }
      // A replay carries the client's own events too (§9.3): they are counted (above), never
      // reported.
      case "broadcast":
      case "barrage":
        if (toUser(f.from).id === me) return;
        this.emit({
          type: f.kind === "broadcast" ? "IMRecvBroadcastMessage" : "IMRecvBarrageMessage",
          room,
          from: toUser(f.from),
          message: str(f.message),
          messageId: str(f.message_id),
          timeMs: num(f.time_ms)
        });
        return;
      case "command":
        if (toUser(f.from).id === me) return;
        this.emit({
          type: "IMRecvCustomCommand",
          room,
          from: toUser(f.from),
          command: str(f.command),
          timeMs: num(f.time_ms)
        });
        return;
      case "online": {
        const count = num(f.count);
        if (v.online !== count) {
          v.online = count;
          this.emit({ type: "roomOnlineUserCountUpdate", room, count });
        }
        return;
      }
      default:
        return;
    }
  }
};

// src/engine.ts
var OPEN = 1;
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
    this.streamRooms = /* @__PURE__ */ new Map();
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
  loginRoom(roomID, token, user, config = {}) {
    const handle = this.newHandle();
    if (!this.roomOrder.includes(roomID)) this.roomOrder.push(roomID);
    const p = this.wait(handle).then((r) => r.errorCode === 0);
    this.call(
      (now) => this.core.loginRoom(now, {
        room: roomID,
        user: { id: user.userID, name: user.userName ?? "" },
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
    this.streamRooms.set(streamID, room);
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call(
      (now) => this.core.publish(now, { room, stream: streamID, extra: config.extraInfo ?? "", handle })
    );
    return p;
  }
  /** Stops publishing a stream. */
  stopPublishingStream(streamID) {
    const room = this.core.roomOfOwnStream(streamID) ?? this.streamRooms.get(streamID);
    if (room === void 0) return Promise.resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    this.streamRooms.delete(streamID);
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.unpublish(now, { room, stream: streamID, handle }));
    return p;
  }
  /** Sets a published stream's extra info (others get `roomStreamExtraInfoUpdate`). */
  setStreamExtraInfo(streamID, extraInfo) {
    const room = this.core.roomOfOwnStream(streamID) ?? this.streamRooms.get(streamID);
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
  sendBroadcastMessage(roomID, message) {
    return this.message("broadcast", roomID, message);
  }
  /** Sends a barrage message to the room; resolves with its `messageID`. */
  sendBarrageMessage(roomID, message) {
    return this.message("barrage", roomID, message);
  }
  /**
   * Sends a custom command to some users of the room (an empty list: everyone else in it).
   */
  sendCustomCommand(roomID, command, toUserIDs = []) {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.command(now, { room: roomID, to: toUserIDs, command, handle }));
    return p;
  }
  message(kind, roomID, message) {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.message(now, { kind, room: roomID, message, handle }));
    return p;
  }
  // ------------------------------------------------------------------ lifecycle
  /**
   * Ends the session (`bye`: logged out of every room at once, without events), closes the
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
  closeSocket(code = 1e3, reason = "") {
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
  ErrorCodes,
  ParlorCore,
  ParlorEngine,
  backoffCeilingMs,
  backoffDelayMs,
  parlorWebSocketURL,
  wireConfig
};
