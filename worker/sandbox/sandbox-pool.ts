/**
 * Ready sandboxes made ahead of time, per runtime: namespaces, cgroup, overlay root and a started
 * bootstrap waiting on its socket. Taking one costs nothing on the call path. Each runtime's
 * target follows its demand (pool-sizing.ts: the arrival rate of new instances, bounded by the
 * memory the worker and the host can spare); the pool refills toward it with a few creations at
 * once (creation is CPU-bound and must not starve the calls being served) and gives back what is
 * over it, a little at a time, when demand decays.
 */
import type { Logger } from '../../infra/log.js';
import { ArrivalRate, poolTargets, type PoolSizingOptions } from './pool-sizing.js';
import type { RuntimeImage, Sandbox, SandboxFactory, SandboxPool } from './sandbox.js';

export interface SandboxPoolOptions {
  /** Floor, max and demand window of each runtime's pool (SKIFF_POOL_SIZE pins floor = max). */
  sizing: PoolSizingOptions;
  /** Creations the pool runs at once while refilling. */
  concurrency: number;
  /** Memory limit of a pooled sandbox until it is specialized. */
  memoryMb: number;
  /** Memory a ready sandbox holds (what the worker and the host count for it), in MiB. */
  footprintMb: number;
  /** Memory the worker has left: the pool never takes what instances could use. It counts the pool's own reservation. */
  freeMb: () => number;
  /** Memory the host can still give, in MiB (its available memory less a margin); absent: unbounded. */
  hostSpareMb?: () => number;
  /** The clock, in ms (a fake one in tests). */
  now?: () => number;
  log: Logger;
}

/** Ready sandboxes destroyed per adjustment when demand decays: shrinking costs CPU too. */
const SHRINK_STEP = 4;

/** Creations failing in a row after which the pool stops filling (a broken host must not spin) until the next take. */
const FAILURE_STREAK = 3;

/** The worker's pool: the contract is on SandboxPool (sandbox.ts). */
export class ReadySandboxPool implements SandboxPool {
  private readonly ready = new Map<string, Sandbox[]>();
  private readonly making = new Map<string, number>();
  private readonly arrivals = new Map<string, ArrivalRate>();
  private readonly now: () => number;
  private filling: Promise<void> | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly factory: SandboxFactory,
    private readonly images: ReadonlyMap<string, RuntimeImage>,
    private readonly options: SandboxPoolOptions,
  ) {
    if (!Number.isInteger(options.concurrency) || options.concurrency < 1)
      throw new RangeError(`a pool needs a concurrency of at least 1, got ${options.concurrency}`);
    this.now = options.now ?? Date.now;
    for (const runtime of images.keys()) {
      this.ready.set(runtime, []);
      this.making.set(runtime, 0);
      this.arrivals.set(runtime, new ArrivalRate(options.sizing.windowMs));
    }
  }

  /** Adjusts to demand every `everyMs` (shrinks what decayed, refills what grew) until shutdown. */
  start(everyMs = 1000): void {
    this.ticker ??= setInterval(() => void this.adjust(), everyMs);
    this.ticker.unref();
  }

  /** A ready sandbox of `runtime`, or undefined if none is ready now. Counts as demand; triggers a refill. */
  take(runtime: string): Sandbox | undefined {
    const list = this.ready.get(runtime);
    this.arrivals.get(runtime)?.record(this.now());
    // After creations kept failing the pool stopped filling; a take tries once more.
    this.failures = Math.min(this.failures, FAILURE_STREAK - 1);
    const sandbox = list?.shift();
    void this.refill();
    return sandbox;
  }

  sizes(): Record<string, number> {
    return Object.fromEntries([...this.ready].map(([runtime, list]) => [runtime, list.length]));
  }

  /** What each runtime's pool aims for now (demand, floor, max and memory). */
  targets(): Record<string, number> {
    const spare = Math.min(this.options.freeMb(), this.options.hostSpareMb?.() ?? Infinity);
    const holdings = [...this.ready.keys()].map((runtime) => ({
      runtime,
      ratePerSecond: this.arrivals.get(runtime)?.perSecond(this.now()) ?? 0,
      held: this.held(runtime),
    }));
    return poolTargets(holdings, this.options.sizing, spare, this.options.footprintMb);
  }

  /** Memory reserved by ready sandboxes and those being made, in MiB. */
  reservedMb(): number {
    let total = 0;
    for (const runtime of this.ready.keys()) total += this.held(runtime) * this.options.footprintMb;
    return total;
  }

  /** Starts filling in the background; resolves when the pool is at its targets (or filling failed). */
  refill(): Promise<void> {
    this.filling ??= this.fill().finally(() => (this.filling = undefined));
    return this.filling;
  }

  /** Gives back what is over the targets (a few at a time), then refills what is under. */
  async adjust(): Promise<void> {
    if (this.stopped) return;
    const targets = this.targets();
    const excess: Sandbox[] = [];
    for (const [runtime, list] of this.ready) {
      const over = Math.min(list.length, this.held(runtime) - (targets[runtime] ?? 0), SHRINK_STEP - excess.length);
      // The oldest go: the newest have the warmest page cache.
      if (over > 0) excess.push(...list.splice(0, over));
    }
    if (excess.length > 0) this.options.log.debug({ destroyed: excess.length, targets }, 'pool shrinks to its targets');
    await Promise.all([
      ...excess.map((sandbox) =>
        sandbox
          .destroy('pool over its target')
          .catch((error: unknown) => this.options.log.error({ err: error, sandbox: sandbox.id }, 'could not destroy a pooled sandbox')),
      ),
      this.refill(),
    ]);
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    clearInterval(this.ticker);
    await this.filling;
    const all = [...this.ready.values()].flat();
    for (const list of this.ready.values()) list.length = 0;
    await Promise.all(all.map((sandbox) => sandbox.destroy('worker stopping')));
  }

  private held(runtime: string): number {
    return (this.ready.get(runtime)?.length ?? 0) + (this.making.get(runtime) ?? 0);
  }

  /** The runtime furthest under its target, if any is under. */
  private shortest(): string | undefined {
    const targets = this.targets();
    let best: string | undefined;
    let bestShort = 0;
    for (const runtime of this.ready.keys()) {
      const short = (targets[runtime] ?? 0) - this.held(runtime);
      if (short > bestShort) [best, bestShort] = [runtime, short];
    }
    return best;
  }

  private async fill(): Promise<void> {
    await Promise.all(Array.from({ length: this.options.concurrency }, () => this.fillOneAtATime()));
  }

  /** One lane of the refill: makes sandboxes one after the other while a runtime is short. */
  private async fillOneAtATime(): Promise<void> {
    for (;;) {
      if (this.stopped || this.failures >= FAILURE_STREAK) return;
      const runtime = this.shortest();
      const image = runtime === undefined ? undefined : this.images.get(runtime);
      if (runtime === undefined || !image) return;
      const list = this.ready.get(runtime) ?? [];
      this.making.set(runtime, (this.making.get(runtime) ?? 0) + 1);
      try {
        const sandbox = await this.factory.create(image, this.options.memoryMb);
        this.failures = 0;
        if (this.stopped) {
          await sandbox.destroy('worker stopping');
          return;
        }
        list.push(sandbox);
        sandbox.onDeath(() => {
          const at = list.indexOf(sandbox);
          if (at !== -1) list.splice(at, 1);
        });
      } catch (error) {
        this.failures++;
        this.options.log.error({ err: error, runtime, failures: this.failures }, 'could not pre-create a sandbox');
      } finally {
        this.making.set(runtime, (this.making.get(runtime) ?? 1) - 1);
      }
    }
  }
}
