/**
 * A tenant's maxInstances and maxMemoryMb count its busy and idle instances together, through the
 * real gateway, scheduler and worker: at the limit its own idle instances are evicted first; with
 * none idle its calls wait, then answer 429 naming the quota; another tenant's calls made
 * meanwhile all answer 200. The platform's queue wait is short so a refused call ends soon; the
 * long handler's length is only a margin (it must outlast that wait), never asserted.
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

const SLEEPER = {
  'index.js': 'exports.handler = async (e, c) => { await new Promise((r) => setTimeout(r, (e && e.ms) || 0)); return { fn: c.functionName }; };',
};
const LONG_MS = 8000;

let platform: Platform;
t.before(async () => {
  platform = await startPlatform({ SKIFF_QUEUE_WAIT_MS: '1500' });
});
t.teardown(() => platform?.stop());

const api = client(() => platform);

async function tenant(name: string, quotas: Record<string, number>): Promise<void> {
  const res = await fetch(`${platform.url}/v1/tenants`, {
    method: 'POST',
    headers: { ...platform.auth, 'content-type': 'application/json' },
    body: JSON.stringify({ name, quotas }),
  });
  if (res.status !== 201) throw new Error(`tenant ${name}: ${res.status} ${await res.text()}`);
}

async function deploy(name: string, owner: string, memoryMb = 128): Promise<void> {
  const res = await api.deploy({ name, tenant: owner, memoryMb }, SLEEPER);
  if (res.status !== 201) throw new Error(`deploy ${name}: ${res.status} ${await res.text()}`);
}

async function call(name: string, ms = 0): Promise<{ status: number; body: unknown; retryAfter: string | null }> {
  const res = await api.invoke(name, { ms });
  return { status: res.status, body: await res.json(), retryAfter: res.headers.get('retry-after') };
}

const instancesOf = (owner: string) => platform.worker.instances.list().filter((i) => i.fn.tenant === owner);
const names = (owner: string): string[] =>
  instancesOf(owner)
    .map((i) => i.fn.name)
    .sort();

/** The most instances and memory `owner` ever held at once while `work` ran (sampled often). */
async function watching<T>(owner: string, work: () => Promise<T>): Promise<{ result: T; most: { instances: number; memoryMb: number } }> {
  const most = { instances: 0, memoryMb: 0 };
  const sample = (): void => {
    const now = instancesOf(owner);
    most.instances = Math.max(most.instances, now.length);
    most.memoryMb = Math.max(
      most.memoryMb,
      now.reduce((sum, i) => sum + i.sandbox.memoryMb, 0),
    );
  };
  const timer = setInterval(sample, 2);
  try {
    const result = await work();
    sample();
    return { result, most };
  } finally {
    clearInterval(timer);
  }
}

/** Calls `name` of another tenant, one after another, until `until` settles: every answer. */
async function meanwhile(name: string, until: Promise<unknown>): Promise<number[]> {
  let done = false;
  void until.finally(() => (done = true));
  const statuses: number[] = [];
  // At least one call, and a few at once too, so the other tenant needs new instances as well.
  do {
    const answers = await Promise.all([call(name), call(name), call(name)]);
    statuses.push(...answers.map((a) => a.status));
  } while (!done);
  return statuses;
}

t.test('maxInstances: the tenant’s own idle instance is evicted for its next function', async (t) => {
  await tenant('solo', { maxInstances: 1 });
  await deploy('solo-one', 'solo');
  await deploy('solo-two', 'solo');
  const { result, most } = await watching('solo', async () => {
    const first = await call('solo-one');
    const afterFirst = names('solo');
    const second = await call('solo-two');
    const afterSecond = names('solo');
    const third = await call('solo-one');
    return { statuses: [first.status, second.status, third.status], afterFirst, afterSecond, afterThird: names('solo') };
  });
  t.same(result.statuses, [200, 200, 200], 'every call answers');
  t.same(result.afterFirst, ['solo-one'], "the first call's instance stays, idle");
  t.same(result.afterSecond, ['solo-two'], 'it was evicted for the second function');
  t.same(result.afterThird, ['solo-one'], 'and the other way round');
  t.equal(most.instances, 1, 'never two instances of the tenant at once');
});

t.test('maxInstances: with its one instance busy, a call waits and then answers 429; another tenant is not slowed', async (t) => {
  await tenant('busy', { maxInstances: 1 });
  await tenant('calm', {});
  await deploy('busy-long', 'busy');
  await deploy('busy-quick', 'busy');
  await deploy('calm-fn', 'calm');
  t.equal((await call('calm-fn')).status, 200, 'the other tenant is warm');

  const { result, most } = await watching('busy', async () => {
    const long = call('busy-long', LONG_MS);
    const running = await eventually(() => instancesOf('busy').some((i) => i.fn.name === 'busy-long' && i.inFlight > 0), 20_000, 10);
    const refused = call('busy-quick');
    const others = await meanwhile('calm-fn', refused);
    return { running, refused: await refused, others, long: await long };
  });
  t.ok(result.running, 'the long call runs');
  t.equal(result.refused.status, 429, 'the second function of the tenant is refused');
  t.match(result.refused.body, { error: { code: 'TooManyRequests', message: /tenant busy .*maxInstances/ } });
  t.ok(Number(result.refused.retryAfter) >= 1, 'with Retry-After');
  t.ok(result.others.length >= 3, `${result.others.length} calls of the other tenant were made meanwhile`);
  t.same(
    result.others,
    result.others.map(() => 200),
    'and all answered 200',
  );
  t.equal(result.long.status, 200, 'the long call itself finishes');
  t.equal(most.instances, 1, 'the tenant never had two instances');
});

t.test('maxMemoryMb: its own idle instances make room; with its memory busy, 429; another tenant is not slowed', async (t) => {
  await tenant('mem', { maxMemoryMb: 256 });
  await tenant('roomy', {});
  await deploy('mem-big', 'mem', 256);
  await deploy('mem-half', 'mem', 128);
  await deploy('mem-long', 'mem', 256);
  await deploy('mem-small', 'mem', 64);
  await deploy('roomy-fn', 'roomy');
  t.equal((await call('roomy-fn')).status, 200, 'the other tenant is warm');

  const { result, most } = await watching('mem', async () => {
    const big = await call('mem-big');
    const half = await call('mem-half');
    const afterHalf = names('mem');
    const long = call('mem-long', LONG_MS);
    const running = await eventually(() => instancesOf('mem').some((i) => i.fn.name === 'mem-long' && i.inFlight > 0), 20_000, 10);
    const afterLong = names('mem');
    const refused = call('mem-small');
    const others = await meanwhile('roomy-fn', refused);
    return { statuses: [big.status, half.status], afterHalf, running, afterLong, refused: await refused, others, long: await long };
  });
  t.same(result.statuses, [200, 200]);
  t.same(result.afterHalf, ['mem-half'], '256 + 128 MiB is over 256: the idle 256 MiB instance was evicted');
  t.ok(result.running, 'the long call runs');
  t.same(result.afterLong, ['mem-long'], 'its idle 128 MiB instance made room for the 256 MiB one');
  t.equal(result.refused.status, 429, 'with all its memory busy, a 64 MiB call is refused');
  t.match(result.refused.body, { error: { code: 'TooManyRequests', message: /tenant mem .*maxMemoryMb/ } });
  t.ok(result.others.length >= 3, `${result.others.length} calls of the other tenant were made meanwhile`);
  t.same(
    result.others,
    result.others.map(() => 200),
    'and all answered 200',
  );
  t.equal(result.long.status, 200);
  t.ok(most.memoryMb <= 256, `the tenant never held more than 256 MiB (most ${most.memoryMb})`);
});
