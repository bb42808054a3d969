/** Entry point of a scheduler: `node dist/scheduler/main.js`. */
import { loadConfig } from '../infra/config.js';
import { openDatabase } from '../infra/db/database.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import { createLogger } from '../infra/log.js';
import { checkRedisSettings } from '../infra/queue/redis-check.js';
import { keySpace } from '../infra/queue/names.js';
import { closeRedis, openRedis } from '../infra/queue/connections.js';
import { logErrors } from '../infra/outage-log.js';
import { startTelemetry } from '../infra/telemetry.js';
import { openAsyncCalls } from '../infra/queue/async-calls.js';
import { Failover } from './failover.js';
import { Reconciler } from './reconciler.js';
import { Retention } from './retention.js';
import { TenantStore } from '../infra/db/tenants.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import { Fleet } from './fleet.js';
import { Scheduler } from './scheduler.js';

const config = loadConfig();
const log = createLogger('scheduler', config.logLevel);
// Warns (once, in the background) if that Redis would lose accepted calls: no AOF, or eviction.
void checkRedisSettings(config.redisUrl, log, { sentinel: config.redisClient.sentinel });
const telemetry = startTelemetry('skiff-scheduler', config.telemetry);
const keys = keySpace(config.keyPrefix);
// Both wait for Redis while it is away: placements and retries carry on when it is back.
const redis = openRedis(config.redisUrl, 'consumer', config.redisClient, { log, component: 'scheduler' });
const queueConnection = openRedis(config.redisUrl, 'blocking', config.redisClient, { log, component: 'scheduler' });
const db = openDatabase(config.databaseUrl, config.databaseSchema, 2, { timeouts: config.databaseClient, log, component: 'scheduler' });
const records = new InvocationRecords(db, (error) => log.error({ err: error }, 'could not record invocations'));
const asyncCalls = openAsyncCalls(config, redis, records, db);
logErrors(asyncCalls.queue, log, 'invocation queue (retries)');
const scheduler = new Scheduler({
  asyncCalls,
  keys,
  redis,
  queueConnection,
  fleet: new Fleet(new FleetRegistry(redis, keys, config.scheduler.heartbeatTtlMs), 250),
  concurrency: config.scheduler.concurrency,
  records,
  tracer: telemetry.tracer,
  log,
});
await scheduler.start();
const failover = new Failover({ redis, keys, records, asyncCalls, heartbeatTtlMs: config.scheduler.heartbeatTtlMs, everyMs: 1000, log });
failover.start();
// Re-queues accepted async calls whose jobs Redis lost (PostgreSQL is their record).
const reconciler = Reconciler.open(config, { redis, db, records, log });
reconciler.start();
const tenants = new TenantStore(db, config.tenantDefaults);
const retention = new Retention(db, config.scheduler.retentionHours, log, {
  tenants: () => tenants.list(),
  pruned: (kind, rows) => void redis.hincrby(keys.pruned, kind, rows).catch((error: unknown) => log.warn({ err: error }, 'could not count pruned rows')),
});
retention.start();
log.info('scheduler ready');

let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  // `on` with a flag, not `once`: Ctrl-C reaches every process of the group, and then the
  // bring-up's SIGTERM follows; a second signal must not kill a process that is stopping.
  process.on(signal, () => {
    if (stopping) return;
    stopping = true;
    retention.stop();
    failover
      .stop()
      .then(() => reconciler.stop())
      .then(() => scheduler.stop())
      .then(() => asyncCalls.close())
      .then(() => Promise.all([closeRedis(redis), closeRedis(queueConnection), db.end(), telemetry.shutdown()]))
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, 'scheduler did not stop cleanly');
        process.exit(1);
      });
  });
}
