/**
 * POST /v1/functions/:name/invoke: the body is the event (JSON; empty means null). Synchronous by
 * default (200 with the handler's value as JSON); `X-Skiff-Invocation-Type: async` answers 202 with
 * an id to poll at GET /v1/invocations/:id (with a key of the function's tenant; an invoker key
 * reads only the calls it made). The handler's value is served as JSON that runs nothing, even
 * opened in a browser: this is the API's origin. An async call with an `Idempotency-Key` (1–128
 * printable ASCII characters, no spaces) is made once per tenant, function and key within a day:
 * a retry gets the same id back (202, `Idempotent-Replayed: true`); a key whose call was refused
 * (503) may be used again. Synchronous calls ignore the header.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { SkiffError, invalidRequest } from '../../infra/errors.js';
import type { InvocationRecord } from '../../infra/db/invocation-records.js';
import { functionAccess } from '../../infra/tenancy/roles.js';
import type { GatewayContext } from '../context.js';
import { callFunction, checkAsyncEventSize, lookUp, submitAsync, traced } from '../invocations/call.js';
import { registerCallLimit } from '../invocations/call-limit.js';
import { principalOf } from '../access.js';
import { FUNCTION_NAME } from './functions.js';

/** Function output on the API's origin: never sniffed as HTML, never allowed to run or load anything. */
export const OUTPUT_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox";

export function outputHeaders(reply: FastifyReply): FastifyReply {
  return reply.header('x-content-type-options', 'nosniff').header('content-security-policy', OUTPUT_CSP);
}

const IDEMPOTENCY_KEY = /^[\x21-\x7e]{1,128}$/;

/** The Idempotency-Key of a request, if it has a valid one; 400 if it has another. */
function idempotencyKey(request: FastifyRequest): string | undefined {
  const raw = request.headers['idempotency-key'];
  if (raw === undefined) return undefined;
  if (typeof raw !== 'string' || !IDEMPOTENCY_KEY.test(raw)) {
    throw invalidRequest('idempotency-key', 'Idempotency-Key must be one header of 1 to 128 printable ASCII characters without spaces');
  }
  return raw;
}

export function invokeRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.register(async (scope) => {
    // Counted per tenant before the body is read: a tenant over its rate costs nobody else a thing.
    await registerCallLimit(scope, ctx, (request) => (request.params as { name?: string }).name);
    // The event is whatever JSON the caller sent, under any content type, or null when empty.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.gateway.invokeBodyLimitBytes }, (_request, body, done) => done(null, body));

    scope.post<{ Params: { name: string }; Body: Buffer | undefined }>(
      '/v1/functions/:name/invoke',
      { schema: { params: { type: 'object', properties: { name: { type: 'string', pattern: FUNCTION_NAME } } } }, config: { access: 'call' } },
      async (request, reply) => {
        const mode = String(request.headers['x-skiff-invocation-type'] ?? 'sync').toLowerCase();
        if (mode !== 'sync' && mode !== 'async' && mode !== 'requestresponse' && mode !== 'event') {
          throw invalidRequest('x-skiff-invocation-type', 'X-Skiff-Invocation-Type must be sync or async');
        }
        const async = mode === 'async' || mode === 'event';
        const key = async ? idempotencyKey(request) : undefined;
        if (async) checkAsyncEventSize(ctx, request.body?.length ?? 0);
        const event = parseEvent(request.body);
        const target = await lookUp(ctx, request.params.name, request);
        const { fn } = target;
        outputHeaders(reply);
        return traced(ctx, request, reply, fn.name, async (span) => {
          if (async) {
            const { id, replayed } = await submitAsync(ctx, target, event, span, key);
            if (!replayed) return reply.status(202).send({ id, status: 'queued' });
            const record = await ctx.records.get(id);
            return reply
              .status(202)
              .header('idempotent-replayed', 'true')
              .send({ id, status: record?.status ?? 'queued' });
          }
          const value = await callFunction(ctx, target, event, span, reply);
          return reply.type('application/json').send(JSON.stringify(value ?? null));
        });
      },
    );
  });

  app.get<{ Params: { id: string } }>(
    '/v1/invocations/:id',
    {
      schema: { params: { type: 'object', properties: { id: { type: 'string', pattern: '^[A-Za-z0-9_-]{1,64}$' } } } },
      config: { access: 'invocations:read' },
    },
    async (request, reply) => {
      const record = await ctx.records.get(request.params.id);
      if (!record || !readable(request, record)) throw new SkiffError('NotFound', `invocation ${request.params.id} does not exist`);
      outputHeaders(reply);
      return record;
    },
  );
}

/** Another tenant's record, or (for an invoker) another key's call, is answered as a missing one. */
function readable(request: FastifyRequest, record: InvocationRecord): boolean {
  const who = principalOf(request);
  if (functionAccess(who, { name: record.functionName, tenant: record.tenant ?? '' }) !== 'ok') return false;
  return who.role !== 'invoker' || record.callerKeyId === who.keyId;
}

/** The event of a call: its body as JSON, or null when empty; 400 when it is not JSON. */
export function parseEvent(body: Buffer | undefined): unknown {
  if (!body || body.length === 0) return null;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw invalidRequest('body', `the event must be JSON: ${(cause as Error).message}`, cause);
  }
}
