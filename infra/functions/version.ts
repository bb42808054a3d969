/**
 * What a function is, once deployed: the runtimes Skiff runs and one immutable version of a
 * function. Stored by infra/db/function-store.ts, carried whole in every invocation job
 * (infra/queue/jobs.ts), run by the worker; what the bootstrap is told of it is `FunctionSpec`
 * (runtime/protocol/messages.ts).
 */
import type { FunctionSpec } from '../../runtime/protocol/messages.js';
import type { Schedule } from '../schedules/expression.js';

export const RUNTIMES = ['nodejs20', 'nodejs22', 'nodejs24', 'python3.11', 'provided'] as const;
export type Runtime = (typeof RUNTIMES)[number];

/** How a function URL answers (Lambda's function URL InvokeMode): whole, or streamed as it is written. */
export const INVOKE_MODES = ['BUFFERED', 'RESPONSE_STREAM'] as const;
export type InvokeMode = (typeof INVOKE_MODES)[number];

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
  /** `RESPONSE_STREAM`: a handler wrapped in `awslambda.streamifyResponse` streams through the
   *  function URL; `BUFFERED` (the default): its output is answered whole. */
  invokeMode: InvokeMode;
  /** Safe to run twice: a synchronous call lost with its node is run again elsewhere, not answered 503. */
  idempotent: boolean;
  /** Retries of a failed async call (0–100); absent: the platform's SKIFF_ASYNC_RETRIES. */
  maximumRetryAttempts?: number;
  /** An async event older than this is not run again (60–21600); absent: SKIFF_MAX_EVENT_AGE_SECONDS. */
  maximumEventAgeSeconds?: number;
  /** When the platform calls it by itself (EventBridge-style schedules, infra/schedules/); empty: never. */
  schedules: readonly Schedule[];
  /** Its function URL's CORS settings (Lambda's function URL `Cors`); null: the platform adds no CORS headers. */
  cors: Cors | null;
}

/**
 * Lambda's function URL `Cors` setting: which origins a browser may call the URL from, with what.
 * Names of headers compare case-insensitively; `*` allows any origin (never with credentials),
 * method or header. Applied by gateway/http/cors.ts.
 */
export interface Cors {
  allowOrigins: readonly string[];
  allowMethods: readonly string[];
  allowHeaders: readonly string[];
  exposeHeaders: readonly string[];
  /** Seconds a browser may keep a preflight's answer (0–86400). */
  maxAge: number;
  allowCredentials: boolean;
}
