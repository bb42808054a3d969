/**
 * `node dist/bench/pool-burst.js [--calls 100] [--sleep-ms 3000] [--first-calls 10]`: the burst on the platform as
 * `npm start` runs it. Private Redis, PostgreSQL and registry (as the bench starts them), then the
 * bring-up itself (infra/bringup/main.ts: gateway, scheduler and worker as separate processes)
 * on the defaults, with only ports, ids and state made private; SKIFF_POOL_* from this process's
 * environment pass through, to compare pool settings. It waits until the worker's pool is at its
 * target (and prints how fast it filled), deploys a handler that sleeps, sends `--calls`
 * concurrent first calls, and prints how long until all were answered, their statuses, and where
 * the instances came from (pooled or created) from the worker's metrics; then `--first-calls`
 * first calls of new versions, a second after their deploy (preloaded) and after their instance
 * idled out (a pooled cold start). A script, not a test.
 */
import { readFile, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { loadavg } from 'node:os';
import { startBenchServices } from '../infra/bench/services.js';
import { ensureNodeImage } from '../infra/images/nodejs-rootfs.js';
import { freePort, startProcess } from '../infra/services/process.js';
import { nodeSpawnPerCall, runcPerCall } from './baselines.js';
import { deploy, get, invoke, newAgent } from './http.js';
import { percentiles, round } from './stats.js';

const arg = (name: string, fallback: number): number => {
  const at = process.argv.indexOf(`--${name}`);
  return at === -1 ? fallback : Number(process.argv[at + 1]);
};
const CALLS = arg('calls', 100);
const SLEEP_MS = arg('sleep-ms', 3000);
const FIRST_CALLS = arg('first-calls', 10);
const HERE = dirname(fileURLToPath(import.meta.url));
const say = (text: string): void => console.log(`pool-burst: ${text}`);

/** The value of `name{…runtime="nodejs20"…}` (or of `name{…phase="…"…}` with `labels`) in Prometheus text. */
function metric(text: string, name: string, labels: Record<string, string> = { runtime: 'nodejs20' }): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    total += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return total;
}

const services = await startBenchServices();
// The ceiling, in the same run: a bare Node.js start, and `runc run` of it in a container like a sandbox.
const spawned = percentiles(await nodeSpawnPerCall(10));
const image = await ensureNodeImage({
  runtime: 'nodejs20',
  nodeBinary: process.execPath,
  runtimeDir: join(HERE, '..', 'runtime'),
  imagesDir: join(services.root, 'images'),
});
const runc = percentiles(await runcPerCall({ rootfs: image.rootfs, workDir: join(services.root, 'runc-baseline'), calls: 10 }));
say(
  `ceiling: node -e per call p50 ${spawned.p50} ms, p99 ${spawned.p99} ms; runc run of it per call p50 ${runc.p50} ms, p99 ${runc.p99} ms (load ${loadavg()[0]?.toFixed(1)})`,
);
const id = `burst-${process.pid}`;
const ports = { gateway: await freePort(), functions: await freePort(), metrics: await freePort() };
const stateDir = join(services.root, 'state');
const env: Record<string, string> = {
  ...(Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SKIFF_'))) as Record<string, string>),
  ...(Object.fromEntries(Object.entries(process.env).filter(([k]) => k.startsWith('SKIFF_POOL_') || k === 'SKIFF_LOG_LEVEL')) as Record<string, string>),
  REDIS_URL: services.redisUrl,
  DATABASE_URL: services.databaseUrl,
  REGISTRY_URL: services.registryUrl,
  SKIFF_STATE_DIR: stateDir,
  SKIFF_WORKER_ID: id,
  SKIFF_RUN_DIR: `/run/skiff/${id}`,
  SKIFF_GATEWAY_PORT: String(ports.gateway),
  SKIFF_FUNCTIONS_PORT: String(ports.functions),
  SKIFF_WORKER_METRICS_PORT: String(ports.metrics),
};
env.SKIFF_LOG_LEVEL ??= 'warn';
const bringup = startProcess(process.execPath, [join(HERE, '..', 'infra', 'bringup', 'main.js')], {
  env,
  logFile: join(services.root, 'bringup.log'),
});
const url = `http://127.0.0.1:${ports.gateway}`;
const metricsUrl = `http://127.0.0.1:${ports.metrics}/metrics`;
try {
  const began = performance.now();
  let key = '';
  for (;;) {
    if (bringup.hasExited()) throw new Error(`the bring-up exited; see ${join(services.root, 'bringup.log')}`);
    key = (await readFile(join(stateDir, 'admin.key'), 'utf8').catch(() => '')).trim();
    const up = key && (await get(`${url}/healthz`).catch(() => ({ status: 0 }))).status === 200;
    const scraped = up ? await get(metricsUrl).catch(() => ({ status: 0, body: '' })) : undefined;
    if (scraped?.status === 200) break;
    await sleep(200);
  }
  say(`platform up in ${round((performance.now() - began) / 1000, 1)} s`);
  const auth = { authorization: `Bearer ${key}` };

  // The pool fills from the worker's start: sample it until it reaches its target.
  const samples: Array<{ at: number; ready: number }> = [];
  let target = 0;
  for (;;) {
    const text = (await get(metricsUrl)).body;
    // Every runtime's pool: they fill together, sharing the refill's lanes.
    target = metric(text, 'skiff_pool_target', {});
    const ready = metric(text, 'skiff_pool_ready', {});
    samples.push({ at: performance.now(), ready });
    if (target > 0 && ready >= target) break;
    if (performance.now() - began > 600_000) throw new Error(`the pool did not fill in 10 minutes (${ready} of ${target})`);
    await sleep(250);
  }
  const from = samples.find((s) => s.ready >= target * 0.1) ?? samples[0];
  const to = samples.at(-1);
  const fillRate = from && to && to.at > from.at ? (to.ready - from.ready) / ((to.at - from.at) / 1000) : null;
  const created = (await get(metricsUrl)).body;
  const phase = (p: string): number =>
    round((metric(created, 'skiff_sandbox_create_seconds_sum', { phase: p }) / metric(created, 'skiff_sandbox_create_seconds_count', { phase: p })) * 1000, 1);
  say(
    `pool full: ${metric(created, 'skiff_pool_ready')} nodejs20, ${metric(created, 'skiff_pool_ready', { runtime: 'python3.11' })} python3.11; ` +
      `${fillRate === null ? '?' : round(fillRate, 2)} sandboxes/s while filling (refill concurrency ${process.env.SKIFF_POOL_REFILL_CONCURRENCY ?? 'default'}); mean creation ms: ` +
      ['mount', 'overlay', 'task', 'spec', 'runc', 'bootstrap', 'total'].map((p) => `${p} ${phase(p)}`).join(', '),
  );

  const name = 'burst';
  await deploy(
    { url, auth },
    { name, source: `exports.handler = () => new Promise((r) => setTimeout(() => r({}), ${SLEEP_MS}));\n`, timeoutMs: 60_000, maxInstances: CALLS },
  );
  await sleep(500); // the deploy's code fetch on the worker, as a user's first call would find it
  const agent = newAgent(CALLS + 8);
  const started = performance.now();
  const replies = await Promise.all(Array.from({ length: CALLS }, () => invoke(url, name, {}, agent).catch(() => undefined)));
  const allSec = (performance.now() - started) / 1000;
  agent.destroy();
  const statuses: Record<string, number> = {};
  for (const reply of replies) {
    const status = reply ? String(reply.status) : 'no answer';
    statuses[status] = (statuses[status] ?? 0) + 1;
  }
  const ms = replies.filter((r) => r !== undefined).map((r) => r.ms);
  const after = (await get(metricsUrl)).body;
  const kind = (k: string): number => metric(after, 'skiff_cold_start_seconds_count', { phase: 'total', kind: k });
  const meanMs = (name: string, labels: Record<string, string>): number =>
    round((metric(after, `${name}_sum`, labels) / Math.max(1, metric(after, `${name}_count`, labels))) * 1000, 1);
  const p = percentiles(ms);
  say(
    `${CALLS} concurrent first calls (${SLEEP_MS} ms handler): all answered in ${round(allSec, 2)} s; statuses ${JSON.stringify(statuses)}; ` +
      `per call p50 ${round(p.p50 / 1000, 2)} s, max ${round(Math.max(...ms) / 1000, 2)} s; instances pooled ${kind('pooled')}, created ${kind('created')}`,
  );
  say(
    `mean ms per pooled cold start: ${['wait', 'code', 'pool_take', 'bind', 'init', 'total'].map((ph) => `${ph} ${meanMs('skiff_cold_start_seconds', { phase: ph, kind: 'pooled' })}`).join(', ')}; ` +
      `queue wait (gateway to worker) ${meanMs('skiff_queue_wait_seconds', {})}`,
  );

  // First calls of freshly deployed versions, a second after their deploy (the preloaded instance,
  // SKIFF_PRELOAD_ON_DEPLOY), beside first calls after that instance idled out (a pooled cold start).
  const firstCall = async (fn: string, idleTimeoutMs: number, waitMs: number): Promise<{ ms: number; cold: boolean | undefined }> => {
    await deploy({ url, auth }, { name: fn, source: `// ${fn}\nexports.handler = async () => ({});\n`, idleTimeoutMs });
    await sleep(waitMs);
    const reply = await invoke(url, fn);
    if (reply.status !== 200) throw new Error(`${fn} answered ${reply.status}: ${reply.body}`);
    return { ms: reply.ms, cold: reply.cold };
  };
  const preloaded: Array<{ ms: number; cold: boolean | undefined }> = [];
  const evicted: Array<{ ms: number; cold: boolean | undefined }> = [];
  for (let i = 0; i < FIRST_CALLS; i++) preloaded.push(await firstCall(`first-${i}`, 600_000, 1000));
  for (let i = 0; i < FIRST_CALLS; i++) evicted.push(await firstCall(`evicted-${i}`, 1000, 3500));
  const show = (calls: typeof preloaded): string => {
    const q = percentiles(calls.map((c) => c.ms));
    return `p50 ${round(q.p50, 2)} ms, p99 ${round(q.p99, 2)} ms (${calls.filter((c) => c.cold).length} of ${calls.length} cold)`;
  };
  if (FIRST_CALLS > 0) say(`first call 1 s after a deploy: ${show(preloaded)}; first call after the instance idled out: ${show(evicted)}`);
} finally {
  await bringup.stop('SIGINT', 60_000);
  await services.stop();
  await rm(services.root, { recursive: true, force: true });
  // The worker's run directory (runc's state, sockets): empty once it stopped.
  await rm(`/run/skiff/${id}`, { recursive: true, force: true });
}
