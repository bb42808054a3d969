/**
 * Assembles a gateway from its parts: used by gateway/main.ts and by the end-to-end tests. A
 * gateway is two listeners over one context: the API and dashboard (gateway/app.ts) and function
 * URLs on an origin of their own (gateway/functions-app.ts).
 */
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { nanoid } from 'nanoid';
import type { Tracer } from '@opentelemetry/api';
import type { Config } from '../infra/config.js';
import { openDatabase } from '../infra/db/database.js';
import { ApiKeys } from '../infra/db/api-keys.js';
import { openPlatformKeys } from '../infra/secrets/platform-key.js';
import { DeadLetters } from '../infra/db/dead-letters.js';
import { InvocationRecords } from '../infra/db/invocation-records.js';
import { LogStore } from '../infra/db/log-store.js';
import type { Logger } from '../infra/log.js';
import { JobSchedulers } from '../infra/schedules/job-schedulers.js';
import { logErrors } from '../infra/outage-log.js';
import { keySpace } from '../infra/queue/names.js';
import { closeRedis, openRedis, whenReady } from '../infra/queue/connections.js';
import { waitFor } from '../infra/services/process.js';
import { buildApp } from './app.js';
import { FunctionStore } from '../infra/db/function-store.js';
import { Dispatcher } from './invocations/dispatcher.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import { FunctionCache } from './invocations/function-cache.js';
import type { FunctionEvent } from '../infra/queue/jobs.js';
import { createGatewayMetrics } from './metrics.js';
import { FunctionImages } from './images/function-images.js';
import { RegistryClient } from '../infra/registry/client.js';
import { TenantStore } from '../infra/db/tenants.js';
import { AuditLog } from '../infra/db/audit-log.js';
import { TenantQuotaCache } from './invocations/tenant-quota-cache.js';
import type { GatewayContext } from './context.js';
import { buildFunctionsApp } from './functions-app.js';
import { functionsOrigin, functionUrl } from './http/function-origin.js';

export interface Gateway {
  /** The management API, the dashboard, health and metrics. */
  app: FastifyInstance;
  /** Function URLs, and nothing else. */
  functionsApp: FastifyInstance;
  /**
   * Listens: the API on `config.gateway.host`/`.port`, function URLs on
   * `config.gateway.functions.host`/`.port` (port 0: a free one). Answers both listeners' local
   * addresses, `http://host:port`; from then on functions' URLs name the bound port.
   */
  listen(): Promise<{ url: string; functionsUrl: string }>;
  stop(): Promise<void>;
}

export async function startGateway(config: Readonly<Config>, deps: { log: Logger; tracer: Tracer }): Promise<Gateway> {
  const keys = keySpace(config.keyPrefix);
  const db = openDatabase(config.databaseUrl, config.databaseSchema, 10, { timeouts: config.databaseClient, log: deps.log, component: 'gateway' });
  // The command connection fails fast (a caller is answered 503 rather than held while Redis is
  // away); the subscriber waits for Redis and subscribes again, and the reply stream's reader
  // waits for Redis and reads on from where it was (infra/queue/connections.ts, replies.ts).
  const redisDeps = { log: deps.log, component: 'gateway' };
  const redis = openRedis(config.redisUrl, 'producer', config.redisClient, redisDeps);
  const subscriber = openRedis(config.redisUrl, 'subscriber', config.redisClient, redisDeps);
  const replyConnection = openRedis(config.redisUrl, 'blocking', config.redisClient, redisDeps);
  // A producer refuses commands until it is connected: start once Redis answers.
  await whenReady(redis);
  const platformKey = await openPlatformKeys(config.platformKey);
  if (platformKey.created) deps.log.warn({ file: config.platformKey.file }, 'made a new platform key: every gateway of this platform needs the same file');
  const apiKeys = new ApiKeys(db, platformKey.box, (error) => deps.log.warn({ err: error }, 'could not record a key use'));
  // After a rotation: what the previous platform key sealed is sealed again under the current one.
  const resealed = await apiKeys.reseal();
  if (resealed > 0) deps.log.info({ resealed }, 'sealed API key secrets again under the current platform key');
  const records = new InvocationRecords(db, (error) => deps.log.error({ err: error }, 'could not record invocations'));
  const metrics = createGatewayMetrics();
  const dispatcher = new Dispatcher({
    keys,
    gatewayId: nanoid(10),
    redis,
    replyConnection,
    log: deps.log,
    records,
    queueWaitMs: config.gateway.queueWaitMs,
    maxPendingPerFunction: config.gateway.maxPendingPerFunction,
    ...(config.gateway.warmPath
      ? { warm: { registry: new FleetRegistry(redis, keys, config.scheduler.heartbeatTtlMs), refreshMs: config.scheduler.fleetRefreshMs } }
      : {}),
    onRoute: (route) => metrics.routes.inc({ route }),
  });
  await dispatcher.start();
  const functions = new FunctionStore(db);
  const current = new FunctionCache(functions, config.gateway.notFoundCacheSize, config.gateway.functionCacheTtlMs);
  subscriber.on('message', (channel: string, message: string) => {
    if (channel === keys.functionEvents) current.forget((JSON.parse(message) as FunctionEvent).name);
  });
  await subscriber.subscribe(keys.functionEvents);
  const tenants = new TenantStore(db, config.tenantDefaults);
  const schedules = new JobSchedulers(redis, keys);
  logErrors(schedules.queue, deps.log, 'schedule queue');
  // Known once the functions listener is bound (its configured port may be 0).
  let functionsPort: number | undefined;
  const ctx: GatewayContext = {
    config,
    keys,
    functions,
    current,
    dispatcher,
    records,
    logs: new LogStore(db, undefined, (error) => deps.log.error({ err: error }, 'log store failed')),
    apiKeys,
    deadLetters: new DeadLetters(db),
    redis,
    tracer: deps.tracer,
    metrics,
    images: new FunctionImages(new RegistryClient(config.registry), {
      maxEntries: config.gateway.maxZipEntries,
      maxUnpackedBytes: config.gateway.maxUnpackedBytes,
    }),
    tenants,
    audit: new AuditLog(db),
    tenantQuotas: new TenantQuotaCache(tenants, config.tenantDefaults),
    schedules,
    functionUrl: (name) => functionUrl(config, name, functionsPort),
    functionsOrigin: () => functionsOrigin(config, functionsPort),
  };
  const app = buildApp(ctx, db, deps.log);
  const functionsApp = buildFunctionsApp(ctx, deps.log);
  const apps = [app, functionsApp];
  // Requests in flight on either listener: stop lets them finish.
  let inFlight = 0;
  for (const each of apps) {
    each.addHook('onRequest', async (_request, reply) => {
      inFlight++;
      reply.raw.once('close', () => inFlight--);
    });
  }
  await Promise.all(apps.map((each) => each.ready()));
  return {
    app,
    functionsApp,
    async listen() {
      await app.listen({ host: config.gateway.host, port: config.gateway.port });
      await functionsApp.listen({ host: config.gateway.functions.host, port: config.gateway.functions.port });
      const fns = functionsApp.server.address() as AddressInfo;
      functionsPort = fns.port;
      return { url: localUrl(app.server.address() as AddressInfo), functionsUrl: localUrl(fns) };
    },
    async stop() {
      // Stop taking requests, let those in flight finish (bounded), then close every connection:
      // idle keep-alive connections of clients must not hold the gateway open.
      const closed = Promise.all(apps.map((each) => each.close()));
      await waitFor(
        'in-flight requests',
        async () => {
          if (inFlight > 0) throw new Error(`${inFlight} requests in flight`);
        },
        config.gateway.queueWaitMs + 5000,
      ).catch((error: unknown) => deps.log.warn({ err: error }, 'closing with requests in flight'));
      for (const each of apps) each.server.closeAllConnections();
      await closed;
      await dispatcher.stop();
      await schedules.close();
      await records.flush();
      await Promise.all([closeRedis(redis), closeRedis(subscriber), closeRedis(replyConnection)]);
      await db.end();
    },
  };
}

/** A bound address as a URL a client on this host can use (a wildcard is reached on loopback). */
function localUrl(address: AddressInfo): string {
  if (address.family === 'IPv6') return `http://[${address.address === '::' ? '::1' : address.address}]:${address.port}`;
  return `http://${address.address === '0.0.0.0' ? '127.0.0.1' : address.address}:${address.port}`;
}
