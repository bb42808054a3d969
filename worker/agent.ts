/**
 * One worker node's agent, assembled from its concerns: the consumer of its queue
 * (calls/node-queue.ts: takes a call, runs it in an instance, ends it), its presence in the fleet
 * (presence.ts: heartbeats, operators' orders, drain) and its reactions to deploys and deletes
 * (function-events.ts). This file only wires them and orders their start and stop.
 */
import type { Redis } from 'ioredis';
import type { Tracer } from '@opentelemetry/api';
import type { Logger } from '../infra/log.js';
import type { InvocationRecords } from '../infra/db/invocation-records.js';
import type { KeySpace } from '../infra/queue/names.js';
import type { CachedImage, WorkerHeartbeat } from '../infra/fleet/heartbeat.js';
import { FleetRegistry } from '../infra/fleet/registry.js';
import type { AsyncCallDeps } from '../infra/calls/async-calls.js';
import type { InstanceSet } from './instances/instance-set.js';
import type { SandboxPool } from './sandbox/sandbox.js';
import type { WorkerMetrics } from './metrics.js';
import { NodeQueueConsumer } from './calls/node-queue.js';
import { NodePresence } from './presence.js';
import { listenToFunctionEvents, reactToFunctionEvent } from './function-events.js';

export interface WorkerAgentOptions {
  id: string;
  /** Images the node holds ready, for its heartbeat. */
  images?: () => CachedImage[];
  /** Pulls a newly deployed version's image ahead of its first call. */
  prefetch?: (image: string) => void;
  keys: KeySpace;
  /** Connection for commands (publish, heartbeat). */
  redis: Redis;
  /** A second connection, used only for subscriptions. */
  subscriber: Redis;
  /** Factory of the connection BullMQ's worker blocks on. */
  queueConnection: Redis;
  concurrency: number;
  capacityMb: number;
  heartbeatMs: number;
  heartbeatTtlMs: number;
  instances: InstanceSet;
  pool: SandboxPool;
  /** Told about deploys, to make minWarm instances of a new version at once. */
  warmKeeper: { check(): void };
  records: InvocationRecords;
  /** A synchronous call's result is kept in its record only while its outcome's JSON is at most
   *  this many bytes (the caller got it whole either way); absent: always. */
  recordResultLimitBytes?: number;
  asyncCalls: AsyncCallDeps;
  tracer: Tracer;
  /** Cold-start phases and queue wait are recorded here when given. */
  metrics?: WorkerMetrics;
  log: Logger;
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
