/**
 * Redis connections behind Sentinel (infra/queue/connections.ts, infra/queue/redis-check.ts),
 * against a primary, a replica and three sentinels of this file's own on loopback (never the
 * scratch Redis other test files share): each role follows a SIGKILLed primary to the promoted
 * replica, keeping its semantics; connections to a primary that turned replica without Sentinel
 * closing them (READONLY to a write, UNBLOCKED to a blocked read) leave it for the primary the
 * sentinels name, a BullMQ Worker's blocking connection among them (BullMQ issues 3088, 4378);
 * closed clients leave no connection open to the sentinels. Waits are on conditions only.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue, Worker } from 'bullmq';
import type { Redis } from 'ioredis';
import { closeRedis, openRedis, whenReady, type RedisRole } from '../../infra/queue/connections.js';
import { checkRedisSettings } from '../../infra/queue/redis-check.js';
import { loadConfig, type RedisClientConfig } from '../../infra/config.js';
import { createLogger } from '../../infra/log.js';
import { logErrors } from '../../infra/outage-log.js';
import { freePort } from '../../infra/services/process.js';
import { withClient } from '../../infra/services/redis-server.js';
import { startSentinelSet, type LocalSentinelSet } from '../../infra/services/redis-sentinel.js';

/** The `t` a subtest callback receives. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Generous bound of every wait (a failover takes a few seconds; two cores are shared). */
const WITHIN_MS = 90_000;
const log = createLogger('test', 'silent');

async function eventually(check: () => boolean | Promise<boolean>, what: string): Promise<void> {
  const deadline = Date.now() + WITHIN_MS;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${WITHIN_MS} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A sentinel set of the test's own, stopped (and its directory removed) at the test's end. */
async function sentinelSet(t: TapTest): Promise<{ set: LocalSentinelSet; config: RedisClientConfig; url: string }> {
  const dir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'connections-sentinel-'));
  const set = await startSentinelSet({ dir, downAfterMs: 1000, failoverTimeoutMs: 3000 }).catch(async (error: unknown) => {
    await rm(dir, { recursive: true, force: true });
    throw error;
  });
  t.teardown(async () => {
    await set.stop();
    await rm(dir, { recursive: true, force: true });
  });
  const config = loadConfig({ ...set.env, SKIFF_REDIS_RECONNECT_MAX_MS: '500' });
  return { set, config: config.redisClient, url: config.redisUrl };
}

const portOf = (url: string): number => Number(new URL(url).port);

/** Clients of `server` (CLIENT LIST), but sentinels, replication links and this listing. */
async function clientsOf(server: string): Promise<Array<Record<string, string>>> {
  const list = (await withClient(server, (c) => c.client('LIST'))) as string;
  return list
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => Object.fromEntries(line.split(' ').map((field) => field.split(/=(.*)/s).slice(0, 2))) as Record<string, string>)
    .filter((c) => !(c.name ?? '').startsWith('sentinel-') && !/[SM]/.test(c.flags ?? '') && c.cmd !== 'client|list');
}

/** Connections open to the sentinels, summed over them (INFO clients). */
async function sentinelConnections(set: LocalSentinelSet): Promise<number> {
  let total = 0;
  for (const sentinel of set.sentinels) {
    const info = await withClient(sentinel.url, (c) => c.info('clients'));
    total += Number(/^connected_clients:(\d+)/m.exec(info)?.[1] ?? 0);
  }
  return total;
}

/** A BullMQ Worker on a `blocking` connection, as the scheduler and the worker node run theirs. */
function worker(queueName: string, connection: Redis, done: (value: number) => void): Worker {
  const w = new Worker(queueName, async (job) => done((job.data as { n: number }).n), { connection, prefix: 'test-sentinel', removeOnComplete: { count: 0 } });
  logErrors(w, log, 'test worker');
  return w;
}

t.test('the settings check reads the primary the sentinels name, and says so when no sentinel answers', async (t) => {
  const { set, config, url } = await sentinelSet(t);
  t.match(
    await checkRedisSettings(url, log, { sentinel: config.sentinel }),
    { checked: true, lacking: [{ setting: 'appendonly', value: 'no' }] },
    "the test primary's own settings (no AOF)",
  );
  const nowhere = loadConfig({ SKIFF_REDIS_SENTINELS: `127.0.0.1:${await freePort()}` }).redisClient.sentinel;
  t.match(await checkRedisSettings(url, log, { sentinel: nowhere, timeoutMs: 1000 }), { checked: false, reason: /^no answer: .*sentinels are unreachable/ });
  t.ok(set.sentinels.length === 3);
});

t.test('a SIGKILLed primary: every role follows the promoted replica and keeps its semantics', async (t) => {
  const { set, config, url } = await sentinelSet(t);
  const baseline = await sentinelConnections(set);
  const open = (role: RedisRole): Redis => openRedis(url, role, config, { log, component: 'test' });
  const producer = open('producer');
  const consumer = open('consumer');
  const blocking = open('blocking');
  const subscriber = open('subscriber');
  // Many clients reconnect at once: none may be left ended (ioredis' failover detector ends some).
  const crowd = Array.from({ length: 40 }, (_, i) => open((['producer', 'consumer', 'blocking', 'subscriber'] as const)[i % 4] ?? 'consumer'));
  const queueName = `q${portOf(set.primary.url)}`;
  const queue = new Queue(queueName, { connection: consumer, prefix: 'test-sentinel' });
  logErrors(queue, log, 'test queue');
  const done = new Set<number>();
  const w = worker(queueName, blocking, (n) => done.add(n));
  const messages: string[] = [];
  subscriber.on('message', (_channel: string, message: string) => messages.push(message));
  let closed = false;
  const closeAll = async (): Promise<void> => {
    if (closed) return;
    closed = true;
    await w.close();
    await queue.close();
    await Promise.all([producer, consumer, blocking, subscriber, ...crowd].map(closeRedis));
  };
  t.teardown(closeAll);
  await whenReady(producer);
  await subscriber.subscribe('news');
  await w.waitUntilReady();
  await queue.add('job', { n: 1 });
  await eventually(() => done.has(1), 'the first job runs');
  t.equal(producer.stream.remotePort, portOf(set.primary.url), 'connected to the primary the sentinels name');

  set.primary.process.child.kill('SIGKILL');
  await set.primary.process.exited;
  await t.rejects(producer.ping(), 'a producer command fails at once while there is no primary');
  let held = false;
  const pending = consumer.incr('held').then((value) => ((held = true), value));
  const adding = queue.add('job', { n: 2 });

  await eventually(async () => (await set.currentPrimary())?.port === portOf(set.replicas[0]?.url ?? ''), 'the sentinels promote the replica');
  await eventually(async () => (await producer.ping().catch(() => 'down')) === 'PONG', 'the producer reconnects');
  t.equal(producer.stream.remotePort, portOf(set.replicas[0]?.url ?? ''), 'the producer is on the promoted replica');
  t.equal(await pending, 1, 'the consumer command issued while there was no primary ran on the new one');
  t.ok(held);
  await adding;
  await eventually(() => done.has(2), 'the job queued while there was no primary runs');
  await queue.add('job', { n: 3 });
  await eventually(() => done.has(3), 'a job queued after the failover runs: the BullMQ Worker is not stuck');
  await eventually(async () => {
    await producer.publish('news', 'after').catch(() => undefined);
    return messages.includes('after');
  }, 'the subscriber, subscribed again on the new primary, receives');
  await eventually(() => crowd.every((c) => c.status === 'ready'), 'every one of 40 more clients is connected again');
  t.same(crowd.filter((c) => c.status === 'end').length, 0, 'no client was left ended');

  await closeAll();
  await eventually(async () => (await sentinelConnections(set)) <= baseline, 'closed clients leave no connection to the sentinels');
  t.pass('closed clients leave no connection to the sentinels');
});

t.test('a primary turned replica without Sentinel closing its clients: READONLY and UNBLOCKED send them to the primary the sentinels name', async (t) => {
  const { set, config, url } = await sentinelSet(t);
  const consumer = openRedis(url, 'consumer', config, { log, component: 'test' });
  const producer = openRedis(url, 'producer', config, { log, component: 'test' });
  const blocking = openRedis(url, 'blocking', config, { log, component: 'test' });
  const queueName = `q${portOf(set.primary.url)}`;
  const queue = new Queue(queueName, { connection: consumer, prefix: 'test-sentinel' });
  logErrors(queue, log, 'test queue');
  const done = new Set<number>();
  const w = worker(queueName, blocking, (n) => done.add(n));
  t.teardown(async () => {
    await w.close();
    await queue.close();
    await Promise.all([consumer, producer, blocking].map(closeRedis));
  });
  await whenReady(producer);
  await w.waitUntilReady();
  await queue.add('job', { n: 1 });
  await eventually(() => done.has(1), 'the first job runs');
  const old = set.primary.url;
  const next = set.replicas[0]?.url ?? '';
  await eventually(async () => (await clientsOf(old)).some((c) => c.cmd === 'bzpopmin'), "the Worker's blocking read waits on the primary");

  // As a failover by other means would leave them (a manual one, a partition healed): the
  // clients stay connected to the old primary, now a replica, and the sentinels still name it.
  await withClient(next, (c) => c.replicaof('NO', 'ONE'));
  await withClient(old, (c) => c.replicaof('127.0.0.1', portOf(next)));
  let reconnects = 0;
  consumer.on('reconnecting', () => reconnects++);
  let written = false;
  const write = consumer.set('after-demotion', 'yes').then((reply) => ((written = true), reply));
  await t.rejects(producer.set('producer-write', 'no'), /READONLY/, "a producer's write fails (its caller is answered 503)");
  await eventually(() => reconnects > 0, 'the READONLY reply makes the consumer reconnect');
  await eventually(async () => !(await clientsOf(old)).some((c) => c.cmd === 'bzpopmin'), 'the blocked read, UNBLOCKED, is not sent to the old primary again');
  t.notOk(written, 'the write waits for a primary (the sentinels still name the old one, which refuses it)');

  await withClient(set.sentinels[0]?.url ?? '', (c) => c.call('SENTINEL', 'FAILOVER', set.name));
  await eventually(async () => (await set.currentPrimary())?.port === portOf(next), 'the sentinels name the new primary');
  t.equal(await write, 'OK', 'the write issued after the demotion ran, on the new primary');
  t.equal(await withClient(next, (c) => c.get('after-demotion')), 'yes');
  await eventually(async () => (await producer.set('producer-write', 'yes').catch(() => 'failed')) === 'OK', 'the producer writes to the new primary');
  await queue.add('job', { n: 2 });
  await eventually(() => done.has(2), 'a job queued after the failover runs: the BullMQ Worker is not stuck on the old primary');
  await eventually(async () => (await clientsOf(old)).length === 0, 'no connection is left on the old primary');
  t.pass('no connection is left on the old primary');
});
