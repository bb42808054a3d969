/**
 * A 202 is a promise: an Idempotency-Key makes a retried submission the same call; calls whose
 * jobs Redis lost are queued again from their PostgreSQL records by the scheduler's reconciler
 * and run; a function's maximumRetryAttempts bounds its retries. (A call that cannot be queued is
 * answered 503 and recorded `refused`: test/unit/reconciler.test.ts.)
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { client, eventually } from '../support/api.js';
import { startPlatform } from '../support/platform.js';
import { keySpace } from '../../infra/queue/names.js';

t.test('accepted async calls are kept', async (t) => {
  // The scheduler gives up on a call after 5 s without a worker; its retry then waits 10 minutes.
  const platform = await startPlatform({
    SKIFF_QUEUE_WAIT_MS: '5000',
    SKIFF_RETRY_BACKOFF_MS: '600000',
    SKIFF_RECONCILE_GRACE_MS: '1000',
    SKIFF_RECONCILE_EVERY_MS: '300',
  });
  t.teardown(() => platform.stop());
  const api = client(() => platform);
  const async = { 'x-skiff-invocation-type': 'async' };
  const record = async (id: string): Promise<{ status: string; result?: unknown; error?: { code: string } }> =>
    (await (await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth })).json()) as { status: string };
  const runs = async (fn: string, id: string): Promise<number> =>
    (
      (await (await fetch(`${platform.url}/v1/functions/${fn}/logs?invocation=${id}`, { headers: platform.auth })).json()) as { lines: Array<{ text: string }> }
    ).lines.filter((l) => l.text.startsWith('ran')).length;
  const submit = async (fn: string, event: unknown, headers: Record<string, string> = {}): Promise<{ status: number; id: string; replayed: string | null }> => {
    const res = await api.invoke(fn, event, { ...async, ...headers });
    const body = (await res.json()) as { id: string };
    return { status: res.status, id: body.id, replayed: res.headers.get('idempotent-replayed') };
  };
  t.equal((await api.deploy({ name: 'tally' }, { 'index.js': 'exports.handler = async (e) => { console.log("ran", e.n); return e.n; };' })).status, 201);

  t.test('an Idempotency-Key makes a retried submission the same call', async (t) => {
    const first = await submit('tally', { n: 1 }, { 'idempotency-key': 'order-1' });
    t.equal(first.status, 202);
    t.equal(first.replayed, null);
    const again = await submit('tally', { n: 1 }, { 'idempotency-key': 'order-1' });
    t.match(again, { status: 202, id: first.id, replayed: 'true' }, 'the same id, answered again');
    t.ok(await eventually(async () => (await record(first.id)).status === 'succeeded', 30_000), 'the call succeeds');
    const third = await submit('tally', { n: 1 }, { 'idempotency-key': 'order-1' });
    t.match(third, { status: 202, id: first.id }, 'after it ran too');
    const other = await submit('tally', { n: 1 }, { 'idempotency-key': 'order-2' });
    t.not(other.id, first.id, 'another key is another call');
    t.ok(await eventually(async () => (await record(other.id)).status === 'succeeded', 30_000));
    await eventually(async () => (await runs('tally', first.id)) >= 1, 10_000);
    t.equal(await runs('tally', first.id), 1, 'the function ran once for the key');
    for (const bad of ['', 'x'.repeat(129), 'has space']) {
      const res = await api.invoke('tally', { n: 1 }, { ...async, 'idempotency-key': bad });
      t.equal(res.status, 400, `Idempotency-Key ${JSON.stringify(bad.slice(0, 12))} is refused`);
    }
  });

  t.test('calls whose jobs Redis lost are queued again and run', async (t) => {
    const ids: string[] = [];
    await platform.restartWorker(async () => {
      // No worker: the scheduler gives up after 5 s and queues a retry due in 10 minutes.
      for (let n = 0; n < 3; n++) {
        const accepted = await submit('tally', { n: 10 + n });
        t.equal(accepted.status, 202);
        ids.push(accepted.id);
      }
      for (const id of ids) t.ok(await eventually(async () => (await record(id)).error?.code === 'Unavailable', 30_000), 'waiting for its retry');
    });
    // Redis loses every waiting job of the shared queue (the 10-minute retries among them).
    const redis = new Redis(process.env.REDIS_URL ?? '', { maxRetriesPerRequest: null });
    const keys = keySpace(platform.config.keyPrefix);
    const shared = new Queue(keys.invocationQueue, { connection: redis, prefix: keys.bullPrefix });
    t.teardown(async () => {
      await shared.close();
      await redis.quit();
    });
    await shared.drain(true);
    t.same(await shared.getJobCounts('waiting', 'delayed', 'active'), { waiting: 0, delayed: 0, active: 0 }, 'no job is left');
    for (const id of ids) t.ok(await eventually(async () => (await record(id)).status === 'succeeded', 60_000), `${id} still ends succeeded`);
    for (const [n, id] of ids.entries()) t.match(await record(id), { status: 'succeeded', result: 10 + n }, 'with its own event');
    t.ok(Number(await redis.hget(keys.reconciled, 'requeued')) >= 3, 'the reconciler queued them again (counted in Redis)');
    const metrics = await (await fetch(`${platform.url}/metrics`, { headers: platform.auth })).text();
    t.match(metrics, /skiff_reconciled_total\{kind="requeued"\} ([3-9]|\d{2,})\n/, "and shown on the gateway's /metrics");
    for (const id of ids) {
      await eventually(async () => (await runs('tally', id)) >= 1, 10_000);
      t.equal(await runs('tally', id), 1, 'each ran once');
    }
  });

  t.test('maximumRetryAttempts 0: a failing async call is dead-lettered after one attempt', async (t) => {
    const res = await api.deploy(
      { name: 'once', maximumRetryAttempts: 0, maximumEventAgeSeconds: 60 },
      { 'index.js': 'exports.handler = async () => { console.log("ran"); throw new Error("no"); };' },
    );
    t.equal(res.status, 201);
    t.match(await res.json(), { maximumRetryAttempts: 0, maximumEventAgeSeconds: 60 }, 'the settings are shown');
    t.equal(
      (await api.deploy({ name: 'bad', maximumEventAgeSeconds: 10 }, { 'index.js': 'exports.handler = async () => 1;' })).status,
      400,
      'maximumEventAgeSeconds is 60 to 21600',
    );
    const { id } = await submit('once', null);
    t.ok(await eventually(async () => (await record(id)).status === 'failed', 30_000));
    // The record says `failed` a moment before the dead letter is written (infra/calls/async-calls.ts).
    const letters = async (): Promise<{ deadLetters: Array<{ id: string }> }> =>
      (await (await fetch(`${platform.url}/v1/functions/once/dead-letters`, { headers: platform.auth })).json()) as { deadLetters: Array<{ id: string }> };
    t.ok(await eventually(async () => (await letters()).deadLetters.length > 0, 30_000), 'it is dead-lettered');
    t.match(await letters(), { deadLetters: [{ id, attempts: 1, error: { code: 'FunctionError' } }] });
    await eventually(async () => (await runs('once', id)) >= 1, 10_000);
    t.equal(await runs('once', id), 1, 'it ran once');
  });
});
