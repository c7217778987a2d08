// tail-socket.js — the live tail's WebSocket (/v1/ws): subscriptions to one
// topic that pause (unsubscribe), resume from each partition's next offset,
// reconnect after a drop, and resubscribe partitions that fell below their
// log start from where the caller says. Draws nothing: tail.js does.

import { openSocket, exactNumbers } from './api.js';

/** One WebSocket subscription to a topic that can pause, resume and reconnect. */
export class TailSocket {
  constructor(topic, { partitions, onRecords, onState, onError }) {
    Object.assign(this, { topic, partitionCount: partitions, onRecords, onState, onError });
    this.ws = null;
    this.subs = new Map(); // id -> {partitions, from}
    this.next = new Map(); // partition -> next offset
    this.paused = false;
    this.closed = false;
    this.want = { from: 'latest', partitions: 'all' };
    this.seq = 0;
    this.retry = 0;
  }

  start(want) {
    this.want = want;
    this.next.clear();
    this.unsubscribeAll();
    this.paused = false;
    if (this.isOpen()) this.subscribeFresh();
    else if (!this.ws) this.connect();
  }

  pause() {
    this.paused = true;
    this.unsubscribeAll();
    this.onState('paused');
  }

  resume() {
    this.paused = false;
    if (this.isOpen()) this.subscribeFromNext();
    else if (!this.ws) this.connect();
  }

  close() {
    this.closed = true;
    clearTimeout(this.timer);
    if (this.ws) this.ws.close(1000, 'leaving');
    this.ws = null;
  }

  isOpen() { return this.ws && this.ws.readyState === WebSocket.OPEN; }

  send(msg) { if (this.isOpen()) this.ws.send(JSON.stringify(msg)); }

  connect() {
    this.onState('connecting');
    const ws = openSocket();
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.retry = 0;
      if (this.paused) this.onState('paused');
      else if (this.next.size) this.subscribeFromNext();
      else this.subscribeFresh();
    });
    ws.addEventListener('message', (e) => this.handle(e.data));
    ws.addEventListener('close', (e) => {
      if (this.ws !== ws) return;
      this.ws = null;
      this.subs.clear();
      if (this.closed) return;
      if (e.code === 4001) {
        this.onState('closed', `the agent closed the tail: ${e.reason || 'token expired'}`);
        window.dispatchEvent(new CustomEvent('console:unauthorized', { detail: { detail: e.reason } }));
        return;
      }
      this.retry = Math.min(this.retry + 1, 5);
      this.onState('reconnecting', e.reason || `connection closed (${e.code})`);
      this.timer = setTimeout(() => { if (!this.closed && !this.ws) this.connect(); }, 500 * this.retry);
    });
  }

  subscribe(partitions, from) {
    const id = `tail-${++this.seq}`;
    const list = partitions === 'all' ? Array.from({ length: this.partitionCount }, (_, i) => i) : partitions;
    this.subs.set(id, { partitions: list, from: String(from) });
    this.send({ type: 'subscribe', id, topic: this.topic, partitions, from: String(from) });
  }

  subscribeFresh() {
    this.subscribe(this.want.partitions, this.want.from);
  }

  subscribeFromNext() {
    if (!this.next.size) { this.subscribeFresh(); return; }
    this.subscribeAt(this.next);
  }

  /** One subscription per distinct offset in `positions` (partition -> offset). */
  subscribeAt(positions) {
    const byOffset = new Map();
    for (const [p, o] of positions) {
      if (!byOffset.has(o)) byOffset.set(o, []);
      byOffset.get(o).push(p);
    }
    for (const [offset, parts] of byOffset) this.subscribe(parts.sort((a, b) => a - b), offset);
  }

  /** Where `sub` wanted partition `p` to continue: its next offset, or where it started. */
  wanted(sub, p) {
    return this.next.get(p) ?? (/^\d+$/.test(sub.from) ? Number(sub.from) : 0);
  }

  /** Follows the partitions of failed subscriptions again from `positions` (partition -> offset). */
  resumeAt(positions) {
    for (const [p, o] of positions) this.next.set(p, o);
    if (this.paused) this.resume(); // every partition, from its next offset
    else if (this.isOpen()) this.subscribeAt(positions);
    else if (!this.ws) this.connect();
  }

  unsubscribeAll() {
    for (const id of this.subs.keys()) this.send({ type: 'unsubscribe', subscription: id });
    this.subs.clear();
  }

  handle(text) {
    let msg;
    try { msg = JSON.parse(text, exactNumbers); } catch { return; }
    switch (msg.type) {
      case 'subscribed':
        if (!this.subs.has(msg.subscription)) return;
        this.subs.get(msg.subscription).partitions = msg.partitions.map((p) => p.partition);
        for (const p of msg.partitions) if (!this.next.has(p.partition)) this.next.set(p.partition, p.offset);
        this.onState('live');
        break;
      case 'records':
        if (!this.subs.has(msg.subscription)) return; // paused or restarted since
        this.next.set(msg.partition, msg.next_offset);
        this.onRecords(msg);
        break;
      case 'error': {
        const sub = msg.subscription ? this.subs.get(msg.subscription) : undefined;
        if (msg.subscription) this.subs.delete(msg.subscription);
        this.onError(msg, sub);
        break;
      }
      default:
        break;
    }
  }
}
