/**
 * A worker killed with calls under way and started again under the same id (what the bring-up's
 * supervisor and systemd do) takes back what its predecessor had started, at once rather than
 * after BullMQ's 30 s lock: the async call is retried as a second attempt and succeeds; the
 * synchronous call of a function not deployed as idempotent is answered 503 `Unavailable`, not
 * run twice behind its caller's back. The scheduler never saw the node gone (its heartbeat
 * stayed fresh), so this is the worker's own doing.
 */
import t from 'tap';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { client, eventually } from '../support/api.js';
import { startPlatform } from '../support/platform.js';

interface WorkerView {
  id: string;
  alive: boolean;
  /** Busy instances per version. */
  busy: Record<string, number>;
}

t.test('a worker started again takes back the calls its killed predecessor had started', async (t) => {
  const platform = await startPlatform({ SKIFF_RETRY_BACKOFF_MS: '200' });
  const env = platform.workerEnv('r', 80_000_000);
  const nodeId = env.SKIFF_WORKER_ID ?? '';
  const children: ChildProcess[] = [];
  const startNode = (): ChildProcess => {
    const child = spawn(process.execPath, ['dist/worker/main.js'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'inherit'] });
    children.push(child);
    return child;
  };
  t.teardown(async () => {
    const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
    for (const child of running) child.kill('SIGTERM');
    await Promise.all(running.map((c) => once(c, 'exit')));
    await platform.stop();
  });
  const api = client(() => platform);
  const workers = async (): Promise<WorkerView[]> =>
    ((await (await fetch(`${platform.url}/v1/workers`, { headers: platform.auth })).json()) as { workers: WorkerView[] }).workers;
  const node = async (): Promise<WorkerView | undefined> => (await workers()).find((w) => w.id === nodeId);
  const busy = async (): Promise<number> => Object.values((await node())?.busy ?? {}).reduce((a, b) => a + b, 0);
  const record = async (id: string): Promise<{ status: string; attempt?: number; workerId?: string }> =>
    (await (await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth })).json()) as { status: string };

  const first = startNode();
  t.ok(await eventually(async () => (await node())?.alive === true, 60_000), 'the node joins the fleet');
  // Only that node takes calls, so both calls surely run on it when it is killed.
  const cordon = await fetch(`${platform.url}/v1/workers/${platform.config.worker.id}/cordon`, { method: 'POST', headers: platform.auth });
  t.equal(cordon.status, 200);
  // Long enough that the first run is surely under way when the node dies (checked below).
  const handler = 'exports.handler = async (e) => { console.log("ran", e.n); await new Promise((r) => setTimeout(r, e.ms)); return e.n; };';
  t.equal((await api.deploy({ name: 'slow', timeoutMs: 60_000 }, { 'index.js': handler })).status, 201);

  const accepted = await api.invoke('slow', { n: 1, ms: 8000 }, { 'x-skiff-invocation-type': 'async' });
  t.equal(accepted.status, 202);
  const { id } = (await accepted.json()) as { id: string };
  const sync = api.invoke('slow', { n: 2, ms: 8000 });
  const bothRunning = await eventually(async () => (await record(id)).status === 'running' && (await busy()) === 2, 60_000);
  if (!bothRunning) t.comment(JSON.stringify({ record: await record(id), workers: await workers() }));
  t.ok(bothRunning, 'both calls run on the node');

  first.kill('SIGKILL');
  await once(first, 'exit');
  startNode();

  const answer = await sync;
  t.equal(answer.status, 503, 'the synchronous call is answered 503');
  t.match(await answer.json(), { error: { code: 'Unavailable', message: /stopped and started again/ } }, 'saying why');
  t.ok(await eventually(async () => (await record(id)).status === 'succeeded', 90_000), 'the async call succeeds');
  t.match(await record(id), { status: 'succeeded', attempt: 2, workerId: nodeId }, 'on its second attempt, on the node started again');
  t.ok(await eventually(async () => (await busy()) === 0, 30_000), 'and nothing is left running');
});
