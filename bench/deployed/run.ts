/**
 * The deployed bench (`npm run bench`, and `--density N`): private Redis, PostgreSQL and registry;
 * the baselines on a quiet machine; then the platform brought up as `npm start` does
 * (bringup.ts), driven by callers in processes of their own (load.ts), each figure of the list
 * main.ts gives measured in turn; a table on stdout, bench/results/latest.json written. Progress
 * goes to stderr. Everything is removed at the end, on failure and on Ctrl-C too; a figure that
 * could not be measured is left out, with a note saying why.
 */
import { readFile, rm } from 'node:fs/promises';
import { cpus, loadavg, release } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadConfig } from '../../infra/config.js';
import { waitFor } from '../../infra/services/process.js';
import { mountPointsUnder } from '../../worker/sandbox/mounts.js';
import { startDeployed } from '../bringup.js';
import { containerTasks, holdDeployed } from '../density.js';
import { progress, startServices } from '../harness.js';
import { closeClient, deploy } from '../http.js';
import { Caller } from '../load.js';
import { instances, poolsFull, scrape } from '../scrape.js';
import { measureBaselines, noBaselines } from './baselines.js';
import { busyNote } from '../stats.js';
import type { Figure, FigureContext } from './figure.js';
import { deployedTable, writeDeployedResults, type DeployedResults } from './report.js';

const RESULTS_FILE = join(dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'bench', 'results', 'latest.json');

/**
 * What the bench's platform changes from `npm start`'s defaults: the tenant's calls/s quota (1,000
 * by default) would otherwise be what warm calls/s measures; only nodejs20, the runtime of every
 * function it calls, is pooled (its default floor), since the other four runtimes' pools would be
 * made while it measures (about 80 creations on 24 GiB, a minute and more of both cores); and no
 * instance is preloaded at deploy.
 */
const PLATFORM_ENV: Record<string, string> = {
  SKIFF_TENANT_CALLS_PER_SECOND: '1000000',
  SKIFF_POOL_RUNTIMES: 'nodejs20',
  // Cold starts are what the cold figures measure: a deploy's preloaded instance would make each
  // first call warm (that saving is measured apart: bench/pool-burst.ts, docs/SANDBOXES.md).
  SKIFF_PRELOAD_ON_DEPLOY: '0',
};

/** The density platform: no pool, room and limits for N instances of one tenant's one function. */
function densityEnv(target: number): Record<string, string> {
  const headroom = String(target + 64);
  return {
    ...PLATFORM_ENV,
    SKIFF_POOL_SIZE: '0',
    SKIFF_WORKER_CAPACITY_MB: String(target * 64 + 4096),
    SKIFF_WORKER_CONCURRENCY: headroom,
    SKIFF_SCHEDULER_CONCURRENCY: headroom,
    SKIFF_MAX_PENDING_PER_FUNCTION: headroom,
    SKIFF_QUEUE_WAIT_MS: '900000',
    SKIFF_IDLE_TIMEOUT_MS: '3600000',
    SKIFF_TENANT_MAX_INSTANCES: headroom,
    SKIFF_TENANT_MAX_MEMORY_MB: String(target * 64 + 4096),
  };
}

export interface DeployedRun {
  figures: readonly Figure[];
  /** `--density N`: only hold N idle instances; the other figures of latest.json are kept. */
  density?: number;
}

export async function runDeployed(run: DeployedRun): Promise<void> {
  const previous = await readFile(RESULTS_FILE, 'utf8')
    .then(
      (text) => JSON.parse(text) as Partial<DeployedResults>,
      () => undefined,
    )
    .then((last) => (last?.shape === 'deployed' ? last : undefined));
  const env = run.density === undefined ? PLATFORM_ENV : densityEnv(run.density);
  const results: DeployedResults = {
    at: new Date().toISOString(),
    shape: 'deployed',
    machine: { cpus: cpus().length, node: process.version, kernel: release(), loadavg: { start: loadavg(), end: [] } },
    env,
    baselines: noBaselines(),
    figures: {},
    ...(previous?.density ? { density: previous.density } : {}),
    notes: [
      'the platform runs as `npm start` runs it: the bring-up supervising a gateway, a scheduler and a worker, each a process of its own; the calls come from autocannon or the bench caller, processes of their own',
      'every latency is client-side wall time over HTTP on loopback; p99 of 10 cold starts is their slowest',
    ],
  };

  const cleanups: Array<() => Promise<void>> = [];
  const cleanUp = async (): Promise<void> => {
    for (let step = cleanups.pop(); step; step = cleanups.pop()) {
      await step().catch((error: unknown) => {
        console.error(`bench: cleanup failed: ${(error as Error).message}`);
        process.exitCode = 1;
      });
    }
    closeClient();
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: cleaning up`);
      void cleanUp().finally(() => process.exit(130));
    });
  }

  try {
    progress('starting Redis, PostgreSQL and the registry');
    const services = await startServices();
    cleanups.push(async () => {
      const leftMounts = await mountPointsUnder([services.root]);
      if (leftMounts.length > 0) throw new Error(`mounts left behind, keeping ${services.root}: ${leftMounts.join(', ')}`);
      await rm(services.root, { recursive: true, force: true });
    });
    cleanups.push(() => services.stop());
    if (run.density === undefined) results.baselines = await measureBaselines(services.root, progress, results.notes);

    progress('bringing the platform up as `npm start` does (separate processes)');
    const platform = await startDeployed(services, env, progress);
    let stopped = false;
    const stopPlatform = async (): Promise<void> => {
      if (stopped) return;
      stopped = true;
      progress('stopping the platform (SIGTERM to the bring-up, as Ctrl-C)');
      await platform.stop();
    };
    cleanups.push(stopPlatform);
    const caller = new Caller();
    cleanups.push(() => caller.stop());
    const poolSize = loadConfig({ ...process.env, ...env }).worker.pool.floor;
    const ctx: FigureContext = {
      platform,
      caller,
      baselines: results.baselines,
      poolSize,
      progress,
      deploy: (fn) => deploy(platform, fn),
      invokeUrl: (name) => `${platform.url}/v1/functions/${name}/invoke`,
      scrape: () => scrape(platform.metricsUrl),
      waitForPool: async (timeoutMs = 120_000) => {
        await waitFor(
          `a full pool (${poolSize} per runtime)`,
          async () => {
            if (!poolsFull(await scrape(platform.metricsUrl), poolSize)) throw new Error('not full yet');
          },
          timeoutMs,
          20,
        );
      },
    };
    await ctx.waitForPool();

    if (run.density !== undefined) {
      progress(`density: ${run.density} instances of one function (memoryMb 64, concurrency 1), each then called once more`);
      const held = await holdDeployed({ ...ctx, workerId: platform.workerId }, run.density, progress);
      results.density = held;
      progress(`  ${JSON.stringify(held)}`);
      // The bring-up gives a worker 30 s to stop; destroying this many containers takes longer, so
      // the function is deleted first (its instances retired, as a user's delete does) and the
      // stop waits until the worker holds none.
      progress(`removing the ${held.held} instances (DELETE /v1/functions/dense) before stopping`);
      const res = await fetch(`${platform.url}/v1/functions/dense`, { method: 'DELETE', headers: platform.auth });
      if (!res.ok) throw new Error(`deleting the function answered ${res.status}: ${await res.text()}`);
      await waitFor(
        'the instances to be destroyed',
        async () => {
          // Retired instances leave the gauge at once and are destroyed after: their tasks tell.
          const left = instances(await ctx.scrape());
          const tasks = (await containerTasks(platform.workerId)) ?? 0;
          if (left > 0 || tasks > 0) throw new Error(`${left} instances, ${tasks} tasks in containers left`);
        },
        900_000,
        1000,
      );
    } else {
      for (const figure of run.figures) {
        progress(figure.title);
        try {
          results.figures[figure.key] = await figure.measure(ctx);
          for (const row of results.figures[figure.key]?.rows ?? []) progress(`  ${row.figure}: ${row.skiff}`);
        } catch (error) {
          progress(`  failed: ${(error as Error).message}`);
          results.notes.push(`${figure.title}: not measured (${(error as Error).message})`);
        }
      }
    }
    await caller.stop();
    await stopPlatform();
  } catch (error) {
    results.notes.push(`the run stopped early: ${(error as Error).message}`);
    console.error(`bench: ${(error as Error).stack ?? String(error)}`);
    process.exitCode = 1;
  } finally {
    progress('cleaning up');
    await cleanUp();
  }
  results.machine.loadavg.end = loadavg();
  const busy = busyNote(results.machine.loadavg.start);
  if (busy) results.notes.push(busy);
  // A `--density` run changes only the density entry of the last results (its own `at` says when).
  const written: DeployedResults =
    run.density !== undefined && previous?.at ? { ...(previous as DeployedResults), ...(results.density ? { density: results.density } : {}) } : results;
  if (run.density !== undefined && !results.density) written.notes = [...new Set([...(written.notes ?? []), ...results.notes])];
  await writeDeployedResults(RESULTS_FILE, written);
  console.log(`\n${deployedTable(written)}\n\nwritten to ${RESULTS_FILE}`);
}
