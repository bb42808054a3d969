/**
 * The fleet as Redis holds it: every worker's last heartbeat (hash `<prefix>:workers`, by node id)
 * and operators' orders (hash `<prefix>:worker-orders`). The one place heartbeats are written,
 * read and parsed, and the one place the liveness rule ({@link isAlive}) is applied to them:
 * the gateway's routes (workers, stats, images), the scheduler (its view, failover, the
 * reconciler) and the worker (its heartbeat, its order, warm ownership) all go through it.
 *
 * A node stays in the hash after its heartbeats stop, until a scheduler's failover has taken its
 * calls back and removed it (or it leaves by itself on a clean stop): `members` lists it, marked
 * not alive; `live` never does.
 */
import type { Redis } from 'ioredis';
import type { KeySpace } from '../queue/names.js';
import { isAlive, type WorkerHeartbeat, type WorkerOrder } from './heartbeat.js';

/** The two hashes the fleet is kept in. */
export type FleetKeys = Pick<KeySpace, 'workers' | 'workerOrders'>;

/** One node in the fleet, as of one read. */
export interface FleetMember {
  /** The node's id (its heartbeat's own). */
  id: string;
  beat: WorkerHeartbeat;
  /** What an operator has asked of it; null: nothing. */
  order: WorkerOrder | null;
  /** Its last heartbeat is within the TTL ({@link isAlive}). */
  alive: boolean;
  /** How old its last heartbeat is, ms. */
  ageMs: number;
}

export class FleetRegistry {
  constructor(
    private readonly redis: Redis,
    private readonly keys: FleetKeys,
    /** SKIFF_HEARTBEAT_TTL_MS: a node whose heartbeat is older is not alive. */
    readonly ttlMs: number,
  ) {}

  /** Every node in the fleet, alive or not yet removed, with its order. */
  async members(now = Date.now()): Promise<FleetMember[]> {
    const [beats, orders] = await Promise.all([this.redis.hgetall(this.keys.workers), this.redis.hgetall(this.keys.workerOrders)]);
    return Object.entries(beats).map(([id, json]) =>
      this.member(id, JSON.parse(json) as WorkerHeartbeat, (orders[id] as WorkerOrder | undefined) ?? null, now),
    );
  }

  /** The live nodes' heartbeats. */
  async live(now = Date.now()): Promise<WorkerHeartbeat[]> {
    const beats = Object.values(await this.redis.hgetall(this.keys.workers)).map((json) => JSON.parse(json) as WorkerHeartbeat);
    return beats.filter((beat) => isAlive(beat, this.ttlMs, now));
  }

  /** One node, alive or not; undefined if it is not in the fleet. */
  async get(id: string, now = Date.now()): Promise<FleetMember | undefined> {
    const [json, order] = await Promise.all([this.redis.hget(this.keys.workers, id), this.orderOf(id)]);
    return json === null ? undefined : this.member(id, JSON.parse(json) as WorkerHeartbeat, order, now);
  }

  /**
   * Ids of the nodes in the fleet — alive, or dead but not yet removed by failover (their calls
   * are still theirs until then) — without reading their heartbeats.
   */
  async ids(): Promise<string[]> {
    return fleetIds(this.redis, this.keys);
  }

  /** A node's heartbeat: it is in the fleet (and alive) from now until the TTL passes. */
  async beat(beat: WorkerHeartbeat): Promise<void> {
    await this.redis.hset(this.keys.workers, beat.id, JSON.stringify(beat));
  }

  /** Takes a node out of the fleet: its heartbeat, then its order. */
  async remove(id: string): Promise<void> {
    await this.redis.hdel(this.keys.workers, id);
    await this.redis.hdel(this.keys.workerOrders, id);
  }

  /** An operator's order for a node; null withdraws it. */
  async order(id: string, order: WorkerOrder | null): Promise<void> {
    if (order === null) await this.redis.hdel(this.keys.workerOrders, id);
    else await this.redis.hset(this.keys.workerOrders, id, order);
  }

  /** What an operator has asked of a node (each node reads its own at every heartbeat). */
  async orderOf(id: string): Promise<WorkerOrder | null> {
    return (await this.redis.hget(this.keys.workerOrders, id)) as WorkerOrder | null;
  }

  private member(id: string, beat: WorkerHeartbeat, order: WorkerOrder | null, now: number): FleetMember {
    return { id, beat, order, alive: isAlive(beat, this.ttlMs, now), ageMs: now - beat.at };
  }
}

/** {@link FleetRegistry.ids}, for a reader that needs no liveness (scheduler/reconciler.ts). */
export async function fleetIds(redis: Redis, keys: Pick<FleetKeys, 'workers'>): Promise<string[]> {
  return redis.hkeys(keys.workers);
}
