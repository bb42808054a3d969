/**
 * The provided runtime's relay (runtime/provided/relay.c), tested on the host as the worker and a
 * custom runtime see it: compiled with gcc as the image build does, given a unix socket to speak
 * the worker protocol on, and a task root whose `bootstrap` only tells this test the Runtime API's
 * address — this file then plays the runtime, over HTTP, request by request.
 */
import t from 'tap';
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { eventually } from '../support/api.js';
import { readFrames } from '../../runtime/protocol/framing.js';
import type { RuntimeMessage } from '../../runtime/protocol/messages.js';

const SOURCE = fileURLToPath(new URL('../../../runtime/provided/relay.c', import.meta.url));
const FRAME_WAIT_MS = 5_000;

let dir = '';
let relay = '';
t.before(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'skiff-relay-'));
  relay = path.join(dir, 'relay');
  await promisify(execFile)('gcc', ['-std=gnu11', '-Os', '-static', '-Wall', '-Wextra', '-Werror', '-o', relay, SOURCE]);
});
t.teardown(() => rm(dir, { recursive: true, force: true }));

interface Relay {
  process: ChildProcess;
  send(message: Record<string, unknown>): void;
  next(): Promise<RuntimeMessage>;
  /** Closes the worker's end, as a worker destroying the sandbox does. */
  close(): void;
}

/** Starts the relay against a socket of this test; `bootstrap` (if given) is the task root's. */
async function startRelay(t: { teardown(fn: () => unknown): void }, name: string, bootstrap?: string): Promise<Relay> {
  const root = path.join(dir, name);
  await mkdir(root);
  if (bootstrap !== undefined) {
    await writeFile(path.join(root, 'bootstrap'), bootstrap);
    await chmod(path.join(root, 'bootstrap'), 0o755);
  }
  const socketPath = path.join(root, 'worker.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const child = spawn(relay, [], {
    env: { PATH: process.env.PATH, SKIFF_RUNTIME_SOCKET: socketPath, SKIFF_TASK_ROOT: root, SKIFF_RUNTIME_API_PORT: '0' },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  t.teardown(() => {
    child.kill('SIGKILL');
    server.close();
  });
  const [connection] = (await once(server, 'connection')) as [Socket];
  const frames: RuntimeMessage[] = [];
  readFrames(
    connection,
    (frame) => frames.push(frame as RuntimeMessage),
    (error) => frames.push({ type: 'log', id: 'frame-error', stream: 'stderr', text: error.message, at: 0 }),
  );
  return {
    process: child,
    send: (message) => connection.write(JSON.stringify(message) + '\n'),
    async next() {
      if (!(await eventually(() => frames.length > 0, FRAME_WAIT_MS, 5))) throw new Error(`no frame from the relay within ${FRAME_WAIT_MS} ms`);
      return frames.shift() as RuntimeMessage;
    },
    close: () => connection.end(),
  };
}

/** A bootstrap that writes the Runtime API's address and its environment where the test reads them, then waits. */
const REPORTER =
  '#!/bin/sh\nenv > "$REPORT_FILE.env"\necho "$AWS_LAMBDA_RUNTIME_API" > "$REPORT_FILE.tmp" && mv "$REPORT_FILE.tmp" "$REPORT_FILE"\nexec sleep 600\n';

const spec = (report: string, env: Record<string, string> = {}) => ({
  name: 'relayed',
  version: 4,
  handler: 'function.handler',
  memoryMb: 256,
  timeoutMs: 3000,
  env: { REPORT_FILE: report, GREETING: 'multi\nline', ...env },
});

async function addressOf(report: string): Promise<string> {
  if (
    !(await eventually(
      () =>
        readFile(report, 'utf8').then(
          () => true,
          () => false,
        ),
      FRAME_WAIT_MS,
    ))
  )
    throw new Error('the bootstrap never reported');
  return `http://${(await readFile(report, 'utf8')).trim()}/2018-06-01/runtime`;
}

t.test('the Runtime API, request by request: next, response, error, and what is refused', async (t) => {
  const r = await startRelay(t, 'main', REPORTER);
  t.match(await r.next(), { type: 'hello', protocol: 1, runtime: 'provided', pid: r.process.pid });
  const report = path.join(dir, 'main', 'report');
  r.send({ type: 'init', function: spec(report, { AWS_REGION: 'mine', _HANDLER: 'mine' }), limits: { maxResultBytes: 1024, maxLogLineBytes: 100 } });
  const api = await addressOf(report);

  const env = Object.fromEntries(
    (await readFile(`${report}.env`, 'utf8'))
      .split('\n')
      .filter((line) => /^[A-Z_]+=/.test(line))
      .map((line) => [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)]),
  );
  t.match(env, {
    _HANDLER: 'function.handler',
    LAMBDA_TASK_ROOT: path.join(dir, 'main'),
    AWS_LAMBDA_FUNCTION_NAME: 'relayed',
    AWS_LAMBDA_FUNCTION_VERSION: '4',
    AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
    AWS_REGION: 'local',
    TZ: 'UTC',
    GREETING: 'multi',
  });
  t.match(env.AWS_LAMBDA_RUNTIME_API, /^127\.0\.0\.1:\d+$/, "the reserved variables win over the function's own");
  t.notOk('SKIFF_RUNTIME_SOCKET' in env, "the relay's own variables are not passed on");

  const first = fetch(`${api}/invocation/next`);
  t.match(await r.next(), { type: 'initDone' }, 'the first GET next ends init');
  r.send({
    type: 'invoke',
    id: 'inv-1',
    event: { hello: 'wörld' },
    deadlineMs: 1_900_000_000_000,
    traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
  });
  const next = await first;
  t.equal(next.status, 200);
  t.same(await next.json(), { hello: 'wörld' });
  t.equal(next.headers.get('lambda-runtime-aws-request-id'), 'inv-1');
  t.equal(next.headers.get('lambda-runtime-deadline-ms'), '1900000000000');
  t.equal(next.headers.get('lambda-runtime-invoked-function-arn'), 'arn:aws:lambda:local:000000000000:function:relayed');
  t.equal(
    next.headers.get('lambda-runtime-trace-id'),
    'Root=1-0af76519-16cd43dd8448eb211c80319c;Parent=b7ad6b7169203331;Sampled=1',
    'the traceparent as an X-Ray header',
  );

  const wrong = await fetch(`${api}/invocation/inv-0/response`, { method: 'POST', body: '{}' });
  t.equal(wrong.status, 400);
  t.match(await wrong.json(), { errorType: 'InvalidRequestID' });
  const answered = await fetch(`${api}/invocation/inv-1/response`, { method: 'POST', body: '{\n  "multi": [1, 2],\n  "s": "a b"\n}\n' });
  t.equal(answered.status, 202);
  t.same(await answered.json(), { status: 'OK' });
  t.match(await r.next(), { type: 'result', id: 'inv-1', ok: true, value: { multi: [1, 2], s: 'a b' } }, 'JSON with newlines reaches the worker whole');
  const again = await fetch(`${api}/invocation/inv-1/response`, { method: 'POST', body: '{}' });
  t.equal(again.status, 400, 'an invocation is answered once');

  const answer = async (id: string, verb: 'response' | 'error', body: string, headers: Record<string, string> = {}): Promise<Response> => {
    const waiting = fetch(`${api}/invocation/next`);
    r.send({ type: 'invoke', id, event: null, deadlineMs: Date.now() + 3000 });
    t.equal((await waiting).headers.get('lambda-runtime-aws-request-id'), id);
    return fetch(`${api}/invocation/${id}/${verb}`, { method: 'POST', body, headers });
  };
  t.equal((await answer('text', 'response', 'plain text, not JSON')).status, 202);
  t.match(await r.next(), { type: 'result', id: 'text', ok: true, value: 'plain text, not JSON' }, 'a body that is not JSON is a string');
  await answer('empty', 'response', '');
  t.match(await r.next(), { type: 'result', id: 'empty', ok: true, value: null }, 'an empty body is null');
  await answer('typed', 'error', '', { 'lambda-runtime-function-error-type': 'Custom.HeaderOnly' });
  t.match(await r.next(), { type: 'result', id: 'typed', ok: false, error: { type: 'Custom.HeaderOnly' } }, 'the header names the type when the body does not');
  await answer('posted', 'error', JSON.stringify({ errorMessage: 'bad', errorType: 'Custom.Body', stackTrace: ['a', 'b'] }), {
    'lambda-runtime-function-error-type': 'Custom.Header',
  });
  t.match(await r.next(), { type: 'result', id: 'posted', ok: false, error: { type: 'Custom.Body', message: 'bad', stack: ['a', 'b'] } });
  const big = await answer('big', 'response', JSON.stringify('x'.repeat(2000)));
  t.equal(big.status, 413, 'a response over the limit is refused');
  t.match(await r.next(), { type: 'result', id: 'big', ok: false, error: { type: 'Runtime.ResponseTooLarge' } }, 'and fails its invocation');

  // curl announces a body with Expect: 100-continue and waits for the go-ahead before sending it.
  const expecting = fetch(`${api}/invocation/next`);
  r.send({ type: 'invoke', id: 'expect', event: {}, deadlineMs: Date.now() + 3000 });
  await expecting;
  const continued = await new Promise<number>((resolve, reject) => {
    const req = request(`${api}/invocation/expect/response`, { method: 'POST', headers: { expect: '100-continue', 'content-length': 2 } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('continue', () => req.end('42'));
    req.on('error', reject);
  });
  t.equal(continued, 202, 'a body sent after "100 Continue" is read');
  t.match(await r.next(), { type: 'result', id: 'expect', ok: true, value: 42 });

  t.equal((await fetch(`${api}/init/error`, { method: 'POST', body: '{}' })).status, 403, 'init/error after init is refused');
  t.equal((await fetch(`${api.replace('/runtime', '')}/nothing`)).status, 404);
  t.equal((await fetch(`${api}/invocation/next`, { method: 'DELETE' })).status, 405);

  r.close();
  const [code] = (await once(r.process, 'exit')) as [number | null];
  t.equal(code, 0, 'the worker closing its end ends the relay');
});

t.test('init fails: no bootstrap to run, or a bootstrap that exits before asking for an event', async (t) => {
  const none = await startRelay(t, 'none');
  await none.next();
  none.send({ type: 'init', function: spec('/nowhere') });
  t.match(await none.next(), { type: 'initFailed', error: { type: 'Runtime.InvalidEntrypoint', message: /bootstrap: No such file or directory/ } });

  const exits = await startRelay(t, 'exits', '#!/bin/sh\necho "about to give up"\nexit 7\n');
  await exits.next();
  exits.send({ type: 'init', function: spec('/nowhere') });
  t.match(await exits.next(), { type: 'initFailed', error: { type: 'Runtime.ExitError', message: /exit status 7/ } });
});

t.test("the bootstrap's output while it handles an invocation is that invocation's log: cut lines, bounded in all", async (t) => {
  const line = 'x'.repeat(99);
  const bootstrap = `#!/bin/sh
API="http://$AWS_LAMBDA_RUNTIME_API/2018-06-01/runtime"
echo "before any event"
busybox wget -q -O /dev/null "$API/invocation/next"
echo "${'y'.repeat(150)}"
echo "to stderr" >&2
i=0
while [ $i -lt 3000 ]; do echo "${line}"; i=$((i+1)); done
printf 'no newline at the end'
busybox wget -q -O /dev/null --post-data '"done"' "$API/invocation/flood/response"
exec sleep 600
`;
  const r = await startRelay(t, 'logs', bootstrap);
  await r.next();
  r.send({ type: 'init', function: spec('/nowhere'), limits: { maxResultBytes: 1024, maxLogLineBytes: 120 } });
  t.match(await r.next(), { type: 'initDone' });
  r.send({ type: 'invoke', id: 'flood', event: {}, deadlineMs: Date.now() + 10_000 });
  const logs: Array<{ stream: string; text: string }> = [];
  for (;;) {
    const frame = await r.next();
    if (frame.type === 'result') {
      t.match(frame, { id: 'flood', ok: true, value: 'done' });
      break;
    }
    if (frame.type === 'log') logs.push({ stream: frame.stream, text: frame.text });
  }
  t.same(logs[0], { stream: 'stdout', text: `${'y'.repeat(120)} [skiff: line cut at 120 bytes]` }, 'a line over the limit is cut');
  // Two pipes: the order between stdout and stderr is the order the relay read them in.
  t.same(
    logs.filter((l) => l.stream === 'stderr'),
    [{ stream: 'stderr', text: 'to stderr' }],
  );
  t.notOk(
    logs.some((l) => l.text === 'before any event'),
    'output before the event is not the invocation’s',
  );
  t.same(
    logs.at(-1),
    { stream: 'stdout', text: '[skiff: log output of this invocation exceeded 262144 bytes; the rest is dropped]' },
    'one notice past 256 KiB',
  );
  t.ok(logs.length > 2000 && logs.length < 3000, `the rest is dropped (${logs.length} lines kept)`);
});
