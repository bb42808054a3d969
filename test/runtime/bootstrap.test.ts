/**
 * The Node.js bootstrap, tested as the worker sees it: this file listens on a unix socket, spawns
 * the compiled bootstrap against a task directory of handler files, and checks the frames.
 */
import t, { type Extra } from 'tap';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import net, { type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { readFrames } from '../../runtime/protocol/framing.js';
import { PROTOCOL_VERSION, type ErrorInfo, type FunctionSpec, type RuntimeMessage, type WorkerMessage } from '../../runtime/protocol/messages.js';
import { toErrorInfo } from '../../runtime/nodejs/errors.js';
import { parseHandlerName, resolveModuleBase } from '../../runtime/nodejs/load-handler.js';

const BOOTSTRAP = fileURLToPath(new URL('../../runtime/nodejs/bootstrap.js', import.meta.url));
const FRAME_WAIT_MS = 3_000;

/** Every handler the tests use; one task directory serves all sandboxes. */
const TASK_FILES: Record<string, string> = {
  // Explicit, so that .js means CommonJS whatever package.json sits above the temp dir.
  'package.json': '{ "type": "commonjs" }\n',
  'index.js': `
    // Forwards to another export unchanged, so one sandbox can exercise many handler styles.
    exports.route = (event, context, callback) => exports[event.use](event, context, callback);
    exports.handler = async (event) => ({ echo: event });
    exports.chatty = async (event) => { console.log('log line from the handler'); return { echo: event }; };
    exports.nothing = async () => undefined;
    // With a gate: then waits until that file exists (the 10 s only bound a hang).
    exports.delayed = (event) => new Promise((resolve) => setTimeout(() => {
      const giveUp = Date.now() + 10000;
      const poll = () => !event.gate || require('fs').existsSync(event.gate) ? resolve(event.tag)
        : Date.now() > giveUp ? resolve('the gate never opened') : setTimeout(poll, 5);
      poll();
    }, event.ms));
    exports.context = async (event, context) => ({
      awsRequestId: context.awsRequestId,
      functionName: context.functionName,
      functionVersion: context.functionVersion,
      memoryLimitInMB: context.memoryLimitInMB,
      invokedFunctionArn: context.invokedFunctionArn,
      logGroupName: context.logGroupName,
      logStreamName: context.logStreamName,
      callbackWaitsForEmptyEventLoop: context.callbackWaitsForEmptyEventLoop,
      traceparent: context.traceparent,
      remaining: context.getRemainingTimeInMillis(),
      cwd: process.cwd(),
      env: {
        GREETING: process.env.GREETING,
        AWS_LAMBDA_FUNCTION_NAME: process.env.AWS_LAMBDA_FUNCTION_NAME,
        AWS_LAMBDA_FUNCTION_VERSION: process.env.AWS_LAMBDA_FUNCTION_VERSION,
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
        LAMBDA_TASK_ROOT: process.env.LAMBDA_TASK_ROOT,
        TZ: process.env.TZ,
      },
    });
    exports.throws = () => { throw new TypeError('bad input'); };
    class QuotaError extends Error {}
    exports.rejects = async () => { throw new QuotaError('over quota'); };
    exports.throwsString = async () => { throw 'plain string'; };
    exports.throwsObject = async () => { throw { code: 42 }; };
    exports.circular = async () => { const a = { name: 'a' }; a.self = a; return a; };
    exports.bigint = async () => ({ n: 10n });
    exports.callback = (event, context, callback) => { setTimeout(() => callback(null, 'via callback'), 5); };
    exports.callbackError = (event, context, callback) => { callback(new Error('callback failed')); };
    exports.succeed = (event, context) => { setTimeout(() => context.succeed('via succeed'), 5); };
    exports.fail = (event, context) => { context.fail(new Error('via fail')); };
    exports.firstWins = async (event, context, callback) => { callback(null, 'first'); throw new Error('second'); };
    exports.hang = () => new Promise(() => {});
    exports.crashSoon = async () => { setTimeout(() => { throw new RangeError('boom'); }, 20); return new Promise(() => {}); };
    exports.notAFunction = 42;
  `,
  'esm.mjs': `export const handler = async (event) => ({ esm: true, event });\n`,
  // Assigned so that Node cannot see the name statically: only reachable through \`default\`.
  'dynamic.cjs': `const m = {}; m['hand' + 'ler'] = async () => 'from module.exports'; module.exports = m;\n`,
  'src/app.js': `exports.handler = async () => 'from src';\n`,
  'syntax.js': `exports.handler = async () => {\n`,
  'deps.js': `require('skiff-package-that-does-not-exist'); exports.handler = async () => 1;\n`,
};

let baseDir = '';
let taskRoot = '';

t.before(async () => {
  baseDir = await mkdtemp(path.join(tmpdir(), 'skiff-bootstrap-'));
  taskRoot = path.join(baseDir, 'task');
  for (const [name, text] of Object.entries(TASK_FILES)) {
    const file = path.join(taskRoot, name);
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, text);
  }
  // Would load fine if the bootstrap let handler strings leave the task root.
  await writeFile(path.join(baseDir, 'outside.js'), 'exports.handler = async () => "escaped";\n');
});
t.teardown(() => rm(baseDir, { recursive: true, force: true }));

/** Just the part of tap's Test the harness needs. */
interface Teardown {
  teardown(fn: () => unknown): void;
}

/**
 * Frames in arrival order; next() waits for one, failing after a while instead of hanging the
 * suite. A malformed frame from the bootstrap fails every later next().
 */
class FrameQueue {
  private readonly frames: RuntimeMessage[] = [];
  private readonly waiters: { resolve: (frame: RuntimeMessage) => void; reject: (error: Error) => void }[] = [];
  private broken: Error | undefined;

  constructor(private readonly describe: () => string) {}

  push(frame: RuntimeMessage): void {
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(frame);
    else this.frames.push(frame);
  }

  fail(error: Error): void {
    this.broken = error;
    for (const waiter of this.waiters.splice(0)) waiter.reject(error);
  }

  next(): Promise<RuntimeMessage> {
    const ready = this.frames.shift();
    if (ready !== undefined) return Promise.resolve(ready);
    if (this.broken !== undefined) return Promise.reject(this.broken);
    return new Promise((resolve, reject) => {
      const waiter = {
        resolve: (frame: RuntimeMessage): void => {
          clearTimeout(timer);
          resolve(frame);
        },
        reject: (error: Error): void => {
          clearTimeout(timer);
          reject(error);
        },
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
  send(message: WorkerMessage | Record<string, unknown>): void;
  next(): Promise<RuntimeMessage>;
  stdout(): string;
  stderr(): string;
  exitCode: Promise<number | null>;
}

function waitForConnection(server: net.Server, exitCode: Promise<number | null>, stderr: () => string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    server.once('connection', resolve);
    void exitCode.then((code) => reject(new Error(`bootstrap exited (${code}) before connecting: ${stderr()}`)));
  });
}

/** Listens, spawns a bootstrap, and accepts its connection. Everything is undone in teardown. */
async function startSandbox(t: Teardown): Promise<Sandbox> {
  const dir = await mkdtemp(path.join(tmpdir(), 'skiff-sock-'));
  const socketPath = path.join(dir, 'worker.sock');
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));

  const env: NodeJS.ProcessEnv = { ...process.env, SKIFF_RUNTIME_SOCKET: socketPath, SKIFF_TASK_ROOT: taskRoot };
  delete env['TZ']; // so the bootstrap's default shows
  const child = spawn(process.execPath, [BOOTSTRAP], { env, stdio: ['ignore', 'pipe', 'pipe'] });
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

  const connection = await waitForConnection(server, exitCode, () => stderr);
  const queue = new FrameQueue(() => `bootstrap stderr: ${stderr}`);
  readFrames(
    connection,
    (frame) => queue.push(frame as RuntimeMessage),
    (error) => queue.fail(error),
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

/** A sandbox past hello and init, with the init answer checked. */
async function initialized(t: Teardown & Tap, handler: string, env?: Record<string, string>): Promise<Sandbox> {
  const sandbox = await startSandbox(t);
  t.match(await sandbox.next(), { type: 'hello' });
  sandbox.send({ type: 'init', function: functionSpec(handler, env) });
  t.match(await sandbox.next(), { type: 'initDone', durationMs: Number }, `init ${handler}`);
  return sandbox;
}

/** Starts a sandbox for `handler` and returns the initFailed error (failing the test otherwise). */
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

/** Just the assertions the helpers need (tap's own Test type is a deep generic). */
interface Tap {
  match(found: unknown, pattern: unknown, ...message: [] | [string]): boolean;
  fail(message: string, extra: Extra): boolean;
}

function invoke(sandbox: Sandbox, id: string, event: unknown = {}, deadlineMs = Date.now() + 3_000): void {
  sandbox.send({ type: 'invoke', id, event, deadlineMs });
}

async function result(t: Teardown & Tap, handler: string, event: unknown = {}): Promise<RuntimeMessage> {
  const sandbox = await initialized(t, handler);
  invoke(sandbox, 'r1', event);
  return sandbox.next();
}

t.test('hello comes first, with the protocol version and pid', async (t) => {
  const sandbox = await startSandbox(t);
  t.same(await sandbox.next(), { type: 'hello', protocol: PROTOCOL_VERSION, runtime: 'nodejs20', pid: sandbox.pid });
});

t.test('CommonJS async handler; its console output comes as log frames before the result', async (t) => {
  const sandbox = await initialized(t, 'index.chatty');
  invoke(sandbox, 'a1', { n: 1 });
  t.match(await sandbox.next(), { type: 'log', id: 'a1', stream: 'stdout', text: /log line from the handler/, at: Number });
  t.match(await sandbox.next(), { type: 'result', id: 'a1', ok: true, value: { echo: { n: 1 } }, durationMs: Number });
  t.notMatch(sandbox.stdout(), /log line from the handler/, 'not also on stdout');
});

t.test('ESM handler in a .mjs file', async (t) => {
  t.match(await result(t, 'esm.handler', 'x'), { ok: true, value: { esm: true, event: 'x' } });
});

t.test('CommonJS export only reachable through module.exports (.cjs)', async (t) => {
  t.match(await result(t, 'dynamic.handler'), { ok: true, value: 'from module.exports' });
});

t.test('handler in a subdirectory', async (t) => {
  t.match(await result(t, 'src/app.handler'), { ok: true, value: 'from src' });
});

t.test('invocation outcomes, each handler style in turn through one sandbox', async (t) => {
  const sandbox = await initialized(t, 'index.route');
  let calls = 0;
  const call = async (use: string): Promise<RuntimeMessage> => {
    const id = `${use}-${++calls}`;
    invoke(sandbox, id, { use });
    const answer = await sandbox.next();
    t.match(answer, { type: 'result', id, durationMs: Number }, `${use} answered with its own id`);
    return answer;
  };

  const nothing = await call('nothing');
  t.ok(nothing.type === 'result' && nothing.ok && nothing.value === null, 'undefined becomes null, not a missing value');

  t.match(await call('callback'), { ok: true, value: 'via callback' });
  t.match(await call('succeed'), { ok: true, value: 'via succeed' });
  t.match(await call('callbackError'), { ok: false, error: { type: 'Error', message: 'callback failed' } });
  t.match(await call('fail'), { ok: false, error: { message: 'via fail' } });
  t.match(await call('firstWins'), { ok: true, value: 'first' }, 'only the first outcome counts');

  const thrown = await call('throws');
  t.match(thrown, { ok: false, error: { type: 'TypeError', message: 'bad input', stack: Array } });
  if (thrown.type === 'result' && !thrown.ok) t.match(thrown.error.stack?.[0], /^TypeError: bad input/);
  t.match(await call('rejects'), { ok: false, error: { type: 'QuotaError', message: 'over quota' } }, 'class name when name is unset');
  t.match(await call('throwsString'), { ok: false, error: { type: 'string', message: 'plain string' } });
  t.match(await call('throwsObject'), { ok: false, error: { type: 'object', message: /code: 42/ } });

  t.match(await call('circular'), { ok: false, error: { type: 'Runtime.SerializationError', message: /circular/i } });
  t.match(await call('bigint'), { ok: false, error: { type: 'Runtime.SerializationError', message: /BigInt/ } });
  t.match(await call('handler'), { ok: true }, 'still serving after all that');
});

t.test('concurrent invocations are answered as they finish, matched by id', async (t) => {
  // By order of events, not by timing: the slow call cannot end before the gate file exists, and
  // the test makes it only once the fast call (sent after it) has been answered.
  const sandbox = await initialized(t, 'index.delayed');
  const gate = path.join(baseDir, 'gate-concurrent');
  invoke(sandbox, 'slow', { tag: 'slow', ms: 10, gate });
  invoke(sandbox, 'fast', { tag: 'fast', ms: 10 });
  const first = await sandbox.next();
  const answeredAt = performance.now();
  t.match(first, { id: 'fast', ok: true, value: 'fast' }, 'the fast one is answered while the slow one still runs');
  await new Promise((resolve) => setTimeout(resolve, 100));
  const openedAt = performance.now();
  await writeFile(gate, '');
  const second = await sandbox.next();
  t.match(second, { id: 'slow', ok: true, value: 'slow' }, 'the slow one ends once the gate opens');
  // The slow invoke arrived before the fast one was answered and ended after the gate opened, so
  // its duration (the bootstrap's monotonic clock) holds at least the time between the two.
  if (second.type === 'result') t.ok(second.durationMs >= openedAt - answeredAt, `durationMs covers the wait (${second.durationMs.toFixed(0)} ms)`);
});

t.test('context fields and the init environment', async (t) => {
  const sandbox = await initialized(t, 'index.context', { GREETING: 'hi' });
  const traceparent = '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01';
  const sentAt = Date.now();
  const deadlineMs = sentAt + 2_000;
  sandbox.send({ type: 'invoke', id: 'ctx-1', event: {}, deadlineMs, traceparent });
  const answer = await sandbox.next();
  const answeredAt = Date.now();
  t.match(answer, {
    ok: true,
    value: {
      awsRequestId: 'ctx-1',
      functionName: 'greeter',
      functionVersion: '3',
      memoryLimitInMB: '256',
      invokedFunctionArn: 'arn:aws:lambda:local:000000000000:function:greeter',
      logGroupName: '/skiff/greeter',
      logStreamName: /^\d{4}\/\d{2}\/\d{2}\/\[3\][0-9a-f]{32}$/,
      callbackWaitsForEmptyEventLoop: true,
      traceparent,
      cwd: taskRoot,
      env: {
        GREETING: 'hi',
        AWS_LAMBDA_FUNCTION_NAME: 'greeter',
        AWS_LAMBDA_FUNCTION_VERSION: '3',
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE: '256',
        LAMBDA_TASK_ROOT: taskRoot,
        TZ: 'UTC',
      },
    },
  });
  const remaining = answer.type === 'result' && answer.ok ? (answer.value as { remaining: number }).remaining : -1;
  // The handler read the clock between the send and the answer, so what it got lies between the
  // deadline seen from those two moments (never below 0).
  const earliest = Math.max(0, deadlineMs - answeredAt);
  t.ok(
    remaining >= earliest && remaining <= deadlineMs - sentAt,
    `getRemainingTimeInMillis counts down to the deadline (${remaining}, within ${earliest}..2000)`,
  );

  invoke(sandbox, 'ctx-2', {}, Date.now() - 5_000);
  t.match(await sandbox.next(), { id: 'ctx-2', value: { remaining: 0 } }, 'never negative');
});

t.test('init failures', async (t) => {
  t.match(await initError(t, 'index.missing'), { type: 'Runtime.HandlerNotFound' }, 'missing export');
  t.match(await initError(t, 'index.notAFunction'), { type: 'Runtime.HandlerNotFound' }, 'export not a function');
  t.match(await initError(t, 'nofile.handler'), { type: 'Runtime.ImportModuleError' }, 'missing file');
  t.match(await initError(t, 'deps.handler'), { type: 'Runtime.ImportModuleError', message: /skiff-package-that-does-not-exist/ }, 'missing dependency');
  t.match(await initError(t, 'syntax.handler'), { type: 'SyntaxError', stack: Array }, 'syntax error');
  t.match(await initError(t, 'nodot'), { type: 'Runtime.MalformedHandlerName' }, 'no export name');
});

t.test('handler strings may not leave the task root', async (t) => {
  t.match(await initError(t, '../outside.handler'), { type: 'Runtime.MalformedHandlerName', message: /outside the task root/ });
  t.match(await initError(t, `${path.join(baseDir, 'outside')}.handler`), { type: 'Runtime.MalformedHandlerName' });
  t.match(await initError(t, 'src/../../outside.handler'), { type: 'Runtime.MalformedHandlerName' });
});

t.test('an uncaught exception fails every running invocation, then exits 1', async (t) => {
  const sandbox = await initialized(t, 'index.crashSoon');
  invoke(sandbox, 'c1');
  invoke(sandbox, 'c2');
  const answers = [await sandbox.next(), await sandbox.next()];
  t.match(
    answers.sort((a, b) => ((a as { id: string }).id < (b as { id: string }).id ? -1 : 1)),
    [
      { id: 'c1', ok: false, error: { type: 'RangeError', message: 'boom' } },
      { id: 'c2', ok: false, error: { type: 'RangeError', message: 'boom' } },
    ],
  );
  t.equal(await sandbox.exitCode, 1);
  t.match(sandbox.stderr(), /uncaughtException/);
});

t.test('unknown and malformed frames are reported on stderr and ignored', async (t) => {
  const sandbox = await initialized(t, 'index.handler');
  sandbox.send({ type: 'reticulate' });
  sandbox.connection.write('this is not json\n');
  invoke(sandbox, 'after');
  t.match(await sandbox.next(), { id: 'after', ok: true });
  t.match(sandbox.stderr(), /does not understand/);
  t.match(sandbox.stderr(), /malformed frame/);
});

t.test('invoke before init is answered, not dropped', async (t) => {
  const sandbox = await startSandbox(t);
  await sandbox.next();
  invoke(sandbox, 'early');
  t.match(await sandbox.next(), { id: 'early', ok: false, error: { type: 'Runtime.NotInitialized' } });
});

t.test('the worker closing the socket ends the bootstrap with 0', async (t) => {
  const sandbox = await initialized(t, 'index.handler');
  sandbox.connection.end();
  t.equal(await sandbox.exitCode, 0);
});

t.test('handler names and error shapes (unit)', async (t) => {
  t.same(parseHandlerName('src/my.module.handler'), { modulePath: 'src/my.module', exportName: 'handler' });
  t.throws(() => parseHandlerName('index.'), { name: 'Runtime.MalformedHandlerName' });
  t.throws(() => parseHandlerName('.handler'), { name: 'Runtime.MalformedHandlerName' });
  t.equal(resolveModuleBase('/var/task', 'a/../b'), '/var/task/b', 'dots that stay inside are fine');
  t.throws(() => resolveModuleBase('/var/task', '../task2/x'), { name: 'Runtime.MalformedHandlerName' });
  t.same(toErrorInfo(undefined), { type: 'undefined', message: 'undefined' });
  t.same(toErrorInfo({ name: 'Oops', message: 'custom' }), { type: 'Oops', message: 'custom' });
});
