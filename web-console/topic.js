// topic.js — one topic's page: its settings (cleanup policy, retention,
// tombstones), per-partition log start, high watermark, size, objects and
// index rows (refreshed every 2 s) with a trim per partition (trim.js),
// configure and delete, the State panel of a key-compacted topic
// (state.js), and the produce form and live tail (produce.js, tail.js).

import { describeTopic } from './api.js';
import { can, gate, explainError } from './auth.js';
import { h, fill, facts as factList, fmtNum, fmtBytes, fmtDuration, fmtDate, fmtRate } from './ui.js';
import { configureTopic, deleteTopic, totals } from './topics.js';
import { compacts, deletes, fmtSize } from './settings.js';
import { trimPartition } from './trim.js';
import { renderState } from './state.js';
import { renderProduce } from './produce.js';
import { renderTail } from './tail.js';

const REFRESH_MS = 2000;

export async function renderTopic({ main, params, signal }) {
  const [name] = params;
  let topic = await describeTopic(name, { signal });
  if (signal.aborted) return undefined;

  let facts = h('dl', { class: 'facts' });
  const tbody = h('tbody', {});
  const errorBox = h('div', {});
  const configure = h('button', { type: 'button', id: 'topic-configure' }, 'Configure');
  const remove = h('button', { type: 'button', class: 'danger', id: 'topic-delete' }, 'Delete');
  const stateBox = h('div', {});
  const produceBox = h('section', { class: 'card', 'aria-label': 'Produce' });
  const tailBox = h('section', { class: 'card tail-card', 'aria-label': 'Live tail' });
  const rows = new Map(); // partition -> {tr, cells}
  let stopState = null;
  let last = null;
  let timer = 0;

  fill(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/topics' }, 'Topics'), ' / '),
    h('div', { class: 'page-head' }, h('h1', {}, name), h('div', { class: 'actions' }, configure, remove)),
    facts,
    errorBox,
    h('details', { class: 'partitions', open: topic.partitions <= 16 },
      h('summary', {}, 'Partitions'),
      h('div', { class: 'table-wrap' },
        h('table', { id: 'partitions-table', class: 'data' },
          h('thead', {}, h('tr', {},
            h('th', { scope: 'col', class: 'num' }, 'Partition'),
            h('th', { scope: 'col', class: 'num' }, 'Log start'),
            h('th', { scope: 'col', class: 'num' }, 'High watermark'),
            h('th', { scope: 'col', class: 'num' }, 'Records'),
            h('th', { scope: 'col', class: 'num' }, 'Bytes'),
            h('th', { scope: 'col', class: 'num' }, 'Objects'),
            h('th', { scope: 'col', class: 'num' }, 'Index rows'),
            h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
          tbody))),
    stateBox,
    h('div', { class: 'split' }, produceBox, tailBox));

  gate(configure, can('admin', name));
  gate(remove, can('admin', name));
  configure.addEventListener('click', async () => { if (await configureTopic(topic)) refresh(); });
  remove.addEventListener('click', async () => { if (await deleteTopic(name)) location.hash = '#/topics'; });

  function rowFor(partition) {
    let r = rows.get(partition);
    if (r) return r;
    const num = (col) => h('td', { class: 'num', dataset: col ? { col } : {} });
    const cells = { start: num('log-start'), hw: num('hw'), records: num('records'), bytes: num('bytes'), objects: num('objects'), indexRows: num('index-rows') };
    const trim = h('button', { type: 'button', class: 'small', dataset: { action: 'trim' } },
      'Trim', h('span', { class: 'sr-only' }, ` partition ${partition}`), '…');
    trim.addEventListener('click', async () => {
      const p = topic.partition_details.find((x) => x.partition === partition);
      if (p && await trimPartition(name, p)) refresh();
    });
    r = { cells };
    r.tr = h('tr', { dataset: { partition } }, h('td', { class: 'num' }, String(partition)),
      Object.values(cells), h('td', { class: 'row-actions' }, trim));
    gate(trim, can('admin', name));
    rows.set(partition, r);
    tbody.append(r.tr);
    return r;
  }

  const put = (el, text) => { if (el.textContent !== text) el.textContent = text; };

  function draw() {
    const sum = totals(topic);
    const now = performance.now();
    const rate = last ? Math.max(0, (sum.hw - last.hw) / ((now - last.t) / 1000)) : null;
    last = { hw: sum.hw, t: now };
    const retained = deletes(topic);
    facts.replaceWith(facts = factList([
      ['Partitions', fmtNum(topic.partitions)],
      ['Records', fmtNum(sum.records), 'topic-records'],
      ['Bytes', fmtBytes(sum.bytes)],
      ['Produce rate', fmtRate(rate)],
      ['Cleanup policy', topic.cleanup_policy ?? 'delete', 'topic-policy'],
      ['Retention', retained ? fmtDuration(topic.retention_ms) : 'not applied', 'topic-retention'],
      ['Retention bytes', retained ? (topic.retention_bytes == null ? 'unlimited' : `${fmtSize(topic.retention_bytes)} per partition`) : 'not applied', 'topic-retention-bytes'],
      compacts(topic) ? ['Tombstones kept', fmtDuration(topic.delete_retention_ms), 'topic-delete-retention'] : null,
      ['Compression', topic.compression],
      ['Created', fmtDate(topic.created_at)],
    ].filter(Boolean)));
    for (const p of topic.partition_details) {
      const { cells } = rowFor(p.partition);
      put(cells.start, fmtNum(p.log_start_offset));
      put(cells.hw, fmtNum(p.high_watermark));
      put(cells.records, fmtNum(p.high_watermark - p.log_start_offset));
      put(cells.bytes, fmtBytes(p.bytes));
      put(cells.objects, fmtNum(p.objects));
      put(cells.indexRows, fmtNum(p.index_rows));
    }
    // The State panel follows the policy, which Configure may change.
    if (compacts(topic) && !stopState) {
      const panel = h('section', { class: 'card state', id: 'state-panel', 'aria-labelledby': 'state-title' });
      fill(stateBox, panel);
      stopState = renderState(panel, topic);
    } else if (!compacts(topic) && stopState) {
      stopState();
      stopState = null;
      fill(stateBox);
    }
  }

  let gen = 0;
  async function refresh() {
    clearTimeout(timer);
    const mine = ++gen;
    try {
      const answer = await describeTopic(name, { signal });
      if (signal.aborted || mine !== gen) return;
      topic = answer;
      fill(errorBox);
      draw();
    } catch (err) {
      if (signal.aborted || err?.name === 'AbortError') return;
      fill(errorBox, explainError(err));
    }
    if (!signal.aborted && mine === gen) timer = setTimeout(refresh, REFRESH_MS);
  }

  draw();
  renderProduce(produceBox, topic);
  const stopTail = renderTail(tailBox, topic);
  timer = setTimeout(refresh, REFRESH_MS);
  document.title = `${name} · StreamHouse console`;
  return () => {
    clearTimeout(timer);
    stopTail();
    stopState?.();
    document.title = 'StreamHouse console';
  };
}
