/**
 * Reading a worker from outside, as an operator's Prometheus would: GET /metrics, parsed into
 * series, and the per-phase means of a histogram between two scrapes (where a figure's time went).
 */
import { round } from './stats.js';

/** One scrape: each series (`name{labels}` as printed) and its value. */
export type Scrape = Map<string, number>;

export async function scrape(metricsUrl: string): Promise<Scrape> {
  const res = await fetch(metricsUrl, { signal: AbortSignal.timeout(10_000) });
  if (!res.ok) throw new Error(`${metricsUrl} answered ${res.status}`);
  return parseMetrics(await res.text());
}

/** Prometheus' text format, samples only (no timestamps are written by prom-client). */
export function parseMetrics(text: string): Scrape {
  const series: Scrape = new Map();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const cut = line.lastIndexOf(' ');
    series.set(line.slice(0, cut), Number(line.slice(cut + 1)));
  }
  return series;
}

/** Sum of every series of `name` whose labels include all of `labels` (`key="value"` each). */
export function total(s: Scrape, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  let sum = 0;
  for (const [key, value] of s) {
    const brace = key.indexOf('{');
    if ((brace === -1 ? key : key.slice(0, brace)) !== name) continue;
    if (wanted.every((w) => key.includes(w))) sum += value;
  }
  return sum;
}

/** Ready sandboxes of a runtime in the worker's pool. */
export function poolReady(s: Scrape, runtime = 'nodejs20'): number {
  return total(s, 'skiff_pool_ready', { runtime });
}

/** True when every runtime's pool holds at least `size` ready sandboxes. */
export function poolsFull(s: Scrape, size: number): boolean {
  for (const [key, value] of s) if (key.startsWith('skiff_pool_ready{') && value < size) return false;
  return true;
}

/** Warm instances (idle and busy). */
export function instances(s: Scrape): number {
  return total(s, 'skiff_instances');
}

export interface PhaseMeans {
  /** Observations of the histogram between the scrapes (of its `total` phase when it has one). */
  count: number;
  /** Mean milliseconds per observation, by phase. */
  meanMs: Record<string, number>;
}

/**
 * Mean of each phase of histogram `name` (seconds, with a `phase` label) between `before` and
 * `after`, over the series matching `labels`: where the time of the calls in between went.
 */
export function phaseMeans(before: Scrape, after: Scrape, name: string, phases: readonly string[], labels: Record<string, string> = {}): PhaseMeans {
  const meanMs: Record<string, number> = {};
  let count = 0;
  for (const phase of phases) {
    const n = total(after, `${name}_count`, { ...labels, phase }) - total(before, `${name}_count`, { ...labels, phase });
    const sum = total(after, `${name}_sum`, { ...labels, phase }) - total(before, `${name}_sum`, { ...labels, phase });
    if (n > 0) meanMs[phase] = round((sum / n) * 1000, 2);
    if (phase === 'total' || count === 0) count = Math.max(count, n);
  }
  return { count, meanMs };
}

/** Mean of a plain histogram (no phases) between two scrapes, in ms; null when nothing was observed. */
export function histogramMeanMs(before: Scrape, after: Scrape, name: string): number | null {
  const n = total(after, `${name}_count`) - total(before, `${name}_count`);
  const sum = total(after, `${name}_sum`) - total(before, `${name}_sum`);
  return n > 0 ? round((sum / n) * 1000, 2) : null;
}
