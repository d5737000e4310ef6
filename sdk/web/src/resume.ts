/**
 * Getting the rooms back after a cut: the acks of `resume` and `ping`, `resumed`, snapshots (and
 * their diff against what the app knew), fresh logins for rooms the server lost, and publishing
 * again the app's streams the server no longer has (as the Rust core's `resume.rs`).
 *
 * @packageDocumentation
 */

import { Ack, ClientFrame, CoreEvent, WireSeqs } from './types.js';
import { DecodedFrame, WireRoomState } from './decode.js';
import {
  Machine,
  NO_DATA,
  emit,
  flush,
  me,
  report,
  request,
  roomIds,
  roomsWhere,
  stopWindowIfBack,
} from './core.js';
import { startHeartbeat } from './connection.js';
import { Room, answeredBySnapshot, isAway, isIn, isLoggingIn, isLogining, isRelogining } from './room.js';
import { leaves, loginRoomOf, touchesStream } from './requests.js';
import { abandon, kickedOut, logined, removeRoom } from './answers.js';
import { RoomView, byKey, diffStreamsAndExtra, diffViews, viewFromState } from './view.js';

/**
 * What the client has applied: the direct channel's seq and, per room it was in, the epoch and
 * the seqs of its channels.
 */
export function ack(m: Machine): Ack {
  const rooms: Ack['rooms'] = {};
  for (const id of roomIds(m)) {
    const r = m.rooms.get(id) as Room;
    if (isLoggingIn(r.phase) || r.epoch === undefined) continue;
    rooms[id] = { epoch: r.epoch, room: r.seqRoom, users: r.seqUsers };
  }
  // A room whose login went out but was not answered may be ours on the server: ack it with an
  // empty epoch, so that the server, if it has us there, answers with a snapshot (which then
  // serves as the login's answer), never a replay we have no base for.
  for (const p of m.requests.all()) {
    const room = loginRoomOf(p.kind);
    if (room === undefined || p.wire.w === 'held') continue;
    const r = m.rooms.get(room);
    if (r && isLoggingIn(r.phase) && rooms[room] === undefined) rooms[room] = { epoch: '', room: 0, users: 0 };
  }
  return { direct: m.directSeq, rooms };
}

/** Whether the login (or switch) into `room` has gone out. */
function loginSent(m: Machine, room: string): boolean {
  for (const p of m.requests.all()) if (loginRoomOf(p.kind) === room && p.wire.w !== 'held') return true;
  return false;
}

/**
 * Whether a snapshot of `room` in `resumed` is the answer of its login: the login went out and
 * nothing unanswered that leaves `room` went out before it. Behind such a switch or logout the
 * server may have neither (and has us there from before, to be left by it) or both (and has us
 * there by the login): the two go again with their ids, in order, and the login's own answer
 * (fresh or repeated) says (sim seed 1019609).
 */
function snapshotAnswersLogin(m: Machine, room: string): boolean {
  let login: number | undefined;
  for (const p of m.requests.all()) {
    if (loginRoomOf(p.kind) === room && p.wire.w !== 'held') {
      login = p.wire.id;
      break;
    }
  }
  if (login === undefined) return false;
  const before = login;
  return !m.requests.all().some((p) => p.wire.w !== 'held' && p.wire.id < before && leaves(p, room));
}

export function onResumed(m: Machine, now: number, f: DecodedFrame & { t: 'resumed' }): void {
  const s = m.conn.session;
  if (m.conn.state !== 'handshake' || !s) return;
  s.id = f.session;
  s.resumeToken = f.resume_token;
  m.conn.state = 'resuming';
  startHeartbeat(m, now, f.heartbeat_ms);
  const away = roomsWhere(m, (p) => isAway(p) && !isRelogining(p));
  // Rooms that are (re-)logging in: their login's answer may have been lost.
  for (const room of roomsWhere(m, isLoggingIn)) {
    const o = f.rooms.get(room);
    // Only a login that went out can have been answered: a room whose login is still held is on
    // the server from before (left by a switch queued ahead of the login, say), and its snapshot
    // is not this login's answer.
    if (o?.outcome === 'snapshot' && snapshotAnswersLogin(m, room)) m.rooms.get(room)?.answerBySnapshot();
    else if (o?.outcome === 'kicked') removeRoom(m, room, 'KICK_OUT', o.code, NO_DATA(), o.code);
    // Held, yet the server has us there: if the held login fails, leave the room.
    else if (o !== undefined && !loginSent(m, room)) {
      const r = m.rooms.get(room);
      if (r) r.onServer = true;
    }
    // Not there (the login never arrived: it goes again), a replay (the repeated login's `ok`
    // answers it), or a snapshot behind a leave of the room (see `snapshotAnswersLogin`).
  }
  for (const room of away) {
    const o = f.rooms.get(room);
    if (o === undefined) {
      const leaving = m.requests.all().some((p) => p.kind.k === 'logout' && p.kind.room === room);
      if (leaving) {
        // Our logout reached the server before the cut: its repeat gets the answer.
        m.rooms.get(room)?.back();
        report(m, room, 'RECONNECTED', 0, NO_DATA());
      } else {
        // The server no longer has us there (§9.3): log in again, on this session.
        relogin(m, room);
      }
    } else if (o.outcome === 'kicked') {
      kickedOut(m, room, o.code, NO_DATA());
    } else {
      m.rooms.get(room)?.resumed();
      report(m, room, 'RECONNECTED', 0, NO_DATA());
    }
  }
  // Rooms the server still has us in but the app gave up meanwhile: leave them.
  for (const room of [...f.rooms.keys()].sort(byKey)) {
    const o = f.rooms.get(room);
    if (!m.rooms.has(room) && o?.outcome !== 'kicked') abandon(m, room);
  }
  stopWindowIfBack(m);
}

export function onResumeDone(m: Machine): void {
  if (m.conn.state !== 'resuming') return;
  m.conn.state = 'ready';
  for (const room of roomsWhere(m, (p) => p.p === 'replaying')) republish(m, room);
  flush(m);
}

export function onSnapshot(m: Machine, f: DecodedFrame & { t: 'snapshot' }): void {
  const room = f.room;
  const r = m.rooms.get(room);
  if (!r) return;
  const ph = r.phase;
  if (isLogining(ph) && answeredBySnapshot(ph)) {
    // The login whose answer was lost: this snapshot is its answer.
    const p = m.requests.takeFirst(
      (q) => (q.kind.k === 'login' || q.kind.k === 'switch') && loginRoomOf(q.kind) === room,
    );
    logined(m, room, f.state, f.seq, p?.handle);
    return;
  }
  if (isRelogining(ph) && answeredBySnapshot(ph)) {
    m.requests.takeFirst((q) => q.kind.k === 'relogin' && q.kind.room === room);
    relogined(m, room, f.state, f.seq);
    return;
  }
  if (!isIn(ph)) return;
  const view = viewFromState(f.state, me(m));
  const old = r.atState(f.state, f.seq, view);
  reportDiff(m, room, old, view);
}

/**
 * Tells the app what changed from `old` to `view`: the diff, then the online count. When `view`
 * is a large room's (§9.10) whose `users` is only the first page of the list, a diff of users
 * would report everyone past that page as gone: the users are not diffed, the app is told
 * `roomUserListChanged` instead (the view's users are now that page).
 */
function reportDiff(m: Machine, room: string, old: RoomView, view: RoomView): void {
  const events: CoreEvent[] = view.usersPartial
    ? [{ type: 'roomUserListChanged', room, count: view.online }, ...diffStreamsAndExtra(old, view, room, me(m))]
    : diffViews(old, view, room, me(m));
  for (const e of events) emit(m, e);
  if (old.online !== view.online) emit(m, { type: 'roomOnlineUserCountUpdate', room, count: view.online });
}

/**
 * Logs in to a room that was in again (new session, or a resume that no longer has it); the room
 * stays RECONNECTING until the answer.
 */
export function relogin(m: Machine, room: string): void {
  // One login per room at a time: a relogin of a previous session is replaced.
  m.requests.retain((p) => !(p.kind.k === 'relogin' && p.kind.room === room));
  const r = m.rooms.get(room);
  if (!r) return;
  r.relogining();
  const frame: ClientFrame = { t: 'login', id: 0, room, config: { ...r.config } };
  if (r.token !== undefined) frame.token = r.token;
  request(m, frame, { k: 'relogin', room }, undefined, undefined);
}

/** A fresh login of a room that was in succeeded: RECONNECTED, then the diff. */
export function relogined(m: Machine, room: string, state: WireRoomState, seq: WireSeqs): void {
  const r = m.rooms.get(room);
  if (!r) return;
  const view = viewFromState(state, me(m));
  const old = r.entered(state, seq, view);
  report(m, room, 'RECONNECTED', 0, NO_DATA());
  reportDiff(m, room, old, view);
  stopWindowIfBack(m);
  republish(m, room);
  flush(m);
}

/**
 * Re-publishes the app's streams that the server no longer has in `room` (and that no request in
 * flight is already publishing or stopping).
 */
export function republish(m: Machine, room: string): void {
  const r = m.rooms.get(room);
  if (!r) return;
  r.replayDone();
  const missing = [...r.own.keys()]
    .sort(byKey)
    .filter((s) => !r.view.streams.has(s))
    .map((s) => [s, r.own.get(s) as string] as const);
  for (const [stream, extra] of missing) {
    if (m.requests.all().some((p) => touchesStream(p.kind, room, stream))) continue;
    request(m, { t: 'publish', id: 0, room, stream, extra }, { k: 'republish', room, stream }, undefined, room);
  }
}
