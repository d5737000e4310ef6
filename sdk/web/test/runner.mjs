// Replays a shared scenario (tests/scenarios/README.md) through the TypeScript core.
//
// runScenario(scenario) throws an Error naming the step on the first mismatch; it returns the
// number of `expect` steps checked.
import { ParlorCore, decodeServerFrame } from '../dist/parlor.js';

const MAX_FIRES = 100_000;

/** Deep partial match: returns null when `actual` matches `expected`, else a description. */
export function partialMatch(expected, actual, path = '$') {
  if (expected === null || typeof expected !== 'object') {
    return Object.is(expected, actual) || expected === actual
      ? null
      : `${path}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual)) return `${path}: expected an array, got ${JSON.stringify(actual)}`;
    if (actual.length !== expected.length) {
      return `${path}: expected ${expected.length} elements, got ${actual.length}: ${JSON.stringify(actual)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const m = partialMatch(expected[i], actual[i], `${path}[${i}]`);
      if (m) return m;
    }
    return null;
  }
  if (actual === null || typeof actual !== 'object' || Array.isArray(actual)) {
    return `${path}: expected an object, got ${JSON.stringify(actual)}`;
  }
  for (const key of Object.keys(expected)) {
    if (!(key in actual)) return `${path}.${key}: missing in ${JSON.stringify(actual)}`;
    const m = partialMatch(expected[key], actual[key], `${path}.${key}`);
    if (m) return m;
  }
  return null;
}

function substitute(value, ids) {
  if (typeof value === 'string' && (value === '$last' || value.startsWith('$last:'))) {
    const id = value === '$last' ? ids.last : ids.byType[value.slice('$last:'.length)];
    if (id === undefined) throw new Error(`${value}: no such request was sent`);
    return id;
  }
  if (Array.isArray(value)) return value.map((v) => substitute(v, ids));
  if (value !== null && typeof value === 'object') {
    const o = {};
    for (const [k, v] of Object.entries(value)) o[k] = substitute(v, ids);
    return o;
  }
  return value;
}

function doCommand(core, now, s) {
  // As in the Rust runner, a step without a handle uses handle 0.
  const handle = s.handle ?? 0;
  switch (s.do) {
    case 'login_room':
      return core.loginRoom(now, { room: s.room, user: s.user, token: s.token, config: s.config, handle });
    case 'logout_room':
      return core.logoutRoom(now, { room: s.room, handle });
    case 'switch_room':
      return core.switchRoom(now, { from: s.from, to: s.to, token: s.token, config: s.config, handle });
    case 'publish':
      return core.publish(now, { room: s.room, stream: s.stream, extra: s.extra, handle });
    case 'unpublish':
      return core.unpublish(now, { room: s.room, stream: s.stream, handle });
    case 'stream_extra':
    case 'set_stream_extra':
      return core.setStreamExtra(now, { room: s.room, stream: s.stream, extra: s.extra, handle });
    case 'room_extra':
    case 'set_room_extra':
      return core.setRoomExtra(now, { room: s.room, key: s.key, value: s.value, handle });
    case 'broadcast':
    case 'barrage':
      return core.message(now, { kind: s.do, room: s.room, message: s.message, handle });
    case 'command':
      return core.command(now, { room: s.room, to: s.to ?? [], command: s.command, handle });
    case 'renew_token':
      return core.renewToken(now, { token: s.token, handle });
    case 'query_room_member_list':
      return core.queryRoomMemberList(now, { room: s.room, nextFlag: s.next_flag ?? '', count: s.count ?? 100, handle });
    default:
      throw new Error(`unknown command ${JSON.stringify(s.do)}`);
  }
}

/** Runs one scenario object; throws on the first mismatch. */
export function runScenario(sc) {
  const cfg = sc.config ?? {};
  const random = cfg.random ?? 0.5;
  const core = new ParlorCore({
    appId: cfg.app_id ?? 1,
    heartbeatMs: cfg.heartbeat_ms ?? 10_000,
    loginTimeoutMs: cfg.login_timeout_ms ?? 30_000,
    reconnectWindowMs: cfg.reconnect_window_ms ?? 300_000,
    random: () => random,
  });
  const ignore = new Set(sc.ignore_sends ?? []);
  const ids = { last: undefined, byType: {} };
  let now = 0;
  let outputs = [];
  let checked = 0;

  const drain = () => {
    for (let o = core.pollOutput(); o !== undefined; o = core.pollOutput()) {
      // Outputs must be plain JSON (they are wire frames and app events).
      const copy = JSON.parse(JSON.stringify(o));
      if (copy.send && typeof copy.send.id === 'number') {
        ids.last = copy.send.id;
        ids.byType[copy.send.t] = copy.send.id;
      }
      if (copy.send && ignore.has(copy.send.t)) continue;
      outputs.push(copy);
    }
  };

  (sc.steps ?? []).forEach((step, i) => {
    const where = `${sc.name ?? 'scenario'} step ${i} ${JSON.stringify(step).slice(0, 160)}`;
    try {
      if ('expect' in step) {
        const exp = step.expect;
        const problem = partialMatch(exp, outputs, '$outputs');
        if (problem) {
          throw new Error(
            `${problem}\n  expected: ${JSON.stringify(exp)}\n  actual:   ${JSON.stringify(outputs)}`,
          );
        }
        outputs = [];
        checked++;
        return;
      }
      if ('do' in step) doCommand(core, now, step);
      else if ('opened' in step) core.handleOpened(now);
      else if ('closed' in step) core.handleClosed(now, step.code);
      else if ('refused_retry_after_ms' in step) core.handleRefused(now, step.refused_retry_after_ms);
      else if ('recv' in step || 'recv_text' in step) {
        // Through the text path, as a frame arrives from a WebSocket. `recv` is a frame as JSON,
        // `recv_text` the exact text of one. Without `rejected` the frame must decode; with it,
        // the decoder must refuse it for that reason (and the core then ignores it).
        const text = 'recv' in step ? JSON.stringify(substitute(step.recv, ids)) : step.recv_text;
        if (typeof text !== 'string') throw new Error('recv_text must be a string');
        const got = decodeServerFrame(text).error?.kind;
        const applied = core.handleText(now, text);
        if (got !== step.rejected) {
          throw new Error(
            `frame ${text}: expected ${step.rejected ? `rejection as ${step.rejected}` : 'it to decode'}, ` +
              `got ${got ? `rejection as ${got}` : 'it decoded'}`,
          );
        }
        if (applied !== (got === undefined)) throw new Error(`frame ${text}: handleText disagrees with the decoder`);
      }
      else if ('advance' in step) {
        const target = now + step.advance;
        let fires = 0;
        for (;;) {
          const t = core.pollTimeout();
          if (t === undefined || t > target) break;
          if (++fires > MAX_FIRES) throw new Error('deadlines do not advance');
          now = Math.max(now, t);
          core.handleTimeout(now);
          drain();
        }
        now = target;
      } else if ('online' in step) core.handleNetworkOnline(now);
      else if ('destroy' in step) core.shutdown(now);
      else throw new Error('unknown step');
      drain();
    } catch (e) {
      e.message = `${where}: ${e.message}`;
      throw e;
    }
  });
  // Every output must be accounted for: a scenario ends with an `expect` of what the last steps
  // produced (possibly `[]`).
  drain();
  if (outputs.length > 0) {
    throw new Error(`${sc.name ?? 'scenario'}: outputs left unchecked after the last step: ${JSON.stringify(outputs)}`);
  }
  return checked;
}
