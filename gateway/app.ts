/** The gateway's fastify application, built without listening (tests use inject or listen on :0). */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../infra/log.js';
import type { GatewayContext } from './context.js';
import { registerErrorMapping } from './errors.js';
import { registerOpenApi } from './openapi.js';
import { functionRoutes } from './routes/functions.js';
import { functionUrlRoutes } from './routes/function-url.js';
import { healthRoutes } from './routes/health.js';
import { requireKey } from './auth.js';
import { invokeRoutes } from './routes/invoke.js';
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
    // Per-request lines only at debug: at thousands of calls a second they would cost more than the call.
    logController: new LogController({ disableRequestLogging: true }),
    ajv: { customOptions: { allErrors: false, coerceTypes: false, removeAdditional: false } },
  });
  registerErrorMapping(app);
  registerOpenApi(app);
  // Everything that manages the platform needs an API key (gateway/auth.ts).
  app.register(async (admin) => {
    admin.addHook('onRequest', async (request) => {
      await requireKey(ctx.apiKeys, request);
    });
    functionRoutes(admin, ctx);
    logRoutes(admin, ctx);
    keyRoutes(admin, ctx);
    workerRoutes(admin, ctx);
    deadLetterRoutes(admin, ctx);
    imageRoutes(admin, ctx);
    statsRoutes(admin, ctx, new InvocationStats(db));
  });
  // The dashboard's page is public; the data it shows comes from the routes above, with a key.
  uiRoutes(app);
  invokeRoutes(app, ctx);
  functionUrlRoutes(app, ctx);
  healthRoutes(app, ctx, db);
  return app;
}
