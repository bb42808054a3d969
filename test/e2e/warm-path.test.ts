/**
 * The short warm path, through the gateway: a call to a function with a free warm instance goes
 * straight to that instance's node (no scheduler on its way: it is answered while the scheduler
 * is stopped), while a call that finds no warm instance is placed by the scheduler (it waits for
 * one). The gateway counts both routes in `skiff_call_routes_total`; the worker counts the
 * straight calls it ran in `skiff_straight_calls_total`.
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform } from '../support/platform.js';

const NOOP = { 'index.js': 'exports.handler = async (e) => ({ n: e.n });' };

t.test('warm calls go straight to their node; a call without a warm instance is placed by the scheduler', async (t) => {
  const platform = await startPlatform();
  t.teardown(() => platform.stop());
  const { deploy, invoke } = client(() => platform);
  for (const name of ['hot', 'later']) t.equal((await deploy({ name }, NOOP)).status, 201, `${name} deployed`);

  /** The gateway's count of sync calls by route. */
  const routes = async (): Promise<{ warm: number; scheduler: number }> => {
    const text = await (await fetch(`${platform.url}/metrics`, { headers: platform.auth })).text();
    const count = (route: string): number => Number(new RegExp(`^skiff_call_routes_total\\{route="${route}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? 0);
    return { warm: count('warm'), scheduler: count('scheduler') };
  };
  const straightRun = async (): Promise<number> => {
    const metric = (await platform.worker.metrics.registry.getMetricsAsJSON()).find((m) => m.name === 'skiff_straight_calls_total');
    return (metric?.values ?? []).filter((v) => v.labels.outcome === 'run').reduce((sum, v) => sum + v.value, 0);
  };

  const first = await invoke('hot', { n: 1 });
  t.equal(first.status, 200, 'the first call is answered');
  t.equal(first.headers.get('x-skiff-cold-start'), 'true', 'cold: there was no instance to go straight to');
  t.same(await routes(), { warm: 0, scheduler: 1 }, 'the scheduler placed it');

  let last: Response | undefined;
  t.ok(
    await eventually(async () => {
      last = await invoke('hot', { n: 2 });
      return last.status === 200 && (await routes()).warm >= 1;
    }),
    'once its instance is free, a call goes straight to it',
  );
  t.equal(last?.headers.get('x-skiff-cold-start'), 'false', 'and runs warm');
  t.ok((await straightRun()) >= 1, 'the worker ran it as a straight call');

  let placedLater: Promise<Response> | undefined;
  await platform.restartScheduler(async () => {
    let settled = false;
    placedLater = invoke('later', { n: 3 });
    void placedLater.finally(() => (settled = true));
    const warm = await invoke('hot', { n: 4 });
    t.equal(warm.status, 200, 'a warm call is answered with no scheduler running');
    t.same(await warm.json(), { n: 4 });
    t.notOk(settled, 'a call with no warm instance waits for a scheduler to place it');
  });
  const later = await placedLater;
  t.equal(later?.status, 200, 'and is answered once a scheduler runs again');
});
