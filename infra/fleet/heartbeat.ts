/**
 * The heartbeat: what a worker node tells the fleet about itself every `SKIFF_HEARTBEAT_MS`, and
 * the one rule of who is alive. Gateway, scheduler and worker read heartbeats only through
 * {@link FleetRegistry} (registry.ts), so they all agree on which nodes are there.
 */
import type { TenantUsage } from '../tenancy/instance-limits.js';

/**
 * active: takes new calls. cordoned: takes none, keeps serving its instances' running calls.
 * draining: takes none, finishes running calls, hands back calls placed but not started, exits.
 */
export type WorkerState = 'active' | 'cordoned' | 'draining';

/** What an operator asked of a node; `removed`: it is gone, recover its calls and forget it. */
export type WorkerOrder = 'cordoned' | 'draining' | 'removed';

/** What a worker tells the fleet about itself, every heartbeat. */
export interface WorkerHeartbeat {
  id: string;
  at: number;
  state: WorkerState;
  capacityMb: number;
  usedMb: number;
  /** Part of usedMb held by idle instances the node would evict to make room. */
  reclaimableMb: number;
  /** Idle warm instances by function version id. */
  idle: Record<string, number>;
  /** Busy instances by function version id. */
  busy: Record<string, number>;
  /** Free call slots on busy instances (concurrency above 1), by function version id. */
  slots?: Record<string, number>;
  /** Ready pre-created sandboxes by runtime. */
  pool: Record<string, number>;
  /** Images this node has pulled and holds ready (every layer unpacked). */
  images?: CachedImage[];
  /** What each tenant with instances here holds: tenants' quotas are summed over the fleet from these. */
  tenants?: Record<string, TenantUsage>;
}

export interface CachedImage {
  reference: string;
  digest: string;
  runtime: string | undefined;
}

/**
 * The liveness rule, the only one: a node is alive while its last heartbeat is at most `ttlMs`
 * old (SKIFF_HEARTBEAT_TTL_MS). A node past it takes no calls, is listed as not alive, and a
 * scheduler's failover takes its calls back (infra/fleet/recovery.ts) and removes it.
 */
export function isAlive(beat: Pick<WorkerHeartbeat, 'at'>, ttlMs: number, now: number): boolean {
  return now - beat.at <= ttlMs;
}
