/**
 * The worker's end of the runtime protocol (runtime/protocol/messages.ts) for one sandbox: a unix
 * socket server that accepts the bootstrap's single connection, then matches results to invokes.
 *
 * The runtime is not trusted to keep its own limits: a frame longer than `maxFrameBytes` is never
 * buffered past the cap; it fails every call waiting on this channel with FunctionResponseTooLarge
 * and closes the channel (whose close listeners destroy the sandbox).
 *
 * Errors: a channel that is gone (the runtime exited or sent a frame that is not JSON) or never
 * came (it did not connect in time) fails its waiters with a HostError `channel-closed`, unless it
 * was aborted with an error of its own (then that one). A handler the runtime could not load
 * fails `init` with SkiffError `FunctionError`, its errorType and stack the handler's.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { chmod, rm } from 'node:fs/promises';
import { SkiffError } from '../../infra/errors.js';
import { HostError } from '../../infra/host-error.js';
import { isFrameError, readFrames, writeFrame, type FrameError } from '../../runtime/protocol/framing.js';
import type {
  ChunkMessage,
  ErrorInfo,
  FunctionSpec,
  HelloMessage,
  InvokeMessage,
  LogMessage,
  ResultMessage,
  RuntimeLimits,
  RuntimeMessage,
} from '../../runtime/protocol/messages.js';

export interface RuntimeChannelOptions {
  /** Sent to the runtime with init. */
  limits: RuntimeLimits;
  /** Longest frame accepted from the runtime, in bytes. */
  maxFrameBytes: number;
  /** Most bytes one streamed invocation may send as chunks; past it the channel is aborted. */
  maxStreamBytes: number;
}

/** A streamed invocation's bytes, in order; `contentType` with the first chunk only. */
export type ChunkListener = (data: Buffer, contentType: string | undefined) => void;

/** Room a result frame needs beyond the result itself: its id, type and duration, and some slack. */
export const FRAME_MARGIN_BYTES = 64 * 1024;

type Pending = { resolve: (result: ResultMessage) => void; reject: (error: Error) => void };
type Streamed = { onChunk: ChunkListener; bytes: number };

export class RuntimeChannel {
  private server: Server | undefined;
  private socket: Socket | undefined;
  private readonly pending = new Map<string, Pending>();
  /** Invocations that stream (invoked with a chunk listener), by id, with the bytes they sent. */
  private readonly streamed = new Map<string, Streamed>();
  private initWaiter: Pending | undefined;
  private helloWaiter: { resolve: (hello: HelloMessage) => void; reject: (error: Error) => void } | undefined;
  private closed = false;
  /** Why the channel was closed by this side, given to everyone still waiting. */
  private failure: Error | undefined;
  private readonly closeListeners: Array<() => void> = [];
  /** Receives the runtime's `log` frames. */
  onLog: (message: LogMessage) => void = () => undefined;

  constructor(private readonly options: RuntimeChannelOptions) {}

  /** Listens on `path`; resolves once listening (the socket file then exists). */
  async listen(path: string): Promise<void> {
    // Longer paths are silently truncated by the kernel: the bootstrap would never find the socket.
    if (Buffer.byteLength(path) > 107) throw new HostError('unsuitable', `socket path is longer than 107 bytes: ${path}`);
    await rm(path, { force: true });
    const server = createServer((socket) => this.accept(socket));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(path, () => resolve());
    });
    // The bootstrap runs as an unprivileged, id-mapped user: it needs write access to connect.
    await chmod(path, 0o666);
  }

  /** Resolves when the bootstrap has connected and said hello. */
  hello(timeoutMs: number): Promise<HelloMessage> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new HostError('channel-closed', `runtime did not connect within ${timeoutMs} ms`)), timeoutMs);
      this.helloWaiter = {
        resolve: (hello) => (clearTimeout(timer), resolve(hello)),
        reject: (error) => (clearTimeout(timer), reject(error)),
      };
      if (this.closed) this.helloWaiter.reject(this.failure ?? new HostError('channel-closed', 'runtime exited before it connected'));
    });
  }

  async init(fn: FunctionSpec): Promise<number> {
    const socket = this.requireSocket();
    const done = new Promise<ResultMessage>((resolve, reject) => (this.initWaiter = { resolve, reject }));
    writeFrame(socket, { type: 'init', function: fn, limits: this.options.limits });
    const result = (await done) as unknown as { durationMs: number };
    return result.durationMs;
  }

  /**
   * With `onChunk` the invocation streams: the runtime is asked to (`stream`), and its chunks go to
   * `onChunk` before the result resolves. More than `maxStreamBytes` of them fail every call
   * waiting with FunctionResponseTooLarge and close the channel, as a frame over the cap does.
   */
  invoke(message: Omit<InvokeMessage, 'type' | 'stream'>, onChunk?: ChunkListener): Promise<ResultMessage> {
    const socket = this.requireSocket();
    return new Promise((resolve, reject) => {
      this.pending.set(message.id, { resolve, reject });
      if (onChunk) this.streamed.set(message.id, { onChunk, bytes: 0 });
      writeFrame(socket, { type: 'invoke', ...message, ...(onChunk ? { stream: true } : {}) });
    });
  }

  /** Called once when the bootstrap's connection ends (the process exited or was killed). */
  onClose(listener: () => void): void {
    if (this.closed) listener();
    else this.closeListeners.push(listener);
  }

  /** Fails every call waiting with `error`, then closes the channel. */
  abort(error: Error): void {
    this.failure ??= error;
    this.close();
  }

  close(): void {
    this.socket?.destroy();
    this.server?.close();
    this.markClosed();
  }

  private requireSocket(): Socket {
    if (!this.socket || this.closed) throw new HostError('channel-closed', 'runtime is not connected');
    return this.socket;
  }

  private accept(socket: Socket): void {
    if (this.socket) {
      socket.destroy(); // exactly one runtime per sandbox
      return;
    }
    this.socket = socket;
    this.server?.close(); // no further connections; the accepted one stays open
    socket.setNoDelay(true);
    readFrames(
      socket,
      (frame) => this.receive(frame as RuntimeMessage),
      (error) => this.refuse(error),
      { maxFrameBytes: this.options.maxFrameBytes },
    );
    socket.on('close', () => this.markClosed());
    socket.on('error', () => this.markClosed());
  }

  /**
   * A frame over the cap (the function wrote it: FunctionResponseTooLarge), or one that is not JSON
   * (the runtime is broken or hostile: the channel is closed); either way the channel is done.
   */
  private refuse(error: FrameError): void {
    if (isFrameError(error, 'too-large')) {
      this.abort(
        new SkiffError('FunctionResponseTooLarge', `the function wrote a frame over ${error.limitBytes} bytes to the runtime socket; its sandbox was stopped`, {
          cause: error,
        }),
      );
    } else {
      this.abort(new HostError('channel-closed', 'the runtime sent a frame that is not JSON; its channel was closed', { cause: error }));
    }
  }

  private receive(message: RuntimeMessage): void {
    switch (message.type) {
      case 'hello':
        this.helloWaiter?.resolve(message);
        return;
      case 'initDone':
        this.initWaiter?.resolve(message as unknown as ResultMessage);
        this.initWaiter = undefined;
        return;
      case 'initFailed':
        this.initWaiter?.reject(handlerNotLoaded(message.error));
        this.initWaiter = undefined;
        return;
      case 'log':
        this.onLog(message);
        return;
      case 'chunk':
        this.chunk(message);
        return;
      case 'result': {
        const waiter = this.pending.get(message.id);
        this.pending.delete(message.id);
        this.streamed.delete(message.id);
        waiter?.resolve(message);
        return;
      }
    }
  }

  /** A chunk of a streamed invocation; one of an invocation that does not stream is dropped. */
  private chunk(message: ChunkMessage): void {
    const stream = this.streamed.get(message.id);
    if (!stream || typeof message.data !== 'string') return;
    const data = Buffer.from(message.data, 'base64');
    stream.bytes += data.length;
    if (stream.bytes > this.options.maxStreamBytes) {
      this.streamed.delete(message.id);
      this.abort(
        new SkiffError(
          'FunctionResponseTooLarge',
          `the function streamed more than the limit of ${this.options.maxStreamBytes} bytes (SKIFF_STREAM_LIMIT_BYTES); the stream was cut and its sandbox stopped`,
        ),
      );
      return;
    }
    stream.onChunk(data, typeof message.contentType === 'string' ? message.contentType : undefined);
  }

  private markClosed(): void {
    if (this.closed) return;
    this.closed = true;
    const error = this.failure ?? new HostError('channel-closed', 'runtime exited');
    this.helloWaiter?.reject(error);
    this.initWaiter?.reject(error);
    for (const waiter of this.pending.values()) waiter.reject(error);
    this.pending.clear();
    this.streamed.clear();
    for (const listener of this.closeListeners.splice(0)) listener();
  }
}

/** The runtime could not load the handler: the function's error, with the handler's own type and stack. */
function handlerNotLoaded(info: ErrorInfo): SkiffError {
  return new SkiffError('FunctionError', `handler could not be loaded: ${info.message}`, {
    errorType: info.type,
    ...(info.stack ? { stack: info.stack } : {}),
  });
}
