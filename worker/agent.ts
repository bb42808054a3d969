/**
 * One worker node's agent, assembled from its concerns: the consumer of its queue
 * (calls/node-queue.ts: takes a call, runs it in an instance, ends it), its presence in the fleet
 * (presence.ts: heartbeats, operators' orders, drain) and its reactions to deploys and deletes
 * (function-events.ts). This file only wires them and orders their start and stop.
 */
import type { Redis } from 'ioredis';
import type { CachedImage, WorkerHeartbeat } from '../infra/fleet/heartbeat.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import type { SandboxPool } from './sandbox/sandbox.js';
import { NodeQueueConsumer, type NodeQueueConsumerOptions } from './calls/node-queue.js';
import { NodePresence } from './presence.js';
import { listenToFunctionEvents, reactToFunctionEvent } from './function-events.js';

/** What the node's queue consumer takes (calls/node-queue.ts), and what its presence and events need. */
export interface WorkerAgentOptions extends NodeQueueConsumerOptions {
  /** Images the node holds ready, for its heartbeat. */
  images?: () => CachedImage[];
  /** Pulls a newly deployed version's image ahead of its first call. */
  prefetch?: (image: string) => void;
  /** A second connection, used only for subscriptions. */
  subscriber: Redis;
  capacityMb: number;
  heartbeatMs: number;
  heartbeatTtlMs: number;
  pool: SandboxPool;
  /** Told about deploys, to make minWarm instances of a new version at once. */
  warmKeeper: { check(): void; deployed(name: string, version: number): void };
}

export class WorkerAgent {
  private readonly calls: NodeQueueConsumer;
  private readonly presence: NodePresence;
  /** Resolves when an operator's drain has finished: running calls done, waiting ones handed back. */
  readonly drained: Promise<void>;

  constructor(private readonly o: WorkerAgentOptions) {
    this.calls = new NodeQueueConsumer(o);
    this.presence = new NodePresence({
      id: o.id,
      fleet: new FleetRegistry(o.redis, o.keys, o.heartbeatTtlMs),
      heartbeatMs: o.heartbeatMs,
      capacityMb: o.capacityMb,
      instances: o.instances,
      pool: o.pool,
      images: o.images,
      drain: () => this.calls.handBack(),
      log: o.log,
    });
    this.drained = this.presence.drained;
  }

  /** In this order: deploys are heard before any call runs, and the node's first heartbeat (which
   *  puts it in placements) goes out only once its queue is consumed. */
  async start(): Promise<void> {
    const o = this.o;
    await listenToFunctionEvents(o.subscriber, o.keys.functionEvents, (event) => reactToFunctionEvent(o, event));
    await this.calls.start();
    await this.presence.start();
    void o.pool.refill();
  }

  /** Out of the fleet first (no more placements), then the running calls end, then their records are written. */
  async stop(): Promise<void> {
    await this.presence.stop();
    await this.calls.stop();
    await this.o.records.flush();
  }

  heartbeatData(): WorkerHeartbeat {
    return this.presence.heartbeatData();
  }
}
