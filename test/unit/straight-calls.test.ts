/**
 * The calls gateways send straight to a node's warm instances (the short warm path), on the real
 * Redis the test runner starts: the node's stream (infra/queue/straight-calls.ts), its consumer
 * (worker/calls/node-queue.ts, straight-consumer.ts) and taking its calls back
 * (infra/fleet/recovery.ts). A straight call runs only on an instance free at once, else it goes to
 * the shared queue for a scheduler, as the gateway would have queued it; a node that stops hands
 * back what it did not run and deletes its stream, after which a gateway's append fails (and the
 * gateway goes through a scheduler); a node that Redis lost the stream of makes it again and reads
 * on; calls a killed node had read are taken back as started calls, those it never read are
 * placed again. The instance set is faked (it never has a free instance), as are the records.
 */
import t, { type Test } from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { trace } from '@opentelemetry/api';
import type { InvocationRecord, InvocationRecords } from '../../infra/db/invocation-records.js';
import type { AsyncCallDeps } from '../../infra/calls/async-calls.js';
import { createLogger } from '../../infra/log.js';
import { handBackStraightCalls, reclaimStartedCalls, takeBackCalls } from '../../infra/fleet/recovery.js';
import type { InvocationJob, InvocationOutcome } from '../../infra/queue/jobs.js';
import { keySpace, type KeySpace } from '../../infra/queue/names.js';
import { openStraightCalls, pendingCalls, readStraight, sendStraight } from '../../infra/queue/straight-calls.js';
import type { InstanceSet } from '../../worker/instances/instance-set.js';
import { NodeQueueConsumer } from '../../worker/calls/node-queue.js';
import { eventually } from '../support/api.js';
import { functionVersion } from '../support/function-version.js';

const url = process.env.REDIS_URL ?? '';
const skip = url ? false : 'REDIS_URL is not set (run with the test runner)';

interface Setup {
  keys: KeySpace;
  redis: Redis;
  shared: Queue<InvocationJob>;
  records: InvocationRecord[];
  deps: { redis: Redis; keys: KeySpace; records: InvocationRecords; asyncCalls: AsyncCallDeps };
  call(id: string, over?: Partial<InvocationJob>): InvocationJob;
  /** Ids of the calls on the shared queue. */
  placed(): Promise<InvocationJob[]>;
  /** The outcomes sent to gateway g1's reply stream. */
  replies(): Promise<InvocationOutcome[]>;
}

async function setUp(t: Test): Promise<Setup> {
  const keys = keySpace(`test-straight-${nanoid(8)}`);
  const redis = new Redis(url, { maxRetriesPerRequest: null });
  const shared = new Queue<InvocationJob>(keys.invocationQueue, { connection: redis, prefix: keys.bullPrefix });
  const records: InvocationRecord[] = [];
  t.teardown(async () => {
    await shared.obliterate({ force: true });
    await shared.close();
    await redis.quit();
  });
  const now = Date.now();
  return {
    keys,
    redis,
    shared,
    records,
    deps: { redis, keys, records: { record: (r: InvocationRecord) => records.push(r) } as unknown as InvocationRecords, asyncCalls: {} as AsyncCallDeps },
    call: (id, over = {}) => ({
      id,
      fn: functionVersion(),
      event: { id },
      replyTo: keys.replies('g1'),
      enqueuedAt: now,
      startBy: now + 60_000,
      attempt: 1,
      trace: {},
      tenantLimits: { maxInstances: 10, maxMemoryMb: 4096 },
      ...over,
    }),
    placed: async () => (await shared.getJobs(['waiting'])).map((j) => j.data),
    replies: async () =>
      ((await redis.xrange(keys.replies('g1'), '-', '+')) as Array<[string, string[]]>).flatMap(([, fields]) =>
        fields[0] === 'reply' ? [JSON.parse(fields[1] ?? '{}') as InvocationOutcome] : [],
      ),
  };
}

/** A node's queue consumer whose instance set never has a free instance. */
async function consumer(t: Test, s: Setup, id: string): Promise<{ node: NodeQueueConsumer; asked: () => number }> {
  let asked = 0;
  const instances = {
    takeFree: () => {
      asked++;
      return undefined;
    },
    acquire: () => Promise.reject(new Error('a straight call must not make or wait for an instance')),
  } as unknown as InstanceSet;
  const queueConnection = new Redis(url, { maxRetriesPerRequest: null });
  const straightConnection = new Redis(url, { maxRetriesPerRequest: null });
  const node = new NodeQueueConsumer({
    id,
    keys: s.keys,
    redis: s.redis,
    queueConnection,
    straightConnection,
    concurrency: 4,
    instances,
    records: s.deps.records,
    asyncCalls: s.deps.asyncCalls,
    tracer: trace.getTracer('test'),
    log: createLogger('test', 'warn'),
  });
  let stopped = false;
  t.teardown(async () => {
    if (!stopped) await node.stop();
    const nodeQueue = new Queue(s.keys.nodeQueue(id), { connection: s.redis, prefix: s.keys.bullPrefix });
    await nodeQueue.obliterate({ force: true });
    await nodeQueue.close();
    await queueConnection.quit();
  });
  await node.start();
  const stop = node.stop.bind(node);
  node.stop = async () => {
    stopped = true;
    await stop();
  };
  return { node, asked: () => asked };
}

t.test('a straight call that finds no free instance goes to the shared queue, unmarked, for a scheduler', { skip }, async (t) => {
  const s = await setUp(t);
  const { asked } = await consumer(t, s, 'n1');
  const call = s.call('c1');
  t.ok(await sendStraight(s.redis, s.keys, 'n1', { ...call, warm: true }), 'the node has a stream once it runs');
  t.ok(await eventually(async () => (await s.placed()).length === 1), 'the call is on the shared queue');
  t.equal(asked(), 1, 'the node looked for a free instance once');
  t.same((await s.placed())[0], call, 'as the gateway would have queued it: same reply stream, deadline and limits, and no longer marked straight');
  t.same(await s.replies(), [], 'nothing was answered: the call is still to run');
  t.ok(await eventually(async () => (await s.redis.xlen(s.keys.straightCalls('n1'))) === 0), 'and it is off the stream');
});

t.test('a node that Redis lost the stream of makes it again and reads on', { skip }, async (t) => {
  const s = await setUp(t);
  await consumer(t, s, 'n2');
  // Deleted under the node's blocked read (the read ends UNBLOCKED); until the node makes it again an
  // append fails, and the gateway goes through a scheduler (that case: the next test).
  await s.redis.del(s.keys.straightCalls('n2'));
  t.ok(await eventually(() => sendStraight(s.redis, s.keys, 'n2', { ...s.call('c2'), warm: true })), 'the node made it again');
  t.ok(await eventually(async () => (await s.placed()).some((c) => c.id === 'c2')), 'and reads calls from it');
});

t.test('a node that stops hands back what it did not run and deletes its stream', { skip }, async (t) => {
  const s = await setUp(t);
  const { node } = await consumer(t, s, 'n3');
  await node.stop();
  await openStraightCalls(s.redis, s.keys, 'n3'); // as if the node had not yet deleted it
  for (const id of ['u1', 'u2']) await sendStraight(s.redis, s.keys, 'n3', { ...s.call(id), warm: true });
  const back = await handBackStraightCalls(s.deps, 'n3');
  t.equal(back.replaced, 2);
  t.same((await s.placed()).map((c) => c.id).sort(), ['u1', 'u2'], 'on the shared queue');
  t.equal(await s.redis.exists(s.keys.straightCalls('n3')), 0, 'the stream is gone');
  t.notOk(await sendStraight(s.redis, s.keys, 'n3', s.call('late')), "a gateway's later append fails");
});

t.test('calls a killed node had read are taken back as started; those it never read are placed again', { skip }, async (t) => {
  const s = await setUp(t);
  const blocking = new Redis(url, { maxRetriesPerRequest: null });
  t.teardown(() => blocking.quit());
  // A node's run that read two calls and was killed before answering them; one more waits unread.
  await openStraightCalls(s.redis, s.keys, 'n4');
  await sendStraight(s.redis, s.keys, 'n4', { ...s.call('started'), warm: true });
  await sendStraight(s.redis, s.keys, 'n4', { ...s.call('again', { fn: functionVersion({ idempotent: true }) }), warm: true });
  t.equal((await readStraight(blocking, s.keys, 'n4', 'n4', 2, 10)).length, 2, 'read by the run that is then killed');
  await sendStraight(s.redis, s.keys, 'n4', { ...s.call('unread'), warm: true });

  // The same node starting again: what its predecessor read is taken back; the unread call stays for it.
  const reclaimed = await reclaimStartedCalls(s.deps, 'n4');
  t.match(reclaimed, { answered: 1, replaced: 1 });
  t.match(await s.replies(), [{ id: 'started', ok: false, error: { code: 'Unavailable' } }], 'a started call of a function not idempotent is answered 503');
  t.same(
    (await s.placed()).map((c) => c.id),
    ['again'],
    "an idempotent one's is placed again",
  );
  t.same(await pendingCalls(s.redis, s.keys, 'n4'), [], 'none pending any more');
  t.equal(await s.redis.xlen(s.keys.straightCalls('n4')), 1, 'the unread call stays');

  // The node lost for good: what is left is placed again, and its stream deleted.
  t.equal((await readStraight(blocking, s.keys, 'n4', 'n4', 5, 10)).length, 1, 'the unread call read in its turn');
  await sendStraight(s.redis, s.keys, 'n4', { ...s.call('never'), warm: true });
  const lost = await takeBackCalls(s.deps, 'n4', true, 0);
  t.match(lost, { replaced: 1, answered: 1 });
  t.same((await s.placed()).map((c) => c.id).sort(), ['again', 'never']);
  t.match(
    (await s.replies()).map((r) => r.id),
    ['started', 'unread'],
    'the call it had read is answered 503',
  );
  t.equal(await s.redis.exists(s.keys.straightCalls('n4')), 0, 'the stream is gone');
  t.ok(
    (await s.placed()).every((c) => c.warm === undefined),
    'placed calls are no longer marked straight',
  );
});
