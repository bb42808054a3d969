/**
 * A burst on the defaults: 100 calls at once (load-child.ts) to a new function whose handler
 * sleeps 3 s (concurrency 1, so each needs an instance of its own), with the pool the platform
 * keeps by default. Total time until every call is answered, and whether all 100 were 200; beside
 * the handler's own 3 s and what serial container creation would take. The worker's metrics say
 * how many containers were made, how fast, and where their time went.
 */
import { num, ratio } from '../report.js';
import { instances, phaseMeans, total } from '../scrape.js';
import { statusesOf } from '../load.js';
import type { Figure } from './figure.js';

const CALLS = 100;
const SLEEP_MS = 3000;
const AIM_SEC = 5;

export const burst: Figure = {
  key: 'burst',
  title: `burst: ${CALLS} calls at once, handler sleeps ${SLEEP_MS / 1000} s, concurrency 1, the default pool`,
  async measure(ctx) {
    const source = `exports.handler = () => new Promise((resolve) => setTimeout(() => resolve({}), ${SLEEP_MS}));\n`;
    await ctx.deploy({ name: 'burst', source, timeoutMs: 60_000 });
    await ctx.waitForPool();
    const before = await ctx.scrape();
    const baseInstances = instances(before);
    // Instances over time, from the worker's gauge, while the burst runs.
    let most = 0;
    let toMostSec = 0;
    const started = Date.now();
    let watching = true;
    const watcher = (async () => {
      while (watching) {
        const now = instances(await ctx.scrape()) - baseInstances;
        if (now > most) [most, toMostSec] = [now, (Date.now() - started) / 1000];
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
    })();
    const { calls, totalMs } = await ctx.caller.send({ op: 'burst', url: ctx.invokeUrl('burst'), count: CALLS }).finally(() => (watching = false));
    await watcher;
    const after = await ctx.scrape();
    const statuses = statusesOf(calls);
    const ok = statuses['200'] ?? 0;
    const totalSec = totalMs / 1000;
    const created =
      total(after, 'skiff_sandboxes_created_total', { runtime: 'nodejs20' }) - total(before, 'skiff_sandboxes_created_total', { runtime: 'nodejs20' });
    const creation = phaseMeans(before, after, 'skiff_sandbox_create_seconds', ['mount', 'runc', 'bootstrap', 'total'], { runtime: 'nodejs20' });
    const pooled = phaseMeans(before, after, 'skiff_cold_start_seconds', ['wait', 'code', 'pool_take', 'specialize', 'total'], { kind: 'pooled' });
    const made = phaseMeans(before, after, 'skiff_cold_start_seconds', ['wait', 'code', 'create', 'specialize', 'total'], { kind: 'created' });
    const serial = ctx.baselines.serialCreationPerSec;
    const serialSec = serial ? SLEEP_MS / 1000 + (CALLS - ctx.poolSize) / serial : null;
    const show = (m: Record<string, number>): string =>
      Object.entries(m)
        .map(([k, v]) => `${k} ${num(v, 1)}`)
        .join(', ');
    const firstAnswers = calls
      .filter((c) => c.status === 200)
      .map((c) => c.ms)
      .sort((a, b) => a - b);
    return {
      data: {
        calls: CALLS,
        sleepMs: SLEEP_MS,
        totalSec,
        statuses,
        mostInstances: most,
        toMostSec,
        created,
        creationMeanMs: creation.meanMs,
        coldPooledMeanMs: pooled.meanMs,
        coldCreatedMeanMs: made.meanMs,
      },
      rows: [
        {
          figure: `burst of ${CALLS}, ${SLEEP_MS / 1000} s handler, defaults (s)`,
          skiff: `${num(totalSec, 2)} (${ok}/${CALLS} 200)`,
          baseline: `handler ${num(SLEEP_MS / 1000, 1)}; serial creation ${num(serialSec, 1)}`,
          ratio: ratio(totalSec, SLEEP_MS / 1000),
          aim: `≤ ${AIM_SEC}, all ${CALLS} 200`,
          met: totalSec <= AIM_SEC && ok === CALLS,
        },
      ],
      phases: [
        `burst: ${created} containers made during it (${num(created / Math.max(0.001, totalSec - SLEEP_MS / 1000), 1)}/s over the time beyond the handler's), most instances at once ${most} at ${num(toMostSec, 2)} s (scraped every 250 ms); first answer ${num((firstAnswers[0] ?? 0) / 1000, 2)} s, last ${num((firstAnswers.at(-1) ?? 0) / 1000, 2)} s`,
        `  creation, mean ms (${creation.count}): ${show(creation.meanMs)}`,
        `  cold starts on a pooled sandbox (${pooled.count}): ${show(pooled.meanMs)}; on a sandbox made for the call (${made.count}): ${show(made.meanMs)}`,
      ],
    };
  },
};
