/**
 * The whole path, end to end: deploy over HTTP, call by URL; gateway → BullMQ → scheduler →
 * worker → a real runc container → back.
 */
import t from 'tap';
import { startPlatform, type Platform } from '../support/platform.js';
import { client } from '../support/api.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform();
});
t.teardown(async () => {
  await platform?.stop();
});

const { deploy, invoke } = client(() => platform);

const HELLO = `exports.handler = async (event, context) => {
  const name = (event.queryStringParameters && event.queryStringParameters.name) || event.name || 'world';
  return { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: 'hello ' + name + ' from ' + event.rawPath };
};`;

t.test('deploy, then call by URL and by invoke; the second call reuses the container', async (t) => {
  const res = await deploy({ name: 'hello' }, { 'index.js': HELLO });
  t.equal(res.status, 201, 'deploy answers 201');
  const info = (await res.json()) as { name: string; version: number };
  t.match(info, { name: 'hello', version: 1 });

  const first = await fetch(`${platform.fnUrl}/fn/hello/greet?name=x`);
  t.equal(first.status, 200);
  t.equal(await first.text(), 'hello x from /greet');
  t.equal(first.headers.get('x-skiff-cold-start'), 'true', 'first call is a cold start');
  t.equal(platform.worker.instances.list().length, 1, 'one instance exists');
  const sandboxId = platform.worker.instances.list()[0]?.sandbox.id;

  const second = await fetch(`${platform.fnUrl}/fn/hello/again?name=y`);
  t.equal(await second.text(), 'hello y from /again');
  t.equal(second.headers.get('x-skiff-cold-start'), 'false', 'second call is warm');
  t.equal(platform.worker.instances.list().length, 1, 'no second instance was made');
  t.equal(platform.worker.instances.list()[0]?.sandbox.id, sandboxId, 'the same container served it');

  const direct = await invoke('hello', { name: 'direct' });
  t.equal(direct.status, 200);
  t.same(await direct.json(), { statusCode: 200, headers: { 'content-type': 'text/plain' }, body: 'hello direct from undefined' });
});

t.test('a redeploy makes a new version that new calls use', async (t) => {
  const v1 = await deploy({ name: 'versions' }, { 'index.js': 'exports.handler = async () => "one";' });
  t.equal(v1.status, 201);
  t.equal(await (await invoke('versions', {})).json(), 'one');
  const v2 = await deploy({ name: 'versions' }, { 'index.js': 'exports.handler = async () => "two";' });
  t.equal(((await v2.json()) as { version: number }).version, 2);
  t.equal(await (await invoke('versions', {})).json(), 'two', 'the call after 201 runs version 2');
  const described = (await (await fetch(`${platform.url}/v1/functions/versions`, { headers: platform.auth })).json()) as { version: number };
  t.equal(described.version, 2);
});

t.test('ESM, callback-style and context', async (t) => {
  await deploy({ name: 'esm', handler: 'app.handler' }, { 'app.mjs': 'export const handler = async (event) => ({ esm: true, got: event });' });
  t.same(await (await invoke('esm', { a: 1 })).json(), { esm: true, got: { a: 1 } });

  await deploy({ name: 'callback' }, { 'index.js': 'exports.handler = (event, context, cb) => { setTimeout(() => cb(null, { cb: event.n * 2 }), 5); };' });
  t.same(await (await invoke('callback', { n: 21 })).json(), { cb: 42 });

  await deploy(
    { name: 'ctx', memoryMb: 192, env: { GREETING: 'hi' } },
    {
      'index.js': `exports.handler = async (event, context) => ({
        id: context.awsRequestId, name: context.functionName, version: context.functionVersion,
        memory: context.memoryLimitInMB, remaining: context.getRemainingTimeInMillis(), greeting: process.env.GREETING,
        uid: process.getuid(), cwd: process.cwd() });`,
    },
  );
  const res = await invoke('ctx', {});
  const body = (await res.json()) as Record<string, unknown>;
  t.equal(body.id, res.headers.get('x-skiff-invocation-id'), 'awsRequestId is the invocation id');
  t.match(body, { name: 'ctx', version: '1', memory: '192', greeting: 'hi', cwd: '/var/task' });
  t.ok((body.remaining as number) > 0 && (body.remaining as number) <= 30000, 'remaining time is within the timeout');
  t.not(body.uid, 0, 'the handler does not run as root');
});

t.test('errors: handler throws, timeout, unknown function', async (t) => {
  await deploy({ name: 'thrower' }, { 'index.js': 'exports.handler = async () => { throw new TypeError("boom"); };' });
  const thrown = await invoke('thrower', {});
  t.equal(thrown.status, 502);
  t.match(await thrown.json(), { error: { code: 'FunctionError', message: 'boom', errorType: 'TypeError' } });
  const after = await invoke('thrower', {});
  t.equal(after.headers.get('x-skiff-cold-start'), 'false', 'a handler error keeps the instance');

  await deploy({ name: 'sleeper', timeoutMs: 300 }, { 'index.js': 'exports.handler = () => new Promise(() => {});' });
  const slow = await invoke('sleeper', {});
  t.equal(slow.status, 504);
  t.match(await slow.json(), { error: { code: 'FunctionTimeout' } });
  t.notOk(
    platform.worker.instances.list().some((i) => i.fn.name === 'sleeper'),
    'the timed-out container is gone',
  );

  const missing = await invoke('nope', {});
  t.equal(missing.status, 404);
  t.match(await missing.json(), { error: { code: 'FunctionNotFound' } });
  t.equal((await fetch(`${platform.fnUrl}/fn/nope/x`)).status, 404);
});

t.test('bad deploys answer 400 naming the field and leave nothing behind', async (t) => {
  const traversal = await deploy({ name: 'evil' }, { 'index.js': HELLO, '__/evil.js': 'x' }, ['__/evil.js', '../evil.js']);
  t.equal(traversal.status, 400, 'path traversal: 400');
  t.match(await traversal.json(), { error: { code: 'InvalidRequest', field: 'code.zip', message: /\.\.\/evil\.js/ } });
  const cases: Array<[string, Record<string, unknown>, Record<string, string> | undefined, string]> = [
    ['bad name', { name: 'Bad_Name' }, { 'index.js': HELLO }, 'name'],
    ['unknown runtime', { name: 'rt', runtime: 'cobol' }, { 'index.js': HELLO }, 'runtime'],
    ['missing code', { name: 'nocode' }, undefined, 'code'],
    ['handler file missing', { name: 'nofile', handler: 'main.handler' }, { 'index.js': HELLO }, 'handler'],
    ['memory too small', { name: 'tiny', memoryMb: 1 }, { 'index.js': HELLO }, 'memoryMb'],
  ];
  for (const [what, body, files, field] of cases) {
    const res = await deploy(body, files);
    t.equal(res.status, 400, `${what}: 400`);
    t.match(await res.json(), { error: { code: 'InvalidRequest', field } }, `${what}: names ${field}`);
  }
  const notZip = await deploy({ name: 'notzip', code: { zip: Buffer.from('not a zip').toString('base64') } });
  t.equal(notZip.status, 400);
  const list = (await (await fetch(`${platform.url}/v1/functions`, { headers: platform.auth })).json()) as { functions: Array<{ name: string }> };
  const names = list.functions.map((f) => f.name);
  for (const name of ['rt', 'nocode', 'nofile', 'evil', 'tiny', 'notzip']) t.notOk(names.includes(name), `${name} was not created`);
  const badJson = await fetch(`${platform.url}/v1/functions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: '{"name":',
  });
  t.equal(badJson.status, 400);
});

t.test('async invocation: 202, then the record', async (t) => {
  await deploy({ name: 'later' }, { 'index.js': 'exports.handler = async (e) => ({ doubled: e.n * 2 });' });
  const res = await invoke('later', { n: 4 }, { 'x-skiff-invocation-type': 'async' });
  t.equal(res.status, 202);
  const { id } = (await res.json()) as { id: string };
  let record: { status: string; result?: unknown } = { status: 'queued' };
  for (let i = 0; i < 100 && (record.status === 'queued' || record.status === 'running'); i++) {
    await new Promise((r) => setTimeout(r, 100));
    record = (await (await fetch(`${platform.url}/v1/invocations/${id}`, { headers: platform.auth })).json()) as typeof record;
  }
  t.match(record, { status: 'succeeded', result: { doubled: 8 } });
});

t.test('delete removes the function and stops its instances', async (t) => {
  await deploy({ name: 'doomed' }, { 'index.js': 'exports.handler = async () => 1;' });
  t.equal((await invoke('doomed', {})).status, 200);
  t.ok(platform.worker.instances.list().some((i) => i.fn.name === 'doomed'));
  const res = await fetch(`${platform.url}/v1/functions/doomed`, { method: 'DELETE', headers: platform.auth });
  t.equal(res.status, 200);
  t.equal((await invoke('doomed', {})).status, 404);
  for (let i = 0; i < 50 && platform.worker.instances.list().some((x) => x.fn.name === 'doomed'); i++) await new Promise((r) => setTimeout(r, 50));
  t.notOk(
    platform.worker.instances.list().some((i) => i.fn.name === 'doomed'),
    'its instance is gone',
  );
  t.equal((await fetch(`${platform.url}/v1/functions/doomed`, { method: 'DELETE', headers: platform.auth })).status, 404);
});

t.test('a function past its memory limit is killed and answered 502 FunctionOutOfMemory', async (t) => {
  await deploy(
    { name: 'hog', memoryMb: 64 },
    { 'index.js': 'exports.handler = async () => { const keep = []; for (;;) keep.push(Buffer.alloc(8 << 20, 1)); };' },
  );
  const res = await invoke('hog', {});
  t.equal(res.status, 502);
  t.match(await res.json(), { error: { code: 'FunctionOutOfMemory' } });
  t.notOk(
    platform.worker.instances.list().some((i) => i.fn.name === 'hog'),
    'the killed container is gone',
  );
  await deploy({ name: 'after-hog' }, { 'index.js': 'exports.handler = async () => "still serving";' });
  t.equal(await (await invoke('after-hog', {})).json(), 'still serving', 'the worker keeps serving');

  // Crash backoff: after three kills in a row, no container is made for it for a while.
  for (let i = 2; i <= 3; i++) t.equal((await invoke('hog', {})).status, 502, `killed again (${i})`);
  const refused = await invoke('hog', {});
  t.equal(refused.status, 429, 'the fourth call in a row is refused at once');
  t.equal(refused.headers.get('retry-after'), '1');
  t.match(await refused.json(), { error: { code: 'TooManyRequests', message: /ran out of memory 3 times in a row.*crash backoff/ } });
  t.equal(await (await invoke('after-hog', {})).json(), 'still serving', 'other functions are not refused');
  await new Promise((resolve) => setTimeout(resolve, 600));
  t.equal((await invoke('hog', {})).status, 502, 'after the backoff it is tried again');
});

t.test("the caller's trace continues through the platform into the function", async (t) => {
  await deploy({ name: 'traced' }, { 'index.js': 'exports.handler = async (e, context) => ({ traceparent: context.traceparent });' });
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
  const res = await invoke('traced', {}, { traceparent: `00-${traceId}-00f067aa0ba902b7-01` });
  t.equal(res.headers.get('x-skiff-trace-id'), traceId, 'the answer names the trace');
  const body = (await res.json()) as { traceparent?: string };
  t.match(body.traceparent, new RegExp(`^00-${traceId}-[0-9a-f]{16}-01$`), 'the handler sees the same trace');
});
