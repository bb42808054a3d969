/**
 * The fleet, for operators: GET /v1/workers; POST /v1/workers/:id/cordon, /uncordon, /drain;
 * DELETE /v1/workers/:id for a node that is gone (its calls are taken back by a scheduler).
 * Heartbeats and orders are the fleet registry's (infra/fleet/registry.ts); each node reads its
 * own order at every heartbeat.
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import { FleetRegistry, type FleetMember } from '../../infra/fleet/registry.js';
import type { WorkerListing } from '../../infra/contracts/api.js';
import type { GatewayContext } from '../context.js';

const idParams = { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$' } } } } as const;

export function workerRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  const fleet = new FleetRegistry(ctx.redis, ctx.keys, ctx.config.scheduler.heartbeatTtlMs);
  const known = async (id: string): Promise<FleetMember> => {
    const node = await fleet.get(id);
    if (!node) throw new SkiffError('NotFound', `worker ${id} is not in the fleet`);
    return node;
  };

  app.get('/v1/workers', { config: { access: 'workers:manage' } }, async (): Promise<{ workers: WorkerListing[] }> => {
    const members = await fleet.members();
    return { workers: members.map(({ beat, order, ageMs, alive }) => ({ ...beat, order, lastHeartbeatMs: ageMs, alive })) };
  });

  app.post<{ Params: { id: string } }>('/v1/workers/:id/cordon', { schema: idParams, config: { access: 'workers:manage' } }, async (request) => {
    await known(request.params.id);
    await fleet.order(request.params.id, 'cordoned');
    return { id: request.params.id, order: 'cordoned' };
  });

  app.post<{ Params: { id: string } }>('/v1/workers/:id/uncordon', { schema: idParams, config: { access: 'workers:manage' } }, async (request) => {
    const { beat } = await known(request.params.id);
    if (beat.state === 'draining') throw new SkiffError('InvalidRequest', `worker ${beat.id} is draining; it cannot be uncordoned`);
    await fleet.order(request.params.id, null);
    return { id: request.params.id, order: null };
  });

  app.post<{ Params: { id: string } }>('/v1/workers/:id/drain', { schema: idParams, config: { access: 'workers:manage' } }, async (request, reply) => {
    await known(request.params.id);
    await fleet.order(request.params.id, 'draining');
    return reply.status(202).send({ id: request.params.id, order: 'draining' });
  });

  app.delete<{ Params: { id: string } }>('/v1/workers/:id', { schema: idParams, config: { access: 'workers:manage' } }, async (request, reply) => {
    const { beat, alive } = await known(request.params.id);
    if (alive) throw new SkiffError('InvalidRequest', `worker ${beat.id} is alive; drain it instead (POST /v1/workers/${beat.id}/drain)`);
    await fleet.order(request.params.id, 'removed');
    return reply.status(202).send({ id: request.params.id, order: 'removed' });
  });
}
