// api.js — talking to the agent: JSON requests with the bearer token kept in
// sessionStorage, problem+json errors as ApiError, /metrics text, and the
// WebSocket URL and subprotocols (`bearer.<token>`).

const TOKEN_KEY = 'streamhouse.console.token';

export const token = {
  get() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
  },
  set(value) {
    try { sessionStorage.setItem(TOKEN_KEY, value); } catch { /* storage off: keep nothing */ }
  },
  clear() {
    try { sessionStorage.removeItem(TOKEN_KEY); } catch { /* nothing kept */ }
  },
};

/** An answer that was not 2xx, with the agent's problem+json fields. */
export class ApiError extends Error {
  constructor(status, problem, method, path) {
    const detail = problem?.detail || problem?.title || `HTTP ${status}`;
    super(detail);
    this.name = 'ApiError';
    this.status = status;
    this.detail = detail;
    this.title = problem?.title || '';
    this.code = typeof problem?.type === 'string' ? problem.type.replace(/^urn:streamhouse:problem:/, '') : '';
    this.field = problem?.field;
    this.limit = problem?.limit;
    this.method = method;
    this.path = path;
  }
}

/** Path segment escaping for topic and group names. */
export const seg = encodeURIComponent;

function headers(extra) {
  const h = { Accept: 'application/json', ...extra };
  const t = token.get();
  if (t) h.Authorization = `Bearer ${t}`;
  return h;
}

async function failure(resp, method, path) {
  let problem = null;
  try { problem = await resp.json(); } catch { /* not JSON */ }
  const err = new ApiError(resp.status, problem, method, path);
  if (resp.status === 401) {
    window.dispatchEvent(new CustomEvent('console:unauthorized', { detail: err }));
  }
  return err;
}

/**
 * Sends one request. `body` is an object (sent as JSON) or a string that is
 * already JSON (sent as is, so values stay byte-exact). `reviver` goes to
 * JSON.parse (see exactNumbers).
 */
export async function api(method, path, body, { signal, reviver } = {}) {
  const init = { method, headers: headers(), signal, cache: 'no-store' };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = typeof body === 'string' ? body : JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (!resp.ok) throw await failure(resp, method, path);
  if (resp.status === 204) return null;
  const text = await resp.text();
  return text ? JSON.parse(text, reviver) : null;
}

/**
 * A JSON.parse reviver that keeps the digits of numbers a double would
 * change (where the browser has JSON.rawJSON), so record values show as sent.
 */
export const exactNumbers = typeof JSON.rawJSON === 'function'
  ? (k, v, ctx) => (typeof v === 'number' && ctx?.source && String(v) !== ctx.source ? JSON.rawJSON(ctx.source) : v)
  : undefined;

export const get = (path, opts) => api('GET', path, undefined, opts);
export const post = (path, body, opts) => api('POST', path, body, opts);
export const patch = (path, body, opts) => api('PATCH', path, body, opts);
export const del = (path, opts) => api('DELETE', path, undefined, opts);

/** The agent's Prometheus text. */
export async function metricsText({ signal } = {}) {
  const resp = await fetch('/metrics', { headers: headers({ Accept: 'text/plain' }), signal, cache: 'no-store' });
  if (!resp.ok) throw await failure(resp, 'GET', '/metrics');
  return resp.text();
}

/** Every partition of a topic, following `next_partition` pages. */
export async function describeTopic(name, { signal } = {}) {
  let detail = null;
  let from = 0;
  for (;;) {
    const page = await get(`/v1/topics/${seg(name)}?partition_from=${from}&partition_limit=1000`, { signal });
    if (!detail) detail = page;
    else detail.partition_details.push(...page.partition_details);
    if (page.next_partition == null) return detail;
    from = page.next_partition;
  }
}

/** A WebSocket to /v1/ws carrying the token as a subprotocol. */
export function openSocket() {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const t = token.get();
  const protocols = t ? ['streamhouse.v1', `bearer.${t}`] : ['streamhouse.v1'];
  return new WebSocket(`${scheme}//${location.host}/v1/ws`, protocols);
}
