/**
 * A sandbox is one container with a runtime bootstrap running in it.
 *
 * Contract:
 *  - Life: ready (generic, bootstrap connected and waiting) → specialized (one function version,
 *    for the rest of its life) → dead. It never goes back, and never serves another function.
 *  - `specialize` runs at most once; if it fails the sandbox is destroyed and the error rethrown.
 *  - `invoke` on a dead sandbox rejects with SkiffError `Unavailable`; a handler error resolves
 *    with `ok: false` (the sandbox stays usable); a timeout or the runtime dying rejects with
 *    `FunctionTimeout` / `FunctionOutOfMemory` / `FunctionError`, and the sandbox is destroyed.
 *  - Output is bounded: a result over the sandbox's result limit resolves `ok: false` with error
 *    type RESULT_TOO_LARGE (the runtime refused it; the sandbox stays usable). A frame on the
 *    runtime socket, or a stdout/stderr line, longer than the result limit plus a margin rejects
 *    every call in flight with `FunctionResponseTooLarge` and destroys the sandbox; its bytes are
 *    never held. Output lines are cut at the log line limit.
 *  - `destroy` is idempotent. Once it resolves, no process, mount, cgroup or directory of the
 *    sandbox remains.
 *  - `onDeath` listeners run once, when the sandbox dies for any reason (destroy included); a
 *    listener added to a dead sandbox runs at once. `state` is 'dead' before any of them runs.
 *
 * This file holds the contracts of worker/sandbox/ (Sandbox, SandboxFactory, SandboxPool): the
 * instance set and the pool are written against them, runc-sandbox.ts and sandbox-pool.ts
 * implement them, and test/support/fake-sandbox.ts fakes them for tests without root.
 */
import type { ErrorInfo, FunctionSpec, InvokeMessage } from '../../runtime/protocol/messages.js';

export type SandboxState = 'ready' | 'specialized' | 'dead';

/**
 * A line of a sandbox's output: console output of an invocation (exactly attributed), or a line
 * of the container's stdout/stderr (attributed to the invocation running then, if only one was).
 */
export interface OutputLine {
  invocationId: string | null;
  stream: 'stdout' | 'stderr';
  text: string;
  /** ms since epoch */
  at: number;
}

export type InvokeOutcome = { ok: true; value: unknown; durationMs: number } | { ok: false; error: ErrorInfo; durationMs: number };

/**
 * Time spent in each step of making a sandbox, for the cold-start breakdown. The steps run one
 * after the other: mount (preparing the bundle), runc (`runc run`: namespaces, cgroups, the
 * container's mounts), bootstrap (the runtime's start until its hello). Inside mount, three parts
 * run at once: overlay (the root), task (the shared task mount point), spec (config.json and the
 * socket listening).
 */
export interface CreationTimings {
  mountMs: number;
  runcMs: number;
  bootstrapMs: number;
  overlayMs: number;
  taskMs: number;
  specMs: number;
}

export interface Sandbox {
  readonly id: string;
  readonly runtime: string;
  readonly state: SandboxState;
  readonly memoryMb: number;
  readonly created: CreationTimings;
  /**
   * Binds `codeDir` read-only at /var/task, applies the function's limits, gives it a way out to
   * the network if `egress` (otherwise it has loopback only), and loads its handler.
   */
  specialize(fn: FunctionSpec, codeDir: string, options?: { egress?: boolean }): Promise<{ bindMs: number; initMs: number }>;
  /**
   * With `onChunk` the invocation streams: a streaming handler's bytes go there, in order, before
   * the outcome (whose value is then null); more than the sandbox's stream limit rejects with
   * `FunctionResponseTooLarge` and destroys the sandbox.
   */
  invoke(
    message: Omit<InvokeMessage, 'type' | 'stream'>,
    timeoutMs: number,
    onChunk?: (data: Buffer, contentType: string | undefined) => void,
  ): Promise<InvokeOutcome>;
  destroy(reason: string): Promise<void>;
  onDeath(listener: (reason: string) => void): void;
  /** The last bytes the container wrote to stdout and stderr. */
  recentOutput(): string;
  /** Every output line from now on, in order per stream. */
  onOutput(listener: (line: OutputLine) => void): void;
}

/** What a container's root is made of: an image's layers and the command that starts its bootstrap. */
export interface RuntimeImage {
  runtime: string;
  /** Layer digests, bottom first: two roots with the same layers are the same root. */
  layers: string[];
  /** The unpacked layers as overlayfs lower directories, top first. */
  lowerDirs: string[];
  command: string[];
}

/** Same layers and same command: a pooled sandbox already runs that command (a `provided` image's may differ). */
export function sameRoot(a: RuntimeImage | undefined, b: RuntimeImage): boolean {
  return (
    a !== undefined &&
    a.runtime === b.runtime &&
    a.layers.length === b.layers.length &&
    a.layers.every((layer, i) => layer === b.layers[i]) &&
    a.command.length === b.command.length &&
    a.command.every((arg, i) => arg === b.command[i])
  );
}

/** One creation, told to the factory's creation listeners (metrics). */
export type CreationEvent = { runtime: string; ok: true; timings: CreationTimings; totalMs: number } | { runtime: string; ok: false; totalMs: number };

/**
 * Makes sandboxes.
 *
 * Contract:
 *  - `create` resolves with a sandbox in state 'ready' (its bootstrap connected and waiting), of
 *    `image`'s runtime, limited to `memoryMb`, whose `created` holds the time of each step. It may
 *    wait for a turn first (creations are CPU-bound; the factory bounds how many run at once).
 *  - A creation that fails rejects (`Unavailable` when the host could not make it), and what it
 *    had made is destroyed: no process, mount, cgroup or directory of it remains.
 *  - Every creation, failed or not, is told to each `onCreation` listener once, after it ended and
 *    before `create` settles.
 *  - The factory tracks every sandbox it made until that sandbox is fully destroyed, wherever it
 *    is (pooled, serving, being torn down): `destroyAll` destroys them all and waits for teardowns
 *    already under way.
 */
export interface SandboxFactory {
  create(image: RuntimeImage, memoryMb: number): Promise<Sandbox>;
  onCreation(listener: (event: CreationEvent) => void): void;
  destroyAll(reason: string): Promise<void>;
}

/**
 * Ready sandboxes made ahead of time, per runtime, so a cold start can skip creation.
 *
 * Contract:
 *  - `take` never waits: it hands over a 'ready' sandbox of `runtime` or undefined, and starts a
 *    refill either way. A sandbox taken is the caller's: the pool forgets it (and never destroys it).
 *  - A pooled sandbox that dies leaves the pool at once; it is never handed out.
 *  - Each `take` counts as demand for `runtime`, sandbox or not: each runtime's target follows the
 *    demand it has seen, between a floor and a max, and only as far as memory can spare.
 *  - `refill` makes sandboxes in the background, a bounded number at once, up to each runtime's
 *    target, only while the worker has memory to spare; calls while one is under way join it. It
 *    resolves when the pool is at its targets, or when filling stopped (no memory, creations
 *    failing); it never rejects. Sandboxes over a target (demand decayed) are destroyed by the
 *    pool's own adjustments, never one taken.
 *  - `reservedMb` is the memory the ready sandboxes and those being made hold; `sizes` counts the
 *    ready ones per runtime, `targets` what each runtime aims for now.
 *  - After `shutdown` resolves the pool holds nothing, makes nothing more, and every sandbox it
 *    held is destroyed (one being made meanwhile is destroyed as soon as it is made).
 */
export interface SandboxPool {
  take(runtime: string): Sandbox | undefined;
  refill(): Promise<void>;
  sizes(): Record<string, number>;
  targets(): Record<string, number>;
  reservedMb(): number;
  shutdown(): Promise<void>;
}
