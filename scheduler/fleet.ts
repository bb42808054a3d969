/**
 * The scheduler's view of the worker nodes, read from their heartbeats in Redis. Nodes whose last
 * heartbeat is older than the TTL are treated as gone.
 */
import type { Redis } from 'ioredis';
import type { WorkerHeartbeat } from '../infra/queue/jobs.js';
import { afterPlacement, type Demand, type NodeView, type Placement } from './placement.js';

export class Fleet {
  private nodes: NodeView[] = [];
  private readAt = 0;

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
  }

  /** Records a placement locally so the next choices before a heartbeat account for it. */
  placed(demand: Demand, placement: Placement): void {
    this.nodes = this.nodes.map((n) => (n.id === placement.nodeId ? afterPlacement(n, demand, placement) : n));
  }
}
