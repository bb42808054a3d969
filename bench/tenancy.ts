/**
 * What the tenant and role check costs a call: sequential warm calls of an `auth: "key"` function
 * (its key verified, its role and tenant checked, the secret stripped from the event) beside
 * those of an `auth: "none"` one on the same platform, interleaved call by call so the machine's
 * noise falls on both alike. Both pay the per-tenant rate limit (one Redis INCR per call).
 */
import { deploy, invoke, noop, post } from './http.js';
import type { Platform } from './harness.js';
import { percentiles, type Percentiles } from './stats.js';

export interface KeyCheckCost {
  openMs: Percentiles;
  keyedMs: Percentiles;
  /** keyed p50 − open p50, in ms. */
  p50CostMs: number;
}

export async function keyCheckCost(platform: Platform, count: number, warmup = 200): Promise<KeyCheckCost> {
  await deploy(platform, { name: 'open-noop', source: noop('open-noop') });
  await deploy(platform, { name: 'keyed-noop', source: noop('keyed-noop'), auth: 'key' });
  const open: number[] = [];
  const keyed: number[] = [];
  for (let i = 0; i < warmup + count; i++) {
    const a = await invoke(platform.url, 'open-noop');
    const b = await post(`${platform.url}/v1/functions/keyed-noop/invoke`, {}, platform.auth);
    if (a.status !== 200 || b.status !== 200) throw new Error(`calls answered ${a.status} and ${b.status}: ${a.body} ${b.body}`);
    if (i >= warmup) {
      open.push(a.ms);
      keyed.push(b.ms);
    }
  }
  const openMs = percentiles(open);
  const keyedMs = percentiles(keyed);
  return { openMs, keyedMs, p50CostMs: Math.round((keyedMs.p50 - openMs.p50) * 1000) / 1000 };
}
