/**
 * Asynchronous calls that failed every attempt: GET /v1/functions/:name/dead-letters, and
 * POST /v1/functions/:name/dead-letters/:id/redrive to run one again (with the function's current
 * version, which may have been fixed since) under its own invocation id.
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';
import { lookUp, traced } from '../invocations/call.js';
import { FUNCTION_NAME, notFound } from './functions.js';

const params = {
  params: {
    type: 'object',
    properties: { name: { type: 'string', pattern: FUNCTION_NAME }, id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } },
  },
} as const;

export function deadLetterRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.get<{ Params: { name: string } }>('/v1/functions/:name/dead-letters', { schema: params }, async (request) => {
    if (!(await ctx.functions.get(request.params.name))) throw notFound(request.params.name);
    return { deadLetters: await ctx.deadLetters.list(request.params.name) };
  });

  app.post<{ Params: { name: string; id: string } }>('/v1/functions/:name/dead-letters/:id/redrive', { schema: params }, async (request, reply) => {
    const fn = await lookUp(ctx, request.params.name, request);
    const letter = await ctx.deadLetters.take(fn.name, request.params.id);
    if (!letter) throw new SkiffError('NotFound', `no dead letter ${request.params.id} for ${fn.name}`);
    await traced(ctx, request, reply, fn.name, (span) => ctx.dispatcher.redrive(fn, letter.event, letter.id, span));
    return reply.status(202).send({ id: letter.id, status: 'queued' });
  });
}
