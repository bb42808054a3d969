/**
 * Keeps the schedules in Redis true to PostgreSQL, beside the reconciler of accepted calls
 * (scheduler/reconciler.ts): at start and then every pass, the job schedulers of every current
 * version with schedules are made where missing (Redis restarted empty, wiped, failed over to a
 * replica that had not seen them) and those of no current version are removed (a deploy or delete
 * whose Redis step failed after its commit). Deploys, rollbacks and deletes change the schedulers
 * themselves at once; this pass is what makes the record in PostgreSQL the one that counts.
 */
import type { FunctionInfo } from '../infra/db/function-store.js';
import type { Logger } from '../infra/log.js';
import { Periodic } from '../infra/periodic.js';
import type { JobSchedulers, ReconcileCount } from '../infra/schedules/job-schedulers.js';

export class ScheduleSync {
  private readonly periodic: Periodic;

  constructor(
    private readonly schedulers: JobSchedulers,
    private readonly scheduled: () => Promise<FunctionInfo[]>,
    everyMs: number,
    private readonly log: Logger,
  ) {
    this.periodic = new Periodic(
      everyMs,
      async () => void (await this.pass()),
      (error) => log.error({ err: error }, 'schedule sync pass failed'),
    );
  }

  /** A first pass at once (a failure is logged: the next pass tries again), then one every interval. */
  async start(): Promise<void> {
    await this.pass().catch((error: unknown) => this.log.error({ err: error }, 'schedule sync pass failed'));
    this.periodic.start();
  }

  stop(): Promise<void> {
    return this.periodic.stop();
  }

  async pass(): Promise<ReconcileCount> {
    const count = await this.schedulers.reconcile(this.scheduled);
    if (count.created > 0 || count.removed > 0) this.log.warn(count, 'schedules in Redis differed from PostgreSQL: made true again');
    return count;
  }
}
