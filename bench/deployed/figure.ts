/**
 * What a figure of the deployed bench is: a module that measures one thing on the platform as
 * `npm start` runs it (bringup.ts) through the external callers (load.ts) and returns its table
 * rows, beside a baseline measured in the same run. main.ts lists the figures; run.ts runs them in
 * that order on one platform, each after the ones before it (a later figure may use an earlier
 * one's baseline, as warm calls/s uses the /healthz rate).
 */
import type { Deployed } from '../bringup.js';
import type { FunctionToDeploy } from '../http.js';
import type { Caller } from '../load.js';
import type { Scrape } from '../scrape.js';
import type { Percentiles } from '../stats.js';

/** One line of the table: the figure, Skiff's value, the baseline's, their ratio, the aim, met. */
export interface Row {
  figure: string;
  skiff: string;
  baseline: string;
  ratio: string;
  aim: string;
  /** null: not measured, or no aim. */
  met: boolean | null;
}

/** Measured before the platform is up, on a quiet machine (baselines.ts), and by earlier figures. */
export interface Baselines {
  /** A container made, run and removed with `runc run` per call, one at a time. */
  runcRunPerCallMs: Percentiles | null;
  /** Serial container creation: 1000 ÷ the mean of `runc run` per call. */
  serialCreationPerSec: number | null;
  /** `node -e` spawned per call on the host. */
  nodeSpawnPerCallMs: Percentiles | null;
  /** Sequential calls on an already-warm container's socket with the runtime protocol, no platform. */
  directSocketMs: Percentiles | null;
  /** The same at 32 in flight. */
  directSocketPerSec: number | null;
  /** The gateway's GET /healthz at 32 connections (gateway-floor.ts): the floor of any call through it. */
  healthzPerSec: number | null;
}

export interface FigureContext {
  platform: Deployed;
  caller: Caller;
  baselines: Baselines;
  /** Ready sandboxes per runtime the worker keeps (SKIFF_POOL_SIZE, 2 by default). */
  poolSize: number;
  progress(line: string): void;
  deploy(fn: FunctionToDeploy): Promise<void>;
  /** POST URL of a function's synchronous invoke. */
  invokeUrl(name: string): string;
  /** The worker's metrics now. */
  scrape(): Promise<Scrape>;
  /** Until every runtime's pool holds poolSize ready sandboxes. */
  waitForPool(timeoutMs?: number): Promise<void>;
}

export interface Measured {
  rows: Row[];
  /** The figure's numbers, as written to latest.json. */
  data: Record<string, unknown>;
  /** Where the time went (from the worker's metrics), printed under the table. */
  phases?: string[];
  notes?: string[];
}

export interface Figure {
  /** Its entry in latest.json's `figures`. */
  key: string;
  /** The progress line when it starts. */
  title: string;
  measure(ctx: FigureContext): Promise<Measured>;
}
