/**
 * Latency and throughput through the real gateway over HTTP: cold starts (with and without a
 * pre-created sandbox), sequential warm calls, and calls per second at a fixed number in flight.
 */
import { performance } from 'node:perf_hooks';
import { deploy, invoke, noop } from './http.js';
import { poolSize, sleep, waitForFullPool, type Platform } from './harness.js';

/**
 * First calls to `count` freshly deployed functions, each with its own code. With a pool, each
 * call waits for the pool to be full again first, so it takes a pre-created sandbox and no
 * creation runs beside it; without one (pool size 0) the container is made on the call path.
 */
export async function coldStarts(platform: Platform, prefix: string, count: number): Promise<number[]> {
  const pooled = platform.config.worker.pool.floor > 0;
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const name = `${prefix}-${i}`;
    await deploy(platform, { name, source: noop(name) });
    if (pooled) await waitForFullPool(platform);
    await sleep(20); // let the last creation's runc and mount processes be reaped
    const before = poolSize(platform);
    const reply = await invoke(platform.url, name);
    if (reply.status !== 200) throw new Error(`cold call to ${name} answered ${reply.status}: ${reply.body}`);
    if (reply.cold !== true) throw new Error(`the first call to ${name} was not a cold start`);
    if (pooled && before === 0) throw new Error(`the pool was empty before the call to ${name}`);
    samples.push(reply.ms);
  }
  return samples;
}

/** `count` sequential calls to one warm function (after `warmup` unmeasured ones). */
export async function warmCalls(platform: Platform, name: string, count: number, warmup = 100): Promise<number[]> {
  const samples: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const reply = await invoke(platform.url, name);
    if (reply.status !== 200) throw new Error(`warm call to ${name} answered ${reply.status}: ${reply.body}`);
    if (i >= warmup) {
      if (reply.cold !== false) throw new Error(`call ${i} to ${name} was a cold start`);
      samples.push(reply.ms);
    }
  }
  return samples;
}

export interface Throughput {
  perSec: number;
  ok: number;
  errors: number;
  seconds: number;
}

/** Keeps `inFlight` calls of `call` going for `durationMs`; each resolves true when it succeeded. */
export async function throughput(call: () => Promise<boolean>, inFlight: number, durationMs: number): Promise<Throughput> {
  let ok = 0;
  let errors = 0;
  const started = performance.now();
  const end = started + durationMs;
  const loop = async (): Promise<void> => {
    while (performance.now() < end) {
      const good = await call().catch(() => false);
      if (good) ok++;
      else errors++;
    }
  };
  await Promise.all(Array.from({ length: inFlight }, loop));
  const seconds = (performance.now() - started) / 1000;
  return { perSec: ok / seconds, ok, errors, seconds };
}

/** Calls per second through the gateway at `inFlight` concurrent calls to one function. */
export function httpThroughput(platform: Platform, name: string, inFlight: number, durationMs: number): Promise<Throughput> {
  return throughput(async () => (await invoke(platform.url, name)).status === 200, inFlight, durationMs);
}
