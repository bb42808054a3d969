/**
 * The fleet, for operators: GET /v1/workers; POST /v1/workers/:id/cordon, /uncordon, /drain;
 * DELETE /v1/workers/:id for a node that is gone (its calls are taken back by a scheduler).
 * Orders are kept in Redis; each node reads its own at every heartbeat.
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import type { WorkerHeartbeat, WorkerOrder } from '../../infra/queue/jobs.js';
import type { GatewayContext } from '../context.js';

const idParams = { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' } } } } as const;

export function workerRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const beats = async (): Promise<Map<string, WorkerHeartbeat>> => {
    const all = await ctx.redis.hgetall(ctx.keys.workers);
    return new Map(Object.entries(all).map(([id, json]) => [id, JSON.parse(json) as WorkerHeartbeat]));
  };
  const known = async (id: string): Promise<WorkerHeartbeat> => {
    const beat = (await beats()).get(id);
    if (!beat) throw new SkiffError('NotFound', `worker ${id} is not in the fleet`);
    return beat;
  };
  const order = async (id: string, value: WorkerOrder | null): Promise<void> => {
    if (value === null) await ctx.redis.hdel(ctx.keys.workerOrders, id);
    else await ctx.redis.hset(ctx.keys.workerOrders, id, value);
  };

  app.get('/v1/workers', { config: { access: 'workers:manage' } }, async () => {
    const [all, orders] = await Promise.all([beats(), ctx.redis.hgetall(ctx.keys.workerOrders)]);
    const now = Date.now();
    return {
      workers: [...all.values()].map((b) => ({
        ...b,
        order: orders[b.id] ?? null,
        lastHeartbeatMs: now - b.at,
        alive: now - b.at <= ctx.config.scheduler.heartbeatTtlMs,
      })),
    };
  });

  app.post<{ Params: { id: string } }>('/v1/workers/:id/cordon', { schema: idParams, config: { access: 'workers:manage' } }, async (request) => {
    await known(request.params.id);
    await order(request.params.id, 'cordoned');
    return { id: request.params.id, order: 'cordoned' };
  });

  app.post<{ Params: { id: string } }>('/v1/workers/:id/uncordon', { schema: idParams, config: { access: 'workers:manage' } }, async (request) => {
    const beat = await known(request.params.id);
    if (beat.state === 'draining') throw new SkiffError('InvalidRequest', `worker ${beat.id} is draining; it cannot be uncordoned`);
    await order(request.params.id, null);
    return { id: request.params.id, order: null };
  });

  app.post<{ Params: { id: string } }>('/v1/workers/:id/drain', { schema: idParams, config: { access: 'workers:manage' } }, async (request, reply) => {
    await known(request.params.id);
    await order(request.params.id, 'draining');
    return reply.status(202).send({ id: request.params.id, order: 'draining' });
  });

  app.delete<{ Params: { id: string } }>('/v1/workers/:id', { schema: idParams, config: { access: 'workers:manage' } }, async (request, reply) => {
    const beat = await known(request.params.id);
    if (Date.now() - beat.at <= ctx.config.scheduler.heartbeatTtlMs) {
      throw new SkiffError('InvalidRequest', `worker ${beat.id} is alive; drain it instead (POST /v1/workers/${beat.id}/drain)`);
    }
    await order(request.params.id, 'removed');
    return reply.status(202).send({ id: request.params.id, order: 'removed' });
  });
}
