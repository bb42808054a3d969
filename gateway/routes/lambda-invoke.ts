/**
 * The AWS Lambda Invoke API (docs/LAMBDA.md), for AWS SDKs and `aws lambda invoke --endpoint-url`:
 * - POST /2015-03-31/functions/{FunctionName}/invocations: `X-Amz-Invocation-Type`
 *   RequestResponse (200, the payload), Event (202: accepted as every asynchronous call is) or
 *   DryRun (204); a failed function is 200 `X-Amz-Function-Error: Unhandled` with
 *   `{errorMessage, errorType, stackTrace}`; `X-Amz-Log-Type: Tail` adds the log's last 4 KiB.
 * - POST /2021-11-15/functions/{FunctionName}/response-streaming-invocations: the same call,
 *   answered in event-stream framing (PayloadChunk events, then InvokeComplete).
 * Every request is signed (SigV4) or carries a Bearer key, and the key's role must invoke and its
 * tenant own the function (gateway/lambda/caller.ts); errors are answered as Lambda's.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Span } from '@opentelemetry/api';
import { SkiffError, invalidRequest, isSkiffError } from '../../infra/errors.js';
import { versionOf } from '../../infra/db/function-store.js';
import { INVOCATION_TYPES, type FunctionErrorPayload, type InvocationType, type LambdaFunctionRef } from '../../infra/contracts/lambda-api.js';
import type { Principal } from '../../infra/tenancy/roles.js';
import type { GatewayContext } from '../context.js';
import { authorizeFunction } from '../auth.js';
import { callFunction, checkAsyncEventSize, submitAsync, traced, type CallTarget } from '../invocations/call.js';
import { streamFunction } from '../invocations/streamed-call.js';
import { registerCallLimit } from '../invocations/call-limit.js';
import { lambdaCaller } from '../lambda/caller.js';
import { functionErrorPayload, registerLambdaErrors } from '../lambda/errors.js';
import { eventStream, wholePayload, type ChunkSource } from '../lambda/event-stream.js';
import { FUNCTION_REF_MAX, parseFunctionRef, qualifiedVersion } from '../lambda/function-ref.js';
import { LogTail } from '../lambda/log-tail.js';
import { outputHeaders, parseEvent } from './invoke.js';

export const INVOKE_PATH = '/2015-03-31/functions/:name/invocations';
export const STREAM_PATH = '/2021-11-15/functions/:name/response-streaming-invocations';

type LambdaRequest = FastifyRequest<{ Params: { name: string }; Querystring: { Qualifier?: string }; Body: Buffer | undefined }>;

const schema = {
  params: { type: 'object', properties: { name: { type: 'string', minLength: 1, maxLength: FUNCTION_REF_MAX } } },
  querystring: { type: 'object', properties: { Qualifier: { type: 'string', maxLength: 128 } } },
} as const;

/** What a synchronous call came to: the payload, or the function's failure, and the log tail if asked. */
interface BufferedResult {
  payload: Buffer;
  error: FunctionErrorPayload | undefined;
  logResult: string | undefined;
}

export function lambdaInvokeRoutes(app: FastifyInstance, ctx: GatewayContext): void {
  app.register(async (scope) => {
    registerLambdaErrors(scope);
    // Counted per tenant before the body is read, as on Skiff's own invoke route.
    await registerCallLimit(scope, ctx, (request) => refNameOf(request));
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: ctx.config.gateway.invokeBodyLimitBytes }, (_request, body, done) => done(null, body));

    scope.post(INVOKE_PATH, { schema, config: { access: 'call' } }, async (request: LambdaRequest, reply) => {
      const { target, type, tail } = await prepare(ctx, request, reply);
      if (type === 'DryRun') return reply.status(204).send();
      return traced(ctx, request, reply, target.fn.name, async (span) => {
        if (type === 'Event') {
          checkAsyncEventSize(ctx, request.body?.length ?? 0);
          const { id } = await submitAsync(ctx, target, parseEvent(request.body), span);
          return reply.status(202).header('x-amzn-requestid', id).send();
        }
        const result = await callBuffered(ctx, request, reply, target, span, tail);
        if (result.error) void reply.header('x-amz-function-error', 'Unhandled');
        if (result.logResult !== undefined) void reply.header('x-amz-log-result', result.logResult);
        return reply.status(200).type('application/json').send(result.payload);
      });
    });

    scope.post(STREAM_PATH, { schema, config: { access: 'call' } }, async (request: LambdaRequest, reply) => {
      const { target, type, tail } = await prepare(ctx, request, reply);
      if (type === 'DryRun') return reply.status(204).send();
      if (type === 'Event') throw invalidRequest('X-Amz-Invocation-Type', 'InvokeWithResponseStream takes RequestResponse or DryRun');
      return traced(ctx, request, reply, target.fn.name, async (span) => {
        // A function deployed RESPONSE_STREAM whose handler streams sends its bytes as they come;
        // any other streams its whole payload as one chunk, as Lambda does.
        if (target.fn.invokeMode === 'RESPONSE_STREAM') {
          const source = await streamedSource(ctx, request, reply, target, span, tail);
          return reply
            .status(200)
            .type('application/vnd.amazon.eventstream')
            .send(Readable.from(eventStream(source)));
        }
        const result = await callBuffered(ctx, request, reply, target, span, tail);
        const source: ChunkSource = wholePayload(
          result.error ? Buffer.alloc(0) : result.payload,
          result.error
            ? { ErrorCode: result.error.errorType, ErrorDetails: JSON.stringify(result.error), ...logField(result.logResult) }
            : logField(result.logResult),
        );
        return reply
          .status(200)
          .type('application/vnd.amazon.eventstream')
          .send(Readable.from(eventStream(source)));
      });
    });
  });
}

/** The caller, the function and version it may call, and how: everything checked before any work. */
async function prepare(ctx: GatewayContext, request: LambdaRequest, reply: FastifyReply): Promise<{ target: CallTarget; type: InvocationType; tail: boolean }> {
  const who = await lambdaCaller(ctx.apiKeys, request, request.body ?? Buffer.alloc(0));
  const ref = parseFunctionRef(request.params.name, request.query.Qualifier);
  const type = oneOf(request, 'x-amz-invocation-type', INVOCATION_TYPES, 'RequestResponse');
  const tail = oneOf(request, 'x-amz-log-type', ['None', 'Tail'] as const, 'None') === 'Tail';
  const target = await resolve(ctx, who, ref);
  outputHeaders(reply).header('x-amz-executed-version', String(target.fn.version));
  return { target, type, tail };
}

/** The version `ref` names, if `who` may invoke it: another tenant's (or account's) is 404, as a missing one. */
async function resolve(ctx: GatewayContext, who: Principal, ref: LambdaFunctionRef): Promise<CallTarget> {
  const version = qualifiedVersion(ref);
  const info = version === undefined ? await ctx.current.get(ref.name) : await ctx.functions.version(ref.name, version);
  const missing = `Function not found: ${ref.name}${ref.qualifier === undefined ? '' : `:${ref.qualifier}`}`;
  if (!info || (ref.account !== undefined && ref.account !== info.tenant)) throw new SkiffError('FunctionNotFound', missing);
  authorizeFunction(who, 'functions:invoke', info);
  return { fn: versionOf(info), caller: who };
}

async function callBuffered(
  ctx: GatewayContext,
  request: LambdaRequest,
  reply: FastifyReply,
  target: CallTarget,
  span: Span,
  withTail: boolean,
): Promise<BufferedResult> {
  const event = parseEvent(request.body);
  const tail = withTail ? await LogTail.open(ctx, target.fn.name, request.log) : undefined;
  let payload: Buffer;
  let error: FunctionErrorPayload | undefined;
  try {
    payload = Buffer.from(JSON.stringify((await callFunction(ctx, target, event, span, reply)) ?? null));
  } catch (thrown) {
    error = await asFunctionError(thrown, tail);
    payload = Buffer.from(JSON.stringify(error));
  }
  const id = String(reply.getHeader('x-skiff-invocation-id') ?? '');
  void reply.header('x-amzn-requestid', id);
  return { payload, error, logResult: tail === undefined ? undefined : await tail.take(id, ctx.config.lambda.logTailWaitMs) };
}

/** A call's failure as Lambda's function error payload; any other failure (the platform's) is thrown on, the tail closed. */
async function asFunctionError(thrown: unknown, tail: LogTail | undefined): Promise<FunctionErrorPayload> {
  const failed = isSkiffError(thrown) ? functionErrorPayload(thrown) : undefined;
  if (failed !== undefined) return failed;
  await tail?.close();
  throw thrown;
}

/**
 * A call of a RESPONSE_STREAM function as a chunk source: a streaming handler's bytes as they come
 * (the prelude of HttpResponseStream.from included, as Lambda passes it on), or a handler's whole
 * answer as one chunk. A failure before the first byte is answered as callBuffered's; one part way
 * ends the stream with InvokeComplete naming it.
 */
async function streamedSource(
  ctx: GatewayContext,
  request: LambdaRequest,
  reply: FastifyReply,
  target: CallTarget,
  span: Span,
  withTail: boolean,
): Promise<ChunkSource> {
  const tail = withTail ? await LogTail.open(ctx, target.fn.name, request.log) : undefined;
  const logResult = async (): Promise<{ LogResult?: string }> =>
    logField(tail === undefined ? undefined : await tail.take(String(reply.getHeader('x-skiff-invocation-id') ?? ''), ctx.config.lambda.logTailWaitMs));
  let answer: Awaited<ReturnType<typeof streamFunction>>;
  try {
    answer = await streamFunction(ctx, target, parseEvent(request.body), span, reply);
  } catch (thrown) {
    const failed = await asFunctionError(thrown, tail);
    const complete = { ErrorCode: failed.errorType, ErrorDetails: JSON.stringify(failed), ...(await logResult()) };
    return wholePayload(Buffer.alloc(0), complete);
  } finally {
    void reply.header('x-amzn-requestid', String(reply.getHeader('x-skiff-invocation-id') ?? ''));
  }
  if (!answer.streamed) return wholePayload(Buffer.from(JSON.stringify(answer.value ?? null)), await logResult());
  const { chunks } = answer;
  let failure: FunctionErrorPayload | undefined;
  return {
    chunks: (async function* () {
      try {
        for await (const chunk of chunks) yield chunk;
      } catch (thrown) {
        if (!isSkiffError(thrown)) throw thrown;
        failure = functionErrorPayload(thrown);
      }
    })(),
    complete: async () => ({ ...(failure ? { ErrorCode: failure.errorType, ErrorDetails: JSON.stringify(failure) } : {}), ...(await logResult()) }),
  };
}

function oneOf<T extends string>(request: FastifyRequest, header: string, allowed: readonly T[], fallback: T): T {
  const value = request.headers[header];
  if (value === undefined) return fallback;
  if (typeof value === 'string' && (allowed as readonly string[]).includes(value)) return value as T;
  throw invalidRequest(header, `${header} must be one of ${allowed.join(', ')}`);
}

function logField(logResult: string | undefined): { LogResult?: string } {
  return logResult === undefined ? {} : { LogResult: logResult };
}

/** The function name a request's path names, for the call limit (undefined when it names none). */
function refNameOf(request: FastifyRequest): string | undefined {
  const raw = (request.params as { name?: string }).name;
  if (raw === undefined) return undefined;
  try {
    return parseFunctionRef(raw, undefined).name;
  } catch {
    // Not a function name: the route answers 400 for it, uncounted.
    return undefined;
  }
}
