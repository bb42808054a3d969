/**
 * POST /v1/functions/:name/invoke: the body is the event (JSON; empty means null). Synchronous by
 * default (200 with the handler's value as JSON); `X-Skiff-Invocation-Type: async` answers 202 with
 * an id to poll at GET /v1/invocations/:id.
 */
import type { FastifyInstance } from 'fastify';
import { SkiffError, invalidRequest } from '../../infra/errors.js';
import type { GatewayContext } from '../context.js';
import { callFunction, lookUp, traced } from '../invocations/call.js';
import { FUNCTION_NAME } from './functions.js';

export function invokeRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.register(async (scope) => {
    // The event is whatever JSON the caller sent, under any content type, or null when empty.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.gateway.bodyLimitBytes }, (_request, body, done) => done(null, body));

    scope.post<{ Params: { name: string }; Body: Buffer | undefined }>(
      '/v1/functions/:name/invoke',
      { schema: { params: { type: 'object', properties: { name: { type: 'string', pattern: FUNCTION_NAME } } } } },
      async (request, reply) => {
        const event = parseEvent(request.body);
        const mode = String(request.headers['x-skiff-invocation-type'] ?? 'sync').toLowerCase();
        if (mode !== 'sync' && mode !== 'async' && mode !== 'requestresponse' && mode !== 'event') {
          throw invalidRequest('x-skiff-invocation-type', 'X-Skiff-Invocation-Type must be sync or async');
        }
        const fn = await lookUp(ctx, request.params.name, request);
        return traced(ctx, request, reply, fn.name, async (span) => {
          if (mode === 'async' || mode === 'event') {
            const id = await ctx.dispatcher.submit(fn, event, span);
            return reply.status(202).send({ id, status: 'queued' });
          }
          const value = await callFunction(ctx, fn, event, span, reply);
          return reply.type('application/json').send(JSON.stringify(value ?? null));
        });
      },
    );
  });

  app.get<{ Params: { id: string } }>(
    '/v1/invocations/:id',
    { schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } } } },
    async (request) => {
      const record = await ctx.records.get(request.params.id);
      if (!record) throw new SkiffError('NotFound', `invocation ${request.params.id} does not exist`);
      return record;
    },
  );
}

function parseEvent(body: Buffer | undefined): unknown {
  if (!body || body.length === 0) return null;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw invalidRequest('body', `the event must be JSON: ${(cause as Error).message}`, cause);
  }
}
