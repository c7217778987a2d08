// lib.js — shared by the k6 scripts: the agent's URL and token (BASE_URL,
// TOKEN), request parameters, the test topic, record values that carry
// their send time, and a feeder that produces at a fixed rate.

import http from 'k6/http';
import { check } from 'k6';

export const BASE = (__ENV.BASE_URL || 'http://127.0.0.1:8080').replace(/\/$/, '');
export const TOKEN = __ENV.TOKEN || '';
export const TOPIC = __ENV.TOPIC || 'k6-load';
export const PARTITIONS = Number(__ENV.PARTITIONS || 8);
export const DURATION_S = Number(__ENV.DURATION_S || 30);
export const RECORD_SIZE = Number(__ENV.RECORD_SIZE || 100);

/** JSON request parameters with the bearer token when TOKEN is set. */
export function params(tags = {}, extra = {}) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  return { headers, tags, ...extra };
}

/** `?access_token=` for streams (SSE and WebSocket), empty without a token. */
export function tokenQuery(sep = '&') {
  return TOKEN ? `${sep}access_token=${encodeURIComponent(TOKEN)}` : '';
}

/** Creates the topic unless it exists (409 is fine). */
export function ensureTopic(name = TOPIC, partitions = PARTITIONS) {
  const r = http.post(`${BASE}/v1/topics`, JSON.stringify({ name, partitions }),
    params({ name: 'create topic' }, { responseCallback: http.expectedStatuses(201, 409) }));
  if (r.status !== 201 && r.status !== 409) throw new Error(`creating topic ${name}: ${r.status} ${r.body}`);
}

const filler = 'x'.repeat(Math.max(0, RECORD_SIZE - 40));

/** A record whose JSON value is about RECORD_SIZE bytes and says when it was sent. */
export function record(i) {
  return { key: `k${i % 1024}`, value: { at: Date.now(), i, pad: filler } };
}

/** POSTs `n` records to the topic; checks the answer. */
export function produce(n, tags = {}) {
  const base = Math.floor(Math.random() * 1e9);
  const records = [];
  for (let i = 0; i < n; i += 1) records.push(record(base + i));
  const r = http.post(`${BASE}/v1/topics/${TOPIC}/records`, JSON.stringify({ records }), params(tags));
  check(r, {
    'produce: 200': (x) => x.status === 200,
    'produce: one offset per record': (x) => x.status === 200 && x.json('offsets').length === n,
  });
  return r;
}

/** Milliseconds since a record produced by `record()` was sent (null if it has no send time). */
export function ageOf(rec) {
  return rec && rec.value && typeof rec.value.at === 'number' ? Date.now() - rec.value.at : null;
}
