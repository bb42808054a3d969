/**
 * How many ready sandboxes each runtime's pool should hold: a pure decision over plain data
 * (the pool does the I/O), unit-tested with a fake clock.
 *
 * Demand is the arrival rate of new instances of a runtime (every specialization asks the pool,
 * ready sandbox or not), an exponentially weighted rate with time constant `windowMs`. The pool
 * holds one window of that demand: rate × window is the recent arrivals, decayed by age, so a
 * burst like the last one finds its containers already made, and a pool that nobody takes from
 * decays back to its floor (halving every 0.69 windows). A window is far longer than one
 * creation, so this also covers the steady case, the arrivals while one creation runs.
 *
 * Memory bounds it all, the floor included: the pool grows only by what the worker has to spare
 * (its capacity less instances and reservations, and the host's available memory less a margin),
 * each ready sandbox counted at its footprint; when memory is short the targets shrink in
 * proportion, and the pool gives the difference back.
 */

export interface PoolSizingOptions {
  /** Ready sandboxes per runtime when there is no demand (memory allowing). */
  floor: number;
  /** Most ready sandboxes per runtime, whatever the demand. */
  max: number;
  /** Time constant of the arrival rate, in ms: the pool holds about one window of demand. */
  windowMs: number;
}

/** An exponentially weighted arrival rate, in events per second, with time constant `windowMs`. */
export class ArrivalRate {
  private rate = 0;
  private at: number | undefined;

  constructor(private readonly windowMs: number) {
    if (!(windowMs > 0)) throw new RangeError(`an arrival rate needs a window over 0 ms, got ${windowMs}`);
  }

  /** `count` arrivals at `nowMs`. */
  record(nowMs: number, count = 1): void {
    this.rate = this.perSecond(nowMs) + (count * 1000) / this.windowMs;
    this.at = nowMs;
  }

  /** The rate at `nowMs` (decayed since the last arrival). */
  perSecond(nowMs: number): number {
    if (this.at === undefined) return 0;
    return this.rate * Math.exp(-Math.max(0, nowMs - this.at) / this.windowMs);
  }
}

/** What the pool holds of one runtime: ready sandboxes and those being made. */
export interface RuntimeHolding {
  runtime: string;
  /** Arrivals per second (ArrivalRate.perSecond). */
  ratePerSecond: number;
  /** Ready and being made. */
  held: number;
}

/** Ready sandboxes one runtime's demand asks for, between the floor and the max. */
export function demandTarget(ratePerSecond: number, options: PoolSizingOptions): number {
  // A hair under a whole sandbox is none: a decayed rate never quite reaches 0.
  const demand = Math.ceil(ratePerSecond * (options.windowMs / 1000) - 1e-6);
  return Math.min(options.max, Math.max(options.floor, demand));
}

/**
 * The target of each runtime: its demand target, unless memory cannot hold them all; then every
 * runtime gets its share of what fits (the sandboxes held now plus what `spareMb` makes room for,
 * at `footprintMb` each), in proportion to what it asked.
 */
export function poolTargets(holdings: readonly RuntimeHolding[], options: PoolSizingOptions, spareMb: number, footprintMb: number): Record<string, number> {
  const wanted = holdings.map((h) => demandTarget(h.ratePerSecond, options));
  const asked = wanted.reduce((a, b) => a + b, 0);
  const held = holdings.reduce((a, h) => a + h.held, 0);
  const fits = Math.max(0, held + Math.floor(spareMb / footprintMb));
  const scale = asked > fits ? fits / asked : 1;
  return Object.fromEntries(holdings.map((h, i) => [h.runtime, Math.floor((wanted[i] ?? 0) * scale)]));
}
