/**
 * The scheduler's view of the fleet, read from heartbeats in a real Redis (REDIS_URL, started by
 * the test runner): placements are counted locally between heartbeats, and a view made full only
 * by those guesses is read again before a call is told there is no room.
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { Fleet } from '../../scheduler/fleet.js';
import type { WorkerHeartbeat } from '../../infra/fleet/heartbeat.js';
import { FleetRegistry } from '../../infra/fleet/registry.js';

const url = process.env.REDIS_URL;
if (!url) throw new Error('REDIS_URL is not set: run the tests with `npm test`');
const redis = new Redis(url, { maxRetriesPerRequest: null });
t.teardown(() => redis.quit());

const DEMAND = { versionId: 'v1', runtime: 'nodejs20', memoryMb: 128 };

async function fleetWith(beat: Partial<WorkerHeartbeat>): Promise<{ fleet: Fleet; key: string }> {
  const key = `test:fleet:${nanoid()}`;
  const full: WorkerHeartbeat = {
    id: 'n1',
    at: Date.now(),
    state: 'active',
    capacityMb: 1024,
    usedMb: 256,
    reclaimableMb: 0,
    idle: {},
    busy: { v1: 1 },
    pool: {},
    ...beat,
  };
  await redis.hset(key, full.id, JSON.stringify(full));
  t.teardown(() => redis.del(key));
  // A refresh interval far longer than the test: only an explicit re-read can see the heartbeat again.
  return { fleet: new Fleet(new FleetRegistry(redis, { workers: key, workerOrders: `${key}:orders` }, 60_000), 60_000), key };
}

t.test('quick calls of one function do not make a node with room look full', async (t) => {
  const { fleet } = await fleetWith({});
  // 768 MiB free is six 128 MiB instances by the local count; sequential calls that each end
  // before the next would all be placed on the node anyway.
  for (let i = 0; i < 20; i++) {
    t.same(await fleet.place(DEMAND), { nodeId: 'n1', start: 'cold' }, `call ${i + 1} is placed`);
  }
});

t.test('a node that its heartbeat says is full gets nothing', async (t) => {
  const { fleet } = await fleetWith({ usedMb: 1024 });
  t.equal(await fleet.place(DEMAND), undefined);
});

t.test('a node that filled up since the last read gets nothing once its heartbeat says so', async (t) => {
  const { fleet, key } = await fleetWith({});
  for (let i = 0; i < 6; i++) t.ok(await fleet.place(DEMAND));
  const now = Date.now();
  await redis.hset(
    key,
    'n1',
    JSON.stringify({ id: 'n1', at: now, state: 'active', capacityMb: 1024, usedMb: 1024, reclaimableMb: 0, idle: {}, busy: { v1: 7 }, pool: {} }),
  );
  t.equal(await fleet.place(DEMAND, now), undefined);
});

t.test("a tenant's placements count against its quota until its node's heartbeat postdates them", async (t) => {
  const at = Date.now();
  const { fleet, key } = await fleetWith({ at, busy: {}, usedMb: 0 });
  const ofA = { ...DEMAND, tenant: 'a', limits: { maxInstances: 1, maxMemoryMb: 4096 } };
  t.same(await fleet.decide(ofA, at + 10), { placement: { nodeId: 'n1', start: 'cold' } }, 'the first instance is within the limit');
  t.match(await fleet.decide(ofA, at + 20), { wait: 'quota', quota: { tenant: 'a', quota: 'maxInstances', used: 1, limit: 1 } }, 'the second waits');
  await fleet.refresh(at + 30);
  t.match(await fleet.decide(ofA, at + 30), { wait: 'quota' }, 'a heartbeat older than the placement does not forget it');
  t.same(await fleet.decide({ ...ofA, tenant: 'b' }, at + 30), { placement: { nodeId: 'n1', start: 'cold' } }, 'another tenant is placed');

  // The node's next heartbeat shows a's instance idle: the next call evicts it and takes its place.
  const beat: WorkerHeartbeat = {
    id: 'n1',
    at: at + 40,
    state: 'active',
    capacityMb: 1024,
    usedMb: 256,
    reclaimableMb: 128,
    idle: { v0: 1 },
    busy: { v1: 1 },
    pool: {},
    tenants: { a: { instances: 1, memoryMb: 128, idleInstances: 1, idleMemoryMb: 128 }, b: { instances: 1, memoryMb: 128, idleInstances: 0, idleMemoryMb: 0 } },
  };
  await redis.hset(key, 'n1', JSON.stringify(beat));
  await fleet.refresh(at + 50);
  t.same(await fleet.decide(ofA, at + 60), { placement: { nodeId: 'n1', start: 'cold', evictTenant: { tenant: 'a', instances: 1, memoryMb: 0 } } });
  t.match(await fleet.decide(ofA, at + 70), { wait: 'quota' }, 'its idle instance is ordered out once, not twice');
  await fleet.refresh(at + 80);
  t.match(await fleet.decide(ofA, at + 80), { wait: 'quota' }, 'not even after the view is read again');
});
