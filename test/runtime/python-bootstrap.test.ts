/**
 * The Python bootstrap (runtime/python/bootstrap.py), tested as the worker sees it: this file
 * listens on a unix socket, spawns Debian's python3.11 on the bootstrap against a task directory of
 * handler modules, and checks the frames. The same protocol and behaviour as the Node.js bootstrap
 * (bootstrap.test.ts), with Lambda's Python names.
 */
import t, { type Extra } from 'tap';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFrames } from '../../runtime/protocol/framing.js';
import { PROTOCOL_VERSION, type ErrorInfo, type FunctionSpec, type RuntimeMessage } from '../../runtime/protocol/messages.js';

const PYTHON = '/usr/bin/python3.11';
/** The source file: it is not compiled, so it is found in the repository next to dist/. */
const BOOTSTRAP = fileURLToPath(new URL('../../../runtime/python/bootstrap.py', import.meta.url));
const FRAME_WAIT_MS = 5_000;

const TASK_FILES: Record<string, string> = {
  'app.py': `
import asyncio, decimal, logging, os, sys, threading, time

print('loading app')

def route(event, context):
    return globals()[event['use']](event, context)

def handler(event, context):
    return {'echo': event}

def chatty(event, context):
    print('log line from the handler ✓')
    print('two\\nlines')
    print('to stderr', file=sys.stderr)
    sys.stdout.write('no newline at the end')
    logging.getLogger('app').warning('careful %s', 'now')
    return {'echo': event}

def nothing(event, context):
    return None

def delayed(event, context):
    time.sleep(event['ms'] / 1000)
    # With a gate: then waits until that file exists (the 10 s only bound a hang).
    if 'gate' in event:
        give_up = time.monotonic() + 10
        while not os.path.exists(event['gate']):
            if time.monotonic() > give_up:
                return 'the gate never opened'
            time.sleep(0.005)
    return event['tag']

def context_fields(event, context):
    return {
        'aws_request_id': context.aws_request_id,
        'function_name': context.function_name,
        'function_version': context.function_version,
        'memory_limit_in_mb': context.memory_limit_in_mb,
        'invoked_function_arn': context.invoked_function_arn,
        'log_group_name': context.log_group_name,
        'log_stream_name': context.log_stream_name,
        'traceparent': context.traceparent,
        'remaining': context.get_remaining_time_in_millis(),
        'cwd': os.getcwd(),
        'env': {k: os.environ.get(k) for k in ('GREETING', 'AWS_LAMBDA_FUNCTION_NAME', 'AWS_LAMBDA_FUNCTION_VERSION',
                                                'AWS_LAMBDA_FUNCTION_MEMORY_SIZE', 'LAMBDA_TASK_ROOT', 'TZ', '_HANDLER')},
    }

class QuotaError(Exception):
    pass

def throws(event, context):
    raise TypeError('bad input')

def custom(event, context):
    raise QuotaError('over quota')

def a_set(event, context):
    return {'s': {1, 2}}

def circular(event, context):
    a = {'name': 'a'}
    a['self'] = a
    return a

def nan(event, context):
    return float('nan')

def decimals(event, context):
    return {'int': decimal.Decimal('42'), 'float': decimal.Decimal('1.5')}

async def coroutine(event, context):
    await asyncio.sleep(0.01)
    print('from a coroutine')
    return 'awaited'

def thread_output(event, context):
    worker = threading.Thread(target=lambda: print('from a thread of mine'))
    worker.start()
    worker.join()
    return 'joined'

def flood(event, context):
    for i in range(3000):
        print('x' * 100)
    return 'flooded'

def exits(event, context):
    print('about to exit')
    sys.exit(3)

not_a_function = 42
`,
  'pkg/__init__.py': '',
  'pkg/sub/__init__.py': '',
  'pkg/sub/mod.py': `def handler(event, context):\n    return 'from pkg.sub.mod'\n`,
  'mylib/__init__.py': `GREETING = 'vendored hello'\n`,
  'uses_vendored.py': `import mylib\n\ndef handler(event, context):\n    return mylib.GREETING\n`,
  'bootstrap.py': `def handler(event, context):\n    return "the user's own bootstrap module"\n`,
  'syntax_bad.py': `def handler(event, context)\n    return 1\n`,
  'deps.py': `import skiff_package_that_does_not_exist\n\ndef handler(event, context):\n    return 1\n`,
  'raises.py': `raise ValueError('cannot start')\n`,
  'exits_at_import.py': `import sys\nsys.exit(4)\n`,
};

let baseDir = '';
let taskRoot = '';

t.before(async () => {
  baseDir = await mkdtemp(path.join(tmpdir(), 'skiff-pybootstrap-'));
  taskRoot = path.join(baseDir, 'task');
  for (const [name, text] of Object.entries(TASK_FILES)) {
    const file = path.join(taskRoot, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  // Would import fine if the bootstrap let handler strings leave the task root.
  await writeFile(path.join(baseDir, 'outside.py'), 'def handler(event, context):\n    return "escaped"\n');
});
t.teardown(() => rm(baseDir, { recursive: true, force: true }));

interface Teardown {
  teardown(fn: () => unknown): void;
}

/** Frames in arrival order; next() waits for one, failing after a while instead of hanging. */
class FrameQueue {
  private readonly frames: RuntimeMessage[] = [];
  private readonly waiters: Array<(frame: RuntimeMessage | Error) => void> = [];
  private broken: Error | undefined;

  constructor(private readonly describe: () => string) {}

  push(frame: RuntimeMessage | Error): void {
    if (frame instanceof Error) this.broken = frame;
    const waiter = this.waiters.shift();
    if (waiter) waiter(frame);
    else if (!(frame instanceof Error)) this.frames.push(frame);
  }

  next(): Promise<RuntimeMessage> {
    const ready = this.frames.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      const waiter = (frame: RuntimeMessage | Error): void => {
        clearTimeout(timer);
        if (frame instanceof Error) reject(frame);
        else resolve(frame);
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        reject(new Error(`no frame within ${FRAME_WAIT_MS} ms; ${this.describe()}`));
      }, FRAME_WAIT_MS);
      this.waiters.push(waiter);
    });
  }
}

interface Sandbox {
  pid: number;
  connection: Socket;
  send(message: Record<string, unknown>): void;
  next(): Promise<RuntimeMessage>;
  stdout(): string;
  stderr(): string;
  exitCode: Promise<number | null>;
}

async function startSandbox(t: Teardown): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(tmpdir(), 'skiff-sock-'));
  const socketPath = path.join(dir, 'worker.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));

  const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_RUNTIME_SOCKET: socketPath, SKIFF_TASK_ROOT: taskRoot };
  delete env['TZ'];
  // As in the image: only the standard library; nothing from a virtualenv or user site of the host.
  delete env['PYTHONPATH'];
  delete env['PYTHONHOME'];
  const child = spawn(PYTHON, ['-u', '-B', '-s', BOOTSTRAP], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const exitCode = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));

  t.teardown(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    server.close();
    await rm(dir, { recursive: true, force: true });
  });

  const connection = await new Promise<Socket>((resolve, reject) => {
    server.once('connection', resolve);
    void exitCode.then((code) => reject(new Error(`bootstrap exited (${code}) before connecting: ${stderr}`)));
  });
  const queue = new FrameQueue(() => `bootstrap stderr: ${stderr}`);
  readFrames(
    connection,
    (frame) => queue.push(frame as RuntimeMessage),
    (error) => queue.push(error),
  );
  return {
    pid: child.pid ?? -1,
    connection,
    send: (message) => connection.write(JSON.stringify(message) + '\n'),
    next: () => queue.next(),
    stdout: () => stdout,
    stderr: () => stderr,
    exitCode,
  };
}

function functionSpec(handler: string, env: Record<string, string> = {}): FunctionSpec {
  return { name: 'greeter', version: 3, handler, memoryMb: 256, timeoutMs: 3_000, env };
}

interface Tap {
  match(found: unknown, pattern: unknown, ...message: [] | [string]): boolean;
  fail(message: string, extra: Extra): boolean;
}

async function initialized(t: Teardown & Tap, handler: string, env?: Record<string, string>): Promise<Sandbox> {
  const sandbox = await startSandbox(t);
  t.match(await sandbox.next(), { type: 'hello' });
  sandbox.send({ type: 'init', function: functionSpec(handler, env) });
  t.match(await sandbox.next(), { type: 'initDone', durationMs: Number }, `init ${handler}`);
  return sandbox;
}

async function initError(t: Teardown & Tap, handler: string): Promise<ErrorInfo | undefined> {
  const sandbox = await startSandbox(t);
  await sandbox.next();
  sandbox.send({ type: 'init', function: functionSpec(handler) });
  const answer = await sandbox.next();
  if (answer.type !== 'initFailed') {
    t.fail(`expected initFailed for ${handler}`, { answer });
    return undefined;
  }
  return answer.error;
}

function invoke(sandbox: Sandbox, id: string, event: unknown = {}, deadlineMs = Date.now() + 3_000): void {
  sandbox.send({ type: 'invoke', id, event, deadlineMs });
}

async function result(t: Teardown & Tap, handler: string, event: unknown = {}): Promise<RuntimeMessage> {
  const sandbox = await initialized(t, handler);
  invoke(sandbox, 'r1', event);
  return sandbox.next();
}

if (!existsSync(PYTHON)) {
  t.fail(`${PYTHON} is missing: install Debian's python3.11 (infra/system/prepare.sh does)`);
} else {
  t.test('hello comes first, with the protocol version, runtime and pid', async (t) => {
    const sandbox = await startSandbox(t);
    t.same(await sandbox.next(), { type: 'hello', protocol: PROTOCOL_VERSION, runtime: 'python3.11', pid: sandbox.pid });
  });

  t.test('output made during an invocation comes as log frames, one per line, before the result', async (t) => {
    const sandbox = await initialized(t, 'app.chatty');
    invoke(sandbox, 'a1', { n: 1 });
    const frames: RuntimeMessage[] = [];
    for (;;) {
      const frame = await sandbox.next();
      frames.push(frame);
      if (frame.type === 'result') break;
    }
    const logs = frames.filter((f) => f.type === 'log');
    t.ok(
      logs.every((f) => f.type === 'log' && f.id === 'a1' && typeof f.at === 'number'),
      'every line carries the invocation id and a time',
    );
    t.match(
      logs.map((f) => (f.type === 'log' ? [f.stream, f.text] : [])),
      [
        ['stdout', 'log line from the handler ✓'],
        ['stdout', 'two'],
        ['stdout', 'lines'],
        ['stderr', 'to stderr'],
        ['stderr', /^\[WARNING\]\t\S+Z\ta1\tcareful now$/],
        ['stdout', 'no newline at the end'],
      ],
      'lines in order, with their stream; logging goes through the Lambda-style root handler',
    );
    t.equal(logs.length, 6, 'and nothing else');
    t.match(frames.at(-1), { type: 'result', id: 'a1', ok: true, value: { echo: { n: 1 } }, durationMs: Number });
    t.notMatch(sandbox.stdout(), /log line from the handler/, 'not also on stdout');
    t.match(sandbox.stdout(), /loading app/, 'output while importing stays on stdout');
  });

  t.test('invocation outcomes, each handler in turn through one sandbox', async (t) => {
    const sandbox = await initialized(t, 'app.route');
    let calls = 0;
    const call = async (use: string): Promise<RuntimeMessage> => {
      const id = `${use}-${++calls}`;
      invoke(sandbox, id, { use });
      let answer = await sandbox.next();
      while (answer.type === 'log') answer = await sandbox.next();
      t.match(answer, { type: 'result', id, durationMs: Number }, `${use} answered with its own id`);
      return answer;
    };

    t.match(await call('handler'), { ok: true, value: { echo: { use: 'handler' } } });
    const nothing = await call('nothing');
    t.ok(nothing.type === 'result' && nothing.ok && nothing.value === null, 'None becomes null');

    const thrown = await call('throws');
    t.match(thrown, { ok: false, error: { type: 'TypeError', message: 'bad input', stack: Array } });
    if (thrown.type === 'result' && !thrown.ok) {
      const stack = thrown.error.stack ?? [];
      t.equal(stack.at(-1), 'TypeError: bad input', 'the stack ends with the exception');
      t.ok(
        stack.some((line) => /app\.py", line \d+, in throws/.test(line)),
        'the stack shows the user frame',
      );
      t.notOk(
        stack.some((line) => line.includes('bootstrap.py')),
        'no bootstrap frames in the stack',
      );
    }
    t.match(await call('custom'), { ok: false, error: { type: 'QuotaError', message: 'over quota' } }, 'the class name is the type');

    t.match(await call('a_set'), { ok: false, error: { type: 'Runtime.SerializationError', message: /set is not JSON serializable/ } });
    t.match(await call('circular'), { ok: false, error: { type: 'Runtime.SerializationError', message: /[Cc]ircular/ } });
    t.match(await call('nan'), { ok: false, error: { type: 'Runtime.SerializationError' } }, 'NaN is not JSON');
    t.match(await call('decimals'), { ok: true, value: { int: 42, float: 1.5 } }, 'Decimals become numbers, as on Lambda');
    t.match(await call('coroutine'), { ok: true, value: 'awaited' }, 'an async def handler is awaited');
    t.match(await call('thread_output'), { ok: true, value: 'joined' });
    t.match(await call('handler'), { ok: true }, 'still serving after all that');
  });

  t.test('output of a thread the handler started belongs to the invocation running alone', async (t) => {
    const sandbox = await initialized(t, 'app.thread_output');
    invoke(sandbox, 't1');
    t.match(await sandbox.next(), { type: 'log', id: 't1', text: 'from a thread of mine' });
    t.match(await sandbox.next(), { type: 'result', id: 't1', ok: true });
  });

  t.test('large events and non-ASCII text cross the socket intact', async (t) => {
    const sandbox = await initialized(t, 'app.handler');
    const event = { big: 'x'.repeat(3 * 1024 * 1024), text: 'héllo ✓ 日本 😀' };
    invoke(sandbox, 'big', event);
    const answer = await sandbox.next();
    t.ok(answer.type === 'result' && answer.ok && JSON.stringify(answer.value) === JSON.stringify({ echo: event }), 'the 3 MB event comes back unchanged');
  });

  t.test('an invocation that logs too much is cut off with one notice', async (t) => {
    const sandbox = await initialized(t, 'app.flood');
    invoke(sandbox, 'f1');
    let lines = 0;
    let last: RuntimeMessage | undefined;
    for (let frame = await sandbox.next(); frame.type === 'log'; frame = await sandbox.next()) {
      lines++;
      last = frame;
    }
    t.ok(lines < 3000, `bounded (${lines} lines)`);
    t.match(last, { type: 'log', stream: 'stderr', text: /exceeded \d+ bytes/ });
  });

  t.test('concurrent invocations run at once and are answered as they finish, matched by id', async (t) => {
    // By order of events, not by timing: the slow call cannot end before the gate file exists, and
    // the test makes it only once the fast call (sent after it) has been answered. So the fast one
    // ran and was answered while the slow one was still running; had it waited for the slow one,
    // no frame would come and next() would fail.
    const sandbox = await initialized(t, 'app.delayed');
    const gate = path.join(baseDir, 'gate-concurrent');
    invoke(sandbox, 'slow', { tag: 'slow', ms: 10, gate });
    invoke(sandbox, 'fast', { tag: 'fast', ms: 10 });
    const first = await sandbox.next();
    const answeredAt = performance.now();
    t.match(first, { type: 'result', id: 'fast', ok: true, value: 'fast' }, 'the fast one is answered while the slow one still runs');
    await new Promise((resolve) => setTimeout(resolve, 100));
    const openedAt = performance.now();
    await writeFile(gate, '');
    const second = await sandbox.next();
    t.match(second, { type: 'result', id: 'slow', ok: true, value: 'slow' }, 'the slow one ends once the gate opens');
    // The slow invoke arrived before the fast one was answered and ended after the gate opened, so
    // its duration (the bootstrap's monotonic clock) holds at least the time between the two.
    if (second.type === 'result') t.ok(second.durationMs >= openedAt - answeredAt, `durationMs covers the wait (${second.durationMs.toFixed(0)} ms)`);
  });

  t.test('context fields and the init environment', async (t) => {
    const sandbox = await initialized(t, 'app.context_fields', { GREETING: 'hi', AWS_LAMBDA_FUNCTION_NAME: 'spoofed' });
    const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
    const sentAt = Date.now();
    const deadlineMs = sentAt + 2_000;
    sandbox.send({ type: 'invoke', id: 'ctx-1', event: {}, deadlineMs, traceparent });
    const answer = await sandbox.next();
    const answeredAt = Date.now();
    t.match(answer, {
      ok: true,
      value: {
        aws_request_id: 'ctx-1',
        function_name: 'greeter',
        function_version: '3',
        memory_limit_in_mb: '256',
        invoked_function_arn: 'arn:aws:lambda:local:000000000000:function:greeter',
        log_group_name: '/skiff/greeter',
        log_stream_name: /^\d{4}\/\d{2}\/\d{2}\/\[3\][0-9a-f]{32}$/,
        traceparent,
        cwd: taskRoot,
        env: {
          GREETING: 'hi',
          AWS_LAMBDA_FUNCTION_NAME: 'greeter',
          AWS_LAMBDA_FUNCTION_VERSION: '3',
          AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
          LAMBDA_TASK_ROOT: taskRoot,
          TZ: 'UTC',
          _HANDLER: 'app.context_fields',
        },
      },
    });
    const remaining = answer.type === 'result' && answer.ok ? (answer.value as { remaining: number }).remaining : -1;
    // The handler read the clock between the send and the answer, so what it got lies between the
    // deadline seen from those two moments (whole milliseconds, rounded down; never below 0).
    const earliest = Math.max(0, deadlineMs - answeredAt - 1);
    t.ok(
      remaining >= earliest && remaining <= deadlineMs - sentAt,
      `get_remaining_time_in_millis counts down to the deadline (${remaining}, within ${earliest}..2000)`,
    );

    invoke(sandbox, 'ctx-2', {}, Date.now() - 5_000);
    t.match(await sandbox.next(), { id: 'ctx-2', value: { remaining: 0, traceparent: null } }, 'never negative; no traceparent is None');
  });

  t.test('modules in packages, by slash or dot, and vendored packages in the code', async (t) => {
    t.match(await result(t, 'pkg/sub/mod.handler'), { ok: true, value: 'from pkg.sub.mod' });
    t.match(await result(t, 'pkg.sub.mod.handler'), { ok: true, value: 'from pkg.sub.mod' });
    t.match(await result(t, 'uses_vendored.handler'), { ok: true, value: 'vendored hello' });
    t.match(await result(t, 'bootstrap.handler'), { ok: true, value: "the user's own bootstrap module" }, 'the runtime directory is not on sys.path');
  });

  t.test('init failures', async (t) => {
    t.match(await initError(t, 'app.missing'), { type: 'Runtime.HandlerNotFound', message: /missing/ }, 'missing attribute');
    t.match(await initError(t, 'app.not_a_function'), { type: 'Runtime.HandlerNotFound' }, 'attribute not callable');
    t.match(await initError(t, 'nofile.handler'), { type: 'Runtime.ImportModuleError', message: /No module named 'nofile'/ }, 'missing module');
    t.match(
      await initError(t, 'deps.handler'),
      { type: 'Runtime.ImportModuleError', message: /skiff_package_that_does_not_exist/, stack: Array },
      'missing dependency',
    );
    const syntax = await initError(t, 'syntax_bad.handler');
    t.match(syntax, { type: 'SyntaxError', stack: Array }, 'syntax errors keep their type');
    t.ok(
      syntax?.stack?.some((line) => line.includes('syntax_bad.py')),
      'and say where',
    );
    t.match(await initError(t, 'raises.handler'), { type: 'ValueError', message: 'cannot start' }, 'an exception at import keeps its type');
    t.match(await initError(t, 'nodot'), { type: 'Runtime.MalformedHandlerName' }, 'no function name');
    t.match(await initError(t, 'app.'), { type: 'Runtime.MalformedHandlerName' });
  });

  t.test('handler strings may not leave the task root', async (t) => {
    t.match(await initError(t, '../outside.handler'), { type: 'Runtime.MalformedHandlerName' });
    t.match(await initError(t, `${path.join(baseDir, 'outside')}.handler`), { type: 'Runtime.MalformedHandlerName' });
    t.match(await initError(t, 'pkg/../../outside.handler'), { type: 'Runtime.MalformedHandlerName' });
  });

  t.test('sys.exit() in a handler fails the call, then the process exits with its code', async (t) => {
    const sandbox = await initialized(t, 'app.exits');
    invoke(sandbox, 'e1');
    t.match(await sandbox.next(), { type: 'log', id: 'e1', text: 'about to exit' });
    t.match(await sandbox.next(), { type: 'result', id: 'e1', ok: false, error: { type: 'Runtime.ExitError', message: /sys\.exit\(3\)/ } });
    t.equal(await sandbox.exitCode, 3);
  });

  t.test('sys.exit() while importing fails init', async (t) => {
    const sandbox = await startSandbox(t);
    await sandbox.next();
    sandbox.send({ type: 'init', function: functionSpec('exits_at_import.handler') });
    t.match(await sandbox.next(), { type: 'initFailed', error: { type: 'Runtime.ExitError' } });
    t.equal(await sandbox.exitCode, 4);
  });

  t.test('unknown and malformed frames are reported on stderr and ignored; bad ones answered', async (t) => {
    const sandbox = await initialized(t, 'app.handler');
    sandbox.send({ type: 'reticulate' });
    sandbox.connection.write('this is not json\n');
    sandbox.send({ type: 'invoke', id: 'bad', event: {}, deadlineMs: 'soon' });
    t.match(await sandbox.next(), { id: 'bad', ok: false, error: { type: 'Runtime.InvalidInvoke', message: /deadlineMs/ } });
    invoke(sandbox, 'after');
    t.match(await sandbox.next(), { id: 'after', ok: true });
    sandbox.send({ type: 'init', function: functionSpec('app.handler') });
    invoke(sandbox, 'still');
    t.match(await sandbox.next(), { id: 'still', ok: true }, 'a second init is ignored');
    // stderr is a pipe of its own: it may trail the socket a little.
    const deadline = Date.now() + FRAME_WAIT_MS;
    while (!/second init/.test(sandbox.stderr()) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    t.match(sandbox.stderr(), /does not understand/);
    t.match(sandbox.stderr(), /malformed frame/);
    t.match(sandbox.stderr(), /second init/);
  });

  t.test('a malformed init is answered with initFailed', async (t) => {
    const sandbox = await startSandbox(t);
    await sandbox.next();
    sandbox.send({ type: 'init', function: { name: 'x', handler: 'app.handler', version: 1, memoryMb: 128, timeoutMs: 1000, env: { A: 1 } } });
    t.match(await sandbox.next(), { type: 'initFailed', error: { type: 'Runtime.InvalidInit', message: /env/ } });
    invoke(sandbox, 'after-bad-init');
    t.match(await sandbox.next(), { id: 'after-bad-init', ok: false, error: { type: 'Runtime.InitError' } });
  });

  t.test('invoke before init is answered, not dropped', async (t) => {
    const sandbox = await startSandbox(t);
    await sandbox.next();
    invoke(sandbox, 'early');
    t.match(await sandbox.next(), { id: 'early', ok: false, error: { type: 'Runtime.NotInitialized' } });
  });

  t.test('the worker closing the socket ends the bootstrap with 0, even with a call running', async (t) => {
    const sandbox = await initialized(t, 'app.delayed');
    invoke(sandbox, 'forever', { tag: 'x', ms: 60_000 });
    sandbox.connection.end();
    t.equal(await sandbox.exitCode, 0);
  });
}
