/**
 * The `provided` runtime end to end: a zip whose `bootstrap` is a shell script speaking the Lambda
 * Runtime API with busybox's wget, deployed over HTTP and called through the gateway in a real runc
 * container of the provided base image (busybox and Skiff's relay).
 */
import t from 'tap';
import { client, eventually } from '../support/api.js';
import { startPlatform, type Platform } from '../support/platform.js';
import { zipFiles } from '../support/zip.js';
import type { LayerFile } from '../../infra/images/oci/layer.js';
import { pushRuntimeImage } from '../support/images.js';
import { NODE_RUNTIME_API_CLIENT } from '../support/runtime-api-client.js';

let platform: Platform;
t.before(async () => {
  platform = await startPlatform({ SKIFF_POOL_RUNTIMES: 'nodejs20,provided' });
});
t.teardown(async () => {
  await platform?.stop();
});

const api = client(() => platform);

async function deploy(name: string, bootstrap: string, body: Record<string, unknown> = {}, executable = true): Promise<Response> {
  const zip = await zipFiles({ bootstrap }, executable ? ['bootstrap'] : []);
  return fetch(`${platform.url}/v1/functions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({ name, runtime: 'provided', handler: 'function.handler', code: { zip: zip.toString('base64') }, ...body }),
  });
}

/** A custom runtime as Lambda's tutorial writes one: a loop over invocation/next, with sh and wget. */
const RUNTIME = `#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
header() { sed -n "s/^ *$1: *//p" /tmp/headers | tr -d '\\r'; }
echo "runtime starting"
while true; do
  EVENT=$(wget -q -S -O - "$API/invocation/next" 2>/tmp/headers)
  ID=$(header Lambda-Runtime-Aws-Request-Id)
  echo "got event $EVENT"
  echo "to stderr" >&2
  case "$EVENT" in
    *'"op":"fail"'*)
      wget -q -O /dev/null --header 'Lambda-Runtime-Function-Error-Type: Custom.Unlucky' \\
        --post-data '{"errorMessage":"no luck today","errorType":"Custom.Unlucky","stackTrace":["at bootstrap line 12"]}' \\
        "$API/invocation/$ID/error" ;;
    *'"op":"hang"'*) sleep 60 ;;
    *'"op":"env"'*)
      if wget -q -O /dev/null --post-data '1' "$API/invocation/not-$ID/response" 2>/dev/null; then WRONG=accepted; else WRONG=refused; fi
      BODY=$(printf '{"handler":"%s","taskRoot":"%s","name":"%s","version":"%s","memory":"%s","region":"%s","api":"%s","greeting":"%s","cwd":"%s","uid":"%s","deadline":"%s","arn":"%s","trace":"%s","id":"%s","wrongId":"%s"}' \\
        "$_HANDLER" "$LAMBDA_TASK_ROOT" "$AWS_LAMBDA_FUNCTION_NAME" "$AWS_LAMBDA_FUNCTION_VERSION" "$AWS_LAMBDA_FUNCTION_MEMORY_SIZE" \\
        "$AWS_REGION" "$AWS_LAMBDA_RUNTIME_API" "$GREETING" "$(pwd)" "$(id -u)" \\
        "$(header Lambda-Runtime-Deadline-Ms)" "$(header Lambda-Runtime-Invoked-Function-Arn)" "$(header Lambda-Runtime-Trace-Id)" "$ID" "$WRONG")
      wget -q -O /dev/null --post-data "$BODY" "$API/invocation/$ID/response" ;;
    *)
      printf '{\\n  "echo": %s\\n}' "$EVENT" > /tmp/response
      wget -q -O /dev/null --post-file /tmp/response "$API/invocation/$ID/response" ;;
  esac
done
`;

interface Line {
  invocationId: string | null;
  stream: string;
  text: string;
}

async function logs(name: string, query = ''): Promise<Line[]> {
  const res = await fetch(`${platform.url}/v1/functions/${name}/logs${query}`, { headers: platform.auth });
  return ((await res.json()) as { lines: Line[] }).lines;
}

t.test('a shell bootstrap answers events, sees Lambda environment, reports errors, and is timed out', async (t) => {
  t.ok(await eventually(() => (platform.worker.pool.sizes()['provided'] ?? 0) >= 1), 'a provided sandbox is pooled');
  const res = await deploy('sh-runtime', RUNTIME, { memoryMb: 160, timeoutMs: 2000, env: { GREETING: 'hello there' } });
  t.equal(res.status, 201, 'deploy answers 201');
  t.match(await res.json(), { name: 'sh-runtime', runtime: 'provided', version: 1 });

  const first = await api.invoke('sh-runtime', { a: [1, 'two'], nested: { ok: true } });
  t.equal(first.status, 200);
  t.same(await first.json(), { echo: { a: [1, 'two'], nested: { ok: true } } }, 'the posted response (with newlines in it) is the result');
  t.equal(first.headers.get('x-skiff-cold-start'), 'true', 'the first call specialized a sandbox');
  const id = first.headers.get('x-skiff-invocation-id') ?? '';

  const started = Date.now();
  const envRes = await api.invoke('sh-runtime', { op: 'env' });
  t.equal(envRes.headers.get('x-skiff-cold-start'), 'false', 'the second call is warm');
  const env = (await envRes.json()) as Record<string, string>;
  t.match(env, {
    handler: 'function.handler',
    taskRoot: '/var/task',
    name: 'sh-runtime',
    version: '1',
    memory: '160',
    region: 'local',
    api: '127.0.0.1:9001',
    greeting: 'hello there',
    cwd: '/var/task',
    arn: 'arn:aws:lambda:local:000000000000:function:sh-runtime',
    wrongId: 'refused',
  });
  t.equal(env.id, envRes.headers.get('x-skiff-invocation-id'), 'Lambda-Runtime-Aws-Request-Id is the invocation id');
  t.not(env.uid, '0', 'the runtime does not run as root');
  const deadline = Number(env.deadline);
  t.ok(deadline > started && deadline <= Date.now() + 2000, 'Lambda-Runtime-Deadline-Ms is within the timeout');
  t.match(env.trace, /^Root=1-[0-9a-f]{8}-[0-9a-f]{24}(;Parent=[0-9a-f]{16})?;Sampled=[01]$/, 'Lambda-Runtime-Trace-Id is an X-Ray header');

  const failed = await api.invoke('sh-runtime', { op: 'fail' });
  t.equal(failed.status, 502);
  t.match(await failed.json(), { error: { code: 'FunctionError', message: 'no luck today', errorType: 'Custom.Unlucky' } });
  const after = await api.invoke('sh-runtime', { again: 1 });
  t.same(await after.json(), { echo: { again: 1 } });
  t.equal(after.headers.get('x-skiff-cold-start'), 'false', 'an error posted to /error keeps the instance');

  t.ok(
    await eventually(async () => (await logs('sh-runtime', `?invocation=${id}`)).length === 2),
    "the bootstrap's output while it handled the event is that invocation's log",
  );
  t.same(
    (await logs('sh-runtime', `?invocation=${id}`)).map((l) => [l.stream, l.text]),
    [
      ['stdout', 'got event {"a":[1,"two"],"nested":{"ok":true}}'],
      ['stderr', 'to stderr'],
    ],
  );

  const hung = await api.invoke('sh-runtime', { op: 'hang' });
  t.equal(hung.status, 504);
  t.match(await hung.json(), { error: { code: 'FunctionTimeout' } });
  t.notOk(
    platform.worker.instances.list().some((i) => i.fn.name === 'sh-runtime'),
    'the timed-out container is gone',
  );
});

t.test('a runtime that fails its init: /init/error, or exiting before it asks for an event', async (t) => {
  const initError = `#!/bin/sh
echo "checking configuration"
wget -q -O /dev/null --header 'Lambda-Runtime-Function-Error-Type: Runtime.ConfigError' \\
  --post-data '{"errorMessage":"DATABASE_URL is not set","errorType":"Runtime.ConfigError"}' \\
  "http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime/init/error"
exit 1
`;
  t.equal((await deploy('sh-init-error', initError)).status, 201);
  const res = await api.invoke('sh-init-error', {});
  t.equal(res.status, 502);
  t.match(await res.json(), { error: { code: 'FunctionError', message: /DATABASE_URL is not set/, errorType: 'Runtime.ConfigError' } });

  t.equal((await deploy('sh-exits', '#!/bin/sh\necho "giving up" >&2\nexit 3\n')).status, 201);
  const exited = await api.invoke('sh-exits', {});
  t.equal(exited.status, 502);
  t.match(await exited.json(), { error: { code: 'FunctionError', message: /exit status 3/, errorType: 'Runtime.ExitError' } });
});

t.test('a provided zip must hold an executable bootstrap', async (t) => {
  const missing = await fetch(`${platform.url}/v1/functions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...platform.auth },
    body: JSON.stringify({
      name: 'no-bootstrap',
      runtime: 'provided',
      handler: 'function.handler',
      code: { zip: (await zipFiles({ 'main.sh': 'echo' })).toString('base64') },
    }),
  });
  t.equal(missing.status, 400);
  t.match(await missing.json(), { error: { code: 'InvalidRequest', message: /no file bootstrap/ } });
  const notExecutable = await deploy('plain-bootstrap', '#!/bin/sh\n', {}, false);
  t.equal(notExecutable.status, 400);
  t.match(await notExecutable.json(), { error: { code: 'InvalidRequest', message: /not executable/ } });
});

const pushImage = (repository: string, runtime: string, files: LayerFile[], entrypoint: string[]): Promise<unknown> =>
  pushRuntimeImage(platform.config.registry, { repository, tag: '1', runtime, files, entrypoint });

t.test('an image whose entrypoint is a Runtime API client deploys with runtime provided and runs unchanged', async (t) => {
  await pushImage('team/node-client', 'nodejs20', [{ path: 'client.mjs', data: NODE_RUNTIME_API_CLIENT }], ['/usr/bin/node', '/var/task/client.mjs']);
  const res = await api.deploy({ name: 'node-client', runtime: 'provided', handler: 'client.handler', image: 'team/node-client:1' });
  t.equal(res.status, 201, 'an image built on the nodejs20 image deploys as provided');
  const ok = await api.invoke('node-client', { n: 7 });
  t.equal(ok.status, 200);
  t.match(await ok.json(), { client: 'node', node: process.version, handler: 'client.handler', event: { n: 7 } });
  const failed = await api.invoke('node-client', { fail: true });
  t.equal(failed.status, 502);
  t.match(await failed.json(), { error: { code: 'FunctionError', message: 'asked to fail', errorType: 'Client.Failure' } });

  // Built on the provided image itself, with its own entrypoint: not a pooled sandbox (those run /var/task/bootstrap).
  const script =
    '#!/bin/sh\nAPI="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"\nwhile true; do\n  EVENT=$(wget -q -S -O - "$API/invocation/next" 2>/tmp/h)\n  ID=$(sed -n "s/^ *Lambda-Runtime-Aws-Request-Id: *//p" /tmp/h | tr -d "\\r")\n  wget -q -O /dev/null --post-data "{\\"serve\\":$EVENT}" "$API/invocation/$ID/response"\ndone\n';
  await pushImage('team/sh-client', 'provided', [{ path: 'serve', data: script, mode: 0o755 }], ['/var/task/serve']);
  t.equal((await api.deploy({ name: 'sh-client', runtime: 'provided', handler: 'serve.handler', image: 'team/sh-client:1' })).status, 201);
  t.same(await (await api.invoke('sh-client', { x: 1 })).json(), { serve: { x: 1 } }, "the image's entrypoint serves, not a bootstrap");

  const plain = await api.deploy({ name: 'node-plain', runtime: 'provided', handler: 'index.handler', image: 'team/node-plain:1' });
  t.equal(plain.status, 400, 'an image that is not in the registry is refused');
  await pushImage(
    'team/node-plain',
    'nodejs20',
    [{ path: 'index.js', data: 'exports.handler = async () => 1;' }],
    ['/usr/bin/node', '/opt/skiff/runtime/nodejs/bootstrap.js'],
  );
  const bootstrap = await api.deploy({ name: 'node-plain', runtime: 'provided', handler: 'index.handler', image: 'team/node-plain:1' });
  t.equal(bootstrap.status, 400);
  t.match(await bootstrap.json(), { error: { field: 'image', message: /starts the nodejs20 bootstrap/ } });
});
