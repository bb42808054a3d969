/**
 * GET /healthz (whether the gateway's dependencies answer, each within its own short timeout) and
 * GET /metrics (Prometheus text, docs/OBSERVABILITY.md).
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';

/** One dependency as /healthz reports it. */
export type DependencyHealth = { status: 'up'; latencyMs: number } | { status: 'down'; latencyMs: number; error: string };

/**
 * Runs `check` and reports its dependency down if it throws or has not answered in `timeoutMs`.
 * Never throws and never waits past the timeout (a check still running then is left to end by
 * its own client timeout).
 */
export async function probe(check: () => Promise<unknown>, timeoutMs: number): Promise<DependencyHealth> {
  const started = performance.now();
  const latencyMs = (): number => Math.round(performance.now() - started);
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer in ${timeoutMs} ms`)), timeoutMs);
  });
  const running = check();
  running.catch(() => undefined); // it may fail after the timeout has answered
  try {
    await Promise.race([running, timedOut]);
    return { status: 'up', latencyMs: latencyMs() };
  } catch (error) {
    return { status: 'down', latencyMs: latencyMs(), error: (error as Error).message };
  } finally {
    clearTimeout(timer);
  }
}

export function healthRoutes(app: FastifyInstance, ctx: GatewayContext, db: { query(sql: string): Promise<unknown> }): void {
  const timeoutMs = ctx.config.gateway.healthTimeoutMs;
  app.get('/healthz', { config: { access: 'public' } }, async (_request, reply) => {
    // Redis is up for this gateway only when its replies can reach it too: the connection that
    // reads its reply stream is connected again (after an outage, each reconnects on its own).
    const redisUp = async (): Promise<void> => {
      await ctx.redis.ping();
      if (!ctx.dispatcher.receivingReplies()) throw new Error('the reply stream is not being read yet');
    };
    const [redis, postgres] = await Promise.all([probe(redisUp, timeoutMs), probe(() => db.query('SELECT 1'), timeoutMs)]);
    const dependencies = { redis, postgres };
    const down = Object.entries(dependencies)
      .filter(([, state]) => state.status === 'down')
      .map(([name]) => name);
    if (down.length === 0) return { status: 'ok', dependencies };
    // The error body every route answers with, and what each dependency said.
    const error = new SkiffError('Unavailable', `${down.join(' and ')} ${down.length === 1 ? 'does' : 'do'} not answer`);
    return reply.status(error.status).send({ error: error.toBody(), status: 'unavailable', down, dependencies });
  });

  // The shared invocation queue's depth, read at each scrape.
  ctx.metrics.watchQueue('invocations', () => ctx.dispatcher.jobCounts());
  ctx.metrics.watchCounts(
    'skiff_pruned_total',
    "Rows tenants' bounds removed, oldest first, since the platform's Redis began: versions (at deploy), invocations and logs (retention).",
    () => ctx.redis.hgetall(ctx.keys.pruned),
  );
  ctx.metrics.watchCounts(
    'skiff_reconciled_total',
    'Accepted async calls the scheduler queued again because their job was gone from Redis (requeued), and runs that ended after their call had already ended (duplicates).',
    () => ctx.redis.hgetall(ctx.keys.reconciled),
  );
  // It names every tenant's functions: an admin key (Prometheus sends one in its scrape config).
  app.get('/metrics', { config: { access: 'metrics:read' } }, async (_request, reply) => {
    return reply.type(ctx.metrics.registry.contentType).send(await ctx.metrics.registry.metrics());
  });
}
