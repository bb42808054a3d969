/**
 * Any method on /fn/:name and /fn/:name/<path>: the request becomes a Lambda function URL event
 * (payload format 2.0) and the handler's answer becomes the HTTP response, so Lambda adapters
 * such as serverless-http run unchanged.
 */
import type { FastifyInstance } from 'fastify';
import type { GatewayContext } from '../context.js';
import { fromFunctionResult, toFunctionUrlEvent } from '../http/function-url.js';
import { callFunction, lookUp, traced } from '../invocations/call.js';

export function functionUrlRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.register(async (scope) => {
    // Bodies reach the function as they came: text as text, anything else base64.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.gateway.bodyLimitBytes }, (_request, body, done) => done(null, body));

    const handler = async (request: import('fastify').FastifyRequest<{ Params: { name: string } }>, reply: import('fastify').FastifyReply) => {
      const name = request.params.name;
      const fn = await lookUp(ctx, name, request);
      return traced(ctx, request, reply, name, async (span) => {
        const event = toFunctionUrlEvent(
          {
            method: request.method,
            url: request.raw.url ?? request.url,
            headers: request.headers,
            body: request.body as Buffer | undefined,
            remoteAddress: request.ip,
          },
          name,
          `/fn/${name}`,
          request.id,
          new Date(),
        );
        const value = await callFunction(ctx, fn, event, span, reply);
        const response = fromFunctionResult(value);
        void reply.status(response.statusCode).headers(response.headers);
        if (response.cookies.length > 0) void reply.header('set-cookie', response.cookies);
        return reply.send(response.body);
      });
    };
    const params = { params: { type: 'object', properties: { name: { type: 'string', pattern: '^[a-z][a-z0-9-]{0,62}$' } } } } as const;
    scope.all('/fn/:name', { schema: params }, handler);
    scope.all('/fn/:name/*', { schema: params }, handler);
  });
}
