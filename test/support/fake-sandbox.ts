/**
 * Fakes of the sandbox contracts (worker/sandbox/sandbox.ts), for tests of what is built on them
 * (the instance set, the pool) without root, runc or a runtime. They keep the contracts — life
 * ready → specialized → dead, `invoke` on a dead sandbox rejects `Unavailable`, death listeners
 * run once, `destroy` is idempotent — and let the test decide the rest: what a call answers and
 * when (a promise the test resolves), when a creation or a specialization ends or fails, and when
 * a sandbox dies. Nothing here waits for time.
 */
import { SkiffError } from '../../infra/errors.js';
import type { FunctionSpec, InvokeMessage } from '../../runtime/protocol/messages.js';
import type {
  CreationEvent,
  CreationTimings,
  InvokeOutcome,
  OutputLine,
  RuntimeImage,
  Sandbox,
  SandboxFactory,
  SandboxState,
} from '../../worker/sandbox/sandbox.js';

/** A promise and the functions that settle it. */
export interface Deferred<T> {
  promise: Promise<T>;
  resolve(value: T): void;
  reject(error: unknown): void;
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Waits until `condition` holds, looking again after each turn of the event loop (so background
 * work such as a pool refill can run); fails after `turns` turns rather than hanging. A condition
 * wait, not a time wait: nothing here depends on how fast the machine is.
 */
export async function until(condition: () => boolean, what = 'the condition', turns = 10_000): Promise<void> {
  for (let i = 0; i < turns; i++) {
    if (condition()) return;
    await new Promise((resolve) => setImmediate(resolve));
  }
  throw new Error(`${what} did not come true in ${turns} turns of the event loop`);
}

/** Lets `count` turns of the event loop pass: for asserting that something has not happened (yet). */
export async function turns(count = 10): Promise<void> {
  for (let i = 0; i < count; i++) await new Promise((resolve) => setImmediate(resolve));
}

/** What a fake call answers: an outcome, or a promise of one the test settles later. */
export type InvokeBehaviour = (message: Omit<InvokeMessage, 'type'>, sandbox: FakeSandbox) => InvokeOutcome | Promise<InvokeOutcome>;

/** By default a call answers at once with its event. */
export const echo: InvokeBehaviour = (message) => ({ ok: true, value: message.event, durationMs: 1 });

export interface FakeSandboxOptions {
  id: string;
  runtime: string;
  memoryMb: number;
  invoke?: InvokeBehaviour;
  /** Awaited by `specialize` before it succeeds; a rejection fails the specialization. */
  specialize?: () => Promise<void>;
}

export class FakeSandbox implements Sandbox {
  readonly id: string;
  readonly runtime: string;
  state: SandboxState = 'ready';
  memoryMb: number;
  readonly created: CreationTimings = { mountMs: 1, runcMs: 1, bootstrapMs: 1, overlayMs: 1, taskMs: 1, specMs: 1 };
  /** What it was specialized for (undefined while ready). */
  specializedFor: { fn: FunctionSpec; codeDir: string; egress: boolean } | undefined;
  /** Every call made on it, in order. */
  readonly calls: Array<Omit<InvokeMessage, 'type'>> = [];
  /** Calls under way. */
  inFlight = 0;
  /** Why it died; undefined while alive. */
  deathReason: string | undefined;
  /** How many times `destroy` was called (it tears down once). */
  destroyCalls = 0;
  invokeBehaviour: InvokeBehaviour;
  private readonly specializeGate: (() => Promise<void>) | undefined;
  private readonly deathListeners: Array<(reason: string) => void> = [];
  private readonly outputListeners: Array<(line: OutputLine) => void> = [];
  /** Rejects the calls in flight when the sandbox dies under them. */
  private readonly dying = deferred<never>();

  constructor(options: FakeSandboxOptions) {
    this.id = options.id;
    this.runtime = options.runtime;
    this.memoryMb = options.memoryMb;
    this.invokeBehaviour = options.invoke ?? echo;
    this.specializeGate = options.specialize;
    this.dying.promise.catch(() => undefined);
  }

  async specialize(fn: FunctionSpec, codeDir: string, options: { egress?: boolean } = {}): Promise<{ bindMs: number; initMs: number }> {
    if (this.state !== 'ready') throw new SkiffError('Unavailable', `sandbox ${this.id} is ${this.state}, not ready`);
    this.state = 'specialized';
    try {
      await this.specializeGate?.();
      if (this.deathReason !== undefined) throw new SkiffError('Unavailable', `sandbox ${this.id} died while it was specialized`);
    } catch (error) {
      await this.destroy('specialization failed');
      throw error;
    }
    this.specializedFor = { fn, codeDir, egress: options.egress ?? false };
    this.memoryMb = fn.memoryMb;
    return { bindMs: 1, initMs: 1 };
  }

  async invoke(message: Omit<InvokeMessage, 'type'>, _timeoutMs: number): Promise<InvokeOutcome> {
    if (this.state === 'dead') throw new SkiffError('Unavailable', `sandbox ${this.id} is dead`);
    this.calls.push(message);
    this.inFlight++;
    try {
      return await Promise.race([Promise.resolve(this.invokeBehaviour(message, this)), this.dying.promise]);
    } finally {
      this.inFlight--;
    }
  }

  destroy(reason: string): Promise<void> {
    this.destroyCalls++;
    this.kill(reason, new SkiffError('Unavailable', `sandbox ${this.id} was destroyed during the call (${reason})`));
    return Promise.resolve();
  }

  /** The runtime dies (a crash, the OOM killer): calls in flight reject with `error`, then it is destroyed. */
  die(
    reason = 'runtime exited',
    error: SkiffError = new SkiffError('FunctionError', 'runtime exited during the call', { errorType: 'Runtime.ExitError' }),
  ): void {
    this.kill(reason, error);
  }

  onDeath(listener: (reason: string) => void): void {
    if (this.state === 'dead') listener('dead');
    else this.deathListeners.push(listener);
  }

  recentOutput(): string {
    return '';
  }

  onOutput(listener: (line: OutputLine) => void): void {
    this.outputListeners.push(listener);
  }

  /** Writes a line as the sandbox's container would. */
  print(text: string, stream: 'stdout' | 'stderr' = 'stdout', invocationId: string | null = null): void {
    for (const listener of this.outputListeners) listener({ invocationId, stream, text, at: Date.now() });
  }

  private kill(reason: string, error: SkiffError): void {
    if (this.state === 'dead') return;
    this.state = 'dead';
    this.deathReason = reason;
    this.dying.reject(error);
    for (const listener of this.deathListeners.splice(0)) listener(reason);
  }
}

/**
 * A factory of fake sandboxes. By default a creation succeeds at once; `hold()` makes the next
 * creations wait until the test releases them, `failNext()` makes the next one fail.
 */
export class FakeSandboxFactory implements SandboxFactory {
  /** Every sandbox made, in order. */
  readonly made: FakeSandbox[] = [];
  /** Every creation asked for: the image and memory, in order. */
  readonly asked: Array<{ image: RuntimeImage; memoryMb: number }> = [];
  /** Creations under way (asked for, not yet settled), and the most there were at once. */
  creating = 0;
  mostCreating = 0;
  /** What the sandboxes made from now on answer to calls. */
  invoke: InvokeBehaviour = echo;
  /** Awaited by the specialization of sandboxes made from now on. */
  specialize: (() => Promise<void>) | undefined;
  private readonly gates: Array<Deferred<void>> = [];
  private readonly failures: unknown[] = [];
  private holding = false;
  private readonly listeners: Array<(event: CreationEvent) => void> = [];
  private counter = 0;

  /** From now on each creation waits until `release` lets it finish (in the order asked). */
  hold(): void {
    this.holding = true;
  }

  /** Lets the `count` oldest waiting creations finish, and stops holding new ones if `stop`. */
  release(count = Infinity, stop = true): void {
    if (stop) this.holding = false;
    for (const gate of this.gates.splice(0, count)) gate.resolve();
  }

  /** Creations waiting for `release`. */
  waiting(): number {
    return this.gates.length;
  }

  /** The next creation rejects with `error` (after its gate, if held). */
  failNext(error: unknown = new SkiffError('Unavailable', 'could not create a sandbox (fake)')): void {
    this.failures.push(error);
  }

  async create(image: RuntimeImage, memoryMb: number): Promise<FakeSandbox> {
    this.asked.push({ image, memoryMb });
    this.creating++;
    this.mostCreating = Math.max(this.mostCreating, this.creating);
    try {
      if (this.holding) {
        const gate = deferred();
        this.gates.push(gate);
        await gate.promise;
      }
      if (this.failures.length > 0) {
        const error = this.failures.shift();
        this.tell({ runtime: image.runtime, ok: false, totalMs: 1 });
        throw error;
      }
      const sandbox = new FakeSandbox({
        id: `fake${this.counter++}`,
        runtime: image.runtime,
        memoryMb,
        invoke: (message, self) => this.invoke(message, self),
        ...(this.specialize ? { specialize: this.specialize } : {}),
      });
      this.made.push(sandbox);
      this.tell({ runtime: image.runtime, ok: true, timings: sandbox.created, totalMs: 3 });
      return sandbox;
    } finally {
      this.creating--;
    }
  }

  onCreation(listener: (event: CreationEvent) => void): void {
    this.listeners.push(listener);
  }

  async destroyAll(reason: string): Promise<void> {
    await Promise.all(this.live().map((sandbox) => sandbox.destroy(reason)));
  }

  /** Sandboxes made and not dead. */
  live(): FakeSandbox[] {
    return this.made.filter((sandbox) => sandbox.state !== 'dead');
  }

  private tell(event: CreationEvent): void {
    for (const listener of this.listeners) listener(event);
  }
}

/** A runtime image as a fake factory needs it (nothing is read from it). */
export function fakeImage(runtime = 'nodejs20', layers: string[] = [`sha256:${runtime}-base`]): RuntimeImage {
  return { runtime, layers, lowerDirs: layers.map((layer) => `/nonexistent/${layer}`), command: ['/bin/false'] };
}
