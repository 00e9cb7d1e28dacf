// The links page's first screen, timed in headless Chromium (Debian's, driven by
// playwright-core, launched as the browser tests launch it). `cargo xtask bench --only
// dashboard` seeds the workspaces, starts the release origin serving the release dashboard and
// runs this script; it is not a test (node's test runner picks only `*.test.mjs` and the like,
// so `node --test .` in admin-ui/tests leaves it alone), and asserts no time.
//
// Each workspace gets a browser context of its own, signed in through the sign-in form (the
// real API) and switched to that workspace through the API. Then, in turn for each workspace,
// LOADS fresh loads of /admin/links (after one unmeasured load: the cache is warm), each timed
// in the page from the navigation's start (performance.now()):
//   api          the first answer of GET /api/v1/links has arrived (resource timing)
//   rows         the first rows of the links table are in the document (a MutationObserver),
//                which then focuses the search box
//   painted      a frame was drawn after that and the main thread was free (a task queued in
//                the next animation frame ran)
//   key          a key the script types into the search box as soon as it sees the rows was
//                handled (a capture listener of `input` events; so this includes the round
//                trips between this script and the browser); then the search request it leads
//                to is awaited, which shows the page's own handler ran
//   interactive  the later of painted and key: the rows are on screen and the page answers
//   input_delay  how long that key waited for the page's main thread
// Then the workspace's `search` term (one link of it matches, deep in the list) replaces that
// key in the search box:
//   search_api   how long its GET /api/v1/links?q=… took (resource timing: request to answer)
//   search_shown from the last input event to the one matching row alone in the table: the
//                page's 250 ms debounce, the request, and the table drawn again
// The results go to stdout as one line of JSON: { "<name>": [{ api, rows, painted, key,
// interactive, input_delay, search_api, search_shown }, ...] } in milliseconds, in the order
// of KURZ_BENCH_WORKSPACES ([{ name, workspace, search, code }], `code` the match's).

import { chromium } from 'playwright-core';

const BASE = required('KURZ_BENCH_URL');
const PASSWORD = required('KURZ_BENCH_PASSWORD');
const WORKSPACES = JSON.parse(required('KURZ_BENCH_WORKSPACES'));
const CHROMIUM = process.env.KURZ_CHROMIUM ?? '/usr/bin/chromium';
const LOADS = Number(process.env.KURZ_BENCH_LOADS ?? 5);
const USERNAME = process.env.KURZ_BENCH_USERNAME ?? 'admin';

function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run this with \`cargo xtask bench --only dashboard\``);
  return value;
}

/** Runs in every page before its own scripts: notes when the first row and the first input came. */
function instrument() {
  const bench = { rows: null, painted: null, input: null, inputDelay: null, lastInput: null };
  window.__kurzBench = bench;
  const observer = new MutationObserver(() => {
    if (document.querySelector('tbody tr[data-code]')) {
      bench.rows = performance.now();
      observer.disconnect();
      // Where the key typed next goes, as a person would click it first.
      document.querySelector('input[type="search"]')?.focus();
      requestAnimationFrame(() => {
        const channel = new MessageChannel();
        channel.port1.onmessage = () => {
          bench.painted = performance.now();
        };
        channel.port2.postMessage(null);
      });
    }
  });
  observer.observe(document, { childList: true, subtree: true });
  document.addEventListener('input', (event) => {
    bench.lastInput = performance.now();
    if (bench.input === null) {
      bench.input = performance.now();
      // How long the key waited for the page's main thread (event.timeStamp: when it came).
      bench.inputDelay = bench.input - event.timeStamp;
    }
  }, true);
}

const browser = await chromium.launch({
  executablePath: CHROMIUM,
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});

try {
  const pages = [];
  for (const { name, workspace, search, code } of WORKSPACES) {
    pages.push({ name, page: await signedIn(workspace), search, code });
  }
  const results = Object.fromEntries(pages.map(({ name }) => [name, []]));
  // Unmeasured first loads: the dashboard's assets are in each context's cache afterwards.
  for (const { page, search, code } of pages) await load(page, search, code);
  // In turn, so that the machine's other load falls on every workspace alike.
  for (let round = 0; round < LOADS; round++) {
    for (const { name, page, search, code } of pages) {
      results[name].push(await load(page, search, code));
      console.error(`${name}, load ${round + 1}: ${JSON.stringify(results[name].at(-1))}`);
    }
  }
  process.stdout.write(`${JSON.stringify(results)}\n`);
} finally {
  await browser.close();
}

/** A page of a new context, signed in through the form and working in `workspace`. */
async function signedIn(workspace) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    colorScheme: 'light',
    locale: 'en-GB',
    timezoneId: 'Europe/Berlin',
  });
  context.setDefaultTimeout(30_000);
  await context.addInitScript(instrument);
  const page = await context.newPage();
  page.on('pageerror', (err) => console.error('page error:', err));
  await page.goto(`${BASE}/admin/links`);
  await page.locator('input[autocomplete="username"]').fill(USERNAME);
  await page.locator('input[type="password"]').fill(PASSWORD);
  await page.locator('form button[type="submit"]').click();
  await page.locator('input[type="search"]').first().waitFor();
  const now = await page.evaluate(async (id) => {
    const session = await (await fetch('/api/v1/session')).json();
    const response = await fetch('/api/v1/session/workspace', {
      method: 'PUT',
      headers: { 'content-type': 'application/json', 'x-csrf-token': session.csrf_token },
      body: JSON.stringify({ workspace_id: id }),
    });
    if (!response.ok) throw new Error(`switching to workspace ${id}: ${response.status} ${await response.text()}`);
    return (await (await fetch('/api/v1/session')).json()).workspace?.id;
  }, workspace);
  if (now !== workspace) throw new Error(`the session works in workspace ${now}, not ${workspace}`);
  await page.goto('about:blank');
  return page;
}

/** One fresh load of the links page and a search for `search` (which only the link `code`
 * matches), timed; the page is left blank again. */
async function load(page, search, code) {
  await page.goto(`${BASE}/admin/links`, { waitUntil: 'commit' });
  await page.waitForFunction(() => window.__kurzBench?.rows != null, null, { polling: 'raf' });
  const searched = page.waitForResponse((response) => {
    const url = new URL(response.url());
    return url.pathname === '/api/v1/links' && url.searchParams.get('q') === 'h';
  });
  await page.keyboard.press('h');
  // The search starts after the page's debounce: its request shows the page's handler ran.
  await searched;
  const rare = page.waitForResponse((response) => {
    const url = new URL(response.url());
    return url.pathname === '/api/v1/links' && url.searchParams.get('q') === search;
  });
  await page.locator('input[type="search"]').first().fill(search);
  await rare;
  await page.waitForFunction((code) => {
    const rows = document.querySelectorAll('tbody tr[data-code]');
    if (rows.length === 1 && rows[0].dataset.code === code && window.__kurzBench.shown == null) {
      window.__kurzBench.shown = performance.now();
    }
    return window.__kurzBench.shown != null;
  }, code, { polling: 'raf' });
  const timings = await page.evaluate((search) => {
    const bench = window.__kurzBench;
    const api = performance
      .getEntriesByType('resource')
      .filter((entry) => new URL(entry.name).pathname === '/api/v1/links')
      .sort((a, b) => a.startTime - b.startTime)[0];
    const searched = performance
      .getEntriesByType('resource')
      .find((entry) => new URL(entry.name).searchParams.get('q') === search);
    return {
      api: api?.responseEnd ?? null,
      rows: bench.rows,
      painted: bench.painted,
      key: bench.input,
      interactive: Math.max(bench.painted, bench.input),
      input_delay: bench.inputDelay,
      search_api: searched ? searched.responseEnd - searched.startTime : null,
      search_shown: bench.shown - bench.lastInput,
    };
  }, search);
  await page.goto('about:blank');
  for (const [key, value] of Object.entries(timings)) {
    if (typeof value !== 'number') throw new Error(`no ${key} time: ${JSON.stringify(timings)}`);
  }
  return timings;
}
