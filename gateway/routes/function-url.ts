/**
 * Function URLs, on the functions listener only (gateway/functions-app.ts): any method on
 * `/fn/:name[/<path>]`, or on any path of `<name>.<domain>` when a functions domain is set
 * (gateway/http/function-origin.ts). The request becomes a Lambda function URL event (payload
 * format 2.0) and the handler's answer becomes the HTTP response, so Lambda adapters such as
 * serverless-http run unchanged. A `RESPONSE_STREAM` function's streaming handler is answered as it
 * writes (gateway/invocations/streamed-call.ts, gateway/http/streamed-response.ts).
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { GatewayContext } from '../context.js';
import { fromFunctionResult, toFunctionUrlEvent } from '../http/function-url.js';
import { routeFunction } from '../http/function-origin.js';
import { callFunction, lookUp, traced } from '../invocations/call.js';
import { streamFunction } from '../invocations/streamed-call.js';
import { toStreamedResponse } from '../http/streamed-response.js';
import { Readable } from 'node:stream';
import { registerCallLimit } from '../invocations/call-limit.js';
import { isCorsHeader, isPreflight, joinVary, preflightHeaders, responseHeaders } from '../http/cors.js';

/** Sends a function's response. The platform's headers (x-skiff-*, traceresponse) are already on
 *  the reply and win: a function's x-skiff-* were dropped, and nothing here overwrites one set. */
/**
 * Sends a function's answer. The platform's headers (x-skiff-*, traceresponse) are already on the
 * reply and win: fromFunctionResult drops a function's x-skiff-*, and nothing here overwrites one
 * set. `cors`: the function has CORS settings, so the access-control-* headers are the platform's
 * (a function's own are dropped); Vary is both's.
 */
function answerWith(
  reply: FastifyReply,
  response: { statusCode: number; headers: Record<string, string>; cookies: string[]; body: Buffer | Readable },
  cors: boolean,
) {
  void reply.status(response.statusCode);
  for (const [header, value] of Object.entries(response.headers)) {
    if (cors && isCorsHeader(header)) continue;
    if (header === 'vary' && reply.hasHeader('vary')) void reply.header('vary', joinVary(String(reply.getHeader('vary')), value));
    else if (!reply.hasHeader(header)) void reply.header(header, value);
  }
  if (response.cookies.length > 0) void reply.header('set-cookie', response.cookies);
  return reply.send(response.body);
}

export function functionUrlRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.register(async (scope) => {
    // Counted against the function's tenant before the body is read (gateway/invocations/call-limit.ts).
    await registerCallLimit(
      scope,
      ctx,
      (request) => routeFunction(ctx.config.gateway.functions.domain, request.headers.host, request.raw.url ?? request.url)?.name,
    );
    // Bodies reach the function as they came: text as text, anything else base64.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.gateway.invokeBodyLimitBytes }, (_request, body, done) => done(null, body));

    // One catch-all, routed here rather than by fastify: on a function's own host every path is
    // that function's (`/fn/other` included), so no other function can be served from its origin.
    const handler = async (request: FastifyRequest, reply: FastifyReply) => {
      const url = request.raw.url ?? request.url;
      const route = routeFunction(ctx.config.gateway.functions.domain, request.headers.host, url);
      if (route === undefined) return reply.callNotFound();
      const { name, prefix } = route;
      // CORS first: a preflight carries no credentials, so it is answered before any key is
      // checked, and the platform's own errors (401, 429, 502...) carry the grant too.
      const cors = (await ctx.current.get(name))?.cors ?? null;
      if (cors) {
        if (isPreflight(request.method, request.headers)) return reply.status(204).headers(preflightHeaders(cors, request.headers)).send();
        void reply.headers(responseHeaders(cors, request.headers));
      }
      const { fn, caller } = await lookUp(ctx, name, request);
      return traced(ctx, request, reply, name, async (span) => {
        const event = toFunctionUrlEvent(
          { method: request.method, url, headers: request.headers, body: request.body as Buffer | undefined, remoteAddress: request.ip },
          name,
          prefix,
          request.id,
          new Date(),
          { tenant: fn.tenant, caller },
        );
        if (fn.invokeMode === 'RESPONSE_STREAM') {
          // A streaming handler's bytes go out as they come; any other handler answers whole.
          const answer = await streamFunction(ctx, { fn, caller }, event, span, reply);
          if (!answer.streamed) return answerWith(reply, fromFunctionResult(answer.value), cors !== null);
          const response = await toStreamedResponse(answer.contentType, answer.chunks);
          // Chunked transfer: no length, sent as written. A failure part way cuts the response
          // (its status is long sent); the call's record says why.
          return answerWith(reply, { ...response, body: Readable.from(response.body, { objectMode: false }) }, cors !== null);
        }
        const value = await callFunction(ctx, { fn, caller }, event, span, reply);
        return answerWith(reply, fromFunctionResult(value), cors !== null);
      });
    };
    // `call`: lookUp checks a key for `auth: "key"` functions itself (gateway/access.ts).
    const options = { config: { access: 'call' as const } };
    scope.all('/', options, handler);
    scope.all('/*', options, handler);
  });
}
