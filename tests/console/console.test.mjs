// console.test.mjs — the web console in a real browser (headless chromium
// via playwright-core) against real agents: topics, the topic page's
// produce form and live tail (including 1,000 records/s), groups and lag,
// webhook subscriptions (pause and resume), agent charts, the data-lifecycle features (lifecycle.mjs), phone width,
// keyboard use, and --auth jwt (sign-in, scope gating, a 403 explained).
// Fails on any page error or console error.
// Prints the measured figures as one JSON line at the end.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync, copyFileSync } from 'node:fs';
import path from 'node:path';
import { startAgent, call, mintToken, produceAtRate, percentile, sleep, ROOT } from './agent.mjs';
import { launch, openPage, shot, ARTIFACTS } from './browser.mjs';
import { lifecycleTests } from './lifecycle.mjs';

const figures = {};
let browser;
let agent;

before(async () => {
  [browser, agent] = await Promise.all([launch(), startAgent()]);
});

after(async () => {
  await browser?.close();
  await agent?.stop();
  mkdirSync(ARTIFACTS, { recursive: true });
  writeFileSync(path.join(ARTIFACTS, 'figures.json'), `${JSON.stringify(figures, null, 2)}\n`);
  process.stdout.write(`${JSON.stringify({ console_figures: figures })}\n`);
});

const post = (p, body, tok) => call(agent.base, 'POST', p, body, tok);

/** Waits until `fn` (run in the page) returns something truthy. */
const until = (page, fn, arg, timeout = 5000) => page.waitForFunction(fn, arg, { timeout, polling: 20 });
const received = (page) => page.$eval('#tail-received', (el) => Number(el.dataset.count));
const noProblems = (problems) => assert.deepEqual(problems, [], 'the browser logged errors');

test('topics: first load, create, configure and delete from the console', async () => {
  for (const [name, n] of [['audit', 2], ['clicks', 4], ['scratch', 1]]) {
    await post('/v1/topics', { name, partitions: n });
  }
  await post('/v1/topics/clicks/records', { records: Array.from({ length: 40 }, (_, i) => ({ key: `u${i}`, value: { i } })) });

  const { page, problems, context } = await openPage(browser);
  await page.goto(`${agent.base}/console/`);
  await page.waitForSelector('#topics-table tbody[data-ready="true"]');
  figures.first_load = await page.evaluate(() => {
    const mark = performance.getEntriesByName('console:topics-figures')[0];
    const listed = performance.getEntriesByName('console:topics-listed')[0];
    const entries = [performance.getEntriesByType('navigation')[0], ...performance.getEntriesByType('resource')]
      .filter((e) => e.startTime <= mark.startTime);
    return {
      time_to_topics_list_ms: Math.round(listed.startTime),
      time_to_topics_figures_ms: Math.round(mark.startTime),
      requests: entries.length,
      transferred_bytes: entries.reduce((s, e) => s + e.transferSize, 0),
      body_bytes: entries.reduce((s, e) => s + e.encodedBodySize, 0),
    };
  });
  assert.equal(await page.textContent('tr[data-topic="clicks"] td[data-col="records"]'), '40');

  // Create from the form: the console opens the new topic's page.
  await page.fill('#new-topic-name', 'orders');
  await page.fill('#new-topic-partitions', '3');
  await page.click('#create-topic');
  await page.waitForFunction(() => location.hash === '#/topics/orders');
  await page.waitForSelector('h1:text-is("orders")');
  const described = await call(agent.base, 'GET', '/v1/topics/orders');
  assert.equal(described.partitions, 3);

  // Configure retention from the list.
  await page.click('a[data-nav="topics"]');
  await page.click('tr[data-topic="orders"] button:text("Configure")');
  await page.fill('dialog input[name="retention"]', '7d');
  await page.selectOption('dialog select[name="compression"]', 'zstd');
  await page.click('dialog button:text("Save")');
  await until(page, () => document.querySelector('tr[data-topic="orders"] td[data-col="retention"]')?.textContent === '7d');
  const configured = await call(agent.base, 'GET', '/v1/topics/orders');
  assert.equal(configured.retention_ms, 7 * 86400000);
  assert.equal(configured.compression, 'zstd');

  // Delete asks first: Escape keeps the topic, typing its name deletes it.
  await page.click('tr[data-topic="scratch"] button:text("Delete")');
  await page.keyboard.press('Escape');
  await page.waitForSelector('dialog', { state: 'detached' });
  assert.ok(await page.$('tr[data-topic="scratch"]'));
  await page.click('tr[data-topic="scratch"] button:text("Delete")');
  assert.equal(await page.isDisabled('dialog button:text("Delete topic")'), true);
  await page.fill('dialog input', 'scratch');
  await page.click('dialog button:text("Delete topic")');
  await page.waitForSelector('tr[data-topic="scratch"]', { state: 'detached' });
  const list = await call(agent.base, 'GET', '/v1/topics');
  assert.deepEqual(list.topics.map((t) => t.name), ['audit', 'clicks', 'orders']);
  await shot(page, 'topics');
  noProblems(problems);
  await context.close();
});

test('topic page: produce form, live tail within a second, filters, pause and resume, start positions', async () => {
  const { page, problems, context } = await openPage(browser);
  await page.goto(`${agent.base}/console/#/topics/orders`);
  await page.waitForSelector('#tail-state[data-state="live"]');

  await page.fill('#produce-key', 'alice');
  await page.fill('#produce-value', '{"item": "book", "qty": 1, "big": 12345678901234567890}');
  await page.fill('#produce-headers', 'source=web\ntrace: t-1');
  const t0 = Date.now();
  await page.click('#produce-send');
  await page.waitForSelector('#tail-rows li[data-key="alice"]', { timeout: 1000 });
  figures.form_produce_to_tail_row_ms = Date.now() - t0;
  const got = await page.textContent('#produce-results li');
  assert.match(got, /partition \d+, offset 0/);
  const row = await page.textContent('#tail-rows li[data-key="alice"]');
  assert.match(row, /"item": "book"/, 'JSON is pretty-printed');
  assert.match(row, /12345678901234567890/, 'big numbers keep their digits');
  assert.match(row, /source: web/);
  assert.match(row, /trace: t-1/);

  // Raw text from the form, and bytes from elsewhere, show as base64.
  await page.fill('#produce-key', 'raw');
  await page.selectOption('#produce-mode', 'raw');
  await page.fill('#produce-value', 'not json');
  await page.fill('#produce-headers', '');
  await page.click('#produce-send');
  await page.waitForSelector('#tail-rows li[data-key="raw"]');
  assert.match(await page.textContent('#tail-rows li[data-key="raw"]'), /base64[\s\S]*bm90IGpzb24=/);
  await post('/v1/topics/orders/records', { records: [{ key: 'bin', value_b64: 'AAEC/w==' }, { key: 'gone' }] });
  await page.waitForSelector('#tail-rows li[data-key="gone"]');
  assert.match(await page.textContent('#tail-rows li[data-key="bin"]'), /binary · 4 B · base64\s*AAEC\/w==/);
  assert.match(await page.textContent('#tail-rows li[data-key="gone"]'), /tombstone/);

  // Key and header filters.
  await page.fill('#tail-key', 'bob');
  await post('/v1/topics/orders/records', { records: [{ key: 'alice', value: 1 }, { key: 'bob', value: 2, headers: { region: 'eu' } }, { key: 'bobby', value: 3 }] });
  // The keys may sit in different partitions, whose records arrive apart.
  await page.waitForSelector('#tail-rows li[data-key="bobby"]');
  await page.waitForSelector('#tail-rows li[data-key="bob"]');
  assert.deepEqual(await page.$$eval('#tail-rows li', (els) => els.map((e) => e.dataset.key).sort()), ['bob', 'bobby']);
  await page.fill('#tail-header', 'region=eu');
  await until(page, () => document.querySelectorAll('#tail-rows li').length === 1);
  assert.equal(await page.getAttribute('#tail-rows li', 'data-key'), 'bob');
  await page.fill('#tail-key', '');
  await page.fill('#tail-header', '');
  await until(page, () => document.querySelectorAll('#tail-rows li').length === 7);

  // Pause unsubscribes; resume continues from each partition's next offset.
  await page.click('#tail-pause');
  await page.waitForSelector('#tail-state[data-state="paused"]');
  const before = await received(page);
  await post('/v1/topics/orders/records', { records: [0, 1, 2].map((i) => ({ key: `p${i}`, value: i })) });
  await sleep(600);
  assert.equal(await received(page), before, 'nothing arrives while paused');
  await page.click('#tail-pause');
  await until(page, (n) => Number(document.querySelector('#tail-received').dataset.count) === n, before + 3);
  for (const k of ['p0', 'p1', 'p2']) assert.ok(await page.$(`#tail-rows li[data-key="${k}"]`));

  // Everyday records, for the screenshot.
  await post('/v1/topics/orders/records', { records: [
    { key: 'carol', value: { item: 'pen', qty: 12, customer: { id: 17, tier: 'gold' } }, headers: { source: 'web' } },
    { key: 'dave', value: { item: 'lamp', qty: 1, gift: true, note: 'leave at the door' }, headers: { source: 'mobile', region: 'eu' } },
  ] });
  await page.waitForSelector('#tail-rows li[data-key="dave"]');

  // Start positions: earliest, an offset, a time.
  const total = (await call(agent.base, 'GET', '/v1/topics/orders')).partition_details.reduce((s, p) => s + p.high_watermark, 0);
  await page.selectOption('#tail-from', 'earliest');
  await page.click('#tail-start');
  await until(page, (n) => Number(document.querySelector('#tail-received').dataset.count) === n, total);
  const p0 = (await call(agent.base, 'GET', '/v1/topics/orders')).partition_details[0].high_watermark;
  await page.selectOption('#tail-from', 'offset');
  await page.fill('#tail-offset', '1');
  await page.selectOption('#tail-partition', '0');
  await page.click('#tail-start');
  await until(page, (n) => Number(document.querySelector('#tail-received').dataset.count) === n, p0 - 1);
  assert.equal(await page.$$eval('#tail-rows li', (els) => els.every((e) => e.dataset.partition === '0' && Number(e.dataset.offset) >= 1)), true);
  await page.selectOption('#tail-from', 'time');
  await page.fill('#tail-time', '2001-01-01T00:00:00');
  await page.selectOption('#tail-partition', 'all');
  await page.click('#tail-start');
  await until(page, (n) => Number(document.querySelector('#tail-received').dataset.count) === n, total);
  await page.selectOption('#tail-from', 'earliest');
  await page.click('#tail-start');
  await until(page, (n) => Number(document.querySelector('#tail-received').dataset.count) === n, total);
  // The partition table catches up within its 2 s refresh.
  await until(page, (n) => document.querySelector('#partitions-table tr[data-partition="0"] td[data-col="hw"]')?.textContent === n, String(p0), 3000);
  await shot(page, 'topic');
  if (process.env.UPDATE_DOCS_SCREENSHOT) {
    copyFileSync(path.join(ARTIFACTS, 'topic.png'), path.join(ROOT, 'docs/console-topic.png'));
  }
  noProblems(problems);
  await context.close();
});

test('live tail keeps up with 1,000 records/s and keeps at most 500 rows', async () => {
  await post('/v1/topics', { name: 'load', partitions: 4 });
  const { page, problems, context } = await openPage(browser);
  await page.goto(`${agent.base}/console/#/topics/load`);
  await page.waitForSelector('#tail-state[data-state="live"]');
  const { acked, ms } = await produceAtRate(agent.base, 'load', { rate: 1000, seconds: 5, batch: 100 });
  const done = Date.now();
  assert.equal(acked, 5000);
  await until(page, (n) => Number(document.querySelector('#tail-received').dataset.count) >= n, acked, 15000);
  const catchUp = Date.now() - done;
  assert.equal(await received(page), acked, 'the tail received exactly what was produced');
  assert.equal(await page.$$eval('#tail-rows li', (els) => els.length), 500);
  figures.tail_1000_rps = { produced: acked, received: await received(page), produce_ms: Math.round(ms), caught_up_after_last_ack_ms: catchUp, rows_in_dom: 500 };

  // Latency from the POST leaving the page to the row in the DOM, 50 records one at a time.
  const samples = await page.evaluate(async (n) => {
    const list = document.getElementById('tail-rows');
    const out = [];
    for (let i = 0; i < n; i += 1) {
      const key = `lat-${i}`;
      const seen = new Promise((resolve) => {
        const mo = new MutationObserver(() => {
          if (list.querySelector(`li[data-key="${key}"]`)) { mo.disconnect(); resolve(performance.now()); }
        });
        mo.observe(list, { childList: true });
        setTimeout(() => { mo.disconnect(); resolve(null); }, 5000);
      });
      const t0 = performance.now();
      await fetch('/v1/topics/load/records', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ records: [{ key, value: { i } }] }) });
      const t1 = await seen;
      out.push(t1 == null ? null : t1 - t0);
    }
    return out;
  }, 50);
  assert.ok(samples.every((s) => s != null), 'every record reached the tail');
  figures.tail_latency_ms = { n: samples.length, p50: Math.round(percentile(samples, 50) * 10) / 10, p99: Math.round(percentile(samples, 99) * 10) / 10, max: Math.round(Math.max(...samples) * 10) / 10 };
  assert.ok(figures.tail_latency_ms.p99 < 1000, `tail p99 ${figures.tail_latency_ms.p99} ms`);
  noProblems(problems);
  await context.close();
});

test('groups: lag updates after a commit; offsets reset from the console', async () => {
  const hw = (await call(agent.base, 'GET', '/v1/topics/orders')).partition_details.map((p) => p.high_watermark);
  await post('/v1/groups/billing/offsets', { offsets: hw.map((_, p) => ({ topic: 'orders', partition: p, offset: 0 })) });
  const totalHw = hw.reduce((a, b) => a + b, 0);
  const { page, problems, context } = await openPage(browser);
  await page.goto(`${agent.base}/console/#/groups`);
  await page.waitForSelector('#groups-table tbody[data-ready="true"]');
  assert.equal(await page.textContent('tr[data-group="billing"] td[data-col="lag"]'), String(totalHw));
  await shot(page, 'groups');
  await page.click('tr[data-group="billing"] a');
  await until(page, (n) => document.querySelector('#group-total-lag')?.dataset.lag === String(n), totalHw);

  // A commit made elsewhere shows within the refresh.
  const big = hw.indexOf(Math.max(...hw));
  await post('/v1/groups/billing/offsets', { offsets: [{ topic: 'orders', partition: big, offset: hw[big] }] });
  const t0 = Date.now();
  await until(page, (n) => document.querySelector('#group-total-lag')?.dataset.lag === String(n), totalHw - hw[big], 3000);
  figures.group_lag_update_ms = Date.now() - t0;
  assert.equal(await page.getAttribute(`#lag-table tr[data-partition="${big}"] td[data-col="lag"]`, 'data-lag'), '0');
  assert.equal(await page.$('#members-table'), null, 'no members section when the agent reports none');

  // No members: reset to earliest from the form, after a confirmation.
  await page.fill('#reset-topic', 'orders');
  await page.selectOption('#reset-to', 'earliest');
  await page.click('#reset-submit');
  await page.waitForSelector('dialog table');
  await page.click('dialog button:text("Commit offsets")');
  await until(page, (n) => document.querySelector('#group-total-lag')?.dataset.lag === String(n), totalHw);
  const lag = await call(agent.base, 'GET', '/v1/groups/billing/lag');
  assert.equal(lag.total_lag, totalHw);
  // And to the latest.
  await page.selectOption('#reset-to', 'latest');
  await page.click('#reset-submit');
  await page.click('dialog button:text("Commit offsets")');
  await until(page, () => document.querySelector('#group-total-lag')?.dataset.lag === '0');
  await sleep(1200); // let the highlight of changed figures fade
  await shot(page, 'group');

  // A member joins: it is shown with its partitions, and the reset form
  // steps aside until it leaves.
  const member = await post('/v1/groups/billing/members', { topics: ['orders'], session_timeout_ms: 30000 });
  await until(page, ([id, n]) => {
    const td = document.querySelector(`#members-table tr[data-member="${id}"] td[data-col="assignment"]`);
    return td && new Set(td.textContent.split(' ').filter((x) => x.startsWith('orders:'))).size === n;
  }, [member.member_id, hw.length]);
  assert.equal(await page.$('#reset-form'), null, 'no reset while the group has members');
  await shot(page, 'group-members');
  await call(agent.base, 'DELETE', `/v1/groups/billing/members/${member.member_id}`);
  await page.waitForSelector('#reset-form');
  assert.equal(await page.$('#members-table'), null, 'the member left');
  noProblems(problems);
  await context.close();
});

test('webhooks: subscriptions with their counters; pause and resume from the console', async () => {
  await post('/v1/subscriptions', { name: 'to-billing', topic: 'orders', url: 'https://hooks.example.com/orders' });
  const { page, problems, context } = await openPage(browser);
  await page.goto(`${agent.base}/console/#/webhooks`);
  await page.waitForSelector('#webhooks-table tbody[data-ready="true"]');
  const stateIs = (want) => document.querySelector('tr[data-subscription="to-billing"] td[data-col="state"]')?.textContent === want;
  assert.equal(await page.evaluate(stateIs, 'active'), true);
  assert.equal(await page.textContent('tr[data-subscription="to-billing"] td[data-col="delivered"]'), '0');
  await page.click('tr[data-subscription="to-billing"] button:text("Pause")');
  await until(page, stateIs, 'paused');
  assert.equal((await call(agent.base, 'GET', '/v1/subscriptions/to-billing')).paused, true);
  await shot(page, 'webhooks');
  await page.click('tr[data-subscription="to-billing"] button:text("Resume")');
  await until(page, stateIs, 'active');
  assert.equal((await call(agent.base, 'GET', '/v1/subscriptions/to-billing')).paused, false);
  await call(agent.base, 'DELETE', '/v1/subscriptions/to-billing');
  await until(page, () => !document.querySelector('tr[data-subscription="to-billing"]'), undefined, 5000);
  noProblems(problems);
  await context.close();
});

test('agent: live charts from /metrics', async () => {
  const { page, problems, context } = await openPage(browser);
  await page.goto(`${agent.base}/console/#/agent`);
  const load = produceAtRate(agent.base, 'load', { rate: 500, seconds: 3, batch: 50 });
  await until(page, () => Number(document.querySelector('#chart-throughput')?.dataset.samples) >= 3, null, 8000);
  await load;
  await sleep(1200);
  for (const id of ['chart-throughput', 'chart-ack', 'chart-flush', 'chart-cache', 'chart-streams']) {
    const d = await page.getAttribute(`#${id} path.line.s1`, 'd');
    assert.ok(d && d.includes('L'), `${id} draws a line`);
  }
  assert.match(await page.textContent('#chart-throughput .legends'), /produced \d/);
  assert.match(await page.textContent('#chart-ack .legends'), /p99 [\d.]+ ms/);
  await shot(page, 'agent');
  noProblems(problems);
  await context.close();
});

lifecycleTests(() => ({ browser, agent }));

test('phone width, dark theme and the keyboard', async () => {
  const { page, problems, context } = await openPage(browser, { viewport: { width: 390, height: 844 }, colorScheme: 'dark' });
  await page.goto(`${agent.base}/console/`);
  await page.waitForSelector('#topics-table tbody[data-ready="true"]');
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(17, 20, 24)', 'dark theme follows the system');
  const fits = () => page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth + 1);
  assert.ok(await fits(), 'topics page fits a phone-width screen');
  await shot(page, 'topics-phone-dark');

  // Keyboard: skip link first, then the navigation; Enter follows a link.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Groups');
  await page.keyboard.press('Enter');
  await page.waitForFunction(() => location.hash === '#/groups');

  await page.goto(`${agent.base}/console/#/topics/orders`);
  await page.waitForSelector('#tail-state[data-state="live"]');
  await page.selectOption('#tail-from', 'earliest');
  await page.focus('#tail-start');
  await page.keyboard.press('Enter');
  await page.waitForSelector('#tail-rows li');
  assert.ok(await fits(), 'topic page fits a phone-width screen');
  await shot(page, 'topic-phone-dark');
  await page.goto(`${agent.base}/console/#/topics/prices`);
  await page.waitForSelector('#state-table');
  assert.ok(await fits(), 'a compacted topic\u2019s page, with its State panel, fits a phone-width screen');
  await page.click('#partitions-table tr[data-partition="0"] button[data-action="trim"]');
  assert.ok(await fits(), 'the trim dialog fits a phone-width screen');
  await shot(page, 'trim-phone-dark');
  await page.keyboard.press('Escape');
  noProblems(problems);
  await context.close();
});

test('--auth jwt: sign-in, scopes gate buttons, a 403 explained, tail over the bearer subprotocol', async () => {
  const secret = 'console-test-secret-0123456789abcdef';
  const jwt = await startAgent({ jwtSecret: secret });
  try {
    const admin = mintToken(secret, { sub: 'ops', scopes: ['admin:*', 'produce:*', 'consume:*', 'commit:*'] });
    const limited = mintToken(secret, { sub: 'alice', scopes: ['consume:orders.*', 'admin:orders.*', 'commit:billing'] });
    const jpost = (p, body) => call(jwt.base, 'POST', p, body, admin);
    await jpost('/v1/topics', { name: 'orders.eu', partitions: 2 });
    await jpost('/v1/topics', { name: 'payments', partitions: 1 });
    await jpost('/v1/topics/orders.eu/records', { records: [{ key: 'k', value: { first: true } }] });

    const { page, problems, context, expect } = await openPage(browser);
    expect(401, '/v1/whoami', 2); // before signing in, and the refused token below
    expect(403, '/v1/topics/payments');
    await page.goto(`${jwt.base}/console/`);
    await page.waitForSelector('#token');
    await shot(page, 'signin');
    await page.fill('#token', 'not-a-token');
    await page.click('button:text("Sign in")');
    await page.waitForSelector('.signin .notice.error:has-text("refused")');
    await page.fill('#token', limited);
    await page.click('button:text("Sign in")');
    await page.waitForSelector('#topics-table tbody[data-ready="true"]');
    assert.deepEqual(await page.$$eval('#topics-table tbody tr', (rows) => rows.map((r) => r.dataset.topic)), ['orders.eu']);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('streamhouse.console.token')), limited);
    assert.match(await page.textContent('#identity'), /alice/);

    // The create button follows the name typed.
    await page.fill('#new-topic-name', 'payments.us');
    assert.equal(await page.isDisabled('#create-topic'), true);
    assert.match(await page.textContent('#create-topic + .why'), /no admin:<glob> scope matching topic "payments.us"/);
    await page.fill('#new-topic-name', 'orders.us');
    assert.equal(await page.isDisabled('#create-topic'), false);

    // The topic page: no produce scope, so the form says why; the tail
    // authenticates with the bearer subprotocol.
    await page.click('a:text-is("orders.eu")');
    await page.waitForSelector('#tail-state[data-state="live"]');
    assert.equal(await page.isDisabled('#produce-send'), true);
    assert.match(await page.textContent('#produce-send + .why'), /no produce:<glob> scope matching topic "orders.eu"/);
    assert.equal(await page.isDisabled('#topic-delete'), false);
    await jpost('/v1/topics/orders.eu/records', { records: [{ key: 'live', value: { over: 'ws' } }] });
    await page.waitForSelector('#tail-rows li[data-key="live"]', { timeout: 1000 });

    // A topic outside the token's scopes: the agent's 403, explained.
    await page.goto(`${jwt.base}/console/#/topics/payments`);
    await page.waitForSelector('.notice.forbidden');
    const why = await page.textContent('.notice.forbidden');
    assert.match(why, /Forbidden \(403\)/);
    assert.match(why, /do not allow consume on topic "payments"/);
    assert.match(why, /consume:orders\.\*/);
    await shot(page, 'forbidden');

    // Metrics need the operator's token; the page says so instead of failing.
    await page.click('a[data-nav="agent"]');
    await page.waitForSelector('main .notice:has-text("admin:*")');
    await page.click('a[data-nav="access"]');
    await page.waitForSelector('main td:has-text("read and tail topics matching")');
    await shot(page, 'access');

    // A reload keeps the session; signing out forgets the token.
    await page.reload();
    await page.waitForSelector('#identity a:text("alice")');
    await page.click('#identity button:text("Sign out")');
    await page.waitForSelector('#token');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('streamhouse.console.token')), null);
    noProblems(problems);
    await context.close();
  } finally {
    await jwt.stop();
  }
});
