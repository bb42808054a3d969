/**
 * Assembles a gateway from its parts: used by gateway/main.ts and by the end-to-end tests.
 */
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import { nanoid } from 'nanoid';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../infra/config.js';
import { openDatabase } from '../infra/db/database.js';
import { ApiKeys } from '../infra/db/api-keys.js';
import { DeadLetters } from '../infra/db/dead-letters.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import { LogStore } from '../infra/db/log-store.js';
import type { Logger } from '../infra/log.js';
import { keySpace } from '../infra/queue/names.js';
import { waitFor } from '../infra/services/process.js';
import { buildApp } from './app.js';
import { FunctionStore } from '../infra/db/function-store.js';
import { Dispatcher } from './invocations/dispatcher.js';
import { FunctionCache } from './invocations/function-cache.js';
import type { FunctionEvent } from '../infra/queue/jobs.js';
import { createGatewayMetrics } from './metrics.js';
import { FunctionImages } from './images/function-images.js';
import { RegistryClient } from '../infra/registry/client.js';

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
  const dispatcher = new Dispatcher({
    keys,
    gatewayId: nanoid(10),
    redis,
    subscriber,
    records,
    queueWaitMs: config.gateway.queueWaitMs,
    maxPendingPerFunction: config.gateway.maxPendingPerFunction,
  });
  await dispatcher.start();
  const functions = new FunctionStore(db);
  const current = new FunctionCache(functions);
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.functionEvents) current.forget((JSON.parse(message) as FunctionEvent).name);
  });
  await subscriber.subscribe(keys.functionEvents);
  const app = buildApp(
    {
      config,
      keys,
      functions,
      current,
      dispatcher,
      records,
      logs: new LogStore(db, undefined, (error) => deps.log.error({ err: error }, 'log store failed')),
      apiKeys: new ApiKeys(db),
      deadLetters: new DeadLetters(db),
      redis,
      tracer: deps.tracer,
      metrics: createGatewayMetrics(),
      images: new FunctionImages(new RegistryClient(config.registry), {
        maxEntries: config.gateway.maxZipEntries,
        maxUnpackedBytes: config.gateway.maxUnpackedBytes,
      }),
    },
    db,
    deps.log,
  );
  let inFlight = 0;
  app.addHook('onRequest', async (_request, reply) => {
    inFlight++;
    reply.raw.once('close', () => inFlight--);
  });
  await app.ready();
  return {
    app,
    async stop() {
      // Stop taking requests, let those in flight finish (bounded), then close every connection:
      // idle keep-alive connections of clients must not hold the gateway open.
      const closed = app.close();
      await waitFor('in-flight requests', async () => {
        if (inFlight > 0) throw new Error(`${inFlight} requests in flight`);
      }, config.gateway.queueWaitMs + 5000).catch((error: unknown) => deps.log.warn({ err: error }, 'closing with requests in flight'));
      app.server.closeAllConnections();
      await closed;
      await dispatcher.stop();
      await records.flush();
      await Promise.all([redis.quit(), subscriber.quit()]);
      await db.end();
    },
  };
}
