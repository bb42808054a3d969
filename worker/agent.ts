/**
 * One worker node: takes the invocations placed on it from its own queue, runs each in an
 * instance, replies to the waiting gateway, records the outcome, and tells the fleet about its
 * capacity every heartbeat.
 */
import { Worker as QueueWorker, type Job } from 'bullmq';
import type { Redis } from 'ioredis';
import { SpanStatusCode, context as otelContext, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { SkiffError, isSkiffError, type ErrorBody } from '../infra/errors.js';
import type { Logger } from '../infra/log.js';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import type { KeySpace } from '../infra/queue/names.js';
import { recordBase } from '../infra/calls/record-base.js';
import type { FunctionEvent, InvocationJob, InvocationOutcome } from '../infra/queue/jobs.js';
import type { CachedImage, WorkerHeartbeat, WorkerState } from '../infra/fleet/heartbeat.js';
import { stateUnder } from '../infra/fleet/orders.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import { reclaimStartedCalls, takeBackCalls, type RecoveryDeps } from '../infra/fleet/recovery.js';
import { finishAsync, type AsyncCallDeps } from '../infra/calls/async-calls.js';
import { finishSync } from '../infra/calls/sync-calls.js';
import { RESULT_TOO_LARGE } from '../runtime/protocol/messages.js';
import { carrierOf, contextOf } from '../infra/telemetry.js';
import type { InstanceSet } from './instances/instance-set.js';
import type { SandboxPool } from './sandbox/sandbox.js';
import { anchoredClock, coldStartSteps, type ColdStartStep, type WorkerMetrics } from './metrics.js';

export interface WorkerAgentOptions {
  id: string;
  /** Images the node holds ready, for its heartbeat. */
  images?: () => CachedImage[];
  /** Pulls a newly deployed version's image ahead of its first call. */
  prefetch?: (image: string) => void;
  keys: KeySpace;
  /** Connection for commands (publish, heartbeat). */
  redis: Redis;
  /** A second connection, used only for subscriptions. */
  subscriber: Redis;
  /** Factory of the connection BullMQ's worker blocks on. */
  queueConnection: Redis;
  concurrency: number;
  capacityMb: number;
  heartbeatMs: number;
  heartbeatTtlMs: number;
  instances: InstanceSet;
  pool: SandboxPool;
  /** Told about deploys, to make minWarm instances of a new version at once. */
  warmKeeper: { check(): void };
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

export class WorkerAgent {
  private queueWorker: QueueWorker<InvocationJob> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private state: WorkerState = 'active';
  private drainDone!: () => void;
  /** Resolves when an operator's drain has finished: running calls done, waiting ones handed back. */
  readonly drained = new Promise<void>((resolve) => (this.drainDone = resolve));
  /** Where this node's heartbeat goes and its order comes from. */
  private readonly fleet: FleetRegistry;

  constructor(private readonly o: WorkerAgentOptions) {
    this.fleet = new FleetRegistry(o.redis, o.keys, o.heartbeatTtlMs);
  }

  async start(): Promise<void> {
    const o = this.o;
    await o.subscriber.subscribe(o.keys.functionEvents);
    o.subscriber.on('message', (channel: string, message: string) => {
      if (channel === o.keys.functionEvents) this.onFunctionEvent(JSON.parse(message) as FunctionEvent);
    });
    // A run of this node killed with calls under way left them active on its queue: they are
    // taken back before this run takes any job (async ones retried, attempts counted).
    const reclaimed = await reclaimStartedCalls(this.recovery(), o.id);
    if (reclaimed.replaced + reclaimed.retried + reclaimed.answered > 0) o.log.warn({ worker: o.id, ...reclaimed }, "took back the calls this node's previous run had started");
    this.queueWorker = new QueueWorker<InvocationJob>(o.keys.nodeQueue(o.id), (job) => this.run(job), {
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
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat().catch((error: unknown) => o.log.error({ err: error }, 'heartbeat failed')), o.heartbeatMs);
    void o.pool.refill();
  }

  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.fleet.remove(this.o.id);
    await this.queueWorker?.close();
    await this.o.records.flush();
  }

  heartbeatData(): WorkerHeartbeat {
    const { idle, busy, slots } = this.o.instances.counts();
    return {
      id: this.o.id,
      at: Date.now(),
      state: this.state,
      capacityMb: this.o.capacityMb,
      usedMb: this.o.instances.usedMb(),
      reclaimableMb: this.o.instances.reclaimableMb(),
      idle,
      busy,
      slots,
      pool: this.o.pool.sizes(),
      images: this.o.images?.() ?? [],
      tenants: this.o.instances.tenantUsage(),
    };
  }

  private async beat(): Promise<void> {
    const was = this.state;
    this.state = stateUnder(await this.fleet.orderOf(this.o.id), was);
    if (this.state === 'draining' && was !== 'draining') void this.drain().catch((error: unknown) => this.o.log.error({ err: error }, 'drain failed'));
    await this.fleet.beat(this.heartbeatData());
  }

  /** Takes no new calls, lets running ones finish, hands back the ones placed but not started. */
  private async drain(): Promise<void> {
    this.o.log.info({ worker: this.o.id }, 'draining');
    await this.queueWorker?.close();
    const result = await takeBackCalls(this.recovery(), this.o.id, false);
    this.o.log.info({ worker: this.o.id, ...result }, 'drained');
    this.drainDone();
  }

  private recovery(): RecoveryDeps {
    return { redis: this.o.redis, keys: this.o.keys, records: this.o.records, asyncCalls: this.o.asyncCalls };
  }

  private onFunctionEvent(event: FunctionEvent): void {
    if (event.type === 'deleted') this.o.instances.retireFunction(event.name);
    else {
      // A new version: instances of older versions get no new calls; retire them.
      this.o.instances.retireFunction(event.name, event.version);
      this.o.warmKeeper.check();
      if (event.image) this.o.prefetch?.(event.image);
    }
  }

  private async run(job: Job<InvocationJob>): Promise<void> {
    const data = job.data;
    const o = this.o;
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
      if (startedAt > data.startBy) throw new SkiffError('Unavailable', 'the call waited too long in the queue');
      const inSpan = trace.setSpan(otelContext.active(), span);
      outcome = await otelContext.with(inSpan, () => this.execute(data, startedAt, span, inSpan, clock));
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
      if (end === 'duplicate') o.log.warn({ invocation: data.id, attempt: data.attempt, function: data.fn.name }, 'async call ran again after it had ended (a duplicate: it was queued again while its first run went on)');
      return;
    }
    await finishSync(o, data, outcome, { durationMs: Date.now() - startedAt, resultLimitBytes: o.recordResultLimitBytes });
  }

  private async execute(data: InvocationJob, startedAt: number, span: Span, inSpan: Context, clock: () => number): Promise<InvocationOutcome> {
    const acquireStart = clock();
    // The tenant's limits, and the scheduler's order to evict its own idle instances first.
    const { instance, kind, timings } = await this.o.instances.acquire(data.fn, data.startBy, { limits: data.tenantLimits, evict: data.evictTenant });
    const acquiredAtMs = clock();
    const acquiredAt = Date.now();
    span.setAttributes({ 'skiff.start': kind, 'skiff.sandbox': instance.sandbox.id });
    if (kind !== 'warm') {
      // The same measured steps become the cold-start histogram and the spans of the phases.
      const steps = coldStartSteps(kind, timings, kind === 'created' ? instance.sandbox.created : undefined, acquireStart, acquiredAtMs);
      this.o.metrics?.observeColdStart(kind, steps);
      this.traceSteps(steps, inSpan);
    }
    // User code's spans join the trace under this one: its traceparent goes into the function.
    const handlerSpan = this.o.tracer.startSpan('handler', { attributes: { 'skiff.function': data.fn.name, 'skiff.invocation_id': data.id } }, inSpan);
    const traceparent = carrierOf(handlerSpan).traceparent;
    try {
      const result = await instance.sandbox
        .invoke({ id: data.id, event: data.event, deadlineMs: acquiredAt + data.fn.timeoutMs, ...(traceparent ? { traceparent } : {}) }, data.fn.timeoutMs)
        .catch((error: unknown) => {
          handlerSpan.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
          if (isSkiffError(error, 'FunctionOutOfMemory')) this.o.instances.outcome(data.fn, true);
          throw error;
        });
      this.o.instances.outcome(data.fn, false);
      handlerSpan.setAttribute('skiff.handler_ms', result.durationMs);
      if (!result.ok) handlerSpan.setStatus({ code: SpanStatusCode.ERROR, message: result.error.message });
      const cold = kind !== 'warm';
      if (cold) this.o.log.debug({ invocation: data.id, kind, ...timings }, 'cold start');
      if (!result.ok && result.error.type === RESULT_TOO_LARGE) {
        // The runtime measured the result and refused to send it; the instance stays usable.
        const error = new SkiffError('FunctionResponseTooLarge', result.error.message);
        return { id: data.id, ok: false, error: error.toBody(), cold, workerId: this.o.id };
      }
      if (!result.ok) {
        const error = new SkiffError('FunctionError', result.error.message, { errorType: result.error.type, ...(result.error.stack ? { stack: result.error.stack } : {}) });
        return { id: data.id, ok: false, error: error.toBody(), cold, workerId: this.o.id };
      }
      return {
        id: data.id,
        ok: true,
        value: result.value,
        cold,
        workerId: this.o.id,
        timings: { queuedMs: startedAt - data.enqueuedAt, acquireMs: acquiredAt - startedAt, runMs: result.durationMs },
      };
    } finally {
      handlerSpan.end();
      this.o.instances.release(instance);
    }
  }

  /** Spans for the steps of a cold start, made after the fact with their measured times. */
  private traceSteps(steps: readonly ColdStartStep[], inSpan: Context): void {
    const made = new Map<string, Context>();
    for (const step of steps) {
      if (step.phase === 'total' || (step.phase === 'wait' && step.endMs - step.startMs < 1)) continue;
      const parent = (step.parent && made.get(step.parent)) || inSpan;
      const child = this.o.tracer.startSpan(step.span, { startTime: step.startMs, attributes: { 'skiff.phase': step.phase } }, parent);
      made.set(step.phase, trace.setSpan(parent, child));
      child.end(step.endMs);
    }
  }
}
