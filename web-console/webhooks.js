// webhooks.js — the Webhooks page: every subscription of the tenant with its
// endpoint, state, delivery counters, lag and last error (refreshed every
// two seconds), and pause or resume for those on topics the token
// administers. Subscriptions are created from the API or the command line.

import { get, post, seg } from './api.js';
import { can, gate, explainError } from './auth.js';
import { h, fill, fmtNum, fmtDate, toast, pool } from './ui.js';

const REFRESH_MS = 2000;

export async function renderWebhooks({ main, signal }) {
  const tbody = h('tbody', {});
  const errorBox = h('div', {});
  const rows = new Map(); // name -> {tr, cells, button}
  let timer = 0;

  fill(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Webhooks')),
    h('p', { class: 'muted' },
      'Subscriptions push a topic\'s records to an HTTPS endpoint, in order per partition, retrying with backoff; records that keep failing go to <name>.dlq. Create them with POST /v1/subscriptions or streamhouse subscriptions create.'),
    errorBox,
    h('div', { class: 'table-wrap' },
      h('table', { id: 'webhooks-table', class: 'data' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Name'),
          h('th', { scope: 'col' }, 'Topic'),
          h('th', { scope: 'col' }, 'Endpoint'),
          h('th', { scope: 'col' }, 'State'),
          h('th', { scope: 'col', class: 'num' }, 'Delivered'),
          h('th', { scope: 'col', class: 'num' }, 'Failed attempts'),
          h('th', { scope: 'col', class: 'num' }, 'Dead-lettered'),
          h('th', { scope: 'col', class: 'num' }, 'Lag'),
          h('th', { scope: 'col' }, 'Last error'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)));

  async function toggle(name) {
    const r = rows.get(name);
    const action = r.paused ? 'resume' : 'pause';
    r.button.disabled = true;
    try {
      const s = await post(`/v1/subscriptions/${seg(name)}/${action}`, undefined, { signal });
      draw(s);
      toast(`${name} ${s.paused ? 'paused' : 'resumed'}`);
    } catch (err) {
      if (err?.name !== 'AbortError') toast(`${action} ${name} failed: ${err.detail || err.message}`, 'error');
    } finally {
      r.button.disabled = false;
      gate(r.button, can('admin', r.topic));
    }
  }

  function row(s) {
    if (rows.has(s.name)) return rows.get(s.name);
    const cells = {
      state: h('td', { dataset: { col: 'state' } }),
      delivered: h('td', { class: 'num', dataset: { col: 'delivered' } }),
      failed: h('td', { class: 'num' }),
      dlq: h('td', { class: 'num' }),
      lag: h('td', { class: 'num', dataset: { col: 'lag' } }, '…'),
      error: h('td', { dataset: { col: 'error' } }),
    };
    const button = h('button', { type: 'button', onclick: () => toggle(s.name) });
    const r = {
      cells,
      button,
      topic: s.topic,
      paused: s.paused,
      tr: h('tr', { dataset: { subscription: s.name } },
        h('th', { scope: 'row' }, s.name),
        h('td', {}, h('a', { href: `#/topics/${seg(s.topic)}` }, s.topic)),
        h('td', {}, h('code', {}, s.url)),
        cells.state, cells.delivered, cells.failed, cells.dlq, cells.lag, cells.error,
        h('td', {}, button)),
    };
    rows.set(s.name, r);
    return r;
  }

  function draw(s) {
    const r = row(s);
    r.paused = s.paused;
    r.cells.state.textContent = s.paused ? 'paused' : 'active';
    r.cells.delivered.textContent = fmtNum(s.delivered);
    r.cells.failed.textContent = fmtNum(s.attempts_failed);
    r.cells.dlq.textContent = fmtNum(s.dead_lettered);
    if (s.lag !== undefined) r.cells.lag.textContent = fmtNum(s.lag);
    r.cells.error.textContent = s.last_error ? `${fmtDate(s.last_error_at)}: ${s.last_error}` : '';
    r.button.textContent = s.paused ? 'Resume' : 'Pause';
    gate(r.button, can('admin', s.topic));
  }

  async function refresh() {
    clearTimeout(timer);
    try {
      const all = [];
      let after = '';
      do {
        const page = await get(`/v1/subscriptions?limit=100${after ? `&after=${seg(after)}` : ''}`, { signal });
        all.push(...page.subscriptions);
        after = page.next_after || '';
      } while (after && all.length < 1000);
      if (signal.aborted) return;
      fill(errorBox);
      const names = new Set(all.map((s) => s.name));
      for (const [name, r] of rows) if (!names.has(name)) { r.tr.remove(); rows.delete(name); }
      for (const s of all) draw({ ...s, lag: undefined });
      const order = all.map((s) => rows.get(s.name).tr);
      if (order.some((tr, i) => tbody.children[i] !== tr) || tbody.children.length !== order.length) tbody.replaceChildren(...order);
      if (!all.length) tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 10 }, 'No subscriptions on topics this token administers.')));
      // The lag is computed per subscription.
      await pool(all, 6, async (s) => {
        try {
          const one = await get(`/v1/subscriptions/${seg(s.name)}`, { signal });
          if (rows.has(s.name)) draw(one);
        } catch (err) {
          if (err?.name !== 'AbortError' && rows.has(s.name)) rows.get(s.name).cells.lag.textContent = `error ${err.status || ''}`;
        }
      });
      if (!signal.aborted) tbody.dataset.ready = 'true';
    } catch (err) {
      if (signal.aborted || err?.name === 'AbortError') return;
      fill(errorBox, explainError(err));
      if (err.status === 403) return;
    }
    if (!signal.aborted) timer = setTimeout(refresh, REFRESH_MS);
  }
  await refresh();
  return () => clearTimeout(timer);
}
