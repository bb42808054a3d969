/**
 * The short warm path's map (infra/fleet/warm-routes.ts), on heartbeats made up here: a call goes
 * to a node whose heartbeat shows a free warm instance of its version, takes that slot until it
 * ends, and a call that ended on a node leaves a slot there until a heartbeat says so itself; a
 * call sent before a heartbeat is in that heartbeat already. Cordoned, ordered and dead nodes
 * get nothing.
 */
import t from 'tap';
import type { FleetMember } from '../../infra/fleet/registry.js';
import type { WorkerHeartbeat, WorkerOrder } from '../../infra/fleet/heartbeat.js';
import { WarmRoutes } from '../../infra/fleet/warm-routes.js';

const fn = { versionId: 'v1', concurrency: 1 };
const kept = (workerId: string) => ({ workerId, instanceKept: true });

function member(id: string, at: number, over: Partial<WorkerHeartbeat> = {}, order: WorkerOrder | null = null, alive = true): FleetMember {
  const beat: WorkerHeartbeat = { id, at, state: 'active', capacityMb: 4096, usedMb: 0, reclaimableMb: 0, idle: {}, busy: {}, pool: {}, ...over };
  return { id, beat, order, alive, ageMs: 0 };
}

t.test('no heartbeat shows a free instance: no route (the scheduler places the call)', async (t) => {
  const routes = new WarmRoutes();
  t.equal(routes.take(fn), undefined, 'nothing known yet');
  routes.refresh([member('n1', 100, { busy: { v1: 1 } })]);
  t.equal(routes.take(fn), undefined, 'only busy instances');
  t.equal(routes.take({ versionId: 'v2', concurrency: 1 }, 200), undefined, 'another version');
});

t.test('a free instance takes one call at a time, and is free again when the call ends', async (t) => {
  const routes = new WarmRoutes();
  routes.refresh([member('n1', 100, { idle: { v1: 1 } })]);
  const first = routes.take(fn, 200);
  t.equal(first?.nodeId, 'n1');
  t.equal(routes.take(fn, 201), undefined, 'its one slot is taken');
  routes.ended('v1', first, kept('n1'), 300);
  const second = routes.take(fn, 301);
  t.equal(second?.nodeId, 'n1', 'free again once the call ended');
  routes.ended('v1', second, { workerId: 'n1', instanceKept: false }, 400);
  t.equal(routes.take(fn, 401), undefined, 'a call that ended its instance (a timeout, say) leaves no slot');
});

t.test('a straight call its node handed to a scheduler leaves the slot taken, and frees one where it ran', async (t) => {
  const routes = new WarmRoutes();
  routes.refresh([member('n1', 100, { idle: { v1: 1 } }), member('n2', 100)]);
  const call = routes.take(fn, 200);
  t.equal(call?.nodeId, 'n1');
  routes.ended('v1', call, kept('n2'), 300);
  t.equal(routes.take(fn, 301)?.nodeId, 'n2', "n1's instance was someone else's; the one the call ran on, on n2, is free");
  t.equal(routes.take(fn, 302), undefined, 'and n1 stays taken until its next heartbeat');
});

t.test('calls go to the node with the most free slots; concurrency and free slots on busy instances count', async (t) => {
  const routes = new WarmRoutes();
  routes.refresh([member('n1', 100, { idle: { v1: 1 } }), member('n2', 100, { idle: { v1: 1 }, slots: { v1: 2 } })]);
  const wide = { versionId: 'v1', concurrency: 4 };
  const taken = Array.from({ length: 11 }, (_, i) => routes.take(wide, 200 + i)?.nodeId);
  t.same(taken.filter((n) => n === 'n2').length, 6, 'n2: one idle instance × 4 + 2 free slots');
  t.same(taken.filter((n) => n === 'n1').length, 4, 'n1: one idle instance × 4');
  t.equal(taken[10], undefined, 'then none');
});

t.test('a heartbeat taken after a call was sent shows it busy; its end frees the slot the heartbeat lacks', async (t) => {
  const routes = new WarmRoutes();
  routes.refresh([member('n1', 100, { idle: { v1: 1 } })]);
  const call = routes.take(fn, 200);
  routes.refresh([member('n1', 300, { busy: { v1: 1 } })]);
  t.equal(routes.take(fn, 301), undefined, 'busy by the heartbeat');
  routes.ended('v1', call, kept('n1'), 400);
  t.equal(routes.take(fn, 401)?.nodeId, 'n1', 'free after the call ended');
  routes.refresh([member('n1', 500, { busy: { v1: 1 } })]);
  t.equal(routes.take(fn, 501), undefined, 'a newer heartbeat replaces what the gateway guessed');
});

t.test('a call placed by a scheduler that ended on a node leaves its instance free there', async (t) => {
  const routes = new WarmRoutes();
  routes.refresh([member('n1', 100)]);
  routes.ended('v1', undefined, kept('n1'), 200);
  t.equal(routes.take(fn, 201)?.nodeId, 'n1', 'the instance made for the call is free now');
  routes.ended('v1', undefined, kept('gone'), 202);
  routes.ended('v1', undefined, { instanceKept: true }, 203);
  t.equal(routes.take(fn, 204), undefined, 'an end on an unknown node, or on none, frees nothing');
});

t.test('nodes cordoned, draining, with any order, or past their heartbeat TTL get no straight calls', async (t) => {
  const routes = new WarmRoutes();
  const idle = { idle: { v1: 5 } };
  routes.refresh([
    member('cordoned', 100, { ...idle, state: 'cordoned' }),
    member('draining', 100, { ...idle, state: 'draining' }),
    member('ordered', 100, idle, 'draining'),
    member('dead', 100, idle, null, false),
  ]);
  t.equal(routes.take(fn, 200), undefined);
});
