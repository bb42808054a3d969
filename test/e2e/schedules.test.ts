/**
 * Schedules and function URL CORS against the real platform. A function deployed with a schedule
 * is called by the platform on every tick with an EventBridge Scheduled Event, as an ordinary async
 * call (recorded, succeeded); bad schedules are refused naming the entry; after Redis loses its
 * data (FLUSHALL) the schedules are made again from PostgreSQL and keep firing; a redeploy without
 * schedules and a delete stop them — proved without timing: the job scheduler is gone from Redis,
 * the version has none in PostgreSQL, and the count of calls stays the same while another
 * function's schedule goes on firing. CORS: a preflight is answered without calling the function,
 * and the grant is on an actual answer for an allowed origin only.
 *
 * Redis here is this file's own (it is wiped): never the shared scratch Redis.
 */
import t from 'tap';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { openDatabase } from '../../infra/db/database.js';
import { keySpace } from '../../infra/queue/names.js';
import { startRedis } from '../../infra/services/redis-server.js';
import { freePort } from '../../infra/services/process.js';
import type { TickJob } from '../../infra/schedules/job-schedulers.js';
import { client, eventually } from '../support/api.js';
import { startPlatform } from '../support/platform.js';

/** Generous: two cores are shared, and the first tick starts a container. */
const WITHIN_MS = 60_000;

const root = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'schedules-'));
const redis = await startRedis({ dir: join(root, 'redis'), port: await freePort(), persist: false });
// The reconciler and the schedule sync pass often, so recovery after the wipe is quick.
const platform = await startPlatform({ REDIS_URL: redis.url, SKIFF_RECONCILE_EVERY_MS: '500', SKIFF_RECONCILE_GRACE_MS: '3000' });
const keys = keySpace(platform.config.keyPrefix);
const probe = new Redis(redis.url, { maxRetriesPerRequest: null });
const ticks = new Queue<TickJob>(keys.scheduleQueue, { connection: probe, prefix: keys.bullPrefix });
const db = openDatabase(platform.config.databaseUrl, platform.config.databaseSchema, 1);
t.teardown(async () => {
  await platform.stop();
  await ticks.close();
  probe.disconnect();
  await db.end();
  await redis.stop();
  await rm(root, { recursive: true, force: true });
});
const api = client(() => platform);

const HANDLER = { 'index.js': 'exports.handler = async (event) => event;' };

/** Invocation rows of `name`, read in PostgreSQL (they outlive a deleted function). */
async function calls(name: string): Promise<{ all: number; succeeded: Array<{ id: string; result: Record<string, unknown> }> }> {
  const { rows } = await db.query<{ id: string; status: string; result: Record<string, unknown> }>(
    'SELECT id, status, result FROM invocations WHERE function_name = $1 ORDER BY created_at',
    [name],
  );
  return { all: rows.length, succeeded: rows.filter((r) => r.status === 'succeeded') };
}

/** Ids of the job schedulers Redis holds for `name`. */
async function schedulersOf(name: string): Promise<string[]> {
  return (await ticks.getJobSchedulers(0, -1)).map((s) => s.key).filter((key) => key.startsWith(`${name}:`));
}

/** Waits until no tick of `name` is being turned into a call (none waiting or active on the schedules queue). */
async function noTickInFlight(name: string): Promise<boolean> {
  return eventually(async () => (await ticks.getJobs(['wait', 'active', 'prioritized'])).every((job) => job.data.functionName !== name), WITHIN_MS);
}

async function describe(name: string): Promise<Record<string, unknown>> {
  return (await (await fetch(`${platform.url}/v1/functions/${name}`, { headers: platform.auth })).json()) as Record<string, unknown>;
}

t.test('bad schedules and CORS settings are refused, naming the entry', async (t) => {
  const refused = async (body: Record<string, unknown>, field: string, message: RegExp): Promise<void> => {
    const res = await api.deploy({ name: 'refused', ...body }, HANDLER);
    t.equal(res.status, 400, `${field}: 400`);
    const { error } = (await res.json()) as { error: { code: string; field: string; message: string } };
    t.equal(error.code, 'InvalidRequest');
    t.equal(error.field, field);
    t.match(error.message, message);
  };
  await refused({ schedules: [{ everyMs: 1000 }, { expression: 'cron(0 12 * * ? 2030)' }] }, 'schedules[1].expression', /year field must be \*/);
  await refused({ schedules: [{ expression: 'rate(1 minutes)' }] }, 'schedules[0].expression', /singular/);
  await refused({ schedules: [{ everyMs: 10 }] }, 'schedules[0].everyMs', /from 1000 to/);
  await refused({ schedules: [{ everyMs: 1000, expression: 'rate(1 day)' }] }, 'schedules.0', /must NOT have more than 1 properties/);
  await refused({ schedules: Array.from({ length: 11 }, () => ({ everyMs: 1000 })) }, 'schedules', /must NOT have more than 10 items/);
  await refused({ cors: { allowOrigins: ['*'], allowCredentials: true } }, 'cors.allowCredentials', /cannot be true while allowOrigins has \*/);
  t.equal((await fetch(`${platform.url}/v1/functions/refused`, { headers: platform.auth })).status, 404, 'nothing was deployed');
});

t.test('a schedule fires, survives Redis losing its data, and stops on redeploy and delete', async (t) => {
  const deployed = await api.deploy({ name: 'tick', schedules: [{ everyMs: 1000 }] }, HANDLER);
  t.equal(deployed.status, 201);
  t.match(await describe('tick'), { schedules: [{ everyMs: 1000 }] }, 'the API shows the schedule');
  t.ok(await eventually(async () => (await calls('tick')).succeeded.length >= 2, WITHIN_MS), 'two ticks ran as succeeded async calls');
  const [first] = (await calls('tick')).succeeded;
  t.match(first?.result, {
    version: '0',
    id: first?.id,
    'detail-type': 'Scheduled Event',
    source: 'aws.events',
    account: 'default',
    region: 'us-east-1',
    resources: ['arn:aws:events:us-east-1:default:rule/tick-schedule-1'],
    detail: {},
  });
  t.match(String(first?.result.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z$/, 'time: the tick, ISO 8601 UTC');

  // Redis loses everything: the schedule is made again from PostgreSQL and fires again.
  const wiped = Date.now();
  t.equal(await probe.flushall(), 'OK', 'Redis wiped');
  t.ok(await eventually(async () => (await schedulersOf('tick')).length === 1, WITHIN_MS), 'the scheduler is back');
  t.ok(
    await eventually(async () => (await calls('tick')).succeeded.some((c) => Date.parse(String(c.result.time)) > wiped), WITHIN_MS),
    'a tick after the wipe ran',
  );

  // A second function keeps its schedule: its ticks are the clock the stop is measured against.
  t.equal((await api.deploy({ name: 'other', schedules: [{ expression: 'rate(1 minute)' }, { everyMs: 1000 }] }, HANDLER)).status, 201);
  t.ok(await eventually(async () => (await calls('other')).succeeded.length >= 1, WITHIN_MS), 'the other function fires');

  // Redeployed without schedules: no scheduler in Redis, none on the version in PostgreSQL, no new call.
  t.equal((await api.deploy({ name: 'tick' }, HANDLER)).status, 201);
  t.same(await schedulersOf('tick'), [], 'the redeploy removed the scheduler');
  t.match(await describe('tick'), { version: 2, schedules: [] });
  const { rows } = await db.query<{ n: string }>(
    `SELECT count(*) AS n FROM functions f JOIN function_versions v ON v.name = f.name AND v.version = f.current_version
     WHERE f.name = 'tick' AND v.schedules <> '[]'`,
  );
  t.equal(rows[0]?.n, '0', 'the current version has no schedules in PostgreSQL');
  t.ok(await noTickInFlight('tick'), 'no tick of it is being turned into a call');
  const stopped = (await calls('tick')).all;
  const otherBefore = (await calls('other')).succeeded.length;
  t.ok(await eventually(async () => (await calls('other')).succeeded.length >= otherBefore + 2, WITHIN_MS), 'the other function ticked twice since');
  t.equal((await calls('tick')).all, stopped, 'the redeployed function was not called again');

  // Deleted: its schedulers go, and nothing calls it, while `tick` (scheduled again) goes on firing.
  t.equal((await api.deploy({ name: 'tick', schedules: [{ everyMs: 1000 }] }, HANDLER)).status, 201);
  t.equal((await fetch(`${platform.url}/v1/functions/other`, { method: 'DELETE', headers: platform.auth })).status, 200);
  t.same(await schedulersOf('other'), [], 'the delete removed both schedulers');
  t.ok(await noTickInFlight('other'));
  const deleted = (await calls('other')).all;
  const tickBefore = (await calls('tick')).succeeded.length;
  t.ok(await eventually(async () => (await calls('tick')).succeeded.length >= tickBefore + 2, WITHIN_MS), 'tick ticked twice since');
  t.equal((await calls('other')).all, deleted, 'the deleted function was not called again');
});

t.test('CORS: the platform answers the preflight; an actual answer carries the grant for an allowed origin', async (t) => {
  const handler = `exports.handler = async () => ({
    statusCode: 200,
    headers: { 'x-answer': '42', 'access-control-allow-origin': 'https://evil.example', vary: 'Accept-Encoding' },
    body: 'hello',
  });`;
  const cors = { allowOrigins: ['https://app.example.com'], allowMethods: ['PUT'], allowHeaders: ['X-Custom'], exposeHeaders: ['X-Answer'], maxAge: 300 };
  t.equal((await api.deploy({ name: 'web', auth: 'key', cors }, { 'index.js': handler })).status, 201);
  t.match(await describe('web'), { cors: { ...cors, allowOrigins: ['https://app.example.com'], allowMethods: ['PUT'], allowCredentials: false } });

  const preflight = await fetch(`${platform.fnUrl}/fn/web/items`, {
    method: 'OPTIONS',
    headers: { origin: 'https://app.example.com', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'x-custom' },
  });
  t.equal(preflight.status, 204, 'answered without a key: a preflight carries none');
  t.equal(preflight.headers.get('access-control-allow-origin'), 'https://app.example.com');
  t.equal(preflight.headers.get('access-control-allow-methods'), 'PUT');
  t.equal(preflight.headers.get('access-control-allow-headers'), 'X-Custom');
  t.equal(preflight.headers.get('access-control-max-age'), '300');
  const denied = await fetch(`${platform.fnUrl}/fn/web/items`, {
    method: 'OPTIONS',
    headers: { origin: 'https://evil.example', 'access-control-request-method': 'PUT' },
  });
  t.equal(denied.headers.get('access-control-allow-origin'), null, 'another origin gets no grant');
  t.equal((await calls('web')).all, 0, 'the function was not called for either preflight');

  const actual = await fetch(`${platform.fnUrl}/fn/web/items`, { method: 'PUT', headers: { origin: 'https://app.example.com', ...platform.auth } });
  t.equal(actual.status, 200);
  t.equal(await actual.text(), 'hello');
  t.equal(actual.headers.get('access-control-allow-origin'), 'https://app.example.com', "the platform's grant, not the function's");
  t.equal(actual.headers.get('access-control-expose-headers'), 'X-Answer');
  t.equal(actual.headers.get('x-answer'), '42');
  t.match(actual.headers.get('vary'), /Origin/);
  t.match(actual.headers.get('vary'), /Accept-Encoding/, "the function's Vary is kept beside the platform's");
  const unauthorized = await fetch(`${platform.fnUrl}/fn/web/items`, { method: 'PUT', headers: { origin: 'https://app.example.com' } });
  t.equal(unauthorized.status, 401);
  t.equal(unauthorized.headers.get('access-control-allow-origin'), 'https://app.example.com', "the platform's errors carry the grant too");
  const other = await fetch(`${platform.fnUrl}/fn/web/items`, { method: 'PUT', headers: { origin: 'https://evil.example', ...platform.auth } });
  t.equal(other.status, 200);
  t.equal(other.headers.get('access-control-allow-origin'), null, "another origin gets no grant, and not the function's either");
});
