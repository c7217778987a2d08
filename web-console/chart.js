// chart.js — a small live line chart drawn as SVG: a fixed window of points
// per series, gaps where a value is missing, the scale's top and each
// series' latest value as text (so it reads without the picture too).

import { h } from './ui.js';

const NS = 'http://www.w3.org/2000/svg';
const W = 300;
const H = 80;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * `series`: [{label, className}], `format(v)`: value to text, `points`: how
 * many samples are kept, one every `secondsPerPoint`. Returns {el, push(values)}.
 */
/** The smallest of 1, 2, 2.5, 5 times a power of ten at or above `v`. */
export function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function lineChart({ id, title, series, format, points = 120, minPoints = 30, secondsPerPoint = 1, floor = 0, minTop = 1, fixedTop = null }) {
  const data = series.map(() => []);
  const plot = svg('svg', { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', class: 'plot', 'aria-hidden': 'true', focusable: 'false' });
  const grid = [0.25, 0.5, 0.75].map((f) => svg('line', { x1: 0, x2: W, y1: H * f, y2: H * f, class: 'grid' }));
  plot.append(...grid);
  const paths = series.map((s) => {
    const p = svg('path', { class: `line ${s.className}`, d: '', 'vector-effect': 'non-scaling-stroke' });
    plot.append(p);
    return p;
  });
  const top = h('span', { class: 'scale' });
  const since = h('span', {});
  const legend = series.map((s) => h('span', { class: `legend ${s.className}` }, `${s.label} `, h('b', {}, '–')));
  const el = h('figure', { class: 'chart', id, role: 'group', 'aria-label': title },
    h('figcaption', {}, h('span', { class: 'title' }, title), top),
    plot,
    h('div', { class: 'axis', 'aria-hidden': 'true' }, since, h('span', {}, 'now')),
    h('div', { class: 'legends' }, legend));

  // The window grows with the data up to `points`, so a new chart is not a sliver.
  const span = () => Math.min(points, Math.max(minPoints, data[0].length));

  function path(values, max) {
    let d = '';
    let pen = false;
    const step = W / (span() - 1);
    const offset = span() - values.length;
    values.forEach((v, i) => {
      if (v == null || Number.isNaN(v)) { pen = false; return; }
      const x = (offset + i) * step;
      const y = H - ((v - floor) / (max - floor)) * (H - 2) - 1;
      d += `${pen ? 'L' : 'M'}${x.toFixed(1)},${y.toFixed(1)}`;
      pen = true;
    });
    return d;
  }

  function push(values) {
    values.forEach((v, i) => {
      data[i].push(v);
      if (data[i].length > points) data[i].shift();
    });
    let max = minTop;
    for (const d of data) for (const v of d) if (v != null && v > max) max = v;
    max = fixedTop ?? niceCeil(max);
    data.forEach((d, i) => {
      paths[i].setAttribute('d', path(d, max));
      const lastVal = [...d].reverse().find((v) => v != null);
      legend[i].querySelector('b').textContent = lastVal == null ? '–' : format(lastVal);
    });
    top.textContent = `top ${format(max)}`;
    since.textContent = `${Math.round((span() - 1) * secondsPerPoint)} s ago`;
    el.dataset.samples = String(data[0].length);
  }

  return { el, push };
}
