/**
 * `/fn/...` on the API's and dashboard's origin: function URLs moved to an origin of their own
 * (gateway/functions-app.ts), so no function runs script or sets cookies where an operator's key
 * is used. The answer is a 404 naming the new address, not a redirect: a redirect would still
 * send browsers (and their requests' bodies, and clients that follow it with the API's
 * Authorization header) from the API's origin to function code, and a caller that breaks loudly
 * learns the new URL at once.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';
import { routeFunction } from '../http/function-origin.js';

export function movedFunctionUrlRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const moved = async (request: FastifyRequest): Promise<never> => {
    // Routed as on the functions listener but by path only: the Host here is the API's.
    const route = routeFunction(undefined, undefined, request.raw.url ?? request.url);
    const where = route === undefined ? `${ctx.functionsOrigin()}/fn/<name>` : ctx.functionUrl(route.name);
    throw new SkiffError('NotFound', `function URLs are served at ${where}`);
  };
  // Answered on request, before any body is read or parsed (whatever its type or size).
  const options = { onRequest: moved, config: { access: 'public' as const } };
  const unreachable = async (): Promise<void> => undefined;
  app.all('/fn', options, unreachable);
  app.all('/fn/*', options, unreachable);
}
