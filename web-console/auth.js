// auth.js — who the caller is (GET /v1/whoami), what its token's scopes
// allow (the same glob rules as the agent), gating buttons with a visible
// reason, the sign-in form for `--auth jwt`, and the Access page.

import { get, token, ApiError } from './api.js';
import { h, fill, facts, explain, fmtDate } from './ui.js';

/** The current caller; `scopes` null means everything is allowed. */
export const session = { auth: 'none', tenant: 'default', subject: 'anonymous', scopes: null, expires_at: null };

export async function loadWhoami() {
  const me = await get('/v1/whoami');
  Object.assign(session, { scopes: null, expires_at: null }, me);
  return session;
}

/** `*` matches any run of characters, as on the agent. */
export function globMatches(glob, name) {
  let gi = 0; let ni = 0; let star = -1; let mark = 0;
  while (ni < name.length) {
    if (gi < glob.length && glob[gi] === '*') { star = gi; mark = ni; gi += 1; }
    else if (gi < glob.length && glob[gi] === name[ni]) { gi += 1; ni += 1; }
    else if (star >= 0) { gi = star + 1; mark += 1; ni = mark; }
    else return false;
  }
  while (gi < glob.length && glob[gi] === '*') gi += 1;
  return gi === glob.length;
}

const KIND = { produce: 'topic', consume: 'topic', admin: 'topic', commit: 'group' };

function parsed() {
  return (session.scopes || []).map((s) => {
    const i = s.indexOf(':');
    return { action: s.slice(0, i), glob: s.slice(i + 1) };
  });
}

/** Whether the token may do `action` to `name`, and if not, why. */
export function can(action, name) {
  if (!session.scopes) return { ok: true };
  if (parsed().some((s) => s.action === action && globMatches(s.glob, name))) return { ok: true };
  return { ok: false, reason: `Your token has no ${action}:<glob> scope matching ${KIND[action] || 'name'} "${name}".` };
}

/** Whether the token has any scope for `action` (before a name is known). */
export function canAny(action) {
  if (!session.scopes) return { ok: true };
  if (parsed().some((s) => s.action === action)) return { ok: true };
  return { ok: false, reason: `Your token has no ${action}:<glob> scope.` };
}

/** `/metrics` wants the operator: tenant default with admin:*. */
export function canReadMetrics() {
  if (!session.scopes) return { ok: true };
  const admin = parsed().some((s) => s.action === 'admin' && /^\*+$/.test(s.glob));
  if (admin && session.tenant === 'default') return { ok: true };
  return { ok: false, reason: 'Agent metrics need a token of tenant "default" with scope admin:*.' };
}

/**
 * Enables or disables `button` by `check` ({ok, reason}); the reason is
 * shown next to it (a disabled button cannot take focus, so a tooltip alone
 * would hide it from keyboard users).
 */
export function gate(button, check) {
  button.disabled = !check.ok;
  button.title = check.ok ? '' : check.reason;
  let why = button.nextElementSibling;
  if (!why || !why.classList.contains('why')) {
    why = h('span', { class: 'why', id: `why-${Math.random().toString(36).slice(2, 9)}` });
    button.after(why);
  }
  why.textContent = check.ok ? '' : check.reason;
  if (check.ok) button.removeAttribute('aria-describedby');
  else button.setAttribute('aria-describedby', why.id);
  return check.ok;
}

/** The explanation of an error, listing the token's scopes on a 403. */
export const explainError = (err) => explain(err, session.scopes);

/** The header's "who am I" line. */
export function renderIdentity(el, onSignOut) {
  if (session.auth !== 'jwt') {
    fill(el, h('span', { class: 'badge' }, 'no auth'), ' ', h('span', { class: 'muted' }, `tenant ${session.tenant}`));
    return;
  }
  const left = session.expires_at ? Math.round((session.expires_at * 1000 - Date.now()) / 60000) : null;
  fill(el,
    h('a', { href: '#/access', class: 'who' }, session.subject),
    h('span', { class: 'muted' }, ` · ${session.tenant}${left != null ? ` · ${left} min left` : ''} `),
    h('button', { type: 'button', class: 'link', onclick: onSignOut }, 'Sign out'));
}

/** The sign-in form; resolves once the agent accepts a token. */
export function signIn(main, message) {
  return new Promise((resolve) => {
    const area = h('textarea', {
      id: 'token', name: 'token', rows: 4, required: true, autocomplete: 'off', spellcheck: 'false',
      placeholder: 'eyJhbGciOi…',
    });
    const status = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'card signin', 'aria-labelledby': 'signin-title' },
      h('h1', { id: 'signin-title' }, 'Sign in'),
      h('p', {}, 'This agent runs with ', h('code', {}, '--auth jwt'),
        '. Paste a bearer token (for example from ', h('code', {}, 'streamhouse token --scope \'consume:*\''),
        '). It is kept in this tab\u2019s session storage only.'),
      message ? h('div', { class: 'notice error', role: 'alert' }, message) : null,
      h('label', { class: 'field', for: 'token' }, h('span', {}, 'Token')),
      area,
      status,
      h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
    form.addEventListener('submit', async (e) => {
      e.preventDefault();
      const value = area.value.trim().replace(/^Bearer\s+/i, '');
      if (!value) return;
      token.set(value);
      try {
        await loadWhoami();
        resolve(session);
      } catch (err) {
        token.clear();
        fill(status, err instanceof ApiError && err.status === 401
          ? h('div', { class: 'notice error', role: 'alert' }, `The agent refused this token: ${err.detail}`)
          : explainError(err));
        area.focus();
      }
    });
    fill(main, form);
    area.focus();
  });
}

const MEANS = {
  produce: 'write records to topics matching',
  consume: 'read and tail topics matching',
  commit: 'commit offsets of, read lag of and reset groups matching',
  admin: 'create, configure and delete topics matching',
};

/** The Access page: what this token allows, in words. */
export function renderAccess(main) {
  if (session.auth !== 'jwt') {
    fill(main, h('h1', {}, 'Access'),
      h('p', {}, 'This agent runs without authentication (', h('code', {}, '--auth none'),
        '): every caller is tenant ', h('code', {}, session.tenant), ' with every right.'));
    return;
  }
  const rows = parsed().map((s) => h('tr', {},
    h('td', {}, h('code', {}, `${s.action}:${s.glob}`)),
    h('td', {}, MEANS[s.action] ? `${MEANS[s.action]} ` : 'unknown action ', h('code', {}, s.glob))));
  const metrics = canReadMetrics();
  fill(main,
    h('h1', {}, 'Access'),
    facts([
      ['Subject', session.subject],
      ['Tenant', session.tenant],
      ['Expires', session.expires_at ? fmtDate(session.expires_at * 1000) : 'never'],
    ]),
    h('h2', {}, 'Scopes'),
    rows.length
      ? h('div', { class: 'table-wrap' }, h('table', {},
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Scope'), h('th', { scope: 'col' }, 'Allows you to'))),
        h('tbody', {}, rows)))
      : h('p', {}, 'This token has no scopes: it can list nothing.'),
    h('p', {}, metrics.ok ? 'You may read the agent\u2019s metrics.' : metrics.reason),
    h('p', { class: 'muted' }, 'Buttons your token cannot use are disabled, with the reason next to them.'));
}
