// A server that sends an absurd heartbeat_ms (0, 1, 2^63, u64::MAX): the engine pings at the
// clamped interval (1 s to 5 min, as parlor_protocol::bounds), never arms a timer of a
// non-finite, negative or absurd delay, and arms only a few timers per interval (no spinning).
// A fake WebSocket and a fake clock that counts every timer armed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ParlorEngine } from '../dist/parlor.js';

class CountingClock {
  t = 1000;
  timers = new Map();
  nextId = 1;
  arms = [];
  now = () => this.t;
  setTimeout = (fn, ms) => {
    this.arms.push(ms);
    const id = this.nextId++;
    this.timers.set(id, { at: this.t + ms, fn });
    return id;
  };
  clearTimeout = (id) => {
    this.timers.delete(id);
  };
  advance(ms) {
    const target = this.t + ms;
    // A timer that keeps re-arming itself at the same instant would loop here for ever.
    for (let fired = 0; ; fired++) {
      if (fired > 10_000) throw new Error('timers spin: over 10 000 fired in one advance');
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

class FakeWS {
  static last = null;
  readyState = 0;
  sent = [];
  constructor(url) {
    this.url = url;
    FakeWS.last = this;
  }
  send(data) {
    this.sent.push(JSON.parse(data));
  }
  close() {
    this.readyState = 3;
  }
  open() {
    this.readyState = 1;
    this.onopen?.({});
  }
  text(raw) {
    this.onmessage?.({ data: raw });
  }
  pings() {
    return this.sent.filter((f) => f.t === 'ping').length;
  }
}

const net = { addEventListener: () => {}, removeEventListener: () => {} };

/** Log in against a welcome whose heartbeat_ms is the raw JSON `hb`; returns the clock and socket. */
async function loggedIn(hb) {
  const clock = new CountingClock();
  const engine = new ParlorEngine(7, 'ws://parlor.test/v1/ws', { WebSocket: FakeWS, clock, random: () => 0.5, networkEvents: net });
  const p = engine.loginRoom('r1', 'tok', { userID: 'u1', userName: 'A' });
  const ws = FakeWS.last;
  ws.open();
  ws.text(`{"t":"welcome","session":"S","resume_token":"R","heartbeat_ms":${hb},"session_timeout_ms":90000,"retention_ms":1200000,"server_time_ms":0}`);
  const login = ws.sent.find((f) => f.t === 'login');
  ws.text(JSON.stringify({ t: 'ok', id: login.id, room: 'r1', users: [], streams: [], extra: [], online: 1, seq: { room: 0, users: 1 }, room_session: 'rs' }));
  assert.equal(await p, true);
  return { clock, ws, engine };
}

for (const [hb, want] of [['0', 1000], ['1', 1000], ['9223372036854775808', 300000], ['18446744073709551615', 300000]]) {
  test(`heartbeat_ms ${hb} from the server: pings every ${want} ms, a few timers per interval`, async () => {
    const { clock, ws, engine } = await loggedIn(hb);
    assert.equal(engine.getRoomState('r1'), 'LOGINED');
    const armedBefore = clock.arms.length;
    for (let k = 1; k <= 5; k++) {
      clock.advance(want - 1);
      assert.equal(ws.pings(), k - 1, `no ping before ${want} ms (interval ${k})`);
      clock.advance(1);
      assert.equal(ws.pings(), k, `a ping at ${want} ms (interval ${k})`);
      ws.text('{"t":"pong","server_time_ms":0}');
    }
    const armed = clock.arms.slice(armedBefore);
    console.log(`heartbeat_ms ${hb}: ${armed.length} timers armed in 5 intervals`);
    assert.ok(armed.length <= 5 * 2, `${armed.length} timers armed in 5 intervals: spinning`);
    for (const ms of armed) assert.ok(Number.isFinite(ms) && ms >= 0 && ms <= 2 * 300000, `a timer of ${ms} ms`);
    assert.equal(engine.getRoomState('r1'), 'LOGINED');
  });
}
