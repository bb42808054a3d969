/**
 * Cold starts of a pre-created container: the first call of each of N new functions, each made
 * when the pool is full again (so it takes a ready sandbox and no creation runs beside it); and
 * the same after an idle eviction (each function called once, its instance evicted after its 1 s
 * keep-alive, then called again). Beside `runc run` per call. The worker's cold-start histogram
 * between the calls says where each one's time went.
 */
import { noop } from '../http.js';
import { num, pct, ratio } from '../report.js';
import { histogramMeanMs, instances, phaseMeans, type Scrape } from '../scrape.js';
import { percentiles, type Percentiles } from '../stats.js';
import { waitFor } from '../../infra/services/process.js';
import type { Figure, FigureContext, Measured } from './figure.js';

const COUNT = 10;
const AIM = { p50: 10, p99: 30 };
const PHASES = ['wait', 'code', 'pool_take', 'bind', 'init', 'specialize', 'total'] as const;

/** One call when the pool is full; it must be a cold 200. */
async function coldCall(ctx: FigureContext, name: string): Promise<number> {
  await ctx.waitForPool();
  const { calls } = await ctx.caller.send({ op: 'sequential', url: ctx.invokeUrl(name), count: 1, warmup: 0 });
  const [call] = calls;
  if (call?.status !== 200) throw new Error(`the call to ${name} answered ${call?.status}: ${call?.body}`);
  if (call.cold !== true) throw new Error(`the call to ${name} was not a cold start`);
  return call.ms;
}

function measured(ctx: FigureContext, what: string, samples: number[], before: Scrape, after: Scrape): Measured {
  const ms: Percentiles = percentiles(samples);
  const worker = phaseMeans(before, after, 'skiff_cold_start_seconds', PHASES, { kind: 'pooled' });
  const queueWaitMs = histogramMeanMs(before, after, 'skiff_queue_wait_seconds');
  const workerTotal = worker.meanMs.total ?? 0;
  const clientMean = samples.reduce((a, b) => a + b, 0) / samples.length;
  const b = ctx.baselines.runcRunPerCallMs;
  const phases = Object.entries(worker.meanMs)
    .map(([phase, mean]) => `${phase} ${num(mean, 2)}`)
    .join(', ');
  return {
    data: { ms, samples: samples.length, workerPhasesMeanMs: worker.meanMs, queueWaitMeanMs: queueWaitMs },
    rows: [
      {
        figure: `cold start, ${what} (ms)`,
        skiff: pct(ms),
        baseline: `runc run per call ${pct(b)}`,
        ratio: ratio(ms.p50, b?.p50),
        aim: `p50 ≤ ${AIM.p50}, p99 ≤ ${AIM.p99}`,
        met: ms.p50 <= AIM.p50 && ms.p99 <= AIM.p99,
      },
    ],
    phases: [
      `cold start, ${what}: client mean ${num(clientMean, 2)} ms = queue wait ${num(queueWaitMs, 2)} + worker cold start ${num(workerTotal, 2)} (${phases}) + the rest (gateway, call, reply) ${num(clientMean - (queueWaitMs ?? 0) - workerTotal, 2)}`,
    ],
  };
}

export const coldPooled: Figure = {
  key: 'coldPooled',
  title: `cold starts of a pre-created container: first calls of ${COUNT} new functions, each with a full pool`,
  async measure(ctx) {
    const names = Array.from({ length: COUNT }, (_, i) => `cold-${i}`);
    for (const name of names) await ctx.deploy({ name, source: noop(name) });
    const samples: number[] = [];
    const before = await ctx.scrape();
    for (const name of names) samples.push(await coldCall(ctx, name));
    return measured(ctx, 'pre-created container', samples, before, await ctx.scrape());
  },
};

export const coldEvicted: Figure = {
  key: 'coldEvicted',
  title: `cold starts after an idle eviction: ${COUNT} functions (keep-alive 1 s) called, evicted, called again`,
  async measure(ctx) {
    const names = Array.from({ length: COUNT }, (_, i) => `evicted-${i}`);
    for (const name of names) await ctx.deploy({ name, source: noop(name), idleTimeoutMs: 1000 });
    const held = instances(await ctx.scrape());
    for (const name of names) await coldCall(ctx, name);
    await waitFor(
      `the ${COUNT} instances to be evicted`,
      async () => {
        const now = instances(await ctx.scrape());
        if (now > held) throw new Error(`${now - held} of them are still there`);
      },
      60_000,
      200,
    );
    const samples: number[] = [];
    const before = await ctx.scrape();
    for (const name of names) samples.push(await coldCall(ctx, name));
    return measured(ctx, 'after idle eviction', samples, before, await ctx.scrape());
  },
};
