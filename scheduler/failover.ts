/**
 * Watches the fleet for nodes that are gone — heartbeat older than the TTL, or removed by an
 * operator — and takes their calls back (infra/fleet/recovery.ts). With several schedulers, a
 * short Redis lock per node makes one of them do it.
 */
import type { Redis } from 'ioredis';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import type { Logger } from '../infra/log.js';
import type { KeySpace } from '../infra/queue/names.js';
import type { AsyncCallDeps } from '../infra/calls/async-calls.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import { takeBackCalls } from '../infra/fleet/recovery.js';
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
  private readonly fleet: FleetRegistry;

  constructor(private readonly o: FailoverOptions) {
    this.fleet = new FleetRegistry(o.redis, o.keys, o.heartbeatTtlMs);
    this.periodic = new Periodic(
      o.everyMs,
      () => this.check(),
      (error) => o.log.error({ err: error }, 'failover check failed'),
    );
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
  }

  /** One pass: recovers every node that is gone. */
  async check(now = Date.now()): Promise<void> {
    for (const { id, order, alive } of await this.fleet.members(now)) {
      const removed = order === 'removed';
      if (!removed && alive) continue;
      const lock = `${this.o.keys.workers}:recovering:${id}`;
      if ((await this.o.redis.set(lock, '1', 'PX', 30_000, 'NX')) !== 'OK') continue;
      try {
        // Out of every scheduler's placements first, then take its calls back.
        await this.fleet.order(id, 'removed');
        const result = await takeBackCalls(this.o, id, true);
        await this.fleet.remove(id);
        this.o.log.warn({ worker: id, removed, ...result }, 'worker node gone: its calls were taken back');
      } finally {
        await this.o.redis.del(lock);
      }
    }
  }
}
