/**
 * The python3.11 runtime end to end: deploy a zip of Python modules over HTTP, call it through the
 * gateway, and have it run in a real runc container of the python3.11 base image.
 */
import t from 'tap';
import { existsSync } from 'node:fs';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform({ SKIFF_POOL_RUNTIMES: 'nodejs20,python3.11' });
});
t.teardown(async () => {
  await platform?.stop();
});

const api = client(() => platform);
const deploy = (body: Record<string, unknown>, files?: Record<string, string>): Promise<Response> =>
  api.deploy({ runtime: 'python3.11', handler: 'app.handler', ...body }, files);

interface Line {
  invocationId: string | null;
  stream: string;
  text: string;
}

async function logs(name: string, query = ''): Promise<Line[]> {
  const res = await fetch(`${platform.url}/v1/functions/${name}/logs${query}`, { headers: platform.auth });
  return ((await res.json()) as { lines: Line[] }).lines;
}

const HELLO = `
import json

def handler(event, context):
    query = event.get('queryStringParameters') or {}
    return {
        'statusCode': 200,
        'headers': {'content-type': 'application/json', 'x-runtime': 'python'},
        'body': json.dumps({'path': event.get('rawPath'), 'x': query.get('x'), 'method': event['requestContext']['http']['method']}),
    }
`;

if (!existsSync('/usr/bin/python3.11')) {
  t.fail("/usr/bin/python3.11 is missing: install Debian's python3.11 (infra/system/prepare.sh does)");
} else {
  t.test('a Python function answers through its URL with a function-URL response; the second call is warm', async (t) => {
    const res = await deploy({ name: 'py-hello' }, { 'app.py': HELLO });
    t.equal(res.status, 201, 'deploy answers 201');
    t.match(await res.json(), { name: 'py-hello', runtime: 'python3.11', version: 1 });

    // The pool pre-creates python3.11 sandboxes too: the first call specializes one.
    t.ok(await eventually(() => (platform.worker.pool.sizes()['python3.11'] ?? 0) >= 1), 'a python3.11 sandbox is pooled');
    t.same(Object.keys(platform.worker.pool.sizes()).sort(), ['nodejs20', 'python3.11'], 'only the runtimes SKIFF_POOL_RUNTIMES names are pooled');
    const coldStarted = performance.now();
    const first = await fetch(`${platform.fnUrl}/fn/py-hello/some/path?x=1`);
    const coldMs = performance.now() - coldStarted;
    t.equal(first.status, 200);
    t.equal(first.headers.get('content-type'), 'application/json');
    t.equal(first.headers.get('x-runtime'), 'python');
    t.same(await first.json(), { path: '/some/path', x: '1', method: 'GET' });
    t.equal(first.headers.get('x-skiff-cold-start'), 'true', 'the first call is a cold start');

    const warmStarted = performance.now();
    const second = await fetch(`${platform.fnUrl}/fn/py-hello/again?x=2`);
    const warmMs = performance.now() - warmStarted;
    t.same(await second.json(), { path: '/again', x: '2', method: 'GET' });
    t.equal(second.headers.get('x-skiff-cold-start'), 'false', 'the second call is warm');
    t.equal(platform.worker.instances.list().filter((i) => i.fn.name === 'py-hello').length, 1, 'one instance served both');
    t.comment(`python3.11 call through the gateway: cold (pooled sandbox) ${coldMs.toFixed(1)} ms, warm ${warmMs.toFixed(1)} ms`);
  });

  t.test('a Python and a Node.js function answer side by side', async (t) => {
    t.equal((await api.deploy({ name: 'js-side' }, { 'index.js': 'exports.handler = async () => ({ runtime: "node" });' })).status, 201);
    t.equal((await deploy({ name: 'py-side' }, { 'app.py': 'def handler(event, context):\n    return {"runtime": "python"}\n' })).status, 201);
    const [js, py] = await Promise.all([fetch(`${platform.fnUrl}/fn/js-side/`), fetch(`${platform.fnUrl}/fn/py-side/`)]);
    t.same(await js.json(), { runtime: 'node' });
    t.same(await py.json(), { runtime: 'python' });
  });

  t.test('context, environment and the sandbox: not root, read-only image, writable /tmp', async (t) => {
    await deploy(
      { name: 'py-ctx', memoryMb: 192, env: { GREETING: 'hi' } },
      {
        'app.py': `import os, sys

def handler(event, context):
    return {
        'id': context.aws_request_id, 'name': context.function_name, 'version': context.function_version,
        'memory': context.memory_limit_in_mb, 'arn': context.invoked_function_arn,
        'remaining': context.get_remaining_time_in_millis(), 'greeting': os.environ.get('GREETING'),
        'env_name': os.environ.get('AWS_LAMBDA_FUNCTION_NAME'), 'uid': os.getuid(), 'cwd': os.getcwd(),
        'python': list(sys.version_info[:2]), 'executable': sys.executable,
        'root_write': try_write('/usr/lib/python3.11/x.py'), 'tmp_write': try_write('/tmp/x'),
    }

def try_write(path):
    try:
        with open(path, 'w') as f:
            f.write('x')
        return 'ok'
    except OSError as error:
        return error.__class__.__name__ + ' ' + str(error.errno)
`,
      },
    );
    const res = await api.invoke('py-ctx', {});
    t.equal(res.status, 200);
    const body = (await res.json()) as Record<string, unknown>;
    t.equal(body.id, res.headers.get('x-skiff-invocation-id'), 'aws_request_id is the invocation id');
    t.match(body, {
      name: 'py-ctx',
      version: '1',
      memory: '192',
      arn: 'arn:aws:lambda:local:000000000000:function:py-ctx',
      greeting: 'hi',
      env_name: 'py-ctx',
      cwd: '/var/task',
      python: [3, 11],
      executable: '/usr/bin/python3.11',
      root_write: 'OSError 30',
      tmp_write: 'ok',
    });
    t.ok((body.remaining as number) > 0 && (body.remaining as number) <= 30000, 'remaining time is within the timeout');
    t.not(body.uid, 0, 'the handler does not run as root');
  });

  t.test('an exception is a 502 FunctionError with its type; the instance stays warm', async (t) => {
    await deploy({ name: 'py-thrower' }, { 'app.py': 'def handler(event, context):\n    raise ValueError("boom " + str(event.get("n")))\n' });
    const thrown = await api.invoke('py-thrower', { n: 7 });
    t.equal(thrown.status, 502);
    t.match(await thrown.json(), { error: { code: 'FunctionError', message: 'boom 7', errorType: 'ValueError' } });
    const again = await api.invoke('py-thrower', { n: 8 });
    t.equal(again.status, 502);
    t.equal(again.headers.get('x-skiff-cold-start'), 'false', 'a handler error keeps the instance');

    await deploy({ name: 'py-badimport' }, { 'app.py': 'import not_vendored_anywhere\n\ndef handler(event, context):\n    return 1\n' });
    const failedInit = await api.invoke('py-badimport', {});
    t.equal(failedInit.status, 502);
    t.match(await failedInit.json(), { error: { code: 'FunctionError', errorType: 'Runtime.ImportModuleError', message: /not_vendored_anywhere/ } });
  });

  t.test('print() lines are kept with the invocation and retrievable by its id', async (t) => {
    await deploy(
      { name: 'py-chatty', concurrency: 2 },
      {
        // A call with "meet" waits (in its thread) until the other call has started too, so it
        // cannot end before the other began: both ending "met" proves they overlapped, whatever
        // the machine's speed. The 20 s bound only keeps a broken run from hanging.
        'app.py': `import sys, threading

print('loading')
started = set()
changed = threading.Condition()

def handler(event, context):
    print('start', event['n'])
    met = None
    if 'meet' in event:
        with changed:
            started.add(event['n'])
            changed.notify_all()
            met = changed.wait_for(lambda: event['meet'] in started, timeout=20)
    print('warned', event['n'], file=sys.stderr)
    print({'done': event['n']})
    return {'n': event['n'], 'met': met}
`,
      },
    );
    t.same(await (await api.invoke('py-chatty', { n: 0 })).json(), { n: 0, met: null }, 'a first call makes the instance');
    const [a, b] = await Promise.all([api.invoke('py-chatty', { n: 1, meet: 2 }), api.invoke('py-chatty', { n: 2, meet: 1 })]);
    t.same(
      [await a.json(), await b.json()],
      [
        { n: 1, met: true },
        { n: 2, met: true },
      ],
      'the two calls overlapped: each saw the other start before it ended',
    );
    t.equal(b.headers.get('x-skiff-cold-start'), 'false');
    const idA = a.headers.get('x-skiff-invocation-id') ?? '';
    const idB = b.headers.get('x-skiff-invocation-id') ?? '';
    t.ok(await eventually(async () => (await logs('py-chatty', `?invocation=${idA}`)).length === 3), 'the lines arrive');
    t.same(
      (await logs('py-chatty', `?invocation=${idA}`)).map((l) => [l.stream, l.text]),
      [
        ['stdout', 'start 1'],
        ['stderr', 'warned 1'],
        ['stdout', "{'done': 1}"],
      ],
      'invocation 1 sees only its own lines',
    );
    t.ok(await eventually(async () => (await logs('py-chatty', `?invocation=${idB}`)).length === 3));
    t.same(
      (await logs('py-chatty', `?invocation=${idB}`)).map((l) => l.text),
      ['start 2', 'warned 2', "{'done': 2}"],
    );
    const instances = platform.worker.instances.list().filter((i) => i.fn.name === 'py-chatty');
    t.equal(instances.length, 1, 'both calls ran at the same time in one instance (concurrency 2), in two threads');
    t.ok(
      await eventually(async () => (await logs('py-chatty')).some((l) => l.text === 'loading' && l.invocationId === null)),
      'output made while importing has no invocation',
    );
  });

  t.test('packages vendored in the zip import, and handlers may live in packages', async (t) => {
    const res = await deploy(
      { name: 'py-vendored', handler: 'src/service/api.handler' },
      {
        'mylib/__init__.py': 'from .greet import greet\n',
        'mylib/greet.py': 'def greet(name):\n    return "hello " + name + " from mylib"\n',
        'src/__init__.py': '',
        'src/service/__init__.py': '',
        'src/service/api.py': 'import mylib\n\ndef handler(event, context):\n    return mylib.greet(event["name"])\n',
      },
    );
    t.equal(res.status, 201);
    const answer = await api.invoke('py-vendored', { name: 'skiff' });
    t.equal(answer.status, 200);
    t.equal(await answer.json(), 'hello skiff from mylib');

    t.equal(
      (await deploy({ name: 'py-pkg', handler: 'pkg.handler' }, { 'pkg/__init__.py': 'def handler(event, context):\n    return "package"\n' })).status,
      201,
      'a package module (pkg/__init__.py)',
    );
    t.equal(await (await api.invoke('py-pkg', {})).json(), 'package');
  });

  t.test('bad Python deploys answer 400 naming the handler', async (t) => {
    const missing = await deploy({ name: 'py-nofile', handler: 'main.handler' }, { 'app.py': HELLO });
    t.equal(missing.status, 400, 'the handler file is missing');
    t.match(await missing.json(), { error: { code: 'InvalidRequest', field: 'handler', message: /main\.py/ } });

    const jsOnly = await deploy({ name: 'py-jsfile' }, { 'app.js': 'exports.handler = async () => 1;' });
    t.equal(jsOnly.status, 400, 'a .js file does not make a Python handler');

    const dashed = await deploy({ name: 'py-dashed', handler: 'my-app.handler' }, { 'my-app.py': HELLO });
    t.equal(dashed.status, 400, 'not a Python module name');
    t.match(await dashed.json(), { error: { code: 'InvalidRequest', field: 'handler', message: /not a Python module name/ } });

    const nested = await deploy({ name: 'py-nested', handler: 'pkg/mod.handler' }, { 'pkg/other.py': HELLO });
    t.equal(nested.status, 400);
    t.match(await nested.json(), { error: { field: 'handler', message: /pkg\/mod\.py/ } });

    t.equal((await fetch(`${platform.url}/v1/functions/py-nofile`, { headers: platform.auth })).status, 404, 'nothing was deployed');
  });
}
