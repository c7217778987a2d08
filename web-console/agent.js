// agent.js — the Agent page: throughput, flush and ack latency, cache hit
// rate and open streams as small live charts, from /metrics scraped every
// second by the page itself (no other service).

import { metricsText } from './api.js';
import { canReadMetrics, explainError } from './auth.js';
import { h, fill, facts as factList, fmtNum, fmtBytes, fmtRate } from './ui.js';
import { lineChart } from './chart.js';
import { parseMetrics, total, byLabel, histogram, quantileBetween } from './metrics.js';

const SCRAPE_MS = 1000;
const ms = (v) => (v < 1 ? `${v.toFixed(2)} ms` : v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`);
const pct = (v) => `${v.toFixed(1)} %`;

export async function renderAgent({ main, signal }) {
  const allowed = canReadMetrics();
  if (!allowed.ok) {
    fill(main, h('h1', {}, 'Agent'), h('div', { class: 'notice' }, allowed.reason));
    return undefined;
  }
  const charts = {
    throughput: lineChart({ id: 'chart-throughput', title: 'Throughput', format: (v) => fmtRate(v), series: [{ label: 'produced', className: 's1' }, { label: 'read', className: 's2' }] }),
    ack: lineChart({ id: 'chart-ack', title: 'Produce ack latency', format: ms, series: [{ label: 'p50', className: 's1' }, { label: 'p99', className: 's2' }] }),
    flush: lineChart({ id: 'chart-flush', title: 'Flush latency, p99', format: ms, series: [{ label: 'upload', className: 's1' }, { label: 'commit', className: 's2' }] }),
    cache: lineChart({ id: 'chart-cache', title: 'Cache hit rate', format: pct, fixedTop: 100, series: [{ label: 'all caches', className: 's1' }] }),
    streams: lineChart({ id: 'chart-streams', title: 'Open streams', format: (v) => fmtNum(Math.round(v)), minTop: 4, series: [{ label: 'streams', className: 's1' }, { label: 'connections', className: 's2' }] }),
  };
  let facts = h('dl', { class: 'facts' });
  const caches = h('p', { class: 'muted', id: 'cache-detail' });
  const errorBox = h('div', {});
  fill(main,
    h('h1', {}, 'Agent'),
    h('p', { class: 'muted' }, `From this agent\u2019s /metrics, every ${SCRAPE_MS / 1000} s; the last two minutes.`),
    errorBox,
    facts,
    h('div', { class: 'charts' }, Object.values(charts).map((c) => c.el)),
    caches);

  let prev = null;
  let timer = 0;

  async function scrape() {
    try {
      const text = await metricsText({ signal });
      if (signal.aborted) return;
      fill(errorBox);
      const s = parseMetrics(text);
      const cur = {
        t: performance.now(),
        produced: total(s, 'streamhouse_produce_records_total'),
        producedBytes: total(s, 'streamhouse_produce_bytes_total'),
        read: total(s, 'streamhouse_read_records_total'),
        flushes: total(s, 'streamhouse_flushes_total'),
        hits: byLabel(s, 'streamhouse_cache_hits_total', 'cache'),
        misses: byLabel(s, 'streamhouse_cache_misses_total', 'cache'),
        ack: histogram(s, 'streamhouse_produce_ack_seconds'),
        upload: histogram(s, 'streamhouse_upload_seconds'),
        commit: histogram(s, 'streamhouse_commit_seconds'),
      };
      const streams = total(s, 'streamhouse_open_streams');
      const conns = total(s, 'streamhouse_open_connections');
      if (prev) {
        const dt = (cur.t - prev.t) / 1000;
        const rate = (k) => Math.max(0, (cur[k] - prev[k]) / dt);
        const q = (k, p) => { const v = quantileBetween(prev[k], cur[k], p); return v == null ? null : v * 1000; };
        charts.throughput.push([rate('produced'), rate('read')]);
        charts.ack.push([q('ack', 0.5), q('ack', 0.99)]);
        charts.flush.push([q('upload', 0.99), q('commit', 0.99)]);
        let dh = 0; let dm = 0;
        const per = [];
        for (const name of Object.keys(cur.hits)) {
          const hh = cur.hits[name] - (prev.hits[name] || 0);
          const mm = (cur.misses[name] || 0) - (prev.misses[name] || 0);
          dh += hh; dm += mm;
          const all = cur.hits[name] + (cur.misses[name] || 0);
          per.push(`${name} ${all ? ((100 * cur.hits[name]) / all).toFixed(1) : '–'} %`);
        }
        charts.cache.push([dh + dm > 0 ? (100 * dh) / (dh + dm) : null]);
        caches.textContent = `Hit rate since start, by cache: ${per.join(' · ')}. Flushes: ${fmtRate(rate('flushes'), '/s')}; produced ${fmtBytes(rate('producedBytes'))}/s.`;
      }
      charts.streams.push([streams, conns]);
      facts.replaceWith(facts = factList([
        ['Open connections', fmtNum(conns)],
        ['Open streams', fmtNum(streams)],
        ['Buffered', fmtBytes(total(s, 'streamhouse_buffered_bytes'))],
        ['Memory (RSS)', fmtBytes(total(s, 'process_resident_memory_bytes'))],
        ['Records produced', fmtNum(cur.produced)],
      ]));
      prev = cur;
    } catch (err) {
      if (signal.aborted || err?.name === 'AbortError') return;
      fill(errorBox, explainError(err));
      if (err.status === 403) return;
    }
    if (!signal.aborted) timer = setTimeout(scrape, SCRAPE_MS);
  }
  scrape();
  return () => clearTimeout(timer);
}
