/** Entry point of a scheduler: `node dist/scheduler/main.js`. */
import { Redis } from 'ioredis';
import { loadConfig } from '../infra/config.js';
import { openDatabase } from '../infra/db/database.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import { createLogger } from '../infra/log.js';
import { keySpace } from '../infra/queue/names.js';
import { startTelemetry } from '../infra/telemetry.js';
import { openAsyncCalls } from '../infra/queue/async-calls.js';
import { Failover } from './failover.js';
import { Retention } from './retention.js';
import { TenantStore } from '../infra/db/tenants.js';
import { Fleet } from './fleet.js';
import { Scheduler } from './scheduler.js';

const config = loadConfig();
const log = createLogger('scheduler', config.logLevel);
const telemetry = startTelemetry('skiff-scheduler', config.telemetry);
const keys = keySpace(config.keyPrefix);
const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
const queueConnection = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
const db = openDatabase(config.databaseUrl, config.databaseSchema, 2);
const records = new InvocationRecords(db, (error) => log.error({ err: error }, 'could not record invocations'));
const asyncCalls = openAsyncCalls(config, redis, records, db);
const scheduler = new Scheduler({
  asyncCalls,
  keys,
  redis,
  queueConnection,
  fleet: new Fleet(redis, keys.workers, keys.workerOrders, config.scheduler.heartbeatTtlMs, 250),
  concurrency: config.scheduler.concurrency,
  records,
  tracer: telemetry.tracer,
  log,
});
await scheduler.start();
const failover = new Failover({ redis, keys, records, heartbeatTtlMs: config.scheduler.heartbeatTtlMs, everyMs: 1000, log });
failover.start();
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
      .then(() => scheduler.stop())
      .then(() => asyncCalls.close())
      .then(() => Promise.all([redis.quit(), queueConnection.quit(), db.end(), telemetry.shutdown()]))
      .then(() => process.exit(0))
      .catch((error: unknown) => {
        log.error({ err: error }, 'scheduler did not stop cleanly');
        process.exit(1);
      });
  });
}
