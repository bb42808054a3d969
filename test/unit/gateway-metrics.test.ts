/** The gateway's metrics without a gateway: queue depth read at scrape time, latency by outcome. */
import t from 'tap';
import { createGatewayMetrics } from '../../gateway/metrics.js';

t.test('queue depth is read from each watched queue at every scrape', async (t) => {
  const metrics = createGatewayMetrics();
  let waiting = 3;
  metrics.watchQueue('invocations', async () => ({ waiting, active: 1, delayed: 0 }));
  t.match(await metrics.registry.metrics(), /skiff_queue_depth\{queue="invocations",state="waiting"\} 3/);
  waiting = 7;
  const text = await metrics.registry.metrics();
  t.match(text, /skiff_queue_depth\{queue="invocations",state="waiting"\} 7/);
  t.match(text, /skiff_queue_depth\{queue="invocations",state="active"\} 1/);
});

t.test('a queue that cannot be read is left out; the scrape still answers', async (t) => {
  const metrics = createGatewayMetrics();
  metrics.watchQueue('broken', () => Promise.reject(new Error('redis down')));
  metrics.watchQueue('fine', async () => ({ waiting: 2 }));
  const text = await metrics.registry.metrics();
  t.notMatch(text, /queue="broken"/);
  t.match(text, /skiff_queue_depth\{queue="fine",state="waiting"\} 2/);
});

t.test('latency is labelled by function and outcome', async (t) => {
  const metrics = createGatewayMetrics();
  metrics.latency.observe({ function: 'f', outcome: 'ok' }, 0.02);
  metrics.latency.observe({ function: 'f', outcome: 'FunctionTimeout' }, 3);
  const text = await metrics.registry.metrics();
  t.match(text, /skiff_invocation_duration_seconds_count\{function="f",outcome="ok"\} 1/);
  t.match(text, /skiff_invocation_duration_seconds_count\{function="f",outcome="FunctionTimeout"\} 1/);
});
