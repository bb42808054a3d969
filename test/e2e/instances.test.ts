/**
 * Warm instances: a specialized container serves one function only; idle instances expire;
 * memory pressure evicts the least recently used; minWarm keeps instances without calls;
 * maxInstances makes calls wait, then answers 429.
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform } from '../support/platform.js';

const NOOP = { 'index.js': 'exports.handler = async (e, c) => ({ fn: c.functionName });' };

t.test('a specialized container never serves another function', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  for (const name of ['alpha', 'beta']) t.equal((await deploy({ name }, NOOP)).status, 201);
  const owner = new Map<string, string>();
  for (let round = 0; round < 3; round++) {
    for (const name of ['alpha', 'beta']) {
      const res = await invoke(name, {});
      t.same(await res.json(), { fn: name }, `${name} answers as itself`);
      for (const instance of platform.worker.instances.list()) {
        const seen = owner.get(instance.sandbox.id);
        if (seen) t.equal(instance.fn.name, seen, `sandbox ${instance.sandbox.id} stays ${seen}'s`);
        owner.set(instance.sandbox.id, instance.fn.name);
      }
    }
  }
  t.equal(new Set(owner.values()).size, 2);
  t.equal(owner.size, 2, 'one instance each, reused');
});

t.test('idle instances expire after their keep-alive; minWarm ones stay without calls', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  await deploy({ name: 'brief', idleTimeoutMs: 1000 }, NOOP);
  t.equal((await invoke('brief', {})).status, 200);
  t.equal(platform.worker.instances.list().filter((i) => i.fn.name === 'brief').length, 1);
  t.ok(await eventually(() => !platform.worker.instances.list().some((i) => i.fn.name === 'brief'), 5000), 'expired after ~1 s idle');

  const res = await deploy({ name: 'ready', minWarm: 2, idleTimeoutMs: 1000 }, NOOP);
  t.match(await res.json(), { minWarm: 2 });
  t.ok(await eventually(() => platform.worker.instances.list().filter((i) => i.fn.name === 'ready').length === 2, 10_000), 'two instances exist without any call');
  await new Promise((r) => setTimeout(r, 2500));
  t.equal(platform.worker.instances.list().filter((i) => i.fn.name === 'ready').length, 2, 'keep-alive does not take them below minWarm');
  const warm = await invoke('ready', {});
  t.equal(warm.headers.get('x-skiff-cold-start'), 'false', 'the first call is warm');
});

t.test('memory pressure evicts the least recently used idle instance', async (t) => {
  // Room for three 128 MiB instances and no pool (a pooled sandbox would hold memory too).
  const platform = await startPlatform({ SKIFF_WORKER_CAPACITY_MB: '384', SKIFF_POOL_SIZE: '0' });
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  for (const name of ['m1', 'm2', 'm3', 'm4']) await deploy({ name, memoryMb: 128 }, NOOP);
  for (const name of ['m1', 'm2', 'm3']) t.equal((await invoke(name, {})).status, 200);
  t.same(platform.worker.instances.list().map((i) => i.fn.name).sort(), ['m1', 'm2', 'm3']);
  t.equal((await invoke('m2', {})).headers.get('x-skiff-cold-start'), 'false', 'm2 used again: m1 is now least recent');
  t.equal((await invoke('m4', {})).status, 200, 'a fourth function still gets an instance');
  t.same(platform.worker.instances.list().map((i) => i.fn.name).sort(), ['m2', 'm3', 'm4'], 'm1 was evicted');
});

t.test('maxInstances: calls wait for a free instance, then get 429 with Retry-After', async (t) => {
  const platform = await startPlatform({ SKIFF_QUEUE_WAIT_MS: '800' });
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  await deploy(
    { name: 'single', maxInstances: 1, concurrency: 1 },
    { 'index.js': 'exports.handler = (e) => new Promise((r) => setTimeout(() => r(e.n), e.ms));' },
  );
  t.equal((await invoke('single', { n: 0, ms: 1 })).status, 200, 'warm it up');
  // Two calls of 300 ms: the second waits for the first and succeeds within the wait limit.
  const [a, b] = await Promise.all([invoke('single', { n: 1, ms: 300 }), invoke('single', { n: 2, ms: 300 })]);
  t.same([a.status, b.status], [200, 200], 'the second call waited instead of failing');
  // A call of 2 s holds the only instance past the wait limit: the next one is refused.
  const long = invoke('single', { n: 3, ms: 2000 });
  await new Promise((r) => setTimeout(r, 100));
  const refused = await invoke('single', { n: 4, ms: 1 });
  t.equal(refused.status, 429);
  t.equal(refused.headers.get('retry-after'), '1');
  t.match(await refused.json(), { error: { code: 'TooManyRequests' } });
  t.equal((await long).status, 200);
  t.equal(platform.worker.instances.list().filter((i) => i.fn.name === 'single').length, 1, 'never more than one instance');
});

t.test('back-pressure: a function past its bound of waiting calls gets 429; others keep answering', async (t) => {
  const platform = await startPlatform({ SKIFF_MAX_PENDING_PER_FUNCTION: '2' });
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  await deploy({ name: 'slow', concurrency: 4 }, { 'index.js': 'exports.handler = (e) => new Promise((r) => setTimeout(() => r(e.n), 400));' });
  await deploy({ name: 'quick' }, NOOP);
  t.equal((await invoke('slow', { n: 0 })).status, 200, 'warm');
  const calls = [1, 2, 3, 4].map((n) => invoke('slow', { n }));
  await new Promise((r) => setTimeout(r, 100));
  const other = await invoke('quick', {});
  t.equal(other.status, 200, 'another function is not held back');
  const statuses = (await Promise.all(calls)).map((r) => r.status).sort();
  t.same(statuses, [200, 200, 429, 429], 'two calls wait, two are refused');
});
