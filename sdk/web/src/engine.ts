/**
 * The browser SDK: {@link ParlorEngine}, a thin IO driver around the sans-IO {@link ParlorCore}.
 * It owns the WebSocket and one timer, and turns the core's events into the public callbacks.
 *
 * @packageDocumentation
 */

import { ParlorCore } from './core.js';
import {
  ParlorClock,
  ParlorEngineOptions,
  ParlorEventMap,
  ParlorMemberListResult,
  ParlorResult,
  ParlorRoomConfig,
  ParlorRoomExtraInfo,
  ParlorStream,
  ParlorUser,
  RoomStateChangedReason,
  WebSocketLike,
  parlorWebSocketURL,
} from './api.js';
import { CloseCodes, CoreEvent, CoreOutput, ErrorCodes, MemberPage, RoomExtraInfo, Stream, User } from './types.js';

/** A call's outcome as the core reports it: a member page for `queryRoomMemberList`. */
type Answered = ParlorResult & { members?: MemberPage };

/** `WebSocket.OPEN`. */
const OPEN = 1;

function defaultClock(): ParlorClock {
  const perf = (globalThis as { performance?: { now(): number } }).performance;
  return {
    now: perf ? () => perf.now() : () => Date.now(),
    setTimeout: (fn, ms) => globalThis.setTimeout(fn, ms),
    clearTimeout: (t) => globalThis.clearTimeout(t as ReturnType<typeof globalThis.setTimeout>),
  };
}

function pubUser(u: User): ParlorUser {
  return { userID: u.id, userName: u.name };
}
function pubStream(s: Stream): ParlorStream {
  return { streamID: s.id, user: pubUser(s.user), extraInfo: s.extra };
}
function pubExtra(e: RoomExtraInfo): ParlorRoomExtraInfo {
  return { key: e.key, value: e.value, updateUser: pubUser(e.user), updateTime: e.timeMs };
}

type Handler = (...args: never[]) => void;

/**
 * The Parlor room engine: one user's session with a Parlor server, with up to the server's
 * limit of rooms. It reconnects by itself (protocol §6–§7) and reports every change as events.
 *
 * ```js
 * const engine = new ParlorEngine(1, 'ws://127.0.0.1:7700/v1/ws');
 * engine.on('roomUserUpdate', (roomID, type, users) => console.log(roomID, type, users));
 * const ok = await engine.loginRoom('r1', token, { userID: 'u1', userName: 'Alice' });
 * ```
 */
export class ParlorEngine {
  /** The app id. */
  readonly appID: number;
  /** The WebSocket URL the engine connects to. */
  readonly url: string;

  private readonly core: ParlorCore;
  private readonly clock: ParlorClock;
  private readonly WS: new (url: string) => WebSocketLike;
  private readonly net: ParlorEngineOptions['networkEvents'];
  private readonly handlers = new Map<string, Set<Handler>>();
  private readonly waiting = new Map<number, (r: Answered) => void>();
  private readonly roomOrder: string[] = [];
  private nextHandle = 1;
  private ws: WebSocketLike | null = null;
  private timer: unknown = undefined;
  private timerAt: number | undefined;
  private driving = false;
  private destroyed = false;
  private readonly onOnline = () => {
    if (this.destroyed) return;
    this.core.handleNetworkOnline(this.clock.now());
    this.drive();
  };

  /**
   * @param appID - the app id (unsigned 32-bit, > 0)
   * @param server - the server: `ws://host:port/v1/ws`, or `http(s)://host[:port]` (the
   *   WebSocket URL is derived)
   * @param options - timeouts and test hooks; all optional
   */
  constructor(appID: number, server: string, options: ParlorEngineOptions = {}) {
    this.appID = appID;
    this.url = parlorWebSocketURL(server);
    this.clock = options.clock ?? defaultClock();
    const WS =
      options.WebSocket ??
      ((globalThis as { WebSocket?: new (url: string) => WebSocketLike }).WebSocket as
        | (new (url: string) => WebSocketLike)
        | undefined);
    if (!WS) throw new Error('no WebSocket implementation: pass options.WebSocket');
    this.WS = WS;
    this.core = new ParlorCore({
      appId: appID,
      heartbeatMs: options.heartbeatMs,
      loginTimeoutMs: options.loginTimeoutMs,
      reconnectWindowMs: options.reconnectWindowMs,
      random: options.random,
    });
    const win = (globalThis as { window?: ParlorEngineOptions['networkEvents'] }).window;
    this.net = options.networkEvents === undefined ? win ?? null : options.networkEvents;
    this.net?.addEventListener('online', this.onOnline);
  }

  // ------------------------------------------------------------------ events

  /** Adds a handler for an event. */
  on<K extends keyof ParlorEventMap>(event: K, handler: ParlorEventMap[K]): void {
    let set = this.handlers.get(event);
    if (!set) this.handlers.set(event, (set = new Set()));
    set.add(handler as Handler);
  }

  /** Removes a handler added with {@link ParlorEngine.on} (or every handler of the event). */
  off<K extends keyof ParlorEventMap>(event: K, handler?: ParlorEventMap[K]): void {
    if (handler === undefined) this.handlers.delete(event);
    else this.handlers.get(event)?.delete(handler as Handler);
  }

  private fire<K extends keyof ParlorEventMap>(event: K, ...args: Parameters<ParlorEventMap[K]>): void {
    for (const h of [...(this.handlers.get(event) ?? [])]) {
      try {
        (h as (...a: unknown[]) => void)(...args);
      } catch (e) {
        // A throwing handler must not break the engine.
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
  loginRoom(
    roomID: string,
    token: string,
    user: ParlorUser,
    config: ParlorRoomConfig = {},
  ): Promise<boolean> {
    const handle = this.newHandle();
    if (!this.roomOrder.includes(roomID)) this.roomOrder.push(roomID);
    const p = this.wait(handle).then((r) => r.errorCode === 0);
    this.call((now) =>
      this.core.loginRoom(now, {
        room: roomID,
        user: { id: user.userID, name: user.userName ?? '' },
        token,
        config: { maxMemberCount: config.maxMemberCount, userUpdate: config.userUpdate },
        handle,
      }),
    );
    return p;
  }

  /**
   * Logs out of a room (LOGOUT), or of every room when `roomID` is omitted. A room the client
   * is not in is LOGOUT_FAILED 1002002.
   */
  async logoutRoom(roomID?: string): Promise<ParlorResult> {
    if (roomID === undefined) {
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
  switchRoom(
    fromRoomID: string,
    toRoomID: string,
    config: ParlorRoomConfig & { token?: string } = {},
  ): Promise<boolean> {
    const handle = this.newHandle();
    if (!this.roomOrder.includes(toRoomID)) this.roomOrder.push(toRoomID);
    const p = this.wait(handle).then((r) => r.errorCode === 0);
    this.call((now) =>
      this.core.switchRoom(now, {
        from: fromRoomID,
        to: toRoomID,
        token: config.token,
        config: { maxMemberCount: config.maxMemberCount, userUpdate: config.userUpdate },
        handle,
      }),
    );
    return p;
  }

  /**
   * Replaces the token (for the session and its rooms), e.g. after `roomTokenWillExpire`.
   * The wire request is per session; `roomID` is accepted for API symmetry.
   *
   * @returns true when the server accepted the token
   */
  renewToken(roomID: string, token: string): Promise<boolean> {
    void roomID;
    const handle = this.newHandle();
    const p = this.wait(handle).then((r) => r.errorCode === 0);
    this.call((now) => this.core.renewToken(now, { token, handle }));
    return p;
  }

  /** The room's last reported state (`LOGOUT` for a room the client is not in). */
  getRoomState(roomID: string): RoomStateChangedReason {
    const s = this.core.roomState(roomID);
    return s === 'KICK_OUT' ? 'KICKOUT' : s;
  }

  /** The others in a room as the client knows them. */
  getRoomUsers(roomID: string): ParlorUser[] {
    return this.core.roomUsers(roomID).map(pubUser);
  }

  /**
   * Everyone in a room (this client too) as last told: the login's count, then each
   * `roomOnlineUserCountUpdate`. 0 for a room the client is not in. In a large room (protocol
   * §9.10) this is the size to show, as `getRoomUsers` holds only the pages seen.
   */
  getRoomOnlineUserCount(roomID: string): number {
    return this.core.roomOnline(roomID);
  }

  /** Others' streams in a room as the client knows them. */
  getRoomStreams(roomID: string): ParlorStream[] {
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
  startPublishingStream(
    streamID: string,
    config: { extraInfo?: string; roomID?: string } = {},
  ): Promise<ParlorResult> {
    const room = config.roomID ?? this.defaultRoom();
    if (room === undefined) return Promise.resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) =>
      this.core.publish(now, { room, stream: streamID, extra: config.extraInfo ?? '', handle }),
    );
    return p;
  }

  /** Stops publishing a stream. */
  stopPublishingStream(streamID: string): Promise<ParlorResult> {
    const room = this.core.roomOfOwnStream(streamID);
    if (room === undefined) return Promise.resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.unpublish(now, { room, stream: streamID, handle }));
    return p;
  }

  /** Sets a published stream's extra info (others get `roomStreamExtraInfoUpdate`). */
  setStreamExtraInfo(streamID: string, extraInfo: string): Promise<ParlorResult> {
    const room = this.core.roomOfOwnStream(streamID);
    if (room === undefined) return Promise.resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) =>
      this.core.setStreamExtra(now, { room, stream: streamID, extra: extraInfo, handle }),
    );
    return p;
  }

  // ------------------------------------------------------------------ room extra info, messages

  /** Sets one key of the room's extra info (others get `roomExtraInfoUpdate`). */
  setRoomExtraInfo(roomID: string, key: string, value: string): Promise<ParlorResult> {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.setRoomExtra(now, { room: roomID, key, value, handle }));
    return p;
  }

  /** Sends a broadcast message to the room; resolves with its `messageID`. */
  sendBroadcastMessage(roomID: string, message: string): Promise<ParlorResult> {
    return this.message('broadcast', roomID, message);
  }

  /** Sends a barrage message to the room; resolves with its `messageID`. */
  sendBarrageMessage(roomID: string, message: string): Promise<ParlorResult> {
    return this.message('barrage', roomID, message);
  }

  /**
   * Sends a custom command to some users of the room (an empty list: everyone else in it).
   */
  sendCustomCommand(roomID: string, command: string, toUserIDs: string[] = []): Promise<ParlorResult> {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.command(now, { room: roomID, to: toUserIDs, command, handle }));
    return p;
  }

  /**
   * One page of the room's member list, in the order of user ids (protocol §9.9): `nextFlag` ""
   * for the first page, then the page's `nextFlag` until it is "". `count` is 1 to 500. A member
   * who stays in the room through a whole walk is on exactly one page.
   */
  queryRoomMemberList(
    roomID: string,
    config: { nextFlag?: string; count?: number } = {},
  ): Promise<ParlorMemberListResult> {
    const handle = this.newHandle();
    const p = this.wait(handle);
    const a = { room: roomID, nextFlag: config.nextFlag ?? '', count: config.count ?? 100, handle };
    this.call((now) => this.core.queryRoomMemberList(now, a));
    return p.then((r) => {
      const page = r.members;
      return {
        errorCode: r.errorCode,
        roomID,
        memberList: (page?.users ?? []).map((u) => ({ userID: u.id, userName: u.name ?? '' })),
        count: page?.count ?? 0,
        nextFlag: page?.nextFlag ?? '',
      };
    });
  }

  private message(kind: 'broadcast' | 'barrage', roomID: string, message: string): Promise<ParlorResult> {
    const handle = this.newHandle();
    const p = this.wait(handle);
    this.call((now) => this.core.message(now, { kind, room: roomID, message, handle }));
    return p;
  }

  // ------------------------------------------------------------------ lifecycle

  /**
   * Ends the session (`bye`: logged out of every room at once, without events; no `bye` while a
   * resume waits for its answer, the server then ends the session at its timeout), closes the
   * connection and stops every timer. Calls still waiting resolve with errorCode 1009005.
   */
  destroy(): void {
    if (this.destroyed) return;
    this.call((now) => this.core.shutdown(now));
    this.destroyed = true;
    this.net?.removeEventListener('online', this.onOnline);
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
  _debugDropConnection(): void {
    if (!this.ws || this.destroyed) return;
    this.closeSocket(4000, 'debug drop');
    this.core.handleClosed(this.clock.now());
    this.drive();
  }

  // ------------------------------------------------------------------ the IO loop

  private defaultRoom(): string | undefined {
    const rooms = new Set(this.core.roomIds());
    return this.roomOrder.find((r) => rooms.has(r)) ?? [...rooms][0];
  }

  private newHandle(): number {
    return this.nextHandle++;
  }

  private wait(handle: number): Promise<Answered> {
    return new Promise((resolve) => {
      if (this.destroyed) resolve({ errorCode: ErrorCodes.NOT_IN_ROOM });
      else this.waiting.set(handle, resolve);
    });
  }

  private call(fn: (now: number) => void): void {
    if (this.destroyed) return;
    fn(this.clock.now());
    this.drive();
  }

  /** Carries out the core's outputs and re-arms the timer. Not re-entrant. */
  private drive(): void {
    if (this.driving) return;
    this.driving = true;
    try {
      for (let o = this.core.pollOutput(); o !== undefined; o = this.core.pollOutput()) {
        this.perform(o);
      }
    } finally {
      this.driving = false;
    }
    this.armTimer();
  }

  private perform(o: CoreOutput): void {
    if ('connect' in o) this.openSocket();
    else if ('disconnect' in o) this.closeSocket();
    else if ('send' in o) {
      const ws = this.ws;
      if (ws && ws.readyState === OPEN) ws.send(JSON.stringify(o.send));
    } else if ('event' in o) this.dispatch(o.event);
  }

  private armTimer(): void {
    if (this.destroyed) return;
    const at = this.core.pollTimeout();
    if (at === this.timerAt && this.timer !== undefined) return;
    this.clearTimer();
    if (at === undefined) return;
    this.timerAt = at;
    const delay = Math.max(0, at - this.clock.now());
    this.timer = this.clock.setTimeout(() => {
      this.timer = undefined;
      this.timerAt = undefined;
      if (this.destroyed) return;
      this.core.handleTimeout(this.clock.now());
      this.drive();
    }, delay);
  }

  private clearTimer(): void {
    if (this.timer !== undefined) this.clock.clearTimeout(this.timer);
    this.timer = undefined;
    this.timerAt = undefined;
  }

  private openSocket(): void {
    this.closeSocket();
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.url);
    } catch {
      // An invalid URL or a blocked port: report it as a failed attempt, outside this drive.
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
      if (typeof ev.data === 'string') {
        this.core.handleText(this.clock.now(), ev.data);
        this.drive();
      }
      // Binary frames are reserved for stream data (a later protocol version): ignored.
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.core.handleClosed(this.clock.now());
      this.drive();
    };
    ws.onerror = () => {
      // `close` follows.
    };
  }

  private closeSocket(code: number = CloseCodes.NORMAL, reason = ''): void {
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
      // already closed
    }
  }

  private dispatch(e: CoreEvent): void {
    switch (e.type) {
      case 'result': {
        const resolve = this.waiting.get(e.handle);
        if (resolve) {
          this.waiting.delete(e.handle);
          const r: Answered = { errorCode: e.errorCode };
          if (e.messageId !== undefined) r.messageID = e.messageId;
          if (e.members !== undefined) r.members = e.members;
          resolve(r);
        }
        return;
      }
      case 'roomStateChanged': {
        const reason = e.reason === 'KICK_OUT' ? 'KICKOUT' : e.reason;
        this.fire('roomStateChanged', e.room, reason, e.errorCode, e.extendedData);
        return;
      }
      case 'roomUserUpdate':
        this.fire('roomUserUpdate', e.room, e.updateType, e.users.map(pubUser));
        return;
      case 'roomStreamUpdate':
        this.fire('roomStreamUpdate', e.room, e.updateType, e.streams.map(pubStream), e.extendedData);
        return;
      case 'roomStreamExtraInfoUpdate':
        this.fire('roomStreamExtraInfoUpdate', e.room, e.streams.map(pubStream));
        return;
      case 'roomExtraInfoUpdate':
        this.fire('roomExtraInfoUpdate', e.room, e.extra.map(pubExtra));
        return;
      case 'roomUserListChanged':
        this.fire('roomUserListChanged', e.room, e.count);
        return;
      case 'roomOnlineUserCountUpdate':
        this.fire('roomOnlineUserCountUpdate', e.room, e.count);
        return;
      case 'roomTokenWillExpire':
        this.fire('roomTokenWillExpire', e.room, e.remainingS);
        return;
      case 'IMRecvBroadcastMessage':
      case 'IMRecvBarrageMessage':
        this.fire(e.type, e.room, [
          { message: e.message, messageID: e.messageId, sendTime: e.timeMs, fromUser: pubUser(e.from) },
        ]);
        return;
      case 'IMRecvCustomCommand':
        this.fire('IMRecvCustomCommand', e.room, pubUser(e.from), e.command);
        return;
      default:
        return;
    }
  }
}
