/**
 * Asynchronous calls that failed every attempt: GET /v1/functions/:name/dead-letters, and
 * POST /v1/functions/:name/dead-letters/:id/redrive to run one again (with the function's current
 * version, which may have been fixed since) under its own invocation id.
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';
import { tenantLimits, traced } from '../invocations/call.js';
import { versionOf } from '../../infra/db/function-store.js';
import { visibleFunction } from '../access.js';
import { FUNCTION_NAME } from './functions.js';

const params = {
  params: {
    type: 'object',
    properties: { name: { type: 'string', pattern: FUNCTION_NAME }, id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
  },
} as const;

export function deadLetterRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get<{ Params: { name: string } }>('/v1/functions/:name/dead-letters', { schema: params, config: { access: 'deadLetters:read' } }, async (request) => {
    const fn = await visibleFunction(ctx.functions, request, request.params.name, 'deadLetters:read');
    return { deadLetters: await ctx.deadLetters.list(fn.name) };
  });

  app.post<{ Params: { name: string; id: string } }>(
    '/v1/functions/:name/dead-letters/:id/redrive',
    { schema: params, config: { access: 'deadLetters:redrive' } },
    async (request, reply) => {
      const fn = versionOf(await visibleFunction(ctx.current, request, request.params.name, 'deadLetters:redrive'));
      const letter = await ctx.deadLetters.take(fn.name, request.params.id);
      if (!letter) throw new SkiffError('NotFound', `no dead letter ${request.params.id} for ${fn.name}`);
      const limits = await tenantLimits(ctx, fn);
      await traced(ctx, request, reply, fn.name, (span) => ctx.dispatcher.redrive(fn, letter.event, letter.id, span, limits));
      return reply.status(202).send({ id: letter.id, status: 'queued' });
    },
  );
}
