// Takes a screenshot of the demo page in use — two people, a published stream, room extra
// info, a few messages and a reconnection — into artifacts/demo.png at the repository root.
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  STEP_MS,
  launchBrowser,
  loginThroughUI,
  openDemo,
  repoRoot,
  sendThroughUI,
  startServer,
  waitForMessage,
  waitForState,
  waitForUser,
} from './harness.mjs';

let server;
let browser;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
});

test('(e) screenshot of the demo page in use', async () => {
  const room = 'lobby';
  const alice = await openDemo(browser, server.base, { viewport: { width: 1440, height: 900 } });
  const bob = await openDemo(browser, server.base);
  await loginThroughUI(alice, { userID: 'alice', userName: 'Alice Martin', room });
  await loginThroughUI(bob, { userID: 'bob', userName: 'Bob Chen', room });
  await waitForUser(alice, 'bob');
  await waitForUser(bob, 'alice');

  // Streams: Bob publishes first, then Alice (her default stream id is alice-cam).
  await bob.getByTestId('stream-id').fill('bob-screen');
  await bob.getByTestId('publish').click();
  await alice.waitForFunction(() => document.querySelector('[data-testid=stream-item][data-stream-id=bob-screen]'),
    null, { timeout: STEP_MS });
  assert.equal(await alice.getByTestId('stream-id').inputValue(), 'alice-cam');
  await alice.getByTestId('publish').click();
  await bob.waitForFunction(() => document.querySelector('[data-testid=stream-item][data-stream-id=alice-cam]'),
    null, { timeout: STEP_MS });

  // Room extra info.
  await bob.getByTestId('extra-value').fill('Friday design review');
  await bob.getByTestId('set-extra').click();
  await alice.waitForFunction(() => document.querySelector('[data-testid=extra-item][data-key=topic]'), null,
    { timeout: STEP_MS });

  // A few messages, both ways.
  await sendThroughUI(bob, 'Hi Alice! Can you see my screen?');
  await waitForMessage(alice, 'Hi Alice! Can you see my screen?', { from: 'bob' });
  await sendThroughUI(alice, 'Yes, loud and clear. Sharing my camera too.');
  await waitForMessage(bob, 'Yes, loud and clear. Sharing my camera too.', { from: 'alice' });
  await sendThroughUI(bob, 'nice slides', 'barrage');
  await waitForMessage(alice, 'nice slides', { from: 'bob' });

  // A network cut on Alice's side, to show the reconnection in her timeline.
  await alice.getByTestId('drop-connection').click();
  await waitForState(alice, 'RECONNECTED');
  await sendThroughUI(alice, 'Sorry, my Wi-Fi dropped for a second.');
  await waitForMessage(bob, 'Sorry, my Wi-Fi dropped for a second.', { from: 'alice' });

  const dir = join(repoRoot, 'artifacts');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, 'demo.png');
  await alice.screenshot({ path: file, fullPage: true });
  const png = readFileSync(file);
  assert.equal(png.subarray(1, 4).toString('latin1'), 'PNG');
  assert.ok(png.length > 20_000, `screenshot is suspiciously small (${png.length} bytes)`);
  assert.deepEqual(alice.parlorErrors, []);
  assert.deepEqual(bob.parlorErrors, []);
});
