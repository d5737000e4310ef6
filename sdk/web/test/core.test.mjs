// Unit tests of the sans-IO core on fake time: no sockets, no sleeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCodes, ParlorCore, backoffCeilingMs, backoffDelayMs } from '../dist/parlor.js';

const U1 = { id: 'u1', name: 'A' };
const B = { id: 'u2', name: 'B' };

/** A core on fake time, with helpers to drive it. */
function harness(opts = {}) {
  const draws = opts.draws ?? [];
  let i = 0;
  const core = new ParlorCore({
    random: () => (i < draws.length ? draws[i++] : opts.random ?? 0.5),
    reconnectWindowMs: opts.reconnectWindowMs,
  });
  const h = {
    core,
    now: 0,
    take() {
      const out = [];
      for (let o = core.pollOutput(); o; o = core.pollOutput()) out.push(o);
      return out;
    },
    sends(t) {
      return h.take().filter((o) => o.send && (!t || o.send.t === t)).map((o) => o.send);
    },
    events(type) {
      return h.take().filter((o) => o.event && (!type || o.event.type === type)).map((o) => o.event);
    },
    recv(f) {
      core.handleFrame(h.now, f);
    },
    advance(ms) {
      const target = h.now + ms;
      for (let t = core.pollTimeout(); t !== undefined && t <= target; t = core.pollTimeout()) {
        h.now = Math.max(h.now, t);
        core.handleTimeout(h.now);
      }
      h.now = target;
    },
    /** Logs in to r1 (users: B), returns the login id. */
    login(room = 'r1', handle = 1) {
      core.loginRoom(h.now, { room, user: U1, token: 't', handle });
      if (core.pollTimeout() !== undefined && h.take().some((o) => o.connect)) {
        core.handleOpened(h.now);
        h.recv({ t: 'welcome', session: 's1', resume_token: 'rt1', heartbeat_ms: 10000, session_timeout_ms: 90000, retention_ms: 1200000, server_time_ms: 0 });
      }
      const login = h.sends('login').at(-1);
      h.recv({
        t: 'ok', id: login.id, room, users: [B], streams: [], extra: [], online: 2,
        seq: { room: 3, users: 5 }, room_session: 'e1',
      });
      h.take();
      return login.id;
    },
  };
  return h;
}

test('backoff: ceilings double from 500 ms and stop at 10 s', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5, 6, 50].map(backoffCeilingMs), [500, 1000, 2000, 4000, 8000, 10000, 10000, 10000]);
  for (let n = 0; n < 12; n++) {
    for (const r of [0, 0.25, 0.5, 0.999999]) {
      const d = backoffDelayMs(n, r);
      assert.ok(d >= 0 && d <= backoffCeilingMs(n), `attempt ${n} draw ${r}: ${d}`);
    }
  }
  assert.equal(backoffDelayMs(0, 0.5), 250);
  assert.equal(backoffDelayMs(3, 0.25), 1000);
  assert.equal(backoffDelayMs(1, Number.NaN), 0);
  assert.equal(backoffDelayMs(1, 7), 1000);
  assert.equal(backoffDelayMs(1, -1), 0);
});

test('backoff: each attempt waits draw × ceiling (full jitter), within the bounds', () => {
  const draws = [0.9, 0.1, 0.999, 0.999, 0.999, 0.999, 0.999, 0.0];
  const h = harness({ draws, reconnectWindowMs: 1e9 });
  h.login();
  let last = h.now;
  h.core.handleClosed(h.now);
  const waits = [];
  for (let n = 0; n < draws.length; n++) {
    const at = h.core.pollTimeout();
    waits.push(at - last);
    h.advance(at - h.now);
    assert.ok(h.take().some((o) => o.connect), `attempt ${n} connects`);
    last = h.now;
    h.core.handleClosed(h.now); // the attempt fails
  }
  assert.deepEqual(waits, [450, 100, 1998, 3996, 7992, 9990, 9990, 0]);
});

test('a jitter draw of zero still goes through the timer, never a busy loop', () => {
  const h = harness({ random: 0 });
  h.login();
  h.core.handleClosed(h.now);
  h.take();
  assert.equal(h.core.pollTimeout(), h.now);
  h.advance(0);
  assert.equal(h.take().filter((o) => o.connect).length, 1);
});

test('duplicate and old seqs are dropped on every channel; acks follow what was applied', () => {
  const h = harness();
  h.login();
  const ev = (ch, seq, extra) => h.recv({ t: 'event', room: 'r1', ch, seq, ...extra });
  const C = { id: 'u3', name: 'C' };
  ev('users', 6, { kind: 'user_add', users: [C] });
  ev('users', 6, { kind: 'user_add', users: [C] });
  ev('users', 5, { kind: 'user_delete', users: [B] });
  ev('room', 4, { kind: 'broadcast', message_id: 'm4', from: C, message: 'x', time_ms: 1 });
  ev('room', 4, { kind: 'broadcast', message_id: 'm4', from: C, message: 'x', time_ms: 1 });
  ev('room', 3, { kind: 'broadcast', message_id: 'm3', from: C, message: 'old', time_ms: 1 });
  h.recv({ t: 'event', room: 'r1', ch: 'direct', seq: 1, kind: 'command', from: C, command: 'go', time_ms: 1 });
  h.recv({ t: 'event', room: 'r1', ch: 'direct', seq: 1, kind: 'command', from: C, command: 'go', time_ms: 1 });
  const evs = h.events();
  assert.deepEqual(evs.map((e) => e.type), ['roomUserUpdate', 'IMRecvBroadcastMessage', 'IMRecvCustomCommand']);
  assert.deepEqual(h.core.roomUsers('r1').map((u) => u.id), ['u2', 'u3']);
  h.advance(10000);
  const [ping] = h.sends('ping');
  assert.deepEqual(ping.ack, { direct: 1, rooms: { r1: { epoch: 'e1', room: 4, users: 6 } } });
});

test('a gap is applied (and later numbers count from it)', () => {
  const h = harness();
  h.login();
  h.recv({ t: 'event', room: 'r1', ch: 'users', seq: 9, kind: 'user_delete', users: [B] });
  h.recv({ t: 'event', room: 'r1', ch: 'users', seq: 7, kind: 'user_add', users: [B] });
  const evs = h.events('roomUserUpdate');
  assert.equal(evs.length, 1);
  assert.equal(evs[0].updateType, 'DELETE');
});

test("the client's own user and streams are never reported as others' updates", () => {
  const h = harness();
  h.login();
  h.recv({ t: 'event', room: 'r1', ch: 'users', seq: 6, kind: 'user_add', users: [U1] });
  h.recv({ t: 'event', room: 'r1', ch: 'room', seq: 4, kind: 'stream_add', streams: [{ id: 'mine', user: U1, extra: '' }] });
  h.recv({ t: 'event', room: 'r1', ch: 'room', seq: 5, kind: 'stream_extra', streams: [{ id: 'mine', user: U1, extra: 'x' }] });
  h.recv({ t: 'event', room: 'r1', ch: 'room', seq: 6, kind: 'stream_delete', streams: [{ id: 'mine', user: U1, extra: '' }], reason: 1 });
  assert.deepEqual(h.events(), []);
});

test('requests made while RECONNECTING are held, then sent after resume_done (in-flight first, same id)', () => {
  const h = harness();
  h.login();
  h.core.message(h.now, { kind: 'broadcast', room: 'r1', message: 'a', handle: 2 });
  const [a] = h.sends('broadcast');
  h.core.handleClosed(h.now);
  assert.equal(h.events()[0].reason, 'RECONNECTING');
  h.core.publish(h.now, { room: 'r1', stream: 's1', extra: '', handle: 3 });
  assert.deepEqual(h.take(), []);
  h.advance(250);
  assert.ok(h.take().some((o) => o.connect));
  h.core.handleOpened(h.now);
  assert.equal(h.sends('resume').length, 1);
  h.recv({ t: 'resumed', session: 's1', resume_token: 'rt2', rooms: { r1: 'replay' } });
  assert.equal(h.events()[0].reason, 'RECONNECTED');
  assert.deepEqual(h.take(), [], 'nothing is sent before resume_done');
  h.recv({ t: 'resume_done' });
  const sent = h.sends();
  assert.deepEqual(sent.map((f) => [f.t, f.id]), [['broadcast', a.id], ['publish', a.id + 1]]);
});

test('held requests fail with 1002053 when the window ends, and nothing is tried after', () => {
  const h = harness({ reconnectWindowMs: 60000 });
  h.login();
  h.core.handleClosed(h.now);
  h.take();
  h.core.message(h.now, { kind: 'barrage', room: 'r1', message: 'x', handle: 7 });
  // Every attempt fails at once.
  const seen = [];
  let attempts = 0;
  for (let i = 0; i < 100 && h.now < 60000; i++) {
    const at = h.core.pollTimeout();
    h.advance(at - h.now);
    const out = h.take();
    seen.push(...out);
    if (out.some((o) => o.connect)) {
      attempts++;
      h.core.handleClosed(h.now);
    }
  }
  assert.ok(attempts >= 8, `only ${attempts} attempts`);
  const evs = seen.filter((o) => o.event).map((o) => o.event);
  assert.deepEqual(
    evs.map((e) => [e.type, e.reason ?? e.handle, e.errorCode]),
    [['roomStateChanged', 'RECONNECT_FAILED', 1002053], ['result', 7, 1002053]],
  );
  h.advance(10 * 60000);
  assert.deepEqual(h.take(), []);
  assert.equal(h.core.pollTimeout(), undefined);
});

test('no frame for two heartbeat intervals is a lost connection; pongs keep it alive', () => {
  const h = harness();
  h.login();
  for (let i = 0; i < 5; i++) {
    h.advance(10000);
    assert.equal(h.sends('ping').length, 1);
    h.recv({ t: 'pong', server_time_ms: 0 });
  }
  h.advance(19999);
  assert.ok(!h.take().some((o) => o.disconnect));
  h.advance(1);
  const out = h.take();
  assert.ok(out[0].disconnect, JSON.stringify(out));
  assert.equal(out[1].event.reason, 'RECONNECTING');
});

test("the browser's online event makes the waiting attempt at once", () => {
  const h = harness({ random: 0.99 });
  h.login();
  h.core.handleClosed(h.now);
  h.take();
  h.advance(10);
  assert.deepEqual(h.take(), []);
  h.core.handleNetworkOnline(h.now);
  assert.deepEqual(h.take(), [{ connect: true }]);
  h.core.handleNetworkOnline(h.now);
  assert.deepEqual(h.take(), [], 'only a waiting attempt is hurried');
});

test('a login answered after its timeout is undone with a quiet logout', () => {
  const h = harness();
  h.login('r1', 1);
  h.core.loginRoom(h.now, { room: 'r2', user: U1, token: 't', handle: 2 });
  const [login2] = h.sends('login');
  for (let i = 0; i < 3; i++) {
    h.advance(10000);
    h.recv({ t: 'pong', server_time_ms: 0 });
  }
  const evs = h.events();
  assert.deepEqual(
    evs.map((e) => [e.type, e.reason ?? e.handle, e.errorCode]),
    [['roomStateChanged', 'LOGIN_FAILED', 1002031], ['result', 2, 1002031]],
  );
  h.recv({ t: 'ok', id: login2.id, room: 'r2', users: [], streams: [], extra: [], online: 1, seq: {}, room_session: 'x' });
  const [logout] = h.sends('logout');
  assert.equal(logout.room, 'r2');
  assert.equal(h.core.roomState('r2'), 'LOGIN_FAILED');
});

test('a refused hello fails the login with the server code and closes', () => {
  const h = harness();
  h.core.loginRoom(h.now, { room: 'r1', user: U1, token: 'bad', handle: 1 });
  h.take();
  h.core.handleOpened(h.now);
  h.take();
  h.recv({ t: 'error', code: 1002033, message: 'bad token' });
  const out = h.take();
  assert.deepEqual(out.map((o) => o.event ? [o.event.reason ?? o.event.type, o.event.errorCode] : Object.keys(o)[0]), [
    ['LOGIN_FAILED', 1002033], ['result', 1002033], 'disconnect',
  ]);
  h.core.handleClosed(h.now);
  h.advance(100000);
  assert.deepEqual(h.take(), []);
});

test('a second user on the same core is refused with 1002077', () => {
  const h = harness();
  h.login();
  h.core.loginRoom(h.now, { room: 'r2', user: { id: 'other', name: '' }, token: 't', handle: 9 });
  const evs = h.events();
  assert.deepEqual(evs.map((e) => e.reason ?? e.type), ['LOGINING', 'LOGIN_FAILED', 'result']);
  assert.equal(evs[2].errorCode, 1002077);
});

test('requests for a room the client is not in fail at once with 1009005', () => {
  const h = harness();
  h.login();
  for (const call of [
    () => h.core.publish(h.now, { room: 'zz', stream: 's', handle: 5 }),
    () => h.core.message(h.now, { kind: 'broadcast', room: 'zz', message: 'm', handle: 5 }),
    () => h.core.command(h.now, { room: 'zz', to: [], command: 'c', handle: 5 }),
    () => h.core.setRoomExtra(h.now, { room: 'zz', key: 'k', value: 'v', handle: 5 }),
  ]) {
    call();
    assert.deepEqual(h.take(), [{ event: { type: 'result', handle: 5, errorCode: 1009005 } }]);
  }
});

test('the room of an own stream is known from the publish call until the stop', () => {
  const h = harness();
  h.login();
  assert.equal(h.core.roomOfOwnStream('s1'), undefined);
  h.core.publish(h.now, { room: 'r1', stream: 's1', handle: 2 });
  assert.equal(h.core.roomOfOwnStream('s1'), 'r1', 'sent, not yet answered');
  const pub = h.sends('publish').at(-1);
  h.recv({ t: 'ok', id: pub.id, room: 'r1', seq: { room: 4 } });
  assert.equal(h.core.roomOfOwnStream('s1'), 'r1');
  h.core.unpublish(h.now, { room: 'r1', stream: 's1', handle: 3 });
  assert.equal(h.core.roomOfOwnStream('s1'), undefined);
});

test('frames are decoded strictly: one that Rust refuses changes nothing', () => {
  const h = harness();
  h.login();
  assert.equal(h.core.handleFrame(h.now, { t: 'kicked', room: 'r1' }), false, 'no code');
  assert.equal(h.core.handleText(h.now, '{"t":"event","room":"r1","kind":"online","count":-1}'), false);
  assert.deepEqual(h.take(), []);
  assert.deepEqual(h.core.roomIds(), ['r1']);
  assert.equal(h.core.handleFrame(h.now, { t: 'kicked', room: 'r1', code: 1002055 }), true);
  assert.equal(h.events('roomStateChanged')[0].reason, 'KICK_OUT');
});

test('an upgrade refused with HTTP 503 or 429 (a socket closed before it opened) is a failed attempt: the login backs off until its timeout', () => {
  // The browser reports a refused upgrade as a close without an open; the core sees only that.
  const draws = [0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5];
  const h = harness({ draws });
  h.core.loginRoom(h.now, { room: 'r1', user: U1, token: 't', handle: 1 });
  assert.ok(h.take().some((o) => o.connect), 'attempt 0 connects at once');
  const attempts = [h.now];
  const failed = [];
  for (let n = 0; n < 40 && failed.length === 0; n++) {
    h.core.handleClosed(h.now); // refused: never opened
    const at = h.core.pollTimeout();
    if (at === undefined) break;
    h.advance(at - h.now);
    const out = h.take();
    failed.push(...out.filter((o) => o.event?.reason === 'LOGIN_FAILED').map((o) => o.event.errorCode));
    if (out.some((o) => o.connect)) attempts.push(h.now);
  }
  const waits = attempts.slice(1).map((t, i) => t - attempts[i]);
  // Each wait is draw × ceiling (§7): 250, 500, 1000, 2000, 4000, 5000, 5000, … until 30 s.
  assert.deepEqual(waits.slice(0, 7), [250, 500, 1000, 2000, 4000, 5000, 5000]);
  assert.ok(attempts.length < 15, `${attempts.length} attempts in 30 s, not a busy loop`);
  assert.deepEqual(failed, [1002031], 'LOGIN_FAILED with the login timeout');
});

test('a hello refused with 1000005 (the app at its session limit) fails the login with that code', () => {
  const h = harness();
  h.core.loginRoom(h.now, { room: 'r1', user: U1, token: 't', handle: 1 });
  h.take();
  h.core.handleOpened(h.now);
  h.take();
  assert.equal(ErrorCodes.TOO_MANY_SESSIONS, 1000005);
  h.recv({ t: 'error', code: ErrorCodes.TOO_MANY_SESSIONS, message: 'the app has reached its session limit on this server' });
  const out = h.take();
  assert.deepEqual(out.map((o) => o.event ? [o.event.reason ?? o.event.type, o.event.errorCode] : Object.keys(o)[0]), [
    ['LOGIN_FAILED', 1000005], ['result', 1000005], 'disconnect',
  ]);
  h.core.handleClosed(h.now);
  h.advance(100000);
  assert.deepEqual(h.take(), [], 'not retried');
});
