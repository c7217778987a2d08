// browser.mjs — test helpers: launch Debian's chromium through
// playwright-core, open pages that record every console error and page
// error, and save screenshots to target/console-artifacts/.

import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from './agent.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS = path.join(ROOT, 'target/console-artifacts');

export function launch() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', '--no-first-run'],
  });
}

/**
 * A new page in a fresh context. `problems` collects console errors and
 * page errors; `expected` may list {status, path} network refusals the test
 * provokes on purpose (Chromium logs each refused fetch as a console error).
 */
export async function openPage(browser, { viewport = { width: 1280, height: 900 }, colorScheme = 'light' } = {}) {
  const context = await browser.newContext({ viewport, colorScheme });
  const page = await context.newPage();
  const problems = [];
  const expected = [];
  page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    const url = m.location()?.url || '';
    const status = /status of (\d{3})/.exec(text)?.[1];
    const hit = status && expected.find((x) => x.status === Number(status) && new URL(url).pathname === x.path && x.left > 0);
    if (hit) { hit.left -= 1; return; }
    problems.push(`console error: ${text} (${url})`);
  });
  const expect = (status, p, times = 1) => expected.push({ status, path: p, left: times });
  return { context, page, problems, expect };
}

export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
