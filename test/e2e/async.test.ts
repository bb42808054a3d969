/**
 * Asynchronous calls: a failing one is retried with backoff, then kept as a dead letter, which
 * can be re-driven (here after the function was fixed) and then succeeds.
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform } from '../support/platform.js';

t.test('failures are retried, dead-lettered, and re-driven', async (t) => {
  const platform = await startPlatform({ SKIFF_ASYNC_RETRIES: '2', SKIFF_RETRY_BACKOFF_MS: '100' });
  t.teardown(() => platform.stop());
  const api = client(() => platform);
  const record = async (id: string): Promise<{ status: string; result?: unknown; error?: { code: string; message: string } }> =>
    (await (await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth })).json()) as { status: string };

  await api.deploy(
    { name: 'flaky' },
    { 'index.js': 'exports.handler = async (e) => { console.log("attempt for", e.order); throw new Error("down for maintenance"); };' },
  );
  const res = await api.invoke('flaky', { order: 7 }, { 'x-skiff-invocation-type': 'async' });
  t.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  t.ok(await eventually(async () => (await record(id)).status === 'failed', 15_000), 'it ends failed after its retries');
  t.match(await record(id), { status: 'failed', error: { code: 'FunctionError', message: 'down for maintenance' } });

  const attempts = async (): Promise<number> =>
    (
      (await (await fetch(`${platform.url}/v1/functions/flaky/logs?invocation=${id}`, { headers: platform.auth })).json()) as { lines: Array<{ text: string }> }
    ).lines.filter((l) => l.text === 'attempt for 7').length;
  await eventually(async () => (await attempts()) >= 3, 5000);
  t.equal(await attempts(), 3, 'it ran three times: the call and two retries');

  const letters = await fetch(`${platform.url}/v1/functions/flaky/dead-letters`, { headers: platform.auth });
  t.equal(letters.status, 200);
  t.match(await letters.json(), { deadLetters: [{ id, attempts: 3, event: { order: 7 }, error: { code: 'FunctionError' } }] });

  // The function is fixed, and the dead letter re-driven.
  await api.deploy({ name: 'flaky' }, { 'index.js': 'exports.handler = async (e) => ({ shipped: e.order });' });
  const redriven = await fetch(`${platform.url}/v1/functions/flaky/dead-letters/${id}/redrive`, { method: 'POST', headers: platform.auth });
  t.equal(redriven.status, 202);
  t.ok(await eventually(async () => (await record(id)).status === 'succeeded', 10_000), 'the re-driven call succeeds');
  t.match(await record(id), { result: { shipped: 7 } });
  t.match(await (await fetch(`${platform.url}/v1/functions/flaky/dead-letters`, { headers: platform.auth })).json(), { deadLetters: [] });
  const again = await fetch(`${platform.url}/v1/functions/flaky/dead-letters/${id}/redrive`, { method: 'POST', headers: platform.auth });
  t.equal(again.status, 404, 'a dead letter is re-driven once');
});
