/**
 * The app's calls and what the core does with each (as the Rust core's `command.rs`). Every call
 * takes a `handle` of the app's choosing; its outcome is reported as a `result` event with it.
 *
 * @packageDocumentation
 */

import { ClientFrame, ErrorCodes, User } from './types.js';
import {
  LoginConfig,
  Machine,
  NO_DATA,
  addLoginingRoom,
  forgetRoom,
  report,
  request,
  result,
  wireConfig,
} from './core.js';
import { maybeEnd, wantConnection } from './connection.js';
import { Room, isLogining } from './room.js';
import { Kind } from './requests.js';
import { failRoomRequests, leaveIfOnServer, leaveRoomRequests } from './answers.js';

/** `login_room`; the first login of a session names the user and the `hello` token. */
export function loginRoom(
  m: Machine,
  now: number,
  a: { room: string; user: User; token: string; config?: LoginConfig; handle?: number },
): void {
  loginRoomInner(m, now, a);
  maybeEnd(m);
}

function loginRoomInner(
  m: Machine,
  now: number,
  a: { room: string; user: User; token: string; config?: LoginConfig; handle?: number },
): void {
  const room = a.room;
  if (m.rooms.has(room)) {
    result(m, a.handle, ErrorCodes.ALREADY_IN_ROOM);
    return;
  }
  const user = { id: a.user.id, name: a.user.name ?? '' };
  if (m.user !== undefined && (m.conn.session !== undefined || m.conn.state !== 'idle')) {
    if (m.user.id !== user.id) {
      // One session is one user: a second user needs a second engine.
      report(m, room, 'LOGINING', 0, NO_DATA());
      report(m, room, 'LOGIN_FAILED', ErrorCodes.TOKEN_USER_MISMATCH, NO_DATA());
      result(m, a.handle, ErrorCodes.TOKEN_USER_MISMATCH);
      return;
    }
  } else {
    m.user = user;
    m.token = a.token;
  }
  const config = wireConfig(a.config);
  addLoginingRoom(m, now, room, new Room(config, a.token));
  report(m, room, 'LOGINING', 0, NO_DATA());
  wantConnection(m, now);
  request(m, { t: 'login', id: 0, room, config: { ...config }, token: a.token }, { k: 'login', room }, a.handle, undefined);
}

/** `logout_room`: LOGOUT when answered; LOGOUT_FAILED 1002002 for a room the client is not in. */
export function logoutRoom(m: Machine, now: number, a: { room: string; handle?: number }): void {
  const room = a.room;
  const r = m.rooms.get(room);
  if (!r) {
    const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
    report(m, room, 'LOGOUT_FAILED', code, NO_DATA());
    result(m, a.handle, code);
  } else if (isLogining(r.phase)) {
    // Give up the login; a login already sent is answered with a logout later.
    const old = forgetRoom(m, room);
    failRoomRequests(m, room, ErrorCodes.NOT_IN_ROOM);
    report(m, room, 'LOGOUT', 0, NO_DATA());
    result(m, a.handle, 0);
    leaveIfOnServer(m, room, old);
  } else {
    request(m, { t: 'logout', id: 0, room }, { k: 'logout', room }, a.handle, room);
  }
  void now;
  maybeEnd(m);
}

/** `switch_room`: LOGOUT for `from` at once, LOGINING for `to`, then LOGINED or LOGIN_FAILED. */
export function switchRoom(
  m: Machine,
  now: number,
  a: { from: string; to: string; token?: string; config?: LoginConfig; handle?: number },
): void {
  const { from, to } = a;
  if (!m.rooms.has(from)) {
    const code = ErrorCodes.NOT_IN_ROOM_LOGOUT;
    report(m, from, 'LOGOUT_FAILED', code, NO_DATA());
    result(m, a.handle, code);
  } else if (m.rooms.has(to)) {
    result(m, a.handle, ErrorCodes.ALREADY_IN_ROOM);
  } else {
    // Leaving `from` is reported at once: the server does it in the same step, and from now on
    // nothing about `from` reaches the app.
    const old = forgetRoom(m, from);
    leaveRoomRequests(m, from);
    report(m, from, 'LOGOUT', 0, NO_DATA());
    const config = wireConfig(a.config);
    addLoginingRoom(m, now, to, new Room(config, a.token ?? old?.token));
    report(m, to, 'LOGINING', 0, NO_DATA());
    wantConnection(m, now);
    const f: ClientFrame = { t: 'switch', id: 0, from, to, config: { ...config } };
    if (a.token !== undefined) f.token = a.token;
    request(m, f, { k: 'switch', to }, a.handle, undefined);
  }
  maybeEnd(m);
}

/** `publish` a stream (signalling only). */
export function publish(m: Machine, now: number, a: { room: string; stream: string; extra?: string; handle?: number }): void {
  const { room, stream } = a;
  const extra = a.extra ?? '';
  m.streamRooms.set(stream, room);
  roomRequest(m, a.handle, room, { t: 'publish', id: 0, room, stream, extra }, { k: 'publish', room, stream, extra });
  void now;
  maybeEnd(m);
}

/** `unpublish` a stream; it is never re-published after this, whatever the answer. */
export function unpublish(m: Machine, now: number, a: { room: string; stream: string; handle?: number }): void {
  const { room, stream } = a;
  m.rooms.get(room)?.own.delete(stream);
  m.streamRooms.delete(stream);
  roomRequest(m, a.handle, room, { t: 'unpublish', id: 0, room, stream }, { k: 'unpublish', room, stream });
  void now;
  maybeEnd(m);
}

/** `stream_extra`: set a published stream's extra info. */
export function setStreamExtra(
  m: Machine,
  now: number,
  a: { room: string; stream: string; extra: string; handle?: number },
): void {
  const { room, stream, extra } = a;
  roomRequest(m, a.handle, room, { t: 'stream_extra', id: 0, room, stream, extra }, { k: 'stream_extra', room, stream, extra });
  void now;
  maybeEnd(m);
}

/** `room_extra`: set one key of the room's extra info. */
export function setRoomExtra(m: Machine, now: number, a: { room: string; key: string; value: string; handle?: number }): void {
  const { room, key, value } = a;
  roomRequest(m, a.handle, room, { t: 'room_extra', id: 0, room, key, value }, { k: 'room_extra', room, key, value });
  void now;
  maybeEnd(m);
}

/** `broadcast` or `barrage` a message; the result carries `messageId`. */
export function message(
  m: Machine,
  now: number,
  a: { kind: 'broadcast' | 'barrage'; room: string; message: string; handle?: number },
): void {
  const { room, kind } = a;
  roomRequest(m, a.handle, room, { t: kind, id: 0, room, message: a.message }, { k: 'plain' });
  void now;
  maybeEnd(m);
}

/** `command`: a custom command to some users (empty `to`: everyone else in the room). */
export function command(m: Machine, now: number, a: { room: string; to: string[]; command: string; handle?: number }): void {
  const { room } = a;
  roomRequest(m, a.handle, room, { t: 'command', id: 0, room, to: [...a.to], command: a.command }, { k: 'plain' });
  void now;
  maybeEnd(m);
}

/** `renew_token`: replaces the session's token (and every room's) when answered. */
export function renewToken(m: Machine, now: number, a: { token: string; handle?: number }): void {
  const token = a.token;
  if (m.conn.session === undefined && m.conn.state === 'idle') {
    m.token = token;
    result(m, a.handle, 0);
  } else {
    request(m, { t: 'renew_token', id: 0, token }, { k: 'renew_token', token }, a.handle, undefined);
  }
  void now;
  maybeEnd(m);
}

/** `members`: one page of a room's member list; the result carries `members`. */
export function members(
  m: Machine,
  now: number,
  a: { room: string; nextFlag: string; count: number; handle?: number },
): void {
  const { room } = a;
  roomRequest(m, a.handle, room, { t: 'members', id: 0, room, cursor: a.nextFlag, limit: a.count }, { k: 'members' });
  void now;
  maybeEnd(m);
}

/** A request about a room: only for a room the client is in (or entering, or away from). */
function roomRequest(m: Machine, handle: number | undefined, room: string, frame: ClientFrame, kind: Kind): void {
  if (!m.rooms.has(room)) {
    result(m, handle, ErrorCodes.NOT_IN_ROOM);
    return;
  }
  request(m, frame, kind, handle, room);
}
