// agent.mjs — test helpers: start a StreamHouse agent on a random port in a
// temporary directory, call its API, mint HS256 tokens, and produce at a
// fixed rate with batched POSTs.

import { spawn } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.STREAMHOUSE_BIN || path.join(ROOT, 'target/debug/streamhouse');

export const sleep = (ms) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** Starts an agent; resolves with {base, stop()} once it says where it listens. */
export async function startAgent({ jwtSecret } = {}) {
  if (!existsSync(BIN)) {
    throw new Error(`no agent binary at ${BIN}: build it (cargo build) or set STREAMHOUSE_BIN`);
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'sh-console-'));
  const args = ['serve', '--data-dir', dir, '--listen', '127.0.0.1:0'];
  if (process.env.CONSOLE_DIR) args.push('--console-dir', process.env.CONSOLE_DIR);
  if (jwtSecret) args.push('--auth', 'jwt', '--jwt-secret', jwtSecret);
  const env = { ...process.env, STREAMHOUSE_LOG: 'info' };
  for (const k of Object.keys(env)) if (k.startsWith('STREAMHOUSE_') && !['STREAMHOUSE_LOG', 'STREAMHOUSE_BIN'].includes(k)) delete env[k];
  const child = spawn(BIN, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  let log = '';
  const base = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent did not start in 20 s:\n${log}`)), 20000);
    const onData = (buf) => {
      log += buf.toString();
      const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(log);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`agent exited (${code}) before listening:\n${log}`)); });
  });
  child.removeAllListeners('exit');
  return {
    base,
    log: () => log,
    async stop() {
      if (child.exitCode == null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        const force = setTimeout(() => child.kill('SIGKILL'), 10000);
        await done;
        clearTimeout(force);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One API call; throws with the problem detail unless the status is 2xx. */
export async function call(base, method, p, body, tok) {
  const headers = { Accept: 'application/json' };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  if (tok) headers.Authorization = `Bearer ${tok}`;
  const resp = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await resp.text();
  if (!resp.ok) throw new Error(`${method} ${p}: ${resp.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

/** An HS256 JWT. */
export function mintToken(secret, claims) {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');
  const head = `${b64({ alg: 'HS256', typ: 'JWT' })}.${b64({ exp: Math.floor(Date.now() / 1000) + 3600, ...claims })}`;
  return `${head}.${createHmac('sha256', secret).update(head).digest('base64url')}`;
}

/**
 * Produces `rate` records/s for `seconds` in POSTs of `batch` records sent
 * on schedule; resolves with the acknowledged count and the wall time.
 */
export async function produceAtRate(base, topic, { rate = 1000, seconds = 5, batch = 100, tok } = {}) {
  const batches = Math.round((rate * seconds) / batch);
  const every = (1000 * batch) / rate;
  const start = performance.now();
  const sent = [];
  for (let b = 0; b < batches; b += 1) {
    await sleep(start + b * every - performance.now());
    const records = Array.from({ length: batch }, (_, i) => ({ key: `k${(b * batch + i) % 64}`, value: { n: b * batch + i, at: Date.now() } }));
    sent.push(call(base, 'POST', `/v1/topics/${topic}/records`, { records }, tok).then((r) => r.offsets.length));
  }
  const acked = (await Promise.all(sent)).reduce((a, b) => a + b, 0);
  return { acked, ms: performance.now() - start };
}

export function percentile(values, p) {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}
