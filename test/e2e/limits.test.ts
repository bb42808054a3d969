/**
 * Bounds on what callers send: a tenant over its calls per second gets 429 with Retry-After while
 * another tenant's calls go on; request bodies over 6 MiB (async events over 256 KiB) are 413
 * before anything is queued.
 */
import t from 'tap';
import { startPlatform, type Platform } from '../support/platform.js';
import { zipFiles } from '../support/zip.js';
import { eventually } from '../support/api.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform();
});
t.teardown(() => platform?.stop());

async function admin(method: string, path: string, body?: unknown): Promise<Response> {
  return fetch(`${platform.url}${path}`, {
    method,
    headers: { ...platform.auth, ...(body === undefined ? {} : { 'content-type': 'application/json' }) },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
}

async function deploy(name: string, tenant: string, code = 'exports.handler = async (event) => ({ size: JSON.stringify(event).length });'): Promise<void> {
  const zip = (await zipFiles({ 'index.js': code })).toString('base64');
  const res = await admin('POST', '/v1/functions', { name, tenant, runtime: 'nodejs20', handler: 'index.handler', code: { zip } });
  if (res.status !== 201) throw new Error(`deploy ${name}: ${res.status} ${await res.text()}`);
}

const invoke = (name: string, body = '{}', headers: Record<string, string> = {}): Promise<Response> =>
  fetch(`${platform.url}/v1/functions/${name}/invoke`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });

t.test('a tenant over its calls per second gets 429 with Retry-After; another tenant does not', async (t) => {
  t.equal((await admin('POST', '/v1/tenants', { name: 'slow', quotas: { callsPerSecond: 2 } })).status, 201);
  t.equal((await admin('POST', '/v1/tenants', { name: 'fast' })).status, 201);
  await deploy('slow-fn', 'slow');
  await deploy('fast-fn', 'fast');
  t.equal((await invoke('slow-fn')).status, 200, 'under its rate a call runs');

  // Bursts of calls until one is refused: a burst lands in one second's window unless the machine
  // stalls for a second, and then the next burst does.
  let refused: Response | undefined;
  for (let burst = 0; burst < 20 && refused === undefined; burst++) {
    const answers = await Promise.all(Array.from({ length: 10 }, () => invoke('slow-fn')));
    refused = answers.find((r) => r.status === 429);
    for (const r of answers) if (r !== refused) await r.arrayBuffer();
  }
  t.ok(refused, 'a burst over callsPerSecond is refused');
  t.match(await refused?.json(), { error: { code: 'TooManyRequests', message: /callsPerSecond/ } });
  t.ok(Number(refused?.headers.get('retry-after')) >= 1, 'with Retry-After');

  // Function URLs count against the same tenant's rate.
  let refusedUrl: Response | undefined;
  for (let burst = 0; burst < 20 && refusedUrl === undefined; burst++) {
    const answers = await Promise.all(Array.from({ length: 10 }, () => fetch(`${platform.fnUrl}/fn/slow-fn`)));
    refusedUrl = answers.find((r) => r.status === 429);
    for (const r of answers) if (r !== refusedUrl) await r.arrayBuffer();
  }
  t.ok(refusedUrl, 'function URL calls over callsPerSecond are refused too');
  t.ok(Number(refusedUrl?.headers.get('retry-after')) >= 1, 'with Retry-After');
  await refusedUrl?.arrayBuffer();

  // The other tenant's calls made now are all answered.
  const others = await Promise.all(Array.from({ length: 20 }, () => invoke('fast-fn')));
  t.same(
    others.map((r) => r.status),
    Array(20).fill(200),
    "another tenant's 20 calls all answer 200",
  );

  // The rate limit counts per tenant across gateways: the counter lives in Redis.
  const metrics = await (await admin('GET', '/metrics')).text();
  t.match(metrics, /skiff_calls_throttled_total\{tenant="slow"\} [1-9]/, 'refusals are counted by tenant');
});

t.test('request bodies: 6 MiB for calls, 256 KiB for async events, 413 before anything is queued', async (t) => {
  await deploy('sizes', 'default');
  const big = JSON.stringify({ pad: 'x'.repeat(7 * 1024 * 1024) });
  const viaInvoke = await invoke('sizes', big);
  t.equal(viaInvoke.status, 413, 'a 7 MiB invoke body');
  t.match(await viaInvoke.json(), { error: { code: 'PayloadTooLarge' } });
  const viaUrl = await fetch(`${platform.fnUrl}/fn/sizes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: big });
  t.equal(viaUrl.status, 413, 'a 7 MiB function URL body');
  t.match(await viaUrl.json(), { error: { code: 'PayloadTooLarge' } });
  const five = await invoke('sizes', JSON.stringify({ pad: 'x'.repeat(5 * 1024 * 1024) }));
  t.equal(five.status, 200, 'a 5 MiB event is taken');

  const asyncBig = await invoke('sizes', JSON.stringify({ pad: 'x'.repeat(300 * 1024) }), { 'x-skiff-invocation-type': 'async' });
  t.equal(asyncBig.status, 413, 'a 300 KiB async event');
  t.match(await asyncBig.json(), { error: { code: 'PayloadTooLarge', field: 'body' } });
  const asyncOk = await invoke('sizes', JSON.stringify({ pad: 'x'.repeat(200 * 1024) }), { 'x-skiff-invocation-type': 'async' });
  t.equal(asyncOk.status, 202, 'a 200 KiB async event is queued');

  // Records are written in batches: wait for the two calls that were taken, then count them all.
  const recorded = async (): Promise<number> =>
    ((await (await admin('GET', '/v1/functions/sizes/invocations')).json()) as { invocations: unknown[] }).invocations.length;
  t.ok(await eventually(async () => (await recorded()) >= 2), 'the two calls taken are recorded');
  t.equal(await recorded(), 2, 'the refused ones left no record');
});
