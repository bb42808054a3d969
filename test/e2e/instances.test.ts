/**
 * Warm instances: a specialized container serves one function only; idle instances expire;
 * memory pressure evicts the least recently used; minWarm keeps instances without calls;
 * maxInstances makes calls wait, then answers 429.
 */
import { writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { keySpace } from '../../infra/queue/names.js';
import { pendingCalls } from '../../infra/queue/straight-calls.js';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

const NOOP = { 'index.js': 'exports.handler = async (e, c) => ({ fn: c.functionName });' };

/**
 * Answers `e.n`; a call with `gate` first waits until the file /run/skiff/<gate> exists, so it
 * holds its instance until the test lets it go (the 20 s only bound a broken run, under the
 * default 30 s timeout). /run/skiff in the container is the sandbox's socket directory on the
 * host, read-only to the function: see `openGate`.
 */
const GATED = {
  'index.js': `const fs = require('fs');
exports.handler = (e) => new Promise((resolve) => {
  const giveUp = Date.now() + 20000;
  const poll = () => !e.gate || fs.existsSync('/run/skiff/' + e.gate) ? resolve(e.n)
    : Date.now() > giveUp ? resolve('the gate never opened') : setTimeout(poll, 5);
  poll();
});`,
};

/** Calls of function `name` running in the worker now (holding a slot of one of its instances). */
const running = (platform: Platform, name: string): number =>
  platform.worker.instances
    .list()
    .filter((i) => i.fn.name === name)
    .reduce((sum, i) => sum + i.inFlight, 0);

/** Lets the calls of function `name` waiting on `gate` go: the file appears in each of its instances. */
async function openGate(platform: Platform, name: string, gate: string): Promise<void> {
  const instances = platform.worker.instances.list().filter((i) => i.fn.name === name);
  if (instances.length === 0) throw new Error(`${name} has no instance to open ${gate} in`);
  for (const instance of instances) {
    // The sandbox's socket directory (worker/node.ts, runc-sandbox.ts), bound at /run/skiff.
    const dir = join(platform.config.worker.runDir, 'sockets', instance.sandbox.id);
    if (!existsSync(dir)) throw new Error(`no socket directory ${dir} for sandbox ${instance.sandbox.id}`);
    await writeFile(join(dir, gate), '');
  }
}

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
  t.ok(await eventually(() => !platform.worker.instances.list().some((i) => i.fn.name === 'brief'), 30_000), 'expired after ~1 s idle');

  const res = await deploy({ name: 'ready', minWarm: 2, idleTimeoutMs: 1000 }, NOOP);
  t.match(await res.json(), { minWarm: 2 });
  t.ok(
    await eventually(() => platform.worker.instances.list().filter((i) => i.fn.name === 'ready').length === 2, 10_000),
    'two instances exist without any call',
  );
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
  t.same(
    platform.worker.instances
      .list()
      .map((i) => i.fn.name)
      .sort(),
    ['m1', 'm2', 'm3'],
  );
  t.equal((await invoke('m2', {})).headers.get('x-skiff-cold-start'), 'false', 'm2 used again: m1 is now least recent');
  t.equal((await invoke('m4', {})).status, 200, 'a fourth function still gets an instance');
  t.same(
    platform.worker.instances
      .list()
      .map((i) => i.fn.name)
      .sort(),
    ['m2', 'm3', 'm4'],
    'm1 was evicted',
  );
});

t.test('maxInstances: calls wait for a free instance, then get 429 with Retry-After', async (t) => {
  // A generous wait: the calls are refused by waiting it out, never by being slow to get there.
  const platform = await startPlatform({ SKIFF_QUEUE_WAIT_MS: '5000' });
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  await deploy({ name: 'single', maxInstances: 1, concurrency: 1 }, GATED);
  t.equal((await invoke('single', { n: 0 })).status, 200, 'warm it up');
  // The calls the worker has taken, also while they wait for an instance: active on its own queue
  // (placed by the scheduler) or read from its straight-calls stream (sent straight to its warm instance).
  const redis = new Redis(process.env.REDIS_URL ?? '', { maxRetriesPerRequest: null });
  const keys = keySpace(platform.config.keyPrefix);
  const nodeQueue = new Queue(keys.nodeQueue(platform.config.worker.id), { connection: redis, prefix: keys.bullPrefix });
  const taken = async (): Promise<number> => (await nodeQueue.getActiveCount()) + (await pendingCalls(redis, keys, platform.config.worker.id)).length;
  t.teardown(async () => {
    await nodeQueue.close();
    await redis.quit();
  });

  // The first call holds the only instance until its gate opens; the second is sent only then,
  // and the gate opens only once the worker has the second too (waiting, as the instance is busy).
  const a = invoke('single', { n: 1, gate: 'open-1' });
  t.ok(await eventually(() => running(platform, 'single') === 1, 20_000, 10), 'the first call runs');
  const b = invoke('single', { n: 2 });
  t.ok(await eventually(async () => (await taken()) === 2, 20_000, 10), 'the second call is taken by the worker while the first runs');
  t.equal(running(platform, 'single'), 1, 'and waits: only the first runs');
  await openGate(platform, 'single', 'open-1');
  const [first, second] = await Promise.all([a, b]);
  t.same([first.status, second.status], [200, 200], 'the second call waited instead of failing');
  t.same([await first.json(), await second.json()], [1, 2]);

  // A call holds the only instance until after the next one has been refused: that one waits out
  // its 5 s for an instance and gets 429.
  const long = invoke('single', { n: 3, gate: 'open-3' });
  t.ok(await eventually(() => running(platform, 'single') === 1, 20_000, 10), 'the long call runs');
  const refused = await invoke('single', { n: 4 });
  t.equal(refused.status, 429);
  t.equal(refused.headers.get('retry-after'), '1');
  t.match(await refused.json(), { error: { code: 'TooManyRequests', message: /single is at its limit of instances/ } });
  t.equal(running(platform, 'single'), 1, 'the long call held the instance all along');
  await openGate(platform, 'single', 'open-3');
  const longDone = await long;
  t.equal(longDone.status, 200);
  t.equal(await longDone.json(), 3);
  t.equal(platform.worker.instances.list().filter((i) => i.fn.name === 'single').length, 1, 'never more than one instance');
});

t.test('back-pressure: a function past its bound of waiting calls gets 429; others keep answering', async (t) => {
  const platform = await startPlatform({ SKIFF_MAX_PENDING_PER_FUNCTION: '2' });
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  await deploy({ name: 'slow', concurrency: 4 }, GATED);
  await deploy({ name: 'quick' }, NOOP);
  t.equal((await invoke('slow', { n: 0 })).status, 200, 'warm');
  // Each held call is sent only once the one before runs in the worker: the gateway holds it
  // until its answer, which cannot come before the gate opens. So the first two hold the bound.
  const held = [];
  for (const n of [1, 2]) {
    held.push(invoke('slow', { n, gate: 'open' }));
    t.ok(await eventually(() => running(platform, 'slow') === n, 20_000, 10), `call ${n} runs`);
  }
  const refused = [await invoke('slow', { n: 3 }), await invoke('slow', { n: 4 })];
  t.same(
    refused.map((r) => r.status),
    [429, 429],
    'two calls wait, the next two are refused',
  );
  t.match(await refused[0]?.json(), { error: { code: 'TooManyRequests', message: /slow has 2 calls waiting already/ } });
  const other = await invoke('quick', {});
  t.equal(other.status, 200, 'another function is not held back');
  t.equal(running(platform, 'slow'), 2, 'the two held calls were running all along');
  await openGate(platform, 'slow', 'open');
  const answers = await Promise.all(held);
  t.same(
    answers.map((r) => r.status),
    [200, 200],
    'the two waiting calls answer',
  );
  t.same(await Promise.all(answers.map((r) => r.json())), [1, 2]);
});
