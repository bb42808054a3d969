/**
 * A function's console output is kept per invocation, retrievable by invocation id, followed
 * live, and the last lines of a crash are kept.
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform();
});
t.teardown(() => platform?.stop());
const api = client(() => platform);

interface Line {
  invocationId: string | null;
  stream: string;
  text: string;
}

async function logs(name: string, query = ''): Promise<Line[]> {
  const res = await fetch(`${platform.url}/v1/functions/${name}/logs${query}`, { headers: platform.auth });
  return ((await res.json()) as { lines: Line[] }).lines;
}

t.test('console lines are kept per invocation, in order, with their stream', async (t) => {
  await api.deploy(
    { name: 'chatty', concurrency: 2 },
    {
      'index.js': `console.log('loading');
exports.handler = async (e) => {
  console.log('start', e.n);
  await new Promise((r) => setTimeout(r, e.ms));
  console.error('warned', e.n);
  console.log({ done: e.n });
  return e.n;
};`,
    },
  );
  const [a, b] = await Promise.all([api.invoke('chatty', { n: 1, ms: 150 }), api.invoke('chatty', { n: 2, ms: 10 })]);
  const idA = a.headers.get('x-skiff-invocation-id') ?? '';
  const idB = b.headers.get('x-skiff-invocation-id') ?? '';
  t.ok(
    await eventually(async () => (await logs('chatty', `?invocation=${idA}`)).length === 3 && (await logs('chatty', `?invocation=${idB}`)).length === 3),
    'the lines arrive',
  );
  t.same(
    (await logs('chatty', `?invocation=${idA}`)).map((l) => [l.stream, l.text]),
    [
      ['stdout', 'start 1'],
      ['stderr', 'warned 1'],
      ['stdout', '{ done: 1 }'],
    ],
    'invocation 1 sees only its own lines, though 2 ran at the same time in the same instance',
  );
  t.same(
    (await logs('chatty', `?invocation=${idB}`)).map((l) => l.text),
    ['start 2', 'warned 2', '{ done: 2 }'],
  );
  const all = await logs('chatty');
  t.ok(
    all.some((l) => l.text === 'loading' && l.invocationId === null),
    'output made while loading has no invocation',
  );
  t.equal((await fetch(`${platform.url}/v1/functions/nope/logs`, { headers: platform.auth })).status, 404);
  t.equal((await fetch(`${platform.url}/v1/functions/chatty/logs?since=yesterday`, { headers: platform.auth })).status, 400);
});

t.test("a crash's last lines are kept with the invocation", async (t) => {
  await api.deploy({ name: 'crasher' }, { 'index.js': `exports.handler = async () => { process.stderr.write('about to die\\n'); process.exit(3); };` });
  const res = await api.invoke('crasher', {});
  t.equal(res.status, 502);
  t.match(await res.json(), { error: { code: 'FunctionError', message: /about to die/ } });
  const id = res.headers.get('x-skiff-invocation-id') ?? '';
  t.ok(await eventually(async () => (await logs('crasher', `?invocation=${id}`)).some((l) => l.text === 'about to die')), 'the last line is kept');
});

t.test('follow streams new lines as they come', async (t) => {
  await api.deploy({ name: 'stream' }, { 'index.js': 'exports.handler = async (e) => { console.log("line", e.n); return e.n; };' });
  t.equal((await api.invoke('stream', { n: 1 })).status, 200);
  await eventually(async () => (await logs('stream')).length === 1);
  const controller = new AbortController();
  const res = await fetch(`${platform.url}/v1/functions/stream/logs?follow=1`, { signal: controller.signal, headers: platform.auth });
  t.equal(res.status, 200);
  t.match(res.headers.get('content-type'), /ndjson/);
  const reader = res.body!.getReader();
  const seen: string[] = [];
  let buffered = '';
  const readUntil = async (text: string): Promise<boolean> => {
    const deadline = Date.now() + 10_000;
    while (!seen.includes(text) && Date.now() < deadline) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += new TextDecoder().decode(value);
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const part of parts) if (part) seen.push((JSON.parse(part) as Line).text);
    }
    return seen.includes(text);
  };
  t.ok(await readUntil('line 1'), 'stored lines come first');
  t.equal((await api.invoke('stream', { n: 2 })).status, 200);
  t.ok(await readUntil('line 2'), 'a new line arrives on the open stream');
  controller.abort();
});
