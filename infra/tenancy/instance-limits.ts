/**
 * A tenant's instances, fleet-wide: the limits a job carries (from the tenant's quotas), the
 * eviction order the scheduler adds to a node job, and what a node's heartbeat says each tenant
 * holds on it. Decided by scheduler/placement.ts, enforced by worker/instances/.
 */

/** The part of a tenant's quotas (infra/tenancy/quotas.ts) that bounds its instances, fleet-wide. */
export interface TenantLimits {
  /** Busy and idle instances of the tenant's functions together. */
  maxInstances: number;
  /** Memory of those instances together, in MiB. */
  maxMemoryMb: number;
}

/**
 * An order to a worker, for a call whose tenant is at its limits: before making the call's
 * instance, destroy idle instances of `tenant` (least recently used first, never below a
 * version's minWarm) until at least `instances` of them and `memoryMb` of their memory are gone.
 * The tenant's own idle instances go before its calls wait.
 */
export interface TenantEviction {
  tenant: string;
  instances: number;
  memoryMb: number;
}

/** What one tenant holds on one node. */
export interface TenantUsage {
  /** Busy and idle instances together, those being made included. */
  instances: number;
  memoryMb: number;
  /** The idle instances the node would evict (a version's minWarm ones are kept), and their memory. */
  idleInstances: number;
  idleMemoryMb: number;
}
