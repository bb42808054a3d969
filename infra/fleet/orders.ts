/**
 * Operators' orders to worker nodes (POST /v1/workers/:id/cordon, /uncordon, /drain; DELETE
 * /v1/workers/:id), as pure rules: what a node makes of its order, and what placements make of a
 * node with one. The orders themselves are kept in Redis by {@link FleetRegistry} (registry.ts):
 * the gateway writes them, each node reads its own at every heartbeat, schedulers read them all.
 */
import type { WorkerHeartbeat, WorkerOrder, WorkerState } from './heartbeat.js';

/**
 * The state a node takes at a heartbeat, given its order: a drain, once begun, is never undone;
 * otherwise the node is cordoned while the order says so and active when it says nothing (or
 * `removed`: a live node does not remove itself).
 */
export function stateUnder(order: WorkerOrder | null, current: WorkerState): WorkerState {
  if (current === 'draining' || order === 'draining') return 'draining';
  return order === 'cordoned' ? 'cordoned' : 'active';
}

/**
 * The state placements see: a node still active by its last heartbeat but with an order (any:
 * cordoned, draining or removed) gets nothing at once, without waiting for the node to read it.
 */
export function placedState(beat: WorkerHeartbeat, order: WorkerOrder | null): WorkerState {
  return order !== null && beat.state === 'active' ? 'cordoned' : beat.state;
}
