/**
 * What travels through Redis between gateway, scheduler and worker. The job carries everything
 * the worker needs to run the call (the whole function version), so no database read sits on the
 * invocation path after the gateway. Workers' heartbeats and operators' orders: infra/fleet/.
 */
import type { FunctionSpec } from '../../runtime/protocol/messages.js';
import type { ErrorBody } from '../errors.js';
import type { TraceCarrier } from '../telemetry.js';

export const RUNTIMES = ['nodejs20', 'python3.11'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** One immutable version of a function, as deployed. */
export interface FunctionVersion extends FunctionSpec {
  /** Unique across all functions and all time: a deleted and re-created function never reuses one. */
  versionId: string;
  /** The tenant that owns the function (infra/tenancy). */
  tenant: string;
  runtime: Runtime;
  /** sha256 of the deployed zip; null for a version deployed by image reference. */
  codeSha256: string | null;
  /** The OCI image the version runs, by digest: `skiff/functions/<name>@sha256:...` in Skiff's registry. */
  image: string;
  /** Calls one instance serves at once. */
  concurrency: number;
  /** An idle instance is destroyed after this long. */
  idleTimeoutMs: number;
  /** Instances kept ready even with no calls (0: scale to zero). */
  minWarm: number;
  /** Most instances of this version at once; further calls wait for one to free up. */
  maxInstances: number;
  /** 'key': calls need an API key; 'none': anyone may call. */
  auth: 'none' | 'key';
  /** 'egress': its containers get a way out to the internet; 'none': loopback only. */
  network: 'none' | 'egress';
  /** Safe to run twice: a synchronous call lost with its node is run again elsewhere, not answered 503. */
  idempotent: boolean;
  /** Retries of a failed async call (0–100); absent: the platform's SKIFF_ASYNC_RETRIES. */
  maximumRetryAttempts?: number;
  /** An async event older than this is not run again (60–21600); absent: SKIFF_MAX_EVENT_AGE_SECONDS. */
  maximumEventAgeSeconds?: number;
}

export interface InvocationJob {
  id: string;
  fn: FunctionVersion;
  event: unknown;
  /** Reply channel of the waiting gateway; null for asynchronous calls. */
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
  /** Set by the scheduler on a node job only: evict the tenant's own idle instances first. */
  evictTenant?: TenantEviction;
}

/** The part of a tenant's quotas (infra/tenancy/quotas.ts) that bounds its instances, fleet-wide. */
export interface TenantLimits {
  /** Busy and idle instances of the tenant's functions together. */
  maxInstances: number;
  /** Memory of those instances together, in MiB. */
  maxMemoryMb: number;
}

/**
 * An order to a worker, for a call whose tenant is at its limits: before making the call's
 * instance, destroy idle instances of `tenant` (least recently used first, never below a
 * version's minWarm) until at least `instances` of them and `memoryMb` of their memory are gone.
 * The tenant's own idle instances go before its calls wait.
 */
export interface TenantEviction {
  tenant: string;
  instances: number;
  memoryMb: number;
}

/** What one tenant holds on one node. */
export interface TenantUsage {
  /** Busy and idle instances together, those being made included. */
  instances: number;
  memoryMb: number;
  /** The idle instances the node would evict (a version's minWarm ones are kept), and their memory. */
  idleInstances: number;
  idleMemoryMb: number;
}

/** What every record of a job's outcome names: the call, its function and tenant, and its caller. */
export function recordBase(job: InvocationJob): { id: string; functionName: string; functionVersion: number; tenant: string; callerKeyId?: string } {
  return {
    id: job.id,
    functionName: job.fn.name,
    functionVersion: job.fn.version,
    tenant: job.fn.tenant,
    ...(job.callerKeyId === undefined ? {} : { callerKeyId: job.callerKeyId }),
  };
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
