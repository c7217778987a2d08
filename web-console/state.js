// state.js — the topic page's State panel for key-compacted topics: the
// latest value of each live key from GET /v1/topics/{topic}/snapshot (key,
// partition, offset, pretty value), loaded when shown and on Refresh; the
// first MAX_KEYS keys in key order are drawn.

import { get, seg, exactNumbers } from './api.js';
import { can, gate, explainError } from './auth.js';
import { h, fill, fmtNum, fmtTime, table } from './ui.js';
import { keyText, keyNode, valueNode } from './records.js';

export const MAX_KEYS = 500;

/** Renders the panel into `box`; returns a cleanup function. */
export function renderState(box, topic) {
  const refresh = h('button', { type: 'button', id: 'state-refresh' }, 'Refresh');
  const summary = h('p', { id: 'state-summary', class: 'muted', 'aria-live': 'polite' });
  const body = h('div', {});
  fill(box,
    h('div', { class: 'page-head' }, h('h2', { id: 'state-title' }, 'State'), h('div', { class: 'actions' }, refresh)),
    h('p', { class: 'muted' }, 'The latest value of each key (deleted keys are left out), as of the snapshot.'),
    summary,
    body);
  const allowed = gate(refresh, can('consume', topic.name));
  let ctl = null;

  async function load() {
    ctl?.abort();
    const mine = new AbortController();
    ctl = mine;
    refresh.disabled = true;
    box.setAttribute('aria-busy', 'true');
    try {
      const snap = await get(`/v1/topics/${seg(topic.name)}/snapshot`, { signal: mine.signal, reviver: exactNumbers });
      const all = snap.partitions.flatMap((p) => p.records.map((r) => ({ p: p.partition, r, k: keyText(r) })));
      all.sort((a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : a.p - b.p));
      const shown = all.slice(0, MAX_KEYS);
      summary.textContent = `${fmtNum(all.length)} key${all.length === 1 ? '' : 's'} at ${fmtTime(Date.now())}${
        all.length > shown.length ? `; showing the first ${fmtNum(MAX_KEYS)} in key order` : ''}.`;
      fill(body, all.length
        ? table([{ label: 'Key' }, { label: 'Partition', num: true }, { label: 'Offset', num: true }, { label: 'Value' }],
          shown.map(({ p, r, k }) => h('tr', { dataset: { key: k, partition: p, offset: r.offset } },
            h('th', { scope: 'row' }, keyNode(r)),
            h('td', { class: 'num' }, String(p)),
            h('td', { class: 'num' }, fmtNum(r.offset)),
            h('td', { class: 'value-cell' }, valueNode(r)))),
          { id: 'state-table', class: 'data' })
        : h('p', { class: 'muted' }, 'No live keys yet.'));
      box.dataset.keys = String(all.length);
    } catch (err) {
      if (mine.signal.aborted) return;
      summary.textContent = '';
      fill(body, explainError(err));
    } finally {
      if (ctl === mine) {
        refresh.disabled = !allowed;
        box.removeAttribute('aria-busy');
      }
    }
  }

  refresh.addEventListener('click', load);
  if (allowed) load();
  return () => ctl?.abort();
}
