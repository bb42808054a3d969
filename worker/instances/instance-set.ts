/**
 * The warm instances of a worker: specialized sandboxes, each serving one function version.
 * `acquire` hands out a warm instance with a free slot if there is one (a warm start), else
 * specializes a pooled sandbox (a pooled cold start), else creates one (a full cold start). When
 * the version already has `maxInstances`, or the worker has no memory left even after evicting
 * idle instances, the call waits for an instance to free up until its deadline, then gets
 * `TooManyRequests`. Idle instances live for their function's keep-alive (never below its
 * `minWarm`); when memory runs short the least recently used idle instances go first.
 *
 * Tenant quotas (maxInstances, maxMemoryMb over the fleet) are the scheduler's to enforce: a
 * call of a tenant at its limits comes with an order to evict that tenant's own idle instances
 * first, and `acquire` carries it out before making the call's instance. As a safety net the
 * node also holds each tenant to its limits by its own count (it never makes an instance that
 * would take the tenant past them on this node alone); such a call waits like one at
 * maxInstances.
 */
import { performance } from 'node:perf_hooks';
import { SkiffError } from '../../infra/errors.js';
import type { Logger } from '../../infra/log.js';
import type { FunctionVersion } from '../../infra/functions/version.js';
import type { TenantEviction, TenantLimits, TenantUsage } from '../../infra/tenancy/instance-limits.js';
import type { CodeSource } from '../code/code-cache.js';
import { sameRoot, type OutputLine, type RuntimeImage, type Sandbox, type SandboxFactory, type SandboxPool } from '../sandbox/sandbox.js';
import { CrashBackoff } from './crash-backoff.js';
import { expired, reclaimableMb, tenantUsage, tenantVictims, toFreeMemory, type InstanceView } from './eviction.js';

/** Out-of-memory kills in a row after which a version gets no new instance for a while. */
const CRASH_STREAK = 3;

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

export interface Acquired {
  instance: Instance;
  kind: StartKind;
  timings: AcquireTimings;
}

/** What the scheduler said about a call's tenant: its limits, and what to evict first. */
export interface TenantOrder {
  limits?: TenantLimits | undefined;
  evict?: TenantEviction | undefined;
}

export interface InstanceSetOptions {
  capacityMb: number;
  /** Receives the output of every instance, with the function it belongs to. */
  onOutput: (fn: FunctionVersion, sandboxId: string, line: OutputLine) => void;
  log: Logger;
}

const NO_TIMINGS: AcquireTimings = { codeMs: 0, createMs: 0, bindMs: 0, initMs: 0 };

export class InstanceSet {
  private readonly instances = new Map<string, Instance>();
  /** Instances being made, by version id, and the memory promised to them. */
  private readonly making = new Map<string, number>();
  private pendingMb = 0;
  /** Instances being made, by tenant, and their memory: counted in the tenant's usage from the moment it was decided. */
  private readonly makingByTenant = new Map<string, { instances: number; memoryMb: number }>();
  /** Calls waiting for an instance to free up; woken on every release or destroy. */
  private waiters = new Set<() => void>();
  private readonly crashes = new CrashBackoff({ streak: CRASH_STREAK });
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    private readonly pool: SandboxPool,
    private readonly factory: SandboxFactory,
    private readonly images: ReadonlyMap<string, RuntimeImage>,
    private readonly code: CodeSource,
    private readonly options: InstanceSetOptions,
  ) {}

  start(sweepEveryMs = 1000): void {
    this.sweeper = setInterval(() => this.evictExpired(), sweepEveryMs);
    this.sweeper.unref();
  }

  /**
   * An instance for one call of `fn`; waits for one to free up until `deadline` (ms since epoch).
   * `tenant`: the tenant's limits and the scheduler's order to evict its idle instances first.
   */
  /** A warm instance of `fn` with a call slot free now, taken for a call; undefined if there is none (nothing made, nothing waited for). */
  takeFree(fn: FunctionVersion): Acquired | undefined {
    const warm = this.findFree(fn.versionId, fn.concurrency);
    if (!warm) return undefined;
    warm.inFlight++;
    return { instance: warm, kind: 'warm', timings: NO_TIMINGS };
  }

  async acquire(fn: FunctionVersion, deadline: number, tenant: TenantOrder = {}): Promise<Acquired> {
    // The order is carried out once: later rounds (after a wait) go by the node's own count.
    let evict = tenant.evict;
    let atTenantLimits = false;
    for (;;) {
      const warm = this.takeFree(fn);
      if (warm) return warm;
      const refusedMs = this.crashes.refusedFor(fn.versionId);
      if (refusedMs > 0) {
        throw new SkiffError(
          'TooManyRequests',
          `${fn.name} ran out of memory ${CRASH_STREAK} times in a row: no new instance of it for ${Math.ceil(refusedMs / 1000)} s (crash backoff)`,
        );
      }
      if (this.countOf(fn.versionId) < fn.maxInstances) {
        const victims = this.roomForTenant(fn, tenant.limits, evict);
        evict = undefined;
        atTenantLimits = victims === undefined;
        if (victims) {
          const made = await this.reserveAndMake(fn, 1, victims);
          if (made) return made;
        }
      }
      const left = deadline - Date.now();
      if (left <= 0) {
        if (atTenantLimits) {
          throw new SkiffError(
            'TooManyRequests',
            `tenant ${fn.tenant} is at its maxInstances (${tenant.limits?.maxInstances}) or maxMemoryMb (${tenant.limits?.maxMemoryMb} MiB) on this worker; try again`,
          );
        }
        throw new SkiffError('TooManyRequests', `${fn.name} is at its limit of instances (maxInstances ${fn.maxInstances}) or the worker is full; try again`);
      }
      await this.changed(left);
    }
  }

  /** How a call on `fn` ended, for the crash backoff: killed for memory, or not. */
  outcome(fn: FunctionVersion, outOfMemory: boolean): void {
    if (outOfMemory) this.crashes.crashed(fn.versionId);
    else this.crashes.succeeded(fn.versionId);
  }

  release(instance: Instance): void {
    instance.inFlight--;
    instance.lastUsedAt = Date.now();
    if (instance.retired && instance.inFlight === 0) void this.destroy(instance, 'retired');
    this.wake();
  }

  /** Makes idle instances of `fn` until it has `minWarm` (if memory allows); returns how many were made. */
  async keepWarm(fn: FunctionVersion): Promise<number> {
    let made = 0;
    while (this.countOf(fn.versionId) < Math.min(fn.minWarm, fn.maxInstances) && (await this.reserveAndMake(fn, 0))) {
      this.wake();
      made++;
    }
    return made;
  }

  /**
   * Makes one idle instance of `fn` (its handler loaded) unless it has one, with free memory
   * only (a guess about a call to come evicts nothing); whether it made one. It is an instance
   * like any other: the version's own, idle until a call or its keep-alive ends it.
   */
  async preload(fn: FunctionVersion): Promise<boolean> {
    if (this.countOf(fn.versionId) > 0 || fn.maxInstances < 1 || this.freeMb() < fn.memoryMb) return false;
    const made = await this.reserveAndMake(fn, 0);
    if (made) this.wake();
    return made !== undefined;
  }

  /** Retires every instance of function `name` except those of version `keepVersion`. */
  retireFunction(name: string, keepVersion?: number): void {
    for (const instance of this.instances.values()) {
      if (instance.fn.name !== name || instance.fn.version === keepVersion) continue;
      instance.retired = true;
      if (instance.inFlight === 0) void this.destroy(instance, 'retired');
    }
  }

  usedMb(): number {
    let used = this.pendingMb + this.pool.reservedMb();
    for (const instance of this.instances.values()) used += instance.sandbox.memoryMb;
    return used;
  }

  freeMb(): number {
    return this.options.capacityMb - this.usedMb();
  }

  /** Memory held by idle instances that could be evicted for a new one. */
  reclaimableMb(): number {
    return reclaimableMb(this.views());
  }

  /** Idle and busy instances by version id, and the free call slots on busy ones. */
  counts(): { idle: Record<string, number>; busy: Record<string, number>; slots: Record<string, number> } {
    const idle: Record<string, number> = {};
    const busy: Record<string, number> = {};
    const slots: Record<string, number> = {};
    for (const { fn, inFlight, retired, sandbox } of this.instances.values()) {
      const into = inFlight > 0 ? busy : idle;
      into[fn.versionId] = (into[fn.versionId] ?? 0) + 1;
      if (inFlight > 0 && inFlight < fn.concurrency && !retired && sandbox.state === 'specialized') {
        slots[fn.versionId] = (slots[fn.versionId] ?? 0) + fn.concurrency - inFlight;
      }
    }
    return { idle, busy, slots };
  }

  /** What each tenant holds on this node (busy, idle and being made), for the heartbeat. */
  tenantUsage(): Record<string, TenantUsage> {
    const usage = tenantUsage(this.views());
    for (const [tenant, making] of this.makingByTenant) {
      const u = (usage[tenant] ??= { instances: 0, memoryMb: 0, idleInstances: 0, idleMemoryMb: 0 });
      u.instances += making.instances;
      u.memoryMb += making.memoryMb;
    }
    return usage;
  }

  /** Live instances (for tests and status pages). */
  list(): Instance[] {
    return [...this.instances.values()];
  }

  async shutdown(): Promise<void> {
    clearInterval(this.sweeper);
    const all = [...this.instances.values()];
    this.instances.clear();
    this.wake();
    await Promise.all(all.map((i) => i.sandbox.destroy('worker stopping')));
  }

  /** Instances of a version, counting those being made. */
  private countOf(versionId: string): number {
    let count = this.making.get(versionId) ?? 0;
    for (const instance of this.instances.values()) if (instance.fn.versionId === versionId && !instance.retired) count++;
    return count;
  }

  private findFree(versionId: string, concurrency: number): Instance | undefined {
    let best: Instance | undefined;
    for (const instance of this.instances.values()) {
      if (instance.fn.versionId !== versionId || instance.retired || instance.sandbox.state !== 'specialized') continue;
      if (instance.inFlight >= concurrency) continue;
      // Prefer the most recently used: the rest stay idle long enough to be evicted.
      if (!best || instance.lastUsedAt > best.lastUsedAt) best = instance;
    }
    return best;
  }

  /**
   * Whether one more instance of `fn` may be made for its tenant, and which of the tenant's own
   * idle instances must go first: the scheduler's order (the tenant is at its limits over the
   * fleet; best effort, as a warm call may have taken one meanwhile), and whatever the node's own
   * count needs. Undefined when the node's own count would pass the limits even with every idle
   * instance of the tenant gone: then nothing is evicted in vain, and the call waits.
   */
  private roomForTenant(fn: FunctionVersion, limits: TenantLimits | undefined, order: TenantEviction | undefined): string[] | undefined {
    const here = this.tenantUsage()[fn.tenant];
    const overInstances = limits ? (here?.instances ?? 0) + 1 - limits.maxInstances : 0;
    const overMb = limits ? (here?.memoryMb ?? 0) + fn.memoryMb - limits.maxMemoryMb : 0;
    const need = {
      instances: Math.max(overInstances, order ? Math.max(1, order.instances) : 0),
      memoryMb: Math.max(overMb, order?.memoryMb ?? 0),
    };
    if (need.instances <= 0 && need.memoryMb <= 0) return [];
    const chosen = tenantVictims(this.views(), fn.tenant, need);
    if (chosen.instances < overInstances || chosen.memoryMb < overMb) return undefined;
    return chosen.ids;
  }

  /**
   * Destroys `victims`, promises memory to a new instance of `fn` and makes it; undefined if the
   * worker has no room. The instance counts for its tenant from the start (before any await), so
   * calls deciding meanwhile see it.
   */
  private async reserveAndMake(fn: FunctionVersion, inFlight: number, victims: readonly string[] = []): Promise<Acquired | undefined> {
    const holding = this.makingByTenant.get(fn.tenant) ?? { instances: 0, memoryMb: 0 };
    this.makingByTenant.set(fn.tenant, { instances: holding.instances + 1, memoryMb: holding.memoryMb + fn.memoryMb });
    try {
      await Promise.all(victims.map((id) => this.destroyById(id, `tenant ${fn.tenant} at its limits`)));
      if (!(await this.reserve(fn.memoryMb))) return undefined;
      return await this.makeReserved(fn, inFlight);
    } finally {
      const left = this.makingByTenant.get(fn.tenant) ?? { instances: 1, memoryMb: fn.memoryMb };
      if (left.instances <= 1) this.makingByTenant.delete(fn.tenant);
      else this.makingByTenant.set(fn.tenant, { instances: left.instances - 1, memoryMb: left.memoryMb - fn.memoryMb });
    }
  }

  /** Promises `memoryMb` to a new instance, evicting idle ones if needed; false if it cannot. */
  private async reserve(memoryMb: number): Promise<boolean> {
    const shortBy = this.usedMb() + memoryMb - this.options.capacityMb;
    if (shortBy > 0) {
      const victims = toFreeMemory(this.views(), shortBy);
      if (victims.length === 0) return false;
      await Promise.all(victims.map((id) => this.destroyById(id, 'memory pressure')));
    }
    this.pendingMb += memoryMb;
    return true;
  }

  private async makeReserved(fn: FunctionVersion, inFlight: number): Promise<Acquired> {
    this.making.set(fn.versionId, (this.making.get(fn.versionId) ?? 0) + 1);
    try {
      return await this.make(fn, inFlight);
    } finally {
      this.pendingMb -= fn.memoryMb;
      const left = (this.making.get(fn.versionId) ?? 1) - 1;
      if (left === 0) this.making.delete(fn.versionId);
      else this.making.set(fn.versionId, left);
    }
  }

  private async make(fn: FunctionVersion, inFlight: number): Promise<Acquired> {
    const t0 = performance.now();
    const { codeDir, root } = await this.code.prepare(fn);
    const t1 = performance.now();
    // A pooled sandbox runs the runtime image this worker pooled; a function built on another one
    // (deployed before the runtime was updated) gets a container of its own image's root.
    let sandbox = sameRoot(this.images.get(fn.runtime), root) ? this.pool.take(fn.runtime) : undefined;
    const kind: StartKind = sandbox ? 'pooled' : 'created';
    sandbox ??= await this.factory.create(root, fn.memoryMb);
    const t2 = performance.now();
    const id = sandbox.id;
    sandbox.onOutput((line) => this.options.onOutput(fn, id, line));
    // A handler that cannot be loaded rejects with FunctionError (the sandbox says so); the sandbox is gone either way.
    const specialized = await sandbox.specialize(fn, codeDir, { egress: fn.network === 'egress' });
    const instance: Instance = { sandbox, fn, inFlight, lastUsedAt: Date.now(), retired: false };
    this.instances.set(sandbox.id, instance);
    sandbox.onDeath(() => {
      this.instances.delete(sandbox.id);
      this.wake();
    });
    return { instance, kind, timings: { codeMs: t1 - t0, createMs: t2 - t1, ...specialized } };
  }

  private changed(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.waiters.delete(done);
        resolve();
      };
      const timer = setTimeout(done, timeoutMs);
      this.waiters.add(done);
    });
  }

  private wake(): void {
    if (this.waiters.size === 0) return;
    const waiting = this.waiters;
    this.waiters = new Set();
    for (const resolve of waiting) resolve();
  }

  private views(): InstanceView[] {
    return [...this.instances.values()].map((i) => ({
      id: i.sandbox.id,
      versionId: i.fn.versionId,
      tenant: i.fn.tenant,
      memoryMb: i.sandbox.memoryMb,
      inFlight: i.inFlight,
      lastUsedAt: i.lastUsedAt,
      idleTimeoutMs: i.fn.idleTimeoutMs,
      minWarm: i.retired ? 0 : i.fn.minWarm,
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
    this.wake();
    return instance.sandbox.destroy(reason).catch((error: unknown) => {
      this.options.log.error({ err: error, sandbox: instance.sandbox.id, reason }, 'could not destroy sandbox');
    });
  }
}
