/**
 * Calls per second per tenant: every call to a tenant's functions counts against its
 * `callsPerSecond` quota, in Redis, so the count is shared by every gateway. Over it the call is
 * answered 429 `TooManyRequests` with `Retry-After`, before its body is read or anything is
 * queued; another tenant's calls are counted apart and never wait on it. @fastify/rate-limit
 * does the counting (a fixed one-second window per tenant, one Lua INCR per call).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import { SkiffError } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';

/** Calls whose function is unknown are not counted here: they end as 404 without work. */
const UNCOUNTED = '';

export async function registerCallLimit(
  scope: FastifyInstance,
  ctx: GatewayContext,
  functionNameOf: (request: FastifyRequest) => string | undefined,
): Promise<void> {
  const tenantOf = new WeakMap<FastifyRequest, string>();
  await scope.register(rateLimit, {
    global: true,
    hook: 'onRequest',
    timeWindow: 1000,
    redis: ctx.redis,
    nameSpace: ctx.keys.callsPerSecond,
    // Redis briefly unreachable: the call goes on (its own queueing fails fast) rather than all calls failing here.
    skipOnError: true,
    keyGenerator: async (request) => {
      const name = functionNameOf(request);
      const fn = name === undefined ? undefined : await ctx.current.get(name);
      if (!fn) return UNCOUNTED;
      tenantOf.set(request, fn.tenant);
      return fn.tenant;
    },
    allowList: (_request, key) => key === UNCOUNTED,
    max: async (_request, key) => (await ctx.tenantQuotas.get(key)).callsPerSecond,
    addHeadersOnExceeding: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false },
    addHeaders: { 'x-ratelimit-limit': false, 'x-ratelimit-remaining': false, 'x-ratelimit-reset': false, 'retry-after': false },
    errorResponseBuilder: (request, context) => {
      const tenant = tenantOf.get(request) ?? 'this tenant';
      ctx.metrics.throttled.inc({ tenant });
      return new SkiffError('TooManyRequests', `tenant ${tenant} is over its ${context.max} calls per second (callsPerSecond); try again`, {
        retryAfterSeconds: Math.max(1, Math.ceil(context.ttl / 1000)),
      });
    },
  });
}
