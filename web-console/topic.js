// topic.js — one topic's page: its settings, per-partition log start, high
// watermark and size (refreshed every 2 s), configure and delete, and the
// produce form and live tail beside them (produce.js, tail.js).

import { describeTopic } from './api.js';
import { can, gate, explainError } from './auth.js';
import { h, fill, facts as factList, fmtNum, fmtBytes, fmtDuration, fmtDate, fmtRate } from './ui.js';
import { configureTopic, deleteTopic, totals } from './topics.js';
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
  const produceBox = h('section', { class: 'card', 'aria-label': 'Produce' });
  const tailBox = h('section', { class: 'card tail-card', 'aria-label': 'Live tail' });
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
            h('th', { scope: 'col', class: 'num' }, 'Bytes'))),
          tbody))),
    h('div', { class: 'split' }, produceBox, tailBox));

  gate(configure, can('admin', name));
  gate(remove, can('admin', name));
  configure.addEventListener('click', async () => { if (await configureTopic(topic)) refresh(); });
  remove.addEventListener('click', async () => { if (await deleteTopic(name)) location.hash = '#/topics'; });

  function draw() {
    const sum = totals(topic);
    const now = performance.now();
    const rate = last ? Math.max(0, (sum.hw - last.hw) / ((now - last.t) / 1000)) : null;
    last = { hw: sum.hw, t: now };
    facts.replaceWith(facts = factList([
      ['Partitions', fmtNum(topic.partitions)],
      ['Records', fmtNum(sum.records), 'topic-records'],
      ['Bytes', fmtBytes(sum.bytes)],
      ['Produce rate', fmtRate(rate)],
      ['Retention', fmtDuration(topic.retention_ms)],
      ['Compression', topic.compression],
      ['Created', fmtDate(topic.created_at)],
    ]));
    const rows = topic.partition_details.map((p) => h('tr', { dataset: { partition: p.partition } },
      h('td', { class: 'num' }, String(p.partition)),
      h('td', { class: 'num' }, fmtNum(p.log_start_offset)),
      h('td', { class: 'num', dataset: { col: 'hw' } }, fmtNum(p.high_watermark)),
      h('td', { class: 'num' }, fmtNum(p.high_watermark - p.log_start_offset)),
      h('td', { class: 'num' }, fmtBytes(p.bytes))));
    tbody.replaceChildren(...rows);
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
    document.title = 'StreamHouse console';
  };
}
