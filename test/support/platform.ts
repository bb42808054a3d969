/**
 * A whole Skiff platform for end-to-end tests: a gateway listening on a free port, a scheduler and
 * a worker, all in this process and assembled as their entry points assemble them, against the
 * real Redis and PostgreSQL the test runner started (REDIS_URL, DATABASE_URL) and real runc. Each platform gets its own key prefix, database schema,
 * state directory and worker id, so test files run in parallel without meeting.
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Config } from '../../infra/config.js';
import { migrate, openDatabase } from '../../infra/db/database.js';
import { ApiKeys } from '../../infra/db/api-keys.js';
import { openPlatformKeys } from '../../infra/secrets/platform-key.js';
import { createLogger } from '../../infra/log.js';
import { startTelemetry, type Telemetry } from '../../infra/telemetry.js';
import { startGateway, type Gateway } from '../../gateway/server.js';
import { startScheduler } from '../../scheduler/service.js';
import { startWorker, type WorkerNode } from '../../worker/node.js';

export interface Platform {
  /** The API's and dashboard's origin. */
  url: string;
  /** The functions' origin: `${fnUrl}/fn/<name>` (the API's origin answers /fn/ with 404). */
  fnUrl: string;
  /** Environment for more workers of this platform started as separate processes. */
  workerEnv(id: string, uidBase: number): Record<string, string>;
  /** An admin API key, and the header that sends it. */
  key: string;
  /** The admin key's id (`requestContext.authorizer.iam.accessKey` of calls made with it). */
  keyId: string;
  auth: { authorization: string };
  config: Readonly<Config>;
  gateway: Gateway;
  worker: WorkerNode;
  /** Stops the in-process worker, runs `whileStopped`, and starts it again with the same id and state. */
  restartWorker(whileStopped?: () => Promise<void>): Promise<void>;
  /** Stops the scheduler, runs `whileStopped`, and starts it again. */
  restartScheduler(whileStopped?: () => Promise<void>): Promise<void>;
  stop(): Promise<void>;
}

let counter = 0;
/** One OpenTelemetry SDK per process, as in the real components (export off unless OTEL_* say). */
let telemetry: Telemetry | undefined;

export async function startPlatform(env: Record<string, string> = {}): Promise<Platform> {
  // SKIFF_TEST_RUN (set by the test runner) marks every worker of one run, for its leak check.
  const tag = `${process.env.SKIFF_TEST_RUN ?? 't'}${process.pid}x${counter++}`;
  const stateDir = await mkdtemp(join(process.env.SKIFF_TEST_STATE ?? tmpdir(), `platform-${tag}-`));
  // Container roots below it must be reachable by the containers' unprivileged, id-mapped users.
  await chmod(stateDir, 0o755);
  const config = loadConfig({
    REDIS_URL: requireEnv('REDIS_URL'),
    DATABASE_URL: requireEnv('DATABASE_URL'),
    REGISTRY_URL: requireEnv('REGISTRY_URL'),
    SKIFF_STATE_DIR: stateDir,
    SKIFF_IMAGES_DIR: join(process.env.SKIFF_TEST_STATE ?? tmpdir(), 'images'),
    SKIFF_DB_SCHEMA: `test_${tag}`,
    SKIFF_KEY_PREFIX: `test-${tag}`,
    SKIFF_WORKER_ID: `w-${tag}`,
    SKIFF_RUN_DIR: `/run/skiff/w-${tag}`,
    SKIFF_GATEWAY_PORT: '0',
    SKIFF_FUNCTIONS_PORT: '0',
    SKIFF_POOL_SIZE: '1',
    // Most tests call nodejs20 functions only; a test of another runtime pools it too (python.test.ts).
    SKIFF_POOL_RUNTIMES: 'nodejs20',
    // A first call is cold in tests unless a test asks for preloading (SKIFF_PRELOAD_ON_DEPLOY: '1').
    SKIFF_PRELOAD_ON_DEPLOY: '0',
    SKIFF_WORKER_CAPACITY_MB: '4096',
    SKIFF_HEARTBEAT_MS: '200',
    // Nodes that are gone are noticed, and the fleet read, sooner than in production.
    SKIFF_FAILOVER_EVERY_MS: '250',
    SKIFF_FLEET_REFRESH_MS: '100',
    SKIFF_LOG_LEVEL: process.env.SKIFF_LOG_LEVEL ?? 'warn',
    ...env,
  });
  const log = createLogger('test', config.logLevel);
  telemetry ??= startTelemetry('skiff-test', config.telemetry);
  const tracer = telemetry.tracer;
  const db = openDatabase(config.databaseUrl, config.databaseSchema, 2, { timeouts: config.databaseClient, log, component: 'test-scheduler' });
  await migrate(db, config.databaseSchema);
  const { id: keyId, key } = await new ApiKeys(db, (await openPlatformKeys(config.platformKey)).box).create({
    name: 'test admin',
    tenant: 'default',
    role: 'admin',
  });

  // Egress functions may call function URLs: the worker learns the functions listener's port,
  // bound after the worker started, when it first sets up its egress network.
  const bound: { functionsPort?: number } = {};
  const workerDeps = { log, tracer, functionsPort: () => bound.functionsPort };
  let worker = await startWorker(config, workerDeps);
  // The same scheduler `node dist/scheduler/main.js` runs, in this process.
  let scheduler = await startScheduler(config, { log, tracer });
  const gateway = await startGateway(config, { log, tracer });
  const { url, functionsUrl } = await gateway.listen();
  bound.functionsPort = Number(new URL(functionsUrl).port);

  return {
    url,
    fnUrl: functionsUrl,
    key,
    keyId,
    auth: { authorization: `Bearer ${key}` },
    workerEnv: (id, uidBase) => ({
      REDIS_URL: config.redisUrl,
      DATABASE_URL: config.databaseUrl,
      REGISTRY_URL: config.registry.url,
      SKIFF_STATE_DIR: stateDir,
      SKIFF_IMAGES_DIR: config.imagesDir,
      SKIFF_DB_SCHEMA: config.databaseSchema,
      SKIFF_KEY_PREFIX: config.keyPrefix,
      SKIFF_WORKER_ID: `w-${tag}${id}`,
      SKIFF_RUN_DIR: `/run/skiff/w-${tag}${id}`,
      SKIFF_UID_BASE: String(uidBase),
      SKIFF_POOL_SIZE: '1',
      SKIFF_POOL_RUNTIMES: config.worker.pool.runtimes.join(','),
      SKIFF_PRELOAD_ON_DEPLOY: config.worker.preloadOnDeploy ? '1' : '0',
      SKIFF_WORKER_CAPACITY_MB: '4096',
      SKIFF_HEARTBEAT_MS: config.worker.heartbeatMs.toString(),
      SKIFF_HEARTBEAT_TTL_MS: config.scheduler.heartbeatTtlMs.toString(),
      SKIFF_LOG_LEVEL: config.logLevel,
      SKIFF_WORKER_METRICS_PORT: '0',
      // The one host port their egress functions may reach (worker/sandbox/egress-network.ts).
      SKIFF_FUNCTIONS_PORT: String(bound.functionsPort ?? 0),
    }),
    config,
    gateway,
    get worker() {
      return worker;
    },
    async restartWorker(whileStopped) {
      await worker.stop();
      await whileStopped?.();
      worker = await startWorker(config, workerDeps);
    },
    async restartScheduler(whileStopped) {
      await scheduler.stop();
      await whileStopped?.();
      scheduler = await startScheduler(config, { log, tracer });
    },
    async stop() {
      await gateway.stop();
      await scheduler.stop();
      await worker.stop();
      await db.query(`DROP SCHEMA IF EXISTS ${config.databaseSchema} CASCADE`);
      await db.end();
      await rm(stateDir, { recursive: true, force: true });
    },
  };
}

function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: run the tests with \`npm test\`, which starts Redis, PostgreSQL and the registry`);
  return value;
}
