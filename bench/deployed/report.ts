/** The deployed bench's results (bench/results/latest.json) and the table printed at the end. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { DeployedDensity } from '../density.js';
import { met, num, pct, render } from '../report.js';
import type { Baselines, Measured, Row } from './figure.js';

export interface DeployedResults {
  at: string;
  /** How the platform ran: as `npm start` runs it, each component a process of its own. */
  shape: 'deployed';
  /** loadavg: the host's 1/5/15-minute load averages when the run began and when it ended. */
  machine: { cpus: number; node: string; kernel: string; loadavg: { start: number[]; end: number[] } };
  /** The platform's settings that differ from `npm start`'s defaults. */
  env: Record<string, string>;
  baselines: Baselines;
  figures: Record<string, Measured>;
  /** From `--density N`, which the default run does not do: kept from the last such run (its own `at`). */
  density?: DeployedDensity;
  notes: string[];
}

export async function writeDeployedResults(path: string, results: DeployedResults): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
}

const DENSITY_AIM_MIB = 8;

export function densityRows(d: DeployedDensity): Row[] {
  const answered = d.second.ok === d.second.calls && d.second.warm === d.second.calls;
  return [
    {
      figure: `idle instances held (--density ${d.target}, ${d.at.slice(0, 10)})`,
      skiff: `${d.held} in ${num(d.toTargetSec, 0)} s, ${d.second.ok}/${d.second.calls} answered warm`,
      baseline: '–',
      ratio: '–',
      aim: `${d.target} held, each answering`,
      met: d.held >= d.target && answered,
    },
    {
      figure: 'host memory per idle instance (MiB)',
      skiff: num(d.hostMiBPerInstance, 2),
      baseline: `cgroup charge ${num(d.chargedMiBPerInstance, 2)}`,
      ratio: d.hostMiBPerInstance !== null && d.chargedMiBPerInstance ? `${num(d.hostMiBPerInstance / d.chargedMiBPerInstance, 2)}×` : 'n/a',
      aim: `≤ ${DENSITY_AIM_MIB}`,
      met: d.hostMiBPerInstance === null ? null : d.hostMiBPerInstance <= DENSITY_AIM_MIB,
    },
    {
      figure: 'threads per idle instance',
      skiff: `${num(d.containerTasksPerInstance, 2)} in its container, ${num(d.threadsPerInstance, 2)} on the host`,
      baseline: `pid_max ${d.pidMax}: room for ${num(d.pidMax / Math.max(1, d.threadsPerInstance ?? 1), 0)}`,
      ratio: '–',
      aim: `${d.target} within pid_max`,
      met: d.threads.held < d.pidMax,
    },
  ];
}

export function deployedTable(r: DeployedResults): string {
  const rows: Row[] = Object.values(r.figures).flatMap((f) => f.rows);
  if (r.density) rows.push(...densityRows(r.density));
  const cells = rows.map((row) => [row.figure, row.skiff, row.baseline, row.ratio, row.aim, met(row.met)]);
  const b = r.baselines;
  const lines = [
    render([['figure', 'Skiff (deployed shape)', 'baseline (same run)', 'ratio', 'aim', 'met'], ...cells]),
    '',
    'ratio = Skiff ÷ baseline (p50 for latencies)',
    '',
    'baselines measured in this run, before the platform was up:',
    `  runc run per call (overlay, config, run, cleanup)  ${pct(b.runcRunPerCallMs)} ms; serial container creation ${num(b.serialCreationPerSec, 2)}/s`,
    `  node -e per call                                   ${pct(b.nodeSpawnPerCallMs)} ms`,
    `  direct call on a warm container's socket           ${pct(b.directSocketMs)} ms, ${num(b.directSocketPerSec, 0)} calls/s at 32 in flight`,
  ];
  const phases = Object.values(r.figures).flatMap((f) => f.phases ?? []);
  if (phases.length > 0) lines.push('', "where the time goes (the worker's metrics between the calls):", ...phases.map((p) => `  ${p}`));
  if (r.density) {
    const d = r.density;
    lines.push(
      '',
      `density (${d.at}): ${d.held}/${d.target} held, ${num(d.createdPerSec, 2)} created/s; first calls ${JSON.stringify(d.firstStatuses)}; second round ${d.second.ok}/${d.second.calls} 200, ${d.second.warm} warm, ${d.second.distinctInstances} distinct instances`,
      `  host memory used (MemTotal − MemAvailable) ${d.usedMiB.before} → ${d.usedMiB.held} MiB; cgroup charge of the worker's containers ${num(d.chargedMiB, 0)} MiB`,
      `  threads on the host ${d.threads.before} → ${d.threads.held}, in the worker's containers ${d.containerTasks ?? 'n/a'}, processes ${d.pids.before} → ${d.pids.held}; kernel.pid_max ${d.pidMax}`,
      ...d.notes.map((n) => `  - ${n}`),
    );
  }
  if (r.notes.length > 0) lines.push('', 'notes:', ...r.notes.map((n) => `  - ${n}`));
  return lines.join('\n');
}
