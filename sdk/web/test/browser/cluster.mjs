// A small Parlor cluster for the browser tests: one Redis, `parlor serve --redis` nodes, and
// HAProxy in front, configured from the committed deploy/haproxy/parlor.cfg exactly as
// parlor-testkit's `Haproxy` helper does (crates/parlor-testkit/src/procs/haproxy.rs).
//
// Every process is registered in the `Cluster` that started it; `cluster.stop()` kills them all
// (SIGKILL) and waits for each to exit, and a process `exit` hook kills what is left if the test
// runner dies first. Every wait is bounded.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { freePort, parlorBin, repoRoot } from './harness.mjs';

/** deploy/haproxy/parlor.cfg, as committed. */
export const HAPROXY_TEMPLATE = resolve(repoRoot, 'deploy', 'haproxy', 'parlor.cfg');

/**
 * The template with its placeholders filled: `${PARLOR_LISTEN}` with `listen`, the
 * `${PARLOR_SERVERS}` line with one `server nodeN HOST:PORT` line per backend (health-checked as
 * the template's `default-server` says). Comment lines are kept as they are.
 */
export function renderHaproxy(template, listen, backends) {
  const out = [];
  for (const line of template.split('\n')) {
    if (line.trimStart().startsWith('#')) {
      out.push(line);
    } else if (line.includes('${PARLOR_SERVERS}')) {
      const indent = line.slice(0, line.indexOf('${PARLOR_SERVERS}'));
      backends.forEach((addr, i) => out.push(`${indent}server node${i + 1} ${addr}`));
    } else {
      out.push(line.replaceAll('${PARLOR_LISTEN}', listen));
    }
  }
  return out.join('\n');
}

/** Resolves when `fn` returns a truthy value (polled with a short backoff), else throws `what()`. */
async function until(timeoutMs, fn, what) {
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(what());
    await new Promise((ok) => setTimeout(ok, Math.min(25 * 2 ** attempt, 250)));
  }
}

/** Whether something accepts TCP connections on 127.0.0.1:`port`. */
function accepts(port) {
  return new Promise((ok) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (v) => {
      s.destroy();
      ok(v);
    };
    s.setTimeout(500, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

/** Which processes are still running, for the last-resort exit hook. */
const alive = new Set();
process.on('exit', () => {
  for (const child of alive) child.kill('SIGKILL');
});

/** One started process: its output, its exit, and kill. */
class Proc {
  constructor(name, bin, args) {
    this.name = name;
    this.output = '';
    this.exited = null;
    this.child = spawn(bin, args, {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'info' },
    });
    alive.add(this.child);
    this.child.stdout.on('data', (d) => (this.output += d));
    this.child.stderr.on('data', (d) => (this.output += d));
    this.exit = new Promise((ok) => {
      this.child.once('error', (e) => {
        this.output += `\nspawn error: ${e}`;
        this.exited = { error: String(e) };
        alive.delete(this.child);
        ok(this.exited);
      });
      this.child.once('exit', (code, signal) => {
        this.exited = { code, signal };
        alive.delete(this.child);
        ok(this.exited);
      });
    });
  }

  /** SIGKILL, and wait (at most 5 s) for the exit. */
  async kill() {
    if (this.exited) return this.exited;
    this.child.kill('SIGKILL');
    await Promise.race([this.exit, new Promise((ok) => setTimeout(ok, 5_000))]);
    return this.exited;
  }

  /** The last `n` lines of its output. */
  tail(n = 40) {
    return this.output.split('\n').slice(-n).join('\n');
  }
}

/** A Parlor node of the cluster. */
class Node extends Proc {
  constructor(id, port, redisUrl, extraArgs) {
    super(`parlor ${id}`, parlorBin(), [
      'serve',
      '--redis', redisUrl,
      '--node-id', id,
      '--listen', `127.0.0.1:${port}`,
      ...extraArgs,
    ]);
    this.id = id;
    this.port = port;
    this.addr = `127.0.0.1:${port}`;
    this.base = `http://${this.addr}`;
  }

  /** Its `/healthz` (null when it does not answer). */
  async health() {
    try {
      const res = await fetch(`${this.base}/healthz`, { signal: AbortSignal.timeout(1_000) });
      return res.ok ? await res.json() : null;
    } catch {
      return null;
    }
  }
}

/** Redis, Parlor nodes sharing it, and HAProxy in front; `stop()` ends every process. */
export class Cluster {
  constructor() {
    this.procs = [];
    this.nodes = [];
    this.dir = mkdtempSync(join(tmpdir(), 'parlor-cluster-'));
  }

  /** Starts `redis-server` on a free port, without persistence, and waits until it accepts. */
  async startRedis({ timeoutMs = 10_000 } = {}) {
    const port = await freePort();
    const p = new Proc('redis', 'redis-server', [
      '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
    ]);
    this.procs.push(p);
    this.redis = p;
    this.redisUrl = `redis://127.0.0.1:${port}`;
    await until(timeoutMs, async () => !p.exited && (await accepts(port)) && true,
      () => `redis-server on ${port} did not accept connections within ${timeoutMs} ms (${JSON.stringify(p.exited)}):\n${p.tail()}`);
    return p;
  }

  /** Starts a node `id` on the cluster's Redis and waits until its `/healthz` says "ok". */
  async startNode(id, { args = [], timeoutMs = 20_000 } = {}) {
    if (!existsSync(parlorBin())) {
      throw new Error(`parlor binary not found at ${parlorBin()}: run \`cargo build -p parlor\` or set PARLOR_BIN`);
    }
    const n = new Node(id, await freePort(), this.redisUrl, args);
    this.procs.push(n);
    this.nodes.push(n);
    await until(timeoutMs, async () => {
      if (n.exited) throw new Error(`${n.name} exited early (${JSON.stringify(n.exited)}):\n${n.tail()}`);
      return (await n.health())?.status === 'ok';
    }, () => `${n.name} did not answer /healthz "ok" within ${timeoutMs} ms:\n${n.tail()}`);
    return n;
  }

  /** Starts HAProxy in front of every node started so far; resolves when its frontend accepts. */
  async startHaproxy({ timeoutMs = 10_000 } = {}) {
    if (!existsSync('/usr/sbin/haproxy') && !process.env.HAPROXY_BIN) {
      throw new Error('haproxy not found: apt-get install -y haproxy (or set HAPROXY_BIN)');
    }
    const port = await freePort();
    const listen = `127.0.0.1:${port}`;
    const cfg = join(this.dir, 'parlor.cfg');
    writeFileSync(cfg, renderHaproxy(readFileSync(HAPROXY_TEMPLATE, 'utf8'), listen, this.nodes.map((n) => n.addr)));
    const p = new Proc('haproxy', process.env.HAPROXY_BIN ?? 'haproxy', ['-f', cfg, '-db']);
    this.procs.push(p);
    this.haproxy = p;
    this.base = `http://${listen}`;
    await until(timeoutMs, async () => {
      if (p.exited) throw new Error(`haproxy exited (${JSON.stringify(p.exited)}):\n${p.tail()}`);
      return accepts(port);
    }, () => `haproxy on ${listen} did not accept connections within ${timeoutMs} ms:\n${p.tail()}`);
    return p;
  }

  /** Every node's `stats.connected` (null for a node that does not answer), by node id. */
  async connected() {
    const out = {};
    for (const n of this.nodes) out[n.id] = n.exited ? null : ((await n.health())?.stats?.connected ?? null);
    return out;
  }

  /** The last lines of every process's output, for a failure message. */
  logs() {
    return this.procs.map((p) => `----- ${p.name} (${JSON.stringify(p.exited)})\n${p.tail()}`).join('\n');
  }

  /** Kills every process (SIGKILL), waits for them, and removes the config directory. */
  async stop() {
    await Promise.all(this.procs.map((p) => p.kill()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

export { until };
