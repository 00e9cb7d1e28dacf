// The dashboard in headless Chromium (Debian's, driven by playwright-core) against the real
// origin binary on a real PostgreSQL, serving the real build of admin-ui. `cargo xtask test`
// builds everything and runs this file with the variables below set.
//
// The steps run in order in one browser, as a person would use the dashboard. Screenshots of
// the main pages (light and dark, desktop and phone) go to KURZ_ARTIFACTS; near the end, one
// walk over every page in English and Korean checks each with axe-core and writes its
// screenshots in both languages.

import { after, afterEach, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { once } from 'node:events';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ADMIN_URL = required('KURZ_TEST_DATABASE_URL');
const ORIGIN_BIN = required('KURZ_ORIGIN_BIN');
const ADMIN_DIR = required('KURZ_ADMIN_DIR');
const CHROMIUM = process.env.KURZ_CHROMIUM ?? '/usr/bin/chromium';
const ARTIFACTS = process.env.KURZ_ARTIFACTS ?? path.resolve('artifacts');
const PASSWORD = crypto.randomBytes(12).toString('hex');
const EDGE_SECRET = crypto.randomBytes(32).toString('hex');
const DESKTOP = { width: 1280, height: 900 };
const PHONE = { width: 390, height: 844 };
// axe-core, pinned by package-lock.json; evaluated in a page only when it is checked.
const AXE_SOURCE = fs.readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');
const AXE_TAGS = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'];
// The cookie leptos_i18n keeps the chosen language in.
const LANGUAGE_COOKIE = 'i18n_pref_locale';
const CHROME_UA =
  'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36';

let originProcess;
let originUrl;
let databaseUrl; // The origin's database, for what a test cannot make through the API.
let browser;
let context;
let page;

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run these tests with \`cargo xtask test\``);
  return value;
}

async function freePort() {
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

async function eventually(what, check, timeoutMs = 20_000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last === true) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  assert.fail(`${what}: not within ${timeoutMs} ms (last: ${JSON.stringify(last)})`);
}

/** Clicks "Add a rule" or "Add a variant" and waits for the focus to reach the new row: the
 * form moves it there on the next frame, and a fill started before that would type into the
 * field the focus lands on (Playwright's fill focuses, then inserts the text in a second step). */
async function addRow(button) {
  const focused = () => page.evaluate(() => document.activeElement?.id ?? '');
  const before = await focused();
  await page.getByRole('button', { name: button }).click();
  await eventually(`focus on the row added by "${button}"`, async () => {
    const now = await focused();
    return (now !== before && /^(targets|split)-\d+-(kind|destination)$/.test(now)) || now;
  });
}

function sign(method, pathname, body) {
  const timestamp = Math.floor(Date.now() / 1000);
  const mac = crypto.createHmac('sha256', EDGE_SECRET);
  mac.update(`${method}\n${pathname}\n${timestamp}\n`);
  mac.update(body);
  return { 'x-kurz-timestamp': String(timestamp), 'x-kurz-signature': mac.digest('hex') };
}

/** A week of varied visits to `code`, delivered as the edge would deliver them. */
async function seedClicks(linkId, code, extra = () => ({}), count = 600) {
  const agents = [
    CHROME_UA,
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1',
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15',
    'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36',
    'Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0',
    'Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)',
  ];
  const referrers = ['https://news.ycombinator.com/', 'https://twitter.com/', null, 'https://www.google.com/', null];
  const countries = ['DE', 'US', 'FR', 'JP', 'BR', 'DE', 'US', 'GB'];
  const events = [];
  const now = Date.now();
  for (let i = 0; i < count; i++) {
    // More visits in recent days, a daily rhythm, a little noise.
    const ageHours = Math.floor((Math.random() ** 1.6) * 24 * 7);
    events.push({
      id: crypto.randomUUID(),
      link_id: linkId,
      code,
      at: new Date(now - ageHours * 3_600_000 - Math.random() * 3_000_000).toISOString(),
      country: countries[i % countries.length],
      referrer: referrers[i % referrers.length],
      user_agent: agents[i % agents.length],
      qr: i % 9 === 0,
      head: false,
      source: 'edge',
      visitor: crypto.createHash('sha256').update(`v${i % 230}-${ageHours / 24 | 0}`).digest('hex').slice(0, 32),
      ...extra(i),
    });
  }
  const body = JSON.stringify({ events });
  const response = await fetch(`${originUrl}/_edge/ingest`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...sign('POST', '/_edge/ingest', body) },
    body,
  });
  assert.equal(response.status, 200, await response.text());
}

/**
 * Screenshots of what `target` shows, light and dark, desktop and phone, as
 * `<name>-<lang>-<scheme>-<device>.png`; axe-core checks it too, in both schemes (desktop), its
 * findings kept for the accessibility step.
 */
async function screenshot(name, target = page, { lang = 'en', check = true } = {}) {
  const page = target;
  fs.mkdirSync(path.dirname(path.join(ARTIFACTS, name)), { recursive: true });
  // A chart draws itself again for a new width or colours; nothing else needs a pause.
  const settle = async () => {
    if (await page.locator('.chart svg').count()) await page.waitForTimeout(300);
  };
  const shoot = (scheme, device) =>
    page.screenshot({ path: path.join(ARTIFACTS, `${name}-${lang}-${scheme}-${device}.png`), fullPage: true });
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await settle();
    if (check) await checkA11y(page, `${name} (${lang}, ${scheme})`, scheme === 'dark' ? COLOUR_RULES : null);
    await shoot(scheme, 'desktop');
  }
  await page.setViewportSize(PHONE);
  for (const scheme of ['dark', 'light']) {
    await page.emulateMedia({ colorScheme: scheme });
    await settle();
    await shoot(scheme, 'phone');
  }
  await page.setViewportSize(DESKTOP);
}

/**
 * What axe-core found: each serious or critical violation (rule, impact, element, why) with
 * where it was seen, and the others by rule.
 */
const a11y = { failures: new Map(), others: new Map(), checked: 0 };
// The rules whose answer depends on the colours: all that a second colour scheme can change.
const COLOUR_RULES = ['color-contrast', 'link-in-text-block'];

/** The serious and critical violations, one line each, with where each was seen. */
function a11yReport(filter = () => true) {
  return [...a11y.failures]
    .map(([violation, where]) => [violation, where.filter(filter)])
    .filter(([, where]) => where.length > 0)
    .map(([violation, where]) => `${violation}\n    on ${where.join(', ')}`);
}

/**
 * Runs axe-core over what `target` shows now (`rules`: only these, else every rule of the
 * WCAG 2.1 A/AA and best-practice tags; `within`: only this element, e.g. a dialog); `where`
 * names the page and mode in the findings.
 */
async function checkA11y(target, where, rules = null, within = null) {
  if (!(await target.evaluate(() => typeof window.axe === 'object'))) {
    // An evaluation from the test is not the page's own script: the page's Content-Security-
    // Policy (no inline scripts) stays in force.
    await target.evaluate(`${AXE_SOURCE}\n;true`);
  }
  const runOnly = rules ? { type: 'rule', values: rules } : { type: 'tag', values: AXE_TAGS };
  const violations = await target.evaluate(async ([runOnly, within]) => {
    const result = await window.axe.run(within ? { include: [within] } : document, { runOnly, resultTypes: ['violations'] });
    return result.violations.map((v) => ({
      id: v.id,
      impact: v.impact,
      help: v.help,
      nodes: v.nodes.map((n) => ({ target: n.target.join(' '), html: n.html.slice(0, 160), summary: n.failureSummary })),
    }));
  }, [runOnly, within]);
  a11y.checked += 1;
  for (const violation of violations) {
    if (violation.impact === 'serious' || violation.impact === 'critical') {
      for (const node of violation.nodes) {
        const key = `${violation.id} (${violation.impact}) at \`${node.target}\` (${node.html}): ${node.summary.replace(/\s+/g, ' ')}`;
        a11y.failures.set(key, [...(a11y.failures.get(key) ?? []), where]);
      }
    } else {
      const key = `${violation.id} (${violation.impact})`;
      a11y.others.set(key, [...(a11y.others.get(key) ?? []), where]);
    }
  }
}

function row(code) {
  return page.locator(`tr[data-code="${code}"]`);
}

before(async () => {
  const database = `ui_${crypto.randomBytes(6).toString('hex')}`;
  execFileSync('psql', [ADMIN_URL, '-Atq', '-v', 'ON_ERROR_STOP=1', '-c', `CREATE DATABASE ${database}`]);
  databaseUrl = ADMIN_URL.replace(/\/[^/]*$/, `/${database}`);
  const port = await freePort();
  originUrl = `http://127.0.0.1:${port}`;
  originProcess = spawn(ORIGIN_BIN, ['serve'], {
    env: {
      ...process.env,
      RUST_LOG: 'warn',
      DATABASE_URL: databaseUrl,
      KURZ_BIND: `127.0.0.1:${port}`,
      KURZ_PUBLIC_URL: originUrl,
      KURZ_CODE_KEY: crypto.randomBytes(16).toString('hex'),
      KURZ_ADMIN_DIR: ADMIN_DIR,
      KURZ_ADMIN_PASSWORD: PASSWORD,
      KURZ_EDGE_SECRET: EDGE_SECRET,
      // The webhook test's receiver listens on 127.0.0.2.
      KURZ_WEBHOOK_ALLOW_PRIVATE: 'true',
      // The first API key goes there (the password is the one above); not in this folder.
      KURZ_FIRST_START_FILE: path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'kurz-ui-')), 'first-start.txt'),
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  await eventually('origin ready', async () => {
    if (originProcess.exitCode !== null) throw new Error(`the origin exited (${originProcess.exitCode}): see its log above`);
    try {
      return (await fetch(`${originUrl}/ready`)).status === 200;
    } catch {
      return false;
    }
  }, 60_000);
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: [
      '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
    ],
  });
  context = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light', locale: 'en-GB', timezoneId: 'Europe/Berlin' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: originUrl });
  context.setDefaultTimeout(30_000);
  page = await context.newPage();
  page.on('pageerror', (err) => console.error('page error:', err));
  page.on('console', (msg) => { if (msg.type() === 'error') console.error('console error:', msg.text()); });
  // Every refusal with what it said, so a failure in CI shows which answer the page got.
  page.on('response', async (response) => {
    if (response.status() < 400) return;
    const body = await response.text().catch(() => '');
    console.error(`answer ${response.status()} to ${response.request().method()} ${response.url()}: ${body.slice(0, 300)}`);
  });
});

// A failed step leaves what the page showed: its address, its messages, the form's errors,
// and a screenshot in KURZ_ARTIFACTS (failed-<n>.png), so a failure seen once in CI can be read.
let failures = 0;
afterEach(async (t) => {
  if (t.passed !== false || !page) return;
  failures += 1;
  const shown = await page.evaluate(() => ({
    url: location.href,
    alerts: [...document.querySelectorAll('[role=alert], [role=status], .field-error')]
      .map((e) => `${e.id || e.className}: ${e.textContent.trim()}`)
      .filter((line) => !line.endsWith(': ')),
    forms: document.querySelectorAll('form.link-form').length,
  })).catch((err) => ({ unreadable: String(err) }));
  console.error(`after the failure of "${t.name}", the page showed:`, JSON.stringify(shown, null, 1));
  await page.screenshot({ path: path.join(ARTIFACTS, `failed-${failures}.png`), fullPage: true }).catch(() => {});
});

after(async () => {
  await browser?.close();
  if (originProcess) {
    const exited = once(originProcess, 'exit');
    originProcess.kill('SIGTERM');
    await exited;
  }
});

test('the API refuses calls without a session or key', async () => {
  for (const [method, url] of [['GET', '/api/v1/links'], ['GET', '/api/v1/stats'], ['POST', '/api/v1/links']]) {
    const response = await fetch(`${originUrl}${url}`, { method, headers: { cookie: 'kurz_session=forged' } });
    assert.equal(response.status, 401, `${method} ${url}`);
    assert.equal((await response.json()).error.code, 'unauthorized');
  }
});

test('a wrong password is refused, the right one signs in', async () => {
  await page.goto(`${originUrl}/admin/links`);
  await page.getByLabel('Username').fill('admin');
  await page.getByLabel('Password').fill('not-the-password');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'wrong username or password' }).waitFor();

  await page.getByLabel('Password').fill(PASSWORD);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('heading', { name: 'Links' }).waitFor();
  const cookie = (await context.cookies()).find((c) => c.name === 'kurz_session');
  assert.ok(cookie, 'a session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  // The page's own script cannot read it, and cannot change anything without the CSRF token.
  assert.equal(await page.evaluate(() => document.cookie.includes('kurz_session')), false);
  const forged = await page.evaluate(async () => {
    const response = await fetch('/api/v1/links', {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ destination: 'https://evil.example/' }),
    });
    return response.status;
  });
  assert.equal(forged, 403);
});

test('creating a link shows the validation error next to the field, then creates it', async () => {
  await page.getByRole('button', { name: 'New link' }).click();
  await page.getByLabel('Destination URL').fill('not a url');
  await page.getByLabel('Custom slug (optional)').fill('launch');
  await page.getByRole('button', { name: 'Create link' }).click();
  const error = page.locator('#destination-error');
  await error.filter({ hasText: /\S/ }).waitFor();
  assert.match(await error.textContent(), /destination|URL|url/);
  assert.equal(await page.getByLabel('Destination URL').getAttribute('aria-invalid'), 'true');

  await page.getByLabel('Destination URL').fill('https://example.com/launch');
  await page.getByRole('button', { name: 'Create link' }).click();
  // Both at once: the message lives 4 s, which waiting for the row first could use up.
  await Promise.all([row('launch').waitFor(), page.getByRole('status').filter({ hasText: 'Created' }).waitFor()]);

  // A slug that is taken is an error on the slug field.
  await page.getByRole('button', { name: 'New link' }).click();
  await page.getByLabel('Destination URL').fill('https://example.com/other');
  await page.getByLabel('Custom slug (optional)').fill('launch');
  await page.getByRole('button', { name: 'Create link' }).click();
  await page.locator('#code-error').filter({ hasText: 'already taken' }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
});

test('editing a link, copying it and its QR code', async () => {
  await row('launch').getByRole('button', { name: 'Edit launch' }).click();
  await page.getByLabel('Destination URL').fill('https://example.com/launch-v2');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await row('launch').getByText('https://example.com/launch-v2').waitFor();

  await row('launch').getByRole('button', { name: /Copy the short link/ }).click();
  await page.getByRole('status').filter({ hasText: `Copied ${originUrl}/launch` }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), `${originUrl}/launch`);

  await row('launch').getByRole('button', { name: 'QR code of launch' }).click();
  const image = page.getByRole('dialog').getByRole('img');
  await eventually('QR image loaded', () => image.evaluate((img) => img.complete && img.naturalWidth > 0));
  const png = await page.evaluate(async (code) => (await fetch(`/api/v1/links/${code}/qr.png`)).headers.get('content-type'), 'launch');
  assert.equal(png, 'image/png');
  await page.keyboard.press('Escape');
  await page.getByRole('dialog').waitFor({ state: 'detached' });
});

test('an expired link\'s note can be edited: its expiry is left as it was, seconds and all', async () => {
  const created = await page.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/links', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({
        destination: 'https://example.com/lapsed',
        code: 'lapsed',
        expires_at: new Date(Date.now() + 3_600_000).toISOString(),
      }),
    });
    return response.json();
  });
  // Expired yesterday, at 30 seconds past a minute (the form's input shows minutes).
  execFileSync('psql', [databaseUrl, '-Atq', '-v', 'ON_ERROR_STOP=1', '-c',
    `UPDATE links SET expires_at = date_trunc('minute', now()) - interval '1 day' + interval '30 seconds'
     WHERE id = ${created.id}`]);
  await page.reload();
  await row('lapsed').getByRole('button', { name: 'Edit lapsed' }).click();
  await page.getByLabel('Note (optional)').fill('expired on purpose');
  await page.getByRole('button', { name: 'Save changes' }).click();
  // The form itself: while it saves, its button is "Saving…", no longer "Save changes".
  await page.locator('.link-form').waitFor({ state: 'detached' });
  const saved = await page.evaluate(async () => (await fetch('/api/v1/links/lapsed')).json());
  assert.equal(saved.note, 'expired on purpose');
  assert.match(saved.expires_at, /:30Z$/);
  await page.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    await fetch('/api/v1/links/lapsed', { method: 'DELETE', headers: { 'x-csrf-token': session.csrf_token } });
  });
  await page.reload();
  await row('launch').waitFor();
});

test('an edit of a link somebody changed meanwhile is refused with a message, and undoes nothing', async () => {
  await row('launch').getByRole('button', { name: 'Edit launch' }).click();
  await page.getByLabel('Destination URL').fill('https://example.com/launch-mine');
  // Meanwhile, somebody else (here: the same person in another tab) changes the link.
  const changed = await page.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/links/launch', {
      method: 'PATCH',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ destination: 'https://example.com/launch-theirs' }),
    });
    return response.status;
  });
  assert.equal(changed, 200);
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('alert').filter({ hasText: 'Somebody else changed this link' }).waitFor();
  await page.getByRole('button', { name: 'Cancel' }).click();
  const now = await page.evaluate(async () => (await (await fetch('/api/v1/links/launch')).json()).destination);
  assert.equal(now, 'https://example.com/launch-theirs');
  // Opened again, the form has their version, and saving works.
  await page.reload();
  await row('launch').getByRole('button', { name: 'Edit launch' }).click();
  await page.getByLabel('Destination URL').fill('https://example.com/launch-v2');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await row('launch').getByText('https://example.com/launch-v2').waitFor();
});

test('following the short link shows the click in its analytics', async () => {
  const visit = await fetch(`${originUrl}/launch`, {
    redirect: 'manual',
    headers: { 'user-agent': CHROME_UA, referer: 'https://news.ycombinator.com/item?id=1' },
  });
  assert.equal(visit.status, 302);
  assert.equal(visit.headers.get('location'), 'https://example.com/launch-v2');

  await row('launch').getByRole('link', { name: 'Analytics of launch' }).click();
  await page.getByRole('heading', { name: 'Analytics of launch' }).waitFor();
  await page.getByRole('button', { name: '24 hours' }).click();
  const clicks = page.locator('.total').filter({ hasText: 'Clicks' }).locator('dd');
  // The origin stores clicks in batches off the request path: allow it a moment.
  await eventually('the click in the analytics', async () => {
    const text = (await clicks.textContent().catch(() => '')) ?? '';
    if (text.trim() === '1') return true;
    await page.getByRole('button', { name: '7 days' }).click();
    await page.getByRole('button', { name: '24 hours' }).click();
    return text;
  });
  await page.locator('.breakdown').filter({ hasText: 'Referrers' }).getByText('news.ycombinator.com').waitFor();
  await page.locator('.breakdown').filter({ hasText: 'Browsers' }).getByText('Chrome').waitFor();
});

test('screenshots of the links page, a link with data, and the overview', async () => {
  const link = await page.evaluate(async () => (await fetch('/api/v1/links/launch')).json());
  await seedClicks(link.id, 'launch');
  await page.getByRole('button', { name: '7 days' }).click();
  await eventually('the seeded week in the totals', async () => {
    await page.reload();
    await page.getByRole('heading', { name: 'Analytics of launch' }).waitFor();
    const text = await page.locator('.total').filter({ hasText: 'Clicks' }).locator('dd').textContent();
    return Number(text.replace(/\D/g, '')) > 100 || text;
  });
  await page.locator('.chart svg').waitFor();
  // The tooltip names the bucket under the pointer.
  const chart = await page.locator('.chart-canvas').boundingBox();
  await page.mouse.move(chart.x + chart.width * 0.8, chart.y + chart.height / 2);
  await page.locator('.tooltip').filter({ hasText: 'clicks' }).waitFor();
  await page.mouse.move(0, 0);
  await screenshot('link-analytics');

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Links' }).click();
  for (const [code, destination] of [
    ['docs', 'https://docs.example.com/getting-started/installation'],
    ['summer-sale', 'https://shop.example.com/collections/summer?utm_source=newsletter&utm_medium=email'],
    ['careers', 'https://example.com/jobs'],
  ]) {
    const created = await page.evaluate(async ([code, destination]) => {
      const session = await (await fetch('/api/v1/session')).json();
      const response = await fetch('/api/v1/links', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
        body: JSON.stringify({ code, destination }),
      });
      return response.status;
    }, [code, destination]);
    assert.equal(created, 201);
  }
  await page.reload();
  await row('careers').waitFor();
  await screenshot('links');

  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Overview' }).click();
  await page.getByRole('heading', { name: 'Top links' }).waitFor();
  await page.locator('.top-links').getByRole('link', { name: 'launch' }).waitFor();
  await screenshot('overview');
});

test('the overview and a link\'s analytics update by themselves: clicks made elsewhere show without a reload', async () => {
  // The overview is open in this tab; the link's analytics in another.
  await page.getByRole('heading', { name: 'Top links' }).waitFor();
  const launch = await page.evaluate(async () => (await fetch('/api/v1/links/launch')).json());
  const linkPage = await context.newPage();
  linkPage.on('pageerror', (err) => console.error('page error:', err));
  await linkPage.goto(`${originUrl}/admin/links/launch?id=${launch.id}`);
  await linkPage.getByRole('heading', { name: 'Analytics of launch' }).waitFor();
  const figure = (target, label) => async () => {
    const text = await target.locator('.total').filter({ hasText: label }).locator('dd').textContent();
    return Number(text.replace(/\D/g, ''));
  };
  const today = figure(page, 'Clicks today');
  const linkClicks = figure(linkPage, /^Clicks/);
  await linkPage.locator('.total').first().waitFor();
  // Each page marked: a reload would lose it.
  for (const target of [page, linkPage]) {
    await target.evaluate(() => { window.kurzNotReloaded = true; });
    // Headless pages count as shown: they ask again while open.
    assert.equal(await target.evaluate(() => document.visibilityState), 'visible');
  }
  const before = { today: await today(), link: await linkClicks() };

  // Three visits through the origin's redirect, as from another tab.
  for (let i = 0; i < 3; i++) {
    const visit = await fetch(`${originUrl}/launch`, { redirect: 'manual', headers: { 'user-agent': CHROME_UA } });
    assert.equal(visit.status, 302);
  }
  await eventually('the link page counts the visits', async () => {
    const now = await linkClicks();
    return now >= before.link + 3 || { before: before.link, now };
  }, 30_000);
  await eventually('the overview counts the visits', async () => {
    const now = await today();
    return now >= before.today + 3 || { before: before.today, now };
  }, 30_000);
  for (const target of [page, linkPage]) {
    assert.equal(await target.evaluate(() => window.kurzNotReloaded), true, 'the page was not reloaded');
  }
  // The chart has a summary as its name, and its points as a table behind a disclosure.
  const chart = linkPage.locator('.chart [role="img"]');
  assert.match(await chart.getAttribute('aria-label'), /clicks and [\d,]+ unique visitors in all/);
  await linkPage.getByText('Show as table').click();
  await linkPage.locator('.chart-table tbody tr').first().waitFor();
  await linkPage.close();
});

test('a link opens by its id: an address kept past its delete says so instead of showing the link that took the code', async () => {
  const api = (method, pathname, body) => page.evaluate(async ([method, pathname, body]) => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch(pathname, {
      method,
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: body === null ? undefined : JSON.stringify(body),
    });
    return { status: response.status, body: response.status === 204 ? null : await response.json() };
  }, [method, pathname, body]);

  // The overview's top links name the link's id, not only its code.
  const launch = await api('GET', '/api/v1/links/launch', null);
  const href = await page.locator('.top-links').getByRole('link', { name: 'launch' }).getAttribute('href');
  assert.equal(href, `/admin/links/launch?id=${launch.body.id}`);

  const old = await api('POST', '/api/v1/links', { code: 'reused', destination: 'https://example.com/old' });
  assert.equal(old.status, 201);
  await page.goto(`${originUrl}/admin/links/reused?id=${old.body.id}`);
  await page.locator('.link-summary').filter({ hasText: 'https://example.com/old' }).waitFor();
  assert.equal((await api('DELETE', '/api/v1/links/reused', null)).status, 204);
  const taken = await api('POST', '/api/v1/links', { code: 'reused', destination: 'https://example.com/new' });
  assert.equal(taken.status, 201);
  await page.reload();
  await page.getByRole('alert').filter({ hasText: 'This link was deleted' }).waitFor();
  assert.equal(await page.getByText('https://example.com/new').count(), 0);
  assert.equal(await page.getByRole('link', { name: 'Export CSV' }).count(), 0);
  // Without an id (typed by hand) the page shows whichever link has the code now.
  await page.goto(`${originUrl}/admin/links/reused`);
  await page.locator('.link-summary').filter({ hasText: 'https://example.com/new' }).waitFor();
  assert.equal((await api('DELETE', '/api/v1/links/reused', null)).status, 204);
  await page.goto(`${originUrl}/admin`);
  await page.getByRole('heading', { name: 'Top links' }).waitFor();
});

test('search, sort and pages of links', async () => {
  await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Links' }).click();
  await page.getByRole('searchbox').fill('shop.example');
  await eventually('search narrows the table', async () => (await page.locator('tbody tr').count()) === 1 || (await page.locator('tbody tr').count()));
  await row('summer-sale').waitFor();
  await page.getByRole('searchbox').fill('');
  await page.getByLabel('Sort').selectOption('code_asc');
  await page.getByLabel('Per page').selectOption('25');
  await eventually('sorted by code', async () => {
    const codes = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.code));
    return JSON.stringify(codes) === JSON.stringify(['careers', 'docs', 'launch', 'summer-sale']) || codes;
  });
});

test('the links list shows each link’s clicks, and sorts by them from the column header', async () => {
  // Three visits to docs through the origin's redirect; launch has its seeded week.
  for (let i = 0; i < 3; i++) {
    const visit = await fetch(`${originUrl}/docs`, { redirect: 'manual', headers: { 'user-agent': CHROME_UA } });
    assert.equal(visit.status, 302);
  }
  // The origin stores and counts clicks in batches off the request path.
  await eventually('the clicks of docs in the list', async () => {
    await page.reload();
    await row('docs').waitFor();
    const text = (await row('docs').locator('td.clicks').textContent()).trim();
    return text === '3' || text;
  });
  assert.equal((await row('docs').locator('td.clicks-7d').textContent()).trim(), '3');
  assert.equal((await row('careers').locator('td.clicks').textContent()).trim(), '0');

  const header = page.getByRole('button', { name: /^Clicks/ });
  await header.click();
  await eventually('sorted by clicks, most first', async () => {
    const codes = await page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.code));
    return JSON.stringify(codes.slice(0, 2)) === JSON.stringify(['launch', 'docs']) || codes;
  });
  assert.equal(await page.locator('th', { has: header }).getAttribute('aria-sort'), 'descending');
  assert.equal(await page.getByLabel('Sort').inputValue(), 'clicks');
  const launch = Number((await row('launch').locator('td.clicks').textContent()).replace(/\D/g, ''));
  assert.ok(launch > 3, `launch has its seeded clicks (${launch})`);
  // The Created header sorts newest first again.
  await page.getByRole('button', { name: /^Created/ }).click();
  await eventually('newest first', async () => (await page.getByLabel('Sort').inputValue()) === 'newest');
});

// Link rules (#13): each editor of the form, saved and shown again; the API's errors next to
// the field they name; the list's tag, search and enabled filters and its switch.

/** The fieldset of one row of a list in the form (`Rule 2`, `Variant 1`). */
function formRow(name) {
  return page.locator('form.link-form').getByRole('group', { name, exact: true });
}

test('link rules: every editor of the form, an error at its field, then saved and shown again on edit', async () => {
  await page.getByRole('button', { name: 'New link' }).click();
  await page.getByLabel('Destination URL').fill('https://shop.example.com/promo?ref=x#top');
  await page.getByLabel('Custom slug (optional)').fill('promo');
  await page.getByRole('switch', { name: /Disabled/ }).check();
  await page.getByLabel('Click limit (optional)').fill('10');
  await page.getByLabel('Fallback URL (optional)').fill('https://example.com/sold-out');
  await page.getByLabel('Password (optional)').fill('open sesame');

  // Targeting rules: three, the last moved up by keyboard.
  // The focus goes to the new rule's first input, what it matches.
  await addRow('Add a rule');
  await page.getByLabel('Countries of rule 1').fill('de, at');
  await page.getByLabel('Destination of rule 1').fill('https://shop.example.com/de');
  await addRow('Add a rule');
  await page.getByLabel('Match of rule 2').selectOption('device');
  await formRow('Devices of rule 2').getByLabel('mobile').check();
  await formRow('Devices of rule 2').getByLabel('tablet').check();
  await page.getByLabel('Destination of rule 2').fill('https://m.shop.example.com/');
  await addRow('Add a rule');
  await page.getByLabel('Match of rule 3').selectOption('query');
  await page.getByLabel('Parameter of rule 3').fill('ref');
  await page.getByLabel('Value of rule 3').fill('mail');
  await page.getByLabel('Destination of rule 3').fill('https://shop.example.com/mail');
  await page.getByRole('button', { name: 'Move rule 3 up' }).focus();
  await page.keyboard.press('Enter');
  assert.equal(await page.getByLabel('Parameter of rule 2').inputValue(), 'ref');
  assert.equal(await formRow('Devices of rule 3').getByLabel('mobile').isChecked(), true);
  await eventually('focus follows the rule', async () => {
    const label = await page.evaluate(() => document.activeElement.getAttribute('aria-label'));
    return label === 'Move rule 2 up' || label;
  });
  // A fourth rule, removed again.
  await addRow('Add a rule');
  await page.getByRole('button', { name: 'Remove rule 4' }).click();
  assert.equal(await formRow('Rule 4').count(), 0);
  // The last row gone, the focus goes to the row before it.
  await eventually('focus on the rule before', async () =>
    page.getByLabel('Match of rule 3').evaluate((select) => select === document.activeElement));

  // The split: 60 + 60 is shown as it is, and refused by the API at `split`.
  await addRow('Add a variant');
  await addRow('Add a variant');
  await page.getByLabel('Destination of variant 1').fill('https://a.example/');
  await page.getByLabel('Weight (%) of variant 1').fill('60');
  await page.getByLabel('Destination of variant 2').fill('https://b.example/');
  await page.getByLabel('Weight (%) of variant 2').fill('60');
  await page.locator('#split-sum').filter({ hasText: 'Total: 120 of 100' }).waitFor();

  // UTM: the preview is the redirect's own merge (the ref and the fragment stay).
  await page.getByLabel('Source (utm_source)').fill('newsletter');
  await page.getByLabel('Medium (utm_medium)').fill('email');
  await page.getByLabel('Campaign (utm_campaign)').fill('spring sale');
  const preview = 'https://shop.example.com/promo?ref=x&utm_source=newsletter&utm_medium=email&utm_campaign=spring+sale#top';
  assert.equal(await page.locator('#utm-preview').textContent(), preview);

  // Tags are normalised as the API keeps them; a repeat is one chip.
  await page.getByLabel('Add a tag').fill('Spring   Sale');
  await page.getByLabel('Add a tag').press('Enter');
  await page.getByLabel('Add a tag').pressSequentially('Q4,spring sale,');
  assert.deepEqual(await page.getByRole('list', { name: 'Tags' }).locator('li').allTextContents(), ['spring sale×', 'q4×']);
  await page.getByLabel('Note (optional)').fill('For the spring newsletter.');

  await page.getByRole('button', { name: 'Create link' }).click();
  await page.locator('#split-error').filter({ hasText: 'add up to 120' }).waitFor();
  await page.getByLabel('Weight (%) of variant 2').fill('40');
  await page.locator('#split-sum').filter({ hasText: 'Total: 100 of 100' }).waitFor();

  // A bad country: the message shows under rule 1's countries, which are marked invalid.
  await page.getByLabel('Countries of rule 1').fill('de, Germany');
  await page.getByRole('button', { name: 'Create link' }).click();
  await formRow('Rule 1').locator('.field-error').filter({ hasText: 'two-letter' }).waitFor();
  assert.equal(await page.getByLabel('Countries of rule 1').getAttribute('aria-invalid'), 'true');
  // The focus goes to the field to fix, which the message describes.
  await eventually('focus on the invalid field', async () =>
    page.getByLabel('Countries of rule 1').evaluate((input) => input === document.activeElement));
  const described = await page.getByLabel('Countries of rule 1').getAttribute('aria-describedby');
  assert.match(await page.locator(`#${described.split(' ')[0]}`).textContent(), /two-letter/);
  assert.equal(await page.locator('#split-error').textContent(), '');
  await page.getByLabel('Countries of rule 1').fill('de, at');
  await page.getByRole('button', { name: 'Create link' }).click();
  await row('promo').waitFor();
  for (const marker of ['disabled', 'protected', 'limit 0/10']) {
    await row('promo').locator('.badge').filter({ hasText: marker }).waitFor();
  }
  await row('promo').getByRole('button', { name: 'Show links tagged spring sale' }).waitFor();
  // The password is in no answer.
  const saved = await page.evaluate(async () => (await fetch('/api/v1/links/promo')).text());
  assert.equal(saved.includes('open sesame'), false);
  assert.equal(JSON.parse(saved).password_protected, true);

  // After a reload, the edit form shows every value again.
  await page.reload();
  await row('promo').getByRole('button', { name: 'Edit promo' }).click();
  assert.equal(await page.getByLabel('Destination URL').inputValue(), 'https://shop.example.com/promo?ref=x#top');
  assert.equal(await page.getByRole('switch', { name: /Disabled/ }).isChecked(), true);
  assert.equal(await page.getByLabel('Click limit (optional)').inputValue(), '10');
  await page.locator('#clicks-used').filter({ hasText: 'Clicks used: 0' }).waitFor();
  assert.equal(await page.getByLabel('Fallback URL (optional)').inputValue(), 'https://example.com/sold-out');
  await page.locator('form.link-form .badge').filter({ hasText: 'protected' }).waitFor();
  assert.equal(await page.getByLabel(/New password/).inputValue(), '');
  assert.equal(await page.getByLabel('Match of rule 1').inputValue(), 'country');
  assert.equal(await page.getByLabel('Countries of rule 1').inputValue(), 'DE, AT');
  assert.equal(await page.getByLabel('Destination of rule 1').inputValue(), 'https://shop.example.com/de');
  assert.equal(await page.getByLabel('Match of rule 2').inputValue(), 'query');
  assert.equal(await page.getByLabel('Parameter of rule 2').inputValue(), 'ref');
  assert.equal(await page.getByLabel('Value of rule 2').inputValue(), 'mail');
  assert.equal(await page.getByLabel('Match of rule 3').inputValue(), 'device');
  assert.equal(await formRow('Devices of rule 3').getByLabel('mobile').isChecked(), true);
  assert.equal(await formRow('Devices of rule 3').getByLabel('tablet').isChecked(), true);
  assert.equal(await formRow('Devices of rule 3').getByLabel('desktop').isChecked(), false);
  assert.equal(await page.getByLabel('Weight (%) of variant 1').inputValue(), '60');
  assert.equal(await page.getByLabel('Destination of variant 2').inputValue(), 'https://b.example/');
  assert.equal(await page.getByLabel('Weight (%) of variant 2').inputValue(), '40');
  assert.equal(await page.getByLabel('Campaign (utm_campaign)').inputValue(), 'spring sale');
  assert.equal(await page.locator('#utm-preview').textContent(), preview);
  assert.deepEqual(await page.getByRole('list', { name: 'Tags' }).locator('li').allTextContents(), ['spring sale×', 'q4×']);
  assert.equal(await page.getByLabel('Note (optional)').inputValue(), 'For the spring newsletter.');
  await screenshot('link-form');

  // An edit that removes a tag and the limit keeps everything else (the password too).
  await page.getByRole('button', { name: 'Remove tag q4' }).click();
  await page.getByLabel('Click limit (optional)').fill('');
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
  const edited = await page.evaluate(async () => (await fetch('/api/v1/links/promo')).json());
  assert.deepEqual(edited.tags, ['spring sale']);
  assert.equal(edited.max_clicks, null);
  assert.equal(edited.password_protected, true);
  assert.equal(edited.targets.length, 3);
  assert.equal(edited.utm.campaign, 'spring sale');
});

test('the links list filters by tag (also by clicking a tag), searches, shows disabled links, and switches one on', async () => {
  const made = await page.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/links', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ code: 'q4-report', destination: 'https://example.com/q4', tags: ['Q4', 'Reports'] }),
    });
    return response.status;
  });
  assert.equal(made, 201);
  await page.reload();
  const codes = () => page.locator('tbody tr').evaluateAll((rows) => rows.map((r) => r.dataset.code).sort());
  const shows = (what, expected) => eventually(what, async () => {
    const got = await codes();
    return JSON.stringify(got) === JSON.stringify(expected) || got;
  });
  await row('q4-report').getByRole('button', { name: 'Show links tagged reports' }).click();
  await shows('only the reports', ['q4-report']);
  assert.equal(await page.getByLabel('Tag', { exact: true }).inputValue(), 'reports');
  await page.getByLabel('Tag', { exact: true }).fill('spring sale');
  await shows('only the spring sale', ['promo']);
  await page.getByLabel('Tag', { exact: true }).fill('');
  await page.getByRole('searchbox').fill('q4');
  await shows('the search', ['q4-report']);
  await page.getByRole('searchbox').fill('');
  await page.getByLabel('Show', { exact: true }).selectOption('true');
  await shows('only disabled links', ['promo']);
  await page.getByLabel('Show', { exact: true }).selectOption('false');
  await eventually('no disabled link', async () => !(await codes()).includes('promo') || (await codes()));
  await page.getByLabel('Show', { exact: true }).selectOption('');
  await row('promo').waitFor();

  // The switch in the row turns the link on.
  const toggle = row('promo').getByRole('switch', { name: 'Enabled: promo' });
  assert.equal(await toggle.getAttribute('aria-checked'), 'false');
  await toggle.click();
  await page.getByRole('status').filter({ hasText: 'Enabled promo.' }).waitFor();
  await eventually('the row without its marker', async () => (await row('promo').locator('.badge.off').count()) === 0);
  assert.equal(await row('promo').getByRole('switch', { name: 'Enabled: promo' }).getAttribute('aria-checked'), 'true');
  const promo = await page.evaluate(async () => (await fetch('/api/v1/links/promo')).json());
  assert.equal(promo.disabled, false);
});

test('the analytics break a split link down by variant, named by destination, and the overview by tag', async () => {
  const promo = await page.evaluate(async () => (await fetch('/api/v1/links/promo')).json());
  await seedClicks(promo.id, 'promo', (i) => ({ variant: i % 4 === 0 ? 1 : 0 }), 80);
  await page.goto(`${originUrl}/admin/links/promo?id=${promo.id}`);
  await page.getByRole('button', { name: '7 days' }).click();
  const variants = page.locator('.breakdown').filter({ hasText: 'A/B variants' });
  await eventually('the variants table', async () => {
    if (await variants.count()) return true;
    await page.reload();
    await page.getByRole('heading', { name: 'Analytics of promo' }).waitFor();
    return false;
  }, 15_000);
  await variants.getByText('Variant 1: https://a.example/').waitFor();
  await variants.getByText('Variant 2: https://b.example/').waitFor();
  const visitsOf = (name) => variants.locator('tr').filter({ hasText: name }).locator('td.num').textContent();
  const [onA, onB] = [await visitsOf('Variant 1: https://a.example/'), await visitsOf('Variant 2: https://b.example/')];
  assert.notEqual(onA, onB);

  // Variant 2 gets a new destination and moves first: its visits stay its own (the form sends
  // its id back), under its new place and destination.
  await nav(page, 'Links').click();
  await row('promo').getByRole('button', { name: 'Edit promo' }).click();
  await page.getByLabel('Destination of variant 2').fill('https://b2.example/');
  await page.getByRole('button', { name: 'Move variant 2 up' }).click();
  await page.getByRole('button', { name: 'Save changes' }).click();
  await page.getByRole('status').filter({ hasText: 'Saved' }).waitFor();
  await page.goto(`${originUrl}/admin/links/promo?id=${promo.id}`);
  await page.getByRole('button', { name: '7 days' }).click();
  await variants.getByText('Variant 1: https://b2.example/').waitFor();
  assert.equal(await visitsOf('Variant 1: https://b2.example/'), onB);
  assert.equal(await visitsOf('Variant 2: https://a.example/'), onA);

  await nav(page, 'Overview').click();
  const tags = page.locator('.breakdown').filter({ hasText: 'Tags' });
  await tags.getByText('spring sale').waitFor();
  await nav(page, 'Links').click();
  await row('promo').waitFor();
});

test('the analytics say how many visits were counted without their details', async () => {
  const promo = await page.evaluate(async () => (await fetch('/api/v1/links/promo')).json());
  // What the origin's overflow writes when its recorder is full (origin tests: overflow::):
  // visits counted in the link's and the workspace's hour, without details.
  execFileSync('psql', [databaseUrl, '-Atq', '-v', 'ON_ERROR_STOP=1', '-c', `
    INSERT INTO link_stats_hourly (workspace_id, link_id, hour, clicks, qr_scans, bots, uniques,
                                   details_shed)
    SELECT workspace_id, id, date_trunc('hour', now()), 1234, 0, 0, 0, 1234 FROM links
    WHERE id = ${promo.id}
    ON CONFLICT (workspace_id, link_id, hour) DO UPDATE
    SET clicks = link_stats_hourly.clicks + 1234,
        details_shed = link_stats_hourly.details_shed + 1234;
    INSERT INTO workspace_stats_hourly (workspace_id, hour, clicks, qr_scans, bots, uniques, details_shed)
    SELECT workspace_id, date_trunc('hour', now()), 1234, 0, 0, 0, 1234 FROM links WHERE id = ${promo.id}
    ON CONFLICT (workspace_id, hour) DO UPDATE SET clicks = workspace_stats_hourly.clicks + 1234,
        details_shed = workspace_stats_hourly.details_shed + 1234;`]);
  const note = /1,234 visits in this range were counted while the server was too busy to store their details/;
  await page.goto(`${originUrl}/admin/links/promo?id=${promo.id}`);
  await page.getByRole('note').filter({ hasText: note }).waitFor();
  await nav(page, 'Overview').click();
  await page.getByRole('note').filter({ hasText: note }).waitFor();
  await nav(page, 'Links').click();
  await row('promo').waitFor();
});

test('deleting a link asks first, then the short link is gone', async () => {
  await row('launch').getByRole('button', { name: 'Delete launch' }).click();
  const dialog = page.getByRole('alertdialog');
  await dialog.getByText('will answer 404').waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  await row('launch').waitFor();

  await row('launch').getByRole('button', { name: 'Delete launch' }).click();
  await page.getByRole('alertdialog').getByRole('button', { name: 'Delete link' }).click();
  await row('launch').waitFor({ state: 'detached' });
  const visit = await fetch(`${originUrl}/launch`, { redirect: 'manual' });
  assert.equal(visit.status, 404);
});

// Workspaces: members and invitations, roles, API keys, the audit log, the profile, and
// switching between workspaces (#12). The owner is `page` (the first admin); others get
// their own browser contexts in the same browser.

const MEMBER_PASSWORD = crypto.randomBytes(12).toString('hex');
const NEW_PASSWORD = crypto.randomBytes(12).toString('hex');
let member; // The invited editor's page, in its own context.

function nav(target, name) {
  return target.getByRole('navigation', { name: 'Main' }).getByRole('link', { name, exact: true });
}

async function newPage() {
  const ctx = await browser.newContext({ viewport: DESKTOP, colorScheme: 'light', locale: 'en-GB', timezoneId: 'Europe/Berlin' });
  ctx.setDefaultTimeout(30_000);
  const opened = await ctx.newPage();
  opened.on('pageerror', (err) => console.error('page error:', err));
  return opened;
}

async function signIn(target, username, password) {
  await target.getByLabel('Username', { exact: true }).fill(username);
  await target.getByLabel('Password', { exact: true }).fill(password);
  await target.getByRole('button', { name: 'Sign in', exact: true }).click();
}

/** Makes an invitation on the members page; returns its link (shown once). */
async function invite(role) {
  await nav(page, 'Members').click();
  await page.getByRole('heading', { name: 'Invitations' }).waitFor();
  await page.getByLabel('Role for the invited person').selectOption(role);
  await page.getByRole('button', { name: 'Invite', exact: true }).click();
  const field = page.getByRole('textbox', { name: `Invitation link for a new ${role}` });
  await field.waitFor();
  const url = await field.inputValue();
  assert.match(url, new RegExp(`^${originUrl}/admin/invite#.{20,}`));
  return url;
}

async function switchTo(target, name) {
  await target.getByLabel('Workspace', { exact: true }).selectOption({ label: name });
  await target.getByRole('status').filter({ hasText: `Now working in “${name}”` }).waitFor();
}

test('the owner invites an editor, who signs up through the link and sees the links but not the members or keys', async () => {
  await nav(page, 'Members').click();
  await page.locator('#members-table tr[data-user="admin"]').waitFor();
  assert.equal(await page.getByLabel('Role of admin').inputValue(), 'owner');
  const url = await invite('editor');
  await page.getByRole('button', { name: 'Copy', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'Copied' }).waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), url);
  await page.locator('#invitations-table tbody tr').filter({ hasText: 'Editor' }).waitFor();
  await screenshot('members');
  // Shown once: gone after Done, and not on the page after a reload.
  await page.getByRole('button', { name: 'Done' }).click();
  await page.getByRole('textbox', { name: 'Invitation link for a new editor' }).waitFor({ state: 'detached' });
  await page.reload();
  await page.locator('#invitations-table tbody tr').first().waitFor();
  assert.equal(await page.getByText(url).count(), 0);
  assert.equal((await page.content()).includes(url.split('#')[1]), false);

  member = await newPage();
  await member.goto(url);
  await member.getByRole('heading', { name: 'Join Default as editor' }).waitFor();
  await screenshot('invite', member);
  await member.getByLabel('Username', { exact: true }).fill('erin');
  await member.getByLabel('Password', { exact: true }).fill(MEMBER_PASSWORD);
  await member.getByRole('button', { name: 'Sign up and join' }).click();
  await member.getByRole('heading', { name: 'Links' }).waitFor();
  await member.locator('tr[data-code="careers"]').waitFor();
  await member.getByRole('button', { name: 'New link' }).waitFor();
  assert.equal(await nav(member, 'Members').count(), 0);
  assert.equal(await nav(member, 'API keys').count(), 0);
  assert.equal(await nav(member, 'Audit log').count(), 0);
  await member.goto(`${originUrl}/admin/keys`);
  // The page keeps its title and says which role does not allow it.
  await member.getByRole('heading', { name: 'API keys', level: 1 }).waitFor();
  await member.getByRole('alert').filter({ hasText: 'Your role in this workspace (Editor) does not allow managing API keys' }).waitFor();
  // The API refuses too, whatever the page shows.
  const status = await member.evaluate(async () => (await fetch('/api/v1/keys')).status);
  assert.equal(status, 403);
  // The invitation is used up.
  await page.reload();
  await page.getByText('No open invitations.').waitFor();
  const again = await fetch(`${originUrl}/api/v1/invitations/lookup`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ token: url.split('#')[1] }),
  });
  assert.equal(again.status, 404);
});

test('revoking invitations keeps the keyboard focus in their list', async () => {
  for (let i = 0; i < 2; i += 1) {
    await invite('viewer');
    await page.getByRole('button', { name: 'Done' }).click();
  }
  const revoke = page.getByRole('button', { name: 'Revoke the invitation for a new viewer' });
  await page.waitForFunction(() => document.querySelectorAll('#invitations-table tbody tr').length === 2);
  await revoke.first().focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => document.querySelectorAll('#invitations-table tbody tr').length === 1);
  await page.getByRole('status').filter({ hasText: 'Revoked the invitation' }).waitFor();
  // The next row's button took the place of the one that went, and the focus.
  await page.waitForFunction(() => document.activeElement?.matches('#invitations-table button.danger'));
  await page.keyboard.press('Enter');
  await page.getByText('No open invitations.').waitFor();
  await page.waitForFunction(() => document.activeElement?.id === 'invitations-title');
});

test('the owner makes the member a viewer: their New link button is gone after a reload', async () => {
  await page.locator('#members-table tr[data-user="erin"]').waitFor();
  // Choosing in the menu changes nothing (a closed menu's arrow keys choose at each step):
  // the button does.
  const change = page.getByRole('button', { name: 'Apply the chosen role to erin' });
  assert.equal(await change.isDisabled(), true);
  await page.getByLabel('Role of erin').selectOption('viewer');
  const roles = async () => page.evaluate(async () => Object.fromEntries((await (await fetch('/api/v1/members')).json()).map((m) => [m.username, m.role])));
  assert.equal((await roles()).erin, 'editor');
  await change.click();
  await page.getByRole('status').filter({ hasText: 'erin is now viewer.' }).waitFor();
  assert.equal((await roles()).erin, 'viewer');
  // The only owner making themselves an admin is refused, and the choice is undone.
  await page.getByLabel('Role of admin').selectOption('admin');
  await page.getByRole('button', { name: 'Apply the chosen role to admin' }).click();
  await page.getByRole('status').filter({ hasText: 'at least one owner' }).waitFor();
  assert.equal(await page.getByLabel('Role of admin').inputValue(), 'owner');
  assert.equal(await page.getByRole('button', { name: 'Apply the chosen role to admin' }).isDisabled(), true);
  await member.goto(`${originUrl}/admin/links`);
  await member.locator('tr[data-code="careers"]').waitFor();
  assert.equal(await member.getByRole('button', { name: 'New link' }).count(), 0);
  assert.equal(await member.getByRole('button', { name: 'Edit careers' }).count(), 0);
  assert.equal(await member.getByRole('button', { name: 'Delete careers' }).count(), 0);
  // A write the page no longer offers is refused with the server's message.
  const refused = await member.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/links', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ destination: 'https://example.com/viewer' }),
    });
    return response.status;
  });
  assert.equal(refused, 403);
});

test('in Korean: the sign-in page (language picked there) and the members page; then back to English', async () => {
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  // Signed out there is no header: the sign-in page has its own picker.
  await page.getByLabel('Language').selectOption('ko');
  await page.getByRole('heading', { name: 'kurz — 로그인' }).waitFor();
  await page.getByLabel('사용자 이름', { exact: true }).fill('admin');
  await page.getByLabel('비밀번호', { exact: true }).fill('not-the-password');
  await page.getByRole('button', { name: '로그인', exact: true }).click();
  await page.getByRole('alert').filter({ hasText: '사용자 이름 또는 비밀번호가 올바르지 않습니다.' }).waitFor();
  assert.equal(await page.getByLabel('비밀번호', { exact: true }).getAttribute('aria-invalid'), 'true');
  await page.getByLabel('비밀번호', { exact: true }).fill(PASSWORD);
  await page.getByRole('button', { name: '로그인', exact: true }).click();

  await page.getByRole('navigation', { name: '주 메뉴' }).getByRole('link', { name: '멤버', exact: true }).click();
  await page.getByRole('heading', { name: '멤버', exact: true }).waitFor();
  await page.getByRole('columnheader', { name: '역할' }).first().waitFor();
  const erin = page.getByLabel('erin의 역할');
  assert.equal(await erin.inputValue(), 'viewer');
  assert.equal(await erin.evaluate((s) => s.selectedOptions[0].textContent), '보기 전용');
  await page.getByLabel('초대받은 사람의 역할').waitFor();
  await page.getByText('대기 중인 초대가 없습니다.').waitFor();
  await screenshot('members-ko');

  await page.getByLabel('언어').selectOption('en');
  await page.getByRole('heading', { name: 'Members', exact: true }).waitFor();
  await page.getByLabel('Role of erin').waitFor();
  await nav(page, 'Members').waitFor();
});

test('an API key with links:read: its secret is shown once, it reads links, is refused writes, and fails once revoked', async () => {
  await nav(page, 'API keys').click();
  await page.getByRole('button', { name: 'New key' }).click();
  await page.getByLabel('Key name').fill('ci-reader');
  assert.equal(await page.getByLabel('links:read').isChecked(), true);
  assert.equal(await page.getByLabel('links:write').isChecked(), false);
  await page.getByRole('button', { name: 'Create key' }).click();
  const field = page.getByRole('textbox', { name: 'Secret of the key “ci-reader”' });
  await field.waitFor();
  const key = await field.inputValue();
  assert.match(key, /^kurz_[0-9a-f]{48}$/);
  await page.locator('#keys-table tr[data-key="ci-reader"]').filter({ hasText: 'links:read' }).waitFor();

  const auth = { authorization: `Bearer ${key}` };
  const read = await fetch(`${originUrl}/api/v1/links`, { headers: auth });
  assert.equal(read.status, 200);
  assert.ok((await read.json()).links.some((link) => link.code === 'careers'));
  const write = await fetch(`${originUrl}/api/v1/links`, {
    method: 'POST',
    headers: { ...auth, 'content-type': 'application/json' },
    body: JSON.stringify({ destination: 'https://example.com/by-key' }),
  });
  assert.equal(write.status, 403);

  await page.getByRole('button', { name: 'Done' }).click();
  // The form that opened it is gone: the focus goes to the page's heading, not nowhere.
  await page.waitForFunction(() => document.activeElement?.id === 'keys-title');
  await page.reload();
  const keyRow = page.locator('#keys-table tr[data-key="ci-reader"]');
  await keyRow.waitFor();
  assert.equal((await page.content()).includes(key), false, 'the secret is not shown again');
  assert.doesNotMatch(await keyRow.locator('td').nth(5).textContent(), /never/, 'last used');
  await screenshot('keys');

  await keyRow.getByRole('button', { name: 'Revoke ci-reader' }).click();
  const dialog = page.getByRole('alertdialog');
  await dialog.getByText('refused (401)').waitFor();
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Cancel');
  await dialog.getByRole('button', { name: 'Revoke key' }).click();
  await keyRow.waitFor({ state: 'detached' });
  const revoked = await fetch(`${originUrl}/api/v1/links`, { headers: auth });
  assert.equal(revoked.status, 401);
});

test('the audit log names who created links, keys and joined, and filters by action, actor and link', async () => {
  await nav(page, 'Audit log').click();
  const rows = page.locator('#audit-table tbody tr');
  await page.locator('#audit-table tr[data-action="link.created"][data-actor="admin"]').first().waitFor();
  await page.locator('#audit-table tr[data-action="key.created"][data-actor="admin"]').waitFor();
  await page.locator('#audit-table tr[data-action="member.joined"][data-actor="erin"]').waitFor();
  await page.locator('#audit-table tr[data-action="member.role_changed"]').filter({ hasText: 'viewer' }).waitFor();
  await screenshot('audit');

  // More than a page (50 entries): "Load more" follows the cursor.
  const made = await page.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const headers = { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token };
    for (let i = 0; i < 26; i++) {
      const created = await (await fetch('/api/v1/invitations', { method: 'POST', headers, body: '{"role":"viewer"}' })).json();
      await fetch(`/api/v1/invitations/${created.invitation.id}`, { method: 'DELETE', headers });
    }
    return true;
  });
  assert.ok(made);
  await page.reload();
  await eventually('a first page of 50', async () => (await rows.count()) === 50 || (await rows.count()));
  await page.getByRole('button', { name: 'Load more' }).click();
  await eventually('the next page appended', async () => (await rows.count()) > 50 || (await rows.count()));
  await page.locator('#audit-table tr[data-action="member.joined"][data-actor="erin"]').waitFor();

  await page.getByLabel('Action').selectOption('key.created');
  await eventually('only key.created', async () => {
    const actions = await rows.evaluateAll((all) => all.map((r) => r.dataset.action));
    return (actions.length > 0 && actions.every((a) => a === 'key.created')) || actions;
  });
  await page.getByLabel('Action').selectOption('');
  await page.getByLabel('Actor').selectOption({ label: 'erin' });
  await eventually('only erin', async () => {
    const actors = await rows.evaluateAll((all) => all.map((r) => r.dataset.actor));
    return (actors.length > 0 && actors.every((a) => a === 'erin')) || actors;
  });
  await page.getByLabel('Actor').selectOption('');
  const careers = await page.evaluate(async () => (await fetch('/api/v1/links/careers')).json());
  await page.getByLabel('Link id').fill(String(careers.id));
  await page.getByRole('button', { name: 'Filter' }).click();
  await eventually('only the careers link', async () => {
    const targets = await rows.evaluateAll((all) => all.map((r) => r.children[3].textContent));
    return (targets.length > 0 && targets.every((t) => t === `link ${careers.id}`)) || targets;
  });
  await page.locator('#audit-table tr[data-action="link.created"]').getByText('https://example.com/jobs').waitFor();
});

test('the profile lists both sessions; signing out the other one sends that browser to the sign-in', async () => {
  const other = await newPage();
  await other.goto(`${originUrl}/admin`);
  await signIn(other, 'admin', PASSWORD);
  await other.getByRole('heading', { name: 'Overview' }).waitFor();

  await page.getByRole('link', { name: 'Your profile' }).click();
  const sessions = page.locator('#sessions-table tbody tr');
  await eventually('two sessions', async () => (await sessions.count()) === 2 || (await sessions.count()));
  await page.locator('#sessions-table tr[data-current="true"]').getByText('This browser').waitFor();
  await screenshot('profile');
  await page.locator('#sessions-table tr[data-current="false"]').getByRole('button', { name: /Sign out the session/ }).click();
  await page.getByRole('status').filter({ hasText: 'Signed out that session.' }).waitFor();
  await eventually('one session', async () => (await sessions.count()) === 1 || (await sessions.count()));
  // The row went with the button that had the focus: the list's heading has it, not nowhere.
  await page.waitForFunction(() => document.activeElement?.id === 'sessions-title');

  await other.reload();
  await other.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
  await other.context().close();
});

test('changing the password: a wrong current one is refused next to its field; afterwards the old one no longer signs in', async () => {
  // Another browser signed in: the new password ends its session, and the list shows it gone.
  const other = await newPage();
  await other.goto(`${originUrl}/admin`);
  await signIn(other, 'admin', PASSWORD);
  await other.getByRole('heading', { name: 'Overview' }).waitFor();
  await other.context().close();
  await page.reload();
  const sessions = page.locator('#sessions-table tbody tr');
  await eventually('two sessions', async () => (await sessions.count()) === 2 || (await sessions.count()));
  await page.getByLabel('Current password').fill('not-the-password');
  await page.getByLabel('New password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.locator('#current-password-error').filter({ hasText: 'wrong' }).waitFor();
  assert.equal(await page.getByLabel('Current password').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByLabel('New password').getAttribute('aria-invalid'), 'false');
  // Told at its field only, not again above the form.
  assert.equal(await page.locator('form[aria-labelledby="password-title"] p.error').textContent(), '');

  await page.getByLabel('Current password').fill(PASSWORD);
  await page.getByLabel('New password').fill(NEW_PASSWORD);
  await page.getByRole('button', { name: 'Change password' }).click();
  await page.getByRole('status').filter({ hasText: 'Password changed.' }).waitFor();
  await eventually('one session', async () => (await sessions.count()) === 1 || (await sessions.count()));

  const signInWith = (password) => fetch(`${originUrl}/api/v1/session`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username: 'admin', password }),
  });
  assert.equal((await signInWith(PASSWORD)).status, 401);
  assert.equal((await signInWith(NEW_PASSWORD)).status, 200);
});

test('a second workspace has links of its own; switching back shows the first one’s again', async () => {
  await nav(page, 'Settings').click();
  await page.getByLabel('Name of the new workspace').fill('Marketing');
  await page.getByRole('button', { name: 'Create workspace' }).click();
  await page.getByRole('status').filter({ hasText: 'Created “Marketing”' }).waitFor();
  await page.getByLabel('Workspace', { exact: true }).locator('option', { hasText: 'Marketing' }).waitFor({ state: 'attached' });
  await screenshot('settings');

  await switchTo(page, 'Marketing');
  await nav(page, 'Links').click();
  await page.getByText('No links yet.').waitFor();
  assert.equal(await page.locator('tbody tr').count(), 0);
  // The owner of the new workspace may rename it.
  await nav(page, 'Settings').click();
  await page.getByLabel('Workspace name', { exact: true }).fill('Marketing team');
  await page.getByRole('button', { name: 'Rename' }).click();
  await page.getByLabel('Workspace', { exact: true }).locator('option', { hasText: 'Marketing team' }).waitFor({ state: 'attached' });
  // The new name reached the session, and the form is the same one: its message is still there.
  await page.getByRole('status').filter({ hasText: 'Renamed to “Marketing team”.' }).waitFor();
  assert.equal(await page.getByLabel('Workspace name', { exact: true }).inputValue(), 'Marketing team');

  // A message that follows another within its four seconds gets four of its own: the first
  // one's timer once took the second away, and a test waiting for it failed.
  await switchTo(page, 'Marketing team');
  await page.waitForTimeout(3000);
  await switchTo(page, 'Default');
  await page.waitForTimeout(1500);
  assert.equal(await page.getByRole('status').filter({ hasText: 'Now working in “Default”' }).count(), 1);
  await nav(page, 'Links').click();
  await row('careers').waitFor();
});

test('a tab still showing the old workspace is told it changed, and changes nothing', async () => {
  const tab = await context.newPage();
  tab.on('pageerror', (err) => console.error('page error:', err));
  await tab.goto(`${originUrl}/admin/links`);
  await tab.locator('tr[data-code="careers"]').waitFor();

  await switchTo(page, 'Marketing team');
  await page.getByText('No links yet.').waitFor();

  // The tab still shows Default's links; what it does now must not land in Marketing.
  await tab.getByRole('button', { name: 'New link' }).click();
  await tab.getByLabel('Destination URL').fill('https://example.com/wrong-place');
  await tab.getByLabel('Custom slug (optional)').fill('wrong-place');
  await tab.getByRole('button', { name: 'Create link' }).click();
  await tab.getByRole('status').filter({ hasText: 'switched in another tab' }).waitFor();
  await tab.getByText('No links yet.').waitFor();
  assert.equal(await tab.getByLabel('Workspace', { exact: true }).evaluate((s) => s.selectedOptions[0].textContent), 'Marketing team');
  const inMarketing = await page.evaluate(async () => (await fetch('/api/v1/links/wrong-place')).status);
  assert.equal(inMarketing, 404);
  await tab.close();

  await switchTo(page, 'Default');
  await row('careers').waitFor();
  const inDefault = await page.evaluate(async () => (await fetch('/api/v1/links/wrong-place')).status);
  assert.equal(inDefault, 404);
});

test('an export from a tab still showing the old workspace is refused, not the new workspace\'s links', async () => {
  const tab = await context.newPage();
  tab.on('pageerror', (err) => console.error('page error:', err));
  await tab.goto(`${originUrl}/admin/import`);
  const link = tab.getByRole('link', { name: 'Export JSON lines' });
  await link.waitFor();

  await switchTo(page, 'Marketing team');
  await page.getByText('No links yet.').waitFor();

  // A download carries no header: its URL names the workspace the tab shows.
  const href = await link.getAttribute('href');
  const answer = await tab.evaluate(async (url) => {
    const response = await fetch(url);
    return { status: response.status, body: await response.text() };
  }, href);
  assert.equal(answer.status, 409, answer.body);
  assert.equal(JSON.parse(answer.body).error.code, 'workspace_changed');
  await tab.close();
  await switchTo(page, 'Default');
  await row('careers').waitFor();
});

test('a tab on a link of the old workspace goes to the links of the new one, not to "deleted"', async () => {
  const tab = await context.newPage();
  tab.on('pageerror', (err) => console.error('page error:', err));
  await tab.goto(`${originUrl}/admin/links/careers`);
  await tab.getByRole('heading', { name: 'Analytics of careers' }).waitFor();

  await switchTo(page, 'Marketing team');
  await page.getByText('No links yet.').waitFor();

  // The tab's next refresh (every 5 s) meets the switch: it shows Marketing's links, and
  // says why, rather than that Default's link was deleted.
  await tab.getByRole('status').filter({ hasText: 'switched in another tab' }).waitFor({ timeout: 15_000 });
  await tab.getByText('No links yet.').waitFor();
  assert.equal(await tab.getByText('This link was deleted').count(), 0);
  assert.match(tab.url(), /\/admin\/links$/);
  await tab.close();
  await switchTo(page, 'Default');
  await row('careers').waitFor();
});

test('someone with an account signs in first from an invitation, then accepts it', async () => {
  await switchTo(page, 'Marketing team');
  const url = await invite('viewer');
  await page.getByRole('button', { name: 'Done' }).click();

  const invited = await newPage();
  await invited.goto(url);
  await invited.getByRole('heading', { name: 'Join Marketing team as viewer' }).waitFor();
  await invited.getByRole('button', { name: 'Sign in first' }).click();
  await signIn(invited, 'erin', MEMBER_PASSWORD);
  await invited.getByRole('heading', { name: 'Join Marketing team as viewer' }).waitFor();
  await invited.getByRole('button', { name: 'Accept the invitation' }).click();
  await invited.getByRole('heading', { name: 'Links' }).waitFor();
  await invited.getByText('No links yet.').waitFor();
  assert.equal(await invited.getByLabel('Workspace', { exact: true }).evaluate((s) => s.selectedOptions[0].textContent), 'Marketing team');
  // erin owns no workspace, so may make none (the origin refuses): nothing offers it.
  assert.deepEqual(await invited.getByLabel('Workspace', { exact: true }).locator('option').allTextContents(), ['Default', 'Marketing team']);
  await nav(invited, 'Settings').click();
  await invited.getByRole('heading', { name: 'Settings' }).waitFor();
  assert.equal(await invited.getByLabel('Name of the new workspace').count(), 0);

  // erin leaves Marketing team (asked first): the session moves to the workspace left to her.
  await invited.getByRole('button', { name: 'Leave workspace' }).click();
  await invited.getByRole('alertdialog').getByRole('button', { name: 'Leave', exact: true }).click();
  await invited.getByRole('heading', { name: 'Overview' }).waitFor();
  await invited.getByLabel('Workspace', { exact: true }).locator('option', { hasText: 'Marketing team' }).waitFor({ state: 'detached' });
  assert.deepEqual(await invited.getByLabel('Workspace', { exact: true }).locator('option').allTextContents(), ['Default']);
  const left = await invited.evaluate(async () => (await fetch('/api/v1/session')).json());
  assert.equal(left.workspace.name, 'Default');
  await invited.context().close();

  // Its only owner may not leave it: the dialog says why, and nothing changes.
  await nav(page, 'Settings').click();
  await page.getByRole('button', { name: 'Leave workspace' }).click();
  const dialog = page.getByRole('alertdialog');
  await dialog.getByRole('button', { name: 'Leave', exact: true }).click();
  await dialog.getByText('must keep at least one owner').waitFor();
  await dialog.getByRole('button', { name: 'Cancel' }).click();
  assert.equal(await page.getByLabel('Workspace', { exact: true }).evaluate((s) => s.selectedOptions[0].textContent), 'Marketing team');

  await switchTo(page, 'Default');
  await nav(page, 'Links').click();
  await row('careers').waitFor();
});

test('abuse: blocking a domain disables a link to it; a report sent through /report shows for the admins', async () => {
  await nav(page, 'Links').click();
  await page.getByRole('button', { name: 'New link' }).click();
  await page.getByLabel('Destination URL').fill('https://login.blocked.example/account');
  await page.getByLabel('Custom slug (optional)').fill('lure');
  await page.getByRole('button', { name: 'Create link' }).click();
  await row('lure').waitFor();
  assert.equal(await row('lure').locator('.badge.off').count(), 0);

  await nav(page, 'Abuse').click();
  await page.getByRole('heading', { name: 'Blocked destinations' }).waitFor();
  // A rule that is not one is refused at its field.
  await page.getByLabel('Domain or pattern').fill('good.example@evil.example');
  await page.getByRole('button', { name: 'Block', exact: true }).click();
  await page.locator('#block-rule-error').filter({ hasText: 'user name' }).waitFor();
  assert.equal(await page.getByLabel('Domain or pattern').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.getByLabel('Reason').getAttribute('aria-invalid'), 'false');
  assert.equal(await page.locator('#block-form p.error').textContent(), '');
  await page.getByLabel('Domain or pattern').fill('Blocked.Example.');
  await page.getByLabel('Reason').fill('phishing kit');
  // The reports' filter is not reset when the blocklist is drawn again.
  await page.locator('#report-status').selectOption('resolved');
  await page.getByRole('button', { name: 'Block', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'Blocked blocked.example: 1 link(s) disabled.' }).waitFor();
  const entry = page.locator('#blocklist-table tr[data-rule="blocked.example"]');
  assert.equal((await entry.locator('.links-disabled').textContent()).trim(), '1');
  assert.equal(await page.locator('#report-status').inputValue(), 'resolved');
  await page.locator('#report-status').selectOption('open');

  await nav(page, 'Links').click();
  await row('lure').locator('.badge.off').waitFor();
  // Switching it on again is refused, at the destination.
  await row('lure').getByRole('switch', { name: 'Enabled: lure' }).click();
  await page.getByRole('status').filter({ hasText: 'blocklist' }).waitFor();
  const lure = await page.evaluate(async () => (await fetch('/api/v1/links/lure')).json());
  assert.equal(lure.disabled, true);

  // A visitor reports it through the public form, without signing in.
  const visitor = await newPage();
  await visitor.goto(`${originUrl}/report`);
  await visitor.getByLabel('Short URL or code').fill(`${originUrl}/careers`);
  await visitor.getByLabel('What is wrong').selectOption('spam');
  await visitor.getByLabel('Details', { exact: true }).fill('sent to me 40 times today');
  await visitor.getByRole('button', { name: 'Send report' }).click();
  await visitor.getByRole('heading', { name: 'Thank you' }).waitFor();
  await visitor.context().close();

  await nav(page, 'Abuse').click();
  const report = page.locator('#reports-table tbody tr').filter({ hasText: 'sent to me 40 times today' });
  await report.waitFor();
  assert.match(await report.textContent(), /Spam/);
  await report.getByRole('button', { name: 'Resolve and disable link' }).click();
  await page.getByRole('status').filter({ hasText: 'Resolved, and the link is disabled.' }).waitFor();
  await page.getByText('No reports.').waitFor();
  // Its row went with the button that had the focus: the list's heading has it, not nowhere.
  await page.waitForFunction(() => document.activeElement?.id === 'reports-title');
  await screenshot('abuse');
  const careers = await page.evaluate(async () => (await fetch('/api/v1/links/careers')).json());
  assert.equal(careers.disabled, true);

  // Taken down: switching it on again is refused until the operator lifts the takedown.
  await nav(page, 'Links').click();
  await row('careers').getByRole('switch', { name: 'Enabled: careers' }).click();
  await page.getByRole('status').filter({ hasText: 'lifts the takedown' }).waitFor();
  await nav(page, 'Abuse').click();
  await page.locator('#report-status').selectOption('resolved');
  const resolved = page.locator('#reports-table tbody tr').filter({ hasText: 'sent to me 40 times today' });
  assert.match(await resolved.locator('.goes-to').textContent(), /\(taken down\)$/);
  await resolved.getByRole('button', { name: 'Lift takedown' }).click();
  await page.getByRole('status').filter({ hasText: 'Takedown lifted' }).waitFor();
  await resolved.getByRole('button', { name: 'Lift takedown' }).waitFor({ state: 'detached' });
  assert.match(await resolved.locator('.goes-to').textContent(), /\(disabled\)$/);
  await page.locator('#report-status').selectOption('open');
  await nav(page, 'Links').click();
  await row('careers').getByRole('switch', { name: 'Enabled: careers' }).click();
  await row('careers').locator('.badge.off').waitFor({ state: 'detached' });

  // Fifty newer resolved reports fill the first page: the one above is on the next.
  execFileSync('psql', [databaseUrl, '-Atq', '-v', 'ON_ERROR_STOP=1', '-c',
    `INSERT INTO abuse_reports (reported, category, details, reporter, resolved_at, resolved_by)
     SELECT 'filler', 'spam', 'filler report ' || n, '\\x00', now(), 'test' FROM generate_series(1, 50) n`]);
  await nav(page, 'Abuse').click();
  await page.locator('#report-status').selectOption('resolved');
  const reports = page.locator('#reports-table tbody tr');
  const pager = page.getByRole('navigation', { name: 'Pages of reports' });
  await reports.filter({ hasText: 'filler report 50' }).waitFor();
  assert.equal(await reports.count(), 50);
  assert.equal(await resolved.count(), 0);
  assert.equal(await pager.getByRole('button', { name: 'Newest' }).isDisabled(), true);
  await pager.getByRole('button', { name: 'Older' }).click();
  await resolved.waitFor();
  assert.equal(await reports.filter({ hasText: 'filler report' }).count(), 0);
  assert.equal(await pager.getByRole('button', { name: 'Older' }).isDisabled(), true);
  await pager.getByRole('button', { name: 'Newest' }).click();
  await reports.filter({ hasText: 'filler report 50' }).waitFor();
  // Another status starts from its newest page.
  await pager.getByRole('button', { name: 'Older' }).click();
  await resolved.waitFor();
  await page.locator('#report-status').selectOption('open');
  await page.getByText('No reports.').waitFor();
  await page.locator('#report-status').selectOption('resolved');
  await reports.filter({ hasText: 'filler report 50' }).waitFor();
  await page.locator('#report-status').selectOption('open');
});

test('the API reference at /api/docs lists the operations and its "try it" calls the API without the session', async () => {
  const docs = await context.newPage();
  const blocked = [];
  docs.on('console', (message) => {
    if (/Content Security Policy|Refused to/.test(message.text())) blocked.push(message.text());
  });
  await docs.goto(`${originUrl}/api/docs`);
  const list = docs.locator('details.op').filter({ has: docs.locator('summary', { hasText: /^get \/api\/v1\/links / }) });
  await list.first().waitFor();
  assert.ok((await docs.locator('details.op').count()) >= 30, 'every operation is listed');
  await list.first().locator('summary').first().click();
  await list.first().getByText('Try it').click();
  await list.first().getByRole('button', { name: 'Send' }).click();
  // The page never sends the dashboard's cookie: without a key the API says 401.
  await list.first().locator('pre').filter({ hasText: /^401/ }).waitFor();
  assert.deepEqual(blocked, [], 'the page runs under its policy');
  await docs.close();
});

// Import and export (#15, #17): a file read by the origin, a dry run, the import with its
// progress, the failed rows as CSV, the warnings; the export as a download with the session.

/** Uploads `text` as `name` on the import page and runs the dry run. */
async function dryRun(name, text) {
  await nav(page, 'Import').click();
  await page.locator('#import-file').setInputFiles({ name, mimeType: 'text/plain', buffer: Buffer.from(text) });
  await page.getByRole('button', { name: 'Dry run' }).click();
  return page.locator('#import-summary');
}

/** Clicks `button` and returns the text of the file it downloads, and its suggested name. */
async function download(button) {
  const [file] = await Promise.all([page.waitForEvent('download'), button.click()]);
  return { name: file.suggestedFilename(), text: fs.readFileSync(await file.path(), 'utf8') };
}

test('import: a plain CSV with a bad row; the dry run shows it and writes nothing, the import creates the rest, the errors download as CSV', async () => {
  const csv = [
    'destination,code,tags',
    'https://example.com/imported/one,imp-one,imported',
    'https://example.com/imported/two,imp-two,imported',
    'not a url,imp-bad,imported',
    'https://example.com/imported/three,imp-three,',
  ].join('\n');
  const summary = await dryRun('links.csv', csv);
  await summary.getByRole('status').filter({ hasText: 'Dry run: would create 3 links; 1 row has errors.' }).waitFor();
  // The origin recognised it from the header, and says so.
  assert.equal(await page.getByLabel('Format').inputValue(), 'csv', 'detected from the header');
  const bad = page.locator('#import-errors tbody tr');
  assert.equal(await bad.count(), 1);
  assert.match(await bad.first().textContent(), /^4imp-bad.*destination/);
  const before = await page.evaluate(async () => (await fetch('/api/v1/links/imp-one')).status);
  assert.equal(before, 404, 'a dry run writes nothing');

  await summary.getByRole('button', { name: 'Import 3 links' }).click();
  await summary.getByRole('status').filter({ hasText: 'Imported 3 links; 1 row failed.' }).waitFor();
  const progress = page.getByRole('progressbar', { name: 'Import progress' });
  assert.equal(await progress.getAttribute('value'), await progress.getAttribute('max'), 'the bar reaches the end');
  assert.equal(await progress.getAttribute('value'), '3');
  await screenshot('import');

  const errors = await download(summary.getByRole('button', { name: 'Download errors (CSV)' }));
  assert.equal(errors.name, 'import-errors.csv');
  const lines = errors.text.trim().split(/\r?\n/);
  assert.equal(lines[0], 'line,source,field,message');
  assert.equal(lines.length, 2, errors.text);
  assert.match(lines[1], /^4,imp-bad,destination,/);

  await summary.getByRole('link', { name: 'See the links' }).click();
  for (const code of ['imp-one', 'imp-two', 'imp-three']) await row(code).waitFor();
});

test('import: a chunk sent again after the workspace was switched goes to the workspace the import began in, or nowhere', async () => {
  const workspace = page.getByLabel('Workspace', { exact: true });
  const began = await workspace.evaluate((s) => s.selectedOptions[0].textContent);
  const other = began === 'Default' ? 'Marketing team' : 'Default';
  const summary = await dryRun('pinned.csv', 'destination,code\nhttps://example.com/pinned,pinned-one');
  await summary.getByRole('status').filter({ hasText: 'Dry run: would create 1 link' }).waitFor();
  // The chunk is refused once (503 busy), its answer held until the person switched
  // workspace: the dashboard then waits a second, and would send it again.
  const sent = [];
  let refuse;
  const refusing = new Promise((resolve) => { refuse = resolve; });
  await page.route('**/api/v1/links/bulk', async (route) => {
    sent.push(route.request().headers()['kurz-workspace']);
    if (sent.length === 1) {
      await refusing;
      await route.fulfill({
        status: 503,
        contentType: 'application/json',
        headers: { 'retry-after': '1' },
        body: JSON.stringify({ error: { code: 'busy', message: 'busy' } }),
      });
    } else {
      await route.continue();
    }
  });
  await summary.getByRole('button', { name: 'Import 1 link' }).click();
  await eventually('the refused chunk', async () => sent.length === 1 || sent.length);
  await switchTo(page, other);
  refuse();
  await page.waitForTimeout(4000);
  await page.unroute('**/api/v1/links/bulk');
  assert.ok(sent.every((id) => id === sent[0]), `every chunk names the first workspace: ${sent}`);
  assert.equal(await page.evaluate(async () => (await fetch('/api/v1/links/pinned-one')).status), 404, `not made in ${other}`);
  await switchTo(page, began);
});

test('import: a Shlink API export keeps codes, titles, dates and click totals; a code taken is that row\'s error', async () => {
  const shlink = {
    shortUrls: {
      data: [
        {
          shortCode: 'shl-docs', shortUrl: 'https://s.test/shl-docs', longUrl: 'https://example.com/docs',
          dateCreated: '2023-05-04T10:20:30+02:00', visitsSummary: { total: 1234, nonBots: 1200, bots: 34 },
          tags: ['docs'], meta: { validSince: null, validUntil: null, maxVisits: 5000 }, domain: null, title: 'Our docs',
          crawlable: false, forwardQuery: true,
        },
        {
          shortCode: 'imp-one', shortUrl: 'https://s.test/imp-one', longUrl: 'https://example.com/taken',
          dateCreated: '2023-05-04T10:20:30+02:00', visitsSummary: { total: 0, nonBots: 0, bots: 0 },
          tags: [], meta: { validSince: null, validUntil: null, maxVisits: null }, domain: null, title: null,
          crawlable: false, forwardQuery: true,
        },
      ],
      pagination: { currentPage: 1, pagesCount: 1, itemsPerPage: 10, itemsInCurrentPage: 2, totalItems: 2 },
    },
  };
  const summary = await dryRun('short-urls.json', JSON.stringify(shlink));
  // The code already taken is only known to the origin: the dry run asks it.
  await summary.getByRole('status').filter({ hasText: 'Dry run: would create 1 link; 1 row has errors.' }).waitFor();
  assert.equal(await page.getByLabel('Format').inputValue(), 'shlink-json');
  assert.match(await page.locator('#import-errors tbody tr').first().textContent(), /imp-one/);
  // What the link is imported without is said before anything is written.
  const warnings = page.locator('#import-warnings tbody tr');
  assert.equal(await warnings.count(), 1);
  assert.equal(await warnings.first().getAttribute('data-line'), '1');
  assert.match(await warnings.first().textContent(), /shl-docs.*limit of 5000 visits is not imported/);
  await summary.getByRole('button', { name: 'Import 1 link' }).click();
  await summary.getByRole('status').filter({ hasText: 'Imported 1 link; 1 row failed.' }).waitFor();

  await summary.getByRole('link', { name: 'See the links' }).click();
  await row('shl-docs').locator('.link-title').filter({ hasText: 'Our docs' }).waitFor();
  await row('shl-docs').getByRole('button', { name: 'Edit shl-docs' }).click();
  assert.equal(await page.getByLabel('Title (optional)').inputValue(), 'Our docs');
  await page.getByRole('button', { name: 'Cancel' }).click();
  await row('shl-docs').getByRole('link', { name: 'Analytics of shl-docs' }).click();
  await page.locator('#imported-clicks').filter({ hasText: '1,234 clicks before import' }).waitFor();
  const link = await page.evaluate(async () => (await fetch('/api/v1/links/shl-docs')).json());
  assert.equal(link.created_at, '2023-05-04T08:20:30Z');
  assert.equal(link.imported_clicks, 1234);
});

test('import: a file the origin cannot recognise asks for its format, then is read as the one chosen', async () => {
  await dryRun('notes.txt', 'just some words\nand more');
  await page.locator('#import-format-unknown').waitFor();
  assert.equal(await page.locator('#import-summary').count(), 0);
  await page.getByLabel('Format').selectOption('csv');
  await page.getByRole('button', { name: 'Dry run' }).click();
  const summary = page.locator('#import-summary');
  await summary.getByRole('status').filter({ hasText: 'Dry run: would create 0 links; 2 rows have errors.' }).waitFor();
  assert.equal(await page.locator('#import-errors tbody tr').count(), 2);
});

test('import: a file of 2,501 rows goes in chunks of 1,000; an error in the last chunk names its line; Stop ends the import between chunks', async () => {
  const lines = ['destination,code'];
  for (let i = 1; i <= 2500; i++) lines.push(`https://example.com/bulk/${i},bulk-${i}`);
  // A code taken: only the origin can tell, in the third chunk.
  lines.push('https://example.com/bulk/taken,imp-two');
  const summary = await dryRun('many.csv', lines.join('\n'));
  await summary.getByRole('status').filter({ hasText: 'Dry run: would create 2,500 links; 1 row has errors.' }).waitFor();
  const taken = page.locator('#import-errors tbody tr');
  assert.equal(await taken.count(), 1);
  assert.equal(await taken.first().getAttribute('data-line'), '2502');
  assert.match(await taken.first().textContent(), /imp-two/);

  // The first chunk is held until Stop was clicked: the import must end after it.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const sent = [];
  await page.route('**/api/v1/links/bulk', async (route) => {
    const body = route.request().postDataJSON();
    sent.push(body.links.length);
    if (sent.length === 1) await held;
    await route.continue();
  });
  await summary.getByRole('button', { name: 'Import 2,500 links' }).click();
  await page.getByRole('progressbar', { name: 'Import progress' }).waitFor();
  await eventually('the first chunk is sent', async () => sent.length === 1 || sent.length);
  await page.getByRole('button', { name: 'Stop' }).click();
  release();
  await page.locator('#import-summary').getByRole('status').filter({ hasText: 'Imported 1,000 links; 0 rows failed.' }).waitFor();
  await page.locator('#import-summary').getByRole('alert').filter({ hasText: 'Stopped' }).waitFor();
  await page.unroute('**/api/v1/links/bulk');
  assert.deepEqual(sent, [1000]);
  const progress = page.getByRole('progressbar', { name: 'Import progress' });
  assert.equal(await progress.getAttribute('value'), '1000');
  assert.equal(await progress.getAttribute('max'), '2501');
  const statuses = await page.evaluate(async () => [
    (await fetch('/api/v1/links/bulk-1000')).status,
    (await fetch('/api/v1/links/bulk-1001')).status,
  ]);
  assert.deepEqual(statuses, [200, 404]);
});

test('import: leaving the page mid-run stops the import between chunks, and the page opened says how far it got', async () => {
  const lines = ['destination,code'];
  for (let i = 1; i <= 1500; i++) lines.push(`https://example.com/left/${i},left-${i}`);
  const summary = await dryRun('left.csv', lines.join('\n'));
  await summary.getByRole('status').filter({ hasText: 'Dry run: would create 1,500 links; 0 rows have errors.' }).waitFor();

  // The first chunk is held until the person has gone to the links page.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  const sent = [];
  await page.route('**/api/v1/links/bulk', async (route) => {
    sent.push(route.request().postDataJSON().links.length);
    if (sent.length === 1) await held;
    await route.continue();
  });
  await summary.getByRole('button', { name: 'Import 1,500 links' }).click();
  await eventually('the first chunk is sent', async () => sent.length === 1 || sent.length);
  await nav(page, 'Links').click();
  await page.getByRole('heading', { name: 'Links', exact: true }).waitFor();
  release();
  await page.getByRole('status').filter({ hasText: 'You left the import page, so the import stopped after 1,000 of 1,500 links (1,000 created)' }).waitFor();
  await page.unroute('**/api/v1/links/bulk');
  assert.deepEqual(sent, [1000]);
  const statuses = await page.evaluate(async () => [
    (await fetch('/api/v1/links/left-1000')).status,
    (await fetch('/api/v1/links/left-1001')).status,
  ]);
  assert.deepEqual(statuses, [200, 404]);
});

test('export: the JSON lines download has every link, with the session cookie alone', async () => {
  await nav(page, 'Import').click();
  const exported = await download(page.getByRole('link', { name: 'Export JSON lines' }));
  const links = exported.text.trim().split('\n').map((line) => JSON.parse(line));
  const docs = links.find((link) => link.code === 'shl-docs');
  assert.ok(docs, 'the imported link is exported');
  assert.equal(docs.title, 'Our docs');
  assert.ok(docs.clicks >= 1234, 'its clicks include the imported ones');
  for (const code of ['imp-one', 'imp-two', 'imp-three', 'careers']) {
    assert.ok(links.some((link) => link.code === code), code);
  }
  const csv = await download(page.getByRole('link', { name: 'Export CSV' }));
  assert.match(csv.text, /shl-docs/);
});

// Webhooks (#15): an endpoint on a receiver this test runs, its secret shown once, a test
// event delivered and signed, the delivery log.

test('webhooks: a new endpoint shows its secret once; a test event reaches the receiver signed, and the log says delivered', async () => {
  const received = [];
  const receiver = http.createServer((request, response) => {
    let body = '';
    request.on('data', (chunk) => { body += chunk; });
    request.on('end', () => {
      received.push({ url: request.url, headers: request.headers, body });
      // A receiver that wants no more deliveries answers 410 Gone.
      response.writeHead(request.url === '/gone' ? 410 : 204).end();
    });
  });
  // Not 127.0.0.1: that is the origin's own host, where no webhook may point.
  receiver.listen(0, '127.0.0.2');
  await once(receiver, 'listening');
  const hookUrl = `http://127.0.0.2:${receiver.address().port}/hooks/kurz`;
  try {
    await nav(page, 'Webhooks').click();
    await page.getByRole('button', { name: 'New endpoint' }).click();
    // No event chosen: refused at the events. The URL typed with its scheme in capitals, which
    // the origin normalises (the dashboard refused it before sending it).
    await page.getByLabel('Endpoint URL').fill(hookUrl.replace('http://', 'HTTP://'));
    await page.getByLabel('link.created').uncheck();
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    await page.locator('#webhook-events-error').filter({ hasText: /events/ }).waitFor();
    await page.getByLabel('link.created').check();
    await page.getByLabel('link.deleted').check();
    await page.getByLabel('Description (optional)').fill('the test receiver');
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    const field = page.getByRole('textbox', { name: `Signing secret of ${hookUrl}` });
    await field.waitFor();
    const secret = await field.inputValue();
    assert.match(secret, /^whsec_/);
    const hookRow = page.locator(`#webhooks-table tr[data-webhook="${hookUrl}"]`);
    await hookRow.filter({ hasText: 'link.created, link.deleted' }).waitFor();
    await page.getByRole('button', { name: 'Done' }).click();
    await page.reload();
    await hookRow.waitFor();
    assert.equal((await page.content()).includes(secret), false, 'the secret is not shown again');

    await hookRow.getByRole('button', { name: `Send test event to ${hookUrl}` }).click();
    await page.locator('#deliveries-table tr[data-state="delivered"]').filter({ hasText: 'webhook.test' }).waitFor({ timeout: 30_000 });
    await eventually('the receiver got the test event', async () => received.length >= 1 || received.length);
    const message = received.find((m) => JSON.parse(m.body).type === 'webhook.test') ?? received[0];
    // Standard Webhooks: base64 HMAC-SHA256 of "id.timestamp.body" under the secret's bytes.
    const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
    const expected = crypto.createHmac('sha256', key)
      .update(`${message.headers['webhook-id']}.${message.headers['webhook-timestamp']}.${message.body}`)
      .digest('base64');
    assert.ok(message.headers['webhook-signature'].split(' ').includes(`v1,${expected}`), 'the signature verifies');
    const delivered = page.locator('#deliveries-table tr[data-state="delivered"]').first();
    assert.match(await delivered.textContent(), /204/);
    await delivered.getByRole('button', { name: /^Attempts of delivery/ }).click();
    await page.locator('.attempt-list li').filter({ hasText: 'HTTP 204' }).first().waitFor();
    await screenshot('webhooks');

    // Redelivering sends the same message (same id) again.
    const before = received.length;
    await delivered.getByRole('button', { name: /^Redeliver/ }).click();
    await eventually('redelivered', async () => received.length > before || received.length, 30_000);
    assert.equal(received.at(-1).headers['webhook-id'], message.headers['webhook-id']);

    // Switched off and on; rotating asks first and shows the new secret once.
    await hookRow.getByRole('switch', { name: `Enabled: ${hookUrl}` }).click();
    await hookRow.locator('.badge.off').waitFor();
    await hookRow.getByRole('switch', { name: `Enabled: ${hookUrl}` }).click();
    await hookRow.locator('.badge.off').waitFor({ state: 'detached' });
    await hookRow.getByRole('button', { name: `Rotate secret of ${hookUrl}` }).click();
    await page.getByRole('alertdialog').getByRole('button', { name: 'Rotate secret' }).click();
    const rotated = await page.getByRole('textbox', { name: `Signing secret of ${hookUrl}` }).inputValue();
    assert.notEqual(rotated, secret);
    await page.getByRole('button', { name: 'Done' }).focus();
    await page.keyboard.press('Enter');
    // Done gives the focus back to the button that asked for the rotation, not to nowhere.
    await eventually('the focus back on Rotate', async () => {
      const label = await page.evaluate(() => document.activeElement.getAttribute('aria-label') ?? document.activeElement.tagName);
      return label === `Rotate secret of ${hookUrl}` || label;
    });

    // An endpoint answered 410 is switched off at once, and the page says why.
    const goneUrl = `http://127.0.0.2:${receiver.address().port}/gone`;
    await page.getByRole('button', { name: 'New endpoint' }).click();
    await page.getByLabel('Endpoint URL').fill(goneUrl);
    await page.getByRole('button', { name: 'Create endpoint' }).click();
    await page.getByRole('button', { name: 'Done' }).click();
    const goneRow = page.locator(`#webhooks-table tr[data-webhook="${goneUrl}"]`);
    await goneRow.getByRole('button', { name: `Send test event to ${goneUrl}` }).click();
    await eventually('the receiver said 410', async () => received.some((m) => m.url === '/gone') || received.length, 30_000);
    await eventually('switched off, with why', async () => {
      await page.reload();
      await goneRow.waitFor();
      return (await goneRow.locator('.disabled-reason').count()) === 1;
    }, 30_000);
    assert.match(await goneRow.locator('.disabled-reason').textContent(), /410 Gone/);
    await page.locator('#webhooks-disabled').filter({ hasText: '1 endpoint was switched off by kurz' }).waitFor();
    await screenshot('webhooks-disabled');
  } finally {
    receiver.close();
  }
});

test('a viewer sees no import and no webhooks: export only, and the API refuses them', async () => {
  await member.goto(`${originUrl}/admin/import`);
  await member.getByRole('link', { name: 'Export JSON lines' }).waitFor();
  assert.equal(await nav(member, 'Import').count(), 0);
  await nav(member, 'Export').waitFor();
  assert.equal(await member.locator('#import-file').count(), 0);
  assert.equal(await member.getByRole('button', { name: 'Dry run' }).count(), 0);
  assert.equal(await nav(member, 'Webhooks').count(), 0);
  await member.goto(`${originUrl}/admin/webhooks`);
  await member.getByRole('heading', { name: 'Webhooks', level: 1 }).waitFor();
  await member.getByRole('alert').filter({ hasText: '(Viewer) does not allow managing webhooks' }).waitFor();
  const statuses = await member.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const post = (url, body) => fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify(body),
    });
    return [
      (await post('/api/v1/links/bulk', { links: [{ destination: 'https://example.com/viewer' }], dry_run: true })).status,
      (await fetch('/api/v1/webhooks')).status,
      (await fetch('/api/v1/links/export?format=jsonl')).status,
    ];
  });
  assert.deepEqual(statuses, [403, 403, 200]);
});

// Accessibility (#17): every page in English and Korean, light and dark, checked by axe-core
// (no serious or critical violation), its screenshots written in the same visit; the keyboard
// alone reaches, opens and leaves a dialog.

/** A page of its own context in `lang`, signed in as `state` (a storageState) or not. */
async function pageIn(lang, state) {
  const ctx = await browser.newContext({
    viewport: DESKTOP,
    colorScheme: 'light',
    locale: lang === 'ko' ? 'ko-KR' : 'en-GB',
    timezoneId: lang === 'ko' ? 'Asia/Seoul' : 'Europe/Berlin',
    storageState: state,
  });
  ctx.setDefaultTimeout(30_000);
  await ctx.addCookies([{ name: LANGUAGE_COOKIE, value: lang, url: originUrl }]);
  const opened = await ctx.newPage();
  opened.on('pageerror', (err) => console.error(`page error (${lang}):`, err));
  return opened;
}

/** Waits until the dashboard shows a page (not "Loading…") in its fonts. */
async function settled(target) {
  await target.waitForFunction(() => {
    const main = document.querySelector('main');
    return main !== null && main.textContent.trim() !== '' && document.querySelector('.loading') === null;
  });
  await target.evaluate(() => document.fonts.ready.then(() => true));
}

/** The owner's session, without a language chosen (each walk sets its own). */
async function ownerState() {
  const state = await context.storageState();
  return { ...state, cookies: state.cookies.filter((c) => c.name !== LANGUAGE_COOKIE) };
}

test('accessibility: every page, in English and Korean, light and dark, has no serious or critical axe-core violation (screenshots of each)', async () => {
  const started = Date.now();
  const state = await ownerState();
  // What the pages show: a link with a week of clicks, an open invitation.
  const setup = await pageIn('en', state);
  await setup.goto(`${originUrl}/admin`);
  const { link, invitation } = await setup.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const headers = { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token };
    let link = (await (await fetch('/api/v1/links')).json()).links[0];
    if (!link) {
      const created = await fetch('/api/v1/links', { method: 'POST', headers, body: '{"destination":"https://example.com/a11y"}' });
      link = await created.json();
    }
    const invited = await fetch('/api/v1/invitations', { method: 'POST', headers, body: '{"role":"viewer"}' });
    return { link, invitation: await invited.json() };
  });
  await setup.context().close();
  await seedClicks(link.id, link.code, () => ({}), 120);

  const pages = [
    ['overview', '/admin'],
    ['links', '/admin/links'],
    ['link-stats', `/admin/links/${encodeURIComponent(link.code)}?id=${link.id}`],
    ['link-form', '/admin/links', async (target) => {
      await target.locator('.page-head button.primary').click();
      await target.locator('form.link-form').waitFor();
    }],
    ['import', '/admin/import'],
    ['members', '/admin/members'],
    ['keys', '/admin/keys'],
    ['webhooks', '/admin/webhooks'],
    ['audit', '/admin/audit'],
    ['abuse', '/admin/abuse'],
    ['settings', '/admin/settings'],
    ['profile', '/admin/profile'],
    ['not-found', '/admin/no-such-page'],
    // Without a session.
    ['sign-in', '/admin', null, 'visitor'],
    ['invite', new URL(invitation.url).pathname + new URL(invitation.url).hash, null, 'visitor'],
  ];
  for (const lang of ['en', 'ko']) {
    const owner = await pageIn(lang, state);
    const visitor = await pageIn(lang);
    for (const [name, address, open, who] of pages) {
      const target = who === 'visitor' ? visitor : owner;
      await target.goto(`${originUrl}${address}`);
      await settled(target);
      if (open) await open(target);
      assert.equal(await target.evaluate(() => document.documentElement.lang), lang, `${name}: <html lang>`);
      await screenshot(`pages/${name}`, target, { lang, check: true });
    }
    await owner.context().close();
    await visitor.context().close();
  }
  await page.evaluate(async (id) => {
    const session = await (await fetch('/api/v1/session')).json();
    await fetch(`/api/v1/invitations/${id}`, { method: 'DELETE', headers: { 'x-csrf-token': session.csrf_token } });
  }, invitation.invitation.id);
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  console.log(`accessibility walk: ${pages.length} pages × 2 languages × 2 schemes, ${a11y.checked} axe-core checks in all, ${seconds} s`);
  for (const [rule, where] of a11y.others) console.log(`  axe-core, not failing: ${rule} on ${where.length} check(s), e.g. ${where[0]}`);
  // Every check of the run so far counts: the other steps' screenshots were checked too.
  const report = a11yReport();
  assert.equal(report.length, 0, `serious or critical axe-core violations:\n${report.join('\n')}`);
});

test('keyboard alone: the skip link leads into the page; Tab reaches a delete button, Enter asks, Tab stays in the dialog, Escape closes it and the focus is back on the button', async () => {
  const target = await pageIn('en', await ownerState());
  await target.goto(`${originUrl}/admin/links`);
  await target.locator('tr[data-code] button.danger').first().waitFor();
  await settled(target);
  const focused = () => target.evaluate(() => {
    const el = document.activeElement;
    return {
      tag: el.tagName.toLowerCase(),
      cls: el.className,
      label: el.getAttribute('aria-label') ?? el.textContent.trim(),
      inMain: el.closest('main') !== null,
      inDialog: el.closest('[role="alertdialog"], [role="dialog"]') !== null,
      visible: (() => { const r = el.getBoundingClientRect(); return r.width > 0 && r.right > 0 && r.left < innerWidth; })(),
      outline: getComputedStyle(el).outlineStyle,
    };
  });

  // The first Tab shows the skip link; following it, the next Tab is inside the page's main part.
  await target.keyboard.press('Tab');
  let now = await focused();
  assert.equal(now.cls, 'skip', JSON.stringify(now));
  assert.ok(now.visible, 'the skip link shows when focused');
  assert.notEqual(now.outline, 'none', 'the focus is visible');
  await target.keyboard.press('Enter');
  await target.keyboard.press('Tab');
  now = await focused();
  assert.ok(now.inMain, `after the skip link: ${JSON.stringify(now)}`);

  // Tab on to the first row's delete button.
  const button = await target.locator('tr[data-code] button.danger').first().getAttribute('aria-label');
  for (let i = 0; i < 100 && (await focused()).label !== button; i++) await target.keyboard.press('Tab');
  now = await focused();
  assert.equal(now.label, button, 'Tab reaches the delete button');
  assert.notEqual(now.outline, 'none', 'the focus is visible');

  await target.keyboard.press('Enter');
  const dialog = target.getByRole('alertdialog');
  await dialog.waitFor();
  const inside = [];
  now = await focused();
  inside.push(now.label);
  assert.ok(now.inDialog, 'the focus starts in the dialog');
  // Round and round: Tab and Shift+Tab never leave it.
  for (const key of ['Tab', 'Tab', 'Tab', 'Shift+Tab', 'Shift+Tab', 'Shift+Tab']) {
    await target.keyboard.press(key);
    now = await focused();
    assert.ok(now.inDialog, `${key} stays in the dialog: ${JSON.stringify(now)}`);
    inside.push(now.label);
  }
  const controls = await dialog.locator('button:not(:disabled), a[href], input, select, textarea').count();
  assert.equal(new Set(inside).size, controls, `every control of the dialog is reached: ${inside}`);
  assert.equal(inside[0], inside[controls], 'Tab from the last control goes back to the first');
  await checkA11y(target, 'links: the delete dialog (en, light)', null, '[role="alertdialog"]');
  await target.emulateMedia({ colorScheme: 'dark' });
  await checkA11y(target, 'links: the delete dialog (en, dark)', COLOUR_RULES, '[role="alertdialog"]');
  await target.emulateMedia({ colorScheme: 'light' });

  await target.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  now = await focused();
  assert.equal(now.label, button, 'the focus is back on the button that opened the dialog');
  assert.deepEqual(a11yReport((where) => where.startsWith('links: the delete dialog')), []);
  await target.context().close();
});

test('keyboard alone: switching, editing and deleting a link leave the focus in its row, or on the next row, not on the page', async () => {
  const target = await pageIn('en', await ownerState());
  await target.goto(`${originUrl}/admin/links`);
  await settled(target);
  for (const code of ['focus-a', 'focus-b']) {
    const made = await target.evaluate(async (code) => {
      const session = await (await fetch('/api/v1/session')).json();
      const response = await fetch('/api/v1/links', {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
        body: JSON.stringify({ code, destination: `https://example.com/${code}` }),
      });
      return response.status;
    }, code);
    assert.equal(made, 201);
  }
  await target.reload();
  const inRow = (code, action) => target.locator(`tr[data-code="${code}"] [data-action="${action}"]`);
  await inRow('focus-a', 'toggle').waitFor();
  const focusIs = (what, code, action) => eventually(what, async () => {
    const now = await target.evaluate(() => ({
      code: document.activeElement.closest('tr')?.dataset.code ?? null,
      action: document.activeElement.dataset.action ?? null,
      heading: document.activeElement.id,
    }));
    return (now.code === code && now.action === action) || JSON.stringify(now);
  });

  // The switch, twice: the table is drawn again each time, the focus on the same switch.
  for (const [checked, notice] of [['false', 'Disabled focus-a'], ['true', 'Enabled focus-a.']]) {
    await inRow('focus-a', 'toggle').focus();
    await target.keyboard.press('Enter');
    await target.getByRole('status').filter({ hasText: notice }).waitFor();
    await eventually(`the switch ${checked}`, async () => (await inRow('focus-a', 'toggle').getAttribute('aria-checked')) === checked);
    await focusIs(`the focus on the switch (${checked})`, 'focus-a', 'toggle');
  }

  // Edit, then Cancel: back on Edit. Edit, then Save: on Edit again once the table is drawn.
  await inRow('focus-a', 'edit').focus();
  await target.keyboard.press('Enter');
  const form = target.locator('.link-form');
  // The form, drawn above the table, takes the focus to its first field.
  await eventually('the focus on the destination', async () => (await target.evaluate(() => document.activeElement?.id)) === 'destination');
  await form.getByRole('button', { name: 'Cancel' }).focus();
  await target.keyboard.press('Enter');
  await form.waitFor({ state: 'detached' });
  await focusIs('the focus back on Edit after Cancel', 'focus-a', 'edit');
  await target.keyboard.press('Enter');
  await form.getByLabel('Destination URL').fill('https://example.com/focus-a2');
  await form.getByRole('button', { name: 'Save changes' }).focus();
  await target.keyboard.press('Enter');
  await target.locator('tr[data-code="focus-a"]').getByText('https://example.com/focus-a2').waitFor();
  await focusIs('the focus back on Edit after Save', 'focus-a', 'edit');

  // Delete: the focus goes on to the Delete button of the row that was next to it.
  const rows = await target.locator('tbody tr').evaluateAll((all) => all.map((r) => r.dataset.code));
  const at = rows.indexOf('focus-a');
  const neighbour = rows[at + 1] ?? rows[at - 1];
  await inRow('focus-a', 'delete').focus();
  await target.keyboard.press('Enter');
  await target.getByRole('alertdialog').getByRole('button', { name: 'Delete link' }).click();
  await target.locator('tr[data-code="focus-a"]').waitFor({ state: 'detached' });
  await focusIs('the focus on the next row\'s Delete', neighbour, 'delete');
  await target.context().close();
});

test('keyboard alone: revoking the last key leaves the focus on the key before it, and the only one on the heading', async () => {
  const target = await pageIn('en', await ownerState());
  await target.goto(`${originUrl}/admin/keys`);
  await settled(target);
  const make = (name) => target.evaluate(async (name) => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/keys', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ name, scopes: ['links:read'] }),
    });
    return response.status;
  }, name);
  const revoke = (name) => target.locator(`#keys-table tr[data-key="${name}"] button.danger`);

  // The dialog cancelled while its revoke is on the way: the key is revoked all the same,
  // and the page goes on (the answer once found the dialog gone, and stopped the dashboard).
  assert.equal(await make('focus-cancel'), 201);
  await target.reload();
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await target.route('**/api/v1/keys/*', async (route) => {
    if (route.request().method() === 'DELETE') await held;
    await route.continue();
  });
  await revoke('focus-cancel').click();
  await target.getByRole('alertdialog').getByRole('button', { name: 'Revoke key' }).click();
  await target.getByRole('alertdialog').getByRole('button', { name: 'Cancel' }).click();
  await target.getByRole('alertdialog').waitFor({ state: 'detached' });
  release();
  await target.getByRole('status').filter({ hasText: 'focus-cancel' }).waitFor();
  await target.locator('#keys-table tr[data-key="focus-cancel"]').waitFor({ state: 'detached' });
  await target.unroute('**/api/v1/keys/*');

  assert.equal(await make('focus-new'), 201);
  await target.reload();
  await revoke('focus-new').waitFor();
  // Newest first: the first start's key ('initial') and any older are below the new one.
  const names = await target.locator('#keys-table tbody tr').evaluateAll((all) => all.map((r) => r.dataset.key));
  assert.ok(names.length >= 2 && names[0] === 'focus-new', names.join());
  const focused = () => target.evaluate(() => document.activeElement.getAttribute('aria-label') ?? document.activeElement.id);
  // Each time the last row's key: the focus goes to the row before it, and from the only one
  // to the heading. (No later step uses a key.)
  for (let at = names.length - 1; at >= 0; at--) {
    const then = at > 0 ? `Revoke ${names[at - 1]}` : 'keys-title';
    await revoke(names[at]).focus();
    await target.keyboard.press('Enter');
    await target.getByRole('alertdialog').getByRole('button', { name: 'Revoke key' }).focus();
    await target.keyboard.press('Enter');
    await target.locator(`#keys-table tr[data-key="${names[at]}"]`).waitFor({ state: 'detached' });
    await eventually(`the focus after revoking ${names[at]}`, async () => (await focused()) === then || (await focused()));
  }
  await target.getByText('No API keys').waitFor();
  await target.context().close();
});

test('a page whose part of the .wasm cannot be fetched says so and offers a reload, which shows it', async () => {
  const target = await pageIn('en', await ownerState());
  await target.goto(`${originUrl}/admin/links`);
  await target.locator('tr[data-code]').first().waitFor();
  // From now on every chunk fails, as after an update removed the build this page came from.
  const chunk = /\/admin\/assets\/app-[0-9a-f]+\/(split|chunk)_[^/]+\.wasm$/;
  let refused = 0;
  await target.route(chunk, (route) => { refused += 1; return route.abort(); });
  await target.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Members', exact: true }).click();
  const alert = target.getByRole('alert').filter({ hasText: 'could not be fetched' });
  await alert.waitFor();
  assert.ok(refused > 0, 'the members page asked for its chunks');
  await target.unroute(chunk);
  await alert.getByRole('button', { name: 'Reload' }).click();
  await target.getByRole('heading', { level: 1, name: 'Members' }).waitFor();
  await target.context().close();
});

test('a double click on Next goes one page on, not two', async () => {
  const target = await pageIn('en', await ownerState());
  await target.goto(`${originUrl}/admin/links`);
  await settled(target);
  const status = await target.evaluate(async () => {
    const session = await (await fetch('/api/v1/session')).json();
    const links = Array.from({ length: 60 }, (_, i) => ({ destination: `https://example.com/paged/${i}` }));
    const response = await fetch('/api/v1/links/bulk', {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ links }),
    });
    return response.status;
  });
  assert.equal(status, 200);
  await target.reload();
  await target.getByLabel('Per page').selectOption('25');
  const pager = target.getByRole('navigation', { name: 'Pages' });
  await pager.getByText(/^Page 1 · 25 shown/).waitFor();
  // The next page's answer held until both clicks are in, as on a slow network.
  let release;
  const held = new Promise((resolve) => { release = resolve; });
  await target.route(/\/api\/v1\/links\?/, async (route) => { await held; await route.continue(); });
  await pager.getByRole('button', { name: 'Next →' }).dblclick();
  release();
  await target.locator('tbody tr').first().waitFor();
  await target.waitForTimeout(500);
  assert.match(await pager.locator('span').textContent(), /^Page 2 · 25 shown/);
  await target.unroute(/\/api\/v1\/links\?/);

  // Another page size (a filter, an order) starts at its first page: Next on the table still
  // shown from before goes nowhere, its cursor being of the other list.
  await pager.getByRole('button', { name: '← Previous' }).click();
  await pager.getByText(/^Page 1 · 25 shown/).waitFor();
  let resume;
  const paused = new Promise((resolve) => { resume = resolve; });
  await target.route(/\/api\/v1\/links\?/, async (route) => { await paused; await route.continue(); });
  await target.getByLabel('Per page').selectOption('50');
  await pager.getByRole('button', { name: 'Next →' }).click();
  resume();
  await pager.getByText(/ · 50 shown/).waitFor();
  await target.waitForTimeout(500);
  assert.match(await pager.locator('span').textContent(), /^Page 1 · 50 shown/);
  await target.unroute(/\/api\/v1\/links\?/);
  await target.context().close();
});

test('signing out ends the session', async () => {
  const cookie = (await context.cookies()).find((c) => c.name === 'kurz_session');
  // A sign-out that never reached the origin leaves the session working: the dashboard says
  // so and stays, rather than show the sign-in page over it (a shared computer's next user).
  await page.route('**/api/v1/session', (route) => (route.request().method() === 'DELETE' ? route.abort() : route.continue()));
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('status').filter({ hasText: 'You are still signed in' }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Sign in' }).count(), 0);
  await page.unroute('**/api/v1/session');
  await page.getByRole('button', { name: 'Sign out', exact: true }).click();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
  const response = await fetch(`${originUrl}/api/v1/links`, { headers: { cookie: `kurz_session=${cookie.value}` } });
  assert.equal(response.status, 401, 'the old cookie no longer works');
  // A reload still shows the sign-in.
  await page.reload();
  await page.getByRole('button', { name: 'Sign in' }).waitFor();
});
