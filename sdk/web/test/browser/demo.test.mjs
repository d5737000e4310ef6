// Browser tests of the demo page (crates/parlor-server/assets/index.html) against a real
// `parlor serve`, driven through its UI in Debian's chromium. Run: `npm run test:browser`.
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import {
  STEP_MS,
  launchBrowser,
  listedUsers,
  loginThroughUI,
  openDemo,
  parlorLog,
  sendThroughUI,
  startServer,
  uniq,
  waitForMessage,
  waitForState,
  waitForUser,
} from './harness.mjs';

describe('demo page', () => {
  let server;
  let browser;
  const pages = [];

  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
  });

  after(async () => {
    for (const p of pages) await p.context().close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  async function open() {
    const page = await openDemo(browser, server.base);
    pages.push(page);
    return page;
  }

  /** Two people in one fresh room, through the UI. */
  async function twoInARoom() {
    const room = `room-${uniq()}`;
    const a = { id: `alice-${uniq()}`, name: 'Alice' };
    const b = { id: `bob-${uniq()}`, name: 'Bob' };
    const pa = await open();
    const pb = await open();
    await loginThroughUI(pa, { userID: a.id, userName: a.name, room });
    await loginThroughUI(pb, { userID: b.id, userName: b.name, room });
    return { room, a, b, pa, pb };
  }

  function assertNoPageErrors(...ps) {
    for (const p of ps) assert.deepEqual(p.parlorErrors, [], 'errors in the page');
  }

  test('the page serves its defaults and the SDK', async () => {
    const page = await open();
    assert.equal(await page.getByTestId('app-id').inputValue(), '1');
    assert.equal(await page.getByTestId('server').inputValue(), server.base);
    assert.equal(await page.getByTestId('room-id').inputValue(), 'lobby');
    const user = await page.getByTestId('user-id').inputValue();
    assert.match(user, /^user-\d{4}$/);
    assert.equal(await page.getByTestId('stream-id').inputValue(), `${user}-cam`);
    assert.equal(await page.getByTestId('room-state').textContent(), 'LOGOUT');
    assert.equal(await page.evaluate(() => window.parlor), null);
    assert.deepEqual(await parlorLog(page), []);
    assertNoPageErrors(page);
  });

  test('(a) two users in one room see each other', async () => {
    const { room, a, b, pa, pb } = await twoInARoom();
    await waitForUser(pa, b.id);
    await waitForUser(pb, a.id);
    assert.deepEqual((await listedUsers(pa)).sort(), [a.id, b.id].sort());
    assert.deepEqual((await listedUsers(pb)).sort(), [a.id, b.id].sort());
    // B learnt of A from the login (the room's snapshot), A of B from a live user_add.
    const logA = await parlorLog(pa);
    assert.ok(
      logA.some((e) => e.event === 'roomUserUpdate' && e.roomID === room && e.updateType === 'ADD' &&
        e.userList.some((u) => u.userID === b.id && u.userName === 'Bob')),
      'A got roomUserUpdate ADD for B',
    );
    const states = logA.filter((e) => e.event === 'roomStateChanged').map((e) => [e.reason, e.errorCode]);
    assert.deepEqual(states, [['LOGINING', 0], ['LOGINED', 0]]);
    assert.equal(await pa.evaluate((r) => window.parlor.getRoomState(r), room), 'LOGINED');
    // The timeline shows LOGINED in green.
    const cls = await pa.$eval('[data-testid=timeline-item][data-reason=LOGINED] [data-testid=timeline-reason]',
      (e) => getComputedStyle(e).color);
    assert.equal(cls, 'rgb(21, 128, 61)');
    assertNoPageErrors(pa, pb);
  });

  test('(b) a dropped connection reconnects, invisibly to the others', async () => {
    const { room, a, b, pa, pb } = await twoInARoom();
    await waitForUser(pa, b.id);
    await waitForUser(pb, a.id);
    const aBefore = (await parlorLog(pa)).length;
    const bBefore = (await parlorLog(pb)).length;

    await pa.getByTestId('drop-connection').click();
    await pa.waitForFunction(
      () => document.querySelector('[data-testid=timeline-item][data-reason=RECONNECTING][data-code="1002051"]'),
      null, { timeout: STEP_MS },
    );
    await waitForState(pa, 'RECONNECTED');
    const aStates = (await parlorLog(pa)).slice(aBefore)
      .filter((e) => e.event === 'roomStateChanged')
      .map((e) => [e.roomID, e.reason, e.errorCode]);
    assert.deepEqual(aStates, [[room, 'RECONNECTING', 1002051], [room, 'RECONNECTED', 0]]);
    const rec = await pa.$eval('[data-testid=timeline-item][data-reason=RECONNECTED]', (e) => e.dataset.code);
    assert.equal(rec, '0');

    // Barrier: a broadcast A sends after reconnecting reaches B; anything the reconnection
    // caused for B (a user_delete / user_add of A) would have reached B before it.
    const text = `back again ${uniq()}`;
    await sendThroughUI(pa, text);
    await waitForMessage(pb, text, { from: a.id });
    const bEvents = (await parlorLog(pb)).slice(bBefore);
    assert.deepEqual(bEvents.filter((e) => e.event === 'roomUserUpdate'), [], 'B saw no user change');
    assert.deepEqual(bEvents.map((e) => e.event), ['IMRecvBroadcastMessage']);
    assert.deepEqual((await listedUsers(pb)).sort(), [a.id, b.id].sort());
    assertNoPageErrors(pa, pb);
  });

  test('(c) a duplicate login kicks the first page out', async () => {
    const { room, a, b, pa, pb } = await twoInARoom();
    await waitForUser(pb, a.id);
    const bBefore = (await parlorLog(pb)).length;
    const pc = await open();
    await loginThroughUI(pc, { userID: a.id, userName: 'Alice again', room });
    await waitForState(pa, 'KICKOUT');
    const kicked = (await parlorLog(pa)).filter((e) => e.event === 'roomStateChanged').at(-1);
    assert.deepEqual([kicked.roomID, kicked.reason, kicked.errorCode], [room, 'KICKOUT', 1002050]);
    assert.ok(await pa.$('[data-testid=timeline-item][data-reason=KICKOUT][data-code="1002050"]'));
    const red = await pa.$eval('[data-testid=timeline-item][data-reason=KICKOUT] [data-testid=timeline-reason]',
      (e) => getComputedStyle(e).color);
    assert.equal(red, 'rgb(185, 28, 28)');
    // The new page is in with B; the kicked one can log in again.
    await waitForUser(pc, b.id);
    assert.equal(await pa.getByTestId('login').isEnabled(), true);
    // B saw no user change (protocol §4): checked after a round trip from the new session.
    const text = `it is still me ${uniq()}`;
    await sendThroughUI(pc, text);
    await waitForMessage(pb, text, { from: a.id });
    assert.deepEqual((await parlorLog(pb)).slice(bBefore).filter((e) => e.event === 'roomUserUpdate'), []);
    assertNoPageErrors(pa, pb, pc);
  });

  test('(d) a broadcast from A appears in B\'s messages pane', async () => {
    const { a, pa, pb } = await twoInARoom();
    const text = `hello from A ${uniq()}`;
    await sendThroughUI(pa, text);
    await waitForMessage(pb, text, { from: a.id });
    const sender = await pb.$$eval('[data-testid=message-item]', (ms, t) => {
      const m = ms.find((x) => x.querySelector('[data-testid=message-text]').textContent === t);
      return m.querySelector('.meta b').textContent;
    }, text);
    assert.equal(sender, 'Alice');
    const got = (await parlorLog(pb)).filter((e) => e.event === 'IMRecvBroadcastMessage');
    assert.equal(got.length, 1);
    assert.equal(got[0].messageInfo[0].message, text);
    assert.equal(got[0].messageInfo[0].fromUser.userID, a.id);
    // A's own message is shown as sent, and is not echoed back as received.
    assert.deepEqual((await parlorLog(pa)).filter((e) => e.event === 'IMRecvBroadcastMessage'), []);
    assertNoPageErrors(pa, pb);
  });

  test('streams and room extra info reach the other page', async () => {
    const { a, pa, pb } = await twoInARoom();
    const stream = `${a.id}-cam`;
    await pa.getByTestId('stream-id').fill(stream);
    await pa.getByTestId('publish').click();
    await pb.waitForFunction((s) => document.querySelector(`[data-testid=stream-item][data-stream-id="${s}"]`), stream,
      { timeout: STEP_MS });
    await pa.getByTestId('extra-value').fill('standup');
    await pa.getByTestId('set-extra').click();
    await pb.waitForFunction(
      () => document.querySelector('[data-testid=extra-item][data-key=topic] [data-testid=extra-value-text]')?.textContent === 'standup',
      null, { timeout: STEP_MS },
    );
    await pa.getByTestId('unpublish').click();
    await pb.waitForFunction((s) => !document.querySelector(`[data-testid=stream-item][data-stream-id="${s}"]`), stream,
      { timeout: STEP_MS });
    const del = (await parlorLog(pb)).find((e) => e.event === 'roomStreamUpdate' && e.updateType === 'DELETE');
    assert.equal(del.extendedData.reason, 1);
    // Log out: B sees A leave.
    await pa.getByTestId('logout').click();
    await waitForState(pa, 'LOGOUT');
    await pb.waitForFunction((id) => ![...document.querySelectorAll('[data-testid=user-item]')].some((li) => li.dataset.userId === id),
      a.id, { timeout: STEP_MS });
    assertNoPageErrors(pa, pb);
  });
});

// A big room (protocol §9.9, §9.10): a server that treats rooms of more than 3 members as large,
// 6 people in one room, and a viewer page whose member list pages 2 at a time
// (`?members_page=2`), so that the count, the pages and "Load more" show with a few browsers.
describe('demo page, a big room', () => {
  let server;
  let browser;
  const pages = [];

  before(async () => {
    server = await startServer({ args: ['--full-presence-up-to', '3', '--presence-interval', '200ms'] });
    browser = await launchBrowser();
  });

  after(async () => {
    for (const p of pages) await p.context().close().catch(() => {});
    await browser?.close().catch(() => {});
    await server?.stop();
  });

  const text = (page, id) => page.getByTestId(id).textContent();
  const hidden = (page, id) => page.$eval(`[data-testid=${id}]`, (e) => e.hidden);
  const waitText = (page, id, want) =>
    page.waitForFunction(([id, want]) => document.querySelector(`[data-testid=${id}]`).textContent === want,
      [id, want], { timeout: STEP_MS });

  test('count, a paged member list, "Load more", live batches and the list-changed note', async () => {
    const room = `big-${uniq()}`;
    const tag = uniq();
    const ids = [0, 1, 2, 3, 4].map((i) => `m${i}-${tag}`);
    const others = [];
    for (const id of ids) {
      const p = await openDemo(browser, server.base);
      pages.push(p);
      await loginThroughUI(p, { userID: id, userName: id.slice(0, 2), room });
      others.push(p);
    }
    // The first one in sees everyone arrive (singly, then in batches once the room is large).
    for (const id of ids) await waitForUser(others[0], id);

    const viewer = await openDemo(browser, server.base, { path: '/?members_page=2' });
    pages.push(viewer);
    const me = `v-${tag}`;
    await loginThroughUI(viewer, { userID: me, userName: 'Viewer', room });
    const everyone = [...ids, me].sort();

    // 6 in the room, more than a page: the count is the room's, the list its first page.
    await waitText(viewer, 'users-count', '6');
    await viewer.waitForFunction(() => document.querySelector('[data-testid=users-shown]').textContent.startsWith('Showing'),
      null, { timeout: STEP_MS });
    assert.equal(await hidden(viewer, 'users-meta'), false);
    await viewer.waitForFunction(() => !document.querySelector('[data-testid=users-more]').hidden, null, { timeout: STEP_MS });
    const first = await listedUsers(viewer);
    assert.ok(first.length < 6, `the first page is not everyone: ${first}`);
    assert.ok(first.includes(me));
    // "Load more" until the last page: then everyone, once, in user id order after "you".
    for (let i = 0; i < 6 && !(await hidden(viewer, 'users-more')); i++) {
      const before = (await listedUsers(viewer)).length;
      await viewer.getByTestId('users-more').click();
      await viewer.waitForFunction((n) => document.querySelectorAll('[data-testid=user-item]').length > n ||
        document.querySelector('[data-testid=users-more]').hidden, before, { timeout: STEP_MS });
    }
    await viewer.waitForFunction(() => document.querySelector('[data-testid=users-more]').hidden, null, { timeout: STEP_MS });
    const all = await listedUsers(viewer);
    assert.deepEqual([...all].sort(), everyone);
    assert.deepEqual(all.slice(1), all.slice(1).sort(), 'others in user id order');
    assert.equal(await text(viewer, 'users-shown'), 'Showing 6 of 6');

    // A departure reaches the list as one changed row: the other rows are the same nodes.
    await viewer.$$eval('[data-testid=user-item]', (lis) => lis.forEach((li) => { li.parlorMark = true; }));
    const gone = ids[2];
    await others[2].getByTestId('logout').click();
    await waitForState(others[2], 'LOGOUT');
    await viewer.waitForFunction((id) => !document.querySelector(`[data-testid=user-item][data-user-id="${id}"]`), gone,
      { timeout: STEP_MS });
    const kept = await viewer.$$eval('[data-testid=user-item]', (lis) => lis.map((li) => li.parlorMark === true));
    assert.deepEqual(kept, [true, true, true, true, true], 'rows were not rebuilt');
    // The count follows within the presence interval (a large room's `online`, §9.10).
    await waitText(viewer, 'users-count', '5');
    const log = await parlorLog(viewer);
    assert.ok(log.some((e) => e.event === 'roomOnlineUserCountUpdate' && e.roomID === room && e.count === 5));

    // roomUserListChanged (a batch of more than a page, or a snapshot of a page) shows a note;
    // "Reload list" reads the first page again. Six browsers make no such batch: the event is
    // handed to the page's engine as its core would.
    assert.equal(await hidden(viewer, 'users-note'), true);
    await viewer.evaluate((r) => window.parlor.dispatch({ type: 'roomUserListChanged', room: r, count: 5 }), room);
    await viewer.waitForFunction(() => !document.querySelector('[data-testid=users-note]').hidden, null, { timeout: STEP_MS });
    assert.match(await viewer.getByTestId('users-note').textContent(), /5 in the room/);
    await viewer.getByTestId('users-reload').click();
    await viewer.waitForFunction(() => document.querySelector('[data-testid=users-note]').hidden, null, { timeout: STEP_MS });
    await viewer.waitForFunction(() => !document.querySelector('[data-testid=users-more]').hidden, null, { timeout: STEP_MS });
    assert.ok((await listedUsers(viewer)).length < 5);
    for (const p of [viewer, ...others]) assert.deepEqual(p.parlorErrors, [], 'errors in the page');
  });
});
