/**
 * The command launcher: a small process, forked once by the worker, that spawns commands (runc,
 * mount, umount, the CNI plugins, iptables) on its behalf. Spawning forks the spawning process;
 * forking this one copies a few MB of page tables, forking the worker copies hundreds of MB's worth
 * and stalls its event loop meanwhile (docs/SANDBOXES.md, "The command launcher").
 *
 * It must stay small: it imports node:child_process and nothing else (protocol.ts is types only).
 * It ignores SIGINT and SIGTERM, which a terminal or a supervisor sends to the whole process
 * group, so a worker that is stopping can still unmount and delete containers through it; it ends
 * when the worker's channel closes (the worker stopped or died).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import type { Socket } from 'node:net';
import type { LaunchReply, LaunchRequest } from './protocol.js';

/** How long a failed `keepPipes` command's stderr may take to end after its exit. */
const FAILED_STDERR_WAIT_MS = 500;

const send = (reply: LaunchReply, handle?: Socket): void => {
  // The channel is gone only when the worker is: nothing is left to answer.
  process.send?.(reply, handle, undefined, () => undefined);
};

process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
process.on('disconnect', () => process.exit(0));
process.on('message', (request: LaunchRequest) => launch(request));
send({ kind: 'ready', pid: process.pid });

function launch(r: LaunchRequest): void {
  let child: ChildProcess;
  try {
    child = spawn(r.command, r.args, { stdio: [r.stdin === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'], env: r.env });
  } catch (error) {
    // Invalid arguments (a NUL byte, say) throw instead of emitting 'error'.
    send({ kind: 'failed', id: r.id, message: (error as Error).message, errno: (error as NodeJS.ErrnoException).code });
    return;
  }
  let answered = false;
  const answer = (reply: LaunchReply, handle?: Socket): void => {
    if (answered) return;
    answered = true;
    send(reply, handle);
  };
  child.on('error', (error: NodeJS.ErrnoException) => {
    child.stdout?.destroy();
    child.stderr?.destroy();
    answer({ kind: 'failed', id: r.id, message: error.message, errno: error.code });
  });
  if (r.stdin !== undefined) {
    child.stdin?.on('error', () => undefined); // a command that does not read its input closes the pipe
    child.stdin?.end(r.stdin);
  }
  const stdout = child.stdout as Socket;
  const stderr = child.stderr as Socket;
  const out = capture(stdout, r.maxOutputBytes);
  const err = capture(stderr, r.maxOutputBytes);
  if (!r.keepPipes) {
    // 'close': the command has exited and both pipes are read to their end.
    child.on('close', (code, signal) =>
      answer({ kind: 'done', id: r.id, code, signal, stdout: out.text(), stderr: err.text(), truncated: out.truncated || err.truncated }),
    );
    return;
  }
  // Every byte on stdout is the container's: leave them all in the pipe for the worker.
  stopReading(stdout);
  out.stop();
  // stderr is read until the exit is seen (runc's error, and it must never block on a full pipe).
  // That is not the moment of the exit: the exit is seen when this loop gets to it, maybe long
  // after, and what the processes left behind wrote meanwhile has been read here too (even to the
  // end of the pipe, if they are gone). So it all goes back to the worker, ahead of the pipe.
  child.on('exit', (code, signal) => {
    if (code === 0) {
      stopReading(stderr);
      err.stop();
      const read = err.bytes().toString('base64');
      send({ kind: 'pipe', id: r.id, stream: 'stderr' }, stderr);
      answer({ kind: 'done', id: r.id, code, signal, stdout: '', stderr: err.text(), truncated: err.truncated, stderrRead: read }, stdout);
      return;
    }
    // No container holds the pipes: read runc's error to its end (briefly), then answer.
    stdout.destroy();
    const finish = (): void => {
      clearTimeout(timer);
      stderr.destroy();
      answer({ kind: 'done', id: r.id, code, signal, stdout: '', stderr: err.text(), truncated: err.truncated });
    };
    const timer = setTimeout(finish, FAILED_STDERR_WAIT_MS);
    stderr.once('close', finish);
  });
}

/** Keeps the first `limit` bytes of a stream; reads and drops the rest so the writer never blocks. */
function capture(stream: Socket, limit: number): { text(): string; bytes(): Buffer; truncated: boolean; stop(): void } {
  const chunks: Buffer[] = [];
  let bytes = 0;
  const state = { truncated: false };
  const onData = (chunk: Buffer): void => {
    if (bytes >= limit) {
      state.truncated = true;
      return;
    }
    const kept = chunk.length <= limit - bytes ? chunk : chunk.subarray(0, limit - bytes);
    if (kept.length < chunk.length) state.truncated = true;
    chunks.push(kept);
    bytes += kept.length;
  };
  stream.on('data', onData);
  return {
    text: () => Buffer.concat(chunks).toString(),
    bytes: () => Buffer.concat(chunks),
    get truncated() {
      return state.truncated;
    },
    /** Stops listening; what the stream had read and not yet emitted is taken too, not left behind. */
    stop: () => {
      stream.off('data', onData);
      stream.pause();
      for (let chunk = stream.read() as Buffer | null; chunk !== null; chunk = stream.read() as Buffer | null) onData(chunk);
    },
  };
}

/**
 * Stops this process reading from a pipe whose handle goes to the worker, so that every later byte
 * stays in the pipe for the worker (bytes read here would be lost: a sent socket does not carry
 * what it buffered). net.Socket has no public call for this: `pause()` stops the stream, while its
 * handle goes on reading up to the high-water mark. The handle is left marked as reading so the
 * stream never starts it again; it is closed once the worker has it.
 */
function stopReading(socket: Socket): void {
  const handle = (socket as unknown as { _handle?: { reading: boolean; readStop(): number } | null })._handle;
  if (!handle) return; // already ended and closed: the worker gets an ended stream
  handle.readStop();
  handle.reading = true;
}
