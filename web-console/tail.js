// tail.js — the topic page's live tail over the WebSocket (/v1/ws): start
// from latest, earliest, an offset or a time; pause (unsubscribe) and resume
// from each partition's next offset; reconnect after a drop; key and header
// filters; JSON values pretty-printed, binary values as base64. At most
// MAX_ROWS records stay in the page; the received count covers them all.

import { openSocket } from './api.js';
import { can, gate } from './auth.js';
import { h, fill, fmtNum, fmtTime, fmtBytes } from './ui.js';

export const MAX_ROWS = 500;
const MAX_VALUE_CHARS = 8000;

// Numbers too large for a double keep their digits (where the browser can).
const exact = typeof JSON.rawJSON === 'function'
  ? (k, v, ctx) => (typeof v === 'number' && ctx?.source && String(v) !== ctx.source ? JSON.rawJSON(ctx.source) : v)
  : undefined;

/** One WebSocket subscription to a topic that can pause, resume and reconnect. */
export class TailSocket {
  constructor(topic, { onRecords, onState, onError }) {
    Object.assign(this, { topic, onRecords, onState, onError });
    this.ws = null;
    this.subs = new Set();
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
    this.subs.add(id);
    this.send({ type: 'subscribe', id, topic: this.topic, partitions, from: String(from) });
  }

  subscribeFresh() {
    this.subscribe(this.want.partitions, this.want.from);
  }

  subscribeFromNext() {
    const byOffset = new Map();
    for (const [p, o] of this.next) {
      if (!byOffset.has(o)) byOffset.set(o, []);
      byOffset.get(o).push(p);
    }
    if (!byOffset.size) { this.subscribeFresh(); return; }
    for (const [offset, parts] of byOffset) this.subscribe(parts.sort((a, b) => a - b), offset);
  }

  unsubscribeAll() {
    for (const id of this.subs) this.send({ type: 'unsubscribe', subscription: id });
    this.subs.clear();
  }

  handle(text) {
    let msg;
    try { msg = JSON.parse(text, exact); } catch { return; }
    switch (msg.type) {
      case 'subscribed':
        if (!this.subs.has(msg.subscription)) return;
        for (const p of msg.partitions) if (!this.next.has(p.partition)) this.next.set(p.partition, p.offset);
        this.onState('live');
        break;
      case 'records':
        if (!this.subs.has(msg.subscription)) return; // paused or restarted since
        this.next.set(msg.partition, msg.next_offset);
        this.onRecords(msg);
        break;
      case 'error':
        if (msg.subscription) this.subs.delete(msg.subscription);
        this.onError(msg);
        break;
      default:
        break;
    }
  }
}

function headerText(hd) {
  if (hd.value != null) return hd.value;
  if (hd.value_b64 != null) return `base64:${hd.value_b64}`;
  return 'null';
}

function clip(text) {
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}\n… (${fmtNum(text.length)} characters; shown in part)` : text;
}

/** The element for one record. */
export function recordRow(partition, r) {
  let value;
  if (r.value_encoding === 'json') {
    value = h('pre', { class: 'value json' }, clip(JSON.stringify(r.value, null, 2)));
  } else if (r.value_encoding === 'base64') {
    const bytes = Math.floor((r.value.length * 3) / 4) - (r.value.endsWith('==') ? 2 : r.value.endsWith('=') ? 1 : 0);
    value = h('div', { class: 'value binary' },
      h('span', { class: 'badge' }, `binary · ${fmtBytes(bytes)} · base64`),
      h('pre', {}, clip(r.value)));
  } else {
    value = h('div', { class: 'value' }, h('span', { class: 'badge' }, 'tombstone (no value)'));
  }
  let key;
  if (r.key != null) key = h('code', { class: 'key' }, r.key);
  else if (r.key_b64 != null) key = h('code', { class: 'key' }, `base64:${r.key_b64}`);
  else key = h('span', { class: 'muted' }, 'no key');
  return h('li', { class: 'rec', dataset: { partition: partition, offset: r.offset, key: r.key ?? '' } },
    h('div', { class: 'meta' },
      h('span', { class: 'pill' }, `p${partition}`),
      h('span', { class: 'off' }, `#${r.offset}`),
      h('time', { datetime: new Date(r.timestamp).toISOString() }, fmtTime(r.timestamp)),
      key),
    r.headers.length
      ? h('div', { class: 'headers' }, r.headers.map((hd) => h('span', { class: 'chip' }, `${hd.key}: ${headerText(hd)}`)))
      : null,
    value);
}

/** A filter from the key and header inputs ("name" or "name=value"). */
function makeFilter(keyText, headerTextIn) {
  const k = keyText.trim();
  const hd = headerTextIn.trim();
  if (!k && !hd) return null;
  const eq = hd.indexOf('=');
  const hName = eq >= 0 ? hd.slice(0, eq).trim() : hd;
  const hValue = eq >= 0 ? hd.slice(eq + 1).trim() : null;
  return (r) => {
    if (k) {
      const key = r.key ?? (r.key_b64 != null ? `base64:${r.key_b64}` : '');
      if (!key.includes(k)) return false;
    }
    if (hd) {
      const ok = r.headers.some((x) => x.key === hName && (hValue == null || headerText(x) === hValue));
      if (!ok) return false;
    }
    return true;
  };
}

/** Renders the tail panel into `box`; returns a cleanup function. */
export function renderTail(box, topic) {
  const name = topic.name;
  const from = h('select', { id: 'tail-from', name: 'from' },
    h('option', { value: 'latest' }, 'latest'),
    h('option', { value: 'earliest' }, 'earliest'),
    h('option', { value: 'offset' }, 'an offset'),
    h('option', { value: 'time' }, 'a time'));
  const offset = h('input', { id: 'tail-offset', type: 'number', min: 0, value: '0', inputmode: 'numeric', 'aria-label': 'Start offset', hidden: true });
  const time = h('input', { id: 'tail-time', type: 'datetime-local', step: 1, 'aria-label': 'Start time', hidden: true });
  const part = h('select', { id: 'tail-partition', name: 'partition' },
    h('option', { value: 'all' }, 'all'),
    Array.from({ length: topic.partitions }, (_, i) => h('option', { value: String(i) }, String(i))));
  const startBtn = h('button', { type: 'submit', class: 'primary', id: 'tail-start' }, 'Start');
  const pauseBtn = h('button', { type: 'button', id: 'tail-pause', 'aria-pressed': 'false', disabled: true }, 'Pause');
  const clearBtn = h('button', { type: 'button', id: 'tail-clear' }, 'Clear');
  const keyFilter = h('input', { id: 'tail-key', type: 'search', placeholder: 'contains…', autocomplete: 'off', spellcheck: 'false' });
  const headerFilter = h('input', { id: 'tail-header', type: 'search', placeholder: 'name or name=value', autocomplete: 'off', spellcheck: 'false' });
  const state = h('span', { id: 'tail-state', class: 'badge' }, 'stopped');
  const received = h('output', { id: 'tail-received', dataset: { count: '0' } }, '0');
  const shown = h('output', { id: 'tail-shown' }, '0');
  const note = h('div', { 'aria-live': 'polite' });
  // Focusable so the keyboard can scroll it.
  const list = h('ol', { id: 'tail-rows', class: 'tail', 'aria-label': 'Records, newest first', tabindex: 0 });

  const syncFrom = () => {
    offset.hidden = from.value !== 'offset';
    time.hidden = from.value !== 'time';
  };
  from.addEventListener('change', syncFrom);

  const form = h('form', { class: 'tail-controls', 'aria-label': 'Live tail controls' },
    h('div', { class: 'row' },
      h('label', { class: 'field' }, h('span', {}, 'Start from'), h('span', { class: 'inline' }, from, offset, time)),
      h('label', { class: 'field' }, h('span', {}, 'Partition'), part),
      h('label', { class: 'field' }, h('span', {}, 'Key filter'), keyFilter),
      h('label', { class: 'field' }, h('span', {}, 'Header filter'), headerFilter)),
    h('div', { class: 'actions start' }, startBtn, pauseBtn, clearBtn,
      h('span', { class: 'counts' }, state, ' received ', received, ' · showing ', shown, ` (last ${MAX_ROWS} kept)`)));

  fill(box, h('h2', {}, 'Live tail'), form, note, list);
  const allowed = gate(startBtn, can('consume', name));

  // Records wait here for the next animation frame; only the newest
  // MAX_ROWS of a burst are drawn.
  let pending = [];
  let kept = []; // newest MAX_ROWS received, for re-filtering
  let count = 0;
  let frame = 0;
  let filter = null;

  const draw = () => {
    frame = 0;
    received.textContent = fmtNum(count);
    received.dataset.count = String(count);
    if (pending.length) {
      // A burst (a catch-up from earliest) arrives partition by partition: draw it in time order.
      const batch = (pending.length > MAX_ROWS ? pending.slice(-MAX_ROWS) : pending)
        .sort((a, b) => a.r.timestamp - b.r.timestamp || a.p - b.p || a.r.offset - b.r.offset);
      pending = [];
      const frag = document.createDocumentFragment();
      for (let i = batch.length - 1; i >= 0; i -= 1) frag.append(recordRow(batch[i].p, batch[i].r));
      list.prepend(frag);
      while (list.childElementCount > MAX_ROWS) list.lastElementChild.remove();
    }
    shown.textContent = fmtNum(list.childElementCount);
  };
  const schedule = () => { if (!frame) frame = requestAnimationFrame(draw); };

  const tail = new TailSocket(name, {
    onRecords(msg) {
      for (const r of msg.records) {
        count += 1;
        const item = { p: msg.partition, r };
        kept.push(item);
        if (!filter || filter(r)) pending.push(item);
      }
      if (kept.length > MAX_ROWS * 2) kept = kept.slice(-MAX_ROWS);
      if (pending.length > MAX_ROWS * 2) pending = pending.slice(-MAX_ROWS); // a hidden tab draws no frames
      schedule();
    },
    onState(s, why) {
      state.textContent = s;
      state.dataset.state = s;
      fill(note, why ? h('div', { class: 'notice' }, why) : null);
    },
    onError(msg) {
      const forbidden = msg.status === 403;
      fill(note, h('div', { class: `notice error${forbidden ? ' forbidden' : ''}`, role: 'alert', dataset: { status: String(msg.status) } },
        h('strong', {}, `${forbidden ? 'Forbidden' : 'Tail error'} (${msg.status}). `), msg.message));
      if (msg.subscription && !tail.subs.size) { state.textContent = 'stopped'; state.dataset.state = 'stopped'; }
    },
  });

  const refilter = () => {
    filter = makeFilter(keyFilter.value, headerFilter.value);
    pending = [];
    list.replaceChildren();
    const items = kept.slice(-MAX_ROWS).filter((it) => !filter || filter(it.r));
    pending = items;
    schedule();
  };
  keyFilter.addEventListener('input', refilter);
  headerFilter.addEventListener('input', refilter);

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (!allowed) return;
    let start = from.value;
    if (start === 'offset') start = String(Math.max(0, Number(offset.value) || 0));
    if (start === 'time') {
      const ms = time.value ? new Date(time.value).getTime() : Date.now();
      start = `ts:${ms}`;
    }
    count = 0; kept = []; pending = [];
    list.replaceChildren();
    fill(note);
    schedule();
    tail.start({ from: start, partitions: part.value === 'all' ? 'all' : [Number(part.value)] });
    startBtn.textContent = 'Restart';
    pauseBtn.disabled = false;
    pauseBtn.textContent = 'Pause';
    pauseBtn.setAttribute('aria-pressed', 'false');
  });

  pauseBtn.addEventListener('click', () => {
    if (tail.paused) {
      tail.resume();
      pauseBtn.textContent = 'Pause';
      pauseBtn.setAttribute('aria-pressed', 'false');
    } else {
      tail.pause();
      pauseBtn.textContent = 'Resume';
      pauseBtn.setAttribute('aria-pressed', 'true');
    }
  });

  clearBtn.addEventListener('click', () => {
    kept = []; pending = [];
    list.replaceChildren();
    schedule();
  });

  // Start from latest straight away: the page is for watching.
  if (allowed) form.requestSubmit();

  return () => {
    tail.close();
    if (frame) cancelAnimationFrame(frame);
  };
}
