/** The bench's results: their shape (bench/results/latest.json) and the table printed at the end. */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Burst, Density } from './density.js';
import type { NoisyNeighbour } from './noisy.js';
import type { TracingOverhead } from './tracing.js';
import type { ImageFigures } from './images.js';
import type { KeyCheckCost } from './tenancy.js';
import type { LambdaInvokeCost } from './lambda-invoke.js';
import type { ProvidedCost } from './provided.js';
import { round, type Percentiles } from './stats.js';

export interface Results {
  at: string;
  /** loadavg: the host's 1/5/15-minute load averages when the run began and when it ended. */
  machine: { cpus: number; node: string; kernel: string; loadavg: { start: number[]; end: number[] } };
  coldPooledMs: Percentiles | null;
  coldUnpooledMs: Percentiles | null;
  warmMs: Percentiles | null;
  warmPerSec: number | null;
  warmErrors: number | null;
  idleInstanceMiB: number | null;
  createdPerSec: number | null;
  burst200Sec: number | null;
  burst: Burst | null;
  noisyNeighbour: NoisyNeighbour | null;
  tracingOverhead: TracingOverhead | null;
  images: ImageFigures | null;
  /** Warm calls of an `auth: "key"` function beside an `auth: "none"` one (the tenant and role check). */
  keyCheck?: KeyCheckCost | null;
  /** Warm calls through the Lambda Invoke API (SigV4) beside Skiff's own invoke route. */
  lambdaInvoke?: LambdaInvokeCost | null;
  /** Warm calls of `provided` functions (the Runtime API through the relay) beside a nodejs20 no-op. */
  providedCost?: ProvidedCost | null;
  /** From `--density N`, which the default run does not do: kept from the last such run (its own `at`). */
  density?: Density;
  baselines: {
    runcRunPerCallMs: Percentiles | null;
    nodeSpawnPerCallMs: Percentiles | null;
    directSocketMs: Percentiles | null;
    directSocketPerSec: number | null;
    /** Charged to a pooled sandbox not yet specialized: the container and bootstrap alone. */
    pooledSandboxMiB: number | null;
    /** 1000 / mean of `runc run` per call: containers made, run and removed per second, one at a time. */
    runcRunPerSec: number | null;
  };
  samples: Record<string, number>;
  notes: string[];
}

export async function writeResults(path: string, results: Results): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, `${JSON.stringify(results, null, 2)}\n`);
}

type Row = [figure: string, skiff: string, baseline: string, ratio: string, aim: string, met: string];

export function table(r: Results): string {
  const b = r.baselines;
  const burstBaseline = r.createdPerSec === null ? null : (r.burst?.calls ?? 200) / r.createdPerSec;
  const rows: Row[] = [
    [
      'cold start, pooled (ms)',
      pct(r.coldPooledMs),
      `runc run per call ${pct(b.runcRunPerCallMs)}`,
      ratio(r.coldPooledMs?.p50, b.runcRunPerCallMs?.p50),
      'p50 ≤ 15, p99 ≤ 50',
      met(r.coldPooledMs && r.coldPooledMs.p50 <= 15 && r.coldPooledMs.p99 <= 50),
    ],
    [
      'cold start, no pool (ms)',
      pct(r.coldUnpooledMs),
      `runc run per call ${pct(b.runcRunPerCallMs)}`,
      ratio(r.coldUnpooledMs?.p50, b.runcRunPerCallMs?.p50),
      'p50 ≤ 150',
      met(r.coldUnpooledMs && r.coldUnpooledMs.p50 <= 150),
    ],
    [
      'warm call (ms)',
      pct(r.warmMs),
      `direct socket ${pct(b.directSocketMs)}`,
      ratio(r.warmMs?.p50, b.directSocketMs?.p50),
      'p50 ≤ 3, p99 ≤ 10',
      met(r.warmMs && r.warmMs.p50 <= 3 && r.warmMs.p99 <= 10),
    ],
    [
      'warm calls/s, 32 in flight',
      r.warmPerSec === null ? 'n/a' : `${num(r.warmPerSec, 0)} (${r.warmErrors ?? '?'} errors)`,
      `direct socket ${num(b.directSocketPerSec, 0)}`,
      ratio(r.warmPerSec, b.directSocketPerSec),
      '≥ 2000',
      met(r.warmPerSec === null ? null : r.warmPerSec >= 2000 && r.warmErrors === 0),
    ],
    [
      'idle instance (MiB charged)',
      num(r.idleInstanceMiB, 2),
      `pooled, unspecialized ${num(b.pooledSandboxMiB, 2)}`,
      ratio(r.idleInstanceMiB, b.pooledSandboxMiB),
      '≤ 8',
      met(r.idleInstanceMiB === null ? null : r.idleInstanceMiB <= 8),
    ],
    [
      'sandboxes created/s',
      num(r.createdPerSec, 2),
      `runc run per call, serial ${num(b.runcRunPerSec, 2)}`,
      ratio(r.createdPerSec, b.runcRunPerSec),
      '≥ 6 (80% of ≈7.5)',
      met(r.createdPerSec === null ? null : r.createdPerSec >= 6),
    ],
    [
      `burst 0 → ${r.burst?.calls ?? 200} instances (s)`,
      burstCell(r),
      `no pool: N ÷ created/s ${num(burstBaseline, 1)} (derived)`,
      ratio(r.burst200Sec, burstBaseline),
      '≤ 5, no 5xx',
      met(r.burst === null ? null : r.burst200Sec !== null && r.burst200Sec <= 5 && r.burst.non2xx === 0),
    ],
    [
      `cold image pull, ${r.images?.pulledMiB ?? '?'} MiB (ms)`,
      pct(r.images?.coldPullMs ?? null),
      `download only ${pct(r.images?.downloadOnlyMs ?? null)}`,
      ratio(r.images?.coldPullMs.p50, r.images?.downloadOnlyMs.p50),
      'once per host and image',
      '',
    ],
    [
      'another function of that runtime',
      r.images ? `${num(r.images.additionalPullMs, 1)} ms, ${r.images.additionalDiskKiB} KiB disk` : 'n/a',
      r.images ? `base layers ${num(r.images.baseLayersMiB, 1)} MiB, once` : 'n/a',
      '',
      'code layer only',
      '',
    ],
    [
      'noisy neighbour: fork + memory bomb',
      r.noisyNeighbour?.bombsMs ? `${pct(r.noisyNeighbour.bombsMs)} (${r.noisyNeighbour.errors} errors)` : 'n/a',
      `victim alone ${pct(r.noisyNeighbour?.aloneMs)}`,
      r.noisyNeighbour?.bombsMs ? `${r.noisyNeighbour.bombsP99Ratio.toFixed(2)}× (p99)` : 'n/a',
      '≤ 2× p99, 0 errors',
      met(r.noisyNeighbour?.bombsMs ? r.noisyNeighbour.bombsP99Ratio <= 2 && r.noisyNeighbour.errors === 0 : null),
    ],
    [
      'noisy neighbour: + a CPU burner',
      noisyCell(r.noisyNeighbour),
      `victim alone ${pct(r.noisyNeighbour?.aloneMs)}`,
      r.noisyNeighbour ? `${r.noisyNeighbour.p99Ratio.toFixed(2)}× (p99)` : 'n/a',
      '≤ 2× p99, 0 errors',
      met(r.noisyNeighbour ? r.noisyNeighbour.p99Ratio <= 2 && r.noisyNeighbour.errors === 0 : null),
    ],
    [
      'calls/s with traces exported',
      r.tracingOverhead
        ? `${num(r.tracingOverhead.withPerSec, 0)} (${r.tracingOverhead.overheadPct >= 0 ? '−' : '+'}${num(Math.abs(r.tracingOverhead.overheadPct), 1)}%)`
        : 'n/a',
      `no export ${num(r.tracingOverhead?.withoutPerSec, 0)}`,
      ratio(r.tracingOverhead?.withPerSec, r.tracingOverhead?.withoutPerSec),
      '≤ 5% fewer',
      met(r.tracingOverhead ? r.tracingOverhead.overheadPct <= 5 : null),
    ],
  ];
  if (r.keyCheck) {
    const k = r.keyCheck;
    rows.push(['warm call with a key checked (ms)', pct(k.keyedMs), `no key ${pct(k.openMs)}`, ratio(k.keyedMs.p50, k.openMs.p50), 'a fraction of a ms', '']);
  }
  if (r.lambdaInvoke) {
    const l = r.lambdaInvoke;
    rows.push([
      'Invoke API (SigV4) sync call (ms)',
      pct(l.sigv4Ms),
      `native invoke ${pct(l.nativeMs)}`,
      ratio(l.sigv4Ms.p50, l.nativeMs.p50),
      'a fraction of a ms',
      '',
    ]);
  }
  if (r.providedCost) {
    const p = r.providedCost;
    rows.push([
      'warm call, provided: Node.js Runtime API client (ms)',
      pct(p.clientMs),
      `nodejs20 ${pct(p.nodejs20Ms)}`,
      ratio(p.clientMs.p50, p.nodejs20Ms.p50),
      '',
      '',
    ]);
    rows.push([
      'warm call, provided: busybox sh + wget bootstrap (ms)',
      pct(p.shellMs),
      `nodejs20 ${pct(p.nodejs20Ms)}`,
      ratio(p.shellMs.p50, p.nodejs20Ms.p50),
      '',
      '',
    ]);
  }
  if (r.density) {
    const d = r.density;
    rows.push([
      `idle instances held (--density ${d.target}, ${d.at.slice(0, 10)})`,
      `${d.held} in ${d.toTargetSec === null ? 'n/a' : num(d.toTargetSec, 0)} s`,
      `${num(d.instanceMiB, 2)} MiB charged each`,
      'n/a',
      `${d.target} held, ≤ 8 MiB`,
      met(d.held >= d.target && d.second.ok === d.second.calls && d.second.warm === d.second.calls && (d.instanceMiB ?? Infinity) <= 8),
    ]);
  }
  const header: Row = ['figure', 'Skiff', 'baseline (same run)', 'ratio', 'aim', 'met'];
  const lines = [render([header, ...rows]), '', 'ratio = Skiff ÷ baseline (p50 for latencies)', '', 'baselines measured in this run:'];
  lines.push(`  runc run per call (overlay, config, run, cleanup) ${pct(b.runcRunPerCallMs)} ms`);
  lines.push(`  plain node spawn per call                         ${pct(b.nodeSpawnPerCallMs)} ms`);
  lines.push(`  direct call to a warm sandbox's socket            ${pct(b.directSocketMs)} ms, ${num(b.directSocketPerSec, 0)} calls/s at 32 in flight`);
  lines.push(`  pooled sandbox before specialization              ${num(b.pooledSandboxMiB, 2)} MiB charged`);
  if (r.burst) {
    const s = r.burst;
    lines.push(
      '',
      `burst: ${s.calls} calls, most instances at once ${s.maxInstances} (at ${num(s.toMaxSec, 2)} s), all answered in ${num(s.answeredSec, 2)} s, non-2xx ${s.non2xx}, statuses ${JSON.stringify(s.statuses)}`,
    );
  }
  if (r.noisyNeighbour) {
    lines.push(
      '',
      `noisy neighbour: victim alone ${pct(r.noisyNeighbour.aloneMs)} ms, beside the bombs ${r.noisyNeighbour.bombsMs ? pct(r.noisyNeighbour.bombsMs) : 'n/a'} ms, and a CPU burner too ${pct(r.noisyNeighbour.underAttackMs)} ms, errors ${r.noisyNeighbour.errors}, attackers' async calls ${JSON.stringify(r.noisyNeighbour.attackCalls)}`,
    );
  }
  if (r.tracingOverhead) {
    const t = r.tracingOverhead;
    lines.push(
      '',
      `tracing: ${num(t.withoutPerSec, 0)} calls/s without export, ${num(t.withPerSec, 0)} with, overhead ${num(t.overheadPct, 1)}%, ${t.spansReceived} spans received by the sink`,
    );
  }
  if (r.density) {
    const d = r.density;
    lines.push(
      '',
      `density (${d.at}): ${d.held}/${d.target} held, ${num(d.createdPerSec, 2)} created/s, first calls ${JSON.stringify(d.firstStatuses)}; second round ${d.second.ok}/${d.second.calls} 200, ${d.second.warm} warm, ${d.second.distinctInstances} distinct instances`,
    );
    lines.push(
      `  free memory ${d.freeMemMiB.before} → ${d.freeMemMiB.held} MiB, pids ${d.pids.before} → ${d.pids.held}, threads ${d.threads.before} → ${d.threads.held} (kernel.pid_max 32768)`,
    );
  }
  if (r.notes.length > 0) lines.push('', 'notes:', ...r.notes.map((n) => `  - ${n}`));
  return lines.join('\n');
}

function noisyCell(n: NoisyNeighbour | null): string {
  return n ? `${pct(n.underAttackMs)} (${n.errors} errors)` : 'n/a';
}

function burstCell(r: Results): string {
  if (r.burst200Sec !== null) return `${num(r.burst200Sec, 2)} (${r.burst?.non2xx ?? '?'} non-2xx)`;
  if (r.burst) return `n/a (0 → ${r.burst.maxInstances} in ${num(r.burst.toMaxSec, 2)})`;
  return 'n/a';
}

export function pct(p: Percentiles | null | undefined): string {
  return p ? `p50 ${num(p.p50, p.p50 < 10 ? 2 : 1)} p99 ${num(p.p99, p.p99 < 10 ? 2 : 1)}` : 'n/a';
}

export function num(value: number | null | undefined, digits: number): string {
  return value === null || value === undefined ? 'n/a' : value.toFixed(digits);
}

export function ratio(ours: number | null | undefined, baseline: number | null | undefined): string {
  if (ours === null || ours === undefined || !baseline) return 'n/a';
  const value = ours / baseline;
  return `${value < 10 ? round(value, 2).toFixed(2) : value.toFixed(0)}×`;
}

export function met(ok: boolean | null | undefined): string {
  return ok === null || ok === undefined ? 'n/a' : ok ? 'yes' : 'no';
}

export function render(rows: string[][]): string {
  const widths = rows[0]?.map((_, col) => Math.max(...rows.map((row) => (row[col] ?? '').length))) ?? [];
  const line = (row: string[]): string =>
    row
      .map((cell, col) => cell.padEnd(widths[col] ?? 0))
      .join('  ')
      .trimEnd();
  return [line(rows[0] ?? []), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}
