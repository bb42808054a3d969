import t from 'tap';
import { afterPlacement, decide, place } from '../../scheduler/placement.js';
import type { Demand, NodeView } from '../../scheduler/placement.js';

const DEMAND: Demand = { versionId: 'v1', runtime: 'nodejs20', memoryMb: 128 };

function node(id: string, overrides: Partial<NodeView> = {}): NodeView {
  return { id, state: 'active', capacityMb: 1024, usedMb: 0, idle: {}, busy: {}, pool: {}, ...overrides };
}

t.test('an empty fleet gets no placement', async (t) => {
  t.equal(place([], DEMAND), undefined);
});

t.test('an idle warm instance wins over every other kind of node', async (t) => {
  const nodes = [
    node('roomy', { capacityMb: 8192 }),
    node('pooled', { pool: { nodejs20: 3 } }),
    node('running', { busy: { v1: 2 } }),
    // Full: a warm start needs no new memory, so it still wins.
    node('warm', { usedMb: 1024, idle: { v1: 1 } }),
  ];
  t.same(place(nodes, DEMAND), { nodeId: 'warm', start: 'warm' });
});

t.test('among warm nodes, the one with most idle instances of the version is chosen', async (t) => {
  const nodes = [node('a', { idle: { v1: 1 } }), node('b', { idle: { v1: 3 } }), node('c', { idle: { v1: 2 } })];
  t.same(place(nodes, DEMAND), { nodeId: 'b', start: 'warm' });
});

t.test('idle instances of another version do not make a warm start', async (t) => {
  const nodes = [node('other', { idle: { v2: 5 }, capacityMb: 512 }), node('roomy', { capacityMb: 2048 })];
  t.same(place(nodes, DEMAND), { nodeId: 'roomy', start: 'cold' });
});

t.test('a node already running the version with room beats a pooled and a roomier node', async (t) => {
  const nodes = [node('roomy', { capacityMb: 8192 }), node('pooled', { capacityMb: 4096, pool: { nodejs20: 2 } }), node('running', { busy: { v1: 1 } })];
  t.same(place(nodes, DEMAND), { nodeId: 'running', start: 'cold' });
});

t.test('a node running the version that also has a pooled sandbox starts pooled', async (t) => {
  const nodes = [node('running', { busy: { v1: 1 }, pool: { nodejs20: 1 } })];
  t.same(place(nodes, DEMAND), { nodeId: 'running', start: 'pooled' });
});

t.test('a pooled sandbox of another runtime does not make a running node start pooled', async (t) => {
  const nodes = [node('running', { busy: { v1: 1 }, pool: { python312: 4 } })];
  t.same(place(nodes, DEMAND), { nodeId: 'running', start: 'cold' });
});

t.test('among nodes running the version, the one with most free memory is chosen', async (t) => {
  const nodes = [node('a', { busy: { v1: 1 }, usedMb: 800 }), node('b', { busy: { v1: 1 }, usedMb: 100 }), node('c', { busy: { v1: 1 }, usedMb: 500 })];
  t.same(place(nodes, DEMAND), { nodeId: 'b', start: 'cold' });
});

t.test('a node running the version without room is passed over', async (t) => {
  const nodes = [node('running-full', { busy: { v1: 3 }, usedMb: 1000 }), node('pooled', { pool: { nodejs20: 1 } })];
  t.same(place(nodes, DEMAND), { nodeId: 'pooled', start: 'pooled' });
});

t.test('a pooled sandbox of the runtime beats a roomier node', async (t) => {
  const nodes = [node('roomy', { capacityMb: 8192 }), node('pooled', { capacityMb: 512, pool: { nodejs20: 1 } })];
  t.same(place(nodes, DEMAND), { nodeId: 'pooled', start: 'pooled' });
});

t.test('a pooled sandbox of another runtime does not count', async (t) => {
  const nodes = [node('python', { capacityMb: 512, pool: { python312: 3 } }), node('roomy', { capacityMb: 2048 })];
  t.same(place(nodes, DEMAND), { nodeId: 'roomy', start: 'cold' });
});

t.test('a pooled node without room is passed over', async (t) => {
  const nodes = [node('pooled-full', { usedMb: 1000, pool: { nodejs20: 2 } }), node('plain')];
  t.same(place(nodes, DEMAND), { nodeId: 'plain', start: 'cold' });
});

t.test('among pooled nodes, the one with most free memory is chosen', async (t) => {
  const nodes = [
    node('a', { usedMb: 600, pool: { nodejs20: 5 } }),
    node('b', { usedMb: 200, pool: { nodejs20: 1 } }),
    node('c', { usedMb: 400, pool: { nodejs20: 1 } }),
  ];
  t.same(place(nodes, DEMAND), { nodeId: 'b', start: 'pooled' });
});

t.test('otherwise the node with most free memory gets a cold start', async (t) => {
  const nodes = [node('a', { capacityMb: 2048, usedMb: 1500 }), node('b', { capacityMb: 1024, usedMb: 100 }), node('c', { capacityMb: 4096, usedMb: 3500 })];
  t.same(place(nodes, DEMAND), { nodeId: 'b', start: 'cold' });
});

t.test('cordoned and draining nodes are never chosen', async (t) => {
  const unavailable: NodeView[] = [
    node('cordoned-warm', { state: 'cordoned', idle: { v1: 4 } }),
    node('draining-warm', { state: 'draining', idle: { v1: 4 } }),
    node('cordoned-running', { state: 'cordoned', busy: { v1: 1 } }),
    node('draining-pooled', { state: 'draining', pool: { nodejs20: 4 } }),
    node('cordoned-roomy', { state: 'cordoned', capacityMb: 65536 }),
  ];
  t.equal(place(unavailable, DEMAND), undefined, 'no active node, no placement');
  t.same(place([...unavailable, node('small', { capacityMb: 256 })], DEMAND), { nodeId: 'small', start: 'cold' });
});

t.test('a node never gets more than its free memory', async (t) => {
  t.equal(place([node('a', { usedMb: 897 })], DEMAND), undefined, '127 MiB free is one short');
  t.same(place([node('a', { usedMb: 896 })], DEMAND), { nodeId: 'a', start: 'cold' }, 'exactly 128 MiB free fits');
  t.equal(place([node('a', { capacityMb: 100 }), node('b', { capacityMb: 127 })], DEMAND), undefined);
  t.equal(place([node('over', { capacityMb: 512, usedMb: 600 })], { ...DEMAND, memoryMb: 64 }), undefined, 'overcommitted node');
});

t.test('ties go to the first listed node', async (t) => {
  const warm = [node('a', { idle: { v1: 2 } }), node('b', { idle: { v1: 2 } })];
  t.equal(place(warm, DEMAND)?.nodeId, 'a');
  t.equal(place([...warm].reverse(), DEMAND)?.nodeId, 'b');

  const running = [node('a', { busy: { v1: 1 } }), node('b', { busy: { v1: 1 } })];
  t.equal(place(running, DEMAND)?.nodeId, 'a');
  t.equal(place([...running].reverse(), DEMAND)?.nodeId, 'b');

  const pooled = [node('a', { pool: { nodejs20: 1 } }), node('b', { pool: { nodejs20: 9 } })];
  t.equal(place(pooled, DEMAND)?.nodeId, 'a', 'pool size is not a tie-breaker, only free memory');
  t.equal(place([...pooled].reverse(), DEMAND)?.nodeId, 'b');

  const cold = [node('a'), node('b')];
  t.equal(place(cold, DEMAND)?.nodeId, 'a');
  t.equal(place([...cold].reverse(), DEMAND)?.nodeId, 'b');
});

t.test('place does not modify its input', async (t) => {
  const nodes = [node('a', { idle: { v1: 1 } }), node('b', { pool: { nodejs20: 1 } })];
  const copy = structuredClone(nodes);
  place(nodes, DEMAND);
  t.same(nodes, copy);
});

t.test('afterPlacement of a warm start moves one instance from idle to busy', async (t) => {
  const before = node('a', { usedMb: 300, idle: { v1: 2, v2: 1 }, busy: { v1: 1 }, pool: { nodejs20: 1 } });
  const after = afterPlacement(before, DEMAND, { nodeId: 'a', start: 'warm' });
  t.same(after, { ...before, idle: { v1: 1, v2: 1 }, busy: { v1: 2 } }, 'memory and pool unchanged');
  t.same(before.idle, { v1: 2, v2: 1 }, 'the input node is not modified');
  t.same(before.busy, { v1: 1 });
});

t.test('afterPlacement of a warm start counts the first busy instance', async (t) => {
  const after = afterPlacement(node('a', { idle: { v1: 1 } }), DEMAND, { nodeId: 'a', start: 'warm' });
  t.same(after.idle, { v1: 0 });
  t.same(after.busy, { v1: 1 });
  t.equal(after.usedMb, 0);
});

t.test('afterPlacement of a pooled start takes memory and a pooled sandbox', async (t) => {
  const before = node('a', { usedMb: 256, busy: { v2: 1 }, pool: { nodejs20: 2, python312: 1 } });
  const after = afterPlacement(before, DEMAND, { nodeId: 'a', start: 'pooled' });
  t.same(after, { ...before, usedMb: 384, busy: { v2: 1, v1: 1 }, pool: { nodejs20: 1, python312: 1 } });
  t.same(before.pool, { nodejs20: 2, python312: 1 }, 'the input node is not modified');
  t.equal(before.usedMb, 256);
});

t.test('afterPlacement of a cold start takes memory but leaves the pool alone', async (t) => {
  const before = node('a', { usedMb: 100, idle: { v1: 0 }, busy: { v1: 2 }, pool: { nodejs20: 2 } });
  const after = afterPlacement(before, DEMAND, { nodeId: 'a', start: 'cold' });
  t.same(after, { ...before, usedMb: 228, busy: { v1: 3 } });
  t.same(after.pool, { nodejs20: 2 });
  t.same(after.idle, { v1: 0 });
});

t.test('placing repeatedly with afterPlacement fills a node and then moves on', async (t) => {
  let nodes = [node('a', { capacityMb: 300, pool: { nodejs20: 1 } }), node('b', { capacityMb: 200 })];
  const chosen: string[] = [];
  for (;;) {
    const placement = place(nodes, DEMAND);
    if (!placement) break;
    chosen.push(`${placement.nodeId}:${placement.start}`);
    nodes = nodes.map((n) => (n.id === placement.nodeId ? afterPlacement(n, DEMAND, placement) : n));
  }
  // a: pooled (300 → 172 free); a again: running the version (172 → 44); b: the last fit (200 → 72).
  t.same(chosen, ['a:pooled', 'a:cold', 'b:cold']);
  for (const n of nodes) t.ok(n.usedMb <= n.capacityMb, `${n.id} is within its capacity`);
  t.same(nodes[0]?.pool, { nodejs20: 0 });
});

t.test('warmOwner: one node per function, stable, and moves only what it must', async (t) => {
  const { warmOwner } = await import('../../infra/fleet/warm-owner.js');
  t.equal(warmOwner('f', []), undefined, 'no nodes, no owner');
  t.equal(warmOwner('f', ['only']), 'only');
  const nodes = ['n1', 'n2', 'n3', 'n4'];
  const names = Array.from({ length: 200 }, (_, i) => `fn-${i}`);
  const owners = new Map(names.map((n) => [n, warmOwner(n, nodes)]));
  t.same(new Map(names.map((n) => [n, warmOwner(n, [...nodes].reverse())])), owners, 'node order does not matter');
  const counts = nodes.map((id) => names.filter((n) => owners.get(n) === id).length);
  t.ok(
    counts.every((c) => c > 20),
    `spread over all nodes: ${counts.join(',')}`,
  );
  const without = new Map(names.map((n) => [n, warmOwner(n, ['n1', 'n2', 'n4'])]));
  const moved = names.filter((n) => owners.get(n) !== without.get(n));
  t.ok(
    moved.every((n) => owners.get(n) === 'n3'),
    'only functions n3 held move when n3 leaves',
  );
});

t.test('a full node that can evict idle instances is chosen last', async (t) => {
  const { place, afterPlacement } = await import('../../scheduler/placement.js');
  const full = { id: 'full', state: 'active' as const, capacityMb: 384, usedMb: 384, idle: { other: 3 }, busy: {}, pool: {}, reclaimableMb: 384 };
  const busy = { ...full, id: 'busy', idle: {}, busy: { other: 3 }, reclaimableMb: 0 };
  const demand = { versionId: 'v', runtime: 'nodejs20', memoryMb: 128 };
  t.same(place([busy], demand), undefined, 'nothing to evict: no placement');
  const placement = place([busy, full], demand);
  t.same(placement, { nodeId: 'full', start: 'cold' });
  const roomy = { ...busy, id: 'roomy', usedMb: 0 };
  t.equal(place([full, roomy], demand)?.nodeId, 'roomy', 'free memory is preferred to evicting');
  const after = afterPlacement(full, demand, { nodeId: 'full', start: 'cold' });
  t.equal(after.usedMb, 384, 'used memory stays at capacity');
  t.equal(after.reclaimableMb, 256, 'the evicted instance is no longer reclaimable');
});

// Tenant quotas: maxInstances and maxMemoryMb count a tenant's busy and idle instances over the fleet.
const LIMITS = { maxInstances: 2, maxMemoryMb: 1024 };
const OF_A: Demand = { ...DEMAND, tenant: 'a', limits: LIMITS };
const usage = (instances: number, memoryMb: number, idleInstances = 0, idleMemoryMb = 0) => ({ instances, memoryMb, idleInstances, idleMemoryMb });

t.test('tenant limits: a warm start is allowed at the limit (it makes no instance)', async (t) => {
  const nodes = [node('warm', { idle: { v1: 1 }, busy: { v2: 1 }, tenants: { a: usage(2, 256, 1, 128) } }), node('roomy', { capacityMb: 8192 })];
  t.same(decide(nodes, OF_A), { placement: { nodeId: 'warm', start: 'warm' } });
  const slot = [node('slot', { busy: { v1: 2 }, slots: { v1: 3 }, tenants: { a: usage(2, 256) } })];
  t.same(decide(slot, OF_A), { placement: { nodeId: 'slot', start: 'warm' } }, 'so is a free slot on a busy instance of the version');
});

t.test('tenant limits: under them, placement is as without them', async (t) => {
  const nodes = [node('a1', { tenants: { a: usage(1, 128) } }), node('pooled', { pool: { nodejs20: 1 } })];
  t.same(decide(nodes, OF_A), { placement: { nodeId: 'pooled', start: 'pooled' } });
  t.same(decide([node('n', { tenants: { a: usage(50, 9999) } })], DEMAND), { placement: { nodeId: 'n', start: 'cold' } }, 'no limits on the demand: no check');
});

t.test('tenant limits: at maxInstances, the tenant’s own idle instance is evicted first', async (t) => {
  const nodes = [
    node('roomy', { capacityMb: 8192, tenants: { a: usage(1, 128) } }),
    node('own-idle', { usedMb: 128, idle: { v2: 1 }, pool: { nodejs20: 1 }, tenants: { a: usage(1, 128, 1, 128) } }),
  ];
  t.same(decide(nodes, OF_A), { placement: { nodeId: 'own-idle', start: 'pooled', evictTenant: { tenant: 'a', instances: 1, memoryMb: 0 } } });
});

t.test('tenant limits: at maxMemoryMb, enough of its idle memory is ordered out', async (t) => {
  const demand: Demand = { ...OF_A, limits: { maxInstances: 100, maxMemoryMb: 512 } };
  const nodes = [node('small-idle', { tenants: { a: usage(1, 64, 1, 64) } }), node('big-idle', { tenants: { a: usage(2, 384, 1, 256) } })];
  // 448 in use + 128 = 576: 64 MiB over. small-idle's 64 MiB idle would do, big-idle has more room after.
  t.same(decide(nodes, demand), { placement: { nodeId: 'big-idle', start: 'cold', evictTenant: { tenant: 'a', instances: 0, memoryMb: 64 } } });
  const tight: Demand = { ...OF_A, limits: { maxInstances: 100, maxMemoryMb: 448 } };
  t.same(
    decide(nodes, tight),
    { placement: { nodeId: 'big-idle', start: 'cold', evictTenant: { tenant: 'a', instances: 0, memoryMb: 128 } } },
    'a node with too little idle memory is passed over',
  );
});

t.test('tenant limits: at them with nothing idle, the call waits for its quota', async (t) => {
  const nodes = [node('n1', { busy: { v2: 2 }, tenants: { a: usage(2, 256) } }), node('roomy', { capacityMb: 65536 })];
  t.same(decide(nodes, OF_A), { wait: 'quota', quota: { tenant: 'a', quota: 'maxInstances', used: 2, limit: 2, never: false } });
  t.equal(place(nodes, OF_A), undefined);
  const memory: Demand = { ...OF_A, limits: { maxInstances: 100, maxMemoryMb: 300 } };
  t.same(decide(nodes, memory), { wait: 'quota', quota: { tenant: 'a', quota: 'maxMemoryMb', used: 256, limit: 300, never: false } });
  t.same(
    decide([node('empty')], { ...OF_A, memoryMb: 2048 }),
    { wait: 'quota', quota: { tenant: 'a', quota: 'maxMemoryMb', used: 0, limit: 1024, never: true } },
    'a function bigger than the quota can never run',
  );
});

t.test('tenant limits: usage counts on every live node; idle ones are evicted only on active nodes', async (t) => {
  const nodes = [
    node('cordoned', { state: 'cordoned', idle: { v2: 1 }, tenants: { a: usage(1, 128, 1, 128) } }),
    node('n2', { tenants: { a: usage(1, 128) } }),
  ];
  t.same(decide(nodes, OF_A), { wait: 'quota', quota: { tenant: 'a', quota: 'maxInstances', used: 2, limit: 2, never: false } });
});

t.test('tenant limits: an idle instance on a node without room for the new one is no use', async (t) => {
  const nodes = [node('full', { capacityMb: 256, usedMb: 256, reclaimableMb: 64, tenants: { a: usage(2, 192, 1, 64) } })];
  t.same(decide(nodes, OF_A), { wait: 'quota', quota: { tenant: 'a', quota: 'maxInstances', used: 2, limit: 2, never: false } });
});

t.test('tenant limits: another tenant is not affected', async (t) => {
  const nodes = [node('n1', { busy: { v2: 2 }, tenants: { a: usage(2, 256) } })];
  t.same(decide(nodes, { ...DEMAND, tenant: 'b', limits: LIMITS }), { placement: { nodeId: 'n1', start: 'cold' } });
});

t.test('tenant limits: placing repeatedly never takes the tenant past maxInstances', async (t) => {
  let nodes = [node('a', { tenants: { a: usage(1, 128, 1, 128) }, idle: { v9: 1 }, usedMb: 128 }), node('b')];
  const chosen: string[] = [];
  for (let i = 0; i < 5; i++) {
    const decision = decide(nodes, OF_A);
    if (!('placement' in decision)) break;
    const { placement } = decision;
    chosen.push(`${placement.nodeId}${placement.evictTenant ? '+evict' : ''}`);
    nodes = nodes.map((n) => (n.id === placement.nodeId ? afterPlacement(n, OF_A, placement) : n));
  }
  // One new instance under the limit, then its idle one is evicted for the next, then it waits.
  t.equal(chosen.length, 2, chosen.join(' '));
  t.match(chosen[1], /\+evict$/);
  const total = nodes.reduce((sum, n) => sum + (n.tenants?.a?.instances ?? 0), 0);
  t.equal(total, 2, 'the view counts the tenant at its limit');
  t.same(nodes.find((n) => n.id === 'a')?.tenants?.a?.idleInstances, 0, 'the evicted idle instance is gone from the view');
});

t.test('afterPlacement with an eviction order frees at least what it ordered', async (t) => {
  const before = node('a', { capacityMb: 512, usedMb: 512, reclaimableMb: 256, tenants: { a: usage(2, 256, 2, 256) } });
  const after = afterPlacement(before, OF_A, { nodeId: 'a', start: 'cold', evictTenant: { tenant: 'a', instances: 1, memoryMb: 128 } });
  t.equal(after.usedMb, 512);
  t.equal(after.reclaimableMb, 128);
  t.same(after.tenants?.a, usage(2, 256, 1, 128));
  t.same(before.tenants?.a, usage(2, 256, 2, 256), 'the input node is not modified');
});

t.test('tenant limits: at them, an idle instance it may have ordered out is not counted on', async (t) => {
  const nodes = [node('n1', { idle: { v1: 1 }, tenants: { a: usage(2, 256, 0, 0) }, evicting: { a: 1 } })];
  t.same(
    decide(nodes, OF_A),
    { wait: 'quota', quota: { tenant: 'a', quota: 'maxInstances', used: 2, limit: 2, never: false } },
    'the idle v1 may be the one evicted',
  );
  t.same(
    decide([node('n1', { idle: { v1: 2 }, tenants: { a: usage(2, 256, 1, 128) }, evicting: { a: 1 } })], OF_A),
    { placement: { nodeId: 'n1', start: 'warm' } },
    'two idle, one evicted: one is left',
  );
  t.same(
    decide(nodes, { ...OF_A, limits: { maxInstances: 3, maxMemoryMb: 1024 } }),
    { placement: { nodeId: 'n1', start: 'warm' } },
    'under its limits a stale warm guess costs nothing',
  );
  const after = afterPlacement(node('n1', { tenants: { a: usage(1, 128, 1, 128) } }), OF_A, {
    nodeId: 'n1',
    start: 'cold',
    evictTenant: { tenant: 'a', instances: 1, memoryMb: 0 },
  });
  t.same(after.evicting, { a: 1 }, 'afterPlacement counts the eviction it ordered');
});
