/**
 * Redis behind Sentinel: a platform on a primary, a replica and three sentinels of this file's own
 * (never the scratch Redis other test files share; PostgreSQL and the registry are the shared
 * ones) follows the primary through two failovers under steady load: the primary SIGKILLed (the
 * sentinels promote the replica), then, with the old primary back as a replica, a failover asked
 * of a sentinel (the primary it leaves stays up and becomes a replica: connections still on it
 * must leave it). Every accepted (202) async call ends succeeded (the reconciler queues again
 * what the promoted replica never got: replication is asynchronous); every sync call gets its
 * result or a clear 5xx; new calls after each failover succeed, so neither the scheduler's nor the
 * worker's BullMQ Worker is stuck on the old primary (BullMQ issues 3088, 4378).
 * No assertion is on wall-clock time: waits are on conditions with generous bounds. How long each
 * failover took until calls were served again is measured and printed as comments.
 */
import t from 'tap';
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Redis } from 'ioredis';
import { startPlatform, type Platform } from '../support/platform.js';
import { client, eventually, sleep } from '../support/api.js';
import { startSentinelSet, type Address, type LocalSentinelSet } from '../../infra/services/redis-sentinel.js';
import { startRedis, withClient, type LocalRedis } from '../../infra/services/redis-server.js';
import { closeRedis, openRedis } from '../../infra/queue/connections.js';
import { keySpace } from '../../infra/queue/names.js';
import { createLogger } from '../../infra/log.js';

/** The `t` a subtest callback receives. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Every request must be answered within this long (a lost sync reply is answered 503 well before). */
const ANSWER_WITHIN_MS = 90_000;
/** How long a failover, or the calls of the load, may take (generous: two cores are shared). */
const WITHIN_MS = 120_000;

const root = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'sentinel-'));
await chmod(root, 0o755);
let set: LocalSentinelSet | undefined;
let platform: Platform | undefined;
/** A command connection of the test's own, through the sentinels as the platform's are. */
let probe: Redis | undefined;

t.before(async () => {
  set = await startSentinelSet({ dir: join(root, 'redis'), replicas: 1, sentinels: 3, downAfterMs: 1000, failoverTimeoutMs: 3000 });
  platform = await startPlatform({
    ...set.env,
    SKIFF_REDIS_RECONNECT_MAX_MS: '500',
    // A call whose job the promoted replica never got is queued again 2 s after it was last seen.
    SKIFF_RECONCILE_GRACE_MS: '2000',
    SKIFF_RECONCILE_EVERY_MS: '500',
    // A sync call whose reply was lost is answered 503 after queue wait + timeout + 5 s.
    SKIFF_QUEUE_WAIT_MS: '15000',
  });
  probe = openRedis(platform.config.redisUrl, 'consumer', platform.config.redisClient, { log: createLogger('test', 'silent'), component: 'test-probe' });
});

t.teardown(async () => {
  // The platform stops cleanly only with a primary there (its workers' last writes wait for Redis).
  if (platform && set && !(await servingPrimary(set))) {
    const old = set.primary;
    const restarted = await startRedis({ dir: join(root, 'redis', 'primary'), port: port(old), persist: false }).catch(() => undefined);
    if (restarted) set.adopt(restarted);
  }
  if (probe) await closeRedis(probe);
  await platform?.stop();
  await set?.stop();
  await rm(root, { recursive: true, force: true });
});

const live = (): Platform => {
  if (!platform) throw new Error('the platform did not start');
  return platform;
};
const sentinels = (): LocalSentinelSet => {
  if (!set) throw new Error('the sentinels did not start');
  return set;
};
const api = client(live);
const port = (server: LocalRedis): number => Number(new URL(server.url).port);
const same = (a: Address | undefined, b: Address | undefined): boolean => a !== undefined && b !== undefined && a.host === b.host && a.port === b.port;

/** The primary the sentinels name, if it answers PING. */
async function servingPrimary(s: LocalSentinelSet): Promise<Address | undefined> {
  const primary = await s.currentPrimary();
  if (!primary) return undefined;
  const pong = await withClient(`redis://${primary.host}:${primary.port}`, (c) => c.ping()).catch(() => undefined);
  return pong === 'PONG' ? primary : undefined;
}

interface Answer {
  kind: 'async' | 'sync';
  /** 0: not answered (the error says why). */
  status: number;
  body: { id?: string; n?: number; error?: { code?: string } } & Record<string, unknown>;
  n: number;
  sentAt: number;
  answeredAt: number;
  error?: string;
}

async function call(kind: 'async' | 'sync', n: number): Promise<Answer> {
  const sentAt = performance.now();
  try {
    const res = await fetch(`${live().url}/v1/functions/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(kind === 'async' ? { 'x-skiff-invocation-type': 'async' } : {}) },
      body: JSON.stringify({ n }),
      signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
    });
    const text = await res.text();
    let body: Answer['body'];
    try {
      body = JSON.parse(text) as Answer['body'];
    } catch {
      body = { text };
    }
    return { kind, status: res.status, body, n, sentAt, answeredAt: performance.now() };
  } catch (error) {
    return { kind, status: 0, body: {}, n, sentAt, answeredAt: performance.now(), error: (error as Error).message };
  }
}

/** Steady load: loops of async and sync calls, each paced, until stopped. */
class Load {
  readonly answers: Answer[] = [];
  private stopped = false;
  private readonly loops: Array<Promise<void>> = [];
  private next = 0;

  constructor(
    asyncLoops: number,
    syncLoops: number,
    private readonly pauseMs: number,
  ) {
    for (let i = 0; i < asyncLoops; i++) this.loops.push(this.loop('async'));
    for (let i = 0; i < syncLoops; i++) this.loops.push(this.loop('sync'));
  }

  private async loop(kind: 'async' | 'sync'): Promise<void> {
    while (!this.stopped) {
      this.answers.push(await call(kind, this.next++));
      await sleep(this.pauseMs);
    }
  }

  /** Answers of `kind` with `status`, sent after `since` (performance.now()). */
  count(kind: 'async' | 'sync', status: number, since = 0): number {
    return this.answers.filter((a) => a.kind === kind && a.status === status && a.sentAt >= since).length;
  }

  /** The first answer of `kind` with `status` to a call sent after `since`. */
  first(kind: 'async' | 'sync', status: number, since: number): Answer | undefined {
    return this.answers.filter((a) => a.kind === kind && a.status === status && a.sentAt >= since).sort((a, b) => a.answeredAt - b.answeredAt)[0];
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.all(this.loops);
  }
}

/** Statuses of async calls by id, until each is `succeeded` or `within` passes. */
async function outcomes(ids: string[], within: number): Promise<Map<string, string>> {
  const status = new Map<string, string>(ids.map((id) => [id, 'unknown']));
  const pending = (): string[] => ids.filter((id) => status.get(id) !== 'succeeded');
  await eventually(
    async () => {
      const left = pending();
      for (let i = 0; i < left.length; i += 20) {
        await Promise.all(
          left.slice(i, i + 20).map(async (id) => {
            const res = await fetch(`${live().url}/v1/invocations/${id}`, { headers: live().auth, signal: AbortSignal.timeout(ANSWER_WITHIN_MS) }).catch(
              () => undefined,
            );
            if (res?.ok) status.set(id, ((await res.json()) as { status: string }).status);
          }),
        );
      }
      return pending().length === 0;
    },
    within,
    500,
  );
  return status;
}

/** Asserts what the load got: every async call accepted or refused 503, every sync call its result or a 5xx, each answered. */
function checkAnswers(t: TapTest, load: Load): void {
  const unanswered = load.answers.filter((a) => a.status === 0);
  t.same(
    unanswered.map((a) => `${a.kind} ${a.n}: ${a.error}`),
    [],
    'every call was answered',
  );
  const badAsync = load.answers.filter(
    (a) => a.kind === 'async' && a.status !== 0 && !(a.status === 202 && a.body.id) && !(a.status === 503 && a.body.error?.code === 'Unavailable'),
  );
  t.same(
    badAsync.map((a) => `${a.status} ${JSON.stringify(a.body)}`),
    [],
    'an async call is accepted (202 with its id) or refused with 503 Unavailable',
  );
  const badSync = load.answers.filter(
    (a) => a.kind === 'sync' && a.status !== 0 && !(a.status === 200 && a.body.n === a.n) && !(a.status >= 500 && typeof a.body.error?.code === 'string'),
  );
  t.same(
    badSync.map((a) => `${a.status} ${JSON.stringify(a.body)}`),
    [],
    'a sync call gets its own result, or a 5xx with an error code',
  );
}

/** Sentinels fail over; calls are served again; every accepted call succeeds. `failover` makes it happen and resolves at once. */
async function failoverUnderLoad(t: TapTest, what: string, failover: () => Promise<void>, from: Address): Promise<void> {
  // Several sync loops: one whose reply is lost waits out its bound, the others show when calls are served again.
  const load = new Load(2, 3, 100);
  try {
    t.ok(await eventually(() => load.count('async', 202) >= 20 && load.count('sync', 200) >= 5, WITHIN_MS, 50), 'the load runs before the failover');
    const startedAt = performance.now();
    await failover();
    let promotedAt = 0;
    t.ok(
      await eventually(
        async () => {
          const primary = await sentinels().currentPrimary();
          if (!primary || same(primary, from)) return false;
          promotedAt = performance.now();
          return true;
        },
        WITHIN_MS,
        50,
      ),
      'the sentinels name a new primary',
    );
    t.ok(
      await eventually(() => load.count('async', 202, startedAt) >= 20 && load.count('sync', 200, startedAt) >= 5, WITHIN_MS, 50),
      'calls sent after the failover are served',
    );
    const async = load.first('async', 202, startedAt);
    const sync = load.first('sync', 200, startedAt);
    const ms = (at: number | undefined): string => (at === undefined ? '-' : `${Math.round(at - startedAt)} ms`);
    t.comment(
      `${what}: new primary named after ${ms(promotedAt)}; first async call accepted after ${ms(async?.answeredAt)}, first sync call answered 200 after ${ms(sync?.answeredAt)}`,
    );
  } finally {
    await load.stop();
  }
  checkAnswers(t, load);
  const refused = load.answers.filter((a) => a.kind === 'async' && a.status === 503);
  const sync5xx = load.answers.filter((a) => a.kind === 'sync' && a.status >= 500);
  t.comment(
    `${what}: ${load.count('async', 202)} async calls accepted, ${refused.length} refused (503); ${load.count('sync', 200)} sync calls answered 200, ${sync5xx.length} 5xx`,
  );
  for (const [kind, answers] of [
    ['refused async calls', refused],
    ['sync 5xx', sync5xx],
  ] as const) {
    const byMessage = new Map<string, number[]>();
    for (const a of answers) {
      const key = `${a.status} ${a.body.error?.code ?? ''}: ${String((a.body.error as { message?: string } | undefined)?.message ?? '')}`;
      byMessage.set(key, [...(byMessage.get(key) ?? []), Math.round(a.answeredAt - a.sentAt)]);
    }
    for (const [key, ms] of byMessage) t.comment(`  ${kind}: ${ms.length} × ${key} (answered in ${Math.min(...ms)}-${Math.max(...ms)} ms)`);
  }
  const ids = load.answers.flatMap((a) => (a.kind === 'async' && a.status === 202 && a.body.id ? [a.body.id] : []));
  const status = await outcomes(ids, WITHIN_MS);
  const notSucceeded = ids.filter((id) => status.get(id) !== 'succeeded').map((id) => `${id}: ${status.get(id)}`);
  t.same(notSucceeded, [], `every one of the ${ids.length} accepted async calls ends succeeded`);
}

/** Calls after a failover: a few async and sync ones, each must succeed (the BullMQ Workers are not stuck). */
async function newCallsSucceed(t: TapTest): Promise<void> {
  t.ok(await eventually(async () => (await fetch(`${live().url}/healthz`)).status === 200, WITHIN_MS, 100), '/healthz answers 200');
  const accepted: string[] = [];
  for (let n = 0; n < 10; n++) {
    const answer = await call('async', 1000 + n);
    t.equal(answer.status, 202, 'a new async call is accepted');
    if (answer.body.id) accepted.push(answer.body.id);
  }
  for (let n = 0; n < 5; n++) {
    const answer = await call('sync', 2000 + n);
    t.match(answer, { status: 200, body: { n: 2000 + n } }, 'a new sync call answers its result');
  }
  const status = await outcomes(accepted, WITHIN_MS);
  t.same(
    accepted.filter((id) => status.get(id) !== 'succeeded'),
    [],
    'the new async calls succeed',
  );
}

/** Clients connected to `server` other than sentinels, replication links and this probe. */
async function clientsOn(server: Address): Promise<string[]> {
  const list = await withClient(`redis://${server.host}:${server.port}`, (c) => c.client('LIST') as Promise<string>);
  return list
    .split('\n')
    .filter((line) => line.trim() !== '')
    .map((line) => Object.fromEntries(line.split(' ').map((field) => field.split(/=(.*)/s).slice(0, 2))) as Record<string, string>)
    .filter((c) => !(c.name ?? '').startsWith('sentinel-') && !/[SM]/.test(c.flags ?? '') && c.cmd !== 'client|list')
    .map((c) => `${c.name || '(no name)'} ${c.cmd}`);
}

t.test('a function is deployed and answers through the primary the sentinels name', async (t) => {
  const res = await api.deploy(
    { name: 'echo', concurrency: 16, maxInstances: 4, timeoutMs: 5000 },
    { 'index.js': 'exports.handler = async (event) => { await new Promise((r) => setTimeout(r, 20)); return { n: event.n }; };' },
  );
  t.equal(res.status, 201);
  t.match(await call('sync', 1), { status: 200, body: { n: 1 } });
  const primary = await sentinels().currentPrimary();
  t.ok(same(primary, { host: '127.0.0.1', port: port(sentinels().primary) }), 'the sentinels name the primary started as such');
  t.ok(
    (await clientsOn(primary ?? { host: '', port: 0 })).some((c) => c.startsWith('skiff:')),
    "the platform's connections are on it",
  );
});

t.test('the primary is SIGKILLed under load: the replica is promoted and the platform follows it', async (t) => {
  const old = { host: '127.0.0.1', port: port(sentinels().primary) };
  await failoverUnderLoad(
    t,
    'primary killed',
    async () => {
      sentinels().primary.process.child.kill('SIGKILL');
      await sentinels().primary.process.exited;
    },
    old,
  );
  const primary = await sentinels().currentPrimary();
  t.ok(same(primary, { host: '127.0.0.1', port: port(sentinels().replicas[0] as LocalRedis) }), 'the replica is the primary now');
  t.ok(
    (await clientsOn(primary ?? { host: '', port: 0 })).some((c) => c.startsWith('skiff:')),
    "the platform's connections are on it",
  );
  await newCallsSucceed(t);
});

t.test('the old primary comes back as a replica; a failover back to it moves every connection off the primary it leaves', async (t) => {
  const s = sentinels();
  const leaving = await s.currentPrimary();
  if (!leaving) throw new Error('no primary is named');
  const back = await startRedis({ dir: join(root, 'redis', 'primary'), port: port(s.primary), persist: false, replicaOf: leaving });
  s.adopt(back);
  await s.readyToFailOver(1);
  await failoverUnderLoad(
    t,
    'failover asked of a sentinel',
    async () => {
      await withClient(s.sentinels[0]?.url ?? '', (c) => c.call('SENTINEL', 'FAILOVER', s.name));
    },
    leaving,
  );
  t.ok(same(await s.currentPrimary(), { host: '127.0.0.1', port: port(back) }), 'the old primary is the primary again');
  let left: string[] = [];
  t.ok(
    await eventually(async () => (left = await clientsOn(leaving)).length === 0, WITHIN_MS, 200),
    'no connection is left on the primary it left (now a replica)',
    { left },
  );
  await newCallsSucceed(t);
  const reconciled = await probe?.hgetall(keySpace(live().config.keyPrefix).reconciled);
  t.comment(`reconciler counts (calls queued again after the promoted replica lacked their jobs; duplicate ends): ${JSON.stringify(reconciled)}`);
});
