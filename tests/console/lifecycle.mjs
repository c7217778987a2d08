// lifecycle.mjs — browser tests of the console's data-lifecycle features,
// registered by console.test.mjs with its browser and agent: a compacted
// topic created from the form and its State panel, the create form showing
// the agent's refusal of a bad retention_bytes, a trim from the partition
// table (and its 416), and the live tail resuming from the new log start.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { call } from './agent.mjs';
import { openPage, shot } from './browser.mjs';

const until = (page, fn, arg, timeout = 5000) => page.waitForFunction(fn, arg, { timeout, polling: 20 });
const noProblems = (problems) => assert.deepEqual(problems, [], 'the browser logged errors');

/** Registers the tests; `env()` gives {browser, agent} once they have started. */
export function lifecycleTests(env) {
  test('lifecycle: a compacted topic from the form, its State panel; a bad retention_bytes refused', async () => {
    const { browser, agent } = env();
    const api = (method, p, body) => call(agent.base, method, p, body);
    const { page, problems, context, expect } = await openPage(browser);
    expect(400, '/v1/topics'); // retention_bytes 0, provoked below
    await page.goto(`${agent.base}/console/`);
    await page.waitForSelector('#topics-table tbody[data-ready="true"]');

    // The agent's own words for a bad retention_bytes, and no topic.
    await page.fill('#new-topic-name', 'sized');
    await page.fill('#new-topic-retention-bytes', '0');
    await page.click('#create-topic');
    const refusal = await page.waitForSelector('form.create .notice.error');
    assert.match(await refusal.textContent(), /Invalid field \(400\)\. Retention_bytes must be positive, or absent \(null\) to keep any amount\./);
    await assert.rejects(api('GET', '/v1/topics/sized'), /404/);
    // A size with a unit is sent in bytes.
    await page.fill('#new-topic-retention-bytes', '2 GiB');
    await page.fill('#new-topic-retention', '12h');
    await page.click('#create-topic');
    await page.waitForFunction(() => location.hash === '#/topics/sized');
    assert.equal((await api('GET', '/v1/topics/sized')).retention_bytes, 2 * 2 ** 30);
    assert.equal(await page.textContent('#topic-retention-bytes'), '2 GiB per partition');
    assert.equal(await page.$('#state-panel'), null, 'no State panel for a delete-only topic');

    // Compact: the tombstone field appears with the policy.
    await page.click('a[data-nav="topics"]');
    await page.waitForSelector('#new-topic-name');
    assert.equal(await page.isVisible('#new-topic-delete-retention'), false);
    await page.fill('#new-topic-name', 'prices');
    await page.fill('#new-topic-partitions', '2');
    await page.selectOption('#new-topic-cleanup-policy', 'compact');
    await page.fill('#new-topic-delete-retention', '1h');
    await page.click('#create-topic');
    await page.waitForFunction(() => location.hash === '#/topics/prices');
    const created = await api('GET', '/v1/topics/prices');
    assert.equal(created.cleanup_policy, 'compact');
    assert.equal(created.delete_retention_ms, 3600000);
    assert.equal(await page.textContent('#topic-policy'), 'compact');
    assert.equal(await page.textContent('#topic-delete-retention'), '1h');
    await page.waitForSelector('#state-panel[data-keys="0"]');

    // Two records with one key and one with another: the panel lists 2 keys, the latest value each.
    const raw = '{"records":[{"key":"AAPL","value":{"px":189.2}},{"key":"AAPL","value":{"px":189.9,"ccy":"USD"}},{"key":"MSFT","value":411.0}]}';
    const { offsets } = await (await fetch(`${agent.base}/v1/topics/prices/records`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: raw })).json();
    await page.click('#state-refresh');
    await page.waitForSelector('#state-panel[data-keys="2"]');
    assert.deepEqual(await page.$$eval('#state-table tbody tr', (rows) => rows.map((r) => r.dataset.key)), ['AAPL', 'MSFT']);
    const aapl = await page.$('#state-table tr[data-key="AAPL"]');
    assert.equal(await aapl.getAttribute('data-offset'), String(offsets[1].offset));
    assert.equal(await aapl.getAttribute('data-partition'), String(offsets[1].partition));
    assert.equal(await aapl.$eval('pre', (el) => el.textContent), '{\n  "px": 189.9,\n  "ccy": "USD"\n}');
    assert.equal(await page.$eval('#state-table tr[data-key="MSFT"] pre', (el) => el.textContent), '411.0', 'numbers keep their digits');
    assert.match(await page.textContent('#state-summary'), /^2 keys at /);
    // A tombstone deletes its key from the state.
    await api('POST', '/v1/topics/prices/records', { records: [{ key: 'MSFT' }] });
    await page.click('#state-refresh');
    await page.waitForSelector('#state-panel[data-keys="1"]');
    await shot(page, 'topic-compacted');

    // The list shows policy and retention.
    await page.click('a[data-nav="topics"]');
    await page.waitForSelector('tr[data-topic="prices"] td[data-col="policy"]:text-is("compact")');
    assert.equal(await page.textContent('tr[data-topic="sized"] td[data-col="retention"]'), '12h · 2 GiB/partition');
    assert.equal(await page.textContent('tr[data-topic="prices"] td[data-col="retention"]'), 'not applied');

    // Configure: unlimited bytes again, then compact,delete.
    await page.click('tr[data-topic="sized"] button:text("Configure")');
    assert.equal(await page.inputValue('dialog input[name="retention_bytes"]'), '2 GiB');
    await page.fill('dialog input[name="retention_bytes"]', '');
    await page.selectOption('dialog select[name="cleanup_policy"]', 'compact,delete');
    await page.fill('dialog input[name="delete_retention"]', '0');
    await page.click('dialog button:text("Save")');
    await until(page, () => document.querySelector('tr[data-topic="sized"] td[data-col="policy"]')?.textContent === 'compact,delete');
    const configured = await api('GET', '/v1/topics/sized');
    assert.equal(configured.retention_bytes, null);
    assert.equal(configured.delete_retention_ms, 0);
    assert.equal(configured.retention_ms, 12 * 3600000);
    noProblems(problems);
    await context.close();
  });

  test('lifecycle: trim a partition from the console; the live tail resumes from the new log start', async () => {
    const { browser, agent } = env();
    const api = (method, p, body) => call(agent.base, method, p, body);
    await api('POST', '/v1/topics', { name: 'ledger', partitions: 2 });
    const rec = (partition, n) => Array.from({ length: n }, (_, i) => ({ partition, key: `k${i}`, value: { i } }));
    await api('POST', '/v1/topics/ledger/records', { records: [...rec(0, 10), ...rec(1, 4)] });
    const { page, problems, context, expect } = await openPage(browser);
    expect(416, '/v1/topics/ledger/partitions/1/trim');
    await page.goto(`${agent.base}/console/#/topics/ledger`);
    await page.waitForSelector('#tail-state[data-state="live"]');
    assert.equal(await page.textContent('#partitions-table tr[data-partition="0"] td[data-col="objects"]'), '1');
    assert.equal(await page.textContent('#partitions-table tr[data-partition="0"] td[data-col="index-rows"]'), '1');

    // The tail pauses at offset 10 of partition 0; three more records come.
    await page.click('#tail-pause');
    await page.waitForSelector('#tail-state[data-state="paused"]');
    await api('POST', '/v1/topics/ledger/records', { records: rec(0, 3) });

    // Trim: the dialog says what goes; Escape keeps everything.
    await page.click('#partitions-table tr[data-partition="0"] button[data-action="trim"]');
    await page.fill('dialog input[name="before"]', '12');
    // Against the bounds read as the dialog opened, not the page's older figures.
    await page.waitForSelector('#trim-bounds:text-is("Log start 0, high watermark 13.")');
    assert.match(await page.textContent('#trim-consequence'), /^Records below offset 12 will be gone: offsets 0 to 11, for every reader/);
    await page.keyboard.press('Escape');
    await page.waitForSelector('dialog', { state: 'detached' });
    assert.equal((await api('GET', '/v1/topics/ledger')).partition_details[0].log_start_offset, 0);
    await page.click('#partitions-table tr[data-partition="0"] button[data-action="trim"]');
    await page.fill('dialog input[name="before"]', '12');
    await page.click('dialog button:text-is("Trim")');
    await page.waitForSelector('dialog', { state: 'detached' });
    await page.waitForSelector('#partitions-table tr[data-partition="0"] td[data-col="log-start"]:text-is("12")', { timeout: 3000 });
    assert.equal((await api('GET', '/v1/topics/ledger')).partition_details[0].log_start_offset, 12);

    // Beyond the high watermark: the agent's 416, in the dialog.
    await page.click('#partitions-table tr[data-partition="1"] button[data-action="trim"]');
    await page.fill('dialog input[name="before"]', '99');
    await page.click('dialog button:text-is("Trim")');
    const refusal = await page.waitForSelector('dialog .notice.error[data-status="416"]');
    assert.match(await refusal.textContent(), /Offset out of range \(416\)\. Offset 99 is beyond the high watermark 4\./);
    await page.keyboard.press('Escape');
    await page.waitForSelector('dialog', { state: 'detached' });

    // Resuming from offset 10 falls below the log start: the tail says so and resumes there.
    await page.click('#tail-pause');
    const behind = await page.waitForSelector('#tail-behind .notice');
    assert.match(await behind.textContent(), /Partition 0 now starts at offset 12 \(high watermark 13\)[^]*cannot read from offset 10/);
    await shot(page, 'tail-behind');
    await page.click('#tail-resume-start');
    await page.waitForSelector('#tail-rows li[data-partition="0"][data-offset="12"]');
    assert.equal(await page.$('#tail-behind .notice'), null);
    await api('POST', '/v1/topics/ledger/records', { records: rec(0, 1) });
    await page.waitForSelector('#tail-rows li[data-partition="0"][data-offset="13"]');
    assert.equal(await page.$$eval('#tail-rows li', (els) => els.length), 2, 'nothing below the log start, nothing twice');
    noProblems(problems);
    await context.close();
  });
}
