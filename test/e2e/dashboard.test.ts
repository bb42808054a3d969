/**
 * The operator dashboard at /ui, end to end: a platform with a second worker node, two functions
 * called (one call failing), the statistics API checked against the invocations it reports, and
 * then Debian's chromium, driven by playwright-core, signs in with the key, reads the functions'
 * numbers, opens a function's invocations and one invocation's log lines, cordons and uncordons
 * the platform's worker and drains the second one. Then, with a developer key of a tenant made
 * for the test, the page shows that tenant's function only, the role, and no workers tab; the
 * admin key sees every tenant's functions with their tenant, and filters by tenant. Screenshots
 * are kept in .tap/artifacts/.
 */
import t from 'tap';
import type { FunctionStats as StoredStats } from '../../infra/db/invocation-stats.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { Test } from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
/** The compiled worker entry point next to this compiled test (dist/ or any other output directory). */
const WORKER_MAIN = fileURLToPath(new URL('../../worker/main.js', import.meta.url));
const ARTIFACTS = resolve('.tap', 'artifacts');

/** As GET /v1/stats/functions answers: the stats of infra/db/invocation-stats.ts and the instances. */
type FunctionStats = StoredStats & { instances: { busy: number; idle: number } };

interface Invocation {
  id: string;
  createdAt: string;
  status: string;
  cold: boolean | null;
  durationMs: number | null;
  error: { code: string; message: string } | null;
}

interface WorkerView {
  id: string;
  state: string;
  alive: boolean;
}

let platform: Platform;
let extra: ChildProcess | undefined;
let extraId = '';
/** The id of alpha's first call, which logs `dashboard-marker 1`. */
let markedId = '';
const api = client(() => platform);
const get = (path: string, headers: Record<string, string> = platform.auth): Promise<Response> => fetch(`${platform.url}${path}`, { headers });
const workers = async (): Promise<WorkerView[]> => ((await (await get('/v1/workers')).json()) as { workers: WorkerView[] }).workers;
const stats = async (): Promise<FunctionStats[]> =>
  ((await (await get('/v1/stats/functions?windowMinutes=60')).json()) as { functions: FunctionStats[] }).functions;

t.before(async () => {
  platform = await startPlatform();
  // A second node, as its own process: draining it leaves the platform's own worker serving.
  const env = platform.workerEnv('d', 70_000_000);
  extraId = env.SKIFF_WORKER_ID ?? '';
  extra = spawn(process.execPath, [WORKER_MAIN], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
  if (!(await eventually(async () => (await workers()).filter((w) => w.alive).length === 2, 30_000))) {
    throw new Error(`the second worker (${WORKER_MAIN}) did not join the fleet`);
  }

  const deployed = await api.deploy(
    { name: 'alpha' },
    {
      'index.js': "exports.handler = async (e) => { console.log('dashboard-marker', e.n); if (e.fail) throw new Error('asked to fail'); return { n: e.n }; };",
    },
  );
  if (deployed.status !== 201) throw new Error(`deploy alpha: ${deployed.status} ${await deployed.text()}`);
  const beta = await api.deploy({ name: 'beta' }, { 'index.js': "exports.handler = async () => 'ok';" });
  if (beta.status !== 201) throw new Error(`deploy beta: ${beta.status} ${await beta.text()}`);

  const first = await api.invoke('alpha', { n: 1 });
  if (first.status !== 200) throw new Error(`alpha call 1: ${first.status} ${await first.text()}`);
  markedId = first.headers.get('x-skiff-invocation-id') ?? '';
  for (const [name, event, status] of [
    ['alpha', { n: 2 }, 200],
    ['alpha', { n: 3, fail: true }, 502],
    ['beta', {}, 200],
    ['beta', {}, 200],
  ] as const) {
    const res = await api.invoke(name, event);
    await res.text();
    if (res.status !== status) throw new Error(`${name} answered ${res.status}, not ${status}`);
  }
  // Records are written in batches off the call path: wait until all five are there.
  const recorded = await eventually(async () => {
    const all = await stats();
    return all.find((f) => f.name === 'alpha')?.calls === 3 && all.find((f) => f.name === 'beta')?.calls === 2;
  }, 15_000);
  if (!recorded) throw new Error('the five calls were not recorded');
});

t.teardown(async () => {
  if (extra && extra.exitCode === null && extra.signalCode === null) {
    const exited = once(extra, 'exit');
    extra.kill('SIGTERM');
    await exited;
  }
  await platform?.stop();
});

/** percentile_cont over the values, as PostgreSQL computes it. */
function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  const rank = p * (sorted.length - 1);
  const low = Math.floor(rank);
  const high = Math.ceil(rank);
  return (sorted[low] ?? NaN) + ((sorted[high] ?? NaN) - (sorted[low] ?? NaN)) * (rank - low);
}

t.test('the statistics API: numbers from the invocations, key required, fields checked', async (t) => {
  const unauthorized = await get('/v1/stats/functions', {});
  t.equal(unauthorized.status, 401, 'no key: 401');
  t.match(await unauthorized.json(), { error: { code: 'Unauthorized' } });
  t.equal((await get('/v1/stats/functions/alpha', {})).status, 401);
  t.equal((await get('/v1/functions/alpha/invocations', {})).status, 401);

  for (const bad of ['abc', '0', '1441', '-5', '1.5']) {
    const res = await get(`/v1/stats/functions?windowMinutes=${bad}`);
    t.equal(res.status, 400, `windowMinutes=${bad}: 400`);
    t.match(await res.json(), { error: { code: 'InvalidRequest', field: 'windowMinutes' } }, 'the field is named');
  }
  const badOne = await get('/v1/stats/functions/alpha?windowMinutes=x');
  t.equal(badOne.status, 400);
  t.match(await badOne.json(), { error: { code: 'InvalidRequest', field: 'windowMinutes' } });
  const badLimit = await get('/v1/functions/alpha/invocations?limit=0');
  t.equal(badLimit.status, 400);
  t.match(await badLimit.json(), { error: { code: 'InvalidRequest', field: 'limit' } });
  const unknownQuery = await get('/v1/stats/functions?window=5');
  t.equal(unknownQuery.status, 400, 'an unknown query field is refused');
  t.match(await unknownQuery.json(), { error: { field: 'window' } });

  for (const path of ['/v1/stats/functions/nope', '/v1/functions/nope/invocations']) {
    const res = await get(path);
    t.equal(res.status, 404, `${path}: 404`);
    t.match(await res.json(), { error: { code: 'FunctionNotFound' } });
  }

  const listed = (await (await get('/v1/functions/alpha/invocations')).json()) as { invocations: Invocation[] };
  t.equal(listed.invocations.length, 3, "alpha's three calls are listed");
  t.ok(
    listed.invocations.some((i) => i.id === markedId),
    'the first call among them',
  );
  t.ok(
    listed.invocations.every((i, n) => n === 0 || Date.parse(i.createdAt) <= Date.parse(listed.invocations[n - 1]?.createdAt ?? '')),
    'newest first',
  );
  t.same(listed.invocations.map((i) => i.status).sort(), ['failed', 'succeeded', 'succeeded']);
  t.match(
    listed.invocations.find((i) => i.status === 'failed'),
    { error: { code: 'FunctionError', message: /asked to fail/ } },
  );
  t.ok(
    listed.invocations.every((i) => typeof i.durationMs === 'number' && typeof i.cold === 'boolean'),
    'each has a duration and cold-or-warm',
  );
  const limited = (await (await get('/v1/functions/alpha/invocations?limit=2')).json()) as { invocations: Invocation[] };
  t.equal(limited.invocations.length, 2, 'limit is applied');

  const all = await stats();
  t.same(
    all.map((f) => f.name),
    ['alpha', 'beta'],
    'every function, by name',
  );
  const alpha = all.find((f) => f.name === 'alpha');
  const durations = listed.invocations.map((i) => i.durationMs ?? NaN);
  const colds = listed.invocations.filter((i) => i.cold).length;
  t.match(alpha, { calls: 3, errors: 1, callsPerMinute: 0.05, coldStarts: colds });
  t.ok(Math.abs((alpha?.p50Ms ?? NaN) - percentile(durations, 0.5)) < 0.02, `p50 is the median of the durations (${alpha?.p50Ms})`);
  t.ok(Math.abs((alpha?.p99Ms ?? NaN) - percentile(durations, 0.99)) < 0.02, `p99 is percentile_cont(0.99) of them (${alpha?.p99Ms})`);
  t.equal(alpha?.coldStartRatio, Math.round((colds / 3) * 1000) / 1000, 'cold-start ratio');
  t.ok((alpha?.instances.busy ?? 0) + (alpha?.instances.idle ?? 0) >= 1, "alpha's warm instance is counted from the heartbeats");
  t.match(
    all.find((f) => f.name === 'beta'),
    { calls: 2, errors: 0 },
  );

  const one = (await (await get('/v1/stats/functions/alpha?windowMinutes=30')).json()) as {
    windowMinutes: number;
    function: FunctionStats;
    minutes: Array<{ minute: string; calls: number; errors: number; p50Ms: number | null; p99Ms: number | null }>;
  };
  t.equal(one.windowMinutes, 30);
  t.match(one.function, { name: 'alpha', calls: 3, errors: 1 });
  t.equal(one.minutes.length, 30, 'one entry per minute, empty minutes included');
  t.equal(
    one.minutes.reduce((n, m) => n + m.calls, 0),
    3,
    'the minutes add up to the calls',
  );
  t.equal(
    one.minutes.reduce((n, m) => n + m.errors, 0),
    1,
  );
  t.ok(
    one.minutes.every((m, i) => i === 0 || Date.parse(m.minute) - Date.parse(one.minutes[i - 1]?.minute ?? '') === 60_000),
    'consecutive minutes, oldest first',
  );
  t.ok(
    one.minutes.every((m) => m.calls > 0 || (m.p50Ms === null && m.p99Ms === null)),
    'no latency for a minute without calls',
  );
  t.ok(
    one.minutes.every((m) => m.p50Ms === null || (m.p99Ms ?? 0) >= m.p50Ms),
    'p99 >= p50',
  );

  const doc = (await (await fetch(`${platform.url}/openapi.json`)).json()) as {
    paths: Record<string, Record<string, { parameters?: Array<{ name: string }> }>>;
  };
  for (const path of ['/v1/stats/functions', '/v1/stats/functions/{name}', '/v1/functions/{name}/invocations'])
    t.ok(doc.paths[path]?.get, `${path} is in the OpenAPI document`);
  t.ok(
    doc.paths['/v1/stats/functions']?.get?.parameters?.some((p) => p.name === 'windowMinutes'),
    'with its query parameter',
  );
  t.notOk(doc.paths['/ui'], 'the page itself is not part of the API');

  const page = await fetch(`${platform.url}/ui`);
  t.equal(page.status, 200, 'the page needs no key');
  t.match(page.headers.get('content-type'), /text\/html/);
  t.match(page.headers.get('content-security-policy'), /default-src 'none'.*script-src 'self'/);
  t.match(await page.text(), /<script type="module" src="\/ui\/app\.js">/);
  const script = await fetch(`${platform.url}/ui/app.js`);
  t.equal(script.status, 200);
  t.match(script.headers.get('content-type'), /javascript/);
});

/**
 * Chromium with one page, closed when the test ends; `problems` collects script errors and console
 * errors (a CSP violation, a refused request) but a 401, which a refused key is answered with.
 */
async function browse(t: Test): Promise<{ page: Page; problems: string[]; shows(selector: string, text?: RegExp, timeout?: number): Promise<boolean> }> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: this test drives Debian's chromium (apt-get install -y --no-install-recommends chromium; npm test installs it)`);
  }
  const browser: Browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS });
  t.teardown(() => browser.close());
  const page: Page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  const problems: string[] = [];
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    if (message.type() === 'error' && !/status of 401/.test(message.text())) problems.push(`console: ${message.text()}`);
  });
  /** Waits for an element matching `selector` whose text matches `text`. */
  const shows = (selector: string, text?: RegExp, timeout = 15_000): Promise<boolean> =>
    page
      .locator(selector, text ? { hasText: text } : {})
      .first()
      .waitFor({ timeout })
      .then(
        () => true,
        () => false,
      );
  return { page, problems, shows };
}

t.test('in a browser: sign in, read the numbers, open an invocation and its logs, cordon, drain', async (t) => {
  const { page, problems, shows } = await browse(t);

  const response = await page.goto(`${platform.url}/ui`);
  t.equal(response?.status(), 200);
  t.match(response?.headers()['content-security-policy'], /script-src 'self'/, 'served with its Content-Security-Policy');
  t.ok(await shows('#login-view:not([hidden]) #api-key'), 'the page asks for the key');

  await page.fill('#api-key', 'sk_not-a-key');
  await page.click('#login-form button[type=submit]');
  t.ok(await shows('#login-error', /not valid/), 'a wrong key is refused, and said so');
  t.equal(await page.evaluate('sessionStorage.length'), 0, 'and not kept');

  await page.fill('#api-key', platform.key);
  await page.click('#login-form button[type=submit]');
  t.ok(await shows('tr[data-function="alpha"] td.calls', /^3$/), 'alpha: 3 calls');
  t.ok(await shows('tr[data-function="alpha"] td.errors', /^1$/), 'alpha: 1 error');
  t.ok(await shows('tr[data-function="beta"] td.calls', /^2$/), 'beta: 2 calls');
  t.ok(await shows('tr[data-function="beta"] td.errors', /^0$/), 'beta: no error');
  t.ok(await shows('tr[data-function="alpha"] td.p50', /\d ms$/), 'alpha: p50 latency');
  t.ok(await shows('tr[data-function="alpha"] td.cold-ratio', /^\d+%$/), 'alpha: cold-start ratio');
  t.ok(await shows('tr[data-function="alpha"] td.instances', /^\d+ \/ \d+$/), 'alpha: instances');
  t.equal(await page.evaluate(`sessionStorage.getItem('skiff.apiKey')`), platform.key, 'the key is kept in sessionStorage');

  await page.click('tr[data-function="alpha"]');
  t.ok(await shows('#function-view:not([hidden]) #function-name', /^alpha$/), "a click opens the function's view");
  t.ok(await shows(`#invocations-table tr[data-invocation="${markedId}"]`, /succeeded/), 'its invocations are listed, with their status');
  t.equal(await page.locator('#invocations-table tbody tr').count(), 3, 'all three');
  t.ok(await shows('#invocations-table tr td.status', /failed \(FunctionError\)/), 'the failed one says why');
  t.ok(await shows(`#invocations-table tr[data-invocation="${markedId}"] td.start`, /^(cold|warm)$/), 'cold or warm');
  t.ok(await shows(`#invocations-table tr[data-invocation="${markedId}"] td.duration`, /\d (ms|s)$/), 'its duration');
  // Every call so far may be of one minute: a point per series, no line yet.
  t.ok(await shows('#latency-chart circle.dot.p50'), 'the latency chart draws p50');
  t.ok(await shows('#latency-chart circle.dot.p99'), 'and p99');

  await page.click(`#invocations-table tr[data-invocation="${markedId}"]`);
  t.ok(await shows('#logs-panel:not([hidden]) #logs .line', /dashboard-marker 1/), 'a click on an invocation shows its log line');
  t.notOk(await shows('#logs .line', /dashboard-marker 2/, 500), "and only that invocation's");
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });

  await page.click('a[data-nav="workers"]');
  const mainId = platform.config.worker.id;
  t.ok(await shows(`tr[data-worker="${mainId}"] td.state`, /^active$/), 'the workers are listed: the platform worker is active');
  t.ok(await shows(`tr[data-worker="${extraId}"] td.state`, /^active$/), 'and the second one');
  t.ok(await shows(`tr[data-worker="${mainId}"] td.pools`, /nodejs20: \d/), 'with its pools');
  t.ok(await shows(`tr[data-worker="${mainId}"] td.num`, /MB \/ 4\.0 GB/), 'and its capacity');

  await page.click(`tr[data-worker="${mainId}"] button[data-action="cordon"]`);
  t.ok(await shows(`tr[data-worker="${mainId}"] td.state`, /^cordoned$/), 'cordon: the worker says it is cordoned');
  t.equal((await workers()).find((w) => w.id === mainId)?.state, 'cordoned', 'as the API does');
  await page.click(`tr[data-worker="${mainId}"] button[data-action="uncordon"]`);
  t.ok(await shows(`tr[data-worker="${mainId}"] td.state`, /^active$/), 'uncordon: active again');

  page.once('dialog', (dialog) => void dialog.accept());
  await page.click(`tr[data-worker="${extraId}"] button[data-action="drain"]`);
  t.ok(await shows(`tr[data-worker="${extraId}"] td.state`, /draining/), 'drain: the second worker is draining');
  const [code] = (await once(extra as ChildProcess, 'exit')) as [number | null];
  t.equal(code, 0, 'and leaves the fleet cleanly');
  t.ok(
    await page
      .locator(`tr[data-worker="${extraId}"]`)
      .waitFor({ state: 'detached', timeout: 15_000 })
      .then(
        () => true,
        () => false,
      ),
    'the page no longer lists it',
  );
  t.ok(await shows(`tr[data-worker="${mainId}"] td.state`, /^active$/), 'the platform worker still serves');
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-workers.png'), fullPage: true });

  t.same(problems, [], 'no script error and no Content-Security-Policy violation');
});

t.test('in a browser: a tenant key sees its tenant only, its role, no workers; an admin key every tenant', async (t) => {
  const post = async (path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${platform.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...platform.auth },
      body: JSON.stringify(body),
    });
    if (res.status !== 201) throw new Error(`POST ${path}: ${res.status} ${await res.text()}`);
    return (await res.json()) as Record<string, unknown>;
  };
  await post('/v1/tenants', { name: 'dash-acme' });
  const developer = String((await post('/v1/keys', { name: 'dashboard developer', tenant: 'dash-acme', role: 'developer' })).key);
  const asDeveloper = client(() => ({ url: platform.url, auth: { authorization: `Bearer ${developer}` } }));
  const deployed = await asDeveloper.deploy({ name: 'gamma' }, { 'index.js': "exports.handler = async () => 'gamma';" });
  t.equal(deployed.status, 201, 'the developer deploys into its tenant');
  t.match(await deployed.json(), { name: 'gamma', tenant: 'dash-acme' });
  const called = await asDeveloper.invoke('gamma', {});
  t.equal(called.status, 200);
  await called.text();

  const { page, problems, shows } = await browse(t);
  await page.goto(`${platform.url}/ui`);
  await page.fill('#api-key', developer);
  await page.click('#login-form button[type=submit]');
  t.ok(await shows('#whoami:not([hidden])', /^dash-acme · developer$/), 'the header says tenant · role');
  t.ok(await shows('tr[data-function="gamma"] td.calls', /^1$/), "its tenant's function, with its call");
  t.equal(await page.locator('#functions-table tbody tr').count(), 1, "and no other tenant's");
  t.equal(await page.locator('tr[data-function="alpha"]').count(), 0, 'alpha (tenant default) is not shown');
  t.ok(await page.locator('a[data-nav="workers"]').isHidden(), 'no workers tab');
  t.ok(await page.locator('#tenant-column').isHidden(), 'no tenant column');
  t.ok(await page.locator('#tenant-filter-label').isHidden(), 'no tenant filter');
  await page.evaluate("window.location.hash = '#/workers'");
  t.ok(await shows('#functions-view:not([hidden]) tr[data-function="gamma"]'), '#/workers leads a tenant key back to its functions');
  t.ok(await page.locator('#workers-view').isHidden());
  await page.click('tr[data-function="gamma"]');
  t.ok(await shows('#function-view:not([hidden]) #invocations-table tbody tr td.status', /succeeded/), 'it opens its function and the call');
  await mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-tenant.png'), fullPage: true });

  await page.click('#sign-out');
  t.ok(await shows('#login-view:not([hidden]) #api-key'));
  t.ok(await page.locator('#whoami').isHidden(), 'signed out: nobody in the header');
  await page.fill('#api-key', platform.key);
  await page.click('#login-form button[type=submit]');
  t.ok(await shows('#whoami:not([hidden])', /^default · admin$/), 'the admin key: default · admin');
  await page.click('a[data-nav="functions"]');
  t.ok(await shows('tr[data-function="gamma"] td.tenant', /^dash-acme$/), "every tenant's functions, with their tenant");
  t.ok(await shows('tr[data-function="alpha"] td.tenant', /^default$/));
  t.ok(await page.locator('#tenant-column').isVisible(), 'the tenant column');
  t.ok(await page.locator('a[data-nav="workers"]').isVisible(), 'and the workers tab');
  // An option of a closed select is never "visible": wait for it to be there.
  const listed = page.locator('#tenant-filter option[value="dash-acme"]').waitFor({ state: 'attached', timeout: 15_000 });
  t.ok(
    await listed.then(
      () => true,
      () => false,
    ),
    'the filter lists the tenants',
  );
  await page.selectOption('#tenant-filter', 'dash-acme');
  t.ok(
    await page
      .locator('tr[data-function="alpha"]')
      .waitFor({ state: 'detached', timeout: 15_000 })
      .then(
        () => true,
        () => false,
      ),
    'filtered by tenant: alpha goes',
  );
  t.ok(await shows('tr[data-function="gamma"] td.tenant', /^dash-acme$/), 'gamma stays');
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-admin-tenants.png'), fullPage: true });

  t.same(problems, [], 'no script error, no CSP violation, no refused (403) request');
});
