/**
 * A fleet of three worker nodes under steady load: one is SIGKILLed, one is drained by an
 * operator. The two that go away each run as their own host: a network namespace made here,
 * joined to this host by a bridge, reaching Redis, PostgreSQL and the registry through it. Every accepted call is answered exactly once; calls running on the killed node are
 * answered Unavailable (sync) or run again elsewhere (async); the drained node finishes its calls
 * and leaves; the fleet API shows it all.
 */
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { createServer, connect, type Server } from 'node:net';
import { client, eventually, sleep } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

const WORKER_MAIN = 'dist/worker/main.js';

/** A TCP relay on `host` to a loopback port: how nodes in their own namespaces reach Redis and PostgreSQL. */
async function relay(host: string, to: number): Promise<{ port: number; server: Server }> {
  const server = createServer((inbound) => {
    const outbound = connect(to, '127.0.0.1');
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('error', () => outbound.destroy());
    outbound.on('error', () => inbound.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, host, resolve));
  return { port: (server.address() as { port: number }).port, server };
}

const sh = (script: string): void => void execFileSync('sh', ['-ec', script]);

interface WorkerView {
  id: string;
  state: string;
  alive: boolean;
  busy?: Record<string, number>;
}

t.test('SIGKILL one node and drain another under load: no call lost or answered twice', async (t) => {
  const platform: Platform = await startPlatform({ SKIFF_HEARTBEAT_MS: '200', SKIFF_HEARTBEAT_TTL_MS: '1200', SKIFF_QUEUE_WAIT_MS: '10000' });
  const children = new Map<string, ChildProcess>();
  // The hosts' network: a bridge on this host (198.19.<n>.1) and a namespace per node (.2, .3).
  const net = `skf${process.pid % 100000}`;
  const subnet = `198.19.${process.pid % 250}`;
  t.teardown(() => sh(`ip netns del ${net}b 2>/dev/null || true; ip netns del ${net}c 2>/dev/null || true; ip link del ${net} 2>/dev/null || true`));
  sh(`ip link add ${net} type bridge && ip addr add ${subnet}.1/24 dev ${net} && ip link set ${net} up`);
  for (const [node, n] of [
    ['b', 2],
    ['c', 3],
  ] as const) {
    sh(`ip netns add ${net}${node}
      ip link add ${net}${node}h type veth peer name ${net}${node}n
      ip link set ${net}${node}h master ${net} up
      ip link set ${net}${node}n netns ${net}${node}
      ip netns exec ${net}${node} ip addr add ${subnet}.${n}/24 dev ${net}${node}n
      ip netns exec ${net}${node} ip link set ${net}${node}n up
      ip netns exec ${net}${node} ip link set lo up`);
  }
  const redisRelay = await relay(`${subnet}.1`, Number(new URL(platform.config.redisUrl).port));
  const postgresRelay = await relay(`${subnet}.1`, Number(new URL(platform.config.databaseUrl).port));
  const registryRelay = await relay(`${subnet}.1`, Number(new URL(platform.config.registry.url).port));
  t.teardown(() => {
    redisRelay.server.close();
    postgresRelay.server.close();
    registryRelay.server.close();
  });
  const startNode = (suffix: string, uidBase: number): ChildProcess => {
    const env = platform.workerEnv(suffix, uidBase);
    const redisUrl = new URL(platform.config.redisUrl);
    redisUrl.hostname = `${subnet}.1`;
    redisUrl.port = String(redisRelay.port);
    const databaseUrl = new URL(platform.config.databaseUrl);
    databaseUrl.hostname = `${subnet}.1`;
    databaseUrl.port = String(postgresRelay.port);
    const registryUrl = new URL(platform.config.registry.url);
    registryUrl.hostname = `${subnet}.1`;
    registryUrl.port = String(registryRelay.port);
    // nsenter joins only the node's network namespace: it is its own host on the network, and
    // shares this host's file systems (mounts, runc state), so its leftovers are checked as usual.
    const child = spawn('nsenter', [`--net=/run/netns/${net}${suffix}`, process.execPath, WORKER_MAIN], {
      env: { ...process.env, ...env, REDIS_URL: redisUrl.toString(), DATABASE_URL: databaseUrl.toString(), REGISTRY_URL: registryUrl.origin },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    children.set(env.SKIFF_WORKER_ID ?? suffix, child);
    return child;
  };
  t.teardown(async () => {
    for (const child of children.values()) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    await Promise.all([...children.values()].map((c) => (c.exitCode === null && c.signalCode === null ? once(c, 'exit') : undefined)));
    await platform.stop();
  });
  const api = client(() => platform);
  const workers = async (): Promise<WorkerView[]> =>
    ((await (await fetch(`${platform.url}/v1/workers`, { headers: platform.auth })).json()) as { workers: WorkerView[] }).workers;

  const killed = startNode('b', 20_000_000);
  const drained = startNode('c', 40_000_000);
  const killedId = platform.workerEnv('b', 0).SKIFF_WORKER_ID ?? '';
  const drainedId = platform.workerEnv('c', 0).SKIFF_WORKER_ID ?? '';
  t.ok(await eventually(async () => (await workers()).filter((w) => w.alive).length === 3, 30_000), 'three nodes join the fleet');

  // At first only the node to be killed takes calls, so calls are surely running on it when it dies.
  const inProcess = platform.config.worker.id;
  const order = async (id: string, what: string): Promise<number> =>
    (await fetch(`${platform.url}/v1/workers/${id}/${what}`, { method: 'POST', headers: platform.auth })).status;
  t.equal(await order(inProcess, 'cordon'), 200);
  t.equal(await order(drainedId, 'cordon'), 200);
  // Up to 8 calls per instance: the load needs few containers (creating them is what this 2-core
  // machine is slowest at), so it runs steadily.
  const WORK = { 'index.js': 'exports.handler = (e) => new Promise((r) => setTimeout(() => r({ n: e.n }), e.ms));' };
  await api.deploy({ name: 'work', maxInstances: 50, concurrency: 8 }, WORK);
  // The same code, declared safe to run twice: its calls lost with a node run again instead.
  await api.deploy({ name: 'work-again', maxInstances: 50, concurrency: 8, idempotent: true }, WORK);

  // A call surely running on the node when it dies (the steady load alone may be between calls).
  await api.deploy({ name: 'hold', timeoutMs: 60_000 }, WORK);
  const held = api.invoke('hold', { n: 0, ms: 30_000 }).then(async (res) => ({ status: res.status, body: await res.text() }));
  t.ok(
    await eventually(async () => Object.keys((await workers()).find((w) => w.id === killedId)?.busy ?? {}).length > 0, 20_000),
    'a long call is running on the node to be killed',
  );

  // Steady load: 6 callers (3 per function), each making calls of 60 ms one after another.
  const answers = new Map<number, number[]>();
  const idempotentAnswers: number[] = [];
  /** What each call that was not answered 200 was answered, for the record. */
  const failures: string[] = [];
  let next = 0;
  let stopLoad = false;
  const caller = async (fn: string): Promise<void> => {
    while (!stopLoad) {
      const n = next++;
      const res = await api.invoke(fn, { n, ms: 60 });
      if (fn === 'work-again') idempotentAnswers.push(res.status);
      else plainAnswers++;
      const list = answers.get(n) ?? [];
      list.push(res.status);
      answers.set(n, list);
      if (res.status === 200) t.same(await res.json(), { n }, 'answered with its own result');
      else failures.push(`${fn} ${n}: ${res.status} ${await res.text()}`);
    }
  };
  const load = Promise.all(['work', 'work', 'work', 'work-again', 'work-again', 'work-again'].map(caller));
  const asyncIds: string[] = [];
  const asyncLoad = (async () => {
    while (!stopLoad) {
      const res = await api.invoke('work', { n: -1, ms: 200 }, { 'x-skiff-invocation-type': 'async' });
      asyncIds.push(((await res.json()) as { id: string }).id);
      await sleep(50);
    }
  })();

  // Each phase lasts until both functions have had 15 more calls answered (not a time: a loaded
  // machine answers fewer calls per second, and the assertions below count them).
  let plainAnswers = 0;
  const phase = async (what: string): Promise<void> => {
    const [plain, again] = [plainAnswers, idempotentAnswers.length];
    t.ok(await eventually(() => plainAnswers >= plain + 15 && idempotentAnswers.length >= again + 15, 120_000), `calls are answered ${what}`);
  };
  await phase('before the kill');
  t.ok((await workers()).find((w) => w.id === killedId)?.alive, 'the node to be killed is serving');
  killed.kill('SIGKILL');
  t.equal(await order(inProcess, 'uncordon'), 200);
  t.equal(await order(drainedId, 'uncordon'), 200);
  await phase('after the kill');
  const drainRes = await fetch(`${platform.url}/v1/workers/${drainedId}/drain`, { method: 'POST', headers: platform.auth });
  t.equal(drainRes.status, 202);
  const [code] = (await once(drained, 'exit')) as [number | null];
  t.equal(code, 0, 'the drained node finished its calls and exited cleanly');
  await phase('after the drain');
  stopLoad = true;
  await Promise.all([load, asyncLoad]);

  const statuses = [...answers.values()].flat();
  t.equal(statuses.length, answers.size, 'every call was answered exactly once');
  const unavailable = statuses.filter((s) => s === 503).length;
  t.comment(`calls not answered 200: ${failures.length > 0 ? failures.join('; ') : 'none'}`);
  t.equal(statuses.filter((s) => s !== 200 && s !== 503).length, 0, 'no other error');
  t.ok(unavailable <= 3, `only the calls running on the killed node are Unavailable (${unavailable} of ${statuses.length})`);
  const heldAnswer = await held;
  t.equal(heldAnswer.status, 503, 'the long call running on the killed node is answered Unavailable');
  t.match(JSON.parse(heldAnswer.body), { error: { code: 'Unavailable' } });
  t.ok(
    idempotentAnswers.length >= 45 && idempotentAnswers.every((s) => s === 200),
    `an idempotent function's lost calls ran again: all ${idempotentAnswers.length} answered 200`,
  );
  t.ok(statuses.length >= 90, `the load ran (${statuses.length} calls)`);

  t.ok(
    await eventually(async () => {
      const list = await workers();
      return list.length === 1 && list[0]?.alive === true;
    }, 10_000),
    'the killed node is recovered and forgotten, the drained one left',
  );
  const records = await Promise.all(
    asyncIds.map(async (id) => {
      // A call that failed on a node as it went away waits for its retry (1 s, then 2 s) and then,
      // like any call, up to SKIFF_QUEUE_WAIT_MS for an instance: give it that long.
      let record: { status: string; error?: unknown } = { status: '' };
      for (let i = 0; i < 300; i++) {
        record = (await (await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth })).json()) as { status: string; error?: unknown };
        if (record.status === 'succeeded' || record.status === 'failed') return record.status;
        await sleep(100);
      }
      return `unfinished (${id}: ${JSON.stringify(record)})`;
    }),
  );
  t.same([...new Set(records)], ['succeeded'], `every async call succeeded, on another node if need be (${records.length} calls)`);
  t.equal((await api.invoke('work', { n: 0, ms: 1 })).status, 200, 'the remaining node serves');

  // The killed node's containers are cleaned up when it starts again (as after a crash), then it stops.
  const restarted = startNode('b', 20_000_000);
  t.ok(await eventually(async () => (await workers()).some((w) => w.id === killedId && w.alive), 30_000), 'a crashed node can rejoin');
  restarted.kill('SIGTERM');
  t.equal(((await once(restarted, 'exit')) as [number | null])[0], 0);
});
