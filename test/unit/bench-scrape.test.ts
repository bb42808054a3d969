/**
 * How the deployed bench reads a worker from outside (bench/scrape.ts): the text a real
 * WorkerMetrics registry serves at GET /metrics, parsed; the pool and instance gauges; and the
 * per-phase means of the cold-start histogram between two scrapes, which the bench prints as
 * where a figure's time went. No worker, no server: the registry's own text.
 */
import t from 'tap';
import { histogramMeanMs, instances, parseMetrics, phaseMeans, poolReady, poolsFull, total } from '../../bench/scrape.js';
import { coldStartSteps, WorkerMetrics, type WorkerMetricsSources } from '../../worker/metrics.js';

function metricsWith(pooled: Record<string, number>): WorkerMetrics {
  const sources: WorkerMetricsSources = {
    capacityMb: 4096,
    instances: { counts: () => ({ idle: { v1: 2, v2: 1 }, busy: { v1: 1 } }), usedMb: () => 640, reclaimableMb: () => 384 },
    pool: { sizes: () => ({ ...pooled }), targets: () => ({ ...pooled }) },
  };
  return new WorkerMetrics('node-a', sources);
}

t.test('the gauges: ready sandboxes per runtime, instances idle and busy', async (t) => {
  const pooled = { nodejs20: 2, 'python3.11': 1 };
  const s = parseMetrics(await metricsWith(pooled).registry.metrics());
  t.equal(poolReady(s), 2);
  t.equal(poolReady(s, 'python3.11'), 1);
  t.equal(instances(s), 4, 'idle 3 + busy 1');
  t.notOk(poolsFull(s, 2), 'python3.11 holds 1 of 2');
  t.ok(poolsFull(s, 1));
  t.equal(total(s, 'skiff_worker_memory_mb', { kind: 'used' }), 640, 'a label filter picks one series');
});

t.test('phase means between two scrapes count only the observations in between', async (t) => {
  const metrics = metricsWith({ nodejs20: 2 });
  // Before: one slow cold start that is not the figure's.
  metrics.observeColdStart('pooled', coldStartSteps('pooled', { codeMs: 50, createMs: 0, bindMs: 50, initMs: 100 }, undefined, 0, 200));
  metrics.observeQueueWait(100);
  const before = parseMetrics(await metrics.registry.metrics());
  // The figure's: two cold starts, init 4 and 6 ms, bind 3 ms each; and one of another kind.
  metrics.observeColdStart('pooled', coldStartSteps('pooled', { codeMs: 1, createMs: 0, bindMs: 3, initMs: 4 }, undefined, 1000, 1008));
  metrics.observeColdStart('pooled', coldStartSteps('pooled', { codeMs: 1, createMs: 0, bindMs: 3, initMs: 6 }, undefined, 2000, 2010));
  metrics.observeColdStart('created', coldStartSteps('created', { codeMs: 1, createMs: 90, bindMs: 3, initMs: 6 }, undefined, 3000, 3100));
  metrics.observeQueueWait(2);
  metrics.observeQueueWait(4);
  const after = parseMetrics(await metrics.registry.metrics());

  const pooled = phaseMeans(before, after, 'skiff_cold_start_seconds', ['bind', 'init', 'total'], { kind: 'pooled' });
  t.equal(pooled.count, 2, 'the two pooled cold starts since the first scrape');
  t.equal(pooled.meanMs.init, 5);
  t.equal(pooled.meanMs.bind, 3);
  t.equal(pooled.meanMs.total, 9);
  t.notOk('create' in phaseMeans(before, after, 'skiff_cold_start_seconds', ['create'], { kind: 'pooled' }).meanMs, 'a phase never observed has no mean');
  t.equal(phaseMeans(before, after, 'skiff_cold_start_seconds', ['total'], { kind: 'created' }).meanMs.total, 100);
  t.equal(histogramMeanMs(before, after, 'skiff_queue_wait_seconds'), 3);
  t.equal(histogramMeanMs(after, after, 'skiff_queue_wait_seconds'), null, 'nothing in between');
});
