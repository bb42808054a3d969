/*
 * The Skiff dashboard (served at /ui; docs/DASHBOARD.md). Plain browser JavaScript, no build step
 * and no framework. It asks for an API key, keeps it in sessionStorage, and reads the gateway's
 * API with it: /v1/whoami, /v1/stats/functions, /v1/functions/:name/invocations,
 * /v1/functions/:name/logs, and for an admin key /v1/functions, /v1/tenants and /v1/workers.
 * Every value is put on the page as text (never as HTML). The page's Content-Security-Policy
 * allows no inline script or style: styling is by class only.
 *
 * What a key sees follows its role: the gateway already scopes every answer to the key's tenant;
 * the page only avoids asking for what the role may not read (no 403 in the console), and shows
 * an admin key the tenant of each function and a filter by tenant.
 */
/* global document, window, sessionStorage, fetch, confirm, Node */

const KEY = 'skiff.apiKey';
const SVG = 'http://www.w3.org/2000/svg';
/** How often the shown view reloads, ms. */
const REFRESH_MS = { functions: 5000, function: 5000, workers: 2000 };

const state = {
  windowMinutes: 60,
  /** The invocation whose logs are shown, in the function view. */
  selected: undefined,
  timer: undefined,
  /** Bumped at each navigation: answers for an older view are dropped. */
  generation: 0,
  /** GET /v1/whoami for the key in use: {keyId, tenant, role, functions}; undefined until known. */
  me: undefined,
  /** The admin's tenant filter on the functions view; '' for every tenant. */
  tenant: '',
};

const isAdmin = () => state.me?.role === 'admin';
/** Roles that may read stats and invocations (infra/tenancy/roles.ts, stats:read): all but invoker. */
const readsFunctions = () => state.me !== undefined && state.me.role !== 'invoker';

const $ = (id) => {
  const found = document.getElementById(id);
  if (!found) throw new Error(`no element #${id}`);
  return found;
};

class KeyRefused extends Error {}

/** Fetches an API path with the key; JSON back, or an Error with the API's code and message. */
async function api(path, init = {}) {
  const key = sessionStorage.getItem(KEY);
  if (!key) throw new KeyRefused('no API key');
  const res = await fetch(path, { ...init, headers: { authorization: `Bearer ${key}`, ...(init.headers ?? {}) } });
  const body = await res.json().catch(() => ({}));
  if (res.status === 401) {
    sessionStorage.removeItem(KEY);
    showLogin(body.error?.message ?? 'The API key was refused.');
    throw new KeyRefused('the API key was refused');
  }
  if (!res.ok) throw new Error(body.error ? `${body.error.code}: ${body.error.message}` : `HTTP ${res.status}`);
  return body;
}

/** An element with attributes (class, data-*, on<event>, others as attributes) and text or node children. */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? '' : String(value));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, String(value));
  if (text !== undefined) node.textContent = text;
  return node;
}

const ms = (v) => (v === null || v === undefined ? '–' : v === 0 ? '0 ms' : v >= 1000 ? `${(v / 1000).toFixed(2)} s` : `${v < 10 ? v.toFixed(1) : Math.round(v)} ms`);
const percent = (v) => (v === null || v === undefined ? '–' : `${Math.round(v * 100)}%`);
const time = (iso) => new Date(iso).toLocaleTimeString([], { hour12: false });
const mb = (v) => (v >= 1024 ? `${(v / 1024).toFixed(1)} GB` : `${Math.round(v)} MB`);
const since = (msAgo) => (msAgo < 1000 ? 'just now' : msAgo < 60_000 ? `${Math.round(msAgo / 1000)} s ago` : `${Math.round(msAgo / 60_000)} min ago`);

function setStatus(text, isError = false) {
  const status = $('status');
  status.textContent = text;
  status.classList.toggle('error', isError);
}

/** Makes a table row act as a link: click, Enter or Space. */
function clickable(row, action) {
  row.classList.add('clickable');
  row.tabIndex = 0;
  row.addEventListener('click', action);
  row.addEventListener('keydown', (event) => {
    if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      action();
    }
  });
  return row;
}

function replaceRows(table, rows) {
  table.tBodies[0].replaceChildren(...rows);
}

// ---------------------------------------------------------------- views

const VIEWS = ['login-view', 'functions-view', 'function-view', 'workers-view'];

function show(view) {
  for (const id of VIEWS) $(id).hidden = id !== view;
  const signedIn = view !== 'login-view';
  $('nav').hidden = !signedIn;
  $('sign-out').hidden = !signedIn;
  for (const link of document.querySelectorAll('[data-nav]')) {
    link.classList.toggle('active', view.startsWith(link.dataset.nav.replace(/s$/, '')));
  }
}

function showLogin(message = '') {
  stopRefresh();
  state.generation++;
  forget();
  show('login-view');
  $('login-error').textContent = message;
  setStatus('');
  $('api-key').focus();
}

async function loadFunctions(generation) {
  const admin = isAdmin();
  $('functions-unreadable').hidden = readsFunctions();
  if (!readsFunctions()) {
    $('functions-empty').hidden = true;
    replaceRows($('functions-table'), []);
    return;
  }
  // The stats name no tenant: an admin's page learns each function's from /v1/functions, which
  // also filters by tenant, and the filter's choices from /v1/tenants.
  const filter = admin ? state.tenant : '';
  const [data, described, tenants] = await Promise.all([
    api(`/v1/stats/functions?windowMinutes=${state.windowMinutes}`),
    admin ? api(filter ? `/v1/functions?tenant=${encodeURIComponent(filter)}` : '/v1/functions') : undefined,
    admin ? api('/v1/tenants') : undefined,
  ]);
  if (generation !== state.generation) return;
  const tenantOf = new Map((described?.functions ?? []).map((f) => [f.name, f.tenant]));
  if (tenants) fillTenantFilter(tenants.tenants.map((t) => t.name));
  const shown = filter ? data.functions.filter((f) => tenantOf.has(f.name)) : data.functions;
  $('tenant-column').hidden = !admin;
  $('functions-empty').hidden = shown.length > 0;
  $('functions-empty').textContent = filter ? `Tenant ${filter} has no function.` : 'No function is deployed yet.';
  replaceRows(
    $('functions-table'),
    shown.map((f) =>
      clickable(
        el(
          'tr',
          { 'data-function': f.name, 'data-tenant': admin ? (tenantOf.get(f.name) ?? '') : undefined },
          el('td', { class: 'name' }, el('a', { href: `#/functions/${encodeURIComponent(f.name)}` }, f.name)),
          admin ? el('td', { class: 'tenant' }, tenantOf.get(f.name) ?? '–') : undefined,
          el('td', { class: 'num calls' }, f.calls),
          el('td', { class: 'num rate' }, f.callsPerMinute),
          el('td', { class: `num errors${f.errors > 0 ? ' errors-some' : ''}` }, f.errors),
          el('td', { class: 'num p50' }, ms(f.p50Ms)),
          el('td', { class: 'num p99' }, ms(f.p99Ms)),
          el('td', { class: 'num cold-ratio', title: `${f.coldStarts} cold starts` }, percent(f.coldStartRatio)),
          el('td', { class: 'num instances' }, `${f.instances.busy} / ${f.instances.idle}`),
        ),
        () => navigate(`#/functions/${encodeURIComponent(f.name)}`),
      ),
    ),
  );
}

/** The admin's tenant filter: one option per tenant, rebuilt only when the tenants change. */
function fillTenantFilter(names) {
  const select = $('tenant-filter');
  const sorted = [...names].sort();
  const current = [...select.options].slice(1).map((o) => o.value);
  if (current.join('\n') !== sorted.join('\n')) {
    select.replaceChildren(el('option', { value: '' }, 'every tenant'), ...sorted.map((name) => el('option', { value: name }, name)));
  }
  // A tenant deleted meanwhile: back to every tenant.
  if (state.tenant && !sorted.includes(state.tenant)) state.tenant = '';
  select.value = state.tenant;
}

/** Who the key is, once per sign-in: the header says "tenant · role"; admin-only parts show for admins. */
async function identify() {
  if (state.me === undefined) state.me = await api('/v1/whoami');
  const me = state.me;
  const who = $('whoami');
  who.textContent = `${me.tenant} · ${me.role}`;
  who.title = `key ${me.keyId}${me.functions ? `, limited to ${me.functions.join(', ')}` : ''}`;
  who.hidden = false;
  $('nav-workers').hidden = !isAdmin();
  $('tenant-filter-label').hidden = !isAdmin();
  $('tenant-column').hidden = !isAdmin();
}

function forget() {
  state.me = undefined;
  state.tenant = '';
  $('whoami').hidden = true;
  $('whoami').textContent = '';
  $('nav-workers').hidden = true;
  $('tenant-filter-label').hidden = true;
}

async function loadFunction(name, generation) {
  const [stats, list, described] = await Promise.all([
    api(`/v1/stats/functions/${encodeURIComponent(name)}?windowMinutes=60`),
    api(`/v1/functions/${encodeURIComponent(name)}/invocations?limit=50`),
    api(`/v1/functions/${encodeURIComponent(name)}`),
  ]);
  if (generation !== state.generation) return;
  const f = stats.function;
  $('function-summary').replaceChildren(
    ...[
      ['calls', f.calls],
      ['calls/min', f.callsPerMinute],
      ['errors', f.errors],
      ['p50', ms(f.p50Ms)],
      ['p99', ms(f.p99Ms)],
      ['cold starts', `${f.coldStarts} (${percent(f.coldStartRatio)})`],
      ['instances busy / idle', `${f.instances.busy} / ${f.instances.idle}`],
    ].map(([label, value]) => el('span', {}, el('b', {}, `${label}:`), value)),
    el('span', { class: 'hint' }, 'last hour'),
  );
  // Settings the platform acts on by itself: its schedules (the calls it makes) and its URL's CORS.
  const schedules = described.schedules ?? [];
  const cors = described.cors;
  $('function-settings').replaceChildren(
    el('span', {}, el('b', {}, 'schedules:'), schedules.length > 0 ? schedules.map((s) => (s.everyMs !== undefined ? `every ${s.everyMs} ms` : s.expression)).join('; ') : 'none'),
    el('span', {}, el('b', {}, 'CORS origins:'), cors ? cors.allowOrigins.join(' ') || '–' : 'none'),
  );
  drawChart($('latency-chart'), stats.minutes);
  $('invocations-empty').hidden = list.invocations.length > 0;
  replaceRows(
    $('invocations-table'),
    list.invocations.map((inv) => {
      const row = el(
        'tr',
        { 'data-invocation': inv.id, class: inv.id === state.selected ? 'selected' : undefined, title: inv.error ? `${inv.error.code}: ${inv.error.message}` : undefined },
        el('td', {}, time(inv.createdAt)),
        el('td', { class: 'id' }, inv.id),
        el('td', { class: 'num' }, inv.version),
        el('td', { class: `status status-${inv.status}` }, inv.error ? `${inv.status} (${inv.error.code})` : inv.status),
        el('td', { class: 'num duration' }, ms(inv.durationMs)),
        el('td', { class: inv.cold ? 'start cold' : 'start' }, inv.cold === null ? '–' : inv.cold ? 'cold' : 'warm'),
        el('td', { class: 'id' }, inv.workerId ?? '–'),
      );
      return clickable(row, () => void selectInvocation(name, inv.id));
    }),
  );
}

async function selectInvocation(name, id) {
  state.selected = id;
  for (const row of $('invocations-table').tBodies[0].rows) row.classList.toggle('selected', row.dataset.invocation === id);
  $('logs-panel').hidden = false;
  $('logs-invocation').textContent = id;
  $('logs-error').textContent = '';
  const generation = state.generation;
  try {
    const data = await api(`/v1/functions/${encodeURIComponent(name)}/logs?invocation=${encodeURIComponent(id)}&limit=1000`);
    if (generation !== state.generation || state.selected !== id) return;
    $('logs').replaceChildren(
      ...(data.lines.length === 0
        ? [el('div', { class: 'line hint' }, '(no log lines)')]
        : data.lines.map((l) => el('div', { class: `line ${l.stream}` }, el('span', { class: 'at' }, time(l.at)), l.text))),
    );
  } catch (error) {
    if (!(error instanceof KeyRefused)) $('logs-error').textContent = error.message;
  }
}

/** p50 and p99 per minute as two lines; minutes without a finished call are gaps. */
function drawChart(chart, minutes) {
  const W = 760, H = 220, left = 56, right = 12, top = 12, bottom = 28;
  const plotW = W - left - right, plotH = H - top - bottom;
  const values = minutes.flatMap((m) => [m.p50Ms, m.p99Ms]).filter((v) => v !== null);
  const nodes = [];
  const max = niceCeiling(values.length ? Math.max(...values) : 1);
  const x = (i) => left + (minutes.length <= 1 ? plotW : (i / (minutes.length - 1)) * plotW);
  const y = (v) => top + plotH - (v / max) * plotH;
  for (let k = 0; k <= 4; k++) {
    const v = (max / 4) * k;
    nodes.push(svg('line', { class: 'grid', x1: left, x2: W - right, y1: y(v), y2: y(v) }));
    nodes.push(svg('text', { class: 'axis', x: left - 6, y: y(v) + 3, 'text-anchor': 'end' }, ms(v)));
  }
  const last = minutes.length - 1;
  minutes.forEach((m, i) => {
    // A label every 10 minutes and one for the current minute, none crowding it.
    if (i === last || (i % 10 === 0 && last - i >= 5)) {
      nodes.push(svg('text', { class: 'axis', x: x(i), y: H - 8, 'text-anchor': i === last ? 'end' : i === 0 ? 'start' : 'middle' }, time(m.minute).slice(0, 5)));
    }
  });
  for (const series of ['p50', 'p99']) {
    let d = '';
    let pen = false;
    minutes.forEach((m, i) => {
      const v = m[`${series}Ms`];
      if (v === null) {
        pen = false;
        return;
      }
      d += `${pen ? 'L' : 'M'}${x(i).toFixed(1)},${y(v).toFixed(1)} `;
      pen = true;
      const dot = svg('circle', { class: `dot ${series}`, cx: x(i).toFixed(1), cy: y(v).toFixed(1), r: 2.5, 'data-minute': m.minute });
      dot.append(svg('title', {}, `${time(m.minute).slice(0, 5)} ${series} ${ms(v)} (${m.calls} calls, ${m.errors} errors)`));
      nodes.push(dot);
    });
    if (d) nodes.unshift(svg('path', { class: `line ${series}`, d: d.trim() }));
  }
  if (values.length === 0) nodes.push(svg('text', { class: 'empty', x: left + plotW / 2, y: top + plotH / 2, 'text-anchor': 'middle' }, 'no finished call in the last hour'));
  chart.replaceChildren(...nodes);
}

/** 1, 2 or 5 times a power of ten, at least v. */
function niceCeiling(v) {
  const power = 10 ** Math.floor(Math.log10(Math.max(v, 1e-3)));
  for (const step of [1, 2, 5, 10]) if (step * power >= v) return step * power;
  return 10 * power;
}

async function loadWorkers(generation) {
  const data = await api('/v1/workers');
  if (generation !== state.generation) return;
  const workers = data.workers.slice().sort((a, b) => a.id.localeCompare(b.id));
  $('workers-empty').hidden = workers.length > 0;
  replaceRows(
    $('workers-table'),
    workers.map((w) => {
      const ordered = w.order && w.order !== w.state ? ` → ${w.order}` : '';
      const sum = (counts) => Object.values(counts ?? {}).reduce((a, b) => a + b, 0);
      const pools = Object.entries(w.pool ?? {}).map(([runtime, n]) => `${runtime}: ${n}`).join(', ') || '–';
      const draining = w.state === 'draining' || w.order === 'draining';
      const cordoned = w.state === 'cordoned' || w.order === 'cordoned';
      return el(
        'tr',
        { 'data-worker': w.id },
        el('td', { class: 'id' }, w.id),
        el('td', { class: `state state-${w.state}` }, `${w.state}${ordered}`),
        el('td', { class: w.alive ? 'alive' : 'dead' }, w.alive ? since(w.lastHeartbeatMs) : `lost (${since(w.lastHeartbeatMs)})`),
        el('td', { class: 'num', title: `${mb(w.reclaimableMb)} held by idle instances` }, `${mb(w.usedMb)} / ${mb(w.capacityMb)}`),
        el('td', { class: 'pools' }, pools),
        el('td', { class: 'num' }, `${sum(w.busy)} / ${sum(w.idle)}`),
        el(
          'td',
          { class: 'actions' },
          cordoned
            ? el('button', { type: 'button', class: 'secondary', 'data-action': 'uncordon', disabled: draining, onclick: () => void order(w.id, 'uncordon') }, 'Uncordon')
            : el('button', { type: 'button', class: 'secondary', 'data-action': 'cordon', disabled: draining, onclick: () => void order(w.id, 'cordon') }, 'Cordon'),
          el('button', { type: 'button', class: 'danger', 'data-action': 'drain', disabled: draining, onclick: () => void order(w.id, 'drain') }, 'Drain'),
        ),
      );
    }),
  );
}

async function order(id, action) {
  if (action === 'drain' && !confirm(`Drain ${id}? It finishes its calls, takes no new ones, and leaves the fleet.`)) return;
  try {
    await api(`/v1/workers/${encodeURIComponent(id)}/${action}`, { method: 'POST' });
    setStatus(`${action} ${id}: ordered`);
  } catch (error) {
    if (!(error instanceof KeyRefused)) setStatus(`${action} ${id}: ${error.message}`, true);
    return;
  }
  await refresh();
}

// ---------------------------------------------------------------- routing and refresh

function route() {
  const hash = window.location.hash || '#/functions';
  const fn = /^#\/functions\/([^/]+)$/.exec(hash);
  if (fn) return { view: 'function-view', name: decodeURIComponent(fn[1]), load: (g) => loadFunction(decodeURIComponent(fn[1]), g), every: REFRESH_MS.function };
  if (hash === '#/workers' && isAdmin()) return { view: 'workers-view', load: loadWorkers, every: REFRESH_MS.workers };
  return { view: 'functions-view', load: loadFunctions, every: REFRESH_MS.functions };
}

function stopRefresh() {
  clearTimeout(state.timer);
  state.timer = undefined;
}

/** Loads the current view now, then again every few seconds while it is shown. */
async function refresh() {
  stopRefresh();
  const current = route();
  const generation = state.generation;
  try {
    await current.load(generation);
    if (generation === state.generation) setStatus(`updated ${time(new Date().toISOString())}`);
  } catch (error) {
    if (error instanceof KeyRefused) return;
    if (generation === state.generation) setStatus(error.message, true);
  }
  if (generation === state.generation && !document.hidden) state.timer = setTimeout(() => void refresh(), current.every);
}

function navigate(hash) {
  if (window.location.hash === hash) void open();
  else window.location.hash = hash;
}

async function open() {
  if (!sessionStorage.getItem(KEY)) return showLogin();
  const generation = ++state.generation;
  try {
    await identify();
  } catch (error) {
    if (error instanceof KeyRefused || generation !== state.generation) return;
    // The gateway could not say who the key is (it may be restarting): try again shortly.
    setStatus(error.message, true);
    stopRefresh();
    state.timer = setTimeout(() => void open(), REFRESH_MS.functions);
    return;
  }
  if (generation !== state.generation) return;
  // The workers are the platform's: a tenant key has no such view (and would only get 403s).
  if (window.location.hash === '#/workers' && !isAdmin()) {
    window.location.replace('#/functions');
    return;
  }
  const current = route();
  state.generation++;
  if (current.view === 'function-view') {
    if ($('function-name').textContent !== current.name) {
      state.selected = undefined;
      $('logs-panel').hidden = true;
      $('logs').replaceChildren();
      $('invocations-table').tBodies[0].replaceChildren();
      $('latency-chart').replaceChildren();
      $('function-summary').replaceChildren();
    }
    $('function-name').textContent = current.name;
  }
  show(current.view);
  return refresh();
}

$('login-form').addEventListener('submit', (event) => {
  event.preventDefault();
  const key = $('api-key').value.trim();
  if (!key) return;
  sessionStorage.setItem(KEY, key);
  $('api-key').value = '';
  $('login-error').textContent = '';
  void open();
});
$('sign-out').addEventListener('click', () => {
  sessionStorage.removeItem(KEY);
  showLogin();
});
$('window').addEventListener('change', (event) => {
  state.windowMinutes = Number(event.target.value);
  void refresh();
});
$('tenant-filter').addEventListener('change', (event) => {
  state.tenant = event.target.value;
  void refresh();
});
window.addEventListener('hashchange', () => void open());
document.addEventListener('visibilitychange', () => {
  if (!document.hidden && sessionStorage.getItem(KEY)) void refresh();
});
void open();
