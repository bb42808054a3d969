/**
 * The bounds a bootstrap applies itself, given in init's `limits`: a result over maxResultBytes is
 * answered with a RESULT_TOO_LARGE error (and the sandbox keeps serving), and log lines are cut at
 * maxLogLineBytes with a marker. Both bootstraps, as the worker sees them: over a unix socket.
 */
import t from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFrames } from '../../runtime/protocol/framing.js';
import { RESULT_TOO_LARGE, cutMarker, type RuntimeLimits, type RuntimeMessage } from '../../runtime/protocol/messages.js';

const NODE_BOOTSTRAP = fileURLToPath(new URL('../../runtime/nodejs/bootstrap.js', import.meta.url));
const PYTHON_BOOTSTRAP = fileURLToPath(new URL('../../../runtime/python/bootstrap.py', import.meta.url));
const PYTHON = '/usr/bin/python3.11';
const FRAME_WAIT_MS = 5_000;
const LIMITS: RuntimeLimits = { maxResultBytes: 1000, maxLogLineBytes: 100 };

const NODE_TASK = `
exports.big = async (event) => 'x'.repeat(event.n);
exports.exact = async (event) => 'x'.repeat(event.n - 2); // its JSON has two quotes
exports.small = async () => 'ok';
exports.longLog = async () => { console.log('y'.repeat(5000)); console.log('short'); return 'logged'; };
exports.wideLog = async () => { console.log('é'.repeat(100)); return 'logged'; };
exports.hugeLog = async () => { console.log('h'.repeat(64 * 1024 * 1024)); return 'logged'; };
`;

const PYTHON_TASK = `
import sys

def big(event, context):
    return 'x' * event['n']

def exact(event, context):
    return 'x' * (event['n'] - 2)

def small(event, context):
    return 'ok'

def longLog(event, context):
    print('y' * 5000)
    print('short')
    return 'logged'

def wideLog(event, context):
    print('é' * 100)
    return 'logged'

def hugeLog(event, context):
    for _ in range(1024):
        sys.stdout.write('h' * 65536)
    sys.stdout.write('\\n')
    return 'logged'
`;

/** Just the part of tap's Test the harness needs. */
interface Harness {
  teardown(fn: () => unknown): void;
  fail(message: string): boolean;
}

interface Sandbox {
  send(message: unknown): void;
  next(): Promise<RuntimeMessage>;
}

/** Spawns `command` on a socket of its own; frames in order, next() failing after a while. */
async function start(t: Harness, command: string[], taskRoot: string): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(tmpdir(), 'skiff-limits-'));
  const socketPath = path.join(dir, 'worker.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
  const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_RUNTIME_SOCKET: socketPath, SKIFF_TASK_ROOT: taskRoot };
  delete env['PYTHONPATH'];
  const [binary = '', ...args] = command;
  const child = spawn(binary, args, { env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    server.close();
    await rm(dir, { recursive: true, force: true });
  });
  const connection = await new Promise<Socket>((resolve, reject) => {
    server.once('connection', resolve);
    child.once('exit', (code) => reject(new Error(`bootstrap exited (${code}) before connecting: ${stderr}`)));
  });
  const frames: RuntimeMessage[] = [];
  const waiters: Array<(frame: RuntimeMessage) => void> = [];
  readFrames(
    connection,
    (frame) => {
      const waiter = waiters.shift();
      if (waiter) waiter(frame as RuntimeMessage);
      else frames.push(frame as RuntimeMessage);
    },
    (error) => t.fail(`bad frame from the bootstrap: ${error.message}`),
  );
  return {
    send: (message) => connection.write(JSON.stringify(message) + '\n'),
    next: () => {
      const ready = frames.shift();
      if (ready) return Promise.resolve(ready);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no frame within ${FRAME_WAIT_MS} ms; stderr: ${stderr}`)), FRAME_WAIT_MS);
        waiters.push((frame) => (clearTimeout(timer), resolve(frame)));
      });
    },
  };
}

/** The frames up to and including invocation `id`'s result. */
async function call(sandbox: Sandbox, id: string, event: unknown = {}): Promise<{ logs: RuntimeMessage[]; result: RuntimeMessage }> {
  sandbox.send({ type: 'invoke', id, event, deadlineMs: Date.now() + 10_000 });
  const logs: RuntimeMessage[] = [];
  for (;;) {
    const frame = await sandbox.next();
    if (frame.type === 'result') return { logs, result: frame };
    logs.push(frame);
  }
}

const runtimes = [
  { name: 'nodejs', command: [process.execPath, NODE_BOOTSTRAP], file: 'index.js', task: NODE_TASK, module: 'index', available: true },
  { name: 'python', command: [PYTHON, '-u', '-B', '-s', PYTHON_BOOTSTRAP], file: 'app.py', task: PYTHON_TASK, module: 'app', available: existsSync(PYTHON) },
];

for (const runtime of runtimes) {
  t.test(`${runtime.name}: results and log lines are bounded by init's limits`, { skip: runtime.available ? false : `${PYTHON} is missing` }, async (t) => {
    const taskRoot = await mkdtemp(path.join(tmpdir(), 'skiff-limits-task-'));
    t.teardown(() => rm(taskRoot, { recursive: true, force: true }));
    await writeFile(path.join(taskRoot, runtime.file), runtime.task);
    if (runtime.name === 'nodejs') await writeFile(path.join(taskRoot, 'package.json'), '{ "type": "commonjs" }\n');

    const sandboxes = new Map<string, Sandbox>();
    const sandboxFor = async (handler: string): Promise<Sandbox> => {
      const known = sandboxes.get(handler);
      if (known) return known;
      const sandbox = await start(t, runtime.command, taskRoot);
      t.match(await sandbox.next(), { type: 'hello' });
      sandbox.send({
        type: 'init',
        function: { name: 'bounded', version: 1, handler: `${runtime.module}.${handler}`, memoryMb: 256, timeoutMs: 10_000, env: {} },
        limits: LIMITS,
      });
      t.match(await sandbox.next(), { type: 'initDone' }, `init ${handler}`);
      sandboxes.set(handler, sandbox);
      return sandbox;
    };

    const big = await sandboxFor('big');
    const refused = await call(big, 'big-1', { n: 5000 });
    t.match(
      refused.result,
      { type: 'result', id: 'big-1', ok: false, error: { type: RESULT_TOO_LARGE, message: /5002 bytes.*1000 bytes/ } },
      'a result over the limit is refused, naming both sizes',
    );
    const fits = await call(big, 'big-2', { n: 998 });
    t.match(fits.result, { id: 'big-2', ok: true, value: 'x'.repeat(998) }, 'the same sandbox answers the next call; exactly the limit fits');

    const exact = await sandboxFor('exact');
    t.match((await call(exact, 'exact-1', { n: 1001 })).result, { ok: false, error: { type: RESULT_TOO_LARGE } }, 'one byte over is refused');

    const long = await sandboxFor('longLog');
    const logged = await call(long, 'long-1');
    t.match(logged.result, { ok: true, value: 'logged' });
    const texts = logged.logs.map((l) => (l.type === 'log' ? l.text : ''));
    t.same(texts, [`${'y'.repeat(100)}${cutMarker(100)}`, 'short'], 'the long line is cut at the limit, with the marker; the short one is whole');

    const wide = await sandboxFor('wideLog');
    const wideLogs = (await call(wide, 'wide-1')).logs.map((l) => (l.type === 'log' ? l.text : ''));
    t.same(wideLogs, [`${'é'.repeat(50)}${cutMarker(100)}`], 'cut at 100 bytes, between characters');

    const huge = await sandboxFor('hugeLog');
    const hugeCall = await call(huge, 'huge-1');
    t.match(hugeCall.result, { ok: true, value: 'logged' }, 'a 64 MiB line costs the caller nothing');
    t.same(
      hugeCall.logs.map((l) => (l.type === 'log' ? l.text : '')),
      [`${'h'.repeat(100)}${cutMarker(100)}`],
    );
  });
}
