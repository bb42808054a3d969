/**
 * What travels through Redis between gateway, scheduler and worker. The job carries everything
 * the worker needs to run the call (the whole function version), so no database read sits on the
 * invocation path after the gateway. The function version itself: infra/functions/version.ts;
 * tenants' instance limits: infra/tenancy/instance-limits.ts; how a call ends and is recorded:
 * infra/calls/; workers' heartbeats and operators' orders: infra/fleet/.
 */
import type { ErrorBody } from '../errors.js';
import type { FunctionVersion } from '../functions/version.js';
import type { TenantEviction, TenantLimits } from '../tenancy/instance-limits.js';
import type { TraceCarrier } from '../telemetry.js';

export interface InvocationJob {
  id: string;
  fn: FunctionVersion;
  event: unknown;
  /** Reply stream of the waiting gateway (infra/queue/replies.ts); null for asynchronous calls. */
  replyTo: string | null;
  enqueuedAt: number;
  /** Give up (Unavailable) if the function has not started by then. */
  startBy: number;
  /** 1 for the first run of an asynchronous call, 2 for its first retry, ... */
  attempt: number;
  /** When the gateway accepted the asynchronous call (ms): its event's age counts from here.
   *  Absent on jobs queued before it existed: then `enqueuedAt`. */
  acceptedAt?: number;
  trace: TraceCarrier;
  /** The key that made the call, when the gateway checked one (its record names it). */
  callerKeyId?: string;
  /**
   * The tenant's limits on instances when the call was queued (from the gateway's quota cache),
   * so the scheduler enforces them without a query. Absent on jobs queued before quotas existed:
   * then nothing is enforced for the call.
   */
  tenantLimits?: TenantLimits;
  /**
   * A synchronous call whose response streams (a `RESPONSE_STREAM` function's URL): a streaming
   * handler's bytes go to the Redis stream `keys.responseStream(id)` as they come
   * (response-stream.ts), and its outcome's value is null. Other handlers answer as usual.
   */
  stream?: true;
  /** Set by the scheduler on a node job only: evict the tenant's own idle instances first. */
  evictTenant?: TenantEviction;
  /**
   * Set by a gateway that sent the call straight to a node it knows to hold a free warm instance
   * (infra/fleet/warm-routes.ts): the node runs it only on an instance free at once, and hands it
   * to the shared queue, for a scheduler to place, otherwise.
   */
  warm?: true;
}

export interface InvocationTimings {
  queuedMs: number;
  /** Time to get an instance: 0 when a warm one was idle. */
  acquireMs: number;
  runMs: number;
}

export type InvocationOutcome =
  | { id: string; ok: true; value: unknown; cold: boolean; workerId: string; timings: InvocationTimings }
  | { id: string; ok: false; error: ErrorBody; cold?: boolean; workerId?: string };

/** `image`: the version's image, which workers pull ahead of its first call. */
export type FunctionEvent = { type: 'deployed'; name: string; version: number; image?: string } | { type: 'deleted'; name: string };
