/**
 * The messages between the worker and its command launcher (`launcher-main.ts`), over the IPC
 * channel of `child_process.fork` (JSON). Types only: the launcher imports nothing else of Skiff.
 *
 * Order on the channel: the launcher says `ready` once. For each request it answers exactly one
 * `done` or `failed` with the request's id; a request with `keepPipes` that succeeded is answered by
 * a `pipe` message carrying the stderr read end as its handle, then `done` carrying the stdout one.
 * A `pipe` or `done` whose pipe the command's processes had already closed (and the launcher read
 * to its end) comes without a handle.
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
      /**
       * With `keepPipes`: what the launcher had read from stderr when it saw the exit: usually the
       * command's own messages, maybe not all of them, maybe the first its processes wrote too.
       */
      stderr: string;
      truncated: boolean;
      /**
       * With `keepPipes`, when the command succeeded: the same bytes as `stderr`, base64 (not cut
       * into text), for the worker to put back ahead of the stderr pipe, which holds only what was
       * not read yet. Missing past `maxOutputBytes` when `truncated`.
       */
      stderrRead?: string;
    }
  /** The command could not be started (not found, not executable, ...). */
  | { kind: 'failed'; id: number; message: string; errno: string | undefined };
