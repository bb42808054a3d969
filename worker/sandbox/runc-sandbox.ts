/**
 * Sandboxes made with an OCI runtime (runc): how a container is made, specialized and destroyed.
 *
 * Errors: this is where the host's failures get their meaning for a call. A sandbox that cannot be
 * made because of the host (a HostError, a failed system call) is `Unavailable`, with the failure
 * as its cause; a bug is rethrown as it is. A call ends by its code: `FunctionTimeout` and
 * `FunctionResponseTooLarge` stand, a closed channel is the runtime's death (`FunctionOutOfMemory`
 * or `FunctionError`). A teardown that fails after one of these is logged, never put in its place.
 */
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import { SkiffError, isSkiffError } from '../../infra/errors.js';
import { isErrnoError, isHostError } from '../../infra/host-error.js';
import type { Logger } from '../../infra/log.js';
import { RUNTIME_SOCKET_NAME, cutMarker, type FunctionSpec, type InvokeMessage } from '../../runtime/protocol/messages.js';
import { memoryCharged, oomKills, removeCgroup, setCpuCeiling, setCpuLimits, setMemoryLimit } from './cgroups.js';
import { bootCpuLimits, cpuLimits } from './cpu-limits.js';
import type { IdRanges } from './id-ranges.js';
import { bindReadOnly, makeSharedMountPoint, mountOverlay, unmountTree } from './mounts.js';
import type { EgressNetwork } from './egress-network.js';
import { buildSandboxSpec } from './oci-spec.js';
import type { OciRuntime } from './runc.js';
import { cutLine } from '../../runtime/protocol/log-lines.js';
import { LineCutter, OutputTail } from './output-lines.js';
import { FRAME_MARGIN_BYTES, RuntimeChannel, type ChunkListener } from './runtime-channel.js';
import { Turns } from './turns.js';
import type { CommandRunner } from '../process/command-runner.js';
import type { CreationEvent, CreationTimings, InvokeOutcome, OutputLine, RuntimeImage, Sandbox, SandboxFactory, SandboxState } from './sandbox.js';

export interface SandboxFactoryOptions {
  oci: OciRuntime;
  /** Runs the mount commands (the worker's launcher, worker/process/launcher.ts). */
  launcher: CommandRunner;
  workerId: string;
  /** Each sandbox gets a directory here: bundle, overlay upper/work and task dirs. */
  sandboxesDir: string;
  /** Each sandbox's socket directory is made here (a short path: sockets have a length limit). */
  socketsDir: string;
  idRanges: IdRanges;
  pidsLimit: number;
  /** Least CPU ceiling of a function once specialized, in cores (cpu-limits.ts). */
  cpuFloorCores: number;
  /** The host's CPUs, read once at start (a container's CPU ceiling is a share of them). */
  hostCpus: number;
  tmpSizeMb: number;
  noFileLimit: number;
  logLimitBytes: number;
  /** Largest result a runtime may send (told to it at init); a frame past it plus a margin stops the sandbox. */
  maxResultBytes: number;
  /** Most bytes a streamed invocation may send; past it the sandbox is stopped (runtime-channel.ts). */
  maxStreamBytes: number;
  /** Longest log line kept; longer ones are cut (in the runtime, and again here for stdout/stderr). */
  logLineLimitBytes: number;
  bootTimeoutMs: number;
  /** Creations under way at once; more wait their turn (worker/sandbox/turns.ts). */
  maxConcurrentCreates: number;
  /** Network egress for functions that ask for it; absent: no sandbox ever gets a network. */
  egress?: EgressNetwork;
  log: Logger;
}

/** uid the bootstrap runs as inside the container; root inside is never used. */
const SANDBOX_UID = 1000;

/** Makes runc sandboxes: the contract is on SandboxFactory (sandbox.ts). */
export class RuncSandboxFactory implements SandboxFactory {
  private counter = 0;
  /** Every sandbox made and not yet fully destroyed, wherever it is (pool, instance, teardown). */
  private readonly live = new Set<Sandbox>();
  private readonly turns: Turns;
  constructor(private readonly options: SandboxFactoryOptions) {
    this.turns = new Turns(options.maxConcurrentCreates);
  }

  private readonly creationListeners: Array<(event: CreationEvent) => void> = [];

  /** Tells `listener` about every creation, for the pool and for calls alike (metrics). */
  onCreation(listener: (event: CreationEvent) => void): void {
    this.creationListeners.push(listener);
  }

  /** Destroys every sandbox still alive and waits for teardowns already under way. */
  async destroyAll(reason: string): Promise<void> {
    await Promise.all([...this.live].map((sandbox) => sandbox.destroy(reason)));
  }

  cgroupParent(): string {
    return `/skiff/${this.options.workerId}`;
  }

  /** Makes a container of `image` and waits until its bootstrap says hello; waits for a turn first. */
  async create(image: RuntimeImage, memoryMb: number): Promise<Sandbox> {
    const asked = performance.now();
    return this.turns.run(() => this.createNow(image, memoryMb, performance.now() - asked));
  }

  private async createNow(image: RuntimeImage, memoryMb: number, turnMs: number): Promise<Sandbox> {
    const started = performance.now();
    try {
      const sandbox = await this.make(image, memoryMb);
      const ms = (value: number): number => Math.round(value * 10) / 10;
      const timings = Object.fromEntries(Object.entries(sandbox.created).map(([phase, value]) => [phase, ms(value)]));
      this.options.log.debug(
        { sandbox: sandbox.id, runtime: image.runtime, turnMs: ms(turnMs), totalMs: ms(performance.now() - started), ...timings },
        'sandbox created',
      );
      for (const listener of this.creationListeners)
        listener({ runtime: image.runtime, ok: true, timings: sandbox.created, totalMs: performance.now() - started });
      return sandbox;
    } catch (error) {
      for (const listener of this.creationListeners) listener({ runtime: image.runtime, ok: false, totalMs: performance.now() - started });
      throw error;
    }
  }

  private async make(image: RuntimeImage, memoryMb: number): Promise<Sandbox> {
    const o = this.options;
    // runc's state and the cgroup path are per worker, so a short id is unique enough.
    const id = `s${Date.now().toString(36)}${(this.counter++).toString(36)}`;
    const dir = join(o.sandboxesDir, id);
    const socketDir = join(o.socketsDir, id);
    const hostIdBase = o.idRanges.take();
    const cgroupPath = `${this.cgroupParent()}/${id}`;
    const sandbox = new RuncSandbox(id, image.runtime, dir, socketDir, cgroupPath, memoryMb, o, () => o.idRanges.give(hostIdBase));
    this.live.add(sandbox);
    void sandbox.destroyed.then(() => this.live.delete(sandbox));
    try {
      const t0 = performance.now();
      const since = (start: number) => (): number => performance.now() - start;
      await settled([...['upper', 'work', 'rootfs', 'task'].map((sub) => join(dir, sub)), socketDir].map((d) => mkdir(d, { recursive: true, mode: 0o755 })));
      // The three parts of the bundle do not depend on one another: they run at once.
      const [overlayMs, taskMs, specMs] = await settled([
        mountOverlay(o.launcher, image.lowerDirs.join(':'), join(dir, 'upper'), join(dir, 'work'), join(dir, 'rootfs')).then(since(t0)),
        makeSharedMountPoint(o.launcher, join(dir, 'task')).then(since(t0)),
        this.writeSpec(image, memoryMb, { dir, socketDir, hostIdBase, cgroupPath })
          .then(() => sandbox.channel.listen(join(socketDir, RUNTIME_SOCKET_NAME)))
          .then(since(t0)),
      ]);
      const t1 = performance.now();
      const hello = sandbox.channel.hello(o.bootTimeoutMs);
      hello.catch(() => undefined); // awaited below; runc failing first must not leave it unhandled
      const stdio = await o.oci.run(id, dir);
      sandbox.attachOutput(stdio.stdout, stdio.stderr);
      const t2 = performance.now();
      await hello;
      sandbox.created = { mountMs: t1 - t0, runcMs: t2 - t1, bootstrapMs: performance.now() - t2, overlayMs, taskMs, specMs };
      sandbox.markReady();
      return sandbox;
    } catch (error) {
      await sandbox.destroyAfterFailure('creation failed');
      throw creationError(image.runtime, error);
    }
  }

  /** Writes the OCI config of a sandbox into its bundle. */
  private async writeSpec(
    image: RuntimeImage,
    memoryMb: number,
    at: { dir: string; socketDir: string; hostIdBase: number; cgroupPath: string },
  ): Promise<void> {
    const o = this.options;
    const spec = buildSandboxSpec({
      hostname: 'skiff',
      args: image.command,
      env: ['PATH=/usr/local/bin:/usr/bin:/bin', 'HOME=/tmp', 'LANG=C.UTF-8'],
      hostIdBase: at.hostIdBase,
      uid: SANDBOX_UID,
      memoryBytes: memoryMb * 1024 * 1024,
      cpu: bootCpuLimits(memoryMb, o.hostCpus),
      pidsLimit: o.pidsLimit,
      tmpSizeMb: o.tmpSizeMb,
      noFileLimit: o.noFileLimit,
      cgroupsPath: at.cgroupPath,
      socketDir: at.socketDir,
      taskDir: join(at.dir, 'task'),
    });
    await writeFile(join(at.dir, 'config.json'), JSON.stringify(spec));
  }
}

/**
 * Waits for every one of `steps`, then rejects with the first failure if any failed: a step still
 * running when another fails could leave a mount behind the teardown that follows.
 */
async function settled<T extends readonly unknown[]>(steps: { [K in keyof T]: Promise<T[K]> }): Promise<T> {
  const results = await Promise.allSettled(steps);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
  return results.map((r) => (r as PromiseFulfilledResult<unknown>).value) as unknown as T;
}

/**
 * What a failed creation means for the call: the host cannot make a sandbox now (`Unavailable`,
 * which the caller may try again) when the host failed it: a HostError (runc, a mount, a socket
 * path, the runtime not coming up), a failed system call (a full disk, a permission), or the
 * runtime refused while booting (a SkiffError from its channel). Anything else is a bug, as it is.
 */
function creationError(runtime: string, error: unknown): unknown {
  if (!isHostError(error) && !isErrnoError(error) && !isSkiffError(error)) return error;
  return new SkiffError('Unavailable', `could not create a ${runtime} sandbox: ${error.message}`, { cause: error });
}

class RuncSandbox implements Sandbox {
  readonly channel: RuntimeChannel;
  state: SandboxState = 'ready';
  created: CreationTimings = { mountMs: 0, runcMs: 0, bootstrapMs: 0, overlayMs: 0, taskMs: 0, specMs: 0 };
  private readonly output: OutputTail;
  /** Bytes of stdout/stderr passed to output listeners; past logLimitBytes the rest is dropped. */
  private outputBytes = 0;
  private readonly outputListeners: Array<(line: OutputLine) => void> = [];
  private readonly inFlight = new Set<string>();
  /** Set by teardown: the memory cgroup's OOM killer had killed a process of this sandbox. */
  private oomKilled = false;
  /** Whether an egress interface was (or was being) attached: teardown removes it. */
  private networked = false;
  /** Resolves when the container's stdout and stderr have both ended (its processes are gone). */
  private outputEnded: Promise<unknown> = Promise.resolve();
  private dying: Promise<void> | undefined;
  private readonly deathListeners: Array<(reason: string) => void> = [];
  private markDestroyed!: () => void;
  /** Resolves when teardown has finished (successfully or not). */
  readonly destroyed = new Promise<void>((resolve) => (this.markDestroyed = resolve));

  constructor(
    readonly id: string,
    readonly runtime: string,
    private readonly dir: string,
    private readonly socketDir: string,
    private readonly cgroupPath: string,
    public memoryMb: number,
    private readonly options: SandboxFactoryOptions,
    private readonly releaseIds: () => void,
  ) {
    this.output = new OutputTail(options.logLimitBytes);
    this.channel = new RuntimeChannel({
      limits: { maxResultBytes: options.maxResultBytes, maxLogLineBytes: options.logLineLimitBytes },
      maxFrameBytes: options.maxResultBytes + FRAME_MARGIN_BYTES,
      maxStreamBytes: options.maxStreamBytes,
    });
    // Cut again here: the runtime is asked to cut its lines, not trusted to. Its marker fits.
    const logLineBytes = options.logLineLimitBytes + cutMarker(options.logLineLimitBytes).length;
    this.channel.onLog = (log) => this.emit({ invocationId: log.id, stream: log.stream, text: cutLine(String(log.text), logLineBytes), at: log.at });
  }

  markReady(): void {
    // The runtime process ending at any time after this kills the sandbox.
    this.channel.onClose(
      () => void this.destroy('runtime exited').catch((error: unknown) => this.options.log.error({ err: error, sandbox: this.id }, 'destroy failed')),
    );
  }

  attachOutput(stdout: Readable, stderr: Readable): void {
    this.outputEnded = Promise.all([stdout, stderr].map((s) => new Promise((resolve) => s.once('close', resolve))));
    // A line is as long as the function makes it, but only its first logLineLimitBytes are kept;
    // one that runs past the frame cap is an endless line, and the sandbox is stopped.
    const runawayBytes = this.options.maxResultBytes + FRAME_MARGIN_BYTES;
    for (const [stream, source] of [
      ['stdout', stdout],
      ['stderr', stderr],
    ] as const) {
      const lines = new LineCutter({
        maxLineBytes: this.options.logLineLimitBytes,
        runawayBytes,
        onLine: (line) => {
          this.output.append(`${line}\n`);
          this.emitRaw(stream, line);
        },
        onRunaway: (limit) =>
          this.channel.abort(
            new SkiffError('FunctionResponseTooLarge', `the function wrote a line over ${limit} bytes to its ${stream}; its sandbox was stopped`),
          ),
      });
      source.on('data', (chunk: Buffer) => lines.push(chunk));
      source.on('end', () => lines.end());
    }
  }

  onOutput(listener: (line: OutputLine) => void): void {
    this.outputListeners.push(listener);
  }

  /** A raw line belongs to the invocation running when it came, if exactly one was. */
  private emitRaw(stream: 'stdout' | 'stderr', text: string): void {
    if (this.outputBytes > this.options.logLimitBytes) return;
    this.outputBytes += Buffer.byteLength(text);
    const [only] = this.inFlight.size === 1 ? this.inFlight : [null];
    if (this.outputBytes > this.options.logLimitBytes) text = `[skiff: container output exceeded ${this.options.logLimitBytes} bytes; the rest is dropped]`;
    this.emit({ invocationId: only ?? null, stream, text, at: Date.now() });
  }

  private emit(line: OutputLine): void {
    for (const listener of this.outputListeners) listener(line);
  }

  recentOutput(): string {
    return this.output.toString();
  }

  async specialize(fn: FunctionSpec, codeDir: string, options: { egress?: boolean } = {}): Promise<{ bindMs: number; initMs: number }> {
    if (this.state !== 'ready') throw new SkiffError('Unavailable', `sandbox ${this.id} is ${this.state}, not ready`);
    this.state = 'specialized';
    try {
      const t0 = performance.now();
      if (options.egress) {
        const egress = this.options.egress;
        if (!egress) throw new SkiffError('Unavailable', 'this worker offers no network egress');
        this.networked = true;
        await egress.attach(this.id, (await this.options.oci.state(this.id)).pid);
      }
      await bindReadOnly(this.options.launcher, codeDir, join(this.dir, 'task'));
      const cpus = this.options.hostCpus;
      const boot = bootCpuLimits(fn.memoryMb, cpus);
      if (fn.memoryMb !== this.memoryMb) {
        await setMemoryLimit(this.cgroupPath, fn.memoryMb * 1024 * 1024);
        await setCpuLimits(this.cgroupPath, boot);
        this.memoryMb = fn.memoryMb;
      }
      const bindMs = performance.now() - t0;
      const initMs = await this.channel.init(fn);
      // The handler is loaded with the boot ceiling; its calls run under the function's own.
      const running = cpuLimits(fn.memoryMb, cpus, this.options.cpuFloorCores);
      if (running.quotaUs !== boot.quotaUs) await setCpuCeiling(this.cgroupPath, running);
      return { bindMs, initMs };
    } catch (error) {
      await this.destroyAfterFailure('specialization failed');
      throw error;
    }
  }

  async invoke(message: Omit<InvokeMessage, 'type' | 'stream'>, timeoutMs: number, onChunk?: ChunkListener): Promise<InvokeOutcome> {
    if (this.state === 'dead') throw new SkiffError('Unavailable', `sandbox ${this.id} is dead`);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new SkiffError('FunctionTimeout', `function timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    this.inFlight.add(message.id);
    try {
      const result = await Promise.race([this.channel.invoke(message, onChunk), timeout]);
      return result.ok ? { ok: true, value: result.value, durationMs: result.durationMs } : { ok: false, error: result.error, durationMs: result.durationMs };
    } catch (error) {
      if (isHostError(error, 'channel-closed')) throw await this.deathError();
      // The call's own end (a timeout, output over its limit: the channel was aborted), or a bug.
      const reason = isSkiffError(error, 'FunctionTimeout')
        ? 'timeout'
        : isSkiffError(error, 'FunctionResponseTooLarge')
          ? 'output over its limit'
          : 'invoke failed';
      await this.destroyAfterFailure(reason);
      throw error;
    } finally {
      clearTimeout(timer);
      this.inFlight.delete(message.id);
    }
  }

  /** Why the runtime died mid-call: the OOM killer, or a crash (with its last output). */
  private async deathError(): Promise<SkiffError> {
    // The runtime's last words may still be in the pipes: read them while the call is in flight,
    // so they are kept as this invocation's log lines.
    await Promise.race([this.outputEnded, new Promise((resolve) => setTimeout(resolve, 500))]);
    // Teardown reads the OOM count before removing the cgroup (it may already be under way).
    await this.destroyAfterFailure('runtime exited');
    if (this.oomKilled) return new SkiffError('FunctionOutOfMemory', `function exceeded its memory limit of ${this.memoryMb} MiB`);
    const tail = this.output.toString().trim().split('\n').slice(-5).join('\n');
    return new SkiffError('FunctionError', `runtime exited during the call${tail ? `: ${tail}` : ''}`, { errorType: 'Runtime.ExitError' });
  }

  async memoryChargedBytes(): Promise<number> {
    return memoryCharged(this.cgroupPath);
  }

  destroy(reason: string): Promise<void> {
    // Deferred by a tick: teardown closes the channel, whose close listener calls destroy again,
    // and that call must find `dying` already set.
    this.dying ??= Promise.resolve()
      .then(() => this.teardown(reason))
      .finally(() => this.markDestroyed());
    return this.dying;
  }

  /**
   * Destroys the sandbox after a failure that is the one to report: a teardown that fails as well
   * is logged, not thrown in its place.
   */
  async destroyAfterFailure(reason: string): Promise<void> {
    await this.destroy(reason).catch((error: unknown) => this.options.log.error({ err: error, sandbox: this.id, reason }, 'could not destroy sandbox'));
  }

  onDeath(listener: (reason: string) => void): void {
    if (this.state === 'dead') listener('dead');
    else this.deathListeners.push(listener);
  }

  private async teardown(reason: string): Promise<void> {
    this.state = 'dead';
    this.channel.close();
    const errors: unknown[] = [];
    // Whether the OOM killer struck, read while the cgroup still exists: deathError reports it.
    this.oomKilled = await oomKills(this.cgroupPath).then(
      (kills) => kills > 0,
      (error: unknown) => (errors.push(error), false),
    );
    // Each step runs even if an earlier one failed, so one failure leaks as little as possible.
    // The network first, while the container is still there; a container that died before is no
    // matter (its network namespace is held by the egress network until detach).
    if (this.networked) await this.options.egress?.detach(this.id).catch((error: unknown) => errors.push(error));
    let containerGone = true;
    await this.options.oci.delete(this.id).catch((error: unknown) => {
      if (isHostError(error, 'not-found')) return;
      containerGone = false;
      errors.push(error);
    });
    if (containerGone) await removeCgroup(this.cgroupPath).catch((error: unknown) => errors.push(error));
    await unmountTree(this.options.launcher, join(this.dir, 'task'), join(this.dir, 'rootfs')).catch((error: unknown) => errors.push(error));
    if (errors.length === 0) await rm(this.dir, { recursive: true, force: true }).catch((error: unknown) => errors.push(error));
    await rm(this.socketDir, { recursive: true, force: true }).catch((error: unknown) => errors.push(error));
    // A container that may still run keeps its id range: no new sandbox may share its host uids.
    if (containerGone) this.releaseIds();
    for (const listener of this.deathListeners.splice(0)) listener(reason);
    if (errors.length > 0) throw new AggregateError(errors, `sandbox ${this.id} was not fully removed`);
  }
}
