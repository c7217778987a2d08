// metrics.js — reading the agent's /metrics (Prometheus / OpenMetrics text):
// samples by name and labels, counter rates between two scrapes, and
// histogram quantiles over the interval between two scrapes.

/** Parses the text into Map(name -> [{labels, value}]). */
export function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = /^([A-Za-z_:][A-Za-z0-9_:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[2]) {
      for (const lm of m[2].matchAll(/([A-Za-z_][A-Za-z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    }
    const value = m[3] === '+Inf' ? Infinity : Number(m[3]);
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value });
  }
  return out;
}

/** Sum of a metric's samples whose labels match `where`. */
export function total(samples, name, where = {}) {
  let sum = 0;
  for (const s of samples.get(name) || []) {
    if (Object.entries(where).every(([k, v]) => s.labels[k] === v)) sum += s.value;
  }
  return sum;
}

/** Per-label-value sums, e.g. by cache name. */
export function byLabel(samples, name, label) {
  const out = {};
  for (const s of samples.get(name) || []) {
    const k = s.labels[label] ?? '';
    out[k] = (out[k] || 0) + s.value;
  }
  return out;
}

/** A histogram's cumulative buckets (sorted by le), sum and count. */
export function histogram(samples, base) {
  const buckets = (samples.get(`${base}_bucket`) || [])
    .map((s) => ({ le: s.labels.le === '+Inf' ? Infinity : Number(s.labels.le), count: s.value }))
    .sort((a, b) => a.le - b.le);
  return { buckets, sum: total(samples, `${base}_sum`), count: total(samples, `${base}_count`) };
}

/**
 * The q-quantile of observations made between two scrapes of a histogram,
 * interpolating inside the bucket as Prometheus does; null when none.
 */
export function quantileBetween(prev, cur, q) {
  if (!prev || !cur) return null;
  const n = cur.count - prev.count;
  if (n <= 0) return null;
  const deltas = cur.buckets.map((b, i) => ({ le: b.le, count: b.count - (prev.buckets[i]?.count || 0) }));
  const rank = q * n;
  let below = 0;
  let lower = 0;
  for (const b of deltas) {
    if (b.count >= rank) {
      if (b.le === Infinity) return lower;
      const inBucket = b.count - below;
      return inBucket > 0 ? lower + ((b.le - lower) * (rank - below)) / inBucket : b.le;
    }
    below = b.count;
    lower = b.le;
  }
  return lower;
}

/** Mean of the observations between two scrapes; null when none. */
export function meanBetween(prev, cur) {
  if (!prev || !cur) return null;
  const n = cur.count - prev.count;
  return n > 0 ? (cur.sum - prev.sum) / n : null;
}
