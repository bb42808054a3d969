/**
 * The gateway's dispatcher (gateway/invocations/dispatcher.ts) on a real Redis (REDIS_URL, started
 * by the test runner; skipped without it): a call becomes one job on the shared queue and is
 * answered by the outcome appended to the gateway's reply stream; a function may hold only so
 * many waiting calls; stopping answers those still waiting; an async call is queued only once it
 * is recorded, and not at all when recording fails. The invocation records are faked: what is
 * recorded is their own test's (PostgreSQL); here only what the dispatcher asks of them.
 */
import t, { type Test } from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { trace } from '@opentelemetry/api';
import type { InvocationRecords } from '../../infra/db/invocation-records.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { InvocationJob, InvocationOutcome } from '../../infra/queue/jobs.js';
import { keySpace } from '../../infra/queue/names.js';
import { sendOutcome } from '../../infra/queue/replies.js';
import { Dispatcher } from '../../gateway/invocations/dispatcher.js';
import { eventually } from '../support/api.js';
import { functionVersion } from '../support/function-version.js';

const url = process.env.REDIS_URL;
if (!url) {
  t.pass('skipped: needs Redis', { skip: 'REDIS_URL is not set (run with the test runner)' });
} else {
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  t.teardown(() => redis.quit());
  const span = trace.getTracer('dispatcher-test').startSpan('call');
  const limits = { maxInstances: 5, maxMemoryMb: 1024 };
  /** A successful outcome as a worker sends it. */
  const answer = (id: string, value: unknown): InvocationOutcome => ({
    id,
    ok: true,
    value,
    cold: false,
    workerId: 'w1',
    timings: { queuedMs: 1, acquireMs: 0, runMs: 1 },
  });

  const version = (name = 'f'): FunctionVersion => functionVersion({ name });

  /** What the dispatcher asks of the records; `accept` answers as the test says. */
  class FakeRecords {
    readonly accepted: unknown[] = [];
    readonly refused: string[] = [];
    acceptWith: (record: { id: string }) => Promise<{ id: string; replayed: boolean }> = async (record) => ({ id: record.id, replayed: false });
    async accept(record: { id: string }): Promise<{ id: string; replayed: boolean }> {
      this.accepted.push(record);
      return this.acceptWith(record);
    }
    async refuse(id: string): Promise<void> {
      this.refused.push(id);
    }
  }

  const setUp = async (t: Test, options: { maxPendingPerFunction?: number } = {}) => {
    const keys = keySpace(`test-dispatch-${nanoid(8)}`);
    const replyConnection = new Redis(url, { maxRetriesPerRequest: null });
    const records = new FakeRecords();
    const gatewayId = 'gw1';
    const dispatcher = new Dispatcher({
      keys,
      gatewayId,
      redis,
      replyConnection,
      records: records as unknown as InvocationRecords,
      queueWaitMs: 60_000,
      maxPendingPerFunction: options.maxPendingPerFunction ?? 10,
    });
    await dispatcher.start();
    const queue = new Queue<InvocationJob>(keys.invocationQueue, { connection: redis, prefix: keys.bullPrefix });
    let stopped = false;
    const stop = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      await dispatcher.stop();
    };
    t.teardown(async () => {
      await stop();
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      // stop() closed replyConnection
    });
    /** The jobs on the shared queue, once there are `count` of them. */
    const jobs = async (count: number): Promise<InvocationJob[]> => {
      let found: InvocationJob[] = [];
      await eventually(async () => (found = (await queue.getWaiting()).map((j) => j.data)).length >= count, 10_000, 20);
      return found;
    };
    const reply = (outcome: InvocationOutcome): Promise<number> => sendOutcome(redis, keys, keys.replies(gatewayId), outcome);
    return { dispatcher, records, jobs, reply, queue, stop };
  };

  t.test('a call is one job on the shared queue, answered by the outcome on its reply stream', async (t) => {
    const { dispatcher, jobs, reply } = await setUp(t);
    t.ok(dispatcher.receivingReplies(), 'reading its reply stream');
    const before = Date.now();
    const answered = dispatcher.call(version(), { n: 1 }, span, { callerKeyId: 'k1', limits });
    const [job] = await jobs(1);
    t.ok(job);
    t.match(job, { fn: { name: 'f' }, event: { n: 1 }, replyTo: /:replies:gw1$/, attempt: 1, callerKeyId: 'k1', tenantLimits: limits });
    t.ok(job!.startBy >= before + 60_000, 'it must start within the queue wait');
    t.equal(job!.acceptedAt, undefined, 'a synchronous call has no acceptedAt');
    await reply(answer('someone-else', 'not this one'));
    await reply(answer(job!.id, { answer: 42 }));
    t.same(await answered, answer(job!.id, { answer: 42 }));
  });

  t.test('a function holds at most maxPendingPerFunction waiting calls; others are not held back', async (t) => {
    const { dispatcher, jobs, reply } = await setUp(t, { maxPendingPerFunction: 1 });
    const first = dispatcher.call(version('busy'), {}, span, { limits });
    await t.rejects(dispatcher.call(version('busy'), {}, span, { limits }), { code: 'TooManyRequests', message: /busy has 1 calls waiting/ });
    const other = dispatcher.call(version('other'), {}, span, { limits });
    const queued = await jobs(2);
    for (const job of queued) await reply(answer(job.id, job.fn.name));
    t.match(await first, { ok: true, value: 'busy' });
    t.match(await other, { ok: true, value: 'other' });
    // Its slot is free again.
    const again = dispatcher.call(version('busy'), {}, span, { limits });
    const third = (await jobs(3)).find((job) => !queued.some((q) => q.id === job.id));
    await reply(answer(third!.id, 'again'));
    t.match(await again, { ok: true, value: 'again' });
  });

  t.test('stopping answers the calls still waiting Unavailable', async (t) => {
    const { dispatcher, jobs, stop } = await setUp(t);
    const waiting = dispatcher.call(version(), {}, span, { limits });
    const [job] = await jobs(1);
    await stop();
    t.same(await waiting, { id: job!.id, ok: false, error: { code: 'Unavailable', message: 'gateway is shutting down' } });
  });

  t.test('an async call is recorded queued, then queued; a replayed one is not queued again', async (t) => {
    const { dispatcher, records, jobs, queue } = await setUp(t);
    const accepted = await dispatcher.submit(version(), { n: 2 }, span, { limits });
    t.equal(accepted.replayed, false);
    t.match(records.accepted[0], { id: accepted.id, status: 'queued', async: true, event: { n: 2 }, attempt: 1 });
    const [job] = await jobs(1);
    t.match(job, { id: accepted.id, replyTo: null, event: { n: 2 } });
    t.type(job?.acceptedAt, 'number', 'an async call carries when it was accepted');

    records.acceptWith = async () => ({ id: accepted.id, replayed: true });
    t.same(await dispatcher.submit(version(), { n: 2 }, span, { limits, idempotencyKey: 'k' }), { id: accepted.id, replayed: true });
    t.equal((await queue.getWaiting()).length, 1, 'the replay queued nothing');
  });

  t.test('an async call that cannot be recorded is refused 503 and never queued', async (t) => {
    const { dispatcher, records, queue } = await setUp(t);
    records.acceptWith = async () => {
      throw new Error('database is away');
    };
    await t.rejects(dispatcher.submit(version(), {}, span, { limits }), { code: 'Unavailable', message: /could not record the call/ });
    t.equal((await queue.getWaiting()).length, 0);
  });
}
