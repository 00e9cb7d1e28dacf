// Link versions at the edge, in workerd (miniflare) against the real origin and PostgreSQL:
// every writer of KV (sync, the miss fill) keeps the newer of two states of a code, and a
// deleted code keeps a tombstone, so a write that was overtaken cannot bring a link back.
//
// The races are made, not waited for: an overtaken sync request is sent by hand (signed
// like the origin's), and a slow miss fill is the proxy holding the origin's answer.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, sign, sleep, startSystem } from './harness.mjs';

let system;
let kv;

before(async () => {
  system = await startSystem({
    queueConsumers: { 'kurz-clicks': { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 3 } },
    // Some tests hold the origin's answer while they act: the worker must not give up first.
    bindings: { RESOLVE_TIMEOUT_MS: '30000' },
  });
  kv = await system.mf.getKVNamespace('LINKS');
});

after(async () => {
  await system?.stop();
});

async function entry(code) {
  const text = await kv.get(`link:${code}`);
  return text === null ? null : JSON.parse(text);
}

/** Posts a sync batch to the worker as the origin would; its answer. */
async function sync(changes) {
  // Indented, so that it never has the bytes (and, within the same second, the signature)
  // of the origin's own request for the same change, which the edge refuses as a replay.
  const body = JSON.stringify({ changes }, null, 1);
  const response = await fetch(`${system.edgeUrl}/_edge/sync`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...sign(system.secret, 'POST', '/_edge/sync', body) },
    body,
  });
  assert.equal(response.status, 200, await response.clone().text());
  return response.json();
}

async function create(code, destination) {
  const created = await system.api('POST', '/links', { destination, code });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  await eventually(`${code} synced to KV`, async () => (await entry(code))?.destination === destination, 5_000);
  return entry(code);
}

async function location(code) {
  const answer = await system.visit(code);
  return answer.status === 404 ? 404 : `${answer.status} ${answer.headers.get('location')}`;
}

test('a sync older than what KV holds changes nothing', async () => {
  await create('ver-older', 'https://example.com/first');
  // An edit, so that the version before this one is not 0 (which means "from an origin
  // without versions", always written).
  assert.equal((await system.api('PATCH', '/links/ver-older', { destination: 'https://example.com/current' })).status, 200);
  await eventually('the edit in KV', async () => (await entry('ver-older'))?.destination === 'https://example.com/current', 5_000);
  const record = await entry('ver-older');
  assert.ok(record.version > 1, JSON.stringify(record));
  const older = { ...record, version: record.version - 1, destination: 'https://example.com/older' };
  const result = await sync([
    { code: 'ver-older', version: older.version, record: older },
    { code: 'ver-older', version: record.version - 1, record: null },
  ]);
  assert.deepEqual(result, { written: 0, deleted: 0, stale: 2 });
  assert.deepEqual(await entry('ver-older'), record);
  await sleep(1_100); // past the memo's second
  assert.equal(await location('ver-older'), '302 https://example.com/current');

  // A newer one is written.
  const newer = { ...record, version: record.version + 1_000, destination: 'https://example.com/newer' };
  assert.deepEqual(await sync([{ code: 'ver-older', version: newer.version, record: newer }]), { written: 1, deleted: 0, stale: 0 });
  assert.deepEqual(await entry('ver-older'), newer);
});

test('a delete that arrives before a slow edit keeps the link deleted', async () => {
  await create('ver-slow', 'https://example.com/one');
  // The edit's sync request, as origin A sent it: it is still on its way...
  assert.equal((await system.api('PATCH', '/links/ver-slow', { destination: 'https://example.com/two' })).status, 200);
  await eventually('the edit in KV', async () => (await entry('ver-slow'))?.destination === 'https://example.com/two', 5_000);
  const edit = await entry('ver-slow');
  // ...while origin B delivers the delete.
  assert.equal((await system.api('DELETE', '/links/ver-slow')).status, 204);
  await eventually('the tombstone in KV', async () => (await entry('ver-slow'))?.deleted === true, 5_000);
  const tombstone = await entry('ver-slow');
  assert.ok(tombstone.version > edit.version, JSON.stringify({ tombstone, edit }));
  assert.deepEqual(Object.keys(tombstone).sort(), ['deleted', 'v', 'version']);

  // The edit lands last.
  const late = await sync([{ code: 'ver-slow', version: edit.version, record: edit }]);
  assert.deepEqual(late, { written: 0, deleted: 0, stale: 1 });
  assert.deepEqual(await entry('ver-slow'), tombstone);
  assert.equal(await location('ver-slow'), 404);
  await sleep(1_100);
  assert.equal(await location('ver-slow'), 404);
});

test('a tombstone beats a miss fill that resolved the link before it was deleted', async () => {
  // In PostgreSQL but not in KV (written behind the outbox's back): the next visit is a miss.
  system.sql("INSERT INTO links (code, destination) VALUES ('ver-fill', 'https://example.com/fill')");
  const resolve = '/_edge/resolve/ver-fill';
  let release;
  const held = new Promise((resolve) => {
    release = resolve;
  });
  let answered = false;
  system.proxy.holdAnswer = (req) => {
    if (req.url !== resolve) return null;
    answered = true;
    return held;
  };
  try {
    const visit = system.visit('ver-fill');
    // The origin has answered with the live link; its answer is on its way to the worker
    // when the link is deleted and the delete reaches KV.
    await eventually('the origin answered the resolve', async () => answered, 5_000);
    await sleep(200);
    assert.equal((await system.api('DELETE', '/links/ver-fill')).status, 204);
    await eventually('the tombstone in KV', async () => (await entry('ver-fill'))?.deleted === true, 5_000);
    const tombstone = await entry('ver-fill');
    release();
    // The visit began before the delete: it may still be redirected.
    const answer = await visit;
    assert.equal(answer.status, 302);
    // The fill after the answer found the tombstone and left it.
    await sleep(500);
    assert.deepEqual(await entry('ver-fill'), tombstone);
    assert.equal(await location('ver-fill'), 404);
    await sleep(1_100);
    assert.equal(await location('ver-fill'), 404);
  } finally {
    system.proxy.holdAnswer = () => null;
    release();
  }
});

test('a new link on a deleted code replaces its tombstone', async () => {
  const first = await create('ver-reuse', 'https://example.com/first');
  assert.equal((await system.api('DELETE', '/links/ver-reuse')).status, 204);
  await eventually('the tombstone in KV', async () => (await entry('ver-reuse'))?.deleted === true, 5_000);
  const second = await create('ver-reuse', 'https://example.com/second');
  assert.ok(second.version > first.version);
  assert.notEqual(second.link_id, first.link_id);
  await sleep(1_100);
  assert.equal(await location('ver-reuse'), '302 https://example.com/second');
});

test('the sync of a state that a miss fill cached first makes it last', async () => {
  // A visit before the link's own sync: the fill caches the record for an hour...
  system.sql("INSERT INTO links (code, destination) VALUES ('ver-first', 'https://example.com/first')");
  assert.equal(await location('ver-first'), '302 https://example.com/first');
  const expiry = async () => (await kv.list({ prefix: 'link:ver-first' })).keys[0]?.expiration;
  await eventually('the fill in KV', async () => (await expiry()) > Date.now() / 1000 + 3_000, 5_000);
  const filled = await entry('ver-first');
  // ...and the sync of the same version, arriving after it, keeps the record without expiry,
  // as for every synced link (an origin outage of over an hour must not end its redirects).
  system.sql("INSERT INTO edge_outbox (code) VALUES ('ver-first')");
  await eventually('the sync made the record last', async () => (await expiry()) === undefined, 5_000);
  assert.deepEqual(await entry('ver-first'), filled);
});
