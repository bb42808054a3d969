/**
 * Where an invocation runs: a pure choice over plain data (the fleet as its heartbeats describe
 * it), so it is unit-tested without Redis. In order of preference:
 *   1. a node with an idle warm instance of this function version (a warm start);
 *   2. a node that already runs this version and has memory for one more instance (its code is
 *      cached there, and calls of one function stay together);
 *   3. a node with a ready pre-created sandbox of the runtime and free memory (a pooled start);
 *   4. the node with the most free memory (a full cold start);
 *   5. a node that can make room by evicting idle instances of other functions.
 * Cordoned and draining nodes get nothing; a node never gets more than its free memory.
 */
import type { WorkerHeartbeat } from '../infra/queue/jobs.js';

export interface Demand {
  versionId: string;
  runtime: string;
  memoryMb: number;
}

export type NodeView = Pick<WorkerHeartbeat, 'id' | 'state' | 'capacityMb' | 'usedMb' | 'idle' | 'busy' | 'pool'> &
  Partial<Pick<WorkerHeartbeat, 'reclaimableMb'>>;

export interface Placement {
  nodeId: string;
  /** What the node is expected to do: reuse an idle instance, or start one. */
  start: 'warm' | 'pooled' | 'cold';
}

export function place(nodes: readonly NodeView[], demand: Demand): Placement | undefined {
  const active = nodes.filter((n) => n.state === 'active');
  const free = (n: NodeView): number => n.capacityMb - n.usedMb;
  const fits = (n: NodeView): boolean => free(n) >= demand.memoryMb;
  const most = <T>(list: T[], score: (item: T) => number): T | undefined =>
    list.reduce<T | undefined>((best, item) => (best === undefined || score(item) > score(best) ? item : best), undefined);

  const warm = most(active.filter((n) => (n.idle[demand.versionId] ?? 0) > 0), (n) => n.idle[demand.versionId] ?? 0);
  if (warm) return { nodeId: warm.id, start: 'warm' };
  const running = most(active.filter((n) => (n.busy[demand.versionId] ?? 0) > 0 && fits(n)), free);
  if (running) return { nodeId: running.id, start: (running.pool[demand.runtime] ?? 0) > 0 ? 'pooled' : 'cold' };
  const pooled = most(active.filter((n) => (n.pool[demand.runtime] ?? 0) > 0 && fits(n)), free);
  if (pooled) return { nodeId: pooled.id, start: 'pooled' };
  const roomy = most(active.filter(fits), free);
  if (roomy) return { nodeId: roomy.id, start: 'cold' };
  const reclaim = (n: NodeView): number => free(n) + (n.reclaimableMb ?? 0);
  const evicting = most(active.filter((n) => reclaim(n) >= demand.memoryMb), reclaim);
  if (evicting) return { nodeId: evicting.id, start: 'cold' };
  return undefined;
}

/** The node's view after a placement, until its next heartbeat says what really happened. */
export function afterPlacement(node: NodeView, demand: Demand, placement: Placement): NodeView {
  if (placement.start === 'warm') {
    return {
      ...node,
      idle: { ...node.idle, [demand.versionId]: (node.idle[demand.versionId] ?? 1) - 1 },
      busy: { ...node.busy, [demand.versionId]: (node.busy[demand.versionId] ?? 0) + 1 },
    };
  }
  // Memory beyond the node's free room comes from evicting idle instances.
  const evicted = Math.max(0, node.usedMb + demand.memoryMb - node.capacityMb);
  return {
    ...node,
    usedMb: node.usedMb + demand.memoryMb - evicted,
    ...(node.reclaimableMb === undefined ? {} : { reclaimableMb: Math.max(0, node.reclaimableMb - evicted) }),
    busy: { ...node.busy, [demand.versionId]: (node.busy[demand.versionId] ?? 0) + 1 },
    pool: placement.start === 'pooled' ? { ...node.pool, [demand.runtime]: (node.pool[demand.runtime] ?? 1) - 1 } : node.pool,
  };
}

/**
 * The node that keeps a function's `minWarm` instances: rendezvous hashing over the active
 * nodes, so every node agrees without talking, and a node joining or leaving moves only the
 * functions it wins or held.
 */
export function warmOwner(functionName: string, nodeIds: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestScore = -1;
  for (const id of nodeIds) {
    const score = fnv1a(`${id}\u0000${functionName}`);
    if (score > bestScore || (score === bestScore && best !== undefined && id < best)) {
      best = id;
      bestScore = score;
    }
  }
  return best;
}

/** 32-bit FNV-1a: a fast, well-spread hash for short strings. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193) >>> 0;
  }
  return hash;
}
