/**
 * The bring-up's Redis keeps what it is given (append-only file, noeviction), comes back from a
 * SIGKILL with its data when supervised as the bring-up does, and every component's start-up check
 * warns about a Redis that lacks those settings. Real redis-server processes of this file's own,
 * on free ports: never the shared scratch Redis.
 */
import t, { type Test } from 'tap';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { Supervised } from '../../infra/bringup/supervisor.js';
import { checkRedisSettings } from '../../infra/queue/redis-check.js';
import { freePort, startProcess, waitFor, type OwnedProcess } from '../../infra/services/process.js';
import { startRedis } from '../../infra/services/redis-server.js';

/** A logger whose lines the test reads. */
function capturedLog(): { log: Logger; lines: Array<{ level: number; msg: string } & Record<string, unknown>> } {
  const lines: Array<{ level: number; msg: string } & Record<string, unknown>> = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as (typeof lines)[number]);
      done();
    },
  });
  return { log: pino({ level: 'debug' }, sink), lines };
}
const WARN = 40;

async function tempDir(t: Test): Promise<string> {
  const dir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'redis-durability-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

async function client(t: Test, url: string): Promise<Redis> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  redis.on('error', () => undefined);
  t.teardown(() => redis.disconnect());
  return redis;
}

/** A redis-server with only the given settings (Redis' defaults otherwise), answering PING. */
async function plainRedis(t: Test, dir: string, args: string[]): Promise<{ url: string; proc: OwnedProcess }> {
  const port = await freePort();
  const proc = startProcess('redis-server', ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', ...args], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  t.teardown(() => proc.stop('SIGKILL'));
  const url = `redis://127.0.0.1:${port}`;
  const probe = await client(t, url);
  await waitFor('plain redis', () => probe.ping());
  return { url, proc };
}

const configGet = async (redis: Redis, setting: string): Promise<string | undefined> => ((await redis.config('GET', setting)) as string[])[1];

t.test("the bring-up's Redis has an append-only file fsynced every second and noeviction; the check is silent", async (t) => {
  const dir = await tempDir(t);
  const redis = await startRedis({ dir, port: await freePort(), persist: true });
  t.teardown(() => redis.stop());
  const c = await client(t, redis.url);
  t.equal(await configGet(c, 'appendonly'), 'yes');
  t.equal(await configGet(c, 'appendfsync'), 'everysec');
  t.equal(await configGet(c, 'maxmemory-policy'), 'noeviction');
  const { log, lines } = capturedLog();
  t.same(await checkRedisSettings(redis.url, log), { checked: true, lacking: [] });
  t.same(
    lines.filter((l) => l.level >= WARN),
    [],
    'no warning',
  );
});

t.test('supervised as the bring-up does, a SIGKILLed Redis comes back on its port with what it had acknowledged', async (t) => {
  const dir = await tempDir(t);
  const port = await freePort();
  const redis = new Supervised({
    name: 'redis',
    start: async (signal) => (await startRedis({ dir, port, persist: true, signal })).process,
    stopGraceMs: 10_000,
    backoff: { firstMs: 100 },
  });
  t.teardown(() => redis.stop());
  await redis.start();
  const c = await client(t, `redis://127.0.0.1:${port}`);
  // Acknowledged writes are in the AOF (written before the reply; fsync is for power loss).
  await c.set('accepted', 'call-1');
  const pid = redis.pid!;
  const back = new Promise<number>((resolve) => redis.once('started', ({ pid: next }) => resolve(next!)));
  const killedAt = performance.now();
  process.kill(pid, 'SIGKILL');
  const next = await back;
  t.comment(`Redis answered again ${Math.round(performance.now() - killedAt)} ms after its SIGKILL`);
  t.not(next, pid, 'a new redis-server');
  t.equal(await c.get('accepted'), 'call-1', 'the write survived (an RDB snapshot every 60 s would have lost it)');
});

t.test('data an earlier Redis kept only in dump.rdb survives the switch to an append-only file', async (t) => {
  const dir = await tempDir(t);
  const old = await plainRedis(t, dir, ['--appendonly', 'no']);
  const before = await client(t, old.url);
  await before.set('queued', 'from-rdb');
  await before.save();
  await old.proc.stop('SIGTERM');
  t.notOk(existsSync(join(dir, 'appendonlydir')), 'no AOF yet');

  const redis = await startRedis({ dir, port: await freePort(), persist: true });
  t.teardown(() => redis.stop());
  const c = await client(t, redis.url);
  t.equal(await c.get('queued'), 'from-rdb', 'loaded from the snapshot');
  t.equal(await configGet(c, 'appendonly'), 'yes', 'AOF on');
  t.ok(existsSync(join(dir, 'appendonlydir', 'appendonly.aof.manifest')), 'the AOF is written');
  await redis.process.stop('SIGKILL');
  const again = await startRedis({ dir, port: await freePort(), persist: true });
  t.teardown(() => again.stop());
  t.equal(await (await client(t, again.url)).get('queued'), 'from-rdb', 'and the AOF has it');
});

t.test('a Redis is not started on a port another server holds (its probe would be answered by that one)', async (t) => {
  const other = await plainRedis(t, await tempDir(t), []);
  const port = Number(new URL(other.url).port);
  await t.rejects(startRedis({ dir: await tempDir(t), port, persist: true }), /127\.0\.0\.1:\d+ is in use by another process/);
});

t.test('the check warns, in one line naming the setting, about a Redis without an append-only file', async (t) => {
  const { url } = await plainRedis(t, await tempDir(t), []);
  const { log, lines } = capturedLog();
  const result = await checkRedisSettings(url, log);
  t.ok(result.checked);
  t.same(result.lacking, [{ setting: 'appendonly', value: 'no', want: 'yes' }]);
  const warnings = lines.filter((l) => l.level >= WARN);
  t.equal(warnings.length, 1, 'one line');
  t.match(warnings[0]?.msg, /appendonly yes/);
  t.same(warnings[0]?.settings, { appendonly: 'no' });
});

t.test('the check warns about eviction, and about an AOF without fsync', async (t) => {
  const { url } = await plainRedis(t, await tempDir(t), ['--appendonly', 'yes', '--appendfsync', 'no', '--maxmemory-policy', 'allkeys-lru']);
  const { log, lines } = capturedLog();
  const result = await checkRedisSettings(url, log);
  t.same(
    result.lacking.map((l) => l.setting),
    ['appendfsync', 'maxmemory-policy'],
  );
  const warnings = lines.filter((l) => l.level >= WARN);
  t.equal(warnings.length, 1);
  t.match(warnings[0]?.msg, /maxmemory-policy noeviction/);
  t.match(warnings[0]?.msg, /appendfsync everysec/);
});

t.test('a Redis that refuses CONFIG (as managed ones do) is named as unchecked', async (t) => {
  const { url } = await plainRedis(t, await tempDir(t), ['--rename-command', 'CONFIG', '']);
  const { log, lines } = capturedLog();
  const result = await checkRedisSettings(url, log);
  t.notOk(result.checked);
  t.match(result.reason, /CONFIG GET refused/);
  const warnings = lines.filter((l) => l.level >= WARN);
  t.equal(warnings.length, 1);
  t.match(warnings[0]?.msg, /could not check the Redis settings appendonly yes/);
});

t.test('a Redis that does not answer is named as unchecked, without waiting long', async (t) => {
  const { log, lines } = capturedLog();
  const result = await checkRedisSettings(`redis://127.0.0.1:${await freePort()}`, log, 1000);
  t.notOk(result.checked);
  t.match(result.reason, /no answer/);
  t.equal(lines.filter((l) => l.level >= WARN).length, 1);
});

t.test('the check uses a client it is given, and leaves it open', async (t) => {
  const { url } = await plainRedis(t, await tempDir(t), []);
  const redis = await client(t, url);
  const { log } = capturedLog();
  t.same(
    (await checkRedisSettings(redis, log)).lacking.map((l) => l.setting),
    ['appendonly'],
  );
  t.equal(await redis.ping(), 'PONG', 'still usable');
});
