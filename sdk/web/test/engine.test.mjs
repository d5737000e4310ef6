// The engine (IO driver) with a fake WebSocket and a fake clock: no network, no sleeps.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParlorEngine, parlorWebSocketURL } from '../dist/parlor.js';

class FakeClock {
  t = 1000;
  timers = new Map();
  nextId = 1;
  now = () => this.t;
  setTimeout = (fn, ms) => {
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id) => {
    this.timers.delete(id);
  };
  /** Runs every timer due within `ms`, in time order. */
  advance(ms) {
    const target = this.t + ms;
    for (;;) {
      let next;
      for (const [id, tm] of this.timers) if (tm.at <= target && (!next || tm.at < next[1].at)) next = [id, tm];
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = Math.max(this.t, next[1].at);
      next[1].fn();
    }
    this.t = target;
  }
}

function fakeNet() {
  const sockets = [];
  class FakeWS {
    readyState = 0;
    onopen = null;
    onclose = null;
    onerror = null;
    onmessage = null;
    sent = [];
    closed = null;
    constructor(url) {
      this.url = url;
      sockets.push(this);
    }
    send(data) {
      assert.equal(this.readyState, 1, 'send on an open socket only');
      this.sent.push(JSON.parse(data));
    }
    close(code, reason) {
      this.closed = { code, reason };
      this.readyState = 3;
    }
    // --- server side
    open() {
      this.readyState = 1;
      this.onopen?.({});
    }
    push(frame) {
      this.onmessage?.({ data: JSON.stringify(frame) });
    }
    drop() {
      this.readyState = 3;
      this.onclose?.({ code: 1006 });
    }
    last(t) {
      return this.sent.filter((f) => f.t === t).at(-1);
    }
  }
  const listeners = new Map();
  const net = {
    addEventListener: (type, fn) => listeners.set(type, fn),
    removeEventListener: (type) => listeners.delete(type),
    fire: (type) => listeners.get(type)?.(),
    listeners,
  };
  return { sockets, FakeWS, net };
}

const flush = () => new Promise((r) => setImmediate(r));

function setup() {
  const clock = new FakeClock();
  const { sockets, FakeWS, net } = fakeNet();
  const engine = new ParlorEngine(7, 'http://127.0.0.1:7700', {
    WebSocket: FakeWS,
    clock,
    random: () => 0.5,
    networkEvents: net,
  });
  const log = [];
  for (const ev of [
    'roomStateChanged', 'roomUserUpdate', 'roomStreamUpdate', 'roomStreamExtraInfoUpdate',
    'roomExtraInfoUpdate', 'roomOnlineUserCountUpdate', 'roomTokenWillExpire',
    'IMRecvBroadcastMessage', 'IMRecvBarrageMessage', 'IMRecvCustomCommand',
  ]) {
    engine.on(ev, (...args) => log.push([ev, ...args]));
  }
  return { clock, sockets, engine, log, net };
}

async function loggedIn() {
  const s = setup();
  const p = s.engine.loginRoom('r1', 'tok', { userID: 'u1', userName: 'Alice' }, { userUpdate: true });
  const ws = s.sockets[0];
  ws.open();
  ws.push({ t: 'welcome', session: 'S', resume_token: 'R', heartbeat_ms: 10000, session_timeout_ms: 90000, retention_ms: 1, server_time_ms: 0 });
  const login = ws.last('login');
  ws.push({
    t: 'ok', id: login.id, room: 'r1', users: [{ id: 'u2', name: 'Bob' }],
    streams: [{ id: 's2', user: { id: 'u2', name: 'Bob' }, extra: 'e' }],
    extra: [], online: 2, seq: { room: 1, users: 2 }, room_session: 'RS',
  });
  assert.equal(await p, true);
  return { ...s, ws };
}

test('server URLs: ws kept, http(s) mapped, empty path gets /v1/ws', () => {
  assert.equal(parlorWebSocketURL('ws://127.0.0.1:7700/v1/ws'), 'ws://127.0.0.1:7700/v1/ws');
  assert.equal(parlorWebSocketURL('http://127.0.0.1:7700'), 'ws://127.0.0.1:7700/v1/ws');
  assert.equal(parlorWebSocketURL('https://example.com/'), 'wss://example.com/v1/ws');
  assert.equal(parlorWebSocketURL('wss://example.com'), 'wss://example.com/v1/ws');
  assert.throws(() => parlorWebSocketURL('ftp://x'), /unsupported/);
});

test('login: hello then login on the wire, LOGINED and the room as ADDs in public shapes', async () => {
  const { ws, log, engine } = await loggedIn();
  assert.equal(ws.url, 'ws://127.0.0.1:7700/v1/ws');
  assert.deepEqual(ws.sent[0], { t: 'hello', v: 1, app_id: 7, user: { id: 'u1', name: 'Alice' }, token: 'tok' });
  assert.deepEqual(ws.sent[1].config, { max_members: 0, user_status_notify: true });
  assert.deepEqual(log, [
    ['roomStateChanged', 'r1', 'LOGINING', 0, {}],
    ['roomStateChanged', 'r1', 'LOGINED', 0, { room_session_id: 'RS' }],
    ['roomUserUpdate', 'r1', 'ADD', [{ userID: 'u2', userName: 'Bob' }]],
    ['roomStreamUpdate', 'r1', 'ADD', [{ streamID: 's2', user: { userID: 'u2', userName: 'Bob' }, extraInfo: 'e' }], {}],
  ]);
  assert.equal(engine.getRoomState('r1'), 'LOGINED');
  assert.deepEqual(engine.getRoomUsers('r1'), [{ userID: 'u2', userName: 'Bob' }]);
  engine.destroy();
});

test('messages resolve with messageID; received ones are reported', async () => {
  const { ws, log, engine } = await loggedIn();
  log.length = 0;
  const p = engine.sendBroadcastMessage('r1', 'hi');
  const f = ws.last('broadcast');
  assert.deepEqual([f.room, f.message], ['r1', 'hi']);
  ws.push({ t: 'ok', id: f.id, room: 'r1', message_id: 'M1', seq: { room: 2 } });
  assert.deepEqual(await p, { errorCode: 0, messageID: 'M1' });
  const c = engine.sendCustomCommand('r1', 'go', ['u2']);
  const cf = ws.last('command');
  assert.deepEqual(cf.to, ['u2']);
  ws.push({ t: 'error', id: cf.id, code: 1002073, message: 'too frequent' });
  assert.deepEqual(await c, { errorCode: 1002073 });
  ws.push({ t: 'event', room: 'r1', ch: 'room', seq: 3, kind: 'barrage', message_id: 'M2', from: { id: 'u2', name: 'Bob' }, message: 'yo', time_ms: 5 });
  ws.push({ t: 'event', room: 'r1', ch: 'direct', seq: 1, kind: 'command', from: { id: 'u2', name: 'Bob' }, command: 'c', time_ms: 5 });
  ws.push({ t: 'kicked', room: 'r1', code: 1002055, extended_data: { reason: 'admin' } });
  assert.deepEqual(log, [
    ['IMRecvBarrageMessage', 'r1', [{ message: 'yo', messageID: 'M2', sendTime: 5, fromUser: { userID: 'u2', userName: 'Bob' } }]],
    ['IMRecvCustomCommand', 'r1', { userID: 'u2', userName: 'Bob' }, 'c'],
    ['roomStateChanged', 'r1', 'KICKOUT', 1002055, { reason: 'admin' }],
  ]);
  assert.equal(engine.getRoomState('r1'), 'KICKOUT');
  assert.equal(ws.last('bye')?.t, 'bye', 'no room left: the session ends');
  assert.ok(ws.closed);
  engine.destroy();
});

test('a dropped connection reconnects after the jitter, resumes, and re-sends held requests', async () => {
  const { ws, log, engine, clock, sockets } = await loggedIn();
  log.length = 0;
  engine._debugDropConnection();
  assert.deepEqual(ws.closed, { code: 4000, reason: 'debug drop' });
  assert.deepEqual(log, [['roomStateChanged', 'r1', 'RECONNECTING', 1002051, {}]]);
  const pub = engine.startPublishingStream('s1', { extraInfo: 'x' });
  clock.advance(249);
  assert.equal(sockets.length, 1);
  clock.advance(1);
  assert.equal(sockets.length, 2);
  const ws2 = sockets[1];
  ws2.open();
  const resume = ws2.last('resume');
  assert.deepEqual(resume.ack, { direct: 0, rooms: { r1: { epoch: 'RS', room: 1, users: 2 } } });
  ws2.push({ t: 'resumed', session: 'S', resume_token: 'R2', rooms: { r1: 'replay' } });
  assert.equal(ws2.last('publish'), undefined);
  ws2.push({ t: 'resume_done' });
  const pf = ws2.last('publish');
  assert.deepEqual([pf.room, pf.stream, pf.extra], ['r1', 's1', 'x']);
  ws2.push({ t: 'ok', id: pf.id, room: 'r1', seq: { room: 2 } });
  assert.deepEqual(await pub, { errorCode: 0 });
  assert.deepEqual(log.at(-1), ['roomStateChanged', 'r1', 'RECONNECTED', 0, {}]);
  engine.destroy();
});

test('heartbeat pings go out on the clock; silence drops the socket', async () => {
  const { ws, engine, clock, log, sockets } = await loggedIn();
  clock.advance(10000);
  assert.ok(ws.last('ping'));
  ws.push({ t: 'pong', server_time_ms: 0 });
  clock.advance(19999);
  assert.equal(ws.closed, null);
  clock.advance(1);
  assert.ok(ws.closed, 'no frame for 20 s: closed');
  assert.equal(log.at(-1)[2], 'RECONNECTING');
  assert.equal(sockets.length, 1);
  engine.destroy();
});

test("the browser's online event reconnects at once", async () => {
  const { ws, engine, net, sockets } = await loggedIn();
  ws.drop();
  assert.equal(sockets.length, 1);
  net.fire('online');
  assert.equal(sockets.length, 2);
  engine.destroy();
  assert.equal(net.listeners.size, 0);
});

test('login failure resolves false; logout of an unknown room is LOGOUT_FAILED 1002002', async () => {
  const s = setup();
  const p = s.engine.loginRoom('r1', 'bad', { userID: 'u1' });
  s.sockets[0].open();
  s.sockets[0].push({ t: 'error', code: 1002033, message: 'auth' });
  assert.equal(await p, false);
  assert.deepEqual(s.log.at(-1), ['roomStateChanged', 'r1', 'LOGIN_FAILED', 1002033, {}]);
  assert.deepEqual(await s.engine.logoutRoom('nope'), { errorCode: 1002002 });
  assert.deepEqual(s.log.at(-1), ['roomStateChanged', 'nope', 'LOGOUT_FAILED', 1002002, {}]);
  s.engine.destroy();
});

test('destroy says bye, closes, stops timers and settles waiting calls', async () => {
  const { ws, engine, clock } = await loggedIn();
  const p = engine.sendBroadcastMessage('r1', 'never answered');
  engine.destroy();
  assert.equal(ws.last('bye')?.t, 'bye');
  assert.ok(ws.closed);
  assert.equal(clock.timers.size, 0);
  assert.deepEqual(await p, { errorCode: 1009005 });
  await flush();
});

test('a throwing handler does not break the engine', async () => {
  const s = setup();
  const orig = console.error;
  let logged = 0;
  console.error = () => logged++;
  try {
    s.engine.on('roomStateChanged', () => {
      throw new Error('app bug');
    });
    const p = s.engine.loginRoom('r1', 't', { userID: 'u1' });
    s.sockets[0].open();
    s.sockets[0].push({ t: 'welcome', session: 'S', resume_token: 'R', heartbeat_ms: 10000, session_timeout_ms: 90000, retention_ms: 1200000, server_time_ms: 0 });
    const id = s.sockets[0].last('login').id;
    s.sockets[0].push({ t: 'ok', id, room: 'r1', users: [], streams: [], extra: [], online: 1, seq: {}, room_session: 'x' });
    assert.equal(await p, true);
    assert.equal(logged, 2);
  } finally {
    console.error = orig;
    s.engine.destroy();
  }
});
