/**
 * The warm instances of a worker: specialized sandboxes, each serving one function version.
 * `acquire` hands out a warm instance with a free slot if there is one (a warm start), else
 * specializes a pooled sandbox (a pooled cold start), else creates one (a full cold start).
 * Idle instances are kept alive for the function's keep-alive, then destroyed; when memory runs
 * short the least recently used idle instances go first.
 */
import { performance } from 'node:perf_hooks';
import { SkiffError } from '../../infra/errors.js';
import type { Logger } from '../../infra/log.js';
import type { FunctionVersion } from '../../infra/queue/jobs.js';
import type { CodeCache } from '../code/code-cache.js';
import type { RuntimeImage, SandboxFactory } from '../sandbox/runc-sandbox.js';
import type { Sandbox } from '../sandbox/sandbox.js';
import type { SandboxPool } from '../sandbox/sandbox-pool.js';
import { expired, toFreeMemory, type InstanceView } from './eviction.js';

export interface Instance {
  readonly sandbox: Sandbox;
  readonly fn: FunctionVersion;
  inFlight: number;
  lastUsedAt: number;
  /** Set when the function was deleted or superseded: destroy once the last call ends. */
  retired: boolean;
}

export type StartKind = 'warm' | 'pooled' | 'created';

/** Where a cold start's time went, in ms. */
export interface AcquireTimings {
  codeMs: number;
  createMs: number;
  bindMs: number;
  initMs: number;
}

export interface InstanceSetOptions {
  capacityMb: number;
  idleTimeoutMs: number;
  log: Logger;
}

export class InstanceSet {
  private readonly instances = new Map<string, Instance>();
  /** Memory promised to instances being made, not yet in `instances`. */
  private pendingMb = 0;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: SandboxPool,
    private readonly factory: SandboxFactory,
    private readonly images: ReadonlyMap<string, RuntimeImage>,
    private readonly code: CodeCache,
    private readonly options: InstanceSetOptions,
  ) {}

  start(sweepEveryMs = 1000): void {
    this.sweeper = setInterval(() => this.evictExpired(), sweepEveryMs);
    this.sweeper.unref();
  }

  async acquire(fn: FunctionVersion): Promise<{ instance: Instance; kind: StartKind; timings: AcquireTimings }> {
    const warm = this.findFree(fn.versionId, fn.concurrency);
    if (warm) {
      warm.inFlight++;
      return { instance: warm, kind: 'warm', timings: { codeMs: 0, createMs: 0, bindMs: 0, initMs: 0 } };
    }
    await this.reserve(fn.memoryMb);
    try {
      return await this.make(fn);
    } finally {
      this.pendingMb -= fn.memoryMb;
    }
  }

  release(instance: Instance): void {
    instance.inFlight--;
    instance.lastUsedAt = Date.now();
    if (instance.retired && instance.inFlight === 0) this.destroy(instance, 'retired');
  }

  /** Retires every instance of function `name` except those of version `keepVersion`. */
  retireFunction(name: string, keepVersion?: number): void {
    for (const instance of this.instances.values()) {
      if (instance.fn.name !== name || instance.fn.version === keepVersion) continue;
      instance.retired = true;
      if (instance.inFlight === 0) this.destroy(instance, 'retired');
    }
  }

  usedMb(): number {
    let used = this.pendingMb + this.pool.reservedMb();
    for (const instance of this.instances.values()) used += instance.fn.memoryMb;
    return used;
  }

  counts(): { idle: Record<string, number>; busy: Record<string, number> } {
    const idle: Record<string, number> = {};
    const busy: Record<string, number> = {};
    for (const { fn, inFlight } of this.instances.values()) {
      const into = inFlight > 0 ? busy : idle;
      into[fn.versionId] = (into[fn.versionId] ?? 0) + 1;
    }
    return { idle, busy };
  }

  /** Instances by sandbox id (for tests and status pages). */
  list(): Instance[] {
    return [...this.instances.values()];
  }

  async shutdown(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.instances.values()];
    this.instances.clear();
    await Promise.all(all.map((i) => i.sandbox.destroy('worker stopping')));
  }

  private findFree(versionId: string, concurrency: number): Instance | undefined {
    let best: Instance | undefined;
    for (const instance of this.instances.values()) {
      if (instance.fn.versionId !== versionId || instance.retired || instance.sandbox.state !== 'specialized') continue;
      if (instance.inFlight >= concurrency) continue;
      // Prefer the most recently used: it keeps the rest idle long enough to be evicted.
      if (!best || instance.lastUsedAt > best.lastUsedAt) best = instance;
    }
    return best;
  }

  private async reserve(memoryMb: number): Promise<void> {
    const shortBy = this.usedMb() + memoryMb - this.options.capacityMb;
    if (shortBy > 0) {
      const victims = toFreeMemory(this.views(), shortBy);
      if (victims.length === 0) {
        throw new SkiffError('Unavailable', `worker has no memory for another ${memoryMb} MiB instance`);
      }
      await Promise.all(victims.map((id) => this.destroyById(id, 'memory pressure')));
    }
    this.pendingMb += memoryMb;
  }

  private async make(fn: FunctionVersion): Promise<{ instance: Instance; kind: StartKind; timings: AcquireTimings }> {
    const t0 = performance.now();
    const codeDir = await this.code.ensure(fn.codeSha256);
    const t1 = performance.now();
    let sandbox = this.pool.take(fn.runtime);
    const kind: StartKind = sandbox ? 'pooled' : 'created';
    if (!sandbox) {
      const image = this.images.get(fn.runtime);
      if (!image) throw new SkiffError('Unavailable', `this worker has no ${fn.runtime} runtime`);
      sandbox = await this.factory.create(image, fn.memoryMb);
    }
    const t2 = performance.now();
    let specialized: { bindMs: number; initMs: number };
    try {
      specialized = await sandbox.specialize(fn, codeDir);
    } catch (error) {
      if (error instanceof Error && 'info' in error) {
        const info = (error as { info: { type: string; message: string; stack?: string[] } }).info;
        throw new SkiffError('FunctionError', `handler could not be loaded: ${info.message}`, { errorType: info.type, ...(info.stack ? { stack: info.stack } : {}), cause: error });
      }
      throw error;
    }
    const instance: Instance = { sandbox, fn, inFlight: 1, lastUsedAt: Date.now(), retired: false };
    this.instances.set(sandbox.id, instance);
    sandbox.onDeath(() => this.instances.delete(sandbox.id));
    return { instance, kind, timings: { codeMs: t1 - t0, createMs: t2 - t1, ...specialized } };
  }

  private views(): InstanceView[] {
    return [...this.instances.values()].map((i) => ({
      id: i.sandbox.id,
      versionId: i.fn.versionId,
      memoryMb: i.fn.memoryMb,
      inFlight: i.inFlight,
      lastUsedAt: i.lastUsedAt,
      idleTimeoutMs: this.options.idleTimeoutMs,
    }));
  }

  private evictExpired(): void {
    for (const id of expired(this.views(), Date.now())) void this.destroyById(id, 'idle');
  }

  private destroyById(id: string, reason: string): Promise<void> {
    const instance = this.instances.get(id);
    return instance ? this.destroy(instance, reason) : Promise.resolve();
  }

  private destroy(instance: Instance, reason: string): Promise<void> {
    this.instances.delete(instance.sandbox.id);
    return instance.sandbox.destroy(reason).catch((error: unknown) => {
      this.options.log.error({ err: error, sandbox: instance.sandbox.id, reason }, 'could not destroy sandbox');
    });
  }
}
