// groups.js — the Groups pages: the list with each group's total lag, and one
// group's lag per partition (refreshed every second), its live members with
// their partitions (GET /v1/groups/<name>), and an offset reset when the
// group has no members.

import { get, post, seg, describeTopic } from './api.js';
import { can, gate, explainError } from './auth.js';
import { h, fill, fmtNum, confirmDialog, toast, pool } from './ui.js';

const LIST_REFRESH_MS = 2000;
const LAG_REFRESH_MS = 1000;

export async function renderGroups({ main, signal }) {
  const tbody = h('tbody', {});
  const errorBox = h('div', {});
  const pager = h('div', { class: 'actions start' });
  const rows = new Map();
  const cursors = [''];
  let page = 0;
  let timer = 0;

  fill(main,
    h('div', { class: 'page-head' }, h('h1', {}, 'Consumer groups')),
    h('p', { class: 'muted' }, 'Groups appear once they commit an offset. Lag is the high watermark minus the committed offset, summed over partitions.'),
    errorBox,
    h('div', { class: 'table-wrap' },
      h('table', { id: 'groups-table', class: 'data' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Group'),
          h('th', { scope: 'col' }, 'Topics'),
          h('th', { scope: 'col', class: 'num' }, 'Partitions'),
          h('th', { scope: 'col', class: 'num' }, 'Total lag'))),
        tbody)),
    pager);

  async function refresh() {
    clearTimeout(timer);
    try {
      const after = cursors[page];
      const list = await get(`/v1/groups?limit=100${after ? `&after=${seg(after)}` : ''}`, { signal });
      if (signal.aborted) return;
      fill(errorBox);
      for (const [g, r] of rows) if (!list.groups.includes(g)) { r.tr.remove(); rows.delete(g); }
      const order = list.groups.map((g) => {
        if (!rows.has(g)) {
          const cells = { topics: h('td', {}), parts: h('td', { class: 'num' }), lag: h('td', { class: 'num', dataset: { col: 'lag' } }, '…') };
          rows.set(g, { cells, tr: h('tr', { dataset: { group: g } }, h('th', { scope: 'row' }, h('a', { href: `#/groups/${seg(g)}` }, g)), cells.topics, cells.parts, cells.lag) });
        }
        return rows.get(g).tr;
      });
      if (order.some((tr, i) => tbody.children[i] !== tr) || tbody.children.length !== order.length) tbody.replaceChildren(...order);
      if (!list.groups.length) tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 4 }, 'No groups have committed offsets yet.')));
      fill(pager,
        page > 0 ? h('button', { type: 'button', onclick: () => { page -= 1; refresh(); } }, 'Previous page') : null,
        list.next_after ? h('button', { type: 'button', onclick: () => { cursors[page + 1] = list.next_after; page += 1; refresh(); } }, 'Next page') : null);
      await pool(list.groups, 6, async (g) => {
        const r = rows.get(g);
        if (!r || !can('commit', g).ok) { if (r) r.cells.lag.textContent = 'no access'; return; }
        try {
          const lag = await get(`/v1/groups/${seg(g)}/lag`, { signal });
          r.cells.topics.textContent = [...new Set(lag.partitions.map((p) => p.topic))].join(', ');
          r.cells.parts.textContent = fmtNum(lag.partitions.length);
          r.cells.lag.textContent = fmtNum(lag.total_lag);
        } catch (err) {
          if (err?.name !== 'AbortError') r.cells.lag.textContent = `error ${err.status || ''}`;
        }
      });
      if (!signal.aborted) tbody.dataset.ready = 'true';
    } catch (err) {
      if (signal.aborted || err?.name === 'AbortError') return;
      fill(errorBox, explainError(err));
    }
    if (!signal.aborted) timer = setTimeout(refresh, LIST_REFRESH_MS);
  }
  refresh();
  return () => clearTimeout(timer);
}

/** `topic:partition` of each assigned partition, space-separated. */
const partitionsText = (list) => (list || []).map((a) => `${a.topic}:${a.partition}`).join(' ');

/** The group's live members (GET /v1/groups/<name>): partitions, those being handed over, session left. */
function membersTable(members) {
  return h('div', { class: 'table-wrap' }, h('table', { id: 'members-table', class: 'data' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Member'),
      h('th', { scope: 'col' }, 'Topics'),
      h('th', { scope: 'col' }, 'Partitions'),
      h('th', { scope: 'col' }, 'Handing over'),
      h('th', { scope: 'col', class: 'num' }, 'Session left'))),
    h('tbody', {}, members.map((m) => h('tr', { dataset: { member: m.member_id } },
      h('td', {}, h('code', {}, m.member_id)),
      h('td', {}, (m.topics || []).join(', ')),
      h('td', { dataset: { col: 'assignment' } }, partitionsText(m.assignment)),
      h('td', { dataset: { col: 'revoking' } }, partitionsText(m.revoking)),
      h('td', { class: 'num' }, `${(Math.max(0, m.expires_in_ms) / 1000).toFixed(1)} s`))))));
}

/** Target offsets for a reset, per partition, with the current ones. */
async function planReset({ group, topic, partitions, to, value, lag, signal }) {
  const detail = await describeTopic(topic, { signal });
  const committed = new Map(lag.partitions.filter((p) => p.topic === topic).map((p) => [p.partition, p.committed_offset]));
  const chosen = partitions === 'all'
    ? detail.partition_details
    : detail.partition_details.filter((p) => partitions.includes(p.partition));
  if (!chosen.length) throw new Error(`topic ${topic} has no such partition`);
  const plan = [];
  for (const p of chosen) {
    let offset;
    if (to === 'earliest') offset = p.log_start_offset;
    else if (to === 'latest') offset = p.high_watermark;
    else if (to === 'offset') offset = Number(value);
    else if (to === 'shift') offset = (committed.get(p.partition) ?? p.log_start_offset) + Number(value);
    else if (to === 'time') {
      const ms = new Date(value).getTime();
      if (Number.isNaN(ms)) throw new Error('pick a time');
      const ans = await get(`/v1/topics/${seg(topic)}/partitions/${p.partition}/offsets?timestamp=${ms}`, { signal });
      offset = ans.offset ?? p.high_watermark;
    }
    if (!Number.isFinite(offset)) throw new Error('enter an offset');
    offset = Math.min(Math.max(offset, p.log_start_offset), p.high_watermark);
    plan.push({ topic, partition: p.partition, from: committed.get(p.partition), offset });
  }
  return { group, plan };
}

function resetForm(group, getLag, signal, onDone) {
  const topic = h('input', { id: 'reset-topic', list: 'reset-topics', required: true, autocomplete: 'off', spellcheck: 'false' });
  const topics = h('datalist', { id: 'reset-topics' });
  const parts = h('input', { id: 'reset-partitions', value: 'all', autocomplete: 'off', 'aria-describedby': 'reset-partitions-help' });
  const to = h('select', { id: 'reset-to' },
    h('option', { value: 'earliest' }, 'earliest'),
    h('option', { value: 'latest' }, 'latest'),
    h('option', { value: 'offset' }, 'an offset'),
    h('option', { value: 'time' }, 'a time'),
    h('option', { value: 'shift' }, 'shift by'));
  const num = h('input', { id: 'reset-value', type: 'number', hidden: true, 'aria-label': 'Offset or shift', inputmode: 'numeric' });
  const when = h('input', { id: 'reset-time', type: 'datetime-local', step: 1, hidden: true, 'aria-label': 'Time' });
  const button = h('button', { type: 'submit', id: 'reset-submit', class: 'primary' }, 'Reset offsets…');
  const status = h('div', { 'aria-live': 'polite' });
  to.addEventListener('change', () => {
    num.hidden = !['offset', 'shift'].includes(to.value);
    when.hidden = to.value !== 'time';
  });
  const form = h('form', { class: 'card', id: 'reset-form', 'aria-labelledby': 'reset-title' },
    h('h2', { id: 'reset-title' }, 'Reset offsets'),
    h('p', { class: 'muted' }, 'The group has no members, so its committed offsets can be moved.'),
    h('div', { class: 'row' },
      h('label', { class: 'field grow' }, h('span', {}, 'Topic'), topic, topics),
      h('label', { class: 'field' }, h('span', {}, 'Partitions'), parts, h('small', { id: 'reset-partitions-help', class: 'muted' }, 'all, or e.g. 0,2')),
      h('label', { class: 'field' }, h('span', {}, 'To'), h('span', { class: 'inline' }, to, num, when))),
    h('div', { class: 'actions start' }, button),
    status);
  gate(button, can('commit', group));
  get('/v1/topics?limit=1000', { signal }).then((list) => {
    fill(topics, list.topics.map((t) => h('option', { value: t.name })));
  }).catch(() => {});
  const lagTopics = [...new Set(getLag()?.partitions.map((p) => p.topic) || [])];
  if (lagTopics.length) topic.value = lagTopics[0];

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    fill(status);
    const spec = parts.value.trim();
    let partitions = 'all';
    if (spec && spec !== 'all') {
      partitions = spec.split(',').map((s) => Number(s.trim()));
      if (partitions.some((p) => !Number.isInteger(p) || p < 0)) {
        fill(status, h('div', { class: 'notice error', role: 'alert' }, 'Partitions: "all" or numbers separated by commas.'));
        return;
      }
    }
    let plan;
    try {
      ({ plan } = await planReset({ group, topic: topic.value.trim(), partitions, to: to.value, value: to.value === 'time' ? when.value : num.value, lag: getLag(), signal }));
    } catch (err) {
      fill(status, err.status ? explainError(err) : h('div', { class: 'notice error', role: 'alert' }, err.message));
      return;
    }
    const body = h('div', {},
      h('p', {}, `Commit these offsets for group ${group}?`),
      h('div', { class: 'table-wrap' }, h('table', { class: 'data' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Topic'), h('th', { scope: 'col', class: 'num' }, 'Partition'), h('th', { scope: 'col', class: 'num' }, 'Now'), h('th', { scope: 'col', class: 'num' }, 'New'))),
        h('tbody', {}, plan.map((p) => h('tr', {}, h('td', {}, p.topic), h('td', { class: 'num' }, String(p.partition)), h('td', { class: 'num' }, p.from == null ? '–' : fmtNum(p.from)), h('td', { class: 'num' }, fmtNum(p.offset))))))));
    if (!(await confirmDialog({ title: 'Reset offsets', body, confirmLabel: 'Commit offsets' }))) return;
    try {
      await post(`/v1/groups/${seg(group)}/offsets`, { offsets: plan.map(({ topic: t, partition, offset }) => ({ topic: t, partition, offset })) });
      toast(`Offsets of ${group} reset`);
      onDone();
    } catch (err) {
      fill(status, explainError(err));
    }
  });
  return form;
}

export async function renderGroup({ main, params, signal }) {
  const [group] = params;
  const total = h('output', { id: 'group-total-lag' }, '…');
  const tbody = h('tbody', {});
  const errorBox = h('div', {});
  const membersBox = h('section', { 'aria-label': 'Members' });
  const resetBox = h('div', {});
  const cells = new Map(); // "topic/partition" -> {tr, committed, hw, lag, bar}
  let lag = null;
  let described = null;
  let timer = 0;
  let hadMembers = null;

  fill(main,
    h('nav', { class: 'crumbs', 'aria-label': 'Breadcrumb' }, h('a', { href: '#/groups' }, 'Groups'), ' / '),
    h('div', { class: 'page-head' }, h('h1', {}, group), h('p', { class: 'big' }, 'Total lag ', total)),
    errorBox,
    h('div', { class: 'table-wrap' },
      h('table', { id: 'lag-table', class: 'data' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col' }, 'Topic'),
          h('th', { scope: 'col', class: 'num' }, 'Partition'),
          h('th', { scope: 'col', class: 'num' }, 'Committed'),
          h('th', { scope: 'col', class: 'num' }, 'High watermark'),
          h('th', { scope: 'col', class: 'num' }, 'Lag'),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only' }, 'Lag bar')))),
        tbody)),
    h('p', { class: 'muted' }, `Refreshed every ${LAG_REFRESH_MS / 1000} s.`),
    membersBox,
    resetBox);

  const set = (el, text) => {
    if (el.textContent === text) return;
    const changed = el.textContent !== '';
    el.textContent = text;
    if (changed) { el.classList.remove('changed'); void el.offsetWidth; el.classList.add('changed'); }
  };

  function draw() {
    set(total, fmtNum(lag.total_lag));
    total.dataset.lag = String(lag.total_lag);
    const max = Math.max(1, ...lag.partitions.map((p) => p.lag));
    const keys = [];
    for (const p of lag.partitions) {
      const k = `${p.topic}/${p.partition}`;
      keys.push(k);
      let c = cells.get(k);
      if (!c) {
        c = { committed: h('td', { class: 'num' }), hw: h('td', { class: 'num' }), lag: h('td', { class: 'num', dataset: { col: 'lag' } }), bar: h('span', { class: 'bar' }) };
        c.tr = h('tr', { dataset: { topic: p.topic, partition: p.partition } },
          h('td', {}, h('a', { href: `#/topics/${seg(p.topic)}` }, p.topic)), h('td', { class: 'num' }, String(p.partition)),
          c.committed, c.hw, c.lag, h('td', { class: 'barcell' }, c.bar));
        cells.set(k, c);
      }
      set(c.committed, fmtNum(p.committed_offset));
      set(c.hw, fmtNum(p.high_watermark));
      set(c.lag, fmtNum(p.lag));
      c.lag.dataset.lag = String(p.lag);
      c.bar.style.width = `${(100 * p.lag) / max}%`;
    }
    for (const [k, c] of cells) if (!keys.includes(k)) { c.tr.remove(); cells.delete(k); }
    const order = keys.map((k) => cells.get(k).tr);
    if (order.some((tr, i) => tbody.children[i] !== tr) || tbody.children.length !== order.length) tbody.replaceChildren(...order);
    if (!lag.partitions.length) tbody.replaceChildren(h('tr', { class: 'empty' }, h('td', { colspan: 6 }, 'This group has committed no offsets.')));

    const members = described?.members ?? [];
    const hasMembers = members.length > 0;
    if (hasMembers) {
      fill(membersBox,
        h('h2', {}, 'Members'),
        h('p', { class: 'muted' }, `Generation ${described.generation}, ${described.state}.`),
        membersTable(members));
    } else fill(membersBox);
    if (hasMembers !== hadMembers) {
      hadMembers = hasMembers;
      fill(resetBox, hasMembers
        ? h('p', { class: 'muted' }, 'Offsets can be reset once the group has no members.')
        : resetForm(group, () => lag, signal, refresh));
    }
  }

  let gen = 0;
  async function refresh() {
    clearTimeout(timer);
    const mine = ++gen;
    try {
      const [answer, about] = await Promise.all([
        get(`/v1/groups/${seg(group)}/lag`, { signal }),
        get(`/v1/groups/${seg(group)}`, { signal }),
      ]);
      if (signal.aborted || mine !== gen) return;
      lag = answer;
      described = about;
      fill(errorBox);
      draw();
    } catch (err) {
      if (signal.aborted || err?.name === 'AbortError') return;
      fill(errorBox, explainError(err));
      if (err.status === 403) return; // nothing will change by asking again
    }
    if (!signal.aborted && mine === gen) timer = setTimeout(refresh, LAG_REFRESH_MS);
  }
  await refresh();
  return () => clearTimeout(timer);
}
