/**
 * What the short warm path saves (infra/fleet/warm-routes.ts, infra/queue/straight-calls.ts): warm
 * calls to a platform with it (SKIFF_WARM_PATH on, the default) beside the same calls to a platform
 * without it (every call through the shared queue and a scheduler), both in this process on the
 * same Redis and PostgreSQL, so the machine's noise falls on both alike: one connection,
 * interleaved call by call; then calls/s with 32 in flight, the two taking turns.
 * `npm run bench -- --warm-path`; the deployed figures (deployed/warm.ts) measure the path as
 * users run it.
 */
import { rm } from 'node:fs/promises';
import { performance } from 'node:perf_hooks';
import { deploy, invoke, noop, closeClient } from './http.js';
import { progress, startBenchPlatform, startServices, stopPlatform, type Platform } from './harness.js';
import { percentiles, round, type Percentiles } from './stats.js';

export interface WarmPathCost {
  warmPathMs: Percentiles;
  scheduledMs: Percentiles;
  warmPathPerSec: number;
  scheduledPerSec: number;
}

const CALLS = 3000;
const WARMUP = 300;
const IN_FLIGHT = 32;
const TURN_MS = 4000;
const TURNS = 2;

async function timed(platform: Platform, name: string): Promise<number> {
  const started = performance.now();
  const reply = await invoke(platform.url, name);
  if (reply.status !== 200) throw new Error(`a call answered ${reply.status}: ${reply.body}`);
  return performance.now() - started;
}

/** Calls answered in `ms` with `inFlight` callers, each calling again as soon as it is answered. */
async function rate(platform: Platform, name: string, inFlight: number, ms: number): Promise<number> {
  const until = performance.now() + ms;
  let answered = 0;
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (performance.now() < until) {
        await timed(platform, name);
        answered++;
      }
    }),
  );
  return answered / (ms / 1000);
}

export async function warmPathCost(straight: Platform, placed: Platform): Promise<WarmPathCost> {
  // Instances enough for 32 at once on each (concurrency 1): made by the warm-up bursts.
  for (const platform of [straight, placed]) {
    await deploy(platform, { name: 'noop', source: noop('warm-path'), maxInstances: IN_FLIGHT });
    for (let round = 0; round < 3; round++) await Promise.all(Array.from({ length: IN_FLIGHT }, () => timed(platform, 'noop')));
  }
  const a: number[] = [];
  const b: number[] = [];
  for (let i = 0; i < WARMUP + CALLS; i++) {
    const x = await timed(straight, 'noop');
    const y = await timed(placed, 'noop');
    if (i >= WARMUP) {
      a.push(x);
      b.push(y);
    }
  }
  let straightCalls = 0;
  let placedCalls = 0;
  for (let turn = 0; turn < TURNS; turn++) {
    straightCalls += await rate(straight, 'noop', IN_FLIGHT, TURN_MS);
    placedCalls += await rate(placed, 'noop', IN_FLIGHT, TURN_MS);
  }
  return {
    warmPathMs: percentiles(a),
    scheduledMs: percentiles(b),
    warmPathPerSec: Math.round(straightCalls / TURNS),
    scheduledPerSec: Math.round(placedCalls / TURNS),
  };
}

export async function warmPathBench(): Promise<void> {
  const services = await startServices();
  const platforms: Platform[] = [];
  try {
    const env = { SKIFF_POOL_SIZE: '1', SKIFF_WORKER_CONCURRENCY: String(IN_FLIGHT * 2), SKIFF_TENANT_CALLS_PER_SECOND: '1000000' };
    progress('starting two platforms: with the short warm path, and without it');
    platforms.push(await startBenchPlatform({ ...env, SKIFF_WARM_PATH: 'on' }));
    platforms.push(await startBenchPlatform({ ...env, SKIFF_WARM_PATH: 'off' }));
    const [straight, placed] = platforms as [Platform, Platform];
    progress(`${CALLS} warm calls each, interleaved; then ${IN_FLIGHT} in flight, ${TURNS} turns of ${TURN_MS / 1000} s each`);
    const r = await warmPathCost(straight, placed);
    const ratio = (x: number, y: number): string => `${round(x / y, 2)}×`;
    console.log(
      `warm call, one connection (ms): warm path p50 ${r.warmPathMs.p50} p99 ${r.warmPathMs.p99}; through a scheduler p50 ${r.scheduledMs.p50} p99 ${r.scheduledMs.p99}; ${ratio(r.warmPathMs.p50, r.scheduledMs.p50)} at p50`,
    );
    console.log(
      `warm calls/s, ${IN_FLIGHT} in flight: warm path ${r.warmPathPerSec}; through a scheduler ${r.scheduledPerSec}; ${ratio(r.warmPathPerSec, r.scheduledPerSec)}`,
    );
  } finally {
    closeClient();
    for (const platform of platforms) await stopPlatform(platform);
    await services.stop();
    await rm(services.root, { recursive: true, force: true });
  }
}
