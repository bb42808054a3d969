/**
 * One scheduler, assembled from the configuration (beside the gateway's `startGateway` and the
 * worker's `startWorker`): the loop that places calls (scheduler.ts), failover for nodes that are
 * gone, the reconciler of accepted async calls, functions' schedules (their ticks made calls, and
 * kept in Redis as PostgreSQL records them), and retention. `node dist/scheduler/main.js` runs
 * one; the tests start the same in-process.
 */
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../infra/config.js';
import { openDatabase } from '../infra/db/database.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import { TenantStore } from '../infra/db/tenants.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import type { Logger } from '../infra/log.js';
import { logErrors } from '../infra/outage-log.js';
import { openAsyncCalls } from '../infra/calls/async-calls.js';
import { closeRedis, openRedis } from '../infra/queue/connections.js';
import { keySpace } from '../infra/queue/names.js';
import { Failover } from './failover.js';
import { Fleet } from './fleet.js';
import { Reconciler } from './reconciler.js';
import { Retention } from './retention.js';
import { Scheduler } from './scheduler.js';
import { ScheduleSync } from './schedule-sync.js';
import { ScheduleTicks } from './schedule-ticks.js';
import { FunctionStore } from '../infra/db/function-store.js';
import { JobSchedulers } from '../infra/schedules/job-schedulers.js';

export interface SchedulerService {
  /** Stops placing, then closes its connections; calls in flight are left on their queues. */
  stop(): Promise<void>;
}

export async function startScheduler(config: Readonly<Config>, deps: { log: Logger; tracer: Tracer }): Promise<SchedulerService> {
  const { log } = deps;
  const keys = keySpace(config.keyPrefix);
  // Both wait for Redis while it is away: placements and retries carry on when it is back.
  const redis = openRedis(config.redisUrl, 'consumer', config.redisClient, { log, component: 'scheduler' });
  const queueConnection = openRedis(config.redisUrl, 'blocking', config.redisClient, { log, component: 'scheduler' });
  const db = openDatabase(config.databaseUrl, config.databaseSchema, 2, { timeouts: config.databaseClient, log, component: 'scheduler' });
  const records = new InvocationRecords(db, (error) => log.error({ err: error }, 'could not record invocations'));
  const asyncCalls = openAsyncCalls(config, redis, records, db);
  logErrors(asyncCalls.queue, log, 'invocation queue (retries)');
  const s = config.scheduler;
  const scheduler = new Scheduler({
    asyncCalls,
    keys,
    redis,
    queueConnection,
    fleet: new Fleet(new FleetRegistry(redis, keys, s.heartbeatTtlMs), s.fleetRefreshMs),
    concurrency: s.concurrency,
    retryMs: s.placementRetryMs,
    records,
    tracer: deps.tracer,
    log,
  });
  await scheduler.start();
  const failover = new Failover({ redis, keys, records, asyncCalls, heartbeatTtlMs: s.heartbeatTtlMs, everyMs: s.failoverEveryMs, log });
  failover.start();
  // Re-queues accepted async calls whose jobs Redis lost (PostgreSQL is their record).
  const reconciler = Reconciler.open(config, { redis, db, records, log });
  reconciler.start();
  const tenants = new TenantStore(db, config.tenantDefaults);
  const functions = new FunctionStore(db);
  const ticks = new ScheduleTicks({
    keys,
    queueConnection,
    invocations: asyncCalls.queue,
    records,
    current: (name) => functions.get(name),
    limits: async (tenant) => {
      const quotas = (await tenants.get(tenant))?.quotas;
      return quotas && { maxInstances: quotas.maxInstances, maxMemoryMb: quotas.maxMemoryMb };
    },
    region: config.region,
    queueWaitMs: config.gateway.queueWaitMs,
    log,
  });
  await ticks.start();
  const jobSchedulers = new JobSchedulers(redis, keys);
  logErrors(jobSchedulers.queue, log, 'schedule queue');
  const scheduleSync = new ScheduleSync(jobSchedulers, () => functions.scheduled(), config.reconciler.everyMs, log);
  await scheduleSync.start();
  const retention = new Retention(db, s.retentionHours, log, {
    tenants: () => tenants.list(),
    pruned: (kind, rows) => void redis.hincrby(keys.pruned, kind, rows).catch((error: unknown) => log.warn({ err: error }, 'could not count pruned rows')),
  });
  retention.start();
  return {
    async stop() {
      retention.stop();
      await failover.stop();
      await reconciler.stop();
      await scheduleSync.stop();
      await ticks.stop();
      await jobSchedulers.close();
      await scheduler.stop();
      await asyncCalls.close();
      await records.flush();
      await Promise.all([closeRedis(redis), closeRedis(queueConnection)]);
      await db.end();
    },
  };
}
