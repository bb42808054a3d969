import t from 'tap';
import { expired, toFreeMemory } from '../../worker/instances/eviction.js';
import type { InstanceView } from '../../worker/instances/eviction.js';

function instance(id: string, overrides: Partial<InstanceView> = {}): InstanceView {
  return { id, versionId: 'v1', memoryMb: 128, inFlight: 0, lastUsedAt: 0, idleTimeoutMs: 1000, minWarm: 0, ...overrides };
}

t.test('expired: idle instances whose keep-alive has run out', async (t) => {
  const instances = [
    instance('fresh', { lastUsedAt: 9_500 }),
    instance('exact', { lastUsedAt: 9_000 }),
    instance('old', { lastUsedAt: 1_000 }),
    instance('busy-old', { lastUsedAt: 1_000, inFlight: 1 }),
    instance('long-keepalive', { lastUsedAt: 1_000, idleTimeoutMs: 60_000 }),
    instance('short-keepalive', { lastUsedAt: 9_900, idleTimeoutMs: 50 }),
  ];
  t.same(expired(instances, 10_000), ['old', 'exact', 'short-keepalive'], 'oldest first');
});

t.test('expired: nothing in, nothing out; nothing expired yet', async (t) => {
  t.same(expired([], 10_000), []);
  t.same(expired([instance('a', { lastUsedAt: 9_001 })], 10_000), []);
});

t.test('expired: a busy instance never expires, however old', async (t) => {
  t.same(expired([instance('a', { inFlight: 3, lastUsedAt: 0 })], Number.MAX_SAFE_INTEGER), []);
});

t.test('toFreeMemory: least recently used first, only as many as needed', async (t) => {
  const instances = [instance('newest', { lastUsedAt: 300 }), instance('oldest', { lastUsedAt: 100 }), instance('middle', { lastUsedAt: 200 })];
  t.same(toFreeMemory(instances, 1), ['oldest']);
  t.same(toFreeMemory(instances, 128), ['oldest'], 'exactly one instance worth');
  t.same(toFreeMemory(instances, 129), ['oldest', 'middle']);
  t.same(toFreeMemory(instances, 384), ['oldest', 'middle', 'newest']);
});

t.test('toFreeMemory: instance sizes add up', async (t) => {
  const instances = [
    instance('small-old', { memoryMb: 64, lastUsedAt: 1 }),
    instance('big-new', { memoryMb: 1024, lastUsedAt: 5 }),
    instance('mid', { memoryMb: 256, lastUsedAt: 3 }),
  ];
  t.same(toFreeMemory(instances, 320), ['small-old', 'mid'], '64 + 256 = 320');
  t.same(toFreeMemory(instances, 321), ['small-old', 'mid', 'big-new']);
});

t.test('toFreeMemory: busy instances are never chosen', async (t) => {
  const instances = [
    instance('busy-oldest', { lastUsedAt: 1, inFlight: 1, memoryMb: 4096 }),
    instance('idle', { lastUsedAt: 2 }),
    instance('busy', { lastUsedAt: 3, inFlight: 2 }),
    instance('idle-newer', { lastUsedAt: 4 }),
  ];
  t.same(toFreeMemory(instances, 200), ['idle', 'idle-newer']);
});

t.test('toFreeMemory: nothing when even every idle instance would not free enough', async (t) => {
  const instances = [instance('a', { lastUsedAt: 1 }), instance('b', { lastUsedAt: 2 }), instance('busy', { lastUsedAt: 0, inFlight: 1, memoryMb: 1024 })];
  t.same(toFreeMemory(instances, 257), [], '256 MiB idle is one short; busy memory does not count');
  t.same(toFreeMemory(instances, 256), ['a', 'b'], 'exactly all idle');
  t.same(toFreeMemory([], 1), []);
});

t.test('toFreeMemory: nothing needed, nothing chosen', async (t) => {
  const instances = [instance('a'), instance('b')];
  t.same(toFreeMemory(instances, 0), []);
  t.same(toFreeMemory(instances, -512), []);
});

t.test('toFreeMemory: the input is not reordered', async (t) => {
  const instances = [instance('c', { lastUsedAt: 3 }), instance('a', { lastUsedAt: 1 }), instance('b', { lastUsedAt: 2 })];
  toFreeMemory(instances, 384);
  t.same(
    instances.map((i) => i.id),
    ['c', 'a', 'b'],
  );
});

t.test('minWarm: expiry and memory pressure never take a version below its minimum', async (t) => {
  const instances = [
    instance('a1', { versionId: 'a', minWarm: 2, lastUsedAt: 100 }),
    instance('a2', { versionId: 'a', minWarm: 2, lastUsedAt: 200 }),
    instance('a3', { versionId: 'a', minWarm: 2, lastUsedAt: 300 }),
    instance('b1', { versionId: 'b', lastUsedAt: 400 }),
  ];
  t.same(expired(instances, 100_000), ['a1', 'b1'], 'a keeps two, b goes to zero');
  t.same(toFreeMemory(instances, 256), ['a1', 'b1'], 'LRU, but a keeps two');
  t.same(toFreeMemory(instances, 384), [], 'not enough without breaking minWarm: nothing');
  const busy = instances.map((i) => (i.id === 'a2' || i.id === 'a3' ? { ...i, inFlight: 1 } : i));
  t.same(expired(busy, 100_000), ['a1', 'b1'], 'busy instances count toward minWarm');
  t.same(
    expired(
      instances.map((i) => ({ ...i, minWarm: 3 })),
      100_000,
    ),
    [],
    'minWarm equal to the count keeps all',
  );
});
