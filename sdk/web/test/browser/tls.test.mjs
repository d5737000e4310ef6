// TLS in the browser: `parlor serve --tls-cert --tls-key` with a certificate made for this test
// (openssl, a throwaway CA-flagged self-signed certificate for 127.0.0.1), the demo page served
// over https and its Web SDK on wss:// (the page takes the server from `location.origin`), two
// users in one room. Chromium runs with `--ignore-certificate-errors` in this test only, so
// that the test certificate needs no trust store; the Node-side checks trust it by its PEM.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import {
  httpsJSON,
  launchBrowser,
  loginThroughUI,
  openDemo,
  sendThroughUI,
  startServer,
  uniq,
  waitForMessage,
  waitForUser,
} from './harness.mjs';

let dir;
let tls;
let server;
let browser;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'parlor-browser-tls-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
    '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=127.0.0.1',
    '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ], { stdio: 'ignore' });
  tls = { cert, key, ca: readFileSync(cert, 'utf8') };
  server = await startServer({ tls });
  browser = await launchBrowser({ args: ['--ignore-certificate-errors'] });
});

after(async () => {
  await browser?.close().catch(() => {});
  await server?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

test('the demo page over https, the Web SDK over wss://: two users see each other', async () => {
  assert.match(server.base, /^https:\/\//);
  const room = `tls-${uniq()}`;
  const alice = await openDemo(browser, server.base);
  const bob = await openDemo(browser, server.base);
  assert.equal(await alice.evaluate(() => location.protocol), 'https:');
  await loginThroughUI(alice, { userID: 'alice', room });
  await loginThroughUI(bob, { userID: 'bob', room });
  await waitForUser(alice, 'bob');
  await sendThroughUI(bob, 'hello over wss');
  await waitForMessage(alice, 'hello over wss', { from: 'bob' });
  assert.deepEqual(alice.parlorErrors, []);
  assert.deepEqual(bob.parlorErrors, []);
  await alice.context().close();
  await bob.context().close();
});

test('/metrics and the admin API over https', async () => {
  const metrics = await httpsJSON(`${server.base}/metrics`, tls.ca);
  assert.equal(metrics.status, 200);
  assert.match(metrics.body, /parlor_/);
  const denied = await httpsJSON(`${server.base}/v1/admin/apps/1/rooms`, tls.ca);
  assert.equal(denied.status, 401, 'no bearer secret');
  const rooms = await httpsJSON(`${server.base}/v1/admin/apps/1/rooms`, tls.ca, { authorization: 'Bearer parlor-dev-secret' });
  assert.equal(rooms.status, 200);
  assert.ok(Array.isArray(rooms.body.rooms));
});
