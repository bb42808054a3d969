/**
 * Skiff's configuration: parsed once per process from the environment into a frozen, validated
 * object that is passed to constructors. No other module reads process.env.
 */
import { availableParallelism, hostname, totalmem } from 'node:os';
import { resolve } from 'node:path';
import type { TenantQuotas } from './tenancy/quotas.js';
import { RUNTIMES, type Runtime } from './functions/version.js';

export interface GatewayConfig {
  host: string;
  port: number;
  /** Largest request body accepted, deploy bodies included (base64 zip inside JSON). */
  bodyLimitBytes: number;
  /** Largest function zip (decoded). */
  maxZipBytes: number;
  /** Largest total unpacked size of a function zip: stops zip bombs. */
  maxUnpackedBytes: number;
  maxZipEntries: number;
  /** How long a call may wait for a worker and an instance before it is refused (429). */
  queueWaitMs: number;
  /** Keep-alive of idle instances for functions deployed without `idleTimeoutMs`. */
  defaultIdleTimeoutMs: number;
  /** Deploy defaults for what a deploy does not say. */
  defaultMemoryMb: number;
  defaultTimeoutMs: number;
  defaultMaxInstances: number;
  defaultConcurrency: number;
  /** Synchronous calls of one function a gateway holds at once; past it, 429. */
  maxPendingPerFunction: number;
  /** The short warm path: a sync call to a version with a free warm instance goes straight to its
   *  node, not through a scheduler (infra/fleet/warm-routes.ts). Off: every call is placed. */
  warmPath: boolean;
  /** Largest request body of a call (function URL, invoke): Lambda's 6 MiB. */
  invokeBodyLimitBytes: number;
  /** Largest event of an asynchronous call: Lambda's 256 KiB. */
  asyncEventLimitBytes: number;
  /** Largest result of a synchronous call; over it, 502 FunctionResponseTooLarge. */
  resultLimitBytes: number;
  /** Most bytes a streamed response (`invokeMode: RESPONSE_STREAM`) may send; past it the stream is
   *  cut and the call fails FunctionResponseTooLarge. Lambda's 20 MiB. */
  streamLimitBytes: number;
  /** Largest result kept in an asynchronous call's record. */
  asyncResultLimitBytes: number;
  /** Names of missing functions remembered (so a flood of unknown names costs no queries). */
  notFoundCacheSize: number;
  /** How long a gateway trusts a function it looked up: a deploy reaches the other gateways within it. */
  functionCacheTtlMs: number;
  /** A request must have arrived whole within this long (slow-loris bound). */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this long. */
  keepAliveTimeoutMs: number;
  /** /healthz waits this long for each dependency's answer before it reports that one down. */
  healthTimeoutMs: number;
  /** Where function URLs are served: an origin of their own, never the API's and dashboard's. */
  functions: {
    host: string;
    /** 0: any free port (tests). */
    port: number;
    /** The origin users call functions at, for the `url` of a function (default: http://host:port). */
    publicUrl: string | undefined;
    /**
     * Host-based routing for production: `<name>.<domain>` calls function `name` at path `/`.
     * Undefined: only `/fn/<name>` paths.
     */
    domain: string | undefined;
  };
}

export interface WorkerConfig {
  id: string;
  /** Memory the worker may hand out to instances, in MiB. */
  capacityMb: number;
  runcPath: string;
  /** Runtime files of this worker (tmpfs): runc's state and the sandboxes' sockets. Keep it short:
   *  a unix socket path has at most 107 bytes. */
  runDir: string;
  /** First host uid/gid of the ranges that container users map to (each sandbox gets its own). */
  uidBase: number;
  /** Pre-created, started, unspecialized sandboxes kept ready per runtime (worker/sandbox/pool-sizing.ts). */
  pool: PoolConfig;
  heartbeatMs: number;
  /** Invocations the worker runs at once (waiting ones count). */
  concurrency: number;
  pidsLimit: number;
  /** Least CPU ceiling of a function, in cores (cpu-limits.ts). */
  cpuFloorCores: number;
  tmpSizeMb: number;
  /** Bytes of a container's stdout/stderr kept per sandbox. */
  logLimitBytes: number;
  /** Disk the layer cache may use before layers no container uses are removed, in MiB. */
  imageCacheMb: number;
  /** How long the code of a version no instance runs stays mounted (a call may come back soon). */
  imageGraceMs: number;
  /** Sandboxes made at once; more wait their turn. */
  maxConcurrentCreates: number;
  /** Longest log line kept; longer lines are cut, and a runtime frame longer than the result
   *  limit plus a margin stops the sandbox (its memory stays bounded). */
  logLineLimitBytes: number;
  /** A new container's runtime must have connected within this long. */
  bootTimeoutMs: number;
  /** How often unused images and code are removed from the node's caches. */
  imageGcEveryMs: number;
  /** How often the node checks that functions' minWarm instances exist. */
  warmCheckEveryMs: number;
  /** A deployed version's warm owner node makes one idle instance of it at once (its handler
   *  loaded), so the first call finds it warm (SKIFF_PRELOAD_ON_DEPLOY, 1 or 0). */
  preloadOnDeploy: boolean;
}

/**
 * Each runtime's pool of ready sandboxes follows demand between a floor and a max, as far as memory
 * allows (worker/sandbox/pool-sizing.ts). SKIFF_POOL_SIZE pins floor and max to one fixed size.
 */
export interface PoolConfig {
  /** Ready sandboxes per runtime on an idle worker: by default those that fit in 1/24 of the host's memory. */
  floor: number;
  max: number;
  /** Time constant of the demand (new instances per second): the pool holds about one window of it. */
  windowMs: number;
  /** Creations the pool runs at once while refilling. */
  refillConcurrency: number;
  /** Host memory one ready sandbox holds, in MiB (measured: docs/SANDBOXES.md); what the pool counts for it. */
  footprintMb: number;
  /** The runtimes pre-created sandboxes are kept for (SKIFF_POOL_RUNTIMES); the others' are made on demand. */
  runtimes: readonly Runtime[];
}

/** Host memory a ready sandbox holds, measured on the build machine (docs/SANDBOXES.md). */
const POOL_SANDBOX_FOOTPRINT_MB = 10;
/** Share of the host's memory the default pool floors take together, all runtimes': about 100 sandboxes (1 GiB) on 24 GiB. */
const POOL_FLOOR_HOST_SHARE = 1 / 24;

/** How Redis clients connect, time out and reconnect (infra/queue/connections.ts). */
export interface RedisClientConfig {
  /** A connection attempt gives up after this long (then retried after the reconnect delay). */
  connectTimeoutMs: number;
  /** A gateway's command (a producer's) fails after this long without an answer. */
  commandTimeoutMs: number;
  /** Longest wait between reconnect attempts (they start at 50 ms and double). */
  reconnectMaxDelayMs: number;
  /** Set: every connection goes to the primary these sentinels name, and follows it when they fail
   *  over (REDIS_URL then gives only the password, user and database); unset: to REDIS_URL's host. */
  sentinel: RedisSentinelConfig | undefined;
}

/** Redis behind Sentinel (SKIFF_REDIS_SENTINEL*; docs/OPERATIONS.md#redis-behind-sentinel). */
export interface RedisSentinelConfig {
  /** The sentinels asked for the primary's address, in this order. */
  sentinels: ReadonlyArray<{ host: string; port: number }>;
  /** The name the sentinels monitor the primary by (`sentinel monitor <name> ...`). */
  name: string;
  /** The sentinels' own password (their `requirepass`), if they have one. */
  password: string | undefined;
}

/** How PostgreSQL pools connect and time out (infra/db/database.ts). */
export interface DatabaseClientConfig {
  /** Getting a connection (a new one, or a free one of the pool) fails after this long. */
  connectTimeoutMs: number;
  /** A query of a gateway, scheduler or worker fails after this long without an answer; 0: none. */
  queryTimeoutMs: number;
}

export interface RegistryConfig {
  url: string;
  username: string | undefined;
  password: string | undefined;
}

/** The key that seals secrets at rest (infra/secrets/platform-key.ts). */
export interface PlatformKeyConfig {
  /** The current key: seals and opens. Made (0600) when missing. */
  file: string;
  /** During a rotation, the key before it: opens only, until gateways have sealed everything again. */
  previousFile: string | undefined;
}

/** The Lambda Invoke API (gateway/lambda/). */
export interface LambdaApiConfig {
  /**
   * With `X-Amz-Log-Type: Tail`, how long past the outcome the gateway waits for the call's log
   * lines to be written by the worker (which writes them in batches, off the call path).
   */
  logTailWaitMs: number;
}

export interface Config {
  /** Where Skiff keeps its state: databases of the bring-up, images, sandboxes, code. */
  stateDir: string;
  /** Images on this host: built base root file systems, and the layer cache every worker of the
   *  host shares (each layer unpacked once). */
  imagesDir: string;
  /** Official Node.js releases fetched for the Node.js runtimes whose major version is not the
   *  host's (infra/images/node-dist.ts): `<nodeDir>/v<version>/bin/node`. */
  nodeDir: string;
  /** The OCI registry holding runtime and function images. */
  registry: RegistryConfig;
  /** Worker nodes the bring-up starts on this host (SKIFF_WORKERS). */
  bringupWorkers: number;
  /** The bring-up's first wait before restarting a process that died (SKIFF_RESTART_DELAY_MS), doubled while it keeps dying. */
  bringupRestartMs: number;
  /** True when REDIS_URL (or SKIFF_REDIS_SENTINELS) / DATABASE_URL / REGISTRY_URL name existing servers: the bring-up then starts none. */
  external: { redis: boolean; database: boolean; registry: boolean };
  redisUrl: string;
  databaseUrl: string;
  /** PostgreSQL schema holding Skiff's tables (tests use one per run). */
  databaseSchema: string;
  /** Prefix of every Redis key, queue and channel Skiff uses. */
  keyPrefix: string;
  redisClient: RedisClientConfig;
  databaseClient: DatabaseClientConfig;
  logLevel: string;
  gateway: GatewayConfig;
  worker: WorkerConfig;
  scheduler: {
    concurrency: number;
    heartbeatTtlMs: number;
    retentionHours: number;
    /** How often a scheduler looks for nodes that are gone (their heartbeat is older than the TTL). */
    failoverEveryMs: number;
    /** How often a scheduler reads the fleet's heartbeats for its placements. */
    fleetRefreshMs: number;
    /** How long a call that found no room waits before it is placed again. */
    placementRetryMs: number;
  };
  /** Where a worker serves its Prometheus metrics (GET /metrics); port 0: not served over HTTP. */
  workerMetrics: { host: string; port: number };
  /** Asynchronous calls that fail are run again this many times, after backoffMs, 2×, 4×...; an
   *  event older than maxEventAgeSeconds is not run again. Both are defaults a function may set. */
  asyncRetries: { retries: number; backoffMs: number; maxEventAgeSeconds: number };
  /** The scheduler's sweep (scheduler/reconciler.ts): an async call `queued` or `running` for
   *  longer than graceMs whose job is gone from Redis is queued again; a pass every everyMs. */
  reconciler: { graceMs: number; everyMs: number };
  /** The region events name (SKIFF_REGION): a scheduled event's `region` and schedule ARNs. */
  region: string;
  telemetry: { enabled: boolean };
  platformKey: PlatformKeyConfig;
  lambda: LambdaApiConfig;
  /** Quotas of a tenant that set none of its own (infra/tenancy/quotas.ts). */
  tenantDefaults: TenantQuotas;
}

export class ConfigError extends Error {
  readonly code = 'InvalidConfig';
}

type Env = Record<string, string | undefined>;

export function loadConfig(env: Env = process.env): Readonly<Config> {
  // /var/lib/skiff when root (the bring-up's PostgreSQL runs as the postgres user and must be able
  // to reach its directory; a checkout under /root would not do), else ./.skiff.
  const stateDir = resolve(str(env, 'SKIFF_STATE_DIR', process.getuid?.() === 0 ? '/var/lib/skiff' : '.skiff'));
  const workerId = str(env, 'SKIFF_WORKER_ID', `${hostname()}-1`);
  if (!/^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/.test(workerId)) {
    throw new ConfigError(`SKIFF_WORKER_ID must be 1-63 letters, digits, '.', '_' or '-', got "${workerId}"`);
  }
  const config: Config = {
    stateDir,
    imagesDir: resolve(str(env, 'SKIFF_IMAGES_DIR', `${stateDir}/images`)),
    nodeDir: resolve(str(env, 'SKIFF_NODE_DIR', `${stateDir}/node`)),
    registry: {
      url: registryUrl(env),
      username: env.REGISTRY_USERNAME || undefined,
      password: env.REGISTRY_PASSWORD || undefined,
    },
    bringupWorkers: int(env, 'SKIFF_WORKERS', 1, 1, 16),
    bringupRestartMs: int(env, 'SKIFF_RESTART_DELAY_MS', 500, 100, 30_000),
    external: {
      redis: Boolean(env.REDIS_URL) || Boolean(env.SKIFF_REDIS_SENTINELS?.trim()),
      database: Boolean(env.DATABASE_URL),
      registry: Boolean(env.REGISTRY_URL),
    },
    redisUrl: str(env, 'REDIS_URL', 'redis://127.0.0.1:6390'),
    databaseUrl: str(env, 'DATABASE_URL', 'postgres://skiff@127.0.0.1:5440/skiff'),
    databaseSchema: ident(env, 'SKIFF_DB_SCHEMA', 'public'),
    keyPrefix: str(env, 'SKIFF_KEY_PREFIX', 'skiff'),
    redisClient: {
      connectTimeoutMs: int(env, 'SKIFF_REDIS_CONNECT_TIMEOUT_MS', 5000, 100),
      commandTimeoutMs: int(env, 'SKIFF_REDIS_COMMAND_TIMEOUT_MS', 3000, 100),
      reconnectMaxDelayMs: int(env, 'SKIFF_REDIS_RECONNECT_MAX_MS', 2000, 50),
      sentinel: redisSentinel(env),
    },
    databaseClient: {
      connectTimeoutMs: int(env, 'SKIFF_DB_CONNECT_TIMEOUT_MS', 5000, 100),
      queryTimeoutMs: int(env, 'SKIFF_DB_QUERY_TIMEOUT_MS', 15_000, 0),
    },
    logLevel: str(env, 'SKIFF_LOG_LEVEL', 'info'),
    gateway: {
      host: str(env, 'SKIFF_GATEWAY_HOST', '127.0.0.1'),
      port: int(env, 'SKIFF_GATEWAY_PORT', 8080, 0, 65535),
      bodyLimitBytes: int(env, 'SKIFF_BODY_LIMIT_BYTES', 70 * 1024 * 1024, 1024),
      maxZipBytes: int(env, 'SKIFF_MAX_ZIP_BYTES', 50 * 1024 * 1024, 1024),
      maxUnpackedBytes: int(env, 'SKIFF_MAX_UNPACKED_BYTES', 250 * 1024 * 1024, 1024),
      maxZipEntries: int(env, 'SKIFF_MAX_ZIP_ENTRIES', 20000, 1),
      queueWaitMs: int(env, 'SKIFF_QUEUE_WAIT_MS', 30000, 100),
      defaultIdleTimeoutMs: int(env, 'SKIFF_IDLE_TIMEOUT_MS', 5 * 60_000, 1000),
      defaultMemoryMb: int(env, 'SKIFF_DEFAULT_MEMORY_MB', 128, 64, 10240),
      defaultTimeoutMs: int(env, 'SKIFF_DEFAULT_TIMEOUT_MS', 30_000, 1, 900_000),
      defaultMaxInstances: int(env, 'SKIFF_DEFAULT_MAX_INSTANCES', 100, 1, 10_000),
      defaultConcurrency: int(env, 'SKIFF_DEFAULT_CONCURRENCY', 1, 1, 1000),
      maxPendingPerFunction: int(env, 'SKIFF_MAX_PENDING_PER_FUNCTION', 1000, 1),
      warmPath: bool(env, 'SKIFF_WARM_PATH', true),
      invokeBodyLimitBytes: int(env, 'SKIFF_INVOKE_BODY_LIMIT_BYTES', 6 * 1024 * 1024, 1024),
      asyncEventLimitBytes: int(env, 'SKIFF_ASYNC_EVENT_LIMIT_BYTES', 256 * 1024, 1024),
      resultLimitBytes: int(env, 'SKIFF_RESULT_LIMIT_BYTES', 6 * 1024 * 1024, 1024),
      streamLimitBytes: int(env, 'SKIFF_STREAM_LIMIT_BYTES', 20 * 1024 * 1024, 1024),
      asyncResultLimitBytes: int(env, 'SKIFF_ASYNC_RESULT_LIMIT_BYTES', 256 * 1024, 1024),
      notFoundCacheSize: int(env, 'SKIFF_NOT_FOUND_CACHE_SIZE', 10_000, 1),
      functionCacheTtlMs: int(env, 'SKIFF_FUNCTION_CACHE_TTL_MS', 5000, 0, 600_000),
      requestTimeoutMs: int(env, 'SKIFF_REQUEST_TIMEOUT_MS', 60_000, 1000),
      keepAliveTimeoutMs: int(env, 'SKIFF_KEEP_ALIVE_TIMEOUT_MS', 72_000, 1000),
      healthTimeoutMs: int(env, 'SKIFF_HEALTH_TIMEOUT_MS', 500, 10, 60_000),
      functions: {
        host: str(env, 'SKIFF_FUNCTIONS_HOST', str(env, 'SKIFF_GATEWAY_HOST', '127.0.0.1')),
        port: int(env, 'SKIFF_FUNCTIONS_PORT', 8081, 0, 65535),
        publicUrl: optionalUrl(env, 'SKIFF_FUNCTIONS_URL'),
        domain: optionalDomain(env, 'SKIFF_FUNCTIONS_DOMAIN'),
      },
    },
    worker: {
      id: workerId,
      capacityMb: int(env, 'SKIFF_WORKER_CAPACITY_MB', Math.floor((totalmem() / 1024 / 1024) * 0.75), 64),
      runcPath: str(env, 'SKIFF_RUNC', 'runc'),
      runDir: str(env, 'SKIFF_RUN_DIR', `/run/skiff/${workerId}`),
      uidBase: int(env, 'SKIFF_UID_BASE', 1_000_000, 65536),
      pool: poolConfig(env),
      heartbeatMs: int(env, 'SKIFF_HEARTBEAT_MS', 1000, 50),
      concurrency: int(env, 'SKIFF_WORKER_CONCURRENCY', 256, 1),
      pidsLimit: int(env, 'SKIFF_PIDS_LIMIT', 64, 8),
      cpuFloorCores: int(env, 'SKIFF_CPU_FLOOR_MILLICORES', 1000, 10, 1_000_000) / 1000,
      tmpSizeMb: int(env, 'SKIFF_TMP_SIZE_MB', 64, 1),
      logLimitBytes: int(env, 'SKIFF_LOG_LIMIT_BYTES', 1024 * 1024, 1024),
      imageCacheMb: int(env, 'SKIFF_IMAGE_CACHE_MB', 10 * 1024, 64),
      imageGraceMs: int(env, 'SKIFF_IMAGE_GRACE_MS', 60_000, 0),
      maxConcurrentCreates: int(env, 'SKIFF_MAX_CONCURRENT_CREATES', 2 * availableParallelism(), 1, 1000),
      logLineLimitBytes: int(env, 'SKIFF_LOG_LINE_LIMIT_BYTES', 16 * 1024, 256),
      bootTimeoutMs: int(env, 'SKIFF_BOOT_TIMEOUT_MS', 10_000, 100),
      imageGcEveryMs: int(env, 'SKIFF_IMAGE_GC_EVERY_MS', 30_000, 100),
      warmCheckEveryMs: int(env, 'SKIFF_WARM_CHECK_EVERY_MS', 2000, 50),
      preloadOnDeploy: int(env, 'SKIFF_PRELOAD_ON_DEPLOY', 1, 0, 1) === 1,
    },
    scheduler: {
      concurrency: int(env, 'SKIFF_SCHEDULER_CONCURRENCY', 256, 1),
      heartbeatTtlMs: int(env, 'SKIFF_HEARTBEAT_TTL_MS', 5000, 100),
      retentionHours: int(env, 'SKIFF_RETENTION_HOURS', 168, 1),
      failoverEveryMs: int(env, 'SKIFF_FAILOVER_EVERY_MS', 1000, 50),
      fleetRefreshMs: int(env, 'SKIFF_FLEET_REFRESH_MS', 250, 10),
      placementRetryMs: int(env, 'SKIFF_PLACEMENT_RETRY_MS', 100, 10),
    },
    workerMetrics: {
      host: str(env, 'SKIFF_WORKER_METRICS_HOST', '127.0.0.1'),
      port: int(env, 'SKIFF_WORKER_METRICS_PORT', 9464, 0, 65535),
    },
    asyncRetries: {
      retries: int(env, 'SKIFF_ASYNC_RETRIES', 2, 0, 100),
      backoffMs: int(env, 'SKIFF_RETRY_BACKOFF_MS', 1000, 0),
      maxEventAgeSeconds: int(env, 'SKIFF_MAX_EVENT_AGE_SECONDS', 6 * 3600, 60, 21_600),
    },
    reconciler: {
      graceMs: int(env, 'SKIFF_RECONCILE_GRACE_MS', 30_000, 100),
      everyMs: int(env, 'SKIFF_RECONCILE_EVERY_MS', 5000, 50),
    },
    platformKey: {
      file: resolve(str(env, 'SKIFF_PLATFORM_KEY_FILE', `${stateDir}/platform.key`)),
      previousFile: env.SKIFF_PLATFORM_KEY_PREVIOUS_FILE ? resolve(env.SKIFF_PLATFORM_KEY_PREVIOUS_FILE) : undefined,
    },
    lambda: {
      logTailWaitMs: int(env, 'SKIFF_LAMBDA_LOG_TAIL_WAIT_MS', 1000, 0, 60_000),
    },
    region: region(env),
    telemetry: {
      // As OpenTelemetry does, an empty value counts as unset.
      enabled:
        env.OTEL_SDK_DISABLED !== 'true' &&
        ((Boolean(env.OTEL_TRACES_EXPORTER) && env.OTEL_TRACES_EXPORTER !== 'none') ||
          Boolean(env.OTEL_EXPORTER_OTLP_ENDPOINT) ||
          Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT)),
    },
    tenantDefaults: {
      callsPerSecond: int(env, 'SKIFF_TENANT_CALLS_PER_SECOND', 1000, 1),
      maxInstances: int(env, 'SKIFF_TENANT_MAX_INSTANCES', 200, 1),
      maxMemoryMb: int(env, 'SKIFF_TENANT_MAX_MEMORY_MB', 32 * 1024, 64),
      maxFunctions: int(env, 'SKIFF_TENANT_MAX_FUNCTIONS', 100, 1),
      maxLogLines: int(env, 'SKIFF_TENANT_MAX_LOG_LINES', 1_000_000, 100),
      maxInvocationRecords: int(env, 'SKIFF_TENANT_MAX_INVOCATION_RECORDS', 1_000_000, 100),
      maxVersionsPerFunction: int(env, 'SKIFF_TENANT_MAX_VERSIONS', 50, 1),
    },
  };
  return deepFreeze(config);
}

/** Default port of a sentinel, as Redis' own tools assume. */
const SENTINEL_PORT = 26379;

/**
 * SKIFF_REDIS_SENTINELS: `host[:port],...` (IPv6 as `[addr]:port`), or unset for no Sentinel; with
 * SKIFF_REDIS_SENTINEL_NAME (default `mymaster`) and SKIFF_REDIS_SENTINEL_PASSWORD.
 */
function redisSentinel(env: Env): RedisSentinelConfig | undefined {
  const raw = env.SKIFF_REDIS_SENTINELS?.trim();
  if (!raw) return undefined;
  const sentinels = raw.split(',').map((entry) => {
    const item = entry.trim();
    const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9][A-Za-z0-9.-]*))(?::(\d{1,5}))?$/.exec(item);
    const port = match?.[3] === undefined ? SENTINEL_PORT : Number(match[3]);
    const host = match?.[1] ?? match?.[2];
    if (host === undefined || port < 1 || port > 65535) {
      throw new ConfigError(
        `SKIFF_REDIS_SENTINELS must be host[:port] entries separated by commas, such as 10.0.0.1:26379,10.0.0.2:26379, got "${item}" in "${raw}"`,
      );
    }
    return { host, port };
  });
  const name = str(env, 'SKIFF_REDIS_SENTINEL_NAME', 'mymaster');
  // Sentinel takes any name without spaces; refuse what would be a typo (or split a config line).
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(name)) {
    throw new ConfigError(`SKIFF_REDIS_SENTINEL_NAME must be 1-64 letters, digits, '.', '_' or '-', got "${name}"`);
  }
  return { sentinels, name, password: env.SKIFF_REDIS_SENTINEL_PASSWORD || undefined };
}

/** REGISTRY_URL: http(s)://host[:port] with nothing after it (the API's /v2/ is added by the client). */
function poolConfig(env: Env): PoolConfig {
  const windowMs = int(env, 'SKIFF_POOL_WINDOW_MS', 30_000, 100, 3_600_000);
  // One lane per two cores: on 2 cores one lane made the most sandboxes per second (docs/SANDBOXES.md).
  const refillConcurrency = int(env, 'SKIFF_POOL_REFILL_CONCURRENCY', Math.max(1, Math.floor(availableParallelism() / 2)), 1, 64);
  const common = { windowMs, refillConcurrency, footprintMb: POOL_SANDBOX_FOOTPRINT_MB, runtimes: pooledRuntimes(env) };
  if (env.SKIFF_POOL_SIZE) {
    if (env.SKIFF_POOL_FLOOR || env.SKIFF_POOL_MAX)
      throw new ConfigError('SKIFF_POOL_SIZE pins the pool to one size: set it or SKIFF_POOL_FLOOR/SKIFF_POOL_MAX, not both');
    const size = int(env, 'SKIFF_POOL_SIZE', 0, 0, 1000);
    return { floor: size, max: size, ...common };
  }
  const max = int(env, 'SKIFF_POOL_MAX', 1000, 0, 10_000);
  // The share is split among the runtimes, each pooled (five: a hundred ready sandboxes in all on
  // 24 GiB, not five hundred to make at every start); demand grows a runtime's pool past it.
  const hostFloor = Math.floor(((totalmem() / 1024 / 1024) * POOL_FLOOR_HOST_SHARE) / POOL_SANDBOX_FOOTPRINT_MB / RUNTIMES.length);
  const floor = int(env, 'SKIFF_POOL_FLOOR', Math.min(max, hostFloor), 0, 10_000);
  if (floor > max) throw new ConfigError(`SKIFF_POOL_FLOOR (${floor}) is over SKIFF_POOL_MAX (${max})`);
  return { floor, max, ...common };
}

/** SKIFF_POOL_RUNTIMES: a comma-separated list of runtimes; unset, every one. */
function pooledRuntimes(env: Env): readonly Runtime[] {
  const raw = env.SKIFF_POOL_RUNTIMES?.trim();
  if (raw === undefined || raw === '') return RUNTIMES;
  const names = raw.split(',').map((name) => name.trim());
  const unknown = names.filter((name) => !(RUNTIMES as readonly string[]).includes(name));
  if (unknown.length > 0) throw new ConfigError(`SKIFF_POOL_RUNTIMES names unknown runtimes (${unknown.join(', ')}); known: ${RUNTIMES.join(', ')}`);
  return [...new Set(names)] as Runtime[];
}

function registryUrl(env: Env): string {
  const raw = str(env, 'REGISTRY_URL', 'http://127.0.0.1:5050').replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError(`REGISTRY_URL must be a URL such as http://127.0.0.1:5050, got "${raw}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.username) {
    throw new ConfigError(`REGISTRY_URL must be http(s)://host[:port] (credentials go in REGISTRY_USERNAME/REGISTRY_PASSWORD), got "${raw}"`);
  }
  return raw;
}

function optionalUrl(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const trimmed = raw.replace(/\/+$/, '');
  let url: URL;
  try {
    url = new URL(trimmed);
  } catch {
    throw new ConfigError(`${name} must be an origin such as https://fn.example.com, got "${raw}"`);
  }
  if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.pathname !== '/' || url.search || url.username) {
    throw new ConfigError(`${name} must be http(s)://host[:port] with nothing after it, got "${raw}"`);
  }
  return trimmed;
}

function optionalDomain(env: Env, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw === '') return undefined;
  const domain = raw.toLowerCase();
  if (!/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$/.test(domain)) {
    throw new ConfigError(`${name} must be a domain name such as fn.example.com, got "${raw}"`);
  }
  return domain;
}

function str(env: Env, name: string, fallback: string): string {
  const value = env[name];
  return value === undefined || value === '' ? fallback : value;
}

function int(env: Env, name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = /^-?\d+$/.test(raw.trim()) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}, got "${raw}"`);
  }
  return value;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') return fallback;
  if (['1', 'true', 'on', 'yes'].includes(raw)) return true;
  if (['0', 'false', 'off', 'no'].includes(raw)) return false;
  throw new ConfigError(`${name} must be on or off (true/false, 1/0), got "${env[name] ?? ''}"`);
}

function ident(env: Env, name: string, fallback: string): string {
  const value = str(env, name, fallback);
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(value)) {
    throw new ConfigError(`${name} must be a lower-case SQL identifier, got "${value}"`);
  }
  return value;
}

function deepFreeze<T extends object>(value: T): Readonly<T> {
  for (const inner of Object.values(value)) {
    if (inner !== null && typeof inner === 'object') deepFreeze(inner as object);
  }
  return Object.freeze(value);
}

/** An AWS-style region name: lower-case letters, digits and dashes. */
function region(env: Env): string {
  const value = str(env, 'SKIFF_REGION', 'us-east-1');
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(value)) throw new ConfigError(`SKIFF_REGION must be like us-east-1 (lower-case letters, digits, '-'), got "${value}"`);
  return value;
}
