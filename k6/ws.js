// ws.js — WebSocket subscribe load: SUBSCRIBERS connections to /v1/ws, each
// subscribing to every partition of the topic from latest and held HOLD_S
// seconds, while a feeder produces. `ws_delivery_ms` is record sent →
// message read. Stock k6 (module k6/ws).
//
//   k6 run -e BASE_URL=http://127.0.0.1:8080 k6/ws.js
//   k6 run -e SUBSCRIBERS=1000 -e FEED_RATE=100 k6/ws.js

import ws from 'k6/ws';
import { check } from 'k6';
import { Counter, Trend } from 'k6/metrics';
import { BASE, TOPIC, DURATION_S, tokenQuery, ensureTopic, produce, ageOf } from './lib.js';

const SUBSCRIBERS = Number(__ENV.SUBSCRIBERS || 100);
const HOLD_S = Number(__ENV.HOLD_S || 10);
const FEED_RATE = Number(__ENV.FEED_RATE || 100);

const delivery = new Trend('ws_delivery_ms', true);
const received = new Counter('ws_records');
const errors = new Counter('ws_error_messages');

export const options = {
  scenarios: {
    subscribers: { executor: 'constant-vus', exec: 'subscribe', vus: SUBSCRIBERS, duration: `${DURATION_S}s` },
    feeder: { executor: 'constant-arrival-rate', exec: 'feed', rate: FEED_RATE, timeUnit: '1s', duration: `${DURATION_S}s`, preAllocatedVUs: 8, maxVUs: 64 },
  },
  thresholds: {
    checks: ['rate>0.99'],
    ws_connecting: ['p(95)<500'],
    ws_delivery_ms: [`p(99)<${Number(__ENV.DELIVERY_P99_MS || 500)}`],
    ws_records: ['count>0'],
    ws_error_messages: ['count==0'],
    'http_req_failed{scenario:feeder}': ['rate<0.01'],
  },
};

export function setup() {
  ensureTopic();
}

export function subscribe() {
  const url = `${BASE.replace(/^http/, 'ws')}/v1/ws${tokenQuery('?')}`;
  const res = ws.connect(url, { tags: { name: 'ws subscribe' } }, (socket) => {
    socket.on('open', () => {
      socket.send(JSON.stringify({ type: 'subscribe', id: `vu${__VU}`, topic: TOPIC, partitions: 'all', from: 'latest' }));
    });
    socket.on('message', (text) => {
      const msg = JSON.parse(text);
      if (msg.type === 'records') {
        received.add(msg.records.length);
        for (const rec of msg.records) {
          const age = ageOf(rec);
          if (age !== null) delivery.add(age);
        }
      } else if (msg.type === 'error') {
        errors.add(1);
      }
    });
    socket.setTimeout(() => socket.close(), HOLD_S * 1000);
  });
  check(res, { 'ws: 101': (r) => r && r.status === 101 });
}

export function feed() {
  produce(1, { name: 'feed' });
}
