/**
 * One synchronous call as both invoke routes make it: look the function up, open the trace
 * (continuing the caller's `traceparent`), dispatch, count it. Returns the handler's value or
 * throws the SkiffError the call ended with.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { SpanKind, SpanStatusCode, type Span } from '@opentelemetry/api';
import { SkiffError, isSkiffError } from '../../infra/errors.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { InvocationOutcome } from '../../infra/queue/jobs.js';
import type { TenantLimits } from '../../infra/tenancy/instance-limits.js';
import { contextOf, type TraceCarrier } from '../../infra/telemetry.js';
import type { GatewayContext } from '../context.js';
import { versionOf } from '../../infra/db/function-store.js';
import { notFound } from '../routes/functions.js';
import { authenticate, authorizeFunction } from '../auth.js';
import type { Principal } from '../../infra/tenancy/roles.js';

/** A function about to be called, and who calls it when the platform checked a key for it. */
export interface CallTarget {
  fn: FunctionVersion;
  /** The verified caller of an `auth: "key"` function; undefined for `auth: "none"` ones. */
  caller: Principal | undefined;
}

/**
 * The function's current version; if the function asks for a key, checks it: a key of the
 * function's tenant whose role may invoke (another tenant's key finds no such function).
 */
export async function lookUp(ctx: GatewayContext, name: string, request: FastifyRequest): Promise<CallTarget> {
  const fn = await ctx.current.get(name);
  if (!fn) throw notFound(name);
  if (fn.auth !== 'key') return { fn: versionOf(fn), caller: undefined };
  const caller = await authenticate(ctx.apiKeys, request);
  authorizeFunction(caller, 'functions:invoke', fn);
  return { fn: versionOf(fn), caller };
}

/** The limits on instances of `fn`'s tenant, for its job: from the quota cache, so no query per call. */
export async function tenantLimits(ctx: GatewayContext, fn: FunctionVersion): Promise<TenantLimits> {
  const { maxInstances, maxMemoryMb } = await ctx.tenantQuotas.get(fn.tenant);
  return { maxInstances, maxMemoryMb };
}

/** Runs `work` inside a server span for the request; the reply carries the trace id. */
export async function traced<T>(ctx: GatewayContext, request: FastifyRequest, reply: FastifyReply, name: string, work: (span: Span) => Promise<T>): Promise<T> {
  const span = ctx.tracer.startSpan(
    'gateway.invoke',
    { kind: SpanKind.SERVER, attributes: { 'skiff.function': name, 'http.request.method': request.method } },
    contextOf(request.headers as TraceCarrier),
  );
  const { traceId, spanId, traceFlags } = span.spanContext();
  void reply.header('x-skiff-trace-id', traceId);
  void reply.header('traceresponse', `00-${traceId}-${spanId}-0${traceFlags.toString(16)}`);
  try {
    return await work(span);
  } catch (error) {
    span.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
    throw error;
  } finally {
    span.end();
  }
}

/** 413 unless an asynchronous call's event is within the platform's bound (SKIFF_ASYNC_EVENT_LIMIT_BYTES). */
export function checkAsyncEventSize(ctx: GatewayContext, size: number): void {
  const limit = ctx.config.gateway.asyncEventLimitBytes;
  if (size > limit) throw new SkiffError('PayloadTooLarge', `an asynchronous event is at most ${limit} bytes; this one is ${size}`, { field: 'body' });
}

/** Accepts an asynchronous call (recorded, then queued: the dispatcher's submit) and answers its id. */
export async function submitAsync(
  ctx: GatewayContext,
  target: CallTarget,
  event: unknown,
  span: Span,
  idempotencyKey?: string,
): Promise<{ id: string; replayed: boolean }> {
  const limits = await tenantLimits(ctx, target.fn);
  return ctx.dispatcher.submit(target.fn, event, span, { callerKeyId: target.caller?.keyId, limits, idempotencyKey });
}

/** `streamId`: the call streams, under that id (streamed-call.ts). */
export async function callFunction(
  ctx: GatewayContext,
  target: CallTarget,
  event: unknown,
  span: Span,
  reply: FastifyReply,
  streamId?: string,
): Promise<unknown> {
  const { fn } = target;
  span.setAttribute('skiff.version', fn.version);
  const started = process.hrtime.bigint();
  const count = (outcome: string, start: string): void => {
    ctx.metrics.latency.observe({ function: fn.name, outcome }, Number(process.hrtime.bigint() - started) / 1e9);
    ctx.metrics.invocations.inc({ function: fn.name, outcome, start });
  };
  let outcome: InvocationOutcome;
  try {
    outcome = await ctx.dispatcher.call(fn, event, span, { callerKeyId: target.caller?.keyId, limits: await tenantLimits(ctx, fn), streamId });
  } catch (error) {
    // Refused before any worker saw it (back-pressure, the queue unreachable): counted too.
    count(isSkiffError(error) ? error.code : 'Internal', 'none');
    throw error;
  }
  void reply.header('x-skiff-invocation-id', outcome.id);
  if (outcome.workerId !== undefined) span.setAttribute('skiff.worker', outcome.workerId);
  if (outcome.cold !== undefined) {
    void reply.header('x-skiff-cold-start', String(outcome.cold));
    span.setAttribute('skiff.cold_start', outcome.cold);
  }
  count(outcome.ok ? 'ok' : outcome.error.code, outcome.cold === undefined ? 'none' : outcome.cold ? 'cold' : 'warm');
  if (!outcome.ok) throw SkiffError.fromBody(outcome.error);
  return outcome.value;
}
