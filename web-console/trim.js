// trim.js — the topic page's "Trim…" dialog: asks for a partition's new log
// start (`before`), says which records will be gone (against the partition's
// bounds read as it opens) before anything is sent, posts the trim (admin)
// and shows the agent's refusal in place, such as the 416 when `before` is
// beyond the high watermark.

import { get, post, seg } from './api.js';
import { explainError } from './auth.js';
import { h, fill, fmtNum, toast } from './ui.js';

/** What trimming `part` (log_start_offset, high_watermark) before `before` does. */
export function trimConsequence(part, before) {
  const start = part.log_start_offset;
  const hw = part.high_watermark;
  if (!Number.isInteger(before) || before < 0) return 'Enter the offset this partition should start at.';
  if (before <= start) return `Offset ${fmtNum(before)} is at or below the log start (${fmtNum(start)}): nothing changes.`;
  const end = Math.min(before, hw) - 1;
  const range = end === start ? `offset ${fmtNum(start)}` : `offsets ${fmtNum(start)} to ${fmtNum(end)}`;
  return `Records below offset ${fmtNum(before)} will be gone: ${range}, for every reader and consumer group. This cannot be undone.${
    before > hw ? ` (The high watermark was ${fmtNum(hw)} when the page last looked.)` : ''}`;
}

/** The dialog; resolves with the trim's answer, or null when cancelled. */
export function trimPartition(topicName, shown) {
  let part = shown;
  return new Promise((resolve) => {
    const title = `Trim partition ${part.partition} of ${topicName}`;
    const before = h('input', {
      name: 'before', type: 'number', min: 0, step: 1, required: true, inputmode: 'numeric',
      autocomplete: 'off', 'aria-describedby': 'trim-consequence',
    });
    const bounds = h('p', { class: 'muted', id: 'trim-bounds' });
    const consequence = h('p', { id: 'trim-consequence', 'aria-live': 'polite' });
    const show = () => {
      bounds.textContent = `Log start ${fmtNum(part.log_start_offset)}, high watermark ${fmtNum(part.high_watermark)}.`;
      consequence.textContent = trimConsequence(part, value());
    };
    const status = h('div', { 'aria-live': 'polite' });
    const ok = h('button', { type: 'submit', class: 'danger' }, 'Trim');
    const cancel = h('button', { type: 'button' }, 'Cancel');
    const form = h('form', {},
      h('h2', {}, title),
      bounds,
      h('label', { class: 'field' }, h('span', {}, 'New log start (before)'), before),
      consequence,
      status,
      h('div', { class: 'actions' }, cancel, ok));
    const dlg = h('dialog', { class: 'confirm', 'aria-label': title }, form);
    const value = () => (before.value.trim() === '' ? NaN : Number(before.value));
    let result = null;
    before.addEventListener('input', () => { show(); fill(status); });
    show();
    // The page's figures may be up to 2 s old: read this partition's bounds now.
    const ctl = new AbortController();
    get(`/v1/topics/${seg(topicName)}?partition_from=${part.partition}&partition_limit=1`, { signal: ctl.signal })
      .then((d) => {
        const fresh = d.partition_details.find((p) => p.partition === part.partition);
        if (fresh) { part = fresh; show(); }
      })
      .catch(() => { /* keep the page's figures */ });
    cancel.addEventListener('click', () => dlg.close());
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const n = value();
      if (!Number.isInteger(n) || n < 0) { before.focus(); return; }
      ok.disabled = true;
      try {
        result = await post(`/v1/topics/${seg(topicName)}/partitions/${part.partition}/trim`, { before: n });
        toast(`Partition ${part.partition} of ${topicName} now starts at offset ${fmtNum(result.log_start_offset)}`);
        dlg.close();
      } catch (err) {
        fill(status, explainError(err));
        ok.disabled = false;
        before.focus();
      }
    });
    dlg.addEventListener('close', () => { ctl.abort(); dlg.remove(); resolve(result); });
    document.body.append(dlg);
    dlg.showModal();
    before.focus();
  });
}
