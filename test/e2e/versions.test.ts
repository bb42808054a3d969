/**
 * Versions and rollback: every deploy keeps its version; GET /v1/functions/:name/versions lists
 * them newest first with the current one marked; POST /v1/functions/:name/rollback points the
 * function back at one of them without making a new version, calls after its answer run it, and
 * the worker retires instances of the others. The next deploy still gets a new number.
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

interface Version {
  version: number;
  runtime: string;
  handler: string;
  memoryMb: number;
  timeoutMs: number;
  concurrency: number;
  idleTimeoutMs: number;
  minWarm: number;
  maxInstances: number;
  auth: string;
  codeSha256: string;
  createdAt: string;
  current: boolean;
}

const code = (value: string): Record<string, string> => ({ 'index.js': `exports.handler = async () => ${JSON.stringify(value)};` });

async function versions(name: string, headers: Record<string, string> = platform.auth): Promise<Response> {
  return fetch(`${platform.url}/v1/functions/${name}/versions`, { headers });
}

async function rollback(name: string, body: unknown, headers: Record<string, string> = platform.auth): Promise<Response> {
  return fetch(`${platform.url}/v1/functions/${name}/rollback`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
}

async function call(name: string): Promise<unknown> {
  const res = await api.invoke(name, {});
  return res.json();
}

const shas: Record<number, string> = {};

t.test('three deploys: three versions, newest first, the last one current', async (t) => {
  const settings = [{ memoryMb: 128 }, { memoryMb: 192, auth: 'key' }, { memoryMb: 256, timeoutMs: 5000 }];
  for (const [i, value] of ['one', 'two', 'three'].entries()) {
    const res = await api.deploy({ name: 'verse', ...settings[i] }, code(value));
    t.equal(res.status, 201);
    const body = (await res.json()) as { version: number; codeSha256: string };
    t.equal(body.version, i + 1);
    shas[body.version] = body.codeSha256;
  }
  t.equal(await (await api.invoke('verse', {}, platform.auth)).json(), 'three', 'calls run version 3');
  t.ok(
    platform.worker.instances.list().some((i) => i.fn.name === 'verse' && i.fn.version === 3),
    'the worker has an instance of version 3',
  );

  const res = await versions('verse');
  t.equal(res.status, 200);
  const listed = ((await res.json()) as { versions: Version[] }).versions;
  t.same(
    listed.map((v) => v.version),
    [3, 2, 1],
    'newest first',
  );
  t.same(
    listed.map((v) => v.current),
    [true, false, false],
    'version 3 is current',
  );
  t.match(listed[0], {
    runtime: 'nodejs20',
    handler: 'index.handler',
    memoryMb: 256,
    timeoutMs: 5000,
    concurrency: 1,
    minWarm: 0,
    maxInstances: 100,
    auth: 'none',
    codeSha256: shas[3],
  });
  t.match(listed[1], { memoryMb: 192, timeoutMs: 30000, auth: 'key', codeSha256: shas[2] });
  t.match(listed[2], { memoryMb: 128, codeSha256: shas[1] });
  for (const v of listed) {
    t.ok(Number.isFinite(Date.parse(v.createdAt)), `version ${v.version} has its creation time`);
    t.type(v.idleTimeoutMs, 'number');
    t.notOk('env' in v, 'env values are not listed');
  }
  t.ok(Date.parse(listed[0]!.createdAt) >= Date.parse(listed[2]!.createdAt));
});

t.test('rollback to version 1: answered with version 1, calls run it, instances of version 3 are retired, no new version', async (t) => {
  const res = await rollback('verse', { version: 1 });
  t.equal(res.status, 200);
  t.match(await res.json(), { name: 'verse', version: 1, memoryMb: 128, auth: 'none', codeSha256: shas[1], url: `${platform.fnUrl}/fn/verse` });
  t.equal(await call('verse'), 'one', 'the first call after the answer runs version 1');
  t.equal(await (await fetch(`${platform.fnUrl}/fn/verse`)).json(), 'one', 'so does the function URL (without a key: version 1 is public)');
  t.match(await (await fetch(`${platform.url}/v1/functions/verse`, { headers: platform.auth })).json(), { version: 1, codeSha256: shas[1] });
  t.ok(
    await eventually(() => !platform.worker.instances.list().some((i) => i.fn.name === 'verse' && i.fn.version !== 1)),
    'the worker keeps no instance of another version',
  );
  t.ok(
    platform.worker.instances.list().some((i) => i.fn.name === 'verse' && i.fn.version === 1),
    'version 1 runs in an instance',
  );

  const listed = ((await (await versions('verse')).json()) as { versions: Version[] }).versions;
  t.same(
    listed.map((v) => [v.version, v.current]),
    [
      [3, false],
      [2, false],
      [1, true],
    ],
    'still three versions; 1 is current',
  );

  const again = await rollback('verse', { version: 1 });
  t.equal(again.status, 200, 'rolling back to the current version is harmless');
  t.equal(await call('verse'), 'one');

  const forward = await rollback('verse', { version: 2 });
  t.equal(forward.status, 200, 'any version can be made current, newer ones too');
  t.match(await forward.json(), { version: 2, auth: 'key' });
  t.equal((await api.invoke('verse', {})).status, 401, "version 2's settings apply: it needs a key");
  t.equal(await (await api.invoke('verse', {}, platform.auth)).json(), 'two');
  t.equal((await rollback('verse', { version: 1 })).status, 200);
  t.equal(await call('verse'), 'one');
});

t.test('the deploy after a rollback gets the next new number', async (t) => {
  const res = await api.deploy({ name: 'verse' }, code('four'));
  t.equal(res.status, 201);
  t.match(await res.json(), { version: 4 });
  t.equal(await call('verse'), 'four');
  const listed = ((await (await versions('verse')).json()) as { versions: Version[] }).versions;
  t.same(
    listed.map((v) => [v.version, v.current]),
    [
      [4, true],
      [3, false],
      [2, false],
      [1, false],
    ],
  );

  // Concurrent deploys still get distinct numbers.
  const parallel = await Promise.all([5, 6, 7].map(() => api.deploy({ name: 'verse' }, code('many'))));
  const numbers = await Promise.all(parallel.map(async (r) => ((await r.json()) as { version: number }).version));
  t.same(
    [...numbers].sort((a, b) => a - b),
    [5, 6, 7],
  );
});

t.test('errors: a missing version or function is 404; a bad body is 400; no key is 401', async (t) => {
  const missingVersion = await rollback('verse', { version: 99 });
  t.equal(missingVersion.status, 404);
  t.match(await missingVersion.json(), { error: { code: 'NotFound', field: 'version', message: /verse has no version 99/ } });

  const missingFunction = await rollback('nothing-here', { version: 1 });
  t.equal(missingFunction.status, 404);
  t.match(await missingFunction.json(), { error: { code: 'FunctionNotFound' } });
  const noVersions = await versions('nothing-here');
  t.equal(noVersions.status, 404);
  t.match(await noVersions.json(), { error: { code: 'FunctionNotFound' } });

  for (const body of [{}, { version: 0 }, { version: '1' }, { version: 1.5 }, { version: 1, extra: true }, { version: 2 ** 31 }]) {
    const bad = await rollback('verse', body);
    t.equal(bad.status, 400, `${JSON.stringify(body)}: 400`);
    t.match(await bad.json(), { error: { code: 'InvalidRequest' } });
  }

  const noKey = await rollback('verse', { version: 1 }, {});
  t.equal(noKey.status, 401);
  t.match(await noKey.json(), { error: { code: 'Unauthorized' } });
  const wrongKey = await rollback('verse', { version: 1 }, { authorization: 'Bearer sk_nope_nope' });
  t.equal(wrongKey.status, 401);
  t.equal((await versions('verse', {})).status, 401, 'listing versions needs a key too');
  t.equal(await call('verse'), 'many', 'refused rollbacks changed nothing');
});
