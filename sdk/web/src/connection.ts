/**
 * The connection and the session on it: connecting, the handshake, liveness, backoff between
 * attempts, and the end of the session (as the Rust core's `connection.rs`).
 *
 * ```text
 *  idle ──login──► connecting ──opened──► handshake ──welcome──► ready
 *   ▲                  │                     │  └──resumed──► resuming ──resume_done──► ready
 *   │                  └─────── closed, or silent for 2 heartbeats ───────┐
 *   │                                                                     ▼
 *   └──── no room left ◄──── waiting (backoff: random × min(10 s, 0.5 s × 2^n)) ──► connecting
 * ```
 *
 * @packageDocumentation
 */

import { backoffDelayMs, retryAfterDelayMs } from './backoff.js';
import { DecodedFrame, clampHeartbeatMs } from './decode.js';
import { ErrorCodes } from './types.js';
import {
  Machine,
  NO_DATA,
  anyAway,
  flush,
  report,
  result,
  roomIds,
  roomsWhere,
  send,
} from './core.js';
import { isAway, isLogining } from './room.js';
import { ack, relogin } from './resume.js';
import { removeRoom } from './answers.js';

/**
 * Where the connection stands: `idle` (none, none wanted), `waiting` (none; the next attempt
 * starts at the `attempt` timer), `connecting` (`connect` emitted, waiting for `opened`),
 * `handshake` (`hello` or `resume` sent, waiting for `welcome` / `resumed` or `error`; nothing
 * else is sent meanwhile: the server may take any frame after a `resume` as proof that the client
 * holds the new token, protocol §9.3, which it cannot before the answer), `resuming`
 * (`resumed` received, the replay runs until `resume_done`), `ready` (for requests).
 */
export type ConnState = 'idle' | 'waiting' | 'connecting' | 'handshake' | 'resuming' | 'ready';

/**
 * What the server knows us by: the session id, and the token for the next `resume`, replaced by
 * each `welcome` / `resumed` and only then, so a resume whose answer was lost is retried with the
 * same token (protocol §9.3).
 */
export interface Session {
  id: string;
  resumeToken: string;
}

/** The connection's state machine and the session it carries. */
export class Connection {
  /** Where the connection stands. */
  state: ConnState = 'idle';
  /** Attempts since the last loss (or failure), for the backoff; reset by `welcome` / `resumed`. */
  attempt = 0;
  /** The session to resume, once `welcome` gave one. */
  session: Session | undefined = undefined;
  /** When a frame was last heard (or the attempt began): liveness runs from here. */
  lastHeard = 0;

  /** No connection yet; `heartbeatMs` is the interval in force until the server names one. */
  constructor(public heartbeatMs: number) {}

  /** A connection is open or on its way (its liveness is watched). */
  isLive(): boolean {
    return this.state === 'connecting' || this.state === 'handshake' || this.state === 'resuming' || this.state === 'ready';
  }

  /** The session is established on this connection (pings go out). */
  hasSession(): boolean {
    return this.state === 'resuming' || this.state === 'ready';
  }

  /** When the connection is judged dead: two heartbeat intervals after the last frame heard. */
  livenessDeadline(): number {
    return this.lastHeard + 2 * this.heartbeatMs;
  }
}

/** Something was heard (or an attempt began) at `now`: liveness starts over. */
export function heard(m: Machine, now: number): void {
  m.conn.lastHeard = now;
  m.timers.set('liveness', m.conn.livenessDeadline());
}

/** Makes sure a connection is open or on its way. */
export function wantConnection(m: Machine, now: number): void {
  if (m.conn.state === 'idle') connect(m, now);
}

/** Starts a connection attempt. */
export function connect(m: Machine, now: number): void {
  m.conn.state = 'connecting';
  m.timers.stop('attempt');
  heard(m, now);
  m.out.push({ connect: true });
}

/** The connection asked for by `connect` is open: `resume` the session, or say `hello`. */
export function handleOpened(m: Machine, now: number): void {
  if (m.conn.state !== 'connecting') return;
  m.conn.state = 'handshake';
  heard(m, now);
  const s = m.conn.session;
  if (s) {
    send(m, { t: 'resume', v: 1, session: s.id, resume_token: s.resumeToken, ack: ack(m) });
  } else {
    sendHello(m);
  }
}

export function sendHello(m: Machine): void {
  const u = m.user ?? { id: '', name: '' };
  send(m, { t: 'hello', v: 1, app_id: m.appId, user: { id: u.id, name: u.name }, token: m.token });
}

/** The connection closed, or a connect attempt failed (any close code). */
export function handleClosed(m: Machine, now: number): void {
  if (!m.conn.isLive()) return;
  lost(m, now, false);
  // A close after the last room went (a kick is followed by close 4009) ends the session with no
  // connection to come: what still waits (a renew_token in flight) is answered now, or never (sim
  // seeds 1006124, 1015244).
  maybeEnd(m);
}

/**
 * A connect attempt refused with HTTP 503 and `Retry-After` (protocol §9.7): as
 * {@link handleClosed}, but the next attempt waits until the server's slot for this client, if
 * that is later than the backoff's. (A browser's WebSocket does not show a refused upgrade's
 * status: only a transport that can read it calls this.)
 */
export function handleRefused(m: Machine, now: number, retryAfterMs: number): void {
  if (!m.conn.isLive()) return;
  handleClosed(m, now);
  if (m.conn.state === 'waiting') {
    const at = now + retryAfterDelayMs(retryAfterMs, m.random());
    const current = m.timers.get('attempt');
    if (current === undefined || current < at) m.timers.set('attempt', at);
  }
}

/** The network is back: a connection attempt waiting for its backoff starts at once. */
export function handleNetworkOnline(m: Machine, now: number): void {
  if (m.conn.state === 'waiting') attemptDue(m, now);
}

/** The backoff wait is over: try again, unless no room is left to connect for. */
export function attemptDue(m: Machine, now: number): void {
  m.timers.stop('attempt');
  if (m.rooms.size === 0) m.conn.state = 'idle';
  else connect(m, now);
}

/** The connection is gone (closed, failed, or judged dead, then `disconnect` it). */
export function lost(m: Machine, now: number, disconnect: boolean): void {
  if (disconnect) m.out.push({ disconnect: true });
  m.conn.state = 'idle';
  m.timers.stopConnection();
  m.requests.cut();
  if (m.rooms.size === 0) {
    endSession(m, false);
    return;
  }
  const gone = roomIds(m).filter((id) => m.rooms.get(id)?.connectionLost());
  for (const id of gone) report(m, id, 'RECONNECTING', ErrorCodes.RECONNECTING, NO_DATA());
  if (anyAway(m) && !m.timers.isSet('reconnectWindow')) {
    m.timers.set('reconnectWindow', now + m.reconnectWindowMs);
  }
  scheduleAttempt(m, now);
}

function scheduleAttempt(m: Machine, now: number): void {
  const wait = Math.floor(backoffDelayMs(m.conn.attempt, m.random()));
  m.conn.attempt++;
  m.conn.state = 'waiting';
  m.timers.set('attempt', now + wait);
}

/** Forgets the session (and closes the connection, saying `bye` when `bye`). */
export function endSession(m: Machine, bye: boolean): void {
  switch (m.conn.state) {
    case 'ready':
    case 'resuming':
      if (bye) send(m, { t: 'bye' });
      m.out.push({ disconnect: true });
      break;
    case 'connecting':
    case 'handshake':
      m.out.push({ disconnect: true });
      break;
    default:
      break;
  }
  m.conn.state = 'idle';
  m.conn.session = undefined;
  m.conn.attempt = 0;
  m.timers.stop('reconnectWindow');
  m.timers.stopConnection();
  m.directSeq = 0;
  m.requests.retain((p) => p.handle !== undefined);
}

/** With no room left and nothing the app waits for, ends the session. */
export function maybeEnd(m: Machine): void {
  // With no room left and no session up, nothing will connect again (no room is alive), so what
  // still waits is answered now: a renew_token keeps its token for the next session's hello (as
  // when there is no session at all), anything else fails with 1002053.
  if (m.rooms.size === 0 && m.conn.state !== 'ready' && m.conn.state !== 'resuming') {
    for (const [, p] of m.requests.takeWhere((p) => p.handle !== undefined)) {
      if (p.kind.k === 'renew_token') {
        m.token = p.kind.token;
        result(m, p.handle, 0);
      } else result(m, p.handle, ErrorCodes.RECONNECT_FAILED);
    }
  }
  if (m.rooms.size === 0 && !m.requests.appWaits() && (m.conn.state !== 'idle' || m.conn.session !== undefined)) {
    endSession(m, true);
  }
}

/**
 * Tears down (the app destroys the engine): ends the session, saying `bye` when it is up on the
 * connection (not while a `hello` or `resume` waits for its answer, protocol §9.3), and forgets
 * every room and request without reporting anything.
 */
export function shutdown(m: Machine, now: number): void {
  for (const room of m.rooms.keys()) m.timers.stop({ login: room });
  m.timers.stop('retry');
  m.rooms.clear();
  m.requests.clear();
  endSession(m, true);
  void now;
}

/**
 * The session is up (`welcome` or `resumed`): pings start, at the server's interval when it names
 * one (clamped, as the decoder does), and the backoff starts over.
 */
export function startHeartbeat(m: Machine, now: number, hb: number | undefined): void {
  if (hb !== undefined) {
    m.conn.heartbeatMs = clampHeartbeatMs(hb);
    m.timers.set('liveness', m.conn.livenessDeadline());
  }
  m.timers.set('ping', now + m.conn.heartbeatMs);
  m.conn.attempt = 0;
}

/** A ping is due: sends it with the acks, and arms the next one. */
export function pingDue(m: Machine, now: number): void {
  send(m, { t: 'ping', ack: ack(m) });
  const hb = m.conn.heartbeatMs;
  const next = (m.timers.get('ping') ?? now) + hb;
  m.timers.set('ping', next <= now ? now + hb : next);
}

export function onWelcome(m: Machine, now: number, f: DecodedFrame & { t: 'welcome' }): void {
  if (m.conn.state !== 'handshake' || m.conn.session !== undefined) return;
  m.conn.session = { id: f.session, resumeToken: f.resume_token };
  m.directSeq = 0;
  m.conn.state = 'ready';
  startHeartbeat(m, now, f.heartbeat_ms);
  const away = roomsWhere(m, isAway);
  if (away.length > 0) {
    // A new session after a refused resume: old request ids mean nothing to it, so every
    // waiting request goes out as new (with a new id); then every room that was in logs in
    // again.
    m.requests.forgetIds();
    // The previous session's relogins go first: one left waiting would be sent by the first
    // relogin's flush and then replaced by its room's own, a second login whose 1002001 fails
    // the room (sim seed 3188).
    m.requests.retain((p) => !(p.kind.k === 'relogin' && away.includes(p.kind.room)));
    for (const room of away) relogin(m, room);
  }
  flush(m);
}

/** An `error` without `id`: the server refused `hello` or `resume`. */
export function onSessionError(m: Machine, now: number, code: number): void {
  if (m.conn.state !== 'handshake') return;
  if (code === ErrorCodes.SERVICE_UNAVAILABLE) {
    // The server cannot reach its shared state (§9.6; close 4010 follows): one failed attempt.
    // The session, if any, is resumed at the next one.
    lost(m, now, true);
    return;
  }
  if (m.conn.session !== undefined) {
    // The resume cannot be honoured (1002057): start a new session on this connection and log
    // in to every room again (reported RECONNECTED with the diff).
    m.conn.session = undefined;
    m.directSeq = 0;
    m.requests.unsend();
    sendHello(m);
    return;
  }
  // `hello` refused (bad token, …): nothing will get better by retrying.
  for (const room of roomIds(m)) {
    const r = m.rooms.get(room);
    if (r && isLogining(r.phase)) {
      removeRoom(m, room, 'LOGIN_FAILED', code, NO_DATA(), code);
    } else {
      const fail = ErrorCodes.RECONNECT_FAILED;
      removeRoom(m, room, 'RECONNECT_FAILED', fail, { code }, fail);
    }
  }
  for (const [, p] of m.requests.takeWhere(() => true)) result(m, p.handle, code);
  endSession(m, false);
}

/** The reconnect window has passed: every room still away has failed, for good. */
export function reconnectFailed(m: Machine, now: number): void {
  const code = ErrorCodes.RECONNECT_FAILED;
  for (const id of roomsWhere(m, isAway)) removeRoom(m, id, 'RECONNECT_FAILED', code, NO_DATA(), code);
  if (m.conn.state !== 'ready') {
    // Requests for no room (renew_token, and those of a room left since) held since the loss fail
    // too.
    const failed = m.requests.takeWhere(
      (p) => p.needsRoom === undefined && (p.kind.k === 'renew_token' || p.kind.k === 'left'),
    );
    for (const [, p] of failed) result(m, p.handle, code);
    const logining = m.rooms.size > 0;
    endSession(m, false);
    // Rooms still logging in start over with a new session.
    if (logining) wantConnection(m, now);
  }
}
