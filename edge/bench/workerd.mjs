// Serves workers from one workerd (miniflare) for `cargo xtask bench`: kurz's edge worker with
// KV holding the links, a minimal worker answering a constant 302 (the baseline), and small JS
// workers that show what the runtime's KV and queue simulators cost on their own.
// Each worker gets its own loopback socket, so neither pays for a router the other skips.
// Prints one line of JSON with both URLs and the seeded codes' file, then runs until stdin
// closes (the xtask holds it open).
//
// Usage: node bench/workerd.mjs <codes-file> (one code per line; each becomes a KV record).

import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Miniflare } from 'miniflare';

const EDGE = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const codes = readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
const compatibilityDate = '2026-04-20';
// The simulators' storage on a tmpfs where the machine has one, not in a folder on disk: while
// other programs wrote to the disk, the 10,000 KV puts below stalled for minutes, and KV reads
// during the runs waited on it too.
const storage = existsSync('/dev/shm') ? mkdtempSync('/dev/shm/kurz-bench-') : undefined;
const removeStorage = () => storage && rmSync(storage, { recursive: true, force: true });
process.on('exit', removeStorage);

const mf = new Miniflare({
  ...(storage ? { kvPersist: `${storage}/kv`, durableObjectsPersist: `${storage}/do` } : {}),
  workers: [
    {
      name: 'kurz',
      modules: true,
      scriptPath: path.join(EDGE, 'build/index.js'),
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
      compatibilityDate,
      kvNamespaces: { LINKS: 'LINKS' },
      // Clicks are queued as in production; nothing consumes them during the run.
      queueProducers: { CLICKS: { queueName: 'bench-clicks' } },
      bindings: { ORIGIN_URL: 'http://127.0.0.1:9', EDGE_SECRET: 'bench', CLICK_RETRY_DELAY_SECS: '10' },
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    },
    {
      // What the runtime's KV and queue simulators cost on their own: the same reads and
      // sends as kurz, in a few lines of JavaScript.
      name: 'js-kv',
      modules: true,
      script: `export default {
        async fetch(request, env, ctx) {
          const code = new URL(request.url).pathname.slice(1);
          const text = await env.LINKS.get('link:' + code, { cacheTtl: 30 });
          if (text === null) return new Response('not found', { status: 404 });
          const record = JSON.parse(text);
          ctx.waitUntil(env.CLICKS.send({ id: crypto.randomUUID(), link_id: record.link_id, code, at: new Date().toISOString() }));
          return new Response(null, { status: record.status, headers: { location: record.destination, 'cache-control': 'private, no-store' } });
        },
      };`,
      compatibilityDate,
      kvNamespaces: { LINKS: 'LINKS' },
      queueProducers: { CLICKS: { queueName: 'bench-clicks' } },
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    },
    {
      // The simulated KV alone: one read per visit, nothing else.
      name: 'js-kv-only',
      modules: true,
      script: `export default {
        async fetch(request, env) {
          const text = await env.LINKS.get('link:' + new URL(request.url).pathname.slice(1), { cacheTtl: 30 });
          if (text === null) return new Response('not found', { status: 404 });
          return new Response(null, { status: 302, headers: { location: 'https://example.com/', 'cache-control': 'private, no-store' } });
        },
      };`,
      compatibilityDate,
      kvNamespaces: { LINKS: 'LINKS' },
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    },
    {
      // The simulated queue alone: one send per visit, nothing else.
      name: 'js-queue-only',
      modules: true,
      script: `export default {
        fetch(request, env, ctx) {
          ctx.waitUntil(env.CLICKS.send({ id: crypto.randomUUID(), at: new Date().toISOString() }));
          return new Response(null, { status: 302, headers: { location: 'https://example.com/', 'cache-control': 'private, no-store' } });
        },
      };`,
      compatibilityDate,
      queueProducers: { CLICKS: { queueName: 'bench-clicks' } },
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    },
    {
      // The least a Rust worker does: the workers-rs glue around a constant 302.
      name: 'rust-floor',
      modules: true,
      scriptPath: path.join(EDGE, 'bench/floor/build/index.js'),
      modulesRules: [{ type: 'CompiledWasm', include: ['**/*.wasm'], fallthrough: true }],
      compatibilityDate,
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    },
    {
      name: 'baseline',
      modules: true,
      script: `export default {
        fetch() {
          return new Response(null, { status: 302, headers: { location: 'https://example.com/', 'cache-control': 'private, no-store' } });
        },
      };`,
      compatibilityDate,
      unsafeDirectSockets: [{ host: '127.0.0.1', port: 0 }],
    },
  ],
});
await mf.ready;

const kv = await mf.getKVNamespace('LINKS', 'kurz');
for (let i = 0; i < codes.length; i += 100) {
  await Promise.all(codes.slice(i, i + 100).map((code, j) => kv.put(`link:${code}`, JSON.stringify({
    v: 1, link_id: i + j + 1, destination: `https://example.com/page/${i + j + 1}`, status: 302, expires_at: null,
  }))));
}

// One link with five targeting rules that no request of the bench matches (so all five are
// tried) and UTM parameters: measured against the plain hot link.
await kv.put('link:ruled', JSON.stringify({
  v: 2, version: 1, link_id: codes.length + 1, destination: 'https://example.com/ruled', status: 302, expires_at: null,
  rules: {
    targets: [
      { when: { country: ['DE', 'AT', 'CH'] }, destination: 'https://example.com/dach' },
      { when: { device: ['mobile', 'tablet'] }, destination: 'https://example.com/m' },
      { when: { os: ['ios', 'android'] }, destination: 'https://example.com/app' },
      { when: { language: ['de', 'fr'] }, destination: 'https://example.com/lang' },
      { when: { query: { param: 'ref', value: 'mail' } }, destination: 'https://example.com/q' },
    ],
    utm: { source: 'bench', medium: 'load test', campaign: 'rules' },
  },
}));

const kurz = await mf.unsafeGetDirectURL('kurz');
const baseline = await mf.unsafeGetDirectURL('baseline');
const jsKv = await mf.unsafeGetDirectURL('js-kv');
const jsKvOnly = await mf.unsafeGetDirectURL('js-kv-only');
const jsQueueOnly = await mf.unsafeGetDirectURL('js-queue-only');
const rustFloor = await mf.unsafeGetDirectURL('rust-floor');
console.log(JSON.stringify({
  kurz: kurz.href, baseline: baseline.href, js_kv: jsKv.href, js_kv_only: jsKvOnly.href, js_queue_only: jsQueueOnly.href,
  rust_floor: rustFloor.href,
}));

process.stdin.resume();
process.stdin.on('end', async () => {
  await mf.dispose();
  process.exit(0);
});
