/**
 * The worker's side of the command launcher (launcher-main.ts). The worker is a big process, and
 * spawning from it means forking it: copying its page tables costs tens of milliseconds per command
 * under load, all of it on the event loop, which every call the worker serves then waits for. The
 * launcher is a small process forked once; it spawns each command and answers over IPC, and hands
 * over the pipes of commands that leave processes behind (`runc run --detach`).
 *
 * Contract:
 *  - Every command sent is answered or rejected: if the launcher dies, the commands it was running
 *    reject with a `launcher` HostError (reason `LauncherDied`), and the next command starts a new
 *    launcher. A launcher that does not come up rejects the commands waiting for it
 *    (`LauncherUnavailable`); a command it cannot start rejects alone (`CommandNotStarted`).
 *  - After `stop`, the launcher has exited and every command rejects (`LauncherStopped`).
 *  - The launcher keeps this process alive only while commands are under way.
 *
 * There is no process-wide launcher: whoever runs commands is given one (the worker's is made in
 * worker/node.ts and passed to runc, the mounts, the egress network, the code cache and the layer
 * store).
 */
import { fork, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { HostError, type LauncherFailure } from '../../infra/host-error.js';
import type { Logger } from '../../infra/log.js';
import { exitText, type CommandOptions, type CommandResult, type CommandRunner, type PipedResult } from './command-runner.js';
import type { LaunchReply, LaunchRequest } from './protocol.js';

const MAIN = fileURLToPath(new URL('./launcher-main.js', import.meta.url));

/** How the launcher failed a command: a `launcher` HostError, `reason` saying how. */
function launcherError(reason: LauncherFailure, message: string, cause?: unknown): HostError {
  return new HostError('launcher', message, cause === undefined ? { reason } : { reason, cause });
}

export interface LauncherOptions {
  log?: Logger;
  /** Bytes of stdout and of stderr kept per command unless it asks otherwise. */
  maxOutputBytes?: number;
  /** How long the launcher may take to come up before its commands reject. */
  readyTimeoutMs?: number;
  /** How long `stop` waits for the launcher to exit before killing it. */
  stopTimeoutMs?: number;
}

type Done = Extract<LaunchReply, { kind: 'done' }>;

interface Pending {
  child: ChildProcess;
  request: LaunchRequest;
  resolve(answer: { done: Done; stdout: Socket | undefined; stderr: Socket | undefined }): void;
  reject(error: Error): void;
  /** A `keepPipes` command's stderr, handed over before its `done`. */
  stderr?: Socket | undefined;
}

interface Running {
  child: ChildProcess;
  /** Resolves when the launcher has exited and its channel is closed. */
  closed: Promise<void>;
}

export class Launcher implements CommandRunner {
  /** The launcher being started or running; undefined before the first command and after it died. */
  private current: Promise<Running> | undefined;
  private live: ChildProcess | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private starts = 0;
  private stopped = false;
  /** Commands asked for and not yet answered, including those waiting for the launcher to be up. */
  private outstanding = 0;
  /** Wakes `stop` when the last command under way is answered. */
  private drained: ((value: unknown) => void) | undefined;
  private readonly maxOutputBytes: number;

  constructor(private readonly options: LauncherOptions = {}) {
    this.maxOutputBytes = options.maxOutputBytes ?? 1024 * 1024;
  }

  /** Starts the launcher and waits until it is ready. Commands start it themselves if needed. */
  async start(): Promise<void> {
    await this.running();
  }

  /** The launcher's pid (starting it if it is not running). */
  async pid(): Promise<number | undefined> {
    return (await this.running()).child.pid;
  }

  async run(command: string, args: string[], options: CommandOptions = {}): Promise<CommandResult> {
    const request: Omit<LaunchRequest, 'id'> = { command, args, maxOutputBytes: options.maxOutputBytes ?? this.maxOutputBytes };
    if (options.stdin !== undefined) request.stdin = options.stdin;
    if (options.env !== undefined) request.env = options.env;
    const { done } = await this.send(request);
    return result(done);
  }

  async runKeepingPipes(command: string, args: string[]): Promise<PipedResult> {
    const { done, stdout, stderr } = await this.send({ command, args, maxOutputBytes: this.maxOutputBytes, keepPipes: true });
    if (done.code !== 0) {
      stdout?.destroy();
      stderr?.destroy();
      return { ...result(done), pipes: undefined };
    }
    // A pipe the command's processes had already closed comes without a handle: it has ended.
    // What the launcher read of stderr before it saw the exit may be theirs too: it comes first.
    const read = Buffer.from(done.stderrRead ?? '', 'base64');
    const stderrStream = read.length > 0 ? prepended(read, stderr) : (stderr ?? Readable.from([]));
    return { ...result(done), pipes: { stdout: stdout ?? Readable.from([]), stderr: stderrStream } };
  }

  /**
   * Takes no more commands, lets those under way finish, then closes the launcher's channel and
   * waits for it to exit. After `stopTimeoutMs` it is killed (what still runs rejects).
   */
  async stop(): Promise<void> {
    this.stopped = true;
    const running = await this.current?.catch(() => undefined);
    if (!running) return;
    const { child, closed } = running;
    const timer = setTimeout(() => child.kill('SIGKILL'), this.options.stopTimeoutMs ?? 5000);
    while (this.outstanding > 0 && child.connected) await new Promise((resolve) => (this.drained = resolve));
    this.busy(child); // this process waits for the exit
    if (child.connected) child.disconnect();
    await closed;
    clearTimeout(timer);
  }

  private running(): Promise<Running> {
    if (this.stopped) return Promise.reject(launcherError('LauncherStopped', 'the command launcher is stopped'));
    if (!this.current) {
      const starting = this.fork();
      this.current = starting;
      // A launcher that did not come up is tried again by the next command.
      starting.catch(() => {
        if (this.current === starting) this.current = undefined;
      });
    }
    return this.current;
  }

  private fork(): Promise<Running> {
    return new Promise((resolve, reject) => {
      const restart = this.starts++ > 0;
      // No inherited flags or NODE_OPTIONS (inspector, preloaded agents, loaders): the launcher is
      // plain and small. The rest of the environment passes through to the commands it runs.
      // eslint-disable-next-line no-restricted-properties -- passed on, not read as configuration
      const env = { ...process.env, NODE_OPTIONS: '' };
      const child = fork(MAIN, [], { execArgv: [], env, serialization: 'json', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
      let ready = false;
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(launcherError('LauncherUnavailable', `the command launcher did not come up in ${this.options.readyTimeoutMs ?? 10_000} ms`));
      }, this.options.readyTimeoutMs ?? 10_000);
      // Ended: exited, and its channel closed (answers sent before the exit have been read). Not
      // 'close', which does not come after a disconnect from this side.
      const closed = new Promise<void>((resolveClosed) => {
        const exited = new Promise<[number | null, NodeJS.Signals | null]>((resolveExit) => child.once('exit', (code, signal) => resolveExit([code, signal])));
        const disconnected = new Promise<void>((resolveDisconnect) => child.once('disconnect', resolveDisconnect));
        void Promise.all([exited, disconnected]).then(([[code, signal]]) => {
          clearTimeout(timer);
          this.closed(child, code, signal);
          if (!ready) reject(launcherError('LauncherUnavailable', `the command launcher exited before it was ready (${exitText({ code, signal })})`));
          resolveClosed();
        });
      });
      child.on('error', (error) => {
        // Fork failures, and sends after the channel closed (answered per command, see send).
        if (ready) return;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(launcherError('LauncherUnavailable', 'the command launcher could not be started', error));
      });
      child.on('message', (reply: LaunchReply, handle?: Socket) => {
        if (reply.kind !== 'ready') return this.answer(reply, handle);
        ready = true;
        clearTimeout(timer);
        this.live = child;
        this.idle(child);
        if (restart) this.options.log?.warn({ pid: reply.pid }, 'command launcher restarted');
        resolve({ child, closed });
      });
    });
  }

  private async send(partial: Omit<LaunchRequest, 'id'>): Promise<{ done: Done; stdout: Socket | undefined; stderr: Socket | undefined }> {
    this.outstanding++;
    try {
      const { child } = await this.running();
      const request: LaunchRequest = { id: this.nextId++, ...partial };
      return await new Promise((resolve, reject) => {
        this.pending.set(request.id, { child, request, resolve, reject });
        this.busy(child);
        child.send(request, (error) => {
          if (error) this.settle(request.id)?.reject(launcherError('LauncherDied', `could not send ${describe(request)} to the command launcher`, error));
        });
      });
    } finally {
      if (--this.outstanding === 0) this.drained?.(undefined);
    }
  }

  private answer(reply: Exclude<LaunchReply, { kind: 'ready' }>, handle: Socket | undefined): void {
    if (reply.kind === 'pipe') {
      const pending = this.pending.get(reply.id);
      if (pending) pending.stderr = handle;
      else handle?.destroy();
      return;
    }
    const pending = this.settle(reply.id);
    if (!pending) {
      handle?.destroy();
      return;
    }
    if (reply.kind === 'failed') {
      const cause = Object.assign(new Error(reply.message), { code: reply.errno });
      pending.reject(launcherError('CommandNotStarted', `${pending.request.command} could not be started: ${reply.message}`, cause));
    } else pending.resolve({ done: reply, stdout: handle, stderr: pending.stderr });
  }

  /** Takes a command off the pending list; the launcher stops holding this process up when none is left. */
  private settle(id: number): Pending | undefined {
    const pending = this.pending.get(id);
    if (!pending) return undefined;
    this.pending.delete(id);
    if (![...this.pending.values()].some((p) => p.child === pending.child)) this.idle(pending.child);
    return pending;
  }

  private closed(child: ChildProcess, code: number | null, signal: NodeJS.Signals | null): void {
    const reason = this.stopped ? 'LauncherStopped' : 'LauncherDied';
    const lost = [...this.pending.values()].filter((p) => p.child === child);
    for (const pending of lost) {
      this.settle(pending.request.id);
      pending.stderr?.destroy();
      pending.reject(
        launcherError(reason, `the command launcher (pid ${child.pid}) exited (${exitText({ code, signal })}) while running ${describe(pending.request)}`),
      );
    }
    if (this.live === child) {
      this.live = undefined;
      this.current = undefined;
    }
    if (!this.stopped)
      this.options.log?.error({ pid: child.pid, code, signal, lost: lost.length }, 'command launcher exited; the next command starts a new one');
  }

  private busy(child: ChildProcess): void {
    child.ref();
    child.channel?.ref();
  }

  private idle(child: ChildProcess): void {
    child.unref();
    child.channel?.unref();
  }
}

/** `head`, then what `rest` carries to its end. Destroying the stream destroys `rest`. */
function prepended(head: Buffer, rest: Socket | undefined): Readable {
  async function* chunks(): AsyncGenerator<Buffer> {
    yield head;
    if (rest) yield* rest as AsyncIterable<Buffer>;
  }
  return Readable.from(chunks(), { objectMode: false });
}

function result(done: Done): CommandResult {
  return { code: done.code, signal: done.signal, stdout: done.stdout, stderr: done.stderr, truncated: done.truncated };
}

function describe(request: LaunchRequest): string {
  const text = [request.command, ...request.args].join(' ');
  return `\`${text.length > 200 ? `${text.slice(0, 200)}...` : text}\``;
}
