// Link rules at the edge (#13): links made through the origin's API reach KV by sync, and the
// worker in workerd answers each rule as the origin does (`shortlink::redirect::decide`):
// targeting by country (the request's `cf.country`), device and OS (the user agent),
// language and query; the A/B split, sticky per visitor; UTM parameters; disabled links and
// fallbacks; the password form and its cookie; the click limit, used up once the origin's
// count reached KV.
//
// A request's `cf` object is set by miniflare from the `MF-CF-Blob` header, and a visitor's
// address by `cf-connecting-ip`, as Cloudflare sets them.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { eventually, startSystem } from './harness.mjs';

let system;

const FIREFOX_LINUX = 'Mozilla/5.0 (X11; Linux x86_64; rv:130.0) Gecko/20100101 Firefox/130.0';
const IPHONE = 'Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1';
const MAC = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15';
const SLACK = 'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)';

before(async () => {
  system = await startSystem({
    queueConsumers: { 'kurz-clicks': { maxBatchSize: 100, maxBatchTimeout: 1, maxRetries: 100 } },
    bindings: { CLICK_RETRY_DELAY_SECS: '1' },
  });
});

after(async () => {
  await system?.stop();
});

/** A visit to the edge by a person on Linux (unless `headers` say otherwise), from `ip`. */
function visit(code, { country, ip = '203.0.113.1', headers = {}, ...init } = {}) {
  const cf = country === undefined ? {} : { 'mf-cf-blob': JSON.stringify({ country }) };
  return system.visit(code, {
    ...init,
    headers: { 'user-agent': FIREFOX_LINUX, 'cf-connecting-ip': ip, ...cf, ...headers },
  });
}

/** Makes a link through the API and waits until the edge has it from sync (not a miss). */
async function link(body) {
  const created = await system.api('POST', '/links', { destination: 'https://example.com/plain', ...body });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const kv = await system.mf.getKVNamespace('LINKS');
  await eventually(`${body.code} synced to KV`, async () => (await kv.get(`link:${body.code}`)) !== null, 5_000);
  assert.equal(resolves(body.code), 0, 'the edge answers from KV');
  return created.body;
}

/** How many times the edge asked the origin for `code`. */
function resolves(code) {
  return system.proxy.requests.get(`/_edge/resolve/${code}`)?.length ?? 0;
}

/** The stored clicks of a link, once `count` of them arrived. */
async function clicksOf(linkId, count) {
  let rows = [];
  await eventually(`${count} clicks of link ${linkId} stored`, async () => {
    const out = system.sql(`SELECT coalesce(variant::text, '-') FROM clicks WHERE link_id = ${linkId} ORDER BY at`);
    rows = out === '' ? [] : out.split('\n');
    return rows.length >= count || rows.length;
  }, 10_000);
  return rows;
}

test('targeting by country, device, OS, language and query picks the destination; UTM goes into every Location', async () => {
  await link({
    code: 'targeted',
    targets: [
      { when: { country: ['DE', 'AT'] }, destination: 'https://de.example/' },
      { when: { device: ['mobile'] }, destination: 'https://m.example/' },
      { when: { os: ['macos'] }, destination: 'https://mac.example/' },
      { when: { language: ['fr'] }, destination: 'https://fr.example/' },
      { when: { query: { param: 'ref', value: 'mail list' } }, destination: 'https://q.example/?keep=1' },
    ],
    utm: { source: 'kurz', campaign: 'spring sale' },
  });
  const cases = [
    ['no rule matches', {}, 'https://example.com/plain'],
    ['country', { country: 'AT' }, 'https://de.example/'],
    ['another country', { country: 'US' }, 'https://example.com/plain'],
    ['first match wins', { country: 'DE', headers: { 'user-agent': IPHONE } }, 'https://de.example/'],
    ['device', { headers: { 'user-agent': IPHONE } }, 'https://m.example/'],
    ['os', { headers: { 'user-agent': MAC } }, 'https://mac.example/'],
    ['language', { headers: { 'accept-language': 'fr-CH, en;q=0.8' } }, 'https://fr.example/'],
    ['only the first language', { headers: { 'accept-language': 'en, fr;q=0.8' } }, 'https://example.com/plain'],
    ['query, decoded', { query: '?x=1&ref=mail+list' }, 'https://q.example/?keep=1'],
    ['query, other value', { query: '?ref=mail' }, 'https://example.com/plain'],
  ];
  for (const [name, { query = '', ...options }, destination] of cases) {
    const answer = await visit(`targeted${query}`, options);
    assert.equal(answer.status, 302, name);
    const location = new URL(answer.headers.get('location'));
    assert.equal(`${location.origin}${location.pathname}`, new URL(destination).href.replace(/\?.*/, ''), name);
    for (const [key, value] of new URL(destination).searchParams) assert.equal(location.searchParams.get(key), value, name);
    assert.equal(location.searchParams.get('utm_source'), 'kurz', name);
    assert.equal(location.searchParams.get('utm_campaign'), 'spring sale', name);
    // Answers that depend on the visitor are never kept by a browser or proxy.
    assert.equal(answer.headers.get('cache-control'), 'private, no-store', name);
  }
  assert.equal(resolves('targeted'), 0);
});

test('an A/B split keeps each visitor in one variant and records it with the click', async () => {
  const created = await link({
    code: 'split-ab',
    split: [
      { destination: 'https://a.example/', weight: 50 },
      { destination: 'https://b.example/', weight: 50 },
    ],
  });
  const seen = new Map();
  for (let i = 0; i < 20; i += 1) {
    const ip = `198.51.100.${i + 1}`;
    const first = (await visit('split-ab', { ip })).headers.get('location');
    assert.match(first, /^https:\/\/[ab]\.example\/$/);
    for (let again = 0; again < 2; again += 1) {
      assert.equal((await visit('split-ab', { ip })).headers.get('location'), first, `visitor ${i} stays`);
    }
    seen.set(first, (seen.get(first) ?? 0) + 1);
  }
  assert.equal(seen.size, 2, `both variants are used: ${JSON.stringify([...seen])}`);
  // Each click carries its variant's id (here its place: the split is new) into the analytics.
  const variants = await clicksOf(created.id, 60);
  assert.deepEqual([...new Set(variants)].sort(), ['0', '1']);
  const aCount = variants.filter((v) => v === '0').length;
  assert.equal(aCount, 3 * (seen.get('https://a.example/') ?? 0));
});

test('a disabled link answers 404; a fallback takes the visit with a 302 no one keeps, and no click', async () => {
  await link({ code: 'switched-off', disabled: true });
  const off = await visit('switched-off');
  assert.equal(off.status, 404);
  assert.equal(off.headers.get('cache-control'), 'no-store');
  assert.match(await off.text(), /Link not found/);

  const withFallback = await link({ code: 'off-fallback', disabled: true, fallback_url: 'https://later.example/' });
  for (let i = 0; i < 3; i += 1) {
    const answer = await visit('off-fallback');
    assert.equal(answer.status, 302);
    assert.equal(answer.headers.get('location'), 'https://later.example/');
    assert.equal(answer.headers.get('cache-control'), 'private, no-store');
  }
  // A click of another link made after them arrives; none of the fallback's did.
  const marker = await link({ code: 'after-fallback' });
  assert.equal((await visit('after-fallback')).status, 302);
  await clicksOf(marker.id, 1);
  assert.equal(system.sql(`SELECT count(*) FROM clicks WHERE link_id = ${withFallback.id}`), '0');
});

test('a password link: the form, a wrong answer, the right one sets the cookie that lets the visitor through', async () => {
  const created = await link({ code: 'secret-pw', password: 'hunter22', destination: 'https://example.com/secret' });
  const form = await visit('secret-pw?ref=x');
  assert.equal(form.status, 401);
  assert.equal(form.headers.get('cache-control'), 'no-store');
  const html = await form.text();
  assert.match(html, /Password required/);
  assert.match(html, /<form method="post">/);

  const post = (password, { ip = '203.0.113.7', cookie } = {}) => visit('secret-pw?ref=x', {
    method: 'POST',
    ip,
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...(cookie ? { cookie } : {}) },
    body: new URLSearchParams({ password }).toString(),
  });
  const wrong = await post('hunter23');
  assert.equal(wrong.status, 401);
  assert.match(await wrong.text(), /not right/);

  const right = await post('hunter22');
  assert.equal(right.status, 303);
  assert.equal(right.headers.get('location'), '/secret-pw?ref=x');
  const setCookie = right.headers.get('set-cookie');
  // Not `Secure` over this test's plain HTTP (a browser would drop it); over HTTPS it is
  // (`edge/src/unlock.rs`'s host test).
  assert.match(setCookie, new RegExp(`^kurz_pw_${created.id}=\\d+\\.[0-9a-f]+; Max-Age=3600; Path=/; HttpOnly; SameSite=Lax$`));
  assert.ok(!setCookie.includes('hunter'));
  const cookie = setCookie.split(';')[0];

  const through = await visit('secret-pw?ref=x', { headers: { cookie: `other=1; ${cookie}` } });
  assert.equal(through.status, 302);
  assert.equal(through.headers.get('location'), 'https://example.com/secret');
  assert.equal(through.headers.get('cache-control'), 'private, no-store');
  // Without the cookie (another browser, or a reload after it was cleared): the form again.
  assert.equal((await visit('secret-pw')).status, 401);
  // A cookie of another link or a forged one does not open it.
  assert.equal((await visit('secret-pw', { headers: { cookie: cookie.replace(/=\d+\./, '=9999999999.') } })).status, 401);

  // Right answers are not held against anyone (people behind one address each enter it once);
  // after five wrong ones from one address, 429 without a hash, for that address only.
  for (let i = 0; i < 3; i += 1) assert.equal((await post('hunter22')).status, 303);
  for (let i = 0; i < 4; i += 1) assert.equal((await post('nope')).status, 401);
  const limited = await post('hunter22');
  assert.equal(limited.status, 429);
  assert.ok(Number(limited.headers.get('retry-after')) > 0);
  assert.match(await limited.text(), /Too many wrong answers/);
  assert.equal((await post('hunter22', { ip: '203.0.113.8' })).status, 303);

  // Forms over 4 KiB are refused before anything else is read.
  const large = await visit('secret-pw', {
    method: 'POST',
    ip: '203.0.113.9',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: `password=${'x'.repeat(5000)}`,
  });
  assert.equal(large.status, 413);

  // Links without a password take no POST, as before passwords.
  await link({ code: 'open-link' });
  const open = await visit('open-link', { method: 'POST', body: 'password=x' });
  assert.equal(open.status, 405);
  assert.equal(open.headers.get('allow'), 'GET, HEAD');
});

test('a click limit: bots and HEAD take none, people use them up, and once the origin counted them KV says so', async () => {
  const created = await link({ code: 'limited3', max_clicks: 3 });
  for (let i = 0; i < 3; i += 1) {
    assert.equal((await visit('limited3', { headers: { 'user-agent': SLACK } })).status, 302, 'a bot');
    assert.equal((await visit('limited3', { method: 'HEAD' })).status, 302, 'HEAD');
  }
  for (let i = 0; i < 3; i += 1) {
    assert.equal((await visit('limited3', { ip: `192.0.2.${i + 1}` })).status, 302, `person ${i}`);
  }
  // This isolate knows it let three through: the fourth is refused at once.
  const fourth = await visit('limited3', { ip: '192.0.2.9' });
  assert.equal(fourth.status, 410);
  assert.match(await fourth.text(), /Link expired/);

  // The origin counts the three people's clicks from ingest and exhausts the link; the change
  // reaches KV by sync, so every isolate (and this one, whatever it counted) answers 410.
  const kv = await system.mf.getKVNamespace('LINKS');
  await eventually('the exhausted record reached KV', async () => {
    const record = JSON.parse(await kv.get('link:limited3'));
    return record.rules?.exhausted === true || JSON.stringify(record.rules);
  }, 15_000);
  await eventually('the edge answers 410 from the new record', async () => (await visit('limited3')).status === 410, 3_000);
  const shown = await system.api('GET', '/links/limited3');
  assert.equal(shown.body.clicks_used, 3);
  // Bots still get 410 too, and take nothing.
  assert.equal((await visit('limited3', { headers: { 'user-agent': SLACK } })).status, 410);
  assert.equal(system.sql(`SELECT count(*) FROM clicks WHERE link_id = ${created.id}`), '9');
});
