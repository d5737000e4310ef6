/**
 * What the server tells about a room unasked: channel events (applied exactly once, against the
 * client's view), kicks, and token expiry notices (as the Rust core's `channel.rs`).
 *
 * @packageDocumentation
 */

import { Stream, User } from './types.js';
import { DecodedFrame } from './decode.js';
import { Machine, NO_DATA, emit, me } from './core.js';
import { isIn } from './room.js';
import { kickedOut } from './answers.js';
import { toExtraInfo } from './view.js';

export function onKicked(m: Machine, f: DecodedFrame & { t: 'kicked' }): void {
  if (!m.rooms.has(f.room)) return;
  const d = f.extended_data;
  const data = d !== null && typeof d === 'object' && !Array.isArray(d) ? (d as Record<string, unknown>) : NO_DATA();
  kickedOut(m, f.room, f.code, data);
}

export function onTokenWillExpire(m: Machine, f: DecodedFrame & { t: 'token_will_expire' }): void {
  if (m.rooms.has(f.room)) emit(m, { type: 'roomTokenWillExpire', room: f.room, remainingS: f.remaining_s });
}

export function onEvent(m: Machine, f: DecodedFrame & { t: 'event' }): void {
  const id = me(m);
  const room = f.room;
  const seq = f.seq;
  const b = f.body;
  if (f.ch === 'direct') {
    if (seq !== undefined) {
      if (seq <= m.directSeq) return;
      m.directSeq = seq;
    }
    // Only for a room in use: before LOGINED (or while away) the app knows of no room to put it
    // in, and no correct server sends one then (as the Rust core's channel.rs).
    const inRoom = m.rooms.get(room);
    if (b.kind === 'command' && inRoom !== undefined && isIn(inRoom.phase) && b.from.id !== id) {
      emit(m, { type: 'IMRecvCustomCommand', room, from: b.from, command: b.command, timeMs: b.time_ms });
    }
    return;
  }
  const r = m.rooms.get(room);
  if (!r || !isIn(r.phase)) return;
  if ((f.ch === 'room' || f.ch === 'users') && seq !== undefined) {
    const last = f.ch === 'room' ? r.seqRoom : r.seqUsers;
    if (seq <= last) return; // seen already (a replay overlapping what was applied)
    // A gap (seq > last + 1) is applied anyway.
    if (f.ch === 'room') r.seqRoom = seq;
    else r.seqUsers = seq;
  }
  const v = r.view;
  switch (b.kind) {
    case 'user_add': {
      const added: User[] = [];
      for (const u of b.users) {
        if (u.id === id) continue;
        const known = v.users.has(u.id);
        v.users.set(u.id, u);
        if (!known) added.push(u);
      }
      if (added.length) emit(m, { type: 'roomUserUpdate', room, updateType: 'ADD', users: added });
      return;
    }
    case 'user_delete': {
      const gone: User[] = [];
      for (const u of b.users) {
        if (u.id === id) continue;
        const old = v.users.get(u.id);
        if (old) {
          v.users.delete(u.id);
          gone.push(old);
        }
      }
      if (gone.length) emit(m, { type: 'roomUserUpdate', room, updateType: 'DELETE', users: gone });
      return;
    }
    // A large room's batch (§9.10): applied as a set, like `user_add` and `user_delete` above
    // (deletes first); the count is reported like `online`.
    case 'user_update': {
      if (b.list_changed) {
        // The list moved on by more than a batch tells: what the view holds may have left (and
        // come back) unseen. It holds nobody until the app reads pages again (added to it, see
        // answers.ts `members`), so no such change is swallowed.
        v.users.clear();
        v.usersPartial = true;
      }
      const gone: User[] = [];
      for (const u of b.deleted) {
        if (u.id === id) continue;
        const old = v.users.get(u.id);
        if (old) {
          v.users.delete(u.id);
          gone.push(old);
        }
      }
      const added: User[] = [];
      for (const u of b.added) {
        if (u.id === id) continue;
        const known = v.users.has(u.id);
        v.users.set(u.id, u);
        if (!known) added.push(u);
      }
      if (gone.length) emit(m, { type: 'roomUserUpdate', room, updateType: 'DELETE', users: gone });
      if (added.length) emit(m, { type: 'roomUserUpdate', room, updateType: 'ADD', users: added });
      if (b.list_changed) emit(m, { type: 'roomUserListChanged', room, count: b.count });
      if (v.online !== b.count) {
        v.online = b.count;
        emit(m, { type: 'roomOnlineUserCountUpdate', room, count: b.count });
      }
      return;
    }
    case 'stream_add': {
      const added: Stream[] = [];
      for (const s of b.streams) {
        const isNew = !v.streams.has(s.id);
        v.streams.set(s.id, s);
        if (isNew && s.user.id !== id) added.push(s);
      }
      if (added.length) emit(m, { type: 'roomStreamUpdate', room, updateType: 'ADD', streams: added, extendedData: {} });
      return;
    }
    case 'stream_delete': {
      const gone: Stream[] = [];
      for (const s of b.streams) {
        const old = v.streams.get(s.id);
        if (old) {
          v.streams.delete(s.id);
          if (old.user.id !== id) gone.push(old);
        }
      }
      if (gone.length) {
        emit(m, { type: 'roomStreamUpdate', room, updateType: 'DELETE', streams: gone, extendedData: { reason: b.reason } });
      }
      return;
    }
    case 'stream_extra': {
      const changed: Stream[] = [];
      for (const s of b.streams) {
        const old = v.streams.get(s.id);
        if (old) v.streams.set(s.id, { ...old, extra: s.extra });
        if (s.user.id !== id) changed.push(s);
      }
      if (changed.length) emit(m, { type: 'roomStreamExtraInfoUpdate', room, streams: changed });
      return;
    }
    case 'room_extra': {
      const item = toExtraInfo({ key: b.key, value: b.value, user: b.user, time_ms: b.time_ms });
      // Only this client's own set, whose result reports it, goes untold: the same user on
      // another client (which took the room over while this one was away) is news to this app
      // (sim seed 9523566; as the Rust core's channel.rs).
      const own =
        item.user.id === id &&
        m.requests
          .all()
          .some((p) => p.kind.k === 'room_extra' && p.kind.room === room && p.kind.key === item.key && p.kind.value === item.value);
      if (!own) emit(m, { type: 'roomExtraInfoUpdate', room, extra: [item] });
      r.extraSeq.set(item.key, seq ?? r.seqRoom);
      v.extra.set(item.key, item);
      return;
    }
    // A replay carries the client's own events too (§9.3): they are counted (above), never
    // reported.
    case 'broadcast':
    case 'barrage':
      if (b.from.id === id) return;
      emit(m, {
        type: b.kind === 'broadcast' ? 'IMRecvBroadcastMessage' : 'IMRecvBarrageMessage',
        room,
        from: b.from,
        message: b.message,
        messageId: b.message_id,
        timeMs: b.time_ms,
      });
      return;
    case 'command':
      if (b.from.id === id) return;
      emit(m, { type: 'IMRecvCustomCommand', room, from: b.from, command: b.command, timeMs: b.time_ms });
      return;
    case 'online':
      if (v.online !== b.count) {
        v.online = b.count;
        emit(m, { type: 'roomOnlineUserCountUpdate', room, count: b.count });
      }
      return;
  }
}
