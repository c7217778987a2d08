// settings.js — a topic's data-lifecycle settings as the forms and pages
// show them: cleanup policy (delete | compact | compact,delete), retention
// by bytes per partition, and how long tombstones survive key compaction;
// sizes parsed from "1 GiB" or "500 MB" and shown in exact units.

import { h, fmtDuration, parseDuration } from './ui.js';

export const POLICIES = ['delete', 'compact', 'compact,delete'];

/** Whether the topic keeps the latest record per key. */
export const compacts = (topic) => String(topic?.cleanup_policy ?? '').includes('compact');
/** Whether retention (time and bytes) applies to the topic. */
export const deletes = (topic) => String(topic?.cleanup_policy ?? 'delete').includes('delete');

const UNITS = {
  b: 1, k: 2 ** 10, kib: 2 ** 10, m: 2 ** 20, mib: 2 ** 20, g: 2 ** 30, gib: 2 ** 30, t: 2 ** 40, tib: 2 ** 40,
  kb: 1e3, mb: 1e6, gb: 1e9, tb: 1e12,
};

/** Bytes in the largest binary unit that holds them exactly: 1 GiB, 1536 KiB, 1000 B. */
export function fmtSize(n) {
  if (n == null) return 'unlimited';
  for (const [u, size] of [['TiB', 2 ** 40], ['GiB', 2 ** 30], ['MiB', 2 ** 20], ['KiB', 2 ** 10]]) {
    if (n >= size && n % size === 0) return `${n / size} ${u}`;
  }
  return `${n} B`;
}

/**
 * "" or "unlimited" → null; "1 GiB", "1g", "500 MB", "1073741824" → bytes.
 * Zero and negative numbers are passed on: the agent says what it accepts.
 */
export function parseSize(text) {
  const t = String(text ?? '').trim().toLowerCase();
  if (t === '' || t === 'unlimited' || t === 'none') return null;
  const m = /^(-?\d+(?:\.\d+)?)\s*([a-z]*)$/.exec(t);
  const size = m && UNITS[m[2] || 'b'];
  if (!size) throw new Error(`"${text}" is not a size: use e.g. 1 GiB, 500 MB or 1048576, or leave it empty for unlimited`);
  return Math.round(Number(m[1]) * size);
}

/** Retention as one line for a list: "7d", "7d · 1 GiB/partition", "forever". */
export function retentionText(topic) {
  if (!deletes(topic)) return 'not applied';
  const parts = [];
  if (topic.retention_ms != null) parts.push(fmtDuration(topic.retention_ms));
  if (topic.retention_bytes != null) parts.push(`${fmtSize(topic.retention_bytes)}/partition`);
  return parts.length ? parts.join(' · ') : 'forever';
}

/**
 * The cleanup policy, retention bytes and tombstone fields of the create form
 * (`idPrefix` names their ids) and the configure dialog (`topic` fills them).
 * `read()` returns the request fields or throws an Error whose `input` is the
 * field to fix.
 */
export function lifecycleFields({ topic = null, idPrefix = null } = {}) {
  const id = (s) => (idPrefix ? `${idPrefix}-${s}` : null);
  const bytes = h('input', {
    id: id('retention-bytes'), name: 'retention_bytes', autocomplete: 'off', spellcheck: 'false', placeholder: 'unlimited',
    value: topic?.retention_bytes == null ? '' : fmtSize(topic.retention_bytes),
  });
  const policy = h('select', { id: id('cleanup-policy'), name: 'cleanup_policy' },
    POLICIES.map((p) => h('option', { value: p, selected: p === (topic?.cleanup_policy ?? 'delete') }, p)));
  const tomb = h('input', {
    id: id('delete-retention'), name: 'delete_retention', autocomplete: 'off', spellcheck: 'false', placeholder: '1d',
    value: topic ? fmtDuration(topic.delete_retention_ms) : '',
  });
  const tombField = h('label', { class: 'field' }, h('span', {}, 'Tombstones kept'), tomb);
  const sync = () => { tombField.hidden = !policy.value.includes('compact'); };
  policy.addEventListener('change', sync);
  sync();
  const fail = (err, input) => { err.input = input; throw err; };
  return {
    policyField: h('label', { class: 'field' }, h('span', {}, 'Cleanup policy'), policy),
    bytesField: h('label', { class: 'field' }, h('span', {}, 'Retention bytes per partition'), bytes),
    tombField,
    read() {
      const out = { cleanup_policy: policy.value };
      try { out.retention_bytes = parseSize(bytes.value); } catch (err) { fail(err, bytes); }
      if (!topic && out.retention_bytes == null) delete out.retention_bytes;
      if (tomb.value.trim()) {
        let ms;
        try { ms = parseDuration(tomb.value, 0); } catch (err) { fail(err, tomb); }
        if (ms == null) fail(new Error('Tombstones need a time such as 1d or 30m (0 removes them at the next compaction)'), tomb);
        out.delete_retention_ms = ms;
      }
      return out;
    },
  };
}
