/**
 * A worker's Prometheus metrics (prom-client), served at GET /metrics on the worker's own small
 * HTTP server (SKIFF_WORKER_METRICS_HOST / SKIFF_WORKER_METRICS_PORT; port 0: not served).
 *
 * Every cold start is broken into phases by `coldStartSteps`, a pure function over the timings
 * the instance set and the sandbox factory measure; the same steps feed the
 * `skiff_cold_start_seconds{phase}` histogram and the worker's trace spans (STYLE.md: every pool
 * step measured). Gauges of instances, pool and memory are read from their owners when scraped.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from '../infra/log.js';
import type { AcquireTimings } from './instances/instance-set.js';
import type { CreationEvent } from './sandbox/sandbox.js';
import type { CreationTimings } from './sandbox/sandbox.js';

/** How a cold start was served: a pre-created sandbox specialized, or one created for the call. */
export type ColdStartKind = 'pooled' | 'created';

/**
 * wait: for memory or an instance slot (eviction included); code: the code directory (fetched and
 * unpacked once per digest); pool_take or create (with mount, runc and bootstrap inside);
 * specialize (bind: code onto /var/task and limits; init: the runtime loads the handler); total.
 */
export type ColdStartPhase = 'wait' | 'code' | 'pool_take' | 'create' | 'mount' | 'runc' | 'bootstrap' | 'specialize' | 'bind' | 'init' | 'total';

/** One measured step of a cold start, in epoch milliseconds, with the span it becomes. */
export interface ColdStartStep {
  phase: ColdStartPhase;
  span: string;
  /** The step (by phase) this one is part of; none: directly under the invocation's span. */
  parent?: ColdStartPhase;
  startMs: number;
  endMs: number;
}

const SPAN_NAMES: Record<ColdStartPhase, string> = {
  wait: 'acquire.wait',
  code: 'code.fetch',
  pool_take: 'pool.take',
  create: 'sandbox.create',
  mount: 'sandbox.mount',
  runc: 'sandbox.runc',
  bootstrap: 'sandbox.bootstrap',
  specialize: 'specialize',
  bind: 'specialize.bind',
  init: 'runtime.init',
  total: 'cold_start',
};

/**
 * The steps of one cold start. The instance set reports durations; they ran back to back and the
 * last (init) ended when `acquire` returned, so they are laid out backwards from `acquiredAtMs`.
 * What is left between `acquireStartMs` and the first step is waiting (for memory, an eviction,
 * or a free slot). A created sandbox's own steps are laid out forward from the start of `create`.
 * `total` (acquire start to end) is a step too, but not a span: the invocation's span holds it.
 */
export function coldStartSteps(
  kind: ColdStartKind,
  timings: AcquireTimings,
  created: CreationTimings | undefined,
  acquireStartMs: number,
  acquiredAtMs: number,
): ColdStartStep[] {
  const step = (phase: ColdStartPhase, startMs: number, endMs: number, parent?: ColdStartPhase): ColdStartStep => ({
    phase,
    span: SPAN_NAMES[phase],
    ...(parent ? { parent } : {}),
    startMs,
    endMs: Math.max(startMs, endMs),
  });
  const initStart = acquiredAtMs - timings.initMs;
  const bindStart = initStart - timings.bindMs;
  const createStart = bindStart - timings.createMs;
  const codeStart = Math.max(acquireStartMs, createStart - timings.codeMs);
  const steps = [
    step('total', acquireStartMs, acquiredAtMs),
    step('wait', acquireStartMs, codeStart),
    step('code', codeStart, createStart),
    step(kind === 'pooled' ? 'pool_take' : 'create', createStart, bindStart),
  ];
  if (kind === 'created' && created) {
    // Clamped into `create`: the factory's own clock and this one differ by fractions of a ms.
    const at = (ms: number): number => Math.min(bindStart, ms);
    const runcStart = at(createStart + created.mountMs);
    const bootStart = at(runcStart + created.runcMs);
    steps.push(
      step('mount', createStart, runcStart, 'create'),
      step('runc', runcStart, bootStart, 'create'),
      step('bootstrap', bootStart, at(bootStart + created.bootstrapMs), 'create'),
    );
  }
  steps.push(
    step('specialize', bindStart, acquiredAtMs),
    step('bind', bindStart, initStart, 'specialize'),
    step('init', initStart, acquiredAtMs, 'specialize'),
  );
  return steps;
}

/**
 * A clock in epoch milliseconds with sub-millisecond precision: Date.now() when made, advanced by
 * the monotonic clock. OpenTelemetry times a span the same way, so steps timed with a clock made
 * when a span starts line up with that span (performance.timeOrigin alone drifts from Date.now()).
 */
export function anchoredClock(): () => number {
  const epoch = Date.now();
  const at = performance.now();
  return () => epoch + (performance.now() - at);
}

/** What the gauges read when scraped. */
export interface WorkerMetricsSources {
  capacityMb: number;
  instances: { counts(): { idle: Record<string, number>; busy: Record<string, number> }; usedMb(): number; reclaimableMb(): number };
  pool: { sizes(): Record<string, number>; targets(): Record<string, number> };
  /** Bytes of unpacked image layers on this host; absent: not reported. */
  imageCacheBytes?: () => Promise<number>;
}

const COLD_START_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1, 2.5, 5, 10];
const WAIT_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

export class WorkerMetrics {
  /** This worker's registry: GET /metrics serves it; tests read it directly. */
  readonly registry = new Registry();
  private readonly coldStart: Histogram<'phase' | 'kind'>;
  private readonly queueWait: Histogram;
  private readonly sandboxesCreated: Counter<'runtime'>;
  private readonly sandboxCreateFailures: Counter<'runtime'>;
  private readonly sandboxCreate: Histogram<'phase' | 'runtime'>;
  private readonly imagePull: Histogram;
  private readonly imagePullBytes: Counter;
  private readonly straightCalls: Counter<'outcome'>;

  constructor(workerId: string, sources: WorkerMetricsSources) {
    const registers = [this.registry];
    this.registry.setDefaultLabels({ worker: workerId });
    collectDefaultMetrics({ register: this.registry, prefix: 'skiff_worker_' });
    this.coldStart = new Histogram({
      name: 'skiff_cold_start_seconds',
      help: 'Cold starts by phase (wait, code, pool_take or create with mount/runc/bootstrap, specialize with bind/init, total) and kind (pooled or created).',
      labelNames: ['phase', 'kind'],
      buckets: COLD_START_BUCKETS,
      registers,
    });
    this.queueWait = new Histogram({
      name: 'skiff_queue_wait_seconds',
      help: 'Time from the gateway queueing a call to this worker starting it (shared queue, placement and node queue).',
      buckets: WAIT_BUCKETS,
      registers,
    });
    this.sandboxesCreated = new Counter({
      name: 'skiff_sandboxes_created_total',
      help: 'Sandboxes made, for the pool or for a call.',
      labelNames: ['runtime'],
      registers,
    });
    this.sandboxCreateFailures = new Counter({
      name: 'skiff_sandbox_create_failures_total',
      help: 'Sandboxes that could not be made.',
      labelNames: ['runtime'],
      registers,
    });
    this.sandboxCreate = new Histogram({
      name: 'skiff_sandbox_create_seconds',
      help: 'Making a sandbox, for the pool or for a call, by phase: mount, runc, bootstrap one after the other (total); overlay, task and spec at once inside mount.',
      labelNames: ['phase', 'runtime'],
      buckets: COLD_START_BUCKETS,
      registers,
    });
    this.imagePull = new Histogram({
      name: 'skiff_image_pull_seconds',
      help: 'Pulls of an image that fetched something from the registry: manifest, config and missing layers, unpacked.',
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.imagePullBytes = new Counter({ name: 'skiff_image_pull_bytes_total', help: 'Bytes fetched from the registry.', registers });
    this.straightCalls = new Counter({
      name: 'skiff_straight_calls_total',
      help: 'Calls a gateway sent straight to this node for a free warm instance, by outcome: run on one, or handed to the shared queue for a scheduler (taken meanwhile).',
      labelNames: ['outcome'],
      registers,
    });
    const imageCacheBytes = sources.imageCacheBytes;
    if (imageCacheBytes) {
      new Gauge({
        name: 'skiff_image_cache_bytes',
        help: 'Unpacked image layers on this host (shared by its workers).',
        registers,
        async collect() {
          this.set(await imageCacheBytes());
        },
      });
    }
    new Gauge({
      name: 'skiff_instances',
      help: 'Warm instances by state: busy (serving at least one call) or idle.',
      labelNames: ['state'],
      registers,
      collect() {
        const { idle, busy } = sources.instances.counts();
        this.set({ state: 'idle' }, sum(idle));
        this.set({ state: 'busy' }, sum(busy));
      },
    });
    new Gauge({
      name: 'skiff_pool_ready',
      help: 'Pre-created sandboxes ready, by runtime.',
      labelNames: ['runtime'],
      registers,
      collect() {
        this.reset();
        for (const [runtime, ready] of Object.entries(sources.pool.sizes())) this.set({ runtime }, ready);
      },
    });
    new Gauge({
      name: 'skiff_pool_target',
      help: 'Ready sandboxes each runtime’s pool aims for now: its demand between floor and max, as memory allows.',
      labelNames: ['runtime'],
      registers,
      collect() {
        this.reset();
        for (const [runtime, target] of Object.entries(sources.pool.targets())) this.set({ runtime }, target);
      },
    });
    new Gauge({
      name: 'skiff_worker_memory_mb',
      help: 'Worker memory in MiB: capacity it may hand out, used (instances, pool, being made), reclaimable (held by idle instances it would evict).',
      labelNames: ['kind'],
      registers,
      collect() {
        this.set({ kind: 'capacity' }, sources.capacityMb);
        this.set({ kind: 'used' }, sources.instances.usedMb());
        this.set({ kind: 'reclaimable' }, sources.instances.reclaimableMb());
      },
    });
  }

  observeColdStart(kind: ColdStartKind, steps: readonly ColdStartStep[]): void {
    for (const s of steps) this.coldStart.observe({ phase: s.phase, kind }, (s.endMs - s.startMs) / 1000);
  }

  imagePulled(seconds: number, bytes: number): void {
    this.imagePull.observe(seconds);
    this.imagePullBytes.inc(bytes);
  }

  countStraightCall(outcome: 'run' | 'handed_back'): void {
    this.straightCalls.inc({ outcome });
  }

  observeQueueWait(ms: number): void {
    this.queueWait.observe(Math.max(0, ms) / 1000);
  }

  observeCreation(runtime: string, created: CreationTimings, totalMs: number): void {
    this.sandboxesCreated.inc({ runtime });
    this.sandboxCreate.observe({ runtime, phase: 'mount' }, created.mountMs / 1000);
    this.sandboxCreate.observe({ runtime, phase: 'runc' }, created.runcMs / 1000);
    this.sandboxCreate.observe({ runtime, phase: 'bootstrap' }, created.bootstrapMs / 1000);
    this.sandboxCreate.observe({ runtime, phase: 'overlay' }, created.overlayMs / 1000);
    this.sandboxCreate.observe({ runtime, phase: 'task' }, created.taskMs / 1000);
    this.sandboxCreate.observe({ runtime, phase: 'spec' }, created.specMs / 1000);
    this.sandboxCreate.observe({ runtime, phase: 'total' }, totalMs / 1000);
  }

  creationFailed(runtime: string): void {
    this.sandboxCreateFailures.inc({ runtime });
  }

  /** Counts and times every sandbox `factory` makes, for the pool and for calls alike. */
  measure(factory: { onCreation(listener: (event: CreationEvent) => void): void }): void {
    factory.onCreation((event) => {
      if (event.ok) this.observeCreation(event.runtime, event.timings, event.totalMs);
      else this.creationFailed(event.runtime);
    });
  }
}

function sum(counts: Record<string, number>): number {
  let total = 0;
  for (const n of Object.values(counts)) total += n;
  return total;
}

export interface MetricsServer {
  /** Where it listens, e.g. http://127.0.0.1:9464/metrics. */
  url: string;
  close(): Promise<void>;
}

/** Serves `registry` at GET /metrics on host:port (node:http; port 0 picks a free one). */
export async function serveMetrics(registry: Registry, host: string, port: number, log: Logger): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the worker serves GET /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(request.method === 'HEAD' ? undefined : text),
      (error: unknown) => {
        log.error({ err: error }, 'could not collect worker metrics');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('could not collect metrics\n');
      },
    );
  });
  // Scrapes are short; idle keep-alive connections must not hold the worker open on stop.
  server.keepAliveTimeout = 5000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  const shownHost = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${shownHost}:${address.port}/metrics`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((error) => (error ? reject(error) : resolve()));
        server.closeAllConnections();
      }),
  };
}
