/**
 * The node's presence in the fleet: its heartbeat every `SKIFF_HEARTBEAT_MS` (what it holds and
 * can take), the operator's order it reads at each beat (cordon, drain), and the drain that order
 * starts. Heartbeats and orders are kept by {@link FleetRegistry}; what an order makes of the
 * node's state is {@link stateUnder}'s rule (both infra/fleet/).
 */
import type { Logger } from '../infra/log.js';
import type { CachedImage, WorkerHeartbeat, WorkerState } from '../infra/fleet/heartbeat.js';
import { stateUnder } from '../infra/fleet/orders.js';
import type { FleetRegistry } from '../infra/fleet/registry.js';
import type { RecoveryResult } from '../infra/fleet/recovery.js';
import type { InstanceSet } from './instances/instance-set.js';
import type { SandboxPool } from './sandbox/sandbox.js';

export interface NodePresenceOptions {
  id: string;
  fleet: Pick<FleetRegistry, 'orderOf' | 'beat' | 'remove'>;
  heartbeatMs: number;
  capacityMb: number;
  instances: Pick<InstanceSet, 'counts' | 'usedMb' | 'reclaimableMb' | 'tenantUsage'>;
  pool: Pick<SandboxPool, 'sizes'>;
  /** Images the node holds ready, for its heartbeat. */
  images?: () => CachedImage[];
  /** Stops taking calls and hands back the waiting ones (NodeQueueConsumer.handBack). */
  drain: () => Promise<RecoveryResult>;
  log: Logger;
}

export class NodePresence {
  private heartbeat: NodeJS.Timeout | undefined;
  private state: WorkerState = 'active';
  private drainDone!: () => void;
  /** Resolves when an operator's drain has finished: running calls done, waiting ones handed back. */
  readonly drained = new Promise<void>((resolve) => (this.drainDone = resolve));

  constructor(private readonly o: NodePresenceOptions) {}

  /** Beats once (the node is in the fleet when this resolves), then every `heartbeatMs`. */
  async start(): Promise<void> {
    await this.beat();
    this.heartbeat = setInterval(() => void this.beat().catch((error: unknown) => this.o.log.error({ err: error }, 'heartbeat failed')), this.o.heartbeatMs);
  }

  /** Stops beating and leaves the fleet at once (schedulers need not wait for the TTL). */
  async stop(): Promise<void> {
    clearInterval(this.heartbeat);
    await this.o.fleet.remove(this.o.id);
  }

  heartbeatData(): WorkerHeartbeat {
    const { idle, busy, slots } = this.o.instances.counts();
    return {
      id: this.o.id,
      at: Date.now(),
      state: this.state,
      capacityMb: this.o.capacityMb,
      usedMb: this.o.instances.usedMb(),
      reclaimableMb: this.o.instances.reclaimableMb(),
      idle,
      busy,
      slots,
      pool: this.o.pool.sizes(),
      images: this.o.images?.() ?? [],
      tenants: this.o.instances.tenantUsage(),
    };
  }

  private async beat(): Promise<void> {
    const was = this.state;
    this.state = stateUnder(await this.o.fleet.orderOf(this.o.id), was);
    if (this.state === 'draining' && was !== 'draining') void this.drain().catch((error: unknown) => this.o.log.error({ err: error }, 'drain failed'));
    await this.o.fleet.beat(this.heartbeatData());
  }

  /** Takes no new calls, lets running ones finish, hands back the ones placed but not started. */
  private async drain(): Promise<void> {
    this.o.log.info({ worker: this.o.id }, 'draining');
    const result = await this.o.drain();
    this.o.log.info({ worker: this.o.id, ...result }, 'drained');
    this.drainDone();
  }
}
