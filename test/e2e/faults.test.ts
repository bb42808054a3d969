/**
 * The bring-up (`node dist/infra/bringup/main.js`, what `npm start` runs after preparing the
 * machine) heals itself: the worker, the scheduler, the gateway, Redis, PostgreSQL and the registry
 * are SIGKILLed in turn and each comes back and serves; Ctrl-C (SIGINT) then stops it all, exit 0,
 * nothing left.
 *
 * It runs as `npm start` does, private servers included, on its default ports, but in a network
 * namespace of its own (`nsenter --net`: file systems, runc state and cgroups stay this host's), so
 * it meets no developer's `npm start` (8080/8081/6390/5440/5050) and no other test. This test
 * reaches the gateway over a veth pair; its own state directory and worker id keep the rest apart.
 */
import t from 'tap';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chmod, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { processAlive } from '../../infra/services/process.js';
import { OciRuntime } from '../../worker/sandbox/runc.js';
import { eventually, sleep } from '../support/api.js';
import { zipFiles } from '../support/zip.js';

const sh = (script: string): void => void execFileSync('sh', ['-ec', script]);

interface Bringup {
  proc: ChildProcess;
  /** Everything it printed so far. */
  output: string;
  /** Its own log lines (component "bring-up"). */
  supervision: LogLine[];
  exited: Promise<number | null>;
}

interface LogLine {
  component?: string;
  msg?: string;
  process?: string;
  pid?: number;
  restarts?: number;
  restartInMs?: number;
}

t.test('SIGKILL each process of the bring-up in turn: each comes back and the platform serves; Ctrl-C stops it all', async (t) => {
  const root = process.env.SKIFF_TEST_STATE ?? tmpdir();
  const tag = `${process.env.SKIFF_TEST_RUN ?? 't'}bu${process.pid}`;
  const stateDir = await mkdtemp(join(root, `bringup-${tag}-`));
  // PostgreSQL runs as the postgres user, containers as unprivileged ones: both must reach it.
  await chmod(stateDir, 0o755);
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const workerId = `w-${tag}`;
  const runDir = `/run/skiff/${workerId}`;

  // Its network: a namespace with a veth pair to this host, 198.18.<n>.1 here and .2 there.
  const net = `skb${process.pid % 100000}`;
  const n = process.pid % 250;
  const host = `198.18.${n}.2`;
  t.teardown(() => sh(`ip netns del ${net} 2>/dev/null || true; ip link del ${net}h 2>/dev/null || true`));
  sh(`ip netns add ${net}
    ip link add ${net}h type veth peer name ${net}n
    ip link set ${net}n netns ${net}
    ip addr add 198.18.${n}.1/30 dev ${net}h && ip link set ${net}h up
    ip netns exec ${net} ip addr add ${host}/30 dev ${net}n
    ip netns exec ${net} ip link set ${net}n up
    ip netns exec ${net} ip link set lo up`);

  const env: NodeJS.ProcessEnv = { ...process.env };
  // The test runner's servers: the bring-up starts its own, as `npm start` does.
  for (const name of ['REDIS_URL', 'DATABASE_URL', 'REGISTRY_URL']) delete env[name];
  Object.assign(env, {
    SKIFF_STATE_DIR: stateDir,
    // The runner's: the runtime images' root file systems are built there already.
    SKIFF_IMAGES_DIR: join(root, 'images'),
    SKIFF_WORKER_ID: workerId,
    SKIFF_RUN_DIR: runDir,
    SKIFF_GATEWAY_HOST: host,
    SKIFF_POOL_SIZE: '1',
    SKIFF_WORKER_CAPACITY_MB: '2048',
    SKIFF_HEARTBEAT_MS: '200',
    SKIFF_LOG_LEVEL: 'info',
  });
  // Every process any bring-up of this test logged: none may outlive it.
  const seen = new Set<number>();
  const launched: Bringup[] = [];
  const launch = (): Bringup => {
    const proc = spawn('nsenter', [`--net=/run/netns/${net}`, process.execPath, 'dist/infra/bringup/main.js'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    const run: Bringup = { proc, output: '', supervision: [], exited: new Promise((resolve) => proc.once('exit', (code) => resolve(code))) };
    let partial = '';
    proc.stdout.on('data', (chunk: Buffer) => {
      run.output += chunk.toString();
      partial += chunk.toString();
      const lines = partial.split('\n');
      partial = lines.pop() ?? '';
      for (const line of lines) {
        if (!line.startsWith('{')) continue;
        const parsed = JSON.parse(line) as LogLine;
        if (parsed.component !== 'bring-up') continue;
        run.supervision.push(parsed);
        if (parsed.pid !== undefined && parsed.process) seen.add(parsed.pid);
      }
    });
    proc.stderr.on('data', (chunk: Buffer) => (run.output += chunk.toString()));
    launched.push(run);
    return run;
  };
  t.teardown(async () => {
    for (const { proc, exited } of launched) {
      if (proc.exitCode !== null || proc.signalCode !== null) continue;
      proc.kill('SIGTERM');
      await Promise.race([exited, sleep(60_000)]);
      proc.kill('SIGKILL');
    }
    // Their children have process groups of their own: none may outlive a failed test.
    for (const pid of seen) if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  });
  const isReady = async (run: Bringup): Promise<boolean> => {
    await eventually(() => run.output.includes('skiff: ready') || run.proc.exitCode !== null, 150_000, 100);
    if (!run.output.includes('skiff: ready')) t.comment(run.output.slice(-4000));
    return run.output.includes('skiff: ready');
  };

  const first = launch();
  const { supervision } = first;
  if (!t.ok(await isReady(first), 'the bring-up is ready')) return;
  const url = `http://${host}:8080`;
  const key = (await readFile(join(stateDir, 'admin.key'), 'utf8')).trim();
  const auth = { authorization: `Bearer ${key}` };
  const pidOf = (name: string): number | undefined =>
    supervision.filter((l) => l.process === name && l.pid !== undefined && /^process (started|restarted)$/.test(l.msg ?? '')).at(-1)?.pid;
  const restarted = (name: string, after: number): boolean => supervision.some((l) => l.process === name && l.msg === 'process restarted' && l.pid !== after);

  const zip = await zipFiles({ 'index.js': 'exports.handler = async (event) => ({ echo: event });' });
  let deploys = 0;
  const deploy = async (): Promise<number> => {
    const res = await fetch(`${url}/v1/functions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      // A new version each time: its image is built and pushed to the registry.
      body: JSON.stringify({ name: 'echo', runtime: 'nodejs20', handler: 'index.handler', env: { N: String(deploys++) }, code: { zip: zip.toString('base64') } }),
      signal: AbortSignal.timeout(30_000),
    }).catch(() => undefined);
    await res?.arrayBuffer();
    return res?.status ?? 0;
  };
  const call = async (): Promise<number> => {
    const res = await fetch(`${url}/v1/functions/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: '{"n":1}',
      signal: AbortSignal.timeout(20_000),
    }).catch(() => undefined);
    await res?.arrayBuffer();
    return res?.status ?? 0;
  };
  const healthy = async (): Promise<boolean> => {
    const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
    await res?.arrayBuffer();
    return res?.status === 200;
  };
  t.equal(await deploy(), 201, 'a function is deployed');
  t.equal(await call(), 200, 'it answers');

  // The worker: SIGKILLed, its containers stay behind; the next run removes them and rejoins.
  const oci = new OciRuntime({ binary: 'runc', root: join(runDir, 'runc') });
  const before = new Set((await oci.list()).map((c) => c.id));
  t.ok(before.size > 0, `the worker runs containers (${before.size})`);
  const worker = pidOf('worker')!;
  let killedAt = Date.now();
  process.kill(worker, 'SIGKILL');
  t.ok(await eventually(() => restarted('worker', worker), 30_000), 'the worker is started again');
  const workerBackMs = Date.now() - killedAt;
  t.ok(
    await eventually(async () => {
      const res = await fetch(`${url}/v1/workers`, { headers: auth });
      const { workers } = (await res.json()) as { workers: Array<{ id: string; at: number }> };
      return workers.some((w) => w.id === workerId && w.at > killedAt + 200);
    }, 60_000, 200),
    'its heartbeat is back',
  );
  const heartbeatBackMs = Date.now() - killedAt;
  t.ok(await eventually(async () => (await call()) === 200, 60_000, 250), 'calls are answered again');
  const callsBackMs = Date.now() - killedAt;
  const after = new Set((await oci.list()).map((c) => c.id));
  t.same([...before].filter((id) => after.has(id)), [], "none of its predecessor's containers is left");
  t.comment(`worker: restarted ${workerBackMs} ms after SIGKILL, heartbeat back ${heartbeatBackMs} ms, calls answered ${callsBackMs} ms`);

  // Then each of the others; what serves again is checked through the gateway.
  for (const name of ['scheduler', 'gateway', 'redis', 'postgres', 'registry']) {
    const pid = pidOf(name);
    if (!t.ok(pid, `the ${name}'s pid was logged`)) continue;
    killedAt = Date.now();
    process.kill(pid!, 'SIGKILL');
    t.ok(await eventually(() => restarted(name, pid!), 60_000), `the ${name} is started again`);
    const backMs = Date.now() - killedAt;
    const serves = name === 'registry' ? async () => (await deploy()) === 201 : async () => (await healthy()) && (await call()) === 200;
    t.ok(await eventually(serves, 60_000, 250), name === 'registry' ? 'deploys push images again' : `/healthz and calls answer again`);
    t.comment(`${name}: restarted ${backMs} ms after SIGKILL, serving ${Date.now() - killedAt} ms`);
  }
  const exit = supervision.find((l) => l.msg === 'process exited; restarting' && l.process === 'scheduler');
  t.equal(exit?.restartInMs, 500, 'a restart waits the first backoff, and says so');
  t.ok(await healthy(), 'all is well at the end');

  // The bring-up itself is SIGKILLed: what it started serves on, unsupervised; the next start
  // ends it and starts afresh.
  first.proc.kill('SIGKILL');
  await first.exited;
  t.ok(await healthy(), 'its platform serves on without it');
  const second = launch();
  if (!t.ok(await isReady(second), 'a new bring-up with the same state is ready')) return;
  t.match(second.output, /ended what the last bring-up left running: gateway \(pid \d+\), scheduler .*redis \(pid \d+\)/, 'after ending what the last one left');
  t.ok(await eventually(async () => (await healthy()) && (await call()) === 200, 60_000, 250), 'and calls are answered');

  // Ctrl-C: at the terminal it reaches the bring-up alone (its children have their own groups).
  const pids = [...seen];
  second.proc.kill('SIGINT');
  t.equal(await second.exited, 0, 'the bring-up exits 0');
  t.match(second.output, /stopped: no containers, mounts or processes left/);
  t.same((await oci.list()).map((c) => c.id), [], 'no container under its runc root');
  t.same(pids.filter((pid) => processAlive(pid)), [], 'none of the processes either bring-up started lives on');
  t.notOk(existsSync(join(stateDir, 'processes.json')), 'a clean stop leaves no process record');
  if (!t.passing()) t.comment(first.output.slice(-3000), second.output.slice(-3000));
});
