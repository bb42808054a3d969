/**
 * A child process kept running: `Supervised` starts it, starts it again whenever it exits (after
 * a backoff that doubles while it keeps dying and resets once a run stayed up), and stops it with
 * a bound. The bring-up (main.ts) supervises each server and component it starts with one.
 *
 * Contract:
 * - `start()` makes the first run and rejects if that fails: the caller decides (the bring-up
 *   gives up). From then on, every exit and every failed restart is retried, forever, unless
 *   `isFinal` says the exit was meant (a drained worker exits 0).
 * - Events come in this order per run: `started`, then `exited` (with `restartInMs`, or none when
 *   the exit was final or supervision is stopping); a failed restart emits `startFailed` instead.
 * - After `hold()` or `stop()` no run is started any more; a restart waiting for its backoff is
 *   dropped, and a start in progress is aborted (its `signal`) or, if it succeeds anyway, stopped.
 * - `stop()` sends `stopSignal`, waits up to `stopGraceMs`, then SIGKILLs; it resolves once the
 *   process has exited. It may be called any number of times.
 */
import { EventEmitter } from 'node:events';
import type { OwnedProcess } from '../services/process.js';

export interface Backoff {
  /** Delay before the first restart after a run that stayed up. */
  firstMs: number;
  /** The delay doubles with each exit in a row, up to this. */
  maxMs: number;
  /** A run that stayed up this long resets the delay to `firstMs`. */
  stableMs: number;
}

export const DEFAULT_BACKOFF: Readonly<Backoff> = Object.freeze({ firstMs: 500, maxMs: 30_000, stableMs: 30_000 });

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** How long the run was up, from its start resolving to its exit. */
  upMs: number;
}

export interface SupervisedOptions {
  /** Names the process in events and logs ("redis", "gateway", "worker host-1"). */
  name: string;
  /**
   * Starts one run; resolves with the process once it is up (ready, if the start waits for
   * that). `signal` aborts when supervision stops meanwhile: the start should then end its
   * process and reject.
   */
  start(signal: AbortSignal): Promise<OwnedProcess>;
  /** What `stop()` sends first (SIGTERM; PostgreSQL's fast shutdown is SIGINT). */
  stopSignal?: NodeJS.Signals;
  /** How long `stop()` waits after `stopSignal` before SIGKILL. */
  stopGraceMs: number;
  backoff?: Partial<Backoff>;
  /** An exit that is not restarted: supervision ends (a worker drained by an operator exits 0). */
  isFinal?(exit: Exit): boolean;
}

export interface SupervisedEvents {
  /** A run is up; `run` counts from 1. */
  started: [{ pid: number | undefined; run: number }];
  /** A run ended; `restartInMs` is undefined when no restart follows (final, or stopping). */
  exited: [Exit & { pid: number | undefined; restartInMs: number | undefined; final: boolean }];
  /** A restart failed; the next attempt is in `restartInMs`. */
  startFailed: [{ error: Error; restartInMs: number }];
}

export class Supervised extends EventEmitter<SupervisedEvents> {
  readonly name: string;
  private readonly options: SupervisedOptions;
  private readonly backoff: Backoff;
  private current: OwnedProcess | undefined;
  private starting: Promise<unknown> | undefined;
  private readonly abort = new AbortController();
  private timer: NodeJS.Timeout | undefined;
  private held = false;
  /** Exits and failed starts in a row since the last run that stayed up. */
  private failures = 0;
  private runs = 0;

  constructor(options: SupervisedOptions) {
    super();
    this.name = options.name;
    this.options = options;
    this.backoff = { ...DEFAULT_BACKOFF, ...options.backoff };
  }

  /** The running process' id (undefined between runs). */
  get pid(): number | undefined {
    return this.current && !this.current.hasExited() ? this.current.child.pid : undefined;
  }

  /** The first run; rejects (and supervises nothing) if it cannot be started. */
  async start(): Promise<void> {
    if (this.runs > 0 || this.starting) throw new Error(`${this.name} is already supervised`);
    await this.run();
  }

  /** No more restarts; the current run, if any, keeps running. */
  hold(): void {
    this.held = true;
    clearTimeout(this.timer);
    this.timer = undefined;
    this.abort.abort(new Error(`${this.name} is stopping`));
  }

  /** Ends supervision and the current run: `stopSignal`, then SIGKILL after `stopGraceMs`. */
  async stop(): Promise<void> {
    this.hold();
    await this.starting?.catch(() => undefined);
    await this.current?.stop(this.options.stopSignal ?? 'SIGTERM', this.options.stopGraceMs);
  }

  /** Sends a signal to the current run, without waiting (a last resort when the owner exits). */
  kill(signal: NodeJS.Signals): void {
    if (this.current && !this.current.hasExited()) this.current.child.kill(signal);
  }

  /** Starts one run and watches it; rejects if the start fails. */
  private async run(): Promise<void> {
    const starting = this.options.start(this.abort.signal);
    this.starting = starting;
    let proc: OwnedProcess;
    try {
      proc = await starting;
    } finally {
      this.starting = undefined;
    }
    this.current = proc;
    this.runs++;
    const upSince = performance.now();
    void proc.exited.catch(() => null).then(() => this.exited(proc, Math.round(performance.now() - upSince)));
    this.emit('started', { pid: proc.child.pid, run: this.runs });
    // Stopped while starting, and the start did not notice: end what it made.
    if (this.held) await proc.stop(this.options.stopSignal ?? 'SIGTERM', this.options.stopGraceMs);
  }

  private exited(proc: OwnedProcess, upMs: number): void {
    const exit: Exit = { code: proc.child.exitCode, signal: proc.child.signalCode, upMs };
    const final = !this.held && (this.options.isFinal?.(exit) ?? false);
    if (this.held || final) {
      this.emit('exited', { ...exit, pid: proc.child.pid, restartInMs: undefined, final });
      if (final) this.held = true;
      return;
    }
    if (upMs >= this.backoff.stableMs) this.failures = 0;
    const restartInMs = this.nextDelay();
    this.emit('exited', { ...exit, pid: proc.child.pid, restartInMs, final: false });
    this.schedule(restartInMs);
  }

  private nextDelay(): number {
    this.failures++;
    return Math.min(this.backoff.maxMs, this.backoff.firstMs * 2 ** (this.failures - 1));
  }

  private schedule(delayMs: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      if (this.held) return;
      this.run().catch((error: unknown) => {
        if (this.held) return;
        const restartInMs = this.nextDelay();
        this.emit('startFailed', { error: error instanceof Error ? error : new Error(String(error)), restartInMs });
        this.schedule(restartInMs);
      });
    }, delayMs);
  }
}
