/**
 * Types shared by the sans-IO core and the engine: the wire shapes of the Parlor protocol
 * (version 1, `docs/protocol.md`) and the app events of the client.
 *
 * Wire field names are the protocol's (snake_case); app event fields are camelCase, exactly as
 * the shared scenario files (`tests/scenarios/README.md`) spell them.
 *
 * @packageDocumentation
 */

/** A user as the protocol carries it. */
export interface User {
  /** The user id (1–64 bytes). */
  id: string;
  /** The display name; empty means "show the id". */
  name: string;
}

/** A published stream. */
export interface Stream {
  /** The stream id, unique within an app while published. */
  id: string;
  /** The publisher. */
  user: User;
  /** The stream's extra info. */
  extra: string;
}

/** One key of a room's extra info, as the wire carries it. */
export interface WireRoomExtraItem {
  key: string;
  value: string;
  user: User;
  time_ms: number;
}

/** One key of a room's extra info, as app events carry it. */
export interface RoomExtraInfo {
  /** The key (at most 128 bytes). */
  key: string;
  /** The value (at most 1024 bytes). */
  value: string;
  /** Who set it last. */
  user: User;
  /** When it was set, server wall time in ms. */
  timeMs: number;
}

/** Login settings as the wire carries them (`login` and `switch`). */
export interface WireRoomConfig {
  max_members: number;
  user_status_notify: boolean;
}

/** Channel positions (`seq` of `ok` and `snapshot`). */
export interface WireSeqs {
  room?: number;
  users?: number;
  direct?: number;
}

/** What the client has applied of one room. */
export interface RoomAck {
  epoch: string;
  room: number;
  users: number;
}

/** The `ack` of `ping` and `resume`. */
export interface Ack {
  direct: number;
  rooms: Record<string, RoomAck>;
}

/** A frame the client sends (`t` tagged). Request frames carry `id`. */
export type ClientFrame = { t: string; id?: number; [field: string]: unknown };

/** A frame the server sends (`t` tagged), before decoding (see `decode.ts`). */
export type ServerFrame = { t: string; [field: string]: unknown };

/** Room state reasons as the core (and the scenario files) spell them. */
export type CoreRoomStateReason =
  | 'LOGINING'
  | 'LOGINED'
  | 'LOGIN_FAILED'
  | 'RECONNECTING'
  | 'RECONNECTED'
  | 'RECONNECT_FAILED'
  | 'KICK_OUT'
  | 'LOGOUT'
  | 'LOGOUT_FAILED';

/** `'ADD'` or `'DELETE'`. */
export type UpdateType = 'ADD' | 'DELETE';

/** An app event produced by the core (see `tests/scenarios/README.md`). */
export type CoreEvent =
  | {
      type: 'roomStateChanged';
      room: string;
      reason: CoreRoomStateReason;
      errorCode: number;
      extendedData: Record<string, unknown>;
    }
  | { type: 'roomUserUpdate'; room: string; updateType: UpdateType; users: User[] }
  | {
      type: 'roomStreamUpdate';
      room: string;
      updateType: UpdateType;
      streams: Stream[];
      extendedData: Record<string, unknown>;
    }
  | { type: 'roomStreamExtraInfoUpdate'; room: string; streams: Stream[] }
  | { type: 'roomExtraInfoUpdate'; room: string; extra: RoomExtraInfo[] }
  | { type: 'roomUserListChanged'; room: string; count: number }
  | { type: 'roomOnlineUserCountUpdate'; room: string; count: number }
  | { type: 'roomTokenWillExpire'; room: string; remainingS: number }
  | {
      type: 'IMRecvBroadcastMessage' | 'IMRecvBarrageMessage';
      room: string;
      from: User;
      message: string;
      messageId: string;
      timeMs: number;
    }
  | { type: 'IMRecvCustomCommand'; room: string; from: User; command: string; timeMs: number }
  | { type: 'result'; handle: number; errorCode: number; messageId?: string; members?: MemberPage };

/** One page of a room's member list (`queryRoomMemberList`), in the order of user ids. */
export interface MemberPage {
  room: string;
  /** The members on this page (the caller too, when in its range). */
  users: User[];
  /** How many members the room had when the page was read. */
  count: number;
  /** Pass it to get the next page; "" when this page is the last. */
  nextFlag: string;
}

/** What the core asks its driver to do. */
export type CoreOutput =
  | { connect: true }
  | { disconnect: true }
  | { send: ClientFrame }
  | { event: CoreEvent };

/**
 * The WebSocket close codes of the protocol (the names and values of `parlor_protocol::close_code`).
 * The client treats every close as a lost connection; these name the ones it sends and sees.
 */
export const CloseCodes = {
  /** Normal, after `bye`. */
  NORMAL: 1000,
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
  SHUTDOWN: 4010,
} as const;

/** Error codes the client itself produces (protocol §8). */
export const ErrorCodes = {
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
  NOT_IN_ROOM: 1009005,
} as const;
