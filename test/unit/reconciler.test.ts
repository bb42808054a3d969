/**
 * Accepted async calls are kept: which records the reconciler queues again (only those past the
 * grace period whose job is on no queue of a live node nor on the shared queue), that a call the
 * gateway could not queue is `refused` (and its Idempotency-Key free again), and the per-function
 * async settings. Against the real PostgreSQL and Redis the test runner starts, in a schema and a
 * key prefix of this test's own.
 */
import t from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { trace } from '@opentelemetry/api';
import { migrate, openDatabase, type Database } from '../../infra/db/database.js';
import { DeadLetters } from '../../infra/db/dead-letters.js';
import { InvocationRecords, type UnfinishedCall } from '../../infra/db/invocation-records.js';
import { createLogger } from '../../infra/log.js';
import { isSkiffError } from '../../infra/errors.js';
import { finishAsync, type AsyncCallDeps } from '../../infra/calls/async-calls.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { InvocationJob } from '../../infra/queue/jobs.js';
import { keySpace } from '../../infra/queue/names.js';
import { choose, leftToItsNode, Reconciler } from '../../scheduler/reconciler.js';
import { Dispatcher } from '../../gateway/invocations/dispatcher.js';

const dbUrl = process.env.DATABASE_URL;
const redisUrl = process.env.REDIS_URL;
const skip = dbUrl && redisUrl ? false : 'DATABASE_URL and REDIS_URL are not set (run with the test runner)';
const schema = `test_reconciler_${process.pid}`;
const keys = keySpace(`test-reconciler-${process.pid}-${nanoid(6)}`);
const log = createLogger('test', 'silent');
let db: Database;
let redis: Redis;
let records: InvocationRecords;

const fn: FunctionVersion = {
  name: 'work',
  version: 1,
  versionId: 'v1',
  tenant: 'default',
  runtime: 'nodejs20',
  handler: 'index.handler',
  memoryMb: 128,
  timeoutMs: 1000,
  env: {},
  codeSha256: null,
  image: 'skiff/functions/work@sha256:0',
  concurrency: 1,
  idleTimeoutMs: 1000,
  minWarm: 0,
  maxInstances: 1,
  auth: 'none',
  network: 'none',
  idempotent: false,
} as FunctionVersion;

t.before(async () => {
  if (skip) return;
  db = openDatabase(dbUrl ?? '', schema, 2);
  await migrate(db, schema);
  redis = new Redis(redisUrl ?? '', { maxRetriesPerRequest: null });
  records = new InvocationRecords(db, (error) => {
    throw error;
  });
});
t.teardown(async () => {
  if (skip) return;
  let cursor = '0';
  do {
    const [next, found] = await redis.scan(cursor, 'MATCH', `${keys.bullPrefix.split(':')[0]}:*`, 'COUNT', 1000);
    cursor = next;
    if (found.length > 0) await redis.del(...found);
  } while (cursor !== '0');
  await redis.quit();
  await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  await db.end();
});

/** How async calls end in these tests: 2 retries 10 ms apart, on `queue`. */
const asyncDeps = (queue: Queue<InvocationJob>, over: Partial<AsyncCallDeps> = {}): AsyncCallDeps => ({
  queue,
  records,
  deadLetters: new DeadLetters(db),
  retries: 2,
  backoffMs: 10,
  queueWaitMs: 1000,
  resultLimitBytes: 1000,
  maxEventAgeSeconds: 3600,
  ...over,
});

const call = (id: string): UnfinishedCall => ({
  id,
  functionName: 'f',
  functionVersion: 1,
  tenant: 'default',
  status: 'queued',
  attempt: 1,
  acceptedAt: 0,
  stamp: '0',
});

t.test('choose: a call is kept by any job whose id is its own or starts with it and a dash', async (t) => {
  const a = 'A'.repeat(21);
  const b = `${'B'.repeat(20)}-`;
  const c = 'C'.repeat(21);
  const gone = choose([call(a), call(b), call(c)], [a, `${b}-2-1700000000000`, `${'C'.repeat(20)}X-attempt-2`, `${c}x`]);
  t.same(
    gone.map((g) => g.id),
    [c],
    'only C has no job: a longer id that merely starts with its id does not count',
  );
  t.same(
    choose([call(a)], []).map((g) => g.id),
    [a],
  );
});

t.test('leftToItsNode: a call running on a node still in the fleet is left to it until its timeout and the grace have passed', async (t) => {
  const startedAt = 1_700_000_000_000;
  const running: UnfinishedCall = { ...call('R'.repeat(21)), status: 'running', workerId: 'alive', stamp: String(startedAt * 1000) };
  const live = new Set(['alive']);
  t.ok(leftToItsNode(running, live, 60_000, 30_000, startedAt + 89_999), 'within timeout + grace');
  t.notOk(leftToItsNode(running, live, 60_000, 30_000, startedAt + 90_000), 'past them: its node has lost it');
  t.notOk(leftToItsNode(running, new Set(['other']), 60_000, 30_000, startedAt + 1), 'its node left the fleet');
  t.notOk(leftToItsNode({ ...running, status: 'queued' }, live, 60_000, 30_000, startedAt + 1), "a queued call is no node's");
  const { workerId: _unused, ...nowhere } = running;
  t.notOk(leftToItsNode(nowhere, live, 60_000, 30_000, startedAt + 1), 'a running call that names no node');
});

t.test('the reconciler queues again exactly the calls past the grace period whose job is gone', { skip }, async (t) => {
  const opts = { connection: redis, prefix: keys.bullPrefix };
  const shared = new Queue<InvocationJob>(keys.invocationQueue, opts);
  const liveNode = new Queue<InvocationJob>(keys.nodeQueue('alive'), opts);
  const deadNode = new Queue<InvocationJob>(keys.nodeQueue('dead'), opts);
  t.teardown(() => Promise.all([shared.close(), liveNode.close(), deadNode.close()]));
  await redis.hset(keys.workers, 'alive', JSON.stringify({ id: 'alive', at: Date.now() }));

  const ids = Object.fromEntries(
    ['inShared', 'retrying', 'onLiveNode', 'onDeadNode', 'gone', 'runningGone', 'fresh', 'done', 'refused', 'tooOld', 'versionGone', 'runningHeld'].map((k) => [
      k,
      nanoid(),
    ]),
  );
  const accept = async (id: string, version = 1): Promise<void> => {
    await records.accept({ id, functionName: 'work', functionVersion: version, tenant: 'default', async: true, status: 'queued', event: { id }, attempt: 1 });
  };
  for (const [name, id] of Object.entries(ids)) await accept(id, name === 'versionGone' ? 9 : name === 'runningHeld' ? 2 : 1);
  const job = (id: string): InvocationJob => ({ id, fn, event: null, replyTo: null, enqueuedAt: 1, startBy: 2, attempt: 1, trace: {} });
  await shared.add('invoke', job(ids.inShared ?? ''), { jobId: ids.inShared });
  await shared.add('invoke', job(ids.retrying ?? ''), { jobId: `${ids.retrying}-attempt-2`, delay: 600_000 });
  await liveNode.add('invoke', job(ids.onLiveNode ?? ''), { jobId: `${ids.onLiveNode}-1-1700000000000` });
  await deadNode.add('invoke', job(ids.onDeadNode ?? ''), { jobId: `${ids.onDeadNode}-1-1700000000000` });
  await records.write({ id: ids.runningGone ?? '', functionName: 'work', functionVersion: 1, async: true, status: 'running', workerId: 'alive', attempt: 1 });
  // Version 2 runs for up to 10 minutes: its call, running on a live node for a minute, is its node's.
  await records.write({ id: ids.runningHeld ?? '', functionName: 'work', functionVersion: 2, async: true, status: 'running', workerId: 'alive', attempt: 1 });
  await records.write({ id: ids.done ?? '', functionName: 'work', functionVersion: 1, async: true, status: 'succeeded', result: 1, attempt: 1 });
  await records.refuse(ids.refused ?? '');
  // All but `fresh` were last changed a minute ago; `tooOld` was accepted a day ago.
  await db.query("UPDATE invocations SET updated_at = now() - interval '1 minute' WHERE id <> $1", [ids.fresh]);
  await db.query("UPDATE invocations SET created_at = now() - interval '1 day' WHERE id = $1", [ids.tooOld]);

  const reconciler = new Reconciler({
    redis,
    keys,
    records,
    log,
    deadLetters: new DeadLetters(db),
    version: async (name, version) =>
      name !== 'work' ? undefined : version === 1 ? fn : version === 2 ? { ...fn, version: 2, timeoutMs: 600_000 } : undefined,
    limits: async () => ({ maxInstances: 7, maxMemoryMb: 700 }),
    graceMs: 30_000,
    everyMs: 60_000,
    queueWaitMs: 30_000,
    maxEventAgeSeconds: 3600,
  });
  t.teardown(() => reconciler.stop());
  const result = await reconciler.check();
  t.match(result, { checked: 9, requeued: 3, dead: 1, failed: 1, skipped: 0, running: 1 }, 'the ones past the grace period, still on their way, were checked');

  const requeued = (await shared.getJobs(['wait'])).filter((j) => j.id?.includes('-reconciled-'));
  t.same(
    requeued.map((j) => j.data.id).sort(),
    [ids.gone, ids.runningGone, ids.onDeadNode].sort(),
    'queued again: no job, or a job only on a node with no heartbeat',
  );
  const again = requeued.find((j) => j.data.id === ids.gone);
  t.match(
    again?.data,
    { fn: { name: 'work', version: 1 }, event: { id: ids.gone }, attempt: 1, replyTo: null, tenantLimits: { maxInstances: 7 } },
    'the job carries the event and version its record names',
  );
  t.equal(again?.id, `${ids.gone}-1-reconciled-1`);
  const status = async (id: string | undefined): Promise<string | undefined> => (await records.get(id ?? ''))?.status;
  t.equal(await status(ids.runningGone), 'queued', 'a running call whose job is gone is queued again (past its timeout)');
  t.equal(await status(ids.runningHeld), 'running', 'a running call within its timeout on a live node is left to it');
  t.equal(await status(ids.refused), 'refused', 'a refused call is left refused');
  t.equal(await status(ids.done), 'succeeded');
  t.equal(await status(ids.tooOld), 'failed');
  t.match(await records.get(ids.tooOld ?? ''), { error: { code: 'Unavailable', message: /maximumEventAgeSeconds/ } });
  t.match(await new DeadLetters(db).list('work'), [{ id: ids.tooOld, attempts: 1, event: { id: ids.tooOld } }], 'a call too old to run again is dead-lettered');
  t.match(await records.get(ids.versionGone ?? ''), { status: 'failed', error: { code: 'FunctionNotFound' } });
  t.equal(await redis.hget(keys.reconciled, 'requeued'), '3', 'each re-queue is counted in Redis');

  // A second pass finds nothing to do: the re-queued calls have their jobs (and a fresh stamp).
  t.match(await reconciler.check(), { requeued: 0 });

  // A re-queued call whose first run then also finishes: the second end is a duplicate.
  const deps = asyncDeps(shared, { countDuplicate: () => redis.hincrby(keys.reconciled, 'duplicates', 1) });
  const ran = { ...job(ids.gone ?? ''), fn };
  t.equal(
    await finishAsync(deps, ran, { id: ran.id, ok: true, value: 1, cold: false, workerId: 'alive', timings: { queuedMs: 0, acquireMs: 0, runMs: 0 } }),
    'succeeded',
  );
  t.equal(
    await finishAsync(deps, ran, { id: ran.id, ok: true, value: 2, cold: false, workerId: 'alive', timings: { queuedMs: 0, acquireMs: 0, runMs: 0 } }),
    'duplicate',
  );
  t.match(await records.get(ids.gone ?? ''), { status: 'succeeded', result: 1 }, 'the first end stands');
  t.equal(await redis.hget(keys.reconciled, 'duplicates'), '1');
});

t.test('per-function async settings: maximumRetryAttempts and maximumEventAgeSeconds', { skip }, async (t) => {
  const added: string[] = [];
  const deps = asyncDeps({ add: async (_name: string, _data: InvocationJob, o: { jobId: string }) => added.push(o.jobId) } as unknown as Queue<InvocationJob>);
  const failure = (id: string) => ({ id, ok: false as const, error: { code: 'FunctionError' as const, message: 'boom' } });
  const accepted = async (id: string): Promise<void> => {
    await records.accept({ id, functionName: 'settings', functionVersion: 1, tenant: 'default', async: true, status: 'queued', event: null, attempt: 1 });
  };
  const base = { event: null, replyTo: null, enqueuedAt: Date.now(), startBy: Date.now() + 1000, attempt: 1, trace: {} };

  const noRetry = nanoid();
  await accepted(noRetry);
  t.equal(
    await finishAsync(deps, { ...base, id: noRetry, fn: { ...fn, name: 'settings', maximumRetryAttempts: 0 } }, failure(noRetry)),
    'dead',
    'maximumRetryAttempts 0: dead after one attempt',
  );
  const defaults = nanoid();
  await accepted(defaults);
  t.equal(
    await finishAsync(deps, { ...base, id: defaults, fn: { ...fn, name: 'settings' } }, failure(defaults)),
    'retrying',
    'no setting: the platform default (2 retries)',
  );
  t.same(added, [`${defaults}-attempt-2`]);
  t.match(await records.get(defaults), { status: 'queued', error: { code: 'FunctionError' } });

  const old = nanoid();
  await accepted(old);
  const aged = { ...base, id: old, acceptedAt: Date.now() - 61_000, fn: { ...fn, name: 'settings', maximumEventAgeSeconds: 60 } };
  t.equal(await finishAsync(deps, aged, failure(old)), 'dead', 'an event past maximumEventAgeSeconds is not run again');
  t.match(await records.get(old), {
    status: 'failed',
    error: { code: 'FunctionError', message: /boom \(the event is 61 s old, past the function's maximumEventAgeSeconds \(60 s\)/ },
  });
  t.match(await new DeadLetters(db).list('settings'), [{ id: noRetry, attempts: 1 }, { id: old }]);
});

t.test('a call that cannot be queued is refused (503), and its Idempotency-Key may be used again', { skip }, async (t) => {
  const replyConnection = new Redis(redisUrl ?? '', { maxRetriesPerRequest: null });
  const dispatcher = new Dispatcher({ keys, gatewayId: 'g1', redis, replyConnection, records, queueWaitMs: 1000, maxPendingPerFunction: 10 });
  t.teardown(() => dispatcher.stop()); // closes replyConnection
  const queue = (dispatcher as unknown as { queue: Queue<InvocationJob> }).queue;
  const add = queue.add.bind(queue);
  queue.add = () => Promise.reject(new Error('Redis is away'));
  const span = trace.getTracer('test').startSpan('submit');
  const options = { limits: { maxInstances: 1, maxMemoryMb: 128 }, idempotencyKey: 'order-42' };
  const refusedIds = async (): Promise<string[]> =>
    ((await db.query("SELECT id FROM invocations WHERE status = 'refused' AND event IS NULL")).rows as Array<{ id: string }>).map((r) => r.id);
  const before = await refusedIds();
  const error: unknown = await dispatcher.submit(fn, { n: 1 }, span, options).then(
    () => undefined,
    (e: unknown) => e,
  );
  t.ok(isSkiffError(error) && error.code === 'Unavailable' && error.status === 503, 'the caller is answered 503 Unavailable');
  const refused = (await refusedIds()).filter((id) => !before.includes(id));
  t.equal(refused.length, 1, 'its record says refused (and keeps no event to be queued again with)');

  queue.add = add;
  const first = await dispatcher.submit(fn, { n: 1 }, span, options);
  t.equal(first.replayed, false, 'the key of a refused call gets a new attempt');
  t.notOk(refused.includes(first.id));
  t.equal((await records.get(first.id))?.status, 'queued');
  const second = await dispatcher.submit(fn, { n: 1 }, span, options);
  t.same(second, { id: first.id, replayed: true }, 'a retry with the key gets the same call, not queued again');
  const other = await dispatcher.submit(fn, { n: 1 }, span, { ...options, idempotencyKey: 'order-43' });
  t.not(other.id, first.id);
  const jobs = await queue.getJobs(['wait']);
  t.equal(jobs.filter((j) => j.data.id === first.id).length, 1, 'one job for the key');
  span.end();
});

t.test('acceptOnce records a call only if its id is new: a running call is never set back to queued', { skip }, async (t) => {
  const id = nanoid();
  const record = { id, functionName: 'work', functionVersion: 1, tenant: 'default', async: true, status: 'queued' as const, event: { tick: 1 }, attempt: 1 };
  t.equal(await records.acceptOnce(record), true, 'new: recorded');
  await records.write({ ...record, status: 'running', workerId: 'alive' });
  t.equal(await records.acceptOnce(record), false, 'known: left alone');
  t.equal((await records.get(id))?.status, 'running');
});
