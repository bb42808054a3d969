/**
 * A worker's pool follows demand (worker/sandbox/pool-sizing.ts), on a real worker with runc: at
 * rest it holds its floor; a burst of new instances raises its target and it makes more ready
 * sandboxes; idle, it gives them back down to the floor. Sizes are read from the worker's
 * metrics (skiff_pool_ready, skiff_pool_target) and from GET /v1/workers. A deploy preloads one
 * instance of the new version (SKIFF_PRELOAD_ON_DEPLOY), so its first call is warm.
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

/** A handler that holds its instance a little, so a burst's calls each get an instance of their own. */
const SLOW = { 'index.js': 'exports.handler = () => new Promise((resolve) => setTimeout(() => resolve("done"), 300));' };

async function gauge(platform: Platform, name: string): Promise<number> {
  const metric = (await platform.worker.metrics.registry.getMetricsAsJSON()).find((m) => m.name === name);
  return metric?.values.find((v) => v.labels.runtime === 'nodejs20')?.value ?? 0;
}

t.test('the pool grows under a burst of new instances and shrinks back to its floor when idle', async (t) => {
  // Demand-sized (no fixed SKIFF_POOL_SIZE), with a small floor and max and a short window.
  const platform = await startPlatform({
    SKIFF_POOL_SIZE: '',
    SKIFF_POOL_FLOOR: '1',
    SKIFF_POOL_MAX: '4',
    SKIFF_POOL_WINDOW_MS: '10000',
    SKIFF_PRELOAD_ON_DEPLOY: '1',
  });
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  t.ok(await eventually(async () => (await gauge(platform, 'skiff_pool_ready')) === 1, 60_000), 'at rest: the floor');
  t.equal(await gauge(platform, 'skiff_pool_target'), 1);

  t.equal((await deploy({ name: 'slow', concurrency: 1 }, SLOW)).status, 201);
  // The deploy preloads one instance (SKIFF_PRELOAD_ON_DEPLOY): the first call finds it warm.
  t.ok(await eventually(() => platform.worker.instances.list().some((i) => i.fn.name === 'slow'), 30_000), 'the deploy made an instance');
  const first = await invoke('slow', {});
  t.equal(first.status, 200);
  t.equal(first.headers.get('x-skiff-cold-start'), 'false', 'the first call after the deploy is warm: its handler was loaded at deploy');
  const replies = await Promise.all(Array.from({ length: 6 }, () => invoke('slow', {})));
  t.same(
    replies.map((r) => r.status),
    Array(6).fill(200),
    'every call of the burst answered',
  );
  const made = platform.worker.instances.list().filter((i) => i.fn.name === 'slow').length;
  t.ok(made >= 2, `the burst made new instances (${made})`);

  let most = 0;
  t.ok(
    await eventually(async () => {
      most = Math.max(most, await gauge(platform, 'skiff_pool_ready'));
      return most >= 2;
    }, 60_000),
    'the pool grew past its floor, toward the demand it saw',
  );
  t.ok((await gauge(platform, 'skiff_pool_target')) <= 4, 'never past its max');

  t.ok(
    await eventually(async () => (await gauge(platform, 'skiff_pool_ready')) === 1 && (await gauge(platform, 'skiff_pool_target')) === 1, 120_000, 200),
    'idle: back to the floor',
  );
  t.ok(
    await eventually(async () => {
      const body = (await (await fetch(`${platform.url}/v1/workers`, { headers: platform.auth })).json()) as {
        workers: Array<{ id: string; pool: Record<string, number> }>;
      };
      return body.workers.find((w) => w.id === platform.config.worker.id)?.pool.nodejs20 === 1;
    }),
    'GET /v1/workers shows the pool at its floor',
  );
});
