// The click queue's consumers in workerd (miniflare) against the real origin and PostgreSQL:
// retries on the back-off schedule, the dead-letter consumer that parks what the origin does
// not take, and the replay that puts parked clicks back (`origin replay-parked-clicks`).
//
// Time is compressed: the retry schedule starts at 1 s and is capped at 4 s (production: 60 s
// and 20 min), and the click queue gives up after 4 retries (production: 100), so a message
// reaches the dead-letter queue after 1 + 2 + 4 + 4 = 11 s instead of 32 hours. "The origin
// is down" is the proxy dropping the worker's ingest requests, as a dead origin would.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, sign, sleep, startSystem } from './harness.mjs';

const INGEST = '/_edge/ingest';
const RETRIES = 4;
let system;
let kv;

before(async () => {
  const consumer = { maxBatchSize: 100, maxBatchTimeout: 0, maxRetries: RETRIES };
  system = await startSystem({
    queueConsumers: {
      'kurz-clicks': { ...consumer, deadLetterQueue: 'kurz-clicks-dlq' },
      'kurz-clicks-dlq': consumer,
    },
    // Only the tests send to the dead-letter queue directly; the worker never does.
    queueProducers: { DEAD_LETTERS: { queueName: 'kurz-clicks-dlq' } },
    bindings: { CLICK_RETRY_DELAY_SECS: '1', CLICK_RETRY_MAX_DELAY_SECS: '4' },
  });
  kv = await system.mf.getKVNamespace('LINKS');
});

after(async () => {
  await system?.stop();
});

const originDown = () => {
  system.proxy.refuse = (req) => req.url === INGEST;
};
const originUp = () => {
  system.proxy.refuse = () => false;
};
const ingestTimes = () => system.proxy.requests.get(INGEST) ?? [];

async function makeLink(code) {
  const created = await system.api('POST', '/links', { destination: `https://example.com/${code}`, code });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  // Waiting on KV rather than on a visit, which would add a click.
  await eventually(`${code} synced to KV`, async () => (await kv.get(`link:${code}`)) !== null, 5_000);
  return created.body;
}

async function parked() {
  const { keys } = await kv.list({ prefix: 'parked:' });
  return keys;
}

function stored(linkId) {
  const [total, distinct] = system.sql(`SELECT count(*), count(DISTINCT id) FROM clicks WHERE link_id = ${linkId}`)
    .split('|').map(Number);
  return { total, distinct };
}

function events(link, tag, count) {
  return Array.from({ length: count }, (_, i) => ({
    id: `queue-test-${tag}-${i}`,
    link_id: link.id,
    code: link.code,
    at: new Date().toISOString(),
    country: null,
    referrer: null,
    user_agent: `Mozilla/5.0 queue-test/${tag}`,
    qr: false,
    head: false,
    source: 'edge',
    visitor: null,
  }));
}

test('a click batch the origin does not take is retried with growing delays until it does', async () => {
  const link = await makeLink('retried');
  const before = ingestTimes().length;
  originDown();
  try {
    const answer = await system.visit('retried', { headers: { 'user-agent': 'Mozilla/5.0 queue-test/retried' } });
    assert.equal(answer.status, 302);
    await eventually('four deliveries refused', () => ingestTimes().length - before >= 4 || ingestTimes().length - before, 20_000);
  } finally {
    originUp();
  }
  await eventually('the click is stored', () => stored(link.id).total === 1 || stored(link.id), 15_000);
  const times = ingestTimes().slice(before);
  assert.equal(times.length, 5, 'four refused deliveries, then the one that was taken');
  const gaps = times.slice(1).map((at, i) => at - times[i]);
  console.log(`retries came after ${gaps.map((gap) => `${gap} ms`).join(', ')}`);
  // 1 s, doubling, capped at 4 s (the broker adds a few ms, a loaded machine up to seconds; a
  // fixed delay fails the lower bounds, an uncapped one the last upper bound).
  const delays = [1_000, 2_000, 4_000, 4_000];
  for (const [i, delay] of delays.entries()) {
    assert.ok(gaps[i] >= delay - 50 && gaps[i] < delay + 2_500, `retry ${i + 1} after ${gaps[i]} ms, not ${delay}`);
  }
  // One stall of up to 2.5 s in all: a schedule starting at 2 s (14 s in all) fails this.
  const total = gaps.reduce((sum, gap) => sum + gap, 0);
  assert.ok(total < 11_000 + 2_500, `the retries took ${total} ms in all, not 11000`);
  assert.deepEqual(await parked(), [], 'nothing reached the dead-letter queue');
});

test('the dead-letter consumer stores clicks when the origin takes them and parks them when not', async () => {
  const link = await makeLink('dead-letter');
  const deadLetters = await system.mf.getQueueProducer('DEAD_LETTERS');

  await deadLetters.send(JSON.stringify(events(link, 'up', 3)), { contentType: 'text' });
  await eventually('stored at once', () => stored(link.id).total === 3 || stored(link.id), 10_000);
  assert.deepEqual(await parked(), []);

  const before = ingestTimes().length;
  originDown();
  try {
    await deadLetters.send(JSON.stringify(events(link, 'down', 2)), { contentType: 'text' });
    await eventually('parked in KV', async () => (await parked()).length === 1, 10_000);
  } finally {
    originUp();
  }
  assert.ok(ingestTimes().length > before, 'the origin was tried first');
  const [entry] = await parked();
  assert.match(entry.name, /^parked:\d{15}:[0-9A-Za-z_-]+$/);
  assert.deepEqual(entry.metadata, { clicks: 2 });
  assert.equal(entry.expiration, undefined, 'a parked entry never expires');
  const value = JSON.parse(await kv.get(entry.name));
  assert.deepEqual(value.map((event) => event.id), ['queue-test-down-0', 'queue-test-down-1']);
  assert.equal(stored(link.id).total, 3);
  await kv.delete(entry.name);
});

test('a message holding an event the origin cannot read is retried, then parked; the others are stored and acknowledged', async () => {
  // A worker of a newer release wrote a source no release here knows, beside clicks on a code
  // reserved since (read as any other). Before, the consumer dropped the whole message as not
  // click events; then, for a while, the origin refused the whole request.
  const link = await makeLink('mixed-release');
  const clicks = await system.mf.getQueueProducer('CLICKS');
  const [first, reserved, third, newer] = events(link, 'mixed', 4);
  reserved.code = 'Report';
  newer.source = 'satellite';
  await clicks.send(JSON.stringify([first, reserved]), { contentType: 'text' });
  await clicks.send(JSON.stringify([third, newer]), { contentType: 'text' });
  await eventually('the readable stored', () => stored(link.id).total === 3 || stored(link.id), 10_000);
  // Retried for an origin that reads it (none comes here), then parked in KV: that message
  // only, the other was acknowledged once stored.
  await eventually('parked', async () => (await parked()).length === 1, 40_000);
  await sleep(2_000);
  const entries = await parked();
  assert.equal(entries.length, 1, JSON.stringify(entries));
  assert.deepEqual(entries[0].metadata, { clicks: 2 });
  assert.deepEqual(JSON.parse(await kv.get(entries[0].name)).map((event) => event.id), [third.id, newer.id]);
  assert.deepEqual(stored(link.id), { total: 3, distinct: 3 });
  await kv.delete(entries[0].name);
});

test('clicks of an outage past every retry are parked, replayed by the origin CLI and counted once', async () => {
  const link = await makeLink('long-outage');
  const visits = 40;
  originDown();
  try {
    for (let sent = 0; sent < visits; sent += 10) {
      const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => system.visit('long-outage', {
        headers: { 'user-agent': `Mozilla/5.0 queue-test/outage-${sent + i}` },
      })));
      for (const answer of answers) assert.equal(answer.status, 302);
      // Several queue messages rather than one: an isolate gathers a second of clicks.
      await sleep(1_100);
    }
    // Five refused deliveries over 11 s, then the dead-letter queue, refused too, parks them.
    await eventually('every click parked', async () => {
      const keys = await parked();
      const clicks = keys.reduce((sum, key) => sum + key.metadata.clicks, 0);
      return clicks === visits || clicks;
    }, 40_000);
  } finally {
    originUp();
  }
  assert.equal(stored(link.id).total, 0);
  const entries = await parked();
  assert.ok(entries.length > 1, `${entries.length} parked messages`);

  // A message parked twice (as after a replay cut short between its send and its delete) is
  // still counted once: ingest is idempotent on the event id.
  await kv.put('parked:000000000000001:again', await kv.get(entries[0].name), { metadata: entries[0].metadata });

  const output = await system.origin.cli(['replay-parked-clicks', '--edge-url', system.edgeUrl]);
  console.log(output.trim());
  assert.match(output, new RegExp(`done: ${entries.length + 1} parked messages \\(${visits + entries[0].metadata.clicks} clicks\\)`));
  assert.deepEqual(await parked(), []);

  await eventually('every click stored', () => stored(link.id).total >= visits || stored(link.id), 20_000);
  await sleep(2_000);
  assert.deepEqual(stored(link.id), { total: visits, distinct: visits });
  await eventually('the stats count each click once', async () => {
    const stats = await system.api('GET', '/links/long-outage/stats?interval=hour&bots=true');
    return stats.body?.totals?.total === visits || stats.body;
  }, 20_000);
});

test('clicks the click queue refuses are parked in KV, as the dead-letter consumer parks them', async () => {
  // A worker whose click queue takes nothing. Before, its clicks were logged as lost.
  const refusing = await startSystem({
    queueConsumers: {},
    clickQueue: false,
  });
  try {
    const created = await refusing.api('POST', '/links', { destination: 'https://example.com/refused', code: 'refused' });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    const links = await refusing.mf.getKVNamespace('LINKS');
    await eventually('synced to KV', async () => (await links.get('link:refused')) !== null, 5_000);
    for (let i = 0; i < 3; i += 1) {
      assert.equal((await refusing.visit('refused')).status, 302);
    }
    const parkedHere = async () => (await links.list({ prefix: 'parked:' })).keys;
    await eventually('the clicks parked', async () => {
      const keys = await parkedHere();
      return keys.reduce((sum, key) => sum + key.metadata.clicks, 0) === 3 || keys;
    }, 10_000);
    // Each entry is what the dead-letter consumer parks, which the replay test above takes.
    const clicks = [];
    for (const entry of await parkedHere()) {
      assert.match(entry.name, /^parked:\d{15}:[0-9A-Za-z_-]+$/);
      const value = JSON.parse(await links.get(entry.name));
      assert.equal(value.length, entry.metadata.clicks);
      clicks.push(...value);
    }
    assert.deepEqual(clicks.map((click) => [click.code, click.link_id]), Array(3).fill(['refused', created.body.id]));
    assert.ok(clicks.every((click) => click.id && click.at), JSON.stringify(clicks));
  } finally {
    await refusing.stop();
  }
});

test('replay refuses unsigned, forged and replayed requests and other methods', async () => {
  const link = await makeLink('replay-auth');
  const url = `${system.edgeUrl}/_edge/replay`;
  await kv.put('parked:000000000000002:kept', JSON.stringify(events(link, 'kept', 1)));
  const signed = sign(system.secret, 'POST', '/_edge/replay', '');
  const forged = { ...signed, 'x-kurz-signature': '00'.repeat(32) };
  const otherPath = sign(system.secret, 'POST', '/_edge/sync', '');
  for (const [name, headers] of [['unsigned', {}], ['forged', forged], ['signed for sync', otherPath]]) {
    assert.equal((await fetch(url, { method: 'POST', headers })).status, 401, name);
  }
  assert.equal((await fetch(url)).status, 405);
  assert.equal((await parked()).length, 1, 'nothing was replayed');

  const answer = await fetch(url, { method: 'POST', headers: signed });
  assert.equal(answer.status, 200);
  assert.deepEqual(await answer.json(), { replayed: 1, clicks: 1, remaining: 0, last: 'parked:000000000000002:kept' });
  assert.equal((await fetch(url, { method: 'POST', headers: signed })).status, 401, 'the same request again');
  await eventually('the replayed click is stored', () => stored(link.id).total === 1 || stored(link.id), 10_000);

  // A request names where the one before stopped: the keys up to it are not read again
  // (KV's listing shows deleted keys for up to a minute).
  await kv.put('parked:000000000000003:before', JSON.stringify(events(link, 'before', 1)));
  await kv.put('parked:000000000000004:after', JSON.stringify(events(link, 'after', 1)));
  const body = JSON.stringify({ after: 'parked:000000000000003:before' });
  const goOn = await fetch(url, { method: 'POST', headers: sign(system.secret, 'POST', '/_edge/replay', body), body });
  assert.deepEqual(await goOn.json(), { replayed: 1, clicks: 1, remaining: 0, last: 'parked:000000000000004:after' });
  assert.deepEqual((await parked()).map((key) => key.name), ['parked:000000000000003:before']);
  const rest = JSON.stringify({ nonce: 'the rest' });
  const all = await fetch(url, { method: 'POST', headers: sign(system.secret, 'POST', '/_edge/replay', rest), body: rest });
  assert.equal((await all.json()).replayed, 1);
  await eventually('every replayed click is stored', () => stored(link.id).total === 3 || stored(link.id), 10_000);
});
