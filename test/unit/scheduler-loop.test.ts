/**
 * The scheduler's loop (scheduler/scheduler.ts) on a real Redis (REDIS_URL, started by the test
 * runner; skipped without it) with a fake fleet: what it is about is taking calls off the shared
 * queue and what it does with each decision — a placement becomes a node job, a call that waits
 * asks the fleet again, one that cannot be placed is answered. The fleet's decisions are the
 * test's; placement itself is tested in placement.test.ts and fleet.test.ts.
 */
import t, { type Test } from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { trace } from '@opentelemetry/api';
import type { InvocationRecords } from '../../infra/db/invocation-records.js';
import { createLogger } from '../../infra/log.js';
import type { AsyncCallDeps } from '../../infra/calls/async-calls.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { InvocationJob, InvocationOutcome } from '../../infra/queue/jobs.js';
import { keySpace } from '../../infra/queue/names.js';
import { ReplyReader } from '../../infra/queue/replies.js';
import type { Fleet } from '../../scheduler/fleet.js';
import type { Decision, Demand } from '../../scheduler/placement.js';
import { Scheduler } from '../../scheduler/scheduler.js';
import { nodeJobId } from '../../infra/queue/ids.js';
import { eventually } from '../support/api.js';
import { deferred } from '../support/fake-sandbox.js';
import { functionVersion } from '../support/function-version.js';

const url = process.env.REDIS_URL;
if (!url) {
  t.comment('REDIS_URL is not set: run with the test runner (npm test)');
  t.pass('skipped: needs Redis', { skip: 'REDIS_URL is not set (run with the test runner)' });
} else {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  t.teardown(() => redis.quit());

  /** A fleet that answers what the test says: each decision in turn, then the last one again. */
  class FakeFleet {
    readonly asked: Demand[] = [];
    refreshes = 0;
    /** Resolves each time the fleet is asked. */
    private waiters: Array<() => void> = [];
    constructor(private readonly decisions: Decision[]) {}
    async decide(demand: Demand): Promise<Decision> {
      this.asked.push(demand);
      for (const wake of this.waiters.splice(0)) wake();
      const next = this.decisions.length > 1 ? this.decisions.shift() : this.decisions[0];
      if (!next) throw new Error('the test gave the fleet no decision');
      return next;
    }
    async refresh(): Promise<void> {
      this.refreshes++;
    }
    /** Resolves once the fleet has been asked `count` times in all. */
    async askedTimes(count: number): Promise<void> {
      while (this.asked.length < count) await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    /** From now on the fleet answers `decision`. */
    answer(decision: Decision): void {
      this.decisions.splice(0, this.decisions.length, decision);
    }
  }

  const fn: FunctionVersion = functionVersion();

  const setUp = async (t: Test, decisions: Decision[], options: { maxQuotaWaitsPerTenant?: number } = {}) => {
    const keys = keySpace(`test-sched-${nanoid(8)}`);
    const fleet = new FakeFleet(decisions);
    const recorded: unknown[] = [];
    const records = { record: (r: unknown) => void recorded.push(r), flush: async () => undefined } as unknown as InvocationRecords;
    const queueConnection = new Redis(url, { maxRetriesPerRequest: null });
    const scheduler = new Scheduler({
      keys,
      redis,
      queueConnection,
      fleet: fleet as unknown as Fleet,
      concurrency: 4,
      records,
      tracer: trace.getTracer('scheduler-loop-test'),
      log: createLogger('scheduler-loop-test', 'silent'),
      retryMs: 1,
      ...options,
      // Only synchronous calls here: nothing reaches the async path.
      asyncCalls: {} as AsyncCallDeps,
    });
    await scheduler.start();
    const invocations = new Queue<InvocationJob>(keys.invocationQueue, { connection: redis, prefix: keys.bullPrefix });
    const replyConnection = new Redis(url, { maxRetriesPerRequest: null });
    const replies = new Map<string, ReturnType<typeof deferred<InvocationOutcome>>>();
    const replyTo = keys.replies('gw');
    const reader = new ReplyReader({
      key: replyTo,
      connection: replyConnection,
      redis,
      onReply: (message) => {
        const outcome = message as InvocationOutcome;
        replies.get(outcome.id)?.resolve(outcome);
      },
      // A failed read is retried by the reader; a lost reply shows as a call never answered.
      onError: (error) => console.error('reading replies failed', error),
    });
    await reader.start();
    t.teardown(async () => {
      await scheduler.stop();
      await invocations.obliterate({ force: true }).catch(() => undefined);
      await invocations.close();
      await reader.stop(); // closes replyConnection
      await queueConnection.quit();
    });
    /** Queues a synchronous call; resolves with its reply, if it gets one. */
    const call = async (over: Partial<InvocationJob> = {}) => {
      const job: InvocationJob = {
        id: nanoid(),
        fn,
        event: { n: 1 },
        replyTo,
        enqueuedAt: Date.now(),
        startBy: Date.now() + 60_000,
        attempt: 1,
        trace: {},
        ...over,
      };
      const reply = deferred<InvocationOutcome>();
      replies.set(job.id, reply);
      await invocations.add('invoke', job, { jobId: job.id });
      return { job, reply: reply.promise };
    };
    const nodeJob = async (nodeId: string, job: InvocationJob) => {
      const queue = new Queue<InvocationJob>(keys.nodeQueue(nodeId), { connection: redis, prefix: keys.bullPrefix });
      t.teardown(() => queue.close());
      let found: InvocationJob | undefined;
      await eventually(async () => (found = (await queue.getJob(nodeJobId(job)))?.data) !== undefined, 10_000, 20);
      return found;
    };
    return { fleet, recorded, call, nodeJob };
  };

  t.test('a placed call becomes a job on its node’s queue, with the eviction order of its placement', async (t) => {
    const evictTenant = { tenant: 't1', instances: 1, memoryMb: 128 };
    const { fleet, call, nodeJob } = await setUp(t, [{ placement: { nodeId: 'n1', start: 'cold', evictTenant } }]);
    const { job } = await call({ tenantLimits: { maxInstances: 5, maxMemoryMb: 1024 } });
    const placed = await nodeJob('n1', job);
    t.ok(placed, 'the node has the job');
    t.equal(placed?.id, job.id);
    t.same(placed?.event, { n: 1 });
    t.same(placed?.evictTenant, evictTenant);
    t.same(
      fleet.asked[0],
      { versionId: 'f-v1', runtime: 'nodejs20', memoryMb: 128, tenant: 't1', limits: { maxInstances: 5, maxMemoryMb: 1024 } },
      'the fleet was asked for the call’s demand',
    );
  });

  t.test('a call waiting for capacity asks again, after a refresh, until it is placed', async (t) => {
    const { fleet, call, nodeJob } = await setUp(t, [{ wait: 'capacity' }]);
    const { job } = await call({ evictTenant: { tenant: 't1', instances: 9, memoryMb: 9 } });
    await fleet.askedTimes(3);
    t.ok(fleet.refreshes >= 2, 'the view is read again between tries');
    fleet.answer({ placement: { nodeId: 'n2', start: 'warm' } });
    const placed = await nodeJob('n2', job);
    t.equal(placed?.id, job.id, 'placed once there is room');
    t.equal(placed?.evictTenant, undefined, 'an eviction order of an earlier placement does not carry over');
  });

  t.test('a call no node has room for by its startBy is answered Unavailable, and recorded failed', async (t) => {
    const { call, recorded } = await setUp(t, [{ wait: 'capacity' }]);
    const { job, reply } = await call({ startBy: Date.now() - 1 });
    const outcome = await reply;
    t.match(outcome, { id: job.id, ok: false, error: { code: 'Unavailable', message: /no worker node has capacity/ } });
    await eventually(() => recorded.length === 1, 10_000, 10);
    t.match(recorded[0], { id: job.id, status: 'failed', async: false, error: { code: 'Unavailable' } });
  });

  t.test('a call over what its tenant may ever use is answered TooManyRequests at once', async (t) => {
    const quota = { tenant: 't1', quota: 'maxMemoryMb', used: 0, limit: 64, never: true } as const;
    const { call, fleet } = await setUp(t, [{ wait: 'quota', quota }]);
    const { reply } = await call();
    t.match(await reply, { ok: false, error: { code: 'TooManyRequests', message: /more than tenant t1 may use at all/ } });
    t.equal(fleet.asked.length, 1, 'not asked again');
  });

  t.test('a tenant at its quota may have only so many calls waiting; the next is answered 429 at once', async (t) => {
    const quota = { tenant: 't1', quota: 'maxInstances', used: 2, limit: 2, never: false } as const;
    const { call, fleet, nodeJob } = await setUp(t, [{ wait: 'quota', quota }], { maxQuotaWaitsPerTenant: 1 });
    const first = await call();
    await fleet.askedTimes(2);
    const second = await call();
    t.match(await second.reply, { id: second.job.id, ok: false, error: { code: 'TooManyRequests', message: /has 1 calls waiting for it already/ } });
    fleet.answer({ placement: { nodeId: 'n1', start: 'cold' } });
    t.equal((await nodeJob('n1', first.job))?.id, first.job.id, 'the waiting call is placed once its tenant has room');
  });
}
