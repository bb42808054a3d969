/**
 * Assembles a gateway from its parts: used by gateway/main.ts and by the end-to-end tests.
 */
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../infra/config.js';
import { openDatabase } from '../infra/db/database.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import type { Logger } from '../infra/log.js';
import { keySpace } from '../infra/queue/names.js';
import { buildApp } from './app.js';
import { FunctionStore } from '../infra/db/function-store.js';
import { Dispatcher } from './invocations/dispatcher.js';
import { createGatewayMetrics } from './metrics.js';

export interface Gateway {
  app: FastifyInstance;
  stop(): Promise<void>;
}

export async function startGateway(config: Readonly<Config>, deps: { log: Logger; tracer: Tracer }): Promise<Gateway> {
  const keys = keySpace(config.keyPrefix);
  const db = openDatabase(config.databaseUrl, config.databaseSchema, 10);
  const redis = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const subscriber = new Redis(config.redisUrl, { maxRetriesPerRequest: null });
  const records = new InvocationRecords(db, (error) => deps.log.error({ err: error }, 'could not record invocations'));
  const dispatcher = new Dispatcher({ keys, gatewayId: nanoid(10), redis, subscriber, records, queueWaitMs: config.gateway.queueWaitMs });
  await dispatcher.start();
  const app = buildApp(
    { config, keys, functions: new FunctionStore(db), dispatcher, records, redis, tracer: deps.tracer, metrics: createGatewayMetrics() },
    db,
    deps.log,
  );
  await app.ready();
  return {
    app,
    async stop() {
      await app.close();
      await dispatcher.stop();
      await records.flush();
      await Promise.all([redis.quit(), subscriber.quit()]);
      await db.end();
    },
  };
}
