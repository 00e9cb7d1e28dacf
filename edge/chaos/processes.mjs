// The real processes the fault suite starts, kills and restarts: a PostgreSQL cluster, origin
// binaries, the worker in workerd (miniflare), and small proxies that delay or cut traffic.
// Nothing here is simulated: a killed process is killed with a signal.

import assert from 'node:assert/strict';
import { freePort, psql, sign, sleep, Origin as TestOrigin } from '../tests/harness.mjs';

export { freePort, psql, sleep };
import { spawn, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';

/** Polls `check` until it returns true; fails with its last answer after `timeoutMs`. */
export async function eventually(what, check, timeoutMs, everyMs = 50) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      last = await check();
    } catch (err) {
      last = String(err);
    }
    if (last === true) return;
    await sleep(everyMs);
  }
  assert.fail(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** Runs `command` as the `postgres` user when we are root (initdb refuses root). */
function asPostgres(command, args, options = {}) {
  if (process.getuid?.() === 0) return execFileSync('runuser', ['-u', 'postgres', '--', command, ...args], options);
  return execFileSync(command, args, options);
}

/** A throwaway PostgreSQL cluster of our own, so it can be killed without harming anyone. */
export class Postgres {
  static async start() {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kurz-chaos-pg-'));
    if (process.getuid?.() === 0) execFileSync('chown', ['postgres', dir]);
    const pg = new Postgres(dir, await freePort());
    asPostgres('initdb', ['-D', pg.data, '-U', 'postgres', '-A', 'trust', '-E', 'UTF8', '--no-locale', '--no-sync'], { stdio: 'ignore' });
    pg.up();
    return pg;
  }

  constructor(dir, port) {
    this.dir = dir;
    this.data = path.join(dir, 'data');
    this.port = port;
  }

  url(database = 'postgres') {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  up() {
    asPostgres('pg_ctl', ['-D', this.data, '-l', path.join(this.dir, 'log'), '-w', '-o',
      `-c listen_addresses=127.0.0.1 -p ${this.port} -k ${this.dir} -c max_connections=300 -c fsync=off -c full_page_writes=off`,
      'start'], { stdio: 'ignore' });
  }

  /** A crash: the postmaster and every backend get SIGKILL at once. */
  kill() {
    const pid = Number(fs.readFileSync(path.join(this.data, 'postmaster.pid'), 'utf8').split('\n')[0]);
    try {
      execFileSync('pkill', ['-KILL', '-P', String(pid)]);
    } catch { /* no backend running */ }
    process.kill(pid, 'SIGKILL');
  }

  async createDatabase(prefix) {
    const name = `${prefix}_${crypto.randomBytes(4).toString('hex')}`;
    psql(this.url(), `CREATE DATABASE ${name}`);
    return this.url(name);
  }

  stop() {
    try {
      asPostgres('pg_ctl', ['-D', this.data, '-m', 'immediate', 'stop'], { stdio: 'ignore' });
    } catch { /* already down */ }
    fs.rmSync(this.dir, { recursive: true, force: true });
  }
}

/** Every origin process started, so a failed scenario leaves none running. */
const running = new Set();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/**
 * The tests' origin process (binding a port of the kernel's choosing), with both output
 * streams kept (a scenario reads its last log line) and stopped by any signal, SIGKILL
 * included.
 */
export class Origin extends TestOrigin {
  constructor(bin, env) {
    super(bin, env);
    this.output = '';
  }

  async start() {
    this.process = spawn(this.bin, ['serve'], {
      env: { ...process.env, RUST_LOG: 'info', ...this.env, KURZ_BIND: `127.0.0.1:${this.port}` },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    running.add(this.process);
    const child = this.process;
    this.exited = once(child, 'exit');
    this.exited.then(() => running.delete(child));
    const keep = (chunk) => {
      this.output += chunk;
      this.noteBoundPort(this.output);
    };
    this.process.stdout.on('data', keep);
    this.process.stderr.on('data', keep);
    await this.untilReady(60_000, () => this.output);
  }

  /** SIGTERM, and the exit code once it has finished. */
  async stop(signal = 'SIGTERM') {
    if (!this.process || this.process.exitCode !== null || this.process.signalCode !== null) return null;
    this.process.kill(signal);
    const [code] = await this.exited;
    return code;
  }

  async createApiKey() {
    const printed = await this.cli(['create-api-key', '--name', 'chaos']);
    const key = printed.match(/kurz_[0-9a-f]{48}/);
    assert.ok(key, `create-api-key printed no key: ${printed}`);
    return key[0];
  }

  async health() {
    return (await fetch(`${this.url}/health`)).json();
  }
}

/**
 * A forwarding proxy whose behaviour the scenario sets per request: `delayMs(req)` holds a
 * request before it is forwarded (so deliveries can overtake each other), `target(req)`
 * chooses the upstream port.
 */
export async function proxy({ target, delayMs = () => 0 }) {
  const server = http.createServer(async (req, res) => {
    const body = [];
    for await (const chunk of req) body.push(chunk);
    await sleep(delayMs(req));
    const upstream = http.request(
      { host: '127.0.0.1', port: target(req), path: req.url, method: req.method, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    upstream.end(Buffer.concat(body));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}

export function signer(secret) {
  return (...request) => sign(secret, ...request);
}

/** Calls `/api/v1` with a key; network failures come back as `{ status: 0 }`. */
export function apiClient(key) {
  return async (baseUrl, method, pathname, body) => {
    try {
      const response = await fetch(`${baseUrl}/api/v1${pathname}`, {
        method,
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      let parsed = null;
      try {
        parsed = text ? JSON.parse(text) : null;
      } catch {
        parsed = text;
      }
      return { status: response.status, body: parsed };
    } catch (err) {
      return { status: 0, error: String(err) };
    }
  };
}

/** A visit without following the redirect; network failures come back as status 0. */
export async function visit(baseUrl, code, init = {}) {
  try {
    const response = await fetch(`${baseUrl}/${code}`, { redirect: 'manual', ...init });
    await response.arrayBuffer();
    return { status: response.status, location: response.headers.get('location') };
  } catch {
    return { status: 0, location: null };
  }
}

/** Runs `worker(i)` in `n` parallel loops until `until()` says stop. */
export async function loops(n, until, worker) {
  await Promise.all(Array.from({ length: n }, async (_, i) => {
    while (!until()) await worker(i);
  }));
}
