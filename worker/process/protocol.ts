/**
 * The messages between the worker and its command launcher (`launcher-main.ts`), over the IPC
 * channel of `child_process.fork` (JSON). Types only: the launcher imports nothing else of Skiff.
 *
 * Order on the channel: the launcher says `ready` once. For each request it answers exactly one
 * `done` or `failed` with the request's id; a request with `keepPipes` that succeeded is answered by
 * a `pipe` message carrying the stderr read end as its handle, then `done` carrying the stdout one.
 */

export interface LaunchRequest {
  id: number;
  command: string;
  args: string[];
  /** Written to the command's stdin, which is then closed; without it stdin is /dev/null. */
  stdin?: string;
  /** The whole environment of the command; without it the launcher's own (the worker's). */
  env?: Record<string, string>;
  /** Bytes of stdout and of stderr kept for the answer; the rest is read and dropped. */
  maxOutputBytes: number;
  /**
   * The command leaves processes behind that keep writing to its stdout and stderr (`runc run
   * --detach`): answer at its exit, not when the pipes close, and hand their read ends over.
   */
  keepPipes?: boolean;
}

export type LaunchReply =
  | { kind: 'ready'; pid: number }
  | { kind: 'pipe'; id: number; stream: 'stderr' }
  | {
      kind: 'done';
      id: number;
      code: number | null;
      signal: NodeJS.Signals | null;
      /** With `keepPipes`: empty, the stdout pipe is the message's handle (when the command succeeded). */
      stdout: string;
      /** With `keepPipes`: what the command wrote before it exited. */
      stderr: string;
      truncated: boolean;
    }
  /** The command could not be started (not found, not executable, ...). */
  | { kind: 'failed'; id: number; message: string; errno: string | undefined };
