/**
 * PostgreSQL is the record of accepted asynchronous calls; Redis only carries them. This sweep
 * makes every accepted call run at least once even if Redis loses its jobs (restarted from an old
 * snapshot, wiped, failed over): an async call still `queued` or `running` for longer than the
 * grace period whose job is on no queue — neither the shared invocation queue nor the queue of a
 * live node (one with a heartbeat) — is queued again, at the attempt it was at, with the event
 * and function version its record names. An event older than its function's
 * maximumEventAgeSeconds is dead-lettered instead; a call whose version is gone is failed.
 *
 * Which calls: `choose` (pure, over the job ids found and the records read). A job moving between
 * queues while they are read (the scheduler places a call: shared queue, then node queue; a node
 * gives one back: node queue, then shared queue) could be missed by one read, so a call is taken
 * only if two reads in a row miss it; and it is taken only if its row has not changed since it
 * was read (so of several schedulers one takes it, and a call that moved on is left alone).
 * A call `running` on a node that is still in the fleet is left to that node until its function's
 * timeout plus the grace period has passed since it started ({@link leftToItsNode}): the node runs it
 * even if Redis lost its job, so queuing it again would only run it twice; if the node dies, it
 * leaves the fleet and the call is queued again.
 * A re-queued call whose first run also finishes is a duplicate: the second end changes nothing
 * and is counted in Redis (`reconciled.duplicates`, infra/calls/async-calls.ts); re-queues are
 * counted there too (`reconciled.requeued`).
 */
import { Queue, type JobType } from 'bullmq';
import type { Redis } from 'ioredis';
import type { Config } from '../infra/config.js';
import type { Database } from '../infra/db/database.js';
import { DeadLetters } from '../infra/db/dead-letters.js';
import { FunctionStore, versionOf } from '../infra/db/function-store.js';
import type { InvocationRecords, UnfinishedCall } from '../infra/db/invocation-records.js';
import { TenantStore } from '../infra/db/tenants.js';
import { SkiffError } from '../infra/errors.js';
import type { Logger } from '../infra/log.js';
import { tooOldError } from '../infra/calls/async-calls.js';
import type { FunctionVersion } from '../infra/functions/version.js';
import type { InvocationJob } from '../infra/queue/jobs.js';
import type { TenantLimits } from '../infra/tenancy/instance-limits.js';
import { keySpace, type KeySpace } from '../infra/queue/names.js';
import { Periodic } from '../infra/periodic.js';
import { fleetIds } from '../infra/fleet/registry.js';

export interface ReconcilerOptions {
  redis: Redis;
  keys: KeySpace;
  records: InvocationRecords;
  deadLetters: DeadLetters;
  /** Version `version` of function `name`, looked up when a call is queued again; undefined if gone. */
  version(name: string, version: number): Promise<FunctionVersion | undefined>;
  /** The tenant's limits on instances, carried by the job (undefined: none enforced for it). */
  limits?(tenant: string): Promise<TenantLimits | undefined>;
  /** A call unchanged for this long is checked. */
  graceMs: number;
  everyMs: number;
  /** How long a re-queued call may wait for a worker, as for a new call. */
  queueWaitMs: number;
  /** For functions that set no maximumEventAgeSeconds. */
  maxEventAgeSeconds: number;
  /** Records read per pass at most. */
  batch?: number;
  log: Logger;
}

/** Job states in which a job still carries its call. */
const LIVE_STATES: JobType[] = ['wait', 'active', 'delayed', 'prioritized', 'waiting-children'];

/**
 * The calls whose job is gone: none of `jobIds` is the call's id or starts with it and a '-'
 * (every job id of a call is so made: `id`, `id-attempt-2`, `id-1-<enqueuedAt>` on a node, ...).
 */
export function choose(calls: readonly UnfinishedCall[], jobIds: Iterable<string>): UnfinishedCall[] {
  const byId = new Map(calls.map((c) => [c.id, c]));
  const lengths = new Set(calls.map((c) => c.id.length));
  const found = new Set<string>();
  for (const jobId of jobIds) {
    for (const length of lengths) {
      if (jobId.length !== length && jobId[length] !== '-') continue;
      const id = jobId.slice(0, length);
      if (byId.has(id)) found.add(id);
    }
  }
  return calls.filter((c) => !found.has(c.id));
}

/**
 * Whether `call` is left to the node running it: it is `running` on a node in `liveNodes`, and
 * started (its row's stamp) less than the function's timeout plus `graceMs` before `now`.
 */
export function leftToItsNode(call: UnfinishedCall, liveNodes: ReadonlySet<string>, timeoutMs: number, graceMs: number, now: number): boolean {
  if (call.status !== 'running' || call.workerId === undefined || !liveNodes.has(call.workerId)) return false;
  return now - Number(call.stamp) / 1000 < timeoutMs + graceMs;
}

export interface ReconcileResult {
  checked: number;
  requeued: number;
  dead: number;
  failed: number;
  /** Taken by another scheduler, or moved on since read. */
  skipped: number;
  /** Running on a node still in the fleet, within its timeout: left to it. */
  running: number;
}

export class Reconciler {
  private readonly periodic: Periodic;
  private readonly shared: Queue<InvocationJob>;
  private readonly nodeQueues = new Map<string, Queue<InvocationJob>>();
  private passes = 0;
  /** The nodes with a heartbeat at the last read of the queues. */
  private liveNodes: ReadonlySet<string> = new Set();

  constructor(private readonly o: ReconcilerOptions) {
    this.shared = this.queue(o.keys.invocationQueue);
    this.periodic = new Periodic(
      o.everyMs,
      async () => void (await this.check()),
      (error) => o.log.error({ err: error }, 'reconciliation pass failed'),
    );
  }

  /** A reconciler made from the configuration, on a scheduler's connections. */
  static open(config: Readonly<Config>, deps: { redis: Redis; db: Database; records: InvocationRecords; log: Logger }): Reconciler {
    const functions = new FunctionStore(deps.db);
    const tenants = new TenantStore(deps.db, config.tenantDefaults);
    return new Reconciler({
      redis: deps.redis,
      keys: keySpace(config.keyPrefix),
      records: deps.records,
      deadLetters: new DeadLetters(deps.db),
      version: async (name, version) => {
        const info = await functions.version(name, version);
        return info && versionOf(info);
      },
      limits: async (tenant) => {
        const quotas = (await tenants.get(tenant))?.quotas;
        return quotas && { maxInstances: quotas.maxInstances, maxMemoryMb: quotas.maxMemoryMb };
      },
      graceMs: config.reconciler.graceMs,
      everyMs: config.reconciler.everyMs,
      queueWaitMs: config.gateway.queueWaitMs,
      maxEventAgeSeconds: config.asyncRetries.maxEventAgeSeconds,
      log: deps.log,
    });
  }

  start(): void {
    this.periodic.start();
  }

  async stop(): Promise<void> {
    await this.periodic.stop();
    await Promise.all([this.shared.close(), ...[...this.nodeQueues.values()].map((q) => q.close())]);
  }

  /** One pass: queues again every call that is past the grace period and whose job is gone. */
  async check(): Promise<ReconcileResult> {
    if (this.passes++ % 100 === 0) await this.o.records.pruneIdempotencyKeys();
    const result: ReconcileResult = { checked: 0, requeued: 0, dead: 0, failed: 0, skipped: 0, running: 0 };
    const calls = await this.o.records.unfinishedAsync(this.o.graceMs, this.o.batch ?? 1000);
    result.checked = calls.length;
    if (calls.length === 0) return result;
    let gone = choose(calls, await this.liveJobIds());
    if (gone.length > 0) gone = choose(gone, await this.liveJobIds());
    for (const call of gone) {
      const end = await this.requeue(call);
      result[end]++;
    }
    return result;
  }

  /** Ids of the jobs on the shared queue, then on every live node's queue (in that order: a placement moves a job that way). */
  private async liveJobIds(): Promise<string[]> {
    const ids = await this.shared.getRanges(LIVE_STATES, 0, -1);
    // Every node still in the fleet, alive or not yet removed by failover: until then its calls are its own.
    const nodes = await fleetIds(this.o.redis, this.o.keys);
    this.liveNodes = new Set(nodes);
    for (const node of nodes) {
      let queue = this.nodeQueues.get(node);
      if (!queue) {
        queue = this.queue(this.o.keys.nodeQueue(node));
        this.nodeQueues.set(node, queue);
      }
      ids.push(...(await queue.getRanges(LIVE_STATES, 0, -1)));
    }
    for (const [node, queue] of this.nodeQueues) {
      if (nodes.includes(node)) continue;
      this.nodeQueues.delete(node);
      await queue.close();
    }
    return ids;
  }

  private async requeue(call: UnfinishedCall): Promise<'requeued' | 'dead' | 'failed' | 'skipped' | 'running'> {
    const base = {
      id: call.id,
      functionName: call.functionName,
      functionVersion: call.functionVersion,
      tenant: call.tenant,
      async: true,
      attempt: call.attempt,
      ...(call.callerKeyId ? { callerKeyId: call.callerKeyId } : {}),
    };
    const fn = await this.o.version(call.functionName, call.functionVersion);
    if (fn && leftToItsNode(call, this.liveNodes, fn.timeoutMs, this.o.graceMs, Date.now())) return 'running';
    const claimed = await this.o.records.claimRequeue(call);
    if (!claimed) return 'skipped'; // another scheduler took it, or it moved on
    if (!fn) {
      const error = new SkiffError(
        'FunctionNotFound',
        `version ${call.functionVersion} of ${call.functionName} is gone: the call, lost from the queue, cannot run again`,
      ).toBody();
      await this.o.records.write({ ...base, status: 'failed', error });
      this.o.log.warn({ invocation: call.id, function: call.functionName }, 'async call lost from the queue, and its version is gone: failed');
      return 'failed';
    }
    const now = Date.now();
    const age = now - call.acceptedAt;
    const maxAge = (fn.maximumEventAgeSeconds ?? this.o.maxEventAgeSeconds) * 1000;
    if (age > maxAge) {
      const error = tooOldError(age, maxAge);
      await this.o.records.write({ ...base, status: 'failed', error });
      await this.o.deadLetters.add({
        id: call.id,
        functionName: call.functionName,
        functionVersion: call.functionVersion,
        event: claimed.event,
        error,
        attempts: call.attempt,
      });
      this.o.log.warn(
        { invocation: call.id, function: call.functionName, ageMs: age },
        'async call lost from the queue, and too old to run again: dead-lettered',
      );
      return 'dead';
    }
    const limits = await this.o.limits?.(call.tenant);
    const job: InvocationJob = {
      id: call.id,
      fn,
      event: claimed.event,
      replyTo: null,
      enqueuedAt: now,
      acceptedAt: call.acceptedAt,
      startBy: now + this.o.queueWaitMs,
      attempt: call.attempt,
      trace: {},
      ...(call.callerKeyId ? { callerKeyId: call.callerKeyId } : {}),
      ...(limits ? { tenantLimits: limits } : {}),
    };
    // If this add fails, the record (just stamped) is found again after the grace period.
    await this.shared.add('invoke', job, { jobId: `${call.id}-${call.attempt}-reconciled-${claimed.requeues}` });
    await this.o.redis.hincrby(this.o.keys.reconciled, 'requeued', 1);
    this.o.log.warn(
      { invocation: call.id, function: call.functionName, was: call.status, attempt: call.attempt },
      'async call lost from the queue: queued again',
    );
    return 'requeued';
  }

  private queue(name: string): Queue<InvocationJob> {
    return new Queue<InvocationJob>(name, {
      connection: this.o.redis,
      prefix: this.o.keys.bullPrefix,
      defaultJobOptions: { removeOnComplete: true, removeOnFail: 1000 },
    });
  }
}
