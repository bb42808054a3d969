/**
 * The one owner of functions' schedules in Redis: a BullMQ job scheduler per schedule of a current
 * version, on the schedules queue, adding one tick job each time it falls due — one across the
 * whole fleet, however many gateways and schedulers there are. PostgreSQL is the record (each
 * version's `schedules`); Redis only carries it, so `reconcile` makes Redis match PostgreSQL again
 * (at start, and after Redis lost its data) and deploys, rollbacks and deletes `replace` a
 * function's schedulers at once. The tick jobs are turned into async calls by
 * scheduler/schedule-ticks.ts.
 *
 * A scheduler's id names the function, the version (its unique `versionId`) and the schedule's
 * position, so a redeploy makes new schedulers and a tick of an old one is recognised as such.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FunctionVersion } from '../functions/version.js';
import type { KeySpace } from '../queue/names.js';
import { repeatOf } from './expression.js';

/** What a tick job carries: which schedule fell due (the rest is read when it is turned into a call). */
export interface TickJob {
  functionName: string;
  versionId: string;
  /** Index in the version's `schedules`. */
  position: number;
}

type Scheduled = Pick<FunctionVersion, 'name' | 'versionId' | 'schedules'>;

/** Retries of a tick job that could not be turned into a call (PostgreSQL or Redis away). */
const TICK_ATTEMPTS = 5;
const TICK_BACKOFF_MS = 1000;

export function schedulerId(fn: Pick<FunctionVersion, 'name' | 'versionId'>, position: number): string {
  return `${fn.name}:${fn.versionId}:${position}`;
}

export interface ReconcileCount {
  /** Schedulers PostgreSQL has and Redis had not: made. */
  created: number;
  /** Schedulers Redis had of no current version: removed. */
  removed: number;
}

export class JobSchedulers {
  readonly queue: Queue<TickJob>;

  constructor(connection: Redis, keys: KeySpace) {
    this.queue = new Queue<TickJob>(keys.scheduleQueue, { connection, prefix: keys.bullPrefix });
  }

  /** Makes `after`'s schedulers and removes those of `before` it does not keep (a deploy, a rollback, a delete). */
  async replace(before: Scheduled | undefined, after: Scheduled | undefined): Promise<void> {
    const keep = new Set(after ? ids(after) : []);
    for (const id of before ? ids(before) : []) if (!keep.has(id)) await this.queue.removeJobScheduler(id);
    if (after) for (let i = 0; i < after.schedules.length; i++) await this.put(after, i);
  }

  /**
   * Makes Redis hold exactly the schedulers of `current()`'s versions. Redis is read first: a
   * deploy that lands between the two reads only makes this pass upsert what the deploy made
   * already, never remove it.
   */
  async reconcile(current: () => Promise<Scheduled[]>): Promise<ReconcileCount> {
    const have = new Set((await this.queue.getJobSchedulers(0, -1)).map((s) => s.key));
    const want = new Map<string, [Scheduled, number]>();
    for (const fn of await current()) fn.schedules.forEach((_s, i) => want.set(schedulerId(fn, i), [fn, i]));
    const count: ReconcileCount = { created: 0, removed: 0 };
    for (const [id, [fn, i]] of want) {
      if (have.has(id)) continue;
      await this.put(fn, i);
      count.created++;
    }
    for (const id of have) {
      if (want.has(id)) continue;
      await this.queue.removeJobScheduler(id);
      count.removed++;
    }
    return count;
  }

  close(): Promise<void> {
    return this.queue.close();
  }

  private async put(fn: Scheduled, position: number): Promise<void> {
    const schedule = fn.schedules[position];
    if (schedule === undefined) return;
    // Validated at deploy; converting again here keeps one place that knows the conversion.
    const repeat = repeatOf(schedule, `schedules[${position}]`);
    await this.queue.upsertJobScheduler(schedulerId(fn, position), repeat, {
      name: 'tick',
      data: { functionName: fn.name, versionId: fn.versionId, position },
      opts: { attempts: TICK_ATTEMPTS, backoff: { type: 'exponential', delay: TICK_BACKOFF_MS }, removeOnComplete: true, removeOnFail: 1000 },
    });
  }
}

function ids(fn: Scheduled): string[] {
  return fn.schedules.map((_s, i) => schedulerId(fn, i));
}
