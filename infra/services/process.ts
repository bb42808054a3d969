/**
 * A long-running child process owned by this one (a database server, a Skiff component): its
 * output goes to a log file, and `stop` signals it and waits for it to exit.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

export interface OwnedProcess {
  child: ChildProcess;
  /** Sends `signal` (SIGTERM by default) and waits for the exit, SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  /** The exit code (null when a signal ended it); rejects if the process could not be spawned. */
  exited: Promise<number | null>;
  /** True once the process has exited, by a code or a signal. */
  hasExited(): boolean;
}

export function startProcess(command: string, args: string[], options: SpawnOptions & { logFile?: string } = {}): OwnedProcess {
  const logFd = options.logFile ? openSync(options.logFile, 'a') : undefined;
  const child = spawn(command, args, {
    ...options,
    stdio: options.stdio ?? ['ignore', logFd ?? 'inherit', logFd ?? 'inherit'],
  });
  if (logFd !== undefined) closeSync(logFd);
  let failed = false;
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', (error) => {
      failed = true;
      reject(error);
    });
    child.once('exit', (code) => resolve(code));
  });
  exited.catch(() => undefined); // reported to whoever awaits `exited`; must not crash the owner
  const hasExited = (): boolean => failed || child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    exited,
    hasExited,
    async stop(signal = 'SIGTERM', graceMs = 15000) {
      if (hasExited()) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited.catch(() => undefined);
      clearTimeout(timer);
    },
  };
}

/** Thrown by a `waitFor` probe to stop waiting at once (what it waits for can no longer happen). */
export class GaveUp extends Error {}

/**
 * Calls `probe` until it resolves, or throws its last error after `timeoutMs`; at once when the
 * probe throws `GaveUp` or `signal` aborts.
 */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T>,
  timeoutMs = 30000,
  everyMs = 100,
  options: { signal?: AbortSignal | undefined } = {},
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  const { signal } = options;
  for (;;) {
    if (signal?.aborted) throw new Error(`${what}: waiting was cancelled`, { cause: signal.reason });
    try {
      return await probe();
    } catch (error) {
      if (error instanceof GaveUp) throw new Error(`${what} did not become ready: ${error.message}`, { cause: error });
      if (Date.now() > deadline) throw new Error(`${what} did not become ready in ${timeoutMs} ms`, { cause: error });
      await sleep(everyMs, undefined, signal ? { signal } : {}).catch(() => undefined);
    }
  }
}

/** A TCP port on loopback that nothing listens on right now (for private servers and tests). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/**
 * Throws if something already listens on `host:port`: a server started there would fail to bind,
 * and a readiness probe might be answered by that other process instead.
 */
export async function assertPortFree(port: number, host = '127.0.0.1'): Promise<void> {
  const socket = connect({ port, host });
  socket.setTimeout(2000);
  // A timeout means something holds the port without answering: in use too.
  const inUse = await new Promise<boolean>((resolve) => {
    socket.once('connect', () => resolve(true));
    socket.once('timeout', () => resolve(true));
    socket.once('error', () => resolve(false));
  });
  socket.destroy();
  if (inUse) throw new Error(`${host}:${port} is in use by another process`);
}

/** Whether a process with this id exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
