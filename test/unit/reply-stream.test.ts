/**
 * Sync replies survive a reconnect: an outcome sent while the gateway's reply-reading connection
 * is down (killed by Redis, or closed and opened again) still reaches the waiting call, small or
 * large (a stored outcome and its pointer). And the reply stream lives with its gateway: it has
 * a TTL once started, is gone after stop, and one a late answer makes again expires; one Redis
 * lost while its gateway runs is made again by the next answer, which still reaches its call. A
 * small outcome to a stream that is there is one command, a plain XADD (no MULTI or pipeline:
 * infra/queue/replies.ts says why). Against the real Redis the test runner starts, in a
 * key prefix of this test's own; the test itself plays the worker.
 */
import t, { type Test } from 'tap';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import { trace } from '@opentelemetry/api';
import type { InvocationRecords } from '../../infra/db/invocation-records.js';
import type { InvocationJob, InvocationOutcome, InvocationTimings } from '../../infra/queue/jobs.js';
import { functionVersion } from '../support/function-version.js';
import { keySpace } from '../../infra/queue/names.js';
import { redisOptions } from '../../infra/queue/connections.js';
import { INLINE_REPLY_MAX_BYTES, sendOutcome } from '../../infra/queue/replies.js';
import { Dispatcher } from '../../gateway/invocations/dispatcher.js';
import { eventually } from '../support/api.js';

const redisUrl = process.env.REDIS_URL;
const skip = redisUrl ? false : 'REDIS_URL is not set (run with the test runner)';
const fn = functionVersion({ name: 'work', timeoutMs: 60_000 });
const ran = (id: string, value: unknown): InvocationOutcome => ({ id, ok: true, value, cold: false, workerId: 'test', timings: {} as InvocationTimings });
const clientConfig = { connectTimeoutMs: 2000, commandTimeoutMs: 2000, reconnectMaxDelayMs: 500, sentinel: undefined };

async function setUp(t: Test): Promise<{
  redis: Redis;
  replyConnection: Redis;
  dispatcher: Dispatcher;
  keys: ReturnType<typeof keySpace>;
  nextJob: () => Promise<InvocationJob>;
}> {
  const keys = keySpace(`test-replies-${nanoid()}`);
  const redis = new Redis(redisUrl ?? '', { maxRetriesPerRequest: null });
  const replyConnection = new Redis(redisUrl ?? '', redisOptions('blocking', clientConfig, `skiff:test-replies-${nanoid(6)}:blocking`));
  const records = {} as InvocationRecords; // sync calls record nothing in the gateway
  const dispatcher = new Dispatcher({ keys, gatewayId: 'g1', redis, replyConnection, records, queueWaitMs: 60_000, maxPendingPerFunction: 10 });
  const shared = new Queue<InvocationJob>(keys.invocationQueue, { connection: redis, prefix: keys.bullPrefix });
  t.teardown(async () => {
    await dispatcher.stop(); // closes replyConnection
    await shared.obliterate({ force: true });
    await shared.close();
    await redis.quit();
  });
  await dispatcher.start();
  const taken = new Set<string>();
  const nextJob = async (): Promise<InvocationJob> => {
    let job: InvocationJob | undefined;
    await eventually(async () => {
      job = (await shared.getJobs(['waiting'])).map((j) => j.data).find((d) => !taken.has(d.id));
      return job !== undefined;
    });
    if (!job) throw new Error('the call was never queued');
    taken.add(job.id);
    return job;
  };
  return { redis, replyConnection, dispatcher, keys, nextJob };
}

const call = (dispatcher: Dispatcher): Promise<InvocationOutcome> =>
  dispatcher.call(fn, { n: 1 }, trace.getTracer('test').startSpan('call'), { limits: { maxInstances: 1, maxMemoryMb: 128 } });

t.test('a reply sent while Redis has just killed the reading connection reaches the waiting call', { skip }, async (t) => {
  const { redis, replyConnection, dispatcher, keys, nextJob } = await setUp(t);
  t.ok(dispatcher.receivingReplies(), 'receiving once started');
  t.ok((await redis.pttl(keys.replies('g1'))) > 0, 'the reply stream has a TTL');
  const outcome = call(dispatcher);
  const job = await nextJob();
  t.equal(job.replyTo, keys.replies('g1'), 'the job names the reply stream');
  const readerId = ((await redis.call('CLIENT', 'LIST', 'TYPE', 'normal')) as string)
    .split('\n')
    .find((line) => line.includes(`name=${replyConnection.options.connectionName ?? '?'}`))
    ?.match(/\bid=(\d+)/)?.[1];
  t.ok(readerId, "the reader's connection is found by its name");
  let reconnects = 0;
  replyConnection.on('reconnecting', () => reconnects++);
  // Sent the moment the reader's socket closes, before it can connect again.
  const sent = new Promise<number>((resolve, reject) => {
    replyConnection.once('close', () => void sendOutcome(redis, keys, job.replyTo ?? '', ran(job.id, { answer: 42 })).then(resolve, reject));
  });
  await redis.client('KILL', 'ID', readerId ?? '');
  await sent;
  t.match(await outcome, { id: job.id, ok: true, value: { answer: 42 } }, 'the call gets its result, not a timeout');
  t.ok(reconnects >= 1, 'the reader connected again');
  t.ok(await eventually(() => dispatcher.receivingReplies()), 'receiving again');
});

t.test('replies sent while the reading connection is closed are read once it is open again, a large one too', { skip }, async (t) => {
  const { redis, replyConnection, dispatcher, keys, nextJob } = await setUp(t);
  const small = call(dispatcher);
  const smallJob = await nextJob();
  const large = call(dispatcher);
  const largeJob = await nextJob();
  let answered = 0;
  void small.then(() => answered++);
  void large.then(() => answered++);
  replyConnection.disconnect();
  t.ok(await eventually(() => !dispatcher.receivingReplies()), 'not receiving while closed');
  const big = 'x'.repeat(INLINE_REPLY_MAX_BYTES + 1);
  await sendOutcome(redis, keys, smallJob.replyTo ?? '', ran(smallJob.id, 'small'));
  await sendOutcome(redis, keys, largeJob.replyTo ?? '', ran(largeJob.id, big));
  t.equal(answered, 0, 'nothing is answered while the connection is closed');
  await replyConnection.connect();
  t.match(await small, ran(smallJob.id, 'small'));
  const largeOutcome = await large;
  t.ok(largeOutcome.ok && largeOutcome.value === big, 'the large outcome arrives whole');
  t.equal(await redis.exists(keys.reply(largeJob.id)), 0, 'its stored key was taken');
  t.ok(dispatcher.receivingReplies(), 'receiving again');
});

t.test('the reply stream is deleted at stop, and one a later answer makes expires', { skip }, async (t) => {
  const keys = keySpace(`test-replies-${nanoid()}`);
  const redis = new Redis(redisUrl ?? '', { maxRetriesPerRequest: null });
  t.teardown(() => redis.quit());
  const replyConnection = new Redis(redisUrl ?? '', redisOptions('blocking', clientConfig));
  const dispatcher = new Dispatcher({
    keys,
    gatewayId: 'g2',
    redis,
    replyConnection,
    records: {} as InvocationRecords,
    queueWaitMs: 1000,
    maxPendingPerFunction: 1,
  });
  await dispatcher.start();
  t.equal(await redis.exists(keys.replies('g2')), 1, 'made at start');
  await dispatcher.stop();
  t.equal(await redis.exists(keys.replies('g2')), 0, 'deleted at stop');
  t.notOk(dispatcher.receivingReplies());
  await sendOutcome(redis, keys, keys.replies('g2'), ran('late', 1));
  const ttl = await redis.pttl(keys.replies('g2'));
  t.ok(ttl > 0, 'a late answer leaves a stream that expires');
  await redis.del(keys.replies('g2'));
});

t.test('a small outcome is one XADD; a stream Redis lost is made again, with its TTL, and the call still gets its result', { skip }, async (t) => {
  const { redis, dispatcher, keys, nextJob } = await setUp(t);
  // The worker's connection of its own, every command it sends noted.
  const worker = new Redis(redisUrl ?? '', { maxRetriesPerRequest: null });
  t.teardown(() => worker.quit());
  const sent: string[] = [];
  const sendCommand = worker.sendCommand.bind(worker);
  worker.sendCommand = ((command: { name: string }, ...rest: unknown[]) => {
    sent.push(command.name);
    return (sendCommand as (...args: unknown[]) => unknown)(command, ...rest);
  }) as typeof worker.sendCommand;
  await worker.ping();

  const first = call(dispatcher);
  const firstJob = await nextJob();
  sent.length = 0;
  await sendOutcome(worker, keys, firstJob.replyTo ?? '', ran(firstJob.id, 1));
  t.same(sent, ['xadd'], 'one command, no MULTI, pipeline or PEXPIRE of its own');
  t.match(await first, ran(firstJob.id, 1));

  const second = call(dispatcher);
  const secondJob = await nextJob();
  await redis.del(keys.replies('g1')); // as a Redis restarted without the stream would have it
  // A stream made anew numbers its entries from the current millisecond: let it pass the last id
  // read (a restart takes far longer than this).
  await new Promise((resolve) => setTimeout(resolve, 5));
  sent.length = 0;
  await sendOutcome(worker, keys, secondJob.replyTo ?? '', ran(secondJob.id, 2));
  t.same(sent.slice(0, 1), ['xadd'], 'tried on the stream first');
  t.ok(sent.includes('multi') && sent.includes('pexpire'), 'then made it with its TTL');
  t.ok((await redis.pttl(keys.replies('g1'))) > 0, 'the stream made again has a TTL');
  t.match(await second, ran(secondJob.id, 2), 'the call gets its result');
  t.ok(dispatcher.receivingReplies(), 'still receiving');
});
