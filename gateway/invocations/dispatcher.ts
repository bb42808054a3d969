/**
 * Sends invocations on their way and brings synchronous outcomes back. A call is one job on the
 * shared invocation queue; the worker that runs it appends the outcome to this gateway's own
 * reply stream, which the gateway reads on a connection of its own, from where it left off after
 * any reconnect, and the waiting request picks it up (a large outcome waits in a key, and the
 * entry only points to it: infra/queue/replies.ts). A synchronous call to a version the fleet's
 * heartbeats show a free warm instance of goes straight to that node instead, the short warm path
 * (infra/fleet/warm-routes.ts): one XADD to the node's straight-calls stream
 * (infra/queue/straight-calls.ts); the node hands it to the shared queue if the instance was
 * taken meanwhile. An asynchronous call is accepted (202) only
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
import { sendStraight } from '../../infra/queue/straight-calls.js';
import type { Span } from '@opentelemetry/api';
import { SkiffError } from '../../infra/errors.js';
import type { InvocationRecords } from '../../infra/db/invocation-records.js';
import { recordBase } from '../../infra/calls/record-base.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { InvocationJob, InvocationOutcome } from '../../infra/queue/jobs.js';
import type { TenantLimits } from '../../infra/tenancy/instance-limits.js';
import type { KeySpace } from '../../infra/queue/names.js';
import { dropStoredOutcome, isStoredReply, ReplyReader, takeStoredOutcome, type ReplyMessage, type StoredReply } from '../../infra/queue/replies.js';
import type { Logger } from '../../infra/log.js';
import { carrierOf } from '../../infra/telemetry.js';
import type { FleetRegistry } from '../../infra/fleet/registry.js';
import { WarmRoutes } from '../../infra/fleet/warm-routes.js';
import { Periodic } from '../../infra/periodic.js';

export interface DispatcherOptions {
  keys: KeySpace;
  gatewayId: string;
  redis: Redis;
  /** The reply stream's reader's own connection, a `blocking` one (infra/queue/connections.ts);
   *  {@link Dispatcher.stop} closes it. */
  replyConnection: Redis;
  /** Where a failed read of the reply stream is told (the reader carries on). */
  log?: Pick<Logger, 'warn'>;
  records: InvocationRecords;
  /** How long a call may wait for a worker before it must have started. */
  queueWaitMs: number;
  /** Synchronous calls of one function this gateway holds at once; past it, 429. */
  maxPendingPerFunction: number;
  /** The short warm path: the fleet whose heartbeats say where warm instances are free, read
   *  every `refreshMs` (SKIFF_FLEET_REFRESH_MS). Absent: every call goes through a scheduler. */
  warm?: { registry: FleetRegistry; refreshMs: number };
  /** Told the route each synchronous call took. */
  onRoute?: (route: CallRoute) => void;
}

/** How a synchronous call reached its node: straight (the short warm path) or placed by a scheduler. */
export type CallRoute = 'warm' | 'scheduler';

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
  private readonly replyTo: string;
  private readonly replies: ReplyReader;
  private readonly warmRoutes: WarmRoutes | undefined;
  private readonly warmRefresh: Periodic | undefined;

  constructor(private readonly o: DispatcherOptions) {
    this.replyTo = o.keys.replies(o.gatewayId);
    this.replies = new ReplyReader({
      key: this.replyTo,
      connection: o.replyConnection,
      redis: o.redis,
      onReply: (reply) => this.received(reply),
      onError: (error) => o.log?.warn({ err: error }, 'reading the reply stream failed'),
    });
    if (o.warm !== undefined) {
      const { registry, refreshMs } = o.warm;
      const routes = new WarmRoutes();
      this.warmRoutes = routes;
      this.warmRefresh = new Periodic(
        refreshMs,
        async () => routes.refresh(await registry.members()),
        (error) => o.log?.warn({ err: error }, 'could not read the fleet for warm routes (calls go through a scheduler meanwhile)'),
      );
    }
    this.queue = new Queue<InvocationJob>(o.keys.invocationQueue, {
      connection: o.redis,
      prefix: o.keys.bullPrefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
  }

  /** Makes this gateway's reply stream and starts reading it. */
  async start(): Promise<void> {
    await this.replies.start();
    // The fleet read once before the first call, then in the background.
    await this.warmRefresh?.runOnce();
    this.warmRefresh?.start();
  }

  /** Whether outcomes reach this gateway now: the reply stream's reader is connected (while it is
   *  not, they wait in the stream and are read once it is back). */
  receivingReplies(): boolean {
    return this.replies.ready();
  }

  private received(reply: ReplyMessage): void {
    if (!isStoredReply(reply)) {
      this.deliver(reply);
      return;
    }
    if (!this.waiting.has(reply.id)) {
      void dropStoredOutcome(this.o.redis, this.o.keys, reply).catch(() => undefined); // it expires anyway
      return;
    }
    void this.takeStored(reply);
  }

  /** Hands `outcome` to its waiting call, if the caller has not given up. */
  private deliver(outcome: InvocationOutcome): void {
    const waiter = this.waiting.get(outcome.id);
    if (!waiter) return; // the caller gave up already
    this.waiting.delete(outcome.id);
    clearTimeout(waiter.timer);
    waiter.resolve(outcome);
  }

  /** Reads a large outcome from its key; on the command connection (the reader's is blocked reading). */
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

  /** Stops reading replies (deletes the reply stream) and answers every call still waiting 503. */
  async stop(): Promise<void> {
    await this.warmRefresh?.stop();
    await this.queue.close();
    await this.replies.stop().catch((error: unknown) => this.o.log?.warn({ err: error }, 'could not delete the reply stream (it expires)'));
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
    let route = this.warmRoutes?.take(fn);
    try {
      const job = this.job(id, fn, event, this.replyTo, span, options);
      // A node without a stream (it stopped, or was taken out of the fleet) gets nothing straight.
      if (route !== undefined && !(await sendStraight(this.o.redis, this.o.keys, route.nodeId, { ...job, warm: true }))) {
        this.warmRoutes?.ended(fn.versionId, route, { instanceKept: false });
        route = undefined;
      }
      if (route === undefined) await this.queue.add('invoke', job, { jobId: id });
      span.setAttribute('skiff.route', route === undefined ? 'scheduler' : 'warm');
      this.o.onRoute?.(route === undefined ? 'scheduler' : 'warm');
    } catch (error) {
      const waiter = this.waiting.get(id);
      clearTimeout(waiter?.timer);
      this.waiting.delete(id);
      this.warmRoutes?.ended(fn.versionId, route, { instanceKept: false });
      throw new SkiffError('Unavailable', 'could not queue the call', { cause: error });
    }
    const ended = await outcome;
    // Where the call ran, its instance is free again (unless the call ended it): the next call may go straight there.
    this.warmRoutes?.ended(fn.versionId, route, { workerId: ended.workerId, instanceKept: ended.ok || ended.error.code === 'FunctionError' });
    return ended;
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
