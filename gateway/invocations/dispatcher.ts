/**
 * Sends invocations on their way and brings synchronous outcomes back. A call is one job on the
 * shared invocation queue; the worker that runs it publishes the outcome on this gateway's own
 * reply channel, where the waiting request picks it up (a large outcome waits in a key, and the
 * message only points to it: infra/queue/replies.ts). An asynchronous call is accepted (202) only
 * once it is recorded `queued` (with its event, so the reconciler can queue it again should Redis
 * lose it) and then queued; if it cannot be queued its record says `refused` and the caller gets
 * 503: nothing runs a call its caller was told was not accepted. An Idempotency-Key names one
 * call per tenant and function for a day: a retry with it gets the same call back. Every job
 * carries its tenant's limits on instances, read by the caller from the quota cache (memory, no
 * query), so the scheduler can hold the tenant to them without asking the database.
 */
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { invocationId } from '../../infra/queue/ids.js';
import type { Span } from '@opentelemetry/api';
import { SkiffError } from '../../infra/errors.js';
import type { InvocationRecords } from '../../infra/db/invocation-records.js';
import { recordBase } from '../../infra/calls/record-base.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { InvocationJob, InvocationOutcome } from '../../infra/queue/jobs.js';
import type { TenantLimits } from '../../infra/tenancy/instance-limits.js';
import type { KeySpace } from '../../infra/queue/names.js';
import { dropStoredOutcome, isStoredReply, takeStoredOutcome, type ReplyMessage, type StoredReply } from '../../infra/queue/replies.js';
import { carrierOf } from '../../infra/telemetry.js';

export interface DispatcherOptions {
  keys: KeySpace;
  gatewayId: string;
  redis: Redis;
  subscriber: Redis;
  records: InvocationRecords;
  /** How long a call may wait for a worker before it must have started. */
  queueWaitMs: number;
  /** Synchronous calls of one function this gateway holds at once; past it, 429. */
  maxPendingPerFunction: number;
}

/** Who makes a call, and the limits of the function's tenant. */
export interface CallOptions {
  /** The key that made the call, when the gateway checked one. */
  callerKeyId?: string | undefined;
  limits: TenantLimits;
  /** A streamed call: its id, chosen by the caller, names the Redis stream its bytes come on
   *  (infra/queue/response-stream.ts, read by streamed-call.ts). */
  streamId?: string | undefined;
}

type Waiter = { resolve: (outcome: InvocationOutcome) => void; timer: NodeJS.Timeout };

/** Extra time past the function's own timeout before the gateway stops waiting for a reply. */
const REPLY_GRACE_MS = 5000;

export class Dispatcher {
  private readonly queue: Queue<InvocationJob>;
  private readonly waiting = new Map<string, Waiter>();
  /** Synchronous calls waiting, by function: a slow function cannot take every slot. */
  private readonly pending = new Map<string, number>();
  private readonly replyChannel: string;

  constructor(private readonly o: DispatcherOptions) {
    this.replyChannel = o.keys.replies(o.gatewayId);
    this.queue = new Queue<InvocationJob>(o.keys.invocationQueue, {
      connection: o.redis,
      prefix: o.keys.bullPrefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
  }

  async start(): Promise<void> {
    this.o.subscriber.on('message', (channel: string, message: string) => {
      if (channel !== this.replyChannel) return;
      const reply = JSON.parse(message) as ReplyMessage;
      if (!isStoredReply(reply)) {
        this.deliver(reply);
        return;
      }
      if (!this.waiting.has(reply.id)) {
        void dropStoredOutcome(this.o.redis, this.o.keys, reply).catch(() => undefined); // it expires anyway
        return;
      }
      void this.takeStored(reply);
    });
    await this.o.subscriber.subscribe(this.replyChannel);
  }

  /** Whether outcomes can reach this gateway now: its reply subscription is connected. */
  receivingReplies(): boolean {
    return this.o.subscriber.status === 'ready';
  }

  /** Hands `outcome` to its waiting call, if the caller has not given up. */
  private deliver(outcome: InvocationOutcome): void {
    const waiter = this.waiting.get(outcome.id);
    if (!waiter) return; // the caller gave up already
    this.waiting.delete(outcome.id);
    clearTimeout(waiter.timer);
    waiter.resolve(outcome);
  }

  /** Reads a large outcome from its key; on the command connection (the subscriber cannot GET). */
  private async takeStored(reply: StoredReply): Promise<void> {
    let outcome: InvocationOutcome;
    try {
      outcome = (await takeStoredOutcome(this.o.redis, this.o.keys, reply)) ?? {
        id: reply.id,
        ok: false,
        error: { code: 'Unavailable', message: 'the outcome of the call expired before it was read' },
      };
    } catch (error) {
      outcome = { id: reply.id, ok: false, error: { code: 'Unavailable', message: `could not read the outcome of the call: ${(error as Error).message}` } };
    }
    this.deliver(outcome);
  }

  async stop(): Promise<void> {
    await this.queue.close();
    for (const [id, waiter] of this.waiting) {
      clearTimeout(waiter.timer);
      waiter.resolve({ id, ok: false, error: { code: 'Unavailable', message: 'gateway is shutting down' } });
    }
    this.waiting.clear();
  }

  /** Jobs on the shared invocation queue by state (read-only; for the queue-depth gauge). */
  jobCounts(): Promise<Record<string, number>> {
    return this.queue.getJobCounts('waiting', 'prioritized', 'delayed', 'active');
  }

  /** Runs the call and waits for its outcome. */
  async call(fn: FunctionVersion, event: unknown, span: Span, options: CallOptions): Promise<InvocationOutcome> {
    const held = this.pending.get(fn.name) ?? 0;
    if (held >= this.o.maxPendingPerFunction) {
      throw new SkiffError('TooManyRequests', `${fn.name} has ${held} calls waiting already; try again`);
    }
    this.pending.set(fn.name, held + 1);
    try {
      return await this.dispatch(fn, event, span, options);
    } finally {
      const left = (this.pending.get(fn.name) ?? 1) - 1;
      if (left === 0) this.pending.delete(fn.name);
      else this.pending.set(fn.name, left);
    }
  }

  private async dispatch(fn: FunctionVersion, event: unknown, span: Span, options: CallOptions): Promise<InvocationOutcome> {
    // After a Redis outage the command connection may be back before the reply subscription (each
    // reconnects on its own backoff): a call queued then would run and its reply reach no one.
    if (!this.receivingReplies())
      throw new SkiffError('Unavailable', 'the gateway cannot receive replies yet (its Redis subscription is reconnecting); try again');
    const id = options.streamId ?? invocationId();
    span.setAttribute('skiff.invocation_id', id);
    const outcome = new Promise<InvocationOutcome>((resolve) => {
      const timer = setTimeout(
        () => {
          this.waiting.delete(id);
          resolve({ id, ok: false, error: { code: 'Unavailable', message: 'no answer from the platform in time' } });
        },
        this.o.queueWaitMs + fn.timeoutMs + REPLY_GRACE_MS,
      );
      this.waiting.set(id, { resolve, timer });
    });
    try {
      await this.queue.add('invoke', this.job(id, fn, event, this.replyChannel, span, options), { jobId: id });
    } catch (error) {
      const waiter = this.waiting.get(id);
      clearTimeout(waiter?.timer);
      this.waiting.delete(id);
      throw new SkiffError('Unavailable', 'could not queue the call', { cause: error });
    }
    return outcome;
  }

  /**
   * Records and queues the call and returns its id at once; `replayed`: an earlier call with the
   * same Idempotency-Key, which was not queued again. Unavailable (503) when the call could not be
   * recorded or queued: it was not accepted.
   */
  async submit(
    fn: FunctionVersion,
    event: unknown,
    span: Span,
    options: CallOptions & { idempotencyKey?: string | undefined },
  ): Promise<{ id: string; replayed: boolean }> {
    const job = this.job(invocationId(), fn, event, null, span, options);
    const scope = options.idempotencyKey === undefined ? undefined : { tenant: fn.tenant, functionName: fn.name, key: options.idempotencyKey };
    let accepted: { id: string; replayed: boolean };
    try {
      accepted = await this.o.records.accept({ ...recordBase(job), async: true, status: 'queued', event, attempt: 1 }, scope);
    } catch (error) {
      throw new SkiffError('Unavailable', 'could not record the call, so it was not accepted; try again', { cause: error });
    }
    span.setAttribute('skiff.invocation_id', accepted.id);
    if (accepted.replayed) return accepted;
    try {
      await this.queue.add('invoke', job, { jobId: job.id });
    } catch (error) {
      // Told 503, the caller may send it again (with its key, too): nothing may run this one.
      await this.o.records.refuse(job.id, scope).catch((refusal: unknown) => {
        throw new SkiffError('Unavailable', 'could not queue the call, so it was not accepted; try again', { cause: new AggregateError([error, refusal]) });
      });
      throw new SkiffError('Unavailable', 'could not queue the call, so it was not accepted; try again', { cause: error });
    }
    return accepted;
  }

  /** Queues a dead-lettered call again under its own id, as a first attempt. */
  async redrive(fn: FunctionVersion, event: unknown, id: string, span: Span, limits: TenantLimits): Promise<void> {
    span.setAttribute('skiff.invocation_id', id);
    await this.o.records.requeue(id, fn.version, event);
    await this.queue.add('invoke', this.job(id, fn, event, null, span, { limits }), { jobId: `${id}-redrive-${Date.now()}` });
  }

  private job(id: string, fn: FunctionVersion, event: unknown, replyTo: string | null, span: Span, options: CallOptions): InvocationJob {
    const { callerKeyId, limits } = options;
    const now = Date.now();
    return {
      id,
      fn,
      event,
      replyTo,
      enqueuedAt: now,
      ...(replyTo === null ? { acceptedAt: now } : {}),
      startBy: now + this.o.queueWaitMs,
      attempt: 1,
      trace: carrierOf(span),
      ...(callerKeyId === undefined ? {} : { callerKeyId }),
      tenantLimits: { maxInstances: limits.maxInstances, maxMemoryMb: limits.maxMemoryMb },
      ...(options.streamId === undefined ? {} : { stream: true as const }),
    };
  }
}
