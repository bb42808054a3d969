/**
 * The fleet (infra/fleet/): the one liveness rule and the rules of orders (pure), and the registry
 * of heartbeats and orders in a real Redis (REDIS_URL, started by the test runner; those cases
 * are skipped without it, as under `npm run test:unit`).
 */
import t from 'tap';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { isAlive, type WorkerHeartbeat } from '../../infra/fleet/heartbeat.js';
import { placedState, stateUnder } from '../../infra/fleet/orders.js';
import { FleetRegistry, fleetIds } from '../../infra/fleet/registry.js';

const url = process.env.REDIS_URL;
const redis = url ? new Redis(url, { maxRetriesPerRequest: null }) : undefined;
if (redis) t.teardown(() => redis.quit());
const withRedis = { skip: redis ? false : 'needs Redis (REDIS_URL)' };

type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

const TTL_MS = 5000;

function beat(id: string, at: number, state: WorkerHeartbeat['state'] = 'active'): WorkerHeartbeat {
  return { id, at, state, capacityMb: 1024, usedMb: 0, reclaimableMb: 0, idle: {}, busy: {}, pool: {} };
}

function registry(t: TapTest): { fleet: FleetRegistry; keys: { workers: string; workerOrders: string }; redis: Redis } {
  if (!redis) throw new Error('REDIS_URL is not set');
  const base = `test:fleet-registry:${nanoid()}`;
  const keys = { workers: `${base}:workers`, workerOrders: `${base}:worker-orders` };
  t.teardown(() => redis.del(keys.workers, keys.workerOrders));
  return { fleet: new FleetRegistry(redis, keys, TTL_MS), keys, redis };
}

t.test('a node is alive while its heartbeat is at most the TTL old', async (t) => {
  t.ok(isAlive({ at: 1000 }, TTL_MS, 1000 + TTL_MS), 'exactly the TTL old: alive');
  t.notOk(isAlive({ at: 1000 }, TTL_MS, 1001 + TTL_MS), 'older: not alive');
});

t.test('members lists every node with its order and liveness; live lists the live ones only', withRedis, async (t) => {
  const { fleet } = registry(t);
  const now = Date.now();
  await fleet.beat(beat('fresh', now));
  await fleet.beat(beat('dead', now - TTL_MS - 1));
  await fleet.order('dead', 'removed');
  const members = new Map((await fleet.members(now)).map((m) => [m.id, m]));
  t.match(members.get('fresh'), { alive: true, order: null, ageMs: 0 });
  t.match(members.get('dead'), { alive: false, order: 'removed', ageMs: TTL_MS + 1 });
  t.same(
    (await fleet.live(now)).map((b) => b.id),
    ['fresh'],
    'a dead node is not live',
  );
  t.same((await fleet.ids()).sort(), ['dead', 'fresh'], 'ids: every node still in the fleet');
  t.match(await fleet.get('dead', now), { id: 'dead', alive: false });
  t.equal(await fleet.get('nobody', now), undefined);
});

t.test('orders are set, read and withdrawn; a removed node leaves with its order', withRedis, async (t) => {
  const { fleet, keys, redis } = registry(t);
  await fleet.beat(beat('n1', Date.now()));
  await fleet.order('n1', 'cordoned');
  t.equal(await fleet.orderOf('n1'), 'cordoned');
  await fleet.order('n1', null);
  t.equal(await fleet.orderOf('n1'), null, 'uncordoned: no order');
  await fleet.order('n1', 'draining');
  await fleet.remove('n1');
  t.same(await fleetIds(redis, keys), [], 'gone from the fleet');
  t.equal(await fleet.orderOf('n1'), null, 'and its order with it');
});

t.test('what a node makes of its order, and what placements make of a node with one', async (t) => {
  t.equal(stateUnder(null, 'active'), 'active');
  t.equal(stateUnder('cordoned', 'active'), 'cordoned');
  t.equal(stateUnder(null, 'cordoned'), 'active', 'uncordoned');
  t.equal(stateUnder('draining', 'cordoned'), 'draining');
  t.equal(stateUnder(null, 'draining'), 'draining', 'a drain once begun is not undone');
  t.equal(stateUnder('removed', 'active'), 'active', 'a live node does not remove itself');
  t.equal(placedState(beat('n', 0), 'draining'), 'cordoned', 'an order takes an active node out of placements at once');
  t.equal(placedState(beat('n', 0), null), 'active');
  t.equal(placedState(beat('n', 0, 'draining'), 'draining'), 'draining');
});
