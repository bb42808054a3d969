/**
 * `npm start`, after infra/system/prepare.sh: brings the whole platform up on this machine —
 * private Redis, PostgreSQL and image registry under the state directory (unless REDIS_URL /
 * DATABASE_URL / REGISTRY_URL name existing ones), the schema, the runtime base images built and
 * published to the registry, then a gateway, a scheduler and workers
 * as child processes — and prints the gateway's two origins (the API and dashboard; function URLs).
 *
 * Every process it starts is supervised (supervisor.ts): one that dies is started again, with the
 * same data directory and port, after a backoff (SKIFF_RESTART_DELAY_MS, 0.5 s, doubling to 30 s; reset after 30 s up),
 * while the others keep serving. A worker exits 0 only when an operator drained it: it is not
 * restarted. The children run in process groups of their own, so a Ctrl-C at the terminal reaches
 * the bring-up alone, which stops them in order: SIGINT/SIGTERM/SIGHUP stop supervision, then the
 * gateway (waiting for its drain), the scheduler, the workers (they destroy their containers) and
 * the servers, and leaves no container, mount, cgroup or process behind. A second start reuses
 * the state.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config.js';
import { ApiKeys } from '../db/api-keys.js';
import { openPlatformKeys } from '../secrets/platform-key.js';
import { migrate, openDatabase } from '../db/database.js';
import { publishRuntimeImages } from '../images/base-images.js';
import { RegistryClient } from '../registry/client.js';
import { createLogger } from '../log.js';
import { startRegistry } from '../services/registry-server.js';
import { startPostgres } from '../services/postgres-server.js';
import { startProcess, waitFor, type OwnedProcess } from '../services/process.js';
import { startRedis } from '../services/redis-server.js';
import { ProcessRecord } from './process-record.js';
import { Supervised, type SupervisedOptions } from './supervisor.js';
import { mountPointsUnder } from '../../worker/sandbox/mounts.js';
import { Launcher } from '../../worker/process/launcher.js';
import { OciRuntime } from '../../worker/sandbox/runc.js';
import { functionUrl } from '../../gateway/http/function-origin.js';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const say = (message: string): void => console.log(`skiff: ${message}`);

const config = loadConfig();
await mkdir(config.stateDir, { recursive: true, mode: 0o755 });
say(`state in ${config.stateDir}`);

const log = createLogger('bring-up', config.logLevel);

// What a bring-up that was itself killed left running (its children outlive it) is ended first.
const record = new ProcessRecord({ file: join(config.stateDir, 'processes.json'), stateDir: config.stateDir });
try {
  const ended = await record.claim();
  if (ended.length > 0) say(`ended what the last bring-up left running: ${ended.join(', ')}`);
} catch (error) {
  console.error(`skiff: could not start: ${(error as Error).message}`);
  process.exit(1);
}

/**
 * How long a gateway may take to stop: it lets calls in flight finish for up to queueWaitMs + 5 s
 * (gateway/server.ts), then flushes its invocation records and closes its clients.
 */
const GATEWAY_STOP_MS = config.gateway.queueWaitMs + 5_000 + 10_000;
/** The scheduler and the workers (a worker destroys its containers). */
const COMPONENT_STOP_MS = 30_000;
/** Redis writes its snapshot, PostgreSQL checkpoints. */
const SERVER_STOP_MS = 30_000;

/** In start order; stopped in reverse. */
const supervised: Supervised[] = [];
let stopping = false;

/** Starts `options.name` under supervision, logging what becomes of it; resolves once its first run is up. */
async function supervise(options: SupervisedOptions): Promise<void> {
  const child = new Supervised({ backoff: { firstMs: config.bringupRestartMs }, ...options });
  const name = options.name;
  child.on('started', ({ pid, run }) => {
    record.started(name, pid);
    if (run === 1) log.info({ process: name, pid }, 'process started');
    else log.info({ process: name, pid, restarts: run - 1 }, 'process restarted');
  });
  child.on('exited', ({ pid, code, signal, upMs, restartInMs, final }) => {
    if (restartInMs !== undefined) log.warn({ process: name, pid, code, signal, upMs, restartInMs }, 'process exited; restarting');
    else if (final) log.info({ process: name, pid, code }, 'process left (a drained worker exits 0); not restarted; the rest keeps running');
    else if (!stopping) log.warn({ process: name, pid, code, signal }, 'process exited; not restarted');
  });
  child.on('startFailed', ({ error, restartInMs }) => log.error({ process: name, err: error, restartInMs }, 'process could not be started; retrying'));
  supervised.push(child);
  await child.start();
}

async function stopAll(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => undefined);
  stopping = true;
  say('stopping');
  // No restarts from now on; then the gateway first (no new calls), the scheduler, the workers
  // (they destroy their containers), and the servers last.
  for (const child of supervised) child.hold();
  for (const child of [...supervised].reverse()) {
    await child.stop();
    say(`${child.name} stopped`);
  }
  const left = await leftovers();
  if (left.length === 0) record.clear();
  if (left.length === 0) say('stopped: no containers, mounts or processes left');
  else say(`stopped, but these are left: ${left.join(', ')}`);
  process.exit(left.length === 0 ? code : code || 1);
}
/** What a clean stop must not leave: the worker's containers and any mount under the state dir. */
async function leftovers(): Promise<string[]> {
  const ids =
    config.bringupWorkers === 1
      ? [config.worker.id]
      : Array.from({ length: config.bringupWorkers }, (_, i) => `${config.worker.id.replace(/-1$/, '')}-${i + 1}`);
  const roots = ids.map((id) => (config.bringupWorkers === 1 ? join(config.worker.runDir, 'runc') : `/run/skiff/${id}/runc`));
  const launcher = new Launcher();
  const containers = (
    await Promise.all(roots.map((root) => new OciRuntime({ binary: config.worker.runcPath, root, launcher }).list())).finally(() => launcher.stop())
  ).flat();
  const mounts = await mountPointsUnder([config.stateDir]);
  const processes = supervised.filter((child) => child.pid !== undefined).map((child) => `process ${child.name} (pid ${child.pid})`);
  return [...containers.map((c) => `container ${c.id}`), ...mounts.map((m) => `mount ${m}`), ...processes];
}

// The children have process groups of their own: if this process ends without stopping them (a
// crash of the bring-up itself), they are at least told to stop.
process.on('exit', () => {
  for (const child of supervised) child.kill('SIGTERM');
});
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stopAll(0));

try {
  let redisUrl = config.redisUrl;
  if (!config.external.redis) {
    const port = Number(new URL(config.redisUrl).port || 6379);
    const dir = join(config.stateDir, 'redis');
    say(`starting Redis on 127.0.0.1:${port}`);
    await supervise({
      name: 'redis',
      start: async (signal) => (await startRedis({ dir, port, persist: true, detached: true, signal })).process,
      stopGraceMs: SERVER_STOP_MS,
    });
    redisUrl = `redis://127.0.0.1:${port}`;
  }
  let databaseUrl = config.databaseUrl;
  if (!config.external.database) {
    const url = new URL(config.databaseUrl);
    const port = Number(url.port || 5432);
    const database = url.pathname.slice(1) || 'skiff';
    const user = url.username || 'skiff';
    say(`starting PostgreSQL on 127.0.0.1:${port}`);
    await supervise({
      name: 'postgres',
      start: async (signal) =>
        (await startPostgres({ dir: join(config.stateDir, 'postgres'), port, database, user, durable: true, detached: true, signal })).process,
      // PostgreSQL's "fast" shutdown: disconnect clients, stop cleanly.
      stopSignal: 'SIGINT',
      stopGraceMs: SERVER_STOP_MS,
    });
    databaseUrl = `postgres://${user}@127.0.0.1:${port}/${database}`;
  }
  let registryUrl = config.registry.url;
  if (!config.external.registry) {
    const port = Number(new URL(registryUrl).port || 80);
    say(`starting the image registry on 127.0.0.1:${port}`);
    await supervise({
      name: 'registry',
      start: async (signal) => (await startRegistry({ dir: join(config.stateDir, 'registry'), port, detached: true, signal })).process,
      stopGraceMs: SERVER_STOP_MS,
    });
    registryUrl = `http://127.0.0.1:${port}`;
  }
  const db = openDatabase(databaseUrl, config.databaseSchema, 1);
  const applied = await migrate(db, config.databaseSchema);
  say(applied.length > 0 ? `database schema migrated (${applied.join(', ')})` : 'database schema up to date');
  const keyFile = join(config.stateDir, 'admin.key');
  // The platform key seals the secrets AWS signatures are verified with (docs/SECURITY.md).
  const platformKey = await openPlatformKeys(config.platformKey);
  say(
    platformKey.created
      ? `made the platform key ${config.platformKey.file} (keep it, and back it up with the database)`
      : `platform key: ${config.platformKey.file}`,
  );
  const apiKeys = new ApiKeys(db, platformKey.box);
  if ((await apiKeys.count()) === 0) {
    const { key } = await apiKeys.create({ name: 'admin (bring-up)', tenant: 'default', role: 'admin' });
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    say(`created the first admin API key (also in ${keyFile}):\n\n    export SKIFF_API_KEY=${key}\n`);
  } else if (existsSync(keyFile)) {
    say(`admin API key: ${keyFile}`);
  }

  await db.end();

  say('building and publishing the runtime base images (the first time takes a minute)');
  const { published, unavailable } = await publishRuntimeImages(
    new RegistryClient({ ...config.registry, url: registryUrl }),
    { imagesDir: config.imagesDir, nodeDir: config.nodeDir },
    log,
    say,
  );
  for (const base of published) say(`${base.runtime} image ${base.repository}@${base.digest.slice(0, 19)}… ready`);
  for (const { runtime, reason } of unavailable) say(`${runtime} is not offered (its functions cannot run until it is): ${reason}`);

  const env = { ...process.env, REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, REGISTRY_URL: registryUrl, SKIFF_STATE_DIR: config.stateDir };
  // SKIFF_WORKERS nodes on this host, each with its own id, uid range and metrics port.
  const workers = Array.from({ length: config.bringupWorkers }, (_, i): { name: string; env: Record<string, string> } => ({
    name: config.bringupWorkers === 1 ? 'worker' : `worker ${config.worker.id.replace(/-1$/, '')}-${i + 1}`,
    env:
      config.bringupWorkers === 1
        ? {}
        : {
            SKIFF_WORKER_ID: `${config.worker.id.replace(/-1$/, '')}-${i + 1}`,
            SKIFF_UID_BASE: String(config.worker.uidBase + i * 2 ** 26),
            SKIFF_WORKER_METRICS_PORT: config.workerMetrics.port === 0 ? '0' : String(config.workerMetrics.port + i),
          },
  }));
  const component = (main: string, own: Record<string, string>) => async (): Promise<OwnedProcess> =>
    startProcess(process.execPath, [join(dist, main, 'main.js')], { env: { ...env, ...own }, stdio: ['ignore', 'inherit', 'inherit'], detached: true });
  // A worker that restarts removes what its predecessor left (worker/node.ts) before it rejoins.
  for (const { name, env: own } of workers) {
    await supervise({ name, start: component('worker', own), stopGraceMs: COMPONENT_STOP_MS, isFinal: ({ code }) => code === 0 });
  }
  await supervise({ name: 'scheduler', start: component('scheduler', {}), stopGraceMs: COMPONENT_STOP_MS });
  await supervise({ name: 'gateway', start: component('gateway', {}), stopGraceMs: GATEWAY_STOP_MS });
  const url = `http://${config.gateway.host}:${config.gateway.port}`;
  await waitFor(
    'gateway',
    async () => {
      const res = await fetch(`${url}/healthz`);
      if (!res.ok) throw new Error(`healthz answered ${res.status}`);
    },
    60000,
    200,
  );
  // The functions listener answers a 404 to anything that names no function: then it is up.
  const { host: fnHost, port: fnPort } = config.gateway.functions;
  const functionsListener = `http://${fnHost.includes(':') ? `[${fnHost}]` : fnHost}:${fnPort}`;
  await waitFor(
    'functions listener',
    async () => {
      await (await fetch(`${functionsListener}/`)).arrayBuffer();
    },
    10000,
    200,
  );
  // Two origins: function code never runs where an operator's key is used (docs/SECURITY.md).
  const fnUrls = functionUrl(config, 'skiff-name-placeholder').replace('skiff-name-placeholder', '<name>');
  say(`ready (Ctrl-C stops everything)\n\n    API and dashboard: ${url}\n    function URLs:     ${fnUrls}\n`);
} catch (error) {
  console.error(`skiff: could not start: ${(error as Error).message}`);
  if ((error as Error).cause) console.error(`skiff:   cause: ${String((error as Error).cause)}`);
  await stopAll(1);
}
