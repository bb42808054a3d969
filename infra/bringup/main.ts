/**
 * `npm start`, after infra/system/prepare.sh: brings the whole platform up on this machine —
 * private Redis, PostgreSQL and image registry under the state directory (unless REDIS_URL /
 * DATABASE_URL / REGISTRY_URL name existing ones), the schema, the runtime base images built and
 * published to the registry, then a gateway, a scheduler and workers
 * as child processes — and prints the gateway's two origins (the API and dashboard; function URLs). SIGINT/SIGTERM stops all of it and leaves no
 * container, mount, cgroup or process behind. A second start reuses the state.
 */
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../config.js';
import { ApiKeys } from '../db/api-keys.js';
import { migrate, openDatabase } from '../db/database.js';
import { publishRuntimeImages } from '../images/base-images.js';
import { RegistryClient } from '../registry/client.js';
import { createLogger } from '../log.js';
import { startRegistry, type LocalRegistry } from '../services/registry-server.js';
import { startPostgres, type LocalPostgres } from '../services/postgres-server.js';
import { startProcess, waitFor, type OwnedProcess } from '../services/process.js';
import { startRedis, type LocalRedis } from '../services/redis-server.js';
import { mountPointsUnder } from '../../worker/sandbox/mounts.js';
import { OciRuntime } from '../../worker/sandbox/runc.js';
import { functionUrl } from '../../gateway/http/function-origin.js';

const dist = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const say = (message: string): void => console.log(`skiff: ${message}`);

const config = loadConfig();
await mkdir(config.stateDir, { recursive: true, mode: 0o755 });
say(`state in ${config.stateDir}`);

let redis: LocalRedis | undefined;
let postgres: LocalPostgres | undefined;
let registry: LocalRegistry | undefined;
const components: Array<{ name: string; proc: OwnedProcess }> = [];
let stopping = false;

async function stopAll(code: number): Promise<never> {
  if (stopping) return new Promise<never>(() => undefined);
  stopping = true;
  say('stopping');
  // Gateway first (no new calls), then scheduler, then the worker (destroys its containers).
  for (const { name, proc } of components) {
    await proc.stop('SIGTERM', 30000);
    say(`${name} stopped`);
  }
  await registry?.stop();
  await postgres?.stop();
  await redis?.stop();
  const left = await leftovers();
  if (left.length === 0) say('stopped: no containers, mounts or processes left');
  else say(`stopped, but these are left: ${left.join(', ')}`);
  process.exit(left.length === 0 ? code : code || 1);
}
/** What a clean stop must not leave: the worker's containers and any mount under the state dir. */
async function leftovers(): Promise<string[]> {
  const ids = config.bringupWorkers === 1 ? [config.worker.id] : Array.from({ length: config.bringupWorkers }, (_, i) => `${config.worker.id.replace(/-1$/, '')}-${i + 1}`);
  const roots = ids.map((id) => (config.bringupWorkers === 1 ? join(config.worker.runDir, 'runc') : `/run/skiff/${id}/runc`));
  const containers = (await Promise.all(roots.map((root) => new OciRuntime({ binary: config.worker.runcPath, root }).list()))).flat();
  const mounts = await mountPointsUnder([config.stateDir]);
  return [...containers.map((c) => `container ${c.id}`), ...mounts.map((m) => `mount ${m}`)];
}

for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => void stopAll(0));

try {
  let redisUrl = config.redisUrl;
  if (!config.external.redis) {
    const port = Number(new URL(config.redisUrl).port || 6379);
    say(`starting Redis on 127.0.0.1:${port}`);
    redis = await startRedis({ dir: join(config.stateDir, 'redis'), port, persist: true });
    redisUrl = redis.url;
  }
  let databaseUrl = config.databaseUrl;
  if (!config.external.database) {
    const url = new URL(config.databaseUrl);
    const port = Number(url.port || 5432);
    say(`starting PostgreSQL on 127.0.0.1:${port}`);
    postgres = await startPostgres({ dir: join(config.stateDir, 'postgres'), port, database: url.pathname.slice(1) || 'skiff', user: url.username || 'skiff', durable: true });
    databaseUrl = postgres.url;
  }
  let registryUrl = config.registry.url;
  if (!config.external.registry) {
    const port = Number(new URL(registryUrl).port || 80);
    say(`starting the image registry on 127.0.0.1:${port}`);
    registry = await startRegistry({ dir: join(config.stateDir, 'registry'), port });
    registryUrl = registry.url;
  }
  const db = openDatabase(databaseUrl, config.databaseSchema, 1);
  const applied = await migrate(db, config.databaseSchema);
  say(applied.length > 0 ? `database schema migrated (${applied.join(', ')})` : 'database schema up to date');
  const keyFile = join(config.stateDir, 'admin.key');
  const apiKeys = new ApiKeys(db);
  if ((await apiKeys.count()) === 0) {
    const { key } = await apiKeys.create({ name: 'admin (bring-up)', tenant: 'default', role: 'admin' });
    await writeFile(keyFile, `${key}\n`, { mode: 0o600 });
    say(`created the first admin API key (also in ${keyFile}):\n\n    export SKIFF_API_KEY=${key}\n`);
  } else if (existsSync(keyFile)) {
    say(`admin API key: ${keyFile}`);
  }

  await db.end();

  say('building and publishing the runtime base images (the first time takes a minute)');
  const published = await publishRuntimeImages(new RegistryClient({ ...config.registry, url: registryUrl }), config.imagesDir, createLogger('bring-up', config.logLevel));
  for (const base of published) say(`${base.runtime} image ${base.repository}@${base.digest.slice(0, 19)}… ready`);

  const env = { ...process.env, REDIS_URL: redisUrl, DATABASE_URL: databaseUrl, REGISTRY_URL: registryUrl, SKIFF_STATE_DIR: config.stateDir };
  // SKIFF_WORKERS nodes on this host, each with its own id, uid range and metrics port.
  const workers = Array.from({ length: config.bringupWorkers }, (_, i) => ({
    name: config.bringupWorkers === 1 ? 'worker' : `worker ${config.worker.id.replace(/-1$/, '')}-${i + 1}`,
    main: 'worker',
    env:
      config.bringupWorkers === 1
        ? {}
        : {
            SKIFF_WORKER_ID: `${config.worker.id.replace(/-1$/, '')}-${i + 1}`,
            SKIFF_UID_BASE: String(config.worker.uidBase + i * 2 ** 26),
            SKIFF_WORKER_METRICS_PORT: config.workerMetrics.port === 0 ? '0' : String(config.workerMetrics.port + i),
          },
  }));
  for (const { name, main, env: own } of [...workers, { name: 'scheduler', main: 'scheduler', env: {} }, { name: 'gateway', main: 'gateway', env: {} }]) {
    const proc = startProcess(process.execPath, [join(dist, main, 'main.js')], { env: { ...env, ...own }, stdio: ['ignore', 'inherit', 'inherit'] });
    components.unshift({ name, proc });
    void proc.exited.then((code) => {
      if (main === 'worker' && code === 0 && !stopping) {
        say(`${name} was drained and left; the rest keeps running`);
        return;
      }
      if (!stopping) {
        say(`${name} exited unexpectedly (code ${code}); stopping everything`);
        void stopAll(1);
      }
    });
  }
  const url = `http://${config.gateway.host}:${config.gateway.port}`;
  await waitFor('gateway', async () => {
    const res = await fetch(`${url}/healthz`);
    if (!res.ok) throw new Error(`healthz answered ${res.status}`);
  }, 60000, 200);
  // The functions listener answers a 404 to anything that names no function: then it is up.
  const { host: fnHost, port: fnPort } = config.gateway.functions;
  const functionsListener = `http://${fnHost.includes(':') ? `[${fnHost}]` : fnHost}:${fnPort}`;
  await waitFor('functions listener', async () => {
    await (await fetch(`${functionsListener}/`)).arrayBuffer();
  }, 10000, 200);
  // Two origins: function code never runs where an operator's key is used (docs/SECURITY.md).
  const fnUrls = functionUrl(config, 'skiff-name-placeholder').replace('skiff-name-placeholder', '<name>');
  say(`ready (Ctrl-C stops everything)\n\n    API and dashboard: ${url}\n    function URLs:     ${fnUrls}\n`);
} catch (error) {
  console.error(`skiff: could not start: ${(error as Error).message}`);
  if ((error as Error).cause) console.error(`skiff:   cause: ${String((error as Error).cause)}`);
  await stopAll(1);
}
