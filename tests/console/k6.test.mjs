// k6.test.mjs — checks the k6 scripts in k6/ without k6: each must parse as
// an ES module (node --check), import with stand-ins for k6's modules,
// declare scenarios whose exec functions it exports and thresholds, and
// run setup() and its HTTP scenarios a few iterations against a real agent
// (k6/http is stood in for by synchronous requests made on a worker thread).
// The WebSocket and SSE subscribe loops need k6 itself; they are parsed and
// their options checked, and the test says so.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { readdirSync, readFileSync } from 'node:fs';
import { register } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { startAgent, ROOT } from './agent.mjs';

const K6_DIR = path.join(ROOT, 'k6');
const scripts = readdirSync(K6_DIR).filter((f) => f.endsWith('.js')).sort();
let agent;

before(async () => {
  agent = await startAgent();
  register('./k6-hooks.mjs', import.meta.url);
});
after(async () => {
  await worker.terminate();
  await agent?.stop();
});

/**
 * k6/http's calls are synchronous: a worker thread makes the request while
 * this thread waits on a shared flag.
 */
const shared = new SharedArrayBuffer(4 + 4 + 32 * 1024 * 1024);
const flag = new Int32Array(shared, 0, 2);
const bytes = new Uint8Array(shared, 8);
const worker = new Worker(`
  const { parentPort, workerData } = require('node:worker_threads');
  const flag = new Int32Array(workerData, 0, 2);
  const bytes = new Uint8Array(workerData, 8);
  parentPort.on('message', async (q) => {
    let out;
    try {
      const r = await fetch(q.url, { method: q.method, headers: q.headers, body: q.body ?? undefined });
      out = { status: r.status, body: await r.text() };
    } catch (e) { out = { status: 0, body: String(e) }; }
    const enc = new TextEncoder().encode(JSON.stringify(out)).subarray(0, bytes.length);
    bytes.set(enc);
    flag[1] = enc.length;
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  });`, { eval: true, workerData: shared });
worker.unref();

function request(method, url, body, params = {}) {
  Atomics.store(flag, 0, 0);
  worker.postMessage({ method, url, headers: params.headers || {}, body: body ?? null });
  if (Atomics.wait(flag, 0, 0, 30000) === 'timed-out') throw new Error(`${method} ${url}: no answer in 30 s`);
  const r = JSON.parse(new TextDecoder().decode(bytes.slice(0, flag[1])));
  r.json = (sel) => {
    const v = JSON.parse(r.body);
    return sel ? sel.split('.').reduce((o, k) => (o == null ? o : o[k]), v) : v;
  };
  const expected = params.responseCallback?.statuses;
  r.failed = expected ? !expected.includes(r.status) : r.status === 0 || r.status >= 400;
  requests.push({ method, url, status: r.status, failed: r.failed });
  return r;
}

let requests = [];
let failedChecks = [];
class NeedsK6 extends Error {}
class Metric { constructor(name) { this.name = name; this.values = []; } add(v) { this.values.push(v); } }

globalThis.__k6 = {
  modules: {
    k6: {
      check(value, sets) {
        let all = true;
        for (const [name, fn] of Object.entries(sets)) {
          if (!fn(value)) { all = false; failedChecks.push(name); }
        }
        return all;
      },
      sleep() {},
      group(_name, fn) { return fn(); },
      fail(msg) { throw new Error(msg); },
    },
    'k6/http': {
      get: (url, params) => request('GET', url, null, params),
      post: (url, body, params) => request('POST', url, body, params),
      del: (url, body, params) => request('DELETE', url, body, params),
      request: (method, url, body, params) => request(method, url, body, params),
      expectedStatuses: (...statuses) => ({ statuses }),
    },
    'k6/metrics': { Counter: Metric, Trend: Metric, Rate: Metric, Gauge: Metric },
    'k6/ws': { connect() { throw new NeedsK6('k6/ws'); } },
    'k6/x/sse': { open() { throw new NeedsK6('k6/x/sse'); } },
  },
};

test('the k6 scripts parse as ES modules', () => {
  assert.ok(scripts.length >= 5, `k6/ holds ${scripts.join(', ')}`);
  for (const f of scripts) {
    const r = spawnSync(process.execPath, ['--input-type=module', '--check'], { input: readFileSync(path.join(K6_DIR, f)) });
    assert.equal(r.status, 0, `k6/${f} does not parse:\n${r.stderr}`);
  }
});

for (const f of ['produce.js', 'read.js', 'sse.js', 'ws.js']) {
  test(`k6/${f}: options, thresholds, setup and HTTP scenarios against an agent`, async (t) => {
    globalThis.__ENV = { BASE_URL: agent.base, TOPIC: `k6-${f.replace('.js', '')}`, PARTITIONS: '2', DURATION_S: '1', SEED: '1500', WAIT_MS: '200', BATCH: '10' };
    globalThis.__VU = 1;
    globalThis.__ITER = 0;
    requests = [];
    failedChecks = [];
    const mod = await import(`${pathToFileURL(path.join(K6_DIR, f)).href}?check`);
    const { scenarios, thresholds } = mod.options;
    assert.ok(Object.keys(scenarios).length > 0, 'declares scenarios');
    assert.ok(Object.keys(thresholds).length > 0, 'declares thresholds');
    for (const [name, s] of Object.entries(scenarios)) {
      assert.equal(typeof mod[s.exec || 'default'], 'function', `scenario ${name} runs an exported function`);
    }
    for (const [metric, rules] of Object.entries(thresholds)) {
      for (const rule of rules) assert.match(rule, /^(p\(\d+(\.\d+)?\)|rate|count|avg|med|max|min)\s*[<>=!]+\s*\d+(\.\d+)?$/, `threshold ${metric}: ${rule}`);
    }
    mod.setup?.();
    const needK6 = [];
    for (const [name, s] of Object.entries(scenarios)) {
      for (let i = 0; i < 3; i += 1) {
        globalThis.__ITER = i;
        try {
          mod[s.exec || 'default']();
        } catch (e) {
          if (e instanceof NeedsK6) { needK6.push(`${name} (${e.message})`); break; }
          throw e;
        }
      }
    }
    assert.deepEqual(failedChecks, [], 'every check passed');
    assert.deepEqual(requests.filter((r) => r.failed), [], 'no request failed');
    assert.ok(requests.length > 0);
    if (needK6.length) t.diagnostic(`k6/${f}: needs k6 to run ${[...new Set(needK6)].join(', ')}; parsed and options checked here`);
  });
}
