// topics.js — the Topics page: the list (partitions, records, bytes, produce
// rate, cleanup policy, retention) refreshed every 2 s, the create form, and
// the configure and delete dialogs (also used by the topic page); the
// lifecycle fields come from settings.js.

import { get, post, patch, del, seg, describeTopic } from './api.js';
import { can, canAny, gate, explainError } from './auth.js';
import { h, fill, fmtNum, fmtBytes, fmtRate, fmtDuration, parseDuration, toast, confirmDialog } from './ui.js';
import { lifecycleFields, retentionText } from './settings.js';

const REFRESH_MS = 2000;
const PAGE = 100;

/** Sums a described topic's partitions. */
export function totals(detail) {
  let records = 0; let bytes = 0; let hw = 0;
  for (const p of detail.partition_details) {
    records += p.high_watermark - p.log_start_offset;
    bytes += p.bytes;
    hw += p.high_watermark;
  }
  return { records, bytes, hw };
}

/** Runs `fn` over `items` with at most `n` at once. */
async function pool(items, n, fn) {
  let i = 0;
  const worker = async () => { while (i < items.length) { const k = i++; await fn(items[k], k); } };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

function compressionSelect(value = 'none') {
  return h('select', { name: 'compression' },
    ['none', 'lz4', 'zstd'].map((c) => h('option', { value: c, selected: c === value }, c)));
}

/** The configure dialog; resolves with the new topic, or null when cancelled. */
export function configureTopic(topic) {
  return new Promise((resolve) => {
    const retention = h('input', { name: 'retention', type: 'text', value: topic.retention_ms == null ? 'forever' : fmtDuration(topic.retention_ms), autocomplete: 'off' });
    const compression = compressionSelect(topic.compression);
    const life = lifecycleFields({ topic });
    const status = h('div', { 'aria-live': 'polite' });
    const save = h('button', { type: 'submit', class: 'primary' }, 'Save');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const form = h('form', {},
      h('h2', {}, `Configure ${topic.name}`),
      life.policyField,
      h('label', { class: 'field' }, h('span', {}, 'Retention'), retention,
        h('small', { class: 'muted' }, 'forever, or e.g. 7d, 12h, 30m')),
      life.bytesField,
      h('small', { class: 'muted block' }, 'Retention applies with the delete and compact,delete policies. Bytes: e.g. 1 GiB or 500 MB; empty for unlimited.'),
      life.tombField,
      h('label', { class: 'field' }, h('span', {}, 'Compression of new chunks'), compression),
      status,
      h('div', { class: 'actions' }, cancel, save));
    const dlg = h('dialog', { class: 'confirm', 'aria-label': `Configure ${topic.name}` }, form);
    let result = null;
    cancel.addEventListener('click', () => dlg.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      let body;
      try {
        body = { retention_ms: parseDuration(retention.value), ...life.read(), compression: compression.value };
      } catch (err) {
        fill(status, h('div', { class: 'notice error', role: 'alert' }, err.message));
        (err.input || retention).focus();
        return;
      }
      save.disabled = true;
      try {
        result = await patch(`/v1/topics/${seg(topic.name)}`, body);
        toast(`Topic ${topic.name} configured`);
        dlg.close();
      } catch (err) {
        fill(status, explainError(err));
        save.disabled = false;
      }
    });
    dlg.addEventListener('close', () => { dlg.remove(); resolve(result); });
    document.body.append(dlg);
    dlg.showModal();
    retention.focus();
  });
}

/** Asks, then deletes; resolves true when the topic is gone. */
export async function deleteTopic(name) {
  const ok = await confirmDialog({
    title: `Delete topic ${name}?`,
    body: 'Its records, offsets and open streams go with it. This cannot be undone.',
    confirmLabel: 'Delete topic',
    danger: true,
    typeToConfirm: name,
  });
  if (!ok) return false;
  try {
    await del(`/v1/topics/${seg(name)}`);
    toast(`Topic ${name} deleted`);
    return true;
  } catch (err) {
    toast(`Delete failed: ${err.detail || err.message}`, 'error');
    return false;
  }
}

function createForm(onCreated) {
  const name = h('input', { id: 'new-topic-name', name: 'name', required: true, pattern: '[A-Za-z0-9._\\-]{1,249}', maxlength: 249, autocomplete: 'off', spellcheck: 'false', placeholder: 'orders' });
  const partitions = h('input', { id: 'new-topic-partitions', name: 'partitions', type: 'number', min: 1, value: '3', required: true, inputmode: 'numeric' });
  const retention = h('input', { id: 'new-topic-retention', name: 'retention', placeholder: 'forever', autocomplete: 'off' });
  const compression = compressionSelect();
  compression.id = 'new-topic-compression';
  const life = lifecycleFields({ idPrefix: 'new-topic' });
  const button = h('button', { type: 'submit', class: 'primary', id: 'create-topic' }, 'Create topic');
  const status = h('div', { 'aria-live': 'polite' });
  const regate = () => gate(button, name.value ? can('admin', name.value) : canAny('admin'));
  name.addEventListener('input', regate);
  const form = h('form', { class: 'card create', 'aria-labelledby': 'create-title' },
    h('h2', { id: 'create-title' }, 'New topic'),
    h('div', { class: 'row' },
      h('label', { class: 'field grow' }, h('span', {}, 'Name'), name),
      h('label', { class: 'field' }, h('span', {}, 'Partitions'), partitions),
      h('label', { class: 'field' }, h('span', {}, 'Compression'), compression)),
    h('div', { class: 'row' },
      life.policyField,
      h('label', { class: 'field' }, h('span', {}, 'Retention'), retention),
      life.bytesField,
      life.tombField),
    h('div', { class: 'actions start' }, button),
    status);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fill(status);
    let retention_ms;
    let lifecycle;
    try {
      retention_ms = parseDuration(retention.value);
      lifecycle = life.read();
    } catch (err) {
      fill(status, h('div', { class: 'notice error', role: 'alert' }, err.message));
      (err.input || retention).focus();
      return;
    }
    const body = { name: name.value.trim(), partitions: Number(partitions.value), compression: compression.value, ...lifecycle };
    if (retention_ms != null) body.retention_ms = retention_ms;
    button.disabled = true;
    try {
      const topic = await post('/v1/topics', body);
      toast(`Topic ${topic.name} created`);
      name.value = '';
      onCreated(topic);
    } catch (err) {
      fill(status, explainError(err));
    } finally {
      regate();
    }
  });
  queueMicrotask(regate);
  return form;
}

export async function renderTopics({ main, signal }) {
  const tbody = h('tbody', {});
  const summary = h('p', { class: 'muted', 'aria-live': 'polite' });
  const pager = h('div', { class: 'actions start' });
  const errorBox = h('div', {});
  const rows = new Map(); // name -> {tr, cells, topic}
  const last = new Map(); // name -> {hw, t}
  const cursors = ['']; // `after` of each page seen
  let page = 0;
  let timer = 0;
  let listedOnce = false;

  fill(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Topics')),
    createForm((topic) => { refresh(); location.hash = `#/topics/${seg(topic.name)}`; }),
    errorBox,
    h('div', { class: 'table-wrap' },
      h('table', { id: 'topics-table', class: 'data' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Topic'),
          h('th', { scope: 'col', class: 'num' }, 'Partitions'),
          h('th', { scope: 'col', class: 'num' }, 'Records'),
          h('th', { scope: 'col', class: 'num' }, 'Bytes'),
          h('th', { scope: 'col', class: 'num' }, 'Produce rate'),
          h('th', { scope: 'col' }, 'Cleanup'),
          h('th', { scope: 'col' }, 'Retention'),
          h('th', { scope: 'col' }, 'Compression'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Actions')))),
        tbody)),
    summary,
    pager);

  function rowFor(topic) {
    let r = rows.get(topic.name);
    if (r) { r.topic = topic; return r; }
    const cells = {
      partitions: h('td', { class: 'num' }),
      records: h('td', { class: 'num', dataset: { col: 'records' } }, '…'),
      bytes: h('td', { class: 'num' }, '…'),
      rate: h('td', { class: 'num', dataset: { col: 'rate' } }, '…'),
      policy: h('td', { dataset: { col: 'policy' } }),
      retention: h('td', { dataset: { col: 'retention' } }),
      compression: h('td', {}),
    };
    const configure = h('button', { type: 'button', class: 'small' }, 'Configure');
    const remove = h('button', { type: 'button', class: 'small danger' }, 'Delete');
    r = { cells, topic };
    configure.addEventListener('click', async () => { if (await configureTopic(r.topic)) refresh(); });
    remove.addEventListener('click', async () => { if (await deleteTopic(r.topic.name)) refresh(); });
    const actions = h('td', { class: 'row-actions' }, configure, remove);
    r.tr = h('tr', { dataset: { topic: topic.name } },
      h('th', { scope: 'row' }, h('a', { href: `#/topics/${seg(topic.name)}` }, topic.name)),
      cells.partitions, cells.records, cells.bytes, cells.rate, cells.policy, cells.retention, cells.compression, actions);
    gate(configure, can('admin', topic.name));
    gate(remove, can('admin', topic.name));
    rows.set(topic.name, r);
    return r;
  }

  let busy = false;
  let again = false;
  async function refresh() {
    clearTimeout(timer);
    if (busy) { again = true; return; }
    busy = true;
    try {
      await load();
    } finally {
      busy = false;
    }
    if (signal.aborted) return;
    if (again) { again = false; refresh(); } else timer = setTimeout(refresh, REFRESH_MS);
  }

  async function load() {
    try {
      const after = cursors[page];
      const list = await get(`/v1/topics?limit=${PAGE}${after ? `&after=${seg(after)}` : ''}`, { signal });
      if (signal.aborted) return;
      fill(errorBox);
      const names = list.topics.map((t) => t.name);
      for (const [name, r] of rows) if (!names.includes(name)) { r.tr.remove(); rows.delete(name); }
      const order = list.topics.map((t) => rowFor(t).tr);
      if (order.some((tr, i) => tbody.children[i] !== tr)) tbody.replaceChildren(...order);
      for (const t of list.topics) {
        const { cells } = rows.get(t.name);
        cells.partitions.textContent = fmtNum(t.partitions);
        cells.policy.textContent = t.cleanup_policy ?? 'delete';
        cells.retention.textContent = retentionText(t);
        cells.retention.title = retentionText(t) === 'not applied' ? 'Retention applies with the delete and compact,delete policies' : '';
        cells.compression.textContent = t.compression;
      }
      if (!list.topics.length) {
        tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 9 }, page ? 'No more topics.' : 'No topics yet: create one above.')));
      }
      if (!listedOnce) { listedOnce = true; performance.mark('console:topics-listed'); }
      summary.textContent = `${list.topics.length} topic${list.topics.length === 1 ? '' : 's'} on this page; figures refresh every ${REFRESH_MS / 1000} s.`;
      fill(pager,
        page > 0 ? h('button', { type: 'button', onclick: () => { page -= 1; refresh(); } }, 'Previous page') : null,
        list.next_after ? h('button', { type: 'button', onclick: () => { cursors[page + 1] = list.next_after; page += 1; refresh(); } }, 'Next page') : null);
      const now = performance.now();
      await pool(list.topics, 6, async (t) => {
        try {
          const d = await describeTopic(t.name, { signal });
          const r = rows.get(t.name);
          if (!r) return;
          const sum = totals(d);
          r.cells.records.textContent = fmtNum(sum.records);
          r.cells.bytes.textContent = fmtBytes(sum.bytes);
          const prev = last.get(t.name);
          if (prev) r.cells.rate.textContent = fmtRate(Math.max(0, (sum.hw - prev.hw) / ((now - prev.t) / 1000)));
          else if (r.cells.rate.textContent === '…') r.cells.rate.textContent = '–';
          last.set(t.name, { hw: sum.hw, t: now });
        } catch (err) {
          if (err?.name !== 'AbortError') rows.get(t.name)?.cells.records.replaceChildren(h('span', { class: 'muted', title: err.detail || err.message }, 'n/a'));
        }
      });
      if (signal.aborted) return;
      tbody.dataset.ready = 'true';
      performance.mark('console:topics-figures');
    } catch (err) {
      if (err?.name === 'AbortError' || signal.aborted) return;
      fill(errorBox, explainError(err));
    }
  }

  refresh();
  return () => clearTimeout(timer);
}
