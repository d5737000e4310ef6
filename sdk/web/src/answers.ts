/**
 * The answers to requests: `ok` and `error` with an `id`, and what each does to the rooms (as the
 * Rust core's `answers.rs`).
 *
 * @packageDocumentation
 */

import { CoreRoomStateReason, ErrorCodes, WireSeqs } from './types.js';
import { DecodedFrame, WireRoomState } from './decode.js';
import {
  Machine,
  NO_DATA,
  emit,
  flush,
  forgetRoom,
  me,
  report,
  request,
  result,
  selfUser,
  stopWindowIfBack,
} from './core.js';
import { onSessionError } from './connection.js';
import { isIn, isLoggingIn, isLogining, isRelogining, Room } from './room.js';
import { Pending, loginRoomOf } from './requests.js';
import { retryLater } from './retry.js';
import { relogined } from './resume.js';
import { diffViews, emptyView, viewFromState } from './view.js';

/** The state of a login `ok` without one: nothing, no epoch. */
function noState(): WireRoomState {
  return { streams: [], extra: [], online: 0, room_session: '' };
}

export function onOk(m: Machine, f: DecodedFrame & { t: 'ok' }): void {
  m.requests.served();
  const p = m.requests.takeAnswered(f.id);
  if (!p) {
    // A login's `ok` (it carries the room's state) that no request awaits: a login the app gave
    // up and the core forgot when its connection was lost, which a stalled path delivered late,
    // and which ran after the resume (so `resumed` could not name the room). The server has us
    // in the room: leave it unless the app wants it.
    if (f.room !== undefined && f.state !== undefined) abandonUnlessWanted(m, f.room);
    return;
  }
  const seq = f.seq;
  const k = p.kind;
  switch (k.k) {
    case 'login':
    case 'switch': {
      const room = k.k === 'login' ? k.room : k.to;
      const r = m.rooms.get(room);
      if (!r || !isLogining(r.phase)) {
        abandonUnlessWanted(m, room);
        return;
      }
      logined(m, room, f.state ?? noState(), seq, p.handle);
      return;
    }
    case 'relogin': {
      const r = m.rooms.get(k.room);
      if (!r || !isRelogining(r.phase)) {
        abandonUnlessWanted(m, k.room);
        return;
      }
      relogined(m, k.room, f.state ?? noState(), seq);
      return;
    }
    case 'logout':
      forgetRoom(m, k.room);
      failRoomRequests(m, k.room, ErrorCodes.NOT_IN_ROOM);
      report(m, k.room, 'LOGOUT', 0, NO_DATA());
      result(m, p.handle, 0);
      return;
    case 'publish': {
      sawSeqs(m, k.room, seq);
      const r = m.rooms.get(k.room);
      if (r) {
        r.own.set(k.stream, k.extra);
        r.view.streams.set(k.stream, { id: k.stream, user: selfUser(m), extra: k.extra });
      }
      result(m, p.handle, 0);
      return;
    }
    case 'republish': {
      sawSeqs(m, k.room, seq);
      const r = m.rooms.get(k.room);
      const extra = r?.own.get(k.stream);
      if (r && extra !== undefined) r.view.streams.set(k.stream, { id: k.stream, user: selfUser(m), extra });
      return;
    }
    case 'unpublish':
      sawSeqs(m, k.room, seq);
      m.rooms.get(k.room)?.view.streams.delete(k.stream);
      result(m, p.handle, 0);
      return;
    case 'stream_extra': {
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
    case 'renew_token':
      m.token = k.token;
      for (const r of m.rooms.values()) r.token = k.token;
      result(m, p.handle, 0);
      return;
    case 'quiet_logout':
      return;
    case 'abandoned':
      abandonUnlessWanted(m, k.room);
      return;
    case 'members': {
      const page = f.members ?? { users: [], count: 0, next: '' };
      // A page of a room whose view is partial (§9.10) is what the app now lists: its users join
      // the view, so that their later changes are reported.
      const r = m.rooms.get(f.room ?? p.needsRoom ?? '');
      if (r && r.view.usersPartial) {
        const id = me(m);
        for (const u of page.users) if (u.id !== id) r.view.users.set(u.id, { id: u.id, name: u.name });
      }
      if (p.handle !== undefined) {
        emit(m, {
          type: 'result',
          handle: p.handle,
          errorCode: 0,
          members: { room: f.room ?? '', users: page.users, count: page.count, nextFlag: page.next },
        });
      }
      return;
    }
    case 'room_extra': {
      // The app takes a successful set as the key's value. When a later change of the key is
      // already applied (this `ok` is a recalled answer, come after the replay that carried the
      // change), the app is told that newer value after the result, or it would keep ours (sim
      // seed 9146734; as the Rust core's answers.rs).
      const r = m.rooms.get(k.room);
      const item = { key: k.key, value: k.value, user: selfUser(m), timeMs: 0 };
      const newer = r !== undefined && isIn(r.phase) ? r.ownExtraSet(item, seq.room) : undefined;
      sawSeqs(m, k.room, seq);
      result(m, p.handle, 0);
      if (newer) emit(m, { type: 'roomExtraInfoUpdate', room: k.room, extra: [newer] });
      return;
    }
    case 'plain':
      sawSeqs(m, f.room ?? p.needsRoom, seq);
      result(m, p.handle, 0, f.message_id);
      return;
    case 'left':
      sawSeqs(m, undefined, seq);
      result(m, p.handle, 0, f.message_id);
      return;
  }
}

export function onError(m: Machine, now: number, f: DecodedFrame & { t: 'error' }): void {
  const code = f.code;
  if (f.id === undefined) {
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

/** A request failed with `code` (its `error`, or a 1000004 retried until its deadline). */
export function failRequest(m: Machine, p: Pending, code: number): void {
  const k = p.kind;
  switch (k.k) {
    case 'login':
    case 'switch': {
      const room = k.k === 'login' ? k.room : k.to;
      const r = m.rooms.get(room);
      if (r && isLogining(r.phase)) removeRoom(m, room, 'LOGIN_FAILED', code, NO_DATA(), code);
      result(m, p.handle, code);
      return;
    }
    case 'relogin': {
      const fail = ErrorCodes.RECONNECT_FAILED;
      const r = m.rooms.get(k.room);
      if (r && isRelogining(r.phase)) removeRoom(m, k.room, 'RECONNECT_FAILED', fail, { code }, fail);
      stopWindowIfBack(m);
      return;
    }
    case 'logout':
      if (code === ErrorCodes.NOT_IN_ROOM_LOGOUT) {
        forgetRoom(m, k.room);
        failRoomRequests(m, k.room, ErrorCodes.NOT_IN_ROOM);
      }
      report(m, k.room, 'LOGOUT_FAILED', code, NO_DATA());
      result(m, p.handle, code);
      return;
    case 'republish':
      // Refused (e.g. 1003025): the stream is no longer ours to publish.
      m.rooms.get(k.room)?.own.delete(k.stream);
      return;
    case 'quiet_logout':
      return;
    default:
      result(m, p.handle, code);
  }
}

/** Raises the acks to the seqs an `ok` names: `room`'s channels and the direct channel. */
export function sawSeqs(m: Machine, room: string | undefined, seq: WireSeqs): void {
  if (room !== undefined) m.rooms.get(room)?.sawSeqs(seq);
  if (seq.direct !== undefined) m.directSeq = Math.max(m.directSeq, seq.direct);
}

/** A login succeeded (by its `ok`, or by the snapshot of a resume): LOGINED, then the room. */
export function logined(
  m: Machine,
  room: string,
  state: WireRoomState,
  seq: WireSeqs,
  handle: number | undefined,
): void {
  const id = me(m);
  const r = m.rooms.get(room);
  if (!r) return;
  const view = viewFromState(state, id);
  m.timers.stop({ login: room });
  r.entered(state, seq, view);
  report(m, room, 'LOGINED', 0, { room_session_id: r.epoch });
  for (const e of diffViews(emptyView(), view, room, id)) emit(m, e);
  result(m, handle, 0);
  flush(m);
}

/** We are in `room` on the server but the app gave up on it: leave quietly. */
export function abandon(m: Machine, room: string): void {
  request(m, { t: 'logout', id: 0, room }, { k: 'quiet_logout' }, undefined, undefined);
}

/**
 * A login the app gave up was answered `ok`: the server has us in `room`. If the app is in the
 * room or entering it again, a logout now would take that away (a later login, behind a switch
 * out of the room, re-enters it: sim seed 4012098): that login's own answer decides, and if it
 * fails the room is left (`Room.onServer`). Otherwise leave quietly.
 */
export function abandonUnlessWanted(m: Machine, room: string): void {
  const r = m.rooms.get(room);
  if (r === undefined) abandon(m, room);
  else if (isLoggingIn(r.phase)) r.onServer = true;
}

/** Fails every request that needs `room` (and a login for it) with `code`. */
export function failRoomRequests(m: Machine, room: string, code: number): void {
  const failed = m.requests.takeWhere((p) => p.needsRoom === room || loginRoomOf(p.kind) === room);
  for (const [key, p] of failed) {
    result(m, p.handle, code);
    if (loginRoomOf(p.kind) !== undefined && p.wire.w === 'inFlight') {
      // The server may still put us in the room: keep it without a handle, so that its `ok` is
      // answered with a logout.
      m.requests.putBack(key, { ...p, handle: undefined, kind: { k: 'abandoned', room } });
    }
  }
}

/**
 * The app leaves `room` by a switch: its requests not sent yet fail with 1009005, but the
 * messages, commands, extra info and stream calls already sent stay until the server answers them
 * (see {@link takeSentRoomRequests}): it executes them before the switch, which follows them. (A
 * logout under way fails as before: the switch reports the room's LOGOUT.)
 */
export function leaveRoomRequests(m: Machine, room: string): void {
  const sent = takeSentRoomRequests(m, room);
  failRoomRequests(m, room, ErrorCodes.NOT_IN_ROOM);
  answerAsLeft(m, sent);
}

/**
 * The room's messages, commands, extra info and stream calls already sent (on the wire, or on a
 * connection since lost, to go again with their id), taken out before the room is left: the
 * server may have executed them while the session was still in the room, so failing them would
 * be a guess. Given back by {@link answerAsLeft} (as the Rust core's answers.rs).
 */
export function takeSentRoomRequests(m: Machine, room: string): Array<[number, Pending]> {
  return m.requests.takeWhere(
    (p) =>
      p.needsRoom === room &&
      p.wire.w !== 'held' &&
      ['plain', 'room_extra', 'publish', 'unpublish', 'stream_extra'].includes(p.kind.k),
  );
}

/**
 * Requests of a room since left, kept until the server answers them (from memory, by their id,
 * if it ran them in that life of the room; otherwise with an error): their answers only report a
 * result (kind `left`) and touch no later life of the room.
 */
export function answerAsLeft(m: Machine, sent: Array<[number, Pending]>): void {
  for (const [key, p] of sent) m.requests.putBack(key, { ...p, needsRoom: undefined, kind: { k: 'left' } });
}

/**
 * The server took us out of `room` (a live `kicked`, or `kicked` in `resumed`): the app gets
 * KICK_OUT, requests not sent yet fail with `code`, but those already sent may have run before
 * the kick (sim seeds 9366268, 9713742), so they wait for their answer (as the Rust core's
 * `kicked_out`).
 */
export function kickedOut(m: Machine, room: string, code: number, data: Record<string, unknown>): void {
  const sent = takeSentRoomRequests(m, room);
  removeRoom(m, room, 'KICK_OUT', code, data, code);
  answerAsLeft(m, sent);
}

/** `room` is gone for the app: reports `reason` / `code` / `data`, fails its requests with `failCode`. */
export function removeRoom(
  m: Machine,
  room: string,
  reason: CoreRoomStateReason,
  code: number,
  data: Record<string, unknown>,
  failCode: number,
): void {
  const old = forgetRoom(m, room);
  report(m, room, reason, code, data);
  failRoomRequests(m, room, failCode);
  leaveIfOnServer(m, room, old);
}

/**
 * A room given up before its held login landed, which `resumed` said the server has us in (see
 * `Room.onServer`): leave it quietly, or the server keeps us there with no client.
 */
export function leaveIfOnServer(m: Machine, room: string, old: Room | undefined): void {
  if (old?.onServer) abandon(m, room);
}
