/**
 * The scheduler: takes invocations from the shared queue and puts each on one worker node's
 * queue. Several schedulers may run at once: BullMQ hands each job to one of them, and the node
 * queue's job id (the invocation id) makes a repeated placement a no-op.
 */
import { Queue, Worker as QueueWorker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { context as otelContext, trace, type Tracer } from '@opentelemetry/api';
import { SkiffError } from '../infra/errors.js';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import type { Logger } from '../infra/log.js';
import { recordBase, type InvocationJob, type InvocationOutcome } from '../infra/queue/jobs.js';
import type { KeySpace } from '../infra/queue/names.js';
import { carrierOf, contextOf } from '../infra/telemetry.js';
import { finishAsync, type AsyncCallDeps } from '../infra/queue/async-calls.js';
import type { Fleet } from './fleet.js';

export interface SchedulerOptions {
  keys: KeySpace;
  redis: Redis;
  queueConnection: Redis;
  fleet: Fleet;
  concurrency: number;
  records: InvocationRecords;
  tracer: Tracer;
  log: Logger;
  /** How often to look again for capacity while none is free. */
  retryMs?: number;
  asyncCalls: AsyncCallDeps;
}

/** The node queue's job id for one attempt of a call. */
export function nodeJobId(data: InvocationJob): string {
  return `${data.id}-${data.attempt}-${data.enqueuedAt}`;
}

export class Scheduler {
  private queueWorker: QueueWorker<InvocationJob> | undefined;
  private readonly nodeQueues = new Map<string, Queue<InvocationJob>>();

  constructor(private readonly o: SchedulerOptions) {}

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
    const span = this.o.tracer.startSpan('scheduler.place', { attributes: { 'skiff.function': data.fn.name, 'skiff.invocation_id': data.id } }, contextOf(data.trace));
    try {
      await otelContext.with(trace.setSpan(otelContext.active(), span), async () => {
        const demand = { versionId: data.fn.versionId, runtime: data.fn.runtime, memoryMb: data.fn.memoryMb };
        for (;;) {
          const placement = await this.o.fleet.place(demand);
          if (placement) {
            span.setAttributes({ 'skiff.worker': placement.nodeId, 'skiff.start': placement.start });
            // One node job per attempt of the call: a placement repeated by another scheduler is a no-op.
            await this.nodeQueue(placement.nodeId).add('invoke', { ...data, trace: carrierOf(span) }, { jobId: nodeJobId(data) });
            return;
          }
          if (Date.now() >= data.startBy) {
            await this.fail(data, new SkiffError('Unavailable', 'no worker node has capacity for this call'));
            return;
          }
          await new Promise((resolve) => setTimeout(resolve, this.o.retryMs ?? 100));
          await this.o.fleet.refresh();
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
    await this.o.redis.publish(data.replyTo, JSON.stringify(outcome));
    this.o.records.record({
      ...recordBase(data),
      async: false,
      status: 'failed',
      error: outcome.error,
    });
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
