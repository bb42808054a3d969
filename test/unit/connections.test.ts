/**
 * Redis connections by role (infra/queue/connections.ts), the rate-limited outage log
 * (infra/outage-log.ts) and /healthz's probe: the options as plain data (Sentinel's too; servers
 * behind Sentinel: connections-sentinel.test.ts), and then against a private Redis of this file's
 * own that is killed and started again on the same port (never the scratch Redis other test files
 * share).
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { closeRedis, onErrorReply, openRedis, reconnectDelay, redisOptions, whenReady } from '../../infra/queue/connections.js';
import { OutageLog, logErrors } from '../../infra/outage-log.js';
import { loadConfig } from '../../infra/config.js';
import { createLogger } from '../../infra/log.js';
import { startRedis, type LocalRedis } from '../../infra/services/redis-server.js';
import { freePort } from '../../infra/services/process.js';
import { probe } from '../../gateway/routes/health.js';

const config = loadConfig({});
const TIMEOUTS = config.redisClient;

t.test('a producer fails fast; consumers, blocking connections and subscribers wait for Redis', async (t) => {
  const producer = redisOptions('producer', TIMEOUTS);
  t.equal(producer.enableOfflineQueue, false, 'no offline queue: a command while disconnected fails at once');
  t.equal(producer.maxRetriesPerRequest, 1, 'a command in flight when the connection drops is sent again once at most');
  t.equal(producer.commandTimeout, TIMEOUTS.commandTimeoutMs, 'a command Redis does not answer fails after the timeout');
  t.equal(redisOptions('subscriber', TIMEOUTS).enableReadyCheck, false, 'a subscriber sends no INFO that could meet subscriber mode');
  for (const role of ['consumer', 'blocking', 'subscriber'] as const) {
    const options = redisOptions(role, TIMEOUTS);
    t.equal(options.maxRetriesPerRequest, null, `${role}: commands are retried until Redis answers (BullMQ's advice for workers)`);
    t.equal(options.enableOfflineQueue, true, `${role}: commands wait while disconnected`);
    t.equal(options.commandTimeout, undefined, `${role}: no command timeout (it would cut blocking reads short)`);
  }
  for (const role of ['producer', 'consumer', 'blocking', 'subscriber'] as const) {
    const options = redisOptions(role, TIMEOUTS, `skiff:test:${role}`);
    t.equal(options.connectTimeout, TIMEOUTS.connectTimeoutMs, `${role}: connection attempts time out`);
    t.type(options.retryStrategy?.(1000), 'number', `${role}: reconnects forever`);
    t.equal(
      options.connectionName,
      role === 'subscriber' ? undefined : `skiff:test:${role}`,
      `${role}: named in CLIENT LIST, but a subscriber (its reconnect would refuse SETNAME)`,
    );
  }
});

t.test('behind Sentinel every role asks the sentinels for the primary and keeps its semantics', async (t) => {
  const sentinel = loadConfig({
    SKIFF_REDIS_SENTINELS: '10.0.0.1:26380,10.0.0.2',
    SKIFF_REDIS_SENTINEL_NAME: 'queues',
    SKIFF_REDIS_SENTINEL_PASSWORD: 's3cret',
  }).redisClient;
  for (const role of ['producer', 'consumer', 'blocking', 'subscriber'] as const) {
    const plain = redisOptions(role, TIMEOUTS, `skiff:test:${role}`);
    const options = redisOptions(role, sentinel, `skiff:test:${role}`);
    t.same(
      options.sentinels,
      [
        { host: '10.0.0.1', port: 26380 },
        { host: '10.0.0.2', port: 26379 },
      ],
      `${role}: the sentinels, in order`,
    );
    t.match(options, { name: 'queues', role: 'master', sentinelPassword: 's3cret' }, `${role}: the primary by name, checked to be a primary`);
    t.equal(options.failoverDetector, false, `${role}: no failover detector (it can end a client for good, infra/queue/connections.ts)`);
    t.type(options.sentinelRetryStrategy?.(1000), 'number', `${role}: asks the sentinels again forever`);
    t.equal(options.sentinelCommandTimeout, sentinel.commandTimeoutMs, `${role}: passes over a sentinel that does not answer`);
    t.equal(plain.sentinels, undefined, `${role}: without sentinels, none`);
    for (const key of [
      'enableOfflineQueue',
      'maxRetriesPerRequest',
      'commandTimeout',
      'enableReadyCheck',
      'connectTimeout',
      'keepAlive',
      'connectionName',
    ] as const) {
      t.equal(options[key], plain[key], `${role}: ${key} as without Sentinel`);
    }
    t.type(options.reconnectOnError, 'function', `${role}: a reply of a replica reconnects (to the primary the sentinels name)`);
    t.equal(plain.reconnectOnError, undefined, `${role}: not without Sentinel (it would reconnect to the same replica again and again)`);
  }
});

t.test("a reply of a server that is no longer the primary reconnects: the command is sent again, a producer's fails", async (t) => {
  const readonly = new Error("READONLY You can't write against a read only replica.");
  const script = new Error("READONLY You can't write against a read only replica. script: ee5bed0f6963e93a14eebfb64f07c299c1b4313f, on @user_script:1.");
  const unblocked = new Error('UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)');
  for (const role of ['consumer', 'blocking', 'subscriber'] as const) {
    for (const error of [readonly, script, unblocked])
      t.equal(onErrorReply(role)(error), 2, `${role}: ${error.message.slice(0, 30)}...: reconnect, send again`);
  }
  for (const error of [readonly, script, unblocked])
    t.equal(onErrorReply('producer')(error), 1, `producer: ${error.message.slice(0, 30)}...: reconnect, fail the command`);
  for (const message of [
    'ERR wrong number of arguments',
    'NOSCRIPT No matching script',
    'WRONGTYPE Operation against a key holding the wrong kind of value',
    'ERR READONLY in the middle',
  ]) {
    t.equal(onErrorReply('consumer')(new Error(message)), false, `"${message}" is the command's own error`);
  }
});

t.test('reconnect delays double from 50 ms up to the cap, with jitter', async (t) => {
  const exact = (attempt: number): number => reconnectDelay(attempt, 2000, () => 0.5);
  t.same([1, 2, 3, 4, 5, 6, 7].map(exact), [50, 100, 200, 400, 800, 1600, 2000]);
  t.equal(exact(10_000), 2000, 'capped however many attempts');
  t.equal(
    reconnectDelay(1, 2000, () => 0),
    40,
    '-20 %',
  );
  t.equal(
    reconnectDelay(20, 2000, () => 0.999_999),
    2400,
    '+20 %',
  );
});

t.test('an outage is logged once, then summarized at most every interval, then its end', async (t) => {
  const lines: Array<{ level: string; fields: Record<string, unknown>; message: string }> = [];
  const sink = {
    warn: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'warn', fields, message }),
    info: (fields: Record<string, unknown>, message: string) => lines.push({ level: 'info', fields, message }),
  };
  let now = 0;
  const outage = new OutageLog(sink as never, 'redis connection', 30_000, () => now);
  outage.recovered();
  t.equal(lines.length, 0, 'no errors, nothing to say');
  for (let second = 0; second <= 60; second++) {
    now = second * 1000;
    outage.error(new Error('connect ECONNREFUSED'));
  }
  t.equal(outage.down, true);
  t.same(
    lines.map((l) => l.level),
    ['warn', 'warn', 'warn'],
    'an error a second for a minute makes three lines',
  );
  t.equal(lines[0]?.message, 'redis connection failed; retrying');
  t.match(lines[1]?.fields, { errors: 30, downMs: 30_000 });
  outage.recovered();
  t.equal(outage.down, false);
  t.match(lines.at(-1), { level: 'info', message: 'redis connection back', fields: { downMs: 60_000 } });
  outage.error(new Error('again'));
  t.equal(lines.length, 5, 'the next outage is reported at once');
});

t.test('probe: up, down when the check fails, down when it does not answer in time', async (t) => {
  t.match(await probe(async () => 'PONG', 500), { status: 'up' });
  t.match(await probe(async () => Promise.reject(new Error('ECONNREFUSED')), 500), { status: 'down', error: 'ECONNREFUSED' });
  const never = await probe(() => new Promise(() => undefined), 50);
  t.match(never, { status: 'down', error: 'no answer in 50 ms' }, 'answered although the check never ends');
});

t.test('against a Redis that is killed and comes back on the same port', async (t) => {
  const dir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'connections-'));
  const port = await freePort();
  let server: LocalRedis = await startRedis({ dir, port, persist: false });
  const log = createLogger('test', 'silent');
  const producer = openRedis(server.url, 'producer', TIMEOUTS, { log, component: 'test' });
  const consumer = openRedis(server.url, 'consumer', TIMEOUTS, { log, component: 'test' });
  const queue = new Queue(`connections-${port}`, { connection: producer, prefix: 'test-connections' });
  logErrors(queue, log, 'test queue'); // else BullMQ writes each connection error to the console
  t.teardown(async () => {
    await queue.close();
    await Promise.all([closeRedis(producer), closeRedis(consumer)]);
    await server.process.stop('SIGKILL');
    await rm(dir, { recursive: true, force: true });
  });
  await whenReady(producer);
  await queue.waitUntilReady();
  t.ok(await queue.add('job', { n: 1 }), 'a job is queued while Redis is up');

  server.process.child.kill('SIGKILL');
  await server.process.exited;
  // Every assertion below is bounded by the tap timeout: an answer must come, not hang.
  await t.rejects(producer.ping(), 'a producer command fails while Redis is down');
  await t.rejects(queue.add('job', { n: 2 }), 'queue.add on a producer connection fails while Redis is down (BullMQ with no offline queue)');
  let waited = false;
  const pending = consumer.set('connections:waited', '1').then(() => (waited = true));

  server = await startRedis({ dir, port, persist: false });
  await whenReady(producer);
  t.equal(await producer.ping(), 'PONG', 'the producer reconnected by itself');
  t.ok(await queue.add('job', { n: 3 }), 'queue.add works again');
  await pending;
  t.ok(waited, 'the consumer command issued while Redis was down was run once it was back');
  t.equal(await producer.get('connections:waited'), '1');
});
