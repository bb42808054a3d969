/**
 * The scheduler: takes invocations from the shared queue and puts each on one worker node's
 * queue. Several schedulers may run at once: BullMQ hands each job to one of them, and the node
 * queue's job id (the invocation id) makes a repeated placement a no-op.
 *
 * A call that waits for capacity holds one of the scheduler's `concurrency` slots while it
 * waits. So does a call waiting for its tenant's quota (maxInstances, maxMemoryMb): to keep one
 * tenant at its limits from taking the slots every other tenant's calls need, a tenant may have
 * only so many calls waiting here (a quarter of the slots by default); past that its calls are
 * answered 429 at once, and a waiting one that reaches its `startBy` is answered 429 too.
 */
import { Queue, Worker as QueueWorker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { context as otelContext, trace, type Tracer } from '@opentelemetry/api';
import { SkiffError } from '../infra/errors.js';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import type { Logger } from '../infra/log.js';
import type { InvocationJob, InvocationOutcome } from '../infra/queue/jobs.js';
import type { KeySpace } from '../infra/queue/names.js';
import { nodeJobId } from '../infra/queue/ids.js';
import { carrierOf, contextOf } from '../infra/telemetry.js';
import { finishAsync, type AsyncCallDeps } from '../infra/calls/async-calls.js';
import { finishSync } from '../infra/calls/sync-calls.js';
import type { Fleet } from './fleet.js';
import type { Demand, QuotaWait } from './placement.js';

export interface SchedulerOptions {
  keys: KeySpace;
  redis: Redis;
  queueConnection: Redis;
  fleet: Fleet;
  concurrency: number;
  records: InvocationRecords;
  tracer: Tracer;
  log: Logger;
  /** How often to look again for capacity while none is free (SKIFF_PLACEMENT_RETRY_MS). */
  retryMs: number;
  /** Calls of one tenant that may wait here for its quota at once; default a quarter of `concurrency`. */
  maxQuotaWaitsPerTenant?: number;
  asyncCalls: AsyncCallDeps;
}

/**
 * Calls waiting for their tenant's quota, counted by tenant, so that one tenant at its limits
 * holds at most `maxPerTenant` of the scheduler's slots.
 */
export class TenantWaits {
  private readonly waiting = new Map<string, number>();

  constructor(readonly maxPerTenant: number) {}

  /** Counts one more waiting call of `tenant`; false, and nothing counted, if it has its most already. */
  enter(tenant: string): boolean {
    const now = this.waiting.get(tenant) ?? 0;
    if (now >= this.maxPerTenant) return false;
    this.waiting.set(tenant, now + 1);
    return true;
  }

  leave(tenant: string): void {
    const left = (this.waiting.get(tenant) ?? 1) - 1;
    if (left <= 0) this.waiting.delete(tenant);
    else this.waiting.set(tenant, left);
  }

  count(tenant: string): number {
    return this.waiting.get(tenant) ?? 0;
  }
}

/** The answer to a call whose tenant is at its limits. */
export function quotaError(wait: QuotaWait, fnName: string, memoryMb: number): SkiffError {
  const unit = wait.quota === 'maxMemoryMb' ? ' MiB' : '';
  if (wait.never) {
    return new SkiffError('TooManyRequests', `${fnName} needs ${memoryMb} MiB, more than tenant ${wait.tenant} may use at all (maxMemoryMb ${wait.limit} MiB)`);
  }
  return new SkiffError(
    'TooManyRequests',
    `tenant ${wait.tenant} is at its ${wait.quota} (${wait.used} of ${wait.limit}${unit} in use) and has no idle instance to give up; try again`,
  );
}

export class Scheduler {
  private queueWorker: QueueWorker<InvocationJob> | undefined;
  private readonly nodeQueues = new Map<string, Queue<InvocationJob>>();
  private readonly tenantWaits: TenantWaits;

  constructor(private readonly o: SchedulerOptions) {
    this.tenantWaits = new TenantWaits(o.maxQuotaWaitsPerTenant ?? Math.max(1, Math.floor(o.concurrency / 4)));
  }

  async start(): Promise<void> {
    this.queueWorker = new QueueWorker<InvocationJob>(this.o.keys.invocationQueue, (job) => this.schedule(job), {
      connection: this.o.queueConnection,
      prefix: this.o.keys.bullPrefix,
      concurrency: this.o.concurrency,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 1000 },
    });
    this.queueWorker.on('error', (error) => this.o.log.error({ err: error }, 'scheduler queue error'));
    await this.queueWorker.waitUntilReady();
  }

  async stop(): Promise<void> {
    await this.queueWorker?.close();
    await Promise.all([...this.nodeQueues.values()].map((q) => q.close()));
    await this.o.records.flush();
  }

  private async schedule(job: Job<InvocationJob>): Promise<void> {
    const data = job.data;
    const span = this.o.tracer.startSpan(
      'scheduler.place',
      { attributes: { 'skiff.function': data.fn.name, 'skiff.invocation_id': data.id } },
      contextOf(data.trace),
    );
    try {
      await otelContext.with(trace.setSpan(otelContext.active(), span), async () => {
        const tenant = data.fn.tenant;
        const demand: Demand = {
          versionId: data.fn.versionId,
          runtime: data.fn.runtime,
          memoryMb: data.fn.memoryMb,
          tenant,
          ...(data.tenantLimits ? { limits: data.tenantLimits } : {}),
        };
        let counted = false;
        try {
          for (;;) {
            const decision = await this.o.fleet.decide(demand);
            if ('placement' in decision) {
              const { placement } = decision;
              span.setAttributes({
                'skiff.worker': placement.nodeId,
                'skiff.start': placement.start,
                'skiff.evict_tenant': placement.evictTenant !== undefined,
              });
              // An order of an earlier placement (a call taken back from a node) does not carry over,
              // nor does a gateway's straight route (a call its node handed back, or took back).
              const { evictTenant: _earlier, warm: _straight, ...call } = data;
              const nodeJob: InvocationJob = { ...call, trace: carrierOf(span), ...(placement.evictTenant ? { evictTenant: placement.evictTenant } : {}) };
              // One node job per attempt of the call: a placement repeated by another scheduler is a no-op.
              await this.nodeQueue(placement.nodeId).add('invoke', nodeJob, { jobId: nodeJobId(data) });
              return;
            }
            if (decision.wait === 'quota') {
              if (decision.quota.never) {
                await this.fail(data, quotaError(decision.quota, data.fn.name, data.fn.memoryMb));
                return;
              }
              if (!counted && !this.tenantWaits.enter(tenant)) {
                const error = new SkiffError(
                  'TooManyRequests',
                  `tenant ${tenant} is at its ${decision.quota.quota} and has ${this.tenantWaits.count(tenant)} calls waiting for it already; try again`,
                );
                await this.fail(data, error);
                return;
              }
              counted = true;
            }
            if (Date.now() >= data.startBy) {
              const error =
                decision.wait === 'quota'
                  ? quotaError(decision.quota, data.fn.name, data.fn.memoryMb)
                  : new SkiffError('Unavailable', 'no worker node has capacity for this call');
              await this.fail(data, error);
              return;
            }
            await new Promise((resolve) => setTimeout(resolve, this.o.retryMs));
            await this.o.fleet.refresh();
          }
        } finally {
          if (counted) this.tenantWaits.leave(tenant);
        }
      });
    } finally {
      span.end();
    }
  }

  private async fail(data: InvocationJob, error: SkiffError): Promise<void> {
    const outcome: InvocationOutcome = { id: data.id, ok: false, error: error.toBody() };
    if (data.replyTo === null) {
      await finishAsync(this.o.asyncCalls, data, outcome);
      return;
    }
    await finishSync(this.o, data, outcome);
  }

  private nodeQueue(nodeId: string): Queue<InvocationJob> {
    let queue = this.nodeQueues.get(nodeId);
    if (!queue) {
      queue = new Queue<InvocationJob>(this.o.keys.nodeQueue(nodeId), {
        connection: this.o.redis,
        prefix: this.o.keys.bullPrefix,
        defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
      });
      this.nodeQueues.set(nodeId, queue);
    }
    return queue;
  }
}
