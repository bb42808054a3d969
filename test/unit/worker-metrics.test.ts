/**
 * The worker's metrics without a worker: cold-start steps laid out from measured timings (pure),
 * the histogram and gauges they feed, counting sandbox creations, the /metrics server, the config.
 */
import t from 'tap';
import { loadConfig } from '../../infra/config.js';
import type { Logger } from '../../infra/log.js';
import type { CreationEvent } from '../../worker/sandbox/sandbox.js';
import { WorkerMetrics, anchoredClock, coldStartSteps, serveMetrics, type ColdStartStep, type WorkerMetricsSources } from '../../worker/metrics.js';

const byPhase = (steps: ColdStartStep[]): Record<string, ColdStartStep> => Object.fromEntries(steps.map((s) => [s.phase, s]));
const duration = (s: ColdStartStep | undefined): number => (s ? s.endMs - s.startMs : NaN);
const close = (a: number, b: number): boolean => Math.abs(a - b) < 1e-6;

t.test('a pooled cold start: steps back to back, ending when acquire returned; the rest is waiting', async (t) => {
  const steps = byPhase(coldStartSteps('pooled', { codeMs: 5, createMs: 0.1, bindMs: 3, initMs: 4 }, undefined, 1000, 1020));
  t.same(Object.keys(steps).sort(), ['bind', 'code', 'init', 'pool_take', 'specialize', 'total', 'wait'].sort());
  t.ok(close(steps.init!.endMs, 1020) && close(steps.init!.startMs, 1016), 'init ends when acquire returned');
  t.ok(close(steps.bind!.endMs, steps.init!.startMs) && close(duration(steps.bind), 3), 'bind right before init');
  t.ok(close(steps.pool_take!.endMs, steps.bind!.startMs) && close(duration(steps.pool_take), 0.1));
  t.ok(close(steps.code!.endMs, steps.pool_take!.startMs) && close(duration(steps.code), 5));
  t.ok(close(steps.wait!.startMs, 1000) && close(steps.wait!.endMs, steps.code!.startMs) && close(duration(steps.wait), 7.9), 'what is left is waiting');
  t.ok(close(duration(steps.total), 20), 'total is the whole acquire');
  t.same([steps.specialize!.startMs, steps.specialize!.endMs], [steps.bind!.startMs, steps.init!.endMs], 'specialize holds bind and init');
  t.equal(steps.bind!.parent, 'specialize');
  t.equal(steps.init!.parent, 'specialize');
  t.equal(steps.pool_take!.span, 'pool.take');
  t.equal(steps.code!.parent, undefined, 'directly under the invocation');
});

t.test('a created cold start: mount, runc and bootstrap inside create', async (t) => {
  const steps = byPhase(
    coldStartSteps(
      'created',
      { codeMs: 1, createMs: 80, bindMs: 3, initMs: 4 },
      { mountMs: 10, runcMs: 30, bootstrapMs: 35, overlayMs: 9, taskMs: 8, specMs: 2 },
      0,
      88,
    ),
  );
  t.notOk(steps.pool_take, 'no pool take');
  t.equal(steps.create!.span, 'sandbox.create');
  t.ok(close(steps.create!.startMs, 1) && close(steps.create!.endMs, 81));
  t.ok(close(steps.mount!.startMs, 1) && close(duration(steps.mount), 10) && steps.mount!.parent === 'create');
  t.ok(close(steps.runc!.startMs, 11) && close(duration(steps.runc), 30));
  t.ok(close(steps.bootstrap!.startMs, 41) && close(duration(steps.bootstrap), 35));
  t.ok(close(duration(steps.wait), 0), 'no waiting');

  const skewed = byPhase(
    coldStartSteps(
      'created',
      { codeMs: 0, createMs: 10, bindMs: 0, initMs: 0 },
      { mountMs: 6, runcMs: 6, bootstrapMs: 6, overlayMs: 6, taskMs: 6, specMs: 6 },
      0,
      10,
    ),
  );
  t.ok(skewed.bootstrap!.endMs <= skewed.create!.endMs && skewed.runc!.endMs <= skewed.create!.endMs, 'inner steps never outlast create');
  t.ok(
    Object.values(skewed).every((s) => s.endMs >= s.startMs),
    'no step ends before it starts',
  );
});

t.test('the anchored clock is epoch milliseconds and never goes back', async (t) => {
  // Bracketed by Date.now() read just before and just after, instead of "within 50 ms of it": the
  // anchor is a Date.now() taken in between, and the monotonic time added since then cannot be more
  // than elapsed until `after` (1 ms each way for Date.now()'s whole milliseconds).
  const before = Date.now();
  const clock = anchoredClock();
  const a = clock();
  const b = clock();
  const after = Date.now();
  t.ok(a >= before - 1 && a <= after + 1, `epoch milliseconds, as Date.now() reads them (${before} <= ${a.toFixed(1)} <= ${after})`);
  t.ok(b >= a);
});

const log = { error: () => undefined, info: () => undefined, warn: () => undefined, debug: () => undefined } as unknown as Logger;

function sources(): WorkerMetricsSources & { pooled: Record<string, number> } {
  const pooled: Record<string, number> = { nodejs20: 2 };
  return {
    pooled,
    capacityMb: 4096,
    instances: { counts: () => ({ idle: { v1: 2, v2: 1 }, busy: { v1: 1 } }), usedMb: () => 640, reclaimableMb: () => 384 },
    pool: { sizes: () => ({ ...pooled }), targets: () => ({ nodejs20: 5 }) },
  };
}

async function values(metrics: WorkerMetrics, name: string): Promise<Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>> {
  const metric = (await metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return (metric?.values ?? []) as Array<{ labels: Record<string, string | number>; value: number; metricName?: string }>;
}

t.test('the histogram, the gauges and the default worker label', async (t) => {
  const src = sources();
  const metrics = new WorkerMetrics('node-a', src);
  metrics.observeColdStart('pooled', coldStartSteps('pooled', { codeMs: 2, createMs: 0, bindMs: 3, initMs: 4 }, undefined, 0, 12));
  metrics.observeQueueWait(25);
  metrics.observeQueueWait(-3); // clocks of two hosts: never negative

  const cold = await values(metrics, 'skiff_cold_start_seconds');
  const count = (phase: string): number | undefined => cold.find((v) => v.metricName === 'skiff_cold_start_seconds_count' && v.labels.phase === phase)?.value;
  for (const phase of ['wait', 'code', 'pool_take', 'specialize', 'bind', 'init', 'total']) t.equal(count(phase), 1, `one ${phase} observation`);
  const initSum = cold.find((v) => v.metricName === 'skiff_cold_start_seconds_sum' && v.labels.phase === 'init');
  t.ok(initSum && close(initSum.value, 0.004), 'in seconds');
  t.equal(initSum?.labels.kind, 'pooled');
  t.equal(initSum?.labels.worker, 'node-a', 'every series names its worker');

  const waits = await values(metrics, 'skiff_queue_wait_seconds');
  t.equal(waits.find((v) => v.metricName === 'skiff_queue_wait_seconds_count')?.value, 2);
  t.ok(close(waits.find((v) => v.metricName === 'skiff_queue_wait_seconds_sum')?.value ?? NaN, 0.025));

  t.same((await values(metrics, 'skiff_instances')).map((v) => [v.labels.state, v.value]).sort(), [
    ['busy', 1],
    ['idle', 3],
  ]);
  t.same(
    (await values(metrics, 'skiff_pool_ready')).map((v) => [v.labels.runtime, v.value]),
    [['nodejs20', 2]],
  );
  delete src.pooled.nodejs20;
  src.pooled.python3 = 1;
  t.same(
    (await values(metrics, 'skiff_pool_ready')).map((v) => [v.labels.runtime, v.value]),
    [['python3', 1]],
    'read afresh at every scrape',
  );
  t.same(
    (await values(metrics, 'skiff_pool_target')).map((v) => [v.labels.runtime, v.value]),
    [['nodejs20', 5]],
  );
  t.same(Object.fromEntries((await values(metrics, 'skiff_worker_memory_mb')).map((v) => [v.labels.kind, v.value])), {
    capacity: 4096,
    used: 640,
    reclaimable: 384,
  });
  const text = await metrics.registry.metrics();
  t.match(text, /# TYPE skiff_cold_start_seconds histogram/);
  t.match(text, /skiff_worker_process_cpu_seconds_total/, 'process metrics, prefixed');
});

t.test('measure() counts and times every creation the factory reports', async (t) => {
  const metrics = new WorkerMetrics('node-b', sources());
  const listeners: Array<(event: CreationEvent) => void> = [];
  metrics.measure({ onCreation: (listener) => listeners.push(listener) });
  t.equal(listeners.length, 1, 'it listens to the factory');
  const report = (event: CreationEvent): void => listeners.forEach((l) => l(event));
  report({ runtime: 'nodejs20', ok: true, timings: { mountMs: 10, runcMs: 30, bootstrapMs: 35, overlayMs: 9, taskMs: 8, specMs: 2 }, totalMs: 80 });
  report({ runtime: 'nodejs20', ok: true, timings: { mountMs: 10, runcMs: 30, bootstrapMs: 35, overlayMs: 9, taskMs: 8, specMs: 2 }, totalMs: 80 });
  report({ runtime: 'nodejs20', ok: false, totalMs: 5 });

  t.same(
    (await values(metrics, 'skiff_sandboxes_created_total')).map((v) => [v.labels.runtime, v.value]),
    [['nodejs20', 2]],
  );
  t.same(
    (await values(metrics, 'skiff_sandbox_create_failures_total')).map((v) => [v.labels.runtime, v.value]),
    [['nodejs20', 1]],
  );
  const create = await values(metrics, 'skiff_sandbox_create_seconds');
  const sum = (phase: string): number | undefined => create.find((v) => v.metricName === 'skiff_sandbox_create_seconds_sum' && v.labels.phase === phase)?.value;
  t.ok(close(sum('runc') ?? NaN, 0.06), 'runc: 2 × 30 ms');
  t.ok(close(sum('total') ?? NaN, 0.16), 'total: 2 × 80 ms');
  t.ok(close(sum('overlay') ?? NaN, 0.018), 'the parts of mount too: overlay 2 × 9 ms');
  t.ok(close(sum('task') ?? NaN, 0.016), 'task 2 × 8 ms');
  t.ok(close(sum('spec') ?? NaN, 0.004), 'spec 2 × 2 ms');
});

t.test('serveMetrics: GET /metrics in Prometheus text, 404 elsewhere, 405 for other methods', async (t) => {
  const metrics = new WorkerMetrics('node-c', sources());
  const server = await serveMetrics(metrics.registry, '127.0.0.1', 0, log);
  t.teardown(() => server.close());
  t.match(server.url, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  const res = await fetch(server.url);
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/);
  t.match(await res.text(), /skiff_worker_memory_mb\{kind="capacity",worker="node-c"\} 4096/);
  t.equal((await fetch(server.url.replace('/metrics', '/'))).status, 404);
  t.equal((await fetch(server.url, { method: 'POST' })).status, 405);
});

t.test('serveMetrics rejects when the port is taken', async (t) => {
  const metrics = new WorkerMetrics('node-d', sources());
  const first = await serveMetrics(metrics.registry, '127.0.0.1', 0, log);
  t.teardown(() => first.close());
  const port = Number(new URL(first.url).port);
  await t.rejects(serveMetrics(metrics.registry, '127.0.0.1', port, log), { code: 'EADDRINUSE' });
});

t.test('config: SKIFF_WORKER_METRICS_HOST / SKIFF_WORKER_METRICS_PORT', async (t) => {
  t.same(loadConfig({}).workerMetrics, { host: '127.0.0.1', port: 9464 }, 'defaults');
  t.same(loadConfig({ SKIFF_WORKER_METRICS_HOST: '0.0.0.0', SKIFF_WORKER_METRICS_PORT: '0' }).workerMetrics, { host: '0.0.0.0', port: 0 }, '0: not served');
  t.throws(() => loadConfig({ SKIFF_WORKER_METRICS_PORT: '70000' }), /SKIFF_WORKER_METRICS_PORT/);
});
