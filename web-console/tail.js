// tail.js — the topic page's live tail panel (its socket is tail-socket.js):
// start from latest, earliest, an offset or a time; pause and resume; key and
// header filters; rows drawn by records.js (JSON pretty-printed, binary as
// base64). At most MAX_ROWS records stay in the page; the received count
// covers them all. A subscription that fell below its log start (a trim or
// retention) says where the log starts now and offers to resume there.

import { describeTopic } from './api.js';
import { can, gate } from './auth.js';
import { h, fill, fmtNum } from './ui.js';
import { recordRow, headerText, keyText } from './records.js';
import { TailSocket } from './tail-socket.js';

export const MAX_ROWS = 500;

/** A filter from the key and header inputs ("name" or "name=value"). */
function makeFilter(keyIn, headerTextIn) {
  const k = keyIn.trim();
  const hd = headerTextIn.trim();
  if (!k && !hd) return null;
  const eq = hd.indexOf('=');
  const hName = eq >= 0 ? hd.slice(0, eq).trim() : hd;
  const hValue = eq >= 0 ? hd.slice(eq + 1).trim() : null;
  return (r) => {
    if (k) {
      if (!keyText(r).includes(k)) return false;
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
  const behind = h('div', { id: 'tail-behind', 'aria-live': 'polite' });
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

  fill(box, h('h2', {}, 'Live tail'), form, note, behind, list);
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

  // Subscriptions that fell below their partition's log start: [{msg, sub}].
  let failed = [];
  const showBehind = () => {
    if (!failed.length) { fill(behind); return; }
    const resume = h('button', { type: 'button', class: 'primary', id: 'tail-resume-start' }, 'Resume from log start');
    resume.addEventListener('click', resumeFromLogStart);
    fill(behind, h('div', { class: 'notice error', role: 'alert', dataset: { status: '416' } },
      h('strong', {}, 'The tail fell behind the log start. '),
      failed.map(({ msg, sub }) => {
        const low = sub.partitions.filter((p) => tail.wanted(sub, p) < msg.log_start_offset);
        const one = low.length === 1 ? low[0] : null;
        return h('span', { class: 'behind', dataset: { logStart: String(msg.log_start_offset) } },
          one != null ? `Partition ${one}` : `One of partitions ${(low.length ? low : sub.partitions).join(', ')}`,
          ` now starts at offset ${fmtNum(msg.log_start_offset)} (high watermark ${fmtNum(msg.high_watermark)}): `,
          'a trim or retention removed the records below it',
          one != null ? `, so the tail cannot read from offset ${fmtNum(tail.wanted(sub, one))}. ` : '. ');
      }),
      h('div', { class: 'actions start' }, resume)));
  };

  async function resumeFromLogStart(e) {
    const hadFocus = document.activeElement === e.currentTarget;
    e.currentTarget.disabled = true;
    const todo = failed;
    failed = [];
    // The error names the log start of the partition that failed; with
    // several partitions in one subscription, ask for every log start.
    let starts = null;
    if (todo.some(({ sub }) => sub.partitions.length > 1)) {
      try {
        const d = await describeTopic(name);
        starts = new Map(d.partition_details.map((p) => [p.partition, p.log_start_offset]));
      } catch { /* fall back to the errors' log starts */ }
      if (tail.closed) return;
    }
    fill(behind);
    const positions = new Map();
    for (const { msg, sub } of todo) {
      for (const p of sub.partitions) {
        const was = tail.wanted(sub, p);
        const start = starts?.get(p) ?? (was < msg.log_start_offset ? msg.log_start_offset : 0);
        positions.set(p, Math.max(was, start));
      }
    }
    tail.resumeAt(positions);
    setPaused(false);
    if (hadFocus) pauseBtn.focus();
  }

  const tail = new TailSocket(name, {
    partitions: topic.partitions,
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
    onError(msg, sub) {
      if (msg.log_start_offset != null && sub) {
        const overlaps = (a) => a.sub.partitions.some((p) => sub.partitions.includes(p));
        failed = [...failed.filter((f) => !overlaps(f)), { msg, sub }];
        showBehind();
        if (!tail.subs.size) { state.textContent = 'stopped'; state.dataset.state = 'stopped'; }
        return;
      }
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
    failed = [];
    fill(behind);
    schedule();
    tail.start({ from: start, partitions: part.value === 'all' ? 'all' : [Number(part.value)] });
    startBtn.textContent = 'Restart';
    pauseBtn.disabled = false;
    setPaused(false);
  });

  function setPaused(paused) {
    pauseBtn.textContent = paused ? 'Resume' : 'Pause';
    pauseBtn.setAttribute('aria-pressed', String(paused));
  }

  pauseBtn.addEventListener('click', () => {
    if (tail.paused) tail.resume();
    else tail.pause();
    setPaused(tail.paused);
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
