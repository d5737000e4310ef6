// Shared helpers of the browser tests: a real `parlor serve` on a free port, Debian's chromium
// through playwright-core, and the demo page driven through its UI.
//
// Every wait is bounded; nothing sleeps for a fixed time.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
/** sdk/web */
export const sdkRoot = resolve(here, '..', '..');
/** The repository root. */
export const repoRoot = resolve(sdkRoot, '..', '..');

/** How long one UI step may take (ms). */
export const STEP_MS = 15_000;

/** The parlor binary: `PARLOR_BIN`, relative to sdk/web when relative. */
export function parlorBin() {
  return resolve(sdkRoot, process.env.PARLOR_BIN ?? '../../target/debug/parlor');
}

/** A TCP port that was free a moment ago. */
export function freePort() {
  return new Promise((ok, fail) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', fail);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => ok(port));
    });
  });
}

/**
 * Starts `parlor serve --listen 127.0.0.1:<port>` (the dev app: /v1/dev/token works) and waits
 * for `/healthz`. Returns `{ base, stop, output }`. With `tls: { cert, key, ca }` (PEM file
 * paths and the PEM text the health check trusts) the server speaks only TLS and `base` is
 * `https://…`; `args` are more flags for `parlor serve`.
 */
export async function startServer({ timeoutMs = 20_000, tls, args = [] } = {}) {
  const bin = parlorBin();
  if (!existsSync(bin)) {
    throw new Error(`parlor binary not found at ${bin}: run \`cargo build -p parlor\` or set PARLOR_BIN`);
  }
  const port = await freePort();
  const tlsArgs = tls ? ['--tls-cert', tls.cert, '--tls-key', tls.key] : [];
  // A drain keeps the door shut for the whole drain time; `stop` wants the exit at once.
  const drainArgs = args.includes('--drain-time') ? [] : ['--drain-time', '0s'];
  const child = spawn(bin, ['serve', '--listen', `127.0.0.1:${port}`, ...drainArgs, ...tlsArgs, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' },
  });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  let exited = null;
  const exit = new Promise((ok) =>
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      ok(exited);
    }),
  );
  const base = `${tls ? 'https' : 'http'}://127.0.0.1:${port}`;

  const stop = async () => {
    if (exited) return exited;
    child.kill('SIGTERM');
    const killer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    const r = await exit;
    clearTimeout(killer);
    return r;
  };

  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    if (exited) throw new Error(`parlor exited early (${JSON.stringify(exited)}):\n${output}`);
    try {
      const health = tls ? await httpsJSON(`${base}/healthz`, tls.ca) : await fetchJSON(`${base}/healthz`);
      if (health.ok && health.body.status === 'ok') break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`parlor did not answer /healthz within ${timeoutMs} ms:\n${output}`);
    }
    // Poll with a short, growing backoff (bounded by the deadline above).
    await new Promise((ok) => setTimeout(ok, Math.min(25 * 2 ** attempt, 250)));
  }
  return { base, stop, output: () => output };
}

async function fetchJSON(url) {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  return { ok: res.ok, status: res.status, body: await res.json() };
}

/**
 * GET `url` over HTTPS trusting only the PEM `ca` (with `headers`): `{ ok, status, body }`, the
 * body parsed when it is JSON.
 */
export function httpsJSON(url, ca, headers = {}) {
  return new Promise((ok, fail) => {
    const req = httpsGet(url, { ca, headers, timeout: 2_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => {
        let body = text;
        try {
          body = JSON.parse(text);
        } catch {
          // not JSON (/metrics): the text
        }
        ok({ ok: res.statusCode >= 200 && res.statusCode < 300, status: res.statusCode, body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
  });
}

/** Launches Debian's chromium headless (`args`: more command-line switches). */
export function launchBrowser({ args = [] } = {}) {
  const executablePath = process.env.CHROMIUM_BIN ?? '/usr/bin/chromium';
  if (!existsSync(executablePath)) {
    throw new Error(`chromium not found at ${executablePath}: apt-get install -y chromium (or set CHROMIUM_BIN)`);
  }
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--disable-quic',
      ...args,
    ],
  });
}

/**
 * Opens the demo page (at `path`, `/` by default) in its own browser context (its own storage,
 * like another person) and collects page errors; `page.parlorErrors` lists them.
 */
export async function openDemo(browser, base, { viewport = { width: 1440, height: 960 }, path = '/' } = {}) {
  const context = await browser.newContext({ viewport, deviceScaleFactor: 1 });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.parlorErrors = [];
  page.on('pageerror', (e) => page.parlorErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') page.parlorErrors.push(`console: ${m.text()}`);
  });
  await page.goto(base + path);
  await page.waitForFunction(() => document.body.dataset.ready === 'true', null, { timeout: STEP_MS });
  return page;
}

/**
 * Logs in through the UI: fills the form, clicks "Get dev token", waits for the token, clicks
 * "Log in" and waits for the state LOGINED.
 */
export async function loginThroughUI(page, { userID, userName = '', room }) {
  await page.getByTestId('user-id').fill(userID);
  await page.getByTestId('user-name').fill(userName);
  await page.getByTestId('room-id').fill(room);
  await page.getByTestId('token').fill('');
  await page.getByTestId('get-token').click();
  await page.waitForFunction(
    () => document.querySelector('[data-testid=token]').value.split('.').length === 3,
    null,
    { timeout: STEP_MS },
  );
  await page.getByTestId('login').click();
  await waitForState(page, 'LOGINED');
}

/** Waits until the page's room state pill shows `state`. */
export function waitForState(page, state, timeout = STEP_MS) {
  return page.waitForFunction(
    (s) => document.querySelector('[data-testid=room-state]').dataset.state === s,
    state,
    { timeout },
  );
}

/** Waits until the users list has an entry for `userID`. */
export function waitForUser(page, userID, timeout = STEP_MS) {
  return page.waitForFunction(
    (id) => [...document.querySelectorAll('[data-testid=user-item]')].some((li) => li.dataset.userId === id),
    userID,
    { timeout },
  );
}

/** Sends a message through the composer (broadcast by default) and waits for it to show as sent. */
export async function sendThroughUI(page, text, kind = 'broadcast') {
  await page.getByTestId('message-kind').selectOption(kind);
  await page.getByTestId('message-input').fill(text);
  await page.getByTestId('send-message').click();
  await waitForMessage(page, text, { mine: true });
}

/** Waits until the messages pane shows `text` (from `from`, or sent by this page with `mine`). */
export function waitForMessage(page, text, { from, mine = false, timeout = STEP_MS } = {}) {
  return page.waitForFunction(
    ({ text, from, mine }) =>
      [...document.querySelectorAll('[data-testid=message-item]')].some(
        (m) =>
          m.querySelector('[data-testid=message-text]').textContent === text &&
          m.classList.contains('mine') === mine &&
          (from === undefined || m.dataset.from === from),
      ),
    { text, from, mine },
    { timeout },
  );
}

/** The page's `window.parlorLog`. */
export function parlorLog(page) {
  return page.evaluate(() => window.parlorLog);
}

/** The user ids of the page's users list. */
export function listedUsers(page) {
  return page.$$eval('[data-testid=user-item]', (lis) => lis.map((li) => li.dataset.userId));
}

/** A short random suffix, so that rooms and users of different tests never meet. */
export function uniq() {
  return Math.random().toString(36).slice(2, 8);
}
