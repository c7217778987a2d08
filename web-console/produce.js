// produce.js — the topic page's produce form: key, a JSON value (sent
// byte-exact as typed), raw text (sent as bytes) or no value (tombstone),
// headers and an optional partition; lists the offsets each send got.

import { post, seg } from './api.js';
import { can, gate, explainError } from './auth.js';
import { h, fill, fmtTime } from './ui.js';

/** "name=value" or "name: value" per line into a list of header pairs. */
export function parseHeaders(text) {
  const out = [];
  for (const [i, raw] of String(text).split('\n').entries()) {
    const line = raw.trim();
    if (!line) continue;
    const m = /^([^=:]+?)\s*[=:]\s?(.*)$/.exec(line);
    if (!m) throw new Error(`header line ${i + 1} needs "name=value"`);
    out.push({ key: m[1].trim(), value: m[2] });
  }
  return out;
}

function utf8ToBase64(text) {
  const bytes = new TextEncoder().encode(text);
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** The request body; a JSON value is spliced in as typed so it stays byte-exact. */
export function produceBody({ key, mode, value, headers, partition }) {
  const rec = {};
  if (key !== '') rec.key = key;
  if (headers.length) rec.headers = headers;
  if (partition !== '') rec.partition = Number(partition);
  let valuePart = '';
  if (mode === 'json') {
    const text = value.trim();
    if (!text) throw new Error('Enter a JSON value, or pick "raw text".');
    try { JSON.parse(text); } catch (e) { throw new Error(`The value is not JSON: ${e.message}`); }
    valuePart = `"value":${text}`;
  } else if (mode === 'raw') {
    rec.value_b64 = utf8ToBase64(value);
  }
  const head = JSON.stringify(rec).slice(0, -1);
  const sep = valuePart && head.length > 1 ? ',' : '';
  return `{"records":[${head}${sep}${valuePart}}]}`;
}

/** Renders the produce form into `box`. */
export function renderProduce(box, topic) {
  const key = h('input', { id: 'produce-key', name: 'key', autocomplete: 'off', spellcheck: 'false', placeholder: 'optional' });
  const mode = h('select', { id: 'produce-mode', name: 'mode' },
    h('option', { value: 'json' }, 'JSON'),
    h('option', { value: 'raw' }, 'raw text (bytes)'),
    h('option', { value: 'none' }, 'no value (tombstone)'));
  const value = h('textarea', { id: 'produce-value', name: 'value', rows: 5, spellcheck: 'false', placeholder: '{"item": "book", "qty": 1}' });
  const headers = h('textarea', { id: 'produce-headers', name: 'headers', rows: 2, spellcheck: 'false', placeholder: 'source=web' });
  const partition = h('select', { id: 'produce-partition', name: 'partition' },
    h('option', { value: '' }, 'by key (or round-robin)'),
    Array.from({ length: topic.partitions }, (_, i) => h('option', { value: String(i) }, String(i))));
  const send = h('button', { type: 'submit', class: 'primary', id: 'produce-send' }, 'Produce');
  const status = h('div', { 'aria-live': 'polite' });
  const results = h('ol', { id: 'produce-results', class: 'results', 'aria-label': 'Offsets received' });
  mode.addEventListener('change', () => { value.disabled = mode.value === 'none'; });

  const form = h('form', { class: 'produce', 'aria-labelledby': 'produce-title' },
    h('h2', { id: 'produce-title' }, 'Produce'),
    h('div', { class: 'row' },
      h('label', { class: 'field grow' }, h('span', {}, 'Key'), key),
      h('label', { class: 'field' }, h('span', {}, 'Value is'), mode),
      h('label', { class: 'field' }, h('span', {}, 'Partition'), partition)),
    h('label', { class: 'field' }, h('span', {}, 'Value'), value),
    h('label', { class: 'field' }, h('span', {}, 'Headers, one name=value per line'), headers),
    h('div', { class: 'actions start' }, send),
    status,
    results);
  fill(box, form);
  const allowed = gate(send, can('produce', topic.name));

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    if (!allowed) return;
    fill(status);
    let body;
    try {
      body = produceBody({ key: key.value, mode: mode.value, value: value.value, headers: parseHeaders(headers.value), partition: partition.value });
    } catch (err) {
      fill(status, h('div', { class: 'notice error', role: 'alert' }, err.message));
      return;
    }
    send.disabled = true;
    try {
      const answer = await post(`/v1/topics/${seg(topic.name)}/records`, body);
      for (const o of answer.offsets) {
        results.prepend(h('li', { dataset: { partition: o.partition, offset: o.offset } },
          h('time', {}, fmtTime(Date.now())), ` partition ${o.partition}, offset ${o.offset}`));
      }
      while (results.childElementCount > 10) results.lastElementChild.remove();
    } catch (err) {
      fill(status, explainError(err));
    } finally {
      send.disabled = false;
    }
  });
}
