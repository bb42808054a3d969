/** GET /healthz (the gateway's dependencies answer) and GET /metrics (Prometheus text, docs/OBSERVABILITY.md). */
import type { FastifyInstance } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';

export function healthRoutes(app: FastifyInstance, ctx: GatewayContext, db: { query(sql: string): Promise<unknown> }): void {
  app.get('/healthz', { config: { access: 'public' } }, async () => {
    try {
      await Promise.all([ctx.redis.ping(), db.query('SELECT 1')]);
    } catch (cause) {
      throw new SkiffError('Unavailable', 'Redis or PostgreSQL does not answer', { cause });
    }
    return { status: 'ok' };
  });

  // The shared invocation queue's depth, read at each scrape.
  ctx.metrics.watchQueue('invocations', () => ctx.dispatcher.jobCounts());
  ctx.metrics.watchPruned(() => ctx.redis.hgetall(ctx.keys.pruned));
  // It names every tenant's functions: an admin key (Prometheus sends one in its scrape config).
  app.get('/metrics', { config: { access: 'metrics:read' } }, async (_request, reply) => {
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
}
