// sse.js — Server-Sent Events load: SUBSCRIBERS streams of the topic
// (GET /v1/topics/<topic>/stream?from=latest), each held HOLD_S seconds,
// while a feeder produces. `sse_delivery_ms` is record sent → event read.
// Needs the xk6-sse extension (module k6/x/sse): build k6 with
//   xk6 build --with github.com/phymbert/xk6-sse
//   ./k6 run -e BASE_URL=http://127.0.0.1:8080 k6/sse.js

import sse from 'k6/x/sse';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { BASE, TOPIC, TOKEN, DURATION_S, ensureTopic, produce, ageOf } from './lib.js';

const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 50);
const HOLD_S = Number(__ENV.HOLD_S || 10);
const FEED_RATE = Number(__ENV.FEED_RATE || 100);

const delivery = new Trend('sse_delivery_ms', true);
const events = new Counter('sse_events');
const received = new Counter('sse_records');

export const options = {
  scenarios: {
    subscribers: { executor: 'constant-vus', exec: 'subscribe', vus: SUBSCRIBERS, duration: `${DURATION_S}s` },
    feeder: { executor: 'constant-arrival-rate', exec: 'feed', rate: FEED_RATE, timeUnit: '1s', duration: `${DURATION_S}s`, preAllocatedVUs: 8, maxVUs: 64 },
  },
  thresholds: {
    checks: ['rate>0.99'],
    sse_delivery_ms: [`p(99)<${Number(__ENV.DELIVERY_P99_MS || 500)}`],
    sse_records: ['count>0'],
    'http_req_failed{scenario:feeder}': ['rate<0.01'],
  },
};

export function setup() {
  ensureTopic();
}

export function subscribe() {
  const headers = { Accept: 'text/event-stream' };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const until = Date.now() + HOLD_S * 1000;
  const response = sse.open(`${BASE}/v1/topics/${TOPIC}/stream?from=latest`, { method: 'GET', headers, tags: { name: 'sse stream' } }, (client) => {
    client.on('event', (event) => {
      if (event.name === 'records') {
        events.add(1);
        const body = JSON.parse(event.data);
        received.add(body.records.length);
        for (const rec of body.records) {
          const age = ageOf(rec);
          if (age !== null) delivery.add(age);
        }
      } else if (event.name === 'error') {
        check(event, { 'sse: no error event': () => false });
        client.close();
      }
      if (Date.now() >= until) client.close();
    });
    client.on('error', (e) => {
      check(e, { 'sse: no stream error': () => false });
    });
  });
  check(response, { 'sse: 200': (r) => r && r.status === 200 });
}

export function feed() {
  produce(1, { name: 'feed' });
}
