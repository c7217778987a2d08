// ui.js — small DOM helpers the views share: an element builder, number and
// time formatting, error explanations, toasts, a confirmation dialog, and a
// pool for per-row requests.

import { ApiError } from './api.js';

/**
 * Builds an element. `attrs` keys starting with "on" add listeners; `class`,
 * `dataset`, boolean and string attributes are set; children are nodes or
 * text (never parsed as HTML).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k === 'text') el.textContent = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c == null || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

/** Replaces an element's children. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

const nf = new Intl.NumberFormat('en');
export const fmtNum = (n) => (n == null || Number.isNaN(n) ? '–' : nf.format(n));

export function fmtBytes(n) {
  if (n == null || Number.isNaN(n)) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i += 1; }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export function fmtRate(perSecond, unit = 'rec/s') {
  if (perSecond == null || Number.isNaN(perSecond)) return '–';
  const v = perSecond >= 100 ? Math.round(perSecond) : Math.round(perSecond * 10) / 10;
  return `${nf.format(v)} ${unit}`;
}

/** Milliseconds as the largest whole unit: 7d, 12h, 30m, 45s, 500ms. */
export function fmtDuration(ms) {
  if (ms == null) return 'forever';
  if (ms === 0) return '0';
  const units = [['d', 86400000], ['h', 3600000], ['m', 60000], ['s', 1000]];
  for (const [u, size] of units) if (ms % size === 0) return `${ms / size}${u}`;
  return `${ms}ms`;
}

/**
 * Parses "forever" (null), "7d", "12h", "30m", "45s", "500ms" or a bare
 * number of ms; less than `min` ms is refused.
 */
export function parseDuration(text, min = 1) {
  const t = String(text || '').trim().toLowerCase();
  if (t === '' || t === 'forever' || t === 'none') return null;
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|min|h|d|w)?$/.exec(t);
  if (!m) throw new Error(`"${text}" is not a duration (use e.g. 7d, 12h, 30m, or forever)`);
  const size = { ms: 1, s: 1000, m: 60000, min: 60000, h: 3600000, d: 86400000, w: 604800000 }[m[2] || 'ms'];
  const ms = Math.round(Number(m[1]) * size);
  if (ms < min) throw new Error(`"${text}" is too short: at least ${min} ms`);
  return ms;
}

export function fmtTime(ms) {
  const d = new Date(ms);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export const fmtDate = (ms) => new Date(ms).toLocaleString();

/** The agent's detail as a sentence: capitalised, with a full stop. */
const sentence = (text) => {
  const t = String(text || '').trim();
  return t ? `${t[0].toUpperCase()}${t.slice(1)}${/[.!?]$/.test(t) ? '' : '.'}` : '';
};

/** An element explaining an error; 401 and 403 say what the token lacks. */
export function explain(err, scopes) {
  if (!(err instanceof ApiError)) {
    return h('div', { class: 'notice error', role: 'alert' }, `Could not reach the agent: ${err?.message || err}`);
  }
  if (err.status === 403) {
    return h('div', { class: 'notice error forbidden', role: 'alert', dataset: { status: '403' } },
      h('strong', {}, 'Forbidden (403). '),
      sentence(err.detail), ' ',
      scopes
        ? h('span', {}, 'This token\u2019s scopes are: ', scopes.length ? scopes.map((s) => h('code', {}, s)).flatMap((c, i) => (i ? [', ', c] : [c])) : 'none',
          '. Ask for a token whose scopes include the one named above.')
        : null);
  }
  if (err.status === 401) {
    return h('div', { class: 'notice error', role: 'alert', dataset: { status: '401' } },
      h('strong', {}, 'Not signed in (401). '), sentence(err.detail));
  }
  return h('div', { class: 'notice error', role: 'alert', dataset: { status: String(err.status) } },
    h('strong', {}, `${err.title || 'Error'} (${err.status}). `), sentence(err.detail));
}

/** Runs `fn` over `items`, at most `n` at a time (per-row requests of a list page). */
export async function pool(items, n, fn) {
  let i = 0;
  const worker = async () => { while (i < items.length) { const k = i++; await fn(items[k]); } };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** A short message in the corner that goes away by itself. */
export function toast(text, kind = 'info') {
  const box = document.getElementById('toasts');
  if (!box) return;
  const el = h('div', { class: `toast ${kind}` }, text);
  box.append(el);
  setTimeout(() => el.remove(), kind === 'error' ? 8000 : 4000);
}

/**
 * Asks before doing something. With `typeToConfirm`, the button works only
 * once that text is typed. Resolves true when confirmed.
 */
export function confirmDialog({ title, body, confirmLabel = 'Confirm', danger = false, typeToConfirm = null }) {
  return new Promise((resolve) => {
    const input = typeToConfirm
      ? h('input', { type: 'text', autocomplete: 'off', spellcheck: 'false', 'aria-label': `Type ${typeToConfirm} to confirm` })
      : null;
    const ok = h('button', { type: 'submit', class: danger ? 'danger' : 'primary', disabled: !!typeToConfirm }, confirmLabel);
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const form = h('form', {},
      h('h2', {}, title),
      typeof body === 'string' ? h('p', {}, body) : body,
      input ? h('label', { class: 'field' }, h('span', {}, 'Type ', h('code', {}, typeToConfirm), ' to confirm'), input) : null,
      h('div', { class: 'actions' }, cancel, ok));
    const dlg = h('dialog', { class: 'confirm', 'aria-label': title }, form);
    let answer = false;
    input?.addEventListener('input', () => { ok.disabled = input.value !== typeToConfirm; });
    cancel.addEventListener('click', () => dlg.close());
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      if (ok.disabled) return;
      answer = true;
      dlg.close();
    });
    dlg.addEventListener('close', () => { dlg.remove(); resolve(answer); });
    document.body.append(dlg);
    dlg.showModal();
    (input || ok).focus();
  });
}

/** A table inside a horizontally scrolling box (phone-width screens). */
export function table(head, rows, attrs = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', attrs,
      h('thead', {}, h('tr', {}, head.map((c) => h('th', { scope: 'col', class: c.num ? 'num' : null }, c.label ?? c)))),
      h('tbody', {}, rows)));
}

/** A <dl> of [label, value, id?] pairs, each pair in its own group. */
export function facts(pairs, attrs = {}) {
  return h('dl', { class: 'facts', ...attrs },
    pairs.map(([label, value, id]) => h('div', {}, h('dt', {}, label), h('dd', id ? { id } : {}, value))));
}
