/**
 * Keeps `minWarm` instances of functions that ask for them, without any call; and, when a version
 * is deployed, makes one idle instance of it at once (`preloadOnDeploy`), so its first call does
 * not pay for loading the handler. One node per function does it (`warmOwner`: rendezvous hashing
 * over the active nodes), so the fleet holds minWarm instances of a function, not minWarm per
 * node, and one preloaded instance of a new version.
 */
import type { FunctionStore } from '../../infra/db/function-store.js';
import { versionOf } from '../../infra/db/function-store.js';
import type { Logger } from '../../infra/log.js';
import { warmOwner } from '../../infra/fleet/warm-owner.js';
import type { InstanceSet } from './instance-set.js';

export interface WarmKeeperOptions {
  selfId: string;
  instances: InstanceSet;
  functions: FunctionStore;
  /** Ids of the nodes that take work now (this one included). */
  activeNodes: () => Promise<string[]>;
  everyMs: number;
  /** Make one idle instance of each newly deployed version on its warm owner. */
  preloadOnDeploy: boolean;
  log: Logger;
}

export class WarmKeeper {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private again = false;

  constructor(private readonly o: WarmKeeperOptions) {}

  start(): void {
    this.timer = setInterval(() => this.check(), this.o.everyMs);
    this.timer.unref();
    this.check();
  }

  /** Looks again now (e.g. after a deploy); coalesces with a check already running. */
  check(): void {
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.pass()
      .catch((error: unknown) => this.o.log.error({ err: error }, 'keeping instances warm failed'))
      .finally(() => {
        this.running = undefined;
        if (this.again) {
          this.again = false;
          this.check();
        }
      });
  }

  /** Version `version` of `name` was deployed: its warm owner preloads it (if enabled). */
  deployed(name: string, version: number): void {
    if (!this.o.preloadOnDeploy) return;
    void this.preload(name, version).catch((error: unknown) =>
      this.o.log.error({ err: error, function: name, version }, 'could not preload a deployed version'),
    );
  }

  private async preload(name: string, version: number): Promise<void> {
    const nodes = await this.o.activeNodes();
    if (!nodes.includes(this.o.selfId)) nodes.push(this.o.selfId);
    if (warmOwner(name, nodes) !== this.o.selfId) return;
    const info = await this.o.functions.version(name, version);
    if (!info) return;
    if (await this.o.instances.preload(versionOf(info))) this.o.log.debug({ function: name, version }, 'preloaded a deployed version');
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    this.again = false;
    await this.running;
  }

  private async pass(): Promise<void> {
    const [functions, nodes] = await Promise.all([this.o.functions.keptWarm(), this.o.activeNodes()]);
    if (!nodes.includes(this.o.selfId)) nodes.push(this.o.selfId);
    for (const info of functions) {
      if (warmOwner(info.name, nodes) !== this.o.selfId) continue;
      const made = await this.o.instances.keepWarm(versionOf(info));
      if (made > 0) this.o.log.info({ function: info.name, version: info.version, made }, 'made instances to keep warm');
    }
  }
}
