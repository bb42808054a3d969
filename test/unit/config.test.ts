import t from 'tap';
import { availableParallelism, hostname, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { ConfigError, loadConfig } from '../../infra/config.js';
import { RUNTIMES } from '../../infra/functions/version.js';

/** The `t` a subtest callback receives. */
type TapTest = Parameters<Parameters<typeof t.test>[0]>[0];

/** Asserts that loading `env` fails with a ConfigError naming `variable`. */
function rejects(t: TapTest, env: Record<string, string>, variable: string): void {
  let caught: unknown;
  try {
    loadConfig(env);
  } catch (error) {
    caught = error;
  }
  t.ok(caught instanceof ConfigError, `${JSON.stringify(env)} is rejected with a ConfigError`);
  t.equal((caught as ConfigError | undefined)?.code, 'InvalidConfig');
  t.match((caught as Error | undefined)?.message ?? '', variable, `the message names ${variable}`);
}

t.test('defaults', async (t) => {
  const c = loadConfig({});
  const stateDir = process.getuid?.() === 0 ? '/var/lib/skiff' : resolve('.skiff');
  t.equal(c.stateDir, stateDir);
  t.equal(c.imagesDir, `${stateDir}/images`);
  t.same(c.external, { redis: false, database: false, registry: false });
  t.equal(c.redisUrl, 'redis://127.0.0.1:6390');
  t.equal(c.databaseUrl, 'postgres://skiff@127.0.0.1:5440/skiff');
  t.equal(c.databaseSchema, 'public');
  t.equal(c.keyPrefix, 'skiff');
  t.equal(c.logLevel, 'info');
  t.equal(c.region, 'us-east-1');
  t.same(c.gateway, {
    host: '127.0.0.1',
    port: 8080,
    bodyLimitBytes: 70 * 1024 * 1024,
    maxZipBytes: 50 * 1024 * 1024,
    maxUnpackedBytes: 250 * 1024 * 1024,
    maxZipEntries: 20000,
    queueWaitMs: 30000,
    defaultIdleTimeoutMs: 300_000,
    defaultMemoryMb: 128,
    defaultTimeoutMs: 30_000,
    defaultMaxInstances: 100,
    defaultConcurrency: 1,
    maxPendingPerFunction: 1000,
    warmPath: true,
    invokeBodyLimitBytes: 6 * 1024 * 1024,
    asyncEventLimitBytes: 256 * 1024,
    resultLimitBytes: 6 * 1024 * 1024,
    streamLimitBytes: 20 * 1024 * 1024,
    asyncResultLimitBytes: 256 * 1024,
    notFoundCacheSize: 10_000,
    functionCacheTtlMs: 5000,
    requestTimeoutMs: 60_000,
    keepAliveTimeoutMs: 72_000,
    healthTimeoutMs: 500,
    functions: { host: '127.0.0.1', port: 8081, publicUrl: undefined, domain: undefined },
  });
  t.same(c.redisClient, { connectTimeoutMs: 5000, commandTimeoutMs: 3000, reconnectMaxDelayMs: 2000, sentinel: undefined });
  t.same(c.databaseClient, { connectTimeoutMs: 5000, queryTimeoutMs: 15_000 });
  const workerId = `${hostname()}-1`;
  t.same(c.worker, {
    id: workerId,
    capacityMb: Math.floor((totalmem() / 1024 / 1024) * 0.75),
    runcPath: 'runc',
    runDir: `/run/skiff/${workerId}`,
    uidBase: 1_000_000,
    pool: {
      floor: Math.floor(totalmem() / 1024 / 1024 / 24 / 10 / RUNTIMES.length),
      runtimes: RUNTIMES,
      max: 1000,
      windowMs: 30_000,
      refillConcurrency: Math.max(1, Math.floor(availableParallelism() / 2)),
      footprintMb: 10,
    },
    heartbeatMs: 1000,
    concurrency: 256,
    pidsLimit: 64,
    cpuFloorCores: 1,
    tmpSizeMb: 64,
    logLimitBytes: 1024 * 1024,
    imageCacheMb: 10 * 1024,
    imageGraceMs: 60_000,
    maxConcurrentCreates: 2 * availableParallelism(),
    logLineLimitBytes: 16 * 1024,
    bootTimeoutMs: 10_000,
    imageGcEveryMs: 30_000,
    warmCheckEveryMs: 2000,
    preloadOnDeploy: true,
  });
  t.same(c.registry, { url: 'http://127.0.0.1:5050', username: undefined, password: undefined });
  t.same(c.scheduler, { concurrency: 256, heartbeatTtlMs: 5000, retentionHours: 168, failoverEveryMs: 1000, fleetRefreshMs: 250, placementRetryMs: 100 });
  t.same(c.asyncRetries, { retries: 2, backoffMs: 1000, maxEventAgeSeconds: 21_600 });
  t.same(c.telemetry, { enabled: false });
  t.same(c.tenantDefaults, {
    callsPerSecond: 1000,
    maxInstances: 200,
    maxMemoryMb: 32 * 1024,
    maxFunctions: 100,
    maxLogLines: 1_000_000,
    maxInvocationRecords: 1_000_000,
    maxVersionsPerFunction: 50,
  });
});

t.test('the functions origin: its own port, a public URL and a domain for host names', async (t) => {
  const c = loadConfig({ SKIFF_FUNCTIONS_PORT: '9001', SKIFF_FUNCTIONS_URL: 'https://fn.example.com/', SKIFF_FUNCTIONS_DOMAIN: 'Fn.Example.com' });
  t.same(c.gateway.functions, { host: '127.0.0.1', port: 9001, publicUrl: 'https://fn.example.com', domain: 'fn.example.com' });
  t.throws(() => loadConfig({ SKIFF_FUNCTIONS_URL: 'https://fn.example.com/path' }), { code: 'InvalidConfig' });
  t.throws(() => loadConfig({ SKIFF_FUNCTIONS_DOMAIN: 'not a domain' }), { code: 'InvalidConfig' });
  t.equal(loadConfig({ SKIFF_GATEWAY_HOST: '0.0.0.0' }).gateway.functions.host, '0.0.0.0', 'it listens where the gateway does unless told');
});

t.test('an empty value means the default', async (t) => {
  const c = loadConfig({ SKIFF_GATEWAY_PORT: '', SKIFF_KEY_PREFIX: '', SKIFF_DB_SCHEMA: '', REDIS_URL: '' });
  t.equal(c.gateway.port, 8080);
  t.equal(c.keyPrefix, 'skiff');
  t.equal(c.databaseSchema, 'public');
  t.equal(c.redisUrl, 'redis://127.0.0.1:6390');
  t.equal(c.external.redis, false);
});

t.test('values from the environment', async (t) => {
  const c = loadConfig({
    SKIFF_STATE_DIR: '/srv/skiff-state',
    SKIFF_GATEWAY_PORT: '9090',
    SKIFF_GATEWAY_HOST: '0.0.0.0',
    SKIFF_WORKER_ID: 'node-7.b_c',
    SKIFF_WORKER_CAPACITY_MB: '4096',
    SKIFF_POOL_SIZE: '0',
    SKIFF_DB_SCHEMA: 'test_run_42',
    SKIFF_KEY_PREFIX: 'skiff-test',
    SKIFF_SCHEDULER_CONCURRENCY: '8',
  });
  t.equal(c.stateDir, '/srv/skiff-state');
  t.equal(c.imagesDir, '/srv/skiff-state/images', 'images follow the state directory');
  t.equal(c.gateway.port, 9090);
  t.equal(c.gateway.host, '0.0.0.0');
  t.equal(c.worker.id, 'node-7.b_c');
  t.equal(c.worker.runDir, '/run/skiff/node-7.b_c', 'the run directory follows the worker id');
  t.equal(c.worker.capacityMb, 4096);
  t.same([c.worker.pool.floor, c.worker.pool.max], [0, 0], 'zero is a valid pool size; SKIFF_POOL_SIZE pins floor and max');
  t.equal(c.databaseSchema, 'test_run_42');
  t.equal(c.keyPrefix, 'skiff-test');
  t.equal(c.scheduler.concurrency, 8);
});

t.test('the pool follows demand between a floor and a max, or is pinned to one size', async (t) => {
  const c = loadConfig({ SKIFF_POOL_FLOOR: '3', SKIFF_POOL_MAX: '40', SKIFF_POOL_WINDOW_MS: '5000', SKIFF_POOL_REFILL_CONCURRENCY: '3' });
  t.same(c.worker.pool, { floor: 3, max: 40, windowMs: 5000, refillConcurrency: 3, footprintMb: 10, runtimes: RUNTIMES });
  t.equal(loadConfig({ SKIFF_POOL_MAX: '0' }).worker.pool.floor, 0, 'the default floor stays under the max');
  rejects(t, { SKIFF_POOL_FLOOR: '41', SKIFF_POOL_MAX: '40' }, 'SKIFF_POOL_FLOOR');
  rejects(t, { SKIFF_POOL_SIZE: '2', SKIFF_POOL_FLOOR: '1' }, 'SKIFF_POOL_SIZE');
  rejects(t, { SKIFF_POOL_REFILL_CONCURRENCY: '0' }, 'SKIFF_POOL_REFILL_CONCURRENCY');
});

t.test('client timeouts of Redis, PostgreSQL and /healthz', async (t) => {
  const c = loadConfig({
    SKIFF_REDIS_CONNECT_TIMEOUT_MS: '1500',
    SKIFF_REDIS_COMMAND_TIMEOUT_MS: '800',
    SKIFF_REDIS_RECONNECT_MAX_MS: '5000',
    SKIFF_DB_CONNECT_TIMEOUT_MS: '2500',
    SKIFF_DB_QUERY_TIMEOUT_MS: '0',
    SKIFF_HEALTH_TIMEOUT_MS: '250',
  });
  t.same(c.redisClient, { connectTimeoutMs: 1500, commandTimeoutMs: 800, reconnectMaxDelayMs: 5000, sentinel: undefined });
  t.same(c.databaseClient, { connectTimeoutMs: 2500, queryTimeoutMs: 0 }, 'a query timeout of 0 means none');
  t.equal(c.gateway.healthTimeoutMs, 250);
  rejects(t, { SKIFF_REDIS_COMMAND_TIMEOUT_MS: '0' }, 'SKIFF_REDIS_COMMAND_TIMEOUT_MS');
  rejects(t, { SKIFF_DB_CONNECT_TIMEOUT_MS: '5' }, 'SKIFF_DB_CONNECT_TIMEOUT_MS');
  rejects(t, { SKIFF_HEALTH_TIMEOUT_MS: '600000' }, 'SKIFF_HEALTH_TIMEOUT_MS');
  rejects(t, { SKIFF_REGION: 'US East' }, 'SKIFF_REGION');
});

t.test('integers: bounds are inclusive', async (t) => {
  t.equal(loadConfig({ SKIFF_GATEWAY_PORT: '0' }).gateway.port, 0);
  t.equal(loadConfig({ SKIFF_GATEWAY_PORT: '65535' }).gateway.port, 65535);
  t.equal(loadConfig({ SKIFF_POOL_SIZE: '1000' }).worker.pool.max, 1000);
  t.equal(loadConfig({ SKIFF_PIDS_LIMIT: '8' }).worker.pidsLimit, 8);
  t.equal(loadConfig({ SKIFF_CPU_FLOOR_MILLICORES: '250' }).worker.cpuFloorCores, 0.25);
});

t.test('integers: anything else is a ConfigError naming the variable', async (t) => {
  rejects(t, { SKIFF_GATEWAY_PORT: 'http' }, 'SKIFF_GATEWAY_PORT');
  rejects(t, { SKIFF_GATEWAY_PORT: '65536' }, 'SKIFF_GATEWAY_PORT');
  rejects(t, { SKIFF_GATEWAY_PORT: '-1' }, 'SKIFF_GATEWAY_PORT');
  rejects(t, { SKIFF_GATEWAY_PORT: '80.5' }, 'SKIFF_GATEWAY_PORT');
  rejects(t, { SKIFF_POOL_SIZE: '1001' }, 'SKIFF_POOL_SIZE');
  rejects(t, { SKIFF_PIDS_LIMIT: '7' }, 'SKIFF_PIDS_LIMIT');
  rejects(t, { SKIFF_WORKER_CAPACITY_MB: '63' }, 'SKIFF_WORKER_CAPACITY_MB');
  rejects(t, { SKIFF_UID_BASE: '1000' }, 'SKIFF_UID_BASE');
  rejects(t, { SKIFF_HEARTBEAT_TTL_MS: 'soon' }, 'SKIFF_HEARTBEAT_TTL_MS');
  rejects(t, { SKIFF_BODY_LIMIT_BYTES: 'Infinity' }, 'SKIFF_BODY_LIMIT_BYTES');
  rejects(t, { SKIFF_IDLE_TIMEOUT_MS: 'NaN' }, 'SKIFF_IDLE_TIMEOUT_MS');
});

t.test('registry: REGISTRY_URL, REGISTRY_USERNAME, REGISTRY_PASSWORD', async (t) => {
  const c = loadConfig({ REGISTRY_URL: 'https://registry.example.com:5000/', REGISTRY_USERNAME: 'ci', REGISTRY_PASSWORD: 's3cret' });
  t.same(c.registry, { url: 'https://registry.example.com:5000', username: 'ci', password: 's3cret' }, 'a trailing slash is dropped');
  rejects(t, { REGISTRY_URL: 'registry:5000' }, 'REGISTRY_URL');
  rejects(t, { REGISTRY_URL: 'ftp://registry' }, 'REGISTRY_URL');
  rejects(t, { REGISTRY_URL: 'http://user:pw@registry' }, 'REGISTRY_URL');
  rejects(t, { REGISTRY_URL: 'http://registry/v2' }, 'REGISTRY_URL');
  rejects(t, { SKIFF_IMAGE_CACHE_MB: '10' }, 'SKIFF_IMAGE_CACHE_MB');
});

t.test('integers: the message shows the bad value', async (t) => {
  t.throws(() => loadConfig({ SKIFF_TMP_SIZE_MB: 'lots' }), { message: /SKIFF_TMP_SIZE_MB.*"lots"/ });
});

t.test('integers: whitespace and non-decimal spellings are rejected', async (t) => {
  for (const raw of [' ', '0x1F90', '8e3']) {
    t.throws(() => loadConfig({ SKIFF_GATEWAY_PORT: raw }), { code: 'InvalidConfig' }, `SKIFF_GATEWAY_PORT=${JSON.stringify(raw)} is rejected`);
  }
});

t.test('SKIFF_WORKER_ID must be a short, safe name', async (t) => {
  for (const id of ['a', 'A9', `w${'x'.repeat(62)}`, 'host-1.local_2']) {
    t.equal(loadConfig({ SKIFF_WORKER_ID: id }).worker.id, id, `${id} is accepted`);
  }
  for (const id of ['-leading-dash', '.hidden', '_under', 'has space', 'a/b', '../etc', `w${'x'.repeat(63)}`, 'naïve']) {
    rejects(t, { SKIFF_WORKER_ID: id }, 'SKIFF_WORKER_ID');
  }
});

t.test('SKIFF_DB_SCHEMA must be a lower-case SQL identifier', async (t) => {
  for (const schema of ['_x', 'a', 'skiff_test_1', `s${'x'.repeat(62)}`]) {
    t.equal(loadConfig({ SKIFF_DB_SCHEMA: schema }).databaseSchema, schema, `${schema} is accepted`);
  }
  for (const schema of ['Public', '1abc', 'a-b', 'a;drop table x', '"quoted"', 'a b', `s${'x'.repeat(63)}`]) {
    rejects(t, { SKIFF_DB_SCHEMA: schema }, 'SKIFF_DB_SCHEMA');
  }
});

t.test('the result is deeply frozen', async (t) => {
  const c = loadConfig({});
  for (const [name, value] of [
    ['config', c],
    ['external', c.external],
    ['gateway', c.gateway],
    ['worker', c.worker],
    ['scheduler', c.scheduler],
    ['telemetry', c.telemetry],
  ] as const) {
    t.ok(Object.isFrozen(value), `${name} is frozen`);
  }
  t.throws(() => {
    (c.gateway as { port: number }).port = 1;
  }, TypeError);
  t.throws(() => {
    (c as { keyPrefix: string }).keyPrefix = 'other';
  }, TypeError);
  t.equal(c.gateway.port, 8080);
  t.equal(c.keyPrefix, 'skiff');
  t.not(loadConfig({}).gateway, c.gateway, 'each load makes its own object');
});

t.test('telemetry is enabled only when an exporter or endpoint is configured', async (t) => {
  const enabled = (env: Record<string, string>): boolean => loadConfig(env).telemetry.enabled;
  t.equal(enabled({}), false, 'nothing set');
  t.equal(enabled({ OTEL_TRACES_EXPORTER: 'otlp' }), true, 'exporter otlp');
  t.equal(enabled({ OTEL_TRACES_EXPORTER: 'console' }), true, 'exporter console');
  t.equal(enabled({ OTEL_TRACES_EXPORTER: 'none' }), false, 'exporter none');
  t.equal(enabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), true, 'endpoint');
  t.equal(enabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://127.0.0.1:4318/v1/traces' }), true, 'traces endpoint');
  t.equal(enabled({ OTEL_TRACES_EXPORTER: 'none', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318' }), true, 'an endpoint beats exporter none');
  t.equal(enabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:4318', OTEL_SDK_DISABLED: 'true' }), false, 'SDK disabled');
  t.equal(enabled({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'true' }), false, 'SDK disabled, exporter set');
  t.equal(enabled({ OTEL_TRACES_EXPORTER: 'otlp', OTEL_SDK_DISABLED: 'false' }), true, 'SDK explicitly not disabled');
  t.equal(enabled({ OTEL_SDK_DISABLED: 'false' }), false, 'not disabled, but nothing configured');
  t.equal(enabled({ OTEL_SERVICE_NAME: 'skiff' }), false, 'other OTEL variables do not enable it');
});

t.test('Redis behind Sentinel: SKIFF_REDIS_SENTINELS, _NAME, _PASSWORD', async (t) => {
  const c = loadConfig({ SKIFF_REDIS_SENTINELS: ' 10.0.0.1:26380, sentinel-2.internal ,[fd00::3]:5000', REDIS_URL: 'redis://:pw@ignored:6379/2' });
  t.same(
    c.redisClient.sentinel,
    {
      sentinels: [
        { host: '10.0.0.1', port: 26380 },
        { host: 'sentinel-2.internal', port: 26379 },
        { host: 'fd00::3', port: 5000 },
      ],
      name: 'mymaster',
      password: undefined,
    },
    'host[:port] entries, port 26379 by default, IPv6 in brackets; the primary is called mymaster unless named',
  );
  t.equal(c.redisUrl, 'redis://:pw@ignored:6379/2', 'REDIS_URL is kept: its password and database still apply');
  t.same(loadConfig({ SKIFF_REDIS_SENTINELS: 's1:1', SKIFF_REDIS_SENTINEL_NAME: 'queues', SKIFF_REDIS_SENTINEL_PASSWORD: 'x' }).redisClient.sentinel, {
    sentinels: [{ host: 's1', port: 1 }],
    name: 'queues',
    password: 'x',
  });
  t.equal(loadConfig({ SKIFF_REDIS_SENTINELS: '' }).redisClient.sentinel, undefined, 'empty: no Sentinel');
  t.same(
    loadConfig({ SKIFF_REDIS_SENTINELS: 's1' }).external,
    { redis: true, database: false, registry: false },
    'sentinels name an existing Redis: the bring-up starts none',
  );
  for (const bad of ['s1:0', 's1:65536', 's1:', 's1,,s2', 'http://s1:26379', 's1:26379:1', '[zz::1]:1', '-s1'])
    rejects(t, { SKIFF_REDIS_SENTINELS: bad }, 'SKIFF_REDIS_SENTINELS');
  for (const bad of ['my master', 'x'.repeat(65), 'a;b'])
    rejects(t, { SKIFF_REDIS_SENTINELS: 's1', SKIFF_REDIS_SENTINEL_NAME: bad }, 'SKIFF_REDIS_SENTINEL_NAME');
});

t.test('telemetry: an empty variable counts as unset', async (t) => {
  const enabled = (env: Record<string, string>): boolean => loadConfig(env).telemetry.enabled;
  t.equal(enabled({ OTEL_TRACES_EXPORTER: '' }), false, 'OTEL_TRACES_EXPORTER=""');
  t.equal(enabled({ OTEL_EXPORTER_OTLP_ENDPOINT: '' }), false, 'OTEL_EXPORTER_OTLP_ENDPOINT=""');
  t.equal(enabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: '' }), false, 'OTEL_EXPORTER_OTLP_TRACES_ENDPOINT=""');
});

t.test('external services are those named by REDIS_URL, DATABASE_URL and REGISTRY_URL', async (t) => {
  const redis = loadConfig({ REDIS_URL: 'redis://10.0.0.5:6379' });
  t.same(redis.external, { redis: true, database: false, registry: false });
  t.equal(redis.redisUrl, 'redis://10.0.0.5:6379');
  t.equal(redis.databaseUrl, 'postgres://skiff@127.0.0.1:5440/skiff');

  const database = loadConfig({ DATABASE_URL: 'postgres://u@db:5432/skiff' });
  t.same(database.external, { redis: false, database: true, registry: false });
  t.equal(database.databaseUrl, 'postgres://u@db:5432/skiff');
  t.equal(database.redisUrl, 'redis://127.0.0.1:6390');

  t.same(loadConfig({ REDIS_URL: 'redis://r', DATABASE_URL: 'postgres://p' }).external, { redis: true, database: true, registry: false });
  t.same(loadConfig({ REGISTRY_URL: 'http://registry:5000' }).external, { redis: false, database: false, registry: true });
});

t.test('SKIFF_WARM_PATH is on or off', async (t) => {
  for (const on of ['1', 'true', 'on', 'YES']) t.equal(loadConfig({ SKIFF_WARM_PATH: on }).gateway.warmPath, true, `${on} is on`);
  for (const off of ['0', 'false', 'off', 'No']) t.equal(loadConfig({ SKIFF_WARM_PATH: off }).gateway.warmPath, false, `${off} is off`);
  for (const bad of ['maybe', '2', 'enabled']) rejects(t, { SKIFF_WARM_PATH: bad }, 'SKIFF_WARM_PATH');
});

t.test('SKIFF_POOL_RUNTIMES names the runtimes pooled', async (t) => {
  t.same(loadConfig({ SKIFF_POOL_RUNTIMES: 'nodejs22, python3.11,nodejs22' }).worker.pool.runtimes, ['nodejs22', 'python3.11']);
  t.same(loadConfig({ SKIFF_POOL_RUNTIMES: '' }).worker.pool.runtimes, RUNTIMES, 'empty: every one');
  rejects(t, { SKIFF_POOL_RUNTIMES: 'nodejs20,cobol' }, 'SKIFF_POOL_RUNTIMES');
});
