/**
 * What the client knows of one room (the server's view: users, streams, extra info), and the
 * diff between two views as the exact ADD / DELETE updates the app must see. As the Rust core's
 * `view.rs`: the view holds the *others* (never the client's own user) and *every* stream, the
 * client's own too (needed to decide what to publish again after a reconnection), and the own
 * ones are filtered out of every app report.
 *
 * @packageDocumentation
 * @internal
 */

import { CoreEvent, RoomExtraInfo, Stream, User, WireRoomExtraItem } from './types.js';
import { WireRoomState } from './decode.js';

/** @internal One room's state as the client knows it. */
export interface RoomView {
  /** The others in the room, by user id. */
  users: Map<string, User>;
  /** Published streams (the client's own too), by stream id. */
  streams: Map<string, Stream>;
  /** Room extra info, by key. */
  extra: Map<string, RoomExtraInfo>;
  /** Everyone in the room. */
  online: number;
  /**
   * `users` is only part of the room (§9.10): a large room's first page, or emptied by a
   * `list_changed` batch. The `members` pages the app reads are added to it, so that the changes
   * of everyone the app was told of are reported, and nobody else's.
   */
  usersPartial: boolean;
}

/** @internal Sorts strings as Rust's `BTreeMap` does (by UTF-16 code units, here). */
export function byKey(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** @internal The map's values, by key. */
export function sortedValues<V>(m: Map<string, V>): V[] {
  return [...m.keys()].sort(byKey).map((k) => m.get(k) as V);
}

/** @internal A wire extra-info item as app events carry it. */
export function toExtraInfo(e: WireRoomExtraItem): RoomExtraInfo {
  return { key: e.key, value: e.value, user: { id: e.user.id, name: e.user.name }, timeMs: e.time_ms };
}

function sameExtra(a: RoomExtraInfo | undefined, b: RoomExtraInfo): boolean {
  return (
    a !== undefined &&
    a.key === b.key &&
    a.value === b.value &&
    a.user.id === b.user.id &&
    a.user.name === b.user.name &&
    a.timeMs === b.timeMs
  );
}

/** @internal A view with nothing in it. */
export function emptyView(): RoomView {
  return { users: new Map(), streams: new Map(), extra: new Map(), online: 0, usersPartial: false };
}

/** @internal The view of a login `ok` or a `snapshot`; `me` is the client's user id. */
export function viewFromState(state: WireRoomState, me: string): RoomView {
  const v = emptyView();
  for (const u of state.users ?? []) if (u.id !== me) v.users.set(u.id, { id: u.id, name: u.name });
  for (const s of state.streams) v.streams.set(s.id, s);
  for (const e of state.extra) v.extra.set(e.key, toExtraInfo(e));
  v.online = state.online;
  v.usersPartial = usersPaged(state);
  return v;
}

/**
 * @internal Whether a room state's `users` is a page of a longer list (§9.10: `users_next` names
 * a rest). A `users_next` of "" says the page held everyone: that list is whole.
 */
export function usersPaged(state: WireRoomState): boolean {
  return state.users_next !== undefined && state.users_next !== '';
}

/**
 * @internal The updates that turn an app's picture of `a` into `b`: users DELETE, users ADD,
 * streams DELETE, streams ADD, stream extra info changes, room extra info changes (each only when
 * non-empty, in that order). Online count changes are not reported here.
 */
export function diffViews(a: RoomView, b: RoomView, room: string, me: string): CoreEvent[] {
  const out: CoreEvent[] = [];
  const gone = sortedValues(a.users).filter((u) => u.id !== me && !b.users.has(u.id));
  const came = sortedValues(b.users).filter((u) => u.id !== me && !a.users.has(u.id));
  if (gone.length) out.push({ type: 'roomUserUpdate', room, updateType: 'DELETE', users: gone });
  if (came.length) out.push({ type: 'roomUserUpdate', room, updateType: 'ADD', users: came });
  out.push(...diffStreamsAndExtra(a, b, room, me));
  return out;
}

/** @internal The part of {@link diffViews} after the users: streams and extra info. */
export function diffStreamsAndExtra(a: RoomView, b: RoomView, room: string, me: string): CoreEvent[] {
  const out: CoreEvent[] = [];
  // A stream that changed publisher counts as deleted and added.
  const same = (x: Stream, y: Stream | undefined) => y !== undefined && x.user.id === y.user.id;
  const othersA = sortedValues(a.streams).filter((s) => s.user.id !== me);
  const othersB = sortedValues(b.streams).filter((s) => s.user.id !== me);
  const sGone = othersA.filter((s) => !same(s, b.streams.get(s.id)));
  const sCame = othersB.filter((s) => !same(s, a.streams.get(s.id)));
  const sChanged = othersB.filter((s) => {
    const o = a.streams.get(s.id);
    return same(s, o) && o !== undefined && o.extra !== s.extra;
  });
  if (sGone.length) {
    out.push({ type: 'roomStreamUpdate', room, updateType: 'DELETE', streams: sGone, extendedData: {} });
  }
  if (sCame.length) {
    out.push({ type: 'roomStreamUpdate', room, updateType: 'ADD', streams: sCame, extendedData: {} });
  }
  if (sChanged.length) out.push({ type: 'roomStreamExtraInfoUpdate', room, streams: sChanged });
  const extra = sortedValues(b.extra).filter((e) => !sameExtra(a.extra.get(e.key), e));
  if (extra.length) out.push({ type: 'roomExtraInfoUpdate', room, extra });
  return out;
}
