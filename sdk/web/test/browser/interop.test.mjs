// One behaviour, two SDKs, one room: a Rust SDK client (crates/parlor-client's `room` example,
// a real process) and the demo page in Chromium log in to the same room of a real server and
// see each other's messages and presence.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { after, before, test } from 'node:test';
import {
  STEP_MS,
  launchBrowser,
  loginThroughUI,
  openDemo,
  sdkRoot,
  sendThroughUI,
  startServer,
  uniq,
  waitForMessage,
  waitForUser,
} from './harness.mjs';

/** The Rust SDK example: `PARLOR_ROOM_EXAMPLE`, relative to sdk/web when relative. */
function roomExample() {
  return resolve(sdkRoot, process.env.PARLOR_ROOM_EXAMPLE ?? '../../target/debug/examples/room');
}

/** Starts the Rust client; resolves its output as it grows, and lets the test wait for a line. */
function startRustClient(base, user, room) {
  const bin = roomExample();
  if (!existsSync(bin)) {
    throw new Error(`Rust SDK example not found at ${bin}: run \`cargo build -p parlor-client --example room\``);
  }
  const ws = base.replace(/^http/, 'ws') + '/v1/ws';
  const child = spawn(bin, ['--server', ws, '--app', '1', '--user', user, '--name', 'Rusty', '--room', room, '--secret', 'parlor-dev-secret'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let output = '';
  const waiters = [];
  const onData = (d) => {
    output += d;
    for (const w of [...waiters]) {
      if (output.includes(w.needle)) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.ok();
      }
    }
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  return {
    child,
    output: () => output,
    send: (line) => child.stdin.write(line + '\n'),
    waitFor(needle, timeout = STEP_MS) {
      if (output.includes(needle)) return Promise.resolve();
      return new Promise((ok, fail) => {
        const w = { needle, ok, timer: setTimeout(() => fail(new Error(`Rust client: no ${JSON.stringify(needle)} within ${timeout} ms; output:\n${output}`)), timeout) };
        waiters.push(w);
      });
    },
    stop() {
      return new Promise((ok) => {
        if (child.exitCode !== null) return ok();
        child.once('exit', ok);
        child.stdin.end('/quit\n');
        setTimeout(() => child.kill('SIGKILL'), 5000).unref();
      });
    },
  };
}

let server;
let browser;
let rust;

before(async () => {
  server = await startServer();
  browser = await launchBrowser();
});

after(async () => {
  await rust?.stop();
  await browser?.close().catch(() => {});
  await server?.stop();
});

test('a Rust SDK client and a browser in the same room see each other and each other\'s messages', async () => {
  const room = `interop-${uniq()}`;
  const rustUser = `rust-${uniq()}`;
  const webUser = `web-${uniq()}`;
  rust = startRustClient(server.base, rustUser, room);
  await rust.waitFor('Logined');

  const page = await openDemo(browser, server.base);
  await loginThroughUI(page, { userID: webUser, userName: 'Webby', room });
  await waitForUser(page, rustUser);
  await rust.waitFor(`RoomUserUpdate { room_id: "${room}", update_type: Add, users: [User { id: "${webUser}"`);

  await sendThroughUI(page, 'hello from the browser');
  await rust.waitFor('message: "hello from the browser"');

  rust.send('hello from rust');
  await waitForMessage(page, 'hello from rust', { from: rustUser });
  await rust.waitFor('sent broadcast');

  // Each side saw the other's message exactly once.
  const count = (s, needle) => s.split(needle).length - 1;
  assert.equal(count(rust.output(), 'message: "hello from the browser"'), 1);
  const fromRust = await page.evaluate(
    () => window.parlorLog.filter((e) => e.event === 'IMRecvBroadcastMessage').flatMap((e) => e.messageInfo),
  );
  assert.equal(fromRust.filter((m) => m.message === 'hello from rust').length, 1, JSON.stringify(fromRust));
  await page.context().close();
});
