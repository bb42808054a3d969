/**
 * The scheduler's view of the worker nodes, read from their heartbeats in Redis. Nodes whose last
 * heartbeat is older than the TTL are treated as gone.
 */
import type { Redis } from 'ioredis';
import type { WorkerHeartbeat } from '../infra/queue/jobs.js';
import { afterPlacement, place, type Demand, type NodeView, type Placement } from './placement.js';

export class Fleet {
  private nodes: NodeView[] = [];
  private readAt = 0;
  /** Whether `nodes` holds this scheduler's own guesses (placements) on top of the heartbeats. */
  private guessed = false;

  constructor(
    private readonly redis: Redis,
    private readonly key: string,
    /** Hash of operators' orders: a cordoned, draining or removed node gets nothing at once. */
    private readonly ordersKey: string,
    private readonly ttlMs: number,
    private readonly refreshMs: number,
  ) {}

  async view(now = Date.now()): Promise<readonly NodeView[]> {
    if (now - this.readAt >= this.refreshMs) await this.refresh(now);
    return this.nodes;
  }

  async refresh(now = Date.now()): Promise<void> {
    const [all, orders] = await Promise.all([this.redis.hgetall(this.key), this.redis.hgetall(this.ordersKey)]);
    this.nodes = Object.values(all)
      .map((json) => JSON.parse(json) as WorkerHeartbeat)
      .filter((beat) => now - beat.at <= this.ttlMs)
      .map((beat) => (orders[beat.id] && beat.state === 'active' ? { ...beat, state: 'cordoned' as const } : beat));
    this.readAt = now;
    this.guessed = false;
  }

  /**
   * Places a call and records the placement. The local view only ever grows between heartbeats
   * (it cannot see calls end), so a run of quick calls to one function makes a node look full
   * that is not: when nothing fits in a view that holds guesses, the heartbeats are read again
   * before giving up, instead of the caller waiting out a retry.
   */
  async place(demand: Demand, now = Date.now()): Promise<Placement | undefined> {
    let placement = place(await this.view(now), demand);
    if (!placement && this.guessed) {
      await this.refresh(now);
      placement = place(this.nodes, demand);
    }
    if (placement) this.placed(demand, placement);
    return placement;
  }

  /** Records a placement locally so the next choices before a heartbeat account for it. */
  private placed(demand: Demand, placement: Placement): void {
    this.guessed = true;
    this.nodes = this.nodes.map((n) => (n.id === placement.nodeId ? afterPlacement(n, demand, placement) : n));
  }
}
