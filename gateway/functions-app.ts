/**
 * The functions listener's fastify application: function URLs and nothing else (no API, no
 * dashboard, no metrics), on an origin of its own (`config.gateway.functions`), so a function's
 * script and cookies never share an origin with the place an operator's key is used
 * (docs/SECURITY.md, "Origins"). Built without listening, from the same context as the API's
 * app (gateway/app.ts); gateway/server.ts listens.
 */
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import type { Logger } from '../infra/log.js';
import type { GatewayContext } from './context.js';
import { registerErrorMapping } from './errors.js';
import { functionUrlRoutes } from './routes/function-url.js';

export function buildFunctionsApp(ctx: GatewayContext, log: Logger): FastifyInstance {
  const gw = ctx.config.gateway;
  const app = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    // Lambda's request limit: larger bodies are 413 before anything is queued.
    bodyLimit: gw.invokeBodyLimitBytes,
    // Anyone on the internet may call a function URL: a slow or idle client must not hold a socket.
    requestTimeout: gw.requestTimeoutMs,
    keepAliveTimeout: gw.keepAliveTimeoutMs,
    // Per-request lines only at debug: at thousands of calls a second they would cost more than the call.
    logController: new LogController({ disableRequestLogging: true }),
  });
  registerErrorMapping(app);
  functionUrlRoutes(app, ctx);
  return app;
}
