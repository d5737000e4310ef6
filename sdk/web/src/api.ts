/**
 * The public types of {@link ParlorEngine}'s API: room states, users, streams, extra info,
 * messages, results, the event map, the options, and the server URL helper.
 *
 * @packageDocumentation
 */

/** The room states an app sees in `roomStateChanged` (protocol §7; `KICK_OUT` is `KICKOUT`). */
export type RoomStateChangedReason =
  | 'LOGINING'
  | 'LOGINED'
  | 'LOGIN_FAILED'
  | 'RECONNECTING'
  | 'RECONNECTED'
  | 'RECONNECT_FAILED'
  | 'KICKOUT'
  | 'LOGOUT'
  | 'LOGOUT_FAILED';

/** A user. */
export interface ParlorUser {
  /** The user id (1–64 bytes of `A-Z a-z 0-9` and ``~!@#$%^&*()_+=-`;',.<>/``). */
  userID: string;
  /** The display name (0–256 bytes); empty means "show the id". */
  userName?: string;
}

/** A published stream (stream signalling only: no media). */
export interface ParlorStream {
  /** The stream id, unique within the app while published. */
  streamID: string;
  /** The publisher. */
  user: ParlorUser;
  /** The stream's extra info. */
  extraInfo: string;
}

/** One key of a room's extra info. */
export interface ParlorRoomExtraInfo {
  /** The key. */
  key: string;
  /** The value. */
  value: string;
  /** Who set it last. */
  updateUser: ParlorUser;
  /** When it was set (server wall time, ms). */
  updateTime: number;
}

/** A broadcast or barrage message received. */
export interface ParlorMessageInfo {
  /** The text. */
  message: string;
  /** The server's id of the message. */
  messageID: string;
  /** When it was sent (server wall time, ms). */
  sendTime: number;
  /** The sender. */
  fromUser: ParlorUser;
}

/** Login settings. */
export interface ParlorRoomConfig {
  /** Receive `roomUserUpdate` for this room. Default true. */
  userUpdate?: boolean;
  /** Maximum members (0 = no limit); honoured from the user who creates the room. */
  maxMemberCount?: number;
}

/** The outcome of a request: `errorCode` 0 on success (protocol §8 codes otherwise). */
export interface ParlorResult {
  /** 0 on success. */
  errorCode: number;
  /** For broadcast and barrage messages: the message id. */
  messageID?: string;
}

/** What {@link ParlorEngine.queryRoomMemberList} resolves with (ZIM's `queryRoomMemberList`). */
export interface ParlorMemberListResult extends ParlorResult {
  roomID: string;
  /** The members on this page, in the order of user ids. */
  memberList: { userID: string; userName: string }[];
  /** How many members the room had when the page was read. */
  count: number;
  /** Pass it as `nextFlag` for the next page; "" when this page is the last. */
  nextFlag: string;
}

/** The events of {@link ParlorEngine.on} and their handlers' parameters. */
export interface ParlorEventMap {
  /** A room's state changed. `extendedData` of LOGINED is `{room_session_id}`. */
  roomStateChanged: (
    roomID: string,
    reason: RoomStateChangedReason,
    errorCode: number,
    extendedData: Record<string, unknown>,
  ) => void;
  /** Others entered (`ADD`) or left (`DELETE`) the room. */
  roomUserUpdate: (roomID: string, updateType: 'ADD' | 'DELETE', userList: ParlorUser[]) => void;
  /** Others' streams were published or stopped. */
  roomStreamUpdate: (
    roomID: string,
    updateType: 'ADD' | 'DELETE',
    streamList: ParlorStream[],
    extendedData: Record<string, unknown>,
  ) => void;
  /** Others' streams' extra info changed. */
  roomStreamExtraInfoUpdate: (roomID: string, streamList: ParlorStream[]) => void;
  /** Room extra info changed (also reported after LOGINED with what the room held). */
  roomExtraInfoUpdate: (roomID: string, roomExtraInfoList: ParlorRoomExtraInfo[]) => void;
  /**
   * A large room's member list (protocol §9.10: more members than the server's
   * `full_presence_up_to`) changed more than one `roomUserUpdate` tells, or the client came back
   * to it by a snapshot that carries only the first page of the list: an app that shows the list
   * pages it again with {@link ParlorEngine.queryRoomMemberList}. `count` is everyone in the room,
   * the client too. Smaller rooms never report it: their `roomUserUpdate`s are the whole story.
   */
  roomUserListChanged: (roomID: string, count: number) => void;
  /** The number of users in the room (the client too) changed. */
  roomOnlineUserCountUpdate: (roomID: string, count: number) => void;
  /** The token this room relies on expires soon: call {@link ParlorEngine.renewToken}. */
  roomTokenWillExpire: (roomID: string, remainTimeInSecond: number) => void;
  /** Broadcast messages from others. */
  IMRecvBroadcastMessage: (roomID: string, messageInfo: ParlorMessageInfo[]) => void;
  /** Barrage messages from others. */
  IMRecvBarrageMessage: (roomID: string, messageInfo: ParlorMessageInfo[]) => void;
  /** A custom command sent to this user. */
  IMRecvCustomCommand: (roomID: string, fromUser: ParlorUser, command: string) => void;
}

/** The minimal WebSocket the engine needs (the browser's `WebSocket` satisfies it). */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: ((ev: unknown) => void) | null;
  onclose: ((ev: unknown) => void) | null;
  onerror: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}

/** A clock: the browser's by default; tests pass a fake one. */
export interface ParlorClock {
  /** Monotonic milliseconds. */
  now(): number;
  /** Schedules `fn` after `ms`. */
  setTimeout(fn: () => void, ms: number): unknown;
  /** Cancels a timer of {@link ParlorClock.setTimeout}. */
  clearTimeout(timer: unknown): void;
}

/** Engine settings; every field is optional and has the protocol's default. */
export interface ParlorEngineOptions {
  /** Heartbeat interval until the server says otherwise (ms). */
  heartbeatMs?: number;
  /** Login timeout (ms), 30 000 by default. */
  loginTimeoutMs?: number;
  /** Reconnect window (ms), 300 000 by default. */
  reconnectWindowMs?: number;
  /** The WebSocket constructor (default: the global `WebSocket`). */
  WebSocket?: new (url: string) => WebSocketLike;
  /** The clock (default: `performance.now` / `Date.now` and the global timers). */
  clock?: ParlorClock;
  /** Random source in [0, 1) for the reconnection jitter (default `Math.random`). */
  random?: () => number;
  /** Where the `online` event is listened for (default: `window`, when there is one). */
  networkEvents?: {
    addEventListener(type: string, fn: () => void): void;
    removeEventListener(type: string, fn: () => void): void;
  } | null;
}

/**
 * Derives the WebSocket URL from `server`: `ws(s)://` is kept, `http(s)://` becomes
 * `ws(s)://`, and an empty path becomes `/v1/ws`.
 */
export function parlorWebSocketURL(server: string): string {
  const u = new URL(server);
  if (u.protocol === 'http:') u.protocol = 'ws:';
  else if (u.protocol === 'https:') u.protocol = 'wss:';
  else if (u.protocol !== 'ws:' && u.protocol !== 'wss:') {
    throw new Error(`unsupported server URL ${server}: use ws://, wss://, http:// or https://`);
  }
  if (u.pathname === '' || u.pathname === '/') u.pathname = '/v1/ws';
  u.hash = '';
  return u.toString();
}
