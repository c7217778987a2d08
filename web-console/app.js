// app.js — the console's entry point: start-up (who am I, sign-in when the
// agent wants a token), the hash router (#/topics, #/topics/<name>,
// #/groups, #/groups/<name>, #/webhooks, #/agent, #/access) and the header.
//
// A view is `render(ctx)` where ctx = {main, params, signal}; it may return
// a cleanup function. Leaving a view aborts ctx.signal and runs the cleanup.

import { token, ApiError } from './api.js';
import { session, loadWhoami, signIn, renderIdentity, renderAccess } from './auth.js';
import { fill, h, explain } from './ui.js';

const main = document.getElementById('main');
const identity = document.getElementById('identity');

const routes = [
  [/^#\/topics\/?$/, 'topics', () => import('./topics.js').then((m) => m.renderTopics)],
  [/^#\/topics\/([^/]+)$/, 'topics', () => import('./topic.js').then((m) => m.renderTopic)],
  [/^#\/groups\/?$/, 'groups', () => import('./groups.js').then((m) => m.renderGroups)],
  [/^#\/groups\/([^/]+)$/, 'groups', () => import('./groups.js').then((m) => m.renderGroup)],
  [/^#\/webhooks\/?$/, 'webhooks', () => import('./webhooks.js').then((m) => m.renderWebhooks)],
  [/^#\/agent\/?$/, 'agent', () => import('./agent.js').then((m) => m.renderAgent)],
  [/^#\/access\/?$/, 'access', async () => ({ main: el }) => renderAccess(el)],
];

let current = null; // { abort, cleanup }
let signingIn = false;

function leave() {
  if (!current) return;
  current.abort.abort();
  try { current.cleanup?.(); } catch (e) { console.warn('cleanup failed', e); }
  current = null;
}

async function route() {
  if (signingIn) return;
  const hash = location.hash || '#/topics';
  if (!hash.startsWith('#/')) return; // in-page anchors such as #main
  const found = routes.find(([re]) => re.test(hash));
  if (!found) { location.replace('#/topics'); return; }
  const [re, nav, load] = found;
  const params = (re.exec(hash) || []).slice(1).map(decodeURIComponent);
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  leave();
  const abort = new AbortController();
  const view = { abort, cleanup: null };
  current = view;
  fill(main, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const render = await load();
    if (abort.signal.aborted) return;
    view.cleanup = await render({ main, params, signal: abort.signal });
  } catch (err) {
    if (abort.signal.aborted || err?.name === 'AbortError') return;
    const back = nav === 'groups' ? ['#/groups', 'Back to groups'] : ['#/topics', 'Back to topics'];
    fill(main, explain(err, session.scopes), h('p', {}, h('a', { href: back[0] }, back[1])));
  }
}

function showIdentity() {
  renderIdentity(identity, () => {
    token.clear();
    startSignIn('Signed out.');
  });
}

async function startSignIn(message) {
  if (signingIn) return;
  signingIn = true;
  leave();
  fill(identity);
  for (const a of document.querySelectorAll('[data-nav]')) a.removeAttribute('aria-current');
  await signIn(main, message);
  signingIn = false;
  showIdentity();
  scheduleExpiry();
  route();
}

let expiryTimer = 0;
function scheduleExpiry() {
  clearTimeout(expiryTimer);
  if (!session.expires_at) return;
  const ms = session.expires_at * 1000 - Date.now();
  if (ms < 2 ** 31) {
    expiryTimer = setTimeout(() => { token.clear(); startSignIn('Your token expired. Sign in with a new one.'); }, Math.max(ms, 0));
  }
}

window.addEventListener('console:unauthorized', (e) => {
  if (session.auth === 'jwt' || token.get()) {
    token.clear();
    startSignIn(`The agent refused the token: ${e.detail?.detail || 'unauthorized'}`);
  }
});
window.addEventListener('hashchange', route);
setInterval(() => { if (!signingIn && session.auth === 'jwt') showIdentity(); }, 30000);

async function start() {
  try {
    await loadWhoami();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      session.auth = 'jwt';
      token.clear();
      startSignIn(null); // no-op when the 401 listener already started it
      return;
    }
    fill(main, explain(err));
    return;
  }
  showIdentity();
  scheduleExpiry();
  route();
}

start();
