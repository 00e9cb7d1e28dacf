// Shared by the edge's node tests: the worker in workerd (miniflare) against the real origin
// binary on its own database in the test PostgreSQL, with a proxy between them that counts
// and can refuse the worker's requests. `cargo xtask test` (or `test-edge`) sets
// KURZ_ORIGIN_BIN and KURZ_TEST_DATABASE_URL.

import assert from 'node:assert/strict';
import { spawn, execFile, execFileSync } from 'node:child_process';
import { once } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Miniflare } from 'miniflare';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests with \`cargo xtask test-edge\``);
  return value;
}

export function psql(url, sql) {
  return execFileSync('psql', [url, '-Atq', '-v', 'ON_ERROR_STOP=1', '-c', sql], { encoding: 'utf8' }).trim();
}

export async function freePort() {
  // Below Linux's ephemeral range (32768–60999): between this check and the process's own
  // bind, a port of that range may be taken by any outgoing connection or bind to port 0.
  for (let i = 0; i < 100; i++) {
    const port = 20_000 + crypto.randomInt(12_000);
    const server = net.createServer();
    const bound = await new Promise((resolve) => {
      server.once('error', () => resolve(false));
      server.listen(port, '127.0.0.1', () => resolve(true));
    });
    if (bound) {
      server.close();
      await once(server, 'close');
      return port;
    }
  }
  throw new Error('no free port below the ephemeral range in 100 tries');
}

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns true; fails with its last answer after `timeoutMs`. */
export async function eventually(what, check, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last === true) return;
    await sleep(50);
  }
  assert.fail(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/**
 * The origin binary, started and stopped for real. Its first start binds port 0 and takes the
 * port the kernel gave it from its "origin listening" line: a port picked free beforehand may
 * be taken by another listener (a proxy, workerd's own sockets) before the origin binds it. A
 * restart binds that same port again, as a redeployed origin would, so whatever points at it
 * finds it back.
 */
export class Origin {
  constructor(bin, env) {
    this.bin = bin;
    this.port = 0;
    this.url = null;
    this.env = env;
    this.stdout = '';
  }

  async start() {
    this.process = spawn(this.bin, ['serve'], {
      env: { ...process.env, ...this.env, RUST_LOG: 'warn,origin=info', KURZ_BIND: `127.0.0.1:${this.port}` },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.exited = once(this.process, 'exit');
    this.process.stdout.on('data', (chunk) => {
      this.stdout += chunk;
      this.noteBoundPort(this.stdout);
    });
    await this.untilReady(60_000, () => this.stdout);
  }

  /**
   * Waits for `/ready`. An origin that exits meanwhile (a port taken, a bad setting) fails at
   * once; one that does not get ready in `timeoutMs` fails with its last answer. Either way the
   * error ends with the last of what it logged (`log()`).
   */
  async untilReady(timeoutMs, log) {
    let settled = false;
    try {
      await Promise.race([
        eventually('origin ready', async () => {
          if (!this.port) return 'not listening yet';
          try {
            const answer = await fetch(`${this.url}/ready`);
            return answer.status === 200 || `${answer.status} ${await answer.text()}`;
          } catch (err) {
            return String(err);
          }
        }, timeoutMs),
        this.exited.then(([code, signal]) => {
          if (!settled) throw new Error(`the origin exited while starting (${code ?? signal})`);
        }),
      ]);
    } catch (err) {
      err.message += `\n  the origin on port ${this.port} logged, last:\n${log().slice(-3_000)}`;
      throw err;
    } finally {
      settled = true;
    }
  }

  /** Takes the port from the origin's log (`output`), once. */
  noteBoundPort(output) {
    if (this.port) return;
    const bound = output.replace(/\x1b\[[0-9;]*m/g, '').match(/origin listening address=127\.0\.0\.1:(\d+)/);
    if (bound) {
      this.port = Number(bound[1]);
      this.url = `http://127.0.0.1:${this.port}`;
    }
  }

  async stop() {
    const exited = once(this.process, 'exit');
    this.process.kill('SIGTERM');
    await exited;
  }

  /** Runs a subcommand of the origin binary with the same environment; its stdout. */
  async cli(args, env = {}) {
    const { stdout } = await promisify(execFile)(this.bin, args, {
      env: { ...process.env, ...this.env, RUST_LOG: 'warn', ...env },
      encoding: 'utf8',
    });
    return stdout;
  }
}

/** Headers of a request signed with `secret`, as the origin and the edge sign them. */
export function sign(secret, method, pathname, body, timestamp = Math.floor(Date.now() / 1000)) {
  const mac = crypto.createHmac('sha256', secret);
  mac.update(`${method}\n${pathname}\n${timestamp}\n`);
  mac.update(body);
  return { 'x-kurz-timestamp': String(timestamp), 'x-kurz-signature': mac.digest('hex') };
}

/**
 * A proxy from the worker to the origin listening on `originPort()` (asked as each request is
 * forwarded, so the origin may start after the proxy). It counts requests by path and
 * remembers when each arrived; while `refuse(req)` says so, it drops the connection as a dead
 * origin would. When `holdAnswer(req)` returns a promise, the origin's answer reaches the
 * worker only once it settles (a slow network after the origin has answered). When
 * `answer(req)` returns `{ status, body }`, that is the answer and the origin is not asked (a
 * server at ORIGIN_URL that is not kurz's origin; `headers` too, when given). When `stallBody(req)` returns a promise, the
 * origin's status and headers go at once and its body once that settles. Requests `keep(req)` picks are kept whole in `kept` (method, url, headers, body and the origin's
 * status).
 */
export async function originProxy(originPort) {
  const requests = new Map(); // path -> arrival times (ms)
  const kept = [];
  const control = { refuse: () => false, holdAnswer: () => null, answer: () => null, stallBody: () => null, keep: () => false, requests, kept };
  const server = http.createServer((req, res) => {
    requests.set(req.url, [...(requests.get(req.url) ?? []), Date.now()]);
    if (control.keep(req)) {
      const entry = { method: req.method, url: req.url, headers: req.headers, body: '', status: null };
      kept.push(entry);
      req.on('data', (chunk) => {
        entry.body += chunk;
      });
      res.on('finish', () => {
        entry.status = res.statusCode;
      });
    }
    if (control.refuse(req)) {
      req.socket.destroy();
      return;
    }
    const stranger = control.answer(req);
    if (stranger) {
      req.resume();
      res.writeHead(stranger.status, { 'content-type': 'text/plain', ...(stranger.headers ?? {}) });
      res.end(stranger.body);
      return;
    }
    const upstream = http.request(
      { host: '127.0.0.1', port: originPort(), path: req.url, method: req.method, headers: req.headers },
      async (answer) => {
        await control.holdAnswer(req);
        res.writeHead(answer.statusCode, answer.headers);
        const stalled = control.stallBody(req);
        if (stalled) {
          res.flushHeaders();
          await stalled;
        }
        answer.pipe(res);
      },
    );
    upstream.on('error', () => req.socket.destroy());
    req.pipe(upstream);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  control.url = `http://127.0.0.1:${server.address().port}`;
  control.close = () => server.close();
  return control;
}

/**
 * A whole system on a fresh database: the origin (through `originProxy`) and the worker in
 * miniflare with the given queue consumers and extra bindings. Without `clickQueue`, the
 * worker's `CLICKS` binding is no queue (a deployment that lost it, or a queue refusing every
 * send).
 */
export async function startSystem({ queueConsumers, queueProducers = {}, bindings = {}, ratelimits = {}, clickQueue = true }) {
  const adminUrl = required('KURZ_TEST_DATABASE_URL');
  const secret = crypto.randomBytes(32).toString('hex');
  const database = `edge_${crypto.randomBytes(6).toString('hex')}`;
  psql(adminUrl, `CREATE DATABASE ${database}`);
  const databaseUrl = adminUrl.replace(/\/[^/]*$/, `/${database}`);

  // Every process binds a port of the kernel's choosing: the proxy reaches the origin by the
  // port it took, once it has started.
  let origin;
  const proxy = await originProxy(() => origin.port);
  const mf = new Miniflare({
    host: '127.0.0.1',
    port: 0,
    modules: true,
    scriptPath: path.join(ROOT, 'edge/build/index.js'),
    modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
    compatibilityDate: '2026-04-20',
    kvNamespaces: ['LINKS'],
    queueProducers: { ...(clickQueue ? { CLICKS: { queueName: 'kurz-clicks' } } : {}), ...queueProducers },
    queueConsumers,
    // wrangler.toml's limits, generous unless a test sets its own: most tests visit from one
    // address many times.
    ratelimits: {
      VISIT_LIMIT: { simple: { limit: 100_000, period: 60 } },
      ORIGIN_LIMIT: { simple: { limit: 100_000, period: 60 } },
      ...ratelimits,
    },
    bindings: { ORIGIN_URL: proxy.url, EDGE_SECRET: secret, ...(clickQueue ? {} : { CLICKS: 'no queue' }), ...bindings },
  });
  const edgeUrl = (await mf.ready).toString().replace(/\/$/, '');

  // The first start's secrets (unused here: the key below is made by the CLI); removed on stop.
  const firstStartFile = path.join(os.tmpdir(), `kurz-first-start-${database}.txt`);
  origin = new Origin(required('KURZ_ORIGIN_BIN'), {
    DATABASE_URL: databaseUrl,
    KURZ_PUBLIC_URL: edgeUrl,
    KURZ_CODE_KEY: crypto.randomBytes(16).toString('hex'),
    KURZ_EDGE_URL: edgeUrl,
    KURZ_EDGE_SECRET: secret,
    KURZ_FIRST_START_FILE: firstStartFile,
  });
  await origin.start();
  const printed = await origin.cli(['create-api-key', '--name', 'edge tests']);
  const apiKey = printed.match(/kurz_[0-9a-f]{48}/)?.[0];
  assert.ok(apiKey, `create-api-key printed no key: ${printed}`);

  return {
    mf,
    edgeUrl,
    origin,
    proxy,
    secret,
    databaseUrl,
    sql: (query) => psql(databaseUrl, query),
    async api(method, pathname, body) {
      const response = await fetch(`${origin.url}/api/v1${pathname}`, {
        method,
        headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const text = await response.text();
      return { status: response.status, body: text ? JSON.parse(text) : null };
    },
    visit: (code, init = {}) => fetch(`${edgeUrl}/${code}`, { redirect: 'manual', ...init }),
    async stop() {
      await origin.stop().catch(() => {});
      await mf.dispose();
      proxy.close();
      fs.rmSync(firstStartFile, { force: true });
    },
  };
}
