/**
 * Which warm instances to destroy: pure decisions over plain data, unit-tested without runc.
 * No decision takes a version below its `minWarm` instances: those are promised to be ready.
 */
import type { TenantUsage } from '../../infra/tenancy/instance-limits.js';

export interface InstanceView {
  id: string;
  versionId: string;
  /** The tenant that owns the instance's function. */
  tenant?: string;
  memoryMb: number;
  inFlight: number;
  lastUsedAt: number;
  /** Idle time after which this instance is evicted. */
  idleTimeoutMs: number;
  /** Instances of this version to keep even when idle. */
  minWarm: number;
}

/** Idle instances whose keep-alive has run out, oldest first. */
export function expired(instances: readonly InstanceView[], now: number): string[] {
  return removable(instances, (i) => i.inFlight === 0 && now - i.lastUsedAt >= i.idleTimeoutMs);
}

/**
 * Idle instances to destroy, least recently used first, to free `neededMb`; empty if even all
 * removable idle instances together would not free enough (then nothing is destroyed in vain).
 */
export function toFreeMemory(instances: readonly InstanceView[], neededMb: number): string[] {
  if (neededMb <= 0) return [];
  const chosen: string[] = [];
  let freed = 0;
  const byId = new Map(instances.map((i) => [i.id, i]));
  for (const id of removable(instances, (i) => i.inFlight === 0)) {
    if (freed >= neededMb) break;
    chosen.push(id);
    freed += byId.get(id)?.memoryMb ?? 0;
  }
  return freed >= neededMb ? chosen : [];
}

/** Memory the worker could free by evicting idle instances (what placement may count on). */
export function reclaimableMb(instances: readonly InstanceView[]): number {
  const byId = new Map(instances.map((i) => [i.id, i]));
  return removable(instances, (i) => i.inFlight === 0).reduce((sum, id) => sum + (byId.get(id)?.memoryMb ?? 0), 0);
}

/**
 * What each tenant holds: all its instances, and the idle ones the node would evict (the same
 * rule as for memory, so the scheduler only counts on evictions that can happen).
 */
export function tenantUsage(instances: readonly InstanceView[]): Record<string, TenantUsage> {
  const out: Record<string, TenantUsage> = {};
  const of = (tenant: string): TenantUsage => (out[tenant] ??= { instances: 0, memoryMb: 0, idleInstances: 0, idleMemoryMb: 0 });
  for (const i of instances) {
    if (i.tenant === undefined) continue;
    const usage = of(i.tenant);
    usage.instances++;
    usage.memoryMb += i.memoryMb;
  }
  const byId = new Map(instances.map((i) => [i.id, i]));
  for (const id of removable(instances, (i) => i.inFlight === 0)) {
    const i = byId.get(id);
    if (i?.tenant === undefined) continue;
    const usage = of(i.tenant);
    usage.idleInstances++;
    usage.idleMemoryMb += i.memoryMb;
  }
  return out;
}

/**
 * Idle instances of `tenant` to destroy, least recently used first (never below a version's
 * minWarm), until at least `need.instances` of them and `need.memoryMb` of their memory are
 * chosen, or none is left; with what the chosen ones add up to.
 */
export function tenantVictims(
  instances: readonly InstanceView[],
  tenant: string,
  need: { instances: number; memoryMb: number },
): { ids: string[]; instances: number; memoryMb: number } {
  const chosen = { ids: [] as string[], instances: 0, memoryMb: 0 };
  const byId = new Map(instances.map((i) => [i.id, i]));
  for (const id of removable(instances, (i) => i.inFlight === 0 && i.tenant === tenant)) {
    if (chosen.instances >= need.instances && chosen.memoryMb >= need.memoryMb) break;
    chosen.ids.push(id);
    chosen.instances++;
    chosen.memoryMb += byId.get(id)?.memoryMb ?? 0;
  }
  return chosen;
}

/** Instances matching `candidate`, least recently used first, leaving each version its minWarm. */
function removable(instances: readonly InstanceView[], candidate: (i: InstanceView) => boolean): string[] {
  const left = new Map<string, number>();
  for (const i of instances) left.set(i.versionId, (left.get(i.versionId) ?? 0) + 1);
  const out: string[] = [];
  for (const i of [...instances].filter(candidate).sort((a, b) => a.lastUsedAt - b.lastUsedAt)) {
    const count = left.get(i.versionId) ?? 0;
    if (count <= i.minWarm) continue;
    left.set(i.versionId, count - 1);
    out.push(i.id);
  }
  return out;
}
