/**
 * Watches the fleet for nodes that are gone — heartbeat older than the TTL, or removed by an
 * operator — and takes their calls back (recovery.ts). With several schedulers, a short Redis
 * lock per node makes one of them do it.
 */
import type { Redis } from 'ioredis';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import type { Logger } from '../infra/log.js';
import type { WorkerHeartbeat, WorkerOrder } from '../infra/queue/jobs.js';
import type { KeySpace } from '../infra/queue/names.js';
import type { AsyncCallDeps } from '../infra/queue/async-calls.js';
import { takeBackCalls } from './recovery.js';
import { Periodic } from '../infra/periodic.js';

export interface FailoverOptions {
  redis: Redis;
  keys: KeySpace;
  records: InvocationRecords;
  /** Started async calls of a lost node end as failed attempts: retried or dead-lettered. */
  asyncCalls: AsyncCallDeps;
  heartbeatTtlMs: number;
  everyMs: number;
  log: Logger;
}

export class Failover {
  private readonly periodic: Periodic;

  constructor(private readonly o: FailoverOptions) {
    this.periodic = new Periodic(o.everyMs, () => this.check(), (error) => o.log.error({ err: error }, 'failover check failed'));
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** One pass: recovers every node that is gone. */
  async check(now = Date.now()): Promise<void> {
    const [beats, orders] = await Promise.all([this.o.redis.hgetall(this.o.keys.workers), this.o.redis.hgetall(this.o.keys.workerOrders)]);
    for (const [id, json] of Object.entries(beats)) {
      const beat = JSON.parse(json) as WorkerHeartbeat;
      const removed = (orders[id] as WorkerOrder | undefined) === 'removed';
      if (!removed && now - beat.at <= this.o.heartbeatTtlMs) continue;
      const lock = `${this.o.keys.workers}:recovering:${id}`;
      if ((await this.o.redis.set(lock, '1', 'PX', 30_000, 'NX')) !== 'OK') continue;
      try {
        // Out of every scheduler's placements first, then take its calls back.
        await this.o.redis.hset(this.o.keys.workerOrders, id, 'removed');
        const result = await takeBackCalls(this.o, id, true);
        await this.o.redis.hdel(this.o.keys.workers, id);
        await this.o.redis.hdel(this.o.keys.workerOrders, id);
        this.o.log.warn({ worker: id, removed, ...result }, 'worker node gone: its calls were taken back');
      } finally {
        await this.o.redis.del(lock);
      }
    }
  }
}
