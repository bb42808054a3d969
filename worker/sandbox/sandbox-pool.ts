/**
 * Ready sandboxes made ahead of time, per runtime: namespaces, cgroup, overlay root and a started
 * bootstrap waiting on its socket. Taking one costs nothing on the call path; the pool refills in
 * the background, one creation at a time, because creation is CPU-bound (about a quarter of a
 * CPU-second each, measured on the 2-core build machine: `runc create` about 0.07, Node.js start
 * about 0.17) and must not starve the calls being served.
 */
import type { Logger } from '../../infra/log.js';
import type { RuntimeImage, Sandbox, SandboxFactory, SandboxPool } from './sandbox.js';

export interface SandboxPoolOptions {
  /** Ready sandboxes to keep per runtime. */
  target: number;
  /** Memory limit of a pooled sandbox until it is specialized. */
  memoryMb: number;
  /** Memory the worker has left: the pool never takes what instances could use. */
  freeMb: () => number;
  log: Logger;
}

/** The worker's pool: the contract is on SandboxPool (sandbox.ts). */
export class ReadySandboxPool implements SandboxPool {
  private readonly ready = new Map<string, Sandbox[]>();
  private filling: Promise<void> | undefined;
  private stopped = false;
  private failures = 0;

  constructor(
    private readonly factory: SandboxFactory,
    private readonly images: ReadonlyMap<string, RuntimeImage>,
    private readonly options: SandboxPoolOptions,
  ) {
    for (const runtime of images.keys()) this.ready.set(runtime, []);
  }

  /** A ready sandbox of `runtime`, or undefined if none is ready now. Triggers a refill. */
  take(runtime: string): Sandbox | undefined {
    const list = this.ready.get(runtime);
    const sandbox = list?.shift();
    this.refill();
    return sandbox;
  }

  sizes(): Record<string, number> {
    return Object.fromEntries([...this.ready].map(([runtime, list]) => [runtime, list.length]));
  }

  /** Memory reserved by ready sandboxes, in MiB. */
  reservedMb(): number {
    let total = 0;
    for (const list of this.ready.values()) total += list.length * this.options.memoryMb;
    return total;
  }

  /** Starts filling in the background; resolves when the pool is full (or filling failed). */
  refill(): Promise<void> {
    this.filling ??= this.fill().finally(() => (this.filling = undefined));
    return this.filling;
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    await this.filling;
    const all = [...this.ready.values()].flat();
    for (const list of this.ready.values()) list.length = 0;
    await Promise.all(all.map((sandbox) => sandbox.destroy('worker stopping')));
  }

  private async fill(): Promise<void> {
    for (;;) {
      if (this.stopped) return;
      const short = [...this.ready].find(([, list]) => list.length < this.options.target);
      if (!short) return;
      const [runtime, list] = short;
      if (this.options.freeMb() < this.options.memoryMb) return;
      const image = this.images.get(runtime);
      if (!image) return;
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
        // Back off so a broken host does not spin; the next take() retries.
        if (this.failures >= 3) return;
      }
    }
  }
}
