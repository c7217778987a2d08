// produce.js — produce load: single-record requests and batched requests
// (BATCH records each), at fixed arrival rates, one scenario after the
// other. Thresholds: p99 latency and error rate per scenario.
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 k6/produce.js
//   k6 run -e SCENARIOS=batched -e BATCH_RATE=500 -e BATCH=100 k6/produce.js

import { produce, ensureTopic, DURATION_S } from './lib.js';

const SINGLE_RATE = Number(__ENV.SINGLE_RATE || 2000); // requests/s
const BATCH_RATE = Number(__ENV.BATCH_RATE || 200); // requests/s
const BATCH = Number(__ENV.BATCH || 100); // records per batched request
const wanted = (__ENV.SCENARIOS || 'single,batched').split(',');

const all = {
  single: {
    executor: 'constant-arrival-rate', exec: 'single', rate: SINGLE_RATE, timeUnit: '1s',
    duration: `${DURATION_S}s`, preAllocatedVUs: 64, maxVUs: 512,
  },
  batched: {
    executor: 'constant-arrival-rate', exec: 'batched', rate: BATCH_RATE, timeUnit: '1s',
    duration: `${DURATION_S}s`, preAllocatedVUs: 32, maxVUs: 256,
    startTime: wanted.includes('single') ? `${DURATION_S + 5}s` : '0s',
  },
};

const p99 = { single: Number(__ENV.SINGLE_P99_MS || 100), batched: Number(__ENV.BATCH_P99_MS || 250) };

export const options = {
  scenarios: Object.fromEntries(wanted.map((s) => [s, all[s]])),
  thresholds: Object.assign({ checks: ['rate>0.99'] }, ...wanted.map((s) => ({
    [`http_req_failed{scenario:${s}}`]: ['rate<0.01'],
    [`http_req_duration{scenario:${s}}`]: [`p(99)<${p99[s]}`],
  }))),
};

export function setup() {
  ensureTopic();
}

export function single() {
  produce(1, { name: 'produce 1' });
}

export function batched() {
  produce(BATCH, { name: `produce ${BATCH}` });
}
