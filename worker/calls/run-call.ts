/**
 * Runs one call in an instance of its function: acquires the instance (warm, pooled or created),
 * invokes it before the function's timeout, releases it, and turns the runtime's answer into the
 * call's outcome. Cold starts are measured into the histogram and the trace. Ending the call
 * (replying, recording) is the queue consumer's (node-queue.ts).
 */
import type { Redis } from 'ioredis';
import { SpanStatusCode, trace, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { SkiffError, isSkiffError } from '../../infra/errors.js';
import type { Logger } from '../../infra/log.js';
import type { InvocationJob, InvocationOutcome } from '../../infra/queue/jobs.js';
import type { KeySpace } from '../../infra/queue/names.js';
import { ResponseStreamWriter } from '../../infra/queue/response-stream.js';
import { carrierOf } from '../../infra/telemetry.js';
import { RESULT_TOO_LARGE } from '../../runtime/protocol/messages.js';
import type { Acquired, InstanceSet } from '../instances/instance-set.js';
import { coldStartSteps, type ColdStartStep, type WorkerMetrics } from '../metrics.js';

export interface RunCallDeps {
  /** This node's id, named in every outcome. */
  workerId: string;
  instances: InstanceSet;
  tracer: Tracer;
  /** Cold-start phases are recorded here when given. */
  metrics?: WorkerMetrics;
  log: Logger;
  /** Where streamed calls' bytes go (infra/queue/response-stream.ts). */
  redis: Redis;
  keys: KeySpace;
}

/**
 * `span` is the call's own (`worker.invoke`) and `inSpan` the context holding it; `clock` times the
 * cold-start steps on the span's clock; `startedAt` is when the node took the call (Date.now());
 * `taken`: the instance, when the caller took one already (a straight warm call).
 */
export async function runCall(
  deps: RunCallDeps,
  data: InvocationJob,
  startedAt: number,
  span: Span,
  inSpan: Context,
  clock: () => number,
  taken?: Acquired,
): Promise<InvocationOutcome> {
  const acquireStart = clock();
  // The tenant's limits, and the scheduler's order to evict its own idle instances first.
  const { instance, kind, timings } = taken ?? (await deps.instances.acquire(data.fn, data.startBy, { limits: data.tenantLimits, evict: data.evictTenant }));
  const acquiredAtMs = clock();
  const acquiredAt = Date.now();
  span.setAttributes({ 'skiff.start': kind, 'skiff.sandbox': instance.sandbox.id });
  if (kind !== 'warm') {
    // The same measured steps become the cold-start histogram and the spans of the phases.
    const steps = coldStartSteps(kind, timings, kind === 'created' ? instance.sandbox.created : undefined, acquireStart, acquiredAtMs);
    deps.metrics?.observeColdStart(kind, steps);
    traceSteps(deps.tracer, steps, inSpan);
  }
  // User code's spans join the trace under this one: its traceparent goes into the function.
  const handlerSpan = deps.tracer.startSpan('handler', { attributes: { 'skiff.function': data.fn.name, 'skiff.invocation_id': data.id } }, inSpan);
  const traceparent = carrierOf(handlerSpan).traceparent;
  // A streamed call's bytes go to its gateway as they come; the stream exists once there is a first chunk.
  let stream: ResponseStreamWriter | undefined;
  const onChunk =
    data.stream && data.replyTo !== null
      ? (chunk: Buffer, contentType: string | undefined) => {
          stream ??= new ResponseStreamWriter(deps.redis, deps.keys.responseStream(data.id));
          stream.write(chunk, contentType);
        }
      : undefined;
  try {
    const result = await instance.sandbox
      .invoke(
        { id: data.id, event: data.event, deadlineMs: acquiredAt + data.fn.timeoutMs, ...(traceparent ? { traceparent } : {}) },
        data.fn.timeoutMs,
        onChunk,
      )
      .catch((error: unknown) => {
        handlerSpan.setStatus({ code: SpanStatusCode.ERROR, message: (error as Error).message });
        if (isSkiffError(error, 'FunctionOutOfMemory')) deps.instances.outcome(data.fn, true);
        throw error;
      })
      .finally(() => endStream(stream));
    deps.instances.outcome(data.fn, false);
    handlerSpan.setAttribute('skiff.handler_ms', result.durationMs);
    if (!result.ok) handlerSpan.setStatus({ code: SpanStatusCode.ERROR, message: result.error.message });
    const cold = kind !== 'warm';
    if (cold) deps.log.debug({ invocation: data.id, kind, ...timings }, 'cold start');
    if (!result.ok && result.error.type === RESULT_TOO_LARGE) {
      // The runtime measured the result and refused to send it; the instance stays usable.
      const error = new SkiffError('FunctionResponseTooLarge', result.error.message);
      return { id: data.id, ok: false, error: error.toBody(), cold, workerId: deps.workerId };
    }
    if (!result.ok) {
      const error = new SkiffError('FunctionError', result.error.message, {
        errorType: result.error.type,
        ...(result.error.stack ? { stack: result.error.stack } : {}),
      });
      return { id: data.id, ok: false, error: error.toBody(), cold, workerId: deps.workerId };
    }
    return {
      id: data.id,
      ok: true,
      value: result.value,
      cold,
      workerId: deps.workerId,
      timings: { queuedMs: startedAt - data.enqueuedAt, acquireMs: acquiredAt - startedAt, runMs: result.durationMs },
    };
  } finally {
    handlerSpan.end();
    deps.instances.release(instance);
  }
}

/** Ends a call's stream before its outcome is published: the gateway then finds every entry there. */
async function endStream(stream: ResponseStreamWriter | undefined): Promise<void> {
  try {
    await stream?.end();
  } catch (error) {
    throw new SkiffError('Unavailable', 'the response stream could not be written to Redis', { cause: error });
  }
}

/** Spans for the steps of a cold start, made after the fact with their measured times. */
function traceSteps(tracer: Tracer, steps: readonly ColdStartStep[], inSpan: Context): void {
  const made = new Map<string, Context>();
  for (const step of steps) {
    if (step.phase === 'total' || (step.phase === 'wait' && step.endMs - step.startMs < 1)) continue;
    const parent = (step.parent && made.get(step.parent)) || inSpan;
    const child = tracer.startSpan(step.span, { startTime: step.startMs, attributes: { 'skiff.phase': step.phase } }, parent);
    made.set(step.phase, trace.setSpan(parent, child));
    child.end(step.endMs);
  }
}
