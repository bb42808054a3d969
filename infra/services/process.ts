/**
 * A long-running child process owned by this one (a database server, a Skiff component): its
 * output goes to a log file, and `stop` signals it and waits for it to exit.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { createServer } from 'node:net';

export interface OwnedProcess {
  child: ChildProcess;
  /** Sends `signal` (SIGTERM by default) and waits for the exit, SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export function startProcess(command: string, args: string[], options: SpawnOptions & { logFile?: string } = {}): OwnedProcess {
  const logFd = options.logFile ? openSync(options.logFile, 'a') : undefined;
  const child = spawn(command, args, {
    ...options,
    stdio: options.stdio ?? ['ignore', logFd ?? 'inherit', logFd ?? 'inherit'],
  });
  if (logFd !== undefined) closeSync(logFd);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code) => resolve(code));
  });
  exited.catch(() => undefined); // reported to whoever awaits `exited`; must not crash the owner
  return {
    child,
    exited,
    async stop(signal = 'SIGTERM', graceMs = 15000) {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await exited.catch(() => undefined);
      clearTimeout(timer);
    },
  };
}

/** Calls `probe` until it resolves, or throws its last error after `timeoutMs`. */
export async function waitFor<T>(what: string, probe: () => Promise<T>, timeoutMs = 30000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await probe();
    } catch (error) {
      if (Date.now() > deadline) throw new Error(`${what} did not become ready in ${timeoutMs} ms`, { cause: error });
      await new Promise((resolve) => setTimeout(resolve, everyMs));
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

/** Whether a process with this id exists (EPERM: it does, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
