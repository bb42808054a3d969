/**
 * Types of the HTTP API that the gateway serves and the CLI (cli/client.ts) sends and reads: one
 * definition for both sides, so neither imports the other's files.
 */
import type { FunctionInfo } from '../db/function-store.js';
import type { WorkerHeartbeat, WorkerOrder } from '../fleet/heartbeat.js';
import type { Cors, InvokeMode, Runtime } from '../functions/version.js';
import type { Schedule } from '../schedules/expression.js';

/** The body of POST /v1/functions (gateway/routes/functions.ts; the CLI sends it too). */
export interface DeployBody {
  name: string;
  /** The tenant to deploy into: the key's own by default; only an admin key may name another. */
  tenant?: string;
  runtime: Runtime;
  handler: string;
  /** The code as a zip; or else `image`. */
  code?: { zip: string };
  /** An image in Skiff's registry built on a runtime image (docs/RUNTIMES.md); or else `code`. */
  image?: string;
  memoryMb?: number;
  timeoutMs?: number;
  concurrency?: number;
  idleTimeoutMs?: number;
  minWarm?: number;
  maxInstances?: number;
  auth?: 'none' | 'key';
  network?: 'none' | 'egress';
  idempotent?: boolean;
  /** How the function URL answers: `BUFFERED` (default) or `RESPONSE_STREAM` (docs/RUNTIMES.md, "Response streaming"). */
  invokeMode?: InvokeMode;
  /** Retries of a failed async call (Lambda's MaximumRetryAttempts; 0–100); default SKIFF_ASYNC_RETRIES. */
  maximumRetryAttempts?: number;
  /** An async event older than this is not run again (Lambda's MaximumEventAgeInSeconds); default 6 hours. */
  maximumEventAgeSeconds?: number;
  env?: Record<string, string>;
  /** EventBridge-style schedules: `{expression: "rate(5 minutes)" | "cron(0 12 * * ? *)"}` or `{everyMs}` (docs/SCHEDULES.md). */
  schedules?: Schedule[];
  /** The function URL's CORS settings (Lambda's `Cors`); absent: none. */
  cors?: Partial<Cors>;
}

/**
 * A function as the API shows it: its current version and the absolute URL that calls it. A key
 * whose role may not read env values (a viewer) sees the variables' names only.
 */
export type FunctionDescription = Omit<FunctionInfo, 'versionId' | 'env'> & { url: string; env?: Record<string, string>; envNames: string[] };

/** One node of GET /v1/workers: its last heartbeat, what an operator asked of it, and whether it is alive. */
export type WorkerListing = WorkerHeartbeat & {
  /** null: nothing asked. */
  order: WorkerOrder | null;
  /** How old its last heartbeat is, ms. */
  lastHeartbeatMs: number;
  /** Its heartbeat is within SKIFF_HEARTBEAT_TTL_MS (infra/fleet/heartbeat.ts). */
  alive: boolean;
};
