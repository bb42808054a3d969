/**
 * Warm calls: latency at one connection (load-child.ts, sequential, timed to a fraction of a ms)
 * beside a direct call on a warm container's socket; calls/s at 32 connections (autocannon)
 * beside the gateway's /healthz rate. The worker's queue-wait histogram says how much of a call
 * is the trip through the queues to the worker.
 */
import { autocannon } from '../load.js';
import { num, pct, ratio } from '../report.js';
import { histogramMeanMs } from '../scrape.js';
import { percentiles } from '../stats.js';
import { noop } from '../http.js';
import type { Figure } from './figure.js';

const CALLS = 2000;
const WARMUP = 200;
const CONNECTIONS = 32;
const SECONDS = 5;
const AIM = { p50: 1, p99: 5, perSec: 3000, ofHealthz: 0.2 };

export const warmLatency: Figure = {
  key: 'warmLatency',
  title: `warm latency: ${CALLS} sequential calls on one connection (after ${WARMUP} unmeasured)`,
  async measure(ctx) {
    await ctx.deploy({ name: 'warm', source: noop('warm') });
    await ctx.caller.send({ op: 'sequential', url: ctx.invokeUrl('warm'), count: 1, warmup: 0 });
    await ctx.waitForPool();
    const before = await ctx.scrape();
    const { calls } = await ctx.caller.send({ op: 'sequential', url: ctx.invokeUrl('warm'), count: CALLS, warmup: WARMUP });
    const after = await ctx.scrape();
    const bad = calls.filter((c) => c.status !== 200 || c.cold !== false);
    if (bad.length > 0) throw new Error(`${bad.length} of ${CALLS} warm calls were not a warm 200 (first: ${bad[0]?.status} ${bad[0]?.body})`);
    const ms = percentiles(calls.map((c) => c.ms));
    const queueWaitMs = histogramMeanMs(before, after, 'skiff_queue_wait_seconds');
    const b = ctx.baselines.directSocketMs;
    return {
      data: { ms, calls: CALLS, queueWaitMeanMs: queueWaitMs },
      rows: [
        {
          figure: 'warm call, one connection (ms)',
          skiff: pct(ms),
          baseline: `direct socket ${pct(b)}`,
          ratio: ratio(ms.p50, b?.p50),
          aim: `p50 ≤ ${AIM.p50}, p99 ≤ ${AIM.p99}`,
          met: ms.p50 <= AIM.p50 && ms.p99 <= AIM.p99,
        },
      ],
      phases: [
        `warm call: mean ${num(queueWaitMs, 2)} ms of it from the gateway queueing the call to the worker starting it (skiff_queue_wait_seconds); the direct socket call takes p50 ${num(b?.p50, 2)} ms`,
      ],
    };
  },
};

export const warmRate: Figure = {
  key: 'warmRate',
  title: `warm calls/s: ${CONNECTIONS} connections, ${SECONDS} s (autocannon), a function of concurrency ${CONNECTIONS}`,
  async measure(ctx) {
    await ctx.deploy({ name: 'tput', source: noop('tput'), concurrency: CONNECTIONS });
    await ctx.caller.send({ op: 'sequential', url: ctx.invokeUrl('tput'), count: 1, warmup: 0 });
    await ctx.waitForPool();
    const target = { url: ctx.invokeUrl('tput'), connections: CONNECTIONS, method: 'POST' as const, body: '{}' };
    await autocannon({ ...target, seconds: 2 }); // unmeasured: the path's code compiled, the sockets open
    const before = await ctx.scrape();
    const rate = await autocannon({ ...target, seconds: SECONDS });
    const after = await ctx.scrape();
    const healthz = ctx.baselines.healthzPerSec;
    const ofHealthz = healthz ? rate.perSec / healthz : null;
    const ok = rate.non2xx === 0 && rate.errors === 0;
    const queueWaitMs = histogramMeanMs(before, after, 'skiff_queue_wait_seconds');
    return {
      data: { ...rate, ofHealthz, queueWaitMeanMs: queueWaitMs },
      rows: [
        {
          figure: `warm calls/s, ${CONNECTIONS} connections`,
          skiff: `${num(rate.perSec, 0)} (${rate.non2xx + rate.errors} failed)`,
          baseline: `/healthz ${num(healthz, 0)}`,
          ratio: ratio(rate.perSec, healthz),
          aim: `≥ ${AIM.perSec}, ≥ ${AIM.ofHealthz}× /healthz`,
          met: ok && rate.perSec >= AIM.perSec && ofHealthz !== null && ofHealthz >= AIM.ofHealthz,
        },
      ],
      phases: [
        `warm calls/s: autocannon latency p50 ${rate.latencyMs.p50} p99 ${rate.latencyMs.p99} ms (whole ms); mean queue wait ${num(queueWaitMs, 2)} ms; direct socket ${num(ctx.baselines.directSocketPerSec, 0)} calls/s at 32 in flight`,
      ],
    };
  },
};
