// read.js — read load: catch-up reads paging through partitions by offset,
// and long-polls waiting at the high watermark while a feeder produces.
// The long-poll delivery time (record sent → read) is the `longpoll_delivery_ms`
// trend. setup() seeds SEED records for the catch-up readers.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 k6/read.js
//   k6 run -e SCENARIOS=longpoll -e POLLERS=50 -e WAIT_MS=5000 k6/read.js

import http from 'k6/http';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { BASE, TOPIC, PARTITIONS, DURATION_S, params, ensureTopic, produce, ageOf } from './lib.js';

const SEED = Number(__ENV.SEED || 100000); // records produced by setup()
const PAGE = Number(__ENV.PAGE || 1000); // records per catch-up read
const READERS = Number(__ENV.READERS || 8);
const POLLERS = Number(__ENV.POLLERS || 16);
const WAIT_MS = Number(__ENV.WAIT_MS || 5000);
const FEED_RATE = Number(__ENV.FEED_RATE || 100); // produce requests/s while long-polling
const wanted = (__ENV.SCENARIOS || 'catchup,longpoll').split(',');

const recordsRead = new Counter('records_read');
const delivery = new Trend('longpoll_delivery_ms', true);

const all = {
  catchup: { executor: 'constant-vus', exec: 'catchup', vus: READERS, duration: `${DURATION_S}s` },
  longpoll: { executor: 'constant-vus', exec: 'longpoll', vus: POLLERS, duration: `${DURATION_S}s` },
  feeder: { executor: 'constant-arrival-rate', exec: 'feed', rate: FEED_RATE, timeUnit: '1s', duration: `${DURATION_S}s`, preAllocatedVUs: 8, maxVUs: 64 },
};
const scenarios = {};
for (const s of wanted) scenarios[s] = all[s];
if (wanted.indexOf('longpoll') >= 0) scenarios.feeder = all.feeder;

const thresholds = { checks: ['rate>0.99'] };
if (scenarios.catchup) {
  thresholds['http_req_failed{scenario:catchup}'] = ['rate<0.01'];
  thresholds['http_req_duration{scenario:catchup}'] = [`p(99)<${Number(__ENV.CATCHUP_P99_MS || 250)}`];
}
if (scenarios.longpoll) {
  thresholds['http_req_failed{scenario:longpoll}'] = ['rate<0.01'];
  // A long-poll answers when a record arrives or after WAIT_MS.
  thresholds['http_req_duration{scenario:longpoll}'] = [`p(99)<${WAIT_MS + 1000}`];
  thresholds.longpoll_delivery_ms = [`p(99)<${Number(__ENV.DELIVERY_P99_MS || 500)}`];
}

export const options = { scenarios, thresholds };

export function setup() {
  ensureTopic();
  for (let done = 0; done < SEED; done += 1000) produce(Math.min(1000, SEED - done), { name: 'seed' });
}

function read(partition, offset, extra, tags) {
  return http.get(`${BASE}/v1/topics/${TOPIC}/partitions/${partition}/records?offset=${offset}${extra}`, params(tags));
}

// Per-VU position: each VU follows one partition.
let next = null;
const partition = () => (__VU - 1) % PARTITIONS;

export function catchup() {
  if (next === null) next = 0;
  const r = read(partition(), next, `&limit=${PAGE}`, { name: 'catch-up read' });
  const ok = check(r, { 'read: 200': (x) => x.status === 200 || x.status === 416 });
  if (!ok) return;
  if (r.status === 416) { next = 0; return; }
  const body = r.json();
  recordsRead.add(body.records.length);
  next = body.next_offset >= body.high_watermark ? body.log_start_offset : body.next_offset;
}

export function longpoll() {
  if (next === null) {
    const at = http.get(`${BASE}/v1/topics/${TOPIC}/partitions/${partition()}/offsets`, params({ name: 'offsets' }));
    next = at.json('high_watermark');
  }
  const r = read(partition(), next, `&wait_ms=${WAIT_MS}&limit=${PAGE}`, { name: 'long-poll' });
  if (!check(r, { 'long-poll: 200': (x) => x.status === 200 })) { next = null; return; }
  const body = r.json();
  for (const rec of body.records) {
    const age = ageOf(rec);
    if (age !== null) delivery.add(age);
  }
  recordsRead.add(body.records.length);
  next = body.next_offset;
}

export function feed() {
  produce(1, { name: 'feed' });
}
