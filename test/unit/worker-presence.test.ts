import t from 'tap';
import { createLogger } from '../../infra/log.js';
import type { WorkerHeartbeat, WorkerOrder } from '../../infra/fleet/heartbeat.js';
import { NodePresence, type NodePresenceOptions } from '../../worker/presence.js';

const log = createLogger('worker-presence-test', 'silent');

/** A fleet in memory: the order an operator gave, and the beats the node sent. */
function fakeFleet(): NodePresenceOptions['fleet'] & { order: WorkerOrder | null; beats: WorkerHeartbeat[]; removed: string[] } {
  return {
    order: null,
    beats: [],
    removed: [],
    async orderOf() {
      return this.order;
    },
    async beat(beat) {
      this.beats.push(beat);
    },
    async remove(id) {
      this.removed.push(id);
    },
  };
}

function presence(fleet: ReturnType<typeof fakeFleet>, drain: () => Promise<void>): NodePresence {
  return new NodePresence({
    id: 'n1',
    fleet,
    heartbeatMs: 60_000,
    capacityMb: 1024,
    instances: { counts: () => ({ idle: { v1: 1 }, busy: {}, slots: {} }), usedMb: () => 128, reclaimableMb: () => 128, tenantUsage: () => ({}) },
    pool: { sizes: () => ({ nodejs: 2 }) },
    images: () => [],
    drain: async () => {
      await drain();
      return { replaced: 0, retried: 0, answered: 0 };
    },
    log,
  });
}

t.test('the heartbeat says what the node holds, in the state its order gives it', async (t) => {
  const fleet = fakeFleet();
  const node = presence(fleet, async () => {});
  fleet.order = 'cordoned';
  await node.start();
  await node.stop();
  t.equal(fleet.beats.length, 1, 'one beat at start');
  t.match(fleet.beats[0], { id: 'n1', state: 'cordoned', capacityMb: 1024, usedMb: 128, reclaimableMb: 128, idle: { v1: 1 }, pool: { nodejs: 2 }, images: [] });
  t.same(fleet.removed, ['n1'], 'a clean stop leaves the fleet');
});

t.test('a drain order starts one drain, says draining from its first beat, and resolves drained when it ends', async (t) => {
  const fleet = fakeFleet();
  let drains = 0;
  let finish!: () => void;
  const node = presence(fleet, () => {
    drains++;
    return new Promise<void>((resolve) => (finish = resolve));
  });
  fleet.order = 'draining';
  await node.start();
  t.equal(fleet.beats[0]?.state, 'draining');
  fleet.order = null;
  t.equal(node.heartbeatData().state, 'draining', 'a drain, once begun, is not undone');
  let drained = false;
  void node.drained.then(() => (drained = true));
  await new Promise((resolve) => setImmediate(resolve));
  t.equal(drained, false, 'not drained while calls are being handed back');
  finish();
  await node.drained;
  t.equal(drains, 1);
  await node.stop();
});
