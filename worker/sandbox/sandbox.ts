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
 *  - `onDeath` listeners run once, when the sandbox dies for any reason (destroy included).
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

export type InvokeOutcome =
  | { ok: true; value: unknown; durationMs: number }
  | { ok: false; error: ErrorInfo; durationMs: number };

/** Time spent in each step of making a sandbox, for the cold-start breakdown. */
export interface CreationTimings {
  mountMs: number;
  runcMs: number;
  bootstrapMs: number;
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
  invoke(message: Omit<InvokeMessage, 'type'>, timeoutMs: number): Promise<InvokeOutcome>;
  destroy(reason: string): Promise<void>;
  onDeath(listener: (reason: string) => void): void;
  /** The last bytes the container wrote to stdout and stderr. */
  recentOutput(): string;
  /** Every output line from now on, in order per stream. */
  onOutput(listener: (line: OutputLine) => void): void;
}
