/**
 * The consumer of this node's own queue (`node-<id>`, where schedulers place its calls): takes each
 * call, runs it (run-call.ts), and ends it — the outcome published to the waiting gateway and
 * recorded (a synchronous call), or recorded, retried or dead-lettered (an asynchronous one).
 * Before it takes any job it takes back the calls a killed previous run of this node had started;
 * on a drain it stops taking calls and hands the waiting ones back to the shared queue. A call a
 * gateway sent straight here (the short warm path, `warm` set) runs only on an instance free at
 * once: if another call took it meanwhile, it goes to the shared queue for a scheduler to place,
 * so only schedulers decide where instances are made.
 */
import { Queue, Worker as QueueWorker } from 'bullmq';
import type { Redis } from 'ioredis';
import { SpanStatusCode, context as otelContext, trace, type Tracer } from '@opentelemetry/api';
import { SkiffError, isSkiffError, type ErrorBody } from '../../infra/errors.js';
import type { Logger } from '../../infra/log.js';
import type { InvocationRecords } from '../../infra/db/invocation-records.js';
import type { KeySpace } from '../../infra/queue/names.js';
import type { InvocationJob, InvocationOutcome } from '../../infra/queue/jobs.js';
import { recordBase } from '../../infra/calls/record-base.js';
import { handBackStraightCalls, reclaimStartedCalls, takeBackCalls, type RecoveryDeps, type RecoveryResult } from '../../infra/fleet/recovery.js';
import { finishAsync, type AsyncCallDeps } from '../../infra/calls/async-calls.js';
import { finishSync } from '../../infra/calls/sync-calls.js';
import { contextOf } from '../../infra/telemetry.js';
import type { Acquired, InstanceSet } from '../instances/instance-set.js';
import { anchoredClock, type WorkerMetrics } from '../metrics.js';
import { runCall, type RunCallDeps } from './run-call.js';
import { StraightConsumer } from './straight-consumer.js';
import { toPlace } from '../../infra/queue/straight-calls.js';

export interface NodeQueueConsumerOptions {
  id: string;
  keys: KeySpace;
  /** Connection for commands (replies, taking calls back). */
  redis: Redis;
  /** The connection BullMQ's worker blocks on. */
  queueConnection: Redis;
  /** The connection reads of the straight-calls stream block on (a `blocking` one); closed at stop. */
  straightConnection: Redis;
  /** Calls run at once on this node. */
  concurrency: number;
  instances: InstanceSet;
  records: InvocationRecords;
  /** A synchronous call's result is kept in its record only while its outcome's JSON is at most
   *  this many bytes (the caller got it whole either way); absent: always. */
  recordResultLimitBytes?: number;
  asyncCalls: AsyncCallDeps;
  tracer: Tracer;
  /** Cold-start phases and queue wait are recorded here when given. */
  metrics?: WorkerMetrics;
  log: Logger;
}

export class NodeQueueConsumer {
  private queueWorker: QueueWorker<InvocationJob> | undefined;
  private readonly callDeps: RunCallDeps;
  /** The shared queue, for straight calls handed to a scheduler; made on the first. */
  private shared: Queue<InvocationJob> | undefined;
  private straight: StraightConsumer | undefined;

  constructor(private readonly o: NodeQueueConsumerOptions) {
    this.callDeps = { workerId: o.id, instances: o.instances, tracer: o.tracer, metrics: o.metrics, log: o.log, redis: o.redis, keys: o.keys };
  }

  /** Takes back the previous run's started calls, then consumes the queue; resolves once consuming. */
  async start(): Promise<void> {
    const o = this.o;
    // A run of this node killed with calls under way left them active on its queue: they are
    // taken back before this run takes any job (async ones retried, attempts counted).
    const reclaimed = await reclaimStartedCalls(this.recovery(), o.id);
    if (reclaimed.replaced + reclaimed.retried + reclaimed.answered > 0)
      o.log.warn({ worker: o.id, ...reclaimed }, "took back the calls this node's previous run had started");
    this.queueWorker = new QueueWorker<InvocationJob>(o.keys.nodeQueue(o.id), (job) => this.run(job.data), {
      connection: o.queueConnection,
      prefix: o.keys.bullPrefix,
      concurrency: o.concurrency,
      // An invocation is answered once: never retried blindly after a stall (issue: failover).
      maxStalledCount: 0,
      removeOnComplete: { count: 0 },
      removeOnFail: { count: 1000 },
    });
    this.queueWorker.on('error', (error) => o.log.error({ err: error }, 'queue worker error'));
    await this.queueWorker.waitUntilReady();
    this.straight = new StraightConsumer({
      id: o.id,
      keys: o.keys,
      redis: o.redis,
      connection: o.straightConnection,
      concurrency: o.concurrency,
      run: (data) => this.run(data),
      log: o.log,
    });
    await this.straight.start();
  }

  /**
   * Stops taking calls; resolves when the running ones have ended, and what was sent straight
   * here and not run is on the shared queue (the straight-calls stream is deleted).
   */
  async stop(): Promise<void> {
    await Promise.all([this.queueWorker?.close(), this.straight?.stop()]);
    if (this.straight !== undefined) {
      this.straight = undefined;
      const back = await handBackStraightCalls(this.recovery(), this.o.id);
      if (back.replaced > 0) this.o.log.info({ worker: this.o.id, ...back }, 'handed the straight calls not run to the shared queue');
    }
    await this.shared?.close();
  }

  /**
   * For a drain: takes no new calls, lets running ones finish, hands back the ones placed but not
   * started (the node is already out of placements: it said `draining` in its heartbeat).
   */
  async handBack(): Promise<RecoveryResult> {
    await this.stop();
    return takeBackCalls(this.recovery(), this.o.id, false);
  }

  private recovery(): RecoveryDeps {
    return { redis: this.o.redis, keys: this.o.keys, records: this.o.records, asyncCalls: this.o.asyncCalls };
  }

  private async run(data: InvocationJob): Promise<void> {
    const o = this.o;
    let taken: Acquired | undefined;
    if (data.warm) {
      taken = o.instances.takeFree(data.fn);
      o.metrics?.countStraightCall(taken === undefined ? 'handed_back' : 'run');
      if (taken === undefined) {
        await this.toScheduler(data);
        return;
      }
    }
    const span = o.tracer.startSpan(
      'worker.invoke',
      { attributes: { 'skiff.function': data.fn.name, 'skiff.version': data.fn.version, 'skiff.invocation_id': data.id, 'skiff.worker': o.id } },
      contextOf(data.trace),
    );
    // Times the cold-start steps in line with the span (which starts now on the same clock).
    const clock = anchoredClock();
    const startedAt = Date.now();
    span.setAttribute('skiff.queue_wait_ms', Math.max(0, startedAt - data.enqueuedAt));
    o.metrics?.observeQueueWait(startedAt - data.enqueuedAt);
    // An async call's record says it runs, and where (batched with the others: no query of its own).
    if (data.replyTo === null) o.records.record({ ...recordBase(data), async: true, status: 'running', workerId: o.id, attempt: data.attempt });
    let outcome: InvocationOutcome;
    try {
      if (startedAt > data.startBy) {
        if (taken) o.instances.release(taken.instance);
        throw new SkiffError('Unavailable', 'the call waited too long in the queue');
      }
      const inSpan = trace.setSpan(otelContext.active(), span);
      outcome = await otelContext.with(inSpan, () => runCall(this.callDeps, data, startedAt, span, inSpan, clock, taken));
      span.setAttribute('skiff.cold_start', outcome.cold ?? false);
    } catch (error) {
      const body: ErrorBody = isSkiffError(error) ? error.toBody() : { code: 'Internal', message: 'worker failed to run the call' };
      if (!isSkiffError(error)) o.log.error({ err: error, invocation: data.id }, 'invocation failed in the worker');
      outcome = { id: data.id, ok: false, error: body, workerId: o.id };
    }
    if (!outcome.ok) span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.error.message });
    span.end();
    if (data.replyTo === null) {
      // Recorded (or retried, or dead-lettered) before the job completes: a node dying now loses nothing.
      const end = await finishAsync(o.asyncCalls, data, outcome, Date.now() - startedAt);
      if (end === 'duplicate')
        o.log.warn(
          { invocation: data.id, attempt: data.attempt, function: data.fn.name },
          'async call ran again after it had ended (a duplicate: it was queued again while its first run went on)',
        );
      return;
    }
    await finishSync(o, data, outcome, { durationMs: Date.now() - startedAt, resultLimitBytes: o.recordResultLimitBytes });
  }

  /** A straight call that found no free instance here: to the shared queue, as the gateway would have sent it. */
  private async toScheduler(data: InvocationJob): Promise<void> {
    this.shared ??= new Queue<InvocationJob>(this.o.keys.invocationQueue, {
      connection: this.o.redis,
      prefix: this.o.keys.bullPrefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
    // Its own id: the gateway queued nothing under the call's id, but a hand-back must never collide with one.
    await this.shared.add('invoke', toPlace(data), { jobId: `${data.id}-${data.attempt}-unwarmed` });
  }
}
