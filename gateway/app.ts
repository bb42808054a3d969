/** The gateway's fastify application, built without listening (tests use inject or listen on :0). */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../infra/log.js';
import type { GatewayContext } from './context.js';
import { registerErrorMapping } from './errors.js';
import { registerOpenApi } from './openapi.js';
import { functionRoutes } from './routes/functions.js';
import { movedFunctionUrlRoutes } from './routes/moved-function-urls.js';
import { healthRoutes } from './routes/health.js';
import { registerAccess } from './access.js';
import { tenantRoutes } from './routes/tenants.js';
import { auditRoutes } from './routes/audit.js';
import { invokeRoutes } from './routes/invoke.js';
import { lambdaInvokeRoutes } from './routes/lambda-invoke.js';
import { keyRoutes } from './routes/keys.js';
import { deadLetterRoutes } from './routes/dead-letters.js';
import { workerRoutes } from './routes/workers.js';
import { logRoutes } from './routes/logs.js';
import { imageRoutes } from './routes/images.js';
import { statsRoutes } from './routes/stats.js';
import { uiRoutes } from './routes/ui.js';
import type { Database } from '../infra/db/database.js';
import { InvocationStats } from '../infra/db/invocation-stats.js';

export function buildApp(ctx: GatewayContext, db: Database, log: Logger): FastifyInstance {
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: ctx.config.gateway.bodyLimitBytes,
    // A request must arrive whole in time, and idle connections are closed: slow clients cannot hold sockets.
    requestTimeout: ctx.config.gateway.requestTimeoutMs,
    keepAliveTimeout: ctx.config.gateway.keepAliveTimeoutMs,
    // Per-request lines only at debug: at thousands of calls a second they would cost more than the call.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
  });
  registerErrorMapping(app);
  registerOpenApi(app);
  // Every API route names its action and goes through the tenant and role check (gateway/access.ts).
  registerAccess(app, ctx.apiKeys);
  // Registered as a plugin so that the OpenAPI plugin, loaded first, sees every route.
  app.register(async (api) => {
    functionRoutes(api, ctx);
    logRoutes(api, ctx);
    keyRoutes(api, ctx);
    tenantRoutes(api, ctx);
    auditRoutes(api, ctx);
    workerRoutes(api, ctx);
    deadLetterRoutes(api, ctx);
    imageRoutes(api, ctx);
    statsRoutes(api, ctx, new InvocationStats(db));
  });
  // The dashboard's page is public; the data it shows comes from the routes above, with a key.
  uiRoutes(app);
  invokeRoutes(app, ctx);
  // The AWS Lambda Invoke API, for AWS SDKs (docs/LAMBDA.md).
  lambdaInvokeRoutes(app, ctx);
  // Function URLs have an origin of their own (gateway/functions-app.ts); here /fn/ says where.
  movedFunctionUrlRoutes(app, ctx);
  healthRoutes(app, ctx, db);
  return app;
}
