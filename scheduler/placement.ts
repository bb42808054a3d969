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
 *
 * Tenant quotas (`maxInstances`, `maxMemoryMb`) count a tenant's busy and idle instances over
 * every live node. A warm start makes no instance, so the quota never refuses it (nor a free slot
 * on a busy instance of the version, when the tenant is at its limits). A call that
 * needs a new instance past its tenant's limits goes to a node holding enough of that tenant's
 * own idle instances, with an order to evict them first; if there is none, it waits (`quota`).
 */
import type { TenantEviction, TenantLimits, TenantUsage } from '../infra/tenancy/instance-limits.js';
import type { WorkerHeartbeat } from '../infra/fleet/heartbeat.js';

export interface Demand {
  versionId: string;
  runtime: string;
  memoryMb: number;
  /** The tenant that owns the function. */
  tenant?: string;
  /** The tenant's limits; without them no quota is checked. */
  limits?: TenantLimits;
}

export type NodeView = Pick<WorkerHeartbeat, 'id' | 'state' | 'capacityMb' | 'usedMb' | 'idle' | 'busy' | 'pool'> &
  Partial<Pick<WorkerHeartbeat, 'reclaimableMb' | 'tenants' | 'slots'>> & {
    /**
     * The scheduler's own: idle instances of each tenant it ordered evicted here since the node's
     * heartbeat. Which versions they were is known only to the node, so `idle` may still count them.
     */
    evicting?: Record<string, number>;
  };

export interface Placement {
  nodeId: string;
  /** What the node is expected to do: reuse an idle instance, or start one. */
  start: 'warm' | 'pooled' | 'cold';
  /** The tenant is at its limits: the node evicts these of the tenant's idle instances first. */
  evictTenant?: TenantEviction;
}

export type QuotaName = 'maxInstances' | 'maxMemoryMb';

/** Why a call of a tenant at its limits cannot be placed now. */
export interface QuotaWait {
  tenant: string;
  quota: QuotaName;
  /** What the tenant holds over the fleet now (instances, or MiB), and its limit. */
  used: number;
  limit: number;
  /** The function alone is past the limit (its memoryMb over maxMemoryMb): waiting cannot help. */
  never: boolean;
}

/** A placement, or why there is none: no node has room, or the tenant is at its limits. */
export type Decision = { placement: Placement } | { wait: 'capacity' } | { wait: 'quota'; quota: QuotaWait };

const NO_USAGE: TenantUsage = { instances: 0, memoryMb: 0, idleInstances: 0, idleMemoryMb: 0 };

export function place(nodes: readonly NodeView[], demand: Demand): Placement | undefined {
  const decision = decide(nodes, demand);
  return 'placement' in decision ? decision.placement : undefined;
}

export function decide(nodes: readonly NodeView[], demand: Demand): Decision {
  const active = nodes.filter((n) => n.state === 'active');
  const tenant = demand.tenant;
  const over = tenant !== undefined && demand.limits !== undefined ? overLimits(nodes, tenant, demand.limits, demand.memoryMb) : undefined;
  // At its limits a tenant may not gamble on an idle instance that may be one it had evicted:
  // a warm start that finds none would make an instance past the limits.
  const idle = (n: NodeView): number => (n.idle[demand.versionId] ?? 0) - (over && tenant !== undefined ? (n.evicting?.[tenant] ?? 0) : 0);
  const warm = most(
    active.filter((n) => idle(n) > 0),
    idle,
  );
  if (warm) return { placement: { nodeId: warm.id, start: 'warm' } };
  if (over && tenant !== undefined) {
    // A free slot on a busy instance of the version makes no instance either.
    const slot = most(
      active.filter((n) => (n.slots?.[demand.versionId] ?? 0) > 0),
      (n) => n.slots?.[demand.versionId] ?? 0,
    );
    if (slot) return { placement: { nodeId: slot.id, start: 'warm' } };
    const placement = evictingOwn(active, demand, tenant, over);
    return placement ? { placement } : { wait: 'quota', quota: over.wait };
  }
  const placement = placeNew(active, demand);
  return placement ? { placement } : { wait: 'capacity' };
}

/** Steps 2 to 5: a node for a new instance, within the tenant's limits. */
function placeNew(active: readonly NodeView[], demand: Demand): Placement | undefined {
  const fits = (n: NodeView): boolean => free(n) >= demand.memoryMb;
  const running = most(
    active.filter((n) => (n.busy[demand.versionId] ?? 0) > 0 && fits(n)),
    free,
  );
  if (running) return { nodeId: running.id, start: (running.pool[demand.runtime] ?? 0) > 0 ? 'pooled' : 'cold' };
  const pooled = most(
    active.filter((n) => (n.pool[demand.runtime] ?? 0) > 0 && fits(n)),
    free,
  );
  if (pooled) return { nodeId: pooled.id, start: 'pooled' };
  const roomy = most(active.filter(fits), free);
  if (roomy) return { nodeId: roomy.id, start: 'cold' };
  const reclaim = (n: NodeView): number => free(n) + (n.reclaimableMb ?? 0);
  const evicting = most(
    active.filter((n) => reclaim(n) >= demand.memoryMb),
    reclaim,
  );
  if (evicting) return { nodeId: evicting.id, start: 'cold' };
  return undefined;
}

/** What one more instance of `memoryMb` would take the tenant past, fleet-wide; undefined: nothing. */
function overLimits(
  nodes: readonly NodeView[],
  tenant: string,
  limits: TenantLimits,
  memoryMb: number,
): { instances: number; memoryMb: number; wait: QuotaWait } | undefined {
  // Every live node counts, cordoned and draining ones too: their instances still hold memory.
  const used = tenantUsage(nodes, tenant);
  const instances = used.instances + 1 - limits.maxInstances;
  const memory = used.memoryMb + memoryMb - limits.maxMemoryMb;
  if (instances <= 0 && memory <= 0) return undefined;
  const wait: QuotaWait =
    memoryMb > limits.maxMemoryMb || instances <= 0
      ? { tenant, quota: 'maxMemoryMb', used: used.memoryMb, limit: limits.maxMemoryMb, never: memoryMb > limits.maxMemoryMb }
      : { tenant, quota: 'maxInstances', used: used.instances, limit: limits.maxInstances, never: limits.maxInstances < 1 };
  return { instances: Math.max(0, instances), memoryMb: Math.max(0, memory), wait };
}

/**
 * An active node where evicting the tenant's own idle instances brings it back within its limits,
 * and that then has room for the new instance; the one with most room after the eviction.
 */
function evictingOwn(
  active: readonly NodeView[],
  demand: Demand,
  tenant: string,
  over: { instances: number; memoryMb: number; wait: QuotaWait },
): Placement | undefined {
  if (over.wait.never) return undefined;
  const own = (n: NodeView): TenantUsage => n.tenants?.[tenant] ?? NO_USAGE;
  // Room once its own idle instances are gone (the node may evict other idle ones on top).
  const room = (n: NodeView): number => free(n) + Math.max(own(n).idleMemoryMb, n.reclaimableMb ?? 0);
  const candidates = active.filter(
    (n) => own(n).idleInstances >= Math.max(1, over.instances) && own(n).idleMemoryMb >= over.memoryMb && room(n) >= demand.memoryMb,
  );
  const chosen = most(candidates, (n) => free(n) + own(n).idleMemoryMb);
  if (!chosen) return undefined;
  return {
    nodeId: chosen.id,
    start: (chosen.pool[demand.runtime] ?? 0) > 0 ? 'pooled' : 'cold',
    evictTenant: { tenant, instances: over.instances, memoryMb: over.memoryMb },
  };
}

/** A tenant's usage summed over `nodes`. */
export function tenantUsage(nodes: readonly NodeView[], tenant: string): TenantUsage {
  const sum = { ...NO_USAGE };
  for (const n of nodes) {
    const u = n.tenants?.[tenant];
    if (!u) continue;
    sum.instances += u.instances;
    sum.memoryMb += u.memoryMb;
    sum.idleInstances += u.idleInstances;
    sum.idleMemoryMb += u.idleMemoryMb;
  }
  return sum;
}

const free = (n: NodeView): number => n.capacityMb - n.usedMb;

/** The item with the highest score; ties go to the first listed. */
function most<T>(list: readonly T[], score: (item: T) => number): T | undefined {
  return list.reduce<T | undefined>((best, item) => (best === undefined || score(item) > score(best) ? item : best), undefined);
}

/** The node's view after a placement, until its next heartbeat says what really happened. */
export function afterPlacement(node: NodeView, demand: Demand, placement: Placement): NodeView {
  const tenants = afterForTenant(node, demand, placement);
  const order = placement.evictTenant;
  const evicting = order ? { evicting: { ...node.evicting, [order.tenant]: (node.evicting?.[order.tenant] ?? 0) + evictedBy(order) } } : {};
  if (placement.start === 'warm') {
    if ((node.idle[demand.versionId] ?? 0) === 0 && (node.slots?.[demand.versionId] ?? 0) > 0) {
      // A free slot on a busy instance: one slot fewer, nothing else changes.
      return { ...node, slots: { ...node.slots, [demand.versionId]: (node.slots?.[demand.versionId] ?? 1) - 1 } };
    }
    return {
      ...node,
      idle: { ...node.idle, [demand.versionId]: (node.idle[demand.versionId] ?? 1) - 1 },
      busy: { ...node.busy, [demand.versionId]: (node.busy[demand.versionId] ?? 0) + 1 },
      ...(tenants ? { tenants } : {}),
    };
  }
  // The tenant's own evicted instances free at least what was ordered; memory beyond the node's
  // free room after that comes from evicting other idle instances.
  const freedMb = placement.evictTenant?.memoryMb ?? 0;
  const used = Math.max(0, node.usedMb - freedMb);
  const evicted = Math.max(0, used + demand.memoryMb - node.capacityMb);
  return {
    ...node,
    usedMb: used + demand.memoryMb - evicted,
    ...(node.reclaimableMb === undefined ? {} : { reclaimableMb: Math.max(0, node.reclaimableMb - freedMb - evicted) }),
    busy: { ...node.busy, [demand.versionId]: (node.busy[demand.versionId] ?? 0) + 1 },
    pool: placement.start === 'pooled' ? { ...node.pool, [demand.runtime]: (node.pool[demand.runtime] ?? 1) - 1 } : node.pool,
    ...(tenants ? { tenants } : {}),
    ...evicting,
  };
}

/** The tenant's usage on the node after a placement. */
function afterForTenant(node: NodeView, demand: Demand, placement: Placement): NodeView['tenants'] {
  if (demand.tenant === undefined) return node.tenants;
  return { ...node.tenants, [demand.tenant]: addUsage(node.tenants?.[demand.tenant], tenantChange(node, demand, placement)) };
}

/**
 * How a placement on `node` changes its tenant's usage there. Guessed high (the fewest
 * evictions its order allows), so calls placed before the node's next heartbeat never take the
 * tenant past its limits.
 */
export function tenantChange(node: NodeView, demand: Demand, placement: Placement): TenantUsage {
  if (placement.start === 'warm') {
    const onSlot = (node.idle[demand.versionId] ?? 0) === 0 && (node.slots?.[demand.versionId] ?? 0) > 0;
    return onSlot ? { ...NO_USAGE } : { instances: 0, memoryMb: 0, idleInstances: -1, idleMemoryMb: -demand.memoryMb };
  }
  const order = placement.evictTenant;
  const evictedInstances = order ? evictedBy(order) : 0;
  const evictedMb = order?.memoryMb ?? 0;
  return { instances: 1 - evictedInstances, memoryMb: demand.memoryMb - evictedMb, idleInstances: -evictedInstances, idleMemoryMb: -evictedMb };
}

/** The fewest instances an eviction order takes: what it names, and at least one. */
export function evictedBy(order: TenantEviction): number {
  return Math.max(1, order.instances);
}

/** `usage` with `change` added (none below zero). */
export function addUsage(usage: TenantUsage | undefined, change: TenantUsage): TenantUsage {
  const u = usage ?? NO_USAGE;
  return {
    instances: Math.max(0, u.instances + change.instances),
    memoryMb: Math.max(0, u.memoryMb + change.memoryMb),
    idleInstances: Math.max(0, u.idleInstances + change.idleInstances),
    idleMemoryMb: Math.max(0, u.idleMemoryMb + change.idleMemoryMb),
  };
}
