// records.js — how one record reads in the page, shared by the live tail
// and the State panel: its key (text, base64 or none), its value (JSON
// pretty-printed, binary as base64, or a tombstone badge), its headers, and
// the tail's row for it.

import { h, fmtNum, fmtTime, fmtBytes } from './ui.js';

const MAX_VALUE_CHARS = 8000;

export function headerText(hd) {
  if (hd.value != null) return hd.value;
  if (hd.value_b64 != null) return `base64:${hd.value_b64}`;
  return 'null';
}

/** The key as text: itself, `base64:…` when not UTF-8, or '' when absent. */
export const keyText = (r) => r.key ?? (r.key_b64 != null ? `base64:${r.key_b64}` : '');

function clip(text) {
  return text.length > MAX_VALUE_CHARS ? `${text.slice(0, MAX_VALUE_CHARS)}\n… (${fmtNum(text.length)} characters; shown in part)` : text;
}

/** The element for a record's value. */
export function valueNode(r) {
  if (r.value_encoding === 'json') {
    return h('pre', { class: 'value json' }, clip(JSON.stringify(r.value, null, 2)));
  }
  if (r.value_encoding === 'base64') {
    const bytes = Math.floor((r.value.length * 3) / 4) - (r.value.endsWith('==') ? 2 : r.value.endsWith('=') ? 1 : 0);
    return h('div', { class: 'value binary' },
      h('span', { class: 'badge' }, `binary · ${fmtBytes(bytes)} · base64`),
      h('pre', {}, clip(r.value)));
  }
  return h('div', { class: 'value' }, h('span', { class: 'badge' }, 'tombstone (no value)'));
}

/** The element for a record's key. */
export function keyNode(r) {
  if (r.key == null && r.key_b64 == null) return h('span', { class: 'muted' }, 'no key');
  return h('code', { class: 'key' }, keyText(r));
}

/** The live tail's element for one record. */
export function recordRow(partition, r) {
  return h('li', { class: 'rec', dataset: { partition: partition, offset: r.offset, key: r.key ?? '' } },
    h('div', { class: 'meta' },
      h('span', { class: 'pill' }, `p${partition}`),
      h('span', { class: 'off' }, `#${r.offset}`),
      h('time', { datetime: new Date(r.timestamp).toISOString() }, fmtTime(r.timestamp)),
      keyNode(r)),
    r.headers.length
      ? h('div', { class: 'headers' }, r.headers.map((hd) => h('span', { class: 'chip' }, `${hd.key}: ${headerText(hd)}`)))
      : null,
    valueNode(r));
}
