/**
 * Which warm instances to destroy: pure decisions over plain data, unit-tested without runc.
 */
export interface InstanceView {
  id: string;
  versionId: string;
  memoryMb: number;
  inFlight: number;
  lastUsedAt: number;
  /** Idle time after which this instance is evicted. */
  idleTimeoutMs: number;
}

/** Idle instances whose keep-alive has run out. */
export function expired(instances: readonly InstanceView[], now: number): string[] {
  return instances.filter((i) => i.inFlight === 0 && now - i.lastUsedAt >= i.idleTimeoutMs).map((i) => i.id);
}

/**
 * Idle instances to destroy, least recently used first, to free `neededMb`; empty if even all
 * idle instances together would not free enough (then nothing is destroyed in vain).
 */
export function toFreeMemory(instances: readonly InstanceView[], neededMb: number): string[] {
  if (neededMb <= 0) return [];
  const idle = instances.filter((i) => i.inFlight === 0).sort((a, b) => a.lastUsedAt - b.lastUsedAt);
  const chosen: string[] = [];
  let freed = 0;
  for (const instance of idle) {
    if (freed >= neededMb) break;
    chosen.push(instance.id);
    freed += instance.memoryMb;
  }
  return freed >= neededMb ? chosen : [];
}
