/**
 * Faults, on the platform as `npm start` brings it up (`node dist/infra/bringup/main.js`): under
 * steady sync and async load, the worker, the scheduler, the gateway, Redis, PostgreSQL and the
 * registry are SIGKILLed in turn, then Redis is wiped (FLUSHALL) with calls queued. Asserted by
 * conditions: each process comes back and serves; /healthz kept answering while the gateway was
 * up, naming what was down; every sync call got its result or a clear 5xx (or, while the gateway
 * itself was down, a refused connection), none hung; every accepted async call ends `succeeded`
 * (or dead-lettered after its retries), none stays `queued`; Ctrl-C then stops it all, exit 0,
 * nothing left. The measured recovery times are printed (docs/OPERATIONS.md has them).
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
import { Launcher } from '../../worker/process/launcher.js';
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

t.test(
  'under load, SIGKILL each process of the bring-up in turn, then wipe Redis: each comes back, no accepted call is lost; Ctrl-C stops it all',
  async (t) => {
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
      // As in the test platform: the one runtime its functions use is pooled.
      SKIFF_POOL_RUNTIMES: 'nodejs20',
      // As in the test platform: calls make their instances (no instance preloaded at deploy).
      SKIFF_PRELOAD_ON_DEPLOY: '0',
      SKIFF_WORKER_CAPACITY_MB: '2048',
      SKIFF_HEARTBEAT_MS: '200',
      SKIFF_LOG_LEVEL: 'info',
      // Outages long enough to be seen by /healthz polls, and lost jobs re-queued soon.
      SKIFF_RESTART_DELAY_MS: '1500',
      SKIFF_RECONCILE_GRACE_MS: '3000',
      SKIFF_RECONCILE_EVERY_MS: '500',
      SKIFF_RETRY_BACKOFF_MS: '500',
      // A sync call is answered within queue wait + its timeout (5 s, below) + 5 s: at most 25 s,
      // even when Redis lost its job; the callers below call it hung after 60 s.
      SKIFF_QUEUE_WAIT_MS: '15000',
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
        body: JSON.stringify({
          name: 'echo',
          runtime: 'nodejs20',
          handler: 'index.handler',
          timeoutMs: 5000,
          env: { N: String(deploys++) },
          code: { zip: zip.toString('base64') },
        }),
        signal: AbortSignal.timeout(30_000),
      }).catch(() => undefined);
      await res?.arrayBuffer();
      return res?.status ?? 0;
    };
    const invoke = (fn: string, body: unknown, headers: Record<string, string> = {}, timeoutMs = 20_000): Promise<Response> =>
      fetch(`${url}/v1/functions/${fn}/invoke`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth, ...headers },
        body: JSON.stringify(body),
        signal: AbortSignal.timeout(timeoutMs),
      });
    const call = async (): Promise<number> => {
      const res = await invoke('echo', { n: 1 }).catch(() => undefined);
      await res?.arrayBuffer();
      return res?.status ?? 0;
    };
    const healthy = async (): Promise<boolean> => {
      const res = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) }).catch(() => undefined);
      await res?.arrayBuffer();
      return res?.status === 200;
    };
    const record = async (id: string): Promise<{ status?: string; attempt?: number }> => {
      const res = await fetch(`${url}/v1/invocations/${id}`, { headers: auth, signal: AbortSignal.timeout(10_000) }).catch(() => undefined);
      return res?.ok ? ((await res.json()) as { status: string }) : {};
    };
    t.equal(await deploy(), 201, 'a function is deployed');
    t.equal(await call(), 200, 'it answers');

    // Steady load from this process: two sync callers, one async submitter, one /healthz poller.
    const load = new Load(url, auth);
    const loops = load.start();

    // The worker: SIGKILLed, its containers stay behind; the next run removes them and rejoins.
    const launcher = new Launcher();
    t.teardown(() => launcher.stop());
    const oci = new OciRuntime({ binary: 'runc', root: join(runDir, 'runc'), launcher });
    const before = new Set((await oci.list()).map((c) => c.id));
    t.ok(before.size > 0, `the worker runs containers (${before.size})`);
    const outages: Outage[] = [];
    const worker = pidOf('worker')!;
    let killedAt = Date.now();
    process.kill(worker, 'SIGKILL');
    t.ok(await eventually(() => restarted('worker', worker), 30_000), 'the worker is started again');
    const workerBackMs = Date.now() - killedAt;
    t.ok(
      await eventually(
        async () => {
          const res = await fetch(`${url}/v1/workers`, { headers: auth });
          const { workers } = (await res.json()) as { workers: Array<{ id: string; at: number }> };
          return workers.some((w) => w.id === workerId && w.at > killedAt + 200);
        },
        60_000,
        200,
      ),
      'its heartbeat is back',
    );
    t.ok(await eventually(async () => (await call()) === 200, 60_000, 250), 'calls are answered again');
    outages.push({ name: 'worker', killedAt, restartedMs: workerBackMs, servingMs: Date.now() - killedAt });
    const after = new Set((await oci.list()).map((c) => c.id));
    t.same(
      [...before].filter((id) => after.has(id)),
      [],
      "none of its predecessor's containers is left",
    );

    // Then each of the others; what serves again is checked through the gateway.
    for (const name of ['scheduler', 'gateway', 'redis', 'postgres', 'registry']) {
      const pid = pidOf(name);
      if (!t.ok(pid, `the ${name}'s pid was logged`)) continue;
      killedAt = Date.now();
      process.kill(pid!, 'SIGKILL');
      t.ok(await eventually(() => restarted(name, pid!), 60_000), `the ${name} is started again`);
      const restartedMs = Date.now() - killedAt;
      const serves = name === 'registry' ? async () => (await deploy()) === 201 : async () => (await healthy()) && (await call()) === 200;
      t.ok(await eventually(serves, 60_000, 250), name === 'registry' ? 'deploys push images again' : `/healthz and calls answer again`);
      outages.push({ name, killedAt, restartedMs, servingMs: Date.now() - killedAt });
    }
    const exit = supervision.find((l) => l.msg === 'process exited; restarting' && l.process === 'scheduler');
    t.equal(exit?.restartInMs, 1500, 'a restart waits the first backoff (SKIFF_RESTART_DELAY_MS), and says so');

    // Redis loses everything with calls queued: 24 one-second calls on 8 slots (256 of 2048 MB).
    const slow = await fetch(`${url}/v1/functions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...auth },
      body: JSON.stringify({
        name: 'slowq',
        runtime: 'nodejs20',
        handler: 'index.handler',
        memoryMb: 256,
        code: {
          zip: (await zipFiles({ 'index.js': 'exports.handler = async (e) => { await new Promise((r) => setTimeout(r, 1000)); return e; };' })).toString(
            'base64',
          ),
        },
      }),
    });
    t.equal(slow.status, 201, 'a slow function is deployed');
    const queuedIds: string[] = [];
    for (let n = 0; n < 24; n++) {
      const res = await invoke('slowq', { n }, { 'x-skiff-invocation-type': 'async' });
      if (res.status === 202) queuedIds.push(((await res.json()) as { id: string }).id);
      else await res.arrayBuffer();
    }
    t.equal(queuedIds.length, 24, 'its calls are accepted');
    load.accepted.push(...queuedIds);
    const waiting = (await Promise.all(queuedIds.map(record))).filter((r) => r.status === 'queued').length;
    t.ok(waiting > 0, `calls wait in the queues when Redis is wiped (${waiting} of ${queuedIds.length})`);
    killedAt = Date.now();
    sh(`ip netns exec ${net} redis-cli -p 6390 FLUSHALL`);
    t.ok(
      await eventually(async () => (await Promise.all(queuedIds.map(record))).every((r) => r.status === 'succeeded'), 120_000, 500),
      'every call Redis lost runs (the reconciler queued them again from PostgreSQL)',
    );
    outages.push({ name: 'FLUSHALL', killedAt, restartedMs: 0, servingMs: Date.now() - killedAt });
    t.ok(await eventually(async () => (await healthy()) && (await call()) === 200, 60_000, 250), 'and the platform serves');

    load.running = false;
    await loops;

    // What the callers saw.
    const phase = (at: number): string => outages.filter((o) => o.killedAt <= at).at(-1)?.name ?? 'before the faults';
    const hung = load.sync.filter((c) => c.outcome === 'hung').map((c) => ({ ...c, after: phase(c.at) }));
    t.same(hung, [], 'no sync call hung (each was answered within 60 s)');
    const unclear = load.sync.filter((c) => c.outcome === 'answered' && c.status !== 200 && !(c.status >= 500 && c.code));
    t.same(unclear, [], 'every sync call got its result or a 5xx naming an error code');
    const refusedOutside = load.sync.filter((c) => c.outcome === 'no connection' && !within(outages, 'gateway', c.endedAt));
    t.same(refusedOutside, [], 'connections failed only while the gateway itself was down');
    const healthHung = load.health.filter((h) => h.outcome === 'hung');
    t.same(healthHung, [], '/healthz never hung (each answered within 5 s)');
    for (const dependency of ['redis', 'postgres']) {
      const said = load.health.some((h) => within(outages, dependency, h.at) && h.status === 503 && h.down?.includes(dependency));
      t.ok(said, `/healthz said ${dependency} was down while it was`);
    }
    const healthElsewhere = load.health.filter((h) => h.outcome === 'no connection' && !within(outages, 'gateway', h.endedAt));
    t.same(healthElsewhere, [], '/healthz kept answering while the gateway was up');

    // Every accepted async call ends: succeeded, or failed and dead-lettered after its retries.
    const ends = new Map<string, string | undefined>();
    t.ok(
      await eventually(
        async () => {
          for (const id of load.accepted) if (!['succeeded', 'failed'].includes(ends.get(id) ?? '')) ends.set(id, (await record(id)).status);
          return [...ends.values()].every((s) => s === 'succeeded' || s === 'failed');
        },
        180_000,
        1000,
      ),
      `every accepted async call ended (${load.accepted.length} accepted)`,
    );
    const stuck = [...ends].filter(([, s]) => s !== 'succeeded' && s !== 'failed');
    t.same(stuck, [], 'none stays queued or running');
    const failed = [...ends].filter(([, s]) => s === 'failed').map(([id]) => id);
    if (failed.length > 0) {
      const letters = (await (await fetch(`${url}/v1/functions/echo/dead-letters`, { headers: auth })).json()) as { deadLetters: Array<{ id: string }> };
      t.same(
        failed.filter((id) => !letters.deadLetters.some((l) => l.id === id)),
        [],
        'a failed one is in the dead-letter list',
      );
    }
    // Duplicate runs (at least once: a call queued again whose first run also ended), by when they were seen.
    const duplicateTimes = first.output
      .split('\n')
      .filter((line) => line.startsWith('{') && line.includes('ran again after it had ended'))
      .map((line) => (JSON.parse(line) as { time: number }).time);
    const duplicates = duplicateTimes.length;

    // The measurements, for docs/OPERATIONS.md.
    const byOutcome = (calls: SyncCall[]): string =>
      JSON.stringify(
        Object.fromEntries(
          [...new Set(calls.map((c) => `${c.outcome} ${c.status} ${c.code ?? ''}`.trim()))].map((k) => [
            k,
            calls.filter((c) => `${c.outcome} ${c.status} ${c.code ?? ''}`.trim() === k).length,
          ]),
        ),
      );
    for (const o of outages) {
      const during = load.health.filter((h) => h.at >= o.killedAt && h.at <= o.killedAt + o.servingMs && h.outcome === 'answered');
      const worst = Math.max(0, ...during.map((h) => h.ms));
      const said503 = during.filter((h) => h.status === 503).length;
      const calls = load.sync.filter((c) => c.endedAt >= o.killedAt && c.endedAt <= o.killedAt + o.servingMs);
      const next = outages[outages.indexOf(o) + 1]?.killedAt ?? Infinity;
      const dups = duplicateTimes.filter((at) => at >= o.killedAt && at < next).length;
      t.comment(
        `${o.name}: restarted ${o.restartedMs} ms after SIGKILL, serving after ${o.servingMs} ms; /healthz answered ${during.length} times, slowest ${worst} ms, ${said503} × 503; sync calls ended meanwhile ${byOutcome(calls)}; ${dups} duplicate runs seen from then until the next fault`,
      );
    }
    const t0 = load.sync[0]?.at ?? 0;
    // The whole story, when something failed.
    if (!t.passing())
      t.comment(
        `sync timeline (s from the first call: start-end outcome status): ${load.sync.map((c) => `${((c.at - t0) / 1000).toFixed(1)}-${((c.endedAt - t0) / 1000).toFixed(1)} ${c.outcome[0]}${c.status}`).join(', ')}`,
      );
    t.comment(`faults at (s): ${outages.map((o) => `${o.name} ${((o.killedAt - t0) / 1000).toFixed(1)}+${(o.servingMs / 1000).toFixed(1)}`).join(', ')}`);
    t.comment(
      `sync calls: ${load.sync.length} ${byOutcome(load.sync)}; async: ${load.accepted.length} accepted, ${load.refused} refused (503), ${failed.length} dead-lettered; ${duplicates} duplicate runs`,
    );
    t.ok(await healthy(), 'all is well at the end');

    // The bring-up itself is SIGKILLed: what it started serves on, unsupervised; the next start
    // ends it and starts afresh.
    first.proc.kill('SIGKILL');
    await first.exited;
    t.ok(await healthy(), 'its platform serves on without it');
    const second = launch();
    if (!t.ok(await isReady(second), 'a new bring-up with the same state is ready')) return;
    t.match(
      second.output,
      /ended what the last bring-up left running: gateway \(pid \d+\), scheduler .*redis \(pid \d+\)/,
      'after ending what the last one left',
    );
    t.ok(await eventually(async () => (await healthy()) && (await call()) === 200, 60_000, 250), 'and calls are answered');

    // Ctrl-C: at the terminal it reaches the bring-up alone (its children have their own groups).
    const pids = [...seen];
    second.proc.kill('SIGINT');
    t.equal(await second.exited, 0, 'the bring-up exits 0');
    t.match(second.output, /stopped: no containers, mounts or processes left/);
    t.same(
      (await oci.list()).map((c) => c.id),
      [],
      'no container under its runc root',
    );
    t.same(
      pids.filter((pid) => processAlive(pid)),
      [],
      'none of the processes either bring-up started lives on',
    );
    t.notOk(existsSync(join(stateDir, 'processes.json')), 'a clean stop leaves no process record');
    if (!t.passing()) t.comment(first.output.slice(-3000), second.output.slice(-3000));
  },
);

interface Outage {
  name: string;
  killedAt: number;
  restartedMs: number;
  servingMs: number;
}

/** Whether `at` fell in the outage of `name` (from its kill until it served again). */
function within(outages: Outage[], name: string, at: number): boolean {
  return outages.some((o) => o.name === name && at >= o.killedAt && at <= o.killedAt + o.servingMs);
}

interface SyncCall {
  at: number;
  /** When it was answered or failed. */
  endedAt: number;
  outcome: 'answered' | 'hung' | 'no connection';
  status: number;
  code?: string;
}

interface HealthAnswer {
  at: number;
  endedAt: number;
  ms: number;
  outcome: 'answered' | 'hung' | 'no connection';
  status?: number;
  down?: string[];
}

/** Steady load on the platform until `running` is cleared: what every caller saw. */
class Load {
  running = true;
  readonly sync: SyncCall[] = [];
  readonly accepted: string[] = [];
  refused = 0;
  readonly health: HealthAnswer[] = [];

  constructor(
    private readonly url: string,
    private readonly auth: Record<string, string>,
  ) {}

  start(): Promise<unknown> {
    return Promise.all([this.syncCaller(), this.syncCaller(), this.asyncCaller(), this.healthPoller()]);
  }

  private async syncCaller(): Promise<void> {
    while (this.running) {
      const at = Date.now();
      try {
        // Generous: a call is "hung" only if nothing answers it in a minute.
        const res = await this.invoke({}, 60_000);
        const text = await res.text();
        let code: string | undefined;
        if (res.status !== 200) code = (JSON.parse(text) as { error?: { code?: string } }).error?.code;
        this.sync.push({ at, endedAt: Date.now(), outcome: 'answered', status: res.status, ...(code ? { code } : {}) });
      } catch (error) {
        this.sync.push({ at, endedAt: Date.now(), outcome: (error as Error).name === 'TimeoutError' ? 'hung' : 'no connection', status: 0 });
        await sleep(100);
      }
      await sleep(20);
    }
  }

  private async asyncCaller(): Promise<void> {
    while (this.running) {
      try {
        const res = await this.invoke({ 'x-skiff-invocation-type': 'async' }, 60_000);
        if (res.status === 202) this.accepted.push(((await res.json()) as { id: string }).id);
        else {
          await res.arrayBuffer();
          if (res.status === 503) this.refused++;
        }
      } catch {
        // Not accepted (the gateway was down): nothing to keep.
      }
      await sleep(100);
    }
  }

  private async healthPoller(): Promise<void> {
    while (this.running) {
      const at = Date.now();
      const started = performance.now();
      try {
        const res = await fetch(`${this.url}/healthz`, { signal: AbortSignal.timeout(5000) });
        const body = (await res.json()) as { down?: string[] };
        this.health.push({
          at,
          endedAt: Date.now(),
          ms: Math.round(performance.now() - started),
          outcome: 'answered',
          status: res.status,
          ...(body.down ? { down: body.down } : {}),
        });
      } catch (error) {
        this.health.push({
          at,
          endedAt: Date.now(),
          ms: Math.round(performance.now() - started),
          outcome: (error as Error).name === 'TimeoutError' ? 'hung' : 'no connection',
        });
      }
      await sleep(100);
    }
  }

  private invoke(headers: Record<string, string>, timeoutMs: number): Promise<Response> {
    return fetch(`${this.url}/v1/functions/echo/invoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...this.auth, ...headers },
      body: '{"n":1}',
      signal: AbortSignal.timeout(timeoutMs),
    });
  }
}
