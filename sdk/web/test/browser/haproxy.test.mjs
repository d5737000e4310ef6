// The demo page through HAProxy in front of two `parlor serve --redis` nodes sharing one Redis:
// the node serving page A is killed (SIGKILL); A resumes through HAProxy on the other node
// (RECONNECTING, then RECONNECTED), and page B, on the surviving node, sees nothing of it — no
// room state change, no user update for A — also after the session timeout has passed.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Cluster, until } from './cluster.mjs';
import {
  STEP_MS,
  launchBrowser,
  listedUsers,
  loginThroughUI,
  openDemo,
  parlorLog,
  sendThroughUI,
  uniq,
  waitForMessage,
  waitForUser,
} from './harness.mjs';

/** The nodes' session timeout (`--session-timeout`), ms. */
const SESSION_TIMEOUT_MS = 5_000;

let cluster;
let browser;

before(async () => {
  cluster = new Cluster();
  try {
    await cluster.startRedis();
    const args = ['--heartbeat', '1s', '--session-timeout', `${SESSION_TIMEOUT_MS / 1000}s`];
    await cluster.startNode('n1', { args });
    await cluster.startNode('n2', { args });
    await cluster.startHaproxy();
    browser = await launchBrowser();
  } catch (e) {
    await cluster.stop();
    throw e;
  }
});

after(async () => {
  await browser?.close().catch(() => {});
  await cluster?.stop();
});

/** Page errors, without the browser's own reports of WebSocket connections that failed. */
function pageErrors(page) {
  return page.parlorErrors.filter((e) => !/WebSocket/i.test(e));
}

/** The node whose `connected` count went from `before` to one more; waits for it. */
async function nodeOfNewConnection(before) {
  let now;
  const id = await until(STEP_MS, async () => {
    now = await cluster.connected();
    const grown = Object.keys(now).filter((k) => (now[k] ?? 0) === (before[k] ?? 0) + 1);
    const same = Object.keys(now).filter((k) => (now[k] ?? 0) === (before[k] ?? 0));
    return grown.length === 1 && same.length === Object.keys(now).length - 1 ? grown[0] : null;
  }, () => `no single node got the new connection: before ${JSON.stringify(before)}, now ${JSON.stringify(now)}`);
  return cluster.nodes.find((n) => n.id === id);
}

test('a node dies: page A resumes on the other node through HAProxy, page B sees nothing', { timeout: 120_000 }, async (t) => {
  const fail = (msg) => `${msg}\n${cluster.logs()}`;
  const room = `room-${uniq()}`;
  const a = { id: `alice-${uniq()}`, name: 'Alice' };
  const b = { id: `bob-${uniq()}`, name: 'Bob' };

  const pa = await openDemo(browser, cluster.base);
  t.after(() => pa.context().close().catch(() => {}));
  const pb = await openDemo(browser, cluster.base);
  t.after(() => pb.context().close().catch(() => {}));
  assert.equal(await pa.getByTestId('server').inputValue(), cluster.base, 'the page talks to HAProxy');

  const c0 = await cluster.connected();
  await loginThroughUI(pa, { userID: a.id, userName: a.name, room });
  const nodeA = await nodeOfNewConnection(c0);
  const c1 = await cluster.connected();
  await loginThroughUI(pb, { userID: b.id, userName: b.name, room });
  const nodeB = await nodeOfNewConnection(c1);
  assert.notEqual(nodeB.id, nodeA.id, fail(`HAProxy (leastconn) put both pages on ${nodeA.id}`));
  await waitForUser(pa, b.id);
  await waitForUser(pb, a.id);

  const aBefore = (await parlorLog(pa)).length;
  const bBefore = (await parlorLog(pb)).length;
  const killedAt = Date.now();
  await nodeA.kill();

  await pa.waitForFunction(
    () => document.querySelector('[data-testid=timeline-item][data-reason=RECONNECTING][data-code="1002051"]'),
    null, { timeout: STEP_MS },
  ).catch((e) => assert.fail(fail(`A never showed RECONNECTING: ${e}`)));
  await pa.waitForFunction(
    () => document.querySelector('[data-testid=timeline-item][data-reason=RECONNECTED][data-code="0"]'),
    null, { timeout: 20_000 },
  ).catch(async (e) => assert.fail(fail(`A never showed RECONNECTED: ${e}\nA's log: ${JSON.stringify((await parlorLog(pa)).slice(aBefore))}`)));
  const aStates = (await parlorLog(pa)).slice(aBefore)
    .filter((e) => e.event === 'roomStateChanged')
    .map((e) => [e.roomID, e.reason, e.errorCode]);
  assert.deepEqual(aStates, [[room, 'RECONNECTING', 1002051], [room, 'RECONNECTED', 0]], fail('A\'s states'));
  // A is on the surviving node now, with B.
  const after = await until(STEP_MS, async () => {
    const c = await cluster.connected();
    return c[nodeB.id] === 2 ? c : null;
  }, () => fail('A\'s new connection is not on the surviving node'));
  assert.equal(after[nodeA.id], null);

  // Past the session timeout (counted from the kill) a session wrongly left offline would have
  // been removed from the room by now (B would get user_delete for A).
  const wait = killedAt + SESSION_TIMEOUT_MS + 2_000 - Date.now();
  if (wait > 0) await new Promise((ok) => setTimeout(ok, wait));
  // Barrier: a broadcast from A after all that reaches B after anything the loss caused for B.
  const text = `still here ${uniq()}`;
  await sendThroughUI(pa, text);
  await waitForMessage(pb, text, { from: a.id });
  const bEvents = (await parlorLog(pb)).slice(bBefore);
  assert.deepEqual(bEvents.filter((e) => e.event === 'roomStateChanged'), [], fail('B saw a room state change'));
  assert.deepEqual(bEvents.filter((e) => e.event === 'roomUserUpdate'), [], fail('B saw a user update'));
  assert.deepEqual(bEvents.map((e) => e.event), ['IMRecvBroadcastMessage'], fail('B\'s events'));
  assert.deepEqual((await listedUsers(pb)).sort(), [a.id, b.id].sort());
  assert.deepEqual((await listedUsers(pa)).sort(), [a.id, b.id].sort());
  assert.deepEqual(pageErrors(pa), [], 'errors in page A');
  assert.deepEqual(pageErrors(pb), [], 'errors in page B');
});
