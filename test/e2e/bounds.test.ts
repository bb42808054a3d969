/**
 * Every output of a function is bounded, through the real gateway, scheduler, worker and runc:
 * results over their limit get a clear 502 FunctionResponseTooLarge at once and hold up no other
 * call; a large result within the limit arrives whole (through a Redis key, not one big pub/sub
 * message); a function writing an endless line is stopped, and the worker's memory stays flat;
 * an asynchronous call's result over the record limit fails the call without retries.
 *
 * No assertion is about time: the figures are printed as comments for the notes.
 */
import t from 'tap';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { cutMarker } from '../../runtime/protocol/messages.js';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform();
});
t.teardown(() => platform?.stop());

const api = client(() => platform);
const MiB = 1024 * 1024;

interface ErrorAnswer {
  error: { code: string; message: string };
}

/** POST /v1/functions/:name/invoke with the admin key (function URLs may live on another origin). */
function invoke(name: string, event: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return api.invoke(name, event, { ...platform.auth, ...headers });
}

async function deploy(t: Tap, body: Record<string, unknown>, code: string): Promise<void> {
  const res = await api.deploy(body, { 'index.js': code });
  t.equal(res.status, 201, `deploy ${String(body.name)}`);
}

/** Samples this process's RSS (the worker runs in it) while `work` runs; the peak growth. */
async function rssGrowthDuring<T>(work: () => Promise<T>): Promise<{ value: T; growthBytes: number }> {
  const before = process.memoryUsage().rss;
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20);
  try {
    const value = await work();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, growthBytes: peak - before };
  } finally {
    clearInterval(sampler);
  }
}

type Tap = Parameters<Parameters<typeof t.test>[0]>[0];

const QUICK = 'exports.handler = async (e) => ({ n: e.n });';
const SIZED = "exports.handler = async (e) => 'x'.repeat(Math.round(e.mib * 1024 * 1024));";

t.test("a 40 MiB result answers 502 FunctionResponseTooLarge, and another tenant's 20 calls made meanwhile all answer 200", async (t) => {
  for (const name of ['big-results', 'bystander']) {
    const made = await fetch(`${platform.url}/v1/tenants`, {
      method: 'POST',
      headers: { ...platform.auth, 'content-type': 'application/json' },
      body: JSON.stringify({ name }),
    });
    t.equal(made.status, 201, `tenant ${name}`);
  }
  await deploy(t, { name: 'big', memoryMb: 512, tenant: 'big-results' }, SIZED);
  await deploy(t, { name: 'quick', concurrency: 32, tenant: 'bystander' }, QUICK);
  // Warm both, so what is measured is the result's path, not cold starts.
  t.equal((await invoke('big', { mib: 0 })).status, 200);
  t.equal((await invoke('quick', { n: -1 })).status, 200);

  const started = performance.now();
  let bigMs = 0;
  const big = invoke('big', { mib: 40 }).then(async (res) => {
    bigMs = performance.now() - started;
    return { status: res.status, body: (await res.json()) as ErrorAnswer };
  });
  const quickMs: number[] = [];
  const quick = Array.from({ length: 20 }, async (_, n) => {
    const res = await invoke('quick', { n });
    quickMs.push(performance.now() - started);
    return { status: res.status, body: (await res.json()) as { n: number } };
  });
  const answers = await Promise.all(quick);
  const refused = await big;

  t.equal(refused.status, 502, 'the 40 MiB result is refused');
  t.equal(refused.body.error.code, 'FunctionResponseTooLarge');
  t.match(refused.body.error.message, /41943042 bytes.*6291456 bytes/, 'the message names the size and the limit');
  t.same(
    answers.map((a) => a.status),
    Array(20).fill(200),
    'every call of the other tenant made meanwhile answers 200',
  );
  t.same(
    answers.map((a) => a.body.n).sort((a, b) => a - b),
    Array.from({ length: 20 }, (_, n) => n),
    'each with its own answer',
  );
  t.equal((await invoke('big', { mib: 0.001 })).status, 200, 'the instance that refused the result still serves');
  t.comment(`figures: 40 MiB result refused after ${bigMs.toFixed(0)} ms; the 20 calls made meanwhile answered within ${Math.max(...quickMs).toFixed(0)} ms`);
});

t.test('a 7 MiB result is refused; a 5 MiB one arrives whole', async (t) => {
  await deploy(t, { name: 'sized', memoryMb: 256 }, SIZED);
  const over = await invoke('sized', { mib: 7 });
  t.equal(over.status, 502);
  t.equal(((await over.json()) as ErrorAnswer).error.code, 'FunctionResponseTooLarge');

  const t0 = performance.now();
  const within = await invoke('sized', { mib: 5 });
  const text = await within.text();
  const ms = performance.now() - t0;
  t.equal(within.status, 200);
  const value = JSON.parse(text) as string;
  t.equal(value.length, 5 * MiB, 'the whole 5 MiB value');
  t.ok(/^x+$/.test(value), 'and nothing else');
  const redis = new Redis(platform.config.redisUrl);
  t.teardown(() => redis.quit());
  t.same(await redis.keys(`${platform.config.keyPrefix}:reply:*`), [], 'the key it came through is gone');
  t.comment(`figures: a 5 MiB result (through a Redis key) answered in ${ms.toFixed(0)} ms`);
});

t.test('a function writing an endless line is stopped with a clear error; memory stays flat; others still run', async (t) => {
  await deploy(t, { name: 'quick2' }, QUICK);
  t.equal((await invoke('quick2', { n: 0 })).status, 200);

  await t.test('an endless line on stdout', async (t) => {
    await deploy(
      t,
      { name: 'endless-stdout' },
      `exports.handler = async () => {
        const chunk = 'z'.repeat(65536);
        for (;;) if (!process.stdout.write(chunk)) await new Promise((r) => process.stdout.once('drain', r));
      };`,
    );
    const t0 = performance.now();
    const { value: res, growthBytes } = await rssGrowthDuring(() => invoke('endless-stdout', {}));
    const body = (await res.json()) as ErrorAnswer;
    t.equal(res.status, 502);
    t.equal(body.error.code, 'FunctionResponseTooLarge');
    t.match(body.error.message, /line over \d+ bytes to its stdout/);
    t.ok(growthBytes < 200 * MiB, `the worker's memory grew ${(growthBytes / MiB).toFixed(1)} MiB`);
    t.comment(`figures: endless stdout line stopped after ${(performance.now() - t0).toFixed(0)} ms; RSS grew ${(growthBytes / MiB).toFixed(1)} MiB`);
  });

  await t.test('an endless frame on the runtime socket', async (t) => {
    // User code finds the bootstrap's socket among its handles and writes to it without a newline.
    await deploy(
      t,
      { name: 'endless-frame' },
      `const net = require('net');
      exports.handler = async () => {
        const socket = process._getActiveHandles().find((h) => h instanceof net.Socket && h !== process.stdout && h !== process.stderr && h !== process.stdin);
        const chunk = 'f'.repeat(65536);
        socket.write('{"type":"result","id":"x","ok":true,"value":"');
        for (;;) if (!socket.write(chunk)) await new Promise((r) => socket.once('drain', r));
      };`,
    );
    const t0 = performance.now();
    const { value: res, growthBytes } = await rssGrowthDuring(() => invoke('endless-frame', {}));
    const body = (await res.json()) as ErrorAnswer;
    t.equal(res.status, 502);
    t.equal(body.error.code, 'FunctionResponseTooLarge');
    t.match(body.error.message, /frame over \d+ bytes/);
    t.ok(growthBytes < 200 * MiB, `the worker's memory grew ${(growthBytes / MiB).toFixed(1)} MiB`);
    t.comment(`figures: endless frame stopped after ${(performance.now() - t0).toFixed(0)} ms; RSS grew ${(growthBytes / MiB).toFixed(1)} MiB`);
  });

  await t.test('a huge console.log is cut to one bounded line; the call answers', async (t) => {
    await deploy(t, { name: 'huge-log', memoryMb: 512 }, "exports.handler = async () => { console.log('h'.repeat(100 * 1024 * 1024)); return 'logged'; };");
    const res = await invoke('huge-log', {});
    t.equal(res.status, 200);
    t.equal(await res.json(), 'logged');
    const id = res.headers.get('x-skiff-invocation-id') ?? '';
    const limit = platform.config.worker.logLineLimitBytes;
    const lines = async (): Promise<Array<{ text: string }>> =>
      (
        (await (await fetch(`${platform.url}/v1/functions/huge-log/logs?invocation=${id}`, { headers: platform.auth })).json()) as {
          lines: Array<{ text: string }>;
        }
      ).lines;
    t.ok(await eventually(async () => (await lines()).length > 0), 'its line is stored');
    t.same(
      (await lines()).map((l) => l.text),
      [`${'h'.repeat(limit)}${cutMarker(limit)}`],
      'cut at the line limit, with the marker',
    );
  });

  await t.test('more than 1 GiB of output in long lines is read and cut, with memory flat', async (t) => {
    await deploy(
      t,
      { name: 'firehose', timeoutMs: 120_000 },
      `exports.handler = async () => {
        const line = 'w'.repeat(1024 * 1024 - 1) + '\\n';
        for (let i = 0; i < 1100; i++) if (!process.stdout.write(line)) await new Promise((r) => process.stdout.once('drain', r));
        return 'wrote 1100 MiB';
      };`,
    );
    const t0 = performance.now();
    const { value: res, growthBytes } = await rssGrowthDuring(() => invoke('firehose', {}));
    t.equal(res.status, 200);
    t.equal(await res.json(), 'wrote 1100 MiB');
    t.ok(growthBytes < 200 * MiB, `the worker's memory grew ${(growthBytes / MiB).toFixed(1)} MiB while 1100 MiB went through it`);
    t.comment(`figures: 1100 MiB of stdout in 1 MiB lines read in ${(performance.now() - t0).toFixed(0)} ms; RSS grew ${(growthBytes / MiB).toFixed(1)} MiB`);
  });

  const after = await invoke('quick2', { n: 7 });
  t.equal(after.status, 200, 'another function answers after all that');
  t.same(await after.json(), { n: 7 });
});

t.test('an asynchronous call whose result is over 256 KiB fails with FunctionResponseTooLarge, without retries', async (t) => {
  await deploy(t, { name: 'async-big' }, SIZED);
  const res = await invoke('async-big', { mib: 300 / 1024 }, { 'x-skiff-invocation-type': 'async' });
  t.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  const record = async (): Promise<{ status: string; error?: { code: string; message: string } }> =>
    (await (await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth })).json()) as { status: string };
  t.ok(await eventually(async () => (await record()).status === 'failed', 15_000), 'the call ends failed');
  t.match(await record(), { status: 'failed', error: { code: 'FunctionResponseTooLarge', message: /307202 bytes.*262144 bytes/ } });
  const letters = await fetch(`${platform.url}/v1/functions/async-big/dead-letters`, { headers: platform.auth });
  t.match(await letters.json(), { deadLetters: [{ id, attempts: 1, error: { code: 'FunctionResponseTooLarge' } }] }, 'one attempt: not retried');
});
