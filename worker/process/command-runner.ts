/**
 * What runs the worker's host commands (runc, mount, umount, the CNI plugins, iptables). The
 * worker's implementation is the `Launcher` (launcher.ts): a small process that does the spawning,
 * so the worker itself never forks. Tests may pass something else.
 */
import type { Readable } from 'node:stream';

export interface CommandOptions {
  /** Written to the command's stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** The command's whole environment; without it the worker's. */
  env?: Record<string, string>;
  /** Bytes kept of stdout and of stderr each; the rest is read and dropped (`truncated`). */
  maxOutputBytes?: number;
}

export interface CommandResult {
  /** The exit code; null when a signal ended the command. */
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** Some output was dropped past `maxOutputBytes`. */
  truncated: boolean;
}

export interface PipedResult extends CommandResult {
  /**
   * When the command exited 0: its stdout and stderr, which the processes it left behind still
   * write to; they end when the last of those exits. Each carries every byte written to it, the
   * command's own included. `stdout` is then empty and `stderr` is what had been read of stderr
   * when the command's exit was seen, the head of the stderr stream: usually the command's own
   * messages, but it may miss some of them or hold the first of its processes' (they share the
   * pipe, and the exit is seen some time after it happened, so they cannot be told apart).
   */
  pipes: { stdout: Readable; stderr: Readable } | undefined;
}

/** How a command (or the launcher) ended, for messages: `code 1`, `signal SIGKILL`. */
export function exitText(ended: { code: number | null; signal: NodeJS.Signals | null }): string {
  return ended.signal ? `signal ${ended.signal}` : `code ${ended.code}`;
}

export interface CommandRunner {
  /**
   * Runs a command to its end and reports how it ended, whatever its exit code. Rejects only when
   * the command could not be started or the runner failed (a `launcher` HostError).
   */
  run(command: string, args: string[], options?: CommandOptions): Promise<CommandResult>;
  /**
   * Runs a command that leaves processes behind writing to its stdout and stderr (`runc run
   * --detach`): resolves at the command's exit, with those pipes when it succeeded.
   */
  runKeepingPipes(command: string, args: string[]): Promise<PipedResult>;
}
