/**
 * The instance set on fake sandboxes (test/support/fake-sandbox.ts): warm, pooled and created
 * starts, waiting at maxInstances, eviction under memory pressure, death, failed specialization,
 * retirement, the crash backoff and keep-warm. No root, runc or services; no time is waited for
 * (a call that must give up is given a deadline already past).
 */
import t, { type Test } from 'tap';
import { createLogger } from '../../infra/log.js';
import { isSkiffError } from '../../infra/errors.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { CodeSource } from '../../worker/code/code-cache.js';
import { InstanceSet } from '../../worker/instances/instance-set.js';
import type { RuntimeImage } from '../../worker/sandbox/sandbox.js';
import { ReadySandboxPool } from '../../worker/sandbox/sandbox-pool.js';
import { deferred, fakeImage, FakeSandboxFactory, turns, until, type FakeSandbox } from '../support/fake-sandbox.js';
import { functionVersion } from '../support/function-version.js';

const log = createLogger('instance-set-test', 'silent');
const BASE = fakeImage('nodejs20');
const PAST = 0; // a deadline already gone: a call that cannot be served now is refused at once

const version = functionVersion;

/** Code of every version on the pooled base image, unless `roots` says otherwise; `gate` holds preparation. */
class FakeCode implements CodeSource {
  readonly roots = new Map<string, RuntimeImage>();
  gate: Promise<void> | undefined;
  async prepare(fn: FunctionVersion): Promise<{ codeDir: string; root: RuntimeImage }> {
    await this.gate;
    return { codeDir: `/code/${fn.versionId}`, root: this.roots.get(fn.versionId) ?? BASE };
  }
}

function setUp(t: Test, options: { capacityMb?: number; poolTarget?: number } = {}) {
  const factory = new FakeSandboxFactory();
  const images = new Map([['nodejs20', BASE]]);
  const code = new FakeCode();
  let free = (): number => options.capacityMb ?? 1024;
  const size = options.poolTarget ?? 0;
  const pool = new ReadySandboxPool(factory, images, {
    sizing: { floor: size, max: size, windowMs: 1000 },
    concurrency: 1,
    memoryMb: 128,
    footprintMb: 128,
    freeMb: () => free(),
    log,
  });
  const output: string[] = [];
  const set = new InstanceSet(pool, factory, images, code, {
    capacityMb: options.capacityMb ?? 1024,
    onOutput: (fn, sandboxId, line) => output.push(`${fn.name}/${sandboxId}: ${line.text}`),
    log,
  });
  free = () => set.freeMb();
  t.teardown(async () => {
    await pool.shutdown();
    await set.shutdown();
  });
  return { factory, pool, code, set, output };
}

t.test('a first call creates an instance; the next one, after it is released, is warm on the same sandbox', async (t) => {
  const { factory, set, output } = setUp(t);
  const fn = version();
  const first = await set.acquire(fn, PAST);
  t.equal(first.kind, 'created');
  t.equal(factory.made.length, 1);
  const sandbox = first.instance.sandbox as FakeSandbox;
  t.same(sandbox.specializedFor, { fn, codeDir: '/code/f-v1', egress: false }, 'specialized with its code, without egress');
  t.same(factory.asked[0], { image: BASE, memoryMb: 128 }, 'made from the root its code runs on, with its memory');
  t.equal(first.instance.inFlight, 1);
  sandbox.print('hello');
  t.same(output, [`f/${sandbox.id}: hello`], 'its output goes out with the function it belongs to');
  set.release(first.instance);
  t.equal(first.instance.inFlight, 0);
  const second = await set.acquire(fn, PAST);
  t.equal(second.kind, 'warm');
  t.equal(second.instance, first.instance, 'the same instance');
  t.same(second.timings, { codeMs: 0, createMs: 0, bindMs: 0, initMs: 0 }, 'a warm start costs nothing');
  t.equal(factory.made.length, 1, 'nothing new was made');
  t.same(set.counts(), { idle: {}, busy: { 'f-v1': 1 }, slots: {} });
});

t.test('a pooled sandbox of the same root is specialized; a function on another root gets a container of its own', async (t) => {
  const { factory, pool, set, code } = setUp(t, { poolTarget: 1 });
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 1 }, 'the pool filled');
  const pooledSandbox = factory.made[0];
  const pooled = await set.acquire(version(), PAST);
  t.equal(pooled.kind, 'pooled');
  t.equal(pooled.instance.sandbox, pooledSandbox, 'the pooled sandbox serves the call');
  t.equal(pooled.instance.sandbox.memoryMb, 128);
  await pool.refill();
  t.same(pool.sizes(), { nodejs20: 1 }, 'the pool refills after a take');

  const older = version({ name: 'older' });
  code.roots.set(older.versionId, fakeImage('nodejs20', ['sha256:an-older-base']));
  const made = await set.acquire(older, PAST);
  t.equal(made.kind, 'created', 'not the pooled sandbox: its root differs');
  t.same(factory.asked.at(-1)?.image.layers, ['sha256:an-older-base']);
  t.same(pool.sizes(), { nodejs20: 1 }, 'the pooled sandbox is still there');
});

t.test('at maxInstances a call waits for an instance to free up, or is refused at its deadline', async (t) => {
  const { set } = setUp(t);
  const fn = version({ maxInstances: 1 });
  const first = await set.acquire(fn, PAST);
  await t.rejects(set.acquire(fn, PAST), { code: 'TooManyRequests', message: /maxInstances 1/ }, 'refused when its deadline has passed');
  let served = false;
  const waiting = set.acquire(fn, Date.now() + 60_000).then((acquired) => ((served = true), acquired));
  await turns(20);
  t.notOk(served, 'it waits while the only instance is busy');
  set.release(first.instance);
  const second = await waiting;
  t.equal(second.kind, 'warm');
  t.equal(second.instance, first.instance, 'it gets the instance that was released');
});

t.test('concurrency: one instance serves as many calls at once as the function allows', async (t) => {
  const { set, factory } = setUp(t);
  const fn = version({ concurrency: 3, maxInstances: 1 });
  const calls = [await set.acquire(fn, PAST), await set.acquire(fn, PAST), await set.acquire(fn, PAST)];
  t.same(
    calls.map((c) => c.kind),
    ['created', 'warm', 'warm'],
  );
  t.equal(factory.made.length, 1);
  t.equal(calls[0]?.instance.inFlight, 3);
  await t.rejects(set.acquire(fn, PAST), { code: 'TooManyRequests' }, 'the fourth waits (and here gives up)');
  set.release(calls[0]!.instance);
  t.same(set.counts().slots, { 'f-v1': 1 }, 'one free slot on a busy instance');
});

t.test('when memory runs short the least recently used idle instance is evicted', async (t) => {
  const { set, factory } = setUp(t, { capacityMb: 256 });
  const a = await set.acquire(version({ name: 'a' }), PAST);
  const b = await set.acquire(version({ name: 'b' }), PAST);
  set.release(a.instance);
  set.release(b.instance);
  // Used in this order (set here: two releases may fall in one millisecond).
  a.instance.lastUsedAt = 1_000;
  b.instance.lastUsedAt = 2_000;
  t.equal(set.freeMb(), 0, 'the worker is full');
  t.equal(set.reclaimableMb(), 256, 'both idle instances could go');
  const c = await set.acquire(version({ name: 'c' }), PAST);
  t.equal(c.kind, 'created');
  const [sandboxA, sandboxB] = factory.made;
  t.equal(sandboxA?.deathReason, 'memory pressure', 'a, used least recently, was evicted');
  t.equal(sandboxB?.state, 'specialized', 'b stays');
  t.same(
    set
      .list()
      .map((i) => i.fn.name)
      .sort(),
    ['b', 'c'],
  );
  // Busy instances are never evicted: with b and c busy, d cannot be made.
  await set.acquire(version({ name: 'b' }), PAST);
  await t.rejects(set.acquire(version({ name: 'd' }), PAST), { code: 'TooManyRequests', message: /worker is full/ });
});

t.test('an instance that dies leaves the set and wakes a waiting call', async (t) => {
  const { set } = setUp(t);
  const fn = version({ maxInstances: 1 });
  const first = await set.acquire(fn, PAST);
  const waiting = set.acquire(fn, Date.now() + 60_000);
  await turns(5);
  (first.instance.sandbox as FakeSandbox).die('runtime exited');
  t.same(set.list(), [], 'the dead instance is gone at once');
  const next = await waiting;
  t.equal(next.kind, 'created', 'the waiting call gets a new instance');
  t.not(next.instance, first.instance);
  t.equal(set.list().length, 1);
  t.equal(set.usedMb(), 128, 'only the live instance holds memory');
});

t.test('a specialization that fails rejects the call, destroys its sandbox and gives its memory back', async (t) => {
  const { set, factory } = setUp(t, { capacityMb: 128 });
  const gate = deferred();
  factory.specialize = () => gate.promise;
  const fn = version();
  const acquiring = set.acquire(fn, PAST);
  await until(() => factory.made.length === 1);
  t.equal(set.freeMb(), 0, 'its memory is promised while it is being made');
  t.same(set.tenantUsage(), { t1: { instances: 1, memoryMb: 128, idleInstances: 0, idleMemoryMb: 0 } }, 'and it counts for its tenant');
  gate.reject(Object.assign(new Error('handler could not be loaded'), { code: 'FunctionError' }));
  await t.rejects(acquiring, { message: 'handler could not be loaded' });
  t.equal(factory.made[0]?.deathReason, 'specialization failed');
  t.same(set.list(), []);
  t.equal(set.freeMb(), 128, 'the memory is free again');
  t.same(set.tenantUsage(), {}, 'the tenant holds nothing');
  factory.specialize = undefined;
  t.equal((await set.acquire(fn, PAST)).kind, 'created', 'the next call makes a new instance');
});

t.test('a creation that fails rejects the call and leaves no promise of memory behind', async (t) => {
  const { set, factory } = setUp(t, { capacityMb: 128 });
  factory.failNext();
  const error = await set.acquire(version(), PAST).catch((e: unknown) => e);
  t.ok(isSkiffError(error, 'Unavailable'), 'the factory’s error');
  t.equal(set.freeMb(), 128);
  t.equal((await set.acquire(version(), PAST)).kind, 'created');
});

t.test('retired instances go: idle ones at once, busy ones when their last call ends', async (t) => {
  const { set } = setUp(t);
  const idle = await set.acquire(version({ name: 'g', versionId: 'g-v1' }), PAST);
  const busy = await set.acquire(version({ name: 'g', versionId: 'g-v1' }), PAST);
  const kept = await set.acquire(version({ name: 'g', versionId: 'g-v2', version: 2 }), PAST);
  set.release(idle.instance);
  set.retireFunction('g', 2);
  t.equal((idle.instance.sandbox as FakeSandbox).deathReason, 'retired', 'the idle old version is destroyed');
  t.equal(busy.instance.sandbox.state, 'specialized', 'the busy one finishes its call');
  t.ok(busy.instance.retired);
  t.equal((await set.acquire(version({ name: 'g', versionId: 'g-v1', maxInstances: 1 }), PAST)).kind, 'created', 'a retired instance takes no calls');
  set.release(busy.instance);
  t.equal((busy.instance.sandbox as FakeSandbox).deathReason, 'retired', 'destroyed when its call ended');
  t.equal(kept.instance.sandbox.state, 'specialized', 'the version kept stays');
});

t.test('three out-of-memory kills in a row stop new instances of a version for a while', async (t) => {
  const { set } = setUp(t);
  const fn = version();
  for (let i = 0; i < 3; i++) set.outcome(fn, true);
  await t.rejects(set.acquire(fn, PAST), { code: 'TooManyRequests', message: /crash backoff/ });
  t.equal((await set.acquire(version({ name: 'other' }), PAST)).kind, 'created', 'other versions are not held back');
});

t.test('keepWarm makes idle instances up to minWarm, within maxInstances', async (t) => {
  const { set } = setUp(t);
  t.equal(await set.keepWarm(version({ minWarm: 2 })), 2);
  t.same(set.counts().idle, { 'f-v1': 2 });
  t.equal(await set.keepWarm(version({ minWarm: 2 })), 0, 'nothing more once it has them');
  t.equal(await set.keepWarm(version({ name: 'capped', minWarm: 3, maxInstances: 1 })), 1);
  t.equal(set.reclaimableMb(), 0, 'instances kept warm are not counted as reclaimable');
});

t.test('preload makes one idle instance of a version with none, whose handler is loaded; its first call is warm', async (t) => {
  const { set, factory } = setUp(t, { capacityMb: 256 });
  const fn = version();
  t.equal(await set.preload(fn), true);
  t.same(set.counts().idle, { 'f-v1': 1 });
  t.ok((factory.made[0] as FakeSandbox).specializedFor, 'specialized: the handler is loaded');
  t.equal(await set.preload(fn), false, 'a version that has an instance gets no other');
  t.equal((await set.acquire(fn, PAST)).kind, 'warm', 'the first call is warm');
  t.equal(set.reclaimableMb(), 0, 'busy now');
  t.equal(await set.preload(version({ name: 'other' })), true, 'another version gets its own instance, never that one');
  t.equal(await set.preload(version({ name: 'third' })), false, 'no free memory left: none made');
  t.same(set.counts().idle, { 'other-v1': 1 }, 'and nothing was evicted for it');
});

t.test('calls deciding while an instance is made see it: maxInstances counts instances being made', async (t) => {
  const { set, factory } = setUp(t);
  factory.hold();
  const fn = version({ maxInstances: 1 });
  const first = set.acquire(fn, PAST);
  await until(() => factory.waiting() === 1);
  await t.rejects(set.acquire(fn, PAST), { code: 'TooManyRequests' }, 'no second instance while the first is being made');
  factory.release();
  t.equal((await first).kind, 'created');
  t.equal(factory.made.length, 1);
});

t.test('shutdown destroys every instance', async (t) => {
  const { set, factory } = setUp(t);
  await set.acquire(version({ name: 'a' }), PAST);
  await set.acquire(version({ name: 'b' }), PAST);
  await set.shutdown();
  t.same(
    factory.made.map((s) => s.deathReason),
    ['worker stopping', 'worker stopping'],
  );
  t.same(set.list(), []);
});
