/**
 * Where a schedule's tick becomes an async call: the one consumer of the schedules queue
 * (infra/schedules/job-schedulers.ts adds a tick job each time a schedule falls due). A tick is
 * accepted as any async call is — recorded `queued` with its event in PostgreSQL, then queued on
 * the shared invocation queue — and from there it is an ordinary async call: placed, run,
 * retried up to the function's maximumRetryAttempts, dead-lettered, and re-queued by the
 * reconciler if Redis loses it.
 *
 * The call's id is made from the tick's job id, so a tick job run twice (retried after a failure,
 * or taken again after its consumer died) is still one call: the second run finds the call
 * recorded and leaves it alone; if the first run recorded it but could not queue it, the call is
 * the reconciler's to queue, as any accepted call whose job is gone. A tick of a schedule
 * that is no longer deployed (its version is not the function's current one, or the function is
 * gone) is dropped: nothing runs after a redeploy without schedules or a delete has answered.
 */
import { Worker as QueueWorker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import type { FunctionInfo } from '../infra/db/function-store.js';
import { versionOf } from '../infra/db/function-store.js';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import { recordBase } from '../infra/calls/record-base.js';
import type { Logger } from '../infra/log.js';
import { derivedInvocationId } from '../infra/queue/ids.js';
import type { InvocationJob } from '../infra/queue/jobs.js';
import type { KeySpace } from '../infra/queue/names.js';
import type { TickJob } from '../infra/schedules/job-schedulers.js';
import { scheduledEvent } from '../infra/schedules/scheduled-event.js';
import type { TenantLimits } from '../infra/tenancy/instance-limits.js';
import type { Queue } from 'bullmq';

export interface ScheduleTicksOptions {
  keys: KeySpace;
  /** Connection for the queue's consumer (BullMQ makes its blocking one from it). */
  queueConnection: Redis;
  /** The shared invocation queue ticks are accepted onto. */
  invocations: Queue<InvocationJob>;
  records: InvocationRecords;
  /** The function's current version, or undefined if it is gone. */
  current(name: string): Promise<FunctionInfo | undefined>;
  /** The tenant's limits on instances, carried by the job (undefined: none enforced for it). */
  limits(tenant: string): Promise<TenantLimits | undefined>;
  region: string;
  /** How long an accepted call may wait for a worker, as for a call from the gateway. */
  queueWaitMs: number;
  log: Logger;
}

export type TickEnd = 'accepted' | 'dropped' | 'accepted-before';

export class ScheduleTicks {
  private consumer: QueueWorker<TickJob> | undefined;

  constructor(private readonly o: ScheduleTicksOptions) {}

  async start(): Promise<void> {
    this.consumer = new QueueWorker<TickJob>(this.o.keys.scheduleQueue, (job) => this.accept(job), {
      connection: this.o.queueConnection,
      prefix: this.o.keys.bullPrefix,
      concurrency: 8,
    });
    this.consumer.on('error', (error) => this.o.log.error({ err: error }, 'schedule queue error'));
    this.consumer.on('failed', (job, error) =>
      this.o.log.warn({ err: error, function: job?.data.functionName, attempts: job?.attemptsMade }, 'a schedule tick could not be turned into a call'),
    );
    await this.consumer.waitUntilReady();
  }

  async stop(): Promise<void> {
    await this.consumer?.close();
  }

  /** Turns one tick into an accepted async call (or drops it); throws to have BullMQ try the tick again. */
  async accept(job: Pick<Job<TickJob>, 'id' | 'data' | 'timestamp' | 'opts'>): Promise<TickEnd> {
    const { functionName, versionId, position } = job.data;
    const info = await this.o.current(functionName);
    if (!info || info.versionId !== versionId || info.schedules[position] === undefined) {
      this.o.log.info({ function: functionName, versionId, position }, 'tick of a schedule no longer deployed: dropped');
      return 'dropped';
    }
    // The job scheduler stamps each tick job with the time it fell due.
    const dueAt = job.opts.prevMillis ?? job.timestamp;
    const id = derivedInvocationId(`${job.id ?? `${functionName}:${versionId}:${position}`}:${dueAt}`);
    const event = scheduledEvent({ id, tenant: info.tenant, region: this.o.region, functionName, position, dueAt });
    const limits = await this.o.limits(info.tenant);
    const now = Date.now();
    const call: InvocationJob = {
      id,
      fn: versionOf(info),
      event,
      replyTo: null,
      enqueuedAt: now,
      acceptedAt: now,
      startBy: now + this.o.queueWaitMs,
      attempt: 1,
      trace: {},
      ...(limits ? { tenantLimits: limits } : {}),
    };
    // False: this tick was accepted before (see above).
    if (!(await this.o.records.acceptOnce({ ...recordBase(call), async: true, status: 'queued', event, attempt: 1 }))) return 'accepted-before';
    // If this fails the `queued` record is the reconciler's to queue (scheduler/reconciler.ts).
    await this.o.invocations.add('invoke', call, { jobId: id });
    return 'accepted';
  }
}
