/**
 * The process inside every Node.js sandbox: `node /opt/skiff/runtime/nodejs/bootstrap.js`.
 *
 * It connects to the worker's socket, says hello, and then waits: a pooled sandbox is generic
 * until the worker sends `init`, which loads one function's handler. After that it answers every
 * `invoke` with exactly one `result` (see ../protocol/messages.ts for the whole contract).
 *
 * Only Node builtins and ../protocol may be imported: the container has no node_modules of ours.
 * Console output made while handling an invocation is sent to the worker as `log` frames tagged
 * with its id (console-capture.ts); other output stays on stdout/stderr, where the worker collects
 * it. The bootstrap's own diagnostics go to stderr with a `skiff-bootstrap:` prefix.
 */
import net, { type Socket } from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { readFrames, writeFrame, writeFrameText } from '../protocol/framing.js';
import {
  DEFAULT_RUNTIME_LIMITS,
  PROTOCOL_VERSION,
  RESULT_TOO_LARGE,
  RUNTIME_SOCKET_DIR,
  RUNTIME_SOCKET_NAME,
  TASK_ROOT,
  type ErrorInfo,
  type FunctionSpec,
  type InitDoneMessage,
  type InitFailedMessage,
  type InvokeMessage,
  type RuntimeLimits,
  type RuntimeMessage,
} from '../protocol/messages.js';
import { createContext, functionEnvironment, functionIdentity, type FunctionIdentity, type Handler } from './context.js';
import { captureConsole, invocationScope } from './console-capture.js';
import { runtimeError, toErrorInfo } from './errors.js';
import { runHandler, runStreamingHandler, type Outcome } from './invoke.js';
import { installAwsLambdaGlobal, isStreamingHandler } from './response-stream.js';
import { loadHandler } from './load-handler.js';
import { classifyFrame } from './validate.js';

/**
 * The runtime this image is (`nodejs22`...), the image's command's last argument: one bootstrap
 * serves every Node.js runtime. Images made before it was passed were all nodejs20.
 */
const RUNTIME_NAME = /^nodejs\d+$/.test(process.argv[2] ?? '') ? (process.argv[2] as string) : 'nodejs20';
/** The worker creates the socket just before starting the container, so it may not exist yet. */
const CONNECT_RETRY_MS = 5;
const CONNECT_TIMEOUT_MS = 5_000;
/** How long a crashing bootstrap waits for its last frames to drain before exiting anyway. */
const CRASH_FLUSH_MS = 1_000;
const RUNTIME_DIR = path.dirname(fileURLToPath(import.meta.url));
/** Console output kept per invocation (the worker bounds it again). */
const LOG_BYTES_PER_INVOCATION = 256 * 1024;

interface Loaded {
  handler: Handler;
  identity: FunctionIdentity;
}

function warn(text: string): void {
  process.stderr.write(`skiff-bootstrap: ${text}\n`);
}

/** `undefined` (and functions/symbols) would silently drop the `value` key from the frame. */
function jsonValue(value: unknown): unknown {
  if (value === undefined || typeof value === 'function' || typeof value === 'symbol') return null;
  return value;
}

/** One connection to the worker, and the single function this sandbox is specialized for. */
class Session {
  /** Set by the first init; resolves to undefined when init failed. */
  private loaded: Promise<Loaded | undefined> | undefined;
  private initAnswered = false;
  /** Invocations without a result yet, with the time each arrived (for durationMs). */
  private readonly inFlight = new Map<string, number>();
  private crashing = false;
  /** Set by init: the worker's bounds on what this sandbox sends. */
  private limits: RuntimeLimits = DEFAULT_RUNTIME_LIMITS;
  private readonly logs = captureConsole(
    (id, stream, text) => this.send({ type: 'log', id, stream, text, at: Date.now() }),
    LOG_BYTES_PER_INVOCATION,
    () => this.limits.maxLogLineBytes,
  );

  constructor(
    private readonly socket: Socket,
    private readonly taskRoot: string,
  ) {}

  start(): void {
    // A closed socket means the worker is done with this sandbox (or gone): nothing left to do.
    this.socket.on('close', () => process.exit(this.crashing ? 1 : 0));
    this.socket.on('error', (error) => warn(`runtime socket: ${error.message}`));
    readFrames(
      this.socket,
      (frame) => this.onFrame(frame),
      (error) => warn(`${error.message}: ${String(error.cause)}`),
    );
    this.send({ type: 'hello', protocol: PROTOCOL_VERSION, runtime: RUNTIME_NAME, pid: process.pid });
  }

  private send(message: RuntimeMessage): void {
    writeFrame(this.socket, message);
  }

  private onFrame(frame: unknown): void {
    if (this.crashing) return; // about to exit; the worker learns from the closed socket
    const classified = classifyFrame(frame);
    switch (classified.kind) {
      case 'init':
        if (this.loaded === undefined && classified.message.limits) this.limits = classified.message.limits;
        return this.init(classified.message.function);
      case 'invoke':
        return this.invoke(classified.message);
      case 'badInit':
        warn(`malformed init: ${classified.reason}`);
        return this.init(undefined, runtimeError('Runtime.InvalidInit', classified.reason));
      case 'badInvoke':
        warn(`malformed invoke ${classified.id}: ${classified.reason}`);
        if (this.track(classified.id)) this.answerError(classified.id, { type: 'Runtime.InvalidInvoke', message: classified.reason });
        return;
      case 'unknown':
        warn(`ignoring a frame this runtime does not understand: ${inspect(frame, { breakLength: Infinity })}`);
        return;
    }
  }

  /** `spec` is undefined when the init frame itself was unusable; `problem` then says why. */
  private init(spec: FunctionSpec | undefined, problem?: Error): void {
    if (this.loaded !== undefined) {
      warn('ignoring a second init: a sandbox is specialized only once');
      return;
    }
    this.loaded = spec === undefined ? this.failInit(problem) : this.specialize(spec);
  }

  private async failInit(problem: unknown): Promise<undefined> {
    this.answerInit({ type: 'initFailed', error: toErrorInfo(problem) });
    return undefined;
  }

  /** Environment first: module top-level code may read it while being imported. */
  private async specialize(spec: FunctionSpec): Promise<Loaded | undefined> {
    const started = performance.now();
    try {
      const identity = functionIdentity(spec);
      Object.assign(process.env, functionEnvironment(spec, identity, this.taskRoot, RUNTIME_DIR, process.env.TZ, RUNTIME_NAME));
      process.chdir(this.taskRoot);
      const handler = await loadHandler(this.taskRoot, spec.handler);
      this.answerInit({ type: 'initDone', durationMs: performance.now() - started });
      return { handler, identity };
    } catch (error) {
      return this.failInit(error);
    }
  }

  /** At most one init answer, even if a crash during import already sent initFailed. */
  private answerInit(message: InitDoneMessage | InitFailedMessage): void {
    if (this.initAnswered) return;
    this.initAnswered = true;
    this.send(message);
  }

  private invoke(message: InvokeMessage): void {
    if (!this.track(message.id)) return;
    if (this.loaded === undefined) {
      this.answerError(message.id, { type: 'Runtime.NotInitialized', message: 'invoke received before init' });
      return;
    }
    // Waits for init only if the worker pipelined the invoke; normally this is already settled.
    void this.loaded.then(async (loaded) => {
      if (loaded === undefined) {
        this.answerError(message.id, { type: 'Runtime.InitError', message: 'the function failed to initialize' });
        return;
      }
      const outcome = await invocationScope.run(message.id, () => {
        const handler = loaded.handler;
        if (!isStreamingHandler(handler)) return runHandler(handler, message.event, (complete) => createContext(loaded.identity, message, complete));
        // A streaming handler has no callback: its stream's end is its answer.
        const context = createContext(loaded.identity, message, () => undefined);
        const sink = message.stream ? (data: Buffer, contentType: string | undefined) => this.sendChunk(message.id, data, contentType) : undefined;
        return runStreamingHandler(handler, message.event, context, sink);
      });
      this.logs.forget(message.id);
      this.answer(message.id, outcome);
    });
  }

  /** A streamed invocation's bytes; none once it was answered (a crash failed it already). */
  private sendChunk(id: string, data: Buffer, contentType: string | undefined): void {
    if (!this.inFlight.has(id)) return;
    this.send({ type: 'chunk', id, data: data.toString('base64'), ...(contentType === undefined ? {} : { contentType }) });
  }

  /** Registers an invocation; a duplicate id could not be told apart in the results, so it is refused. */
  private track(id: string): boolean {
    if (this.inFlight.has(id)) {
      warn(`ignoring invoke ${id}: an invocation with that id is already running`);
      return false;
    }
    this.inFlight.set(id, performance.now());
    return true;
  }

  /** Duration since the invoke arrived, or undefined if it was already answered (e.g. by a crash). */
  private settle(id: string): number | undefined {
    const arrived = this.inFlight.get(id);
    if (arrived === undefined) return undefined;
    this.inFlight.delete(id);
    return performance.now() - arrived;
  }

  private answer(id: string, outcome: Outcome): void {
    if (!outcome.ok) {
      this.answerError(id, toErrorInfo(outcome.error));
      return;
    }
    const durationMs = this.settle(id);
    if (durationMs === undefined) return;
    let json: string;
    try {
      // `?? 'null'`: a toJSON may return undefined, which JSON.stringify answers with undefined.
      json = JSON.stringify(jsonValue(outcome.value)) ?? 'null';
    } catch (error) {
      // Stringified before anything is written, so a value JSON rejects (cycles, BigInt, a throwing
      // toJSON) leaves nothing half-sent and can still be reported as this invocation's failure.
      const message = error instanceof Error ? error.message : String(error);
      this.send({ type: 'result', id, ok: false, error: { type: 'Runtime.SerializationError', message }, durationMs });
      return;
    }
    // Measured here, where it is cheap, so a result the worker would refuse never crosses the socket.
    const bytes = Buffer.byteLength(json);
    const limit = this.limits.maxResultBytes;
    if (bytes > limit) {
      const message = `the function's result is ${bytes} bytes of JSON, over the limit of ${limit} bytes`;
      this.send({ type: 'result', id, ok: false, error: { type: RESULT_TOO_LARGE, message }, durationMs });
      return;
    }
    writeFrameText(this.socket, `{"type":"result","id":${JSON.stringify(id)},"ok":true,"value":${json},"durationMs":${JSON.stringify(durationMs)}}`);
  }

  private answerError(id: string, error: ErrorInfo): void {
    const durationMs = this.settle(id);
    if (durationMs === undefined) return;
    this.send({ type: 'result', id, ok: false, error, durationMs });
  }

  /**
   * An exception nobody caught means user code is in an unknown state, as on Lambda: every
   * invocation still running fails with that error, then the process exits and the worker
   * replaces the sandbox.
   */
  crash(origin: string, error: unknown): void {
    warn(`${origin}: ${inspect(error)}`);
    if (this.crashing) return;
    this.crashing = true;
    const info = toErrorInfo(error);
    this.answerInit({ type: 'initFailed', error: info });
    for (const id of [...this.inFlight.keys()]) this.answerError(id, info);
    setTimeout(() => process.exit(1), CRASH_FLUSH_MS);
    this.socket.end(() => process.exit(1));
  }
}

function isRetryable(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === 'ENOENT' || code === 'ECONNREFUSED';
}

function connectOnce(socketPath: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
  });
}

async function connect(socketPath: string): Promise<Socket> {
  const giveUpAt = Date.now() + CONNECT_TIMEOUT_MS;
  for (;;) {
    try {
      return await connectOnce(socketPath);
    } catch (error) {
      if (!isRetryable(error) || Date.now() >= giveUpAt) throw error;
      await sleep(CONNECT_RETRY_MS);
    }
  }
}

let session: Session | undefined;

function fatal(origin: string, error: unknown): void {
  if (session !== undefined) {
    session.crash(origin, error);
    return;
  }
  warn(`${origin} before connecting: ${inspect(error)}`);
  process.exit(1);
}

async function main(): Promise<void> {
  // The overrides exist for tests on the host; inside the container the defaults apply.
  const socketPath = process.env.SKIFF_RUNTIME_SOCKET || path.join(RUNTIME_SOCKET_DIR, RUNTIME_SOCKET_NAME);
  const taskRoot = path.resolve(process.env.SKIFF_TASK_ROOT || TASK_ROOT);
  const socket = await connect(socketPath);
  session = new Session(socket, taskRoot);
  session.start();
}

// Lambda's `awslambda` global (streamifyResponse, HttpResponseStream), there before any handler loads.
installAwsLambdaGlobal();
process.on('uncaughtException', (error) => fatal('uncaughtException', error));
process.on('unhandledRejection', (reason) => fatal('unhandledRejection', reason));
main().catch((error: unknown) => {
  warn(`cannot reach the worker: ${inspect(error)}`);
  process.exit(1);
});
